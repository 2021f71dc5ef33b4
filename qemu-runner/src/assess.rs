//! The host's judgement of a run: how QEMU ended, the parsed TAP and the
//! wait PSW QEMU printed, turned into PASS or FAIL with reasons.

use crate::tap::TapReport;
use std::fmt;
use std::time::Duration;
use zvtest_contract::verdict::{Abort, WAIT_ABORT, WAIT_FAIL, WAIT_FAIL_MAX};

/// How the QEMU process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exited by itself with this status (0: clean disabled wait, 1: guest panic).
    Code(i32),
    /// Killed by a signal we did not send.
    Signal(i32),
    /// Still running at the scenario's timeout; we killed it.
    TimedOut(Duration),
    /// Still running, idle this long, after it reported the guest's
    /// disabled wait (the run's end); we killed it.
    HungAfterWait(Duration),
}

impl Exit {
    pub fn is_success(&self) -> bool {
        *self == Exit::Code(0)
    }

    pub fn is_timed_out(&self) -> bool {
        matches!(self, Exit::TimedOut(_))
    }

    /// The exit code, if QEMU exited by itself.
    pub fn code(&self) -> Option<i32> {
        match self {
            Exit::Code(c) => Some(*c),
            _ => None,
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "QEMU exit status {c}"),
            Exit::Signal(s) => write!(f, "QEMU killed by signal {s}"),
            Exit::TimedOut(d) => write!(f, "timed out after {}", seconds(*d)),
            Exit::HungAfterWait(d) => write!(
                f,
                "QEMU did not exit after it reported the guest's disabled \
                 wait, idle for {} (hung in its own exit; killed)",
                seconds(*d)
            ),
        }
    }
}

/// "5 s" for whole seconds, "2.5 s" otherwise.
pub fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// PASS when there is no reason to fail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub reasons: Vec<String>,
}

impl Verdict {
    pub fn is_pass(&self) -> bool {
        self.reasons.is_empty()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_pass() {
            f.write_str("PASS")
        } else {
            write!(f, "FAIL: {}", self.reasons.join("; "))
        }
    }
}

/// A flood of failures should not bury the other reasons.
const MAX_REASONS: usize = 40;
/// The parser names this many cut lines as anomalies, and counts the rest.
const CUT_SAMPLES: u64 = 5;

/// What the runner saw besides the exit and the TAP, for [`judge_run`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFacts {
    /// QEMU was asked to print the wait PSW of a crash (`-d guest_errors`),
    /// so its absence means something.
    pub psw_reported: bool,
    /// The disabled-wait PSW QEMU printed, `(mask, address)`.
    pub wait_psw: Option<(u64, u64)>,
    /// What QEMU said about why it shut down, e.g. `terminating on signal
    /// 15` on its stderr or a QMP `SHUTDOWN` reason.
    pub shutdown_cause: Option<String>,
}

/// Applies the firmware's TAP contract; every breach becomes one reason.
pub fn judge(exit: &Exit, tap: &TapReport) -> Verdict {
    judge_run(exit, tap, &RunFacts::default())
}

