//! The pure part of the stress engine: the seeded generator every request
//! draws from, chain shapes, and the book of requests in flight. The
//! firmware's engine (firmware/src/virtio/stress.rs) drives queues with
//! them; the tests here drive both ring formats against the device models.
//!
//! Replay: request `n` of stream `s` draws only from
//! [`Rng::for_request`]`(seed, s, n)`, and requests are planned in number
//! order whatever order the device completes them in, so `seed=` and the
//! same selection replay a run request for request.

use alloc::vec::Vec;
use ufmt::{uDisplay, uWrite, Formatter};

use crate::disk::mix;

/// A SplitMix64 stream.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The stream of request `n` of stream `stream` (a device and queue)
    /// of a run with `seed`.
    pub fn for_request(seed: u64, stream: u64, n: u64) -> Self {
        Rng(mix(seed ^ mix(stream ^ 0x7374_7265_616d)) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `0..n` (n > 0; the bias is below 2^-32 for the ranges
    /// used here).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True `num` times in `den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
}

/// One element of a chain: the next `len` bytes of the request as the
/// device sees them (device-readable bytes first), `gap` bytes after the
/// previous element in memory (so elements start at any alignment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub len: u32,
    pub writable: bool,
    pub gap: u32,
}

/// What a device lets a chain be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShapeLimits {
    /// Elements per chain (the device's `seg_max` plus its fixed parts,
    /// and never more than the queue takes).
    pub max_elements: usize,
    /// The longest element (`size_max`), if the device has a limit.
    pub max_len: Option<u32>,
    /// The most bytes skipped between elements.
    pub max_gap: u32,
}

impl ShapeLimits {
    /// Three elements at most (header, payload, status), none apart: the
    /// shape a block layer sends, for the many cheap requests of an index
    /// wrap and of a benchmark.
    pub const LEAN: ShapeLimits = ShapeLimits {
        max_elements: 3,
        max_len: None,
        max_gap: 0,
    };

    /// Up to four elements (fewer on a smaller queue), any lengths, up to
    /// 64 bytes apart: the varied shape device suites stress with.
    pub fn varied(queue_size: u16) -> ShapeLimits {
        ShapeLimits {
            max_elements: usize::from(queue_size).min(4),
            max_len: None,
            max_gap: 64,
        }
    }
}

/// Cuts a request of `readable` device-readable bytes followed by
/// `writable` device-writable ones into elements: always at the boundary
/// between the two and at every offset in `cuts` (fixed parts such as a
/// header or a status byte that must be elements of their own), and at
/// random other offsets, up to `limits.max_elements` elements and with
/// none longer than `limits.max_len`. None when the limits cannot hold
/// the request (too many fixed cuts, or elements that must be longer).
pub fn shape(
    rng: &mut Rng,
    readable: u32,
    writable: u32,
    cuts: &[u32],
    limits: &ShapeLimits,
) -> Option<Vec<Piece>> {
    let mut pieces = Vec::new();
    shape_into(
        rng,
        readable,
        writable,
        cuts,
        &[],
        limits,
        &mut Vec::new(),
        &mut pieces,
    )
    .then_some(pieces)
}

