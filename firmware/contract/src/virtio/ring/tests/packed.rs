//! Packed rings: layout, flags on the wire, wrap counters over many laps,
//! sizes, indirect tables, event suppression and a hostile device.

use super::mem::TestMem;
use super::model::{Device, PackedDevice};
use super::*;

const AVAIL: u16 = 1 << 7;
const USED: u16 = 1 << 15;

fn queue(mem: &TestMem, size: u16, event_idx: bool) -> PackedQueue {
    let l = packed_layout(size).unwrap();
    PackedQueue::new(mem.ring(l.total, l.align as usize), size, event_idx).unwrap()
}

fn buf(mem: &TestMem, len: u32, writable: bool) -> Buffer {
    let fill = if writable { 0xee } else { 0x22 };
    Buffer {
        addr: mem.alloc(len as usize, 8, fill),
        len,
        device_writable: writable,
    }
}

fn flags_at(mem: &TestMem, q: &PackedQueue, slot: u64) -> u16 {
    mem.r16(q.desc_area() + 16 * slot + 14, Endian::Little)
}

#[test]
fn layouts() {
    assert_eq!(
        packed_layout(1).unwrap(),
        PackedLayout {
            desc: 0,
            driver_event: 16,
            device_event: 20,
            total: 24,
            align: 16
        }
    );
    // Any size up to 32768; no power of two needed.
    assert_eq!(packed_layout(3).unwrap().total, 56);
    assert_eq!(packed_layout(32768).unwrap().device_event, 16 * 32768 + 4);
    assert_eq!(packed_layout(0), Err(QueueError::ZeroSize));
    assert_eq!(
        packed_layout(32769),
        Err(QueueError::SizeTooLarge { size: 32769 })
    );
    let mem = TestMem::default();
    let short = mem.ring(55, 16);
    assert_eq!(
        PackedQueue::new(short, 3, false).unwrap_err(),
        QueueError::MemoryTooSmall {
            needed: 56,
            len: 55
        }
    );
    let a = mem.alloc(64, 16, 0) + 4;
    // SAFETY: inside a block of the test memory, used by nothing else.
    let odd = unsafe { RingMemory::new(a, 56) };
    assert!(matches!(
        PackedQueue::new(odd, 3, false),
        Err(QueueError::Misaligned { align: 16, .. })
    ));
}

#[test]
fn flags_on_the_wire() {
    let mem = TestMem::default();
    let mut q = queue(&mem, 4, false);
    let mut dev = PackedDevice::new(&mem, &q, false);
    assert_eq!(q.next_avail_index(), 0x8000);
    let chain = [buf(&mem, 3, false), buf(&mem, 4, true), buf(&mem, 5, true)];
    let id = q.add(&chain).unwrap();
    assert_eq!(id, 0);
    // Lap 1 (wrap counter 1): AVAIL set, USED clear.
    assert_eq!(flags_at(&mem, &q, 0), AVAIL | 1);
    assert_eq!(flags_at(&mem, &q, 1), AVAIL | 1 | 2);
    assert_eq!(flags_at(&mem, &q, 2), AVAIL | 2);
    assert_eq!(q.next_avail_index(), 0x8003);
    assert_eq!(q.free_descriptors(), 1);
    let c = dev.take().unwrap();
    assert_eq!((c.id, c.slots, c.elems.len()), (0, 3, 3));
    device_fill(&mem, &c, 9);
    dev.complete(&c, 9);
    assert_eq!(flags_at(&mem, &q, 0), AVAIL | USED | 2);
    assert_eq!(q.pop_used(), Ok(Some(Used { token: 0, len: 9 })));
    assert_eq!(q.pop_used(), Ok(None));
    // The next chain crosses the end of the ring: slot 3 in lap 1, then
    // slot 0 in lap 2 (wrap counter 0: USED set, AVAIL clear).
    let id = q.add(&chain[..2]).unwrap();
    assert_eq!(flags_at(&mem, &q, 3), AVAIL | 1);
    assert_eq!(flags_at(&mem, &q, 0), USED | 2);
    assert_eq!(q.next_avail_index(), 1);
    let c = dev.take().unwrap();
    assert_eq!((c.id, c.slots), (id, 2));
    dev.complete(&c, 0);
    // Written in lap 1 by the device: both bits set.
    assert_eq!(flags_at(&mem, &q, 3), AVAIL | USED | 2);
    assert_eq!(q.pop_used(), Ok(Some(Used { token: id, len: 0 })));
    assert_eq!(q.free_descriptors(), 4);
}

