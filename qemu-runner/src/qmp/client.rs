//! The QMP client: the commands we send (serde types, written on one
//! line), a tolerant reading of what QEMU sends back, and a session on a
//! socket with timeouts, typed errors and the events seen.

use serde::ser::SerializeMap;
use serde::Serialize;
use serde_json::Value;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// Prefix of the QMP traffic in the console log.
pub const LOG_PREFIX: &str = "[qmp] ";
/// For connecting, for each reply, and for each `DEVICE_DELETED` event
/// (replies and events: unless [`Client::timeout`] says otherwise).
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// QMP lines longer than this are refused (QEMU's are a few hundred bytes).
pub const MAX_LINE: usize = 1 << 20;
/// Events kept per connection; a QEMU sending more is not one we test.
pub(crate) const MAX_EVENTS: usize = 10_000;
const POLL: Duration = Duration::from_millis(10);

/// A command as QMP takes it: `{"execute": NAME}`, with `"arguments"`
/// when there are any.
#[derive(Serialize)]
struct Command<'a, A: Serialize> {
    execute: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<A>,
}

impl<A: Serialize> Command<'_, A> {
    /// On one line, as [`Spaced`] lays it out.
    fn line(&self) -> String {
        let mut out = Vec::new();
        // Into memory, of strings, maps and numbers: nothing here can fail.
        let written = self.serialize(&mut serde_json::Serializer::with_formatter(
            &mut out, Spaced,
        ));
        debug_assert!(written.is_ok());
        String::from_utf8(out).unwrap_or_default()
    }
}

/// String members in the order given (QEMU converts them for
/// `device_add` properties).
struct Arguments<'a>(&'a [(&'a str, &'a str)]);

impl Serialize for Arguments<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// serde_json's compact form with a space after `:` and `,`, as QEMU's
/// documentation writes QMP (and as our logs always read); DEL and the
/// Unicode line separators, which some readers take for line ends, are
/// escaped besides the control characters serde_json escapes.
struct Spaced;

impl serde_json::ser::Formatter for Spaced {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut rest = fragment;
        while let Some(at) = rest.find(['\u{7f}', '\u{2028}', '\u{2029}']) {
            w.write_all(&rest.as_bytes()[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            write!(w, "\\u{:04x}", u32::from(c))?;
            rest = &rest[at + c.len_utf8()..];
        }
        w.write_all(rest.as_bytes())
    }
}

/// `{"execute": NAME}` or `{"execute": NAME, "arguments": {...}}`, string
/// arguments only, on one line whatever the strings hold.
pub fn command(execute: &str, arguments: &[(&str, &str)]) -> String {
    Command {
        execute,
        arguments: (!arguments.is_empty()).then_some(Arguments(arguments)),
    }
    .line()
}

/// `balloon`: the guest's memory with the balloon inflated to leave
/// `bytes` (a number, as QMP types it).
pub fn balloon(bytes: u64) -> String {
    #[derive(Serialize)]
    struct Target {
        value: u64,
    }
    Command {
        execute: "balloon",
        arguments: Some(Target { value: bytes }),
    }
    .line()
}

pub fn qmp_capabilities() -> String {
    command("qmp_capabilities", &[])
}

/// `device_add` with `driver`, `id` and the properties, in that order.
pub fn device_add(driver: &str, id: &str, properties: &[(String, String)]) -> String {
    let mut args = vec![("driver", driver), ("id", id)];
    args.extend(properties.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    command("device_add", &args)
}

pub fn device_del(id: &str) -> String {
    command("device_del", &[("id", id)])
}

/// One line from QEMU, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `{"QMP": ...}`, sent once on connecting.
    Greeting,
    /// `{"return": ...}`: the command succeeded.
    Return,
    /// `{"error": {"class": ..., "desc": ...}}`.
    Error { class: String, desc: String },
    /// `{"event": NAME, "data": {"device": ID, ...}}`; `device` when present.
    Event {
        name: String,
        device: Option<String>,
    },
    /// Anything else, valid JSON or not: kept only for the log.
    Other(String),
}

/// An event QEMU sent (`{"event": NAME, "data": {...}}`), e.g. `WATCHDOG`
/// with `{"action": "inject-nmi"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QmpEvent {
    pub name: String,
    /// The `data` member ([`Value::Null`] when there is none).
    pub data: Value,
    /// When the runner read it, from QEMU's start.
    pub after: Duration,
}

