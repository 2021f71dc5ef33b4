//! virtio-scsi: the LUNs `disks=` configures, held to what the SCSI
//! standards and QEMU's scsi-hd say (`scsi.commands`), its error answers
//! (`scsi.errors`), task management (`scsi.control`), and many commands in
//! flight on every request queue in every setup the adapter takes, with
//! every byte read checked against the scratch pattern (`scsi.stress`, on
//! the shared engine `virtio::stress` with `workloads::scsi`).
//!
//! Disk contents follow `zvtest_contract::disk`: pattern A everywhere but
//! the header, pattern B written only into the writable stripes of LUNs
//! named in `scratch=` whose header matches `seed=` and their size.

use super::setups::Setup;
use crate::check::Outcome;
use crate::discovery::Device;
use crate::fmt::{Hex, HexW, ToText};
use crate::format;
use crate::machine::Machine;
use crate::virtio::ccw::CcwTransport;
use crate::virtio::devices::blk::Order as BlkOrder;
use crate::virtio::devices::scsi::{
    self, cdb, lun_field, response, CmdResponse, Data, Inquiry, Scsi, Sense, Slot, CHECK_CONDITION,
    DATA_AT, GOOD, KEY_ILLEGAL_REQUEST, KEY_UNIT_ATTENTION,
};
use crate::virtio::indicators::{self, IndicatorMode, Indicators};
use crate::virtio::queue::DriveError;
use crate::virtio::ring::QueueError;
use crate::virtio::stress::{self, Completion, Options, Poison, QueueStats, ShapeLimits};
use crate::virtio::transport::{
    driver_ok_status, has, negotiate, Transport, F_EVENT_IDX, F_INDIRECT_DESC, F_RING_PACKED,
};
use crate::workloads::blk::Medium;
use crate::workloads::scsi::{Lun as StressLun, Mix, Traffic, ERRORS_KEPT};
use alloc::string::String;
use alloc::vec::Vec;
use zvtest_contract::disk::{self, DiskConfig, HeaderSays, Pattern, STRIPE};

/// Largest data transfer of one request: slots are reused, and stay the
/// device's until its reset.
const MAX_XFER: usize = 64 * 1024;
/// Where LUNs with no `bs=` stop being probed for a missing LUN.
const PROBE_LUN: u16 = 200;

/// Why a check that needs LUNs did nothing.
const NO_LUNS: &str = "no LUN of a virtio-scsi-ccw device in disks=";

/// One configured LUN of a controller.
#[derive(Clone)]
struct Lun {
    cfg: DiskConfig,
    target: u8,
    lun: u16,
    /// Named in `scratch=` (its header is checked before any write).
    scratch: bool,
}

impl Lun {
    fn blocks(&self) -> u64 {
        self.cfg.size / u64::from(self.cfg.block_size)
    }

    fn name(&self) -> String {
        format!("{}", self.cfg.id)
    }
}

/// The LUNs `disks=` configures on the controller at `d`.
fn luns(m: &Machine, d: &Device) -> Vec<Lun> {
    m.cfg
        .disks
        .iter()
        .filter(|c| c.id.bus == d.bus_id())
        .filter_map(|c| {
            let (target, lun) = c.id.lun?;
            Some(Lun {
                cfg: c.clone(),
                target,
                lun,
                scratch: m.cfg.scratch.iter().any(|s| s.covers(&c.id)),
            })
        })
        .collect()
}

/// A controller brought to DRIVER_OK, with one slot for commands issued
/// one at a time.
struct Hba {
    bus: String,
    t: CcwTransport,
    ind: Indicators,
    dev: Scsi,
    slot: Slot,
    tag: u64,
    /// Writes whose used length counted the data-out buffer (QEMU's way).
    long_used_lens: u32,
    /// VIRTIO_F_INDIRECT_DESC negotiated: a chain takes one descriptor.
    indirect: bool,
}

/// What a command brought back.
struct Answer {
    resp: CmdResponse,
    data: Vec<u8>,
}

impl Answer {
    fn sense(&self) -> Option<Sense> {
        self.resp.sense()
    }

    /// How the answer reads in a failure message.
    fn text(&self) -> String {
        let mut s = format!(
            "response {} ({}), status {}",
            self.resp.response,
            response::name(self.resp.response),
            Hex(self.resp.status.into())
        );
        if let Some(sense) = self.sense() {
            s.push_str(&format!(", {}", sense));
        }
        s
    }
}

/// A bring-up step's failure as text.
fn fail(what: &str, e: &dyn ToText) -> String {
    format!("{}: {}", what, e.text().as_str())
}

impl Hba {
    /// Brought up at the highest revision up to `max` the device takes.
    fn open(d: &Device, max: u8) -> Result<Hba, String> {
        Self::open_with(d, max, 0).map(|(h, _)| h)
    }

    /// The same, asking for the device feature bits `extra` too; returns
    /// the features accepted.
    fn open_with(d: &Device, max: u8, extra: u64) -> Result<(Hba, u64), String> {
        let mut t = CcwTransport::open(d.subchannel.sid, max).map_err(|e| fail("open", &e))?;
        let features = negotiate(&mut t, 1 << F_INDIRECT_DESC | 1 << F_EVENT_IDX | extra)
            .map_err(|e| fail("negotiate", &e))?;
        // Adapter indicators: classic ones leave status pending.
        let h = Self::bring_up(d, t, features, IndicatorMode::Adapter)?;
        Ok((h, features))
    }

    /// Brought up as `s` says; None where the device does not take it
    /// (revision refused, ring format or EVENT_IDX not offered).
    fn open_as(d: &Device, s: Setup) -> Result<Option<Hba>, String> {
        let mut t =
            CcwTransport::open(d.subchannel.sid, s.revision).map_err(|e| fail("open", &e))?;
        if t.revision() != s.revision {
            return Ok(None);
        }
        let wanted = 1 << F_INDIRECT_DESC
            | u64::from(s.event_idx) << F_EVENT_IDX
            | u64::from(s.packed) << F_RING_PACKED;
        let features = negotiate(&mut t, wanted).map_err(|e| fail("negotiate", &e))?;
        // The setup's own features must be taken; indirect tables are a bonus.
        let required = wanted & !(1 << F_INDIRECT_DESC);
        if features & required != required {
            return Ok(None);
        }
        Self::bring_up(d, t, features, s.mode).map(Some)
    }

    /// Indicators, queues and DRIVER_OK on a negotiated transport.
    fn bring_up(
        d: &Device,
        mut t: CcwTransport,
        features: u64,
        mode: IndicatorMode,
    ) -> Result<Hba, String> {
        let ind = Indicators::install(&mut t, mode).map_err(|e| fail("indicators", &e))?;
        let dev = Scsi::setup(&mut t, features).map_err(|e| fail("queues", &e))?;
        t.set_status(driver_ok_status(t.revision()))
            .map_err(|e| fail("DRIVER_OK", &e))?;
        let h = Hba {
            bus: format!("{}", d.bus_id()),
            t,
            ind,
            dev,
            slot: Slot::new(MAX_XFER),
            tag: 0,
            long_used_lens: 0,
            indirect: has(features, F_INDIRECT_DESC),
        };
        Ok(h)
    }

