//! The ESA/390 entry path on an independent emulator. QEMU always starts the
//! firmware in 64-bit mode; Hercules IPLs `target/zvtest.deck` from a 3505
//! card reader the way z/VM does: the IPL PSW at absolute 0 in ESA/390
//! 31-bit mode, `_start` at 0x10000, SIGP SET ARCHITECTURE, `sam64`, and on
//! into the checks. Hercules logs the line-mode SCLP console (it has no
//! VT220) and the final disabled-wait PSW, whose address is the verdict.
//!
//! Needs Debian's `hercules` package (3.13): `apt-get install -y hercules`;
//! ZVTEST_HERCULES names another binary. Hercules never exits by itself: it
//! is killed once the wait PSW is logged, or after [`TIMEOUT`].

use crate::common;

use qemu_runner::tap::{self, TapReport};
use std::env;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};
use zvtest_contract::tap::Tally;
use zvtest_contract::verdict;

const HERCULES_ENV: &str = "ZVTEST_HERCULES";
const INSTALL: &str = "apt-get install -y hercules";

/// The boot takes about 3 s here; Hercules interprets every instruction.
const TIMEOUT: Duration = Duration::from_secs(120);

/// z/Arch so that SIGP SET ARCHITECTURE switches (Hercules always IPLs in
/// ESA/390 mode). 000C is the IPL reader; 000D, a second reader with an
/// empty deck, gives the channel-subsystem checks a device that was not
/// used for the IPL.
const CONFIG: &str = "\
ARCHMODE   z/Arch
MAINSIZE   128
NUMCPU     1
MAXCPU     1
LPARNAME   ZVTEST
000C       3505    zvtest.deck ebcdic intrq
000D       3505    spare.deck ebcdic intrq
";

/// Checks that fail under Hercules 3.13 for reasons other than the entry
/// path: (name, text its failure must contain, why). A failure not listed
/// here, or not matching, fails this test.
const KNOWN_FAILURES: &[(&str, &str, &str)] = &[(
    "sigp.invalid-order",
    "SIGP order 0x11 to address 0",
    "Hercules 3.13 answers order 0x11 (unassigned in z/Architecture) with incorrect state (0x200), not invalid order (0x2)",
)];

#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// `HHCCP011I ... Disabled wait state` and the PSW Hercules printed.
    Wait {
        psw: String,
        address: u64,
    },
    /// IPL failed, invalid IPL PSW, program-interrupt loop, check stop.
    Error(String),
    /// Hercules exited by itself (a configuration error, usually).
    Exited(String),
    Timeout,
}

struct Run {
    name: String,
    log_path: PathBuf,
    log: String,
    end: End,
}

impl Run {
    /// Panics with what was expected, the ending, and the whole log.
    #[track_caller]
    fn fail(&self, what: &str) -> ! {
        panic!(
            "Hercules run {}: expected {what}\nended: {:?}\nlog {}:\n{}",
            self.name,
            self.end,
            self.log_path.display(),
            self.log
        );
    }

    #[track_caller]
    fn require(&self, ok: bool, what: &str) {
        if !ok {
            self.fail(what);
        }
    }

    /// Index of the first log line containing `needle`.
    fn line_of(&self, needle: &str) -> Option<usize> {
        self.log.lines().position(|l| l.contains(needle))
    }
}

/// The Hercules binary, or a panic naming the package to install.
fn hercules() -> PathBuf {
    let name = env::var_os(HERCULES_ENV)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "hercules".into());
    let executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let as_path = Path::new(&name);
    let found = if as_path.components().count() > 1 {
        executable(as_path).then(|| as_path.to_path_buf())
    } else {
        env::var_os("PATH").and_then(|path| {
            env::split_paths(&path)
                .map(|d| d.join(&name))
                .find(|p| executable(p))
        })
    };
    found.unwrap_or_else(|| {
        panic!(
            "Hercules ({}) is not installed: as root run\n  {INSTALL}\n\
             (Debian package `hercules`, 3.13), or set {HERCULES_ENV} to its binary",
            name.to_string_lossy()
        )
    })
}

