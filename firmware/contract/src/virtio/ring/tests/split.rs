//! Split rings: layouts, byte orders, index wrap, sizes, indirect tables,
//! notification suppression and a hostile device.

use super::mem::TestMem;
use super::model::{Device, SplitDevice};
use super::*;

const ENDIANS: [Endian; 2] = [Endian::Big, Endian::Little];

fn queue(mem: &TestMem, size: u16, e: Endian, legacy: bool, event_idx: bool) -> SplitQueue {
    let l = split_layout(size, legacy.then_some(LEGACY_ALIGN)).unwrap();
    SplitQueue::new(
        mem.ring(l.total, l.align as usize),
        size,
        e,
        legacy,
        event_idx,
    )
    .unwrap()
}

/// A buffer of `len` bytes in test memory.
fn buf(mem: &TestMem, len: u32, writable: bool) -> Buffer {
    let fill = if writable { 0xee } else { 0x11 };
    Buffer {
        addr: mem.alloc(len as usize, 8, fill),
        len,
        device_writable: writable,
    }
}

#[test]
fn layouts() {
    assert_eq!(
        split_layout(1, None).unwrap(),
        SplitLayout {
            desc: 0,
            avail: 16,
            used: 24,
            total: 38,
            align: 16
        }
    );
    assert_eq!(
        split_layout(256, None).unwrap(),
        SplitLayout {
            desc: 0,
            avail: 4096,
            used: 4096 + 520,
            total: 4096 + 520 + 6 + 2048,
            align: 16
        }
    );
    assert_eq!(
        split_layout(256, Some(4096)).unwrap(),
        SplitLayout {
            desc: 0,
            avail: 4096,
            used: 8192,
            total: 12288,
            align: 4096
        }
    );
    for shift in 0..=15 {
        let n = 1u16 << shift;
        let l = split_layout(n, Some(4096)).unwrap();
        let n = n as usize;
        // QEMU's legacy formula (avail ring without used_event) and the
        // spec's (with it) agree for every power-of-two size.
        assert_eq!(l.used, (16 * n + 4 + 2 * n).next_multiple_of(4096));
        assert_eq!(l.used, (16 * n + 6 + 2 * n).next_multiple_of(4096));
        // The spec's virtq_size().
        assert_eq!(l.total, l.used + (6 + 8 * n).next_multiple_of(4096));
        let m = split_layout(1 << shift, None).unwrap();
        assert_eq!((m.avail % 2, m.used % 4), (0, 0));
        assert_eq!(m.total, m.used + 6 + 8 * n);
    }
    assert_eq!(split_layout(0, None), Err(QueueError::ZeroSize));
    for size in [3, 6, 100, 255, 32767] {
        assert_eq!(
            split_layout(size, None),
            Err(QueueError::SizeNotPowerOfTwo { size })
        );
    }
    for size in [32769, 49152, 65535] {
        assert_eq!(
            split_layout(size, Some(4096)),
            Err(QueueError::SizeTooLarge { size })
        );
    }
    for align in [0, 8, 100] {
        assert_eq!(
            split_layout(8, Some(align)),
            Err(QueueError::BadAlign { align })
        );
    }
}

#[test]
fn refuses_bad_memory() {
    let mem = TestMem::default();
    let l = split_layout(8, Some(4096)).unwrap();
    let short = mem.ring(l.total - 1, 4096);
    assert_eq!(
        SplitQueue::new(short, 8, Endian::Big, true, false).unwrap_err(),
        QueueError::MemoryTooSmall {
            needed: l.total,
            len: l.total - 1
        }
    );
    let a = mem.alloc(l.total + 64, 4096, 0) + 16;
    // SAFETY: inside a block of the test memory, used by nothing else.
    let off = unsafe { RingMemory::new(a, l.total) };
    assert_eq!(
        SplitQueue::new(off, 8, Endian::Big, true, false).unwrap_err(),
        QueueError::Misaligned {
            what: "ring memory",
            addr: a,
            align: 4096
        }
    );
    // 16 bytes in is fine for a modern ring; 8 is not.
    assert!(SplitQueue::new(off, 8, Endian::Little, false, false).is_ok());
    // SAFETY: as above.
    let off8 = unsafe { RingMemory::new(a + 8, l.total) };
    assert!(matches!(
        SplitQueue::new(off8, 8, Endian::Little, false, false),
        Err(QueueError::Misaligned { align: 16, .. })
    ));
    for size in [0, 5, 40000] {
        assert!(SplitQueue::new(off, size, Endian::Little, false, false).is_err());
    }
}

