//! virtio-blk on scratch images the runner makes and verifies after QEMU
//! exits: the default setup, several queues, a read-only drive, 4 KiB
//! blocks, the packed ring, a legacy-only device, a disk not named
//! scratch (left as it was), and bytes flipped before boot and after the
//! run (both must fail, naming the offset).

use crate::common;

use common::{assert_pass, boot, check, check_ran, elf, scenario};
use qemu_runner::disks::Disk;
use qemu_runner::Scenario;
use std::os::unix::fs::FileExt;
use zvtest_contract::disk::DiskId;

const BUS: &str = "fe.0.0001";
const MIB: u64 = 1 << 20;

/// A scratch disk at BUS and only the blk checks, without the stress's
/// 66 000-request ring-index wrap (`index-wrap=no`, a second of QEMU's
/// CPU): for the tests about something else.
fn blk(name: &str, disk: Disk) -> Scenario {
    blk_wrapping(name, disk).append("index-wrap=no")
}

/// [`blk`] with the index wrap: the default disk, whose ring index must
/// wrap, and faults that must land while the stress still runs.
fn blk_wrapping(name: &str, disk: Disk) -> Scenario {
    scenario(name).scratch_blk(BUS, disk).append("only=blk")
}

#[track_caller]
fn all_blk_checks_ran(o: &qemu_runner::Run) {
    assert_pass(o);
    for c in ["blk.config", "blk.requests", "blk.stress"] {
        check_ran(o, c);
    }
}

#[test]
fn default_disk_is_read_written_and_verified_by_the_host() {
    let o = boot(
        &blk_wrapping("blk-default", Disk::new(16 * MIB).serial("zv-blk-1")),
        &elf(),
    );
    all_blk_checks_ran(&o);
    let wrap =
        format!("# blk {BUS} q0 rev 2 split event-idx classic interrupts wrap: 66048 requests, ");
    check(
        &o,
        o.console()
            .lines()
            .any(|l| l.starts_with(&wrap) && !l.contains(" 0 index wraps")),
        "queue 0's ring index wrapped in the first round's wrap phase",
    );
    check(
        &o,
        o.console().contains("# zvtest: disk written fe.0.0001"),
        "the firmware's word that every writable stripe holds pattern B",
    );
}

#[test]
fn several_queues_each_stressed() {
    let o = boot(
        &blk(
            "blk-multiqueue",
            Disk::new(8 * MIB).queues(4).queue_size(64),
        ),
        &elf(),
    );
    all_blk_checks_ran(&o);
    // index-wrap=no (blk()): said, and no wrap phase.
    check(
        &o,
        o.console()
            .contains("# blk fe.0.0001: index-wrap=no: no ring index wrapped")
            && !o.console().contains(" wrap: "),
        "index-wrap=no said once and no wrap phase run",
    );
    for q in 0..4 {
        check(
            &o,
            o.console().contains(&format!("# blk fe.0.0001 q{q} ")),
            &format!("a report line for queue {q}"),
        );
    }
}

#[test]
fn four_kib_blocks() {
    let o = boot(
        &blk(
            "blk-4k",
            Disk::new(8 * MIB)
                .block_size(4096)
                .physical_block_size(4096),
        ),
        &elf(),
    );
    all_blk_checks_ran(&o);
}

#[test]
fn packed_ring_and_legacy_only() {
    let o = boot(&blk("blk-packed", Disk::new(8 * MIB).packed()), &elf());
    all_blk_checks_ran(&o);
    check(&o, o.console().contains(" packed "), "packed rounds");
    let o = boot(&blk("blk-rev0", Disk::new(8 * MIB).max_revision(0)), &elf());
    all_blk_checks_ran(&o);
}

/// A read-only drive named scratch all the same: the firmware sees the RO
/// feature, its one OUT gets IOERR, stress only reads, and the host finds
/// the image as it was.
#[test]
fn a_read_only_drive_refuses_writes_and_is_only_read() {
    let mut disk = Disk::new(8 * MIB).read_only();
    disk.scratch = true;
    let o = boot(&blk("blk-ro", disk), &elf());
    all_blk_checks_ran(&o);
    check(
        &o,
        o.console().contains("OUT refused (read-only)"),
        "the OUT on the read-only drive answered IOERR",
    );
}

