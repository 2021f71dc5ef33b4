//! Property tests of the runner's parsers on generated input: the TAP
//! parser (round trips of what the firmware's own writer prints, broken
//! reports, noise) and the QMP reader (lines by QMP's rules, malformed
//! ones refused, nesting and length bounded, the handshake over a socket
//! against serde_json as an oracle). Each prints what it tried, to stderr
//! past the harness capture.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use qemu_runner::qmp::{self, Client, Message};
use qemu_runner::tap::{self, Directive, TapParser, MAX_KEPT_BYTES};
use qemu_runner::{judge, Exit};
use std::cell::RefCell;
use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};
use zvtest_contract::check::{Failure, Outcome};
use zvtest_contract::fmt::StrBuf;
use zvtest_contract::tap::TapWriter;

/// One input that takes longer than this counts as a hang.
const HANG: Duration = Duration::from_secs(1);

/// What a parser made of the generated inputs.
#[derive(Debug, Default)]
struct Tally {
    tried: u64,
    /// Well-formed and read back as written.
    accepted: u64,
    /// Malformed and refused (or failed) with a message.
    rejected: u64,
    /// Malformed but accepted without a word: must stay 0.
    accepted_malformed: u64,
    /// Well-formed but refused, or read back differently: must stay 0.
    misread: u64,
    hangs: u64,
}

impl Tally {
    fn print(&self, parser: &str) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "property {parser}: tried {}, accepted {}, rejected with a message {}, \
             malformed accepted silently {}, misread {}, hangs {}",
            self.tried,
            self.accepted,
            self.rejected,
            self.accepted_malformed,
            self.misread,
            self.hangs
        );
    }

    fn check(&self, parser: &str) {
        self.print(parser);
        assert_eq!(self.accepted_malformed, 0, "{parser}");
        assert_eq!(self.misread, 0, "{parser}");
        assert_eq!(self.hangs, 0, "{parser}");
    }
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Timed: counts a hang past [`HANG`].
fn timed<T>(tally: &mut Tally, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let v = f();
    if t.elapsed() > HANG {
        tally.hangs += 1;
    }
    v
}

// ---- TAP -------------------------------------------------------------

/// A check as the firmware reports it.
#[derive(Debug, Clone)]
enum Check {
    Pass,
    Skip(String),
    Fail(String, Option<String>, Option<String>),
}

/// Free text the firmware may print in reasons and YAML values: any
/// characters but the one phrase that ends a run.
fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[ -~\\t\\n\\u{e0}-\\u{ff}\\u{2028}\\u{1F600}\\u{7}]{0,40}")
        .unwrap()
        .prop_filter("a bail-out phrase", |s| !s.contains("Bail out!"))
}

/// Check names as the firmware spells them.
fn name() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-z][a-z0-9_-]{0,10}(\\.[a-z0-9*_-]{1,12}){0,3}").unwrap()
}

fn check() -> impl Strategy<Value = (String, Check)> {
    let outcome = prop_oneof![
        Just(Check::Pass),
        text().prop_map(Check::Skip),
        (
            text(),
            proptest::option::of(text()),
            proptest::option::of(text())
        )
            .prop_map(|(m, e, g)| Check::Fail(m, e, g)),
    ];
    (name(), outcome)
}

/// Diagnostics, then checks.
type Report = (Vec<String>, Vec<(String, Check)>);

fn report() -> impl Strategy<Value = Report> {
    (
        proptest::collection::vec(text(), 0..4),
        proptest::collection::vec(check(), 0..12),
    )
}

/// The report the firmware's TapWriter prints for these diagnostics and checks.
fn write_report(diags: &[String], checks: &[(String, Check)]) -> String {
    let mut out = StrBuf::default();
    let mut w = TapWriter::new();
    TapWriter::header(&mut out).unwrap();
    for d in diags {
        TapWriter::diag(&mut out, d).unwrap();
    }
    TapWriter::plan(&mut out, checks.len() as u32).unwrap();
    for (name, c) in checks {
        let outcome = match c {
            Check::Pass => Outcome::Pass,
            Check::Skip(r) => Outcome::Skip(r.clone()),
            Check::Fail(m, e, g) => Outcome::Fail(Failure {
                message: m.clone(),
                expected: e.clone(),
                got: g.clone(),
            }),
        };
        w.result(&mut out, name, &outcome).unwrap();
    }
    TapWriter::summary(w.tally, &mut out).unwrap();
    out.0
}

/// What the writer does to a name or reason: one line, no `#`.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r', '#'], " ")
}

