//! What both ring formats share: the buffers and answers a queue deals in,
//! its errors, the `Virtqueue` trait, the checks every chain and answer
//! passes, and volatile access to ring memory.

use core::ptr;
use ufmt::{uDisplay, uWrite, Formatter};

use crate::fmt::Hex;

/// The largest queue size virtio allows, for both ring formats.
pub const MAX_QUEUE_SIZE: u16 = 32768;
/// The ring alignment of the legacy layout on virtio-ccw revision 0.
pub const LEGACY_ALIGN: u32 = 4096;
/// Bytes per descriptor, in the ring and in indirect tables, both formats.
pub const DESC_LEN: usize = 16;

/// Descriptor flags shared by both formats.
pub(crate) const DESC_F_NEXT: u16 = 1;
pub(crate) const DESC_F_WRITE: u16 = 2;
pub(crate) const DESC_F_INDIRECT: u16 = 4;
/// Packed-ring descriptor flags: the driver's and the device's wrap bits.
pub(crate) const DESC_F_AVAIL: u16 = 1 << 7;
pub(crate) const DESC_F_USED: u16 = 1 << 15;

/// Byte order of the ring fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endian {
    /// Legacy (revision 0) rings use the guest's order: big-endian on s390.
    Big,
    /// Every virtio 1.x ring (revision >= 1).
    Little,
}

/// One element of a buffer chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    /// Guest physical address.
    pub addr: u64,
    pub len: u32,
    /// The device writes it (otherwise it only reads it).
    pub device_writable: bool,
}

/// A buffer the device has finished with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Used {
    /// What [`Virtqueue::add`] returned for this chain.
    pub token: u16,
    /// Bytes the device says it wrote, from the first device-writable
    /// element on; checked against the chain's device-writable bytes.
    pub len: u32,
}

/// Memory for a ring or an indirect table, handed to the queue by whoever
/// allocated it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingMemory {
    addr: u64,
    len: usize,
}

impl RingMemory {
    /// # Safety
    ///
    /// `addr..addr + len` must be memory valid for reads and writes that
    /// nothing but the queue it is given to (and the device) touches for as
    /// long as that queue may use it: the queue's lifetime for a ring, until
    /// the chain's token comes back from `pop_used` for an indirect table.
    pub unsafe fn new(addr: u64, len: usize) -> Self {
        RingMemory { addr, len }
    }

