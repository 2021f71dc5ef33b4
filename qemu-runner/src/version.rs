//! Which QEMU runs the firmware: `<qemu> --version`, parsed, once per binary.
//!
//! The firmware judges some hypercalls by QEMU's version (`qemu-version=`
//! on its command line), so the runner tells it the truth by default: see
//! [`crate::Scenario::qemu_version`].

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// `QEMU emulator version 7.2.22 (...)`: major, minor and micro.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QemuVersion {
    pub major: u16,
    pub minor: u16,
    pub micro: u16,
}

impl QemuVersion {
    pub const fn new(major: u16, minor: u16) -> Self {
        QemuVersion {
            major,
            minor,
            micro: 0,
        }
    }

    /// The firmware's word: `qemu-version=7.2` (as the contract writes it).
    pub fn word(&self) -> String {
        let cfg = zvtest_contract::cmdline::Config {
            qemu_version: Some((self.major, self.minor)),
            ..Default::default()
        };
        zvtest_contract::cmdline::words(&cfg).concat()
    }

    /// `7.2.22`.
    pub fn full(&self) -> String {
        format!("{}.{}.{}", self.major, self.minor, self.micro)
    }

    /// Same major and minor (what the firmware compares).
    pub fn same_release(&self, other: &QemuVersion) -> bool {
        (self.major, self.minor) == (other.major, other.minor)
    }
}

/// `major.minor`, as the firmware reads it.
impl fmt::Display for QemuVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// `7.2`, `10.0` or `7.2.22`.
impl FromStr for QemuVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('.').collect();
        let number = |t: &str| -> Option<u16> {
            if t.is_empty() || t.len() > 5 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            t.parse().ok()
        };
        let nums: Option<Vec<u16>> = parts.iter().map(|p| number(p)).collect();
        match nums.as_deref() {
            Some(&[major, minor]) => Ok(QemuVersion::new(major, minor)),
            Some(&[major, minor, micro]) => Ok(QemuVersion {
                major,
                minor,
                micro,
            }),
            _ => Err(format!(
                "'{s}' is not a QEMU version (major.minor or major.minor.micro)"
            )),
        }
    }
}

/// What `--version` prints before the number.
const BANNER: &str = "QEMU emulator version ";

/// The version in the output of `qemu-system-s390x --version`:
/// `QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)` on its
/// first line (an extra `v` or a suffix such as `-rc1` or `+git` after the
/// number is tolerated). Anything else is an error quoting the first line.
pub fn parse_version_output(output: &str) -> Result<QemuVersion, String> {
    let first = output.lines().map(str::trim).find(|l| !l.is_empty());
    let Some(first) = first else {
        return Err("it printed nothing".into());
    };
    let quoted = || {
        let mut s: String = first.chars().take(120).collect();
        if s.len() < first.len() {
            s.push_str("...");
        }
        s
    };
    let Some(rest) = first.strip_prefix(BANNER) else {
        return Err(format!(
            "its first line is not '{BANNER}X.Y.Z ...' but '{}'",
            quoted()
        ));
    };
    let rest = rest.strip_prefix('v').unwrap_or(rest);
    let number: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let number = number.trim_end_matches('.');
    number
        .parse()
        .map_err(|_| format!("no version number in '{}'", quoted()))
}

/// How long `--version` may take (it is instant; a hang is a broken binary).
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);
/// Its output is a few lines; more is cut.
const MAX_OUTPUT: u64 = 64 * 1024;

/// Runs `<qemu> --version` and parses it; the error says what went wrong.
fn query(qemu: &Path) -> Result<QemuVersion, String> {
    let mut child = Command::new(qemu)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start it: {e}"))?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    // Read aside: a child that keeps the pipe open must not block us.
    thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut stdout).take(MAX_OUTPUT).read_to_end(&mut out);
        let _ = tx.send(out);
    });
    let deadline = Instant::now() + VERSION_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "--version did not finish within {} s",
                    VERSION_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for --version: {e}")),
        }
    };
    let out = rx
        .recv_timeout(Duration::from_secs(2))
        .map_err(|_| "--version left its output open".to_string())?;
    let text = String::from_utf8_lossy(&out);
    if !status.success() {
        return Err(format!("--version failed ({status})"));
    }
    parse_version_output(&text)
}

