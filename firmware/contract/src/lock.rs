//! The lock every CPU shares the heap, the console and the interrupt
//! tables through: one word, taken with compare-and-swap, holding who owns
//! it. Knowing the owner lets a holder that is interrupted by something
//! that cannot wait (a restart interrupt reporting the end of the run)
//! see that it would wait for itself, instead of spinning forever.
//!
//! The firmware wraps it with interrupts disabled and the CPU's number
//! (arch::lock); here it is plain atomics, so the host tests can hammer it
//! with threads.

use core::sync::atomic::{AtomicU32, Ordering};

/// Free, or held by owner `n` (stored as `n + 1`).
pub struct OwnerLock {
    word: AtomicU32,
}

/// Why the lock could not be taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The caller holds it already (re-entered from an interrupt).
    Reentered,
    /// Someone else held it for the whole wait.
    Timeout { owner: u32 },
}

impl Default for OwnerLock {
    fn default() -> Self {
        Self::new()
    }
}

impl OwnerLock {
    pub const fn new() -> Self {
        OwnerLock {
            word: AtomicU32::new(0),
        }
    }

    /// One attempt for `me`: Ok when taken, Err(owner) when held.
    pub fn try_acquire(&self, me: u32) -> Result<(), u32> {
        match self
            .word
            .compare_exchange(0, me + 1, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Ok(()),
            Err(w) => Err(w - 1),
        }
    }

    /// Takes the lock for `me`, calling `spin` between attempts until it
    /// returns false (the caller's timeout).
    pub fn acquire(&self, me: u32, mut spin: impl FnMut() -> bool) -> Result<(), Refused> {
        loop {
            match self.try_acquire(me) {
                Ok(()) => return Ok(()),
                Err(owner) if owner == me => return Err(Refused::Reentered),
                Err(owner) => {
                    if !spin() {
                        return Err(Refused::Timeout { owner });
                    }
                }
            }
        }
    }

    /// Gives the lock up; false (and nothing changes) when `me` does not
    /// hold it.
    pub fn release(&self, me: u32) -> bool {
        self.word
            .compare_exchange(me + 1, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }

    /// Who holds it.
    pub fn owner(&self) -> Option<u32> {
        match self.word.load(Ordering::Relaxed) {
            0 => None,
            w => Some(w - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;

    #[test]
    fn one_owner_at_a_time() {
        let l = OwnerLock::new();
        assert_eq!(l.try_acquire(3), Ok(()));
        assert_eq!(l.owner(), Some(3));
        assert_eq!(l.try_acquire(5), Err(3));
        assert_eq!(l.acquire(3, || true), Err(Refused::Reentered));
        let mut tries = 0;
        assert_eq!(
            l.acquire(5, || {
                tries += 1;
                tries < 4
            }),
            Err(Refused::Timeout { owner: 3 })
        );
        assert_eq!(tries, 4);
        assert!(!l.release(5), "only the owner releases");
        assert!(l.release(3));
        assert_eq!(l.owner(), None);
        assert_eq!(l.acquire(0, || false), Ok(()));
    }

    /// Threads increment a counter under the lock with a read, a pause and
    /// a write: any two inside at once would lose increments.
    #[test]
    fn excludes_under_contention() {
        struct Shared {
            lock: OwnerLock,
            value: std::cell::UnsafeCell<u64>,
        }
        // SAFETY: `value` is only touched with `lock` held.
        unsafe impl Sync for Shared {}
        let s = Arc::new(Shared {
            lock: OwnerLock::new(),
            value: std::cell::UnsafeCell::new(0),
        });
        let threads: Vec<_> = (0..8u32)
            .map(|me| {
                let s = s.clone();
                thread::spawn(move || {
                    for _ in 0..2000 {
                        s.lock
                            .acquire(me, || {
                                std::hint::spin_loop();
                                true
                            })
                            .unwrap();
                        // SAFETY: held.
                        let v = unsafe { *s.value.get() };
                        std::hint::spin_loop();
                        // SAFETY: still held.
                        unsafe { *s.value.get() = v + 1 };
                        assert!(s.lock.release(me));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // SAFETY: every thread has ended.
        assert_eq!(unsafe { *s.value.get() }, 8 * 2000);
    }
}
