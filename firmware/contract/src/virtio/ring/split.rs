//! Split virtqueues: a descriptor table, an available ring only the driver
//! writes and a used ring only the device writes.
//!
//! With `n` entries, every field in the queue's byte order:
//!
//! | area  | contents                                                  | bytes    |
//! |-------|-----------------------------------------------------------|----------|
//! | desc  | `n` × {addr u64, len u32, flags u16, next u16}            | 16n      |
//! | avail | flags u16, idx u16, ring\[n\] u16, used_event u16         | 6 + 2n   |
//! | used  | flags u16, idx u16, ring\[n\] {id u32, len u32}, avail_event u16 | 6 + 8n |
//!
//! The indexes run freely and wrap at 65536; ring slots are index mod `n`,
//! which is why `n` has to be a power of two.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::cell::Cell;
use core::sync::atomic::{fence, Ordering};

use super::common::{
    align_up, check_chain, check_size, check_table, check_used_len, passed_event, Buffer, Endian,
    QueueError, Ram, RingMemory, Used, Virtqueue, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE,
    DESC_LEN, LEGACY_ALIGN,
};

/// avail.flags: the driver needs no used-buffer notifications.
const AVAIL_F_NO_INTERRUPT: u16 = 1;
/// used.flags: the device needs no available-buffer notifications.
const USED_F_NO_NOTIFY: u16 = 1;
const USED_ELEM_LEN: usize = 8;

/// Where the three parts sit inside one allocation, in bytes from its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitLayout {
    pub desc: usize,
    pub avail: usize,
    pub used: usize,
    /// Bytes to allocate.
    pub total: usize,
    /// Alignment the allocation's start needs.
    pub align: u32,
}

/// The layout of a split ring of `size` entries.
///
/// `legacy_align: Some(a)` gives the legacy layout (virtio-ccw revision 0,
/// `a` = 4096): the avail ring right after the descriptors, then the used
/// ring at the next multiple of `a`, both parts padded to `a` as the spec's
/// `virtq_size` does. The start must then be `a`-aligned, since the device
/// aligns the used ring's absolute address. `None` gives the virtio 1.x
/// parts (aligned 16, 2 and 4) packed one after the other; the transport
/// passes each address separately there.
///
/// Room for used_event and avail_event is always reserved, so the layout
/// does not depend on VIRTIO_F_EVENT_IDX.
pub fn split_layout(size: u16, legacy_align: Option<u32>) -> Result<SplitLayout, QueueError> {
    check_size(size)?;
    if !size.is_power_of_two() {
        return Err(QueueError::SizeNotPowerOfTwo { size });
    }
    let n = usize::from(size);
    let avail = DESC_LEN * n;
    let avail_end = avail + 6 + 2 * n;
    let used_len = 6 + USED_ELEM_LEN * n;
    Ok(match legacy_align {
        Some(a) => {
            if !a.is_power_of_two() || a < DESC_LEN as u32 {
                return Err(QueueError::BadAlign { align: a });
            }
            let used = align_up(avail_end, a as usize);
            SplitLayout {
                desc: 0,
                avail,
                used,
                total: used + align_up(used_len, a as usize),
                align: a,
            }
        }
        None => {
            let used = align_up(avail_end, 4);
            SplitLayout {
                desc: 0,
                avail,
                used,
                total: used + used_len,
                align: DESC_LEN as u32,
            }
        }
    })
}

/// The virtio 1.x layout of a split ring of `size` entries with `gap`
/// free bytes before, between and after its three parts (for canaries
/// around each). `gap` must keep the descriptors' 16-byte alignment.
pub fn split_layout_spaced(size: u16, gap: usize) -> Result<SplitLayout, QueueError> {
    let plain = split_layout(size, None)?;
    if !gap.is_multiple_of(DESC_LEN) {
        return Err(QueueError::BadAlign { align: gap as u32 });
    }
    let n = usize::from(size);
    let desc = gap;
    let avail = desc + DESC_LEN * n + 2 * gap;
    let used = align_up(avail + 6 + 2 * n + 2 * gap, 4);
    Ok(SplitLayout {
        desc,
        avail,
        used,
        total: used + 6 + USED_ELEM_LEN * n + gap,
        align: plain.align,
    })
}

/// What we remember about a chain in flight, indexed by its head.
#[derive(Clone, Copy, Debug, Default)]
struct Chain {
    /// Descriptors it holds in the table; 0 = not a head in flight.
    count: u16,
    /// Device-writable bytes: the most the device may report.
    writable: u64,
}

