//! The judgments of checks whose evidence comes from the machine, apart
//! from the machine: what an early timer, a lazy entropy device or a heap
//! that never runs out look like is decided here and unit-tested on the
//! host with wrong inputs.

pub mod crypto;

use crate::check::Outcome;
use crate::format;
use alloc::string::String;
use alloc::vec::Vec;

/// A timer interrupt armed for `deadline` (TOD) must not be taken before
/// it. `arrived` is the TOD at which the first interrupt was taken after
/// arming, as its handler recorded it (not when the waiter noticed).
pub fn timer_arrival(what: &str, deadline: u64, arrived: Option<u64>, tod_per_us: u64) -> Outcome {
    match arrived {
        None => Outcome::mismatch(&format!("{} interrupt", what), "taken", "none"),
        Some(t) if t < deadline => Outcome::mismatch(
            &format!("{} interrupt taken before its deadline (us early)", what),
            0u64,
            (deadline - t) / tod_per_us,
        ),
        Some(_) => Outcome::Pass,
    }
}

/// A watchdog started with `timeout_s` may not expire before that.
pub fn watchdog_expiry(arrived_ms: u64, timeout_s: u64) -> Outcome {
    if arrived_ms < timeout_s * 1000 {
        return Outcome::mismatch(
            "watchdog expired early (ms after the start)",
            format!(">= {}", timeout_s * 1000).as_str(),
            arrived_ms,
        );
    }
    Outcome::Pass
}

/// The canary a buffer is filled with before a device writes into it:
/// varying with the offset and the seed, so no constant a lazy device
/// writes can pass for it.
pub fn canary(seed: u64, offset: usize) -> u8 {
    let x = seed ^ (offset as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x ^ x >> 29 ^ x >> 47) as u8
}

/// How many bytes of `n` fresh random bytes may equal the canary by
/// chance: the least `k` with P(more than `k` of `n` bytes match) below
/// 1e-9, each byte matching with probability 1/256. A pass never depends
/// on luck, and a device that leaves more than that unwritten fails: all
/// of 8 bytes, a fifth of 32, 5% of 256, 1% of 4096.
pub fn canary_matches_allowed(n: usize) -> usize {
    let p = 1.0 / 256.0;
    let q = 1.0 - p;
    // P(X = 0), then P(X = k+1) = P(X = k) (n-k)/(k+1) p/q.
    let mut pk = 1.0f64;
    for _ in 0..n {
        pk *= q;
    }
    let mut below = pk;
    let mut k = 0;
    while k < n && 1.0 - below > 1e-9 {
        pk *= (n - k) as f64 / (k + 1) as f64 * p / q;
        below += pk;
        k += 1;
    }
    k
}

/// Entropy written by a device into `buf`, which was filled with
/// [`canary`]`(seed, i)` and of which the device reports `reported` bytes
/// written: the reported range must be overwritten (bar chance matches)
/// and everything past it untouched.
pub fn entropy_fill(buf: &[u8], reported: usize, seed: u64) -> Result<(), String> {
    if reported > buf.len() {
        return Err(format!(
            "{} bytes reported written into a {}-byte buffer",
            reported,
            buf.len()
        ));
    }
    if reported == 0 {
        return Err(String::from("0 bytes reported written"));
    }
    if let Some(i) = (reported..buf.len()).find(|&i| buf[i] != canary(seed, i)) {
        return Err(format!(
            "byte {} past the reported length {} was written (0x{} where the canary was)",
            i,
            reported,
            crate::fmt::HexW(buf[i].into(), 2)
        ));
    }
    let unchanged: Vec<usize> = (0..reported)
        .filter(|&i| buf[i] == canary(seed, i))
        .collect();
    if unchanged.len() > canary_matches_allowed(reported) {
        return Err(format!(
            "{} of the {} reported bytes still hold the canary (at most {} by chance), first at offset {}",
            unchanged.len(),
            reported,
            canary_matches_allowed(reported),
            unchanged[0]
        ));
    }
    Ok(())
}

