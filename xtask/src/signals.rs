//! Nothing xtask started outlives it when it is told to stop.
//!
//! A CI cancel (or Ctrl-C, or a closed terminal) sends SIGTERM, SIGINT or
//! SIGHUP to xtask alone. By default that kills xtask and leaves `cargo
//! test`, the test binaries and their QEMUs running. So:
//!
//! - `cargo test` is started as the leader of a process group of its own
//!   ([`spawn_group`]); the test binaries and the QEMUs they start inherit
//!   that group, even after their parent died;
//! - a handler thread ([`install`]) catches the three signals, sends
//!   SIGTERM to every such group and to every other descendant of xtask
//!   (the QEMU of `run` and `bench`, a `cargo build`, `apt-get`), gives
//!   them [`GRACE`] to end, SIGKILLs what is left, and exits with 128 + the
//!   signal number, as a shell reports a process killed by it.

use signal_hook::consts::{SIGHUP, SIGINT, SIGKILL, SIGTERM};
use signal_hook::iterator::Signals;
use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// The signals that stop xtask and everything it started.
pub const STOP_SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];
/// How long SIGTERM has before SIGKILL follows. QEMU and the test binaries
/// end within milliseconds of SIGTERM; this only covers a busy machine.
pub const GRACE: Duration = Duration::from_millis(1000);
/// After SIGKILL, how long we watch for the processes to go.
const KILL_WAIT: Duration = Duration::from_millis(1000);
const POLL: Duration = Duration::from_millis(20);

/// The process groups started by [`spawn_group`].
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());
/// Set once a stop signal arrived; no new group starts after that.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Starts the thread that turns a stop signal into [`stop_all`] and an
/// exit with status 128 + signal.
pub fn install() -> io::Result<()> {
    let mut signals = Signals::new(STOP_SIGNALS)?;
    thread::Builder::new()
        .name("xtask-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                eprintln!(
                    "xtask: {}: stopping everything xtask started",
                    signal_name(sig)
                );
                stop_all(GRACE);
                std::process::exit(128 + sig);
            }
        })?;
    Ok(())
}

fn signal_name(sig: i32) -> String {
    match sig {
        SIGINT => "SIGINT".into(),
        SIGTERM => "SIGTERM".into(),
        SIGHUP => "SIGHUP".into(),
        n => format!("signal {n}"),
    }
}

/// Has a stop signal arrived? Then the handler is ending the process.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

/// Called where a child's end may be the handler's doing: if it is, this
/// waits for the handler to exit the process, so nothing is reported about
/// a run that was cut short. Returns at once otherwise.
pub fn wait_if_stopping() {
    while stopping() {
        thread::sleep(POLL);
    }
}

/// Spawns `cmd` as the leader of a new process group, which a stop signal
/// kills whole. Refused once a stop signal has arrived.
pub fn spawn_group(cmd: &mut Command) -> io::Result<Child> {
    // Held across the spawn, so the handler either sees the new group or
    // has already refused it.
    let mut groups = GROUPS.lock().unwrap_or_else(|p| p.into_inner());
    if stopping() {
        return Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "xtask is stopping on a signal",
        ));
    }
    let child = cmd.process_group(0).spawn()?;
    let pgid = i32::try_from(child.id()).map_err(io::Error::other)?;
    groups.push(pgid);
    Ok(child)
}

/// SIGTERM to every group from [`spawn_group`] and every descendant of
/// this process; after `grace`, SIGKILL to what is left. Returns whether
/// all of them are gone (zombies count as gone: they hold no resources but
/// their table entry, and their parent or init reaps them).
pub fn stop_all(grace: Duration) -> bool {
    STOPPING.store(true, Ordering::SeqCst);
    let groups = GROUPS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let me = std::process::id() as i32;
    let start = Instant::now();
    let mut sig = SIGTERM;
    loop {
        let live = targets(&process_table(), me, &groups);
        if live.is_empty() {
            return true;
        }
        for g in &groups {
            send(-g, sig);
        }
        for pid in &live {
            send(*pid, sig);
        }
        if sig == SIGTERM && start.elapsed() >= grace {
            sig = SIGKILL;
            continue;
        }
        if start.elapsed() >= grace + KILL_WAIT {
            return false;
        }
        thread::sleep(POLL);
    }
}

