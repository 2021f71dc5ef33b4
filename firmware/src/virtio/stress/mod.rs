//! The stress engine: keeps up to `depth` requests in flight on one queue,
//! takes them back in whatever order the device returns them, and has the
//! device's driver check every answer. What a request is and what a right
//! answer looks like is the [`Workload`]'s business; the engine owns the
//! memory, the chain shapes (from the seeded generator: element count,
//! sizes, gaps, direct or indirect) and the bookkeeping.
//!
//! Requests are planned in number order, each from its own stream
//! ([`Rng::for_request`]), and a request that conflicts with one in
//! flight (a write over a read, say) waits for it instead of being
//! re-planned: the same seed replays the same requests whatever the
//! device's timing.

use super::guard;
use super::queue::{DmaBuffer, DriveError, Queue};
use super::ring::{QueueError, Used};
use super::transport::Transport;
use crate::dma::DmaMemory;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use ufmt::{uDisplay, uWrite, Formatter};
pub use zvtest_contract::stress::{shape, shape_into, Book, Piece, QueueStats, Rng, ShapeLimits};

/// A request as the workload planned it: its bytes as the device sees
/// them, `readable` then `writable`, with element edges required at
/// `cuts` (offsets into those bytes; 0 means none).
pub struct Plan<R> {
    pub req: R,
    pub readable: u32,
    pub writable: u32,
    pub cuts: [u32; 2],
    /// Ranges (start, end) of those bytes each kept one element
    /// ((0, 0): none).
    pub whole: [(u32, u32); 2],
}

/// A device's requests and its answers' meaning.
pub trait Workload {
    type Req;
    /// Plans request number `n`, drawing only from `rng`.
    fn plan(&mut self, n: u64, rng: &mut Rng) -> Plan<Self::Req>;
    /// Whether `a` may not be in flight together with `b`.
    fn conflicts(&self, a: &Self::Req, b: &Self::Req) -> bool;
    /// The request's device-readable bytes.
    fn fill(&mut self, req: &Self::Req, readable: &mut [u8]);
    /// Checks the answer: what the device-writable bytes hold and the
    /// length the device reported. Returns the payload bytes moved.
    fn check(&mut self, req: &Self::Req, written: &[u8], used_len: u32) -> Result<u64, String>;
    /// Whether the workload writes the device-writable bytes itself
    /// before the device answers ([`Workload::prime`]) instead of the
    /// engine's poison: a device whose answer cannot be predicted (random
    /// bytes) is held to what it leaves of a known fill.
    const PRIMES: bool = false;
    /// The request's device-writable bytes before the device answers
    /// (only where [`Workload::PRIMES`]).
    fn prime(&mut self, _req: &Self::Req, _writable: &mut [u8]) {}
    /// [`Workload::fill`] straight into `mem`, whose device-readable
    /// elements lie at `at` (offset, length); false where the workload
    /// cannot for this layout (then `fill` is used).
    fn fill_in_place(&mut self, _req: &Self::Req, _mem: &DmaMemory, _at: &[(usize, u32)]) -> bool {
        false
    }
    /// [`Workload::check`] where the device wrote, its device-writable
    /// elements at `at`: `Some(Ok)` for a right answer; None where it
    /// cannot tell in place, or the answer is wrong (then the bytes are
    /// gathered and `check` says what is wrong).
    fn check_in_place(
        &mut self,
        _req: &Self::Req,
        _mem: &DmaMemory,
        _at: &[(usize, u32)],
        _used_len: u32,
    ) -> Option<u64> {
        None
    }
    /// A used length past the chain's device-writable bytes: the length to
    /// check the answer with where the workload knows the device counts so
    /// (QEMU's virtio-scsi adds the data-out), None to fail the request.
    fn long_used_len(&mut self, _req: &Self::Req, _len: u32) -> Option<u32> {
        None
    }
}

/// How completions are taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Used-buffer interrupts enabled; the CPU waits for them.
    Interrupts,
    /// Interrupts suppressed in the ring; the CPU polls the used ring.
    Polled,
}

impl Completion {
    pub fn name(self) -> &'static str {
        match self {
            Completion::Interrupts => "interrupts",
            Completion::Polled => "polled",
        }
    }
}

