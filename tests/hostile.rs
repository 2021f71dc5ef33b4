//! The hostile device: the runner's own vhost-user back-end behind a
//! `vhost-user-fs-ccw` (tag `zv-hostile`), guest RAM shared. Behaving, it
//! passes `hostile.echo` (and the virtio-fs suite leaves it alone); told
//! to lie once, the firmware names the lie (what, queue, used entry, id),
//! marks the queue broken, and the run goes on to its later checks and
//! its summary line.
//!
//! Where this QEMU has no `vhost-user-fs-ccw`, each test says why and
//! passes without booting.

use crate::common;

use common::models::offered;
use common::{
    assert_pass, boot, check, check_ran, check_summary, elf, fails_with, failure_text, scenario,
};
use qemu_runner::hostile::{Hostile, HostileScenario, Lie};
use qemu_runner::virtiofs::{virtiofsd, VirtioFs, VirtioFsScenario};
use qemu_runner::{Directive, Run, Scenario};

const BUS: &str = "fe.0.0020";
/// The checks run: the virtio-fs ones (which must leave the device
/// alone), ours, and a later one that needs no device.
const ONLY: &str = "only=fs,hostile,timer.cpu-timer";
/// The request the lies are told at: not the last of its batch of 8, so
/// later requests of the batch are in flight too.
const AT: u64 = 13;

fn hostile_scenario(name: &str, h: Hostile) -> Option<Scenario> {
    if let Err(why) = offered("vhost-user-fs-ccw") {
        eprintln!("{name}: not booted: {why}");
        return None;
    }
    Some(scenario(name).hostile(h).append(ONLY).seed(0x5eed))
}

/// The rest of the run happened: fs left the device alone, a later check
/// ran, and the summary line came.
fn went_on(o: &Run) {
    check(
        o,
        o.tap.result("fs.config").is_some_and(|r| {
            r.is_skip()
                && matches!(&r.directive, Some(Directive::Skip(why))
                    if why == "no vhost-user-fs-ccw share (the hostile device is hostile.echo's)")
        }),
        "fs.config to SKIP (the hostile device is no share)",
    );
    check_ran(o, "timer.cpu-timer");
    check_summary(o);
}

/// What the back-end said it did.
fn lied(o: &Run) -> String {
    o.peers[0]
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("lied at "))
        .unwrap_or_else(|| panic!("no lie in the peer's lines: {:?}", o.peers[0].lines))
        .to_string()
}

#[test]
fn a_behaving_device_echoes_every_byte() {
    let Some(s) = hostile_scenario("hostile-echo", Hostile::new(BUS)) else {
        return;
    };
    let o = boot(&s, &elf());
    assert_pass(&o);
    check_ran(&o, "hostile.echo");
    went_on(&o);
    check(
        &o,
        o.console().lines().any(|l| {
            l.starts_with("# hostile fe.0.0020: 256 requests echoed in batches on 1 request queues, ")
                && l.ends_with(
                    " bytes, every byte and canary checked, 0 in flight at the end; 512 echoed under stress",
                )
        }),
        "the echo line",
    );
    let console = o.console();
    check(
        &o,
        o.console().lines().any(|l| {
            l == "# hostile fe.0.0020 queue 1: 16 requests one at a time, each taken on its interrupt; 0 interrupts with nothing used"
        }),
        "the interrupt phase's line, no interrupt with nothing used",
    );
    for phase in ["interrupts", "polled"] {
        check(
            &o,
            console.contains(&format!(
                "# hostile fe.0.0020 request1 {phase}: 256 requests, "
            )),
            &format!("a QueueStats line for the {phase} phase"),
        );
    }
    check(
        &o,
        o.peers[0].figure("requests") == Some(784.0),
        "the back-end to have served 784 requests (768, then 16 one at a time)",
    );
    check(
        &o,
        o.peers[0]
            .lines
            .iter()
            .any(|l| l == "back-end ended with the connection"),
        "the back-end to end with QEMU's connection",
    );
}

fn lie(name: &str, l: Lie) -> Option<(Run, String)> {
    lie_on(name, Hostile::new(BUS), l)
}

fn lie_on(name: &str, h: Hostile, l: Lie) -> Option<(Run, String)> {
    let s = hostile_scenario(name, h.lie(l, AT))?;
    let o = boot(&s, &elf());
    let said = lied(&o);
    Some((o, said))
}

