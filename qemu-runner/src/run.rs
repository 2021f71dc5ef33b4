//! Boots one scenario: spawn QEMU, stream and log its console, enforce the timeout.

use crate::assess::{judge_run, Exit, RunFacts, Verdict};
use crate::qmp::{self, QmpEvent, QmpSocket};
use crate::scenario::{Diag288, Scenario};
use crate::tap::{TapParser, TapReport};
use crate::version::QemuVersion;
use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::fd::RawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use zvtest_contract::checks::DIAG288_EXPIRY;

/// Prefix of QEMU's own stderr lines in the console log.
pub const STDERR_PREFIX: &str = "[qemu stderr] ";
/// Prefix of the runner's disk verification lines at the log's end.
pub const DISK_PREFIX: &str = "[zvtest] ";

/// A console line is kept up to this long; the rest of it is counted and
/// dropped (a guest printing without newlines must not grow our memory).
/// The firmware's lines are a few hundred bytes.
pub const MAX_LINE: usize = 16 * 1024;
/// The log stops growing here; parsing goes on, and the last
/// [`LOG_TAIL_BYTES`] are added at the end.
pub const MAX_LOG_BYTES: u64 = 32 << 20;
/// How much of the end of a console that overran the log is kept (in
/// memory while QEMU runs, then in the log), so that the end of the
/// report, where the summary is, stays visible.
pub const LOG_TAIL_BYTES: usize = 64 * 1024;
/// Console lines in flight between the pipe readers and the parser: at
/// most this many times [`MAX_LINE`] bytes.
const CHANNEL_LINES: usize = 64;
/// After QEMU is gone, how long we wait for the pipes to reach end of file
/// (something else may hold them open).
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How long QEMU may sit idle after it reported the guest's disabled wait
/// before it counts as hung (it exits in milliseconds, as a rule). QEMU
/// 7.2 and 10.0 were seen to hang there, in monitor_cleanup(), when a QMP
/// command came in at that moment; without this bound the run would sit
/// out its whole timeout. A QEMU still working on its exit (CPU time
/// growing, a thread waiting on the disk: flushing images) gets more.
pub const EXIT_GRACE: Duration = Duration::from_secs(5);
/// CPU time (in clock ticks, 10 ms) over one [`EXIT_GRACE`] that counts as
/// QEMU still working on its exit.
const EXIT_WORK_TICKS: u64 = 5;
const POLL: Duration = Duration::from_millis(10);

/// How to run: where the console log goes, whether to echo it.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Console log file; by default a fresh file in the temp directory.
    pub log: Option<PathBuf>,
    /// Echo the console to our stdout (QEMU's stderr to our stderr) as it comes.
    pub echo: bool,
    /// How long QEMU may sit idle after reporting the guest's disabled
    /// wait before it is killed as hung; by default [`EXIT_GRACE`].
    pub exit_grace: Option<Duration>,
}

impl RunOptions {
    pub fn log(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }

    pub fn echo(mut self, echo: bool) -> Self {
        self.echo = echo;
        self
    }

    pub fn exit_grace(mut self, grace: Duration) -> Self {
        self.exit_grace = Some(grace);
        self
    }
}

/// Everything known about one boot: what [`run`] returns.
#[derive(Debug, Clone)]
pub struct Run {
    pub scenario: String,
    /// QEMU binary and arguments, for reproducing the run by hand.
    pub command: Vec<String>,
    pub exit: Exit,
    /// From spawn until QEMU was reaped.
    pub duration: Duration,
    /// From spawn until the `TAP version` line arrived.
    pub time_to_tap: Option<Duration>,
    /// For a scenario with hot-plug steps: every step was performed over
    /// QMP without an error (failures are among the verdict's reasons).
    pub hotplug_done: bool,
    /// For a scenario with QMP commands on console lines
    /// ([`Scenario::qmp_on_line`]): every one was sent on its line and
    /// answered without an error (failures are among the verdict's reasons).
    pub qmp_commands_done: bool,
    /// The version `qemu-version=` told the firmware (detected or
    /// claimed), if any.
    pub qemu_version: Option<QemuVersion>,
    /// The disabled-wait PSW `(mask, address)` QEMU printed on stderr
    /// (`-d guest_errors`: "Guest crashed on cpu 0: disabled-wait", then
    /// "PSW: 0x... 0x..."). None after a clean shutdown (address 0xfff)
    /// and whenever QEMU did not end in a disabled wait.
    pub wait_psw: Option<(u64, u64)>,
    /// QEMU's QMP events, for a scenario that watches them
    /// ([`Scenario::qmp_events`]), hot-plugs or sends commands on console
    /// lines (those until the last command); e.g. `WATCHDOG`.
    pub qmp_events: Vec<QmpEvent>,
    pub log_path: PathBuf,
    pub tap: TapReport,
    pub verdict: Verdict,
    /// Each scratch disk as verified after the run (its line, and a
    /// reason in the verdict if it failed).
    pub disks: Vec<crate::disks::DiskCheck>,
    /// What each of the scenario's peers saw (its reasons are in the verdict).
    pub peers: Vec<crate::peers::PeerOutcome>,
}

impl Run {
    pub fn passed(&self) -> bool {
        self.verdict.is_pass()
    }

    /// The whole console log (QEMU stdout, plus stderr lines prefixed): at
    /// most [`MAX_LOG_BYTES`] of it and its last [`LOG_TAIL_BYTES`].
    pub fn console(&self) -> String {
        match fs::read(&self.log_path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => format!("(cannot read {}: {e})\n", self.log_path.display()),
        }
    }

    /// At most the last `max_bytes` of the console log, cut at a line
    /// start; only that much is read.
    pub fn console_tail(&self, max_bytes: usize) -> String {
        match read_tail(&self.log_path, max_bytes) {
            Ok((0, text)) => text,
            Ok((cut, text)) => format!("[... {cut} bytes cut ...]\n{text}"),
            Err(e) => format!("(cannot read {}: {e})\n", self.log_path.display()),
        }
    }

