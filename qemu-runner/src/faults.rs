//! Faults the runner injects into a running QEMU at a firmware marker,
//! through a monitor of its own: the whole VM stopped and continued while
//! a disk is under stress. What was done, and when, is in the peer's
//! lines; anything QEMU did not do as asked is a reason in the verdict.

use crate::peers::{Peer, PeerContext, PeerEnd, PeerMonitor, PeerOutcome, PeerSpec};
use std::io;
use std::time::{Duration, Instant};
use zvtest_contract::checks::markers::BLK_STRESS;

/// How long QEMU may take to send the event a command causes.
const EVENT_WAIT: Duration = Duration::from_secs(10);

/// Stops the VM (QMP `stop`) when `blk.stress` starts on one disk, keeps
/// it stopped for `hold` (a parameter of the fault: how long the guest's
/// requests stay with the device), then continues it (`cont`).
///
/// Each step waits for QEMU's word that it happened: the STOP event and
/// `query-status` saying paused, the status still paused after the hold
/// (nothing resumed it meanwhile), the RESUME event and `query-status`
/// saying running. Afterwards the peer counts the disk's stress reports
/// that come after the RESUME: without one, the pause did not fall inside
/// the stress and the fault proved nothing.
#[derive(Debug, Clone)]
pub struct PauseDuringStress {
    bus: String,
    hold: Duration,
}

impl PauseDuringStress {
    pub fn new(bus: &str, hold: Duration) -> Self {
        PauseDuringStress {
            bus: bus.into(),
            hold,
        }
    }

    fn marker(&self) -> String {
        format!("{BLK_STRESS} {}", self.bus)
    }
}

impl PeerSpec for PauseDuringStress {
    fn name(&self) -> String {
        format!("pause {}", self.bus)
    }

    fn start(&self, ctx: &PeerContext) -> io::Result<Box<dyn Peer>> {
        Ok(Box::new(Pausing {
            monitor: PeerMonitor::new(ctx, &format!("pause-{}.qmp", self.bus)),
            spec: self.clone(),
            paused: None,
            reports_after: 0,
            end_after: false,
            lines: Vec::new(),
            reasons: Vec::new(),
        }))
    }
}

struct Pausing {
    spec: PauseDuringStress,
    monitor: PeerMonitor,
    /// How long the VM was stopped (STOP read to RESUME read), once done.
    paused: Option<Duration>,
    /// The disk's stress reports (`# blk <bus> q...`) read after RESUME.
    reports_after: u32,
    /// The stress's end line for the disk came after RESUME.
    end_after: bool,
    lines: Vec<String>,
    reasons: Vec<String>,
}

impl Pausing {
    /// `query-status`: whether QEMU says the VM runs, and its status word.
    fn status(&mut self) -> Result<(bool, String), String> {
        let q = crate::qmp::client::command("query-status", &[]);
        let v = self.monitor.query("query-status", &q)?;
        let running = v["running"]
            .as_bool()
            .ok_or_else(|| format!("query-status without `running`: {v}"))?;
        Ok((running, v["status"].as_str().unwrap_or("?").to_string()))
    }

    fn expect_status(&mut self, when: &str, running: bool) -> Result<(), String> {
        let (r, status) = self.status()?;
        if r != running {
            return Err(format!(
                "query-status {when}: expected running={running}, got running={r} (status {status})"
            ));
        }
        Ok(())
    }

