//! virtio-net, the network device (virtio 1.x section 5.1): queue pairs
//! (receive `2n`, transmit `2n + 1`), a control queue after them, a header
//! before every frame, and a small configuration space.
//!
//! Byte order: header fields, control-command data and the configuration
//! space are little-endian from virtio 1.0 on, the guest's (big-endian on
//! s390) for a legacy (revision 0) device.

use super::super::queue::{setup_queue, DmaBuffer, DriveError, Queue};
use super::super::transport::{has, Transport, TransportError};
pub use super::order::Order;
use crate::dma::DmaMemory;
use alloc::rc::Rc;
use ufmt::{uDisplay, uWrite, Formatter};

pub const DEVICE_ID: u32 = super::super::ids::NET;

/// Feature bits (section 5.1.3).
pub const F_CSUM: u32 = 0;
pub const F_GUEST_CSUM: u32 = 1;
pub const F_MTU: u32 = 3;
pub const F_MAC: u32 = 5;
pub const F_MRG_RXBUF: u32 = 15;
pub const F_STATUS: u32 = 16;
pub const F_CTRL_VQ: u32 = 17;
pub const F_CTRL_RX: u32 = 18;
pub const F_CTRL_VLAN: u32 = 19;
pub const F_MQ: u32 = 22;
pub const F_CTRL_MAC_ADDR: u32 = 23;
/// The receive-mode commands past all-multicast (all-unicast,
/// no-multicast, no-unicast, no-broadcast).
pub const F_CTRL_RX_EXTRA: u32 = 20;

/// The device features this driver knows how to use: no offloads (every
/// frame goes whole, its checksums as they are).
pub const FEATURES: u64 = 1 << F_MTU
    | 1 << F_MAC
    | 1 << F_MRG_RXBUF
    | 1 << F_STATUS
    | 1 << F_CTRL_VQ
    | 1 << F_CTRL_RX
    | 1 << F_CTRL_VLAN
    | 1 << F_MQ
    | 1 << F_CTRL_MAC_ADDR
    | 1 << F_CTRL_RX_EXTRA;

/// `status` bits.
pub const S_LINK_UP: u16 = 1;
pub const S_ANNOUNCE: u16 = 2;

/// Control classes and their commands (section 5.1.6.5).
pub const CTRL_RX: u8 = 0;
pub const CTRL_RX_PROMISC: u8 = 0;
pub const CTRL_RX_ALLMULTI: u8 = 1;
pub const CTRL_RX_NOMULTI: u8 = 3;
pub const CTRL_RX_NOUNI: u8 = 4;
pub const CTRL_MAC: u8 = 1;
pub const CTRL_MAC_TABLE_SET: u8 = 0;
pub const CTRL_MAC_ADDR_SET: u8 = 1;
pub const CTRL_VLAN: u8 = 2;
pub const CTRL_VLAN_ADD: u8 = 0;
pub const CTRL_VLAN_DEL: u8 = 1;
pub const CTRL_MQ: u8 = 4;
pub const CTRL_MQ_VQ_PAIRS_SET: u8 = 0;
/// Answers the device writes into a command's last byte.
pub const ACK_OK: u8 = 0;
pub const ACK_ERR: u8 = 1;
/// VLAN ids are 12 bits: 4096 and above are not ones.
pub const VLAN_IDS: u16 = 4096;

/// An answer byte, with its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack(pub u8);

impl uDisplay for Ack {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        let name = match self.0 {
            ACK_OK => "OK",
            ACK_ERR => "ERR",
            _ => "not an answer",
        };
        ufmt::uwrite!(f, "{} ({})", self.0, name)
    }
}

/// The header before every frame: flags, gso_type, hdr_len, gso_size,
/// csum_start, csum_offset, and `num_buffers` where it is there. A legacy
/// device without MRG_RXBUF has no `num_buffers` (10 bytes); with it, and
/// every virtio 1 device, 12 bytes.
pub fn header_len(revision: u8, features: u64) -> usize {
    if revision >= 1 || has(features, F_MRG_RXBUF) {
        12
    } else {
        10
    }
}

