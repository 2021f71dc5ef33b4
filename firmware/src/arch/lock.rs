//! The lock the CPUs share the heap, the console and the interrupt tables
//! through: the contract's [`OwnerLock`] (compare-and-swap on one word,
//! host-tested with threads) owned by this CPU's number, held with this
//! CPU's I/O and external interrupts off.

use super::{irq_disable, irq_restore, lowcore, tod, TOD_PER_US};
use zvtest_contract::lock::OwnerLock;
pub use zvtest_contract::lock::Refused;

pub struct CpuLock {
    inner: OwnerLock,
}

/// The lock, held; dropping it gives the lock up and restores the
/// interrupt mask the caller had.
#[must_use = "the lock is given up when this is dropped"]
pub struct Held<'a> {
    lock: &'a CpuLock,
    me: u32,
    mask: u8,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.lock.inner.release(self.me);
        irq_restore(self.mask);
    }
}

impl Default for CpuLock {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuLock {
    pub const fn new() -> Self {
        CpuLock {
            inner: OwnerLock::new(),
        }
    }

    /// Takes the lock. While another CPU holds it this CPU waits with its
    /// interrupt mask as the caller had it (an interrupt the holder waits
    /// for can be taken here), for at most `timeout_us`. Refused at once
    /// when this CPU holds it (an interrupt handler re-entering).
    pub fn lock(&self, timeout_us: u64) -> Result<Held<'_>, Refused> {
        let me = lowcore::cpu_number() as u32;
        let mut deadline = None;
        loop {
            let mask = irq_disable();
            match self.inner.try_acquire(me) {
                Ok(()) => {
                    return Ok(Held {
                        lock: self,
                        me,
                        mask,
                    })
                }
                Err(owner) => {
                    irq_restore(mask);
                    if owner == me {
                        return Err(Refused::Reentered);
                    }
                    let now = tod();
                    let end = *deadline.get_or_insert(now + timeout_us * TOD_PER_US);
                    if now >= end {
                        return Err(Refused::Timeout { owner });
                    }
                    core::hint::spin_loop();
                }
            }
        }
    }

    /// Gives up the lock this CPU holds though its [`Held`] is lost (held
    /// by code an interrupt abandoned); false when this CPU does not hold it.
    pub fn release_mine(&self) -> bool {
        self.inner.release(lowcore::cpu_number() as u32)
    }

    /// Who holds it (a CPU number).
    pub fn owner(&self) -> Option<u32> {
        self.inner.owner()
    }
}
