//! virtio-net as the firmware and the host's peers both see it: how the
//! host says it configured a net device (`nets=`), the echo frames the
//! firmware sends and the answers a peer sends back, and the few frames of
//! QEMU's user-mode network (ARP, DHCP) the firmware builds and reads.
//!
//! Echo frames: frame `seq` of queue pair `pair` is a pure function of the
//! seed, the pair, the sequence number and the guest's MAC address
//! ([`echo_frame`]); its answer is a pure function of the frame
//! ([`answer_of`]). The peer regenerates each frame it receives and
//! compares it byte for byte; the firmware does the same with each answer.

use crate::inventory::{parse_bus_id, BusId};
use crate::stress::Rng;
use alloc::string::String;
use alloc::vec::Vec;
use ufmt::{uDisplay, uWrite, Formatter};

pub type Mac = [u8; 6];

/// A MAC address as `52:54:00:12:34:56`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacText(pub Mac);

impl uDisplay for MacText {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            ufmt::uwrite!(f, "{}", crate::fmt::HexW(u64::from(*b), 2))?;
        }
        Ok(())
    }
}

impl core::fmt::Display for MacText {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// Six two-digit hex bytes separated by `sep`.
pub fn parse_mac(s: &str, sep: char) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(sep);
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16)
            .ok()
            .filter(|_| p.bytes().all(|c| c.is_ascii_hexdigit()))?;
    }
    parts.next().is_none().then_some(mac)
}

/// What sits at the other end of a net device's back-end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetPeer {
    /// Nothing that answers: only configuration and control are checked.
    None,
    /// A peer that answers every echo frame ([`answer_of`]).
    Echo,
    /// QEMU's user-mode network: a gateway at [`SLIRP_GATEWAY`], DHCP.
    User,
}

/// How the host configured one net device (a `nets=` item).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetConfig {
    pub bus: BusId,
    /// QEMU's `mac=`.
    pub mac: Mac,
    pub peer: NetPeer,
    /// Queue pairs (QEMU's `mq=on` with `queues=` on the back-end); 1
    /// without multi-queue.
    pub pairs: u16,
    /// The host sets the link down and up again (QMP `set_link`) after
    /// the [`NET_LINK_READY`](crate::checks::markers::NET_LINK_READY) lines.
    pub link: bool,
    /// QEMU's `host_mtu=` (VIRTIO_NET_F_MTU offered with it): echo frames
    /// then go up to `14 + mtu` bytes.
    pub mtu: Option<u16>,
    /// Control features the host turned off ([`CTRL_OFF`] bits: QEMU's
    /// `ctrl_rx=off`, `ctrl_vlan=off`, `ctrl_mac_addr=off`); the others
    /// are on, as QEMU's defaults.
    pub ctrl_off: u8,
}

/// The control features `nets=` can say the host turned off: the item's
/// word (`:off=ctrl_rx`, QEMU's property), its bit in
/// [`NetConfig::ctrl_off`], and the feature bit (VIRTIO_NET_F_CTRL_RX 18,
/// CTRL_VLAN 19, CTRL_MAC_ADDR 23).
pub const CTRL_OFF: [(&str, u8, u32); 3] = [
    ("ctrl_rx", 1, 18),
    ("ctrl_vlan", 2, 19),
    ("ctrl_mac_addr", 4, 23),
];

impl NetConfig {
    /// The longest echo frame: the MTU's plus the Ethernet header, else
    /// [`MAX_FRAME`].
    pub fn max_frame(&self) -> usize {
        self.mtu.map_or(MAX_FRAME, |m| 14 + usize::from(m))
    }

