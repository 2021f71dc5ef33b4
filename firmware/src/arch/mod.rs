//! The architecture layer: the only place with `asm!`. Each function is a
//! narrow, named capability over one privileged instruction or lowcore field.
//!
//! arch names nothing above it: interrupts go to handlers their owners
//! register (`handlers`). Inside, `global`, `layout`, `lowcore`, `context`
//! and `recovery` sit below `handlers` and `timer`, with `interrupt` (the
//! dispatcher) on top.

pub mod context;
pub mod global;
pub mod handlers;
pub mod hypercall;
pub mod interrupt;
pub mod io;
mod layout;
pub mod lock;
pub mod lowcore;
pub mod probe;
pub mod recovery;
pub mod sigp;
pub mod smp;
pub mod timer;

use core::arch::asm;

pub const PSW_MASK_IO: u64 = 1 << (63 - 6);
pub const PSW_MASK_EXT: u64 = 1 << (63 - 7);
pub const PSW_MASK_MCHECK: u64 = 1 << (63 - 13);
pub const PSW_MASK_WAIT: u64 = 1 << (63 - 14);
pub const PSW_MASK_PSTATE: u64 = 1 << (63 - 15);
pub const PSW_MASK_64: u64 = 0x0000_0001_8000_0000;

/// CR0 external-interruption subclass masks.
pub const CR0_CLOCK_COMPARATOR: u32 = 52;
pub const CR0_CPU_TIMER: u32 = 53;
pub const CR0_SERVICE_SIGNAL: u32 = 54;

/// A page-aligned 4 KiB block (STSI, CHSC).
#[repr(C, align(4096))]
pub struct Page(pub [u8; 4096]);

#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Psw {
    pub mask: u64,
    pub addr: u64,
}

/// The TOD clock (bit 51 = 1 microsecond).
#[inline]
pub fn tod() -> u64 {
    let mut v = 0u64;
    // SAFETY: STCKF stores 8 bytes into `v`, nothing else.
    unsafe { asm!("stckf 0({0})", in(reg_addr) &mut v, options(nostack)) };
    v
}

pub const TOD_PER_US: u64 = 4096;

pub fn set_clock_comparator(v: u64) {
    // SAFETY: SCKC reads 8 bytes from `v`; it only schedules an interrupt
    // that our handler deals with.
    unsafe { asm!("sckc 0({0})", in(reg_addr) &v, options(nostack)) };
}

pub fn set_cpu_timer(v: i64) {
    // SAFETY: as for SCKC.
    unsafe { asm!("spt 0({0})", in(reg_addr) &v, options(nostack)) };
}

pub fn read_cpu_timer() -> i64 {
    let mut v = 0i64;
    // SAFETY: STPT stores 8 bytes into `v`.
    unsafe { asm!("stpt 0({0})", in(reg_addr) &mut v, options(nostack)) };
    v
}

pub fn read_cr0() -> u64 {
    let mut v = 0u64;
    // SAFETY: STCTG stores CR0 into `v`.
    unsafe { asm!("stctg %c0, %c0, 0({0})", in(reg_addr) &mut v, options(nostack)) };
    v
}

fn write_cr0(v: u64) {
    // SAFETY: callers only flip external-interruption subclass bits.
    unsafe { asm!("lctlg %c0, %c0, 0({0})", in(reg_addr) &v, options(nostack)) };
}

/// CR14 bit 35: channel-report-pending machine checks, off.
pub fn disable_channel_reports() {
    let mut cr14 = 0u64;
    // SAFETY: CR14 is read, the channel-report subclass bit cleared, written back.
    unsafe {
        asm!(
            "stctg %c14, %c14, 0({a})",
            "ni 4({a}), 0xef",
            "lctlg %c14, %c14, 0({a})",
            a = in(reg_addr) &mut cr14,
            options(nostack),
        )
    };
}

/// CR0 bit 49: emergency-signal external interrupts; bit 50: external calls.
pub const CR0_EMERGENCY_SIGNAL: u32 = 49;
pub const CR0_EXTERNAL_CALL: u32 = 50;

/// SIGP order 0x03, emergency signal, to the CPU at `addr`; returns the
/// condition code.
pub fn sigp_emergency_signal(addr: u16) -> u32 {
    let cc: u64;
    // SAFETY: the order only makes an external interrupt pending at the
    // target; r2 (status) may be overwritten.
    unsafe {
        asm!(
            "sigp %r2, {addr}, 3",
            "ipm {cc}",
            "srl {cc}, 28",
            addr = in(reg) u64::from(addr),
            cc = out(reg) cc,
            inout("r2") 0u64 => _,
            in("r3") 0u64,
            options(nostack),
        )
    };
    cc as u32 & 3
}

/// CR14 bit 35: channel-report-pending machine checks.
pub fn enable_channel_reports() {
    let mut cr14 = 0u64;
    // SAFETY: CR14 is read, the channel-report subclass bit set, written back.
    unsafe {
        asm!(
            "stctg %c14, %c14, 0({a})",
            "oi 4({a}), 0x10",
            "lctlg %c14, %c14, 0({a})",
            a = in(reg_addr) &mut cr14,
            options(nostack),
        )
    };
}

/// Enables or disables one CR0 external-interruption subclass.
pub fn cr0_subclass(bit: u32, on: bool) {
    let m = 1u64 << (63 - bit);
    let v = read_cr0();
    write_cr0(if on { v | m } else { v & !m });
}

/// Disables I/O and external interrupts, returning the previous system mask.
#[inline]
pub fn irq_disable() -> u8 {
    let mut old = 0u8;
    // SAFETY: STNSM stores the old system mask byte and clears I/O and EXT.
    unsafe { asm!("stnsm 0({0}), 0xfc", in(reg_addr) &mut old, options(nostack)) };
    old
}