/// [`shape`] into `pieces`, with `at` as scratch: for a caller that keeps
/// both between requests (the engine: no allocation per request). False
/// where [`shape`] gives None. Each range of `whole` (start, end) stays
/// one element: no cut falls inside it (a header a device takes only
/// whole; its ends belong in `cuts`).
#[allow(clippy::too_many_arguments)]
pub fn shape_into(
    rng: &mut Rng,
    readable: u32,
    writable: u32,
    cuts: &[u32],
    whole: &[(u32, u32)],
    limits: &ShapeLimits,
    at: &mut Vec<u32>,
    pieces: &mut Vec<Piece>,
) -> bool {
    pieces.clear();
    at.clear();
    let Some(total) = readable.checked_add(writable) else {
        return false;
    };
    if total == 0 || limits.max_elements == 0 {
        return false;
    }
    at.extend(
        cuts.iter()
            .copied()
            .chain([readable])
            .filter(|&c| c > 0 && c < total),
    );
    at.sort_unstable();
    at.dedup();
    // Elements too long for max_len are cut where they must be.
    if let Some(max) = limits.max_len.filter(|&m| m > 0) {
        let mut forced = Vec::new();
        let mut start = 0;
        for end in at.iter().copied().chain([total]) {
            let mut c = start + max;
            while c < end {
                forced.push(c);
                c += max;
            }
            start = end;
        }
        at.extend(forced);
        at.sort_unstable();
    }
    let inside = |c: u32| whole.iter().any(|&(s, e)| s < c && c < e);
    if at.len() + 1 > limits.max_elements || at.iter().any(|&c| inside(c)) {
        return false;
    }
    // Random extra cuts: how many, then where (distinct, inside).
    // Few elements mostly, many now and then: a log-uniform count.
    let room = (limits.max_elements - (at.len() + 1)) as u64;
    let span = 1u64 << rng.below(u64::from(64 - room.leading_zeros()) + 1);
    let extra = rng.below(span).min(room).min(u64::from(total - 1)) as usize;
    for _ in 0..extra {
        let c = 1 + rng.below(u64::from(total - 1)) as u32;
        if inside(c) {
            continue;
        }
        if let Err(i) = at.binary_search(&c) {
            at.insert(i, c);
        }
    }
    let mut start = 0;
    for &end in at.iter().chain([&total]) {
        let gap = match rng.below(4) {
            0 => 0,
            1 => rng.below(8) as u32,
            _ => rng.below(u64::from(limits.max_gap) + 1) as u32,
        };
        pieces.push(Piece {
            len: end - start,
            writable: start >= readable,
            gap,
        });
        start = end;
    }
    true
}

/// Bytes of memory a shape takes, gaps included.
pub fn footprint(pieces: &[Piece]) -> usize {
    pieces.iter().map(|p| p.len as usize + p.gap as usize).sum()
}

/// A device's answer that the book refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackError {
    /// The ring handed out a token that is still in flight.
    TokenInFlight {
        token: u16,
    },
    /// The device returned a token we have no request for.
    NotInFlight {
        token: u16,
    },
    TokenOutOfRange {
        token: u16,
        size: u16,
    },
}

impl uDisplay for TrackError {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match *self {
            TrackError::TokenInFlight { token } => {
                ufmt::uwrite!(f, "token {} handed out while still in flight", token)
            }
            TrackError::NotInFlight { token } => {
                ufmt::uwrite!(f, "token {} returned, but no request has it", token)
            }
            TrackError::TokenOutOfRange { token, size } => {
                ufmt::uwrite!(f, "token {} in a queue of {}", token, size)
            }
        }
    }
}

/// The requests in flight on one queue, by token, and what the queue has
/// seen.
pub struct Book<R> {
    slots: Vec<Option<R>>,
    in_flight: u16,
    pub stats: QueueStats,
}

impl<R> Book<R> {
    pub fn new(queue_size: u16) -> Self {
        let mut slots = Vec::new();
        slots.resize_with(usize::from(queue_size), || None);
        Book {
            slots,
            in_flight: 0,
            stats: QueueStats::default(),
        }
    }

    pub fn in_flight(&self) -> u16 {
        self.in_flight
    }

    /// Records `req` under `token`, just made available.
    pub fn start(&mut self, token: u16, req: R) -> Result<(), TrackError> {
        let size = self.slots.len() as u16;
        let slot = self
            .slots
            .get_mut(usize::from(token))
            .ok_or(TrackError::TokenOutOfRange { token, size })?;
        if slot.is_some() {
            return Err(TrackError::TokenInFlight { token });
        }
        *slot = Some(req);
        self.in_flight += 1;
        self.stats.requests += 1;
        self.stats.max_depth = self.stats.max_depth.max(self.in_flight);
        Ok(())
    }

