//! The lowcore (real addresses 0-0x2000; the prefix is 0), as a typed
//! layout: the architected fields the firmware reads and the software
//! areas the entry code and the hypercall checks use.
//!
//! [`Lowcore`] only describes where things are. No value of it is ever
//! made: it would sit at address 0, where no Rust reference may point.
//! The accessors read one field at its offset, volatile, with the field's
//! own type. The offsets are checked against the architecture below and
//! against boot/layout.h, which the assembly uses.

use super::layout::define;
use super::Psw;
use core::mem::{offset_of, size_of};

/// An interrupt class's old or new PSWs, in lowcore order (restart,
/// external, SVC, program, machine check, I/O).
pub const CLASSES: usize = 6;

#[repr(C)]
pub struct Lowcore {
    _reserved_0: [u8; 0x80],
    /// External interruption parameter.
    pub ext_param: u32,
    pub ext_cpu_address: u16,
    pub ext_code: u16,
    /// SVC: instruction length (bits 13-14 of the halfword) and number.
    pub svc_ilc: u16,
    pub svc_code: u16,
    /// Program interruption: instruction length and code.
    pub pgm_ilc: u16,
    pub pgm_code: u16,
    _reserved_90: [u8; 0xa8 - 0x90],
    /// Translation-exception identification.
    pub teid: u64,
    _reserved_b0: [u8; 0xb8 - 0xb0],
    /// I/O interruption: subsystem-identification word, parameter and
    /// interruption word.
    pub subchannel_id: u32,
    pub io_param: u32,
    pub io_int_word: u32,
    _reserved_c4: [u8; 0xe8 - 0xc4],
    /// Machine-check interruption code.
    pub mcic: u64,
    _reserved_f0: [u8; 0x120 - 0xf0],
    pub old_psws: [Psw; CLASSES],
    _reserved_180: [u8; 0x1a0 - 0x180],
    pub new_psws: [Psw; CLASSES],
    // From here to 0x11b0 the architecture leaves the storage to software.
    /// boot/head.S: each class's sixteen registers, one 0x80 area a class.
    pub save_areas: [[u64; 16]; CLASSES],
    _free_500: [u8; 0x580 - 0x500],
    /// boot/head.S: the PSW an interrupt resumes with.
    pub resume_psw: Psw,
    _free_590: [u8; 0x5a0 - 0x590],
    /// arch::smp: this CPU's number (0 for the one that took the IPL), and
    /// the stack, function and argument boot/head.S's `secondary_start`
    /// starts a CPU with.
    pub cpu_number: u64,
    pub cpu_stack: u64,
    pub cpu_entry: u64,
    pub cpu_arg: u64,
    _free_5c0: [u8; 0x700 - 0x5c0],
    /// arch::hypercall: the caller's registers around a DIAG that sets all
    /// sixteen, and the registers the DIAG left.
    pub regs_save: [u64; 16],
    pub regs_after: [u64; 16],
    _reserved_800: [u8; 0x11b8 - 0x800],
    /// The 64-bit external interruption parameter.
    pub ext_param64: u64,
}

// The architecture's offsets.
const _: () = {
    assert!(offset_of!(Lowcore, ext_param) == 0x80);
    assert!(offset_of!(Lowcore, ext_cpu_address) == 0x84);
    assert!(offset_of!(Lowcore, ext_code) == 0x86);
    assert!(offset_of!(Lowcore, svc_ilc) == 0x88);
    assert!(offset_of!(Lowcore, svc_code) == 0x8a);
    assert!(offset_of!(Lowcore, pgm_ilc) == 0x8c);
    assert!(offset_of!(Lowcore, pgm_code) == 0x8e);
    assert!(offset_of!(Lowcore, teid) == 0xa8);
    assert!(offset_of!(Lowcore, subchannel_id) == 0xb8);
    assert!(offset_of!(Lowcore, io_param) == 0xbc);
    assert!(offset_of!(Lowcore, io_int_word) == 0xc0);
    assert!(offset_of!(Lowcore, mcic) == 0xe8);
    assert!(offset_of!(Lowcore, old_psws) == 0x120);
    assert!(offset_of!(Lowcore, new_psws) == 0x1a0);
    assert!(offset_of!(Lowcore, ext_param64) == 0x11b8);
    assert!(size_of::<Psw>() == 16);
    assert!(size_of::<Lowcore>() <= 0x2000);
};

