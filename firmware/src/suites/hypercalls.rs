//! Every DIAGNOSE the hosts we know offer, and the ones they must refuse,
//! judged against the table in `crate::hypercalls`.

use crate::arch::handlers;
use crate::arch::hypercall::{cpu_address, diag, diag500, diag500_registers, diag_odd_r1};
use crate::arch::interrupt::{expect_program_interrupt, in_problem_state};
use crate::arch::timer;
use crate::arch::{tod, Page, TOD_PER_US};
use crate::check::Outcome;
use crate::decode::program_code_name;
use crate::dma::DmaMemory;
use crate::fmt::{Hex, ToText};
use crate::format;
use crate::hypercalls::{expect, Case, Expect, HostProfile};
use crate::machine::Machine;
use crate::virtio::ccw::CcwTransport;
use crate::virtio::transport::{
    driver_ok_status, negotiate, QueueAddresses, QueueRings, RingFormat, Transport,
};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use ufmt::{uDisplay, uWrite, Formatter};

/// What a call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Observed {
    /// Completed: r2 and the odd register of the pair (R1+1).
    Done {
        r2: u64,
        rc: u64,
    },
    Exception(u16),
}

impl uDisplay for Observed {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match *self {
            Observed::Done { r2, rc } => ufmt::uwrite!(
                f,
                "completed, r2 {} ({}), R1+1 {}",
                Hex(r2),
                r2 as i64,
                Hex(rc)
            ),
            Observed::Exception(c) => {
                ufmt::uwrite!(f, "{} exception ({})", program_code_name(c), Hex(c.into()))
            }
        }
    }
}

struct ExpectText(Expect);

impl uDisplay for ExpectText {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match self.0 {
            Expect::Returns(v) => ufmt::uwrite!(f, "completed, r2 {} ({})", Hex(v), v as i64),
            Expect::NonNegative => f.write_str("completed, r2 >= 0"),
            Expect::Completes => f.write_str("completed"),
            Expect::Rc(rc) => ufmt::uwrite!(f, "completed, R1+1 {}", Hex(rc)),
            Expect::Exception(c) => {
                ufmt::uwrite!(f, "{} exception ({})", program_code_name(c), Hex(c.into()))
            }
            Expect::Unknown => f.write_str("nothing recorded"),
        }
    }
}

fn observe(call: impl FnOnce() -> (u64, u64)) -> Observed {
    let mut out = (0, 0);
    let slot = &mut out;
    match expect_program_interrupt(|| *slot = call()) {
        Some(p) => Observed::Exception(p.code & 0x7f),
        None => Observed::Done {
            r2: out.0,
            rc: out.1,
        },
    }
}

fn matches(e: Expect, o: Observed) -> bool {
    match (e, o) {
        (Expect::Returns(v), Observed::Done { r2, .. }) => r2 == v,
        (Expect::NonNegative, Observed::Done { r2, .. }) => (r2 as i64) >= 0,
        (Expect::Completes, Observed::Done { .. }) => true,
        (Expect::Rc(v), Observed::Done { rc, .. }) => rc == v,
        (Expect::Exception(c), Observed::Exception(got)) => c == got,
        _ => false,
    }
}

/// The host as the table sees it; a diag288 row first finds out whether
/// the watchdog is there, if `diag288=` did not say.
fn profile(m: &mut Machine, case: Case) -> HostProfile {
    let watchdog_row = matches!(
        case,
        Case::Diag288Start
            | Case::Diag288Cancel
            | Case::Diag288CancelIdle
            | Case::Diag288ShortTimeout
    );
    HostProfile {
        kind: m.host.kind,
        qemu_version: m.cfg.qemu_version,
        diag288: if watchdog_row {
            diag288_present(m)
        } else {
            m.diag288.unwrap_or(false)
        },
    }
}

/// How long the detection's INIT runs the watchdog before it is cancelled
/// (it never gets near expiring).
const PROBE_TIMEOUT_S: u64 = 600;

/// Whether a diag288 watchdog is there: as `diag288=` says, else found out
/// once and said on the console: INIT either completes (and is cancelled
/// at once) or is refused with a specification exception.
pub fn diag288_present(m: &mut Machine) -> bool {
    if let Some(present) = m.diag288 {
        return present;
    }
    let init = observe(|| diag::<0x288>((0, PROBE_TIMEOUT_S), 0));
    let present = matches!(init, Observed::Done { .. });
    if present {
        observe(|| diag::<0x288>((2, 0), 0));
    }
    crate::out!(
        "# diag288: {} (no diag288= on the command line; DIAG 0x288 INIT: {})\n",
        if present { "present" } else { "absent" },
        init
    );
    m.diag288 = Some(present);
    present
}

