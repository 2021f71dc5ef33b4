//! What each hypercall must do on each host: one table, readable on its
//! own (docs/hypercalls.md prints the same), so the same image gives an
//! exact verdict everywhere.

use crate::host::HostKind;

/// The host as far as expectations differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostProfile {
    pub kind: HostKind,
    /// QEMU's version (major, minor), from the runner's `qemu-version=`.
    pub qemu_version: Option<(u16, u16)>,
    /// A diag288 watchdog device is configured (`diag288=present`).
    pub diag288: bool,
}

/// The outcome a call must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Completes, r2 holds this value.
    Returns(u64),
    /// Completes, r2 (signed) is not negative.
    NonNegative,
    /// Completes; no result is architected.
    Completes,
    /// Completes with this return code in R1+1.
    Rc(u64),
    /// Takes this program interruption.
    Exception(u16),
    /// Nothing is recorded for this host: the check is skipped.
    Unknown,
}

pub const SPECIFICATION: u16 = 0x06;
pub const PRIVILEGED: u16 = 0x02;
const EINVAL: u64 = -22i64 as u64;

/// Every case the hypercall suite runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// DIAG 0x500 function 0 with an address inside storage.
    Diag500PrintkInside,
    /// ... and at the end of storage.
    Diag500PrintkOutside,
    Diag500Reset,
    Diag500SetStatus,
    Diag500NotifyConfigured,
    Diag500NotifyNotSetUp,
    /// A queue index past the device's queues but below the transport limit.
    Diag500NotifyPastQueues,
    /// A queue index at the transport limit (1024).
    Diag500NotifyQueueLimit,
    Diag500NotifyBadSubchannel,
    Diag500StorageLimit,
    Diag500Function5,
    Diag500FunctionFfff,
    Diag500Function2Pow63,
    Diag500ProblemState,
    Diag10,
    Diag44,
    Diag9cSelf,
    Diag9cOther,
    Diag9cMissing,
    Diag258,
    Diag288Start,
    Diag288Cancel,
    /// Cancel when no watchdog runs.
    Diag288CancelIdle,
    /// INIT with a timeout below the 15 s minimum.
    Diag288ShortTimeout,
    Diag288OddRegister,
    Diag308Store,
    /// Set IPL parameters from a block of length 0.
    Diag308SetInvalid,
    Diag308BadSubcode,
    Diag308OddRegister,
    Diag318,
    /// The certificate-store query of secure IPL, on one page.
    Diag320Query,
    /// The secure-IPL query.
    Diag508Query,
    Diag501,
}

