//! virtio-serial as host and firmware share it: how the host configured a
//! device (`serial=` on the command line), the seeded byte streams each
//! port carries each way, the chunk sizes both ends cut them into, and
//! the bytes of the emergency write.
//!
//! Every byte of a stream is a function of the seed, the device, the port,
//! the direction and its offset, so either end checks what it receives
//! without the other telling it, and a failure names the offset.

use crate::disk::mix;
use crate::inventory::BusId;
use crate::stress::Rng;
use alloc::string::String;
use alloc::vec::Vec;

/// QEMU's default `max_ports` of a virtio-serial device.
pub const DEFAULT_MAX_PORTS: u32 = 31;
/// Bytes each port carries each way unless `bytes=` says otherwise.
pub const DEFAULT_BYTES: u32 = 4096;
/// The longest chunk either end cuts a stream into.
pub const MAX_CHUNK: u32 = 2048;
/// How long the firmware waits for the host side of a dropped port
/// (`drop=`) to come back (PORT_OPEN 1) before it fails the run: QEMU 7.2
/// reconnects a client socket a whole number of seconds after it lost it.
pub const DROP_WAIT_US: u64 = 10_000_000;
/// Bytes written through the emergency-write field.
pub const EMERGENCY_LEN: usize = 16;
/// Bytes of its transmit stream the firmware writes to a port plugged
/// while it runs (`serial.hotplug`).
pub const PLUGGED_BYTES: usize = 64;

/// One port of a device as the host configured it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// Port number (QEMU's `nr=`).
    pub id: u32,
    /// QEMU's `name=`, if any.
    pub name: Option<String>,
    /// A virtconsole (else a virtserialport).
    pub console: bool,
}

/// A virtio-serial device as the host configured it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SerialConfig {
    pub bus: BusId,
    /// QEMU's `max_ports`: MULTIPORT is offered when it is above 1.
    pub max_ports: u32,
    /// QEMU's `emergency-write`.
    pub emergency: bool,
    /// Bytes each port carries each way.
    pub bytes: u32,
    /// The port whose host side closes after the close marker.
    pub close: Option<u32>,
    /// The port whose host side drops its connection once during
    /// `serial.stress` and comes back (`drop=N`): expected, so the
    /// streams resume where both ends know (see [`DROP_WAIT_US`]) instead
    /// of the disconnect failing the run.
    pub drop: Option<u32>,
    /// Ports, in ascending id order.
    pub ports: Vec<PortConfig>,
    /// The port the host unplugs at the unplug marker (`serial.hotplug`).
    pub unplug: Option<u32>,
    /// The virtserialport the host plugs at the plug marker.
    pub plug: Option<PortConfig>,
    /// Test only: the firmware sends the byte at this offset of this
    /// port's transmit stream inverted, so that the host's check must
    /// fail (port, offset).
    pub corrupt: Option<(u32, u64)>,
    /// Test only: in `serial.stress`'s interrupt rounds the firmware asks
    /// the device for no used-buffer interrupts on the data queues, so
    /// that the round must fail for want of them.
    pub mute: bool,
}

/// A port name the command line can carry and QEMU passes through: 1 to
/// 64 letters, digits, `.`, `-` and `_`.
pub fn valid_port_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn digits(v: &str) -> Option<u32> {
    u32::try_from(crate::number::digits(v, 10)?).ok()
}

/// `16K`, `1M` or bytes.
fn byte_count(v: &str) -> Option<u32> {
    let (num, shift) = match v.as_bytes().last()? {
        b'K' => (&v[..v.len() - 1], 10),
        b'M' => (&v[..v.len() - 1], 20),
        _ => (v, 0),
    };
    digits(num)?.checked_mul(1 << shift)
}

fn byte_text(n: u32) -> String {
    match n {
        0 => crate::format!("0"),
        n if n % (1 << 20) == 0 => crate::format!("{}M", n >> 20),
        n if n % (1 << 10) == 0 => crate::format!("{}K", n >> 10),
        n => crate::format!("{}", n),
    }
}

