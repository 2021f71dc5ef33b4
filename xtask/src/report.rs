//! `target/bench/report.json`: the one file `cargo xtask bench` leaves for
//! people and CI. These types are its schema ([`SCHEMA`]); docs/bench-report.md
//! describes every field with its unit. Each benchmark command fills its
//! own part (`default`, `blk`, `streams`) and keeps the other parts of an
//! earlier report measured on the same host, QEMU and commit.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The schema's name and version. A change that renames, removes or
/// re-means a field makes a new version; `--compare` refuses others.
pub const SCHEMA: &str = "zvtest-bench/1";

/// Median, min and max of one figure over the boots (the unit is the
/// field's: `_ms`, `_us`, `_ns`, `per_s`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// A figure's [`Spread`] with every boot's value, in boot order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerRun {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: Vec<f64>,
}

impl PerRun {
    pub fn of(values: &[f64]) -> Option<PerRun> {
        let s = crate::blkbench::spread(values)?;
        Some(PerRun {
            median: s.median,
            min: s.min,
            max: s.max,
            runs: values.to_vec(),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: String,
    pub host: Host,
    pub qemu: Qemu,
    pub zvtest: Zvtest,
    /// `cargo xtask bench`: the default scenario.
    pub default: Option<DefaultBench>,
    /// `cargo xtask bench blk`.
    pub blk: Option<BlkBench>,
    /// `cargo xtask bench streams`.
    pub streams: Option<StreamsBench>,
}

/// The machine the benchmarks ran on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub hostname: String,
    /// `model name` of /proc/cpuinfo.
    pub cpu_model: String,
    /// CPUs this process may run on.
    pub cores: u32,
    /// The kernel's release (`uname -r`).
    pub kernel: String,
    /// When the report was last written, UTC, RFC 3339.
    pub date: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Qemu {
    pub binary: String,
    /// `X.Y.Z` from `<binary> --version`.
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Zvtest {
    /// `git describe --always --dirty` of the work tree the firmware was
    /// built from.
    pub commit: String,
}

/// What every part says about how it was measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// UTC, RFC 3339.
    pub date: String,
    /// QEMU's `-accel` of the main scenario.
    pub accel: String,
    /// The firmware's command line of the main scenario.
    pub command_line: String,
    /// Boots per scenario.
    pub runs: u32,
    /// The summary line of every boot whose verdict was not PASS.
    pub failed_boots: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DefaultBench {
    pub measured: Measured,
    pub boot: Boot,
    /// Per check: the time the firmware measured around it.
    pub checks: BTreeMap<String, CheckFigures>,
    /// Per queue line `<group> <bus> <queue and phase>`.
    pub queues: BTreeMap<String, QueueFigures>,
    /// Per hypercall (`diag500.notify`, ...).
    pub latencies: BTreeMap<String, LatencyFigures>,
    /// `heap.stress` alone at each stress level, one boot each.
    pub stress_scaling: Vec<StressLevel>,
    /// `smp.stress-blk` at 1, 2 and 4 CPUs.
    pub smp: Vec<SmpSeries>,
    /// Per runner peer, per named figure (the peer's own units).
    pub peers: BTreeMap<String, BTreeMap<String, Spread>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Boot {
    /// From starting the run (peers, then QEMU) to the verdict: QEMU has
    /// exited and the host-side verifications (images, files, peers) are
    /// done. Milliseconds.
    pub to_verdict_ms: Option<PerRun>,
    /// From spawning QEMU to its `TAP version` line. Milliseconds.
    pub to_first_tap_ms: Option<PerRun>,
    /// From spawning QEMU until it was reaped. Milliseconds.
    pub to_qemu_exit_ms: Option<PerRun>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckFigures {
    /// The check's own time (`# <check>: N us, ...`). Microseconds.
    pub time_us: Spread,
    /// The most heap in use after it over the boots. Bytes.
    pub heap_max_bytes: u64,
    /// Boots that timed it.
    pub runs: usize,
}

/// A queue's figures over the boots: rates from each boot's own time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueFigures {
    pub requests_per_s: Spread,
    pub bytes_per_s: Spread,
    /// Requests per boot (median).
    pub requests: f64,
    /// The most requests in flight at once (`max depth`), median over the
    /// boots: the depth the queue reached in this phase.
    pub max_depth: Option<f64>,
    pub boots: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyFigures {
    /// The per-boot medians over the boots. Nanoseconds.
    pub median_ns: Spread,
    /// The fastest and slowest single call over all boots. Nanoseconds.
    pub min_ns: f64,
    pub max_ns: f64,
    /// Every boot's distribution, in boot order.
    pub runs: Vec<LatencyRun>,
}

/// One boot's calls of one hypercall (the firmware times each call with
/// the TOD clock). Nanoseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyRun {
    pub calls: u64,
    pub min_ns: u64,
    /// 10th percentile (nearest rank), where the firmware prints it.
    pub p10_ns: Option<u64>,
    pub median_ns: u64,
    /// 90th percentile (nearest rank), where the firmware prints it.
    pub p90_ns: Option<u64>,
    pub max_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StressLevel {
    /// `stress=`.
    pub level: u32,
    /// `heap.stress`'s own time. Microseconds.
    pub time_us: Option<u64>,
    /// `ok`, or what went wrong.
    pub result: String,
}

/// `smp.stress-blk` with one request queue per CPU.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SmpSeries {
    pub cpus: u32,
    pub boots: usize,
    /// Per CPU (`cpu0`, ...): its random phase's requests per second.
    pub per_cpu_requests_per_s: BTreeMap<String, Spread>,
    /// Every request of every CPU over the phase's wall time. Per second.
    pub total_requests_per_s: Option<Spread>,
    /// The total's median over the one-CPU series' (a ratio).
    pub total_vs_one_cpu: Option<f64>,
}

/// `cargo xtask bench blk`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlkBench {
    pub measured: Measured,
    /// Milliseconds each workload ran per boot.
    pub ms_per_workload: u64,
    /// The Linux guest the figures are set beside (linux-anchor's JSON).
    pub linux_anchor: Option<serde_json::Value>,
    /// Per workload (`randread4k_qd32`: 4 KiB random reads, queue depth 32).
    pub workloads: BTreeMap<String, BlkWorkload>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlkWorkload {
    /// The queue depth the workload keeps (from its name).
    pub queue_depth: Option<u32>,
    /// On a 1 GiB raw image, every read checked.
    pub image: Option<BlkFigures>,
    /// On QEMU's null-co (the emulation's ceiling).
    pub null_co: Option<BlkFigures>,
    pub linux: Option<LinuxFigures>,
    /// Image median ÷ Linux median (requests/s).
    pub vs_linux_rate: Option<f64>,
    /// Image median ÷ Linux median (MB/s).
    pub vs_linux_bandwidth: Option<f64>,
    /// Image median ÷ null-co median (requests/s).
    pub vs_null_co: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlkFigures {
    pub requests_per_s: Spread,
    /// Megabytes (10^6 bytes) per second.
    pub mb_per_s: Spread,
    pub boots: usize,
    /// Every read was checked against the pattern.
    pub verified: bool,
}

/// The Linux guest's medians (fio in a Linux guest on the same QEMU).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinuxFigures {
    pub requests_per_s: f64,
    /// Megabytes (10^6 bytes) per second.
    pub mb_per_s: f64,
}

/// `cargo xtask bench streams`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamsBench {
    pub measured: Measured,
    /// The firmware's `stress=`.
    pub stress: u32,
    pub scenarios: Vec<String>,
    pub queues: BTreeMap<String, QueueFigures>,
    pub peers: BTreeMap<String, BTreeMap<String, Spread>>,
}

impl Report {
    /// A report with no parts yet.
    pub fn new(host: Host, qemu: Qemu, zvtest: Zvtest) -> Report {
        Report {
            schema: SCHEMA.into(),
            host,
            qemu,
            zvtest,
            default: None,
            blk: None,
            streams: None,
        }
    }

    /// Parses a report; one of another schema (or none) is refused with
    /// what it is and what this xtask reads.
    pub fn parse(text: &str) -> Result<Report, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        match v.get("schema") {
            Some(serde_json::Value::String(s)) if s == SCHEMA => {}
            Some(serde_json::Value::String(s)) => {
                return Err(format!(
                    "schema '{s}' is not one this xtask reads ('{SCHEMA}'): \
                     compare reports of the same schema version"
                ))
            }
            _ => {
                return Err(format!(
                    "no \"schema\" field: not a benchmark report ('{SCHEMA}'; \
                     default.json, blk.json and streams.json are not reports)"
                ))
            }
        }
        serde_json::from_value(v).map_err(|e| format!("not a '{SCHEMA}' report: {e}"))
    }

    pub fn read(path: &Path) -> Result<Report, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Report::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a report serializes");
        s.push('\n');
        s
    }

    /// Whether `other`'s parts were measured where this one's are: the
    /// same host, QEMU and commit.
    pub fn same_setup(&self, other: &Report) -> bool {
        self.host.hostname == other.host.hostname
            && self.host.cpu_model == other.host.cpu_model
            && self.qemu == other.qemu
            && self.zvtest == other.zvtest
    }

    /// Takes the parts this report lacks from `earlier` if that was
    /// measured on the same setup; says what it did.
    pub fn keep_parts_of(&mut self, earlier: Report) -> Option<String> {
        if !self.same_setup(&earlier) {
            return Some(format!(
                "the earlier report's parts were dropped: measured on {} with QEMU {} at {}",
                earlier.host.hostname, earlier.qemu.version, earlier.zvtest.commit
            ));
        }
        let mut kept = Vec::new();
        if self.default.is_none() && earlier.default.is_some() {
            self.default = earlier.default;
            kept.push("default");
        }
        if self.blk.is_none() && earlier.blk.is_some() {
            self.blk = earlier.blk;
            kept.push("blk");
        }
        if self.streams.is_none() && earlier.streams.is_some() {
            self.streams = earlier.streams;
            kept.push("streams");
        }
        (!kept.is_empty()).then(|| format!("kept the earlier {} part", kept.join(", ")))
    }
}

/// The queue depth a blk workload's name carries (`randread4k_qd32`: 32).
pub fn queue_depth(workload: &str) -> Option<u32> {
    workload.rsplit_once("_qd")?.1.parse().ok()
}

/// Now, UTC, as RFC 3339 (`2026-11-30T02:05:00Z`).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// Seconds since 1970 as RFC 3339 UTC (days to civil date: Howard
/// Hinnant's algorithm, proleptic Gregorian).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// This machine, read from /proc and the process's CPU affinity.
pub fn this_host() -> Host {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|e| format!("unknown ({p}: {e})"))
    };
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    // x86 and arm64 say `model name`; s390x `machine`.
                    matches!(k.trim(), "model name" | "machine").then(|| v.trim().to_string())
                })
                .filter(|m| !m.is_empty())
        })
        .unwrap_or_else(|| "unknown".into());
    Host {
        hostname: read("/proc/sys/kernel/hostname"),
        cpu_model,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get() as u32),
        kernel: read("/proc/sys/kernel/osrelease"),
        date: utc_now(),
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    fn sp(median: f64, min: f64, max: f64) -> Spread {
        Spread { median, min, max }
    }

    /// A small report with every part, for the round trip, compare and
    /// plot tests.
    pub fn sample() -> Report {
        let measured = Measured {
            date: "2026-11-30T02:00:00Z".into(),
            accel: "tcg".into(),
            command_line: "expect-mem=128M verbose=2".into(),
            runs: 2,
            failed_boots: vec![],
        };
        let queue = |rate: f64| QueueFigures {
            requests_per_s: sp(rate, rate * 0.9, rate * 1.1),
            bytes_per_s: sp(rate * 4096.0, rate * 3000.0, rate * 5000.0),
            requests: 200.0,
            max_depth: Some(19.0),
            boots: 2,
        };
        let lat = |median: u64| LatencyFigures {
            median_ns: sp(median as f64, median as f64 - 10.0, median as f64 + 10.0),
            min_ns: 400.0,
            max_ns: 24_134.0,
            runs: vec![
                LatencyRun {
                    calls: 64,
                    min_ns: 400,
                    p10_ns: Some(500),
                    median_ns: median - 10,
                    p90_ns: Some(900),
                    max_ns: 24_134,
                },
                LatencyRun {
                    calls: 64,
                    min_ns: 420,
                    p10_ns: None,
                    median_ns: median + 10,
                    p90_ns: None,
                    max_ns: 1_572,
                },
            ],
        };
        Report {
            schema: SCHEMA.into(),
            host: Host {
                hostname: "bench-host".into(),
                cpu_model: "Some CPU @ 2.0GHz".into(),
                cores: 2,
                kernel: "6.1.0".into(),
                date: "2026-11-30T02:00:00Z".into(),
            },
            qemu: Qemu {
                binary: "qemu-system-s390x".into(),
                version: "7.2.22".into(),
            },
            zvtest: Zvtest {
                commit: "9e35e9e".into(),
            },
            default: Some(DefaultBench {
                measured: measured.clone(),
                boot: Boot {
                    to_verdict_ms: PerRun::of(&[6100.5, 6300.25]),
                    to_first_tap_ms: PerRun::of(&[101.0, 99.0]),
                    to_qemu_exit_ms: PerRun::of(&[6000.0, 6200.0]),
                },
                checks: BTreeMap::from([
                    (
                        "boot.vectors".to_string(),
                        CheckFigures {
                            time_us: sp(1379.0, 1273.0, 1402.0),
                            heap_max_bytes: 81_048,
                            runs: 2,
                        },
                    ),
                    (
                        "blk.stress".to_string(),
                        CheckFigures {
                            time_us: sp(1_956_890.0, 1_718_587.0, 2_162_597.0),
                            heap_max_bytes: 1 << 20,
                            runs: 2,
                        },
                    ),
                ]),
                queues: BTreeMap::from([
                    ("blk fe.0.0001 q0 split random".to_string(), queue(4724.0)),
                    ("net fe.0.0002 rx0 packed".to_string(), queue(13_386.0)),
                ]),
                latencies: BTreeMap::from([
                    ("diag44".to_string(), lat(621)),
                    ("diag500.notify".to_string(), lat(1733)),
                ]),
                stress_scaling: vec![StressLevel {
                    level: 1,
                    time_us: Some(2000),
                    result: "ok".into(),
                }],
                smp: vec![SmpSeries {
                    cpus: 2,
                    boots: 2,
                    per_cpu_requests_per_s: BTreeMap::from([(
                        "cpu0".into(),
                        sp(5357.0, 5213.0, 5617.0),
                    )]),
                    total_requests_per_s: Some(sp(9419.0, 9192.0, 9690.0)),
                    total_vs_one_cpu: Some(1.517_724_782_468_579),
                }],
                peers: BTreeMap::from([(
                    "net-echo".to_string(),
                    BTreeMap::from([(
                        "frames_per_s".to_string(),
                        sp(7_183.759_589_250_982, 6_370.3, 8_503.1),
                    )]),
                )]),
            }),
            blk: Some(BlkBench {
                measured: measured.clone(),
                ms_per_workload: 3000,
                linux_anchor: Some(serde_json::json!({"qemu": "7.2"})),
                workloads: BTreeMap::from([(
                    "randread4k_qd32".to_string(),
                    BlkWorkload {
                        queue_depth: Some(32),
                        image: Some(BlkFigures {
                            requests_per_s: sp(20_390.0, 19_000.0, 21_000.0),
                            mb_per_s: sp(83.5, 77.8, 86.0),
                            boots: 2,
                            verified: true,
                        }),
                        null_co: None,
                        linux: Some(LinuxFigures {
                            requests_per_s: 2000.0,
                            mb_per_s: 8.2,
                        }),
                        vs_linux_rate: Some(10.195),
                        vs_linux_bandwidth: Some(10.18),
                        vs_null_co: None,
                    },
                )]),
            }),
            streams: Some(StreamsBench {
                measured,
                stress: 8,
                scenarios: vec!["bench-streams".into()],
                queues: BTreeMap::from([("serial fe.0.0003 port0 rx".to_string(), queue(9324.0))]),
                peers: BTreeMap::new(),
            }),
        }
    }

    #[test]
    fn round_trip() {
        let r = sample();
        let text = r.to_json();
        assert!(text.contains("\"schema\": \"zvtest-bench/1\""), "{text}");
        assert_eq!(Report::parse(&text), Ok(r));
    }

    #[test]
    fn other_schemas_are_refused() {
        let mut v: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        v["schema"] = "zvtest-bench/2".into();
        let e = Report::parse(&v.to_string()).unwrap_err();
        assert!(
            e.contains("'zvtest-bench/2'") && e.contains("'zvtest-bench/1'"),
            "{e}"
        );
        let e = Report::parse(r#"{"scenario": "default", "runs": 3}"#).unwrap_err();
        assert!(e.contains("no \"schema\" field"), "{e}");
        let e = Report::parse("{").unwrap_err();
        assert!(e.starts_with("not JSON"), "{e}");
        // The right name over the wrong shape.
        let e = Report::parse(r#"{"schema": "zvtest-bench/1"}"#).unwrap_err();
        assert!(e.contains("missing field `host`"), "{e}");
    }

    #[test]
    fn parts_kept_only_from_the_same_setup() {
        let earlier = sample();
        let mut new = Report::new(
            earlier.host.clone(),
            earlier.qemu.clone(),
            earlier.zvtest.clone(),
        );
        new.blk = None;
        assert_eq!(
            new.keep_parts_of(earlier.clone()).as_deref(),
            Some("kept the earlier default, blk, streams part")
        );
        assert_eq!(new.default, earlier.default);
        let mut other = Report::new(
            earlier.host.clone(),
            earlier.qemu.clone(),
            Zvtest {
                commit: "abc1234-dirty".into(),
            },
        );
        let why = other.keep_parts_of(earlier).unwrap();
        assert!(why.contains("dropped") && why.contains("9e35e9e"), "{why}");
        assert_eq!(other.default, None);
    }

    #[test]
    fn dates_and_depths() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_998_896), "2026-11-30T00:34:56Z");
        assert_eq!(queue_depth("randread4k_qd32"), Some(32));
        assert_eq!(queue_depth("seqwrite64k_qd1"), Some(1));
        assert_eq!(queue_depth("random"), None);
    }
}
