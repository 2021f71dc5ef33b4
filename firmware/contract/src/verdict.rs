//! How a run ends: the disabled-wait PSW address that carries the verdict.
//!
//! QEMU (TCG and KVM) shuts down cleanly (exit 0) on the address 0xfff and
//! reports any other disabled wait as a guest panic. Real machines and z/VM
//! reject odd PSW addresses, so there a pass is an even, recognisable code.

use crate::tap::Tally;

pub const WAIT_PASS_QEMU: u64 = 0xfff;
pub const WAIT_PASS: u64 = 0x600d_0000;
/// Failed checks: low bits carry twice the number failed (capped at
/// [`WAIT_FAIL_MAX`]).
pub const WAIT_FAIL: u64 = 0x0bad_0000;
/// The most failed checks [`WAIT_FAIL`] counts.
pub const WAIT_FAIL_MAX: u64 = 0x7fff;
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

    /// How the `Bail out!` reasons the firmware prints for this abort read
    /// (none for [`Abort::MainReturned`], which prints none): the host
    /// knows the wait code a bail-out must end with by these.
    pub const fn bail_outs(self) -> &'static [BailOut] {
        match self {
            Abort::UnexpectedInterrupt => &[BailOut::StartsAndHas(
                reasons::UNEXPECTED,
                reasons::INTERRUPT,
            )],
            Abort::MainReturned => &[],
            Abort::Panic => &[BailOut::Starts(reasons::PANIC)],
            Abort::CommandLine => &[
                BailOut::Starts(reasons::COMMAND_LINE),
                BailOut::Starts(reasons::NO_COMMAND_LINE),
            ],
            Abort::NoMemoryInfo => &[BailOut::Starts(reasons::NO_STORAGE_SIZE)],
            Abort::TooLittleStorage => &[BailOut::Has(reasons::TOO_LITTLE_STORAGE)],
        }
    }

    /// The abort a bail-out reason stands for, where its text tells
    /// (leading blanks aside).
    pub fn of_bail_out(reason: &str) -> Option<Abort> {
        let reason = reason.trim_start();
        Abort::ALL
            .iter()
            .map(|(a, _)| *a)
            .find(|a| a.bail_outs().iter().any(|b| b.matches(reason)))
    }
}

/// The words `Bail out!` reasons start with (or hold), one definition for
/// the firmware that writes them and the host that reads the abort from
/// them.
pub mod reasons {
    /// "unexpected <class> interrupt: ..."
    pub const UNEXPECTED: &str = "unexpected ";
    pub const INTERRUPT: &str = "interrupt";
    /// "panic: ...", "panic in check x: ..."
    pub const PANIC: &str = "panic";
    /// "command line: unknown option ..."
    pub const COMMAND_LINE: &str = "command line";
    /// QEMU dropped the -append.
    pub const NO_COMMAND_LINE: &str = "QEMU passed no command line";
    /// "SCLP Read SCP Info gave no storage size: response ..."
    pub const NO_STORAGE_SIZE: &str = "SCLP Read SCP Info gave no storage size";
    /// "64 MiB of storage is too little: ..."
    pub const TOO_LITTLE_STORAGE: &str = "of storage is too little";
}

/// The shape of a bail-out reason, see [`Abort::bail_outs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BailOut {
    /// It starts with this text.
    Starts(&'static str),
    /// It starts with the first text and holds the second.
    StartsAndHas(&'static str, &'static str),
    /// It holds this text (it starts with a number).
    Has(&'static str),
}

impl BailOut {
    pub fn matches(self, reason: &str) -> bool {
        match self {
            BailOut::Starts(start) => reason.starts_with(start),
            BailOut::StartsAndHas(start, part) => {
                reason.starts_with(start) && reason.contains(part)
            }
            BailOut::Has(part) => reason.contains(part),
        }
    }
}

impl Abort {
    /// The wait address of this abort: `0x0dead000 + 2r`.
    pub const fn wait_address(self) -> u64 {
        WAIT_ABORT | (self as u64) << 1
    }
}

pub fn wait_address(qemu: bool, tally: Tally, abort: Option<Abort>) -> u64 {
    match abort {
        Some(reason) => WAIT_ABORT | (reason as u64) << 1,
        None if tally.failed > 0 => WAIT_FAIL | u64::from(tally.failed).min(WAIT_FAIL_MAX) << 1,
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
        assert_eq!(
            wait_address(false, Tally { failed: 1, ..ok }, None),
            WAIT_FAIL | 2
        );
        // Every code but QEMU's pass is even: odd addresses fault on hardware.
        assert_eq!(wait_address(false, many, Some(Abort::MainReturned)) & 1, 0);
    }

    /// The firmware's bail-out texts (firmware/src/runner.rs) name their
    /// abort; texts of no abort name none.
    #[test]
    fn bail_outs_name_their_abort() {
        for (reason, abort) in [
            (
                "unexpected program interrupt: operation exception (code 0001, ILC 2)",
                Some(Abort::UnexpectedInterrupt),
            ),
            (
                "unexpected external interrupt: code 1201 (emergency signal) in check x",
                Some(Abort::UnexpectedInterrupt),
            ),
            ("unexpected restart", None),
            (
                "panic in check heap.stress: oops at a.rs:1",
                Some(Abort::Panic),
            ),
            (
                "command line: unknown option 'bogus'",
                Some(Abort::CommandLine),
            ),
            (
                "QEMU passed no command line: QEMU drops an -append longer than ...",
                Some(Abort::CommandLine),
            ),
            (
                "SCLP Read SCP Info gave no storage size: response 0x0300",
                Some(Abort::NoMemoryInfo),
            ),
            (
                "  64 MiB of storage is too little: zvtest needs at least 96 MiB",
                Some(Abort::TooLittleStorage),
            ),
            ("", None),
            ("main returned", None),
        ] {
            assert_eq!(Abort::of_bail_out(reason), abort, "{reason}");
        }
        assert!(Abort::MainReturned.bail_outs().is_empty());
    }
}