/// The id the back-end says it wrote: "request 13: used id 11 (...)".
fn id_in(said: &str) -> String {
    said.split("used id ")
        .nth(1)
        .and_then(|r| r.split([' ', ',']).next())
        .unwrap_or_else(|| panic!("no id in {said:?}"))
        .to_string()
}

#[test]
fn a_used_id_past_the_queue_is_named() {
    let Some((o, said)) = lie("hostile-id-out-of-range", Lie::IdOutOfRange) else {
        return;
    };
    assert!(said.starts_with("request 13: used id 128 "), "{said}");
    fails_with(
        &o,
        Some("hostile.echo"),
        &["hostile fe.0.0020 queue 1: used entry 13 (seed 0x5eed): virtqueue: device returned id 128, but the queue has only 128 entries; queue marked broken"],
    );
    went_on(&o);
}

#[test]
fn a_used_id_not_in_flight_is_named() {
    let Some((o, said)) = lie("hostile-id-not-in-flight", Lie::IdNotInFlight) else {
        return;
    };
    let id = id_in(&said);
    fails_with(
        &o,
        Some("hostile.echo"),
        &[&format!("hostile fe.0.0020 queue 1: used entry 13 (seed 0x5eed): virtqueue: device returned id {id}, which is not a chain in flight; queue marked broken")],
    );
    went_on(&o);
}

#[test]
fn an_id_used_twice_is_named() {
    let Some((o, said)) = lie("hostile-used-twice", Lie::UsedTwice) else {
        return;
    };
    // "request 13: used id I, again for request 14 (head H)"
    let id = id_in(&said);
    check(
        &o,
        said.contains(", again for request 14 (head "),
        &format!("the id used again for request 14: {said}"),
    );
    // The first use is request 13's answer; the second is entry 14.
    fails_with(
        &o,
        Some("hostile.echo"),
        &[&format!("hostile fe.0.0020 queue 1: used entry 14 (seed 0x5eed): virtqueue: device returned id {id}, which is not a chain in flight; queue marked broken")],
    );
    went_on(&o);
}

#[test]
fn a_used_length_past_the_writable_bytes_is_named() {
    let Some((o, said)) = lie("hostile-len-past", Lie::LenPastWritable) else {
        return;
    };
    // "request 13: used length L for id I (W writable bytes)"
    let words: Vec<&str> = said.split(' ').collect();
    let (len, id, writable) = (words[4], words[7], words[8].trim_start_matches('('));
    fails_with(
        &o,
        Some("hostile.echo"),
        &[&format!("hostile fe.0.0020 queue 1: used entry 13 (seed 0x5eed): virtqueue: device says it wrote {len} bytes to id {id}, which has only {writable} device-writable bytes; queue marked broken")],
    );
    went_on(&o);
}

#[test]
fn a_used_index_jump_is_named() {
    let Some((o, said)) = lie("hostile-index-jump", Lie::IndexJump) else {
        return;
    };
    assert!(
        said.starts_with("request 13: used index moved by 129"),
        "{said}"
    );
    fails_with(
        &o,
        Some("hostile.echo"),
        &[
            "hostile fe.0.0020 queue 1: used entry ",
            " (seed 0x5eed): virtqueue: used index ",
            " past the last one seen (",
            " chains are in flight; queue marked broken",
        ],
    );
    went_on(&o);
}

#[test]
fn a_buffer_never_returned_is_named() {
    let Some((o, said)) = lie("hostile-never-returned", Lie::NeverReturned) else {
        return;
    };
    assert!(said.starts_with("request 13: id "), "{said}");
    fails_with(
        &o,
        Some("hostile.echo"),
        &["hostile fe.0.0020 queue 1: used entry 15 (seed 0x5eed): queue 1: no used buffer within the timeout (1 in flight); queue marked broken"],
    );
    went_on(&o);
}

#[test]
fn a_write_into_a_readable_buffer_is_named() {
    let Some((o, said)) = lie("hostile-writes-readable", Lie::WritesReadable) else {
        return;
    };
    // "... inverted: 0xAB -> 0xCD"
    let (was, now) = bytes_in(&said);
    fails_with(
        &o,
        Some("hostile.echo"),
        &[&format!("hostile fe.0.0020 queue 1: request 13: readable byte 0 changed by the device: expected {was}, got {now} (seed 0x5eed); queue marked broken")],
    );
    went_on(&o);
}

