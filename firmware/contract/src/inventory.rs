//! Device inventories: bus ids, the expected list from the command line,
//! and the difference between expected and found.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;
use ufmt::{uDisplay, uWrite, Formatter};

/// A device's bus id as QEMU writes it: `cssid.ssid.devno`, e.g. `fe.1.0003`
/// (cssid one or two hex digits, ssid 0-3, devno four hex digits).
/// Ordered as the inventory is sorted: cssid, then ssid, then devno.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BusId {
    pub cssid: u8,
    pub ssid: u8,
    pub devno: u16,
}

impl uDisplay for BusId {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        use crate::fmt::HexW;
        let digits = if self.cssid > 0xf { 2 } else { 1 };
        ufmt::uwrite!(
            f,
            "{}.{}.{}",
            HexW(self.cssid.into(), digits),
            HexW(self.ssid.into(), 1),
            HexW(self.devno.into(), 4)
        )
    }
}

/// The same text as the ufmt form, for the host's `to_string` and `{}`.
impl fmt::Display for BusId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}.{:x}.{:04x}", self.cssid, self.ssid, self.devno)
    }
}

/// A bus id that is not `cssid.ssid.devno`: the text and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadBusId {
    pub text: String,
    pub why: &'static str,
}

impl fmt::Display for BadBusId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad bus id '{}': {}", self.text, self.why)
    }
}

/// `cssid.ssid.devno` in hex digits only (`from_str_radix` alone takes a
/// `+`); either case.
impl FromStr for BusId {
    type Err = BadBusId;

    fn from_str(s: &str) -> Result<Self, BadBusId> {
        let bad = |why| {
            Err(BadBusId {
                text: s.into(),
                why,
            })
        };
        let hex = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit());
        let mut parts = s.split('.');
        let (Some(c), Some(ss), Some(d), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return bad("expected cssid.ssid.devno, e.g. fe.0.0001");
        };
        if !hex(c) || c.len() > 2 {
            return bad("cssid must be 1 or 2 hex digits");
        }
        let ssid = match ss.as_bytes() {
            [b @ b'0'..=b'3'] => b - b'0',
            _ => return bad("ssid must be 0, 1, 2 or 3"),
        };
        if d.len() != 4 || !hex(d) {
            return bad("devno must be 4 hex digits");
        }
        // Both checked to be short hex numbers.
        match (u8::from_str_radix(c, 16), u16::from_str_radix(d, 16)) {
            (Ok(cssid), Ok(devno)) => Ok(BusId { cssid, ssid, devno }),
            _ => bad("not hex"),
        }
    }
}

/// [`BusId::from_str`] without the reason.
pub fn parse_bus_id(s: &str) -> Option<BusId> {
    s.parse().ok()
}

/// What the host configured for one virtio-ccw device (`devices=` item
/// attributes): the firmware holds the device to exactly this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioConfig {
    /// QEMU's `max_revision` (default 2).
    pub max_revision: u8,
    /// QEMU's `packed=on`: the packed ring is offered.
    pub packed: bool,
}

impl Default for VirtioConfig {
    fn default() -> Self {
        VirtioConfig {
            max_revision: 2,
            packed: false,
        }
    }
}

/// One inventory entry, `fe.0.0001:blk`: where a device sits and what it
/// is called (a virtio short name such as `blk`, `virtio-N`, or `cu-XXXX`).
/// Ordered as the inventory is sorted: by bus id, then name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry {
    pub bus: BusId,
    pub name: String,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.bus, self.name)
    }
}

impl uDisplay for Entry {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        ufmt::uwrite!(f, "{}:{}", self.bus, self.name.as_str())
    }
}

/// What an inventory name may hold: letters, digits and `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `none`, or comma-separated `busid:name` items.
pub fn parse_expected(v: &str) -> Option<Vec<Entry>> {
    let (entries, virtio) = parse_configured(v)?;
    virtio.is_empty().then_some(entries)
}

/// How the host configured the virtio device at a bus id.
pub type Configured = (BusId, VirtioConfig);

/// `none`, or comma-separated `busid:name[:revN][:packed]` items: the
/// devices, sorted, and how the host configured the virtio ones that have
/// attributes (`revN`: QEMU's `max_revision=N`, `packed`: `packed=on`).
/// A bus id given twice is an error.
pub fn parse_configured(v: &str) -> Option<(Vec<Entry>, Vec<Configured>)> {
    if v == "none" {
        return Some((Vec::new(), Vec::new()));
    }
    let mut entries = Vec::new();
    let mut virtio = Vec::new();
    for item in v.split(',') {
        let mut fields = item.split(':');
        let bus = parse_bus_id(fields.next()?)?;
        let name = fields.next().filter(|n| valid_name(n))?;
        let mut cfg = VirtioConfig::default();
        let (mut packed, mut rev) = (false, false);
        for attr in fields {
            match attr {
                "packed" if !packed => (packed, cfg.packed) = (true, true),
                "rev0" | "rev1" | "rev2" if !rev => {
                    rev = true;
                    cfg.max_revision = attr.as_bytes()[3] - b'0';
                }
                _ => return None,
            }
        }
        let attributes = packed || rev;
        if entries.iter().any(|e: &Entry| e.bus == bus) {
            return None;
        }
        if attributes {
            virtio.push((bus, cfg));
        }
        entries.push(Entry {
            bus,
            name: name.into(),
        });
    }
    entries.sort();
    Some((entries, virtio))
}

