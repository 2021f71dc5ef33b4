//! Helpers shared by the QEMU scenario tests: find the images, boot a
//! scenario, and fail with the verdict and the console log.
#![allow(dead_code)] // each test file uses its own subset

pub mod junit;
pub mod models;
use qemu_runner::{run, Run, RunOptions, Scenario};
use std::path::{Path, PathBuf};
use std::time::Duration;
use zvtest_contract::virtio::ids;
use zvtest_contract::virtio::legacy_page::{LegacyDeviceSpec, LegacyPageBuilder};

/// TCG boots in about a second; two QEMUs run at once on CI's two cores.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The firmware ELF that `cargo xtask build` made.
pub fn elf() -> PathBuf {
    image_from_env("ZVTEST_ELF", "cargo xtask build")
}

/// The raw flat image that `cargo xtask image` made.
pub fn img() -> PathBuf {
    image_from_env("ZVTEST_IMG", "cargo xtask image")
}

/// Never skips: a scenario test without an image is a failure.
fn image_from_env(var: &str, how: &str) -> PathBuf {
    let hint = format!(
        "run `{how}` and set {var} to the absolute path it reports, \
         or run the whole suite with `cargo xtask test`"
    );
    let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) else {
        panic!("{var} is not set: {hint}");
    };
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "{var}={} does not exist: {hint}",
        path.display()
    );
    path
}

/// Runs the scenario's QEMU with `args` as they are (for what the runner
/// itself refuses to pass), killing it after [`TIMEOUT`].
pub fn run_qemu_by_hand(args: &[std::ffi::OsString]) -> std::process::Output {
    use std::process::{Command, Stdio};
    let qemu = Scenario::new("by-hand").qemu;
    let mut child = Command::new(&qemu)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", qemu.display()));
    let deadline = std::time::Instant::now() + TIMEOUT;
    while child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait_with_output().expect("QEMU's output")
}

/// A scenario with the tests' default timeout.
pub fn scenario(name: &str) -> Scenario {
    Scenario::new(name).timeout(TIMEOUT)
}

/// Boots `kernel`; the console log goes to target/tmp/scenarios/<name>.log,
/// the JUnit report to <name>.junit.xml beside it (see [`junit`]).
#[track_caller]
pub fn boot(scenario: &Scenario, kernel: &Path) -> Run {
    share_version(&scenario.qemu);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scenarios");
    let log = dir.join(format!("{}.log", scenario.name));
    let opts = RunOptions::default().log(log);
    let o = match run(scenario, kernel, &opts) {
        Ok(o) => o,
        Err(e) => panic!("cannot boot scenario {}: {e}", scenario.name),
    };
    let report = format!("{}{}", scenario.name, qemu_runner::junit::SUFFIX);
    junit::record(&o, dir.join(report));
    o
}

/// The QEMU's version asked once per suite run, not once per test
/// process ([`models::shared_probe`]); one that cannot be told is left to
/// the run, which fails saying why.
fn share_version(qemu: &Path) {
    let name: String = format!("qemu-version-{}", qemu.display())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let lines = models::shared_probe(&name, || {
        qemu_runner::version::detect(qemu)
            .map(|v| vec![v.full()])
            .unwrap_or_default()
    });
    if let Some(v) = lines.first().and_then(|l| l.parse().ok()) {
        qemu_runner::version::remember(qemu, v);
    }
}

/// Panics with the verdict's reasons and the console unless the run passed.
#[track_caller]
pub fn assert_pass(o: &Run) {
    if !o.passed() {
        panic!(
            "scenario {} should PASS\n{}",
            o.scenario,
            o.failure_report()
        );
    }
}

/// Like `assert!`, but the message carries the whole outcome.
#[track_caller]
pub fn check(o: &Run, condition: bool, what: &str) {
    if !condition {
        panic!(
            "scenario {}: expected {what}\n{}",
            o.scenario,
            o.failure_report()
        );
    }
}

/// `ok` for check `name`, and not a skip.
#[track_caller]
pub fn check_ran(o: &Run, name: &str) {
    check(
        o,
        o.tap.result(name).is_some_and(|r| r.ok && !r.is_skip()),
        &format!("`ok ... - {name}` (not skipped)"),
    );
}

/// A `Bail out!` whose reason contains `says`.
#[track_caller]
pub fn check_bail_out(o: &Run, says: &str) {
    check(
        o,
        o.tap.bail_out.as_deref().is_some_and(|b| b.contains(says)),
        &format!("a Bail out saying {says:?}, not {:?}", o.tap.bail_out),
    );
}

