//! The hostile device: our own vhost-user back-end ([`backend`]) behind a
//! `vhost-user-fs-ccw` with the tag `zvtest_contract::hostile::TAG`,
//! served on a thread of the runner. It echoes (the firmware's
//! `hostile.echo` checks every byte) and, where the scenario says so,
//! lies once, at a chosen request, in one precise way ([`Lie`]): the
//! firmware must name it, and go on. With [`Hostile::packed`] the device
//! runs a packed ring, served by our own code (module `packed`).

mod backend;
mod packed;

use crate::peers::{Peer, PeerContext, PeerEnd, PeerOutcome, PeerSpec};
use crate::scenario::{CcwDevice, Scenario};
use backend::{Echo, Log};
use std::io;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use vhost_user_backend::VhostUserDaemon;
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::event::EventNotifier;
use zvtest_contract::hostile::TAG;
use zvtest_contract::inventory::BusId;
use zvtest_contract::share::ShareConfig;

/// One way the back-end misbehaves, once per run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lie {
    /// A used id at or past the queue size.
    IdOutOfRange,
    /// A used id that is no chain in flight (the chain's second descriptor).
    IdNotInFlight,
    /// The chain's id used twice.
    UsedTwice,
    /// A used length one past the chain's device-writable bytes.
    LenPastWritable,
    /// The used index moved by more than the queue size.
    IndexJump,
    /// The used index moved back by 64 (and on from there: the chain is
    /// not returned).
    IndexBackwards,
    /// The chain never returned.
    NeverReturned,
    /// The first byte of the chain's device-readable buffer inverted
    /// (then an honest echo of what was there before).
    WritesReadable,
    /// The byte just past the chain's device-writable buffer inverted
    /// (then an honest echo).
    WritesPastBuffer,
    /// The call eventfd written once with nothing used; the chain held
    /// (never returned).
    InterruptNothingUsed,
    /// The call eventfd written in a tight loop for a bounded time (or
    /// until the ring stops) with nothing used; the chain held.
    NotificationStorm,
    /// Packed ring: the used descriptor written with both wrap bits of the
    /// previous lap (it looks neither available nor used in this one).
    PackedWrongWrap,
    /// Packed ring: the used descriptor written one chain further on than
    /// the device's used position, which then goes on from there.
    PackedUsedSkipsAhead,
    /// The byte just past the ring's device area (split: the used ring;
    /// packed: the device event structure) inverted (then an honest echo).
    WritesPastRing,
}

/// The hostile device as a scenario describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hostile {
    pub bus: String,
    /// The lie and the request (from 0, in the order the back-end takes
    /// them) it is told at.
    pub lie: Option<(Lie, u64)>,
    /// The tag the device gets (None: ours), to prove the firmware leaves
    /// a device whose tag is not ours alone (it is still told ours).
    pub device_tag: Option<String>,
    /// The device's `num-request-queues` (None: QEMU's default, 1; the
    /// back-end serves up to two).
    pub request_queues: Option<u16>,
    /// `packed=on` on the device and VIRTIO_F_RING_PACKED offered.
    pub packed: bool,
}

impl Hostile {
    pub fn new(bus: &str) -> Self {
        Hostile {
            bus: bus.into(),
            lie: None,
            device_tag: None,
            request_queues: None,
            packed: false,
        }
    }

    /// A packed ring: `packed=on` and the back-end offering it.
    pub fn packed(mut self) -> Self {
        self.packed = true;
        self
    }

    pub fn request_queues(mut self, n: u16) -> Self {
        self.request_queues = Some(n);
        self
    }

    pub fn device_tag(mut self, tag: &str) -> Self {
        self.device_tag = Some(tag.into());
        self
    }

    pub fn lie(mut self, lie: Lie, at_request: u64) -> Self {
        self.lie = Some((lie, at_request));
        self
    }
}

/// Adds the hostile device to a scenario.
pub trait HostileScenario {
    /// A `vhost-user-fs-ccw` at `h.bus` with our tag, its back-end on a
    /// runner thread, guest RAM shared, and `shares=BUS:TAG` told to the
    /// firmware (which is how it finds the device).
    fn hostile(self, h: Hostile) -> Self;
}