/// The driver side of a split virtqueue.
#[derive(Debug)]
pub struct SplitQueue {
    ram: Ram,
    layout: SplitLayout,
    size: u16,
    event_idx: bool,
    interrupts: bool,
    /// Our copy of avail.idx (the device only reads it).
    avail_idx: u16,
    /// used.idx as far as we have consumed it.
    last_used: u16,
    in_flight: u16,
    num_free: u16,
    free_head: u16,
    /// Shadow `next` links: the free list, and each chain in flight in the
    /// order it was taken from the free list.
    next: Vec<u16>,
    chains: Vec<Chain>,
    /// Chains made available since `should_notify` last answered.
    unnotified: Cell<u32>,
    /// VIRTIO_F_IN_ORDER: descriptors taken in ring order, and a used
    /// entry may stand for a batch (see `pop_used`).
    in_order: bool,
    /// With `in_order`: the heads in flight, oldest first.
    order: VecDeque<u16>,
    /// The free list's last descriptor (`in_order` appends there).
    free_tail: u16,
    /// A batch being handed back: its last head, that one's length, and
    /// the used index it ends at.
    batch: Option<(u16, u32)>,
}

impl SplitQueue {
    /// A queue of `size` entries in `mem`, which it zeroes. `legacy` picks
    /// the single-area layout aligned to [`LEGACY_ALIGN`]; `endian` is the
    /// ring byte order (big for legacy on s390, little for virtio 1.x).
    pub fn new(
        mem: RingMemory,
        size: u16,
        endian: Endian,
        legacy: bool,
        event_idx: bool,
    ) -> Result<Self, QueueError> {
        let layout = split_layout(size, legacy.then_some(LEGACY_ALIGN))?;
        Self::with_layout(mem, size, layout, endian, event_idx)
    }

    /// Like [`SplitQueue::new`] with the parts where `layout` puts them
    /// (one of [`split_layout`] or [`split_layout_spaced`] for `size`).
    pub fn with_layout(
        mem: RingMemory,
        size: u16,
        layout: SplitLayout,
        endian: Endian,
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
        let ram = Ram::new(mem, endian);
        ram.zero(layout.total);
        let n = usize::from(size);
        let q = SplitQueue {
            ram,
            layout,
            size,
            event_idx,
            interrupts: true,
            avail_idx: 0,
            last_used: 0,
            in_flight: 0,
            num_free: size,
            free_head: 0,
            next: (1..=n).map(|i| (i % n) as u16).collect(),
            chains: alloc::vec![Chain::default(); n],
            unnotified: Cell::new(0),
            in_order: false,
            order: VecDeque::new(),
            free_tail: size - 1,
            batch: None,
        };
        q.write_suppression();
        Ok(q)
    }

    /// A queue whose indexes start at `start` instead of 0, to reach the
    /// 65535 → 0 wrap quickly. The device side has to start there too.
    #[cfg(test)]
    pub(crate) fn new_at(
        mem: RingMemory,
        size: u16,
        endian: Endian,
        legacy: bool,
        event_idx: bool,
        start: u16,
    ) -> Result<Self, QueueError> {
        let mut q = Self::new(mem, size, endian, legacy, event_idx)?;
        q.avail_idx = start;
        q.last_used = start;
        q.ram.w16(q.avail_idx_at(), start);
        q.write_suppression();
        Ok(q)
    }

    pub fn layout(&self) -> SplitLayout {
        self.layout
    }

    #[cfg(test)]
    pub(crate) fn last_used_for_tests(&self) -> u16 {
        self.last_used
    }

    /// VIRTIO_F_IN_ORDER was negotiated: descriptors are taken in ring
    /// order (the free list is kept in that order), and the device may
    /// hand back a batch of chains with one used entry naming the batch's
    /// last head, advancing the used index by the batch's size. Set
    /// before any chain is made available.
    pub fn set_in_order(&mut self, on: bool) {
        assert_eq!(self.in_flight, 0, "in-order is chosen on an idle queue");
        self.in_order = on;
    }

    fn desc_at(&self, i: u16) -> usize {
        self.layout.desc + DESC_LEN * usize::from(i)
    }

    fn avail_idx_at(&self) -> usize {
        self.layout.avail + 2
    }

    fn avail_slot_at(&self, idx: u16) -> usize {
        self.layout.avail + 4 + 2 * usize::from(idx % self.size)
    }

    fn used_event_at(&self) -> usize {
        self.layout.avail + 4 + 2 * usize::from(self.size)
    }

    fn used_slot_at(&self, idx: u16) -> usize {
        self.layout.used + 4 + USED_ELEM_LEN * usize::from(idx % self.size)
    }

    fn avail_event_at(&self) -> usize {
        self.layout.used + 4 + USED_ELEM_LEN * usize::from(self.size)
    }

    fn write_desc(&self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = self.desc_at(i);
        self.ram.w64(at, addr);
        self.ram.w32(at + 8, len);
        self.ram.w16(at + 12, flags);
        self.ram.w16(at + 14, next);
    }