    /// The command line as one copy-pasteable shell string.
    pub fn command_line(&self) -> String {
        self.command
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A one-line summary: `default: PASS in 1.2 s (first TAP line after 0.4 s)`.
    pub fn summary_line(&self) -> String {
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        let tap = match self.time_to_tap {
            Some(t) => format!("first TAP line after {}", millis(t)),
            None => "no TAP version line".into(),
        };
        format!(
            "{}: {verdict} in {} ({tap}; {})",
            self.scenario,
            millis(self.duration),
            self.tap.counts()
        )
    }

    /// The QMP events named `name`, e.g. `WATCHDOG`.
    pub fn events(&self, name: &str) -> impl Iterator<Item = &QmpEvent> {
        let name = name.to_string();
        self.qmp_events.iter().filter(move |e| e.name == name)
    }

    /// What to show when a run failed: the reasons, how to reproduce it,
    /// and the end of the console log.
    pub fn failure_report(&self) -> String {
        let mut s = format!("{}\n", self.summary_line());
        for r in &self.verdict.reasons {
            s.push_str(&format!("  - {r}\n"));
        }
        for d in self.disks.iter().filter(|d| d.reason.is_none()) {
            s.push_str(&format!("{}\n", d.line));
        }
        s.push_str(&format!("command: {}\n", self.command_line()));
        let console = self.console_tail(64 * 1024);
        s.push_str(&format!(
            "console log ({}):\n{}",
            self.log_path.display(),
            if console.is_empty() {
                "(empty)"
            } else {
                &console
            }
        ));
        if !s.ends_with('\n') {
            s.push('\n');
        }
        s
    }

    /// Prints [`Run::failure_report`] to stderr.
    pub fn print_failure(&self) {
        eprint!("{}", self.failure_report());
    }
}

/// The last `max_bytes` of a file from the start of a line, and how many
/// bytes before it were left out.
fn read_tail(path: &Path, max_bytes: usize) -> io::Result<(u64, String)> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let from = len.saturating_sub(max_bytes as u64);
    f.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::new();
    f.take(max_bytes as u64).read_to_end(&mut bytes)?;
    if from == 0 {
        return Ok((0, String::from_utf8_lossy(&bytes).into_owned()));
    }
    let start = bytes.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
    Ok((
        from + start as u64,
        String::from_utf8_lossy(&bytes[start..]).into_owned(),
    ))
}

fn millis(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_=.,/:@+%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

enum Event {
    Stdout(Instant, Line),
    Stderr(Line),
}

/// The QEMUs this process is running, so that [`kill_running_qemus`] can
/// end them. A pid is removed under this lock before it is reaped, so a
/// pid here is never one the system could have given to another process.
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn running() -> std::sync::MutexGuard<'static, Vec<u32>> {
    RUNNING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Kills (SIGKILL) every QEMU that [`run`] started in this process and has
/// not reaped yet; returns how many. For a program's signal handling (the
/// `qemu-runner` binary calls it on SIGINT, SIGTERM and SIGHUP before it
/// exits); the `run` calls see their QEMU killed and return.
pub fn kill_running_qemus() -> usize {
    let pids = running();
    for &pid in pids.iter() {
        kill_descendants(pid);
        if let Ok(pid) = libc::pid_t::try_from(pid) {
            // SAFETY: kill() has no memory effects; `pid` is a child we
            // have not reaped (see RUNNING), so it is ours.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    pids.len()
}

/// The processes below `pid` (children first found, then theirs), from
/// /proc/PID/task/TID/children; none where that cannot be read.
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut next = vec![pid];
    while let Some(p) = next.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(text) = std::fs::read_to_string(task.path().join("children")) else {
                continue;
            };
            for c in text
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok())
            {
                // Bounded: a process tree that keeps forking is not followed
                // for ever.
                if !found.contains(&c) && found.len() < 4096 {
                    found.push(c);
                    next.push(c);
                }
            }
        }
    }
    found
}

/// The CPU time (clock ticks) of `pid` and the processes below it, and
/// whether any of their threads waits on the disk (state D): what tells a
/// QEMU still finishing its exit from one hung in it.
fn activity(pid: u32) -> (u64, bool) {
    let (mut ticks, mut disk) = (0, false);
    for p in std::iter::once(pid).chain(descendants(pid)) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            // After the command name's closing parenthesis: the state
            // (field 3), ..., utime and stime (fields 14 and 15).
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            disk |= fields.first() == Some(&"D");
            let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
            ticks += field(11).unwrap_or(0) + field(12).unwrap_or(0);
        }
    }
    (ticks, disk)
}

/// SIGKILLs everything below `pid`, before `pid` itself is killed: a
/// `ZVTEST_QEMU` wrapper that forks (`time`, `strace -f`, a script without
/// `exec`) would otherwise leave QEMU running, orphaned, when the wrapper
/// is killed (PR_SET_PDEATHSIG does not pass to a fork's child).
fn kill_descendants(pid: u32) {
    for d in descendants(pid) {
        if let Ok(d) = libc::pid_t::try_from(d) {
            // SAFETY: kill() has no memory effects; `d` was found below a
            // child of ours an instant ago.
            unsafe { libc::kill(d, libc::SIGKILL) };
        }
    }
}

/// QEMU while it is ours: registered in [`RUNNING`], killed and reaped on
/// drop (an error or panic in the runner does not leave it behind).
struct Qemu(Child);

