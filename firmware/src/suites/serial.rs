//! virtio-serial: the configuration and features against `serial=`; the
//! MULTIPORT control protocol (DEVICE_READY, PORT_ADD for exactly the
//! configured ports, PORT_READY answered by CONSOLE_PORT, PORT_NAME and
//! PORT_OPEN); every port's two seeded streams moved at once, all ports'
//! queues interleaved, every byte received checked (the host's peer
//! checks what we send); the emergency write; and a port whose host side
//! closes: PORT_OPEN 0, and what we write there discarded.
//!
//! Every port of a `serial=` device is taken to have its host side
//! connected from boot (the runner serves each on a socket).

use crate::check::Outcome;
use crate::dma::DmaMemory;
use crate::fmt::{Hex, ToText};
use crate::format;
use crate::machine::Machine;
use crate::virtio::ccw::CcwTransport;
use crate::virtio::devices::order::Order;
use crate::virtio::devices::serial::{
    self, emergency_write, event_name, rx_queue, tx_queue, Config, Control, ControlQueues, Message,
    CONFIG_LEN, CONFIG_LEN_NO_EMERG, DEVICE_READY, F_EMERG_WRITE, F_MULTIPORT, F_SIZE, PORT_ADD,
    PORT_OPEN, PORT_READY,
};
use crate::virtio::queue::{setup_queue, DmaBuffer, Queue, USED_TIMEOUT_US};
use crate::virtio::stress::QueueStats;
use crate::virtio::transport::{driver_ok_status, has, negotiate, Transport};
use crate::workloads::serial::{describe, judge_control};
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use zvtest_contract::checks::markers;
use zvtest_contract::inventory::BusId;
use zvtest_contract::serial::{
    emergency_bytes, Chunks, Cutter, Dir, SerialConfig, Stream, MAX_CHUNK,
};

/// A virtio-serial device and what `serial=` says of it.
struct Device {
    sid: u32,
    bus: BusId,
    cfg: Option<SerialConfig>,
}

fn devices(m: &Machine) -> Vec<Device> {
    m.inventory
        .virtio_devices(serial::DEVICE_ID)
        .map(|d| {
            let bus = d.bus_id();
            Device {
                sid: d.subchannel.sid,
                bus,
                cfg: m.cfg.serial.iter().find(|c| c.bus == bus).cloned(),
            }
        })
        .collect()
}

/// `serial=` items naming no device found: a device the host said it
/// configured is missing.
fn missing(m: &Machine, found: &[Device]) -> Option<Outcome> {
    let lost = m
        .cfg
        .serial
        .iter()
        .find(|c| !found.iter().any(|d| d.bus == c.bus))?;
    Some(Outcome::mismatch(
        "a virtio-serial device serial= names is missing",
        lost.bus,
        "no such virtio-console device in the inventory",
    ))
}

fn err(what: &str, e: &dyn ToText) -> String {
    format!("{}: {}", what, e.text().as_str())
}

/// A device at revision 2 past DRIVER_OK: its data queues (port,
/// receive, transmit), its control queues with MULTIPORT, and every
/// control message it sent so far.
struct Session {
    t: CcwTransport,
    control: Option<ControlQueues>,
    ports: Vec<(u32, Queue, Queue)>,
    log: Vec<Message>,
}

impl Session {
    /// Brings the device up with the data queues of `ports` (port 0 alone
    /// without MULTIPORT); with MULTIPORT sends DEVICE_READY, PORT_READY
    /// for each port the device adds, and PORT_OPEN 1 for `ports` where
    /// `open`.
    fn bring_up(sid: u32, ports: &[u32], open: bool) -> Result<Session, String> {
        Self::bring_up_at(sid, 2, ports, open)
    }

