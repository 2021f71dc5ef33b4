//! virtio-net with peers: the runner's echo peer over a datagram back-end
//! (configuration, control queue, link down and up over QMP, echo frames
//! in every setup), and the same peer misbehaving on purpose (a flipped
//! byte, a dropped frame, a peer that closes early), each a failing
//! verdict that names the frame; a wrong MAC expectation; QEMU's
//! user-mode network (ARP, DHCP); a tap with several queue pairs in a
//! network namespace the runner makes.

use crate::common;

use common::{assert_pass, boot, check, check_ran, elf, failure_text, scenario};
use qemu_runner::net::{
    netdev_offered, tap_namespace_available, Backend, Echo, EchoPeer, Misbehaviour, NetScenario,
    DGRAM_PROBE, SOCKET_UDP_PROBE, USER_PROBE,
};
use qemu_runner::{Run, Scenario};

const BUS: &str = "fe.0.0002";
const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x7a, 0x76, 0x01];

fn echo(name: &str, misbehaviour: Misbehaviour) -> Scenario {
    echo_only(name, misbehaviour, "net")
}

/// The echo device, running the checks `only` selects.
fn echo_only(name: &str, misbehaviour: Misbehaviour, only: &str) -> Scenario {
    scenario(name)
        .net_echo(BUS, MAC, Echo::dgram().misbehave(misbehaviour))
        .append(format!("only={only}"))
}

#[track_caller]
fn fails_naming(o: &Run, check_name: &str, words: &[&str]) {
    check(o, !o.passed(), "a failing verdict");
    check(
        o,
        o.tap.result(check_name).is_some_and(|r| !r.ok),
        &format!("`not ok ... - {check_name}`"),
    );
    let text = failure_text(o);
    for w in words {
        check(
            o,
            text.contains(w),
            &format!("the failure to say {w:?}, not:\n{text}"),
        );
    }
}

/// The echo rounds of a device with the packed ring, by label (the
/// rounds alternate mergeable receive buffers; without `packed=on` the
/// six packed ones are not taken).
const ROUNDS: [&str; 14] = [
    "rev 2 split event-idx classic mrg interrupts",
    "rev 2 split event-idx classic polled",
    "rev 2 split event-idx adapter mrg interrupts",
    "rev 2 split classic interrupts",
    "rev 2 split classic mrg polled",
    "rev 2 split adapter interrupts",
    "rev 2 packed event-idx classic mrg interrupts",
    "rev 2 packed event-idx classic polled",
    "rev 2 packed event-idx adapter mrg interrupts",
    "rev 2 packed classic interrupts",
    "rev 2 packed classic mrg polled",
    "rev 2 packed adapter interrupts",
    "rev 0 split classic mrg interrupts",
    "rev 0 split classic polled",
];

/// The first round's label, where mergeable buffers span frames.
const FIRST: &str = ROUNDS[0];

/// The number in a QueueStats line's `N <what>` field.
fn stat(line: &str, what: &str) -> Option<u64> {
    line.split(", ")
        .find_map(|f| f.strip_suffix(what))
        .and_then(|n| n.trim().parse().ok())
}

#[test]
fn dgram_echo_passes_every_setup() {
    let o = boot(
        &scenario("net-echo")
            .net_echo(BUS, MAC, Echo::dgram().packed())
            .append("only=net")
            .net_link(BUS),
        &elf(),
    );
    assert_pass(&o);
    for c in [
        "net.config",
        "net.control",
        "net.link",
        "net.echo",
        "net.filter",
    ] {
        check_ran(&o, c);
    }
    let console = o.console();
    for setup in ROUNDS {
        for q in ["rx0", "tx0"] {
            let head = format!("# net {BUS} {q} {setup}: ");
            let line = console.lines().find(|l| l.starts_with(&head));
            check(
                &o,
                line.is_some(),
                &format!("a figures line for {q} in setup {setup}"),
            );
            // Interrupts as the round asked: the host flagged the queue
            // by interrupt, hardly ever polled.
            let flags = line.and_then(|l| stat(l, " interrupts")).unwrap_or(0);
            if setup.ends_with("polled") {
                check(&o, flags <= 34, &format!("{q} {setup}: few interrupts"));
            } else {
                check(&o, flags > 0, &format!("{q} {setup}: interrupts"));
            }
        }
    }
    check(
        &o,
        console.contains("rev 0 split classic polled: 64 frames of 60 to 1514 bytes sent")
            && console.contains("header 10 bytes"),
        "the legacy setup without MRG_RXBUF with its 10-byte header",
    );
    let peer = &o.peers[0];
    check(
        &o,
        peer.figure("frames_received") == Some(908.0)
            && peer.figure("frames_answered") == Some(908.0),
        "the peer's counts: 14 x 64 echo frames and 12 of net.filter received and answered",
    );
}

