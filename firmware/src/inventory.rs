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

pub fn parse_bus_id(s: &str) -> Option<BusId> {
    let mut parts = s.split('.');
    let (c, s, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || d.len() != 4 {
        return None;
    }
    let ssid = u8::from_str_radix(s, 16).ok().filter(|&v| v <= 3)?;
    Some(BusId {
        cssid: u8::from_str_radix(c, 16).ok()?,
        ssid,
        devno: u16::from_str_radix(d, 16).ok()?,
    })
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

/// `none`, or comma-separated `busid:name` items.
pub fn parse_expected(v: &str) -> Option<Vec<Entry>> {
    if v == "none" {
        return Some(Vec::new());
    }
    let mut out: Vec<Entry> = v
        .split(',')
        .map(|item| -> Option<Entry> {
            let (bus, name) = item.split_once(':')?;
            let ok =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                return None;
            }
            Some(Entry {
                bus: parse_bus_id(bus)?,
                name: name.into(),
            })
        })
        .collect::<Option<_>>()?;
    out.sort();
    Some(out)
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
