//! The hypercall suite (`hcall.*`) against the table in docs/hypercalls.md:
//! the whole group with the version the runner detects, the diag288
//! watchdog present and expiring, and a host that differs from the table
//! (a wrong `qemu-version=`).

use crate::common;

use common::{assert_pass, boot, check, check_ran, check_summary, elf, scenario};
use qemu_runner::{detect_qemu_version, Diag288, QemuVersion, Run, Scenario, VersionWord};
use std::collections::BTreeSet;
use std::time::Duration;
use zvtest_contract::hypercalls::Case;

/// The check that lets the watchdog expire: not in the table.
const EXPIRY: &str = zvtest_contract::checks::DIAG288_EXPIRY;

/// The register-preservation check of the kvm_para ABI: not in the table
/// (it uses the table's function-0 rows).
const ABI: &str = "hcall.abi.registers";

/// Every check of the group, as the firmware names them.
fn hcall_checks() -> BTreeSet<String> {
    Case::ALL
        .iter()
        .map(|(_, name, _)| name.to_string())
        .chain([EXPIRY.to_string(), ABI.to_string()])
        .collect()
}

/// The group with virtio-ccw devices for the notify checks: one with a
/// single queue (notified past it) and one with three (queue 1 exists but
/// is not set up).
fn hcall_scenario(name: &str) -> Scenario {
    scenario(name)
        .device("virtio-rng-ccw,devno=fe.0.0001")
        .device("virtio-net-ccw,devno=fe.0.0002,netdev=n0")
        .extra_args(["-netdev", "user,id=n0,restrict=on"])
        .append("only=hcall")
}

/// The `# <check>: device <bus> (<n> queues), queue <q>` line of a notify check.
fn notify_target<'a>(o: &'a Run, check: &str) -> Option<&'a str> {
    o.tap
        .diagnostics
        .iter()
        .find_map(|d| d.strip_prefix(&format!("{check}: device ")))
}

fn result_names(o: &Run) -> BTreeSet<String> {
    o.tap.results.iter().map(|r| r.name.clone()).collect()
}

fn skipped(o: &Run) -> Vec<&str> {
    o.tap
        .results
        .iter()
        .filter(|r| r.is_skip())
        .map(|r| r.name.as_str())
        .collect()
}

/// The firmware echoes its command line as `# command line: '...'`.
#[track_caller]
fn check_word_reached_the_firmware(o: &Run, word: &str) {
    let seen = o
        .tap
        .diagnostics
        .iter()
        .any(|l| l.starts_with("command line:") && l.split([' ', '\'']).any(|w| w == word));
    check(o, seen, &format!("`{word}` on the firmware's command line"));
}

#[test]
fn whole_group_with_the_detected_version() {
    let o = boot(&hcall_scenario("hcall-default"), &elf());
    assert_pass(&o);
    check(&o, result_names(&o) == hcall_checks(), "every hcall check");
    // With qemu-version= nothing is left to guess: only the expiry, which
    // needs diag288=expire, is skipped; and from 11.0 secure IPL's DIAGs,
    // whose expectations no source at hand gives (docs/hypercalls.md).
    let mut want = vec![EXPIRY];
    if o.qemu_version.is_some_and(|v| v >= QemuVersion::new(11, 0)) {
        want = vec![EXPIRY, "hcall.diag320.query", "hcall.diag508.query"];
    }
    check(
        &o,
        skipped(&o) == want,
        &format!("only {want:?} skipped, not {:?}", skipped(&o)),
    );
    let version = o.qemu_version;
    check(&o, version.is_some(), "the runner to pass qemu-version=");
    let v = version.unwrap();
    let real = detect_qemu_version(&hcall_scenario("x").qemu).expect("QEMU's version");
    check(
        &o,
        v.same_release(&real),
        &format!("qemu-version={v} to be the QEMU's own {}", real.full()),
    );
    check_word_reached_the_firmware(&o, &v.word());
    // The notify cases hit what they are named after.
    check(
        &o,
        notify_target(&o, "diag500.notify-not-set-up") == Some("fe.0.0002 (3 queues), queue 1"),
        "notify-not-set-up on the 3-queue net device's queue 1",
    );
    check(
        &o,
        notify_target(&o, "diag500.notify-past-queues") == Some("fe.0.0001 (1 queues), queue 1"),
        "notify-past-queues on the 1-queue rng device's queue 1",
    );
    // Without diag288= the firmware finds out, and says so.
    check(
        &o,
        o.tap
            .diagnostics
            .iter()
            .any(|d| d.starts_with("diag288: absent (no diag288= on the command line")),
        "the firmware's own finding: no watchdog",
    );
    // Each completing call reports its latency.
    check(
        &o,
        o.tap
            .diagnostics
            .iter()
            .any(|l| l.starts_with("latency diag500.notify: median ")),
        "a latency line for diag500.notify",
    );
    // Its figures come from one sorted set of calls: min <= p10 <= median
    // <= p90 <= max.
    for l in o
        .tap
        .diagnostics
        .iter()
        .filter(|l| l.starts_with("latency "))
    {
        check(
            &o,
            latency_in_order(l),
            &format!("min <= p10 <= median <= p90 <= max in '{l}'"),
        );
    }
    check_summary(&o);
}