/// Offset of `num_buffers` in a 12-byte header.
pub const NUM_BUFFERS_AT: usize = 10;

/// What a receive header must hold when the driver negotiated no receive
/// offload (GUEST_CSUM, GUEST_TSO4/6, GUEST_UFO, ...): flags 0 and
/// gso_type GSO_NONE (0) (virtio 1.x 5.1.6.4.1). The first field that
/// does not, with its value.
pub fn rx_header_fault(hdr: &[u8]) -> Option<(&'static str, u8)> {
    [("flags", 0), ("gso_type", 1)]
        .into_iter()
        .find_map(|(name, at)| hdr.get(at).filter(|&&v| v != 0).map(|&v| (name, v)))
}

/// A header for a frame we send: no offload asked for, nothing else set.
pub fn tx_header() -> [u8; 12] {
    [0; 12]
}

/// Queue indexes: receive and transmit of queue pair `pair`; the control
/// queue comes after the last pair there can be (one pair without MQ).
pub fn rx_queue(pair: u16) -> u16 {
    2 * pair
}

pub fn tx_queue(pair: u16) -> u16 {
    2 * pair + 1
}

pub fn control_queue(features: u64, max_pairs: u16) -> u16 {
    if has(features, F_MQ) {
        2 * max_pairs
    } else {
        2
    }
}

/// The configuration space (section 5.1.4): the fields of features not
/// negotiated are as read, `None` where the space ends before them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetConfigSpace {
    pub mac: [u8; 6],
    pub status: Option<u16>,
    pub max_pairs: Option<u16>,
    pub mtu: Option<u16>,
}

/// Bytes read: up to `mtu`.
pub const CONFIG_LEN: usize = 12;

impl NetConfigSpace {
    /// Decodes the first `len` bytes of `b`.
    pub fn decode(b: &[u8; CONFIG_LEN], len: usize, order: Order) -> Self {
        let field = |at: usize| (len >= at + 2).then(|| order.u16(&b[at..]));
        let mut mac = [0; 6];
        mac.copy_from_slice(&b[..6]);
        NetConfigSpace {
            mac,
            status: field(6),
            max_pairs: field(8),
            mtu: field(10),
        }
    }

    /// Queue pairs the device has: `max_virtqueue_pairs` with MQ, else 1.
    pub fn pairs(&self, features: u64) -> u16 {
        match self.max_pairs {
            Some(n) if has(features, F_MQ) => n,
            _ => 1,
        }
    }
}

/// Reads the configuration space; a device whose space is shorter (no
/// MTU, no MQ) gives the fields it has.
pub fn read_config<T: Transport + ?Sized>(t: &mut T) -> Result<NetConfigSpace, TransportError> {
    let mut b = [0u8; CONFIG_LEN];
    let mut len = CONFIG_LEN;
    loop {
        match t.read_config(&mut b[..len]) {
            Ok(()) => break,
            Err(TransportError::ConfigPastEnd { .. }) if len > 6 => len -= 2,
            Err(e) => return Err(e),
        }
    }
    Ok(NetConfigSpace::decode(
        &b,
        len,
        Order::for_revision(t.revision()),
    ))
}

/// A 16-bit value in the device's order.
pub fn put16(order: Order, v: u16) -> [u8; 2] {
    match order {
        Order::Little => v.to_le_bytes(),
        Order::Big => v.to_be_bytes(),
    }
}

/// MAC_TABLE_SET's data: the unicast table then the multicast one, each a
/// 32-bit count and the addresses.
pub fn mac_table(order: Order, unicast: &[[u8; 6]], multicast: &[[u8; 6]]) -> alloc::vec::Vec<u8> {
    let mut d = alloc::vec::Vec::new();
    for table in [unicast, multicast] {
        d.extend_from_slice(&order.put32(table.len() as u32));
        for m in table {
            d.extend_from_slice(m);
        }
    }
    d
}

/// A command that went wrong on the way (not an ERR answer: that is the
/// device's to give).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlError {
    Drive(DriveError),
    /// The used buffer is not the command just made.
    WrongToken {
        used: u16,
        submitted: u16,
    },
    /// The device must write exactly the answer byte.
    BadLength {
        used: u32,
    },
}

