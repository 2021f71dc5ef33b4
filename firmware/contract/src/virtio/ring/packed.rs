//! Packed virtqueues: one descriptor ring that the driver and the device
//! both write, and two small event suppression structures.
//!
//! With `n` entries (any `n` from 1 to 32768), always little-endian since
//! packed rings exist only in virtio 1.1 and later:
//!
//! | area         | contents                                          | bytes |
//! |--------------|---------------------------------------------------|-------|
//! | desc         | `n` × {addr u64, len u32, id u16, flags u16}      | 16n   |
//! | driver event | off_wrap u16 (offset bits 0–14, wrap bit 15), flags u16 | 4 |
//! | device event | the same, written by the device                   | 4     |
//!
//! Both sides walk the ring in order and keep a wrap counter that starts
//! at 1 and flips each time they pass the end. The driver marks a slot
//! available with AVAIL = its counter and USED = the inverse; the device
//! marks it used with both equal to its counter. A chain takes consecutive
//! slots linked by NEXT; the device writes one used descriptor for it (with
//! the buffer id) and both sides then skip the chain's slot count.

use alloc::vec::Vec;
use core::cell::Cell;
use core::sync::atomic::{fence, Ordering};

use super::common::{
    check_chain, check_size, check_table, check_used_len, Buffer, Endian, QueueError, Ram,
    RingMemory, Used, Virtqueue, DESC_F_AVAIL, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_USED,
    DESC_F_WRITE, DESC_LEN,
};

/// Event suppression flags.
const EVENT_ENABLE: u16 = 0;
const EVENT_DISABLE: u16 = 1;
/// Only at the descriptor named by off_wrap (needs RING_EVENT_IDX).
const EVENT_DESC: u16 = 2;
const EVENT_FLAGS_MASK: u16 = 3;
const WRAP_BIT: u16 = 1 << 15;

/// Where the three parts sit inside one allocation, in bytes from its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedLayout {
    pub desc: usize,
    pub driver_event: usize,
    pub device_event: usize,
    /// Bytes to allocate.
    pub total: usize,
    /// Alignment the allocation's start needs (the descriptor ring's).
    pub align: u32,
}

/// The layout of a packed ring of `size` entries: descriptors (aligned
/// 16), then the driver and the device event structures (aligned 4).
pub fn packed_layout(size: u16) -> Result<PackedLayout, QueueError> {
    check_size(size)?;
    let driver_event = DESC_LEN * usize::from(size);
    Ok(PackedLayout {
        desc: 0,
        driver_event,
        device_event: driver_event + 4,
        total: driver_event + 8,
        align: DESC_LEN as u32,
    })
}

/// The layout of a packed ring of `size` entries with `gap` free bytes
/// before, between and after its three parts (for canaries around each).
/// `gap` must keep the descriptors' 16-byte alignment.
pub fn packed_layout_spaced(size: u16, gap: usize) -> Result<PackedLayout, QueueError> {
    let plain = packed_layout(size)?;
    if !gap.is_multiple_of(DESC_LEN) {
        return Err(QueueError::BadAlign { align: gap as u32 });
    }
    let driver_event = gap + plain.driver_event + 2 * gap;
    let device_event = driver_event + 4 + 2 * gap;
    Ok(PackedLayout {
        desc: gap,
        driver_event,
        device_event,
        total: device_event + 4 + gap,
        align: plain.align,
    })
}

/// What we remember about a buffer id in flight.
#[derive(Clone, Copy, Debug, Default)]
struct Chain {
    /// Ring slots it took; 0 = id not in flight.
    slots: u16,
    writable: u64,
}

/// The driver side of a packed virtqueue.
#[derive(Debug)]
pub struct PackedQueue {
    ram: Ram,
    layout: PackedLayout,
    size: u16,
    event_idx: bool,
    interrupts: bool,
    /// Where the next chain goes, and the driver wrap counter.
    next_avail: u16,
    avail_wrap: bool,
    /// Where the device writes the next used descriptor, and the device
    /// wrap counter we expect there.
    next_used: u16,
    used_wrap: bool,
    /// Slots not taken by chains in flight.
    free_slots: u16,
    in_flight: u16,
    /// Free buffer ids, used as a stack.
    free_ids: Vec<u16>,
    chains: Vec<Chain>,
    /// Slots made available since `should_notify` last answered.
    unnotified: Cell<u32>,
}

