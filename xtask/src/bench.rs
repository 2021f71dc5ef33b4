//! `cargo xtask bench [--runs N]`: boots the default scenario N times with
//! `verbose=2` and prints how long booting takes, and each check's own
//! timing as the firmware reports it (`# <check>: <N> us, heap in use <B>
//! bytes, timeout <T> ms`).
//! Then one boot per stress level runs only `heap.stress`, to show how its
//! time grows with `stress=`.

use qemu_runner::{Run, TestResult};
use std::time::Duration;

pub const DEFAULT_RUNS: u32 = 10;
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

/// One `# latency <call>: median <M> ns, min <A> ns, max <B> ns (<N> calls)`
/// diagnostic (without `# `): a hypercall's round trip in one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latency {
    pub call: String,
    pub median_ns: u64,
    pub min_ns: u64,
    pub max_ns: u64,
}

pub fn parse_latency(diagnostic: &str) -> Option<Latency> {
    let rest = diagnostic.strip_prefix("latency ")?;
    let (call, rest) = rest.split_once(": median ")?;
    let (median, rest) = rest.split_once(" ns, min ")?;
    let (min, rest) = rest.split_once(" ns, max ")?;
    let (max, _) = rest.split_once(" ns")?;
    Some(Latency {
        call: call.to_string(),
        median_ns: median.parse().ok()?,
        min_ns: min.parse().ok()?,
        max_ns: max.parse().ok()?,
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
    /// Per check, in the order first seen: its timings and heap figures.
    pub checks: Vec<(String, Vec<u64>, Vec<u64>)>,
    /// Per hypercall, in the order first seen: each run's median, and the
    /// lowest and highest single call over all runs.
    pub latencies: Vec<(String, Vec<u64>, u64, u64)>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Measurements {
    pub fn add(&mut self, o: &Run) {
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
            match self.latencies.iter_mut().find(|(c, ..)| *c == l.call) {
                Some((_, medians, lo, hi)) => {
                    medians.push(l.median_ns);
                    *lo = (*lo).min(l.min_ns);
                    *hi = (*hi).max(l.max_ns);
                }
                None => self
                    .latencies
                    .push((l.call, vec![l.median_ns], l.min_ns, l.max_ns)),
            }
        }
    }

    /// Boot times and per-check times for the JSON report (microseconds).
    pub fn boot_json(&self) -> serde_json::Value {
        let stats = |v: &[u64]| {
            Stats::of(v)
                .map(|s| serde_json::json!({"median": s.median, "min": s.min, "max": s.max}))
        };
        let checks: serde_json::Map<String, serde_json::Value> = self
            .checks
            .iter()
            .filter_map(|(c, us, _)| Some((c.clone(), stats(us)?)))
            .collect();
        serde_json::json!({
            "first_tap_us": stats(&self.first_tap_us),
            "boot_to_exit_us": stats(&self.total_us),
            "checks_us": checks,
        })
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
                "\n{:<width$}{:>11}{:>11}{:>11}{:>7}\n",
                "hypercall", "median ns", "min ns", "max ns", "runs"
            ));
            for (call, medians, lo, hi) in &self.latencies {
                if let Some(st) = Stats::of(medians) {
                    s.push_str(&format!(
                        "{call:<width$}{:>11}{:>11}{:>11}{:>7}\n",
                        st.median,
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
                median_ns: 751,
                min_ns: 681,
                max_ns: 53779
            })
        );
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
        assert_eq!(
            m.latencies,
            vec![("diag44".to_string(), vec![300, 250, 280], 100, 900)]
        );
        let t = m.table();
        assert!(t.contains("hypercall") && t.contains("diag44"), "{t}");
        assert!(
            t.lines().any(|l| l.starts_with("diag44")
                && l.contains("280")
                && l.contains("100")
                && l.contains("900")),
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