pub struct Options {
    pub seed: u64,
    /// Which queue of which device: part of every request's stream.
    pub stream: u64,
    pub depth: u16,
    pub requests: u64,
    pub limits: ShapeLimits,
    /// Send one chain in `indirect` through an indirect table (0: none).
    pub indirect: u64,
    pub completion: Completion,
    pub poison: Poison,
    /// No new request once `now_us()` reaches this (a timed run).
    pub until_us: Option<u64>,
    /// Microseconds since some fixed point, for rates and progress.
    pub now_us: fn() -> u64,
}

impl Options {
    /// `requests` of `stream` kept up to the queue's size in flight,
    /// [`ShapeLimits::varied`] chains, one in three through an indirect
    /// table where the device offers INDIRECT_DESC, every device-writable
    /// byte poisoned, no time limit.
    pub fn varied(
        seed: u64,
        stream: u64,
        queue_size: u16,
        requests: u64,
        indirect_desc: bool,
        completion: Completion,
        now_us: fn() -> u64,
    ) -> Options {
        Options {
            seed,
            stream,
            depth: queue_size,
            requests,
            limits: ShapeLimits::varied(queue_size),
            indirect: if indirect_desc { 3 } else { 0 },
            completion,
            poison: Poison::All,
            until_us: None,
            now_us,
        }
    }
}

/// What device-writable bytes hold before the device answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poison {
    /// Every byte: a device that reports bytes it never wrote shows.
    All,
    /// The first and last 8 bytes of each element (a benchmark: the data
    /// check itself catches a buffer the device left alone unless the
    /// same blocks were read into the same place before).
    Ends,
}

/// A request that went wrong: which one, so that it can be replayed.
#[derive(Debug)]
pub struct Failure {
    pub request: u64,
    pub what: String,
    pub stats: QueueStats,
}

impl uDisplay for Failure {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        ufmt::uwrite!(f, "request {}: {}", self.request, self.what.as_str())
    }
}

struct InFlight<R> {
    n: u64,
    req: R,
    slot: usize,
    /// Where each element lies in the slot's memory.
    at: Vec<(usize, Piece)>,
}

/// What a device-writable byte holds before the device answers: a device
/// that reports bytes it never wrote shows.
const POISON: u8 = 0xa5;

