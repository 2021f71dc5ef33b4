//! virtio-9p: the mount tag against `shares=`; 9P2000.L against the
//! seeded tree the runner laid out (contract `share`): version and msize,
//! attach, walk, getattr, lopen, reads at seeded offsets and sizes,
//! readdir, readlink, and the errors QEMU gives (hw/9pfs/9p.c); on a
//! `scratch=` share, files created, written, renamed and removed (the
//! runner checks them after the run); reads with many tags in flight on
//! the stress engine.

use super::setups::{stress_rounds, Setup};
use super::virtio::WANTED;
use crate::check::Outcome;
use crate::cmdline::Config;
use crate::disk::DiskId;
use crate::fmt::{Hex, ToText};
use crate::format;
use crate::inventory::BusId;
use crate::machine::Machine;
use crate::virtio::ccw::CcwTransport;
use crate::virtio::devices::p9::{self, ty, Attr, P9Error, Qid, Reader, P9};
use crate::virtio::indicators::{IndicatorMode, Indicators};
use crate::virtio::stress::{Completion, Options};
use crate::virtio::transport::{
    driver_ok_status, has, negotiate, Transport, F_EVENT_IDX, F_INDIRECT_DESC, F_RING_PACKED,
};
use crate::workloads::p9::{OpenFile, Reads};
use alloc::string::String;
use alloc::vec::Vec;
use zvtest_contract::p9 as plan;
use zvtest_contract::share::{self, Kind, ShareConfig, TREE};
use zvtest_contract::stress::Rng;

/// The msize we offer: room for 64 KiB of data and the header (above
/// the 8 KiB QEMU warns about, hw/9pfs/9p.c).
const MSIZE: u32 = (64 << 10) + 24;
/// A read or write carries at most msize less this (9P's I/O header).
const IO_HEADER: u32 = 24;
/// Room for answers other than reads.
const ROOM: usize = 512;
/// The root's fid.
const ROOT: u32 = 0;

