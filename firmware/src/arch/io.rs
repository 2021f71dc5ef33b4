//! Channel-subsystem instructions. Each takes the subsystem-identification
//! word in r1 and returns the condition code.

use core::arch::asm;

pub use zvtest_contract::css::blocks::ORB_SIZE;

/// A control block with the word alignment the I/O instructions demand.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug)]
pub struct Block<const N: usize>(pub [u8; N]);

impl<const N: usize> Block<N> {
    pub const fn zeroed() -> Self {
        Block([0; N])
    }
}

/// STSCH, MSCH and TSCH: each reads or stores its control block and no
/// other storage (we never start channel measurement, so MSCH names no
/// measurement block).
macro_rules! io_instruction {
    ($(#[$doc:meta])* $name:ident, $mnemonic:literal, $n:ident) => {
        $(#[$doc])*
        pub fn $name<const $n: usize>(sid: u32, block: &mut Block<$n>) -> u32 {
            let cc: u32;
            // SAFETY: the instruction reads or stores at most the block,
            // which is word aligned; r1 holds the subchannel id.
            unsafe {
                asm!(
                    concat!($mnemonic, " 0({addr})"),
                    "ipm {cc}",
                    "srl {cc}, 28",
                    addr = in(reg_addr) block.0.as_mut_ptr(),
                    cc = lateout(reg) cc,
                    in("r1") u64::from(sid),
                    options(nostack),
                )
            };
            cc
        }
    };
}

io_instruction!(
    /// STORE SUBCHANNEL: 0 stored, 3 not operational.
    store_subchannel, "stsch", N
);
io_instruction!(
    /// MODIFY SUBCHANNEL: 0 done, 1 status pending, 2 busy, 3 not operational.
    modify_subchannel, "msch", N
);

/// START SUBCHANNEL with `orb`: 0 started, 1 status pending, 2 busy, 3
/// not operational.
///
/// # Safety
/// Once started, the device reads and stores wherever the ORB's channel
/// program says, on its own time: the channel program, and every storage
/// area its CCWs name for the count they give, must be valid for the
/// device to read (and, for input commands, to store into) below 2 GiB,
/// and stay so, used by nothing else, until the subchannel reports the
/// program ended (final status, or a completed clear).
pub unsafe fn start_subchannel(sid: u32, orb: &Block<ORB_SIZE>) -> u32 {
    let cc: u32;
    // SAFETY: SSCH reads the ORB (word aligned) and starts the channel
    // program it names; what the program may then touch is the caller's
    // obligation (above). r1 holds the subchannel id.
    unsafe {
        asm!(
            "ssch 0({addr})",
            "ipm {cc}",
            "srl {cc}, 28",
            addr = in(reg_addr) orb.0.as_ptr(),
            cc = lateout(reg) cc,
            in("r1") u64::from(sid),
            options(nostack),
        )
    };
    cc
}
io_instruction!(
    /// TEST SUBCHANNEL into the IRB in `block`: 0 status stored, 1 not pending, 3 n/o.
    test_subchannel, "tsch", N
);

macro_rules! io_function {
    ($(#[$doc:meta])* $name:ident, $mnemonic:literal) => {
        $(#[$doc])*
        pub fn $name(sid: u32) -> u32 {
            let cc: u32;
            // SAFETY: the instruction only acts on the subchannel in r1.
            unsafe {
                asm!(
                    $mnemonic,
                    "ipm {cc}",
                    "srl {cc}, 28",
                    cc = lateout(reg) cc,
                    in("r1") u64::from(sid),
                    options(nostack, nomem),
                )
            };
            cc
        }
    };
}

io_function!(
    /// CLEAR SUBCHANNEL: 0 initiated, 3 not operational.
    clear_subchannel, "csch"
);
io_function!(
    /// HALT SUBCHANNEL: 0 initiated, 1 status pending, 2 busy, 3 n/o.
    halt_subchannel, "hsch"
);

/// STORE CHANNEL REPORT WORD: Some(crw) if one was pending.
pub fn store_crw() -> Option<u32> {
    let mut crw = 0u32;
    let cc: u32;
    // SAFETY: STCRW stores one word into `crw`.
    unsafe {
        asm!(
            "stcrw 0({addr})",
            "ipm {cc}",
            "srl {cc}, 28",
            addr = in(reg_addr) &mut crw,
            cc = lateout(reg) cc,
            options(nostack),
        )
    };
    (cc == 0).then_some(crw)
}

/// CHSC with a page-aligned request/response area. Returns the cc.
pub fn chsc(area: &mut super::Page) -> u32 {
    let cc: u32;
    // SAFETY: CHSC reads the request and stores the response in the page.
    unsafe {
        asm!(
            ".insn rre, 0xb25f0000, {addr}, 0",
            "ipm {cc}",
            "srl {cc}, 28",
            addr = in(reg) area.0.as_mut_ptr(),
            cc = lateout(reg) cc,
            options(nostack),
        )
    };
    cc
}

/// Enables I/O interruption subclass `isc` in CR6.
pub fn enable_isc(isc: u8) {
    let mut cr6 = 0u64;
    // SAFETY: CR6 is read, one ISC bit set, written back.
    unsafe {
        asm!(
            "stctg %c6, %c6, 0({a})",
            "og {bit}, 0({a})",
            "stg {bit}, 0({a})",
            "lctlg %c6, %c6, 0({a})",
            a = in(reg_addr) &mut cr6,
            bit = inout(reg) 1u64 << (31 - u32::from(isc & 7)) => _,
            options(nostack),
        )
    };
}