    /// `fe.0.0002:52-54-00-12-34-56[:echo|:user][:pairs=N][:mtu=N][:link]`
    /// `[:off=ctrl_rx][:off=ctrl_vlan][:off=ctrl_mac_addr]`.
    pub fn parse(item: &str) -> Option<NetConfig> {
        let mut parts = item.split(':');
        let bus = parse_bus_id(parts.next()?)?;
        let mac = parse_mac(parts.next()?, '-')?;
        let mut c = NetConfig {
            bus,
            mac,
            peer: NetPeer::None,
            pairs: 1,
            link: false,
            mtu: None,
            ctrl_off: 0,
        };
        let (mut peer, mut pairs) = (false, false);
        let number = |n: &str, lo: u64, hi: u64| {
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            n.parse::<u64>().ok().filter(|n| (lo..=hi).contains(n))
        };
        for p in parts {
            match p {
                "echo" | "user" if !peer => {
                    peer = true;
                    c.peer = if p == "echo" {
                        NetPeer::Echo
                    } else {
                        NetPeer::User
                    };
                }
                "link" if !c.link => c.link = true,
                _ if p.starts_with("mtu=") && c.mtu.is_none() => {
                    c.mtu = Some(number(&p[4..], MIN_MTU, MAX_MTU)? as u16);
                }
                _ if p.starts_with("off=") => {
                    let (_, bit, _) = CTRL_OFF.iter().find(|(w, _, _)| *w == &p[4..])?;
                    if c.ctrl_off & bit != 0 {
                        return None;
                    }
                    c.ctrl_off |= bit;
                }
                _ => {
                    let n = p.strip_prefix("pairs=").filter(|_| !pairs)?;
                    pairs = true;
                    c.pairs = number(n, 1, MAX_PAIRS)? as u16;
                }
            }
        }
        Some(c)
    }

    /// The item [`NetConfig::parse`] reads back as `self`.
    pub fn item(&self) -> String {
        let m = self.mac;
        let mut s = crate::format!(
            "{}:{}-{}-{}-{}-{}-{}",
            self.bus,
            crate::fmt::HexW(m[0].into(), 2),
            crate::fmt::HexW(m[1].into(), 2),
            crate::fmt::HexW(m[2].into(), 2),
            crate::fmt::HexW(m[3].into(), 2),
            crate::fmt::HexW(m[4].into(), 2),
            crate::fmt::HexW(m[5].into(), 2)
        );
        match self.peer {
            NetPeer::None => {}
            NetPeer::Echo => s.push_str(":echo"),
            NetPeer::User => s.push_str(":user"),
        }
        if self.pairs != 1 {
            s.push_str(&crate::format!(":pairs={}", self.pairs));
        }
        if let Some(m) = self.mtu {
            s.push_str(&crate::format!(":mtu={}", m));
        }
        if self.link {
            s.push_str(":link");
        }
        for (word, bit, _) in CTRL_OFF {
            if self.ctrl_off & bit != 0 {
                s.push_str(":off=");
                s.push_str(word);
            }
        }
        s
    }
}

/// The MTUs `mtu=` takes: the smallest IPv4 allows, and a jumbo frame's.
pub const MIN_MTU: u64 = 68;
pub const MAX_MTU: u64 = 9216;

/// The most queue pairs `pairs=` takes (the spec's limit is 0x8000; our
/// queues are at most 256).
pub const MAX_PAIRS: u64 = 127;

/// The echo peer's address: locally administered, unicast.
pub const PEER_MAC: Mac = [0x02, 0x7a, 0x76, 0x70, 0x65, 0x72];
/// Echo frames are IPv4/UDP (so that a multi-queue tap, which steers by
/// flow, sends each pair's answers back to that pair's receive queue):
/// from the guest's echo address, a port per queue pair, to the peer's
/// echo port; answers come back the other way. A private network no one
/// routes.
pub const ECHO_GUEST_IP: [u8; 4] = [10, 122, 118, 2];
pub const ECHO_PEER_IP: [u8; 4] = [10, 122, 118, 1];
/// The echo service's port (RFC 862), and the guest's first port.
pub const ECHO_PORT: u16 = 7;
pub const ECHO_GUEST_PORT0: u16 = 49152;
/// Ethernet frames without the FCS: the shortest one, and the longest
/// without a VLAN tag at the standard MTU.
pub const MIN_FRAME: usize = 60;
pub const MAX_FRAME: usize = 1514;
/// Bytes of an echo frame before its payload: Ethernet, IPv4 and UDP
/// headers, then the queue pair (u16) and the sequence number (u32),
/// big-endian.
pub const ECHO_HEADER: usize = 48;
const PAIR_AT: usize = 42;

