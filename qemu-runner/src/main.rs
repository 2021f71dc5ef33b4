//! `qemu-runner [OPTIONS] KERNEL [FIRMWARE-ARGS...]`: boots one kernel and
//! exits 0 on PASS, 1 on FAIL, 2 on a usage error. Also the cargo runner for
//! the s390x target (cargo calls it as `qemu-runner <elf> <args>`).

use qemu_runner::{
    judge::seconds, kill_running_qemus, run, Diag288, RunOptions, Scenario, VersionWord,
};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

const USAGE: &str = "\
usage: qemu-runner [OPTIONS] KERNEL [FIRMWARE-ARGS...]

Boots KERNEL under qemu-system-s390x, streams its SCLP console and judges the
TAP it prints. FIRMWARE-ARGS (key=value words) go to the firmware via -append,
after expect-mem=<MiB>M, qemu-version=<X.Y> (from `QEMU --version`) and
diag288=<MODE> (with --diag288). Exit status: 0 PASS, 1 FAIL, 2 usage error.

options:
  --memory MIB     guest memory in MiB (default 128)
  --smp N          number of CPUs (default 1)
  --timeout SECS   kill QEMU after this long (default 60)
  --device DEV     add a QEMU -device (repeatable)
  --qemu PATH      QEMU binary (default: $ZVTEST_QEMU or qemu-system-s390x)
  --data-dir DIR   QEMU data directory, passed as -L (default: $ZVTEST_QEMU_DATA)
  --qemu-version V tell the firmware qemu-version=V (e.g. 10.0) instead of
                   QEMU's own version; 'none' leaves the word out
  --diag288 MODE   absent, present (-device diag288) or expire (also
                   -action watchdog=inject-nmi; the WATCHDOG event is required)
  --log FILE       console log (default: KERNEL.console.log)
  --quiet          do not echo the console; show it only on FAIL
  -h, --help       show this help
";

#[derive(Debug)]
struct Cli {
    scenario: Scenario,
    kernel: PathBuf,
    log: Option<PathBuf>,
    quiet: bool,
}

enum Parsed {
    Run(Box<Cli>),
    Help,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut scenario = Scenario::new("");
    let mut log = None;
    let mut quiet = false;
    let mut args = args.into_iter();
    let kernel = loop {
        let Some(arg) = args.next() else {
            return Err("missing KERNEL".into());
        };
        if arg == "--" {
            break args.next().ok_or("missing KERNEL after --")?;
        }
        if !arg.starts_with('-') || arg == "-" {
            break arg;
        }
        // Both "--opt value" and "--opt=value".
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("option {name} needs a value"))
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--quiet" | "-q" if inline.is_none() => quiet = true,
            "--memory" => scenario.memory_mib = parse_mib(&value()?)?,
            "--smp" => scenario.smp = parse_number("--smp", &value()?)?,
            "--timeout" => scenario.timeout = parse_seconds(&value()?)?,
            "--device" => scenario.devices.push(value()?),
            "--qemu" => scenario.qemu = PathBuf::from(value()?),
            "--data-dir" => scenario.data_dir = Some(PathBuf::from(value()?)),
            "--qemu-version" => {
                scenario.qemu_version = match value()?.as_str() {
                    "none" => VersionWord::Omit,
                    v => VersionWord::Claim(v.parse()?),
                }
            }
            "--diag288" => {
                let mode = match value()?.as_str() {
                    "absent" => Diag288::Absent,
                    "present" => Diag288::Present,
                    "expire" => Diag288::Expire,
                    other => {
                        return Err(format!(
                            "--diag288 needs absent, present or expire, not '{other}'"
                        ))
                    }
                };
                scenario = scenario.diag288(mode);
            }
            "--log" => log = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown option '{arg}'")),
        }
    };
    for word in args {
        scenario = scenario.append(word);
    }
    // Summaries and errors then read "zvtest.elf: ...".
    scenario.name = Path::new(&kernel)
        .file_name()
        .map_or_else(|| kernel.clone(), |n| n.to_string_lossy().into_owned());
    scenario.validate()?;
    Ok(Parsed::Run(Box::new(Cli {
        scenario,
        kernel: PathBuf::from(kernel),
        log,
        quiet,
    })))
}

/// "512" or "512M".
fn parse_mib(v: &str) -> Result<u32, String> {
    let digits = v.strip_suffix(['M', 'm']).unwrap_or(v);
    parse_number("--memory", digits)
}

fn parse_number(option: &str, v: &str) -> Result<u32, String> {
    match v.parse() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{option} needs a positive whole number, not '{v}'")),
    }
}

fn parse_seconds(v: &str) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(s) if s > 0.0 && s.is_finite() && s < 1e9 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "--timeout needs a positive number of seconds, not '{v}'"
        )),
    }
}

/// On SIGINT, SIGTERM or SIGHUP (Ctrl-C, a CI cancel, a closed terminal):
/// kill QEMU and exit 128 + the signal. QEMU's QMP socket has no name (a
/// socket pair) and the log is written line by line, so nothing is left to
/// clean up.
/// (QEMU also dies with us by PR_SET_PDEATHSIG, even on SIGKILL.)
fn exit_on_signals() -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let killed = kill_running_qemus();
                let name = match sig {
                    SIGINT => "SIGINT",
                    SIGTERM => "SIGTERM",
                    _ => "SIGHUP",
                };
                eprintln!("qemu-runner: {name}: stopped ({killed} QEMU killed)");
                std::process::exit(128 + sig);
            }
        })?;
    Ok(())
}