#[test]
fn wrap_counters_over_many_laps() {
    for size in [1u16, 2, 3, 5, 8] {
        let mem = TestMem::default();
        let mut q = queue(&mem, size, false);
        let mut dev = PackedDevice::new(&mem, &q, false);
        let pool: Vec<Buffer> = (0..3).map(|i| buf(&mem, 4, i == 2)).collect();
        let mut abs = 0u64;
        let mut rng = XorShift(0x9e37_79b9 + u64::from(size));
        for _ in 0..200 {
            // Fill as far as chains fit, then complete in a random order.
            let mut taken = Vec::new();
            loop {
                let len = 1 + rng.below(3) as usize;
                let chain = &pool[3 - len..];
                match q.add(chain) {
                    Ok(_) => abs += len as u64,
                    Err(QueueError::QueueFull { needed, free }) => {
                        assert!(usize::from(free) < needed);
                        break;
                    }
                    Err(e) => panic!("{e:?}"),
                }
                let n = u64::from(size);
                let wrap = if (abs / n).is_multiple_of(2) {
                    0x8000
                } else {
                    0
                };
                assert_eq!(q.next_avail_index(), (abs % n) as u16 | wrap);
                taken.push(dev.take().unwrap());
            }
            while !taken.is_empty() {
                let c = taken.swap_remove(rng.below(taken.len() as u64) as usize);
                dev.complete(&c, 0);
                let u = q.pop_used().unwrap().unwrap();
                assert_eq!(u.token, c.id);
            }
            assert_eq!(q.pop_used(), Ok(None));
            assert_eq!(q.free_descriptors(), size);
        }
        assert!(
            abs > 20 * u64::from(size),
            "only {abs} slots for size {size}"
        );
    }
}

#[test]
fn every_size_fills_and_drains() {
    for size in [1u16, 2, 3, 256, 32768] {
        let mem = TestMem::default();
        let mut q = queue(&mem, size, true);
        let mut dev = PackedDevice::new(&mem, &q, true);
        let b = buf(&mem, 2, true);
        for lap in 0..2 {
            for _ in 0..size {
                q.add(&[b]).unwrap();
            }
            assert_eq!(
                q.add(&[b]),
                Err(QueueError::QueueFull { needed: 1, free: 0 })
            );
            // A full lap flips the wrap counter.
            assert_eq!(q.next_avail_index(), if lap == 0 { 0 } else { 0x8000 });
            let mut chains: Vec<_> = std::iter::from_fn(|| dev.take()).collect();
            assert_eq!(chains.len(), usize::from(size));
            chains.reverse();
            for c in &chains {
                dev.complete(c, 2);
            }
            for c in &chains {
                assert_eq!(
                    q.pop_used(),
                    Ok(Some(Used {
                        token: c.id,
                        len: 2
                    }))
                );
            }
            assert_eq!(q.pop_used(), Ok(None));
            assert_eq!((q.in_flight(), q.free_descriptors()), (0, size));
        }
    }
}

