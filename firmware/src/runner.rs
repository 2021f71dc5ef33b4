//! The run: start-up, the TAP report, every selected check under a timeout,
//! and the verdict in the final wait PSW.

use crate::arch::context::{class_name, InterruptContext, InterruptInfo};
use crate::arch::global::Global;
use crate::arch::handlers;
use crate::arch::interrupt::disarm_expectations;
use crate::arch::recovery::{try_call, Recovery, ABORT_TIMEOUT};
use crate::arch::{self, lowcore, timer};
use crate::check::{selection_error, Check, Outcome};
use crate::cmdline::{self, Inject};
use crate::console::{self, sclp, Console};
use crate::css::channel;
use crate::deadline;
use crate::decode::{external_code_name, program_code_has_teid, program_code_name};
use crate::ebcdic::CodePage;
use crate::fmt::{Escaped, Hex, HexW};
use crate::host::{FacilityRanges, HostKind};
use crate::machine::{HostInfo, Machine};
use crate::memory;
use crate::sccb;
use crate::tap::TapWriter;
use crate::verdict::{reasons, wait_address, Abort};
use crate::{out, suites};
use alloc::vec::Vec;

const _: () = assert!(lowcore::IPL_CMDLINE_MAX == cmdline::AREA_SIZE);
// arch's own stop when no reporter is registered is the contract's code.

#[derive(Clone, Copy)]
struct RunState {
    tap: TapWriter,
    qemu: bool,
    current: &'static str,
}

static STATE: Global<RunState> = Global::new(RunState {
    tap: TapWriter::new(),
    qemu: true,
    current: "",
});

/// Storage size and CPUs: from SCLP Read SCP Info; where a whole page is
/// too short for its answer (QEMU without the extended-length-SCCB
/// facility cannot answer for more than 247 CPUs), storage by probing and
/// CPUs from Read CPU Info. Any other failure ends the run.
fn storage_and_cpus(host: &HostInfo, raw_cmdline: &[u8]) -> (u64, u16) {
    let injected = cmdline::early_inject(raw_cmdline, Inject::Sclp);
    let len = if injected {
        // Room for the header only: the answer cannot fit.
        16
    } else if host.has_facility(sccb::FACILITY_EXTENDED_SCCB) {
        sccb::read_info_len(sccb::MAX_CPUS)
    } else {
        sccb::SCCB_SIZE
    };
    let err = match sclp::read_scp_info(len) {
        Ok(info) => return (info.memory, info.cpus),
        Err(e) => e,
    };
    out!("# SCLP Read SCP Info ({} bytes): {}\n", len, err);
    // Only a page too short for the answer has a way round; any other
    // answer means the SCLP cannot tell us, and we do not guess.
    let too_short = err == sclp::InfoError::Response(sccb::RC_INSUFFICIENT_LENGTH);
    if !(too_short && len >= sccb::SCCB_SIZE) {
        let why = crate::format_fixed!(160, "{}: {}", reasons::NO_STORAGE_SIZE, err);
        bail_out(Abort::NoMemoryInfo, why.as_str());
    }
    let memory = memory::probe_storage_size();
    let cpus = match sclp::read_cpu_info() {
        Ok(n) => n,
        Err(e) => {
            out!("# SCLP Read CPU Info: {}\n", e);
            1
        }
    };
    out!(
        "# storage sized by probing: {} MiB; CPUs from Read CPU Info: {}\n",
        memory >> 20,
        cpus
    );
    (memory, cpus)
}

