//! The JUnit report every scenario test leaves beside its console log
//! (tests/common/junit.rs), settled by what the test made of its boot:
//! each case boots in a thread of its own, named as a test's would be, so
//! that the thread's end settles the report as a test's end does.

use crate::common;

use common::{boot, elf, scenario};
use qemu_runner::junit::{self, TestCaseStatus, TestSuite};
use std::path::{Path, PathBuf};
use std::process::Command;

fn report(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("scenarios")
        .join(format!("{name}{}", junit::SUFFIX))
}

/// Boots `name` (the firmware's words `args`) in a thread called `test`
/// that then panics or not; returns the settled, validated report.
fn boot_in_thread(test: &str, name: &'static str, args: &'static str, panics: bool) -> TestSuite {
    let _ = std::fs::remove_file(report(name));
    let ended = std::thread::Builder::new()
        .name(test.into())
        .spawn(move || {
            let o = boot(&scenario(name).append(args), &elf());
            assert!(report(name).is_file(), "written as the boot ended");
            if panics {
                panic!("a test failing after its boot (this panic is wanted)");
            }
            o.passed()
        })
        .unwrap()
        .join();
    assert_eq!(ended.is_err(), panics);
    let path = report(name);
    let out = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../qemu-runner/tests/junit.xsd"))
        .arg(&path)
        .output()
        .expect("xmllint (Debian's libxml2-utils; cargo xtask test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut r = junit::read(&path).unwrap();
    if panics {
        // A fixture of a failing test, not a failure of the suite: it must
        // not reach the run's merged report (target/junit.xml).
        std::fs::remove_file(&path).unwrap();
    }
    assert_eq!(r.test_suites.len(), 1);
    r.test_suites.remove(0)
}

fn status<'s>(s: &'s TestSuite, name: &str) -> &'s TestCaseStatus {
    &s.test_cases
        .iter()
        .find(|c| c.name.as_str() == name)
        .unwrap_or_else(|| panic!("no case {name} in {s:?}"))
        .status
}

#[test]
fn a_passing_boot_stays_green() {
    let s = boot_in_thread("pass_test", "junit-pass", "only=boot.vectors", false);
    assert_eq!((s.tests, s.failures, s.skipped), (2, 0, 0));
    assert!(matches!(
        status(&s, "boot.vectors"),
        TestCaseStatus::Success { .. }
    ));
    assert!(!s
        .properties
        .iter()
        .any(|p| p.name.as_str() == "expected-verdict"));
}

#[test]
fn a_failure_the_test_wanted_is_an_expected_failure() {
    let s = boot_in_thread(
        "xfail_test",
        "junit-xfail",
        "only=boot.vectors inject=fail",
        false,
    );
    assert_eq!((s.tests, s.failures, s.skipped), (3, 0, 2));
    match status(&s, "inject.fail") {
        TestCaseStatus::Skipped {
            message,
            description,
            ..
        } => {
            let m = message.as_deref().unwrap();
            assert!(
                m.starts_with("expected failure (xfail_test wants it): failure injected"),
                "{m}"
            );
            assert!(description.as_deref().unwrap().contains("got: \"fail\""));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        status(&s, "junit-xfail.verdict"),
        TestCaseStatus::Skipped { .. }
    ));
}

#[test]
fn a_test_that_failed_after_its_boot_fails_the_report() {
    // A passing boot, then the test fails: not green.
    let s = boot_in_thread(
        "failing_test",
        "junit-test-failed",
        "only=boot.vectors",
        true,
    );
    assert_eq!((s.tests, s.failures), (3, 1));
    match status(&s, "junit-test-failed.test") {
        TestCaseStatus::NonSuccess { message, .. } => assert_eq!(
            message.as_deref(),
            Some("the scenario test failing_test failed after this boot")
        ),
        other => panic!("{other:?}"),
    }
    // A failing boot the test did not want keeps its failures.
    let s = boot_in_thread(
        "failing_test",
        "junit-test-failed-too",
        "only=boot.vectors inject=fail",
        true,
    );
    assert_eq!((s.tests, s.failures, s.skipped), (4, 3, 0));
}
