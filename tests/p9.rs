//! virtio-9p on a seeded tree the runner lays out: the mount tag, reads
//! of every entry (types, modes, sizes, content at seeded offsets,
//! listings, the symlink, errors as QEMU gives them), writes on a scratch
//! share checked by the runner after the run, reads with many tags in
//! flight on split and packed rings; a read-only share's write check
//! skipped. And the proofs that the checks can fail: a byte of a tree
//! file changed after the layout, a file removed, a written byte the
//! runner finds wrong, a wrong tag, a tree of another seed (the stress's
//! data check), a share that refuses writes.

use crate::common;

use common::{assert_pass, boot, check, check_ran, elf, fails_with, scenario};
use qemu_runner::p9::{Fault, P9Scenario, Share9p};
use qemu_runner::Scenario;

const BUS: &str = "fe.0.000a";

fn p9(name: &str, share: Share9p) -> Scenario {
    scenario(name).share_9p(share).append("only=p9")
}

#[test]
fn a_scratch_share_passes() {
    let o = boot(
        &p9("p9-scratch", Share9p::new(BUS, "zvtest").scratch()),
        &elf(),
    );
    assert_pass(&o);
    for c in ["p9.config", "p9.read", "p9.write", "p9.stress"] {
        check_ran(&o, c);
    }
    let log = o.console();
    check(
        &o,
        log.contains("# p9 fe.0.000a rev 2: mount tag 'zvtest'"),
        "the tag line",
    );
    check(
        &o,
        log.contains("# p9 fe.0.000a requestq rev 2 split") && log.contains(" requests, "),
        "a QueueStats line for the split ring",
    );
    let peer = &o.peers[0];
    check(
        &o,
        peer.lines
            .iter()
            .any(|l| l.contains("3 files written by p9.write verified")),
        "the runner to verify the written files",
    );
}

#[test]
fn a_read_only_share_and_a_packed_ring_pass() {
    let o = boot(
        &p9("p9-read-only", Share9p::new(BUS, "org.zvtest.ro").packed()),
        &elf(),
    );
    assert_pass(&o);
    for c in ["p9.config", "p9.read", "p9.stress"] {
        check_ran(&o, c);
    }
    let w = o.tap.result("p9.write");
    check(
        &o,
        w.is_some_and(|r| r.is_skip() && r.describe().contains("scratch=")),
        "p9.write skipped, saying the share is not scratch",
    );
    check(
        &o,
        o.console().contains("# p9 fe.0.000a requestq rev 2 packed"),
        "a QueueStats line for the packed ring",
    );
    check(
        &o,
        o.peers[0]
            .lines
            .iter()
            .any(|l| l.contains("nothing written")),
        "nothing written on a read-only share",
    );
}

#[test]
fn a_byte_changed_after_the_layout_fails_the_read() {
    let share = Share9p::new(BUS, "zvtest").fault(Fault::Flip {
        path: "dir1/dir2/b.bin".into(),
        offset: 0,
    });
    let o = boot(&p9("p9-flipped", share).append("skip=p9.stress"), &elf());
    fails_with(
        &o,
        Some("p9.read"),
        &["dir1/dir2/b.bin: offset 0: expected", "(seed 0x"],
    );
}

#[test]
fn a_missing_file_fails_the_read() {
    let share = Share9p::new(BUS, "zvtest").fault(Fault::Remove {
        path: "hello.txt".into(),
    });
    let o = boot(&p9("p9-missing", share).append("skip=p9.stress"), &elf());
    fails_with(
        &o,
        Some("p9.read"),
        &["hello.txt: Twalk: Rlerror 2 (ENOENT)"],
    );
}

#[test]
fn a_wrong_written_byte_fails_on_the_host() {
    let o = boot(
        &p9("p9-corrupt", Share9p::new(BUS, "zvtest").scratch())
            .append("p9-corrupt=0@4321 skip=p9.stress"),
        &elf(),
    );
    check(
        &o,
        o.tap.failures().next().is_none(),
        "every firmware check to pass (it reads back what it wrote)",
    );
    fails_with(&o, None, &["zvtest-out/9p-0: offset 4321: expected"]);
}

#[test]
fn a_wrong_tag_fails_the_config() {
    let mut s = scenario("p9-wrong-tag")
        .share_9p(Share9p::new(BUS, "zvtest"))
        .append("only=p9.config");
    // The device says another tag than shares= does.
    let dev = s.ccw_devices.last_mut().expect("the 9p device");
    for (k, v) in &mut dev.properties {
        if k == "mount_tag" {
            *v = "zvtest.other".into();
        }
    }
    let o = boot(&s, &elf());
    fails_with(&o, Some("p9.config"), &["mount tag", "zvtest.other"]);
}

#[test]
fn another_seed_fails_the_stress() {
    let share = Share9p::new(BUS, "zvtest").fault(Fault::Reseed(1));
    let o = boot(
        &scenario("p9-reseeded")
            .share_9p(share)
            .append("only=p9.stress"),
        &elf(),
    );
    fails_with(
        &o,
        Some("p9.stress"),
        &["Tread of", ": expected 0x", "(seed 0x"],
    );
}

#[test]
fn a_share_refusing_writes_fails_the_write() {
    let share = Share9p::new(BUS, "zvtest").scratch().fault(Fault::ReadOnly);
    let o = boot(
        &scenario("p9-refusing")
            .share_9p(share)
            .append("only=p9.write"),
        &elf(),
    );
    fails_with(
        &o,
        Some("p9.write"),
        &["Tmkdir zvtest-out: Rlerror 30 (EROFS)"],
    );
}
