//! JUnit XML for CI systems (GitLab, Jenkins, GitHub test reporters): one
//! `testsuite` per boot, named after the scenario, with one `testcase` per
//! firmware check and one for the host's verdict, so that a failing verdict
//! is never a green report.
//!
//! - `ok` is a passing case; `ok ... # SKIP why` is `skipped` with the reason;
//!   `not ok` is a `failure` whose message is the first line of why and
//!   whose text is the YAML block the firmware printed under it
//!   (message, expected, got), with the console lines of that check as the
//!   case's `system-out`.
//! - `<scenario>.verdict` passes exactly when the run's verdict does; when it
//!   fails its message is the telling host-side reason (a bail out, a
//!   timeout, an incomplete plan, a peer's or a disk's reason, a wait PSW
//!   that disagrees; the exit status or the count of failed checks when
//!   there is nothing else) and its text every reason.
//! - A check's time is the one the firmware printed (`# <check>: <N> us`, at
//!   `verbose=2`), else none; the suite's time is boot to verdict.
//! - The suite's properties: the QEMU version, the QEMU command line, the
//!   firmware's command line, the exit, the verdict, the time to the first
//!   TAP line, the console log's path; its `system-out` is the console (at
//!   most [`MAX_CONSOLE`] bytes).
//! - Expected failures: [`settle`] (by the scenario tests) turns the
//!   failures of a run its test wanted to fail into skipped "expected
//!   failure" cases, and adds a failure for a test that failed after its
//!   boot.
//!
//! Every text is made XML-safe here: characters XML 1.0 cannot carry (C0
//! controls but tab, newline and carriage return; U+FFFE, U+FFFF) and the
//! escape character are written as `\xNN` / `\u{NNNN}`, so a console full
//! of garbage still gives a document a CI system reads.
//!
//! [`merge`] gathers the per-scenario files of a test run into one
//! `testsuites` document ([`merge_files`]: a given list, e.g. nextest's
//! report with ours).

use crate::assess::{Exit, Verdict};
use crate::run::Run;
use crate::tap::{Directive, TapReport, TestResult};
use quick_junit::{NonSuccessKind, Property};
/// The document's types, for callers that change a suite.
pub use quick_junit::{Report, TestCase, TestCaseStatus, TestSuite};
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The name of every report this module writes (`<testsuites name=...>`).
pub const REPORT_NAME: &str = "zvtest";
/// What a per-scenario report's file name ends with; [`merge`] takes these.
pub const SUFFIX: &str = ".junit.xml";
/// The console attached to a suite is cut to this many bytes (its start
/// and its end, where the summary is).
pub const MAX_CONSOLE: usize = 1 << 20;
/// The end of the console attached to a failing verdict case.
pub const VERDICT_CONSOLE: usize = 16 * 1024;
/// What the console lines of one check attached to its failure are cut to.
const CASE_CONSOLE: usize = 16 * 1024;

/// One boot, as the report needs it (see [`Boot::of_run`]).
#[derive(Debug, Clone)]
pub struct Boot<'a> {
    pub scenario: &'a str,
    /// `qemu-version` as told to the firmware or detected, if known.
    pub qemu_version: Option<String>,
    /// The QEMU command line, shell-quoted.
    pub command: String,
    /// The firmware's command line (QEMU's `-append`), if any.
    pub firmware_args: Option<String>,
    /// When QEMU started.
    pub started: Option<SystemTime>,
    /// Boot to verdict.
    pub duration: Duration,
    pub time_to_tap: Option<Duration>,
    pub exit: Exit,
    pub tap: &'a TapReport,
    pub verdict: &'a Verdict,
    /// The console log as the runner kept it.
    pub console: &'a str,
    pub log_path: Option<&'a Path>,
}

impl<'a> Boot<'a> {
    /// A finished run and its console (from [`Run::console`]).
    pub fn of_run(run: &'a Run, console: &'a str) -> Self {
        Boot {
            scenario: &run.scenario,
            qemu_version: run.qemu_version.map(|v| v.to_string()),
            command: run.command_line(),
            firmware_args: run
                .command
                .iter()
                .position(|a| a == "-append")
                .and_then(|i| run.command.get(i + 1))
                .cloned(),
            started: SystemTime::now().checked_sub(run.duration),
            duration: run.duration,
            time_to_tap: run.time_to_tap,
            exit: run.exit,
            tap: &run.tap,
            verdict: &run.verdict,
            console,
            log_path: Some(&run.log_path),
        }
    }
}

/// The suite of a finished run (reads its console log).
pub fn of_run(run: &Run) -> TestSuite {
    let console = run.console();
    suite(&Boot::of_run(run, &console))
}

