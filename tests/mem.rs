//! virtio-mem (QEMU 10.0 and later; on 7.2 every test prints why it does
//! not run): the configuration against `mem=`, blocks plugged to the
//! requested size and read back, state queries, unplug and unplug-all,
//! the requested size changed over QMP mid-run and followed; DIAG 0x500
//! subcode 4 covering the region. Failing proofs: a wrong block size
//! claimed, and the host setting another size than the firmware was told.

use crate::common;
use common::*;
use qemu_runner::mem::{MemScenario, VirtioMem};
use qemu_runner::{detect_qemu_version, QemuVersion};

const BUS: &str = "fe.0.0011";
const MIB: u64 = 1 << 20;

/// Whether this QEMU has virtio-mem-ccw (10.0 and later); else why not.
fn offered() -> bool {
    let qemu = scenario("x").qemu;
    let v = detect_qemu_version(&qemu).expect("QEMU's version");
    if v < QemuVersion::new(10, 0) {
        eprintln!("skipped: QEMU {v} has no virtio-mem-ccw (10.0 and later)");
        return false;
    }
    true
}

fn mem(name: &str, v: VirtioMem, only: &str) -> qemu_runner::Scenario {
    scenario(name).virtio_mem(v).append(format!("only={only}"))
}

/// Config, plug to 64 MiB of a 256 MiB region, read back, states,
/// unplug, unplug-all; the storage-limit hypercall then ends at QEMU's
/// device memory.
#[test]
fn config_and_plug() {
    if !offered() {
        return;
    }
    let s = mem(
        "mem-plug",
        VirtioMem::new(BUS, 256 * MIB).requested(64 * MIB),
        "mem.config,mem.plug,hcall.diag500.storage-limit",
    );
    let o = boot(&s, &elf());
    assert_pass(&o);
    for c in ["mem.config", "mem.plug", "hcall.diag500.storage-limit"] {
        check_ran(&o, c);
    }
    check(
        &o,
        o.console()
            .contains("# mem fe.0.0011: block 0x100000 region 0x10000000 at 0x40000000"),
        "the region at 1 GiB (the storage rounded up to 1 GiB)",
    );
}

/// The host grows the requested size mid-run, then another run shrinks
/// it: the firmware follows both.
#[test]
fn resize_followed() {
    if !offered() {
        return;
    }
    for (name, from, to) in [("mem-grow", 16, 48), ("mem-shrink", 48, 8)] {
        let s = mem(
            name,
            VirtioMem::new(BUS, 128 * MIB)
                .block(2 * MIB)
                .requested(from * MIB)
                .resize(to * MIB),
            "mem.resize",
        );
        let o = boot(&s, &elf());
        assert_pass(&o);
        check_ran(&o, "mem.resize");
        check(&o, o.qmp_commands_done, "the qom-set sent and accepted");
    }
}

/// The host sets 48 MiB where the firmware was told 32 MiB: the check
/// fails naming both.
#[test]
fn resize_not_as_told_fails() {
    if !offered() {
        return;
    }
    let s = mem(
        "mem-resize-wrong",
        VirtioMem::new(BUS, 128 * MIB)
            .requested(16 * MIB)
            .resize_told(48 * MIB, 32 * MIB),
        "mem.resize",
    );
    let o = boot(&s, &elf());
    check(&o, !o.passed(), "FAIL");
    let text = failure_text(&o);
    check(
        &o,
        text.contains("requested_size after the host's change")
            && text.contains("0x2000000")
            && text.contains("0x3000000"),
        "a failure naming the requested size told (32 MiB) and set (48 MiB)",
    );
}

/// `mem=` claims 2 MiB blocks on a device with 1 MiB ones (the device
/// set up by hand, so that the only `mem=` is the wrong claim).
#[test]
fn wrong_block_size_fails() {
    if !offered() {
        return;
    }
    let mut s = scenario("mem-block-wrong")
        .virtio_ccw("virtio-mem-ccw", BUS, "mem")
        .extra_args([
            "-m",
            "maxmem=192M",
            "-object",
            "memory-backend-ram,id=r,size=64M",
        ]);
    s.ccw_devices[0].properties = vec![
        ("memdev".into(), "r".into()),
        ("block-size".into(), "1M".into()),
        ("requested-size".into(), "8M".into()),
    ];
    let s = s.append(format!(
        "only=mem.config mem={BUS}:block=2M:region=64M:requested=8M:maxmem=192M"
    ));
    let o = boot(&s, &elf());
    check(&o, !o.passed(), "FAIL");
    let text = failure_text(&o);
    check(
        &o,
        text.contains("block_size (mem= says)")
            && text.contains("0x200000")
            && text.contains("0x100000"),
        "a failure naming the block size claimed and found",
    );
}