    /// Takes back the request of `token`, which the device returned.
    pub fn finish(&mut self, token: u16) -> Result<R, TrackError> {
        let size = self.slots.len() as u16;
        let req = self
            .slots
            .get_mut(usize::from(token))
            .ok_or(TrackError::TokenOutOfRange { token, size })?
            .take()
            .ok_or(TrackError::NotInFlight { token })?;
        self.in_flight -= 1;
        self.stats.completed += 1;
        Ok(req)
    }

    /// The request in flight under `token`, if any.
    pub fn get(&self, token: u16) -> Option<&R> {
        self.slots.get(usize::from(token))?.as_ref()
    }

    /// The requests in flight.
    pub fn iter(&self) -> impl Iterator<Item = &R> {
        self.slots.iter().flatten()
    }
}

/// What one queue did under stress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Requests made available.
    pub requests: u64,
    /// Requests the device returned.
    pub completed: u64,
    /// Payload bytes moved (read or written).
    pub bytes: u64,
    /// Available-buffer notifications we sent.
    pub kicks: u64,
    /// Used-buffer interrupts that arrived.
    pub interrupts: u64,
    /// The most requests in flight at once.
    pub max_depth: u16,
    /// Times the 16-bit ring index wrapped.
    pub wraps: u64,
    pub elapsed_us: u64,
}

impl QueueStats {
    pub fn per_second(&self, n: u64) -> u64 {
        if self.elapsed_us == 0 {
            return 0;
        }
        (u128::from(n) * 1_000_000 / u128::from(self.elapsed_us)) as u64
    }

    pub fn add(&mut self, o: &QueueStats) {
        self.requests += o.requests;
        self.completed += o.completed;
        self.bytes += o.bytes;
        self.kicks += o.kicks;
        self.interrupts += o.interrupts;
        self.max_depth = self.max_depth.max(o.max_depth);
        self.wraps += o.wraps;
        self.elapsed_us += o.elapsed_us;
    }
}

impl uDisplay for QueueStats {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        ufmt::uwrite!(
            f,
            "{} requests, {} bytes, {} req/s, {} KiB/s, {} kicks, {} interrupts, max depth {}, {} index wraps, {} ms",
            self.completed,
            self.bytes,
            self.per_second(self.completed),
            self.per_second(self.bytes) / 1024,
            self.kicks,
            self.interrupts,
            self.max_depth,
            self.wraps,
            self.elapsed_us / 1000
        )
    }
}

