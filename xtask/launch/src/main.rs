//! `cargo xtask` (the alias in .cargo/config.toml): starts the firmware's
//! build, builds xtask beside it (for `test`, with the suite's test
//! binaries) and then becomes xtask (exec).
//!
//! Why: on a clean checkout xtask's own dependencies take ~50 s on two
//! cores and keep only one and a half of them busy, and the firmware's
//! build (~50 s, most of it one rustc) waited for all of that. Started
//! first, the two builds keep both cores busy. xtask then waits for the
//! firmware's (`ZVTEST_EARLY_BUILD` names its pid; after the exec it is
//! xtask's child) and runs its own `cargo build`, which finds the work
//! done, or fails again with the errors in view.
//!
//! Std and libc only (libc is xtask's too), so that this binary builds
//! in seconds.

use std::env;
use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};

/// The commands that build the firmware first (xtask's `build()`).
const BUILDS_FIRMWARE: [&str; 5] = ["build", "image", "run", "test", "bench"];
/// The same build xtask's `build()` runs.
const TARGET: &str = "s390x-unknown-linux-gnu";
const FIRMWARE_PACKAGE: &str = "zvtest-firmware";
/// The assembler the firmware's build script calls (the cc crate's choice
/// for the target).
const CROSS_GCC: &str = "s390x-linux-gnu-gcc";
/// Tells xtask the pid of the early build (xtask/src/main.rs reads it).
const EARLY_ENV: &str = "ZVTEST_EARLY_BUILD";

fn main() -> ExitCode {
    let args: Vec<OsString> = env::args_os().skip(1).collect();
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = workspace_root();
    let plan = Plan::of(&args);
    stop::install();

    let early = if plan.firmware && can_build_firmware(&root) {
        early_build(&cargo, &root)
    } else {
        None
    };

    // For the whole suite, its test binaries (xtask among them) in the
    // same build: one cargo keeps both cores busy, and xtask's own
    // prebuild then finds them done.
    let built = plan.suite
        && nextest_present(&cargo, &root)
        && run(Command::new(&cargo)
            .args(["nextest", "run", "--workspace", "--no-run"])
            .current_dir(&root))
        .is_ok_and(|s| s.success());
    // Otherwise, or when a test failed to build (nextest shows that again
    // in the run), xtask alone.
    if !built {
        let status = run(Command::new(&cargo)
            .args(["build", "--quiet", "--package", "xtask"])
            .current_dir(&root));
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => return ExitCode::from(u8::try_from(s.code().unwrap_or(1)).unwrap_or(1)),
            Err(e) => {
                eprintln!("xtask: cannot run cargo to build xtask: {e}");
                return ExitCode::FAILURE;
            }
        }
    }

    // Beside this binary: the same target directory and profile.
    let xtask = match env::current_exe() {
        Ok(me) => me.with_file_name("xtask"),
        Err(e) => {
            eprintln!("xtask: cannot find the xtask binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut c = Command::new(&xtask);
    c.args(&args);
    match early {
        Some(pid) => c.env(EARLY_ENV, pid.to_string()),
        None => c.env_remove(EARLY_ENV),
    };
    // Returns only when the exec failed. After it, xtask's own handlers
    // (xtask/src/signals.rs) stop its descendants, the early build among
    // them.
    let e = c.exec();
    eprintln!("xtask: cannot run {}: {e}", xtask.display());
    ExitCode::FAILURE
}

/// What a command line needs built before xtask runs it.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    /// The firmware (xtask's `build()`): `build`, `image`, `run`,
    /// `test`, `bench`.
    firmware: bool,
    /// The whole suite's test binaries: `test` without CARGO-ARGS (after
    /// `--`), as xtask's `test` prebuilds them.
    suite: bool,
}

impl Plan {
    /// Not for `--help` or an unknown or missing command: xtask only
    /// prints its usage then.
    fn of(args: &[OsString]) -> Plan {
        let first = args.first().and_then(|a| a.to_str());
        let mut options = args.iter().take_while(|a| *a != "--");
        let help = options.any(|a| a == "-h" || a == "--help");
        let firmware = !help && first.is_some_and(|c| BUILDS_FIRMWARE.contains(&c));
        let suite = firmware && first == Some("test") && !args.iter().any(|a| a == "--");
        Plan { firmware, suite }
    }
}

/// A build, in a process group of its own that [`stop`] can end whole.
fn run(c: &mut Command) -> io::Result<ExitStatus> {
    let mut child = c.stdin(Stdio::null()).process_group(0).spawn()?;
    stop::watch(child.id());
    child.wait()
}

/// xtask/launch sits two levels below the workspace root.
fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .nth(2)
        .expect("xtask/launch sits in the workspace")
        .to_path_buf()
}

