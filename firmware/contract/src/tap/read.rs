//! Incremental parser for the TAP version 14 stream the firmware prints
//! (the host reads it; [`super::write`] writes it).
//!
//! The parser never fails: whatever it cannot make sense of is kept (as an
//! anomaly or a non-TAP line) so that the verdict can name it. It is fed one
//! console line at a time while QEMU runs, so a truncated stream still yields
//! everything up to the point where the firmware stopped.

use super::write::Tally;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// A `# SKIP` or `# TODO` directive on a test point, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    Skip(String),
    Todo(String),
}

/// The YAML diagnostic block attached to a test point.
///
/// Only top-level `key: value` pairs are decoded, as plain strings; that is
/// all the firmware prints (message, expected, got, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Yaml {
    /// Top-level keys in the order printed, values unquoted.
    pub fields: Vec<(String, String)>,
    /// The block's lines as printed, without the two-space indent.
    pub lines: Vec<String>,
    /// False when the stream ended, or other TAP came, before the closing `...`.
    pub closed: bool,
}

impl Yaml {
    /// The value of a top-level key, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// One test point: `ok 1 - name`, `not ok 2 - name # SKIP why`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    pub ok: bool,
    /// None when the firmware left the number out (the verdict rejects that).
    pub number: Option<u32>,
    pub name: String,
    pub directive: Option<Directive>,
    pub yaml: Option<Yaml>,
}

impl TestResult {
    /// `ok` with a SKIP directive: counted as skipped, not as passed.
    pub fn is_skip(&self) -> bool {
        self.ok && matches!(self.directive, Some(Directive::Skip(_)))
    }

    /// One-line description for verdict reasons, e.g.
    /// `not ok 2 - pgm.privileged (wrong code: expected 0x0002, got 0x0006)`.
    pub fn describe(&self) -> String {
        let mut s = String::from(if self.ok { "ok" } else { "not ok" });
        match self.number {
            Some(n) => s.push_str(&format!(" {n}")),
            None => s.push_str(" (unnumbered)"),
        }
        if !self.name.is_empty() {
            s.push_str(" - ");
            s.push_str(&self.name);
        }
        let directive = match &self.directive {
            Some(Directive::Skip(r)) => Some(("SKIP", r)),
            Some(Directive::Todo(r)) => Some(("TODO", r)),
            None => None,
        };
        if let Some((word, reason)) = directive {
            s.push_str(" # ");
            s.push_str(word);
            if !reason.is_empty() {
                s.push(' ');
                s.push_str(reason);
            }
        }
        if let Some(detail) = self.yaml.as_ref().and_then(yaml_detail) {
            s.push_str(&format!(" ({detail})"));
        }
        s
    }
}

/// "message: expected X, got Y" from whichever of the three keys exist.
fn yaml_detail(yaml: &Yaml) -> Option<String> {
    let one_line = |v: &str| v.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut parts = Vec::new();
    if let Some(m) = yaml.get("message") {
        parts.push(one_line(m));
    }
    let values = match (yaml.get("expected"), yaml.get("got")) {
        (Some(e), Some(g)) => Some(format!("expected {}, got {}", one_line(e), one_line(g))),
        (Some(e), None) => Some(format!("expected {}", one_line(e))),
        (None, Some(g)) => Some(format!("got {}", one_line(g))),
        (None, None) => None,
    };
    parts.extend(values);
    (!parts.is_empty()).then(|| parts.join(": "))
}

/// The plan line `1..N`, with the comment of `1..0 # SKIP why` if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub count: u32,
    pub comment: Option<String>,
}

/// Counts, as in the firmware's last line `2 passed, 1 failed, 1 skipped`:
/// the writer's [`Tally`], read back.
pub type Summary = Tally;