    /// avail.flags and used_event from `interrupts` and `event_idx`.
    fn write_suppression(&self) {
        let a = self.layout.avail;
        if self.event_idx {
            // With EVENT_IDX the flags must be 0; used_event asks for an
            // interrupt once the device fills entry `last_used`. Disabling
            // points it at the entry just behind us, which the device only
            // reaches again after 65535 more completions.
            self.ram.w16(a, 0);
            let at = if self.interrupts {
                self.last_used
            } else {
                self.last_used.wrapping_sub(1)
            };
            self.ram.w16(self.used_event_at(), at);
        } else {
            let flags = if self.interrupts {
                0
            } else {
                AVAIL_F_NO_INTERRUPT
            };
            self.ram.w16(a, flags);
        }
    }

    /// Puts a chain of `count` descriptors starting at `head` into the
    /// avail ring and publishes it.
    fn publish(&mut self, head: u16, count: u16, writable: u64) {
        self.chains[usize::from(head)] = Chain { count, writable };
        if self.in_order {
            self.order.push_back(head);
        }
        self.ram.w16(self.avail_slot_at(self.avail_idx), head);
        // The descriptors and the ring entry must be visible before the
        // index that hands them to the device.
        fence(Ordering::Release);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.ram.w16(self.avail_idx_at(), self.avail_idx);
        self.in_flight += 1;
        self.unnotified.set(self.unnotified.get().saturating_add(1));
    }

    /// Takes `count` descriptors off the free list; they stay linked in
    /// `next` in the order taken. Returns the first.
    fn take(&mut self, count: u16) -> u16 {
        let head = self.free_head;
        let mut tail = head;
        for _ in 1..count {
            tail = self.next[usize::from(tail)];
        }
        self.free_head = self.next[usize::from(tail)];
        self.num_free -= count;
        head
    }

    /// Returns the chain at `head` to the free list, following our own
    /// links only.
    fn release(&mut self, head: u16) {
        let count = self.chains[usize::from(head)].count;
        let mut tail = head;
        for _ in 1..count {
            tail = self.next[usize::from(tail)];
        }
        if self.in_order {
            // Appended: the free list stays in ring order, since chains
            // come back in the order they were taken.
            if self.num_free == 0 {
                self.free_head = head;
            } else {
                self.next[usize::from(self.free_tail)] = head;
            }
            self.next[usize::from(tail)] = (tail + 1) % self.size;
            self.free_tail = tail;
        } else {
            self.next[usize::from(tail)] = self.free_head;
            self.free_head = head;
        }
        self.num_free += count;
        self.chains[usize::from(head)] = Chain::default();
        self.in_flight -= 1;
    }
}

impl SplitQueue {
    fn after_pop(&mut self) {
        if self.event_idx && self.interrupts {
            self.write_suppression();
            // Publish the new used_event before we look at used.idx again.
            fence(Ordering::SeqCst);
        }
    }
}

impl Virtqueue for SplitQueue {
    fn size(&self) -> u16 {
        self.size
    }

    fn add(&mut self, chain: &[Buffer]) -> Result<u16, QueueError> {
        let writable = check_chain(chain)?;
        if chain.len() > usize::from(self.num_free) {
            return Err(QueueError::QueueFull {
                needed: chain.len(),
                free: self.num_free,
            });
        }
        let count = chain.len() as u16;
        let head = self.take(count);
        let mut d = head;
        for (i, b) in chain.iter().enumerate() {
            let last = i + 1 == chain.len();
            let next = if last { 0 } else { self.next[usize::from(d)] };
            let mut flags = if last { 0 } else { DESC_F_NEXT };
            if b.device_writable {
                flags |= DESC_F_WRITE;
            }
            self.write_desc(d, b.addr, b.len, flags, next);
            d = next;
        }
        self.publish(head, count, writable);
        Ok(head)
    }

    fn add_looped(&mut self, buf: Buffer) -> Option<u16> {
        if self.num_free == 0 {
            return None;
        }
        let head = self.take(1);
        let mut flags = DESC_F_NEXT;
        if buf.device_writable {
            flags |= DESC_F_WRITE;
        }
        self.write_desc(head, buf.addr, buf.len, flags, head);
        let writable = if buf.device_writable { buf.len } else { 0 };
        self.publish(head, 1, u64::from(writable));
        Some(head)
    }

