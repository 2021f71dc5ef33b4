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
//! Std only, so that this binary builds in a second.

use std::env;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

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

    let early = if builds_firmware(&args) && can_build_firmware(&root) {
        early_build(&cargo, &root)
    } else {
        None
    };

    // For the whole suite, its test binaries (xtask among them) in the
    // same build: one cargo keeps both cores busy, and xtask's own
    // prebuild then finds them done.
    let suite = whole_suite(&args) && nextest_present(&cargo, &root);
    let built = if suite {
        Command::new(&cargo)
            .args(["nextest", "run", "--workspace", "--no-run"])
            .current_dir(&root)
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    } else {
        false
    };
    // Otherwise, or when a test failed to build (nextest shows that again
    // in the run), xtask alone.
    if !built {
        let status = Command::new(&cargo)
            .args(["build", "--quiet", "--package", "xtask"])
            .current_dir(&root)
            .status();
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
    // Returns only when the exec failed.
    let e = c.exec();
    eprintln!("xtask: cannot run {}: {e}", xtask.display());
    ExitCode::FAILURE
}

/// xtask/launch sits two levels below the workspace root.
fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .nth(2)
        .expect("xtask/launch sits in the workspace")
        .to_path_buf()
}

/// `cargo xtask test ...` and the like; not `--help` or a bare command
/// line (xtask only prints its usage then).
fn builds_firmware(args: &[OsString]) -> bool {
    let first = args.first().and_then(|a| a.to_str());
    let help = args.iter().any(|a| a == "-h" || a == "--help");
    !help && first.is_some_and(|c| BUILDS_FIRMWARE.contains(&c))
}

/// `cargo xtask test [OPTIONS]`: the whole suite, as xtask's `test`
/// prebuilds it (not with CARGO-ARGS after `--`).
fn whole_suite(args: &[OsString]) -> bool {
    args.first().is_some_and(|a| a == "test") && !args.iter().any(|a| a == "--")
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
        .spawn()
        .ok()?;
    Some(child.id())
}
