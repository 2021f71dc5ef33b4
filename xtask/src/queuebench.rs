//! Per-queue figures of `cargo xtask bench`: every queue a suite drove
//! prints `# <group> <bus> <queue>: N requests, B bytes, ..., E ms` (the
//! contract's `QueueStats`), and every peer of the runner its named
//! figures; this module gathers them over the boots, prints their medians
//! and writes them as JSON (`target/bench/default.json`).

use crate::blkbench::{spread, Spread};
pub use crate::report::QueueFigures;
use std::collections::BTreeMap;

/// One queue's line in one boot.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueSample {
    /// `<group> <bus> <queue...>`, e.g. `net fe.0.0002 rx0`.
    pub queue: String,
    pub requests: u64,
    pub bytes: u64,
    pub millis: u64,
    /// The rates the firmware computed from its microsecond clock (the
    /// milliseconds are rounded: a round of a few ms is too coarse).
    pub requests_per_s: u64,
    pub kib_per_s: u64,
    /// The most requests in flight at once (`max depth N`), where printed.
    pub max_depth: Option<u64>,
}

impl QueueSample {
    fn timed(&self) -> bool {
        self.millis > 0 || self.requests_per_s > 0
    }
}

/// Parses a diagnostic (without `# `) in the `QueueStats` form; None for
/// any other line.
pub fn parse(diagnostic: &str) -> Option<QueueSample> {
    let (queue, fields) = diagnostic.split_once(": ")?;
    let words: Vec<&str> = queue.split_whitespace().collect();
    // A bus id (`fe.0.0002`) after the group (one word, or two as in
    // `virtio rng`), and a queue label after it.
    let is_bus = |w: &&str| {
        w.split('.').count() == 3 && w.bytes().all(|b| b == b'.' || b.is_ascii_hexdigit())
    };
    let bus = words.iter().position(is_bus)?;
    if !(1..=2).contains(&bus) || bus + 1 == words.len() {
        return None;
    }
    let f: Vec<&str> = fields.split(", ").collect();
    let number =
        |i: usize, unit: &str| -> Option<u64> { f.get(i)?.strip_suffix(unit)?.parse().ok() };
    // The time is the last of the figures; a device may add words after
    // it (`497 ms (1024 reads, ...)`).
    let millis = f.iter().find_map(|w| {
        let (n, rest) = w.split_once(" ms")?;
        (rest.is_empty() || rest.starts_with(" (")).then(|| n.parse().ok())?
    })?;
    Some(QueueSample {
        queue: queue.to_string(),
        requests: number(0, " requests")?,
        bytes: number(1, " bytes")?,
        millis,
        requests_per_s: number(2, " req/s")?,
        kib_per_s: number(3, " KiB/s")?,
        max_depth: f
            .iter()
            .find_map(|w| w.strip_prefix("max depth ")?.parse().ok()),
    })
}

/// The queue lines and peer outcomes of a benchmark's boots.
#[derive(Debug, Default)]
pub struct Gathered {
    pub samples: Vec<QueueSample>,
    pub outcomes: Vec<qemu_runner::PeerOutcome>,
}

impl Gathered {
    pub fn add(&mut self, o: &qemu_runner::Run) {
        self.samples
            .extend(o.tap.diagnostics.iter().filter_map(|d| parse(d)));
        self.outcomes.extend(o.peers.iter().cloned());
    }

    pub fn queues(&self) -> BTreeMap<String, QueueFigures> {
        queues(&self.samples)
    }

    pub fn peers(&self) -> BTreeMap<String, BTreeMap<String, Spread>> {
        peers(&self.outcomes)
    }
}

/// Per queue, the figures of its samples; a queue whose lines have no
/// measurable time (0 ms) gets none.
pub fn queues(samples: &[QueueSample]) -> BTreeMap<String, QueueFigures> {
    let mut by: BTreeMap<&str, Vec<&QueueSample>> = BTreeMap::new();
    for s in samples {
        by.entry(&s.queue).or_default().push(s);
    }
    by.into_iter()
        .filter_map(|(q, v)| {
            let timed: Vec<&&QueueSample> = v.iter().filter(|s| s.timed()).collect();
            let rate =
                |x: fn(&QueueSample) -> f64| -> Vec<f64> { timed.iter().map(|s| x(s)).collect() };
            let requests: Vec<f64> = v.iter().map(|s| s.requests as f64).collect();
            let depths: Vec<f64> = v
                .iter()
                .filter_map(|s| s.max_depth)
                .map(|d| d as f64)
                .collect();
            Some((
                q.to_string(),
                QueueFigures {
                    requests_per_s: spread(&rate(|s| s.requests_per_s as f64))?,
                    bytes_per_s: spread(&rate(|s| s.kib_per_s as f64 * 1024.0))?,
                    requests: spread(&requests)?.median,
                    max_depth: spread(&depths).map(|d| d.median),
                    boots: v.len(),
                },
            ))
        })
        .collect()
}