impl SerialConfig {
    pub fn new(bus: BusId) -> Self {
        SerialConfig {
            bus,
            max_ports: DEFAULT_MAX_PORTS,
            emergency: false,
            bytes: DEFAULT_BYTES,
            close: None,
            drop: None,
            ports: Vec::new(),
            unplug: None,
            plug: None,
            corrupt: None,
            mute: false,
        }
    }

    /// Whether MULTIPORT is offered (QEMU: `max_ports` above 1).
    pub fn multiport(&self) -> bool {
        self.max_ports > 1
    }

    pub fn port(&self, id: u32) -> Option<&PortConfig> {
        self.ports.iter().find(|p| p.id == id)
    }

    /// Parses one `serial=` item: `BUS[:max=N][:emerg][:bytes=N][:close=N]
    /// [:drop=N][:unplug=N][:plug=N[=NAME]]{:cN[=NAME]|:pN[=NAME]}`, `c` a
    /// console port, `p` a serial port, N its number. Ports must fit
    /// `max=`, each once; the closed and the dropped port must be serial
    /// ports (QEMU keeps a console open whatever its back-end does); the unplugged port one of them;
    /// the plugged port (a serial port) none of them, within `max=`.
    pub fn parse(item: &str) -> Option<Self> {
        let mut fields = item.split(':');
        let mut c = SerialConfig::new(fields.next()?.parse().ok()?);
        let mut seen: Vec<&str> = Vec::new();
        for field in fields {
            let (key, value) = match field.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (field, None),
            };
            let kind = key.as_bytes().first().copied()?;
            if (kind == b'c' || kind == b'p') && key.len() > 1 && digits(&key[1..]).is_some() {
                let id = digits(&key[1..])?;
                if c.ports.iter().any(|p| p.id == id) {
                    return None;
                }
                let name = match value {
                    Some(v) if valid_port_name(v) => Some(String::from(v)),
                    Some(_) => return None,
                    None => None,
                };
                c.ports.push(PortConfig {
                    id,
                    name,
                    console: kind == b'c',
                });
                continue;
            }
            if seen.contains(&key) {
                return None;
            }
            seen.push(key);
            match (key, value) {
                ("max", Some(v)) => c.max_ports = digits(v).filter(|&n| (1..=511).contains(&n))?,
                ("emerg", None) => c.emergency = true,
                ("mute", None) => c.mute = true,
                ("bytes", Some(v)) => c.bytes = byte_count(v).filter(|&n| n <= 64 << 20)?,
                ("close", Some(v)) => c.close = Some(digits(v)?),
                ("drop", Some(v)) => c.drop = Some(digits(v)?),
                ("unplug", Some(v)) => c.unplug = Some(digits(v)?),
                ("corrupt", Some(v)) => {
                    let (port, offset) = v.split_once('@')?;
                    c.corrupt = Some((digits(port)?, u64::from(digits(offset)?)));
                }
                ("plug", Some(v)) => {
                    let (id, name) = match v.split_once('=') {
                        Some((id, n)) if valid_port_name(n) => (id, Some(String::from(n))),
                        Some(_) => return None,
                        None => (v, None),
                    };
                    c.plug = Some(PortConfig {
                        id: digits(id)?,
                        name,
                        console: false,
                    });
                }
                _ => return None,
            }
        }
        c.ports.sort_by_key(|p| p.id);
        let names_twice = c
            .ports
            .iter()
            .enumerate()
            .any(|(i, p)| p.name.is_some() && c.ports[..i].iter().any(|q| q.name == p.name));
        let fits = c.ports.iter().all(|p| p.id < c.max_ports);
        let close_ok = c
            .close
            .is_none_or(|id| c.port(id).is_some_and(|p| !p.console));
        let drop_ok = c
            .drop
            .is_none_or(|id| c.port(id).is_some_and(|p| !p.console));
        let unplug_ok = c.unplug.is_none_or(|id| c.port(id).is_some());
        let corrupt_ok = c.corrupt.is_none_or(|(id, _)| {
            c.port(id).is_some() || c.plug.as_ref().is_some_and(|p| p.id == id)
        });
        let plug_ok = c.plug.as_ref().is_none_or(|p| {
            p.id < c.max_ports
                && c.port(p.id).is_none()
                && (p.name.is_none() || c.ports.iter().all(|q| q.name != p.name))
        });
        (fits && close_ok && drop_ok && unplug_ok && plug_ok && corrupt_ok && !names_twice)
            .then_some(c)
    }

    /// The item [`SerialConfig::parse`] reads back as `self`.
    pub fn item(&self) -> String {
        let mut s = crate::format!("{}", self.bus);
        if self.max_ports != DEFAULT_MAX_PORTS {
            s.push_str(&crate::format!(":max={}", self.max_ports));
        }
        if self.emergency {
            s.push_str(":emerg");
        }
        if self.bytes != DEFAULT_BYTES {
            s.push_str(&crate::format!(":bytes={}", byte_text(self.bytes).as_str()));
        }
        if let Some(id) = self.close {
            s.push_str(&crate::format!(":close={}", id));
        }
        if let Some(id) = self.drop {
            s.push_str(&crate::format!(":drop={}", id));
        }
        if let Some(id) = self.unplug {
            s.push_str(&crate::format!(":unplug={}", id));
        }
        if self.mute {
            s.push_str(":mute");
        }
        if let Some((port, offset)) = self.corrupt {
            s.push_str(&crate::format!(":corrupt={}@{}", port, offset));
        }
        if let Some(p) = &self.plug {
            s.push_str(&crate::format!(":plug={}", p.id));
            if let Some(n) = &p.name {
                s.push('=');
                s.push_str(n);
            }
        }
        for p in &self.ports {
            s.push_str(&crate::format!(
                ":{}{}",
                if p.console { "c" } else { "p" },
                p.id
            ));
            if let Some(n) = &p.name {
                s.push('=');
                s.push_str(n);
            }
        }
        s
    }
}