/// Without cargo-nextest xtask says how to install it.
fn nextest_present(cargo: &OsString, root: &Path) -> bool {
    Command::new(cargo)
        .args(["nextest", "--version"])
        .current_dir(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A new machine has neither the Rust target nor the cross assembler
/// until xtask installs them (saying so): the build then waits for that.
fn can_build_firmware(root: &Path) -> bool {
    let libdir = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", TARGET])
        .current_dir(root)
        .stderr(Stdio::null())
        .output();
    let target = libdir.is_ok_and(|o| {
        o.status.success() && Path::new(String::from_utf8_lossy(&o.stdout).trim()).is_dir()
    });
    target && on_path(CROSS_GCC)
}

fn on_path(program: &str) -> bool {
    env::var_os("PATH").is_some_and(|p| env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// The firmware's release build, quiet: its errors come again from
/// xtask's own build.
fn early_build(cargo: &OsString, root: &Path) -> Option<u32> {
    let child = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--package",
            FIRMWARE_PACKAGE,
            "--target",
            TARGET,
        ])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .ok()?;
    stop::watch(child.id());
    Some(child.id())
}

/// A stop signal (Ctrl-C, a CI cancel, a closed terminal) ends the builds
/// started here, not only this process: each runs in a process group of
/// its own (cargo and its rustc processes), which gets SIGTERM; then this
/// process exits as one killed by the signal would.
mod stop {
    use std::sync::atomic::{AtomicI32, Ordering};

    /// The early build's group and the current build's.
    static GROUPS: [AtomicI32; 2] = [AtomicI32::new(0), AtomicI32::new(0)];
    const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

    pub fn install() {
        let handler: extern "C" fn(libc::c_int) = on_stop;
        for sig in SIGNALS {
            // SAFETY: `on_stop` has the handler type signal() takes and
            // calls only async-signal-safe functions (kill, _exit) and
            // atomics.
            unsafe { libc::signal(sig, handler as libc::sighandler_t) };
        }
    }

    /// A group leader's pid: the early build's first, then the build's.
    pub fn watch(pid: u32) {
        let Ok(pid) = i32::try_from(pid) else { return };
        let slot = usize::from(GROUPS[0].load(Ordering::SeqCst) != 0);
        GROUPS[slot].store(pid, Ordering::SeqCst);
    }

    extern "C" fn on_stop(sig: libc::c_int) {
        for g in &GROUPS {
            let pid = g.load(Ordering::SeqCst);
            if pid > 0 {
                // SAFETY: kill is async-signal-safe; a negative pid names
                // the group the child leads.
                unsafe { libc::kill(-pid, libc::SIGTERM) };
            }
        }
        // SAFETY: _exit is async-signal-safe and ends the process at once.
        unsafe { libc::_exit(128 + sig) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(line: &str) -> Plan {
        let args: Vec<OsString> = line.split_whitespace().map(OsString::from).collect();
        Plan::of(&args)
    }

    #[test]
    fn what_each_command_line_builds_first() {
        let both = Plan {
            firmware: true,
            suite: true,
        };
        let firmware = Plan {
            firmware: true,
            suite: false,
        };
        let nothing = Plan {
            firmware: false,
            suite: false,
        };
        assert_eq!(plan("test"), both);
        assert_eq!(plan("test --qemu 10.0 --partition 1/2"), both);
        assert_eq!(plan("test -- net::"), firmware);
        assert_eq!(plan("test -- --help"), firmware);
        for c in ["build", "image", "run", "bench", "run only=blk"] {
            assert_eq!(plan(c), firmware, "{c}");
        }
        for c in [
            "",
            "lint",
            "disk --size 1M x.img",
            "qemu 10.0",
            "test --help",
            "run -h",
            "tset",
        ] {
            assert_eq!(plan(c), nothing, "{c:?}");
        }
    }
}
