//! Starting another CPU: its own prefix area (a lowcore holding the same
//! new PSWs as ours), its own stack, and a function to run, started with
//! SIGP SET PREFIX and RESTART. What the CPUs then do is above arch.
//!
//! A started CPU's restart new PSW keeps pointing at boot/head.S's
//! `secondary_start`: a restart (SIGP RESTART, or after a stop) starts it
//! again from its function on a fresh stack.

use super::lowcore::{Lowcore, CLASSES};
use super::sigp::{self, Answer};
use super::{Psw, PSW_MASK_64};
use core::mem::offset_of;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// CPU numbers go from 0 (the IPL CPU) to MAX_CPUS - 1: per-CPU tables
/// (console lines, interrupt counts) are this long.
pub const MAX_CPUS: usize = 64;

/// A prefix area: 8 KiB on an 8 KiB boundary, below 2 GiB.
#[repr(C, align(8192))]
pub struct PrefixArea(pub [u8; 8192]);

/// What a started CPU runs: `entry(arg)`, never returning.
pub type Entry = extern "C" fn(u64) -> !;

extern "C" {
    fn secondary_start();
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartError {
    /// SIGP SET PREFIX was not accepted.
    SetPrefix(Answer),
    /// SIGP RESTART was not accepted.
    Restart(Answer),
}

/// Fills `area` so that a restart runs `entry(arg)` on the stack ending
/// at `stack_top` as CPU `number`.
pub fn prepare(area: &mut PrefixArea, number: usize, stack_top: u64, entry: Entry, arg: u64) {
    let put = |a: &mut PrefixArea, at: usize, v: u64| {
        a.0[at..at + 8].copy_from_slice(&v.to_be_bytes());
    };
    // The same interrupt entry points as ours; restart starts `entry`.
    let psws = super::lowcore::read!(new_psws);
    let base = offset_of!(Lowcore, new_psws);
    for (class, psw) in psws.iter().enumerate().take(CLASSES) {
        let psw = if class == 0 {
            Psw {
                mask: PSW_MASK_64,
                addr: secondary_start as *const () as u64,
            }
        } else {
            *psw
        };
        put(area, base + 16 * class, psw.mask);
        put(area, base + 16 * class + 8, psw.addr);
    }
    put(area, offset_of!(Lowcore, cpu_number), number as u64);
    put(area, offset_of!(Lowcore, cpu_stack), stack_top & !7);
    put(
        area,
        offset_of!(Lowcore, cpu_entry),
        entry as *const () as u64,
    );
    put(area, offset_of!(Lowcore, cpu_arg), arg);
}

/// Makes the stopped CPU at `addr` CPU `number`, with `area` as its
/// prefix area, and restarts it into `entry(arg)` on the stack ending at
/// `stack_top`.
///
/// # Safety
/// `area` and the stack must stay that CPU's (never freed, never used by
/// anyone else) for as long as it may run; `area` must lie below 2 GiB.
pub unsafe fn start(
    addr: u16,
    number: usize,
    area: &mut PrefixArea,
    stack_top: u64,
    entry: Entry,
    arg: u64,
) -> Result<(), StartError> {
    prepare(area, number, stack_top, entry, arg);
    let at = area as *mut PrefixArea as u64;
    // SAFETY: the caller gives the area to that CPU for good.
    let a = unsafe { sigp::sigp_storing(addr, sigp::SET_PREFIX, at) };
    if a.cc != 0 {
        return Err(StartError::SetPrefix(a));
    }
    note_started(number, addr);
    let a = sigp::sigp(addr, sigp::RESTART, 0);
    if a.cc != 0 {
        return Err(StartError::Restart(a));
    }
    Ok(())
}

/// Restarts a CPU started with [`start`] (its prefix already `area`)
/// into `entry(arg)` afresh.
///
/// # Safety
/// As for [`start`]; and that CPU must not be running code whose state
/// anyone still needs (it is abandoned).
pub unsafe fn restart(
    addr: u16,
    number: usize,
    area: &mut PrefixArea,
    stack_top: u64,
    entry: Entry,
    arg: u64,
) -> Result<(), StartError> {
    prepare(area, number, stack_top, entry, arg);
    let a = sigp::sigp(addr, sigp::RESTART, 0);
    if a.cc != 0 {
        return Err(StartError::Restart(a));
    }
    Ok(())
}

/// Sets this CPU's number (the IPL CPU: 0) in its lowcore. The IPL CPU's
/// address is noted too: a CPU that ends the run must stop it as well.
pub fn set_cpu_number(n: usize) {
    super::lowcore::write!(cpu_number, n as u64);
    if n == 0 {
        note_started(0, super::sigp::cpu_address());
    }
}

/// This CPU's number.
pub fn cpu_number() -> usize {
    super::lowcore::cpu_number()
}

/// CR6 (the I/O interruption subclasses a CPU takes) and CR0, to give a
/// started CPU the same as ours.
pub fn control_registers() -> (u64, u64) {
    let mut cr = [0u64; 2];
    // SAFETY: STCTG stores CR0 and CR6 into `cr`.
    unsafe {
        core::arch::asm!(
            "stctg %c0, %c0, 0({a})",
            "stctg %c6, %c6, 8({a})",
            a = in(reg_addr) cr.as_mut_ptr(),
            options(nostack),
        )
    };
    (cr[0], cr[1])
}

/// Loads CR0 and CR6 taken from another CPU with [`control_registers`].
pub fn set_control_registers(cr0: u64, cr6: u64) {
    let cr = [cr0, cr6];
    // SAFETY: the values are another CPU's interrupt subclass masks.
    unsafe {
        core::arch::asm!(
            "lctlg %c0, %c0, 0({a})",
            "lctlg %c6, %c6, 8({a})",
            a = in(reg_addr) cr.as_ptr(),
            options(nostack),
        )
    };
}

/// The address of each CPU number started (address + 1; 0: none), so that
/// the end of the run can stop them all first.
static STARTED: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];