/// The first sequence number `net.filter` sends (pair 0), apart from
/// `net.echo`'s.
pub const FILTER_SEQ0: u32 = 0x4000_0000;

/// Another unicast address for the guest (the last byte's top bit
/// flipped): `net.filter` moves the device there and sends some frames
/// from it; the peer takes frames from either.
pub fn alternate_mac(mac: Mac) -> Mac {
    let mut m = mac;
    m[5] ^= 0x80;
    m[0] &= !1;
    m
}

/// A multicast group address for the guest (an IPv4 group's MAC, its
/// last three bytes the guest's, their top bit clear): `net.filter`
/// sends frames "from" it, so that the peer's answers go to the group
/// and the all-multicast mode and the MAC table's multicast list decide.
pub fn group_mac(mac: Mac) -> Mac {
    [0x01, 0x00, 0x5e, mac[3] & 0x7f, mac[4], mac[5]]
}

/// Which way an echo frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EchoKind {
    /// From the guest to the peer.
    Frame,
    /// The peer's answer.
    Answer,
}

/// The generator stream of a queue pair's echo frames.
fn echo_stream(pair: u16) -> u64 {
    0x6e65_7400_0000 | u64::from(pair)
}

/// The length of echo frame `seq` of `pair` (`MIN_FRAME..=max`): often
/// the shortest and the longest, else uniform between.
pub fn echo_len(seed: u64, pair: u16, seq: u32, max: usize) -> usize {
    let max = max.max(MIN_FRAME);
    let mut rng = Rng::for_request(seed, echo_stream(pair), u64::from(seq));
    match rng.below(8) {
        0 => MIN_FRAME,
        1 => max,
        _ => rng.range(MIN_FRAME as u64, max as u64) as usize,
    }
}