impl Qemu {
    /// Starts `command`; `inherit` is a close-on-exec descriptor QEMU is
    /// to keep (its end of the QMP socket pair).
    fn spawn(
        command: &mut Command,
        inherit: Option<RawFd>,
        netns: Option<RawFd>,
    ) -> io::Result<Self> {
        let parent = std::process::id();
        // SAFETY: the closure runs in the forked child before exec and
        // calls only fcntl(), setns(), prctl() and getppid(), which are
        // async-signal-safe, and builds its error without allocating.
        unsafe {
            command.pre_exec(move || {
                // A peer's network namespace (its tap is there).
                if let Some(fd) = netns {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                // Only this child keeps the descriptor across exec.
                if let Some(fd) = inherit {
                    if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                // QEMU gets SIGKILL when the thread that spawned it ends,
                // even by SIGKILL of the whole process: nothing else can
                // stop a paused or spinning QEMU then. run() reaps QEMU
                // before it returns, so that thread outlives it.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // We died before prctl(): the signal will never come.
                if u32::try_from(libc::getppid()).ok() != Some(parent) {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let mut pids = running();
        let child = command.spawn()?;
        pids.push(child.id());
        Ok(Qemu(child))
    }

    /// Reaps QEMU if it has exited.
    fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        let mut pids = running();
        let status = self.0.try_wait()?;
        if status.is_some() {
            pids.retain(|&p| p != self.0.id());
        }
        Ok(status)
    }

    /// Kills and reaps QEMU.
    fn kill(&mut self) -> io::Result<ExitStatus> {
        let mut pids = running();
        kill_descendants(self.0.id());
        // kill() fails only if it exited meanwhile; wait() reaps either way.
        let _ = self.0.kill();
        let status = self.0.wait();
        pids.retain(|&p| p != self.0.id());
        status
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if let Ok(None) = self.try_wait() {
            let _ = self.kill();
        }
    }
}

/// Boots `kernel` as `scenario` says and judges the result.
///
/// Returns early (as an error) only when QEMU cannot be started, its
/// version cannot be told (for `qemu-version=`: see
/// [`Scenario::resolve_qemu_version`]) or the log cannot be written;
/// everything that goes wrong inside the guest is in the outcome's
/// verdict. Never waits past the scenario's timeout (plus a short grace to
/// collect output): QEMU is killed and reaped then.
///
/// QEMU is started with PR_SET_PDEATHSIG(SIGKILL): it dies when the
/// thread that called `run` ends (`run` reaps it before it returns) and
/// when this process dies, even by SIGKILL; [`kill_running_qemus`] ends
/// it from a signal handler.
///
/// The scenario's disks get fresh images before QEMU starts (an image
/// that cannot be made is an error); after QEMU is gone every byte of each
/// is verified ([`crate::disks::check_after_run`]) and a disk that does not
/// hold what it should fails the verdict. Images in a directory the runner
/// picked are removed once all of them verified clean.
pub fn run(scenario: &Scenario, kernel: &Path, opts: &RunOptions) -> io::Result<Run> {
    scenario
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    if !kernel.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("kernel image {} not found", kernel.display()),
        ));
    }
    // qemu-version= as the firmware will see it.
    let mut scenario = scenario.resolve_qemu_version().map_err(io::Error::other)?;
    let own_disk_dir = scenario.disk_dir.is_none() && !scenario.disks.is_empty();
    if own_disk_dir {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let n = RUNS.fetch_add(1, Ordering::Relaxed);
        scenario.disk_dir = Some(crate::scenario::default_disk_dir(&scenario.name, Some(n)));
    }
    let scenario = &scenario;
    make_disks(scenario)?;
    scenario
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let log_path = match &opts.log {
        Some(p) => p.clone(),
        None => default_log_path(&scenario.name),
    };
    if let Some(dir) = log_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let log = File::create(&log_path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot create console log {}: {e}", log_path.display()),
        )
    })?;

