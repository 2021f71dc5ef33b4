//! Running the machine's tools (apt, dpkg, rustup) with a time limit, so a
//! stuck mirror or lock ends in an error naming the command, not a hang.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use xtask::signals;

/// Waits for `child` until `limit`; kills and reaps it then (`None`).
fn wait_within(child: &mut Child, limit: Duration) -> std::io::Result<Option<ExitStatus>> {
    let end = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait()? {
            // Its end may be the signal handler's doing: let that finish.
            signals::wait_if_stopping();
            return Ok(Some(st));
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The command as the user would type it, for messages.
pub fn shown(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` with its output shown as it comes (apt's progress, rustup's
/// download); an error names `what`, the status and the command.
pub fn status_within(mut cmd: Command, what: &str, limit: Duration) -> Result<(), String> {
    let line = shown(&cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("{what}: cannot run {line}: {e}"))?;
    match wait_within(&mut child, limit) {
        Ok(Some(st)) if st.success() => Ok(()),
        Ok(Some(st)) => Err(format!("{what} failed ({st}): {line}")),
        Ok(None) => Err(format!(
            "{what} did not finish within {} s and was stopped: {line}",
            limit.as_secs()
        )),
        Err(e) => Err(format!("{what}: waiting for {line}: {e}")),
    }
}

/// Runs `cmd` with its output captured; an error names `what` and the
/// command and carries the output.
pub fn output_within(mut cmd: Command, what: &str, limit: Duration) -> Result<Output, String> {
    let line = shown(&cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: cannot run {line}: {e}"))?;
    // Drained on threads, so a chatty command never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let status = match wait_within(&mut child, limit) {
        Ok(Some(st)) => st,
        Ok(None) => {
            return Err(format!(
                "{what} did not finish within {} s and was stopped: {line}",
                limit.as_secs()
            ))
        }
        Err(e) => return Err(format!("{what}: waiting for {line}: {e}")),
    };
    let output = Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    };
    if output.status.success() {
        return Ok(output);
    }
    Err(format!(
        "{what} failed ({}): {line}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn output_and_errors() {
        let o = output_within(
            sh("echo hi; echo there >&2"),
            "greeting",
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(o.stdout, b"hi\n");
        assert_eq!(o.stderr, b"there\n");
        let e = output_within(sh("echo oops >&2; exit 3"), "step", Duration::from_secs(10))
            .unwrap_err();
        assert!(e.starts_with("step failed (exit status: 3): sh -c"), "{e}");
        assert!(e.contains("oops"), "{e}");
        let e = status_within(
            Command::new("/nonexistent/tool"),
            "tool",
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.starts_with("tool: cannot run /nonexistent/tool"), "{e}");
    }

    #[test]
    fn a_hanging_command_is_stopped() {
        let t = Instant::now();
        let e = output_within(sh("exec sleep 100"), "nap", Duration::from_millis(200)).unwrap_err();
        assert!(e.contains("did not finish within 0 s"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
