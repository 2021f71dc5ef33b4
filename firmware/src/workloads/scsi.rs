//! Stress traffic for the request queues of a virtio-scsi adapter and what
//! its answers must be.
//!
//! A request is laid out as section 5.6.6 has it: the request header (LUN
//! address, tag, CDB padded to `cdb_size`) and any data-out
//! device-readable, then the response (header and `sense_size` of sense)
//! and any data-in device-writable. Each LUN's contents are a
//! [`Medium`] as for virtio-blk: writes only into writable stripes of LUNs
//! we may write, every read held to pattern A, or B where we wrote.

use crate::format;
use crate::virtio::devices::scsi::{
    cdb, command_request, lun_field, response, CmdResponse, Layout, Sense, CHECK_CONDITION, GOOD,
    KEY_ABORTED_COMMAND, KEY_HARDWARE_ERROR, KEY_MEDIUM_ERROR,
};
use crate::virtio::stress::{Plan, Rng, Workload};
use crate::workloads::blk::Medium;
use alloc::string::String;
use alloc::vec::Vec;
use zvtest_contract::disk::{self, Pattern, STRIPE};
use zvtest_contract::fmt::Hex;

/// One LUN under stress.
pub struct Lun {
    /// How failures name it (its disk id).
    pub name: String,
    pub target: u8,
    pub lun: u16,
    pub medium: Medium,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    /// TEST UNIT READY: no data, no I/O; what wraps the ring index fast.
    TestUnitReady,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Req {
    /// Index into the LUNs.
    pub lun: usize,
    pub op: Op,
    pub block: u64,
    pub blocks: u32,
    /// READ(16)/WRITE(16) rather than the (10) forms.
    pub sixteen: bool,
    pub tag: u64,
}

/// What traffic to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// Reads anywhere on any LUN, writes into the writable stripes of
    /// LUNs we may write, of 1 block to `max_bytes`.
    Random { max_bytes: u32 },
    /// TEST UNIT READYs to the first LUN.
    TestUnitReady,
    /// Every writable stripe of every LUN we may write written whole,
    /// `bytes` at a time, in order.
    FillStripes { bytes: u32 },
    /// Every LUN read whole, `bytes` at a time, in order.
    ReadAll { bytes: u32 },
}

/// The fill's requests in order: (LUN, first block, blocks).
fn fill_list(luns: &[Lun], bytes: u32) -> Vec<(usize, u64, u32)> {
    let mut list = Vec::new();
    for (i, l) in luns.iter().enumerate() {
        let m = &l.medium;
        if !m.writable {
            continue;
        }
        let per = STRIPE / u64::from(m.block);
        let step = u64::from((bytes / m.block).max(1));
        for &s in &m.stripes {
            let mut first = 0;
            while first < per {
                let n = step.min(per - first);
                list.push((i, s * per + first, n as u32));
                first += n;
            }
        }
    }
    list
}

/// The whole-LUN reads in order: (LUN, first block, blocks).
fn read_list(luns: &[Lun], bytes: u32) -> Vec<(usize, u64, u32)> {
    let mut list = Vec::new();
    for (i, l) in luns.iter().enumerate() {
        let m = &l.medium;
        let step = u64::from((bytes / m.block).max(1));
        let mut first = 0;
        while first < m.blocks() {
            let n = step.min(m.blocks() - first);
            list.push((i, first, n as u32));
            first += n;
        }
    }
    list
}

/// A READ or WRITE the device answered CHECK CONDITION with the sense of
/// a failed I/O (MEDIUM ERROR, HARDWARE ERROR, ABORTED COMMAND) where
/// [`Traffic::record_device_errors`] is on: what a disk may answer, that
/// fails the check but not the requests after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceError {
    /// The request as failures name it (LUN, tag = request number, LBA).
    pub whence: String,
    pub status: u8,
    pub sense: Sense,
}