    /// Stop, hold, cont, each confirmed; an error names the step.
    fn pause(&mut self) -> Result<Duration, String> {
        let hold = self.spec.hold;
        let stop = crate::qmp::client::command("stop", &[]);
        let sent = Instant::now();
        // Connects on first use: no event of ours can come before.
        self.monitor.query("stop", &stop)?;
        let Some((_, stopped, _)) =
            self.monitor
                .wait_event(&["STOP"], 0, Instant::now() + EVENT_WAIT)?
        else {
            return Err(format!(
                "no STOP event in the {} ms after `stop`",
                sent.elapsed().as_millis()
            ));
        };
        let since = self.monitor.events_read();
        self.expect_status("after STOP", false)?;
        // The hold: QEMU's events are read meanwhile; one that ends the
        // pause before its time is a fault of its own.
        if let Some((what, at, _)) =
            self.monitor
                .wait_event(&["RESUME", "SHUTDOWN", "RESET"], since, stopped + hold)?
        {
            return Err(format!(
                "{what} {} ms into a {} ms stop the runner did not end",
                at.saturating_duration_since(stopped).as_millis(),
                hold.as_millis()
            ));
        }
        self.expect_status("at the end of the hold", false)?;
        let since = self.monitor.events_read();
        let cont = crate::qmp::client::command("cont", &[]);
        let sent = Instant::now();
        self.monitor.query("cont", &cont)?;
        let Some((_, resumed, _)) =
            self.monitor
                .wait_event(&["RESUME"], since, Instant::now() + EVENT_WAIT)?
        else {
            return Err(format!(
                "no RESUME event in the {} ms after `cont`",
                sent.elapsed().as_millis()
            ));
        };
        self.expect_status("after RESUME", true)?;
        let paused = resumed.saturating_duration_since(stopped);
        self.lines.push(format!(
            "stopped the VM at `{}`: STOP {} ms after `stop` was sent, query-status paused then and after the {} ms hold; RESUME after `cont`, {} ms after STOP; 1 stop",
            self.spec.marker(),
            stopped.saturating_duration_since(sent).as_millis(),
            hold.as_millis(),
            paused.as_millis()
        ));
        Ok(paused)
    }
}

impl Peer for Pausing {
    fn qemu_args(&self) -> Vec<String> {
        self.monitor.qemu_args()
    }

    fn line(&mut self, line: &str) {
        let line = line.trim();
        if line == self.spec.marker() {
            if self.paused.is_some() {
                self.reasons
                    .push(format!("`{line}` came twice: paused only once"));
                return;
            }
            match self.pause() {
                Ok(d) => self.paused = Some(d),
                Err(e) => {
                    // Marked done all the same: one attempt per run.
                    self.paused = Some(Duration::ZERO);
                    self.reasons
                        .push(format!("the VM stop at `{line}` failed: {e}"));
                }
            }
            return;
        }
        if self.paused.is_none() {
            return;
        }
        let bus = &self.spec.bus;
        if line.starts_with(&format!("# blk {bus} q")) {
            self.reports_after += 1;
        } else if line.starts_with(&format!("# blk {bus}: ")) && line.contains(" rounds, ") {
            self.end_after = true;
        }
    }

    fn finish(self: Box<Self>, end: &PeerEnd<'_>) -> PeerOutcome {
        let this = *self;
        let mut o = PeerOutcome::new(this.spec.name());
        o.lines = this.lines;
        o.reasons = this.reasons;
        let bus = &this.spec.bus;
        match this.paused {
            None if end.complete && end.tap.result("blk.stress").is_some() => {
                o.reasons.push(format!(
                    "blk.stress ran but `{}` never came: the VM was not stopped",
                    this.spec.marker()
                ));
            }
            None => o
                .lines
                .push("blk.stress did not run: the VM was not stopped".into()),
            Some(d) => {
                o.figures.push(("stops".into(), 1.0));
                o.figures
                    .push(("paused ms".into(), d.as_secs_f64() * 1000.0));
                o.lines.push(format!(
                    "{} stress reports of {bus} read after RESUME, its end line {}",
                    this.reports_after,
                    if this.end_after { "too" } else { "not" }
                ));
                // A stress that failed may end before its end line.
                let passed = end.tap.result("blk.stress").is_some_and(|r| r.ok);
                if end.complete && passed && (this.reports_after == 0 || !this.end_after) {
                    o.reasons.push(format!(
                        "the stress of {bus} did not go on after the VM resumed ({} reports after RESUME, end line {}): the pause did not fall within it",
                        this.reports_after,
                        if this.end_after { "seen" } else { "missing" }
                    ));
                }
            }
        }
        o
    }
}

