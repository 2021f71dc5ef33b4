//! Driving a device's queues over any transport: ring memory, set-up,
//! notification, and waiting for used buffers with a timeout (the
//! transport knows how its devices signal).
//!
//! A [`Queue`] owns its ring and never lets it out: the contract's
//! `Virtqueue` takes raw addresses, so the only way to make a buffer
//! available is [`Queue::submit`], which takes each buffer as the DMA
//! memory it lies in ([`DmaBuffer`]), checks it, and keeps that memory
//! with the device's ([`DeviceHeld`]) before the device can see it.
//! Indirect tables are the queue's own, each serving one chain until its
//! token comes back. The ring's memory is shared the same way: the queue
//! has it for the ring, the transport keeps it for the device until a
//! reset. What a request's bytes mean is the driver's business: a driver
//! whose requests name guest addresses themselves (a balloon's page
//! numbers, a GPU's backing pages) must keep that memory with the
//! device's too.

use super::ring::packed::PackedQueue;
use super::ring::split::{split_layout, split_layout_spaced, SplitQueue};
use super::ring::{
    Buffer, Endian, QueueError, RingMemory, Used, Virtqueue, DESC_LEN, LEGACY_ALIGN,
};
use super::transport::{
    has, QueueAddresses, QueueRings, RingFormat, Transport, TransportError, F_EVENT_IDX,
    F_IN_ORDER, F_NOTIFICATION_DATA, F_RING_PACKED,
};
use crate::dma::{DeviceHeld, DmaMemory};
use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::vec::Vec;
use ufmt::{uDisplay, uWrite, Formatter};

/// One element of a buffer chain: `len` bytes of `mem` from `offset`,
/// which the device reads, or writes where `device_writable`.
#[derive(Clone, Copy)]
pub struct DmaBuffer<'a> {
    pub mem: &'a Rc<DmaMemory>,
    pub offset: usize,
    pub len: u32,
    pub device_writable: bool,
}

