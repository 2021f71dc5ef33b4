//! Recoverable calls: run a function so that an interrupt handler (or
//! the function itself) can abandon it and return to the caller with a
//! code, like longjmp. boot/head.S saves and restores the registers.

use super::context::InterruptContext;
use super::layout::define;
use super::{Psw, PSW_MASK_WAIT};
use core::arch::asm;
use core::mem::offset_of;

/// Registers saved by `zvtest_try_call` (r6-r15, f8-f15), and the PSW
/// mask to resume with.
#[repr(C)]
#[derive(Default)]
pub struct Recovery {
    gprs: [u64; 10],
    fprs: [u64; 8],
    mask: u64,
}

// boot/head.S saves and restores it at layout.h's offsets.
const _: () = {
    assert!(offset_of!(Recovery, gprs) as u64 == define("REC_GPRS"));
    assert!(offset_of!(Recovery, fprs) as u64 == define("REC_FPRS"));
};

extern "C" {
    fn zvtest_try_call(f: extern "C" fn(*mut u8), arg: *mut u8, rec: *mut Recovery) -> u64;
    fn zvtest_try_abort(rec: *mut Recovery, code: u64) -> !;
}

/// Why a recoverable call was cut short.
pub const ABORT_PROGRAM: u64 = 1;
pub const ABORT_TIMEOUT: u64 = 2;

/// The current PSW mask (EPSW).
pub fn current_mask() -> u64 {
    let (hi, lo): (u64, u64);
    // SAFETY: EPSW only reads the PSW into two registers.
    unsafe { asm!("epsw {0}, {1}", out(reg) hi, out(reg) lo, options(nomem, nostack)) };
    ((hi & 0xffff_ffff) << 32) | (lo & 0xffff_ffff)
}

/// Runs `f`; returns 0 when it returns, or the code given to `abort`.
///
/// `f` may be abandoned mid-way: it must not hold values whose drop matters.
pub fn try_call<F: FnOnce()>(rec: &mut Recovery, f: F) -> u64 {
    extern "C" fn trampoline<F: FnOnce()>(arg: *mut u8) {
        // SAFETY: `arg` is the `Option<F>` below, alive for the whole call.
        let slot = unsafe { &mut *(arg as *mut Option<F>) };
        if let Some(f) = slot.take() {
            f();
        }
    }
    let mut slot = Some(f);
    rec.mask = current_mask() & !PSW_MASK_WAIT;
    // SAFETY: the trampoline matches the assembly's calling convention and
    // `rec` outlives the call; an abort restores exactly what was saved.
    unsafe { zvtest_try_call(trampoline::<F>, &mut slot as *mut _ as *mut u8, rec) }
}

/// Makes the interrupted context resume by aborting to `rec` with `code`.
///
/// # Safety
/// `rec` must belong to a `try_call` still running below the interrupted code.
pub unsafe fn resume_at_abort(ctx: &mut InterruptContext, rec: *mut Recovery, code: u64) {
    // SAFETY: guaranteed by the caller.
    let mask = unsafe { (*rec).mask };
    ctx.psw = Psw {
        mask,
        addr: zvtest_try_abort as *const () as u64,
    };
    ctx.gprs[2] = rec as u64;
    ctx.gprs[3] = code;
}

/// Abandons the innermost `try_call` from ordinary code.
///
/// # Safety
/// `rec` must belong to a `try_call` that is still running below us.
pub unsafe fn abort_to(rec: *mut Recovery, code: u64) -> ! {
    // SAFETY: guaranteed by the caller.
    unsafe { zvtest_try_abort(rec, code) }
}
