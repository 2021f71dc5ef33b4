//! SIGNAL PROCESSOR, order by order: each answer's condition code and
//! status word, to a CPU that operates and to one that is stopped where
//! the two differ, and what the order did to the target.
//!
//! Expectations are the architecture's; where QEMU's source decides a
//! detail the architecture leaves open (which status comes first, what
//! "running" means under TCG), the comment names target/s390x/sigp.c.
//! Every order goes to another CPU (or this one where the order allows
//! it). A CPU a check stops, resets or restarts is lent by smp.rs and
//! given back in a fresh idle loop before the check returns.
//!
//! Every answer is also held to what SIGP may change in the sender: R1's
//! high word survives a stored status, and all of R1 the other ccs.

use crate::arch::sigp::{self, Answer};
use crate::arch::smp as arch_smp;
use crate::arch::{self, timer};
use crate::check::Outcome;
use crate::fmt::{Hex, HexW};
use crate::machine::Machine;
use crate::out;
use crate::smp::{self, Lent, SigpAnswer, State};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use zvtest_contract::sigp::{order_name, plausible_psw_mask, Claim, SaveArea, SAVE_AREA_LEN};

/// How long a target may take to show what an order did, unless
/// `host-wait=` says (the host carries the order out).
const DEFAULT_WAIT_US: u64 = 5_000_000;

fn wait_us() -> u64 {
    crate::host_wait::us(DEFAULT_WAIT_US)
}
/// R1 before every order: cc 1 must keep its high word, cc 0/2/3 all of it.
const R1_BEFORE: u64 = 0x5a5a_0f0f_c3c3_3c3c;

const STATUS_NONE: u32 = 0;

fn answer(cc: u32, status: u32) -> Answer {
    Answer { cc, status }
}

/// An order's name for the report.
fn name(order: u8) -> String {
    match order_name(order) {
        Some(n) => String::from(n),
        None => crate::format!("order {}", Hex(u64::from(order))),
    }
}

/// Sends `order` (the whole second-operand address `order_field`; the
/// order is its low byte) with `param` to `r3` (its low halfword is the
/// CPU address) and holds the answer to `want` (or to `sigp-expect=`'s
/// claim for that order), and R1 to what SIGP may change of it. `what`
/// says the target's state. A busy answer (cc 2: another CPU's SIGP at
/// the same moment, or a stop still under way; the order was not
/// performed) is asked again, up to [`wait_us`]. Returns the answer.
fn order_full(
    m: &Machine,
    r3: u64,
    order_field: u64,
    param: u64,
    what: &str,
    want: Answer,
) -> Result<Answer, Outcome> {
    let order = order_field as u8;
    let end = timer::deadline_after_us(wait_us());
    let (cc, r1) = loop {
        // SAFETY: the orders that store (set prefix, store status at
        // address) get a `param` the caller owns for that purpose (the
        // spare prefix area, a status buffer) or one past storage.
        let (cc, r1) = unsafe { sigp::sigp_raw(R1_BEFORE, r3, order_field, param) };
        if cc != 2 || arch::tod() >= end {
            break (cc, r1);
        }
        core::hint::spin_loop();
    };
    let got = answer(cc, if cc == 1 { r1 as u32 } else { STATUS_NONE });
    let want = match m.cfg.sigp_expect {
        Some(Claim {
            order: o,
            cc,
            status,
        }) if o == order => answer(u32::from(cc), status.unwrap_or(STATUS_NONE)),
        _ => want,
    };
    let target = r3 as u16;
    let whom = crate::format!(
        "SIGP {} to address {} ({})",
        name(order).as_str(),
        target,
        what
    );
    if got != want {
        return Err(Outcome::mismatch(
            whom.as_str(),
            SigpAnswer(want),
            SigpAnswer(got),
        ));
    }
    let kept = if cc == 1 {
        r1 >> 32 == R1_BEFORE >> 32
    } else {
        r1 == R1_BEFORE
    };
    if !kept {
        return Err(Outcome::mismatch(
            crate::format!("R1 after {} (cc {})", whom.as_str(), cc).as_str(),
            Hex(R1_BEFORE),
            Hex(r1),
        ));
    }
    Ok(got)
}

/// `order` with R1 an odd register (r3): the status must land there, its
/// high word kept, the even register before it untouched; the parameter
/// is R1 itself (`param`), the register after it holds `decoy`, which a
/// host reading the wrong one would take.
fn odd_r1(
    m: &Machine,
    addr: u16,
    code: u8,
    param: u64,
    what: &str,
    want: Answer,
) -> Result<(), Outcome> {
    odd_r1_decoy(m, addr, code, param, 0x7fff_e000, what, want)
}

fn odd_r1_decoy(
    m: &Machine,
    addr: u16,
    code: u8,
    param: u64,
    decoy: u64,
    what: &str,
    want: Answer,
) -> Result<(), Outcome> {
    const EVEN: u64 = 0x0123_4567_89ab_cdef;
    let whom = crate::format!(
        "SIGP {} to address {} ({}; R1 odd)",
        name(code).as_str(),
        addr,
        what
    );
    let end = timer::deadline_after_us(wait_us());
    let (cc, odd, even) = loop {
        // SAFETY: as for order_full: `param` is the caller's to give.
        let r = unsafe { sigp::sigp_raw_odd(param, u64::from(addr), u64::from(code), EVEN, decoy) };
        if r.0 != 2 || arch::tod() >= end {
            break r;
        }
        core::hint::spin_loop();
    };
    let want = match m.cfg.sigp_expect {
        Some(Claim {
            order: o,
            cc,
            status,
        }) if o == code => answer(u32::from(cc), status.unwrap_or(STATUS_NONE)),
        _ => want,
    };
    let got = answer(cc, if cc == 1 { odd as u32 } else { STATUS_NONE });
    if got != want {
        return Err(Outcome::mismatch(
            whom.as_str(),
            SigpAnswer(want),
            SigpAnswer(got),
        ));
    }
    let kept = if cc == 1 {
        odd >> 32 == param >> 32
    } else {
        odd == param
    };
    if !kept || even != EVEN {
        return Err(Outcome::mismatch(
            crate::format!("R1 (r3) and r2 after {} (cc {})", whom.as_str(), cc).as_str(),
            crate::format!("{} and {}", Hex(param), Hex(EVEN)).as_str(),
            crate::format!("{} and {}", Hex(odd), Hex(even)).as_str(),
        ));
    }
    Ok(())
}

/// [`order_full`] with a plain address and order code.
fn order(
    m: &Machine,
    addr: u16,
    code: u8,
    param: u64,
    what: &str,
    want: Answer,
) -> Result<Answer, Outcome> {
    order_full(m, u64::from(addr), u64::from(code), param, what, want)
}

/// The CPUs other than this one (number, address), in address order.
fn others(m: &Machine) -> Vec<(usize, u16)> {
    m.smp.others.iter().map(|c| (c.number, c.address)).collect()
}

/// A check that needs another CPU skips with one.
fn need_another(m: &Machine) -> Result<(), Outcome> {
    if m.smp.others.is_empty() {
        return Err(Outcome::skip(
            "one CPU: SIGP has no other CPU to signal (boot with -smp 2 or more)",
        ));
    }
    Ok(())
}

/// Every other CPU in its idle loop (operating, in an enabled wait), or a
/// failure naming the first that is not.
fn all_idle(m: &Machine) -> Result<Vec<(usize, u16)>, Outcome> {
    need_another(m)?;
    let all = others(m);
    for &(n, a) in &all {
        if smp::state(n) != State::Idle {
            return Err(Outcome::mismatch(
                crate::format!("CPU {} (address {}) before the SIGP orders", n, a).as_str(),
                "in its idle loop",
                crate::format!("state {}", smp::state(n).name()).as_str(),
            ));
        }
    }
    Ok(all)
}

