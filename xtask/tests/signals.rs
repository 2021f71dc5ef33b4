//! A stop signal to xtask ends every process it started, fast.
//!
//! The test runs this test binary again as a stand-in for xtask: the child
//! installs xtask's handler and starts a process tree exactly as xtask
//! starts `cargo test` (`sh -c 'sleep 1000 & sleep 1000'` here), then waits
//! for it as xtask does. The parent sends the signal and checks that the
//! child exits with 128 + signal and that no process of the group is left.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
use xtask::signals::{self, group_members};

const CHILD_ENV: &str = "XTASK_SIGNALS_TEST_CHILD";
/// Everything must be gone this soon after the signal.
const LIMIT: Duration = Duration::from_secs(2);

/// Does nothing in a normal run; in the child, plays xtask.
#[test]
fn child_process() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    signals::install().expect("signal handler");
    let mut tree = Command::new("sh");
    tree.args(["-c", "sleep 1000 & sleep 1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut child = signals::spawn_group(&mut tree).expect("spawn");
    // libtest may have begun a line of its own: the marker is searched for.
    println!("\nprocess group={}", child.id());
    let _ = child.wait();
    signals::wait_if_stopping();
    panic!("the process tree ended without a signal");
}

fn start_child() -> (Child, i32) {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the child");
    // Read on a thread, so a child that never prints cannot hang the test.
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some((_, g)) = line.split_once("process group=") {
                let _ = tx.send(g.trim().parse::<i32>().expect("group id"));
            }
        }
    });
    let Ok(group) = rx.recv_timeout(Duration::from_secs(30)) else {
        let _ = child.kill();
        panic!("the child printed no process group");
    };
    (child, group)
}

fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    done()
}

#[test]
fn a_stop_signal_ends_the_whole_group() {
    for sig in signals::STOP_SIGNALS {
        let (mut child, group) = start_child();
        // sh and both sleeps (or sh exec'd into the second one).
        assert!(
            wait_for(Duration::from_secs(10), || group_members(group).len() >= 2),
            "the process tree did not start: {:?}",
            group_members(group)
        );
        let pid = child.id() as i32;
        let sent = Instant::now();
        // SAFETY: kill(2) on our own child; no memory is involved.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
        let mut status = None;
        assert!(
            wait_for(LIMIT, || {
                status = child.try_wait().expect("wait");
                status.is_some()
            }),
            "signal {sig}: the child did not exit within {LIMIT:?}"
        );
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(128 + sig),
            "signal {sig}"
        );
        let left = group_members(group);
        assert!(
            left.is_empty(),
            "signal {sig}: group {group} still has {left:?} after {:?}",
            sent.elapsed()
        );
        assert!(sent.elapsed() < LIMIT);
    }
}