#[test]
fn indirect_tables() {
    let mem = TestMem::default();
    let mut q = queue(&mem, 4, false);
    let mut dev = PackedDevice::new(&mem, &q, false);
    let chain: Vec<Buffer> = (0..4).map(|i| buf(&mem, 8 + i, i == 3)).collect();
    let t = table(&mem, 4);
    let id = q.add_indirect(&chain, t).unwrap();
    assert_eq!(q.free_descriptors(), 3);
    // The ring descriptor: the table, INDIRECT and the lap's AVAIL only.
    assert_eq!(flags_at(&mem, &q, 0), AVAIL | 4);
    assert_eq!(mem.r32(q.desc_area() + 8, Endian::Little), 64);
    // Table entries: WRITE is their only flag, and no id.
    for i in 0..4u64 {
        let at = t.addr() + 16 * i;
        assert_eq!(mem.r16(at + 12, Endian::Little), 0);
        let want = if i == 3 { 2 } else { 0 };
        assert_eq!(mem.r16(at + 14, Endian::Little), want);
    }
    let c = dev.take().unwrap();
    assert!(c.indirect);
    assert_eq!((c.id, c.slots, c.elems.len()), (id, 1, 4));
    device_fill(&mem, &c, 11);
    dev.complete(&c, 11);
    assert_eq!(q.pop_used(), Ok(Some(Used { token: id, len: 11 })));
    let five: Vec<Buffer> = (0..5).map(|_| buf(&mem, 1, false)).collect();
    assert_eq!(
        q.add_indirect(&five, table(&mem, 5)),
        Err(QueueError::IndirectTooLong {
            descriptors: 5,
            size: 4
        })
    );
    assert_eq!(
        q.add_indirect(&chain, table(&mem, 2)),
        Err(QueueError::IndirectTableTooSmall {
            needed: 64,
            len: 32
        })
    );
    // Mixed with direct chains in one ring.
    q.add(&chain[..2]).unwrap();
    q.add_indirect(&chain, table(&mem, 4)).unwrap();
    q.add_indirect(&chain[3..], table(&mem, 1)).unwrap();
    assert_eq!(
        q.add_indirect(&chain, table(&mem, 4)),
        Err(QueueError::QueueFull { needed: 1, free: 0 })
    );
    let cs: Vec<_> = std::iter::from_fn(|| dev.take()).collect();
    assert_eq!(
        cs.iter().map(|c| (c.slots, c.indirect)).collect::<Vec<_>>(),
        [(2, false), (1, true), (1, true)]
    );
}

#[test]
fn device_event_suppression() {
    let mem = TestMem::default();
    let mut q = queue(&mem, 4, true);
    let mut dev = PackedDevice::new(&mem, &q, true);
    let one = [buf(&mem, 1, false)];
    let two = [buf(&mem, 1, false), buf(&mem, 1, false)];
    assert!(!q.should_notify());
    // ENABLE (the zeroed default).
    q.add(&one).unwrap(); // slot 0, lap 1
    assert!(q.should_notify());
    dev.set_device_event(1, 0, true); // DISABLE
    q.add(&one).unwrap(); // 1
    assert!(!q.should_notify());
    dev.set_device_event(2, 3, true); // DESC: slot 3 in lap 1
    q.add(&one).unwrap(); // 2
    assert!(!q.should_notify());
    let cs: Vec<_> = std::iter::from_fn(|| dev.take()).collect();
    for c in &cs {
        dev.complete(c, 0);
    }
    while q.pop_used().unwrap().is_some() {}
    q.add(&two).unwrap(); // 3 (lap 1), 0 (lap 2)
    assert!(q.should_notify());
    assert_eq!(q.next_avail_index(), 1);
    // The same offset in the other lap is a different descriptor.
    dev.set_device_event(2, 1, true);
    q.add(&one).unwrap(); // 1, lap 2
    assert!(!q.should_notify());
    dev.set_device_event(2, 2, false);
    q.add(&one).unwrap(); // 2, lap 2
    assert!(q.should_notify());
    // An offset past the ring or the reserved flag value: notify anyway.
    let cs: Vec<_> = std::iter::from_fn(|| dev.take()).collect();
    for c in &cs {
        dev.complete(c, 0);
    }
    while q.pop_used().unwrap().is_some() {}
    dev.set_device_event(2, 9, false);
    q.add(&one).unwrap();
    assert!(q.should_notify());
    dev.set_device_event(3, 0, false);
    q.add(&one).unwrap();
    assert!(q.should_notify());
    // DESC means nothing without EVENT_IDX: treated as enabled.
    q.set_event_idx(false);
    dev.set_device_event(2, 0, true);
    q.add(&one).unwrap();
    assert!(q.should_notify());
}

