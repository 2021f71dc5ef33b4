//! Peers: programs of the runner at the host end of a guest's device (the
//! other side of a network back-end, a chardev socket), started before QEMU
//! and heard after it exits. What a peer received and checked is part of
//! the run's verdict: a byte only the host sees is checked there.

use crate::tap::TapReport;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// What a peer gets to start with.
#[derive(Debug, Clone)]
pub struct PeerContext {
    /// A directory of this run for sockets (unix socket paths must be short).
    pub dir: PathBuf,
    /// The seed the firmware runs with (`seed=`).
    pub seed: u64,
    /// When the run is killed: no peer waits past it.
    pub deadline: Instant,
}

/// A peer as a scenario describes it.
pub trait PeerSpec: fmt::Debug + Send + Sync {
    fn name(&self) -> String;
    /// Binds its sockets (QEMU is not running yet) and starts serving.
    fn start(&self, ctx: &PeerContext) -> io::Result<Box<dyn Peer>>;
}

/// A running peer.
pub trait Peer: Send {
    /// QEMU arguments for the back-ends it serves (`-netdev`, `-chardev`).
    fn qemu_args(&self) -> Vec<String>;
    /// A network namespace QEMU must run in (a `/proc/.../ns/net` path).
    fn netns(&self) -> Option<PathBuf> {
        None
    }
    /// QEMU was spawned with this pid.
    fn spawned(&mut self, _pid: u32) {}
    /// Each console line as it comes: for actions at a firmware marker.
    fn line(&mut self, _line: &str) {}
    /// QEMU has exited: stop (within the deadline) and report.
    fn finish(self: Box<Self>, end: &PeerEnd<'_>) -> PeerOutcome;
}

/// How the run ended, for [`Peer::finish`].
#[derive(Debug, Clone, Copy)]
pub struct PeerEnd<'a> {
    pub tap: &'a TapReport,
    /// The firmware's report is complete (a summary, no bail out, no timeout).
    pub complete: bool,
}

/// What a peer saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerOutcome {
    pub name: String,
    /// Written to the console log as `# peer <name>: <line>`.
    pub lines: Vec<String>,
    /// Each one a reason in the run's verdict.
    pub reasons: Vec<String>,
    /// Named figures (frames received, bytes checked, ...) for benchmarks.
    pub figures: Vec<(String, f64)>,
}

impl PeerOutcome {
    pub fn new(name: impl Into<String>) -> Self {
        PeerOutcome {
            name: name.into(),
            ..Default::default()
        }
    }

    pub fn figure(&self, name: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, v)| v)
    }
}

/// A socket call of a peer that timed out or was interrupted: the peer
/// tries again until its deadline.
type LogSink = Box<dyn FnMut(String) + Send>;