    fn next_tag(&mut self) -> u64 {
        self.tag += 1;
        self.tag
    }

    /// One command on request queue `q` (0-based), waited for. `out` is
    /// the data-out for `Data::Out`.
    fn command(
        &mut self,
        q: usize,
        target: u8,
        lun: u16,
        cmd: &[u8],
        data: Data,
        out: &[u8],
    ) -> Result<Answer, String> {
        let tag = self.next_tag();
        let queue_no = usize::from(scsi::FIRST_REQUEST_QUEUE) + q;
        let whence = format!(
            "{} target {} lun {} opcode {} queue {}",
            self.bus.as_str(),
            target,
            lun,
            HexW(cmd[0].into(), 2),
            queue_no
        );
        if let Data::Out(_) = data {
            self.slot.mem.write(DATA_AT, out);
        }
        let chain = self
            .dev
            .layout
            .command_chain(&self.slot, lun_field(target, lun), tag, cmd, data)
            .ok_or_else(|| format!("{}: the request does not fit its slot", whence.as_str()))?;
        let queue = self
            .dev
            .requests
            .get_mut(q)
            .ok_or_else(|| format!("{}: no such request queue", whence.as_str()))?;
        self.ind.acknowledge();
        let token = queue
            .submit(&mut self.t, &chain, false)
            .map_err(|e| format!("{}: submit: {}", whence.as_str(), e))?;
        let resp_len = self.dev.layout.response_len() as u32;
        let (used_token, used_len) = match queue.wait_used(&mut self.t) {
            Ok(u) => (u.token, u.len),
            Err(DriveError::Queue(QueueError::UsedLenTooLong { id, len, .. })) => {
                // QEMU reports the data-out buffer too (virtio-scsi.c
                // virtio_scsi_complete_req: qsgl.size + resp_iov.size);
                // any other excess is a failure.
                match data {
                    Data::Out(n) if len == n + resp_len => {
                        self.long_used_lens += 1;
                        (id, resp_len)
                    }
                    _ => {
                        return Err(format!(
                            "{}: used length {} for {} device-writable bytes",
                            whence.as_str(),
                            len,
                            resp_len
                        ))
                    }
                }
            }
            Err(e) => return Err(format!("{}: {}", whence.as_str(), e)),
        };
        if used_token != token {
            return Err(format!(
                "{}: used token {} for submitted {}",
                whence.as_str(),
                used_token,
                token
            ));
        }
        if used_len < resp_len {
            return Err(format!(
                "{}: used length {}, less than the {}-byte response",
                whence.as_str(),
                used_len,
                resp_len
            ));
        }
        let resp = self.dev.layout.response(&self.slot);
        // More sense than the buffer holds: a length in the wrong byte
        // order, say (section 5.6.6.1: at most sense_size).
        if resp.sense_len as usize > self.dev.layout.sense_size {
            return Err(format!(
                "{}: sense_len {} past sense_size {}",
                whence.as_str(),
                resp.sense_len,
                self.dev.layout.sense_size
            ));
        }
        let mut got = Vec::new();
        if let Data::In(n) = data {
            let moved = n.saturating_sub(if resp.status == GOOD { resp.resid } else { n });
            got.resize(moved as usize, 0);
            self.slot.mem.read(DATA_AT, &mut got);
        }
        Ok(Answer { resp, data: got })
    }

    /// A command that must end GOOD with response OK.
    fn good(
        &mut self,
        l: &Lun,
        cmd: &[u8],
        data: Data,
        out: &[u8],
        what: &str,
    ) -> Result<Vec<u8>, String> {
        let a = self.command(0, l.target, l.lun, cmd, data, out)?;
        if a.resp.response != response::OK || a.resp.status != GOOD {
            return Err(format!(
                "{} {}: expected response OK, status GOOD; got {}",
                l.name().as_str(),
                what,
                a.text().as_str()
            ));
        }
        Ok(a.data)
    }

    /// TEST UNIT READY until GOOD: a reset (the driver's own, at
    /// negotiation) leaves a UNIT ATTENTION pending that the first command
    /// reports (SAM-5 5.14; QEMU's scsi_device_purge_requests sets 29/00),
    /// and reporting it clears it. Returns the attentions seen.
    fn clear_unit_attention(&mut self, l: &Lun) -> Result<Vec<Sense>, String> {
        let mut seen = Vec::new();
        for _ in 0..4 {
            let a = self.command(0, l.target, l.lun, &cdb::test_unit_ready(), Data::None, &[])?;
            match (a.resp.response, a.resp.status, a.sense()) {
                (response::OK, GOOD, _) => return Ok(seen),
                (response::OK, CHECK_CONDITION, Some(s)) if s.key == KEY_UNIT_ATTENTION => {
                    seen.push(s)
                }
                _ => {
                    return Err(format!(
                        "{} TEST UNIT READY: expected GOOD (after UNIT ATTENTIONs); got {}",
                        l.name().as_str(),
                        a.text().as_str()
                    ))
                }
            }
        }
        Err(format!(
            "{} TEST UNIT READY: still UNIT ATTENTION after {} tries",
            l.name().as_str(),
            seen.len()
        ))
    }

    /// A TMF request, waited for; returns the response byte.
    fn tmf(&mut self, subtype: u32, target: u8, lun: u16, tag: u64) -> Result<u8, String> {
        let req = scsi::tmf_request(subtype, lun_field(target, lun), tag, self.dev.layout.order);
        let chain = scsi::tmf_chain(&self.slot, &req);
        self.ind.acknowledge();
        let whence = format!(
            "{} control queue 0 TMF {} target {} lun {}",
            self.bus.as_str(),
            subtype,
            target,
            lun
        );
        let token = self
            .dev
            .control
            .submit(&mut self.t, &chain, false)
            .map_err(|e| format!("{}: {}", whence.as_str(), e))?;
        let used = self
            .dev
            .control
            .wait_used(&mut self.t)
            .map_err(|e| format!("{}: {}", whence.as_str(), e))?;
        if used.token != token || used.len < 1 {
            return Err(format!(
                "{}: used token {} length {} for token {}",
                whence.as_str(),
                used.token,
                used.len,
                token
            ));
        }
        Ok(scsi::tmf_response(&self.slot))
    }
}

impl Drop for Hba {
    fn drop(&mut self) {
        // The slots' memory goes only after this reset (the transport keeps it).
        let _ = self.t.reset();
    }
}

/// The controllers and their LUNs; a skip or a failure when there is
/// nothing to drive.
fn controllers(m: &Machine) -> Result<Vec<(&Device, Vec<Lun>)>, Outcome> {
    let devices: Vec<&Device> = m.inventory.virtio_devices(scsi::DEVICE_ID).collect();
    if devices.is_empty() {
        let configured = m.cfg.disks.iter().any(|d| d.id.lun.is_some());
        return Err(if configured {
            Outcome::fail("disks= names SCSI LUNs but there is no virtio-scsi-ccw device")
        } else {
            Outcome::skip("no virtio-scsi-ccw device")
        });
    }
    Ok(devices.into_iter().map(|d| (d, luns(m, d))).collect())
}

