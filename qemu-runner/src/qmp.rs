//! QMP, QEMU's monitor protocol, for hot plug, commands on console lines and
//! events: the few commands we build, a tolerant reader for what comes
//! back, and the job that performs a scenario's hot-plug steps once the
//! firmware says it is ready, sends its other commands when their console
//! lines appear, and, when asked, records QEMU's events until it ends.
//!
//! QEMU talks QMP over one end of a socket pair it inherits
//! ([`QmpSocket`]: nothing on disk that a killed runner could leave behind,
//! nothing another process could connect to). The runner does the
//! `qmp_capabilities` handshake while the guest boots. The console thread tells the job the first appearance of
//! each line it waits for. On [`READY_LINE`] the job sends `device_add` /
//! `device_del` in order (after each `device_del` it waits for the
//! `DEVICE_DELETED` event of that device); on the line of a
//! [`LineCommand`] it sends that command, once. Every QMP error and every
//! timeout becomes one failure reason; so does a line that never appears.

use crate::json::{self, Value};
use crate::scenario::{HotplugStep, LineCommand};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The console line after which the hot-plug steps are performed.
pub const READY_LINE: &str = "# zvtest: hotplug ready";
/// Prefix of the QMP traffic in the console log.
pub const LOG_PREFIX: &str = "[qmp] ";
/// For connecting, for each reply, and for each `DEVICE_DELETED` event
/// (replies and events: unless [`Client::timeout`] says otherwise).
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// QMP lines longer than this are cut (QEMU's are a few hundred bytes).
const MAX_LINE: usize = 1 << 20;
/// Events kept per connection; a QEMU sending more is not one we test.
const MAX_EVENTS: usize = 10_000;
const POLL: Duration = Duration::from_millis(10);