/// Lends the last CPU (the one `inject=cpu` keeps from starting, so that
/// proof names it here too), its service-signal subclass closed first:
/// a CPU in its idle loop's wait then stays in it (the console's
/// service signals, floating, would otherwise wake any CPU now and then)
/// until an order reaches it. Giving it back starts it with CR0 afresh;
/// one resumed instead gets the subclass back from [`reopen`].
fn lend_last(m: &Machine) -> Result<Lent, Outcome> {
    let all = all_idle(m)?;
    let &(n, a) = all.last().expect("need_another");
    subclass(&[(n, a)], arch::CR0_SERVICE_SIGNAL, false, "service-signal")?;
    let l = smp::lend(n).ok_or_else(|| {
        Outcome::mismatch(
            crate::format!("CPU {} (address {}) lent for SIGP orders", n, a).as_str(),
            "idle",
            crate::format!("state {}", smp::state(n).name()).as_str(),
        )
    })?;
    // The work just done may still be finishing (its answer to us on the
    // way): wait until it is back in its wait, which SENSE RUNNING
    // (facility 9) tells under QEMU, where a CPU in a wait is not
    // running. Elsewhere that answer may never come: the wait is short.
    let end = timer::deadline_after_us(200_000);
    while arch::tod() < end
        && smp::sigp_settled(a, sigp::SENSE_RUNNING_STATUS, wait_us())
            != answer(1, sigp::STATUS_NOT_RUNNING)
    {
        core::hint::spin_loop();
    }
    Ok(l)
}

/// Gives back a CPU that was lent and has resumed its idle loop (SIGP
/// START), with its service-signal subclass open again.
fn reopen(l: Lent) -> Result<(), Outcome> {
    let (n, a) = (l.number(), l.address());
    l.resumed();
    reopen_service(n, a)
}

/// Opens the service-signal subclass of a resumed CPU again (work run
/// on it: it comes with an external call).
fn reopen_service(n: usize, a: u16) -> Result<(), Outcome> {
    subclass(&[(n, a)], arch::CR0_SERVICE_SIGNAL, true, "service-signal")
}

/// Gives a lent CPU back, failing the check if it does not come back.
fn give_back(l: Lent) -> Result<(), Outcome> {
    let (n, a) = (l.number(), l.address());
    l.give_back().map_err(|e| {
        Outcome::mismatch(
            crate::format!("CPU {} (address {}) given back to its idle loop", n, a).as_str(),
            "idle again",
            e.as_str(),
        )
    })
}

/// Runs `f` with `l` lent, giving it back whatever `f` found; `f`'s
/// failure comes first.
fn with_lent(m: &Machine, f: impl FnOnce(&Lent) -> Result<(), Outcome>) -> Result<(), Outcome> {
    let l = lend_last(m)?;
    let r = f(&l);
    let back = give_back(l);
    r.and(back)
}

/// Stops `l` (cc 0) and waits until SENSE says stopped.
fn stop(m: &Machine, l: &Lent, what: &str) -> Result<(), Outcome> {
    order(m, l.address(), sigp::STOP, 0, what, answer(0, 0))?;
    stopped(l)
}

fn stopped(l: &Lent) -> Result<(), Outcome> {
    smp::wait_stopped(l.address(), wait_us()).map_err(|a| {
        Outcome::mismatch(
            crate::format!("SIGP SENSE to address {} after SIGP STOP", l.address()).as_str(),
            "cc 1, status 00000040 (stopped)",
            SigpAnswer(a),
        )
    })
}

/// What the probe (code a lent CPU is restarted into) saw.
struct Probe {
    runs: AtomicU32,
    address: AtomicU32,
    prefix: AtomicU32,
    release: AtomicBool,
}

static PROBE: Probe = Probe {
    runs: AtomicU32::new(0),
    address: AtomicU32::new(0),
    prefix: AtomicU32::new(0),
    release: AtomicBool::new(false),
};

/// A lent CPU's restart: notes its address and prefix, runs (operating,
/// not waiting) until released or [`wait_us`] twice over, then stops itself.
extern "C" fn probe(_: u64) -> ! {
    PROBE
        .address
        .store(u32::from(sigp::cpu_address()), Ordering::SeqCst);
    PROBE.prefix.store(sigp::prefix(), Ordering::SeqCst);
    PROBE.runs.fetch_add(1, Ordering::SeqCst);
    let end = timer::deadline_after_us(2 * wait_us());
    let mut spins = 0u32;
    while !PROBE.release.load(Ordering::SeqCst) {
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(64) && arch::tod() >= end {
            break;
        }
        core::hint::spin_loop();
    }
    loop {
        let _ = sigp::sigp(sigp::cpu_address(), sigp::STOP, 0);
    }
}

/// Restarts `l` into the probe (or, with `prefix` given, expects the
/// probe to report that prefix) and waits until it runs.
fn run_probe(m: &Machine, l: &Lent, what: &str, prefix: u64) -> Result<(), Outcome> {
    let before = PROBE.runs.load(Ordering::SeqCst);
    PROBE.release.store(false, Ordering::SeqCst);
    order(m, l.address(), sigp::RESTART, 0, what, answer(0, 0))?;
    if !timer::poll_until(wait_us(), || PROBE.runs.load(Ordering::SeqCst) != before) {
        return Err(Outcome::mismatch(
            crate::format!(
                "CPU at address {} after SIGP RESTART ({})",
                l.address(),
                what
            )
            .as_str(),
            "its restart new PSW's code running",
            crate::format!("nothing ran within {} ms", wait_us() / 1000).as_str(),
        ));
    }
    let (a, p) = (
        PROBE.address.load(Ordering::SeqCst),
        PROBE.prefix.load(Ordering::SeqCst),
    );
    if a != u32::from(l.address()) || u64::from(p) != prefix {
        return Err(Outcome::mismatch(
            crate::format!(
                "the restarted CPU's STAP and STPX (address {}, {})",
                l.address(),
                what
            )
            .as_str(),
            crate::format!("address {}, prefix {}", l.address(), Hex(prefix)).as_str(),
            crate::format!("address {}, prefix {}", a, Hex(u64::from(p))).as_str(),
        ));
    }
    Ok(())
}

fn run(r: Result<(), Outcome>) -> Outcome {
    match r {
        Ok(()) => Outcome::Pass,
        Err(o) => o,
    }
}

/// SENSE: operating (idle) CPUs cc 0; a stopped one cc 1, 0x40; this
/// CPU cc 0; the order is the second operand's low byte and the CPU
/// address R3's low halfword.
pub fn sense(m: &mut Machine) -> Outcome {
    run(sense_(m))
}

fn sense_(m: &Machine) -> Result<(), Outcome> {
    let all = all_idle(m)?;
    for &(_, a) in &all {
        order(m, a, sigp::SENSE, 0, "operating", answer(0, 0))?;
    }
    order(
        m,
        sigp::cpu_address(),
        sigp::SENSE,
        0,
        "this CPU",
        answer(0, 0),
    )?;
    with_lent(m, |l| {
        stop(m, l, "operating")?;
        let a = l.address();
        let stopped = answer(1, sigp::STATUS_STOPPED);
        order(m, a, sigp::SENSE, 0, "stopped", stopped)?;
        // Bits above the order code and the CPU address are ignored.
        order_full(
            m,
            0xffff_ffff_ffff_0000 | u64::from(a),
            0xabc0_0000 | u64::from(sigp::SENSE),
            0,
            "stopped; R3 bits 0-47 and order bits 0-55 set",
            stopped,
        )?;
        odd_r1(m, a, sigp::SENSE, R1_BEFORE, "stopped", stopped)?;
        Ok(())
    })?;
    let &(_, a) = all.last().expect("need_another");
    order(m, a, sigp::SENSE, 0, "given back", answer(0, 0))?;
    Ok(())
}