fn note_started(number: usize, addr: u16) {
    if let Some(s) = STARTED.get(number) {
        s.store(u32::from(addr) + 1, Ordering::SeqCst);
    }
}

/// Stops every CPU but this one: the IPL CPU and those [`start`]
/// started. The run ends only when no CPU runs: QEMU counts a CPU in an
/// enabled wait as running, so the final disabled wait would otherwise
/// end nothing, and an IPL CPU left running (a CPU it started failed)
/// would go on with the run after its report.
pub fn stop_others() {
    let me = cpu_number();
    for (n, s) in STARTED.iter().enumerate() {
        let a = s.load(Ordering::SeqCst);
        if a != 0 && n != me {
            stop_cpu((a - 1) as u16);
        }
    }
}

/// SIGP STOP to `addr`, again while the host says busy (cc 2: under
/// QEMU, another CPU's SIGP in progress, e.g. the target polling ours),
/// for at most 100 ms.
fn stop_cpu(addr: u16) {
    let end = super::tod().saturating_add(100_000 * super::TOD_PER_US);
    while sigp::sigp(addr, sigp::STOP, 0).cc == 2 && super::tod() < end {
        core::hint::spin_loop();
    }
}

/// No CPU is ending the run.
const NOBODY: u32 = u32::MAX;
/// The CPU number that is writing the run's last report.
static ENDING: AtomicU32 = AtomicU32::new(NOBODY);

/// Whether this CPU may write the run's last report (a bail out, a panic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndClaim {
    /// This CPU is the first: it reports, then calls `end_run`.
    First,
    /// This CPU already claimed it and came back (a fault while
    /// reporting): end now, without reporting again.
    Again,
}

/// Claims the run's last report for this CPU. When two CPUs fail at once
/// (a broken heap shows on every CPU churning it) the second must not cut
/// the first one's report off by stopping it: it waits up to a second for
/// the first to stop it, and ends the run with `code` itself only if that
/// never comes.
pub fn claim_end(code: u64) -> EndClaim {
    let me = cpu_number() as u32;
    match ENDING.compare_exchange(NOBODY, me, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => EndClaim::First,
        Err(owner) if owner == me => EndClaim::Again,
        Err(_) => {
            // Interrupts stay as they are: this CPU is failing.
            let end = super::tod().saturating_add(1_000_000 * super::TOD_PER_US);
            while super::tod() < end {
                core::hint::spin_loop();
            }
            end_run(code)
        }
    }
}

/// Ends the run: every other CPU stopped, then this one in a disabled
/// wait whose address is `code` (the verdict).
pub fn end_run(code: u64) -> ! {
    stop_others();
    super::disabled_wait(code)
}

/// Interrupts taken, per CPU: by class, and the two CPU-to-CPU signals
/// with the last sender's address.
pub struct CpuCounters {
    pub by_class: [AtomicU32; CLASSES],
    pub external_calls: AtomicU32,
    pub emergency_signals: AtomicU32,
    pub last_sender: AtomicU32,
    /// The addresses (below 64) that sent emergency signals, one bit
    /// each (bit n: address n).
    pub emergency_senders: AtomicU64,
}