#[test]
fn driver_event_suppression() {
    for event_idx in [false, true] {
        let mem = TestMem::default();
        let mut q = queue(&mem, 3, event_idx);
        let mut dev = PackedDevice::new(&mem, &q, event_idx);
        let b = [buf(&mem, 1, true), buf(&mem, 1, true)];
        assert_eq!(
            dev.driver_event(),
            if event_idx { (0x8000, 2) } else { (0, 0) }
        );
        q.add(&b).unwrap();
        q.add(&b[..1]).unwrap();
        let cs: Vec<_> = std::iter::from_fn(|| dev.take()).collect();
        // Second chain first: its used descriptor lands in slot 0.
        dev.complete(&cs[1], 1);
        dev.complete(&cs[0], 2);
        assert_eq!(dev.interrupts(), if event_idx { 1 } else { 2 });
        assert_eq!(
            q.pop_used(),
            Ok(Some(Used {
                token: cs[1].id,
                len: 1
            }))
        );
        if event_idx {
            // Next used descriptor: slot 1 (the second chain took one).
            assert_eq!(dev.driver_event(), (0x8001, 2));
        }
        assert_eq!(
            q.pop_used(),
            Ok(Some(Used {
                token: cs[0].id,
                len: 2
            }))
        );
        assert_eq!(dev.next_used(), (0, false));
        if event_idx {
            assert_eq!(dev.driver_event(), (0, 2));
        }
        q.enable_interrupts(false);
        assert_eq!(dev.driver_event().1, 1);
        q.add(&b[..1]).unwrap();
        let c = dev.take().unwrap();
        dev.complete(&c, 0);
        assert_eq!(dev.interrupts(), if event_idx { 1 } else { 2 });
        q.enable_interrupts(true);
        assert_eq!(dev.driver_event().1, if event_idx { 2 } else { 0 });
        assert!(q.pop_used().unwrap().is_some());
        q.add(&b[..1]).unwrap();
        let c = dev.take().unwrap();
        dev.complete(&c, 0);
        assert_eq!(dev.interrupts(), if event_idx { 2 } else { 3 });
    }
}

/// Two chains in flight and taken: id 0 ([readable, writable 16], 2
/// slots) and id 1 ([writable 8], 1 slot).
fn hostile_setup(mem: &TestMem) -> (PackedQueue, PackedDevice<'_>) {
    let mut q = queue(mem, 4, false);
    let mut dev = PackedDevice::new(mem, &q, false);
    assert_eq!(q.add(&[buf(mem, 4, false), buf(mem, 16, true)]), Ok(0));
    assert_eq!(q.add(&[buf(mem, 8, true)]), Ok(1));
    dev.take().unwrap();
    dev.take().unwrap();
    (q, dev)
}