impl PackedQueue {
    /// A queue of `size` entries in `mem`, which it zeroes (the spec wants
    /// the ring zero-initialised).
    pub fn new(mem: RingMemory, size: u16, event_idx: bool) -> Result<Self, QueueError> {
        Self::with_layout(mem, size, packed_layout(size)?, event_idx)
    }

    /// Like [`PackedQueue::new`] with the parts where `layout` puts them
    /// (one of [`packed_layout`] or [`packed_layout_spaced`] for `size`).
    pub fn with_layout(
        mem: RingMemory,
        size: u16,
        layout: PackedLayout,
        event_idx: bool,
    ) -> Result<Self, QueueError> {
        if mem.len() < layout.total {
            return Err(QueueError::MemoryTooSmall {
                needed: layout.total,
                len: mem.len(),
            });
        }
        if !mem.addr().is_multiple_of(u64::from(layout.align)) {
            return Err(QueueError::Misaligned {
                what: "ring memory",
                addr: mem.addr(),
                align: layout.align,
            });
        }
        let ram = Ram::new(mem, Endian::Little);
        ram.zero(layout.total);
        let q = PackedQueue {
            ram,
            layout,
            size,
            event_idx,
            interrupts: true,
            next_avail: 0,
            avail_wrap: true,
            next_used: 0,
            used_wrap: true,
            free_slots: size,
            in_flight: 0,
            // Reversed, so ids come out 0, 1, 2, ...
            free_ids: (0..size).rev().collect(),
            chains: alloc::vec![Chain::default(); usize::from(size)],
            unnotified: Cell::new(0),
        };
        q.write_driver_event();
        Ok(q)
    }

    pub fn layout(&self) -> PackedLayout {
        self.layout
    }

    fn desc_at(&self, slot: u16) -> usize {
        self.layout.desc + DESC_LEN * usize::from(slot)
    }

    /// The flags that make a slot available in the lap `wrap`.
    fn avail_bits(wrap: bool) -> u16 {
        if wrap {
            DESC_F_AVAIL
        } else {
            DESC_F_USED
        }
    }

    /// Position of (slot, wrap) on the cycle of 2n the driver walks (wrap 1
    /// first), so that windows of slots become plain subtraction.
    fn cycle_pos(&self, slot: u16, wrap: bool) -> u32 {
        u32::from(slot) + if wrap { 0 } else { u32::from(self.size) }
    }

    /// Advances (slot, wrap) by `by` slots, flipping wrap past the end.
    fn advance(&self, slot: u16, wrap: bool, by: u16) -> (u16, bool) {
        let s = u32::from(slot) + u32::from(by);
        if s >= u32::from(self.size) {
            ((s - u32::from(self.size)) as u16, !wrap)
        } else {
            (s as u16, wrap)
        }
    }

    fn write_driver_event(&self) {
        let at = self.layout.driver_event;
        let flags = if !self.interrupts {
            EVENT_DISABLE
        } else if self.event_idx {
            // Ask for an interrupt when the next used descriptor lands.
            let wrap = if self.used_wrap { WRAP_BIT } else { 0 };
            self.ram.w16(at, self.next_used | wrap);
            // The offset must be in place before the flags that point at it.
            fence(Ordering::Release);
            EVENT_DESC
        } else {
            EVENT_ENABLE
        };
        self.ram.w16(at + 2, flags);
    }

    /// Takes a buffer id and the slots of a chain of `slots`; the caller
    /// has checked there is room.
    fn start(&mut self, slots: u16, writable: u64) -> (u16, u16, bool) {
        // At least one slot per id, so ids last as long as slots do.
        let id = self.free_ids.pop().unwrap_or(0);
        self.chains[usize::from(id)] = Chain { slots, writable };
        (id, self.next_avail, self.avail_wrap)
    }

    /// Hands the chain at (`first`, its flags) to the device by writing
    /// the first descriptor's flags last.
    fn publish(&mut self, first: u16, first_flags: u16, slots: u16) {
        // Every other field of the chain must be visible before the flags
        // that make it available.
        fence(Ordering::Release);
        self.ram.w16(self.desc_at(first) + 14, first_flags);
        let (slot, wrap) = self.advance(self.next_avail, self.avail_wrap, slots);
        self.next_avail = slot;
        self.avail_wrap = wrap;
        self.free_slots -= slots;
        self.in_flight += 1;
        self.unnotified
            .set(self.unnotified.get().saturating_add(u32::from(slots)));
    }
}