/// What exhausting a heap found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exhaustion {
    /// Bytes obtained before the first refusal.
    pub obtained: u64,
    /// Blocks obtained.
    pub blocks: usize,
}

/// Allocates blocks of `block` bytes until the heap refuses one, keeping
/// them in `blocks` (reserved by the caller, so that keeping them needs no
/// allocation), then frees them all. A heap of `free` bytes must refuse
/// before `blocks` is full (its capacity is more than `free` bytes'
/// worth), and must have given out most of what it has: a refusal while
/// more than two blocks plus 1/16 of it is still free is an early one.
/// `alloc` returns an address or None; `release` takes one back.
pub fn exhaust(
    free: u64,
    block: u64,
    blocks: &mut Vec<u64>,
    mut alloc: impl FnMut() -> Option<u64>,
    mut release: impl FnMut(u64),
) -> Result<Exhaustion, Outcome> {
    let mut refused = false;
    while blocks.len() < blocks.capacity() {
        match alloc() {
            Some(a) => blocks.push(a),
            None => {
                refused = true;
                break;
            }
        }
    }
    let got = Exhaustion {
        obtained: blocks.len() as u64 * block,
        blocks: blocks.len(),
    };
    // Last first: each block then joins the free space above it at once,
    // where a first-fit free list would be walked for every block.
    for a in blocks.drain(..).rev() {
        release(a);
    }
    if !refused {
        return Err(Outcome::mismatch(
            &format!(
                "allocating {}-byte blocks from a heap with {} bytes free",
                block, free
            ),
            "a refusal by the time the free bytes are used up",
            format!("{} bytes given out and no refusal", got.obtained).as_str(),
        ));
    }
    let slack = 2 * block + free / 16;
    if got.obtained + slack < free {
        return Err(Outcome::mismatch(
            &format!("heap refused a {}-byte block early", block),
            format!(">= {} of {} free bytes given out", free - slack, free).as_str(),
            got.obtained,
        ));
    }
    Ok(got)
}

/// What one virtio-ccw device did when asked for one revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevisionSeen {
    pub asked: u8,
    /// The revision the device settled on: `asked`, or lower if refused.
    pub got: u8,
    /// Brought to DRIVER_OK at `asked` in some configuration.
    pub driven: bool,
    /// The packed ring was offered at `asked`.
    pub packed_offered: bool,
}

/// Holds what a device did at each revision to how the host configured it
/// (`devices=` attributes: `max_revision`, `packed=`): every revision up to
/// the maximum is accepted (revision 0 not by a modern-only device), none
/// above it, and the packed ring is offered exactly when configured.
/// Without a configuration only what must hold anyway is checked: the
/// accepted revisions form one run from the lowest possible up, and a
/// modern-only device accepts no revision 0. Returns the failures.
pub fn virtio_revisions(
    configured: Option<crate::inventory::VirtioConfig>,
    modern_only: bool,
    seen: &[RevisionSeen],
) -> Vec<String> {
    let mut failures = Vec::new();
    let lowest = u8::from(modern_only);
    for s in seen {
        let driven_at_asked = s.got == s.asked && s.driven;
        if s.asked < lowest {
            if driven_at_asked {
                failures.push(format!(
                    "a modern-only device accepted revision {}",
                    s.asked
                ));
            }
            continue;
        }
        let Some(c) = configured else { continue };
        let want = s.asked.min(c.max_revision);
        if s.got != want {
            failures.push(format!(
                "asked for revision {}: expected {} (max_revision={}), got {}",
                s.asked, want, c.max_revision, s.got
            ));
        } else if s.got == s.asked && !s.driven {
            failures.push(format!(
                "revision {} accepted but never driven to DRIVER_OK",
                s.asked
            ));
        }
        if driven_at_asked && s.asked >= 1 && s.packed_offered != c.packed {
            failures.push(format!(
                "revision {}: the packed ring was {} though the host configured packed={}",
                s.asked,
                if s.packed_offered {
                    "offered"
                } else {
                    "not offered"
                },
                if c.packed { "on" } else { "off" }
            ));
        }
    }
    if configured.is_none() {
        let accepted = |r: u8| seen.iter().any(|s| s.asked == r && s.got == r && s.driven);
        if let Some(top) = (lowest..=2).rev().find(|&r| accepted(r)) {
            if let Some(gap) = (lowest..top).find(|&r| !accepted(r)) {
                failures.push(format!(
                    "revision {} refused while revision {} was accepted",
                    gap, top
                ));
            }
        }
    }
    failures
}