static COUNTERS: [CpuCounters; MAX_CPUS] = [const {
    CpuCounters {
        by_class: [const { AtomicU32::new(0) }; CLASSES],
        external_calls: AtomicU32::new(0),
        emergency_signals: AtomicU32::new(0),
        last_sender: AtomicU32::new(0),
        emergency_senders: AtomicU64::new(0),
    }
}; MAX_CPUS];

/// CPU `number`'s counters.
pub fn counters(number: usize) -> &'static CpuCounters {
    &COUNTERS[number.min(MAX_CPUS - 1)]
}

/// External interruption codes of the CPU-to-CPU signals.
pub const EXT_EMERGENCY_SIGNAL: u16 = 0x1201;
pub const EXT_EXTERNAL_CALL: u16 = 0x1202;

/// Counts an interrupt of `class` on this CPU (the dispatcher calls it).
pub(super) fn count(class: u64, external: Option<(u16, u16)>) {
    let c = counters(cpu_number());
    if let Some(a) = c.by_class.get(class as usize) {
        a.fetch_add(1, Ordering::Relaxed);
    }
    match external {
        Some((EXT_EXTERNAL_CALL, from)) => {
            c.last_sender.store(u32::from(from), Ordering::SeqCst);
            c.external_calls.fetch_add(1, Ordering::SeqCst);
        }
        Some((EXT_EMERGENCY_SIGNAL, from)) => {
            note_sender(c, from);
            c.emergency_signals.fetch_add(1, Ordering::SeqCst);
        }
        _ => {}
    }
}

fn note_sender(c: &CpuCounters, from: u16) {
    c.last_sender.store(u32::from(from), Ordering::SeqCst);
    if from < 64 {
        c.emergency_senders.fetch_or(1 << from, Ordering::SeqCst);
    }
}

/// Where SIGP STOP AND STORE STATUS stores: absolute 0x1200, 512 bytes
/// (the architecture's save area in the lowcore of absolute page 0).
pub const STORE_STATUS_ABSOLUTE: usize = 0x1200;
/// The architectural-mode id STOP AND STORE STATUS sets: absolute 0xA3
/// (1: z/Architecture).
pub const ARCH_MODE_ID_ABSOLUTE: usize = 0xa3;

/// Reads (`fill` None) or fills the save area at absolute 0x1200 and the
/// mode id byte at 0xA3, returning what they held. Only CPU 0 may: its
/// prefix is 0, so its real addresses there are absolute ones; the two
/// areas are the architecture's, which this firmware leaves unused.
pub fn absolute_save_area(fill: Option<u8>) -> ([u8; 512], u8) {
    assert!(
        super::sigp::prefix() == 0,
        "absolute 0x1200 is reached through prefix 0 only"
    );
    let area: *mut u8 = core::ptr::with_exposed_provenance_mut(STORE_STATUS_ABSOLUTE);
    let id: *mut u8 = core::ptr::with_exposed_provenance_mut(ARCH_MODE_ID_ABSOLUTE);
    let mut out = [0u8; 512];
    for (i, b) in out.iter_mut().enumerate() {
        // SAFETY: 0x1200-0x13ff and 0xa3 are lowcore (always there with
        // DAT off and prefix 0), left by this firmware to the
        // store-status orders.
        unsafe {
            *b = core::ptr::read_volatile(area.add(i));
            if let Some(f) = fill {
                core::ptr::write_volatile(area.add(i), f);
            }
        }
    }
    // SAFETY: as above.
    let old = unsafe { core::ptr::read_volatile(id) };
    if let Some(f) = fill {
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(id, f) };
    }
    (out, old)
}

/// Parks this CPU for good in a wait enabled for I/O and external
/// interrupts at PSW address 0, with every subclass closed (CR0 keeps
/// only the AFP bit, CR6 and CR14 cleared), so that nothing but a SIGP
/// can end it: the state in which a CONDITIONAL EMERGENCY SIGNAL to it,
/// once stopped, must not be generated.
pub fn park_enabled_at_zero() -> ! {
    let crs = [1u64 << (63 - 45), 0, 0];
    let psw = Psw {
        mask: PSW_MASK_64 | super::PSW_MASK_IO | super::PSW_MASK_EXT | super::PSW_MASK_WAIT,
        addr: 0,
    };
    // SAFETY: with every subclass and CR6/CR14 closed no interrupt can be
    // taken, so the PSW's address 0 is never executed; only SIGP (stop,
    // reset, restart) ends this wait.
    unsafe {
        core::arch::asm!(
            "lctlg %c0, %c0, 0({c})",
            "lctlg %c6, %c6, 8({c})",
            "lctlg %c14, %c14, 16({c})",
            "lpswe 0({p})",
            c = in(reg_addr) crs.as_ptr(),
            p = in(reg_addr) &psw,
            options(noreturn),
        )
    }
}