/// Overwrites `len` bytes at byte `offset` of one virtio-blk disk with
/// `byte`, behind the guest's back, when `blk.stress` starts on it:
/// QEMU's `qemu-io` monitor command (HMP through QMP's
/// `human-monitor-command`) on the device's own block backend
/// (`-d <device id>/virtio-backend`: the BlockBackend of a virtio-blk-ccw
/// proxy is its inner device's), quiet (`-q`: qemu-io prints to QEMU's
/// stdout, our console). The write runs in QEMU's main loop before the
/// reply. The guest's next read covering it must fail naming the offset,
/// and so must the host's verification of the image after the run.
#[derive(Debug, Clone)]
pub struct CorruptDuringStress {
    bus: String,
    offset: u64,
    len: u64,
    byte: u8,
}

impl CorruptDuringStress {
    pub fn new(bus: &str, offset: u64, len: u64, byte: u8) -> Self {
        CorruptDuringStress {
            bus: bus.into(),
            offset,
            len,
            byte,
        }
    }

    /// The HMP command line: qemu-io on the disk's device backend.
    pub fn command_line(&self) -> String {
        format!(
            "qemu-io -d ccw-{}/virtio-backend \"write -q -P {:#04x} {} {}\"",
            self.bus, self.byte, self.offset, self.len
        )
    }
}

impl PeerSpec for CorruptDuringStress {
    fn name(&self) -> String {
        format!("corrupt {}", self.bus)
    }

    fn start(&self, ctx: &PeerContext) -> io::Result<Box<dyn Peer>> {
        Ok(Box::new(Corrupting {
            at: AtStress::new(ctx, "corrupt", &self.bus),
            spec: self.clone(),
        }))
    }
}

/// What the corruption and the unplug share: a monitor of their own, one
/// action at the disk's cue, and the outcome's lines and reasons.
struct AtStress {
    bus: String,
    monitor: PeerMonitor,
    done: bool,
    lines: Vec<String>,
    reasons: Vec<String>,
}

impl AtStress {
    fn new(ctx: &PeerContext, kind: &str, bus: &str) -> Self {
        AtStress {
            bus: bus.into(),
            monitor: PeerMonitor::new(ctx, &format!("{kind}-{bus}.qmp")),
            done: false,
            lines: Vec::new(),
            reasons: Vec::new(),
        }
    }

    /// The cue when `line` is it and nothing was done yet (it is done from
    /// here on: one attempt per run).
    fn cue(&mut self, line: &str) -> Option<String> {
        let marker = format!("{BLK_STRESS} {}", self.bus);
        if line.trim() != marker || self.done {
            return None;
        }
        self.done = true;
        Some(marker)
    }

    /// The outcome as `name`: a reason when blk.stress ran but the cue
    /// never came (`undone` says what that left undone); `figure` counts
    /// the actions done (0 or 1).
    fn outcome(self, name: String, end: &PeerEnd<'_>, undone: &str, figure: &str) -> PeerOutcome {
        let mut o = PeerOutcome::new(name);
        o.lines = self.lines;
        o.reasons = self.reasons;
        if !self.done && end.complete && end.tap.result("blk.stress").is_some() {
            o.reasons.push(format!(
                "blk.stress ran but `{BLK_STRESS} {}` never came: {undone}",
                self.bus
            ));
        }
        o.figures
            .push((figure.into(), f64::from(u8::from(self.done))));
        o
    }
}

struct Corrupting {
    spec: CorruptDuringStress,
    at: AtStress,
}

impl Peer for Corrupting {
    fn qemu_args(&self) -> Vec<String> {
        self.at.monitor.qemu_args()
    }

    fn line(&mut self, line: &str) {
        let Some(marker) = self.at.cue(line) else {
            return;
        };
        let cmd = self.spec.command_line();
        let q = serde_json::json!({
            "execute": "human-monitor-command",
            "arguments": { "command-line": cmd },
        })
        .to_string();
        // HMP answers with its text: empty when the command did its work,
        // the error otherwise (an unknown device, a permission refused).
        let at = &mut self.at;
        match at.monitor.query("human-monitor-command", &q) {
            Ok(serde_json::Value::String(t)) if t.trim().is_empty() => at.lines.push(format!(
                "at `{marker}`: wrote {} bytes of {:#04x} at offset {} ({:#x}) of {} behind the guest's back (HMP `{cmd}`)",
                self.spec.len, self.spec.byte, self.spec.offset, self.spec.offset, self.spec.bus
            )),
            Ok(v) => at.reasons.push(format!(
                "HMP `{cmd}` at `{marker}` answered {v}: the disk was not corrupted"
            )),
            Err(e) => at.reasons.push(format!("HMP `{cmd}` at `{marker}`: {e}")),
        }
    }