/// Drives `q` with `opts.requests` requests of `w` at `opts.depth`;
/// `progress` is called about every 2 s with the figures so far.
pub fn run<T: Transport + ?Sized, W: Workload>(
    t: &mut T,
    q: &mut Queue,
    w: &mut W,
    opts: &Options,
    wake: &mut dyn FnMut(),
    progress: &mut dyn FnMut(&QueueStats, u64),
) -> Result<QueueStats, Failure> {
    let depth = opts.depth.clamp(1, q.size());
    let mut book: Book<InFlight<W::Req>> = Book::new(q.size());
    let mut slots: Vec<Rc<DmaMemory>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    // A planned request waiting for room or for one it conflicts with:
    // its number, plan, shape and whether it goes indirect.
    type Pending<R> = (u64, Plan<R>, Vec<Piece>, bool);
    let mut pending: Option<Pending<W::Req>> = None;
    let mut buf: Vec<u8> = Vec::new();
    // Vectors kept between requests: no allocation per request.
    let mut spare_pieces: Vec<Vec<Piece>> = Vec::new();
    let mut spare_at: Vec<Vec<(usize, Piece)>> = Vec::new();
    let mut cut_scratch: Vec<u32> = Vec::new();
    let mut parts: Vec<(usize, u32)> = Vec::new();
    let (kicks0, wraps0) = (q.kicks(), q.wraps());
    let start = (opts.now_us)();
    let mut last_progress = start;
    let mut n = 0u64;
    q.enable_interrupts(opts.completion == Completion::Interrupts);
    let fail = failure::<W::Req>;
    let mut requests = opts.requests;
    loop {
        // One look at the clock a round (a call into the host under TCG):
        // for the end of a timed run and the progress line.
        let now = (opts.now_us)();
        if opts.until_us.is_some_and(|u| now >= u) {
            requests = requests.min(n);
        }
        if now - last_progress >= 2_000_000 {
            last_progress = now;
            let mut s = book.stats;
            s.elapsed_us = now - start;
            progress(&s, opts.requests);
        }
        // Make available all the depth allows.
        while book.in_flight() < depth && (pending.is_some() || n < requests) {
            let (k, plan, pieces, indirect) = match pending.take() {
                Some(p) => p,
                None => {
                    let mut rng = Rng::for_request(opts.seed, opts.stream, n);
                    let plan = w.plan(n, &mut rng);
                    let cuts = plan.cuts;
                    let mut pieces = spare_pieces.pop().unwrap_or_default();
                    if !shape_into(
                        &mut rng,
                        plan.readable,
                        plan.writable,
                        &cuts,
                        &plan.whole,
                        &opts.limits,
                        &mut cut_scratch,
                        &mut pieces,
                    ) {
                        return Err(fail(
                            n,
                            crate::format!(
                                "no chain of at most {} elements holds {}+{} bytes",
                                opts.limits.max_elements,
                                plan.readable,
                                plan.writable
                            ),
                            &book,
                            &slots,
                        ));
                    };
                    let indirect = opts.indirect > 0
                        && pieces.len() > 1
                        && pieces.len() <= usize::from(q.size())
                        && rng.below(opts.indirect) == 0;
                    n += 1;
                    (n - 1, plan, pieces, indirect)
                }
            };
            let needed = if indirect { 1 } else { pieces.len() as u16 };
            let busy = book.iter().any(|f| w.conflicts(&plan.req, &f.req));
            if busy || q.free_descriptors() < needed {
                pending = Some((k, plan, pieces, indirect));
                break;
            }
            let footprint = guard::chain_footprint(&pieces);
            let slot = match free.iter().position(|&s| slots[s].len() >= footprint) {
                Some(i) => free.swap_remove(i),
                None => {
                    slots.push(Rc::new(DmaMemory::new(footprint)));
                    slots.len() - 1
                }
            };
            let mem = &slots[slot];
            let mut at = spare_at.pop().unwrap_or_default();
            at.clear();
            let mut cursor = 0usize;
            for p in &pieces {
                cursor = guard::element_offset(cursor, p.gap);
                at.push((cursor, *p));
                cursor += p.len as usize;
            }
            // The guards first: their doublewords may spill into the
            // elements, which the poison and the fill then write whole.
            guard::lay_chain(mem, &at);
            if !W::PRIMES {
                for &(offset, p) in at.iter().filter(|(_, p)| p.writable) {
                    poison(mem, offset, p.len as usize, opts.poison);
                }
            }
            if W::PRIMES {
                buf.clear();
                buf.resize(plan.writable as usize, 0);
                w.prime(&plan.req, &mut buf);
                let mut done = 0usize;
                for &(offset, p) in at.iter().filter(|(_, p)| p.writable) {
                    mem.write(offset, &buf[done..done + p.len as usize]);
                    done += p.len as usize;
                }
            }
            parts.clear();
            parts.extend(
                at.iter()
                    .filter(|(_, p)| !p.writable)
                    .map(|&(o, p)| (o, p.len)),
            );
            if !w.fill_in_place(&plan.req, mem, &parts) {
                buf.clear();
                buf.resize(plan.readable as usize, 0);
                w.fill(&plan.req, &mut buf);
                let mut done = 0usize;
                for &(offset, len) in &parts {
                    mem.write(offset, &buf[done..done + len as usize]);
                    done += len as usize;
                }
            }
            spare_pieces.push(pieces);
            let element = |&(offset, p): &(usize, Piece)| DmaBuffer {
                mem,
                offset,
                len: p.len,
                device_writable: p.writable,
            };
            // Short chains from the stack, long ones from the heap.
            let added = if at.len() <= SHORT {
                let mut chain = [element(&at[0]); SHORT];
                for (c, a) in chain.iter_mut().zip(&at) {
                    *c = element(a);
                }
                q.add(&chain[..at.len()], indirect)
            } else {
                let chain: Vec<DmaBuffer<'_>> = at.iter().map(element).collect();
                q.add(&chain, indirect)
            };
            let token = added.map_err(|e| fail(k, crate::format!("{}", e), &book, &slots))?;
            book.start(
                token,
                InFlight {
                    n: k,
                    req: plan.req,
                    slot,
                    at,
                },
            )
            .map_err(|e| fail(k, crate::format!("{}", e), &book, &slots))?;
        }
        // One notification for the whole batch.
        q.kick(t)
            .map_err(|e| fail(n, crate::format!("{}", e), &book, &slots))?;
        if book.in_flight() == 0 {
            if pending.is_none() && n >= requests {
                break;
            }
            continue;
        }
        // Take back one answer, waiting for it, then all that are there.
        wake();
        let first = match opts.completion {
            Completion::Interrupts => q.wait_used(t),
            Completion::Polled => q.poll_used(t),
        };
        let mut next = Some(first);
        while let Some(used) = next.take() {
            let used = match used {
                Ok(u) => u,
                // The entry is consumed all the same: the workload says
                // whether the length is one it knows.
                Err(DriveError::Queue(QueueError::UsedLenTooLong { id, len, writable })) => {
                    let f = book.get(id);
                    match f.and_then(|f| w.long_used_len(&f.req, len)) {
                        Some(len) => Used { token: id, len },
                        None => {
                            let e = QueueError::UsedLenTooLong { id, len, writable };
                            let k = f.map_or(n, |f| f.n);
                            return Err(fail(k, crate::format!("{}", e), &book, &slots));
                        }
                    }
                }
                Err(e) => {
                    let oldest = book.iter().map(|f| f.n).min().unwrap_or(n);
                    let what = match e {
                        DriveError::Timeout { .. } => {
                            crate::format!("{} (requests in flight, the oldest {})", e, oldest)
                        }
                        e => crate::format!("{}", e),
                    };
                    return Err(fail(oldest, what, &book, &slots));
                }
            };
            let f = book
                .finish(used.token)
                .map_err(|e| fail(n, crate::format!("{}", e), &book, &slots))?;
            let mem = &slots[f.slot];
            // A store outside the chain first: the more basic fault.
            if let Some(text) = guard::chain_hit_text(mem, &f.at) {
                return Err(fail(f.n, text, &book, &slots));
            }
            parts.clear();
            parts.extend(
                f.at.iter()
                    .filter(|(_, p)| p.writable)
                    .map(|&(o, p)| (o, p.len)),
            );
            let bytes = match w.check_in_place(&f.req, mem, &parts, used.len) {
                Some(bytes) => bytes,
                None => {
                    buf.clear();
                    for &(offset, len) in &parts {
                        let from = buf.len();
                        buf.resize(from + len as usize, 0);
                        mem.read(offset, &mut buf[from..]);
                    }
                    w.check(&f.req, &buf, used.len)
                        .map_err(|e| fail(f.n, e, &book, &slots))?
                }
            };
            book.stats.bytes += bytes;
            free.push(f.slot);
            spare_at.push(f.at);
            next = match q.try_used() {
                Ok(Some(u)) => Some(Ok(u)),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            };
        }
    }
    let mut stats = book.stats;
    stats.kicks = q.kicks() - kicks0;
    stats.wraps = q.wraps() - wraps0;
    stats.elapsed_us = (opts.now_us)() - start;
    Ok(stats)
}

