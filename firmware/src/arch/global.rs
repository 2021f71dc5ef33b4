//! A global read and written whole: interrupt handlers and the main flow
//! never hold a reference across each other, and where several CPUs may
//! reach one, its owner serialises them (a lock, per-CPU copies).

use core::cell::UnsafeCell;

/// A value shared between the main flow and interrupt handlers.
pub struct Global<T>(UnsafeCell<T>);

// SAFETY: accesses are short copies in or out; the owners of globals that
// several CPUs reach keep them apart (arch::lock, per-CPU tables).
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
