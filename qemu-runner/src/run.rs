//! Boots one scenario: spawn QEMU, stream and log its console, enforce the timeout.

use crate::qmp::{self, QmpEvent, SocketDir};
use crate::scenario::{Diag288, Scenario};
use crate::tap::{TapParser, TapReport};
use crate::verdict::{judge, Exit, Verdict};
use crate::version::QemuVersion;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Prefix of QEMU's own stderr lines in the console log.
pub const STDERR_PREFIX: &str = "[qemu stderr] ";

/// A console line longer than this is cut into pieces (a guest printing
/// without newlines must not grow our memory).
const MAX_LINE: usize = 64 * 1024;
/// The log stops growing here; parsing goes on.
const MAX_LOG_BYTES: u64 = 32 << 20;
/// After QEMU is gone, how long we wait for the pipes to reach end of file
/// (something else may hold them open).
const DRAIN_GRACE: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(10);

/// How to run: where the console log goes, whether to echo it.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Console log file; by default a fresh file in the temp directory.
    pub log: Option<PathBuf>,
    /// Echo the console to our stdout (QEMU's stderr to our stderr) as it comes.
    pub echo: bool,
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
}

/// Everything known about one boot.
#[derive(Debug, Clone)]
pub struct Outcome {
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
    /// QEMU's QMP events, for a scenario that watches them
    /// ([`Scenario::qmp_events`]), hot-plugs or sends commands on console
    /// lines (those until the last command); e.g. `WATCHDOG`.
    pub qmp_events: Vec<QmpEvent>,
    pub log_path: PathBuf,
    pub tap: TapReport,
    pub verdict: Verdict,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.verdict.is_pass()
    }

    /// The whole console log (QEMU stdout, plus stderr lines prefixed).
    pub fn console(&self) -> String {
        match fs::read(&self.log_path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => format!("(cannot read {}: {e})\n", self.log_path.display()),
        }
    }

    /// At most the last `max_bytes` of the console log, cut at a line start.
    pub fn console_tail(&self, max_bytes: usize) -> String {
        let text = self.console();
        if text.len() <= max_bytes {
            return text;
        }
        let mut start = text.len() - max_bytes;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        let start = text[start..].find('\n').map_or(start, |i| start + i + 1);
        format!("[... {} bytes cut ...]\n{}", start, &text[start..])
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

    /// Prints [`Outcome::failure_report`] to stderr.
    pub fn print_failure(&self) {
        eprint!("{}", self.failure_report());
    }
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
    Stdout(Instant, String),
    Stderr(String),
}

/// Boots `kernel` as `scenario` says and judges the result.
///
/// Returns early (as an error) only when QEMU cannot be started, its
/// version cannot be told (for `qemu-version=`: see
/// [`Scenario::resolve_qemu_version`]) or the log cannot be written;
/// everything that goes wrong inside the guest is in the outcome's
/// verdict. Never waits past the scenario's timeout (plus a short grace to
/// collect output): QEMU is killed and reaped then.
pub fn run(scenario: &Scenario, kernel: &Path, opts: &RunOptions) -> io::Result<Outcome> {
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
    let scenario = &scenario.resolve_qemu_version().map_err(io::Error::other)?;
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
    // Hot plug, commands on console lines and events: QEMU serves QMP on a
    // private socket; we connect as it boots.
    let qmp_dir =
        if scenario.hotplug.is_empty() && scenario.line_commands.is_empty() && !scenario.qmp_events
        {
            None
        } else {
            let dir = SocketDir::new()?;
            args.push("-qmp".into());
            args.push(dir.qemu_arg().into());
            Some(dir)
        };
    let mut command = vec![scenario.qemu.to_string_lossy().into_owned()];
    command.extend(args.iter().map(|a| a.to_string_lossy().into_owned()));

    let start = Instant::now();
    let child = Command::new(&scenario.qemu)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot start {}: {e}", scenario.qemu.display()),
            )
        })?;
    let mut child = KillOnDrop(child);

    // Bounded, so a flooding guest is slowed down rather than filling our memory.
    let (tx, rx) = mpsc::sync_channel(1024);
    let stdout = child.0.stdout.take().expect("stdout is piped");
    let stderr = child.0.stderr.take().expect("stderr is piped");
    spawn_reader(stdout, tx.clone(), |l| Event::Stdout(Instant::now(), l))?;
    spawn_reader(stderr, tx, Event::Stderr)?;

    let mut console = Console {
        log: BufWriter::new(log),
        written: 0,
        echo: opts.echo,
        parser: TapParser::new(),
        start,
        time_to_tap: None,
        triggers: Vec::new(),
        triggered: None,
        qmp_log: None,
    };
    let ended = Arc::new(AtomicBool::new(false));
    let job = match &qmp_dir {
        None => None,
        Some(dir) => {
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
                dir.path.clone(),
                job,
                lines_rx,
                Arc::clone(&ended),
                log_tx,
            )?)
        }
    };
    let (status, timed_out) = supervise(&mut child.0, &rx, &mut console, start + scenario.timeout)?;
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
    console.log.flush()?;
    drop(qmp_dir);

    let exit = if timed_out {
        Exit::TimedOut(scenario.timeout)
    } else if let Some(code) = status.code() {
        Exit::Code(code)
    } else {
        Exit::Signal(status.signal().unwrap_or(0))
    };
    let tap = console.parser.finish();
    let mut verdict = judge(&exit, &tap);
    let mut hotplug_done = false;
    let mut qmp_commands_done = false;
    let mut qmp_events = Vec::new();
    if let Some(report) = report {
        verdict.reasons.extend(report.errors);
        hotplug_done = report.done && !scenario.hotplug.is_empty();
        qmp_commands_done = report.commands_done;
        qmp_events = report.events;
    }
    if scenario.diag288 == Some(Diag288::Expire) {
        verdict.reasons.extend(watchdog_reason(&tap, &qmp_events));
    }
    Ok(Outcome {
        scenario: scenario.name.clone(),
        command,
        exit,
        duration,
        time_to_tap: console.time_to_tap,
        hotplug_done,
        qmp_commands_done,
        qemu_version: scenario.claimed_qemu_version(),
        qmp_events,
        log_path,
        tap,
        verdict,
    })
}

