//! Stress traffic for a virtio-blk device and what its answers must be.
//!
//! The medium is a scratch image (contract `disk`): pattern A everywhere
//! but the header, pattern B wherever we wrote. Writes go only into the
//! seed's writable stripes of a disk we may write; a per-block bitmap says
//! which blocks hold B, so every read is checked against exactly what must
//! be there. A disk that is not a scratch image of this seed gets reads
//! whose status is checked, and nothing else.

use crate::dma::DmaMemory;
use crate::format;
use crate::virtio::devices::blk::{self, header, Order, StatusByte, HEADER_LEN, SECTOR};
use crate::virtio::stress::{Plan, Rng, Workload};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use zvtest_contract::disk::{self, Pattern, STRIPE};
use zvtest_contract::fmt::Hex;

const HEADER_LEN_U32: u32 = HEADER_LEN as u32;

/// What we know of a disk's contents.
pub struct Medium {
    pub seed: u64,
    /// Bytes.
    pub size: u64,
    pub block: u32,
    pub order: Order,
    /// It holds the scratch pattern of `seed` (its header says so).
    pub patterned: bool,
    /// We may write it: patterned, named scratch, not read-only.
    pub writable: bool,
    /// The writable stripes, in order.
    pub stripes: Vec<u64>,
    /// Blocks that hold pattern B, one bit each.
    written: Vec<u64>,
    /// Blocks a failed write may have changed in part: what they hold is
    /// unknown until a write succeeds there, so reads are not compared.
    unknown: Vec<u64>,
    /// What GET_ID must answer, where the host said.
    pub serial: Option<String>,
    /// Blocks of the writable stripes we have not written may hold B an
    /// earlier check wrote (scsi.commands): reads there take A or B.
    pub earlier_b: bool,
    /// Failures name the block (a LUN's) rather than the 512-byte sector.
    pub by_block: bool,
}

impl Medium {
    pub fn new(
        seed: u64,
        size: u64,
        block: u32,
        order: Order,
        patterned: bool,
        writable: bool,
    ) -> Self {
        let blocks = size / u64::from(block);
        let stripes = if writable {
            disk::writable_stripes(seed, size).collect()
        } else {
            Vec::new()
        };
        Medium {
            seed,
            size,
            block,
            order,
            patterned,
            writable,
            stripes,
            written: vec![0; blocks.div_ceil(64) as usize],
            unknown: vec![0; blocks.div_ceil(64) as usize],
            serial: None,
            earlier_b: false,
            by_block: false,
        }
    }

    pub fn blocks(&self) -> u64 {
        self.size / u64::from(self.block)
    }

    fn blocks_per_stripe(&self) -> u64 {
        STRIPE / u64::from(self.block)
    }

    pub fn is_written(&self, block: u64) -> bool {
        self.written[(block / 64) as usize] & (1 << (block % 64)) != 0
    }

    pub fn mark_written(&mut self, block: u64, n: u32) {
        for b in block..block + u64::from(n) {
            self.written[(b / 64) as usize] |= 1 << (b % 64);
            self.unknown[(b / 64) as usize] &= !(1 << (b % 64));
        }
    }

    /// Whether a failed write left `block` unknown.
    pub fn is_unknown(&self, block: u64) -> bool {
        self.unknown[(block / 64) as usize] & (1 << (block % 64)) != 0
    }

    /// `n` blocks from `block` a write failed on: each may hold what it
    /// held, what the write carried, or a mix.
    pub fn mark_unknown(&mut self, block: u64, n: u32) {
        for b in block..block + u64::from(n) {
            self.unknown[(b / 64) as usize] |= 1 << (b % 64);
        }
    }

    /// Blocks of writable stripes that do not hold B yet.
    pub fn unwritten(&self) -> u64 {
        let per = self.blocks_per_stripe();
        self.stripes
            .iter()
            .map(|s| {
                (s * per..(s + 1) * per)
                    .filter(|&b| !self.is_written(b))
                    .count() as u64
            })
            .sum()
    }

