//! Every CPU the host gives: found with SCLP Read CPU Info, each started
//! with SIGP (arch::smp) into an idle loop of its own, and handed work by
//! the checking CPU (number 0, the one that took the IPL).
//!
//! An idle CPU sleeps in an enabled wait; work reaches it through its
//! mailbox and an external call that wakes it. It answers the same way.
//! Every wait for another CPU has a timeout; a CPU that misses it is
//! stopped (so it touches nothing of the caller's any more) and named.

use crate::arch::handlers::{self, Registration};
use crate::arch::sigp::{self, Answer};
use crate::arch::smp::{self as arch_smp, PrefixArea, StartError, MAX_CPUS};
use crate::arch::{self, timer, TOD_PER_US};
use crate::console::sclp;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Each CPU's own stack.
pub const STACK_SIZE: usize = 64 << 10;
/// How long a started CPU may take to reach its idle loop: generous, for
/// eight CPUs sharing two host cores under TCG.
pub const START_TIMEOUT_US: u64 = 5_000_000;

/// What a CPU number is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// No CPU with this number.
    Absent = 0,
    /// Restarted, not yet in its idle loop.
    Starting = 1,
    Idle = 2,
    Busy = 3,
    /// Stopped by us (it missed a timeout) or by itself.
    Stopped = 4,
}

impl State {
    fn from(v: u8) -> State {
        match v {
            1 => State::Starting,
            2 => State::Idle,
            3 => State::Busy,
            4 => State::Stopped,
            _ => State::Absent,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            State::Absent => "absent",
            State::Starting => "starting",
            State::Idle => "idle",
            State::Busy => "busy",
            State::Stopped => "stopped",
        }
    }
}

/// Work for one CPU: `call(data)`, then `done`, then an external call to
/// `poster`.
struct Job {
    call: unsafe fn(*const ()),
    data: *const (),
    done: AtomicBool,
    poster: u16,
    /// The poster's CR6, where the work takes I/O interrupts.
    cr6: Option<u64>,
}

struct Slot {
    /// The CPU's address + 1 (0: none).
    address: AtomicU32,
    state: AtomicU8,
    job: AtomicPtr<Job>,
    area: AtomicPtr<PrefixArea>,
    stack_top: AtomicU64,
    /// TOD when it reached its idle loop first.
    up_at: AtomicU64,
}

static SLOTS: [Slot; MAX_CPUS] = [const {
    Slot {
        address: AtomicU32::new(0),
        state: AtomicU8::new(0),
        job: AtomicPtr::new(core::ptr::null_mut()),
        area: AtomicPtr::new(core::ptr::null_mut()),
        stack_top: AtomicU64::new(0),
        up_at: AtomicU64::new(0),
    }
}; MAX_CPUS];

/// Whether idle and working CPUs take I/O interrupts (a phase where every
/// CPU drives queues); otherwise only CPU 0 does.
static SHARED_IO: AtomicBool = AtomicBool::new(false);
/// A CPU address told not to start (`inject=` proof), u32::MAX: none.
static REFUSE: AtomicU32 = AtomicU32::new(u32::MAX);

fn slot(n: usize) -> &'static Slot {
    &SLOTS[n]
}

/// CPU `n`'s address, if there is one.
pub fn address(n: usize) -> Option<u16> {
    match SLOTS.get(n)?.address.load(Ordering::SeqCst) {
        0 => None,
        a => Some((a - 1) as u16),
    }
}

pub fn state(n: usize) -> State {
    SLOTS.get(n).map_or(State::Absent, |s| {
        State::from(s.state.load(Ordering::SeqCst))
    })
}

/// This CPU's number.
pub fn this_cpu() -> usize {
    arch_smp::cpu_number()
}

/// One CPU as start-up found it.
#[derive(Clone, Debug)]
pub struct CpuRecord {
    pub number: usize,
    pub address: u16,
    /// Microseconds from its SIGP RESTART to its idle loop, or why not.
    pub started: Result<u64, String>,
}

