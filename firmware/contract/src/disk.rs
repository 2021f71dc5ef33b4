//! Scratch disks: what an image holds before a run (`cargo xtask disk`),
//! which parts a run may write and with what, and what the image must
//! hold after it.
//!
//! Every byte of the image is a function of the seed and its own offset,
//! so a byte in the wrong place, a lost write or a stale one shows as a
//! mismatch at that offset:
//!
//! - Bytes 0..32 are the header: [`MAGIC`], the seed and the image size
//!   (both big-endian). The firmware writes to a disk only if it finds
//!   this header with the seed and size it was told: a user's own disk,
//!   named as scratch by mistake, is left alone.
//! - Every other byte of the image holds pattern A ([`Pattern::Before`]).
//! - The image is cut in [`STRIPE`]-byte stripes. Some of them, chosen
//!   from the seed ([`writable_stripe`]), are the only places a run
//!   writes, and it writes them whole with pattern B
//!   ([`Pattern::After`]). Stripe 0 (the header's) never is one.
//!
//! After a complete run every byte of a writable stripe holds pattern B
//! and every other byte what it held before; [`first_mismatch`] says where
//! that is not so.

use crate::inventory::{parse_bus_id, BusId};
use crate::number::{digits, size_text, size_value};
use alloc::string::String;
use alloc::vec::Vec;
use ufmt::{uDisplay, uWrite, Formatter};

/// The header's first 16 bytes (version 1 of this layout).
pub const MAGIC: [u8; 16] = *b"zvtest-scratch/1";
/// Header bytes: magic, seed, size.
pub const HEADER_LEN: usize = 32;
/// The unit the writable part is chosen in: a multiple of every block size
/// a virtio disk can have (up to 64 KiB).
pub const STRIPE: u64 = 64 * 1024;
/// One stripe in `WRITABLE_ONE_IN` is writable, on average.
pub const WRITABLE_ONE_IN: u64 = 4;
/// The smallest image with room for the header and a writable stripe.
pub const MIN_SIZE: u64 = 2 * STRIPE;

/// Which of the two patterns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// A: what `cargo xtask disk` writes.
    Before,
    /// B: what a run writes into the writable stripes.
    After,
}

impl Pattern {
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Before => "A",
            Pattern::After => "B",
        }
    }

    fn key(self) -> u64 {
        match self {
            Pattern::Before => 0x4a5b_6c7d_8e9f_a0b1,
            Pattern::After => 0xb1a0_9f8e_7d6c_5b4a,
        }
    }
}

