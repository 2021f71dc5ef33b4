//! Every CPU at once: each CPU owns a queue of the same device and
//! stresses it with verified data while the others do the same, all of
//! them taking the device's floating I/O interrupts (`smp::share_io`).
//!
//! The device is set up whole on CPU 0 first (no channel program may run
//! while the CPUs share I/O); each CPU then gets its queue, a lane that
//! notifies only that queue with a cookie of its own
//! (`virtio::lane::Lane`), and a workload touching only what no other CPU
//! writes. Accounting: the stress engine's book takes every used id once
//! (a second hand-out of one is a failure naming it); every request asked
//! for completes; every subchannel interrupt a CPU takes finds status
//! (QEMU makes a subchannel status pending and raises its interrupt only
//! when none is pending, hw/s390x/css.c `css_conditional_io_interrupt`,
//! and only TEST SUBCHANNEL clears it: an interrupt whose TSCH finds
//! nothing was taken twice); and no more subchannel interrupts than
//! completions (virtio-ccw raises at most one per used-buffer
//! notification, hw/s390x/virtio-ccw.c `virtio_ccw_notify`). A lost
//! interrupt leaves its CPU's wait to time out: the failure names the
//! CPU, the device, the queue, the oldest request in flight and the seed.

use super::blk::{self as blk_suite, Disk, Open};
use super::net as net_suite;
use super::rng as rng_suite;
use super::setups::Setup;
use crate::arch::context::CLASS_IO;
use crate::arch::smp as arch_smp;
use crate::check::Outcome;
use crate::cmdline::Inject;
use crate::css::channel;
use crate::disk::{self, HeaderSays};
use crate::dma::DeviceHeld;
use crate::fmt::Hex;
use crate::format;
use crate::machine::Machine;
use crate::net::{answer_of, echo_frame, echo_id, echo_len, first_difference, EchoKind, NetPeer};
use crate::smp;
use crate::virtio::devices::blk::{self, Order};
use crate::virtio::devices::net::{self as dev, RxPool, TxPool};
use crate::virtio::devices::rng::{self, Rng as RngDevice};
use crate::virtio::indicators::{IndicatorMode, SummaryClear};
use crate::virtio::lane::Lane;
use crate::virtio::queue::Queue;
use crate::virtio::stress::{
    self, Completion, Options, Plan, Poison, QueueStats, Rng, ShapeLimits,
};
use crate::virtio::transport::{has, Transport, F_INDIRECT_DESC};
use crate::workloads::blk::{Medium, Mix, Op, Req, Traffic};
use crate::workloads::rng::Entropy;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use zvtest_contract::checks::markers;
use zvtest_contract::disk::STRIPE;

/// Random requests per CPU, before `stress=`.
const REQUESTS: u64 = 300;

/// How long the CPUs may take together (eight CPUs share two host cores
/// under TCG); below the check's own timeout.
const PHASE_TIMEOUT_US: u64 = 90_000_000;

fn now_us() -> u64 {
    crate::arch::tod() / crate::arch::TOD_PER_US
}

/// The CPUs as the report names them.
fn cpu_name(n: usize) -> String {
    match smp::address(n) {
        Some(a) => format!("CPU {} (address {})", n, a),
        None => format!("CPU {}", n),
    }
}

/// Every configured CPU's number (those that are not ready included:
/// each is given its queue, and one that cannot take it is named).
fn all_cpus(m: &Machine) -> Vec<usize> {
    core::iter::once(0)
        .chain(m.smp.others.iter().map(|c| c.number))
        .collect()
}

/// One CPU's interrupt figures at a moment.
#[derive(Clone, Copy, Default)]
struct Counts {
    io: u32,
    adapter: u32,
    status: u32,
    empty: u32,
    wakeups: u32,
}

fn counts(n: usize) -> Counts {
    let c = arch_smp::counters(n);
    let t = channel::taken(n);
    Counts {
        io: c.by_class[CLASS_IO as usize].load(Ordering::SeqCst),
        adapter: t.adapter.load(Ordering::SeqCst),
        status: t.status.load(Ordering::SeqCst),
        empty: t.empty.load(Ordering::SeqCst),
        wakeups: c.external_calls.load(Ordering::SeqCst),
    }
}

impl Counts {
    fn since(self, before: Counts) -> Counts {
        Counts {
            io: self.io.wrapping_sub(before.io),
            adapter: self.adapter.wrapping_sub(before.adapter),
            status: self.status.wrapping_sub(before.status),
            empty: self.empty.wrapping_sub(before.empty),
            wakeups: self.wakeups.wrapping_sub(before.wakeups),
        }
    }
}

