//! `cargo xtask bench [--runs N]`: boots the default scenario N times with
//! `verbose=2` and prints how long booting takes, and each check's own
//! timing as the firmware reports it (`# <check>: <N> us, heap in use <B>
//! bytes, timeout <T> ms`).
//! Then one boot per stress level runs only `heap.stress`, to show how its
//! time grows with `stress=`.

use crate::blkbench::spread;
use crate::report;
use qemu_runner::{Run, TestResult};
use std::collections::BTreeMap;
use std::time::Duration;

/// Boot to verdict is judged as the median of 5 boots.
pub const DEFAULT_RUNS: u32 = 5;
const MAX_RUNS: u32 = 10_000;

/// The value of `--runs`: how many boots, 1 to [`MAX_RUNS`].
pub fn parse_runs(value: &str) -> Result<u32, String> {
    match value.parse() {
        Ok(n) if (1..=MAX_RUNS).contains(&n) => Ok(n),
        _ => Err(format!("--runs needs a whole number from 1 to {MAX_RUNS}")),
    }
}

/// One `# <check>: <N> us, heap in use <B> bytes, timeout <T> ms` diagnostic
/// (without `# `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckTiming {
    pub check: String,
    pub micros: u64,
    pub heap_bytes: u64,
}

pub fn parse_timing(diagnostic: &str) -> Option<CheckTiming> {
    let (check, rest) = diagnostic.split_once(": ")?;
    if check.is_empty() || check.contains(char::is_whitespace) {
        return None;
    }
    let (micros, rest) = rest.split_once(" us, heap in use ")?;
    // The firmware then says the check's timeout; older ones did not.
    let heap = match rest.split_once(" bytes, timeout ") {
        Some((heap, timeout)) => {
            timeout.strip_suffix(" ms")?.parse::<u64>().ok()?;
            heap
        }
        None => rest.strip_suffix(" bytes")?,
    };
    Some(CheckTiming {
        check: check.to_string(),
        micros: micros.parse().ok()?,
        heap_bytes: heap.parse().ok()?,
    })
}

/// One `# latency <call>: median <M> ns, min <A> ns, max <B> ns[, p10 <P>
/// ns, p90 <Q> ns] (<N> calls)` diagnostic (without `# `): a hypercall's
/// round trip in one run (the percentiles where the firmware prints them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latency {
    pub call: String,
    pub calls: u64,
    pub median_ns: u64,
    pub min_ns: u64,
    pub max_ns: u64,
    pub p10_ns: Option<u64>,
    pub p90_ns: Option<u64>,
}

pub fn parse_latency(diagnostic: &str) -> Option<Latency> {
    let rest = diagnostic.strip_prefix("latency ")?;
    let (call, rest) = rest.split_once(": ")?;
    let (figures, calls) = rest.split_once(" (")?;
    let calls = calls.strip_suffix(" calls)")?.parse().ok()?;
    let mut found: Vec<(&str, u64)> = Vec::new();
    for f in figures.split(", ") {
        let (key, value) = f.split_once(' ')?;
        found.push((key, value.strip_suffix(" ns")?.parse().ok()?));
    }
    let get = |key: &str| found.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    if call.is_empty() || call.contains(char::is_whitespace) {
        return None;
    }
    Some(Latency {
        call: call.to_string(),
        calls,
        median_ns: get("median")?,
        min_ns: get("min")?,
        max_ns: get("max")?,
        p10_ns: get("p10"),
        p90_ns: get("p90"),
    })
}

/// Median (the mean of the middle two for an even count), min and max.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub median: u64,
    pub min: u64,
    pub max: u64,
}