/// General-characteristics bit: multiple channel-subsystem images (MCSS-E).
pub const SCSC_MCSS: usize = 45;

/// What QEMU answers to Store Channel Subsystem Characteristics
/// (target/s390x/ioinst.c, the same from 7.2 to 10.2): a 0x0ff0-byte
/// response, general words 0x03000000 0x00079000 0 0x00080000 (bits 6, 7,
/// 45-48, 51 and 108) and CHSC words 0x40000000 0 0 0x00040000 (bits 1
/// and 109).
pub const QEMU_SCSC: crate::css::blocks::Characteristics = crate::css::blocks::Characteristics {
    length: 0x0ff0,
    code: 0x0001,
    general: [0x0300_0000, 0x0007_9000, 0, 0x0008_0000],
    chsc: [0x4000_0000, 0, 0, 0x0004_0000],
};

/// Store Channel Subsystem Characteristics: executed (code 1); on QEMU
/// exactly [`QEMU_SCSC`]; on any host, MCSS-E advertised when the host let
/// us enable it (CHSC Set Domain Attributes, at discovery).
pub fn scsc(got: &crate::css::blocks::Characteristics, qemu: bool, mcss_enabled: bool) -> Outcome {
    use crate::fmt::HexW;
    let words = |c: &crate::css::blocks::Characteristics| {
        format!(
            "length {} code {} general {} {} {} {} chsc {} {} {} {}",
            HexW(c.length.into(), 4),
            HexW(c.code.into(), 4),
            HexW(c.general[0].into(), 8),
            HexW(c.general[1].into(), 8),
            HexW(c.general[2].into(), 8),
            HexW(c.general[3].into(), 8),
            HexW(c.chsc[0].into(), 8),
            HexW(c.chsc[1].into(), 8),
            HexW(c.chsc[2].into(), 8),
            HexW(c.chsc[3].into(), 8)
        )
    };
    if got.code != 0x0001 {
        return Outcome::mismatch(
            "CHSC SCSC response code",
            HexW(1, 4),
            HexW(got.code.into(), 4),
        );
    }
    if qemu && *got != QEMU_SCSC {
        return Outcome::mismatch(
            "CHSC SCSC response (QEMU's characteristics)",
            words(&QEMU_SCSC).as_str(),
            words(got).as_str(),
        );
    }
    if mcss_enabled && !got.general_bit(SCSC_MCSS) {
        return Outcome::mismatch(
            "CHSC SCSC: MCSS-E (general bit 45) while the host let us enable it",
            "set",
            "clear",
        );
    }
    Outcome::Pass
}