/// What one CPU drives: its queue, its lane, what it knows of the disk.
struct BlkWork<'i> {
    queue: Queue,
    lane: Lane,
    /// The adapter summary to clear before each wait (adapter indicators).
    summary: Option<SummaryClear<'i>>,
    read_all: bool,
    /// The entropy device's queue, driven first by this CPU (alongside
    /// the others' disk traffic).
    rng: Option<RngWork>,
    medium: Medium,
    /// Every writable stripe of the disk and this CPU's own.
    all_stripes: Vec<u64>,
    per_req_max: u32,
    flush: bool,
    indirect: u64,
    seed: u64,
    stream: u64,
    requests: u64,
    /// Hand the engine the first used id twice (`inject=double`).
    double: bool,
    /// Take the subchannel's status before each wait (`inject=steal`).
    steal: Option<u32>,
    /// (k, n): lane k of n.
    share: (u64, u64),
    result: Option<Result<[QueueStats; 3], String>>,
    counts: (u64, u64, u64),
}

/// The entropy device's request queue and its lane.
struct RngWork {
    dev: RngDevice,
    lane: Lane,
    bus: crate::inventory::BusId,
    indirect: bool,
    seed: u64,
    requests: u64,
    result: Option<Result<QueueStats, String>>,
}

/// Entropy requests, each answer held to its canary.
fn drive_rng(r: &mut RngWork, summary: &Option<SummaryClear<'_>>) {
    let q = r.dev.queue_mut();
    let opts = Options::varied(
        r.seed,
        0xe0 << 16,
        q.size(),
        r.requests,
        r.indirect,
        Completion::Interrupts,
        now_us,
    );
    r.result = Some(
        stress::run(
            &mut r.lane,
            q,
            &mut Entropy,
            &opts,
            &mut || clear(summary),
            &mut |_, _| {},
        )
        .map_err(|f| format!("request {}: {}", f.request, f.what.as_str())),
    );
}

/// A CPU's work, moved to that CPU and back.
struct Owned<T>(T);

// SAFETY: each item of `run_each` goes to one CPU, which alone touches it
// until the join; its `Rc`s (queue and pool memory, the queue's own memory
// list) were made for it on CPU 0 and are neither cloned nor dropped by
// anyone else meanwhile (the device's list stays on CPU 0, apart: see
// `Queue::hold_apart`); a `SummaryClear` only makes atomic byte stores.
unsafe impl<T> Send for Owned<T> {}

/// The disk's traffic as one CPU makes it: writes into its own stripes
/// only, reads anywhere but other CPUs' stripes (a read there is moved
/// into one of its own, or into the never-written first stripe).
struct Own<'m> {
    t: Traffic<'m>,
    all: &'m [u64],
    /// (k, n): this CPU makes requests k, k + n, k + 2n... of the mix (a
    /// read of the whole disk shared out); None: every one.
    share: Option<(u64, u64)>,
}

impl Own<'_> {
    fn others_write(&self, req: &Req) -> bool {
        let per = STRIPE / u64::from(self.t.medium.block);
        let first = req.block / per;
        let last = (req.block + u64::from(req.blocks).max(1) - 1) / per;
        (first..=last)
            .any(|s| self.all.binary_search(&s).is_ok() && !self.t.medium.stripes.contains(&s))
    }
}

impl stress::Workload for Own<'_> {
    type Req = Req;

    fn plan(&mut self, n: u64, rng: &mut Rng) -> Plan<Req> {
        let n = self.share.map_or(n, |(k, lanes)| n * lanes + k);
        let mut p = self.t.plan(n, rng);
        if p.req.op == Op::Read && self.others_write(&p.req) {
            let per = STRIPE / u64::from(self.t.medium.block);
            let own = &self.t.medium.stripes;
            let stripe = if own.is_empty() {
                0
            } else {
                own[(p.req.block / per) as usize % own.len()]
            };
            let blocks = u64::from(p.req.blocks).min(per);
            let within = (p.req.block % per).min(per - blocks);
            p.req.block = stripe * per + within;
            p.req.blocks = blocks as u32;
            let data = p.req.blocks * self.t.medium.block;
            p.writable = data + 1;
            p.cuts = [p.readable, p.readable + p.writable - 1];
        }
        p
    }

    fn conflicts(&self, a: &Req, b: &Req) -> bool {
        self.t.conflicts(a, b)
    }

    fn fill(&mut self, req: &Req, readable: &mut [u8]) {
        self.t.fill(req, readable)
    }

    fn check(&mut self, req: &Req, written: &[u8], used_len: u32) -> Result<u64, String> {
        self.t.check(req, written, used_len)
    }

    fn fill_in_place(
        &mut self,
        req: &Req,
        mem: &crate::dma::DmaMemory,
        at: &[(usize, u32)],
    ) -> bool {
        self.t.fill_in_place(req, mem, at)
    }

    fn check_in_place(
        &mut self,
        req: &Req,
        mem: &crate::dma::DmaMemory,
        at: &[(usize, u32)],
        used_len: u32,
    ) -> Option<u64> {
        self.t.check_in_place(req, mem, at, used_len)
    }
}

fn clear(summary: &Option<SummaryClear<'_>>) {
    if let Some(s) = summary {
        s.clear();
    }
}

/// The largest disk whose every block the CPUs read between them.
const READ_ALL_MAX: u64 = 16 << 20;