    fn finish(self: Box<Self>, end: &PeerEnd<'_>) -> PeerOutcome {
        let this = *self;
        this.at.outcome(
            this.spec.name(),
            end,
            "the disk was not corrupted",
            "corruptions",
        )
    }
}

/// Unplugs one virtio-blk disk (QMP `device_del` of its proxy) when
/// `blk.stress` starts on it, while its queue is busy: the css bridge
/// unplugs at once, without asking the guest; the firmware must say the
/// device was removed with its requests in flight, not hang, and go on
/// with the other disks. Waits for `DEVICE_DELETED` naming the proxy.
#[derive(Debug, Clone)]
pub struct UnplugDuringStress {
    bus: String,
}

impl UnplugDuringStress {
    pub fn new(bus: &str) -> Self {
        UnplugDuringStress { bus: bus.into() }
    }
}

impl PeerSpec for UnplugDuringStress {
    fn name(&self) -> String {
        format!("unplug {}", self.bus)
    }

    fn start(&self, ctx: &PeerContext) -> io::Result<Box<dyn Peer>> {
        Ok(Box::new(Unplugging {
            at: AtStress::new(ctx, "unplug", &self.bus),
            spec: self.clone(),
        }))
    }
}

struct Unplugging {
    spec: UnplugDuringStress,
    at: AtStress,
}

impl Unplugging {
    fn unplug(&mut self, marker: &str) -> Result<(), String> {
        let id = format!("ccw-{}", self.spec.bus);
        let sent = Instant::now();
        self.at.monitor.query(
            &format!("device_del {id}"),
            &crate::qmp::client::device_del(&id),
        )?;
        let mut since = 0;
        loop {
            let Some((_, at, data)) =
                self.at
                    .monitor
                    .wait_event(&["DEVICE_DELETED"], since, sent + EVENT_WAIT)?
            else {
                return Err(format!(
                    "no DEVICE_DELETED for {id} in the {} ms after device_del",
                    sent.elapsed().as_millis()
                ));
            };
            since = self.at.monitor.events_read();
            if data["device"] == id.as_str() {
                self.at.lines.push(format!(
                    "device_del {id} at `{marker}`: DEVICE_DELETED {} ms after it was sent",
                    at.saturating_duration_since(sent).as_millis()
                ));
                return Ok(());
            }
        }
    }
}

impl Peer for Unplugging {
    fn qemu_args(&self) -> Vec<String> {
        self.at.monitor.qemu_args()
    }

    fn line(&mut self, line: &str) {
        let Some(marker) = self.at.cue(line) else {
            return;
        };
        if let Err(e) = self.unplug(&marker) {
            self.at
                .reasons
                .push(format!("the unplug at `{marker}` failed: {e}"));
        }
    }

