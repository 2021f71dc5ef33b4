//! `cargo xtask <build|image|run|test|qemu|bench|lint>`: the project's build and test driver.

mod bench;
mod blkbench;
mod cli;
mod cmd;
mod compare;
mod deck;
mod elf;
mod libtest;
mod modgraph;
mod plots;
mod qemu;
mod queuebench;
mod report;
mod setup;
mod smpbench;

use clap::Parser;
use cli::{Cli, Command, QemuChoice};
use libtest::Tally;
use qemu::Release;
use qemu_runner::{RunOptions, Scenario, QEMU_DATA_ENV, QEMU_ENV};
use std::env;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{self, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;
use xtask::signals;

const TARGET: &str = "s390x-unknown-linux-gnu";
const FIRMWARE_PACKAGE: &str = "zvtest-firmware";
const FIRMWARE_BIN: &str = "zvtest";

/// A failure that ends the task (exit status 1; usage errors are clap's,
/// exit status 2).
struct Error(String);

type Result<T> = std::result::Result<T, Error>;

fn failed(msg: impl Into<String>) -> Error {
    Error(msg.into())
}

fn main() -> ExitCode {
    let command = match Cli::try_parse() {
        Ok(cli) => cli.command,
        Err(e) => {
            // Help on stdout with status 0; a usage error on stderr with 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    if let Err(e) = signals::install() {
        eprintln!("xtask: cannot set up signal handling: {e}");
        return ExitCode::FAILURE;
    }
    let result = dispatch(command);
    // A step that failed because a stop signal ended it: the handler
    // exits with the signal's status; nothing more to say.
    signals::wait_if_stopping();
    match result {
        Ok(code) => code,
        Err(Error(msg)) => {
            eprintln!("xtask: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command) -> Result<ExitCode> {
    let paths = Paths::new();
    match command {
        Command::Build => {
            prerequisites(&paths, Needs::BUILD)?;
            build(&paths)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Image => {
            prerequisites(&paths, Needs::BUILD)?;
            build(&paths)?;
            image(&paths)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { words } => {
            prerequisites(&paths, Needs::BOOT)?;
            build(&paths)?;
            boot(&paths, &words)
        }
        Command::Test {
            qemu,
            qemu10,
            partition,
            cargo_args,
        } => {
            let choice = cli::test_choice(qemu, qemu10);
            let mut needs = Needs::TEST;
            // A fetched QEMU stands in for the system's.
            needs.qemu = !matches!(choice, Some(QemuChoice::Fetched(_)));
            prerequisites(&paths, needs)?;
            // The whole suite's test binaries build while the firmware does:
            // its build keeps one core busy for most of its time.
            let host = if cargo_args.is_empty() {
                Some(prebuild_suite(&paths)?)
            } else {
                None
            };
            let firmware = build(&paths).and_then(|_| image(&paths));
            if let Some(mut host) = host {
                // A failed build shows again, with its errors, in the run.
                let _ = host.wait();
                signals::wait_if_stopping();
            }
            firmware?;
            let qemu = match choice {
                None => None,
                Some(QemuChoice::System) => Some(system_qemu()?),
                Some(QemuChoice::Fetched(r)) => Some(fetch_qemu(&paths, r)?),
            };
            test(&paths, &cargo_args, qemu.as_ref(), partition)
        }
        Command::Qemu { version } => fetch_only(&paths, version),
        Command::Qemu10 => fetch_only(&paths, Release::V10_0),
        Command::Bench {
            what,
            runs,
            linux,
            ms,
            stress,
            compare,
            against,
            threshold,
            only,
        } => {
            // Read first: a bad file fails before the boots, and OLD may be
            // the report the bench is about to overwrite.
            let old = match &compare {
                Some(f) => Some((f, report::Report::read(f).map_err(failed)?)),
                None => None,
            };
            if let (Some((old_path, old)), Some(new)) = (&old, &against) {
                // Two saved reports: nothing to boot.
                return compare_reports(old_path, old, new, threshold, &only);
            }
            prerequisites(&paths, Needs::BOOT)?;
            build(&paths)?;
            let code = match what.as_deref() {
                Some("blk") => run_blk_bench(&paths, runs.unwrap_or(3), linux.as_deref(), ms),
                Some("streams") => run_streams_bench(&paths, runs.unwrap_or(3), stress),
                _ => run_bench(&paths, runs.unwrap_or(bench::DEFAULT_RUNS)),
            }?;
            match old {
                Some((old_path, old)) => {
                    let compared =
                        compare_reports(old_path, &old, &report_path(&paths), threshold, &only)?;
                    Ok(if code == ExitCode::SUCCESS {
                        compared
                    } else {
                        code
                    })
                }
                None => Ok(code),
            }
        }
        Command::Lint { verbose } => lint(&paths, verbose),
        Command::Disk {
            seed,
            size,
            verify,
            untouched,
            file,
        } => match size.filter(|_| !verify) {
            Some(size) => make_disk(&file, seed, size),
            None => verify_disk(&file, seed, untouched),
        },
    }
}

/// `disk --size`: a fresh scratch image.
fn make_disk(file: &Path, seed: u64, size: u64) -> Result<ExitCode> {
    qemu_runner::disks::create(file, seed, size)
        .map_err(|e| failed(format!("cannot write {}: {e}", file.display())))?;
    let writable = qemu_runner::disks::writable_count(seed, size);
    eprintln!(
        "xtask: wrote {} ({size} bytes, seed {seed:#x}: header and pattern A; {writable} writable stripes)",
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `disk --verify`: every byte against what a complete run (or, with
/// `untouched`, none) leaves; exit 1 naming the first mismatch.
fn verify_disk(file: &Path, seed: u64, untouched: bool) -> Result<ExitCode> {
    use qemu_runner::disks::{verify, Expect};
    let expect = if untouched {
        Expect::Untouched
    } else {
        Expect::Complete
    };
    let v = verify(file, seed, expect).map_err(|p| failed(format!("{}: {p}", file.display())))?;
    if v.is_clean() {
        eprintln!("xtask: {}: {}", file.display(), v.summary());
        Ok(ExitCode::SUCCESS)
    } else {
        Err(failed(format!("{}: {}", file.display(), v.summary())))
    }
}

/// `qemu VERSION`: fetch it and say how to use it.
fn fetch_only(paths: &Paths, release: Release) -> Result<ExitCode> {
    let q = fetch_qemu(paths, release)?;
    eprintln!(
        "xtask: to boot every scenario on it:\n  {QEMU_ENV}={} {QEMU_DATA_ENV}={} cargo xtask test\n\
         or: cargo xtask test --qemu {}",
        q.binary.display(),
        q.data_dir.display(),
        release.name()
    );
    println!("{}", q.binary.display());
    Ok(ExitCode::SUCCESS)
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
fn cargo(paths: &Paths) -> process::Command {
    let mut c = process::Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(&paths.root);
    c
}

fn status(mut cmd: process::Command, what: &str) -> Result<()> {
    let st = cmd
        .status()
        .map_err(|e| failed(format!("cannot run {what}: {e}")))?;
    signals::wait_if_stopping();
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

/// `lint`: formatting, clippy on the host and on s390x, the module graph.
/// Every step runs, so one run shows everything there is to fix.
fn lint(paths: &Paths, verbose: bool) -> Result<ExitCode> {
    // The firmware's build script assembles boot/ with the cross gcc, under
    // clippy too.
    prerequisites(paths, Needs::BUILD)?;
    let steps: [(&str, &[&str]); 3] = [
        ("cargo fmt --check", &["fmt", "--all", "--", "--check"]),
        (
            "cargo clippy on the host",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        (
            "cargo clippy on s390x",
            &[
                "clippy",
                "--release",
                "-p",
                FIRMWARE_PACKAGE,
                "--target",
                TARGET,
                "--",
                "-D",
                "warnings",
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (what, args) in steps {
        eprintln!("xtask: lint: {what}");
        let mut c = cargo(paths);
        c.args(args);
        if let Err(Error(msg)) = status(c, what) {
            eprintln!("xtask: {msg}");
            failures.push(what);
        }
    }
    eprintln!("xtask: lint: module graph");
    if !module_graph(paths, verbose)? {
        failures.push("module graph");
    }
    if failures.is_empty() {
        eprintln!("xtask: lint: clean");
        Ok(ExitCode::SUCCESS)
    } else {
        Err(failed(format!("lint: {} failed", failures.join(", "))))
    }
}

/// The firmware's module graph: no cycle, nothing in arch/ naming a module
/// outside it. Prints what it finds (and with `verbose` the whole graph);
/// true if clean.
fn module_graph(paths: &Paths, verbose: bool) -> Result<bool> {
    let (specs, layer) = modgraph::firmware();
    let source = modgraph::Files {
        base: paths.root.clone(),
    };
    let tree = modgraph::load(&specs, &source).map_err(|e| failed(format!("module graph: {e}")))?;
    let edges = modgraph::edges(&tree);
    if verbose {
        eprint!("{}", modgraph::summary(&tree, &edges));
    }
    let findings = modgraph::check(&tree, &edges, &layer);
    eprint!("{}", modgraph::report(&tree, &edges, &layer, &findings));
    Ok(findings.is_clean())
}

/// The scenario `run` and `bench` boot: every device model this QEMU
/// offers (qemu_runner::defaults), scratch files under target/; the models
/// left out are named.
fn default_scenario(paths: &Paths) -> Result<Scenario> {
    let scratch = qemu_runner::defaults::scratch_dir(&paths.target);
    let (s, left_out) = qemu_runner::default_scenario(&scratch).map_err(|e| {
        failed(format!(
            "cannot make the default scenario's scratch files in {}: {e}",
            scratch.display()
        ))
    })?;
    for (model, why) in left_out {
        eprintln!("xtask: default scenario: left out {model}: {why}");
    }
    Ok(s)
}

/// Boots a scenario; a run cut short by a stop signal reports nothing.
fn boot_once(scenario: &Scenario, paths: &Paths, opts: &RunOptions) -> Result<qemu_runner::Run> {
    let o = qemu_runner::run(scenario, &paths.elf(), opts);
    signals::wait_if_stopping();
    o.map_err(|e| failed(e.to_string()))
}

fn boot(paths: &Paths, words: &[String]) -> Result<ExitCode> {
    let scenario = default_scenario(paths)?.append(words.join(" "));
    let opts = RunOptions::default()
        .log(paths.target.join("zvtest-run.log"))
        .echo(true);
    let outcome = boot_once(&scenario, paths, &opts)?;
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

/// The stream benchmark: `runs` boots of net's echo (dgram, packed ring
/// where offered) and serial's ports at `stress=`, and as many of a
/// 4-pair tap where this host can make a network namespace; every byte
/// checked as in the tests. Per-queue medians and the peers' figures are
/// printed and written to the report's `streams` part. A failing boot
/// fails the bench.
fn run_streams_bench(paths: &Paths, runs: u32, stress: u32) -> Result<ExitCode> {
    use qemu_runner::net::{Echo, NetScenario};
    let logs = paths.target.join("bench");
    fs::create_dir_all(&logs).map_err(|e| failed(format!("{}: {e}", logs.display())))?;
    let timeout = Duration::from_secs(60 + 20 * u64::from(stress));
    let words = format!("only=net.echo,serial.stress stress={stress}");
    let mut scenarios = vec![Scenario::new("bench-streams")
        .timeout(timeout)
        .net_echo(
            "fe.0.0002",
            qemu_runner::defaults::ECHO_MAC,
            Echo::dgram().packed(),
        )
        .virtio_serial(qemu_runner::defaults::default_serial("fe.0.0003").packed(true))
        .append(&words)];
    match qemu_runner::net::tap_namespace_available() {
        Ok(()) => scenarios.push(
            Scenario::new("bench-streams-tap")
                .timeout(timeout)
                .net_echo("fe.0.0012", qemu_runner::defaults::ECHO_MAC, Echo::tap(4))
                .append(format!("only=net.echo stress={stress}")),
        ),
        Err(why) => eprintln!("xtask: bench streams: no tap scenario: {why}"),
    }
    let (mut gathered, mut failures) = (queuebench::Gathered::default(), Vec::new());
    for s in &scenarios {
        eprintln!(
            "xtask: bench streams: {runs} boots of {}, command line '{}'",
            s.name,
            s.command_line()
        );
        for i in 1..=runs {
            let opts = RunOptions::default().log(logs.join(format!("{}-{i}.log", s.name)));
            let o = boot_once(s, paths, &opts)?;
            eprintln!("xtask: {} {i}/{runs}: {}", s.name, o.summary_line());
            if !o.passed() {
                failures.push((o.summary_line(), o.failure_report()));
            }
            gathered.add(&o);
        }
    }
    let (queues, peers) = (gathered.queues(), gathered.peers());
    println!("{}", queuebench::table(&queues).trim_end());
    let part = report::StreamsBench {
        measured: measured(&scenarios[0], runs, failures.iter().map(|(l, _)| l.clone())),
        stress,
        scenarios: scenarios.iter().map(|s| s.name.clone()).collect(),
        queues,
        peers,
    };
    write_report(paths, &scenarios[0].qemu, |r| r.streams = Some(part))?;
    finish_bench("bench streams", &failures)
}

/// The block benchmark: `runs` boots on a 1 GiB scratch image and as many
/// on null-co, the four workloads for `ms` each; medians beside the Linux
/// reference (linux-anchor's JSON), the table printed and the report's
/// `blk` part written. A boot that fails fails the bench.
fn run_blk_bench(paths: &Paths, runs: u32, linux: Option<&Path>, ms: u64) -> Result<ExitCode> {
    let anchor = match linux {
        Some(f) => Some(
            fs::read_to_string(f)
                .map_err(|e| failed(format!("cannot read {}: {e}", f.display())))
                .and_then(|t| {
                    // linux-anchor prints one JSON line; take the last.
                    let line = t.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
                    serde_json::from_str::<serde_json::Value>(line).map_err(|e| {
                        failed(format!("{}: not linux-anchor's JSON: {e}", f.display()))
                    })
                })?,
        ),
        None => None,
    };
    let logs = paths.target.join("bench");
    fs::create_dir_all(&logs).map_err(|e| failed(format!("{}: {e}", logs.display())))?;
    let words = format!(
        "only=blk.stress bench={} bench-ms={ms}",
        blkbench::WORKLOADS.join(",")
    );
    const BUS: &str = "fe.0.0001";
    let timeout = Duration::from_millis(4 * ms * 3 + 120_000);
    let base = |name: &str| {
        Scenario::new(name)
            .accel("tcg")
            .smp(1)
            .memory_mib(1024)
            .timeout(timeout)
    };
    let image = base("bench-blk-image")
        .scratch_blk(BUS, qemu_runner::disks::Disk::new(1 << 30))
        .disk_dir(logs.join("blk-disk"))
        .append(&words);
    let null = base("bench-blk-null-co")
        .extra_args([
            "-blockdev",
            "driver=null-co,node-name=null0,size=1073741824,read-zeroes=on",
            "-device",
            "virtio-blk-ccw,drive=null0,devno=fe.0.0001",
        ])
        .expect_device(BUS, "blk")
        .append(format!("{words} scratch={BUS} disks={BUS}:1G:null"));
    let mut samples: [Vec<blkbench::Sample>; 2] = [Vec::new(), Vec::new()];
    let mut failures = Vec::new();
    for (k, s) in [&image, &null].into_iter().enumerate() {
        for i in 1..=runs {
            let opts = RunOptions::default().log(logs.join(format!("{}-{i}.log", s.name)));
            let o = boot_once(s, paths, &opts)?;
            eprintln!("xtask: {} {i}/{runs}: {}", s.name, o.summary_line());
            if !o.passed() {
                failures.push((o.summary_line(), o.failure_report()));
            }
            samples[k].extend(o.tap.diagnostics.iter().filter_map(|d| blkbench::parse(d)));
        }
    }
    let entries: std::collections::BTreeMap<String, blkbench::Entry> = blkbench::WORKLOADS
        .iter()
        .map(|w| {
            (
                w.to_string(),
                blkbench::entry(&samples[0], &samples[1], anchor.as_ref(), w),
            )
        })
        .collect();
    println!("{}", blkbench::table(&entries).trim_end());
    let part = report::BlkBench {
        measured: measured(&image, runs, failures.iter().map(|(l, _)| l.clone())),
        ms_per_workload: ms,
        linux_anchor: anchor.as_ref().map(|a| {
            serde_json::json!({
                "qemu": a.get("qemu"),
                "kernel": a.get("kernel_pkg"),
                "host_cpu": a.get("host_cpu"),
            })
        }),
        workloads: entries,
    };
    write_report(paths, &image.qemu, |r| r.blk = Some(part))?;
    finish_bench("bench blk", &failures)
}

/// A failing boot fails the benchmark, the first one's report shown.
fn finish_bench(what: &str, failures: &[(String, String)]) -> Result<ExitCode> {
    let Some((_, first)) = failures.first() else {
        return Ok(ExitCode::SUCCESS);
    };
    eprintln!(
        "xtask: {what}: {} boots failed; the first:\n{first}",
        failures.len()
    );
    Ok(ExitCode::FAILURE)
}

fn report_path(paths: &Paths) -> PathBuf {
    paths.target.join("bench").join("report.json")
}

/// How a part was measured: now, the scenario's accelerator and firmware
/// command line, the boots and the summary line of each failed one.
fn measured(s: &Scenario, runs: u32, failed: impl IntoIterator<Item = String>) -> report::Measured {
    report::Measured {
        date: report::utc_now(),
        accel: s.accel.clone(),
        command_line: s.command_line(),
        runs,
        failed_boots: failed.into_iter().collect(),
    }
}

/// `git describe --always --dirty` of the work tree, or why not.
fn describe_commit(paths: &Paths) -> String {
    let mut git = process::Command::new("git");
    git.args(["describe", "--always", "--dirty"])
        .current_dir(&paths.root);
    match cmd::output_within(git, "git describe", Duration::from_secs(30)) {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => format!(
            "unknown (git describe: {})",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("unknown ({e})"),
    }
}

/// Puts a part into target/bench/report.json (the earlier report's other
/// parts kept if measured on the same host, QEMU and commit) and draws
/// the plots beside it (target/bench/plots/).
fn write_report(paths: &Paths, qemu: &Path, fill: impl FnOnce(&mut report::Report)) -> Result<()> {
    let version = qemu_runner::detect_qemu_version(qemu)
        .map_or_else(|e| format!("unknown ({e})"), |v| v.full());
    let mut r = report::Report::new(
        report::this_host(),
        report::Qemu {
            binary: qemu.display().to_string(),
            version,
        },
        report::Zvtest {
            commit: describe_commit(paths),
        },
    );
    fill(&mut r);
    let out = report_path(paths);
    if out.exists() {
        match report::Report::read(&out) {
            Ok(earlier) => {
                if let Some(note) = r.keep_parts_of(earlier) {
                    eprintln!("xtask: bench: {note}");
                }
            }
            Err(e) => eprintln!("xtask: bench: the earlier report is replaced: {e}"),
        }
    }
    out.parent()
        .map_or(Ok(()), fs::create_dir_all)
        .and_then(|()| fs::write(&out, r.to_json()))
        .map_err(|e| failed(format!("{}: {e}", out.display())))?;
    eprintln!("xtask: bench: wrote {}", out.display());
    let plots = paths.target.join("bench").join("plots");
    for p in plots::write_all(&r, &plots).map_err(failed)? {
        eprintln!("xtask: bench: plot {}", p.display());
    }
    Ok(())
}

/// `--compare OLD [--against NEW]`: every figure's change; exit status 1
/// if one got worse by more than `threshold` per cent.
fn compare_reports(
    old: &Path,
    o: &report::Report,
    new: &Path,
    threshold: f64,
    only: &[String],
) -> Result<ExitCode> {
    let n = report::Report::read(new).map_err(failed)?;
    eprintln!(
        "xtask: bench: comparing {} ({}, {}, QEMU {}) with {} ({}, {}, QEMU {})",
        old.display(),
        o.zvtest.commit,
        o.host.date,
        o.qemu.version,
        new.display(),
        n.zvtest.commit,
        n.host.date,
        n.qemu.version
    );
    let c = compare::compare(o, &n, threshold, only);
    print!("{}", compare::render(&c, threshold));
    Ok(if c.regressions() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A stress boot may run far longer than a normal one.
const STRESS_BOOT_TIMEOUT: Duration = Duration::from_secs(180);

/// Boots the default scenario `runs` times with verbose=2 and prints the
/// timing tables, then `heap.stress` alone at each stress level and its
/// scaling. The verdict is the main runs': the stress boots are reported,
/// not judged (a level may outgrow the check's timeout).
fn run_bench(paths: &Paths, runs: u32) -> Result<ExitCode> {
    let scenario = default_scenario(paths)?.append("verbose=2");
    let logs = paths.target.join("bench");
    let mut m = bench::Measurements::default();
    let mut failures = Vec::new();
    let mut gathered = queuebench::Gathered::default();
    eprintln!(
        "xtask: bench: {runs} boots of the default scenario, command line '{}'",
        scenario.command_line()
    );
    for i in 1..=runs {
        let opts = RunOptions::default().log(logs.join(format!("run-{i}.log")));
        let start = std::time::Instant::now();
        let o = boot_once(&scenario, paths, &opts)?;
        let to_verdict = start.elapsed();
        eprintln!("xtask: run {i}/{runs}: {}", o.summary_line());
        if !o.passed() {
            failures.push((o.summary_line(), o.failure_report()));
        }
        m.add(&o, to_verdict);
        gathered.add(&o);
    }
    let (queues, peers) = (gathered.queues(), gathered.peers());
    let mut stress = Vec::new();
    for level in bench::STRESS_LEVELS {
        // heap.stress alone needs no device.
        let s = Scenario::new(format!("stress-{level}"))
            .append(format!(
                "only={} verbose=2 stress={level}",
                bench::STRESS_CHECK
            ))
            .timeout(STRESS_BOOT_TIMEOUT);
        let opts = RunOptions::default().log(logs.join(format!("stress-{level}.log")));
        let o = boot_once(&s, paths, &opts)?;
        eprintln!("xtask: {}", o.summary_line());
        stress.push(bench::StressRun::from_outcome(level, &o));
    }
    let smp = run_smp_series(paths, runs, &logs, &mut failures)?;
    println!("{}", m.table().trim_end());
    println!();
    println!("{}", queuebench::table(&queues).trim_end());
    println!();
    println!("{}", bench::stress_table(&stress).trim_end());
    println!();
    println!("{}", smpbench::table(&smp).trim_end());
    let (boot, checks, latencies) = m.report_parts();
    let part = report::DefaultBench {
        measured: measured(&scenario, runs, failures.iter().map(|(l, _)| l.clone())),
        boot,
        checks,
        queues,
        latencies,
        stress_scaling: stress
            .iter()
            .map(|s| report::StressLevel {
                level: s.level,
                time_us: s.micros,
                result: s.result.clone(),
            })
            .collect(),
        smp,
        peers,
    };
    write_report(paths, &scenario.qemu, |r| r.default = Some(part))?;
    finish_bench("bench", &failures)
}

/// `smp.stress-blk` at each of [`smpbench::CPU_COUNTS`], `runs` boots
/// each: a request queue per CPU (the one-CPU series: one queue on two
/// CPUs). A failing boot fails the bench.
fn run_smp_series(
    paths: &Paths,
    runs: u32,
    logs: &Path,
    failures: &mut Vec<(String, String)>,
) -> Result<Vec<smpbench::Series>> {
    let mut all = Vec::new();
    for cpus in smpbench::CPU_COUNTS {
        let s = Scenario::new(format!("smp-blk-{cpus}"))
            .accel("tcg,thread=multi")
            .smp(cpus.max(2))
            .scratch_blk(
                "fe.0.0001",
                qemu_runner::disks::Disk::new(16 << 20).queues(cpus as u16),
            )
            .append("only=smp.stress-blk stress=4")
            .timeout(STRESS_BOOT_TIMEOUT);
        let mut samples = Vec::new();
        for i in 1..=runs {
            let opts = RunOptions::default().log(logs.join(format!("smp-blk-{cpus}-{i}.log")));
            let o = boot_once(&s, paths, &opts)?;
            eprintln!("xtask: smp-blk-{cpus} {i}/{runs}: {}", o.summary_line());
            if !o.passed() {
                failures.push((o.summary_line(), o.failure_report()));
            }
            samples.push(smpbench::sample(&o.tap.diagnostics));
        }
        all.push(smpbench::series(cpus, &samples));
    }
    smpbench::relate(&mut all);
    Ok(all)
}

/// QEMU `release` in target/qemu-X.Y, fetched if it is not there yet.
fn fetch_qemu(paths: &Paths, release: Release) -> Result<qemu::Qemu> {
    let q = qemu::ensure(&paths.target, release, is_root()).map_err(failed)?;
    eprintln!(
        "xtask: QEMU {} at {} (data {})",
        q.version.full(),
        q.binary.display(),
        q.data_dir.display()
    );
    Ok(q)
}

/// `--qemu 7.2`: the system's QEMU, which must be 7.2.
fn system_qemu() -> Result<qemu::Qemu> {
    let binary = find_program(OsStr::new(setup::QEMU.program))
        .ok_or_else(|| failed(format!("no {} on PATH", setup::QEMU.program)))?;
    let version = qemu_runner::detect_qemu_version(&binary).map_err(failed)?;
    if (version.major, version.minor) != (7, 2) {
        return Err(failed(format!(
            "the system's QEMU ({}) is {}, not 7.2: run without --qemu to use it",
            binary.display(),
            version.full()
        )));
    }
    eprintln!("xtask: QEMU {} at {}", version.full(), binary.display());
    Ok(qemu::Qemu {
        binary,
        data_dir: PathBuf::new(),
        version,
    })
}

/// Which part of the suite a machine runs: `--partition K/N`.
pub type Partition = (u32, u32);

/// Runs the suite with cargo-nextest (each test in a process of its own,
/// as many at once as the machine has cores, a timeout on each: see
/// .config/nextest.toml), then the doc tests with `cargo test --doc`
/// (nextest does not run them; in the first part of a partitioned run
/// only, and not when CARGO-ARGS choose tests), passing the output
/// through while adding up the results, and ends with the one line `N
/// passed, M failed`. With `qemu`, every scenario boots that QEMU.
/// Each runner is a process group of its own, which a stop signal ends
/// whole (see [`signals`]).
fn test(
    paths: &Paths,
    extra: &[String],
    qemu: Option<&qemu::Qemu>,
    partition: Option<Partition>,
) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    // Each scenario leaves its JUnit report here (tests/common's boot);
    // those of an earlier run must not be merged into this one's.
    let scenarios = paths.target.join("tmp").join("scenarios");
    qemu_runner::junit::clear(&scenarios).map_err(failed)?;
    // What the tests probe of the host once per run (tests/common/models.rs).
    let probes = paths
        .target
        .join("tmp")
        .join(format!("probes-{}", process::id()));
    let _ = fs::remove_dir_all(&probes);
    let env = |c: &mut process::Command| {
        c.env("ZVTEST_ELF", paths.elf())
            .env("ZVTEST_IMG", paths.img())
            .env("ZVTEST_PROBE_DIR", &probes)
            // Not the terminal's foreground group: it must never read the terminal.
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(q) = qemu {
            c.env(QEMU_ENV, &q.binary);
            if q.data_dir.as_os_str().is_empty() {
                c.env_remove(QEMU_DATA_ENV);
            } else {
                c.env(QEMU_DATA_ENV, &q.data_dir);
            }
        }
    };
    nextest_present(paths)?;
    let mut c = cargo(paths);
    c.args(["nextest", "run", "--workspace"])
        .args(["--show-progress", "counter"])
        .args(threads_args(extra))
        .args(partition_args(partition))
        .args(extra);
    env(&mut c);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let summary = Arc::new(Mutex::new(None));
    // The doc tests beside the suite (their compiling is seconds of one
    // core), their output held back and shown after it.
    let doc = if runs_doc_tests(extra, partition) {
        let mut c = cargo(paths);
        c.args(["test", "--doc", "--workspace", "--no-fail-fast"]);
        env(&mut c);
        Some(Teed::spawn(&mut c, "cargo test --doc", &tally, None, true)?)
    } else {
        None
    };
    let nextest_ok =
        Teed::spawn(&mut c, "cargo nextest run", &tally, Some(&summary), false)?.finish()?;
    let summary = *summary.lock().unwrap_or_else(|p| p.into_inner());
    let doc_ok = match doc {
        Some(d) => d.finish()?,
        None => true,
    };
    let t = *tally.lock().unwrap_or_else(|p| p.into_inner());
    let _ = fs::remove_dir_all(&probes);

    // One JUnit document: every firmware check of every scenario.
    let junit = paths.target.join("junit.xml");
    let junit_ok = match qemu_runner::junit::merge(&scenarios, &junit) {
        Ok((suites, cases, failures)) => {
            eprintln!(
                "xtask: {}: {suites} scenarios, {cases} checks, {failures} failed",
                junit.display()
            );
            true
        }
        Err(e) => {
            eprintln!("xtask: no JUnit report: {e}");
            false
        }
    };

    let mut passed = t.passed;
    // A doc-test binary that crashed printed no result line: one failure.
    let mut failed_count = t.failed + t.crashed();
    if t.crashed() > 0 {
        eprintln!(
            "xtask: {} doc-test binaries ended without a result line",
            t.crashed()
        );
    }
    match summary {
        Some(s) => {
            passed += s.passed;
            failed_count += s.failed();
        }
        None => {
            eprintln!("xtask: cargo nextest ended without its Summary line");
            failed_count += 1;
        }
    }
    if passed + failed_count == 0 {
        eprintln!("xtask: no test ran");
    }
    eprintln!(
        "xtask: suite done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let _ = io::stderr().flush();
    println!("{passed} passed, {failed_count} failed");
    let ok = nextest_ok && doc_ok && junit_ok && failed_count == 0 && passed > 0;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// nextest's arguments for part K of N: "count" deals each test binary's
/// tests out in turn, so the parts are near even and each test is in
/// exactly one.
fn partition_args(partition: Option<Partition>) -> Vec<String> {
    partition
        .map(|(k, n)| vec!["--partition".to_string(), format!("count:{k}/{n}")])
        .unwrap_or_default()
}

/// Two tests per core: a scenario spends much of its time waiting (for
/// QEMU to start, for a timeout a negative scenario must reach), so one
/// per core leaves cores idle (on our 2 cores: 138 s for the suite, 106 s
/// with 4 at once). Unless CARGO-ARGS say how many.
fn threads_args(extra: &[String]) -> Vec<String> {
    let given = extra
        .iter()
        .any(|a| a == "-j" || a.starts_with("--test-threads") || a.starts_with("-j"));
    if given {
        return Vec::new();
    }
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    vec!["--test-threads".to_string(), (2 * cores).to_string()]
}

/// The doc tests run with the whole suite, and in part 1 of a partitioned
/// one; not when CARGO-ARGS pick tests.
fn runs_doc_tests(extra: &[String], partition: Option<Partition>) -> bool {
    extra.is_empty() && partition.is_none_or(|(k, _)| k == 1)
}

/// Starts building the suite's test binaries (`cargo nextest run
/// --no-run`, the build the run itself then finds done) in a process
/// group of its own, at a lower priority: the firmware's build beside it
/// is the longer chain (its last 40 s one rustc), which then keeps a core
/// to itself while this one takes the rest (a clean `cargo xtask test` on
/// two cores: the firmware ready 25 s after the test binaries before).
fn prebuild_suite(paths: &Paths) -> Result<process::Child> {
    use std::os::unix::process::CommandExt;
    nextest_present(paths)?;
    let mut c = cargo(paths);
    c.args(["nextest", "run", "--workspace", "--no-run"])
        .stdin(Stdio::null());
    // SAFETY: between fork and exec the closure makes one system call
    // (async-signal-safe) and touches no memory of ours.
    unsafe {
        c.pre_exec(|| {
            // Best effort: at the usual priority if refused.
            let _ = libc::setpriority(libc::PRIO_PROCESS, 0, 10);
            Ok(())
        });
    }
    signals::spawn_group(&mut c).map_err(|e| failed(format!("cannot run cargo nextest: {e}")))
}

/// cargo-nextest runs the suite; a new machine of ours has it, others may not.
fn nextest_present(paths: &Paths) -> Result<()> {
    let ok = cargo(paths)
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(failed(
            "cargo-nextest is not installed: `cargo install cargo-nextest --locked` \
             (or a prebuilt one, see https://nexte.st) runs the suite",
        ))
    }
}

/// A child in a process group of its own whose output is copied through
/// line by line while `tally` (and `summary`: nextest's closing line) add
/// it up.
struct Teed {
    child: process::Child,
    what: String,
    copiers: [thread::JoinHandle<()>; 2],
    /// Output kept until [`Teed::finish`] (stdout, stderr) instead of
    /// copied at once.
    held: Option<[Held; 2]>,
}

type Held = Arc<Mutex<Vec<u8>>>;

impl Teed {
    fn spawn(
        c: &mut process::Command,
        what: &str,
        tally: &Arc<Mutex<Tally>>,
        summary: Option<&Arc<Mutex<Option<libtest::NextestSummary>>>>,
        hold: bool,
    ) -> Result<Teed> {
        let mut child =
            signals::spawn_group(c).map_err(|e| failed(format!("cannot run {what}: {e}")))?;
        let held = hold.then(|| [Held::default(), Held::default()]);
        let keep = |i: usize| held.as_ref().map(|h| Arc::clone(&h[i]));
        let out = tee(child.stdout.take(), tally, summary, true, keep(0));
        let err = tee(child.stderr.take(), tally, summary, false, keep(1));
        Ok(Teed {
            child,
            what: what.to_string(),
            copiers: [out, err],
            held,
        })
    }

    /// Waits for the child and its output; shows what was held. Whether
    /// it succeeded.
    fn finish(mut self) -> Result<bool> {
        let what = &self.what;
        let st = self
            .child
            .wait()
            .map_err(|e| failed(format!("{what}: {e}")))?;
        signals::wait_if_stopping();
        let [out, err] = self.copiers;
        let _ = (out.join(), err.join());
        if let Some([out, err]) = &self.held {
            let take = |h: &Held| std::mem::take(&mut *h.lock().unwrap_or_else(|p| p.into_inner()));
            let _ = io::stderr().lock().write_all(&take(err));
            let mut o = io::stdout().lock();
            let _ = o.write_all(&take(out)).and_then(|_| o.flush());
        }
        if !st.success() {
            eprintln!("xtask: {what} failed ({st})");
        }
        Ok(st.success())
    }
}

/// Copies a child's pipe to our stdout or stderr (or into `held`) line
/// by line, counting as it goes.
fn tee<R: io::Read + Send + 'static>(
    pipe: Option<R>,
    tally: &Arc<Mutex<Tally>>,
    summary: Option<&Arc<Mutex<Option<libtest::NextestSummary>>>>,
    stdout: bool,
    held: Option<Held>,
) -> thread::JoinHandle<()> {
    let tally = Arc::clone(tally);
    let summary = summary.map(Arc::clone);
    thread::spawn(move || {
        let Some(pipe) = pipe else { return };
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        while matches!(reader.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            let line = String::from_utf8_lossy(&buf);
            if let Some(summary) = &summary {
                if let Some(s) = libtest::parse_nextest_summary(&line) {
                    *summary.lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
                }
            } else {
                let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                if stdout {
                    t.stdout_line(&line);
                } else {
                    t.stderr_line(&line);
                }
            }
            if let Some(h) = &held {
                h.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(&buf);
            } else if stdout {
                let mut o = io::stdout().lock();
                let _ = o.write_all(&buf).and_then(|_| o.flush());
            } else {
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
    process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// What a command needs from the machine besides the Rust target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Needs {
    qemu: bool,
    hercules: bool,
    /// xmllint: the suite validates its JUnit reports against our schema.
    xmllint: bool,
}

impl Needs {
    const BUILD: Needs = Needs {
        qemu: false,
        hercules: false,
        xmllint: false,
    };
    const BOOT: Needs = Needs {
        qemu: true,
        hercules: false,
        xmllint: false,
    };
    const TEST: Needs = Needs {
        qemu: true,
        hercules: true,
        xmllint: true,
    };

    /// The Debian tools to have. The cross gcc is always needed: the `cc`
    /// crate assembles boot/ with it. A QEMU named by ZVTEST_QEMU stands in
    /// for the system's.
    fn tools(self, qemu_from_env: bool) -> Vec<&'static setup::Tool> {
        let mut t = vec![&setup::CROSS_GCC];
        if self.qemu && !qemu_from_env {
            t.push(&setup::QEMU);
        }
        if self.hercules {
            t.push(&setup::HERCULES);
        }
        if self.xmllint {
            t.push(&setup::XMLLINT);
        }
        t
    }
}

/// Adds what the command needs and the machine lacks: the firmware's Rust
/// target (rustup), then the Debian packages (apt, as root).
fn prerequisites(paths: &Paths, needs: Needs) -> Result<()> {
    setup::rust_target(&paths.root, TARGET).map_err(failed)?;
    let custom = env::var_os(QEMU_ENV).filter(|q| !q.is_empty());
    if let Some(q) = &custom {
        if needs.qemu && find_program(q).is_none() {
            return Err(failed(format!(
                "{QEMU_ENV}={} is not an executable",
                q.to_string_lossy()
            )));
        }
    }
    setup::packages(&needs.tools(custom.is_some()), is_root()).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_each_command_needs() {
        let names =
            |n: Needs, env: bool| -> Vec<&str> { n.tools(env).iter().map(|t| t.package).collect() };
        assert_eq!(names(Needs::BUILD, false), ["gcc-s390x-linux-gnu"]);
        assert_eq!(
            names(Needs::BOOT, false),
            ["gcc-s390x-linux-gnu", "qemu-system-misc"]
        );
        assert_eq!(
            names(Needs::TEST, false),
            [
                "gcc-s390x-linux-gnu",
                "qemu-system-misc",
                "hercules",
                "libxml2-utils"
            ]
        );
        // ZVTEST_QEMU names the QEMU: the system's is not needed.
        assert_eq!(
            names(Needs::TEST, true),
            ["gcc-s390x-linux-gnu", "hercules", "libxml2-utils"]
        );
    }

    /// The tests `cargo nextest list` gives for `partition`, each with
    /// whether the partition takes it.
    fn listed(partition: Option<Partition>) -> Vec<(String, bool)> {
        let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = process::Command::new(cargo)
            .args(["nextest", "list", "--workspace", "--message-format", "json"])
            .args(partition_args(partition))
            .current_dir(&Paths::new().root)
            .stderr(Stdio::inherit())
            .output()
            .expect("cargo nextest list runs");
        assert!(out.status.success(), "cargo nextest list: {}", out.status);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("nextest's JSON");
        let mut tests = Vec::new();
        for (binary, suite) in v["rust-suites"].as_object().expect("rust-suites") {
            for (name, case) in suite["testcases"].as_object().expect("testcases") {
                if case["ignored"].as_bool() == Some(true) {
                    continue;
                }
                let matches = case["filter-match"]["status"].as_str() == Some("matches");
                tests.push((format!("{binary} {name}"), matches));
            }
        }
        tests.sort();
        tests
    }

    #[test]
    fn two_parts_cover_the_suite_exactly_once() {
        let all = listed(None);
        assert!(
            all.len() > 100 && all.iter().all(|(_, m)| *m),
            "{}",
            all.len()
        );
        let one = listed(Some((1, 2)));
        let two = listed(Some((2, 2)));
        let names = |l: &[(String, bool)]| l.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&one), names(&all));
        assert_eq!(names(&two), names(&all));
        for ((name, a), (_, b)) in one.iter().zip(&two) {
            assert!(a ^ b, "{name}: in part 1: {a}, in part 2: {b}");
        }
        // Near-even parts ("count" deals each test binary's tests out in turn).
        let in_one = one.iter().filter(|(_, m)| *m).count();
        assert!(
            (all.len() * 2 / 5..=all.len() * 3 / 5).contains(&in_one),
            "{in_one} of {}",
            all.len()
        );
        // The doc tests: in part 1 only.
        assert!(runs_doc_tests(&[], None) && runs_doc_tests(&[], Some((1, 2))));
        assert!(!runs_doc_tests(&[], Some((2, 2))));
        assert!(!runs_doc_tests(&["--test".into(), "smp".into()], None));
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
