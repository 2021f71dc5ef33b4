//! The echo back-end on rust-vmm's vhost-user framework: each chain's
//! device-readable bytes written back into its device-writable part, the
//! chain returned with the bytes written. At one chosen request it lies
//! instead, by [`Lie`]; the framework's own `add_used` refuses ids past
//! the queue, so a lie about the id is written into the used ring here.

use super::packed::{self, Chain, Ring, F_RING_PACKED};
use super::Lie;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost_user_backend::{VhostUserBackendMut, VringRwLock, VringT};
use virtio_queue::{QueueOwnedT, QueueT};
use vm_memory::{
    Address, Bytes, GuestAddress, GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap, Le32,
};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    new_event_consumer_and_notifier, EventConsumer, EventFlag, EventNotifier,
};

/// VIRTIO_F_VERSION_1 (the virtio spec): QEMU's vhost-user-fs wants it.
const F_VERSION_1: u64 = 1 << 32;
/// The most queues QEMU may ask for: the high-priority queue and up to
/// this many minus one request queues.
pub const QUEUES: usize = 3;
/// How far `Lie::IndexBackwards` moves the used index back: more than a
/// batch of the firmware's, so that no entry it has yet to take is there.
const BACK: u16 = 64;
/// The largest queue size we take (QEMU's default is 128).
const MAX_QUEUE_SIZE: usize = 1024;
/// `Lie::NotificationStorm`: how long the back-end writes the call
/// eventfd, and at most how many times.
const STORM: Duration = Duration::from_millis(300);
const STORM_WRITES: u64 = 1_000_000;

/// What the back-end did, for the peer's report.
#[derive(Debug, Default)]
pub struct Log {
    pub requests: u64,
    pub bytes: u64,
    /// The lie told, as the report says it.
    pub lied: Option<String>,
    /// What went wrong serving (never expected): each a reason in the verdict.
    pub errors: Vec<String>,
    /// Whether the driver took the packed ring.
    pub packed: bool,
}

pub struct Echo {
    mem: Option<GuestMemoryAtomic<GuestMemoryMmap>>,
    lie: Option<(Lie, u64)>,
    /// `Lie::UsedTwice`: the id returned at the lie's request, returned
    /// again in place of the next request's (the count of used entries
    /// stays that of the chains, so only the id is wrong).
    again: Option<u16>,
    log: Arc<Mutex<Log>>,
    exit: (EventConsumer, EventNotifier),
    /// Whether VIRTIO_F_RING_PACKED is offered, and whether it was taken.
    offer_packed: bool,
    packed: bool,
    /// Our own state of each packed ring.
    rings: [Option<Ring>; QUEUES],
}

impl Echo {
    pub fn new(lie: Option<(Lie, u64)>, log: Arc<Mutex<Log>>) -> io::Result<Self> {
        Ok(Echo {
            mem: None,
            lie,
            again: None,
            log,
            exit: new_event_consumer_and_notifier(EventFlag::NONBLOCK)?,
            offer_packed: false,
            packed: false,
            rings: [None; QUEUES],
        })
    }

    /// Offers VIRTIO_F_RING_PACKED (the device needs `packed=on` too).
    pub fn with_packed(mut self, on: bool) -> Self {
        self.offer_packed = on;
        self
    }

    /// Wakes the worker thread to end it (after the connection closed).
    pub fn exit_notifier(&self) -> io::Result<EventNotifier> {
        self.exit.1.try_clone()
    }

    fn note(&self, f: impl FnOnce(&mut Log)) {
        if let Ok(mut l) = self.log.lock() {
            f(&mut l);
        }
    }