/// One CPU's part: its share of the whole disk read (one stripe in n),
/// random traffic, then its own stripes written whole. Returns the
/// figures of the three.
fn drive_blk(w: &mut BlkWork<'_>) -> Result<[QueueStats; 3], String> {
    if w.double {
        w.queue.repeat_next_used();
    }
    let size = w.queue.size();
    let all = core::mem::take(&mut w.all_stripes);
    let summary = w.summary.take();
    let summary = &summary;
    if let Some(r) = &mut w.rng {
        drive_rng(r, summary);
    }
    let mut read = QueueStats::default();
    if w.read_all && w.medium.patterned && w.medium.size <= READ_ALL_MAX {
        // Whole stripes (64 KiB requests): stripe s read by lane s mod n.
        let per = (STRIPE / u64::from(w.medium.block)) as u32;
        let mix = Mix::ReadAll { blocks: per };
        let (k, lanes) = w.share;
        let total = mix.requests(&w.medium).unwrap_or(0);
        let opts = Options {
            seed: w.seed,
            stream: w.stream | 2 << 20,
            depth: size,
            requests: (total + lanes - 1 - k) / lanes,
            limits: ShapeLimits::LEAN,
            indirect: 0,
            completion: Completion::Interrupts,
            poison: Poison::Ends,
            until_us: None,
            now_us,
        };
        let mut own = Own {
            t: Traffic::new(&mut w.medium, mix),
            all: &all,
            share: Some((k, lanes)),
        };
        read = stress::run(
            &mut w.lane,
            &mut w.queue,
            &mut own,
            &opts,
            &mut || clear(summary),
            &mut |_, _| {},
        )
        .map_err(|f| format!("read-all request {}: {}", f.request, f.what.as_str()))?;
    }
    let limits = ShapeLimits {
        max_elements: 8.min(usize::from(size)).max(3),
        max_len: None,
        max_gap: 256,
    };
    let mut opts = Options {
        seed: w.seed,
        stream: w.stream,
        depth: size,
        requests: w.requests,
        limits,
        indirect: w.indirect,
        completion: Completion::Interrupts,
        poison: Poison::All,
        until_us: None,
        now_us,
    };
    let mix = Mix::Random {
        max_blocks: w.per_req_max,
        flush: w.flush,
    };
    let mut own = Own {
        t: Traffic::new(&mut w.medium, mix),
        all: &all,
        share: None,
    };
    let steal = w.steal;
    let random = stress::run(
        &mut w.lane,
        &mut w.queue,
        &mut own,
        &opts,
        &mut || {
            clear(summary);
            if let Some(sid) = steal {
                channel::steal_status(sid);
            }
        },
        &mut |_, _| {},
    )
    .map_err(|f| format!("random request {}: {}", f.request, f.what.as_str()));
    w.counts = own.t.counts();
    let random = random?;
    let mut fill = QueueStats::default();
    if w.medium.writable && !w.medium.stripes.is_empty() {
        let mix = Mix::FillStripes {
            blocks: w.per_req_max,
        };
        opts.requests = mix.requests(&w.medium).unwrap_or(0);
        opts.stream |= 1 << 20;
        opts.limits = ShapeLimits::LEAN;
        opts.indirect = 0;
        opts.poison = Poison::Ends;
        let mut own = Own {
            t: Traffic::new(&mut w.medium, mix),
            all: &all,
            share: None,
        };
        fill = stress::run(
            &mut w.lane,
            &mut w.queue,
            &mut own,
            &opts,
            &mut || clear(summary),
            &mut |_, _| {},
        )
        .map_err(|f| format!("fill request {}: {}", f.request, f.what.as_str()))?;
        if w.medium.unwritten() != 0 {
            return Err(format!(
                "{} blocks of its stripes never written",
                w.medium.unwritten()
            ));
        }
    }
    w.all_stripes = all;
    Ok([read, random, fill])
}

/// Opens `d` with classic indicators and a split ring at the best
/// revision it takes; None where it has a single request queue.
fn open_multiqueue(d: &Disk, mode: IndicatorMode) -> Result<Open, String> {
    for revision in [2u8, 1] {
        for event_idx in [true, false] {
            let s = Setup {
                revision,
                packed: false,
                event_idx,
                in_order: false,
                mode,
            };
            if let Some(o) = blk_suite::open(d.sid, s)? {
                return Ok(o);
            }
        }
    }
    Err(String::from("no virtio 1 setup accepted"))
}

