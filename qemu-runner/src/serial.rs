//! The host end of a virtio-serial device: every port (virtserialport or
//! virtconsole) on a `-chardev socket` whose unix socket a runner thread
//! serves. As each round's stress marker of the firmware says where the
//! streams go on to (the last: `bytes=` times `stress=`), each port's
//! thread sends the port's seeded stream to the guest that far, in seeded
//! chunk sizes; it keeps what the guest sends; after QEMU exits
//! every byte is checked against the stream the firmware must have sent
//! (and, on the console, the emergency-write bytes after it). At the
//! firmware's close marker the thread closes its socket.
//!
//! ```
//! use qemu_runner::serial::{SerialPorts, Fault};
//! use qemu_runner::Scenario;
//!
//! // The emergency write on: QEMU 11 always offers it (no property).
//! let ports = SerialPorts::new("fe.0.0003")
//!     .max_ports(4)
//!     .emergency_write(true)
//!     .console(0, Some("zv.con"))
//!     .port(1, "zv.a")
//!     .port(2, "zv.b")
//!     .close(2)
//!     .fault(Fault::Flip { port: 1, offset: 100 });
//! let s = Scenario::new("serial").virtio_serial(ports);
//! assert!(s.command_line().contains("serial=fe.0.0003:max=4:emerg:close=2:c0=zv.con:p1=zv.a:p2=zv.b"));
//! ```

use crate::peers::{Peer, PeerContext, PeerEnd, PeerOutcome, PeerSpec};
use crate::scenario::Scenario;
use crate::version::QemuVersion;
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use zvtest_contract::checks::markers;
use zvtest_contract::cmdline::{self, Config};
use zvtest_contract::inventory::BusId;
use zvtest_contract::serial::{
    emergency_bytes, Chunks, Cutter, Dir, PortConfig, SerialConfig, Stream, PLUGGED_BYTES,
};

/// Something wrong a peer does on purpose, to prove a check can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Sends the byte at `offset` of `port`'s stream inverted.
    Flip { port: u32, offset: u64 },
    /// Leaves out `len` bytes of `port`'s stream from `offset`.
    Drop { port: u32, offset: u64, len: u64 },
    /// Closes `port`'s socket once `after` bytes came from the guest.
    CloseEarly { port: u32, after: u64 },
    /// Leaves `port`'s socket open at the firmware's close marker.
    KeepOpen { port: u32 },
    /// After the drop of [`SerialPorts::drop_and_reconnect`] the socket
    /// path is gone: QEMU's reconnects fail, the port stays closed.
    NoReconnect { port: u32 },
}

/// A virtio-serial-ccw device, its ports and the peer serving them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialPorts {
    pub config: SerialConfig,
    /// QEMU's `packed=on`: the device offers packed rings.
    pub packed: bool,
    pub faults: Vec<Fault>,
    /// The port whose peer drops its connection once this many bytes came
    /// from the guest, and takes QEMU's reconnect.
    pub drop: Option<(u32, u64)>,
    /// The chardev option that makes QEMU reconnect the dropped port's
    /// socket (QEMU 7.2: `reconnect=` in seconds; 9.2 on: `reconnect-ms=`,
    /// the only one 11.x takes).
    pub reconnect: String,
    /// Errors found while building (a malformed bus id, a bad name).
    pub errors: Vec<String>,
}

/// How long a socket operation may block before the thread looks at the
/// clock and its stop flag again.
const TICK: Duration = Duration::from_millis(50);
/// How long [`Peer::finish`] waits for the port threads to stop.
const STOP_WAIT: Duration = Duration::from_secs(5);

impl SerialPorts {
    /// A device at `bus` with QEMU's defaults (31 ports at most) and
    /// emergency write off.
    pub fn new(bus: &str) -> Self {
        let (bus, errors) = match bus.parse::<BusId>() {
            Ok(b) => (b, Vec::new()),
            Err(e) => (
                BusId {
                    cssid: 0,
                    ssid: 0,
                    devno: 0,
                },
                vec![e.to_string()],
            ),
        };
        SerialPorts {
            config: SerialConfig::new(bus),
            packed: false,
            faults: Vec::new(),
            drop: None,
            reconnect: "reconnect=1".into(),
            errors,
        }
    }

    /// QEMU's `max_ports` (MULTIPORT is offered above 1).
    pub fn max_ports(mut self, n: u32) -> Self {
        self.config.max_ports = n;
        self
    }

    /// QEMU's `emergency-write=on` (QEMU 11 has no such property and
    /// always offers the emergency write: see [`Scenario::virtio_serial`]).
    pub fn emergency_write(mut self, on: bool) -> Self {
        self.config.emergency = on;
        self
    }

    /// QEMU's `packed=on` (7.2, 10.0 and 11.1 have it): the device also
    /// offers packed rings, and `serial.stress` moves the streams there too.
    pub fn packed(mut self, on: bool) -> Self {
        self.packed = on;
        self
    }

    /// Bytes each port carries each way (over all of `serial.stress`'s
    /// rounds).
    pub fn bytes(mut self, n: u32) -> Self {
        self.config.bytes = n;
        self
    }

    /// The port whose socket closes at the firmware's close marker.
    pub fn close(mut self, port: u32) -> Self {
        self.config.close = Some(port);
        self
    }

    /// The peer of serial port `port` drops its connection once `after`
    /// bytes came from the guest (nothing after them kept: it stops
    /// sending, QEMU closes, see `drain_to_close`), and takes the
    /// connection QEMU makes again (its chardev reconnects); the firmware is told (`drop=`) to expect it, and says
    /// where both streams resume (the drop marker): this peer sends on
    /// from there and checks what comes against the stream from there.
    pub fn drop_and_reconnect(mut self, port: u32, after: u64) -> Self {
        self.config.drop = Some(port);
        self.drop = Some((port, after));
        self
    }

    fn add(mut self, id: u32, name: Option<&str>, console: bool) -> Self {
        if let Some(n) = name.filter(|n| !zvtest_contract::serial::valid_port_name(n)) {
            self.errors.push(format!("port {id}: bad name {n:?}"));
        }
        self.config.ports.push(PortConfig {
            id,
            name: name.map(String::from),
            console,
        });
        self.config.ports.sort_by_key(|p| p.id);
        self
    }