    /// What `n` blocks from `block` must hold.
    pub fn expected(&self, block: u64, out: &mut [u8]) {
        let bs = self.block as usize;
        for (i, chunk) in out.chunks_mut(bs).enumerate() {
            let b = block + i as u64;
            let offset = b * u64::from(self.block);
            if self.is_written(b) {
                disk::fill(self.seed, Pattern::After, offset, chunk);
            } else {
                disk::fill_image(self.seed, self.size, offset, false, chunk);
            }
        }
    }

    /// Checks `got`, read from `block` on, against what must be there.
    pub fn check_read(&self, block: u64, got: &[u8]) -> Result<(), String> {
        if !self.patterned {
            return Ok(());
        }
        let bs = self.block as usize;
        for (i, chunk) in got.chunks(bs).enumerate() {
            let b = block + i as u64;
            let offset = b * u64::from(self.block);
            if self.is_unknown(b) {
                continue;
            }
            let bad = if offset < disk::HEADER_LEN as u64 {
                // The header's block: the slow way, with what must be there.
                let mut want = vec![0u8; chunk.len()];
                self.expected(b, &mut want);
                want.iter().zip(chunk).position(|(a, c)| a != c)
            } else {
                disk::mismatch(self.seed, self.pattern_of(b), offset, chunk).filter(|_| {
                    !self.may_hold_earlier_b(b)
                        || disk::mismatch(self.seed, Pattern::After, offset, chunk).is_some()
                })
            };
            if let Some(j) = bad {
                return Err(self.describe(b, chunk, j, got.len()));
            }
        }
        Ok(())
    }

    /// Whether `block` may hold B we did not write (see `earlier_b`).
    fn may_hold_earlier_b(&self, block: u64) -> bool {
        self.earlier_b
            && self.writable
            && !self.is_written(block)
            && disk::writable_stripe(self.seed, self.size, block / self.blocks_per_stripe())
    }

    fn pattern_of(&self, block: u64) -> Pattern {
        if self.is_written(block) {
            Pattern::After
        } else {
            Pattern::Before
        }
    }

    /// The report of a wrong byte `j` of block `b`'s `chunk`.
    fn describe(&self, b: u64, chunk: &[u8], j: usize, read: usize) -> String {
        let mut want = vec![0u8; chunk.len()];
        self.expected(b, &mut want);
        let offset = b * u64::from(self.block) + j as u64;
        let pattern = if offset < disk::HEADER_LEN as u64 {
            "header"
        } else {
            self.pattern_of(b).name()
        };
        let differ = want.iter().zip(chunk).filter(|(a, c)| a != c).count();
        let (unit, size) = if self.by_block {
            ("block", u64::from(self.block))
        } else {
            ("sector", SECTOR)
        };
        format!(
            "{} {} byte {} (image offset {}): expected {} (pattern {}), got {}; {} of the block's {} bytes differ ({} read)",
            unit,
            offset / size,
            offset % size,
            Hex(offset),
            Hex(u64::from(want[j])),
            pattern,
            Hex(u64::from(chunk[j])),
            differ,
            chunk.len(),
            read
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    Flush,
    /// GET_ID: answered from the device's configuration, no I/O.
    GetId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Req {
    pub op: Op,
    pub block: u64,
    pub blocks: u32,
    /// The request's number in its run (what replays it).
    pub n: u64,
}

/// A read or write the device answered IOERR where
/// [`Traffic::record_device_errors`] is on: an answer a disk may give (a
/// medium error) that fails the check, but not the requests after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceError {
    pub req: Req,
    /// The request's first and last 512-byte sector.
    pub sectors: (u64, u64),
    pub status: u8,
}

impl DeviceError {
    /// `request 16: read of sectors 2048..2175: status 1 (IOERR), expected 0 (OK)`.
    pub fn describe(&self) -> String {
        format!(
            "request {}: {} of sectors {}..{}: status {}, expected {}",
            self.req.n,
            op_name(self.req.op),
            self.sectors.0,
            self.sectors.1,
            StatusByte(self.status),
            StatusByte(blk::S_OK)
        )
    }
}

/// Device errors a [`Traffic`] keeps (it counts them all).
pub const ERRORS_KEPT: usize = 8;

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Read => "read",
        Op::Write => "write",
        Op::Flush => "flush",
        Op::GetId => "GET_ID",
    }
}

