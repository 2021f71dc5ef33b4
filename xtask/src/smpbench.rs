//! The concurrent stress in `cargo xtask bench`: `smp.stress-blk` with a
//! request queue per CPU at 1, 2 and 4 CPUs. Each CPU's rate is its
//! random phase's (`# smp <bus> q<K> cpu<K> random: <QueueStats>`); the
//! total is every request of every phase over the phase's wall time
//! (`# smp <bus> all <N> CPUs: <QueueStats>`), set against one CPU's. The
//! one-CPU figure is CPU 0 alone on a single queue of a two-CPU machine
//! (the check needs a second CPU; the other one idles and takes
//! interrupts).

use crate::blkbench::spread;
use crate::queuebench::parse;
use std::collections::BTreeMap;

/// CPUs driving a queue in each series.
pub const CPU_COUNTS: [u32; 3] = [1, 2, 4];

/// The figures one boot printed: each CPU's random-phase rate (by its
/// `cpu<K>` label) and the total rate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SmpSample {
    pub per_cpu: BTreeMap<String, u64>,
    pub total: Option<u64>,
}

pub fn sample(diagnostics: &[String]) -> SmpSample {
    let mut s = SmpSample::default();
    for q in diagnostics.iter().filter_map(|d| parse(d)) {
        let words: Vec<&str> = q.queue.split_whitespace().collect();
        match words.as_slice() {
            ["smp", _, _, cpu, "random"] => {
                s.per_cpu.insert(cpu.to_string(), q.requests_per_s);
            }
            ["smp", _, "all", _, "CPUs"] => s.total = Some(q.requests_per_s),
            _ => {}
        }
    }
    s
}

/// A series (one CPU count) over its boots.
pub use crate::report::SmpSeries as Series;

pub fn series(cpus: u32, samples: &[SmpSample]) -> Series {
    let mut by: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for s in samples {
        for (c, r) in &s.per_cpu {
            by.entry(c.clone()).or_default().push(*r as f64);
        }
    }
    let totals: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.total)
        .map(|t| t as f64)
        .collect();
    Series {
        cpus,
        boots: samples.len(),
        per_cpu_requests_per_s: by
            .into_iter()
            .filter_map(|(c, v)| Some((c, spread(&v)?)))
            .collect(),
        total_requests_per_s: spread(&totals),
        total_vs_one_cpu: None,
    }
}

/// Sets each series' total against the one-CPU series'.
pub fn relate(all: &mut [Series]) {
    let one = all
        .iter()
        .find(|s| s.cpus == 1)
        .and_then(|s| s.total_requests_per_s.map(|t| t.median));
    for s in all {
        s.total_vs_one_cpu = match (one, s.total_requests_per_s) {
            (Some(o), Some(t)) if o > 0.0 => Some(t.median / o),
            _ => None,
        };
    }
}

pub fn table(all: &[Series]) -> String {
    let mut out =
        String::from("smp.stress-blk   total req/s (median)   vs 1 CPU   per CPU req/s (median)\n");
    for s in all {
        let per: Vec<String> = s
            .per_cpu_requests_per_s
            .iter()
            .map(|(c, v)| format!("{c} {:.0}", v.median))
            .collect();
        out.push_str(&format!(
            "{} CPU{:<11} {:>20}   {:>8}   {}\n",
            s.cpus,
            if s.cpus == 1 { "" } else { "s" },
            s.total_requests_per_s
                .map_or("-".to_string(), |t| format!("{:.0}", t.median)),
            s.total_vs_one_cpu
                .map_or("-".to_string(), |r| format!("{r:.2}x")),
            per.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(cpus: u32, rate: u64, total: u64) -> Vec<String> {
        let mut v: Vec<String> = (0..cpus)
            .map(|k| format!(
                "smp fe.0.0001 q{k} cpu{k} random: 1200 requests, 9 bytes, {rate} req/s, 5 KiB/s, 3 kicks, 4 interrupts, max depth 9, 0 index wraps, 400 ms (600 reads, 500 writes, 100 flushes)"
            ))
            .collect();
        v.push(format!(
            "smp fe.0.0001 all {cpus} CPUs: 3000 requests, 9 bytes, {total} req/s, 5 KiB/s, 3 kicks, 4 interrupts, max depth 9, 0 index wraps, 700 ms (80 subchannel interrupts)"
        ));
        v.push("smp cpu 0 (address 0): 376 requests, 1 bytes, 38 I/O interrupts, 0 adapter interrupts, 25 wake-ups".into());
        v
    }

    #[test]
    fn per_cpu_and_total_rates_against_one_cpu() {
        let one = sample(&lines(1, 3000, 2800));
        assert_eq!(one.per_cpu.get("cpu0"), Some(&3000));
        assert_eq!(one.total, Some(2800));
        let two = [sample(&lines(2, 2500, 4000)), sample(&lines(2, 2700, 4400))];
        let mut all = vec![series(1, &[one]), series(2, &two)];
        relate(&mut all);
        assert_eq!(all[0].total_vs_one_cpu, Some(1.0));
        let r = all[1].total_vs_one_cpu.unwrap();
        assert!((r - 4200.0 / 2800.0).abs() < 1e-9, "{r}");
        assert_eq!(all[1].per_cpu_requests_per_s["cpu1"].median, 2600.0);
        assert!(table(&all).contains("1.50x"));
    }

    #[test]
    fn other_lines_are_not_taken() {
        let s = sample(&["blk fe.0.0001 q0 rev 2 split classic interrupts random: 200 requests, 9 bytes, 10 req/s, 5 KiB/s, 3 kicks, 4 interrupts, max depth 9, 0 index wraps, 400 ms".into()]);
        assert_eq!(s, SmpSample::default());
    }
}
