//! The `cargo xtask` command line, parsed by clap.
//!
//! The top-level help is our own text ([`USAGE`]); each command's
//! `--help` is clap's, from the doc comments below. Usage errors are clap's
//! and exit 2.

use crate::bench;
use crate::qemu::Release;
use clap::{Parser, Subcommand};

pub const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  build                   build the firmware: target/zvtest.elf
  image                   build, then the raw flat image target/zvtest.img and the
                          80-byte-card IPL deck target/zvtest.deck (z/VM reader)
  run [FIRMWARE-ARGS...]  build and boot the default scenario, console on screen
  test [--qemu VERSION] [--partition K/N] [-- NEXTEST-ARGS...]
                          build, image, then the suite (cargo nextest run --workspace,
                          a process and a timeout per test, tests in parallel; then
                          the doc tests) with ZVTEST_ELF and ZVTEST_IMG set; a line per
                          finished test (done/total, time, verdict), failing tests'
                          output again at the end; JUnit in target/junit.xml (each
                          firmware check of each scenario) and target/nextest/default/
                          junit-rust-tests.xml; ends with 'N passed, M failed'.
                          --partition K/N: part K of the tests dealt out over N machines;
                          --qemu 7.2: the system's QEMU (checked to be 7.2);
                          --qemu 10.0 or 11.1: the scenarios boot that QEMU (fetched
                          as by `qemu` if needed) through ZVTEST_QEMU and
                          ZVTEST_QEMU_DATA; --qemu10 is --qemu 10.0
  qemu VERSION            fetch QEMU 10.0 (Debian <codename>-backports) or 11.1
                          (Debian unstable, with its own C library) into
                          target/qemu-VERSION/ beside the system's QEMU, without
                          changing apt's state; print the binary's path
  qemu10                  the same as qemu 10.0
  bench blk [--runs N] [--ms MS] [--linux FILE]
                          the block benchmark: randread4k_qd1/qd32, seqwrite64k_qd1/qd8
                          on a 1 GiB scratch image (every read checked) and on null-co,
                          QEMU TCG, one CPU, -m 1024; N boots each (default 3); the
                          medians beside linux-anchor's JSON; report.json's blk part
  bench [--runs N]        build, boot the default scenario N times (default 5) with
                          verbose=2; print median/min/max of boot to verdict, to the
                          first TAP line and to QEMU's exit, each check's own timing,
                          the queues' rates and the hypercalls' latencies; then
                          heap.stress at stress=1, 10 and 100 and smp.stress-blk at
                          1, 2 and 4 CPUs; every bench writes its part of
                          target/bench/report.json and the plots in target/bench/plots/
  bench ... --compare OLD.json [--threshold PCT] [--only PREFIXES]
                          then compare the new report with OLD.json figure by figure;
                          exit 1 if one got worse by more than PCT % (default 10);
                          --only: the figures whose key starts with one of PREFIXES
  bench --compare OLD.json --against NEW.json [--threshold PCT] [--only PREFIXES]
                          compare two saved reports, booting nothing
  disk --seed S --size N FILE
                          write a scratch disk image of N bytes (64M, 1G, bytes) for
                          seed S: header, then pattern A (what a run finds)
  disk --verify --seed S [--untouched] FILE
                          check every byte of FILE against what a complete run
                          leaves (pattern B in the writable stripes; --untouched:
                          pattern A everywhere); exit 1 naming the first mismatch
  lint [--verbose]        cargo fmt --check; cargo clippy -D warnings on the host and
                          on s390x; the module graph of the firmware and its contract
                          crate: no cycle, nothing in arch/ naming a module outside
                          arch/ (--verbose: print the graph)
  help                    show this help

What a command needs and the machine lacks is added first: the Rust target
s390x-unknown-linux-gnu (rustup target add), and as root the Debian packages
qemu-system-misc, gcc-s390x-linux-gnu and hercules (apt-get install).
SIGINT, SIGTERM or SIGHUP stops everything xtask started; it exits 128+signal.
";

#[derive(Debug, Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    override_usage = "cargo xtask <command>",
    override_help = USAGE,
    subcommand_required = true,
    disable_version_flag = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, PartialEq, Subcommand)]
