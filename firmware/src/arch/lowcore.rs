//! Lowcore fields (real addresses; the prefix is 0) that the firmware reads.

use super::Psw;

pub const EXT_PARAM: u64 = 0x80;
pub const EXT_CODE: u64 = 0x86;
pub const SVC_ILC: u64 = 0x88;
pub const SVC_CODE: u64 = 0x8a;
pub const PGM_ILC: u64 = 0x8c;
pub const PGM_CODE: u64 = 0x8e;
pub const TEID: u64 = 0xa8;
pub const SUBCHANNEL_ID: u64 = 0xb8;
pub const IO_PARAM: u64 = 0xbc;
pub const IO_INT_WORD: u64 = 0xc0;
pub const MCCK_CODE: u64 = 0xe8;
pub const OLD_PSWS: u64 = 0x120;
pub const NEW_PSWS: u64 = 0x1a0;
pub const EXT_PARAM_64: u64 = 0x11b8;
/// The command line QEMU copies for Linux-style images, and the size of
/// its area (boot/layout.h; the image tells QEMU the same at 0x10430).
pub const IPL_CMDLINE: u64 = 0x10480;
pub const IPL_CMDLINE_MAX: usize = 0xb80;

/// Reads a lowcore field.
///
/// # Safety
/// `addr` must be one of the lowcore offsets above, with `T` its width.
pub unsafe fn read<T: Copy>(addr: u64) -> T {
    // SAFETY: lowcore is always mapped (DAT off, prefix 0); the caller picks
    // a field of that width.
    unsafe { core::ptr::read_volatile(addr as *const T) }
}

/// The new PSW installed for interrupt class `class` (lowcore order).
pub fn new_psw(class: usize) -> Psw {
    assert!(class < 6);
    // SAFETY: the six new PSWs are 16-byte fields at 0x1a0.
    unsafe { read::<Psw>(NEW_PSWS + 16 * class as u64) }
}

/// The raw command-line area, as QEMU filled it (or did not: see
/// `cmdline::passed`).
pub fn ipl_cmdline() -> &'static [u8] {
    // SAFETY: the linker script reserves 0x10400-0x11000 as loaded data.
    unsafe { core::slice::from_raw_parts(IPL_CMDLINE as *const u8, IPL_CMDLINE_MAX) }
}
