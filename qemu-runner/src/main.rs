//! `qemu-runner [OPTIONS] KERNEL [FIRMWARE-ARGS...]`: boots one kernel and
//! exits 0 on PASS, 1 on FAIL, 2 on a usage error. Also the cargo runner for
//! the s390x target (cargo calls it as `qemu-runner <elf> <args>`).

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser};
use qemu_runner::{
    assess::seconds, kill_running_qemus, run, Diag288, RunOptions, Scenario, VersionWord,
};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

/// Boots KERNEL under qemu-system-s390x, streams its SCLP console and judges the
/// TAP it prints. FIRMWARE-ARGS (key=value words) go to the firmware via -append,
/// after expect-mem=<MiB>M, qemu-version=<X.Y> (from `QEMU --version`) and
/// diag288=<MODE> (with --diag288). Exit status: 0 PASS, 1 FAIL, 2 usage error.
#[derive(Parser, Debug)]
#[command(
    verbatim_doc_comment,
    name = "qemu-runner",
    override_usage = "qemu-runner [OPTIONS] KERNEL [FIRMWARE-ARGS...]",
    help_template = "usage: {usage}\n\n{about}\n\n{all-args}",
    disable_version_flag = true
)]
struct Args {
    /// Guest memory in MiB, `512` or `512M` (default 128)
    #[arg(long, value_name = "MIB", value_parser = parse_mib, allow_hyphen_values = true)]
    memory: Option<u32>,
    /// Number of CPUs (default 1)
    #[arg(long, value_name = "N", value_parser = parse_smp, allow_hyphen_values = true)]
    smp: Option<u32>,
    /// Kill QEMU after this long (default 60)
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, allow_hyphen_values = true)]
    timeout: Option<Duration>,
    /// Add a QEMU -device (repeatable)
    #[arg(long = "device", value_name = "DEV", allow_hyphen_values = true)]
    devices: Vec<String>,
    /// QEMU binary (default: $ZVTEST_QEMU or qemu-system-s390x)
    #[arg(long, value_name = "PATH", allow_hyphen_values = true)]
    qemu: Option<PathBuf>,
    /// QEMU data directory, passed as -L (default: $ZVTEST_QEMU_DATA)
    #[arg(long, value_name = "DIR", allow_hyphen_values = true)]
    data_dir: Option<PathBuf>,
    /// Tell the firmware qemu-version=V (e.g. 10.0) instead of QEMU's own
    /// version; 'none' leaves the word out
    #[arg(long, value_name = "V", value_parser = parse_version_word, allow_hyphen_values = true)]
    qemu_version: Option<VersionWord>,
    /// absent, present (-device diag288) or expire (also -action
    /// watchdog=inject-nmi; the WATCHDOG event is required)
    #[arg(long, value_name = "MODE", value_parser = parse_diag288, allow_hyphen_values = true)]
    diag288: Option<Diag288>,
    /// Console log (default: KERNEL.console.log)
    #[arg(long, value_name = "FILE", allow_hyphen_values = true)]
    log: Option<PathBuf>,
    /// Also write the verdict as JUnit XML to FILE, for CI: one test
    /// case per firmware check, one for the verdict, the console attached
    #[arg(long, value_name = "FILE", allow_hyphen_values = true)]
    junit: Option<PathBuf>,
    /// Do not echo the console; show it only on FAIL
    #[arg(short, long)]
    quiet: bool,
    /// The image to boot, then FIRMWARE-ARGS (every word after KERNEL is
    /// the firmware's, even one that names a runner option)
    #[arg(
        value_name = "KERNEL",
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    kernel_and_words: Vec<String>,
}

#[derive(Debug)]
struct Cli {
    scenario: Scenario,
    kernel: PathBuf,
    log: Option<PathBuf>,
    junit: Option<PathBuf>,
    quiet: bool,
}

enum Parsed {
    Run(Box<Cli>),
    Help,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let args = match Args::try_parse_from(std::iter::once("qemu-runner".to_string()).chain(args)) {
        Ok(a) => a,
        Err(e) if e.kind() == ErrorKind::DisplayHelp => return Ok(Parsed::Help),
        Err(e) => return Err(usage_error(&e)),
    };
    let mut scenario = Scenario::new("");
    if let Some(mib) = args.memory {
        scenario.memory_mib = mib;
    }
    if let Some(n) = args.smp {
        scenario.smp = n;
    }
    if let Some(t) = args.timeout {
        scenario.timeout = t;
    }
    scenario.devices = args.devices;
    if let Some(q) = args.qemu {
        scenario.qemu = q;
    }
    if let Some(d) = args.data_dir {
        scenario.data_dir = Some(d);
    }
    if let Some(v) = args.qemu_version {
        scenario.qemu_version = v;
    }
    if let Some(mode) = args.diag288 {
        scenario = scenario.diag288(mode);
    }
    let mut words = args.kernel_and_words.into_iter();
    let kernel = words.next().ok_or("missing KERNEL")?;
    for word in words {
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
        log: args.log,
        junit: args.junit,
        quiet: args.quiet,
    })))
}

