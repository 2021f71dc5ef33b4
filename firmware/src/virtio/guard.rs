//! Canaries around the buffers a device is given: known bytes in the
//! memory right before, between and after them, written when the buffers
//! are made available and compared when the device is done (or when a run
//! ends with them still out). A device that stores outside what it was
//! given changes them, and the place is named: which guard, which byte,
//! what was there and what is now.
//!
//! A guard region is any stretch of memory no buffer covers. Regions up
//! to two [`GUARD`]s long carry the canary whole; a longer one at its two
//! ends only (a stray write lands next to a buffer, and the cost per
//! request stays a few doublewords however far apart the buffers are).
//!
//! The canary byte at offset `x` of the memory is [`canary_at`]`(x)`,
//! whatever the region: guards are laid and compared a doubleword at a
//! time (a few instructions each, which a benchmark under TCG notices),
//! and a doubleword that straddles a region's edge may store canary bytes
//! into the buffer next to it, never wrong ones into another region. So
//! guards are laid before the buffers are filled, and the fill (or the
//! poison, or the device) owns every byte of a buffer; a comparison looks
//! at the region's own bytes only.

use crate::dma::DmaMemory;
use crate::format;
use alloc::string::String;
use zvtest_contract::fmt::HexW;
use zvtest_contract::stress::Piece;

/// Canary bytes on each side of a buffer.
pub const GUARD: usize = 16;

/// Two periods of the canary, so that any [`GUARD`] bytes of it from any
/// position are one slice.
const PATTERN: [u8; 2 * GUARD] = {
    let mut p = [0u8; 2 * GUARD];
    let mut i = 0;
    while i < 2 * GUARD {
        p[i] = 0x5c_u8.wrapping_add(((i % GUARD) as u8).wrapping_mul(0x3d));
        i += 1;
    }
    p
};

/// The canary byte at offset `x` of a buffer's memory:
/// position-dependent, never 0x00, 0xff or the poison 0xa5 of
/// device-writable bytes.
pub fn canary_at(x: usize) -> u8 {
    PATTERN[x % GUARD]
}

/// The canary's two doublewords, as the big-endian numbers
/// [`DmaMemory::fill_words`] and [`DmaMemory::scan_words`] take: the one
/// at an 8-aligned offset `w` is `WORDS[(w / 8) & 1]`.
const WORDS: [u64; 2] = {
    const fn be(at: usize) -> u64 {
        let mut v = 0u64;
        let mut i = 0;
        while i < 8 {
            v = v << 8 | PATTERN[at + i] as u64;
            i += 1;
        }
        v
    }
    [be(0), be(8)]
};

/// The canary doubleword at an 8-aligned offset `w`.
fn word_at(w: usize) -> u64 {
    WORDS[(w / 8) & 1]
}

/// The bytes `lo..hi` (0..=8, big-endian order) of a doubleword.
fn byte_mask(lo: usize, hi: usize) -> u64 {
    let from = u64::MAX.checked_shr(8 * lo as u32).unwrap_or(0);
    let past = u64::MAX.checked_shr(8 * hi as u32).unwrap_or(0);
    from & !past
}

/// A canary byte a device changed: its offset in the guard region, what
/// was written there, what is there now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    pub byte: usize,
    pub expected: u8,
    pub got: u8,
}

impl Hit {
    /// "the canary PLACE byte B: expected 0xEE, got 0xGG".
    pub fn text(&self, place: &str) -> String {
        format!(
            "the canary {} byte {}: expected 0x{}, got 0x{}",
            place,
            self.byte,
            HexW(self.expected.into(), 2),
            HexW(self.got.into(), 2)
        )
    }
}

/// Stores the canary doublewords that cover bytes `s..e` (s < e).
#[inline(always)]
fn lay_words(mem: &DmaMemory, s: usize, e: usize) {
    let w0 = s & !7;
    let mut w = w0;
    mem.fill_words(w0, (e + 7 - w0) / 8, || {
        let v = word_at(w);
        w += 8;
        v
    });
}

