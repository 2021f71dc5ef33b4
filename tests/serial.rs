//! virtio-serial with its ports on sockets the runner serves: several
//! named ports and a console, MULTIPORT control protocol, both streams
//! of every port checked at both ends, the emergency write, a port the
//! host closes mid-run; `max_ports=1` (port 0 alone). And the proofs that
//! the checks can fail: a peer that flips a byte, one that drops bytes,
//! one that closes early, and a wrong port-name expectation. A port whose
//! host side drops and reconnects (expected: `drop=`): the streams resume
//! and are checked; one that never comes back; a wrong byte after it.

use crate::common;

use common::{assert_pass, boot, check, check_ran, elf, fails_with, scenario};
use qemu_runner::serial::{Fault, SerialPorts};
use qemu_runner::Scenario;
use zvtest_contract::serial::{Dir, Stream};

const BUS: &str = "fe.0.0003";

fn ports() -> SerialPorts {
    SerialPorts::new(BUS)
        .max_ports(4)
        .emergency_write(true)
        .bytes(16 << 10)
        .packed(true)
        .console(0, Some("zv.console"))
        .port(1, "org.zvtest.one")
        .port(2, "org.zvtest.two")
        .port(3, "org.zvtest.three")
        .close(3)
}

fn serial(name: &str, ports: SerialPorts) -> Scenario {
    scenario(name).virtio_serial(ports).append("only=serial")
}

#[test]
fn named_ports_and_a_console_pass() {
    let o = boot(&serial("serial-ports", ports()), &elf());
    assert_pass(&o);
    for c in [
        "serial.config",
        "serial.control",
        "serial.stress",
        "serial.emergency",
        "serial.close",
    ] {
        check_ran(&o, c);
    }
    check(
        &o,
        o.tap.result("serial.hotplug").is_some_and(|r| r.is_skip()),
        "serial.hotplug skipped: nothing asks for it",
    );
    let log = o.console();
    for port in 0..4 {
        for dir in ["rx", "tx"] {
            check(
                &o,
                log.contains(&format!("# serial {BUS} port{port} {dir} rev 2 packed ")),
                &format!("a figures line for port {port} {dir}"),
            );
        }
    }
    // Every setup the device takes (packed=on: all 14), each its own
    // segment of the streams.
    check(
        &o,
        log.contains(&format!(
            "# zvtest: serial stress {BUS} 1170 rev 2 split event-idx classic interrupts"
        )) && log.contains(&format!(
            "# zvtest: serial stress {BUS} 16384 rev 0 split classic polled"
        )) && log.matches("# zvtest: serial stress ").count() == 14,
        "a stress round for each of the 14 setups",
    );
    check(
        &o,
        log.contains("PORT_NAME(2)=org.zvtest.two") && log.contains("CONSOLE_PORT(0)=1"),
        "the control messages in the log",
    );
    let peer = &o.peers[0];
    check(
        &o,
        peer.figure("port1_tx_bytes") == Some(16384.0),
        "the peer to have every byte port 1 sent",
    );
    check(
        &o,
        peer.figure("port0_tx_bytes") == Some(16384.0 + 16.0),
        "the console's peer to have the stream and the 16 emergency bytes",
    );
}

#[test]
fn one_port_without_multiport_carries_both_ways() {
    let ports = SerialPorts::new(BUS)
        .max_ports(1)
        .bytes(8 << 10)
        .console(0, None);
    // stress=3: three times bytes= each way.
    let o = boot(&serial("serial-port0", ports).append("stress=3"), &elf());
    assert_pass(&o);
    check_ran(&o, "serial.config");
    check_ran(&o, "serial.stress");
    check(
        &o,
        o.tap.result("serial.control").is_some_and(|r| r.is_skip()),
        "serial.control skipped: no control queues without MULTIPORT",
    );
    let log = o.console();
    check(
        &o,
        log.contains(&format!(
            "# serial {BUS} port0 rx rev 0 split classic polled: "
        )) && log.contains(&format!(
            "# serial {BUS} port0 tx rev 2 split event-idx adapter interrupts: "
        )),
        "port 0's two figures lines",
    );
    check(
        &o,
        log.contains(&format!("# zvtest: serial stress {BUS} 24576"))
            && o.peers[0].figure("port0_rx_bytes_sent") == Some(24576.0),
        "streams of bytes= times stress=, the peer's too",
    );
    // Without packed=on the packed rounds are left out, and said to be.
    check(
        &o,
        log.matches("# zvtest: serial stress ").count() == 8
            && log.contains("not offered: rev 2 packed event-idx classic interrupts"),
        "8 rounds, the packed ones named as not offered",
    );
}