/// The check that lets the diag288 watchdog expire.
pub const WATCHDOG_CHECK: &str = "hcall.diag288.expiry";

/// With `diag288=expire`: when the firmware says its watchdog expired
/// (`ok` for [`WATCHDOG_CHECK`]), QEMU must have said so too, with a
/// `WATCHDOG` event. Nothing to say when the check did not pass (its own
/// result fails the run) or was skipped.
fn watchdog_reason(tap: &TapReport, events: &[QmpEvent]) -> Option<String> {
    let r = tap.result(WATCHDOG_CHECK)?;
    if !r.ok || r.is_skip() || events.iter().any(|e| e.name == "WATCHDOG") {
        return None;
    }
    Some(format!(
        "{WATCHDOG_CHECK} passed but QEMU sent no WATCHDOG event over QMP"
    ))
}

/// Pumps console lines until QEMU has exited and its pipes are drained, or
/// until the deadline, when QEMU is killed. Returns QEMU's status and
/// whether we killed it.
fn supervise(
    child: &mut Child,
    rx: &Receiver<Event>,
    console: &mut Console,
    deadline: Instant,
) -> io::Result<(ExitStatus, bool)> {
    // QEMU's status, whether we killed it, and when to stop waiting for the pipes.
    let mut ended: Option<(ExitStatus, bool, Instant)> = None;
    let mut pipes_open = true;
    loop {
        if ended.is_none() {
            if let Some(status) = child.try_wait()? {
                ended = Some((status, false, Instant::now() + DRAIN_GRACE));
            } else if Instant::now() >= deadline {
                // kill() fails only if it exited meanwhile; wait() reaps either way.
                let _ = child.kill();
                ended = Some((child.wait()?, true, Instant::now() + DRAIN_GRACE));
            }
        }
        if let Some((status, killed, drain_until)) = ended {
            // Something other than QEMU may hold the pipes open: stop reading then.
            if !pipes_open || Instant::now() >= drain_until {
                return Ok((status, killed));
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

/// Where each console line goes: log file, echo, TAP parser.
struct Console {
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
}

impl Console {
    fn take(&mut self, event: Event) -> io::Result<()> {
        match event {
            Event::Stdout(at, line) => {
                if self.time_to_tap.is_none() && line.trim().starts_with("TAP version") {
                    self.time_to_tap = Some(at.duration_since(self.start));
                }
                let trimmed = line.trim();
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
            }
            Event::Stderr(line) => {
                if self.echo {
                    eprintln!("{STDERR_PREFIX}{line}");
                }
                self.write_log(&format!("{STDERR_PREFIX}{line}"))?;
            }
        }
        Ok(())
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

/// Reads a pipe in its own thread and sends whole lines (lossy UTF-8).
fn spawn_reader<R: Read + Send + 'static>(
    mut pipe: R,
    tx: SyncSender<Event>,
    wrap: impl Fn(String) -> Event + Send + 'static,
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

/// Cuts a byte stream into lines without "\n"; over-long lines come in pieces.
#[derive(Debug, Default)]
struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, mut bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(i) = bytes.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&bytes[..i]);
            lines.push(String::from_utf8_lossy(&self.partial).into_owned());
            self.partial.clear();
            bytes = &bytes[i + 1..];
        }
        self.partial.extend_from_slice(bytes);
        while self.partial.len() >= MAX_LINE {
            let rest = self.partial.split_off(MAX_LINE);
            lines.push(String::from_utf8_lossy(&self.partial).into_owned());
            self.partial = rest;
        }
        lines
    }

    fn finish(self) -> Option<String> {
        (!self.partial.is_empty()).then(|| String::from_utf8_lossy(&self.partial).into_owned())
    }
}

/// Makes sure an error or panic in the runner does not leave QEMU behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `<tmp>/zvtest-logs/<name>-<pid>-<n>.log`: unique per run within a process.
fn default_log_path(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    std::env::temp_dir()
        .join("zvtest-logs")
        .join(format!("{safe}-{}-{n}.log", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitter_handles_partial_and_crlf_lines() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"TAP vers"), Vec::<String>::new());
        assert_eq!(s.push(b"ion 14\r\n1..2\nok"), ["TAP version 14\r", "1..2"]);
        assert_eq!(s.push(b" 1\n"), ["ok 1"]);
        assert_eq!(s.push(b"tail"), Vec::<String>::new());
        assert_eq!(s.finish().as_deref(), Some("tail"));
    }

    #[test]
    fn splitter_cuts_endless_lines() {
        let mut s = LineSplitter::default();
        let lines = s.push(&vec![b'x'; MAX_LINE * 2 + 10]);
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.len() == MAX_LINE));
        assert_eq!(s.finish().map(|l| l.len()), Some(10));
    }

    #[test]
    fn splitter_is_lossy_on_bad_utf8() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"a\xffb\n"), ["a\u{fffd}b"]);
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