fn send(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety requirements; an error (the
    // process or group is already gone) is what we want anyway.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// One process, as /proc/<pid>/stat describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
}

impl Proc {
    /// Zombies (Z) and dead entries (X) run nothing any more.
    fn alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X')
    }
}

/// `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses,
/// so the fields are read after its last `)`.
pub fn parse_stat(line: &str) -> Option<Proc> {
    let (pid, rest) = line.split_once(" (")?;
    let (_, rest) = rest.rsplit_once(") ")?;
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    Some(Proc {
        pid: pid.trim().parse().ok()?,
        state,
        ppid: f.next()?.parse().ok()?,
        pgrp: f.next()?.parse().ok()?,
    })
}

/// Every process we can see.
pub fn process_table() -> Vec<Proc> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        e.file_name().to_str()?.parse::<u32>().ok()?;
        parse_stat(&fs::read_to_string(e.path().join("stat")).ok()?)
    })
    .collect()
}

/// The live processes to stop: members of `groups` and descendants of
/// `me`, never `me` itself. Sorted by pid.
pub fn targets(procs: &[Proc], me: i32, groups: &[i32]) -> Vec<i32> {
    let mut mine = HashSet::from([me]);
    // Descendants: grow the set until no process has a parent in it
    // (at most one pass per generation, whatever the table's order).
    loop {
        let before = mine.len();
        for p in procs {
            if mine.contains(&p.ppid) {
                mine.insert(p.pid);
            }
        }
        if mine.len() == before {
            break;
        }
    }
    let mut out: Vec<i32> = procs
        .iter()
        .filter(|p| p.pid != me && p.alive())
        .filter(|p| groups.contains(&p.pgrp) || mine.contains(&p.pid))
        .map(|p| p.pid)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The live members of process group `pgrp`.
pub fn group_members(pgrp: i32) -> Vec<i32> {
    process_table()
        .into_iter()
        .filter(|p| p.pgrp == pgrp && p.alive())
        .map(|p| p.pid)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines() {
        assert_eq!(
            parse_stat("4242 (qemu-system-s39) S 4100 4100 4000 34816 ..."),
            Some(Proc {
                pid: 4242,
                state: 'S',
                ppid: 4100,
                pgrp: 4100
            })
        );
        // A command name with spaces and a closing parenthesis in it.
        assert_eq!(
            parse_stat("7 (a) b (c)) Z 1 7 7 0 -1"),
            Some(Proc {
                pid: 7,
                state: 'Z',
                ppid: 1,
                pgrp: 7
            })
        );
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("x (sh) S 1 1"), None);
        assert_eq!(parse_stat("5 (sh) S"), None);
    }

    fn p(pid: i32, state: char, ppid: i32, pgrp: i32) -> Proc {
        Proc {
            pid,
            state,
            ppid,
            pgrp,
        }
    }

    #[test]
    fn what_to_stop() {
        // 100 is xtask (in the shell's group 50); 200 is cargo test, leader
        // of its own group; 300 a test binary whose QEMU 400 was orphaned
        // (now a child of init) but kept the group; 500 the QEMU of `run`,
        // a plain child; 600 its child; 700 a zombie; 50 the shell.
        let procs = [
            p(1, 'S', 0, 1),
            p(50, 'S', 1, 50),
            p(100, 'S', 50, 50),
            p(200, 'S', 100, 200),
            p(300, 'R', 200, 200),
            p(400, 'S', 1, 200),
            p(600, 'S', 500, 50),
            p(500, 'S', 100, 50),
            p(700, 'Z', 100, 50),
            p(800, 'S', 50, 50),
        ];
        assert_eq!(targets(&procs, 100, &[200]), [200, 300, 400, 500, 600]);
        assert_eq!(targets(&procs, 100, &[]), [200, 300, 500, 600]);
        assert!(targets(&procs, 100, &[200])
            .iter()
            .all(|pid| ![1, 50, 100, 700, 800].contains(pid)));
        assert_eq!(targets(&[p(100, 'S', 50, 50)], 100, &[]), Vec::<i32>::new());
    }

    #[test]
    fn this_process_is_in_the_table() {
        let me = std::process::id() as i32;
        let t = process_table();
        let mine = t.iter().find(|p| p.pid == me).expect("own stat");
        assert!(mine.alive());
    }
}
