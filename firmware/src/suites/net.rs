//! virtio-net: the configuration against `nets=`, the control queue's
//! commands and their answers, a link set down and up by the host, echo
//! frames through a peer of the host's (every byte of every answer
//! checked, in several setups: revisions, header sizes, mergeable receive
//! buffers, every queue pair), and QEMU's user-mode network (ARP, DHCP).

use super::setups::{stress_rounds, Setup as Drive};
use super::virtio::WANTED;
use crate::check::Outcome;
use crate::fmt::{Hex, ToText};
use crate::format;
use crate::inventory::BusId;
use crate::machine::Machine;
use crate::net::{
    alternate_mac, answer_of, arp_request, dhcp_discover, echo_frame, echo_id, echo_len,
    first_difference, group_mac, parse_arp_reply, parse_dhcp_answer, EchoKind, MacText, NetConfig,
    NetPeer, CTRL_OFF, DHCP_OFFER, FILTER_SEQ0, MAX_FRAME, SLIRP_FIRST_CLIENT, SLIRP_GATEWAY,
    SLIRP_GATEWAY_MAC,
};
use crate::virtio::ccw::CcwTransport;
use crate::virtio::devices::net::{
    self as dev, header_len, read_config, Ack, Control, Order, RxPool, TxPool, ACK_ERR, ACK_OK,
};
use crate::virtio::indicators::{self, IndicatorMode, Indicators};
use crate::virtio::stress::{Completion, QueueStats};
use crate::virtio::transport::{
    driver_ok_status, has, negotiate, Transport, F_EVENT_IDX, F_RING_PACKED,
};
use alloc::string::String;
use alloc::vec::Vec;

/// A net device found, and what `nets=` says of it.
pub(super) struct NetDev {
    pub(super) sid: u32,
    pub(super) bus: BusId,
    pub(super) cfg: Option<NetConfig>,
}

fn devices(m: &Machine) -> Vec<NetDev> {
    m.inventory
        .virtio_devices(dev::DEVICE_ID)
        .map(|d| NetDev {
            sid: d.subchannel.sid,
            bus: d.bus_id(),
            cfg: m.cfg.nets.iter().find(|n| n.bus == d.bus_id()).copied(),
        })
        .collect()
}

/// The devices `nets=` gives a peer of this kind, with what it says.
pub(super) fn served(m: &Machine, peer: NetPeer) -> Vec<(NetDev, NetConfig)> {
    devices(m)
        .into_iter()
        .filter_map(|d| {
            let n = d.cfg.filter(|n| n.peer == peer)?;
            Some((d, n))
        })
        .collect()
}

fn now_us() -> u64 {
    crate::arch::tod() / crate::arch::TOD_PER_US
}

fn text(what: &str, e: &dyn ToText) -> String {
    format!("{}: {}", what, e.text().as_str())
}

/// The virtio features besides the device's own we ask for in setup
/// `s`: the ring features of `virtio.revisions`, the packed ring and
/// EVENT_IDX as `s` says.
fn base_features(s: &Drive) -> u64 {
    let mut f = WANTED & !(1 << F_RING_PACKED | 1 << F_EVENT_IDX);
    f |= u64::from(s.packed) << F_RING_PACKED;
    f |= u64::from(s.event_idx) << F_EVENT_IDX;
    f
}

/// The setup the checks other than `net.echo` drive: split ring,
/// EVENT_IDX, classic indicators.
pub(super) fn plain(revision: u8) -> Drive {
    Drive {
        revision,
        packed: false,
        event_idx: true,
        in_order: false,
        mode: IndicatorMode::Classic,
    }
}

/// Where a `nets=` device is missing from the inventory: a failure.
fn missing(m: &Machine) -> Option<Outcome> {
    let found = devices(m);
    let lost = m
        .cfg
        .nets
        .iter()
        .find(|n| !found.iter().any(|d| d.bus == n.bus))?;
    Some(Outcome::mismatch(
        "nets= names a device that is not there",
        format!("a virtio-net device at {}", lost.bus).as_str(),
        "none",
    ))
}

/// The configuration and features: MAC as `nets=` says (at revisions 2
/// and 0), link up, MAC and STATUS offered, queue pairs.
pub fn config(m: &mut Machine) -> Outcome {
    if let Some(o) = missing(m) {
        return o;
    }
    let found = devices(m);
    if found.is_empty() {
        return Outcome::skip("no virtio-net-ccw device");
    }
    let mut notes = Vec::new();
    for d in &found {
        for rev in [2u8, 0] {
            let mut t = match CcwTransport::open(d.sid, rev) {
                Ok(t) => t,
                Err(e) => return Outcome::fail(&text(&format!("{} open", d.bus), &e)),
            };
            if t.revision() != rev {
                continue;
            }
            let offer = match t.device_features() {
                Ok(f) => f,
                Err(e) => return Outcome::fail(&text(&format!("{} features", d.bus), &e)),
            };
            let features = match negotiate(&mut t, dev::FEATURES) {
                Ok(f) => f,
                Err(e) => return Outcome::fail(&text(&format!("{} negotiate", d.bus), &e)),
            };
            for (bit, name) in [(dev::F_MAC, "MAC"), (dev::F_STATUS, "STATUS")] {
                if !has(offer, bit) {
                    return Outcome::mismatch(
                        &format!("{} rev {}: feature {} offered", d.bus, rev, name),
                        "offered",
                        Hex(offer),
                    );
                }
            }
            let c = match read_config(&mut t) {
                Ok(c) => c,
                Err(e) => return Outcome::fail(&text(&format!("{} config", d.bus), &e)),
            };
            let _ = t.reset();
            crate::out!(
                "# net {}: rev {} mac {}, status {}, max pairs {}, mtu {}, features {}\n",
                d.bus,
                rev,
                MacText(c.mac),
                c.status.map_or(Hex(u64::MAX), |s| Hex(s.into())),
                c.max_pairs.unwrap_or(0),
                c.mtu.unwrap_or(0),
                Hex(features)
            );
            match d.cfg {
                Some(n) if n.mac != c.mac => {
                    return Outcome::mismatch(
                        &format!("{} rev {}: MAC in the configuration space", d.bus, rev),
                        MacText(n.mac),
                        MacText(c.mac),
                    )
                }
                Some(_) => {}
                None if rev == 2 => notes.push(format!("{} mac {}", d.bus, MacText(c.mac))),
                None => {}
            }
            let status = c.status.unwrap_or(0);
            if status & dev::S_LINK_UP == 0 {
                return Outcome::mismatch(
                    &format!("{} rev {}: status (link up)", d.bus, rev),
                    Hex(dev::S_LINK_UP.into()),
                    Hex(status.into()),
                );
            }
            if let Some(n) = d.cfg {
                let offered = has(offer, dev::F_MTU);
                let (want, got) = (n.mtu, offered.then_some(c.mtu).flatten());
                if want != got {
                    let show = |m: Option<u16>| match m {
                        Some(m) => format!("MTU {} offered", m),
                        None => String::from("no MTU offered"),
                    };
                    return Outcome::mismatch(
                        &format!("{} rev {}: VIRTIO_NET_F_MTU and mtu", d.bus, rev),
                        show(want).as_str(),
                        show(got).as_str(),
                    );
                }
                let pairs = c.pairs(features);
                if rev == 2 && pairs != n.pairs {
                    return Outcome::mismatch(
                        &format!(
                            "{} rev {}: queue pairs (max_virtqueue_pairs with MQ)",
                            d.bus, rev
                        ),
                        n.pairs,
                        pairs,
                    );
                }
            }
        }
    }
    if notes.is_empty() {
        Outcome::Pass
    } else {
        Outcome::PassNote(format!(
            "not in nets=, nothing to compare: {}",
            notes.join(", ").as_str()
        ))
    }
}

