//! Drives `run` and the binary with shell scripts standing in for QEMU, so
//! process handling (exit codes, timeouts, pipes held open) is tested on any host.

use qemu_runner::{
    detect_qemu_version, run, Diag288, Exit, QemuVersion, Run, RunOptions, Scenario, VersionWord,
    STDERR_PREFIX,
};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const GOOD_TAP: &str = "TAP version 14
# zvtest 0.1.0
1..2
ok 1 - boot.vectors
ok 2 - boot.memory
2 passed, 0 failed, 0 skipped";

fn dir(test: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("fake-qemu")
        .join(test);
    fs::create_dir_all(&d).unwrap();
    d
}

/// What the fake QEMUs answer to `--version`.
const VERSION_LINE: &str = "QEMU emulator version 7.2.22 (fake)";

/// Writes an executable script standing in for qemu-system-s390x; it
/// answers `--version` as QEMU 7.2.22 does.
fn fake_qemu(test: &str, body: &str) -> PathBuf {
    let answer = format!("if [ \"$1\" = --version ]; then echo '{VERSION_LINE}'; exit 0; fi\n");
    script(test, &(answer + body))
}

/// Writes an executable script standing in for qemu-system-s390x, as it is.
fn script(test: &str, body: &str) -> PathBuf {
    let path = dir(test).join("qemu");
    // Written to a temporary name first: executing a file another thread
    // still holds open for writing fails with ETXTBSY.
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).unwrap();
    fs::rename(&tmp, &path).unwrap();
    path
}

fn kernel(test: &str) -> PathBuf {
    let k = dir(test).join("zvtest.elf");
    fs::write(&k, b"not really an ELF").unwrap();
    k
}

fn boot(test: &str, script: &str, scenario: Scenario) -> Run {
    let qemu = fake_qemu(test, script);
    let opts = RunOptions::default().log(dir(test).join("console.log"));
    run(&scenario.qemu(qemu), &kernel(test), &opts).expect("run")
}

fn print_tap(tap: &str) -> String {
    format!("cat <<'EOF'\n{tap}\nEOF")
}

#[test]
fn passing_run() {
    let script = format!("echo 'qemu: warning: fake' >&2\n{}", print_tap(GOOD_TAP));
    let o = boot("pass", &script, Scenario::new("pass"));
    assert!(o.passed(), "{}", o.failure_report());
    assert_eq!(o.exit, Exit::Code(0));
    assert!(o.time_to_tap.is_some());
    assert!(o.time_to_tap.unwrap() <= o.duration);
    assert_eq!(o.tap.results.len(), 2);
    let console = o.console();
    assert!(console.contains("ok 2 - boot.memory\n"), "{console}");
    assert!(console.contains(&format!("{STDERR_PREFIX}qemu: warning: fake\n")));
    assert!(
        o.summary_line().starts_with("pass: PASS in "),
        "{}",
        o.summary_line()
    );
    assert_eq!(o.command[0], dir("pass").join("qemu").to_str().unwrap());
}

#[test]
fn arguments_reach_qemu_and_stdin_is_null() {
    // Prints its arguments as diagnostics, then whether stdin is at EOF.
    let script = format!(
        "for a in \"$@\"; do echo \"# arg: $a\"; done\n\
         if read -r line; then echo '# stdin: data'; else echo '# stdin: eof'; fi\n{}",
        print_tap(GOOD_TAP)
    );
    let mut scenario = Scenario::new("args")
        .memory_mib(512)
        .smp(2)
        .append("only=boot.*");
    scenario.data_dir = None; // whatever ZVTEST_QEMU_DATA says
    let o = boot("args", &script, scenario);
    assert!(o.passed(), "{}", o.failure_report());
    let d = &o.tap.diagnostics;
    let args: Vec<&str> = d.iter().filter_map(|l| l.strip_prefix("arg: ")).collect();
    let kernel = kernel("args");
    let expect = [
        "-m",
        "512",
        "-smp",
        "2",
        "-kernel",
        kernel.to_str().unwrap(),
        "-append",
        "expect-mem=512M expect-cpus=2 qemu-version=7.2 only=boot.*",
    ];
    assert!(args.windows(expect.len()).any(|w| w == expect), "{args:?}");
    assert!(d.iter().any(|l| l == "stdin: eof"), "{d:?}");
    assert_eq!(o.command.len(), args.len() + 1);
}

#[test]
fn guest_panic_exit_status_fails() {
    let script = format!("{}\nexit 1", print_tap(GOOD_TAP));
    let o = boot("exit1", &script, Scenario::new("exit1"));
    assert_eq!(o.exit, Exit::Code(1));
    assert_eq!(o.verdict.reasons, ["QEMU exit status 1"]);
    let report = o.failure_report();
    assert!(report.contains("  - QEMU exit status 1\n"), "{report}");
    assert!(report.contains("ok 1 - boot.vectors"), "{report}");
    assert!(report.contains("command: "), "{report}");
}

#[test]
fn hang_is_killed_at_the_timeout() {
    let script = "echo 'TAP version 14'\nexec sleep 60";
    let scenario = Scenario::new("hang").timeout(Duration::from_secs(1));
    let t = Instant::now();
    let o = boot("hang", script, scenario);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(o.exit, Exit::TimedOut(Duration::from_secs(1)));
    assert!(!o.passed());
    assert_eq!(o.verdict.reasons[0], "timed out after 1 s");
    assert!(o.time_to_tap.is_some());
    assert!(o.console().contains("TAP version 14"));
}

#[test]
fn a_wrapper_that_forks_takes_its_qemu_with_it() {
    // ZVTEST_QEMU may be a wrapper that forks (time, strace -f): killed at
    // the timeout, its QEMU must not go on as an orphan.
    let pid_file = dir("forks").join("qemu.pid");
    let script = format!(
        "echo 'TAP version 14'\nsleep 60 &\necho $! > {}\nwait",
        pid_file.display()
    );
    let scenario = Scenario::new("forks").timeout(Duration::from_secs(1));
    let o = boot("forks", &script, scenario);
    assert!(o.exit.is_timed_out());
    let pid = fs::read_to_string(&pid_file).unwrap();
    let stat = PathBuf::from(format!("/proc/{}/stat", pid.trim()));
    // Gone, or a zombie waiting for whoever adopted it to reap it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let alive = || {
        fs::read_to_string(&stat).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        })
    };
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(), "the wrapper's child {} still runs", pid.trim());
}

#[test]
fn silent_hang_with_closed_pipes_is_killed_too() {
    // QEMU closed its output but keeps running: only the timeout ends it.
    let script = "exec >/dev/null 2>&1\nexec sleep 60";
    let scenario = Scenario::new("closed").timeout(Duration::from_secs(1));
    let t = Instant::now();
    let o = boot("closed", script, scenario);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(o.exit.is_timed_out());
    assert!(o.time_to_tap.is_none());
}

#[test]
fn pipe_held_open_after_exit_does_not_block() {
    // A child of "QEMU" keeps the pipes open after QEMU itself is gone.
    let script = format!("sleep 8 &\n{}", print_tap(GOOD_TAP));
    let scenario = Scenario::new("held").timeout(Duration::from_secs(30));
    let t = Instant::now();
    let o = boot("held", &script, scenario);
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    assert!(o.passed(), "{}", o.failure_report());
}

#[test]
fn flood_of_output_still_times_out() {
    let script = "echo 'TAP version 14'\nwhile :; do echo '# spam spam spam spam'; done";
    let scenario = Scenario::new("flood").timeout(Duration::from_secs(1));
    let t = Instant::now();
    let o = boot("flood", script, scenario);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(o.exit.is_timed_out());
    assert!(o.console_tail(1000).len() < 1100);
}

#[test]
fn last_line_without_newline_is_parsed() {
    let script = format!("printf '{}'", GOOD_TAP.replace('\n', "\\n"));
    let o = boot("nonl", &script, Scenario::new("nonl"));
    assert!(o.passed(), "{}", o.failure_report());
}

