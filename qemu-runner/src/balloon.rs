//! The balloon's peer: what only the host sees of virtio-balloon, checked
//! at the firmware's markers over a QMP monitor of its own. After the
//! firmware inflated N pages QEMU's `query-balloon` must say the storage
//! less N pages (hw/virtio/virtio-balloon.c, virtio_balloon_stat: the
//! guest's storage less `actual` pages of 4 KiB), after the deflate the
//! whole storage; QOM `guest-stats` must hold every statistic the
//! firmware printed. Each check is answered with a balloon target (a
//! configuration change the firmware waits for): the storage less the
//! pages `query-balloon` counted, so the firmware sees the host's count.

use crate::peers::{Peer, PeerContext, PeerEnd, PeerMonitor, PeerOutcome, PeerSpec};
use crate::scenario::Scenario;
use std::collections::BTreeMap;
use std::io;
use zvtest_contract::balloon::{parse_stat_line, stat, BalloonConfig, PAGE, STATS};
use zvtest_contract::checks::markers;
use zvtest_contract::inventory::BusId;

/// The balloon as a scenario sets it up: `Balloon::new("fe.0.0005")
/// .inflate(64).stats().report()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balloon {
    pub config: BalloonConfig,
    /// Problems found while building, for [`Scenario::validate`].
    pub errors: Vec<String>,
}

impl Balloon {
    pub fn new(bus: &str) -> Self {
        match bus.parse::<BusId>() {
            Ok(b) => Balloon {
                config: BalloonConfig::new(b),
                errors: Vec::new(),
            },
            Err(e) => Balloon {
                config: BalloonConfig::new(BusId {
                    cssid: 0xfe,
                    ssid: 0,
                    devno: 0,
                }),
                errors: vec![format!("balloon {bus}: {e}")],
            },
        }
    }

    /// `balloon.inflate` gives `pages` pages and the peer holds
    /// `query-balloon` to them.
    pub fn inflate(mut self, pages: u32) -> Self {
        self.config.inflate = pages;
        self
    }

    /// `balloon.stats`: the peer asks for statistics and compares them.
    pub fn stats(mut self) -> Self {
        self.config.stats = true;
        self
    }

    /// `free-page-reporting=on` (`balloon.report`).
    pub fn report(mut self) -> Self {
        self.config.report = true;
        self
    }

    /// `free-page-hint=on` with an iothread (`balloon.hint`).
    pub fn hint(mut self) -> Self {
        self.config.hint = true;
        self
    }

    /// Test only: the firmware inflates one page more than the peer
    /// expects and posts one byte more of free memory than it prints, so
    /// the peer's checks must fail.
    pub fn skew(mut self) -> Self {
        self.config.skew = true;
        self
    }
}

/// Adds the balloon to a scenario.
pub trait BalloonScenario {
    /// `virtio-balloon-ccw` at the balloon's bus id with its properties,
    /// `balloon=` for the firmware, and the peer (with its own QMP
    /// monitor) where inflate or statistics are asked for.
    fn balloon(self, b: Balloon) -> Self;
}

impl BalloonScenario for Scenario {
    fn balloon(self, b: Balloon) -> Self {
        let bus = b.config.bus.to_string();
        let mut s = self.ccw_device("virtio-balloon-ccw", &bus, "balloon");
        s.errors.extend(b.errors.iter().cloned());
        let iothread = format!("{}-io", crate::devices::CcwDevice::default_id(b.config.bus));
        if let Some(dev) = s.ccw_devices.iter_mut().find(|d| d.bus == b.config.bus) {
            if b.config.report {
                dev.properties
                    .push(("free-page-reporting".into(), "on".into()));
            }
            if b.config.hint {
                dev.properties.push(("free-page-hint".into(), "on".into()));
                dev.properties.push(("iothread".into(), iothread.clone()));
                dev.backend_args
                    .extend(["-object".into(), format!("iothread,id={iothread}")]);
            }
        }
        let ram = u64::from(s.memory_mib) << 20;
        let s = s.append(format!("balloon={}", b.config.item()));
        if b.config.inflate > 0 || b.config.stats {
            s.peer(BalloonPeer {
                config: b.config,
                ram,
            })
        } else {
            s
        }
    }
}

/// The peer's spec: the balloon's configuration and the guest's storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalloonPeer {
    pub config: BalloonConfig,
    /// The guest's storage in bytes (`-m`).
    pub ram: u64,
}

impl PeerSpec for BalloonPeer {
    fn name(&self) -> String {
        format!("balloon {}", self.config.bus)
    }