/// What traffic to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// Random reads anywhere, writes into writable stripes (where we may
    /// write), flushes (where offered), of 1 to `max_blocks` blocks.
    Random { max_blocks: u32, flush: bool },
    /// Reads only, of `blocks` blocks at random places.
    RandomReads { blocks: u32 },
    /// The whole disk read in order, `blocks` at a time.
    ReadAll { blocks: u32 },
    /// Every writable stripe written whole, `blocks` at a time, in order.
    FillStripes { blocks: u32 },
    /// Writes of `blocks` blocks at random places of the writable stripes.
    RandomWrites { blocks: u32 },
    /// The writable stripes written in order, `blocks` at a time, round
    /// and round.
    SeqWrites { blocks: u32 },
    /// GET_ID requests: many, fast (the device does no I/O for them), each
    /// answer held to the serial; what wraps the ring index in seconds.
    GetIds,
}

impl Mix {
    /// Requests the mix needs to be complete (None: as many as asked).
    pub fn requests(&self, m: &Medium) -> Option<u64> {
        match *self {
            Mix::ReadAll { blocks } => Some(m.blocks().div_ceil(u64::from(blocks))),
            Mix::FillStripes { blocks } => {
                Some(m.stripes.len() as u64 * m.blocks_per_stripe().div_ceil(u64::from(blocks)))
            }
            _ => None,
        }
    }
}

pub struct Traffic<'m> {
    pub medium: &'m mut Medium,
    pub mix: Mix,
    /// Largest data part of a request, bytes.
    reads: u64,
    writes: u64,
    flushes: u64,
    /// IOERR on a read or write is recorded, not the end of the run.
    record_errors: bool,
    /// The first [`ERRORS_KEPT`] of them ...
    pub errors: Vec<DeviceError>,
    /// ... and how many there were.
    pub error_count: u64,
}

impl<'m> Traffic<'m> {
    pub fn new(medium: &'m mut Medium, mix: Mix) -> Self {
        Traffic {
            medium,
            mix,
            reads: 0,
            writes: 0,
            flushes: 0,
            record_errors: false,
            errors: Vec::new(),
            error_count: 0,
        }
    }

    /// A read or write answered IOERR becomes a [`DeviceError`] (kept in
    /// `errors`, counted in `error_count`) and the run goes on; the caller
    /// must fail the check on any. A failed read changes nothing we know;
    /// a failed write leaves its blocks unknown.
    pub fn record_device_errors(mut self) -> Self {
        self.record_errors = true;
        self
    }

    /// Reads, writes and flushes answered.
    pub fn counts(&self) -> (u64, u64, u64) {
        (self.reads, self.writes, self.flushes)
    }

    fn random_write(&self, rng: &mut Rng, max: u32) -> Req {
        let m = &*self.medium;
        let per = m.blocks_per_stripe();
        let stripe = m.stripes[rng.below(m.stripes.len() as u64) as usize];
        let first = rng.below(per);
        let blocks = rng.range(1, u64::from(max)).min(per - first) as u32;
        Req {
            op: Op::Write,
            block: stripe * per + first,
            blocks,
            n: 0,
        }
    }

    fn random_read(&self, rng: &mut Rng, max: u32) -> Req {
        let total = self.medium.blocks();
        let block = rng.below(total);
        let blocks = rng.range(1, u64::from(max)).min(total - block) as u32;
        Req {
            op: Op::Read,
            block,
            blocks,
            n: 0,
        }
    }
}