// The entry code's offsets (boot/layout.h).
const _: () = {
    assert!(offset_of!(Lowcore, old_psws) as u64 == define("LC_OLD_PSWS"));
    assert!(offset_of!(Lowcore, new_psws) as u64 == define("LC_NEW_PSWS"));
    assert!(size_of::<[Psw; CLASSES]>() as u64 == define("LC_NEW_PSWS_LEN"));
    assert!(offset_of!(Lowcore, save_areas) as u64 == define("LC_SAVE_AREA"));
    assert!(size_of::<[u64; 16]>() as u64 <= define("LC_SAVE_AREA_STRIDE"));
    assert!(0x80 == define("LC_SAVE_AREA_STRIDE"));
    assert!(1 << define("LC_SAVE_AREA_SHIFT") == define("LC_SAVE_AREA_STRIDE"));
    assert!(offset_of!(Lowcore, resume_psw) as u64 == define("LC_RESUME_PSW"));
    assert!(CLASSES as u64 == define("CLASS_IO") + 1);
    assert!(offset_of!(Lowcore, cpu_number) as u64 == define("LC_CPU_NUMBER"));
    assert!(offset_of!(Lowcore, cpu_stack) as u64 == define("LC_CPU_STACK"));
    assert!(offset_of!(Lowcore, cpu_entry) as u64 == define("LC_CPU_ENTRY"));
    assert!(offset_of!(Lowcore, cpu_arg) as u64 == define("LC_CPU_ARG"));
};

/// The save areas are 0x80 apart; the entry code indexes them by shifting.
const _: () = assert!(size_of::<[u64; 16]>() == 0x80);

/// The address of `field` in the lowcore, typed from the layout. The
/// closure is never called: it only names the field and so its type.
macro_rules! field {
    ($field:ident) => {
        $crate::arch::lowcore::typed(
            |l: &$crate::arch::lowcore::Lowcore| &l.$field,
            core::mem::offset_of!($crate::arch::lowcore::Lowcore, $field),
        )
    };
}
pub(super) use field;

/// A pointer of `field`'s type to `offset` in the lowcore.
pub(super) const fn typed<T>(_field: fn(&Lowcore) -> &T, offset: usize) -> *mut T {
    core::ptr::with_exposed_provenance_mut(offset)
}

/// Reads a lowcore field, volatile.
macro_rules! read {
    ($field:ident) => {{
        let p = $crate::arch::lowcore::field!($field);
        // SAFETY: the lowcore is always there (DAT off, prefix 0), the
        // offset is the field's (checked above), and the pointer has its type.
        unsafe { core::ptr::read_volatile(p) }
    }};
}
pub(super) use read;

/// Writes a lowcore field, volatile.
macro_rules! write {
    ($field:ident, $value:expr) => {{
        let p = $crate::arch::lowcore::field!($field);
        // SAFETY: as for `read!`; the caller names a field software owns
        // or one the architecture lets the program set (new PSWs).
        unsafe { core::ptr::write_volatile(p, $value) }
    }};
}
pub(super) use write;

/// The external interruption code and both parameters.
pub fn external() -> (u16, u32, u64) {
    (read!(ext_code), read!(ext_param), read!(ext_param64))
}

/// The CPU address an external interruption came with (external call,
/// emergency signal).
pub fn external_cpu_address() -> u16 {
    read!(ext_cpu_address)
}

/// The program interruption code, instruction length (bytes) and TEID.
pub fn program() -> (u16, u8, u64) {
    (read!(pgm_code), (read!(pgm_ilc) & 0x6) as u8, read!(teid))
}

/// The SVC number and instruction length (bytes).
pub fn svc() -> (u16, u8) {
    (read!(svc_code), (read!(svc_ilc) & 0x6) as u8)
}

/// The I/O interruption's subchannel id, parameter and interruption word.
pub fn io() -> (u32, u32, u32) {
    (read!(subchannel_id), read!(io_param), read!(io_int_word))
}

pub fn machine_check_code() -> u64 {
    read!(mcic)
}

/// The new PSW installed for interrupt class `class` (lowcore order).
pub fn new_psw(class: usize) -> Psw {
    let psws = read!(new_psws);
    psws[class]
}

/// This CPU's number (arch::smp; 0 on the CPU that took the IPL).
pub fn cpu_number() -> usize {
    read!(cpu_number) as usize
}

/// The command line QEMU copies for Linux-style images, and the size of
/// its area (boot/layout.h; the image tells QEMU the same at 0x10430).
pub const IPL_CMDLINE: u64 = 0x10480;
pub const IPL_CMDLINE_MAX: usize = 0xb80;

const _: () = {
    assert!(IPL_CMDLINE == define("IPL_CMDLINE"));
    assert!(IPL_CMDLINE_MAX as u64 == define("IPL_CMDLINE_MAX"));
};

/// The raw command-line area, as QEMU filled it (or did not: see
/// `cmdline::passed`).
pub fn ipl_cmdline() -> &'static [u8] {
    // SAFETY: the linker script reserves 0x10400-0x11000 as loaded data.
    unsafe { core::slice::from_raw_parts(IPL_CMDLINE as *const u8, IPL_CMDLINE_MAX) }
}
