//! The JUnit reports validated against our schema (tests/junit.xsd) with
//! xmllint, as a CI system would read them: boots of a fake QEMU (a shell
//! script printing the console) that pass, fail with expected/got, skip,
//! bail out and print garbage; their merge; the binary's `--junit`; one
//! real boot (ZVTEST_ELF, as `cargo xtask test` sets it). And the check
//! itself fails on documents that break the schema.
//!
//! xmllint is Debian's libxml2-utils (`cargo xtask test` installs it); a
//! machine without it fails here, it never skips.

use qemu_runner::junit::{self, TestCaseStatus, TestSuite};
use qemu_runner::{run, Exit, Run, RunOptions, Scenario};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn dir(test: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("junit")
        .join(test);
    fs::create_dir_all(&d).unwrap();
    d
}

/// An executable shell script standing in for qemu-system-s390x.
fn fake_qemu(test: &str, body: &str) -> PathBuf {
    let path = dir(test).join("qemu");
    // Renamed into place: executing a file still open for writing fails.
    let tmp = path.with_extension("tmp");
    fs::write(
        &tmp,
        format!(
            "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'QEMU emulator version 10.0.2'; \
             exit 0; fi\n{body}\n"
        ),
    )
    .unwrap();
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).unwrap();
    fs::rename(&tmp, &path).unwrap();
    path
}

fn kernel(test: &str) -> PathBuf {
    let k = dir(test).join("zvtest.elf");
    fs::write(&k, b"not an ELF").unwrap();
    k
}

fn print(text: &str) -> String {
    format!("cat <<'EOF'\n{text}\nEOF")
}

/// Boots a fake QEMU running `script`, writes its report to
/// `<test>/<test>.junit.xml` and validates it; returns the run and suite.
fn boot(test: &str, script: &str) -> (Run, TestSuite) {
    let qemu = fake_qemu(test, script);
    let scenario = Scenario::new(test)
        .qemu(qemu)
        .timeout(Duration::from_secs(20));
    let opts = RunOptions::default().log(dir(test).join(format!("{test}.log")));
    let o = run(&scenario, &kernel(test), &opts).expect("run");
    let path = report_path(test);
    junit::write_run(&o, &path).unwrap();
    valid(&path);
    let mut back = junit::read(&path).unwrap();
    assert_eq!(back.test_suites.len(), 1);
    (o, back.test_suites.remove(0))
}

fn report_path(test: &str) -> PathBuf {
    dir(test).join(format!("{test}{}", junit::SUFFIX))
}

const SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/junit.xsd");

/// xmllint's judgement of `file` against our schema.
fn xmllint(file: &Path) -> Result<(), String> {
    let out = Command::new("xmllint")
        .args(["--noout", "--schema", SCHEMA])
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run xmllint ({e}): install Debian's libxml2-utils \
                 (`cargo xtask test` does)"
            )
        });
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        Ok(())
    } else {
        Err(said)
    }
}

#[track_caller]
fn valid(file: &Path) {
    if let Err(e) = xmllint(file) {
        panic!(
            "{} is not valid JUnit: {e}\n{}",
            file.display(),
            fs::read_to_string(file).unwrap_or_default()
        );
    }
}