/// Echo frame `seq` of `pair` from the guest at `guest`, into `out`.
pub fn echo_frame(seed: u64, guest: Mac, pair: u16, seq: u32, max: usize, out: &mut Vec<u8>) {
    let len = echo_len(seed, pair, seq, max);
    let mut rng = Rng::for_request(
        seed ^ 0x7061_796c_6f61_6473,
        echo_stream(pair),
        u64::from(seq),
    );
    out.clear();
    eth_header(out, PEER_MAC, guest, ETHERTYPE_IPV4);
    let ip_len = (len - 14) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[4..6].copy_from_slice(&(seq as u16).to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&ECHO_GUEST_IP);
    ip[16..20].copy_from_slice(&ECHO_PEER_IP);
    let sum = ip_checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    out.extend_from_slice(&ip);
    out.extend_from_slice(&ECHO_GUEST_PORT0.wrapping_add(pair).to_be_bytes());
    out.extend_from_slice(&ECHO_PORT.to_be_bytes());
    out.extend_from_slice(&(ip_len - 20).to_be_bytes());
    out.extend_from_slice(&[0, 0]); // no UDP checksum
    out.extend_from_slice(&pair.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    while out.len() < len {
        let w = rng.next_u64().to_be_bytes();
        let n = (len - out.len()).min(8);
        out.extend_from_slice(&w[..n]);
    }
}

/// The answer to `frame`: Ethernet and IPv4 addresses and UDP ports
/// swapped (the IPv4 checksum stays right), pair and sequence number
/// kept, every payload byte complemented (a device or peer that hands
/// back the frame unchanged shows).
pub fn answer_of(frame: &[u8], out: &mut Vec<u8>) {
    out.clear();
    if frame.len() < ECHO_HEADER {
        return;
    }
    out.extend_from_slice(frame);
    out[0..6].copy_from_slice(&frame[6..12]);
    out[6..12].copy_from_slice(&frame[0..6]);
    out[26..30].copy_from_slice(&frame[30..34]);
    out[30..34].copy_from_slice(&frame[26..30]);
    out[34..36].copy_from_slice(&frame[36..38]);
    out[36..38].copy_from_slice(&frame[34..36]);
    for b in &mut out[ECHO_HEADER..] {
        *b = !*b;
    }
}

/// Which way an echo frame goes, its pair and sequence number; None for
/// a frame that is not one (not IPv4/UDP, no echo port on either side).
pub fn echo_id(frame: &[u8]) -> Option<(EchoKind, u16, u32)> {
    if frame.len() < ECHO_HEADER
        || frame[12..14] != ETHERTYPE_IPV4.to_be_bytes()
        || frame[14] != 0x45
        || frame[23] != 17
    {
        return None;
    }
    let port = |at: usize| u16::from_be_bytes([frame[at], frame[at + 1]]);
    let kind = match (port(34), port(36)) {
        (_, ECHO_PORT) => EchoKind::Frame,
        (ECHO_PORT, _) => EchoKind::Answer,
        _ => return None,
    };
    let b = &frame[PAIR_AT..];
    Some((
        kind,
        u16::from_be_bytes([b[0], b[1]]),
        u32::from_be_bytes([b[2], b[3], b[4], b[5]]),
    ))
}

/// Where two frames first differ: the offset and both bytes (None where
/// one ended).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Difference {
    pub offset: usize,
    pub expected: Option<u8>,
    pub got: Option<u8>,
}

impl uDisplay for Difference {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        use crate::fmt::Hex;
        ufmt::uwrite!(f, "byte {}: expected ", self.offset)?;
        match self.expected {
            Some(b) => ufmt::uwrite!(f, "{}", Hex(b.into()))?,
            None => f.write_str("the end")?,
        }
        f.write_str(", got ")?;
        match self.got {
            Some(b) => ufmt::uwrite!(f, "{}", Hex(b.into())),
            None => f.write_str("the end"),
        }
    }
}

impl core::fmt::Display for Difference {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&crate::format!("{}", self))
    }
}

/// The first difference between `expected` and `got`, if any.
pub fn first_difference(expected: &[u8], got: &[u8]) -> Option<Difference> {
    let common = expected.len().min(got.len());
    if let Some(i) = (0..common).find(|&i| expected[i] != got[i]) {
        return Some(Difference {
            offset: i,
            expected: Some(expected[i]),
            got: Some(got[i]),
        });
    }
    (expected.len() != got.len()).then(|| Difference {
        offset: common,
        expected: expected.get(common).copied(),
        got: got.get(common).copied(),
    })
}

/// QEMU's user-mode network (libslirp): the gateway's address, the MAC
/// its emulated hosts answer ARP with (52:55 then the IPv4 address), and
/// the first address its DHCP server hands out (network + 15).
pub const SLIRP_GATEWAY: [u8; 4] = [10, 0, 2, 2];
pub const SLIRP_GATEWAY_MAC: Mac = [0x52, 0x55, 10, 0, 2, 2];
pub const SLIRP_FIRST_CLIENT: [u8; 4] = [10, 0, 2, 15];

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
const BROADCAST: Mac = [0xff; 6];

fn eth_header(out: &mut Vec<u8>, dst: Mac, src: Mac, ethertype: u16) {
    out.extend_from_slice(&dst);
    out.extend_from_slice(&src);
    out.extend_from_slice(&ethertype.to_be_bytes());
}