/// The first byte of `s..e` (s < e; offsets in `mem`, `from` where the
/// region starts) that does not hold the canary.
#[inline(always)]
fn hit_words(mem: &DmaMemory, from: usize, s: usize, e: usize) -> Option<Hit> {
    let w0 = s & !7;
    let mut w = w0;
    let (mut diff, mut got) = (0, 0);
    mem.scan_words(w0, (e + 7 - w0) / 8, |word| {
        let d = (word ^ word_at(w)) & byte_mask(s.saturating_sub(w), (e - w).min(8));
        if d != 0 {
            (diff, got) = (d, word);
            return false;
        }
        w += 8;
        true
    })?;
    let j = diff.leading_zeros() as usize / 8;
    let shift = 56 - 8 * j as u32;
    Some(Hit {
        byte: w + j - from,
        expected: (word_at(w) >> shift) as u8,
        got: (got >> shift) as u8,
    })
}

/// Writes the canary into region [`from`, `to`) of `mem`, by whole
/// doublewords: the bytes of a straddling one outside the region get
/// canary bytes too (module notes: lay before filling the buffers).
pub fn lay(mem: &DmaMemory, from: usize, to: usize) {
    if to <= from {
        return;
    }
    if to - from <= 2 * GUARD {
        lay_words(mem, from, to);
    } else {
        lay_words(mem, from, from + GUARD);
        lay_words(mem, to - GUARD, to);
    }
}

/// The first canary byte of region [`from`, `to`) of `mem` that is not
/// what [`lay`] wrote (the region's own bytes only).
pub fn hit(mem: &DmaMemory, from: usize, to: usize) -> Option<Hit> {
    if to <= from {
        return None;
    }
    if to - from <= 2 * GUARD {
        hit_words(mem, from, from, to)
    } else {
        hit_words(mem, from, from, from + GUARD).or_else(|| hit_words(mem, from, to - GUARD, to))
    }
}

/// The first changed canary of the regions (from, to, name) of `mem`,
/// each laid by [`lay`]: its name and the byte.
pub fn first_hit<'a>(
    mem: &DmaMemory,
    regions: impl IntoIterator<Item = (usize, usize, &'a str)>,
) -> Option<(&'a str, Hit)> {
    regions
        .into_iter()
        .find_map(|(from, to, name)| hit(mem, from, to).map(|h| (name, h)))
}

/// Where a chain's guard lies, for the failure text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    BeforeChain,
    /// Between element k - 1 and element k (elements counted from 0).
    GapBefore(usize),
    AfterChain,
}

impl Place {
    pub fn text(self) -> String {
        match self {
            Place::BeforeChain => String::from("before the chain"),
            Place::GapBefore(k) => format!("in the gap before element {}", k),
            Place::AfterChain => String::from("after the chain"),
        }
    }
}

pub use zvtest_contract::virtio::WROTE_OUTSIDE;

/// What a stray store into a chain's guards is reported as.
pub const OUTSIDE_CHAIN: &str = "the device wrote outside the chain's buffers";

/// Memory a chain of `pieces` takes with its guards: [`GUARD`] bytes
/// before the first element, between each two (on top of the shape's
/// gap) and after the last.
pub fn chain_footprint(pieces: &[Piece]) -> usize {
    zvtest_contract::stress::footprint(pieces) + (pieces.len() + 1) * GUARD
}

/// Where element `k` of a guarded chain starts, given where the element
/// before it ended (0 for the first) and its gap.
pub fn element_offset(prev_end: usize, gap: u32) -> usize {
    prev_end + GUARD + gap as usize
}

/// Writes the canaries of a chain laid out at `at` in `mem`.
pub fn lay_chain(mem: &DmaMemory, at: &[(usize, Piece)]) {
    let mut end = 0;
    for &(offset, p) in at {
        lay(mem, end, offset);
        end = offset + p.len as usize;
    }
    lay(mem, end, end + GUARD);
}

/// The first canary of a chain laid out at `at` in `mem` that changed.
pub fn chain_hit(mem: &DmaMemory, at: &[(usize, Piece)]) -> Option<(Place, Hit)> {
    let mut end = 0;
    for (k, &(offset, p)) in at.iter().enumerate() {
        if let Some(h) = hit(mem, end, offset) {
            let place = if k == 0 {
                Place::BeforeChain
            } else {
                Place::GapBefore(k)
            };
            return Some((place, h));
        }
        end = offset + p.len as usize;
    }
    hit(mem, end, end + GUARD).map(|h| (Place::AfterChain, h))
}

