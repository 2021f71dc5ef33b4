//! `cargo xtask bench blk`: the block benchmark. The firmware runs the
//! four workloads of the Linux reference (`../shared/tools/linux-anchor`,
//! fio job names) on a 1 GiB scratch image and on QEMU's `null-co`, every
//! byte read still checked on the image; this module reads its `# bench`
//! lines, takes medians over the boots and sets them beside the Linux
//! guest's figures and the targets.

pub use crate::report::{
    BlkFigures as Figures, BlkWorkload as Entry, LinuxFigures as Linux, Spread,
};
use std::collections::BTreeMap;

/// The workloads, in the firmware's `bench=` and fio's names.
pub const WORKLOADS: [&str; 4] = [
    "randread4k_qd1",
    "randread4k_qd32",
    "seqwrite64k_qd1",
    "seqwrite64k_qd8",
];

/// One `# bench <name> <disk>: requests R bytes B us U ...` line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub workload: String,
    pub requests: u64,
    pub bytes: u64,
    pub micros: u64,
    pub verified: bool,
}

impl Sample {
    pub fn rps(&self) -> f64 {
        self.requests as f64 * 1e6 / self.micros.max(1) as f64
    }

    pub fn mbps(&self) -> f64 {
        self.bytes as f64 / self.micros.max(1) as f64
    }
}

/// Parses a diagnostic (without `# `).
pub fn parse(diagnostic: &str) -> Option<Sample> {
    let rest = diagnostic.strip_prefix("bench ")?;
    let (head, fields) = rest.split_once(": ")?;
    let workload = head.split_whitespace().next()?.to_string();
    let words: Vec<&str> = fields.split_whitespace().collect();
    let after = |key: &str| -> Option<u64> {
        let i = words.iter().position(|w| *w == key)?;
        words.get(i + 1)?.parse().ok()
    };
    Some(Sample {
        workload,
        requests: after("requests")?,
        bytes: after("bytes")?,
        micros: after("us")?,
        verified: fields.contains("verified yes"),
    })
}

pub fn spread(values: &[f64]) -> Option<Spread> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[n - 1],
    })
}

/// A workload's figures per back-end, from all boots' samples.
pub fn figures(samples: &[Sample], workload: &str) -> Option<Figures> {
    let mine: Vec<&Sample> = samples.iter().filter(|s| s.workload == workload).collect();
    let rps: Vec<f64> = mine.iter().map(|s| s.rps()).collect();
    let mbps: Vec<f64> = mine.iter().map(|s| s.mbps()).collect();
    Some(Figures {
        requests_per_s: spread(&rps)?,
        mb_per_s: spread(&mbps)?,
        boots: mine.len(),
        verified: mine.iter().all(|s| s.verified),
    })
}

/// The Linux guest's medians for a workload (linux-anchor's JSON summary).
pub fn linux(anchor: &serde_json::Value, workload: &str) -> Option<Linux> {
    let s = anchor.get("summary")?.get(workload)?;
    Some(Linux {
        requests_per_s: s.get("iops_median")?.as_f64()?,
        mb_per_s: s.get("MBps_median")?.as_f64()?,
    })
}

/// A workload's entry. The targets of the issue: 10× the Linux guest's
/// request rate, 3× its write bandwidth, half of what null-co reaches.
pub fn entry(
    image: &[Sample],
    null: &[Sample],
    anchor: Option<&serde_json::Value>,
    w: &str,
) -> Entry {
    let image = figures(image, w);
    let null_co = figures(null, w);
    let linux = anchor.and_then(|a| linux(a, w));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let img_rps = image.as_ref().map(|f| f.requests_per_s.median);
    Entry {
        queue_depth: crate::report::queue_depth(w),
        vs_linux_rate: ratio(img_rps, linux.map(|l| l.requests_per_s)),
        vs_linux_bandwidth: ratio(
            image.as_ref().map(|f| f.mb_per_s.median),
            linux.map(|l| l.mb_per_s),
        ),
        vs_null_co: ratio(img_rps, null_co.as_ref().map(|f| f.requests_per_s.median)),
        image,
        null_co,
        linux,
    }
}

/// The table printed after the boots.
pub fn table(entries: &BTreeMap<String, Entry>) -> String {
    let mut out = String::from(
        "workload          image req/s (min-max)        MB/s   null-co req/s   Linux req/s   MB/s   ×Linux rate  ×Linux MB/s  ÷null-co\n",
    );
    let f = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |v| format!("{v:.d$}"));
    for w in WORKLOADS {
        let Some(e) = entries.get(w) else { continue };
        let img = e.image.as_ref();
        out.push_str(&format!(
            "{:<17} {:>8} ({:>6}-{:>6})  {:>7}  {:>13}  {:>11}  {:>5}  {:>11}  {:>11}  {:>8}\n",
            w,
            f(img.map(|i| i.requests_per_s.median), 0),
            f(img.map(|i| i.requests_per_s.min), 0),
            f(img.map(|i| i.requests_per_s.max), 0),
            f(img.map(|i| i.mb_per_s.median), 1),
            f(e.null_co.as_ref().map(|n| n.requests_per_s.median), 0),
            f(e.linux.map(|l| l.requests_per_s), 0),
            f(e.linux.map(|l| l.mb_per_s), 1),
            f(e.vs_linux_rate, 1),
            f(e.vs_linux_bandwidth, 1),
            f(e.vs_null_co, 2),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_lines_and_medians() {
        let s = parse("bench randread4k_qd32 fe.0.0001: requests 40803 bytes 167129088 us 2001082 req/s 20390 KiB/s 81561 kicks 1277 interrupts 1275 max depth 32 verified yes").unwrap();
        assert_eq!(
            (s.workload.as_str(), s.requests, s.micros),
            ("randread4k_qd32", 40803, 2001082)
        );
        assert!(s.verified && (s.rps() - 20390.0).abs() < 1.0);
        assert!(parse("bench x: requests 1").is_none());
        assert!(parse("blk fe.0.0001: 3 rounds").is_none());
        let sp = spread(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((sp.median, sp.min, sp.max), (2.0, 1.0, 3.0));
        assert_eq!(spread(&[1.0, 2.0]).unwrap().median, 1.5);
        assert!(spread(&[]).is_none());
    }

    #[test]
    fn ratios_against_linux_and_null_co() {
        let line = |w: &str, r: u64| Sample {
            workload: w.into(),
            requests: r,
            bytes: r * 4096,
            micros: 1_000_000,
            verified: true,
        };
        let anchor: serde_json::Value = serde_json::from_str(
            r#"{"summary":{"randread4k_qd1":{"iops_median":1000.0,"MBps_median":4.0}}}"#,
        )
        .unwrap();
        let e = entry(
            &[
                line("randread4k_qd1", 9000),
                line("randread4k_qd1", 11000),
                line("randread4k_qd1", 10000),
            ],
            &[line("randread4k_qd1", 20000)],
            Some(&anchor),
            "randread4k_qd1",
        );
        assert_eq!(e.vs_linux_rate, Some(10.0));
        assert_eq!(e.vs_null_co, Some(0.5));
        assert_eq!(e.image.as_ref().unwrap().boots, 3);
        assert!(table(&BTreeMap::from([("randread4k_qd1".to_string(), e)])).contains("10.0"));
    }
}
