//! Interrupt dispatch, recoverable calls, and the "expect a program
//! interrupt" API.
//!
//! boot/head.S saves the full context of every interrupt and calls
//! `zvtest_interrupt`; returning resumes `ctx.psw`, which handlers may point
//! at `zvtest_try_abort` to unwind a check (like longjmp).

use super::{lowcore, Psw, PSW_MASK_PSTATE, PSW_MASK_WAIT};
use core::arch::asm;
use core::cell::UnsafeCell;
use core::mem::offset_of;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

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

const _: () = {
    assert!(offset_of!(InterruptContext, psw) == 128);
    assert!(offset_of!(InterruptContext, fpc) == 144);
    assert!(offset_of!(InterruptContext, fprs) == 152);
    assert!(core::mem::size_of::<InterruptContext>() == 280);
};

/// Registers saved by `zvtest_try_call` (r6-r15, f8-f15), and the PSW
/// mask to resume with.
#[repr(C)]
#[derive(Default)]
pub struct Recovery {
    gprs: [u64; 10],
    fprs: [u64; 8],
    mask: u64,
}

const _: () = assert!(offset_of!(Recovery, fprs) == 80);

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

/// A single-CPU global: interrupt handlers and the main flow never hold a
/// reference across each other.
pub struct Global<T>(UnsafeCell<T>);

// SAFETY: one CPU runs zvtest; accesses are short and never overlap.
unsafe impl<T> Sync for Global<T> {}

