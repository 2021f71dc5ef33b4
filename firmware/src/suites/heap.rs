//! The heap under random allocation patterns, and its limits.

use crate::check::Outcome;
use crate::fmt::Hex;
use crate::format;
use crate::machine::Machine;
use crate::memory::heap_stats;
use alloc::alloc::{alloc, dealloc, Layout};
use alloc::vec::Vec;

/// xorshift64*: small, seedable, good enough to vary sizes and order.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Block {
    ptr: *mut u8,
    layout: Layout,
    tag: u64,
}

fn pattern(tag: u64, i: usize) -> u8 {
    (tag.wrapping_mul(31).wrapping_add(i as u64 * 7) >> 3) as u8
}

/// Frees `b` after checking every byte still holds its pattern.
fn verify_and_free(b: Block) -> Result<(), Outcome> {
    // SAFETY: `b.ptr` is a live allocation of `b.layout.size()` bytes.
    let bytes = unsafe { core::slice::from_raw_parts(b.ptr, b.layout.size()) };
    let bad = bytes
        .iter()
        .enumerate()
        .find(|&(i, &v)| v != pattern(b.tag, i));
    // SAFETY: allocated below with this layout, freed once.
    unsafe { dealloc(b.ptr, b.layout) };
    match bad {
        None => Ok(()),
        Some((i, &v)) => Err(Outcome::mismatch(
            &format!(
                "block {} at {} corrupted at offset {}",
                b.tag,
                Hex(b.ptr as u64),
                i
            ),
            pattern(b.tag, i),
            v,
        )),
    }
}

const LIVE_MAX: usize = 256;

pub fn stress(m: &mut Machine) -> Outcome {
    let baseline = heap_stats().used;
    let mut rng = Rng::new(m.cfg.seed);
    let mut live: Vec<Block> = Vec::with_capacity(LIVE_MAX);
    let rounds = 3000 * u64::from(m.cfg.stress);
    for tag in 0..rounds {
        if live.len() == LIVE_MAX || (!live.is_empty() && rng.below(3) == 0) {
            let b = live.swap_remove(rng.below(live.len() as u64) as usize);
            if let Err(o) = verify_and_free(b) {
                return o;
            }
            continue;
        }
        // Mostly small blocks, one in eight up to 64 KiB.
        let limit = if rng.below(8) == 0 { 64 << 10 } else { 512 };
        let size = 1 + rng.below(limit) as usize;
        let align = 1usize << rng.below(13);
        let Ok(layout) = Layout::from_size_align(size, align) else {
            return Outcome::fail("invalid layout");
        };
        // SAFETY: non-zero size.
        let ptr = unsafe { alloc(layout) };
        if ptr.is_null() {
            return Outcome::mismatch(
                &format!("allocation of {} bytes (align {}) failed", size, align),
                "a block",
                "null",
            );
        }
        if !(ptr as usize).is_multiple_of(align) {
            return Outcome::mismatch("block alignment", align, Hex(ptr as u64));
        }
        // SAFETY: freshly allocated, `size` bytes.
        let bytes = unsafe { core::slice::from_raw_parts_mut(ptr, size) };
        for (i, v) in bytes.iter_mut().enumerate() {
            *v = pattern(tag, i);
        }
        live.push(Block { ptr, layout, tag });
    }
    for b in live.drain(..) {
        if let Err(o) = verify_and_free(b) {
            return o;
        }
    }
    drop(live);
    Outcome::expect_eq(
        "heap bytes in use after freeing everything",
        baseline,
        heap_stats().used,
    )
}

/// Blocks the heap is exhausted with: large enough to be quick, small
/// enough that the last refusal leaves little unused.
const EXHAUST_BLOCK: usize = 64 << 10;

/// Exhausts the heap for real, then recovers: every block freed, the same
/// bytes in use as before, and a large allocation granted again.
pub fn exhaustion(_: &mut Machine) -> Outcome {
    let before = heap_stats();
    let mut blocks: Vec<u64> = Vec::new();
    if blocks
        .try_reserve_exact(before.free as usize / EXHAUST_BLOCK + 2)
        .is_err()
    {
        return Outcome::fail("no room for the list of blocks");
    }
    let free = heap_stats().free;
    let Ok(layout) = Layout::from_size_align(EXHAUST_BLOCK, 8) else {
        return Outcome::fail("invalid layout");
    };
    let r = crate::judge::exhaust(
        free,
        EXHAUST_BLOCK as u64,
        &mut blocks,
        // SAFETY: non-zero size; null (refused) becomes None.
        || Some(unsafe { alloc(layout) } as u64).filter(|&p| p != 0),
        // SAFETY: each address came from `alloc` with this layout, once.
        |p| unsafe { dealloc(p as *mut u8, layout) },
    );
    // The refusal was ours to provoke: a later panic must not blame it.
    crate::memory::EXHAUSTED_AT.store(0, core::sync::atomic::Ordering::SeqCst);
    drop(blocks);
    let got = match r {
        Ok(got) => got,
        Err(o) => return o,
    };
    crate::out!(
        "# heap.exhaustion: {} blocks of {} bytes ({} of {} free bytes) before the first refusal\n",
        got.blocks,
        EXHAUST_BLOCK,
        got.obtained,
        free
    );
    let after = heap_stats();
    if after.used != before.used {
        return Outcome::mismatch(
            "heap bytes in use after freeing every block",
            before.used,
            after.used,
        );
    }
    let mut v: Vec<u8> = Vec::new();
    let half = before.free as usize / 2;
    Outcome::expect_eq(
        &format!(
            "reserving half of the free heap ({} bytes) afterwards",
            half
        ),
        "granted",
        if v.try_reserve_exact(half).is_ok() {
            "granted"
        } else {
            "refused"
        },
    )
}