/// The `percent`th percentile of ascending `sorted` by nearest rank: the
/// smallest value with at least `percent` % of the values at or below it
/// (a measured value, never an interpolated one). None for no values or a
/// percentage past 100.
pub fn nearest_rank(sorted: &[u64], percent: usize) -> Option<u64> {
    if sorted.is_empty() || percent > 100 {
        return None;
    }
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<u64> = (1..=64).map(|k| k * 10).collect();
        // 64 calls: the 10th percentile is the 7th value, the 90th the 58th.
        assert_eq!(nearest_rank(&v, 10), Some(70));
        assert_eq!(nearest_rank(&v, 90), Some(580));
        assert_eq!(nearest_rank(&v, 50), Some(320));
        assert_eq!(nearest_rank(&v, 0), Some(10));
        assert_eq!(nearest_rank(&v, 100), Some(640));
        assert_eq!(nearest_rank(&[5], 90), Some(5));
        assert_eq!(nearest_rank(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90), Some(9));
        assert_eq!(nearest_rank(&[], 50), None);
        assert_eq!(nearest_rank(&v, 101), None);
    }

    fn limits(max_elements: usize, max_len: Option<u32>) -> ShapeLimits {
        ShapeLimits {
            max_elements,
            max_len,
            max_gap: 64,
        }
    }

    #[test]
    fn shapes_cover_the_request_and_keep_the_rules() {
        let mut rng = Rng::new(5);
        for _ in 0..5000 {
            let r = rng.range(0, 5000) as u32;
            let w = rng.range(if r == 0 { 1 } else { 0 }, 5000) as u32;
            let max = rng.range(1, 40) as usize;
            let max_len = rng.chance(1, 3).then(|| rng.range(1, 4096) as u32);
            let cuts = [16, r + w - 1];
            let Some(p) = shape(&mut rng, r, w, &cuts, &limits(max, max_len)) else {
                continue;
            };
            assert!(p.len() <= max && !p.is_empty());
            assert_eq!(p.iter().map(|x| x.len).sum::<u32>(), r + w);
            assert!(p.iter().all(|x| x.len > 0 && x.gap <= 64));
            assert!(p.iter().all(|x| max_len.is_none_or(|m| x.len <= m)));
            // Readable first, and the boundary and fixed cuts are element edges.
            let mut at = 0;
            let mut edges = Vec::new();
            for x in &p {
                assert_eq!(x.writable, at >= r, "{p:?}");
                edges.push(at);
                at += x.len;
            }
            for c in [r, 16, r + w - 1] {
                assert!(c == 0 || c >= r + w || edges.contains(&c), "{c} {p:?}");
            }
        }
    }

    #[test]
    fn impossible_shapes_are_refused() {
        let mut rng = Rng::new(1);
        // Three fixed parts in two elements; 100 bytes of at most 10 in 5.
        assert!(shape(&mut rng, 16, 9, &[16, 24], &limits(2, None)).is_none());
        assert!(shape(&mut rng, 100, 0, &[], &limits(5, Some(10))).is_none());
        assert!(shape(&mut rng, 0, 0, &[], &limits(5, None)).is_none());
        let one = shape(&mut rng, 100, 0, &[], &limits(1, None)).unwrap();
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn whole_ranges_stay_one_element() {
        let mut rng = Rng::new(3);
        let (mut at, mut p) = (Vec::new(), Vec::new());
        let whole = [(0, 51), (51, 159)];
        for _ in 0..2000 {
            assert!(shape_into(
                &mut rng,
                51,
                108 + 4096,
                &[51, 159],
                &whole,
                &limits(20, None),
                &mut at,
                &mut p
            ));
            assert_eq!((p[0].len, p[1].len), (51, 108), "{p:?}");
        }
        // A cut the limits force inside a whole range: no shape.
        assert!(!shape_into(
            &mut rng,
            51,
            108,
            &[51],
            &whole,
            &limits(20, Some(32)),
            &mut at,
            &mut p
        ));
    }

    #[test]
    fn requests_replay_from_their_number() {
        let a: Vec<u64> = (0..4)
            .map(|_| Rng::for_request(9, 2, 77).next_u64())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::for_request(9, 2, 77).next_u64(),
            Rng::for_request(9, 2, 78).next_u64()
        );
        assert_ne!(
            Rng::for_request(9, 2, 77).next_u64(),
            Rng::for_request(9, 3, 77).next_u64()
        );
        let mut r = Rng::new(3);
        assert!((0..1000).all(|_| r.range(5, 9) >= 5 && r.range(5, 9) <= 9));
    }

    #[test]
    fn the_book_refuses_what_is_not_in_flight() {
        let mut b: Book<u32> = Book::new(4);
        b.start(1, 10).unwrap();
        b.start(2, 20).unwrap();
        assert_eq!(b.start(2, 21), Err(TrackError::TokenInFlight { token: 2 }));
        assert_eq!(
            b.start(4, 0),
            Err(TrackError::TokenOutOfRange { token: 4, size: 4 })
        );
        assert_eq!(b.finish(2), Ok(20));
        assert_eq!(b.finish(2), Err(TrackError::NotInFlight { token: 2 }));
        assert_eq!(b.finish(0), Err(TrackError::NotInFlight { token: 0 }));
        assert_eq!((b.in_flight(), b.stats.max_depth), (1, 2));
        assert_eq!(b.iter().copied().collect::<Vec<_>>(), [10]);
    }
}
