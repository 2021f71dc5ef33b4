//! The QMP jobs of a run: the hot-plug steps once the firmware says it is
//! ready, the commands sent when their console lines appear, and QEMU's
//! events recorded until it ends. Every QMP error and every timeout
//! becomes one failure reason; so does a line that never appears.

use super::client::{device_add, device_del, Client, Deleted, QmpError, QmpEvent};
use crate::scenario::{HotplugStep, LineCommand};
use std::fmt;
use std::io;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};
use zvtest_contract::checks::markers::HOTPLUG_READY;

/// What the QMP thread hands back.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Failure reasons for the verdict.
    pub errors: Vec<String>,
    /// Every hot-plug step was sent and answered without error.
    pub done: bool,
    /// Every line command was sent on its line and answered without error.
    pub commands_done: bool,
    /// Every event QEMU sent while we were connected.
    pub events: Vec<QmpEvent>,
    /// Console lines that never came, each with its reason (also in
    /// `errors`): the runner forgives those of checks that did not run.
    pub unseen: Vec<(String, String)>,
}

/// What the QMP thread does besides connecting.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// Hot-plug steps, performed once [`HOTPLUG_READY`] comes.
    pub steps: Vec<HotplugStep>,
    /// Commands, each sent once its line comes.
    pub commands: Vec<LineCommand>,
    /// After the steps and commands (if any), keep reading QEMU's events
    /// until it ends.
    pub watch: bool,
    /// QEMU's start, for [`QmpEvent::after`].
    pub start: Instant,
    /// How long each reply and `DEVICE_DELETED` event may take.
    pub timeout: Duration,
}

impl Job {
    /// The console lines the job waits for, each once: [`HOTPLUG_READY`]
    /// for hot-plug steps, then the lines of the commands (trimmed).
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        if !self.steps.is_empty() {
            lines.push(HOTPLUG_READY.into());
        }
        for c in &self.commands {
            let line = c.line.trim();
            if !lines.iter().any(|l| l == line) {
                lines.push(line.into());
            }
        }
        lines
    }
}

/// Starts the QMP job: connect and handshake at once; then, for each line
/// from `lines` (the first appearance of one of [`Job::lines`], trimmed),
/// the hot-plug steps and commands it triggers; when watching, then read
/// events until QEMU closes the connection. `ended` is set (and `lines`'
/// sender dropped) when QEMU is gone; `log` receives the QMP traffic.
pub(crate) fn spawn(
    socket: UnixStream,
    job: Job,
    lines: Receiver<String>,
    ended: std::sync::Arc<AtomicBool>,
    log: Sender<String>,
) -> io::Result<thread::JoinHandle<Report>> {
    thread::Builder::new()
        .name("qmp".into())
        .spawn(move || perform(socket, &job, &lines, &ended, log))
}

/// How long one read waits while only events are awaited.
const LISTEN_POLL: Duration = Duration::from_millis(100);

fn perform(
    socket: UnixStream,
    job: &Job,
    lines: &Receiver<String>,
    ended: &AtomicBool,
    log: Sender<String>,
) -> Report {
    let mut report = Report::default();
    let sink = move |line: String| {
        let _ = log.send(line);
    };
    let watch_only = job.steps.is_empty() && job.commands.is_empty();
    let client = match Client::from_stream(socket, sink) {
        Ok(c) => c,
        Err(e) => {
            report.errors.push(format!("QMP socket: {e}"));
            return report;
        }
    };
    let mut client = client.timeout(job.timeout);
    if let Err(e) = client.handshake() {
        // Watching only: a QEMU that ended before it spoke QMP sent no
        // events, and that is for the caller to judge.
        if !(watch_only && e.is_closed()) {
            report.errors.push(e.to_string());
        }
        return report;
    }
    if !watch_only {
        perform_on_lines(&mut client, job, lines, &mut report);
    }
    if job.watch {
        listen(&mut client, ended, &mut report.errors);
    }
    report.events = client
        .events_seen()
        .iter()
        .map(|(at, name, data)| QmpEvent {
            name: name.clone(),
            data: data.clone(),
            after: at.saturating_duration_since(job.start),
        })
        .collect();
    report
}