impl DeviceError {
    /// `fe.0.0006/0/1 target 0 LUN 1 tag 12 opcode 0x28 READ (10) of 128
    /// blocks at LBA 1536: status 0x2 (CHECK CONDITION), sense key 0xb
    /// ASC/ASCQ 0x00/0x06, expected GOOD`.
    pub fn describe(&self) -> String {
        format!(
            "{}: status {} (CHECK CONDITION), {}, expected GOOD",
            self.whence.as_str(),
            Hex(u64::from(self.status)),
            self.sense
        )
    }
}

/// Device errors a [`Traffic`] keeps (it counts them all).
pub const ERRORS_KEPT: usize = 8;

pub struct Traffic<'l> {
    pub luns: &'l mut [Lun],
    pub layout: Layout,
    pub mix: Mix,
    fill: Vec<(usize, u64, u32)>,
    reads: u64,
    writes: u64,
    others: u64,
    /// Writes whose used length counted the data-out (QEMU's way).
    long_used_lens: u64,
    /// A failed I/O's CHECK CONDITION is recorded, not the end of the run.
    record_errors: bool,
    /// The first [`ERRORS_KEPT`] of them ...
    pub errors: Vec<DeviceError>,
    /// ... and how many there were.
    pub error_count: u64,
}

impl<'l> Traffic<'l> {
    pub fn new(luns: &'l mut [Lun], layout: Layout, mix: Mix) -> Self {
        let fill = match mix {
            Mix::FillStripes { bytes } => fill_list(luns, bytes),
            Mix::ReadAll { bytes } => read_list(luns, bytes),
            _ => Vec::new(),
        };
        Traffic {
            luns,
            layout,
            mix,
            fill,
            reads: 0,
            writes: 0,
            others: 0,
            long_used_lens: 0,
            record_errors: false,
            errors: Vec::new(),
            error_count: 0,
        }
    }

    /// A READ or WRITE answered CHECK CONDITION with the sense of a failed
    /// I/O becomes a [`DeviceError`] (kept in `errors`, counted in
    /// `error_count`) and the run goes on; the caller must fail the check
    /// on any. A failed read changes nothing we know; a failed write
    /// leaves its blocks unknown.
    pub fn record_device_errors(mut self) -> Self {
        self.record_errors = true;
        self
    }

    /// Requests the mix needs to be complete (None: as many as asked).
    pub fn requests(&self) -> Option<u64> {
        match self.mix {
            Mix::FillStripes { .. } | Mix::ReadAll { .. } => Some(self.fill.len() as u64),
            _ => None,
        }
    }

    /// Reads, writes, other commands answered, and writes whose used
    /// length counted the data-out.
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        (self.reads, self.writes, self.others, self.long_used_lens)
    }

    fn random(&self, rng: &mut Rng, max_bytes: u32) -> Req {
        let lun = rng.below(self.luns.len() as u64) as usize;
        let m = &self.luns[lun].medium;
        let max = u64::from((max_bytes / m.block).max(1));
        let sixteen = rng.chance(1, 2);
        let (op, block, blocks) = if m.writable && !m.stripes.is_empty() && rng.chance(1, 2) {
            let per = STRIPE / u64::from(m.block);
            let stripe = m.stripes[rng.below(m.stripes.len() as u64) as usize];
            let first = rng.below(per);
            let n = rng.range(1, max).min(per - first);
            (Op::Write, stripe * per + first, n)
        } else {
            let total = m.blocks();
            let block = rng.below(total);
            (Op::Read, block, rng.range(1, max).min(total - block))
        };
        Req {
            lun,
            op,
            block,
            blocks: blocks as u32,
            // READ(10)'s LBA has 32 bits.
            sixteen: sixteen || block + blocks > u64::from(u32::MAX),
            tag: 0,
        }
    }

    /// The CDB of `req`, and its length.
    fn cdb(req: &Req) -> ([u8; 16], usize) {
        let mut c = [0u8; 16];
        let n = match (req.op, req.sixteen) {
            (Op::TestUnitReady, _) => put(&mut c, &cdb::test_unit_ready()),
            (Op::Read, false) => put(&mut c, &cdb::read_10(req.block as u32, req.blocks as u16)),
            (Op::Read, true) => put(&mut c, &cdb::read_16(req.block, req.blocks)),
            (Op::Write, false) => put(&mut c, &cdb::write_10(req.block as u32, req.blocks as u16)),
            (Op::Write, true) => put(&mut c, &cdb::write_16(req.block, req.blocks)),
        };
        (c, n)
    }

    fn data_len(&self, req: &Req) -> u32 {
        req.blocks * self.luns[req.lun].medium.block
    }

    /// How a request reads in a failure message.
    fn whence(&self, req: &Req) -> String {
        let l = &self.luns[req.lun];
        let (c, _) = Self::cdb(req);
        let what = match req.op {
            Op::TestUnitReady => String::from("TEST UNIT READY"),
            Op::Read | Op::Write => format!(
                "{} ({}) of {} blocks at LBA {}",
                if req.op == Op::Read { "READ" } else { "WRITE" },
                if req.sixteen { 16 } else { 10 },
                req.blocks,
                req.block
            ),
        };
        format!(
            "{} target {} LUN {} tag {} opcode {} {}",
            l.name.as_str(),
            l.target,
            l.lun,
            req.tag,
            Hex(u64::from(c[0])),
            what.as_str()
        )
    }
}

