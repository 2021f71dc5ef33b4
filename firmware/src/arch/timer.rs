//! Clock comparator and CPU timer: waits with a deadline, and one alarm
//! that a module above arch (the per-check deadline) registers.
//!
//! Both timer interrupts belong to this module: the clock comparator wakes
//! every wait, so it cannot be handed to anyone else; the alarm shares it.

use super::context::InterruptContext;
use super::global::Global;
use super::{cr0_subclass, enabled_wait, set_clock_comparator, set_cpu_timer, tod, TOD_PER_US};
use super::{CR0_CLOCK_COMPARATOR, CR0_CPU_TIMER};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Counts of timer interrupts, for the timer checks.
pub static CKC_INTERRUPTS: AtomicU32 = AtomicU32::new(0);
pub static CPU_TIMER_INTERRUPTS: AtomicU32 = AtomicU32::new(0);
/// When the first clock-comparator interrupt after [`note_next_ckc`] was
/// taken (TOD); 0 until then.
static FIRST_CKC_TOD: AtomicU64 = AtomicU64::new(0);

/// Called from the clock-comparator interrupt once the alarm's time has
/// come; it may redirect the interrupted context (to unwind a check).
pub type AlarmHandler = fn(&mut InterruptContext);

#[derive(Clone, Copy)]
struct Alarm {
    at: u64,
    handler: AlarmHandler,
}

/// The one alarm, if set. It fires once: the slot empties as it fires.
static ALARM: Global<Option<Alarm>> = Global::new(None);

/// The alarm belongs to the CPU that took the IPL (the one running the
/// checks); other CPUs' clock comparators only end their own waits.
fn alarm_here() -> Option<Alarm> {
    if super::lowcore::cpu_number() == 0 {
        ALARM.get()
    } else {
        None
    }
}

/// Starts recording when the next clock-comparator interrupt is taken.
pub fn note_next_ckc() {
    FIRST_CKC_TOD.store(0, Ordering::SeqCst);
}

/// When the first clock-comparator interrupt since [`note_next_ckc`] was
/// taken, if one was.
pub fn first_ckc_tod() -> Option<u64> {
    Some(FIRST_CKC_TOD.load(Ordering::SeqCst)).filter(|&t| t != 0)
}

/// Quietens both timers and enables the clock-comparator subclass.
pub fn init() {
    set_clock_comparator(u64::MAX);
    set_cpu_timer(i64::MAX);
    cr0_subclass(CR0_CLOCK_COMPARATOR, true);
}

pub fn deadline_after_us(us: u64) -> u64 {
    tod().saturating_add(us.saturating_mul(TOD_PER_US))
}

/// Sets the alarm to call `handler` from the clock-comparator interrupt
/// once the TOD reaches `at` (the interrupt is taken wherever interrupts
/// are enabled: in waits, or in code running enabled). Replaces any alarm.
pub fn set_alarm(at: u64, handler: AlarmHandler) {
    let old = super::irq_disable();
    ALARM.set(Some(Alarm { at, handler }));
    set_clock_comparator(at);
    super::irq_restore(old);
}

/// Takes the alarm back, fired or not.
pub fn clear_alarm() {
    let old = super::irq_disable();
    ALARM.set(None);
    set_clock_comparator(u64::MAX);
    super::irq_restore(old);
}

fn arm(wait_deadline: u64) {
    let next = match alarm_here() {
        Some(a) => a.at.min(wait_deadline),
        None => wait_deadline,
    };
    set_clock_comparator(next);
}

/// Arms the comparator for `at` (or the alarm, if sooner) at once: its
/// interrupt then comes even if the clock passes `at` before a wait would
/// have armed it (a wait that finds its deadline gone does not arm).
pub fn arm_at(at: u64) {
    let old = super::irq_disable();
    arm(at);
    super::irq_restore(old);
}

/// Waits in an enabled wait until `done()` holds or `timeout_us` passes.
/// Returns whether `done()` held.
pub fn wait_until(timeout_us: u64, io: bool, done: impl FnMut() -> bool) -> bool {
    wait_until_tod(deadline_after_us(timeout_us), io, done)
}

