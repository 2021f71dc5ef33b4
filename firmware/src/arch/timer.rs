//! Clock comparator and CPU timer: waits with a deadline, per-check
//! timeouts, and critical sections a timeout must not cut through.

use super::interrupt::{abort_to, resume_at_abort, InterruptContext, Recovery, ABORT_TIMEOUT};
use super::{cr0_subclass, enabled_wait, set_clock_comparator, set_cpu_timer, tod, TOD_PER_US};
use super::{CR0_CLOCK_COMPARATOR, CR0_CPU_TIMER};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// The running check's deadline (TOD) and where to unwind to; 0 / null when none.
static CHECK_DEADLINE: AtomicU64 = AtomicU64::new(0);
static CHECK_RECOVERY: AtomicPtr<Recovery> = AtomicPtr::new(core::ptr::null_mut());
static CRITICAL: AtomicU32 = AtomicU32::new(0);
static TIMEOUT_PENDING: AtomicBool = AtomicBool::new(false);
/// Counts of timer interrupts, for the timer checks.
pub static CKC_INTERRUPTS: AtomicU32 = AtomicU32::new(0);
pub static CPU_TIMER_INTERRUPTS: AtomicU32 = AtomicU32::new(0);
/// When the first clock-comparator interrupt after [`note_next_ckc`] was
/// taken (TOD); 0 until then.
static FIRST_CKC_TOD: AtomicU64 = AtomicU64::new(0);

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

fn arm(wait_deadline: u64) {
    let check = CHECK_DEADLINE.load(Ordering::SeqCst);
    let next = match check {
        0 => wait_deadline,
        c => c.min(wait_deadline),
    };
    set_clock_comparator(next);
}

/// Waits in an enabled wait until `done()` holds or `timeout_us` passes.
/// Returns whether `done()` held.
pub fn wait_until(timeout_us: u64, io: bool, done: impl FnMut() -> bool) -> bool {
    wait_until_tod(deadline_after_us(timeout_us), io, done)
}

/// [`wait_until`] a TOD `deadline`, which is what the clock comparator is
/// armed with.
pub fn wait_until_tod(deadline: u64, io: bool, mut done: impl FnMut() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        if tod() >= deadline {
            return done();
        }
        arm(deadline);
        enabled_wait(io);
    }
}

/// Arms a per-check timeout that unwinds to `rec`.
pub fn start_check(rec: &mut Recovery, timeout_us: u64) {
    TIMEOUT_PENDING.store(false, Ordering::SeqCst);
    CHECK_RECOVERY.store(rec, Ordering::SeqCst);
    CHECK_DEADLINE.store(deadline_after_us(timeout_us), Ordering::SeqCst);
    arm(u64::MAX);
}

pub fn end_check() {
    CHECK_DEADLINE.store(0, Ordering::SeqCst);
    CHECK_RECOVERY.store(core::ptr::null_mut(), Ordering::SeqCst);
    CRITICAL.store(0, Ordering::SeqCst);
    TIMEOUT_PENDING.store(false, Ordering::SeqCst);
    set_clock_comparator(u64::MAX);
}

pub(super) fn on_clock_comparator(ctx: &mut InterruptContext) {
    let _ = FIRST_CKC_TOD.compare_exchange(0, tod(), Ordering::SeqCst, Ordering::SeqCst);
    CKC_INTERRUPTS.fetch_add(1, Ordering::SeqCst);
    // The condition stays pending while TOD > CKC: quieten it, then re-arm
    // for the check deadline if that is still ahead.
    set_clock_comparator(u64::MAX);
    let deadline = CHECK_DEADLINE.load(Ordering::SeqCst);
    if deadline == 0 {
        return;
    }
    if tod() < deadline {
        set_clock_comparator(deadline);
        return;
    }
    let rec = CHECK_RECOVERY.load(Ordering::SeqCst);
    if rec.is_null() {
        return;
    }
    if CRITICAL.load(Ordering::SeqCst) > 0 {
        TIMEOUT_PENDING.store(true, Ordering::SeqCst);
        return;
    }
    CHECK_DEADLINE.store(0, Ordering::SeqCst);
    // SAFETY: CHECK_RECOVERY is set only while its check runs.
    unsafe { resume_at_abort(ctx, rec, ABORT_TIMEOUT) };
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

/// Runs `f` where a check timeout may not unwind (console output, shared
/// state); an expired timeout takes effect when the section ends.
pub fn critical<R>(f: impl FnOnce() -> R) -> R {
    CRITICAL.fetch_add(1, Ordering::SeqCst);
    let r = f();
    if CRITICAL.fetch_sub(1, Ordering::SeqCst) == 1 && TIMEOUT_PENDING.swap(false, Ordering::SeqCst)
    {
        let rec = CHECK_RECOVERY.load(Ordering::SeqCst);
        if !rec.is_null() {
            CHECK_DEADLINE.store(0, Ordering::SeqCst);
            // SAFETY: CHECK_RECOVERY is set only while its check runs below us.
            unsafe { abort_to(rec, ABORT_TIMEOUT) };
        }
    }
    r
}