impl Virtqueue for PackedQueue {
    fn size(&self) -> u16 {
        self.size
    }

    fn add(&mut self, chain: &[Buffer]) -> Result<u16, QueueError> {
        let writable = check_chain(chain)?;
        if chain.len() > usize::from(self.free_slots) {
            return Err(QueueError::QueueFull {
                needed: chain.len(),
                free: self.free_slots,
            });
        }
        let count = chain.len() as u16;
        let (id, first, first_wrap) = self.start(count, writable);
        let (mut slot, mut wrap) = (first, first_wrap);
        let mut first_flags = 0;
        for (i, b) in chain.iter().enumerate() {
            let mut flags = Self::avail_bits(wrap);
            if i + 1 < chain.len() {
                flags |= DESC_F_NEXT;
            }
            if b.device_writable {
                flags |= DESC_F_WRITE;
            }
            let at = self.desc_at(slot);
            self.ram.w64(at, b.addr);
            self.ram.w32(at + 8, b.len);
            // The spec only needs the id in the last descriptor; every one
            // carrying it costs nothing and helps anyone reading a dump.
            self.ram.w16(at + 12, id);
            if i == 0 {
                first_flags = flags;
            } else {
                self.ram.w16(at + 14, flags);
            }
            (slot, wrap) = self.advance(slot, wrap, 1);
        }
        self.publish(first, first_flags, count);
        Ok(id)
    }

    fn add_indirect(&mut self, chain: &[Buffer], table: RingMemory) -> Result<u16, QueueError> {
        let writable = check_chain(chain)?;
        check_table(chain.len(), self.size, &table)?;
        if self.free_slots == 0 {
            return Err(QueueError::QueueFull { needed: 1, free: 0 });
        }
        let t = Ram::new(table, Endian::Little);
        for (i, b) in chain.iter().enumerate() {
            let at = DESC_LEN * i;
            t.w64(at, b.addr);
            t.w32(at + 8, b.len);
            // Table entries carry no id and no flag but WRITE.
            t.w16(at + 12, 0);
            t.w16(at + 14, if b.device_writable { DESC_F_WRITE } else { 0 });
        }
        let (id, slot, wrap) = self.start(1, writable);
        let at = self.desc_at(slot);
        self.ram.w64(at, table.addr());
        self.ram.w32(at + 8, (DESC_LEN * chain.len()) as u32);
        self.ram.w16(at + 12, id);
        self.publish(slot, DESC_F_INDIRECT | Self::avail_bits(wrap), 1);
        Ok(id)
    }

    fn should_notify(&self) -> bool {
        // Our flag stores must be visible before we read the device's
        // suppression structure.
        fence(Ordering::SeqCst);
        let added = self.unnotified.replace(0);
        if added == 0 {
            return false;
        }
        let at = self.layout.device_event;
        let off_wrap = self.ram.r16(at);
        match self.ram.r16(at + 2) & EVENT_FLAGS_MASK {
            EVENT_DISABLE => false,
            EVENT_DESC if self.event_idx => {
                let cycle = 2 * u32::from(self.size);
                let off = off_wrap & !WRAP_BIT;
                // A window covering the whole cycle holds every descriptor;
                // an offset past the ring names none, and a spurious
                // notification is harmless where a missing one is not.
                if added >= cycle || off >= self.size {
                    return true;
                }
                let event = self.cycle_pos(off, off_wrap & WRAP_BIT != 0);
                let new = self.cycle_pos(self.next_avail, self.avail_wrap);
                let old = (new + cycle - added) % cycle;
                (event + cycle - old) % cycle < added
            }
            // ENABLE, the reserved value 3, and DESC without EVENT_IDX.
            _ => true,
        }
    }

    fn next_avail_index(&self) -> u16 {
        self.next_avail | if self.avail_wrap { WRAP_BIT } else { 0 }
    }

