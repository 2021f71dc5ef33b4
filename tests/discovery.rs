//! Device discovery: the channel-subsystem inventory against `devices=`,
//! hot plug and unplug over QMP (`css.hotplug`), and the legacy
//! s390-virtio device page (`legacy.page`).

mod common;

use common::{
    assert_pass, boot, check, check_summary, elf, failure_text, scenario, scenario_dir,
    with_legacy_page,
};
use qemu_runner::{Outcome, Scenario, STDERR_PREFIX};
use std::io::Write;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use zvtest_firmware::virtio::ids;
use zvtest_firmware::virtio::legacy_page::LegacyDeviceSpec;

/// What a candidate model needs from the host besides QEMU.
#[derive(Clone, Copy)]
enum Needs {
    /// Nothing: its backend (if any) is one [`qemu_runner::scenario::model_setup`]
    /// gives it without privileges or files. Left out only if this QEMU
    /// does not offer it (e.g. its loadable module is not installed).
    Nothing,
    /// A host resource QEMU opens itself when it creates the device; a
    /// short boot with only this device decides. The text says what.
    HostResource(&'static str),
    /// Cannot run here at all; the text says why.
    Never(&'static str),
}

/// Every virtio-ccw model of QEMU 7.2 (10.0 adds virtio-mem-ccw, which
/// needs a memory backend and a memory device slot: not a candidate here),
/// with the name the firmware gives it.
const CANDIDATES: &[(&str, &str, Needs)] = &[
    ("virtio-blk-ccw", "blk", Needs::Nothing), // null-co block node
    ("virtio-net-ccw", "net", Needs::Nothing), // user-mode (slirp) netdev, restrict=on
    ("virtio-scsi-ccw", "scsi", Needs::Nothing),
    ("virtio-serial-ccw", "console", Needs::Nothing),
    ("virtio-rng-ccw", "rng", Needs::Nothing),
    ("virtio-balloon-ccw", "balloon", Needs::Nothing),
    ("virtio-9p-ccw", "9p", Needs::Nothing), // the synth fsdev: no host directory
    ("virtio-gpu-ccw", "gpu", Needs::Nothing), // a loadable module in Debian's QEMU
    ("virtio-keyboard-ccw", "input", Needs::Nothing),
    ("virtio-mouse-ccw", "input", Needs::Nothing),
    ("virtio-tablet-ccw", "input", Needs::Nothing),
    ("virtio-crypto-ccw", "crypto", Needs::Nothing), // cryptodev-backend-builtin
    (
        "vhost-vsock-ccw",
        "vsock",
        Needs::HostResource("/dev/vhost-vsock (kernel module vhost_vsock), openable by this user"),
    ),
    (
        "vhost-scsi-ccw",
        "scsi",
        Needs::HostResource(
            "/dev/vhost-scsi and a LIO vhost target configured for its wwpn (root to set up)",
        ),
    ),
    (
        "vhost-user-fs-ccw",
        "fs",
        Needs::Never(
            "needs a vhost-user daemon (virtiofsd; QEMU 7.2's runs as root) on a chardev \
             socket and guest RAM on a shared memory backend; neither is set up by the tests",
        ),
    ),
];

/// Models every s390x QEMU has built in (hw/s390x, no modules, no host
/// resources): leaving one of these out means QEMU is broken, not the host.
const BUILT_IN: &[&str] = &[
    "virtio-blk-ccw",
    "virtio-net-ccw",
    "virtio-scsi-ccw",
    "virtio-serial-ccw",
    "virtio-rng-ccw",
    "virtio-balloon-ccw",
];

struct Probe {
    usable: Vec<(&'static str, &'static str)>,
    left_out: Vec<(&'static str, String)>,
}

/// The first line QEMU printed on stderr, from a console log.
fn first_stderr_line(o: &Outcome) -> String {
    o.console()
        .lines()
        .find_map(|l| l.strip_prefix(STDERR_PREFIX))
        .unwrap_or("(nothing on stderr)")
        .to_string()
}

/// Does this QEMU offer `model`? (`-device MODEL,help` fails for a model it
/// does not know, or whose module cannot be loaded.)
fn offered(model: &str) -> Result<(), String> {
    let qemu = Scenario::new("probe").qemu;
    let out = Command::new(&qemu)
        .args(["-machine", "s390-ccw-virtio", "-nodefaults", "-device"])
        .arg(format!("{model},help"))
        .output()
        .map_err(|e| format!("cannot run {}: {e}", qemu.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "this QEMU does not offer it: {}",
            err.lines().next().unwrap_or("(no message)")
        ))
    }
}

/// Decides, once per test binary, which candidates to boot with, and
/// prints (past the test harness's capture) which were left out and why.
fn probe() -> &'static Probe {
    static PROBE: OnceLock<Probe> = OnceLock::new();
    PROBE.get_or_init(|| {
        let mut p = Probe {
            usable: Vec::new(),
            left_out: Vec::new(),
        };
        for &(model, name, needs) in CANDIDATES {
            if let Needs::Never(why) = needs {
                p.left_out.push((model, why.to_string()));
                continue;
            }
            if let Err(why) = offered(model) {
                p.left_out.push((model, why));
                continue;
            }
            if let Needs::HostResource(what) = needs {
                // QEMU opens the host side when it creates the device:
                // a boot with only this device shows whether it can.
                let s = scenario(&format!("probe-{model}"))
                    .virtio_ccw(model, "fe.0.0001", name)
                    .append("only=boot.vectors")
                    .timeout(Duration::from_secs(15));
                let o = boot(&s, &elf());
                if o.tap.version.is_none() {
                    p.left_out.push((
                        model,
                        format!("needs {what}; QEMU said: {}", first_stderr_line(&o)),
                    ));
                    continue;
                }
            }
            p.usable.push((model, name));
        }
        // Straight to stderr: libtest captures print!/eprint! of passing tests.
        let mut err = std::io::stderr().lock();
        for (model, why) in &p.left_out {
            let _ = writeln!(err, "discovery: left out {model}: {why}");
        }
        p
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
    let mut s = scenario("every-model");
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
        .timeout(Duration::from_secs(20));
    let o = boot(&s, &elf());
    assert_pass(&o);
    check(&o, o.hotplug_done, "every QMP step performed");
    check(
        &o,
        o.tap
            .result("css.hotplug")
            .is_some_and(|r| r.ok && !r.is_skip()),
        "`ok ... - css.hotplug` (not skipped)",
    );
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
    check(
        &o,
        o.tap
            .result("legacy.page")
            .is_some_and(|r| r.ok && !r.is_skip()),
        "`ok ... - legacy.page` (not skipped)",
    );
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
