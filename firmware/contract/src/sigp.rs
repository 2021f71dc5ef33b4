//! SIGNAL PROCESSOR facts both sides share: order names, the store-status
//! save area's layout, and `sigp-expect=` (a claimed wrong answer, the
//! proof that every sigp.* comparison can fail).

use alloc::string::String;

/// Order codes and the names the report and `sigp-expect=` use.
pub const ORDERS: &[(u8, &str)] = &[
    (0x01, "sense"),
    (0x02, "external-call"),
    (0x03, "emergency-signal"),
    (0x04, "start"),
    (0x05, "stop"),
    (0x06, "restart"),
    (0x09, "stop-store-status"),
    (0x0b, "initial-cpu-reset"),
    (0x0c, "cpu-reset"),
    (0x0d, "set-prefix"),
    (0x0e, "store-status"),
    (0x12, "set-architecture"),
    (0x13, "conditional-emergency"),
    (0x15, "sense-running"),
    (0x17, "store-additional-status"),
];

/// An order's name, or None for a code no order has here.
pub fn order_name(code: u8) -> Option<&'static str> {
    ORDERS.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

pub fn order_code(name: &str) -> Option<u8> {
    ORDERS.iter().find(|(_, n)| *n == name).map(|(c, _)| *c)
}

/// `sigp-expect=ORDER:CC[:STATUS]`: every answer to ORDER (a name, or a
/// code such as 0xff) is expected to be this one instead of what the
/// architecture says (test only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    pub order: u8,
    pub cc: u8,
    /// The status word with cc 1 (absent: 0).
    pub status: Option<u32>,
}

impl Claim {
    pub fn parse(v: &str) -> Option<Claim> {
        let mut parts = v.split(':');
        let o = parts.next()?;
        let order = match o.strip_prefix("0x") {
            Some(h) if !h.is_empty() && h.len() <= 2 => u8::from_str_radix(h, 16).ok()?,
            Some(_) => return None,
            None => order_code(o)?,
        };
        let cc = match parts.next()? {
            "0" => 0,
            "1" => 1,
            "2" => 2,
            "3" => 3,
            _ => return None,
        };
        let status = match parts.next() {
            None => None,
            Some(s) => {
                let hex = s.strip_prefix("0x")?;
                if hex.is_empty() || hex.len() > 8 {
                    return None;
                }
                Some(u32::from_str_radix(hex, 16).ok()?)
            }
        };
        if parts.next().is_some() || (status.is_some() && cc != 1) {
            return None;
        }
        Some(Claim { order, cc, status })
    }

    pub fn item(&self) -> String {
        let name = match order_name(self.order) {
            Some(n) => String::from(n),
            None => crate::format!("{}", crate::fmt::Hex(u64::from(self.order))),
        };
        match self.status {
            Some(s) => crate::format!(
                "{}:{}:{}",
                name.as_str(),
                self.cc,
                crate::fmt::Hex(u64::from(s))
            ),
            None => crate::format!("{}:{}", name.as_str(), self.cc),
        }
    }
}

/// What a store-status order saved: 512 bytes at absolute 0x1200 (stop
/// and store status) or at the address given (store status at address).
/// Offsets from the architecture's save area (QEMU: `SigpSaveArea`,
/// target/s390x/sigp.c).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SaveArea {
    pub fprs: [u64; 16],
    pub grs: [u64; 16],
    pub psw_mask: u64,
    pub psw_addr: u64,
    pub prefix: u32,
    pub fpc: u32,
    pub todpr: u32,
    pub cpu_timer: u64,
    /// The clock comparator shifted right by 8.
    pub ckc: u64,
    pub ars: [u32; 16],
    pub crs: [u64; 16],
}

pub const SAVE_AREA_LEN: usize = 512;