impl<T: Copy> Global<T> {
    pub const fn new(v: T) -> Self {
        Global(UnsafeCell::new(v))
    }
    pub fn get(&self) -> T {
        // SAFETY: see the Sync impl; a Copy value is read whole.
        unsafe { core::ptr::read_volatile(self.0.get()) }
    }
    pub fn set(&self, v: T) {
        // SAFETY: see the Sync impl.
        unsafe { core::ptr::write_volatile(self.0.get(), v) }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramInterrupt {
    pub code: u16,
    /// Instruction length in bytes (2, 4 or 6; 0 if not reported).
    pub ilc: u8,
    pub old_psw: Psw,
    pub teid: u64,
}

static PGM_EXPECT: AtomicPtr<Recovery> = AtomicPtr::new(core::ptr::null_mut());
static LAST_PGM: Global<ProgramInterrupt> = Global::new(ProgramInterrupt {
    code: 0,
    ilc: 0,
    old_psw: Psw { mask: 0, addr: 0 },
    teid: 0,
});

/// Runs `f` expecting it to take a program interrupt. Returns the
/// interrupt, or `None` if `f` completed without one.
pub fn expect_program_interrupt<F: FnOnce()>(f: F) -> Option<ProgramInterrupt> {
    let mut rec = Recovery::default();
    let prev = PGM_EXPECT.swap(&mut rec, Ordering::SeqCst);
    let r = try_call(&mut rec, f);
    PGM_EXPECT.store(prev, Ordering::SeqCst);
    (r == ABORT_PROGRAM).then(|| LAST_PGM.get())
}

/// Forgets any armed expectation and ownership (after a check, which may
/// have been cut short inside one): program interrupts and channel reports
/// are nobody's again.
pub fn disarm_expectations() {
    PGM_EXPECT.store(core::ptr::null_mut(), Ordering::SeqCst);
    if CHANNEL_REPORTS_OWNED.swap(false, Ordering::SeqCst) {
        super::disable_channel_reports();
    }
}

/// SVC number that returns the caller to supervisor state.
const SVC_LEAVE_PROBLEM_STATE: u16 = 0xfe;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SvcInterrupt {
    pub code: u16,
    pub ilc: u8,
    pub count: u32,
}

static LAST_SVC: Global<SvcInterrupt> = Global::new(SvcInterrupt {
    code: 0,
    ilc: 0,
    count: 0,
});

pub fn last_svc() -> SvcInterrupt {
    LAST_SVC.get()
}

/// Issues `SVC n`.
pub fn supervisor_call<const N: u8>() {
    // SAFETY: our SVC handler records the call and resumes after it.
    unsafe { asm!("svc {n}", n = const N, options(nostack)) };
}

/// Runs `f` in problem state, then returns to supervisor state through SVC.
pub fn in_problem_state<F: FnOnce()>(f: F) {
    let mut psw = Psw {
        mask: current_mask() | PSW_MASK_PSTATE,
        addr: 0,
    };
    // SAFETY: resumes at label 0 with the same mask plus the problem-state
    // bit; DAT is off and key 0, so our storage stays accessible.
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
    f();
    supervisor_call::<{ SVC_LEAVE_PROBLEM_STATE as u8 }>();
}

/// Handlers for interrupt sources owned by other modules.
pub type ExternalHook = fn(code: u16, param: u32, ctx: &mut InterruptContext) -> bool;
pub type IoHook = fn(subchannel: u32, param: u32, word: u32) -> bool;

static EXTERNAL_HOOK: AtomicUsize = AtomicUsize::new(0);
static IO_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Installs the handler for external interrupts other than the timers and
/// the service signal; it returns false for codes it does not own.
pub fn set_external_hook(h: ExternalHook) {
    EXTERNAL_HOOK.store(h as usize, Ordering::SeqCst);
}

pub fn set_io_hook(h: IoHook) {
    IO_HOOK.store(h as usize, Ordering::SeqCst);
}

#[no_mangle]
extern "C" fn zvtest_interrupt(ctx: &mut InterruptContext, class: u64) {
    let handled = match class {
        CLASS_EXTERNAL => external(ctx),
        CLASS_PROGRAM => program(ctx),
        CLASS_SVC => svc(ctx),
        CLASS_IO => io(),
        CLASS_MCCK => machine_check(),
        CLASS_RESTART => {
            RESTARTS_EXPECTED.load(Ordering::SeqCst) && {
                LAST_RESTART_TOD.store(super::tod(), Ordering::SeqCst);
                RESTARTS.fetch_add(1, Ordering::SeqCst);
                true
            }
        }
        _ => false,
    };
    if !handled {
        crate::runner::unexpected_interrupt(class, ctx);
    }
    // An interrupt that woke an enabled wait resumes after it, not in it.
    ctx.psw.mask &= !PSW_MASK_WAIT;
}

fn external(ctx: &mut InterruptContext) -> bool {
    // SAFETY: lowcore fields of the external interruption.
    let (code, param) = unsafe {
        (
            lowcore::read::<u16>(lowcore::EXT_CODE),
            lowcore::read::<u32>(lowcore::EXT_PARAM),
        )
    };
    match code {
        0x2401 => {
            crate::console::on_service_signal(param);
            true
        }
        0x1004 => {
            super::timer::on_clock_comparator(ctx);
            true
        }
        0x1005 => {
            super::timer::on_cpu_timer();
            true
        }
        _ => match EXTERNAL_HOOK.load(Ordering::SeqCst) {
            0 => false,
            h => {
                // SAFETY: only `ExternalHook` values are stored here.
                let hook = unsafe { core::mem::transmute::<usize, ExternalHook>(h) };
                hook(code, param, ctx)
            }
        },
    }
}

fn program(ctx: &mut InterruptContext) -> bool {
    // SAFETY: lowcore fields of the program interruption.
    let info = unsafe {
        ProgramInterrupt {
            code: lowcore::read::<u16>(lowcore::PGM_CODE),
            ilc: (lowcore::read::<u16>(lowcore::PGM_ILC) & 0x6) as u8,
            old_psw: ctx.psw,
            teid: lowcore::read::<u64>(lowcore::TEID),
        }
    };
    LAST_PGM.set(info);
    let rec = PGM_EXPECT.swap(core::ptr::null_mut(), Ordering::SeqCst);
    if rec.is_null() {
        return false;
    }
    // SAFETY: PGM_EXPECT holds a recovery only while its try_call runs.
    unsafe { resume_at_abort(ctx, rec, ABORT_PROGRAM) };
    true
}

/// The program interrupt that ended the run (for the crash report).
pub fn last_program_interrupt() -> ProgramInterrupt {
    LAST_PGM.get()
}

fn svc(ctx: &mut InterruptContext) -> bool {
    // SAFETY: lowcore fields of the supervisor-call interruption.
    let (code, ilc) = unsafe {
        (
            lowcore::read::<u16>(lowcore::SVC_CODE),
            (lowcore::read::<u16>(lowcore::SVC_ILC) & 0x6) as u8,
        )
    };
    if code == SVC_LEAVE_PROBLEM_STATE {
        ctx.psw.mask &= !PSW_MASK_PSTATE;
    } else {
        let count = LAST_SVC.get().count + 1;
        LAST_SVC.set(SvcInterrupt { code, ilc, count });
    }
    true
}

/// Restart interrupts are taken (counted) only while a check expects one,
/// e.g. a watchdog set to inject one; otherwise they end the run.
pub static RESTARTS_EXPECTED: AtomicBool = AtomicBool::new(false);
pub static RESTARTS: AtomicUsize = AtomicUsize::new(0);
/// When the last expected restart interrupt was taken (TOD).
pub static LAST_RESTART_TOD: AtomicU64 = AtomicU64::new(0);

/// MCIC bit 9: a channel report is pending (the only machine check we take).
const MCIC_CHANNEL_REPORT: u64 = 1 << (63 - 9);
/// Channel-report machine checks seen so far.
pub static CHANNEL_REPORTS: AtomicUsize = AtomicUsize::new(0);
/// Someone (a hot-plug check) waits for channel reports: only then is a
/// channel-report machine check taken rather than reported.
static CHANNEL_REPORTS_OWNED: AtomicBool = AtomicBool::new(false);

/// Takes channel-report machine checks while `f` runs (the owner's wait),
/// with CR14 opened for them; closes CR14 again after.
pub fn with_channel_reports<R>(f: impl FnOnce() -> R) -> R {
    CHANNEL_REPORTS_OWNED.store(true, Ordering::SeqCst);
    super::enable_channel_reports();
    let r = f();
    super::disable_channel_reports();
    CHANNEL_REPORTS_OWNED.store(false, Ordering::SeqCst);
    r
}

fn machine_check() -> bool {
    // SAFETY: lowcore field of the machine-check interruption.
    let mcic = unsafe { lowcore::read::<u64>(lowcore::MCCK_CODE) };
    if mcic & MCIC_CHANNEL_REPORT == 0 || !CHANNEL_REPORTS_OWNED.load(Ordering::SeqCst) {
        return false;
    }
    CHANNEL_REPORTS.fetch_add(1, Ordering::SeqCst);
    true
}

fn io() -> bool {
    // SAFETY: lowcore fields of the I/O interruption.
    let (sid, param, word) = unsafe {
        (
            lowcore::read::<u32>(lowcore::SUBCHANNEL_ID),
            lowcore::read::<u32>(lowcore::IO_PARAM),
            lowcore::read::<u32>(lowcore::IO_INT_WORD),
        )
    };
    match IO_HOOK.load(Ordering::SeqCst) {
        0 => false,
        h => {
            // SAFETY: only `IoHook` values are stored here.
            let hook = unsafe { core::mem::transmute::<usize, IoHook>(h) };
            hook(sid, param, word)
        }
    }
}