    /// A virtserialport `nr=id` with `name=`.
    pub fn port(self, id: u32, name: &str) -> Self {
        self.add(id, Some(name), false)
    }

    /// A virtconsole `nr=id`, with `name=` if given.
    pub fn console(self, id: u32, name: Option<&str>) -> Self {
        self.add(id, name, true)
    }

    /// Unplugs port `id` (`device_del`) at the firmware's unplug marker;
    /// `serial.hotplug` expects PORT_REMOVE for it.
    pub fn unplug(mut self, id: u32) -> Self {
        self.config.unplug = Some(id);
        self
    }

    /// Plugs a virtserialport `nr=id` with `name=` (`device_add`, its
    /// chardev on a socket served from boot) at the firmware's plug
    /// marker; `serial.hotplug` expects PORT_ADD, PORT_NAME and PORT_OPEN
    /// for it and writes there, which the peer checks.
    pub fn plug(mut self, id: u32, name: &str) -> Self {
        if !zvtest_contract::serial::valid_port_name(name) {
            self.errors.push(format!("port {id}: bad name {name:?}"));
        }
        self.config.plug = Some(PortConfig {
            id,
            name: Some(name.into()),
            console: false,
        });
        self
    }

    /// The QMP commands of the unplug and plug markers (line, command).
    fn hotplug_commands(&self) -> Vec<(String, String)> {
        let bus = self.config.bus;
        let mut v = Vec::new();
        if let Some(id) = self.config.unplug {
            v.push((
                format!("{} {bus} {id}", markers::SERIAL_UNPLUG),
                format!(
                    r#"{{"execute": "device_del", "arguments": {{"id": "{}-dev"}}}}"#,
                    self.chardev_id(id)
                ),
            ));
        }
        if let Some(p) = &self.config.plug {
            let chr = self.chardev_id(p.id);
            let name = p
                .name
                .as_ref()
                .map_or(String::new(), |n| format!(r#", "name": "{n}""#));
            v.push((
                format!("{} {bus} {}", markers::SERIAL_PLUG, p.id),
                format!(
                    r#"{{"execute": "device_add", "arguments": {{"driver": "virtserialport", "bus": "{}.0", "nr": {}, "chardev": "{chr}", "id": "{chr}-dev"{name}}}}}"#,
                    self.device_id(),
                    p.id
                ),
            ));
        }
        v
    }

    /// Test only: tells the firmware (`serial=...:corrupt=PORT@OFFSET`) to
    /// send the byte at `offset` of `port`'s stream inverted, proving on
    /// QEMU that this peer catches a wrong byte from the guest.
    pub fn corrupt(mut self, port: u32, offset: u64) -> Self {
        self.config.corrupt = Some((port, offset));
        self
    }

    /// Test only: tells the firmware (`serial=...:mute`) to ask for no
    /// used-buffer interrupts in `serial.stress`'s interrupt rounds while
    /// it waits for them, proving those rounds fail when none come.
    pub fn mute_interrupts(mut self) -> Self {
        self.config.mute = true;
        self
    }

    pub fn fault(mut self, f: Fault) -> Self {
        self.faults.push(f);
        self
    }

    /// The `serial=` word the firmware is told.
    pub fn word(&self) -> String {
        let cfg = Config {
            serial: vec![self.config.clone()],
            ..Config::default()
        };
        cmdline::words(&cfg).join(" ")
    }

    /// QEMU's id of the device.
    fn device_id(&self) -> String {
        crate::devices::CcwDevice::default_id(self.config.bus)
    }

    fn chardev_id(&self, port: u32) -> String {
        format!("{}-port{port}", self.device_id())
    }

    /// `port 1 (zv.a)`: how failures name a port.
    fn label(&self, p: &PortConfig) -> String {
        match &p.name {
            Some(n) => format!("port {} ({n})", p.id),
            None => format!("port {}", p.id),
        }
    }
}

impl Scenario {
    /// A virtio-serial-ccw device with `ports`, each served by the
    /// runner (see [`crate::serial`]), and `serial=` telling the firmware.
    /// Where the scenario's QEMU has no `emergency-write` property (11.x:
    /// the feature is always offered) the device is held to offering it.
    pub fn virtio_serial(self, mut ports: SerialPorts) -> Self {
        let property = has_emergency_property(&self.qemu, self.data_dir.as_deref());
        if !property {
            ports.config.emergency = true;
        }
        let mut s = self.ccw_device(
            "virtio-serial-ccw",
            &ports.config.bus.to_string(),
            "console",
        );
        s.errors.extend(ports.errors.iter().cloned());
        if SerialConfig::parse(&ports.config.item()).as_ref() != Some(&ports.config) {
            s.errors.push(format!(
                "virtio-serial {}: the ports do not make a valid serial= item ({})",
                ports.config.bus,
                ports.config.item()
            ));
        }
        if ports.drop.is_some() {
            // reconnect-ms= from 9.2 on (11.x has nothing else); a QEMU
            // whose version cannot be told keeps the older option.
            let ms = crate::version::detect(&s.qemu).is_ok_and(|v| v >= QemuVersion::new(9, 2));
            ports.reconnect = if ms {
                "reconnect-ms=100".into()
            } else {
                "reconnect=1".into()
            };
        }
        if let Some(dev) = s.ccw_devices.iter_mut().find(|d| d.bus == ports.config.bus) {
            dev.properties
                .push(("max_ports".into(), ports.config.max_ports.to_string()));
            if property {
                let on = if ports.config.emergency { "on" } else { "off" };
                dev.properties.push(("emergency-write".into(), on.into()));
            }
            if ports.packed {
                dev.properties.push(("packed".into(), "on".into()));
            }
        }
        for (line, command) in ports.hotplug_commands() {
            s = s.qmp_on_line(&line, &command);
        }
        let word = ports.word();
        s.append(word).peer(ports)
    }
}

/// Whether `qemu`'s virtio-serial-ccw has the `emergency-write` property
/// (7.2 and 10.0 do, default on; 11.1 has none and always offers the
/// feature). Asked once per binary; a QEMU that cannot be asked is taken
/// to have it (QEMU then names the problem when it starts).
fn has_emergency_property(qemu: &std::path::Path, data: Option<&std::path::Path>) -> bool {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, bool>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(&v) = map.get(qemu) {
        return v;
    }
    let mut cmd = std::process::Command::new(qemu);
    if let Some(d) = data {
        cmd.arg("-L").arg(d);
    }
    let out = cmd
        .args(["-machine", "s390-ccw-virtio", "-nodefaults", "-device"])
        .arg("virtio-serial-ccw,help")
        .stdin(std::process::Stdio::null())
        .output();
    let v = match out {
        Ok(o) if o.status.success() => {
            String::from_utf8_lossy(&o.stdout).contains("emergency-write=")
        }
        _ => true,
    };
    map.insert(qemu.to_path_buf(), v);
    v
}

/// What one port's thread saw.
#[derive(Debug, Default)]
struct PortLog {
    connected: bool,
    /// Bytes the guest sent.
    received: Vec<u8>,
    first_byte: Option<Instant>,
    last_byte: Option<Instant>,
    /// Bytes of the stream sent to the guest, and the writes.
    sent: u64,
    writes: u64,
    /// The socket was closed by us: at the marker, or early on purpose.
    closed: Option<String>,
    /// Dropped on purpose ([`SerialPorts::drop_and_reconnect`]): bytes
    /// received, bytes of the stream sent by then.
    dropped: Option<(u64, u64)>,
    /// Bytes QEMU wrote after the drop, until it closed: thrown away.
    discarded: u64,
    /// QEMU connected again after the drop.
    back: bool,
    /// Bytes the guest sent after the drop, on the new connection.
    resumed: Vec<u8>,
    /// Where the stream to the guest went on from after the drop.
    resent_from: Option<u64>,
    error: Option<String>,
}

struct PortRun {
    config: PortConfig,
    log: Arc<Mutex<PortLog>>,
    /// A handle to shut the socket down from outside the thread.
    socket: Arc<Mutex<Option<UnixStream>>>,
    thread: Option<JoinHandle<()>>,
}

struct Running {
    spec: SerialPorts,
    seed: u64,
    stop: Arc<AtomicBool>,
    ports: Vec<PortRun>,
    args: Vec<String>,
    /// Where the streams end so far, from the firmware's stress markers
    /// (one a round): the port threads send up to it.
    streams: Arc<(Mutex<Option<u64>>, Condvar)>,
    emergency_seen: bool,
    /// The firmware's plug marker came.
    plug_seen: bool,
    /// The firmware's drop marker: port, where its transmit stream goes
    /// on after the drop, where it expects the receive stream from.
    resume: Resume,
}

type Resume = Arc<(Mutex<Option<(u32, u64, u64)>>, Condvar)>;

impl PeerSpec for SerialPorts {
    fn name(&self) -> String {
        format!("serial {}", self.config.bus)
    }

    fn start(&self, ctx: &PeerContext) -> io::Result<Box<dyn Peer>> {
        let stop = Arc::new(AtomicBool::new(false));
        let streams = Arc::new((Mutex::new(None), Condvar::new()));
        let resume: Resume = Arc::new((Mutex::new(None), Condvar::new()));
        let mut ports = Vec::new();
        let mut args = Vec::new();
        // The ports at boot, then the one plugged later: its chardev is
        // there from the start (a device_add names an existing chardev),
        // its device comes over QMP at the firmware's plug marker.
        let at_boot = self.config.ports.iter().map(|p| (p, true));
        for (p, boot) in at_boot.chain(self.config.plug.iter().map(|p| (p, false))) {
            let path = ctx
                .dir
                .join(format!("s{:04x}-{}.sock", self.config.bus.devno, p.id));
            // A port that cannot start stops the threads already serving.
            let failed = |e: io::Error| {
                stop.store(true, Ordering::SeqCst);
                io::Error::new(e.kind(), format!("cannot bind {}: {e}", path.display()))
            };
            let listener = UnixListener::bind(&path).map_err(failed)?;
            listener.set_nonblocking(true).map_err(failed)?;
            let chr = self.chardev_id(p.id);
            let drop = self.drop.filter(|d| d.0 == p.id).map(|d| d.1);
            args.push("-chardev".into());
            args.push(format!(
                "socket,id={chr},path={}{}",
                path.to_string_lossy().replace(',', ",,"),
                if drop.is_some() {
                    format!(",{}", self.reconnect)
                } else {
                    String::new()
                }
            ));
            let model = if p.console {
                "virtconsole"
            } else {
                "virtserialport"
            };
            let mut dev = format!(
                "{model},bus={}.0,nr={},chardev={chr},id={chr}-dev",
                self.device_id(),
                p.id
            );
            if let Some(n) = &p.name {
                dev.push_str(&format!(",name={n}"));
            }
            if boot {
                args.push("-device".into());
                args.push(dev);
            }
            let log = Arc::new(Mutex::new(PortLog::default()));
            let socket = Arc::new(Mutex::new(None));
            let job = PortJob {
                listener,
                path,
                stream: Stream::new(ctx.seed, self.config.bus, p.id, Dir::Rx),
                chunks: Chunks::new(ctx.seed, self.config.bus, p.id, Cutter::HostWrite),
                streams: Arc::clone(&streams),
                // Only the ports serial.stress drives get a stream.
                sends: boot,
                limit: u64::from(self.config.bytes) * 1000,
                faults: self
                    .faults
                    .iter()
                    .copied()
                    .filter(|f| fault_port(f) == p.id)
                    .collect(),
                drop,
                reconnect: !self.faults.contains(&Fault::NoReconnect { port: p.id }),
                resume: Arc::clone(&resume),
                log: Arc::clone(&log),
                socket: Arc::clone(&socket),
                stop: Arc::clone(&stop),
                deadline: ctx.deadline,
            };
            let thread = std::thread::Builder::new()
                .name(format!("serial-port{}", p.id))
                .spawn(move || job.serve())
                .inspect_err(|_| stop.store(true, Ordering::SeqCst))?;
            ports.push(PortRun {
                config: p.clone(),
                log,
                socket,
                thread: Some(thread),
            });
        }
        Ok(Box::new(Running {
            spec: self.clone(),
            seed: ctx.seed,
            stop,
            ports,
            args,
            streams,
            emergency_seen: false,
            plug_seen: false,
            resume,
        }))
    }
}

fn fault_port(f: &Fault) -> u32 {
    match *f {
        Fault::Flip { port, .. }
        | Fault::Drop { port, .. }
        | Fault::CloseEarly { port, .. }
        | Fault::KeepOpen { port }
        | Fault::NoReconnect { port } => port,
    }
}

/// One port's socket, served on its own thread.
struct PortJob {
    listener: UnixListener,
    path: PathBuf,
    stream: Stream,
    chunks: Chunks,
    /// Where the streams end so far (the latest stress marker).
    streams: Arc<(Mutex<Option<u64>>, Condvar)>,
    /// Whether this port sends a stream to the guest (a port plugged
    /// later does not).
    sends: bool,
    /// The most `bytes=` with `stress=` can make: what the guest may send.
    limit: u64,
    faults: Vec<Fault>,
    /// Drop the connection once this many bytes came from the guest.
    drop: Option<u64>,
    /// Take QEMU's connection after the drop.
    reconnect: bool,
    resume: Resume,
    log: Arc<Mutex<PortLog>>,
    socket: Arc<Mutex<Option<UnixStream>>>,
    stop: Arc<AtomicBool>,
    deadline: Instant,
}

impl PortJob {
    fn running(&self) -> bool {
        !self.stop.load(Ordering::SeqCst) && Instant::now() < self.deadline
    }

    /// QEMU's connection, or None once stopped (or on an error, logged).
    fn accept(&self) -> Option<UnixStream> {
        loop {
            match self.listener.accept() {
                Ok((c, _)) => return Some(c),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !self.running() {
                        return None;
                    }
                    std::thread::sleep(TICK);
                }
                Err(e) => {
                    self.log.lock().unwrap().error = Some(format!("accept: {e}"));
                    return None;
                }
            }
        }
    }

    fn serve(self) {
        let Some(conn) = self.accept() else { return };
        // The path stays while QEMU is to connect again.
        if self.drop.is_none() || !self.reconnect {
            let _ = std::fs::remove_file(&self.path);
        }
        self.log.lock().unwrap().connected = true;
        if !self.exchange(conn, 0, false) {
            return;
        }
        if !self.reconnect {
            return;
        }
        let Some(conn) = self.accept() else { return };
        let _ = std::fs::remove_file(&self.path);
        self.log.lock().unwrap().back = true;
        // The stream to the guest goes on where the firmware says it
        // received up to (its drop marker).
        let (lock, ready) = &*self.resume;
        let mut resume = lock.lock().unwrap();
        let from = loop {
            if !self.running() {
                return;
            }
            if let Some((_, _, rx)) = *resume {
                break rx;
            }
            resume = ready.wait_timeout(resume, TICK).unwrap().0;
        };
        drop(resume);
        self.log.lock().unwrap().resent_from = Some(from);
        self.exchange(conn, from, true);
    }

    /// One connection: the stream to the guest from `from`, what the
    /// guest sends kept (after a drop: as resumed). True if this peer
    /// dropped it on purpose.
    fn exchange(&self, conn: UnixStream, from: u64, again: bool) -> bool {
        let setup = conn
            .set_nonblocking(false)
            .and_then(|_| conn.set_read_timeout(Some(TICK)))
            .and_then(|_| conn.set_write_timeout(Some(TICK)))
            .and_then(|_| conn.try_clone());
        let writer = match setup {
            Ok(w) => w,
            Err(e) => {
                self.log.lock().unwrap().error = Some(format!("socket set-up: {e}"));
                return false;
            }
        };
        if let Ok(c) = conn.try_clone() {
            *self.socket.lock().unwrap() = Some(c);
        }
        let gone = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| self.send(writer, from, &gone));
            let dropped = self.receive(conn, again);
            if dropped {
                gone.store(true, Ordering::SeqCst);
            }
            dropped
        })
    }

    /// Waits until a stress marker of the firmware puts the streams' end
    /// beyond `offset` (or the stop): that end.
    fn stream_end(&self, offset: u64, gone: &AtomicBool) -> Option<u64> {
        let (lock, ready) = &*self.streams;
        let mut end = lock.lock().unwrap();
        loop {
            // Stopped (or dropped): nothing more is sent, whatever the
            // markers said.
            if !self.running() || gone.load(Ordering::SeqCst) {
                return None;
            }
            if end.is_some_and(|e| e > offset) {
                return *end;
            }
            end = ready.wait_timeout(end, TICK).unwrap().0;
        }
    }

    /// The stream to the guest, chunk by chunk, faults applied: each
    /// round's segment once its marker came, never beyond it (what the
    /// guest has no buffers for stays in the socket across its resets).
    fn send(&self, mut w: UnixStream, from: u64, gone: &AtomicBool) {
        if !self.sends {
            return;
        }
        let mut offset = from;
        let mut n = 0u64;
        let mut buf = Vec::new();
        while let Some(end) = self.stream_end(offset, gone) {
            while offset < end && self.running() {
                let len = u64::from(self.chunks.len(n)).min(end - offset);
                n += 1;
                buf.clear();
                for at in offset..offset + len {
                    let mut b = self.stream.byte(at);
                    let mut keep = true;
                    for f in &self.faults {
                        match *f {
                            Fault::Flip { offset, .. } if offset == at => b = !b,
                            Fault::Drop { offset, len, .. }
                                if (offset..offset + len).contains(&at) =>
                            {
                                keep = false
                            }
                            _ => {}
                        }
                    }
                    if keep {
                        buf.push(b);
                    }
                }
                if !self.write_all(&mut w, &buf, gone) {
                    return;
                }
                offset += len;
                let mut log = self.log.lock().unwrap();
                log.sent = offset;
                log.writes = n;
            }
        }
    }

    /// Writes all of `buf`, retrying on timeouts until stopped.
    fn write_all(&self, w: &mut UnixStream, mut buf: &[u8], gone: &AtomicBool) -> bool {
        while !buf.is_empty() {
            if !self.running() || gone.load(Ordering::SeqCst) {
                return false;
            }
            match w.write(buf) {
                Ok(0) => return false,
                Ok(k) => buf = &buf[k..],
                Err(e) if crate::peers::is_timeout(&e) => {}
                Err(e) => {
                    let mut log = self.log.lock().unwrap();
                    if log.closed.is_none() && log.dropped.is_none() {
                        log.error = Some(format!("write: {e}"));
                    }
                    return false;
                }
            }
        }
        true
    }

    /// What the guest sends, kept until EOF, the deadline, or a quiet
    /// tick once stopped (QEMU has exited: what it sent is all buffered).
    /// The drop: this end stops sending (QEMU reads EOF and closes the
    /// connection, PORT_OPEN 0 to the guest); what QEMU still writes
    /// until then is read and thrown away, counted. Not a full close: a
    /// write QEMU 7.2 finds failing while the guest has no receive
    /// buffer disconnects inside the write and leaves the port throttled
    /// for good, so the guest's bytes never flow again after the
    /// reconnect; the half close keeps QEMU's writes succeeding.
    fn drain_to_close(&self, r: &mut UnixStream) {
        let _ = r.shutdown(std::net::Shutdown::Write);
        let mut buf = [0u8; 16384];
        while Instant::now() < self.deadline {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => self.log.lock().unwrap().discarded += k as u64,
                Err(e) if crate::peers::is_timeout(&e) => {
                    if self.stop.load(Ordering::SeqCst) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = r.shutdown(std::net::Shutdown::Both);
    }

    /// True if it dropped the connection on purpose (the first one, at
    /// `drop`): reads stop exactly there.
    fn receive(&self, mut r: UnixStream, again: bool) -> bool {
        let mut buf = [0u8; 16384];
        let drop_at = self.drop.filter(|_| !again);
        let early = self.faults.iter().find_map(|f| match *f {
            Fault::CloseEarly { after, .. } => Some(after),
            _ => None,
        });
        // Reads end exactly at the drop or the early close: what came is
        // then just what the fault says, whatever QEMU had written.
        let stop_at = drop_at.or(early.filter(|&a| a > 0));
        while Instant::now() < self.deadline {
            let want = match stop_at {
                Some(at) => {
                    let got = self.log.lock().unwrap().received.len() as u64;
                    (at.saturating_sub(got) as usize).min(buf.len())
                }
                None => buf.len(),
            };
            if want == 0 && drop_at.is_none() {
                // Closed early at this offset already (below): never here.
                return false;
            }
            if want == 0 {
                {
                    let mut log = self.log.lock().unwrap();
                    log.dropped = Some((log.received.len() as u64, log.sent));
                }
                self.drain_to_close(&mut r);
                return true;
            }
            match r.read(&mut buf[..want]) {
                Ok(0) => return false,
                Ok(k) => {
                    let mut log = self.log.lock().unwrap();
                    let now = Instant::now();
                    log.first_byte.get_or_insert(now);
                    log.last_byte = Some(now);
                    // Bounded: a guest that never stops is cut off.
                    let kept = (log.received.len() + log.resumed.len()) as u64;
                    if kept < self.limit + (1 << 20) {
                        if again {
                            log.resumed.extend_from_slice(&buf[..k]);
                        } else {
                            log.received.extend_from_slice(&buf[..k]);
                        }
                    }
                    if early.is_some_and(|a| log.received.len() as u64 >= a) {
                        log.closed = Some(format!(
                            "closed early on purpose once {} bytes had come",
                            log.received.len()
                        ));
                        let _ = r.shutdown(std::net::Shutdown::Both);
                        return false;
                    }
                }
                // QEMU's end going away with our bytes unread: its exit.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return false,
                Err(e) if crate::peers::is_timeout(&e) => {
                    if self.stop.load(Ordering::SeqCst) {
                        return false;
                    }
                }
                Err(e) => {
                    let mut log = self.log.lock().unwrap();
                    if log.closed.is_none() {
                        log.error = Some(format!("read: {e}"));
                    }
                    return false;
                }
            }
        }
        false
    }
}

impl Running {
    fn bus(&self) -> String {
        self.spec.config.bus.to_string()
    }
}

impl Peer for Running {
    fn qemu_args(&self) -> Vec<String> {
        self.args.clone()
    }

    fn line(&mut self, line: &str) {
        let line = line.trim_end();
        let bus = self.bus();
        let after = |marker: &str| {
            line.strip_prefix(marker)
                .and_then(|r| r.strip_prefix(' '))
                .map(str::to_string)
        };
        if let Some(rest) = after(markers::SERIAL_STRESS) {
            let mut words = rest.split(' ');
            if words.next() == Some(bus.as_str()) {
                if let Some(n) = words.next().and_then(|w| w.parse::<u64>().ok()) {
                    // Each round's marker carries the stream on: ends only grow.
                    let (lock, ready) = &*self.streams;
                    let mut end = lock.lock().unwrap();
                    *end = Some(end.map_or(n, |e| e.max(n)));
                    ready.notify_all();
                }
            }
        }
        if let Some(rest) = after(markers::SERIAL_DROP) {
            // `<bus> <port> tx <D> rx <R>`
            let w: Vec<&str> = rest.split(' ').collect();
            if let [b, port, "tx", tx, "rx", rx] = w.as_slice() {
                if *b == bus {
                    if let (Ok(p), Ok(tx), Ok(rx)) = (port.parse(), tx.parse(), rx.parse()) {
                        let (lock, ready) = &*self.resume;
                        *lock.lock().unwrap() = Some((p, tx, rx));
                        ready.notify_all();
                    }
                }
            }
        }
        if after(markers::SERIAL_EMERGENCY).as_deref() == Some(bus.as_str()) {
            self.emergency_seen = true;
        }
        if let (Some(rest), Some(p)) = (after(markers::SERIAL_PLUG), &self.spec.config.plug) {
            if rest == format!("{bus} {}", p.id) {
                self.plug_seen = true;
            }
        }
        if let Some(rest) = after(markers::SERIAL_CLOSE) {
            let mut words = rest.split(' ');
            if words.next() == Some(bus.as_str()) {
                let id: Option<u32> = words.next().and_then(|w| w.parse().ok());
                let keep = |p: &PortRun| {
                    self.spec
                        .faults
                        .contains(&Fault::KeepOpen { port: p.config.id })
                };
                if let Some(p) = self.ports.iter().find(|p| Some(p.config.id) == id) {
                    if keep(p) {
                        p.log.lock().unwrap().closed =
                            Some("left open at the firmware's marker on purpose".into());
                        return;
                    }
                    p.log.lock().unwrap().closed = Some("closed at the firmware's marker".into());
                    if let Some(s) = p.socket.lock().unwrap().as_ref() {
                        let _ = s.shutdown(std::net::Shutdown::Both);
                    }
                }
            }
        }
    }

    fn finish(mut self: Box<Self>, end: &PeerEnd<'_>) -> PeerOutcome {
        self.stop.store(true, Ordering::SeqCst);
        // Each thread looks at the stop flag every TICK; the bound is for
        // a thread that never will, and is generous: on a loaded machine
        // (two cores, a build beside the suite) 10 TICKs were once too few.
        let until = Instant::now() + STOP_WAIT;
        let mut o = PeerOutcome::new(self.spec.name());
        for p in &mut self.ports {
            if let Some(t) = p.thread.take() {
                while !t.is_finished() && Instant::now() < until {
                    std::thread::sleep(TICK / 5);
                }
                if t.is_finished() {
                    let _ = t.join();
                } else {
                    o.reasons
                        .push(format!("port {}: its thread did not stop", p.config.id));
                }
            }
        }
        let bus = self.spec.config.bus;
        // QEMU hands emergency bytes to the first console port plugged.
        let emergency_port = self
            .spec
            .config
            .ports
            .iter()
            .find(|p| p.console)
            .map(|p| p.id);
        let ports_with_streams: Vec<u32> = if self.spec.config.multiport() {
            self.spec.config.ports.iter().map(|p| p.id).collect()
        } else {
            vec![0]
        };
        let emergency_all = emergency_bytes(self.seed, bus);
        let stream_len = *self.streams.0.lock().unwrap();
        let resume = *self.resume.0.lock().unwrap();
        // A failed serial.stress may have sent only part of a stream: then
        // what came is checked as a prefix of it.
        let stress_passed = end
            .tap
            .result("serial.stress")
            .is_some_and(|r| r.ok && !r.is_skip());
        let hotplug_passed = end
            .tap
            .result("serial.hotplug")
            .is_some_and(|r| r.ok && !r.is_skip());
        for p in &self.ports {
            let log = p.log.lock().unwrap();
            let label = self.spec.label(&p.config);
            // The port plugged at the marker: the firmware writes the
            // first PLUGGED_BYTES of its stream there.
            let hot = self.spec.config.plug.as_ref() == Some(&p.config);
            let (stream_len, stress_passed) = if hot {
                let n = PLUGGED_BYTES as u64;
                (self.plug_seen.then_some(n), hotplug_passed)
            } else {
                (stream_len, stress_passed)
            };
            let streams =
                stream_len.is_some() && (hot || ports_with_streams.contains(&p.config.id));
            // The stream offsets of what should come, in order: all of
            // them; after a drop, up to the drop, then on from where the
            // firmware resumed (what it had handed QEMU and this peer did
            // not get was lost with the connection, and is named so).
            let total = stream_len.filter(|_| streams).unwrap_or(0);
            let mut offsets: Vec<u64> = (0..total).collect();
            let dropped = self.spec.drop.filter(|d| d.0 == p.config.id);
            let resumed_at = resume.filter(|r| Some(r.0) == dropped.map(|d| d.0));
            if let Some((x, sent)) = log.dropped {
                let resent = log
                    .resent_from
                    .map_or(String::from("nothing sent again"), |r| {
                        format!(
                            "{} bytes sent again from offset {r}",
                            sent.saturating_sub(r)
                        )
                    });
                match resumed_at {
                    Some((_, d, _)) if d < x => o.reasons.push(format!(
                        "{label}: the firmware resumed tx at offset {d}, before the {x} bytes that came before the drop"
                    )),
                    Some((_, d, r)) => {
                        o.lines.push(format!(
                            "{label}: dropped on purpose once {x} bytes had come ({} more thrown away until QEMU closed), {sent} sent; the firmware resumed tx at {d} ({} bytes lost in the drop, offsets {x} to {d}) and rx at {r} ({resent}); {}",
                            log.discarded,
                            d - x,
                            if log.back { "QEMU reconnected" } else { "QEMU did not reconnect" }
                        ));
                        offsets.truncate(x as usize);
                        offsets.extend(d..total.max(d));
                    }
                    None => {
                        o.lines.push(format!(
                            "{label}: dropped on purpose once {x} bytes had come, {sent} sent; no drop marker from the firmware{}",
                            if log.back { "; QEMU reconnected" } else { "" }
                        ));
                        offsets.truncate(x as usize);
                    }
                }
                if !log.back
                    && end.complete
                    && !self
                        .spec
                        .faults
                        .contains(&Fault::NoReconnect { port: p.config.id })
                {
                    o.reasons.push(format!(
                        "{label}: QEMU did not connect again after the drop"
                    ));
                }
            } else if let Some((_, x)) = dropped.filter(|_| end.complete) {
                o.reasons.push(format!(
                    "{label}: to drop once {x} bytes had come, but {} came",
                    log.received.len()
                ));
            }
            let full = Stream::new(self.seed, bus, p.config.id, Dir::Tx);
            let stream: Vec<u8> = offsets.iter().map(|&at| full.byte(at)).collect();
            let emergency: &[u8] = if self.emergency_seen && emergency_port == Some(p.config.id) {
                &emergency_all
            } else {
                &[]
            };
            let mut all = log.received.clone();
            all.extend_from_slice(&log.resumed);
            let got = &all;
            // Where the stream ends in what came: all of it, or (after a
            // failed stress) whatever came before the emergency bytes.
            let stream_got = if stress_passed || !streams {
                stream.len()
            } else if !emergency.is_empty() && got.ends_with(emergency) {
                got.len() - emergency.len()
            } else {
                got.len().min(stream.len())
            };
            let mut expected = stream[..stream_got.min(stream.len())].to_vec();
            let stream_len = expected.len();
            expected.extend_from_slice(emergency);
            let rate = match (log.first_byte, log.last_byte) {
                (Some(a), Some(b)) if b > a => got.len() as f64 / (b - a).as_secs_f64(),
                _ => 0.0,
            };
            o.lines.push(format!(
                "{label}: {} bytes from the guest ({} in a full run), {} bytes sent in {} writes{}{}",
                got.len(),
                stream.len() + emergency.len(),
                log.sent,
                log.writes,
                log.closed
                    .as_ref()
                    .map_or(String::new(), |c| format!("; {c}")),
                log.error
                    .as_ref()
                    .map_or(String::new(), |e| format!("; {e}"))
            ));
            o.figures
                .push((format!("port{}_tx_bytes", p.config.id), got.len() as f64));
            o.figures
                .push((format!("port{}_tx_bytes_per_s", p.config.id), rate));
            o.figures.push((
                format!("port{}_rx_bytes_sent", p.config.id),
                log.sent as f64,
            ));
            if !log.connected {
                if end.complete {
                    o.reasons
                        .push(format!("{label}: QEMU never connected to its socket"));
                }
                continue;
            }
            let replay = format!("seed={:#x}", self.seed);
            let what = |at: usize| {
                if at < stream_len || emergency.is_empty() {
                    let off = offsets.get(at).copied().unwrap_or(at as u64);
                    format!("stream offset {off}")
                } else {
                    format!("emergency byte {}", at - stream_len)
                }
            };
            if let Some(i) = got.iter().zip(&expected).position(|(g, e)| g != e) {
                o.reasons.push(format!(
                    "{label} tx (guest to host): byte at {} expected {:#04x} got {:#04x} ({replay})",
                    what(i),
                    expected[i],
                    got[i]
                ));
            } else if got.len() > expected.len() {
                o.reasons.push(format!(
                    "{label} tx (guest to host): {} bytes arrived, {} expected: extra bytes from offset {} ({replay})",
                    got.len(),
                    expected.len(),
                    expected.len()
                ));
            } else if got.len() < stream.len() + emergency.len()
                && log.closed.as_deref().is_some_and(|c| c.contains("early"))
            {
                o.reasons.push(format!(
                    "{label} tx (guest to host): {} of {} bytes arrived before this peer closed the port early ({replay})",
                    got.len(),
                    stream.len() + emergency.len()
                ));
            } else if got.len() < expected.len() && end.complete {
                o.reasons.push(format!(
                    "{label} tx (guest to host): {} of {} bytes arrived: missing from {} ({replay})",
                    got.len(),
                    expected.len(),
                    what(got.len())
                ));
            }
            if let Some(e) = &log.error {
                if end.complete {
                    o.reasons.push(format!("{label}: {e}"));
                }
            }
        }
        o
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh socket directory and a context with a 20 s deadline.
    fn context(tag: &str, seed: u64) -> (PathBuf, PeerContext) {
        let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ctx = PeerContext {
            dir: dir.clone(),
            seed,
            deadline: Instant::now() + Duration::from_secs(20),
        };
        (dir, ctx)
    }

    #[test]
    fn the_scenario_gets_the_device_the_word_and_the_peer() {
        let ports = SerialPorts::new("fe.0.0003")
            .max_ports(4)
            .emergency_write(true)
            .console(0, None)
            .port(1, "zv.a");
        let s = Scenario::new("t").virtio_serial(ports);
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.peers.len(), 1);
        let dev = &s.ccw_devices[0];
        let arg = dev.device_arg();
        assert!(arg.ends_with("max_ports=4,emergency-write=on") || arg.ends_with("max_ports=4"));
        assert!(s
            .command_line()
            .ends_with("serial=fe.0.0003:max=4:emerg:c0:p1=zv.a"));
    }

    /// The plugged port: a chardev from boot, no device; QMP commands at
    /// the firmware's markers; the firmware told both.
    #[test]
    fn hot_plug_gives_qmp_commands_at_the_markers() {
        // The emergency write on: QEMU 11 always offers it (no property),
        // and the word must not depend on the QEMU the tests run with.
        let ports = SerialPorts::new("fe.0.0003")
            .max_ports(8)
            .emergency_write(true)
            .port(1, "zv.a")
            .port(2, "zv.b")
            .unplug(2)
            .plug(5, "zv.hot");
        let s = Scenario::new("t").virtio_serial(ports.clone());
        assert_eq!(s.validate(), Ok(()));
        assert!(s
            .command_line()
            .ends_with("serial=fe.0.0003:max=8:emerg:unplug=2:plug=5=zv.hot:p1=zv.a:p2=zv.b"));
        let lines: Vec<&str> = s.line_commands.iter().map(|c| c.line.as_str()).collect();
        assert_eq!(
            lines,
            [
                "# zvtest: serial unplug fe.0.0003 2",
                "# zvtest: serial plug fe.0.0003 5"
            ]
        );
        assert_eq!(s.line_commands[0].execute(), Ok("device_del".into()));
        assert!(s.line_commands[0]
            .wire()
            .contains("ccw-fe.0.0003-port2-dev"));
        assert_eq!(s.line_commands[1].execute(), Ok("device_add".into()));
        let add = s.line_commands[1].wire();
        for part in [
            r#""bus": "ccw-fe.0.0003.0""#,
            r#""nr": 5"#,
            r#""chardev": "ccw-fe.0.0003-port5""#,
            r#""name": "zv.hot""#,
        ] {
            assert!(add.contains(part), "{add} lacks {part}");
        }
        let (dir, ctx) = context("zv-serial-h", 1);
        let peer = ports.start(&ctx).unwrap();
        let args = peer.qemu_args().join(" ");
        assert!(args.contains("socket,id=ccw-fe.0.0003-port5,path="));
        assert!(!args.contains("nr=5"), "{args}");
        assert!(args.contains("nr=2"));
        let tap = crate::tap::TapReport::default();
        let _ = peer.finish(&PeerEnd {
            tap: &tap,
            complete: false,
        });
        let _ = std::fs::remove_dir_all(&dir);
        // A plugged port that is already there, one past max_ports.
        for bad in [
            SerialPorts::new("fe.0.0003")
                .max_ports(8)
                .port(1, "a")
                .plug(1, "b"),
            SerialPorts::new("fe.0.0003")
                .max_ports(4)
                .port(1, "a")
                .plug(4, "b"),
            SerialPorts::new("fe.0.0003")
                .max_ports(4)
                .port(1, "a")
                .unplug(2),
        ] {
            assert!(Scenario::new("t").virtio_serial(bad).validate().is_err());
        }
    }

    #[test]
    fn bad_ports_are_refused_before_qemu() {
        let s = Scenario::new("t")
            .virtio_serial(SerialPorts::new("fe.0.0003").max_ports(1).port(1, "a"));
        assert!(s.validate().is_err());
        let s = Scenario::new("t").virtio_serial(SerialPorts::new("fe.0.0003").port(1, "a b"));
        assert!(s.validate().is_err());
    }

    /// The console's emergency bytes after its stream: one wrong is named.
    #[test]
    fn wrong_emergency_bytes_are_named() {
        let (dir, ctx) = context("zv-serial-e", 3);
        let spec = SerialPorts::new("fe.0.0003")
            .max_ports(1)
            .bytes(100)
            .emergency_write(true)
            .console(0, None);
        let mut peer = spec.start(&ctx).unwrap();
        let mut guest = UnixStream::connect(dir.join("s0003-0.sock")).unwrap();
        let bus: BusId = "fe.0.0003".parse().unwrap();
        let mut sent = vec![0u8; 100];
        Stream::new(3, bus, 0, Dir::Tx).fill(0, &mut sent);
        let mut e = emergency_bytes(3, bus);
        e[3] ^= 0x40;
        sent.extend_from_slice(&e);
        guest.write_all(&sent).unwrap();
        drop(guest);
        peer.line(&format!("{} fe.0.0003 100", markers::SERIAL_STRESS));
        peer.line(&format!("{} fe.0.0003", markers::SERIAL_EMERGENCY));
        let tap = crate::tap::TapReport::default();
        let out = peer.finish(&PeerEnd {
            tap: &tap,
            complete: true,
        });
        assert_eq!(out.reasons.len(), 1, "{out:?}");
        assert!(
            out.reasons[0].contains("port 0 tx (guest to host): byte at emergency byte 3"),
            "{:?}",
            out.reasons
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The drop against a fake guest: the peer stops taking bytes at the
    /// drop (EOF to the guest, what follows thrown away), takes the new
    /// connection, sends from the marker's rx offset and checks what
    /// comes against the stream from its tx offset: a wrong byte there is
    /// named by its stream offset, and the bytes lost in the drop are named.
    #[test]
    fn a_drop_resumes_where_the_marker_says() {
        for flip in [None, Some(10usize)] {
            let (dir, ctx) = context(&format!("zv-serial-d{}", flip.is_some() as u8), 5);
            let spec = SerialPorts::new("fe.0.0003")
                .max_ports(2)
                .bytes(3000)
                .port(1, "zv.a")
                .drop_and_reconnect(1, 1000);
            assert!(spec.word().contains(":drop=1:"));
            let mut peer = spec.start(&ctx).unwrap();
            let bus: BusId = "fe.0.0003".parse().unwrap();
            let tx = Stream::new(5, bus, 1, Dir::Tx);
            let rx = Stream::new(5, bus, 1, Dir::Rx);
            let mut out = vec![0u8; 3000];
            tx.fill(0, &mut out);
            let path = dir.join("s0003-1.sock");
            let mut guest = UnixStream::connect(&path).unwrap();
            guest
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            // 1200 bytes: the peer keeps 1000, throws 200 away, and stops
            // sending (EOF here); the guest then closes, as QEMU does.
            guest.write_all(&out[..1200]).unwrap();
            let mut rest = Vec::new();
            guest.read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty());
            drop(guest);
            // The firmware resumes tx at 1500 and wants rx from 0.
            let mut guest = UnixStream::connect(&path).unwrap();
            guest
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            peer.line(&format!(
                "{} fe.0.0003 1 tx 1500 rx 0",
                markers::SERIAL_DROP
            ));
            peer.line(&format!("{} fe.0.0003 3000", markers::SERIAL_STRESS));
            let mut got = vec![0u8; 3000];
            guest.read_exact(&mut got).unwrap();
            assert_eq!(rx.first_difference(0, &got), None);
            let mut after = out[1500..].to_vec();
            if let Some(i) = flip {
                after[i] ^= 0x20;
            }
            guest.write_all(&after).unwrap();
            drop(guest);
            let tap = crate::tap::TapReport::default();
            let o = peer.finish(&PeerEnd {
                tap: &tap,
                complete: true,
            });
            let lines = o.lines.join("\n");
            assert!(
                lines.contains("port 1 (zv.a): dropped on purpose once 1000 bytes had come (200 more thrown away until QEMU closed)")
                    && lines.contains("resumed tx at 1500 (500 bytes lost in the drop, offsets 1000 to 1500) and rx at 0")
                    && lines.contains("QEMU reconnected"),
                "{lines}"
            );
            match flip {
                None => assert!(o.reasons.is_empty(), "{:?}", o.reasons),
                Some(i) => {
                    assert_eq!(o.reasons.len(), 1, "{:?}", o.reasons);
                    assert!(
                        o.reasons[0].contains(&format!(
                            "port 1 (zv.a) tx (guest to host): byte at stream offset {}",
                            1500 + i
                        )),
                        "{:?}",
                        o.reasons
                    );
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    /// A peer against a fake guest: the guest side connects, reads the
    /// stream (a flipped byte shows), sends its own stream short, and the
    /// peer's verdict names the port, direction and offset.
    #[test]
    fn the_peer_checks_what_the_guest_sent_and_sends_the_stream() {
        let (dir, ctx) = context("zv-serial", 7);
        let spec = SerialPorts::new("fe.0.0003")
            .max_ports(2)
            .bytes(3000)
            .port(1, "zv.a")
            .fault(Fault::Flip {
                port: 1,
                offset: 1234,
            });
        let mut peer = spec.start(&ctx).unwrap();
        peer.line(&format!("{} fe.0.0003 3000", markers::SERIAL_STRESS));
        let args = peer.qemu_args();
        assert!(args[1].starts_with("socket,id=ccw-fe.0.0003-port1,path="));
        let path = dir.join("s0003-1.sock");
        let mut guest = UnixStream::connect(&path).unwrap();
        guest
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut got = vec![0u8; 3000];
        guest.read_exact(&mut got).unwrap();
        let bus: BusId = "fe.0.0003".parse().unwrap();
        let rx = Stream::new(7, bus, 1, Dir::Rx);
        assert_eq!(rx.first_difference(0, &got).map(|d| d.0), Some(1234));
        let mut sent = vec![0u8; 2000];
        Stream::new(7, bus, 1, Dir::Tx).fill(0, &mut sent);
        sent[10] ^= 1;
        guest.write_all(&sent).unwrap();
        // The reader takes what is buffered up to the guest's close.
        drop(guest);
        let tap = crate::tap::TapReport::default();
        let out = peer.finish(&PeerEnd {
            tap: &tap,
            complete: true,
        });
        assert_eq!(out.reasons.len(), 1, "{:?}", out);
        assert!(
            out.reasons[0].contains("port 1 (zv.a) tx (guest to host): byte at stream offset 10"),
            "{:?}",
            out.reasons
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