/// Compares `got`, read from image offset `at`, with the pattern each
/// sector must hold: `expect(offset)` gives Some(pattern) where only that
/// one will do, None where A or B will (a writable stripe this check did
/// not write). Header bytes (0..32) are left out: the caller checks them.
/// A sector must hold one pattern whole: a torn or misplaced write shows.
/// Returns the first wrong byte as (offset, expected, got, pattern).
pub fn disk_sectors(
    seed: u64,
    at: u64,
    got: &[u8],
    sector: usize,
    expect: &dyn Fn(u64) -> Option<zvtest_contract::disk::Pattern>,
) -> Option<(u64, u8, u8, zvtest_contract::disk::Pattern)> {
    let mut want = alloc::vec![0u8; sector];
    for (i, chunk) in got.chunks(sector).enumerate() {
        let off = at + (i * sector) as u64;
        let want = &mut want[..chunk.len()];
        let skip = if off < zvtest_contract::disk::HEADER_LEN as u64 {
            zvtest_contract::disk::HEADER_LEN - off as usize
        } else {
            0
        };
        let first_bad = |p: zvtest_contract::disk::Pattern, want: &mut [u8]| {
            zvtest_contract::disk::fill(seed, p, off, want);
            (skip..chunk.len()).find(|&j| want[j] != chunk[j])
        };
        let bad = match expect(off) {
            Some(p) => first_bad(p, want).map(|j| (j, p)),
            None => match first_bad(zvtest_contract::disk::Pattern::Before, want) {
                None => None,
                Some(j) => first_bad(zvtest_contract::disk::Pattern::After, want)
                    .map(|_| (j, zvtest_contract::disk::Pattern::Before)),
            },
        };
        if let Some((j, p)) = bad {
            zvtest_contract::disk::fill(seed, p, off, want);
            return Some((off + j as u64, want[j], chunk[j], p));
        }
    }
    None
}

/// What one stress phase on one queue must have shown beyond its answers:
/// a polled phase (interrupts suppressed) got at most a few interrupts —
/// half the completions and two more allow for the ones already on their
/// way when suppression was asked for; a wrap phase wrapped the ring
/// index. The failure says which, for the queue named `queue`.
pub fn stress_phase(
    queue: &str,
    wrap: bool,
    polled: bool,
    s: &zvtest_contract::stress::QueueStats,
) -> Result<(), String> {
    if polled && s.interrupts > s.completed / 2 + 2 {
        return Err(crate::format!(
            "{} polled: {} interrupts for {} requests with interrupts suppressed",
            queue,
            s.interrupts,
            s.completed
        ));
    }
    if wrap && s.wraps == 0 {
        return Err(crate::format!(
            "{}: the ring index never wrapped in {} requests",
            queue,
            s.completed
        ));
    }
    Ok(())
}

