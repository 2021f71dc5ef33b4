//! Boot scenarios of the whole run: the default scenario with every device
//! (the exact plan, nothing skipped that can run here), more memory and
//! CPUs, the raw image, selections, the line-mode console, the command
//! line's limits and the storage the firmware needs.

use crate::common;

use common::{
    assert_pass, boot, check, check_bail_out, check_ran, check_summary, elf, img, scenario,
    scenario_dir,
};
use qemu_runner::default_scenario;
use qemu_runner::Directive;
use zvtest_contract::checks::NAMES;

/// Checks that skip in the default scenario, and why that is right here.
const SKIPPED_BY_DEFAULT: &[(&str, &str)] = &[
    // No current QEMU has the legacy s390-virtio device page.
    ("legacy.page", "no s390-virtio device page"),
    // Lets a 15 s watchdog expire: its own scenario (tests/hypercalls.rs).
    ("hcall.diag288.expiry", "no diag288=expire"),
    // From QEMU 11.0: no source at hand says what they must answer.
    ("hcall.diag320.query", "no expectation recorded"),
    ("hcall.diag508.query", "no expectation recorded"),
    // Needs the host to plug a LUN over QMP: tests/scsi.rs.
    ("scsi.hotplug", "no scsi-hotplug="),
    // free-page-hint=on crashes QEMU before 11 at random: tests/balloon.rs.
    ("balloon.hint", "no balloon=BUS:hint"),
    // QEMU 7.2 has no virtio-mem-ccw (left out of the scenario).
    ("mem.config", "no virtio-mem-ccw device"),
    ("mem.plug", "no virtio-mem-ccw device"),
    ("mem.resize", "no mem=...:resize"),
    // QEMU's TCG leaves a CPU stopped in a wait halted after SIGP RESTART
    // (all versions here): the check names that bug and skips.
    ("sigp.restart-in-wait", "QEMU bug"),
    // One echo device: a CPU each needs one of its own (tests/smp_stress.rs).
    ("smp.stress-net", "a CPU each needs two or more"),
];

#[test]
fn default_scenario_runs_every_check_it_can() {
    let (s, left_out) = default_scenario(&scenario_dir("default")).expect("scratch files");
    // Every device and check in one boot: 5-15 s alone, but it starts
    // among the suite's heaviest tests (and a build, on a CI host) and
    // once took 30 s there, cut off at check 101 of 132.
    let o = boot(&s.timeout(common::TIMEOUT * 3), &elf());
    assert_pass(&o);
    let names: Vec<&str> = o.tap.results.iter().map(|r| r.name.as_str()).collect();
    check(
        &o,
        o.tap.plan.as_ref().map(|p| p.count as usize) == Some(NAMES.len()) && names == NAMES,
        &format!(
            "the plan 1..{} and every regular check in order",
            NAMES.len()
        ),
    );
    if !std::path::Path::new("/dev/vhost-vsock").exists() {
        check(
            &o,
            left_out
                .iter()
                .any(|(m, why)| *m == "vhost-vsock-ccw" && why.contains("/dev/vhost-vsock")),
            &format!("vhost-vsock-ccw left out, naming /dev/vhost-vsock; left out: {left_out:?}"),
        );
    }
    let skipped: Vec<(&str, &str)> = o
        .tap
        .results
        .iter()
        .filter(|r| r.is_skip())
        .map(|r| match &r.directive {
            Some(Directive::Skip(why)) => (r.name.as_str(), why.as_str()),
            _ => (r.name.as_str(), ""),
        })
        .collect();
    for (name, why) in &skipped {
        let allowed = SKIPPED_BY_DEFAULT
            .iter()
            .any(|(n, reason)| n == name && why.contains(reason));
        check(
            &o,
            allowed,
            &format!(
                "{name} to run in the default scenario, not skip ({why}); left out: {left_out:?}"
            ),
        );
    }
    for must_run in [
        "virtio.",
        "css.",
        "hcall.diag500.notify",
        "blk.",
        "scsi.commands",
        "scsi.errors",
        "scsi.control",
        "scsi.stress",
        "net.",
    ] {
        check(
            &o,
            !skipped.iter().any(|(n, _)| n.starts_with(must_run)),
            &format!("no {must_run}* check skipped"),
        );
    }
    check(
        &o,
        o.time_to_tap.is_some_and(|t| t <= o.duration),
        "the first TAP line within the run",
    );
    check(
        &o,
        o.hotplug_done && o.qmp_commands_done,
        "the hot plug and both balloon resizes done over QMP",
    );
    // The blk disk and both LUNs written whole and verified by the host.
    check(
        &o,
        o.disks.len() == 3
            && o.disks
                .iter()
                .all(|d| d.reason.is_none() && d.expect == qemu_runner::disks::Expect::Complete),
        "three scratch disks left complete and verified after the run",
    );
}

