//! Adds up what the test runners printed: cargo-nextest's `Summary` line,
//! and for the doc tests (which nextest does not run) libtest's "test
//! result:" lines on stdout and cargo's "Running"/"Doc-tests" lines on
//! stderr (to notice a test binary that died before printing its result
//! line).

/// Counts over all test binaries of one `cargo test` run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
    /// "test result:" lines seen.
    pub results: u64,
    /// Test binaries cargo started.
    pub binaries: u64,
}

impl Tally {
    /// A line of cargo test's stdout.
    pub fn stdout_line(&mut self, line: &str) {
        if let Some((passed, failed, ignored)) = parse_result_line(line) {
            self.passed += passed;
            self.failed += failed;
            self.ignored += ignored;
            self.results += 1;
        }
    }

    /// A line of cargo's stderr.
    pub fn stderr_line(&mut self, line: &str) {
        let line = strip_ansi(line);
        let line = line.trim_start();
        if line.starts_with("Running ") || line.starts_with("Doc-tests ") {
            self.binaries += 1;
        }
    }

    /// Test binaries that ended without a result line (crashed, killed).
    pub fn crashed(&self) -> u64 {
        self.binaries.saturating_sub(self.results)
    }
}

/// `test result: ok. 37 passed; 0 failed; 0 ignored; 0 measured; ...`
/// gives (passed, failed, ignored).
pub fn parse_result_line(line: &str) -> Option<(u64, u64, u64)> {
    let line = strip_ansi(line);
    let rest = line.trim().strip_prefix("test result: ")?;
    let (_status, counts) = rest.split_once(". ")?;
    let mut found = [None; 3];
    for part in counts.split(';') {
        let mut words = part.split_whitespace();
        let (Some(n), Some(word)) = (words.next(), words.next()) else {
            continue;
        };
        let slot = match word {
            "passed" => 0,
            "failed" => 1,
            "ignored" => 2,
            _ => continue,
        };
        found[slot] = Some(n.parse().ok()?);
    }
    Some((found[0]?, found[1]?, found[2].unwrap_or(0)))
}

/// What cargo-nextest's closing line says:
/// `Summary [ 131.501s] 756 tests run: 754 passed (2 slow), 1 failed, 1 timed out, 0 skipped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextestSummary {
    pub run: u64,
    pub passed: u64,
    pub seconds: u64,
}

impl NextestSummary {
    /// Every test that ran and did not pass: failed, timed out, crashed.
    pub fn failed(&self) -> u64 {
        self.run.saturating_sub(self.passed)
    }
}

pub fn parse_nextest_summary(line: &str) -> Option<NextestSummary> {
    let line = strip_ansi(line);
    let rest = line.trim().strip_prefix("Summary [")?;
    let (time, rest) = rest.split_once(']')?;
    let seconds = time.trim().strip_suffix('s')?.parse::<f64>().ok()?;
    let (run, rest) = rest.trim().split_once(' ')?;
    let rest = rest
        .strip_prefix("tests run: ")
        .or_else(|| rest.strip_prefix("test run: "))?;
    let (passed, _) = rest.split_once(" passed")?;
    Some(NextestSummary {
        run: run.parse().ok()?,
        passed: passed.parse().ok()?,
        seconds: seconds as u64,
    })
}

/// Drops ANSI colour sequences (ESC [ ... letter) in case colour is forced.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines() {
        assert_eq!(
            parse_result_line(
                "test result: ok. 37 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s"
            ),
            Some((37, 0, 0))
        );
        assert_eq!(
            parse_result_line(
                "test result: FAILED. 10 passed; 2 failed; 3 ignored; 0 measured; 0 filtered out; finished in 3.13s"
            ),
            Some((10, 2, 3))
        );
        assert_eq!(
            parse_result_line("test result: \u{1b}[32mok\u{1b}[0m. 1 passed; 0 failed; 0 ignored"),
            Some((1, 0, 0))
        );
        assert_eq!(parse_result_line("test foo ... ok"), None);
        assert_eq!(
            parse_result_line("test result: ok. many passed; 0 failed"),
            None
        );
        assert_eq!(parse_result_line("test result: ok."), None);
    }

    #[test]
    fn nextest_summaries() {
        let s = |l| parse_nextest_summary(l);
        assert_eq!(
            s("     Summary [ 131.501s] 756 tests run: 756 passed, 1 skipped"),
            Some(NextestSummary {
                run: 756,
                passed: 756,
                seconds: 131
            })
        );
        let t = s(
            "Summary [  20.0s] 9 tests run: 6 passed (2 slow), 2 failed, 1 timed out, 0 skipped",
        )
        .expect("parsed");
        assert_eq!((t.run, t.passed, t.failed()), (9, 6, 3));
        assert_eq!(
            s("\u{1b}[32;1m     Summary\u{1b}[0m [   0.1s] 1 test run: 0 passed, 1 failed, 0 skipped")
                .map(|t| t.failed()),
            Some(1)
        );
        assert_eq!(
            s("     Summary [   0.001s] 0 tests run: 0 passed, 76 skipped").map(|t| t.run),
            Some(0)
        );
        assert_eq!(
            s("        PASS [   0.012s] (71/76) xtask::bin/xtask a"),
            None
        );
        assert_eq!(s("Summary [ x] 3 tests run: 3 passed"), None);
    }

    #[test]
    fn tally_over_binaries() {
        let mut t = Tally::default();
        for l in [
            "     Running unittests src/lib.rs (target/debug/deps/qemu_runner-1)",
            "     Running tests/fake_qemu.rs (target/debug/deps/fake_qemu-2)",
            "   Doc-tests qemu_runner",
            "   Compiling xtask v0.1.0",
            "error: test failed, to rerun pass `--test fake_qemu`",
        ] {
            t.stderr_line(l);
        }
        for l in [
            "running 3 tests",
            "test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out",
            "test result: FAILED. 4 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out",
        ] {
            t.stdout_line(l);
        }
        assert_eq!((t.passed, t.failed, t.ignored), (7, 2, 1));
        assert_eq!(t.binaries, 3);
        assert_eq!(t.crashed(), 1);
    }
}