/// A QMP monitor of a peer's own (QEMU serves several `-qmp`): a peer
/// commands and queries QEMU at the firmware's markers (a screendump, a
/// balloon size, an input event) without going through the runner's.
pub struct PeerMonitor {
    path: PathBuf,
    deadline: Instant,
    client: Option<crate::qmp::Client<LogSink>>,
    /// Every line sent and received, for the peer's report.
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl PeerMonitor {
    /// A monitor socket `name` in the run's directory.
    pub fn new(ctx: &PeerContext, name: &str) -> Self {
        PeerMonitor {
            path: ctx.dir.join(name),
            deadline: ctx.deadline,
            client: None,
            log: Arc::default(),
        }
    }

    /// The arguments that make QEMU serve it.
    pub fn qemu_args(&self) -> Vec<String> {
        vec![
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", self.path.display()),
        ]
    }

    /// Sends one command (connecting on first use) and returns its reply's
    /// `return` member; the error's text names the command.
    pub fn query(&mut self, what: &str, line: &str) -> Result<serde_json::Value, String> {
        if self.client.is_none() {
            let log = self.log.clone();
            let sink: LogSink = Box::new(move |l| {
                if let Ok(mut v) = log.lock() {
                    v.push(l);
                }
            });
            // QEMU makes `wait=off` sockets before the guest runs: one
            // missing at a marker is not coming, so no waiting till the
            // run's deadline inside a console line's handler.
            let soon = Instant::now() + std::time::Duration::from_secs(10);
            let mut c =
                crate::qmp::Client::connect(&self.path, soon.min(self.deadline), || false, sink)
                    .map_err(|e| e.to_string())?;
            c.handshake().map_err(|e| e.to_string())?;
            self.client = Some(c);
        }
        let c = self.client.as_mut().expect("connected above");
        c.query(what, line).map_err(|e| e.to_string())
    }

    /// Reads QEMU's events until one named in `names` has been read (the
    /// ones read while waiting for earlier replies count, from the
    /// `since`-th on) or `deadline` passes: that event's name, when it was
    /// read and its data, or `None`. Needs a connection (a query made first).
    pub fn wait_event(
        &mut self,
        names: &[&str],
        since: usize,
        deadline: Instant,
    ) -> Result<Option<(String, Instant, serde_json::Value)>, String> {
        let c = self
            .client
            .as_mut()
            .ok_or("the monitor is not connected yet")?;
        let deadline = deadline.min(self.deadline);
        loop {
            let found = c
                .events_seen()
                .iter()
                .skip(since)
                .find(|(_, n, _)| names.contains(&n.as_str()));
            if let Some((at, n, data)) = found {
                return Ok(Some((n.clone(), *at, data.clone())));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            c.read_message(deadline).map_err(|e| e.to_string())?;
        }
    }

    /// How many events have been read so far (for [`Self::wait_event`]).
    pub fn events_read(&self) -> usize {
        self.client.as_ref().map_or(0, |c| c.events_seen().len())
    }

    /// The lines exchanged so far (`-> ...`, `<- ...`).
    pub fn log(&self) -> Vec<String> {
        self.log.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// A scenario's peer: shared, compared by what it prints.
#[derive(Clone)]
pub struct PeerRef(pub Arc<dyn PeerSpec>);

impl fmt::Debug for PeerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for PeerRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || format!("{:?}", self.0) == format!("{:?}", other.0)
    }
}

impl Eq for PeerRef {}

/// The peers of one run, started.
pub(crate) struct Running {
    peers: Vec<Box<dyn Peer>>,
}

impl Running {
    /// Starts every peer; the first that cannot start stops them all.
    pub(crate) fn start(specs: &[PeerRef], ctx: &PeerContext) -> io::Result<Self> {
        let mut peers = Vec::new();
        for spec in specs {
            match spec.0.start(ctx) {
                Ok(p) => peers.push(p),
                Err(e) => {
                    let end = PeerEnd {
                        tap: &TapReport::default(),
                        complete: false,
                    };
                    for p in peers {
                        p.finish(&end);
                    }
                    return Err(io::Error::new(
                        e.kind(),
                        format!("peer {} cannot start: {e}", spec.0.name()),
                    ));
                }
            }
        }
        Ok(Running { peers })
    }

    pub(crate) fn qemu_args(&self) -> Vec<String> {
        self.peers.iter().flat_map(|p| p.qemu_args()).collect()
    }

    /// The one network namespace QEMU joins; two different ones cannot both be.
    pub(crate) fn netns(&self) -> io::Result<Option<PathBuf>> {
        let mut all: Vec<PathBuf> = self.peers.iter().filter_map(|p| p.netns()).collect();
        all.dedup();
        match all.len() {
            0 => Ok(None),
            1 => Ok(all.pop()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("peers ask for different network namespaces: {all:?}"),
            )),
        }
    }

    pub(crate) fn spawned(&mut self, pid: u32) {
        for p in &mut self.peers {
            p.spawned(pid);
        }
    }

    pub(crate) fn line(&mut self, line: &str) {
        for p in &mut self.peers {
            p.line(line);
        }
    }

    pub(crate) fn finish(mut self, end: &PeerEnd<'_>) -> Vec<PeerOutcome> {
        std::mem::take(&mut self.peers)
            .into_iter()
            .map(|p| p.finish(end))
            .collect()
    }
}

/// QEMU never ran (it could not start): the peers stop all the same.
impl Drop for Running {
    fn drop(&mut self) {
        let tap = TapReport::default();
        let end = PeerEnd {
            tap: &tap,
            complete: false,
        };
        for p in std::mem::take(&mut self.peers) {
            p.finish(&end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A peer's own monitor: QEMU's arguments name its socket; a query
    /// connects, negotiates and gives the reply's value; a refusal names
    /// the command; every line is in its log.
    #[test]
    fn peer_monitor_queries() {
        let sock = crate::qmp::testing::socket("monitor");
        let dir = sock.path.parent().unwrap().to_path_buf();
        let listener = std::os::unix::net::UnixListener::bind(dir.join("mon.sock")).unwrap();
        let server = crate::qmp::testing::fake_server(
            listener,
            vec![
                "{\"return\": {}}\r\n",
                "{\"return\": {\"actual\": 4096}}\r\n",
                "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}\r\n",
            ],
        );
        let ctx = PeerContext {
            dir: dir.clone(),
            seed: 1,
            deadline: Instant::now() + std::time::Duration::from_secs(5),
        };
        let mut m = PeerMonitor::new(&ctx, "mon.sock");
        assert_eq!(
            m.qemu_args(),
            [
                "-qmp",
                &format!("unix:{}/mon.sock,server=on,wait=off", dir.display())
            ]
        );
        let q = crate::qmp::client::command("query-balloon", &[]);
        assert_eq!(m.query("query-balloon", &q).unwrap()["actual"], 4096);
        assert_eq!(m.query("x", &q).unwrap_err(), "QMP x: no");
        server.join().unwrap();
        assert!(m
            .log()
            .iter()
            .any(|l| l.starts_with("-> ") && l.contains("query-balloon")));
        assert!(m.log().iter().any(|l| l.contains("4096")));
    }

    #[derive(Debug)]
    struct Echo {
        fail: bool,
        seen: Arc<Mutex<Vec<String>>>,
    }

    struct Running1 {
        fail: bool,
        seen: Arc<Mutex<Vec<String>>>,
    }

    impl PeerSpec for Echo {
        fn name(&self) -> String {
            "echo".into()
        }
        fn start(&self, _ctx: &PeerContext) -> io::Result<Box<dyn Peer>> {
            if self.fail {
                return Err(io::Error::other("port taken"));
            }
            Ok(Box::new(Running1 {
                fail: self.fail,
                seen: Arc::clone(&self.seen),
            }))
        }
    }

    impl Peer for Running1 {
        fn qemu_args(&self) -> Vec<String> {
            vec!["-chardev".into(), "socket,id=p".into()]
        }
        fn line(&mut self, line: &str) {
            self.seen.lock().unwrap().push(line.into());
        }
        fn finish(self: Box<Self>, end: &PeerEnd<'_>) -> PeerOutcome {
            let mut o = PeerOutcome::new("echo");
            o.figures
                .push(("lines".into(), self.seen.lock().unwrap().len() as f64));
            if !end.complete || self.fail {
                o.reasons.push("incomplete".into());
            }
            o
        }
    }

    fn ctx() -> PeerContext {
        PeerContext {
            dir: std::env::temp_dir(),
            seed: 1,
            deadline: Instant::now(),
        }
    }

    #[test]
    fn peers_see_lines_and_report() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let spec = PeerRef(Arc::new(Echo {
            fail: false,
            seen: Arc::clone(&seen),
        }));
        let mut r = Running::start(&[spec.clone(), spec], &ctx()).unwrap();
        assert_eq!(r.qemu_args().len(), 4);
        assert_eq!(r.netns().unwrap(), None);
        r.line("# a");
        let tap = TapReport::default();
        let out = r.finish(&PeerEnd {
            tap: &tap,
            complete: true,
        });
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].figure("lines"), Some(2.0));
        assert!(out[0].reasons.is_empty());
    }

    #[test]
    fn a_peer_that_cannot_start_names_itself() {
        let spec = PeerRef(Arc::new(Echo {
            fail: true,
            seen: Arc::default(),
        }));
        let e = Running::start(&[spec], &ctx()).err().unwrap();
        assert!(
            e.to_string().contains("peer echo cannot start: port taken"),
            "{e}"
        );
    }

    #[test]
    fn specs_compare_by_what_they_print() {
        let a = PeerRef(Arc::new(Echo {
            fail: false,
            seen: Arc::default(),
        }));
        let b = PeerRef(Arc::new(Echo {
            fail: true,
            seen: Arc::default(),
        }));
        assert_eq!(a, a.clone());
        assert_ne!(a, b);
    }
}