/// Entered from boot/head.S with interrupts disabled and new PSWs installed.
#[no_mangle]
extern "C" fn zvtest_main() -> ! {
    // The lowcore's CPU number names the owner of every lock.
    arch::smp::set_cpu_number(0);
    // This function never returns: the registrations below last the run.
    let _reporter = handlers::on_unexpected(unexpected_interrupt);
    timer::init();
    let _service_signal = console::init();
    let host = HostInfo::probe();
    set_qemu(host.kind.is_qemu());
    console::set_code_page(if host.kind == HostKind::ZVm {
        CodePage::Cp037
    } else {
        CodePage::Cp500
    });
    let _ = TapWriter::header(&mut Console);
    out!("# zvtest {}\n", env!("CARGO_PKG_VERSION"));

    let area = lowcore::ipl_cmdline();
    // Without QEMU (z/VM, LPAR) nothing is passed: the defaults apply.
    let raw_cmdline: &[u8] = if cmdline::passed(area) { area } else { &[] };
    let (memory, cpus) = storage_and_cpus(&host, raw_cmdline);
    let heap = match memory::heap_range(memory) {
        Ok(h) => h,
        Err(needed) => {
            let why = crate::format_fixed!(
                120,
                "{} MiB {}: zvtest needs at least {} MiB",
                memory >> 20,
                reasons::TOO_LITTLE_STORAGE,
                needed >> 20
            );
            bail_out(Abort::TooLittleStorage, why.as_str())
        }
    };
    memory::init_heap(heap);
    let parsed = cmdline::parse(raw_cmdline);

    out!(
        "# host: {} (STSI level {}, manufacturer '{}', type '{}', control program '{}')\n",
        host.kind.name(),
        host.level,
        host.manufacturer.as_str(),
        host.machine_type.as_str(),
        host.control_program.as_str()
    );
    if let Some((name, number)) = &host.lpar {
        out!("# LPAR: '{}' number {}\n", name.as_str(), number);
    }
    out!("# memory: {} MiB, cpus: {}\n", memory >> 20, cpus);
    out!(
        "# heap: {}-{} ({} MiB)\n",
        Hex(heap.start),
        Hex(heap.end),
        (heap.end - heap.start) >> 20
    );
    let verbose = parsed.as_ref().map_or(1, |c| c.verbose);
    if verbose >= 1 {
        out!("# facilities: {}\n", FacilityRanges(&host.facilities));
    }
    out!(
        "# command line: '{}'\n",
        Escaped(cmdline::text(raw_cmdline))
    );

    if host.kind.is_qemu() && !cmdline::passed(area) {
        bail_out(
            Abort::CommandLine,
            &crate::format!(
                "{}: QEMU drops an -append longer than the {} bytes the image holds",
                reasons::NO_COMMAND_LINE,
                lowcore::IPL_CMDLINE_MAX - 1
            ),
        );
    }
    let cfg = match parsed {
        Ok(cfg) => cfg,
        Err(e) => bail_out(
            Abort::CommandLine,
            &crate::format!("{}: {}", reasons::COMMAND_LINE, e),
        ),
    };
    crate::host_wait::set(&cfg);
    let (injected, regular): (Vec<&Check<Machine>>, Vec<&Check<Machine>>) =
        suites::ALL.iter().partition(|c| c.inject.is_some());
    let names = |checks: &[&Check<Machine>]| checks.iter().map(|c| c.name).collect::<Vec<_>>();
    if let Some(why) = selection_error(&cfg, &names(&regular), &names(&injected)) {
        bail_out(
            Abort::CommandLine,
            &crate::format!("{}: {}", reasons::COMMAND_LINE, why.as_str()),
        );
    }
    let refuse = if cfg.inject.contains(&Inject::Cpu) {
        // The proof that a CPU missing its start fails smp.start.
        sclp::read_cpu_entries()
            .ok()
            .and_then(|r| r.ok())
            .and_then(|i| {
                i.configured
                    .into_iter()
                    .filter(|&a| a != arch::sigp::cpu_address())
                    .max()
            })
    } else {
        None
    };
    let smp = crate::smp::bring_up(refuse);
    let _io = channel::init();
    let inventory = crate::discovery::discover();
    inventory.print();
    let mut machine = Machine {
        memory,
        cpus,
        smp,
        heap,
        host,
        inventory,
        diag288: cfg.diag288,
        cfg,
    };
    let selected: Vec<&Check<Machine>> = suites::ALL
        .iter()
        .filter(|c| c.is_selected(&machine.cfg))
        .collect();
    let _ = TapWriter::plan(&mut Console, selected.len() as u32);
    for check in selected {
        let start = arch::tod();
        let outcome = run_check(&mut machine, check);
        let took_us = (arch::tod() - start) / arch::TOD_PER_US;
        let mut st = STATE.get();
        let _ = st.tap.result(&mut Console, check.name, &outcome);
        STATE.set(st);
        if machine.cfg.verbose >= 2 {
            let heap = memory::heap_stats();
            out!(
                "# {}: {} us, heap in use {} bytes, timeout {} ms\n",
                check.name,
                took_us,
                heap.used,
                check.timeout_ms(&machine.cfg)
            );
        }
    }
    finish(None)
}

fn set_qemu(qemu: bool) {
    let mut st = STATE.get();
    st.qemu = qemu;
    STATE.set(st);
}

fn run_check(m: &mut Machine, check: &Check<Machine>) -> Outcome {
    let mut st = STATE.get();
    st.current = check.name;
    STATE.set(st);
    let timeout_ms = check.timeout_ms(&m.cfg);
    let mut outcome: Option<Outcome> = None;
    let mut rec = Recovery::default();
    // What the check registers ends with it, even when it is cut short.
    let mark = handlers::mark();
    deadline::start(&mut rec, timeout_ms * 1000);
    let code = try_call(&mut rec, || {
        arch::ext_enable();
        outcome = Some((check.run)(m));
    });
    arch::irq_disable();
    deadline::end();
    timer::stop_cpu_timer();
    disarm_expectations();
    handlers::release_since(mark);
    // A CPU the check had stopped (lent, then cut short) goes back to work.
    for (n, why) in crate::smp::reclaim() {
        out!(
            "# cpu {} left stopped by {}: {}\n",
            n,
            check.name,
            why.as_str()
        );
    }
    let mut st = STATE.get();
    st.current = "";
    STATE.set(st);
    match (code, outcome) {
        (0, Some(o)) => o,
        (ABORT_TIMEOUT, _) => Outcome::mismatch(
            "timeout: the check did not finish in time",
            crate::format!("done within {} ms", timeout_ms).as_str(),
            "still running",
        ),
        (c, _) => Outcome::mismatch("check ended abnormally", "0", c),
    }
}