fn case<'s>(s: &'s TestSuite, name: &str) -> &'s junit::TestCase {
    s.test_cases
        .iter()
        .find(|c| c.name.as_str() == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

fn failure_of(s: &TestSuite, name: &str) -> (String, String) {
    match &case(s, name).status {
        TestCaseStatus::NonSuccess {
            message,
            description,
            ..
        } => (
            message.as_deref().unwrap_or("").into(),
            description.as_deref().unwrap_or("").into(),
        ),
        other => panic!("{name}: {other:?}"),
    }
}

const PASSING: &str = "TAP version 14
# zvtest 0.1.0
1..3
ok 1 - boot.vectors
# boot.vectors: 12000 us, heap in use 0 bytes, timeout 1000 ms
ok 2 - boot.memory
ok 3 - legacy.page # SKIP no device page
2 passed, 0 failed, 1 skipped";

#[test]
fn a_passing_boot_with_a_skip() {
    let (o, s) = boot("pass", &print(PASSING));
    assert!(o.passed(), "{}", o.failure_report());
    assert_eq!((s.tests, s.failures, s.errors, s.skipped), (4, 0, 0, 1));
    assert!(matches!(
        &case(&s, "legacy.page").status,
        TestCaseStatus::Skipped { message: Some(m), .. } if m.as_str() == "no device page"
    ));
    assert_eq!(
        case(&s, "boot.vectors").time,
        Some(Duration::from_millis(12))
    );
    let props: Vec<(&str, &str)> = s
        .properties
        .iter()
        .map(|p| (p.name.as_str(), p.value.as_str()))
        .collect();
    assert!(props.contains(&("qemu.version", "10.0")), "{props:?}");
    assert!(props
        .iter()
        .any(|(k, v)| *k == "qemu.command" && v.contains("-kernel")));
    assert!(props.contains(&(
        "firmware.args",
        "expect-mem=128M expect-cpus=1 qemu-version=10.0"
    )));
    assert!(s
        .system_out
        .as_deref()
        .unwrap()
        .contains("ok 2 - boot.memory"));
}

#[test]
fn a_failing_check_with_expected_and_got() {
    let tap = "TAP version 14
1..2
ok 1 - boot.vectors
# blk fe.0.0001: sector 8
not ok 2 - blk.read
  ---
  message: \"sector 8 differs at offset 17 (seed 42)\"
  expected: \"0x5a\"
  got: \"0xa5\"
  ...
1 passed, 1 failed, 0 skipped";
    // As QEMU ends a failing run: the verdict in the wait PSW on stderr.
    let psw = "echo 'Guest crashed on cpu 0: disabled-wait' >&2\n\
               echo 'PSW: 0x0002000180000000 0x000000000bad0002' >&2\nexit 1";
    let (o, s) = boot("fail", &format!("{}\n{psw}", print(tap)));
    assert!(!o.passed());
    assert_eq!(o.exit, Exit::Code(1));
    assert_eq!((s.tests, s.failures), (3, 2));
    let (message, text) = failure_of(&s, "blk.read");
    assert_eq!(message, "sector 8 differs at offset 17 (seed 42)");
    assert!(text.contains("expected: \"0x5a\"\ngot: \"0xa5\""), "{text}");
    let out = case(&s, "blk.read").system_out.as_deref().unwrap();
    // QEMU's stderr is another pipe: its lines may land anywhere among these.
    let at = |l: &str| out.lines().position(|x| x == l);
    let (diag, result) = (at("# blk fe.0.0001: sector 8"), at("not ok 2 - blk.read"));
    assert!(diag.is_some() && diag < result, "{out}");
    let (message, _) = failure_of(&s, "fail.verdict");
    assert_eq!(message, "1 check failed (QEMU exit status 1)");
}

#[test]
fn a_bail_out_and_a_timeout_fail_the_verdict() {
    let tap = "TAP version 14
1..2
ok 1 - boot.vectors
Bail out! unexpected program interrupt
1 passed, 0 failed, 0 skipped";
    let (_, s) = boot("bail", &format!("{}\nexit 1", print(tap)));
    assert_eq!(s.failures, 1, "only the verdict fails");
    let (_, text) = failure_of(&s, "bail.verdict");
    assert!(
        text.contains("bail out: unexpected program interrupt"),
        "{text}"
    );
    // Every check passed so far; the firmware hangs and is killed.
    let qemu = fake_qemu(
        "hang",
        "echo 'TAP version 14'\necho '1..2'\necho 'ok 1 - a'\nexec sleep 60",
    );
    let scenario = Scenario::new("hang")
        .qemu(qemu)
        .timeout(Duration::from_millis(800));
    let o = run(
        &scenario,
        &kernel("hang"),
        &RunOptions::default().log(dir("hang").join("hang.log")),
    )
    .unwrap();
    junit::write_run(&o, &report_path("hang")).unwrap();
    valid(&report_path("hang"));
    let s = junit::read(&report_path("hang"))
        .unwrap()
        .test_suites
        .remove(0);
    assert_eq!((s.tests, s.failures), (2, 1));
    assert!(failure_of(&s, "hang.verdict")
        .0
        .starts_with("timed out after"));
}

#[test]
fn a_console_of_garbage_still_gives_valid_xml() {
    // Every C0 control, DEL, an escape sequence, invalid UTF-8, U+FFFE and
    // U+FFFF (EF BF BE/BF), inside a check's name, a message and the console.
    let script = "printf 'TAP version 14\\n1..2\\n'
printf 'ok 1 - bad\\001\\002\\033[31mname\\177\\n'
printf 'not ok 2 - worse\\010name\\n  ---\\n  message: \"got \\000\\013\\014 and \\357\\277\\276\\357\\277\\277\"\\n  ...\\n'
printf '\\033[2J\\001\\002\\003\\004\\005\\006\\007\\016\\017\\020\\021\\022\\023\\024\\025\\026\\027\\030\\031\\032\\034\\035\\036\\037\\n'
printf '\\377\\376 not UTF-8 \\300\\n'
printf '1 passed, 1 failed, 0 skipped\\n'
exit 1";
    let (o, s) = boot("garbage", script);
    assert!(!o.passed());
    assert_eq!((s.tests, s.failures), (3, 2));
    // What was in the console is still there to read, visibly.
    let names: Vec<&str> = s.test_cases.iter().map(|c| c.name.as_str()).collect();
    assert!(
        names.contains(&"bad\\x01\\x02\\x1b[31mname\u{7f}"),
        "{names:?}"
    );
    let xml = fs::read_to_string(report_path("garbage")).unwrap();
    assert!(xml.contains("\\u{fffe}\\u{ffff}"), "{xml}");
    assert!(xml.contains("\\x1b[2J\\x01\\x02"), "{xml}");
}

#[test]
fn the_merge_of_several_reports() {
    let d = dir("merge");
    for f in junit::reports_in(&d).unwrap() {
        fs::remove_file(f).unwrap();
    }
    let (_, pass) = boot("m-pass", &print(PASSING));
    let (_, fail) = boot(
        "m-fail",
        &format!(
            "{}\nexit 1",
            print("TAP version 14\n1..1\nnot ok 1 - x\n0 passed, 1 failed, 0 skipped")
        ),
    );
    fs::copy(report_path("m-pass"), d.join("m-pass.junit.xml")).unwrap();
    fs::copy(report_path("m-fail"), d.join("m-fail.junit.xml")).unwrap();
    let out = d.join("all.xml");
    assert_eq!(junit::merge(&d, &out), Ok((2, pass.tests + fail.tests, 2)));
    valid(&out);
    let all = junit::read(&out).unwrap();
    let names: Vec<&str> = all.test_suites.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["m-fail", "m-pass"]);
    assert_eq!((all.tests, all.failures), (6, 2));
}

