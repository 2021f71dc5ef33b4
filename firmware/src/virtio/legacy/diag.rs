//! The legacy host on s390x: DIAG 0x500 for the hypercalls, external
//! interrupt 0x2603 for its notifications, the page read and written in
//! place.
//!
//! Nothing here can tell storage from a Rust object: whoever makes a
//! [`DiagHost`] vouches for its page and its ring storage
//! ([`DiagHost::new`] is unsafe). The rings handed out are recorded for
//! the whole run, across hosts, so no ring ever serves two queues.

use super::{LegacyCall, LegacyHost, LegacyInterrupt, EXT_VIRTIO};
use crate::arch::context::{ExternalInterrupt, InterruptContext};
use crate::arch::global::Global;
use crate::arch::handlers::{self, Registration};
use crate::arch::hypercall::diag500;
use crate::arch::interrupt::expect_program_interrupt;
use crate::arch::{irq_disable, irq_restore, timer};
use alloc::vec::Vec;
use core::ops::Range;

/// Interrupts taken and not yet collected; older ones are dropped (and
/// still counted) when more arrive than fit.
#[derive(Clone, Copy)]
struct Pending {
    slots: [LegacyInterrupt; 16],
    len: usize,
    taken: u32,
}

static PENDING: Global<Pending> = Global::new(Pending {
    slots: [LegacyInterrupt { kind: 0, token: 0 }; 16],
    len: 0,
    taken: 0,
});

/// Rings handed to queues so far in the run, by any host: (start, end).
#[derive(Clone, Copy)]
struct Claimed {
    rings: [(u64, u64); 64],
    len: usize,
}

static CLAIMED: Global<Claimed> = Global::new(Claimed {
    rings: [(0, 0); 64],
    len: 0,
});

fn on_virtio_interrupt(ext: &ExternalInterrupt, _: &mut InterruptContext) {
    let mut p = PENDING.get();
    let i = LegacyInterrupt {
        kind: ext.param as u8,
        token: ext.param64,
    };
    if p.len == p.slots.len() {
        p.slots.copy_within(1.., 0);
        p.len -= 1;
    }
    p.slots[p.len] = i;
    p.len += 1;
    p.taken += 1;
    PENDING.set(p);
}

/// Runs `f` with the interrupt handler kept out of PENDING.
fn quietly<R>(f: impl FnOnce() -> R) -> R {
    let old = irq_disable();
    let r = f();
    irq_restore(old);
    r
}

/// The host behind a device page at `page` whose first `page_len` bytes
/// are storage. It owns interrupt 0x2603 while it lives.
pub struct DiagHost {
    page: u64,
    page_len: usize,
    rings: Range<u64>,
    _interrupt: Registration,
}

impl DiagHost {
    /// The host of the device page at `page`, with ring storage `rings`.
    ///
    /// # Safety
    ///
    /// `page_len` bytes from `page` are storage holding the host's device
    /// page, in which no Rust object lives, for as long as the host lives;
    /// `rings` is storage the host set aside for rings that nothing in the
    /// firmware uses (no Rust object, no allocator) for the rest of the
    /// run, apart from the rings handed out from it.
    pub unsafe fn new(page: u64, page_len: usize, rings: Range<u64>) -> Self {
        quietly(|| {
            let mut p = PENDING.get();
            p.len = 0;
            p.taken = 0;
            PENDING.set(p);
        });
        DiagHost {
            page,
            page_len: page_len.min(super::PAGE_SIZE),
            rings,
            _interrupt: handlers::on_external(EXT_VIRTIO, on_virtio_interrupt),
        }
    }

    /// 0x2603 interrupts taken since this host was made.
    pub fn interrupts_taken(&self) -> u32 {
        PENDING.get().taken
    }

    fn in_page(&self, offset: usize, len: usize) -> bool {
        offset <= self.page_len && len <= self.page_len - offset
    }
}

// SAFETY: `ring_window` is the storage `new`'s caller vouched for (valid
// for the run, used by nothing but the rings handed out), and
// `claim_ring` answers yes once for any byte, for every `DiagHost` of the
// run (the record is one static).
unsafe impl LegacyHost for DiagHost {
    fn page_addr(&self) -> u64 {
        self.page
    }

    fn page_len(&self) -> usize {
        self.page_len
    }

    fn read_page(&mut self, offset: usize, buf: &mut [u8]) -> bool {
        if !self.in_page(offset, buf.len()) {
            return false;
        }
        for (i, b) in buf.iter_mut().enumerate() {
            let at = (self.page + (offset + i) as u64) as *const u8;
            // SAFETY: inside the page's storage (checked), which `new`'s
            // caller vouched for: storage no Rust object occupies; volatile,
            // as the host writes it too.
            *b = unsafe { core::ptr::read_volatile(at) };
        }
        true
    }

    fn write_page(&mut self, offset: usize, data: &[u8]) -> bool {
        if !self.in_page(offset, data.len()) {
            return false;
        }
        for (i, &b) in data.iter().enumerate() {
            let at = (self.page + (offset + i) as u64) as *mut u8;
            // SAFETY: as in `read_page`; the page is shared with the host,
            // not any Rust object.
            unsafe { core::ptr::write_volatile(at, b) };
        }
        true
    }

    fn ring_window(&self) -> Range<u64> {
        self.rings.clone()
    }

    fn claim_ring(&mut self, ring: Range<u64>) -> bool {
        quietly(|| {
            let mut c = CLAIMED.get();
            let taken = c.rings[..c.len]
                .iter()
                .any(|&(start, end)| ring.start < end && start < ring.end);
            if taken || c.len == c.rings.len() {
                return false;
            }
            c.rings[c.len] = (ring.start, ring.end);
            c.len += 1;
            CLAIMED.set(c);
            true
        })
    }

    fn hypercall(&mut self, call: LegacyCall, arg: u64) -> Option<i64> {
        let mut result = 0u64;
        let slot = &mut result;
        expect_program_interrupt(|| *slot = diag500(call as u64, [arg, 0, 0, 0, 0, 0]))
            .is_none()
            .then_some(result as i64)
    }

    fn take_interrupts(&mut self) -> Vec<LegacyInterrupt> {
        quietly(|| {
            let mut p = PENDING.get();
            let out = p.slots[..p.len].to_vec();
            p.len = 0;
            PENDING.set(p);
            out
        })
    }

    fn wait(&mut self, timeout_us: u64, done: &mut dyn FnMut() -> bool) -> bool {
        timer::wait_until(timeout_us, false, done)
    }
}
