//! What a virtio transport offers device code, so devices and checks do
//! not know whether CCW or the legacy s390-virtio page carries them.
//!
//! # Memory the device is given
//!
//! A virtio device stores, until it is reset, into every address it was
//! given: its rings, its indicators, and the buffers made available to it
//! (and, through the rings' contents, wherever the descriptors point). So
//! nothing here hands a device a raw address. Each takes the DMA memory
//! the address lies in, checks the address against it, and keeps that
//! memory in the device's [`DeviceHeld`] before the device sees the
//! address: rings as [`QueueRings`] ([`Transport::set_queue`]), indicators
//! (virtio-ccw's `set_*_indicators`), buffers as the queue's
//! [`DmaBuffer`](super::queue::DmaBuffer)s. The transport lets go of that
//! memory only when a reset has completed, and a transport dropped while
//! it holds memory resets the device first (or, if that fails, never
//! frees the memory). Dropping a queue, the indicators or a request's
//! buffer on an error path therefore never frees memory the device holds.
//!
//! Ring memory is also what steers the device: a descriptor names where
//! it stores. [`QueueRings`] therefore holds rings whose contents only a
//! queue writes ([`QueueRings::from_ring`], unsafe for that reason) or
//! that are zeroed and given up by their owner ([`QueueRings::zeroed`]);
//! and [`Transport`] is an unsafe trait, since the queues trust it to keep
//! what they hand it.

use super::ring::{RingMemory, LEGACY_ALIGN};
use crate::dma::{DeviceHeld, DmaMemory};
use alloc::rc::Rc;
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

/// How a queue's rings are laid out, as far as the device's accesses go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingFormat {
    /// Split ring, virtio 1.x: descriptors, avail ring, used ring, each at
    /// its own address.
    Split,
    /// Packed ring: descriptors and the two event-suppression structures.
    Packed,
    /// Legacy split ring (virtio-ccw revision 0, the legacy s390-virtio
    /// host): one area from the descriptors' address, the used ring at the
    /// next 4096-byte boundary after the avail ring.
    Legacy,
}

impl RingFormat {
    /// Bytes from each area's address (descriptors, driver area, device
    /// area) the device may read or write for a queue of `size` entries;
    /// the legacy format's one area counts as the descriptors'.
    pub fn area_lens(self, size: u16) -> [usize; 3] {
        let n = usize::from(size);
        // flags, idx, a ring entry per descriptor, used_event / avail_event.
        let avail = 6 + 2 * n;
        let used = 6 + 8 * n;
        match self {
            RingFormat::Split => [16 * n, avail, used],
            RingFormat::Packed => [16 * n, 4, 4],
            RingFormat::Legacy => {
                let used_at = (16 * n + avail).next_multiple_of(LEGACY_ALIGN as usize);
                [used_at + used, 0, 0]
            }
        }
    }
}

/// Where a queue's rings lie, and in whose memory.
enum Placement {
    /// In the driver's memory, which the transport keeps with the device's.
    Driver(Rc<DmaMemory>),
    /// Where the host placed them ([`Transport::host_ring`]).
    Host,
}

/// A queue's rings as a transport hands them to the device: their
/// addresses, checked against the memory they lie in, which no one can
/// write any more but the queue that owns the rings.
pub struct QueueRings {
    size: u16,
    format: RingFormat,
    at: QueueAddresses,
    placement: Placement,
}

impl QueueRings {
    fn in_memory(
        mem: Rc<DmaMemory>,
        size: u16,
        format: RingFormat,
        at: QueueAddresses,
    ) -> Result<Self, TransportError> {
        let lens = format.area_lens(size);
        let areas = [
            ("descriptor", at.desc),
            ("driver", at.driver),
            ("device", at.device),
        ];
        for ((area, addr), len) in areas.into_iter().zip(lens) {
            let inside = addr
                .checked_sub(mem.addr())
                .and_then(|off| usize::try_from(off).ok())
                .is_some_and(|off| mem.contains(off, len));
            if len > 0 && !inside {
                return Err(TransportError::RingOutsideMemory { area, addr, len });
            }
        }
        if format == RingFormat::Legacy && !at.desc.is_multiple_of(u64::from(LEGACY_ALIGN)) {
            // The device aligns the used ring's absolute address.
            return Err(TransportError::WrongRings {
                why: "a legacy ring not 4096-byte aligned",
            });
        }
        Ok(QueueRings {
            size,
            format,
            at,
            placement: Placement::Driver(mem),
        })
    }