/// `{"execute": NAME}` or `{"execute": NAME, "arguments": {...}}`, string
/// arguments only (QEMU converts them for `device_add` properties).
pub fn command(execute: &str, arguments: &[(&str, &str)]) -> String {
    if arguments.is_empty() {
        format!("{{\"execute\": {}}}", json::string(execute))
    } else {
        format!(
            "{{\"execute\": {}, \"arguments\": {}}}",
            json::string(execute),
            json::string_object(arguments.iter().copied())
        )
    }
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

/// Tolerant: never fails; unknown or malformed lines become [`Message::Other`].
pub fn classify(line: &str) -> Message {
    let line = line.trim();
    let Ok(v) = json::parse(line) else {
        return Message::Other(line.to_string());
    };
    classify_value(&v, line)
}

fn classify_value(v: &Value, line: &str) -> Message {
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

/// A connected QMP session. `log` sees every line sent (`-> ...`) and
/// received (`<- ...`).
pub struct Client<L: FnMut(String)> {
    stream: UnixStream,
    buf: Vec<u8>,
    /// Events read while waiting for a reply, for a later wait.
    events: Vec<Message>,
    /// Every event read, with when it was read.
    seen: Vec<(Instant, String, Value)>,
    /// How long a reply or a `DEVICE_DELETED` event may take.
    timeout: Duration,
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
    ) -> Result<Self, String> {
        let name = path.display();
        loop {
            match UnixStream::connect(path) {
                Ok(stream) => {
                    return Self::from_stream(stream, log)
                        .map_err(|e| format!("QMP socket {name}: {e}"))
                }
                Err(e) if give_up() => {
                    return Err(format!("QMP connect {name}: {e} (QEMU ended first)"))
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!(
                        "QMP connect {name}: {e} (gave up after {} s)",
                        TIMEOUT.as_secs()
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
            events: Vec::new(),
            seen: Vec::new(),
            timeout: TIMEOUT,
            log,
        })
    }

    /// How long each reply and `DEVICE_DELETED` event may take (default
    /// [`TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn send(&mut self, line: &str) -> io::Result<()> {
        (self.log)(format!("-> {line}"));
        self.stream.write_all(format!("{line}\n").as_bytes())?;
        self.stream.flush()
    }

    /// The next line, classified; `Err` on timeout, end of file or a
    /// socket error (as text for the verdict).
    fn next(&mut self, deadline: Instant) -> Result<Message, String> {
        // A peer that keeps talking must not keep us past the deadline.
        if Instant::now() >= deadline {
            return Err(format!("no answer within {} s", self.timeout.as_secs_f64()));
        }
        self.read_message(deadline)?
            .ok_or_else(|| format!("no answer within {} s", self.timeout.as_secs_f64()))
    }

    /// Events QEMU sent so far, in order, with when each was read.
    pub fn events_seen(&self) -> &[(Instant, String, Value)] {
        &self.seen
    }

    /// The next line, classified, or `None` at the deadline; `Err` on end
    /// of file or a socket error. Events are also recorded.
    fn read_message(&mut self, deadline: Instant) -> Result<Option<Message>, String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let line = String::from_utf8_lossy(&line).trim().to_string();
                if line.is_empty() {
                    continue;
                }
                (self.log)(format!("<- {line}"));
                let Ok(v) = json::parse(&line) else {
                    return Ok(Some(Message::Other(line)));
                };
                let m = classify_value(&v, &line);
                if let Message::Event { name, .. } = &m {
                    if self.seen.len() < MAX_EVENTS {
                        let data = v.get("data").cloned().unwrap_or(Value::Null);
                        self.seen.push((Instant::now(), name.clone(), data));
                    }
                }
                return Ok(Some(m));
            }
            if self.buf.len() > MAX_LINE {
                self.buf.clear();
                return Err(format!("a line longer than {MAX_LINE} bytes"));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(CLOSED.into()),
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
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Reads the greeting and negotiates command mode.
    pub fn handshake(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.next(deadline) {
                Ok(Message::Greeting) => break,
                Ok(_) => {}
                Err(e) => return Err(format!("QMP greeting: {e}")),
            }
        }
        self.execute("qmp_capabilities", &qmp_capabilities())
    }

    /// Sends one command and waits for its reply. `what` names it in the
    /// error, e.g. `device_add rng1`.
    pub fn execute(&mut self, what: &str, line: &str) -> Result<(), String> {
        let deadline = Instant::now() + self.timeout;
        self.send(line).map_err(|e| format!("QMP {what}: {e}"))?;
        loop {
            match self.next(deadline) {
                Ok(Message::Return) => return Ok(()),
                Ok(Message::Error { desc, .. }) => return Err(format!("QMP {what}: {desc}")),
                Ok(ev @ Message::Event { .. }) if self.events.len() < MAX_EVENTS => {
                    self.events.push(ev)
                }
                Ok(_) => {}
                Err(e) => return Err(format!("QMP {what}: {e}")),
            }
        }
    }

    /// Waits for `DEVICE_DELETED` naming device `id` (it may have come
    /// already, while we waited for the reply to `device_del`).
    ///
    /// QEMU sends that event when the device is finalized, which can be
    /// after the guest has seen the device go and finished: QEMU ending
    /// (the connection closing) meanwhile is [`Deleted::QemuEnded`], not
    /// an error. A QEMU that goes on running without the event is one.
    pub fn wait_deleted(&mut self, id: &str) -> Result<Deleted, String> {
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
                Err(e) if e == CLOSED => return Ok(Deleted::QemuEnded),
                Err(e) => {
                    return Err(format!(
                        "QMP device_del {id}: waiting for DEVICE_DELETED: {e}"
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

const CLOSED: &str = "QEMU closed the connection";

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

/// What the QMP thread hands back.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Failure reasons for the verdict.
    pub errors: Vec<String>,
    /// Every hot-plug step was sent and answered without error.
    pub done: bool,
    /// Every line command was sent on its line and answered without error.
    pub commands_done: bool,
    /// Every event QEMU sent while we were connected.
    pub events: Vec<QmpEvent>,
}

/// What the QMP thread does besides connecting.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// Hot-plug steps, performed once [`READY_LINE`] comes.
    pub steps: Vec<HotplugStep>,
    /// Commands, each sent once its line comes.
    pub commands: Vec<LineCommand>,
    /// After the steps and commands (if any), keep reading QEMU's events
    /// until it ends.
    pub watch: bool,
    /// QEMU's start, for [`QmpEvent::after`].
    pub start: Instant,
    /// How long each reply and `DEVICE_DELETED` event may take.
    pub timeout: Duration,
}

impl Job {
    /// The console lines the job waits for, each once: [`READY_LINE`] for
    /// hot-plug steps, then the lines of the commands (trimmed).
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        if !self.steps.is_empty() {
            lines.push(READY_LINE.into());
        }
        for c in &self.commands {
            let line = c.line.trim();
            if !lines.iter().any(|l| l == line) {
                lines.push(line.into());
            }
        }
        lines
    }
}

/// Starts the QMP job: connect and handshake at once; then, for each line
/// from `lines` (the first appearance of one of [`Job::lines`], trimmed),
/// the hot-plug steps and commands it triggers; when watching, then read
/// events until QEMU closes the connection. `ended` is set (and `lines`'
/// sender dropped) when QEMU is gone; `log` receives the QMP traffic.
pub(crate) fn spawn(
    socket: UnixStream,
    job: Job,
    lines: Receiver<String>,
    ended: Arc<AtomicBool>,
    log: Sender<String>,
) -> io::Result<thread::JoinHandle<Report>> {
    thread::Builder::new()
        .name("qmp".into())
        .spawn(move || perform(socket, &job, &lines, &ended, log))
}

/// How long one read waits while only events are awaited.
const LISTEN_POLL: Duration = Duration::from_millis(100);

fn perform(
    socket: UnixStream,
    job: &Job,
    lines: &Receiver<String>,
    ended: &AtomicBool,
    log: Sender<String>,
) -> Report {
    let mut report = Report::default();
    let sink = move |line: String| {
        let _ = log.send(line);
    };
    let watch_only = job.steps.is_empty() && job.commands.is_empty();
    let client = match Client::from_stream(socket, sink) {
        Ok(c) => c,
        Err(e) => {
            report.errors.push(format!("QMP socket: {e}"));
            return report;
        }
    };
    let mut client = client.timeout(job.timeout);
    if let Err(e) = client.handshake() {
        // Watching only: a QEMU that ended before it spoke QMP sent no
        // events, and that is for the caller to judge.
        if !(watch_only && e.contains(CLOSED)) {
            report.errors.push(e);
        }
        return report;
    }
    if !watch_only {
        perform_on_lines(&mut client, job, lines, &mut report);
    }
    if job.watch {
        listen(&mut client, ended, &mut report.errors);
    }
    report.events = client
        .events_seen()
        .iter()
        .map(|(at, name, data)| QmpEvent {
            name: name.clone(),
            data: data.clone(),
            after: at.saturating_duration_since(job.start),
        })
        .collect();
    report
}

/// Reads (and so records) events until QEMU closes the connection.
fn listen<L: FnMut(String)>(client: &mut Client<L>, ended: &AtomicBool, errors: &mut Vec<String>) {
    loop {
        match client.read_message(Instant::now() + LISTEN_POLL) {
            Ok(Some(_)) => {}
            // QEMU is gone and nothing more came: the socket is only
            // held open by someone else.
            Ok(None) if ended.load(Ordering::Relaxed) => return,
            Ok(None) => {}
            Err(e) if e == CLOSED => return,
            Err(e) => {
                errors.push(format!("QMP events: {e}"));
                return;
            }
        }
    }
}

/// After this error the connection is of no more use: nothing more is sent.
fn is_dead(error: &str) -> bool {
    error.contains(CLOSED) || error.contains("no answer") || error.contains("QEMU ended")
}

/// Performs the hot-plug steps on [`READY_LINE`] and each command on its
/// line, as `lines` brings them, until all are done or QEMU is gone; sets
/// `report.done` and `report.commands_done`.
fn perform_on_lines<L: FnMut(String)>(
    client: &mut Client<L>,
    job: &Job,
    lines: &Receiver<String>,
    report: &mut Report,
) {
    let mut steps_pending = !job.steps.is_empty();
    let mut pending = vec![true; job.commands.len()];
    let mut commands_failed = false;
    let mut dead = false;
    while !dead && (steps_pending || pending.contains(&true)) {
        let line = match lines.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => continue,
            // QEMU is gone: what is still pending never came.
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if steps_pending && line == READY_LINE {
            steps_pending = false;
            report.done = perform_steps(client, &job.steps, &mut report.errors);
            dead = report.errors.last().is_some_and(|e| is_dead(e));
        }
        for (c, pending) in job.commands.iter().zip(pending.iter_mut()) {
            if dead || !*pending || c.line.trim() != line {
                continue;
            }
            *pending = false;
            if let Err(e) = client.execute(&c.describe(), &c.wire()) {
                commands_failed = true;
                dead = is_dead(&e);
                report.errors.push(e);
            }
        }
    }
    if steps_pending {
        let why = if dead {
            "the QMP connection failed first".to_string()
        } else {
            format!("the console never showed '{READY_LINE}'")
        };
        report.errors.push(format!(
            "hot plug not performed: {why} ({} left undone)",
            steps_text(job.steps.len())
        ));
    }
    for (c, _) in job.commands.iter().zip(&pending).filter(|(_, p)| **p) {
        commands_failed = true;
        report.errors.push(if dead {
            format!("QMP {} not sent: the QMP connection failed first", c.wire())
        } else {
            format!(
                "QMP {} not sent: the console never showed '{}'",
                c.wire(),
                c.line.trim()
            )
        });
    }
    report.commands_done = !job.commands.is_empty() && !commands_failed;
}

/// Performs the steps; true if all went well.
fn perform_steps<L: FnMut(String)>(
    client: &mut Client<L>,
    steps: &[HotplugStep],
    errors: &mut Vec<String>,
) -> bool {
    let mut failed = false;
    for (i, step) in steps.iter().enumerate() {
        let result = match step {
            HotplugStep::Add(dev) => client.execute(
                &format!("device_add {}", dev.id),
                &device_add(&dev.model, &dev.id, &dev.qmp_properties()),
            ),
            HotplugStep::Remove { id } => client
                .execute(&format!("device_del {id}"), &device_del(id))
                .and_then(|()| client.wait_deleted(id))
                .and_then(|deleted| {
                    let left = steps.len() - i - 1;
                    match deleted {
                        Deleted::Seen => Ok(()),
                        Deleted::QemuEnded if left == 0 => {
                            (client.log)(format!(
                                "QEMU ended before DEVICE_DELETED of {id} (not an error: \
                                 nothing was left to do)"
                            ));
                            Ok(())
                        }
                        Deleted::QemuEnded => Err(format!(
                            "hot plug: QEMU ended while waiting for DEVICE_DELETED of {id}, \
                             with {} left undone",
                            steps_text(left)
                        )),
                    }
                }),
        };
        if let Err(e) = result {
            failed = true;
            // After a dead connection the rest cannot be sent either.
            let dead = is_dead(&e);
            errors.push(e);
            if dead {
                break;
            }
        }
    }
    !failed
}

fn steps_text(n: usize) -> String {
    if n == 1 {
        "1 step".into()
    } else {
        format!("{n} steps")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{BusId, CcwDevice};
    use std::fs;
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;
    use std::sync::mpsc;

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
        assert_eq!(
            classify(r#"{"event": 5}"#),
            Message::Other(r#"{"event": 5}"#.into())
        );
    }

    const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": []}}"#;

    /// A scripted QMP server: for each line it receives, the next entry of
    /// `replies` is written (several lines allowed). Returns what it got.
    fn fake_server(
        listener: UnixListener,
        replies: Vec<&'static str>,
    ) -> thread::JoinHandle<Vec<String>> {
        thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut w = conn.try_clone().unwrap();
            writeln!(w, "{GREETING}\r").unwrap();
            let mut got = Vec::new();
            let mut lines = BufReader::new(conn).lines();
            for reply in replies {
                let Some(Ok(line)) = lines.next() else { break };
                got.push(line);
                if !reply.is_empty() {
                    write!(w, "{reply}").unwrap();
                }
            }
            got
        })
    }

    /// A socket path in a directory of its own, removed on drop.
    struct TestSocket {
        dir: PathBuf,
        path: PathBuf,
    }

    impl Drop for TestSocket {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    fn socket(test: &str) -> TestSocket {
        // Short: a Unix socket path has at most 107 bytes.
        let dir =
            std::env::temp_dir().join(format!("zvtest-qmp-unit-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        TestSocket { dir, path }
    }

    /// A stream to the fake server listening at `path` (QEMU's end of the
    /// pair, in the runner).
    fn addr(path: &Path) -> UnixStream {
        UnixStream::connect(path).unwrap()
    }

    fn rng(bus: &str) -> CcwDevice {
        CcwDevice::new("virtio-rng-ccw", bus.parse::<BusId>().unwrap(), "rng")
    }

    fn run_steps(
        test: &str,
        replies: Vec<&'static str>,
        steps: Vec<HotplugStep>,
    ) -> (Report, Vec<String>, Vec<String>) {
        let sock = socket(test);
        let path = sock.path.clone();
        let server = fake_server(UnixListener::bind(&path).unwrap(), replies);
        let (ready_tx, ready_rx) = mpsc::channel();
        let (log_tx, log_rx) = mpsc::channel();
        ready_tx.send(READY_LINE.to_string()).unwrap();
        let ended = Arc::new(AtomicBool::new(false));
        let job = Job {
            steps,
            commands: Vec::new(),
            watch: false,
            start: Instant::now(),
            timeout: TIMEOUT,
        };
        let report = spawn(addr(&path), job, ready_rx, ended, log_tx)
            .unwrap()
            .join()
            .unwrap();
        let got = server.join().unwrap();
        drop(sock);
        (report, got, log_rx.try_iter().collect())
    }

    #[test]
    fn steps_in_order_with_events_before_and_after_the_reply() {
        let steps = vec![
            HotplugStep::Add(rng("fe.0.0007")),
            HotplugStep::Remove {
                id: "ccw-fe.0.0001".into(),
            },
            HotplugStep::Remove {
                id: "ccw-fe.0.0002".into(),
            },
        ];
        let (report, got, log) = run_steps(
            "order",
            vec![
                "{\"return\": {}}\r\n",
                "{\"event\": \"RESUME\"}\r\n{\"return\": {}}\r\n",
                // Event for another device, the backend, then ours, then the reply.
                "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"other\"}}\r\n\
                 {\"event\": \"DEVICE_DELETED\", \"data\": {\"path\": \"/x/virtio-backend\"}}\r\n\
                 {\"return\": {}}\r\n\
                 {\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"ccw-fe.0.0001\"}}\r\n",
                // Our event first, then the reply.
                "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"ccw-fe.0.0002\"}}\r\n\
                 {\"return\": {}}\r\n",
            ],
            steps,
        );
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(report.done);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], qmp_capabilities());
        assert_eq!(
            got[1],
            r#"{"execute": "device_add", "arguments": {"driver": "virtio-rng-ccw", "id": "ccw-fe.0.0007", "devno": "fe.0.0007"}}"#
        );
        assert_eq!(got[2], device_del("ccw-fe.0.0001"));
        assert_eq!(got[3], device_del("ccw-fe.0.0002"));
        assert!(log.iter().any(|l| l.starts_with("<- {\"QMP\"")), "{log:?}");
        assert!(log.contains(&format!("-> {}", device_del("ccw-fe.0.0002"))));
    }

    #[test]
    fn qmp_errors_become_reasons_and_later_steps_still_run() {
        let steps = vec![
            HotplugStep::Add(rng("fe.0.0007")),
            HotplugStep::Remove { id: "gone".into() },
        ];
        let (report, got, _) = run_steps(
            "errors",
            vec![
                "{\"return\": {}}\n",
                "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Device fe.0.0007 already exists\"}}\n",
                "{\"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device 'gone' not found\"}}\n",
            ],
            steps,
        );
        assert_eq!(
            report.errors,
            [
                "QMP device_add ccw-fe.0.0007: Device fe.0.0007 already exists",
                "QMP device_del gone: Device 'gone' not found"
            ]
        );
        assert!(!report.done);
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn closed_connection_stops_the_steps() {
        let steps = vec![
            HotplugStep::Remove { id: "a".into() },
            HotplugStep::Remove { id: "b".into() },
        ];
        // The server answers the handshake and device_del, then hangs up
        // before DEVICE_DELETED.
        let (report, got, _) = run_steps(
            "closed",
            vec!["{\"return\": {}}\n", "{\"return\": {}}\n"],
            steps,
        );
        assert_eq!(
            report.errors,
            ["hot plug: QEMU ended while waiting for DEVICE_DELETED of a, with 1 step left undone"]
        );
        assert!(!report.done);
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn qemu_ending_before_the_last_deleted_event_is_no_error() {
        // QEMU sends DEVICE_DELETED when the device is finalized; the guest
        // may be done, and QEMU gone, before that.
        let steps = vec![
            HotplugStep::Add(rng("fe.0.0007")),
            HotplugStep::Remove { id: "a".into() },
        ];
        let (report, got, log) = run_steps(
            "ended",
            vec![
                "{\"return\": {}}\n",
                "{\"return\": {}}\n",
                "{\"return\": {}}\n",
            ],
            steps,
        );
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(report.done);
        assert_eq!(got.len(), 3);
        assert!(
            log.iter()
                .any(|l| l.starts_with("QEMU ended before DEVICE_DELETED of a")),
            "{log:?}"
        );
    }

    #[test]
    fn closed_before_a_reply_is_an_error() {
        let steps = vec![HotplugStep::Add(rng("fe.0.0007"))];
        // Handshake answered; device_add never is.
        let (report, _, _) = run_steps("closed-reply", vec!["{\"return\": {}}\n", ""], steps);
        assert_eq!(
            report.errors,
            ["QMP device_add ccw-fe.0.0007: QEMU closed the connection"]
        );
    }

    /// Runs a job of `steps` and `commands` (line, JSON) against a fake
    /// server; the console shows `lines` and then QEMU ends.
    fn run_job(
        test: &str,
        replies: Vec<&'static str>,
        steps: Vec<HotplugStep>,
        commands: &[(&str, &str)],
        lines: &[&str],
        timeout: Duration,
    ) -> (Report, Vec<String>) {
        let sock = socket(test);
        let path = sock.path.clone();
        let server = fake_server(UnixListener::bind(&path).unwrap(), replies);
        let (lines_tx, lines_rx) = mpsc::channel();
        let (log_tx, _log_rx) = mpsc::channel();
        let commands: Vec<LineCommand> = commands
            .iter()
            .map(|(line, command)| LineCommand {
                line: line.to_string(),
                command: command.to_string(),
            })
            .collect();
        let job = Job {
            steps,
            commands,
            watch: false,
            start: Instant::now(),
            timeout,
        };
        for l in lines {
            lines_tx.send(l.to_string()).unwrap();
        }
        drop(lines_tx);
        let report = spawn(
            addr(&path),
            job,
            lines_rx,
            Arc::new(AtomicBool::new(true)),
            log_tx,
        )
        .unwrap()
        .join()
        .unwrap();
        let got = server.join().unwrap();
        drop(sock);
        (report, got)
    }

    const QUERY: &str = r#"{"execute": "query-status"}"#;
    const BALLOON: &str = r#"{"execute": "balloon", "arguments": {"value": 67108864}}"#;
    const STOP: &str = r#"{"execute": "stop"}"#;

    #[test]
    fn line_commands_run_once_in_the_order_their_lines_come() {
        let (report, got) = run_job(
            "lines",
            vec![
                "{\"return\": {}}\n",
                "{\"return\": {}}\n",
                "{\"event\": \"RESUME\"}\n{\"return\": {\"running\": true}}\n",
                "{\"return\": {}, \"id\": 1}\n",
            ],
            Vec::new(),
            &[("# one", QUERY), ("# two", BALLOON), ("# one", STOP)],
            // A line seen twice triggers nothing more.
            &["# two", "# other", "# one", "# two", "# one"],
            TIMEOUT,
        );
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(report.commands_done);
        assert!(!report.done, "no hot-plug steps");
        assert_eq!(got, [&qmp_capabilities(), BALLOON, QUERY, STOP]);
        let names: Vec<&str> = report.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["RESUME"]);
    }

    #[test]
    fn line_command_errors_and_missing_lines_name_the_command() {
        let (report, got) = run_job(
            "line-errors",
            vec![
                "{\"return\": {}}\n",
                "{\"error\": {\"class\": \"DeviceNotActive\", \"desc\": \"No balloon device has been activated\"}}\n",
            ],
            Vec::new(),
            &[("# ready", BALLOON), ("# never", STOP)],
            &["# ready"],
            TIMEOUT,
        );
        assert_eq!(
            report.errors,
            [
                format!("QMP {BALLOON} on '# ready': No balloon device has been activated"),
                format!("QMP {STOP} not sent: the console never showed '# never'"),
            ]
        );
        assert!(!report.commands_done);
        assert_eq!(got, [&qmp_capabilities(), BALLOON]);
    }

    #[test]
    fn a_missing_reply_times_out_and_nothing_more_is_sent() {
        let t = Instant::now();
        let (report, got) = run_job(
            "line-timeout",
            // Nothing for balloon; the server then waits for a line that never comes.
            vec!["{\"return\": {}}\n", "", ""],
            vec![HotplugStep::Remove { id: "a".into() }],
            &[("# ready", BALLOON), ("# ready", STOP)],
            &["# ready", READY_LINE],
            Duration::from_millis(200),
        );
        assert_eq!(
            report.errors,
            [
                format!("QMP {BALLOON} on '# ready': no answer within 0.2 s"),
                "hot plug not performed: the QMP connection failed first (1 step left undone)"
                    .to_string(),
                format!("QMP {STOP} not sent: the QMP connection failed first"),
            ]
        );
        assert!(!report.commands_done && !report.done);
        assert_eq!(got, [&qmp_capabilities(), BALLOON]);
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn hotplug_steps_come_before_commands_on_the_ready_line() {
        let (report, got) = run_job(
            "ready-both",
            vec![
                "{\"return\": {}}\n",
                "{\"return\": {}}\n",
                "{\"return\": {}}\n",
            ],
            vec![HotplugStep::Add(rng("fe.0.0007"))],
            &[(READY_LINE, STOP)],
            &[READY_LINE],
            TIMEOUT,
        );
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(report.done && report.commands_done);
        assert_eq!(got.len(), 3);
        assert!(got[1].contains("device_add"), "{got:?}");
        assert_eq!(got[2], STOP);
    }

    #[test]
    fn job_lines_are_distinct_and_trimmed() {
        let cmd = |line: &str| LineCommand {
            line: line.into(),
            command: STOP.into(),
        };
        let mut job = Job {
            steps: Vec::new(),
            commands: vec![cmd(" # a "), cmd(READY_LINE), cmd("# a"), cmd("# b")],
            watch: false,
            start: Instant::now(),
            timeout: TIMEOUT,
        };
        assert_eq!(job.lines(), ["# a", READY_LINE, "# b"]);
        job.commands.clear();
        assert!(job.lines().is_empty());
        job.steps.push(HotplugStep::Remove { id: "a".into() });
        assert_eq!(job.lines(), [READY_LINE]);
    }

    #[test]
    fn watching_records_events_until_qemu_closes() {
        let sock = socket("watch");
        let path = sock.path.clone();
        let server = fake_server(
            UnixListener::bind(&path).unwrap(),
            vec![concat!(
                "{\"return\": {}}\r\n",
                "{\"event\": \"WATCHDOG\", \"data\": {\"action\": \"inject-nmi\"}}\r\n",
                "{\"event\": \"RESET\", \"timestamp\": {\"seconds\": 5}}\r\n",
            )],
        );
        let (_ready_tx, ready_rx) = mpsc::channel::<String>();
        let (log_tx, _log_rx) = mpsc::channel();
        let start = Instant::now();
        let job = Job {
            steps: Vec::new(),
            commands: Vec::new(),
            watch: true,
            start,
            timeout: TIMEOUT,
        };
        let report = spawn(
            addr(&path),
            job,
            ready_rx,
            Arc::new(AtomicBool::new(false)),
            log_tx,
        )
        .unwrap()
        .join()
        .unwrap();
        server.join().unwrap();
        assert_eq!(report.errors, Vec::<String>::new());
        let names: Vec<&str> = report.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["WATCHDOG", "RESET"]);
        assert_eq!(report.events[0].field("action"), Some("inject-nmi"));
        assert_eq!(report.events[1].data, Value::Null);
        assert!(report.events[0].after <= start.elapsed());
    }

    #[test]
    fn never_ready() {
        let sock = socket("never-ready");
        let path = sock.path.clone();
        let server = fake_server(
            UnixListener::bind(&path).unwrap(),
            vec!["{\"return\": {}}\n"],
        );
        let (ready_tx, ready_rx) = mpsc::channel::<String>();
        let (log_tx, _log_rx) = mpsc::channel();
        let ended = Arc::new(AtomicBool::new(false));
        let job = spawn(
            addr(&path),
            Job {
                steps: vec![HotplugStep::Remove { id: "a".into() }],
                commands: Vec::new(),
                watch: false,
                start: Instant::now(),
                timeout: TIMEOUT,
            },
            ready_rx,
            Arc::clone(&ended),
            log_tx,
        )
        .unwrap();
        thread::sleep(Duration::from_millis(100));
        ended.store(true, Ordering::Relaxed);
        drop(ready_tx);
        let report = job.join().unwrap();
        assert_eq!(report.errors.len(), 1);
        assert!(
            report.errors[0]
                .contains("never showed '# zvtest: hotplug ready' (1 step left undone)"),
            "{:?}",
            report.errors
        );
        assert_eq!(server.join().unwrap(), [qmp_capabilities()]);
    }

    #[test]
    fn connect_gives_up_when_qemu_is_gone() {
        let sock = socket("nobody");
        let path = &sock.path;
        let t = Instant::now();
        let err = Client::connect(path, Instant::now() + TIMEOUT, || true, |_| {})
            .err()
            .unwrap();
        assert!(err.contains("QEMU ended first"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(1));
        let err = Client::connect(path, Instant::now(), || false, |_| {})
            .err()
            .unwrap();
        assert!(err.contains("gave up"), "{err}");
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
        assert!(err.contains("no answer"), "{err}");
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
        assert_eq!(ours.handshake(), Ok(()));
        let mut sent = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&theirs), &mut sent).unwrap();
        assert_eq!(sent.trim(), r#"{"execute": "qmp_capabilities"}"#);
        drop((w, theirs));
        let err = ours.next(Instant::now() + TIMEOUT).unwrap_err();
        assert!(err.contains(CLOSED), "{err}");
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
        assert!(err.contains("no answer within 0.2 s"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert!(client.events_seen().len() <= MAX_EVENTS);
        stop.store(true, Ordering::Relaxed);
        drop(client);
        talk.join().unwrap();
    }
}