/// A failure of request `n`: `what`, and the first request still in
/// flight (lowest number) whose guards the device wrote into, if any.
fn failure<R>(n: u64, what: String, book: &Book<InFlight<R>>, slots: &[Rc<DmaMemory>]) -> Failure {
    let hit = book
        .iter()
        .filter_map(|f| guard::chain_hit_text(&slots[f.slot], &f.at).map(|t| (f.n, t)))
        .min_by_key(|(k, _)| *k);
    let what = match hit {
        Some((k, text)) => crate::format!(
            "{}; request {} (in flight): {}",
            what.as_str(),
            k,
            text.as_str()
        ),
        None => what,
    };
    Failure {
        request: n,
        what,
        stats: book.stats,
    }
}

/// Chains up to this long are built without allocating.
const SHORT: usize = 8;

fn poison(mem: &DmaMemory, offset: usize, len: usize, how: Poison) {
    const CHUNK: [u8; 256] = [POISON; 256];
    if how == Poison::Ends && len > 16 {
        mem.write(offset, &CHUNK[..8]);
        mem.write(offset + len - 8, &CHUNK[..8]);
        return;
    }
    let mut done = 0;
    while done < len {
        let n = (len - done).min(CHUNK.len());
        mem.write(offset + done, &CHUNK[..n]);
        done += n;
    }
}

#[cfg(test)]
mod tests;
