//! `hostile.echo`'s last phase: used-buffer notifications held to what
//! was used. On the device reset and opened afresh, each request queue
//! that is not broken takes requests one at a time, each answer taken
//! only after the queue's indicator: an indicator with nothing new in the
//! used ring is a notification with nothing used (why an honest device
//! can never be counted: `workloads::notifications`). After the first,
//! the queue is watched a little longer to tell one from a storm; the
//! queue is then broken and the run goes on.

use crate::fmt::{Hex, ToText};
use crate::format;
use crate::inventory::BusId;
use crate::virtio::ccw::CcwTransport;
use crate::virtio::indicators::Indicators;
use crate::virtio::queue::{DmaBuffer, Queue, USED_TIMEOUT_US};
use crate::virtio::stress::Rng;
use crate::virtio::transport::Transport;
use crate::workloads::notifications::Audit;
use alloc::string::String;
use alloc::vec::Vec;
use zvtest_contract::hostile::REQUEST_QUEUE;

/// Requests per queue, one at a time.
const REQUESTS: u64 = 16;
/// The longest request (bytes each way).
const MAX_LEN: u64 = 256;
/// How long a queue is watched after its first interrupt with nothing
/// used, counting more (a storm).
const WATCH_MS: u64 = 20;

fn now_us() -> u64 {
    crate::arch::tod() / crate::arch::TOD_PER_US
}

/// One echo request of the phase, as the suite makes and checks them.
pub(super) trait Echo {
    /// Its device-readable buffer, then its device-writable one.
    fn buffers(&self) -> [DmaBuffer<'_>; 2];
    /// The answer, `used` bytes: every byte and canary (failure after
    /// `what: `).
    fn check(&self, seed: u64, used: u32, what: &str) -> Result<(), String>;
    /// Its canaries, as after a reset.
    fn canaries(&self, what: &str) -> Result<(), String>;
}

/// The phase on the device just opened (at DRIVER_OK, fresh indicators),
/// sparing the queues in `broken`; `make(queue, n, len)` is request `n`
/// of a queue. Resets the device at the end.
pub(super) fn audit<R: Echo>(
    (mut t, mut ind, mut dev): (CcwTransport, Indicators, Vec<Queue>),
    (bus, seed): (BusId, u64),
    broken: &[u16],
    make: &mut dyn FnMut(u16, u64, usize) -> R,
    failures: &mut Vec<String>,
) {
    let mut held = Vec::new();
    let count = u16::try_from(dev.len()).unwrap_or(u16::MAX);
    for q in REQUEST_QUEUE..count {
        if broken.contains(&q) {
            crate::out!(
                "# hostile {} queue {}: broken earlier, no interrupt phase\n",
                bus,
                q
            );
            continue;
        }
        let Some(queue) = dev.get_mut(usize::from(q)) else {
            continue;
        };
        let what = format!("hostile {} queue {}", bus, q);
        let mut audit = Audit::default();
        let r = one_by_one(&mut t, queue, &mut ind, (seed, q), make, &mut audit);
        match r {
            Ok(()) => crate::out!(
                "# {}: {} requests one at a time, each taken on its interrupt; {} interrupts with nothing used\n",
                what.as_str(),
                audit.used,
                audit.empty
            ),
            Err((f, left)) => {
                failures.push(format!("hostile {} {}; queue marked broken", bus, f.as_str()));
                held.extend(left);
            }
        }
    }
    if let Err(e) = t.reset() {
        failures.push(format!("hostile {}: reset: {}", bus, e.text().as_str()));
    }
    for r in &held {
        if let Err(f) = r.canaries(&format!("hostile {} (interrupt phase)", bus)) {
            failures.push(format!("{} (at the end)", f.as_str()));
        }
    }
}

/// Requests one at a time on `q`, each answer taken only after the
/// queue's indicator; the failure (after `queue N: `) and the request
/// left in flight, if any.
fn one_by_one<R: Echo>(
    t: &mut CcwTransport,
    q: &mut Queue,
    ind: &mut Indicators,
    (seed, index): (u64, u16),
    make: &mut dyn FnMut(u16, u64, usize) -> R,
    audit: &mut Audit,
) -> Result<(), (String, Option<R>)> {
    let mut rng = Rng::new(seed ^ 0x1a7e_0ff1 ^ u64::from(index));
    let qn = |s: String| format!("queue {}: {}", index, s.as_str());
    ind.acknowledge();
    for n in 0..REQUESTS {
        let len = rng.range(1, MAX_LEN + 1) as usize;
        let r = make(index, n, len);
        let token = match q.add(&r.buffers(), false) {
            Ok(token) => token,
            Err(e) => return Err((qn(format!("request {}: {}", n, e.text().as_str())), None)),
        };
        if let Err(e) = q.kick(t) {
            return Err((qn(format!("notify: {}", e.text().as_str())), Some(r)));
        }
        if !t.wait(USED_TIMEOUT_US, &mut || ind.queue_flagged(index)) {
            let why = match q.try_used() {
                Ok(Some(_)) => String::from("used without an interrupt"),
                Ok(None) => String::from("no interrupt and nothing used within the timeout"),
                Err(e) => format!("no interrupt, and {}", e.text().as_str()),
            };
            return Err((
                qn(format!(
                    "request {}: {} (seed {})",
                    n,
                    why.as_str(),
                    Hex(seed)
                )),
                Some(r),
            ));
        }
        ind.acknowledge();
        let used = match q.try_used() {
            Ok(Some(u)) => u,
            Ok(None) => {
                audit.nothing_used(n);
                watch(t, q, ind, (index, n), audit);
                let said = audit.verdict(index, WATCH_MS, seed).unwrap_or_default();
                return Err((said, Some(r)));
            }
            Err(e) => {
                return Err((
                    qn(format!(
                        "request {} (seed {}): {}",
                        n,
                        Hex(seed),
                        e.text().as_str()
                    )),
                    None,
                ))
            }
        };
        if used.token != token {
            return Err((
                qn(format!(
                    "request {}: token {} is not the one in flight ({})",
                    n, used.token, token
                )),
                None,
            ));
        }
        audit.took();
        if let Err(f) = r.check(seed, used.len, &format!("queue {}", index)) {
            return Err((format!("{} (seed {})", f.as_str(), Hex(seed)), None));
        }
    }
    Ok(())
}

/// After an interrupt with nothing used: [`WATCH_MS`] more of the queue's
/// indicators, each counted while the used ring still has nothing new
/// (the watch ends at the first that has something, or at its end).
fn watch(
    t: &mut CcwTransport,
    q: &mut Queue,
    ind: &mut Indicators,
    (index, request): (u16, u64),
    a: &mut Audit,
) {
    let end = now_us() + WATCH_MS * 1000;
    loop {
        let left = end.saturating_sub(now_us());
        if left == 0 || !t.wait(left, &mut || ind.queue_flagged(index)) {
            return;
        }
        ind.acknowledge();
        match q.try_used() {
            Ok(None) => a.nothing_used(request),
            _ => return,
        }
    }
}