/// A device brought to DRIVER_OK with its receive and transmit queues (a
/// pool each) for `pairs` pairs, and the control queue where negotiated.
pub(super) struct Up {
    pub(super) t: CcwTransport,
    pub(super) features: u64,
    order: Order,
    pub(super) hdr: usize,
    pub(super) rx: Vec<RxPool>,
    pub(super) tx: Vec<TxPool>,
    ctrl: Option<Control>,
    ind: Indicators,
    pub(super) mac: [u8; 6],
    max_pairs: u16,
}

/// Opens and sets up `d` in setup `s` asking for `wanted`; None where
/// the device does not take the revision, or does not offer the packed
/// ring or EVENT_IDX that `s` asks for. Receive buffers: `buf_len` bytes
/// each (0: room for a whole frame).
pub(super) fn bring_up(
    d: &NetDev,
    s: Drive,
    wanted: u64,
    pairs: u16,
    (buf_len, max_frame): (usize, usize),
) -> Result<Option<Up>, String> {
    let rev = s.revision;
    let mut t = CcwTransport::open(d.sid, rev).map_err(|e| text("open", &e))?;
    if t.revision() != rev {
        return Ok(None);
    }
    let features =
        negotiate(&mut t, wanted | base_features(&s)).map_err(|e| text("negotiate", &e))?;
    if (s.packed && !has(features, F_RING_PACKED)) || (s.event_idx && !has(features, F_EVENT_IDX)) {
        let _ = t.reset();
        return Ok(None);
    }
    let ind = Indicators::install(&mut t, s.mode).map_err(|e| text("indicators", &e))?;
    let space = read_config(&mut t).map_err(|e| text("config", &e))?;
    let max_pairs = space.pairs(features);
    let pairs = pairs.min(max_pairs).max(1);
    let hdr = header_len(rev, features);
    let buf_len = if buf_len == 0 {
        hdr + max_frame
    } else {
        buf_len
    };
    let mut rx = Vec::new();
    let mut tx = Vec::new();
    for p in 0..pairs {
        let mut r = RxPool::setup(&mut t, (dev::rx_queue(p), s.packed), features, 128, buf_len)
            .map_err(|e| text(&format!("receive queue {}", dev::rx_queue(p)), &e))?;
        r.queue.enable_interrupts(false);
        rx.push(r);
        let mut w = TxPool::setup(&mut t, (dev::tx_queue(p), s.packed), features, max_frame)
            .map_err(|e| text(&format!("transmit queue {}", dev::tx_queue(p)), &e))?;
        w.queue.enable_interrupts(false);
        tx.push(w);
    }
    let ctrl = if has(features, dev::F_CTRL_VQ) {
        let index = dev::control_queue(features, max_pairs);
        Some(
            Control::setup(&mut t, index, features, s.packed)
                .map_err(|e| text(&format!("control queue {}", index), &e))?,
        )
    } else {
        None
    };
    t.set_status(driver_ok_status(rev))
        .map_err(|e| text("DRIVER_OK", &e))?;
    for r in &mut rx {
        r.post(&mut t)
            .map_err(|e| text("posting receive buffers", &e))?;
    }
    let mac = d.cfg.map_or(space.mac, |n| n.mac);
    Ok(Some(Up {
        order: Order::for_revision(t.revision()),
        t,
        features,
        hdr,
        rx,
        tx,
        ctrl,
        ind,
        mac,
        max_pairs,
    }))
}

/// A control command and the answer expected.
struct Cmd {
    what: &'static str,
    class: u8,
    command: u8,
    data: Vec<u8>,
    expect: u8,
}