#[test]
fn byte_orders_on_the_wire() {
    for e in ENDIANS {
        for legacy in [false, true] {
            let mem = TestMem::default();
            let mut q = queue(&mem, 4, e, legacy, false);
            let mut dev = SplitDevice::new(&mem, &q, e, legacy, false);
            let (r, w) = (buf(&mem, 0x123, false), buf(&mem, 0x10, true));
            let t = q.add(&[r, w]).unwrap();
            assert_eq!(t, 0);
            // avail.idx = 1 in the ring's byte order.
            let idx = mem.read(q.driver_area() + 2, 2);
            assert_eq!(idx, if e == Endian::Big { [0, 1] } else { [1, 0] });
            // The first descriptor: address, length, NEXT, next = 1.
            let d = mem.read(q.desc_area(), 16);
            let want: Vec<u8> = match e {
                Endian::Big => [
                    &r.addr.to_be_bytes()[..],
                    &0x123u32.to_be_bytes(),
                    &[0, 1, 0, 1],
                ]
                .concat(),
                Endian::Little => [
                    &r.addr.to_le_bytes()[..],
                    &0x123u32.to_le_bytes(),
                    &[1, 0, 1, 0],
                ]
                .concat(),
            };
            assert_eq!(d, want);
            let c = dev.take().unwrap();
            assert_eq!(c.elems.len(), 2);
            assert_eq!((c.elems[0].addr, c.elems[0].len), (r.addr, 0x123));
            assert!(!c.elems[0].writable && c.elems[1].writable);
            device_fill(&mem, &c, 7);
            dev.complete(&c, 7);
            assert_eq!(q.pop_used(), Ok(Some(Used { token: 0, len: 7 })));
            assert_eq!(q.pop_used(), Ok(None));
            let got = mem.read(w.addr, 16);
            let read = mem.read(r.addr, 0x123);
            for (i, b) in got.iter().enumerate() {
                let want = if i < 7 { output_byte(&read, i) } else { 0xee };
                assert_eq!(*b, want, "byte {i}");
            }
        }
    }
}

/// One add, take, complete and pop, checking the token and the index.
fn cycle(q: &mut SplitQueue, dev: &mut SplitDevice, b: &[Buffer]) -> u16 {
    let t = q.add(b).unwrap();
    let c = dev.take().unwrap();
    assert_eq!(c.id, t);
    dev.complete(&c, 1);
    assert_eq!(q.pop_used(), Ok(Some(Used { token: t, len: 1 })));
    t
}

#[test]
fn indexes_wrap_past_65535() {
    for e in ENDIANS {
        let mem = TestMem::default();
        let l = split_layout(4, None).unwrap();
        let ring = mem.ring(l.total, 16);
        let mut q = SplitQueue::new_at(ring, 4, e, false, true, 65533).unwrap();
        let mut dev = SplitDevice::new(&mem, &q, e, false, true);
        dev.start_at(65533);
        let b = [buf(&mem, 8, false), buf(&mem, 8, true)];
        assert_eq!(q.next_avail_index(), 65533);
        for i in 0..10u16 {
            // Two chains in flight across the wrap, completed out of order.
            let t1 = q.add(&b[..1]).unwrap();
            let t2 = q.add(&b).unwrap();
            assert_eq!(q.next_avail_index(), 65533u16.wrapping_add(2 * i + 2));
            let (c1, c2) = (dev.take().unwrap(), dev.take().unwrap());
            assert_eq!((c1.id, c2.id), (t1, t2));
            dev.complete(&c2, 8);
            dev.complete(&c1, 0);
            assert_eq!(q.pop_used(), Ok(Some(Used { token: t2, len: 8 })));
            assert_eq!(q.pop_used(), Ok(Some(Used { token: t1, len: 0 })));
            assert_eq!(q.pop_used(), Ok(None));
        }
        assert_eq!(q.next_avail_index(), 65533u16.wrapping_add(20));
        assert_eq!(dev.avail_idx(), 17);
    }
}

