//! virtio-fs (`vhost-user-fs-ccw`) with the runner's `virtiofsd` on the
//! seeded tree, guest RAM shared: a scratch share (read, written, the
//! writes checked by the runner after the run) and a read-only one. And
//! the proofs that the checks can fail: a tree byte changed on the host
//! after it was laid out (the firmware names path, offset, expected, got
//! and seed), a file written wrong (the runner names it), a wrong tag and
//! a wrong number of request queues expected.
//!
//! Without a `virtiofsd` on the host each test says why and passes
//! without booting (the default scenario leaves the device out).

use crate::common;

use common::{assert_pass, boot, check, check_ran, elf, fails_with, scenario};
use qemu_runner::virtiofs::{virtiofsd, Fault, VirtioFs, VirtioFsScenario};
use qemu_runner::Scenario;

const BUS: &str = "fe.0.0010";
const TAG: &str = "zvtest-fs";

/// The scenario, or None (said why) where the host has no daemon.
fn fs_scenario(name: &str, fs: VirtioFs) -> Option<Scenario> {
    fs_only(name, fs, "fs")
}

/// The same, running only the checks `only` selects.
fn fs_only(name: &str, fs: VirtioFs, only: &str) -> Option<Scenario> {
    if let Err(why) = virtiofsd() {
        eprintln!("{name}: not booted: {why}");
        return None;
    }
    Some(scenario(name).virtio_fs(fs).append(format!("only={only}")))
}

#[test]
fn a_scratch_share_is_read_written_and_stressed() {
    let Some(s) = fs_scenario("virtiofs-scratch", VirtioFs::new(BUS, TAG).scratch(true)) else {
        return;
    };
    let o = boot(&s, &elf());
    assert_pass(&o);
    for c in ["fs.config", "fs.read", "fs.write", "fs.stress"] {
        check_ran(&o, c);
    }
    let console = o.console();
    check(
        &o,
        console.contains("# fs fe.0.0010: tag 'zvtest-fs', num_request_queues 1"),
        "the configuration line",
    );
    check(
        &o,
        console.contains("# fs fe.0.0010 request1 rev 2 split event-idx classic interrupts: ")
            && console.contains("# fs fe.0.0010 request1 rev 2 split adapter interrupts: ")
            && console.contains("# fs fe.0.0010 request1 rev 2 split classic polled: ")
            && console.contains(" requests, "),
        "QueueStats lines for the request queue in each setup",
    );
    check(
        &o,
        o.peers[0]
            .lines
            .iter()
            .any(|l| l.contains("entries as fs.write leaves them")),
        "the peer to have checked fs.write's files",
    );
}

#[test]
fn a_read_only_share_is_only_read() {
    let Some(s) = fs_scenario("virtiofs-read-only", VirtioFs::new(BUS, TAG)) else {
        return;
    };
    let o = boot(&s, &elf());
    assert_pass(&o);
    for c in ["fs.config", "fs.read", "fs.stress"] {
        check_ran(&o, c);
    }
    check(
        &o,
        o.tap.result("fs.write").is_some_and(|r| r.is_skip()),
        "fs.write to SKIP",
    );
    check(
        &o,
        o.console()
            .contains("# fs fe.0.0010: not named in scratch=: only read"),
        "the report to say the share was only read",
    );
}

/// A byte of a file changed on the host after the tree was laid out: the
/// firmware's read names it (and the runner's check of the tree too).
#[test]
fn a_changed_tree_byte_is_named() {
    let fault = Fault::FlipTreeByte {
        path: "dir1/dir2/b.bin",
        offset: 12_345,
    };
    let Some(s) = fs_scenario(
        "virtiofs-changed-byte",
        VirtioFs::new(BUS, TAG).fault(fault),
    ) else {
        return;
    };
    let o = boot(&s.seed(0x77), &elf());
    fails_with(
        &o,
        Some("fs.read"),
        &[
            "READ dir1/dir2/b.bin at 0 of 32768 bytes: offset 12345: expected",
            "(seed 0x77)",
            "the share's seeded tree changed: dir1/dir2/b.bin: offset 12345",
        ],
    );
}

/// Every page of the large file changed on the host: `fs.stress`'s reads
/// name one (path, offset, expected, got, seed), on their own.
#[test]
fn a_changed_large_file_fails_the_stress() {
    let fault = Fault::FlipEveryPage { path: "large.bin" };
    let Some(s) = fs_only(
        "virtiofs-stress-changed",
        VirtioFs::new(BUS, TAG).fault(fault),
        "fs.stress",
    ) else {
        return;
    };
    let o = boot(&s.seed(0x99), &elf());
    fails_with(
        &o,
        Some("fs.stress"),
        &[
            "request queue 1 (rev 2 split event-idx classic interrupts) request ",
            "large.bin offset ",
            "(seed 0x99)",
            "the share's seeded tree changed: large.bin: offset 0:",
        ],
    );
}

/// The firmware writes one byte of its file wrong (test only: its own
/// read-back agrees), and only the runner's check can see it.
#[test]
fn a_wrong_written_byte_is_named_by_the_runner() {
    let Some(s) = fs_scenario(
        "virtiofs-wrong-write",
        VirtioFs::new(BUS, TAG).scratch(true),
    ) else {
        return;
    };
    let o = boot(&s.append("fs-corrupt=4321"), &elf());
    check_ran(&o, "fs.write");
    fails_with(
        &o,
        None,
        &["peer virtiofs fe.0.0010: zvtest-out/fs-0: offset 4321: expected"],
    );
}

/// The device's tag or request queues other than `shares=` says.
#[test]
fn a_wrong_tag_or_queue_count_fails_the_configuration() {
    let Some(mut s) = fs_only("virtiofs-wrong-tag", VirtioFs::new(BUS, TAG), "fs.config") else {
        return;
    };
    s.shares[0].0.tag = "other-tag".into();
    let o = boot(&s, &elf());
    fails_with(&o, Some("fs.config"), &["tag", "other-tag", "zvtest-fs"]);

    let mut s = fs_only(
        "virtiofs-wrong-queues",
        VirtioFs::new(BUS, TAG),
        "fs.config",
    )
    .unwrap();
    s.shares[0].0.queues = Some(2);
    let o = boot(&s, &elf());
    fails_with(&o, Some("fs.config"), &["num_request_queues"]);
}