impl Stats {
    pub fn of(values: &[u64]) -> Option<Stats> {
        let mut v = values.to_vec();
        v.sort_unstable();
        let n = v.len();
        let median = match n {
            0 => return None,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2,
        };
        Some(Stats {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// What the runs measured.
#[derive(Debug, Default)]
pub struct Measurements {
    pub runs: usize,
    pub first_tap_us: Vec<u64>,
    pub total_us: Vec<u64>,
    /// From starting the run to its verdict (after the host's checks).
    pub verdict_us: Vec<u64>,
    /// Per check, in the order first seen: its timings and heap figures.
    pub checks: Vec<(String, Vec<u64>, Vec<u64>)>,
    /// Per hypercall, in the order first seen: each run's figures.
    pub latencies: Vec<(String, Vec<Latency>)>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Measurements {
    /// A run, and the time from starting it to its verdict.
    pub fn add(&mut self, o: &Run, to_verdict: Duration) {
        self.verdict_us.push(micros(to_verdict));
        self.add_parts(o.time_to_tap, o.duration, &o.tap.diagnostics);
    }

    fn add_parts(&mut self, first_tap: Option<Duration>, total: Duration, diagnostics: &[String]) {
        self.runs += 1;
        if let Some(t) = first_tap {
            self.first_tap_us.push(micros(t));
        }
        self.total_us.push(micros(total));
        for t in diagnostics.iter().filter_map(|d| parse_timing(d)) {
            let slot = match self.checks.iter().position(|(c, _, _)| *c == t.check) {
                Some(i) => i,
                None => {
                    self.checks.push((t.check.clone(), Vec::new(), Vec::new()));
                    self.checks.len() - 1
                }
            };
            self.checks[slot].1.push(t.micros);
            self.checks[slot].2.push(t.heap_bytes);
        }
        for l in diagnostics.iter().filter_map(|d| parse_latency(d)) {
            match self.latencies.iter_mut().find(|(c, _)| *c == l.call) {
                Some((_, runs)) => runs.push(l),
                None => self.latencies.push((l.call.clone(), vec![l])),
            }
        }
    }

    /// Boot times, per-check times and hypercall latencies for the report.
    pub fn report_parts(
        &self,
    ) -> (
        report::Boot,
        BTreeMap<String, report::CheckFigures>,
        BTreeMap<String, report::LatencyFigures>,
    ) {
        let ms = |v: &[u64]| {
            let v: Vec<f64> = v.iter().map(|us| *us as f64 / 1000.0).collect();
            report::PerRun::of(&v)
        };
        let f = |v: &[u64]| v.iter().map(|x| *x as f64).collect::<Vec<f64>>();
        let boot = report::Boot {
            to_verdict_ms: ms(&self.verdict_us),
            to_first_tap_ms: ms(&self.first_tap_us),
            to_qemu_exit_ms: ms(&self.total_us),
        };
        let checks = self
            .checks
            .iter()
            .filter_map(|(c, us, heap)| {
                Some((
                    c.clone(),
                    report::CheckFigures {
                        time_us: spread(&f(us))?,
                        heap_max_bytes: heap.iter().copied().max().unwrap_or(0),
                        runs: us.len(),
                    },
                ))
            })
            .collect();
        let latencies = self
            .latencies
            .iter()
            .filter_map(|(call, runs)| {
                let medians: Vec<u64> = runs.iter().map(|l| l.median_ns).collect();
                Some((
                    call.clone(),
                    report::LatencyFigures {
                        median_ns: spread(&f(&medians))?,
                        min_ns: runs.iter().map(|l| l.min_ns).min()? as f64,
                        max_ns: runs.iter().map(|l| l.max_ns).max()? as f64,
                        runs: runs
                            .iter()
                            .map(|l| report::LatencyRun {
                                calls: l.calls,
                                min_ns: l.min_ns,
                                p10_ns: l.p10_ns,
                                median_ns: l.median_ns,
                                p90_ns: l.p90_ns,
                                max_ns: l.max_ns,
                            })
                            .collect(),
                    },
                ))
            })
            .collect();
        (boot, checks, latencies)
    }

    /// The two tables.
    pub fn table(&self) -> String {
        let ms = |us: u64| format!("{:.1} ms", us as f64 / 1000.0);
        let mut s = format!(
            "{:<22}{:>12}{:>12}{:>12}{:>7}\n",
            "", "median", "min", "max", "runs"
        );
        for (what, values) in [
            ("first TAP line", &self.first_tap_us),
            ("boot to exit", &self.total_us),
            ("boot to verdict", &self.verdict_us),
        ] {
            match Stats::of(values) {
                Some(st) => s.push_str(&format!(
                    "{what:<22}{:>12}{:>12}{:>12}{:>7}\n",
                    ms(st.median),
                    ms(st.min),
                    ms(st.max),
                    values.len()
                )),
                None => s.push_str(&format!("{what:<22}{:>12}\n", "-")),
            }
        }
        s.push('\n');
        let width = self
            .checks
            .iter()
            .map(|(c, _, _)| c.len())
            .max()
            .unwrap_or(0)
            .max("check".len())
            + 2;
        s.push_str(&format!(
            "{:<width$}{:>11}{:>11}{:>11}{:>18}{:>7}\n",
            "check", "median us", "min us", "max us", "heap in use max B", "runs"
        ));
        if self.checks.is_empty() {
            s.push_str("(no per-check timing: did the firmware get verbose=2?)\n");
        }
        for (check, us, heap) in &self.checks {
            let (Some(t), Some(h)) = (Stats::of(us), Stats::of(heap)) else {
                continue;
            };
            s.push_str(&format!(
                "{check:<width$}{:>11}{:>11}{:>11}{:>18}{:>7}\n",
                t.median,
                t.min,
                t.max,
                h.max,
                us.len()
            ));
        }
        if !self.latencies.is_empty() {
            let width = self
                .latencies
                .iter()
                .map(|(c, ..)| c.len())
                .max()
                .unwrap_or(0)
                .max("hypercall".len())
                + 2;
            s.push_str(&format!(
                "\n{:<width$}{:>11}{:>11}{:>11}{:>11}{:>11}{:>7}\n",
                "hypercall", "median ns", "p10 ns", "p90 ns", "min ns", "max ns", "runs"
            ));
            for (call, runs) in &self.latencies {
                let medians: Vec<u64> = runs.iter().map(|l| l.median_ns).collect();
                let lo = runs.iter().map(|l| l.min_ns).min().unwrap_or(0);
                let hi = runs.iter().map(|l| l.max_ns).max().unwrap_or(0);
                // The percentiles' medians over the boots that printed them.
                let pct = |p: fn(&Latency) -> Option<u64>| {
                    let v: Vec<u64> = runs.iter().filter_map(p).collect();
                    Stats::of(&v).map_or("-".to_string(), |st| st.median.to_string())
                };
                if let Some(st) = Stats::of(&medians) {
                    s.push_str(&format!(
                        "{call:<width$}{:>11}{:>11}{:>11}{:>11}{:>11}{:>7}\n",
                        st.median,
                        pct(|l| l.p10_ns),
                        pct(|l| l.p90_ns),
                        lo,
                        hi,
                        medians.len()
                    ));
                }
            }
        }
        s
    }
}

/// The check whose scaling with `stress=` bench reports, and the levels.
pub const STRESS_CHECK: &str = "heap.stress";
pub const STRESS_LEVELS: [u32; 3] = [1, 10, 100];

/// One boot at one stress level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StressRun {
    pub level: u32,
    /// The check's own time, from its verbose=2 line.
    pub micros: Option<u64>,
    /// `ok`, or the check's failure (`not ok 1 - heap.stress (timeout: ...)`),
    /// or what became of the boot when the check printed no result.
    pub result: String,
}

impl StressRun {
    pub fn from_parts(
        level: u32,
        diagnostics: &[String],
        result: Option<&TestResult>,
        boot: &str,
    ) -> StressRun {
        let micros = diagnostics
            .iter()
            .filter_map(|d| parse_timing(d))
            .find(|t| t.check == STRESS_CHECK)
            .map(|t| t.micros);
        let result = match result {
            Some(r) if r.ok => "ok".to_string(),
            Some(r) => r.describe(),
            None => format!("no result line ({boot})"),
        };
        StressRun {
            level,
            micros,
            result,
        }
    }

    pub fn from_outcome(level: u32, o: &Run) -> StressRun {
        StressRun::from_parts(
            level,
            &o.tap.diagnostics,
            o.tap.result(STRESS_CHECK),
            &o.summary_line(),
        )
    }
}

/// stress level, the check's time, its ratio to the lowest level's time.
pub fn stress_table(runs: &[StressRun]) -> String {
    let base = runs.first().and_then(|r| r.micros).filter(|&m| m > 0);
    let mut s = format!(
        "{:<8}{:>18}{:>20}  {}\n",
        "stress",
        format!("{STRESS_CHECK} us"),
        format!("ratio to stress={}", runs.first().map_or(1, |r| r.level)),
        "result"
    );
    for r in runs {
        let time = r.micros.map_or("-".to_string(), |m| m.to_string());
        let ratio = match (r.micros, base) {
            (Some(m), Some(b)) => format!("{:.2}", m as f64 / b as f64),
            _ => "-".to_string(),
        };
        s.push_str(&format!(
            "{:<8}{time:>18}{ratio:>20}  {}\n",
            r.level, r.result
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lines() {
        let l = parse_latency(
            "latency diag500.notify: median 751 ns, min 681 ns, max 53779 ns (64 calls)",
        );
        assert_eq!(
            l,
            Some(Latency {
                call: "diag500.notify".into(),
                calls: 64,
                median_ns: 751,
                min_ns: 681,
                max_ns: 53779,
                p10_ns: None,
                p90_ns: None,
            })
        );
        let l = parse_latency(
            "latency diag44: median 621 ns, min 470 ns, max 1572 ns, p10 500 ns, p90 900 ns (64 calls)",
        )
        .unwrap();
        assert_eq!(
            (l.p10_ns, l.median_ns, l.p90_ns, l.calls),
            (Some(500), 621, Some(900), 64)
        );
        for bad in [
            "latency diag44: median 621 ns, min 470 ns (64 calls)",
            "latency diag44: median 621 ns, min 470 ns, max 1572 ns",
            "latency diag44: median 621 ns, min 470 ns, max 1572 us (64 calls)",
            "latency diag44: median 621 ns, min 470 ns, max 1572 ns, p10 x ns (64 calls)",
            "latency : median 1 ns, min 1 ns, max 1 ns (64 calls)",
        ] {
            assert_eq!(parse_latency(bad), None, "{bad}");
        }
        assert_eq!(
            parse_latency("latency x: median a ns, min 1 ns, max 2 ns"),
            None
        );
        assert_eq!(
            parse_latency("heap.stress: 5 us, heap in use 3 bytes"),
            None
        );
        let mut m = Measurements::default();
        let d = |med: u64, lo: u64, hi: u64| {
            vec![format!(
                "latency diag44: median {med} ns, min {lo} ns, max {hi} ns (64 calls)"
            )]
        };
        m.add_parts(None, Duration::from_millis(1), &d(300, 200, 900));
        m.add_parts(None, Duration::from_millis(1), &d(250, 240, 400));
        m.add_parts(None, Duration::from_millis(1), &d(280, 100, 500));
        let (_, _, lat) = m.report_parts();
        let d = &lat["diag44"];
        assert_eq!(
            (
                d.median_ns.median,
                d.median_ns.min,
                d.median_ns.max,
                d.min_ns,
                d.max_ns
            ),
            (280.0, 250.0, 300.0, 100.0, 900.0)
        );
        assert_eq!(d.runs.len(), 3);
        assert_eq!(
            (d.runs[1].median_ns, d.runs[1].max_ns, d.runs[1].calls),
            (250, 400, 64)
        );
        let t = m.table();
        assert!(t.contains("hypercall") && t.contains("diag44"), "{t}");
        assert!(
            t.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["diag44", "280", "-", "-", "100", "900", "3"]),
            "{t}"
        );
    }

    #[test]
    fn runs() {
        assert_eq!(parse_runs("3"), Ok(3));
        assert_eq!(parse_runs("10000"), Ok(10_000));
        for bad in ["0", "10001", "x", "-1", ""] {
            assert_eq!(
                parse_runs(bad),
                Err("--runs needs a whole number from 1 to 10000".into()),
                "{bad}"
            );
        }
    }

    #[test]
    fn timing_lines() {
        assert_eq!(
            parse_timing("boot.vectors: 12 us, heap in use 4096 bytes, timeout 5000 ms"),
            Some(CheckTiming {
                check: "boot.vectors".into(),
                micros: 12,
                heap_bytes: 4096
            })
        );
        for other in [
            "heap: 0x43000-0x7c00000 (123 MiB)",
            "memory: 128 MiB, cpus: 1",
            "command line: 'expect-mem=128M verbose=2'",
            "x: 1 us, heap in use many bytes",
            "x: -1 us, heap in use 1 bytes",
            "two words: 1 us, heap in use 1 bytes",
            ": 1 us, heap in use 1 bytes",
        ] {
            assert_eq!(parse_timing(other), None, "{other}");
        }
    }

    #[test]
    fn statistics() {
        assert_eq!(Stats::of(&[]), None);
        assert_eq!(
            Stats::of(&[5]),
            Some(Stats {
                median: 5,
                min: 5,
                max: 5
            })
        );
        assert_eq!(
            Stats::of(&[9, 1, 5]),
            Some(Stats {
                median: 5,
                min: 1,
                max: 9
            })
        );
        assert_eq!(
            Stats::of(&[4, 1, 10, 2]),
            Some(Stats {
                median: 3,
                min: 1,
                max: 10
            })
        );
    }

    #[test]
    fn measurements_and_table() {
        let d = |s: &[&str]| s.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        let mut m = Measurements::default();
        m.add_parts(
            Some(Duration::from_millis(30)),
            Duration::from_millis(90),
            &d(&[
                "zvtest 0.1.0",
                "boot.vectors: 10 us, heap in use 100 bytes",
                "heap.stress: 2000 us, heap in use 300 bytes",
            ]),
        );
        m.add_parts(
            Some(Duration::from_millis(40)),
            Duration::from_millis(80),
            &d(&[
                "boot.vectors: 20 us, heap in use 100 bytes",
                "heap.stress: 4000 us, heap in use 500 bytes",
            ]),
        );
        m.add_parts(None, Duration::from_millis(70), &d(&[]));
        assert_eq!(m.runs, 3);
        assert_eq!(m.first_tap_us, [30_000, 40_000]);
        assert_eq!(m.checks.len(), 2);
        assert_eq!(m.checks[0].0, "boot.vectors");
        let t = m.table();
        let line = |start: &str| {
            t.lines()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("no {start} in\n{t}"))
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            line("first TAP line"),
            ["first", "TAP", "line", "35.0", "ms", "30.0", "ms", "40.0", "ms", "2"]
        );
        assert_eq!(
            line("boot to exit"),
            ["boot", "to", "exit", "80.0", "ms", "70.0", "ms", "90.0", "ms", "3"]
        );
        assert_eq!(
            line("boot.vectors"),
            ["boot.vectors", "15", "10", "20", "100", "2"]
        );
        assert_eq!(
            line("heap.stress"),
            ["heap.stress", "3000", "2000", "4000", "500", "2"]
        );
        assert!(Measurements::default()
            .table()
            .contains("no per-check timing"));
    }

    #[test]
    fn stress_scaling() {
        let d = |us: u64| vec![format!("heap.stress: {us} us, heap in use 64 bytes")];
        let ok = TestResult {
            ok: true,
            number: Some(1),
            name: STRESS_CHECK.into(),
            directive: None,
            yaml: None,
        };
        let timed_out = TestResult {
            ok: false,
            yaml: Some(qemu_runner::Yaml {
                fields: vec![(
                    "message".into(),
                    "timeout: the check did not finish in time".into(),
                )],
                lines: Vec::new(),
                closed: true,
            }),
            ..ok.clone()
        };
        let runs = [
            StressRun::from_parts(1, &d(2000), Some(&ok), "boot"),
            StressRun::from_parts(10, &d(19_000), Some(&ok), "boot"),
            StressRun::from_parts(100, &d(5_000_100), Some(&timed_out), "boot"),
        ];
        assert_eq!(runs[0].micros, Some(2000));
        assert_eq!(
            runs[2].result,
            "not ok 1 - heap.stress (timeout: the check did not finish in time)"
        );
        let t = stress_table(&runs);
        let words = |level: &str| {
            t.lines()
                .find(|l| l.split_whitespace().next() == Some(level))
                .unwrap_or_else(|| panic!("no {level} in\n{t}"))
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert!(t.starts_with("stress"), "{t}");
        assert_eq!(words("1"), ["1", "2000", "1.00", "ok"]);
        assert_eq!(words("10"), ["10", "19000", "9.50", "ok"]);
        assert_eq!(&words("100")[..4], ["100", "5000100", "2500.05", "not"]);
        // A boot that printed nothing for the check.
        let lost = StressRun::from_parts(100, &[], None, "stress-100: FAIL in 60 s");
        assert_eq!(lost.micros, None);
        assert_eq!(lost.result, "no result line (stress-100: FAIL in 60 s)");
        let t = stress_table(&[lost]);
        assert!(t.lines().nth(1).unwrap().contains("  -  "), "{t}");
    }
}