impl Case {
    /// Every case with its check name and what it calls: the one place a
    /// hypercall check's name is written (the registry and the list of
    /// checks take it from here).
    pub const ALL: &'static [(Case, &'static str, &'static str)] = &[
        (
            Case::Diag500PrintkInside,
            "hcall.diag500.printk-inside",
            "DIAG 0x500 r1=0, r2 inside storage",
        ),
        (
            Case::Diag500PrintkOutside,
            "hcall.diag500.printk-outside",
            "DIAG 0x500 r1=0, r2 = storage size",
        ),
        (
            Case::Diag500Reset,
            "hcall.diag500.reset",
            "DIAG 0x500 r1=1 (legacy RESET)",
        ),
        (
            Case::Diag500SetStatus,
            "hcall.diag500.set-status",
            "DIAG 0x500 r1=2 (legacy SET_STATUS)",
        ),
        (
            Case::Diag500NotifyConfigured,
            "hcall.diag500.notify",
            "DIAG 0x500 r1=3, a set-up queue",
        ),
        (
            Case::Diag500NotifyNotSetUp,
            "hcall.diag500.notify-not-set-up",
            "DIAG 0x500 r1=3, a queue not set up",
        ),
        (
            Case::Diag500NotifyPastQueues,
            "hcall.diag500.notify-past-queues",
            "DIAG 0x500 r1=3, queue past the device's",
        ),
        (
            Case::Diag500NotifyQueueLimit,
            "hcall.diag500.notify-queue-limit",
            "DIAG 0x500 r1=3, queue 1024",
        ),
        (
            Case::Diag500NotifyBadSubchannel,
            "hcall.diag500.notify-bad-subchannel",
            "DIAG 0x500 r1=3, no such subchannel",
        ),
        (
            Case::Diag500StorageLimit,
            "hcall.diag500.storage-limit",
            "DIAG 0x500 r1=4",
        ),
        (
            Case::Diag500Function5,
            "hcall.diag500.function-5",
            "DIAG 0x500 r1=5",
        ),
        (
            Case::Diag500FunctionFfff,
            "hcall.diag500.function-ffff",
            "DIAG 0x500 r1=0xffff",
        ),
        (
            Case::Diag500Function2Pow63,
            "hcall.diag500.function-2pow63",
            "DIAG 0x500 r1=2^63",
        ),
        (
            Case::Diag500ProblemState,
            "hcall.diag500.problem-state",
            "DIAG 0x500 in problem state",
        ),
        (Case::Diag10, "hcall.diag10", "DIAG 0x10 on one page"),
        (Case::Diag44, "hcall.diag44", "DIAG 0x44"),
        (
            Case::Diag9cSelf,
            "hcall.diag9c.self",
            "DIAG 0x9c to this CPU",
        ),
        (
            Case::Diag9cOther,
            "hcall.diag9c.other",
            "DIAG 0x9c to another CPU address",
        ),
        (
            Case::Diag9cMissing,
            "hcall.diag9c.missing",
            "DIAG 0x9c to CPU 0xffff",
        ),
        (Case::Diag258, "hcall.diag258", "DIAG 0x258, r1=0"),
        (
            Case::Diag288Start,
            "hcall.diag288.start",
            "DIAG 0x288 start, 30 s",
        ),
        (
            Case::Diag288Cancel,
            "hcall.diag288.cancel",
            "DIAG 0x288 cancel of a 30 s watchdog",
        ),
        (
            Case::Diag288CancelIdle,
            "hcall.diag288.cancel-idle",
            "DIAG 0x288 cancel, no watchdog running",
        ),
        (
            Case::Diag288ShortTimeout,
            "hcall.diag288.short-timeout",
            "DIAG 0x288 start, 14 s",
        ),
        (
            Case::Diag288OddRegister,
            "hcall.diag288.odd-register",
            "DIAG 0x288 with odd R1",
        ),
        (
            Case::Diag308Store,
            "hcall.diag308.store",
            "DIAG 0x308 subcode 6 (store IPL parameters)",
        ),
        (
            Case::Diag308SetInvalid,
            "hcall.diag308.set-invalid",
            "DIAG 0x308 subcode 5, IPL block of length 0",
        ),
        (
            Case::Diag308BadSubcode,
            "hcall.diag308.bad-subcode",
            "DIAG 0x308 subcode 0x10000",
        ),
        (
            Case::Diag308OddRegister,
            "hcall.diag308.odd-register",
            "DIAG 0x308 subcode 6, odd R1",
        ),
        (Case::Diag318, "hcall.diag318", "DIAG 0x318"),
        (
            Case::Diag320Query,
            "hcall.diag320.query",
            "DIAG 0x320 subcode 0 (certificate store), one page",
        ),
        (
            Case::Diag508Query,
            "hcall.diag508.query",
            "DIAG 0x508 subcode 0 (secure IPL)",
        ),
        (Case::Diag501, "hcall.diag501", "DIAG 0x501"),
    ];
}

impl Case {
    /// The check's name, `hcall.…`.
    pub const fn check_name(self) -> &'static str {
        let mut i = 0;
        while i < Case::ALL.len() {
            if Case::ALL[i].0 as usize == self as usize {
                return Case::ALL[i].1;
            }
            i += 1;
        }
        panic!("a case missing from Case::ALL")
    }

    /// The name without the group, as messages and the table show it.
    pub fn short_name(self) -> &'static str {
        let name = self.check_name();
        name.strip_prefix("hcall.").unwrap_or(name)
    }
}

/// Every case's check is in the list of checks a full run reports.
const _: () = {
    let mut i = 0;
    while i < Case::ALL.len() {
        let mut found = false;
        let mut j = 0;
        while j < crate::checks::NAMES.len() {
            found |= crate::checks::same(Case::ALL[i].1, crate::checks::NAMES[j]);
            j += 1;
        }
        assert!(found, "a hypercall check missing from checks::NAMES");
        i += 1;
    }
};

impl HostProfile {
    fn qemu_at_least(&self, major: u16, minor: u16) -> Option<bool> {
        self.qemu_version.map(|v| v >= (major, minor))
    }
}