/// SplitMix64's finaliser: every input bit reaches every output bit.
pub const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Each 512-byte sector of a pattern starts from its own key, mixed from
/// the seed and the sector number, so a sector in the wrong place or from
/// the other pattern shows; the words inside it step from the key by an
/// odd constant, which costs one addition a word (the firmware checks
/// every byte it reads, under TCG too).
#[inline]
pub fn sector_key(seed: u64, pattern: Pattern, sector: u64) -> u64 {
    mix(seed ^ pattern.key() ^ sector.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

const STEP: u64 = 0xd1b5_4a32_d192_ed03;
const WORDS_PER_SECTOR: u64 = 64;

/// The pattern's 8 bytes at the 8-aligned image offset `8 * word`, as a
/// big-endian number (byte `8 * word` is its most significant byte).
#[inline]
pub fn word(seed: u64, pattern: Pattern, word: u64) -> u64 {
    let key = sector_key(seed, pattern, word / WORDS_PER_SECTOR);
    key.wrapping_add((word % WORDS_PER_SECTOR + 1).wrapping_mul(STEP))
}

/// The pattern's words from the 8-aligned image offset `offset` on, in
/// order: one key per sector, one addition per word.
pub struct Words {
    seed: u64,
    pattern: Pattern,
    word: u64,
    next: u64,
}

impl Words {
    pub fn new(seed: u64, pattern: Pattern, offset: u64) -> Self {
        let word = offset / 8;
        Words {
            seed,
            pattern,
            word,
            next: self::word(seed, pattern, word),
        }
    }
}

impl Iterator for Words {
    type Item = u64;

    #[inline]
    fn next(&mut self) -> Option<u64> {
        let w = self.next;
        self.word += 1;
        self.next = if self.word.is_multiple_of(WORDS_PER_SECTOR) {
            word(self.seed, self.pattern, self.word)
        } else {
            w.wrapping_add(STEP)
        };
        Some(w)
    }
}

/// The first byte of `got` (image bytes from `offset`) that is not
/// `pattern`'s, if any: a comparison without a buffer of expected bytes.
pub fn mismatch(seed: u64, pattern: Pattern, offset: u64, got: &[u8]) -> Option<usize> {
    let mut i = 0usize;
    let mut at = offset;
    while i < got.len() {
        let sector = at / 512;
        let key = sector_key(seed, pattern, sector);
        let end = ((sector + 1) * 512 - at).min((got.len() - i) as u64) as usize;
        let part = &got[i..i + end];
        let head = ((8 - at % 8) % 8) as usize;
        let head = head.min(part.len());
        let word_at = |a: u64| key.wrapping_add((a / 8 % WORDS_PER_SECTOR + 1).wrapping_mul(STEP));
        for (j, b) in part[..head].iter().enumerate() {
            let a = at + j as u64;
            if word_at(a).to_be_bytes()[(a % 8) as usize] != *b {
                return Some(i + j);
            }
        }
        let body = &part[head..];
        let mut w = word_at(at + head as u64);
        let mut chunks = body.chunks_exact(8);
        for (k, c) in chunks.by_ref().enumerate() {
            if u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) != w {
                let first = c.iter().zip(w.to_be_bytes()).position(|(x, y)| *x != y);
                return Some(i + head + 8 * k + first.unwrap_or(0));
            }
            w = w.wrapping_add(STEP);
        }
        let tail = chunks.remainder();
        let tail_at = at + (part.len() - tail.len()) as u64;
        for (j, b) in tail.iter().enumerate() {
            let a = tail_at + j as u64;
            if word_at(a).to_be_bytes()[(a % 8) as usize] != *b {
                return Some(i + part.len() - tail.len() + j);
            }
        }
        i += end;
        at += end as u64;
    }
    None
}

/// The pattern's byte at image offset `offset` (the header aside).
pub fn byte(seed: u64, pattern: Pattern, offset: u64) -> u8 {
    word(seed, pattern, offset / 8).to_be_bytes()[(offset % 8) as usize]
}

/// The header of an image of `size` bytes for `seed`.
pub fn header(seed: u64, size: u64) -> [u8; HEADER_LEN] {
    let mut h = [0; HEADER_LEN];
    h[..16].copy_from_slice(&MAGIC);
    h[16..24].copy_from_slice(&seed.to_be_bytes());
    h[24..32].copy_from_slice(&size.to_be_bytes());
    h
}

/// What the first bytes of a disk say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderSays {
    /// A scratch image for this seed and size.
    Scratch,
    /// Not a scratch image (no magic): somebody's disk.
    NotScratch,
    /// A scratch image for another seed or size.
    Other { seed: u64, size: u64 },
}

/// Reads the header in `first` (at least [`HEADER_LEN`] bytes of the
/// disk's start) against the seed and size a run was told.
pub fn read_header(first: &[u8], seed: u64, size: u64) -> HeaderSays {
    if first.len() < HEADER_LEN || first[..16] != MAGIC {
        return HeaderSays::NotScratch;
    }
    let num = |r: core::ops::Range<usize>| {
        let mut b = [0; 8];
        b.copy_from_slice(&first[r]);
        u64::from_be_bytes(b)
    };
    let (s, z) = (num(16..24), num(24..32));
    if (s, z) == (seed, size) {
        HeaderSays::Scratch
    } else {
        HeaderSays::Other { seed: s, size: z }
    }
}

/// Whether stripe `stripe` of an image of `size` bytes for `seed` is one a
/// run writes: a whole stripe inside the image, not stripe 0.
pub fn writable_stripe(seed: u64, size: u64, stripe: u64) -> bool {
    stripe != 0
        && (stripe + 1) * STRIPE <= size
        && mix(seed ^ 0x5742_5354_5249_5045 ^ stripe).is_multiple_of(WRITABLE_ONE_IN)
}