const LATENCY_RUNS: usize = 64;

/// Median, minimum, maximum and the 10th and 90th percentiles (nearest
/// rank) of repeated calls, as a TAP diagnostic.
fn latency(name: &str, mut call: impl FnMut() -> Observed) {
    let mut ns: Vec<u64> = (0..LATENCY_RUNS)
        .map(|_| {
            let t0 = tod();
            call();
            (tod() - t0) * 1000 / TOD_PER_US
        })
        .collect();
    ns.sort_unstable();
    let rank = |p| zvtest_contract::stress::nearest_rank(&ns, p).unwrap_or(0);
    crate::out!(
        "# latency {}: median {} ns, min {} ns, max {} ns, p10 {} ns, p90 {} ns ({} calls)\n",
        name,
        ns[ns.len() / 2],
        ns[0],
        ns[ns.len() - 1],
        rank(10),
        rank(90),
        LATENCY_RUNS
    );
}

/// Runs `call`, compares with the table, and (if `timed`) reports latency.
fn judge(
    m: &mut Machine,
    case: Case,
    timed: bool,
    call: &mut dyn FnMut() -> (u64, u64),
) -> Outcome {
    let name = case.short_name();
    let host = profile(m, case);
    // With a virtio-mem device (`mem=`) the storage limit is the end of
    // QEMU's device memory, past the storage SCLP reports.
    let limit_base = m
        .cfg
        .mem
        .as_ref()
        .map_or(m.memory, |c| c.device_memory_end(m.memory));
    let want = expect(case, &host, limit_base);
    let got = observe(&mut *call);
    if want == Expect::Unknown {
        return Outcome::skip(&format!(
            "no expectation recorded for {} (observed: {})",
            m.host.kind.name(),
            got
        ));
    }
    if timed && matches(want, got) {
        latency(name, || observe(&mut *call));
    }
    if matches(want, got) {
        Outcome::Pass
    } else {
        Outcome::mismatch(
            &format!("{} on {}", name, m.host.kind.name()),
            ExpectText(want),
            got,
        )
    }
}

fn d500(f: u64, a: u64, b: u64, c: u64) -> (u64, u64) {
    (diag500(f, [a, b, c, 0, 0, 0]), 0)
}

/// A check that makes one call needing nothing from the machine.
macro_rules! simple {
    ($fn:ident, $case:expr, $timed:expr, $call:expr) => {
        pub fn $fn(m: &mut Machine) -> Outcome {
            judge(m, $case, $timed, &mut $call)
        }
    };
}

simple!(printk_inside, Case::Diag500PrintkInside, true, || d500(
    0, 0x1000, 0, 0
));
simple!(legacy_reset, Case::Diag500Reset, false, || d500(1, 0, 0, 0));
simple!(legacy_set_status, Case::Diag500SetStatus, false, || d500(
    2, 0, 0, 0
));
simple!(
    notify_bad_subchannel,
    Case::Diag500NotifyBadSubchannel,
    true,
    || d500(3, 0x0001_fff0, 0, 0)
);
simple!(storage_limit, Case::Diag500StorageLimit, true, || d500(
    4, 0, 0, 0
));
simple!(function_5, Case::Diag500Function5, true, || d500(
    5, 0, 0, 0
));
simple!(function_ffff, Case::Diag500FunctionFfff, false, || d500(
    0xffff, 0, 0, 0
));
simple!(
    function_2pow63,
    Case::Diag500Function2Pow63,
    false,
    || d500(1 << 63, 0, 0, 0)
);
simple!(problem_state, Case::Diag500ProblemState, false, || {
    in_problem_state(|| {
        d500(0, 0x1000, 0, 0);
    });
    (0, 0)
});
simple!(diag44, Case::Diag44, true, || diag::<0x44>((0, 0), 0));
simple!(diag9c_self, Case::Diag9cSelf, true, || diag::<0x9c>(
    (cpu_address().into(), 0),
    0
));
simple!(diag9c_other, Case::Diag9cOther, false, || diag::<0x9c>(
    (u64::from(cpu_address()) ^ 1, 0),
    0
));
simple!(diag9c_missing, Case::Diag9cMissing, false, || diag::<0x9c>(
    (0xffff, 0),
    0
));
simple!(diag258, Case::Diag258, false, || diag::<0x258>((0, 0), 0));
/// Starts the watchdog for 30 s, then cancels it again: a check that
/// leaves it running would end the run half a minute later.
pub fn diag288_start(m: &mut Machine) -> Outcome {
    let r = judge(m, Case::Diag288Start, false, &mut || {
        diag::<0x288>((0, 30), 0)
    });
    observe(|| diag::<0x288>((2, 0), 0));
    r
}

