//! DIAGNOSE hypercalls. DIAG 0x500 follows the kvm_para ABI: function
//! number in r1, arguments in r2-r7, result in r2.

use super::lowcore::{read, Lowcore};
use core::arch::asm;
use core::mem::offset_of;

/// DIAG 0x500 with function `nr` and up to six arguments.
pub fn diag500(nr: u64, args: [u64; 6]) -> u64 {
    let ret: u64;
    // SAFETY: the hypervisor only reads the registers and may write r2;
    // a host without the function raises a program interrupt instead,
    // which the caller expects or reports.
    unsafe {
        asm!(
            "diag %r2, %r4, 0x500",
            in("r1") nr,
            inout("r2") args[0] => ret,
            in("r3") args[1],
            in("r4") args[2],
            in("r5") args[3],
            in("r6") args[4],
            in("r7") args[5],
            options(nostack),
        )
    };
    ret
}

/// The legacy s390-virtio transport's functions.
pub const LEGACY_NOTIFY: u64 = 0;
pub const LEGACY_RESET: u64 = 1;
pub const LEGACY_SET_STATUS: u64 = 2;

/// Any other DIAGNOSE `CODE` in the form `diag %r2, %r4, CODE`: R1 is the
/// even/odd pair r2/r3 (`pair`), R3 is r4. Returns the pair afterwards.
pub fn diag<const CODE: u16>(pair: (u64, u64), r3: u64) -> (u64, u64) {
    let (a, b): (u64, u64);
    // SAFETY: the host reads the registers and may write the pair; a code
    // it does not serve raises a program interrupt the caller expects.
    unsafe {
        asm!(
            "diag %r2, %r4, {code}",
            code = const CODE,
            inout("r2") pair.0 => a,
            inout("r3") pair.1 => b,
            in("r4") r3,
            options(nostack),
        )
    };
    (a, b)
}

/// DIAGNOSE `CODE` with an odd R1 (r3), which pair-taking codes refuse.
pub fn diag_odd_r1<const CODE: u16>(r1: u64, r3: u64) {
    // SAFETY: as for `diag`; the host is expected to refuse the form.
    unsafe {
        asm!(
            "diag %r3, %r4, {code}",
            code = const CODE,
            in("r3") r1,
            in("r4") r3,
            options(nostack),
        )
    };
}

/// STAP: this CPU's address.
pub fn cpu_address() -> u16 {
    let mut a = 0u16;
    // SAFETY: STAP stores two bytes into `a`.
    unsafe { asm!("stap 0({0})", in(reg_addr) &mut a, options(nostack)) };
    a
}

/// Lowcore scratch for `diag500_registers`: the caller's registers, then
/// the registers after the call.
const REGS_SAVE: usize = offset_of!(Lowcore, regs_save);
const REGS_AFTER: usize = offset_of!(Lowcore, regs_after);

/// DIAG 0x500 with all sixteen general registers set from `regs` (r1 the
/// function number, r2-r7 the arguments, the rest markers); returns all
/// sixteen as the call left them, so a check can see what it preserved.
/// The caller's registers (r11 and r15 included) are restored around it.
pub fn diag500_registers(regs: &[u64; 16]) -> [u64; 16] {
    let old = super::irq_disable();
    // SAFETY: our registers are saved to and restored from a lowcore area
    // nothing else uses while interrupts are off; the stack is not used in
    // between. A program interrupt unwinds through the caller's recovery
    // (expect_program_interrupt), which restores r6-r15 itself.
    unsafe {
        asm!(
            "stmg %r0, %r15, {save}",
            "lmg %r0, %r15, 0({regs})",
            "diag %r2, %r4, 0x500",
            "stmg %r0, %r15, {after}",
            "lmg %r0, %r15, {save}",
            regs = in(reg_addr) regs.as_ptr(),
            save = const REGS_SAVE,
            after = const REGS_AFTER,
        )
    };
    super::irq_restore(old);
    read!(regs_after)
}