/// `latency <call>: median M ns, min A ns, max B ns, p10 P ns, p90 Q ns
/// (N calls)`: all five figures there and in order.
fn latency_in_order(line: &str) -> bool {
    let ns = |key: &str| -> Option<u64> {
        line.split(", ").find_map(|f| {
            let f = f
                .rsplit(": ")
                .next()?
                .strip_prefix(key)?
                .strip_prefix(' ')?;
            f.split(' ').next()?.parse().ok()
        })
    };
    let v: Vec<Option<u64>> = ["min", "p10", "median", "p90", "max"]
        .iter()
        .map(|k| ns(k))
        .collect();
    v.iter().all(Option::is_some) && v.windows(2).all(|w| w[0] <= w[1])
}

#[test]
fn latency_order_is_checked() {
    assert!(latency_in_order(
        "latency diag44: median 621 ns, min 470 ns, max 1572 ns, p10 500 ns, p90 900 ns (64 calls)"
    ));
    // A p90 below the median, a missing p10.
    assert!(!latency_in_order(
        "latency diag44: median 621 ns, min 470 ns, max 1572 ns, p10 500 ns, p90 600 ns (64 calls)"
    ));
    assert!(!latency_in_order(
        "latency diag44: median 621 ns, min 470 ns, max 1572 ns (64 calls)"
    ));
}

#[test]
fn diag288_present() {
    let o = boot(
        &hcall_scenario("hcall-diag288").diag288(Diag288::Present),
        &elf(),
    );
    assert_pass(&o);
    check(&o, result_names(&o) == hcall_checks(), "every hcall check");
    for name in ["hcall.diag288.start", "hcall.diag288.cancel"] {
        let r = o.tap.result(name);
        check(
            &o,
            r.is_some_and(|r| r.ok && !r.is_skip()),
            &format!("`ok` for {name}"),
        );
    }
    check_word_reached_the_firmware(&o, "diag288=present");
    check(
        &o,
        o.command.windows(2).any(|w| w == ["-device", "diag288"]),
        "-device diag288",
    );
}

/// `-device diag288` without `diag288=` (a boot by hand): the firmware finds
/// the watchdog and holds every row to it.
#[test]
fn diag288_found_without_being_told() {
    let o = boot(
        &scenario("hcall-diag288-found")
            .device("diag288")
            .append("only=hcall.diag288"),
        &elf(),
    );
    assert_pass(&o);
    check(
        &o,
        o.tap
            .diagnostics
            .iter()
            .any(|d| d.starts_with("diag288: present (no diag288= on the command line")),
        "the firmware's own finding: a watchdog",
    );
    for name in ["hcall.diag288.start", "hcall.diag288.cancel"] {
        check_ran(&o, name);
    }
}

/// Each watchdog check stands alone: the cancel starts its own watchdog.
#[test]
fn diag288_cancel_alone() {
    let o = boot(
        &scenario("hcall-diag288-cancel-alone")
            .diag288(Diag288::Present)
            .append("only=hcall.diag288.cancel"),
        &elf(),
    );
    assert_pass(&o);
    check(
        &o,
        o.tap.results.len() == 1
            && o.tap
                .result("hcall.diag288.cancel")
                .is_some_and(|r| r.ok && !r.is_skip()),
        "`ok` for hcall.diag288.cancel run alone",
    );
}