#[test]
fn more_than_65536_operations() {
    let mem = TestMem::default();
    let mut q = queue(&mem, 2, Endian::Big, true, false);
    let mut dev = SplitDevice::new(&mem, &q, Endian::Big, true, false);
    let b = [buf(&mem, 1, true)];
    for _ in 0..70_000u32 {
        cycle(&mut q, &mut dev, &b);
    }
    assert_eq!(q.next_avail_index(), (70_000u32 % 65536) as u16);
    assert_eq!((q.in_flight(), q.free_descriptors()), (0, 2));
}

#[test]
fn every_size_fills_and_drains() {
    for size in [1u16, 2, 256, 32768] {
        let legacy = size != 2;
        let e = if legacy { Endian::Big } else { Endian::Little };
        let mem = TestMem::default();
        let mut q = queue(&mem, size, e, legacy, false);
        let mut dev = SplitDevice::new(&mem, &q, e, legacy, false);
        let b = buf(&mem, 4, true);
        let mut tokens = Vec::new();
        for _ in 0..size {
            tokens.push(q.add(&[b]).unwrap());
        }
        assert_eq!(
            q.add(&[b]),
            Err(QueueError::QueueFull { needed: 1, free: 0 })
        );
        assert_eq!(q.in_flight(), size);
        let mut sorted = tokens.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), usize::from(size), "tokens are distinct");
        let mut chains: Vec<_> = std::iter::from_fn(|| dev.take()).collect();
        assert_eq!(chains.len(), usize::from(size));
        // Complete in reverse order; tokens come back in that order.
        chains.reverse();
        for c in &chains {
            dev.complete(c, 4);
        }
        for c in &chains {
            assert_eq!(
                q.pop_used(),
                Ok(Some(Used {
                    token: c.id,
                    len: 4
                }))
            );
        }
        assert_eq!(q.pop_used(), Ok(None));
        assert_eq!((q.in_flight(), q.free_descriptors()), (0, size));
        // The recycled descriptors still chain correctly.
        if size >= 2 {
            let two = [buf(&mem, 3, false), buf(&mem, 5, true)];
            let t = q.add(&two).unwrap();
            let c = dev.take().unwrap();
            assert_eq!((c.id, c.elems.len()), (t, 2));
            assert_eq!(
                q.add(&vec![b; usize::from(size)]),
                Err(QueueError::QueueFull {
                    needed: usize::from(size),
                    free: size - 2
                })
            );
        }
    }
}

#[test]
fn chains_longer_than_the_queue_never_fit() {
    let mem = TestMem::default();
    let mut q = queue(&mem, 4, Endian::Little, false, false);
    let b = buf(&mem, 1, false);
    assert_eq!(
        q.add(&[b; 5]),
        Err(QueueError::QueueFull { needed: 5, free: 4 })
    );
    assert_eq!(q.add(&[b; 4]), Ok(0));
    assert_eq!(q.free_descriptors(), 0);
}