/// A usage error in the runner's own words where it has them (an unknown
/// option, no kernel), else clap's first line.
fn usage_error(e: &clap::Error) -> String {
    let context = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    match e.kind() {
        ErrorKind::UnknownArgument => {
            format!(
                "unknown option '{}'",
                context(ContextKind::InvalidArg).unwrap_or_default()
            )
        }
        ErrorKind::MissingRequiredArgument => "missing KERNEL".into(),
        // Our own value checks say what is wrong and with which option.
        ErrorKind::ValueValidation => match std::error::Error::source(e) {
            Some(inner) => inner.to_string(),
            None => first_line(e),
        },
        _ => first_line(e),
    }
}

/// Clap's message without its `error: ` prefix and hints.
fn first_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("");
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// "512" or "512M".
fn parse_mib(v: &str) -> Result<u32, String> {
    let digits = v.strip_suffix(['M', 'm']).unwrap_or(v);
    parse_number("--memory", digits)
}

fn parse_smp(v: &str) -> Result<u32, String> {
    parse_number("--smp", v)
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

fn parse_version_word(v: &str) -> Result<VersionWord, String> {
    match v {
        "none" => Ok(VersionWord::Omit),
        v => Ok(VersionWord::Claim(v.parse()?)),
    }
}

fn parse_diag288(v: &str) -> Result<Diag288, String> {
    match v {
        "absent" => Ok(Diag288::Absent),
        "present" => Ok(Diag288::Present),
        "expire" => Ok(Diag288::Expire),
        other => Err(format!(
            "--diag288 needs absent, present or expire, not '{other}'"
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
                STOPPING.store(true, Ordering::SeqCst);
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

/// Set by the signal thread before it kills QEMU: the run that then ends
/// is not judged, the signal thread's exit status is the one that counts.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Waits for the signal thread to end the process, if it is doing so.
fn wait_if_stopping() {
    while STOPPING.load(Ordering::SeqCst) {
        thread::park();
    }
}

fn main() -> ExitCode {
    if let Err(e) = exit_on_signals() {
        eprintln!("qemu-runner: cannot handle signals: {e}");
        return ExitCode::FAILURE;
    }
    let cli = match parse_args(std::env::args().skip(1)) {
        Ok(Parsed::Run(cli)) => cli,
        Ok(Parsed::Help) => {
            print!("{}", Args::command().render_help());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("qemu-runner: {e}\n\n{}", Args::command().render_help());
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
    let outcome = run(&cli.scenario, &cli.kernel, &opts);
    // QEMU killed by a stop signal: no verdict, and not exit status 1
    // before the signal thread's 128 + the signal.
    wait_if_stopping();
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            eprintln!("qemu-runner: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The report CI reads; a run without it is no success.
    let junit_ok = match &cli.junit {
        Some(path) => match qemu_runner::junit::write_run(&outcome, path) {
            Ok(()) => {
                eprintln!("qemu-runner: JUnit report: {}", path.display());
                true
            }
            Err(e) => {
                eprintln!("qemu-runner: {e}");
                false
            }
        },
        None => true,
    };
    if !junit_ok {
        return ExitCode::FAILURE;
    }
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
            "--junit",
            "r.xml",
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
        assert_eq!(c.junit, Some(PathBuf::from("r.xml")));
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
        assert!(!c.quiet && c.log.is_none() && c.junit.is_none());
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
        // A flag takes no value (clap's words).
        let e = err(&["--quiet=yes", "k"]);
        assert!(e.contains("'--quiet'") && e.contains("'yes'"), "{e}");
        assert_eq!(err(&[]), "missing KERNEL");
        let e = err(&["--memory"]);
        assert!(e.contains("'--memory <MIB>'") && e.contains("value"), "{e}");
        assert!(err(&["--memory", "lots", "k"]).contains("'lots'"));
        // Our own message alone, not wrapped in clap's.
        assert_eq!(
            err(&["--memory", "0", "k"]),
            "--memory needs a positive whole number, not '0'"
        );
        assert!(err(&["--smp", "0", "k"]).contains("--smp"));
        assert!(err(&["--timeout", "-1", "k"]).contains("--timeout"));
        assert!(matches!(parse(&["--help"]), Ok(Parsed::Help)));
    }

    /// Everything after KERNEL is the firmware's, the runner's own option
    /// names too; the help names every option.
    #[test]
    fn after_the_kernel_every_word_is_the_firmwares() {
        let c = cli(&["k", "--quiet", "-h", "--memory", "1", "--"]);
        assert!(!c.quiet);
        assert_eq!(c.scenario.memory_mib, 128);
        assert_eq!(c.scenario.append, ["--quiet", "-h", "--memory", "1", "--"]);
        let c = cli(&["--log", "-l.log", "--device=-x", "k"]);
        assert_eq!(c.log, Some(PathBuf::from("-l.log")));
        assert_eq!(c.scenario.devices, ["-x"]);
        let help = Args::command().render_help().to_string();
        assert!(help.starts_with("usage: qemu-runner [OPTIONS] KERNEL [FIRMWARE-ARGS...]"));
        for option in [
            "--memory",
            "--smp",
            "--timeout",
            "--device",
            "--qemu ",
            "--data-dir",
            "--qemu-version",
            "--diag288",
            "--log",
            "--junit",
            "--quiet",
            "--help",
        ] {
            assert!(help.contains(option), "{option} in {help}");
        }
    }
}