    pub fn addr(&self) -> u64 {
        self.addr
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Why a queue refused an operation, or why the device's answer is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    ZeroSize,
    /// Split rings need a power-of-two size.
    SizeNotPowerOfTwo {
        size: u16,
    },
    SizeTooLarge {
        size: u16,
    },
    /// A legacy alignment that is not a power of two of at least 16.
    BadAlign {
        align: u32,
    },
    MemoryTooSmall {
        needed: usize,
        len: usize,
    },
    /// Ring memory or an indirect table at an address the layout cannot use.
    Misaligned {
        what: &'static str,
        addr: u64,
        align: u32,
    },
    EmptyChain,
    /// The spec wants every device-readable element before the first
    /// device-writable one; element `index` breaks that.
    ReadableAfterWritable {
        index: usize,
    },
    /// Element `index` runs past the end of the address space.
    BufferWraps {
        index: usize,
        addr: u64,
        len: u32,
    },
    /// A chain may hold at most 2^32 bytes in total.
    ChainTooLong {
        bytes: u64,
    },
    /// Not enough free descriptors for the chain (`needed` above the queue
    /// size can never fit).
    QueueFull {
        needed: usize,
        free: u16,
    },
    /// An indirect table may not hold more descriptors than the queue size.
    IndirectTooLong {
        descriptors: usize,
        size: u16,
    },
    IndirectTableTooSmall {
        needed: usize,
        len: usize,
    },
    /// The device returned an id that names no descriptor or buffer id.
    UnknownId {
        id: u32,
        size: u16,
    },
    /// The device returned an id that is not the head (split) or buffer id
    /// (packed) of a chain in flight: never made available, already
    /// returned, or the middle of a chain.
    NotInFlight {
        id: u16,
    },
    /// The device says it wrote more than the chain lets it. The entry is
    /// consumed and the chain released all the same (its id was good, so
    /// the queue stays consistent); only the length is wrong.
    UsedLenTooLong {
        id: u16,
        len: u32,
        writable: u64,
    },
    /// Split: the used index claims more completions than chains in flight.
    UsedIndexAhead {
        used_idx: u16,
        last_used: u16,
        in_flight: u16,
    },
    /// Packed: the descriptor where the next used one belongs has flags no
    /// honest device leaves there.
    BadUsedFlags {
        offset: u16,
        flags: u16,
        wrap: bool,
        in_flight: u16,
        /// The id field of that descriptor, as found.
        id: u16,
    },
    /// Packed: a used descriptor whose id names no buffer id.
    PackedUnknownId {
        offset: u16,
        flags: u16,
        id: u16,
        size: u16,
    },
    /// Packed: a used descriptor whose id is no chain in flight.
    PackedNotInFlight {
        offset: u16,
        flags: u16,
        id: u16,
        in_flight: u16,
    },
    /// Packed: the descriptor where the next used one belongs is still
    /// available while one further on is used: the device's used position
    /// skipped ahead (an honest device writes them in ring order).
    UsedSkippedAhead {
        expected: u16,
        found: u16,
        id: u16,
        flags: u16,
    },
}

impl uDisplay for QueueError {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        f.write_str("virtqueue: ")?;
        match *self {
            QueueError::ZeroSize => f.write_str("size 0"),
            QueueError::SizeNotPowerOfTwo { size } => ufmt::uwrite!(
                f,
                "size {} is not a power of two (split rings need one)",
                size
            ),
            QueueError::SizeTooLarge { size } => {
                ufmt::uwrite!(f, "size {} is above the maximum {}", size, MAX_QUEUE_SIZE)
            }
            QueueError::BadAlign { align } => ufmt::uwrite!(
                f,
                "legacy alignment {} is not a power of two of at least 16",
                align
            ),
            QueueError::MemoryTooSmall { needed, len } => {
                ufmt::uwrite!(f, "the ring needs {} bytes, its memory has {}", needed, len)
            }
            QueueError::Misaligned { what, addr, align } => {
                ufmt::uwrite!(f, "{} at {} is not {}-byte aligned", what, Hex(addr), align)
            }
            QueueError::EmptyChain => f.write_str("empty buffer chain"),
            QueueError::ReadableAfterWritable { index } => ufmt::uwrite!(
                f,
                "chain element {} is device-readable but follows a device-writable one",
                index
            ),
            QueueError::BufferWraps { index, addr, len } => ufmt::uwrite!(
                f,
                "chain element {} ({} bytes at {}) runs past the end of memory",
                index,
                len,
                Hex(addr)
            ),
            QueueError::ChainTooLong { bytes } => ufmt::uwrite!(
                f,
                "chain of {} bytes is longer than the 2^32 bytes allowed",
                bytes
            ),
            QueueError::QueueFull { needed, free } => ufmt::uwrite!(
                f,
                "full: the chain needs {} descriptors, {} are free",
                needed,
                free
            ),
            QueueError::IndirectTooLong { descriptors, size } => ufmt::uwrite!(
                f,
                "indirect table of {} descriptors is longer than the queue size {}",
                descriptors,
                size
            ),
            QueueError::IndirectTableTooSmall { needed, len } => ufmt::uwrite!(
                f,
                "indirect table needs {} bytes, its memory has {}",
                needed,
                len
            ),
            QueueError::UnknownId { id, size } => ufmt::uwrite!(
                f,
                "device returned id {}, but the queue has only {} entries",
                id,
                size
            ),
            QueueError::NotInFlight { id } => ufmt::uwrite!(
                f,
                "device returned id {}, which is not a chain in flight",
                id
            ),
            QueueError::UsedLenTooLong { id, len, writable } => ufmt::uwrite!(
                f,
                "device says it wrote {} bytes to id {}, which has only {} device-writable bytes",
                len,
                id,
                writable
            ),
            QueueError::UsedIndexAhead {
                used_idx,
                last_used,
                in_flight,
            } => ufmt::uwrite!(
                f,
                "used index {} is {} past the last one seen ({}), but only {} chains are in flight",
                used_idx,
                used_idx.wrapping_sub(last_used),
                last_used,
                in_flight
            ),
            QueueError::BadUsedFlags {
                offset,
                flags,
                wrap,
                in_flight,
                id,
            } => {
                let bit = |b: u16| u8::from(flags & b != 0);
                ufmt::uwrite!(f, "packed descriptor {} (id {}): flags: expected ", offset, id)?;
                if in_flight == 0 {
                    ufmt::uwrite!(f, "avail {} (nothing in flight)", u8::from(!wrap))?;
                } else {
                    let (used, avail) = if wrap {
                        (DESC_F_AVAIL | DESC_F_USED, DESC_F_AVAIL)
                    } else {
                        (0, DESC_F_USED)
                    };
                    ufmt::uwrite!(
                        f,
                        "{} (used) or {} (still available)",
                        Hex(u64::from(used)),
                        Hex(u64::from(avail))
                    )?;
                }
                ufmt::uwrite!(
                    f,
                    " with wrap counter {}, got {} (avail {}, used {}): ",
                    u8::from(wrap),
                    Hex(u64::from(flags)),
                    bit(DESC_F_AVAIL),
                    bit(DESC_F_USED)
                )?;
                if in_flight == 0 {
                    f.write_str("a used or available descriptor where none can be")
                } else {
                    ufmt::uwrite!(
                        f,
                        "neither available nor used in this lap ({} chains in flight)",
                        in_flight
                    )
                }
            }
            QueueError::PackedUnknownId {
                offset,
                flags,
                id,
                size,
            } => ufmt::uwrite!(
                f,
                "packed descriptor {} (flags {}): id: expected below the queue size {}, got {}",
                offset,
                Hex(u64::from(flags)),
                size,
                id
            ),
            QueueError::PackedNotInFlight {
                offset,
                flags,
                id,
                in_flight,
            } => ufmt::uwrite!(
                f,
                "packed descriptor {} (flags {}): id: expected one of the {} chains in flight, got {}, which is none of them",
                offset,
                Hex(u64::from(flags)),
                in_flight,
                id
            ),
            QueueError::UsedSkippedAhead {
                expected,
                found,
                id,
                flags,
            } => ufmt::uwrite!(
                f,
                "the device's used position skipped ahead: expected the next used descriptor at {}, which is still available, got one at {} (id {}, flags {})",
                expected,
                found,
                id,
                Hex(u64::from(flags))
            ),
        }
    }
}