#[test]
fn a_disk_not_named_scratch_is_left_alone() {
    let o = boot(&blk("blk-user", Disk::new(8 * MIB).user()), &elf());
    all_blk_checks_ran(&o);
    check(
        &o,
        o.console()
            .contains("not written: every read checked against pattern A"),
        "the report that the disk was only read",
    );
}

/// Flips the byte at `offset` of `image`.
fn flip(image: &std::path::Path, offset: u64, bit: u8) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= bit;
    f.write_all_at(&b, offset).unwrap();
}

/// Boots the firmware by hand, as the README shows, with `image` as a
/// virtio-blk device at fe.0.0001 (device properties `props`) and the
/// firmware words `append`; returns the console.
fn by_hand(image: &std::path::Path, props: &str, append: &str) -> String {
    let drive = format!(
        "file={},if=none,id=d0,format=raw,cache=writeback",
        image.display()
    );
    by_hand_drive(&drive, props, append)
}

/// [`by_hand`] with the `-drive` value given whole (its id `d0`).
fn by_hand_drive(drive: &str, props: &str, append: &str) -> String {
    let mut args: Vec<std::ffi::OsString> = [
        "-M",
        "s390-ccw-virtio",
        "-nographic",
        "-nodefaults",
        "-serial",
        "stdio",
        "-m",
        "128",
        "-no-reboot",
        "-kernel",
    ]
    .iter()
    .map(Into::into)
    .collect();
    args.push(elf().into());
    args.push("-drive".into());
    args.push(drive.into());
    args.push("-device".into());
    args.push(format!("virtio-blk-ccw,drive=d0,devno=fe.0.0001,{props}").into());
    args.push("-append".into());
    args.push(append.into());
    let out = common::run_qemu_by_hand(&args);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A disk other than the command line says: blk.config names each field
/// that differs, blk.requests the serial GET_ID answered.
#[test]
fn a_disk_other_than_configured_fails_naming_the_fields() {
    let dir = common::scenario_dir("blk-misconfigured");
    let image = dir.join("disk.img");
    qemu_runner::disks::create(&image, 7, 8 * MIB).unwrap();
    let console = by_hand(
        &image,
        "serial=zv-real",
        "only=blk.config,blk.requests seed=7 disks=fe.0.0001:16M:bs=4096:queues=2:serial=zv-told",
    );
    for want in [
        "not ok 1 - blk.config",
        "capacity (bytes): expected 16777216, got 8388608",
        "block size: expected 4096, got 512",
        "request queues: expected 2, got 1",
        "not ok 2 - blk.requests",
        "GET_ID: expected 'zv-told', got 'zv-real'",
    ] {
        assert!(console.contains(want), "{want:?} missing from:\n{console}");
    }
}

/// Booted by hand, as the README shows: `cargo xtask disk`'s image, one
/// byte flipped, the firmware told the seed and that the disk is scratch.
#[test]
fn a_byte_flipped_before_boot_fails_naming_it() {
    let dir = common::scenario_dir("blk-flip-before");
    let image = dir.join("disk.img");
    let seed = 0x1234_5678;
    qemu_runner::disks::create(&image, seed, 8 * MIB).unwrap();
    let offset = 3 * MIB + 1234;
    flip(&image, offset, 0x10);
    let console = by_hand(
        &image,
        "serial=zv-1",
        &format!("only=blk seed={seed:#x} scratch=fe.0.0001 disks=fe.0.0001:8M:serial=zv-1"),
    );
    let sector = offset / 512;
    let named = format!("sector {sector} byte {}", offset % 512);
    assert!(
        console.contains("not ok") && console.contains(&named),
        "the firmware must fail naming {named}:\n{console}"
    );
}

/// The host's verification of a run's image, with one byte flipped after
/// the run: it must fail, naming the offset.
#[test]
fn a_byte_flipped_after_the_run_fails_naming_it() {
    let s =
        blk("blk-flip-after", Disk::new(8 * MIB)).disk_dir(common::scenario_dir("blk-flip-after"));
    let o = boot(&s, &elf());
    all_blk_checks_ran(&o);
    let id: DiskId = BUS.parse().unwrap();
    let image = s.disk_image(&id);
    let offset = 5 * MIB + 77;
    flip(&image, offset, 0x01);
    let dir = image.parent().unwrap();
    let checks = qemu_runner::disks::check_after_run(&s, dir, &o.tap, true);
    let reason = checks
        .iter()
        .find_map(|c| c.reason.clone())
        .expect("the flipped byte must fail the verification");
    assert!(
        reason.contains("disk fe.0.0001") && reason.contains(&offset.to_string()),
        "the reason must name the disk and offset {offset}: {reason}"
    );
}

/// IN_ORDER (`in_order=on`, QEMU 10.0 and later): a round on a split ring
/// with descriptors in ring order. QEMU 7.2's virtio-blk-ccw has no such
/// property: there the test says so and checks nothing.
#[test]
fn in_order_where_qemu_offers_it() {
    let s = blk("blk-in-order", Disk::new(8 * MIB).in_order());
    let mut probe = std::process::Command::new(&s.qemu);
    if let Some(dir) = &s.data_dir {
        probe.arg("-L").arg(dir);
    }
    let help = probe
        .args([
            "-machine",
            "s390-ccw-virtio",
            "-device",
            "virtio-blk-ccw,help",
        ])
        .output()
        .expect("QEMU's device help");
    let text =
        String::from_utf8_lossy(&help.stdout).into_owned() + &String::from_utf8_lossy(&help.stderr);
    if !text.contains("in_order") {
        eprintln!("blk-in-order: this QEMU's virtio-blk-ccw has no in_order property: not run");
        return;
    }
    let o = boot(&s, &elf());
    all_blk_checks_ran(&o);
    check(
        &o,
        o.console()
            .contains(" in-order adapter interrupts random: "),
        "the IN_ORDER round's report",
    );
}

/// QEMU's blkdebug fails every read covering two chosen sectors with EIO:
/// virtio-blk answers exactly those requests IOERR (status 1, virtio spec
/// 5.2.6; QEMU's default rerror=report). blk.stress names each one
/// (queue, request, sectors, status, seed), checks every other answer and
/// runs to its end; the other checks pass and the image, never written
/// by a failed read, passes the host's verification.
#[test]
fn eio_on_chosen_sectors_fails_exactly_the_reads_covering_them() {
    use zvtest_contract::disk::{writable_stripes, STRIPE};
    let size = 8 * MIB;
    let probe = blk("blk-eio", Disk::new(size));
    let seed = probe.disk_seed();
    let per_stripe = STRIPE / 512;
    // One sector in a writable stripe (not the first: blk.requests writes
    // there) and one in a stripe nobody writes; never the header's.
    let stripes: Vec<u64> = writable_stripes(seed, size).collect();
    let plain = (1..size / STRIPE)
        .find(|s| !stripes.contains(s))
        .expect("a stripe that is not writable");
    let bad = [stripes[1] * per_stripe + 77, plain * per_stripe + 5];
    let s = blk("blk-eio", Disk::new(size).read_errors(&bad)).qmp_events(true);
    let o = boot(&s, &elf());
    common::check_no_stray_writes(&o);
    // The whole disk is read first, a stripe (128 sectors) a request: the
    // read-all request k covers sectors 128k..128k+127.
    let mut says: Vec<String> = bad
        .iter()
        .map(|&b| {
            let k = b / per_stripe;
            format!(
                "read-all request {k}: read of sectors {}..{}: status 1 (IOERR), expected 0 (OK)",
                k * per_stripe,
                k * per_stripe + per_stripe - 1
            )
        })
        .collect();
    says.push(format!("(replay: seed={seed:#x} only=blk.stress)"));
    says.push("fe.0.0001: ".into());
    says.push(
        "requests answered IOERR (every other answer checked, the stress run to its end)".into(),
    );
    let says: Vec<&str> = says.iter().map(String::as_str).collect();
    common::fails_with(&o, "blk.stress", &says);
    // Every request named is a read that covers a failing sector.
    let text = common::failure_text(&o);
    let mut named = 0;
    for part in text.split(" of sectors ").skip(1) {
        let range = part.split(':').next().unwrap();
        let (a, b) = range.split_once("..").unwrap();
        let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
        check(
            &o,
            bad.iter().any(|s| (a..=b).contains(s)),
            &format!("sectors {a}..{b} to cover one of {bad:?}"),
        );
        named += 1;
    }
    check(&o, named >= bad.len(), "each failing read named");
    check(
        &o,
        !text.contains("write of sectors"),
        "no write to fail: only reads carry errors",
    );
    // QEMU's side: each failed request reported as a read, the VM not stopped.
    let events: Vec<_> = o.events("BLOCK_IO_ERROR").collect();
    check(&o, !events.is_empty(), "BLOCK_IO_ERROR events");
    for e in &events {
        check(
            &o,
            e.data["operation"] == "read" && e.data["action"] == "report",
            &format!("a read error reported, not {}", e.data),
        );
    }
    // The rest ran: the other checks passed, the stress reached its fill.
    check_ran(&o, "blk.config");
    check_ran(&o, "blk.requests");
    check(
        &o,
        o.console().contains("# blk fe.0.0001 q0 ") && o.console().contains(" fill: "),
        "the stress's last phase (fill) reported",
    );
    let failed: Vec<&str> = o.tap.failures().map(|r| r.name.as_str()).collect();
    check(
        &o,
        failed == ["blk.stress"],
        &format!("blk.stress the only check failing, not {failed:?}"),
    );
    check(
        &o,
        o.disks.iter().all(|d| d.reason.is_none()),
        "the image verified by the host",
    );
}

/// blkdebug fails every write covering a chosen sector of a writable
/// stripe with EIO (QEMU's default werror=enospc reports any other errno):
/// those writes, and only they, answer IOERR; blk.stress names them, does
/// not hold later reads of the blocks they left unknown to a pattern, and
/// runs to its end. Nothing reached the image: the host finds the sector
/// as it was made (pattern A) and the rest as a failed stress may leave it.
#[test]
fn eio_on_writes_of_a_chosen_sector_fails_exactly_those_writes() {
    use zvtest_contract::disk::{writable_stripes, STRIPE};
    let size = 8 * MIB;
    let probe = blk("blk-eio-write", Disk::new(size));
    let seed = probe.disk_seed();
    let per_stripe = STRIPE / 512;
    // Not the first writable stripe: blk.requests writes there.
    let stripes: Vec<u64> = writable_stripes(seed, size).collect();
    let bad = stripes[2] * per_stripe + 40;
    let s = blk("blk-eio-write", Disk::new(size).write_errors(&[bad])).qmp_events(true);
    let o = boot(&s, &elf());
    common::check_no_stray_writes(&o);
    common::fails_with(
        &o,
        "blk.stress",
        &[
            "fe.0.0001: ",
            "requests answered IOERR (every other answer checked, the stress run to its end)",
            ": status 1 (IOERR), expected 0 (OK)",
            &format!("(replay: seed={seed:#x} only=blk.stress)"),
        ],
    );
    let text = common::failure_text(&o);
    let mut named = 0;
    for part in text.split(" of sectors ").skip(1) {
        let range = part.split(':').next().unwrap();
        let (a, b) = range.split_once("..").unwrap();
        let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
        check(
            &o,
            (a..=b).contains(&bad),
            &format!("sectors {a}..{b} to cover sector {bad}"),
        );
        named += 1;
    }
    check(&o, named >= 1, "a failing write named");
    check(
        &o,
        !text.contains("read of sectors") && !text.contains("differ"),
        "no read failed, no data mismatch (the failed writes' blocks are unknown, not wrong)",
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
    check_ran(&o, "blk.config");
    check_ran(&o, "blk.requests");
    check(
        &o,
        o.console().contains(" fill: "),
        "the stress's last phase (fill) reported",
    );
    let failed: Vec<&str> = o.tap.failures().map(|r| r.name.as_str()).collect();
    check(
        &o,
        failed == ["blk.stress"],
        &format!("blk.stress the only check failing, not {failed:?}"),
    );
    check(
        &o,
        o.disks.iter().all(|d| d.reason.is_none()),
        "the image verified by the host, the sector still pattern A",
    );
}

/// A request that ends the stress (a GET_ID answer other than `disks=`
/// says, in the wrap phase) after a read answered IOERR (in the read-all
/// phase before it): the failure names both, the IOERR as "before it".
#[test]
fn a_failure_that_ends_the_stress_names_the_ioerrs_before_it() {
    let dir = common::scenario_dir("blk-eio-then-fail");
    let image = dir.join("disk.img");
    qemu_runner::disks::create(&image, 7, 8 * MIB).unwrap();
    let keys = Disk::new(8 * MIB).read_errors(&[300]).injection_keys();
    let drive = format!(
        "file.image.driver=file,file.image.filename={},if=none,id=d0,format=raw,cache=writeback,{}",
        image.display(),
        keys.join(",")
    );
    let console = by_hand_drive(
        &drive,
        "serial=zv-real,request-merging=off",
        "only=blk.stress seed=7 disks=fe.0.0001:8M:serial=zv-told",
    );
    assert_eq!(common::stray_write(&console), None, "{console}");
    // Read-all request 2 covers sectors 256..383 (128 a request).
    for want in [
        "not ok 1 - blk.stress",
        " wrap request ",
        "GET_ID: expected 'zv-told', got 'zv-real'; before it 1 requests answered IOERR: queue 0 ",
        " read-all request 2: read of sectors 256..383: status 1 (IOERR), expected 0 (OK) (replay: seed=0x7 only=blk.stress)",
    ] {
        assert!(console.contains(want), "{want:?} missing from:\n{console}");
    }
}

/// The whole VM stopped (QMP `stop`) as blk.stress starts on the disk,
/// held a second longer than the firmware waits for a used buffer, then
/// continued (`cont`): QEMU completes what it had before STOP and the
/// guest's TOD stands still meanwhile (it follows QEMU's virtual clock),
/// so nothing is lost and no firmware timeout fires (a TOD running
/// through the stop would end the stress with "no used buffer within the
/// timeout"). Every request verifies, the image verifies, and the stop
/// fell inside the stress: STOP and RESUME came, and the disk's stress
/// reports and end line after RESUME. (The firmware's own stress time is
/// no measure of the stop: on a loaded host it may exceed it.)
#[test]
fn a_vm_stopped_and_continued_during_the_stress_loses_nothing() {
    use qemu_runner::faults::PauseDuringStress;
    use std::time::Duration;
    let firmware_wait = Duration::from_micros(zvtest_contract::virtio::USED_TIMEOUT_US);
    let hold = firmware_wait + Duration::from_secs(1);
    let s = blk_wrapping("blk-stop-cont", Disk::new(8 * MIB))
        .peer(PauseDuringStress::new(BUS, hold))
        .qmp_events(true);
    let o = boot(&s, &elf());
    common::check_no_stray_writes(&o);
    all_blk_checks_ran(&o);
    let peer = o
        .peers
        .iter()
        .find(|p| p.name == format!("pause {BUS}"))
        .expect("the pause peer's outcome");
    check(&o, peer.figure("stops") == Some(1.0), "one stop performed");
    let paused = peer.figure("paused ms").unwrap_or(0.0);
    check(
        &o,
        paused >= hold.as_millis() as f64,
        &format!("stopped for at least the hold ({paused} ms)"),
    );
    let says = peer.lines.join("\n");
    for want in [
        "stopped the VM at `# zvtest: blk stress fe.0.0001`: STOP ",
        &format!(
            "query-status paused then and after the {} ms hold; RESUME after `cont`",
            hold.as_millis()
        ),
        "; 1 stop",
        "stress reports of fe.0.0001 read after RESUME, its end line too",
    ] {
        check(
            &o,
            says.contains(want),
            &format!("{want:?} in the peer's lines:\n{says}"),
        );
    }
    // The runner's own monitor saw them too, in that order.
    let stop = o.events("STOP").next().map(|e| e.after);
    let resume = o.events("RESUME").next().map(|e| e.after);
    check(
        &o,
        matches!((stop, resume), (Some(a), Some(b)) if a < b),
        &format!("a STOP then a RESUME event ({stop:?}, {resume:?})"),
    );
    check(
        &o,
        o.disks.iter().all(|d| d.reason.is_none()),
        "the image verified by the host",
    );
}

/// A stripe nobody writes, overwritten through QEMU's `qemu-io` monitor
/// command as blk.stress starts (the last such stripe: the whole-disk
/// read reaches it last): the next read covering it fails naming the
/// first byte that differs (sector, byte, image offset, pattern A
/// expected, the byte written got) with the replay seed; the second
/// disk's stress still runs to its end; the host's verification of the
/// image names the same offset.
#[test]
fn data_corrupted_behind_the_guests_back_fails_the_next_read_naming_it() {
    use qemu_runner::faults::CorruptDuringStress;
    use zvtest_contract::disk::{byte, writable_stripes, Pattern, STRIPE};
    const OTHER: &str = "fe.0.0002";
    let size = 8 * MIB;
    let name = "blk-corrupt";
    let probe = scenario(name).scratch_blk(BUS, Disk::new(size));
    let seed = probe.disk_seed();
    let stripes: Vec<u64> = writable_stripes(seed, size).collect();
    let stripe = (1..size / STRIPE)
        .rev()
        .find(|s| !stripes.contains(s))
        .expect("a stripe nobody writes");
    let (at, value) = (stripe * STRIPE, 0x5a);
    // The first byte of the stripe that pattern A does not already hold.
    let first = (at..at + STRIPE)
        .find(|&o| byte(seed, Pattern::Before, o) != value)
        .unwrap();
    let s = scenario(name)
        .scratch_blk(BUS, Disk::new(size))
        .scratch_blk(OTHER, Disk::new(size))
        .append("only=blk")
        .peer(CorruptDuringStress::new(BUS, at, STRIPE, value))
        .disk_dir(common::scenario_dir(name));
    assert_eq!(s.disk_seed(), seed);
    let o = boot(&s, &elf());
    common::check_no_stray_writes(&o);
    common::fails_with(
        &o,
        "blk.stress",
        &[
            &format!("{BUS}: queue 0 "),
            &format!(", got {value:#x}; "),
            &format!("(replay: seed={seed:#x} only=blk.stress)"),
        ],
    );
    // The read that found it names the first byte it read that differs:
    // the stripe's first such byte for the whole-disk read (which reads it
    // after the write, the runner acting within milliseconds of the
    // marker), a later one for a random read starting inside the stripe.
    let text = common::failure_text(&o);
    let found: u64 = text
        .split("(image offset ")
        .nth(1)
        .and_then(|t| u64::from_str_radix(t.split(')').next()?.trim_start_matches("0x"), 16).ok())
        .expect("an image offset in the failure");
    check(
        &o,
        (first..at + STRIPE).contains(&found),
        &format!("offset {found:#x} within the written bytes from {first:#x}"),
    );
    let named = format!(
        "sector {} byte {} (image offset {found:#x}): expected {:#x} (pattern A), got {value:#x}; ",
        found / 512,
        found % 512,
        byte(seed, Pattern::Before, found)
    );
    check(
        &o,
        text.contains(&named),
        &format!("{named:?} in the failure"),
    );
    if text.contains(" read-all request ") {
        check(
            &o,
            found == first,
            "the whole-disk read names the stripe's first differing byte",
        );
    }
    let peer = o
        .peers
        .iter()
        .find(|p| p.name == format!("corrupt {BUS}"))
        .expect("the corrupting peer's outcome");
    let says = peer.lines.join("\n");
    check(
        &o,
        says.contains(&format!(
            "at `# zvtest: blk stress {BUS}`: wrote 65536 bytes of 0x5a at offset {at} ({at:#x}) of {BUS} behind the guest's back (HMP `qemu-io -d ccw-{BUS}/virtio-backend \"write -q -P 0x5a {at} 65536\"`)"
        )),
        &format!("the peer's word of the write:\n{says}"),
    );
    // The rest ran: the other checks passed, the other disk's stress
    // reached its end; only blk.stress failed, and only for this disk.
    the_rest_ran(&o, &text, OTHER);
    // The host finds the same byte.
    let d = o
        .disks
        .iter()
        .find(|d| d.id == BUS.parse::<DiskId>().unwrap())
        .expect("the disk's verification");
    let reason = d.reason.clone().unwrap_or_default();
    check(
        &o,
        reason.contains(&format!("the first at offset {first:#x} ({first}; ")),
        &format!("the host's verification to name offset {first}: {reason:?}"),
    );
}

/// A disk hot-unplugged (QMP `device_del`, which the css bridge does at
/// once, without asking the guest) as blk.stress starts on it: the
/// firmware says it was removed with its requests in flight (how many
/// were outstanding, how many the device completed as it went, how it
/// knew: STSCH), does not hang, and stresses the other disk to its end.
#[test]
fn a_disk_unplugged_under_stress_is_reported_removed_and_the_rest_runs() {
    use qemu_runner::faults::UnplugDuringStress;
    const OTHER: &str = "fe.0.0002";
    let name = "blk-unplug";
    let s = scenario(name)
        .scratch_blk(BUS, Disk::new(8 * MIB))
        .scratch_blk(OTHER, Disk::new(8 * MIB))
        .append("only=blk")
        .peer(UnplugDuringStress::new(BUS))
        .qmp_events(true);
    let seed = s.disk_seed();
    let o = boot(&s, &elf());
    common::check_no_stray_writes(&o);
    common::fails_with(
        &o,
        "blk.stress",
        &[
            &format!("{BUS}: queue 0 "),
            " in flight (",
            " completed by the device as it went, ",
            " never answered; the subchannel is gone: STSCH ",
            "; first seen as: ",
            &format!("(replay: seed={seed:#x} only=blk.stress)"),
        ],
    );
    let text = common::failure_text(&o);
    check(
        &o,
        text.contains(": removed with ")
            && (text.contains(" requests in flight (")
                || text.contains(" removed with 1 request in flight (")),
        &format!("the removal named: {text}"),
    );
    let peer = o
        .peers
        .iter()
        .find(|p| p.name == format!("unplug {BUS}"))
        .expect("the unplugging peer's outcome");
    check(
        &o,
        peer.lines.iter().any(|l| {
            l.starts_with(&format!(
                "device_del ccw-{BUS} at `# zvtest: blk stress {BUS}`: DEVICE_DELETED "
            ))
        }),
        &format!("the peer's word of the unplug: {:?}", peer.lines),
    );
    the_rest_ran(&o, &text, OTHER);
}

/// A fault on one of two disks: the other checks passed, the other disk's
/// stress reached its end and is not named in the failure (`text`),
/// blk.stress is the only failing check, and the report ended in order.
fn the_rest_ran(o: &qemu_runner::Run, text: &str, other: &str) {
    check_ran(o, "blk.config");
    check_ran(o, "blk.requests");
    check(
        o,
        o.console().contains(&format!("# blk {other}: ")) && o.console().contains(" rounds, "),
        "the other disk's stress ran to its end",
    );
    check(
        o,
        !text.contains(&format!("{other}: ")),
        "the other disk not named in the failure",
    );
    let failed: Vec<&str> = o.tap.failures().map(|r| r.name.as_str()).collect();
    check(
        o,
        failed == ["blk.stress"],
        &format!("blk.stress the only check failing, not {failed:?}"),
    );
    check(
        o,
        o.console().contains("\n2 passed, 1 failed, 0 skipped\n"),
        "the report's summary: the run ended in order, not in a hang or crash",
    );
}
