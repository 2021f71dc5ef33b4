//! The hostile device (contract `hostile`): the runner's own vhost-user
//! back-end behind a `vhost-user-fs-ccw`, known by its tag. It echoes
//! each chain's device-readable bytes into its device-writable part; on
//! the runner's command it lies once. `hostile.echo` sends seeded
//! requests in batches, checks every byte and the canaries around every
//! buffer it hands the device, and lets the ring code's own checks (ids,
//! lengths, indexes against our shadow) name a lie. Each ring (split, or
//! packed where the device offers it) lies between canaries too, checked
//! after each batch, after the stress and at the end. A queue that lied is
//! broken: nothing more goes on it, the device is reset before its
//! memory is looked at again, and the check fails saying where.

mod irq;

use super::setups::run_counted;
use super::virtio::WANTED;
use crate::check::Outcome;
use crate::dma::DmaMemory;
use crate::fmt::{Hex, ToText};
use crate::format;
use crate::inventory::BusId;
use crate::machine::Machine;
use crate::virtio::ccw::CcwTransport;
use crate::virtio::devices::fs::{self, FsConfig, CONFIG_LEN};
use crate::virtio::guard;
use crate::virtio::indicators::{IndicatorMode, Indicators};
use crate::virtio::queue::{setup_guarded_queue, DmaBuffer, Queue, MAX_QUEUES};
use crate::virtio::stress::Rng;
use crate::virtio::stress::{Completion, Options};
use crate::virtio::transport::{
    driver_ok_status, has, negotiate, Transport, F_EVENT_IDX, F_RING_PACKED,
};
use crate::workloads::hostile::Echoes;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use zvtest_contract::hostile::{payload, Layout, CANARY, REQUEST_QUEUE, TAG};

/// Requests made available before one notification.
const DEPTH: usize = 8;
/// Batches per run: DEPTH * BATCHES requests.
const BATCHES: u64 = 32;
/// The longest request (bytes each way).
const MAX_LEN: u64 = 1024;
/// One request in flight.
struct Request {
    n: u64,
    /// Added to `n` for its payload: the queue's own.
    base: u64,
    layout: Layout,
    mem: Rc<DmaMemory>,
}