impl From<DriveError> for ControlError {
    fn from(e: DriveError) -> Self {
        ControlError::Drive(e)
    }
}

impl uDisplay for ControlError {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match *self {
            ControlError::Drive(e) => ufmt::uwrite!(f, "{}", e),
            ControlError::WrongToken { used, submitted } => {
                ufmt::uwrite!(f, "used token {} for submitted {}", used, submitted)
            }
            ControlError::BadLength { used } => {
                ufmt::uwrite!(f, "used length {} for a 1-byte answer", used)
            }
        }
    }
}

/// The control queue: one command at a time.
pub struct Control {
    queue: Queue,
    /// Class and command, data, answer: one page is plenty.
    mem: Rc<DmaMemory>,
}

/// The most data bytes a command takes here.
pub const CONTROL_DATA_MAX: usize = 2048;

impl Control {
    pub fn setup<T: Transport + ?Sized>(
        t: &mut T,
        index: u16,
        features: u64,
        packed: bool,
    ) -> Result<Self, DriveError> {
        Ok(Control {
            queue: setup_queue(t, index, features, packed)?,
            mem: Rc::new(DmaMemory::new(4096)),
        })
    }

    /// Sends `class`/`command` with `data` (the header, the data and the
    /// answer byte each their own element) and returns the answer byte.
    pub fn command<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        class: u8,
        command: u8,
        data: &[u8],
    ) -> Result<u8, ControlError> {
        let data = &data[..data.len().min(CONTROL_DATA_MAX)];
        let ack_at = 8 + CONTROL_DATA_MAX;
        self.mem.write(0, &[class, command]);
        self.mem.write(8, data);
        // Not an answer: a device that writes nothing shows.
        self.mem.store(ack_at, 0xa5);
        let part = |offset: usize, len: usize, device_writable| DmaBuffer {
            mem: &self.mem,
            offset,
            len: len as u32,
            device_writable,
        };
        let (head, body, ack) = (
            part(0, 2, false),
            part(8, data.len(), false),
            part(ack_at, 1, true),
        );
        let token = if data.is_empty() {
            self.queue.submit(t, &[head, ack], false)?
        } else {
            self.queue.submit(t, &[head, body, ack], false)?
        };
        let used = self.queue.wait_used(t)?;
        if used.token != token {
            return Err(ControlError::WrongToken {
                used: used.token,
                submitted: token,
            });
        }
        if used.len != 1 {
            return Err(ControlError::BadLength { used: used.len });
        }
        Ok(self.mem.load(ack_at))
    }
}

/// A receive queue kept full of device-writable buffers of `buf_len`
/// bytes each, one element per buffer (with MRG_RXBUF a frame may take
/// several: its header's `num_buffers` says how many).
pub struct RxPool {
    pub queue: Queue,
    pub buf_len: usize,
    /// The buffers, and for each ring token the buffer it carries.
    bufs: alloc::vec::Vec<Rc<DmaMemory>>,
    by_token: alloc::vec::Vec<Option<usize>>,
    free: alloc::vec::Vec<usize>,
}

/// A used buffer of a receive queue: which buffer, how many bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxUsed {
    pub buf: usize,
    pub len: u32,
}

/// A receive queue's answer against the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxError {
    Drive(DriveError),
    /// A used token no buffer of ours carries.
    UnknownToken {
        token: u16,
    },
    /// More bytes than the buffer holds.
    TooLong {
        len: u32,
        buf_len: usize,
    },
}

impl uDisplay for RxError {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match *self {
            RxError::Drive(e) => ufmt::uwrite!(f, "{}", e),
            RxError::UnknownToken { token } => {
                ufmt::uwrite!(f, "used token {}, which no posted buffer has", token)
            }
            RxError::TooLong { len, buf_len } => {
                ufmt::uwrite!(f, "used length {} for a {}-byte buffer", len, buf_len)
            }
        }
    }
}