#[test]
fn a_write_past_a_writable_buffer_hits_the_canary() {
    let Some((o, said)) = lie("hostile-writes-past", Lie::WritesPastBuffer) else {
        return;
    };
    let (was, now) = bytes_in(&said);
    fails_with(
        &o,
        Some("hostile.echo"),
        &[&format!("hostile fe.0.0020 queue 1: request 13: canary after the writable buffer byte 0: expected {was}, got {now} (seed 0x5eed); queue marked broken")],
    );
    went_on(&o);
}

/// The byte before and after a lie's write, in decimal as the firmware
/// says them: "... inverted: 0xa5 -> 0x5a".
fn bytes_in(said: &str) -> (u8, u8) {
    let tail = said
        .split("inverted: ")
        .nth(1)
        .unwrap_or_else(|| panic!("{said}"));
    let (a, b) = tail.split_once(" -> ").unwrap_or_else(|| panic!("{said}"));
    let hex = |x: &str| u8::from_str_radix(x.trim_start_matches("0x"), 16).unwrap();
    (hex(a), hex(b))
}

/// A device whose configuration has another tag than the one `shares=`
/// gives: the firmware names the difference and sends it nothing.
#[test]
fn a_device_with_another_tag_is_left_alone() {
    let Some(s) = hostile_scenario(
        "hostile-other-tag",
        Hostile::new(BUS).device_tag("not-hostile"),
    ) else {
        return;
    };
    let o = boot(&s, &elf());
    fails_with(
        &o,
        Some("hostile.echo"),
        &["hostile fe.0.0020: tag: expected 'zv-hostile', got 'not-hostile' (not ours: left untouched)"],
    );
    check(
        &o,
        o.peers[0].figure("requests") == Some(0.0),
        "the back-end to have seen no request",
    );
    went_on(&o);
}

/// Beside a real share: the virtio-fs suite works on the share only, the
/// echo on the hostile device only.
#[test]
fn a_real_share_beside_it_is_the_file_systems_alone() {
    if let Err(why) = virtiofsd() {
        eprintln!("hostile-beside-share: not booted: {why}");
        return;
    }
    let Some(s) = hostile_scenario("hostile-beside-share", Hostile::new(BUS)) else {
        return;
    };
    let s = s.virtio_fs(VirtioFs::new("fe.0.0010", "zvtest-fs"));
    let o = boot(&s, &elf());
    assert_pass(&o);
    for c in [
        "fs.config",
        "fs.read",
        "fs.stress",
        "hostile.echo",
        "timer.cpu-timer",
    ] {
        check_ran(&o, c);
    }
    let console = o.console();
    check(
        &o,
        console.contains("# fs fe.0.0010: tag 'zvtest-fs'") && !console.contains("# fs fe.0.0020"),
        "the virtio-fs suite on the share only",
    );
    check(
        &o,
        console.contains("# hostile fe.0.0020: 256 requests echoed in batches")
            && !console.contains("# hostile fe.0.0010"),
        "the echo on the hostile device only",
    );
}

/// A lie in the stress phase (request 400: the interrupt phase's 144th)
/// is named by the stress engine, with its request number.
#[test]
fn a_lie_under_stress_is_named_by_the_engine() {
    let Some(s) = hostile_scenario(
        "hostile-stress-lie",
        Hostile::new(BUS).lie(Lie::IdNotInFlight, 400),
    ) else {
        return;
    };
    let o = boot(&s, &elf());
    let said = lied(&o);
    let id = id_in(&said);
    fails_with(
        &o,
        Some("hostile.echo"),
        &[&format!("hostile fe.0.0020 request1 interrupts: request 144 (seed 0x5eed): virtqueue: device returned id {id}, which is not a chain in flight; queue marked broken")],
    );
    check(
        &o,
        !o.console().contains("# hostile fe.0.0020 request1 polled"),
        "no polled phase on the broken queue",
    );
    went_on(&o);
}