/// A broadcast ARP request from `mac`/`ip` for `target`, padded to the
/// shortest frame.
pub fn arp_request(mac: Mac, ip: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::with_capacity(MIN_FRAME);
    eth_header(&mut f, BROADCAST, mac, ETHERTYPE_ARP);
    // Ethernet hardware, IPv4 protocol, their address lengths, request.
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f.resize(MIN_FRAME, 0);
    f
}

/// An ARP reply as the firmware reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpReply {
    pub sender_mac: Mac,
    pub sender_ip: [u8; 4],
    pub target_mac: Mac,
    pub target_ip: [u8; 4],
}

/// Reads an ARP reply (Ethernet/IPv4); None for any other frame.
pub fn parse_arp_reply(frame: &[u8]) -> Option<ArpReply> {
    if frame.len() < 42 || frame[12..14] != ETHERTYPE_ARP.to_be_bytes() {
        return None;
    }
    let a = &frame[14..];
    if a[..8] != [0, 1, 8, 0, 6, 4, 0, 2] {
        return None;
    }
    let mac = |o: usize| -> Mac { a[o..o + 6].try_into().unwrap_or_default() };
    let ip = |o: usize| -> [u8; 4] { a[o..o + 4].try_into().unwrap_or_default() };
    Some(ArpReply {
        sender_mac: mac(8),
        sender_ip: ip(14),
        target_mac: mac(18),
        target_ip: ip(24),
    })
}

/// The Internet checksum of `bytes` (RFC 1071).
pub fn ip_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// BOOTP's fixed part (RFC 951) and the room for options after it: a
/// DHCP message of 576 IP bytes, the size every server takes.
const BOOTP_FIXED: usize = 236;
const BOOTP_OPTIONS: usize = 312;
const DHCP_COOKIE: [u8; 4] = [99, 130, 83, 99];
pub const DHCP_DISCOVER: u8 = 1;
pub const DHCP_OFFER: u8 = 2;

/// A broadcast DHCPDISCOVER from `mac` with transaction id `xid`.
pub fn dhcp_discover(mac: Mac, xid: u32) -> Vec<u8> {
    let mut bootp = Vec::with_capacity(BOOTP_FIXED + BOOTP_OPTIONS);
    // Request, Ethernet, 6-byte addresses, no hops; xid; secs 0; the
    // broadcast flag (we have no address to be answered at).
    bootp.extend_from_slice(&[1, 1, 6, 0]);
    bootp.extend_from_slice(&xid.to_be_bytes());
    bootp.extend_from_slice(&[0, 0, 0x80, 0]);
    bootp.resize(28, 0); // ciaddr, yiaddr, siaddr, giaddr
    bootp.extend_from_slice(&mac);
    bootp.resize(BOOTP_FIXED, 0); // chaddr padding, sname, file
    bootp.extend_from_slice(&DHCP_COOKIE);
    bootp.extend_from_slice(&[53, 1, DHCP_DISCOVER, 255]);
    bootp.resize(BOOTP_FIXED + BOOTP_OPTIONS, 0);

    let udp_len = 8 + bootp.len();
    let ip_len = 20 + udp_len;
    let mut ip = Vec::with_capacity(20);
    ip.extend_from_slice(&[0x45, 0]);
    ip.extend_from_slice(&(ip_len as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&[0, 0, 0, 0]);
    ip.extend_from_slice(&[255; 4]);
    let sum = ip_checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());

    let mut f = Vec::with_capacity(14 + ip_len);
    eth_header(&mut f, BROADCAST, mac, ETHERTYPE_IPV4);
    f.extend_from_slice(&ip);
    // Client port 68 to server port 67; no UDP checksum (IPv4 allows it).
    f.extend_from_slice(&68u16.to_be_bytes());
    f.extend_from_slice(&67u16.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&bootp);
    f
}

/// What a DHCP answer offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DhcpAnswer {
    /// The DHCP message type (option 53).
    pub kind: u8,
    pub xid: u32,
    /// The address offered (yiaddr).
    pub yiaddr: [u8; 4],
    /// The server identifier (option 54), if given.
    pub server: Option<[u8; 4]>,
    pub chaddr: Mac,
}