/// The first configured LUN's whence for messages, with the seed.
fn replay(m: &Machine) -> String {
    format!("(replay: seed={})", Hex(m.cfg.seed))
}

fn mismatch_text(
    l: &Lun,
    m: (u64, u8, u8, Pattern),
    how: &str,
    seed: u64,
) -> (String, String, String) {
    (
        format!(
            "{} byte at image offset {} ({}) (replay: seed={})",
            l.name().as_str(),
            Hex(m.0),
            how,
            Hex(seed)
        ),
        format!("{} (pattern {})", Hex(m.1.into()), m.3.name()),
        format!("{}", Hex(m.2.into())),
    )
}

/// Whether image offset `o` of `l` may hold pattern B: a writable stripe
/// of a LUN the firmware writes (named scratch, not read-only).
fn may_hold_b(l: &Lun, seed: u64, o: u64) -> bool {
    l.scratch && !l.cfg.read_only && disk::writable_stripe(seed, l.cfg.size, o / STRIPE)
}

/// Bytes as text, `.` for anything not printable ASCII (`from_utf8_lossy`
/// would pull in unwinding).
fn ascii(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if (0x20..0x7f).contains(&c) {
                c as char
            } else {
                '.'
            }
        })
        .collect()
}

/// Whether a LUN named scratch may be written: its header names our seed
/// and its size. Err says why not.
fn scratch_ok(h: &mut Hba, l: &Lun, seed: u64) -> Result<(), String> {
    let bs = l.cfg.block_size;
    let first = h.good(
        l,
        &cdb::read_10(0, 1),
        Data::In(bs),
        &[],
        "READ(10) of block 0",
    )?;
    match disk::read_header(&first, seed, l.cfg.size) {
        HeaderSays::Scratch => Ok(()),
        HeaderSays::NotScratch => Err(format!(
            "{} is named in scratch= but holds no scratch header: not written",
            l.name().as_str()
        )),
        HeaderSays::Other { seed: s, size } => Err(format!(
            "{} is named in scratch= but its header is for seed {} size {} (expected seed {} size {}): not written",
            l.name().as_str(),
            Hex(s),
            size,
            Hex(seed),
            l.cfg.size
        )),
    }
}

/// INQUIRY, TEST UNIT READY, READ CAPACITY (10) and (16), REPORT LUNS,
/// MODE SENSE (6) and (10), SYNCHRONIZE CACHE, READ (10) and (16) of
/// pattern A, and on scratch LUNs WRITE (10) and (16) of pattern B into
/// two writable stripes, read back.
fn commands_on(m: &Machine, h: &mut Hba, l: &Lun, all: &[Lun]) -> Result<(), Outcome> {
    let e = |s: String| Outcome::fail(&format!("{} {}", s.as_str(), replay(m).as_str()));
    let name = l.name();
    let inq = h
        .good(l, &cdb::inquiry(96), Data::In(96), &[], "INQUIRY")
        .map_err(e)?;
    let Some(i) = Inquiry::decode(&inq) else {
        return Err(Outcome::mismatch(
            &format!("{} INQUIRY data length", name.as_str()),
            ">= 32",
            inq.len(),
        ));
    };
    if (i.qualifier, i.device_type) != (0, 0) {
        return Err(Outcome::mismatch(
            &format!(
                "{} INQUIRY peripheral qualifier/device type (configured LUN missing?)",
                name.as_str()
            ),
            "0/0 (a direct-access device is connected)",
            format!("{}/{}", i.qualifier, HexW(i.device_type.into(), 2)).as_str(),
        ));
    }
    // scsi-hd's defaults (hw/scsi/scsi-disk.c scsi_realize: "QEMU",
    // "QEMU HARDDISK"), space-padded as SPC-4 6.6.2 has it.
    for (what, want, got) in [
        ("vendor", &b"QEMU    "[..], &i.vendor[..]),
        ("product", &b"QEMU HARDDISK   "[..], &i.product[..]),
    ] {
        if want != got {
            return Err(Outcome::mismatch(
                &format!("{} INQUIRY {}", name.as_str(), what),
                ascii(want).as_str(),
                ascii(got).as_str(),
            ));
        }
    }
    let ua = h.clear_unit_attention(l).map_err(e)?;
    if let Some(s) = ua.first() {
        crate::out!(
            "# scsi {}: first TEST UNIT READY after the reset got UNIT ATTENTION ({}), retried as SAM-5 5.14 has it\n",
            name.as_str(),
            *s
        );
    }
    let bs = l.cfg.block_size;
    let blocks = l.blocks();
    let rc10 = h
        .good(
            l,
            &cdb::read_capacity_10(),
            Data::In(8),
            &[],
            "READ CAPACITY(10)",
        )
        .map_err(e)?;
    let want10 = (u32::try_from(blocks - 1).unwrap_or(u32::MAX), bs);
    match scsi::decode_capacity_10(&rc10) {
        Some(got) if got == want10 => {}
        got => {
            return Err(Outcome::mismatch(
                &format!("{} READ CAPACITY(10) last LBA/block length", name.as_str()),
                format!("{}/{}", want10.0, want10.1).as_str(),
                format!("{:?}", got.map(|g| (g.0, g.1))).as_str(),
            ))
        }
    }
    let rc16 = h
        .good(
            l,
            &cdb::read_capacity_16(32),
            Data::In(32),
            &[],
            "READ CAPACITY(16)",
        )
        .map_err(e)?;
    match scsi::decode_capacity_16(&rc16) {
        Some((last, len)) if (last, len) == (blocks - 1, bs) => {}
        got => {
            return Err(Outcome::mismatch(
                &format!("{} READ CAPACITY(16) last LBA/block length", name.as_str()),
                format!("{}/{}", blocks - 1, bs).as_str(),
                format!("{:?}", got).as_str(),
            ))
        }
    }
    // REPORT LUNS goes to LUN 0: QEMU answers it for the target there
    // (scsi-bus.c scsi_target_send_command refuses it on other LUNs), and
    // always lists LUN 0 (scsi_target_emulate_report_luns).
    let target0 = Lun {
        lun: 0,
        ..l.clone()
    };
    let rl = h
        .good(
            &target0,
            &cdb::report_luns(4096),
            Data::In(4096),
            &[],
            "REPORT LUNS",
        )
        .map_err(e)?;
    let mut want_luns: Vec<u16> = all
        .iter()
        .filter(|o| o.target == l.target)
        .map(|o| o.lun)
        .chain([0])
        .collect();
    want_luns.sort_unstable();
    want_luns.dedup();
    let mut got_luns = scsi::decode_report_luns(&rl);
    if let Some(g) = got_luns.as_mut() {
        g.sort_unstable();
    }
    if got_luns.as_ref() != Some(&want_luns) {
        return Err(Outcome::mismatch(
            &format!(
                "{} REPORT LUNS of target {} (LUN 0 always listed)",
                name.as_str(),
                l.target
            ),
            format!("{:?}", want_luns.as_slice()).as_str(),
            match &got_luns {
                Some(g) => format!("{:?}", g.as_slice()),
                None => String::from("a malformed list"),
            }
            .as_str(),
        ));
    }
    let ms6 = h
        .good(
            l,
            &cdb::mode_sense_6(255),
            Data::In(255),
            &[],
            "MODE SENSE(6)",
        )
        .map_err(e)?;
    // Mode data length counts the bytes after itself (SPC-4 7.5.5); it
    // must fit what came. QEMU sends the whole allocation length, zero
    // padded (scsi-disk.c scsi_disk_emulate_command: MIN(r->buflen, xfer),
    // 7.2 and 10.0), so only "fits" can be asked of it.
    let len6 = ms6.first().map_or(0, |&b| usize::from(b) + 1);
    if len6 < 4 || len6 > ms6.len() {
        return Err(Outcome::mismatch(
            &format!("{} MODE SENSE(6) mode data length + 1", name.as_str()),
            format!("4..={} (the bytes transferred)", ms6.len()).as_str(),
            len6,
        ));
    }
    let ms10 = h
        .good(
            l,
            &cdb::mode_sense_10(1024),
            Data::In(1024),
            &[],
            "MODE SENSE(10)",
        )
        .map_err(e)?;
    let len10 = ms10
        .get(..2)
        .map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])) + 2);
    if len10 < 8 || len10 > ms10.len() {
        return Err(Outcome::mismatch(
            &format!("{} MODE SENSE(10) mode data length + 2", name.as_str()),
            format!("8..={} (the bytes transferred)", ms10.len()).as_str(),
            len10,
        ));
    }
    h.good(
        l,
        &cdb::synchronize_cache_10(),
        Data::None,
        &[],
        "SYNCHRONIZE CACHE(10)",
    )
    .map_err(e)?;
    // Reads: the first 64 KiB with READ(10), the last with READ(16).
    let n = (MAX_XFER as u64 / u64::from(bs)).min(blocks);
    let seed = m.cfg.seed;
    let before = |_| Some(Pattern::Before);
    for (lba, sixteen) in [(0, false), (blocks - n, true)] {
        let (cmd, what): (Vec<u8>, &str) = if sixteen {
            (cdb::read_16(lba, n as u32).to_vec(), "READ(16)")
        } else {
            (cdb::read_10(lba as u32, n as u16).to_vec(), "READ(10)")
        };
        let data = h
            .good(l, &cmd, Data::In(n as u32 * bs), &[], what)
            .map_err(e)?;
        if data.len() != (n * u64::from(bs)) as usize {
            return Err(Outcome::mismatch(
                &format!("{} {} bytes at LBA {}", name.as_str(), what, lba),
                n * u64::from(bs),
                data.len(),
            ));
        }
        // Stripes a previous check wrote may hold B: A or B there.
        let expect = |o: u64| {
            if may_hold_b(l, seed, o) {
                None
            } else {
                before(o)
            }
        };
        if let Some(bad) =
            crate::judge::disk_sectors(seed, lba * u64::from(bs), &data, bs as usize, &expect)
        {
            let (msg, want, got) = mismatch_text(l, bad, what, seed);
            return Err(Outcome::mismatch(&msg, want.as_str(), got.as_str()));
        }
    }
    if !l.scratch || l.cfg.read_only {
        return Ok(());
    }
    scratch_ok(h, l, seed).map_err(|s| Outcome::fail(&s))?;
    // Whole stripes, so a run that stops here leaves none half-written.
    let stripes: Vec<u64> = disk::writable_stripes(seed, l.cfg.size).take(2).collect();
    for (k, &s) in stripes.iter().enumerate() {
        let at = s * STRIPE;
        let lba = at / u64::from(bs);
        let nb = STRIPE / u64::from(bs);
        let mut b = alloc::vec![0u8; STRIPE as usize];
        disk::fill(seed, Pattern::After, at, &mut b);
        let (w, r, what): (Vec<u8>, Vec<u8>, &str) = if k == 0 {
            (
                cdb::write_10(lba as u32, nb as u16).to_vec(),
                cdb::read_10(lba as u32, nb as u16).to_vec(),
                "WRITE(10)",
            )
        } else {
            (
                cdb::write_16(lba, nb as u32).to_vec(),
                cdb::read_16(lba, nb as u32).to_vec(),
                "WRITE(16)",
            )
        };
        h.good(l, &w, Data::Out(STRIPE as u32), &b, what)
            .map_err(e)?;
        let back = h
            .good(l, &r, Data::In(STRIPE as u32), &[], "read back")
            .map_err(e)?;
        if let Some(bad) =
            crate::judge::disk_sectors(seed, at, &back, bs as usize, &|_| Some(Pattern::After))
        {
            let (msg, want, got) = mismatch_text(l, bad, "read back after a write", seed);
            return Err(Outcome::mismatch(&msg, want.as_str(), got.as_str()));
        }
    }
    crate::out!(
        "# scsi {}: {} writable stripes written with pattern B and read back\n",
        name.as_str(),
        stripes.len()
    );
    Ok(())
}