/// [`chain_hit`] as failure text: "the device wrote outside the chain's
/// buffers: the canary PLACE byte B: expected 0xEE, got 0xGG".
pub fn chain_hit_text(mem: &DmaMemory, at: &[(usize, Piece)]) -> Option<String> {
    chain_hit(mem, at).map(|(place, h)| {
        format!(
            "{}: {}",
            OUTSIDE_CHAIN,
            h.text(place.text().as_str()).as_str()
        )
    })
}

/// What a stray store around a lone buffer ([`Slots`]) is reported as.
pub const OUTSIDE_BUFFER: &str = "the device wrote outside the buffer";

/// Lone buffers of up to `max` bytes, each in a slot of its own: a
/// [`GUARD`], the buffer, then the rest of the slot and another
/// [`GUARD`] (a buffer shorter than `max` is guarded right at its end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slots {
    pub max: usize,
}

impl Slots {
    pub fn stride(self) -> usize {
        GUARD + self.max + GUARD
    }

    /// Memory for `n` slots.
    pub fn bytes(self, n: usize) -> usize {
        n * self.stride()
    }

    /// Where the buffer of slot `slot` starts.
    pub fn buffer(self, slot: usize) -> usize {
        slot * self.stride() + GUARD
    }

    fn regions(self, slot: usize, len: usize) -> [(&'static str, usize, usize); 2] {
        let at = self.buffer(slot);
        [
            ("before the buffer", at - GUARD, at),
            ("after the buffer", at + len, at + self.max + GUARD),
        ]
    }

    /// Writes the canaries around slot `slot`'s buffer of `len` bytes.
    pub fn lay(self, mem: &DmaMemory, slot: usize, len: usize) {
        for (_, from, to) in self.regions(slot, len) {
            lay(mem, from, to);
        }
    }

    /// The first changed canary around slot `slot`'s buffer of `len`
    /// bytes, as failure text: "the device wrote outside the buffer: the
    /// canary after the buffer byte B: expected 0xEE, got 0xGG".
    pub fn hit(self, mem: &DmaMemory, slot: usize, len: usize) -> Option<String> {
        self.regions(slot, len)
            .iter()
            .find_map(|&(place, from, to)| {
                hit(mem, from, to)
                    .map(|h| format!("{}: {}", OUTSIDE_BUFFER, h.text(place).as_str()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn every_report_begins_alike() {
        assert!(OUTSIDE_CHAIN.starts_with(WROTE_OUTSIDE));
        assert!(OUTSIDE_BUFFER.starts_with(WROTE_OUTSIDE));
    }

    #[test]
    fn the_canary_is_never_poison_zero_or_ones() {
        let bytes: Vec<u8> = (0..GUARD).map(canary_at).collect();
        for b in &bytes {
            assert!(![0x00, 0xa5, 0xff].contains(b), "{b:#x}");
        }
        let mut sorted = bytes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), GUARD, "position-dependent: all differ");
        assert_eq!(canary_at(GUARD + 3), canary_at(3));
        for w in [0, 8, 16, 24] {
            let bytes: Vec<u8> = (w..w + 8).map(canary_at).collect();
            assert_eq!(word_at(w).to_be_bytes().as_slice(), bytes, "{w}");
        }
        assert_eq!(byte_mask(0, 8), u64::MAX);
        assert_eq!(byte_mask(3, 8), 0x0000_00ff_ffff_ffff);
        assert_eq!(byte_mask(0, 2), 0xffff_0000_0000_0000);
        assert_eq!(byte_mask(2, 5), 0x0000_ffff_ff00_0000);
    }

    /// Short regions are guarded whole, long ones at both ends; a changed
    /// guard byte is named with its offset in the region, a byte in the
    /// unguarded middle of a long region is not looked at.
    #[test]
    fn a_changed_guard_byte_is_named_by_its_offset() {
        let mem = DmaMemory::new(4096);
        for (from, to) in [(0, 1), (3, 19), (8, 40), (100, 133), (201, 500)] {
            mem.clear(0, 4096);
            lay(&mem, from, to);
            assert_eq!(hit(&mem, from, to), None, "{from}..{to}");
            let len = to - from;
            let guarded: Vec<usize> = if len <= 2 * GUARD {
                (0..len).collect()
            } else {
                (0..GUARD).chain(len - GUARD..len).collect()
            };
            for &i in &guarded {
                let was = mem.load(from + i);
                assert_eq!(was, canary_at(from + i));
                mem.store(from + i, !was);
                assert_eq!(
                    hit(&mem, from, to),
                    Some(Hit {
                        byte: i,
                        expected: was,
                        got: !was
                    }),
                    "{from}..{to} byte {i}"
                );
                mem.store(from + i, was);
            }
            if len > 2 * GUARD {
                mem.store(from + GUARD, 0);
                assert_eq!(hit(&mem, from, to), None, "the middle is not guarded");
            }
            // Nothing past the doubleword holding the region's last byte
            // is written.
            let past = (to + 7) & !7;
            assert!((past..past + 16).all(|x| mem.load(x) == 0), "{from}..{to}");
        }
    }

    /// Regions a byte apart (a one-byte element between them): laying
    /// either spills into the other only the other's own canary, so both
    /// stay intact in any order; a store into the byte between is no hit.
    #[test]
    fn neighbouring_regions_keep_each_others_canary() {
        let mem = DmaMemory::new(4096);
        let (a, b) = ((68, 84), (85, 101));
        lay(&mem, b.0, b.1);
        lay(&mem, a.0, a.1);
        mem.store(84, 0xa5);
        assert_eq!(hit(&mem, a.0, a.1), None);
        assert_eq!(hit(&mem, b.0, b.1), None);
        mem.store(85, 0);
        assert_eq!(
            hit(&mem, b.0, b.1),
            Some(Hit {
                byte: 0,
                expected: canary_at(85),
                got: 0
            })
        );
        assert_eq!(hit(&mem, a.0, a.1), None);
    }

    #[test]
    fn a_hit_reads_as_place_byte_expected_got() {
        let h = Hit {
            byte: 3,
            expected: 0x5c,
            got: 0,
        };
        assert_eq!(
            h.text(Place::AfterChain.text().as_str()),
            "the canary after the chain byte 3: expected 0x5c, got 0x00"
        );
        assert_eq!(Place::GapBefore(2).text(), "in the gap before element 2");
    }

    /// A chain's guards: before the first element, in each gap, after the
    /// last, each named; the elements themselves are never touched.
    #[test]
    fn a_chain_has_a_guard_before_between_and_after() {
        let pieces = [
            Piece {
                len: 5,
                writable: false,
                gap: 3,
            },
            Piece {
                len: 7,
                writable: true,
                gap: 0,
            },
            Piece {
                len: 2,
                writable: true,
                gap: 60,
            },
        ];
        let mut at = Vec::new();
        let mut end = 0;
        for p in pieces {
            let o = element_offset(end, p.gap);
            at.push((o, p));
            end = o + p.len as usize;
        }
        assert_eq!(end + GUARD, chain_footprint(&pieces));
        let mem = DmaMemory::new(chain_footprint(&pieces));
        // Laid first, then the elements written whole (as the engine
        // does): the guards intact, and checking them changes nothing.
        lay_chain(&mem, &at);
        for &(o, p) in &at {
            mem.write(o, &alloc::vec![0xa5; p.len as usize]);
        }
        assert_eq!(chain_hit(&mem, &at), None);
        for &(o, p) in &at {
            for i in 0..p.len as usize {
                assert_eq!(mem.load(o + i), 0xa5, "element bytes kept");
            }
        }
        let cases = [
            (at[0].0 - 1, Place::BeforeChain, at[0].0 - 1),
            (at[1].0 - 1, Place::GapBefore(1), GUARD - 1),
            (at[1].0 + 7, Place::GapBefore(2), 0),
            (at[2].0 - 1, Place::GapBefore(2), GUARD + 60 - 1),
            (end, Place::AfterChain, 0),
            (end + GUARD - 1, Place::AfterChain, GUARD - 1),
        ];
        for (addr, place, byte) in cases {
            let was = mem.load(addr);
            mem.store(addr, was ^ 0x10);
            assert_eq!(
                chain_hit(&mem, &at),
                Some((
                    place,
                    Hit {
                        byte,
                        expected: was,
                        got: was ^ 0x10
                    }
                )),
                "{place:?}"
            );
            mem.store(addr, was);
        }
        mem.store(end + 2, 0);
        assert_eq!(
            chain_hit_text(&mem, &at),
            Some(std::format!(
                "the device wrote outside the chain's buffers: the canary after the chain byte 2: expected {:#04x}, got 0x00",
                canary_at(end + 2)
            ))
        );
    }

    /// Slots keep their buffers apart by two guards; a store right
    /// before a buffer or right after its length (not its slot's end) is
    /// named; neighbouring slots are untouched.
    #[test]
    fn a_slot_names_a_store_before_or_past_its_buffer() {
        let slots = Slots { max: 100 };
        assert_eq!(slots.stride(), 132);
        let mem = DmaMemory::new(slots.bytes(3));
        slots.lay(&mem, 0, 100);
        slots.lay(&mem, 2, 100);
        slots.lay(&mem, 1, 10);
        for s in 0..3 {
            let len = if s == 1 { 10 } else { 100 };
            assert_eq!(slots.hit(&mem, s, len), None);
        }
        let at = slots.buffer(1);
        assert_eq!(at, 132 + GUARD);
        mem.store(at + 10, 0);
        assert_eq!(
            slots.hit(&mem, 1, 10),
            Some(std::format!(
                "the device wrote outside the buffer: the canary after the buffer byte 0: expected {:#04x}, got 0x00",
                canary_at(at + 10)
            ))
        );
        assert_eq!(slots.hit(&mem, 0, 100), None);
        assert_eq!(slots.hit(&mem, 2, 100), None);
        slots.lay(&mem, 1, 10);
        mem.store(at - 1, 0);
        assert_eq!(
            slots.hit(&mem, 1, 10),
            Some(std::format!(
                "the device wrote outside the buffer: the canary before the buffer byte 15: expected {:#04x}, got 0x00",
                canary_at(at - 1)
            ))
        );
        slots.lay(&mem, 1, 10);
        // The end of slot 0's guard is right before slot 1's.
        mem.store(at - GUARD - 1, 0);
        assert_eq!(slots.hit(&mem, 1, 10), None);
        assert!(slots
            .hit(&mem, 0, 100)
            .unwrap()
            .contains("after the buffer byte 15"));
    }

    /// The hostile suite's layout (canary, readable, canary, canary,
    /// writable, canary): its four canaries laid and looked at as named
    /// regions; a changed byte in any is named, the buffers are not
    /// looked at.
    #[test]
    fn the_hostile_layouts_canaries_are_named_regions() {
        use zvtest_contract::hostile::{Layout, CANARY};
        let l = Layout::new(5);
        let mem = DmaMemory::new(l.total);
        let regions = || l.canaries().map(|(at, name)| (at, at + CANARY, name));
        for (from, to, _) in regions() {
            lay(&mem, from, to);
        }
        mem.write(l.read_at, &[0xa5; 5]);
        mem.write(l.write_at, &[0; 5]);
        assert_eq!(first_hit(&mem, regions()), None);
        let x = l.write_at + 5 + 3;
        mem.store(x, canary_at(x) ^ 1);
        assert_eq!(
            first_hit(&mem, regions()),
            Some((
                "after the writable buffer",
                Hit {
                    byte: 3,
                    expected: canary_at(x),
                    got: canary_at(x) ^ 1
                }
            ))
        );
        mem.store(x, canary_at(x));
        mem.store(l.read_at - 1, 0);
        assert_eq!(
            first_hit(&mem, regions()).map(|(n, h)| (n, h.byte, h.got)),
            Some(("before the readable buffer", CANARY - 1, 0))
        );
    }
}