/// Everything the parser extracted from the stream so far.
///
/// What is kept is bounded whatever the console prints (see
/// [`MAX_KEPT_RESULTS`] and [`MAX_KEPT_BYTES`]); what is not kept is
/// counted in [`TapReport::dropped`], and the counts, the numbering and
/// the failures stay exact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TapReport {
    /// The N of `TAP version N`.
    pub version: Option<u32>,
    pub plan: Option<Plan>,
    /// The first [`MAX_KEPT_RESULTS`] results.
    pub results: Vec<TestResult>,
    /// `# ...` lines, without the `# `.
    pub diagnostics: Vec<String>,
    /// The reason after `Bail out!` (possibly empty).
    pub bail_out: Option<String>,
    /// The firmware's closing counts line.
    pub summary: Option<Summary>,
    /// Non-blank lines that came after the summary line (the contract has none).
    pub lines_after_summary: usize,
    /// Breaches of the TAP grammar, such as a repeated plan or an unclosed YAML block.
    pub anomalies: Vec<String>,
    /// Lines that are not TAP at all; TAP says to ignore them.
    pub other: Vec<String>,
    /// Console lines seen (0: the console printed nothing at all).
    pub lines: u64,
    /// Counts of every result, kept or not.
    pub tally: Summary,
    /// What was not kept.
    pub dropped: Dropped,
    /// The result numbers, checked as they come.
    pub numbering: Numbering,
}

/// What a flooding console made the parser leave out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Results past [`MAX_KEPT_RESULTS`] (counted in the tally all the same).
    pub results: u64,
    /// Of those, `not ok` ones ...
    pub failures: u64,
    /// ... and the first few of them, described.
    pub failure_samples: Vec<String>,
    pub diagnostics: u64,
    pub anomalies: u64,
    pub other: u64,
    /// YAML lines and values not kept.
    pub yaml: u64,
    /// Console lines that were longer than the runner keeps, and cut.
    pub cut_lines: u64,
}

impl TapReport {
    /// Counts of every result: passed = ok without SKIP, skipped = ok with
    /// SKIP, failed = every `not ok`.
    pub fn counts(&self) -> Summary {
        self.tally
    }

    /// The kept results that are `not ok` (see [`Dropped::failures`] for the others).
    pub fn failures(&self) -> impl Iterator<Item = &TestResult> {
        self.results.iter().filter(|r| !r.ok)
    }

    /// The first kept result with this name.
    pub fn result(&self, name: &str) -> Option<&TestResult> {
        self.results.iter().find(|r| r.name == name)
    }
}

/// Result numbers as seen: which, how often, in what order. Its size
/// grows with the number of gaps, never with the numbers themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Numbering {
    /// Disjoint runs of numbers seen (≥ 1), start → end inclusive.
    runs: BTreeMap<u32, u32>,
    /// More runs than [`MAX_RUNS`] came: later numbers are not tracked.
    scattered: bool,
    previous: u32,
    out_of_order: bool,
    zeros: u64,
    duplicates: u64,
    duplicate_samples: Vec<u32>,
    unnumbered: u64,
    unnumbered_samples: Vec<(u64, String)>,
    results: u64,
}

/// Bounds [`Numbering`]: a stream this scattered fails anyway.
const MAX_RUNS: usize = 4096;
/// How many examples of each kind of numbering problem are kept.
const SAMPLES: usize = 5;

impl Numbering {
    fn record(&mut self, result: &TestResult) {
        self.results += 1;
        let Some(n) = result.number else {
            self.unnumbered += 1;
            if self.unnumbered_samples.len() < SAMPLES {
                self.unnumbered_samples
                    .push((self.results, result.describe()));
            }
            return;
        };
        self.out_of_order |= n < self.previous;
        self.previous = n;
        if n == 0 {
            self.zeros += 1;
            return;
        }
        if self.scattered {
            return;
        }
        let below = self.runs.range(..=n).next_back().map(|(&s, &e)| (s, e));
        if below.is_some_and(|(_, e)| e >= n) {
            self.duplicates += 1;
            if self.duplicate_samples.len() < SAMPLES {
                self.duplicate_samples.push(n);
            }
            return;
        }
        let above = n.checked_add(1).and_then(|m| self.runs.get(&m).copied());
        match below {
            Some((s, e)) if e.checked_add(1) == Some(n) => {
                let end = above.unwrap_or(n);
                if above.is_some() {
                    self.runs.remove(&(n + 1));
                }
                self.runs.insert(s, end);
            }
            _ => {
                if let Some(end) = above {
                    self.runs.remove(&(n + 1));
                    self.runs.insert(n, end);
                } else if self.runs.len() < MAX_RUNS {
                    self.runs.insert(n, n);
                } else {
                    self.scattered = true;
                }
            }
        }
    }