    fn start(&self, ctx: &PeerContext) -> io::Result<Box<dyn Peer>> {
        Ok(Box::new(RunningBalloon {
            spec: self.clone(),
            monitor: PeerMonitor::new(ctx, "balloon-qmp.sock"),
            printed: BTreeMap::new(),
            lines: Vec::new(),
            reasons: Vec::new(),
            seen: Vec::new(),
        }))
    }
}

struct RunningBalloon {
    spec: BalloonPeer,
    monitor: PeerMonitor,
    /// The statistics the firmware printed, by tag.
    printed: BTreeMap<u16, u64>,
    lines: Vec<String>,
    reasons: Vec<String>,
    /// The markers acted on.
    seen: Vec<&'static str>,
}

/// QOM path of the device: its QEMU id under /machine/peripheral (the ccw
/// proxy carries the balloon's `guest-stats*` properties as aliases).
fn qom_path(bus: BusId) -> String {
    format!(
        "/machine/peripheral/{}",
        crate::devices::CcwDevice::default_id(bus)
    )
}

/// The words after `marker` on `line` (None: not that marker).
fn after<'a>(line: &'a str, marker: &str) -> Option<Vec<&'a str>> {
    let rest = line.trim().strip_prefix(marker)?;
    (rest.is_empty() || rest.starts_with(' ')).then(|| rest.split_whitespace().collect())
}

impl RunningBalloon {
    fn bus(&self) -> BusId {
        self.spec.config.bus
    }

    fn query(&mut self, what: &str, json: serde_json::Value) -> Option<serde_json::Value> {
        match self.monitor.query(what, &json.to_string()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.reasons
                    .push(format!("balloon {}: {e}", self.spec.config.bus));
                None
            }
        }
    }

    /// Holds `query-balloon` to the storage less `pages`, then answers
    /// with the target it counted.
    fn check_actual(&mut self, when: &str, pages: u64) {
        let ram = self.spec.ram;
        let expected = ram - pages * PAGE;
        let Some(v) = self.query(
            "query-balloon",
            serde_json::json!({"execute": "query-balloon"}),
        ) else {
            return;
        };
        let Some(got) = v.get("actual").and_then(|a| a.as_u64()) else {
            self.reasons.push(format!(
                "balloon {} {when}: query-balloon answered without a number `actual`: {v}",
                self.bus()
            ));
            return;
        };
        self.lines.push(format!(
            "query-balloon {when}: actual {got} (expected {expected})"
        ));
        if got != expected {
            self.reasons.push(format!(
                "balloon {} {when}: query-balloon actual: expected {expected} ({ram} bytes of storage less {pages} pages of {PAGE}), got {got} ({} pages)",
                self.bus(),
                (ram.saturating_sub(got)) / PAGE
            ));
        }
        self.answer(got.clamp(PAGE, ram));
    }

    /// A balloon target: a configuration change the firmware waits for.
    fn answer(&mut self, target: u64) {
        self.query(
            "balloon",
            serde_json::json!({"execute": "balloon", "arguments": {"value": target}}),
        );
    }

    fn qom_set_polling(&mut self, seconds: u64) -> bool {
        let path = qom_path(self.bus());
        self.query(
            "qom-set guest-stats-polling-interval",
            serde_json::json!({"execute": "qom-set", "arguments": {
                "path": path, "property": "guest-stats-polling-interval", "value": seconds}}),
        )
        .is_some()
    }

    /// Compares QOM `guest-stats` with what the firmware printed: every
    /// printed statistic equal, every other one unset (QEMU resets them
    /// for each buffer: u64::MAX, or -1 where QEMU typed them signed).
    fn compare_stats(&mut self) {
        let path = qom_path(self.bus());
        let Some(v) = self.query(
            "qom-get guest-stats",
            serde_json::json!({"execute": "qom-get", "arguments": {
                "path": path, "property": "guest-stats"}}),
        ) else {
            return;
        };
        let stats = v.get("stats").cloned().unwrap_or_default();
        self.lines.push(format!("guest-stats: {stats}"));
        if self.printed.is_empty() {
            self.reasons.push(format!(
                "balloon {}: no `# balloon {} stat ...` lines before the statistics were posted",
                self.bus(),
                self.bus()
            ));
        }
        for s in STATS {
            let got = stats.get(s.qemu);
            let want = self.printed.get(&s.tag).copied();
            let unset =
                |g: &serde_json::Value| g.as_u64() == Some(u64::MAX) || g.as_i64() == Some(-1);
            let fine = match (want, got) {
                (Some(w), Some(g)) => g.as_u64() == Some(w),
                (None, Some(g)) => unset(g),
                // A QEMU without this statistic: nothing printed for it.
                (None, None) => true,
                (Some(_), None) => false,
            };
            if !fine {
                let want_text = want.map_or("unset".to_string(), |w| w.to_string());
                let got_text = got.map_or("absent".to_string(), |g| g.to_string());
                self.reasons.push(format!(
                    "balloon {} statistic {} (tag {}, {}): QOM guest-stats expected {want_text}, got {got_text}",
                    self.bus(),
                    s.qemu,
                    s.tag,
                    s.name
                ));
            }
        }
    }
}