/// The writable stripes of an image, in order.
pub fn writable_stripes(seed: u64, size: u64) -> impl Iterator<Item = u64> {
    (1..size / STRIPE).filter(move |&s| writable_stripe(seed, size, s))
}

/// What the image holds at `offset`: before a run (`after_run` false) or
/// after a complete one.
pub fn expected_pattern(seed: u64, size: u64, offset: u64, after_run: bool) -> Pattern {
    if after_run && writable_stripe(seed, size, offset / STRIPE) {
        Pattern::After
    } else {
        Pattern::Before
    }
}

/// Fills `out` with `pattern`'s bytes from image offset `offset` (the
/// header's bytes included, where `out` covers them: see [`fill_image`]).
pub fn fill(seed: u64, pattern: Pattern, offset: u64, out: &mut [u8]) {
    let mut at = offset;
    let mut rest = out;
    while !rest.is_empty() {
        let from = (at % 8) as usize;
        if from == 0 && rest.len() >= 8 {
            // Whole words to the end of this sector: one key, then steps.
            let mut w = word(seed, pattern, at / 8);
            let left = (512 - at % 512) as usize;
            let n = left.min(rest.len()) / 8 * 8;
            for c in rest[..n].chunks_exact_mut(8) {
                c.copy_from_slice(&w.to_be_bytes());
                w = w.wrapping_add(STEP);
            }
            rest = &mut rest[n..];
            at += n as u64;
            continue;
        }
        let w = word(seed, pattern, at / 8).to_be_bytes();
        let n = (8 - from).min(rest.len());
        rest[..n].copy_from_slice(&w[from..from + n]);
        rest = &mut rest[n..];
        at += n as u64;
    }
}

/// Fills `out` with what an image of `size` bytes for `seed` holds from
/// `offset` (header included), before a run or after a complete one.
pub fn fill_image(seed: u64, size: u64, offset: u64, after_run: bool, out: &mut [u8]) {
    let mut at = offset;
    let mut rest = &mut out[..];
    while !rest.is_empty() {
        let stripe_end = (at / STRIPE + 1) * STRIPE;
        let n = usize::try_from(stripe_end - at).map_or(rest.len(), |n| n.min(rest.len()));
        let pattern = expected_pattern(seed, size, at, after_run);
        let (now, later) = rest.split_at_mut(n);
        fill(seed, pattern, at, now);
        rest = later;
        at += n as u64;
    }
    if offset < HEADER_LEN as u64 {
        let h = header(seed, size);
        let from = offset as usize;
        let n = (HEADER_LEN - from).min(out.len());
        out[..n].copy_from_slice(&h[from..from + n]);
    }
}

/// A byte that is not what it should be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// Image offset.
    pub offset: u64,
    pub expected: u8,
    pub got: u8,
    /// Which pattern the byte should hold (None: a header byte).
    pub pattern: Option<Pattern>,
}

/// The first byte of `got` (image bytes from `offset`) that differs from
/// what the image should hold, before a run or after a complete one.
pub fn first_mismatch(
    seed: u64,
    size: u64,
    offset: u64,
    after_run: bool,
    got: &[u8],
) -> Option<Mismatch> {
    let mut want = [0u8; 4096];
    let mut at = offset;
    for chunk in got.chunks(want.len()) {
        let want = &mut want[..chunk.len()];
        fill_image(seed, size, at, after_run, want);
        if let Some(i) = want.iter().zip(chunk).position(|(a, b)| a != b) {
            let o = at + i as u64;
            return Some(Mismatch {
                offset: o,
                expected: want[i],
                got: chunk[i],
                pattern: (o >= HEADER_LEN as u64)
                    .then(|| expected_pattern(seed, size, o, after_run)),
            });
        }
        at += chunk.len() as u64;
    }
    None
}