/// A cancel with no watchdog running (none is started here; every other
/// check cancels what it starts).
pub fn diag288_cancel_idle(m: &mut Machine) -> Outcome {
    judge(m, Case::Diag288CancelIdle, false, &mut || {
        diag::<0x288>((2, 0), 0)
    })
}

/// A start below the minimum timeout; should one be accepted, it is
/// cancelled at once.
pub fn diag288_short_timeout(m: &mut Machine) -> Outcome {
    let r = judge(m, Case::Diag288ShortTimeout, false, &mut || {
        diag::<0x288>((0, 14), 0)
    });
    observe(|| diag::<0x288>((2, 0), 0));
    r
}

/// Cancels a watchdog this check started itself: it does not rely on
/// `diag288.start` having run before it.
pub fn diag288_cancel(m: &mut Machine) -> Outcome {
    let host = profile(m, Case::Diag288Start);
    let start = expect(Case::Diag288Start, &host, m.memory);
    let started = observe(|| diag::<0x288>((0, 30), 0));
    if start != Expect::Unknown && !matches(start, started) {
        return Outcome::mismatch(
            "DIAG 0x288 INIT (30 s), the cancel's precondition",
            ExpectText(start),
            started,
        );
    }
    judge(m, Case::Diag288Cancel, false, &mut || {
        diag::<0x288>((2, 0), 0)
    })
}

simple!(diag288_odd, Case::Diag288OddRegister, false, || {
    diag_odd_r1::<0x288>(0, 0);
    (0, 0)
});
simple!(
    diag308_bad_subcode,
    Case::Diag308BadSubcode,
    false,
    || diag::<0x308>((0, 0), 0x1_0000)
);
simple!(diag308_odd, Case::Diag308OddRegister, false, || {
    diag_odd_r1::<0x308>(0, 6);
    (0, 0)
});
simple!(diag318, Case::Diag318, false, || diag::<0x318>((0, 0), 0));
simple!(diag508_query, Case::Diag508Query, false, || diag::<0x508>(
    (0, 0),
    0
));

pub fn diag320_query(m: &mut Machine) -> Outcome {
    let mut page = Box::new(Page([0; 4096]));
    let at = page.0.as_mut_ptr() as u64;
    judge(m, Case::Diag320Query, false, &mut || {
        diag::<0x320>((at, 0), 0)
    })
}

simple!(diag501, Case::Diag501, false, || diag::<0x501>((0, 0), 0));

pub fn printk_outside(m: &mut Machine) -> Outcome {
    let end = m.memory;
    judge(m, Case::Diag500PrintkOutside, true, &mut || {
        d500(0, end, 0, 0)
    })
}

pub fn diag10(m: &mut Machine) -> Outcome {
    let page = Box::new(Page([0; 4096]));
    let at = page.0.as_ptr() as u64;
    judge(m, Case::Diag10, false, &mut || diag::<0x10>((at, 0), at))
}

pub fn diag308_store(m: &mut Machine) -> Outcome {
    let mut page = Box::new(Page([0; 4096]));
    let at = page.0.as_mut_ptr() as u64;
    // Subcode 6 stores the IPL parameters; R1+1 gets the return code.
    judge(m, Case::Diag308Store, false, &mut || {
        diag::<0x308>((at, 0), 6)
    })
}

pub fn diag308_set_invalid(m: &mut Machine) -> Outcome {
    // A zeroed page: its length field (0) is no valid IPL parameter block.
    let page = Box::new(Page([0; 4096]));
    let at = page.0.as_ptr() as u64;
    judge(m, Case::Diag308SetInvalid, false, &mut || {
        diag::<0x308>((at, 0), 5)
    })
}