/// Reads (and so records) events until QEMU closes the connection.
fn listen<L: FnMut(String)>(client: &mut Client<L>, ended: &AtomicBool, errors: &mut Vec<String>) {
    loop {
        match client.read_message(Instant::now() + LISTEN_POLL) {
            Ok(Some(_)) => {}
            // QEMU is gone and nothing more came: the socket is only
            // held open by someone else.
            Ok(None) if ended.load(Ordering::Relaxed) => return,
            Ok(None) => {}
            Err(QmpError::Closed) => return,
            Err(e) => {
                errors.push(format!("QMP events: {e}"));
                return;
            }
        }
    }
}

/// Performs the hot-plug steps on [`HOTPLUG_READY`] and each command on
/// its line, as `lines` brings them, until all are done or QEMU is gone;
/// sets `report.done` and `report.commands_done`.
fn perform_on_lines<L: FnMut(String)>(
    client: &mut Client<L>,
    job: &Job,
    lines: &Receiver<String>,
    report: &mut Report,
) {
    let mut steps_pending = !job.steps.is_empty();
    let mut pending = vec![true; job.commands.len()];
    let mut commands_failed = false;
    let mut dead = false;
    while !dead && (steps_pending || pending.contains(&true)) {
        let line = match lines.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => continue,
            // QEMU is gone: what is still pending never came.
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if steps_pending && line == HOTPLUG_READY {
            steps_pending = false;
            let steps = perform_steps(client, &job.steps, &mut report.errors);
            report.done = steps.all_done;
            dead = steps.connection_ended;
        }
        for (c, pending) in job.commands.iter().zip(pending.iter_mut()) {
            if dead || !*pending || c.line.trim() != line {
                continue;
            }
            *pending = false;
            if let Err(e) = client.execute(&c.describe(), &c.wire()) {
                commands_failed = true;
                dead = e.ends_connection();
                report.errors.push(e.to_string());
            }
        }
    }
    if steps_pending {
        let why = if dead {
            "the QMP connection failed first".to_string()
        } else {
            format!("the console never showed '{HOTPLUG_READY}'")
        };
        let e = format!(
            "hot plug not performed: {why} ({} left undone)",
            steps_text(job.steps.len())
        );
        if !dead {
            report.unseen.push((HOTPLUG_READY.to_string(), e.clone()));
        }
        report.errors.push(e);
    }
    for (c, _) in job.commands.iter().zip(&pending).filter(|(_, p)| **p) {
        commands_failed = true;
        report.errors.push(if dead {
            format!("QMP {} not sent: the QMP connection failed first", c.wire())
        } else {
            let e = format!(
                "QMP {} not sent: the console never showed '{}'",
                c.wire(),
                c.line.trim()
            );
            report.unseen.push((c.line.trim().to_string(), e.clone()));
            e
        });
    }
    report.commands_done = !job.commands.is_empty() && !commands_failed;
}

/// Why a hot-plug step failed.
enum StepError {
    Qmp(QmpError),
    /// QEMU ended while we waited for `DEVICE_DELETED` of `id`, with
    /// `left` steps after it.
    EndedBeforeDeleted {
        id: String,
        left: usize,
    },
}

impl StepError {
    fn ends_connection(&self) -> bool {
        match self {
            StepError::Qmp(e) => e.ends_connection(),
            StepError::EndedBeforeDeleted { .. } => true,
        }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::Qmp(e) => write!(f, "{e}"),
            StepError::EndedBeforeDeleted { id, left } => write!(
                f,
                "hot plug: QEMU ended while waiting for DEVICE_DELETED of {id}, with {} left undone",
                steps_text(*left)
            ),
        }
    }
}

/// How the steps went.
struct Steps {
    all_done: bool,
    /// The connection is of no more use: the rest was not sent.
    connection_ended: bool,
}