impl QmpEvent {
    /// A string member of `data`, e.g. `action` of `WATCHDOG`.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.data.get(key).and_then(Value::as_str)
    }
}

/// Tolerant: never fails; what is not JSON (RFC 8259, as serde_json reads
/// it, nested at most 128 deep) or not one of the shapes becomes
/// [`Message::Other`].
pub fn classify(line: &str) -> Message {
    let line = line.trim();
    match serde_json::from_str::<Value>(line) {
        Ok(v) => classify_value(&v, line),
        Err(_) => Message::Other(line.to_string()),
    }
}

/// The shapes, looked for in this order: an `error` member (of any form),
/// a `return` member, a string `event`, a `QMP` member. Read from the
/// value rather than into derived structs: those would refuse members of
/// another form (a `null` return, a numeric class) that QMP readers take.
fn classify_value(v: &Value, line: &str) -> Message {
    if !v.is_object() {
        return Message::Other(line.to_string());
    }
    if let Some(e) = v.get("error") {
        let field = |k| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let mut desc = field("desc");
        if desc.is_empty() {
            desc = "(no description)".into();
        }
        return Message::Error {
            class: field("class"),
            desc,
        };
    }
    if v.get("return").is_some() {
        return Message::Return;
    }
    if let Some(name) = v.get("event").and_then(Value::as_str) {
        let device = v
            .get("data")
            .and_then(|d| d.get("device"))
            .and_then(Value::as_str)
            .map(String::from);
        return Message::Event {
            name: name.to_string(),
            device,
        };
    }
    if v.get("QMP").is_some() {
        return Message::Greeting;
    }
    Message::Other(line.to_string())
}

/// What went wrong on a QMP connection. Its text is what a run's verdict
/// shows: `QMP device_add ccw-fe.0.0007: Device fe.0.0007 already exists`.
#[derive(Debug)]
pub enum QmpError {
    /// QEMU closed the connection: it ended.
    Closed,
    /// No answer within this long.
    NoAnswer(Duration),
    /// QEMU refused the command: its error reply.
    Refused { class: String, desc: String },
    /// A line longer than [`MAX_LINE`] bytes: not QMP.
    LineTooLong,
    /// The socket failed.
    Io(io::Error),
    /// Nothing to connect to, and QEMU is gone.
    QemuEnded(io::Error),
    /// Nothing to connect to within [`TIMEOUT`].
    GaveUp(io::Error),
    /// What was being done when `error` happened: `QMP <what>: <error>`.
    During { what: String, error: Box<QmpError> },
}

impl QmpError {
    fn during(what: impl Into<String>, error: QmpError) -> Self {
        QmpError::During {
            what: what.into(),
            error: Box::new(error),
        }
    }

    /// The error itself, without what was being done.
    pub fn cause(&self) -> &QmpError {
        match self {
            QmpError::During { error, .. } => error.cause(),
            other => other,
        }
    }

    /// QEMU closed the connection.
    pub fn is_closed(&self) -> bool {
        matches!(self.cause(), QmpError::Closed)
    }

    /// After this error the connection is of no more use: nothing more
    /// is sent on it.
    pub fn ends_connection(&self) -> bool {
        matches!(
            self.cause(),
            QmpError::Closed | QmpError::NoAnswer(_) | QmpError::QemuEnded(_)
        )
    }
}

impl fmt::Display for QmpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QmpError::Closed => f.write_str("QEMU closed the connection"),
            QmpError::NoAnswer(d) => write!(f, "no answer within {} s", d.as_secs_f64()),
            QmpError::Refused { desc, .. } => f.write_str(desc),
            QmpError::LineTooLong => write!(f, "a line longer than {MAX_LINE} bytes"),
            QmpError::Io(e) => write!(f, "{e}"),
            QmpError::QemuEnded(e) => write!(f, "{e} (QEMU ended first)"),
            QmpError::GaveUp(e) => write!(f, "{e} (gave up after {} s)", TIMEOUT.as_secs()),
            QmpError::During { what, error } => write!(f, "QMP {what}: {error}"),
        }
    }
}

impl std::error::Error for QmpError {}