/// [`judge`], plus what only the runner knows: QEMU's wait PSW, checked
/// against the TAP, and why QEMU shut down.
pub fn judge_run(exit: &Exit, tap: &TapReport, facts: &RunFacts) -> Verdict {
    let mut reasons = Vec::new();
    if tap.lines == 0 {
        // Nothing at all: the other TAP reasons would only repeat it.
        reasons.push(match exit {
            Exit::TimedOut(d) => format!(
                "no console output at all in {}: the image did not start \
                 (not a zvtest image, wrong machine?)",
                seconds(*d)
            ),
            other => format!(
                "no console output at all ({other}): the image did not start \
                 (QEMU's stderr says why)"
            ),
        });
        wait_psw(tap, facts, exit, &mut reasons);
        return capped(reasons);
    }
    if !exit.is_success() {
        reasons.push(exit.to_string());
    }
    match tap.version {
        None => reasons.push("no TAP version line".into()),
        Some(14) => {}
        Some(v) => reasons.push(format!("TAP version {v}, expected 14")),
    }
    let total =
        u64::from(tap.tally.passed) + u64::from(tap.tally.failed) + u64::from(tap.tally.skipped);
    match &tap.plan {
        None => reasons.push("no plan".into()),
        Some(p) if u64::from(p.count) != total => {
            reasons.push(format!("plan 1..{} but {total} results", p.count))
        }
        Some(_) => {}
    }
    numbering(tap, &mut reasons);
    reasons.extend(tap.failures().map(|r| r.describe()));
    let d = &tap.dropped;
    if d.failures > 0 {
        reasons.push(format!(
            "{} more failed results past the {} results kept: {}{}",
            d.failures,
            tap.results.len(),
            d.failure_samples.join("; "),
            if d.failures > d.failure_samples.len() as u64 {
                "; ..."
            } else {
                ""
            }
        ));
    }
    if let Some(why) = &tap.bail_out {
        reasons.push(if why.is_empty() {
            "bail out".into()
        } else {
            format!("bail out: {why}")
        });
    }
    let counts = tap.counts();
    match tap.summary {
        None if exit.is_success() => reasons.push(cut_off(facts)),
        None => reasons.push("no summary line".into()),
        Some(s) if s != counts => reasons.push(format!(
            "summary line says \"{s}\" but the results give \"{counts}\""
        )),
        Some(_) => {}
    }
    if tap.lines_after_summary > 0 {
        reasons.push(format!(
            "{} lines after the summary line",
            tap.lines_after_summary
        ));
    }
    reasons.extend(tap.anomalies.iter().map(|a| format!("TAP: {a}")));
    // Lines every CPU wrote at once (smp.console) must each have come whole.
    reasons.extend(zvtest_contract::smp::check_console(&tap.diagnostics).err());
    if d.cut_lines > CUT_SAMPLES {
        reasons.push(format!(
            "TAP: {} console lines were cut in all",
            d.cut_lines
        ));
    }
    if d.anomalies > 0 {
        reasons.push(format!("TAP: {} more anomalies not kept", d.anomalies));
    }
    wait_psw(tap, facts, exit, &mut reasons);
    capped(reasons)
}

/// QEMU exited 0 but the firmware never wrote its last line: QEMU was
/// ended from outside, not by the firmware's final wait.
fn cut_off(facts: &RunFacts) -> String {
    let likely = match &facts.shutdown_cause {
        Some(cause) => format!("QEMU says: {cause}"),
        None => "likely a signal to QEMU (SIGTERM, SIGINT, SIGHUP), a QMP quit or \
                 system_reset (-no-reboot turns a reset into an exit) or a watchdog \
                 reset"
            .into(),
    };
    format!(
        "no summary line although QEMU exited 0: the report is cut off, so QEMU \
         was ended from outside the firmware; {likely}"
    )
}

/// The wait PSW must say what the TAP says: none for a pass (QEMU's clean
/// shutdown at 0xfff prints nothing), `0x0bad0000 + 2N` for N failed
/// checks, `0x0dead000 + 2r` for a bail-out.
fn wait_psw(tap: &TapReport, facts: &RunFacts, exit: &Exit, reasons: &mut Vec<String>) {
    if !facts.psw_reported {
        return;
    }
    let failed = u64::from(tap.tally.failed);
    let expected = match &tap.bail_out {
        Some(why) => Expected::Abort(Abort::of_bail_out(why)),
        None if failed > 0 => Expected::Fail(WAIT_FAIL | failed.min(WAIT_FAIL_MAX) << 1),
        None => Expected::Pass,
    };
    let Some((mask, addr)) = facts.wait_psw else {
        // Only QEMU ending by itself leaves a PSW to print.
        if matches!(exit, Exit::Code(_)) && tap.summary.is_some() {
            match expected {
                Expected::Pass => {}
                Expected::Fail(a) => reasons.push(format!(
                    "{failed} checks failed but QEMU reported no disabled wait \
                     (expected wait PSW address {a:#x})"
                )),
                Expected::Abort(_) => reasons.push(
                    "the run bailed out but QEMU reported no disabled wait \
                     (expected wait PSW address 0x0dead000 + 2 × reason)"
                        .into(),
                ),
            }
        }
        return;
    };
    let shown = format!("{mask:#018x} {addr:#018x}");
    let abort = addr
        .checked_sub(WAIT_ABORT)
        .filter(|d| d % 2 == 0)
        .and_then(|d| Abort::from_code(d / 2));
    let mismatch = match expected {
        Expected::Pass => Some("the TAP says the run passed".to_string()),
        Expected::Fail(a) if a == addr => None,
        Expected::Fail(a) => Some(format!(
            "the TAP says {failed} checks failed (wait address {a:#x})"
        )),
        Expected::Abort(code) => match (abort, code) {
            (Some(got), Some(want)) if got != want => Some(format!(
                "the bail-out is for {} (wait address {:#x})",
                want.name(),
                WAIT_ABORT | (want as u64) << 1
            )),
            (Some(_), _) => None,
            (None, _) => Some(
                "the TAP says the run bailed out (wait address 0x0dead000 + 2 × reason)".into(),
            ),
        },
    };
    if let Some(m) = mismatch {
        let meaning = match (abort, addr.checked_sub(WAIT_FAIL)) {
            (Some(r), _) => format!("abandoned: {}", r.name()),
            (None, Some(d)) if d % 2 == 0 && d >> 1 <= WAIT_FAIL_MAX => {
                format!("{} checks failed", d >> 1)
            }
            _ => "not a zvtest verdict".into(),
        };
        reasons.push(format!(
            "QEMU's wait PSW {shown} ({meaning}) does not match: {m}"
        ));
    }
}

