//! virtio-mem, memory the host lends in blocks (virtio 1.2 section 5.15):
//! a region of guest storage at `addr`, of which the driver plugs and
//! unplugs blocks of `block_size` on the host's request (`requested_size`)
//! through one request queue. Every field and request is little-endian.

use super::super::queue::{setup_queue, DmaBuffer, DriveError, Queue};
use super::super::transport::{Transport, TransportError};
use crate::dma::DmaMemory;
use alloc::rc::Rc;
use ufmt::{uDisplay, uWrite, Formatter};

pub const DEVICE_ID: u32 = super::super::ids::MEM;
pub const REQUEST_QUEUE: u16 = 0;

/// Feature bits.
pub const F_ACPI_PXM: u32 = 0;
/// Unplugged memory must not be touched; a device that offers it refuses
/// a driver that does not accept it.
pub const F_UNPLUGGED_INACCESSIBLE: u32 = 1;
pub const F_PERSISTENT_SUSPEND: u32 = 2;

/// The configuration space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemConfig {
    pub block_size: u64,
    pub node_id: u16,
    pub addr: u64,
    pub region_size: u64,
    pub usable_region_size: u64,
    pub plugged_size: u64,
    pub requested_size: u64,
}

pub const CONFIG_LEN: usize = 56;

impl MemConfig {
    pub fn decode(b: &[u8; CONFIG_LEN]) -> Self {
        let q = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        MemConfig {
            block_size: q(0),
            node_id: u16::from_le_bytes([b[8], b[9]]),
            addr: q(16),
            region_size: q(24),
            usable_region_size: q(32),
            plugged_size: q(40),
            requested_size: q(48),
        }
    }
}

pub fn read_config<T: Transport + ?Sized>(t: &mut T) -> Result<MemConfig, TransportError> {
    let mut b = [0u8; CONFIG_LEN];
    t.read_config(&mut b)?;
    Ok(MemConfig::decode(&b))
}

/// A request to the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Plug { addr: u64, blocks: u16 },
    Unplug { addr: u64, blocks: u16 },
    UnplugAll,
    State { addr: u64, blocks: u16 },
}

/// Bytes of a request: type, padding, then address and block count.
pub const REQUEST_LEN: usize = 24;
/// Bytes of a response: type, padding, then the state.
pub const RESPONSE_LEN: usize = 10;

impl Request {
    pub fn encode(&self) -> [u8; REQUEST_LEN] {
        let (kind, addr, blocks) = match *self {
            Request::Plug { addr, blocks } => (0u16, addr, blocks),
            Request::Unplug { addr, blocks } => (1, addr, blocks),
            Request::UnplugAll => (2, 0, 0),
            Request::State { addr, blocks } => (3, addr, blocks),
        };
        let mut b = [0u8; REQUEST_LEN];
        b[0..2].copy_from_slice(&kind.to_le_bytes());
        b[8..16].copy_from_slice(&addr.to_le_bytes());
        b[16..18].copy_from_slice(&blocks.to_le_bytes());
        b
    }
}

/// The device's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response {
    Ack,
    Nack,
    Busy,
    Error,
    /// Any other type: the number.
    Other(u16),
}

impl Response {
    pub fn from_type(t: u16) -> Self {
        match t {
            0 => Response::Ack,
            1 => Response::Nack,
            2 => Response::Busy,
            3 => Response::Error,
            n => Response::Other(n),
        }
    }
}

impl uDisplay for Response {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match *self {
            Response::Ack => f.write_str("ACK"),
            Response::Nack => f.write_str("NACK"),
            Response::Busy => f.write_str("BUSY"),
            Response::Error => f.write_str("ERROR"),
            Response::Other(n) => ufmt::uwrite!(f, "type {}", n),
        }
    }
}

/// What a STATE request's ACK says of the range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockState {
    Plugged,
    Unplugged,
    Mixed,
    Other(u16),
}

impl BlockState {
    pub fn from_raw(s: u16) -> Self {
        match s {
            0 => BlockState::Plugged,
            1 => BlockState::Unplugged,
            2 => BlockState::Mixed,
            n => BlockState::Other(n),
        }
    }
}

