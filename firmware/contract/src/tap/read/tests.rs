use super::*;

const GOOD: &str = "\
TAP version 14
# zvtest 0.1.0
# host: QEMU TCG
1..3
ok 1 - boot.vectors
ok 2 - boot.memory
ok 3 - legacy.page # SKIP no device page
2 passed, 0 failed, 1 skipped
";

const MIXED: &str = "\
TAP version 14
1..3
ok 1 - boot.vectors
not ok 2 - pgm.privileged
  ---
  message: wrong interruption code
  expected: 0x0002
  got: 0x0006
  ...
# between results
ok 3 - legacy.page # SKIP no device page
1 passed, 1 failed, 1 skipped
";

#[test]
fn good_stream() {
    let r = parse(GOOD);
    assert_eq!(r.version, Some(14));
    assert_eq!(
        r.plan,
        Some(Plan {
            count: 3,
            comment: None
        })
    );
    assert_eq!(r.diagnostics, ["zvtest 0.1.0", "host: QEMU TCG"]);
    let names: Vec<_> = r.results.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["boot.vectors", "boot.memory", "legacy.page"]);
    let numbers: Vec<_> = r.results.iter().map(|t| t.number).collect();
    assert_eq!(numbers, [Some(1), Some(2), Some(3)]);
    assert!(r.results.iter().all(|t| t.ok));
    assert_eq!(
        r.results[2].directive,
        Some(Directive::Skip("no device page".into()))
    );
    assert!(r.results[2].is_skip() && !r.results[0].is_skip());
    let counts = Summary {
        passed: 2,
        failed: 0,
        skipped: 1,
    };
    assert_eq!(r.summary, Some(counts));
    assert_eq!(r.counts(), counts);
    assert!(r.anomalies.is_empty() && r.other.is_empty() && r.bail_out.is_none());
    assert_eq!(r.lines_after_summary, 0);
}

#[test]
fn carriage_returns_are_ignored() {
    let crlf = GOOD.replace('\n', "\r\n");
    assert_eq!(parse(&crlf), parse(GOOD));
    let mut p = TapParser::new();
    p.feed("\rTAP version 14\r\r\n");
    assert_eq!(p.report().version, Some(14));
}

#[test]
fn yaml_block_is_attached_to_its_result() {
    let r = parse(MIXED);
    let failed = &r.results[1];
    assert!(!failed.ok);
    let yaml = failed.yaml.as_ref().expect("yaml");
    assert!(yaml.closed);
    assert_eq!(yaml.get("message"), Some("wrong interruption code"));
    assert_eq!(yaml.get("expected"), Some("0x0002"));
    assert_eq!(yaml.get("got"), Some("0x0006"));
    assert_eq!(yaml.get("nothing"), None);
    assert_eq!(yaml.lines.len(), 3);
    assert_eq!(
        failed.describe(),
        "not ok 2 - pgm.privileged (wrong interruption code: expected 0x0002, got 0x0006)"
    );
    assert!(r.results[0].yaml.is_none() && r.results[2].yaml.is_none());
    assert_eq!(r.diagnostics, ["between results"]);
    assert_eq!(r.counts(), r.summary.unwrap());
    assert!(r.anomalies.is_empty());
}

#[test]
fn yaml_quoting_and_multiline_values() {
    let r = parse(
        "TAP version 14\n1..1\nnot ok 1 - x\n  ---\n  message: \"say \\\"hi\\\": now\"\n  \
         single: 'it''s'\n  colon: a: b\n  log: |\n    line one\n    line two\n  \
         folded: >\n    a\n    b\n  psw:\n    mask: 0x1\n    addr: 0x2\n  empty:\n  ...\n",
    );
    let y = r.results[0].yaml.as_ref().unwrap();
    assert_eq!(y.get("message"), Some("say \"hi\": now"));
    assert_eq!(y.get("single"), Some("it's"));
    assert_eq!(y.get("colon"), Some("a: b"));
    assert_eq!(y.get("log"), Some("line one\nline two"));
    assert_eq!(y.get("folded"), Some("a b"));
    assert_eq!(y.get("psw"), Some("mask: 0x1\naddr: 0x2"));
    assert_eq!(y.get("empty"), Some(""));
    assert!(y.closed);
    // Multi-line values are flattened in the one-line description.
    assert_eq!(r.results[0].describe(), "not ok 1 - x (say \"hi\": now)");
}