/// The control queue: receive modes, MAC table, MAC address (read back
/// from the configuration space, then restored), VLAN filter, queue
/// pairs, and commands the device must refuse with ERR (an unknown class,
/// an unknown command, data too short, a VLAN id past 4095).
pub fn control(m: &mut Machine) -> Outcome {
    let found = devices(m);
    if found.is_empty() {
        return Outcome::skip("no virtio-net-ccw device");
    }
    let mut done = Vec::new();
    for d in &found {
        let mut up = match bring_up(d, plain(2), dev::FEATURES, 1, (0, MAX_FRAME)) {
            Ok(Some(up)) => up,
            Ok(None) => continue,
            Err(e) => return Outcome::fail(&format!("{}: {}", d.bus, e.as_str())),
        };
        // The control features as the host configured them (QEMU's are
        // on unless the command line turned them off).
        if let Some(n) = d.cfg {
            for (word, bit, feature) in CTRL_OFF {
                let off = n.ctrl_off & bit != 0;
                if has(up.features, feature) == off {
                    let _ = up.t.reset();
                    let (want, got) = if off {
                        ("not offered (nets= :off=)", "offered")
                    } else {
                        ("offered (nets= has no :off= for it)", "not offered")
                    };
                    return Outcome::mismatch(
                        &format!(
                            "{} control: feature bit {} (QEMU's {}=) as the host configured it",
                            d.bus, feature, word
                        ),
                        want,
                        got,
                    );
                }
            }
            if n.pairs > 1 && !has(up.features, dev::F_MQ) {
                let _ = up.t.reset();
                return Outcome::mismatch(
                    &format!(
                        "{} control: VIRTIO_NET_F_MQ with nets= pairs={}",
                        d.bus, n.pairs
                    ),
                    "offered",
                    "not offered",
                );
            }
        }
        let Some(mut ctrl) = up.ctrl.take() else {
            return Outcome::skip(&format!("{}: no control queue offered (CTRL_VQ)", d.bus));
        };
        let o = up.order;
        let f = up.features;
        let other_mac = [0x02, 0x7a, 0x76, 0x00, 0x00, 0x01];
        let mut cmds = Vec::new();
        let mut cmd = |what, class, command, data: &[u8], expect| {
            cmds.push(Cmd {
                what,
                class,
                command,
                data: data.to_vec(),
                expect,
            })
        };
        if has(f, dev::F_CTRL_RX) {
            cmd(
                "promiscuous on",
                dev::CTRL_RX,
                dev::CTRL_RX_PROMISC,
                &[1],
                ACK_OK,
            );
            cmd(
                "promiscuous off",
                dev::CTRL_RX,
                dev::CTRL_RX_PROMISC,
                &[0],
                ACK_OK,
            );
            cmd(
                "all-multicast on",
                dev::CTRL_RX,
                dev::CTRL_RX_ALLMULTI,
                &[1],
                ACK_OK,
            );
            cmd(
                "all-multicast off",
                dev::CTRL_RX,
                dev::CTRL_RX_ALLMULTI,
                &[0],
                ACK_OK,
            );
            cmd(
                "receive mode without its byte",
                dev::CTRL_RX,
                dev::CTRL_RX_PROMISC,
                &[],
                ACK_ERR,
            );
            cmd(
                "unknown receive-mode command 0x7e",
                dev::CTRL_RX,
                0x7e,
                &[1],
                ACK_ERR,
            );
            let table = dev::mac_table(o, &[other_mac], &[[0x01, 0, 0x5e, 0, 0, 1]]);
            cmd(
                "MAC table set (1 unicast, 1 multicast)",
                dev::CTRL_MAC,
                dev::CTRL_MAC_TABLE_SET,
                &table,
                ACK_OK,
            );
            let short = dev::mac_table(o, &[other_mac], &[]);
            let mut short = short[..10].to_vec();
            short[..4].copy_from_slice(&o.put32(2));
            cmd(
                "MAC table set counting 2 addresses, holding 1",
                dev::CTRL_MAC,
                dev::CTRL_MAC_TABLE_SET,
                &short,
                ACK_ERR,
            );
            let empty = dev::mac_table(o, &[], &[]);
            cmd(
                "MAC table emptied",
                dev::CTRL_MAC,
                dev::CTRL_MAC_TABLE_SET,
                &empty,
                ACK_OK,
            );
        }
        if has(f, dev::F_CTRL_VLAN) {
            cmd(
                "VLAN 100 added",
                dev::CTRL_VLAN,
                dev::CTRL_VLAN_ADD,
                &dev::put16(o, 100),
                ACK_OK,
            );
            cmd(
                "VLAN 100 removed",
                dev::CTRL_VLAN,
                dev::CTRL_VLAN_DEL,
                &dev::put16(o, 100),
                ACK_OK,
            );
            cmd(
                "VLAN 4096 added",
                dev::CTRL_VLAN,
                dev::CTRL_VLAN_ADD,
                &dev::put16(o, dev::VLAN_IDS),
                ACK_ERR,
            );
        }
        if has(f, dev::F_MQ) {
            let max = up.max_pairs;
            cmd(
                "queue pairs set to 1",
                dev::CTRL_MQ,
                dev::CTRL_MQ_VQ_PAIRS_SET,
                &dev::put16(o, 1),
                ACK_OK,
            );
            cmd(
                "queue pairs set to 0",
                dev::CTRL_MQ,
                dev::CTRL_MQ_VQ_PAIRS_SET,
                &dev::put16(o, 0),
                ACK_ERR,
            );
            let past = max.saturating_add(1);
            cmd(
                "queue pairs set past max_virtqueue_pairs",
                dev::CTRL_MQ,
                dev::CTRL_MQ_VQ_PAIRS_SET,
                &dev::put16(o, past),
                ACK_ERR,
            );
        } else {
            cmd(
                "queue pairs set without MQ",
                dev::CTRL_MQ,
                dev::CTRL_MQ_VQ_PAIRS_SET,
                &dev::put16(o, 1),
                ACK_ERR,
            );
        }
        cmd("unknown class 0x7f", 0x7f, 0, &[0], ACK_ERR);
        let t = &mut up.t;
        for c in &cmds {
            let what = format!(
                "{} control: {} (class {}, command {})",
                d.bus, c.what, c.class, c.command
            );
            match ctrl.command(t, c.class, c.command, &c.data) {
                Err(e) => return Outcome::fail(&text(&what, &e)),
                Ok(a) if a != c.expect => return Outcome::mismatch(&what, Ack(c.expect), Ack(a)),
                Ok(_) => {}
            }
        }
        if has(f, dev::F_CTRL_MAC_ADDR) {
            for (mac, what) in [
                (other_mac, "another address"),
                (up.mac, "the configured address again"),
            ] {
                let label = format!("{} control: MAC address set to {}", d.bus, what);
                match ctrl.command(t, dev::CTRL_MAC, dev::CTRL_MAC_ADDR_SET, &mac) {
                    Err(e) => return Outcome::fail(&text(&label, &e)),
                    Ok(a) if a != ACK_OK => return Outcome::mismatch(&label, Ack(ACK_OK), Ack(a)),
                    Ok(_) => {}
                }
                match read_config(t) {
                    Err(e) => return Outcome::fail(&text(&label, &e)),
                    Ok(c) if c.mac != mac => {
                        return Outcome::mismatch(
                            &format!("{}: the configuration space's MAC after it", label.as_str()),
                            MacText(mac),
                            MacText(c.mac),
                        )
                    }
                    Ok(_) => {}
                }
            }
            let label = format!("{} control: MAC address set with 5 bytes", d.bus);
            match ctrl.command(t, dev::CTRL_MAC, dev::CTRL_MAC_ADDR_SET, &other_mac[..5]) {
                Err(e) => return Outcome::fail(&text(&label, &e)),
                Ok(a) if a != ACK_ERR => return Outcome::mismatch(&label, Ack(ACK_ERR), Ack(a)),
                Ok(_) => {}
            }
        }
        let _ = t.reset();
        done.push(format!("{}: {} commands", d.bus, cmds.len()));
    }
    crate::out!("# net control: {}\n", done.join(", ").as_str());
    Outcome::Pass
}

/// How long the host has to change the link.
const LINK_WAIT_US: u64 = 5_000_000;

/// The link set down and up by the host (`:link` in `nets=`): each time
/// the configuration-change indicator and an interrupt, then the new
/// STATUS.
pub fn link(m: &mut Machine) -> Outcome {
    if let Some(o) = missing(m) {
        return o;
    }
    let Some(d) = devices(m)
        .into_iter()
        .find(|d| d.cfg.is_some_and(|n| n.link))
    else {
        return Outcome::skip("no nets= device marked :link (the host changes no link)");
    };
    let mut up = match bring_up(&d, plain(2), dev::FEATURES, 1, (0, MAX_FRAME)) {
        Ok(Some(up)) => up,
        Ok(None) => return Outcome::fail(&format!("{}: revision 2 refused", d.bus)),
        Err(e) => return Outcome::fail(&format!("{}: {}", d.bus, e.as_str())),
    };
    let lines = crate::checks::markers::NET_LINK_READY;
    for (line, want, name) in [(lines[0], 0, "down"), (lines[1], dev::S_LINK_UP, "up")] {
        up.ind.acknowledge();
        let before = indicators::subchannel_interrupts();
        crate::out!("{}\n", line);
        let ind = &up.ind;
        let flagged = up.t.wait(crate::host_wait::us(LINK_WAIT_US), &mut || {
            ind.config_flagged() && indicators::subchannel_interrupts() != before
        });
        if !flagged {
            return Outcome::mismatch(
                &format!("{}: configuration change for the link set {}", d.bus, name),
                "indicator bit 0 and an I/O interrupt",
                format!(
                    "neither within {} ({} interrupts)",
                    crate::host_wait::text(LINK_WAIT_US).as_str(),
                    indicators::subchannel_interrupts() - before
                )
                .as_str(),
            );
        }
        let status = match read_config(&mut up.t) {
            Ok(c) => c.status.unwrap_or(0),
            Err(e) => return Outcome::fail(&text("config", &e)),
        };
        if status & dev::S_LINK_UP != want {
            return Outcome::mismatch(
                &format!("{}: status after the link was set {}", d.bus, name),
                Hex(want.into()),
                Hex(status.into()),
            );
        }
    }
    let _ = up.t.reset();
    Outcome::Pass
}

/// One echo round: the transport setup, how answers are taken,
/// mergeable receive buffers and their size, frames per pair, and whether
/// the 16-bit ring indexes of rx0 and tx0 must wrap in it.
struct Round {
    drive: Drive,
    completion: Completion,
    mrg: bool,
    buf_len: usize,
    frames: u32,
    wrap: bool,
}

impl Round {
    fn label(&self) -> String {
        format!(
            "{}{} {}{}",
            self.drive.label().as_str(),
            if self.mrg { " mrg" } else { "" },
            self.completion.name(),
            if self.wrap { " wrap" } else { "" }
        )
    }
}