#[test]
fn indirect_tables() {
    for e in ENDIANS {
        let mem = TestMem::default();
        let mut q = queue(&mem, 4, e, e == Endian::Big, false);
        let mut dev = SplitDevice::new(&mem, &q, e, e == Endian::Big, false);
        // A table may hold up to the queue size: 4 here.
        let chain: Vec<Buffer> = (0..4).map(|i| buf(&mem, 10 + i, i >= 2)).collect();
        let t = q.add_indirect(&chain, table(&mem, 4)).unwrap();
        assert_eq!(q.free_descriptors(), 3);
        let c = dev.take().unwrap();
        assert!(c.indirect);
        assert_eq!(c.id, t);
        let got: Vec<_> = c
            .elems
            .iter()
            .map(|x| (x.addr, x.len, x.writable))
            .collect();
        let want: Vec<_> = chain
            .iter()
            .map(|b| (b.addr, b.len, b.device_writable))
            .collect();
        assert_eq!(got, want);
        device_fill(&mem, &c, 25);
        dev.complete(&c, 25);
        assert_eq!(q.pop_used(), Ok(Some(Used { token: t, len: 25 })));

        let five: Vec<Buffer> = (0..5).map(|_| buf(&mem, 1, false)).collect();
        assert_eq!(
            q.add_indirect(&five, table(&mem, 5)),
            Err(QueueError::IndirectTooLong {
                descriptors: 5,
                size: 4
            })
        );
        assert_eq!(
            q.add_indirect(&chain, table(&mem, 3)),
            Err(QueueError::IndirectTableTooSmall {
                needed: 64,
                len: 48
            })
        );
        let a = mem.alloc(80, 16, 0) + 8;
        // SAFETY: inside a block of the test memory, used by nothing else.
        let odd = unsafe { RingMemory::new(a, 64) };
        assert_eq!(
            q.add_indirect(&chain, odd),
            Err(QueueError::Misaligned {
                what: "indirect table",
                addr: a,
                align: 16
            })
        );
        assert_eq!(
            q.add_indirect(&[], table(&mem, 1)),
            Err(QueueError::EmptyChain)
        );
        // One descriptor per table: four tables fill a queue of four.
        for _ in 0..4 {
            q.add_indirect(&chain[..1], table(&mem, 1)).unwrap();
        }
        assert_eq!(
            q.add_indirect(&chain[..1], table(&mem, 1)),
            Err(QueueError::QueueFull { needed: 1, free: 0 })
        );
        assert_eq!(q.in_flight(), 4);
    }
}

#[test]
fn avail_notifications_without_event_idx() {
    let mem = TestMem::default();
    let mut q = queue(&mem, 4, Endian::Big, true, false);
    let dev = SplitDevice::new(&mem, &q, Endian::Big, true, false);
    let b = [buf(&mem, 1, false)];
    // Nothing added: nothing to tell.
    assert!(!q.should_notify());
    q.add(&b).unwrap();
    assert!(q.should_notify());
    // Consumed by the previous answer.
    assert!(!q.should_notify());
    dev.set_used_flags(1);
    q.add(&b).unwrap();
    assert!(!q.should_notify());
    dev.set_used_flags(0);
    q.add(&b).unwrap();
    assert!(q.should_notify());
    // avail_event is ignored without EVENT_IDX.
    dev.set_avail_event(100);
    q.add(&b).unwrap();
    assert!(q.should_notify());
}

#[test]
fn avail_notifications_with_event_idx() {
    for e in ENDIANS {
        let mem = TestMem::default();
        let mut q = queue(&mem, 8, e, false, true);
        let mut dev = SplitDevice::new(&mem, &q, e, false, true);
        let b = [buf(&mem, 1, false)];
        // avail_event 0: notify once entry 0 is published, not after.
        q.add(&b).unwrap();
        assert!(q.should_notify());
        q.add(&b).unwrap();
        assert!(!q.should_notify());
        // The flag is ignored with EVENT_IDX.
        dev.set_used_flags(1);
        dev.set_avail_event(3);
        q.add(&b).unwrap(); // entry 2
        assert!(!q.should_notify());
        q.add(&b).unwrap(); // entry 3
        assert!(q.should_notify());
        // A batch that steps over the event index still notifies.
        dev.set_avail_event(5);
        q.add(&b).unwrap(); // 4
        q.add(&b).unwrap(); // 5
        q.add(&b).unwrap(); // 6
        assert!(q.should_notify());
        // An event index already behind: no notification.
        dev.set_avail_event(2);
        for c in std::iter::from_fn(|| dev.take()).collect::<Vec<_>>() {
            dev.complete(&c, 0);
        }
        while q.pop_used().unwrap().is_some() {}
        q.add(&b).unwrap(); // 7
        assert!(!q.should_notify());
    }
}