/// Performs the steps, each failure one reason in `errors`.
fn perform_steps<L: FnMut(String)>(
    client: &mut Client<L>,
    steps: &[HotplugStep],
    errors: &mut Vec<String>,
) -> Steps {
    let mut all_done = true;
    for (i, step) in steps.iter().enumerate() {
        let result = match step {
            HotplugStep::Add(dev) => client
                .execute(
                    &format!("device_add {}", dev.id),
                    &device_add(&dev.model, &dev.id, &dev.qmp_properties()),
                )
                .map_err(StepError::Qmp),
            HotplugStep::Remove { id } => client
                .execute(&format!("device_del {id}"), &device_del(id))
                .and_then(|()| client.wait_deleted(id))
                .map_err(StepError::Qmp)
                .and_then(|deleted| {
                    let left = steps.len() - i - 1;
                    match deleted {
                        Deleted::Seen => Ok(()),
                        Deleted::QemuEnded if left == 0 => {
                            client.note(format!(
                                "QEMU ended before DEVICE_DELETED of {id} (not an error: \
                                 nothing was left to do)"
                            ));
                            Ok(())
                        }
                        Deleted::QemuEnded => Err(StepError::EndedBeforeDeleted {
                            id: id.clone(),
                            left,
                        }),
                    }
                }),
        };
        if let Err(e) = result {
            all_done = false;
            errors.push(e.to_string());
            // After a dead connection the rest cannot be sent either.
            if e.ends_connection() {
                return Steps {
                    all_done,
                    connection_ended: true,
                };
            }
        }
    }
    Steps {
        all_done,
        connection_ended: false,
    }
}

fn steps_text(n: usize) -> String {
    if n == 1 {
        "1 step".into()
    } else {
        format!("{n} steps")
    }
}

#[cfg(test)]
mod tests {
    use super::super::client::qmp_capabilities;
    use super::super::testing::{addr, fake_server, socket};
    use super::*;
    use crate::scenario::{BusId, CcwDevice};
    use std::os::unix::net::UnixListener;
    use std::sync::mpsc;
    use std::sync::Arc;

    const TIMEOUT: Duration = super::super::client::TIMEOUT;

    fn rng(bus: &str) -> CcwDevice {
        CcwDevice::new("virtio-rng-ccw", bus.parse::<BusId>().unwrap(), "rng")
    }

    fn run_steps(
        test: &str,
        replies: Vec<&'static str>,
        steps: Vec<HotplugStep>,
    ) -> (Report, Vec<String>, Vec<String>) {
        let sock = socket(test);
        let path = sock.path.clone();
        let server = fake_server(UnixListener::bind(&path).unwrap(), replies);
        let (ready_tx, ready_rx) = mpsc::channel();
        let (log_tx, log_rx) = mpsc::channel();
        ready_tx.send(HOTPLUG_READY.to_string()).unwrap();
        let ended = Arc::new(AtomicBool::new(false));
        let job = Job {
            steps,
            commands: Vec::new(),
            watch: false,
            start: Instant::now(),
            timeout: TIMEOUT,
        };
        let report = spawn(addr(&path), job, ready_rx, ended, log_tx)
            .unwrap()
            .join()
            .unwrap();
        let got = server.join().unwrap();
        drop(sock);
        (report, got, log_rx.try_iter().collect())
    }

