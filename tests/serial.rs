//! virtio-serial with its ports on sockets the runner serves: several
//! named ports and a console, MULTIPORT control protocol, both streams
//! of every port checked at both ends, the emergency write, a port the
//! host closes mid-run; `max_ports=1` (port 0 alone). And the proofs that
//! the checks can fail: a peer that flips a byte, one that drops bytes,
//! one that closes early, and a wrong port-name expectation.

mod common;

use common::{assert_pass, boot, check, check_ran, elf, failure_text, scenario};
use qemu_runner::serial::{Fault, SerialPorts};
use qemu_runner::{Run, Scenario};

const BUS: &str = "fe.0.0003";

fn ports() -> SerialPorts {
    SerialPorts::new(BUS)
        .max_ports(4)
        .emergency_write(true)
        .bytes(16 << 10)
        .console(0, Some("zv.console"))
        .port(1, "org.zvtest.one")
        .port(2, "org.zvtest.two")
        .port(3, "org.zvtest.three")
        .close(3)
}

fn serial(name: &str, ports: SerialPorts) -> Scenario {
    scenario(name).virtio_serial(ports).append("only=serial")
}

#[track_caller]
fn fails_with(o: &Run, check_name: &str, says: &[&str]) {
    check(o, !o.passed(), "a failing verdict");
    let r = o.tap.result(check_name);
    check(
        o,
        r.is_some_and(|r| !r.ok),
        &format!("{check_name} to fail"),
    );
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
    let log = o.console();
    for port in 0..4 {
        for dir in ["rx", "tx"] {
            check(
                &o,
                log.contains(&format!("# serial {BUS} port{port} {dir}: ")),
                &format!("a figures line for port {port} {dir}"),
            );
        }
    }
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
        log.contains(&format!("# serial {BUS} port0 rx: "))
            && log.contains(&format!("# serial {BUS} port0 tx: ")),
        "port 0's two figures lines",
    );
    check(
        &o,
        log.contains(&format!("# zvtest: serial stress {BUS} 24576"))
            && o.peers[0].figure("port0_rx_bytes_sent") == Some(24576.0),
        "streams of bytes= times stress=, the peer's too",
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
    fails_with(
        &o,
        "serial.stress",
        &["port 2 rx: byte at stream offset 5000", "seed="],
    );
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
    fails_with(
        &o,
        "serial.stress",
        &["the host closed port 2 (PORT_OPEN 0) with tx at"],
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
        .append("skip=serial.stress,serial.emergency"),
        &elf(),
    );
    fails_with(
        &o,
        "serial.close",
        &["port 3 closed by the host", "no PORT_OPEN 0 within 5 s"],
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
