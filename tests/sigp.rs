//! The SIGP suite: every order's condition code and status word, to
//! operating and stopped CPUs, and what it did to the target, under
//! multi-threaded TCG with 2, 4 and 8 CPUs and with an address hole; and
//! for every check a run where it must fail: a claimed wrong answer
//! (`sigp-expect=`), a CPU that never started (`inject=cpu`), more CPUs
//! than the runner said.

use crate::common;

use common::{assert_pass, boot, check, check_ran, elf, fails_with, scenario};
use qemu_runner::{Directive, Scenario};
use zvtest_contract::checks::NAMES;

/// Every sigp.* check, from the firmware's list.
fn checks() -> impl Iterator<Item = &'static str> {
    NAMES.iter().copied().filter(|n| n.starts_with("sigp."))
}

/// Checks that SKIP on QEMU for a bug of its own (named in the reason).
const QEMU_BUGS: &[&str] = &["sigp.restart-in-wait"];

fn cpus(name: &str, n: u32) -> Scenario {
    scenario(name)
        .accel("tcg,thread=multi")
        .smp(n)
        .append("only=smp.*,sigp.*")
}

/// Every sigp.* check ran and passed (the QEMU-bug ones skipped naming
/// the bug), and smp.start before them.
fn all_ran(o: &qemu_runner::Run) {
    assert_pass(o);
    for c in checks() {
        if QEMU_BUGS.contains(&c) {
            check(
                o,
                o.tap.result(c).is_some_and(|r| {
                    r.ok && match &r.directive {
                        Some(Directive::Skip(why)) => why.contains("QEMU bug"),
                        _ => true,
                    }
                }),
                &format!("{c} to pass, or to SKIP naming the QEMU bug"),
            );
        } else {
            check_ran(o, c);
        }
    }
    check_ran(o, "smp.start");
}

#[test]
fn two_cpus() {
    all_ran(&boot(&cpus("sigp-2", 2), &elf()));
}

#[test]
fn four_cpus() {
    let o = boot(&cpus("sigp-4", 4), &elf());
    all_ran(&o);
    check(
        &o,
        !o.console().contains("need three CPUs"),
        "emergency signals from two senders tried",
    );
}

/// Eight MTTCG vCPUs on a loaded host of two cores: one of them was once
/// not scheduled within the 5 s a target has by default, so they get
/// host-wait=20000 (a passing run takes no longer; a lost order still
/// fails, after 20 s).
#[test]
fn eight_cpus() {
    all_ran(&boot(&cpus("sigp-8", 8).append("host-wait=20000"), &elf()));
}

/// Addresses 0, 1 and 3 (a CPU plugged at core-id 3 of four): the hole
/// at 2 answers cc 3, and every order finds the CPU at 3.
#[test]
fn a_hole_in_the_addresses() {
    let o = boot(
        &cpus("sigp-hole", 3).extra_args([
            "-smp",
            "2,maxcpus=4",
            "-device",
            "qemu-s390x-cpu,core-id=3",
        ]),
        &elf(),
    );
    all_ran(&o);
    check(
        &o,
        o.console()
            .contains("# sigp: 3 addresses answer SIGP sense; address 2 and the others cc 3"),
        "addresses 0, 1 and 3 answering, 2 not",
    );
}