#[test]
fn describe_with_partial_yaml_and_directives() {
    let r = parse(
        "not ok 1 - a\n  ---\n  got: 7\n  ...\nnot ok 2 - b\n  ---\n  expected: 1\n  ...\n\
         ok - c # skip\nnot ok 4 # TODO later\n",
    );
    let d: Vec<_> = r.results.iter().map(|t| t.describe()).collect();
    assert_eq!(
        d,
        [
            "not ok 1 - a (got 7)",
            "not ok 2 - b (expected 1)",
            "ok (unnumbered) - c # SKIP",
            "not ok 4 # TODO later",
        ]
    );
}

#[test]
fn truncated_stream_keeps_what_came() {
    // QEMU died (or was killed) in the middle of a YAML block.
    let mut p = TapParser::new();
    for l in MIXED.lines().take(7) {
        p.feed(l);
    }
    let partial = p.report().clone();
    assert_eq!(partial.results.len(), 2);
    assert_eq!(
        partial.results[1].yaml.as_ref().unwrap().get("expected"),
        Some("0x0002")
    );
    let r = p.finish();
    assert!(!r.results[1].yaml.as_ref().unwrap().closed);
    assert_eq!(r.anomalies.len(), 1);
    assert!(r.anomalies[0].contains("not closed"), "{:?}", r.anomalies);
    assert!(r.summary.is_none());
}

#[test]
fn yaml_cut_short_by_the_next_result() {
    let r = parse("1..2\nnot ok 1 - a\n  ---\n  message: m\nok 2 - b\n");
    assert_eq!(r.results.len(), 2);
    assert_eq!(
        r.results[0].yaml.as_ref().unwrap().get("message"),
        Some("m")
    );
    assert!(
        r.anomalies[0].contains("`not ok 1 - a (m)`"),
        "{:?}",
        r.anomalies
    );
}

#[test]
fn stray_yaml_is_an_anomaly() {
    let r = parse("TAP version 14\n  ---\n1..0\n");
    assert_eq!(r.anomalies.len(), 1);
    let r = parse("ok 1\n# diag\n  ---\n");
    assert_eq!(r.anomalies.len(), 1);
    assert!(r.results[0].yaml.is_none());
}

#[test]
fn non_tap_lines_between_result_and_yaml_are_tolerated() {
    let r = parse("not ok 1 - a\nqemu noise\n  ---\n  message: m\n  ...\n");
    assert_eq!(
        r.results[0].yaml.as_ref().unwrap().get("message"),
        Some("m")
    );
    assert_eq!(r.other, ["qemu noise"]);
    assert!(r.anomalies.is_empty());
}

#[test]
fn result_line_forms() {
    let one = |line: &str| parse_result(line);
    let r = one("ok").unwrap();
    assert!(r.ok && r.number.is_none() && r.name.is_empty());
    let r = one("not ok 12").unwrap();
    assert!(!r.ok && r.number == Some(12) && r.name.is_empty());
    let r = one("ok 3 no dash").unwrap();
    assert_eq!((r.number, r.name.as_str()), (Some(3), "no dash"));
    let r = one("ok 4 - 5 apples").unwrap();
    assert_eq!((r.number, r.name.as_str()), (Some(4), "5 apples"));
    let r = one("ok 5a - x").unwrap();
    assert_eq!((r.number, r.name.as_str()), (None, "5a - x"));
    let r = one("ok 6 - a \\# b \\\\ c").unwrap();
    assert_eq!(r.name, "a # b \\ c");
    let r = one("ok 7 - name # not a directive").unwrap();
    assert_eq!(
        (r.name.as_str(), &r.directive),
        ("name # not a directive", &None)
    );
    let r = one("ok 8 - n #SKIP").unwrap();
    assert_eq!(r.directive, Some(Directive::Skip(String::new())));
    let r = one("ok 9 - n # Skipped: no disk").unwrap();
    assert_eq!(r.directive, Some(Directive::Skip("no disk".into())));
    let r = one("not ok 10 - n # todo fix").unwrap();
    assert_eq!(r.directive, Some(Directive::Todo("fix".into())));
    let r = one("ok 99999999999 - big").unwrap();
    assert_eq!(r.number, None);
    assert!(one("okay").is_none());
    assert!(one("ok1").is_none());
    assert!(one("not okay").is_none());
    assert!(one(" ok 1").is_none());
}