/// What [`detect`] found, per binary.
fn cache() -> &'static Mutex<HashMap<PathBuf, QemuVersion>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, QemuVersion>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Tells [`detect`] the version of `qemu` that another process of the
/// same run has already asked it for (the test suite runs each test in a
/// process of its own: some 400 `--version` runs otherwise).
pub fn remember(qemu: &Path, v: QemuVersion) {
    let mut map = cache().lock().unwrap_or_else(|p| p.into_inner());
    map.insert(qemu.to_path_buf(), v);
}

/// The version of the QEMU binary `qemu` (a path, or a name looked up in
/// PATH as `Command` does), from `<qemu> --version`. Asked once per binary
/// and process; successes are cached (a failure is asked again next time).
/// The error is a whole sentence naming the binary.
pub fn detect(qemu: &Path) -> Result<QemuVersion, String> {
    // Held while asking, so that parallel runs ask once.
    let mut map = cache().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(v) = map.get(qemu) {
        return Ok(*v);
    }
    let v = query(qemu)
        .map_err(|e| format!("cannot tell the version of QEMU {}: {e}", qemu.display()))?;
    map.insert(qemu.to_path_buf(), v);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_outputs() {
        let v = parse_version_output(
            "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n\
             Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n",
        )
        .unwrap();
        assert_eq!(
            v,
            QemuVersion {
                major: 7,
                minor: 2,
                micro: 22
            }
        );
        assert_eq!(v.to_string(), "7.2");
        assert_eq!(v.word(), "qemu-version=7.2");
        assert_eq!(v.full(), "7.2.22");
        let v = parse_version_output(
            "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\n",
        )
        .unwrap();
        assert_eq!(v.word(), "qemu-version=10.0");
        assert!(v > QemuVersion::new(7, 2));
        assert!(v.same_release(&QemuVersion::new(10, 0)));
        assert!(!v.same_release(&QemuVersion::new(10, 1)));
    }

    #[test]
    fn other_shapes() {
        let p = |s: &str| parse_version_output(s).map(|v| v.full());
        assert_eq!(p("QEMU emulator version 8.1.0\n").unwrap(), "8.1.0");
        assert_eq!(p("\n  QEMU emulator version 9.2.50\r\n").unwrap(), "9.2.50");
        assert_eq!(p("QEMU emulator version 6.0.0-rc1").unwrap(), "6.0.0");
        assert_eq!(p("QEMU emulator version v9.0.0 (git)").unwrap(), "9.0.0");
        assert_eq!(p("QEMU emulator version 10.1").unwrap(), "10.1.0");
        assert_eq!(p("QEMU emulator version 5.2.0.").unwrap(), "5.2.0");
    }

    #[test]
    fn failures_quote_what_was_printed() {
        let e = |s: &str| parse_version_output(s).unwrap_err();
        assert_eq!(e(""), "it printed nothing");
        assert_eq!(e(" \n\n"), "it printed nothing");
        let err = e("TAP version 14\n1..2\n");
        assert!(err.contains("'TAP version 14'"), "{err}");
        assert!(err.contains("QEMU emulator version X.Y.Z"), "{err}");
        let err = e("QEMU emulator version (unknown)");
        assert!(err.starts_with("no version number in"), "{err}");
        assert!(e("QEMU emulator version 7").contains("no version number"));
        assert!(e("QEMU emulator version 1.2.3.4").contains("no version number"));
        assert!(e("QEMU emulator version 999999.1").contains("no version number"));
        let long = format!("x{}", "y".repeat(500));
        assert!(e(&long).len() < 250);
    }

    #[test]
    fn versions_from_text() {
        assert_eq!("10.0".parse(), Ok(QemuVersion::new(10, 0)));
        assert_eq!("7.2.22".parse::<QemuVersion>().map(|v| v.micro), Ok(22));
        for bad in [
            "", "7", "7.", ".2", "7.2.", "a.b", "7.-2", "7.2.3.4", "+7.2",
        ] {
            let err = bad.parse::<QemuVersion>().unwrap_err();
            assert!(err.contains(&format!("'{bad}'")), "{bad}: {err}");
        }
    }

    #[test]
    fn detection_of_a_missing_binary_names_it() {
        let e = detect(Path::new("/nonexistent/qemu-system-s390x")).unwrap_err();
        assert!(
            e.starts_with(
                "cannot tell the version of QEMU /nonexistent/qemu-system-s390x: cannot start it"
            ),
            "{e}"
        );
    }
}