impl SaveArea {
    pub fn parse(b: &[u8; SAVE_AREA_LEN]) -> SaveArea {
        let d = |at: usize| u64::from_be_bytes(b[at..at + 8].try_into().unwrap());
        let w = |at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
        let mut s = SaveArea {
            psw_mask: d(0x100),
            psw_addr: d(0x108),
            prefix: w(0x118),
            fpc: w(0x11c),
            todpr: w(0x124),
            cpu_timer: d(0x128),
            ckc: d(0x130),
            ..SaveArea::default()
        };
        for i in 0..16 {
            s.fprs[i] = d(8 * i);
            s.grs[i] = d(0x80 + 8 * i);
            s.ars[i] = w(0x140 + 4 * i);
            s.crs[i] = d(0x180 + 8 * i);
        }
        s
    }
}

/// A PSW mask a running z/Architecture CPU can have: 64-bit addressing
/// (EA and BA), DAT off, nothing in the bits that must be zero (a
/// plausibility test of a stored PSW).
pub fn plausible_psw_mask(mask: u64) -> bool {
    const EA_BA: u64 = 0x0000_0001_8000_0000;
    // Bits 0, 2-4, 12, 24-30 and 33-63 must be zero (besides EA/BA); bit 5
    // (DAT) is off in this firmware.
    const MUST_BE_ZERO: u64 =
        0xb800_0000_0000_0000 | 0x0008_0000_0000_0000 | 0x0000_00fe_0000_0000 | 0x7fff_ffff;
    mask & EA_BA == EA_BA && mask & MUST_BE_ZERO == 0 && mask & (1 << 58) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims() {
        assert_eq!(
            Claim::parse("sense:0"),
            Some(Claim {
                order: 1,
                cc: 0,
                status: None
            })
        );
        let c = Claim::parse("set-prefix:1:0x200").unwrap();
        assert_eq!((c.order, c.cc, c.status), (0x0d, 1, Some(0x200)));
        assert_eq!(c.item(), "set-prefix:1:0x200");
        assert_eq!(Claim::parse("sense:0").unwrap().item(), "sense:0");
        let c = Claim::parse("0xff:3").unwrap();
        assert_eq!((c.order, c.item().as_str()), (0xff, "0xff:3"));
        assert_eq!(Claim::parse("0x01:0").unwrap().item(), "sense:0");
        for bad in [
            "",
            "sense",
            "sense:4",
            "sense:0:0x40",
            "nope:1",
            "sense:1:40",
            "sense:1:0x",
            "sense:1:0x1:2",
            "sense:1:0x123456789",
            "0x:1",
            "0x100:1",
        ] {
            assert_eq!(Claim::parse(bad), None, "{bad}");
        }
        for (code, name) in ORDERS {
            assert_eq!(order_code(name), Some(*code));
            assert_eq!(order_name(*code), Some(*name));
        }
    }

    #[test]
    fn save_area() {
        let mut b = [0u8; SAVE_AREA_LEN];
        b[0x80 + 15 * 8..0x80 + 16 * 8].copy_from_slice(&0x1234u64.to_be_bytes());
        b[0x100..0x108].copy_from_slice(&0x0002_0001_8000_0000u64.to_be_bytes());
        b[0x108..0x110].copy_from_slice(&0x4242u64.to_be_bytes());
        b[0x118..0x11c].copy_from_slice(&0x6000u32.to_be_bytes());
        b[0x180..0x188].copy_from_slice(&0xe0u64.to_be_bytes());
        b[0x180 + 14 * 8..0x180 + 15 * 8].copy_from_slice(&0xc200_0000u64.to_be_bytes());
        let s = SaveArea::parse(&b);
        assert_eq!(s.grs[15], 0x1234);
        assert_eq!(
            (s.psw_mask, s.psw_addr, s.prefix),
            (0x0002_0001_8000_0000, 0x4242, 0x6000)
        );
        assert_eq!((s.crs[0], s.crs[14]), (0xe0, 0xc200_0000));
        assert!(plausible_psw_mask(s.psw_mask));
        assert!(plausible_psw_mask(0x0302_0001_8000_0000 | (1 << 44)));
        assert!(!plausible_psw_mask(0));
        assert!(!plausible_psw_mask(0x0000_0000_8000_0000));
        assert!(!plausible_psw_mask(0x0400_0001_8000_0000));
        assert!(!plausible_psw_mask(0x0000_0001_8000_0001));
    }
}