/// Frames on each pair for the 16-bit indexes of its queues to wrap:
/// a receive queue posts a buffer per answer (more with mergeable
/// buffers) beyond the 128 it starts with.
const WRAP_FRAMES: u32 = 65_536 + 512;

/// The echo rounds: every setup of `stress_rounds` (revision 2 with split
/// and packed rings, EVENT_IDX on and off, classic and adapter indicators
/// by interrupt and classic polled; revision 0 both ways), mergeable
/// receive buffers of 256 bytes in every other round (so each revision
/// has rounds with and without); from `stress=10` on first a round long
/// enough for the ring indexes to wrap (some 66 000 frames: seconds
/// under TCG) unless `index_wrap` is off.
fn echo_rounds(stress: u32, index_wrap: bool) -> Vec<Round> {
    let mut all = stress_rounds(false);
    // The last repeats the first (for the disks' final writes).
    all.pop();
    let frames = 64 * stress;
    let mut rounds: Vec<Round> = all
        .into_iter()
        .enumerate()
        .map(|(i, (drive, completion))| Round {
            drive,
            completion,
            mrg: i % 2 == 0,
            buf_len: if i % 2 == 0 { 256 } else { 0 },
            frames,
            wrap: false,
        })
        .collect();
    if stress >= 10 && index_wrap {
        let first = &rounds[0];
        let wrap = Round {
            frames: WRAP_FRAMES,
            wrap: true,
            ..*first
        };
        rounds.insert(0, wrap);
    }
    rounds
}
/// Bytes of echo frames unanswered at once, all pairs together: well
/// within a host socket's default receive buffer (about 208 KiB on Linux,
/// counting each frame's overhead).
const WINDOW_BYTES: usize = 64 * 1024;

/// How long the peer may stay silent with frames unanswered.
const QUIET_US: u64 = 2_000_000;

/// What an echo round did.
struct EchoRound {
    sent: u64,
    bytes: u64,
    answers: u64,
    merged: u64,
    max_buffers: u16,
    rx: Vec<QueueStats>,
    tx: Vec<QueueStats>,
    pairs: u16,
    hdr: usize,
    interrupts: u64,
}