    let mut args = scenario.qemu_args(kernel);
    let psw_reported = reports_wait_psw(&args);
    let exits_at_wait = exits_at_disabled_wait(&args);
    // Peers bind before QEMU starts: their sockets are there to connect to.
    let peer_dir = peer_dir(scenario)?;
    let peers = match &peer_dir {
        None => None,
        Some(dir) => {
            let ctx = crate::peers::PeerContext {
                dir: dir.clone(),
                seed: scenario.disk_seed(),
                deadline: Instant::now() + scenario.timeout + DRAIN_GRACE,
            };
            Some(crate::peers::Running::start(&scenario.peers, &ctx)?)
        }
    };
    let netns = match peers.as_ref().map(crate::peers::Running::netns) {
        Some(Err(e)) => return Err(e),
        Some(Ok(Some(path))) => Some(File::open(&path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open network namespace {}: {e}", path.display()),
            )
        })?),
        _ => None,
    };
    if let Some(p) = &peers {
        args.extend(p.qemu_args().into_iter().map(Into::into));
    }
    // Hot plug, commands on console lines and events: QEMU talks QMP over
    // a socket pair whose other end it inherits.
    let qmp_socket =
        if scenario.hotplug.is_empty() && scenario.line_commands.is_empty() && !scenario.qmp_events
        {
            None
        } else {
            let socket = QmpSocket::new()?;
            args.extend(socket.qemu_args().map(Into::into));
            Some(socket)
        };
    let mut command = vec![scenario.qemu.to_string_lossy().into_owned()];
    command.extend(args.iter().map(|a| a.to_string_lossy().into_owned()));

    let start = Instant::now();
    let mut child = Qemu::spawn(
        Command::new(&scenario.qemu)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        qmp_socket.as_ref().map(QmpSocket::child_fd),
        netns.as_ref().map(std::os::fd::AsRawFd::as_raw_fd),
    )
    .map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot start {}: {e}", scenario.qemu.display()),
        )
    })?;

    // Bounded, so a flooding guest is slowed down rather than filling our memory.
    drop(netns);
    let mut peers = peers;
    if let Some(p) = &mut peers {
        p.spawned(child.0.id());
    }
    let (tx, rx) = mpsc::sync_channel(CHANNEL_LINES);
    let stdout = child.0.stdout.take().expect("stdout is piped");
    let stderr = child.0.stderr.take().expect("stderr is piped");
    spawn_reader(stdout, tx.clone(), |l| Event::Stdout(Instant::now(), l))?;
    spawn_reader(stderr, tx, Event::Stderr)?;

    let mut console = Capture {
        log: BufWriter::new(log),
        written: 0,
        echo: opts.echo,
        parser: TapParser::new(),
        start,
        time_to_tap: None,
        triggers: Vec::new(),
        triggered: None,
        qmp_log: None,
        tail: VecDeque::new(),
        tail_bytes: 0,
        unlogged: 0,
        stderr: StderrFacts::default(),
        peers,
    };
    let ended = Arc::new(AtomicBool::new(false));
    let job = match qmp_socket {
        None => None,
        Some(socket) => {
            let (lines_tx, lines_rx) = mpsc::channel();
            let (log_tx, log_rx) = mpsc::channel();
            let job = qmp::Job {
                steps: scenario.hotplug.clone(),
                commands: scenario.line_commands.clone(),
                watch: scenario.qmp_events,
                start,
                timeout: qmp::TIMEOUT,
            };
            console.triggers = job.lines();
            console.triggered = Some(lines_tx);
            console.qmp_log = Some(log_rx);
            Some(qmp::spawn(
                socket.into_stream(),
                job,
                lines_rx,
                Arc::clone(&ended),
                log_tx,
            )?)
        }
    };
    let exit_grace = opts.exit_grace.unwrap_or(EXIT_GRACE);
    let exit_grace = exits_at_wait.then_some(exit_grace);
    let (status, ending) = supervise(
        &mut child,
        &rx,
        &mut console,
        start + scenario.timeout,
        exit_grace,
    )?;
    let duration = start.elapsed();
    // QEMU is gone: a job still waiting for a console line stops now, one
    // in the middle of a step or command sees the socket close.
    ended.store(true, Ordering::Relaxed);
    console.triggered = None;
    let report = job.map(|j| {
        j.join().unwrap_or_else(|_| qmp::Report {
            errors: vec!["the QMP thread panicked".into()],
            ..Default::default()
        })
    });
    console.drain_qmp()?;
    console.finish_log()?;

    let exit = if ending == Ending::TimedOut {
        Exit::TimedOut(scenario.timeout)
    } else if let (Ending::HungAfterWait, Some(grace)) = (ending, exit_grace) {
        Exit::HungAfterWait(grace)
    } else if let Some(code) = status.code() {
        Exit::Code(code)
    } else {
        Exit::Signal(status.signal().unwrap_or(0))
    };
    let tap = console.parser.finish();
    let mut errors = Vec::new();
    let mut hotplug_done = false;
    let mut qmp_commands_done = false;
    let mut qmp_events = Vec::new();
    if let Some(report) = report {
        errors = report.errors;
        let complete = tap.summary.is_some() && tap.bail_out.is_none() && !exit.is_timed_out();
        let forgiven = forgiven(&report.unseen, &tap, complete);
        if !forgiven.is_empty() {
            errors.retain(|e| !forgiven.iter().any(|(f, _)| f == e));
            let mut f = fs::OpenOptions::new().append(true).open(&log_path)?;
            for (e, check) in &forgiven {
                writeln!(f, "{DISK_PREFIX}{e}: {check} did not run, nothing to do")?;
            }
        }
        hotplug_done = report.done && !scenario.hotplug.is_empty();
        qmp_commands_done = report.commands_done;
        qmp_events = report.events;
    }
    let facts = RunFacts {
        psw_reported,
        wait_psw: console.stderr.wait_psw,
        shutdown_cause: shutdown_cause(&console.stderr, &qmp_events),
    };
    let mut verdict = judge_run(&exit, &tap, &facts);
    verdict.reasons.extend(errors);
    if scenario.diag288 == Some(Diag288::Expire) {
        verdict.reasons.extend(watchdog_reason(&tap, &qmp_events));
    }
    let peers = match console.peers.take() {
        None => Vec::new(),
        Some(running) => {
            let complete = tap.summary.is_some() && tap.bail_out.is_none() && !exit.is_timed_out();
            let outcomes = running.finish(&crate::peers::PeerEnd {
                tap: &tap,
                complete,
            });
            note_peers(&log_path, &outcomes, opts.echo)?;
            for o in &outcomes {
                verdict
                    .reasons
                    .extend(o.reasons.iter().map(|r| format!("peer {}: {r}", o.name)));
            }
            outcomes
        }
    };
    if let Some(dir) = &peer_dir {
        let _ = fs::remove_dir_all(dir);
    }
    let disks = match &scenario.disk_dir {
        Some(dir) if !scenario.disks.is_empty() => {
            let complete = tap.summary.is_some() && tap.bail_out.is_none() && !exit.is_timed_out();
            let checks = crate::disks::check_after_run(scenario, dir, &tap, complete);
            note_disks(&log_path, &checks, opts.echo)?;
            verdict
                .reasons
                .extend(checks.iter().filter_map(|c| c.reason.clone()));
            if own_disk_dir && checks.iter().all(|c| c.reason.is_none()) {
                // Clean images say nothing more; failing ones stay to be looked at.
                let _ = fs::remove_dir_all(dir);
            }
            checks
        }
        _ => Vec::new(),
    };
    Ok(Run {
        scenario: scenario.name.clone(),
        command,
        exit,
        duration,
        time_to_tap: console.time_to_tap,
        hotplug_done,
        qmp_commands_done,
        qemu_version: scenario.claimed_qemu_version(),
        wait_psw: facts.wait_psw,
        qmp_events,
        log_path,
        tap,
        verdict,
        disks,
        peers,
    })
}