impl Request {
    fn new(seed: u64, (base, n): (u64, u64), len: usize) -> Self {
        let layout = Layout::new(len);
        let mem = Rc::new(DmaMemory::new(layout.total));
        let mut bytes = alloc::vec![0u8; layout.total];
        for (at, _) in layout.canaries() {
            for i in 0..CANARY {
                bytes[at + i] = guard::canary_at(at + i);
            }
        }
        let p = payload(seed, base + n, len);
        bytes[layout.read_at..layout.read_at + len].copy_from_slice(&p);
        mem.write(0, &bytes);
        Request {
            n,
            base,
            layout,
            mem,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut b = alloc::vec![0u8; self.layout.total];
        self.mem.read(0, &mut b);
        b
    }

    /// A canary overwritten, named.
    fn canaries(&self, what: &str) -> Result<(), String> {
        let regions = self
            .layout
            .canaries()
            .map(|(at, name)| (at, at + CANARY, name));
        match guard::first_hit(&self.mem, regions) {
            None => Ok(()),
            Some((name, h)) => Err(format!(
                "{}: request {}: canary {} byte {}: expected {}, got {}",
                what, self.n, name, h.byte, h.expected, h.got
            )),
        }
    }

    /// The echo: `used` bytes, the readable part unchanged and copied.
    fn check(&self, seed: u64, used: u32, what: &str) -> Result<(), String> {
        let l = self.layout;
        if used as usize != l.len {
            return Err(format!(
                "{}: request {}: used length: expected {}, got {}",
                what, self.n, l.len, used
            ));
        }
        let b = self.bytes();
        let want = payload(seed, self.base + self.n, l.len);
        for (i, &w) in want.iter().enumerate() {
            if b[l.read_at + i] != w {
                return Err(format!(
                    "{}: request {}: readable byte {} changed by the device: expected {}, got {}",
                    what,
                    self.n,
                    i,
                    w,
                    b[l.read_at + i]
                ));
            }
            if b[l.write_at + i] != w {
                return Err(format!(
                    "{}: request {}: echo byte {}: expected {}, got {}",
                    what,
                    self.n,
                    i,
                    w,
                    b[l.write_at + i]
                ));
            }
        }
        self.canaries(what)
    }
}

/// The device at DRIVER_OK with its queues, if its configuration has our tag.
fn open(sid: u32, bus: BusId) -> Result<(CcwTransport, Indicators, Vec<Queue>), String> {
    let e = |what: &str, e: &dyn ToText| format!("{}: {}", what, e.text().as_str());
    let mut t = CcwTransport::open(sid, 2).map_err(|x| e("open", &x))?;
    // A packed ring where the device offers one (`packed=on`).
    let wanted = WANTED & !(1 << F_EVENT_IDX);
    let features = negotiate(&mut t, wanted).map_err(|x| e("negotiate", &x))?;
    let mut raw = [0u8; CONFIG_LEN];
    t.read_config(&mut raw)
        .map_err(|x| e("configuration", &x))?;
    let config = FsConfig::parse(&raw);
    if config.tag() != TAG.as_bytes() {
        let tag = core::str::from_utf8(config.tag()).unwrap_or("(not UTF-8)");
        return Err(format!(
            "hostile {}: tag: expected '{}', got '{}' (not ours: left untouched)",
            bus, TAG, tag
        ));
    }
    // At most the queues a CCW device has, whatever the device says.
    let queues = u16::try_from(config.num_request_queues)
        .ok()
        .filter(|&n| (1..MAX_QUEUES).contains(&n))
        .ok_or_else(|| {
            format!(
                "hostile {}: num_request_queues: expected 1 to {}, got {}",
                bus,
                MAX_QUEUES - 1,
                config.num_request_queues
            )
        })?;
    let ind =
        Indicators::install(&mut t, IndicatorMode::Classic).map_err(|x| e("indicators", &x))?;
    let packed = has(features, F_RING_PACKED);
    // The high-priority queue and the request queues, each ring between
    // canaries.
    let mut dev = Vec::new();
    for q in 0..=queues {
        dev.push(setup_guarded_queue(&mut t, q, features, packed).map_err(|x| e("queues", &x))?);
    }
    t.set_status(driver_ok_status(t.revision()))
        .map_err(|x| e("DRIVER_OK", &x))?;
    Ok((t, ind, dev))
}

/// What a run on one device found.
struct Echoed {
    requests: u64,
    bytes: u64,
    /// Echoes under the stress engine (its own checks, no canaries).
    stressed: u64,
    /// Failures, each naming device, queue and request.
    failures: Vec<String>,
}

/// Seeded echo requests in batches on the request queue until all are
/// done or the queue breaks.
fn run(
    t: &mut CcwTransport,
    q: &mut Queue,
    (seed, base): (u64, u64),
    what: &str,
    out: &mut Echoed,
) -> Vec<Request> {
    let mut rng = Rng::new(seed ^ 0x6057_11e0 ^ base);
    let mut n = 0u64;
    let mut completions = 0u64;
    for _ in 0..BATCHES {
        let mut flight: Vec<Option<Request>> = (0..q.size()).map(|_| None).collect();
        for _ in 0..DEPTH {
            let len = rng.range(1, MAX_LEN + 1) as usize;
            let r = Request::new(seed, (base, n), len);
            let chain = [
                DmaBuffer {
                    mem: &r.mem,
                    offset: r.layout.read_at,
                    len: len as u32,
                    device_writable: false,
                },
                DmaBuffer {
                    mem: &r.mem,
                    offset: r.layout.write_at,
                    len: len as u32,
                    device_writable: true,
                },
            ];
            match q.add(&chain, false) {
                Ok(token) => flight[usize::from(token)] = Some(r),
                Err(e) => {
                    out.failures
                        .push(format!("{}: request {}: {}", what, n, e.text().as_str()));
                    return flight.into_iter().flatten().collect();
                }
            }
            n += 1;
        }
        if let Err(e) = q.kick(t) {
            out.failures
                .push(format!("{}: notify: {}", what, e.text().as_str()));
            return flight.into_iter().flatten().collect();
        }
        for _ in 0..DEPTH {
            let used = match q.poll_used(t) {
                Ok(u) => u,
                Err(e) => {
                    out.failures.push(format!(
                        "{}: used entry {} (seed {}): {}; queue marked broken",
                        what,
                        completions,
                        Hex(seed),
                        e.text().as_str()
                    ));
                    return flight.into_iter().flatten().collect();
                }
            };
            completions += 1;
            let Some(r) = flight
                .get_mut(usize::from(used.token))
                .and_then(Option::take)
            else {
                out.failures.push(format!(
                    "{}: used entry {}: token {} is no request in flight; queue marked broken",
                    what, completions, used.token
                ));
                return flight.into_iter().flatten().collect();
            };
            if let Err(f) = r.check(seed, used.len, what) {
                out.failures.push(format!(
                    "{} (seed {}); queue marked broken",
                    f.as_str(),
                    Hex(seed)
                ));
                return flight.into_iter().flatten().collect();
            }
            out.requests += 1;
            out.bytes += used.len as u64;
        }
        if let Err(f) = ring_canaries(q, what) {
            out.failures.push(format!(
                "{} after request {} (seed {}); queue marked broken",
                f.as_str(),
                n - 1,
                Hex(seed)
            ));
            return Vec::new();
        }
    }
    Vec::new()
}

/// The canaries around the queue's ring, or the first one hit, named.
fn ring_canaries(q: &Queue, what: &str) -> Result<(), String> {
    match q.ring_canary_hit() {
        None => Ok(()),
        Some((area, i, want, got)) => Err(format!(
            "{}: ring canary {} byte {}: expected {}, got {}",
            what, area, i, want, got
        )),
    }
}

/// Echoes per stress phase, before `stress=`.
const STRESS_REQUESTS: u64 = 256;

/// The request queue under the stress engine, by interrupt then polled,
/// the queue kept full; one QueueStats line per phase.
fn stress(
    t: &mut CcwTransport,
    q: &mut Queue,
    ind: &mut Indicators,
    (seed, factor): (u64, u32),
    (bus, queue): (BusId, u16),
    out: &mut Echoed,
) {
    for (phase, completion) in [Completion::Interrupts, Completion::Polled]
        .into_iter()
        .enumerate()
    {
        let mut w = Echoes {
            seed,
            // Past the batches' numbers: each queue and phase its own payloads.
            base: u64::from(queue) << 40 | (phase as u64 + 1) << 32,
            max_len: MAX_LEN as u32,
        };
        let opts = Options::varied(
            seed,
            u64::from(queue) << 16 | phase as u64,
            q.size(),
            STRESS_REQUESTS * u64::from(factor.max(1)),
            false,
            completion,
            now_us,
        );
        let result = run_counted(t, q, &mut w, &opts, ind);
        // A polled phase left the queue's interrupts off.
        q.enable_interrupts(true);
        let label = format!("request{} {}", queue, completion.name());
        match result {
            Ok(st) => {
                crate::out!("# hostile {} {}: {}\n", bus, label.as_str(), st);
                out.stressed += st.requests;
                if let Err(e) = crate::judge::echo_queue(
                    &format!("hostile {} {}", bus, label.as_str()),
                    (completion == Completion::Polled, false),
                    &st,
                ) {
                    out.failures.push(e);
                }
            }
            Err(f) => {
                out.failures.push(format!(
                    "hostile {} {}: request {} (seed {}): {}; queue marked broken",
                    bus,
                    label.as_str(),
                    f.request,
                    Hex(seed),
                    f.what.as_str()
                ));
                return;
            }
        }
    }
}

fn now_us() -> u64 {
    crate::arch::tod() / crate::arch::TOD_PER_US
}

pub fn echo(m: &mut Machine) -> Outcome {
    let seed = m.cfg.seed;
    let found: Vec<(BusId, u32)> = m
        .inventory
        .virtio_devices(fs::DEVICE_ID)
        .filter(|d| {
            m.cfg
                .shares
                .iter()
                .any(|s| s.bus == d.bus_id() && s.tag.as_str() == TAG)
        })
        .map(|d| (d.bus_id(), d.subchannel.sid))
        .collect();
    if found.is_empty() {
        return Outcome::skip("no hostile device (shares=BUS:zv-hostile on a vhost-user-fs-ccw)");
    }
    let mut failures = Vec::new();
    for (bus, sid) in found {
        let (mut t, mut ind, mut dev) = match open(sid, bus) {
            Ok(x) => x,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        if dev
            .get(usize::from(REQUEST_QUEUE))
            .is_some_and(|q| q.packed)
        {
            crate::out!("# hostile {}: packed rings\n", bus);
        }
        let mut out = Echoed {
            requests: 0,
            bytes: 0,
            stressed: 0,
            failures: Vec::new(),
        };
        // What each queue left in flight, checked after the reset.
        let mut left: Vec<(String, Vec<Request>)> = Vec::new();
        // The queues that failed: no interrupt phase on them.
        let mut broken = Vec::new();
        let count = dev.len() as u16;
        for q in REQUEST_QUEUE..count {
            let what = format!("hostile {} queue {}", bus, q);
            let Some(queue) = dev.get_mut(usize::from(q)) else {
                out.failures
                    .push(format!("{}: no such queue", what.as_str()));
                continue;
            };
            let before = out.failures.len();
            // Each queue its own payloads.
            let base = u64::from(q) << 40;
            left.push((
                what.clone(),
                run(&mut t, queue, (seed, base), &what, &mut out),
            ));
            // A queue that lied is broken: nothing more on it; the others go on.
            if out.failures.len() == before {
                stress(
                    &mut t,
                    queue,
                    &mut ind,
                    (seed, m.cfg.stress),
                    (bus, q),
                    &mut out,
                );
            }
            if out.failures.len() == before {
                if let Err(f) = ring_canaries(queue, &what) {
                    out.failures.push(format!(
                        "{} after the stress (seed {}); queue marked broken",
                        f.as_str(),
                        Hex(seed)
                    ));
                }
            }
            if out.failures.len() != before {
                broken.push(q);
            }
        }
        // A device that asked for a reset says so in its status.
        if let Err(e) =
            crate::virtio::health::needs_reset(&mut t, bus, "at the end of hostile.echo")
        {
            out.failures.push(e);
        }
        // The device lets go of what it holds before we look at it again.
        if let Err(e) = t.reset() {
            out.failures
                .push(format!("hostile {}: reset: {}", bus, e.text().as_str()));
        }
        let mut in_flight = 0;
        for (q, queue) in dev.iter().enumerate() {
            if let Err(f) = ring_canaries(queue, &format!("hostile {} queue {}", bus, q)) {
                out.failures.push(format!("{} (at the end)", f.as_str()));
            }
        }
        for (what, requests) in &left {
            in_flight += requests.len();
            for r in requests {
                if let Err(f) = r.canaries(what) {
                    out.failures.push(format!("{} (at the end)", f.as_str()));
                }
            }
        }
        crate::out!(
            "# hostile {}: {} requests echoed in batches on {} request queues, {} bytes, every byte and canary checked, {} in flight at the end; {} echoed under stress\n",
            bus,
            out.requests,
            count - REQUEST_QUEUE,
            out.bytes,
            in_flight,
            out.stressed
        );
        drop((t, ind, dev));
        // Opened afresh: no notification from the phases above reaches it.
        match open(sid, bus) {
            Ok(opened) => irq::audit(
                opened,
                (bus, seed),
                &broken,
                // Payloads past the batches' and the stress phases'.
                &mut |q, n, len| Request::new(seed, (u64::from(q) << 40 | 3 << 32, n), len),
                &mut out.failures,
            ),
            Err(e) => out
                .failures
                .push(format!("{} (reopened for the interrupt phase)", e.as_str())),
        }
        failures.extend(out.failures);
    }
    if failures.is_empty() {
        Outcome::Pass
    } else {
        Outcome::fail(&failures.join("; "))
    }
}

impl irq::Echo for Request {
    fn buffers(&self) -> [DmaBuffer<'_>; 2] {
        let (l, len) = (self.layout, self.layout.len as u32);
        [
            DmaBuffer {
                mem: &self.mem,
                offset: l.read_at,
                len,
                device_writable: false,
            },
            DmaBuffer {
                mem: &self.mem,
                offset: l.write_at,
                len,
                device_writable: true,
            },
        ]
    }

    fn check(&self, seed: u64, used: u32, what: &str) -> Result<(), String> {
        Request::check(self, seed, used, what)
    }

    fn canaries(&self, what: &str) -> Result<(), String> {
        Request::canaries(self, what)
    }
}