/// Reads a DHCP message from a server (IPv4, UDP 67 → 68, BOOTP reply,
/// the magic cookie); None for any other frame. A bad IPv4 header
/// checksum is refused too.
pub fn parse_dhcp_answer(frame: &[u8]) -> Option<DhcpAnswer> {
    if frame.len() < 14 + 20 || frame[12..14] != ETHERTYPE_IPV4.to_be_bytes() {
        return None;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0xf) * 4;
    if ip[0] >> 4 != 4 || ihl < 20 || ip.len() < ihl + 8 || ip[9] != 17 {
        return None;
    }
    if ip_checksum(&ip[..ihl]) != 0 {
        return None;
    }
    let udp = &ip[ihl..];
    if udp[0..2] != 67u16.to_be_bytes() || udp[2..4] != 68u16.to_be_bytes() {
        return None;
    }
    let b = &udp[8..];
    if b.len() < BOOTP_FIXED + 4 || b[0] != 2 || b[BOOTP_FIXED..BOOTP_FIXED + 4] != DHCP_COOKIE {
        return None;
    }
    let mut a = DhcpAnswer {
        kind: 0,
        xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        yiaddr: [b[16], b[17], b[18], b[19]],
        server: None,
        chaddr: b[28..34].try_into().ok()?,
    };
    let mut o = &b[BOOTP_FIXED + 4..];
    while let Some((&code, rest)) = o.split_first() {
        match code {
            0 => o = rest,
            255 => break,
            _ => {
                let (&len, rest) = rest.split_first()?;
                let value = rest.get(..usize::from(len))?;
                match (code, value) {
                    (53, [k]) => a.kind = *k,
                    (54, [p, q, r, s]) => a.server = Some([*p, *q, *r, *s]),
                    _ => {}
                }
                o = &rest[usize::from(len)..];
            }
        }
    }
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUEST: Mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    #[test]
    fn config_items_round_trip() {
        let c = NetConfig::parse("fe.0.0002:52-54-00-12-34-56:echo:link:mtu=9000:pairs=4").unwrap();
        assert_eq!(c.mac, GUEST);
        assert_eq!(
            (c.peer, c.pairs, c.link, c.mtu),
            (NetPeer::Echo, 4, true, Some(9000))
        );
        assert_eq!(
            c.item(),
            "fe.0.0002:52-54-00-12-34-56:echo:pairs=4:mtu=9000:link"
        );
        assert_eq!(c.max_frame(), 9014);
        let plain = NetConfig::parse("fe.0.0002:52-54-00-12-34-56").unwrap();
        assert_eq!(
            (plain.peer, plain.pairs, plain.link),
            (NetPeer::None, 1, false)
        );
        assert_eq!(plain.item(), "fe.0.0002:52-54-00-12-34-56");
        let off =
            NetConfig::parse("fe.0.0002:52-54-00-12-34-56:off=ctrl_vlan:off=ctrl_rx").unwrap();
        assert_eq!(off.ctrl_off, 3);
        assert_eq!(
            off.item(),
            "fe.0.0002:52-54-00-12-34-56:off=ctrl_rx:off=ctrl_vlan"
        );
        for bad in [
            "fe.0.0002",
            "fe.0.0002:52:54:00:12:34:56",
            "fe.0.0002:52-54-00-12-34",
            "fe.0.0002:52-54-00-12-34-5g",
            "fe.0.0002:52-54-00-12-34-56:echo:user",
            "fe.0.0002:52-54-00-12-34-56:pairs=0",
            "fe.0.0002:52-54-00-12-34-56:pairs=128",
            "fe.0.0002:52-54-00-12-34-56:pairs=2:pairs=2",
            "fe.0.0002:52-54-00-12-34-56:link:link",
            "fe.0.0002:52-54-00-12-34-56:mtu=67",
            "fe.0.0002:52-54-00-12-34-56:mtu=9217",
            "fe.0.0002:52-54-00-12-34-56:mtu=1500:mtu=1500",
            "fe.0.0002:52-54-00-12-34-56:mtu=+1500",
            "fe.0.0002:52-54-00-12-34-56:fast",
            "fe.0.0002:52-54-00-12-34-56:off=ctrl_rx:off=ctrl_rx",
            "fe.0.0002:52-54-00-12-34-56:off=mq",
            "fe.0.0002:52-54-00-12-34-56:off=",
        ] {
            assert_eq!(NetConfig::parse(bad), None, "{bad}");
        }
        assert_eq!(std::format!("{}", MacText(GUEST)), "52:54:00:12:34:56");
        assert_eq!(crate::format!("{}", MacText(GUEST)), "52:54:00:12:34:56");
    }

    #[test]
    fn echo_frames_are_pure_and_answers_differ() {
        let (mut a, mut b, mut ans) = (Vec::new(), Vec::new(), Vec::new());
        let mut lens = std::collections::BTreeSet::new();
        for seq in 0..200 {
            echo_frame(7, GUEST, 1, seq, MAX_FRAME, &mut a);
            echo_frame(7, GUEST, 1, seq, MAX_FRAME, &mut b);
            assert_eq!(a, b);
            assert!((MIN_FRAME..=MAX_FRAME).contains(&a.len()));
            assert_eq!(a.len(), echo_len(7, 1, seq, MAX_FRAME));
            assert_eq!(echo_id(&a), Some((EchoKind::Frame, 1, seq)));
            assert_eq!(ip_checksum(&a[14..34]), 0);
            assert_eq!(a[6..12], GUEST);
            lens.insert(a.len());
            answer_of(&a, &mut ans);
            assert_eq!(ans.len(), a.len());
            assert_eq!(ans[..6], GUEST);
            assert_eq!(ans[6..12], PEER_MAC);
            assert_eq!(echo_id(&ans), Some((EchoKind::Answer, 1, seq)));
            assert_eq!(ip_checksum(&ans[14..34]), 0);
            assert_eq!((&ans[26..30], &ans[30..34]), (&a[30..34], &a[26..30]));
            assert!(ans[ECHO_HEADER..]
                .iter()
                .zip(&a[ECHO_HEADER..])
                .all(|(x, y)| *x == !*y));
        }
        assert!(lens.contains(&MIN_FRAME) && lens.contains(&MAX_FRAME) && lens.len() > 50);
        // Another seed, pair or guest: other bytes.
        echo_frame(7, GUEST, 1, 3, MAX_FRAME, &mut a);
        echo_frame(8, GUEST, 1, 3, MAX_FRAME, &mut b);
        assert_ne!(a, b);
        echo_frame(7, GUEST, 2, 3, MAX_FRAME, &mut b);
        assert_ne!(a, b);
    }

    #[test]
    fn the_alternate_address_is_another_unicast_one() {
        let a = alternate_mac(GUEST);
        assert_ne!(a, GUEST);
        assert_eq!(a[0] & 1, 0);
        assert_eq!(a[..5], GUEST[..5]);
        assert_eq!(alternate_mac(a), GUEST);
        let g = group_mac(GUEST);
        assert_eq!(
            (g[0] & 1, g[..3] == [1, 0, 0x5e], g[3] & 0x80),
            (1, true, 0)
        );
        assert_ne!(g, alternate_mac(GUEST));
        const { assert!(FILTER_SEQ0 > 1 << 20, "apart from net.echo numbers") };
    }

    #[test]
    fn differences_are_located() {
        assert_eq!(first_difference(b"abc", b"abc"), None);
        let d = first_difference(b"abc", b"abd").unwrap();
        assert_eq!((d.offset, d.expected, d.got), (2, Some(b'c'), Some(b'd')));
        assert_eq!(crate::format!("{}", d), "byte 2: expected 0x63, got 0x64");
        let short = first_difference(b"abc", b"ab").unwrap();
        assert_eq!(
            (short.offset, short.expected, short.got),
            (2, Some(b'c'), None)
        );
        assert_eq!(
            crate::format!("{}", short),
            "byte 2: expected 0x63, got the end"
        );
    }

    #[test]
    fn arp_request_and_reply() {
        let f = arp_request(GUEST, SLIRP_FIRST_CLIENT, SLIRP_GATEWAY);
        assert_eq!(f.len(), MIN_FRAME);
        assert_eq!(f[..6], [0xff; 6]);
        assert_eq!(f[12..14], [8, 6]);
        assert_eq!(f[38..42], SLIRP_GATEWAY);
        // A reply as a gateway builds it from the request.
        let mut r = Vec::new();
        eth_header(&mut r, GUEST, SLIRP_GATEWAY_MAC, ETHERTYPE_ARP);
        r.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
        r.extend_from_slice(&SLIRP_GATEWAY_MAC);
        r.extend_from_slice(&SLIRP_GATEWAY);
        r.extend_from_slice(&GUEST);
        r.extend_from_slice(&SLIRP_FIRST_CLIENT);
        let a = parse_arp_reply(&r).unwrap();
        assert_eq!(a.sender_mac, SLIRP_GATEWAY_MAC);
        assert_eq!(a.sender_ip, SLIRP_GATEWAY);
        assert_eq!((a.target_mac, a.target_ip), (GUEST, SLIRP_FIRST_CLIENT));
        // Our own request is not a reply; a short frame is nothing.
        assert_eq!(parse_arp_reply(&f), None);
        assert_eq!(parse_arp_reply(&r[..30]), None);
    }

    #[test]
    fn dhcp_discover_and_offer() {
        let d = dhcp_discover(GUEST, 0x1234_5678);
        assert_eq!(d.len(), 14 + 576);
        assert_eq!(ip_checksum(&d[14..34]), 0, "a valid IPv4 header");
        // Turn the discover into an offer as a server would.
        let mut o = d.clone();
        o[..6].copy_from_slice(&[0xff; 6]);
        o[26..30].copy_from_slice(&SLIRP_GATEWAY);
        o[10 + 14..12 + 14].copy_from_slice(&[0, 0]);
        let sum = ip_checksum(&o[14..34]);
        o[24..26].copy_from_slice(&sum.to_be_bytes());
        o[34..36].copy_from_slice(&67u16.to_be_bytes());
        o[36..38].copy_from_slice(&68u16.to_be_bytes());
        let b = 42;
        o[b] = 2;
        o[b + 16..b + 20].copy_from_slice(&SLIRP_FIRST_CLIENT);
        let opts = b + BOOTP_FIXED + 4;
        o[opts..opts + 10].copy_from_slice(&[53, 1, DHCP_OFFER, 54, 4, 10, 0, 2, 2, 255]);
        let a = parse_dhcp_answer(&o).unwrap();
        assert_eq!(a.kind, DHCP_OFFER);
        assert_eq!(a.xid, 0x1234_5678);
        assert_eq!(a.yiaddr, SLIRP_FIRST_CLIENT);
        assert_eq!(a.server, Some(SLIRP_GATEWAY));
        assert_eq!(a.chaddr, GUEST);
        // The discover itself is no answer; a broken checksum is refused.
        assert_eq!(parse_dhcp_answer(&d), None);
        o[14 + 8] ^= 1;
        assert_eq!(parse_dhcp_answer(&o), None);
        // An option running past the end is refused, not read past.
        o[14 + 8] ^= 1;
        let mut cut = o.clone();
        cut.truncate(opts + 6);
        assert_eq!(parse_dhcp_answer(&cut), None);
        assert!(parse_dhcp_answer(&o).is_some());
    }
}