#[test]
fn plan_forms() {
    assert_eq!(
        parse_plan("1..0 # SKIP nothing here"),
        Some(Ok(Plan {
            count: 0,
            comment: Some("SKIP nothing here".into())
        }))
    );
    assert!(matches!(parse_plan("2..5"), Some(Err(_))));
    assert!(matches!(parse_plan("1..99999999999"), Some(Err(_))));
    assert_eq!(parse_plan("1..x"), None);
    assert_eq!(parse_plan("..5"), None);
    assert_eq!(parse_plan("1..5 apples"), None);
    let r = parse("1..2\n1..3\n");
    assert_eq!(r.plan.unwrap().count, 2);
    assert_eq!(r.anomalies.len(), 1);
}

#[test]
fn plan_may_come_last() {
    let r = parse("TAP version 14\nok 1 - a\nok 2 - b\n1..2\n2 passed, 0 failed, 0 skipped\n");
    assert_eq!(r.plan.unwrap().count, 2);
    assert!(r.anomalies.is_empty());
}

#[test]
fn version_line_rules() {
    assert!(parse("TAP version 14\nTAP version 14\n").anomalies[0].contains("repeated"));
    assert!(parse("1..1\nTAP version 14\n").anomalies[0].contains("not the first"));
    let r = parse("TAP version fourteen\n");
    assert_eq!(r.version, None);
    assert_eq!(r.anomalies.len(), 1);
    assert_eq!(parse("TAP version 13\n").version, Some(13));
    // Console noise before the version line is fine.
    let r = parse("SeaBIOS noise\nTAP version 14\n");
    assert!(r.anomalies.is_empty());
    assert_eq!(r.other, ["SeaBIOS noise"]);
}

#[test]
fn bail_out_then_summary() {
    let r = parse(
        "TAP version 14\n1..5\nok 1 - a\nok 2 - b\n\
         Bail out! unexpected program interrupt 0x0004 at PSW 0x0704000180000000 0x12345\n\
         # PSW dump\n2 passed, 0 failed, 0 skipped\n",
    );
    assert_eq!(
        r.bail_out.as_deref(),
        Some("unexpected program interrupt 0x0004 at PSW 0x0704000180000000 0x12345")
    );
    assert_eq!(r.results.len(), 2);
    assert_eq!(r.diagnostics, ["PSW dump"]);
    assert_eq!(r.summary, Some(r.counts()));
    assert_eq!(parse("Bail out!").bail_out.as_deref(), Some(""));
    assert_eq!(
        parse("Bail out! a\nBail out! b").bail_out.as_deref(),
        Some("a")
    );
}

#[test]
fn summary_line_forms() {
    let s = |a, b, c| Summary {
        passed: a,
        failed: b,
        skipped: c,
    };
    assert_eq!(
        parse_summary("2 passed, 1 failed, 1 skipped"),
        Some(s(2, 1, 1))
    );
    assert_eq!(parse_summary("2 passed, 1 failed"), Some(s(2, 1, 0)));
    assert_eq!(
        parse_summary("0 passed, 0 failed, 0 skipped "),
        Some(s(0, 0, 0))
    );
    assert_eq!(parse_summary("2 passed, 1 failed, 1 skipped, 3 more"), None);
    assert_eq!(parse_summary("2 passed; 1 failed"), None);
    assert_eq!(parse_summary("x passed, 1 failed"), None);
    assert_eq!(parse_summary("2 failed, 1 passed"), None);
    assert_eq!(s(1, 2, 3).to_string(), "1 passed, 2 failed, 3 skipped");
}

#[test]
fn lines_after_the_summary_are_counted_not_parsed() {
    let r = parse(&format!("{GOOD}ok 4 - late\n\n# late diag\n"));
    assert_eq!(r.results.len(), 3);
    assert_eq!(r.lines_after_summary, 2);
    assert_eq!(r.other, ["ok 4 - late", "# late diag"]);
}

#[test]
fn duplicate_and_missing_numbers_are_kept_as_printed() {
    let r = parse("1..3\nok 1 - a\nok 1 - b\nok 3 - c\n");
    let numbers: Vec<_> = r.results.iter().map(|t| t.number).collect();
    assert_eq!(numbers, [Some(1), Some(1), Some(3)]);
    assert_eq!(r.result("b").unwrap().number, Some(1));
    assert!(r.result("d").is_none());
}

#[test]
fn incremental_feed_matches_whole_parse() {
    let mut p = TapParser::new();
    for l in MIXED.split_inclusive('\n') {
        p.feed(l);
    }
    assert_eq!(p.report().results.len(), 3);
    assert_eq!(p.finish(), parse(MIXED));
}

