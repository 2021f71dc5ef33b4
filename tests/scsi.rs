//! virtio-scsi (`scsi.*`): LUNs on scratch images the test makes itself
//! (`zvtest_contract::disk`), checked after QEMU exits; a LUN not named
//! scratch left as it was; and the failures: a flipped byte (read by
//! scsi.commands and under stress), a header for another seed, a LUN that
//! is not there, a wrong size.

use crate::common;

use common::{assert_pass, boot, check, check_ran, elf, failure_text, scenario, scenario_dir};
use qemu_runner::{Run, Scenario};
use std::io::Write;
use std::path::PathBuf;
use zvtest_contract::disk::{fill_image, first_mismatch};

const SEED: u64 = 0x5c51_0011;
const BUS: &str = "fe.0.0006";
const MIB: u64 = 1 << 20;

/// One LUN: its image, where it sits, and how the firmware is told of it.
struct Lun {
    target: u8,
    lun: u16,
    size: u64,
    scratch: bool,
    /// The seed its image was made for.
    seed: u64,
    /// A byte flipped after the image was made.
    flip: Option<u64>,
    /// The size `disks=` claims, where it lies.
    claimed: Option<u64>,
    /// Configured in QEMU (false: only named in `disks=`).
    present: bool,
    /// Logical block size (QEMU's default 512).
    bs: u32,
}

impl Lun {
    fn new(target: u8, lun: u16, scratch: bool) -> Self {
        Lun {
            target,
            lun,
            size: 16 * MIB,
            scratch,
            seed: SEED,
            flip: None,
            claimed: None,
            present: true,
            bs: 512,
        }
    }

    fn id(&self) -> String {
        format!("{BUS}/{}/{}", self.target, self.lun)
    }
}

/// Writes the scratch image of `l` (in 1 MiB chunks) before the run.
fn make_image(dir: &std::path::Path, i: usize, l: &Lun) -> PathBuf {
    let path = dir.join(format!("lun{i}.img"));
    let mut f = std::fs::File::create(&path).expect("image file");
    let mut buf = vec![0u8; MIB as usize];
    for at in (0..l.size).step_by(MIB as usize) {
        let n = (l.size - at).min(MIB) as usize;
        fill_image(l.seed, l.size, at, false, &mut buf[..n]);
        if let Some(flip) = l.flip.filter(|&o| o >= at && o < at + n as u64) {
            buf[(flip - at) as usize] ^= 0x5a;
        }
        f.write_all(&buf[..n]).expect("image write");
    }
    path
}

/// A controller with two request queues holding `luns`, and the firmware
/// told `disks=`, `scratch=` and `seed=`; `only` selects the checks.
/// [`scsi_scenario_wrapping`] without the stress's 66 000-request
/// ring-index wrap (`index-wrap=no`): for the tests about something else.
fn scsi_scenario(name: &str, luns: &[Lun], only: &str) -> (Scenario, Vec<PathBuf>) {
    let (s, images) = scsi_scenario_wrapping(name, luns, only);
    (s.append("index-wrap=no"), images)
}

/// A controller at BUS with two request queues and `luns` (their images
/// made here), the `only` checks, the stress's index wrap kept.
fn scsi_scenario_wrapping(name: &str, luns: &[Lun], only: &str) -> (Scenario, Vec<PathBuf>) {
    let dir = scenario_dir(name);
    let mut args: Vec<String> = vec![
        "-device".into(),
        format!("virtio-scsi-ccw,id=scsi0,devno={BUS},num_queues=2"),
    ];
    let mut images = Vec::new();
    for (i, l) in luns.iter().enumerate() {
        let img = make_image(&dir, i, l);
        if l.present {
            args.extend([
                "-drive".into(),
                format!(
                    "file={},if=none,id=d{i},format=raw,cache=writeback",
                    img.display()
                ),
                "-device".into(),
                format!(
                    "scsi-hd,bus=scsi0.0,drive=d{i},scsi-id={},lun={},logical_block_size={bs},physical_block_size={bs}",
                    l.target,
                    l.lun,
                    bs = l.bs
                ),
            ]);
        }
        images.push(img);
    }
    let disks: Vec<String> = luns
        .iter()
        .map(|l| {
            let bs = if l.bs == 512 {
                String::new()
            } else {
                format!(":bs={}", l.bs)
            };
            format!("{}:{}{bs}", l.id(), l.claimed.unwrap_or(l.size))
        })
        .collect();
    let scratch: Vec<String> = luns.iter().filter(|l| l.scratch).map(Lun::id).collect();
    let mut words = format!("only={only} seed={SEED:#x} disks={}", disks.join(","));
    if !scratch.is_empty() {
        words.push_str(&format!(" scratch={}", scratch.join(",")));
    }
    let s = scenario(name)
        .timeout(std::time::Duration::from_secs(240))
        .extra_args(args)
        .append(words);
    (s, images)
}