#[test]
fn event_idx_across_the_wrap() {
    let mem = TestMem::default();
    let l = split_layout(8, None).unwrap();
    let ring = mem.ring(l.total, 16);
    let mut q = SplitQueue::new_at(ring, 8, Endian::Little, false, true, 65534).unwrap();
    let dev = SplitDevice::new(&mem, &q, Endian::Little, false, true);
    let b = [buf(&mem, 1, false)];
    dev.set_avail_event(0);
    q.add(&b).unwrap(); // 65534
    assert!(!q.should_notify());
    q.add(&b).unwrap(); // 65535
    q.add(&b).unwrap(); // 0
    assert!(q.should_notify());
    q.add(&b).unwrap(); // 1
    assert!(!q.should_notify());
}

#[test]
fn used_notifications() {
    for event_idx in [false, true] {
        let mem = TestMem::default();
        let mut q = queue(&mem, 8, Endian::Little, false, event_idx);
        let mut dev = SplitDevice::new(&mem, &q, Endian::Little, false, event_idx);
        let b = [buf(&mem, 4, true)];
        for _ in 0..3 {
            q.add(&b).unwrap();
        }
        let cs: Vec<_> = std::iter::from_fn(|| dev.take()).collect();
        // Three completions before the driver looks.
        for c in &cs {
            dev.complete(c, 1);
        }
        // Without EVENT_IDX every completion interrupts; with it, only the
        // first (used_event = 0) until the driver catches up.
        assert_eq!(dev.interrupts(), if event_idx { 1 } else { 3 });
        while q.pop_used().unwrap().is_some() {}
        if event_idx {
            assert_eq!(dev.used_event(), 3);
        }
        q.enable_interrupts(false);
        assert_eq!(dev.avail_flags(), if event_idx { 0 } else { 1 });
        for _ in 0..3 {
            q.add(&b).unwrap();
        }
        let cs: Vec<_> = std::iter::from_fn(|| dev.take()).collect();
        for c in &cs {
            dev.complete(c, 1);
        }
        assert_eq!(dev.interrupts(), if event_idx { 1 } else { 3 });
        // Popping with interrupts off leaves the suppression alone.
        assert!(q.pop_used().unwrap().is_some());
        q.enable_interrupts(true);
        assert_eq!(dev.avail_flags(), 0);
        if event_idx {
            assert_eq!(dev.used_event(), 4);
        }
        while q.pop_used().unwrap().is_some() {}
        q.add(&b).unwrap();
        let c = dev.take().unwrap();
        dev.complete(&c, 1);
        assert_eq!(dev.interrupts(), if event_idx { 2 } else { 4 });

        // Switching EVENT_IDX on later rewrites flags and used_event.
        q.set_event_idx(!event_idx);
        dev.event_idx = !event_idx;
        assert_eq!(dev.avail_flags(), 0);
    }
}

/// A queue with chains in flight: [2 readable + 1 writable of 16] as
/// token 0 and [1 writable of 8] as token 3, both taken by the device.
fn hostile_setup(mem: &TestMem, e: Endian) -> (SplitQueue, SplitDevice<'_>) {
    let mut q = queue(mem, 8, e, e == Endian::Big, false);
    let mut dev = SplitDevice::new(mem, &q, e, e == Endian::Big, false);
    let a = [buf(mem, 4, false), buf(mem, 4, false), buf(mem, 16, true)];
    assert_eq!(q.add(&a), Ok(0));
    assert_eq!(q.add(&[buf(mem, 8, true)]), Ok(3));
    dev.take().unwrap();
    dev.take().unwrap();
    (q, dev)
}

