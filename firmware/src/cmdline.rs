//! The firmware command line (QEMU `-append`): space-separated `key=value`.
//!
//! No command line at all (z/VM, LPAR) means the defaults. Anything not
//! understood is an error that names the offending word: a typo must never
//! silently run a different selection.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use ufmt::{uDisplay, uWrite, Formatter};

/// Faults the firmware injects on request, to prove the failure paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inject {
    /// A check that fails with expected/got.
    Fail,
    /// A check that never finishes (caught by the per-check timeout).
    Hang,
    /// An unexpected program interrupt inside a check.
    Pgm,
    /// Spin with interrupts disabled: only the host timeout can end it.
    Forever,
    /// Exhaust the heap.
    Oom,
}

impl Inject {
    pub const ALL: [(&'static str, Inject); 5] = [
        ("fail", Inject::Fail),
        ("hang", Inject::Hang),
        ("pgm", Inject::Pgm),
        ("forever", Inject::Forever),
        ("oom", Inject::Oom),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("?", |(n, _)| n)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Selectors (names, globs, groups); empty means every regular check.
    pub only: Vec<String>,
    pub skip: Vec<String>,
    pub seed: u64,
    /// Multiplier for stress loops, 1..=1000.
    pub stress: u32,
    /// 0 quiet, 1 normal, 2 chatty diagnostics.
    pub verbose: u8,
    /// Default per-check timeout.
    pub timeout_ms: u64,
    /// Memory size the host says it configured, in bytes.
    pub expect_mem: Option<u64>,
    pub inject: Vec<Inject>,
    /// Channel-subsystem devices the host configured (`devices=`).
    pub devices: Option<Vec<crate::inventory::Entry>>,
    /// Devices the host will plug (`+`) and unplug (`-`) while we wait.
    pub hotplug: Vec<(bool, crate::inventory::Entry)>,
    /// Where storage ends, for the legacy device page (default: SCLP's size).
    pub ram_end: Option<u64>,
    /// Legacy s390-virtio devices expected on the device page: (name, queues).
    pub legacy_devices: Option<Vec<(String, u8)>>,
    /// The QEMU version the runner started (major, minor).
    pub qemu_version: Option<(u16, u16)>,
    /// Whether a diag288 watchdog is configured.
    pub diag288: bool,
    /// Let the watchdog expire (the host injects a restart interrupt).
    pub diag288_expire: bool,
    /// The balloon size (pages) the host will ask for after we say we are
    /// ready: `virtio.config-change` waits for it.
    pub balloon_pages: Option<u32>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            only: Vec::new(),
            skip: Vec::new(),
            seed: 0x5a76_7465_7374, // "Zvtest"
            stress: 1,
            verbose: 1,
            timeout_ms: 5000,
            expect_mem: None,
            inject: Vec::new(),
            devices: None,
            hotplug: Vec::new(),
            ram_end: None,
            legacy_devices: None,
            qemu_version: None,
            diag288: false,
            diag288_expire: false,
            balloon_pages: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmdlineError {
    UnknownOption(String),
    NotKeyValue(String),
    BadValue {
        option: &'static str,
        value: String,
        expected: &'static str,
    },
    NotAscii,
}

impl uDisplay for CmdlineError {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match self {
            CmdlineError::UnknownOption(k) => {
                ufmt::uwrite!(f, "unknown option '{}' (known: ", k.as_str())?;
                for (i, (name, _, _)) in OPTIONS.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(name)?;
                }
                f.write_str(")")
            }
            CmdlineError::NotKeyValue(w) => {
                ufmt::uwrite!(f, "'{}' is not of the form key=value", w.as_str())
            }
            CmdlineError::BadValue {
                option,
                value,
                expected,
            } => ufmt::uwrite!(
                f,
                "bad value '{}' for {}: expected {}",
                value.as_str(),
                *option,
                *expected
            ),
            CmdlineError::NotAscii => f.write_str("command line is not printable ASCII"),
        }
    }
}

type Setter = fn(&mut Config, &str) -> Option<()>;

/// Every option: name, what its value looks like, how to apply it.
const OPTIONS: &[(&str, &str, Setter)] = &[
    (
        "only",
        "comma-separated check names, globs or groups",
        |c, v| {
            c.only.extend(list(v)?);
            Some(())
        },
    ),
    (
        "skip",
        "comma-separated check names, globs or groups",
        |c, v| {
            c.skip.extend(list(v)?);
            Some(())
        },
    ),
    ("seed", "a number (decimal or 0x hex)", |c, v| {
        c.seed = number(v)?;
        Some(())
    }),
    ("stress", "a number from 1 to 1000", |c, v| {
        c.stress = ranged(v, 1, 1000)? as u32;
        Some(())
    }),
    ("verbose", "0, 1 or 2", |c, v| {
        c.verbose = ranged(v, 0, 2)? as u8;
        Some(())
    }),
    ("timeout", "milliseconds from 1 to 600000", |c, v| {
        c.timeout_ms = ranged(v, 1, 600_000)?;
        Some(())
    }),
    (
        "expect-mem",
        "a size such as 134217728, 128M or 2G",
        |c, v| {
            c.expect_mem = Some(size(v)?);
            Some(())
        },
    ),
    (
        "devices",
        "none, or comma-separated busid:name (fe.0.0001:blk)",
        |c, v| {
            c.devices = Some(crate::inventory::parse_expected(v)?);
            Some(())
        },
    ),
    (
        "hotplug",
        "comma-separated +busid:name or -busid:name",
        |c, v| {
            for item in v.split(',') {
                let (add, rest) = match item.as_bytes().first()? {
                    b'+' => (true, &item[1..]),
                    b'-' => (false, &item[1..]),
                    _ => return None,
                };
                let mut e = crate::inventory::parse_expected(rest)?;
                c.hotplug.push((add, e.pop().filter(|_| e.is_empty())?));
            }
            Some(())
        },
    ),
    ("ram-end", "an address such as 0x7c80000 or 124M", |c, v| {
        c.ram_end = Some(number(v).or_else(|| size(v))?);
        Some(())
    }),
    (
        "legacy-devices",
        "none, or comma-separated name:queues (console:2)",
        |c, v| {
            let mut out = Vec::new();
            if v != "none" {
                for item in v.split(',') {
                    let (name, n) = item.split_once(':')?;
                    if name.is_empty() {
                        return None;
                    }
                    out.push((name.to_string(), n.parse().ok()?));
                }
            }
            c.legacy_devices = Some(out);
            Some(())
        },
    ),
    ("qemu-version", "major.minor, such as 7.2", |c, v| {
        let (major, minor) = v.split_once('.')?;
        c.qemu_version = Some((major.parse().ok()?, minor.parse().ok()?));
        Some(())
    }),
    (
        "diag288",
        "absent, present, or expire (present, and let it expire)",
        |c, v| {
            (c.diag288, c.diag288_expire) = match v {
                "absent" => (false, false),
                "present" => (true, false),
                "expire" => (true, true),
                _ => return None,
            };
            Some(())
        },
    ),
    ("balloon-pages", "a number of 4 KiB pages", |c, v| {
        c.balloon_pages = Some(u32::try_from(number(v)?).ok()?);
        Some(())
    }),
    ("inject", "fail, hang, pgm, forever or oom", |c, v| {
        for word in list(v)? {
            let (_, inj) = Inject::ALL.iter().find(|(n, _)| *n == word)?;
            c.inject.push(*inj);
        }
        Some(())
    }),
];

fn list(v: &str) -> Option<Vec<String>> {
    let items: Vec<String> = v.split(',').map(|s| s.to_string()).collect();
    if items.iter().any(|s| s.is_empty()) {
        return None;
    }
    Some(items)
}

fn number(v: &str) -> Option<u64> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() => u64::from_str_radix(hex, 16).ok(),
        Some(_) => None,
        None => v.parse().ok(),
    }
}

