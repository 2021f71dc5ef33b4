//! The running check's deadline: when it passes, the check is unwound to
//! the runner (like longjmp), except inside a critical section (console
//! output, the SCLP page), where the unwinding waits for the section's end.
//!
//! The deadline is arch::timer's alarm; the unwinding is arch's
//! recoverable call.

use crate::arch::context::InterruptContext;
use crate::arch::recovery::{abort_to, resume_at_abort, Recovery, ABORT_TIMEOUT};
use crate::arch::timer;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};

/// Where the running check unwinds to; null when no check runs.
static RECOVERY: AtomicPtr<Recovery> = AtomicPtr::new(core::ptr::null_mut());
static CRITICAL: AtomicU32 = AtomicU32::new(0);
/// The deadline passed inside a critical section.
static PENDING: AtomicBool = AtomicBool::new(false);

/// Arms a deadline `timeout_us` from now that unwinds to `rec`.
pub fn start(rec: &mut Recovery, timeout_us: u64) {
    PENDING.store(false, Ordering::SeqCst);
    RECOVERY.store(rec, Ordering::SeqCst);
    timer::set_alarm(timer::deadline_after_us(timeout_us), on_deadline);
}

/// Disarms it (the check ended, or the run is ending).
pub fn end() {
    timer::clear_alarm();
    RECOVERY.store(core::ptr::null_mut(), Ordering::SeqCst);
    CRITICAL.store(0, Ordering::SeqCst);
    PENDING.store(false, Ordering::SeqCst);
}

fn on_deadline(ctx: &mut InterruptContext) {
    let rec = RECOVERY.load(Ordering::SeqCst);
    if rec.is_null() {
        return;
    }
    if CRITICAL.load(Ordering::SeqCst) > 0 {
        PENDING.store(true, Ordering::SeqCst);
        return;
    }
    // SAFETY: RECOVERY is set only while its check runs below the
    // interrupted code.
    unsafe { resume_at_abort(ctx, rec, ABORT_TIMEOUT) };
}

/// Runs `f` where the deadline may not unwind (console output, shared
/// state); a deadline that passed meanwhile takes effect when the
/// outermost section ends.
pub fn critical<R>(f: impl FnOnce() -> R) -> R {
    // The deadline is the checking CPU's (0); another CPU's sections
    // neither hold it back nor unwind to it.
    if crate::arch::smp::cpu_number() != 0 {
        return f();
    }
    CRITICAL.fetch_add(1, Ordering::SeqCst);
    let r = f();
    if CRITICAL.fetch_sub(1, Ordering::SeqCst) == 1 && PENDING.swap(false, Ordering::SeqCst) {
        let rec = RECOVERY.load(Ordering::SeqCst);
        if !rec.is_null() {
            // SAFETY: RECOVERY is set only while its check runs below us.
            unsafe { abort_to(rec, ABORT_TIMEOUT) };
        }
    }
    r
}