/// Of the console lines that never came, those whose check did not run
/// (left out by `only=`/`skip=`, or skipped) in a complete report: the
/// host had nothing to do. Each as (its reason, the check).
fn forgiven(
    unseen: &[(String, String)],
    tap: &TapReport,
    complete: bool,
) -> Vec<(String, &'static str)> {
    if !complete {
        return Vec::new();
    }
    unseen
        .iter()
        .filter_map(|(line, e)| {
            let check = zvtest_contract::checks::markers::owner(line)?;
            let ran = tap.result(check).is_some_and(|r| !r.is_skip());
            (!ran).then(|| (e.clone(), check))
        })
        .collect()
}

/// A fresh directory for the peers' sockets, if the scenario has peers:
/// short, since a unix socket's path is at most 107 bytes.
fn peer_dir(scenario: &Scenario) -> io::Result<Option<PathBuf>> {
    if scenario.peers.is_empty() {
        return Ok(None);
    }
    static DIRS: AtomicUsize = AtomicUsize::new(0);
    let n = DIRS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("zvp-{}-{n}", std::process::id()));
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    Ok(Some(dir))
}

/// The peers' lines, at the end of the console log (and on our stderr
/// when the console is echoed).
fn note_peers(log: &Path, outcomes: &[crate::peers::PeerOutcome], echo: bool) -> io::Result<()> {
    let mut f = fs::OpenOptions::new().append(true).open(log)?;
    for o in outcomes {
        for l in o.lines.iter().chain(&o.reasons) {
            writeln!(f, "# peer {}: {l}", o.name)?;
            if echo {
                eprintln!("# peer {}: {l}", o.name);
            }
        }
    }
    Ok(())
}

/// Fresh images for the scenario's disks, in its disk directory.
fn make_disks(scenario: &Scenario) -> io::Result<()> {
    let seed = scenario.disk_seed();
    for (id, disk) in &scenario.disks {
        let image = scenario.disk_image(id);
        if let Some(dir) = image.parent() {
            fs::create_dir_all(dir)?;
        }
        crate::disks::create(&image, seed, disk.size).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot make the image of disk {id} at {}: {e}",
                    image.display()
                ),
            )
        })?;
    }
    Ok(())
}

/// The disks' lines, at the end of the console log (and on our stderr
/// when the console is echoed).
fn note_disks(log: &Path, checks: &[crate::disks::DiskCheck], echo: bool) -> io::Result<()> {
    let mut f = fs::OpenOptions::new().append(true).open(log)?;
    for c in checks {
        writeln!(f, "{DISK_PREFIX}{}", c.line)?;
        if echo {
            eprintln!("{DISK_PREFIX}{}", c.line);
        }
    }
    Ok(())
}

/// With `diag288=expire`: when the firmware says its watchdog expired
/// (`ok` for [`DIAG288_EXPIRY`]), QEMU must have said so too, with a
/// `WATCHDOG` event. Nothing to say when the check did not pass (its own
/// result fails the run) or was skipped.
fn watchdog_reason(tap: &TapReport, events: &[QmpEvent]) -> Option<String> {
    let r = tap.result(DIAG288_EXPIRY)?;
    if !r.ok || r.is_skip() || events.iter().any(|e| e.name == "WATCHDOG") {
        return None;
    }
    Some(format!(
        "{DIAG288_EXPIRY} passed but QEMU sent no WATCHDOG event over QMP"
    ))
}