    fn finish(self: Box<Self>, end: &PeerEnd<'_>) -> PeerOutcome {
        let this = *self;
        this.at
            .outcome(this.spec.name(), end, "nothing was unplugged", "unplugs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qmp::testing::{fake_server, socket};

    const OK: &str = "{\"return\": {}}\r\n";
    const PAUSED: &str = "{\"return\": {\"running\": false, \"status\": \"paused\"}}\r\n";
    const RUNNING: &str = "{\"return\": {\"running\": true, \"status\": \"running\"}}\r\n";
    const STOP: &str = "{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 0}}\r\n{\"return\": {}}\r\n";
    const RESUME: &str = "{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": 2, \"microseconds\": 0}}\r\n{\"return\": {}}\r\n";

    /// A QEMU scripted with `replies`, the pause's marker, then `after`
    /// console lines; the outcome with blk.stress passed.
    fn pause_with(test: &str, replies: Vec<&'static str>, after: &[&str]) -> PeerOutcome {
        let sock = socket(test);
        let dir = sock.path.parent().unwrap().to_path_buf();
        let listener =
            std::os::unix::net::UnixListener::bind(dir.join("pause-fe.0.0001.qmp")).unwrap();
        let server = fake_server(listener, replies);
        let ctx = PeerContext {
            dir,
            seed: 1,
            deadline: Instant::now() + Duration::from_secs(2),
        };
        let spec = PauseDuringStress::new("fe.0.0001", Duration::from_millis(50));
        let mut peer = spec.start(&ctx).unwrap();
        peer.line("# zvtest: blk stress fe.0.0001\n");
        for l in after {
            peer.line(l);
        }
        let tap = crate::tap::parse("TAP version 14\n1..1\nok 1 - blk.stress\n");
        let o = peer.finish(&PeerEnd {
            tap: &tap,
            complete: true,
        });
        drop(server);
        o
    }

    const REPORTS: [&str; 2] = [
        "# blk fe.0.0001 q0 rev 2 split classic interrupts random: 200 requests",
        "# blk fe.0.0001: 1 rounds, 200 requests; scratch",
    ];

    #[test]
    fn a_pause_confirmed_at_each_step_inside_the_stress_passes() {
        let o = pause_with(
            "pause-ok",
            vec![OK, STOP, PAUSED, PAUSED, RESUME, RUNNING],
            &REPORTS,
        );
        assert!(o.reasons.is_empty(), "{:?}", o.reasons);
        assert_eq!(o.figure("stops"), Some(1.0));
        assert!(o.figure("paused ms").unwrap() >= 50.0);
        let text = o.lines.join("\n");
        assert!(
            text.contains("query-status paused then and after the 50 ms hold"),
            "{text}"
        );
        assert!(text.contains("1 stress reports of fe.0.0001 read after RESUME, its end line too"));
    }

    #[test]
    fn a_stop_without_its_event_fails_naming_it() {
        let o = pause_with("pause-nostop", vec![OK, OK, ""], &REPORTS);
        assert!(
            o.reasons.iter().any(|r| r.contains(
                "the VM stop at `# zvtest: blk stress fe.0.0001` failed: no STOP event in the "
            )),
            "{:?}",
            o.reasons
        );
    }

    #[test]
    fn a_vm_still_running_after_stop_fails() {
        let o = pause_with("pause-running", vec![OK, STOP, RUNNING], &REPORTS);
        assert!(
            o.reasons.iter().any(|r| r.contains("query-status after STOP: expected running=false, got running=true (status running)")),
            "{:?}",
            o.reasons
        );
    }

    #[test]
    fn a_vm_resumed_during_the_hold_fails() {
        let o = pause_with(
            "pause-early",
            vec![OK, STOP, "{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 5}}\r\n{\"return\": {\"running\": false, \"status\": \"paused\"}}\r\n"],
            &REPORTS,
        );
        assert!(
            o.reasons.iter().any(|r| r.contains("RESUME ")
                && r.contains(" ms into a 50 ms stop the runner did not end")),
            "{:?}",
            o.reasons
        );
    }

    #[test]
    fn a_pause_after_the_stress_proves_nothing_and_fails() {
        let o = pause_with(
            "pause-late",
            vec![OK, STOP, PAUSED, PAUSED, RESUME, RUNNING],
            &[],
        );
        assert!(
            o.reasons.iter().any(|r| r.contains("the stress of fe.0.0001 did not go on after the VM resumed (0 reports after RESUME, end line missing)")),
            "{:?}",
            o.reasons
        );
    }

    fn corrupt_with(test: &str, replies: Vec<&'static str>, marker: bool) -> PeerOutcome {
        let sock = socket(test);
        let dir = sock.path.parent().unwrap().to_path_buf();
        // No marker, no connection: no server to wait for one.
        let server = marker.then(|| {
            let listener =
                std::os::unix::net::UnixListener::bind(dir.join("corrupt-fe.0.0001.qmp")).unwrap();
            fake_server(listener, replies)
        });
        let ctx = PeerContext {
            dir,
            seed: 1,
            deadline: Instant::now() + Duration::from_secs(2),
        };
        let spec = CorruptDuringStress::new("fe.0.0001", 65536, 512, 0x5a);
        let mut peer = spec.start(&ctx).unwrap();
        if marker {
            peer.line("# zvtest: blk stress fe.0.0001");
        }
        let tap = crate::tap::parse("TAP version 14\n1..1\nnot ok 1 - blk.stress\n");
        let o = peer.finish(&PeerEnd {
            tap: &tap,
            complete: true,
        });
        if let Some(server) = server {
            let got = server.join().unwrap();
            assert!(
                got[1].contains(
                    "qemu-io -d ccw-fe.0.0001/virtio-backend \\\"write -q -P 0x5a 65536 512\\\""
                ),
                "{got:?}"
            );
        }
        o
    }

    #[test]
    fn a_corruption_qemu_did_is_reported_and_one_it_refused_fails() {
        let o = corrupt_with("corrupt-ok", vec![OK, "{\"return\": \"\"}\r\n"], true);
        assert!(o.reasons.is_empty(), "{:?}", o.reasons);
        assert!(
            o.lines[0].contains("wrote 512 bytes of 0x5a at offset 65536 (0x10000) of fe.0.0001")
        );
        let o = corrupt_with(
            "corrupt-refused",
            vec![
                OK,
                "{\"return\": \"Device 'ccw-fe.0.0001/virtio-backend' not found\\r\\n\"}\r\n",
            ],
            true,
        );
        assert!(
            o.reasons[0].contains("answered \"Device 'ccw-fe.0.0001/virtio-backend' not found\\r\\n\": the disk was not corrupted"),
            "{:?}",
            o.reasons
        );
    }

    #[test]
    fn a_stress_without_its_marker_fails_the_corruption() {
        let o = corrupt_with("corrupt-none", vec![], false);
        assert_eq!(
            o.reasons,
            ["blk.stress ran but `# zvtest: blk stress fe.0.0001` never came: the disk was not corrupted"]
        );
    }

    fn unplug_with(test: &str, replies: Vec<&'static str>) -> PeerOutcome {
        let sock = socket(test);
        let dir = sock.path.parent().unwrap().to_path_buf();
        let listener =
            std::os::unix::net::UnixListener::bind(dir.join("unplug-fe.0.0001.qmp")).unwrap();
        let server = fake_server(listener, replies);
        let ctx = PeerContext {
            dir,
            seed: 1,
            deadline: Instant::now() + Duration::from_secs(2),
        };
        let mut peer = UnplugDuringStress::new("fe.0.0001").start(&ctx).unwrap();
        peer.line("# zvtest: blk stress fe.0.0001");
        let tap = crate::tap::parse("TAP version 14\n1..1\nnot ok 1 - blk.stress\n");
        let o = peer.finish(&PeerEnd {
            tap: &tap,
            complete: true,
        });
        drop(server);
        o
    }

    #[test]
    fn an_unplug_waits_for_the_proxys_deleted_event_and_a_refusal_fails() {
        let o = unplug_with(
            "unplug-ok",
            vec![
                OK,
                "{\"event\": \"DEVICE_DELETED\", \"data\": {\"path\": \"/machine/peripheral/ccw-fe.0.0001/virtio-backend\"}}\r\n{\"return\": {}}\r\n{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"ccw-fe.0.0001\", \"path\": \"/machine/peripheral/ccw-fe.0.0001\"}}\r\n",
            ],
        );
        assert!(o.reasons.is_empty(), "{:?}", o.reasons);
        assert!(o.lines[0].starts_with(
            "device_del ccw-fe.0.0001 at `# zvtest: blk stress fe.0.0001`: DEVICE_DELETED "
        ));
        let o = unplug_with(
            "unplug-refused",
            vec![OK, "{\"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device 'ccw-fe.0.0001' not found\"}}\r\n"],
        );
        assert_eq!(
            o.reasons,
            ["the unplug at `# zvtest: blk stress fe.0.0001` failed: QMP device_del ccw-fe.0.0001: Device 'ccw-fe.0.0001' not found"]
        );
    }
}