/// [`wait_until`] a TOD `deadline`, which is what the clock comparator is
/// armed with.
pub fn wait_until_tod(deadline: u64, io: bool, mut done: impl FnMut() -> bool) -> bool {
    // Closed between the look and the wait: an interrupt taken there (a
    // check runs with external interrupts open) would be the wake-up the
    // wait then sleeps through until its deadline. Held pending, it ends
    // the wait at once.
    let old = super::irq_disable();
    let ok = loop {
        if done() {
            break true;
        }
        if tod() >= deadline {
            break done();
        }
        arm(deadline);
        enabled_wait(io);
    };
    super::irq_restore(old);
    ok
}

/// Spins, with external interrupts open, until `done()` holds or
/// `timeout_us` passes: for a condition another CPU's interrupt may
/// satisfy (an enabled wait would sleep through it). Returns whether
/// `done()` held.
pub fn spin_until(timeout_us: u64, mut done: impl FnMut() -> bool) -> bool {
    let end = deadline_after_us(timeout_us);
    let old = super::irq_disable();
    super::ext_enable();
    let mut spins = 0u32;
    let ok = loop {
        if done() {
            break true;
        }
        spins = spins.wrapping_add(1);
        // The clock now and then: under TCG a look at it costs a call
        // into QEMU.
        if spins.is_multiple_of(64) && tod() >= end {
            break done();
        }
        core::hint::spin_loop();
    };
    super::irq_restore(old);
    ok
}

/// How long [`poll_until`] spins before it sleeps between looks.
const POLL_SPIN_US: u64 = 5_000;
/// How long it sleeps between looks after that.
const POLL_EVERY_US: u64 = 1_000;

/// [`spin_until`] for the first few milliseconds, then enabled waits of
/// a millisecond between looks: for a condition another CPU may satisfy
/// that can take seconds (or never come). A spinning vCPU costs the host
/// a core for the whole wait; one in a wait costs nothing. Arms the clock
/// comparator: not for a caller that set it itself.
pub fn poll_until(timeout_us: u64, mut done: impl FnMut() -> bool) -> bool {
    let end = deadline_after_us(timeout_us);
    if spin_until(timeout_us.min(POLL_SPIN_US), &mut done) {
        return true;
    }
    let old = super::irq_disable();
    let ok = loop {
        if done() {
            break true;
        }
        let now = tod();
        if now >= end {
            break done();
        }
        arm(end.min(now.saturating_add(POLL_EVERY_US * TOD_PER_US)));
        enabled_wait(false);
    };
    super::irq_restore(old);
    ok
}

pub(super) fn on_clock_comparator(ctx: &mut InterruptContext) {
    // Another CPU's comparator only ends its own wait; the counts and the
    // alarm are the checking CPU's.
    if super::lowcore::cpu_number() != 0 {
        set_clock_comparator(u64::MAX);
        return;
    }
    let _ = FIRST_CKC_TOD.compare_exchange(0, tod(), Ordering::SeqCst, Ordering::SeqCst);
    CKC_INTERRUPTS.fetch_add(1, Ordering::SeqCst);
    // The condition stays pending while TOD > CKC: quieten it, then re-arm
    // for the alarm if that is still ahead.
    set_clock_comparator(u64::MAX);
    let Some(alarm) = alarm_here() else {
        return;
    };
    if tod() < alarm.at {
        set_clock_comparator(alarm.at);
        return;
    }
    ALARM.set(None);
    (alarm.handler)(ctx);
}

pub(super) fn on_cpu_timer() {
    CPU_TIMER_INTERRUPTS.fetch_add(1, Ordering::SeqCst);
    set_cpu_timer(i64::MAX);
}

/// Enables CPU-timer interrupts and starts it at `us` microseconds.
pub fn start_cpu_timer(us: u64) {
    set_cpu_timer((us * TOD_PER_US) as i64);
    cr0_subclass(CR0_CPU_TIMER, true);
}

pub fn stop_cpu_timer() {
    cr0_subclass(CR0_CPU_TIMER, false);
    set_cpu_timer(i64::MAX);
}