/// What start-up found and started; kept for the run (the external-call
/// handler lives as long as this).
pub struct Cpus {
    /// Read CPU Info's configured CPUs (addresses), or why there is no list.
    pub configured: Result<Vec<u16>, String>,
    pub boot_address: u16,
    /// Every CPU but this one, in address order.
    pub others: Vec<CpuRecord>,
    /// Configured CPUs past MAX_CPUS, not started.
    pub left_out: Vec<u16>,
    /// CPUs plugged since start-up (`smp.hotplug`), in `configured` now.
    pub plugged: usize,
    _wake: Registration,
}

impl Cpus {
    /// The CPU numbers running their idle loop now (0 included).
    pub fn ready(&self) -> Vec<usize> {
        core::iter::once(0)
            .chain(
                self.others
                    .iter()
                    .map(|c| c.number)
                    .filter(|&n| state(n) == State::Idle),
            )
            .collect()
    }

    /// How many CPUs there are (all configured ones).
    pub fn count(&self) -> usize {
        1 + self.others.len() + self.left_out.len()
    }
}

fn on_external_call(
    _: &crate::arch::context::ExternalInterrupt,
    _: &mut crate::arch::context::InterruptContext,
) {
    // Only a wake-up: the waits look at what changed. arch counts it.
}

fn signal(addr: u16) {
    // cc 1 with "external call pending": one is on its way already.
    let _ = sigp::sigp(addr, sigp::EXTERNAL_CALL, 0);
}

/// Finds the configured CPUs and starts every other one into its idle
/// loop, each with its own prefix area and stack. `refuse`: an address
/// whose CPU is told not to come up (the proof that a missing CPU fails).
pub fn bring_up(refuse: Option<u16>) -> Cpus {
    arch_smp::set_cpu_number(0);
    let boot_address = sigp::cpu_address();
    slot(0)
        .address
        .store(u32::from(boot_address) + 1, Ordering::SeqCst);
    slot(0).state.store(State::Busy as u8, Ordering::SeqCst);
    let wake = handlers::on_external(arch_smp::EXT_EXTERNAL_CALL, on_external_call);
    arch::cr0_subclass(arch::CR0_EXTERNAL_CALL, true);
    REFUSE.store(refuse.map_or(u32::MAX, u32::from), Ordering::SeqCst);
    let configured = match sclp::read_cpu_entries() {
        Ok(Ok(info)) => Ok(info.configured),
        Ok(Err(e)) => Err(String::from(e)),
        Err(e) => Err(crate::format!("SCLP Read CPU Info: {}", e)),
    };
    let mut cpus = Cpus {
        configured: configured.clone(),
        boot_address,
        others: Vec::new(),
        left_out: Vec::new(),
        plugged: 0,
        _wake: wake,
    };
    let Ok(mut addresses) = configured else {
        return cpus;
    };
    addresses.sort_unstable();
    addresses.dedup();
    for a in addresses.into_iter().filter(|&a| a != boot_address) {
        let number = cpus.others.len() + 1;
        if number >= MAX_CPUS {
            cpus.left_out.push(a);
            continue;
        }
        cpus.others.push(CpuRecord {
            number,
            address: a,
            started: Err(String::new()),
        });
    }
    let t0 = arch::tod();
    for c in &mut cpus.others {
        if let Err(e) = start(c.number, c.address) {
            c.started = Err(crate::format!("{}", StartFailure(e)));
        }
    }
    // A CPU's start is a change asked of the host: `host-wait=` bounds it.
    let wait_us = crate::host_wait::us(START_TIMEOUT_US);
    let deadline = t0 + wait_us * TOD_PER_US;
    timer::wait_until_tod(deadline, false, || {
        cpus.others.iter().all(|c| {
            c.started.as_ref().is_err_and(|e| !e.is_empty())
                || matches!(state(c.number), State::Idle | State::Stopped)
        })
    });
    for c in &mut cpus.others {
        if c.started.as_ref().is_err_and(|e| !e.is_empty()) {
            continue;
        }
        c.started = match state(c.number) {
            State::Idle => Ok((slot(c.number).up_at.load(Ordering::SeqCst) - t0) / TOD_PER_US),
            s => Err(crate::format!(
                "not in its idle loop {} ms after SIGP RESTART (state {})",
                wait_us / 1000,
                s.name()
            )),
        };
    }
    cpus
}

struct StartFailure(StartError);