    /// The highest number seen (0 if none).
    pub fn highest(&self) -> u32 {
        self.runs.last_key_value().map_or(0, |(_, &e)| e)
    }

    /// Some number came after a higher one.
    pub fn out_of_order(&self) -> bool {
        self.out_of_order
    }

    /// More distinct runs of numbers than are tracked came.
    pub fn scattered(&self) -> bool {
        self.scattered
    }

    /// How many results carried number 0.
    pub fn zeros(&self) -> u64 {
        self.zeros
    }

    /// How many results repeated a number, and the first few numbers.
    pub fn duplicates(&self) -> (u64, &[u32]) {
        (self.duplicates, &self.duplicate_samples)
    }

    /// How many results had no number, and the first few (position, description).
    pub fn unnumbered(&self) -> (u64, &[(u64, String)]) {
        (self.unnumbered, &self.unnumbered_samples)
    }

    /// The numbers below the highest that never came: how many, and
    /// their first few runs.
    pub fn missing(&self) -> (u64, Vec<(u32, u32)>) {
        let mut count = 0u64;
        let mut samples = Vec::new();
        let mut next = 1u32;
        for (&s, &e) in &self.runs {
            if s > next {
                count += u64::from(s - next);
                if samples.len() < SAMPLES {
                    samples.push((next, s - 1));
                }
            }
            next = e.saturating_add(1);
        }
        (count, samples)
    }

    /// The numbers seen above `limit`: how many, and their first few runs.
    pub fn above(&self, limit: u32) -> (u64, Vec<(u32, u32)>) {
        let mut count = 0u64;
        let mut samples = Vec::new();
        for (&s, &e) in self.runs.range(..) {
            if e <= limit {
                continue;
            }
            let s = s.max(limit.saturating_add(1));
            count += u64::from(e - s) + 1;
            if samples.len() < SAMPLES {
                samples.push((s, e));
            }
        }
        (count, samples)
    }
}

/// Results kept in [`TapReport::results`]; the firmware has about 60 checks.
pub const MAX_KEPT_RESULTS: usize = 10_000;
/// Lines kept in each of diagnostics, anomalies and other lines.
pub const MAX_KEPT_LINES: usize = 10_000;
/// Text kept in the whole report (names, YAML, diagnostics, other lines,
/// anomalies); what comes after is counted, not kept.
pub const MAX_KEPT_BYTES: usize = 8 << 20;
/// Lines and keys kept per YAML block.
const MAX_YAML_LINES: usize = 1000;

/// Feeds lines in, one at a time, as they arrive.
#[derive(Debug, Default)]
pub struct TapParser {
    report: TapReport,
    /// Bytes kept of diagnostics, other lines and anomalies, and of
    /// results (names, YAML): half of [`MAX_KEPT_BYTES`] each, so that
    /// a flood of one kind cannot push out the other.
    text_bytes: usize,
    result_bytes: usize,
    /// Lines recognised as TAP so far (to spot a late version line).
    tap_lines: usize,
    /// The previous TAP line was a test point, so a YAML block may follow.
    after_result: bool,
    /// Inside a `---` ... `...` block of the last result.
    in_yaml: bool,
    /// That block belongs to a result that was not kept: read, not stored.
    yaml_dropped: bool,
    /// The last YAML key takes the following more-indented lines (`|`, `>`,
    /// or a nested mapping), joined with this separator.
    yaml_continuation: Option<&'static str>,
}