#[test]
fn a_ring_index_wraps_from_stress_10() {
    // Some 66 000 frames on pair 0 in the first setup: rx0's and tx0's
    // 16-bit available indexes pass 65535 (seconds under TCG, so only
    // from stress=10 on). A small MTU: frames of 60 to 314 bytes (still
    // longer than the 256-byte mergeable buffers of every other round),
    // as the wrap is about the indexes, not the bytes.
    let o = boot(
        &scenario("net-echo-wrap")
            .net_echo(BUS, MAC, Echo::dgram().mtu(300))
            .append("only=net.echo stress=10"),
        &elf(),
    );
    assert_pass(&o);
    let console = o.console();
    for q in ["rx0", "tx0"] {
        let head = format!("# net {BUS} {q} {FIRST} wrap: ");
        let wraps = console
            .lines()
            .find(|l| l.starts_with(&head))
            .and_then(|l| stat(l, " index wraps"));
        check(
            &o,
            wraps.is_some_and(|w| w >= 1),
            &format!("{q}'s index wrapped in the wrap round"),
        );
    }
}

#[test]
fn a_flipped_byte_is_named() {
    let o = boot(
        &echo(
            "net-echo-flip",
            Misbehaviour::Flip {
                pair: 0,
                seq: 5,
                offset: 30,
            },
        ),
        &elf(),
    );
    fails_naming(
        &o,
        "net.echo",
        &["pair 0 frame 5", "answer byte 30", "seed="],
    );
}

#[test]
fn a_dropped_frame_is_named() {
    let o = boot(
        &echo("net-echo-drop", Misbehaviour::Drop { pair: 0, seq: 7 }),
        &elf(),
    );
    fails_naming(
        &o,
        "net.echo",
        &["pair 0 frame 7", "never answered", "1 of 64"],
    );
}

#[test]
fn a_peer_that_closes_early_is_named() {
    let o = boot(
        &echo("net-echo-close", Misbehaviour::CloseAfter { answers: 10 }),
        &elf(),
    );
    fails_naming(
        &o,
        "net.echo",
        &["pair 0 frame 10", "never answered", "54 of 64"],
    );
    check(
        &o,
        o.peers[0]
            .lines
            .iter()
            .any(|l| l.contains("closed on purpose")),
        "the peer's word that it closed",
    );
}

#[test]
fn a_wrong_mac_expectation_fails_net_config() {
    let mut s = echo("net-wrong-mac", Misbehaviour::None).append("skip=net.echo");
    s.nets[0].mac = [0x52, 0x54, 0x00, 0x7a, 0x76, 0x02];
    let o = boot(&s, &elf());
    fails_naming(
        &o,
        "net.config",
        &["MAC", "52:54:00:7a:76:02", "52:54:00:7a:76:01"],
    );
}

#[test]
fn user_mode_network_answers_arp_and_dhcp() {
    let s = scenario("net-user").net_user(BUS, MAC).append("only=net");
    if let Err(why) = netdev_offered(&s, USER_PROBE) {
        eprintln!("SKIP net-user: {why}");
        return;
    }
    let o = boot(&s, &elf());
    assert_pass(&o);
    check_ran(&o, "net.user");
    check(
        &o,
        o.console()
            .contains("gateway 10.0.2.2 at 52:55:0a:00:02:02, offer of 10.0.2.15"),
        "the gateway's MAC and the address offered",
    );
}

#[test]
fn tap_with_four_queue_pairs_in_a_namespace() {
    if let Err(why) = tap_namespace_available() {
        eprintln!("SKIP net-tap-mq: cannot make a network namespace with a tap: {why}");
        return;
    }
    let o = boot(
        &scenario("net-tap-mq")
            .net_echo(BUS, MAC, Echo::tap(4))
            .append("only=net"),
        &elf(),
    );
    assert_pass(&o);
    check_ran(&o, "net.echo");
    let console = o.console();
    for q in 0..4 {
        for dir in ["rx", "tx"] {
            let head = format!("# net {BUS} {dir}{q} {FIRST}: ");
            check(
                &o,
                console
                    .lines()
                    .any(|l| l.starts_with(&head) && !l[head.len()..].starts_with("0 requests")),
                &format!("frames on {dir}{q} (every pair stressed)"),
            );
        }
    }
    check(
        &o,
        console.contains(&format!("{FIRST}: 256 frames of 60 to 1514 bytes sent"))
            && console.contains("on 4 pairs"),
        "64 frames on each of the 4 pairs",
    );
}