impl ufmt::uDisplay for StartFailure {
    fn fmt<W: ufmt::uWrite + ?Sized>(
        &self,
        f: &mut ufmt::Formatter<'_, W>,
    ) -> Result<(), W::Error> {
        let (what, a) = match self.0 {
            StartError::SetPrefix(a) => ("SIGP SET PREFIX", a),
            StartError::Restart(a) => ("SIGP RESTART", a),
        };
        ufmt::uwrite!(f, "{}: {}", what, SigpAnswer(a))
    }
}

/// A SIGP answer as the report shows it.
pub struct SigpAnswer(pub Answer);

impl ufmt::uDisplay for SigpAnswer {
    fn fmt<W: ufmt::uWrite + ?Sized>(
        &self,
        f: &mut ufmt::Formatter<'_, W>,
    ) -> Result<(), W::Error> {
        if self.0.cc == 1 {
            ufmt::uwrite!(
                f,
                "cc 1, status {}",
                crate::fmt::HexW(u64::from(self.0.status), 8)
            )
        } else {
            ufmt::uwrite!(f, "cc {}", self.0.cc)
        }
    }
}

/// Gives CPU `number` (at `addr`) a prefix area and a stack of its own,
/// kept for the run, and restarts it into [`secondary_main`].
fn start(number: usize, addr: u16) -> Result<(), StartError> {
    let s = slot(number);
    s.address.store(u32::from(addr) + 1, Ordering::SeqCst);
    s.state.store(State::Starting as u8, Ordering::SeqCst);
    let area = Box::into_raw(Box::new(PrefixArea([0; 8192])));
    let stack: &'static mut [u8] = Box::leak(alloc::vec![0u8; STACK_SIZE].into_boxed_slice());
    let top = stack.as_ptr() as u64 + STACK_SIZE as u64;
    s.area.store(area, Ordering::SeqCst);
    s.stack_top.store(top, Ordering::SeqCst);
    // SAFETY: the area and the stack are leaked: that CPU's for good; the
    // heap lies below 2 GiB.
    unsafe { arch_smp::start(addr, number, &mut *area, top, secondary_main, number as u64) }
}

/// Restarts CPU `number` into a fresh idle loop (after it was stopped).
fn revive(number: usize) -> Result<(), StartError> {
    let s = slot(number);
    let Some(addr) = address(number) else {
        return Ok(());
    };
    let area = s.area.load(Ordering::SeqCst);
    if area.is_null() {
        return Ok(());
    }
    s.state.store(State::Starting as u8, Ordering::SeqCst);
    s.job.store(core::ptr::null_mut(), Ordering::SeqCst);
    // SAFETY: the area and stack are that CPU's (see `start`), and it is
    // stopped: whatever ran on the stack is abandoned.
    unsafe {
        arch_smp::restart(
            addr,
            number,
            &mut *area,
            s.stack_top.load(Ordering::SeqCst),
            secondary_main,
            number as u64,
        )
    }
}

/// Where every other CPU runs: its idle loop, taking the jobs posted to it.
extern "C" fn secondary_main(number: u64) -> ! {
    let n = number as usize;
    let s = slot(n);
    timer::init();
    arch::cr0_subclass(arch::CR0_EXTERNAL_CALL, true);
    if address(n).is_some_and(|a| u32::from(a) == REFUSE.load(Ordering::SeqCst)) {
        // Told not to come up: stop as a CPU that never started would be.
        s.state.store(State::Stopped as u8, Ordering::SeqCst);
        loop {
            let _ = sigp::sigp(sigp::cpu_address(), sigp::STOP, 0);
        }
    }
    let _ = s
        .up_at
        .compare_exchange(0, arch::tod(), Ordering::SeqCst, Ordering::SeqCst);
    s.state.store(State::Idle as u8, Ordering::SeqCst);
    if let Some(boot) = address(0) {
        signal(boot);
    }
    loop {
        let job = s.job.swap(core::ptr::null_mut(), Ordering::SeqCst);
        if !job.is_null() {
            s.state.store(State::Busy as u8, Ordering::SeqCst);
            // SAFETY: the poster keeps the job alive until `done`, and
            // waits for it (or stops this CPU) before it goes.
            let j = unsafe { &*job };
            if let Some(cr6) = j.cr6 {
                let (cr0, _) = arch_smp::control_registers();
                arch_smp::set_control_registers(cr0, cr6);
            }
            // SAFETY: `call` and `data` were made for each other by `run_each`.
            unsafe { (j.call)(j.data) };
            let poster = j.poster;
            s.state.store(State::Idle as u8, Ordering::SeqCst);
            j.done.store(true, Ordering::SeqCst);
            signal(poster);
            continue;
        }
        // A job posted after the look above comes with an external call,
        // which stays pending until this wait opens for it.
        arch::enabled_wait(SHARED_IO.load(Ordering::SeqCst));
    }
}

