//! Device-side models: they read the ring memory the way a device does,
//! from the spec's layouts rather than from the driver's state, and assert
//! that the driver followed the spec's rules for drivers.

use std::collections::HashMap;

use super::super::{Endian, Virtqueue, LEGACY_ALIGN};
use super::mem::TestMem;

const NEXT: u16 = 1;
const WRITE: u16 = 2;
const INDIRECT: u16 = 4;
const AVAIL: u16 = 1 << 7;
const USED: u16 = 1 << 15;

/// One element of a chain as the device sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elem {
    pub addr: u64,
    pub len: u32,
    pub writable: bool,
}

/// A chain the device took from the ring.
#[derive(Clone, Debug)]
pub struct Chain {
    /// Split: the head index; packed: the buffer id.
    pub id: u16,
    /// Ring slots it took (packed) or 1 (split).
    pub slots: u16,
    pub elems: Vec<Elem>,
    pub indirect: bool,
}

impl Chain {
    pub fn writable(&self) -> u64 {
        self.elems
            .iter()
            .filter(|e| e.writable)
            .map(|e| u64::from(e.len))
            .sum()
    }
}

/// What the randomised tests need from either model.
pub trait Device {
    /// The next available chain, in ring order.
    fn take(&mut self) -> Option<Chain>;
    /// Returns a chain with `len` bytes written.
    fn complete(&mut self, chain: &Chain, len: u32);
    /// Whether a spec-following driver must notify after publishing the
    /// units (split: chains, packed: slots) numbered `old..new`, counting
    /// from the start of the queue.
    fn notify_expected(&self, old: u64, new: u64) -> bool;
    /// Sets available-buffer notification suppression to something near
    /// `at` (in the same units).
    fn suppress(&mut self, mode: u64, at: u64);
    /// Used-buffer notifications the device has sent.
    fn interrupts(&self) -> u32;
}

/// Follows an indirect table of `len` bytes at `addr`.
fn walk_table(mem: &TestMem, e: Endian, addr: u64, len: u32, size: u16, split: bool) -> Vec<Elem> {
    assert!(
        len > 0 && len.is_multiple_of(16),
        "indirect table length {len}"
    );
    let k = len / 16;
    assert!(
        k <= u32::from(size),
        "indirect table of {k} in a queue of {size}"
    );
    let mut out = Vec::new();
    let mut i = 0u32;
    loop {
        let at = addr + 16 * u64::from(i);
        // Split: flags, next; packed: id, flags.
        let flags = mem.r16(at + if split { 12 } else { 14 }, e);
        out.push(Elem {
            addr: mem.r64(at, e),
            len: mem.r32(at + 8, e),
            writable: flags & WRITE != 0,
        });
        if split {
            assert_eq!(flags & INDIRECT, 0, "INDIRECT inside a table");
            if flags & NEXT == 0 {
                break;
            }
            let next = u32::from(mem.r16(at + 14, e));
            assert!(next < k, "table next {next} past {k}");
            assert!(out.len() <= k as usize, "loop in table");
            i = next;
        } else {
            assert_eq!(flags & !WRITE, 0, "packed table flags {flags:#x}");
            i += 1;
            if i == k {
                break;
            }
        }
    }
    out
}

fn assert_readable_first(elems: &[Elem]) {
    let first_w = elems.iter().position(|e| e.writable).unwrap_or(elems.len());
    assert!(
        elems[first_w..].iter().all(|e| e.writable),
        "readable after writable: {elems:?}"
    );
}

/// Brute force: is any absolute index in `old..new` equal to `event`
/// modulo 2^16?
fn split_window_has(event: u16, old: u64, new: u64) -> bool {
    (old..new).take(1 << 16).any(|s| s as u16 == event)
}

pub struct SplitDevice<'m> {
    mem: &'m TestMem,
    size: u16,
    e: Endian,
    desc: u64,
    avail: u64,
    used: u64,
    last_avail: u16,
    used_idx: u16,
    pub event_idx: bool,
    interrupts: u32,
}