/// A connected QMP session. `log` sees every line sent (`-> ...`) and
/// received (`<- ...`).
pub struct Client<L: FnMut(String)> {
    stream: UnixStream,
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no line end (a long line is
    /// scanned once, not once per read).
    scanned: usize,
    /// Events read while waiting for a reply, for a later wait.
    events: Vec<Message>,
    /// Every event read, with when it was read.
    seen: Vec<(Instant, String, Value)>,
    /// How long a reply or a `DEVICE_DELETED` event may take.
    timeout: Duration,
    /// The `return` member of the last reply read.
    returned: Value,
    log: L,
}

impl<L: FnMut(String)> Client<L> {
    /// Connects to `path`, retrying while nothing listens there yet,
    /// until `deadline` or until `give_up()` says the run is over.
    pub fn connect(
        path: &Path,
        deadline: Instant,
        give_up: impl Fn() -> bool,
        log: L,
    ) -> Result<Self, QmpError> {
        let name = path.display();
        loop {
            match UnixStream::connect(path) {
                Ok(stream) => {
                    return Self::from_stream(stream, log)
                        .map_err(|e| QmpError::during(format!("socket {name}"), QmpError::Io(e)))
                }
                Err(e) if give_up() => {
                    return Err(QmpError::during(
                        format!("connect {name}"),
                        QmpError::QemuEnded(e),
                    ))
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(QmpError::during(
                        format!("connect {name}"),
                        QmpError::GaveUp(e),
                    ))
                }
                Err(_) => thread::sleep(POLL),
            }
        }
    }

    /// A client on a connected stream (QEMU's end of a socket pair).
    pub fn from_stream(stream: UnixStream, log: L) -> io::Result<Self> {
        // A QEMU that stops reading must not block us forever.
        stream.set_write_timeout(Some(TIMEOUT))?;
        Ok(Client {
            stream,
            buf: Vec::new(),
            scanned: 0,
            events: Vec::new(),
            seen: Vec::new(),
            timeout: TIMEOUT,
            returned: Value::Null,
            log,
        })
    }

    /// How long each reply and `DEVICE_DELETED` event may take (default
    /// [`TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Adds a line of our own to the QMP log.
    pub(crate) fn note(&mut self, line: String) {
        (self.log)(line);
    }

    fn send(&mut self, line: &str) -> io::Result<()> {
        (self.log)(format!("-> {line}"));
        self.stream.write_all(format!("{line}\n").as_bytes())?;
        self.stream.flush()
    }

    /// The next line, classified; an error on timeout, end of file or a
    /// socket error.
    pub(crate) fn next(&mut self, deadline: Instant) -> Result<Message, QmpError> {
        // A peer that keeps talking must not keep us past the deadline.
        if Instant::now() >= deadline {
            return Err(QmpError::NoAnswer(self.timeout));
        }
        self.read_message(deadline)?
            .ok_or(QmpError::NoAnswer(self.timeout))
    }

    /// Events QEMU sent so far, in order, with when each was read.
    pub fn events_seen(&self) -> &[(Instant, String, Value)] {
        &self.seen
    }

    /// The next line, classified, or `None` at the deadline; an error on
    /// end of file or a socket error. Events are also recorded.
    pub(crate) fn read_message(&mut self, deadline: Instant) -> Result<Option<Message>, QmpError> {
        loop {
            let end = self.buf[self.scanned..].iter().position(|&b| b == b'\n');
            if let Some(i) = end.map(|i| self.scanned + i) {
                self.scanned = 0;
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let line = String::from_utf8_lossy(&line).trim().to_string();
                if line.is_empty() {
                    continue;
                }
                (self.log)(format!("<- {line}"));
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    return Ok(Some(Message::Other(line)));
                };
                let m = classify_value(&v, &line);
                if m == Message::Return {
                    self.returned = v.get("return").cloned().unwrap_or(Value::Null);
                }
                if let Message::Event { name, .. } = &m {
                    if self.seen.len() < MAX_EVENTS {
                        let data = v.get("data").cloned().unwrap_or(Value::Null);
                        self.seen.push((Instant::now(), name.clone(), data));
                    }
                }
                return Ok(Some(m));
            }
            self.scanned = self.buf.len();
            if self.buf.len() > MAX_LINE {
                self.buf.clear();
                self.scanned = 0;
                return Err(QmpError::LineTooLong);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(QmpError::Io)?;
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(QmpError::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(QmpError::Io(e)),
            }
        }
    }