fn put(out: &mut [u8; 16], c: &[u8]) -> usize {
    out[..c.len()].copy_from_slice(c);
    c.len()
}

impl Workload for Traffic<'_> {
    type Req = Req;

    fn plan(&mut self, n: u64, rng: &mut Rng) -> Plan<Req> {
        let mut req = match self.mix {
            Mix::Random { max_bytes } => self.random(rng, max_bytes),
            Mix::TestUnitReady => Req {
                lun: 0,
                op: Op::TestUnitReady,
                block: 0,
                blocks: 0,
                sixteen: false,
                tag: 0,
            },
            Mix::FillStripes { .. } | Mix::ReadAll { .. } => {
                let (lun, block, blocks) = self.fill[n as usize];
                Req {
                    lun,
                    op: if matches!(self.mix, Mix::ReadAll { .. }) {
                        Op::Read
                    } else {
                        Op::Write
                    },
                    block,
                    blocks,
                    sixteen: rng.chance(1, 2) || block + u64::from(blocks) > u64::from(u32::MAX),
                    tag: 0,
                }
            }
        };
        // Tags distinct among requests in flight: the request number.
        req.tag = n;
        let header = self.layout.request_len() as u32;
        let resp = self.layout.response_len() as u32;
        let data = self.data_len(&req);
        let (readable, writable) = match req.op {
            Op::Write => (header + data, resp),
            Op::Read => (header, resp + data),
            Op::TestUnitReady => (header, resp),
        };
        Plan {
            req,
            readable,
            writable,
            // The request header and the response each one element: QEMU
            // without VIRTIO_F_ANY_LAYOUT takes the first element of each
            // direction as the header whatever its length (virtio-scsi.c
            // virtio_scsi_parse_req), also at revision 2.
            cuts: [header, readable + resp],
            whole: [(0, header), (readable, readable + resp)],
        }
    }

    fn conflicts(&self, a: &Req, b: &Req) -> bool {
        let overlap = a.lun == b.lun
            && a.block < b.block + u64::from(b.blocks)
            && b.block < a.block + u64::from(a.blocks);
        overlap && (a.op == Op::Write || b.op == Op::Write)
    }

    fn fill(&mut self, req: &Req, readable: &mut [u8]) {
        let l = &self.luns[req.lun];
        let (c, n) = Self::cdb(req);
        let header = command_request(
            lun_field(l.target, l.lun),
            req.tag,
            &c[..n],
            self.layout.cdb_size,
            self.layout.order,
        );
        let h = self.layout.request_len();
        readable[..h].copy_from_slice(&header[..h]);
        if req.op == Op::Write {
            let m = &l.medium;
            let offset = req.block * u64::from(m.block);
            disk::fill(m.seed, Pattern::After, offset, &mut readable[h..]);
        }
    }

    fn long_used_len(&mut self, req: &Req, len: u32) -> Option<u32> {
        // QEMU counts the data-out too (virtio-scsi.c
        // virtio_scsi_complete_req: qsgl.size + resp_iov.size); any other
        // excess is the device's error.
        let resp = self.layout.response_len() as u32;
        if req.op == Op::Write && len == self.data_len(req) + resp {
            self.long_used_lens += 1;
            return Some(resp);
        }
        None
    }

    fn check(&mut self, req: &Req, written: &[u8], used_len: u32) -> Result<u64, String> {
        let resp_len = self.layout.response_len();
        let r = CmdResponse::decode(&written[..resp_len], self.layout.order);
        let io_failed = r.response == response::OK
            && r.status == CHECK_CONDITION
            && matches!(req.op, Op::Read | Op::Write)
            && r.sense().is_some_and(|s| {
                matches!(
                    s.key,
                    KEY_MEDIUM_ERROR | KEY_HARDWARE_ERROR | KEY_ABORTED_COMMAND
                )
            });
        if let (true, true, Some(sense)) = (self.record_errors, io_failed, r.sense()) {
            if req.op == Op::Write {
                self.luns[req.lun]
                    .medium
                    .mark_unknown(req.block, req.blocks);
            }
            if self.errors.len() < ERRORS_KEPT {
                self.errors.push(DeviceError {
                    whence: self.whence(req),
                    status: r.status,
                    sense,
                });
            }
            self.error_count += 1;
            return Ok(0);
        }
        if r.response != response::OK || r.status != GOOD || r.resid != 0 {
            let sense = r.sense().map(|s| format!(", {}", s)).unwrap_or_default();
            let never = if r.response == 0xa5 && r.status == 0xa5 {
                " (the response was never written)"
            } else {
                ""
            };
            return Err(format!(
                "{}: expected response OK, status GOOD, resid 0; got response {} ({}), status {}, resid {}{}{}",
                self.whence(req).as_str(),
                r.response,
                response::name(r.response),
                Hex(r.status.into()),
                r.resid,
                sense.as_str(),
                never
            ));
        }
        if (used_len as usize) < resp_len {
            return Err(format!(
                "{}: used length {}, expected at least the {}-byte response (at most {})",
                self.whence(req).as_str(),
                used_len,
                resp_len,
                written.len()
            ));
        }
        if r.sense_len as usize > self.layout.sense_size {
            return Err(format!(
                "{}: sense_len {}, expected at most sense_size {}",
                self.whence(req).as_str(),
                r.sense_len,
                self.layout.sense_size
            ));
        }
        let data = self.data_len(req);
        match req.op {
            Op::Read => {
                self.reads += 1;
                let m = &self.luns[req.lun].medium;
                m.check_read(req.block, &written[resp_len..])
                    .map_err(|e| format!("{}: {}", self.whence(req).as_str(), e.as_str()))?;
            }
            Op::Write => {
                self.writes += 1;
                self.luns[req.lun]
                    .medium
                    .mark_written(req.block, req.blocks);
            }
            Op::TestUnitReady => self.others += 1,
        }
        Ok(u64::from(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::devices::blk::Order as BlkOrder;
    use crate::virtio::devices::scsi::{Order, CHECK_CONDITION, CMD_HEADER_LEN};

    const SEED: u64 = 0x5c5;
    const SIZE: u64 = 32 * STRIPE;
    const LAYOUT: Layout = Layout {
        order: Order::Little,
        cdb_size: 32,
        sense_size: 96,
    };

    fn lun(target: u8, n: u16, block: u32, writable: bool) -> Lun {
        let mut medium = Medium::new(SEED, SIZE, block, BlkOrder::Little, true, writable);
        medium.by_block = true;
        Lun {
            name: crate::format!("fe.0.0006/{}/{}", target, n),
            target,
            lun: n,
            medium,
        }
    }

    fn image() -> Vec<u8> {
        let mut img = vec![0u8; SIZE as usize];
        disk::fill_image(SEED, SIZE, 0, false, &mut img);
        img
    }

    fn be(b: &[u8]) -> u64 {
        b.iter().fold(0, |v, &x| v << 8 | u64::from(x))
    }

    /// Answers the way an honest virtio-scsi device does: parses the
    /// request header and CDB, moves the data, writes a GOOD response.
    fn serve(luns: &[Lun], imgs: &mut [Vec<u8>], plan: &Plan<Req>, readable: &[u8]) -> Vec<u8> {
        let (t, l) = (
            readable[1],
            u16::from(readable[2] & 0x3f) << 8 | u16::from(readable[3]),
        );
        let i = luns
            .iter()
            .position(|x| (x.target, x.lun) == (t, l))
            .unwrap();
        let bs = luns[i].medium.block as usize;
        let c = &readable[CMD_HEADER_LEN..];
        let (lba, n) = match c[0] {
            cdb::READ_10 | cdb::WRITE_10 => (be(&c[2..6]), be(&c[7..9])),
            cdb::READ_16 | cdb::WRITE_16 => (be(&c[2..10]), be(&c[10..14])),
            _ => (0, 0),
        };
        let (off, len) = (lba as usize * bs, n as usize * bs);
        let resp = LAYOUT.response_len();
        let mut out = vec![0u8; plan.writable as usize];
        match c[0] {
            cdb::READ_10 | cdb::READ_16 => out[resp..].copy_from_slice(&imgs[i][off..off + len]),
            cdb::WRITE_10 | cdb::WRITE_16 => {
                imgs[i][off..off + len].copy_from_slice(&readable[LAYOUT.request_len()..])
            }
            _ => {}
        }
        out
    }

    fn drive(
        luns: &mut [Lun],
        imgs: &mut [Vec<u8>],
        mix: Mix,
        requests: u64,
    ) -> Result<(), String> {
        let mut t = Traffic::new(luns, LAYOUT, mix);
        for n in 0..t.requests().unwrap_or(requests) {
            let mut rng = Rng::for_request(1, 2, n);
            let plan = t.plan(n, &mut rng);
            let mut readable = vec![0u8; plan.readable as usize];
            t.fill(&plan.req, &mut readable);
            let out = serve(t.luns, imgs, &plan, &readable);
            t.check(&plan.req, &out, plan.writable)?;
        }
        Ok(())
    }

    #[test]
    fn an_honest_device_passes_and_every_writable_stripe_ends_in_b() {
        let mut luns = [
            lun(0, 0, 512, true),
            lun(0, 1, 4096, true),
            lun(1, 2, 512, false),
        ];
        let mut imgs = [image(), image(), image()];
        drive(&mut luns, &mut imgs, Mix::Random { max_bytes: 65536 }, 400).unwrap();
        assert!(luns[0].medium.unwritten() > 0);
        drive(&mut luns, &mut imgs, Mix::TestUnitReady, 10).unwrap();
        drive(&mut luns, &mut imgs, Mix::FillStripes { bytes: 65536 }, 0).unwrap();
        assert_eq!(luns[0].medium.unwritten() + luns[1].medium.unwritten(), 0);
        assert_eq!(disk::first_mismatch(SEED, SIZE, 0, true, &imgs[0]), None);
        assert_eq!(disk::first_mismatch(SEED, SIZE, 0, true, &imgs[1]), None);
        // Never a write to the LUN we may not write.
        assert_eq!(disk::first_mismatch(SEED, SIZE, 0, false, &imgs[2]), None);
        // What was written reads back as B.
        drive(&mut luns, &mut imgs, Mix::Random { max_bytes: 8192 }, 200).unwrap();
    }

    fn read(lun: usize, block: u64, blocks: u32) -> Req {
        Req {
            lun,
            op: Op::Read,
            block,
            blocks,
            sixteen: false,
            tag: 9,
        }
    }

    /// One request answered by the honest model, then `tamper`ed with.
    fn answer(t: &mut Traffic, req: Req, imgs: &mut [Vec<u8>]) -> (Plan<Req>, Vec<u8>) {
        let mut plan = t.plan(0, &mut Rng::new(1));
        plan.req = req;
        let data = t.data_len(&req);
        plan.readable = LAYOUT.request_len() as u32;
        plan.writable = LAYOUT.response_len() as u32 + data;
        let mut readable = vec![0u8; plan.readable as usize];
        t.fill(&req, &mut readable);
        let out = serve(t.luns, imgs, &plan, &readable);
        (plan, out)
    }

    #[test]
    fn a_flipped_byte_is_named_by_lun_block_byte_and_image_offset() {
        let mut luns = [lun(0, 0, 512, true), lun(0, 1, 512, false)];
        let mut imgs = [image(), image()];
        imgs[1][5 * 512 + 17] ^= 1;
        let mut t = Traffic::new(&mut luns, LAYOUT, Mix::Random { max_bytes: 4096 });
        let (plan, out) = answer(&mut t, read(1, 4, 4), &mut imgs);
        let e = t.check(&plan.req, &out, plan.writable).unwrap_err();
        assert!(e.contains("fe.0.0006/0/1 target 0 LUN 1"), "{e}");
        assert!(e.contains("block 5 byte 17 (image offset 0xa11)"), "{e}");
        assert!(e.contains("pattern A"), "{e}");
    }

    /// With device errors recorded: CHECK CONDITION with the sense of a
    /// failed I/O is kept and counted and the run goes on; other senses
    /// and statuses still end it. A failed write leaves its blocks unknown.
    #[test]
    fn check_conditions_of_failed_io_are_named_and_the_rest_still_verified() {
        let mut luns = [lun(0, 0, 512, true)];
        let mut imgs = [image()];
        let mut t =
            Traffic::new(&mut luns, LAYOUT, Mix::ReadAll { bytes: 4096 }).record_device_errors();
        assert_eq!(t.requests(), Some(SIZE / 4096));
        let fail = |out: &mut Vec<u8>, key: u8, asc: u8, ascq: u8| {
            out[..4].copy_from_slice(&18u32.to_le_bytes());
            out[10] = CHECK_CONDITION;
            out[12] = 0x70;
            out[14] = key;
            out[19] = 10;
            out[24] = asc;
            out[25] = ascq;
        };
        for n in 0..t.requests().unwrap() {
            let plan = t.plan(n, &mut Rng::for_request(1, 2, n));
            let mut readable = vec![0u8; plan.readable as usize];
            t.fill(&plan.req, &mut readable);
            let mut out = serve(t.luns, &mut imgs, &plan, &readable);
            if n == 3 {
                fail(&mut out, KEY_ABORTED_COMMAND, 0x00, 0x06);
            }
            if n == 9 {
                fail(&mut out, KEY_MEDIUM_ERROR, 0x11, 0x00);
            }
            // A flipped byte in a later request is still found.
            if n == 20 {
                let r = LAYOUT.response_len();
                out[r + 100] ^= 1;
                let e = t.check(&plan.req, &out, plan.writable).unwrap_err();
                assert!(e.contains("block 160 byte 100"), "{e}");
                continue;
            }
            let r = t.check(&plan.req, &out, plan.writable);
            assert!(r.is_ok(), "request {n}: {r:?}");
        }
        assert_eq!(t.error_count, 2);
        let d = t.errors[0].describe();
        assert!(
            d.ends_with(
                "tag 3 opcode 0x28 READ (10) of 8 blocks at LBA 24: status 0x2 (CHECK CONDITION), \
                 sense key b ASC/ASCQ 00/06, expected GOOD"
            ) || d.ends_with(
                "tag 3 opcode 0x88 READ (16) of 8 blocks at LBA 24: status 0x2 (CHECK CONDITION), \
                 sense key b ASC/ASCQ 00/06, expected GOOD"
            ),
            "{d}"
        );
        assert!(
            t.errors[1]
                .describe()
                .contains("sense key 3 ASC/ASCQ 11/00"),
            "{}",
            t.errors[1].describe()
        );
        // Not a failed I/O: ILLEGAL REQUEST still ends the run.
        let plan = t.plan(0, &mut Rng::new(1));
        let mut out = vec![0u8; plan.writable as usize];
        fail(&mut out, 0x5, 0x24, 0x00);
        assert!(t.check(&plan.req, &out, plan.writable).is_err());
        // A failed write: its blocks are not compared until written again.
        let s = t.luns[0].medium.stripes[0];
        let w = Req {
            op: Op::Write,
            block: s * 128,
            blocks: 2,
            ..read(0, 0, 0)
        };
        let mut out = vec![0u8; LAYOUT.response_len()];
        fail(&mut out, KEY_MEDIUM_ERROR, 0x0c, 0x00);
        assert_eq!(t.check(&w, &out, out.len() as u32), Ok(0));
        assert!(t.luns[0].medium.is_unknown(s * 128 + 1));
        let r = read(0, s * 128, 2);
        let mut got = vec![0x5au8; LAYOUT.response_len() + 1024];
        got[..LAYOUT.response_len()].fill(0);
        assert_eq!(t.check(&r, &got, got.len() as u32), Ok(1024));
        assert_eq!(t.error_count, 3);
    }

    #[test]
    fn bad_response_status_resid_or_used_length_fail() {
        let mut luns = [lun(0, 0, 512, true)];
        let mut imgs = [image()];
        let mut t = Traffic::new(&mut luns, LAYOUT, Mix::Random { max_bytes: 4096 });
        let (plan, good) = answer(&mut t, read(0, 40, 2), &mut imgs);
        assert_eq!(t.check(&plan.req, &good, plan.writable), Ok(1024));
        let mut out = good.clone();
        out[10] = CHECK_CONDITION;
        let e = t.check(&plan.req, &out, plan.writable).unwrap_err();
        assert!(
            e.contains(
                "expected response OK, status GOOD, resid 0; got response 0 (OK), status 0x2"
            ),
            "{e}"
        );
        let mut out = good.clone();
        out[11] = response::BAD_TARGET;
        let e = t.check(&plan.req, &out, plan.writable).unwrap_err();
        assert!(e.contains("got response 3 (BAD_TARGET)"), "{e}");
        let mut out = good.clone();
        out[4] = 7;
        let e = t.check(&plan.req, &out, plan.writable).unwrap_err();
        assert!(e.contains("resid 7"), "{e}");
        let mut out = good.clone();
        out[10] = 0xa5;
        out[11] = 0xa5;
        let e = t.check(&plan.req, &out, plan.writable).unwrap_err();
        assert!(e.contains("never written"), "{e}");
        let e = t.check(&plan.req, &good, 20).unwrap_err();
        assert!(
            e.contains("used length 20, expected at least the 108-byte response"),
            "{e}"
        );
        let mut out = good.clone();
        out[0] = 200;
        let e = t.check(&plan.req, &out, plan.writable).unwrap_err();
        assert!(
            e.contains("sense_len 200, expected at most sense_size 96"),
            "{e}"
        );
    }

    #[test]
    fn only_a_write_may_count_its_data_out_in_the_used_length() {
        let mut luns = [lun(0, 0, 512, true)];
        let mut t = Traffic::new(&mut luns, LAYOUT, Mix::Random { max_bytes: 4096 });
        let w = Req {
            op: Op::Write,
            ..read(0, 200, 2)
        };
        assert_eq!(t.long_used_len(&w, 1024 + 108), Some(108));
        assert_eq!(t.long_used_len(&w, 1024 + 109), None);
        assert_eq!(t.long_used_len(&read(0, 200, 2), 1024 + 108), None);
    }

    #[test]
    fn b_left_by_an_earlier_check_passes_only_where_allowed() {
        let mut luns = [lun(0, 0, 512, true)];
        let mut imgs = [image()];
        let s = luns[0].medium.stripes[0];
        let at = (s * STRIPE) as usize;
        disk::fill(SEED, Pattern::After, at as u64, &mut imgs[0][at..at + 512]);
        let block = at as u64 / 512;
        let mut t = Traffic::new(&mut luns, LAYOUT, Mix::Random { max_bytes: 4096 });
        let (plan, out) = answer(&mut t, read(0, block, 1), &mut imgs);
        let e = t.check(&plan.req, &out, plan.writable).unwrap_err();
        assert!(e.contains(&std::format!("block {} byte 0", block)), "{e}");
        t.luns[0].medium.earlier_b = true;
        assert_eq!(t.check(&plan.req, &out, plan.writable), Ok(512));
    }

    #[test]
    fn requests_are_laid_out_header_data_out_response_data_in() {
        let mut luns = [lun(0, 0, 512, true), lun(3, 0x123, 512, false)];
        let mut t = Traffic::new(&mut luns, LAYOUT, Mix::Random { max_bytes: 65536 });
        let (mut reads, mut writes) = (0, 0);
        for n in 0..500 {
            let p = t.plan(n, &mut Rng::for_request(7, 0, n));
            let data = t.data_len(&p.req);
            assert!(data > 0 && data <= 65536);
            match p.req.op {
                Op::Write => {
                    writes += 1;
                    assert_eq!((p.readable, p.writable), (51 + data, 108));
                    assert_eq!(p.req.lun, 0, "a write to a LUN we may not write");
                    let m = &t.luns[0].medium;
                    let first = p.req.block * 512 / STRIPE;
                    let last = (p.req.block + u64::from(p.req.blocks) - 1) * 512 / STRIPE;
                    assert!(first == last && m.stripes.contains(&first));
                }
                Op::Read => {
                    reads += 1;
                    assert_eq!((p.readable, p.writable), (51, 108 + data));
                }
                Op::TestUnitReady => unreachable!(),
            }
            assert_eq!(p.cuts, [51, p.readable + 108]);
            assert_eq!(p.whole, [(0, 51), (p.readable, p.readable + 108)]);
            let mut r = vec![0u8; p.readable as usize];
            t.fill(&p.req, &mut r);
            let l = &t.luns[p.req.lun];
            assert_eq!(r[..8], lun_field(l.target, l.lun));
            assert_eq!(r[8..16], n.to_le_bytes(), "the tag");
            let op = r[19];
            let want = match (p.req.op, p.req.sixteen) {
                (Op::Read, false) => cdb::READ_10,
                (Op::Read, true) => cdb::READ_16,
                (Op::Write, false) => cdb::WRITE_10,
                _ => cdb::WRITE_16,
            };
            assert_eq!(op, want);
        }
        assert!(
            reads > 100 && writes > 100,
            "{reads} reads, {writes} writes"
        );
    }

    #[test]
    fn overlapping_requests_conflict_where_either_writes() {
        let mut luns = [lun(0, 0, 512, true), lun(0, 1, 512, true)];
        let t = Traffic::new(&mut luns, LAYOUT, Mix::TestUnitReady);
        let w = |lun, block, blocks| Req {
            op: Op::Write,
            ..read(lun, block, blocks)
        };
        assert!(t.conflicts(&w(0, 10, 4), &read(0, 13, 1)));
        assert!(!t.conflicts(&w(0, 10, 4), &read(0, 14, 1)));
        assert!(!t.conflicts(&w(0, 10, 4), &read(1, 10, 4)), "another LUN");
        assert!(!t.conflicts(&read(0, 10, 4), &read(0, 11, 1)));
        let tur = Req {
            op: Op::TestUnitReady,
            ..read(0, 0, 0)
        };
        assert!(!t.conflicts(&tur, &w(0, 0, 4)));
    }
}