/// Writes the report of a finished run to `path` (one suite).
pub fn write_run(run: &Run, path: &Path) -> Result<(), String> {
    write(path, [of_run(run)])
}

/// The class name of a scenario's cases: `zvtest.<scenario>`.
pub fn classname(scenario: &str) -> String {
    format!("{REPORT_NAME}.{scenario}")
}

/// The name of a scenario's verdict case: `<scenario>.verdict`.
pub fn verdict_case(scenario: &str) -> String {
    format!("{scenario}.verdict")
}

/// One boot's `testsuite`.
pub fn suite(b: &Boot) -> TestSuite {
    let class = safe(&classname(b.scenario));
    let mut s = TestSuite::new(safe(b.scenario));
    s.set_time(b.duration);
    if let Some(t) = b.started {
        let t: chrono::DateTime<chrono::Utc> = t.into();
        s.set_timestamp(t.fixed_offset());
    }
    let mut props = vec![
        (
            "qemu.version",
            b.qemu_version.clone().unwrap_or_else(|| "unknown".into()),
        ),
        ("qemu.command", b.command.clone()),
        ("firmware.args", b.firmware_args.clone().unwrap_or_default()),
        ("exit", b.exit.to_string()),
        ("verdict", b.verdict.to_string()),
        ("duration", format!("{:.3} s", b.duration.as_secs_f64())),
    ];
    if let Some(t) = b.time_to_tap {
        props.push(("time-to-tap", format!("{:.3} s", t.as_secs_f64())));
    }
    if let Some(p) = b.log_path {
        props.push(("console-log", p.display().to_string()));
    }
    props.push(("tap.counts", b.tap.counts().to_string()));
    s.add_properties(props.into_iter().map(|(k, v)| Property::new(k, safe(&v))));

    let times = check_times(b.tap);
    let segments = Segments::of(b.console);
    for (i, r) in b.tap.results.iter().enumerate() {
        let mut case = check_case(r, i);
        case.set_classname(class.clone());
        if let Some(t) = times.get(r.name.as_str()) {
            case.set_time(*t);
        }
        if !r.ok {
            if let Some(lines) = segments.of_result(i, r) {
                case.set_system_out(text(&cut_end(&lines, CASE_CONSOLE)));
            }
        }
        s.add_test_case(case);
    }
    if b.tap.results.is_empty() {
        // `1..0 # SKIP why`: nothing was selected, and the report says why.
        let plan = b.tap.plan.as_ref().filter(|p| p.count == 0);
        if let Some(why) = plan.and_then(|p| p.comment.as_deref()) {
            let mut status = TestCaseStatus::skipped();
            status.set_message(safe(why.strip_prefix("SKIP").unwrap_or(why).trim()));
            let mut case = TestCase::new(safe(&format!("{}.plan", b.scenario)), status);
            case.set_classname(class.clone());
            s.add_test_case(case);
        }
    }
    let mut verdict = verdict_test_case(b);
    verdict.set_classname(class);
    s.add_test_case(verdict);
    s.set_system_out(text(&cut_middle(b.console, MAX_CONSOLE)));
    s
}

/// The case of one firmware result (the `i`-th kept).
fn check_case(r: &TestResult, i: usize) -> TestCase {
    let name = if r.name.is_empty() {
        format!("#{}", r.number.map_or(i as u64 + 1, u64::from))
    } else {
        r.name.clone()
    };
    let status = if r.ok {
        match &r.directive {
            Some(Directive::Skip(why)) => {
                let mut st = TestCaseStatus::skipped();
                st.set_message(safe(if why.is_empty() { "SKIP" } else { why }));
                st
            }
            _ => TestCaseStatus::success(),
        }
    } else {
        let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
        let yaml = r.yaml.as_ref();
        let message = yaml
            .and_then(|y| y.get("message"))
            .and_then(|m| m.lines().next())
            .filter(|m| !m.trim().is_empty())
            .map_or_else(|| r.describe(), str::to_string);
        st.set_message(safe(&message));
        st.set_type("not ok");
        let mut text = match yaml {
            Some(y) => y.lines.join("\n"),
            None => r.describe(),
        };
        if yaml.is_some_and(|y| !y.closed) {
            text.push_str("\n(the YAML block was not closed)");
        }
        if let Some(Directive::Todo(why)) = &r.directive {
            text.push_str(&format!("\n(TODO {why}; a failure all the same)"));
        }
        st.set_description(safe(&text));
        st
    };
    TestCase::new(safe(&name), status)
}