fn ranged(v: &str, lo: u64, hi: u64) -> Option<u64> {
    number(v).filter(|n| (lo..=hi).contains(n))
}

fn size(v: &str) -> Option<u64> {
    let (digits, shift) = match v.as_bytes().last()? {
        b'K' | b'k' => (&v[..v.len() - 1], 10),
        b'M' | b'm' => (&v[..v.len() - 1], 20),
        b'G' | b'g' => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(1u64 << shift).filter(|&b| b > 0)
}

/// Parses a command line. `raw` may carry QEMU's NUL padding.
pub fn parse(raw: &[u8]) -> Result<Config, CmdlineError> {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let text = core::str::from_utf8(&raw[..end]).map_err(|_| CmdlineError::NotAscii)?;
    if !text
        .bytes()
        .all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t' || b == b'\n')
    {
        return Err(CmdlineError::NotAscii);
    }
    let mut cfg = Config::default();
    for word in text.split_ascii_whitespace() {
        let Some((key, value)) = word.split_once('=') else {
            return Err(CmdlineError::NotKeyValue(word.to_string()));
        };
        let Some(&(option, expected, set)) = OPTIONS.iter().find(|(n, _, _)| *n == key) else {
            return Err(CmdlineError::UnknownOption(key.to_string()));
        };
        set(&mut cfg, value).ok_or_else(|| CmdlineError::BadValue {
            option,
            value: value.to_string(),
            expected,
        })?;
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_padding_give_defaults() {
        assert_eq!(parse(b"").unwrap(), Config::default());
        assert_eq!(parse(b"\0\0\0garbage").unwrap(), Config::default());
        assert_eq!(parse(b"   ").unwrap(), Config::default());
    }

    #[test]
    fn all_options() {
        let c = parse(b"only=pgm,heap.* skip=heap.stress seed=0x10 stress=7 verbose=2 timeout=250 expect-mem=128M inject=fail,hang\0").unwrap();
        assert_eq!(c.only, ["pgm", "heap.*"]);
        assert_eq!(c.skip, ["heap.stress"]);
        assert_eq!(c.seed, 16);
        assert_eq!(c.stress, 7);
        assert_eq!(c.verbose, 2);
        assert_eq!(c.timeout_ms, 250);
        assert_eq!(c.expect_mem, Some(128 << 20));
        assert_eq!(c.inject, [Inject::Fail, Inject::Hang]);
        assert_eq!(parse(b"expect-mem=2G").unwrap().expect_mem, Some(2 << 30));
        assert_eq!(parse(b"expect-mem=4096").unwrap().expect_mem, Some(4096));
        assert_eq!(parse(b"devices=none").unwrap().devices, Some(Vec::new()));
        let h = parse(b"hotplug=+fe.0.0007:rng,-fe.0.0001:blk")
            .unwrap()
            .hotplug;
        assert_eq!((h.len(), h[0].0, h[1].0), (2, true, false));
        assert_eq!(crate::format!("{}", h[1].1), "fe.0.0001:blk");
        assert_eq!(
            parse(b"ram-end=0x7c80000").unwrap().ram_end,
            Some(0x7c8_0000)
        );
        assert_eq!(parse(b"ram-end=124M").unwrap().ram_end, Some(124 << 20));
        let l = parse(b"legacy-devices=console:2,blk:1")
            .unwrap()
            .legacy_devices
            .unwrap();
        assert_eq!(l, [("console".to_string(), 2), ("blk".to_string(), 1)]);
        assert_eq!(
            parse(b"legacy-devices=none").unwrap().legacy_devices,
            Some(Vec::new())
        );
        assert_eq!(
            parse(b"devices=fe.0.0001:blk")
                .unwrap()
                .devices
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn errors_name_the_word() {
        let e = parse(b"seed=1 bogus=1").unwrap_err();
        assert_eq!(e, CmdlineError::UnknownOption("bogus".into()));
        let msg = crate::format!("{}", e);
        assert!(
            msg.contains("'bogus'") && msg.contains("expect-mem"),
            "{msg}"
        );
        assert_eq!(
            parse(b"verbose").unwrap_err(),
            CmdlineError::NotKeyValue("verbose".into())
        );
        for bad in [
            &b"stress=0"[..],
            b"stress=1001",
            b"verbose=3",
            b"seed=0x",
            b"seed=12a",
            b"timeout=0",
            b"expect-mem=0",
            b"expect-mem=12Q",
            b"expect-mem=99999999999999G",
            b"inject=nothing",
            b"only=",
            b"only=a,,b",
            b"devices=fe.9.0001:blk",
            b"hotplug=fe.0.0001:blk",
            b"hotplug=+fe.0.0001",
            b"hotplug=+fe.0.0001:blk,",
            b"ram-end=xyz",
            b"legacy-devices=console",
            b"legacy-devices=:2",
            b"legacy-devices=console:300",
            b"qemu-version=7",
            b"qemu-version=a.b",
            b"diag288=yes",
            b"balloon-pages=5000000000",
        ] {
            assert!(
                matches!(parse(bad), Err(CmdlineError::BadValue { .. })),
                "{:?}",
                core::str::from_utf8(bad)
            );
        }
        let msg = crate::format!("{}", parse(b"stress=0").unwrap_err());
        assert_eq!(
            msg,
            "bad value '0' for stress: expected a number from 1 to 1000"
        );
        assert_eq!(parse(b"seed=\x01").unwrap_err(), CmdlineError::NotAscii);
        assert_eq!(parse(&[0xff, 0xfe]).unwrap_err(), CmdlineError::NotAscii);
    }
}