/// A CPU that did not finish its work in time (stopped since), or could
/// not be given it.
#[derive(Clone, Debug)]
pub struct Stuck {
    pub number: usize,
    pub address: Option<u16>,
    pub why: String,
}

/// Runs `f(cpu, item)` for every `(cpu, item)` of `work` on that CPU, all
/// at once (CPU 0's own items here, after the others have theirs), and
/// returns when every one has finished. A CPU that has not finished
/// `timeout_us` after the start is stopped and named (its item is then
/// left as it was when it stopped), then started afresh.
pub fn run_each<T: Send, F: Fn(usize, &mut T) + Sync>(
    work: &mut [(usize, T)],
    f: &F,
    timeout_us: u64,
) -> Result<(), Vec<Stuck>> {
    struct Task<'a, T, F> {
        f: &'a F,
        item: *mut T,
        cpu: usize,
    }
    unsafe fn call<T, F: Fn(usize, &mut T)>(data: *const ()) {
        // SAFETY: `data` is a Task kept alive by `run_each` until done.
        let t = unsafe { &*(data as *const Task<'_, T, F>) };
        // SAFETY: each item goes to exactly one CPU.
        (t.f)(t.cpu, unsafe { &mut *t.item });
    }
    let deadline = timer::deadline_after_us(timeout_us);
    let me = sigp::cpu_address();
    let cr6 = SHARED_IO
        .load(Ordering::SeqCst)
        .then(|| arch_smp::control_registers().1);
    let mut stuck = Vec::new();
    // Fixed before any pointer into them is handed out.
    let mut tasks: Vec<Task<'_, T, F>> = work
        .iter_mut()
        .map(|(cpu, item)| Task {
            f,
            item: item as *mut T,
            cpu: *cpu,
        })
        .collect();
    let mut jobs: Vec<Job> = tasks
        .iter_mut()
        .map(|t| Job {
            call: call::<T, F>,
            data: t as *const Task<'_, T, F> as *const (),
            done: AtomicBool::new(false),
            poster: me,
            cr6,
        })
        .collect();
    let mut posted = alloc::vec![false; jobs.len()];
    for (i, t) in tasks.iter().enumerate() {
        if t.cpu == 0 {
            continue;
        }
        let ok = t.cpu < MAX_CPUS
            && state(t.cpu) == State::Idle
            && slot(t.cpu)
                .job
                .compare_exchange(
                    core::ptr::null_mut(),
                    &mut jobs[i] as *mut Job,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .is_ok();
        if !ok {
            stuck.push(Stuck {
                number: t.cpu,
                address: address(t.cpu),
                why: crate::format!("not ready for work (state {})", state(t.cpu).name()),
            });
            continue;
        }
        posted[i] = true;
        if let Some(a) = address(t.cpu) {
            signal(a);
        }
    }
    for t in tasks.iter().filter(|t| t.cpu == 0) {
        // SAFETY: the item is this task's alone.
        (t.f)(0, unsafe { &mut *t.item });
    }
    let io = cr6.is_some();
    timer::wait_until_tod(deadline, io, || {
        jobs.iter()
            .zip(&posted)
            .all(|(j, &p)| !p || j.done.load(Ordering::SeqCst))
    });
    for i in 0..jobs.len() {
        if !posted[i] || jobs[i].done.load(Ordering::SeqCst) {
            continue;
        }
        let n = tasks[i].cpu;
        let a = address(n);
        let answer = a.map(|a| sigp::sigp(a, sigp::STOP, 0));
        // Stopped (or never taken): nothing touches the item any more.
        let taken = slot(n)
            .job
            .compare_exchange(
                &mut jobs[i] as *const Job as *mut Job,
                core::ptr::null_mut(),
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_err();
        slot(n).state.store(State::Stopped as u8, Ordering::SeqCst);
        let stop = match answer {
            Some(a) if a.cc == 0 => String::from("SIGP STOP accepted"),
            Some(a) => crate::format!("SIGP STOP: {}", SigpAnswer(a)),
            None => String::from("no address"),
        };
        stuck.push(Stuck {
            number: n,
            address: a,
            why: crate::format!(
                "{} within {} ms; stopped ({})",
                if taken {
                    "work not finished"
                } else {
                    "work not taken"
                },
                timeout_us / 1000,
                stop.as_str()
            ),
        });
    }
    // Started afresh: the next work finds them idle (or names them).
    for s in &stuck {
        if state(s.number) == State::Stopped {
            let _ = revive(s.number);
        }
    }
    if stuck.is_empty() {
        Ok(())
    } else {
        Err(stuck)
    }
}

/// Lets every CPU take I/O interrupts (each in its waits) while `on`; an
/// I/O interrupt any CPU takes then wakes the others ([`wake_busy`]).
pub fn share_io(on: bool) {
    SHARED_IO.store(on, Ordering::SeqCst);
    if on {
        return;
    }
    // An idle CPU that went into its wait while I/O was shared still
    // takes I/O interrupts there (seen: the completion of the next channel
    // program, leaving the waiter asleep until its timeout): wake it, so
    // that it waits afresh without.
    for n in 1..MAX_CPUS {
        match (state(n), address(n)) {
            (State::Idle, Some(a)) => signal(a),
            (State::Absent, _) => break,
            _ => {}
        }
    }
}

/// Whether CPUs share I/O interrupts now.
pub fn io_shared() -> bool {
    SHARED_IO.load(Ordering::SeqCst)
}

/// Wakes every other CPU working now: an I/O interrupt this CPU took may
/// be for a queue another one waits on (floating interrupts go to any
/// CPU). Called by the I/O interrupt handler while I/O is shared.
pub fn wake_busy() {
    let me = this_cpu();
    for n in 0..MAX_CPUS {
        if n == me {
            continue;
        }
        match (state(n), address(n)) {
            (State::Busy, Some(a)) => signal(a),
            (State::Absent, _) if n > 0 => break,
            _ => {}
        }
    }
}

/// Starts a CPU that appeared after start-up (plugged) at `address` as the
/// next CPU number, and waits for its idle loop; the record joins `cpus`.
pub fn start_added(cpus: &mut Cpus, address: u16) -> CpuRecord {
    let number = cpus.others.len() + 1;
    let mut rec = CpuRecord {
        number,
        address,
        started: Err(String::new()),
    };
    if number >= MAX_CPUS {
        rec.started = Err(crate::format!("past the {} CPUs zvtest drives", MAX_CPUS));
        cpus.left_out.push(address);
        return rec;
    }
    let t0 = arch::tod();
    rec.started = match start(number, address) {
        Err(e) => Err(crate::format!("{}", StartFailure(e))),
        Ok(()) => {
            let wait_us = crate::host_wait::us(START_TIMEOUT_US);
            let deadline = t0 + wait_us * TOD_PER_US;
            timer::wait_until_tod(deadline, false, || {
                matches!(state(number), State::Idle | State::Stopped)
            });
            match state(number) {
                State::Idle => Ok((slot(number).up_at.load(Ordering::SeqCst) - t0) / TOD_PER_US),
                s => Err(crate::format!(
                    "not in its idle loop {} ms after SIGP RESTART (state {})",
                    wait_us / 1000,
                    s.name()
                )),
            }
        }
    };
    cpus.others.push(rec.clone());
    rec
}

/// One line per CPU that ran (with more than one): the interrupts it took
/// by class, and the external calls and emergency signals among them.
pub fn print_interrupts() {
    if address(1).is_none() {
        return;
    }
    for n in 0..MAX_CPUS {
        let Some(a) = address(n) else {
            break;
        };
        let c = arch_smp::counters(n);
        let by = |class: usize| c.by_class[class].load(Ordering::SeqCst);
        crate::out!(
            "# cpu {} (address {}, {}): interrupts restart {}, external {} (external calls {}, emergency signals {}), svc {}, program {}, machine check {}, I/O {}\n",
            n,
            a,
            state(n).name(),
            by(0),
            by(1),
            c.external_calls.load(Ordering::SeqCst),
            c.emergency_signals.load(Ordering::SeqCst),
            by(2),
            by(3),
            by(4),
            by(5)
        );
    }
}

/// How long a lent CPU may take to stop, or to be back in its idle loop,
/// unless `host-wait=` says.
const LEND_TIMEOUT_US: u64 = 5_000_000;

fn lend_wait_us() -> u64 {
    crate::host_wait::us(LEND_TIMEOUT_US)
}

/// An idle CPU lent to a check for raw SIGP orders (stop it, reset it,
/// restart it into other code). To everyone else it counts as stopped
/// (`run_each` names it not ready) until it is given back: stopped,
/// initial-CPU-reset, its own prefix set again and restarted into a
/// fresh idle loop (or, resumed by SIGP START where it stopped, handed
/// back as it is). Dropping it gives it back too; a check cut short by
/// its timeout leaves it lent (stopped) for the rest of the run.
pub struct Lent {
    number: usize,
    address: u16,
}

/// A second prefix area, kept for the run, for SET PREFIX experiments.
static SPARE_AREA: AtomicPtr<PrefixArea> = AtomicPtr::new(core::ptr::null_mut());

/// Takes idle CPU `n` out of the pool, if it is idle.
pub fn lend(n: usize) -> Option<Lent> {
    let s = SLOTS.get(n).filter(|_| n != 0)?;
    let address = address(n)?;
    s.state
        .compare_exchange(
            State::Idle as u8,
            State::Stopped as u8,
            Ordering::SeqCst,
            Ordering::SeqCst,
        )
        .ok()?;
    Some(Lent { number: n, address })
}

impl Lent {
    pub fn number(&self) -> usize {
        self.number
    }

    pub fn address(&self) -> u16 {
        self.address
    }

    /// Its own prefix area's address.
    pub fn area(&self) -> u64 {
        slot(self.number).area.load(Ordering::SeqCst) as u64
    }

    /// Its stack: (lowest address, top).
    pub fn stack(&self) -> (u64, u64) {
        let top = slot(self.number).stack_top.load(Ordering::SeqCst);
        (top - STACK_SIZE as u64, top)
    }

    /// Makes its next restart run `entry(arg)` on its own stack, as CPU
    /// number `self.number()` (its prefix area left where it is).
    pub fn on_restart(&self, entry: arch_smp::Entry, arg: u64) {
        let s = slot(self.number);
        // SAFETY: the area is this CPU's for the run (see `start`); only
        // the restart fields change, which matter only at its next restart.
        let area = unsafe { &mut *s.area.load(Ordering::SeqCst) };
        arch_smp::prepare(
            area,
            self.number,
            s.stack_top.load(Ordering::SeqCst),
            entry,
            arg,
        );
    }

    /// Prepares the spare prefix area (made once, kept for the run) so
    /// that a restart with it as prefix runs `entry(arg)`, and returns its
    /// address: for SIGP SET PREFIX to it.
    pub fn spare_area(&self, entry: arch_smp::Entry, arg: u64) -> u64 {
        let mut p = SPARE_AREA.load(Ordering::SeqCst);
        if p.is_null() {
            p = Box::into_raw(Box::new(PrefixArea([0; 8192])));
            SPARE_AREA.store(p, Ordering::SeqCst);
        }
        // SAFETY: the spare area is leaked, and only a lent CPU (one at a
        // time, CPU 0 lends) ever has it as prefix: this one is lent now.
        let area = unsafe { &mut *p };
        arch_smp::prepare(
            area,
            self.number,
            slot(self.number).stack_top.load(Ordering::SeqCst),
            entry,
            arg,
        );
        p as u64
    }

    /// Gives the CPU back as it is: the caller saw it resume its idle
    /// loop where it was stopped (SIGP START of a CPU stopped in its
    /// enabled wait). Work posted to it then shows whether it did.
    pub fn resumed(self) {
        slot(self.number)
            .state
            .store(State::Idle as u8, Ordering::SeqCst);
        core::mem::forget(self);
    }

    /// Gives the CPU back: stopped, reset, its own prefix set again,
    /// restarted into a fresh idle loop, and seen there.
    pub fn give_back(self) -> Result<(), String> {
        let r = give_back(self.number, self.address);
        core::mem::forget(self);
        r
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let _ = give_back(self.number, self.address);
    }
}

/// SIGP `order` to `addr`, again while it answers busy (cc 2: another
/// CPU's SIGP, or a stop still under way), up to `timeout_us`.
pub fn sigp_settled(addr: u16, order: u8, timeout_us: u64) -> Answer {
    let end = timer::deadline_after_us(timeout_us);
    loop {
        let a = sigp::sigp(addr, order, 0);
        if a.cc != 2 || arch::tod() >= end {
            return a;
        }
        core::hint::spin_loop();
    }
}

/// Waits until SIGP SENSE says the CPU at `addr` is stopped.
pub fn wait_stopped(addr: u16, timeout_us: u64) -> Result<(), Answer> {
    let end = timer::deadline_after_us(timeout_us);
    loop {
        let a = sigp_settled(addr, sigp::SENSE, timeout_us);
        if a.cc == 1 && a.status & sigp::STATUS_STOPPED != 0 {
            return Ok(());
        }
        if arch::tod() >= end {
            return Err(a);
        }
        core::hint::spin_loop();
    }
}

fn give_back(n: usize, addr: u16) -> Result<(), String> {
    let s = slot(n);
    let stop = sigp_settled(addr, sigp::STOP, lend_wait_us());
    if stop.cc != 0 {
        return Err(crate::format!("SIGP STOP: {}", SigpAnswer(stop)));
    }
    if let Err(a) = wait_stopped(addr, lend_wait_us()) {
        return Err(crate::format!(
            "not stopped {} ms after SIGP STOP (SENSE: {})",
            lend_wait_us() / 1000,
            SigpAnswer(a)
        ));
    }
    // A clean start, whatever the check did to it: QEMU's TCG leaves a
    // CPU that was stopped in a wait halted after SIGP RESTART (its old
    // PSW's wait bit keeps s390_cpu_set_state from unhalting it), and
    // an initial CPU reset clears that PSW (and the prefix, set again).
    let reset = sigp_settled(addr, sigp::INITIAL_CPU_RESET, lend_wait_us());
    if reset.cc != 0 {
        return Err(crate::format!(
            "SIGP INITIAL CPU RESET: {}",
            SigpAnswer(reset)
        ));
    }
    s.state.store(State::Starting as u8, Ordering::SeqCst);
    s.job.store(core::ptr::null_mut(), Ordering::SeqCst);
    let area = s.area.load(Ordering::SeqCst);
    // SAFETY: the area and stack are that CPU's (see `start`); it is
    // stopped, whatever ran on the stack is abandoned; the reset took
    // its prefix, so it is set again.
    let r = unsafe {
        arch_smp::start(
            addr,
            n,
            &mut *area,
            s.stack_top.load(Ordering::SeqCst),
            secondary_main,
            n as u64,
        )
    };
    if let Err(e) = r {
        s.state.store(State::Stopped as u8, Ordering::SeqCst);
        return Err(crate::format!("{}", StartFailure(e)));
    }
    if !timer::wait_until(lend_wait_us(), false, || state(n) == State::Idle) {
        return Err(crate::format!(
            "not back in its idle loop {} ms after SIGP RESTART (state {})",
            lend_wait_us() / 1000,
            state(n).name()
        ));
    }
    Ok(())
}

/// Gives back every CPU left stopped by a check that ended without doing
/// so (cut short by its timeout while it had a CPU lent), so the next
/// check finds it idle; a CPU told not to start stays as it is. Returns
/// the CPUs that could not be given back, with why.
pub fn reclaim() -> Vec<(usize, String)> {
    let mut failed = Vec::new();
    for n in 1..MAX_CPUS {
        let Some(a) = address(n) else {
            break;
        };
        if state(n) != State::Stopped || u32::from(a) == REFUSE.load(Ordering::SeqCst) {
            continue;
        }
        if let Err(e) = give_back(n, a) {
            failed.push((n, e));
        }
    }
    failed
}