/// Waits until CPU `n`'s `count` (external calls or emergency signals)
/// reaches `want`, then holds it and the sender to what was sent.
fn delivered(
    n: usize,
    addr: u16,
    what: &str,
    count: impl Fn() -> u32,
    want: u32,
    sender: Option<u16>,
) -> Result<(), Outcome> {
    let c = arch_smp::counters(n);
    timer::poll_until(wait_us(), || count() >= want);
    let got = count();
    if got != want {
        return Err(Outcome::mismatch(
            crate::format!("{} taken by CPU {} (address {})", what, n, addr).as_str(),
            want,
            got,
        ));
    }
    let from = c.last_sender.load(Ordering::SeqCst);
    let Some(sender) = sender else {
        return Ok(());
    };
    if from != u32::from(sender) {
        return Err(Outcome::mismatch(
            crate::format!(
                "{} at CPU {} (address {}): the sender's address at 0x84",
                what,
                n,
                addr
            )
            .as_str(),
            sender,
            from,
        ));
    }
    Ok(())
}

/// EXTERNAL CALL: cc 0 to each operating CPU, which takes external
/// interrupt 0x1202 with this CPU's address at 0x84; to a stopped CPU the
/// first is accepted and stays pending (SENSE: 0x40 | 0x80), a second is
/// refused (cc 1, 0x80), and the one pending arrives once it runs again.
pub fn external_call(m: &mut Machine) -> Outcome {
    run(external_call_(m))
}

fn external_call_(m: &Machine) -> Result<(), Outcome> {
    let all = all_idle(m)?;
    let me = sigp::cpu_address();
    for &(n, a) in &all {
        let c = arch_smp::counters(n);
        let before = c.external_calls.load(Ordering::SeqCst);
        order(m, a, sigp::EXTERNAL_CALL, 0, "operating", answer(0, 0))?;
        delivered(
            n,
            a,
            "external call 0x1202",
            || c.external_calls.load(Ordering::SeqCst),
            before + 1,
            Some(me),
        )?;
    }
    let l = lend_last(m)?;
    let (n, a) = (l.number(), l.address());
    let c = arch_smp::counters(n);
    let r = (|| {
        stop(m, &l, "operating")?;
        let before = c.external_calls.load(Ordering::SeqCst);
        order(m, a, sigp::EXTERNAL_CALL, 0, "stopped", answer(0, 0))?;
        let pending = sigp::STATUS_STOPPED | sigp::STATUS_EXTERNAL_CALL_PENDING;
        order(
            m,
            a,
            sigp::SENSE,
            0,
            "stopped, external call pending",
            answer(1, pending),
        )?;
        order(
            m,
            a,
            sigp::EXTERNAL_CALL,
            0,
            "stopped, external call pending",
            answer(1, sigp::STATUS_EXTERNAL_CALL_PENDING),
        )?;
        let now = c.external_calls.load(Ordering::SeqCst);
        if now != before {
            return Err(Outcome::mismatch(
                crate::format!("external calls taken by stopped CPU {} (address {})", n, a)
                    .as_str(),
                before,
                now,
            ));
        }
        Ok(before)
    })();
    let before = match r {
        Ok(b) => b,
        Err(o) => {
            let _ = give_back(l);
            return Err(o);
        }
    };
    // Started again, it goes on in its idle loop's wait, open for
    // external calls: the pending one (only one) arrives.
    if let Err(o) = order(
        m,
        a,
        sigp::START,
        0,
        "stopped, external call pending",
        answer(0, 0),
    ) {
        let _ = give_back(l);
        return Err(o);
    }
    l.resumed();
    delivered(
        n,
        a,
        "external call 0x1202 pending while stopped, after SIGP START",
        || c.external_calls.load(Ordering::SeqCst),
        before + 1,
        Some(me),
    )?;
    reopen_service(n, a)
}

fn on_emergency(
    _: &crate::arch::context::ExternalInterrupt,
    _: &mut crate::arch::context::InterruptContext,
) {
    // arch counts it with its sender; that is all the check needs.
}

/// Opens (or closes) the emergency-signal subclass on `cpus`.
fn emergency_subclass(cpus: &[(usize, u16)], on: bool) -> Result<(), Outcome> {
    subclass(cpus, arch::CR0_EMERGENCY_SIGNAL, on, "emergency-signal")
}

/// Opens (or closes) CR0 subclass `bit` on `cpus`.
fn subclass(cpus: &[(usize, u16)], bit: u32, on: bool, what: &str) -> Result<(), Outcome> {
    let mut work: Vec<(usize, ())> = cpus.iter().map(|&(n, _)| (n, ())).collect();
    smp::run_each(
        &mut work,
        &|_, _: &mut ()| arch::cr0_subclass(bit, on),
        wait_us(),
    )
    .map_err(|stuck| {
        let s = &stuck[0];
        Outcome::mismatch(
            crate::format!(
                "CPU {} (address {}) setting CR0's {} subclass",
                s.number,
                s.address.unwrap_or(0xffff),
                what
            )
            .as_str(),
            "done",
            s.why.as_str(),
        )
    })
}

/// EMERGENCY SIGNAL (and CONDITIONAL EMERGENCY SIGNAL to an operating
/// CPU, which always generates one): cc 0 to each operating CPU, which
/// takes external interrupt 0x1201 with this CPU's address at 0x84.
fn signals(m: &Machine, code: u8) -> Result<(), Outcome> {
    let all = all_idle(m)?;
    let me = sigp::cpu_address();
    let _owner = crate::arch::handlers::on_external(arch_smp::EXT_EMERGENCY_SIGNAL, on_emergency);
    emergency_subclass(&all, true)?;
    let r = (|| {
        for &(n, a) in &all {
            let c = arch_smp::counters(n);
            let before = c.emergency_signals.load(Ordering::SeqCst);
            order(m, a, code, 0, "operating", answer(0, 0))?;
            delivered(
                n,
                a,
                "emergency signal 0x1201",
                || c.emergency_signals.load(Ordering::SeqCst),
                before + 1,
                Some(me),
            )?;
        }
        Ok(())
    })();
    let closed = emergency_subclass(&all, false);
    r.and(closed)
}

pub fn emergency_signal(m: &mut Machine) -> Outcome {
    run(signals(m, sigp::EMERGENCY_SIGNAL).and_then(|()| emergency_senders(m)))
}

