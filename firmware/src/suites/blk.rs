//! virtio-blk: the configuration held to what the host configured
//! (`disks=`), every request type the device offers with its documented
//! answers, and every queue under stress with every byte read checked
//! against the scratch pattern (`scratch=` disks are also written; the
//! runner checks the image after the run).

use super::setups::Setup;
use super::virtio::WANTED;
use crate::check::Outcome;
use crate::discovery::Device;
use crate::disk::{self, DiskConfig, DiskId, HeaderSays};
use crate::dma::DmaMemory;
use crate::fmt::Hex;
use crate::format;
use crate::machine::Machine;
use crate::virtio::ccw::CcwTransport;
use crate::virtio::devices::blk::{
    self, header, id_text, read_config, segment, BlkConfig, Order, StatusByte, HEADER_LEN, SECTOR,
};
use crate::virtio::indicators::{self, IndicatorMode, Indicators};
use crate::virtio::queue::{setup_queue, DmaBuffer, Queue};
use crate::virtio::stress::{self, Completion, Options, Poison, QueueStats, ShapeLimits};
use crate::virtio::transport::{
    driver_ok_status, has, negotiate, Transport, F_EVENT_IDX, F_INDIRECT_DESC, F_IN_ORDER,
    F_RING_PACKED,
};
use crate::workloads::blk::{Medium, Mix, Traffic, ERRORS_KEPT};
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use zvtest_contract::checks::markers;

/// A virtio-blk device and what the command line says of it.
pub(super) struct Disk {
    pub(super) sid: u32,
    pub(super) id: DiskId,
    pub(super) configured: Option<DiskConfig>,
    pub(super) scratch: bool,
}

pub(super) fn disks(m: &Machine) -> Vec<Disk> {
    m.inventory
        .virtio_devices(blk::DEVICE_ID)
        .map(|d: &Device| {
            let id = DiskId {
                bus: d.bus_id(),
                lun: None,
            };
            Disk {
                sid: d.subchannel.sid,
                id,
                configured: m.cfg.disks.iter().find(|c| c.id == id).cloned(),
                scratch: m.cfg.scratch.iter().any(|s| s.covers(&id)),
            }
        })
        .collect()
}

/// A device brought to DRIVER_OK with all its request queues.
pub(super) struct Open {
    pub(super) t: CcwTransport,
    pub(super) ind: Indicators,
    pub(super) queues: Vec<Queue>,
    pub(super) features: u64,
    pub(super) config: BlkConfig,
}

/// Opens the device as `s` says; None when it does not take that setup
/// (revision refused, feature not offered).
pub(super) fn open(sid: u32, s: Setup) -> Result<Option<Open>, String> {
    let fail = |what: &str, e: &dyn crate::fmt::ToText| format!("{}: {}", what, e.text().as_str());
    let mut t = CcwTransport::open(sid, s.revision).map_err(|e| fail("open", &e))?;
    if t.revision() != s.revision {
        return Ok(None);
    }
    let mut wanted = (WANTED & !(1 << F_RING_PACKED | 1 << F_EVENT_IDX)) | blk::FEATURES;
    wanted |= u64::from(s.packed) << F_RING_PACKED;
    wanted |= u64::from(s.event_idx) << F_EVENT_IDX;
    wanted |= u64::from(s.in_order) << F_IN_ORDER;
    let features = negotiate(&mut t, wanted).map_err(|e| fail("negotiate", &e))?;
    let offered = |bit| !has(wanted, bit) || has(features, bit);
    if !offered(F_RING_PACKED) || !offered(F_EVENT_IDX) || !offered(F_IN_ORDER) {
        return Ok(None);
    }
    let config = read_config(&mut t).map_err(|e| fail("configuration", &e))?;
    let ind = Indicators::install(&mut t, s.mode).map_err(|e| fail("indicators", &e))?;
    let mut queues = Vec::new();
    for q in 0..config.queues(features).max(1) {
        queues.push(
            setup_queue(&mut t, q, features, s.packed)
                .map_err(|e| fail(&format!("queue {}", q), &e))?,
        );
    }
    t.set_status(driver_ok_status(s.revision))
        .map_err(|e| fail("DRIVER_OK", &e))?;
    Ok(Some(Open {
        t,
        ind,
        queues,
        features,
        config,
    }))
}

