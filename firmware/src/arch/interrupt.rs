//! Interrupt dispatch, the "expect a program interrupt" API, SVC and
//! problem state.
//!
//! boot/head.S saves the full context of every interrupt and calls
//! `zvtest_interrupt`; returning resumes `ctx.psw`, which handlers may point
//! at `zvtest_try_abort` to unwind a check (see `recovery`).

use super::context::{
    ExternalInterrupt, InterruptContext, InterruptInfo, IoInterrupt, ProgramInterrupt,
    CLASS_EXTERNAL, CLASS_IO, CLASS_MCCK, CLASS_PROGRAM, CLASS_SVC, EXT_CLOCK_COMPARATOR,
    EXT_CPU_TIMER,
};
use super::global::Global;
use super::recovery::{current_mask, resume_at_abort, try_call, Recovery, ABORT_PROGRAM};
use super::{handlers, lowcore, timer, Psw, PSW_MASK_PSTATE, PSW_MASK_WAIT};
use core::arch::asm;
use core::sync::atomic::{AtomicPtr, Ordering};

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

/// Forgets an armed program-interrupt expectation (after a check, which
/// may have been cut short inside one): program interrupts are nobody's
/// again. Handlers registered meanwhile go with `handlers::release_since`.
pub fn disarm_expectations() {
    PGM_EXPECT.store(core::ptr::null_mut(), Ordering::SeqCst);
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

#[no_mangle]
extern "C" fn zvtest_interrupt(ctx: &mut InterruptContext, class: u64) {
    let signal =
        (class == CLASS_EXTERNAL).then(|| (lowcore::external().0, lowcore::external_cpu_address()));
    super::smp::count(class, signal);
    let info = match class {
        CLASS_EXTERNAL => external(ctx),
        CLASS_PROGRAM => program(ctx),
        CLASS_SVC => svc(ctx),
        CLASS_IO => io(),
        CLASS_MCCK => machine_check(),
        _ => match handlers::restart_handler() {
            Some(h) => {
                h();
                None
            }
            None => Some(InterruptInfo::Restart),
        },
    };
    if let Some(info) = info {
        handlers::unexpected(&info, ctx);
    }
    // An interrupt that woke an enabled wait resumes after it, not in it.
    ctx.psw.mask &= !PSW_MASK_WAIT;
}

/// Each class's handler returns None when the interrupt was taken, or
/// what it was when nobody owns it.
fn external(ctx: &mut InterruptContext) -> Option<InterruptInfo> {
    let (code, param, param64) = lowcore::external();
    let ext = ExternalInterrupt {
        code,
        param,
        param64,
    };
    match ext.code {
        EXT_CLOCK_COMPARATOR => timer::on_clock_comparator(ctx),
        EXT_CPU_TIMER => timer::on_cpu_timer(),
        code => match handlers::external_handler(code) {
            Some(h) => h(&ext, ctx),
            None => return Some(InterruptInfo::External(ext)),
        },
    }
    None
}

fn program(ctx: &mut InterruptContext) -> Option<InterruptInfo> {
    let (code, ilc, teid) = lowcore::program();
    let info = ProgramInterrupt {
        code,
        ilc,
        old_psw: ctx.psw,
        teid,
    };
    LAST_PGM.set(info);
    let rec = PGM_EXPECT.swap(core::ptr::null_mut(), Ordering::SeqCst);
    if rec.is_null() {
        return Some(InterruptInfo::Program(info));
    }
    // SAFETY: PGM_EXPECT holds a recovery only while its try_call runs.
    unsafe { resume_at_abort(ctx, rec, ABORT_PROGRAM) };
    None
}

fn svc(ctx: &mut InterruptContext) -> Option<InterruptInfo> {
    let (code, ilc) = lowcore::svc();
    if code == SVC_LEAVE_PROBLEM_STATE {
        ctx.psw.mask &= !PSW_MASK_PSTATE;
    } else {
        let count = LAST_SVC.get().count + 1;
        LAST_SVC.set(SvcInterrupt { code, ilc, count });
    }
    None
}

/// MCIC bit 9: a channel report is pending (the only machine check we take).
const MCIC_CHANNEL_REPORT: u64 = 1 << (63 - 9);

fn machine_check() -> Option<InterruptInfo> {
    let mcic = lowcore::machine_check_code();
    match handlers::channel_report_handler() {
        Some(h) if mcic & MCIC_CHANNEL_REPORT != 0 => {
            h();
            None
        }
        _ => Some(InterruptInfo::MachineCheck { mcic }),
    }
}

fn io() -> Option<InterruptInfo> {
    let (subchannel, param, word) = lowcore::io();
    let io = IoInterrupt {
        subchannel,
        param,
        word,
    };
    match handlers::io_handler() {
        Some(h) if h(&io) => None,
        _ => Some(InterruptInfo::Io(io)),
    }
}