/// Signals to a stopped CPU are kept, one a sender: this CPU signals it
/// twice and (with three CPUs or more) another CPU once; once it runs
/// with the subclass open it takes one from each, with each sender's
/// address.
fn emergency_senders(m: &Machine) -> Result<(), Outcome> {
    let all = all_idle(m)?;
    let me = sigp::cpu_address();
    let helper = all.first().copied().filter(|_| all.len() >= 2);
    if helper.is_none() {
        out!("# sigp: emergency signals from two senders need three CPUs; one sender tried\n");
    }
    let _owner = crate::arch::handlers::on_external(arch_smp::EXT_EMERGENCY_SIGNAL, on_emergency);
    let l = lend_last(m)?;
    let (n, a) = (l.number(), l.address());
    let c = arch_smp::counters(n);
    let before = c.emergency_signals.load(Ordering::SeqCst);
    c.emergency_senders.store(0, Ordering::SeqCst);
    let r = (|| {
        stop(m, &l, "operating")?;
        order(m, a, sigp::EMERGENCY_SIGNAL, 0, "stopped", answer(0, 0))?;
        order(
            m,
            a,
            sigp::EMERGENCY_SIGNAL,
            0,
            "stopped, one of ours pending",
            answer(0, 0),
        )?;
        let Some((helper, helper_addr)) = helper else {
            return Ok(());
        };
        let mut work = [(helper, 99u32)];
        let _ = smp::run_each(
            &mut work,
            &|_, cc: &mut u32| *cc = arch::sigp_emergency_signal(a),
            wait_us(),
        );
        if work[0].1 != 0 {
            return Err(Outcome::mismatch(
                crate::format!(
                    "SIGP emergency-signal from CPU {} (address {}) to address {} (stopped)",
                    helper,
                    helper_addr,
                    a
                )
                .as_str(),
                "cc 0",
                crate::format!("cc {}", work[0].1).as_str(),
            ));
        }
        Ok(())
    })();
    if let Err(o) = r.and_then(|()| {
        order(
            m,
            a,
            sigp::START,
            0,
            "stopped, signals pending",
            answer(0, 0),
        )
    }) {
        let _ = give_back(l);
        return Err(o);
    }
    // It goes on in its idle loop, which takes work: the subclass opened.
    reopen(l)?;
    emergency_subclass(&[(n, a)], true)?;
    let (want, senders) = match helper {
        Some((_, h)) => (before + 2, (1u64 << me) | (1u64 << h)),
        None => (before + 1, 1u64 << me),
    };
    let what = "emergency signals 0x1201 pending while stopped (one a sender)";
    let r = delivered(
        n,
        a,
        what,
        || c.emergency_signals.load(Ordering::SeqCst),
        want,
        // Which comes first the architecture leaves open.
        None,
    )
    .and_then(|()| {
        // Work run there after them: one more kept would have come
        // before it (an emergency signal goes before the external call
        // that brings the work).
        let mut work = [(n, ())];
        let _ = smp::run_each(&mut work, &|_, _: &mut ()| {}, wait_us());
        let got = c.emergency_signals.load(Ordering::SeqCst);
        if got != want {
            return Err(Outcome::mismatch(
                crate::format!("{} taken by CPU {} (address {})", what, n, a).as_str(),
                want,
                got,
            ));
        }
        let want = senders;
        let got = c.emergency_senders.load(Ordering::SeqCst);
        if got == want {
            Ok(())
        } else {
            Err(Outcome::mismatch(
                crate::format!(
                    "the senders CPU {} (address {}) saw, one bit an address",
                    n,
                    a
                )
                .as_str(),
                Hex(want),
                Hex(got),
            ))
        }
    });
    let closed = emergency_subclass(&[(n, a)], false);
    r.and(closed)
}

/// CONDITIONAL EMERGENCY SIGNAL: to operating CPUs generated (cc 0,
/// 0x1201 with our address); to a CPU stopped with a PSW enabled for I/O
/// and external interrupts at address 0 not generated: cc 1, 0x200
/// (incorrect state). QEMU answers that case cc 0 yet writes 0x200 into
/// R1 (sigp_cond_emergency sets the status, then cc 0): on a QEMU TCG
/// host that answer is reported as its bug, not compared.
pub fn conditional_emergency(m: &mut Machine) -> Outcome {
    match signals(m, sigp::CONDITIONAL_EMERGENCY_SIGNAL).and_then(|()| not_generated(m)) {
        Ok(None) => Outcome::Pass,
        Ok(Some(note)) => Outcome::PassNote(note),
        Err(o) => o,
    }
}

static PARKING: AtomicBool = AtomicBool::new(false);

extern "C" fn park(_: u64) -> ! {
    PARKING.store(true, Ordering::SeqCst);
    arch_smp::park_enabled_at_zero()
}

fn not_generated(m: &Machine) -> Result<Option<String>, Outcome> {
    let mut note = None;
    with_lent(m, |l| {
        let a = l.address();
        PARKING.store(false, Ordering::SeqCst);
        l.on_restart(park, 0);
        order(m, a, sigp::RESTART, 0, "operating, in a wait", answer(0, 0))?;
        // Parked once it said so and then halted (SENSE RUNNING: not
        // running; QEMU's meaning, see sense_running).
        let parked = timer::poll_until(wait_us(), || {
            PARKING.load(Ordering::SeqCst)
                && smp::sigp_settled(a, sigp::SENSE_RUNNING_STATUS, wait_us())
                    == answer(1, sigp::STATUS_NOT_RUNNING)
        });
        if !parked {
            return Err(Outcome::mismatch(
                crate::format!("CPU at address {} parked at PSW address 0", a).as_str(),
                "in its wait",
                "not there within the timeout",
            ));
        }
        stop(m, l, "operating, in a wait at address 0")?;
        let what = "stopped, PSW enabled for I/O and external at address 0";
        let want = answer(1, sigp::STATUS_INCORRECT_STATE);
        if m.cfg.sigp_expect.is_none() && m.host.kind == crate::host::HostKind::QemuTcg {
            // SAFETY: the order stores nothing.
            let (cc, r1) = unsafe {
                sigp::sigp_raw(
                    R1_BEFORE,
                    u64::from(a),
                    u64::from(sigp::CONDITIONAL_EMERGENCY_SIGNAL),
                    0,
                )
            };
            if cc == 0 && r1 == (R1_BEFORE & !0xffff_ffff) | u64::from(want.status) {
                note = Some(crate::format!(
                    "QEMU bug: to address {} ({}) it answers cc 0 with status {} in R1, \
                     where cc 1 is due; not compared",
                    a,
                    what,
                    HexW(u64::from(want.status), 8)
                ));
                return Ok(());
            }
        }
        order(m, a, sigp::CONDITIONAL_EMERGENCY_SIGNAL, 0, what, want)?;
        Ok(())
    })?;
    Ok(note)
}

/// START: a stopped CPU operates again where it stopped (its idle loop's
/// enabled wait: it then runs work), cc 0; to an operating CPU, cc 0 and
/// nothing changes.
pub fn start(m: &mut Machine) -> Outcome {
    run(start_(m))
}

fn start_(m: &Machine) -> Result<(), Outcome> {
    let l = lend_last(m)?;
    let (n, a) = (l.number(), l.address());
    let r = (|| {
        stop(m, &l, "operating")?;
        order(m, a, sigp::START, 0, "stopped", answer(0, 0))?;
        order(m, a, sigp::SENSE, 0, "started", answer(0, 0))?;
        order(m, a, sigp::START, 0, "operating", answer(0, 0))?;
        order(m, a, sigp::SENSE, 0, "started twice", answer(0, 0))
    })();
    if let Err(o) = r {
        let _ = give_back(l);
        return Err(o);
    }
    l.resumed();
    let mut work = [(n, false)];
    let r = smp::run_each(&mut work, &|_, ran: &mut bool| *ran = true, wait_us());
    match r {
        Ok(()) if work[0].1 => reopen_service(n, a),
        _ => Err(Outcome::mismatch(
            crate::format!(
                "CPU {} (address {}) after SIGP STOP and START: work posted to its idle loop",
                n,
                a
            )
            .as_str(),
            "run (it goes on where it stopped)",
            "not run",
        )),
    }
}

/// STOP: an operating CPU in a wait and one running code both end up
/// stopped (cc 0; SENSE cc 1, 0x40), a stopped one stays so (cc 0).
/// SENSE right after stopping a running CPU may answer busy (cc 2) while
/// the stop is under way; how often is reported.
pub fn stop_order(m: &mut Machine) -> Outcome {
    run(with_lent(m, |l| {
        let a = l.address();
        stop(m, l, "operating, in a wait")?;
        let stopped = answer(1, sigp::STATUS_STOPPED);
        order(m, a, sigp::SENSE, 0, "stopped", stopped)?;
        order(m, a, sigp::STOP, 0, "stopped", answer(0, 0))?;
        order(m, a, sigp::SENSE, 0, "stopped twice", stopped)?;
        reprobe(m, l, "stopped")?;
        order(m, a, sigp::STOP, 0, "operating, running", answer(0, 0))?;
        // SAFETY: SENSE stores nothing.
        let first = unsafe { sigp::sigp_raw(0, u64::from(a), u64::from(sigp::SENSE), 0) };
        stopped_l(l)?;
        out!(
            "# sigp: SENSE right after STOP of a running CPU: cc {}{}\n",
            first.0,
            if first.0 == 2 { " (busy)" } else { "" }
        );
        order(m, a, sigp::SENSE, 0, "stopped while running", stopped)?;
        Ok(())
    }))
}

