//! Timer interrupts arrive, and not early.

use crate::arch::timer::{self, CKC_INTERRUPTS, CPU_TIMER_INTERRUPTS};
use crate::arch::{tod, TOD_PER_US};
use crate::check::Outcome;
use crate::format;
use crate::runner::Machine;
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

pub fn clock_comparator(_: &mut Machine) -> Outcome {
    let before = CKC_INTERRUPTS.load(Ordering::SeqCst);
    let start = tod();
    // Nothing else can end this wait but the clock comparator.
    let done = timer::wait_until(DELAY_US, false, || false);
    let elapsed = (tod() - start) / TOD_PER_US;
    let fired = CKC_INTERRUPTS.load(Ordering::SeqCst) - before;
    if done || fired == 0 {
        return Outcome::mismatch("clock-comparator interrupts", ">= 1", fired);
    }
    if elapsed < DELAY_US {
        return Outcome::mismatch(
            "woken before the clock-comparator deadline (us)",
            format!(">= {}", DELAY_US).as_str(),
            elapsed,
        );
    }
    Outcome::Pass
}