/// `<scenario>.verdict`: passes with the verdict; else a failure naming
/// the first host-side reason, every reason in its text.
fn verdict_test_case(b: &Boot) -> TestCase {
    let name = safe(&verdict_case(b.scenario));
    if b.verdict.is_pass() {
        let mut c = TestCase::new(name, TestCaseStatus::success());
        c.set_time(b.duration);
        return c;
    }
    // The failed checks have their own cases; the message names what only
    // the verdict says: a bail out first, then anything but the exit
    // status (which follows from the rest), else the count of failures.
    let checks: HashSet<String> = b.tap.failures().map(TestResult::describe).collect();
    let host: Vec<&String> = b
        .verdict
        .reasons
        .iter()
        .filter(|r| !checks.contains(*r))
        .collect();
    let telling = host
        .iter()
        .find(|r| r.starts_with("bail out"))
        .or_else(|| host.iter().find(|r| !r.starts_with("QEMU exit status ")));
    let failed = b.tap.tally.failed;
    let message = match (telling, host.first()) {
        (Some(r), _) => r.to_string(),
        (None, exit) if failed > 0 => format!(
            "{failed} check{} failed{}",
            if failed == 1 { "" } else { "s" },
            exit.map_or_else(String::new, |e| format!(" ({e})"))
        ),
        (None, Some(exit)) => exit.to_string(),
        (None, None) => b.verdict.to_string(),
    };
    let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
    st.set_message(safe(&message));
    st.set_type("verdict");
    st.set_description(safe(&b.verdict.reasons.join("\n")));
    let mut c = TestCase::new(name, st);
    c.set_time(b.duration);
    c.set_system_out(text(&cut_end(b.console, VERDICT_CONSOLE)));
    c
}

/// The per-check times the firmware printed: `# <check>: <N> us[, ...]`.
fn check_times(tap: &TapReport) -> BTreeMap<&str, Duration> {
    let mut out = BTreeMap::new();
    for d in &tap.diagnostics {
        let Some((name, rest)) = d.split_once(": ") else {
            continue;
        };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let tail = &rest[digits..];
        if digits == 0 || !(tail == " us" || tail.starts_with(" us,")) {
            continue;
        }
        if let Ok(us) = rest[..digits].parse::<u64>() {
            out.entry(name).or_insert(Duration::from_micros(us));
        }
    }
    out
}

/// The console cut into the lines of each result: those since the end of
/// the previous result's block, its own line and its YAML block.
struct Segments<'c> {
    /// (the result line, the segment), in console order.
    parts: Vec<(&'c str, String)>,
}

impl<'c> Segments<'c> {
    fn of(console: &'c str) -> Self {
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut open: Option<&str> = None;
        for line in console.lines() {
            if let Some(head) = open {
                if line.starts_with("  ") {
                    current.push_str(line);
                    current.push('\n');
                    continue;
                }
                parts.push((head, std::mem::take(&mut current)));
                open = None;
            }
            current.push_str(line);
            current.push('\n');
            if line.starts_with("ok ") || line.starts_with("not ok ") {
                open = Some(line);
            }
        }
        if let Some(head) = open {
            parts.push((head, current));
        }
        Segments { parts }
    }

    /// The segment of the `i`-th kept result, if the console's `i`-th
    /// result line is that result's (the parser and this split agree).
    fn of_result(&self, i: usize, r: &TestResult) -> Option<String> {
        let (head, lines) = self.parts.get(i)?;
        let word = if r.ok { "ok " } else { "not ok " };
        (head.starts_with(word) && head.contains(r.name.as_str())).then(|| lines.clone())
    }
}

/// Text XML 1.0 can carry: the characters it cannot (and the escape
/// character, whose sequences would be dropped) written as `\xNN` or
/// `\u{NNNN}`.
pub fn safe(s: &str) -> String {
    let bad = |c: char| {
        matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}')
            || c == '\u{fffe}'
            || c == '\u{ffff}'
    };
    if !s.chars().any(bad) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if !bad(c) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:04x}}}", c as u32));
        }
    }
    out
}

/// A text node: [`safe`], without the blank lines around it (which
/// quick-junit's reader drops, so that a report reads back as written).
fn text(s: &str) -> String {
    safe(s.trim())
}

/// At most `max` bytes of `s`: its first quarter and its end, with a line
/// saying how much was cut between.
fn cut_middle(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let head = floor(s, max / 4);
    let tail = ceil(s, s.len() - (max - max / 4));
    format!(
        "{}\n[... {} bytes cut ...]\n{}",
        &s[..head],
        tail - head,
        &s[tail..]
    )
}