/// A line the firmware writes for a failure or a bail-out, but not at the
/// start of the line or not as TAP spells it (`  not ok`, `NOT OK`,
/// `bail out!`): `(is a bail-out, the rest after the words)`.
fn disguised(line: &str) -> Option<(bool, &str)> {
    let bare = line.trim_start_matches(|c: char| c == '\u{feff}' || c.is_whitespace());
    let starts = |word: &str| {
        bare.get(..word.len())
            .filter(|w| w.eq_ignore_ascii_case(word))
            .map(|_| &bare[word.len()..])
    };
    if let Some(rest) = starts("bail out!") {
        return (!line.starts_with("Bail out!")).then_some((true, rest));
    }
    let rest = starts("not ok")?;
    let word_ends = rest.is_empty() || rest.starts_with([' ', '\t']);
    (word_ends && !line.starts_with("not ok")).then_some((false, rest))
}

impl TapParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything parsed so far.
    pub fn report(&self) -> &TapReport {
        &self.report
    }

    /// Ends the stream; an open YAML block becomes an anomaly.
    pub fn finish(mut self) -> TapReport {
        if self.in_yaml {
            self.close_unterminated_yaml("the stream ended");
        }
        self.report
    }

    /// Tells the parser that the console line just fed was longer than
    /// the runner keeps, and `dropped` bytes of it were thrown away: an
    /// anomaly (the firmware's lines are short), counted in
    /// [`Dropped::cut_lines`].
    pub fn line_was_cut(&mut self, kept: usize, dropped: u64) {
        self.report.dropped.cut_lines += 1;
        if self.report.dropped.cut_lines > SAMPLES as u64 {
            return; // counted; the verdict says how many
        }
        self.anomaly(format!(
            "console line {} was {} bytes long: cut after {kept}",
            self.report.lines,
            kept as u64 + dropped
        ));
    }

    /// Parses one line; a trailing "\n" or "\r\n" (or a stray "\r") is ignored.
    pub fn feed(&mut self, line: &str) {
        self.report.lines += 1;
        let line = line.trim_end_matches(['\n', '\r']);
        let line = line.strip_prefix('\r').unwrap_or(line);

        if self.in_yaml {
            if let Some(body) = line.strip_prefix("  ") {
                self.yaml_line(body);
                return;
            }
            if line.trim().is_empty() {
                self.yaml_line("");
                return;
            }
            self.close_unterminated_yaml("the next TAP line came");
        }

        if self.report.summary.is_some() {
            if !line.trim().is_empty() {
                self.report.lines_after_summary += 1;
                self.keep_other(line);
            }
            return;
        }

        let after_result = core::mem::take(&mut self.after_result);
        let line = match line.strip_prefix('\u{feff}') {
            Some(rest) => {
                self.anomaly(format!("line starts with a byte-order mark: {line:?}"));
                rest
            }
            None => line,
        };
        if let Some((bail, rest)) = disguised(line) {
            // Meant as a failure, whatever its spelling: the stream fails.
            if bail {
                self.bail(rest);
                self.anomaly(format!("`Bail out!` not as TAP writes it: {line:?}"));
            } else {
                self.anomaly(format!(
                    "failed test point not as TAP writes it (not counted): {line:?}"
                ));
            }
        } else if let Some(at) = line.find("Bail out!").filter(|&at| at > 0) {
            // The firmware bailed out while a line was being written: the
            // start of that line is cut off, never a result. Found in any
            // line, `#` diagnostics too: the firmware never writes it
            // inside one (its own texts are quoted escaped), so erring
            // towards a failure costs nothing.
            self.bail(&line[at + "Bail out!".len()..]);
            let cut = &line[..at];
            let what = if parse_result(cut).is_some() {
                "a result line (not counted)"
            } else {
                "a line"
            };
            self.anomaly(format!(
                "`Bail out!` in the middle of {what}: {cut:?} was cut off by it"
            ));
        } else if let Some(v) = line.strip_prefix("TAP version ") {
            self.version(v.trim());
        } else if let Some(plan) = parse_plan(line) {
            self.plan(plan, line);
        } else if let Some(reason) = line.strip_prefix("Bail out!") {
            self.bail(reason);
        } else if let Some(d) = line.strip_prefix('#') {
            // Not counted as TAP: diagnostics may come before the version line.
            let d = d.strip_prefix(' ').unwrap_or(d);
            if !keep(
                &mut self.report.diagnostics,
                &mut self.text_bytes,
                MAX_KEPT_LINES,
                d,
            ) {
                self.report.dropped.diagnostics += 1;
            }
            return;
        } else if let Some(result) = parse_result(line) {
            self.result(result);
        } else if line.trim_end() == "  ---" {
            self.yaml_start(after_result);
        } else if let Some(summary) = parse_summary(line) {
            self.report.summary = Some(summary);
        } else {
            if !line.trim().is_empty() {
                self.keep_other(line);
            }
            // A non-TAP line does not separate a test point from its YAML.
            self.after_result = after_result;
            return;
        }
        self.tap_lines += 1;
    }

    fn bail(&mut self, reason: &str) {
        if self.report.bail_out.is_none() {
            let reason = reason.trim();
            self.text_bytes += reason.len();
            self.report.bail_out = Some(reason.to_string());
        }
    }

    fn result(&mut self, result: TestResult) {
        let tally = &mut self.report.tally;
        if !result.ok {
            tally.failed = tally.failed.saturating_add(1);
        } else if result.is_skip() {
            tally.skipped = tally.skipped.saturating_add(1);
        } else {
            tally.passed = tally.passed.saturating_add(1);
        }
        self.report.numbering.record(&result);
        self.after_result = true;
        let size = result.name.len() + 64;
        if self.report.results.len() < MAX_KEPT_RESULTS
            && self.result_bytes + size <= MAX_KEPT_BYTES / 2
        {
            self.result_bytes += size;
            self.report.results.push(result);
            self.yaml_dropped = false;
            return;
        }
        let dropped = &mut self.report.dropped;
        dropped.results += 1;
        if !result.ok {
            dropped.failures += 1;
            if dropped.failure_samples.len() < SAMPLES {
                dropped.failure_samples.push(result.describe());
            }
        }
        self.yaml_dropped = true;
    }

    fn keep_other(&mut self, line: &str) {
        if !keep(
            &mut self.report.other,
            &mut self.text_bytes,
            MAX_KEPT_LINES,
            line,
        ) {
            self.report.dropped.other += 1;
        }
    }

    fn version(&mut self, v: &str) {
        if self.report.version.is_some() {
            self.anomaly("repeated TAP version line".into());
            return;
        }
        if self.tap_lines > 0 {
            self.anomaly("the TAP version line is not the first TAP line".into());
        }
        match v.parse() {
            Ok(n) => self.report.version = Some(n),
            Err(_) => self.anomaly(format!("bad TAP version {v:?}")),
        }
    }

    fn plan(&mut self, plan: Result<Plan, String>, line: &str) {
        match plan {
            Ok(p) if self.report.plan.is_none() => self.report.plan = Some(p),
            Ok(_) => self.anomaly(format!("repeated plan {line:?}")),
            Err(why) => self.anomaly(why),
        }
    }

    fn yaml_start(&mut self, after_result: bool) {
        if after_result && self.yaml_dropped {
            self.in_yaml = true;
            self.yaml_continuation = None;
            return;
        }
        match self.report.results.last_mut() {
            Some(r) if after_result && r.yaml.is_none() => {
                r.yaml = Some(Yaml::default());
                self.in_yaml = true;
                self.yaml_continuation = None;
            }
            _ => self.anomaly("YAML block not right after a test point".into()),
        }
    }

    fn yaml_line(&mut self, body: &str) {
        if body.trim_end() == "..." {
            if let Some(yaml) = self.current_yaml() {
                yaml.closed = true;
            }
            self.in_yaml = false;
            return;
        }
        if let Some(at) = body.find("Bail out!") {
            // A bail-out cut into the block: the run ended here.
            self.in_yaml = false;
            self.bail(&body[at + "Bail out!".len()..]);
            self.anomaly(format!(
                "`Bail out!` inside a YAML block: {:?} was cut off by it",
                &body[..at]
            ));
            return;
        }
        if self.yaml_dropped {
            self.report.dropped.yaml += 1;
            return;
        }
        let budget = (MAX_KEPT_BYTES / 2).saturating_sub(self.result_bytes);
        let continuation = self.yaml_continuation;
        let Some(yaml) = self.report.results.last_mut().and_then(|r| r.yaml.as_mut()) else {
            return;
        };
        let mut used = 0;
        let mut lost = 0;
        if yaml.lines.len() < MAX_YAML_LINES && body.len() <= budget {
            yaml.lines.push(body.to_string());
            used += body.len();
        } else {
            lost += 1;
        }
        if body.starts_with([' ', '\t']) || body.trim().is_empty() {
            if let (Some(sep), Some((_, value))) = (continuation, yaml.fields.last_mut()) {
                let more = body.trim();
                if !more.is_empty() {
                    if used + more.len() + 1 > budget {
                        lost += 1;
                    } else {
                        if !value.is_empty() {
                            value.push_str(sep);
                        }
                        value.push_str(more);
                        used += more.len() + 1;
                    }
                }
            }
        } else {
            self.yaml_continuation = None;
            if let Some((key, value)) = split_key(body) {
                let value = value.trim();
                let (value, continuation) = match value {
                    "|" | "|-" | "|+" => (String::new(), "\n"),
                    ">" | ">-" | ">+" => (String::new(), " "),
                    // A nested mapping or list: keep its lines, one per line.
                    "" => (String::new(), "\n"),
                    v => (unquote(v), " "),
                };
                self.yaml_continuation = Some(continuation);
                if yaml.fields.len() < MAX_YAML_LINES && used + body.len() <= budget {
                    yaml.fields.push((key.to_string(), value));
                    used += body.len();
                } else {
                    lost += 1;
                    // Continuation lines must not go to the previous key.
                    self.yaml_continuation = None;
                }
            }
        }
        self.result_bytes += used;
        self.report.dropped.yaml += lost;
    }

    fn current_yaml(&mut self) -> Option<&mut Yaml> {
        if self.yaml_dropped {
            return None;
        }
        self.report.results.last_mut().and_then(|r| r.yaml.as_mut())
    }

    fn close_unterminated_yaml(&mut self, why: &str) {
        self.in_yaml = false;
        let name = match (self.yaml_dropped, self.report.results.last()) {
            (false, Some(r)) => r.describe(),
            _ => String::from("a result not kept"),
        };
        self.anomaly(format!("YAML block of `{name}` not closed before {why}"));
    }

    fn anomaly(&mut self, what: String) {
        if !keep(
            &mut self.report.anomalies,
            &mut self.text_bytes,
            MAX_KEPT_LINES,
            &what,
        ) {
            self.report.dropped.anomalies += 1;
        }
    }
}