impl HostileScenario for Scenario {
    fn hostile(mut self, h: Hostile) -> Self {
        let bus: BusId = match h.bus.parse() {
            Ok(b) => b,
            Err(e) => {
                self.errors.push(format!("hostile device: {e}"));
                return self;
            }
        };
        let Some(config) = ShareConfig::parse(&format!("{bus}:{TAG}")) else {
            self.errors
                .push(format!("hostile device {bus}: tag {TAG:?} refused"));
            return self;
        };
        let mut d = CcwDevice::new("vhost-user-fs-ccw", bus, "fs");
        let chardev = format!("{}-hostile", d.id);
        d.properties = vec![
            ("chardev".into(), chardev.clone()),
            (
                "tag".into(),
                h.device_tag.clone().unwrap_or_else(|| TAG.into()),
            ),
        ];
        if let Some(n) = h.request_queues {
            if usize::from(n) + 1 > backend::QUEUES {
                self.errors.push(format!(
                    "hostile device {bus}: {n} request queues, the back-end serves {} at most",
                    backend::QUEUES - 1
                ));
                return self;
            }
            d.properties
                .push(("num-request-queues".into(), n.to_string()));
        }
        if h.packed {
            d.properties.push(("packed".into(), "on".into()));
        }
        self.expected_devices
            .get_or_insert_with(Vec::new)
            .push(d.entry());
        self.ccw_devices.push(d);
        self = self.share(config, false).shared_memory(true);
        self.peer(HostileSpec {
            bus,
            chardev,
            lie: h.lie,
            packed: h.packed,
        })
    }
}

#[derive(Debug)]
struct HostileSpec {
    bus: BusId,
    chardev: String,
    lie: Option<(Lie, u64)>,
    packed: bool,
}

/// How long the back-end may take to end once QEMU has gone.
const EXIT_WAIT: Duration = Duration::from_secs(5);

impl PeerSpec for HostileSpec {
    fn name(&self) -> String {
        format!("hostile {}", self.bus)
    }

    fn start(&self, ctx: &PeerContext) -> io::Result<Box<dyn Peer>> {
        let socket = ctx.dir.join(format!("hostile-{}.sock", self.bus));
        let log = Arc::new(Mutex::new(Log::default()));
        let echo = Echo::new(self.lie, log.clone())?.with_packed(self.packed);
        let exit = echo.exit_notifier()?;
        let mut daemon = VhostUserDaemon::new(
            "zv-hostile".into(),
            Arc::new(RwLock::new(echo)),
            GuestMemoryAtomic::new(GuestMemoryMmap::new()),
        )
        .map_err(|e| io::Error::other(format!("vhost-user daemon: {e}")))?;
        // Listening before QEMU starts: its device's realize talks to us.
        let mut listener = vhost::vhost_user::Listener::new(&socket, true)
            .map_err(|e| io::Error::other(format!("{}: {e}", socket.display())))?;
        let (done, ended) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("hostile {}", self.bus))
            .spawn(move || {
                // The front-end closing its connection is the normal end.
                let r = match daemon.start(&mut listener).and_then(|()| daemon.wait()) {
                    Err(vhost_user_backend::Error::HandleRequest(
                        vhost::vhost_user::Error::Disconnected
                        | vhost::vhost_user::Error::PartialMessage,
                    )) => Ok(()),
                    r => r.map_err(|e| e.to_string()),
                };
                let _ = done.send(r);
            })?;
        Ok(Box::new(HostilePeer {
            name: self.name(),
            chardev: self.chardev.clone(),
            socket,
            log,
            exit,
            ended,
            deadline: ctx.deadline,
        }))
    }
}

struct HostilePeer {
    name: String,
    chardev: String,
    socket: PathBuf,
    log: Arc<Mutex<Log>>,
    exit: EventNotifier,
    ended: mpsc::Receiver<Result<(), String>>,
    deadline: Instant,
}

impl Peer for HostilePeer {
    fn qemu_args(&self) -> Vec<String> {
        vec![
            "-chardev".into(),
            format!(
                "socket,id={},path={}",
                self.chardev,
                self.socket.to_string_lossy().replace(',', ",,")
            ),
        ]
    }

