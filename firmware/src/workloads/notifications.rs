//! Used-buffer notifications held to what was used: the bookkeeping of
//! the hostile suite's one-at-a-time phase. Pure, host-tested.
//!
//! Why an honest device can never be counted here. The phase starts on a
//! freshly reset device (new indicators, and QEMU makes new call eventfds
//! at each start), so no notification from before can reach it. Then one
//! request at a time: the driver makes it available, notifies, waits for
//! the queue's indicator, clears it, and only then looks at the used ring.
//! An honest device uses the chain before it signals, and it signals only
//! after using something new. QEMU reads the eventfd (several writes
//! collapse into one read) and only then sets the indicator. So every
//! indicator the driver sees set was set by a read that took the signal
//! of the request in flight, whose used entry was therefore already in
//! the ring; and no signal is left over after it (the read took them all,
//! and the device has nothing more to use until the next request). An
//! indicator set with no new used entry is a notification the device sent
//! with nothing used. (Polling, or several requests in flight, would let
//! a late notification find its entry already taken: the phase does
//! neither.)

use crate::fmt::Hex;
use crate::format;
use alloc::string::String;

/// What one queue's phase saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Audit {
    /// Used entries taken: the used index as we know it (mod 2^16).
    pub used: u16,
    /// Indicators seen set with nothing new in the used ring.
    pub empty: u32,
    /// The request in flight at the first of them, and the used index
    /// then.
    first: Option<(u64, u16)>,
}

impl Audit {
    /// A used entry taken after the queue's indicator.
    pub fn took(&mut self) {
        self.used = self.used.wrapping_add(1);
    }

    /// The queue's indicator seen set (and cleared) while `request` was in
    /// flight, and nothing new in the used ring.
    pub fn nothing_used(&mut self, request: u64) {
        self.empty += 1;
        self.first.get_or_insert((request, self.used));
    }

    /// The misbehaviour, if any, for queue `queue`: one interrupt with
    /// nothing used, or more within `watch_ms` of the first (a storm).
    pub fn verdict(&self, queue: u16, watch_ms: u64, seed: u64) -> Option<String> {
        let (request, used) = self.first?;
        Some(if self.empty == 1 {
            format!(
                "queue {}: interrupt with nothing used (used index {}, as before) while request {} was in flight (seed {})",
                queue,
                used,
                request,
                Hex(seed)
            )
        } else {
            format!(
                "queue {}: {} interrupts with nothing used within {} ms (a notification storm), the first while request {} was in flight (used index {}) (seed {})",
                queue,
                self.empty,
                watch_ms,
                request,
                used,
                Hex(seed)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every interrupt with its entry: nothing to say. One without: named
    /// with the request and used index; more: a storm, counted.
    #[test]
    fn interrupts_with_nothing_used_are_named() {
        let mut a = Audit::default();
        for _ in 0..5 {
            a.took();
        }
        assert_eq!(a.verdict(1, 20, 0x5eed), None);
        a.nothing_used(5);
        assert_eq!(
            a.verdict(1, 20, 0x5eed).unwrap(),
            "queue 1: interrupt with nothing used (used index 5, as before) while request 5 was in flight (seed 0x5eed)"
        );
        a.nothing_used(5);
        a.nothing_used(5);
        assert_eq!(
            a.verdict(2, 20, 0x5eed).unwrap(),
            "queue 2: 3 interrupts with nothing used within 20 ms (a notification storm), the first while request 5 was in flight (used index 5) (seed 0x5eed)"
        );
    }

    #[test]
    fn the_used_index_wraps() {
        let mut a = Audit {
            used: u16::MAX,
            ..Audit::default()
        };
        a.took();
        assert_eq!(a.used, 0);
    }
}