/// For each check: a claimed answer (`sigp-expect=`) its first order of
/// that kind does not give, and what the failure must say.
const CLAIMS: &[(&str, &str, &[&str])] = &[
    (
        "sigp.sense",
        "sense:1:0x40",
        &[
            "SIGP sense to address 1 (operating)",
            "cc 1, status 00000040",
            "cc 0",
        ],
    ),
    (
        "sigp.external-call",
        "external-call:1:0x80",
        &[
            "SIGP external-call to address 1 (operating)",
            "cc 1, status 00000080",
        ],
    ),
    (
        "sigp.emergency-signal",
        "emergency-signal:1:0x200",
        &[
            "SIGP emergency-signal to address 1 (operating)",
            "cc 1, status 00000200",
        ],
    ),
    (
        "sigp.conditional-emergency",
        "conditional-emergency:1:0x200",
        &["SIGP conditional-emergency to address 1 (operating)"],
    ),
    (
        "sigp.start",
        "start:2",
        &["SIGP start to address 1 (stopped)", "cc 2", "cc 0"],
    ),
    (
        "sigp.stop",
        "stop:1:0x40",
        &["SIGP stop to address 1 (operating, in a wait)"],
    ),
    (
        "sigp.stop-store-status",
        "stop-store-status:3",
        &[
            "SIGP stop-store-status to address 1 (operating, in a wait)",
            "cc 3",
        ],
    ),
    (
        "sigp.restart",
        "restart:1:0x200",
        &["SIGP restart to address 1 (operating, in a wait)"],
    ),
    ("sigp.restart-in-wait", "restart:0", &[]),
    (
        "sigp.set-prefix",
        "set-prefix:1:0x100",
        &[
            "SIGP set-prefix to address 1 (operating)",
            "cc 1, status 00000100",
            "cc 1, status 00000200",
        ],
    ),
    (
        "sigp.store-status",
        "store-status:0",
        &[
            "SIGP store-status to address 1 (operating)",
            "cc 1, status 00000200",
        ],
    ),
    (
        "sigp.store-additional-status",
        "store-additional-status:0",
        &[
            "SIGP store-additional-status to address 1 (operating)",
            "cc 1, status 00000200",
        ],
    ),
    (
        "sigp.set-architecture",
        "set-architecture:1:0x200",
        &[
            "SIGP set-architecture to address 0 (any CPU)",
            "cc 1, status 00000100",
        ],
    ),
    (
        "sigp.sense-running",
        "sense-running:1:0x400",
        &["SIGP sense-running to address 0 (this CPU)"],
    ),
    (
        "sigp.cpu-reset",
        "cpu-reset:1:0x200",
        &["SIGP cpu-reset to address 1 (operating, in a wait)"],
    ),
    (
        "sigp.cpu-reset",
        "initial-cpu-reset:2",
        &["SIGP initial-cpu-reset to address 1", "cc 2"],
    ),
    (
        "sigp.no-cpu",
        "0xff:1:0x2",
        &["SIGP order 0xff to address 2 (no CPU there)", "cc 3"],
    ),
    (
        "sigp.invalid-order",
        "0x00:3",
        &[
            "SIGP order 0x0 to address 0 (this CPU)",
            "cc 1, status 00000002",
        ],
    ),
];

/// Every check fails on a claimed wrong answer, saying order, address,
/// state, expected and got.
#[test]
fn every_check_fails_on_a_wrong_expectation() {
    for (i, (name, claim, says)) in CLAIMS.iter().enumerate() {
        if says.is_empty() {
            continue;
        }
        let o = boot(
            &scenario(&format!("sigp-claim-{i}"))
                .accel("tcg,thread=multi")
                .smp(2)
                .append(format!("only=smp.*,{name} sigp-expect={claim}")),
            &elf(),
        );
        fails_with(&o, *name, says);
    }
}

/// restart-in-wait: a claimed cc 1 for RESTART fails it at the stopped
/// CPU, before QEMU's bug could make it SKIP.
#[test]
fn restart_in_wait_fails_on_a_wrong_expectation() {
    let o = boot(
        &cpus("sigp-claim-restart-in-wait", 2).append("sigp-expect=restart:1:0x200"),
        &elf(),
    );
    fails_with(
        &o,
        "sigp.restart-in-wait",
        &[
            "SIGP restart to address 1 (stopped in a wait)",
            "cc 1, status 00000200",
        ],
    );
}

/// The last CPU never starts (`inject=cpu`): every check that signals
/// another CPU fails naming it; the count of addresses still holds.
#[test]
fn a_cpu_that_never_started_fails_named() {
    let o = boot(
        &cpus("sigp-refused", 2).append("inject=cpu host-wait=1500"),
        &elf(),
    );
    for c in checks() {
        if c == "sigp.no-cpu" {
            continue;
        }
        fails_with(&o, c, &["address 1"]);
    }
    check_ran(&o, "sigp.no-cpu");
}

/// QEMU given three CPUs while the runner says two: sigp.no-cpu finds an
/// address answering where cc 3 was expected.
#[test]
fn more_cpus_than_said_fails_no_cpu() {
    let o = boot(
        &scenario("sigp-wrong-count")
            .accel("tcg,thread=multi")
            .smp(2)
            .append("only=sigp.no-cpu")
            .extra_args(["-smp", "3"]),
        &elf(),
    );
    fails_with(
        &o,
        "sigp.no-cpu",
        &["expect-cpus=2", "address 2 answers where cc 3 was expected"],
    );
}