    /// Serves every chain the ring has on `vring`, lying where told to.
    fn serve(&mut self, vring: &VringRwLock) -> io::Result<()> {
        let Some(atomic) = self.mem.as_ref() else {
            return Ok(());
        };
        let mem = atomic.memory();
        loop {
            let chains: Vec<_> = {
                let mut g = vring.get_mut();
                let q = g.get_queue_mut();
                // A kick that comes after the ring was stopped (a reset
                // by another check, or QEMU's stop) has nothing to serve.
                if !q.ready() {
                    return Ok(());
                }
                q.iter(mem.clone()).map_err(io::Error::other)?.collect()
            };
            if chains.is_empty() {
                return Ok(());
            }
            for chain in chains {
                let head = chain.head_index();
                let mut read = Vec::new();
                let mut writable = Vec::new();
                let mut second = None;
                for (i, d) in chain.clone().enumerate() {
                    if i == 0 && d.has_next() {
                        second = Some(d.next());
                    }
                    if d.is_write_only() {
                        writable.push((d.addr(), d.len()));
                    } else {
                        let at = read.len();
                        read.resize(at + d.len() as usize, 0);
                        mem.read_slice(&mut read[at..], d.addr())
                            .map_err(io::Error::other)?;
                    }
                }
                let first_read = chain.clone().find(|d| !d.is_write_only()).map(|d| d.addr());
                let mut written = 0usize;
                for &(addr, len) in &writable {
                    let n = (len as usize).min(read.len() - written);
                    mem.write_slice(&read[written..written + n], addr)
                        .map_err(io::Error::other)?;
                    written += n;
                }
                let room: u64 = writable.iter().map(|&(_, l)| u64::from(l)).sum();
                let n = self.log.lock().map(|l| l.requests).unwrap_or(0);
                self.note(|l| {
                    l.requests += 1;
                    l.bytes += written as u64;
                });
                let written = written as u32;
                if let Some(id) = self.again.take() {
                    vring
                        .get_mut()
                        .get_queue_mut()
                        .add_used(&*mem, id, written)
                        .map_err(io::Error::other)?;
                    self.note(|l| {
                        if let Some(said) = l.lied.as_mut() {
                            said.push_str(&format!(", again for request {n} (head {head})"));
                        }
                    });
                    continue;
                }
                match self.lie {
                    Some((lie, at)) if at == n => {
                        let places = Places {
                            head,
                            second,
                            first_read,
                            past_write: writable
                                .last()
                                .and_then(|&(a, l)| a.checked_add(u64::from(l))),
                        };
                        let said = self.lie_about(vring, &mem, lie, places, written, room)?;
                        self.note(|l| l.lied = Some(format!("request {n}: {said}")));
                    }
                    _ => vring
                        .get_mut()
                        .get_queue_mut()
                        .add_used(&*mem, head, written)
                        .map_err(io::Error::other)?,
                }
            }
        }
    }