/// Per peer, per figure: the median over the boots.
pub fn peers<'a>(
    outcomes: impl IntoIterator<Item = &'a qemu_runner::PeerOutcome>,
) -> BTreeMap<String, BTreeMap<String, Spread>> {
    let mut by: BTreeMap<String, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for o in outcomes {
        for (name, v) in &o.figures {
            by.entry(o.name.clone())
                .or_default()
                .entry(name.clone())
                .or_default()
                .push(*v);
        }
    }
    by.into_iter()
        .map(|(p, f)| {
            let f = f
                .into_iter()
                .filter_map(|(n, v)| Some((n, spread(&v)?)))
                .collect();
            (p, f)
        })
        .collect()
}

/// The queue table: median requests/s and bytes/s per queue.
pub fn table(queues: &BTreeMap<String, QueueFigures>) -> String {
    let width = queues.keys().map(String::len).max().unwrap_or(0).max(5) + 2;
    let mut s = format!(
        "{:<width$}{:>14}{:>14}{:>14}{:>7}{:>7}\n",
        "queue", "requests", "req/s", "MB/s", "depth", "boots"
    );
    for (q, f) in queues {
        s.push_str(&format!(
            "{q:<width$}{:>14.0}{:>14.0}{:>14.2}{:>7}{:>7}\n",
            f.requests,
            f.requests_per_s.median,
            f.bytes_per_s.median / 1e6,
            f.max_depth.map_or("-".to_string(), |d| format!("{d:.0}")),
            f.boots
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "net fe.0.0002 rx0: 1000 requests, 1514000 bytes, 5000 req/s, 7392 KiB/s, 12 kicks, 40 interrupts, max depth 64, 0 index wraps, 200 ms";

    #[test]
    fn queue_lines() {
        let s = parse(LINE).unwrap();
        assert_eq!(s.queue, "net fe.0.0002 rx0");
        assert_eq!((s.requests, s.bytes, s.millis), (1000, 1514000, 200));
        assert_eq!(s.max_depth, Some(64));
        let rng = "virtio rng fe.0.0004 rev 2 split classic polled random: 64 requests, 8906 bytes, 28482 req/s, 3870 KiB/s, 11 kicks, 0 interrupts, max depth 7, 0 index wraps, 2 ms";
        let rng = parse(rng).unwrap();
        assert_eq!(
            (rng.queue.as_str(), rng.requests_per_s, rng.max_depth),
            (
                "virtio rng fe.0.0004 rev 2 split classic polled random",
                28482,
                Some(7)
            )
        );
        let blk = "blk fe.0.0001 q0 split: 5 requests, 20480 bytes, 0 req/s, 0 KiB/s, 5 kicks, 5 interrupts, max depth 1, 0 index wraps, 0 ms";
        assert_eq!(parse(blk).unwrap().queue, "blk fe.0.0001 q0 split");
        let more = "blk fe.0.0001 q0 read-all: 1024 requests, 67108864 bytes, 2058 req/s, 131737 KiB/s, 112 kicks, 112 interrupts, max depth 27, 0 index wraps, 497 ms (1024 reads, 0 writes, 0 flushes)";
        assert_eq!(parse(more).unwrap().millis, 497);
        for not in [
            "blk.stress: 100 us, heap in use 5 bytes, timeout 5 ms",
            "net fe.0.0002: 1 requests, 2 bytes, 0 ms",
            "net rx0 q: 1 requests, 2 bytes, 0 ms",
            "net fe.0.0002 rx0: many requests, 2 bytes, 0 ms",
            "a b c fe.0.0002 rx0: 1 requests, 2 bytes, 0 req/s, 0 KiB/s, 0 ms",
            "smp cpu 0 (address 0): 376 requests, 1 bytes, 38 I/O interrupts, 25 wake-ups",
            "net fe.0.0002 rx0: 1 requests, 2 bytes, 0 s",
        ] {
            assert_eq!(parse(not), None, "{not}");
        }
    }

    #[test]
    fn rates_per_boot_then_medians() {
        let a = parse(LINE).unwrap();
        let mut b = a.clone();
        (b.requests_per_s, b.kib_per_s) = (10000, 14784);
        let mut c = a.clone();
        (c.millis, c.requests_per_s, c.kib_per_s) = (0, 0, 0);
        let q = queues(&[a, b, c]);
        let f = &q["net fe.0.0002 rx0"];
        assert_eq!(
            f.boots, 3,
            "an untimed line counts as a boot, not as a rate"
        );
        assert_eq!(f.requests_per_s.median, 7500.0);
        assert_eq!(f.requests_per_s.min, 5000.0);
        assert_eq!(f.bytes_per_s.max, 14784.0 * 1024.0);
        assert_eq!(f.max_depth, Some(64.0));
        let t = table(&q);
        let row: Vec<&str> = t
            .lines()
            .find(|l| l.starts_with("net fe.0.0002 rx0"))
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(row[3..], ["1000", "7500", "11.35", "64", "3"], "{t}");
    }

    #[test]
    fn peer_figures() {
        let mut o = qemu_runner::PeerOutcome::new("net0");
        o.figures.push(("frames".into(), 10.0));
        let mut p = o.clone();
        p.figures[0].1 = 30.0;
        let f = peers([&o, &p]);
        assert_eq!(f["net0"]["frames"].median, 20.0);
    }
}