/// The legacy interface (revision 0), whose header fields are big-endian:
/// the sense length of the reset's UNIT ATTENTION, READ CAPACITY (16) and
/// a READ (10) of pattern A, per LUN. A device that refuses revision 0
/// (`max_revision`) is left out.
fn legacy_round(m: &Machine, d: &Device, luns: &[Lun]) -> Result<(), Outcome> {
    let mut h = Hba::open(d, 0)
        .map_err(|e| Outcome::fail(&format!("{} rev 0: {}", d.bus_id(), e.as_str())))?;
    if h.t.revision() != 0 {
        return Ok(());
    }
    let e = |s: String| Outcome::fail(&format!("rev 0: {} {}", s.as_str(), replay(m).as_str()));
    for l in luns {
        let ua = h.clear_unit_attention(l).map_err(e)?;
        if let Some(s) = ua.first().filter(|s| (s.asc, s.ascq) != (0x29, 0)) {
            return Err(Outcome::mismatch(
                &format!(
                    "{} rev 0: UNIT ATTENTION after the reset",
                    l.name().as_str()
                ),
                "ASC/ASCQ 29/00",
                *s,
            ));
        }
        let bs = l.cfg.block_size;
        let rc16 = h
            .good(
                l,
                &cdb::read_capacity_16(32),
                Data::In(32),
                &[],
                "rev 0 READ CAPACITY(16)",
            )
            .map_err(e)?;
        let want = (l.blocks() - 1, bs);
        if scsi::decode_capacity_16(&rc16) != Some(want) {
            return Err(Outcome::mismatch(
                &format!(
                    "{} rev 0 READ CAPACITY(16) last LBA/block length",
                    l.name().as_str()
                ),
                format!("{}/{}", want.0, want.1).as_str(),
                format!("{:?}", scsi::decode_capacity_16(&rc16)).as_str(),
            ));
        }
        let n = (8192 / bs).max(1) as u16;
        let data = h
            .good(
                l,
                &cdb::read_10(0, n),
                Data::In(u32::from(n) * bs),
                &[],
                "rev 0 READ(10)",
            )
            .map_err(e)?;
        let seed = m.cfg.seed;
        let expect = |o: u64| (!may_hold_b(l, seed, o)).then_some(Pattern::Before);
        if let Some(bad) = crate::judge::disk_sectors(seed, 0, &data, bs as usize, &expect) {
            let (msg, want, got) = mismatch_text(l, bad, "rev 0 READ(10)", seed);
            return Err(Outcome::mismatch(&msg, want.as_str(), got.as_str()));
        }
    }
    crate::out!(
        "# scsi {}: rev 0 (big-endian headers): {} LUNs read\n",
        h.bus.as_str(),
        luns.len()
    );
    Ok(())
}