/// The table. `memory` is the storage size, for the storage-limit call.
pub fn expect(case: Case, host: &HostProfile, memory: u64) -> Expect {
    use Case::*;
    use Expect::*;
    let qemu = host.kind.is_qemu();
    let tcg = host.kind == HostKind::QemuTcg;
    match case {
        // QEMU keeps function 0 as a check of early-printk addresses.
        Diag500PrintkInside if qemu => Returns(0),
        Diag500PrintkOutside if qemu => Returns(EINVAL),
        // The legacy transport's functions are gone from today's QEMU.
        Diag500Reset | Diag500SetStatus if qemu => Exception(SPECIFICATION),
        // QEMU's own handler answers 0; under KVM the kernel answers with
        // the ioeventfd's cookie (the device's index on its bus) for every
        // queue the device has, set up or not.
        Diag500NotifyConfigured | Diag500NotifyNotSetUp if tcg => Returns(0),
        Diag500NotifyConfigured | Diag500NotifyNotSetUp if qemu => NonNegative,
        // A queue the device does not have: QEMU 10.0 refuses it (its ring
        // size is 0); 7.2 notified any index below the transport limit.
        Diag500NotifyPastQueues if qemu => match host.qemu_at_least(10, 0) {
            Some(true) => Returns(EINVAL),
            Some(false) => Returns(0),
            None => Unknown,
        },
        Diag500NotifyQueueLimit | Diag500NotifyBadSubchannel if qemu => Returns(EINVAL),
        Diag500StorageLimit if qemu => match host.qemu_at_least(10, 0) {
            Some(true) => Returns(memory - 1),
            Some(false) => Exception(SPECIFICATION),
            None => Unknown,
        },
        Diag500Function5 | Diag500FunctionFfff | Diag500Function2Pow63 if qemu => {
            Exception(SPECIFICATION)
        }
        // DIAG is privileged everywhere.
        Diag500ProblemState => Exception(PRIVILEGED),
        // Under TCG only 0x44, 0x288, 0x308 and 0x500 exist.
        Diag44 if qemu => Completes,
        Diag10 | Diag9cSelf | Diag9cOther | Diag9cMissing | Diag258 | Diag318 | Diag501 if tcg => {
            Exception(SPECIFICATION)
        }
        // The KVM kernel serves 0x10 and 0x9c (a yield hint, whatever the target).
        Diag10 | Diag9cSelf | Diag9cOther | Diag9cMissing if qemu => Completes,
        Diag288Start | Diag288Cancel if qemu => {
            if host.diag288 {
                Completes
            } else {
                Exception(SPECIFICATION)
            }
        }
        // Refused whether or not the device is there: nothing to cancel,
        // a timeout below 15 s, an odd register.
        Diag288CancelIdle | Diag288ShortTimeout | Diag288OddRegister if qemu => {
            Exception(SPECIFICATION)
        }
        // No IPL parameters were set by -kernel: "no configuration" (0x102).
        Diag308Store if qemu => Rc(0x0102),
        // A block whose length is not a valid IPL block's: "invalid" (0x402).
        Diag308SetInvalid if qemu => Rc(0x0402),
        Diag308BadSubcode | Diag308OddRegister if qemu => Exception(SPECIFICATION),
        // Secure IPL's DIAGs: unknown to QEMU up to 10.2 (and to its
        // February 2026 master); 11.1's source is not at hand, so its
        // answer is only reported.
        Diag320Query | Diag508Query if qemu => match host.qemu_at_least(11, 0) {
            Some(false) => Exception(SPECIFICATION),
            Some(true) | None => Unknown,
        },
        _ => Unknown,
    }
}