/// A virtio-ccw device brought to DRIVER_OK with queue 0 set up over
/// zeroed rings (nothing made available) and every other queue left
/// alone, for the notify cases. The transport keeps the rings until the
/// device is reset (on its drop, if nothing reset it before).
struct NotifyTarget {
    transport: CcwTransport,
    /// Where it sits, for the messages.
    bus: crate::inventory::BusId,
    /// How many queues the device has (READ_VQ_CONF answers a size).
    queues: u16,
}

/// The first virtio-ccw device with at least `min_queues` queues, set up
/// as [`NotifyTarget`] says; `Err` names what went wrong with the first
/// candidate that failed.
fn notify_target(m: &Machine, min_queues: u16) -> Result<Option<NotifyTarget>, String> {
    for dev in m.inventory.devices.iter().filter(|d| d.is_virtio()) {
        let fail = |what: &str, e: &dyn ToText| {
            format!("{} {}: {}", dev.bus_id(), what, e.text().as_str())
        };
        let mut t = CcwTransport::open(dev.subchannel.sid, 2).map_err(|e| fail("open", &e))?;
        negotiate(&mut t, 0).map_err(|e| fail("negotiation", &e))?;
        let mut queues = 0;
        while queues < 1024 && t.queue_max(queues).map_err(|e| fail("READ_VQ_CONF", &e))? > 0 {
            queues += 1;
        }
        if queues < min_queues.max(1) {
            let _ = t.reset();
            continue;
        }
        let size = t
            .queue_max(0)
            .map_err(|e| fail("READ_VQ_CONF", &e))?
            .min(16);
        // One page per area (the legacy layout needs only the first two).
        let mem = DmaMemory::new(3 * 4096);
        let base = mem.addr();
        let at = QueueAddresses {
            desc: base,
            driver: base + 4096,
            device: base + 8192,
        };
        let format = if t.revision() == 0 {
            RingFormat::Legacy
        } else {
            RingFormat::Split
        };
        let rings = QueueRings::zeroed(mem, size, format, at).map_err(|e| fail("SET_VQ 0", &e))?;
        t.set_queue(0, rings).map_err(|e| fail("SET_VQ 0", &e))?;
        t.set_status(driver_ok_status(t.revision()))
            .map_err(|e| fail("DRIVER_OK", &e))?;
        return Ok(Some(NotifyTarget {
            transport: t,
            bus: dev.bus_id(),
            queues,
        }));
    }
    Ok(None)
}

/// Notifies queue `queue(target)` of a device with at least `min_queues`
/// queues and judges the answer; the check names the device and queue.
fn with_target(
    m: &mut Machine,
    case: Case,
    min_queues: u16,
    timed: bool,
    queue: impl Fn(&NotifyTarget) -> u64,
) -> Outcome {
    let mut target = match notify_target(m, min_queues) {
        Ok(Some(t)) => t,
        Ok(None) if min_queues > 1 => {
            return Outcome::skip(&format!(
                "no virtio-ccw device with at least {} queues",
                min_queues
            ))
        }
        Ok(None) => return Outcome::skip("no virtio-ccw device"),
        Err(e) => {
            return Outcome::mismatch(
                "setting up a device to notify",
                "DRIVER_OK with queue 0 set up",
                e.as_str(),
            )
        }
    };
    let q = queue(&target);
    crate::out!(
        "# {}: device {} ({} queues), queue {}\n",
        case.short_name(),
        target.bus,
        target.queues,
        q
    );
    let mut cookie = 0u64;
    let t = &target;
    let r = judge(m, case, timed, &mut || {
        let r = t.transport.notify_raw(q, cookie);
        if r >= 0 {
            cookie = r as u64;
        }
        (r as u64, 0)
    });
    let _ = target.transport.reset();
    r
}

pub fn notify_configured(m: &mut Machine) -> Outcome {
    with_target(m, Case::Diag500NotifyConfigured, 1, true, |_| 0)
}

/// Queue 1 of a device that has one: it exists, but only queue 0 was set up.
pub fn notify_not_set_up(m: &mut Machine) -> Outcome {
    with_target(m, Case::Diag500NotifyNotSetUp, 2, false, |_| 1)
}

/// The first queue index the device does not have.
pub fn notify_past_queues(m: &mut Machine) -> Outcome {
    with_target(m, Case::Diag500NotifyPastQueues, 1, false, |t| {
        u64::from(t.queues)
    })
}

pub fn notify_queue_limit(m: &mut Machine) -> Outcome {
    with_target(m, Case::Diag500NotifyQueueLimit, 1, false, |_| 1024)
}

