//! The runner against the real QEMU and the real firmware (ZVTEST_ELF, as
//! `cargo xtask test` sets it; a missing image fails, it never skips):
//! QEMU ended from outside with exit status 0 still fails the run, and
//! the wait PSW QEMU prints agrees with the TAP.

use qemu_runner::{run, Exit, Run, RunOptions, Scenario};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The firmware ELF that `cargo xtask build` made.
fn elf() -> PathBuf {
    let hint = "run `cargo xtask build` and set ZVTEST_ELF to the path it reports, \
                or run the whole suite with `cargo xtask test`";
    let Some(path) = std::env::var_os("ZVTEST_ELF").filter(|p| !p.is_empty()) else {
        panic!("ZVTEST_ELF is not set: {hint}");
    };
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "ZVTEST_ELF={} does not exist: {hint}",
        path.display()
    );
    path
}

fn boot(scenario: Scenario) -> Run {
    let scenario = scenario.timeout(Duration::from_secs(60));
    let log = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("real-qemu")
        .join(format!("{}.log", scenario.name));
    run(&scenario, &elf(), &RunOptions::default().log(log))
        .unwrap_or_else(|e| panic!("cannot boot {}: {e}", scenario.name))
}

#[track_caller]
fn check(o: &Run, ok: bool, what: &str) {
    assert!(
        ok,
        "{}: expected {what}\n{}",
        o.scenario,
        o.failure_report()
    );
}

/// The first line the firmware prints.
const FIRST_LINE: &str = "TAP version 14";

/// A QMP command on the first console line ends QEMU with status 0 and
/// the report cut off: FAIL, naming QMP's reason.
fn ended_over_qmp(name: &str, command: &str, reason: &str) {
    let o = boot(Scenario::new(name).qmp_on_line(FIRST_LINE, command));
    // What it looks like, past the harness capture.
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}", o.summary_line());
    for r in &o.verdict.reasons {
        let _ = writeln!(err, "  - {r}");
    }
    drop(err);
    check(&o, o.exit == Exit::Code(0), "QEMU exit status 0");
    check(&o, !o.passed(), "FAIL");
    check(&o, o.tap.summary.is_none(), "no summary line");
    let cut = format!(
        "no summary line although QEMU exited 0: the report is cut off, so QEMU was \
         ended from outside the firmware; QEMU says: QMP event SHUTDOWN reason {reason}"
    );
    check(
        &o,
        o.verdict.reasons.iter().any(|r| r.starts_with(&cut)),
        &format!("the reason '{cut}'"),
    );
    check(&o, o.wait_psw.is_none(), "no wait PSW");
}

#[test]
fn qmp_quit_is_a_failure() {
    ended_over_qmp("real-quit", r#"{"execute": "quit"}"#, "host-qmp-quit");
}

#[test]
fn qmp_system_reset_is_a_failure() {
    // -no-reboot makes the reset an exit.
    ended_over_qmp(
        "real-reset",
        r#"{"execute": "system_reset"}"#,
        "host-qmp-system-reset",
    );
}

#[test]
fn a_failed_check_waits_at_0x0bad0002() {
    let o = boot(Scenario::new("real-inject-fail").append("only=boot.vectors inject=fail"));
    check(&o, o.exit == Exit::Code(1), "QEMU exit status 1");
    check(
        &o,
        o.wait_psw.map(|(_, a)| a) == Some(0x0bad_0002),
        "wait PSW address 0x0bad0002",
    );
    // The PSW agrees with the TAP: no reason about it.
    check(
        &o,
        !o.verdict.reasons.iter().any(|r| r.contains("wait PSW")),
        "no wait-PSW reason",
    );
    check(&o, o.tap.counts().failed == 1, "one failed check");
}

#[test]
fn a_bad_command_line_waits_at_0x0dead008() {
    let o = boot(Scenario::new("real-bogus").append("bogus=1"));
    check(&o, o.exit == Exit::Code(1), "QEMU exit status 1");
    check(
        &o,
        o.wait_psw.map(|(_, a)| a) == Some(0x0dea_d008),
        "wait PSW address 0x0dead008 (reason 4, command line)",
    );
    check(
        &o,
        o.tap
            .bail_out
            .as_deref()
            .is_some_and(|b| b.starts_with("command line")),
        "a command-line bail-out",
    );
    check(
        &o,
        !o.verdict.reasons.iter().any(|r| r.contains("wait PSW")),
        "no wait-PSW reason",
    );
}

#[test]
fn a_full_run_passes_with_guest_errors_on() {
    // The firmware provokes invalid accesses on purpose: QEMU's
    // guest_errors lines on stderr must not disturb the verdict.
    let o = boot(Scenario::new("real-full"));
    check(&o, o.passed(), "PASS");
    check(
        &o,
        o.wait_psw.is_none(),
        "no wait PSW (clean shutdown at 0xfff)",
    );
    check(
        &o,
        o.command.windows(2).any(|w| w == ["-d", "guest_errors"]),
        "-d guest_errors",
    );
}