    fn add_indirect(&mut self, chain: &[Buffer], table: RingMemory) -> Result<u16, QueueError> {
        let writable = check_chain(chain)?;
        check_table(chain.len(), self.size, &table)?;
        if self.num_free == 0 {
            return Err(QueueError::QueueFull { needed: 1, free: 0 });
        }
        let t = Ram::new(table, self.ram.endian());
        for (i, b) in chain.iter().enumerate() {
            let last = i + 1 == chain.len();
            let mut flags = if last { 0 } else { DESC_F_NEXT };
            if b.device_writable {
                flags |= DESC_F_WRITE;
            }
            let at = DESC_LEN * i;
            t.w64(at, b.addr);
            t.w32(at + 8, b.len);
            t.w16(at + 12, flags);
            t.w16(at + 14, if last { 0 } else { i as u16 + 1 });
        }
        let head = self.take(1);
        // Only INDIRECT: the spec forbids NEXT with it, and the device
        // ignores WRITE on it.
        let len = (DESC_LEN * chain.len()) as u32;
        self.write_desc(head, table.addr(), len, DESC_F_INDIRECT, 0);
        self.publish(head, 1, writable);
        Ok(head)
    }

    fn should_notify(&self) -> bool {
        // Our avail.idx store must be visible before we read the device's
        // suppression fields, or both sides may decide not to act.
        fence(Ordering::SeqCst);
        let added = self.unnotified.replace(0);
        if added == 0 {
            return false;
        }
        if self.event_idx {
            if added > u32::from(u16::MAX) {
                return true;
            }
            let event = self.ram.r16(self.avail_event_at());
            let old = self.avail_idx.wrapping_sub(added as u16);
            passed_event(event, self.avail_idx, old)
        } else {
            self.ram.r16(self.layout.used) & USED_F_NO_NOTIFY == 0
        }
    }

    fn next_avail_index(&self) -> u16 {
        self.avail_idx
    }

    fn pop_used(&mut self) -> Result<Option<Used>, QueueError> {
        // The rest of a batch: the chains after its first, in order.
        if let Some((last, len)) = self.batch {
            let head = self
                .order
                .pop_front()
                .expect("a batch's chains are in flight");
            let writable = self.chains[usize::from(head)].writable;
            self.last_used = self.last_used.wrapping_add(1);
            self.release(head);
            if head == last {
                self.batch = None;
                self.after_pop();
                check_used_len(head, len, writable)?;
                return Ok(Some(Used { token: head, len }));
            }
            // A batched chain's length is not told: all it may hold.
            return Ok(Some(Used {
                token: head,
                len: writable as u32,
            }));
        }
        let used_idx = self.ram.r16(self.layout.used + 2);
        if used_idx == self.last_used {
            return Ok(None);
        }
        // Each chain in flight comes back once, so the device can be at most
        // that many entries ahead of us.
        if used_idx.wrapping_sub(self.last_used) > self.in_flight {
            return Err(QueueError::UsedIndexAhead {
                used_idx,
                last_used: self.last_used,
                in_flight: self.in_flight,
            });
        }
        // Read the entry only after the index that says it is complete.
        fence(Ordering::Acquire);
        let at = self.used_slot_at(self.last_used);
        let id = self.ram.r32(at);
        let len = self.ram.r32(at + 4);
        if id >= u32::from(self.size) {
            return Err(QueueError::UnknownId {
                id,
                size: self.size,
            });
        }
        let id = id as u16;
        let chain = self.chains[usize::from(id)];
        if chain.count == 0 {
            return Err(QueueError::NotInFlight { id });
        }
        if self.in_order {
            let at = self
                .order
                .iter()
                .position(|&h| h == id)
                .ok_or(QueueError::NotInFlight { id })?;
            if at > 0 {
                // One entry for `at + 1` chains: the device must have
                // moved the used index past all of them.
                if used_idx.wrapping_sub(self.last_used) <= at as u16 {
                    return Err(QueueError::NotInFlight { id });
                }
                self.batch = Some((id, len));
                return self.pop_used();
            }
            self.order.pop_front();
        }
        self.last_used = self.last_used.wrapping_add(1);
        self.release(id);
        self.after_pop();
        check_used_len(id, len, chain.writable)?;
        Ok(Some(Used { token: id, len }))
    }

    fn in_flight(&self) -> u16 {
        self.in_flight
    }

    fn free_descriptors(&self) -> u16 {
        self.num_free
    }

    fn set_event_idx(&mut self, on: bool) {
        self.event_idx = on;
        self.write_suppression();
        fence(Ordering::SeqCst);
    }

    fn enable_interrupts(&mut self, on: bool) {
        self.interrupts = on;
        self.write_suppression();
        // Make the change visible before the caller's re-check of the ring.
        fence(Ordering::SeqCst);
    }

    fn desc_area(&self) -> u64 {
        self.ram.addr() + self.layout.desc as u64
    }

    fn driver_area(&self) -> u64 {
        self.ram.addr() + self.layout.avail as u64
    }

    fn device_area(&self) -> u64 {
        self.ram.addr() + self.layout.used as u64
    }
}