pub fn commands(m: &mut Machine) -> Outcome {
    let ctrls = match controllers(m) {
        Ok(c) => c,
        Err(o) => return o,
    };
    let mut note = String::new();
    for (d, luns) in ctrls {
        let mut h = match Hba::open(d, 2) {
            Ok(h) => h,
            Err(e) => return Outcome::fail(&format!("{} virtio-scsi: {}", d.bus_id(), e.as_str())),
        };
        crate::out!(
            "# scsi {}: rev {}, {} request queues, cdb_size {}, sense_size {}, max_target {}, max_lun {}, cmd_per_lun {}, seg_max {}, max_sectors {}\n",
            h.bus.as_str(),
            h.t.revision(),
            h.dev.config.num_queues,
            h.dev.config.cdb_size,
            h.dev.config.sense_size,
            h.dev.config.max_target,
            h.dev.config.max_lun,
            h.dev.config.cmd_per_lun,
            h.dev.config.seg_max,
            h.dev.config.max_sectors
        );
        if luns.is_empty() {
            note.push_str(&format!(
                "{}: no LUN in disks=, nothing compared; ",
                d.bus_id()
            ));
            continue;
        }
        // Every configured LUN first, so that all missing ones are named.
        let mut missing = Vec::new();
        for l in &luns {
            let a = match h.command(0, l.target, l.lun, &cdb::inquiry(36), Data::In(36), &[]) {
                Ok(a) => a,
                Err(e) => return Outcome::fail(&e),
            };
            let there = a.resp.response == response::OK
                && a.resp.status == GOOD
                && Inquiry::decode(&a.data).is_some_and(|i| i.qualifier == 0);
            if !there {
                missing.push(format!("{} ({})", l.name().as_str(), a.text().as_str()));
            }
        }
        if !missing.is_empty() {
            return Outcome::mismatch(
                &format!("{}: LUNs configured in disks= missing", h.bus.as_str()),
                "INQUIRY: response OK, status GOOD, peripheral qualifier 0",
                missing.join("; ").as_str(),
            );
        }
        for l in &luns {
            if let Err(o) = commands_on(m, &mut h, l, &luns) {
                return o;
            }
        }
        if h.long_used_lens > 0 {
            crate::out!(
                "# scsi {}: {} writes got a used length counting the data-out buffer (QEMU virtio-scsi.c; virtio 1.2 2.7.8.2 says bytes written)\n",
                h.bus.as_str(),
                h.long_used_lens
            );
        }
        // One transport on the subchannel at a time: this one resets first.
        drop(h);
        if let Err(o) = legacy_round(m, d, &luns) {
            return o;
        }
    }
    if note.is_empty() {
        Outcome::Pass
    } else {
        Outcome::PassNote(note)
    }
}

/// Expects `a` to be CHECK CONDITION with `key`/`asc`/`ascq`.
fn expect_sense(a: &Answer, key: u8, asc: u8, ascq: u8, what: &str) -> Result<(), Outcome> {
    let want = Sense { key, asc, ascq };
    if a.resp.response == response::OK
        && a.resp.status == CHECK_CONDITION
        && a.sense() == Some(want)
    {
        return Ok(());
    }
    Err(Outcome::mismatch(
        what,
        format!("response OK, status CHECK CONDITION (0x2), {}", want).as_str(),
        a.text().as_str(),
    ))
}

/// Runs `body` on every controller with a configured LUN, the adapter
/// brought up at revision 2 and every LUN's UNIT ATTENTION (left by the
/// bring-up's reset, and answered before anything else: scsi-bus.c
/// scsi_req_new) cleared; `body` gets the first LUN and all of them. A
/// SKIP when no controller has a LUN.
fn each_controller(
    m: &mut Machine,
    body: impl Fn(&mut Hba, &Lun, &[Lun]) -> Result<(), Outcome>,
) -> Outcome {
    let ctrls = match controllers(m) {
        Ok(c) => c,
        Err(o) => return o,
    };
    let mut ran = false;
    for (d, luns) in ctrls {
        let Some(l) = luns.first().cloned() else {
            continue;
        };
        ran = true;
        let mut h = match Hba::open(d, 2) {
            Ok(h) => h,
            Err(e) => return Outcome::fail(&format!("{} virtio-scsi: {}", d.bus_id(), e.as_str())),
        };
        for o in &luns {
            if let Err(e) = h.clear_unit_attention(o) {
                return Outcome::fail(&e);
            }
        }
        if let Err(o) = body(&mut h, &l, &luns) {
            return o;
        }
    }
    if !ran {
        return Outcome::skip(NO_LUNS);
    }
    Outcome::Pass
}

/// A LUN that does not exist on a configured target and a target with no
/// LUN at all, an opcode scsi-hd does not know, a read past the end.
pub fn errors(m: &mut Machine) -> Outcome {
    each_controller(m, |h, l, luns| {
        let e = |s: String| Outcome::fail(&s);
        let bus = h.bus.clone();
        let missing = (1..PROBE_LUN)
            .find(|&n| !luns.iter().any(|o| o.target == l.target && o.lun == n))
            .unwrap_or(PROBE_LUN);
        // QEMU finds the target's device for any LUN (scsi-bus.c
        // do_scsi_device_find) and answers for the missing one with
        // LOGICAL UNIT NOT SUPPORTED (scsi_target_send_command), the
        // same in 7.2 and 10.0; INQUIRY gets qualifier 3, type 0x1f.
        let a = h
            .command(
                0,
                l.target,
                missing,
                &cdb::test_unit_ready(),
                Data::None,
                &[],
            )
            .map_err(e)?;
        expect_sense(
            &a,
            KEY_ILLEGAL_REQUEST,
            0x25,
            0x00,
            &format!(
                "{} target {} lun {} (not configured) TEST UNIT READY",
                bus.as_str(),
                l.target,
                missing
            ),
        )?;
        let a = h
            .command(0, l.target, missing, &cdb::inquiry(36), Data::In(36), &[])
            .map_err(e)?;
        let i = Inquiry::decode(&a.data);
        if a.resp.status != GOOD
            || i.as_ref().map(|i| (i.qualifier, i.device_type)) != Some((3, 0x1f))
        {
            return Err(Outcome::mismatch(
                &format!(
                    "{} target {} lun {} (not configured) INQUIRY peripheral qualifier/type",
                    bus.as_str(),
                    l.target,
                    missing
                ),
                "GOOD, 3/0x1f (no unit can be connected here)",
                format!(
                    "{}, {:?}",
                    a.text().as_str(),
                    i.map(|i| (i.qualifier, i.device_type))
                )
                .as_str(),
            ));
        }
        // A target with no device: virtio_scsi_device_get finds none
        // and the request ends with response BAD_TARGET.
        if let Some(empty) = (0..=255u8)
            .rev()
            .find(|t| !luns.iter().any(|o| o.target == *t))
        {
            let a = h
                .command(0, empty, 0, &cdb::test_unit_ready(), Data::None, &[])
                .map_err(e)?;
            if a.resp.response != response::BAD_TARGET {
                return Err(Outcome::mismatch(
                    &format!(
                        "{} target {} (no device) TEST UNIT READY",
                        bus.as_str(),
                        empty
                    ),
                    "response BAD_TARGET (3)",
                    a.text().as_str(),
                ));
            }
        }
        // Opcode 0x02 has no command in SBC-3 and scsi-hd's table
        // (scsi-disk.c scsi_disk_emulate_command: INVALID_OPCODE).
        let a = h
            .command(0, l.target, l.lun, &[0x02, 0, 0, 0, 0, 0], Data::None, &[])
            .map_err(e)?;
        expect_sense(
            &a,
            KEY_ILLEGAL_REQUEST,
            0x20,
            0x00,
            &format!("{} unknown opcode 0x02", l.name().as_str()),
        )?;
        // One block past the end: LBA OUT OF RANGE (SBC-3 5.15).
        let bs = l.cfg.block_size;
        let a = h
            .command(
                0,
                l.target,
                l.lun,
                &cdb::read_16(l.blocks(), 1),
                Data::In(bs),
                &[],
            )
            .map_err(e)?;
        expect_sense(
            &a,
            KEY_ILLEGAL_REQUEST,
            0x21,
            0x00,
            &format!(
                "{} READ(16) at LBA {} (one past the end)",
                l.name().as_str(),
                l.blocks()
            ),
        )?;
        Ok(())
    })
}