fn best_setup(sid: u32) -> Result<Open, String> {
    for revision in [2u8, 1, 0] {
        let s = Setup {
            revision,
            packed: false,
            event_idx: true,
            in_order: false,
            mode: IndicatorMode::Classic,
        };
        let s = if revision == 0 {
            Setup {
                event_idx: false,
                ..s
            }
        } else {
            s
        };
        if let Some(o) = open(sid, s)? {
            return Ok(o);
        }
        // EVENT_IDX not offered: try without.
        if let Some(o) = open(
            sid,
            Setup {
                event_idx: false,
                ..s
            },
        )? {
            return Ok(o);
        }
    }
    Err(String::from("no revision accepted"))
}

/// One request, its parts given whole: the device-readable bytes and how
/// many device-writable bytes follow. Returns what the device wrote and
/// the used length.
fn one(o: &mut Open, q: usize, readable: &[u8], writable: usize) -> Result<(Vec<u8>, u32), String> {
    let mem = Rc::new(DmaMemory::new(readable.len() + writable + 16));
    mem.write(0, readable);
    let w_at = readable.len().next_multiple_of(8);
    let poison = vec![0xa5u8; writable];
    mem.write(w_at, &poison);
    let mut chain = Vec::new();
    if !readable.is_empty() {
        // Header alone, then the rest (a legacy device wants it so).
        let head = readable.len().min(HEADER_LEN);
        chain.push(DmaBuffer {
            mem: &mem,
            offset: 0,
            len: head as u32,
            device_writable: false,
        });
        if readable.len() > head {
            chain.push(DmaBuffer {
                mem: &mem,
                offset: head,
                len: (readable.len() - head) as u32,
                device_writable: false,
            });
        }
    }
    if writable > 1 {
        chain.push(DmaBuffer {
            mem: &mem,
            offset: w_at,
            len: writable as u32 - 1,
            device_writable: true,
        });
    }
    chain.push(DmaBuffer {
        mem: &mem,
        offset: w_at + writable - 1,
        len: 1,
        device_writable: true,
    });
    let queue = &mut o.queues[q];
    let token = queue
        .submit(&mut o.t, &chain, false)
        .map_err(|e| format!("submit: {}", e))?;
    let used = queue.wait_used(&mut o.t).map_err(|e| format!("{}", e))?;
    if used.token != token {
        return Err(format!("used token {} for {}", used.token, token));
    }
    let mut out = vec![0u8; writable];
    mem.read(w_at, &mut out);
    Ok((out, used.len))
}

/// The size the host configured, or what the device says.
pub(super) fn size_of(d: &Disk, c: &BlkConfig) -> u64 {
    d.configured
        .as_ref()
        .map_or(c.capacity * SECTOR, |k| k.size)
}

pub fn config(m: &mut Machine) -> Outcome {
    let list = disks(m);
    if list.is_empty() {
        return Outcome::skip("no virtio-blk-ccw device");
    }
    let mut failures: Vec<String> = Vec::new();
    for d in &list {
        let mut o = match best_setup(d.sid) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{}: {}", d.id, e.as_str()));
                continue;
            }
        };
        let c = o.config;
        let f = o.features;
        crate::out!(
            "# blk {}: rev {} capacity {} sectors, blk_size {}, seg_max {}, size_max {}, queues {}, writeback {}, phys exp {}, min_io {}, opt_io {}, discard {}/{}/{}, write-zeroes {}/{}/{}, features {}\n",
            d.id,
            o.t.revision(),
            c.capacity,
            c.block_size(f),
            c.seg_max,
            c.size_max,
            c.queues(f),
            c.writeback,
            c.physical_block_exp,
            c.min_io_size,
            c.opt_io_size,
            c.max_discard_sectors,
            c.max_discard_seg,
            c.discard_sector_alignment,
            c.max_write_zeroes_sectors,
            c.max_write_zeroes_seg,
            c.write_zeroes_may_unmap,
            Hex(f)
        );
        if let Some(k) = &d.configured {
            for (what, want, got) in [
                ("capacity (bytes)", k.size, c.capacity * SECTOR),
                (
                    "block size",
                    u64::from(k.block_size),
                    u64::from(c.block_size(f)),
                ),
                (
                    "request queues",
                    u64::from(k.queues),
                    u64::from(c.queues(f)),
                ),
                (
                    "read-only (VIRTIO_BLK_F_RO)",
                    u64::from(k.read_only),
                    u64::from(has(f, blk::F_RO)),
                ),
            ] {
                expect(&mut failures, d.id, what, want, got);
            }
        }
        if has(f, blk::F_SEG_MAX) && c.seg_max == 0 {
            failures.push(format!("{}: seg_max 0 offered", d.id));
        }
        if has(f, blk::F_MQ) && c.num_queues == 0 {
            failures.push(format!("{}: MQ with num_queues 0", d.id));
        }
        if c.capacity == 0 {
            failures.push(format!("{}: capacity 0", d.id));
        }
        let _ = o.t.reset();
        // The legacy interface reads the same fields in the guest's order.
        if let Ok(Some(mut legacy)) = open(
            d.sid,
            Setup {
                revision: 0,
                packed: false,
                event_idx: false,
                in_order: false,
                mode: IndicatorMode::Classic,
            },
        ) {
            expect(
                &mut failures,
                d.id,
                "capacity at revision 0",
                c.capacity,
                legacy.config.capacity,
            );
            let _ = legacy.t.reset();
        }
    }
    if d_configured_missing(m, &list, &mut failures) {
        // Failures were added.
    }
    verdict(failures, "every configured value read back")
}

