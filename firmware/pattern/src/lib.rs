//! The scratch-disk pattern: every byte of an image a function of the
//! seed and its offset (zvtest-contract's `disk` module says what the
//! layout means and re-exports all of this).
//!
//! A crate of its own so that it alone is built optimised in the host's
//! debug profile (filling and checking images of up to gigabytes, about
//! ten times slower unoptimised), while the rest of the contract, its
//! property tests included, builds quickly.

#![no_std]

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