#[test]
fn wrong_queue_pairs_fail_net_config() {
    let mut s = echo("net-wrong-pairs", Misbehaviour::None).append("skip=net.echo");
    s.nets[0].pairs = 2;
    let o = boot(&s, &elf());
    fails_naming(
        &o,
        "net.config",
        &["queue pairs (max_virtqueue_pairs with MQ)"],
    );
}

#[test]
fn a_link_the_host_never_changes_fails_net_link() {
    // Told the link will change, but no QMP command is sent.
    let mut s = echo_only("net-link-unchanged", Misbehaviour::None, "net.link");
    s.nets[0].link = true;
    let o = boot(&s.append("host-wait=1500"), &elf());
    fails_naming(
        &o,
        "net.link",
        &[
            "configuration change for the link set down",
            "neither within 1500 ms",
        ],
    );
}

#[test]
fn a_user_network_that_is_not_there_fails_net_user() {
    // Told QEMU's user-mode network is there; the echo peer is.
    let mut s = echo_only("net-user-missing", Misbehaviour::None, "net.user");
    s.nets[0].peer = qemu_runner::net::NetPeer::User;
    let o = boot(&s.append("host-wait=1500"), &elf());
    fails_naming(
        &o,
        "net.user",
        &[
            "ARP request for the gateway 10.0.2.2",
            "no answer within 1500 ms",
        ],
    );
}

#[test]
fn jumbo_frames_where_the_mtu_allows() {
    let o = boot(
        &scenario("net-echo-mtu")
            .net_echo(BUS, MAC, Echo::dgram().mtu(9000))
            .append("only=net"),
        &elf(),
    );
    assert_pass(&o);
    check_ran(&o, "net.echo");
    let console = o.console();
    check(
        &o,
        console.contains(&format!("{FIRST}: 64 frames of 60 to 9014 bytes sent"))
            && console.contains("num_buffers up to 36"),
        "frames up to 9014 bytes, the longest in 36 receive buffers of 256 bytes",
    );
    check(
        &o,
        o.peers[0].figure("frames_received") == Some(524.0),
        "every frame at the peer",
    );
}

#[test]
fn a_wrong_mtu_expectation_fails_net_config() {
    let mut s = echo("net-wrong-mtu", Misbehaviour::None).append("skip=net.echo");
    s.nets[0].mtu = Some(1500);
    let o = boot(&s, &elf());
    fails_naming(
        &o,
        "net.config",
        &[
            "VIRTIO_NET_F_MTU and mtu",
            "MTU 1500 offered",
            "no MTU offered",
        ],
    );
}

#[test]
fn an_answer_that_passes_the_filter_is_named() {
    // The answer net.filter expects the filter to drop goes to the
    // broadcast address, which every filter takes.
    let seq = qemu_runner::net::FILTER_SEQ0 + 1;
    let o = boot(
        &echo_only(
            "net-filter-broadcast",
            Misbehaviour::Broadcast { pair: 0, seq },
            "net.filter",
        ),
        &elf(),
    );
    fails_naming(
        &o,
        "net.filter",
        &[
            "promiscuous mode off",
            &format!("the answer to frame {seq}"),
            &format!("frames [{seq}]"),
        ],
    );
}

#[test]
fn a_multicast_answer_that_passes_the_filter_is_named() {
    // The answer to a group net.filter expects dropped (all-multicast
    // off, no group in the MAC table) goes to the broadcast address.
    let seq = qemu_runner::net::FILTER_SEQ0 + 4;
    let o = boot(
        &echo_only(
            "net-filter-multicast",
            Misbehaviour::Broadcast { pair: 0, seq },
            "net.filter",
        ),
        &elf(),
    );
    fails_naming(
        &o,
        "net.filter",
        &[
            "all-multicast off, no group in the MAC table",
            &format!("the answer to frame {seq}, sent to the group 01:00:5e:7a:76:01"),
            &format!("frames [{seq}]"),
        ],
    );
}

#[test]
fn a_unicast_answer_no_unicast_must_drop_is_named() {
    // The answer to the device's own address sent while no-unicast is on
    // goes to the broadcast address instead.
    let seq = qemu_runner::net::FILTER_SEQ0 + 10;
    let o = boot(
        &echo_only(
            "net-filter-nouni",
            Misbehaviour::Broadcast { pair: 0, seq },
            "net.filter",
        ),
        &elf(),
    );
    fails_naming(
        &o,
        "net.filter",
        &[
            "no-unicast on",
            &format!("the answer to frame {seq}, sent to 52:54:00:7a:76:81, dropped"),
            &format!("frames [{seq}]"),
        ],
    );
}