/// Which way a stream goes, from the guest's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Guest to host: the port's transmit queue.
    Tx,
    /// Host to guest: the port's receive queue.
    Rx,
}

impl Dir {
    pub fn name(self) -> &'static str {
        match self {
            Dir::Tx => "tx",
            Dir::Rx => "rx",
        }
    }
}

/// Whose chunk sizes: the guest's transmit buffers, the guest's receive
/// buffers, the host's writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cutter {
    GuestTx,
    GuestRx,
    HostWrite,
}

fn key(seed: u64, bus: BusId, port: u32, what: u64) -> u64 {
    let bus = u64::from(bus.cssid) << 24 | u64::from(bus.ssid) << 16 | u64::from(bus.devno);
    mix(seed ^ mix(bus << 32 ^ u64::from(port) << 4 ^ what ^ 0x7365_7269_616c))
}

/// The byte stream one port carries one way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stream {
    key: u64,
}

impl Stream {
    pub fn new(seed: u64, bus: BusId, port: u32, dir: Dir) -> Self {
        Stream {
            key: key(seed, bus, port, dir as u64 + 1),
        }
    }

    /// The byte at `offset`.
    pub fn byte(&self, offset: u64) -> u8 {
        let word = mix(self.key ^ (offset / 8).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        (word >> (offset % 8 * 8)) as u8
    }

    /// The bytes from `offset` into `out`.
    pub fn fill(&self, offset: u64, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            *b = self.byte(offset + i as u64);
        }
    }

    /// The first byte of `got` (taken to start at `offset`) that differs:
    /// its index in `got`, the expected byte.
    pub fn first_difference(&self, offset: u64, got: &[u8]) -> Option<(usize, u8)> {
        got.iter()
            .enumerate()
            .map(|(i, &b)| (i, b, self.byte(offset + i as u64)))
            .find(|&(_, b, e)| b != e)
            .map(|(i, _, e)| (i, e))
    }
}