/// Ends the run: summary line, then the wait PSW carrying the verdict.
fn finish(abort: Option<Abort>) -> ! {
    let st = STATE.get();
    if abort.is_none() {
        crate::smp::print_interrupts();
    }
    let _ = TapWriter::summary(st.tap.tally, &mut Console);
    console::flush();
    arch::smp::end_run(wait_address(st.qemu, st.tap.tally, abort))
}

/// Makes this CPU the one that reports the run's end (see
/// `arch::smp::claim_end`); a second fault while reporting ends the run
/// at once.
fn claim_end(abort: Abort) {
    if arch::smp::claim_end(abort.wait_address()) == arch::smp::EndClaim::Again {
        arch::smp::end_run(abort.wait_address());
    }
}

/// Stops the run with a TAP bail out and `reason`.
pub fn bail_out(abort: Abort, reason: &str) -> ! {
    claim_end(abort);
    deadline::end();
    console::take_over_for_report();
    let _ = TapWriter::bail_out(&mut Console, reason);
    finish(Some(abort))
}

/// Reports an interrupt nobody owns, with the decoded context, and ends the run.
fn unexpected_interrupt(info: &InterruptInfo, ctx: &InterruptContext) -> ! {
    claim_end(Abort::UnexpectedInterrupt);
    deadline::end();
    disarm_expectations();
    console::take_over_for_report();
    let current = STATE.get().current;
    let mut reason = crate::format!(
        "{}{} {}",
        reasons::UNEXPECTED,
        class_name(info.class()),
        reasons::INTERRUPT
    );
    match *info {
        InterruptInfo::Program(p) => {
            reason.push_str(&crate::format!(
                ": {} exception (code {}, ILC {})",
                program_code_name(p.code),
                HexW(u64::from(p.code), 4),
                p.ilc
            ));
            if program_code_has_teid(p.code) {
                reason.push_str(&crate::format!(", TEID {}", Hex(p.teid)));
            }
        }
        InterruptInfo::External(e) => {
            reason.push_str(&crate::format!(
                ": code {} ({})",
                HexW(u64::from(e.code), 4),
                external_code_name(e.code)
            ));
        }
        InterruptInfo::Io(io) => {
            reason.push_str(&crate::format!(
                ": subchannel {}, interruption parameter {}",
                Hex(u64::from(io.subchannel)),
                Hex(u64::from(io.param))
            ));
        }
        InterruptInfo::MachineCheck { mcic } => {
            reason.push_str(&crate::format!(": interruption code {}", HexW(mcic, 16)));
        }
        InterruptInfo::Restart | InterruptInfo::Svc { .. } => {}
    }
    if !current.is_empty() {
        reason.push_str(&crate::format!(" in check {}", current));
    }
    let _ = TapWriter::bail_out(&mut Console, &reason);
    out!(
        "# old PSW: {} {}\n",
        HexW(ctx.psw.mask, 16),
        HexW(ctx.psw.addr, 16)
    );
    for row in 0..4 {
        let r = &ctx.gprs[row * 4..row * 4 + 4];
        out!(
            "# r{}-r{}: {} {} {} {}\n",
            row * 4,
            row * 4 + 3,
            HexW(r[0], 16),
            HexW(r[1], 16),
            HexW(r[2], 16),
            HexW(r[3], 16)
        );
    }
    out!("# fpc: {}\n", HexW(u64::from(ctx.fpc), 8));
    finish(Some(Abort::UnexpectedInterrupt))
}

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    use core::fmt::Write;
    claim_end(Abort::Panic);
    deadline::end();
    console::take_over_for_report();
    let _ = write!(Console, "{}{}", TapWriter::BAIL_OUT, reasons::PANIC);
    let current = STATE.get().current;
    if !current.is_empty() {
        let _ = write!(Console, " in check {}", current);
    }
    let _ = write!(Console, ": {}", info.message());
    if let Some(loc) = info.location() {
        let _ = write!(Console, " at {}:{}", loc.file(), loc.line());
    }
    let exhausted = memory::EXHAUSTED_AT.load(core::sync::atomic::Ordering::SeqCst);
    if exhausted != 0 {
        let s = memory::heap_stats();
        let _ = write!(
            Console,
            " (heap exhausted: {} bytes requested, {} of {} bytes free)",
            exhausted, s.free, s.size
        );
    }
    let _ = Console.write_str("\n");
    finish(Some(Abort::Panic))
}

/// The prebuilt `alloc` refers to this; with panic=abort it is never called.
#[no_mangle]
extern "C" fn rust_eh_personality() {}