#[test]
fn a_flipped_byte_is_named_by_port_direction_and_offset() {
    let o = boot(
        &serial(
            "serial-flip",
            ports().fault(Fault::Flip {
                port: 2,
                offset: 5000,
            }),
        ),
        &elf(),
    );
    // 16 KiB over 14 setups: offset 5000 is in the fifth round's segment.
    fails_with(
        &o,
        "serial.stress",
        &[
            "rev 2 split classic polled: port 2 rx: byte at stream offset 5000",
            "seed=",
        ],
    );
}

/// A flipped byte in a packed-ring round and in a legacy (revision 0)
/// round: each named with its setup.
#[test]
fn flips_in_packed_and_legacy_rounds_name_the_setup() {
    for (offset, setup) in [
        (13_000, "rev 2 packed adapter interrupts"),
        (15_500, "rev 0 split classic polled"),
    ] {
        let o = boot(
            &serial(
                &format!("serial-flip-{offset}"),
                ports().fault(Fault::Flip { port: 1, offset }),
            ),
            &elf(),
        );
        fails_with(
            &o,
            "serial.stress",
            &[&format!(
                "{setup}: port 1 rx: byte at stream offset {offset}"
            )],
        );
    }
}

#[test]
fn dropped_bytes_are_named() {
    let o = boot(
        &serial(
            "serial-drop",
            ports().fault(Fault::Drop {
                port: 1,
                offset: 777,
                len: 3,
            }),
        ),
        &elf(),
    );
    fails_with(
        &o,
        "serial.stress",
        &["port 1 rx: byte at stream offset 777"],
    );
}

#[test]
fn a_peer_that_closes_early_fails_without_a_hang() {
    let o = boot(
        &serial(
            "serial-close-early",
            ports().fault(Fault::CloseEarly {
                port: 2,
                after: 3000,
            }),
        ),
        &elf(),
    );
    common::check_no_stray_writes(&o);
    fails_with(
        &o,
        "serial.stress",
        &[
            "the host closed port 2 (PORT_OPEN 0) with tx at",
            " bytes (port 2 (org.zvtest.two): ",
            " buffers in flight, ",
        ],
    );
    check(
        &o,
        o.tap.summary.is_some(),
        "a complete report (no hang, no timeout)",
    );
    let reasons = o.verdict.reasons.join("\n");
    check(
        &o,
        reasons.contains("port 2 (org.zvtest.two) tx (guest to host): ")
            && reasons.contains("before this peer closed the port early"),
        "the peer to name what it did not get from port 2",
    );
}

#[test]
fn a_port_left_open_fails_the_close_check() {
    let o = boot(
        &serial(
            "serial-keep-open",
            ports().fault(Fault::KeepOpen { port: 3 }),
        )
        .append("skip=serial.stress,serial.emergency host-wait=1500"),
        &elf(),
    );
    fails_with(
        &o,
        "serial.close",
        &["port 3 closed by the host", "no PORT_OPEN 0 within 1500 ms"],
    );
}

/// The firmware told a `max_ports` the device does not have.
#[test]
fn a_wrong_max_ports_fails_the_config_check() {
    let mut s = scenario("serial-wrong-max")
        .virtio_serial(ports())
        .append("only=serial.config");
    let word = ports().word();
    for w in &mut s.append {
        if *w == word {
            *w = word.replace("max=4", "max=8");
        }
    }
    let o = boot(&s, &elf());
    fails_with(&o, "serial.config", &["fe.0.0003 max_nr_ports", "8", "4"]);
}