    /// [`Session::bring_up`] at virtio revision `rev` (or the highest the
    /// device takes below it: see `t.revision()`).
    fn bring_up_at(sid: u32, rev: u8, ports: &[u32], open: bool) -> Result<Session, String> {
        let mut t = CcwTransport::open(sid, rev).map_err(|e| err("open", &e))?;
        let wanted = 1 << F_MULTIPORT | 1 << F_EMERG_WRITE;
        let features = negotiate(&mut t, wanted).map_err(|e| err("negotiate", &e))?;
        let multiport = has(features, F_MULTIPORT);
        let ports: Vec<u32> = if multiport {
            ports.to_vec()
        } else {
            alloc::vec![0]
        };
        let mut queues = Vec::new();
        for &p in &ports {
            let q = |t: &mut CcwTransport, i| {
                setup_queue(t, i, features, false)
                    .map_err(|e| err(&format!("port {} queue {}", p, i), &e))
            };
            let rx = q(&mut t, rx_queue(p))?;
            let tx = q(&mut t, tx_queue(p))?;
            queues.push((p, rx, tx));
        }
        let control = if multiport {
            Some(ControlQueues::setup(&mut t, features).map_err(|e| err("control queues", &e))?)
        } else {
            None
        };
        t.set_status(driver_ok_status(t.revision()))
            .map_err(|e| err("DRIVER_OK", &e))?;
        let mut s = Session {
            t,
            control,
            ports: queues,
            log: Vec::new(),
        };
        if s.control.is_some() {
            s.send(0, DEVICE_READY, 1)?;
            let added: Vec<u32> = s
                .log
                .iter()
                .filter(|m| m.control.event == PORT_ADD)
                .map(|m| m.control.id)
                .collect();
            for id in added {
                s.send(id, PORT_READY, 1)?;
            }
            if open {
                for p in ports {
                    s.send(p, PORT_OPEN, 1)?;
                }
            }
        }
        Ok(s)
    }

    /// Sends a control message and logs what the device answered.
    fn send(&mut self, id: u32, event: u16, value: u16) -> Result<(), String> {
        let c = self.control.as_mut().ok_or("no control queues")?;
        c.send(&mut self.t, Control { id, event, value })
            .map_err(|e| {
                err(
                    &format!("sending {} for port {}", event_name(event), id),
                    &e,
                )
            })?;
        self.drain()?;
        Ok(())
    }

    /// Logs every control message waiting; returns how many came.
    fn drain(&mut self) -> Result<usize, String> {
        let Some(c) = self.control.as_mut() else {
            return Ok(0);
        };
        let mut n = 0;
        while let Some(m) = c
            .try_receive(&mut self.t)
            .map_err(|e| err("control receive queue", &e))?
        {
            let m = m.map_err(|e| err("control message", &e))?;
            self.log.push(m);
            n += 1;
        }
        Ok(n)
    }
}

/// The configuration space and features against `serial=`.
pub fn config(m: &mut Machine) -> Outcome {
    let found = devices(m);
    if found.is_empty() {
        return Outcome::skip("no virtio-serial-ccw device");
    }
    if let Some(o) = missing(m, &found) {
        return o;
    }
    let mut notes = Vec::new();
    for d in &found {
        let mut t = match CcwTransport::open(d.sid, 2) {
            Ok(t) => t,
            Err(e) => return Outcome::fail(&err(&format!("{} open", d.bus), &e)),
        };
        let offer = match negotiate(&mut t, 0).and_then(|_| t.device_features()) {
            Ok(f) => f,
            Err(e) => return Outcome::fail(&err(&format!("{} features", d.bus), &e)),
        };
        let emerg = has(offer, F_EMERG_WRITE);
        let mut raw = [0u8; CONFIG_LEN];
        let len = if emerg {
            CONFIG_LEN
        } else {
            CONFIG_LEN_NO_EMERG
        };
        if let Err(e) = t.read_config(&mut raw[..len]) {
            return Outcome::fail(&err(&format!("{} configuration", d.bus), &e));
        }
        let mut head = [0u8; CONFIG_LEN_NO_EMERG];
        head.copy_from_slice(&raw[..CONFIG_LEN_NO_EMERG]);
        let c = Config::parse(&head, Order::Little);
        let multiport = has(offer, F_MULTIPORT);
        crate::out!(
            "# serial {}: features {} (MULTIPORT {}, EMERG_WRITE {}, SIZE {}), max_nr_ports {}, cols {}, rows {}\n",
            d.bus,
            Hex(offer),
            multiport as u8,
            emerg as u8,
            has(offer, F_SIZE) as u8,
            c.max_nr_ports,
            c.cols,
            c.rows
        );
        let Some(cfg) = &d.cfg else {
            notes.push(format!(
                "{}: max_nr_ports {}, MULTIPORT {}, EMERG_WRITE {} (no serial= item to compare with)",
                d.bus, c.max_nr_ports, multiport as u8, emerg as u8
            ));
            continue;
        };
        let what = |field: &str| format!("{} {}", d.bus, field);
        let fields: [(&str, u64, u64); 3] = [
            (
                "MULTIPORT offered (max_ports above 1)",
                cfg.multiport() as u64,
                multiport as u64,
            ),
            ("EMERG_WRITE offered", cfg.emergency as u64, emerg as u64),
            (
                "max_nr_ports",
                u64::from(cfg.max_ports),
                if multiport {
                    u64::from(c.max_nr_ports)
                } else {
                    // Only meaningful with MULTIPORT.
                    u64::from(cfg.max_ports)
                },
            ),
        ];
        for (field, expected, got) in fields {
            if expected != got {
                return Outcome::mismatch(&what(field), expected, got);
            }
        }
    }
    if notes.is_empty() {
        Outcome::Pass
    } else {
        Outcome::PassNote(notes.join("; "))
    }
}