impl<'m> SplitDevice<'m> {
    /// The device for `q`. Legacy rings are located from the ring's start
    /// alone, as QEMU does; modern ones from the three area addresses.
    pub fn new(
        mem: &'m TestMem,
        q: &impl Virtqueue,
        e: Endian,
        legacy: bool,
        event_idx: bool,
    ) -> Self {
        let n = u64::from(q.size());
        let desc = q.desc_area();
        let (avail, used) = if legacy {
            let avail = desc + 16 * n;
            // QEMU: used = align(avail + offsetof(ring[num])).
            let used = (avail + 4 + 2 * n).next_multiple_of(u64::from(LEGACY_ALIGN));
            assert_eq!(q.driver_area(), avail);
            assert_eq!(q.device_area(), used);
            (avail, used)
        } else {
            let (avail, used) = (q.driver_area(), q.device_area());
            assert_eq!((desc % 16, avail % 2, used % 4), (0, 0, 0));
            assert!(avail >= desc + 16 * n && used >= avail + 6 + 2 * n);
            (avail, used)
        };
        SplitDevice {
            mem,
            size: q.size(),
            e,
            desc,
            avail,
            used,
            last_avail: 0,
            used_idx: 0,
            event_idx,
            interrupts: 0,
        }
    }

    /// Starts both indexes at `start`, to match `SplitQueue::new_at`.
    pub fn start_at(&mut self, start: u16) {
        self.last_avail = start;
        self.used_idx = start;
        self.mem.w16(self.used + 2, start, self.e);
    }

    fn n(&self) -> u64 {
        u64::from(self.size)
    }

    pub fn avail_idx(&self) -> u16 {
        self.mem.r16(self.avail + 2, self.e)
    }

    pub fn avail_flags(&self) -> u16 {
        self.mem.r16(self.avail, self.e)
    }

    pub fn used_event(&self) -> u16 {
        self.mem.r16(self.avail + 4 + 2 * self.n(), self.e)
    }

    pub fn set_used_flags(&self, flags: u16) {
        self.mem.w16(self.used, flags, self.e);
    }

    pub fn set_avail_event(&self, v: u16) {
        self.mem.w16(self.used + 4 + 8 * self.n(), v, self.e);
    }

    /// Writes a used entry as given and publishes it, whatever it says.
    pub fn push_raw(&mut self, id: u32, len: u32) {
        let at = self.used + 4 + 8 * u64::from(self.used_idx % self.size);
        self.mem.w32(at, id, self.e);
        self.mem.w32(at + 4, len, self.e);
        let old = self.used_idx;
        self.used_idx = self.used_idx.wrapping_add(1);
        self.mem.w16(self.used + 2, self.used_idx, self.e);
        self.count_interrupt(old);
    }

    pub fn set_used_idx(&mut self, v: u16) {
        self.used_idx = v;
        self.mem.w16(self.used + 2, v, self.e);
    }

    /// Overwrites the whole descriptor table, as a broken device might.
    pub fn scribble_descs(&self) {
        self.mem
            .write(self.desc, &vec![0xff; 16 * usize::from(self.size)]);
    }

    fn count_interrupt(&mut self, old: u16) {
        let flags = self.avail_flags();
        if self.event_idx {
            assert_eq!(flags, 0, "avail.flags must be 0 with EVENT_IDX");
            let ev = self.used_event();
            if self.used_idx.wrapping_sub(ev).wrapping_sub(1) < self.used_idx.wrapping_sub(old) {
                self.interrupts += 1;
            }
        } else {
            assert!(flags <= 1, "avail.flags {flags}");
            if flags == 0 {
                self.interrupts += 1;
            }
        }
    }
}

