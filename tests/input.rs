//! virtio-input: each model (keyboard, mouse, tablet) alone and all three
//! at once, their configuration held to QEMU's, a seeded sequence injected
//! over QMP and received exactly, LED events on the keyboard's status
//! queue. And the proofs that the checks can fail: the peer dropping or
//! changing one event, a model the command line gets wrong, a device
//! `input=` names that is not there.

use crate::common;

use common::{assert_pass, boot, check, check_ran, elf, fails_with, scenario};
use qemu_runner::input::{Fault, InputDevices};
use qemu_runner::{Run, Scenario, VersionWord};
use zvtest_contract::input::{self as contract, Model};

const KBD: &str = "fe.0.0008";
const MOUSE: &str = "fe.0.000e";
const TABLET: &str = "fe.0.000f";
const SEED: u64 = 0x1234_5678;

fn input(name: &str, devices: InputDevices) -> Scenario {
    scenario(name)
        .seed(SEED)
        .input(devices)
        .append("only=input")
}

#[track_caller]
fn events_came(o: &Run, bus: &str, model: &str) {
    let rounds = contract::ROUNDS;
    let bus_id = bus.parse().unwrap();
    let m = Model::from_word(model).unwrap();
    let n: usize = (0..rounds)
        .map(|r| contract::expected_events(&contract::round(SEED, bus_id, m, r)).len())
        .sum();
    check(
        o,
        o.console().contains(&format!(
            "# input {bus} {model}: {n} events in {rounds} rounds as injected"
        )),
        &format!("{bus}'s {n} events received"),
    );
}

#[test]
fn each_model_alone_passes() {
    for (bus, model) in [
        (KBD, Model::Keyboard),
        (MOUSE, Model::Mouse),
        (TABLET, Model::Tablet),
    ] {
        let o = boot(
            &input(
                &format!("input-{}", model.word()),
                InputDevices::new().device(bus, model),
            ),
            &elf(),
        );
        assert_pass(&o);
        check_ran(&o, "input.config");
        check_ran(&o, "input.events");
        events_came(&o, bus, model.word());
        let status = o.tap.result("input.status");
        if model == Model::Keyboard {
            check_ran(&o, "input.status");
            check(
                &o,
                o.console()
                    .contains(&format!("# input {bus} kbd: 12 status events used")),
                "12 status events used",
            );
        } else {
            check(
                &o,
                status.is_some_and(|r| r.is_skip()),
                "input.status skipped without a keyboard",
            );
        }
    }
}

#[test]
fn all_three_at_once_pass() {
    let o = boot(
        &input(
            "input-all",
            InputDevices::new()
                .keyboard(KBD)
                .mouse(MOUSE)
                .tablet(TABLET),
        ),
        &elf(),
    );
    assert_pass(&o);
    for c in ["input.config", "input.events", "input.status"] {
        check_ran(&o, c);
    }
    events_came(&o, KBD, "kbd");
    events_came(&o, MOUSE, "mouse");
    events_came(&o, TABLET, "tablet");
}

#[test]
fn a_dropped_event_fails_naming_it() {
    let bus = MOUSE.parse().unwrap();
    let o = boot(
        &input(
            "input-drop",
            InputDevices::new().mouse(MOUSE).fault(Fault::Drop {
                bus,
                round: 1,
                index: 4,
            }),
        ),
        &elf(),
    );
    fails_with(
        &o,
        "input.events",
        &[MOUSE, "round 1 event", "expected", "got", "seed=0x12345678"],
    );
    check_ran(&o, "input.config");
}

#[test]
fn a_changed_event_fails_naming_index_expected_and_got() {
    let bus = TABLET.parse().unwrap();
    let devices = InputDevices::new().tablet(TABLET);
    let dev = devices.devices[0];
    let index = 5;
    let good = contract::expected_events(&devices.batches(SEED, dev, 0));
    let bad_devices = devices.fault(Fault::Change {
        bus,
        round: 0,
        index,
    });
    let bad = contract::expected_events(&bad_devices.batches(SEED, dev, 0));
    let at = good
        .iter()
        .zip(&bad)
        .position(|(a, b)| a != b)
        .expect("the fault changes an event");
    let o = boot(&input("input-change", bad_devices), &elf());
    fails_with(
        &o,
        "input.events",
        &[
            TABLET,
            &format!("round 0 event {at}: expected"),
            "seed=0x12345678",
        ],
    );
}

#[test]
fn a_wrong_model_fails_input_config_naming_the_field() {
    // A mouse where the command line says keyboard, a tablet said mouse.
    for (qemu_model, word, field) in [
        ("virtio-mouse-ccw", "kbd", "ID_NAME"),
        ("virtio-tablet-ccw", "mouse", "ID_NAME"),
    ] {
        let s = scenario("input-wrong-model")
            .ccw_device(qemu_model, MOUSE, "input")
            .append(format!("input={MOUSE}:{word}"))
            .append("only=input.config");
        let o = boot(&s, &elf());
        fails_with(&o, "input.config", &[MOUSE, field, "QEMU Virtio"]);
    }
}

#[test]
fn input_naming_a_missing_device_fails() {
    let s = scenario("input-missing")
        .append(format!("input={TABLET}:tablet"))
        .append("only=input.config");
    let o = boot(&s, &elf());
    fails_with(&o, "input.config", &[TABLET, "a virtio-input device there"]);
}

/// The button map depends on QEMU's version (BTN_TOUCH from 8.1): told
/// the other side of 8.1, input.config must fail naming EV_KEY; told no
/// version, it passes with a note that BTN_TOUCH was not compared.
#[test]
fn the_button_map_follows_the_qemu_version() {
    let s = scenario("input-version")
        .input(InputDevices::new().mouse(MOUSE))
        .append("only=input.config")
        .resolve_qemu_version()
        .expect("QEMU's version");
    let real = s.claimed_qemu_version().expect("detected");
    let other = if contract::has_touch((real.major, real.minor)) {
        "7.2"
    } else {
        "10.0"
    };
    let o = boot(&s.clone().claim_qemu_version(other), &elf());
    fails_with(&o, "input.config", &[MOUSE, "EV_BITS EV_KEY"]);
    let o = boot(&s.qemu_version(VersionWord::Omit), &elf());
    assert_pass(&o);
    check(
        &o,
        o.tap
            .result("input.config")
            .and_then(|r| r.yaml.as_ref())
            .is_some_and(|y| y.lines.join(" ").contains("BTN_TOUCH not compared")),
        "a note that BTN_TOUCH was not compared",
    );
}

/// The device must interrupt for the events it writes: asked for none
/// (`:mute`, test only), input.events fails saying so.
#[test]
fn events_without_an_interrupt_fail() {
    let o = boot(
        &input("input-mute", InputDevices::new().keyboard(KBD).mute(KBD)),
        &elf(),
    );
    fails_with(
        &o,
        "input.events",
        &[KBD, "round 0", "no I/O interrupt for the subchannel"],
    );
}

/// A device `input=` does not name is not compared, and the pass says so.
#[test]
fn a_device_input_does_not_name_is_noted() {
    let s = scenario("input-unnamed")
        .input(InputDevices::new().keyboard(KBD))
        .ccw_device("virtio-tablet-ccw", TABLET, "input")
        .append("only=input.config");
    let o = boot(&s, &elf());
    assert_pass(&o);
    check(
        &o,
        o.tap
            .result("input.config")
            .and_then(|r| r.yaml.as_ref())
            .is_some_and(|y| {
                y.lines
                    .join(" ")
                    .contains(&format!("not compared: {TABLET}"))
            }),
        "a note naming the tablet input= leaves out",
    );
}
