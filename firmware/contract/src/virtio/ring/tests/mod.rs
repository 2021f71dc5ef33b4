//! Host tests of both ring formats against device models that share
//! nothing with the driver code but the memory.

mod mem;
mod model;
mod packed;
mod random;
mod split;
mod stress;

use super::*;
use mem::TestMem;
use model::Chain;

pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Byte `i` of what the device writes for a chain whose readable bytes
/// are `read`: depends on both, so misplaced or stale data shows.
pub fn output_byte(read: &[u8], i: usize) -> u8 {
    let r = if read.is_empty() {
        0x5a
    } else {
        read[i % read.len()]
    };
    r.wrapping_mul(31).wrapping_add(i as u8)
}

/// The device's work on a chain: read every readable byte, write `len`
/// bytes of output from the first writable element on.
pub fn device_fill(mem: &TestMem, chain: &Chain, len: u32) {
    let mut read = Vec::new();
    for e in chain.elems.iter().filter(|e| !e.writable) {
        read.extend(mem.read(e.addr, e.len as usize));
    }
    let mut i = 0usize;
    for e in chain.elems.iter().filter(|e| e.writable) {
        let n = (len as usize - i).min(e.len as usize);
        let out: Vec<u8> = (i..i + n).map(|k| output_byte(&read, k)).collect();
        mem.write(e.addr, &out);
        i += n;
    }
    assert_eq!(i, len as usize, "len past the writable bytes");
}

/// Indirect table memory for `n` descriptors.
pub fn table(mem: &TestMem, n: usize) -> RingMemory {
    mem.ring(16 * n, 16)
}

pub fn rd(addr: u64, len: u32) -> Buffer {
    Buffer {
        addr,
        len,
        device_writable: false,
    }
}

pub fn wr(addr: u64, len: u32) -> Buffer {
    Buffer {
        addr,
        len,
        device_writable: true,
    }
}

#[test]
fn chain_rules() {
    assert_eq!(check_chain(&[]), Err(QueueError::EmptyChain));
    assert_eq!(
        check_chain(&[rd(0x1000, 4), wr(0x2000, 8), rd(0x3000, 1)]),
        Err(QueueError::ReadableAfterWritable { index: 2 })
    );
    assert_eq!(
        check_chain(&[rd(0x1000, 4), wr(0x2000, 8), wr(0x3000, 1)]),
        Ok(9)
    );
    assert_eq!(
        check_chain(&[rd(u64::MAX - 2, 4)]),
        Err(QueueError::BufferWraps {
            index: 0,
            addr: u64::MAX - 2,
            len: 4
        })
    );
    // Ending exactly at the top of memory is fine; so is length 0 there.
    assert_eq!(check_chain(&[wr(u64::MAX - 3, 4), wr(u64::MAX, 0)]), Ok(4));
    // At most 2^32 bytes in total.
    assert_eq!(
        check_chain(&[rd(0x1000, u32::MAX), wr(0x1_0000_1000, 1)]),
        Ok(1)
    );
    assert_eq!(
        check_chain(&[rd(0x1000, u32::MAX), wr(0x1_0000_1000, 2)]),
        Err(QueueError::ChainTooLong {
            bytes: (1 << 32) + 1
        })
    );
}

#[test]
fn need_event_arithmetic() {
    // Published 0..1 with event 0: hit. 1..2: miss.
    assert!(passed_event(0, 1, 0));
    assert!(!passed_event(0, 2, 1));
    // Across the 16-bit wrap.
    assert!(passed_event(0xffff, 1, 0xfffe));
    assert!(passed_event(0, 1, 0xfffe));
    assert!(!passed_event(1, 1, 0xfffe));
    assert!(!passed_event(5, 5, 5));
}