#[test]
fn hostile_device() {
    for e in ENDIANS {
        let mem = TestMem::default();

        // An id past the table.
        let (mut q, mut dev) = hostile_setup(&mem, e);
        dev.push_raw(8, 0);
        assert_eq!(q.pop_used(), Err(QueueError::UnknownId { id: 8, size: 8 }));
        // Nothing was consumed: the same answer again.
        assert_eq!(q.pop_used(), Err(QueueError::UnknownId { id: 8, size: 8 }));
        let (mut q, mut dev) = hostile_setup(&mem, e);
        dev.push_raw(0xffff_ffff, 0);
        assert!(matches!(
            q.pop_used(),
            Err(QueueError::UnknownId {
                id: 0xffff_ffff,
                ..
            })
        ));

        // The middle of a chain, a descriptor never used, a returned one.
        for id in [1u16, 2, 7] {
            let (mut q, mut dev) = hostile_setup(&mem, e);
            dev.push_raw(u32::from(id), 0);
            assert_eq!(q.pop_used(), Err(QueueError::NotInFlight { id }));
            assert_eq!(q.in_flight(), 2);
        }
        let (mut q, mut dev) = hostile_setup(&mem, e);
        dev.push_raw(3, 8);
        assert_eq!(q.pop_used(), Ok(Some(Used { token: 3, len: 8 })));
        dev.push_raw(3, 8);
        assert_eq!(q.pop_used(), Err(QueueError::NotInFlight { id: 3 }));

        // A length past the writable bytes: reported, but the chain is
        // released and the queue carries on.
        let (mut q, mut dev) = hostile_setup(&mem, e);
        dev.push_raw(0, 17);
        assert_eq!(
            q.pop_used(),
            Err(QueueError::UsedLenTooLong {
                id: 0,
                len: 17,
                writable: 16
            })
        );
        assert_eq!((q.in_flight(), q.free_descriptors()), (1, 7));
        dev.push_raw(3, 8);
        assert_eq!(q.pop_used(), Ok(Some(Used { token: 3, len: 8 })));
        // Reading-only chains may not report written bytes at all.
        let t = q.add(&[buf(&mem, 4, false)]).unwrap();
        dev.take().unwrap();
        dev.push_raw(u32::from(t), 1);
        assert!(matches!(
            q.pop_used(),
            Err(QueueError::UsedLenTooLong { writable: 0, .. })
        ));

        // A used index running ahead of what is in flight.
        let (mut q, mut dev) = hostile_setup(&mem, e);
        dev.set_used_idx(3);
        assert_eq!(
            q.pop_used(),
            Err(QueueError::UsedIndexAhead {
                used_idx: 3,
                last_used: 0,
                in_flight: 2
            })
        );
        dev.set_used_idx(0xffff);
        assert!(matches!(
            q.pop_used(),
            Err(QueueError::UsedIndexAhead {
                used_idx: 0xffff,
                ..
            })
        ));
        // Nothing in flight at all.
        let mut q2 = queue(&mem, 2, e, false, false);
        let mut dev2 = SplitDevice::new(&mem, &q2, e, false, false);
        dev2.push_raw(0, 0);
        assert_eq!(
            q2.pop_used(),
            Err(QueueError::UsedIndexAhead {
                used_idx: 1,
                last_used: 0,
                in_flight: 0
            })
        );

        // A device that scribbles over the descriptor table cannot confuse
        // the free list: it lives in the driver's own memory.
        let (mut q, mut dev) = hostile_setup(&mem, e);
        dev.scribble_descs();
        dev.push_raw(0, 16);
        dev.push_raw(3, 0);
        assert_eq!(q.pop_used(), Ok(Some(Used { token: 0, len: 16 })));
        assert_eq!(q.pop_used(), Ok(Some(Used { token: 3, len: 0 })));
        assert_eq!(q.free_descriptors(), 8);
        let b = buf(&mem, 2, true);
        for _ in 0..8 {
            q.add(&[b]).unwrap();
        }
        let mut ids: Vec<u16> = std::iter::from_fn(|| dev.take()).map(|c| c.id).collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..8).collect::<Vec<_>>());
        mem.check_guards();
    }
}