/// Each image holds, after the run, what `after_run` says (pattern B in
/// every writable stripe of a scratch LUN, else A throughout).
fn check_images(o: &Run, luns: &[Lun], images: &[PathBuf], after: &[bool]) {
    for ((l, img), &after_run) in luns.iter().zip(images).zip(after) {
        let bytes = std::fs::read(img).expect("image read back");
        let m = first_mismatch(l.seed, l.size, 0, after_run, &bytes);
        check(
            o,
            m.is_none(),
            &format!(
                "{} ({}) to hold pattern {} after the run, not {m:?}",
                l.id(),
                img.display(),
                if after_run {
                    "B in its writable stripes"
                } else {
                    "A"
                }
            ),
        );
    }
}

/// The `# scsi <bus> queue N: ...` lines.
fn queue_lines(o: &Run) -> Vec<&str> {
    let prefix = format!("scsi {BUS} queue ");
    o.tap
        .diagnostics
        .iter()
        .filter(|d| d.starts_with(prefix.as_str()))
        .map(String::as_str)
        .collect()
}

#[test]
fn two_scratch_luns_are_driven_and_left_in_pattern_b() {
    let luns = [Lun::new(0, 0, true), Lun::new(0, 1, true)];
    let (s, images) = scsi_scenario_wrapping("scsi-two-scratch", &luns, "scsi");
    let o = boot(&s, &elf());
    assert_pass(&o);
    for name in ALL {
        check_ran(&o, name);
    }
    let lines = queue_lines(&o);
    // The first request queue's index wrapped (the wrap phase), the
    // second's need not at the default stress.
    check(
        &o,
        lines.len() == 2
            && lines
                .iter()
                .all(|l| l.contains(" requests, ") && l.contains(" rounds"))
            && !lines[0].contains(" 0 index wraps"),
        &format!("a line for each of the 2 request queues, the first wrapped, not {lines:?}"),
    );
    check_images(&o, &luns, &images, &[true, true]);
}

#[test]
fn a_lun_not_named_scratch_keeps_pattern_a() {
    // 4 KiB blocks on the scratch LUN.
    let mut big_blocks = Lun::new(0, 0, true);
    big_blocks.bs = 4096;
    let luns = [big_blocks, Lun::new(1, 2, false)];
    let (s, images) = scsi_scenario("scsi-not-scratch", &luns, "scsi.commands,scsi.stress");
    let o = boot(&s, &elf());
    assert_pass(&o);
    check_ran(&o, "scsi.stress");
    check_images(&o, &luns, &images, &[true, false]);
}

#[test]
fn a_flipped_byte_is_named_with_its_lun_and_offset() {
    let mut bad = Lun::new(0, 1, false);
    bad.flip = Some(0x1007);
    let luns = [Lun::new(0, 0, true), bad];
    let (s, _) = scsi_scenario("scsi-flipped-byte", &luns, "scsi.commands");
    let o = boot(&s, &elf());
    check(&o, !o.passed(), "FAIL");
    let text = failure_text(&o);
    check(
        &o,
        text.contains(&format!("{BUS}/0/1 byte at image offset 0x1007")),
        &format!("a failure naming LUN {BUS}/0/1 and offset 0x1007, not {text:?}"),
    );
}

#[test]
fn a_flipped_byte_under_stress_is_named_with_its_queue_request_and_seed() {
    // 1 MiB: the random reads of the first round cover it many times over.
    let mut bad = Lun::new(0, 1, false);
    bad.size = MIB;
    bad.flip = Some(0x8_1007);
    let luns = [bad];
    let (s, _) = scsi_scenario("scsi-stress-flipped-byte", &luns, "scsi.stress");
    let o = boot(&s, &elf());
    check(&o, !o.passed(), "FAIL");
    let text = failure_text(&o);
    for want in [
        &format!("{BUS} virtio-scsi: queue "),
        " request ",
        &format!("{BUS}/0/1 target 0 LUN 1 "),
        "block 1032 byte 7 (image offset 0x81007): expected ",
        "(pattern A), got ",
        &format!("(replay: seed={SEED:#x} only=scsi.stress)"),
    ] {
        check(
            &o,
            text.contains(want),
            &format!("a failure naming {want:?}, not {text:?}"),
        );
    }
}

