//! The stress engine's pure parts (crate::stress) over both ring formats
//! and the device models: requests shaped by the seeded generator, kept at
//! a fixed depth, completed by the device in random order, each checked
//! against the book of requests in flight, across index wraps.

use super::mem::TestMem;
use super::model::{Device, PackedDevice, SplitDevice};
use super::*;
use crate::stress::{shape, Book, Rng, ShapeLimits};

struct Req {
    n: u64,
    blocks: Vec<u64>,
    writable: u64,
}

/// `requests` requests at `depth` on `q`; returns the book's stats.
fn drive<Q: Virtqueue, D: Device>(
    mem: &TestMem,
    q: &mut Q,
    dev: &mut D,
    depth: u16,
    requests: u64,
    seed: u64,
) -> crate::stress::QueueStats {
    let mut book: Book<Req> = Book::new(q.size());
    let mut order = Rng::new(seed ^ 1);
    let mut taken = Vec::new();
    let mut n = 0;
    let limits = ShapeLimits {
        max_elements: usize::from(q.size()).min(6),
        max_len: None,
        max_gap: 32,
    };
    while n < requests || book.in_flight() > 0 {
        while n < requests && book.in_flight() < depth {
            let mut rng = Rng::for_request(seed, 7, n);
            let (r, w) = (rng.range(1, 64) as u32, rng.range(1, 64) as u32);
            let pieces = shape(&mut rng, r, w, &[], &limits).unwrap();
            if usize::from(q.free_descriptors()) < pieces.len() {
                break;
            }
            let mut blocks = Vec::new();
            let chain: Vec<Buffer> = pieces
                .iter()
                .map(|p| {
                    let addr = mem.alloc(p.len as usize, 1 + p.gap as usize % 8, 0);
                    blocks.push(addr);
                    Buffer {
                        addr,
                        len: p.len,
                        device_writable: p.writable,
                    }
                })
                .collect();
            let token = q.add(&chain).unwrap();
            book.start(
                token,
                Req {
                    n,
                    blocks,
                    writable: u64::from(w),
                },
            )
            .unwrap();
            n += 1;
        }
        if q.should_notify() {
            book.stats.kicks += 1;
        }
        while let Some(c) = dev.take() {
            taken.push(c);
        }
        // The device answers in any order, some of what it holds.
        for _ in 0..=order.below(taken.len() as u64 + 1) {
            if taken.is_empty() {
                break;
            }
            let c = taken.swap_remove(order.below(taken.len() as u64) as usize);
            let len = order.below(c.writable() + 1) as u32;
            device_fill(mem, &c, len);
            dev.complete(&c, len);
        }
        while let Some(u) = q.pop_used().unwrap() {
            let req = book.finish(u.token).unwrap();
            assert!(u64::from(u.len) <= req.writable, "request {}", req.n);
            book.stats.bytes += u64::from(u.len);
            for b in req.blocks {
                mem.free(b);
            }
        }
    }
    mem.check_guards();
    book.stats
}

#[test]
fn fixed_depth_across_index_wraps_split_and_packed() {
    for depth in [1u16, 7, 32] {
        let mem = TestMem::default();
        let l = split_layout(32, None).unwrap();
        let mut q = SplitQueue::new_at(
            mem.ring(l.total, 16),
            32,
            Endian::Little,
            false,
            true,
            65000,
        )
        .unwrap();
        let mut dev = SplitDevice::new(&mem, &q, Endian::Little, false, true);
        dev.start_at(65000);
        let s = drive(&mem, &mut q, &mut dev, depth, 2000, u64::from(depth));
        assert_eq!((s.requests, s.completed), (2000, 2000));
        // Chains of up to 6 descriptors: 32 descriptors hold at least 5.
        assert!(
            s.max_depth <= depth && s.max_depth >= depth.min(5),
            "split at depth {depth}"
        );

        let mem = TestMem::default();
        let l = packed_layout(24).unwrap();
        let mut q = PackedQueue::new(mem.ring(l.total, 16), 24, false).unwrap();
        let mut dev = PackedDevice::new(&mem, &q, false);
        let s = drive(
            &mem,
            &mut q,
            &mut dev,
            depth.min(24),
            2000,
            u64::from(depth),
        );
        assert_eq!(s.completed, 2000);
        assert!(s.max_depth <= depth.min(24) && s.max_depth > 0);
        assert!(s.kicks > 0);
    }
}