    /// Tells `lie` about the chain at `head`; says what it wrote.
    fn lie_about(
        &mut self,
        vring: &VringRwLock,
        mem: &GuestMemoryMmap,
        lie: Lie,
        at: Places,
        written: u32,
        room: u64,
    ) -> io::Result<String> {
        let Places { head, second, .. } = at;
        let size = vring.get_ref().get_queue().size();
        Ok(match lie {
            Lie::IdOutOfRange => {
                raw_used(vring, mem, u32::from(size), written, 1)?;
                format!("used id {size} (queue size {size}) for head {head}")
            }
            Lie::IdNotInFlight => {
                let id = second.ok_or_else(|| {
                    io::Error::other(format!("chain at {head} has one descriptor"))
                })?;
                raw_used(vring, mem, u32::from(id), written, 1)?;
                format!("used id {id} (the second descriptor of the chain at {head})")
            }
            Lie::UsedTwice => {
                vring
                    .get_mut()
                    .get_queue_mut()
                    .add_used(mem, head, written)
                    .map_err(io::Error::other)?;
                self.again = Some(head);
                format!("used id {head}")
            }
            Lie::LenPastWritable => {
                let len = u32::try_from(room + 1).unwrap_or(u32::MAX);
                vring
                    .get_mut()
                    .get_queue_mut()
                    .add_used(mem, head, len)
                    .map_err(io::Error::other)?;
                format!("used length {len} for id {head} ({room} writable bytes)")
            }
            Lie::IndexJump => {
                let step = size + 1;
                raw_used(vring, mem, u32::from(head), written, step)?;
                format!("used index moved by {step} (queue size {size}) for id {head}")
            }
            Lie::IndexBackwards => {
                let mut g = vring.get_mut();
                let q = g.get_queue_mut();
                let (used, next) = (q.used_ring(), q.next_used());
                let idx = next.wrapping_sub(BACK);
                mem.store(idx.to_le(), GuestAddress(used + 2), Ordering::Release)
                    .map_err(io::Error::other)?;
                q.set_next_used(idx);
                format!("used index moved back by {BACK}, {next} -> {idx}, id {head} not returned")
            }
            Lie::NeverReturned => format!("id {head} never returned"),
            Lie::InterruptNothingUsed => {
                vring.signal_used_queue()?;
                format!("signalled with nothing used, id {head} held")
            }
            Lie::NotificationStorm => {
                let (writes, took) = storm(vring)?;
                format!(
                    "signalled {writes} times in {} ms with nothing used, id {head} held",
                    took.as_millis()
                )
            }
            Lie::WritesPastRing => {
                // The used ring: le16 flags, le16 idx, size elements of 8
                // bytes, le16 avail_event.
                let used = vring.get_ref().get_queue().used_ring();
                let said = invert_past_ring(mem, used + 6 + 8 * u64::from(size), "used ring")?;
                vring
                    .get_mut()
                    .get_queue_mut()
                    .add_used(mem, head, written)
                    .map_err(io::Error::other)?;
                format!("{said} (id {head} returned)")
            }
            Lie::PackedWrongWrap | Lie::PackedUsedSkipsAhead => {
                return Err(io::Error::other(format!(
                    "{lie:?} is a packed-ring lie, this ring is split"
                )))
            }
            Lie::WritesReadable | Lie::WritesPastBuffer => {
                let (addr, what) = if lie == Lie::WritesReadable {
                    (at.first_read, "the first byte of the readable buffer")
                } else {
                    (at.past_write, "the byte past the writable buffer")
                };
                let addr = addr.ok_or_else(|| {
                    io::Error::other(format!("chain at {head}: no place for {what}"))
                })?;
                let b: u8 = mem.read_obj(addr).map_err(io::Error::other)?;
                mem.write_obj(!b, addr).map_err(io::Error::other)?;
                vring
                    .get_mut()
                    .get_queue_mut()
                    .add_used(mem, head, written)
                    .map_err(io::Error::other)?;
                format!(
                    "{what} of id {head} ({:#x}) inverted: {b:#04x} -> {:#04x}",
                    addr.0, !b
                )
            }
        })
    }
}

/// Writes the call eventfd in a tight loop for [`STORM`] (at most
/// [`STORM_WRITES`] times), stopping early once the ring is stopped (the
/// guest's reset: the eventfd is gone then); the writes and the time.
fn storm(vring: &VringRwLock) -> io::Result<(u64, Duration)> {
    let started = Instant::now();
    let mut writes = 0;
    while writes < STORM_WRITES && started.elapsed() < STORM {
        if !vring.get_ref().get_queue().ready() {
            break;
        }
        vring.signal_used_queue()?;
        writes += 1;
    }
    Ok((writes, started.elapsed()))
}

impl Echo {
    /// Serves every chain on packed ring `index`, lying where told to;
    /// whether its used position moved.
    fn serve_packed(&mut self, index: usize, vring: &VringRwLock) -> io::Result<bool> {
        let Some(atomic) = self.mem.as_ref() else {
            return Ok(false);
        };
        let mem = atomic.memory();
        let (ready, desc, device_area, size, base) = {
            let g = vring.get_ref();
            let q = g.get_queue();
            (
                q.ready(),
                q.desc_table(),
                q.used_ring(),
                q.size(),
                q.next_avail(),
            )
        };
        if !ready || index >= QUEUES {
            return Ok(false);
        }
        // A ring we have not seen, or one SET_VRING_BASE started anew.
        let mut ring = match self.rings[index] {
            Some(r) if r.desc == desc && r.avail_base() == base => r,
            _ => Ring::new(desc, device_area, size, base),
        };
        // Measured on the ring as served, not as it stood before a reset:
        // a kick left over from before it must not look like a use.
        let before = (ring.used, ring.used_wrap);
        let r = self
            .serve_ring(&mut ring, &mem)
            .map(|()| (ring.used, ring.used_wrap) != before);
        self.rings[index] = Some(ring);
        // What GET_VRING_BASE reports.
        vring
            .get_mut()
            .get_queue_mut()
            .set_next_avail(ring.avail_base());
        r
    }