impl RxPool {
    /// Sets up receive queue `index` with `count` buffers (at most the
    /// queue's size) of `buf_len` bytes, on a packed ring or a split one;
    /// none is posted yet.
    pub fn setup<T: Transport + ?Sized>(
        t: &mut T,
        (index, packed): (u16, bool),
        features: u64,
        count: usize,
        buf_len: usize,
    ) -> Result<Self, DriveError> {
        let queue = setup_queue(t, index, features, packed)?;
        let count = count.clamp(1, usize::from(queue.size()));
        let bufs = (0..count)
            .map(|_| Rc::new(DmaMemory::new(buf_len)))
            .collect();
        Ok(RxPool {
            by_token: alloc::vec![None; usize::from(queue.size())],
            queue,
            buf_len,
            bufs,
            free: (0..count).rev().collect(),
        })
    }

    pub fn buffers(&self) -> usize {
        self.bufs.len()
    }

    /// Makes every free buffer available and notifies once.
    pub fn post<T: Transport + ?Sized>(&mut self, t: &mut T) -> Result<(), DriveError> {
        let mut any = false;
        while let Some(b) = self.free.pop() {
            let chain = [DmaBuffer {
                mem: &self.bufs[b],
                offset: 0,
                len: self.buf_len as u32,
                device_writable: true,
            }];
            let token = self.queue.add(&chain, false)?;
            if let Some(slot) = self.by_token.get_mut(usize::from(token)) {
                *slot = Some(b);
            }
            any = true;
        }
        if any {
            self.queue.kick(t)?;
        }
        Ok(())
    }

    /// The next used buffer, if any (the buffer is not free again until
    /// [`RxPool::release`]).
    pub fn try_used(&mut self) -> Result<Option<RxUsed>, RxError> {
        let Some(u) = self.queue.try_used().map_err(RxError::Drive)? else {
            return Ok(None);
        };
        let buf = self
            .by_token
            .get_mut(usize::from(u.token))
            .and_then(|s| s.take())
            .ok_or(RxError::UnknownToken { token: u.token })?;
        if u.len as usize > self.buf_len {
            self.free.push(buf);
            return Err(RxError::TooLong {
                len: u.len,
                buf_len: self.buf_len,
            });
        }
        Ok(Some(RxUsed { buf, len: u.len }))
    }

    /// Appends the first `len` bytes of buffer `buf` to `out`.
    pub fn read(&self, buf: usize, len: u32, out: &mut alloc::vec::Vec<u8>) {
        let from = out.len();
        out.resize(from + len as usize, 0);
        self.bufs[buf].read(0, &mut out[from..]);
    }

    /// Buffer `buf` may be posted again.
    pub fn release(&mut self, buf: usize) {
        self.free.push(buf);
    }
}

/// A transmit queue: each frame a chain of its header and its bytes, from
/// buffers of the pool's own, free again once the device used them.
pub struct TxPool {
    pub queue: Queue,
    bufs: alloc::vec::Vec<Rc<DmaMemory>>,
    by_token: alloc::vec::Vec<Option<usize>>,
    free: alloc::vec::Vec<usize>,
    buf_len: usize,
}

impl TxPool {
    /// Sets up transmit queue `index` with room for frames of up to
    /// `max_frame` bytes behind a 12-byte header, on a packed ring or a
    /// split one.
    pub fn setup<T: Transport + ?Sized>(
        t: &mut T,
        (index, packed): (u16, bool),
        features: u64,
        max_frame: usize,
    ) -> Result<Self, DriveError> {
        let queue = setup_queue(t, index, features, packed)?;
        let count = usize::from(queue.size() / 2).max(1);
        let buf_len = 16 + max_frame;
        Ok(TxPool {
            by_token: alloc::vec![None; usize::from(queue.size())],
            bufs: (0..count)
                .map(|_| Rc::new(DmaMemory::new(buf_len)))
                .collect(),
            free: (0..count).rev().collect(),
            queue,
            buf_len,
        })
    }

    /// Whether a frame can go now.
    pub fn has_room(&self) -> bool {
        !self.free.is_empty() && self.queue.free_descriptors() >= 2
    }