/// What one queue of a `net.echo` round must show beyond its answers:
/// taken by interrupt (`polled` false), the host flagged the queue in the
/// indicators (`s.interrupts` counts those flags) whenever it used
/// anything; polled, and with `wrap`, what [`stress_phase`] asks.
pub fn echo_queue(
    queue: &str,
    (polled, wrap): (bool, bool),
    s: &zvtest_contract::stress::QueueStats,
) -> Result<(), String> {
    if !polled && s.completed > 0 && s.interrupts == 0 {
        return Err(crate::format!(
            "{} interrupts: {} buffers used, none flagged in the indicators for an interrupt",
            queue,
            s.completed
        ));
    }
    stress_phase(queue, wrap, polled, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_timer_interrupts_fail() {
        assert_eq!(
            timer_arrival("clock comparator", 1000, Some(1000), 4),
            Outcome::Pass
        );
        assert_eq!(
            timer_arrival("clock comparator", 1000, Some(5000), 4),
            Outcome::Pass
        );
        let Outcome::Fail(f) = timer_arrival("clock comparator", 8192, Some(4096), 4096) else {
            panic!("an interrupt before the deadline must fail")
        };
        assert_eq!(f.got.as_deref(), Some("1"));
        assert!(!timer_arrival("x", 1, None, 4).is_pass());
    }

    #[test]
    fn watchdog_may_not_expire_early() {
        assert!(watchdog_expiry(15_000, 15).is_pass());
        assert!(watchdog_expiry(15_900, 15).is_pass());
        // The old check let 14 s pass for a 15 s watchdog.
        assert!(!watchdog_expiry(14_000, 15).is_pass());
        assert!(!watchdog_expiry(14_999, 15).is_pass());
    }

    fn filled(len: usize, seed: u64) -> Vec<u8> {
        (0..len).map(|i| canary(seed, i)).collect()
    }

    /// xorshift bytes: what a working entropy device writes.
    fn random(buf: &mut [u8], mut x: u64) {
        for b in buf {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }

    #[test]
    fn entropy_written_as_reported_passes() {
        for (seed, len) in [(1u64, 256usize), (7, 8), (99, 4096), (3, 1)] {
            for trial in 0..200u64 {
                let mut b = filled(len + 32, seed);
                random(&mut b[..len], trial * 7919 + seed + 1);
                assert_eq!(entropy_fill(&b, len, seed), Ok(()), "seed {seed} len {len}");
            }
        }
    }

    #[test]
    fn a_device_that_writes_less_than_it_reports_fails() {
        let seed = 5;
        // One byte written, 256 reported: the old check passed this.
        let mut b = filled(300, seed);
        b[0] ^= 0xff;
        assert!(entropy_fill(&b, 256, seed)
            .unwrap_err()
            .contains("still hold the canary"));
        // Every other byte written.
        let mut b = filled(300, seed);
        let mut r = vec![0u8; 256];
        random(&mut r, 11);
        for i in (0..256).step_by(2) {
            b[i] = r[i] ^ if r[i] == canary(seed, i) { 1 } else { 0 };
        }
        assert!(entropy_fill(&b, 256, seed).is_err());
        // A constant written over the whole range is no canary: passes
        // the canary test only if it is random-looking, zeros are not.
        let mut b = filled(300, seed);
        b[..256].fill(0);
        let zeros_match = (0..256).filter(|&i| canary(seed, i) == 0).count();
        assert!(zeros_match <= canary_matches_allowed(256));
        assert_eq!(entropy_fill(&b, 256, seed), Ok(()));
    }

    #[test]
    fn writes_past_the_reported_length_fail() {
        let seed = 9;
        let mut b = filled(300, seed);
        random(&mut b[..100], 3);
        b[150] = !canary(seed, 150);
        let e = entropy_fill(&b, 100, seed).unwrap_err();
        assert!(
            e.starts_with("byte 150 past the reported length 100"),
            "{e}"
        );
        assert!(entropy_fill(&b, 301, seed)
            .unwrap_err()
            .contains("301 bytes reported"));
        assert!(entropy_fill(&b, 0, seed).is_err());
    }

    fn seen(asked: u8, got: u8, driven: bool, packed_offered: bool) -> RevisionSeen {
        RevisionSeen {
            asked,
            got,
            driven,
            packed_offered,
        }
    }

    fn config(max_revision: u8, packed: bool) -> Option<crate::inventory::VirtioConfig> {
        Some(crate::inventory::VirtioConfig {
            max_revision,
            packed,
        })
    }

    #[test]
    fn revisions_held_to_the_configuration() {
        let all = [
            seen(2, 2, true, false),
            seen(1, 1, true, false),
            seen(0, 0, true, false),
        ];
        assert!(virtio_revisions(config(2, false), false, &all).is_empty());
        assert!(virtio_revisions(None, false, &all).is_empty());
        // Revision 2 refused although max_revision is 2: the old check let it pass.
        let refused = [
            seen(2, 1, false, false),
            seen(1, 1, true, false),
            seen(0, 0, true, false),
        ];
        let f = virtio_revisions(config(2, false), false, &refused);
        assert_eq!(
            f,
            ["asked for revision 2: expected 2 (max_revision=2), got 1"]
        );
        // ... which is right for max_revision=1.
        assert!(virtio_revisions(config(1, false), false, &refused).is_empty());
        // Accepting a revision above max_revision.
        assert_eq!(virtio_revisions(config(1, false), false, &all).len(), 1);
        // Packed asked for and configured, but not offered: the old check let it pass.
        let f = virtio_revisions(config(2, true), false, &all);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].contains("not offered though the host configured packed=on"));
        // Offered though not configured.
        let packed = [
            seen(2, 2, true, true),
            seen(1, 1, true, true),
            seen(0, 0, true, false),
        ];
        assert!(virtio_revisions(config(2, true), false, &packed).is_empty());
        assert_eq!(virtio_revisions(config(2, false), false, &packed).len(), 2);
        // Modern-only: revision 0 must be refused, and is not expected.
        let modern = [
            seen(2, 2, true, false),
            seen(1, 1, true, false),
            seen(0, 0, false, false),
        ];
        assert!(virtio_revisions(config(2, false), true, &modern).is_empty());
        assert!(virtio_revisions(None, true, &modern).is_empty());
        let f = virtio_revisions(None, true, &all);
        assert_eq!(f, ["a modern-only device accepted revision 0"]);
    }

    #[test]
    fn without_a_configuration_the_accepted_revisions_form_one_run() {
        let gap = [
            seen(2, 2, true, false),
            seen(1, 1, false, false),
            seen(0, 0, true, false),
        ];
        assert_eq!(
            virtio_revisions(None, false, &gap),
            ["revision 1 refused while revision 2 was accepted"]
        );
        let max1 = [
            seen(2, 1, false, false),
            seen(1, 1, true, true),
            seen(0, 0, true, false),
        ];
        assert!(virtio_revisions(None, false, &max1).is_empty());
    }

    #[test]
    fn channel_subsystem_characteristics() {
        assert!(scsc(&QEMU_SCSC, true, true).is_pass());
        assert!(scsc(&QEMU_SCSC, false, true).is_pass());
        let mut flipped = QEMU_SCSC;
        flipped.general[1] ^= 0x0004_0000; // bit 45, MCSS-E
        let Outcome::Fail(f) = scsc(&flipped, true, false) else {
            panic!("a flipped bit must fail on QEMU")
        };
        assert_eq!(
            f.got.as_deref(),
            Some("length 0ff0 code 0001 general 03000000 00039000 00000000 00080000 chsc 40000000 00000000 00000000 00040000")
        );
        // Elsewhere only MCSS-E is held to what discovery saw.
        assert!(!scsc(&flipped, false, true).is_pass());
        assert!(scsc(&flipped, false, false).is_pass());
        let mut bad = QEMU_SCSC;
        bad.code = 3;
        assert!(!scsc(&bad, false, false).is_pass());
        assert!(
            QEMU_SCSC.general_bit(45) && QEMU_SCSC.general_bit(6) && !QEMU_SCSC.general_bit(44)
        );
    }

    #[test]
    fn chance_bound() {
        let k = canary_matches_allowed;
        assert!(k(1) <= 1 && k(8) <= 4, "{} {}", k(1), k(8));
        assert!((6..=12).contains(&k(256)), "{}", k(256));
        assert!(k(4096) < 4096 / 64, "{}", k(4096));
        // Monotonic.
        assert!((1..600).all(|n| k(n) <= k(n + 1)));
    }

    #[test]
    fn short_requests_cannot_pass_unwritten() {
        // Nothing written into 8 bytes reported; half of 32.
        let seed = 3;
        let b = filled(40, seed);
        assert!(entropy_fill(&b, 8, seed).is_err());
        let mut b = filled(40, seed);
        random(&mut b[..16], 5);
        assert!(entropy_fill(&b, 32, seed).is_err());
    }

    #[test]
    fn exhaustion_must_be_reached_and_not_early() {
        // A heap of 1000 blocks that refuses the 1001st.
        let mut given = 0u64;
        let mut freed = 0u64;
        let room = |free: u64| Vec::with_capacity((free / 64 + 2) as usize);
        let r = exhaust(
            64_000,
            64,
            &mut room(64_000),
            || {
                (given < 1000).then(|| {
                    given += 1;
                    given
                })
            },
            |_| freed += 1,
        );
        assert_eq!(
            r,
            Ok(Exhaustion {
                obtained: 64_000,
                blocks: 1000
            })
        );
        assert_eq!(freed, 1000, "every block goes back");
        // A heap that never refuses (the old check never found out).
        let mut n = 0u64;
        let Err(Outcome::Fail(f)) = exhaust(
            64_000,
            64,
            &mut room(64_000),
            || {
                n += 1;
                Some(n)
            },
            |_| (),
        ) else {
            panic!("a heap that never refuses must fail")
        };
        assert!(f.message.contains("64000 bytes free"), "{}", f.message);
        // A heap that refuses at half of what it claims to have.
        let mut m = 0u64;
        let r = exhaust(
            64_000,
            64,
            &mut room(64_000),
            || {
                (m < 500).then(|| {
                    m += 1;
                    m
                })
            },
            |_| (),
        );
        assert!(matches!(r, Err(Outcome::Fail(ref f)) if f.message.contains("early")));
    }

    #[test]
    fn disk_sectors_name_the_first_wrong_byte() {
        use zvtest_contract::disk::{fill, Pattern};
        let seed = 42;
        let mut data = vec![0u8; 4 * 512];
        fill(seed, Pattern::Before, 0, &mut data[..1024]);
        fill(seed, Pattern::After, 1024, &mut data[1024..]);
        data[..32].fill(0xee); // the header: the caller's
        let a_then_either = |o: u64| (o < 1024).then_some(Pattern::Before);
        assert_eq!(disk_sectors(seed, 0, &data, 512, &a_then_either), None);
        // B where only A will do.
        let all_a = |_| Some(Pattern::Before);
        let (off, _, _, p) = disk_sectors(seed, 0, &data, 512, &all_a).unwrap();
        assert_eq!((off, p), (1024, Pattern::Before));
        // A sector half A, half B: neither pattern whole.
        let mut torn = data.clone();
        fill(seed, Pattern::Before, 1024, &mut torn[1024..1280]);
        let bad = disk_sectors(seed, 0, &torn, 512, &a_then_either).unwrap();
        assert_eq!((bad.0, bad.3), (1024 + 256, Pattern::Before));
        // A flipped byte, read from an offset.
        let mut flipped = data[512..].to_vec();
        flipped[7] ^= 1;
        let (off, want, got, _) = disk_sectors(seed, 512, &flipped, 512, &a_then_either).unwrap();
        assert_eq!((off, want ^ got), (519, 1));
    }

    #[test]
    fn stress_phases_must_show_suppression_and_the_wrap() {
        let s = |completed, interrupts, wraps| zvtest_contract::stress::QueueStats {
            completed,
            interrupts,
            wraps,
            ..Default::default()
        };
        assert!(stress_phase("q0", false, true, &s(100, 52, 0)).is_ok());
        let e = stress_phase("q0", false, true, &s(100, 53, 0)).unwrap_err();
        assert!(e.contains("53 interrupts for 100 requests"), "{e}");
        assert!(stress_phase("q0", false, false, &s(100, 100, 0)).is_ok());
        let e = stress_phase("q1 rev 2", true, false, &s(66048, 10, 0)).unwrap_err();
        assert!(
            e.contains("q1 rev 2: the ring index never wrapped in 66048"),
            "{e}"
        );
        assert!(stress_phase("q1", true, false, &s(66048, 10, 1)).is_ok());
    }

    #[test]
    fn echo_queues_by_interrupt_must_be_flagged() {
        let s = |completed, interrupts, wraps| zvtest_contract::stress::QueueStats {
            completed,
            interrupts,
            wraps,
            ..Default::default()
        };
        assert!(echo_queue("rx0", (false, false), &s(64, 3, 0)).is_ok());
        let e = echo_queue("rx0 rev 2", (false, false), &s(64, 0, 0)).unwrap_err();
        assert!(
            e.contains("rx0 rev 2 interrupts: 64 buffers used, none flagged"),
            "{e}"
        );
        assert!(echo_queue("tx0", (false, false), &s(0, 0, 0)).is_ok());
        let e = echo_queue("rx0", (true, false), &s(64, 40, 0)).unwrap_err();
        assert!(e.contains("40 interrupts for 64 requests"), "{e}");
        let e = echo_queue("rx0", (false, true), &s(66048, 900, 0)).unwrap_err();
        assert!(e.contains("never wrapped"), "{e}");
        assert!(echo_queue("rx0", (false, true), &s(66048, 900, 1)).is_ok());
    }
}