    /// Rings of `size` entries at `at`, all in `mem`, zeroed: a device
    /// finds nothing made available in them. Taking `mem` whole means
    /// nothing else can write them afterwards.
    pub fn zeroed(
        mut mem: DmaMemory,
        size: u16,
        format: RingFormat,
        at: QueueAddresses,
    ) -> Result<Self, TransportError> {
        mem.bytes().fill(0);
        Self::in_memory(Rc::new(mem), size, format, at)
    }

    /// The rings of a queue at `at`, all in `mem`.
    ///
    /// # Safety
    ///
    /// Nothing writes `mem` but one `Virtqueue`, which makes available
    /// only chains whose buffers the device's [`DeviceHeld`] keeps (as
    /// [`Queue::submit`](super::queue::Queue::submit) does): whatever the
    /// device finds in the rings then names memory it holds.
    pub unsafe fn from_ring(
        mem: Rc<DmaMemory>,
        size: u16,
        format: RingFormat,
        at: QueueAddresses,
    ) -> Result<Self, TransportError> {
        Self::in_memory(mem, size, format, at)
    }

    /// Rings the host placed, of `size` entries from `desc` (legacy
    /// format): only the transport whose host placed them takes them.
    pub fn host(size: u16, desc: u64) -> Self {
        QueueRings {
            size,
            format: RingFormat::Legacy,
            at: QueueAddresses {
                desc,
                driver: 0,
                device: 0,
            },
            placement: Placement::Host,
        }
    }

    pub fn size(&self) -> u16 {
        self.size
    }

    pub fn format(&self) -> RingFormat {
        self.format
    }

    pub fn addresses(&self) -> QueueAddresses {
        self.at
    }

    /// Whether the driver placed them (in its own memory).
    pub fn placed_by_driver(&self) -> bool {
        matches!(self.placement, Placement::Driver(_))
    }

    /// Keeps the rings' memory with the device's, if the driver placed
    /// them: a transport does so before it gives the device the addresses.
    pub fn keep_memory(&self, held: &DeviceHeld) {
        if let Placement::Driver(mem) = &self.placement {
            held.keep(mem);
        }
    }
}

/// A ring the host placed in storage it set aside ([`Transport::host_ring`]):
/// only the queue code of this module's parent may use it, since whoever
/// holds its memory could make available any address.
pub struct HostRing(RingMemory);

impl HostRing {
    pub fn new(mem: RingMemory) -> Self {
        HostRing(mem)
    }

    pub(in crate::virtio) fn memory(&self) -> RingMemory {
        self.0
    }
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
    /// A ring area the device would use does not lie in the ring's memory.
    RingOutsideMemory {
        area: &'static str,
        addr: u64,
        len: usize,
    },
    /// An address for the device that does not lie in the memory given.
    OutsideMemory {
        what: &'static str,
        offset: usize,
        len: usize,
        mem_len: usize,
    },
    /// Rings this transport cannot hand its device (placed by the other
    /// party, or laid out for another revision).
    WrongRings {
        why: &'static str,
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
            TransportError::RingOutsideMemory { area, addr, len } => ufmt::uwrite!(
                f,
                "the {} area ({} bytes at {}) lies outside the ring's memory",
                area,
                len,
                Hex(addr)
            ),
            TransportError::OutsideMemory {
                what,
                offset,
                len,
                mem_len,
            } => ufmt::uwrite!(
                f,
                "{}: {} bytes at offset {} of {}-byte DMA memory",
                what,
                len,
                Hex(offset as u64),
                mem_len
            ),
            TransportError::WrongRings { why } => ufmt::uwrite!(f, "rings refused: {}", why),
        }
    }
}