/// LOGICAL UNIT RESET and ABORT TASK on the control queue, answered as
/// section 5.6.6.2 and QEMU's virtio_scsi_do_tmf say; after the reset the
/// LUN reports UNIT ATTENTION 29/00 (SAM-5 5.14.2).
pub fn control(m: &mut Machine) -> Outcome {
    each_controller(m, |h, l, luns| {
        // The bring-up's UNIT ATTENTION is cleared (each_controller): the
        // one after the LUN reset is the reset's.
        let e = |s: String| Outcome::fail(&s);
        let name = l.name();
        let missing = (1..PROBE_LUN)
            .find(|&n| !luns.iter().any(|o| o.target == l.target && o.lun == n))
            .unwrap_or(PROBE_LUN);
        let empty = (0..=255u8)
            .rev()
            .find(|t| !luns.iter().any(|o| o.target == *t));
        let mut cases: Vec<(String, u32, u8, u16, u8)> = Vec::new();
        for o in luns {
            cases.push((
                format!("{} LOGICAL UNIT RESET", o.name().as_str()),
                scsi::TMF_LOGICAL_UNIT_RESET,
                o.target,
                o.lun,
                response::FUNCTION_COMPLETE,
            ));
            cases.push((
                format!("{} ABORT TASK of a tag not in flight", o.name().as_str()),
                scsi::TMF_ABORT_TASK,
                o.target,
                o.lun,
                response::FUNCTION_COMPLETE,
            ));
        }
        cases.extend([
            (
                format!(
                    "{} target {} lun {} (not configured) LOGICAL UNIT RESET",
                    h.bus.as_str(),
                    l.target,
                    missing
                ),
                scsi::TMF_LOGICAL_UNIT_RESET,
                l.target,
                missing,
                response::INCORRECT_LUN,
            ),
            (
                format!("{} CLEAR ACA (QEMU rejects it)", name.as_str()),
                2,
                l.target,
                l.lun,
                response::FUNCTION_REJECTED,
            ),
        ]);
        if let Some(t) = empty {
            cases.push((
                format!(
                    "{} target {} (no device) LOGICAL UNIT RESET",
                    h.bus.as_str(),
                    t
                ),
                scsi::TMF_LOGICAL_UNIT_RESET,
                t,
                0,
                response::BAD_TARGET,
            ));
        }
        for (what, subtype, target, lun, want) in cases {
            let tag = h.next_tag() + 0x1000;
            let got = h.tmf(subtype, target, lun, tag).map_err(e)?;
            if got != want {
                return Err(Outcome::mismatch(
                    &what,
                    format!("{} ({})", want, response::name(want)).as_str(),
                    format!("{} ({})", got, response::name(got)).as_str(),
                ));
            }
            if let Some(o) = luns.iter().find(|o| {
                subtype == scsi::TMF_LOGICAL_UNIT_RESET
                    && want == response::FUNCTION_COMPLETE
                    && (o.target, o.lun) == (target, lun)
            }) {
                let a = h
                    .command(0, target, lun, &cdb::test_unit_ready(), Data::None, &[])
                    .map_err(e)?;
                expect_sense(
                    &a,
                    KEY_UNIT_ATTENTION,
                    0x29,
                    0x00,
                    &format!(
                        "{} first command after LOGICAL UNIT RESET",
                        o.name().as_str()
                    ),
                )?;
                h.clear_unit_attention(o).map_err(e)?;
            }
        }
        Ok(())
    })
}

/// Enough requests for the 16-bit available index to wrap once.
const WRAP_REQUESTS: u64 = 65_536 + 512;

/// Random requests per queue per round, before `stress=`.
const ROUND_REQUESTS: u64 = 128;

/// The most bytes of all LUNs together read whole before the stress.
const READ_ALL_MAX: u64 = 256 << 20;

fn now_us() -> u64 {
    crate::arch::tod() / crate::arch::TOD_PER_US
}

pub fn stress(m: &mut Machine) -> Outcome {
    let ctrls = match controllers(m) {
        Ok(c) => c,
        Err(o) => return o,
    };
    let mut ran = false;
    for (d, luns) in ctrls {
        if luns.is_empty() {
            continue;
        }
        // The index wrap on the first controller: its 65 536 requests
        // cost seconds under TCG, and one queue is what the default asks.
        if let Err(e) = device_stress(m, d, &luns, !ran) {
            return Outcome::fail(&format!(
                "{} virtio-scsi: {} (replay: seed={} only=scsi.stress)",
                d.bus_id(),
                e.as_str(),
                Hex(m.cfg.seed)
            ));
        }
        ran = true;
    }
    if !ran {
        return Outcome::skip(NO_LUNS);
    }
    Outcome::Pass
}

/// The LUNs' media: headers of scratch LUNs checked first (at the best
/// revision), since nothing may be written before.
fn media(d: &Device, luns: &[Lun], seed: u64) -> Result<Vec<StressLun>, String> {
    let mut h = Hba::open(d, 2)?;
    let mut out = Vec::new();
    for l in luns {
        h.clear_unit_attention(l)?;
        let writable = l.scratch && !l.cfg.read_only;
        if writable {
            scratch_ok(&mut h, l, seed)?;
        }
        // Every LUN of disks= is an image of this seed (the runner makes
        // them): pattern A is what a LUN we may not write must hold.
        let mut medium = Medium::new(
            seed,
            l.cfg.size,
            l.cfg.block_size,
            BlkOrder::Little,
            true,
            writable,
        );
        medium.by_block = true;
        // scsi.commands writes B into writable stripes of this boot.
        medium.earlier_b = writable;
        out.push(StressLun {
            name: l.name(),
            target: l.target,
            lun: l.lun,
            medium,
        });
    }
    Ok(out)
}

