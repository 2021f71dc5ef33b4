//! virtio-serial: the configuration and features against `serial=`; the
//! MULTIPORT control protocol (DEVICE_READY, PORT_ADD for exactly the
//! configured ports, PORT_READY answered by CONSOLE_PORT, PORT_NAME and
//! PORT_OPEN); every port's two seeded streams moved at once, all ports'
//! queues interleaved, every byte received checked (the host's peer
//! checks what we send); the emergency write; and a port whose host side
//! closes: PORT_OPEN 0, and what we write there discarded.
//!
//! A port whose host side drops mid-stream fails `serial.stress`, naming
//! the offsets; unless `drop=` says the host will drop it and come back:
//! then the drop is named (offsets, bytes in flight), and once PORT_OPEN 1
//! comes (within [`DROP_WAIT_US`]) both streams go on from where the
//! firmware stood, which the drop marker tells the host's peer, so every
//! byte after the resume is still checked at both ends.
//!
//! Every port of a `serial=` device is taken to have its host side
//! connected from boot (the runner serves each on a socket).

use super::setups::{stress_rounds, Setup};
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
    PORT_OPEN, PORT_READY, PORT_REMOVE,
};
use crate::virtio::guard::Slots;
use crate::virtio::indicators::{self, Indicators};
use crate::virtio::queue::{setup_queue, DmaBuffer, Queue, USED_TIMEOUT_US};
use crate::virtio::stress::{Completion, QueueStats};
use crate::virtio::transport::{
    driver_ok_status, has, negotiate, Transport, F_EVENT_IDX, F_IN_ORDER, F_RING_PACKED,
};
use crate::workloads::serial::{describe, judge_control, port_name};
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use zvtest_contract::checks::markers;
use zvtest_contract::inventory::BusId;
use zvtest_contract::serial::{
    emergency_bytes, Chunks, Cutter, Dir, SerialConfig, Stream, DROP_WAIT_US, MAX_CHUNK,
    PLUGGED_BYTES,
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

/// A device past DRIVER_OK: its data queues (port, receive, transmit),
/// its control queues with MULTIPORT, its indicators where a setup asked
/// for them, and every control message it sent so far.
struct Session {
    t: CcwTransport,
    ind: Option<Indicators>,
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
    /// device takes below it: see `t.revision()`), split rings, no
    /// indicators (everything polled).
    fn bring_up_at(sid: u32, rev: u8, ports: &[u32], open: bool) -> Result<Session, String> {
        let s = Self::bring_up_in(sid, rev, None, ports, &[], open)?;
        s.ok_or_else(|| String::from("the device took no revision"))
    }

    /// [`Session::bring_up_at`] as `setup` says (revision, ring format,
    /// EVENT_IDX, indicators): None when the device does not take it
    /// (revision refused, a feature not offered). `later` are ports not
    /// there yet whose queues are set up too (a driver sets up every
    /// queue before DRIVER_OK), but not opened.
    fn bring_up_in(
        sid: u32,
        rev: u8,
        setup: Option<Setup>,
        ports: &[u32],
        later: &[u32],
        open: bool,
    ) -> Result<Option<Session>, String> {
        let rev = setup.map_or(rev, |s| s.revision);
        let mut t = CcwTransport::open(sid, rev).map_err(|e| err("open", &e))?;
        if setup.is_some() && t.revision() != rev {
            return Ok(None);
        }
        let mut wanted = 1 << F_MULTIPORT | 1 << F_EMERG_WRITE;
        let mut asked = 0u64;
        if let Some(s) = setup {
            asked |= u64::from(s.packed) << F_RING_PACKED;
            asked |= u64::from(s.event_idx) << F_EVENT_IDX;
            asked |= u64::from(s.in_order) << F_IN_ORDER;
            wanted |= asked;
        }
        let features = negotiate(&mut t, wanted).map_err(|e| err("negotiate", &e))?;
        if features & asked != asked {
            return Ok(None);
        }
        let packed = has(features, F_RING_PACKED);
        let ind = match setup {
            Some(s) => {
                Some(Indicators::install(&mut t, s.mode).map_err(|e| err("indicators", &e))?)
            }
            None => None,
        };
        let multiport = has(features, F_MULTIPORT);
        let ports: Vec<u32> = if multiport {
            ports.to_vec()
        } else {
            alloc::vec![0]
        };
        let mut queues = Vec::new();
        let all = ports.iter().chain(later.iter().filter(|_| multiport));
        for &p in all {
            let q = |t: &mut CcwTransport, i| {
                setup_queue(t, i, features, packed)
                    .map_err(|e| err(&format!("port {} queue {}", p, i), &e))
            };
            let rx = q(&mut t, rx_queue(p))?;
            let tx = q(&mut t, tx_queue(p))?;
            queues.push((p, rx, tx));
        }
        let control = if multiport {
            Some(
                ControlQueues::setup(&mut t, features, packed)
                    .map_err(|e| err("control queues", &e))?,
            )
        } else {
            None
        };
        t.set_status(driver_ok_status(t.revision()))
            .map_err(|e| err("DRIVER_OK", &e))?;
        let mut s = Session {
            t,
            ind,
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
        Ok(Some(s))
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

/// A lane's slots: a chunk of up to [`MAX_CHUNK`] bytes each, between
/// canaries (checked as each chunk comes back, and for the chunks still
/// out when a round ends or fails).
const SLOTS: Slots = Slots {
    max: MAX_CHUNK as usize,
};

/// One stream's traffic, kept across rounds: [`SLOTS`] in its memory,
/// the stream offset reached, the chunk count.
struct Lane {
    dir: Dir,
    stream: Stream,
    chunks: Chunks,
    mem: Rc<DmaMemory>,
    /// Token and length of the buffer in each slot.
    slots: [Option<(u16, u32)>; DEPTH],
    /// The number of the chunk in each slot.
    chunk: [u64; DEPTH],
    /// Transmit buffers out when the host side dropped (`drop=`): the
    /// device may still return them this round, or keep the one it was
    /// writing (QEMU 7.2 drops that at a close, never to return it).
    orphans: Vec<u16>,
    /// Of them, returned.
    orphans_back: usize,
    /// Chunks made available so far.
    next: u64,
    /// Transmit: bytes made available; receive: bytes received.
    offset: u64,
    /// Transmit: bytes the device took back.
    done: u64,
    /// Where this round's segment of the stream ends.
    end: u64,
    /// This round's figures.
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
            mem: Rc::new(DmaMemory::new(SLOTS.bytes(DEPTH))),
            slots: [None; DEPTH],
            chunk: [0; DEPTH],
            orphans: Vec::new(),
            orphans_back: 0,
            next: 0,
            offset: 0,
            done: 0,
            end: 0,
            stats: QueueStats::default(),
            finished_us: None,
        }
    }

    fn in_flight(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// A store by the device around slot `slot`'s chunk, named: "chunk
    /// N: the device wrote outside the buffer: the canary ...".
    fn stray(&self, slot: usize) -> Option<String> {
        let (_, len) = self.slots[slot]?;
        SLOTS
            .hit(&self.mem, slot, len as usize)
            .map(|t| format!("chunk {}: {}", self.chunk[slot], t.as_str()))
    }

    /// Where the stream stands: transmit bytes taken back, receive bytes
    /// received.
    fn at(&self) -> u64 {
        match self.dir {
            Dir::Tx => self.done,
            Dir::Rx => self.offset,
        }
    }

    /// Starts a round whose segment ends at `end`.
    fn start_round(&mut self, end: u64) {
        self.end = end;
        self.orphans.clear();
        self.orphans_back = 0;
        self.stats = QueueStats::default();
        self.finished_us = (self.at() >= end).then_some(0);
    }
}

/// One port's two streams (transmit, receive).
struct Flow {
    port: u32,
    lanes: [Lane; 2],
    /// Its host side is away (`drop=`): since when (us), and where the
    /// streams resume.
    down: Option<Down>,
    /// What the drop came to, once the host side was back.
    dropped: Option<String>,
}

/// A port whose host side dropped: the offsets both streams resume at
/// (the marker tells the host's peer).
#[derive(Clone, Copy)]
struct Down {
    since: u64,
    tx: u64,
    rx: u64,
    /// Transmit buffers and bytes out at the drop.
    out: (usize, u64),
}

fn now_us() -> u64 {
    crate::arch::tod() / crate::arch::TOD_PER_US
}

/// Makes buffers available on `f`'s queues up to [`DEPTH`]: receive
/// buffers until the round's segment is covered, transmit chunks until
/// it was sent. True if any was.
fn top_up<T: Transport + ?Sized>(
    t: &mut T,
    f: &mut Flow,
    tx: &mut Queue,
    rx: &mut Queue,
    corrupt: Option<(u32, u64)>,
) -> Result<bool, String> {
    let port = f.port;
    let mut any = false;
    if f.down.is_some() {
        // Nothing new for a port whose host side is away.
        return Ok(false);
    }
    for (lane, q) in f.lanes.iter_mut().zip([tx, rx]) {
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
            if sent >= lane.end {
                break;
            }
            let len = (lane.chunks.len(lane.next) as u64).min(lane.end - sent) as u32;
            let slot = lane.slots.iter().position(Option::is_none).unwrap_or(0);
            let at = SLOTS.buffer(slot);
            SLOTS.lay(&lane.mem, slot, len as usize);
            if lane.dir == Dir::Tx {
                let mut data = [0u8; MAX_CHUNK as usize];
                lane.stream.fill(lane.offset, &mut data[..len as usize]);
                // Test only (`corrupt=`): one byte sent wrong, which the
                // host's check must catch.
                if let Some((_, bad)) = corrupt.filter(|&(p, o)| {
                    p == port && (lane.offset..lane.offset + u64::from(len)).contains(&o)
                }) {
                    data[(bad - lane.offset) as usize] ^= 0xff;
                }
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
            lane.chunk[slot] = lane.next;
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
fn take_back(f: &mut Flow, tx: &mut Queue, rx: &mut Queue, start: u64) -> Result<bool, String> {
    let mut any = false;
    let port = f.port;
    for (lane, q) in f.lanes.iter_mut().zip([tx, rx]) {
        while let Some(used) = q.try_used().map_err(|e| err(lane.dir.name(), &e))? {
            any = true;
            if let Some(i) = lane.orphans.iter().position(|&t| t == used.token) {
                // Out at the drop: its bytes are accounted as lost with it.
                lane.orphans.swap_remove(i);
                lane.orphans_back += 1;
                continue;
            }
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
            // A store outside the chunk first: the more basic fault.
            if let Some(e) = lane.stray(slot) {
                return Err(format!("port {} {}: {}", port, lane.dir.name(), e.as_str()));
            }
            let (_, len) = lane.slots[slot].take().unwrap_or((0, 0));
            lane.stats.completed += 1;
            match lane.dir {
                Dir::Tx => {
                    lane.done += u64::from(len);
                    lane.stats.bytes += u64::from(len);
                }
                Dir::Rx => {
                    let n = used.len as usize;
                    if n > len as usize {
                        return Err(format!(
                            "port {} rx: the device wrote {} bytes into a {}-byte buffer",
                            port, n, len
                        ));
                    }
                    let mut got = [0u8; MAX_CHUNK as usize];
                    lane.mem.read(SLOTS.buffer(slot), &mut got[..n]);
                    if lane.offset + n as u64 > lane.end {
                        return Err(format!(
                            "port {} rx: {} bytes at offset {}, past the {} the host sends",
                            port, n, lane.offset, lane.end
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
                            lane.next - lane.in_flight() as u64 - 1
                        ));
                    }
                    lane.offset += n as u64;
                    lane.stats.bytes += n as u64;
                }
            }
            if lane.at() >= lane.end && lane.finished_us.is_none() {
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

/// The setups `serial.stress` moves the streams in, each once: those of
/// [`stress_rounds`] (revision 2 split and packed, EVENT_IDX on and off,
/// classic and adapter indicators by interrupt, classic polled; revision
/// 0), without its repeated last round (nothing here needs it).
fn serial_rounds() -> Vec<(Setup, Completion)> {
    let mut r = stress_rounds(false);
    r.pop();
    r
}

/// Which of `rounds` the device takes: its offer at revision 2, and
/// whether it takes revision 0 (each round is skipped else, as blk and
/// scsi skip theirs).
fn rounds_taken(sid: u32, rounds: &[(Setup, Completion)]) -> Result<Vec<bool>, String> {
    let mut t = CcwTransport::open(sid, 2).map_err(|e| err("open", &e))?;
    let offer = if t.revision() == 2 {
        negotiate(&mut t, 0)
            .and_then(|_| t.device_features())
            .map_err(|e| err("features", &e))?
    } else {
        0
    };
    let _ = t.reset();
    let rev0 = CcwTransport::open(sid, 0).map_err(|e| err("open", &e))?;
    let legacy = rev0.revision() == 0;
    Ok(rounds
        .iter()
        .map(|(s, _)| {
            if s.revision == 0 {
                return legacy;
            }
            s.revision == 2
                && offer != 0
                && (!s.packed || has(offer, F_RING_PACKED))
                && (!s.event_idx || has(offer, F_EVENT_IDX))
                && (!s.in_order || has(offer, F_IN_ORDER))
        })
        .collect())
}

/// Every port's streams on one device, round by round: each round a
/// setup of [`serial_rounds`] the device takes, brought up afresh (a
/// reset drops the ports' open state and every buffer), carrying the
/// next segment of each stream. The segments split `bytes` evenly over
/// the rounds; the stress marker of each round tells the peers where its
/// segment ends, and the host sends no further.
fn stress_device(d: &Device, cfg: &SerialConfig, seed: u64, stress: u32) -> Result<String, String> {
    let ports = stream_ports(cfg);
    let bytes = u64::from(cfg.bytes) * u64::from(stress);
    let all = serial_rounds();
    let taken = rounds_taken(d.sid, &all)?;
    let rounds: Vec<(Setup, Completion)> = all
        .iter()
        .zip(&taken)
        .filter(|(_, &t)| t)
        .map(|(r, _)| *r)
        .collect();
    if rounds.is_empty() {
        return Err(String::from("the device takes none of the setups"));
    }
    let mut flows: Vec<Flow> = ports
        .iter()
        .map(|&port| Flow {
            port,
            lanes: [
                Lane::new(seed, d.bus, port, Dir::Tx),
                Lane::new(seed, d.bus, port, Dir::Rx),
            ],
            down: None,
            dropped: None,
        })
        .collect();
    let n = rounds.len() as u64;
    let start = now_us();
    let mut buffers = 0;
    let mut interrupts = 0;
    for (i, &(setup, completion)) in rounds.iter().enumerate() {
        let end = bytes * (i as u64 + 1) / n;
        let label = format!("{} {}", setup.label().as_str(), completion.name());
        let r = stress_round(d, setup, completion, &mut flows, end, &label, cfg).map_err(|e| {
            // The chunks still out, too: a stray store may be the cause.
            let stray = match strays(&flows) {
                Some(s) => format!("; {} (in flight)", s.as_str()),
                None => String::new(),
            };
            format!("{}: {}{}", label.as_str(), e.as_str(), stray.as_str())
        })?;
        buffers += r.0;
        interrupts += r.1;
    }
    // drop= promised a drop: one that never came is no pass.
    let mut drops = String::new();
    if let Some(p) = cfg.drop {
        match flows.iter().find(|f| f.port == p).map(|f| &f.dropped) {
            Some(Some(note)) => drops = format!("; {}", note.as_str()),
            _ => {
                return Err(format!(
                    "drop= says the host side of port {} drops and comes back during the streams; it never dropped",
                    p
                ))
            }
        }
    }
    let skipped: Vec<String> = all
        .iter()
        .zip(&taken)
        .filter(|(_, &t)| !t)
        .map(|((s, c), _)| format!("{} {}", s.label().as_str(), c.name()))
        .collect();
    Ok(format!(
        "{}: {} ports, {} bytes each way each over {} setups, {} buffers, {} interrupts, {} ms{}{}",
        d.bus,
        flows.len(),
        bytes,
        rounds.len(),
        buffers,
        interrupts,
        (now_us() - start) / 1000,
        if skipped.is_empty() {
            String::new()
        } else {
            format!(" (not offered: {})", skipped.join(", ").as_str())
        }
        .as_str(),
        drops.as_str()
    ))
}

/// One round: the device brought up in `setup`, every port opened, each
/// stream moved on to `end`, every byte received checked. Returns the
/// buffers and interrupts it took.
fn stress_round(
    d: &Device,
    setup: Setup,
    completion: Completion,
    flows: &mut [Flow],
    end: u64,
    label: &str,
    cfg: &SerialConfig,
) -> Result<(u64, u64), String> {
    let corrupt = cfg.corrupt;
    let ports: Vec<u32> = flows.iter().map(|f| f.port).collect();
    let ports = ports.as_slice();
    let mut s = Session::bring_up_in(d.sid, setup.revision, Some(setup), ports, &[], true)?
        .ok_or("the device no longer takes this setup")?;
    // A port whose host side is away is not announced open.
    let mut away = Vec::new();
    if s.control.is_some() {
        for &p in ports {
            let open = s
                .log
                .iter()
                .rev()
                .find(|m| m.control.event == PORT_OPEN && m.control.id == p)
                .map(|m| m.control.value);
            let expected_drop = cfg.drop == Some(p)
                && flows
                    .iter()
                    .any(|f| f.port == p && f.dropped.is_none() && f.down.is_none());
            if open != Some(1) && expected_drop {
                away.push(p);
                continue;
            }
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
    let interrupts = completion == Completion::Interrupts;
    let mut queues: Vec<(Queue, Queue)> = Vec::new();
    for f in flows.iter_mut() {
        let i = s
            .ports
            .iter()
            .position(|(p, _, _)| *p == f.port)
            .ok_or_else(|| format!("port {}: no queues", f.port))?;
        let (_, mut rx, mut tx) = s.ports.swap_remove(i);
        // Test only (`mute`): interrupts waited for but not asked for.
        rx.enable_interrupts(interrupts && !cfg.mute);
        tx.enable_interrupts(interrupts && !cfg.mute);
        queues.push((tx, rx));
        for l in f.lanes.iter_mut() {
            l.start_round(end);
        }
    }
    if let Some(c) = s.control.as_mut() {
        // A host that closes a port must wake an interrupt-driven wait.
        c.enable_interrupts(interrupts);
    }
    crate::out!("{} {} {} {}\n", markers::SERIAL_STRESS, d.bus, end, label);
    let ints0 = indicators::interrupts_seen();
    let start = now_us();
    // The host side dropped between rounds (drop=): the streams stand
    // where the last round left them, nothing in flight.
    for f in flows.iter_mut().filter(|f| away.contains(&f.port)) {
        went_down(d.bus, cfg, f, end, start, start);
    }
    let mut ctl_seen = s.log.len();
    let mut last = start;
    let mut spins = 0u32;
    // An interrupt-driven wait ran out: what the device returned by now
    // came without the interrupt it owed.
    let mut waited_out = false;
    loop {
        let seen = indicators::interrupts_seen();
        if let Some(ind) = s.ind.as_mut() {
            if interrupts {
                for (f, (tx, rx)) in flows.iter_mut().zip(&queues) {
                    for (l, q) in f.lanes.iter_mut().zip([tx, rx]) {
                        l.stats.interrupts += u64::from(ind.queue_flagged(q.index));
                    }
                }
            }
            // Before the rings are read: what the device returns after
            // this raises a new interrupt (adapter: summary 0 -> 1).
            ind.acknowledge();
        }
        let mut progress = false;
        for (f, (tx, rx)) in flows.iter_mut().zip(queues.iter_mut()) {
            progress |= top_up(&mut s.t, f, tx, rx, corrupt)
                .map_err(|e| format!("port {} {}", f.port, e.as_str()))?;
        }
        if interrupts && cfg.mute {
            // Test only: every look at the rings waits for the interrupt
            // first, so a fast host cannot finish the round without one.
            waited_out = !s.t.wait(USED_TIMEOUT_US, &mut || {
                indicators::interrupts_seen() != seen
            });
        }
        for (f, (tx, rx)) in flows.iter_mut().zip(queues.iter_mut()) {
            let came = take_back(f, tx, rx, start)?;
            if came && waited_out {
                return Err(format!(
                    "port {}: buffers returned, but no interrupt came for them within {} ms",
                    f.port,
                    USED_TIMEOUT_US / 1000
                ));
            }
            progress |= came;
        }
        s.drain()?;
        let news: Vec<(u32, u16)> = s.log[ctl_seen..]
            .iter()
            .filter(|m| m.control.event == PORT_OPEN)
            .map(|m| (m.control.id, m.control.value))
            .collect();
        ctl_seen = s.log.len();
        for (id, value) in news {
            let Some(i) = flows.iter().position(|f| f.port == id) else {
                continue;
            };
            if value != 0 {
                if let Some(down) = flows[i].down.take() {
                    came_back(d.bus, cfg, &mut flows[i], down);
                    last = now_us();
                }
                continue;
            }
            let expected = cfg.drop == Some(id) && flows[i].dropped.is_none();
            if expected && flows[i].down.is_none() {
                // What the device returned before it said so is in the
                // rings: the offsets count it.
                let (tx, rx) = &mut queues[i];
                take_back(&mut flows[i], tx, rx, start)?;
                went_down(d.bus, cfg, &mut flows[i], end, start, now_us());
                continue;
            }
            let f = &flows[i];
            let [tx, rx] = &f.lanes;
            return Err(format!(
                "the host closed port {} (PORT_OPEN 0) with tx at {} and rx at {} of {} bytes ({}: {} tx bytes in {} buffers in flight, {} rx buffers posted){}",
                id,
                tx.done,
                rx.offset,
                end,
                port_label(cfg, id).as_str(),
                tx.offset - tx.done,
                tx.in_flight(),
                rx.in_flight(),
                if cfg.drop == Some(id) {
                    " (drop= allows one drop: this is another)"
                } else {
                    ""
                }
            ));
        }
        if let Some((f, down)) = flows
            .iter()
            .find_map(|f| f.down.map(|d| (f, d)))
            .filter(|(_, down)| now_us() - down.since > crate::host_wait::us(DROP_WAIT_US))
        {
            return Err(format!(
                "the host closed port {} (PORT_OPEN 0) with tx at {} and rx at {} of {} bytes ({}: {} tx bytes in {} buffers in flight), and it did not come back (no PORT_OPEN 1) within {}",
                f.port,
                down.tx,
                down.rx,
                end,
                port_label(cfg, f.port).as_str(),
                down.out.1,
                down.out.0,
                crate::host_wait::text(DROP_WAIT_US).as_str()
            ));
        }
        let waiting = flows.iter().any(|f| f.down.is_some());
        if !waiting
            && flows
                .iter()
                .all(|f| f.lanes.iter().all(|l| l.finished_us.is_some()))
        {
            break;
        }
        spins = spins.wrapping_add(1);
        if progress {
            spins = 0;
            last = now_us();
            continue;
        }
        if !interrupts && !spins.is_multiple_of(256) {
            continue;
        }
        if waiting {
            // The reconnect wait has its own deadline (above); the other
            // ports' streams are judged again once it is over.
            last = now_us();
            if interrupts {
                s.t.wait(USED_TIMEOUT_US, &mut || {
                    indicators::interrupts_seen() != seen
                });
            }
            continue;
        }
        let idle = now_us() - last;
        if idle > USED_TIMEOUT_US {
            let stuck: Vec<String> = flows
                .iter()
                .flat_map(|f| {
                    f.lanes
                        .iter()
                        .filter(|l| l.finished_us.is_none())
                        .map(move |l| {
                            format!(
                                "port {} {} at {} of {} bytes ({} buffers in flight)",
                                f.port,
                                l.dir.name(),
                                l.at(),
                                end,
                                l.in_flight()
                            )
                        })
                })
                .collect();
            return Err(format!(
                "nothing moved for {} ms{}: {}",
                USED_TIMEOUT_US / 1000,
                if interrupts {
                    " (no interrupt came)"
                } else {
                    ""
                },
                stuck.join(", ").as_str()
            ));
        }
        if interrupts {
            // Asleep until an interrupt of either kind, or the timeout.
            waited_out = !s.t.wait(USED_TIMEOUT_US + 1 - idle, &mut || {
                indicators::interrupts_seen() != seen
            });
        }
    }
    // The chunks still out at the end: their canaries too.
    if let Some(e) = strays(flows) {
        return Err(format!(
            "{} (in flight at the end of the round)",
            e.as_str()
        ));
    }
    let elapsed = now_us() - start;
    let mut buffers = 0;
    for f in flows.iter() {
        for l in &f.lanes {
            let mut st = l.stats;
            st.elapsed_us = l.finished_us.unwrap_or(elapsed).max(1);
            crate::out!(
                "# serial {} port{} {} {}: {}\n",
                d.bus,
                f.port,
                l.dir.name(),
                label,
                st
            );
            buffers += st.completed;
        }
    }
    let _ = s.t.reset();
    Ok((buffers, u64::from(indicators::interrupts_seen() - ints0)))
}

/// Every port's two streams at once, in every setup the device takes,
/// every byte received checked.
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
    let mut error = None;
    // A look a millisecond after the first few: the host may take seconds.
    crate::arch::timer::poll_until(crate::host_wait::us(CLOSE_WAIT_US), || {
        if let Err(e) = s.drain() {
            error = Some(e);
            return true;
        }
        closed = s.log[seen..]
            .iter()
            .find(|m| m.control.event == PORT_OPEN && m.control.id == port && m.control.value == 0)
            .map(|_| now_us() - start);
        closed.is_some()
    });
    if let Some(e) = error {
        return Err(e);
    }
    let Some(after) = closed else {
        return Err(format!(
            "no PORT_OPEN 0 within {} of the marker (came: {})",
            crate::host_wait::text(CLOSE_WAIT_US).as_str(),
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

/// How long the host has to act on a hot-plug marker.
const HOTPLUG_WAIT_US: u64 = 5_000_000;
/// How long the host has to close a port after our marker asked it to.
const CLOSE_WAIT_US: u64 = 5_000_000;

/// The host unplugs the `unplug=` port (PORT_REMOVE for exactly that
/// port must come) and plugs the `plug=` port (PORT_ADD for it; once we
/// answer PORT_READY, its PORT_NAME and PORT_OPEN 1, its host side being
/// connected; then [`PLUGGED_BYTES`] of its stream written there, which
/// the host's peer checks).
pub fn hotplug(m: &mut Machine) -> Outcome {
    let found = devices(m);
    let mut done = Vec::new();
    for d in &found {
        let Some(cfg) = &d.cfg else { continue };
        if cfg.unplug.is_none() && cfg.plug.is_none() {
            continue;
        }
        match hotplug_device(d, cfg, m.cfg.seed) {
            Ok(s) => done.push(s),
            Err((what, expected, got)) => {
                return Outcome::mismatch(
                    &format!("{} {}", d.bus, what.as_str()),
                    expected.as_str(),
                    got.as_str(),
                )
            }
        }
    }
    if done.is_empty() {
        return Outcome::skip("no serial= device names a port to unplug or plug (unplug=, plug=)");
    }
    Outcome::PassNote(done.join("; "))
}

type Mismatch = (String, String, String);

fn plain(what: &str, e: String) -> Mismatch {
    (String::from(what), String::from("no error"), e)
}

/// Prints `marker` for `port` and collects control messages until one
/// `wanted` arrives or the wait runs out: the messages that came.
fn after_marker(
    s: &mut Session,
    marker: &str,
    bus: BusId,
    port: u32,
    wanted: impl Fn(&Message) -> bool,
) -> Result<(Vec<Message>, Option<u64>), String> {
    let seen = s.log.len();
    crate::out!("{} {} {}\n", marker, bus, port);
    let start = now_us();
    let (mut after, mut error) = (None, None);
    // A look a millisecond after the first few: the host may take seconds.
    crate::arch::timer::poll_until(crate::host_wait::us(HOTPLUG_WAIT_US), || {
        if let Err(e) = s.drain() {
            error = Some(e);
            return true;
        }
        if s.log[seen..].iter().any(&wanted) {
            after = Some(now_us() - start);
        }
        after.is_some()
    });
    match error {
        Some(e) => Err(e),
        None => Ok((s.log[seen..].to_vec(), after)),
    }
}

fn came(log: &[Message]) -> String {
    if log.is_empty() {
        String::from("no control message")
    } else {
        describe(log)
    }
}

fn hotplug_device(d: &Device, cfg: &SerialConfig, seed: u64) -> Result<String, Mismatch> {
    let ports: Vec<u32> = cfg.ports.iter().map(|p| p.id).collect();
    let later: Vec<u32> = cfg.plug.iter().map(|p| p.id).collect();
    let mut s = Session::bring_up_in(d.sid, 2, None, &ports, &later, true)
        .map_err(|e| plain("bring-up", e))?
        .ok_or_else(|| plain("bring-up", String::from("the device took no revision")))?;
    if s.control.is_none() {
        return Err((
            String::from("MULTIPORT"),
            String::from("offered (ports come and go only with it)"),
            String::from("not offered"),
        ));
    }
    let mut notes = Vec::new();
    if let Some(id) = cfg.unplug {
        let (log, after) = after_marker(&mut s, markers::SERIAL_UNPLUG, d.bus, id, |m| {
            m.control.event == PORT_REMOVE
        })
        .map_err(|e| plain("unplug", e))?;
        let what = format!("port {} unplugged by the host", id);
        let Some(after) = after else {
            return Err((
                what,
                format!("PORT_REMOVE for port {}", id),
                format!(
                    "none within {} of the marker (came: {})",
                    crate::host_wait::text(HOTPLUG_WAIT_US).as_str(),
                    came(&log).as_str()
                ),
            ));
        };
        // Only the port's own messages: its removal, its host side
        // closing with it.
        if let Some(m) = log
            .iter()
            .find(|m| m.control.id != id || !matches!(m.control.event, PORT_REMOVE | PORT_OPEN))
        {
            return Err((
                what,
                format!("PORT_REMOVE for port {} (and nothing for another port)", id),
                format!(
                    "{} for port {} (came: {})",
                    event_name(m.control.event),
                    m.control.id,
                    came(&log).as_str()
                ),
            ));
        }
        notes.push(format!(
            "port {}: {} {} us after the marker",
            id,
            describe(&log).as_str(),
            after
        ));
    }
    if let Some(p) = &cfg.plug {
        let id = p.id;
        let what = format!("port {} plugged by the host", id);
        let (log, after) = after_marker(&mut s, markers::SERIAL_PLUG, d.bus, id, |m| {
            m.control.event == PORT_ADD
        })
        .map_err(|e| plain("plug", e))?;
        let Some(after) = after else {
            return Err((
                what,
                format!("PORT_ADD for port {}", id),
                format!(
                    "none within {} of the marker (came: {})",
                    crate::host_wait::text(HOTPLUG_WAIT_US).as_str(),
                    came(&log).as_str()
                ),
            ));
        };
        if let Some(m) = log.iter().find(|m| m.control.id != id) {
            return Err((
                what,
                format!("PORT_ADD for port {} only", id),
                format!(
                    "{} for port {} (came: {})",
                    event_name(m.control.event),
                    m.control.id,
                    came(&log).as_str()
                ),
            ));
        }
        let seen = s.log.len();
        s.send(id, PORT_READY, 1)
            .map_err(|e| plain("PORT_READY", e))?;
        let answer = s.log[seen..].to_vec();
        let (want_name, got_name) = port_name(p.name.as_deref(), &answer, id);
        if want_name != got_name {
            return Err((
                format!("port {} PORT_NAME after PORT_READY", id),
                String::from(want_name),
                got_name,
            ));
        }
        let open = answer
            .iter()
            .rev()
            .find(|m| m.control.event == PORT_OPEN && m.control.id == id)
            .map(|m| m.control.value);
        if open != Some(1) {
            return Err((
                format!(
                    "port {} PORT_OPEN after PORT_READY (its host side is connected)",
                    id
                ),
                String::from("1"),
                format!(
                    "{} (came: {})",
                    open.map_or(String::from("none"), |v| format!("{}", v))
                        .as_str(),
                    came(&answer).as_str()
                ),
            ));
        }
        s.send(id, PORT_OPEN, 1)
            .map_err(|e| plain("PORT_OPEN", e))?;
        // The new port carries bytes: the peer checks them.
        let (_, _, tx) = s
            .ports
            .iter_mut()
            .find(|(q, _, _)| *q == id)
            .ok_or_else(|| plain("queues", format!("none for port {}", id)))?;
        tx.enable_interrupts(false);
        let mem = Rc::new(DmaMemory::new(PLUGGED_BYTES));
        let mut data = [0u8; PLUGGED_BYTES];
        Stream::new(seed, d.bus, id, Dir::Tx).fill(0, &mut data);
        // Test only (`corrupt=`): one byte sent wrong for the host to catch.
        if let Some((_, bad)) = cfg
            .corrupt
            .filter(|&(p, o)| p == id && o < PLUGGED_BYTES as u64)
        {
            data[bad as usize] ^= 0xff;
        }
        mem.write(0, &data);
        let buf = DmaBuffer {
            mem: &mem,
            offset: 0,
            len: PLUGGED_BYTES as u32,
            device_writable: false,
        };
        tx.submit(&mut s.t, &[buf], false)
            .and_then(|_| tx.poll_used(&mut s.t))
            .map_err(|e| plain(&format!("port {} write", id), err("transmit", &e)))?;
        notes.push(format!(
            "port {}: PORT_ADD {} us after the marker, then {}; {} bytes written",
            id,
            after,
            describe(&answer).as_str(),
            PLUGGED_BYTES
        ));
    }
    let _ = s.t.reset();
    Ok(format!("{}: {}", d.bus, notes.join("; ").as_str()))
}

/// The first chunk in flight on any port whose canaries the device
/// changed: "port P DIR: chunk N: the device wrote outside the buffer: ...".
fn strays(flows: &[Flow]) -> Option<String> {
    flows.iter().find_map(|f| {
        f.lanes.iter().find_map(|l| {
            (0..DEPTH).find_map(|slot| {
                l.stray(slot)
                    .map(|e| format!("port {} {}: {}", f.port, l.dir.name(), e.as_str()))
            })
        })
    })
}

/// `port 2 (org.zvtest.two)`.
fn port_label(cfg: &SerialConfig, port: u32) -> String {
    match cfg.port(port).and_then(|p| p.name.as_deref()) {
        Some(n) => format!("port {} ({})", port, n),
        None => format!("port {}", port),
    }
}

/// `f`'s host side dropped (`drop=`): the transmit buffers out are given
/// up (their bytes reached the host before the drop or are lost with
/// it), and both streams resume where the firmware stands: transmit
/// after every byte it handed to the device, receive after every byte
/// it received and checked. The marker tells the host's peer so.
fn went_down(bus: BusId, cfg: &SerialConfig, f: &mut Flow, end: u64, start: u64, now: u64) {
    let [tx, rx] = &mut f.lanes;
    let out_bytes = tx.offset - tx.done;
    let mut out = 0;
    for slot in tx.slots.iter_mut() {
        if let Some((token, _)) = slot.take() {
            tx.orphans.push(token);
            out += 1;
        }
    }
    tx.done = tx.offset;
    if tx.done >= tx.end && tx.finished_us.is_none() {
        tx.finished_us = Some(now - start);
    }
    let down = Down {
        since: now,
        tx: tx.offset,
        rx: rx.offset,
        out: (out, out_bytes),
    };
    crate::out!(
        "# serial {} {} dropped by the host: tx at {} ({} buffers, {} bytes in flight), rx at {} ({} buffers posted) of {} bytes; waiting up to {} for it to come back\n",
        bus,
        port_label(cfg, f.port).as_str(),
        down.tx,
        out,
        out_bytes,
        down.rx,
        rx.in_flight(),
        end,
        crate::host_wait::text(DROP_WAIT_US).as_str()
    );
    crate::out!(
        "{} {} {} tx {} rx {}\n",
        markers::SERIAL_DROP,
        bus,
        f.port,
        down.tx,
        down.rx
    );
    f.down = Some(down);
}

/// `f`'s host side is back (PORT_OPEN 1): its streams go on from the
/// offsets of the drop.
fn came_back(bus: BusId, cfg: &SerialConfig, f: &mut Flow, down: Down) {
    let ms = (now_us() - down.since) / 1000;
    let label = port_label(cfg, f.port);
    let tx = &f.lanes[0];
    crate::out!(
        "# serial {} {} back (PORT_OPEN 1) after {} ms: tx resumes at {}, rx at {}; {} of the {} tx buffers out at the drop came back (QEMU keeps the one it was writing at a close)\n",
        bus,
        label.as_str(),
        ms,
        down.tx,
        down.rx,
        tx.orphans_back,
        down.out.0
    );
    f.dropped = Some(format!(
        "{} dropped by the host at tx {} ({} bytes in flight), rx {}, back after {} ms; both streams resumed there",
        label.as_str(),
        down.tx,
        down.out.1,
        down.rx,
        ms
    ));
}