/// Sends `frames` echo frames on each queue pair from `seq0` on, keeps
/// the receive queues full and the transmit queues completed, at most a
/// window of frames unanswered, and checks every answer byte for byte.
fn echo_round(
    d: &NetDev,
    n: &NetConfig,
    s: &Round,
    seed: u64,
    seq0: u32,
) -> Result<Option<EchoRound>, String> {
    let frames = s.frames;
    let mut wanted = dev::FEATURES & !(1 << dev::F_MRG_RXBUF);
    if s.mrg {
        wanted |= 1 << dev::F_MRG_RXBUF;
    }
    let max_frame = n.max_frame();
    let Some(mut up) = bring_up(d, s.drive, wanted, n.pairs, (s.buf_len, max_frame))? else {
        return Ok(None);
    };
    let by_interrupt = s.completion == Completion::Interrupts;
    if s.mrg && !has(up.features, dev::F_MRG_RXBUF) {
        let _ = up.t.reset();
        return Ok(None);
    }
    let pairs = up.rx.len() as u16;
    if pairs > 1 {
        let ctrl = up.ctrl.as_mut().ok_or("MQ without a control queue")?;
        match ctrl.command(
            &mut up.t,
            dev::CTRL_MQ,
            dev::CTRL_MQ_VQ_PAIRS_SET,
            &dev::put16(up.order, pairs),
        ) {
            Ok(ACK_OK) => {}
            Ok(a) => return Err(format!("MQ_VQ_PAIRS_SET {}: answered {}", pairs, Ack(a))),
            Err(e) => return Err(text("MQ_VQ_PAIRS_SET", &e)),
        }
    }
    let hdr = up.hdr;
    let buf_len = up.rx[0].buf_len;
    let per_frame = (hdr + max_frame).div_ceil(buf_len);
    // Frames unanswered at once: what one receive queue holds, and no
    // more bytes than a host socket buffers (QEMU's back-end socket drops
    // what does not fit, and nothing tells the device).
    let window = (up.rx[0].buffers() / per_frame)
        .min(WINDOW_BYTES / max_frame)
        .clamp(1, 32)
        / usize::from(pairs);
    let window = window.max(1) as u32;
    let p = usize::from(pairs);
    let mut sent = alloc::vec![0u32; p];
    let mut answered = alloc::vec![alloc::vec![false; frames as usize]; p];
    let mut answers = alloc::vec![0u32; p];
    let mut rx_stats = alloc::vec![QueueStats::default(); p];
    let mut tx_stats = alloc::vec![QueueStats::default(); p];
    let kicks0: Vec<(u64, u64)> = (0..p)
        .map(|i| (up.rx[i].queue.kicks(), up.tx[i].queue.kicks()))
        .collect();
    let wraps0: Vec<(u64, u64)> = (0..p)
        .map(|i| (up.rx[i].queue.wraps(), up.tx[i].queue.wraps()))
        .collect();
    for i in 0..p {
        up.rx[i].queue.enable_interrupts(by_interrupt);
        up.tx[i].queue.enable_interrupts(by_interrupt);
    }
    // Times the host flagged each queue (receive, transmit) in the
    // indicators, and interrupts of either kind meanwhile.
    let mut flagged = alloc::vec![(0u64, 0u64); p];
    let ints0 = indicators::interrupts_seen();
    // Set once a wait for an interrupt ran out: what the rings hold then
    // came back without one.
    let mut silent = false;
    let (mut frame, mut expected, mut got) = (Vec::new(), Vec::new(), Vec::new());
    let header = dev::tx_header();
    let (mut merged, mut max_buffers, mut bytes) = (0u64, 0u16, 0u64);
    let start = now_us();
    let mut last = start;
    let mut idle = 0u32;
    let total = u64::from(frames) * p as u64;
    let mut done = 0u64;
    let name = |pair: usize, seq: u32| format!("pair {} frame {}", pair, seq);
    while done < total {
        let mut progress = false;
        // What the host flagged, then cleared before the rings are looked
        // at: an adapter interrupt comes only when the summary goes 0 -> 1.
        for (i, f) in flagged.iter_mut().enumerate() {
            f.0 += u64::from(up.ind.queue_flagged(dev::rx_queue(i as u16)));
            f.1 += u64::from(up.ind.queue_flagged(dev::tx_queue(i as u16)));
        }
        up.ind.acknowledge();
        let ints = indicators::interrupts_seen();
        for i in 0..p {
            while sent[i] < frames && sent[i] - answers[i] < window && up.tx[i].has_room() {
                let seq = seq0 + sent[i];
                echo_frame(seed, up.mac, i as u16, seq, max_frame, &mut frame);
                let ok = up.tx[i]
                    .send(&mut up.t, &header[..hdr], &frame)
                    .map_err(|e| {
                        text(&format!("transmit queue {}", dev::tx_queue(i as u16)), &e)
                    })?;
                if !ok {
                    break;
                }
                sent[i] += 1;
                bytes += frame.len() as u64;
                tx_stats[i].requests += 1;
                tx_stats[i].bytes += frame.len() as u64;
                tx_stats[i].max_depth = tx_stats[i].max_depth.max(up.tx[i].in_flight() as u16);
                progress = true;
            }
            let n = up.tx[i]
                .reclaim()
                .map_err(|e| text(&format!("transmit queue {}", dev::tx_queue(i as u16)), &e))?;
            tx_stats[i].completed += u64::from(n);
            progress |= n > 0;
        }
        // q names the pool, its figures and its queue number alike.
        #[allow(clippy::needless_range_loop)]
        for q in 0..p {
            let mut any = false;
            loop {
                let rxq = dev::rx_queue(q as u16);
                let Some(u) = up.rx[q]
                    .try_used()
                    .map_err(|e| text(&format!("receive queue {}", rxq), &e))?
                else {
                    break;
                };
                any = true;
                got.clear();
                up.rx[q].read(u.buf, u.len, &mut got);
                up.rx[q].release(u.buf);
                if got.len() < hdr {
                    return Err(format!(
                        "receive queue {}: {} bytes used, less than the {}-byte header",
                        rxq, u.len, hdr
                    ));
                }
                let mut buffers = 1u16;
                if has(up.features, dev::F_MRG_RXBUF) {
                    let nb = up.order.u16(&got[dev::NUM_BUFFERS_AT..]);
                    if nb == 0 || usize::from(nb) > up.rx[q].buffers() {
                        return Err(format!(
                            "receive queue {}: num_buffers {} ({} buffers posted)",
                            rxq,
                            nb,
                            up.rx[q].buffers()
                        ));
                    }
                    while buffers < nb {
                        // The rest of the frame's buffers, soon if not yet.
                        let end = now_us() + QUIET_US;
                        let v = loop {
                            let next = up.rx[q]
                                .try_used()
                                .map_err(|e| text(&format!("receive queue {}", rxq), &e))?;
                            match next {
                                Some(v) => break v,
                                None if now_us() > end => {
                                    return Err(format!(
                                    "receive queue {}: num_buffers {}, only {} used within {} ms",
                                    rxq,
                                    nb,
                                    buffers,
                                    QUIET_US / 1000
                                ))
                                }
                                None => {}
                            }
                        };
                        up.rx[q].read(v.buf, v.len, &mut got);
                        up.rx[q].release(v.buf);
                        buffers += 1;
                    }
                    if nb > 1 {
                        merged += 1;
                    }
                    max_buffers = max_buffers.max(nb);
                }
                let body = &got[hdr..];
                rx_stats[q].completed += 1;
                rx_stats[q].requests += 1;
                rx_stats[q].bytes += body.len() as u64;
                let id = echo_id(body).filter(|&(kind, pair, seq)| {
                    kind == EchoKind::Answer
                        && usize::from(pair) < p
                        && seq >= seq0
                        && seq - seq0 < sent[usize::from(pair)]
                });
                let Some((_, pair, seq)) = id else {
                    let head: Vec<String> = body
                        .iter()
                        .take(24)
                        .map(|b| format!("{}", crate::fmt::HexW((*b).into(), 2)))
                        .collect();
                    return Err(format!(
                        "receive queue {}: a {}-byte frame that answers no frame sent (header {} bytes; it starts {})",
                        rxq,
                        body.len(),
                        hdr,
                        head.join("").as_str()
                    ));
                };
                let pi = usize::from(pair);
                let k = (seq - seq0) as usize;
                if answered[pi][k] {
                    return Err(format!(
                        "{}: answered twice (receive queue {})",
                        name(pi, seq).as_str(),
                        rxq
                    ));
                }
                if let Some((field, v)) = dev::rx_header_fault(&got[..hdr]) {
                    return Err(format!(
                        "{} (receive queue {}): header {} {}, expected 0 (no receive offload negotiated)",
                        name(pi, seq).as_str(),
                        rxq,
                        field,
                        Hex(v.into())
                    ));
                }
                echo_frame(seed, up.mac, pair, seq, max_frame, &mut frame);
                answer_of(&frame, &mut expected);
                if body.len() != expected.len() {
                    return Err(format!(
                        "{}: {} bytes used for a {}-byte answer: the header took {} bytes, expected {} (revision {}{})",
                        name(pi, seq).as_str(),
                        got.len(),
                        expected.len(),
                        got.len() as i64 - expected.len() as i64,
                        hdr,
                        s.drive.revision,
                        if s.mrg { ", MRG_RXBUF" } else { "" }
                    ));
                }
                if let Some(diff) = first_difference(&expected, body) {
                    return Err(format!(
                        "{} ({} bytes, receive queue {}): answer {}",
                        name(pi, seq).as_str(),
                        expected.len(),
                        rxq,
                        diff
                    ));
                }
                answered[pi][k] = true;
                answers[pi] += 1;
                done += 1;
            }
            if any {
                progress = true;
                up.rx[q]
                    .post(&mut up.t)
                    .map_err(|e| text("posting receive buffers", &e))?;
            }
        }
        if progress && silent {
            return Err(format!(
                "{}: buffers used with no interrupt within {} ms (interrupts enabled; the host flagged rx0 {} and tx0 {} times so far)",
                s.label().as_str(),
                QUIET_US / 1000,
                flagged[0].0,
                flagged[0].1
            ));
        }
        if progress {
            idle = 0;
            last = u64::MAX;
            continue;
        }
        if by_interrupt && !silent {
            // Nothing to do until the device uses a buffer: it interrupts.
            let woke =
                up.t.wait(QUIET_US, &mut || indicators::interrupts_seen() != ints);
            silent = !woke;
            continue;
        }
        idle += 1;
        if silent || idle.is_multiple_of(64) {
            let now = now_us();
            if last == u64::MAX {
                last = now;
            } else if silent || now - last > QUIET_US {
                let unanswered = total - done;
                let (pi, k) = (0..p)
                    .find_map(|i| {
                        (0..sent[i] as usize)
                            .find(|&k| !answered[i][k])
                            .map(|k| (i, k))
                    })
                    .unwrap_or((0, 0));
                let seq = seq0 + k as u32;
                let sent_all: u32 = sent.iter().sum();
                return Err(format!(
                    "{} ({} bytes) never answered: {} of {} frames unanswered ({} sent) after {} ms of silence",
                    name(pi, seq).as_str(),
                    echo_len(seed, pi as u16, seq, max_frame),
                    unanswered,
                    total,
                    sent_all,
                    QUIET_US / 1000
                ));
            }
        }
    }
    // Every frame sent is taken back from the transmit queues.
    let end = now_us() + QUIET_US;
    for (i, tx) in up.tx.iter_mut().enumerate() {
        while tx.in_flight() > 0 {
            let n = tx
                .reclaim()
                .map_err(|e| text(&format!("transmit queue {}", dev::tx_queue(i as u16)), &e))?;
            tx_stats[i].completed += u64::from(n);
            if n == 0 && now_us() > end {
                return Err(format!(
                    "transmit queue {}: {} frames never completed (all were answered)",
                    dev::tx_queue(i as u16),
                    tx.in_flight()
                ));
            }
        }
    }
    let elapsed = now_us() - start;
    for (i, f) in flagged.iter_mut().enumerate() {
        f.0 += u64::from(up.ind.queue_flagged(dev::rx_queue(i as u16)));
        f.1 += u64::from(up.ind.queue_flagged(dev::tx_queue(i as u16)));
    }
    if by_interrupt {
        // Buffers can all be used while the loop never waited, leaving
        // the interrupt pending (interrupts are taken only in a wait):
        // it must come now.
        let _ =
            up.t.wait(QUIET_US, &mut || indicators::interrupts_seen() != ints0);
    }
    let interrupts = u64::from(indicators::interrupts_seen() - ints0);
    if by_interrupt && interrupts == 0 {
        return Err(format!(
            "{}: {} frames answered, no interrupt within {} ms after the last (interrupts enabled)",
            s.label().as_str(),
            done,
            QUIET_US / 1000
        ));
    }
    for i in 0..p {
        rx_stats[i].max_depth = up.rx[i].buffers() as u16;
        rx_stats[i].kicks = up.rx[i].queue.kicks() - kicks0[i].0;
        tx_stats[i].kicks = up.tx[i].queue.kicks() - kicks0[i].1;
        rx_stats[i].wraps = up.rx[i].queue.wraps() - wraps0[i].0;
        tx_stats[i].wraps = up.tx[i].queue.wraps() - wraps0[i].1;
        rx_stats[i].interrupts = flagged[i].0;
        tx_stats[i].interrupts = flagged[i].1;
        rx_stats[i].elapsed_us = elapsed;
        tx_stats[i].elapsed_us = elapsed;
    }
    let _ = up.t.reset();
    Ok(Some(EchoRound {
        sent: total,
        bytes,
        answers: done,
        merged,
        max_buffers,
        rx: rx_stats,
        tx: tx_stats,
        pairs,
        hdr,
        interrupts,
    }))
}