/// Whether QEMU exits by itself when the guest enters its disabled wait:
/// a `panic` action of `exit-failure`, or `shutdown` (QEMU's default)
/// while shutting down exits (no `-no-shutdown`, no `shutdown=pause`).
fn exits_at_disabled_wait(args: &[std::ffi::OsString]) -> bool {
    let actions: Vec<(String, String)> = args
        .windows(2)
        .filter(|w| w[0] == "-action")
        .flat_map(|w| {
            w[1].to_string_lossy()
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    let last = |key: &str| {
        actions
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    match last("panic").unwrap_or("shutdown") {
        "exit-failure" => true,
        "shutdown" => {
            !args.iter().any(|a| a == "-no-shutdown") && last("shutdown") != Some("pause")
        }
        _ => false,
    }
}

/// Whether QEMU's arguments make it print a crash's wait PSW: the last
/// `-d` (each replaces the one before) names `guest_errors`.
fn reports_wait_psw(args: &[std::ffi::OsString]) -> bool {
    let last = args.windows(2).rfind(|w| w[0] == "-d");
    last.is_some_and(|w| {
        w[1].to_string_lossy()
            .split(',')
            .any(|i| i == "guest_errors")
    })
}

/// What QEMU and its QMP events said about why it shut down.
fn shutdown_cause(stderr: &StderrFacts, events: &[QmpEvent]) -> Option<String> {
    let mut causes: Vec<String> = stderr.terminated.iter().cloned().collect();
    for e in events {
        match e.name.as_str() {
            "SHUTDOWN" | "RESET" => causes.push(format!(
                "QMP event {} reason {}",
                e.name,
                e.field("reason").unwrap_or("(none)")
            )),
            "WATCHDOG" => causes.push(format!(
                "QMP event WATCHDOG action {}",
                e.field("action").unwrap_or("(none)")
            )),
            _ => {}
        }
    }
    (!causes.is_empty()).then(|| causes.join("; "))
}

/// How [`supervise`] saw QEMU end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// By itself.
    Exited,
    /// Killed at the deadline.
    TimedOut,
    /// Killed after sitting idle for the exit grace once it had reported
    /// the guest's disabled wait.
    HungAfterWait,
}

/// Pumps console lines until QEMU has exited and its pipes are drained, or
/// until the deadline or `exit_grace` without work after the guest's
/// disabled wait (when QEMU is set to exit there), when QEMU is killed.
/// Returns QEMU's status and how it ended.
fn supervise(
    child: &mut Qemu,
    rx: &Receiver<Event>,
    console: &mut Capture,
    deadline: Instant,
    exit_grace: Option<Duration>,
) -> io::Result<(ExitStatus, Ending)> {
    // QEMU's status, how it ended, and when to stop waiting for the pipes.
    let mut ended: Option<(ExitStatus, Ending, Instant)> = None;
    let mut pipes_open = true;
    // Once the guest's disabled wait is reported: since when QEMU is
    // watched for the work of its exit, and its CPU time then.
    let mut exit_watch: Option<(Instant, u64)> = None;
    loop {
        if ended.is_none() {
            let now = Instant::now();
            let mut hung = false;
            if let (Some(grace), true) = (exit_grace, console.stderr.wait_psw.is_some()) {
                match exit_watch {
                    None => exit_watch = Some((now, activity(child.0.id()).0)),
                    Some((since, ticks)) if now.duration_since(since) >= grace => {
                        let (now_ticks, disk) = activity(child.0.id());
                        if disk || now_ticks >= ticks + EXIT_WORK_TICKS {
                            exit_watch = Some((now, now_ticks));
                        } else {
                            hung = true;
                        }
                    }
                    Some(_) => {}
                }
            }
            if let Some(status) = child.try_wait()? {
                ended = Some((status, Ending::Exited, now + DRAIN_GRACE));
            } else if now >= deadline {
                ended = Some((child.kill()?, Ending::TimedOut, now + DRAIN_GRACE));
            } else if hung {
                ended = Some((child.kill()?, Ending::HungAfterWait, now + DRAIN_GRACE));
            }
        }
        if let Some((status, ending, drain_until)) = ended {
            // Something other than QEMU may hold the pipes open: stop reading then.
            if !pipes_open || Instant::now() >= drain_until {
                return Ok((status, ending));
            }
        }
        console.drain_qmp()?;
        if !pipes_open {
            thread::sleep(POLL);
            continue;
        }
        match rx.recv_timeout(POLL) {
            // QMP lines logged by now were sent before this console line
            // arrived: log them first, so the log shows cause before effect.
            Ok(event) => {
                console.drain_qmp()?;
                console.take(event)?
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => pipes_open = false,
        }
    }
}

/// Where each console line goes: log file, echo, TAP parser, the QMP
/// job's triggers.
struct Capture {
    log: BufWriter<File>,
    written: u64,
    echo: bool,
    parser: TapParser,
    start: Instant,
    time_to_tap: Option<Duration>,
    /// Console lines the QMP job waits for, not seen yet.
    triggers: Vec<String>,
    /// Told the first appearance of each of `triggers` (trimmed).
    triggered: Option<Sender<String>>,
    /// The QMP traffic, for the log.
    qmp_log: Option<Receiver<String>>,
    /// Past [`MAX_LOG_BYTES`]: the last lines, at most [`LOG_TAIL_BYTES`].
    tail: VecDeque<String>,
    tail_bytes: usize,
    /// Bytes not written to the log (the tail included).
    unlogged: u64,
    stderr: StderrFacts,
    /// The scenario's peers, told each console line.
    peers: Option<crate::peers::Running>,
}

/// What QEMU's stderr told about how the guest ended.
#[derive(Debug, Default)]
struct StderrFacts {
    /// The last line was "Guest crashed on cpu N: disabled-wait".
    crash_line: bool,
    /// The PSW line that followed it: `PSW: 0x<mask> 0x<address>`.
    wait_psw: Option<(u64, u64)>,
    /// "qemu-system-s390x: terminating on signal 15 from pid ...".
    terminated: Option<String>,
}

/// Longest stderr line quoted in a reason.
const QUOTE: usize = 200;

impl StderrFacts {
    fn take(&mut self, line: &str) {
        let crash_line = std::mem::take(&mut self.crash_line);
        if line.starts_with("Guest crashed on cpu ") && line.trim_end().ends_with("disabled-wait") {
            self.crash_line = true;
        } else if crash_line && self.wait_psw.is_none() {
            self.wait_psw = parse_psw_line(line);
        } else if line.contains("terminating on signal") && self.terminated.is_none() {
            self.terminated = Some(line.chars().take(QUOTE).collect());
        }
    }
}

/// `PSW: 0x0002000180000000 0x000000000bad0002` (QEMU's s390x panic info).
fn parse_psw_line(line: &str) -> Option<(u64, u64)> {
    let mut words = line.strip_prefix("PSW: ")?.split_whitespace();
    let mut hex = || {
        let w = words.next()?.strip_prefix("0x")?;
        (w.len() <= 16 && w.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u64::from_str_radix(w, 16).ok())
            .flatten()
    };
    let psw = (hex()?, hex()?);
    words.next().is_none().then_some(psw)
}

impl Capture {
    fn take(&mut self, event: Event) -> io::Result<()> {
        match event {
            Event::Stdout(
                at,
                Line {
                    text: line,
                    dropped,
                },
            ) => {
                if self.time_to_tap.is_none() && line.trim().starts_with("TAP version") {
                    self.time_to_tap = Some(at.duration_since(self.start));
                }
                let trimmed = line.trim();
                if let Some(p) = &mut self.peers {
                    p.line(trimmed);
                }
                if let Some(i) = self.triggers.iter().position(|t| t == trimmed) {
                    let seen = self.triggers.remove(i);
                    if let Some(tx) = &self.triggered {
                        // The job may have failed already; its reasons say why.
                        let _ = tx.send(seen);
                    }
                }
                if self.echo {
                    let mut out = io::stdout().lock();
                    writeln!(out, "{line}")?;
                    out.flush()?;
                }
                self.write_log(&line)?;
                self.parser.feed(&line);
                if dropped > 0 {
                    self.parser.line_was_cut(line.len(), dropped);
                    self.write_log(&cut_note(dropped))?;
                }
            }
            Event::Stderr(Line {
                text: line,
                dropped,
            }) => {
                if self.echo {
                    eprintln!("{STDERR_PREFIX}{line}");
                }
                self.stderr.take(&line);
                self.write_log(&format!("{STDERR_PREFIX}{line}"))?;
                if dropped > 0 {
                    self.write_log(&format!("{STDERR_PREFIX}{}", cut_note(dropped)))?;
                }
            }
        }
        Ok(())
    }

    /// Adds the console's end to a log that was cut, and flushes it.
    fn finish_log(&mut self) -> io::Result<()> {
        if self.unlogged > 0 {
            writeln!(
                self.log,
                "[zvtest: {} bytes of console not logged; the last {} follow]",
                self.unlogged - self.tail_bytes as u64,
                self.tail_bytes
            )?;
            for line in self.tail.drain(..) {
                writeln!(self.log, "{line}")?;
            }
        }
        self.log.flush()
    }

    /// Logs the QMP lines that arrived so far.
    fn drain_qmp(&mut self) -> io::Result<()> {
        let lines: Vec<String> = match &self.qmp_log {
            Some(rx) => rx.try_iter().collect(),
            None => return Ok(()),
        };
        for line in lines {
            if self.echo {
                eprintln!("{}{line}", qmp::LOG_PREFIX);
            }
            self.write_log(&format!("{}{line}", qmp::LOG_PREFIX))?;
        }
        Ok(())
    }

    fn write_log(&mut self, line: &str) -> io::Result<()> {
        if self.written > MAX_LOG_BYTES {
            let size = line.len() + 1;
            self.unlogged += size as u64;
            self.tail.push_back(line.to_string());
            self.tail_bytes += size;
            while self.tail_bytes > LOG_TAIL_BYTES {
                match self.tail.pop_front() {
                    Some(old) => self.tail_bytes -= old.len() + 1,
                    None => break,
                }
            }
            return Ok(());
        }
        self.written += line.len() as u64 + 1;
        writeln!(self.log, "{line}")?;
        if self.written > MAX_LOG_BYTES {
            writeln!(
                self.log,
                "[zvtest: console log cut at {MAX_LOG_BYTES} bytes]"
            )?;
        }
        // Flushed per line so that the log is current if we are killed.
        self.log.flush()
    }
}

/// How the log shows the cut part of a long line.
fn cut_note(dropped: u64) -> String {
    format!("[zvtest: line longer than {MAX_LINE} bytes: {dropped} more bytes of it not kept]")
}

/// Reads a pipe in its own thread and sends whole lines (lossy UTF-8).
fn spawn_reader<R: Read + Send + 'static>(
    mut pipe: R,
    tx: SyncSender<Event>,
    wrap: impl Fn(Line) -> Event + Send + 'static,
) -> io::Result<()> {
    thread::Builder::new()
        .name("qemu-pipe".into())
        .spawn(move || {
            let mut splitter = LineSplitter::default();
            let mut buf = [0u8; 8192];
            loop {
                let n = match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                for line in splitter.push(&buf[..n]) {
                    if tx.send(wrap(line)).is_err() {
                        return; // the runner gave up on this pipe
                    }
                }
            }
            if let Some(line) = splitter.finish() {
                let _ = tx.send(wrap(line));
            }
        })?;
    Ok(())
}

/// One console line: its first [`MAX_LINE`] bytes, and how many more it had.
#[derive(Debug, PartialEq, Eq)]
struct Line {
    text: String,
    dropped: u64,
}

/// Cuts a byte stream into lines without "\n"; of an over-long line only
/// the start is kept (a piece of its middle could pose as a TAP line).
#[derive(Debug, Default)]
struct LineSplitter {
    partial: Vec<u8>,
    dropped: u64,
}

impl LineSplitter {
    fn push(&mut self, mut bytes: &[u8]) -> Vec<Line> {
        let mut lines = Vec::new();
        loop {
            let end = bytes.iter().position(|&b| b == b'\n');
            let part = &bytes[..end.unwrap_or(bytes.len())];
            let room = MAX_LINE - self.partial.len();
            let take = part.len().min(room);
            self.partial.extend_from_slice(&part[..take]);
            self.dropped += (part.len() - take) as u64;
            let Some(i) = end else {
                return lines;
            };
            lines.push(self.take_line());
            bytes = &bytes[i + 1..];
        }
    }

    fn take_line(&mut self) -> Line {
        let line = Line {
            text: String::from_utf8_lossy(&self.partial).into_owned(),
            dropped: std::mem::take(&mut self.dropped),
        };
        self.partial.clear();
        line
    }

    fn finish(mut self) -> Option<Line> {
        (!self.partial.is_empty() || self.dropped > 0).then(|| self.take_line())
    }
}

/// `<tmp>/zvtest-logs/<name>-<pid>-<n>.log`: unique per run within a process.
fn default_log_path(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let safe = crate::scenario::file_name_safe(name);
    std::env::temp_dir()
        .join("zvtest-logs")
        .join(format!("{safe}-{}-{n}.log", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: Vec<Line>) -> Vec<String> {
        lines
            .into_iter()
            .map(|l| {
                assert_eq!(l.dropped, 0, "{l:?}");
                l.text
            })
            .collect()
    }

    #[test]
    fn lines_of_checks_that_did_not_run_are_forgiven() {
        use zvtest_contract::checks::markers::{
            CONFIG_CHANGE_READY, HOTPLUG_READY, NET_LINK_READY,
        };
        let tap = |text: &str| {
            let mut p = TapParser::new();
            for l in text.lines() {
                p.feed(l);
            }
            p.finish()
        };
        let report = tap("TAP version 14\n1..3\nok 1 - css.hotplug\n\
             ok 2 - virtio.config-change # SKIP no balloon\nok 3 - boot.vectors\n\
             3 passed, 0 failed, 1 skipped");
        let unseen: Vec<(String, String)> = [
            HOTPLUG_READY,
            CONFIG_CHANGE_READY[0],
            NET_LINK_READY[0],
            "# other",
        ]
        .iter()
        .map(|l| (l.to_string(), format!("never showed {l}")))
        .collect();
        let f = forgiven(&unseen, &report, true);
        // css.hotplug ran and passed without its line: not forgiven; the
        // skipped and the unselected checks' lines are; an unknown line is not.
        assert_eq!(
            f,
            [
                (unseen[1].1.clone(), "virtio.config-change"),
                (unseen[2].1.clone(), "net.link")
            ]
        );
        assert!(
            forgiven(&unseen, &report, false).is_empty(),
            "a cut-short run forgives nothing"
        );
    }

    #[test]
    fn splitter_handles_partial_and_crlf_lines() {
        let mut s = LineSplitter::default();
        assert_eq!(texts(s.push(b"TAP vers")), Vec::<String>::new());
        assert_eq!(
            texts(s.push(b"ion 14\r\n1..2\nok")),
            ["TAP version 14\r", "1..2"]
        );
        assert_eq!(texts(s.push(b" 1\n")), ["ok 1"]);
        assert_eq!(texts(s.push(b"tail")), Vec::<String>::new());
        assert_eq!(s.finish().map(|l| l.text).as_deref(), Some("tail"));
    }

    #[test]
    fn splitter_keeps_the_start_of_endless_lines() {
        // Old behaviour: the rest came as further lines, so a piece of
        // the middle could pose as a TAP line.
        let mut s = LineSplitter::default();
        let mut long = vec![b'x'; MAX_LINE * 2 + 10];
        long[MAX_LINE..MAX_LINE + 9].copy_from_slice(b"not ok 1 ");
        assert!(s.push(&long).is_empty());
        assert!(s.partial.len() <= MAX_LINE);
        let lines = s.push(b"yz\nok 2\n");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].text, "x".repeat(MAX_LINE));
        assert_eq!(lines[0].dropped, (MAX_LINE + 12) as u64);
        assert_eq!(
            lines[1],
            Line {
                text: "ok 2".into(),
                dropped: 0
            }
        );
        // Without a newline at all: the start, at the end.
        let mut s = LineSplitter::default();
        for _ in 0..100 {
            assert!(s.push(&[b'y'; 8192]).is_empty());
        }
        let last = s.finish().unwrap();
        assert_eq!(last.text.len(), MAX_LINE);
        assert_eq!(last.dropped, (100 * 8192 - MAX_LINE) as u64);
    }

    #[test]
    fn splitter_is_lossy_on_bad_utf8() {
        let mut s = LineSplitter::default();
        assert_eq!(texts(s.push(b"a\xffb\n")), ["a\u{fffd}b"]);
    }

    #[test]
    fn wait_psw_lines() {
        let mut f = StderrFacts::default();
        for l in [
            "Invalid read at addr 0x8100000, size 4, region '(null)', reason: rejected",
            "PSW: 0x1 0x2",
            "Guest crashed on cpu 0: disabled-wait",
            "PSW: 0x0002000180000000 0x000000000bad0002",
            "Guest crashed on cpu 0: disabled-wait",
            "PSW: 0x0002000180000000 0x000000000dead008",
        ] {
            f.take(l);
        }
        // A PSW line counts only right after the crash line; the first crash counts.
        assert_eq!(f.wait_psw, Some((0x0002_0001_8000_0000, 0x0bad_0002)));
        let p = parse_psw_line;
        assert_eq!(p("PSW: 0x0 0xfff"), Some((0, 0xfff)));
        for bad in [
            "PSW: 0x1",
            "PSW: 1 2",
            "PSW: 0x1 0x2 0x3",
            "PSW: 0x10000000000000000 0x0",
            "PSW: 0xg 0x0",
            "psw: 0x1 0x2",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
        let mut f = StderrFacts::default();
        f.take("qemu-system-s390x: terminating on signal 15 from pid 7 (sh)");
        assert_eq!(
            f.terminated.as_deref(),
            Some("qemu-system-s390x: terminating on signal 15 from pid 7 (sh)")
        );
    }

    #[test]
    fn the_last_d_option_decides_the_wait_psw() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert!(reports_wait_psw(&args(&["-d", "guest_errors", "-m", "1"])));
        assert!(reports_wait_psw(&args(&["-d", "unimp,guest_errors"])));
        assert!(!reports_wait_psw(&args(&[
            "-d",
            "guest_errors",
            "-d",
            "unimp"
        ])));
        assert!(!reports_wait_psw(&args(&["-m", "1"])));
    }

    #[test]
    fn which_qemus_exit_at_the_disabled_wait() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        let exits = |a: &[&str]| exits_at_disabled_wait(&args(a));
        assert!(exits(&["-m", "1"]), "QEMU's default: shutdown");
        assert!(exits(&["-action", "panic=exit-failure"]));
        assert!(exits(&["-action", "reboot=shutdown,panic=exit-failure"]));
        assert!(exits(&[
            "-action",
            "panic=pause",
            "-action",
            "panic=shutdown"
        ]));
        assert!(!exits(&[
            "-action",
            "panic=exit-failure",
            "-action",
            "panic=pause"
        ]));
        assert!(!exits(&["-action", "panic=none"]));
        assert!(!exits(&["-no-shutdown"]));
        assert!(!exits(&["-action", "shutdown=pause"]));
        assert!(exits(&["-no-shutdown", "-action", "panic=exit-failure"]));
    }

    #[test]
    fn quoting_for_the_shell() {
        assert_eq!(shell_quote("-append"), "-append");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("only=boot.*"), "'only=boot.*'");
    }

    #[test]
    fn default_logs_are_unique() {
        let a = default_log_path("a b/c");
        let b = default_log_path("a b/c");
        assert_ne!(a, b);
        assert!(a
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("a_b_c-"));
    }
}