pub enum Command {
    /// Build the firmware: target/zvtest.elf
    Build,
    /// Build, then the flat image target/zvtest.img and the card deck target/zvtest.deck
    Image,
    /// Build and boot the default scenario, console on screen
    Run {
        /// Words added to the firmware's command line (key=value)
        #[arg(value_name = "FIRMWARE-ARGS")]
        words: Vec<String>,
    },
    /// Build, image, then cargo test --workspace; ends with 'N passed, M failed'
    Test {
        /// Boot the scenarios on this QEMU: 7.2 (the system's), 10.0 or 11.1 (fetched)
        #[arg(long, value_name = "VERSION", value_parser = parse_test_qemu)]
        qemu: Option<QemuChoice>,
        /// The same as --qemu 10.0
        #[arg(long, conflicts_with = "qemu")]
        qemu10: bool,
        /// Run part K of N (1 <= K <= N): the tests dealt out over N
        /// machines, each test in exactly one part
        #[arg(long, value_name = "K/N", value_parser = parse_partition)]
        partition: Option<(u32, u32)>,
        /// Passed on to cargo nextest run (e.g. `--test smp`, a filter)
        #[arg(last = true, value_name = "CARGO-ARGS")]
        cargo_args: Vec<String>,
    },
    /// Fetch QEMU 10.0 or 11.1 into target/qemu-VERSION/ and print its path
    Qemu {
        /// 10.0 or 11.1
        #[arg(value_name = "VERSION", value_parser = fetchable)]
        version: Release,
    },
    /// The same as qemu 10.0
    Qemu10,
    /// Boot the default scenario N times and print the timings; `bench
    /// blk`: the block benchmark beside a Linux guest's figures; `bench
    /// streams`: net and serial queues under the echo and serial peers
    Bench {
        /// `blk`: the block benchmark; `streams`: net and serial
        #[arg(value_name = "WHAT", value_parser = ["blk", "streams"])]
        what: Option<String>,
        /// How many boots (1 to 10000; default 5, for `blk` 3 per back-end, for `streams` 3)
        #[arg(long, value_name = "N", value_parser = bench::parse_runs)]
        runs: Option<u32>,
        /// `blk`: linux-anchor's JSON to compare with
        #[arg(long, value_name = "FILE")]
        linux: Option<std::path::PathBuf>,
        /// `blk`: milliseconds per workload (100 to 600000)
        #[arg(long, value_name = "MS", default_value_t = 3000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
        ms: u64,
        /// `streams`: the firmware's stress= (1 to 100): frames and bytes grow with it
        #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100))]
        stress: u32,
        /// Compare the new report figure by figure with this saved one;
        /// exit 1 if a figure got worse by more than --threshold
        #[arg(long, value_name = "OLD.json")]
        compare: Option<std::path::PathBuf>,
        /// With --compare: compare with this saved report instead of
        /// running the benchmark
        #[arg(long, value_name = "NEW.json", requires = "compare", conflicts_with_all = ["what", "runs", "linux"])]
        against: Option<std::path::PathBuf>,
        /// With --compare: how much worse a figure may get, per cent of
        /// the old value (times: higher; rates: lower)
        #[arg(long, value_name = "PCT", default_value_t = 10.0, requires = "compare", value_parser = crate::compare::parse_threshold)]
        threshold: f64,
        /// With --compare: only the figures whose key starts with one of
        /// these (comma-separated), e.g. 'boot to verdict,latency '
        #[arg(
            long,
            value_name = "PREFIXES",
            requires = "compare",
            value_delimiter = ','
        )]
        only: Vec<String>,
    },
    /// Make a scratch disk image, or verify one after a run
    Disk {
        /// The seed (decimal or 0x hex): the firmware's seed= for the run
        #[arg(long, value_name = "S", value_parser = parse_seed)]
        seed: u64,
        /// Make an image of this size: 64M, 1G, 4K or bytes
        #[arg(long, value_name = "N", value_parser = parse_size, required_unless_present = "verify", conflicts_with = "verify")]
        size: Option<u64>,
        /// Check FILE instead of making it (its size is its length)
        #[arg(long)]
        verify: bool,
        /// With --verify: expect pattern A everywhere (a run that only read)
        #[arg(long, conflicts_with = "size")]
        untouched: bool,
        /// The image
        #[arg(value_name = "FILE")]
        file: std::path::PathBuf,
    },
    /// fmt and clippy on both targets, then the firmware's module graph
    Lint {
        /// Print the module graph: every module and what it names
        #[arg(short, long)]
        verbose: bool,
    },
}