    fn finish(self: Box<Self>, _end: &PeerEnd<'_>) -> PeerOutcome {
        let mut o = PeerOutcome::new(self.name.clone());
        let until = (Instant::now() + EXIT_WAIT).min(self.deadline.max(Instant::now()));
        let ended = match self.ended.try_recv() {
            Err(mpsc::TryRecvError::Empty) => {
                // Still serving: if QEMU never connected (it failed to
                // start), a connection of our own ends the accept and its
                // close the daemon; after QEMU's it waits unaccepted.
                drop(std::os::unix::net::UnixStream::connect(&self.socket));
                self.ended
                    .recv_timeout(until.saturating_duration_since(Instant::now()))
                    .map_err(|_| ())
            }
            other => other.map_err(|_| ()),
        };
        match ended {
            Ok(Ok(())) => o.lines.push("back-end ended with the connection".into()),
            Ok(Err(e)) => o.lines.push(format!("back-end ended: {e}")),
            Err(_) => o
                .reasons
                .push(format!("the back-end still runs {EXIT_WAIT:?} after QEMU")),
        }
        // The worker thread ends on this.
        let _ = self.exit.notify();
        let _ = std::fs::remove_file(&self.socket);
        let log = self.log.lock().map(|l| {
            (
                l.requests,
                l.bytes,
                l.lied.clone(),
                l.errors.clone(),
                l.packed,
            )
        });
        if let Ok((requests, bytes, lied, errors, packed)) = log {
            if packed {
                o.lines.push("packed rings".into());
            }
            o.lines
                .push(format!("{requests} requests echoed, {bytes} bytes"));
            o.figures.push(("requests".into(), requests as f64));
            if let Some(l) = lied {
                o.lines.push(format!("lied at {l}"));
            }
            for e in errors {
                o.reasons.push(format!("back-end: {e}"));
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scenario_gets_device_share_and_shared_memory() {
        let s = Scenario::new("h").hostile(Hostile::new("fe.0.0020").lie(Lie::UsedTwice, 5));
        assert!(s.validate().is_ok(), "{:?}", s.validate());
        assert!(s.shared_memory);
        assert_eq!(
            s.ccw_devices[0].device_arg(),
            "vhost-user-fs-ccw,devno=fe.0.0020,id=ccw-fe.0.0020,chardev=ccw-fe.0.0020-hostile,tag=zv-hostile"
        );
        let line = s.command_line();
        assert!(line.contains("shares=fe.0.0020:zv-hostile"), "{line}");
        assert!(!line.contains("scratch="), "{line}");
        assert_eq!(s.peers.len(), 1);
        let bad = Scenario::new("b").hostile(Hostile::new("x"));
        assert!(bad.validate().is_err());
        let two = Scenario::new("t").hostile(Hostile::new("fe.0.0020").request_queues(2));
        assert!(two.ccw_devices[0]
            .device_arg()
            .ends_with(",tag=zv-hostile,num-request-queues=2"));
        let many = Scenario::new("m").hostile(Hostile::new("fe.0.0020").request_queues(3));
        assert!(many.validate().unwrap_err().contains("2 at most"));
    }

    /// Started without QEMU: the peer ends its back-end within the wait
    /// and says so, without hanging.
    #[test]
    fn a_back_end_nobody_connects_to_ends() {
        let dir = std::env::temp_dir().join(format!("zvtest-hostile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spec = HostileSpec {
            bus: "fe.0.0020".parse().unwrap(),
            chardev: "c".into(),
            lie: None,
            packed: false,
        };
        let ctx = PeerContext {
            dir: dir.clone(),
            seed: 1,
            deadline: Instant::now() + Duration::from_secs(20),
        };
        let peer = spec.start(&ctx).unwrap();
        assert!(dir.join("hostile-fe.0.0020.sock").exists());
        let tap = crate::TapReport::default();
        let started = Instant::now();
        let o = peer.finish(&PeerEnd {
            tap: &tap,
            complete: false,
        });
        assert!(started.elapsed() < EXIT_WAIT * 3, "{:?}", started.elapsed());
        assert!(o.reasons.is_empty(), "{o:?}");
        assert!(
            o.lines.iter().any(|l| l == "0 requests echoed, 0 bytes"),
            "{o:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