fn expect(failures: &mut Vec<String>, id: DiskId, what: &str, want: u64, got: u64) {
    if want != got {
        failures.push(format!("{} {}: expected {}, got {}", id, what, want, got));
    }
}

/// `disks=` names virtio-blk devices that are not there.
fn d_configured_missing(m: &Machine, list: &[Disk], failures: &mut Vec<String>) -> bool {
    let before = failures.len();
    for k in m.cfg.disks.iter().filter(|k| k.id.lun.is_none()) {
        if !list.iter().any(|d| d.id == k.id) {
            failures.push(format!(
                "{}: configured in disks= but no virtio-blk device there",
                k.id
            ));
        }
    }
    failures.len() > before
}

fn verdict(failures: Vec<String>, expected: &str) -> Outcome {
    match failures.first() {
        None => Outcome::Pass,
        Some(first) => Outcome::mismatch(
            &format!("{} failures; the first: {}", failures.len(), first.as_str()),
            expected,
            failures.join("; ").as_str(),
        ),
    }
}

/// What the first sectors say; None if the read failed (said in `failures`).
pub(super) fn read_first(o: &mut Open, bs: u32, order: Order) -> Result<Vec<u8>, String> {
    let (out, _) = one(o, 0, &header(order, blk::T_IN, 0), bs as usize + 1)?;
    let status = out[bs as usize];
    if status != blk::S_OK {
        return Err(format!("read of sector 0: status {}", StatusByte(status)));
    }
    Ok(out[..bs as usize].to_vec())
}

/// Whether we may write `d`: named scratch, holding this seed's image.
pub(super) fn may_write(d: &Disk, first: &[u8], seed: u64, size: u64) -> Result<bool, String> {
    if !d.scratch {
        return Ok(false);
    }
    // A device that keeps nothing has no header to hold: the host said so.
    if d.configured.as_ref().is_some_and(|k| k.null) {
        return Ok(true);
    }
    match disk::read_header(first, seed, size) {
        HeaderSays::Scratch => Ok(true),
        HeaderSays::NotScratch => Err(format!(
            "{} is named in scratch= but holds no scratch image (no header): not written",
            d.id
        )),
        HeaderSays::Other { seed: s, size: z } => Err(format!(
            "{} is named in scratch= but holds the image of seed {} and {} bytes, not seed {} and {} bytes: not written",
            d.id,
            Hex(s),
            z,
            Hex(seed),
            size
        )),
    }
}

pub fn requests(m: &mut Machine) -> Outcome {
    let list = disks(m);
    if list.is_empty() {
        return Outcome::skip("no virtio-blk-ccw device");
    }
    let seed = m.cfg.seed;
    let mut failures: Vec<String> = Vec::new();
    for d in &list {
        if let Err(e) = device_requests(d, seed, &mut failures) {
            failures.push(format!("{}: {}", d.id, e.as_str()));
        }
    }
    verdict(
        failures,
        "every request answered as the spec and the configuration say",
    )
}

