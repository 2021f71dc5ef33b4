//! What a virtio transport offers device code, so devices and checks do
//! not know whether CCW or the legacy s390-virtio page carries them.

use super::ring::RingMemory;
use ufmt::{uDisplay, uWrite, Formatter};

bitflags::bitflags! {
    /// The device status byte (virtio 1.x section 2.1). Bits a device sets
    /// that the spec does not name are kept.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Status: u8 {
        const ACKNOWLEDGE = 1;
        const DRIVER = 2;
        const DRIVER_OK = 4;
        const FEATURES_OK = 8;
        const NEEDS_RESET = 0x40;
        const FAILED = 0x80;
    }
}

/// Device-independent feature bits.
pub const F_NOTIFY_ON_EMPTY: u32 = 24;
pub const F_ANY_LAYOUT: u32 = 27;
pub const F_INDIRECT_DESC: u32 = 28;
pub const F_EVENT_IDX: u32 = 29;
pub const F_VERSION_1: u32 = 32;
pub const F_ACCESS_PLATFORM: u32 = 33;
pub const F_RING_PACKED: u32 = 34;
pub const F_IN_ORDER: u32 = 35;
pub const F_NOTIFICATION_DATA: u32 = 38;

pub fn has(features: u64, bit: u32) -> bool {
    features & (1 << bit) != 0
}

/// Where a queue's rings are, as handed to the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueAddresses {
    pub desc: u64,
    pub driver: u64,
    pub device: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// The device rejected the command (unit check, command reject).
    Rejected {
        what: &'static str,
    },
    /// The channel program failed otherwise (details in the text).
    Io {
        what: &'static str,
    },
    /// The device did not keep a status we set.
    StatusNotKept {
        wrote: Status,
        read: Status,
    },
    /// The feature set we accepted was refused (FEATURES_OK not kept).
    FeaturesRefused,
    NoSuchQueue {
        index: u16,
    },
    Hypercall {
        what: &'static str,
        result: i64,
    },
    /// The hypercall raised a program interrupt.
    HypercallFault {
        what: &'static str,
    },
    /// An access past the readable part of the legacy device page.
    OutsidePage {
        offset: usize,
        len: usize,
    },
    /// The host placed a queue's ring where the driver may not use it.
    BadRing {
        index: u16,
        address: u64,
        why: &'static str,
    },
    /// A configuration access past the device's configuration space.
    ConfigPastEnd {
        len: usize,
        config_len: usize,
    },
}

impl uDisplay for TransportError {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        use crate::fmt::Hex;
        match *self {
            TransportError::Rejected { what } => {
                ufmt::uwrite!(f, "{} rejected by the device", what)
            }
            TransportError::Io { what } => ufmt::uwrite!(f, "{} failed on the channel", what),
            TransportError::StatusNotKept { wrote, read } => ufmt::uwrite!(
                f,
                "status {} written, {} read back",
                Hex(wrote.bits().into()),
                Hex(read.bits().into())
            ),
            TransportError::FeaturesRefused => {
                f.write_str("FEATURES_OK refused for the features accepted")
            }
            TransportError::NoSuchQueue { index } => {
                ufmt::uwrite!(f, "queue {} does not exist", index)
            }
            TransportError::Hypercall { what, result } => {
                ufmt::uwrite!(f, "{} hypercall returned {}", what, result)
            }
            TransportError::HypercallFault { what } => {
                ufmt::uwrite!(f, "{} hypercall raised a program interrupt", what)
            }
            TransportError::OutsidePage { offset, len } => ufmt::uwrite!(
                f,
                "{} bytes at offset {} of the device page: past its readable part",
                len,
                Hex(offset as u64)
            ),
            TransportError::BadRing {
                index,
                address,
                why,
            } => ufmt::uwrite!(
                f,
                "queue {}: the host's ring at {} {}",
                index,
                Hex(address),
                why
            ),
            TransportError::ConfigPastEnd { len, config_len } => ufmt::uwrite!(
                f,
                "{} config bytes asked for, the device has {}",
                len,
                config_len
            ),
        }
    }
}

/// The operations device code needs from a transport.
pub trait Transport {
    /// The virtio revision in use (0 = legacy).
    fn revision(&self) -> u8;
    fn reset(&mut self) -> Result<(), TransportError>;
    fn device_features(&mut self) -> Result<u64, TransportError>;
    fn set_driver_features(&mut self, features: u64) -> Result<(), TransportError>;
    fn set_status(&mut self, status: Status) -> Result<(), TransportError>;
    /// None where the transport cannot read the status back.
    fn status(&mut self) -> Result<Option<Status>, TransportError>;
    fn read_config(&mut self, buf: &mut [u8]) -> Result<(), TransportError>;
    fn write_config(&mut self, buf: &[u8]) -> Result<(), TransportError>;
    /// The queue's maximum size; 0 when the queue does not exist.
    fn queue_max(&mut self, index: u16) -> Result<u16, TransportError>;
    /// Where the host placed queue `index`'s ring of `size` entries, for
    /// transports whose host places rings (legacy s390-virtio); None where
    /// the driver places them. The memory is the queue's from then on.
    fn host_ring(&mut self, _index: u16, _size: u16) -> Result<Option<RingMemory>, TransportError> {
        Ok(None)
    }
    fn set_queue(
        &mut self,
        index: u16,
        size: u16,
        at: QueueAddresses,
    ) -> Result<(), TransportError>;
    /// Tells the device a queue has new buffers; `data` is the notification
    /// data where VIRTIO_F_NOTIFICATION_DATA was negotiated.
    fn notify(&mut self, index: u16, data: Option<u32>) -> Result<(), TransportError>;
    /// Waits, taking the interrupts this transport's devices signal with,
    /// until `done()` holds or `timeout_us` passes; says whether it held.
    fn wait(&mut self, timeout_us: u64, done: &mut dyn FnMut() -> bool) -> bool;
}

/// The status of a device the driver has finished setting up: FEATURES_OK
/// belongs to virtio 1 (revision >= 1) only.
pub fn driver_ok_status(revision: u8) -> Status {
    let features_ok = if revision >= 1 {
        Status::FEATURES_OK
    } else {
        Status::empty()
    };
    Status::ACKNOWLEDGE | Status::DRIVER | Status::DRIVER_OK | features_ok
}

/// Feature negotiation as the spec orders it: reset, ACKNOWLEDGE, DRIVER,
/// read the offer, accept `wanted ∩ offer`, FEATURES_OK (revision ≥ 1)
/// and check it stuck. Returns the accepted set.
pub fn negotiate<T: Transport + ?Sized>(t: &mut T, wanted: u64) -> Result<u64, TransportError> {
    t.reset()?;
    t.set_status(Status::ACKNOWLEDGE)?;
    t.set_status(Status::ACKNOWLEDGE | Status::DRIVER)?;
    let offer = t.device_features()?;
    let mut accept = offer & wanted;
    if t.revision() >= 1 {
        accept |= offer & (1 << F_VERSION_1);
    }
    t.set_driver_features(accept)?;
    if t.revision() >= 1 {
        let s = Status::ACKNOWLEDGE | Status::DRIVER | Status::FEATURES_OK;
        match t.set_status(s) {
            Err(TransportError::Rejected { .. }) => return Err(TransportError::FeaturesRefused),
            r => r?,
        }
        if let Some(read) = t.status()? {
            if !read.contains(Status::FEATURES_OK) {
                return Err(TransportError::FeaturesRefused);
            }
        }
    }
    Ok(accept)
}
