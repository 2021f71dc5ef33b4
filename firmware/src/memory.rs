//! Memory sizing and the heap.
//!
//! The heap covers free RAM between the image (`_end`, which includes the
//! stacks) and the area QEMU loads its s390-ccw BIOS into, 2-3 MiB under
//! min(RAM, 2 GiB); we stay 4 MiB clear. Everything stays below 2 GiB so
//! heap buffers are valid format-1 CCW data addresses.

use crate::arch::{irq_disable, irq_restore, symbols};
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use linked_list_allocator::Heap;

pub const BIOS_RESERVE: u64 = 4 << 20;
const LOW_LIMIT: u64 = 2 << 30;

/// linked_list_allocator's heap with interrupts disabled around each call:
/// one CPU, and a check timeout can then never cut through the free list.
pub struct IrqSafeHeap(UnsafeCell<Heap>);

// SAFETY: one CPU; every access runs with interrupts disabled.
unsafe impl Sync for IrqSafeHeap {}

#[global_allocator]
static HEAP: IrqSafeHeap = IrqSafeHeap(UnsafeCell::new(Heap::empty()));

/// Size of the last request the heap could not satisfy (0 if none).
pub static EXHAUSTED_AT: AtomicU64 = AtomicU64::new(0);

/// Set while the heap's free list is being changed: a restart interrupt
/// (not maskable) that arrives then must not enter it.
static BUSY: AtomicBool = AtomicBool::new(false);
/// What such an interrupt's report allocates instead.
static SPARE: crate::spare::Spare<{ 16 << 10 }> = crate::spare::Spare::new();

impl IrqSafeHeap {
    /// None when the heap is already in use: entered from a restart
    /// interrupt that cut through an allocation.
    fn with<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> Option<R> {
        let m = irq_disable();
        if BUSY.swap(true, Ordering::Acquire) {
            irq_restore(m);
            return None;
        }
        // SAFETY: interrupts are off and BUSY keeps out the one interrupt
        // that is not maskable.
        let r = f(unsafe { &mut *self.0.get() });
        BUSY.store(false, Ordering::Release);
        irq_restore(m);
        Some(r)
    }
}

// SAFETY: allocation is delegated to linked_list_allocator, serialised by
// disabling interrupts and BUSY; re-entry takes the spare arena.
unsafe impl GlobalAlloc for IrqSafeHeap {
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
