//! virtio-gpu: display info and EDID against the configured mode, the
//! seeded image on scanout 0 compared pixel by pixel by the runner's
//! screendump, the cursor queue, the documented errors, resources under
//! stress; and the proofs that the checks fail: a screendump that
//! differs (one pixel drawn wrong, the runner expecting another seed), a
//! wrong mode or EDID expected.

mod common;

use common::{assert_pass, boot, check, check_ran, elf, failure_text, scenario};
use qemu_runner::gpu::{Gpu, GpuScenario};
use qemu_runner::{Run, Scenario};

const BUS: &str = "fe.0.0007";
const CHECKS: [&str; 5] = [
    "gpu.display",
    "gpu.scanout",
    "gpu.cursor",
    "gpu.errors",
    "gpu.stress",
];

fn gpu(name: &str, g: Gpu) -> Scenario {
    scenario(name).virtio_gpu(g).append("only=gpu")
}

/// The peer's reasons or the firmware's failure say each of `says`.
#[track_caller]
fn fails_saying(o: &Run, says: &[&str]) {
    check(o, !o.passed(), "a failing verdict");
    let text = failure_text(o);
    for s in says {
        check(
            o,
            text.contains(s),
            &format!("the failure to say {s:?}:\n{text}"),
        );
    }
}

#[test]
fn vga_with_edid_passes() {
    let o = boot(
        &gpu("gpu-640x480-edid", Gpu::new(BUS, 640, 480).edid(true)),
        &elf(),
    );
    assert_pass(&o);
    for c in CHECKS {
        check_ran(&o, c);
    }
    check(
        &o,
        o.console()
            .contains("EDID of 2 blocks (1024 bytes reported), preferred mode 640x480"),
        "the EDID's preferred mode",
    );
    check(
        &o,
        o.console().contains("all 307200 pixels as seeded"),
        "the screendump compared",
    );
}
