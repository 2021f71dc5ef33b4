//! Device discovery: the channel-subsystem inventory against `devices=`,
//! hot plug and unplug over QMP (`css.hotplug`), and the legacy
//! s390-virtio device page (`legacy.page`).

use crate::common;

use common::models::{usable_models, BUILT_IN};
use common::{
    assert_pass, boot, check, check_ran, check_summary, elf, failure_text, scenario, scenario_dir,
    with_legacy_page,
};
use qemu_runner::Directive;
use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;
use zvtest_contract::virtio::ids;
use zvtest_contract::virtio::legacy_page::LegacyDeviceSpec;

struct Probe {
    usable: Vec<(&'static str, &'static str)>,
    left_out: Vec<(&'static str, String)>,
}

/// Decides, once per test binary, which candidates to boot with, and
/// prints (past the test harness's capture) which were left out and why.
fn probe() -> &'static Probe {
    static PROBE: OnceLock<Probe> = OnceLock::new();
    PROBE.get_or_init(|| {
        let (usable, left_out) = usable_models();
        // Straight to stderr: libtest captures print!/eprint! of passing tests.
        let mut err = std::io::stderr().lock();
        for (model, why) in &left_out {
            let _ = writeln!(err, "discovery: left out {model}: {why}");
        }
        Probe { usable, left_out }
    })
}

#[test]
fn no_devices() {
    let o = boot(&scenario("devices-none").expect_no_devices(), &elf());
    assert_pass(&o);
    let inv = o.tap.result("css.inventory");
    check(
        &o,
        inv.is_some_and(|r| r.ok && !r.is_skip()),
        "css.inventory to pass (not skip) with devices=none",
    );
    check(
        &o,
        o.tap
            .diagnostics
            .iter()
            .any(|d| d.starts_with("channel subsystem: 0 devices")),
        "an inventory of 0 devices",
    );
    // SENSE ID had nothing to identify: that is a skip, not a pass.
    let why = match o
        .tap
        .result("css.sense-id")
        .and_then(|r| r.directive.as_ref())
    {
        Some(Directive::Skip(why)) => why.as_str(),
        _ => "",
    };
    check(
        &o,
        why == "no device in the channel subsystem",
        &format!("css.sense-id skipped for want of a device, not {why:?}"),
    );
}

#[test]
fn every_model_this_qemu_can_run() {
    let p = probe();
    for m in BUILT_IN {
        assert!(
            p.usable.iter().any(|(u, _)| u == m),
            "{m} is built into every s390x QEMU but was left out: {:?}",
            p.left_out
        );
    }
    // Every check, but not the disks' ring-index wrap (66 000 requests
    // each): this is about finding the devices.
    let mut s = scenario("every-model").append("index-wrap=no");
    for (i, (model, name)) in p.usable.iter().enumerate() {
        s = s.virtio_ccw(model, &format!("fe.0.{:04x}", i + 1), name);
    }
    let o = boot(&s, &elf());
    assert_pass(&o);
    check(
        &o,
        o.tap.result("css.inventory").is_some_and(|r| !r.is_skip()),
        "css.inventory to be checked",
    );
    check(
        &o,
        o.tap
            .diagnostics
            .iter()
            .any(|d| d.starts_with(&format!("channel subsystem: {} devices", p.usable.len()))),
        &format!("an inventory of {} devices", p.usable.len()),
    );
    // Every expected name is one the firmware's table (or the virtio-N /
    // cu-XXXX forms) can produce.
    for (_, name) in &p.usable {
        assert!(ids::by_name(name).is_some(), "{name} is not a virtio name");
    }
}

#[test]
fn devices_in_every_subchannel_set() {
    let s = scenario("subchannel-sets")
        .append("index-wrap=no")
        .virtio_ccw("virtio-rng-ccw", "fe.0.0010", "rng")
        .virtio_ccw("virtio-blk-ccw", "fe.0.0000", "blk")
        .virtio_ccw("virtio-blk-ccw", "fe.1.0005", "blk")
        .virtio_ccw("virtio-net-ccw", "fe.2.1234", "net")
        .virtio_ccw("virtio-serial-ccw", "fe.3.ffff", "console");
    let o = boot(&s, &elf());
    assert_pass(&o);
    check(
        &o,
        o.tap.result("css.inventory").is_some_and(|r| !r.is_skip()),
        "css.inventory to be checked",
    );
    check(
        &o,
        o.tap
            .diagnostics
            .iter()
            .any(|d| d.contains("MSS on") && d.starts_with("channel subsystem: 5 devices")),
        "5 devices with multiple subchannel sets on",
    );
}

#[test]
fn non_virtio_control_unit() {
    // QEMU's (experimental) 3270 terminal: control unit 3270, not virtio.
    let s = scenario("cu-3270")
        .ccw_device("x-terminal3270", "fe.0.0020", "cu-3270")
        .virtio_ccw("virtio-rng-ccw", "fe.0.0021", "rng");
    let o = boot(&s, &elf());
    assert_pass(&o);
}