/// Concurrent virtio-blk: a queue per CPU of one multi-queue device.
pub fn blk(m: &mut Machine) -> Outcome {
    let cpus = all_cpus(m);
    if cpus.len() < 2 {
        return Outcome::skip("one CPU: nothing runs at once");
    }
    let list = blk_suite::disks(m);
    if list.is_empty() {
        return Outcome::skip("no virtio-blk-ccw device");
    }
    // The first device with a request queue for every CPU, else the one
    // with the most.
    let mut best: Option<(usize, Open)> = None;
    let mut seen: Vec<String> = Vec::new();
    for (i, d) in list.iter().enumerate() {
        let o = match open_multiqueue(d, IndicatorMode::Classic) {
            Ok(o) => o,
            Err(e) => return Outcome::fail(&format!("{}: {}", d.id, e.as_str())),
        };
        seen.push(format!("{} has {}", d.id, o.queues.len()));
        let more = best
            .as_ref()
            .is_none_or(|(_, b)| o.queues.len() > b.queues.len());
        let enough = o.queues.len() >= cpus.len();
        if more {
            if let Some((_, mut old)) = best.take() {
                let _ = old.t.reset();
            }
            best = Some((i, o));
        } else {
            let mut o = o;
            let _ = o.t.reset();
        }
        if enough {
            break;
        }
    }
    let Some((i, mut o)) = best else {
        return Outcome::skip("no virtio-blk-ccw device could be opened");
    };
    if o.queues.is_empty() {
        let _ = o.t.reset();
        return Outcome::skip(&format!(
            "no virtio-blk-ccw device with a request queue ({})",
            seen.join(", ").as_str()
        ));
    }
    // Classic indicators (subchannel interrupts), then adapter ones.
    let d = &list[i];
    let classic = blk_phase(m, d, &mut o, &cpus);
    let _ = o.t.reset();
    drop(o);
    if !classic.is_pass() {
        return classic;
    }
    let mut o = match open_multiqueue(d, IndicatorMode::Adapter) {
        Ok(o) => o,
        Err(e) => return Outcome::fail(&format!("{} adapter: {}", d.id, e.as_str())),
    };
    let adapter = blk_phase(m, d, &mut o, &cpus);
    let _ = o.t.reset();
    adapter
}