/// The MULTIPORT control protocol against `serial=`.
pub fn control(m: &mut Machine) -> Outcome {
    let found = devices(m);
    if found.is_empty() {
        return Outcome::skip("no virtio-serial-ccw device");
    }
    if let Some(o) = missing(m, &found) {
        return o;
    }
    let mut ran = 0;
    let mut notes = Vec::new();
    // Revision 0 too: legacy control messages are in the guest's
    // (big-endian) byte order.
    for d in &found {
        for rev in [2u8, 0] {
            let s = match Session::bring_up_at(d.sid, rev, &[], false) {
                Ok(s) => s,
                Err(e) => {
                    return Outcome::fail(&format!("{} revision {}: {}", d.bus, rev, e.as_str()))
                }
            };
            if s.control.is_none() || s.t.revision() != rev {
                continue;
            }
            ran += 1;
            crate::out!(
                "# serial {} control rev {}: {}\n",
                d.bus,
                rev,
                describe(&s.log).as_str()
            );
            match &d.cfg {
                Some(cfg) => {
                    if let Err((what, expected, got)) = judge_control(cfg, &s.log) {
                        return Outcome::mismatch(
                            &format!("{} (revision {})", what.as_str(), rev),
                            expected.as_str(),
                            got.as_str(),
                        );
                    }
                }
                None => notes.push(format!(
                    "{} revision {}: {} (no serial= item to compare with)",
                    d.bus,
                    rev,
                    describe(&s.log).as_str()
                )),
            }
        }
    }
    if ran == 0 {
        return Outcome::skip(
            "no virtio-serial device offers MULTIPORT (port 0 alone: no control queues)",
        );
    }
    if notes.is_empty() {
        Outcome::Pass
    } else {
        Outcome::PassNote(notes.join("; "))
    }
}

/// Buffers in flight per queue.
const DEPTH: usize = 8;

/// One queue's traffic: slots of [`MAX_CHUNK`] bytes in its memory.
struct Lane {
    dir: Dir,
    stream: Stream,
    chunks: Chunks,
    mem: Rc<DmaMemory>,
    /// Token and length of the buffer in each slot.
    slots: [Option<(u16, u32)>; DEPTH],
    /// Chunks made available so far.
    next: u64,
    /// Transmit: bytes made available; receive: bytes received.
    offset: u64,
    /// Transmit: bytes the device took back.
    done: u64,
    stats: QueueStats,
    finished_us: Option<u64>,
}