/// Every request queue of the adapter at `d` in every setup it takes:
/// every LUN read whole first (where they are small enough), random reads
/// and writes over all `luns`; the ring index wrapped (on the first
/// request queue where `wrap`, on all from stress=10 on); and every
/// writable stripe written whole in the last round. A READ or WRITE that
/// fails with the sense of a failed I/O is named at the end; the stress
/// goes on.
fn device_stress(m: &Machine, d: &Device, luns: &[Lun], wrap: bool) -> Result<(), String> {
    let seed = m.cfg.seed;
    let stress = u64::from(m.cfg.stress);
    let mut media = media(d, luns, seed)?;
    let bus = format!("{}", d.bus_id());
    // Every setup the device takes, as blk.stress (no IN_ORDER: the
    // adapter does not offer it), the last one writing every stripe.
    let rounds = super::setups::stress_rounds(false);
    let last = rounds.len() - 1;
    let mut driven = 0u64;
    let mut total = QueueStats::default();
    let mut per_queue: Vec<QueueStats> = Vec::new();
    let mut device_errors: Vec<String> = Vec::new();
    let mut error_count = 0u64;
    let read_all = media.iter().map(|l| l.medium.size).sum::<u64>() <= READ_ALL_MAX;
    for (i, (setup, completion)) in rounds.into_iter().enumerate() {
        let mut h = match Hba::open_as(d, setup)? {
            Some(h) => h,
            // The fill round must run: in whatever setup the device takes.
            None if i == last => Hba::open(d, 2)?,
            None => continue,
        };
        let label = setup.label();
        // The reset of this bring-up left a UNIT ATTENTION on every LUN.
        for l in luns {
            h.clear_unit_attention(l)?;
        }
        let cfg = h.dev.config;
        let layout = h.dev.layout;
        let max_bytes = (MAX_XFER as u32).min(cfg.max_sectors.saturating_mul(512).max(4096));
        let mut phases: Vec<(&str, Mix, u64)> = Vec::new();
        if driven == 0 && read_all {
            phases.push(("read-all", Mix::ReadAll { bytes: max_bytes }, 0));
        }
        if driven == 0 && (wrap || stress >= 10) {
            if m.cfg.index_wrap {
                phases.push(("wrap", Mix::TestUnitReady, WRAP_REQUESTS));
            } else {
                crate::out!(
                    "# scsi {}: index-wrap=no: no ring index wrapped\n",
                    bus.as_str()
                );
            }
        }
        phases.push(("random", Mix::Random { max_bytes }, ROUND_REQUESTS * stress));
        if i == last && media.iter().any(|l| l.medium.writable) {
            phases.push(("fill", Mix::FillStripes { bytes: max_bytes }, 0));
        }
        let Hba {
            t,
            ind,
            dev,
            indirect,
            ..
        } = &mut h;
        per_queue.resize(
            dev.requests.len().max(per_queue.len()),
            QueueStats::default(),
        );
        for (q, queue) in dev.requests.iter_mut().enumerate() {
            let qno = usize::from(scsi::FIRST_REQUEST_QUEUE) + q;
            for &(phase, mix, requests) in &phases {
                if phase == "wrap" && q > 0 && stress < 10 {
                    continue;
                }
                let size = queue.size();
                // The wrap's many requests in the lean shape: as many in
                // flight as the ring holds.
                let lean = phase == "wrap";
                let mut traffic = Traffic::new(&mut media, layout, mix).record_device_errors();
                let opts = Options {
                    seed,
                    // Each round its own requests; the same on a replay.
                    stream: (u64::from(d.subchannel.sid) << 24) | (i as u64) << 8 | qno as u64,
                    depth: size,
                    requests: traffic.requests().unwrap_or(requests),
                    limits: if lean {
                        ShapeLimits::LEAN
                    } else {
                        ShapeLimits {
                            // seg_max counts data segments; the request
                            // header and the response come on top.
                            max_elements: (cfg.seg_max as usize + 2).min(usize::from(size)).max(3),
                            max_len: None,
                            max_gap: 256,
                        }
                    },
                    indirect: if lean || !*indirect { 0 } else { 3 },
                    completion,
                    poison: if lean { Poison::Ends } else { Poison::All },
                    until_us: None,
                    now_us,
                };
                let ints0 = indicators::interrupts_seen();
                let mut wake = || ind.acknowledge();
                let mut progress = |s: &QueueStats, of: u64| {
                    crate::out!(
                        "# scsi {} q{} {} {}: {} of {} requests so far\n",
                        bus.as_str(),
                        qno,
                        label.as_str(),
                        phase,
                        s.completed,
                        of
                    );
                };
                let result = stress::run(t, queue, &mut traffic, &opts, &mut wake, &mut progress);
                for e in &traffic.errors {
                    if device_errors.len() < ERRORS_KEPT {
                        device_errors.push(format!(
                            "queue {} {} {} {}: {}",
                            qno,
                            label.as_str(),
                            completion.name(),
                            phase,
                            e.describe().as_str()
                        ));
                    }
                }
                error_count += traffic.error_count;
                let mut s = result.map_err(|f| {
                    // The failed I/Os before the end, too: they may explain it.
                    let earlier = if error_count > 0 {
                        format!(
                            "; before it {}",
                            device_errors_text(error_count, &device_errors, "").as_str()
                        )
                    } else {
                        String::new()
                    };
                    format!(
                        "queue {} {} {} {} request {}: {}{}",
                        qno,
                        label.as_str(),
                        completion.name(),
                        phase,
                        f.request,
                        f.what.as_str(),
                        earlier.as_str()
                    )
                })?;
                s.interrupts = u64::from(indicators::interrupts_seen() - ints0);
                let (r, w, o, long) = traffic.counts();
                crate::out!(
                    "# scsi {} q{} {} {} {}: {} ({} reads, {} writes, {} other, {} used lengths with the data-out)\n",
                    bus.as_str(),
                    qno,
                    label.as_str(),
                    completion.name(),
                    phase,
                    s,
                    r,
                    w,
                    o,
                    long
                );
                crate::judge::stress_phase(
                    &format!("queue {} {}", qno, label.as_str()),
                    phase == "wrap",
                    completion == Completion::Polled,
                    &s,
                )?;
                per_queue[q].add(&s);
                total.add(&s);
            }
        }
        driven += 1;
    }
    for (q, s) in per_queue.iter().enumerate() {
        crate::out!(
            "# scsi {} queue {}: {} over {} rounds\n",
            bus.as_str(),
            usize::from(scsi::FIRST_REQUEST_QUEUE) + q,
            s,
            driven
        );
    }
    if error_count > 0 {
        return Err(device_errors_text(
            error_count,
            &device_errors,
            " (every other answer checked, the stress run to its end)",
        ));
    }
    for l in &media {
        if l.medium.writable && l.medium.unwritten() != 0 {
            return Err(format!(
                "{}: {} blocks of the writable stripes were never written",
                l.name.as_str(),
                l.medium.unwritten()
            ));
        }
    }
    crate::out!(
        "# scsi {}: {} rounds, {}; {} LUNs, {} written whole in their writable stripes\n",
        bus.as_str(),
        driven,
        total,
        media.len(),
        media.iter().filter(|l| l.medium.writable).count()
    );
    Ok(())
}