fn device_requests(d: &Disk, seed: u64, failures: &mut Vec<String>) -> Result<(), String> {
    let mut o = best_setup(d.sid)?;
    let order = Order::for_revision(o.t.revision());
    let f = o.features;
    let bs = o.config.block_size(f);
    let size = size_of(d, &o.config);
    let capacity = o.config.capacity;
    let mut done: Vec<&str> = Vec::new();
    let status_is = |what: &str, out: &[u8], want: u8, failures: &mut Vec<String>| {
        let got = out[out.len() - 1];
        if got != want {
            failures.push(format!(
                "{} {}: status {}, expected {}",
                d.id,
                what,
                StatusByte(got),
                StatusByte(want)
            ));
        }
    };
    // GET_ID: the serial the host configured, NUL-terminated in 20 bytes.
    let (out, _) = one(&mut o, 0, &header(order, blk::T_GET_ID, 0), blk::ID_LEN + 1)?;
    status_is("GET_ID", &out, blk::S_OK, failures);
    let id = id_text(&out[..blk::ID_LEN]);
    if let Some(k) = &d.configured {
        let want = k.serial.as_deref().unwrap_or("");
        if id != want.as_bytes() {
            failures.push(format!(
                "{} GET_ID: expected '{}', got '{}'",
                d.id,
                want,
                crate::fmt::Escaped(id)
            ));
        }
    }
    done.push("GET_ID");
    // The first block: the header of a scratch image decides what we may do.
    let first = read_first(&mut o, bs, order)?;
    let patterned = disk::read_header(&first, seed, size) == HeaderSays::Scratch;
    let writable = match may_write(d, &first, seed, size) {
        Ok(w) => w,
        Err(e) => {
            failures.push(e);
            false
        }
    };
    if patterned {
        let medium = Medium::new(seed, size, bs, order, true, false);
        if let Err(e) = medium.check_read(0, &first) {
            failures.push(format!("{} IN of block 0: {}", d.id, e.as_str()));
        }
    }
    done.push("IN");
    // FLUSH where offered.
    if has(f, blk::F_FLUSH) {
        let (out, _) = one(&mut o, 0, &header(order, blk::T_FLUSH, 0), 1)?;
        status_is("FLUSH", &out, blk::S_OK, failures);
        done.push("FLUSH");
    }
    // A type no spec defines.
    let (out, _) = one(&mut o, 0, &header(order, 0x55, 0), 1)?;
    status_is("request type 0x55", &out, blk::S_UNSUPP, failures);
    // Past the end, and across it.
    let per = u64::from(bs) / SECTOR;
    let (out, _) = one(
        &mut o,
        0,
        &header(order, blk::T_IN, capacity),
        bs as usize + 1,
    )?;
    status_is("IN at the capacity", &out, blk::S_IOERR, failures);
    let (out, _) = one(
        &mut o,
        0,
        &header(order, blk::T_IN, capacity - per),
        2 * bs as usize + 1,
    )?;
    status_is("IN across the end", &out, blk::S_IOERR, failures);
    done.push("errors");
    // Writes, on a disk we may write only.
    let stripes: Vec<u64> = disk::writable_stripes(seed, size).collect();
    if writable && !stripes.is_empty() {
        let at = stripes[0] * disk::STRIPE;
        let sector = at / SECTOR;
        let n = 8 * bs as usize;
        let mut restore = vec![0u8; n];
        disk::fill_image(seed, size, at, false, &mut restore);
        if has(f, blk::F_RO) {
            let mut req = header(order, blk::T_OUT, sector).to_vec();
            req.extend_from_slice(&restore);
            let (out, _) = one(&mut o, 0, &req, 1)?;
            status_is("OUT on a read-only disk", &out, blk::S_IOERR, failures);
            done.push("OUT refused (read-only)");
        } else {
            for (bit, kind, name, unmap) in [
                (blk::F_WRITE_ZEROES, blk::T_WRITE_ZEROES, "WRITE_ZEROES", 0),
                (
                    blk::F_WRITE_ZEROES,
                    blk::T_WRITE_ZEROES,
                    "WRITE_ZEROES+UNMAP",
                    blk::SEGMENT_UNMAP,
                ),
                (blk::F_DISCARD, blk::T_DISCARD, "DISCARD", 0),
            ] {
                if !has(f, bit) {
                    continue;
                }
                let mut req = header(order, kind, 0).to_vec();
                req.extend_from_slice(&segment(order, sector, (n as u64 / SECTOR) as u32, unmap));
                let (out, _) = one(&mut o, 0, &req, 1)?;
                status_is(name, &out, blk::S_OK, failures);
                if kind == blk::T_WRITE_ZEROES {
                    let (back, _) = one(&mut o, 0, &header(order, blk::T_IN, sector), n + 1)?;
                    if let Some(i) = back[..n].iter().position(|&b| b != 0) {
                        failures.push(format!(
                            "{} {}: byte {} of sector {} reads {} after zeroing",
                            d.id,
                            name,
                            i % SECTOR as usize,
                            sector + i as u64 / SECTOR,
                            Hex(u64::from(back[i]))
                        ));
                    }
                }
                done.push(name);
            }
            // Beyond the limits the configuration gives: an error.
            if has(f, blk::F_WRITE_ZEROES) && o.config.max_write_zeroes_sectors > 0 {
                let too_many = o.config.max_write_zeroes_sectors as u64 + per;
                if sector + too_many <= capacity {
                    let mut req = header(order, blk::T_WRITE_ZEROES, 0).to_vec();
                    req.extend_from_slice(&segment(order, sector, too_many as u32, 0));
                    let (out, _) = one(&mut o, 0, &req, 1)?;
                    if out[0] == blk::S_OK {
                        failures.push(format!(
                            "{} WRITE_ZEROES of {} sectors, above max_write_zeroes_sectors {}: status OK",
                            d.id, too_many, o.config.max_write_zeroes_sectors
                        ));
                    }
                    done.push("WRITE_ZEROES past its limit");
                }
            }
            // Put back what was there: the stress check starts from pattern A.
            let mut req = header(order, blk::T_OUT, sector).to_vec();
            req.extend_from_slice(&restore);
            let (out, _) = one(&mut o, 0, &req, 1)?;
            status_is("OUT", &out, blk::S_OK, failures);
            let (back, _) = one(&mut o, 0, &header(order, blk::T_IN, sector), n + 1)?;
            if back[..n] != restore[..] {
                failures.push(format!(
                    "{} OUT then IN at sector {}: data differs",
                    d.id, sector
                ));
            }
            done.push("OUT");
        }
    }
    crate::out!(
        "# blk {}: {} ({})\n",
        d.id,
        done.join(", ").as_str(),
        if writable {
            "scratch: written and restored"
        } else {
            "not scratch: read only"
        }
    );
    let _ = o.t.reset();
    Ok(())
}