/// A watchdog the firmware is told about but the host does not have fails
/// every row that needs it.
#[test]
fn diag288_claimed_but_absent_fails() {
    let o = boot(
        &scenario("hcall-diag288-claimed").append("only=hcall.diag288 diag288=present"),
        &elf(),
    );
    check(&o, !o.passed(), "FAIL");
    let failed: Vec<&str> = o.tap.failures().map(|r| r.name.as_str()).collect();
    check(
        &o,
        failed == ["hcall.diag288.start", "hcall.diag288.cancel"],
        &format!("start and cancel to fail, not {failed:?}"),
    );
}

#[test]
fn diag288_expiry_injects_a_restart() {
    // 15 s of watchdog, so a longer host timeout.
    let s = scenario("hcall-diag288-expiry")
        .diag288(Diag288::Expire)
        .append("only=hcall.diag288.*")
        .timeout(Duration::from_secs(60));
    let o = boot(&s, &elf());
    assert_pass(&o);
    let r = o.tap.result(EXPIRY);
    check(
        &o,
        r.is_some_and(|r| r.ok && !r.is_skip()),
        &format!("`ok` for {EXPIRY}"),
    );
    check(
        &o,
        o.console().contains("# zvtest: diag288 armed for 15 s"),
        "the firmware's armed line",
    );
    // When the interrupt was taken, as the firmware measured it: not early.
    let taken_ms = o.tap.diagnostics.iter().find_map(|d| {
        d.strip_prefix("diag288: restart interrupt ")?
            .strip_suffix(" ms after the start")?
            .parse::<u64>()
            .ok()
    });
    check(
        &o,
        taken_ms.is_some_and(|ms| (15_000..25_000).contains(&ms)),
        &format!("the restart taken 15 s or a little later, not {taken_ms:?} ms"),
    );
    // QEMU's side: the watchdog fired and its action ran.
    let events: Vec<_> = o.events("WATCHDOG").collect();
    check(
        &o,
        events.len() == 1,
        &format!("one WATCHDOG event, not {:?}", o.qmp_events),
    );
    check(
        &o,
        events[0].field("action") == Some("inject-nmi"),
        "action inject-nmi",
    );
    check(
        &o,
        events[0].after >= Duration::from_secs(15),
        &format!("the event after 15 s, not {:?}", events[0].after),
    );
    check_word_reached_the_firmware(&o, "diag288=expire");
}

#[test]
fn a_host_that_differs_from_the_table_fails() {
    let s = scenario("hcall-wrong-version").append("only=hcall.diag500.storage-limit");
    let real = detect_qemu_version(&s.qemu).expect("QEMU's version");
    // Claim the other column of the table.
    let (claim, expected, got) = if real >= QemuVersion::new(10, 0) {
        ("7.2", "specification", "completed, r2 0x7ffffff")
    } else {
        ("10.0", "completed, r2 0x7ffffff", "specification")
    };
    let o = boot(&s.claim_qemu_version(claim), &elf());
    check(&o, !o.passed(), "FAIL");
    check(&o, o.exit.code() == Some(1), "QEMU exit status 1");
    check_word_reached_the_firmware(&o, &format!("qemu-version={claim}"));
    let failed: Vec<&str> = o.tap.failures().map(|r| r.name.as_str()).collect();
    check(
        &o,
        failed == ["hcall.diag500.storage-limit"],
        &format!("hcall.diag500.storage-limit alone to fail, not {failed:?}"),
    );
    let yaml = o.tap.failures().next().and_then(|r| r.yaml.as_ref());
    let field = |k: &str| yaml.and_then(|y| y.get(k)).unwrap_or("");
    check(
        &o,
        field("expected").starts_with(expected),
        &format!(
            "expected: {expected}... (for QEMU {claim}), not '{}'",
            field("expected")
        ),
    );
    check(
        &o,
        field("got").starts_with(got),
        &format!(
            "got: {got}... (QEMU {}), not '{}'",
            real.full(),
            field("got")
        ),
    );
    check_summary(&o);
}

#[test]
fn without_a_version_the_version_dependent_check_is_skipped() {
    let s = scenario("hcall-no-version")
        .append("only=hcall.diag500.storage-limit")
        .qemu_version(VersionWord::Omit);
    let o = boot(&s, &elf());
    assert_pass(&o);
    check(
        &o,
        skipped(&o) == ["hcall.diag500.storage-limit"],
        "hcall.diag500.storage-limit skipped",
    );
    check(
        &o,
        !o.tap
            .diagnostics
            .iter()
            .any(|l| l.starts_with("command line:") && l.contains("qemu-version=")),
        "no qemu-version= on the command line",
    );
}
