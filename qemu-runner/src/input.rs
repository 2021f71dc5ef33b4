//! The host end of virtio-input devices (keyboard, mouse, tablet): the
//! devices, `input=` telling the firmware which model sits where, and a
//! peer that injects each round of the seeded sequence (contract `input`)
//! with QMP `input-send-event` on its own monitor when the firmware's
//! marker `# zvtest: input events BUS ROUND` says that device has its
//! event buffers posted.
//!
//! Routing (ui/input.c): `input-send-event`'s `device` names a display
//! device's console, not an input device; without one (no graphic console
//! here) an event goes to the input handler that took its kind and was
//! activated last. A virtio-input device's handler is activated when the
//! driver sets DRIVER_OK and moved to the end at reset, and the firmware
//! drives one device at a time, so the peer sends without `device` and
//! the device being driven gets every event. One `input-send-event` is
//! one batch: QEMU writes each event, then one SYN_REPORT.
//!
//! ```
//! use qemu_runner::input::InputDevices;
//! use qemu_runner::Scenario;
//!
//! let s = Scenario::new("input").input(
//!     InputDevices::new()
//!         .keyboard("fe.0.0008")
//!         .mouse("fe.0.000e")
//!         .tablet("fe.0.000f"),
//! );
//! assert!(s
//!     .command_line()
//!     .contains("input=fe.0.0008:kbd,fe.0.000e:mouse,fe.0.000f:tablet"));
//! ```

use crate::peers::{Peer, PeerContext, PeerEnd, PeerMonitor, PeerOutcome, PeerSpec};
use crate::scenario::Scenario;
use serde_json::{json, Value};
use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zvtest_contract::checks::markers;
use zvtest_contract::input::{self as contract, Action, InputConfig, Model, BUTTONS, KEYS};
use zvtest_contract::inventory::BusId;

/// Something wrong the peer does on purpose, to prove `input.events` fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Leaves out action `index` (counting actions, not SYN_REPORTs) of
    /// round `round` for the device at `bus` (a batch left empty is not
    /// sent: its SYN_REPORT is missing too).
    Drop {
        bus: BusId,
        round: u32,
        index: usize,
    },
    /// Changes that action: a key or button released instead of pressed
    /// (or the other way), the wheel turned the other way, a move or
    /// position one further.
    Change {
        bus: BusId,
        round: u32,
        index: usize,
    },
}

/// virtio-input devices and the peer that injects their events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputDevices {
    pub devices: Vec<InputConfig>,
    pub faults: Vec<Fault>,
    /// Mistakes made while building (a malformed bus id).
    pub errors: Vec<String>,
}

impl InputDevices {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn device(mut self, bus: &str, model: Model) -> Self {
        match bus.parse() {
            Ok(bus) => self.devices.push(InputConfig::new(bus, model)),
            Err(e) => self.errors.push(format!("input device {bus}: {e}")),
        }
        self
    }

    pub fn keyboard(self, bus: &str) -> Self {
        self.device(bus, Model::Keyboard)
    }

    pub fn mouse(self, bus: &str) -> Self {
        self.device(bus, Model::Mouse)
    }

    pub fn tablet(self, bus: &str) -> Self {
        self.device(bus, Model::Tablet)
    }

    /// Test only: the firmware asks the device at `bus` for no event-queue
    /// interrupts (`:mute`), so that `input.events` must fail for want of them.
    pub fn mute(mut self, bus: &str) -> Self {
        for d in &mut self.devices {
            if d.bus.to_string() == bus {
                d.mute = true;
            }
        }
        self
    }

    /// Test only: a fault that must fail `input.events`.
    pub fn fault(mut self, f: Fault) -> Self {
        self.faults.push(f);
        self
    }

    /// The `input=` word.
    pub fn word(&self) -> String {
        let items: Vec<String> = self.devices.iter().map(InputConfig::item).collect();
        format!("input={}", items.join(","))
    }

    /// The batches the peer sends for round `round` of `dev`: the
    /// sequence, with this peer's faults applied.
    pub fn batches(&self, seed: u64, dev: InputConfig, round: u32) -> Vec<Vec<Action>> {
        let mut batches = contract::round(seed, dev.bus, dev.model, round);
        for f in &self.faults {
            let (Fault::Drop {
                bus,
                round: r,
                index,
            }
            | Fault::Change {
                bus,
                round: r,
                index,
            }) = *f;
            if bus != dev.bus || r != round {
                continue;
            }
            let mut n = 0;
            'find: for b in batches.iter_mut() {
                for i in 0..b.len() {
                    if n == index {
                        match f {
                            Fault::Drop { .. } => {
                                b.remove(i);
                            }
                            Fault::Change { .. } => b[i] = changed(b[i]),
                        }
                        break 'find;
                    }
                    n += 1;
                }
            }
            batches.retain(|b| !b.is_empty());
        }
        batches
    }
}

