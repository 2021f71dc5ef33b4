//! Turns how QEMU ended plus the parsed TAP into PASS or FAIL with reasons.

use crate::tap::TapReport;
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

/// How the QEMU process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exited by itself with this status (0: clean disabled wait, 1: guest panic).
    Code(i32),
    /// Killed by a signal we did not send.
    Signal(i32),
    /// Still running at the scenario's timeout; we killed it.
    TimedOut(Duration),
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

/// Applies the firmware's TAP contract; every breach becomes one reason.
pub fn judge(exit: &Exit, tap: &TapReport) -> Verdict {
    let mut reasons = Vec::new();
    if !exit.is_success() {
        reasons.push(exit.to_string());
    }
    match tap.version {
        None => reasons.push("no TAP version line".into()),
        Some(14) => {}
        Some(v) => reasons.push(format!("TAP version {v}, expected 14")),
    }
    match &tap.plan {
        None => reasons.push("no plan".into()),
        Some(p) if p.count as usize != tap.results.len() => reasons.push(format!(
            "plan 1..{} but {} results",
            p.count,
            tap.results.len()
        )),
        Some(_) => {}
    }
    numbering(tap, &mut reasons);
    reasons.extend(tap.failures().map(|r| r.describe()));
    if let Some(why) = &tap.bail_out {
        reasons.push(if why.is_empty() {
            "bail out".into()
        } else {
            format!("bail out: {why}")
        });
    }
    let counts = tap.counts();
    match tap.summary {
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

    if reasons.len() > MAX_REASONS {
        let more = reasons.len() - MAX_REASONS;
        reasons.truncate(MAX_REASONS);
        reasons.push(format!("... and {more} more"));
    }
    Verdict { reasons }
}

/// Results must be numbered 1, 2, 3, ... in order; the plan count is checked apart.
fn numbering(tap: &TapReport, reasons: &mut Vec<String>) {
    let mut seen = BTreeSet::new();
    let mut previous = 0;
    let mut in_order = true;
    for (i, r) in tap.results.iter().enumerate() {
        let Some(n) = r.number else {
            reasons.push(format!("result #{} has no number: {}", i + 1, r.describe()));
            continue;
        };
        if !seen.insert(n) {
            reasons.push(format!("duplicate result number {n}"));
        }
        in_order &= n >= previous;
        previous = n;
        if let Some(p) = &tap.plan {
            if n == 0 || n > p.count {
                reasons.push(format!("result number {n} outside plan 1..{}", p.count));
            }
        }
    }
    let highest = seen.last().copied().unwrap_or(0);
    let missing: Vec<String> = (1..highest)
        .filter(|n| !seen.contains(n))
        .map(|n| n.to_string())
        .collect();
    if !missing.is_empty() {
        reasons.push(format!("missing result numbers {}", missing.join(", ")));
    }
    if !in_order {
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
        assert_eq!(
            reasons(Exit::TimedOut(Duration::from_secs(60)), ""),
            [
                "timed out after 60 s",
                "no TAP version line",
                "no plan",
                "no summary line"
            ]
        );
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
}