#[test]
fn hostile_device() {
    let mem = TestMem::default();
    let bad = |flags, in_flight| QueueError::BadUsedFlags {
        offset: 0,
        flags,
        wrap: true,
        in_flight,
        id: 0,
    };

    // USED flipped without AVAIL, and a slot that looks a lap old.
    for flags in [USED, 0, USED | 2] {
        let (mut q, dev) = hostile_setup(&mem);
        dev.write_used_raw(0, 0, flags);
        assert_eq!(q.pop_used(), Err(bad(flags, 2)));
        assert_eq!(q.pop_used(), Err(bad(flags, 2)));
        assert_eq!(q.in_flight(), 2);
    }

    // Used (or available) descriptors where nothing is in flight.
    for flags in [AVAIL | USED, AVAIL] {
        let mut q0 = queue(&mem, 4, false);
        let dev = PackedDevice::new(&mem, &q0, false);
        assert_eq!(q0.pop_used(), Ok(None));
        dev.write_used_raw(0, 0, flags);
        assert_eq!(q0.pop_used(), Err(bad(flags, 0)));
    }

    // Ids that name nothing, or nothing in flight.
    let (mut q, dev) = hostile_setup(&mem);
    let f = dev.used_flags();
    let unknown = |id| QueueError::PackedUnknownId {
        offset: 0,
        flags: f,
        id,
        size: 4,
    };
    dev.write_used_raw(4, 0, f);
    assert_eq!(q.pop_used(), Err(unknown(4)));
    dev.write_used_raw(0xffff, 0, f);
    assert_eq!(q.pop_used(), Err(unknown(0xffff)));
    dev.write_used_raw(2, 0, f);
    assert_eq!(
        q.pop_used(),
        Err(QueueError::PackedNotInFlight {
            offset: 0,
            flags: f,
            id: 2,
            in_flight: 2
        })
    );
    assert_eq!((q.in_flight(), q.free_descriptors()), (2, 1));

    // The same id twice.
    let (mut q, mut dev) = hostile_setup(&mem);
    let c1 = model::Chain {
        id: 1,
        slots: 1,
        elems: vec![model::Elem {
            addr: 0,
            len: 8,
            writable: true,
        }],
        indirect: false,
    };
    dev.complete(&c1, 8);
    assert_eq!(q.pop_used(), Ok(Some(Used { token: 1, len: 8 })));
    dev.write_used_raw(1, 8, dev.used_flags() | 2);
    assert_eq!(
        q.pop_used(),
        Err(QueueError::PackedNotInFlight {
            offset: 1,
            flags: dev.used_flags() | 2,
            id: 1,
            in_flight: 1
        })
    );

    // Too long with WRITE: reported, chain released, queue goes on.
    let (mut q, dev) = hostile_setup(&mem);
    dev.write_used_raw(0, 17, dev.used_flags() | 2);
    assert_eq!(
        q.pop_used(),
        Err(QueueError::UsedLenTooLong {
            id: 0,
            len: 17,
            writable: 16
        })
    );
    assert_eq!((q.in_flight(), q.free_descriptors()), (1, 3));
    // Without WRITE (as QEMU writes used descriptors) the length of a
    // writable chain still counts, and is still checked.
    let (mut q, dev) = hostile_setup(&mem);
    dev.write_used_raw(1, 0xdead_beef, dev.used_flags());
    assert_eq!(
        q.pop_used(),
        Err(QueueError::UsedLenTooLong {
            id: 1,
            len: 0xdead_beef,
            writable: 8
        })
    );
    // The used descriptor for id 1 took slot 0; the next is expected in
    // slot 1, which still holds id 0's second descriptor, available.
    assert_eq!(q.pop_used(), Ok(None));
    mem.check_guards();
}

/// The device writes its used descriptor one chain further on: the slot
/// at our position stays available, so `pop_used` sees nothing, and the
/// ring names the skip when the wait ends; an honest ring names nothing.
#[test]
fn a_used_position_skipping_ahead_is_named() {
    let mem = TestMem::default();
    let (q, dev) = hostile_setup(&mem);
    assert_eq!(q.stalled(), None);
    // Id 1's chain sits at slot 2, after id 0's two slots.
    let at = dev.at(2);
    mem.w16(at + 12, 1, Endian::Little);
    mem.w16(at + 14, dev.used_flags(), Endian::Little);
    let mut q = q;
    assert_eq!(q.pop_used(), Ok(None));
    assert_eq!(
        q.stalled(),
        Some(QueueError::UsedSkippedAhead {
            expected: 0,
            found: 2,
            id: 1,
            flags: AVAIL | USED
        })
    );
    // Where the device has written ours too, it is no skip.
    dev.write_used_raw(0, 16, dev.used_flags());
    assert_eq!(q.stalled(), None);
}