    fn serve_ring(&mut self, ring: &mut Ring, mem: &GuestMemoryMmap) -> io::Result<()> {
        loop {
            let mut chains = Vec::new();
            while chains.len() < usize::from(ring.size) {
                let Some(c) = ring.available(mem)? else {
                    break;
                };
                ring.take(c.slots);
                chains.push(c);
            }
            if chains.is_empty() {
                return Ok(());
            }
            for (k, c) in chains.iter().enumerate() {
                let (written, room) = packed::echo(mem, c)?;
                let n = self.log.lock().map(|l| l.requests).unwrap_or(0);
                self.note(|l| {
                    l.requests += 1;
                    l.bytes += u64::from(written);
                });
                match self.lie {
                    Some((lie, at)) if at == n => {
                        // The ids the driver still has in flight when it
                        // reads this used descriptor: this chain's and the
                        // later ones'.
                        let pending: Vec<u16> = chains[k..].iter().map(|c| c.id).collect();
                        let said = lie_packed(ring, mem, lie, c, (written, room), &pending)?;
                        self.note(|l| l.lied = Some(format!("request {n}: {said}")));
                    }
                    _ => ring.push_used(mem, c.id, written, c.slots)?,
                }
            }
        }
    }
}

/// Tells `lie` about chain `c` on a packed ring; says what it wrote.
fn lie_packed(
    ring: &mut Ring,
    mem: &GuestMemoryMmap,
    lie: Lie,
    c: &Chain,
    (written, room): (u32, u64),
    pending: &[u16],
) -> io::Result<String> {
    let (slot, wrap, size, id) = (ring.used, ring.used_wrap, ring.size, c.id);
    let flags = packed::used_flags(wrap);
    // A used descriptor at our position, which then moves on as for `c`.
    let put = |ring: &mut Ring, d: (u16, u32, u16)| -> io::Result<()> {
        ring.write_used(mem, slot, d)?;
        (ring.used, ring.used_wrap) = ring.advance(slot, wrap, c.slots);
        Ok(())
    };
    Ok(match lie {
        Lie::IdOutOfRange => {
            put(ring, (size, written, flags))?;
            format!("used id {size} (queue size {size}) for id {id} at ring index {slot}")
        }
        Lie::IdNotInFlight => {
            let other = (0..size)
                .find(|i| !pending.contains(i))
                .ok_or_else(|| io::Error::other(format!("every id of the {size} is in flight")))?;
            put(ring, (other, written, flags))?;
            format!("used id {other} (not in flight) for id {id} at ring index {slot}")
        }
        Lie::LenPastWritable => {
            let len = u32::try_from(room + 1).unwrap_or(u32::MAX);
            put(ring, (id, len, flags))?;
            format!("used length {len} for id {id} ({room} writable bytes)")
        }
        Lie::NeverReturned => format!("id {id} never returned"),
        Lie::PackedWrongWrap => {
            let old = packed::used_flags(!wrap);
            put(ring, (id, written, old))?;
            format!(
                "used descriptor for id {id} at ring index {slot} with flags {old:#x} (the previous lap's; this lap's are {flags:#x})"
            )
        }
        Lie::PackedUsedSkipsAhead => {
            let (to, to_wrap) = ring.advance(slot, wrap, c.slots);
            ring.write_used(mem, to, (id, written, packed::used_flags(to_wrap)))?;
            (ring.used, ring.used_wrap) = ring.advance(to, to_wrap, c.slots);
            format!("used descriptor for id {id} at ring index {to}, ring index {slot} skipped")
        }
        Lie::WritesPastRing => {
            let at = ring.device_area + packed::DEVICE_AREA_LEN;
            let said = invert_past_ring(mem, at, "device area")?;
            put(ring, (id, written, flags))?;
            format!("{said} (id {id} returned)")
        }
        other => {
            return Err(io::Error::other(format!(
                "{other:?} is not told on a packed ring"
            )))
        }
    })
}

/// Inverts the byte at `at`, just past the ring's `area`; says so.
fn invert_past_ring(mem: &GuestMemoryMmap, at: u64, area: &str) -> io::Result<String> {
    let b: u8 = mem.read_obj(GuestAddress(at)).map_err(io::Error::other)?;
    mem.write_obj(!b, GuestAddress(at))
        .map_err(io::Error::other)?;
    Ok(format!(
        "the byte past the {area} ({at:#x}) inverted: {b:#04x} -> {:#04x}",
        !b
    ))
}