/// Seconds the watchdog runs before it expires (the host's minimum is 15).
const WATCHDOG_S: u64 = 15;

/// Restart interrupts taken while the expiry check waits for one, and
/// when the last was taken (TOD).
static RESTARTS: AtomicUsize = AtomicUsize::new(0);
static LAST_RESTART_TOD: AtomicU64 = AtomicU64::new(0);

fn on_restart() {
    LAST_RESTART_TOD.store(tod(), Ordering::SeqCst);
    RESTARTS.fetch_add(1, Ordering::SeqCst);
}

/// Starts the diag288 watchdog and lets it expire; the host is set to
/// inject a restart interrupt, which we wait for.
pub fn diag288_expiry(m: &mut Machine) -> Outcome {
    if !m.cfg.diag288_expire {
        return Outcome::skip("no diag288=expire on the command line");
    }
    let before = RESTARTS.load(Ordering::SeqCst);
    let restarts = handlers::on_restart(on_restart);
    let started = observe(|| diag::<0x288>((0, WATCHDOG_S), 0));
    // After the start: an early expiry cannot hide in the call's latency.
    let t0 = tod();
    crate::out!("# zvtest: diag288 armed for {} s\n", WATCHDOG_S);
    let fired = timer::wait_until((WATCHDOG_S + 10) * 1_000_000, false, || {
        RESTARTS.load(Ordering::SeqCst) != before
    });
    drop(restarts);
    if !matches!(started, Observed::Done { .. }) {
        return Outcome::mismatch("diag288 start", "completed", started);
    }
    if !fired {
        return Outcome::mismatch(
            "restart interrupt from the expired watchdog",
            format!("within {} s", WATCHDOG_S + 10).as_str(),
            "none",
        );
    }
    // When the interrupt was taken, not when our wait noticed it.
    let arrived = LAST_RESTART_TOD.load(Ordering::SeqCst);
    let arrived_ms = arrived.saturating_sub(t0) / TOD_PER_US / 1000;
    crate::out!(
        "# diag288: restart interrupt {} ms after the start\n",
        arrived_ms
    );
    crate::judge::watchdog_expiry(arrived_ms, WATCHDOG_S)
}

/// Marker a register carries into the call, to be found unchanged after it.
fn marker(r: usize) -> u64 {
    0x5a76_0000_0000_0000 | (r as u64) << 32 | 0x7465_7374
}

/// The kvm_para ABI: DIAG 0x500 with 0 to 6 arguments (r2-r7), function
/// number in r1, result in r2; every other register comes back unchanged.
pub fn abi_registers(m: &mut Machine) -> Outcome {
    let host = profile(m, Case::Diag500PrintkInside);
    for nargs in 0..=6usize {
        // Function 0 (early printk): with an argument below the storage
        // size it answers 0, with the marker (far above it) -EINVAL.
        let case = if nargs == 0 {
            Case::Diag500PrintkOutside
        } else {
            Case::Diag500PrintkInside
        };
        let want = expect(case, &host, m.memory);
        let Expect::Returns(result) = want else {
            return Outcome::skip(&format!(
                "no expectation recorded for DIAG 0x500 function 0 on {}",
                m.host.kind.name()
            ));
        };
        let mut regs: [u64; 16] = core::array::from_fn(marker);
        regs[1] = 0;
        for (i, r) in regs[2..2 + nargs].iter_mut().enumerate() {
            *r = 0x1000 + 8 * i as u64;
        }
        let mut after = [0u64; 16];
        let slot = &mut after;
        if let Some(p) = expect_program_interrupt(|| *slot = diag500_registers(&regs)) {
            return Outcome::mismatch(
                &format!("DIAG 0x500 function 0 with {} arguments", nargs),
                ExpectText(want),
                Observed::Exception(p.code & 0x7f),
            );
        }
        if after[2] != result {
            return Outcome::mismatch(
                &format!("r2 after DIAG 0x500 function 0 with {} arguments", nargs),
                Hex(result),
                Hex(after[2]),
            );
        }
        if let Some(r) = (0..16).find(|&r| r != 2 && after[r] != regs[r]) {
            return Outcome::mismatch(
                &format!(
                    "r{} across DIAG 0x500 with {} arguments (only r2 may change)",
                    r, nargs
                ),
                Hex(regs[r]),
                Hex(after[r]),
            );
        }
    }
    Outcome::Pass
}