/// What the writer does to a YAML value: control characters become `?`.
fn yaml_value(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c != '\n' && ((c as u32) < 0x20 || c as u32 == 0x7f) {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// The parsed report says exactly what was written.
fn read_back(diags: &[String], checks: &[(String, Check)], text: &str) -> Result<(), String> {
    let r = tap::parse(text);
    let want_diags: Vec<String> = diags
        .iter()
        .flat_map(|d| d.split('\n'))
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    if r.diagnostics != want_diags {
        return Err(format!("diagnostics {:?}", r.diagnostics));
    }
    if r.version != Some(14) || r.plan.as_ref().map(|p| p.count) != Some(checks.len() as u32) {
        return Err("version or plan".into());
    }
    if !r.anomalies.is_empty() || !r.other.is_empty() || r.bail_out.is_some() {
        return Err(format!("anomalies {:?}, other {:?}", r.anomalies, r.other));
    }
    if r.results.len() != checks.len() || r.summary != Some(r.counts()) {
        return Err("results or summary".into());
    }
    for (i, ((name, c), got)) in checks.iter().zip(&r.results).enumerate() {
        let same = got.number == Some(i as u32 + 1)
            && got.name == one_line(name).trim()
            && match c {
                Check::Pass => got.ok && got.directive.is_none() && got.yaml.is_none(),
                Check::Skip(reason) => {
                    got.ok && got.directive == Some(Directive::Skip(one_line(reason).trim().into()))
                }
                Check::Fail(m, e, g) => {
                    let y = got.yaml.as_ref();
                    !got.ok
                        && y.is_some_and(|y| y.closed)
                        && y.and_then(|y| y.get("message")) == Some(&yaml_value(m))
                        && y.and_then(|y| y.get("expected"))
                            == e.as_deref().map(yaml_value).as_deref()
                        && y.and_then(|y| y.get("got")) == g.as_deref().map(yaml_value).as_deref()
                }
            };
        if !same {
            return Err(format!("result {}: {got:?} for {name:?} {c:?}", i + 1));
        }
    }
    let failed = checks.iter().any(|(_, c)| matches!(c, Check::Fail(..)));
    let exit = Exit::Code(i32::from(failed));
    let v = judge(&exit, &r);
    let want: Vec<String> = r.failures().map(|f| f.describe()).collect();
    if v.reasons.iter().skip(usize::from(failed)).ne(want.iter()) {
        return Err(format!("verdict {:?}", v.reasons));
    }
    Ok(())
}

#[test]
fn tap_written_by_the_firmware_reads_back_exactly() {
    let cell = RefCell::new(Tally::default());
    let mut runner = runner(512);
    runner
        .run(&report(), |(diags, checks)| {
            let tally = &mut *cell.borrow_mut();
            tally.tried += 1;
            let text = write_report(&diags, &checks);
            match timed(tally, || read_back(&diags, &checks, &text)) {
                Ok(()) => tally.accepted += 1,
                Err(e) => {
                    tally.misread += 1;
                    panic!("{e}\n{text}");
                }
            }
            Ok(())
        })
        .unwrap();
    cell.into_inner().check("TAP round trip");
}

/// Ways to break a well-formed report; each must fail the verdict.
#[derive(Debug, Clone)]
enum Break {
    DropLine(usize),
    RepeatLine(usize),
    Renumber(usize, u32),
    Disguise(usize, &'static str),
    BailInside(usize, usize),
    CutAt(usize),
    Summary(u32),
    LateLine,
}

fn broken() -> impl Strategy<Value = (Report, Break)> {
    let disguise = prop_oneof![
        Just("  "),
        Just("\t"),
        Just("\u{feff}"),
        Just("UPPER"),
        Just("lower-bail"),
    ];
    let brk = prop_oneof![
        any::<usize>().prop_map(Break::DropLine),
        any::<usize>().prop_map(Break::RepeatLine),
        (any::<usize>(), 0u32..50).prop_map(|(i, n)| Break::Renumber(i, n)),
        (any::<usize>(), disguise).prop_map(|(i, d)| Break::Disguise(i, d)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, at)| Break::BailInside(i, at)),
        any::<usize>().prop_map(Break::CutAt),
        (1u32..5).prop_map(Break::Summary),
        Just(Break::LateLine),
    ];
    let report = (
        proptest::collection::vec(text(), 0..3),
        proptest::collection::vec(check(), 1..8),
    );
    (report, brk)
}

/// Applies `b` to the report's lines; None when it would change nothing.
fn apply(text: &str, b: &Break) -> Option<String> {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let results: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("ok ") || lines[i].starts_with("not ok "))
        .collect();
    let pick = |i: usize| results[i % results.len()];
    match *b {
        Break::DropLine(i) => {
            lines.remove(pick(i));
        }
        Break::RepeatLine(i) => {
            let l = lines[pick(i)].clone();
            lines.insert(pick(i), l);
        }
        Break::Renumber(i, n) => {
            let at = pick(i);
            let (word, rest) = if let Some(r) = lines[at].strip_prefix("not ok ") {
                ("not ok", r)
            } else {
                ("ok", lines[at].strip_prefix("ok ")?)
            };
            let (num, tail) = rest.split_once(' ')?;
            if num == n.to_string() {
                return None;
            }
            lines[at] = format!("{word} {n} {tail}");
        }
        Break::Disguise(i, how) => {
            let at = pick(i);
            let l = &lines[at];
            lines[at] = match how {
                "UPPER" => l.replacen("ok", "OK", 1).replacen("not", "NOT", 1),
                // A failure the firmware meant, spelled as it must not be.
                "lower-bail" => format!("bail out! {l}"),
                prefix => format!("{prefix}not {}", l.trim_start_matches("not ")),
            };
        }
        Break::BailInside(i, at) => {
            let l = pick(i);
            let cut = lines[l].len() - at % lines[l].len().max(1);
            let cut = (1..=cut).rev().find(|&c| lines[l].is_char_boundary(c))?;
            lines[l].truncate(cut);
            lines[l].push_str("Bail out! unexpected restart interrupt");
        }
        Break::CutAt(i) => lines.truncate(i % (lines.len() - 1) + 1),
        Break::Summary(k) => {
            let last = lines.last_mut()?;
            let (n, rest) = last.split_once(' ')?;
            let n: u32 = n.parse().ok()?;
            *last = format!("{} {rest}", n + k);
        }
        Break::LateLine => lines.push("# after the end".into()),
    }
    let mut out = lines.join("\n");
    out.push('\n');
    (out != text).then_some(out)
}

#[test]
fn broken_tap_reports_fail_with_a_reason() {
    let cell = RefCell::new(Tally::default());
    let mut runner = runner(1000);
    runner
        .run(&broken(), |((diags, checks), b)| {
            let tally = &mut *cell.borrow_mut();
            let text = write_report(&diags, &checks);
            let Some(bad) = apply(&text, &b) else {
                return Ok(());
            };
            tally.tried += 1;
            // QEMU's exit status says pass: the TAP alone must tell.
            let v = timed(tally, || judge(&Exit::Code(0), &tap::parse(&bad)));
            if v.is_pass() {
                tally.accepted_malformed += 1;
                panic!("{b:?} passed:\n{bad}");
            } else if v.reasons.iter().all(|r| !r.is_empty()) {
                tally.rejected += 1;
            }
            Ok(())
        })
        .unwrap();
    cell.into_inner().check("TAP broken reports");
}

/// Lines that look a little like TAP, and some that are huge.
fn noise() -> impl Strategy<Value = Vec<String>> {
    let piece = prop_oneof![
        Just("ok ".to_string()),
        Just("not ok ".to_string()),
        Just("TAP version 14".to_string()),
        Just("  ---".to_string()),
        Just("  ...".to_string()),
        Just("Bail out!".to_string()),
        Just("# ".to_string()),
        Just("1..".to_string()),
        Just(" passed, ".to_string()),
        Just("\u{feff}".to_string()),
        any::<u32>().prop_map(|n| n.to_string()),
        proptest::string::string_regex("[ -~\\t\\u{80}-\\u{10ffff}]{0,12}").unwrap(),
        (1usize..200_000).prop_map(|n| "x".repeat(n)),
    ];
    let line = proptest::collection::vec(piece, 0..6).prop_map(|p| p.concat());
    proptest::collection::vec(line, 0..60)
}

#[test]
fn any_console_input_is_parsed_in_bounded_time_and_memory() {
    let cell = RefCell::new(Tally::default());
    let mut runner = runner(256);
    runner
        .run(&noise(), |lines| {
            let tally = &mut *cell.borrow_mut();
            tally.tried += 1;
            let r = timed(tally, || {
                let mut p = TapParser::new();
                for l in &lines {
                    p.feed(l);
                }
                let r = p.finish();
                let _ = judge(&Exit::Code(0), &r);
                r
            });
            let kept: usize = r
                .diagnostics
                .iter()
                .chain(&r.other)
                .chain(&r.anomalies)
                .map(String::len)
                .sum();
            assert!(kept <= MAX_KEPT_BYTES);
            assert_eq!(r.lines, lines.len() as u64);
            tally.accepted += 1;
            Ok(())
        })
        .unwrap();
    cell.into_inner().check("TAP noise");
}

// ---- QMP -------------------------------------------------------------

/// JSON values of every kind, nested a few levels, keys from a small set
/// that never names a QMP member.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| n.into()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| f.into()),
        "[ -~\\u{80}-\\u{10ffff}]{0,8}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            proptest::collection::vec(("[a-c]{0,2}", inner), 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A line QEMU might send: an object with some of QMP's members (each
/// well-formed or not) among others, and the message it must read as by
/// QMP's rules, applied here to what was generated: an `error` member
/// first (its `class` and `desc` when they are strings), then `return`,
/// then a string `event` (its `data.device` when a string), then `QMP`.
fn qmp_line() -> impl Strategy<Value = (String, Message)> {
    let text = || "[ -~\\u{80}-\\u{2ff}]{0,10}";
    let error = prop_oneof![
        (text(), text()).prop_map(|(c, d)| serde_json::json!({"class": c, "desc": d})),
        json_value(),
    ];
    let event = prop_oneof![
        3 => (text(), proptest::option::of(text())).prop_map(|(name, device)| {
            let data = device.map_or(serde_json::Value::Null, |d| serde_json::json!({"device": d}));
            (serde_json::Value::String(name), data)
        }),
        1 => (json_value(), json_value()),
    ];
    (
        proptest::option::of(error),
        proptest::option::of(json_value()),
        proptest::option::of(event),
        proptest::option::of(json_value()),
        proptest::collection::vec(("[a-c]{0,2}", json_value()), 0..3),
        any::<bool>(),
    )
        .prop_map(|(error, ret, event, greeting, others, padded)| {
            let mut m = serde_json::Map::new();
            for (k, v) in others {
                m.insert(k, v);
            }
            if let Some(e) = &error {
                m.insert("error".into(), e.clone());
            }
            if let Some(r) = ret.clone() {
                m.insert("return".into(), r);
            }
            if let Some((name, data)) = &event {
                m.insert("event".into(), name.clone());
                if !data.is_null() {
                    m.insert("data".into(), data.clone());
                }
            }
            if let Some(g) = greeting.clone() {
                m.insert("QMP".into(), g);
            }
            let mut line = serde_json::Value::Object(m).to_string();
            if padded {
                line = format!(" \t{line}\r");
            }
            let string = |v: &serde_json::Value, k: &str| {
                v.get(k).and_then(|s| s.as_str()).unwrap_or("").to_string()
            };
            let want = if let Some(e) = error {
                let desc = string(&e, "desc");
                Message::Error {
                    class: string(&e, "class"),
                    desc: if desc.is_empty() {
                        "(no description)".into()
                    } else {
                        desc
                    },
                }
            } else if ret.is_some() {
                Message::Return
            } else if let Some((serde_json::Value::String(name), data)) = event {
                Message::Event {
                    name,
                    device: data
                        .get("device")
                        .and_then(|d| d.as_str())
                        .map(String::from),
                }
            } else if greeting.is_some() {
                Message::Greeting
            } else {
                Message::Other(line.trim().to_string())
            };
            (line, want)
        })
}

/// Damage at one place: characters of JSON's own, bad escapes, leading
/// zeros, numbers out of range.
fn damage() -> impl Strategy<Value = (usize, String, usize)> {
    (
        any::<usize>(),
        proptest::string::string_regex(
            "[\\[\\]{}\",:0-9eE+\\-.tfnul\\\\ ]|\\\\u[0-9a-fA-F+\\- ]{4}|\\\\ud[89ab][0-9a-f]{2}|0[0-9]|1e999",
        )
        .unwrap(),
        0usize..3,
    )
}

fn damaged(s: &str, (at, piece, cut): &(usize, String, usize)) -> String {
    let mut s = s.to_string();
    let mut at = at % (s.len() + 1);
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    let mut end = (at + cut).min(s.len());
    while !s.is_char_boundary(end) {
        end += 1;
    }
    s.replace_range(at..end, piece);
    s
}

/// Short strings of JSON's own characters: mostly malformed.
fn json_noise() -> impl Strategy<Value = String> {
    proptest::string::string_regex(
        "([\\[\\]{}\",:0-9eE+\\-.tfnrula\\\\ ]|\\\\u[0-9a-fA-F+]{4}){0,24}",
    )
    .unwrap()
}

/// Well-formed lines read as QMP's rules say; damaged or noisy lines
/// that are not JSON (RFC 8259) are only ever `Other`: never taken for a
/// reply, an error, an event or a greeting.
#[test]
fn qmp_lines_are_read_by_the_rules_and_malformed_ones_refused() {
    let cell = RefCell::new(Tally::default());
    runner(1000)
        .run(&qmp_line(), |(line, want)| {
            let tally = &mut *cell.borrow_mut();
            tally.tried += 1;
            let got = timed(tally, || qmp::classify(&line));
            if got == want {
                tally.accepted += 1;
            } else {
                tally.misread += 1;
                panic!("{line:?}: {got:?}, want {want:?}");
            }
            Ok(())
        })
        .unwrap();
    let refused = |tally: &mut Tally, text: &str| {
        tally.tried += 1;
        let got = timed(tally, || qmp::classify(text));
        let json = serde_json::from_str::<serde_json::Value>(text.trim());
        match (&got, json) {
            (Message::Other(_), Err(_)) => tally.rejected += 1,
            (_, Err(e)) => {
                tally.accepted_malformed += 1;
                panic!("{text:?} read as {got:?}; not JSON: {e}");
            }
            // Damage that left valid JSON: read by the rules above.
            (_, Ok(_)) => tally.accepted += 1,
        }
    };
    runner(1000)
        .run(&(qmp_line(), damage()), |((line, _), d)| {
            refused(&mut cell.borrow_mut(), &damaged(&line, &d));
            Ok(())
        })
        .unwrap();
    runner(1000)
        .run(&json_noise(), |text| {
            refused(&mut cell.borrow_mut(), &text);
            Ok(())
        })
        .unwrap();
    cell.into_inner().check("QMP lines");
}

/// Nesting is bounded (serde_json stops at 128 levels) and costs no more
/// than the line's length, however deep the line tries to go; a line
/// longer than the client takes is refused without being kept.
#[test]
fn qmp_nesting_and_line_length_are_bounded() {
    let cell = RefCell::new(Tally::default());
    // How each level opens and closes, and how many containers it is.
    let level =
        prop::sample::select(&[("[", "]", 1), ("{\"a\": ", "}", 1), ("[{\"b\": ", "}]", 2)][..]);
    runner(256)
        .run(
            &(
                level,
                prop_oneof![0usize..300, 0usize..100_000],
                any::<bool>(),
            ),
            |((open, close, per), depth, closed)| {
                let tally = &mut *cell.borrow_mut();
                tally.tried += 1;
                let mut line = format!("{{\"return\": {}1", open.repeat(depth));
                if closed {
                    line.push_str(&close.repeat(depth));
                    line.push('}');
                }
                let got = timed(tally, || qmp::classify(&line));
                let levels = 1 + depth * per;
                match got {
                    Message::Return if closed && levels <= 256 => tally.accepted += 1,
                    Message::Other(_) if !closed || levels > 64 => tally.rejected += 1,
                    Message::Return if !closed => {
                        tally.accepted_malformed += 1;
                        panic!("an unclosed line read as a reply: depth {depth}");
                    }
                    other => {
                        tally.misread += 1;
                        panic!("{levels} levels, closed {closed}: {other:?}");
                    }
                }
                Ok(())
            },
        )
        .unwrap();
    // A line that never ends, sent in pieces: refused once past MAX_LINE.
    let mut tally = cell.into_inner();
    for piece in [1usize << 12, 1 << 16, 1 << 20] {
        tally.tried += 1;
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let talk = std::thread::spawn(move || {
            let chunk = vec![b'['; piece];
            while theirs.write_all(&chunk).is_ok() {}
        });
        let mut client = Client::from_stream(ours, |_| {}).unwrap();
        let result = timed(&mut tally, || client.handshake());
        match result {
            Err(e) if matches!(e.cause(), qmp::QmpError::LineTooLong) => tally.rejected += 1,
            other => {
                // Counted, and failed by check() below.
                tally.accepted_malformed += 1;
                eprintln!("{piece}: {:?}", other.map_err(|e| e.to_string()));
            }
        }
        drop(client);
        talk.join().unwrap();
    }
    tally.check("QMP bounds");
}

/// JSON texts serde_json writes, perhaps damaged at one place.
fn json_text() -> impl Strategy<Value = String> {
    let damage = prop_oneof![3 => Just(None), 1 => damage().prop_map(Some)];
    (json_value(), damage).prop_map(|(v, d)| {
        let s = v.to_string();
        match d {
            Some(d) => damaged(&s, &d),
            None => s,
        }
    })
}

/// What QMP line `line` is, by serde_json's reading (the reader's rules:
/// error, then return, then event, then greeting).
fn oracle(line: &str) -> Message {
    let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(line) else {
        return Message::Other(line.into());
    };
    if m.contains_key("error") {
        Message::Error {
            class: String::new(),
            desc: String::new(),
        }
    } else if m.contains_key("return") {
        Message::Return
    } else if m.get("event").is_some_and(|e| e.is_string()) {
        Message::Event {
            name: String::new(),
            device: None,
        }
    } else if m.contains_key("QMP") {
        Message::Greeting
    } else {
        Message::Other(String::new())
    }
}

/// QEMU's side of a session: lines that are QMP, JSON or neither, sent in
/// chunks that split lines anywhere.
fn qmp_stream() -> impl Strategy<Value = (Vec<String>, Vec<usize>)> {
    let line = prop_oneof![
        Just(r#"{"QMP": {"version": {}, "capabilities": []}}"#.to_string()),
        Just(r#"{"return": {}}"#.to_string()),
        Just(r#"{"error": {"class": "GenericError", "desc": "no"}}"#.to_string()),
        Just(r#"{"event": "RESUME", "data": {}}"#.to_string()),
        Just(r#"{"event": 5}"#.to_string()),
        Just(r#"{"QMP": 1, "return": 2}"#.to_string()),
        Just(String::new()),
        json_text(),
        json_noise(),
    ];
    (
        proptest::collection::vec(line, 0..8),
        proptest::collection::vec(1usize..40, 1..8),
    )
}

/// How the handshake must end for these lines: greeting, then a return.
fn expected_handshake(lines: &[String]) -> bool {
    let kinds: Vec<Message> = lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .map(oracle)
        .collect();
    let Some(g) = kinds.iter().position(|m| *m == Message::Greeting) else {
        return false;
    };
    kinds[g + 1..]
        .iter()
        .find(|m| matches!(m, Message::Return | Message::Error { .. }))
        .is_some_and(|m| *m == Message::Return)
}

#[test]
fn qmp_reader_agrees_with_the_oracle() {
    let cell = RefCell::new(Tally::default());
    let dir = std::env::temp_dir().join(format!("zvtest-qmp-prop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s");
    let listener = UnixListener::bind(&path).unwrap();
    runner(256)
        .run(&qmp_stream(), |(lines, chunks)| {
            let tally = &mut *cell.borrow_mut();
            tally.tried += 1;
            let mut bytes = lines.join("\n").into_bytes();
            bytes.push(b'\n');
            let server = std::thread::spawn({
                let listener = listener.try_clone().unwrap();
                move || {
                    let (mut c, _) = listener.accept().unwrap();
                    let mut at = 0;
                    for n in chunks.iter().cycle() {
                        if at >= bytes.len() {
                            break;
                        }
                        let end = (at + n).min(bytes.len());
                        if c.write_all(&bytes[at..end]).is_err() {
                            break;
                        }
                        at = end;
                    }
                    // Done talking: the reader sees the end of the stream,
                    // but its own lines still go through.
                    let _ = c.shutdown(std::net::Shutdown::Write);
                    let _ = std::io::copy(&mut c, &mut std::io::sink());
                }
            });
            let result = timed(tally, || {
                let mut client =
                    Client::connect(&path, Instant::now() + qmp::TIMEOUT, || false, |_| {})
                        .unwrap()
                        .timeout(Duration::from_millis(500));
                client.handshake()
            });
            server.join().unwrap();
            match (result, expected_handshake(&lines)) {
                (Ok(()), true) => tally.accepted += 1,
                (Err(e), false) if !e.to_string().is_empty() => tally.rejected += 1,
                (Ok(()), false) => {
                    tally.accepted_malformed += 1;
                    panic!("handshake accepted {lines:?}");
                }
                (r, _) => {
                    tally.misread += 1;
                    panic!("{:?} for {lines:?}", r.map_err(|e| e.to_string()));
                }
            }
            Ok(())
        })
        .unwrap();
    let _ = UnixStream::connect(&path);
    let _ = std::fs::remove_dir_all(&dir);
    cell.into_inner().check("QMP reader");
}