#[test]
fn flood_is_bounded() {
    let mut p = TapParser::new();
    for _ in 0..MAX_KEPT_LINES + 5 {
        p.feed("# spam");
        p.feed("junk");
    }
    let r = p.finish();
    assert_eq!(r.diagnostics.len(), MAX_KEPT_LINES);
    assert_eq!(r.other.len(), MAX_KEPT_LINES);
    assert_eq!(r.dropped.diagnostics, 5);
    assert_eq!(r.dropped.other, 5);
    assert_eq!(r.lines, 2 * (MAX_KEPT_LINES as u64 + 5));
}

/// Bytes of text a report holds (what the byte budget bounds).
fn kept_text(r: &TapReport) -> usize {
    let lists = [&r.diagnostics, &r.other, &r.anomalies];
    let yaml: usize = r
        .results
        .iter()
        .filter_map(|t| t.yaml.as_ref())
        .map(|y| {
            y.lines.iter().map(String::len).sum::<usize>()
                + y.fields
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>()
        })
        .sum();
    lists
        .iter()
        .flat_map(|l| l.iter())
        .map(String::len)
        .sum::<usize>()
        + r.results.iter().map(|t| t.name.len()).sum::<usize>()
        + yaml
}

#[test]
fn long_lines_are_bounded_by_bytes_not_only_by_count() {
    // Old behaviour: 10,000 kept lines of 64 KiB each, 655 MB.
    let long = format!("# {}", "x".repeat(16 * 1024));
    let mut p = TapParser::new();
    for _ in 0..2000 {
        p.feed(&long);
        p.feed(&long[2..]);
    }
    let r = p.finish();
    assert!(kept_text(&r) <= MAX_KEPT_BYTES, "{}", kept_text(&r));
    assert_eq!(
        r.diagnostics.len() as u64 + r.dropped.diagnostics,
        2000,
        "every line counted"
    );
    assert!(r.dropped.diagnostics > 0 && r.dropped.other > 0);
}

#[test]
fn endless_yaml_is_bounded() {
    let mut p = TapParser::new();
    p.feed("not ok 1 - a");
    p.feed("  ---");
    p.feed("  log: |");
    let chunk = format!("    {}", "y".repeat(8000));
    for _ in 0..5000 {
        p.feed(&chunk);
    }
    p.feed("  ...");
    let r = p.finish();
    let y = r.results[0].yaml.as_ref().unwrap();
    assert!(y.closed);
    assert!(kept_text(&r) <= MAX_KEPT_BYTES, "{}", kept_text(&r));
    assert!(r.dropped.yaml > 0);
}

#[test]
fn results_past_the_cap_are_counted_and_failures_kept_in_view() {
    let mut p = TapParser::new();
    p.feed("TAP version 14");
    let n = MAX_KEPT_RESULTS as u32 + 100;
    p.feed(&format!("1..{n}"));
    for i in 1..n {
        p.feed(&format!("ok {i} - check{i}"));
    }
    p.feed(&format!("not ok {n} - late.failure"));
    p.feed("  ---");
    p.feed("  message: m");
    p.feed("  ...");
    let r = p.finish();
    assert_eq!(r.results.len(), MAX_KEPT_RESULTS);
    assert_eq!(r.dropped.results, 100);
    assert_eq!(r.dropped.failures, 1);
    assert_eq!(
        r.dropped.failure_samples,
        [format!("not ok {n} - late.failure")]
    );
    assert_eq!(
        r.counts(),
        Summary {
            passed: n - 1,
            failed: 1,
            skipped: 0
        }
    );
    // The late YAML block attaches to nothing kept, and is no anomaly.
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    assert_eq!(r.failures().count(), 0);
}

#[test]
fn numbering_runs() {
    let mut p = TapParser::new();
    for n in [3u32, 1, 2, 2, 7, 9, 8, 0, u32::MAX] {
        p.feed(&format!("ok {n}"));
    }
    p.feed("ok");
    let r = p.finish();
    let n = &r.numbering;
    assert_eq!(n.highest(), u32::MAX);
    assert_eq!(n.duplicates(), (1, &[2][..]));
    assert_eq!(n.zeros(), 1);
    assert!(n.out_of_order());
    assert_eq!(n.unnumbered().0, 1);
    assert_eq!(
        n.missing(),
        (u64::from(u32::MAX) - 7, vec![(4, 6), (10, u32::MAX - 1)])
    );
    assert_eq!(n.above(8), (2, vec![(9, 9), (u32::MAX, u32::MAX)]));
    assert_eq!(n.above(u32::MAX), (0, vec![]));
    assert!(!n.scattered());
}