#[test]
fn the_binary_writes_its_report() {
    let qemu = fake_qemu("bin", &print(PASSING));
    let path = report_path("bin");
    let _ = fs::remove_file(&path);
    let log = dir("bin").join("bin.log");
    let out = Command::new(env!("CARGO_BIN_EXE_qemu-runner"))
        .arg("--qemu")
        .arg(&qemu)
        .arg("--log")
        .arg(&log)
        .arg("--junit")
        .arg(&path)
        .arg("--quiet")
        .arg(kernel("bin"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("JUnit report: "), "{err}");
    valid(&path);
    let s = junit::read(&path).unwrap().test_suites.remove(0);
    assert_eq!(s.name.as_str(), "zvtest.elf");
    assert_eq!((s.tests, s.failures), (4, 0));
    // A report it cannot write fails the run.
    let out = Command::new(env!("CARGO_BIN_EXE_qemu-runner"))
        .arg("--qemu")
        .arg(&qemu)
        .arg("--log")
        .arg(&log)
        .arg("--junit")
        .arg(log.join("no-such-dir/x.xml"))
        .arg("--quiet")
        .arg(kernel("bin"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot"), "{err}");
}

/// The check can fail: documents that break the schema, or XML itself,
/// are rejected, each for its own reason.
#[test]
fn the_schema_rejects_what_ci_cannot_read() {
    let (_, _) = boot("good", &print(PASSING));
    let good = fs::read_to_string(report_path("good")).unwrap();
    let d = dir("bad");
    let broken = [
        (
            "no-classname",
            good.replacen(" classname=\"zvtest.good\"", "", 1),
            "'classname' is required",
        ),
        (
            "no-tests",
            good.replacen("name=\"good\" tests=\"4\"", "name=\"good\"", 1),
            "'tests' is required",
        ),
        (
            "negative-time",
            good.replacen(" time=\"", " time=\"-", 1),
            "time",
        ),
        (
            "failure-outside-a-case",
            good.replacen("<testcase ", "<failure message=\"x\"/><testcase ", 1),
            "failure",
        ),
        (
            "skipped-and-failure",
            good.replacen("<skipped ", "<failure message=\"x\"/><skipped ", 1),
            "skipped",
        ),
        (
            "raw-control-character",
            good.replacen("boot.memory", "boot.\u{1}memory", 1),
            "",
        ),
        // What quick-junit lets through and `junit::safe` writes out.
        (
            "noncharacter",
            good.replacen("boot.memory", "boot.\u{fffe}memory", 1),
            "",
        ),
        (
            "not-junit",
            "<testrun><case/></testrun>".to_string(),
            "testrun",
        ),
    ];
    for (name, text, says) in broken {
        assert_ne!(text, good, "{name}: the fixture changed nothing");
        let file = d.join(format!("{name}.xml"));
        fs::write(&file, &text).unwrap();
        match xmllint(&file) {
            Ok(()) => panic!("{name} was accepted:\n{text}"),
            Err(e) => assert!(e.contains(says), "{name}: {e}"),
        }
    }
}

/// One real boot of the firmware (as `cargo xtask test` builds it): its
/// report is valid and names every check the firmware ran.
#[test]
fn a_real_boot() {
    let hint = "run `cargo xtask build` and set ZVTEST_ELF to the path it reports, \
                or run the whole suite with `cargo xtask test`";
    let Some(elf) = std::env::var_os("ZVTEST_ELF").filter(|p| !p.is_empty()) else {
        panic!("ZVTEST_ELF is not set: {hint}");
    };
    let scenario = Scenario::new("junit-real")
        .timeout(Duration::from_secs(60))
        .append("only=boot.*");
    let opts = RunOptions::default().log(dir("real").join("junit-real.log"));
    let o = run(&scenario, Path::new(&elf), &opts).unwrap();
    assert!(o.passed(), "{}", o.failure_report());
    let path = report_path("real");
    junit::write_run(&o, &path).unwrap();
    valid(&path);
    let s = junit::read(&path).unwrap().test_suites.remove(0);
    assert_eq!(s.tests, o.tap.results.len() + 1);
    assert_eq!(s.failures, 0);
    for r in &o.tap.results {
        case(&s, &r.name);
    }
}