#[test]
fn a_wrong_port_name_fails_the_control_check() {
    // The device's port 2 is called org.zvtest.two; the firmware is told
    // org.zvtest.other.
    let s = scenario("serial-wrong-name")
        .virtio_serial(ports())
        .append("only=serial.control");
    let word = ports().word();
    let wrong = word.replace("p2=org.zvtest.two", "p2=org.zvtest.other");
    let mut s = s;
    for w in &mut s.append {
        if *w == word {
            *w = wrong.clone();
        }
    }
    let o = boot(&s, &elf());
    fails_with(
        &o,
        "serial.control",
        &["port 2 PORT_NAME", "org.zvtest.other", "org.zvtest.two"],
    );
}

fn hot_ports() -> SerialPorts {
    SerialPorts::new(BUS)
        .max_ports(8)
        .console(0, Some("zv.console"))
        .port(1, "org.zvtest.one")
        .port(2, "org.zvtest.two")
        .unplug(2)
        .plug(5, "org.zvtest.hot")
}

/// Port 2 unplugged over QMP at the firmware's marker gives PORT_REMOVE
/// for port 2; port 5 plugged gives PORT_ADD, its name and PORT_OPEN, and
/// carries bytes the peer checks.
#[test]
fn ports_unplugged_and_plugged_are_announced() {
    let o = boot(&serial("serial-hotplug", hot_ports()), &elf());
    assert_pass(&o);
    check_ran(&o, "serial.hotplug");
    check_ran(&o, "serial.stress");
    let log = o.console();
    check(
        &o,
        log.contains("port 2: PORT_REMOVE(2)=1")
            && log.contains("port 5: PORT_ADD ")
            && log.contains("PORT_NAME(5)=org.zvtest.hot PORT_OPEN(5)=1"),
        "PORT_REMOVE for port 2, then port 5's PORT_NAME and PORT_OPEN",
    );
    check(
        &o,
        o.peers[0].figure("port5_tx_bytes") == Some(64.0),
        "the peer to have the 64 bytes written to the plugged port",
    );
}

/// The firmware told to expect port 2's removal, and nobody removes it.
#[test]
fn a_removal_that_never_comes_fails_naming_the_port() {
    let mut s = scenario("serial-no-unplug")
        .virtio_serial(hot_ports())
        .append("only=serial.hotplug host-wait=1500");
    s.line_commands.clear();
    let o = boot(&s, &elf());
    fails_with(
        &o,
        "serial.hotplug",
        &[
            "port 2 unplugged by the host",
            "PORT_REMOVE for port 2",
            "none within 1500 ms of the marker",
        ],
    );
}

/// The firmware told to expect port 1's removal; the host removes port 2.
#[test]
fn the_wrong_port_removed_is_named() {
    let mut s = scenario("serial-wrong-unplug")
        .virtio_serial(hot_ports())
        .append("only=serial.hotplug");
    // (On QEMU 11 the word also says emerg: the device always offers it.)
    for w in &mut s.append {
        if w.starts_with("serial=") {
            *w = w.replace("unplug=2", "unplug=1");
        }
    }
    for c in &mut s.line_commands {
        if c.line.ends_with("unplug fe.0.0003 2") {
            c.line = c.line.replace(" 2", " 1");
        }
    }
    let o = boot(&s, &elf());
    fails_with(
        &o,
        "serial.hotplug",
        &["port 1 unplugged by the host", "PORT_REMOVE for port 2"],
    );
}

/// The firmware sends one wrong byte (`corrupt=`, test only): its own
/// checks all pass (it cannot see what the host got), and the peer's
/// check fails the run naming port, direction, offset, expected and got.
#[test]
fn a_wrong_byte_from_the_guest_is_named_by_the_peer() {
    let seed = 0x5e1a1;
    let s = serial("serial-guest-corrupt", ports().corrupt(2, 6000)).seed(seed);
    let o = boot(&s, &elf());
    check(&o, !o.passed(), "a failing verdict");
    check(
        &o,
        o.tap.summary.is_some()
            && o.tap
                .result("serial.stress")
                .is_some_and(|r| r.ok && !r.is_skip()),
        "every firmware check, serial.stress too, to pass",
    );
    let want = Stream::new(seed, BUS.parse().unwrap(), 2, Dir::Tx).byte(6000);
    let reason = format!(
        "port 2 (org.zvtest.two) tx (guest to host): byte at stream offset 6000 expected {:#04x} got {:#04x} (seed={seed:#x})",
        want, !want
    );
    let reasons = o.verdict.reasons.join("\n");
    check(
        &o,
        reasons.contains(&reason),
        &format!("the peer's reason {reason:?}"),
    );
}

