//! Helpers shared by the QEMU scenario tests: find the images, boot a
//! scenario, and fail with the verdict and the console log.
#![allow(dead_code)] // each test file uses its own subset

use qemu_runner::{run, Outcome, RunOptions, Scenario};
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// A scenario with the tests' default timeout.
pub fn scenario(name: &str) -> Scenario {
    Scenario::new(name).timeout(TIMEOUT)
}

/// Boots `kernel`; the console log goes to target/tmp/scenarios/<name>.log.
#[track_caller]
pub fn boot(scenario: &Scenario, kernel: &Path) -> Outcome {
    let log = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("scenarios")
        .join(format!("{}.log", scenario.name));
    let opts = RunOptions::default().log(log);
    match run(scenario, kernel, &opts) {
        Ok(o) => o,
        Err(e) => panic!("cannot boot scenario {}: {e}", scenario.name),
    }
}

/// Panics with the verdict's reasons and the console unless the run passed.
#[track_caller]
pub fn assert_pass(o: &Outcome) {
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
pub fn check(o: &Outcome, condition: bool, what: &str) {
    if !condition {
        panic!(
            "scenario {}: expected {what}\n{}",
            o.scenario,
            o.failure_report()
        );
    }
}

/// Where the firmware reports failures: the verdict's reasons (bail-out
/// reason, `not ok` lines with their message) and the failing YAML blocks.
/// Boot diagnostics such as `# heap: ...` and the echoed command line are
/// printed on every boot, so they must not satisfy a "mentions X" check.
pub fn failure_text(o: &Outcome) -> String {
    let mut text = o.verdict.reasons.join("\n");
    for r in o.tap.failures() {
        if let Some(y) = &r.yaml {
            text.push('\n');
            text.push_str(&y.lines.join("\n"));
        }
    }
    text
}

/// The firmware's last line must add up, also after a bail out.
#[track_caller]
pub fn check_summary(o: &Outcome) {
    check(
        o,
        o.tap.summary == Some(o.tap.counts()),
        "a summary line matching the results",
    );
}