    /// Sends `frame` behind `header` (their own elements: a legacy device
    /// without ANY_LAYOUT takes the header only so); false where there is
    /// no room (see [`TxPool::has_room`]) or the frame is too long.
    pub fn send<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        header: &[u8],
        frame: &[u8],
    ) -> Result<bool, DriveError> {
        if !self.has_room() || 16 + frame.len() > self.buf_len || header.len() > 16 {
            return Ok(false);
        }
        let b = self.free.pop().unwrap_or_default();
        let mem = &self.bufs[b];
        mem.write(0, header);
        mem.write(16, frame);
        let chain = [
            DmaBuffer {
                mem,
                offset: 0,
                len: header.len() as u32,
                device_writable: false,
            },
            DmaBuffer {
                mem,
                offset: 16,
                len: frame.len() as u32,
                device_writable: false,
            },
        ];
        let token = self.queue.submit(t, &chain, false)?;
        if let Some(slot) = self.by_token.get_mut(usize::from(token)) {
            *slot = Some(b);
        }
        Ok(true)
    }

    /// Takes back every frame the device has used; returns how many, or
    /// the token no frame of ours carries.
    pub fn reclaim(&mut self) -> Result<u32, RxError> {
        let mut n = 0;
        while let Some(u) = self.queue.try_used().map_err(RxError::Drive)? {
            let b = self
                .by_token
                .get_mut(usize::from(u.token))
                .and_then(|s| s.take())
                .ok_or(RxError::UnknownToken { token: u.token })?;
            self.free.push(b);
            n += 1;
        }
        Ok(n)
    }

    /// Frames sent and not yet used.
    pub fn in_flight(&self) -> usize {
        self.bufs.len() - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_length_per_revision() {
        assert_eq!(header_len(0, 0), 10);
        assert_eq!(header_len(0, 1 << F_MRG_RXBUF), 12);
        assert_eq!(header_len(1, 0), 12);
        assert_eq!(header_len(2, 1 << F_MRG_RXBUF), 12);
    }

    #[test]
    fn config_fields_by_length_and_order() {
        let b = [0x52, 0x54, 0, 1, 2, 3, 0, 1, 0, 4, 0x05, 0xdc];
        let le = NetConfigSpace::decode(&b, 12, Order::Little);
        let be = NetConfigSpace::decode(&b, 12, Order::Big);
        assert_eq!(le.mac, [0x52, 0x54, 0, 1, 2, 3]);
        assert_eq!(
            (be.status, be.max_pairs, be.mtu),
            (Some(1), Some(4), Some(1500))
        );
        assert_eq!(le.status, Some(0x100));
        let short = NetConfigSpace::decode(&b, 8, Order::Big);
        assert_eq!(
            (short.status, short.max_pairs, short.mtu),
            (Some(1), None, None)
        );
        assert_eq!(be.pairs(1 << F_MQ), 4);
        assert_eq!(be.pairs(0), 1);
        assert_eq!(short.pairs(1 << F_MQ), 1);
    }

    #[test]
    fn receive_headers_without_offloads() {
        assert_eq!(rx_header_fault(&[0; 12]), None);
        let mut h = [0u8; 12];
        h[10] = 3; // num_buffers is not the header's business here
        assert_eq!(rx_header_fault(&h), None);
        h[0] = 2; // DATA_VALID
        assert_eq!(rx_header_fault(&h), Some(("flags", 2)));
        h[0] = 0;
        h[1] = 1; // GSO_TCPV4
        assert_eq!(rx_header_fault(&h), Some(("gso_type", 1)));
    }

    #[test]
    fn queues_and_tables() {
        assert_eq!(
            (rx_queue(0), tx_queue(0), rx_queue(3), tx_queue(3)),
            (0, 1, 6, 7)
        );
        assert_eq!(control_queue(0, 4), 2);
        assert_eq!(control_queue(1 << F_MQ, 4), 8);
        let t = mac_table(Order::Big, &[[1; 6]], &[]);
        assert_eq!(t.len(), 4 + 6 + 4);
        assert_eq!(t[..4], [0, 0, 0, 1]);
        assert_eq!(
            mac_table(Order::Little, &[], &[[2; 6], [3; 6]])[4..8],
            [2, 0, 0, 0]
        );
    }
}