    fn pop_used(&mut self) -> Result<Option<Used>, QueueError> {
        let at = self.desc_at(self.next_used);
        let flags = self.ram.r16(at + 14);
        let w = self.used_wrap;
        let avail = flags & DESC_F_AVAIL != 0;
        let used = flags & DESC_F_USED != 0;
        let bad = QueueError::BadUsedFlags {
            offset: self.next_used,
            flags,
            wrap: w,
            in_flight: self.in_flight,
            id: self.ram.r16(at + 12),
        };
        if self.in_flight == 0 {
            // The slot still holds the previous lap (or zeroes): its AVAIL
            // bit is the inverse of ours. Anything marked in this lap was
            // not put there by us.
            return if avail != w { Ok(None) } else { Err(bad) };
        }
        // Here the slot was made available by us in this lap: it either
        // still is (AVAIL = w, USED = !w) or the device has used it.
        match (avail == w, used == w) {
            (true, false) => return Ok(None),
            (true, true) => {}
            _ => return Err(bad),
        }
        // Read id and length only after the flags that say they are final.
        fence(Ordering::Acquire);
        let id = self.ram.r16(at + 12);
        let len = self.ram.r32(at + 8);
        if id >= self.size {
            return Err(QueueError::PackedUnknownId {
                offset: self.next_used,
                flags,
                id,
                size: self.size,
            });
        }
        let chain = self.chains[usize::from(id)];
        if chain.slots == 0 {
            return Err(QueueError::PackedNotInFlight {
                offset: self.next_used,
                flags,
                id,
                in_flight: self.in_flight,
            });
        }
        let (slot, wrap) = self.advance(self.next_used, w, chain.slots);
        self.next_used = slot;
        self.used_wrap = wrap;
        self.free_slots += chain.slots;
        self.in_flight -= 1;
        self.chains[usize::from(id)] = Chain::default();
        self.free_ids.push(id);
        if self.event_idx && self.interrupts {
            self.write_driver_event();
            fence(Ordering::SeqCst);
        }
        // The length counts for chains the device may write. Devices (QEMU
        // among them) leave WRITE clear in used descriptors, and drivers
        // (Linux among them) read the length regardless; for a chain with
        // nothing writable it is meaningless and taken as 0.
        let len = if chain.writable > 0 { len } else { 0 };
        check_used_len(id, len, chain.writable)?;
        Ok(Some(Used { token: id, len }))
    }

    fn in_flight(&self) -> u16 {
        self.in_flight
    }

    /// A used descriptor further on in the slots in flight while the one
    /// at our position is still available: the device skipped ahead.
    fn stalled(&self) -> Option<QueueError> {
        let (w, here) = (self.used_wrap, self.next_used);
        let available = |slot: u16, wrap: bool| {
            let f = self.ram.r16(self.desc_at(slot) + 14);
            (f & DESC_F_AVAIL != 0) == wrap && (f & DESC_F_USED != 0) != wrap
        };
        if self.in_flight == 0 || !available(here, w) {
            return None;
        }
        let window = self.size - self.free_slots;
        for k in 1..window {
            let (slot, wrap) = self.advance(here, w, k);
            let at = self.desc_at(slot);
            let flags = self.ram.r16(at + 14);
            if (flags & DESC_F_AVAIL != 0) == wrap && (flags & DESC_F_USED != 0) == wrap {
                // Seen used there first: an honest device wrote ours
                // before it, so ours still available is the device's fault.
                fence(Ordering::Acquire);
                if available(here, w) {
                    return Some(QueueError::UsedSkippedAhead {
                        expected: here,
                        found: slot,
                        id: self.ram.r16(at + 12),
                        flags,
                    });
                }
                return None;
            }
        }
        None
    }

    fn free_descriptors(&self) -> u16 {
        self.free_slots
    }

    fn set_event_idx(&mut self, on: bool) {
        self.event_idx = on;
        self.write_driver_event();
        fence(Ordering::SeqCst);
    }

    fn enable_interrupts(&mut self, on: bool) {
        self.interrupts = on;
        self.write_driver_event();
        fence(Ordering::SeqCst);
    }

    fn desc_area(&self) -> u64 {
        self.ram.addr() + self.layout.desc as u64
    }

    fn driver_area(&self) -> u64 {
        self.ram.addr() + self.layout.driver_event as u64
    }

    fn device_area(&self) -> u64 {
        self.ram.addr() + self.layout.device_event as u64
    }
}