    #[test]
    fn steps_in_order_with_events_before_and_after_the_reply() {
        let steps = vec![
            HotplugStep::Add(rng("fe.0.0007")),
            HotplugStep::Remove {
                id: "ccw-fe.0.0001".into(),
            },
            HotplugStep::Remove {
                id: "ccw-fe.0.0002".into(),
            },
        ];
        let (report, got, log) = run_steps(
            "order",
            vec![
                "{\"return\": {}}\r\n",
                "{\"event\": \"RESUME\"}\r\n{\"return\": {}}\r\n",
                // Event for another device, the backend, then ours, then the reply.
                "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"other\"}}\r\n\
                 {\"event\": \"DEVICE_DELETED\", \"data\": {\"path\": \"/x/virtio-backend\"}}\r\n\
                 {\"return\": {}}\r\n\
                 {\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"ccw-fe.0.0001\"}}\r\n",
                // Our event first, then the reply.
                "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"ccw-fe.0.0002\"}}\r\n\
                 {\"return\": {}}\r\n",
            ],
            steps,
        );
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(report.done);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], qmp_capabilities());
        assert_eq!(
            got[1],
            r#"{"execute": "device_add", "arguments": {"driver": "virtio-rng-ccw", "id": "ccw-fe.0.0007", "devno": "fe.0.0007"}}"#
        );
        assert_eq!(got[2], device_del("ccw-fe.0.0001"));
        assert_eq!(got[3], device_del("ccw-fe.0.0002"));
        assert!(log.iter().any(|l| l.starts_with("<- {\"QMP\"")), "{log:?}");
        assert!(log.contains(&format!("-> {}", device_del("ccw-fe.0.0002"))));
    }

    #[test]
    fn qmp_errors_become_reasons_and_later_steps_still_run() {
        let steps = vec![
            HotplugStep::Add(rng("fe.0.0007")),
            HotplugStep::Remove { id: "gone".into() },
        ];
        let (report, got, _) = run_steps(
            "errors",
            vec![
                "{\"return\": {}}\n",
                "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Device fe.0.0007 already exists\"}}\n",
                "{\"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device 'gone' not found\"}}\n",
            ],
            steps,
        );
        assert_eq!(
            report.errors,
            [
                "QMP device_add ccw-fe.0.0007: Device fe.0.0007 already exists",
                "QMP device_del gone: Device 'gone' not found"
            ]
        );
        assert!(!report.done);
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn closed_connection_stops_the_steps() {
        let steps = vec![
            HotplugStep::Remove { id: "a".into() },
            HotplugStep::Remove { id: "b".into() },
        ];
        // The server answers the handshake and device_del, then hangs up
        // before DEVICE_DELETED.
        let (report, got, _) = run_steps(
            "closed",
            vec!["{\"return\": {}}\n", "{\"return\": {}}\n"],
            steps,
        );
        assert_eq!(
            report.errors,
            ["hot plug: QEMU ended while waiting for DEVICE_DELETED of a, with 1 step left undone"]
        );
        assert!(!report.done);
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn qemu_ending_before_the_last_deleted_event_is_no_error() {
        // QEMU sends DEVICE_DELETED when the device is finalized; the guest
        // may be done, and QEMU gone, before that.
        let steps = vec![
            HotplugStep::Add(rng("fe.0.0007")),
            HotplugStep::Remove { id: "a".into() },
        ];
        let (report, got, log) = run_steps(
            "ended",
            vec![
                "{\"return\": {}}\n",
                "{\"return\": {}}\n",
                "{\"return\": {}}\n",
            ],
            steps,
        );
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(report.done);
        assert_eq!(got.len(), 3);
        assert!(
            log.iter()
                .any(|l| l.starts_with("QEMU ended before DEVICE_DELETED of a")),
            "{log:?}"
        );
    }

    #[test]
    fn closed_before_a_reply_is_an_error() {
        let steps = vec![HotplugStep::Add(rng("fe.0.0007"))];
        // Handshake answered; device_add never is.
        let (report, _, _) = run_steps("closed-reply", vec!["{\"return\": {}}\n", ""], steps);
        assert_eq!(
            report.errors,
            ["QMP device_add ccw-fe.0.0007: QEMU closed the connection"]
        );
    }

    /// Runs a job of `steps` and `commands` (line, JSON) against a fake
    /// server; the console shows `lines` and then QEMU ends.
    fn run_job(
        test: &str,
        replies: Vec<&'static str>,
        steps: Vec<HotplugStep>,
        commands: &[(&str, &str)],
        lines: &[&str],
        timeout: Duration,
    ) -> (Report, Vec<String>) {
        let sock = socket(test);
        let path = sock.path.clone();
        let server = fake_server(UnixListener::bind(&path).unwrap(), replies);
        let (lines_tx, lines_rx) = mpsc::channel();
        let (log_tx, _log_rx) = mpsc::channel();
        let commands: Vec<LineCommand> = commands
            .iter()
            .map(|(line, command)| LineCommand {
                line: line.to_string(),
                command: command.to_string(),
            })
            .collect();
        let job = Job {
            steps,
            commands,
            watch: false,
            start: Instant::now(),
            timeout,
        };
        for l in lines {
            lines_tx.send(l.to_string()).unwrap();
        }
        drop(lines_tx);
        let report = spawn(
            addr(&path),
            job,
            lines_rx,
            Arc::new(AtomicBool::new(true)),
            log_tx,
        )
        .unwrap()
        .join()
        .unwrap();
        let got = server.join().unwrap();
        drop(sock);
        (report, got)
    }

    const QUERY: &str = r#"{"execute": "query-status"}"#;
    const BALLOON: &str = r#"{"execute": "balloon", "arguments": {"value": 67108864}}"#;
    const STOP: &str = r#"{"execute": "stop"}"#;

    #[test]
    fn line_commands_run_once_in_the_order_their_lines_come() {
        let (report, got) = run_job(
            "lines",
            vec![
                "{\"return\": {}}\n",
                "{\"return\": {}}\n",
                "{\"event\": \"RESUME\"}\n{\"return\": {\"running\": true}}\n",
                "{\"return\": {}, \"id\": 1}\n",
            ],
            Vec::new(),
            &[("# one", QUERY), ("# two", BALLOON), ("# one", STOP)],
            // A line seen twice triggers nothing more.
            &["# two", "# other", "# one", "# two", "# one"],
            TIMEOUT,
        );
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(report.commands_done);
        assert!(!report.done, "no hot-plug steps");
        assert_eq!(got, [&qmp_capabilities(), BALLOON, QUERY, STOP]);
        let names: Vec<&str> = report.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["RESUME"]);
    }

    #[test]
    fn line_command_errors_and_missing_lines_name_the_command() {
        let (report, got) = run_job(
            "line-errors",
            vec![
                "{\"return\": {}}\n",
                "{\"error\": {\"class\": \"DeviceNotActive\", \"desc\": \"No balloon device has been activated\"}}\n",
            ],
            Vec::new(),
            &[("# ready", BALLOON), ("# never", STOP)],
            &["# ready"],
            TIMEOUT,
        );
        assert_eq!(
            report.errors,
            [
                format!("QMP {BALLOON} on '# ready': No balloon device has been activated"),
                format!("QMP {STOP} not sent: the console never showed '# never'"),
            ]
        );
        assert!(!report.commands_done);
        assert_eq!(got, [&qmp_capabilities(), BALLOON]);
    }

    #[test]
    fn a_missing_reply_times_out_and_nothing_more_is_sent() {
        let t = Instant::now();
        let (report, got) = run_job(
            "line-timeout",
            // Nothing for balloon; the server then waits for a line that never comes.
            vec!["{\"return\": {}}\n", "", ""],
            vec![HotplugStep::Remove { id: "a".into() }],
            &[("# ready", BALLOON), ("# ready", STOP)],
            &["# ready", HOTPLUG_READY],
            Duration::from_millis(200),
        );
        assert_eq!(
            report.errors,
            [
                format!("QMP {BALLOON} on '# ready': no answer within 0.2 s"),
                "hot plug not performed: the QMP connection failed first (1 step left undone)"
                    .to_string(),
                format!("QMP {STOP} not sent: the QMP connection failed first"),
            ]
        );
        assert!(!report.commands_done && !report.done);
        assert_eq!(got, [&qmp_capabilities(), BALLOON]);
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn hotplug_steps_come_before_commands_on_the_ready_line() {
        let (report, got) = run_job(
            "ready-both",
            vec![
                "{\"return\": {}}\n",
                "{\"return\": {}}\n",
                "{\"return\": {}}\n",
            ],
            vec![HotplugStep::Add(rng("fe.0.0007"))],
            &[(HOTPLUG_READY, STOP)],
            &[HOTPLUG_READY],
            TIMEOUT,
        );
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(report.done && report.commands_done);
        assert_eq!(got.len(), 3);
        assert!(got[1].contains("device_add"), "{got:?}");
        assert_eq!(got[2], STOP);
    }

    #[test]
    fn job_lines_are_distinct_and_trimmed() {
        let cmd = |line: &str| LineCommand {
            line: line.into(),
            command: STOP.into(),
        };
        let mut job = Job {
            steps: Vec::new(),
            commands: vec![cmd(" # a "), cmd(HOTPLUG_READY), cmd("# a"), cmd("# b")],
            watch: false,
            start: Instant::now(),
            timeout: TIMEOUT,
        };
        assert_eq!(job.lines(), ["# a", HOTPLUG_READY, "# b"]);
        job.commands.clear();
        assert!(job.lines().is_empty());
        job.steps.push(HotplugStep::Remove { id: "a".into() });
        assert_eq!(job.lines(), [HOTPLUG_READY]);
    }

    #[test]
    fn watching_records_events_until_qemu_closes() {
        let sock = socket("watch");
        let path = sock.path.clone();
        let server = fake_server(
            UnixListener::bind(&path).unwrap(),
            vec![concat!(
                "{\"return\": {}}\r\n",
                "{\"event\": \"WATCHDOG\", \"data\": {\"action\": \"inject-nmi\"}}\r\n",
                "{\"event\": \"RESET\", \"timestamp\": {\"seconds\": 5}}\r\n",
            )],
        );
        let (_ready_tx, ready_rx) = mpsc::channel::<String>();
        let (log_tx, _log_rx) = mpsc::channel();
        let start = Instant::now();
        let job = Job {
            steps: Vec::new(),
            commands: Vec::new(),
            watch: true,
            start,
            timeout: TIMEOUT,
        };
        let report = spawn(
            addr(&path),
            job,
            ready_rx,
            Arc::new(AtomicBool::new(false)),
            log_tx,
        )
        .unwrap()
        .join()
        .unwrap();
        server.join().unwrap();
        assert_eq!(report.errors, Vec::<String>::new());
        let names: Vec<&str> = report.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["WATCHDOG", "RESET"]);
        assert_eq!(report.events[0].field("action"), Some("inject-nmi"));
        assert_eq!(report.events[1].data, serde_json::Value::Null);
        assert!(report.events[0].after <= start.elapsed());
    }

    #[test]
    fn never_ready() {
        let sock = socket("never-ready");
        let path = sock.path.clone();
        let server = fake_server(
            UnixListener::bind(&path).unwrap(),
            vec!["{\"return\": {}}\n"],
        );
        let (ready_tx, ready_rx) = mpsc::channel::<String>();
        let (log_tx, _log_rx) = mpsc::channel();
        let ended = Arc::new(AtomicBool::new(false));
        let job = spawn(
            addr(&path),
            Job {
                steps: vec![HotplugStep::Remove { id: "a".into() }],
                commands: Vec::new(),
                watch: false,
                start: Instant::now(),
                timeout: TIMEOUT,
            },
            ready_rx,
            Arc::clone(&ended),
            log_tx,
        )
        .unwrap();
        thread::sleep(Duration::from_millis(100));
        ended.store(true, Ordering::Relaxed);
        drop(ready_tx);
        let report = job.join().unwrap();
        assert_eq!(report.errors.len(), 1);
        assert!(
            report.errors[0]
                .contains("never showed '# zvtest: hotplug ready' (1 step left undone)"),
            "{:?}",
            report.errors
        );
        assert_eq!(server.join().unwrap(), [qmp_capabilities()]);
    }
}