/// A disk the host configured: a virtio-blk device, or one LUN of a
/// virtio-scsi controller. Written `fe.0.0001` or `fe.0.0006/0/1`
/// (bus id / target / LUN).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DiskId {
    pub bus: BusId,
    /// SCSI target and LUN; None for a virtio-blk device, and in
    /// `scratch=` for every LUN of a controller.
    pub lun: Option<(u8, u16)>,
}

impl DiskId {
    /// Whether `self`, as named in `scratch=`, covers `disk`.
    pub fn covers(&self, disk: &DiskId) -> bool {
        self.bus == disk.bus && (self.lun.is_none() || self.lun == disk.lun)
    }
}

impl core::str::FromStr for DiskId {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let mut parts = s.split('/');
        let bus = parse_bus_id(parts.next().ok_or(())?).ok_or(())?;
        let lun = match (parts.next(), parts.next(), parts.next()) {
            (None, _, _) => None,
            (Some(t), Some(l), None) => Some((
                u8::try_from(digits(t, 10).ok_or(())?).map_err(|_| ())?,
                u16::try_from(digits(l, 10).ok_or(())?).map_err(|_| ())?,
            )),
            _ => return Err(()),
        };
        Ok(DiskId { bus, lun })
    }
}

impl uDisplay for DiskId {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        ufmt::uwrite!(f, "{}", self.bus)?;
        if let Some((t, l)) = self.lun {
            ufmt::uwrite!(f, "/{}/{}", t, l)?;
        }
        Ok(())
    }
}

impl core::fmt::Display for DiskId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.bus)?;
        if let Some((t, l)) = self.lun {
            write!(f, "/{t}/{l}")?;
        }
        Ok(())
    }
}

/// How the host configured a disk (`disks=` item
/// `ID:SIZE[:bs=N][:queues=N][:ro][:null][:serial=WORD]`): the firmware holds
/// the device to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskConfig {
    pub id: DiskId,
    /// Bytes.
    pub size: u64,
    /// Logical block size (QEMU's `logical_block_size`).
    pub block_size: u32,
    /// Request queues (QEMU's `num-queues` of virtio-blk).
    pub queues: u16,
    pub read_only: bool,
    /// A device that keeps nothing (QEMU's `null-co`): no header, reads
    /// unchecked; written only if also named scratch.
    pub null: bool,
    /// What GET_ID / the unit serial number must answer.
    pub serial: Option<String>,
}

impl DiskConfig {
    pub fn new(id: DiskId, size: u64) -> Self {
        DiskConfig {
            id,
            size,
            block_size: 512,
            queues: 1,
            read_only: false,
            null: false,
            serial: None,
        }
    }

    /// Parses one `disks=` item.
    pub fn parse(item: &str) -> Option<Self> {
        let mut fields = item.split(':');
        let id: DiskId = fields.next()?.parse().ok()?;
        let size = size_value(fields.next()?)?;
        let mut d = DiskConfig::new(id, size);
        let mut seen: Vec<&str> = Vec::new();
        for attr in fields {
            let (key, value) = attr.split_once('=').unwrap_or((attr, ""));
            if seen.contains(&key) {
                return None;
            }
            seen.push(key);
            match (key, value) {
                ("bs", v) => {
                    d.block_size = u32::try_from(digits(v, 10)?).ok()?;
                    if !d.block_size.is_power_of_two() || !(512..=65536).contains(&d.block_size) {
                        return None;
                    }
                }
                ("queues", v) => {
                    d.queues = u16::try_from(digits(v, 10)?).ok().filter(|&q| q > 0)?
                }
                ("ro", "") => d.read_only = true,
                ("null", "") => d.null = true,
                ("serial", v) if valid_serial(v) => d.serial = Some(String::from(v)),
                _ => return None,
            }
        }
        Some(d)
    }

    /// The item [`DiskConfig::parse`] reads back as `self`.
    pub fn item(&self) -> String {
        let mut s = crate::format!("{}:{}", self.id, size_text(self.size).as_str());
        if self.block_size != 512 {
            s.push_str(&crate::format!(":bs={}", self.block_size));
        }
        if self.queues != 1 {
            s.push_str(&crate::format!(":queues={}", self.queues));
        }
        if self.read_only {
            s.push_str(":ro");
        }
        if self.null {
            s.push_str(":null");
        }
        if let Some(serial) = &self.serial {
            s.push_str(":serial=");
            s.push_str(serial);
        }
        s
    }
}