/// Echo frames through the host's peer (`:echo` in `nets=`) in every
/// setup the device takes: revisions 2 and 0, with and without mergeable
/// receive buffers (small ones, so that long frames span several), every
/// queue pair; every answer checked byte for byte, its header length
/// against the revision's.
pub fn echo(m: &mut Machine) -> Outcome {
    if let Some(o) = missing(m) {
        return o;
    }
    let found = served(m, NetPeer::Echo);
    if found.is_empty() {
        return Outcome::skip("no nets= device with an echo peer (:echo)");
    }
    let seed = m.cfg.seed;
    let rounds = echo_rounds(m.cfg.stress, m.cfg.index_wrap);
    for (d, n) in &found {
        let n = *n;
        let mut seq0 = 0u32;
        let mut ran = 0;
        let mut not_taken = Vec::new();
        // devices= says the host gave the device packed=on: its packed
        // rounds must run.
        let packed = m.cfg.virtio_config(d.bus).is_some_and(|c| c.packed);
        for s in &rounds {
            let label = s.label();
            let r = match echo_round(d, &n, s, seed, seq0) {
                Ok(Some(r)) => r,
                Ok(None) if s.drive.packed && packed => {
                    return Outcome::mismatch(
                        &format!(
                            "{} echo {}: a packed-ring round on a device configured packed=on (devices=)",
                            d.bus,
                            label.as_str()
                        ),
                        "the round driven",
                        "not taken (VIRTIO_F_RING_PACKED, EVENT_IDX or MRG_RXBUF not offered)",
                    )
                }
                Ok(None) => {
                    not_taken.push(label);
                    continue;
                }
                Err(e) => {
                    return Outcome::mismatch(
                        &format!(
                            "{} echo {} (replay: seed={})",
                            d.bus,
                            label.as_str(),
                            Hex(seed)
                        ),
                        "every frame answered, byte for byte",
                        e.as_str(),
                    )
                }
            };
            seq0 += s.frames;
            ran += 1;
            for (i, (rx, tx)) in r.rx.iter().zip(&r.tx).enumerate() {
                crate::out!("# net {} rx{} {}: {}\n", d.bus, i, label.as_str(), rx);
                crate::out!("# net {} tx{} {}: {}\n", d.bus, i, label.as_str(), tx);
            }
            crate::out!(
                "# net {} {}: {} frames of 60 to {} bytes sent ({} bytes) on {} pairs, {} answers received, {} dropped, header {} bytes, {} frames in several buffers (num_buffers up to {}), {} interrupts\n",
                d.bus,
                label.as_str(),
                r.sent,
                n.max_frame(),
                r.bytes,
                r.pairs,
                r.answers,
                r.sent - r.answers,
                r.hdr,
                r.merged,
                r.max_buffers,
                r.interrupts
            );
            for (i, (rx, tx)) in r.rx.iter().zip(&r.tx).enumerate() {
                let judged = crate::judge::echo_queue(
                    &format!("{} rx{} {}", d.bus, i, label.as_str()),
                    (s.completion == Completion::Polled, s.wrap && i == 0),
                    rx,
                )
                .and_then(|()| {
                    crate::judge::echo_queue(
                        &format!("{} tx{} {}", d.bus, i, label.as_str()),
                        (s.completion == Completion::Polled, s.wrap && i == 0),
                        tx,
                    )
                });
                if let Err(e) = judged {
                    return Outcome::fail(&format!("{} (replay: seed={})", e.as_str(), Hex(seed)));
                }
            }
            if s.mrg && r.merged == 0 {
                return Outcome::mismatch(
                    &format!(
                        "{} echo {}: frames longer than a {}-byte buffer",
                        d.bus,
                        label.as_str(),
                        s.buf_len
                    ),
                    "num_buffers > 1",
                    "every frame in one buffer",
                );
            }
        }
        if ran == 0 {
            return Outcome::fail(&format!("{}: no echo setup could be driven", d.bus));
        }
        if !not_taken.is_empty() {
            crate::out!(
                "# net {}: setups the device does not take: {}\n",
                d.bus,
                not_taken.join(", ").as_str()
            );
        }
    }
    Outcome::Pass
}

/// Sends echo frame `seq` of pair 0 with source address `src`.
fn send_one(
    up: &mut Up,
    seed: u64,
    src: [u8; 6],
    seq: u32,
    max_frame: usize,
) -> Result<(), String> {
    let header = dev::tx_header();
    let hdr = up.hdr;
    let mut frame = Vec::new();
    echo_frame(seed, src, 0, seq, max_frame, &mut frame);
    if !up.tx[0]
        .send(&mut up.t, &header[..hdr], &frame)
        .map_err(|e| text("transmit queue 1", &e))?
    {
        return Err(String::from("no room in transmit queue 1"));
    }
    Ok(())
}

/// Waits for the answer to frame `seq` of pair 0 (sent from `src`) and
/// checks it byte for byte; returns the sequence numbers of the other
/// answers that came first (`u32::MAX` for a frame that is no answer).
fn wait_answer(
    up: &mut Up,
    seed: u64,
    src: [u8; 6],
    seq: u32,
    max_frame: usize,
) -> Result<Vec<u32>, String> {
    let hdr = up.hdr;
    let (mut frame, mut expected, mut got) = (Vec::new(), Vec::new(), Vec::new());
    echo_frame(seed, src, 0, seq, max_frame, &mut frame);
    answer_of(&frame, &mut expected);
    let mut others = Vec::new();
    let answer = await_step(QUIET_US, || loop {
        match next_received(up, &mut got) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some(Err(e)),
        }
        let body = &got[hdr.min(got.len())..];
        match echo_id(body) {
            Some((EchoKind::Answer, 0, s)) if s == seq => {
                return Some(match first_difference(&expected, body) {
                    Some(diff) => Err(format!(
                        "frame {} ({} bytes): answer {}",
                        seq,
                        expected.len(),
                        diff
                    )),
                    None => Ok(()),
                });
            }
            Some((EchoKind::Answer, _, s)) => others.push(s),
            _ => others.push(u32::MAX),
        }
    });
    match answer {
        Some(Ok(())) => Ok(others),
        Some(Err(e)) => Err(e),
        None => Err(format!(
            "frame {} (from {}): no answer within {} ms",
            seq,
            MacText(src),
            QUIET_US / 1000
        )),
    }
}