/// `v` in octal, as modes are written.
fn octal(mut v: u32) -> String {
    let mut digits = Vec::new();
    loop {
        digits.push(b'0' + (v & 7) as u8);
        v >>= 3;
        if v == 0 {
            break;
        }
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

fn now_us() -> u64 {
    crate::arch::tod() / crate::arch::TOD_PER_US
}

/// The 9p devices: bus id, subchannel, and what `shares=` says of each.
fn devices(m: &Machine) -> Vec<(BusId, u32, Option<ShareConfig>)> {
    m.inventory
        .virtio_devices(p9::DEVICE_ID)
        .map(|d| {
            let bus = d.bus_id();
            let share = m.cfg.shares.iter().find(|s| s.bus == bus).cloned();
            (bus, d.subchannel.sid, share)
        })
        .collect()
}

/// What a call can end in: the device did not answer as the transport
/// or ring expect, or its 9P answer was an error or malformed.
enum CallError {
    Drive(String),
    P9(P9Error),
}

impl CallError {
    fn text(&self) -> String {
        match self {
            CallError::Drive(s) => s.clone(),
            CallError::P9(e) => format!("{}", e),
        }
    }
}

/// A device at DRIVER_OK speaking 9P.
struct Session {
    t: CcwTransport,
    ind: Indicators,
    dev: P9,
    features: u64,
    tag: u16,
    msize: u32,
    next_fid: u32,
}

impl Session {
    /// Opens the device as `setup` says; None where it does not take
    /// that setup (revision refused, a ring feature not offered).
    fn open(sid: u32, setup: Setup) -> Result<Option<Session>, String> {
        let fail = |what: &str, e: &dyn ToText| format!("{}: {}", what, e.text().as_str());
        let mut t = CcwTransport::open(sid, setup.revision).map_err(|e| fail("open", &e))?;
        if t.revision() != setup.revision {
            return Ok(None);
        }
        let mut wanted = (WANTED & !(1 << F_RING_PACKED | 1 << F_EVENT_IDX)) | 1 << p9::F_MOUNT_TAG;
        wanted |= u64::from(setup.packed) << F_RING_PACKED;
        wanted |= u64::from(setup.event_idx) << F_EVENT_IDX;
        let features = negotiate(&mut t, wanted).map_err(|e| fail("negotiate", &e))?;
        let offered = |bit| !has(wanted, bit) || has(features, bit);
        if !offered(F_RING_PACKED) || !offered(F_EVENT_IDX) {
            return Ok(None);
        }
        let ind = Indicators::install(&mut t, setup.mode).map_err(|e| fail("indicators", &e))?;
        let dev = P9::setup(&mut t, features, setup.packed).map_err(|e| fail("queue 0", &e))?;
        t.set_status(driver_ok_status(t.revision()))
            .map_err(|e| fail("DRIVER_OK", &e))?;
        Ok(Some(Session {
            t,
            ind,
            dev,
            features,
            tag: 0,
            msize: MSIZE,
            next_fid: 1,
        }))
    }

    /// The device at revision 2, split ring, adapter indicators: the
    /// setup every 9p device takes.
    fn open_plain(sid: u32) -> Result<Session, String> {
        let setup = Setup {
            revision: 2,
            packed: false,
            event_idx: true,
            in_order: false,
            mode: IndicatorMode::Adapter,
        };
        match Session::open(sid, setup)? {
            Some(s) => Ok(s),
            None => Session::open(
                sid,
                Setup {
                    event_idx: false,
                    ..setup
                },
            )?
            .ok_or_else(|| String::from("the device takes no split ring at revision 2")),
        }
    }

    fn fid(&mut self) -> u32 {
        self.next_fid += 1;
        self.next_fid
    }

    /// Sends the request `build(tag)` (of type `request`) with `room`
    /// bytes for the answer, and decodes the answer with `decode`.
    fn call<R>(
        &mut self,
        request: u8,
        room: usize,
        build: impl FnOnce(u16) -> Vec<u8>,
        decode: impl FnOnce(Reader<'_>) -> Result<R, P9Error>,
    ) -> Result<R, CallError> {
        let tag = if request == ty::TVERSION {
            p9::NOTAG
        } else {
            self.tag = (self.tag + 1) % p9::NOTAG;
            self.tag
        };
        let msg = build(tag);
        if msg.len() > self.msize as usize {
            return Err(CallError::P9(P9Error::TooLarge {
                len: msg.len(),
                msize: self.msize,
            }));
        }
        self.ind.acknowledge();
        let answer = self
            .dev
            .call(&mut self.t, &msg, room)
            .map_err(|e| CallError::Drive(format!("{}", e)))?;
        p9::answer(&answer, answer.len(), request, tag)
            .and_then(decode)
            .map_err(CallError::P9)
    }

    /// Tversion and Tattach of the root as [`ROOT`]: the answer's msize
    /// must be at most ours, the version ours. Returns the root's qid.
    fn start(&mut self) -> Result<Qid, String> {
        let (msize, version) = self
            .call(
                ty::TVERSION,
                ROOM,
                |_| p9::tversion(MSIZE, p9::VERSION),
                p9::rversion,
            )
            .map_err(|e| format!("Tversion: {}", e.text().as_str()))?;
        if version != p9::VERSION || !(4096..=MSIZE).contains(&msize) {
            return Err(format!(
                "Tversion msize {} version {}: answered msize {} version '{}' (expected at most {}, at least 4096, and {})",
                MSIZE,
                p9::VERSION,
                msize,
                version.as_str(),
                MSIZE,
                p9::VERSION
            ));
        }
        self.msize = msize;
        let qid = self
            .call(
                ty::TATTACH,
                ROOM,
                |tag| p9::tattach(tag, ROOT, "zvtest", "", 0),
                p9::rqid,
            )
            .map_err(|e| format!("Tattach: {}", e.text().as_str()))?;
        if qid.ty & p9::QT_DIR == 0 {
            return Err(format!(
                "Tattach: the root's qid type {}, expected a directory ({})",
                Hex(u64::from(qid.ty)),
                Hex(u64::from(p9::QT_DIR))
            ));
        }
        Ok(qid)
    }

    /// Walks from `from` along `path` ('/'-separated, "" for a clone) to
    /// a new fid; the qids of every step.
    fn walk(&mut self, from: u32, path: &str) -> Result<(u32, Vec<Qid>), CallError> {
        let names: Vec<&str> = path.split('/').filter(|n| !n.is_empty()).collect();
        let fid = self.fid();
        let want = names.len();
        let qids = self.call(
            ty::TWALK,
            ROOM,
            |tag| p9::twalk(tag, from, fid, &names[..want.min(p9::MAX_WALK)]),
            p9::rwalk,
        )?;
        if qids.len() != want {
            return Err(CallError::Drive(format!(
                "Rwalk of {} names gave {} qids",
                want,
                qids.len()
            )));
        }
        Ok((fid, qids))
    }

    fn getattr(&mut self, fid: u32) -> Result<Attr, CallError> {
        self.call(
            ty::TGETATTR,
            ROOM,
            |tag| p9::tgetattr(tag, fid, p9::GETATTR_BASIC),
            p9::rgetattr,
        )
    }

    fn lopen(&mut self, fid: u32, flags: u32) -> Result<(Qid, u32), CallError> {
        self.call(
            ty::TLOPEN,
            ROOM,
            |tag| p9::tlopen(tag, fid, flags),
            p9::ropen,
        )
    }

    fn clunk(&mut self, fid: u32) -> Result<(), CallError> {
        self.call(ty::TCLUNK, ROOM, |tag| p9::tclunk(tag, fid), p9::rempty)
    }

    /// Largest read or write.
    fn io_max(&self) -> u32 {
        self.msize - IO_HEADER
    }

    /// Reads `count` bytes at `offset` (at most [`Session::io_max`]).
    fn read(&mut self, fid: u32, offset: u64, count: u32) -> Result<Vec<u8>, CallError> {
        self.call(
            ty::TREAD,
            p9::RREAD_HEADER + count as usize,
            |tag| p9::tread(tag, fid, offset, count),
            |r| p9::rread(r).map(Vec::from),
        )
    }

    /// Every name in the directory open as `fid`, Treaddir after Treaddir
    /// until an empty answer.
    fn readdir(&mut self, fid: u32) -> Result<Vec<String>, CallError> {
        let mut names = Vec::new();
        let mut offset = 0;
        let count = self.io_max();
        // A server that never ends the listing is cut off.
        for _ in 0..64 {
            let entries = self.call(
                ty::TREADDIR,
                p9::RREAD_HEADER + count as usize,
                |tag| p9::treaddir(tag, fid, offset, count),
                p9::rreaddir,
            )?;
            let Some(last) = entries.last() else {
                return Ok(names);
            };
            offset = last.offset;
            names.extend(entries.into_iter().map(|e| e.name));
        }
        Err(CallError::Drive(format!(
            "Treaddir: still entries after 64 answers ({} names)",
            names.len()
        )))
    }

    /// Writes all of `data` at offset 0 in chunks of seeded sizes, each
    /// Rwrite counting the whole chunk.
    fn write_all(&mut self, fid: u32, data: &[u8], rng: &mut Rng) -> Result<(), String> {
        let mut at = 0usize;
        while at < data.len() {
            let max = (data.len() - at).min(self.io_max() as usize);
            let n = rng.range(1, max as u64) as usize;
            let chunk = &data[at..at + n];
            let wrote = self
                .call(
                    ty::TWRITE,
                    ROOM,
                    |tag| p9::twrite(tag, fid, at as u64, chunk),
                    p9::rwrite,
                )
                .map_err(|e| format!("Twrite of {} bytes at {}: {}", n, at, e.text().as_str()))?;
            if wrote as usize != n {
                return Err(format!(
                    "Twrite of {} bytes at {}: Rwrite counts {}",
                    n, at, wrote
                ));
            }
            at += n;
        }
        Ok(())
    }
}

/// Expects an error answer `errno` (the call must have failed so).
fn expect_error<R>(what: &str, r: Result<R, CallError>, errno: u32) -> Result<(), String> {
    match r {
        Err(CallError::P9(P9Error::Lerror(e))) if e == errno => Ok(()),
        Err(e) => Err(format!(
            "{}: expected Rlerror {} ({}), got {}",
            what,
            errno,
            p9::errno_name(errno),
            e.text().as_str()
        )),
        Ok(_) => Err(format!(
            "{}: expected Rlerror {} ({}), got a success",
            what,
            errno,
            p9::errno_name(errno)
        )),
    }
}

pub fn config(m: &mut Machine) -> Outcome {
    let list = devices(m);
    if list.is_empty() {
        return Outcome::skip("no virtio-9p-ccw device");
    }
    let mut notes: Vec<String> = Vec::new();
    for (bus, sid, share) in list {
        // The tag at revision 2 once VERSION_1 is negotiated (tag_len
        // little-endian; before that QEMU gives the legacy byte order) and
        // at revision 0 (big-endian).
        for revision in [2u8, 0] {
            let mut t = match CcwTransport::open(sid, revision) {
                Ok(t) => t,
                Err(e) => return Outcome::fail(&format!("9p {}: open: {}", bus, e)),
            };
            let features = match t.device_features() {
                Ok(f) => f,
                Err(e) => return Outcome::fail(&format!("9p {}: features: {}", bus, e)),
            };
            if !has(features, p9::F_MOUNT_TAG) {
                return Outcome::mismatch(
                    &format!("9p {}: MOUNT_TAG (feature bit 0)", bus),
                    "offered",
                    Hex(features).text().as_str(),
                );
            }
            if t.revision() > 0 {
                if let Err(e) = negotiate(&mut t, 1 << p9::F_MOUNT_TAG) {
                    return Outcome::fail(&format!("9p {}: negotiate: {}", bus, e));
                }
            }
            let tag = match p9::read_tag(&mut t) {
                Ok(tag) => tag,
                Err(e) => {
                    return Outcome::fail(&format!("9p {} rev {}: config: {}", bus, revision, e))
                }
            };
            let tag = match core::str::from_utf8(&tag) {
                Ok(t) => String::from(t),
                Err(_) => format!("{}", crate::fmt::Escaped(&tag)),
            };
            crate::out!(
                "# p9 {} rev {}: mount tag '{}'\n",
                bus,
                t.revision(),
                tag.as_str()
            );
            let _ = t.reset();
            match &share {
                Some(s) if s.tag != tag => {
                    return Outcome::mismatch(
                        &format!("9p {} rev {}: mount tag", bus, t.revision()),
                        s.tag.as_str(),
                        tag.as_str(),
                    )
                }
                Some(_) => {}
                None if revision == 2 => notes.push(format!(
                    "{}: mount tag '{}' (no shares= item)",
                    bus,
                    tag.as_str()
                )),
                None => {}
            }
        }
    }
    if notes.is_empty() {
        Outcome::Pass
    } else {
        Outcome::PassNote(notes.join("; "))
    }
}

/// The shares whose seeded tree the runner laid out, or why none.
fn tree_devices(m: &Machine) -> Result<Vec<(BusId, u32, ShareConfig)>, Outcome> {
    let list = devices(m);
    if list.is_empty() {
        return Err(Outcome::skip("no virtio-9p-ccw device"));
    }
    let with_tree: Vec<(BusId, u32, ShareConfig)> = list
        .into_iter()
        .filter_map(|(b, sid, s)| Some((b, sid, s.filter(|s| s.tree)?)))
        .collect();
    if with_tree.is_empty() {
        return Err(Outcome::skip(
            "no 9p device has a shares= item with :tree (the seeded tree laid out by the host)",
        ));
    }
    Ok(with_tree)
}

pub fn read(m: &mut Machine) -> Outcome {
    let list = match tree_devices(m) {
        Ok(l) => l,
        Err(o) => return o,
    };
    for (bus, sid, _) in list {
        if let Err(e) = read_tree(sid, m.cfg.seed) {
            return Outcome::fail(&format!(
                "9p {} (replay: seed={} only=p9.read): {}",
                bus,
                Hex(m.cfg.seed),
                e.as_str()
            ));
        }
    }
    Outcome::Pass
}

/// Reads of the whole file where it is small, and at seeded offsets and
/// sizes (more of them in a large file).
fn read_file(s: &mut Session, fid: u32, path: &str, size: u64, seed: u64) -> Result<u64, String> {
    let mut rng = Rng::for_request(seed, share::path_key(path), 0);
    let mut spans: Vec<(u64, u32)> = Vec::new();
    // Every byte of the files up to 128 KiB; the large one at random.
    if size <= 128 << 10 {
        let mut at = 0;
        while at < size.max(1) {
            spans.push((at, s.io_max()));
            at += u64::from(s.io_max());
        }
    }
    let reads = if size > (1 << 20) { 8 } else { 3 };
    for _ in 0..reads {
        let offset = rng.range(0, size);
        let count = rng.range(1, u64::from(s.io_max().min(16 << 10))) as u32;
        spans.push((offset, count));
    }
    let mut bytes = 0;
    for (offset, count) in spans {
        let data = s.read(fid, offset, count).map_err(|e| {
            format!(
                "{}: Tread of {} at {}: {}",
                path,
                count,
                offset,
                e.text().as_str()
            )
        })?;
        let want = size.saturating_sub(offset).min(u64::from(count));
        if data.len() as u64 != want {
            return Err(format!(
                "{}: Tread of {} at {}: {} bytes came, expected {} (the file holds {})",
                path,
                count,
                offset,
                data.len(),
                want,
                size
            ));
        }
        if let Some((at, byte)) = share::first_difference(seed, path, offset, &data) {
            return Err(format!(
                "{}: offset {}: expected {}, got {} (seed {})",
                path,
                at,
                Hex(u64::from(byte)),
                Hex(u64::from(data[(at - offset) as usize])),
                Hex(seed)
            ));
        }
        bytes += want;
    }
    Ok(bytes)
}

fn read_tree(sid: u32, seed: u64) -> Result<(), String> {
    let mut s = Session::open_plain(sid)?;
    s.start()?;
    crate::out!("# p9: msize {} ({} offered)\n", s.msize, MSIZE);
    let mut bytes = 0u64;
    for e in TREE {
        let ctx =
            |what: &str, err: CallError| format!("{}: {}: {}", e.path, what, err.text().as_str());
        let (fid, qids) = s.walk(ROOT, e.path).map_err(|err| ctx("Twalk", err))?;
        let qid = *qids.last().ok_or("empty path in the tree")?;
        let a = s.getattr(fid).map_err(|err| ctx("Tgetattr", err))?;
        let (want_ty, want_qt) = match e.kind {
            Kind::Dir => (p9::S_IFDIR, p9::QT_DIR),
            Kind::File(_) => (p9::S_IFREG, p9::QT_FILE),
            Kind::Symlink(_) => (p9::S_IFLNK, p9::QT_SYMLINK),
        };
        if a.mode & p9::S_IFMT != want_ty || qid.ty != want_qt || a.qid != qid {
            return Err(format!(
                "{}: expected file type {} (qid type {}), got mode {} qid type {} (walk's qid type {})",
                e.path,
                Hex(u64::from(want_ty)),
                Hex(u64::from(want_qt)),
                Hex(u64::from(a.mode)),
                Hex(u64::from(a.qid.ty)),
                Hex(u64::from(qid.ty))
            ));
        }
        if !matches!(e.kind, Kind::Symlink(_)) && a.mode & 0o7777 != e.mode {
            return Err(format!(
                "{}: mode: expected {}, got {} (octal)",
                e.path,
                octal(e.mode).as_str(),
                octal(a.mode & 0o7777).as_str()
            ));
        }
        match e.kind {
            Kind::File(size) => {
                if a.size != size {
                    return Err(format!(
                        "{}: size: expected {}, got {}",
                        e.path, size, a.size
                    ));
                }
                let (oq, _) = s
                    .lopen(fid, p9::O_RDONLY)
                    .map_err(|err| ctx("Tlopen", err))?;
                if oq.path != qid.path {
                    return Err(format!("{}: Rlopen's qid is not the walk's", e.path));
                }
                bytes += read_file(&mut s, fid, e.path, size, seed)?;
            }
            Kind::Dir => {
                s.lopen(fid, p9::O_RDONLY | p9::O_DIRECTORY)
                    .map_err(|err| ctx("Tlopen", err))?;
                list_dir(&mut s, fid, e.path)?;
            }
            Kind::Symlink(target) => {
                let got = s
                    .call(
                        ty::TREADLINK,
                        ROOM,
                        |tag| p9::treadlink(tag, fid),
                        p9::rreadlink,
                    )
                    .map_err(|err| ctx("Treadlink", err))?;
                if got != target {
                    return Err(format!(
                        "{}: Treadlink: expected '{}', got '{}'",
                        e.path,
                        target,
                        got.as_str()
                    ));
                }
            }
        }
        s.clunk(fid).map_err(|err| ctx("Tclunk", err))?;
    }
    // The root's listing.
    let (root, _) = s
        .walk(ROOT, "")
        .map_err(|e| format!("clone the root: {}", e.text().as_str()))?;
    s.lopen(root, p9::O_RDONLY | p9::O_DIRECTORY)
        .map_err(|e| format!("Tlopen of the root: {}", e.text().as_str()))?;
    list_dir(&mut s, root, "")?;
    s.clunk(root)
        .map_err(|e| format!("Tclunk of the root: {}", e.text().as_str()))?;
    // Errors as QEMU gives them (hw/9pfs/9p.c): a walk to a name that is
    // not there, ENOENT; I/O on a clunked fid, EINVAL (v9fs_read finds no
    // fid); clunking it again, ENOENT (v9fs_clunk).
    let missing = s.walk(ROOT, "zvtest-no-such-name");
    expect_error("Twalk to a missing name", missing, p9::ENOENT)?;
    let (fid, _) = s
        .walk(ROOT, "hello.txt")
        .map_err(|e| format!("hello.txt: Twalk: {}", e.text().as_str()))?;
    s.lopen(fid, p9::O_RDONLY)
        .map_err(|e| format!("hello.txt: Tlopen: {}", e.text().as_str()))?;
    s.clunk(fid)
        .map_err(|e| format!("hello.txt: Tclunk: {}", e.text().as_str()))?;
    let r = s.read(fid, 0, 16);
    expect_error("Tread on a clunked fid", r, p9::EINVAL)?;
    let r = s.clunk(fid);
    expect_error("Tclunk of a clunked fid", r, p9::ENOENT)?;
    crate::out!(
        "# p9: {} entries walked and checked, {} bytes read and checked\n",
        TREE.len(),
        bytes
    );
    let _ = s.t.reset();
    Ok(())
}

/// The names in directory `path` (open as `fid`) must be its children in
/// the tree, with "." and "..".
fn list_dir(s: &mut Session, fid: u32, path: &str) -> Result<(), String> {
    let mut got = s
        .readdir(fid)
        .map_err(|e| format!("{}/: Treaddir: {}", path, e.text().as_str()))?;
    let mut want: Vec<String> = share::children(path)
        .map(|e| String::from(share::name(e.path)))
        .collect();
    want.push(String::from("."));
    want.push(String::from(".."));
    got.sort();
    want.sort();
    if got != want {
        return Err(format!(
            "{}/: Treaddir names: expected [{}], got [{}]",
            path,
            want.join(" ").as_str(),
            got.join(" ").as_str()
        ));
    }
    Ok(())
}

fn is_scratch(cfg: &Config, bus: BusId) -> bool {
    cfg.scratch.contains(&DiskId { bus, lun: None })
}

pub fn write(m: &mut Machine) -> Outcome {
    let list = match tree_devices(m) {
        Ok(l) => l,
        Err(o) => return o,
    };
    let scratch: Vec<_> = list
        .iter()
        .filter(|(b, _, _)| is_scratch(&m.cfg, *b))
        .collect();
    if scratch.is_empty() {
        return Outcome::skip("no 9p share is named in scratch=: the shares are only read");
    }
    for (bus, sid, _) in scratch {
        if let Err(e) = write_files(*sid, m.cfg.seed, m.cfg.p9_corrupt) {
            return Outcome::fail(&format!(
                "9p {} (replay: seed={} only=p9.write on a fresh tree): {}",
                bus,
                Hex(m.cfg.seed),
                e.as_str()
            ));
        }
    }
    Outcome::Pass
}

/// What file `n` of `p9.write` holds (with the test-only corruption).
fn written(seed: u64, n: u32, corrupt: Option<plan::Corrupt>) -> Vec<u8> {
    let mut data = alloc::vec![0u8; plan::WRITTEN[n as usize] as usize];
    share::fill(seed, &plan::written_path(n), 0, &mut data);
    if let Some(c) = corrupt.filter(|c| c.file == n) {
        data[c.offset as usize] ^= 0xff;
    }
    data
}

fn write_files(sid: u32, seed: u64, corrupt: Option<plan::Corrupt>) -> Result<(), String> {
    let mut s = Session::open_plain(sid)?;
    s.start()?;
    let e = |what: &str, err: CallError| format!("{}: {}", what, err.text().as_str());
    let q = s
        .call(
            ty::TMKDIR,
            ROOM,
            |tag| p9::tmkdir(tag, ROOT, share::OUT_DIR, 0o755, 0),
            p9::rqid,
        )
        .map_err(|err| e(&format!("Tmkdir {}", share::OUT_DIR), err))?;
    if q.ty != p9::QT_DIR {
        return Err(format!("Tmkdir {}: qid type {}", share::OUT_DIR, q.ty));
    }
    let (dir, _) = s
        .walk(ROOT, share::OUT_DIR)
        .map_err(|err| e("Twalk to it", err))?;
    let mut rng = Rng::for_request(seed, share::path_key(share::OUT_DIR), 0);
    for n in 0..plan::WRITTEN.len() as u32 {
        let data = written(seed, n, corrupt);
        let final_name = String::from(share::name(&plan::written_path(n)));
        let name = if n == 1 {
            plan::temporary_name(n)
        } else {
            final_name.clone()
        };
        let (fid, _) = s.walk(dir, "").map_err(|err| e("clone", err))?;
        s.call(
            ty::TLCREATE,
            ROOM,
            |tag| {
                p9::tlcreate(
                    tag,
                    fid,
                    &name,
                    p9::O_RDWR | p9::O_CREAT | p9::O_EXCL,
                    0o644,
                    0,
                )
            },
            p9::ropen,
        )
        .map_err(|err| e(&format!("Tlcreate {}", name.as_str()), err))?;
        s.write_all(fid, &data, &mut rng)
            .map_err(|err| format!("{}: {}", name.as_str(), err.as_str()))?;
        s.call(ty::TFSYNC, ROOM, |tag| p9::tfsync(tag, fid, 0), p9::rempty)
            .map_err(|err| e(&format!("Tfsync {}", name.as_str()), err))?;
        s.clunk(fid).map_err(|err| e("Tclunk", err))?;
        if name != final_name {
            s.call(
                ty::TRENAMEAT,
                ROOM,
                |tag| p9::trenameat(tag, dir, &name, dir, &final_name),
                p9::rempty,
            )
            .map_err(|err| e(&format!("Trenameat {}", name.as_str()), err))?;
            let r = s.walk(dir, &name);
            expect_error("Twalk to the name renamed away", r, p9::ENOENT)?;
        }
        // Read back through the server: what was written.
        let path = plan::written_path(n);
        let (fid, _) = s.walk(dir, &final_name).map_err(|err| e(&path, err))?;
        let a = s.getattr(fid).map_err(|err| e(&path, err))?;
        if a.size != data.len() as u64 {
            return Err(format!(
                "{}: size after writing {} bytes: {}",
                path.as_str(),
                data.len(),
                a.size
            ));
        }
        s.lopen(fid, p9::O_RDONLY).map_err(|err| e(&path, err))?;
        let mut at = 0usize;
        while at < data.len() {
            let n = (data.len() - at).min(s.io_max() as usize);
            let got = s
                .read(fid, at as u64, n as u32)
                .map_err(|err| e(&path, err))?;
            if let Some(i) = got.iter().zip(&data[at..]).position(|(a, b)| a != b) {
                return Err(format!(
                    "{}: read back at offset {}: expected {}, got {}",
                    path.as_str(),
                    at + i,
                    Hex(u64::from(data[at + i])),
                    Hex(u64::from(got[i]))
                ));
            }
            if got.len() != n {
                return Err(format!(
                    "{}: read back {} bytes at {}, {} came",
                    path.as_str(),
                    n,
                    at,
                    got.len()
                ));
            }
            at += n;
        }
        s.clunk(fid).map_err(|err| e("Tclunk", err))?;
    }
    // A directory and a file made and removed again.
    s.call(
        ty::TMKDIR,
        ROOM,
        |tag| p9::tmkdir(tag, dir, "9p-dir", 0o700, 0),
        p9::rqid,
    )
    .map_err(|err| e("Tmkdir 9p-dir", err))?;
    s.call(
        ty::TUNLINKAT,
        ROOM,
        |tag| p9::tunlinkat(tag, dir, "9p-dir", p9::AT_REMOVEDIR),
        p9::rempty,
    )
    .map_err(|err| e("Tunlinkat 9p-dir", err))?;
    let (fid, _) = s.walk(dir, "").map_err(|err| e("clone", err))?;
    s.call(
        ty::TLCREATE,
        ROOM,
        |tag| p9::tlcreate(tag, fid, "9p-gone", p9::O_WRONLY | p9::O_CREAT, 0o600, 0),
        p9::ropen,
    )
    .map_err(|err| e("Tlcreate 9p-gone", err))?;
    s.clunk(fid).map_err(|err| e("Tclunk", err))?;
    s.call(
        ty::TUNLINKAT,
        ROOM,
        |tag| p9::tunlinkat(tag, dir, "9p-gone", 0),
        p9::rempty,
    )
    .map_err(|err| e("Tunlinkat 9p-gone", err))?;
    for gone in ["9p-dir", "9p-gone"] {
        let r = s.walk(dir, gone);
        expect_error("Twalk to a removed name", r, p9::ENOENT)?;
    }
    s.clunk(dir).map_err(|err| e("Tclunk", err))?;
    crate::out!(
        "# p9: {} files written, renamed and read back in {}\n",
        plan::WRITTEN.len(),
        share::OUT_DIR
    );
    let _ = s.t.reset();
    Ok(())
}

/// Reads per setup, before `stress=`.
const STRESS_REQUESTS: u64 = 64;
/// At most this many in flight: QEMU serves up to MAX_REQ - 1 (127)
/// requests at once and looks at the ring again only when notified
/// (hw/9pfs/virtio-9p-device.c), so an element past that waits for the
/// next notification, which the last requests never send.
const STRESS_DEPTH: u16 = 64;
/// The largest read of the stress.
const STRESS_MAX_COUNT: u32 = 4096;

pub fn stress(m: &mut Machine) -> Outcome {
    let list = match tree_devices(m) {
        Ok(l) => l,
        Err(o) => return o,
    };
    for (bus, sid, _) in list {
        let packed = m.cfg.virtio_config(bus).is_some_and(|c| c.packed);
        if let Err(e) = stress_device(bus, sid, m.cfg.seed, m.cfg.stress, packed) {
            return Outcome::mismatch(
                &format!(
                    "9p {} (replay: seed={} only=p9.stress)",
                    bus,
                    Hex(m.cfg.seed)
                ),
                "every Tread answered with the seeded content, its tag and count",
                e.as_str(),
            );
        }
    }
    Outcome::Pass
}

fn stress_device(bus: BusId, sid: u32, seed: u64, stress: u32, packed: bool) -> Result<(), String> {
    let mut rounds = stress_rounds(false);
    // The closing repeat of the first setup is blk's fill round: nothing
    // new here.
    rounds.pop();
    let mut packed_driven = false;
    for (i, (setup, completion)) in rounds.into_iter().enumerate() {
        let label = setup.label();
        let Some(mut s) = Session::open(sid, setup)? else {
            crate::out!(
                "# p9 {}: {} not offered, that round left out\n",
                bus,
                label.as_str()
            );
            continue;
        };
        packed_driven |= setup.packed;
        s.start()?;
        // Every file of the tree open for reading, each on its own fid.
        let mut files = Vec::new();
        for e in TREE {
            if let Kind::File(size) = e.kind {
                let (fid, _) = s
                    .walk(ROOT, e.path)
                    .map_err(|err| format!("{}: Twalk: {}", e.path, err.text().as_str()))?;
                s.lopen(fid, p9::O_RDONLY)
                    .map_err(|err| format!("{}: Tlopen: {}", e.path, err.text().as_str()))?;
                files.push(OpenFile {
                    fid,
                    path: e.path,
                    size,
                });
            }
        }
        let mut w = Reads {
            files,
            seed,
            max_count: STRESS_MAX_COUNT.min(s.io_max()),
        };
        let size = s.dev.queue().size();
        let opts = Options {
            depth: size.min(STRESS_DEPTH),
            ..Options::varied(
                seed,
                u64::from(sid) << 24 | (i as u64) << 16,
                size,
                STRESS_REQUESTS * u64::from(stress),
                has(s.features, F_INDIRECT_DESC),
                completion,
                now_us,
            )
        };
        let st = crate::suites::setups::run_counted(
            &mut s.t,
            s.dev.queue_mut(),
            &mut w,
            &opts,
            &mut s.ind,
        )
        .map_err(|f| {
            format!(
                "{} {} request {}: {}",
                label.as_str(),
                completion.name(),
                f.request,
                f.what.as_str()
            )
        })?;
        crate::out!(
            "# p9 {} requestq {} {}: {}\n",
            bus,
            label.as_str(),
            completion.name(),
            st
        );
        crate::judge::echo_queue(
            &format!("requestq ({} {})", label.as_str(), completion.name()),
            (completion == Completion::Polled, false),
            &st,
        )?;
        let _ = s.t.reset();
    }
    if packed && !packed_driven {
        return Err(String::from(
            "devices= says packed=on, but no packed-ring round could be driven (RING_PACKED not offered)",
        ));
    }
    Ok(())
}