#[test]
fn missing_qemu_or_kernel_is_an_error() {
    let k = kernel("missing");
    let s = Scenario::new("missing").qemu("/nonexistent/qemu-system-s390x");
    let e = run(&s, &k, &RunOptions::default()).unwrap_err();
    assert!(
        e.to_string().contains("/nonexistent/qemu-system-s390x"),
        "{e}"
    );
    let e = run(&s, &k.with_extension("gone"), &RunOptions::default()).unwrap_err();
    assert!(e.to_string().contains("not found"), "{e}");
    let e = run(&s.smp(0), &k, &RunOptions::default()).unwrap_err();
    assert!(e.to_string().contains("smp"), "{e}");
}

#[test]
fn default_log_goes_to_a_fresh_file() {
    let qemu = fake_qemu("deflog", &print_tap(GOOD_TAP));
    let s = Scenario::new("deflog").qemu(qemu);
    let a = run(&s, &kernel("deflog"), &RunOptions::default()).unwrap();
    let b = run(&s, &kernel("deflog"), &RunOptions::default()).unwrap();
    assert_ne!(a.log_path, b.log_path);
    assert!(a.console().contains("TAP version 14"));
    let _ = fs::remove_file(&a.log_path);
    let _ = fs::remove_file(&b.log_path);
}

fn runner(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_qemu-runner"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn binary_exit_codes() {
    let k = kernel("bin");
    let k = k.to_str().unwrap();
    let log = dir("bin").join("console.log");
    let log = log.to_str().unwrap();

    let pass = fake_qemu("bin-pass", &print_tap(GOOD_TAP));
    let (code, out, err) = runner(&["--qemu", pass.to_str().unwrap(), "--log", log, k]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok 2 - boot.memory"), "console echoed: {out}");
    assert!(err.contains("PASS"), "{err}");

    let fail = fake_qemu("bin-fail", &format!("{}\nexit 1", print_tap(GOOD_TAP)));
    let (code, out, err) = runner(&["--quiet", "--qemu", fail.to_str().unwrap(), "--log", log, k]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty(), "quiet: {out}");
    assert!(err.contains("QEMU exit status 1"), "{err}");
    assert!(
        err.contains("ok 2 - boot.memory"),
        "console shown on FAIL: {err}"
    );

    let (code, _, err) = runner(&["--bogus", k]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown option '--bogus'"), "{err}");
    let (code, _, err) = runner(&[]);
    assert_eq!(code, 2);
    assert!(err.contains("missing KERNEL"), "{err}");
    let (code, _, err) = runner(&["/nonexistent/zvtest.elf"]);
    assert_eq!(code, 2);
    assert!(err.contains("not found"), "{err}");
    let (code, out, _) = runner(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("usage: qemu-runner"));
}

#[test]
fn binary_default_log_sits_next_to_the_kernel() {
    let k = kernel("binlog");
    let pass = fake_qemu("binlog", &print_tap(GOOD_TAP));
    let (code, out, err) = runner(&[
        "--quiet",
        "--qemu",
        pass.to_str().unwrap(),
        k.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let log = dir("binlog").join("zvtest.elf.console.log");
    assert!(fs::read_to_string(log).unwrap().contains("TAP version 14"));
}

/// "QEMU" for hot plug: [`qmp_script`] with (or without) the ready line.
fn hotplug_script(test: &str, ready: bool) -> String {
    let lines: &[&str] = if ready {
        &["# zvtest: hotplug ready"]
    } else {
        &[]
    };
    qmp_script(test, lines)
}

/// Shell for "QEMU"'s QMP side: its end of the socket pair (`fd=N`, kept
/// across exec by the runner) bridged by two `cat`s to the FIFOs `qmp-in`
/// and `qmp-out` in `d`, announced by the file `qmp-path`.
fn qmp_bridge(d: &impl std::fmt::Display) -> String {
    format!(
        "for a in \"$@\"; do case \"$a\" in socket,id=zvtest-qmp,*) f=\"${{a#*,fd=}}\"; n=\"${{f%%,*}}\";; esac; done\n\
         if [ -n \"$n\" ]; then mkfifo {d}/qmp-in {d}/qmp-out; \
         bash -c 'cat <&\"$0\" >\"$1\" 2>/dev/null & cat \"$2\" >&\"$0\" 2>/dev/null &' \"$n\" {d}/qmp-in {d}/qmp-out; \
         : > {d}/qmp-path; fi"
    )
}

/// "QEMU" for QMP: bridges its end of the QMP socket pair (`fd=N`) to two
/// FIFOs, `qmp-in` (from the runner) and `qmp-out` (to it), says so with
/// the file `qmp-path`, waits for the test to open them (file
/// `listening`), prints TAP with `lines` in it, then, if there were any,
/// waits for the test to finish its QMP script (file `done`) before the rest.
fn qmp_script(test: &str, lines: &[&str]) -> String {
    let d = dir(test);
    for f in ["qmp-path", "listening", "done", "qmp-in", "qmp-out"] {
        let _ = fs::remove_file(d.join(f));
    }
    let d = d.display();
    let wait = |f: &str| {
        format!("i=0; while [ ! -f {d}/{f} ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done")
    };
    let echo: String = lines
        .iter()
        .map(|l| format!("printf '%s\\n' '{}'\n", l.replace('\'', "'\\''")))
        .collect();
    format!(
        "{}\n{}\n\
         echo 'TAP version 14'\necho '1..1'\n{echo}{}\n\
         echo 'ok 1 - css.hotplug'\necho '1 passed, 0 failed, 0 skipped'",
        qmp_bridge(&d),
        wait("listening"),
        if lines.is_empty() {
            String::new()
        } else {
            wait("done")
        },
    )
}

/// A FIFO read without blocking past a deadline, a line at a time.
struct FifoLines {
    file: fs::File,
    buf: Vec<u8>,
    deadline: Instant,
}

impl FifoLines {
    fn open(path: &std::path::Path, deadline: Instant) -> Self {
        use std::os::unix::fs::OpenOptionsExt;
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        FifoLines {
            file,
            buf: Vec::new(),
            deadline,
        }
    }

    /// The next line, or None at end of file; panics at the deadline.
    fn next_line(&mut self) -> Option<String> {
        use std::io::Read;
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&line).trim_end().to_string());
            }
            let mut chunk = [0u8; 4096];
            match self.file.read(&mut chunk) {
                Ok(0) if !self.buf.is_empty() || Instant::now() >= self.deadline => return None,
                // No writer yet, or none right now: wait.
                Ok(0) => std::thread::sleep(Duration::from_millis(10)),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        Instant::now() < self.deadline,
                        "no QMP line from the runner"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("reading the QMP FIFO: {e}"),
            }
        }
    }
}

/// Opens a FIFO for writing once its reader is there, within the deadline.
fn fifo_writer(path: &std::path::Path, deadline: Instant) -> fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    loop {
        match fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => return f,
            // ENXIO: no reader yet.
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
}

/// Plays QEMU's QMP side: greeting, then for each received line the next
/// scripted reply. Returns the lines received.
fn qmp_server(test: &str, replies: Vec<&'static str>) -> std::thread::JoinHandle<Vec<String>> {
    use std::io::Write;
    let d = dir(test);
    std::thread::spawn(move || {
        let t = Instant::now();
        while !d.join("qmp-path").exists() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "no QMP socket pair end (fd=) seen"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let deadline = t + Duration::from_secs(30);
        let mut lines = FifoLines::open(&d.join("qmp-in"), deadline);
        let mut w = fifo_writer(&d.join("qmp-out"), deadline);
        fs::write(d.join("listening"), "").unwrap();
        writeln!(
            w,
            "{{\"QMP\": {{\"version\": {{}}, \"capabilities\": []}}}}\r"
        )
        .unwrap();
        let mut got = Vec::new();
        for reply in replies {
            let Some(line) = lines.next_line() else { break };
            got.push(line);
            write!(w, "{reply}").unwrap();
        }
        fs::write(d.join("done"), "").unwrap();
        got
    })
}

fn hotplug_scenario(name: &str) -> Scenario {
    Scenario::new(name)
        .virtio_ccw("virtio-blk-ccw", "fe.0.0001", "blk")
        .hot_plug("virtio-rng-ccw", "fe.0.0007", "rng")
        .hot_unplug("ccw-fe.0.0001")
        .timeout(Duration::from_secs(20))
}