/// The receive filter at work, through the echo peer (which answers to
/// each frame's source address): with the device's MAC set elsewhere,
/// promiscuous mode takes an answer to the configured address; with it
/// off, that answer is dropped while one to the device's address comes
/// (the peer answers in order, so the first was filtered by then); a MAC
/// table holding the configured address takes it again. Then multicast
/// (QEMU's rules: with promiscuous mode off a group address passes in
/// all-multicast mode or when the table's multicast list holds it): an
/// answer to a group is dropped with neither, taken in all-multicast
/// mode, and taken with the group in the table.
pub fn filter(m: &mut Machine) -> Outcome {
    if let Some(o) = missing(m) {
        return o;
    }
    let Some((d, n)) = served(m, NetPeer::Echo).into_iter().next() else {
        return Outcome::skip("no nets= device with an echo peer (:echo)");
    };
    let max_frame = n.max_frame();
    let wanted = dev::FEATURES & !(1 << dev::F_MRG_RXBUF | 1 << dev::F_MQ);
    let mut up = match bring_up(&d, plain(2), wanted, 1, (0, max_frame)) {
        Ok(Some(up)) => up,
        Ok(None) => return Outcome::fail(&format!("{}: revision 2 refused", d.bus)),
        Err(e) => return Outcome::fail(&format!("{}: {}", d.bus, e.as_str())),
    };
    for (bit, name) in [
        (dev::F_CTRL_VQ, "CTRL_VQ"),
        (dev::F_CTRL_RX, "CTRL_RX"),
        (dev::F_CTRL_MAC_ADDR, "CTRL_MAC_ADDR"),
    ] {
        if !has(up.features, bit) {
            return Outcome::skip(&format!("{}: {} not offered", d.bus, name));
        }
    }
    let Some(mut ctrl) = up.ctrl.take() else {
        return Outcome::skip(&format!("{}: no control queue", d.bus));
    };
    let seed = m.cfg.seed;
    let mac = up.mac;
    let other = alternate_mac(mac);
    let group = group_mac(mac);
    let o = up.order;
    let s0 = FILTER_SEQ0;
    let bus = d.bus;
    let mut run = || -> Result<(), (String, String, String)> {
        let plain = |e: String| {
            (
                format!("{} filter", bus),
                String::from("every frame answered as the filter says"),
                e,
            )
        };
        let mut command = |up: &mut Up, what: &str, class, cmd, data: &[u8]| match ctrl
            .command(&mut up.t, class, cmd, data)
        {
            Ok(ACK_OK) => Ok(()),
            Ok(a) => Err((
                format!("{} control: {}", bus, what),
                format!("{}", Ack(ACK_OK)),
                format!("{}", Ack(a)),
            )),
            Err(e) => Err(plain(text(&format!("{} control: {}", bus, what), &e))),
        };
        command(
            &mut up,
            "MAC address set",
            dev::CTRL_MAC,
            dev::CTRL_MAC_ADDR_SET,
            &other,
        )?;
        command(
            &mut up,
            "promiscuous on",
            dev::CTRL_RX,
            dev::CTRL_RX_PROMISC,
            &[1],
        )?;
        // Sends the frame whose answer the filter must drop, if any, then
        // one whose answer it must take, and waits for the latter's.
        let exchange = |up: &mut Up, drop: Option<([u8; 6], u32)>, take: ([u8; 6], u32)| {
            if let Some((to, seq)) = drop {
                send_one(up, seed, to, seq, max_frame).map_err(plain)?;
            }
            send_one(up, seed, take.0, take.1, max_frame).map_err(plain)?;
            wait_answer(up, seed, take.0, take.1, max_frame).map_err(plain)
        };
        // Nothing may come before the taken answer.
        let quiet = |others: Vec<u32>, what: &str, drop: Option<([u8; 6], u32)>, take: u32| {
            if others.is_empty() {
                return Ok(());
            }
            let expected = match drop {
                Some((to, seq)) => format!(
                    "none (the answer to frame {}, sent to {}{}, dropped)",
                    seq,
                    if to[0] & 1 == 1 { "the group " } else { "" },
                    MacText(to)
                ),
                None => String::from("none"),
            };
            Err((
                format!("{} filter: {}: answers before frame {}'s", bus, what, take),
                expected,
                format!("frames {:?}", others.as_slice()),
            ))
        };
        let what = "promiscuous on, the device's MAC moved";
        quiet(exchange(&mut up, None, (mac, s0))?, what, None, s0)?;
        command(
            &mut up,
            "promiscuous off",
            dev::CTRL_RX,
            dev::CTRL_RX_PROMISC,
            &[0],
        )?;
        let (drop, take) = (Some((mac, s0 + 1)), (other, s0 + 2));
        let what = "promiscuous mode off, the device's MAC moved";
        quiet(exchange(&mut up, drop, take)?, what, drop, take.1)?;
        let table = dev::mac_table(o, &[mac], &[]);
        command(
            &mut up,
            "MAC table set",
            dev::CTRL_MAC,
            dev::CTRL_MAC_TABLE_SET,
            &table,
        )?;
        let what = "the old MAC in the MAC table";
        quiet(exchange(&mut up, None, (mac, s0 + 3))?, what, None, s0 + 3)?;
        // Multicast: the table holds no group, all-multicast mode is off.
        let s = s0 + 4;
        let (drop, take) = (Some((group, s)), (other, s + 1));
        let what = "all-multicast off, no group in the MAC table";
        quiet(exchange(&mut up, drop, take)?, what, drop, take.1)?;
        command(
            &mut up,
            "all-multicast on",
            dev::CTRL_RX,
            dev::CTRL_RX_ALLMULTI,
            &[1],
        )?;
        let others = exchange(&mut up, None, (group, s + 2))?;
        command(
            &mut up,
            "all-multicast off",
            dev::CTRL_RX,
            dev::CTRL_RX_ALLMULTI,
            &[0],
        )?;
        quiet(others, "all-multicast on", None, s + 2)?;
        let table = dev::mac_table(o, &[mac], &[group]);
        command(
            &mut up,
            "MAC table set with the group",
            dev::CTRL_MAC,
            dev::CTRL_MAC_TABLE_SET,
            &table,
        )?;
        let what = "the group in the MAC table";
        quiet(exchange(&mut up, None, (group, s + 3))?, what, None, s + 3)?;
        // With CTRL_RX_EXTRA: no-multicast drops a group's answer even in
        // all-multicast mode with the group in the table; no-unicast drops
        // one to the device's own address.
        if has(up.features, dev::F_CTRL_RX_EXTRA) {
            let s = s0 + 8;
            command(
                &mut up,
                "all-multicast on",
                dev::CTRL_RX,
                dev::CTRL_RX_ALLMULTI,
                &[1],
            )?;
            for (what, cmd, (drop, take)) in [
                (
                    "no-multicast on (all-multicast on, the group in the MAC table)",
                    dev::CTRL_RX_NOMULTI,
                    ((group, s), (other, s + 1)),
                ),
                (
                    "no-unicast on (the device's own address)",
                    dev::CTRL_RX_NOUNI,
                    ((other, s + 2), (group, s + 3)),
                ),
            ] {
                command(&mut up, what, dev::CTRL_RX, cmd, &[1])?;
                let others = exchange(&mut up, Some(drop), take)?;
                command(&mut up, what, dev::CTRL_RX, cmd, &[0])?;
                quiet(others, what, Some(drop), take.1)?;
            }
            command(
                &mut up,
                "all-multicast off",
                dev::CTRL_RX,
                dev::CTRL_RX_ALLMULTI,
                &[0],
            )?;
        }
        let empty = dev::mac_table(o, &[], &[]);
        command(
            &mut up,
            "MAC table emptied",
            dev::CTRL_MAC,
            dev::CTRL_MAC_TABLE_SET,
            &empty,
        )?;
        command(
            &mut up,
            "MAC address restored",
            dev::CTRL_MAC,
            dev::CTRL_MAC_ADDR_SET,
            &mac,
        )?;
        command(
            &mut up,
            "promiscuous on again",
            dev::CTRL_RX,
            dev::CTRL_RX_PROMISC,
            &[1],
        )
    };
    let result = run();
    let _ = up.t.reset();
    let extra = if has(up.features, dev::F_CTRL_RX_EXTRA) {
        "; no-multicast and no-unicast drop theirs"
    } else {
        "; CTRL_RX_EXTRA not offered (no-multicast, no-unicast not tried)"
    };
    match result {
        Ok(()) => {
            crate::out!(
                "# net {} filter: device at {}: an answer to {} taken in promiscuous mode, dropped without it, taken with it in the MAC table; an answer to the group {} dropped, taken in all-multicast mode, taken with it in the table{}\n",
                d.bus,
                MacText(other),
                MacText(mac),
                MacText(group),
                extra
            );
            Outcome::Pass
        }
        Err((what, expected, got)) => Outcome::mismatch(
            &format!("{} (replay: seed={})", what.as_str(), Hex(seed)),
            expected.as_str(),
            got.as_str(),
        ),
    }
}

