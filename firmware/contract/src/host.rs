//! Which host runs us, from STSI strings, and facility-list formatting.

use ufmt::{uDisplay, uWrite, Formatter};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKind {
    QemuTcg,
    Kvm,
    ZVm,
    Lpar,
    Unknown,
}

impl HostKind {
    pub fn name(self) -> &'static str {
        match self {
            HostKind::QemuTcg => "QEMU TCG",
            HostKind::Kvm => "KVM",
            HostKind::ZVm => "z/VM",
            HostKind::Lpar => "LPAR",
            HostKind::Unknown => "unknown",
        }
    }

    /// QEMU (TCG or KVM) ends the run on the special wait address 0xfff.
    pub fn is_qemu(self) -> bool {
        matches!(self, HostKind::QemuTcg | HostKind::Kvm)
    }
}

/// `level` is STSI's current configuration level (1 basic, 2 LPAR, 3 VM);
/// `manufacturer` comes from SYSIB 1.1.1, `control_program` from 3.2.2.
pub fn classify(level: u8, manufacturer: &str, control_program: &str) -> HostKind {
    if manufacturer == "QEMU" {
        return HostKind::QemuTcg;
    }
    match level {
        3 if control_program.starts_with("KVM") => HostKind::Kvm,
        3 if control_program.starts_with("z/VM") => HostKind::ZVm,
        2 => HostKind::Lpar,
        _ => HostKind::Unknown,
    }
}

/// Facility bits as ranges: "0-4 6 8-9". The first `words` doublewords count.
pub struct FacilityRanges<'a>(pub &'a [u64]);

impl uDisplay for FacilityRanges<'_> {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        let bit = |n: usize| self.0[n / 64] & (1u64 << (63 - n % 64)) != 0;
        let total = self.0.len() * 64;
        let mut n = 0;
        let mut first = true;
        while n < total {
            if !bit(n) {
                n += 1;
                continue;
            }
            let start = n;
            while n + 1 < total && bit(n + 1) {
                n += 1;
            }
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            if start == n {
                ufmt::uwrite!(f, "{}", start)?;
            } else {
                ufmt::uwrite!(f, "{}-{}", start, n)?;
            }
            n += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(classify(3, "QEMU", "KVM/Linux"), HostKind::QemuTcg);
        assert_eq!(classify(3, "IBM", "KVM/Linux"), HostKind::Kvm);
        assert_eq!(classify(3, "IBM", "z/VM    7.3.0"), HostKind::ZVm);
        assert_eq!(classify(2, "IBM", ""), HostKind::Lpar);
        assert_eq!(classify(1, "IBM", ""), HostKind::Unknown);
    }

    #[test]
    fn ranges() {
        let words = [0xf000_0000_0000_0001u64 | (1 << 58), 1 << 63];
        assert_eq!(crate::format!("{}", FacilityRanges(&words)), "0-3 5 63-64");
        assert_eq!(crate::format!("{}", FacilityRanges(&[0])), "");
    }
}