#[test]
fn more_memory_and_cpus() {
    // The firmware compares expect-mem=512M and expect-cpus=2 with SCLP.
    let o = boot(&scenario("mem512-smp2").memory_mib(512).smp(2), &elf());
    assert_pass(&o);
    for name in ["sclp.memory", "sclp.cpus"] {
        check_ran(&o, name);
    }
}

#[test]
fn a_wrong_cpu_count_fails() {
    // The runner tells the firmware expect-cpus=1; a later -smp gives QEMU 2.
    let s = scenario("wrong-cpus")
        .extra_args(["-smp", "2"])
        .append("only=sclp.cpus");
    let o = boot(&s, &elf());
    check(&o, !o.passed(), "FAIL");
    let r = o.tap.failures().find(|r| r.name == "sclp.cpus");
    let field = |k| r.and_then(|r| r.yaml.as_ref()).and_then(|y| y.get(k));
    check(
        &o,
        field("expected") == Some("1") && field("got") == Some("2"),
        "`not ok ... - sclp.cpus` with expected 1, got 2",
    );
}

#[test]
fn raw_image() {
    let o = boot(&scenario("raw-image"), &img());
    assert_pass(&o);
    check(
        &o,
        o.tap.plan.as_ref().map(|p| p.count as usize) == Some(NAMES.len()),
        "the full plan from the raw image too",
    );
}

#[test]
fn only_selects_a_subset() {
    let o = boot(&scenario("only-boot").append("only=boot.*"), &elf());
    assert_pass(&o);
    let names: Vec<&str> = o.tap.results.iter().map(|r| r.name.as_str()).collect();
    let want: Vec<&str> = NAMES
        .iter()
        .copied()
        .filter(|n| n.starts_with("boot."))
        .collect();
    check(
        &o,
        names == want,
        &format!("exactly {want:?}, not {names:?}"),
    );
}

/// A selection that selects nothing is a Bail out naming it, never `1..0`
/// and a pass.
#[test]
fn selections_that_select_nothing_bail_out() {
    for (tag, words, named) in [
        (
            "typo",
            "only=pgm.opration",
            "only=pgm.opration selects no check",
        ),
        ("upper-case", "only=PGM", "bad value 'PGM' for only"),
        (
            "skip-typo",
            "skip=heap.strss",
            "skip=heap.strss selects no check",
        ),
        ("nothing-left", "only=pgm skip=pgm", "leave no check to run"),
    ] {
        let o = boot(&scenario(&format!("select-{tag}")).append(words), &elf());
        check(&o, !o.passed(), "FAIL");
        check_bail_out(&o, named);
        check(&o, o.tap.plan.is_none(), "no plan");
        check_summary(&o);
    }
}

#[test]
fn line_mode_console() {
    // The SCLP line-mode console, as z/VM and LPAR operators see it: the
    // firmware writes EBCDIC message events, QEMU turns them into lines
    // with its own table (code page 500).
    let o = boot(
        &scenario("line-mode-console").line_mode_console(true),
        &elf(),
    );
    assert_pass(&o);
    check(
        &o,
        o.tap.plan.as_ref().map(|p| p.count as usize) == Some(NAMES.len()),
        "the full plan",
    );
}

/// The characters QEMU's line-mode table and code page 037 disagree on
/// arrive as written: the echoed command line and the bail-out.
#[test]
fn line_mode_console_reads_right() {
    let o = boot(
        &scenario("line-mode-charset")
            .line_mode_console(true)
            .append("bogus=!|[]^"),
        &elf(),
    );
    check(&o, !o.passed(), "FAIL");
    check_bail_out(&o, "unknown option 'bogus'");
    check(
        &o,
        o.tap
            .diagnostics
            .iter()
            .any(|d| d.contains("command line: '") && d.contains("bogus=!|[]^")),
        "the command line echoed with ! | [ ] ^ intact",
    );
    check_summary(&o);
}