#[test]
fn a_header_for_another_seed_is_not_written() {
    let mut other = Lun::new(0, 0, true);
    other.seed = SEED + 1;
    let luns = [other];
    let (s, images) = scsi_scenario("scsi-other-seed", &luns, "scsi.stress");
    let o = boot(&s, &elf());
    check(&o, !o.passed(), "FAIL");
    let text = failure_text(&o);
    check(
        &o,
        text.contains("its header is for seed") && text.contains("not written"),
        &format!("a failure saying the header is another seed's, not {text:?}"),
    );
    // Untouched: still pattern A of its own seed.
    check_images(&o, &luns, &images, &[false]);
}

#[test]
fn a_missing_lun_and_a_wrong_size_fail() {
    let mut ghost = Lun::new(0, 3, false);
    ghost.present = false;
    let luns = [Lun::new(0, 0, false), ghost];
    let (s, _) = scsi_scenario("scsi-missing-lun", &luns, "scsi.commands,scsi.control");
    let o = boot(&s, &elf());
    check(&o, !o.passed(), "FAIL");
    for name in ["scsi.commands", "scsi.control"] {
        check(
            &o,
            o.tap.result(name).is_some_and(|r| !r.ok),
            &format!("{name} to fail"),
        );
    }
    let text = failure_text(&o);
    check(
        &o,
        text.contains(&format!("{BUS}/0/3")),
        &format!("failures naming {BUS}/0/3, not {text:?}"),
    );

    let mut small = Lun::new(0, 0, false);
    small.claimed = Some(8 * MIB);
    let (s, _) = scsi_scenario("scsi-wrong-size", &[small], "scsi.errors");
    let o = boot(&s, &elf());
    check(&o, !o.passed(), "FAIL");
    let text = failure_text(&o);
    check(
        &o,
        text.contains("one past the end"),
        &format!("a failure on the read past the claimed end, not {text:?}"),
    );
}

use zvtest_contract::checks::markers::SCSI_HOTPLUG_READY;

const ALL: [&str; 4] = [
    "scsi.commands",
    "scsi.errors",
    "scsi.control",
    "scsi.stress",
];

#[test]
fn no_controller_or_no_lun_skips() {
    let s = scenario("scsi-none").append("only=scsi");
    let o = boot(&s, &elf());
    assert_pass(&o);
    for name in ALL {
        check(
            &o,
            o.tap.result(name).is_some_and(|r| r.is_skip()),
            &format!("{name} skipped"),
        );
    }
    // A controller but no LUN in disks=: its configuration is printed,
    // nothing is compared, and the checks that need a LUN skip.
    let s = scenario("scsi-no-luns")
        .device(format!("virtio-scsi-ccw,devno={BUS}"))
        .append("only=scsi");
    let o = boot(&s, &elf());
    assert_pass(&o);
    check_ran(&o, "scsi.commands");
    for name in &ALL[1..] {
        check(
            &o,
            o.tap.result(name).is_some_and(|r| r.is_skip()),
            &format!("{name} skipped"),
        );
    }
}

/// A controller with LUN 0 whose host plugs LUN 5 on target 0 and then
/// unplugs it on the firmware's ready lines; `expect` is the LUN the
/// firmware is told of.
fn hotplug_scenario(name: &str, expect: &str) -> Scenario {
    let luns = [Lun::new(0, 0, false)];
    let (s, _) = scsi_scenario(name, &luns, "scsi.hotplug");
    let dir = scenario_dir(name);
    let spare = make_image(&dir, 9, &Lun::new(0, 5, false));
    s.extra_args([
        "-drive".to_string(),
        format!("file={},if=none,id=hp,format=raw", spare.display()),
    ])
    .append(format!("scsi-hotplug={expect}"))
    .qmp_on_line(
        SCSI_HOTPLUG_READY[0],
        r#"{"execute": "device_add", "arguments": {"driver": "scsi-hd", "bus": "scsi0.0", "drive": "hp", "scsi-id": 0, "lun": 5, "id": "hplun"}}"#,
    )
    .qmp_on_line(
        SCSI_HOTPLUG_READY[1],
        r#"{"execute": "device_del", "arguments": {"id": "hplun"}}"#,
    )
}