/// Runs the engine on queue `q` of `o` with the indicators acknowledged
/// before each wait (the host raises an adapter interrupt only when the
/// summary goes 0 -> 1), and counts the interrupts that came meanwhile.
fn drive_queue(
    o: &mut Open,
    q: usize,
    traffic: &mut Traffic,
    opts: &Options,
    progress: &mut dyn FnMut(&QueueStats, u64),
) -> Result<QueueStats, stress::Failure> {
    let ints0 = indicators::interrupts_seen();
    let ind = &mut o.ind;
    let mut s = stress::run(
        &mut o.t,
        &mut o.queues[q],
        traffic,
        opts,
        &mut || ind.acknowledge(),
        progress,
    )?;
    s.interrupts = u64::from(indicators::interrupts_seen() - ints0);
    Ok(s)
}

/// The largest disk read whole before the stress (bytes).
const READ_ALL_MAX: u64 = 256 << 20;

/// Enough requests for the 16-bit available index to wrap once.
const WRAP_REQUESTS: u64 = 65_536 + 512;

/// Requests per queue per round, before `stress=`.
const ROUND_REQUESTS: u64 = 200;

fn now_us() -> u64 {
    crate::arch::tod() / crate::arch::TOD_PER_US
}

pub fn stress(m: &mut Machine) -> Outcome {
    let list = disks(m);
    if list.is_empty() {
        return Outcome::skip("no virtio-blk-ccw device");
    }
    let mut failures: Vec<String> = Vec::new();
    let mut unchecked: Vec<String> = Vec::new();
    for (i, d) in list.iter().enumerate() {
        // The index wrap on the first disk: its 65 536 requests cost
        // seconds under TCG, and one queue is what the default asks.
        match device_stress(m, d, i == 0) {
            Ok(true) => {}
            Ok(false) => unchecked.push(format!("{}", d.id)),
            Err(e) => {
                // Gone outside a queue's phase (setting up, between
                // rounds): said too, whatever failed first.
                let gone = match removed(d.sid) {
                    Some(how) if !e.contains(" removed with ") => {
                        format!(" (the device was removed: {})", how)
                    }
                    _ => String::new(),
                };
                failures.push(format!(
                    "{}: {}{} (replay: seed={} only=blk.stress)",
                    d.id,
                    e.as_str(),
                    gone.as_str(),
                    Hex(m.cfg.seed)
                ))
            }
        }
    }
    let outcome = verdict(
        failures,
        "every request answered OK with the data that must be there",
    );
    // Data compared only where there is a pattern to compare with: say
    // which disks got status checks alone.
    if outcome.is_pass() && !unchecked.is_empty() {
        return Outcome::PassNote(format!(
            "no scratch image of seed={} on {}: their reads were checked for status only (make one with cargo xtask disk)",
            Hex(m.cfg.seed),
            unchecked.join(", ").as_str()
        ));
    }
    outcome
}

