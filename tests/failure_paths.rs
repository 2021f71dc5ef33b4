//! The firmware's failure paths, injected on request: each must FAIL in its
//! own recognisable way (and never by hanging unnoticed).

use crate::common;

use common::{boot, check, check_bail_out, check_summary, elf, failure_text, scenario};
use std::time::Duration;

#[test]
fn injected_failure() {
    let o = boot(&scenario("inject-fail").append("inject=fail"), &elf());
    check(&o, !o.passed(), "FAIL");
    check(
        &o,
        o.exit.code().is_some_and(|c| c != 0),
        "QEMU to exit by itself with a non-zero status",
    );
    check(
        &o,
        o.tap.failures().any(|r| r.name == "inject.fail"),
        "`not ok ... - inject.fail`",
    );
    check_wait_address(&o, 0x0bad_0002);
    check_summary(&o);
}

#[test]
fn injected_program_interrupt() {
    let o = boot(&scenario("inject-pgm").append("inject=pgm"), &elf());
    check(&o, !o.passed(), "FAIL");
    check_bail_out(&o, "program interrupt");
    check(&o, o.console().contains("PSW"), "the PSW on the console");
    check_summary(&o);
}

#[test]
fn injected_hang_is_caught_by_the_firmware() {
    let o = boot(&scenario("inject-hang").append("inject=hang"), &elf());
    check(&o, !o.passed(), "FAIL");
    check(
        &o,
        !o.exit.is_timed_out(),
        "QEMU to end by itself, before the host timeout",
    );
    let hang = o.tap.failures().find(|r| r.name == "inject.hang");
    check(&o, hang.is_some(), "`not ok ... - inject.hang`");
    let says_timeout = hang
        .and_then(|r| r.yaml.as_ref())
        .is_some_and(|y| y.lines.iter().any(|l| l.contains("timeout")));
    check(&o, says_timeout, "`timeout` in the YAML of inject.hang");
    check_summary(&o);
}

#[test]
fn endless_loop_is_caught_by_the_host_timeout() {
    let s = scenario("inject-forever")
        .append("inject=forever")
        .timeout(Duration::from_secs(2));
    let o = boot(&s, &elf());
    check(&o, o.exit.is_timed_out(), "the host timeout to kill QEMU");
    check(&o, !o.passed(), "FAIL");
}

#[test]
fn unknown_option_is_rejected() {
    let o = boot(&scenario("bogus-option").append("bogus=1"), &elf());
    check(&o, !o.passed(), "FAIL");
    check(
        &o,
        failure_text(&o).contains("bogus"),
        "the failure to name the option `bogus`",
    );
    check_wait_address(&o, 0x0dea_d008);
    check_summary(&o);
}

#[test]
fn heap_exhaustion_is_reported() {
    let o = boot(&scenario("inject-oom").append("inject=oom"), &elf());
    check(&o, !o.passed(), "FAIL");
    check(
        &o,
        failure_text(&o).contains("heap"),
        "the failure to mention the heap",
    );
    check_wait_address(&o, 0x0dea_d006);
    check_summary(&o);
}

/// The wait PSW's address, as QEMU printed it (`-d guest_errors`).
#[track_caller]
fn check_wait_address(o: &qemu_runner::Run, address: u64) {
    check(
        o,
        o.wait_psw.map(|(_, a)| a) == Some(address),
        &format!("the wait PSW address {address:#x}, not {:?}", o.wait_psw),
    );
}

/// What QEMU's console shows of a bail-out for an interrupt nobody owns,
/// ending at 0x0dead000 + 2 × 1.
#[track_caller]
fn bails_out_with(o: &qemu_runner::Run, says: &str) {
    check_wait_address(o, 0x0dea_d002);
    check(o, !o.passed(), "FAIL");
    check_bail_out(o, says);
    check(
        o,
        o.console().contains("# old PSW: "),
        "the decoded old PSW",
    );
    check_summary(o);
}

#[test]
fn unexpected_external_interrupt_is_reported() {
    let o = boot(
        &scenario("inject-ext").append("inject=ext only=boot.vectors"),
        &elf(),
    );
    bails_out_with(
        &o,
        "unexpected external interrupt: code 1201 (emergency signal) in check inject.ext",
    );
}

#[test]
fn unexpected_io_interrupt_is_reported() {
    let s = scenario("inject-io")
        .device("virtio-rng-ccw,devno=fe.0.0001")
        .append("inject=io only=boot.vectors");
    let o = boot(&s, &elf());
    bails_out_with(
        &o,
        "unexpected I/O interrupt: subchannel 0xfe090000, interruption parameter 0x1f6ffff in check inject.io",
    );
}

/// A device plugged while nobody waits for channel reports: the machine
/// check is nobody's.
#[test]
fn unexpected_machine_check_is_reported() {
    let s = scenario("inject-mcck")
        .append("inject=mcck only=boot.vectors")
        .qmp_on_line(
            zvtest_contract::checks::markers::MCCK_READY,
            r#"{"execute": "device_add", "arguments": {"driver": "virtio-rng-ccw", "devno": "fe.0.0009", "id": "plugged"}}"#,
        )
        .timeout(Duration::from_secs(45));
    let o = boot(&s, &elf());
    bails_out_with(
        &o,
        "unexpected machine check interrupt: interruption code 00400f",
    );
}

/// Read SCP Info with an SCCB too short for its answer: the response code
/// is named and the run ends with "no storage information".
#[test]
fn no_storage_information_is_reported() {
    let o = boot(&scenario("inject-sclp").append("inject=sclp"), &elf());
    check(&o, !o.passed(), "FAIL");
    check_bail_out(
        &o,
        "SCLP Read SCP Info gave no storage size: response 0x300 (the SCCB is too short for the answer)",
    );
    check_wait_address(&o, 0x0dea_d00a);
    check_summary(&o);
}

/// A restart interrupt (QMP inject-nmi) wherever it lands, even inside a
/// line being written: a Bail out of its own, and the summary.
#[test]
fn unexpected_restart_interrupt_is_reported() {
    let s = scenario("inject-nmi")
        .append("only=heap.stress stress=5")
        .qmp_on_line("1..1", r#"{"execute": "inject-nmi"}"#);
    let o = boot(&s, &elf());
    check(&o, !o.passed(), "FAIL");
    check_bail_out(&o, "unexpected restart interrupt");
    check(&o, o.qmp_commands_done, "inject-nmi sent and answered");
    check_summary(&o);
}