/// Two request queues, the first lies: it is broken, the second still
/// echoes in batches and under stress.
#[test]
fn a_broken_queue_leaves_the_other_queue_working() {
    let Some((o, said)) = lie_on(
        "hostile-two-queues",
        Hostile::new(BUS).request_queues(2),
        Lie::IdOutOfRange,
    ) else {
        return;
    };
    assert!(said.starts_with("request 13: used id 128 "), "{said}");
    fails_with(
        &o,
        Some("hostile.echo"),
        &["hostile fe.0.0020 queue 1: used entry 13 (seed 0x5eed): virtqueue: device returned id 128, but the queue has only 128 entries; queue marked broken"],
    );
    let console = o.console();
    check(
        &o,
        console.contains("# hostile fe.0.0020 request2 interrupts: 256 requests, ")
            && console.contains("# hostile fe.0.0020 request2 polled: 256 requests, ")
            && !console.contains("# hostile fe.0.0020 request1 "),
        "stress on queue 2 only",
    );
    check(
        &o,
        console
            .contains("# hostile fe.0.0020: 269 requests echoed in batches on 2 request queues, "),
        "13 batch echoes on queue 1 and 256 on queue 2",
    );
    check(
        &o,
        !failure_text(&o).contains("queue 2"),
        "no failure on queue 2",
    );
    went_on(&o);
}

#[test]
fn a_used_index_going_backwards_is_named() {
    let Some((o, said)) = lie("hostile-index-backwards", Lie::IndexBackwards) else {
        return;
    };
    assert!(
        said.starts_with("request 13: used index moved back by 64, 13 -> 65485"),
        "{said}"
    );
    // Back by 64 is, modulo 2^16, far ahead of what is in flight.
    fails_with(
        &o,
        Some("hostile.echo"),
        &[
            "hostile fe.0.0020 queue 1: used entry ",
            " (seed 0x5eed): virtqueue: used index 6548",
            " past the last one seen (",
            " chains are in flight; queue marked broken",
        ],
    );
    went_on(&o);
}

/// The back-end's request 773: the interrupt phase's request 5 (after
/// 256 in batches and 2 x 256 under stress).
const IN_IRQ_PHASE: u64 = 773;

/// One call-eventfd write with nothing used (the chain held): named with
/// the request in flight and the used index, the queue broken, the run
/// goes on.
#[test]
fn an_interrupt_with_nothing_used_is_named() {
    let Some(s) = hostile_scenario(
        "hostile-irq-nothing-used",
        Hostile::new(BUS).lie(Lie::InterruptNothingUsed, IN_IRQ_PHASE),
    ) else {
        return;
    };
    let o = boot(&s, &elf());
    let said = lied(&o);
    assert!(
        said.starts_with("request 773: signalled with nothing used, id "),
        "{said}"
    );
    fails_with(
        &o,
        Some("hostile.echo"),
        &["hostile fe.0.0020 queue 1: interrupt with nothing used (used index 5, as before) while request 5 was in flight (seed 0x5eed); queue marked broken"],
    );
    check(
        &o,
        !failure_text(&o).contains("notification storm"),
        "one interrupt, not a storm",
    );
    nothing_more_after_the_lie(&o);
    went_on(&o);
}

/// The call eventfd written in a tight loop for 300 ms: QEMU collapses
/// the writes, the firmware sees one interrupt per indicator it clears,
/// counts them for 20 ms, names the storm, and the run ends in bounded
/// time.
#[test]
fn a_notification_storm_is_named_and_outlived() {
    let Some(s) = hostile_scenario(
        "hostile-irq-storm",
        Hostile::new(BUS).lie(Lie::NotificationStorm, IN_IRQ_PHASE),
    ) else {
        return;
    };
    let o = boot(&s, &elf());
    let said = lied(&o);
    assert!(said.starts_with("request 773: signalled "), "{said}");
    let text = failure_text(&o);
    fails_with(
        &o,
        Some("hostile.echo"),
        &[
            "hostile fe.0.0020 queue 1: ",
            " interrupts with nothing used within 20 ms (a notification storm), the first while request 5 was in flight (used index 5) (seed 0x5eed); queue marked broken",
        ],
    );
    let n: u32 = text
        .split("hostile fe.0.0020 queue 1: ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    check(
        &o,
        n >= 2,
        &format!("more than one interrupt counted: {text}"),
    );
    check(
        &o,
        o.duration < std::time::Duration::from_secs(60),
        &format!("the run to end in bounded time ({:?})", o.duration),
    );
    nothing_more_after_the_lie(&o);
    went_on(&o);
}

/// The broken queue got nothing after the lie: the back-end took 768
/// requests before the interrupt phase and its requests 0 to 5 (the
/// lie's, held), none more.
fn nothing_more_after_the_lie(o: &Run) {
    check(
        o,
        o.peers[0].figure("requests") == Some(774.0),
        "the back-end to have taken 774 requests (nothing after the lie)",
    );
}