#[test]
fn error_messages() {
    let msg = |e: QueueError| crate::format!("{}", e);
    assert_eq!(msg(QueueError::ZeroSize), "virtqueue: size 0");
    assert_eq!(
        msg(QueueError::SizeNotPowerOfTwo { size: 100 }),
        "virtqueue: size 100 is not a power of two (split rings need one)"
    );
    assert_eq!(
        msg(QueueError::SizeTooLarge { size: 40000 }),
        "virtqueue: size 40000 is above the maximum 32768"
    );
    assert_eq!(
        msg(QueueError::Misaligned {
            what: "ring memory",
            addr: 0x12345,
            align: 4096
        }),
        "virtqueue: ring memory at 0x12345 is not 4096-byte aligned"
    );
    assert_eq!(
        msg(QueueError::QueueFull { needed: 3, free: 2 }),
        "virtqueue: full: the chain needs 3 descriptors, 2 are free"
    );
    assert_eq!(
        msg(QueueError::UnknownId { id: 300, size: 256 }),
        "virtqueue: device returned id 300, but the queue has only 256 entries"
    );
    assert_eq!(
        msg(QueueError::NotInFlight { id: 7 }),
        "virtqueue: device returned id 7, which is not a chain in flight"
    );
    assert_eq!(
        msg(QueueError::UsedLenTooLong {
            id: 4,
            len: 513,
            writable: 512
        }),
        "virtqueue: device says it wrote 513 bytes to id 4, which has only 512 device-writable bytes"
    );
    assert_eq!(
        msg(QueueError::UsedIndexAhead {
            used_idx: 2,
            last_used: 65534,
            in_flight: 3
        }),
        "virtqueue: used index 2 is 4 past the last one seen (65534), but only 3 chains are in flight"
    );
    assert_eq!(
        msg(QueueError::BadUsedFlags {
            offset: 5,
            flags: 0x8000,
            wrap: true,
            in_flight: 2,
            id: 3,
        }),
        "virtqueue: packed descriptor 5 (id 3): flags: expected 0x8080 (used) or 0x80 (still available) with wrap counter 1, got 0x8000 (avail 0, used 1): neither available nor used in this lap (2 chains in flight)"
    );
    assert_eq!(
        msg(QueueError::BadUsedFlags {
            offset: 0,
            flags: 0x8080,
            wrap: false,
            in_flight: 0,
            id: 1,
        }),
        "virtqueue: packed descriptor 0 (id 1): flags: expected avail 1 (nothing in flight) with wrap counter 0, got 0x8080 (avail 1, used 1): a used or available descriptor where none can be"
    );
    assert_eq!(
        msg(QueueError::PackedUnknownId {
            offset: 7,
            flags: 0x8080,
            id: 128,
            size: 128
        }),
        "virtqueue: packed descriptor 7 (flags 0x8080): id: expected below the queue size 128, got 128"
    );
    assert_eq!(
        msg(QueueError::PackedNotInFlight {
            offset: 7,
            flags: 0,
            id: 9,
            in_flight: 3
        }),
        "virtqueue: packed descriptor 7 (flags 0x0): id: expected one of the 3 chains in flight, got 9, which is none of them"
    );
    assert_eq!(
        msg(QueueError::UsedSkippedAhead {
            expected: 26,
            found: 28,
            id: 2,
            flags: 0x8080
        }),
        "virtqueue: the device's used position skipped ahead: expected the next used descriptor at 26, which is still available, got one at 28 (id 2, flags 0x8080)"
    );
    // Every variant formats to something.
    for e in [
        QueueError::BadAlign { align: 3 },
        QueueError::MemoryTooSmall {
            needed: 38,
            len: 37,
        },
        QueueError::EmptyChain,
        QueueError::ReadableAfterWritable { index: 1 },
        QueueError::BufferWraps {
            index: 0,
            addr: u64::MAX,
            len: 2,
        },
        QueueError::ChainTooLong { bytes: 1 << 33 },
        QueueError::IndirectTooLong {
            descriptors: 9,
            size: 8,
        },
        QueueError::IndirectTableTooSmall {
            needed: 32,
            len: 16,
        },
    ] {
        assert!(msg(e).len() > "virtqueue: ".len() + 5, "{e:?}");
    }
}

/// Spaced layouts keep each part's alignment and `gap` free bytes before,
/// between and after the parts; a gap that would misalign is refused.
#[test]
fn spaced_layouts_leave_gaps_around_each_part() {
    let s = split_layout_spaced(16, 16).unwrap();
    assert_eq!(
        (s.desc, s.avail, s.used),
        (16, 16 + 256 + 32, 16 + 256 + 32 + 38 + 34)
    );
    assert_eq!(s.used % 4, 0);
    assert_eq!(s.total, s.used + 134 + 16);
    let p = packed_layout_spaced(16, 16).unwrap();
    assert_eq!(
        (p.desc, p.driver_event, p.device_event, p.total),
        (
            16,
            16 + 256 + 32,
            16 + 256 + 32 + 4 + 32,
            16 + 256 + 32 + 4 + 32 + 4 + 16
        )
    );
    assert_eq!(
        split_layout_spaced(16, 8),
        Err(QueueError::BadAlign { align: 8 })
    );
    assert_eq!(
        packed_layout_spaced(16, 4),
        Err(QueueError::BadAlign { align: 4 })
    );
}