fn blk_phase(m: &Machine, d: &Disk, o: &mut Open, cpus: &[usize]) -> Outcome {
    let seed = m.cfg.seed;
    let f = o.features;
    let bs = o.config.block_size(f);
    let order = Order::for_revision(o.t.revision());
    let size = blk_suite::size_of(d, &o.config);
    let first = match blk_suite::read_first(o, bs, order) {
        Ok(b) => b,
        Err(e) => return Outcome::fail(&format!("{}: {}", d.id, e.as_str())),
    };
    let patterned = disk::read_header(&first, seed, size) == HeaderSays::Scratch;
    let writable = match blk_suite::may_write(d, &first, seed, size) {
        Ok(w) => w && !has(f, blk::F_RO),
        Err(e) => return Outcome::fail(&e),
    };
    let lanes = o.queues.len().min(cpus.len());
    let all_stripes: Vec<u64> = if writable {
        disk::writable_stripes(seed, size).collect()
    } else {
        Vec::new()
    };
    let per_req_max = (64 * 1024 / bs).max(1);
    let double_on = m.cfg.inject.contains(&Inject::Double);
    let steal_on = m.cfg.inject.contains(&Inject::Steal);
    let adapter = o.ind.mode() == IndicatorMode::Adapter;
    // Phase labels: the adapter round's carry its mode.
    let tag = if adapter { " adapter" } else { "" };
    // The entropy device, opened here (no channel program during the
    // phase), in the first round.
    let mut rng_open = None;
    let mut rng_work = None;
    if let Some(r) = m
        .inventory
        .virtio_devices(rng::DEVICE_ID)
        .next()
        .filter(|_| !adapter)
    {
        let s = Setup {
            revision: 2,
            packed: false,
            event_idx: true,
            in_order: false,
            mode: IndicatorMode::Classic,
        };
        match rng_suite::open(r.subchannel.sid, s) {
            Ok(Some(ro)) => {
                let rng_suite::Open {
                    t,
                    ind,
                    mut dev,
                    features,
                } = ro;
                let list = dev.queue_mut().hold_apart();
                let index = dev.queue().index;
                rng_work = Some(RngWork {
                    lane: Lane::new(r.subchannel.sid, index, t.revision(), DeviceHeld::default()),
                    dev,
                    bus: r.bus_id(),
                    indirect: has(features, F_INDIRECT_DESC),
                    seed,
                    requests: 64 * u64::from(m.cfg.stress),
                    result: None,
                });
                rng_open = Some((t, ind, list));
            }
            Ok(None) => {}
            Err(e) => return Outcome::fail(&format!("{} (rng): {}", r.bus_id(), e.as_str())),
        }
    }
    let mut queues: Vec<Queue> = core::mem::take(&mut o.queues);
    // The device's memory list, kept here on CPU 0 while each queue keeps
    // its own.
    let mut device_lists = Vec::new();
    let mut work: Vec<(usize, Owned<BlkWork>)> = Vec::new();
    for (k, mut q) in queues.drain(..lanes).enumerate() {
        let cpu = cpus[k];
        device_lists.push(q.hold_apart());
        let lane = Lane::new(d.sid, q.index, o.t.revision(), DeviceHeld::default());
        let mut medium = Medium::new(seed, size, bs, order, patterned, writable);
        medium.stripes = all_stripes
            .iter()
            .copied()
            .enumerate()
            .filter(|(j, _)| j % lanes == k)
            .map(|(_, s)| s)
            .collect();
        // Earlier checks (blk.stress) may have left B in any stripe.
        medium.earlier_b = true;
        medium.serial = None;
        work.push((
            cpu,
            Owned(BlkWork {
                queue: q,
                lane,
                summary: o.ind.summary_clear(),
                // The whole disk in the first (classic) round only.
                read_all: !adapter,
                // The entropy device alongside, on the last CPU.
                rng: if k == lanes - 1 {
                    rng_work.take()
                } else {
                    None
                },
                medium,
                all_stripes: all_stripes.clone(),
                per_req_max,
                flush: has(f, blk::F_FLUSH),
                indirect: if has(f, F_INDIRECT_DESC) { 3 } else { 0 },
                seed,
                stream: (u64::from(d.sid) << 24) | 0xc0 << 16 | k as u64,
                requests: REQUESTS * u64::from(m.cfg.stress),
                // The last CPU's queue: not the checking CPU's.
                double: double_on && k == lanes - 1,
                steal: (steal_on && !adapter && k == lanes - 1).then_some(d.sid),
                share: (k as u64, lanes as u64),
                result: None,
                counts: (0, 0, 0),
            }),
        ));
    }
    let before: Vec<Counts> = cpus.iter().map(|&n| counts(n)).collect();
    let t0 = now_us();
    smp::share_io(true);
    let joined = smp::run_each(
        &mut work,
        &|_, w: &mut Owned<BlkWork>| {
            let r = drive_blk(&mut w.0);
            w.0.result = Some(r);
        },
        PHASE_TIMEOUT_US,
    );
    smp::share_io(false);
    let wall_us = now_us() - t0;
    let after: Vec<Counts> = cpus.iter().map(|&n| counts(n)).collect();
    // Every queue's memory back with the device's, for the reset.
    for ((_, w), list) in work.iter_mut().zip(device_lists) {
        w.0.queue.rejoin(list);
    }
    let mut failures: Vec<String> = Vec::new();
    let rng_cpu = work.last().map_or(0, |(c, _)| *c);
    // The entropy device's completions count with the disk's below.
    let mut rng_completed = 0u64;
    let rng_back = work
        .iter_mut()
        .find_map(|(_, w)| w.0.rng.take())
        .or(rng_work);
    if let (Some(mut r), Some((mut t, ind, list))) = (rng_back, rng_open) {
        r.dev.queue_mut().rejoin(list);
        match r.result.take() {
            Some(Ok(s)) => {
                rng_completed = s.completed;
                crate::out!("# smp {} q0 cpu{} entropy: {}\n", r.bus, rng_cpu, s)
            }
            Some(Err(e)) => failures.push(format!(
                "{} {} (rng) queue 0: {} (replay: seed={} only=smp.stress-blk)",
                cpu_name(rng_cpu).as_str(),
                r.bus,
                e.as_str(),
                Hex(seed)
            )),
            None => {}
        }
        drop(r);
        let _ = t.reset();
        drop(ind);
    }
    if let Err(stuck) = &joined {
        for s in stuck {
            let q = work
                .iter()
                .position(|(c, _)| *c == s.number)
                .map_or(String::from("?"), |k| format!("{}", k));
            failures.push(format!(
                "{} could not take its queue {} of {}: {}",
                cpu_name(s.number).as_str(),
                q.as_str(),
                d.id,
                s.why.as_str()
            ));
        }
    }
    let mut total = QueueStats::default();
    let mut completed = rng_completed;
    for (k, (cpu, w)) in work.iter_mut().enumerate() {
        let w = &mut w.0;
        let c = after[k].since(before[k]);
        match w.result.take() {
            None => {}
            Some(Err(e)) => failures.push(format!(
                "{} {} queue {}: {} (replay: seed={} only=smp.stress-blk)",
                cpu_name(*cpu).as_str(),
                d.id,
                k,
                e.as_str(),
                Hex(seed)
            )),
            Some(Ok([read, mut random, fill])) => {
                // The CPU's interrupts, whoever's queue they were for.
                random.interrupts = u64::from(c.io);
                let (r, wr, fl) = w.counts;
                if read.completed > 0 {
                    crate::out!(
                        "# smp {} q{} cpu{} read-all{}: {}\n",
                        d.id,
                        k,
                        cpu,
                        tag,
                        read
                    );
                }
                crate::out!(
                    "# smp {} q{} cpu{} random{}: {} ({} reads, {} writes, {} flushes)\n",
                    d.id,
                    k,
                    cpu,
                    tag,
                    random,
                    r,
                    wr,
                    fl
                );
                if fill.completed > 0 {
                    crate::out!("# smp {} q{} cpu{} fill{}: {}\n", d.id, k, cpu, tag, fill);
                }
                let asked = w.requests;
                if random.completed != asked || random.requests != asked {
                    failures.push(format!(
                        "{} {} queue {}: {} requests made available and {} completed, {} asked",
                        cpu_name(*cpu).as_str(),
                        d.id,
                        k,
                        random.requests,
                        random.completed,
                        asked
                    ));
                }
                let mut both = random;
                both.add(&fill);
                both.add(&read);
                completed += both.completed;
                crate::out!(
                    "# smp cpu {} (address {}){}: {} requests, {} bytes, {} I/O interrupts, {} adapter interrupts, {} wake-ups\n",
                    cpu,
                    smp::address(*cpu).unwrap_or(0),
                    tag,
                    both.completed,
                    both.bytes,
                    c.io,
                    c.adapter,
                    c.wakeups
                );
                total.add(&both);
            }
        }
    }
    // CPUs without a queue of their own (fewer queues than CPUs) took
    // interrupts all the same.
    for (k, &cpu) in cpus.iter().enumerate().skip(lanes) {
        let c = after[k].since(before[k]);
        crate::out!(
            "# smp cpu {} (address {}){}: no queue, {} I/O interrupts, {} adapter interrupts, {} wake-ups\n",
            cpu,
            smp::address(cpu).unwrap_or(0),
            tag,
            c.io,
            c.adapter,
            c.wakeups
        );
    }
    let status = interrupts_once(cpus, &before, &after, completed, &mut failures);
    total.elapsed_us = wall_us;
    crate::out!(
        "# smp {} all {} CPUs{}: {} ({} subchannel interrupts)\n",
        d.id,
        lanes,
        tag,
        total,
        status
    );
    if failures.is_empty() && writable && lanes == work.len() {
        crate::out!("{} {}\n", markers::DISK_WRITTEN, d.id);
    }
    match failures.first() {
        None if lanes < cpus.len() => Outcome::PassNote(format!(
            "{} has {} request queues for {} CPUs: CPUs {} to {} drove none",
            d.id,
            lanes,
            cpus.len(),
            cpus[lanes],
            cpus[cpus.len() - 1]
        )),
        None => Outcome::Pass,
        Some(first) => Outcome::mismatch(
            &format!("{} failures; the first: {}", failures.len(), first.as_str()),
            "every CPU's requests answered right, each completion and interrupt taken once",
            failures.join("; ").as_str(),
        ),
    }
}