/// Restores a system mask returned by `irq_disable`.
#[inline]
pub fn irq_restore(mask: u8) {
    // SAFETY: SSM loads the system mask byte saved earlier.
    unsafe { asm!("ssm 0({0})", in(reg_addr) &mask, options(nostack)) };
}

/// Enables external interrupts (the subclasses decide which arrive).
pub fn ext_enable() {
    let mut old = 0u8;
    // SAFETY: STOSM sets the EXT bit of the system mask.
    unsafe { asm!("stosm 0({0}), 0x01", in(reg_addr) &mut old, options(nostack)) };
}

/// Waits with external (and optionally I/O) interrupts enabled until one
/// arrives. Interrupt handlers clear the wait bit so execution resumes here;
/// the caller's interrupt mask is restored before returning.
pub fn enabled_wait(io: bool) {
    let old = irq_disable();
    // Machine checks are open too: the only ones enabled in CR14 are channel
    // reports (when asked for) and damage, which is reported.
    let mask = PSW_MASK_64
        | PSW_MASK_EXT
        | PSW_MASK_MCHECK
        | PSW_MASK_WAIT
        | if io { PSW_MASK_IO } else { 0 };
    let mut psw = Psw { mask, addr: 0 };
    // SAFETY: the wait PSW resumes at label 0 in 64-bit supervisor state; the
    // interrupt handlers return there with all registers restored.
    unsafe {
        asm!(
            "larl {tmp}, 0f",
            "stg {tmp}, 8({psw})",
            "lpswe 0({psw})",
            "0:",
            psw = in(reg_addr) &mut psw,
            tmp = out(reg) _,
        )
    };
    irq_restore(old);
}

/// Stops this CPU for good with a disabled-wait PSW whose address is
/// `code`. Ending the run is `smp::end_run`, which stops the others first.
pub fn disabled_wait(code: u64) -> ! {
    let psw = Psw {
        mask: PSW_MASK_64 | PSW_MASK_WAIT,
        addr: code,
    };
    // SAFETY: loading a disabled-wait PSW ends execution; nothing follows.
    unsafe { asm!("lpswe 0({0})", in(reg_addr) &psw, options(noreturn)) }
}

/// SERVC: starts an SCLP command on the SCCB at `sccb`. Returns the cc.
///
/// # Safety
/// `sccb` must be a valid SCCB the SCLP may write until completion is signalled.
pub unsafe fn service_call(command: u32, sccb: u64) -> u32 {
    let cc: u32;
    // SAFETY: the caller guarantees the SCCB stays valid.
    unsafe {
        asm!(
            ".insn rre, 0xb2200000, {cmd}, {sccb}",
            "ipm {cc}",
            "srl {cc}, 28",
            cmd = in(reg) u64::from(command),
            sccb = in(reg) sccb,
            cc = lateout(reg) cc,
            options(nostack),
        )
    };
    cc
}

/// STSI: stores SYSIB `fc.sel1.sel2` in `page`. Returns the cc (0 stored, 3 not available).
pub fn stsi(page: &mut [u8; 4096], fc: u64, sel1: u64, sel2: u64) -> u32 {
    assert!(
        (page.as_ptr() as usize) & 0xfff == 0,
        "STSI needs a page-aligned block"
    );
    let cc: u32;
    // SAFETY: STSI stores at most one page into the page-aligned `page`.
    unsafe {
        asm!(
            "stsi 0({addr})",
            "ipm {cc}",
            "srl {cc}, 28",
            addr = in(reg_addr) page.as_mut_ptr(),
            cc = lateout(reg) cc,
            inout("r0") (fc << 28) | sel1 => _,
            in("r1") sel2,
            options(nostack),
        )
    };
    cc
}

/// STSI function code 0: the current configuration level (1, 2 or 3).
pub fn stsi_level() -> u8 {
    let r0: u64;
    // SAFETY: with function code 0 STSI only sets r0; the address is not used.
    unsafe {
        asm!(
            "stsi 0",
            inout("r0") 0u64 => r0,
            in("r1") 0u64,
            options(nostack, nomem),
        )
    };
    ((r0 >> 28) & 0xf) as u8
}

/// STFLE into `words`; returns how many doublewords the machine has.
pub fn stfle(words: &mut [u64]) -> usize {
    let r0: u64;
    // SAFETY: STFLE stores at most `words.len()` doublewords.
    unsafe {
        asm!(
            ".insn s, 0xb2b00000, 0({addr})",
            addr = in(reg_addr) words.as_mut_ptr(),
            inout("r0") words.len() as u64 - 1 => r0,
            options(nostack),
        )
    };
    (r0 & 0xff) as usize + 1
}

/// Symbols from boot/head.S and linker.ld.
pub mod symbols {
    extern "C" {
        pub static _end: u8;
        pub static ipl_params: u8;
        pub fn restart_entry();
        pub fn external_entry();
        pub fn svc_entry();
        pub fn program_entry();
        pub fn mcck_entry();
        pub fn io_entry();
    }

    pub fn image_end() -> u64 {
        core::ptr::addr_of!(_end) as u64
    }

    /// The entry point each new PSW must hold, in lowcore order.
    pub fn entry_points() -> [u64; 6] {
        [
            restart_entry as *const () as u64,
            external_entry as *const () as u64,
            svc_entry as *const () as u64,
            program_entry as *const () as u64,
            mcck_entry as *const () as u64,
            io_entry as *const () as u64,
        ]
    }
}