impl Peer for RunningBalloon {
    fn qemu_args(&self) -> Vec<String> {
        self.monitor.qemu_args()
    }

    fn line(&mut self, line: &str) {
        let bus = self.bus().to_string();
        let ours = |w: &[&str]| w.first() == Some(&bus.as_str());
        if let Some((b, tag, value)) = parse_stat_line(line) {
            if b == self.bus() && stat(tag).is_some() {
                self.printed.insert(tag, value);
            }
        } else if let Some(w) = after(line, markers::BALLOON_INFLATED).filter(|w| ours(w)) {
            self.seen.push(markers::BALLOON_INFLATED);
            let pages = u64::from(self.spec.config.inflate);
            let _ = w;
            self.check_actual("after inflating", pages);
        } else if after(line, markers::BALLOON_DEFLATED).is_some_and(|w| ours(&w)) {
            self.seen.push(markers::BALLOON_DEFLATED);
            self.check_actual("after deflating", 0);
        } else if after(line, markers::BALLOON_STATS_READY).is_some_and(|w| ours(&w)) {
            self.seen.push(markers::BALLOON_STATS_READY);
            self.printed.clear();
            // QEMU's timer then fires at once (balloon_stats_change_timer
            // with 0 s) and gives the firmware's buffer back.
            self.qom_set_polling(1);
        } else if after(line, markers::BALLOON_STATS_POSTED).is_some_and(|w| ours(&w)) {
            self.seen.push(markers::BALLOON_STATS_POSTED);
            // No more asking: the buffer stays with the device.
            self.qom_set_polling(0);
            self.compare_stats();
            let ram = self.spec.ram;
            self.answer(ram);
        }
    }

    fn finish(self: Box<Self>, end: &PeerEnd<'_>) -> PeerOutcome {
        let mut o = PeerOutcome::new(self.spec.name());
        o.lines = self.lines;
        o.lines.extend(self.monitor.log());
        o.reasons = self.reasons;
        // A check that ran (passed or failed, not skipped) printed its
        // markers: one the peer never saw is a reason.
        let ran = |name: &str| end.tap.result(name).is_some_and(|r| !r.is_skip());
        let mut want: Vec<(&str, &'static str)> = Vec::new();
        if self.spec.config.inflate > 0 {
            want.push(("balloon.inflate", markers::BALLOON_INFLATED));
            want.push(("balloon.inflate", markers::BALLOON_DEFLATED));
        }
        if self.spec.config.stats {
            want.push(("balloon.stats", markers::BALLOON_STATS_READY));
            want.push(("balloon.stats", markers::BALLOON_STATS_POSTED));
        }
        for (check, marker) in want {
            let passed = end.tap.result(check).is_some_and(|r| r.ok && !r.is_skip());
            if ran(check) && passed && !self.seen.contains(&marker) {
                o.reasons.push(format!(
                    "balloon {}: {check} passed but the peer never saw '{marker} {}'",
                    self.spec.config.bus, self.spec.config.bus
                ));
            }
        }
        o.figures.push(("markers".into(), self.seen.len() as f64));
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_read_with_their_bus() {
        assert_eq!(
            after(
                "# zvtest: balloon inflated fe.0.0005 64",
                markers::BALLOON_INFLATED
            ),
            Some(vec!["fe.0.0005", "64"])
        );
        assert_eq!(
            after("# zvtest: balloon inflatedx", markers::BALLOON_INFLATED),
            None
        );
        assert_eq!(
            qom_path("fe.0.0005".parse().unwrap()),
            "/machine/peripheral/ccw-fe.0.0005"
        );
    }

    #[test]
    fn the_scenario_carries_device_word_and_peer() {
        let s = Scenario::new("b")
            .balloon(Balloon::new("fe.0.0005").inflate(8).stats().report().hint());
        assert!(s
            .append
            .contains(&"balloon=fe.0.0005:inflate=8:stats:report:hint".to_string()));
        let dev = &s.ccw_devices[0];
        assert!(dev.device_arg().contains("free-page-reporting=on"));
        assert!(dev
            .device_arg()
            .contains("free-page-hint=on,iothread=ccw-fe.0.0005-io"));
        assert_eq!(s.peers.len(), 1);
        let quiet = Scenario::new("b").balloon(Balloon::new("fe.0.0005").report());
        assert!(quiet.peers.is_empty());
        assert!(!Scenario::new("b")
            .balloon(Balloon::new("x"))
            .errors
            .is_empty());
    }
}