/// Keeps `line` in `list` while both the list's cap and the text budget allow.
fn keep(list: &mut Vec<String>, kept_bytes: &mut usize, max: usize, line: &str) -> bool {
    if list.len() >= max || *kept_bytes + line.len() > MAX_KEPT_BYTES / 2 {
        return false;
    }
    *kept_bytes += line.len();
    list.push(line.to_string());
    true
}

/// Parses a whole text at once (tests, logs read back from disk).
pub fn parse(text: &str) -> TapReport {
    let mut p = TapParser::new();
    text.lines().for_each(|l| p.feed(l));
    p.finish()
}

/// `1..N [# comment]`. None if the line does not look like a plan at all.
fn parse_plan(line: &str) -> Option<Result<Plan, String>> {
    let (first, rest) = line.split_once("..")?;
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let (count, tail) = rest.split_at(digits);
    let tail = tail.trim();
    let comment = match tail.strip_prefix('#') {
        Some(c) => Some(c.trim().to_string()),
        None if tail.is_empty() => None,
        None => return None,
    };
    if first != "1" {
        return Some(Err(format!("plan {line:?} does not start at 1")));
    }
    Some(match count.parse() {
        Ok(count) => Ok(Plan { count, comment }),
        Err(_) => Err(format!("plan {line:?} out of range")),
    })
}

