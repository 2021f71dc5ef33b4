//! Random operation sequences against an honest device: random chains
//! (direct and indirect), the device taking and completing them in random
//! order and writing random amounts of data, the driver popping whenever.
//! Every token must come back exactly once with the length and the data
//! the device wrote, the driver's counts must match the model's, and
//! should_notify must agree with a brute-force reading of the spec.

use std::collections::HashMap;

use super::mem::TestMem;
use super::model::{Chain, Device, PackedDevice, SplitDevice};
use super::*;

const FILL: u8 = 0xee;

/// A request the driver has in flight, with everything needed to check
/// what comes back.
struct Req {
    chain: Vec<Buffer>,
    readable: Vec<u8>,
    /// Descriptors it holds in the ring (1 for an indirect table).
    cost: u16,
    indirect: bool,
    blocks: Vec<u64>,
}

struct Harness<'m, Q, D> {
    mem: &'m TestMem,
    q: Q,
    dev: D,
    rng: XorShift,
    packed: bool,
    indirect: bool,
    outstanding: HashMap<u16, Req>,
    /// Taken by the device, not yet completed.
    taken: Vec<Chain>,
    /// Completed by the device, not yet popped: token → length.
    completed: HashMap<u16, u32>,
    free: u16,
    /// Notification units (split: chains, packed: slots) published, from
    /// the queue's first index on, and where the last should_notify was.
    published: u64,
    checked: u64,
    returned: u64,
}

impl<'m, Q: Virtqueue, D: Device> Harness<'m, Q, D> {
    fn new(mem: &'m TestMem, q: Q, dev: D, seed: u64, packed: bool, start: u64) -> Self {
        let free = q.size();
        Harness {
            mem,
            q,
            dev,
            rng: XorShift(seed | 1),
            packed,
            indirect: true,
            outstanding: HashMap::new(),
            taken: Vec::new(),
            completed: HashMap::new(),
            free,
            published: start,
            checked: start,
            returned: 0,
        }
    }

    fn add(&mut self) {
        let (nr, nw) = (self.rng.below(4), self.rng.below(4));
        let nr = if nr + nw == 0 { 1 } else { nr };
        let (mut chain, mut readable, mut blocks) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..nr + nw {
            let len = match self.rng.below(8) {
                0 => 0,
                1 => 1 + self.rng.below(600) as u32,
                _ => 1 + self.rng.below(40) as u32,
            };
            let writable = i >= nr;
            let addr = self.mem.alloc(len as usize, 1 << self.rng.below(4), FILL);
            if !writable {
                let data: Vec<u8> = (0..len).map(|_| self.rng.next() as u8).collect();
                self.mem.write(addr, &data);
                readable.extend(data);
            }
            blocks.push(addr);
            chain.push(Buffer {
                addr,
                len,
                device_writable: writable,
            });
        }
        let k = chain.len();
        let indirect = self.indirect && self.rng.below(3) == 0;
        let (result, cost) = if indirect {
            let t = table(self.mem, k);
            blocks.push(t.addr());
            (self.q.add_indirect(&chain, t), 1)
        } else {
            (self.q.add(&chain), k as u16)
        };
        match result {
            Ok(token) => {
                assert!(cost <= self.free, "added past the free count");
                self.free -= cost;
                self.published += if self.packed { u64::from(cost) } else { 1 };
                let req = Req {
                    chain,
                    readable,
                    cost,
                    indirect,
                    blocks,
                };
                assert!(
                    self.outstanding.insert(token, req).is_none(),
                    "token {token} handed out twice"
                );
            }
            Err(e) => {
                match e {
                    QueueError::QueueFull { needed, free } => {
                        assert_eq!((needed, free), (usize::from(cost), self.free));
                        assert!(cost > self.free);
                    }
                    QueueError::IndirectTooLong { descriptors, size } => {
                        assert!(indirect && descriptors == k && k > usize::from(size));
                    }
                    e => panic!("unexpected {e:?}"),
                }
                for b in blocks {
                    self.mem.free(b);
                }
            }
        }
    }

    fn take(&mut self) {
        for _ in 0..1 + self.rng.below(4) {
            let Some(c) = self.dev.take() else { break };
            let req = self
                .outstanding
                .get(&c.id)
                .unwrap_or_else(|| panic!("device found id {} not handed out", c.id));
            let got: Vec<_> = c
                .elems
                .iter()
                .map(|e| (e.addr, e.len, e.writable))
                .collect();
            let want: Vec<_> = req
                .chain
                .iter()
                .map(|b| (b.addr, b.len, b.device_writable))
                .collect();
            assert_eq!(got, want, "chain {} as the device sees it", c.id);
            assert_eq!(c.indirect, req.indirect);
            self.taken.push(c);
        }
    }

    fn complete(&mut self) {
        if self.taken.is_empty() {
            return;
        }
        let c = self
            .taken
            .swap_remove(self.rng.below(self.taken.len() as u64) as usize);
        let w = c.writable();
        let len = match self.rng.below(3) {
            0 => w,
            _ => self.rng.below(w + 1),
        } as u32;
        device_fill(self.mem, &c, len);
        self.dev.complete(&c, len);
        assert!(self.completed.insert(c.id, len).is_none());
    }

