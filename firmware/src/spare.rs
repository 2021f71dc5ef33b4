//! A small bump arena for allocations made while the heap cannot be
//! entered: a restart interrupt is not maskable, so it can cut through an
//! allocation, and the report it leads to still needs a few strings. Its
//! memory is never given back; the run ends after such a report.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

pub struct Spare<const N: usize> {
    buf: UnsafeCell<[u8; N]>,
    next: AtomicUsize,
}

// SAFETY: each allocation is a disjoint range claimed by compare-and-swap
// on `next`; the bytes are only reached through the pointers handed out.
unsafe impl<const N: usize> Sync for Spare<N> {}

impl<const N: usize> Spare<N> {
    pub const fn new() -> Self {
        Spare {
            buf: UnsafeCell::new([0; N]),
            next: AtomicUsize::new(0),
        }
    }

    /// `size` bytes aligned to `align` (a power of two), or null when the
    /// arena is full.
    pub fn alloc(&self, size: usize, align: usize) -> *mut u8 {
        let base = self.buf.get() as usize;
        let mut next = self.next.load(Ordering::Relaxed);
        loop {
            let Some(start) = (base + next)
                .checked_next_multiple_of(align.max(1))
                .map(|a| a - base)
            else {
                return core::ptr::null_mut();
            };
            let end = match start.checked_add(size) {
                Some(e) if e <= N => e,
                _ => return core::ptr::null_mut(),
            };
            match self
                .next
                .compare_exchange(next, end, Ordering::AcqRel, Ordering::Relaxed)
            {
                // SAFETY: start..end lies inside the buffer.
                Ok(_) => return unsafe { self.buf.get().cast::<u8>().add(start) },
                Err(now) => next = now,
            }
        }
    }

    /// Whether `p` came from this arena.
    pub fn owns(&self, p: *const u8) -> bool {
        let base = self.buf.get() as usize;
        (base..base + N).contains(&(p as usize))
    }
}

impl<const N: usize> Default for Spare<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_disjoint_until_full() {
        let s: Spare<256> = Spare::new();
        let a = s.alloc(3, 1);
        let b = s.alloc(16, 8);
        assert!(!a.is_null() && !b.is_null());
        assert_eq!(b as usize % 8, 0);
        assert!(b as usize >= a as usize + 3, "disjoint");
        assert!(s.owns(a) && s.owns(b));
        assert!(!s.owns(&0u8 as *const u8));
        let rest = s.alloc(1024, 1);
        assert!(rest.is_null(), "past the arena: null, not out of bounds");
        assert!(s.alloc(usize::MAX, 1).is_null());
        let mut n = 0;
        while !s.alloc(8, 8).is_null() {
            n += 1;
        }
        assert!(n > 0 && n <= 256 / 8);
    }
}