/// The table as Markdown, one column per host profile; docs/hypercalls.md
/// carries the same text (a unit test keeps them equal).
pub fn markdown_table(memory: u64) -> alloc::string::String {
    use crate::fmt::Hex;
    use alloc::string::String;
    let profile = |kind, v| HostProfile {
        kind,
        qemu_version: v,
        diag288: false,
    };
    let hosts = [
        ("QEMU TCG 7.2", profile(HostKind::QemuTcg, Some((7, 2)))),
        ("QEMU TCG 10.0", profile(HostKind::QemuTcg, Some((10, 0)))),
        ("QEMU TCG 11.1", profile(HostKind::QemuTcg, Some((11, 1)))),
        ("KVM", profile(HostKind::Kvm, None)),
        ("z/VM", profile(HostKind::ZVm, None)),
        ("LPAR", profile(HostKind::Lpar, None)),
    ];
    let mut out = String::from("| check (`hcall.`) | call |");
    for (name, _) in &hosts {
        out.push_str(&crate::format!(" {} |", *name));
    }
    out.push_str("\n|---|---|");
    for _ in &hosts {
        out.push_str("---|");
    }
    out.push('\n');
    for (case, _, what) in Case::ALL {
        out.push_str(&crate::format!("| {} | {} |", case.short_name(), *what));
        for (_, host) in &hosts {
            let cell = match expect(*case, host, memory) {
                Expect::Returns(v) if v == memory - 1 => String::from("r2 = storage size - 1"),
                Expect::Returns(v) => crate::format!("r2 = {}", v as i64),
                Expect::NonNegative => String::from("r2 >= 0"),
                Expect::Completes => String::from("completes"),
                Expect::Rc(rc) => crate::format!("rc {}", Hex(rc)),
                Expect::Exception(SPECIFICATION) => String::from("specification exc."),
                Expect::Exception(PRIVILEGED) => String::from("privileged-op. exc."),
                Expect::Exception(c) => crate::format!("exception {}", Hex(c.into())),
                Expect::Unknown => String::from("(skipped)"),
            };
            out.push_str(&crate::format!(" {} |", cell.as_str()));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_carry_the_table() {
        let doc = include_str!("../../../docs/hypercalls.md");
        let table = markdown_table(128 << 20);
        assert!(
            doc.contains(&table),
            "docs/hypercalls.md is out of date; its table must read:\n{table}"
        );
    }

    #[test]
    fn every_case_is_listed_once() {
        for (i, (c, _, _)) in Case::ALL.iter().enumerate() {
            assert!(!Case::ALL[i + 1..].iter().any(|(d, _, _)| d == c));
        }
        assert_eq!(Case::ALL.len(), 33);
    }

    fn tcg(v: Option<(u16, u16)>) -> HostProfile {
        HostProfile {
            kind: HostKind::QemuTcg,
            qemu_version: v,
            diag288: false,
        }
    }

    #[test]
    fn storage_limit_depends_on_version() {
        let mem = 128 << 20;
        assert_eq!(
            expect(Case::Diag500StorageLimit, &tcg(Some((10, 0))), mem),
            Expect::Returns(mem - 1)
        );
        assert_eq!(
            expect(Case::Diag500StorageLimit, &tcg(Some((7, 2))), mem),
            Expect::Exception(SPECIFICATION)
        );
        assert_eq!(
            expect(Case::Diag500StorageLimit, &tcg(None), mem),
            Expect::Unknown
        );
    }

    #[test]
    fn tcg_refuses_kvm_only_codes() {
        for c in [
            Case::Diag10,
            Case::Diag9cSelf,
            Case::Diag258,
            Case::Diag318,
            Case::Diag501,
        ] {
            assert_eq!(expect(c, &tcg(None), 0), Expect::Exception(SPECIFICATION));
        }
        let kvm = HostProfile {
            kind: HostKind::Kvm,
            ..tcg(None)
        };
        assert_eq!(expect(Case::Diag10, &kvm, 0), Expect::Completes);
        assert_eq!(expect(Case::Diag318, &kvm, 0), Expect::Unknown);
    }

    #[test]
    fn notify_rows_follow_the_sources() {
        let v = |version| tcg(Some(version));
        for version in [(7, 2), (10, 0), (11, 1)] {
            // A set-up queue and one that exists but was not set up: 0 exactly.
            assert_eq!(
                expect(Case::Diag500NotifyConfigured, &v(version), 0),
                Expect::Returns(0)
            );
            assert_eq!(
                expect(Case::Diag500NotifyNotSetUp, &v(version), 0),
                Expect::Returns(0)
            );
        }
        assert_eq!(
            expect(Case::Diag500NotifyPastQueues, &v((7, 2)), 0),
            Expect::Returns(0)
        );
        for version in [(10, 0), (11, 1)] {
            assert_eq!(
                expect(Case::Diag500NotifyPastQueues, &v(version), 0),
                Expect::Returns(EINVAL)
            );
        }
        let kvm = HostProfile {
            kind: HostKind::Kvm,
            ..tcg(Some((10, 0)))
        };
        assert_eq!(
            expect(Case::Diag500NotifyNotSetUp, &kvm, 0),
            Expect::NonNegative
        );
    }

    #[test]
    fn watchdog_needs_the_device() {
        let mut h = tcg(None);
        assert_eq!(
            expect(Case::Diag288Start, &h, 0),
            Expect::Exception(SPECIFICATION)
        );
        h.diag288 = true;
        assert_eq!(expect(Case::Diag288Start, &h, 0), Expect::Completes);
        for refused in [Case::Diag288CancelIdle, Case::Diag288ShortTimeout] {
            assert_eq!(expect(refused, &h, 0), Expect::Exception(SPECIFICATION));
        }
    }

    #[test]
    fn unknown_hosts_have_no_expectations_but_privilege() {
        let zvm = HostProfile {
            kind: HostKind::ZVm,
            ..tcg(None)
        };
        assert_eq!(expect(Case::Diag500Reset, &zvm, 0), Expect::Unknown);
        assert_eq!(
            expect(Case::Diag500ProblemState, &zvm, 0),
            Expect::Exception(PRIVILEGED)
        );
    }
}