#[test]
fn scattered_numbers_stay_bounded() {
    let mut p = TapParser::new();
    for i in 0..100_000u32 {
        p.feed(&format!("ok {}", i * 2 + 1));
    }
    let r = p.finish();
    assert!(r.numbering.scattered());
    let (count, samples) = r.numbering.missing();
    assert!(count > 0 && samples.len() <= 5);
}

/// Lines that mean a failure, however they are spelled, fail the stream.
#[test]
fn disguised_failures_are_anomalies() {
    for line in [
        "  not ok 3 - x",
        "NOT OK 3 - x",
        "Not Ok 3",
        "\tnot ok",
        "\u{feff}not ok 3 - x",
    ] {
        let r = parse(&format!(
            "TAP version 14\n1..0\n{line}\n0 passed, 0 failed, 0 skipped\n"
        ));
        assert!(!r.anomalies.is_empty(), "{line:?} accepted");
        assert!(r.bail_out.is_none(), "{line:?}");
    }
    // The BOM one is read as the failure it is.
    let r = parse("\u{feff}not ok 3 - x\n");
    assert_eq!(r.counts().failed, 1);
    for line in [
        "bail out! x",
        "  Bail out! x",
        "BAIL OUT! x",
        "\u{feff}Bail out! x",
    ] {
        let r = parse(&format!("TAP version 14\n{line}\n"));
        assert_eq!(r.bail_out.as_deref(), Some("x"), "{line:?}");
    }
    // Words that only start the same way, and YAML lines, are not.
    for text in [
        "not okay\n",
        "  nothing\n",
        "# not ok in a comment\n",
        "not ok 1 - a\n  ---\n  got: |\n    not ok 3 - x\n  not ok: 2\n  ...\n",
    ] {
        let r = parse(text);
        assert!(r.anomalies.is_empty(), "{text:?}: {:?}", r.anomalies);
        assert!(r.bail_out.is_none(), "{text:?}");
    }
}

#[test]
fn bail_out_in_the_middle_of_a_line() {
    // A restart interrupt arrived while "ok 6 - pgm.restart" was being written.
    let r = parse(
        "TAP version 14\n1..6\nok 5 - pgm.a\nok 6 - pgm.Bail out! unexpected restart interrupt\n\
         0 passed, 0 failed, 0 skipped\n",
    );
    assert_eq!(r.bail_out.as_deref(), Some("unexpected restart interrupt"));
    assert_eq!(r.results.len(), 1, "the cut result is not a pass");
    assert_eq!(r.counts().passed, 1);
    assert!(
        r.anomalies[0].contains("\"ok 6 - pgm.\" was cut off"),
        "{:?}",
        r.anomalies
    );
    // Inside a diagnostic or a YAML block alike.
    let r = parse("# heap: 12Bail out! panic: x\n");
    assert_eq!(r.bail_out.as_deref(), Some("panic: x"));
    assert!(r.diagnostics.is_empty());
    let r = parse("not ok 1 - a\n  ---\n  got: 0x1Bail out! unexpected restart interrupt\n");
    assert_eq!(r.bail_out.as_deref(), Some("unexpected restart interrupt"));
    assert_eq!(r.anomalies.len(), 1, "{:?}", r.anomalies);
}

#[test]
fn cut_lines_are_anomalies() {
    let mut p = TapParser::new();
    p.feed("ok 1 - a");
    p.line_was_cut(8, 100);
    let r = p.finish();
    assert_eq!(r.dropped.cut_lines, 1);
    assert_eq!(
        r.anomalies,
        ["console line 1 was 108 bytes long: cut after 8"]
    );
}

#[test]
fn a_diagnostics_flood_does_not_push_out_results() {
    let mut p = TapParser::new();
    let long = format!("# {}", "d".repeat(16 * 1024));
    for _ in 0..1000 {
        p.feed(&long);
    }
    p.feed("not ok 1 - css.inventory");
    p.feed("  ---");
    p.feed("  message: m");
    p.feed("  ...");
    let r = p.finish();
    assert!(r.dropped.diagnostics > 0);
    assert_eq!(r.results.len(), 1);
    assert_eq!(
        r.results[0].yaml.as_ref().unwrap().get("message"),
        Some("m")
    );
}