/// The plugged port's name is not the one the firmware was told.
#[test]
fn a_plugged_port_with_another_name_fails() {
    let mut s = scenario("serial-plug-name")
        .virtio_serial(hot_ports())
        .append("only=serial.hotplug");
    for w in &mut s.append {
        if w.starts_with("serial=") {
            *w = w.replace("plug=5=org.zvtest.hot", "plug=5=org.zvtest.cold");
        }
    }
    let o = boot(&s, &elf());
    fails_with(
        &o,
        "serial.hotplug",
        &[
            "port 5 PORT_NAME after PORT_READY",
            "org.zvtest.cold",
            "org.zvtest.hot",
        ],
    );
}

/// A wrong byte written to the plugged port (`corrupt=`, test only): the
/// peer names it.
#[test]
fn a_wrong_byte_on_the_plugged_port_is_named_by_the_peer() {
    let seed = 0x9a7;
    let s = scenario("serial-plug-corrupt")
        .virtio_serial(hot_ports().corrupt(5, 10))
        .append("only=serial.hotplug")
        .seed(seed);
    let o = boot(&s, &elf());
    check(&o, !o.passed(), "a failing verdict");
    check_ran(&o, "serial.hotplug");
    let want = Stream::new(seed, BUS.parse().unwrap(), 5, Dir::Tx).byte(10);
    let reason = format!(
        "port 5 (org.zvtest.hot) tx (guest to host): byte at stream offset 10 expected {:#04x} got {:#04x}",
        want, !want
    );
    let reasons = o.verdict.reasons.join("\n");
    check(
        &o,
        reasons.contains(&reason),
        &format!("the peer's reason {reason:?}"),
    );
}

/// The firmware asks for no interrupts but waits for them (`mute`, test
/// only; it then waits before every look at the rings, so a fast host
/// cannot finish a round without one): the first interrupt round fails,
/// naming its setup and the port.
#[test]
fn buffers_returned_without_an_interrupt_fail_the_round() {
    let o = boot(
        &serial("serial-mute", ports().mute_interrupts()).append("skip=serial.close"),
        &elf(),
    );
    fails_with(
        &o,
        "serial.stress",
        &[
            " interrupts: port ",
            "buffers returned, but no interrupt came for them within 2000 ms",
        ],
    );
}

/// The drop marker's offsets, `tx D rx R`, from the console.
fn drop_marker(log: &str) -> Option<(u64, u64)> {
    let line = log
        .lines()
        .find(|l| l.starts_with(&format!("# zvtest: serial drop {BUS} 2 ")))?;
    let w: Vec<&str> = line.split(' ').collect();
    Some((w[7].parse().ok()?, w[9].parse().ok()?))
}

/// Port 2's peer drops its connection once 5000 bytes came from the
/// guest, and QEMU connects again (its chardev's reconnect); the firmware,
/// told to expect it (`drop=2`), names the drop and the offsets, resumes
/// both streams there once PORT_OPEN 1 came, and passes; the peer names
/// the bytes lost in the drop and checks everything after the resume.
#[test]
fn a_port_dropped_and_reconnected_resumes_its_streams() {
    let o = boot(
        &serial("serial-drop-reconnect", ports().drop_and_reconnect(2, 5000)),
        &elf(),
    );
    common::check_no_stray_writes(&o);
    assert_pass(&o);
    check_ran(&o, "serial.stress");
    let log = o.console();
    let marker = drop_marker(&log);
    check(&o, marker.is_some(), "the drop marker with both offsets");
    let (tx, rx) = marker.unwrap_or_default();
    check(
        &o,
        log.contains(&format!(
            "# serial {BUS} port 2 (org.zvtest.two) dropped by the host: tx at {tx} ("
        )) && log.contains(&format!(", rx at {rx} ("))
            && log.contains(&format!(
                "# serial {BUS} port 2 (org.zvtest.two) back (PORT_OPEN 1) after "
            ))
            && log.contains(&format!(": tx resumes at {tx}, rx at {rx};")),
        "the firmware's lines naming the drop and the resume",
    );
    check(
        &o,
        log.contains(&format!(
            "port 2 (org.zvtest.two) dropped by the host at tx {tx} ("
        )) && log.contains("both streams resumed there"),
        "serial.stress's note naming the drop",
    );
    let peer = &o.peers[0];
    check(
        &o,
        (5000..=16384).contains(&tx)
            && peer.lines.iter().any(|l| {
                l.contains("port 2 (org.zvtest.two): dropped on purpose once 5000 bytes had come (")
                    && l.contains(&format!(
                    "resumed tx at {tx} ({} bytes lost in the drop, offsets 5000 to {tx}) and rx at {rx}",
                    tx - 5000
                )) && l.contains("QEMU reconnected")
            }),
        "the peer's line naming the drop, the bytes lost and the resume",
    );
    // Every byte after the resume came, and was the stream's.
    check(
        &o,
        peer.figure("port2_tx_bytes") == Some((5000 + 16384 - tx) as f64)
            && peer.figure("port2_rx_bytes_sent") == Some(16384.0),
        "port 2's stream up to the drop and from the resume to its end, both ways",
    );
}