/// `ok|not ok [N] [-] [description] [# SKIP|TODO [reason]]`.
fn parse_result(line: &str) -> Option<TestResult> {
    let (ok, rest) = match line.strip_prefix("not ok") {
        Some(rest) => (false, rest),
        None => (true, line.strip_prefix("ok")?),
    };
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None; // "okay", "ok1"
    }
    let mut rest = rest.trim_start();
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let mut number = None;
    if digits > 0
        && rest[digits..]
            .chars()
            .next()
            .is_none_or(|c| c == ' ' || c == '\t')
    {
        number = rest[..digits].parse().ok();
        if number.is_some() {
            rest = rest[digits..].trim_start();
        }
    }
    if rest == "-" {
        rest = "";
    } else if let Some(r) = rest.strip_prefix("- ") {
        rest = r.trim_start();
    }
    let (description, directive) = match split_directive(rest) {
        Some((d, directive)) => (d, Some(directive)),
        None => (rest, None),
    };
    Some(TestResult {
        ok,
        number,
        name: unescape_description(description.trim()),
        directive,
        yaml: None,
    })
}

/// Splits at the first unescaped `#` if what follows is SKIP or TODO.
fn split_directive(s: &str) -> Option<(&str, Directive)> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'#' => {
                let text = s[i + 1..].trim();
                let word_len = text.find([' ', '\t']).unwrap_or(text.len());
                let word = text[..word_len].to_ascii_lowercase();
                let reason = text[word_len..].trim().to_string();
                return if word.starts_with("skip") {
                    Some((&s[..i], Directive::Skip(reason)))
                } else if word.starts_with("todo") {
                    Some((&s[..i], Directive::Todo(reason)))
                } else {
                    None
                };
            }
            _ => i += 1,
        }
    }
    None
}