impl Lane {
    fn new(seed: u64, bus: BusId, port: u32, dir: Dir) -> Self {
        let cutter = match dir {
            Dir::Tx => Cutter::GuestTx,
            Dir::Rx => Cutter::GuestRx,
        };
        Lane {
            dir,
            stream: Stream::new(seed, bus, port, dir),
            chunks: Chunks::new(seed, bus, port, cutter),
            mem: Rc::new(DmaMemory::new(DEPTH * MAX_CHUNK as usize)),
            slots: [None; DEPTH],
            next: 0,
            offset: 0,
            done: 0,
            stats: QueueStats::default(),
            finished_us: None,
        }
    }

    fn in_flight(&self) -> usize {
        self.slots.iter().flatten().count()
    }
}

/// One port's two queues and streams.
struct Flow {
    port: u32,
    rx: Queue,
    tx: Queue,
    lanes: [Lane; 2],
}

fn now_us() -> u64 {
    crate::arch::tod() / crate::arch::TOD_PER_US
}

/// Makes buffers available on both of `f`'s queues up to [`DEPTH`]:
/// receive buffers until `bytes` came, transmit chunks until all of the
/// stream was sent. True if any was.
fn top_up<T: Transport + ?Sized>(t: &mut T, f: &mut Flow, bytes: u64) -> Result<bool, String> {
    let mut any = false;
    for (lane, q) in f.lanes.iter_mut().zip([&mut f.tx, &mut f.rx]) {
        let mut added = false;
        while lane.in_flight() < DEPTH {
            let sent = match lane.dir {
                Dir::Tx => lane.offset,
                Dir::Rx => {
                    lane.offset
                        + lane
                            .slots
                            .iter()
                            .flatten()
                            .map(|s| u64::from(s.1))
                            .sum::<u64>()
                }
            };
            if sent >= bytes {
                break;
            }
            let len = (lane.chunks.len(lane.next) as u64).min(bytes - sent) as u32;
            let slot = lane.slots.iter().position(Option::is_none).unwrap_or(0);
            let at = slot * MAX_CHUNK as usize;
            if lane.dir == Dir::Tx {
                let mut data = [0u8; MAX_CHUNK as usize];
                lane.stream.fill(lane.offset, &mut data[..len as usize]);
                lane.mem.write(at, &data[..len as usize]);
                lane.offset += u64::from(len);
            }
            let buf = DmaBuffer {
                mem: &lane.mem,
                offset: at,
                len,
                device_writable: lane.dir == Dir::Rx,
            };
            let token = q.add(&[buf], false).map_err(|e| err("add", &e))?;
            lane.slots[slot] = Some((token, len));
            lane.next += 1;
            lane.stats.requests += 1;
            lane.stats.max_depth = lane.stats.max_depth.max(lane.in_flight() as u16);
            added = true;
        }
        if added {
            let kicks = q.kicks();
            q.kick(t).map_err(|e| err("notify", &e))?;
            lane.stats.kicks += q.kicks() - kicks;
            any = true;
        }
    }
    Ok(any)
}

/// Takes back what the device returned on `f`'s queues, checking every
/// byte received. True if anything came.
fn take_back(f: &mut Flow, bytes: u64, start: u64) -> Result<bool, String> {
    let mut any = false;
    let port = f.port;
    for (lane, q) in f.lanes.iter_mut().zip([&mut f.tx, &mut f.rx]) {
        while let Some(used) = q.try_used().map_err(|e| err(lane.dir.name(), &e))? {
            any = true;
            let slot = lane
                .slots
                .iter()
                .position(|s| s.is_some_and(|(tok, _)| tok == used.token))
                .ok_or_else(|| {
                    format!(
                        "{}: token {} returned, but not in flight",
                        lane.dir.name(),
                        used.token
                    )
                })?;
            let (_, len) = lane.slots[slot].take().unwrap_or((0, 0));
            lane.stats.completed += 1;
            match lane.dir {
                Dir::Tx => {
                    lane.done += u64::from(len);
                    lane.stats.bytes += u64::from(len);
                }
                Dir::Rx => {
                    let n = used.len as usize;
                    let mut got = [0u8; MAX_CHUNK as usize];
                    lane.mem.read(slot * MAX_CHUNK as usize, &mut got[..n]);
                    if lane.offset + n as u64 > bytes {
                        return Err(format!(
                            "port {} rx: {} bytes at offset {}, past the {} the host sends",
                            port, n, lane.offset, bytes
                        ));
                    }
                    if let Some((i, want)) = lane.stream.first_difference(lane.offset, &got[..n]) {
                        return Err(format!(
                            "port {} rx: byte at stream offset {} expected {} got {} (a {}-byte buffer, chunk {})",
                            port,
                            lane.offset + i as u64,
                            Hex(want.into()),
                            Hex(got[i].into()),
                            len,
                            lane.stats.completed - 1
                        ));
                    }
                    lane.offset += n as u64;
                    lane.stats.bytes += n as u64;
                }
            }
            let complete = match lane.dir {
                Dir::Tx => lane.done >= bytes,
                Dir::Rx => lane.offset >= bytes,
            };
            if complete && lane.finished_us.is_none() {
                lane.finished_us = Some(now_us() - start);
            }
        }
    }
    Ok(any)
}

