//! virtio-gpu: display info and EDID against the configured mode, the
//! seeded image on scanout 0 compared pixel by pixel by the runner's
//! screendump, the cursor queue, the documented errors, resources under
//! stress; and the proofs that the checks fail: a screendump that
//! differs (one pixel drawn wrong, the runner expecting another seed), a
//! wrong mode or EDID expected.

use crate::common;

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
    scenario(name).virtio_gpu(g)
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

#[test]
fn another_mode_without_edid_and_two_scanouts_passes() {
    let g = Gpu::new(BUS, 320, 200).edid(false).scanouts(2);
    let o = boot(&gpu("gpu-320x200-two", g).append("only=gpu"), &elf());
    assert_pass(&o);
    for c in CHECKS {
        check_ran(&o, c);
    }
    check(
        &o,
        o.console()
            .contains("2 scanouts, scanout 0 320x200, EDID not offered"),
        "the mode, the scanouts and no EDID",
    );
    check(
        &o,
        o.console().contains("all 64000 pixels as seeded"),
        "the screendump compared",
    );
}

#[test]
fn without_the_peer_the_image_is_noted_as_not_compared() {
    let g = Gpu::new(BUS, 64, 48).dump(false);
    let o = boot(
        &gpu("gpu-no-dump", g.clone()).append("only=gpu.display,gpu.scanout"),
        &elf(),
    );
    assert_pass(&o);
    let r = o.tap.result("gpu.scanout").expect("gpu.scanout");
    check(
        &o,
        r.yaml
            .as_ref()
            .is_some_and(|y| y.lines.join(" ").contains("nobody compared it")),
        "a note that nobody compared the image",
    );
}

/// One pixel drawn wrong: every firmware check passes, the runner's
/// comparison names the pixel.
#[test]
fn a_pixel_drawn_wrong_fails_the_screendump() {
    let o = boot(
        &gpu("gpu-flip", Gpu::new(BUS, 640, 480).flip()).append("only=gpu.scanout"),
        &elf(),
    );
    check_ran(&o, "gpu.scanout");
    let (x, y) = zvtest_contract::gpu::flipped_pixel(640, 480);
    fails_saying(
        &o,
        &[
            "differs from the seeded image",
            &format!("first at (x {x}, y {y})"),
            "1 of 307200 pixels differ",
        ],
    );
}

/// The runner expecting another seed's image.
#[test]
fn another_seed_fails_the_screendump() {
    let o = boot(
        &gpu("gpu-seed", Gpu::new(BUS, 64, 48).expect_seed(1)).append("only=gpu.scanout"),
        &elf(),
    );
    check_ran(&o, "gpu.scanout");
    fails_saying(&o, &["seed=0x1", "first at (x 0, y 0)", "pixels differ"]);
}

/// The firmware told another mode than the device has.
#[test]
fn a_wrong_mode_fails_display() {
    let mut s =
        gpu("gpu-wrong-mode", Gpu::new(BUS, 640, 480).edid(true)).append("only=gpu.display");
    s.ccw_devices[0]
        .properties
        .push(("xres".into(), "800".into()));
    let o = boot(&s, &elf());
    fails_saying(&o, &["scanout 0 is 800x480, gpu= says 640x480"]);
}

/// EDID expected from a device started with edid=off.
#[test]
fn edid_expected_but_off_fails_display() {
    let mut s = gpu("gpu-no-edid", Gpu::new(BUS, 640, 480).edid(true)).append("only=gpu.display");
    s.ccw_devices[0]
        .properties
        .push(("edid".into(), "off".into()));
    let o = boot(&s, &elf());
    fails_saying(&o, &["VIRTIO_GPU_F_EDID not offered (gpu= says edid on)"]);
}

/// A scanout id the firmware takes for invalid is one the device has
/// (max_outputs=2, the firmware told 1): SET_SCANOUT is not refused with
/// ERR_INVALID_SCANOUT_ID, and the scanout count differs.
#[test]
fn a_valid_scanout_id_taken_for_invalid_fails_errors() {
    let s = gpu(
        "gpu-untold-scanouts",
        Gpu::new(BUS, 64, 48).scanouts_untold(2),
    )
    .append("only=gpu.errors,gpu.display");
    let o = boot(&s, &elf());
    check(
        &o,
        o.tap.result("gpu.errors").is_some_and(|r| !r.ok),
        "gpu.errors to fail",
    );
    fails_saying(
        &o,
        &[
            "set scanout past num_scanouts (SET_SCANOUT)",
            "expected 0x1202 (ERR_INVALID_SCANOUT_ID)",
            "num_scanouts 2, gpu= says 1",
        ],
    );
}