#[test]
fn hotplug_steps_run_after_the_ready_line() {
    let script = hotplug_script("hp-ok", true);
    let server = qmp_server(
        "hp-ok",
        vec![
            "{\"return\": {}}\r\n",
            "{\"return\": {}}\r\n",
            "{\"return\": {}}\r\n{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"ccw-fe.0.0001\", \"path\": \"/machine/peripheral/ccw-fe.0.0001\"}}\r\n",
        ],
    );
    let o = boot("hp-ok", &script, hotplug_scenario("hp-ok"));
    let got = server.join().unwrap();
    assert!(o.passed(), "{}", o.failure_report());
    assert!(o.hotplug_done);
    assert_eq!(
        got,
        [
            r#"{"execute": "qmp_capabilities"}"#,
            r#"{"execute": "device_add", "arguments": {"driver": "virtio-rng-ccw", "id": "ccw-fe.0.0007", "devno": "fe.0.0007"}}"#,
            r#"{"execute": "device_del", "arguments": {"id": "ccw-fe.0.0001"}}"#,
        ]
    );
    let qmp_arg = o
        .command
        .iter()
        .position(|a| a == "-chardev")
        .expect("-chardev");
    let qmp_arg = qmp_arg
        + 1
        + o.command[qmp_arg + 1..]
            .iter()
            .position(|a| a == "-chardev")
            .expect("a second -chardev");
    assert!(o.command[qmp_arg + 1].starts_with("socket,id=zvtest-qmp,fd="));
    assert!(o.command[qmp_arg + 1].ends_with(",server=off"));
    assert!(o
        .command
        .windows(2)
        .any(|w| w == ["-mon", "chardev=zvtest-qmp,mode=control"]));
    let append = o.command.iter().position(|a| a == "-append").unwrap();
    assert_eq!(
        o.command[append + 1],
        "expect-mem=128M expect-cpus=1 qemu-version=7.2 devices=fe.0.0001:blk hotplug=+fe.0.0007:rng,-fe.0.0001:blk"
    );
    // The QMP traffic is in the console log.
    let console = o.console();
    assert!(
        console.contains("[qmp] -> {\"execute\": \"device_del\""),
        "{console}"
    );
    assert!(console.contains("[qmp] <- {\"return\": {}}"), "{console}");
}

#[test]
fn hotplug_qmp_errors_fail_the_run() {
    let script = hotplug_script("hp-err", true);
    let server = qmp_server(
        "hp-err",
        vec![
            "{\"return\": {}}\n",
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Device fe.0.0007 already exists\"}}\n",
            "{\"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device 'ccw-fe.0.0001' not found\"}}\n",
        ],
    );
    let o = boot("hp-err", &script, hotplug_scenario("hp-err"));
    server.join().unwrap();
    assert!(!o.passed());
    assert!(!o.hotplug_done);
    assert_eq!(
        o.verdict.reasons,
        [
            "QMP device_add ccw-fe.0.0007: Device fe.0.0007 already exists",
            "QMP device_del ccw-fe.0.0001: Device 'ccw-fe.0.0001' not found",
        ]
    );
}

#[test]
fn hotplug_without_the_ready_line_fails() {
    let script = hotplug_script("hp-never", false);
    let server = qmp_server("hp-never", vec!["{\"return\": {}}\n"]);
    let o = boot("hp-never", &script, hotplug_scenario("hp-never"));
    server.join().unwrap();
    assert!(!o.passed());
    assert!(!o.hotplug_done);
    assert_eq!(o.verdict.reasons.len(), 1, "{:?}", o.verdict.reasons);
    assert!(
        o.verdict.reasons[0]
            .contains("never showed '# zvtest: hotplug ready' (2 steps left undone)"),
        "{:?}",
        o.verdict.reasons
    );
}

const READY: &str = "# zvtest: config-change ready";
const BALLOON: &str = r#"{"execute": "balloon", "arguments": {"value": 67108864}}"#;
const STOP: &str = r#"{"execute": "stop"}"#;

fn line_command_scenario(name: &str) -> Scenario {
    Scenario::new(name)
        .qmp_on_line(READY, BALLOON)
        .qmp_on_line("# zvtest: later", STOP)
        .timeout(Duration::from_secs(20))
}