fn stream_ports(cfg: &SerialConfig) -> Vec<u32> {
    if cfg.multiport() {
        cfg.ports.iter().map(|p| p.id).collect()
    } else {
        alloc::vec![0]
    }
}

/// Every port's streams at once on one device.
fn stress_device(d: &Device, cfg: &SerialConfig, seed: u64, stress: u32) -> Result<String, String> {
    let ports = stream_ports(cfg);
    let mut s = Session::bring_up(d.sid, &ports, true)?;
    if s.control.is_some() {
        for &p in &ports {
            let open = s
                .log
                .iter()
                .rev()
                .find(|m| m.control.event == PORT_OPEN && m.control.id == p)
                .map(|m| m.control.value);
            if open != Some(1) {
                return Err(format!(
                    "port {}: its host side is not connected ({}) before the streams start",
                    p,
                    open.map_or(String::from("no PORT_OPEN"), |v| format!("PORT_OPEN {}", v))
                        .as_str()
                ));
            }
        }
    }
    let bytes = u64::from(cfg.bytes) * u64::from(stress);
    let mut flows: Vec<Flow> = Vec::new();
    for (port, mut rx, mut tx) in core::mem::take(&mut s.ports) {
        rx.enable_interrupts(false);
        tx.enable_interrupts(false);
        flows.push(Flow {
            port,
            rx,
            tx,
            lanes: [
                Lane::new(seed, d.bus, port, Dir::Tx),
                Lane::new(seed, d.bus, port, Dir::Rx),
            ],
        });
    }
    crate::out!("{} {} {}\n", markers::SERIAL_STRESS, d.bus, bytes);
    let start = now_us();
    let mut last = start;
    let mut spins = 0u32;
    loop {
        let mut progress = false;
        for f in flows.iter_mut() {
            progress |= top_up(&mut s.t, f, bytes)
                .map_err(|e| format!("port {} {}", f.port, e.as_str()))?;
            progress |= take_back(f, bytes, start)?;
        }
        if s.drain()? > 0 {
            if let Some(m) = s
                .log
                .iter()
                .find(|m| m.control.event == PORT_OPEN && m.control.value == 0)
            {
                let id = m.control.id;
                let at = flows
                    .iter()
                    .find(|f| f.port == id)
                    .map_or(String::new(), |f| {
                        format!(
                            " with tx at {} and rx at {} of {} bytes",
                            f.lanes[0].done, f.lanes[1].offset, bytes
                        )
                    });
                return Err(format!(
                    "the host closed port {} (PORT_OPEN 0){}",
                    id,
                    at.as_str()
                ));
            }
        }
        if flows
            .iter()
            .all(|f| f.lanes.iter().all(|l| l.finished_us.is_some()))
        {
            break;
        }
        spins = spins.wrapping_add(1);
        if progress {
            spins = 0;
            last = now_us();
        } else if spins.is_multiple_of(256) && now_us() - last > USED_TIMEOUT_US {
            let stuck: Vec<String> = flows
                .iter()
                .flat_map(|f| {
                    f.lanes
                        .iter()
                        .filter(|l| l.finished_us.is_none())
                        .map(move |l| {
                            let at = if l.dir == Dir::Tx { l.done } else { l.offset };
                            format!(
                                "port {} {} at {} of {} bytes ({} buffers in flight)",
                                f.port,
                                l.dir.name(),
                                at,
                                bytes,
                                l.in_flight()
                            )
                        })
                })
                .collect();
            return Err(format!(
                "nothing moved for {} ms: {}",
                USED_TIMEOUT_US / 1000,
                stuck.join(", ").as_str()
            ));
        }
    }
    let elapsed = now_us() - start;
    let mut total = QueueStats::default();
    for f in &flows {
        for l in &f.lanes {
            let mut st = l.stats;
            st.elapsed_us = l.finished_us.unwrap_or(elapsed).max(1);
            st.wraps = 0;
            crate::out!(
                "# serial {} port{} {}: {}\n",
                d.bus,
                f.port,
                l.dir.name(),
                st
            );
            total.bytes += st.bytes;
            total.completed += st.completed;
        }
    }
    let _ = s.t.reset();
    Ok(format!(
        "{}: {} ports, {} bytes each way each, {} buffers, {} ms",
        d.bus,
        flows.len(),
        bytes,
        total.completed,
        elapsed / 1000
    ))
}