impl Device for SplitDevice<'_> {
    fn take(&mut self) -> Option<Chain> {
        let idx = self.avail_idx();
        if idx == self.last_avail {
            return None;
        }
        assert!(
            idx.wrapping_sub(self.last_avail) <= self.size,
            "avail.idx {idx} more than a ring ahead of {}",
            self.last_avail
        );
        let head = self.mem.r16(
            self.avail + 4 + 2 * u64::from(self.last_avail % self.size),
            self.e,
        );
        self.last_avail = self.last_avail.wrapping_add(1);
        let (mut elems, mut indirect, mut d) = (Vec::new(), false, head);
        loop {
            assert!(d < self.size, "descriptor {d} past {}", self.size);
            assert!(elems.len() < usize::from(self.size), "loop in chain");
            let at = self.desc + 16 * u64::from(d);
            let (addr, len) = (self.mem.r64(at, self.e), self.mem.r32(at + 8, self.e));
            let flags = self.mem.r16(at + 12, self.e);
            if flags & INDIRECT != 0 {
                assert_eq!(flags, INDIRECT, "indirect descriptor flags");
                assert!(elems.is_empty(), "our driver puts indirect alone");
                elems = walk_table(self.mem, self.e, addr, len, self.size, true);
                indirect = true;
                break;
            }
            elems.push(Elem {
                addr,
                len,
                writable: flags & WRITE != 0,
            });
            if flags & NEXT == 0 {
                break;
            }
            d = self.mem.r16(at + 14, self.e);
        }
        assert_readable_first(&elems);
        Some(Chain {
            id: head,
            slots: 1,
            elems,
            indirect,
        })
    }

    fn complete(&mut self, chain: &Chain, len: u32) {
        self.push_raw(u32::from(chain.id), len);
    }

    fn notify_expected(&self, old: u64, new: u64) -> bool {
        if old == new {
            return false;
        }
        if self.event_idx {
            let ev = self.mem.r16(self.used + 4 + 8 * self.n(), self.e);
            split_window_has(ev, old, new)
        } else {
            self.mem.r16(self.used, self.e) & 1 == 0
        }
    }

    fn suppress(&mut self, mode: u64, at: u64) {
        match mode % 3 {
            0 => self.set_used_flags(0),
            1 => self.set_used_flags(1),
            _ => {}
        }
        self.set_avail_event(at as u16);
    }

    fn interrupts(&self) -> u32 {
        self.interrupts
    }
}

pub struct PackedDevice<'m> {
    mem: &'m TestMem,
    size: u16,
    desc: u64,
    driver_event: u64,
    device_event: u64,
    next_avail: u16,
    avail_wrap: bool,
    next_used: u16,
    used_wrap: bool,
    slots: HashMap<u16, u16>,
    pub event_idx: bool,
    interrupts: u32,
}

const LE: Endian = Endian::Little;

impl<'m> PackedDevice<'m> {
    pub fn new(mem: &'m TestMem, q: &impl Virtqueue, event_idx: bool) -> Self {
        let (desc, driver_event, device_event) = (q.desc_area(), q.driver_area(), q.device_area());
        let n = u64::from(q.size());
        assert_eq!((desc % 16, driver_event % 4, device_event % 4), (0, 0, 0));
        assert!(driver_event >= desc + 16 * n && device_event >= driver_event + 4);
        PackedDevice {
            mem,
            size: q.size(),
            desc,
            driver_event,
            device_event,
            next_avail: 0,
            avail_wrap: true,
            next_used: 0,
            used_wrap: true,
            slots: HashMap::new(),
            event_idx,
            interrupts: 0,
        }
    }

    pub fn at(&self, slot: u16) -> u64 {
        self.desc + 16 * u64::from(slot)
    }

    fn step(&self, slot: u16, wrap: bool) -> (u16, bool) {
        if slot + 1 == self.size {
            (0, !wrap)
        } else {
            (slot + 1, wrap)
        }
    }

    /// (off_wrap, flags) of the driver's event suppression structure.
    pub fn driver_event(&self) -> (u16, u16) {
        (
            self.mem.r16(self.driver_event, LE),
            self.mem.r16(self.driver_event + 2, LE),
        )
    }

    pub fn set_device_event(&self, flags: u16, off: u16, wrap: bool) {
        let off_wrap = off | if wrap { 1 << 15 } else { 0 };
        self.mem.w16(self.device_event, off_wrap, LE);
        self.mem.w16(self.device_event + 2, flags, LE);
    }

    pub fn next_used(&self) -> (u16, bool) {
        (self.next_used, self.used_wrap)
    }

    /// Writes a descriptor at the next used position as given, without
    /// moving on.
    pub fn write_used_raw(&self, id: u16, len: u32, flags: u16) {
        let at = self.at(self.next_used);
        self.mem.w16(at + 12, id, LE);
        self.mem.w32(at + 8, len, LE);
        self.mem.w16(at + 14, flags, LE);
    }

    /// The flags of a used descriptor in the current lap.
    pub fn used_flags(&self) -> u16 {
        if self.used_wrap {
            AVAIL | USED
        } else {
            0
        }
    }