fn stopped_l(l: &Lent) -> Result<(), Outcome> {
    stopped(l)
}

/// Starts stopped `l` into the probe the way a first start does:
/// INITIAL CPU RESET (which clears its PSW: a CPU stopped in a wait is
/// not simply restarted, see [`restart_in_wait`]), SET PREFIX to its own
/// area, RESTART.
fn reprobe(m: &Machine, l: &Lent, what: &str) -> Result<(), Outcome> {
    let a = l.address();
    order(m, a, sigp::INITIAL_CPU_RESET, 0, what, answer(0, 0))?;
    order(
        m,
        a,
        sigp::SET_PREFIX,
        l.area(),
        "stopped, after initial CPU reset",
        answer(0, 0),
    )?;
    l.on_restart(probe, 0);
    run_probe(m, l, "stopped, after initial CPU reset", l.area())
}

/// How long a restarted CPU may take before it counts as left halted.
const RESTART_US: u64 = 500_000;

/// RESTART of a CPU stopped in a wait: like any stopped CPU it operates
/// and runs its restart new PSW's code. QEMU's TCG leaves it halted
/// instead (s390_cpu_set_state, target/s390x/cpu-system.c, does not
/// unhalt a CPU whose PSW has the wait bit, and sigp_restart loads the
/// restart PSW only after): it runs once something wakes it, such as a
/// second RESTART to it, now operating. On a QEMU TCG host the check
/// SKIPs naming that, after seeing it; on others it fails.
pub fn restart_in_wait(m: &mut Machine) -> Outcome {
    run(with_lent(m, |l| {
        let a = l.address();
        stop(m, l, "operating, in a wait")?;
        l.on_restart(probe, 0);
        PROBE.release.store(false, Ordering::SeqCst);
        let before = PROBE.runs.load(Ordering::SeqCst);
        order(m, a, sigp::RESTART, 0, "stopped in a wait", answer(0, 0))?;
        if timer::poll_until(RESTART_US, || PROBE.runs.load(Ordering::SeqCst) != before) {
            return Ok(());
        }
        // Left halted: operating (SENSE cc 0) but running nothing.
        order(m, a, sigp::SENSE, 0, "restarted, nothing run", answer(0, 0))?;
        order(m, a, sigp::RESTART, 0, "operating, halted", answer(0, 0))?;
        let woke = timer::poll_until(wait_us(), || PROBE.runs.load(Ordering::SeqCst) != before);
        let seen = if woke {
            "its restart code ran only after a second SIGP RESTART"
        } else {
            "its restart code did not run even after a second SIGP RESTART"
        };
        if m.host.kind == crate::host::HostKind::QemuTcg && woke {
            return Err(Outcome::skip(
                crate::format!(
                    "QEMU bug: a CPU stopped in a wait stays halted after SIGP RESTART \
                     (s390_cpu_set_state keeps it halted for its old wait PSW); seen at \
                     address {}: {}",
                    a,
                    seen
                )
                .as_str(),
            ));
        }
        Err(Outcome::mismatch(
            crate::format!(
                "CPU at address {} after SIGP RESTART (stopped in a wait)",
                a
            )
            .as_str(),
            "its restart new PSW's code running",
            seen,
        ))
    }))
}

/// What a store-status order saved, held to the target: its prefix, a
/// PSW a z/Architecture CPU can have (with the wait bit as expected), an
/// address in this image, r15 in its stack, CR0 with its external-call
/// subclass open (the idle loop's).
fn saved_status(l: &Lent, s: &SaveArea, where_: &str, waiting: bool) -> Result<(), Outcome> {
    let fail = |what: &str, want: &str, got: String| {
        Err(Outcome::mismatch(
            crate::format!(
                "status of CPU {} (address {}) stored at {}: {}",
                l.number(),
                l.address(),
                where_,
                what
            )
            .as_str(),
            want,
            got.as_str(),
        ))
    };
    if u64::from(s.prefix) != l.area() {
        return fail(
            "prefix (save area +0x118)",
            crate::format!("{}", Hex(l.area())).as_str(),
            crate::format!("{}", Hex(u64::from(s.prefix))),
        );
    }
    let wait = s.psw_mask & arch::PSW_MASK_WAIT != 0;
    if !plausible_psw_mask(s.psw_mask) || wait != waiting {
        return fail(
            "PSW mask (+0x100)",
            if waiting {
                "64-bit, wait bit on"
            } else {
                "64-bit, wait bit off"
            },
            crate::format!("{}", HexW(s.psw_mask, 16)),
        );
    }
    let end = arch::symbols::image_end();
    if s.psw_addr < 0x11000 || s.psw_addr >= end {
        return fail(
            "PSW address (+0x108)",
            crate::format!("in this image, 0x11000-{}", Hex(end)).as_str(),
            crate::format!("{}", Hex(s.psw_addr)),
        );
    }
    let (low, top) = l.stack();
    if s.grs[15] < low || s.grs[15] >= top {
        return fail(
            "r15 (+0xf8)",
            crate::format!("in its stack {}-{}", Hex(low), Hex(top)).as_str(),
            crate::format!("{}", Hex(s.grs[15])),
        );
    }
    // Its own CR0: AFP on (boot/head.S), and in its idle loop (a wait)
    // the external-call subclass too.
    let mut cr0 = 1u64 << (63 - 45);
    if waiting {
        cr0 |= 1u64 << (63 - arch::CR0_EXTERNAL_CALL);
    }
    if s.crs[0] & cr0 != cr0 {
        return fail(
            "CR0 (+0x180)",
            crate::format!("bits {} on", Hex(cr0)).as_str(),
            crate::format!("{}", Hex(s.crs[0])),
        );
    }
    Ok(())
}

/// STOP AND STORE STATUS: cc 0; the target stops and its status lands at
/// absolute 0x1200 (prefix, PSW, registers), with the architectural-mode
/// id 1 at absolute 0xA3; from a wait and from running code.
pub fn stop_store_status(m: &mut Machine) -> Outcome {
    run(with_lent(m, |l| {
        let a = l.address();
        for running in [false, true] {
            let what = if running {
                "operating, running"
            } else {
                "operating, in a wait"
            };
            if running {
                reprobe(m, l, "stopped")?;
            }
            arch_smp::absolute_save_area(Some(0xa5));
            order(m, a, sigp::STOP_AND_STORE_STATUS, 0, what, answer(0, 0))?;
            stopped(l)?;
            order(
                m,
                a,
                sigp::SENSE,
                0,
                "stopped and stored",
                answer(1, sigp::STATUS_STOPPED),
            )?;
            let (bytes, id) = arch_smp::absolute_save_area(None);
            let s = SaveArea::parse(&bytes);
            saved_status(l, &s, "absolute 0x1200", !running)?;
            if id != 1 {
                return Err(Outcome::mismatch(
                    crate::format!(
                        "architectural-mode id at absolute 0xA3 after SIGP stop-store-status to address {} ({})",
                        a, what
                    )
                    .as_str(),
                    1u8,
                    id,
                ));
            }
        }
        Ok(())
    }))
}