/// Where in a chain a lie may write.
#[derive(Clone, Copy)]
struct Places {
    head: u16,
    /// The second descriptor's index, for a chain of two or more.
    second: Option<u16>,
    /// The first device-readable buffer.
    first_read: Option<GuestAddress>,
    /// Just past the last device-writable buffer.
    past_write: Option<GuestAddress>,
}

/// Writes one used element (`id`, `len`) at the next used slot and moves
/// the used index by `step` (1 for one element), as `add_used` would but
/// without its checks; the framework's index follows.
fn raw_used(
    vring: &VringRwLock,
    mem: &GuestMemoryMmap,
    id: u32,
    len: u32,
    step: u16,
) -> io::Result<()> {
    let mut g = vring.get_mut();
    let q = g.get_queue_mut();
    let (used, size, next) = (q.used_ring(), q.size(), q.next_used());
    let slot = u64::from(next % size);
    // The split ring's used area: le16 flags, le16 idx, then size
    // elements of le32 id, le32 len (the virtio spec).
    let elem = used + 4 + 8 * slot;
    mem.write_obj(Le32::from(id), GuestAddress(elem))
        .map_err(io::Error::other)?;
    mem.write_obj(Le32::from(len), GuestAddress(elem + 4))
        .map_err(io::Error::other)?;
    let idx = next.wrapping_add(step);
    // The element is visible before the index that hands it out.
    mem.store(idx.to_le(), GuestAddress(used + 2), Ordering::Release)
        .map_err(io::Error::other)?;
    q.set_next_used(idx);
    Ok(())
}

impl VhostUserBackendMut for Echo {
    type Vring = VringRwLock;
    type Bitmap = ();

    fn num_queues(&self) -> usize {
        QUEUES
    }

    fn max_queue_size(&self) -> usize {
        MAX_QUEUE_SIZE
    }

    fn features(&self) -> u64 {
        // No EVENT_IDX: the back-end signals after every batch and never
        // needs the driver's event index.
        let packed = if self.offer_packed { F_RING_PACKED } else { 0 };
        F_VERSION_1 | packed | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn acked_features(&mut self, features: u64) {
        self.packed = features & F_RING_PACKED != 0;
        if self.packed {
            self.note(|l| l.packed = true);
        }
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        // Not CONFIG: QEMU serves vhost-user-fs's configuration itself.
        VhostUserProtocolFeatures::MQ | VhostUserProtocolFeatures::REPLY_ACK
    }

    fn set_event_idx(&mut self, _enabled: bool) {}

    fn update_memory(&mut self, mem: GuestMemoryAtomic<GuestMemoryMmap>) -> io::Result<()> {
        self.mem = Some(mem);
        Ok(())
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        Some((self.exit.0.try_clone().ok()?, self.exit.1.try_clone().ok()?))
    }

    fn handle_event(
        &mut self,
        device_event: u16,
        evset: EventSet,
        vrings: &[VringRwLock],
        _thread_id: usize,
    ) -> io::Result<()> {
        if evset != EventSet::IN {
            self.note(|l| {
                l.errors
                    .push(format!("queue {device_event}: unexpected events {evset:?}"))
            });
            return Ok(());
        }
        let Some(vring) = vrings.get(usize::from(device_event)) else {
            return Ok(());
        };
        // An error is the verdict's (the peer's reasons), not the end of
        // the worker thread: an Err here would stop every queue.
        // Signalled only when the used position moved: an honest device
        // never interrupts with nothing new used (the firmware counts those).
        let index = usize::from(device_event);
        let moved = if self.packed {
            self.serve_packed(index, vring)
        } else {
            let next_used = || vring.get_ref().get_queue().next_used();
            let before = next_used();
            self.serve(vring).map(|()| next_used() != before)
        };
        let served = moved.and_then(|m| if m { vring.signal_used_queue() } else { Ok(()) });
        if let Err(e) = served {
            self.note(|l| l.errors.push(format!("queue {device_event}: {e}")));
        }
        Ok(())
    }
}