/// How long QEMU's user-mode network has to answer.
const USER_WAIT_US: u64 = 5_000_000;

/// Sends `frame` and waits for a received frame `pick` accepts (others
/// are passed over and counted).
fn exchange<R>(
    up: &mut Up,
    frame: &[u8],
    pick: &mut dyn FnMut(&[u8]) -> Option<R>,
) -> Result<(R, u32), String> {
    let header = dev::tx_header();
    let hdr = up.hdr;
    if !up.tx[0]
        .send(&mut up.t, &header[..hdr], frame)
        .map_err(|e| text("send", &e))?
    {
        return Err("no room in the transmit queue".into());
    }
    let mut others = 0;
    let mut got = Vec::new();
    let answer = await_step(crate::host_wait::us(USER_WAIT_US), || loop {
        match next_received(up, &mut got) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some(Err(e)),
        }
        if got.len() >= hdr {
            if let Some(r) = pick(&got[hdr..]) {
                return Some(Ok(r));
            }
        }
        others += 1;
    });
    match answer {
        Some(Ok(r)) => Ok((r, others)),
        Some(Err(e)) => Err(e),
        None => Err(format!(
            "no answer within {} ({} other frames)",
            crate::host_wait::text(USER_WAIT_US).as_str(),
            others
        )),
    }
}

/// Takes back pair 0's sent frames, and the next frame received into
/// `got` (header included) with its buffer posted again; false when none
/// is there.
fn next_received(up: &mut Up, got: &mut Vec<u8>) -> Result<bool, String> {
    up.tx[0]
        .reclaim()
        .map_err(|e| text("transmit queue 1", &e))?;
    let Some(u) = up.rx[0]
        .try_used()
        .map_err(|e| text("receive queue 0", &e))?
    else {
        return Ok(false);
    };
    got.clear();
    up.rx[0].read(u.buf, u.len, got);
    up.rx[0].release(u.buf);
    up.rx[0]
        .post(&mut up.t)
        .map_err(|e| text("posting receive buffers", &e))?;
    Ok(true)
}

/// Looks with `step` until it gives something or `timeout_us` passes (then
/// None): spinning a few milliseconds, then a look every millisecond from
/// an enabled wait, so that an answer that never comes does not keep a
/// host core busy for the whole timeout.
fn await_step<T>(timeout_us: u64, mut step: impl FnMut() -> Option<T>) -> Option<T> {
    let mut out = None;
    crate::arch::timer::poll_until(timeout_us, || {
        if out.is_none() {
            out = step();
        }
        out.is_some()
    });
    out
}

/// QEMU's user-mode network (`:user` in `nets=`): an ARP request for the
/// gateway answered with its MAC, a DHCPDISCOVER answered with an offer
/// of the first client address.
pub fn user(m: &mut Machine) -> Outcome {
    if let Some(o) = missing(m) {
        return o;
    }
    let Some((d, _)) = served(m, NetPeer::User).into_iter().next() else {
        return Outcome::skip("no nets= device on QEMU's user-mode network (:user)");
    };
    let mut up = match bring_up(
        &d,
        plain(2),
        dev::FEATURES & !(1 << dev::F_MRG_RXBUF),
        1,
        (0, MAX_FRAME),
    ) {
        Ok(Some(up)) => up,
        Ok(None) => return Outcome::fail(&format!("{}: revision 2 refused", d.bus)),
        Err(e) => return Outcome::fail(&format!("{}: {}", d.bus, e.as_str())),
    };
    let mac = up.mac;
    let arp = arp_request(mac, SLIRP_FIRST_CLIENT, SLIRP_GATEWAY);
    let reply = exchange(&mut up, &arp, &mut |f| {
        parse_arp_reply(f).filter(|r| r.sender_ip == SLIRP_GATEWAY)
    });
    let (reply, others) = match reply {
        Ok(r) => r,
        Err(e) => {
            return Outcome::mismatch(
                &format!("{}: ARP request for the gateway {}", d.bus, "10.0.2.2"),
                "an ARP reply",
                e.as_str(),
            )
        }
    };
    if reply.sender_mac != SLIRP_GATEWAY_MAC {
        return Outcome::mismatch(
            &format!("{}: the gateway's MAC in its ARP reply", d.bus),
            MacText(SLIRP_GATEWAY_MAC),
            MacText(reply.sender_mac),
        );
    }
    if reply.target_mac != mac || reply.target_ip != SLIRP_FIRST_CLIENT {
        return Outcome::mismatch(
            &format!("{}: the ARP reply's target", d.bus),
            MacText(mac),
            MacText(reply.target_mac),
        );
    }
    let xid = (m.cfg.seed as u32) | 1;
    let offer = exchange(&mut up, &dhcp_discover(mac, xid), &mut |f| {
        parse_dhcp_answer(f).filter(|a| a.xid == xid)
    });
    let (offer, others2) = match offer {
        Ok(o) => o,
        Err(e) => {
            return Outcome::mismatch(
                &format!("{}: DHCPDISCOVER (xid {})", d.bus, Hex(xid.into())),
                "a DHCP answer",
                e.as_str(),
            )
        }
    };
    let _ = up.t.reset();
    let ip = |a: [u8; 4]| format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]);
    crate::out!(
        "# net {} user: gateway {} at {}, offer of {} from {} ({} other frames passed over)\n",
        d.bus,
        ip(reply.sender_ip).as_str(),
        MacText(reply.sender_mac),
        ip(offer.yiaddr).as_str(),
        ip(offer.server.unwrap_or([0; 4])).as_str(),
        others + others2
    );
    if offer.kind != DHCP_OFFER {
        return Outcome::mismatch(
            &format!("{}: DHCP message type answering DISCOVER", d.bus),
            DHCP_OFFER,
            offer.kind,
        );
    }
    if offer.chaddr != mac {
        return Outcome::mismatch(
            &format!("{}: DHCP offer's chaddr", d.bus),
            MacText(mac),
            MacText(offer.chaddr),
        );
    }
    Outcome::expect_eq(
        &format!("{}: address offered by DHCP", d.bus),
        ip(SLIRP_FIRST_CLIENT).as_str(),
        ip(offer.yiaddr).as_str(),
    )
}
