//! `cargo xtask <build|image|run|test|bench>`: the project's build and test driver.

mod bench;
mod deck;
mod elf;
mod libtest;
mod qemu10;

use libtest::Tally;
use qemu_runner::{RunOptions, Scenario, QEMU_DATA_ENV, QEMU_ENV};
use std::env;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

const TARGET: &str = "s390x-unknown-linux-gnu";
const FIRMWARE_PACKAGE: &str = "zvtest-firmware";
const FIRMWARE_BIN: &str = "zvtest";
/// QEMU, the cross gcc for boot/, and Hercules (the ESA/390 IPL test).
const APT_PACKAGES: [&str; 3] = ["qemu-system-misc", "gcc-s390x-linux-gnu", "hercules"];

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  build                   build the firmware: target/zvtest.elf
  image                   build, then the raw flat image target/zvtest.img and the
                          80-byte-card IPL deck target/zvtest.deck (z/VM reader)
  run [FIRMWARE-ARGS...]  build and boot the default scenario, console on screen
  test [--qemu10] [-- CARGO-ARGS...]
                          build, image, then cargo test --workspace with
                          ZVTEST_ELF and ZVTEST_IMG set; ends with 'N passed, M failed'.
                          --qemu10: the scenarios boot QEMU 10.0 (fetched as by
                          qemu10 if needed) through ZVTEST_QEMU and ZVTEST_QEMU_DATA
  qemu10                  fetch QEMU 10.0 (Debian bookworm-backports) into
                          target/qemu-10.0/ beside the system's QEMU, without
                          changing apt's state; print the binary's path
  bench [--runs N]        build, boot the default scenario N times (default 10) with
                          verbose=2; print median/min/max of the time to the first TAP
                          line, of boot to exit, and of each check's own timing
  help                    show this help
";

/// Failures that end the task; usage errors exit 2, the others 1.
enum Error {
    Usage(String),
    Failed(String),
}

type Result<T> = std::result::Result<T, Error>;

