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
use zvtest_firmware::disk::DiskId;

const BUS: &str = "fe.0.0001";
const MIB: u64 = 1 << 20;

fn blk(name: &str, disk: Disk) -> Scenario {
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
        &blk("blk-default", Disk::new(16 * MIB).serial("zv-blk-1")),
        &elf(),
    );
    all_blk_checks_ran(&o);
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
    args.push(
        format!(
            "file={},if=none,id=d0,format=raw,cache=writeback",
            image.display()
        )
        .into(),
    );
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