/// Space-separated `busid:name` list, or `none`.
pub fn list(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return "none".into();
    }
    let mut s = crate::fmt::StrBuf::default();
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            let _ = ufmt::uWrite::write_str(&mut s, " ");
        }
        let _ = ufmt::uwrite!(s, "{}", e);
    }
    s.0
}

/// Entries expected but not found, and found but not expected.
pub fn diff(expected: &[Entry], found: &[Entry]) -> (Vec<Entry>, Vec<Entry>) {
    let missing = expected
        .iter()
        .filter(|e| !found.contains(e))
        .cloned()
        .collect();
    let extra = found
        .iter()
        .filter(|e| !expected.contains(e))
        .cloned()
        .collect();
    (missing, extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(bus: &str, name: &str) -> Entry {
        Entry {
            bus: parse_bus_id(bus).unwrap(),
            name: name.into(),
        }
    }

    #[test]
    fn bus_ids() {
        let b = parse_bus_id("fe.1.0003").unwrap();
        assert_eq!(
            b,
            BusId {
                cssid: 0xfe,
                ssid: 1,
                devno: 3
            }
        );
        assert_eq!(crate::format!("{}", b), "fe.1.0003");
        assert_eq!(
            crate::format!("{}", parse_bus_id("0.0.abcd").unwrap()),
            "0.0.abcd"
        );
        for bad in [
            "fe.4.0001",
            "fe.0.001",
            "fe.0",
            "x.0.0001",
            "fe.0.0001.1",
            "100.0.0001",
        ] {
            assert_eq!(parse_bus_id(bad), None, "{bad}");
        }
    }

    /// The host's forms: `parse` with a reason, `to_string`, and the sort order.
    #[test]
    fn bus_ids_with_reasons() {
        use alloc::string::ToString;
        let b: BusId = "fe.1.0005".parse().unwrap();
        assert_eq!(
            b,
            BusId {
                cssid: 0xfe,
                ssid: 1,
                devno: 5
            }
        );
        assert_eq!(b.to_string(), "fe.1.0005");
        assert_eq!(b.to_string(), crate::format!("{}", b));
        assert_eq!(
            "FE.3.ABCD".parse::<BusId>().unwrap().to_string(),
            "fe.3.abcd"
        );
        assert_eq!("0.0.0001".parse::<BusId>().unwrap().to_string(), "0.0.0001");
        assert_eq!("a.2.1234".parse::<BusId>().unwrap().to_string(), "a.2.1234");
        for (bad, why) in [
            ("", "expected cssid.ssid.devno"),
            ("fe", "expected cssid.ssid.devno"),
            ("fe.0", "expected cssid.ssid.devno"),
            ("fe.0.001", "devno must be 4 hex digits"),
            ("fe.0.00001", "devno must be 4 hex digits"),
            ("fe.4.0001", "ssid must be 0, 1, 2 or 3"),
            ("fe.00.0001", "ssid"),
            ("100.0.0001", "cssid must be 1 or 2 hex digits"),
            ("fe.0.000g", "devno"),
            ("x.0.0001", "cssid"),
            ("fe.0.0001.1", "expected cssid.ssid.devno"),
            (".0.0001", "cssid"),
            ("fe.-1.0001", "ssid"),
            ("+e.0.0001", "cssid"),
            ("fe.0.+001", "devno"),
        ] {
            let err = bad.parse::<BusId>().unwrap_err().to_string();
            assert!(
                err.starts_with(&std::format!("bad bus id '{bad}': ")),
                "{err}"
            );
            assert!(err.contains(why), "{bad}: {err}");
            assert_eq!(parse_bus_id(bad), None, "{bad}");
        }
        // Sorted as the firmware sorts: cssid, ssid, devno.
        let mut v: Vec<BusId> = ["fe.1.0000", "fe.0.ffff", "0.3.0000"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        v.sort();
        let v: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(v, ["0.3.0000", "fe.0.ffff", "fe.1.0000"]);
        let entry = e("fe.0.0001", "blk");
        assert_eq!(entry.to_string(), "fe.0.0001:blk");
        assert_eq!(entry.to_string(), crate::format!("{}", entry));
    }

    #[test]
    fn expected_lists() {
        assert_eq!(parse_expected("none"), Some(Vec::new()));
        let l = parse_expected("fe.1.0005:net,fe.0.0001:blk").unwrap();
        assert_eq!(l, [e("fe.0.0001", "blk"), e("fe.1.0005", "net")]);
        assert_eq!(list(&l), "fe.0.0001:blk fe.1.0005:net");
        assert_eq!(list(&[]), "none");
        for bad in [
            "",
            "fe.0.0001",
            "fe.0.0001:",
            "fe.0.0001:a b",
            "fe.0.0001:blk,,",
        ] {
            assert_eq!(parse_expected(bad), None, "{bad}");
        }
    }

    #[test]
    fn differences() {
        let want = [e("fe.0.0001", "blk"), e("fe.0.0002", "net")];
        let got = [e("fe.0.0001", "blk"), e("fe.0.0003", "rng")];
        let (missing, extra) = diff(&want, &got);
        assert_eq!(missing, [e("fe.0.0002", "net")]);
        assert_eq!(extra, [e("fe.0.0003", "rng")]);
        assert_eq!(diff(&want, &want), (Vec::new(), Vec::new()));
    }
}
