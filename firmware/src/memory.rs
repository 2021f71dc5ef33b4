//! Memory sizing and the heap.
//!
//! The heap covers free RAM between the image (`_end`, which includes the
//! stacks) and the area QEMU loads its s390-ccw BIOS into, 2-3 MiB under
//! min(RAM, 2 GiB); we stay 4 MiB clear. Everything stays below 2 GiB so
//! heap buffers are valid format-1 CCW data addresses.

use crate::arch::lock::CpuLock;
use crate::arch::symbols;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use linked_list_allocator::Heap;

pub const BIOS_RESERVE: u64 = 4 << 20;
const LOW_LIMIT: u64 = 2 << 30;

/// linked_list_allocator's heap behind the CPUs' shared lock, with
/// interrupts disabled while it is held: a check timeout can never cut
/// through the free list, and another CPU waits its turn.
pub struct LockedHeap {
    heap: UnsafeCell<Heap>,
    lock: CpuLock,
}

// SAFETY: the heap is only touched with `lock` held.
unsafe impl Sync for LockedHeap {}

#[global_allocator]
static HEAP: LockedHeap = LockedHeap {
    heap: UnsafeCell::new(Heap::empty()),
    lock: CpuLock::new(),
};

/// Size of the last request the heap could not satisfy (0 if none).
pub static EXHAUSTED_AT: AtomicU64 = AtomicU64::new(0);

/// What an interrupt that cut through this CPU's own allocation (a
/// restart, which is not maskable) allocates for its report instead.
static SPARE: crate::spare::Spare<{ 16 << 10 }> = crate::spare::Spare::new();

/// How long a CPU waits for another's allocation: far past any.
const LOCK_TIMEOUT_US: u64 = 5_000_000;

/// `inject=heap`: the lock is left out, to prove `smp.heap` catches CPUs
/// sharing the heap without it.
static BYPASS: AtomicBool = AtomicBool::new(false);

/// Leaves the heap's lock out (`inject=heap` only) or puts it back.
pub fn bypass_lock(on: bool) {
    BYPASS.store(on, Ordering::SeqCst);
}

impl LockedHeap {
    /// None when the heap cannot be had: this CPU is inside it already (a
    /// restart interrupt), or another CPU kept it for the whole timeout.
    fn with<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> Option<R> {
        if BYPASS.load(Ordering::Relaxed) {
            let m = crate::arch::irq_disable();
            // SAFETY: none: this is the fault inject=heap asks for, and
            // smp.heap is there to catch it.
            let r = f(unsafe { &mut *self.heap.get() });
            crate::arch::irq_restore(m);
            return Some(r);
        }
        let _held = self.lock.lock(LOCK_TIMEOUT_US).ok()?;
        // SAFETY: the lock is held, with this CPU's interrupts off.
        Some(f(unsafe { &mut *self.heap.get() }))
    }
}

// SAFETY: allocation is delegated to linked_list_allocator, serialised by
// the lock; re-entry takes the spare arena.
unsafe impl GlobalAlloc for LockedHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = match self.with(|h| h.allocate_first_fit(layout)) {
            Some(Ok(p)) => p.as_ptr(),
            Some(Err(())) => core::ptr::null_mut(),
            None => SPARE.alloc(layout.size(), layout.align()),
        };
        if p.is_null() {
            EXHAUSTED_AT.store(layout.size() as u64, Ordering::SeqCst);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if SPARE.owns(ptr) {
            return;
        }
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: `ptr` came from `alloc` with this layout. Re-entered
            // (None), the block is left allocated: the run ends after the
            // report that freed it.
            let _ = self.with(|h| unsafe { h.deallocate(p, layout) });
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapRange {
    pub start: u64,
    pub end: u64,
}

/// The least heap the checks are written for (the heap stress keeps up to
/// a few MiB live, rings and buffers come on top).
pub const MIN_HEAP: u64 = 8 << 20;

/// Where the heap goes for `memory` bytes of RAM; too little storage for
/// [`MIN_HEAP`] gives the storage size that would do, in whole MiB.
pub fn heap_range(memory: u64) -> Result<HeapRange, u64> {
    let start = (symbols::image_end() + 0xfff) & !0xfff;
    let end = memory.min(LOW_LIMIT).saturating_sub(BIOS_RESERVE);
    if end < start + MIN_HEAP {
        return Err((start + MIN_HEAP + BIOS_RESERVE).next_multiple_of(1 << 20));
    }
    Ok(HeapRange { start, end })
}

/// Storage size found by probing, for a host whose SCLP does not say:
/// the lowest MiB boundary a load from which raises an addressing
/// exception (storage is contiguous from 0 on every host we know).
pub fn probe_storage_size() -> u64 {
    const MIB: u64 = 1 << 20;
    let present = |addr: u64| {
        crate::arch::interrupt::expect_program_interrupt(|| {
            crate::arch::probe::load_u64(addr);
        })
        .is_none()
    };
    // The image runs from the first MiB; 16 TiB is past any guest.
    let (mut lo, mut hi) = (MIB, 1u64 << 44);
    if present(hi) {
        return hi;
    }
    while hi - lo > MIB {
        let mid = (lo + (hi - lo) / 2) & !(MIB - 1);
        if present(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// Hands `range` to the allocator. Called once, before any allocation.
pub fn init_heap(range: HeapRange) {
    // SAFETY: `range` is free RAM that nothing else uses (see heap_range).
    let _ = HEAP
        .with(|h| unsafe { h.init(range.start as *mut u8, (range.end - range.start) as usize) });
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapStats {
    pub size: u64,
    pub used: u64,
    pub free: u64,
}

/// The heap's figures; all 0 when asked from inside an allocation (a
/// restart interrupt's report).
pub fn heap_stats() -> HeapStats {
    HEAP.with(|h| HeapStats {
        size: h.size() as u64,
        used: h.used() as u64,
        free: h.free() as u64,
    })
    .unwrap_or(HeapStats {
        size: 0,
        used: 0,
        free: 0,
    })
}
