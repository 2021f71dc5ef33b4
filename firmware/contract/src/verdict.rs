//! How a run ends: the disabled-wait PSW address that carries the verdict.
//!
//! QEMU (TCG and KVM) shuts down cleanly (exit 0) on the address 0xfff and
//! reports any other disabled wait as a guest panic. Real machines and z/VM
//! reject odd PSW addresses, so there a pass is an even, recognisable code.

use crate::tap::Tally;

pub const WAIT_PASS_QEMU: u64 = 0xfff;
pub const WAIT_PASS: u64 = 0x600d_0000;
/// Failed checks: low bits carry twice the number failed (capped).
pub const WAIT_FAIL: u64 = 0x0bad_0000;
/// The run could not finish: low bits carry twice the reason.
pub const WAIT_ABORT: u64 = 0x0dea_d000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Abort {
    UnexpectedInterrupt = 1,
    MainReturned = 2,
    Panic = 3,
    CommandLine = 4,
    NoMemoryInfo = 5,
    /// Less storage than the checks need.
    TooLittleStorage = 6,
}

impl Abort {
    /// Every reason, with what the host side calls it.
    pub const ALL: [(Abort, &'static str); 6] = [
        (Abort::UnexpectedInterrupt, "unexpected interrupt"),
        (Abort::MainReturned, "main returned"),
        (Abort::Panic, "panic"),
        (Abort::CommandLine, "command line"),
        (Abort::NoMemoryInfo, "no storage information"),
        (Abort::TooLittleStorage, "too little storage"),
    ];

    /// The reason a wait code `0x0dead000 + 2r` carries, by its `r`.
    pub fn from_code(r: u64) -> Option<Abort> {
        Abort::ALL
            .iter()
            .find(|(a, _)| *a as u64 == r)
            .map(|(a, _)| *a)
    }

    pub fn name(self) -> &'static str {
        Abort::ALL
            .iter()
            .find(|(a, _)| *a == self)
            .map_or("?", |(_, n)| n)
    }
}

pub fn wait_address(qemu: bool, tally: Tally, abort: Option<Abort>) -> u64 {
    match abort {
        Some(reason) => WAIT_ABORT | (reason as u64) << 1,
        None if tally.failed > 0 => WAIT_FAIL | u64::from(tally.failed.min(0x7fff)) << 1,
        None if qemu => WAIT_PASS_QEMU,
        None => WAIT_PASS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let ok = Tally {
            passed: 3,
            failed: 0,
            skipped: 1,
        };
        let bad = Tally { failed: 2, ..ok };
        assert_eq!(wait_address(true, ok, None), 0xfff);
        assert_eq!(wait_address(false, ok, None), 0x600d_0000);
        assert_eq!(wait_address(true, bad, None), 0x0bad_0004);
        assert_eq!(wait_address(true, ok, Some(Abort::Panic)), 0x0dea_d006);
        let many = Tally {
            failed: 100_000,
            ..ok
        };
        assert_eq!(wait_address(false, many, None), 0x0bad_fffe);
        for (i, (a, _)) in Abort::ALL.iter().enumerate() {
            assert_eq!(*a as usize, i + 1, "codes run 1, 2, ...");
            assert_eq!(Abort::from_code(*a as u64), Some(*a));
        }
        assert_eq!(Abort::TooLittleStorage.name(), "too little storage");
        // Every code but QEMU's pass is even: odd addresses fault on hardware.
        assert_eq!(wait_address(false, many, Some(Abort::MainReturned)) & 1, 0);
    }
}