#[test]
fn the_back_end_probe_tells_known_from_unknown() {
    let s = scenario("net-probe");
    // Both back-ends the scenarios use exist on every QEMU we run (7.2 on).
    for probe in [DGRAM_PROBE, SOCKET_UDP_PROBE, USER_PROBE] {
        if let Err(why) = netdev_offered(&s, probe) {
            panic!("{probe}: {why}");
        }
    }
    let why = netdev_offered(&s, "nosuchbackend,id=probe").expect_err("an unknown back-end");
    assert!(why.contains("nosuchbackend"), "{why}");
}

#[test]
fn socket_udp_echo_passes() {
    // The back-end of QEMUs before 7.2, which have no dgram.
    let o = boot(
        &scenario("net-echo-socket")
            .net_echo(BUS, MAC, Echo::socket_udp())
            .append("only=net.echo"),
        &elf(),
    );
    assert_pass(&o);
    check_ran(&o, "net.echo");
    check(
        &o,
        o.peers[0].figure("frames_received") == Some(512.0),
        "every frame at the peer",
    );
}

#[test]
fn control_features_the_host_turned_off() {
    // ctrl_vlan=off and ctrl_mac_addr=off, and nets= says so: net.control
    // holds the device to it and drives the rest.
    let o = boot(
        &scenario("net-ctrl-off")
            .net_echo(
                BUS,
                MAC,
                Echo::dgram()
                    .ctrl_off("ctrl_vlan")
                    .ctrl_off("ctrl_mac_addr"),
            )
            .append("only=net.config,net.control"),
        &elf(),
    );
    assert_pass(&o);
    check_ran(&o, "net.control");
    check(
        &o,
        o.console().contains(":off=ctrl_vlan:off=ctrl_mac_addr"),
        "nets= telling the firmware both are off",
    );
}

#[test]
fn a_control_feature_the_host_turned_off_fails_net_control() {
    // The device is started with ctrl_rx=off; nets= does not say so.
    let mut s = scenario("net-ctrl-rx-off")
        .net_echo(BUS, MAC, Echo::dgram().ctrl_off("ctrl_rx"))
        .append("only=net.control");
    s.nets[0].ctrl_off = 0;
    let o = boot(&s, &elf());
    fails_naming(
        &o,
        "net.control",
        &[
            "feature bit 18 (QEMU's ctrl_rx=) as the host configured it",
            "offered (nets= has no :off= for it)",
            "not offered",
        ],
    );
}

#[test]
fn a_control_feature_claimed_off_fails_net_control() {
    // nets= says ctrl_mac_addr=off; the device has QEMU's default (on).
    let mut s = echo_only(
        "net-ctrl-mac-claimed-off",
        Misbehaviour::None,
        "net.control",
    );
    s.nets[0].ctrl_off = 4;
    let o = boot(&s, &elf());
    fails_naming(
        &o,
        "net.control",
        &[
            "feature bit 23 (QEMU's ctrl_mac_addr=)",
            "not offered (nets= :off=)",
        ],
    );
}

#[test]
fn a_peer_no_frame_reached_fails_the_run() {
    // A second echo peer on a back-end no device uses: net.echo passes
    // through the first, the runner's cross-check fails the second.
    let s = echo_only("net-peer-unreached", Misbehaviour::None, "net.echo").peer(EchoPeer {
        netdev: "unwired-net".to_string(),
        guest: MAC,
        backend: Backend::Dgram,
        misbehaviour: Misbehaviour::None,
        max_frame: 1514,
    });
    let o = boot(&s, &elf());
    check(&o, !o.passed(), "a failing verdict");
    check(
        &o,
        o.tap.result("net.echo").is_some_and(|r| r.ok),
        "net.echo itself passing",
    );
    check(
        &o,
        o.peers.iter().any(|p| {
            p.reasons
                .iter()
                .any(|r| r.contains("net.echo passed, but no frame reached the peer"))
        }),
        "the unwired peer's reason",
    );
    check(
        &o,
        failure_text(&o).contains("no frame reached the peer"),
        "the verdict to name it",
    );
}

#[test]
fn a_packed_ring_the_device_does_not_offer_fails_net_echo() {
    // The device as QEMU gets it (no packed ring), and a devices= word
    // claiming packed=on, as a host that says more than it did would.
    let mut s = scenario("net-echo-packed-off")
        .net_echo(BUS, MAC, Echo::dgram())
        .append("only=net.echo");
    let d = s.ccw_devices.remove(0);
    s.expected_devices = None;
    let s = s
        .device(d.device_arg())
        .extra_args(d.backend_args.clone())
        .append(format!("devices={BUS}:net:packed"));
    let o = boot(&s, &elf());
    fails_naming(
        &o,
        "net.echo",
        &[
            "rev 2 packed event-idx classic mrg interrupts: a packed-ring round on a device configured packed=on",
            "not taken",
        ],
    );
}
