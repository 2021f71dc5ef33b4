//! Every CPU at once: a virtio-blk device with a request queue per CPU,
//! each CPU stressing its own with verified reads and writes while the
//! others do the same and any CPU takes the device's interrupts; and the
//! failures that must show: a completion handed out twice, a flipped byte
//! on the disk, a CPU that never came up.

use crate::common;

use common::{assert_pass, boot, check, check_ran, elf, fails_with, scenario};
use qemu_runner::disks::Disk;
use qemu_runner::net::{Echo, Misbehaviour, NetScenario};
use qemu_runner::Scenario;
use std::os::unix::fs::FileExt;

const BUS: &str = "fe.0.0001";
const MIB: u64 = 1 << 20;

/// -smp `cpus` under multi-threaded TCG, a scratch disk with `queues`
/// request queues, the concurrent stress alone.
fn stress(name: &str, cpus: u32, queues: u16) -> Scenario {
    scenario(name)
        .accel("tcg,thread=multi")
        .smp(cpus)
        .scratch_blk(BUS, Disk::new(8 * MIB).queues(queues))
        .ccw_device("virtio-rng-ccw", RNG, "rng")
        .append("only=smp.stress-blk")
}

/// The entropy device driven alongside, by the last CPU.
const RNG: &str = "fe.0.0004";

#[track_caller]
fn every_cpu_drove_its_queue(cpus: u32) {
    let o = boot(
        &stress(&format!("smp-stress-{cpus}"), cpus, cpus as u16),
        &elf(),
    );
    assert_pass(&o);
    check_ran(&o, "smp.stress-blk");
    let console = o.console();
    for n in 0..cpus {
        for line in [
            format!("# smp cpu {n} (address {n}): "),
            format!("# smp {BUS} q{n} cpu{n} random: "),
            format!("# smp {BUS} q{n} cpu{n} read-all: "),
        ] {
            check(
                &o,
                console.lines().any(|l| l.starts_with(&line)),
                &format!("a line {line:?}"),
            );
        }
    }
    let entropy = format!("# smp {RNG} q0 cpu{} entropy: ", cpus - 1);
    check(
        &o,
        console.lines().any(|l| l.starts_with(&entropy)),
        &format!("a line {entropy:?}"),
    );
    check(
        &o,
        console.contains("# zvtest: disk written fe.0.0001"),
        "every writable stripe written (the host verifies the image)",
    );
}

#[test]
fn two_cpus_each_own_a_queue() {
    every_cpu_drove_its_queue(2);
}

#[test]
fn four_cpus_each_own_a_queue() {
    every_cpu_drove_its_queue(4);
}

/// Eight vCPUs on our two host cores: slow, but every one drives.
#[test]
fn eight_cpus_each_own_a_queue() {
    every_cpu_drove_its_queue(8);
}

#[test]
fn one_cpu_is_skipped_and_one_queue_noted() {
    let o = boot(
        &scenario("smp-stress-1cpu")
            .scratch_blk(BUS, Disk::new(8 * MIB).queues(2))
            .append("only=smp.stress-blk"),
        &elf(),
    );
    assert_pass(&o);
    check(
        &o,
        o.tap
            .result("smp.stress-blk")
            .is_some_and(|r| r.is_skip() && r.describe().contains("one CPU")),
        "a SKIP naming one CPU",
    );
    // One request queue: CPU 0 drives it alone while the other takes
    // interrupts (the one-CPU figure of the benchmark), and says so.
    let o = boot(&stress("smp-stress-1queue", 2, 1), &elf());
    assert_pass(&o);
    check(
        &o,
        o.console().contains(
            "note: \"fe.0.0001 has 1 request queues for 2 CPUs: CPUs 1 to 1 drove none\"",
        ),
        "a note naming the CPU without a queue",
    );
}

/// The accounting of CPU 1's queue handed its first used id twice.
#[test]
fn a_completion_taken_twice_fails_named() {
    let o = boot(
        &stress("smp-stress-double", 2, 2).append("inject=double"),
        &elf(),
    );
    fails_with(
        &o,
        "smp.stress-blk",
        &[
            "CPU 1 (address 1) fe.0.0001 queue 1",
            "returned, but no request has it",
            "seed=",
        ],
    );
}

/// CPU 1 takes the disk's status behind the handler's back before each
/// of its waits: an interrupt QEMU raised with that status finds none
/// (TSCH cc 1), which is what an interrupt taken twice looks like.
#[test]
fn an_interrupt_without_status_fails_as_taken_twice() {
    let o = boot(
        &stress("smp-stress-steal", 2, 2).append("inject=steal"),
        &elf(),
    );
    fails_with(
        &o,
        "smp.stress-blk",
        &["found no status pending: taken twice"],
    );
}

/// The CPU with the highest address never comes up: the stress names it
/// and its queue.
#[test]
fn a_cpu_that_cannot_take_its_queue_is_named() {
    let o = boot(
        &stress("smp-stress-refused", 4, 4).append("inject=cpu host-wait=1500"),
        &elf(),
    );
    fails_with(
        &o,
        "smp.stress-blk",
        &["CPU 3 (address 3) could not take its queue 3 of fe.0.0001"],
    );
}