/// RESTART: to an operating CPU and to a stopped one, cc 0, and the
/// target runs its restart new PSW's code (as itself, in its prefix
/// area); a stopped target operates again.
pub fn restart(m: &mut Machine) -> Outcome {
    run(with_lent(m, |l| {
        let a = l.address();
        l.on_restart(probe, 0);
        run_probe(m, l, "operating, in a wait", l.area())?;
        PROBE.release.store(true, Ordering::SeqCst);
        stopped(l)?;
        run_probe(m, l, "stopped", l.area())?;
        order(m, a, sigp::SENSE, 0, "restarted from stopped", answer(0, 0))?;
        run_probe(m, l, "operating, running", l.area())?;
        Ok(())
    }))
}

/// Storage past the end the orders below are given: 0x7fffe000 (the
/// highest 8 KiB under 2 GiB), if storage (and any device memory up to
/// `mem=`'s maxmem) ends well below it.
fn past_storage(m: &Machine) -> Option<u64> {
    let end = m
        .cfg
        .mem
        .as_ref()
        .map_or(m.memory, |c| c.maxmem.max(m.memory));
    (end < 0x7000_0000).then_some(0x7fff_e000)
}

/// SET PREFIX: to an operating CPU cc 1, 0x200 (incorrect state); an
/// address past storage cc 1, 0x100 (invalid parameter) in either state
/// (QEMU and KVM test it first); to a stopped CPU cc 0 (the low 13 bits
/// ignored), and restarted it runs with the new prefix (STPX).
pub fn set_prefix(m: &mut Machine) -> Outcome {
    run(with_lent(m, |l| {
        let a = l.address();
        let spare = l.spare_area(probe, 0);
        let bad = past_storage(m);
        order(
            m,
            a,
            sigp::SET_PREFIX,
            spare,
            "operating",
            answer(1, sigp::STATUS_INCORRECT_STATE),
        )?;
        if let Some(bad) = bad {
            // The address comes from R1 itself: the valid one there, one
            // past storage in the next register (taken, it would answer
            // 0x100).
            odd_r1_decoy(
                m,
                a,
                sigp::SET_PREFIX,
                spare,
                bad,
                "operating",
                answer(1, sigp::STATUS_INCORRECT_STATE),
            )?;
        }
        if let Some(bad) = bad {
            order(
                m,
                a,
                sigp::SET_PREFIX,
                bad,
                "operating, address past storage",
                answer(1, sigp::STATUS_INVALID_PARAMETER),
            )?;
        }
        // Stopped from running code (the probe stops itself when
        // released), not from a wait: see restart_in_wait.
        l.on_restart(probe, 0);
        run_probe(m, l, "operating, in a wait", l.area())?;
        PROBE.release.store(true, Ordering::SeqCst);
        stopped(l)?;
        if let Some(bad) = bad {
            order(
                m,
                a,
                sigp::SET_PREFIX,
                bad,
                "stopped, address past storage",
                answer(1, sigp::STATUS_INVALID_PARAMETER),
            )?;
        }
        order(
            m,
            a,
            sigp::SET_PREFIX,
            spare | 0x1fff,
            "stopped",
            answer(0, 0),
        )?;
        run_probe(m, l, "stopped, new prefix", spare)?;
        Ok(())
    }))
}

/// 512 bytes on a 512-byte boundary, and 512 more that must stay as
/// they were.
#[repr(C, align(512))]
struct StatusBuffer([u8; 2 * SAVE_AREA_LEN]);

/// STORE STATUS AT ADDRESS: to an operating CPU cc 1, 0x200, nothing
/// stored; to a stopped one cc 0 (the low 9 bits of the address
/// ignored) and its status in the 512 bytes there, not one byte more;
/// an address past storage cc 1, 0x100.
pub fn store_status(m: &mut Machine) -> Outcome {
    let mut note = None;
    let mut buf = Box::new(StatusBuffer([0xa5; 2 * SAVE_AREA_LEN]));
    let at = buf.0.as_mut_ptr() as u64;
    let r = with_lent(m, |l| {
        let a = l.address();
        order(
            m,
            a,
            sigp::STORE_STATUS_AT_ADDRESS,
            at,
            "operating",
            answer(1, sigp::STATUS_INCORRECT_STATE),
        )?;
        untouched(&buf.0, 0, "after the refused order")?;
        stop(m, l, "operating")?;
        if let Some(bad) = past_storage(m) {
            let at = bad | 0x1e00;
            let what = "stopped, address past storage";
            let want = answer(1, sigp::STATUS_INVALID_PARAMETER);
            if qemu_stores_past_storage(m, a, at) {
                note = Some(
                    "an address past storage not compared: QEMU answers cc 0 (bug: \
                     address_space_map gives a bounce buffer there, so s390_store_status \
                     never sees the failure it would answer 0x100 for)",
                );
            } else {
                order(m, a, sigp::STORE_STATUS_AT_ADDRESS, at, what, want)?;
            }
        }
        order(
            m,
            a,
            sigp::STORE_STATUS_AT_ADDRESS,
            at | 0x1ff,
            "stopped",
            answer(0, 0),
        )?;
        // SAFETY: the target stored before SIGP completed (cc 0); the
        // volatile read sees it.
        let stored: [u8; 2 * SAVE_AREA_LEN] = unsafe { core::ptr::read_volatile(&buf.0) };
        untouched(&stored, SAVE_AREA_LEN, "past the 512 bytes")?;
        let s = SaveArea::parse(stored[..SAVE_AREA_LEN].try_into().expect("512"));
        saved_status(l, &s, "the address given", true)
    });
    drop(buf);
    match (r, note) {
        (Ok(()), Some(n)) => Outcome::PassNote(String::from(n)),
        (r, _) => run(r),
    }
}

/// Whether the host is QEMU's TCG and answers STORE STATUS AT ADDRESS
/// past storage with cc 0, R1 untouched (asked once: QEMU logs each
/// word it writes to nowhere). Any other answer is left to `order`.
fn qemu_stores_past_storage(m: &Machine, addr: u16, at: u64) -> bool {
    if m.host.kind != crate::host::HostKind::QemuTcg || m.cfg.sigp_expect.is_some() {
        return false;
    }
    // SAFETY: storage past the end: nothing of ours is there.
    let (cc, r1) = unsafe {
        sigp::sigp_raw(
            R1_BEFORE,
            u64::from(addr),
            u64::from(sigp::STORE_STATUS_AT_ADDRESS),
            at,
        )
    };
    cc == 0 && r1 == R1_BEFORE
}

/// The buffer from `from` on still holds its fill.
fn untouched(b: &[u8; 2 * SAVE_AREA_LEN], from: usize, what: &str) -> Result<(), Outcome> {
    match b[from..].iter().position(|&x| x != 0xa5) {
        None => Ok(()),
        Some(i) => Err(Outcome::mismatch(
            crate::format!("store-status buffer {}: byte {}", what, from + i).as_str(),
            Hex(0xa5),
            Hex(u64::from(b[from + i])),
        )),
    }
}

/// SET ARCHITECTURE under CZAM (facility 138: z/Architecture only):
/// cc 1, 0x100 (invalid parameter) for every mode code, whatever R3
/// names (QEMU: sigp_set_architecture); every CPU goes on as before.
pub fn set_architecture(m: &mut Machine) -> Outcome {
    if !m.host.has_facility(138) {
        return Outcome::skip("no CZAM (facility 138): the order could change the mode");
    }
    run((|| {
        let me = sigp::cpu_address();
        let want = answer(1, sigp::STATUS_INVALID_PARAMETER);
        for mode in [0u64, 1, 2] {
            order(m, me, sigp::SET_ARCHITECTURE, mode, "any CPU", want)?;
        }
        order(m, 0xfffe, sigp::SET_ARCHITECTURE, 1, "no CPU there", want)?;
        for (_, a) in others(m) {
            order(
                m,
                a,
                sigp::SENSE,
                0,
                "operating, after set-architecture",
                answer(0, 0),
            )?;
        }
        Ok(())
    })())
}