/// QEMU started by hand with `line` as the whole `-append` (the runner
/// refuses to pass what the image cannot hold).
fn boot_by_hand_with(tag: &str, line: &str) -> std::process::Output {
    let mut args = scenario(tag).qemu_args(&elf());
    let at = args
        .iter()
        .position(|a| a == "-append")
        .expect("the runner always passes -append");
    args[at + 1] = line.into();
    common::run_qemu_by_hand(&args)
}

/// `only=boot.vectors seed=000...01` of exactly `len` characters.
fn command_line_of(len: usize) -> String {
    let head = "only=boot.vectors seed=";
    format!("{head}{}1", "0".repeat(len - head.len() - 1))
}

/// The image tells QEMU its parameter area holds 2943 characters: such a
/// command line arrives whole, one more is QEMU's own error (such lines
/// used to be dropped in silence and the run passed with the defaults).
#[test]
fn long_command_lines_arrive_or_are_refused_by_qemu() {
    let longest = command_line_of(zvtest_contract::cmdline::AREA_SIZE - 1);
    assert_eq!(longest.len(), 2943);
    let out = boot_by_hand_with("append-2943", &longest);
    let console = String::from_utf8_lossy(&out.stdout);
    assert!(
        console.contains(&format!("# command line: '{longest}'"))
            && console.ends_with("1 passed, 0 failed, 0 skipped\n"),
        "2943 characters must arrive whole and pass: {console}"
    );
    let too_long = command_line_of(2944);
    let out = boot_by_hand_with("append-2944", &too_long);
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr)
                .contains("kernel command line exceeds maximum size: 2945 > 2944"),
        "QEMU must refuse 2944 characters itself: {out:?}"
    );
    assert!(out.stdout.is_empty(), "no report at all: {out:?}");
}

#[test]
fn too_little_storage_is_named() {
    let o = boot(&scenario("storage-5m").memory_mib(5), &elf());
    check(&o, !o.passed(), "FAIL");
    check_bail_out(&o, "5 MiB of storage is too little: zvtest needs at least");
    check(
        &o,
        o.wait_psw.map(|(_, a)| a) == Some(0x0dea_d00c),
        "the wait PSW address 0x0dead00c (too little storage)",
    );
    check_summary(&o);
}

/// 248 CPUs: QEMU without the extended-length-SCCB facility cannot answer
/// Read SCP Info (it needs 4112 bytes); the firmware says so, sizes storage
/// itself and counts CPUs with Read CPU Info.
#[test]
fn the_most_cpus_qemu_allows() {
    let o = boot(&scenario("smp-248").smp(248).append("only=sclp"), &elf());
    assert_pass(&o);
    check(
        &o,
        o.tap
            .diagnostics
            .iter()
            .any(|d| d.contains("response 0x300 (the SCCB is too short for the answer)")),
        "the SCLP response code named",
    );
    for name in ["sclp.memory", "sclp.cpus"] {
        check_ran(&o, name);
    }
}

/// A check whose work grows with stress= gets a timeout that grows with it
/// (it used to stay fixed, so a permitted stress level always failed); the
/// firmware says which timeout it gave each check.
#[test]
fn stress_scales_the_timeout() {
    let o = boot(
        &scenario("stress-timeout")
            // A base long enough for a loaded host: 300 ms (6 s scaled)
            // ran out once with two builds beside the suite.
            .append("only=heap.stress,pgm.operation stress=20 timeout=2000 verbose=2"),
        &elf(),
    );
    assert_pass(&o);
    let timeout = |check: &str| {
        o.tap.diagnostics.iter().find_map(|d| {
            d.strip_prefix(&format!("{check}: "))?
                .split(", timeout ")
                .nth(1)?
                .strip_suffix(" ms")?
                .parse::<u64>()
                .ok()
        })
    };
    check(
        &o,
        timeout("heap.stress") == Some(40000),
        "heap.stress: 20 x 2000 ms",
    );
    check(
        &o,
        timeout("pgm.operation") == Some(2000),
        "pgm.operation: 2000 ms, unscaled",
    );
}