/// At most the last `max` bytes of `s`.
fn cut_end(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let from = ceil(s, s.len() - max);
    format!("[... {from} bytes cut ...]\n{}", &s[from..])
}

fn floor(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Turns a failing run that a test expected to fail into what it is for
/// CI: every failure (the checks' and the verdict's) becomes `skipped`
/// with `expected failure (<why>): <message>` (pytest's xfail does the same), and
/// the suite says so in its `expected-verdict` property.
pub fn expect_failure(suite: &mut TestSuite, why: &str) {
    for case in &mut suite.test_cases {
        if let TestCaseStatus::NonSuccess {
            message,
            description,
            ..
        } = &case.status
        {
            let mut st = TestCaseStatus::skipped();
            st.set_message(safe(&format!(
                "expected failure ({why}): {}",
                message.as_deref().unwrap_or("")
            )));
            st.set_type("expected failure");
            if let Some(d) = description {
                st.set_description(d.clone());
            }
            case.status = st;
        }
    }
    suite.add_property(Property::new(
        "expected-verdict",
        safe(&format!("FAIL ({why})")),
    ));
    recount(suite);
}

/// Adds a failing case to `suite` (e.g. a test's own failure after its
/// boot).
pub fn add_failure(suite: &mut TestSuite, name: &str, message: &str, text: &str) {
    let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
    st.set_message(safe(message));
    st.set_description(safe(text));
    let mut case = TestCase::new(safe(name), st);
    case.set_classname(safe(&classname(&suite.name)));
    suite.add_test_case(case);
}

/// What a test made of its boot, for the boot's report: `test` (the test's
/// name) failed → a failing `<scenario>.test` case is added, whatever the
/// verdict; it passed on a failing verdict, so it wanted that failure →
/// [`expect_failure`]; it passed on a passing verdict → nothing changes.
/// Returns whether the suite changed.
pub fn settle(suite: &mut TestSuite, verdict_passed: bool, test: &str, test_failed: bool) -> bool {
    if test_failed {
        let name = format!("{}.test", suite.name.as_str());
        add_failure(
            suite,
            &name,
            &format!("the scenario test {test} failed after this boot"),
            "its output (cargo test, nextest) says why",
        );
    } else if !verdict_passed {
        expect_failure(suite, &format!("{test} wants it"));
    } else {
        return false;
    }
    true
}

/// Sets a suite's counts from its cases again (after they changed).
fn recount(suite: &mut TestSuite) {
    let cases = std::mem::take(&mut suite.test_cases);
    suite.tests = 0;
    suite.failures = 0;
    suite.errors = 0;
    suite.skipped = 0;
    suite.add_test_cases(cases);
}

/// The whole document of `suites`, as a string.
pub fn document(suites: impl IntoIterator<Item = TestSuite>) -> Result<String, String> {
    let mut report = Report::new(REPORT_NAME);
    report.add_test_suites(suites);
    report
        .to_string()
        .map_err(|e| format!("cannot write JUnit XML: {e}"))
}

/// Writes the document of `suites` to `path` (through a temporary file, so
/// a reader never sees half of it); makes the directory.
pub fn write(path: &Path, suites: impl IntoIterator<Item = TestSuite>) -> Result<(), String> {
    let text = document(suites)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Reads one report back (ours: quick-junit's reader follows its writer).
pub fn read(path: &Path) -> Result<Report, String> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Report::deserialize_from_str(&text)
        .map_err(|e| format!("{} is not a JUnit report we can read: {e}", path.display()))
}

/// The per-scenario reports in `dir` (`*.junit.xml`), sorted by name; a
/// missing directory has none.
pub fn reports_in(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let path = entry.path();
        let is_report = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(SUFFIX) && n.len() > SUFFIX.len());
        if is_report && path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Removes the per-scenario reports in `dir` (before a run, so that
/// [`merge`] sees only this run's); returns how many.
pub fn clear(dir: &Path) -> Result<usize, String> {
    let reports = reports_in(dir)?;
    for p in &reports {
        fs::remove_file(p).map_err(|e| format!("cannot remove {}: {e}", p.display()))?;
    }
    Ok(reports.len())
}

/// Merges every `*.junit.xml` in `dir` (not `out` itself) into one
/// `testsuites` document at `out`; returns (suites, cases, failed cases:
/// failures and errors). A file that is not a report we can read is an
/// error naming it; no report at all writes an empty document.
pub fn merge(dir: &Path, out: &Path) -> Result<(usize, usize, usize), String> {
    let skip = fs::canonicalize(out).ok();
    let files: Vec<PathBuf> = reports_in(dir)?
        .into_iter()
        .filter(|p| skip.is_none() || fs::canonicalize(p).ok() != skip)
        .collect();
    merge_files(&files, out)
}

/// [`merge`] for a list of reports (e.g. nextest's own and ours), in
/// that order.
pub fn merge_files(files: &[PathBuf], out: &Path) -> Result<(usize, usize, usize), String> {
    let mut suites = Vec::new();
    for path in files {
        suites.extend(read(path)?.test_suites);
    }
    let counts = (
        suites.len(),
        suites.iter().map(|s| s.tests).sum(),
        suites.iter().map(|s| s.failures + s.errors).sum(),
    );
    write(out, suites)?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assess::{judge, Exit};
    use crate::tap::parse;

    const PASSING: &str = "TAP version 14\n# zvtest 0.1.0\n1..3\nok 1 - boot.vectors\n\
                           # boot.vectors: 1234 us, heap in use 0 bytes, timeout 1000 ms\n\
                           ok 2 - boot.memory\nok 3 - legacy.page # SKIP no device page\n\
                           2 passed, 0 failed, 1 skipped\n";
    const FAILING: &str = "TAP version 14\n1..3\nok 1 - boot.vectors\n\
                           # blk fe.0.0001: reading sector 8\n\
                           not ok 2 - blk.read\n  ---\n  message: \"sector 8 differs at offset 17\"\n  \
                           expected: \"0x5a\"\n  got: \"0xa5\"\n  ...\n\
                           ok 3 - blk.write\n2 passed, 1 failed, 0 skipped\n";

    fn boot_suite(name: &str, exit: Exit, console: &str) -> TestSuite {
        let tap = parse(console);
        let verdict = judge(&exit, &tap);
        suite(&Boot {
            scenario: name,
            qemu_version: Some("10.0".into()),
            command: "qemu-system-s390x -kernel zvtest.elf".into(),
            firmware_args: Some("expect-mem=128M only=boot.*".into()),
            started: None,
            duration: Duration::from_millis(1500),
            time_to_tap: Some(Duration::from_millis(300)),
            exit,
            tap: &tap,
            verdict: &verdict,
            console,
            log_path: Some(Path::new("target/tmp/scenarios/x.log")),
        })
    }

    fn case<'s>(s: &'s TestSuite, name: &str) -> &'s TestCase {
        s.test_cases
            .iter()
            .find(|c| c.name.as_str() == name)
            .unwrap_or_else(|| panic!("no case {name} in {s:?}"))
    }

    fn failure(c: &TestCase) -> (String, String) {
        match &c.status {
            TestCaseStatus::NonSuccess {
                kind: NonSuccessKind::Failure,
                message,
                description,
                ..
            } => (
                message.as_deref().unwrap_or("").to_string(),
                description.as_deref().unwrap_or("").to_string(),
            ),
            other => panic!("{} is not a failure: {other:?}", c.name.as_str()),
        }
    }

    fn property<'s>(s: &'s TestSuite, name: &str) -> &'s str {
        s.properties
            .iter()
            .find(|p| p.name.as_str() == name)
            .map(|p| p.value.as_str())
            .unwrap_or_else(|| panic!("no property {name}"))
    }

    #[test]
    fn a_passing_boot_is_one_case_per_check_and_a_passing_verdict() {
        let s = boot_suite("default", Exit::Code(0), PASSING);
        assert_eq!(s.name.as_str(), "default");
        let names: Vec<&str> = s.test_cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "boot.vectors",
                "boot.memory",
                "legacy.page",
                "default.verdict"
            ]
        );
        assert_eq!((s.tests, s.failures, s.errors, s.skipped), (4, 0, 0, 1));
        for c in &s.test_cases {
            assert_eq!(c.classname.as_deref(), Some("zvtest.default"));
        }
        assert!(matches!(
            case(&s, "boot.memory").status,
            TestCaseStatus::Success { .. }
        ));
        match &case(&s, "legacy.page").status {
            TestCaseStatus::Skipped { message, .. } => {
                assert_eq!(message.as_deref(), Some("no device page"))
            }
            other => panic!("{other:?}"),
        }
        // The time the firmware printed, and none where it printed none.
        assert_eq!(
            case(&s, "boot.vectors").time,
            Some(Duration::from_micros(1234))
        );
        assert_eq!(case(&s, "boot.memory").time, None);
        assert_eq!(s.time, Some(Duration::from_millis(1500)));
        assert_eq!(property(&s, "qemu.version"), "10.0");
        assert_eq!(
            property(&s, "qemu.command"),
            "qemu-system-s390x -kernel zvtest.elf"
        );
        assert_eq!(property(&s, "firmware.args"), "expect-mem=128M only=boot.*");
        assert_eq!(property(&s, "verdict"), "PASS");
        assert_eq!(property(&s, "time-to-tap"), "0.300 s");
        assert_eq!(s.system_out.as_deref(), Some(PASSING.trim_end()));
    }

    #[test]
    fn a_failed_check_carries_its_message_expected_got_and_console() {
        let s = boot_suite("blk", Exit::Code(1), FAILING);
        assert_eq!((s.tests, s.failures, s.skipped), (4, 2, 0));
        let (message, text) = failure(case(&s, "blk.read"));
        assert_eq!(message, "sector 8 differs at offset 17");
        assert_eq!(
            text,
            "message: \"sector 8 differs at offset 17\"\nexpected: \"0x5a\"\ngot: \"0xa5\""
        );
        // The check's own console lines: its diagnostics, its result, its block.
        let out = case(&s, "blk.read").system_out.as_deref().unwrap();
        assert!(out.starts_with("# blk fe.0.0001: reading sector 8\nnot ok 2 - blk.read\n"));
        assert!(out.ends_with("  ..."), "{out}");
        assert!(!out.contains("ok 3"), "{out}");
        // A passing case has no output of its own.
        assert!(case(&s, "blk.write").system_out.is_none());
        // The verdict fails too: its message is the host's reason, its
        // text every reason.
        let (message, text) = failure(case(&s, "blk.verdict"));
        assert_eq!(message, "1 check failed (QEMU exit status 1)");
        assert!(
            text.contains("not ok 2 - blk.read (sector 8 differs"),
            "{text}"
        );
        // With only check failures to give, it counts them.
        let only_checks = Verdict {
            reasons: vec![
                "not ok 2 - blk.read (sector 8 differs at offset 17: expected 0x5a, got 0xa5)"
                    .into(),
            ],
        };
        let tap = parse(FAILING);
        let b = Boot {
            scenario: "blk",
            qemu_version: None,
            command: String::new(),
            firmware_args: None,
            started: Some(SystemTime::UNIX_EPOCH),
            duration: Duration::ZERO,
            time_to_tap: None,
            exit: Exit::Code(1),
            tap: &tap,
            verdict: &only_checks,
            console: FAILING,
            log_path: None,
        };
        let s = suite(&b);
        assert_eq!(failure(case(&s, "blk.verdict")).0, "1 check failed");
        assert_eq!(property(&s, "qemu.version"), "unknown");
        assert_eq!(
            s.timestamp.unwrap().to_rfc3339(),
            "1970-01-01T00:00:00+00:00"
        );
    }

    #[test]
    fn host_side_reasons_fail_the_verdict_case_even_with_green_checks() {
        // Every check passed, but the run timed out before its summary.
        let cut = "TAP version 14\n1..3\nok 1 - boot.vectors\n";
        let s = boot_suite("slow", Exit::TimedOut(Duration::from_secs(30)), cut);
        assert_eq!(s.failures, 1);
        let (message, text) = failure(case(&s, "slow.verdict"));
        assert_eq!(message, "timed out after 30 s");
        assert!(text.contains("plan 1..3 but 1 results"), "{text}");
        // A bail out.
        let bail = "TAP version 14\n1..2\nok 1 - a\nBail out! unexpected program interrupt\n\
                    1 passed, 0 failed, 0 skipped\n";
        let s = boot_suite("bail", Exit::Code(1), bail);
        assert_eq!(s.failures, 1);
        let (_, text) = failure(case(&s, "bail.verdict"));
        assert!(
            text.contains("bail out: unexpected program interrupt"),
            "{text}"
        );
        // A crash: no console at all.
        let s = boot_suite("crash", Exit::Signal(11), "");
        assert_eq!((s.tests, s.failures), (1, 1));
        assert!(failure(case(&s, "crash.verdict"))
            .0
            .starts_with("no console output"));
        // A peer's reason (any reason the runner adds) fails it too.
        let tap = parse(PASSING);
        let v = Verdict {
            reasons: vec!["peer net: 3 frames lost".into()],
        };
        let mut b = Boot {
            scenario: "net",
            qemu_version: None,
            command: String::new(),
            firmware_args: None,
            started: None,
            duration: Duration::ZERO,
            time_to_tap: None,
            exit: Exit::Code(0),
            tap: &tap,
            verdict: &v,
            console: PASSING,
            log_path: None,
        };
        let s = suite(&b);
        assert_eq!(
            failure(case(&s, "net.verdict")).0,
            "peer net: 3 frames lost"
        );
        let pass = Verdict::default();
        b.verdict = &pass;
        assert_eq!(suite(&b).failures, 0);
    }

    #[test]
    fn only_time_lines_give_times() {
        let text = "TAP version 14\n1..2\n# heap: 0x181000-0x7c00000 (122 MiB)\n\
                    # net fe.0.0002 rx: 64 requests, 4096 bytes, 10 req/s\n\
                    # a: 12 users\n# a: 7 us\nok 1 - a\n# b: 12 ms\n# b: x us\nok 2 - b\n\
                    2 passed, 0 failed, 0 skipped\n";
        let s = boot_suite("t", Exit::Code(0), text);
        assert_eq!(case(&s, "a").time, Some(Duration::from_micros(7)));
        assert_eq!(case(&s, "b").time, None);
    }

    #[test]
    fn an_empty_plan_says_why() {
        let text = "TAP version 14\n1..0 # SKIP nothing selected\n0 passed, 0 failed, 0 skipped\n";
        let s = boot_suite("none", Exit::Code(0), text);
        assert_eq!((s.tests, s.skipped, s.failures), (2, 1, 0));
        match &case(&s, "none.plan").status {
            TestCaseStatus::Skipped { message, .. } => {
                assert_eq!(message.as_deref(), Some("nothing selected"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn control_characters_become_visible_text() {
        assert_eq!(
            safe("a\u{1}b\u{1b}[31mc\td\r\n"),
            "a\\x01b\\x1b[31mc\td\r\n"
        );
        assert_eq!(
            safe("\u{fffe}\u{ffff}\u{fffd}"),
            "\\u{fffe}\\u{ffff}\u{fffd}"
        );
        let garbage = "TAP version 14\n1..1\nnot ok 1 - bad\u{7}name\u{0}\n  ---\n  \
                       message: \"x\"\n  ...\n\u{1b}[2J\u{fffe}\u{8}\n0 passed, 1 failed, 0 skipped\n";
        let s = boot_suite("garbage", Exit::Code(1), garbage);
        let xml = document([s]).unwrap();
        assert!(xml.contains("bad\\x07name\\x00"), "{xml}");
        assert!(xml.contains("\\x1b[2J\\u{fffe}\\x08"), "{xml}");
        for c in xml.chars() {
            assert!(
                matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}')
                    || c >= '\u{10000}',
                "{c:?} in the document"
            );
        }
    }

    /// Whatever the console, the document has only characters XML 1.0
    /// allows and reads back with a case per kept result and the verdict.
    #[test]
    fn any_console_gives_a_readable_document() {
        use proptest::prelude::*;
        let prefix = proptest::sample::select(vec![
            "",
            "ok 1 - ",
            "not ok 2 - ",
            "# ",
            "  ",
            "  message: ",
            "  ---",
            "  ...",
            "Bail out! ",
            "1..3",
            "TAP version 14",
            "ok 3 - x # SKIP ",
        ]);
        // Any character, and often one XML cannot carry or must escape.
        let special: Vec<char> = ('\u{0}'..='\u{1f}')
            .chain([
                '\u{7f}', '\u{85}', '\u{9b}', '\u{fffe}', '\u{ffff}', '&', '<', ']', '"',
            ])
            .collect();
        let body = proptest::collection::vec(
            prop_oneof![any::<char>(), proptest::sample::select(special)],
            0..30,
        )
        .prop_map(|cs| cs.into_iter().collect::<String>());
        let console = proptest::collection::vec((prefix, body), 0..12).prop_map(|lines| {
            lines
                .into_iter()
                .map(|(p, b)| format!("{p}{b}\n"))
                .collect::<String>()
        });
        let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
            cases: 256,
            failure_persistence: None,
            ..Default::default()
        });
        runner
            .run(&console, |text| {
                let s = boot_suite("p", Exit::Code(1), &text);
                let xml = document([s.clone()]).unwrap();
                for c in xml.chars() {
                    prop_assert!(
                        matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}')
                            || c >= '\u{10000}',
                        "{:?} in the document", c
                    );
                }
                let back = Report::deserialize_from_str(&xml)
                    .map_err(|e| TestCaseError::fail(format!("{e}: {xml}")))?;
                prop_assert_eq!(back.test_suites.len(), 1);
                let tap = parse(&text);
                let empty_plan = tap.results.is_empty()
                    && tap.plan.as_ref().is_some_and(|p| p.count == 0 && p.comment.is_some());
                prop_assert_eq!(
                    back.test_suites[0].tests,
                    tap.results.len() + 1 + usize::from(empty_plan)
                );
                prop_assert_eq!(back.test_suites[0].tests, s.tests);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn consoles_are_cut_keeping_both_ends() {
        let long = format!("start\n{}end\n", "é".repeat(MAX_CONSOLE));
        let cut = cut_middle(&long, MAX_CONSOLE);
        assert!(cut.len() <= MAX_CONSOLE + 64, "{}", cut.len());
        assert!(cut.starts_with("start\n") && cut.ends_with("end\n"));
        assert!(cut.contains(" bytes cut ...]"));
        let end = cut_end(&long, 100);
        assert!(end.ends_with("end\n") && end.starts_with("[... "));
        assert_eq!(cut_end("short", 100), "short");
    }

    #[test]
    fn expected_failures_are_skipped_with_their_message() {
        let mut s = boot_suite("blk", Exit::Code(1), FAILING);
        expect_failure(&mut s, "the test wants blk.read to fail");
        assert_eq!((s.tests, s.failures, s.skipped), (4, 0, 2));
        match &case(&s, "blk.read").status {
            TestCaseStatus::Skipped {
                message,
                description,
                ..
            } => {
                assert_eq!(
                    message.as_deref(),
                    Some("expected failure (the test wants blk.read to fail): sector 8 differs at offset 17")
                );
                assert!(description.as_deref().unwrap().contains("got: \"0xa5\""));
            }
            other => panic!("{other:?}"),
        }
        add_failure(&mut s, "blk.test", "the test failed", "see its output");
        assert_eq!((s.tests, s.failures), (5, 1));
        assert_eq!(
            case(&s, "blk.test").classname.as_deref(),
            Some("zvtest.blk")
        );
    }

    #[test]
    fn a_test_settles_its_boots_report() {
        let failing = boot_suite("blk", Exit::Code(1), FAILING);
        let passing = boot_suite("default", Exit::Code(0), PASSING);
        // Wanted: the failures become expected ones.
        let mut s = failing.clone();
        assert!(settle(&mut s, false, "blk_read_fails", false));
        assert_eq!((s.failures, s.skipped), (0, 2));
        // A passing test on a passing boot: as it was.
        let mut s = passing.clone();
        assert!(!settle(&mut s, true, "t", false));
        assert_eq!(s, passing);
        // A failed test fails its report, whatever the verdict.
        for (mut s, verdict_passed, failures) in [(passing, true, 1), (failing, false, 3)] {
            assert!(settle(&mut s, verdict_passed, "t", true));
            assert_eq!(s.failures, failures);
            let name = format!("{}.test", s.name.as_str());
            let (message, _) = failure(case(&s, &name));
            assert_eq!(message, "the scenario test t failed after this boot");
        }
    }

    #[test]
    fn documents_read_back_and_merge() {
        let dir = std::env::temp_dir().join(format!("zvtest-junit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let a = boot_suite("a", Exit::Code(0), PASSING);
        let b = boot_suite("b", Exit::Code(1), FAILING);
        write(&dir.join("a.junit.xml"), [a.clone()]).unwrap();
        write(&dir.join("b.junit.xml"), [b.clone()]).unwrap();
        fs::write(dir.join("a.log"), "not a report").unwrap();
        let back = read(&dir.join("b.junit.xml")).unwrap();
        assert_eq!(back.test_suites, std::slice::from_ref(&b));
        let out = dir.join("all.junit.xml");
        // The merged file in the same directory is not merged into itself.
        for _ in 0..2 {
            assert_eq!(merge(&dir, &out), Ok((2, 8, 2)));
        }
        let all = read(&out).unwrap();
        // As written (times are written to the millisecond).
        assert_eq!(document(all.test_suites), document([a, b]));
        assert_eq!((all.tests, all.failures), (8, 2));
        // A broken report is named.
        fs::write(dir.join("c.junit.xml"), "<testsuites><oops").unwrap();
        let e = merge(&dir, &dir.join("x.xml")).unwrap_err();
        assert!(e.contains("c.junit.xml"), "{e}");
        assert_eq!(
            merge_files(&[dir.join("b.junit.xml"), dir.join("a.junit.xml")], &out),
            Ok((2, 8, 2))
        );
        let names: Vec<String> = read(&out)
            .unwrap()
            .test_suites
            .iter()
            .map(|s| s.name.to_string())
            .collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(clear(&dir), Ok(4));
        assert_eq!(merge(&dir, &out), Ok((0, 0, 0)));
        assert_eq!(merge(&dir.join("none"), &dir.join("y.xml")), Ok((0, 0, 0)));
        fs::remove_dir_all(&dir).unwrap();
    }
}
