//! Single instructions the checks provoke program interrupts with.

use core::arch::asm;

/// Executes the invalid opcode 0x0000 (operation exception, 2 bytes).
pub fn invalid_opcode() {
    // SAFETY: the instruction only raises an operation exception.
    unsafe { asm!(".insn e, 0x0000", options(nostack, nomem)) };
}

/// LCTLG of CR0 onto itself: privileged, harmless in supervisor state.
pub fn privileged_op() {
    let mut cr0 = 0u64;
    // SAFETY: CR0 is reloaded with its own value.
    unsafe {
        asm!(
            "stctg %c0, %c0, 0({0})",
            "lctlg %c0, %c0, 0({0})",
            in(reg_addr) &mut cr0,
            options(nostack),
        )
    };
}

/// STSI 1.1.1 with a reserved bit set in r0 (specification exception).
pub fn stsi_reserved_bit() {
    // SAFETY: STSI faults before storing anything (reserved bits are checked
    // before the address is used); the address is 0 anyway.
    unsafe {
        asm!(
            "stsi 0",
            inout("r0") (1u64 << 28) | 0x100 | 1 => _,
            in("r1") 1u64,
            options(nostack),
        )
    };
}

/// LG from `addr` (used past the end of storage: addressing exception).
pub fn load_u64(addr: u64) -> u64 {
    let v: u64;
    // SAFETY: a load has no side effect; outside storage it faults instead.
    unsafe { asm!("lg {0}, 0({1})", out(reg) v, in(reg_addr) addr, options(nostack, readonly)) };
    v
}

/// Spins with interrupts disabled: nothing but the host can end this.
pub fn spin_disabled() -> ! {
    super::irq_disable();
    loop {
        core::hint::spin_loop();
    }
}