/// SENSE RUNNING STATUS (facility 9): this CPU cc 0 (running); a CPU
/// running code cc 0; one in a wait or stopped cc 1, 0x400 (not
/// running: QEMU counts a halted CPU as not running, sigp_sense_running).
/// Without facility 9: cc 1, 0x2 (invalid order).
pub fn sense_running(m: &mut Machine) -> Outcome {
    run((|| {
        let me = sigp::cpu_address();
        if !m.host.has_facility(9) {
            order(
                m,
                me,
                sigp::SENSE_RUNNING_STATUS,
                0,
                "this CPU",
                answer(1, sigp::STATUS_INVALID_ORDER),
            )?;
            return Ok(());
        }
        order(
            m,
            me,
            sigp::SENSE_RUNNING_STATUS,
            0,
            "this CPU",
            answer(0, 0),
        )?;
        let all = all_idle(m)?;
        let not_running = answer(1, sigp::STATUS_NOT_RUNNING);
        for &(_, a) in &all {
            // Other CPUs in their wait may run now and then (a floating
            // service signal taken): asked until it says not running.
            let end = timer::deadline_after_us(wait_us());
            while arch::tod() < end
                && smp::sigp_settled(a, sigp::SENSE_RUNNING_STATUS, wait_us()) != not_running
            {
                core::hint::spin_loop();
            }
            order(
                m,
                a,
                sigp::SENSE_RUNNING_STATUS,
                0,
                "operating, in a wait",
                not_running,
            )?;
        }
        with_lent(m, |l| {
            let a = l.address();
            l.on_restart(probe, 0);
            run_probe(m, l, "operating, in a wait", l.area())?;
            order(
                m,
                a,
                sigp::SENSE_RUNNING_STATUS,
                0,
                "operating, running",
                answer(0, 0),
            )?;
            stop(m, l, "operating, running")?;
            order(m, a, sigp::SENSE_RUNNING_STATUS, 0, "stopped", not_running)?;
            Ok(())
        })
    })())
}

/// CPU RESET and INITIAL CPU RESET: cc 0, the target stopped; CPU reset
/// clears a pending external call but keeps the prefix and control
/// registers; initial CPU reset also clears the PSW, prefix, FPC, timers
/// and control registers to their initial values (CR0 0xe0, CR14
/// 0xc2000000: QEMU's s390_cpu_reset).
pub fn cpu_reset(m: &mut Machine) -> Outcome {
    let mut buf = Box::new(StatusBuffer([0xa5; 2 * SAVE_AREA_LEN]));
    let at = buf.0.as_mut_ptr() as u64;
    let r = with_lent(m, |l| {
        let a = l.address();
        let stopped = answer(1, sigp::STATUS_STOPPED);
        // From a wait: stopped afterwards.
        order(
            m,
            a,
            sigp::CPU_RESET,
            0,
            "operating, in a wait",
            answer(0, 0),
        )?;
        stopped_l(l)?;
        order(m, a, sigp::EXTERNAL_CALL, 0, "stopped", answer(0, 0))?;
        let pending = sigp::STATUS_STOPPED | sigp::STATUS_EXTERNAL_CALL_PENDING;
        order(
            m,
            a,
            sigp::SENSE,
            0,
            "stopped, external call pending",
            answer(1, pending),
        )?;
        order(
            m,
            a,
            sigp::CPU_RESET,
            0,
            "stopped, external call pending",
            answer(0, 0),
        )?;
        order(m, a, sigp::SENSE, 0, "after CPU reset", stopped)?;
        order(
            m,
            a,
            sigp::STORE_STATUS_AT_ADDRESS,
            at,
            "after CPU reset",
            answer(0, 0),
        )?;
        // SAFETY: stored before SIGP completed.
        let stored: [u8; 2 * SAVE_AREA_LEN] = unsafe { core::ptr::read_volatile(&buf.0) };
        let s = SaveArea::parse(stored[..SAVE_AREA_LEN].try_into().expect("512"));
        saved_status(l, &s, "the address given, after CPU reset", true)?;
        // From running code.
        reprobe(m, l, "stopped, after CPU reset")?;
        order(
            m,
            a,
            sigp::INITIAL_CPU_RESET,
            0,
            "operating, running",
            answer(0, 0),
        )?;
        stopped_l(l)?;
        order(m, a, sigp::SENSE, 0, "after initial CPU reset", stopped)?;
        order(
            m,
            a,
            sigp::STORE_STATUS_AT_ADDRESS,
            at,
            "after initial CPU reset",
            answer(0, 0),
        )?;
        // SAFETY: as above.
        let stored: [u8; 2 * SAVE_AREA_LEN] = unsafe { core::ptr::read_volatile(&buf.0) };
        let s = SaveArea::parse(stored[..SAVE_AREA_LEN].try_into().expect("512"));
        let mut crs = [0u64; 16];
        crs[0] = 0xe0;
        crs[14] = 0xc200_0000;
        let want = (0u64, 0u64, 0u32, 0u32, 0u32, 0u64, 0u64, crs);
        let got = (
            s.psw_mask,
            s.psw_addr,
            s.prefix,
            s.fpc,
            s.todpr,
            s.cpu_timer,
            s.ckc,
            s.crs,
        );
        if got != want {
            let mut diff = String::new();
            let fields: [(&str, u64, u64); 7] = [
                ("PSW mask", want.0, got.0),
                ("PSW address", want.1, got.1),
                ("prefix", u64::from(want.2), u64::from(got.2)),
                ("FPC", u64::from(want.3), u64::from(got.3)),
                ("TOD programmable", u64::from(want.4), u64::from(got.4)),
                ("CPU timer", want.5, got.5),
                ("clock comparator", want.6, got.6),
            ];
            for (f, w, g) in fields {
                if w != g {
                    diff.push_str(&crate::format!("{} {} (want {}) ", f, Hex(g), Hex(w)));
                }
            }
            for (i, (w, g)) in crs.iter().zip(s.crs.iter()).enumerate() {
                if w != g {
                    diff.push_str(&crate::format!("CR{} {} (want {}) ", i, Hex(*g), Hex(*w)));
                }
            }
            return Err(Outcome::mismatch(
                crate::format!(
                    "status of CPU {} (address {}) after initial CPU reset",
                    l.number(),
                    a
                )
                .as_str(),
                "PSW 0, prefix 0, FPC 0, timers 0, CR0 0xe0, CR14 0xc2000000, other CRs 0",
                diff.trim_end(),
            ));
        }
        Ok(())
    });
    drop(buf);
    run(r)
}

/// Addresses with no CPU answer cc 3 to every order (R1 untouched):
/// every address from 0 to 0xffff is sensed, the ones answering must be
/// Read CPU Info's, and as many as `expect-cpus=` says.
pub fn no_cpu(m: &mut Machine) -> Outcome {
    run(no_cpu_(m))
}