fn changed(a: Action) -> Action {
    match a {
        Action::Key { key, down } => Action::Key { key, down: !down },
        Action::Btn { button, down } => Action::Btn {
            button,
            down: !down,
        },
        Action::Wheel { up } => Action::Wheel { up: !up },
        Action::Rel { axis, value } => Action::Rel {
            axis,
            value: value + 1,
        },
        Action::Abs { axis, value } => Action::Abs {
            axis,
            value: (value + 1) % (contract::ABS_RANGE_MAX as i32 + 1),
        },
    }
}

/// One action as an element of `input-send-event`'s `events` (qapi
/// InputEvent).
pub fn action_json(a: &Action) -> Value {
    match *a {
        Action::Key { key, down } => json!({
            "type": "key",
            "data": {"down": down, "key": {"type": "qcode", "data": KEYS[key].0}}
        }),
        Action::Btn { button, down } => json!({
            "type": "btn", "data": {"down": down, "button": BUTTONS[button].0}
        }),
        Action::Wheel { up } => json!({
            "type": "btn",
            "data": {"down": true, "button": if up { "wheel-up" } else { "wheel-down" }}
        }),
        Action::Rel { axis, value } => json!({
            "type": "rel", "data": {"axis": axis.name(), "value": value}
        }),
        Action::Abs { axis, value } => json!({
            "type": "abs", "data": {"axis": axis.name(), "value": value}
        }),
    }
}

/// The `input-send-event` command of one batch.
pub fn batch_command(batch: &[Action]) -> String {
    json!({
        "execute": "input-send-event",
        "arguments": {"events": batch.iter().map(action_json).collect::<Vec<_>>()}
    })
    .to_string()
}

impl Scenario {
    /// Adds each device (QEMU's `virtio-keyboard-ccw`, `-mouse-ccw`,
    /// `-tablet-ccw`, expected in the inventory as `input`), tells the
    /// firmware `input=` and starts the peer that injects the events.
    pub fn input(self, devices: InputDevices) -> Self {
        let mut s = self;
        for d in &devices.devices {
            s = s.ccw_device(d.model.qemu_model(), &d.bus.to_string(), "input");
        }
        s.errors.extend(devices.errors.iter().cloned());
        if devices.devices.is_empty() {
            return s;
        }
        let word = devices.word();
        s.append(word).peer(devices)
    }
}

/// What the sender thread did.
#[derive(Debug, Default)]
struct Log {
    /// (bus, round, batches, actions) per round sent.
    rounds: Vec<(BusId, u32, usize, usize)>,
    errors: Vec<String>,
}

/// How long the sender thread waits for a job before looking at the deadline.
const TICK: Duration = Duration::from_millis(100);

impl PeerSpec for InputDevices {
    fn name(&self) -> String {
        "input".into()
    }

    fn start(&self, ctx: &PeerContext) -> io::Result<Box<dyn Peer>> {
        let monitor = PeerMonitor::new(ctx, "input.sock");
        let args = monitor.qemu_args();
        let (jobs, rx) = mpsc::channel::<(InputConfig, u32)>();
        let (done_tx, done) = mpsc::channel::<()>();
        let log = Arc::new(Mutex::new(Log::default()));
        let spec = self.clone();
        let (seed, deadline, thread_log) = (ctx.seed, ctx.deadline, Arc::clone(&log));
        std::thread::Builder::new()
            .name("input peer".into())
            .spawn(move || {
                sender(&spec, seed, deadline, monitor, &rx, &thread_log);
                let _ = done_tx.send(());
            })?;
        Ok(Box::new(Running {
            spec: self.clone(),
            args,
            jobs: Some(jobs),
            done,
            log,
        }))
    }
}

