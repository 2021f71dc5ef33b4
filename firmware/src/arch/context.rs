//! What an interruption leaves behind: the interrupted context as
//! boot/head.S saves it, and what each class's lowcore fields said.

use super::layout::define;
use super::Psw;
use core::mem::offset_of;

/// The timers' external interruption codes (arch::timer owns them).
pub const EXT_CLOCK_COMPARATOR: u16 = 0x1004;
pub const EXT_CPU_TIMER: u16 = 0x1005;

pub const CLASS_RESTART: u64 = 0;
pub const CLASS_EXTERNAL: u64 = 1;
pub const CLASS_SVC: u64 = 2;
pub const CLASS_PROGRAM: u64 = 3;
pub const CLASS_MCCK: u64 = 4;
pub const CLASS_IO: u64 = 5;

pub fn class_name(class: u64) -> &'static str {
    [
        "restart",
        "external",
        "supervisor call",
        "program",
        "machine check",
        "I/O",
    ]
    .get(class as usize)
    .copied()
    .unwrap_or("?")
}

/// The interrupted context as saved by boot/head.S (see layout.h).
#[repr(C)]
pub struct InterruptContext {
    pub gprs: [u64; 16],
    pub psw: Psw,
    pub fpc: u32,
    _pad: u32,
    pub fprs: [u64; 16],
}

// boot/head.S builds the context from layout.h's offsets.
const _: () = {
    let ctx = define("CTX");
    assert!(offset_of!(InterruptContext, gprs) as u64 == define("CTX_GPRS") - ctx);
    assert!(offset_of!(InterruptContext, psw) as u64 == define("CTX_PSW") - ctx);
    assert!(offset_of!(InterruptContext, fpc) as u64 == define("CTX_FPC") - ctx);
    assert!(offset_of!(InterruptContext, fprs) as u64 == define("CTX_FPRS") - ctx);
    assert!(core::mem::size_of::<InterruptContext>() as u64 == define("FRAME_SIZE") - ctx);
    assert!(CLASS_RESTART == define("CLASS_RESTART"));
    assert!(CLASS_EXTERNAL == define("CLASS_EXTERNAL"));
    assert!(CLASS_SVC == define("CLASS_SVC"));
    assert!(CLASS_PROGRAM == define("CLASS_PROGRAM"));
    assert!(CLASS_MCCK == define("CLASS_MCCK"));
    assert!(CLASS_IO == define("CLASS_IO"));
};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramInterrupt {
    pub code: u16,
    /// Instruction length in bytes (2, 4 or 6; 0 if not reported).
    pub ilc: u8,
    pub old_psw: Psw,
    pub teid: u64,
}

/// What the interrupt said, read from lowcore at the interruption.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptInfo {
    Restart,
    External(ExternalInterrupt),
    Svc { code: u16, ilc: u8 },
    Program(ProgramInterrupt),
    MachineCheck { mcic: u64 },
    Io(IoInterrupt),
}

impl InterruptInfo {
    /// The interrupt class (lowcore order).
    pub fn class(&self) -> u64 {
        match self {
            InterruptInfo::Restart => CLASS_RESTART,
            InterruptInfo::External(_) => CLASS_EXTERNAL,
            InterruptInfo::Svc { .. } => CLASS_SVC,
            InterruptInfo::Program(_) => CLASS_PROGRAM,
            InterruptInfo::MachineCheck { .. } => CLASS_MCCK,
            InterruptInfo::Io(_) => CLASS_IO,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExternalInterrupt {
    pub code: u16,
    /// The 32-bit external interruption parameter.
    pub param: u32,
    /// The 64-bit one (the legacy virtio transport's token).
    pub param64: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoInterrupt {
    pub subchannel: u32,
    pub param: u32,
    pub word: u32,
}