/// Every interrupt taken once: each subchannel interrupt a CPU took
/// found status, each reached the handler, and there were no more than
/// completions. Returns the subchannel interrupts of the phase.
fn interrupts_once(
    cpus: &[usize],
    before: &[Counts],
    after: &[Counts],
    completed: u64,
    failures: &mut Vec<String>,
) -> u64 {
    let (mut status, mut adapter) = (0u64, 0u64);
    for (k, &cpu) in cpus.iter().enumerate() {
        let c = after[k].since(before[k]);
        status += u64::from(c.status);
        adapter += u64::from(c.adapter);
        if c.empty != 0 {
            failures.push(format!(
                "{} took {} subchannel interrupts whose TEST SUBCHANNEL found no status pending: taken twice (QEMU raises one per status)",
                cpu_name(cpu).as_str(),
                c.empty
            ));
        }
        if c.io != c.status + c.empty + c.adapter {
            failures.push(format!(
                "{}: {} I/O interrupts taken, {} reached the handler",
                cpu_name(cpu).as_str(),
                c.io,
                c.status + c.empty + c.adapter
            ));
        }
    }
    // An adapter interrupt only when the summary went 0 -> 1, so at
    // most one per used-buffer notification (virtio-ccw.c
    // `virtio_ccw_notify`).
    if adapter > completed {
        failures.push(format!(
            "{} adapter interrupts for {} completions: more than one per used-buffer notification",
            adapter, completed
        ));
    }
    if status > completed {
        failures.push(format!(
            "{} subchannel interrupts for {} completions: more than one per used-buffer notification",
            status, completed
        ));
    }
    status
}

/// One CPU's net device: its first queue pair, a lane for each queue.
struct NetWork {
    bus: crate::inventory::BusId,
    rx: RxPool,
    tx: TxPool,
    rx_lane: Lane,
    tx_lane: Lane,
    hdr: usize,
    mac: [u8; 6],
    max_frame: usize,
    seed: u64,
    frames: u32,
    result: Option<Result<(QueueStats, QueueStats), String>>,
}

/// How long a peer may stay silent with frames unanswered.
const NET_QUIET_US: u64 = 2_000_000;

/// Frames per CPU, before `stress=`.
const FRAMES: u32 = 128;

