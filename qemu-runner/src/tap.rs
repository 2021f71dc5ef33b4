//! Incremental parser for the TAP version 14 stream the firmware prints.
//!
//! The parser never fails: whatever it cannot make sense of is kept (as an
//! anomaly or a non-TAP line) so that the verdict can name it. It is fed one
//! console line at a time while QEMU runs, so a truncated stream still yields
//! everything up to the point where the firmware stopped.

use std::fmt;

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

/// Counts, as in the firmware's last line `2 passed, 1 failed, 1 skipped`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub passed: u32,
    pub failed: u32,
    pub skipped: u32,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }
}

/// Everything the parser extracted from the stream so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TapReport {
    /// The N of `TAP version N`.
    pub version: Option<u32>,
    pub plan: Option<Plan>,
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
}

impl TapReport {
    /// Counts computed from the results: passed = ok without SKIP,
    /// skipped = ok with SKIP, failed = every `not ok`.
    pub fn counts(&self) -> Summary {
        let mut c = Summary::default();
        for r in &self.results {
            if !r.ok {
                c.failed += 1;
            } else if r.is_skip() {
                c.skipped += 1;
            } else {
                c.passed += 1;
            }
        }
        c
    }

    /// The results that are `not ok`.
    pub fn failures(&self) -> impl Iterator<Item = &TestResult> {
        self.results.iter().filter(|r| !r.ok)
    }

    /// The first result with this name.
    pub fn result(&self, name: &str) -> Option<&TestResult> {
        self.results.iter().find(|r| r.name == name)
    }
}

/// Bounds what a flooding firmware can make us keep in memory.
const MAX_KEPT_LINES: usize = 10_000;

/// Feeds lines in, one at a time, as they arrive.
#[derive(Debug, Default)]
pub struct TapParser {
    report: TapReport,
    /// Lines recognised as TAP so far (to spot a late version line).
    tap_lines: usize,
    /// The previous TAP line was a test point, so a YAML block may follow.
    after_result: bool,
    /// Inside a `---` ... `...` block of the last result.
    in_yaml: bool,
    /// The last YAML key takes the following more-indented lines (`|`, `>`,
    /// or a nested mapping), joined with this separator.
    yaml_continuation: Option<&'static str>,
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

    /// Parses one line; a trailing "\n" or "\r\n" (or a stray "\r") is ignored.
    pub fn feed(&mut self, line: &str) {
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
                keep(&mut self.report.other, line);
            }
            return;
        }

        let after_result = std::mem::take(&mut self.after_result);
        if let Some(v) = line.strip_prefix("TAP version ") {
            self.version(v.trim());
        } else if let Some(plan) = parse_plan(line) {
            self.plan(plan, line);
        } else if let Some(reason) = line.strip_prefix("Bail out!") {
            if self.report.bail_out.is_none() {
                self.report.bail_out = Some(reason.trim().to_string());
            }
        } else if let Some(d) = line.strip_prefix('#') {
            // Not counted as TAP: diagnostics may come before the version line.
            let d = d.strip_prefix(' ').unwrap_or(d);
            keep(&mut self.report.diagnostics, d);
            return;
        } else if let Some(result) = parse_result(line) {
            self.report.results.push(result);
            self.after_result = true;
        } else if line.trim_end() == "  ---" {
            self.yaml_start(after_result);
        } else if let Some(summary) = parse_summary(line) {
            self.report.summary = Some(summary);
        } else {
            if !line.trim().is_empty() {
                keep(&mut self.report.other, line);
            }
            // A non-TAP line does not separate a test point from its YAML.
            self.after_result = after_result;
            return;
        }
        self.tap_lines += 1;
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
        let Some(yaml) = self.report.results.last_mut().and_then(|r| r.yaml.as_mut()) else {
            return;
        };
        if body.trim_end() == "..." {
            yaml.closed = true;
            self.in_yaml = false;
            return;
        }
        if yaml.lines.len() < MAX_KEPT_LINES {
            yaml.lines.push(body.to_string());
        }
        if body.starts_with([' ', '\t']) || body.trim().is_empty() {
            if let (Some(sep), Some((_, value))) = (self.yaml_continuation, yaml.fields.last_mut())
            {
                if !body.trim().is_empty() {
                    if !value.is_empty() {
                        value.push_str(sep);
                    }
                    value.push_str(body.trim());
                }
            }
            return;
        }
        self.yaml_continuation = None;
        let Some((key, value)) = split_key(body) else {
            return;
        };
        let value = value.trim();
        let (value, continuation) = match value {
            "|" | "|-" | "|+" => (String::new(), "\n"),
            ">" | ">-" | ">+" => (String::new(), " "),
            // A nested mapping or list: keep its lines, one per line.
            "" => (String::new(), "\n"),
            v => (unquote(v), " "),
        };
        self.yaml_continuation = Some(continuation);
        if yaml.fields.len() < MAX_KEPT_LINES {
            yaml.fields.push((key.to_string(), value));
        }
    }

    fn close_unterminated_yaml(&mut self, why: &str) {
        self.in_yaml = false;
        let name = match self.report.results.last() {
            Some(r) => r.describe(),
            None => String::from("?"),
        };
        self.anomaly(format!("YAML block of `{name}` not closed before {why}"));
    }

    fn anomaly(&mut self, what: String) {
        keep(&mut self.report.anomalies, &what);
    }
}

fn keep(list: &mut Vec<String>, line: &str) {
    if list.len() < MAX_KEPT_LINES {
        list.push(line.to_string());
    }
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