/// TAP escapes `#` and `\` in descriptions with a backslash.
fn unescape_description(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(n @ ('#' | '\\'))) => {
                out.push(n);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// `N passed, M failed, K skipped` (the skipped part may be left out).
fn parse_summary(line: &str) -> Option<Summary> {
    let mut parts = line.trim().split(", ");
    let mut field = |word: &str| -> Option<u32> {
        let (n, w) = parts.next()?.split_once(' ')?;
        (w == word).then_some(())?;
        n.parse().ok()
    };
    let passed = field("passed")?;
    let failed = field("failed")?;
    let skipped = match parts.next() {
        None => 0,
        Some(p) => {
            let (n, w) = p.split_once(' ')?;
            (w == "skipped").then_some(())?;
            n.parse().ok()?
        }
    };
    parts.next().is_none().then_some(Summary {
        passed,
        failed,
        skipped,
    })
}

/// `key: value` at the top level of a YAML block.
fn split_key(body: &str) -> Option<(&str, &str)> {
    let (key, value) = body.split_once(':')?;
    let key = key.trim_end();
    let good = !key.is_empty() && (value.is_empty() || value.starts_with([' ', '\t']));
    good.then_some((key, value))
}

/// Strips YAML quotes from a scalar: "..." with backslash escapes, '...' with ''.
fn unquote(v: &str) -> String {
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        let inner = &v[1..v.len() - 1];
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        }
        out
    } else if v.len() >= 2 && v.starts_with('\'') && v.ends_with('\'') {
        v[1..v.len() - 1].replace("''", "'")
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests;