    /// Position on the cycle of 2n, wrap 1 first.
    fn cycle_pos(&self, off: u16, wrap: bool) -> u64 {
        u64::from(off) + if wrap { 0 } else { u64::from(self.size) }
    }
}

impl Device for PackedDevice<'_> {
    fn take(&mut self) -> Option<Chain> {
        let avail_now =
            |flags: u16, wrap: bool| (flags & AVAIL != 0) == wrap && (flags & USED != 0) != wrap;
        let first = self.mem.r16(self.at(self.next_avail) + 14, LE);
        if !avail_now(first, self.avail_wrap) {
            return None;
        }
        let (mut slot, mut wrap) = (self.next_avail, self.avail_wrap);
        let (mut elems, mut indirect, mut count) = (Vec::new(), false, 0u16);
        let id = loop {
            let at = self.at(slot);
            let flags = self.mem.r16(at + 14, LE);
            assert!(
                avail_now(flags, wrap),
                "slot {slot} of a chain not available: {flags:#x}"
            );
            count += 1;
            assert!(count <= self.size, "chain longer than the ring");
            let (addr, len, id) = (
                self.mem.r64(at, LE),
                self.mem.r32(at + 8, LE),
                self.mem.r16(at + 12, LE),
            );
            (slot, wrap) = self.step(slot, wrap);
            if flags & INDIRECT != 0 {
                assert_eq!(flags & (NEXT | WRITE), 0, "indirect descriptor flags");
                assert_eq!(count, 1, "indirect inside a chain");
                elems = walk_table(self.mem, LE, addr, len, self.size, false);
                indirect = true;
                break id;
            }
            elems.push(Elem {
                addr,
                len,
                writable: flags & WRITE != 0,
            });
            if flags & NEXT == 0 {
                break id;
            }
        };
        assert_readable_first(&elems);
        assert!(id < self.size, "buffer id {id}");
        assert!(
            self.slots.insert(id, count).is_none(),
            "buffer id {id} reused while in flight"
        );
        self.next_avail = slot;
        self.avail_wrap = wrap;
        Some(Chain {
            id,
            slots: count,
            elems,
            indirect,
        })
    }

    fn complete(&mut self, chain: &Chain, len: u32) {
        let slots = self
            .slots
            .remove(&chain.id)
            .expect("completing a chain not taken");
        let mut flags = self.used_flags();
        if chain.writable() > 0 {
            flags |= WRITE;
        }
        self.write_used_raw(chain.id, len, flags);
        let old = self.cycle_pos(self.next_used, self.used_wrap);
        for _ in 0..slots {
            (self.next_used, self.used_wrap) = self.step(self.next_used, self.used_wrap);
        }
        // Used-buffer notification: as the driver event structure says.
        let (off_wrap, ev_flags) = self.driver_event();
        match ev_flags {
            0 => self.interrupts += 1,
            1 => {}
            2 => {
                assert!(self.event_idx, "DESC events without EVENT_IDX");
                let cycle = 2 * u64::from(self.size);
                let ev = self.cycle_pos(off_wrap & 0x7fff, off_wrap & 0x8000 != 0);
                if (ev + cycle - old) % cycle < u64::from(slots) {
                    self.interrupts += 1;
                }
            }
            f => panic!("driver event flags {f}"),
        }
    }

    fn notify_expected(&self, old: u64, new: u64) -> bool {
        if old == new {
            return false;
        }
        let off_wrap = self.mem.r16(self.device_event, LE);
        match self.mem.r16(self.device_event + 2, LE) & 3 {
            1 => false,
            2 if self.event_idx => {
                let n = u64::from(self.size);
                let (off, wrap) = (u64::from(off_wrap & 0x7fff), off_wrap & 0x8000 != 0);
                (old..new)
                    .take(2 * n as usize)
                    .any(|s| s % n == off && (s / n).is_multiple_of(2) == wrap)
                    || off >= n
            }
            _ => true,
        }
    }

    fn suppress(&mut self, mode: u64, at: u64) {
        let n = u64::from(self.size);
        let flags = (mode % 4) as u16;
        self.set_device_event(flags, (at % n) as u16, (at / n).is_multiple_of(2));
    }

    fn interrupts(&self) -> u32 {
        self.interrupts
    }
}