/// A serial number QEMU passes through unchanged and the command line can
/// carry: 1 to 20 letters, digits, `-` and `_`.
pub fn valid_serial(s: &str) -> bool {
    (1..=20).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_items_read_back() {
        let d = DiskConfig::parse("fe.0.0006/0/1:64M:bs=4096:queues=4:ro:serial=zv-1").unwrap();
        assert_eq!(d.id.lun, Some((0, 1)));
        assert_eq!(
            (d.size, d.block_size, d.queues, d.read_only),
            (64 << 20, 4096, 4, true)
        );
        assert_eq!(d.serial.as_deref(), Some("zv-1"));
        assert_eq!(DiskConfig::parse(&d.item()), Some(d));
        let plain = DiskConfig::parse("fe.0.0001:1000").unwrap();
        assert_eq!(plain, DiskConfig::new("fe.0.0001".parse().unwrap(), 1000));
        assert_eq!(plain.item(), "fe.0.0001:1000");
        for bad in [
            "fe.0.0001",
            "fe.0.0001:0",
            "fe.0.0001:64M:bs=1000",
            "fe.0.0001:64M:ro:ro",
            "fe.0.0001:64M:queues=0",
            "fe.0.0001:64M:serial=a b",
            "fe.0.0001:64M:serial=",
            "fe.0.0001:64M:rw",
            "fe.0.0001/1:64M",
            "fe.0.0001/1/2/3:64M",
            "fe.0.0001:-64M",
        ] {
            assert_eq!(DiskConfig::parse(bad), None, "{bad}");
        }
        let all: DiskId = "fe.0.0006".parse().unwrap();
        let one: DiskId = "fe.0.0006/0/1".parse().unwrap();
        assert!(all.covers(&one) && one.covers(&one));
        assert!(!one.covers(&"fe.0.0006/0/2".parse().unwrap()));
    }

    #[test]
    fn bytes_words_and_fills_agree() {
        let seed = 0x1234;
        let mut buf = [0u8; 100];
        for start in [0u64, 1, 7, 8, 4093] {
            fill(seed, Pattern::After, start, &mut buf);
            for (i, b) in buf.iter().enumerate() {
                assert_eq!(*b, byte(seed, Pattern::After, start + i as u64));
            }
        }
        // Position-dependent, seed-dependent, pattern-dependent.
        assert_ne!(
            word(seed, Pattern::Before, 1),
            word(seed, Pattern::Before, 2)
        );
        assert_ne!(
            word(seed, Pattern::Before, 1),
            word(seed + 1, Pattern::Before, 1)
        );
        assert_ne!(
            word(seed, Pattern::Before, 1),
            word(seed, Pattern::After, 1)
        );
    }

    #[test]
    fn words_run_as_fill_lays_them() {
        let mut b = vec![0u8; 2048];
        fill(5, Pattern::After, 1024, &mut b);
        for (i, w) in Words::new(5, Pattern::After, 1024).take(256).enumerate() {
            assert_eq!(w.to_be_bytes(), b[8 * i..8 * i + 8], "word {i}");
        }
    }

    #[test]
    fn mismatch_agrees_with_fill_at_any_offset() {
        let seed = 0xabc;
        let mut buf = vec![0u8; 3000];
        for start in [0u64, 3, 8, 509, 512, 4093] {
            for len in [0usize, 1, 7, 8, 9, 511, 512, 513, 3000] {
                let b = &mut buf[..len];
                fill(seed, Pattern::Before, start, b);
                assert_eq!(mismatch(seed, Pattern::Before, start, b), None);
                assert_eq!(
                    (len > 0)
                        .then(|| mismatch(seed, Pattern::After, start, b))
                        .flatten(),
                    (len > 0).then_some(0).filter(|_| {
                        // Almost surely the first byte differs between patterns.
                        byte(seed, Pattern::Before, start) != byte(seed, Pattern::After, start)
                    })
                );
                for at in [0, len / 2, len.saturating_sub(1)] {
                    if at < len {
                        b[at] ^= 4;
                        assert_eq!(
                            mismatch(seed, Pattern::Before, start, b),
                            Some(at),
                            "{start} {len} {at}"
                        );
                        b[at] ^= 4;
                    }
                }
            }
        }
        // A sector in another sector's place differs from its first word.
        let mut two = vec![0u8; 1024];
        fill(seed, Pattern::Before, 0, &mut two);
        let first = two[..512].to_vec();
        two[512..].copy_from_slice(&first);
        assert_eq!(
            mismatch(seed, Pattern::Before, 0, &two).map(|i| i / 8),
            Some(64)
        );
    }

    #[test]
    fn the_header_names_seed_and_size() {
        let size = 8 * STRIPE;
        let mut img = vec![0u8; size as usize];
        fill_image(7, size, 0, false, &mut img);
        assert_eq!(read_header(&img, 7, size), HeaderSays::Scratch);
        assert_eq!(
            read_header(&img, 8, size),
            HeaderSays::Other { seed: 7, size }
        );
        assert_eq!(read_header(&img[..31], 7, size), HeaderSays::NotScratch);
        let mut other = img.clone();
        other[3] ^= 1;
        assert_eq!(read_header(&other, 7, size), HeaderSays::NotScratch);
        assert_eq!(first_mismatch(7, size, 0, false, &img), None);
        let m = first_mismatch(7, size, 0, false, &other).unwrap();
        assert_eq!((m.offset, m.pattern), (3, None));
    }

    #[test]
    fn a_flipped_byte_is_found_where_it_is() {
        let size = 16 * STRIPE;
        let seed = 99;
        let mut img = vec![0u8; size as usize];
        fill_image(seed, size, 0, false, &mut img);
        for at in [32usize, 4095, 65536, size as usize - 1] {
            let mut bad = img.clone();
            bad[at] ^= 0x40;
            let m = first_mismatch(seed, size, 0, false, &bad).unwrap();
            assert_eq!((m.offset, m.got ^ m.expected), (at as u64, 0x40));
            assert_eq!(m.pattern, Some(Pattern::Before));
        }
        // Checked piecewise from any offset, as a verifier reading in chunks.
        assert_eq!(
            first_mismatch(seed, size, 1000, false, &img[1000..5000]),
            None
        );
    }

    #[test]
    fn after_a_run_writable_stripes_hold_b_and_nothing_else_changes() {
        let size = 64 * STRIPE + 512; // a partial last stripe is never written
        for seed in [1u64, 2, 3, 0xdead_beef] {
            let stripes: Vec<u64> = writable_stripes(seed, size).collect();
            assert!(!stripes.is_empty() && !stripes.contains(&0));
            assert!(stripes.len() < 64, "{seed}: {} of 64", stripes.len());
            assert!(stripes.iter().all(|s| (s + 1) * STRIPE <= size));
            let mut img = vec![0u8; size as usize];
            fill_image(seed, size, 0, false, &mut img);
            for &s in &stripes {
                let at = (s * STRIPE) as usize;
                fill(
                    seed,
                    Pattern::After,
                    s * STRIPE,
                    &mut img[at..at + STRIPE as usize],
                );
            }
            assert_eq!(first_mismatch(seed, size, 0, true, &img), None);
            assert!(first_mismatch(seed, size, 0, false, &img).is_some());
            // A write that never landed, and one that landed one sector off.
            let s = stripes[0];
            let mut lost = img.clone();
            let at = (s * STRIPE) as usize + 512;
            fill(seed, Pattern::Before, at as u64, &mut lost[at..at + 512]);
            let m = first_mismatch(seed, size, 0, true, &lost).unwrap();
            assert_eq!((m.offset, m.pattern), (at as u64, Some(Pattern::After)));
            let mut shifted = img.clone();
            let src = img[at..at + 512].to_vec();
            shifted[at + 512..at + 1024].copy_from_slice(&src);
            let m = first_mismatch(seed, size, 0, true, &shifted).unwrap();
            assert_eq!(m.offset / 8, (at as u64 + 512) / 8);
        }
    }
}
