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
        // Every code but QEMU's pass is even: odd addresses fault on hardware.
        assert_eq!(wait_address(false, many, Some(Abort::MainReturned)) & 1, 0);
    }
}
