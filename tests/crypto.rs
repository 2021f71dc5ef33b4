//! virtio-crypto on QEMU's builtin crypto back-end: the configuration,
//! the NIST SP 800-38A vectors, the error codes and seeded AES-128-CBC
//! traffic on split and packed rings; a wrong queue count on the command
//! line and one expected byte flipped (test only) must each fail, naming
//! the field, or the request, offset, expected and got byte and the seed.
//! QEMU has announced the device's deprecation: a QEMU without it skips
//! these scenarios, saying so.

use crate::common;

use common::{assert_pass, boot, check, check_ran, elf, scenario};
use qemu_runner::Scenario;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BUS: &str = "fe.0.0009";
const MODEL: &str = "virtio-crypto-ccw";
const CHECKS: [&str; 4] = [
    "crypto.config",
    "crypto.kat",
    "crypto.errors",
    "crypto.stress",
];

/// A crypto device on the builtin back-end (qemu-runner's devices.rs),
/// `crypto=` with `attrs`; None (with the reason printed) where this QEMU
/// lacks the model.
fn crypto(name: &str, packed: bool, attrs: &str) -> Option<Scenario> {
    let mut s = scenario(name).virtio_ccw(MODEL, BUS, "crypto");
    if let Err(why) = qemu_runner::defaults::offered(&s.qemu, s.data_dir.as_deref(), MODEL) {
        eprintln!("SKIP {name}: {MODEL}: {why}");
        return None;
    }
    if packed {
        let d = s.ccw_devices.last_mut().expect("just added");
        d.properties.push(("packed".into(), "on".into()));
    }
    Some(s.append(format!("only=crypto crypto={BUS}{attrs}")))
}

#[track_caller]
fn all_crypto_checks_ran(o: &qemu_runner::Run) {
    assert_pass(o);
    for c in CHECKS {
        check_ran(o, c);
    }
    check(
        o,
        o.console()
            .contains(&format!("# crypto {BUS} config: status 0x1 ")),
        "the configuration line, HW_READY",
    );
}

#[test]
fn one_data_queue_on_a_split_ring() {
    let Some(s) = crypto("crypto-split", false, "") else {
        return;
    };
    let o = boot(&s, &elf());
    all_crypto_checks_ran(&o);
    let c = o.console();
    for completion in ["interrupts", "polled"] {
        check(
            &o,
            c.contains(&format!(
                "# crypto {BUS} dq0 rev 2 split classic {completion}: "
            )),
            &format!("a QueueStats line for dq0, split, {completion}"),
        );
    }
    check(&o, !c.contains(" packed "), "no packed round");
}

#[test]
fn packed_and_split_rings() {
    let Some(s) = crypto("crypto-packed", true, "") else {
        return;
    };
    let o = boot(&s, &elf());
    all_crypto_checks_ran(&o);
    for ring in ["split", "packed"] {
        check(
            &o,
            o.console().contains(&format!(
                "# crypto {BUS} dq0 rev 2 {ring} classic interrupts: "
            )),
            &format!("a QueueStats line for dq0 on the {ring} ring"),
        );
    }
}

/// Several data queues would need `queues=N` on the back-end; QEMU's
/// builtin back-end takes exactly one (backends/cryptodev-builtin.c), on
/// every version here. Should one take more, this fails: then the
/// several-queue scenario belongs here.
#[test]
fn several_queues_are_refused_by_the_builtin_back_end() {
    let s = scenario("crypto-queues");
    if let Err(why) = qemu_runner::defaults::offered(&s.qemu, s.data_dir.as_deref(), MODEL) {
        eprintln!("SKIP crypto-queues: {MODEL}: {why}");
        return;
    }
    let mut cmd = Command::new(&s.qemu);
    if let Some(dir) = &s.data_dir {
        cmd.arg("-L").arg(dir);
    }
    cmd.args([
        "-machine",
        "s390-ccw-virtio",
        "-nodefaults",
        "-nographic",
        "-no-reboot",
        "-object",
        "cryptodev-backend-builtin,id=c2,queues=2",
        "-device",
        &format!("{MODEL},devno={BUS},cryptodev=c2"),
        "-kernel",
    ])
    .arg(elf())
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("QEMU starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("QEMU's output");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("one queue"),
        "QEMU should refuse queues=2 on cryptodev-backend-builtin; status {:?}, stderr:\n{err}",
        out.status
    );
    eprintln!("SKIP several data queues: the builtin back-end refuses queues=2 ({err})");
}