/// A byte flipped in a stripe nobody writes, before boot: the CPU whose
/// share of the disk holds it fails, naming itself, its queue, the sector
/// and the byte.
#[test]
fn a_flipped_byte_names_the_cpu_queue_and_sector() {
    let dir = common::scenario_dir("smp-stress-flip");
    let image = dir.join("disk.img");
    let seed = 0x5eed_0042u64;
    let size = 8 * MIB;
    qemu_runner::disks::create(&image, seed, size).unwrap();
    let stripe = (2..size / 65536)
        .find(|&s| !zvtest_contract::disk::writable_stripe(seed, size, s))
        .unwrap();
    let offset = stripe * 65536 + 4321;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&image)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    f.write_all_at(&[b[0] ^ 0x40], offset).unwrap();
    let args: Vec<std::ffi::OsString> = [
        "-M",
        "s390-ccw-virtio",
        "-accel",
        "tcg,thread=multi",
        "-smp",
        "2",
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
    .chain([
        elf().into(),
        "-drive".into(),
        format!(
            "file={},if=none,id=d0,format=raw,cache=writeback",
            image.display()
        )
        .into(),
        "-device".into(),
        "virtio-blk-ccw,drive=d0,devno=fe.0.0001,num-queues=2".into(),
        "-append".into(),
        format!("only=smp.stress-blk seed={seed:#x} scratch=fe.0.0001").into(),
    ])
    .collect();
    let out = common::run_qemu_by_hand(&args);
    let console = String::from_utf8_lossy(&out.stdout);
    let named = format!("sector {} byte {}", offset / 512, offset % 512);
    for want in [
        "not ok",
        "smp.stress-blk",
        named.as_str(),
        "fe.0.0001 queue ",
        "(address ",
    ] {
        assert!(
            console.contains(want),
            "the firmware must fail naming {want:?}:\n{console}"
        );
    }
}

/// Two CPUs, a net device each with its own echo peer; `second` is how
/// the second device's peer behaves.
fn nets(name: &str, second: Misbehaviour) -> Scenario {
    scenario(name)
        .accel("tcg,thread=multi")
        .smp(2)
        .net_echo(
            "fe.0.0002",
            [0x52, 0x54, 0x00, 0x7a, 0x76, 0x21],
            Echo::dgram(),
        )
        .net_echo(
            "fe.0.0003",
            [0x52, 0x54, 0x00, 0x7a, 0x76, 0x22],
            Echo::dgram().misbehave(second),
        )
        .append("only=smp.stress-net")
}

/// Four CPUs, four net devices with an echo peer each.
#[test]
fn four_cpus_each_own_a_net_device() {
    let mut s = scenario("smp-stress-net-4")
        .accel("tcg,thread=multi")
        .smp(4);
    for k in 0..4u8 {
        s = s.net_echo(
            &format!("fe.0.002{k}"),
            [0x52, 0x54, 0x00, 0x7a, 0x76, 0x30 + k],
            Echo::dgram(),
        );
    }
    let o = boot(&s.append("only=smp.stress-net"), &elf());
    assert_pass(&o);
    check_ran(&o, "smp.stress-net");
    for k in 0..4 {
        let line = format!("# smp fe.0.002{k} rx0 cpu{k}: ");
        check(
            &o,
            o.console().lines().any(|l| l.starts_with(&line)),
            &format!("a line {line:?}"),
        );
    }
}

#[test]
fn two_cpus_each_own_a_net_device() {
    let o = boot(&nets("smp-stress-net", Misbehaviour::None), &elf());
    assert_pass(&o);
    check_ran(&o, "smp.stress-net");
    let console = o.console();
    for line in [
        "# smp cpu 0 (address 0): ",
        "# smp cpu 1 (address 1): ",
        "# smp fe.0.0002 rx0 cpu0: ",
        "# smp fe.0.0003 tx0 cpu1: ",
    ] {
        check(
            &o,
            console.lines().any(|l| l.starts_with(line)),
            &format!("a line {line:?}"),
        );
    }
}

/// A byte flipped in one answer on CPU 1's device: named with the CPU,
/// the device, the frame and the byte.
#[test]
fn a_flipped_answer_names_the_cpu_and_frame() {
    let o = boot(
        &nets(
            "smp-stress-net-flip",
            Misbehaviour::Flip {
                pair: 0,
                seq: 17,
                offset: 40,
            },
        ),
        &elf(),
    );
    fails_with(
        &o,
        "smp.stress-net",
        &["CPU 1 (address 1) fe.0.0003 pair 0: frame 17", "seed="],
    );
}

/// An answer that never comes on CPU 1's device: its wait runs out and
/// names the CPU, the device and the frame.
#[test]
fn a_lost_answer_names_the_cpu_and_frame() {
    let o = boot(
        &nets(
            "smp-stress-net-drop",
            Misbehaviour::Drop { pair: 0, seq: 9 },
        ),
        &elf(),
    );
    fails_with(
        &o,
        "smp.stress-net",
        &[
            "CPU 1 (address 1) fe.0.0003 pair 0: frame 9",
            "never answered",
        ],
    );
}
