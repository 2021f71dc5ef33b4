//! Timer interrupts arrive, and not early.

use crate::arch::timer::{self, CKC_INTERRUPTS, CPU_TIMER_INTERRUPTS};
use crate::arch::{tod, TOD_PER_US};
use crate::check::Outcome;
use crate::format;
use crate::machine::Machine;
use core::sync::atomic::Ordering;

const DELAY_US: u64 = 2000;
const GRACE_US: u64 = 1_000_000;

pub fn cpu_timer(_: &mut Machine) -> Outcome {
    let before = CPU_TIMER_INTERRUPTS.load(Ordering::SeqCst);
    let start = tod();
    timer::start_cpu_timer(DELAY_US);
    let fired = timer::wait_until(GRACE_US, false, || {
        CPU_TIMER_INTERRUPTS.load(Ordering::SeqCst) != before
    });
    let elapsed = (tod() - start) / TOD_PER_US;
    timer::stop_cpu_timer();
    if !fired {
        return Outcome::mismatch(
            "CPU-timer interrupt",
            format!("within {} us", GRACE_US).as_str(),
            "none",
        );
    }
    if elapsed < DELAY_US {
        return Outcome::mismatch(
            "CPU-timer interrupt came early (us)",
            format!(">= {}", DELAY_US).as_str(),
            elapsed,
        );
    }
    Outcome::Pass
}

/// The clock comparator armed for a deadline: judged by when its
/// interrupt was taken (the handler notes the TOD), not by when the wait
/// noticed, which is never before the deadline.
pub fn clock_comparator(_: &mut Machine) -> Outcome {
    let before = CKC_INTERRUPTS.load(Ordering::SeqCst);
    timer::note_next_ckc();
    let deadline = timer::deadline_after_us(DELAY_US);
    // The clock comparator is armed with exactly `deadline`, before the
    // wait: on a loaded host the clock may pass it before the wait looks.
    timer::arm_at(deadline);
    timer::wait_until_tod(deadline, false, || false);
    // Another interrupt may have ended the wait just before the deadline
    // and the loop then seen the clock past it with the comparator's
    // interrupt pending but not yet taken: open for it (it stays pending
    // while the clock is past the comparator).
    timer::spin_until(100_000, || CKC_INTERRUPTS.load(Ordering::SeqCst) != before);
    let fired = CKC_INTERRUPTS.load(Ordering::SeqCst) - before;
    if fired == 0 {
        return Outcome::mismatch("clock-comparator interrupts", ">= 1", fired);
    }
    crate::judge::timer_arrival(
        "clock-comparator",
        deadline,
        timer::first_ckc_tod(),
        TOD_PER_US,
    )
}