/// Which QEMU `test --qemu` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QemuChoice {
    /// 7.2: the system's.
    System,
    Fetched(Release),
}

/// `test`'s QEMU, with `--qemu10` read as `--qemu 10.0`.
pub fn test_choice(qemu: Option<QemuChoice>, qemu10: bool) -> Option<QemuChoice> {
    if qemu10 {
        Some(QemuChoice::Fetched(Release::V10_0))
    } else {
        qemu
    }
}

/// `K/N` with 1 <= K <= N.
pub fn parse_partition(v: &str) -> Result<(u32, u32), String> {
    let bad = || format!("--partition needs K/N with 1 <= K <= N (e.g. 1/2), not '{v}'");
    let (k, n) = v.split_once('/').ok_or_else(bad)?;
    let (k, n) = (
        k.parse::<u32>().map_err(|_| bad())?,
        n.parse::<u32>().map_err(|_| bad())?,
    );
    if k == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

fn parse_test_qemu(v: &str) -> Result<QemuChoice, String> {
    match v {
        "7.2" => Ok(QemuChoice::System),
        v => Release::parse(v)
            .map(QemuChoice::Fetched)
            .ok_or_else(|| "--qemu takes 7.2, 10.0 or 11.1".into()),
    }
}

fn parse_seed(v: &str) -> Result<u64, String> {
    qemu_runner::disks::parse_seed(v).ok_or_else(|| "a seed is a number, decimal or 0x hex".into())
}

fn parse_size(v: &str) -> Result<u64, String> {
    let size = qemu_runner::disks::parse_size(v)
        .ok_or_else(|| "a size is bytes or a number with K, M or G".to_string())?;
    match qemu_runner::disks::size_problem(size) {
        Some(why) => Err(why),
        None => Ok(size),
    }
}

fn fetchable(v: &str) -> Result<Release, String> {
    match v {
        "7.2" => Err(
            "QEMU 7.2 is the system's (Debian's qemu-system-misc), not fetched: \
                      qemu takes 10.0 or 11.1"
                .into(),
        ),
        v => {
            Release::parse(v).ok_or_else(|| "no such QEMU to fetch: qemu takes 10.0 or 11.1".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(["cargo-xtask"].iter().chain(args)).map(|c| c.command)
    }

    fn ok(args: &[&str]) -> Command {
        parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// The arguments are refused as a usage error (exit status 2) of this
    /// kind, and the message names `what`.
    fn refused(args: &[&str], kind: ErrorKind, what: &str) {
        let e = match parse(args) {
            Ok(c) => panic!("{args:?} accepted: {c:?}"),
            Err(e) => e,
        };
        let msg = e.to_string();
        assert_eq!((e.kind(), e.exit_code()), (kind, 2), "{args:?}: {msg}");
        assert!(msg.contains(what), "{args:?}: '{what}' not in: {msg}");
    }

    // Only argument errors are tested here: they are found before anything is built.
    #[test]
    fn usage_errors() {
        use ErrorKind::*;
        // Nothing at all: the help, as a usage error.
        refused(&[], DisplayHelpOnMissingArgumentOrSubcommand, USAGE);
        refused(&["frob"], InvalidSubcommand, "'frob'");
        refused(&["--frob"], UnknownArgument, "'--frob'");
        refused(&["build", "--release"], UnknownArgument, "'--release'");
        refused(&["image", "x"], UnknownArgument, "'x'");
        refused(&["run", "only=boot.*", "-v"], UnknownArgument, "'-v'");
        refused(&["test", "--nocapture"], UnknownArgument, "'--nocapture'");
        refused(
            &["test", "--qemu10", "--nocapture"],
            UnknownArgument,
            "'--nocapture'",
        );
        refused(&["qemu10", "now"], UnknownArgument, "'now'");
        // cargo's own go after --.
        refused(&["test", "x"], UnknownArgument, "'x'");
        refused(&["test", "--qemu"], InvalidValue, "--qemu <VERSION>");
        for p in ["0/2", "3/2", "1", "a/b", "1/0", "1/-2"] {
            refused(&["test", "--partition", p], ValueValidation, "K/N");
        }
        refused(
            &["test", "--qemu", "9.0"],
            ValueValidation,
            "'9.0' for '--qemu <VERSION>': --qemu takes 7.2, 10.0 or 11.1",
        );
        refused(
            &["test", "--qemu=11"],
            ValueValidation,
            "'11' for '--qemu <VERSION>': --qemu takes 7.2, 10.0 or 11.1",
        );
        refused(
            &["test", "--qemu", "11.1", "--qemu10"],
            ArgumentConflict,
            "'--qemu10'",
        );
        refused(
            &["test", "--qemu", "11.1", "--qemu", "10.0"],
            ArgumentConflict,
            "'--qemu <VERSION>' cannot be used multiple times",
        );
        refused(
            &["test", "--qemu", "11.1", "--nocapture"],
            UnknownArgument,
            "'--nocapture'",
        );
        refused(&["qemu"], MissingRequiredArgument, "<VERSION>");
        refused(
            &["qemu", "12.0"],
            ValueValidation,
            "'12.0' for '<VERSION>': no such QEMU to fetch: qemu takes 10.0 or 11.1",
        );
        refused(
            &["qemu", "7.2"],
            ValueValidation,
            "QEMU 7.2 is the system's",
        );
        refused(&["qemu", "--all"], UnknownArgument, "'--all'");
        refused(&["qemu", "11.1", "now"], UnknownArgument, "'now'");
        refused(
            &["bench", "--runs", "0"],
            ValueValidation,
            "'0' for '--runs <N>': --runs needs a whole number from 1 to 10000",
        );
        refused(&["bench", "--runs"], InvalidValue, "--runs <N>");
        refused(&["bench", "-v"], UnknownArgument, "'-v'");
        refused(&["bench", "5"], InvalidValue, "'5'");
        refused(
            &["bench", "--against", "b.json"],
            MissingRequiredArgument,
            "--compare <OLD.json>",
        );
        refused(
            &["bench", "--only", "boot"],
            MissingRequiredArgument,
            "--compare <OLD.json>",
        );
        refused(
            &["bench", "--threshold", "5"],
            MissingRequiredArgument,
            "--compare <OLD.json>",
        );
        refused(
            &["bench", "--compare", "a", "--threshold", "ten"],
            ValueValidation,
            "--threshold is a per cent from 0 to 10000",
        );
        refused(
            &["bench", "--compare", "a", "--against", "b", "--runs", "3"],
            ArgumentConflict,
            "--runs <N>",
        );
        refused(
            &["bench", "blk", "--compare", "a", "--against", "b"],
            ArgumentConflict,
            "[WHAT]",
        );
        refused(&["lint", "x"], UnknownArgument, "'x'");
        refused(&["disk", "f"], MissingRequiredArgument, "--seed <S>");
        refused(
            &["disk", "--seed", "1", "f"],
            MissingRequiredArgument,
            "--size <N>",
        );
        refused(
            &["disk", "--seed", "1", "--size", "1M", "--verify", "f"],
            ArgumentConflict,
            "--verify",
        );
        refused(
            &["disk", "--seed", "1", "--size", "1M", "--untouched", "f"],
            ArgumentConflict,
            "--untouched",
        );
        refused(
            &["disk", "--seed", "x1", "--verify", "f"],
            ValueValidation,
            "a seed is a number",
        );
        refused(
            &["disk", "--seed", "1", "--size", "64T", "f"],
            ValueValidation,
            "K, M or G",
        );
        refused(
            &["disk", "--seed", "1", "--size", "1000", "f"],
            ValueValidation,
            "too small",
        );
        refused(
            &["disk", "--seed", "1", "--verify"],
            MissingRequiredArgument,
            "<FILE>",
        );
    }

    #[test]
    fn help_is_ours() {
        for args in [&["help"][..], &["--help"], &["-h"]] {
            let e = parse(args).unwrap_err();
            assert_eq!((e.kind(), e.exit_code()), (ErrorKind::DisplayHelp, 0));
            assert_eq!(e.to_string(), USAGE, "{args:?}");
        }
        // A command's own help is clap's.
        let e = parse(&["test", "--help"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DisplayHelp);
        assert!(e.to_string().contains("--qemu10"));
    }

    fn test_args(args: &[&str]) -> (Option<QemuChoice>, Vec<String>) {
        match ok(args) {
            Command::Test {
                qemu,
                qemu10,
                cargo_args,
                ..
            } => (test_choice(qemu, qemu10), cargo_args),
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn test_arguments() {
        assert_eq!(test_args(&["test"]), (None, vec![]));
        assert_eq!(
            test_args(&["test", "--qemu", "7.2"]),
            (Some(QemuChoice::System), vec![])
        );
        assert_eq!(
            test_args(&["test", "--qemu=11.1"]).0,
            Some(QemuChoice::Fetched(Release::V11_1))
        );
        // The README's spelling stays.
        assert_eq!(
            test_args(&["test", "--qemu10"]).0,
            Some(QemuChoice::Fetched(Release::V10_0))
        );
        assert_eq!(
            test_args(&["test", "--qemu", "10.0", "--", "-p", "xtask", "--qemu"]),
            (
                Some(QemuChoice::Fetched(Release::V10_0)),
                vec!["-p".to_string(), "xtask".into(), "--qemu".into()]
            )
        );
        assert_eq!(test_args(&["test", "--", "--nocapture"]).1, ["--nocapture"]);
        match ok(&["test", "--partition", "2/3"]) {
            Command::Test { partition, .. } => assert_eq!(partition, Some((2, 3))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_commands() {
        assert_eq!(ok(&["build"]), Command::Build);
        assert_eq!(ok(&["image"]), Command::Image);
        assert_eq!(
            ok(&["run", "only=pgm", "verbose=2"]),
            Command::Run {
                words: vec!["only=pgm".into(), "verbose=2".into()]
            }
        );
        assert_eq!(
            ok(&["qemu", "11.1"]),
            Command::Qemu {
                version: Release::V11_1
            }
        );
        assert_eq!(ok(&["qemu10"]), Command::Qemu10);
        let bench = |what: Option<&str>, runs| Command::Bench {
            what: what.map(String::from),
            runs,
            linux: None,
            ms: 3000,
            stress: 8,
            compare: None,
            against: None,
            threshold: 10.0,
            only: vec![],
        };
        assert_eq!(ok(&["bench"]), bench(None, None));
        assert_eq!(ok(&["bench", "--runs=3"]), bench(None, Some(3)));
        assert_eq!(ok(&["bench", "blk"]), bench(Some("blk"), None));
        assert_eq!(ok(&["bench", "streams"]), bench(Some("streams"), None));
        assert_eq!(
            ok(&["bench", "streams", "--stress", "20"]),
            Command::Bench {
                what: Some("streams".into()),
                runs: None,
                linux: None,
                ms: 3000,
                stress: 20,
                compare: None,
                against: None,
                threshold: 10.0,
                only: vec![],
            }
        );
        let compared = |args: &[&str]| match ok(args) {
            Command::Bench {
                runs,
                compare,
                against,
                threshold,
                only,
                ..
            } => (runs, compare, against, threshold, only),
            other => panic!("{args:?}: {other:?}"),
        };
        assert_eq!(
            compared(&["bench", "--runs", "2", "--compare", "old.json"]),
            (Some(2), Some("old.json".into()), None, 10.0, vec![])
        );
        assert_eq!(
            compared(&[
                "bench",
                "--compare",
                "a.json",
                "--against",
                "b.json",
                "--threshold",
                "2.5",
                "--only",
                "boot to verdict,latency "
            ]),
            (
                None,
                Some("a.json".into()),
                Some("b.json".into()),
                2.5,
                vec!["boot to verdict".to_string(), "latency ".into()]
            )
        );
        assert_eq!(
            ok(&["disk", "--seed", "0x10", "--size", "64M", "d.img"]),
            Command::Disk {
                seed: 16,
                size: Some(64 << 20),
                verify: false,
                untouched: false,
                file: "d.img".into()
            }
        );
        assert_eq!(
            ok(&["disk", "--verify", "--untouched", "--seed=7", "d.img"]),
            Command::Disk {
                seed: 7,
                size: None,
                verify: true,
                untouched: true,
                file: "d.img".into()
            }
        );
        assert_eq!(ok(&["lint"]), Command::Lint { verbose: false });
        assert_eq!(ok(&["lint", "-v"]), Command::Lint { verbose: true });
    }
}