/// On a packed ring (`packed=on`, the back-end offering it) the behaving
/// device passes the same echo.
#[test]
fn a_behaving_packed_device_echoes_every_byte() {
    let Some(s) = hostile_scenario("hostile-packed-echo", Hostile::new(BUS).packed()) else {
        return;
    };
    let o = boot(&s, &elf());
    assert_pass(&o);
    check_ran(&o, "hostile.echo");
    went_on(&o);
    let console = o.console();
    check(
        &o,
        console.contains("# hostile fe.0.0020: packed rings\n")
            && console.contains(
                "# hostile fe.0.0020: 256 requests echoed in batches on 1 request queues, ",
            )
            && console.contains(" 0 in flight at the end; 512 echoed under stress"),
        "the packed echo lines",
    );
    check(
        &o,
        o.peers[0].lines.iter().any(|l| l == "packed rings")
            && o.peers[0].figure("requests") == Some(784.0),
        "the back-end to have served 784 requests on packed rings (768, then 16 one at a time)",
    );
}

/// A lie told on a packed ring.
fn packed_lie(name: &str, l: Lie) -> Option<(Run, String)> {
    lie_on(name, Hostile::new(BUS).packed(), l)
}

/// The number after `word` in what the back-end said.
fn number_after(said: &str, word: &str) -> String {
    said.split(word)
        .nth(1)
        .and_then(|r| r.split([' ', ',', ')']).next())
        .unwrap_or_else(|| panic!("no {word:?} in {said:?}"))
        .to_string()
}

#[test]
fn a_packed_used_id_past_the_queue_is_named() {
    let Some((o, said)) = packed_lie("hostile-packed-id-out-of-range", Lie::IdOutOfRange) else {
        return;
    };
    assert!(said.starts_with("request 13: used id 128 "), "{said}");
    let slot = number_after(&said, "at ring index ");
    fails_with(
        &o,
        Some("hostile.echo"),
        &[&format!("hostile fe.0.0020 queue 1: used entry 13 (seed 0x5eed): virtqueue: packed descriptor {slot} (flags 0x8080): id: expected below the queue size 128, got 128; queue marked broken")],
    );
    went_on(&o);
}

#[test]
fn a_packed_used_id_not_in_flight_is_named() {
    let Some((o, said)) = packed_lie("hostile-packed-id-not-in-flight", Lie::IdNotInFlight) else {
        return;
    };
    let (id, slot) = (id_in(&said), number_after(&said, "at ring index "));
    // Requests 13, 14 and 15 of the batch are in flight.
    fails_with(
        &o,
        Some("hostile.echo"),
        &[&format!("hostile fe.0.0020 queue 1: used entry 13 (seed 0x5eed): virtqueue: packed descriptor {slot} (flags 0x8080): id: expected one of the 3 chains in flight, got {id}, which is none of them; queue marked broken")],
    );
    went_on(&o);
}

#[test]
fn a_packed_used_descriptor_of_the_previous_lap_is_named() {
    let Some((o, said)) = packed_lie("hostile-packed-wrong-wrap", Lie::PackedWrongWrap) else {
        return;
    };
    // "request 13: used descriptor for id I at ring index S with flags 0x0 (...)"
    let (id, slot) = (
        number_after(&said, "for id "),
        number_after(&said, "at ring index "),
    );
    assert!(said.contains(" with flags 0x0 "), "{said}");
    fails_with(
        &o,
        Some("hostile.echo"),
        &[&format!("hostile fe.0.0020 queue 1: used entry 13 (seed 0x5eed): virtqueue: packed descriptor {slot} (id {id}): flags: expected 0x8080 (used) or 0x80 (still available) with wrap counter 1, got 0x0 (avail 0, used 0): neither available nor used in this lap (3 chains in flight); queue marked broken")],
    );
    went_on(&o);
}

