//! TAP version 14 writer: plan, results, YAML failure blocks, bail out, and
//! the closing `N passed, N failed, N skipped` line the host reads.

use crate::check::Outcome;
use core::fmt;
use ufmt::uWrite;

/// Counts of results: passed (ok without SKIP), failed, skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub passed: u32,
    pub failed: u32,
    pub skipped: u32,
}

/// As the summary line writes it, without the newline.
impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct TapWriter {
    next: u32,
    pub tally: Tally,
}

/// Writes `s` as a double-quoted YAML scalar.
fn yaml_str<W: uWrite + ?Sized>(w: &mut W, s: &str) -> Result<(), W::Error> {
    w.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => w.write_str("\\\"")?,
            '\\' => w.write_str("\\\\")?,
            '\n' => w.write_str("\\n")?,
            c if (c as u32) < 0x20 || c as u32 == 0x7f => w.write_str("?")?,
            c => w.write_char(c)?,
        }
    }
    w.write_char('"')
}

/// Keeps a name or directive on one line and free of `#`.
fn one_line<W: uWrite + ?Sized>(w: &mut W, s: &str) -> Result<(), W::Error> {
    for c in s.chars() {
        w.write_char(if c == '\n' || c == '\r' || c == '#' {
            ' '
        } else {
            c
        })?;
    }
    Ok(())
}

impl TapWriter {
    pub const fn new() -> Self {
        TapWriter {
            next: 0,
            tally: Tally {
                passed: 0,
                failed: 0,
                skipped: 0,
            },
        }
    }

    pub fn header<W: uWrite + ?Sized>(w: &mut W) -> Result<(), W::Error> {
        w.write_str("TAP version 14\n")
    }

    pub fn plan<W: uWrite + ?Sized>(w: &mut W, count: u32) -> Result<(), W::Error> {
        ufmt::uwrite!(w, "1..{}\n", count)
    }

    /// One `# ` line per line of `text`.
    pub fn diag<W: uWrite + ?Sized>(w: &mut W, text: &str) -> Result<(), W::Error> {
        for line in text.split('\n') {
            w.write_str("# ")?;
            w.write_str(line)?;
            w.write_char('\n')?;
        }
        Ok(())
    }

    pub fn result<W: uWrite + ?Sized>(
        &mut self,
        w: &mut W,
        name: &str,
        outcome: &Outcome,
    ) -> Result<(), W::Error> {
        self.next += 1;
        match outcome {
            Outcome::Pass => {
                self.tally.passed += 1;
                ufmt::uwrite!(w, "ok {} - ", self.next)?;
                one_line(w, name)?;
            }
            Outcome::PassNote(note) => {
                self.tally.passed += 1;
                ufmt::uwrite!(w, "ok {} - ", self.next)?;
                one_line(w, name)?;
                w.write_str("\n  ---\n  note: ")?;
                yaml_str(w, note)?;
                w.write_str("\n  ...")?;
            }
            Outcome::Skip(reason) => {
                self.tally.skipped += 1;
                ufmt::uwrite!(w, "ok {} - ", self.next)?;
                one_line(w, name)?;
                w.write_str(" # SKIP ")?;
                one_line(w, reason)?;
            }
            Outcome::Fail(f) => {
                self.tally.failed += 1;
                ufmt::uwrite!(w, "not ok {} - ", self.next)?;
                one_line(w, name)?;
                w.write_str("\n  ---\n  message: ")?;
                yaml_str(w, &f.message)?;
                if let Some(e) = &f.expected {
                    w.write_str("\n  expected: ")?;
                    yaml_str(w, e)?;
                }
                if let Some(g) = &f.got {
                    w.write_str("\n  got: ")?;
                    yaml_str(w, g)?;
                }
                w.write_str("\n  ...")?;
            }
        }
        w.write_char('\n')
    }

    /// What starts a bail-out line, its reason after it.
    pub const BAIL_OUT: &'static str = "Bail out! ";

    pub fn bail_out<W: uWrite + ?Sized>(w: &mut W, reason: &str) -> Result<(), W::Error> {
        w.write_str(Self::BAIL_OUT)?;
        one_line(w, reason)?;
        w.write_char('\n')
    }

    /// The last line of every report, after a bail out too.
    pub fn summary<W: uWrite + ?Sized>(tally: Tally, w: &mut W) -> Result<(), W::Error> {
        ufmt::uwrite!(
            w,
            "{} passed, {} failed, {} skipped\n",
            tally.passed,
            tally.failed,
            tally.skipped
        )
    }

    pub fn results_written(&self) -> u32 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fmt::StrBuf;

    #[test]
    fn full_report() {
        let mut out = StrBuf::default();
        let mut tap = TapWriter::default();
        TapWriter::header(&mut out).unwrap();
        TapWriter::diag(&mut out, "host: QEMU\nmemory: 128 MiB").unwrap();
        TapWriter::plan(&mut out, 3).unwrap();
        tap.result(&mut out, "a.one", &Outcome::Pass).unwrap();
        tap.result(
            &mut out,
            "a.two",
            &Outcome::mismatch("code \"x\"", 2u32, 6u32),
        )
        .unwrap();
        tap.result(&mut out, "a.three", &Outcome::skip("no # device\nhere"))
            .unwrap();
        tap.result(&mut out, "a.four", &Outcome::PassNote("found \"x\"".into()))
            .unwrap();
        TapWriter::summary(tap.tally, &mut out).unwrap();
        assert_eq!(
            out.0,
            "TAP version 14\n# host: QEMU\n# memory: 128 MiB\n1..3\nok 1 - a.one\n\
             not ok 2 - a.two\n  ---\n  message: \"code \\\"x\\\"\"\n  expected: \"2\"\n  got: \"6\"\n  ...\n\
             ok 3 - a.three # SKIP no   device here\n\
             ok 4 - a.four\n  ---\n  note: \"found \\\"x\\\"\"\n  ...\n2 passed, 1 failed, 1 skipped\n"
        );
        assert_eq!(tap.results_written(), 4);
    }

    #[test]
    fn bail_out_is_one_line() {
        let mut out = StrBuf::default();
        TapWriter::bail_out(&mut out, "unexpected\nprogram interrupt").unwrap();
        assert_eq!(out.0, "Bail out! unexpected program interrupt\n");
    }
}