/// The driver side of one virtqueue, whatever its ring format.
pub trait Virtqueue {
    /// Number of entries (descriptors in the ring).
    fn size(&self) -> u16;

    /// Makes a chain available as direct descriptors, device-readable
    /// elements first. Returns the token [`Virtqueue::pop_used`] will give
    /// back for it.
    fn add(&mut self, chain: &[Buffer]) -> Result<u16, QueueError>;

    /// Makes a chain available through one descriptor that points at an
    /// indirect table written into `table` (VIRTIO_F_INDIRECT_DESC). The
    /// table must stay untouched until the token comes back.
    fn add_indirect(&mut self, chain: &[Buffer], table: RingMemory) -> Result<u16, QueueError>;

    /// Whether the device wants an available-buffer notification for what
    /// was made available since the previous call (which this call
    /// consumes). False when nothing was added since.
    fn should_notify(&self) -> bool;

    /// What VIRTIO_F_NOTIFICATION_DATA sends with a notification: the avail
    /// index (split) or the next descriptor offset with the wrap counter in
    /// bit 15 (packed).
    fn next_avail_index(&self) -> u16;

    /// The next buffer the device has finished with, after checking
    /// everything the device wrote. `Ok(None)` when there is none yet. On
    /// errors other than [`QueueError::UsedLenTooLong`] nothing is consumed.
    fn pop_used(&mut self) -> Result<Option<Used>, QueueError>;

    /// Chains made available and not yet returned.
    fn in_flight(&self) -> u16;

    /// Descriptors free for new chains.
    fn free_descriptors(&self) -> u16;

    /// Whether VIRTIO_F_EVENT_IDX (VIRTIO_F_RING_EVENT_IDX) was negotiated.
    fn set_event_idx(&mut self, on: bool);

    /// Asks the device for used-buffer notifications, or not. Only advice:
    /// after enabling, check [`Virtqueue::pop_used`] once more, since a
    /// buffer may have been used just before the device saw the change.
    fn enable_interrupts(&mut self, on: bool);

    /// Why nothing came back, where the ring itself shows a fault that
    /// `pop_used` cannot see (asked when a wait for a used buffer timed
    /// out); None where nothing is wrong but the wait.
    fn stalled(&self) -> Option<QueueError> {
        None
    }

    /// Addresses of the three areas, as the transport hands them to the
    /// device: descriptors, driver area (avail ring / driver event
    /// suppression), device area (used ring / device event suppression).
    fn desc_area(&self) -> u64;
    fn driver_area(&self) -> u64;
    fn device_area(&self) -> u64;

    /// Test only: makes `buf` available as a malformed chain, one
    /// descriptor whose next is itself, to provoke a device's error path.
    /// The token, or None where the ring format has no such chain (or no
    /// free descriptor). The device should never return it.
    fn add_looped(&mut self, _buf: Buffer) -> Option<u16> {
        None
    }
}

/// Checks a chain against the spec's rules for drivers and returns its
/// device-writable bytes.
pub(crate) fn check_chain(chain: &[Buffer]) -> Result<u64, QueueError> {
    if chain.is_empty() {
        return Err(QueueError::EmptyChain);
    }
    let (mut total, mut writable, mut seen_writable) = (0u64, 0u64, false);
    for (index, b) in chain.iter().enumerate() {
        if b.len > 0 && b.addr.checked_add(u64::from(b.len) - 1).is_none() {
            return Err(QueueError::BufferWraps {
                index,
                addr: b.addr,
                len: b.len,
            });
        }
        if b.device_writable {
            seen_writable = true;
            writable += u64::from(b.len);
        } else if seen_writable {
            return Err(QueueError::ReadableAfterWritable { index });
        }
        total += u64::from(b.len);
    }
    if total > 1 << 32 {
        return Err(QueueError::ChainTooLong { bytes: total });
    }
    Ok(writable)
}