#[test]
fn a_wrong_queue_count_names_the_field() {
    let Some(s) = crypto("crypto-wrong-queues", false, ":queues=2") else {
        return;
    };
    let o = boot(&s, &elf());
    check(&o, !o.passed(), "a failing verdict");
    let r = o.tap.result("crypto.config");
    check(&o, r.is_some_and(|r| !r.ok), "`not ok ... - crypto.config`");
    let y = r.and_then(|r| r.yaml.as_ref());
    check(
        &o,
        y.and_then(|y| y.get("message"))
            .is_some_and(|m| m.contains("config field max_dataqueues")),
        "the message naming max_dataqueues",
    );
    check(
        &o,
        y.and_then(|y| y.get("expected")) == Some("0x2")
            && y.and_then(|y| y.get("got")) == Some("0x1"),
        "expected 0x2, got 0x1",
    );
    for c in ["crypto.kat", "crypto.errors", "crypto.stress"] {
        check_ran(&o, c);
    }
}

#[test]
fn a_flipped_expected_byte_names_request_offset_and_seed() {
    let Some(s) = crypto("crypto-corrupt", false, ":corrupt=5@3") else {
        return;
    };
    let o = boot(&s.seed(0x5eed), &elf());
    check(&o, !o.passed(), "a failing verdict");
    let r = o.tap.result("crypto.stress");
    check(&o, r.is_some_and(|r| !r.ok), "`not ok ... - crypto.stress`");
    let y = r.and_then(|r| r.yaml.as_ref());
    let got = y.and_then(|y| y.get("got")).unwrap_or("");
    check(
        &o,
        got.contains("request 5:") && got.contains("destination offset 3: expected 0x"),
        "the request, the offset and the expected byte",
    );
    check(&o, got.contains(", got 0x"), "the byte the device wrote");
    check(
        &o,
        y.and_then(|y| y.get("message"))
            .is_some_and(|m| m.contains("seed=0x5eed")),
        "the seed to replay it",
    );
    for c in ["crypto.config", "crypto.kat", "crypto.errors"] {
        check_ran(&o, c);
    }
}

#[test]
fn a_flipped_published_byte_fails_the_known_answer_test() {
    let Some(s) = crypto("crypto-corrupt-kat", false, ":corrupt-kat=37") else {
        return;
    };
    let o = boot(&s, &elf());
    check(&o, !o.passed(), "a failing verdict");
    let r = o.tap.result("crypto.kat");
    check(&o, r.is_some_and(|r| !r.ok), "`not ok ... - crypto.kat`");
    let got = r
        .and_then(|r| r.yaml.as_ref())
        .and_then(|y| y.get("got"))
        .unwrap_or("");
    // Byte 37 of F.2.1's ciphertext is 0xc1; flipped, 0x3e is expected.
    check(
        &o,
        got.contains("dq0 encrypt F.2.1 (4 blocks): offset 37: expected 0x3e, got 0xc1"),
        "the queue, vector, offset, expected and got byte",
    );
    for c in ["crypto.config", "crypto.errors", "crypto.stress"] {
        check_ran(&o, c);
    }
}

/// The configuration differs between QEMU's eras (AKCIPHER always before
/// 8.0, `max_size` by era): claiming the other era's version fails
/// `crypto.config`, naming the field.
#[test]
fn another_qemu_versions_configuration_names_the_field() {
    let Some(s) = crypto("crypto-wrong-version", false, "") else {
        return;
    };
    let real = qemu_runner::detect_qemu_version(&s.qemu).expect("QEMU's version");
    // 7.2 offers AKCIPHER and max_size LONG_MAX - 24, which no later QEMU has.
    let (claim, field) = if real >= qemu_runner::QemuVersion::new(8, 0) {
        ("7.2", "config field crypto_services")
    } else {
        ("10.0", "config field max_size")
    };
    let o = boot(&s.claim_qemu_version(claim), &elf());
    check(&o, !o.passed(), "a failing verdict");
    let r = o.tap.result("crypto.config");
    check(&o, r.is_some_and(|r| !r.ok), "`not ok ... - crypto.config`");
    let message = r
        .and_then(|r| r.yaml.as_ref())
        .and_then(|y| y.get("message"))
        .unwrap_or("");
    // A 10.0 or 11.1 build that does RSA offers AKCIPHER; then max_size
    // differs from 7.2's.
    check(
        &o,
        message.contains(field) || message.contains("config field max_size"),
        &format!("the message naming {field}"),
    );
    for c in ["crypto.kat", "crypto.errors", "crypto.stress"] {
        check_ran(&o, c);
    }
}