/// Sends `frames` echo frames on the pair, keeps the receive queue
/// full, takes back the transmit queue, and checks every answer byte for
/// byte, each taken once. Waits for the CPU's own interrupts or a
/// wake-up from the CPU that took one.
fn drive_net(w: &mut NetWork) -> Result<(QueueStats, QueueStats), String> {
    let me = smp::this_cpu();
    let frames = w.frames;
    let per_frame = (w.hdr + w.max_frame).div_ceil(w.rx.buf_len);
    let window = (w.rx.buffers() / per_frame)
        .min(64 * 1024 / w.max_frame)
        .clamp(1, 32) as u32;
    let mut answered = alloc::vec![false; frames as usize];
    let (mut sent, mut answers) = (0u32, 0u32);
    let (mut rx_s, mut tx_s) = (QueueStats::default(), QueueStats::default());
    let (mut frame, mut expected, mut got) = (Vec::new(), Vec::new(), Vec::new());
    let header = crate::virtio::devices::net::tx_header();
    let (rk, tk) = (w.rx.queue.kicks(), w.tx.queue.kicks());
    w.rx.queue.enable_interrupts(true);
    w.tx.queue.enable_interrupts(true);
    let rxq = w.rx_lane.index();
    let start = now_us();
    while answers < frames || w.tx.in_flight() > 0 {
        // Before the rings are looked at: an interrupt after this shows.
        let seen = counts(me);
        let mut progress = false;
        while sent < frames && sent - answers < window && w.tx.has_room() {
            echo_frame(w.seed, w.mac, 0, sent, w.max_frame, &mut frame);
            let ok =
                w.tx.send(&mut w.tx_lane, &header[..w.hdr], &frame)
                    .map_err(|e| format!("transmit queue {}: {}", w.tx_lane.index(), e))?;
            if !ok {
                break;
            }
            sent += 1;
            tx_s.requests += 1;
            tx_s.bytes += frame.len() as u64;
            tx_s.max_depth = tx_s.max_depth.max(w.tx.in_flight() as u16);
            progress = true;
        }
        let n =
            w.tx.reclaim()
                .map_err(|e| format!("transmit queue {}: {}", w.tx_lane.index(), e))?;
        tx_s.completed += u64::from(n);
        progress |= n > 0;
        let mut any = false;
        while let Some(u) =
            w.rx.try_used()
                .map_err(|e| format!("receive queue {}: {}", rxq, e))?
        {
            any = true;
            got.clear();
            w.rx.read(u.buf, u.len, &mut got);
            w.rx.release(u.buf);
            if got.len() < w.hdr {
                return Err(format!(
                    "receive queue {}: {} bytes used, less than the {}-byte header",
                    rxq, u.len, w.hdr
                ));
            }
            let body = &got[w.hdr..];
            rx_s.requests += 1;
            rx_s.completed += 1;
            rx_s.bytes += body.len() as u64;
            let Some((EchoKind::Answer, 0, seq)) = echo_id(body).filter(|&(_, _, q)| q < sent)
            else {
                return Err(format!(
                    "receive queue {}: a {}-byte frame that answers no frame sent",
                    rxq,
                    body.len()
                ));
            };
            if answered[seq as usize] {
                return Err(format!(
                    "frame {}: answered twice (receive queue {})",
                    seq, rxq
                ));
            }
            echo_frame(w.seed, w.mac, 0, seq, w.max_frame, &mut frame);
            answer_of(&frame, &mut expected);
            if let Some(diff) = first_difference(&expected, body) {
                return Err(format!(
                    "frame {} ({} bytes, receive queue {}): answer {}",
                    seq,
                    expected.len(),
                    rxq,
                    diff
                ));
            }
            answered[seq as usize] = true;
            answers += 1;
        }
        if any {
            progress = true;
            w.rx.post(&mut w.rx_lane)
                .map_err(|e| format!("posting receive buffers: {}", e))?;
        }
        if progress {
            continue;
        }
        // Nothing to do until the device uses a buffer: an I/O interrupt
        // here, or a wake-up from the CPU that took it.
        let woke = crate::arch::timer::wait_until(NET_QUIET_US, true, || {
            let c = counts(me);
            c.io != seen.io || c.wakeups != seen.wakeups
        });
        if !woke && w.rx.queue.in_flight() > 0 {
            let oldest = (0..sent).find(|&k| !answered[k as usize]);
            return Err(match oldest {
                Some(k) => format!(
                    "frame {} ({} bytes) never answered, no interrupt or wake-up in {} ms ({} of {} sent answered)",
                    k,
                    echo_len(w.seed, 0, k, w.max_frame),
                    NET_QUIET_US / 1000,
                    answers,
                    sent
                ),
                None => format!(
                    "transmit queue {}: {} frames never completed, no interrupt or wake-up in {} ms",
                    w.tx_lane.index(),
                    w.tx.in_flight(),
                    NET_QUIET_US / 1000
                ),
            });
        }
    }
    let elapsed = now_us() - start;
    rx_s.kicks = w.rx.queue.kicks() - rk;
    tx_s.kicks = w.tx.queue.kicks() - tk;
    rx_s.elapsed_us = elapsed;
    tx_s.elapsed_us = elapsed;
    Ok((rx_s, tx_s))
}