/// The used position skipping ahead leaves ours looking available, which
/// alone is a wait; the ring names the skip when the wait ends.
#[test]
fn a_packed_used_position_skipping_ahead_is_named() {
    let Some((o, said)) = packed_lie("hostile-packed-skip", Lie::PackedUsedSkipsAhead) else {
        return;
    };
    // "request 13: used descriptor for id I at ring index T, ring index S skipped"
    let (id, to) = (
        number_after(&said, "for id "),
        number_after(&said, "at ring index "),
    );
    let skipped = number_after(&said, ", ring index ");
    fails_with(
        &o,
        Some("hostile.echo"),
        &[&format!("hostile fe.0.0020 queue 1: used entry 13 (seed 0x5eed): virtqueue: the device's used position skipped ahead: expected the next used descriptor at {skipped}, which is still available, got one at {to} (id {id}, flags 0x8080); queue marked broken")],
    );
    went_on(&o);
}

/// The byte the back-end inverted past the ring: "... inverted: 0x3c -> 0xc3 (...)".
fn ring_bytes_in(said: &str) -> (u8, u8) {
    let tail = said
        .split("inverted: ")
        .nth(1)
        .unwrap_or_else(|| panic!("{said}"));
    let mut words = tail.split(' ');
    let hex = |x: Option<&str>| {
        u8::from_str_radix(
            x.unwrap_or_else(|| panic!("{said}"))
                .trim_start_matches("0x"),
            16,
        )
        .unwrap()
    };
    let was = hex(words.next());
    assert_eq!(words.next(), Some("->"), "{said}");
    (was, hex(words.next()))
}

fn a_write_past_the_ring(name: &str, h: Hostile, area: &str) {
    let Some((o, said)) = lie_on(name, h, Lie::WritesPastRing) else {
        return;
    };
    assert!(
        said.starts_with(&format!("request 13: the byte past the {area} (")),
        "{said}"
    );
    let (was, now) = ring_bytes_in(&said);
    // Found after request 13's batch (requests 8 to 15).
    fails_with(
        &o,
        Some("hostile.echo"),
        &[&format!("hostile fe.0.0020 queue 1: ring canary after the device area byte 0: expected {was}, got {now} after request 15 (seed 0x5eed); queue marked broken")],
    );
    went_on(&o);
}

#[test]
fn a_write_past_the_used_ring_hits_the_ring_canary() {
    a_write_past_the_ring("hostile-writes-past-ring", Hostile::new(BUS), "used ring");
}

#[test]
fn a_write_past_the_packed_device_area_hits_the_ring_canary() {
    a_write_past_the_ring(
        "hostile-packed-writes-past-ring",
        Hostile::new(BUS).packed(),
        "device area",
    );
}

/// A packed chain that never comes back leaves its descriptor looking
/// available, as one not yet used does: the wait ends in the timeout
/// naming the queue, not a hang.
#[test]
fn a_packed_buffer_never_returned_ends_in_the_timeout() {
    let Some((o, said)) = packed_lie("hostile-packed-never-returned", Lie::NeverReturned) else {
        return;
    };
    assert!(said.starts_with("request 13: id "), "{said}");
    fails_with(
        &o,
        Some("hostile.echo"),
        &["hostile fe.0.0020 queue 1: used entry 15 (seed 0x5eed): queue 1: no used buffer within the timeout (1 in flight); queue marked broken"],
    );
    went_on(&o);
}

/// A store just past a stress request's chain: the back-end's request
/// 261 is the stress's request 5 of its interrupt phase (after the 256
/// batch echoes). The engine's guard after the chain names it (request,
/// place, byte, expected, got), the queue is marked broken, the run goes
/// on; and the console holds what the QEMU-fault scenarios assert is
/// absent (`common::stray_write`), so that assertion can fail.
#[test]
fn a_write_past_a_stress_chain_hits_its_guard() {
    let Some(s) = hostile_scenario(
        "hostile-writes-past-chain",
        Hostile::new(BUS).lie(Lie::WritesPastBuffer, 256 + 5),
    ) else {
        return;
    };
    let o = boot(&s, &elf());
    let said = lied(&o);
    let (was, now) = bytes_in(&said);
    check(
        &o,
        said.starts_with("request 261: the byte past the writable buffer "),
        &format!("the back-end to invert the guard's first byte: {said}"),
    );
    fails_with(
        &o,
        Some("hostile.echo"),
        &[&format!("hostile fe.0.0020 request1 interrupts: request 5 (seed 0x5eed): the device wrote outside the chain's buffers: the canary after the chain byte 0: expected 0x{was:02x}, got 0x{now:02x}; queue marked broken")],
    );
    check(
        &o,
        common::stray_write(&o.console()).is_some(),
        "the stray store visible to common::check_no_stray_writes",
    );
    went_on(&o);
}