/// VIRTIO_F_IN_ORDER: descriptors are taken in ring order across many
/// laps, and one used entry naming the last of a batch hands back every
/// chain of the batch, oldest first, the last with its length.
#[test]
fn in_order_batches_and_ring_order() {
    let mem = TestMem::default();
    let mut q = queue(&mem, 8, Endian::Little, false, false);
    q.set_in_order(true);
    let mut dev = SplitDevice::new(&mem, &q, Endian::Little, false, false);
    let mut expect_desc = 0u16;
    let mut rng = XorShift(7);
    for _ in 0..200 {
        // Chains of 1 to 3 descriptors while they fit.
        let mut tokens = Vec::new();
        loop {
            let n = 1 + rng.below(3) as usize;
            if n > usize::from(q.free_descriptors()) {
                break;
            }
            let chain: Vec<Buffer> = (0..n).map(|i| buf(&mem, 16, i + 1 == n)).collect();
            let t = q.add(&chain).unwrap();
            // Ring order: each chain starts where the last one ended.
            assert_eq!(t, expect_desc, "head in ring order");
            expect_desc = (expect_desc + n as u16) % 8;
            tokens.push(t);
        }
        let taken: Vec<_> = std::iter::from_fn(|| dev.take()).collect();
        assert_eq!(taken.len(), tokens.len());
        // The descriptors link in ring order too, wrapping at the table's end.
        for c in &taken {
            assert_eq!(
                c.id,
                tokens[taken.iter().position(|x| x.id == c.id).unwrap()]
            );
        }
        // One used entry for a batch of k, then the rest one by one.
        let k = 1 + rng.below(tokens.len() as u64) as usize;
        let start = q.last_used_for_tests();
        dev.push_raw(u32::from(tokens[k - 1]), 9);
        dev.set_used_idx(start.wrapping_add(k as u16));
        for (i, &t) in tokens[..k].iter().enumerate() {
            let u = q.pop_used().unwrap().unwrap();
            assert_eq!(u.token, t);
            if i + 1 == k {
                assert_eq!(u.len, 9);
            }
        }
        assert_eq!(q.pop_used().unwrap(), None);
        for &t in &tokens[k..] {
            dev.push_raw(u32::from(t), 1);
            assert_eq!(q.pop_used().unwrap().unwrap().token, t);
        }
        assert_eq!((q.in_flight(), q.free_descriptors()), (0, 8));
    }
    // A used entry naming a chain in flight whose batch the index does not
    // cover is refused.
    let a = q.add(&[buf(&mem, 8, true)]).unwrap();
    let b = q.add(&[buf(&mem, 8, true)]).unwrap();
    let _ = (dev.take(), dev.take());
    dev.push_raw(u32::from(b), 1);
    assert_eq!(q.pop_used(), Err(QueueError::NotInFlight { id: b }));
    let _ = a;
}

/// The test-only looped chain: one descriptor, NEXT set, next itself,
/// published like any chain (in flight, a descriptor taken); none once
/// the ring is full.
#[test]
fn a_looped_chain_points_at_itself() {
    let mem = TestMem::default();
    let mut q = queue(&mem, 2, Endian::Big, false, false);
    let w = buf(&mem, 0x10, true);
    q.add(&[buf(&mem, 4, false)]).unwrap();
    let t = q.add_looped(w).unwrap();
    assert_eq!(t, 1);
    let d = mem.read(q.desc_area() + 16, 16);
    let want: Vec<u8> = [
        &w.addr.to_be_bytes()[..],
        &0x10u32.to_be_bytes(),
        &[0, 3, 0, 1],
    ]
    .concat();
    assert_eq!(d, want, "NEXT|WRITE, next = 1");
    assert_eq!(mem.read(q.driver_area() + 2, 2), [0, 2]);
    assert_eq!((q.in_flight(), q.free_descriptors()), (2, 0));
    assert_eq!(q.add_looped(w), None);
}
