//! SIGNAL PROCESSOR: one instruction, an order and a CPU address; the
//! answer is a condition code and, with cc 1, a status word.

use core::arch::asm;

/// Order codes.
pub const SENSE: u8 = 0x01;
pub const EXTERNAL_CALL: u8 = 0x02;
pub const EMERGENCY_SIGNAL: u8 = 0x03;
pub const START: u8 = 0x04;
pub const STOP: u8 = 0x05;
pub const RESTART: u8 = 0x06;
pub const STOP_AND_STORE_STATUS: u8 = 0x09;
pub const INITIAL_CPU_RESET: u8 = 0x0b;
pub const CPU_RESET: u8 = 0x0c;
pub const SET_PREFIX: u8 = 0x0d;
pub const STORE_STATUS_AT_ADDRESS: u8 = 0x0e;
pub const SET_ARCHITECTURE: u8 = 0x12;
pub const CONDITIONAL_EMERGENCY_SIGNAL: u8 = 0x13;
pub const SENSE_RUNNING_STATUS: u8 = 0x15;
pub const STORE_ADDITIONAL_STATUS: u8 = 0x17;

/// Status bits (with cc 1).
pub const STATUS_EQUIPMENT_CHECK: u32 = 0x8000_0000;
pub const STATUS_NOT_RUNNING: u32 = 0x0000_0400;
pub const STATUS_INCORRECT_STATE: u32 = 0x0000_0200;
pub const STATUS_INVALID_PARAMETER: u32 = 0x0000_0100;
pub const STATUS_EXTERNAL_CALL_PENDING: u32 = 0x0000_0080;
pub const STATUS_STOPPED: u32 = 0x0000_0040;
pub const STATUS_OPERATOR_INTERVENING: u32 = 0x0000_0020;
pub const STATUS_CHECK_STOP: u32 = 0x0000_0010;
pub const STATUS_INOPERATIVE: u32 = 0x0000_0004;
pub const STATUS_INVALID_ORDER: u32 = 0x0000_0002;
pub const STATUS_RECEIVER_CHECK: u32 = 0x0000_0001;

/// What SIGP answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// 0 accepted, 1 status stored, 2 busy, 3 not operational.
    pub cc: u32,
    /// The status word; meaningful only with cc 1 (else what the register
    /// held before, which we set to 0).
    pub status: u32,
}

/// Sends `order` with `param` to the CPU at `addr`.
///
/// Safe to call: the orders change other CPUs' state (stop, reset, set
/// prefix, restart), never this program's memory except where the order
/// stores status at an address the caller gave in `param` (STORE STATUS AT
/// ADDRESS, SET PREFIX's new lowcore): use [`sigp_storing`] for those.
pub fn sigp(addr: u16, order: u8, param: u64) -> Answer {
    assert!(
        order != STORE_STATUS_AT_ADDRESS && order != SET_PREFIX,
        "orders that make the target store into memory go through sigp_storing"
    );
    // SAFETY: see above; the target's stores, where the order makes any,
    // go to its own prefix area or absolute 0x1200 (stop and store
    // status), which is lowcore.
    unsafe { sigp_storing(addr, order, param) }
}

/// [`sigp`] for any order.
///
/// # Safety
/// Where the order makes the target store into memory at `param` (set
/// prefix: its lowcore from then on; store status at address: 512
/// bytes), that memory must be the caller's to give.
pub unsafe fn sigp_storing(addr: u16, order: u8, param: u64) -> Answer {
    let cc: u64;
    let status: u64;
    // SAFETY: the caller vouches for the memory the order may write; the
    // instruction itself touches only r2 (status) and reads r3.
    unsafe {
        asm!(
            "sigp %r2, {addr}, 0({order})",
            "ipm {cc}",
            "srl {cc}, 28",
            addr = in(reg) u64::from(addr),
            order = in(reg_addr) u64::from(order),
            cc = out(reg) cc,
            inout("r2") 0u64 => status,
            in("r3") param,
            options(nostack),
        )
    };
    Answer {
        cc: cc as u32 & 3,
        status: status as u32,
    }
}

/// STAP: this CPU's address.
pub fn cpu_address() -> u16 {
    super::hypercall::cpu_address()
}

/// STPX: this CPU's prefix.
pub fn prefix() -> u32 {
    let mut p = 0u32;
    // SAFETY: STPX stores four bytes into `p`.
    unsafe { asm!("stpx 0({0})", in(reg_addr) &mut p, options(nostack)) };
    p
}

/// SIGP with every operand given: `r1` is what R1 (an even register)
/// holds before, `r3` the whole R3 (the CPU address is its low 16 bits),
/// `order` the whole second-operand address (the order is its low 8
/// bits), `param` the odd register R1 + 1. Returns the cc and R1 after,
/// so a caller can see which bits the instruction changed.
///
/// # Safety
/// As for [`sigp_storing`]: memory the order makes the target store into
/// must be the caller's to give.
pub unsafe fn sigp_raw(r1: u64, r3: u64, order: u64, param: u64) -> (u32, u64) {
    let cc: u64;
    let after: u64;
    // SAFETY: the caller vouches for the memory the order may write; the
    // instruction changes only r2 and the cc.
    unsafe {
        asm!(
            "sigp %r2, %r4, 0({order})",
            "ipm {cc}",
            "srl {cc}, 28",
            order = in(reg_addr) order,
            cc = out(reg) cc,
            inout("r2") r1 => after,
            in("r3") param,
            in("r4") r3,
            options(nostack),
        )
    };
    (cc as u32 & 3, after)
}

/// SIGP with an odd R1 (r3): the parameter is R1 itself and the status
/// goes there. `r2` (the even register before it) and `r4` (the one
/// after) are set too, so a caller sees that neither is read as the
/// parameter nor written. `r5` holds the CPU address. Returns the cc and
/// r3 and r2 after.
///
/// # Safety
/// As for [`sigp_storing`].
pub unsafe fn sigp_raw_odd(r3: u64, r5: u64, order: u64, r2: u64, r4: u64) -> (u32, u64, u64) {
    let cc: u64;
    let (odd, even): (u64, u64);
    // SAFETY: as for `sigp_raw`; the instruction changes only r3 and the
    // cc (r2 is returned so the caller can see it did not).
    unsafe {
        asm!(
            "sigp %r3, %r5, 0({order})",
            "ipm {cc}",
            "srl {cc}, 28",
            order = in(reg_addr) order,
            cc = out(reg) cc,
            inout("r3") r3 => odd,
            inout("r2") r2 => even,
            in("r4") r4,
            in("r5") r5,
            options(nostack),
        )
    };
    (cc as u32 & 3, odd, even)
}
