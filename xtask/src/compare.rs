//! `cargo xtask bench --compare OLD.json`: two reports figure by figure.
//! Each figure has a stable key (`check blk.stress`, `queue <label>
//! req/s`, `latency diag44`, `boot to verdict`, ...), a unit and a
//! direction: times are better lower, rates higher. A figure that got
//! worse by more than the threshold (per cent of the old value) fails the
//! comparison; one in only one report is listed, not judged.

use crate::report::{QueueFigures, Report, Spread};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

/// One comparable figure of a report: a median.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// The median.
    pub value: f64,
    /// The lowest and highest boot's.
    pub min: f64,
    pub max: f64,
    pub unit: &'static str,
    pub better: Better,
}

/// A figure measured once.
fn one(v: f64) -> Spread {
    Spread {
        median: v,
        min: v,
        max: v,
    }
}

/// Every figure of a report, by key.
pub fn figures(r: &Report) -> BTreeMap<String, Figure> {
    let mut out = BTreeMap::new();
    let mut put = |key: String, s: Spread, unit: &'static str, better: Better| {
        out.insert(
            key,
            Figure {
                value: s.median,
                min: s.min,
                max: s.max,
                unit,
                better,
            },
        );
    };
    let queues = |put: &mut dyn FnMut(String, Spread, &'static str, Better),
                  prefix: &str,
                  q: &BTreeMap<String, QueueFigures>| {
        for (label, f) in q {
            put(
                format!("{prefix}{label} req/s"),
                f.requests_per_s,
                "req/s",
                Better::Higher,
            );
            // A queue that moves no payload (wrap, flush) has no bandwidth.
            if f.bytes_per_s.max > 0.0 {
                put(
                    format!("{prefix}{label} bytes/s"),
                    f.bytes_per_s,
                    "B/s",
                    Better::Higher,
                );
            }
        }
    };
    let peers = |put: &mut dyn FnMut(String, Spread, &'static str, Better),
                 prefix: &str,
                 p: &BTreeMap<String, BTreeMap<String, Spread>>| {
        // Only rates: the other figures are counts that say what was
        // done, not how fast.
        for (peer, figures) in p {
            for (name, s) in figures.iter().filter(|(n, _)| n.ends_with("_per_s")) {
                put(
                    format!("{prefix}peer {peer} {name}"),
                    *s,
                    "/s",
                    Better::Higher,
                );
            }
        }
    };
    if let Some(d) = &r.default {
        for (what, v) in [
            ("boot to verdict", &d.boot.to_verdict_ms),
            ("boot to first TAP line", &d.boot.to_first_tap_ms),
            ("boot to QEMU exit", &d.boot.to_qemu_exit_ms),
        ] {
            if let Some(v) = v {
                let s = Spread {
                    median: v.median,
                    min: v.min,
                    max: v.max,
                };
                put(what.into(), s, "ms", Better::Lower);
            }
        }
        for (check, f) in &d.checks {
            put(format!("check {check}"), f.time_us, "us", Better::Lower);
        }
        queues(&mut put, "queue ", &d.queues);
        for (call, l) in &d.latencies {
            put(format!("latency {call}"), l.median_ns, "ns", Better::Lower);
        }
        for s in &d.stress_scaling {
            if let Some(t) = s.time_us {
                put(
                    format!("stress heap.stress={}", s.level),
                    one(t as f64),
                    "us",
                    Better::Lower,
                );
            }
        }
        for s in &d.smp {
            if let Some(t) = s.total_requests_per_s {
                put(
                    format!("smp {} CPUs total req/s", s.cpus),
                    t,
                    "req/s",
                    Better::Higher,
                );
            }
            for (cpu, v) in &s.per_cpu_requests_per_s {
                put(
                    format!("smp {} CPUs {cpu} req/s", s.cpus),
                    *v,
                    "req/s",
                    Better::Higher,
                );
            }
        }
        peers(&mut put, "", &d.peers);
    }
    if let Some(b) = &r.blk {
        for (w, e) in &b.workloads {
            for (backend, f) in [("image", &e.image), ("null-co", &e.null_co)] {
                if let Some(f) = f {
                    put(
                        format!("blk {w} {backend} req/s"),
                        f.requests_per_s,
                        "req/s",
                        Better::Higher,
                    );
                    put(
                        format!("blk {w} {backend} MB/s"),
                        f.mb_per_s,
                        "MB/s",
                        Better::Higher,
                    );
                }
            }
        }
    }
    if let Some(s) = &r.streams {
        queues(&mut put, "streams queue ", &s.queues);
        peers(&mut put, "streams ", &s.peers);
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Better,
    Same,
    /// Worse, within the threshold.
    Worse,
    /// Worse by more than the threshold.
    Regressed,
    /// The old value was 0: no relative change.
    NotJudged,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub key: String,
    pub old: f64,
    pub new: f64,
    pub unit: &'static str,
    pub better: Better,
    /// (new − old) ÷ old, per cent; None where old is 0.
    pub percent: Option<f64>,
    pub verdict: Verdict,
    /// The new median lies within the old report's lowest to highest
    /// boot: a change the old boots already varied by.
    pub inside_old_range: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Comparison {
    pub changes: Vec<Change>,
    pub only_old: Vec<String>,
    pub only_new: Vec<String>,
    /// Parts one report lacks as a whole: (part, figures in the other).
    pub parts_only_old: Vec<(&'static str, usize)>,
    pub parts_only_new: Vec<(&'static str, usize)>,
    /// Figures `--only` left out (of both reports, counted once).
    pub left_out: usize,
}

impl Comparison {
    pub fn regressions(&self) -> usize {
        self.changes
            .iter()
            .filter(|c| c.verdict == Verdict::Regressed)
            .count()
    }
}

/// How one figure moved: worse by more than `threshold` per cent of the
/// old value is a regression (exactly the threshold is not).
pub fn judge(old: f64, new: f64, better: Better, threshold: f64) -> (Option<f64>, Verdict) {
    if old == 0.0 {
        let verdict = if new == 0.0 {
            Verdict::Same
        } else {
            Verdict::NotJudged
        };
        return (None, verdict);
    }
    let percent = (new - old) / old.abs() * 100.0;
    // How much worse, in per cent of the old value (negative: better).
    let worse_by = match better {
        Better::Lower => percent,
        Better::Higher => -percent,
    };
    let verdict = if worse_by > threshold {
        Verdict::Regressed
    } else if worse_by > 0.0 {
        Verdict::Worse
    } else if worse_by < 0.0 {
        Verdict::Better
    } else {
        Verdict::Same
    };
    (Some(percent), verdict)
}

/// The part of the report a figure's key comes from.
fn part_of(key: &str) -> &'static str {
    if key.starts_with("blk ") {
        "blk"
    } else if key.starts_with("streams ") {
        "streams"
    } else {
        "default"
    }
}

fn has_part(r: &Report, part: &str) -> bool {
    match part {
        "blk" => r.blk.is_some(),
        "streams" => r.streams.is_some(),
        _ => r.default.is_some(),
    }
}

/// Figures in `keys` that `other` lacks: listed one by one, or counted per
/// part where `other` lacks the whole part.
fn missing<'a>(
    keys: impl Iterator<Item = &'a String>,
    other: &Report,
    figures: &mut Vec<String>,
    parts: &mut Vec<(&'static str, usize)>,
) {
    for key in keys {
        let part = part_of(key);
        if has_part(other, part) {
            figures.push(key.clone());
        } else {
            match parts.iter_mut().find(|(p, _)| *p == part) {
                Some((_, n)) => *n += 1,
                None => parts.push((part, 1)),
            }
        }
    }
}

/// Compares every figure, or with `only` those whose key starts with one
/// of its prefixes (`boot to verdict`, `latency `).
pub fn compare(
    old_report: &Report,
    new_report: &Report,
    threshold: f64,
    only: &[String],
) -> Comparison {
    let (mut old, mut new) = (figures(old_report), figures(new_report));
    let mut c = Comparison::default();
    if !only.is_empty() {
        let wanted = |k: &String| only.iter().any(|p| k.starts_with(p.as_str()));
        let before: std::collections::BTreeSet<String> =
            old.keys().chain(new.keys()).cloned().collect();
        old.retain(|k, _| wanted(k));
        new.retain(|k, _| wanted(k));
        c.left_out = before.iter().filter(|k| !wanted(k)).count();
    }
    for (key, o) in &old {
        if let Some(n) = new.get(key) {
            let (percent, verdict) = judge(o.value, n.value, n.better, threshold);
            c.changes.push(Change {
                key: key.clone(),
                old: o.value,
                new: n.value,
                unit: n.unit,
                better: n.better,
                percent,
                verdict,
                inside_old_range: (o.min..=o.max).contains(&n.value),
            });
        }
    }
    missing(
        old.keys().filter(|k| !new.contains_key(*k)),
        new_report,
        &mut c.only_old,
        &mut c.parts_only_old,
    );
    missing(
        new.keys().filter(|k| !old.contains_key(*k)),
        old_report,
        &mut c.only_new,
        &mut c.parts_only_new,
    );
    c
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 || v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// One line per figure, then the figures in one report only, then the
/// summary line.
pub fn render(c: &Comparison, threshold: f64) -> String {
    let width = c.changes.iter().map(|x| x.key.len()).max().unwrap_or(0) + 2;
    let mut s = String::new();
    for x in &c.changes {
        let percent = x
            .percent
            .map_or("n/a (old 0)".to_string(), |p| format!("{p:+.1} %"));
        let verdict = match x.verdict {
            Verdict::Better => "better",
            Verdict::Same => "same",
            Verdict::Worse => "worse",
            Verdict::Regressed => "WORSE past the threshold",
            Verdict::NotJudged => "not judged",
        };
        let dir = match x.better {
            Better::Lower => "lower is better",
            Better::Higher => "higher is better",
        };
        let spread = match (x.verdict, x.inside_old_range) {
            (Verdict::Worse | Verdict::Regressed | Verdict::Better, true) => {
                ", inside the old boots' range"
            }
            _ => "",
        };
        s.push_str(&format!(
            "{:<width$}{:>14} -> {:<14}{:<6}{percent:>12}  {verdict} ({dir}{spread})\n",
            x.key,
            number(x.old),
            number(x.new),
            x.unit,
        ));
    }
    for (which, keys, parts) in [
        ("old", &c.only_old, &c.parts_only_old),
        ("new", &c.only_new, &c.parts_only_new),
    ] {
        for (part, n) in parts {
            s.push_str(&format!(
                "only in the {which} report: its {part} part ({n} figures)\n"
            ));
        }
        for k in keys {
            s.push_str(&format!("only in the {which} report: {k}\n"));
        }
    }
    s.push_str(&format!(
        "{} figures compared: {} worse by more than {threshold} %, {} only in the old report, {} only in the new\n",
        c.changes.len(),
        c.regressions(),
        c.only_old.len() + c.parts_only_old.iter().map(|(_, n)| n).sum::<usize>(),
        c.only_new.len() + c.parts_only_new.iter().map(|(_, n)| n).sum::<usize>()
    ));
    if c.left_out > 0 {
        s.push_str(&format!("{} figures left out by --only\n", c.left_out));
    }
    s
}

/// `--threshold`: per cent, 0 to 10000.
pub fn parse_threshold(v: &str) -> Result<f64, String> {
    match v.trim_end_matches('%').parse::<f64>() {
        Ok(t) if (0.0..=10_000.0).contains(&t) => Ok(t),
        _ => Err("--threshold is a per cent from 0 to 10000 (e.g. 10 or 2.5)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn direction_and_threshold_boundary() {
        use Better::*;
        // Times: lower is better.
        assert_eq!(
            judge(100.0, 90.0, Lower, 10.0),
            (Some(-10.0), Verdict::Better)
        );
        assert_eq!(judge(100.0, 105.0, Lower, 10.0).1, Verdict::Worse);
        // Exactly the threshold is not past it; a hair more is.
        assert_eq!(
            judge(100.0, 110.0, Lower, 10.0),
            (Some(10.0), Verdict::Worse)
        );
        assert_eq!(judge(100.0, 110.01, Lower, 10.0).1, Verdict::Regressed);
        // Rates: higher is better.
        assert_eq!(judge(100.0, 120.0, Higher, 10.0).1, Verdict::Better);
        assert_eq!(
            judge(100.0, 90.0, Higher, 10.0),
            (Some(-10.0), Verdict::Worse)
        );
        assert_eq!(judge(100.0, 89.99, Higher, 10.0).1, Verdict::Regressed);
        assert_eq!(judge(100.0, 100.0, Higher, 0.0).1, Verdict::Same);
        assert_eq!(judge(100.0, 100.5, Lower, 0.0).1, Verdict::Regressed);
        assert_eq!(judge(0.0, 0.0, Higher, 10.0), (None, Verdict::Same));
        assert_eq!(judge(0.0, 5.0, Lower, 10.0), (None, Verdict::NotJudged));
    }

    #[test]
    fn same_report_no_change() {
        let r = sample();
        let c = compare(&r, &r, 10.0, &[]);
        assert!(c.only_old.is_empty() && c.only_new.is_empty());
        assert!(c.changes.iter().all(|x| x.verdict == Verdict::Same));
        let keys: Vec<&str> = c.changes.iter().map(|x| x.key.as_str()).collect();
        for k in [
            "boot to verdict",
            "check blk.stress",
            "queue blk fe.0.0001 q0 split random req/s",
            "queue blk fe.0.0001 q0 split random bytes/s",
            "latency diag44",
            "stress heap.stress=1",
            "smp 2 CPUs total req/s",
            "smp 2 CPUs cpu0 req/s",
            "peer net-echo frames_per_s",
            "blk randread4k_qd32 image req/s",
            "streams queue serial fe.0.0003 port0 rx req/s",
        ] {
            assert!(keys.contains(&k), "{k} not in {keys:?}");
        }
    }

    #[test]
    fn worse_better_missing() {
        let old = sample();
        let mut new = sample();
        let d = new.default.as_mut().unwrap();
        // Boot 20 % slower: past 10 %.
        let v = d.boot.to_verdict_ms.as_mut().unwrap();
        v.median *= 1.2;
        // A queue 5 % slower: worse, within 10 %.
        d.queues
            .get_mut("net fe.0.0002 rx0 packed")
            .unwrap()
            .requests_per_s
            .median *= 0.95;
        // A hypercall twice as fast.
        d.latencies.get_mut("diag44").unwrap().median_ns.median /= 2.0;
        // A check gone, another new.
        let gone = d.checks.remove("boot.vectors").unwrap();
        d.checks.insert("boot.new".into(), gone);
        let c = compare(&old, &new, 10.0, &[]);
        let get = |k: &str| c.changes.iter().find(|x| x.key == k).unwrap();
        assert_eq!(get("boot to verdict").verdict, Verdict::Regressed);
        assert_eq!(
            get("queue net fe.0.0002 rx0 packed req/s").verdict,
            Verdict::Worse
        );
        assert_eq!(get("latency diag44").verdict, Verdict::Better);
        assert_eq!(c.only_old, ["check boot.vectors"]);
        assert_eq!(c.only_new, ["check boot.new"]);
        assert_eq!(c.regressions(), 1);
        let text = render(&c, 10.0);
        let line = text
            .lines()
            .find(|l| l.starts_with("boot to verdict"))
            .unwrap();
        assert!(
            line.contains("6200 -> 7440")
                && line.contains("+20.0 %")
                && line.contains("WORSE past the threshold (lower is better)"),
            "{line}"
        );
        assert!(!line.contains("inside"), "{line}");
        // 5 % slower, within the old boots' 0.9-1.1 of the median.
        assert!(get("queue net fe.0.0002 rx0 packed req/s").inside_old_range);
        let queue = text
            .lines()
            .find(|l| l.starts_with("queue net fe.0.0002 rx0 packed req/s"))
            .unwrap();
        assert!(
            queue.ends_with("worse (higher is better, inside the old boots' range)"),
            "{queue}"
        );
        assert!(text.contains("only in the old report: check boot.vectors"));
        assert!(text.contains("only in the new report: check boot.new"));
        assert!(
            text.ends_with(
                "1 worse by more than 10 %, 1 only in the old report, 1 only in the new\n"
            ),
            "{text}"
        );
        // A looser threshold lets the boot pass.
        assert_eq!(compare(&old, &new, 20.0, &[]).regressions(), 0);
        // A part missing from the new report: said once, with its count.
        new.blk = None;
        let c = compare(&old, &new, 50.0, &[]);
        assert_eq!(c.parts_only_old, [("blk", 2)]);
        assert_eq!(c.only_old, ["check boot.vectors"]);
        assert_eq!(c.regressions(), 0);
        let text = render(&c, 50.0);
        assert!(
            text.contains("only in the old report: its blk part (2 figures)\n"),
            "{text}"
        );
        assert!(
            text.ends_with(", 3 only in the old report, 1 only in the new\n"),
            "{text}"
        );
        // And the other way round.
        let c = compare(&new, &old, 50.0, &[]);
        assert_eq!(c.parts_only_new, [("blk", 2)]);
        // --only: the boot and the latencies; the slower boot still fails.
        let only = ["boot to verdict".to_string(), "latency ".to_string()];
        let c = compare(&old, &new, 10.0, &only);
        let keys: Vec<&str> = c.changes.iter().map(|x| x.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "boot to verdict",
                "latency diag44",
                "latency diag500.notify"
            ]
        );
        assert_eq!(c.regressions(), 1);
        assert!(c.only_old.is_empty() && c.parts_only_old.is_empty());
        assert!(render(&c, 10.0).ends_with("figures left out by --only\n"));
        assert_eq!(
            compare(&old, &new, 10.0, &["latency ".into()]).regressions(),
            0
        );
    }

    #[test]
    fn thresholds() {
        assert_eq!(parse_threshold("10"), Ok(10.0));
        assert_eq!(parse_threshold("2.5%"), Ok(2.5));
        assert_eq!(parse_threshold("0"), Ok(0.0));
        for bad in ["-1", "x", "", "10001", "NaN"] {
            assert!(parse_threshold(bad).is_err(), "{bad}");
        }
    }
}