/// Sends each round asked for, until the jobs end or the deadline.
fn sender(
    spec: &InputDevices,
    seed: u64,
    deadline: Instant,
    mut monitor: PeerMonitor,
    jobs: &Receiver<(InputConfig, u32)>,
    log: &Mutex<Log>,
) {
    loop {
        if Instant::now() >= deadline {
            return;
        }
        let (dev, round) = match jobs.recv_timeout(TICK) {
            Ok(j) => j,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let batches = spec.batches(seed, dev, round);
        let actions = batches.iter().map(Vec::len).sum();
        for (i, b) in batches.iter().enumerate() {
            if let Err(e) = monitor.query("input-send-event", &batch_command(b)) {
                log.lock().unwrap().errors.push(format!(
                    "{} {} round {round} batch {i}: {e}",
                    dev.bus,
                    dev.model.word()
                ));
                return;
            }
        }
        log.lock()
            .unwrap()
            .rounds
            .push((dev.bus, round, batches.len(), actions));
    }
}

struct Running {
    spec: InputDevices,
    args: Vec<String>,
    jobs: Option<Sender<(InputConfig, u32)>>,
    done: Receiver<()>,
    log: Arc<Mutex<Log>>,
}

impl Peer for Running {
    fn qemu_args(&self) -> Vec<String> {
        self.args.clone()
    }

    fn line(&mut self, line: &str) {
        let Some(rest) = line
            .trim_end()
            .strip_prefix(markers::INPUT_EVENTS)
            .and_then(|r| r.strip_prefix(' '))
        else {
            return;
        };
        let mut words = rest.split(' ');
        let bus: Option<BusId> = words.next().and_then(|w| w.parse().ok());
        let round: Option<u32> = words.next().and_then(|w| w.parse().ok());
        let dev = self.spec.devices.iter().find(|d| Some(d.bus) == bus);
        match (dev, round, &self.jobs) {
            (Some(d), Some(r), Some(jobs)) => {
                let _ = jobs.send((*d, r));
            }
            _ => self
                .log
                .lock()
                .unwrap()
                .errors
                .push(format!("a marker for no device of ours: '{}'", line.trim())),
        }
    }

    fn finish(mut self: Box<Self>, _end: &PeerEnd<'_>) -> PeerOutcome {
        // No more jobs: the thread ends once it has sent what it has.
        self.jobs = None;
        let mut o = PeerOutcome::new(self.spec.name());
        if self.done.recv_timeout(Duration::from_secs(10)).is_err() {
            o.reasons
                .push("the sender thread did not stop within 10 s".into());
        }
        let log = self.log.lock().unwrap();
        let mut events = 0;
        for (bus, round, batches, actions) in &log.rounds {
            o.lines.push(format!(
                "{bus} round {round}: sent {actions} events in {batches} batches"
            ));
            events += actions;
        }
        o.figures.push(("events sent".into(), events as f64));
        o.reasons.extend(log.errors.iter().cloned());
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bus(s: &str) -> BusId {
        s.parse().unwrap()
    }

    #[test]
    fn commands_as_qmp_takes_them() {
        let b = [
            Action::Key { key: 0, down: true },
            Action::Wheel { up: false },
            Action::Abs {
                axis: contract::Axis::Y,
                value: 7,
            },
        ];
        let v: Value = serde_json::from_str(&batch_command(&b)).unwrap();
        assert_eq!(v["execute"], "input-send-event");
        let e = &v["arguments"]["events"];
        assert_eq!(e[0]["data"]["key"]["data"], "esc");
        assert_eq!(e[1]["data"]["button"], "wheel-down");
        assert_eq!(e[2]["type"], "abs");
        assert_eq!(e[2]["data"]["value"], 7);
        assert!(v["arguments"].get("device").is_none());
    }

    #[test]
    fn faults_change_exactly_one_event() {
        let d = InputDevices::new().mouse("fe.0.000e");
        let dev = d.devices[0];
        let good = contract::expected_events(&d.batches(5, dev, 0));
        for (f, shorter) in [
            (
                Fault::Drop {
                    bus: bus("fe.0.000e"),
                    round: 0,
                    index: 3,
                },
                true,
            ),
            (
                Fault::Change {
                    bus: bus("fe.0.000e"),
                    round: 0,
                    index: 3,
                },
                false,
            ),
        ] {
            let bad = contract::expected_events(&d.clone().fault(f).batches(5, dev, 0));
            assert_ne!(bad, good);
            assert_eq!(bad.len() < good.len(), shorter);
            if !shorter {
                let diff = good.iter().zip(&bad).filter(|(a, b)| a != b).count();
                assert_eq!(diff, 1);
            }
            // Another round, another device: untouched.
            assert_eq!(d.clone().fault(f).batches(5, dev, 1), d.batches(5, dev, 1));
        }
    }

    #[test]
    fn the_scenario_has_the_devices_the_word_and_the_peer() {
        let s = Scenario::new("i").input(
            InputDevices::new()
                .keyboard("fe.0.0008")
                .tablet("fe.0.000f"),
        );
        assert_eq!(s.ccw_devices.len(), 2);
        assert_eq!(s.ccw_devices[1].model, "virtio-tablet-ccw");
        assert!(s
            .command_line()
            .contains("input=fe.0.0008:kbd,fe.0.000f:tablet"));
        assert_eq!(s.peers.len(), 1);
        let bad = Scenario::new("i").input(InputDevices::new().mouse("zz"));
        assert!(bad.validate().is_err());
    }
}