fn failed(msg: impl Into<String>) -> Error {
    Error::Failed(msg.into())
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(code) => code,
        Err(Error::Usage(msg)) => {
            eprintln!("xtask: {msg}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Error::Failed(msg)) => {
            eprintln!("xtask: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(args: &[String]) -> Result<ExitCode> {
    let Some((command, rest)) = args.split_first() else {
        return Err(Error::Usage("missing command".into()));
    };
    let no_args = |rest: &[String]| match rest.first() {
        None => Ok(()),
        Some(a) if a.starts_with('-') => {
            Err(Error::Usage(format!("unknown option '{a}' for {command}")))
        }
        Some(a) => Err(Error::Usage(format!(
            "unexpected argument '{a}' for {command}"
        ))),
    };
    let paths = Paths::new();
    match command.as_str() {
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        "build" => {
            no_args(rest)?;
            prerequisites()?;
            build(&paths)?;
            Ok(ExitCode::SUCCESS)
        }
        "image" => {
            no_args(rest)?;
            prerequisites()?;
            build(&paths)?;
            image(&paths)?;
            Ok(ExitCode::SUCCESS)
        }
        "run" => {
            if let Some(opt) = rest.iter().find(|a| a.starts_with('-')) {
                return Err(Error::Usage(format!("unknown option '{opt}' for run")));
            }
            prerequisites()?;
            build(&paths)?;
            boot(&paths, rest)
        }
        "test" => {
            let (qemu10, rest) = match rest.split_first() {
                Some((flag, more)) if flag == "--qemu10" => (true, more),
                _ => (false, rest),
            };
            let cargo_args = match rest.split_first() {
                Some((dashes, more)) if dashes == "--" => more,
                _ => no_args(rest).map(|_| rest)?,
            };
            prerequisites()?;
            build(&paths)?;
            image(&paths)?;
            let qemu = if qemu10 {
                Some(fetch_qemu10(&paths)?)
            } else {
                None
            };
            test(&paths, cargo_args, qemu.as_ref())
        }
        "qemu10" => {
            no_args(rest)?;
            let q = fetch_qemu10(&paths)?;
            eprintln!(
                "xtask: to boot every scenario on it:\n  {QEMU_ENV}={} {QEMU_DATA_ENV}={} cargo xtask test\n\
                 or: cargo xtask test --qemu10",
                q.binary.display(),
                q.data_dir.display()
            );
            println!("{}", q.binary.display());
            Ok(ExitCode::SUCCESS)
        }
        "bench" => {
            let runs = bench::parse_args(rest).map_err(Error::Usage)?;
            prerequisites()?;
            build(&paths)?;
            run_bench(&paths, runs)
        }
        other if other.starts_with('-') => Err(Error::Usage(format!("unknown option '{other}'"))),
        other => Err(Error::Usage(format!("unknown command '{other}'"))),
    }
}

/// Where things are; absolute, so the tests find them from any directory.
struct Paths {
    root: PathBuf,
    target: PathBuf,
}

impl Paths {
    fn new() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask sits in the workspace")
            .to_path_buf();
        // Cargo runs with the workspace as its directory, so a relative
        // CARGO_TARGET_DIR means the same to it as to us.
        let target = match env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
            Some(dir) => root.join(dir),
            None => root.join("target"),
        };
        Paths { root, target }
    }

    fn elf(&self) -> PathBuf {
        self.target.join("zvtest.elf")
    }

    fn img(&self) -> PathBuf {
        self.target.join("zvtest.img")
    }

    fn built_elf(&self) -> PathBuf {
        self.target.join(TARGET).join("release").join(FIRMWARE_BIN)
    }
}

/// The cargo that runs us (`cargo xtask` sets CARGO), else the one on PATH.
fn cargo(paths: &Paths) -> Command {
    let mut c = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(&paths.root);
    c
}

fn status(mut cmd: Command, what: &str) -> Result<()> {
    let st = cmd
        .status()
        .map_err(|e| failed(format!("cannot run {what}: {e}")))?;
    if st.success() {
        Ok(())
    } else {
        Err(failed(format!("{what} failed ({st})")))
    }
}

fn build(paths: &Paths) -> Result<PathBuf> {
    let mut c = cargo(paths);
    c.args([
        "build",
        "--release",
        "-p",
        FIRMWARE_PACKAGE,
        "--target",
        TARGET,
    ]);
    status(c, "cargo build of the firmware")?;
    let (from, to) = (paths.built_elf(), paths.elf());
    fs::copy(&from, &to).map_err(|e| {
        failed(format!(
            "cannot copy {} to {}: {e}",
            from.display(),
            to.display()
        ))
    })?;
    eprintln!("xtask: built {}", to.display());
    Ok(to)
}

fn image(paths: &Paths) -> Result<PathBuf> {
    let elf = paths.elf();
    let bytes =
        fs::read(&elf).map_err(|e| failed(format!("cannot read {}: {e}", elf.display())))?;
    let img = elf::flat_image(&bytes).map_err(|e| failed(format!("{}: {e}", elf.display())))?;
    let out = paths.img();
    // Written aside and renamed, so a QEMU reading the old image never sees half of it.
    let tmp = out.with_extension("img.tmp");
    fs::write(&tmp, &img)
        .and_then(|_| fs::rename(&tmp, &out))
        .map_err(|e| failed(format!("cannot write {}: {e}", out.display())))?;
    eprintln!("xtask: wrote {} ({} bytes)", out.display(), img.len());
    // The card-reader IPL deck (z/VM, Hercules) beside it, the same way.
    let d = deck::ipl_deck(&img).map_err(|e| failed(format!("{}: {e}", out.display())))?;
    let (deck_out, deck_tmp) = (out.with_extension("deck"), out.with_extension("deck.tmp"));
    fs::write(&deck_tmp, &d.bytes)
        .and_then(|_| fs::rename(&deck_tmp, &deck_out))
        .map_err(|e| failed(format!("cannot write {}: {e}", deck_out.display())))?;
    eprintln!(
        "xtask: wrote {} ({} cards: IPL record, {} of CCWs at {:#x}, {} of data)",
        deck_out.display(),
        d.cards(),
        d.list_cards,
        d.list_addr,
        d.data_cards
    );
    Ok(out)
}

fn boot(paths: &Paths, words: &[String]) -> Result<ExitCode> {
    let scenario = Scenario::new("default").append(words.join(" "));
    let opts = RunOptions::default()
        .log(paths.target.join("zvtest-run.log"))
        .echo(true);
    let outcome =
        qemu_runner::run(&scenario, &paths.elf(), &opts).map_err(|e| failed(e.to_string()))?;
    eprintln!("xtask: {}", outcome.summary_line());
    for r in &outcome.verdict.reasons {
        eprintln!("  - {r}");
    }
    eprintln!("xtask: console log: {}", outcome.log_path.display());
    Ok(if outcome.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Boots the default scenario `runs` times with verbose=2 and prints the
/// timing tables; fails if any run fails.
fn run_bench(paths: &Paths, runs: u32) -> Result<ExitCode> {
    // A virtio-rng device gives the notify hypercall a queue to measure.
    let scenario = Scenario::new("bench")
        .virtio_ccw("virtio-rng-ccw", "fe.0.0001", "rng")
        .append("verbose=2");
    let logs = paths.target.join("bench");
    let mut m = bench::Measurements::default();
    let mut failures = Vec::new();
    eprintln!(
        "xtask: bench: {runs} boots of the default scenario, command line '{}'",
        scenario.command_line()
    );
    for i in 1..=runs {
        let opts = RunOptions::default().log(logs.join(format!("run-{i}.log")));
        let o =
            qemu_runner::run(&scenario, &paths.elf(), &opts).map_err(|e| failed(e.to_string()))?;
        eprintln!("xtask: run {i}/{runs}: {}", o.summary_line());
        if !o.passed() {
            failures.push(o.failure_report());
        }
        m.add(&o);
    }
    println!("{}", m.table().trim_end());
    if failures.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "xtask: bench: {} of {runs} runs failed; the first:\n{}",
        failures.len(),
        failures[0]
    );
    Ok(ExitCode::FAILURE)
}

/// QEMU 10.0 in target/qemu-10.0, fetched if it is not there yet.
fn fetch_qemu10(paths: &Paths) -> Result<qemu10::Qemu> {
    let q = qemu10::ensure(&paths.target, is_root()).map_err(failed)?;
    eprintln!(
        "xtask: QEMU {} at {} (data {})",
        q.version.full(),
        q.binary.display(),
        q.data_dir.display()
    );
    Ok(q)
}

/// Runs `cargo test --workspace`, passing its output through while adding up
/// the results, and ends with the one line `N passed, M failed`. With
/// `qemu`, every scenario boots that QEMU (the host unit tests run as ever).
fn test(paths: &Paths, extra: &[String], qemu: Option<&qemu10::Qemu>) -> Result<ExitCode> {
    let mut c = cargo(paths);
    c.args(["test", "--workspace", "--no-fail-fast"])
        .args(extra)
        .env("ZVTEST_ELF", paths.elf())
        .env("ZVTEST_IMG", paths.img())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(q) = qemu {
        c.env(QEMU_ENV, &q.binary).env(QEMU_DATA_ENV, &q.data_dir);
    }
    let mut child = c
        .spawn()
        .map_err(|e| failed(format!("cannot run cargo test: {e}")))?;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let out = tee(child.stdout.take(), &tally, true);
    let err = tee(child.stderr.take(), &tally, false);
    let st = child
        .wait()
        .map_err(|e| failed(format!("cargo test: {e}")))?;
    let _ = (out.join(), err.join());
    let t = *tally.lock().unwrap_or_else(|p| p.into_inner());

    // A test binary that crashed printed no result line: count it as one failure.
    let failed_count = t.failed + t.crashed();
    if t.crashed() > 0 {
        eprintln!(
            "xtask: {} test binaries ended without a result line",
            t.crashed()
        );
    }
    if !st.success() {
        eprintln!("xtask: cargo test failed ({st})");
    }
    if t.results == 0 {
        eprintln!("xtask: no test ran");
    }
    let _ = io::stderr().flush();
    println!("{} passed, {failed_count} failed", t.passed);
    let ok = st.success() && failed_count == 0 && t.results > 0;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Copies a child's pipe to our stdout or stderr line by line, counting as it goes.
fn tee<R: io::Read + Send + 'static>(
    pipe: Option<R>,
    tally: &Arc<Mutex<Tally>>,
    stdout: bool,
) -> thread::JoinHandle<()> {
    let tally = Arc::clone(tally);
    thread::spawn(move || {
        let Some(pipe) = pipe else { return };
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        while matches!(reader.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            let line = String::from_utf8_lossy(&buf);
            let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
            if stdout {
                t.stdout_line(&line);
                let mut o = io::stdout().lock();
                let _ = o.write_all(&buf).and_then(|_| o.flush());
            } else {
                t.stderr_line(&line);
                let _ = io::stderr().lock().write_all(&buf);
            }
            buf.clear();
        }
    })
}

/// Is `name` an executable file in one of PATH's directories (or a path to one)?
fn find_program(name: &OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let as_path = Path::new(name);
    if as_path.components().count() > 1 {
        return executable(as_path).then(|| as_path.to_path_buf());
    }
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| executable(p))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// QEMU, the s390x cross gcc (the `cc` crate assembles boot/ with it) and
/// Hercules: installed with apt when we are root, else the command to do
/// so is shown.
fn prerequisites() -> Result<()> {
    let qemu = env::var_os(QEMU_ENV)
        .filter(|q| !q.is_empty())
        .unwrap_or_else(|| "qemu-system-s390x".into());
    if env::var_os(QEMU_ENV).is_some_and(|q| !q.is_empty()) && find_program(&qemu).is_none() {
        return Err(failed(format!(
            "{QEMU_ENV}={} is not an executable",
            qemu.to_string_lossy()
        )));
    }
    let missing = || -> Vec<String> {
        [
            qemu.as_os_str(),
            OsStr::new("s390x-linux-gnu-gcc"),
            OsStr::new("hercules"),
        ]
        .into_iter()
        .filter(|p| find_program(p).is_none())
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
    };
    let absent = missing();
    if absent.is_empty() {
        return Ok(());
    }
    let install = format!(
        "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y {}",
        APT_PACKAGES.join(" ")
    );
    if !is_root() {
        return Err(failed(format!(
            "missing {}; install with (as root):\n  {install}",
            absent.join(", ")
        )));
    }
    eprintln!("xtask: missing {}; running {install}", absent.join(", "));
    let mut update = Command::new("apt-get");
    update.arg("update");
    status(update, "apt-get update")?;
    let mut get = Command::new("apt-get");
    get.args(["install", "-y"])
        .args(APT_PACKAGES)
        .env("DEBIAN_FRONTEND", "noninteractive");
    status(get, "apt-get install")?;
    let still = missing();
    if still.is_empty() {
        Ok(())
    } else {
        Err(failed(format!(
            "still missing after apt-get: {}",
            still.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage_error(args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match dispatch(&args) {
            Err(Error::Usage(m)) => m,
            Err(Error::Failed(m)) => panic!("{args:?}: not a usage error: {m}"),
            Ok(_) => panic!("{args:?} accepted"),
        }
    }

    // Only argument errors are tested here: they are found before anything is built.
    #[test]
    fn usage_errors() {
        assert_eq!(usage_error(&[]), "missing command");
        assert_eq!(usage_error(&["frob"]), "unknown command 'frob'");
        assert_eq!(usage_error(&["--frob"]), "unknown option '--frob'");
        assert_eq!(
            usage_error(&["build", "--release"]),
            "unknown option '--release' for build"
        );
        assert_eq!(
            usage_error(&["image", "x"]),
            "unexpected argument 'x' for image"
        );
        assert_eq!(
            usage_error(&["run", "only=boot.*", "-v"]),
            "unknown option '-v' for run"
        );
        assert_eq!(
            usage_error(&["test", "--nocapture"]),
            "unknown option '--nocapture' for test"
        );
        assert_eq!(
            usage_error(&["test", "--qemu10", "--nocapture"]),
            "unknown option '--nocapture' for test"
        );
        assert_eq!(
            usage_error(&["qemu10", "now"]),
            "unexpected argument 'now' for qemu10"
        );
        assert_eq!(
            usage_error(&["bench", "--runs", "0"]),
            "--runs needs a whole number from 1 to 10000, not '0'"
        );
        assert_eq!(
            usage_error(&["bench", "-v"]),
            "unknown option '-v' for bench"
        );
    }

    #[test]
    fn program_lookup() {
        assert!(find_program(OsStr::new("sh")).is_some());
        assert!(find_program(OsStr::new("/bin/sh")).is_some());
        assert!(find_program(OsStr::new("no-such-program-zvtest")).is_none());
        assert!(find_program(OsStr::new("/nonexistent/qemu")).is_none());
    }

    #[test]
    fn paths_are_absolute() {
        let p = Paths::new();
        assert!(p.root.join("Cargo.toml").is_file());
        assert!(p.elf().is_absolute() && p.img().is_absolute());
        assert!(p
            .built_elf()
            .ends_with("s390x-unknown-linux-gnu/release/zvtest"));
    }
}