/// The operations device code needs from a transport.
///
/// # Safety
///
/// Queues and their callers rely on the transport for the memory a device
/// stores into (see the module notes). An implementation gives its device
/// addresses only inside memory it keeps in its [`Transport::held`] list
/// (queue rings from [`Transport::set_queue`], the transport's own
/// indicators) or inside storage the host set aside itself (rings from
/// [`Transport::host_ring`], which must be storage nothing else in the
/// firmware uses, each ring handed out once); and it empties that list
/// only once a reset of the device has completed. Dropped while the list
/// holds memory, it resets the device first, or leaves the memory in the
/// list (never freed) if it cannot.
pub unsafe trait Transport {
    /// The virtio revision in use (0 = legacy).
    fn revision(&self) -> u8;
    /// Resets the device; once that has completed, lets go of the memory
    /// it was given.
    fn reset(&mut self) -> Result<(), TransportError>;
    /// The list of the device's DMA memory (a handle to it): what is added
    /// stays until the device has been reset.
    fn held(&self) -> DeviceHeld;
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
    fn host_ring(&mut self, _index: u16, _size: u16) -> Result<Option<HostRing>, TransportError> {
        Ok(None)
    }
    /// Hands the device queue `index`'s rings; rings in the driver's
    /// memory are kept with the device's first.
    fn set_queue(&mut self, index: u16, rings: QueueRings) -> Result<(), TransportError>;
    /// Tells the device a queue has new buffers; `data` is the notification
    /// data where VIRTIO_F_NOTIFICATION_DATA was negotiated.
    fn notify(&mut self, index: u16, data: Option<u32>) -> Result<(), TransportError>;
    /// Waits, taking the interrupts this transport's devices signal with,
    /// until `done()` holds or `timeout_us` passes; says whether it held.
    fn wait(&mut self, timeout_us: u64, done: &mut dyn FnMut() -> bool) -> bool;
    /// Like [`Transport::wait`], but spinning on `done()` without waiting
    /// for an interrupt: for queues whose interrupts are suppressed.
    fn poll(&mut self, timeout_us: u64, done: &mut dyn FnMut() -> bool) -> bool {
        self.wait(timeout_us, done)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::ring::{packed_layout, split_layout};

    #[test]
    fn area_lengths_cover_the_ring_layouts() {
        for size in [1u16, 16, 128, 256] {
            let split = split_layout(size, None).unwrap();
            let [desc, avail, used] = RingFormat::Split.area_lens(size);
            assert_eq!(desc, split.avail - split.desc);
            assert!(split.avail + avail <= split.used);
            assert_eq!(split.used + used, split.total);
            let packed = packed_layout(size).unwrap();
            let [desc, driver, device] = RingFormat::Packed.area_lens(size);
            assert_eq!(desc, packed.driver_event);
            assert_eq!(packed.driver_event + driver, packed.device_event);
            assert_eq!(packed.device_event + device, packed.total);
            let legacy = split_layout(size, Some(LEGACY_ALIGN)).unwrap();
            let [area, 0, 0] = RingFormat::Legacy.area_lens(size) else {
                panic!("one legacy area");
            };
            assert!(area <= legacy.total && area > legacy.used);
        }
    }

    #[test]
    fn rings_must_lie_in_their_memory() {
        let rings = |mem: DmaMemory, format, at: fn(u64) -> QueueAddresses| {
            let base = mem.addr();
            QueueRings::zeroed(mem, 16, format, at(base))
        };
        let three = |b| QueueAddresses {
            desc: b,
            driver: b + 4096,
            device: b + 8192,
        };
        let r = rings(DmaMemory::new(3 * 4096), RingFormat::Split, three).unwrap();
        assert!(r.placed_by_driver());
        assert_eq!(r.size(), 16);
        // The used ring's last bytes past the end.
        let tight = |b| QueueAddresses {
            desc: b,
            driver: b + 256,
            device: b + 4096 - 100,
        };
        assert!(matches!(
            rings(DmaMemory::new(4096), RingFormat::Split, tight),
            Err(TransportError::RingOutsideMemory { area: "device", .. })
        ));
        // Below the memory; a legacy area off the 4096 boundary.
        let below = |b: u64| QueueAddresses {
            desc: b - 4096,
            driver: b,
            device: b,
        };
        assert!(matches!(
            rings(DmaMemory::new(4096), RingFormat::Packed, below),
            Err(TransportError::RingOutsideMemory {
                area: "descriptor",
                ..
            })
        ));
        let odd = |b| QueueAddresses {
            desc: b + 16,
            driver: 0,
            device: 0,
        };
        assert!(matches!(
            rings(DmaMemory::new(3 * 4096), RingFormat::Legacy, odd),
            Err(TransportError::WrongRings { .. })
        ));
        // The driver's rings go with the device's memory.
        let held = DeviceHeld::default();
        r.keep_memory(&held);
        assert!(!held.is_empty());
        // Host rings carry no memory of the driver's.
        let host = QueueRings::host(16, 0x10000);
        assert!(!host.placed_by_driver());
        let none = DeviceHeld::default();
        host.keep_memory(&none);
        assert!(none.is_empty());
    }
}