#[test]
fn a_hot_plugged_lun_is_announced_and_removed() {
    let s = hotplug_scenario("scsi-hotplug", &format!("{BUS}/0/5"));
    let o = boot(&s, &elf());
    assert_pass(&o);
    check_ran(&o, "scsi.hotplug");
    check(
        &o,
        o.qmp_commands_done,
        "device_add and device_del sent and accepted",
    );

    // Told of another LUN than the host plugs: the event names the wrong one.
    let s = hotplug_scenario("scsi-hotplug-wrong-lun", &format!("{BUS}/0/6"));
    let o = boot(&s, &elf());
    check(&o, !o.passed(), "FAIL");
    let text = failure_text(&o);
    check(
        &o,
        text.contains("for fe.0.0006/0/6") && text.contains("Some((0, 5))"),
        &format!("a failure naming the LUN expected and the one the event named, not {text:?}"),
    );
}

/// QEMU's blkdebug fails every read covering two chosen sectors of a LUN
/// with EIO: scsi-hd answers those READs CHECK CONDITION with the sense
/// QEMU gives an I/O error (scsi_sense_from_errno: ABORTED COMMAND, ASC/ASCQ
/// 00/06, default rerror=report). scsi.stress reads the LUN whole first,
/// names each failed READ (queue, LUN, tag = request number, LBA, sense,
/// seed), checks every other answer and runs to its end; the other checks
/// pass and the image passes the host's verification.
#[test]
fn eio_on_chosen_sectors_fails_exactly_the_reads_covering_them() {
    failed_reads(
        "scsi-eio",
        qemu_runner::disks::EIO,
        "sense key b ASC/ASCQ 00/06",
    );
}

/// The same with ENODATA (61), which QEMU's scsi_sense_from_errno turns
/// into MEDIUM ERROR, UNRECOVERED READ ERROR (03/11/00): what a disk with
/// a bad sector answers.
#[test]
fn enodata_on_chosen_sectors_is_a_medium_error() {
    failed_reads("scsi-enodata", 61, "sense key 3 ASC/ASCQ 11/00");
}

/// Reads of two chosen sectors fail with `errno`: each failed READ named
/// with `sense`, the rest of the run as usual.
fn failed_reads(name: &str, errno: u32, sense: &str) {
    use qemu_runner::disks::Disk;
    use zvtest_contract::disk::{writable_stripes, STRIPE};
    let size = 16 * MIB;
    let probe = scenario(name).scratch_scsi(BUS, 0, 0, Disk::new(size));
    let seed = probe.disk_seed();
    let per_stripe = STRIPE / 512;
    // scsi.commands reads the first and last 64 KiB and writes the first
    // two writable stripes: one sector in a later writable stripe, one in
    // a stripe nobody writes.
    let stripes: Vec<u64> = writable_stripes(seed, size).collect();
    let plain = (1..size / STRIPE - 1)
        .find(|s| !stripes.contains(s))
        .expect("a stripe that is not writable");
    let bad = [stripes[2] * per_stripe + 31, plain * per_stripe + 100];
    let s = scenario(name)
        .scratch_scsi(BUS, 0, 0, Disk::new(size).read_errors(&bad).errno(errno))
        .append("only=scsi index-wrap=no")
        .qmp_events(true);
    let o = boot(&s, &elf());
    common::check_no_stray_writes(&o);
    // The LUN is read whole first, 64 KiB (128 blocks) a READ: read-all
    // request k (its tag) covers LBA 128k..128k+127.
    let text = failure_text(&o);
    for &b in &bad {
        let k = b / per_stripe;
        let tag = format!("read-all: {BUS}/0/0 target 0 LUN 0 tag {k} opcode 0x");
        let what = format!(
            "of 128 blocks at LBA {}: status 0x2 (CHECK CONDITION), {sense}, expected GOOD",
            k * per_stripe
        );
        check(
            &o,
            text.contains(&tag) && text.contains(&what),
            &format!("the failure to name {tag:?} ... {what:?}:\n{text}"),
        );
    }
    common::fails_with(
        &o,
        "scsi.stress",
        &[
            &format!("{BUS} virtio-scsi: "),
            "commands answered CHECK CONDITION for a failed I/O (every other answer checked, the stress run to its end)",
            &format!("(replay: seed={seed:#x} only=scsi.stress)"),
        ],
    );
    // Every command named is a READ that covers a failing sector.
    let mut named = 0;
    for part in text.split(" blocks at LBA ").skip(1) {
        let lba: u64 = part.split(':').next().unwrap().parse().unwrap();
        let before = text.split(" blocks at LBA ").nth(named).unwrap();
        let blocks: u64 = before.rsplit(' ').next().unwrap().parse().unwrap();
        check(
            &o,
            bad.iter().any(|s| (lba..lba + blocks).contains(s)),
            &format!("LBA {lba}+{blocks} to cover one of {bad:?}"),
        );
        named += 1;
    }
    check(&o, named >= bad.len(), "each failing READ named");
    check(
        &o,
        !text.contains("WRITE ("),
        "no WRITE to fail: only reads carry errors",
    );
    let events: Vec<_> = o.events("BLOCK_IO_ERROR").collect();
    check(&o, !events.is_empty(), "BLOCK_IO_ERROR events");
    for e in &events {
        check(
            &o,
            e.data["operation"] == "read" && e.data["action"] == "report",
            &format!("a read error reported, not {}", e.data),
        );
    }
    check_ran(&o, "scsi.commands");
    check(
        &o,
        o.console().contains(&format!("# scsi {BUS} q2 ")) && o.console().contains(" fill: "),
        "the stress's last phase (fill) reported",
    );
    let failed: Vec<&str> = o.tap.failures().map(|r| r.name.as_str()).collect();
    check(
        &o,
        failed == ["scsi.stress"],
        &format!("scsi.stress the only check failing, not {failed:?}"),
    );
    check(
        &o,
        o.disks.iter().all(|d| d.reason.is_none()),
        "the image verified by the host",
    );
}