    /// Reads the greeting and negotiates command mode.
    pub fn handshake(&mut self) -> Result<(), QmpError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.next(deadline) {
                Ok(Message::Greeting) => break,
                Ok(_) => {}
                Err(e) => return Err(QmpError::during("greeting", e)),
            }
        }
        self.execute("qmp_capabilities", &qmp_capabilities())
    }

    /// Sends one command and waits for its reply. `what` names it in the
    /// error, e.g. `device_add rng1`.
    pub fn execute(&mut self, what: &str, line: &str) -> Result<(), QmpError> {
        let deadline = Instant::now() + self.timeout;
        self.send(line)
            .map_err(|e| QmpError::during(what, QmpError::Io(e)))?;
        loop {
            match self.next(deadline) {
                Ok(Message::Return) => return Ok(()),
                Ok(Message::Error { class, desc }) => {
                    return Err(QmpError::during(what, QmpError::Refused { class, desc }))
                }
                Ok(ev @ Message::Event { .. }) if self.events.len() < MAX_EVENTS => {
                    self.events.push(ev)
                }
                Ok(_) => {}
                Err(e) => return Err(QmpError::during(what, e)),
            }
        }
    }

    /// Sends one command and returns its reply's `return` member (e.g.
    /// `query-balloon`'s `{"actual": N}`).
    pub fn query(&mut self, what: &str, line: &str) -> Result<Value, QmpError> {
        self.execute(what, line)?;
        Ok(std::mem::take(&mut self.returned))
    }

    /// Waits for `DEVICE_DELETED` naming device `id` (it may have come
    /// already, while we waited for the reply to `device_del`).
    ///
    /// QEMU sends that event when the device is finalized, which can be
    /// after the guest has seen the device go and finished: QEMU ending
    /// (the connection closing) meanwhile is [`Deleted::QemuEnded`], not
    /// an error. A QEMU that goes on running without the event is one.
    pub fn wait_deleted(&mut self, id: &str) -> Result<Deleted, QmpError> {
        let is_it = |m: &Message| {
            matches!(m, Message::Event { name, device: Some(d) }
                if name == "DEVICE_DELETED" && d == id)
        };
        if let Some(i) = self.events.iter().position(is_it) {
            self.events.remove(i);
            return Ok(Deleted::Seen);
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.next(deadline) {
                Ok(m) if is_it(&m) => return Ok(Deleted::Seen),
                Ok(_) => {}
                Err(QmpError::Closed) => return Ok(Deleted::QemuEnded),
                Err(e) => {
                    return Err(QmpError::during(
                        format!("device_del {id}: waiting for DEVICE_DELETED"),
                        e,
                    ))
                }
            }
        }
    }
}

/// How a wait for `DEVICE_DELETED` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Seen,
    /// QEMU closed the connection (it exited) before sending the event.
    QemuEnded,
}

/// QEMU's QMP connection: one end of a socket pair, the other inherited
/// by QEMU (`-chardev socket,fd=N`). It has no name, so no other process
/// can reach it, nothing is created on disk, and it is gone with the two
/// processes however they end.
pub(crate) struct QmpSocket {
    ours: UnixStream,
    theirs: OwnedFd,
}

/// The QEMU id of the chardev that carries QMP.
const CHARDEV: &str = "zvtest-qmp";

impl QmpSocket {
    /// A connected pair, both ends close-on-exec: the child clears that
    /// flag on its end only (see [`QmpSocket::child_fd`]), so QEMUs started
    /// by other threads meanwhile never inherit it.
    pub fn new() -> io::Result<Self> {
        // std makes both ends close-on-exec.
        let (ours, theirs) = UnixStream::pair()
            .map_err(|e| io::Error::new(e.kind(), format!("QMP socket pair: {e}")))?;
        Ok(QmpSocket {
            ours,
            theirs: theirs.into(),
        })
    }

    /// The descriptor QEMU inherits (the same number in the child).
    pub fn child_fd(&self) -> RawFd {
        self.theirs.as_raw_fd()
    }

    /// QEMU's options: a socket chardev on the inherited descriptor, and QMP on it.
    pub fn qemu_args(&self) -> [String; 4] {
        [
            "-chardev".into(),
            format!("socket,id={CHARDEV},fd={},server=off", self.child_fd()),
            "-mon".into(),
            format!("chardev={CHARDEV},mode=control"),
        ]
    }