/// Where the firmware reports failures: the verdict's reasons (bail-out
/// reason, `not ok` lines with their message) and the failing YAML blocks.
/// Boot diagnostics such as `# heap: ...` and the echoed command line are
/// printed on every boot, so they must not satisfy a "mentions X" check.
pub fn failure_text(o: &Run) -> String {
    let mut text = o.verdict.reasons.join("\n");
    for r in o.tap.failures() {
        if let Some(y) = &r.yaml {
            text.push('\n');
            text.push_str(&y.lines.join("\n"));
        }
    }
    text
}

/// A failing verdict, `check_name` (when given) among the failed checks,
/// and the failure text saying each of `says`.
#[track_caller]
pub fn fails_with<'a>(o: &Run, check_name: impl Into<Option<&'a str>>, says: &[&str]) {
    check(o, !o.passed(), "a failing verdict");
    if let Some(c) = check_name.into() {
        check(
            o,
            o.tap.result(c).is_some_and(|r| !r.ok),
            &format!("{c} to fail"),
        );
    }
    let text = failure_text(o);
    for s in says {
        check(
            o,
            text.contains(s),
            &format!("the failure to say {s:?}:\n{text}"),
        );
    }
}

/// The firmware's last line must add up, also after a bail out.
#[track_caller]
pub fn check_summary(o: &Run) {
    check(
        o,
        o.tap.summary == Some(o.tap.counts()),
        "a summary line matching the results",
    );
}

/// Where a scenario's files go: target/tmp/scenarios/<name>/.
pub fn scenario_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("scenarios")
        .join(name);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("cannot create {}: {e}", d.display()));
    d
}

/// Where the synthetic legacy device page goes with the default 128 MiB:
/// above the firmware's heap (it ends at RAM - 4 MiB = 0x7c00000) and below
/// QEMU's s390-ccw BIOS (RAM - 2 MiB on 7.2, RAM - 3 MiB on 10.0).
pub const LEGACY_PAGE_ADDR: u64 = 0x7c8_0000;

/// The firmware's name for a device type: the virtio short name, or
/// `virtio-N` for an id the table does not name.
pub fn virtio_name(device_type: u8) -> String {
    ids::name(device_type.into()).map_or_else(|| format!("virtio-{device_type}"), String::from)
}

/// Builds a legacy s390-virtio device page holding `devices`, writes it to
/// the scenario's directory, and has the scenario load it at
/// [`LEGACY_PAGE_ADDR`] and tell the firmware `ram-end=` and
/// `legacy-devices=` (name:num_vq in page order, or none).
#[track_caller]
pub fn with_legacy_page(scenario: Scenario, devices: &[LegacyDeviceSpec]) -> Scenario {
    let mut builder = LegacyPageBuilder::default();
    for d in devices {
        builder.push(d.clone());
    }
    let page = builder
        .build()
        .unwrap_or_else(|e| panic!("legacy page for {}: {e:?}", scenario.name));
    let file = scenario_dir(&scenario.name).join("legacy-page.bin");
    std::fs::write(&file, &page).unwrap_or_else(|e| panic!("cannot write {}: {e}", file.display()));
    let names: Vec<(String, u32)> = devices
        .iter()
        .map(|d| (virtio_name(d.device_type), d.queues.len() as u32))
        .collect();
    let list: Vec<(&str, u32)> = names.iter().map(|(n, q)| (n.as_str(), *q)).collect();
    scenario.legacy_page(file, LEGACY_PAGE_ADDR, &list)
}

/// The first console line where the firmware says a device stored
/// outside the buffers it was given: a changed canary around a stress
/// request's chain, a serial chunk or rng-loop's buffer.
pub fn stray_write(console: &str) -> Option<&str> {
    use zvtest_contract::virtio::WROTE_OUTSIDE;
    console.lines().find(|l| l.contains(WROTE_OUTSIDE))
}

/// No canary around the buffers a device was given was hit: a fault
/// injected into QEMU's device made it fail requests, never store
/// outside them.
#[track_caller]
pub fn check_no_stray_writes(o: &Run) {
    let console = o.console();
    let hit = stray_write(&console);
    check(
        o,
        hit.is_none(),
        &format!("no store outside the buffers a device was given, not {hit:?}"),
    );
}

#[test]
fn a_stray_write_line_is_found() {
    let console = "ok 1 - blk.stress\nnot ok 2 - scsi.stress\n  got: 'request 17: the device wrote outside the chain's buffers: the canary after the chain byte 3: expected 0x5c, got 0x00'\n";
    assert_eq!(
        stray_write(console),
        Some("  got: 'request 17: the device wrote outside the chain's buffers: the canary after the chain byte 3: expected 0x5c, got 0x00'")
    );
    assert_eq!(stray_write("ok 1 - blk.stress\n"), None);
}