/// A used length must fit the chain's device-writable bytes.
pub(crate) fn check_used_len(id: u16, len: u32, writable: u64) -> Result<(), QueueError> {
    if u64::from(len) > writable {
        return Err(QueueError::UsedLenTooLong { id, len, writable });
    }
    Ok(())
}

/// Checks the caller's memory for an indirect table of `n` descriptors.
pub(crate) fn check_table(n: usize, size: u16, table: &RingMemory) -> Result<(), QueueError> {
    if n > usize::from(size) {
        return Err(QueueError::IndirectTooLong {
            descriptors: n,
            size,
        });
    }
    if table.len < n * DESC_LEN {
        return Err(QueueError::IndirectTableTooSmall {
            needed: n * DESC_LEN,
            len: table.len,
        });
    }
    // The spec sets no alignment for tables; we ask for the descriptor
    // table's, which keeps every field naturally aligned.
    if !table.addr.is_multiple_of(DESC_LEN as u64) {
        return Err(QueueError::Misaligned {
            what: "indirect table",
            addr: table.addr,
            align: DESC_LEN as u32,
        });
    }
    Ok(())
}

/// Checks the size rules shared by both formats.
pub(crate) fn check_size(size: u16) -> Result<(), QueueError> {
    match size {
        0 => Err(QueueError::ZeroSize),
        s if s > MAX_QUEUE_SIZE => Err(QueueError::SizeTooLarge { size }),
        _ => Ok(()),
    }
}

pub(crate) fn align_up(x: usize, align: usize) -> usize {
    (x + align - 1) & !(align - 1)
}

/// Volatile, bounds-checked access to a [`RingMemory`] in one byte order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ram {
    mem: RingMemory,
    endian: Endian,
}

/// Volatile reads and writes of one integer type in the ring's byte order.
macro_rules! accessors {
    ($read:ident, $write:ident, $t:ty) => {
        accessors!(read $read, $t);
        accessors!(write $write, $t);
    };
    (read $read:ident, $t:ty) => {
        pub(crate) fn $read(&self, off: usize) -> $t {
            let p = self.at::<$t>(off);
            // SAFETY: `at` checked that the field lies inside the memory and
            // is aligned; `RingMemory::new`'s contract makes that memory ours
            // (and the device's) to read.
            let raw = unsafe { ptr::read_volatile(p) };
            match self.endian {
                Endian::Big => <$t>::from_be(raw),
                Endian::Little => <$t>::from_le(raw),
            }
        }
    };
    (write $write:ident, $t:ty) => {
        pub(crate) fn $write(&self, off: usize, v: $t) {
            let p = self.at::<$t>(off);
            let raw = match self.endian {
                Endian::Big => v.to_be(),
                Endian::Little => v.to_le(),
            };
            // SAFETY: as for the read: in bounds, aligned, and ours to write.
            unsafe { ptr::write_volatile(p, raw) }
        }
    };
}

impl Ram {
    pub(crate) fn new(mem: RingMemory, endian: Endian) -> Self {
        Ram { mem, endian }
    }

    /// A pointer to a `T` at `off`. Panics rather than ever reaching
    /// outside the memory: offsets come from our own checked state, so a
    /// panic here is a bug in this module, not something a device can cause.
    fn at<T>(&self, off: usize) -> *mut T {
        let size = core::mem::size_of::<T>();
        assert!(
            off <= self.mem.len && self.mem.len - off >= size,
            "ring access out of bounds"
        );
        let addr = self.mem.addr + off as u64;
        assert!(addr.is_multiple_of(size as u64), "misaligned ring access");
        ptr::with_exposed_provenance_mut(addr as usize)
    }

    accessors!(r16, w16, u16);
    accessors!(r32, w32, u32);
    // The driver never reads back a 64-bit ring field.
    accessors!(write w64, u64);

    /// Zeroes the first `len` bytes.
    pub(crate) fn zero(&self, len: usize) {
        for off in 0..len {
            let p = self.at::<u8>(off);
            // SAFETY: in bounds (checked by `at`) and ours to write.
            unsafe { ptr::write_volatile(p, 0) }
        }
    }

    pub(crate) fn addr(&self) -> u64 {
        self.mem.addr
    }

    pub(crate) fn endian(&self) -> Endian {
        self.endian
    }
}

/// `vring_need_event` in our words: did the index `event` fall among the
/// `new - old` entries just published, counting modulo 2^16?
pub(crate) fn passed_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}