/// target/zvtest.deck, written by `cargo xtask image` beside ZVTEST_IMG.
fn deck() -> Vec<u8> {
    let img = common::img();
    let deck = img.with_extension("deck");
    let hint = "run `cargo xtask image` (or the whole suite with `cargo xtask test`)";
    let modified = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    let (Some(deck_time), Some(img_time)) = (modified(&deck), modified(&img)) else {
        panic!("no IPL deck at {}: {hint}", deck.display());
    };
    assert!(
        deck_time >= img_time,
        "{} is older than {}: {hint}",
        deck.display(),
        img.display()
    );
    let bytes = fs::read(&deck).unwrap_or_else(|e| panic!("cannot read {}: {e}", deck.display()));
    assert!(
        !bytes.is_empty() && bytes.len().is_multiple_of(80),
        "{} is not whole 80-byte cards",
        deck.display()
    );
    bytes
}

/// IPLs `deck` from the reader at 000C and waits for the end.
fn boot(name: &str, deck: &[u8]) -> Run {
    let bin = hercules();
    let dir = common::scenario_dir(&format!("hercules-{name}"));
    let write = |file: &str, data: &[u8]| {
        let p = dir.join(file);
        fs::write(&p, data).unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
    };
    write("zvtest.deck", deck);
    write("spare.deck", b"");
    write("hercules.cnf", CONFIG.as_bytes());
    write("ipl.rc", b"ipl 000c\n");
    let log_path = dir.join("hercules.log");
    let log = File::create(&log_path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
    let err = log.try_clone().expect("log file handle");
    let mut child = Command::new(&bin)
        .args(["-f", "hercules.cnf", "-d"])
        .current_dir(&dir)
        .env("HERCULES_RC", "ipl.rc")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let read = || String::from_utf8_lossy(&fs::read(&log_path).unwrap_or_default()).into_owned();
    let start = Instant::now();
    let end = loop {
        if let Some(end) = ending(&read()) {
            break end;
        }
        if let Ok(Some(status)) = child.try_wait() {
            break ending(&read()).unwrap_or(End::Exited(status.to_string()));
        }
        if start.elapsed() > TIMEOUT {
            break End::Timeout;
        }
        sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    Run {
        name: name.into(),
        log: read(),
        log_path,
        end,
    }
}

/// The first thing in the log that ends a run, if it is complete.
fn ending(log: &str) -> Option<End> {
    const ERRORS: [&str; 6] = [
        "HHCCP027E", // IPL device not in the configuration
        "HHCCP029E", // IPL failed: channel or device status
        "HHCCP030E", // invalid IPL PSW
        "Program interrupt loop",
        "check-stop",
        "checkstop",
    ];
    let lines: Vec<&str> = log.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.contains("Disabled wait state") {
            // The PSW is on the same line or (3.13) the next one.
            let at = if line.contains("PSW=") { i } else { i + 1 };
            // A line still being written has no newline yet.
            let complete = lines.len() > at + 1 || log.ends_with('\n');
            return match lines.get(at).copied().and_then(wait_psw) {
                Some((psw, address)) if complete => Some(End::Wait { psw, address }),
                _ => None,
            };
        }
        if ERRORS.iter().any(|e| line.contains(e)) {
            return Some(End::Error(line.trim().to_string()));
        }
    }
    None
}

/// `PSW=00020001 80000000 000000000BAD0004` (z/Arch: mask, 64-bit address)
/// or `PSW=000A0000 8BAD0004` (ESA/390: 31-bit address).
fn wait_psw(line: &str) -> Option<(String, u64)> {
    let psw = line.split_once("PSW=")?.1.trim();
    let words: Vec<u64> = psw
        .split_whitespace()
        .map(|w| u64::from_str_radix(w, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    let address = match words[..] {
        [_, _, address] => address,
        [_, low] => low & 0x7fff_ffff,
        _ => return None,
    };
    Some((psw.to_string(), address))
}

/// The firmware's console: the log from `TAP version` to the disabled wait,
/// without Hercules' own messages (HHC...), their continuation lines and the
/// register dumps it prints for every program interruption.
fn console(log: &str) -> String {
    let is_dump = |l: &str| {
        let b = l.as_bytes();
        l.starts_with("PSW=")
            || l.starts_with("R:")
            || (b.len() > 2 && b"RCAF".contains(&b[0]) && b[1].is_ascii_hexdigit() && b[2] == b'=')
    };
    let mut out = String::new();
    let mut started = false;
    let mut in_message = false;
    for line in log.lines() {
        if line.contains("Disabled wait state") {
            break;
        }
        if line.starts_with("HHC") || line.starts_with("CPU0") {
            in_message = true;
            continue;
        }
        if in_message && (line.starts_with("          ") || is_dump(line)) {
            continue;
        }
        in_message = false;
        started |= line.starts_with("TAP version");
        if started {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The wait address the firmware must end with, off QEMU, for this report
/// (the firmware's own rule).
fn expected_wait(tap: &TapReport) -> u64 {
    let c = tap.counts();
    let tally = Tally {
        passed: c.passed,
        failed: c.failed,
        skipped: c.skipped,
    };
    verdict::wait_address(false, tally, None)
}

fn abort_reason(address: u64) -> Option<&'static str> {
    let r = address.checked_sub(verdict::WAIT_ABORT)?;
    if r & 1 != 0 {
        return None;
    }
    verdict::Abort::from_code(r / 2).map(verdict::Abort::name)
}

#[test]
fn reader_ipl_runs_the_esa_entry_path() {
    let run = boot("reader-ipl", &deck());

    // The entry path, in Hercules' own words: IPL in ESA/390 mode, the
    // entry code's SIGP SET ARCHITECTURE accepted, z/Arch, then the report.
    let esa = run.line_of("architecture mode set to ESA/390");
    let sigp = run.line_of("SIGP Set architecture mode (12)");
    let zarch = run.line_of("architecture mode set to z/Arch");
    let tap_start = run.line_of("TAP version 14");
    run.require(
        esa.is_some() && esa < sigp && sigp < zarch && zarch < tap_start,
        "IPL in ESA/390 mode, SIGP SET ARCHITECTURE, z/Arch mode, then the TAP report, in that order",
    );
    let sigp_line = run.log.lines().nth(sigp.unwrap_or(0)).unwrap_or("");
    run.require(
        sigp_line.trim_end().ends_with("CC 0"),
        "SIGP SET ARCHITECTURE to answer condition code 0",
    );

    let End::Wait { address, .. } = run.end else {
        run.fail("a disabled wait (not an IPL error, a program-interrupt loop or a hang)");
    };
    let tap = tap::parse(&console(&run.log));
    if let Some(reason) = abort_reason(address) {
        run.fail(&format!(
            "the report's end, not an abandoned run ({reason}, wait address {address:#x}, bail out: {:?})",
            tap.bail_out
        ));
    }
    run.require(tap.version == Some(14), "a TAP version 14 report");
    run.require(tap.bail_out.is_none(), "no Bail out!");
    run.require(
        tap.plan.as_ref().map(|p| p.count as usize) == Some(tap.results.len()),
        "as many results as the plan announces",
    );
    run.require(
        tap.summary == Some(tap.counts()),
        "a summary line matching the results",
    );
    run.require(
        tap.results.iter().any(|r| r.name == "boot.vectors" && r.ok),
        "boot.vectors to pass: the new PSWs the 31-bit entry installed work",
    );
    run.require(
        address == expected_wait(&tap),
        &format!(
            "the wait address {:#x} for {} (got {address:#x})",
            expected_wait(&tap),
            tap.counts()
        ),
    );

    let unexpected: Vec<String> = tap
        .failures()
        .filter(|r| {
            let text = r
                .yaml
                .as_ref()
                .map(|y| y.lines.join("\n"))
                .unwrap_or_default();
            !KNOWN_FAILURES
                .iter()
                .any(|(name, says, _)| r.name == *name && text.contains(says))
        })
        .map(|r| r.describe())
        .collect();
    run.require(
        unexpected.is_empty(),
        &format!(
            "only the known Hercules failures; unexpected:\n  {}",
            unexpected.join("\n  ")
        ),
    );
    for (name, _, why) in KNOWN_FAILURES {
        match tap.result(name) {
            Some(r) if !r.ok => eprintln!("known failure {name}: {why}"),
            _ => eprintln!("{name} no longer fails on Hercules: drop it from KNOWN_FAILURES"),
        }
    }
}

#[test]
fn a_short_deck_is_an_ipl_failure() {
    // Without its last data card the channel program reads past the end
    // of the deck: the harness must say so, not wait for a verdict.
    let mut d = deck();
    d.truncate(d.len() - 80);
    let run = boot("short-deck", &d);
    run.require(
        matches!(&run.end, End::Error(e) if e.contains("HHCCP029E")),
        "HHCCP029E, the IPL failing on the reader's status",
    );
}

/// Parts of a real Hercules 3.13 log.
const SAMPLE: &str = "\
HHCCP007I CPU0000 architecture mode set to ESA/390
CPU0000: SIGP Set architecture mode (12) CPU0000, PARM 00000001: CC 0
HHCCP007I CPU0000 architecture mode set to z/Arch
TAP version 14
# zvtest 0.1.0
1..3
ok 1 - boot.vectors
HHCCP014I CPU0000: Addressing exception CODE=0005 ILC=6
PSW=01042001 80000000 000000000001B500 INST=E30010000004 LG    0,0(0,1)               load_long
R:0000000008100000: Translation exception 0005
R0=0104000180000000 R1=0000000008100000 R2=0000000000059720 R3=0000000000059720
C0=0000000000040AE0 C1=0000000000000000 C2=0000000000000000 C3=0000000000000000
ok 2 - pgm.addressing
not ok 3 - css.characteristics
  ---
  message: \"CHSC SCSC response code\"
  expected: \"0x1\"
  got: \"0x2\"
  ...
HHCCP048I 000D:CCW=F3200008 0005E050=>00000000 00000000 00000000 00000000 ................
HHCCP075I 000D:Stat=0E00 Count=0008 
2 passed, 1 failed, 0 skipped
HHCCP011I CPU0000: Disabled wait state
          PSW=00020001 80000000 000000000BAD0002
HHCIN900I Begin Hercules shutdown
";

#[test]
fn log_parsing() {
    assert_eq!(
        ending(SAMPLE),
        Some(End::Wait {
            psw: "00020001 80000000 000000000BAD0002".into(),
            address: 0x0bad_0002
        })
    );
    // The PSW line not yet written: keep waiting.
    let cut = SAMPLE.find("          PSW=").unwrap();
    assert_eq!(ending(&SAMPLE[..cut]), None);
    assert_eq!(ending(&SAMPLE[..cut + 20]), None);
    let partial = SAMPLE.find("BAD0002").unwrap() + 5;
    assert_eq!(ending(&SAMPLE[..partial]), None);
    assert!(ending(&SAMPLE[..partial + 3]).is_some());
    assert_eq!(
        ending("HHCCP029E ESA/390 mode IPL failed: CSW status=0E00\n"),
        Some(End::Error(
            "HHCCP029E ESA/390 mode IPL failed: CSW status=0E00".into()
        ))
    );
    assert_eq!(
        wait_psw("PSW=000A0000 8BAD0004").map(|p| p.1),
        Some(0x0bad_0004)
    );
    assert_eq!(wait_psw("PSW=junk"), None);

    let tap = tap::parse(&console(SAMPLE));
    assert_eq!(tap.version, Some(14));
    assert_eq!(tap.results.len(), 3);
    assert!(tap.other.is_empty(), "{:?}", tap.other);
    assert!(tap.anomalies.is_empty(), "{:?}", tap.anomalies);
    assert_eq!(tap.summary, Some(tap.counts()));
    assert_eq!(expected_wait(&tap), 0x0bad_0002);
    let f = tap.result("css.characteristics").unwrap();
    assert!(f
        .yaml
        .as_ref()
        .unwrap()
        .lines
        .join("\n")
        .contains("got: \"0x2\""));

    assert_eq!(abort_reason(0x0dea_d006), Some("panic"));
    assert_eq!(abort_reason(0x0dea_d000), None);
    assert_eq!(abort_reason(0x0bad_0002), None);
    assert_eq!(abort_reason(0x600d_0000), None);
}