/// Concurrent virtio-net: each CPU owns the queue pair of a device of
/// its own (an echo peer each), sending and checking at once.
pub fn net(m: &mut Machine) -> Outcome {
    let cpus = all_cpus(m);
    if cpus.len() < 2 {
        return Outcome::skip("one CPU: nothing runs at once");
    }
    let found = net_suite::served(m, NetPeer::Echo);
    if found.len() < 2 {
        return Outcome::skip(&format!(
            "{} nets= device(s) with an echo peer (:echo): a CPU each needs two or more (one pair per device: a multi-queue tap's answers may come back on any pair)",
            found.len()
        ));
    }
    let seed = m.cfg.seed;
    let lanes = found.len().min(cpus.len());
    let mut ups = Vec::new();
    let mut work: Vec<(usize, Owned<NetWork>)> = Vec::new();
    let mut device_lists = Vec::new();
    for (k, (d, n)) in found.iter().take(lanes).enumerate() {
        let up = match net_suite::bring_up(
            d,
            net_suite::plain(2),
            dev::FEATURES & !(1 << dev::F_MRG_RXBUF),
            1,
            (0, n.max_frame()),
        ) {
            Ok(Some(up)) => up,
            Ok(None) => return Outcome::fail(&format!("{}: revision 2 not taken", d.bus)),
            Err(e) => return Outcome::fail(&format!("{}: {}", d.bus, e.as_str())),
        };
        ups.push(up);
        let up = ups.last_mut().unwrap_or_else(|| unreachable!());
        let mut rx = up.rx.remove(0);
        let mut tx = up.tx.remove(0);
        device_lists.push((rx.queue.hold_apart(), tx.queue.hold_apart()));
        let rev = up.t.revision();
        work.push((
            cpus[k],
            Owned(NetWork {
                bus: d.bus,
                rx_lane: Lane::new(d.sid, rx.queue.index, rev, DeviceHeld::default()),
                tx_lane: Lane::new(d.sid, tx.queue.index, rev, DeviceHeld::default()),
                rx,
                tx,
                hdr: up.hdr,
                mac: up.mac,
                max_frame: n.max_frame(),
                seed,
                frames: FRAMES * m.cfg.stress,
                result: None,
            }),
        ));
    }
    let before: Vec<Counts> = cpus.iter().map(|&n| counts(n)).collect();
    let t0 = now_us();
    smp::share_io(true);
    let joined = smp::run_each(
        &mut work,
        &|_, w: &mut Owned<NetWork>| {
            let r = drive_net(&mut w.0);
            w.0.result = Some(r);
        },
        PHASE_TIMEOUT_US,
    );
    smp::share_io(false);
    let wall_us = now_us() - t0;
    let after: Vec<Counts> = cpus.iter().map(|&n| counts(n)).collect();
    for ((_, w), (r, t)) in work.iter_mut().zip(device_lists) {
        w.0.rx.queue.rejoin(r);
        w.0.tx.queue.rejoin(t);
    }
    let mut failures: Vec<String> = Vec::new();
    if let Err(stuck) = &joined {
        for s in stuck {
            let bus = work
                .iter()
                .find(|(c, _)| *c == s.number)
                .map_or(String::from("?"), |(_, w)| format!("{}", w.0.bus));
            failures.push(format!(
                "{} could not take the queue pair of {}: {}",
                cpu_name(s.number).as_str(),
                bus.as_str(),
                s.why.as_str()
            ));
        }
    }
    let mut total = QueueStats::default();
    let mut completed = 0u64;
    for (k, (cpu, w)) in work.iter_mut().enumerate() {
        let w = &mut w.0;
        let c = after[k].since(before[k]);
        match w.result.take() {
            None => {}
            Some(Err(e)) => failures.push(format!(
                "{} {} pair 0: {} (replay: seed={} only=smp.stress-net)",
                cpu_name(*cpu).as_str(),
                w.bus,
                e.as_str(),
                Hex(seed)
            )),
            Some(Ok((mut rx, tx))) => {
                rx.interrupts = u64::from(c.io);
                crate::out!("# smp {} rx0 cpu{}: {}\n", w.bus, cpu, rx);
                crate::out!("# smp {} tx0 cpu{}: {}\n", w.bus, cpu, tx);
                if tx.completed != u64::from(w.frames) || rx.completed != u64::from(w.frames) {
                    failures.push(format!(
                        "{} {}: {} frames asked, {} sent and taken back, {} answers",
                        cpu_name(*cpu).as_str(),
                        w.bus,
                        w.frames,
                        tx.completed,
                        rx.completed
                    ));
                }
                completed += rx.completed + tx.completed;
                crate::out!(
                    "# smp cpu {} (address {}): {} requests, {} bytes, {} I/O interrupts, {} adapter interrupts, {} wake-ups\n",
                    cpu,
                    smp::address(*cpu).unwrap_or(0),
                    rx.completed + tx.completed,
                    rx.bytes + tx.bytes,
                    c.io,
                    c.adapter,
                    c.wakeups
                );
                total.add(&rx);
                total.add(&tx);
            }
        }
    }
    let status = interrupts_once(&cpus, &before, &after, completed, &mut failures);
    total.elapsed_us = wall_us;
    crate::out!(
        "# smp net all {} CPUs: {} ({} subchannel interrupts)\n",
        lanes,
        total,
        status
    );
    drop(work);
    for mut up in ups {
        let _ = up.t.reset();
    }
    match failures.first() {
        None if lanes < cpus.len() => Outcome::PassNote(format!(
            "{} echo devices for {} CPUs: CPUs {} to {} drove none",
            lanes,
            cpus.len(),
            cpus[lanes],
            cpus[cpus.len() - 1]
        )),
        None => Outcome::Pass,
        Some(first) => Outcome::mismatch(
            &format!("{} failures; the first: {}", failures.len(), first.as_str()),
            "every frame of every CPU answered byte for byte, taken once",
            failures.join("; ").as_str(),
        ),
    }
}