#[test]
fn qmp_commands_run_once_on_their_lines() {
    // The ready line twice: the balloon command goes once.
    let script = qmp_script("qmp-lines", &[READY, READY, "# zvtest: later  "]);
    let server = qmp_server(
        "qmp-lines",
        vec![
            "{\"return\": {}}\r\n",
            "{\"return\": {}}\r\n",
            "{\"return\": {}}\r\n",
        ],
    );
    let o = boot("qmp-lines", &script, line_command_scenario("qmp-lines"));
    let got = server.join().unwrap();
    assert!(o.passed(), "{}", o.failure_report());
    assert!(o.qmp_commands_done);
    assert!(!o.hotplug_done);
    assert_eq!(got, [r#"{"execute": "qmp_capabilities"}"#, BALLOON, STOP]);
    assert!(o
        .command
        .iter()
        .any(|a| a.starts_with("socket,id=zvtest-qmp,fd=")));
    // No word on the firmware's command line.
    assert_eq!(
        append_of(&o),
        "expect-mem=128M expect-cpus=1 qemu-version=7.2"
    );
    // The command follows its line in the console log.
    let console = o.console();
    let line = console.find(READY).expect("ready line");
    let sent = console
        .find(&format!("[qmp] -> {BALLOON}"))
        .unwrap_or_else(|| panic!("{console}"));
    assert!(line < sent, "{console}");
}

#[test]
fn qmp_command_errors_and_missing_lines_fail_the_run() {
    let script = qmp_script("qmp-lines-err", &[READY]);
    let server = qmp_server(
        "qmp-lines-err",
        vec![
            "{\"return\": {}}\n",
            "{\"error\": {\"class\": \"DeviceNotActive\", \"desc\": \"No balloon device has been activated\"}}\n",
        ],
    );
    let o = boot(
        "qmp-lines-err",
        &script,
        line_command_scenario("qmp-lines-err"),
    );
    server.join().unwrap();
    assert!(!o.passed());
    assert!(!o.qmp_commands_done);
    assert_eq!(
        o.verdict.reasons,
        [
            format!("QMP {BALLOON} on '{READY}': No balloon device has been activated"),
            format!("QMP {STOP} not sent: the console never showed '# zvtest: later'"),
        ]
    );
}

#[test]
fn malformed_qmp_commands_are_refused_before_qemu_starts() {
    let s = Scenario::new("qmp-bad")
        .qemu("/nonexistent/qemu")
        .qmp_on_line(READY, "{\"execute\": ");
    let e = run(&s, &kernel("qmp-bad"), &RunOptions::default()).unwrap_err();
    assert!(e.to_string().contains("not JSON"), "{e}");
}

/// Prints its arguments as `# arg:` diagnostics and passes; counts its
/// `--version` calls in the file `versions`, answering with `line`.
fn version_script(test: &str, line: &str) -> PathBuf {
    let d = dir(test);
    let _ = fs::remove_file(d.join("versions"));
    script(
        test,
        &format!(
            "if [ \"$1\" = --version ]; then echo x >> {}/versions; printf '%s\\n' '{line}'; exit 0; fi\n\
             for a in \"$@\"; do echo \"# arg: $a\"; done\n{}",
            d.display(),
            print_tap(GOOD_TAP)
        ),
    )
}

fn append_of(o: &Run) -> &str {
    let at = o.command.iter().position(|a| a == "-append").unwrap();
    &o.command[at + 1]
}

#[test]
fn qemu_version_is_detected_once_per_binary() {
    let qemu = version_script(
        "version",
        "QEMU emulator version 9.1.3 (Debian 1:9.1.3+ds-1)",
    );
    let s = Scenario::new("version").qemu(&qemu).append("only=hcall");
    let opts = RunOptions::default().log(dir("version").join("console.log"));
    let a = run(&s, &kernel("version"), &opts).unwrap();
    let b = run(
        &s.clone().diag288(Diag288::Present),
        &kernel("version"),
        &opts,
    )
    .unwrap();
    assert!(a.passed(), "{}", a.failure_report());
    assert_eq!(
        append_of(&a),
        "expect-mem=128M expect-cpus=1 qemu-version=9.1 only=hcall"
    );
    assert_eq!(
        append_of(&b),
        "expect-mem=128M expect-cpus=1 qemu-version=9.1 diag288=present only=hcall"
    );
    assert!(b.command.windows(2).any(|w| w == ["-device", "diag288"]));
    let v = a.qemu_version.unwrap();
    assert_eq!((v.major, v.minor, v.micro), (9, 1, 3));
    assert_eq!(b.qemu_version, Some(v));
    // The firmware saw the word: the fake QEMU echoes its arguments.
    assert!(a
        .tap
        .diagnostics
        .iter()
        .any(|l| l == "arg: expect-mem=128M expect-cpus=1 qemu-version=9.1 only=hcall"));
    assert_eq!(detect_qemu_version(&qemu), Ok(v));
    let asked = fs::read_to_string(dir("version").join("versions")).unwrap();
    assert_eq!(asked.lines().count(), 1, "asked once: {asked:?}");
}

#[test]
fn undetectable_qemu_version_fails_the_run() {
    let qemu = version_script("noversion", "qemu-system-s390x: something else");
    let s = Scenario::new("noversion").qemu(&qemu);
    let e = run(&s, &kernel("noversion"), &RunOptions::default()).unwrap_err();
    let e = e.to_string();
    assert!(e.contains("cannot tell the version of QEMU"), "{e}");
    assert!(e.contains("'qemu-system-s390x: something else'"), "{e}");
    assert!(e.contains(&qemu.display().to_string()), "{e}");
    // The binary says so and exits 1.
    let k = kernel("noversion");
    let (code, _, err) = runner(&[
        "--quiet",
        "--qemu",
        qemu.to_str().unwrap(),
        k.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot tell the version of QEMU"), "{err}");
    // A version that fails or hangs is no better.
    let failing = script("version-exit", "echo 'QEMU emulator version 7.2.0'; exit 3");
    let e = run(
        &Scenario::new("x").qemu(&failing),
        &k,
        &RunOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("--version failed"), "{e}");
}

#[test]
fn a_claimed_or_omitted_version_asks_nobody() {
    let qemu = version_script("claim", "not a version");
    let opts = RunOptions::default().log(dir("claim").join("console.log"));
    let o = run(
        &Scenario::new("claim")
            .qemu(&qemu)
            .claim_qemu_version("10.0"),
        &kernel("claim"),
        &opts,
    )
    .unwrap();
    assert!(o.passed(), "{}", o.failure_report());
    assert_eq!(
        append_of(&o),
        "expect-mem=128M expect-cpus=1 qemu-version=10.0"
    );
    assert_eq!(o.qemu_version, Some(QemuVersion::new(10, 0)));
    let o = run(
        &Scenario::new("omit")
            .qemu(&qemu)
            .qemu_version(VersionWord::Omit),
        &kernel("claim"),
        &opts,
    )
    .unwrap();
    assert_eq!(append_of(&o), "expect-mem=128M expect-cpus=1");
    assert_eq!(o.qemu_version, None);
    assert!(
        !dir("claim").join("versions").exists(),
        "--version was asked"
    );
}

#[test]
fn data_dir_reaches_qemu() {
    let script = format!(
        "for a in \"$@\"; do echo \"# arg: $a\"; done\n{}",
        print_tap(GOOD_TAP)
    );
    let o = boot(
        "datadir",
        &script,
        Scenario::new("datadir").data_dir("/opt/qemu-10.0/usr/share/qemu"),
    );
    let args: Vec<&str> = o
        .tap
        .diagnostics
        .iter()
        .filter_map(|l| l.strip_prefix("arg: "))
        .collect();
    assert!(
        args.windows(2)
            .any(|w| w == ["-L", "/opt/qemu-10.0/usr/share/qemu"]),
        "{args:?}"
    );
}

/// "QEMU" for the watchdog: publishes its QMP socket path, waits for the
/// test's QMP server, prints the expiry check as `result` once the server
/// has sent its events (file `done`), and passes or fails with it.
fn watchdog_script(test: &str, result: &str) -> String {
    let d = dir(test);
    for f in ["qmp-path", "listening", "done", "qmp-in", "qmp-out"] {
        let _ = fs::remove_file(d.join(f));
    }
    let d = d.display();
    let wait = |f: &str| {
        format!("i=0; while [ ! -f {d}/{f} ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done")
    };
    format!(
        "{}\n{}\n\
         echo 'TAP version 14'\necho '1..1'\necho '# zvtest: diag288 armed for 15 s'\n{}\n\
         echo '{result}'\necho '1 passed, 0 failed, 0 skipped'",
        qmp_bridge(&d),
        wait("listening"),
        wait("done"),
    )
}

#[test]
fn watchdog_event_is_recorded() {
    let script = watchdog_script("wd-ok", "ok 1 - hcall.diag288.expiry");
    let server = qmp_server(
        "wd-ok",
        vec![
            "{\"return\": {}}\r\n{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"WATCHDOG\", \"data\": {\"action\": \"inject-nmi\"}}\r\n",
        ],
    );
    let s = Scenario::new("wd-ok")
        .diag288(Diag288::Expire)
        .timeout(Duration::from_secs(20));
    let o = boot("wd-ok", &script, s);
    let got = server.join().unwrap();
    assert!(o.passed(), "{}", o.failure_report());
    assert_eq!(got, [r#"{"execute": "qmp_capabilities"}"#]);
    let wd: Vec<_> = o.events("WATCHDOG").collect();
    assert_eq!(wd.len(), 1, "{:?}", o.qmp_events);
    assert_eq!(wd[0].field("action"), Some("inject-nmi"));
    assert!(wd[0].after <= o.duration);
    assert!(!o.hotplug_done, "no hot plug here");
    let has = |pair: [&str; 2]| o.command.windows(2).any(|w| w == pair);
    assert!(has(["-device", "diag288"]));
    assert!(has(["-action", "watchdog=inject-nmi"]));
    assert!(o
        .command
        .iter()
        .any(|a| a.starts_with("socket,id=zvtest-qmp,fd=")));
    assert!(
        append_of(&o).contains(" diag288=expire"),
        "{}",
        append_of(&o)
    );
    assert!(o.console().contains("[qmp] <- {\"timestamp\""));
}

#[test]
fn watchdog_expiry_without_the_event_fails() {
    let script = watchdog_script("wd-none", "ok 1 - hcall.diag288.expiry");
    let server = qmp_server("wd-none", vec!["{\"return\": {}}\r\n"]);
    let s = Scenario::new("wd-none")
        .diag288(Diag288::Expire)
        .timeout(Duration::from_secs(20));
    let o = boot("wd-none", &script, s);
    server.join().unwrap();
    assert!(!o.passed());
    assert_eq!(
        o.verdict.reasons,
        ["hcall.diag288.expiry passed but QEMU sent no WATCHDOG event over QMP"]
    );
    // A skipped expiry check needs no event.
    let script = watchdog_script(
        "wd-skip",
        "ok 1 - hcall.diag288.expiry # SKIP no diag288=expire on the command line",
    );
    let server = qmp_server("wd-skip", vec!["{\"return\": {}}\r\n"]);
    let s = Scenario::new("wd-skip")
        .diag288(Diag288::Expire)
        .timeout(Duration::from_secs(20));
    let o = boot(
        "wd-skip",
        &script.replace(
            "1 passed, 0 failed, 0 skipped",
            "0 passed, 0 failed, 1 skipped",
        ),
        s,
    );
    server.join().unwrap();
    assert!(o.passed(), "{}", o.failure_report());
}

#[test]
fn watching_events_of_a_qemu_that_ends_at_once_is_no_error() {
    let o = boot(
        "events-fast",
        &print_tap(GOOD_TAP),
        Scenario::new("events-fast").qmp_events(true),
    );
    assert!(o.passed(), "{}", o.failure_report());
    assert!(o.qmp_events.is_empty());
}

/// Runs the runner binary to its end and returns its exit code and its
/// peak resident memory in KiB (from wait4, for that process alone).
#[allow(clippy::zombie_processes)] // reaped by wait4, for its rusage
fn runner_peak_rss(args: &[&str]) -> (Option<i32>, i64) {
    let child = Command::new(env!("CARGO_BIN_EXE_qemu-runner"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    let mut status = 0;
    // SAFETY: all-zero is a valid rusage (plain integers).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `status` and `usage` are valid for writes; `pid` is our
    // child, reaped here instead of by `Child::wait`.
    let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(got, pid, "wait4: {}", std::io::Error::last_os_error());
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, usage.ru_maxrss)
}

/// 40 MiB of console (or 375,000 results) in three shapes: the runner
/// must stay small (5-10 MiB; the 32 MiB limit leaves room for the C
/// library's allocator). Old behaviour: each shape was kept (up to 10,000
/// lines of 64 KiB, every result), about 260-280 MB for 256 MiB, so at
/// least the flood itself here, more than the limit.
#[test]
fn a_console_flood_keeps_memory_bounded() {
    const MIB: usize = 1 << 20;
    let shapes = [
        (
            "flood-nonl",
            format!("head -c {} /dev/zero | tr '\\0' x", 40 * MIB),
        ),
        (
            "flood-hash",
            format!("yes \"$(printf '#%079998d' 0)\" | head -c {}", 40 * MIB),
        ),
        (
            "flood-ok",
            "seq -f 'ok %.0f - check.name' 1 375000".to_string(),
        ),
    ];
    for (test, flood) in shapes {
        let qemu = fake_qemu(test, &format!("echo 'TAP version 14'\n{flood}"));
        let log = dir(test).join("console.log");
        let (code, peak_kib) = runner_peak_rss(&[
            "--quiet",
            "--timeout",
            "300",
            "--qemu",
            qemu.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
            kernel(test).to_str().unwrap(),
        ]);
        assert_eq!(code, Some(1), "{test}");
        assert!(peak_kib < 32 * 1024, "{test}: peak RSS {peak_kib} KiB");
        let size = fs::metadata(&log).unwrap().len();
        assert!(size < (32 << 20) + (128 << 10), "{test}: log {size} bytes");
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{test}: peak RSS {peak_kib} KiB, log {size} bytes");
    }
}

#[test]
fn the_end_of_a_flooded_console_is_judged_and_shown() {
    // 40 MB of diagnostics between the results: the log stops at 32 MiB,
    // but the summary line after the flood is judged and shown.
    let script = "echo 'TAP version 14'\necho '1..2'\necho 'ok 1 - boot.vectors'\n\
                  yes \"$(printf '#%07999d' 0)\" | head -n 5000\n\
                  echo 'ok 2 - boot.memory'\necho '2 passed, 0 failed, 0 skipped'\n";
    let o = boot("flood-tail", script, Scenario::new("flood-tail"));
    assert!(o.passed(), "{}", o.failure_report());
    assert_eq!(o.tap.results.len(), 2);
    let size = fs::metadata(&o.log_path).unwrap().len();
    assert!(size < (32 << 20) + (128 << 10), "log {size} bytes");
    let tail = o.console_tail(1000);
    assert!(
        tail.ends_with("ok 2 - boot.memory\n2 passed, 0 failed, 0 skipped\n"),
        "{tail}"
    );
    // Old behaviour: the log ended at the cut, 8 MB before the summary.
    let console = o.console();
    assert!(console.contains("[zvtest: console log cut at 33554432 bytes]"));
    assert!(console.contains(" bytes of console not logged; the last "));
    // A failing run's report ends with the console's end too.
    let o = boot(
        "flood-tail-fail",
        &format!("{script}exit 1"),
        Scenario::new("flood-tail-fail"),
    );
    let report = o.failure_report();
    assert!(
        report.ends_with("2 passed, 0 failed, 0 skipped\n"),
        "{}",
        &report[report.len().saturating_sub(300)..]
    );
}

#[test]
fn long_lines_are_cut_not_split() {
    // A piece of a long line used to come as a line of its own, so
    // "not ok" in its middle counted as a result.
    let pad = "x".repeat(qemu_runner::run::MAX_LINE - 2);
    let script = format!(
        "{}\nprintf '# %s' '{pad}'; echo 'not ok 3 - ghost'",
        print_tap(GOOD_TAP)
    );
    let o = boot("cut", &script, Scenario::new("cut"));
    assert_eq!(o.tap.results.len(), 2, "{:?}", o.tap.results);
    assert_eq!(o.tap.dropped.cut_lines, 1);
    assert!(!o.passed());
    assert!(
        o.verdict
            .reasons
            .iter()
            .any(|r| r.contains("bytes long: cut after 16384")),
        "{:?}",
        o.verdict.reasons
    );
}

#[test]
fn no_console_output_at_all_says_the_image_did_not_start() {
    let scenario = Scenario::new("silent").timeout(Duration::from_secs(1));
    let o = boot("silent", "exec sleep 60", scenario);
    assert_eq!(
        o.verdict.reasons,
        ["no console output at all in 1 s: the image did not start \
          (not a zvtest image, wrong machine?)"]
    );
    // The binary does not suggest the firmware is only slow.
    let qemu = fake_qemu("silent-bin", "exec sleep 60");
    let k = kernel("silent-bin");
    let log = dir("silent-bin").join("console.log");
    let (code, _, err) = runner(&[
        "--quiet",
        "--timeout",
        "1",
        "--qemu",
        qemu.to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
        k.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("the image did not start"), "{err}");
    assert!(!err.contains("only slow"), "{err}");
    // Slow but talking: the hint stays.
    let qemu = fake_qemu("slow-bin", "echo 'TAP version 14'\nexec sleep 60");
    let (_, _, err) = runner(&[
        "--quiet",
        "--timeout",
        "1",
        "--qemu",
        qemu.to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
        k.to_str().unwrap(),
    ]);
    assert!(err.contains("only slow"), "{err}");
}

const PARTIAL_TAP: &str = "TAP version 14\n# zvtest 0.1.0\n1..2\nok 1 - boot.vectors";

#[test]
fn exit_0_after_a_partial_report_fails_and_says_why() {
    // What QEMU does on SIGTERM: says so on stderr, exits 0.
    let script = format!(
        "{}\necho 'qemu-system-s390x: terminating on signal 15 from pid 4242 (kill)' >&2\nexit 0",
        print_tap(PARTIAL_TAP)
    );
    let o = boot("cut-signal", &script, Scenario::new("cut-signal"));
    assert_eq!(o.exit, Exit::Code(0));
    assert!(!o.passed());
    assert_eq!(
        o.verdict.reasons,
        [
            "plan 1..2 but 1 results",
            "no summary line although QEMU exited 0: the report is cut off, so QEMU was \
             ended from outside the firmware; QEMU says: qemu-system-s390x: terminating \
             on signal 15 from pid 4242 (kill)"
        ]
    );
    // Silently (QMP quit, system_reset under -no-reboot, a watchdog reset).
    let o = boot(
        "cut-quiet",
        &format!("{}\nexit 0", print_tap(PARTIAL_TAP)),
        Scenario::new("cut-quiet"),
    );
    assert!(!o.passed());
    assert!(
        o.verdict.reasons[1].ends_with(
            "likely a signal to QEMU (SIGTERM, SIGINT, SIGHUP), a QMP quit or system_reset \
             (-no-reboot turns a reset into an exit) or a watchdog reset"
        ),
        "{:?}",
        o.verdict.reasons
    );
}

const FAILED_TAP: &str = "TAP version 14\n1..2\nok 1 - boot.vectors\nnot ok 2 - inject.fail\n\
                          1 passed, 1 failed, 0 skipped";

/// QEMU's stderr with `-d guest_errors`: noise, then the crash and its PSW.
fn crash_stderr(address: u64) -> String {
    format!(
        "for i in 1 2 3; do echo \"Invalid read at addr 0x8100000, size 4, region '(null)', reason: rejected\" >&2; done\n\
         echo 'Guest crashed on cpu 0: disabled-wait' >&2\n\
         echo 'PSW: 0x0002000180000000 0x{address:016x}' >&2\n\
         echo 'Invalid write at addr 0x0' >&2\n"
    )
}

/// A run whose QEMU prints a failing report and the guest's disabled wait,
/// then does `then` (a shell command) instead of exiting, with `grace` as
/// the runner's exit grace.
fn after_the_wait(test: &str, then: &str, grace: Duration, scenario: Scenario) -> Run {
    let script = format!(
        "{}\n{}{then}",
        print_tap(FAILED_TAP),
        crash_stderr(0x0bad_0002)
    );
    let qemu = fake_qemu(test, &script);
    let opts = RunOptions::default()
        .log(dir(test).join("console.log"))
        .exit_grace(grace);
    run(&scenario.qemu(qemu), &kernel(test), &opts).expect("run")
}

/// QEMU 7.2 and 10.0 were seen to hang in their own exit after the guest's
/// disabled wait (a QMP command coming in at that moment): the run ends
/// the exit grace after the wait PSW, with the verdict the TAP and PSW
/// give and the hang as a reason, not at the scenario's timeout.
#[test]
fn a_qemu_hanging_after_the_disabled_wait_is_killed_after_the_grace() {
    let grace = Duration::from_millis(300);
    let scenario = Scenario::new("hung-exit").timeout(Duration::from_secs(30));
    let t = Instant::now();
    let o = after_the_wait("hung-exit", "exec sleep 60", grace, scenario);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(o.exit, Exit::HungAfterWait(grace));
    assert_eq!(
        o.verdict.reasons,
        [
            "QEMU did not exit after it reported the guest's disabled wait, idle for 0.3 s \
             (hung in its own exit; killed)",
            "not ok 2 - inject.fail",
        ],
        "{}",
        o.failure_report()
    );
}

/// A QEMU still working after the disabled wait (CPU time growing, as
/// while it frees its memory or flushes images) is no hang: it is left
/// to finish, grace after grace, and its own exit status counts.
#[test]
fn a_qemu_busy_after_the_disabled_wait_is_left_to_exit() {
    let busy = "i=0; while [ $i -lt 800000 ]; do i=$((i+1)); done\nexit 1";
    let scenario = Scenario::new("busy-exit").timeout(Duration::from_secs(30));
    let o = after_the_wait("busy-exit", busy, Duration::from_millis(200), scenario);
    assert_eq!(o.exit, Exit::Code(1), "{}", o.failure_report());
    assert!(o.duration > Duration::from_millis(400), "{:?}", o.duration);
}

/// Where QEMU is told to stay after a guest's crash (`panic=pause`), it
/// staying is no hang: only the timeout ends it.
#[test]
fn a_qemu_told_to_pause_at_the_disabled_wait_is_left_to_the_timeout() {
    let scenario = Scenario::new("paused-exit")
        .extra_args(["-action", "panic=pause"])
        .timeout(Duration::from_secs(1));
    let o = after_the_wait(
        "paused-exit",
        "exec sleep 60",
        Duration::from_millis(100),
        scenario,
    );
    assert_eq!(o.exit, Exit::TimedOut(Duration::from_secs(1)));
}

#[test]
fn the_wait_psw_on_stderr_is_checked_against_the_tap() {
    let script = format!(
        "{}\n{}exit 1",
        print_tap(FAILED_TAP),
        crash_stderr(0x0bad_0002)
    );
    let o = boot("psw-agree", &script, Scenario::new("psw-agree"));
    assert_eq!(o.wait_psw, Some((0x0002_0001_8000_0000, 0x0bad_0002)));
    assert_eq!(
        o.verdict.reasons,
        ["QEMU exit status 1", "not ok 2 - inject.fail"]
    );
    assert!(o.command.windows(2).any(|w| w == ["-d", "guest_errors"]));
    // A passing report from a crashed guest.
    let script = format!(
        "{}\n{}exit 0",
        print_tap(GOOD_TAP),
        crash_stderr(0x0dea_d006)
    );
    let o = boot("psw-pass", &script, Scenario::new("psw-pass"));
    assert_eq!(
        o.verdict.reasons,
        [
            "QEMU's wait PSW 0x0002000180000000 0x000000000dead006 (abandoned: panic) \
          does not match: the TAP says the run passed"
        ]
    );
    // Failures, but the wait says otherwise, or nothing.
    let script = format!(
        "{}\n{}exit 1",
        print_tap(FAILED_TAP),
        crash_stderr(0x0bad_0008)
    );
    let o = boot("psw-count", &script, Scenario::new("psw-count"));
    assert!(
        o.verdict.reasons[2].contains("(4 checks failed) does not match"),
        "{:?}",
        o.verdict.reasons
    );
    let o = boot(
        "psw-none",
        &format!("{}\nexit 1", print_tap(FAILED_TAP)),
        Scenario::new("psw-none"),
    );
    assert_eq!(o.wait_psw, None);
    assert!(
        o.verdict.reasons[2].contains("QEMU reported no disabled wait"),
        "{:?}",
        o.verdict.reasons
    );
    // A scenario that turns guest_errors off: nothing to check.
    let o = boot(
        "psw-off",
        &format!("{}\nexit 1", print_tap(FAILED_TAP)),
        Scenario::new("psw-off").extra_args(["-d", "unimp"]),
    );
    assert_eq!(o.verdict.reasons.len(), 2, "{:?}", o.verdict.reasons);
}

/// Whether process `pid` has ended (gone, or a zombie nobody reaped).
fn ended(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(t.elapsed() < limit, "{what} after {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// "QEMU" that cannot be stopped politely: ignores SIGTERM, SIGINT and
/// SIGHUP, writes its pid to `pid`, prints a TAP line and idles.
fn stubborn_qemu(test: &str) -> (PathBuf, PathBuf) {
    let pid = dir(test).join("pid");
    let _ = fs::remove_file(&pid);
    let qemu = fake_qemu(
        test,
        &format!(
            "trap '' TERM INT HUP\necho $$ > {}.tmp; mv {0}.tmp {0}\necho 'TAP version 14'\n\
             while :; do sleep 0.1; done",
            pid.display()
        ),
    );
    (qemu, pid)
}

fn read_pid(file: &std::path::Path) -> u32 {
    wait_for("no pid file", Duration::from_secs(10), || file.exists());
    fs::read_to_string(file).unwrap().trim().parse().unwrap()
}

/// Set in the child process of [`qemu_dies_with_a_killed_library_user`].
const CHILD_ENV: &str = "ZVTEST_RUNNER_CHILD_TEST";

/// Run only by [`qemu_dies_with_a_killed_library_user`], in a child
/// process (see [`CHILD_ENV`]): runs the stubborn QEMU from a thread of
/// its own, as a test harness does.
#[test]
#[ignore = "the child side of qemu_dies_with_a_killed_library_user"]
fn child_process_for_pdeathsig() {
    assert!(
        std::env::var_os(CHILD_ENV).is_some(),
        "run by qemu_dies_with_a_killed_library_user only"
    );
    let (qemu, _) = stubborn_qemu("pdeathsig");
    let scenario = Scenario::new("pdeathsig")
        .qemu(qemu)
        .timeout(Duration::from_secs(120));
    let k = kernel("pdeathsig");
    let t = std::thread::spawn(move || run(&scenario, &k, &RunOptions::default()));
    let _ = t.join();
}

/// A process that uses the library and is killed outright (no handler
/// can run) still takes its QEMU along: PR_SET_PDEATHSIG.
#[test]
fn qemu_dies_with_a_killed_library_user() {
    let (_, pid_file) = stubborn_qemu("pdeathsig");
    let mut user = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_for_pdeathsig",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let qemu = read_pid(&pid_file);
    assert!(!ended(qemu));
    user.kill().unwrap();
    user.wait().unwrap();
    // Old behaviour: QEMU ran on, reparented, until its own end.
    wait_for("QEMU still running", Duration::from_secs(2), || ended(qemu));
}

/// A CI cancel or Ctrl-C: the runner kills QEMU, leaves nothing behind
/// and exits 128 + the signal. Old behaviour: the runner died of the
/// signal, QEMU ran on, and the QMP socket's directory stayed in TMPDIR.
#[test]
fn signals_to_the_runner_take_qemu_along() {
    for (name, sig) in [
        ("SIGTERM", libc::SIGTERM),
        ("SIGINT", libc::SIGINT),
        ("SIGHUP", libc::SIGHUP),
    ] {
        let test = format!("signal-{name}");
        let (qemu, pid_file) = stubborn_qemu(&test);
        let tmp = dir(&test).join("tmp");
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).unwrap();
        let log = dir(&test).join("console.log");
        let runner = Command::new(env!("CARGO_BIN_EXE_qemu-runner"))
            .args([
                "--quiet",
                "--timeout",
                "120",
                // With a QMP connection, as a watchdog scenario has.
                "--diag288",
                "expire",
                "--qemu",
                qemu.to_str().unwrap(),
                "--log",
                log.to_str().unwrap(),
                kernel(&test).to_str().unwrap(),
            ])
            .env("TMPDIR", &tmp)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // QEMU is registered before the runner lets go of the registry's
        // lock, which the signal handler takes too: no wait needed.
        let qemu_pid = read_pid(&pid_file);
        let pid = libc::pid_t::try_from(runner.id()).unwrap();
        // SAFETY: kill() has no memory effects; `pid` is our running child.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
        let t = Instant::now();
        let out = runner.wait_with_output().unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{name}: {:?}",
            t.elapsed()
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(128 + sig), "{name}: {err}");
        assert!(
            err.contains(&format!("qemu-runner: {name}: stopped (1 QEMU killed)")),
            "{err}"
        );
        wait_for("QEMU still running", Duration::from_secs(2), || {
            ended(qemu_pid)
        });
        let left: Vec<_> = fs::read_dir(&tmp).unwrap().collect();
        assert!(left.is_empty(), "{name}: left behind {left:?}");
    }
}

// Scratch disks: the fake QEMU finds each image after `-drive file=` (as
// $img1, $img2, ... in order) and does to it what a run would.

const DISK_ARGS: &str = "n=0\nfor a in \"$@\"; do case \"$a\" in file=*) n=$((n+1)); \
     p=${a#file=}; p=${p%%,if=none*}; eval \"img$n=\\$p\";; esac; done\n";

const STRESS_TAP: &str = "TAP version 14
1..2
ok 1 - boot.vectors
ok 2 - blk.stress
2 passed, 0 failed, 0 skipped";

fn disk_boot(test: &str, body: &str, scenario: Scenario) -> Run {
    boot(test, &format!("{DISK_ARGS}{body}"), scenario)
}

/// An image as a complete run leaves it: pattern B in every writable stripe.
fn after_a_run(test: &str, seed: u64, size: u64) -> PathBuf {
    use zvtest_contract::disk::{fill, writable_stripes, Pattern, STRIPE};
    let p = dir(test).join("after.img");
    qemu_runner::disks::create(&p, seed, size).unwrap();
    let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
    let mut b = vec![0u8; STRIPE as usize];
    for s in writable_stripes(seed, size) {
        fill(seed, Pattern::After, s * STRIPE, &mut b);
        std::os::unix::fs::FileExt::write_all_at(&f, &b, s * STRIPE).unwrap();
    }
    p
}

/// Shell: XOR the byte at `offset` of `image` (a shell word) with 0xff.
fn flip(image: &str, offset: u64, seed: u64, size: u64, after: bool) -> String {
    let mut was = [0u8];
    zvtest_contract::disk::fill_image(seed, size, offset, after, &mut was);
    format!(
        "printf '\\{:03o}' | dd of=\"{image}\" bs=1 seek={offset} conv=notrunc 2>/dev/null",
        !was[0]
    )
}

const MIB: u64 = 1 << 20;

#[test]
fn disks_are_made_before_boot_and_verified_after() {
    let test = "disks-untouched";
    // Shows the header each image has when QEMU starts.
    let script = format!(
        "echo \"# first: $(head -c 16 \"$img1\")\"\necho \"# second: $(head -c 16 \"$img2\")\"\n{}",
        print_tap(GOOD_TAP)
    );
    let s = Scenario::new(test)
        .scratch_blk("fe.0.0001", MIB)
        .scratch_scsi("fe.0.0006", 0, 1, 2 * MIB);
    let o = disk_boot(test, &script, s);
    assert!(o.passed(), "{}", o.failure_report());
    let d = &o.tap.diagnostics;
    assert!(d.contains(&"first: zvtest-scratch/1".to_string()), "{d:?}");
    assert!(d.contains(&"second: zvtest-scratch/1".to_string()), "{d:?}");
    let lines: Vec<&str> = o.disks.iter().map(|d| d.line.as_str()).collect();
    assert_eq!(
        lines,
        [
            "disk fe.0.0001: 1048576 bytes verified (pattern A everywhere: no blk check ran)",
            "disk fe.0.0006/0/1: 2097152 bytes verified (pattern A everywhere: no scsi check ran)",
        ]
    );
    assert!(o
        .console()
        .contains("[zvtest] disk fe.0.0001: 1048576 bytes verified"));
    let append = append_of(&o);
    assert!(
        append.contains("scratch=fe.0.0001,fe.0.0006/0/1 disks=fe.0.0001:1M,fe.0.0006/0/1:2M"),
        "{append}"
    );
    // A directory the runner picked goes once every image verified clean.
    assert!(!o.disks[0].image.exists());
}

#[test]
fn a_byte_changed_during_the_run_fails_naming_it() {
    let test = "disks-flipped";
    let s = Scenario::new(test).scratch_blk("fe.0.0001", MIB);
    let seed = s.disk_seed();
    let script = format!(
        "{}\n{}",
        flip("$img1", 300_000, seed, MIB, false),
        print_tap(GOOD_TAP)
    );
    let o = disk_boot(test, &script, s);
    assert!(!o.passed());
    assert_eq!(o.verdict.reasons.len(), 1, "{:?}", o.verdict.reasons);
    let r = &o.verdict.reasons[0];
    assert!(
        r.starts_with(
            "disk fe.0.0001 (no blk check ran): 1 of 1048576 bytes differ from pattern A \
             (untouched); the first at offset 0x493e0 (300000; sector 585, stripe 4): expected 0x"
        ),
        "{r}"
    );
    assert!(r.contains("(pattern A), got 0x"), "{r}");
    // The image stays, to be looked at.
    assert!(o.disks[0].image.is_file());
    assert!(r.contains(&o.disks[0].image.display().to_string()), "{r}");
    assert!(o.failure_report().contains("offset 0x493e0"));
}

#[test]
fn a_complete_run_leaves_b_in_every_writable_stripe() {
    let test = "disks-complete";
    let s = Scenario::new(test).scratch_blk("fe.0.0001", 2 * MIB);
    let seed = s.disk_seed();
    let after = after_a_run(test, seed, 2 * MIB);
    let copy = format!("cp {} \"$img1\"\n", after.display());
    let o = disk_boot(test, &format!("{copy}{}", print_tap(STRESS_TAP)), s.clone());
    assert!(o.passed(), "{}", o.failure_report());
    let n = qemu_runner::disks::writable_count(seed, 2 * MIB);
    assert_eq!(
        o.disks[0].line,
        format!("disk fe.0.0001: 2097152 bytes verified ({n} writable stripes hold B)")
    );

    // blk.stress passed but nothing was written: the first writable stripe says so.
    let o = disk_boot(test, &print_tap(STRESS_TAP), s.clone());
    assert!(!o.passed());
    let first = zvtest_contract::disk::writable_stripes(seed, 2 * MIB)
        .next()
        .unwrap()
        * 65536;
    let r = &o.verdict.reasons[0];
    assert!(r.starts_with("disk fe.0.0001 (blk.stress passed): "), "{r}");
    assert!(
        r.contains(&format!("the first at offset {first:#x}")),
        "{r}"
    );
    assert!(r.contains("(pattern B), got"), "{r}");

    // One byte of a written stripe lost after the run.
    let at = first + 4097;
    let script = format!(
        "{copy}{}\n{}",
        flip("$img1", at, seed, 2 * MIB, true),
        print_tap(STRESS_TAP)
    );
    let o = disk_boot(test, &script, s);
    assert!(!o.passed());
    let r = &o.verdict.reasons[0];
    assert!(r.contains("1 of 2097152 bytes differ"), "{r}");
    assert!(
        r.contains(&format!(
            "offset {at:#x} ({at}; sector {}, stripe {})",
            at / 512,
            at / 65536
        )),
        "{r}"
    );
    assert!(r.contains("(pattern B), got"), "{r}");
}

#[test]
fn user_and_read_only_disks_must_be_left_alone() {
    let test = "disks-user";
    let s = Scenario::new(test)
        .scratch_blk("fe.0.0001", MIB)
        .scratch_blk("fe.0.0002", qemu_runner::Disk::new(MIB).user())
        .scratch_blk("fe.0.0003", qemu_runner::Disk::new(MIB).read_only());
    let seed = s.disk_seed();
    let after = after_a_run(test, seed, MIB);
    // Pattern B written to all three.
    let script = format!(
        "for i in \"$img1\" \"$img2\" \"$img3\"; do cp {} \"$i\"; done\necho \"# args: $*\"\n{}",
        after.display(),
        print_tap(STRESS_TAP)
    );
    let o = disk_boot(test, &script, s);
    assert!(!o.passed());
    let append = append_of(&o);
    assert!(append.contains(" scratch=fe.0.0001 "), "{append}");
    assert!(append.contains("fe.0.0003:1M:ro"), "{append}");
    let args = o
        .tap
        .diagnostics
        .iter()
        .find(|l| l.starts_with("args: "))
        .unwrap();
    assert!(
        args.contains("id=disk-fe.0.0003,format=raw,cache=writeback,readonly=on"),
        "{args}"
    );
    assert!(o.disks[0].reason.is_none(), "{:?}", o.disks[0]);
    let reasons = &o.verdict.reasons;
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].starts_with("disk fe.0.0002 (not named scratch): "),
        "{reasons:?}"
    );
    assert!(
        reasons[1].starts_with("disk fe.0.0003 (read-only): "),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("(pattern A), got"), "{reasons:?}");
}

#[test]
fn an_incomplete_run_is_still_verified() {
    let test = "disks-incomplete";
    let s = Scenario::new(test).scratch_blk("fe.0.0001", MIB);
    let seed = s.disk_seed();
    let after = after_a_run(test, seed, MIB);
    let cut = "TAP version 14\n1..2\nok 1 - boot.vectors\nBail out! panic";
    // Every writable stripe written (some could have been): nothing to add.
    let script = format!(
        "cp {} \"$img1\"\n{}\nexit 1",
        after.display(),
        print_tap(cut)
    );
    let o = disk_boot(test, &script, s.clone());
    assert!(!o.passed());
    assert!(o.disks[0].reason.is_none(), "{:?}", o.disks[0]);
    assert!(
        o.disks[0].line.contains("the run was incomplete"),
        "{}",
        o.disks[0].line
    );
    // A write outside the writable stripes is caught all the same.
    let outside = (1..16u64)
        .find(|&s| !zvtest_contract::disk::writable_stripe(seed, MIB, s))
        .unwrap()
        * 65536
        + 10;
    let script = format!(
        "{}\n{}\nexit 1",
        flip("$img1", outside, seed, MIB, false),
        print_tap(cut)
    );
    let o = disk_boot(test, &script, s);
    let r = o
        .verdict
        .reasons
        .iter()
        .find(|r| r.starts_with("disk "))
        .unwrap();
    assert!(r.contains(&format!("offset {outside:#x}")), "{r}");
    assert!(r.ends_with("(the run was incomplete)"), "{r}");
}

/// A peer that serves nothing: it adds an argument, collects the console
/// lines it is told, may ask for a network namespace, and fails the run
/// when it never saw its line.
#[derive(Debug)]
struct LinePeer {
    want: &'static str,
    netns: bool,
}

struct LinePeerRunning {
    want: &'static str,
    seen: bool,
    netns: Option<(
        PathBuf,
        std::thread::JoinHandle<()>,
        std::sync::mpsc::Sender<()>,
    )>,
    dir: PathBuf,
}

impl qemu_runner::PeerSpec for LinePeer {
    fn name(&self) -> String {
        "lines".into()
    }
    fn start(&self, ctx: &qemu_runner::PeerContext) -> std::io::Result<Box<dyn qemu_runner::Peer>> {
        assert!(ctx.dir.is_dir(), "the peer's socket directory exists");
        assert!(ctx.deadline > Instant::now());
        // A thread in a network namespace of its own, alive until finish.
        let netns = if self.netns {
            let (path_tx, path_rx) = std::sync::mpsc::channel();
            let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
            let h = std::thread::spawn(move || {
                // SAFETY: unshare() moves only this thread to a new namespace.
                let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
                let tid = std::fs::read_link("/proc/thread-self").ok();
                let _ = path_tx.send(
                    (r == 0)
                        .then_some(tid)
                        .flatten()
                        .map(|t| PathBuf::from("/proc").join(t).join("ns/net")),
                );
                let _ = stop_rx.recv_timeout(Duration::from_secs(30));
            });
            match path_rx.recv().unwrap() {
                Some(p) => Some((p, h, stop_tx)),
                None => {
                    return Err(std::io::Error::other(
                        "cannot unshare the network namespace",
                    ))
                }
            }
        } else {
            None
        };
        Ok(Box::new(LinePeerRunning {
            want: self.want,
            seen: false,
            netns,
            dir: ctx.dir.clone(),
        }))
    }
}

impl qemu_runner::Peer for LinePeerRunning {
    fn qemu_args(&self) -> Vec<String> {
        vec![
            "-chardev".into(),
            format!("socket,path={}/p0", self.dir.display()),
        ]
    }
    fn netns(&self) -> Option<PathBuf> {
        self.netns.as_ref().map(|(p, _, _)| p.clone())
    }
    fn line(&mut self, line: &str) {
        self.seen |= line == self.want;
    }
    fn finish(self: Box<Self>, end: &qemu_runner::PeerEnd<'_>) -> qemu_runner::PeerOutcome {
        let mut o = qemu_runner::PeerOutcome::new("lines");
        o.lines.push(format!("complete {}", end.complete));
        if !self.seen {
            o.reasons.push(format!("never saw '{}'", self.want));
        }
        if let Some((_, h, stop)) = self.netns {
            let _ = stop.send(());
            let _ = h.join();
        }
        o
    }
}

#[test]
fn peers_add_arguments_hear_lines_and_join_the_verdict() {
    let script = format!(
        "case \"$*\" in *'-chardev socket,path='*/p0*) ;; *) echo 'no peer argument' >&2; exit 3;; esac\n{}",
        print_tap(GOOD_TAP)
    );
    let s = Scenario::new("peer").peer(LinePeer {
        want: "# zvtest 0.1.0",
        netns: false,
    });
    let o = boot("peer-pass", &script, s);
    assert!(o.passed(), "{}", o.failure_report());
    assert_eq!(o.peers.len(), 1);
    assert!(
        o.console().contains("# peer lines: complete true"),
        "{}",
        o.console()
    );

    let s = Scenario::new("peer").peer(LinePeer {
        want: "# never printed",
        netns: false,
    });
    let o = boot("peer-fail", &script, s);
    assert!(!o.passed());
    let v = o.verdict.to_string();
    assert!(v.contains("peer lines: never saw '# never printed'"), "{v}");
}

#[test]
fn qemu_runs_in_the_peers_network_namespace() {
    // SAFETY: geteuid() only reads the process's credentials.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: a network namespace cannot be made here");
        return;
    }
    let ours = fs::read_link("/proc/self/ns/net").unwrap();
    let script = format!(
        "echo \"# netns $(readlink /proc/self/ns/net)\"\n{}",
        print_tap(GOOD_TAP)
    );
    let s = Scenario::new("peer-netns").peer(LinePeer {
        want: "# zvtest 0.1.0",
        netns: true,
    });
    let o = boot("peer-netns", &script, s);
    assert!(o.passed(), "{}", o.failure_report());
    let line = o
        .console()
        .lines()
        .find_map(|l| l.strip_prefix("# netns ").map(String::from))
        .expect("the script's namespace line");
    assert!(line.starts_with("net:["), "{line}");
    assert_ne!(
        PathBuf::from(&line),
        ours,
        "QEMU ran in the peer's namespace"
    );
}