enum Expected {
    Pass,
    Fail(u64),
    /// A bail-out, with its reason when the text tells.
    Abort(Option<Abort>),
}

fn capped(mut reasons: Vec<String>) -> Verdict {
    if reasons.len() > MAX_REASONS {
        let more = reasons.len() - MAX_REASONS;
        reasons.truncate(MAX_REASONS);
        reasons.push(format!("... and {more} more"));
    }
    Verdict { reasons }
}

/// "3", "3-7", "3, 5-9, 12, ..." for runs of numbers, at most a few.
fn runs(samples: &[(u32, u32)], total: u64) -> String {
    let mut parts: Vec<String> = samples
        .iter()
        .map(|&(s, e)| {
            if s == e {
                s.to_string()
            } else {
                format!("{s}-{e}")
            }
        })
        .collect();
    let shown: u64 = samples.iter().map(|&(s, e)| u64::from(e - s) + 1).sum();
    if total > shown {
        parts.push(format!("... ({total} in all)"));
    }
    parts.join(", ")
}

/// Results must be numbered 1, 2, 3, ... in order; the plan count is checked apart.
fn numbering(tap: &TapReport, reasons: &mut Vec<String>) {
    let n = &tap.numbering;
    let (unnumbered, samples) = n.unnumbered();
    for (at, what) in samples {
        reasons.push(format!("result #{at} has no number: {what}"));
    }
    if unnumbered > samples.len() as u64 {
        reasons.push(format!("{unnumbered} results have no number in all"));
    }
    let (dups, samples) = n.duplicates();
    if dups == 1 {
        reasons.push(format!("duplicate result number {}", samples[0]));
    } else if dups > 1 {
        let list: Vec<String> = samples.iter().map(u32::to_string).collect();
        let more = if dups > samples.len() as u64 {
            ", ..."
        } else {
            ""
        };
        reasons.push(format!(
            "{dups} duplicate result numbers: {}{more}",
            list.join(", ")
        ));
    }
    if let Some(p) = &tap.plan {
        if n.zeros() > 0 {
            reasons.push(format!("result number 0 outside plan 1..{}", p.count));
        }
        let (count, samples) = n.above(p.count);
        if count == 1 {
            reasons.push(format!(
                "result number {} outside plan 1..{}",
                samples[0].0, p.count
            ));
        } else if count > 1 {
            reasons.push(format!(
                "result numbers {} outside plan 1..{}",
                runs(&samples, count),
                p.count
            ));
        }
    }
    let (count, samples) = n.missing();
    if n.scattered() {
        reasons.push(format!(
            "result numbers too scattered to follow: at least {count} missing, from {}",
            runs(&samples, samples.len() as u64)
        ));
    } else if count > 0 {
        reasons.push(format!("missing result numbers {}", runs(&samples, count)));
    }
    if n.out_of_order() {
        reasons.push("results out of order".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::tap::parse;

    const GOOD: &str = "TAP version 14\n# zvtest 0.1.0\n1..3\nok 1 - boot.vectors\n\
                        ok 2 - boot.memory\nok 3 - legacy.page # SKIP no device page\n\
                        2 passed, 0 failed, 1 skipped\n";

    fn reasons(exit: Exit, text: &str) -> Vec<String> {
        judge(&exit, &parse(text)).reasons
    }

    #[test]
    fn good_run_passes() {
        let v = judge(&Exit::Code(0), &parse(GOOD));
        assert!(v.is_pass(), "{v}");
        assert_eq!(v.to_string(), "PASS");
        // An empty plan with its summary is a pass too.
        let empty = "TAP version 14\n1..0 # SKIP nothing selected\n0 passed, 0 failed, 0 skipped\n";
        assert!(reasons(Exit::Code(0), empty).is_empty());
    }

    #[test]
    fn exit_status_alone_fails() {
        assert_eq!(reasons(Exit::Code(1), GOOD), ["QEMU exit status 1"]);
        assert_eq!(
            reasons(Exit::Signal(11), GOOD),
            ["QEMU killed by signal 11"]
        );
        assert_eq!(
            reasons(Exit::TimedOut(Duration::from_secs(5)), GOOD),
            ["timed out after 5 s"]
        );
        assert_eq!(
            Exit::TimedOut(Duration::from_millis(2500)).to_string(),
            "timed out after 2.5 s"
        );
        assert!(Exit::Code(0).is_success() && !Exit::Code(1).is_success());
        assert_eq!(Exit::Code(3).code(), Some(3));
        assert_eq!(Exit::Signal(9).code(), None);
        assert!(Exit::TimedOut(Duration::ZERO).is_timed_out());
    }

    #[test]
    fn nothing_printed() {
        // Old behaviour: "timed out after 60 s", then the missing TAP parts,
        // and the binary suggested the firmware was only slow.
        assert_eq!(
            reasons(Exit::TimedOut(Duration::from_secs(60)), ""),
            ["no console output at all in 60 s: the image did not start \
              (not a zvtest image, wrong machine?)"]
        );
        assert_eq!(
            reasons(Exit::Code(1), ""),
            [
                "no console output at all (QEMU exit status 1): the image did not start \
              (QEMU's stderr says why)"
            ]
        );
        // One empty line is output: the usual reasons.
        let r = reasons(Exit::TimedOut(Duration::from_secs(60)), "\n");
        assert_eq!(r[0], "timed out after 60 s");
        assert!(r.contains(&"no TAP version line".to_string()), "{r:?}");
    }

    #[test]
    fn failure_lists_every_reason() {
        let text =
            "TAP version 14\n1..5\nok 1 - boot.vectors\nnot ok 2 - pgm.privileged\n  ---\n  \
                    message: wrong interruption code\n  expected: 0x0002\n  got: 0x0006\n  ...\n\
                    ok 3 - x\n";
        assert_eq!(
            reasons(Exit::Code(1), text),
            [
                "QEMU exit status 1",
                "plan 1..5 but 3 results",
                "not ok 2 - pgm.privileged (wrong interruption code: expected 0x0002, got 0x0006)",
                "no summary line",
            ]
        );
    }

    #[test]
    fn bail_out_fails_even_with_consistent_counts() {
        let text = "TAP version 14\n1..1\nok 1 - a\nBail out! unexpected program interrupt\n\
                    1 passed, 0 failed, 0 skipped\n";
        assert_eq!(
            reasons(Exit::Code(0), text),
            ["bail out: unexpected program interrupt"]
        );
        let text = "TAP version 14\n1..0\nBail out!\n0 passed, 0 failed, 0 skipped\n";
        assert_eq!(reasons(Exit::Code(0), text), ["bail out"]);
    }

    #[test]
    fn summary_must_match_the_results() {
        let lie = GOOD.replace("2 passed, 0 failed, 1 skipped", "3 passed, 0 failed");
        assert_eq!(
            reasons(Exit::Code(0), &lie),
            [
                "summary line says \"3 passed, 0 failed, 0 skipped\" but the results give \
              \"2 passed, 0 failed, 1 skipped\""
            ]
        );
        let late = format!("{GOOD}# trailing\n");
        assert_eq!(
            reasons(Exit::Code(0), &late),
            ["1 lines after the summary line"]
        );
    }

    #[test]
    fn version_must_be_14() {
        let v13 = GOOD.replace("version 14", "version 13");
        assert_eq!(
            reasons(Exit::Code(0), &v13),
            ["TAP version 13, expected 14"]
        );
    }

    #[test]
    fn numbering_problems() {
        let wrap = |body: &str, plan: u32, n: u32| {
            format!("TAP version 14\n1..{plan}\n{body}{n} passed, 0 failed, 0 skipped\n")
        };
        assert_eq!(
            reasons(Exit::Code(0), &wrap("ok 1 - a\nok 1 - b\nok 3 - c\n", 3, 3)),
            ["duplicate result number 1", "missing result numbers 2"]
        );
        assert_eq!(
            reasons(Exit::Code(0), &wrap("ok 1 - a\nok 3 - c\nok 2 - b\n", 3, 3)),
            ["results out of order"]
        );
        assert_eq!(
            reasons(Exit::Code(0), &wrap("ok 1 - a\nok - b\n", 2, 2)),
            ["result #2 has no number: ok (unnumbered) - b"]
        );
        assert_eq!(
            reasons(Exit::Code(0), &wrap("ok 1 - a\nok 2 - b\nok 4 - d\n", 3, 3)),
            [
                "result number 4 outside plan 1..3",
                "missing result numbers 3"
            ]
        );
        assert_eq!(
            reasons(Exit::Code(0), &wrap("ok 0 - z\n", 1, 1)),
            ["result number 0 outside plan 1..1"]
        );
    }

    #[test]
    fn anomalies_fail() {
        let text = GOOD.replace("1..3\n", "1..3\n1..3\n");
        assert_eq!(
            reasons(Exit::Code(0), &text),
            ["TAP: repeated plan \"1..3\""]
        );
    }

    #[test]
    fn reasons_are_capped() {
        let mut text = String::from("TAP version 14\n1..100\n");
        for i in 1..=100 {
            text.push_str(&format!("not ok {i} - t{i}\n"));
        }
        text.push_str("0 passed, 100 failed, 0 skipped\n");
        let r = reasons(Exit::Code(1), &text);
        assert_eq!(r.len(), MAX_REASONS + 1);
        assert_eq!(
            r.last().unwrap(),
            &format!("... and {} more", 101 - MAX_REASONS)
        );
        let v = Verdict { reasons: r };
        assert!(v
            .to_string()
            .starts_with("FAIL: QEMU exit status 1; not ok 1 - t1; "));
    }

    #[test]
    fn numbers_named_by_the_input_cost_no_work() {
        // Old behaviour: a string per missing number, 4e9 of them.
        let t = std::time::Instant::now();
        let text = "TAP version 14\n1..1\nok 4294967295 - x\n1 passed, 0 failed, 0 skipped\n";
        assert_eq!(
            reasons(Exit::Code(0), text),
            [
                "result number 4294967295 outside plan 1..1",
                "missing result numbers 1-4294967294",
            ]
        );
        let mut text = String::from("TAP version 14\n1..3000\n");
        for i in 0..1500 {
            text.push_str(&format!("ok {} - t\n", 2 * i + 1));
        }
        text.push_str("1500 passed, 0 failed, 0 skipped\n");
        let r = reasons(Exit::Code(0), &text);
        assert_eq!(
            r,
            [
                "plan 1..3000 but 1500 results",
                "missing result numbers 2, 4, 6, 8, 10, ... (1499 in all)"
            ]
        );
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }

    #[test]
    fn failures_past_the_results_cap_still_fail() {
        let n = crate::tap::MAX_KEPT_RESULTS + 1;
        let mut text = format!("TAP version 14\n1..{n}\n");
        for i in 1..n {
            text.push_str(&format!("ok {i} - t\n"));
        }
        text.push_str(&format!(
            "not ok {n} - late\n{} passed, 1 failed, 0 skipped\n",
            n - 1
        ));
        assert_eq!(
            reasons(Exit::Code(1), &text),
            [
                "QEMU exit status 1",
                &format!(
                    "1 more failed results past the {} results kept: not ok {n} - late",
                    n - 1
                ),
            ]
        );
    }

    #[test]
    fn disguised_failures_and_cut_bail_outs_fail() {
        for line in [
            "  not ok 3 - x",
            "NOT OK 3 - x",
            "\u{feff}not ok 3 - x",
            "bail out! x",
            "  Bail out! x",
        ] {
            let text = GOOD.replace("1..3\n", &format!("1..3\n{line}\n"));
            let r = reasons(Exit::Code(0), &text);
            assert!(!r.is_empty(), "{line:?} passed");
            assert!(r.iter().any(|r| r.starts_with("TAP: ")), "{line:?}: {r:?}");
        }
        let text = GOOD.replace(
            "ok 2 - boot.memory\n",
            "ok 2 - boot.Bail out! unexpected restart interrupt\n",
        );
        let r = reasons(Exit::Code(0), &text);
        assert!(r.contains(&"plan 1..3 but 2 results".to_string()), "{r:?}");
        assert!(
            r.contains(&"bail out: unexpected restart interrupt".to_string()),
            "{r:?}"
        );
    }

    fn facts(psw: Option<u64>) -> RunFacts {
        RunFacts {
            psw_reported: true,
            wait_psw: psw.map(|a| (0x0002_0001_8000_0000, a)),
            shutdown_cause: None,
        }
    }

    fn judged(exit: Exit, text: &str, f: &RunFacts) -> Vec<String> {
        judge_run(&exit, &parse(text), f).reasons
    }

    const FAILED: &str =
        "TAP version 14\n1..2\nok 1 - a\nnot ok 2 - b\n1 passed, 1 failed, 0 skipped\n";
    const BAILED: &str = "TAP version 14\n1..0\nBail out! command line: unknown option 'bogus'\n\
                          0 passed, 0 failed, 0 skipped\n";

    #[test]
    fn wait_psw_must_agree_with_the_tap() {
        // Agreeing: no reason beyond the TAP's own.
        assert!(judged(Exit::Code(0), GOOD, &facts(None)).is_empty());
        assert_eq!(
            judged(Exit::Code(1), FAILED, &facts(Some(0x0bad_0002))),
            ["QEMU exit status 1", "not ok 2 - b"]
        );
        assert_eq!(
            judged(Exit::Code(1), BAILED, &facts(Some(0x0dea_d008))),
            [
                "QEMU exit status 1",
                "bail out: command line: unknown option 'bogus'"
            ]
        );
        // A crash PSW on a passing report.
        assert_eq!(
            judged(Exit::Code(0), GOOD, &facts(Some(0x0bad_0002))),
            [
                "QEMU's wait PSW 0x0002000180000000 0x000000000bad0002 (1 checks failed) \
              does not match: the TAP says the run passed"
            ]
        );
        // The wrong count, the wrong kind, the wrong abort reason.
        let r = judged(Exit::Code(1), FAILED, &facts(Some(0x0bad_0004)));
        assert_eq!(
            r[2],
            "QEMU's wait PSW 0x0002000180000000 0x000000000bad0004 (2 checks failed) \
             does not match: the TAP says 1 checks failed (wait address 0xbad0002)"
        );
        let r = judged(Exit::Code(1), FAILED, &facts(Some(0x0dea_d002)));
        assert!(r[2].contains("(abandoned: unexpected interrupt)"), "{r:?}");
        let r = judged(Exit::Code(1), BAILED, &facts(Some(0x0dea_d006)));
        assert!(
            r[2].contains(
                "does not match: the bail-out is for command line (wait address 0xdead008)"
            ),
            "{r:?}"
        );
        let r = judged(Exit::Code(1), BAILED, &facts(Some(0x1234)));
        assert!(r[2].contains("(not a zvtest verdict)"), "{r:?}");
        // A failing report without a PSW from a QEMU that ended by itself.
        let r = judged(Exit::Code(1), FAILED, &facts(None));
        assert_eq!(
            r[2],
            "1 checks failed but QEMU reported no disabled wait (expected wait PSW address 0xbad0002)"
        );
        // Killed or timed out: no PSW to expect.
        let r = judged(Exit::Signal(9), FAILED, &facts(None));
        assert_eq!(r.len(), 2, "{r:?}");
        // Without -d guest_errors nothing is checked.
        assert_eq!(
            judge(&Exit::Code(0), &parse(GOOD)),
            judge_run(&Exit::Code(0), &parse(GOOD), &RunFacts::default())
        );
        assert!(judged(
            Exit::Code(0),
            GOOD,
            &RunFacts {
                psw_reported: false,
                ..facts(Some(1))
            }
        )
        .is_empty());
    }

    #[test]
    fn a_cut_off_report_with_exit_0_says_why() {
        let cut = "TAP version 14\n1..3\nok 1 - boot.vectors\n";
        let r = judged(Exit::Code(0), cut, &facts(None));
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0], "plan 1..3 but 1 results");
        assert!(
            r[1].starts_with(
                "no summary line although QEMU exited 0: the report is cut off, so QEMU was \
                 ended from outside the firmware; likely a signal to QEMU"
            ),
            "{r:?}"
        );
        let f = RunFacts {
            shutdown_cause: Some("QMP event SHUTDOWN reason host-qmp-quit".into()),
            ..facts(None)
        };
        let r = judged(Exit::Code(0), cut, &f);
        assert!(
            r[1].ends_with("; QEMU says: QMP event SHUTDOWN reason host-qmp-quit"),
            "{r:?}"
        );
    }
}