fn no_cpu_(m: &Machine) -> Result<(), Outcome> {
    let configured: Vec<u16> = match &m.smp.configured {
        Ok(l) => l.clone(),
        Err(e) => {
            return Err(Outcome::mismatch(
                "SCLP Read CPU Info",
                "a CPU list",
                e.as_str(),
            ))
        }
    };
    let mut answering: Vec<u16> = Vec::new();
    for a in 0..=0xffffu16 {
        let got = smp::sigp_settled(a, sigp::SENSE, wait_us());
        if got.cc != 3 {
            answering.push(a);
            if !configured.contains(&a) {
                return Err(Outcome::mismatch(
                    crate::format!("SIGP sense to address {} (not in Read CPU Info)", a).as_str(),
                    "cc 3",
                    SigpAnswer(got),
                ));
            }
        }
    }
    for &a in &configured {
        if !answering.contains(&a) {
            return Err(Outcome::mismatch(
                crate::format!("SIGP sense to address {} (in Read CPU Info)", a).as_str(),
                "cc 0 or 1",
                "cc 3",
            ));
        }
    }
    if let Some(n) = m.cfg.expect_cpus {
        // The CPUs smp.hotplug saw plugged come on top of expect-cpus=.
        let n = usize::from(n) + m.smp.plugged;
        if answering.len() != n {
            let first_extra = answering.get(n).copied();
            let mut list = String::new();
            for a in &answering {
                list.push_str(&crate::format!("{} ", a));
            }
            return Err(Outcome::mismatch(
                crate::format!(
                    "addresses answering SIGP sense (expect-cpus={}; {})",
                    n,
                    match first_extra {
                        Some(a) => crate::format!("address {} answers where cc 3 was expected", a),
                        None => String::from("too few"),
                    }
                    .as_str()
                )
                .as_str(),
                n,
                list.trim_end(),
            ));
        }
    }
    // The first address without a CPU gets every order: cc 3 to each.
    let absent = (0..=0xffffu16)
        .find(|a| !answering.contains(a))
        .expect("a free address");
    let mut buf = Box::new(StatusBuffer([0xa5; 2 * SAVE_AREA_LEN]));
    let at = buf.0.as_mut_ptr() as u64;
    let no = answer(3, 0);
    for &(code, _) in zvtest_contract::sigp::ORDERS {
        if code == sigp::SET_ARCHITECTURE {
            continue;
        }
        // Set prefix and store status get storage of ours, were a CPU there.
        order(m, absent, code, at, "no CPU there", no)?;
    }
    for code in [0x00u8, 0xff] {
        order(m, absent, code, at, "no CPU there", no)?;
    }
    drop(buf);
    out!(
        "# sigp: {} addresses answer SIGP sense; address {} and the others cc 3\n",
        answering.len(),
        absent
    );
    Ok(())
}

/// Order codes the architecture does not assign: cc 1, 0x2 (invalid
/// order), to this CPU and to another
/// operating or stopped. Then, last of the suite, every CPU it lent is
/// back: each runs work as itself.
pub fn invalid_order(m: &mut Machine) -> Outcome {
    run((|| {
        let invalid: Vec<u8> = (0..=0xffu8).filter(|&c| order_name(c).is_none()).collect();
        let want = answer(1, sigp::STATUS_INVALID_ORDER);
        let me = sigp::cpu_address();
        for &c in &invalid {
            order(m, me, c, 0, "this CPU", want)?;
        }
        with_lent(m, |l| {
            for &c in &invalid {
                order(m, l.address(), c, 0, "operating", want)?;
            }
            stop(m, l, "operating")?;
            for &c in &invalid {
                order(m, l.address(), c, 0, "stopped", want)?;
            }
            Ok(())
        })?;
        all_back(m)
    })())
}

/// Last of the suite: every other CPU is back in its idle loop and runs
/// work as itself (its own address, a prefix area of its own), as
/// smp.start found them.
fn all_back(m: &Machine) -> Result<(), Outcome> {
    let all = all_idle(m)?;
    let mut work: Vec<(usize, (u16, u32))> = all.iter().map(|&(n, _)| (n, (0xffff, 0))).collect();
    smp::run_each(
        &mut work,
        &|_, seen: &mut (u16, u32)| *seen = (sigp::cpu_address(), sigp::prefix()),
        wait_us(),
    )
    .map_err(|stuck| {
        let s = &stuck[0];
        Outcome::mismatch(
            crate::format!(
                "CPU {} (address {}) after the SIGP checks: work in its idle loop",
                s.number,
                s.address.unwrap_or(0xffff)
            )
            .as_str(),
            "run",
            s.why.as_str(),
        )
    })?;
    let mut prefixes = Vec::new();
    for (&(n, (address, prefix)), &(_, a)) in work.iter().zip(&all) {
        if address != a || prefix == 0 || prefixes.contains(&prefix) {
            return Err(Outcome::mismatch(
                crate::format!("CPU {} after the SIGP checks: STAP and STPX", n).as_str(),
                crate::format!("address {}, a prefix of its own", a).as_str(),
                crate::format!("address {}, prefix {}", address, Hex(u64::from(prefix))).as_str(),
            ));
        }
        prefixes.push(prefix);
    }
    Ok(())
}

/// 1 KiB on a 1 KiB boundary, and 1 KiB more that must stay as it was.
#[repr(C, align(1024))]
struct AdditionalBuffer([u8; 2048]);

/// STORE ADDITIONAL STATUS (with the vector facility, 129, or guarded
/// storage, 133; else cc 1, 0x2): to an operating CPU cc 1, 0x200; to a
/// stopped one a misaligned address or a length code other than 0
/// without guarded storage cc 1, 0x100 (QEMU: sigp_store_adtl_status);
/// length code 0 at a 1 KiB boundary cc 0, and the area holds the 32
/// vector registers, whose left halves are the floating-point registers
/// STORE STATUS AT ADDRESS saw, nothing stored past its 1 KiB.
pub fn store_additional_status(m: &mut Machine) -> Outcome {
    let mut adtl = Box::new(AdditionalBuffer([0xa5; 2048]));
    let mut status = Box::new(StatusBuffer([0xa5; 2 * SAVE_AREA_LEN]));
    let at = adtl.0.as_mut_ptr() as u64;
    let st = status.0.as_mut_ptr() as u64;
    let vector = m.host.has_facility(129);
    let guarded = m.host.has_facility(133);
    let r = with_lent(m, |l| {
        let a = l.address();
        let code = sigp::STORE_ADDITIONAL_STATUS;
        if !vector && !guarded {
            let want = answer(1, sigp::STATUS_INVALID_ORDER);
            return order(m, a, code, at, "no vector facility", want).map(|_| ());
        }
        order(
            m,
            a,
            code,
            at,
            "operating",
            answer(1, sigp::STATUS_INCORRECT_STATE),
        )?;
        stop(m, l, "operating")?;
        let bad = answer(1, sigp::STATUS_INVALID_PARAMETER);
        order(
            m,
            a,
            code,
            at + 0x200,
            "stopped, not on a 1 KiB boundary",
            bad,
        )?;
        if !guarded {
            order(
                m,
                a,
                code,
                at | 11,
                "stopped, length code 11, no guarded storage",
                bad,
            )?;
        }
        order(
            m,
            a,
            sigp::STORE_STATUS_AT_ADDRESS,
            st,
            "stopped",
            answer(0, 0),
        )?;
        order(m, a, code, at, "stopped", answer(0, 0))?;
        // SAFETY: both were stored before SIGP completed.
        let (stored, saved) = unsafe {
            (
                core::ptr::read_volatile(&adtl.0),
                core::ptr::read_volatile(&status.0),
            )
        };
        if let Some(i) = stored[1024..].iter().position(|&b| b != 0xa5) {
            return Err(Outcome::mismatch(
                crate::format!("additional-status buffer past its 1 KiB: byte {}", 1024 + i)
                    .as_str(),
                Hex(0xa5),
                Hex(u64::from(stored[1024 + i])),
            ));
        }
        let s = SaveArea::parse(saved[..SAVE_AREA_LEN].try_into().expect("512"));
        for (i, fpr) in s.fprs.iter().enumerate() {
            let v = u64::from_be_bytes(stored[16 * i..16 * i + 8].try_into().expect("8"));
            if v != *fpr {
                return Err(Outcome::mismatch(
                    crate::format!(
                        "VR{} bits 0-63 stored by SIGP store-additional-status to address {} \
                         (FPR{} as STORE STATUS AT ADDRESS saw it)",
                        i,
                        a,
                        i
                    )
                    .as_str(),
                    Hex(*fpr),
                    Hex(v),
                ));
            }
        }
        Ok(())
    });
    drop(adtl);
    drop(status);
    run(r)
}