/// The drop expected, but QEMU cannot connect again (the socket is gone):
/// the firmware waits the `host-wait=` it was given (its own is 10 s) and
/// fails naming the port and the offsets.
#[test]
fn a_dropped_port_that_never_comes_back_fails_naming_it() {
    let o = boot(
        &serial(
            "serial-drop-gone",
            ports()
                .drop_and_reconnect(2, 5000)
                .fault(Fault::NoReconnect { port: 2 }),
        )
        .append("skip=serial.close,serial.emergency host-wait=1500"),
        &elf(),
    );
    let (tx, rx) = drop_marker(&o.console()).unwrap_or_default();
    fails_with(
        &o,
        "serial.stress",
        &[
            &format!("the host closed port 2 (PORT_OPEN 0) with tx at {tx} and rx at {rx} of "),
            " bytes (port 2 (org.zvtest.two): ",
            " tx bytes in ",
            "and it did not come back (no PORT_OPEN 1) within 1500 ms",
        ],
    );
    check(
        &o,
        o.tap.summary.is_some(),
        "a complete report (no hang, no timeout)",
    );
}

/// After the drop and the resume a wrong byte is still caught, each way:
/// one flipped by the peer (the firmware names it), one sent wrong by the
/// firmware (`corrupt=`; the peer names it).
#[test]
fn a_wrong_byte_after_the_resume_is_caught() {
    let seed = 0xd209;
    let o = boot(
        &serial(
            "serial-drop-flip",
            ports()
                .drop_and_reconnect(2, 5000)
                .fault(Fault::Flip {
                    port: 2,
                    offset: 15_000,
                })
                .corrupt(2, 14_000),
        )
        .seed(seed),
        &elf(),
    );
    check(
        &o,
        o.console().contains(&format!(
            "# serial {BUS} port 2 (org.zvtest.two) back (PORT_OPEN 1)"
        )),
        "the drop and the resume before the wrong bytes",
    );
    fails_with(
        &o,
        "serial.stress",
        &["port 2 rx: byte at stream offset 15000", "seed="],
    );
    let want = Stream::new(seed, BUS.parse().unwrap(), 2, Dir::Tx).byte(14_000);
    let reason = format!(
        "port 2 (org.zvtest.two) tx (guest to host): byte at stream offset 14000 expected {:#04x} got {:#04x} (seed={seed:#x})",
        want, !want
    );
    let reasons = o.verdict.reasons.join("\n");
    check(
        &o,
        reasons.contains(&reason),
        &format!("the peer's reason {reason:?}"),
    );
}

/// The firmware told a drop is coming (`drop=2`), and the host never
/// drops: serial.stress fails saying so.
#[test]
fn a_drop_that_never_comes_fails() {
    let mut s = scenario("serial-drop-none")
        .virtio_serial(ports())
        .append("only=serial.stress");
    for w in &mut s.append {
        if w.starts_with("serial=") {
            *w = w.replace(":close=3:", ":close=3:drop=2:");
        }
    }
    let o = boot(&s, &elf());
    fails_with(
        &o,
        "serial.stress",
        &["drop= says the host side of port 2 drops and comes back during the streams; it never dropped"],
    );
}