impl Workload for Traffic<'_> {
    type Req = Req;

    fn plan(&mut self, n: u64, rng: &mut Rng) -> Plan<Req> {
        let can_write = self.medium.writable && !self.medium.stripes.is_empty();
        let req = match self.mix {
            Mix::Random { max_blocks, flush } => match rng.below(20) {
                0 if flush => Req {
                    op: Op::Flush,
                    block: 0,
                    blocks: 0,
                    n: 0,
                },
                1..=9 if can_write => self.random_write(rng, max_blocks),
                _ => self.random_read(rng, max_blocks),
            },
            Mix::RandomReads { blocks } => {
                let mut r = self.random_read(rng, blocks);
                // Whole requests of `blocks`, short only at the very end.
                r.block = r
                    .block
                    .min(self.medium.blocks().saturating_sub(u64::from(blocks)));
                r.blocks = blocks.min(self.medium.blocks() as u32);
                r
            }
            Mix::ReadAll { blocks } => {
                let block = n * u64::from(blocks);
                Req {
                    op: Op::Read,
                    block,
                    blocks: (u64::from(blocks).min(self.medium.blocks() - block)) as u32,
                    n: 0,
                }
            }
            Mix::FillStripes { blocks } => {
                let per = self.medium.blocks_per_stripe();
                let each = per.div_ceil(u64::from(blocks));
                let stripe = self.medium.stripes[(n / each) as usize];
                let first = (n % each) * u64::from(blocks);
                Req {
                    op: Op::Write,
                    block: stripe * per + first,
                    blocks: u64::from(blocks).min(per - first) as u32,
                    n: 0,
                }
            }
            Mix::RandomWrites { blocks } if can_write => {
                let mut r = self.random_write(rng, blocks);
                let per = self.medium.blocks_per_stripe();
                let stripe_start = r.block / per * per;
                let b = u64::from(blocks).min(per);
                r.block = r.block.min(stripe_start + per - b);
                r.blocks = b as u32;
                r
            }
            Mix::RandomWrites { blocks } => self.random_read(rng, blocks),
            Mix::SeqWrites { blocks } if can_write => {
                let per = self.medium.blocks_per_stripe();
                let each = per.div_ceil(u64::from(blocks));
                let k = n % (each * self.medium.stripes.len() as u64);
                let stripe = self.medium.stripes[(k / each) as usize];
                let first = (k % each) * u64::from(blocks);
                Req {
                    op: Op::Write,
                    block: stripe * per + first,
                    blocks: u64::from(blocks).min(per - first) as u32,
                    n: 0,
                }
            }
            Mix::SeqWrites { blocks } => self.random_read(rng, blocks),
            Mix::GetIds => Req {
                op: Op::GetId,
                block: 0,
                blocks: 0,
                n: 0,
            },
        };
        let req = Req { n, ..req };
        let data = req.blocks * self.medium.block;
        let (readable, writable) = match req.op {
            Op::Read => (HEADER_LEN as u32, data + 1),
            Op::Write => (HEADER_LEN as u32 + data, 1),
            Op::Flush => (HEADER_LEN as u32, 1),
            Op::GetId => (HEADER_LEN as u32, blk::ID_LEN as u32 + 1),
        };
        Plan {
            req,
            readable,
            writable,
            // The header and the status byte whole in their own elements:
            // what a legacy device without ANY_LAYOUT needs, and a boundary
            // every device must take.
            cuts: [HEADER_LEN as u32, readable + writable - 1],
            whole: [(0, 0); 2],
        }
    }

    fn conflicts(&self, a: &Req, b: &Req) -> bool {
        let overlap =
            a.block < b.block + u64::from(b.blocks) && b.block < a.block + u64::from(a.blocks);
        overlap && (a.op == Op::Write || b.op == Op::Write)
    }

    fn fill(&mut self, req: &Req, readable: &mut [u8]) {
        let m = &*self.medium;
        let kind = match req.op {
            Op::Read => blk::T_IN,
            Op::Write => blk::T_OUT,
            Op::Flush => blk::T_FLUSH,
            Op::GetId => blk::T_GET_ID,
        };
        let offset = req.block * u64::from(m.block);
        let sector = if matches!(req.op, Op::Flush | Op::GetId) {
            0
        } else {
            offset / SECTOR
        };
        readable[..HEADER_LEN].copy_from_slice(&header(m.order, kind, sector));
        if req.op == Op::Write {
            disk::fill(m.seed, Pattern::After, offset, &mut readable[HEADER_LEN..]);
        }
    }

    fn fill_in_place(&mut self, req: &Req, mem: &DmaMemory, at: &[(usize, u32)]) -> bool {
        let m = &*self.medium;
        let data = req.blocks * m.block;
        // The header alone, then the data whole and doubleword-aligned.
        let [(h, HEADER_LEN_U32), (d, len)] = *at else {
            return false;
        };
        if req.op != Op::Write || len != data || d % 8 != 0 {
            return false;
        }
        let offset = req.block * u64::from(m.block);
        mem.write(h, &header(m.order, blk::T_OUT, offset / SECTOR));
        let mut words = disk::Words::new(m.seed, Pattern::After, offset);
        mem.fill_words(d, len as usize / 8, || words.next().unwrap_or(0));
        true
    }

    fn check_in_place(
        &mut self,
        req: &Req,
        mem: &DmaMemory,
        at: &[(usize, u32)],
        used_len: u32,
    ) -> Option<u64> {
        let m = &*self.medium;
        let data = req.blocks * m.block;
        // The data whole and doubleword-aligned, then the status alone;
        // not the header's block (its first bytes are not the pattern).
        let [(d, len), (s, 1)] = *at else {
            return None;
        };
        if req.op != Op::Read || len != data || d % 8 != 0 || !m.patterned || req.block == 0 {
            return None;
        }
        if mem.load(s) != blk::S_OK || used_len == 0 {
            return None;
        }
        let per = m.block as usize / 8;
        for i in 0..req.blocks as usize {
            let b = req.block + i as u64;
            let mut words = disk::Words::new(m.seed, m.pattern_of(b), b * u64::from(m.block));
            let bad = mem.scan_words(d + i * m.block as usize, per, |w| words.next() == Some(w));
            if bad.is_some() {
                return None;
            }
        }
        self.reads += 1;
        Some(u64::from(data))
    }

    fn check(&mut self, req: &Req, written: &[u8], used_len: u32) -> Result<u64, String> {
        let what = op_name;
        let status = written[written.len() - 1];
        let at = req.block * u64::from(self.medium.block) / SECTOR;
        if status == blk::S_IOERR && self.record_errors && matches!(req.op, Op::Read | Op::Write) {
            if req.op == Op::Write {
                self.medium.mark_unknown(req.block, req.blocks);
            }
            let per = u64::from(self.medium.block) / SECTOR;
            let sectors = (at, at + u64::from(req.blocks) * per - 1);
            if self.errors.len() < ERRORS_KEPT {
                self.errors.push(DeviceError {
                    req: *req,
                    sectors,
                    status,
                });
            }
            self.error_count += 1;
            return Ok(0);
        }
        if status != blk::S_OK {
            return Err(format!(
                "{} of {} blocks at sector {}: status {}, expected {}{}",
                what(req.op),
                req.blocks,
                at,
                StatusByte(status),
                StatusByte(blk::S_OK),
                if status == 0xa5 {
                    " (the status byte was never written)"
                } else {
                    ""
                }
            ));
        }
        if used_len == 0 {
            return Err(format!(
                "{} at sector {}: used length 0, but the device must write the status byte",
                what(req.op),
                at
            ));
        }
        let data = u64::from(req.blocks) * u64::from(self.medium.block);
        match req.op {
            Op::Read => {
                self.reads += 1;
                self.medium
                    .check_read(req.block, &written[..data as usize])
                    .map_err(|e| {
                        format!(
                            "read of {} blocks at sector {}: {}",
                            req.blocks,
                            at,
                            e.as_str()
                        )
                    })?;
            }
            Op::Write => {
                self.writes += 1;
                self.medium.mark_written(req.block, req.blocks);
            }
            Op::Flush => self.flushes += 1,
            Op::GetId => {
                let got = blk::id_text(&written[..blk::ID_LEN]);
                if let Some(want) = &self.medium.serial {
                    if got != want.as_bytes() {
                        return Err(format!(
                            "GET_ID: expected '{}', got '{}'",
                            want.as_str(),
                            crate::fmt::Escaped(got)
                        ));
                    }
                }
                return Ok(0);
            }
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: u64 = 0x77;
    const SIZE: u64 = 32 * STRIPE;

    fn image() -> Vec<u8> {
        let mut img = vec![0u8; SIZE as usize];
        disk::fill_image(SEED, SIZE, 0, false, &mut img);
        img
    }

    /// Answers requests the way an honest device does, against `img`.
    fn serve(m: &Medium, img: &mut [u8], plan: &Plan<Req>, readable: &[u8]) -> Vec<u8> {
        let r = plan.req;
        let off = (r.block * u64::from(m.block)) as usize;
        let len = (r.blocks * m.block) as usize;
        let mut out = vec![0u8; plan.writable as usize];
        match r.op {
            Op::Read => out[..len].copy_from_slice(&img[off..off + len]),
            Op::Write => img[off..off + len].copy_from_slice(&readable[HEADER_LEN..]),
            Op::Flush | Op::GetId => {}
        }
        out
    }

    fn drive(m: &mut Medium, img: &mut [u8], mix: Mix, requests: u64) -> Result<(), String> {
        let mut t = Traffic::new(m, mix);
        let total = mix.requests(t.medium).unwrap_or(requests);
        for n in 0..total {
            let mut rng = Rng::for_request(1, 2, n);
            let plan = t.plan(n, &mut rng);
            let mut readable = vec![0u8; plan.readable as usize];
            t.fill(&plan.req, &mut readable);
            let out = serve(t.medium, img, &plan, &readable);
            t.check(&plan.req, &out, plan.writable)?;
        }
        Ok(())
    }

    #[test]
    fn an_honest_disk_passes_and_ends_as_the_host_expects() {
        for block in [512u32, 4096] {
            let mut img = image();
            let mut m = Medium::new(SEED, SIZE, block, Order::Little, true, true);
            drive(
                &mut m,
                &mut img,
                Mix::ReadAll {
                    blocks: 128 / (block / 512),
                },
                0,
            )
            .unwrap();
            drive(
                &mut m,
                &mut img,
                Mix::Random {
                    max_blocks: 16,
                    flush: true,
                },
                100,
            )
            .unwrap();
            assert!(m.unwritten() > 0);
            drive(&mut m, &mut img, Mix::FillStripes { blocks: 16 }, 0).unwrap();
            assert_eq!(m.unwritten(), 0);
            drive(&mut m, &mut img, Mix::ReadAll { blocks: 64 }, 0).unwrap();
            assert_eq!(disk::first_mismatch(SEED, SIZE, 0, true, &img), None);
        }
    }

    #[test]
    fn a_flipped_byte_is_named_by_sector_and_offset() {
        let mut img = image();
        img[5 * 512 + 17] ^= 1;
        let mut m = Medium::new(SEED, SIZE, 512, Order::Little, true, false);
        let e = drive(&mut m, &mut img, Mix::ReadAll { blocks: 8 }, 0).unwrap_err();
        assert!(e.contains("sector 5 byte 17 "), "{e}");
        assert!(
            e.contains("pattern A") && e.contains("1 of the block's 512 bytes differ (4096 read)"),
            "{e}"
        );
    }

    #[test]
    fn a_lost_or_misplaced_write_is_found_by_a_later_read() {
        let mut img = image();
        let mut m = Medium::new(SEED, SIZE, 512, Order::Little, true, true);
        drive(&mut m, &mut img, Mix::FillStripes { blocks: 128 }, 0).unwrap();
        // The device "forgets" one written block.
        let s = m.stripes[0];
        let at = (s * STRIPE) as usize + 1024;
        disk::fill(SEED, Pattern::Before, at as u64, &mut img[at..at + 512]);
        let e = drive(&mut m, &mut img, Mix::ReadAll { blocks: 128 }, 0).unwrap_err();
        assert!(
            e.contains(&std::format!("sector {} byte 0", at / 512)),
            "{e}"
        );
        assert!(e.contains("pattern B"), "{e}");
    }

    #[test]
    fn in_place_fill_and_check_agree_with_the_copies() {
        let mut m = Medium::new(SEED, SIZE, 512, Order::Little, true, true);
        let mut t = Traffic::new(&mut m, Mix::SeqWrites { blocks: 8 });
        let plan = t.plan(3, &mut Rng::new(1));
        let mem = DmaMemory::new(8192);
        assert!(t.fill_in_place(&plan.req, &mem, &[(0, 16), (16, 4096)]));
        let mut copy = vec![0u8; plan.readable as usize];
        t.fill(&plan.req, &mut copy);
        let mut placed = vec![0u8; copy.len()];
        mem.read(0, &mut placed);
        assert!(placed == copy, "in-place write data differs from fill()");
        // Not for a layout it does not know.
        assert!(!t.fill_in_place(&plan.req, &mem, &[(0, 8), (8, 8), (16, 4096)]));

        let mut r = Traffic::new(&mut m, Mix::RandomReads { blocks: 8 });
        let plan = r.plan(5, &mut Rng::new(2));
        let req = Req {
            block: plan.req.block.max(1),
            ..plan.req
        };
        let mut data = vec![0u8; 4096];
        r.medium.expected(req.block, &mut data);
        mem.write(0, &data);
        mem.store(4096, blk::S_OK);
        let at = [(0usize, 4096u32), (4096, 1)];
        assert_eq!(r.check_in_place(&req, &mem, &at, 4097), Some(4096));
        mem.store(1234, mem.load(1234) ^ 1);
        assert_eq!(r.check_in_place(&req, &mem, &at, 4097), None);
        let mut got = vec![0u8; 4097];
        mem.read(0, &mut got);
        let e = r.check(&req, &got, 4097).unwrap_err();
        assert!(e.contains(&std::format!("byte {} ", 1234 % 512)), "{e}");
    }

    #[test]
    fn get_id_answers_are_held_to_the_serial() {
        let mut m = Medium::new(SEED, SIZE, 512, Order::Little, true, false);
        m.serial = Some(String::from("zv-7"));
        let mut t = Traffic::new(&mut m, Mix::GetIds);
        let plan = t.plan(0, &mut Rng::new(1));
        assert_eq!((plan.readable, plan.writable), (16, 21));
        let mut hdr = vec![0u8; 16];
        t.fill(&plan.req, &mut hdr);
        assert_eq!(hdr[0], blk::T_GET_ID as u8);
        let mut out = vec![0u8; 21];
        out[..4].copy_from_slice(b"zv-7");
        assert_eq!(t.check(&plan.req, &out, 21), Ok(0));
        out[3] = b'8';
        let e = t.check(&plan.req, &out, 21).unwrap_err();
        assert!(e.contains("expected 'zv-7', got 'zv-8'"), "{e}");
    }

    #[test]
    fn bad_status_and_unwritten_status_fail() {
        let mut m = Medium::new(SEED, SIZE, 512, Order::Little, true, true);
        let mut t = Traffic::new(&mut m, Mix::RandomReads { blocks: 1 });
        let plan = t.plan(0, &mut Rng::new(3));
        let mut out = vec![0u8; plan.writable as usize];
        *out.last_mut().unwrap() = blk::S_IOERR;
        let e = t.check(&plan.req, &out, plan.writable).unwrap_err();
        assert!(e.contains("status 1 (IOERR), expected 0 (OK)"), "{e}");
        *out.last_mut().unwrap() = 0xa5;
        let e = t.check(&plan.req, &out, plan.writable).unwrap_err();
        assert!(e.contains("never written"), "{e}");
    }

    /// With device errors recorded: IOERR on a read or write is kept and
    /// counted and the run goes on; any other wrong status still ends it.
    #[test]
    fn device_errors_are_named_and_the_rest_still_verified() {
        let mut img = image();
        let mut m = Medium::new(SEED, SIZE, 512, Order::Little, true, true);
        let mut t = Traffic::new(&mut m, Mix::ReadAll { blocks: 8 }).record_device_errors();
        let mut failed = Vec::new();
        for n in 0..t.mix.requests(t.medium).unwrap() {
            let plan = t.plan(n, &mut Rng::for_request(1, 2, n));
            let mut out = serve(t.medium, &mut img, &plan, &[]);
            // The device fails requests 3 and 5..=14 (more than are kept).
            if n == 3 || (5..=14).contains(&n) {
                out.iter_mut().for_each(|b| *b = 0xee);
                *out.last_mut().unwrap() = blk::S_IOERR;
                failed.push(n);
            }
            // A flipped byte in a later request is still found.
            if n == 20 {
                out[100] ^= 1;
                let e = t.check(&plan.req, &out, plan.writable).unwrap_err();
                assert!(e.contains("sector 160 byte 100"), "{e}");
                continue;
            }
            let r = t.check(&plan.req, &out, plan.writable);
            assert!(r.is_ok(), "request {n}: {r:?}");
        }
        assert_eq!(t.error_count, 11);
        assert_eq!(t.errors.len(), ERRORS_KEPT);
        assert_eq!(
            t.errors[0].describe(),
            "request 3: read of sectors 24..31: status 1 (IOERR), expected 0 (OK)"
        );
        assert_eq!(t.errors[1].req.n, 5);
        // UNSUPP is no medium error: it ends the run as before.
        let plan = t.plan(0, &mut Rng::new(1));
        let mut out = vec![0u8; plan.writable as usize];
        *out.last_mut().unwrap() = blk::S_UNSUPP;
        assert!(t.check(&plan.req, &out, plan.writable).is_err());
    }

    /// A failed write leaves its blocks unknown: a later read there is not
    /// compared, until a write succeeds there again.
    #[test]
    fn a_failed_write_leaves_its_blocks_unknown() {
        let mut m = Medium::new(SEED, SIZE, 4096, Order::Little, true, true);
        let s = m.stripes[0];
        let block = s * STRIPE / 4096;
        let mut t = Traffic::new(&mut m, Mix::FillStripes { blocks: 2 }).record_device_errors();
        let w = Req {
            op: Op::Write,
            block,
            blocks: 2,
            n: 7,
        };
        assert_eq!(t.check(&w, &[blk::S_IOERR], 1), Ok(0));
        assert_eq!(
            t.errors[0].describe(),
            std::format!(
                "request 7: write of sectors {}..{}: status 1 (IOERR), expected 0 (OK)",
                block * 8,
                block * 8 + 15
            )
        );
        let r = Req { op: Op::Read, ..w };
        let mut out = vec![0x5au8; 8193];
        out[8192] = blk::S_OK;
        assert_eq!(t.check(&r, &out, 8193), Ok(8192));
        // The same write succeeds: B is what must be there now.
        assert_eq!(t.check(&w, &[blk::S_OK], 1), Ok(8192));
        let e = t.check(&r, &out, 8193).unwrap_err();
        assert!(e.contains("pattern B"), "{e}");
        assert_eq!(t.error_count, 1);
    }

    #[test]
    fn writes_stay_in_writable_stripes_and_never_touch_a_read_only_disk() {
        let mut img = image();
        let before = img.clone();
        let mut ro = Medium::new(SEED, SIZE, 512, Order::Little, true, false);
        drive(
            &mut ro,
            &mut img,
            Mix::Random {
                max_blocks: 64,
                flush: true,
            },
            2000,
        )
        .unwrap();
        drive(&mut ro, &mut img, Mix::RandomWrites { blocks: 8 }, 200).unwrap();
        assert!(img == before, "a disk we may not write was written");
        let mut m = Medium::new(SEED, SIZE, 512, Order::Little, true, true);
        let mut t = Traffic::new(
            &mut m,
            Mix::Random {
                max_blocks: 64,
                flush: false,
            },
        );
        for n in 0..2000 {
            let p = t.plan(n, &mut Rng::for_request(4, 0, n));
            if p.req.op == Op::Write {
                let first = p.req.block * 512 / STRIPE;
                let last = (p.req.block + u64::from(p.req.blocks) - 1) * 512 / STRIPE;
                assert_eq!(first, last);
                assert!(disk::writable_stripe(SEED, SIZE, first));
            }
        }
    }

    #[test]
    fn writes_conflict_with_what_they_overlap() {
        let mut m = Medium::new(SEED, SIZE, 512, Order::Little, true, true);
        let t = Traffic::new(&mut m, Mix::RandomReads { blocks: 1 });
        let r = |op, block, blocks| Req {
            op,
            block,
            blocks,
            n: 0,
        };
        assert!(t.conflicts(&r(Op::Write, 10, 4), &r(Op::Read, 13, 1)));
        assert!(!t.conflicts(&r(Op::Write, 10, 4), &r(Op::Read, 14, 1)));
        assert!(!t.conflicts(&r(Op::Read, 10, 4), &r(Op::Read, 11, 1)));
        assert!(!t.conflicts(&r(Op::Flush, 0, 0), &r(Op::Write, 0, 4)));
    }
}