/// `N commands answered CHECK CONDITION for a failed I/O<note>: <the
/// first few>; and M more`.
fn device_errors_text(count: u64, first: &[String], note: &str) -> String {
    crate::workloads::device_errors_text(
        count,
        "commands answered CHECK CONDITION for a failed I/O",
        first,
        note,
    )
}

/// How long the host has to plug or unplug after a ready line.
const HOTPLUG_WAIT_US: u64 = 15_000_000;

/// Event buffers kept on the event queue.
const EVENT_SLOTS: usize = 4;

/// Waits for the next event; the slot it came in goes back on the queue.
fn next_event(h: &mut Hba, slots: &[Slot], tokens: &mut [u16]) -> Result<scsi::Event, String> {
    let deadline =
        crate::arch::tod() + crate::host_wait::us(HOTPLUG_WAIT_US) * crate::arch::TOD_PER_US;
    let used = loop {
        h.ind.acknowledge();
        match h.dev.event.wait_used(&mut h.t) {
            Ok(u) => break u,
            Err(DriveError::Timeout { .. }) if crate::arch::tod() < deadline => continue,
            Err(e) => {
                return Err(format!(
                    "{} event queue 1: {} (no event within {})",
                    h.bus.as_str(),
                    e,
                    crate::host_wait::text(HOTPLUG_WAIT_US).as_str()
                ))
            }
        }
    };
    let Some(i) = tokens.iter().position(|&t| t == used.token) else {
        return Err(format!(
            "{} event queue 1: used token {} is no event buffer",
            h.bus.as_str(),
            used.token
        ));
    };
    if used.len as usize != scsi::EVENT_LEN {
        return Err(format!(
            "{} event queue 1: used length {} for a {}-byte event",
            h.bus.as_str(),
            used.len,
            scsi::EVENT_LEN
        ));
    }
    let ev = scsi::event(&slots[i], h.dev.layout.order);
    let chain = scsi::event_chain(&slots[i]);
    tokens[i] = h
        .dev
        .event
        .submit(&mut h.t, &chain, false)
        .map_err(|e| format!("{} event queue 1: {}", h.bus.as_str(), e))?;
    Ok(ev)
}

/// The LUNs REPORT LUNS lists for `target` (sent to its LUN 0).
fn reported(h: &mut Hba, target: u8) -> Result<Vec<u16>, String> {
    let a = h.command(0, target, 0, &cdb::report_luns(4096), Data::In(4096), &[])?;
    if a.resp.response != response::OK || a.resp.status != GOOD {
        return Err(format!(
            "{} target {} REPORT LUNS: {}",
            h.bus.as_str(),
            target,
            a.text().as_str()
        ));
    }
    scsi::decode_report_luns(&a.data).ok_or_else(|| {
        format!(
            "{} target {} REPORT LUNS: a malformed list",
            h.bus.as_str(),
            target
        )
    })
}

/// The host plugs the `scsi-hotplug=` LUN after the first ready line and
/// unplugs it after the second: an event TRANSPORT_RESET with reason
/// RESCAN, then REMOVED, must name exactly that LUN (section 5.6.6.3.1;
/// QEMU's virtio_scsi_hotplug/hotunplug), and REPORT LUNS must list it
/// only in between.
pub fn hotplug(m: &mut Machine) -> Outcome {
    let Some(id) = m.cfg.scsi_hotplug else {
        return Outcome::skip("no scsi-hotplug= on the command line");
    };
    let Some((target, lun)) = id.lun else {
        return Outcome::fail("scsi-hotplug= names no LUN");
    };
    let Some(d) = m
        .inventory
        .virtio_devices(scsi::DEVICE_ID)
        .find(|d| d.bus_id() == id.bus)
    else {
        return Outcome::fail(&format!(
            "scsi-hotplug={}: no virtio-scsi-ccw device there",
            id
        ));
    };
    let r = (|| -> Result<(), Outcome> {
        let e = |s: String| Outcome::fail(&s);
        let (mut h, features) = Hba::open_with(d, 2, 1 << scsi::F_HOTPLUG).map_err(e)?;
        if !has(features, scsi::F_HOTPLUG) {
            return Err(Outcome::fail(&format!(
                "{}: VIRTIO_SCSI_F_HOTPLUG not offered (hotplug=off?)",
                h.bus.as_str()
            )));
        }
        let slots: Vec<Slot> = (0..EVENT_SLOTS).map(|_| Slot::new(0)).collect();
        let mut tokens = Vec::new();
        for s in &slots {
            let chain = scsi::event_chain(s);
            tokens.push(
                h.dev
                    .event
                    .submit(&mut h.t, &chain, false)
                    .map_err(|x| e(format!("{} event queue 1: {}", h.bus.as_str(), x)))?,
            );
        }
        let before = reported(&mut h, target).map_err(e)?;
        if before.contains(&lun) {
            return Err(Outcome::mismatch(
                &format!("{} REPORT LUNS before the plug", id),
                format!("without LUN {}", lun).as_str(),
                format!("{:?}", before.as_slice()).as_str(),
            ));
        }
        for (step, reason, name) in [
            (0, scsi::EVT_RESET_RESCAN, "RESCAN"),
            (1, scsi::EVT_RESET_REMOVED, "REMOVED"),
        ] {
            crate::out!("{}\n", crate::checks::markers::SCSI_HOTPLUG_READY[step]);
            let ev = next_event(&mut h, &slots, &mut tokens).map_err(e)?;
            let got = (ev.event, ev.reason, ev.target_lun(), ev.missed);
            if got != (scsi::T_TRANSPORT_RESET, reason, Some((target, lun)), false) {
                return Err(Outcome::mismatch(
                    &format!(
                        "{} event after the {}",
                        h.bus.as_str(),
                        if step == 0 { "plug" } else { "unplug" }
                    ),
                    format!(
                        "TRANSPORT_RESET (1) reason {} ({}) for {}",
                        name, reason, id
                    )
                    .as_str(),
                    format!(
                        "event {}{} reason {} for target/lun {:?}",
                        ev.event,
                        if ev.missed { " with EVENTS_MISSED" } else { "" },
                        ev.reason,
                        ev.target_lun()
                    )
                    .as_str(),
                ));
            }
            let now = reported(&mut h, target).map_err(e)?;
            let mut want = before.clone();
            if step == 0 {
                want.push(lun);
            }
            want.sort_unstable();
            let mut sorted = now.clone();
            sorted.sort_unstable();
            if sorted != want {
                return Err(Outcome::mismatch(
                    &format!(
                        "{} REPORT LUNS after the {}",
                        id,
                        if step == 0 { "plug" } else { "unplug" }
                    ),
                    format!("{:?}", want.as_slice()).as_str(),
                    format!("{:?}", sorted.as_slice()).as_str(),
                ));
            }
        }
        Ok(())
    })();
    r.err().unwrap_or(Outcome::Pass)
}
