//! Device inventories: bus ids, the expected list from the command line,
//! and the difference between expected and found.

use alloc::string::String;
use alloc::vec::Vec;
use ufmt::{uDisplay, uWrite, Formatter};

/// A device's bus id as QEMU writes it: `cssid.ssid.devno`, e.g. `fe.1.0003`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
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

/// `cssid.ssid.devno` in hex digits only (`from_str_radix` alone takes a `+`).
pub fn parse_bus_id(s: &str) -> Option<BusId> {
    let hex = |t: &str, max: usize| {
        (!t.is_empty() && t.len() <= max && t.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u16::from_str_radix(t, 16).ok())
            .flatten()
    };
    let mut parts = s.split('.');
    let (c, s, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || d.len() != 4 {
        return None;
    }
    Some(BusId {
        cssid: u8::try_from(hex(c, 2)?).ok()?,
        ssid: u8::try_from(hex(s, 1)?).ok().filter(|&v| v <= 3)?,
        devno: hex(d, 4)?,
    })
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

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub bus: BusId,
    pub name: String,
}

impl uDisplay for Entry {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        ufmt::uwrite!(f, "{}:{}", self.bus, self.name.as_str())
    }
}

fn valid_name(name: &str) -> bool {
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