    /// Our end, once QEMU has its own (ours closes the child's copy).
    pub fn into_stream(self) -> UnixStream {
        self.ours
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::socket;
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn commands() {
        assert_eq!(qmp_capabilities(), r#"{"execute": "qmp_capabilities"}"#);
        assert_eq!(
            device_add(
                "virtio-rng-ccw",
                "rng1",
                &[("devno".into(), "fe.0.0007".into())]
            ),
            r#"{"execute": "device_add", "arguments": {"driver": "virtio-rng-ccw", "id": "rng1", "devno": "fe.0.0007"}}"#
        );
        assert_eq!(
            device_del("a\"b\\c"),
            r#"{"execute": "device_del", "arguments": {"id": "a\"b\\c"}}"#
        );
        // Every command is one line, whatever the strings hold.
        assert!(!device_add("x\n", "y\r\n", &[("k\n".into(), "v\n".into())]).contains('\n'));
    }

    /// `query` gives the reply's `return` member, skipping events read
    /// meanwhile; a refusal is an error naming the command.
    #[test]
    fn query_returns_the_reply() {
        let sock = socket("query");
        let server = super::super::testing::fake_server(
            UnixListener::bind(&sock.path).unwrap(),
            vec![
                "{\"return\": {}}\r\n",
                "{\"event\": \"BALLOON_CHANGE\", \"data\": {\"actual\": 1}}\r\n{\"return\": {\"actual\": 268435456}}\r\n",
                "{\"error\": {\"class\": \"DeviceNotActive\", \"desc\": \"No balloon device has been activated\"}}\r\n",
            ],
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut c = Client::connect(&sock.path, deadline, || false, |_| {}).unwrap();
        c.handshake().unwrap();
        let v = c
            .query("query-balloon", &command("query-balloon", &[]))
            .unwrap();
        assert_eq!(v["actual"], 268_435_456u64);
        let e = c
            .query("query-balloon", &command("query-balloon", &[]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "QMP query-balloon: No balloon device has been activated"
        );
        server.join().unwrap();
    }

    #[test]
    fn classification() {
        assert_eq!(
            classify(r#"{"QMP": {"version": {}, "capabilities": ["oob"]}}"#),
            Message::Greeting
        );
        assert_eq!(classify("{\"return\": {}}\r"), Message::Return);
        assert_eq!(classify(r#"{"return": [], "id": 7}"#), Message::Return);
        assert_eq!(
            classify(
                r#"{"error": {"class": "GenericError", "desc": "Device fe.0.0007 already exists"}}"#
            ),
            Message::Error {
                class: "GenericError".into(),
                desc: "Device fe.0.0007 already exists".into()
            }
        );
        assert_eq!(
            classify(r#"{"error": {"class": "X"}}"#),
            Message::Error {
                class: "X".into(),
                desc: "(no description)".into()
            }
        );
        assert_eq!(
            classify(
                r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "DEVICE_DELETED", "data": {"device": "ccw-fe.0.0001", "path": "/machine/peripheral/ccw-fe.0.0001"}}"#
            ),
            Message::Event {
                name: "DEVICE_DELETED".into(),
                device: Some("ccw-fe.0.0001".into())
            }
        );
        // The virtio backend's own DEVICE_DELETED has a path only.
        assert_eq!(
            classify(
                r#"{"event": "DEVICE_DELETED", "data": {"path": "/machine/peripheral/x/virtio-backend"}}"#
            ),
            Message::Event {
                name: "DEVICE_DELETED".into(),
                device: None
            }
        );
        assert_eq!(
            classify(r#"{"event": "RESUME"}"#),
            Message::Event {
                name: "RESUME".into(),
                device: None
            }
        );
        assert_eq!(classify("garbage {"), Message::Other("garbage {".into()));
        assert_eq!(classify("[1]"), Message::Other("[1]".into()));
        assert_eq!(classify("[true]"), Message::Other("[true]".into()));
        assert_eq!(
            classify(r#"{"event": 5}"#),
            Message::Other(r#"{"event": 5}"#.into())
        );
    }

    /// Commands are one line of JSON whatever their strings hold, with
    /// control characters, DEL and the Unicode line separators escaped;
    /// serde_json reads them back as they were.
    #[test]
    fn command_strings_are_escaped() {
        for text in [
            "",
            "a\"b",
            "\\\\",
            "\u{0}\u{1}\u{1f} \u{7f}",
            "tab\tnl\ncr\r\u{8}\u{c}",
            "😀 ü \u{2028}\u{2029}",
        ] {
            let line = device_del(text);
            assert!(
                !line.contains(['\n', '\r', '\u{7f}', '\u{2028}', '\u{2029}']),
                "{line}"
            );
            let v: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["arguments"]["id"], text, "{line}");
        }
        assert_eq!(
            device_del("\u{1}\u{7f}\u{2028}\t"),
            r#"{"execute": "device_del", "arguments": {"id": "\u0001\u007f\u2028\t"}}"#
        );
        assert_eq!(
            balloon(67_108_864),
            r#"{"execute": "balloon", "arguments": {"value": 67108864}}"#
        );
        assert_eq!(
            command("x", &[("k\"", "v\n")]),
            r#"{"execute": "x", "arguments": {"k\"": "v\n"}}"#
        );
    }

    /// What is not JSON, or JSON of another shape, is only logged: it
    /// never answers a command. Nesting deeper than serde_json's 128
    /// levels is refused at once.
    #[test]
    fn malformed_lines_are_other() {
        for bad in [
            "",
            "{",
            "{\"return\"}",
            "{\"return\": }",
            "{\"return\": {},}",
            "{\"return\": 01}",
            "{\"return\": 1e400}",
            "{\"return\": \"\\ud800\"}",
            "{\"return\": \"\\u+041\"}",
            "{\"return\": {}} {}",
            "{\"error\": \"ctl \u{1} char\"}",
            "[{\"return\": {}}]",
            "null",
            "\"QMP\"",
        ] {
            assert!(
                matches!(classify(bad), Message::Other(_)),
                "{bad:?}: {:?}",
                classify(bad)
            );
        }
        for open in ["[", "{\"return\":", "[{\"QMP\":"] {
            let bomb = open.repeat(1_000_000);
            let t = Instant::now();
            assert!(matches!(classify(&bomb), Message::Other(_)));
            assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        }
        let deep = |n: usize| format!("{{\"return\": {}{}}}", "[".repeat(n), "]".repeat(n));
        assert_eq!(classify(&deep(100)), Message::Return);
        assert!(matches!(classify(&deep(200)), Message::Other(_)));
        // Members of any form count: QMP readers take them.
        assert_eq!(classify(r#"{"return": null}"#), Message::Return);
        assert_eq!(
            classify(r#"{"error": 5}"#),
            Message::Error {
                class: String::new(),
                desc: "(no description)".into()
            }
        );
    }

    /// The texts a verdict shows, as they were when errors were strings.
    #[test]
    fn error_texts() {
        let refused = QmpError::during(
            "device_add ccw-fe.0.0007",
            QmpError::Refused {
                class: "GenericError".into(),
                desc: "Device fe.0.0007 already exists".into(),
            },
        );
        assert_eq!(
            refused.to_string(),
            "QMP device_add ccw-fe.0.0007: Device fe.0.0007 already exists"
        );
        assert!(!refused.ends_connection() && !refused.is_closed());
        assert!(matches!(
            refused.cause(),
            QmpError::Refused { class, .. } if class == "GenericError"
        ));
        let closed = QmpError::during("greeting", QmpError::Closed);
        assert_eq!(
            closed.to_string(),
            "QMP greeting: QEMU closed the connection"
        );
        assert!(closed.is_closed() && closed.ends_connection());
        let waiting = QmpError::during(
            "device_del a: waiting for DEVICE_DELETED",
            QmpError::NoAnswer(Duration::from_secs(10)),
        );
        assert_eq!(
            waiting.to_string(),
            "QMP device_del a: waiting for DEVICE_DELETED: no answer within 10 s"
        );
        assert!(waiting.ends_connection() && !waiting.is_closed());
        let long = QmpError::during("events", QmpError::LineTooLong);
        assert_eq!(
            long.to_string(),
            "QMP events: a line longer than 1048576 bytes"
        );
        assert!(!long.ends_connection());
        let io = QmpError::during("socket", QmpError::Io(io::Error::other("broken")));
        assert_eq!(io.to_string(), "QMP socket: broken");
    }

    /// A line past [`MAX_LINE`] without an end is refused, and the
    /// client does not keep it.
    #[test]
    fn an_endless_line_is_refused() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let talk = thread::spawn(move || {
            let chunk = vec![b'x'; 1 << 16];
            for _ in 0..(MAX_LINE >> 16) + 2 {
                if theirs.write_all(&chunk).is_err() {
                    break;
                }
            }
            theirs
        });
        let mut client = Client::from_stream(ours, |_| {}).unwrap();
        let err = client.next(Instant::now() + TIMEOUT).unwrap_err();
        assert!(matches!(err, QmpError::LineTooLong), "{err}");
        assert!(client.buf.len() <= MAX_LINE);
        // Our end closed, the writer stops.
        drop(client);
        drop(talk.join().unwrap());
    }

    #[test]
    fn connect_gives_up_when_qemu_is_gone() {
        let sock = socket("nobody");
        let path = &sock.path;
        let t = Instant::now();
        let err = Client::connect(path, Instant::now() + TIMEOUT, || true, |_| {})
            .err()
            .unwrap();
        assert!(err.to_string().contains("QEMU ended first"), "{err}");
        assert!(err.ends_connection());
        assert!(t.elapsed() < Duration::from_secs(1));
        let err = Client::connect(path, Instant::now(), || false, |_| {})
            .err()
            .unwrap();
        assert!(err.to_string().contains("gave up"), "{err}");
    }

    #[test]
    fn silent_server_times_out() {
        let sock = socket("silent");
        let path = sock.path.clone();
        let listener = UnixListener::bind(&path).unwrap();
        let hold = thread::spawn(move || {
            let (c, _) = listener.accept().unwrap();
            thread::sleep(Duration::from_millis(300));
            drop(c);
        });
        let mut client =
            Client::connect(&path, Instant::now() + TIMEOUT, || false, |_| {}).unwrap();
        let err = client
            .next(Instant::now() + Duration::from_millis(50))
            .unwrap_err();
        assert!(err.to_string().contains("no answer"), "{err}");
        hold.join().unwrap();
    }

    #[test]
    fn the_socket_pair_has_no_name_and_one_inheritable_end() {
        let pair = QmpSocket::new().unwrap();
        let fd = pair.child_fd();
        assert_eq!(
            pair.qemu_args(),
            [
                "-chardev".to_string(),
                format!("socket,id=zvtest-qmp,fd={fd},server=off"),
                "-mon".into(),
                "chardev=zvtest-qmp,mode=control".into(),
            ]
        );
        // Both ends are close-on-exec until the child clears its own.
        // SAFETY: F_GETFD only reads the descriptor's flags.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        // QEMU's end, as QEMU would use it.
        // SAFETY: the duplicate is a new descriptor we own.
        let theirs = unsafe { <UnixStream as std::os::fd::FromRawFd>::from_raw_fd(libc::dup(fd)) };
        let mut ours = Client::from_stream(pair.into_stream(), |_| {}).unwrap();
        let mut w = theirs.try_clone().unwrap();
        writeln!(
            w,
            "{{\"QMP\": {{\"version\": {{}}, \"capabilities\": []}}}}"
        )
        .unwrap();
        writeln!(w, "{{\"return\": {{}}}}").unwrap();
        assert!(matches!(ours.handshake(), Ok(())));
        let mut sent = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&theirs), &mut sent).unwrap();
        assert_eq!(sent.trim(), r#"{"execute": "qmp_capabilities"}"#);
        drop((w, theirs));
        let err = ours.next(Instant::now() + TIMEOUT).unwrap_err();
        assert!(err.is_closed(), "{err}");
        assert_eq!(err.to_string(), "QEMU closed the connection");
    }

    #[test]
    fn a_chatty_server_cannot_keep_us_past_the_deadline() {
        // Lines that are never the reply, as fast as we read them.
        let sock = socket("chatty");
        let path = sock.path.clone();
        let listener = UnixListener::bind(&path).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let talk = thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            let line = b"{\"event\": \"X\"}\n".repeat(64);
            while !flag.load(Ordering::Relaxed) && c.write_all(&line).is_ok() {}
        });
        let mut client = Client::connect(&path, Instant::now() + TIMEOUT, || false, |_| {})
            .unwrap()
            .timeout(Duration::from_millis(200));
        let t = Instant::now();
        let err = client.execute("query-status", "{}").unwrap_err();
        assert_eq!(err.to_string(), "QMP query-status: no answer within 0.2 s");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert!(client.events_seen().len() <= MAX_EVENTS);
        stop.store(true, Ordering::Relaxed);
        drop(client);
        talk.join().unwrap();
    }
}
