//! A single-CPU global: interrupt handlers and the main flow never hold a
//! reference across each other.

use core::cell::UnsafeCell;

/// A value shared between the main flow and interrupt handlers.
pub struct Global<T>(UnsafeCell<T>);

// SAFETY: one CPU runs zvtest; accesses are short and never overlap.
unsafe impl<T> Sync for Global<T> {}

impl<T: Copy> Global<T> {
    pub const fn new(v: T) -> Self {
        Global(UnsafeCell::new(v))
    }
    pub fn get(&self) -> T {
        // SAFETY: see the Sync impl; a Copy value is read whole.
        unsafe { core::ptr::read_volatile(self.0.get()) }
    }
    pub fn set(&self, v: T) {
        // SAFETY: see the Sync impl.
        unsafe { core::ptr::write_volatile(self.0.get(), v) }
    }
}