    fn pop_all(&mut self) {
        while let Some(u) = self.q.pop_used().expect("honest device") {
            let req = self
                .outstanding
                .remove(&u.token)
                .unwrap_or_else(|| panic!("token {} unknown or returned twice", u.token));
            let len = self
                .completed
                .remove(&u.token)
                .unwrap_or_else(|| panic!("token {} popped before completion", u.token));
            assert_eq!(u.len, len, "length of token {}", u.token);
            let mut i = 0usize;
            for b in req.chain.iter().filter(|b| b.device_writable) {
                for (j, byte) in self.mem.read(b.addr, b.len as usize).iter().enumerate() {
                    let want = if i + j < len as usize {
                        output_byte(&req.readable, i + j)
                    } else {
                        FILL
                    };
                    assert_eq!(*byte, want, "token {} byte {}", u.token, i + j);
                }
                i += b.len as usize;
            }
            for b in req.blocks {
                self.mem.free(b);
            }
            self.free += req.cost;
            self.returned += 1;
        }
        assert!(self.completed.is_empty(), "completed but never popped");
    }

    fn misc(&mut self) {
        match self.rng.below(4) {
            0 => {
                let want = self.dev.notify_expected(self.checked, self.published);
                assert_eq!(
                    self.q.should_notify(),
                    want,
                    "should_notify for {}..{}",
                    self.checked,
                    self.published
                );
                self.checked = self.published;
            }
            1 => {
                let n = u64::from(self.q.size());
                let at = (self.published + self.rng.below(2 * n + 4)).saturating_sub(2);
                let mode = self.rng.next();
                self.dev.suppress(mode, at);
            }
            2 => self.q.enable_interrupts(self.rng.below(3) != 0),
            _ => {
                let want = if self.packed {
                    let n = u64::from(self.q.size());
                    let wrap = if (self.published / n).is_multiple_of(2) {
                        0x8000
                    } else {
                        0
                    };
                    (self.published % n) as u16 | wrap
                } else {
                    self.published as u16
                };
                assert_eq!(self.q.next_avail_index(), want);
            }
        }
    }

    fn run(&mut self, steps: usize) {
        for _ in 0..steps {
            match self.rng.below(10) {
                0..=3 => self.add(),
                4 | 5 => self.take(),
                6 | 7 => self.complete(),
                8 => self.pop_all(),
                _ => self.misc(),
            }
            assert_eq!(self.q.free_descriptors(), self.free);
            assert_eq!(usize::from(self.q.in_flight()), self.outstanding.len());
        }
        // Drain: everything comes back exactly once.
        while let Some(c) = self.dev.take() {
            self.taken.push(c);
        }
        while !self.taken.is_empty() {
            self.complete();
        }
        self.pop_all();
        assert!(self.outstanding.is_empty());
        assert_eq!(
            (self.q.in_flight(), self.q.free_descriptors()),
            (0, self.q.size())
        );
        self.mem.check_guards();
    }
}

#[test]
fn random_split() {
    let mut seeds = XorShift(0x5a76_7465_7374_0002);
    let mut returned = 0;
    for e in [Endian::Big, Endian::Little] {
        for legacy in [false, true] {
            for event_idx in [false, true] {
                for size in [1u16, 2, 4, 8, 16, 64, 256] {
                    for near_wrap in [false, true] {
                        let mem = TestMem::default();
                        let l = split_layout(size, legacy.then_some(LEGACY_ALIGN)).unwrap();
                        let ring = mem.ring(l.total, l.align as usize);
                        let start = if near_wrap {
                            65535 - seeds.below(40) as u16
                        } else {
                            0
                        };
                        let q =
                            SplitQueue::new_at(ring, size, e, legacy, event_idx, start).unwrap();
                        let mut dev = SplitDevice::new(&mem, &q, e, legacy, event_idx);
                        dev.start_at(start);
                        let mut h =
                            Harness::new(&mem, q, dev, seeds.next(), false, u64::from(start));
                        h.run(1500);
                        returned += h.returned;
                    }
                }
            }
        }
    }
    assert!(returned > 20_000, "only {returned} round trips");
}

#[test]
fn random_packed() {
    let mut seeds = XorShift(0x5a76_7465_7374_0003);
    let mut returned = 0;
    for event_idx in [false, true] {
        for size in [1u16, 2, 3, 4, 5, 7, 8, 16, 100, 256] {
            for round in 0..3 {
                let mem = TestMem::default();
                let l = packed_layout(size).unwrap();
                let q = PackedQueue::new(mem.ring(l.total, 16), size, event_idx).unwrap();
                let dev = PackedDevice::new(&mem, &q, event_idx);
                let mut h = Harness::new(&mem, q, dev, seeds.next(), true, 0);
                // One round of direct chains only: more laps per step.
                h.indirect = round != 0;
                h.run(1500);
                returned += h.returned;
            }
        }
    }
    assert!(returned > 10_000, "only {returned} round trips");
}