/// Stresses one disk; says whether every byte read was compared (the disk
/// holds this seed's pattern).
fn device_stress(m: &Machine, d: &Disk, wrap: bool) -> Result<bool, String> {
    let seed = m.cfg.seed;
    let stress = u64::from(m.cfg.stress);
    // What the disk is, at the best revision.
    let mut probe = best_setup(d.sid)?;
    let order = Order::for_revision(probe.t.revision());
    let bs = probe.config.block_size(probe.features);
    let size = size_of(d, &probe.config);
    let ro = has(probe.features, blk::F_RO);
    let first = read_first(&mut probe, bs, order)?;
    let _ = probe.t.reset();
    drop(probe);
    let patterned = disk::read_header(&first, seed, size) == HeaderSays::Scratch;
    let writable = may_write(d, &first, seed, size)? && !ro;
    let mut medium = Medium::new(seed, size, bs, order, patterned, writable);
    medium.serial = d
        .configured
        .as_ref()
        .map(|k| String::from(k.serial.as_deref().unwrap_or("")));
    if !m.cfg.bench.is_empty() {
        return bench(m, d, &mut medium).map(|()| medium.patterned);
    }
    let per_req_max = (64 * 1024 / bs).max(1);
    // The runner's cue for faults during the stress, given as the first
    // phase starts (the device set up, its queue about to be busy);
    // nothing waits for it.
    let mut cue = true;
    // Every setup the device takes (IN_ORDER too, where offered), the
    // last one writing every writable stripe.
    let rounds = super::setups::stress_rounds(true);
    let mut driven = 0;
    let mut total = QueueStats::default();
    // Reads and writes the device answered IOERR: the first few named,
    // all counted; the stress goes on and fails at its end.
    let mut device_errors: Vec<String> = Vec::new();
    let mut error_count = 0u64;
    let last = rounds.len() - 1;
    for (i, (setup, completion)) in rounds.into_iter().enumerate() {
        let mut o = match open(d.sid, setup)? {
            Some(o) => o,
            // The fill round must run: in whatever setup the device takes.
            None if i == last => best_setup(d.sid)?,
            None => continue,
        };
        let label = setup.label();
        let indirect = if has(o.features, F_INDIRECT_DESC) {
            3
        } else {
            0
        };
        let seg_max = if has(o.features, blk::F_SEG_MAX) {
            o.config.seg_max as usize
        } else {
            1
        };
        let size_max = has(o.features, blk::F_SIZE_MAX)
            .then_some(o.config.size_max)
            .filter(|&s| s > 0);
        // Phases: the whole disk read first; random traffic every round;
        // every writable stripe written whole last.
        let mut phases: Vec<(&str, Mix, u64)> = Vec::new();
        // The whole disk read first where there is a pattern to hold it
        // to and it is small enough to read in a moment; the host checks
        // every byte after the run anyway.
        if driven == 0 && medium.patterned && medium.size <= READ_ALL_MAX {
            phases.push((
                "read-all",
                Mix::ReadAll {
                    blocks: per_req_max,
                },
                0,
            ));
        }
        // The 16-bit ring index wraps past 65535: on queue 0 of the first
        // round, and on every queue from stress=10 on (see below).
        if driven == 0 && (wrap || stress >= 10) {
            if m.cfg.index_wrap {
                phases.push(("wrap", Mix::GetIds, WRAP_REQUESTS));
            } else {
                crate::out!("# blk {}: index-wrap=no: no ring index wrapped\n", d.id);
            }
        }
        phases.push((
            "random",
            Mix::Random {
                max_blocks: per_req_max,
                flush: has(o.features, blk::F_FLUSH),
            },
            ROUND_REQUESTS * stress,
        ));
        if i == last && medium.writable {
            phases.push((
                "fill",
                Mix::FillStripes {
                    blocks: per_req_max,
                },
                0,
            ));
        }
        // Header fields in this round's byte order.
        medium.order = Order::for_revision(o.t.revision());
        let qn = o.queues.len();
        for q in 0..qn {
            for (phase, mix, requests) in &phases {
                if *phase == "wrap" && q > 0 && stress < 10 {
                    continue;
                }
                let size = o.queues[q].size();
                // The wrap's many requests in the lean shape (header, answer,
                // status): as many in flight as the ring holds.
                let lean = *phase == "wrap";
                let opts = Options {
                    seed,
                    // Device, round and queue: each round its own requests.
                    stream: (u64::from(d.sid) << 24) | (i as u64) << 16 | q as u64,
                    depth: size,
                    requests: mix.requests(&medium).unwrap_or(*requests),
                    limits: if lean {
                        ShapeLimits {
                            max_len: size_max,
                            ..ShapeLimits::LEAN
                        }
                    } else {
                        ShapeLimits {
                            // seg_max counts data segments; the header and
                            // the status byte come on top.
                            max_elements: (seg_max + 2).min(usize::from(size)).max(3),
                            max_len: size_max,
                            max_gap: 256,
                        }
                    },
                    indirect: if lean { 0 } else { indirect },
                    completion,
                    poison: if lean { Poison::Ends } else { Poison::All },
                    until_us: None,
                    now_us,
                };
                let mut traffic = Traffic::new(&mut medium, *mix).record_device_errors();
                let mut progress = |s: &QueueStats, of: u64| {
                    crate::out!(
                        "# blk {} q{} {} {}: {} of {} requests so far\n",
                        d.id,
                        q,
                        label.as_str(),
                        *phase,
                        s.completed,
                        of
                    );
                };
                if cue {
                    cue = false;
                    crate::out!("{} {}\n", markers::BLK_STRESS, d.id);
                }
                let result = drive_queue(&mut o, q, &mut traffic, &opts, &mut progress);
                for e in &traffic.errors {
                    if device_errors.len() < ERRORS_KEPT {
                        device_errors.push(format!(
                            "queue {} {} {} {} {}",
                            q,
                            label.as_str(),
                            completion.name(),
                            *phase,
                            e.describe().as_str()
                        ));
                    }
                }
                error_count += traffic.error_count;
                // A device unplugged under the stress: its kicks are
                // refused or its answers stop. Said as such, with what the
                // ring held: the requests outstanding when it was noticed,
                // and how many of them the device completed as it went
                // (into our memory, before it was gone).
                if let (Err(f), Some(how)) = (&result, removed(d.sid)) {
                    let queue = &mut o.queues[q];
                    let outstanding = queue.in_flight();
                    let mut completed = 0u16;
                    while completed < queue.size() && matches!(queue.try_used(), Ok(Some(_))) {
                        completed += 1;
                    }
                    return Err(format!(
                        "queue {} {} {} {} request {}: removed with {} {} in flight ({} completed by the device as it went, {} never answered; {}; first seen as: {})",
                        q,
                        label.as_str(),
                        completion.name(),
                        *phase,
                        f.request,
                        outstanding,
                        if outstanding == 1 { "request" } else { "requests" },
                        completed,
                        outstanding - completed,
                        how,
                        f.what.as_str()
                    ));
                }
                let s = result.map_err(|f| {
                    // The IOERRs before the end, too: they may explain it.
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
                        q,
                        label.as_str(),
                        completion.name(),
                        *phase,
                        f.request,
                        f.what.as_str(),
                        earlier.as_str()
                    )
                })?;
                let (r, w, fl) = traffic.counts();
                crate::out!(
                    "# blk {} q{} {} {} {}: {} ({} reads, {} writes, {} flushes)\n",
                    d.id,
                    q,
                    label.as_str(),
                    completion.name(),
                    *phase,
                    s,
                    r,
                    w,
                    fl
                );
                crate::judge::stress_phase(
                    &format!("queue {} {}", q, label.as_str()),
                    *phase == "wrap",
                    completion == Completion::Polled,
                    &s,
                )?;
                total.add(&s);
            }
        }
        driven += 1;
        let _ = o.t.reset();
    }
    if driven == 0 {
        return Err(String::from("no setup of the device could be driven"));
    }
    if error_count > 0 {
        return Err(device_errors_text(
            error_count,
            &device_errors,
            " (every other answer checked, the stress run to its end)",
        ));
    }
    if medium.writable {
        if medium.unwritten() != 0 {
            return Err(format!(
                "{} blocks of the writable stripes were never written",
                medium.unwritten()
            ));
        }
        crate::out!("{} {}\n", markers::DISK_WRITTEN, d.id);
    }
    crate::out!(
        "# blk {}: {} rounds, {}; {}\n",
        d.id,
        driven,
        total,
        if medium.writable {
            "scratch: writable stripes hold pattern B"
        } else if patterned {
            "not written: every read checked against pattern A"
        } else {
            "not a scratch image: reads checked for status only"
        }
    );
    Ok(patterned)
}