impl DmaBuffer<'_> {
    /// The element as the ring describes it, if it lies in its memory.
    fn buffer(&self, element: usize) -> Result<Buffer, DriveError> {
        if !self.mem.contains(self.offset, self.len as usize) {
            return Err(DriveError::OutsideMemory {
                element,
                offset: self.offset,
                len: self.len,
                mem_len: self.mem.len(),
            });
        }
        Ok(Buffer {
            addr: self.mem.addr() + self.offset as u64,
            len: self.len,
            device_writable: self.device_writable,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriveError {
    Transport(TransportError),
    Queue(QueueError),
    /// The device never returned the buffer.
    Timeout {
        queue: u16,
        in_flight: u16,
    },
    /// The queue does not exist or has no room.
    NoQueue {
        queue: u16,
    },
    /// Element `element` of a chain does not lie in its memory.
    OutsideMemory {
        element: usize,
        offset: usize,
        len: u32,
        mem_len: usize,
    },
}

impl From<TransportError> for DriveError {
    fn from(e: TransportError) -> Self {
        DriveError::Transport(e)
    }
}

impl From<QueueError> for DriveError {
    fn from(e: QueueError) -> Self {
        DriveError::Queue(e)
    }
}

impl uDisplay for DriveError {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match self {
            DriveError::Transport(e) => ufmt::uwrite!(f, "{}", e),
            DriveError::Queue(e) => ufmt::uwrite!(f, "{}", e),
            DriveError::Timeout { queue, in_flight } => ufmt::uwrite!(
                f,
                "queue {}: no used buffer within the timeout ({} in flight)",
                queue,
                in_flight
            ),
            DriveError::NoQueue { queue } => ufmt::uwrite!(f, "queue {} does not exist", queue),
            DriveError::OutsideMemory {
                element,
                offset,
                len,
                mem_len,
            } => ufmt::uwrite!(
                f,
                "element {}: {} bytes at offset {} of {}-byte DMA memory",
                element,
                len,
                offset,
                mem_len
            ),
        }
    }
}

/// Ring memory over `mem`.
///
/// # Safety
///
/// Nothing but the one queue given the result writes `mem`, and that
/// queue holds `mem` for as long as it lives.
unsafe fn ring_memory(mem: &DmaMemory) -> RingMemory {
    // SAFETY: the caller's promise; the pages stay put when the
    // `DmaMemory` (or the `Rc` around it) moves.
    unsafe { RingMemory::new(mem.addr(), mem.len()) }
}

/// A set-up queue and the memory it lives in.
pub struct Queue {
    pub index: u16,
    /// Private: a `Virtqueue` makes any address available.
    ring: Box<dyn Virtqueue>,
    pub packed: bool,
    notification_data: bool,
    /// The device's memory list, for the buffers made available.
    held: DeviceHeld,
    /// The ring's memory, where the driver placed it (None: the host did).
    _mem: Option<Rc<DmaMemory>>,
    /// A guarded queue's canaries in `_mem`: where each starts, and what
    /// the report calls it.
    guards: Vec<(usize, &'static str)>,
    /// Indirect tables, each with the token of the chain it serves (None:
    /// free).
    tables: Vec<(Rc<DmaMemory>, Option<u16>)>,
    /// Available-buffer notifications sent.
    kicks: u64,
    /// A used entry handed out once more on the next look (the proof that
    /// the accounting refuses a completion taken twice).
    repeat: Option<Used>,
    /// Whether the next used entry is to be handed out twice.
    repeat_armed: bool,
    /// Times the avail index (split) wrapped past 65535, or the ring
    /// (packed) wrapped to its start.
    wraps: u64,
}

/// Largest queue we set up: enough for stress, small enough for TCG.
pub const QUEUE_SIZE_MAX: u16 = 128;

/// Sets up every queue the device has (up to `MAX_QUEUES`), in order.
pub fn setup_all_queues<T: Transport + ?Sized>(
    t: &mut T,
    features: u64,
    packed: bool,
) -> Result<Vec<Queue>, DriveError> {
    let mut queues = Vec::new();
    for index in 0..MAX_QUEUES {
        match setup_queue(t, index, features, packed) {
            Ok(q) => queues.push(q),
            Err(DriveError::NoQueue { .. }) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(queues)
}

/// Queues a device may have that we look for.
pub const MAX_QUEUES: u16 = 256;

/// Sets up queue `index` with a split or packed ring, as `features` allow.
pub fn setup_queue<T: Transport + ?Sized>(
    t: &mut T,
    index: u16,
    features: u64,
    packed: bool,
) -> Result<Queue, DriveError> {
    setup(t, index, features, packed, false)
}

/// Canary bytes right before and right after each part of a guarded
/// queue's ring (descriptors, driver area, device area).
pub const RING_CANARY: usize = 16;

/// The canary byte at `i` of a ring canary.
pub fn ring_canary_byte(i: usize) -> u8 {
    0x3c ^ (i as u8).wrapping_mul(41)
}

/// Like [`setup_queue`], with [`RING_CANARY`] known bytes right before and
/// after each part of the ring (where the driver places it, virtio 1.x): a
/// device that writes past its areas is caught by [`Queue::ring_canary_hit`].
pub fn setup_guarded_queue<T: Transport + ?Sized>(
    t: &mut T,
    index: u16,
    features: u64,
    packed: bool,
) -> Result<Queue, DriveError> {
    setup(t, index, features, packed, true)
}

fn setup<T: Transport + ?Sized>(
    t: &mut T,
    index: u16,
    features: u64,
    packed: bool,
    guarded: bool,
) -> Result<Queue, DriveError> {
    let max = t.queue_max(index)?;
    if max == 0 {
        return Err(DriveError::NoQueue { queue: index });
    }
    let event_idx = has(features, F_EVENT_IDX);
    let legacy = t.revision() == 0;
    let packed = packed && has(features, F_RING_PACKED) && !legacy;
    // Split sizes are powers of two; a legacy queue must keep the device's size.
    let mut size = if legacy { max } else { max.min(QUEUE_SIZE_MAX) };
    if !packed && !size.is_power_of_two() {
        size = 1 << (15 - size.leading_zeros());
    }
    let host = t.host_ring(index, size)?;
    let format = if packed {
        RingFormat::Packed
    } else if legacy {
        RingFormat::Legacy
    } else {
        RingFormat::Split
    };
    let guard = if guarded && host.is_none() && !legacy {
        RING_CANARY
    } else {
        0
    };
    // The driver's own memory for the ring, unless the host placed it.
    let place = |total: usize| match &host {
        Some(ring) => (ring.memory(), None),
        None => {
            let mem = Rc::new(DmaMemory::new(total));
            // SAFETY: `mem` is new; only the ring made over it writes it
            // (but for the canaries, written before the device sees it),
            // and the queue it goes into holds it (`_mem`).
            (unsafe { ring_memory(&mem) }, Some(mem))
        }
    };
    if packed && has(features, F_IN_ORDER) {
        // The packed ring does not take batched used descriptors.
        return Err(TransportError::WrongRings {
            why: "IN_ORDER with a packed ring is not driven",
        }
        .into());
    }
    let (ring, mem): (Box<dyn Virtqueue>, Option<Rc<DmaMemory>>) = if packed {
        let layout = if guard > 0 {
            super::ring::packed::packed_layout_spaced(size, guard)?
        } else {
            super::ring::packed::packed_layout(size)?
        };
        let (at, mem) = place(layout.total);
        let ring = PackedQueue::with_layout(at, size, layout, event_idx)?;
        (Box::new(ring), mem)
    } else {
        let layout = if guard > 0 {
            split_layout_spaced(size, guard)?
        } else {
            split_layout(size, legacy.then_some(LEGACY_ALIGN))?
        };
        let (at, mem) = place(layout.total);
        let endian = if legacy { Endian::Big } else { Endian::Little };
        let mut split = SplitQueue::with_layout(at, size, layout, endian, event_idx)?;
        split.set_in_order(has(features, F_IN_ORDER));
        (Box::new(split), mem)
    };
    // The canaries, before and after each part (the ring zeroed its memory).
    let mut guards = Vec::new();
    if let (true, Some(mem)) = (guard > 0, &mem) {
        let c: Vec<u8> = (0..guard).map(ring_canary_byte).collect();
        let areas = [ring.desc_area(), ring.driver_area(), ring.device_area()];
        let names = [
            ("before the descriptor table", "after the descriptor table"),
            ("before the driver area", "after the driver area"),
            ("before the device area", "after the device area"),
        ];
        for ((addr, len), (before, after)) in
            areas.into_iter().zip(format.area_lens(size)).zip(names)
        {
            let off = (addr - mem.addr()) as usize;
            for (at, name) in [(off - guard, before), (off + len, after)] {
                mem.write(at, &c);
                guards.push((at, name));
            }
        }
    }
    let at = QueueAddresses {
        desc: ring.desc_area(),
        driver: ring.driver_area(),
        device: ring.device_area(),
    };
    let rings = match &mem {
        // SAFETY: only `ring` writes `mem`, and it goes into the queue
        // returned below, whose `submit` makes available only buffers it
        // keeps with the device's memory.
        Some(mem) => unsafe { QueueRings::from_ring(mem.clone(), size, format, at)? },
        None => QueueRings::host(size, at.desc),
    };
    t.set_queue(index, rings)?;
    Ok(Queue {
        index,
        ring,
        packed,
        notification_data: has(features, F_NOTIFICATION_DATA),
        held: t.held(),
        _mem: mem,
        guards,
        tables: Vec::new(),
        kicks: 0,
        repeat: None,
        repeat_armed: false,
        wraps: 0,
    })
}

/// Empty looks at the ring between looks for a fault it shows (see
/// `Virtqueue::stalled`) while waiting.
const STALL_LOOK_EVERY: u32 = 64;

pub use zvtest_contract::virtio::USED_TIMEOUT_US;

impl Queue {
    /// Makes `chain` available (through an indirect table of the queue's
    /// where `indirect`) and notifies the device if the ring says so.
    /// Every element's memory is kept with the device's first. Returns the
    /// token.
    pub fn submit<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        chain: &[DmaBuffer<'_>],
        indirect: bool,
    ) -> Result<u16, DriveError> {
        let token = self.add(chain, indirect)?;
        self.kick(t)?;
        Ok(token)
    }

    /// Makes `chain` available like [`Queue::submit`], without notifying:
    /// [`Queue::kick`] after a batch notifies once for all of it.
    pub fn add(&mut self, chain: &[DmaBuffer<'_>], indirect: bool) -> Result<u16, DriveError> {
        // Short chains on the stack: no allocation per request.
        let mut short = [Buffer {
            addr: 0,
            len: 0,
            device_writable: false,
        }; 16];
        let long;
        let buffers: &[Buffer] = if chain.len() <= short.len() {
            for (i, (s, b)) in short.iter_mut().zip(chain).enumerate() {
                *s = b.buffer(i)?;
            }
            &short[..chain.len()]
        } else {
            long = chain
                .iter()
                .enumerate()
                .map(|(i, b)| b.buffer(i))
                .collect::<Result<Vec<_>, _>>()?;
            &long
        };
        // The device may use them until it is reset.
        for b in chain {
            self.held.keep(b.mem);
        }
        let before = self.ring.next_avail_index();
        let token = if indirect {
            let slot = self.free_table(buffers.len());
            let table = &self.tables[slot].0;
            self.held.keep(table);
            // SAFETY: the table is this queue's own and lives as long as
            // it; it serves one chain at a time (it is free: no chain in
            // flight uses it), and nothing but this ring writes it.
            let mem = unsafe { ring_memory(table) };
            let token = self.ring.add_indirect(buffers, mem)?;
            self.tables[slot].1 = Some(token);
            token
        } else {
            self.ring.add(buffers)?
        };
        let after = self.ring.next_avail_index();
        // Split: the free-running index; packed: bit 15 is the wrap counter.
        let wrapped = if self.packed {
            (after ^ before) & 0x8000 != 0
        } else {
            after < before
        };
        self.wraps += u64::from(wrapped);
        Ok(token)
    }

    /// Test only: makes `buf` available as a looped chain (one
    /// descriptor whose next is itself, `Virtqueue::add_looped`), its
    /// memory kept with the device's; the token, None where the ring has
    /// no room or no such chain. Never returned by a sound device.
    pub fn add_looped(&mut self, buf: DmaBuffer<'_>) -> Result<Option<u16>, DriveError> {
        let b = buf.buffer(0)?;
        self.held.keep(buf.mem);
        Ok(self.ring.add_looped(b))
    }

    /// Notifies the device of what was made available since the last
    /// kick, if the ring says it wants to know.
    pub fn kick<T: Transport + ?Sized>(&mut self, t: &mut T) -> Result<(), DriveError> {
        if self.ring.should_notify() {
            let data = self
                .notification_data
                .then(|| u32::from(self.ring.next_avail_index()));
            self.kicks += 1;
            t.notify(self.index, data)?;
        }
        Ok(())
    }

    pub fn size(&self) -> u16 {
        self.ring.size()
    }

    /// Descriptors free for new chains.
    pub fn free_descriptors(&self) -> u16 {
        self.ring.free_descriptors()
    }

    /// Available-buffer notifications sent so far.
    pub fn kicks(&self) -> u64 {
        self.kicks
    }

    /// Index wraps so far (see the field).
    pub fn wraps(&self) -> u64 {
        self.wraps
    }

    /// Gives the queue a memory list of its own for the buffers it makes
    /// available from now on, and returns the device's: a queue driven by
    /// another CPU then touches nothing it shares with the transport or
    /// the device's other queues. [`Queue::rejoin`] moves what it kept back.
    pub fn hold_apart(&mut self) -> DeviceHeld {
        core::mem::take(&mut self.held)
    }

    /// Moves what the queue kept since [`Queue::hold_apart`] into
    /// `device`'s list (the device's own) and uses that list again.
    pub fn rejoin(&mut self, device: DeviceHeld) {
        device.absorb(&self.held);
        self.held = device;
    }

    /// Hands the next used entry out twice (fault injection: the caller's
    /// accounting must refuse the second).
    pub fn repeat_next_used(&mut self) {
        self.repeat_armed = true;
    }

    /// Notes `u` for handing out again if that was asked for.
    fn note_repeat(&mut self, u: Used) {
        if self.repeat_armed {
            self.repeat_armed = false;
            self.repeat = Some(u);
        }
    }

    /// Asks the device for used-buffer notifications, or not (advice: see
    /// `Virtqueue::enable_interrupts`).
    pub fn enable_interrupts(&mut self, on: bool) {
        self.ring.enable_interrupts(on);
    }

    /// The next used buffer if there is one, without waiting.
    pub fn try_used(&mut self) -> Result<Option<Used>, DriveError> {
        if let Some(u) = self.repeat.take() {
            return Ok(Some(u));
        }
        let used = self.ring.pop_used().inspect_err(|e| {
            // That entry was consumed all the same: its table is free.
            if let QueueError::UsedLenTooLong { id, .. } = *e {
                self.release_table(id);
            }
        });
        let used = used?;
        if let Some(u) = used {
            self.release_table(u.token);
            self.note_repeat(u);
        }
        Ok(used)
    }

    /// Waits for the next used buffer by polling, interrupts or not: for
    /// queues whose interrupts are suppressed.
    pub fn poll_used<T: Transport + ?Sized>(&mut self, t: &mut T) -> Result<Used, DriveError> {
        self.wait_with(t, true)
    }

    fn release_table(&mut self, token: u16) {
        for (_, user) in &mut self.tables {
            if *user == Some(token) {
                *user = None;
            }
        }
    }

    /// The first ring canary of a guarded queue that is not what we
    /// wrote: (where, byte, expected, got).
    pub fn ring_canary_hit(&self) -> Option<(&'static str, usize, u8, u8)> {
        let mem = self._mem.as_ref()?;
        let mut c = [0u8; RING_CANARY];
        for &(at, what) in &self.guards {
            mem.read(at, &mut c);
            for (i, &got) in c.iter().enumerate() {
                if got != ring_canary_byte(i) {
                    return Some((what, i, ring_canary_byte(i), got));
                }
            }
        }
        None
    }

    /// Chains made available and not yet returned.
    pub fn in_flight(&self) -> u16 {
        self.ring.in_flight()
    }

    /// A free indirect table for `descriptors` descriptors, made if none is.
    fn free_table(&mut self, descriptors: usize) -> usize {
        let bytes = DESC_LEN * descriptors;
        match self
            .tables
            .iter()
            .position(|(mem, user)| user.is_none() && mem.len() >= bytes)
        {
            Some(slot) => slot,
            None => {
                self.tables.push((Rc::new(DmaMemory::new(bytes)), None));
                self.tables.len() - 1
            }
        }
    }

    /// Waits for the next used buffer, as `t` waits for its devices.
    pub fn wait_used<T: Transport + ?Sized>(&mut self, t: &mut T) -> Result<Used, DriveError> {
        self.wait_with(t, false)
    }

    fn wait_with<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        poll: bool,
    ) -> Result<Used, DriveError> {
        if let Some(u) = self.repeat.take() {
            return Ok(u);
        }
        let mut got = None;
        let mut err = None;
        let ring = &mut self.ring;
        let mut empty = 0u32;
        let mut done = || match ring.pop_used() {
            Ok(Some(u)) => {
                got = Some(u);
                true
            }
            Ok(None) => {
                // Now and then, a fault the ring shows ends the wait early
                // (a look costs a read per slot in flight: not every time).
                empty = empty.wrapping_add(1);
                if empty.is_multiple_of(STALL_LOOK_EVERY) {
                    err = ring.stalled();
                }
                err.is_some()
            }
            Err(e) => {
                err = Some(e);
                true
            }
        };
        if poll {
            t.poll(USED_TIMEOUT_US, &mut done);
        } else {
            t.wait(USED_TIMEOUT_US, &mut done);
        }
        if let Some(e) = err {
            // That entry was consumed all the same: its table is free.
            if let QueueError::UsedLenTooLong { id, .. } = e {
                self.release_table(id);
            }
            return Err(e.into());
        }
        if got.is_none() {
            // A fault the ring shows is named rather than the wait.
            if let Some(e) = self.ring.stalled() {
                return Err(e.into());
            }
        }
        let used = got.ok_or(DriveError::Timeout {
            queue: self.index,
            in_flight: self.ring.in_flight(),
        })?;
        // Its table, if it had one, may serve the next chain.
        self.release_table(used.token);
        self.note_repeat(used);
        Ok(used)
    }
}