/// Every port's two streams at once, every byte received checked.
pub fn stress(m: &mut Machine) -> Outcome {
    let found = devices(m);
    if found.is_empty() {
        return Outcome::skip("no virtio-serial-ccw device");
    }
    if let Some(o) = missing(m, &found) {
        return o;
    }
    let mut done = Vec::new();
    for d in &found {
        let Some(cfg) = &d.cfg else { continue };
        if cfg.ports.is_empty() || (!cfg.multiport() && cfg.port(0).is_none()) {
            continue;
        }
        match stress_device(d, cfg, m.cfg.seed, m.cfg.stress) {
            Ok(s) => done.push(s),
            Err(e) => {
                return Outcome::mismatch(
                    &format!("{} streams (replay: seed={})", d.bus, Hex(m.cfg.seed)),
                    "every byte of every port's stream, both ways",
                    e.as_str(),
                )
            }
        }
    }
    if done.is_empty() {
        return Outcome::skip(
            "no serial= device with ports (nothing says which ports the host serves)",
        );
    }
    Outcome::PassNote(done.join("; "))
}

/// The emergency-write bytes, one config write each; the console's host
/// side checks they arrived (the firmware cannot see them). Revision 2
/// only: at revision 0 QEMU (7.2, 10.0, 11.1) reads the big-endian field
/// as little-endian and sends a NUL for every byte (seen with this peer).
pub fn emergency(m: &mut Machine) -> Outcome {
    let found = devices(m);
    if found.is_empty() {
        return Outcome::skip("no virtio-serial-ccw device");
    }
    let mut done = Vec::new();
    for d in &found {
        let Some(cfg) = &d.cfg else { continue };
        if !cfg.emergency {
            continue;
        }
        if !cfg.ports.iter().any(|p| p.console) {
            continue;
        }
        let mut t = match CcwTransport::open(d.sid, 2) {
            Ok(t) => t,
            Err(e) => return Outcome::fail(&err(&format!("{} open", d.bus), &e)),
        };
        let features = match negotiate(&mut t, 1 << F_EMERG_WRITE) {
            Ok(f) => f,
            Err(e) => return Outcome::fail(&err(&format!("{} negotiate", d.bus), &e)),
        };
        if !has(features, F_EMERG_WRITE) {
            return Outcome::mismatch(
                &format!("{} EMERG_WRITE (emergency-write=on)", d.bus),
                "offered",
                "not offered",
            );
        }
        let mut read = [0u8; CONFIG_LEN];
        if let Err(e) = t.read_config(&mut read) {
            return Outcome::fail(&err(&format!("{} configuration", d.bus), &e));
        }
        let bytes = emergency_bytes(m.cfg.seed, d.bus);
        for b in bytes {
            let w = emergency_write(&read, b, Order::Little);
            if let Err(e) = t.write_config(&w) {
                return Outcome::fail(&err(&format!("{} emergency write", d.bus), &e));
            }
        }
        let _ = t.reset();
        crate::out!("{} {}\n", markers::SERIAL_EMERGENCY, d.bus);
        done.push(format!(
            "{}: {} bytes written; the console's host side checks them",
            d.bus,
            bytes.len()
        ));
    }
    if done.is_empty() {
        return Outcome::skip("no serial= device with emerg and a console port");
    }
    Outcome::PassNote(done.join("; "))
}