/// Chunk sizes of one port's stream as one end cuts it: chunk `n` draws
/// only from its own generator, so a seed replays it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunks {
    seed: u64,
    stream: u64,
}

impl Chunks {
    pub fn new(seed: u64, bus: BusId, port: u32, cutter: Cutter) -> Self {
        Chunks {
            seed,
            stream: key(0, bus, port, cutter as u64 + 8),
        }
    }

    /// Size of chunk `n`: 1 to [`MAX_CHUNK`], small ones as often as
    /// large ones (log-uniform), so both one-byte and page-sized buffers
    /// come up.
    pub fn len(&self, n: u64) -> u32 {
        let mut rng = Rng::for_request(self.seed, self.stream, n);
        let bits = rng.range(0, u64::from(MAX_CHUNK.trailing_zeros()));
        rng.range(1 << bits >> 1, (2u64 << bits) - 1)
            .clamp(1, u64::from(MAX_CHUNK)) as u32
    }
}

/// What the firmware writes to the emergency-write field of the device at
/// `bus`, one byte a write: none zero (a zero write is no write).
pub fn emergency_bytes(seed: u64, bus: BusId) -> [u8; EMERGENCY_LEN] {
    let s = Stream {
        key: key(seed, bus, 0, 0x2a),
    };
    let mut out = [0u8; EMERGENCY_LEN];
    for (i, b) in out.iter_mut().enumerate() {
        *b = s.byte(i as u64) | 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bus(s: &str) -> BusId {
        s.parse().unwrap()
    }

    #[test]
    fn items_parse_and_write_back() {
        let c = SerialConfig::parse("fe.0.0003:max=4:emerg:bytes=16K:close=2:c0=zv.con:p2=zv.b:p1")
            .unwrap();
        assert_eq!(c.bus, bus("fe.0.0003"));
        assert_eq!(
            (c.max_ports, c.emergency, c.bytes, c.close),
            (4, true, 16384, Some(2))
        );
        assert_eq!(
            c.ports
                .iter()
                .map(|p| (p.id, p.console))
                .collect::<Vec<_>>(),
            [(0, true), (1, false), (2, false)]
        );
        assert_eq!(c.port(1).unwrap().name, None);
        assert_eq!(c.port(2).unwrap().name.as_deref(), Some("zv.b"));
        assert!(c.multiport());
        assert_eq!(
            c.item(),
            "fe.0.0003:max=4:emerg:bytes=16K:close=2:c0=zv.con:p1:p2=zv.b"
        );
        assert_eq!(SerialConfig::parse(&c.item()), Some(c));
        let hot = SerialConfig::parse("fe.0.0003:max=8:unplug=2:plug=5=zv.hot:p1:p2").unwrap();
        assert_eq!(hot.unplug, Some(2));
        assert_eq!(
            hot.plug,
            Some(PortConfig {
                id: 5,
                name: Some("zv.hot".into()),
                console: false
            })
        );
        assert_eq!(hot.item(), "fe.0.0003:max=8:unplug=2:plug=5=zv.hot:p1:p2");
        let dropped = SerialConfig::parse("fe.0.0003:drop=2:p1:p2").unwrap();
        assert_eq!(dropped.drop, Some(2));
        assert_eq!(dropped.item(), "fe.0.0003:drop=2:p1:p2");
        let muted = SerialConfig::parse("fe.0.0003:mute:p1").unwrap();
        assert!(muted.mute);
        assert_eq!(muted.item(), "fe.0.0003:mute:p1");
        let bad = SerialConfig::parse("fe.0.0003:corrupt=1@5000:p1").unwrap();
        assert_eq!(bad.corrupt, Some((1, 5000)));
        assert_eq!(bad.item(), "fe.0.0003:corrupt=1@5000:p1");
        assert!(SerialConfig::parse("fe.0.0003:corrupt=2@5:plug=2:p1").is_some());
        assert_eq!(
            SerialConfig::parse("fe.0.0003:plug=3")
                .unwrap()
                .plug
                .unwrap()
                .name,
            None
        );
        let plain = SerialConfig::parse("fe.0.0003").unwrap();
        assert_eq!(plain, SerialConfig::new(bus("fe.0.0003")));
        assert_eq!(plain.item(), "fe.0.0003");
    }

    #[test]
    fn bad_items_are_refused() {
        for bad in [
            "fe.0.0003:max=0",
            "fe.0.0003:max=512",
            "fe.0.0003:max=2:p2",
            "fe.0.0003:p1:p1",
            "fe.0.0003:p1=a:p2=a",
            "fe.0.0003:p1=a,b",
            "fe.0.0003:p1=a b",
            "fe.0.0003:p1=",
            "fe.0.0003:x1",
            "fe.0.0003:p",
            "fe.0.0003:emerg=on",
            "fe.0.0003:emerg:emerg",
            "fe.0.0003:bytes=+5",
            "fe.0.0003:close=1",
            "fe.0.0003:c0:close=0",
            "fe.0.0003:p1:drop=2",
            "fe.0.0003:c0:drop=0",
            "fe.0.0003:p1:drop=x",
            "fe.0.0003:max=4:max=5",
            "fe.0.0003:unplug=1",
            "fe.0.0003:p1:unplug=x",
            "fe.0.0003:p1:plug=1",
            "fe.0.0003:max=4:plug=4",
            "fe.0.0003:p1=a:plug=2=a",
            "fe.0.0003:plug=2=a b",
            "fe.0.0003:plug=",
            "fe.0.0003:p1:corrupt=2@5",
            "fe.0.0003:p1:corrupt=1",
            "fe.0.0003:p1:corrupt=1@x",
            "fe.0.0003:mute=1",
            "zz:p1",
        ] {
            assert_eq!(SerialConfig::parse(bad), None, "{bad} accepted");
        }
    }

    #[test]
    fn streams_differ_by_port_direction_and_seed() {
        let b = bus("fe.0.0003");
        let s = |seed, port, dir| {
            let mut v = [0u8; 64];
            Stream::new(seed, b, port, dir).fill(0, &mut v);
            v
        };
        assert_ne!(s(1, 1, Dir::Tx), s(1, 1, Dir::Rx));
        assert_ne!(s(1, 1, Dir::Tx), s(1, 2, Dir::Tx));
        assert_ne!(s(1, 1, Dir::Tx), s(2, 1, Dir::Tx));
        assert_eq!(s(1, 1, Dir::Tx), s(1, 1, Dir::Tx));
        // Any slice is the stream at its offset.
        let st = Stream::new(7, b, 3, Dir::Rx);
        let mut whole = [0u8; 100];
        st.fill(0, &mut whole);
        let mut part = [0u8; 37];
        st.fill(29, &mut part);
        assert_eq!(&whole[29..66], &part[..]);
        assert_eq!(st.first_difference(29, &part), None);
        part[5] ^= 0x10;
        assert_eq!(st.first_difference(29, &part), Some((5, whole[34])));
    }

    #[test]
    fn chunks_cover_small_and_large_and_replay() {
        let c = Chunks::new(9, bus("fe.0.0003"), 1, Cutter::GuestTx);
        let lens: Vec<u32> = (0..2000).map(|n| c.len(n)).collect();
        assert!(lens.iter().all(|&l| (1..=MAX_CHUNK).contains(&l)));
        assert!(lens.contains(&1));
        assert!(lens.iter().any(|&l| l > MAX_CHUNK / 2));
        assert_eq!(lens[17], c.len(17));
        let other = Chunks::new(9, bus("fe.0.0003"), 1, Cutter::GuestRx);
        assert!((0..50).any(|n| other.len(n) != c.len(n)));
    }

    #[test]
    fn emergency_bytes_are_never_zero() {
        let e = emergency_bytes(5, bus("fe.0.0003"));
        assert!(e.iter().all(|&b| b != 0));
        assert_ne!(e, emergency_bytes(6, bus("fe.0.0003")));
    }
}