/// How the subchannel `sid` says its device is gone (hot-unplugged), if
/// it is: STSCH cc 3, or a SCHIB whose device number is not valid.
fn removed(sid: u32) -> Option<&'static str> {
    match crate::css::channel::store_schib(sid) {
        None => Some("the subchannel is gone: STSCH cc 3"),
        Some(s) if !crate::css::blocks::parse_pmcw(&s.0).devno_valid() => {
            Some("the subchannel is gone: STSCH says its device number is not valid")
        }
        Some(_) => None,
    }
}

/// `N requests answered IOERR<note>: <the first few>; and M more`.
fn device_errors_text(count: u64, first: &[String], note: &str) -> String {
    crate::workloads::device_errors_text(count, "requests answered IOERR", first, note)
}

/// The benchmark workloads of `bench=` on queue 0, each for `bench-ms=`:
/// every byte read still checked (on a scratch image), one line each.
fn bench(m: &Machine, d: &Disk, medium: &mut Medium) -> Result<(), String> {
    let mut o = best_setup(d.sid)?;
    medium.order = Order::for_revision(o.t.revision());
    let size = o.queues[0].size();
    for &b in &m.cfg.bench {
        let (bytes, depth, writes) = b.shape();
        if writes && !medium.writable {
            return Err(format!(
                "bench {} writes, but {} may not be written (name it in scratch=)",
                b.name(),
                d.id
            ));
        }
        let blocks = (bytes / medium.block).max(1);
        let mix = if writes {
            Mix::SeqWrites { blocks }
        } else {
            Mix::RandomReads { blocks }
        };
        let opts = Options {
            seed: m.cfg.seed,
            stream: u64::from(d.sid) << 16,
            depth: depth.min(size),
            requests: u64::MAX,
            // Header, data, status: the shape a block layer sends.
            limits: ShapeLimits::LEAN,
            indirect: 0,
            // One request at a time: spinning on the used ring saves a halt
            // and a wake-up per request. Deeper, the CPU is better left to
            // QEMU's threads while it waits (measured: polling at depth 32
            // halves null-co's rate under TCG).
            completion: if depth == 1 {
                Completion::Polled
            } else {
                Completion::Interrupts
            },
            poison: Poison::Ends,
            until_us: Some(now_us() + m.cfg.bench_ms * 1000),
            now_us,
        };
        let mut traffic = Traffic::new(medium, mix);
        let s = drive_queue(&mut o, 0, &mut traffic, &opts, &mut |_, _| {}).map_err(|f| {
            format!(
                "bench {} request {}: {}",
                b.name(),
                f.request,
                f.what.as_str()
            )
        })?;
        crate::out!(
            "# bench {} {}: requests {} bytes {} us {} req/s {} KiB/s {} kicks {} interrupts {} max depth {} verified {}\n",
            b.name(),
            d.id,
            s.completed,
            s.bytes,
            s.elapsed_us,
            s.per_second(s.completed),
            s.per_second(s.bytes) / 1024,
            s.kicks,
            s.interrupts,
            s.max_depth,
            if medium.patterned { "yes" } else { "no (not a scratch image)" }
        );
    }
    // What a complete run leaves, for the host's verification.
    if medium.writable && medium.patterned {
        let blocks = (65536 / medium.block).max(1);
        let mix = Mix::FillStripes { blocks };
        let opts = Options {
            seed: m.cfg.seed,
            stream: u64::from(d.sid) << 16 | 1,
            depth: size,
            requests: mix.requests(medium).unwrap_or(0),
            limits: ShapeLimits::LEAN,
            indirect: 0,
            completion: Completion::Interrupts,
            poison: Poison::Ends,
            until_us: None,
            now_us,
        };
        let mut traffic = Traffic::new(medium, mix);
        drive_queue(&mut o, 0, &mut traffic, &opts, &mut |_, _| {})
            .map_err(|f| format!("fill request {}: {}", f.request, f.what.as_str()))?;
        crate::out!("{} {}\n", markers::DISK_WRITTEN, d.id);
    }
    let _ = o.t.reset();
    Ok(())
}