impl uDisplay for BlockState {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match *self {
            BlockState::Plugged => f.write_str("PLUGGED"),
            BlockState::Unplugged => f.write_str("UNPLUGGED"),
            BlockState::Mixed => f.write_str("MIXED"),
            BlockState::Other(n) => ufmt::uwrite!(f, "state {}", n),
        }
    }
}

/// A response as read from its buffer: type, and the state (meaningful
/// for an ACKed STATE request).
pub fn decode_response(b: &[u8; RESPONSE_LEN]) -> (Response, BlockState) {
    (
        Response::from_type(u16::from_le_bytes([b[0], b[1]])),
        BlockState::from_raw(u16::from_le_bytes([b[8], b[9]])),
    )
}

/// A response the device gave against the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemError {
    Drive(DriveError),
    WrongToken { used: u16, submitted: u16 },
    ShortResponse { len: u32 },
}

impl From<DriveError> for MemError {
    fn from(e: DriveError) -> Self {
        MemError::Drive(e)
    }
}

impl uDisplay for MemError {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match *self {
            MemError::Drive(e) => ufmt::uwrite!(f, "{}", e),
            MemError::WrongToken { used, submitted } => {
                ufmt::uwrite!(f, "used token {} for submitted {}", used, submitted)
            }
            MemError::ShortResponse { len } => {
                ufmt::uwrite!(f, "a {}-byte response (at least 2 for the type)", len)
            }
        }
    }
}

/// A driven virtio-mem device: its request queue.
pub struct Mem {
    queue: Queue,
    /// Request then response, one request at a time.
    buf: Rc<DmaMemory>,
}

impl Mem {
    pub fn setup<T: Transport + ?Sized>(t: &mut T, features: u64) -> Result<Self, DriveError> {
        Ok(Mem {
            queue: setup_queue(t, REQUEST_QUEUE, features, false)?,
            buf: Rc::new(DmaMemory::new(REQUEST_LEN + RESPONSE_LEN)),
        })
    }

    /// Sends `req` and waits for the answer.
    pub fn request<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        req: Request,
    ) -> Result<(Response, BlockState), MemError> {
        self.buf.write(0, &req.encode());
        self.buf.write(REQUEST_LEN, &[0xff; RESPONSE_LEN]);
        let chain = [
            DmaBuffer {
                mem: &self.buf,
                offset: 0,
                len: REQUEST_LEN as u32,
                device_writable: false,
            },
            DmaBuffer {
                mem: &self.buf,
                offset: REQUEST_LEN,
                len: RESPONSE_LEN as u32,
                device_writable: true,
            },
        ];
        let token = self.queue.submit(t, &chain, false)?;
        let used = self.queue.wait_used(t)?;
        if used.token != token {
            return Err(MemError::WrongToken {
                used: used.token,
                submitted: token,
            });
        }
        if used.len < 2 {
            return Err(MemError::ShortResponse { len: used.len });
        }
        let mut r = [0u8; RESPONSE_LEN];
        self.buf.read(REQUEST_LEN, &mut r);
        Ok(decode_response(&r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        let r = Request::Plug {
            addr: 0x1_0000_0000,
            blocks: 3,
        }
        .encode();
        assert_eq!(&r[0..2], &[0, 0]);
        assert_eq!(&r[8..16], &[0, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&r[16..18], &[3, 0]);
        assert_eq!(Request::UnplugAll.encode()[0], 2);
        assert_eq!(Request::State { addr: 0, blocks: 1 }.encode()[0], 3);
        let mut resp = [0u8; RESPONSE_LEN];
        resp[0] = 0;
        resp[8] = 2;
        assert_eq!(decode_response(&resp), (Response::Ack, BlockState::Mixed));
        resp[0] = 1;
        assert_eq!(decode_response(&resp).0, Response::Nack);
        let mut c = [0u8; CONFIG_LEN];
        c[0..8].copy_from_slice(&(1u64 << 20).to_le_bytes());
        c[8] = 7;
        c[16..24].copy_from_slice(&(1u64 << 30).to_le_bytes());
        c[48..56].copy_from_slice(&(64u64 << 20).to_le_bytes());
        let d = MemConfig::decode(&c);
        assert_eq!(
            (d.block_size, d.node_id, d.addr, d.requested_size),
            (1 << 20, 7, 1 << 30, 64 << 20)
        );
    }
}