#[test]
fn wrong_expectation_fails_naming_both_entries() {
    // Expected and present: blk. Present, not expected: an rng added as a
    // plain -device. Expected, not present: an rng at fe.0.0009.
    let s = scenario("devices-wrong")
        .append("index-wrap=no")
        .virtio_ccw("virtio-blk-ccw", "fe.0.0001", "blk")
        .device("virtio-rng-ccw,devno=fe.0.0003")
        .expect_device("fe.0.0009", "rng");
    let o = boot(&s, &elf());
    check(&o, !o.passed(), "FAIL");
    check(
        &o,
        o.exit.code().is_some_and(|c| c != 0),
        "QEMU to exit by itself with a non-zero status",
    );
    let inv = o.tap.failures().find(|r| r.name == "css.inventory");
    check(&o, inv.is_some(), "`not ok ... - css.inventory`");
    let message = inv
        .and_then(|r| r.yaml.as_ref())
        .and_then(|y| y.get("message"))
        .unwrap_or("");
    check(
        &o,
        message.contains("missing fe.0.0009:rng") && message.contains("unexpected fe.0.0003:rng"),
        &format!("a message naming both entries, not {message:?}"),
    );
    check(
        &o,
        o.tap.failures().count() == 1,
        "css.inventory to be the only failure",
    );
    check(
        &o,
        failure_text(&o).contains("fe.0.0001:blk"),
        "expected/got to list the blk that is right",
    );
    check_summary(&o);
}

#[test]
fn hot_plug_and_unplug() {
    // Waits on the firmware: it must take hotplug=, print the ready line,
    // and report css.hotplug after the channel reports.
    let s = scenario("hotplug")
        .virtio_ccw("virtio-blk-ccw", "fe.0.0001", "blk")
        .hot_plug("virtio-rng-ccw", "fe.0.0007", "rng")
        .hot_unplug("ccw-fe.0.0001")
        .append("verbose=2")
        .timeout(Duration::from_secs(20));
    let o = boot(&s, &elf());
    assert_pass(&o);
    check(&o, o.hotplug_done, "every QMP step performed");
    check_ran(&o, "css.hotplug");
}

/// Where the synthetic rings go: after the page, 16 KiB per queue (enough
/// for a legacy split ring of 256 entries with 4 KiB alignment), as the
/// old transport placed its rings above the device page.
fn ring(queue: u64) -> u64 {
    common::LEGACY_PAGE_ADDR + 0x1000 + queue * 0x4000
}

#[test]
fn legacy_page_with_two_devices() {
    let console = LegacyDeviceSpec::new(ids::CONSOLE as u8)
        .with_queue(0, ring(0), 128)
        .with_queue(0, ring(1), 128)
        .with_host_features(&[0, 0, 0, 0])
        .with_config(&[0, 80, 0, 25]); // cols, rows (big-endian u16)
    let blk = LegacyDeviceSpec::new(ids::BLOCK as u8)
        .with_queue(0, ring(2), 128)
        .with_host_features(&[0x44, 0, 0, 0]) // SEG_MAX, BLK_SIZE
        .with_config(&2048u64.to_be_bytes()); // capacity in sectors
    let s = with_legacy_page(scenario("legacy-page"), &[console, blk]);
    assert!(
        s.command_line()
            .ends_with("ram-end=0x7c80000 legacy-devices=console:2,blk:1"),
        "{}",
        s.command_line()
    );
    assert!(scenario_dir("legacy-page")
        .join("legacy-page.bin")
        .is_file());
    let o = boot(&s, &elf());
    assert_pass(&o);
    // The page is as expected, but nothing behind it serves the legacy
    // hypercalls: that part did not run, so the check skips, saying what
    // it found.
    let why = match o
        .tap
        .result("legacy.page")
        .and_then(|r| r.directive.as_ref())
    {
        Some(Directive::Skip(why)) => why.as_str(),
        _ => "",
    };
    check(
        &o,
        why.contains("holds console:2,blk:1 (equal to legacy-devices=)")
            && why.contains("legacy hypercalls are not served"),
        &format!("`ok ... - legacy.page # SKIP` with what was found, not {why:?}"),
    );
}

/// The same page held to a list it does not match fails, naming both.
#[test]
fn legacy_page_that_differs_fails() {
    let console = LegacyDeviceSpec::new(ids::CONSOLE as u8)
        .with_queue(0, ring(0), 128)
        .with_queue(0, ring(1), 128);
    let mut s = with_legacy_page(scenario("legacy-page-differs"), &[console]).append("only=legacy");
    // The page holds console:2; the firmware is told blk:1.
    s.legacy_page.as_mut().expect("page").devices = vec![("blk".into(), 1)];
    let o = boot(&s, &elf());
    check(&o, !o.passed(), "FAIL");
    let text = failure_text(&o);
    check(
        &o,
        text.contains("blk:1") && text.contains("console:2"),
        "the failure to name both lists",
    );
}

/// Legacy devices expected where there is no page at all: a failure, as a
/// missing `devices=` device is; and `none` expected, none found: a pass.
#[test]
fn legacy_devices_expected_without_a_page() {
    let o = boot(
        &scenario("legacy-expected-no-page").append("only=legacy legacy-devices=console:2"),
        &elf(),
    );
    check(&o, !o.passed(), "FAIL");
    check(
        &o,
        o.tap.failures().any(|r| r.name == "legacy.page"),
        "`not ok ... - legacy.page`",
    );
    let o = boot(
        &scenario("legacy-none-expected").append("only=legacy legacy-devices=none"),
        &elf(),
    );
    assert_pass(&o);
    check_ran(&o, "legacy.page");
}

#[test]
fn no_legacy_page_skips() {
    let o = boot(&scenario("legacy-none"), &elf());
    assert_pass(&o);
    check(
        &o,
        o.tap.result("legacy.page").is_some_and(|r| r.is_skip()),
        "`ok ... - legacy.page # SKIP ...`",
    );
}