fn main() -> ExitCode {
    if let Err(e) = exit_on_signals() {
        eprintln!("qemu-runner: cannot handle signals: {e}");
        return ExitCode::FAILURE;
    }
    let cli = match parse_args(std::env::args().skip(1)) {
        Ok(Parsed::Run(cli)) => cli,
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("qemu-runner: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if !cli.kernel.is_file() {
        eprintln!("qemu-runner: kernel {} not found", cli.kernel.display());
        return ExitCode::from(2);
    }
    let log = cli.log.clone().unwrap_or_else(|| {
        let mut name = cli.kernel.clone().into_os_string();
        name.push(".console.log");
        PathBuf::from(name)
    });
    let opts = RunOptions::default().log(log).echo(!cli.quiet);
    let outcome = match run(&cli.scenario, &cli.kernel, &opts) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("qemu-runner: {e}");
            return ExitCode::FAILURE;
        }
    };
    if outcome.passed() {
        eprintln!("qemu-runner: {}", outcome.summary_line());
        eprintln!("qemu-runner: console log: {}", outcome.log_path.display());
        return ExitCode::SUCCESS;
    }
    if cli.quiet {
        outcome.print_failure();
    } else {
        // The console was on screen already: only the reasons.
        eprintln!("qemu-runner: {}", outcome.summary_line());
        for r in &outcome.verdict.reasons {
            eprintln!("  - {r}");
        }
        eprintln!("qemu-runner: console log: {}", outcome.log_path.display());
    }
    if outcome.exit.is_timed_out() && outcome.tap.lines > 0 {
        eprintln!(
            "qemu-runner: raise --timeout (now {}) if the firmware is only slow",
            seconds(cli.scenario.timeout)
        );
    }
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Parsed, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    fn cli(args: &[&str]) -> Cli {
        match parse(args) {
            Ok(Parsed::Run(c)) => *c,
            Ok(Parsed::Help) => panic!("help"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn options_then_kernel_then_firmware_words() {
        let c = cli(&[
            "--memory",
            "512",
            "--smp=2",
            "--timeout",
            "2.5",
            "--device",
            "virtio-net-ccw",
            "--device=virtio-rng-ccw",
            "--qemu",
            "/q",
            "--log",
            "l.log",
            "--quiet",
            "k.elf",
            "only=boot.*",
            "--not-an-option-here",
        ]);
        assert_eq!(c.scenario.memory_mib, 512);
        assert_eq!(c.scenario.smp, 2);
        assert_eq!(c.scenario.timeout, Duration::from_millis(2500));
        assert_eq!(c.scenario.devices, ["virtio-net-ccw", "virtio-rng-ccw"]);
        assert_eq!(c.scenario.qemu, PathBuf::from("/q"));
        assert_eq!(c.log, Some(PathBuf::from("l.log")));
        assert!(c.quiet);
        assert_eq!(c.kernel, PathBuf::from("k.elf"));
        assert_eq!(c.scenario.append, ["only=boot.*", "--not-an-option-here"]);
    }

    #[test]
    fn version_data_dir_and_watchdog() {
        let c = cli(&[
            "--data-dir",
            "/q/share",
            "--qemu-version=10.0",
            "--diag288",
            "expire",
            "k",
            "only=hcall",
        ]);
        assert_eq!(c.scenario.data_dir, Some(PathBuf::from("/q/share")));
        assert!(c.scenario.qmp_events);
        assert_eq!(
            c.scenario.command_line(),
            "expect-mem=128M expect-cpus=1 qemu-version=10.0 diag288=expire only=hcall"
        );
        let c = cli(&["--qemu-version", "none", "--diag288", "present", "k"]);
        assert_eq!(c.scenario.qemu_version, VersionWord::Omit);
        assert_eq!(
            c.scenario.command_line(),
            "expect-mem=128M expect-cpus=1 diag288=present"
        );
        assert_eq!(cli(&["k"]).scenario.qemu_version, VersionWord::Detect);
        let err = |args: &[&str]| match parse(args) {
            Err(e) => e,
            Ok(_) => panic!("{args:?} accepted"),
        };
        assert!(err(&["--qemu-version", "ten", "k"]).contains("'ten'"));
        assert!(err(&["--diag288", "maybe", "k"]).contains("'maybe'"));
    }

    #[test]
    fn defaults() {
        let c = cli(&["k"]);
        assert_eq!(c.scenario.memory_mib, 128);
        assert_eq!(c.scenario.smp, 1);
        assert!(!c.quiet && c.log.is_none());
        assert_eq!(c.scenario.command_line(), "expect-mem=128M expect-cpus=1");
        assert_eq!(cli(&["--memory", "1024", "k"]).scenario.memory_mib, 1024);
        assert_eq!(cli(&["--memory=256M", "k"]).scenario.memory_mib, 256);
        assert_eq!(cli(&["--", "-k"]).kernel, PathBuf::from("-k"));
    }

    #[test]
    fn usage_errors_name_the_problem() {
        let err = |args: &[&str]| match parse(args) {
            Err(e) => e,
            Ok(_) => panic!("{args:?} accepted"),
        };
        assert_eq!(err(&["--frobnicate", "k"]), "unknown option '--frobnicate'");
        assert_eq!(err(&["--quiet=yes", "k"]), "unknown option '--quiet=yes'");
        assert_eq!(err(&[]), "missing KERNEL");
        assert_eq!(err(&["--memory"]), "option --memory needs a value");
        assert!(err(&["--memory", "lots", "k"]).contains("'lots'"));
        assert!(err(&["--smp", "0", "k"]).contains("--smp"));
        assert!(err(&["--timeout", "-1", "k"]).contains("--timeout"));
        assert!(matches!(parse(&["--help"]), Ok(Parsed::Help)));
    }
}