/// blkdebug fails every write covering a chosen sector of a LUN's
/// writable stripe with EIO: those WRITEs, and only they, answer CHECK
/// CONDITION with ABORTED COMMAND 00/06; scsi.stress names them, holds no
/// later read of the blocks they left unknown to a pattern, and runs to
/// its end; the host finds the sector as it was made (pattern A).
#[test]
fn eio_on_writes_of_a_chosen_sector_fails_exactly_those_writes() {
    use qemu_runner::disks::Disk;
    use zvtest_contract::disk::{writable_stripes, STRIPE};
    let size = 16 * MIB;
    let name = "scsi-eio-write";
    let probe = scenario(name).scratch_scsi(BUS, 0, 0, Disk::new(size));
    let seed = probe.disk_seed();
    // Not the first two writable stripes: scsi.commands writes those.
    let stripes: Vec<u64> = writable_stripes(seed, size).collect();
    let bad = stripes[2] * (STRIPE / 512) + 7;
    let s = scenario(name)
        .scratch_scsi(BUS, 0, 0, Disk::new(size).write_errors(&[bad]))
        .append("only=scsi index-wrap=no")
        .qmp_events(true);
    let o = boot(&s, &elf());
    common::check_no_stray_writes(&o);
    common::fails_with(
        &o,
        "scsi.stress",
        &[
            "commands answered CHECK CONDITION for a failed I/O (every other answer checked, the stress run to its end)",
            ": status 0x2 (CHECK CONDITION), sense key b ASC/ASCQ 00/06, expected GOOD",
            &format!("(replay: seed={seed:#x} only=scsi.stress)"),
        ],
    );
    let text = failure_text(&o);
    let mut named = 0;
    for (i, part) in text.split(" blocks at LBA ").enumerate().skip(1) {
        let lba: u64 = part.split(':').next().unwrap().parse().unwrap();
        let before = text.split(" blocks at LBA ").nth(i - 1).unwrap();
        let blocks: u64 = before.rsplit(' ').next().unwrap().parse().unwrap();
        check(
            &o,
            before.contains(" WRITE (") && (lba..lba + blocks).contains(&bad),
            &format!("a WRITE of LBA {lba}+{blocks} to cover sector {bad}"),
        );
        named += 1;
    }
    check(&o, named >= 1, "a failing WRITE named");
    check(
        &o,
        !text.contains(" READ (") && !text.contains("differ"),
        "no READ failed, no data mismatch (the failed writes' blocks are unknown, not wrong)",
    );
    let events: Vec<_> = o.events("BLOCK_IO_ERROR").collect();
    check(&o, !events.is_empty(), "BLOCK_IO_ERROR events");
    for e in &events {
        check(
            &o,
            e.data["operation"] == "write" && e.data["action"] == "report",
            &format!(
                "a write error reported (the VM not stopped), not {}",
                e.data
            ),
        );
    }
    check_ran(&o, "scsi.commands");
    check(
        &o,
        o.console().contains(" fill: "),
        "the stress's fill reported",
    );
    let failed: Vec<&str> = o.tap.failures().map(|r| r.name.as_str()).collect();
    check(
        &o,
        failed == ["scsi.stress"],
        &format!("scsi.stress the only check failing, not {failed:?}"),
    );
    check(
        &o,
        o.disks.iter().all(|d| d.reason.is_none()),
        "the image verified by the host, the sector still pattern A",
    );
}