/// The host closes the `close=` port: PORT_OPEN 0 comes, and what is
/// written there comes back at once, discarded (QEMU returns a closed
/// port's transmit buffers unread).
pub fn close(m: &mut Machine) -> Outcome {
    let found = devices(m);
    let mut done = Vec::new();
    for d in &found {
        let Some(cfg) = &d.cfg else { continue };
        let Some(port) = cfg.close else { continue };
        match close_port(d, port, m.cfg.seed) {
            Ok(s) => done.push(s),
            Err(e) => {
                return Outcome::mismatch(
                    &format!("{} port {} closed by the host", d.bus, port),
                    "PORT_OPEN 0, then writes returned (discarded)",
                    e.as_str(),
                )
            }
        }
    }
    if done.is_empty() {
        return Outcome::skip("no serial= device names a port to close (close=)");
    }
    Outcome::PassNote(done.join("; "))
}

/// Writes made to the closed port.
const CLOSED_WRITES: usize = 8;

fn close_port(d: &Device, port: u32, seed: u64) -> Result<String, String> {
    let mut s = Session::bring_up(d.sid, &[port], true)?;
    if s.control.is_none() {
        return Err(String::from("no MULTIPORT: no PORT_OPEN to see"));
    }
    let open = s
        .log
        .iter()
        .rev()
        .find(|m| m.control.event == PORT_OPEN && m.control.id == port)
        .map(|m| m.control.value);
    if open != Some(1) {
        return Err(format!(
            "before the close: {} for the port (its host side must be connected)",
            open.map_or(String::from("no PORT_OPEN"), |v| format!("PORT_OPEN {}", v))
                .as_str()
        ));
    }
    let seen = s.log.len();
    crate::out!("{} {} {}\n", markers::SERIAL_CLOSE, d.bus, port);
    let start = now_us();
    let mut closed = None;
    while closed.is_none() && now_us() - start < 5_000_000 {
        s.drain()?;
        closed = s.log[seen..]
            .iter()
            .find(|m| m.control.event == PORT_OPEN && m.control.id == port && m.control.value == 0)
            .map(|_| now_us() - start);
    }
    let Some(after) = closed else {
        return Err(format!(
            "no PORT_OPEN 0 within 5 s of the marker (came: {})",
            if s.log.len() > seen {
                describe(&s.log[seen..])
            } else {
                String::from("no control message")
            }
            .as_str()
        ));
    };
    let (_, _, tx) = s
        .ports
        .iter_mut()
        .find(|(p, _, _)| *p == port)
        .ok_or("no queues for the port")?;
    tx.enable_interrupts(false);
    let mem = Rc::new(DmaMemory::new(CLOSED_WRITES * 64));
    let stream = Stream::new(seed, d.bus, port, Dir::Tx);
    let mut data = [0u8; 64];
    stream.fill(0, &mut data);
    for i in 0..CLOSED_WRITES {
        mem.write(i * 64, &data);
        let buf = DmaBuffer {
            mem: &mem,
            offset: i * 64,
            len: 64,
            device_writable: false,
        };
        tx.add(&[buf], false).map_err(|e| err("add", &e))?;
    }
    tx.kick(&mut s.t).map_err(|e| err("notify", &e))?;
    for i in 0..CLOSED_WRITES {
        tx.poll_used(&mut s.t).map_err(|e| {
            err(
                &format!("write {} of {} to the closed port", i + 1, CLOSED_WRITES),
                &e,
            )
        })?;
    }
    let _ = s.t.reset();
    Ok(format!(
        "{} port {}: PORT_OPEN 0 {} us after the marker; {} writes returned unread",
        d.bus, port, after, CLOSED_WRITES
    ))
}
