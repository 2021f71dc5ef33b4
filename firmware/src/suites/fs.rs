//! virtio-fs (`vhost-user-fs-ccw`): the configuration against `shares=`,
//! FUSE requests against the seeded tree the runner laid out (contract
//! `share`), writes on a scratch share (the runner checks them after the
//! run), and every request queue under the stress engine with reads.
//!
//! The device takes revision 1 and up only (QEMU's vhost-user-fs). The
//! daemon behind it is the runner's `virtiofsd`.

use super::setups::{stress_rounds, Setup};
use super::virtio::WANTED;
use crate::check::Outcome;
use crate::fmt::{Hex, ToText};
use crate::format;
use crate::inventory::BusId;
use crate::machine::Machine;
use crate::virtio::ccw::CcwTransport;
use crate::virtio::devices::fs::{
    self, decode_reply, encode, parse_attr_out, parse_create_out, parse_dirents, parse_open_out,
    parse_write_out, Attr, EntryOut, Fs, FsConfig, InHeader, InitOut, Opcode, CONFIG_LEN, ENOENT,
    FUSE_MAJOR, FUSE_MINOR, HIPRIO_QUEUE, INIT_MAX_PAGES, OUT_HEADER_LEN, REQUEST_QUEUE, ROOT_ID,
};
use crate::virtio::indicators::{IndicatorMode, Indicators};
use crate::virtio::stress::{Completion, Options, Rng};
use crate::virtio::transport::{
    driver_ok_status, has, negotiate, Transport, F_EVENT_IDX, F_INDIRECT_DESC, F_RING_PACKED,
};
use crate::workloads::fs::Reads;
use alloc::string::String;
use alloc::vec::Vec;
use zvtest_contract::disk::DiskId;
use zvtest_contract::share::{self, Kind, ShareConfig, OUT_DIR, TREE};
use zvtest_contract::virtiofs;

/// QEMU's default `num-request-queues` (hw/virtio/vhost-user-fs.c).
const DEFAULT_REQUEST_QUEUES: u16 = 1;
/// Reply room for most requests (an entry and an open reply fit).
const REPLY: usize = 256;
/// The largest READ we make (well under any daemon's max_pages).
const READ_MAX: u32 = 32 << 10;

fn now_us() -> u64 {
    crate::arch::tod() / crate::arch::TOD_PER_US
}

struct Found {
    bus: BusId,
    sid: u32,
    share: Option<ShareConfig>,
    scratch: bool,
}

/// Why there is nothing to check: no device, or only hostile ones.
fn no_device(m: &Machine) -> &'static str {
    if m.inventory.virtio_devices(fs::DEVICE_ID).next().is_some() {
        "no vhost-user-fs-ccw share (the hostile device is hostile.echo's)"
    } else {
        "no vhost-user-fs-ccw device"
    }
}

/// The virtio-fs devices that are shares: the hostile device (a
/// `shares=` item with the hostile tag) is `hostile.echo`'s, not a FUSE
/// server, and is left alone here.
fn devices(m: &Machine) -> Vec<Found> {
    m.inventory
        .virtio_devices(fs::DEVICE_ID)
        .filter(|d| {
            !m.cfg
                .shares
                .iter()
                .any(|s| s.bus == d.bus_id() && s.tag.as_str() == zvtest_contract::hostile::TAG)
        })
        .map(|d| {
            let bus = d.bus_id();
            Found {
                bus,
                sid: d.subchannel.sid,
                share: m.cfg.shares.iter().find(|s| s.bus == bus).cloned(),
                scratch: m
                    .cfg
                    .scratch
                    .iter()
                    .any(|s| s.covers(&DiskId { bus, lun: None })),
            }
        })
        .collect()
}

fn err(what: &str, e: &dyn ToText) -> String {
    format!("{}: {}", what, e.text().as_str())
}

/// A device at DRIVER_OK with its queues and a count for uniques.
struct Session {
    t: CcwTransport,
    ind: Indicators,
    dev: Fs,
    config: FsConfig,
    features: u64,
    unique: u64,
    /// Lookups made of each node, to forget at the end.
    looked_up: Vec<(u64, u64)>,
}

/// The setup the checks other than `fs.stress` use.
const PLAIN: Setup = Setup {
    revision: 2,
    packed: false,
    event_idx: true,
    in_order: false,
    mode: IndicatorMode::Classic,
};

fn open(sid: u32) -> Result<Session, String> {
    open_setup(sid, PLAIN)?.ok_or_else(|| String::from("revision 1 or more not taken"))
}

/// The device at DRIVER_OK as `s` says; None where it does not take that
/// setup (a revision below 1, a feature not offered).
fn open_setup(sid: u32, setup: Setup) -> Result<Option<Session>, String> {
    // QEMU's vhost-user-fs refuses revision 0 (its set-up is refused).
    if setup.revision < 1 {
        return Ok(None);
    }
    let mut t = CcwTransport::open(sid, setup.revision).map_err(|e| err("open", &e))?;
    // vhost-user-fs takes revision 1 and up: 2 may come back as 1.
    if t.revision() < 1 || (setup.revision == 1 && t.revision() != 1) {
        return Ok(None);
    }
    let mut wanted = WANTED & !(1 << F_RING_PACKED | 1 << F_EVENT_IDX);
    wanted |= u64::from(setup.packed) << F_RING_PACKED;
    wanted |= u64::from(setup.event_idx) << F_EVENT_IDX;
    let features = negotiate(&mut t, wanted).map_err(|e| err("negotiate", &e))?;
    let offered = |bit| !has(wanted, bit) || has(features, bit);
    if !offered(F_RING_PACKED) || !offered(F_EVENT_IDX) {
        return Ok(None);
    }
    let mut raw = [0u8; CONFIG_LEN];
    t.read_config(&mut raw)
        .map_err(|e| err("configuration", &e))?;
    let config = FsConfig::parse(&raw);
    let ind = Indicators::install(&mut t, setup.mode).map_err(|e| err("indicators", &e))?;
    let queues = u16::try_from(config.num_request_queues)
        .ok()
        .filter(|&n| n >= 1)
        .ok_or_else(|| {
            format!(
                "num_request_queues {}: no request queue to use",
                config.num_request_queues
            )
        })?;
    let dev = Fs::setup(&mut t, features, queues, setup.packed).map_err(|e| err("queues", &e))?;
    t.set_status(driver_ok_status(t.revision()))
        .map_err(|e| err("DRIVER_OK", &e))?;
    Ok(Some(Session {
        t,
        ind,
        dev,
        config,
        features,
        unique: 0,
        looked_up: Vec::new(),
    }))
}

/// A reply: its error and arguments.
struct Answer {
    error: i32,
    body: Vec<u8>,
}

impl Session {
    /// Sends one request on `queue` and decodes its reply.
    fn request(
        &mut self,
        queue: u16,
        op: Opcode,
        nodeid: u64,
        args: &[u8],
        tail: &[&[u8]],
        reply: usize,
    ) -> Result<Answer, String> {
        self.unique += 1;
        let unique = self.unique;
        let m = encode(&InHeader::new(op, unique, nodeid), args, tail);
        self.ind.acknowledge();
        let what = || format!("{} (node {}, queue {})", op.name(), nodeid, queue);
        let a = self
            .dev
            .call(&mut self.t, queue, &m, OUT_HEADER_LEN + reply, true)
            .map_err(|e| err(&what(), &e))?;
        let buf = a.reply();
        let r = decode_reply(&buf, a.used, unique).map_err(|e| err(&what(), &e))?;
        Ok(Answer {
            error: r.error,
            body: r.body.to_vec(),
        })
    }

    /// A request that must succeed.
    fn ok(
        &mut self,
        op: Opcode,
        nodeid: u64,
        args: &[u8],
        tail: &[&[u8]],
        reply: usize,
    ) -> Result<Vec<u8>, String> {
        let a = self.request(REQUEST_QUEUE, op, nodeid, args, tail, reply)?;
        if a.error != 0 {
            return Err(format!(
                "{} (node {}): error {}, success expected",
                op.name(),
                nodeid,
                a.error
            ));
        }
        Ok(a.body)
    }

    fn init(&mut self, queue: u16) -> Result<InitOut, String> {
        let a = self.request(
            queue,
            Opcode::Init,
            0,
            &fs::init_in(0, INIT_MAX_PAGES),
            &[],
            REPLY,
        )?;
        if a.error != 0 {
            return Err(format!("INIT: error {}, success expected", a.error));
        }
        let i = InitOut::parse(&a.body).map_err(|e| err("INIT", &e))?;
        if i.major != FUSE_MAJOR {
            return Err(format!("INIT: major {}, {} expected", i.major, FUSE_MAJOR));
        }
        // QEMU's C virtiofsd answers with its own minor and refuses a
        // client below 31; the protocol's version is the lower of the two.
        if i.minor < FUSE_MINOR {
            return Err(format!(
                "INIT: minor {}, at least {} expected (ours)",
                i.minor, FUSE_MINOR
            ));
        }
        if i.max_write < 4096 {
            return Err(format!(
                "INIT: max_write {}, at least 4096 expected",
                i.max_write
            ));
        }
        // Asked for max_pages: what a write may carry, in pages.
        if i.flags & INIT_MAX_PAGES != 0 && u32::from(i.max_pages) != i.max_write.div_ceil(4096) {
            return Err(format!(
                "INIT: max_pages {} for max_write {} ({} pages expected)",
                i.max_pages,
                i.max_write,
                i.max_write.div_ceil(4096)
            ));
        }
        Ok(i)
    }

    /// LOOKUP of `name` in `parent`: the entry, or the errno.
    fn lookup(&mut self, parent: u64, name: &str) -> Result<Result<EntryOut, i32>, String> {
        let a = self.request(
            REQUEST_QUEUE,
            Opcode::Lookup,
            parent,
            &[],
            &[&fs::name(name)],
            REPLY,
        )?;
        if a.error != 0 {
            return Ok(Err(-a.error));
        }
        let e = EntryOut::parse(&a.body).map_err(|e| err("LOOKUP", &e))?;
        self.note_lookup(e.nodeid);
        Ok(Ok(e))
    }

    fn note_lookup(&mut self, nodeid: u64) {
        match self.looked_up.iter_mut().find(|(n, _)| *n == nodeid) {
            Some((_, c)) => *c += 1,
            None => self.looked_up.push((nodeid, 1)),
        }
    }

    fn getattr(&mut self, nodeid: u64) -> Result<Attr, String> {
        let b = self.ok(Opcode::Getattr, nodeid, &fs::getattr_in(), &[], REPLY)?;
        parse_attr_out(&b).map_err(|e| err("GETATTR", &e))
    }

    fn open_file(&mut self, nodeid: u64, flags: u32, dir: bool) -> Result<u64, String> {
        let op = if dir { Opcode::Opendir } else { Opcode::Open };
        let b = self.ok(op, nodeid, &fs::open_in(flags), &[], REPLY)?;
        parse_open_out(&b).map_err(|e| err(op.name(), &e))
    }

    fn release(&mut self, nodeid: u64, fh: u64, dir: bool) -> Result<(), String> {
        let op = if dir {
            Opcode::Releasedir
        } else {
            Opcode::Release
        };
        self.ok(op, nodeid, &fs::release_in(fh, 0), &[], 0)
            .map(|_| ())
    }

    fn read(&mut self, nodeid: u64, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>, String> {
        self.ok(
            Opcode::Read,
            nodeid,
            &fs::read_in(fh, offset, size),
            &[],
            size as usize,
        )
    }

    /// Every name in directory `nodeid` (without `.` and `..`), with types.
    fn list(&mut self, nodeid: u64) -> Result<Vec<(Vec<u8>, u32)>, String> {
        let fh = self.open_file(nodeid, fs::O_RDONLY | fs::O_DIRECTORY, true)?;
        let mut names = Vec::new();
        let mut offset = 0;
        for _ in 0..64 {
            let b = self.ok(
                Opcode::Readdir,
                nodeid,
                &fs::read_in(fh, offset, 4096),
                &[],
                4096,
            )?;
            let ents = parse_dirents(&b).map_err(|e| err("READDIR", &e))?;
            let Some(last) = ents.last() else { break };
            offset = last.off;
            for d in ents {
                if d.name != b"." && d.name != b".." {
                    names.push((d.name, d.typ));
                }
            }
        }
        self.release(nodeid, fh, true)?;
        Ok(names)
    }

    /// FORGET of every lookup made, on the high-priority queue: no reply,
    /// the buffer comes back with nothing written.
    fn forget_all(&mut self) -> Result<u32, String> {
        let all = core::mem::take(&mut self.looked_up);
        for &(nodeid, n) in &all {
            self.unique += 1;
            let m = encode(
                &InHeader::new(Opcode::Forget, self.unique, nodeid),
                &fs::forget_in(n),
                &[],
            );
            self.ind.acknowledge();
            let a = self
                .dev
                .call(&mut self.t, HIPRIO_QUEUE, &m, 0, true)
                .map_err(|e| err(&format!("FORGET (node {}, queue 0)", nodeid), &e))?;
            if a.used != 0 {
                return Err(format!(
                    "FORGET (node {}, queue 0): {} bytes used, 0 expected (no reply)",
                    nodeid, a.used
                ));
            }
        }
        Ok(all.len() as u32)
    }
}

/// The share of `d` as `shares=` says, or the outcome without one.
fn share_of(d: &Found) -> Result<&ShareConfig, Outcome> {
    d.share.as_ref().ok_or_else(|| {
        Outcome::fail(&format!(
            "virtio-fs {}: no shares= item for it (BUS:TAG[:tree])",
            d.bus
        ))
    })
}

pub fn config(m: &mut Machine) -> Outcome {
    let found = devices(m);
    if found.is_empty() {
        return Outcome::skip(no_device(m));
    }
    for d in &found {
        let share = match share_of(d) {
            Ok(s) => s,
            Err(o) => return o,
        };
        let s = match open(d.sid) {
            Ok(s) => s,
            Err(e) => return Outcome::fail(&format!("virtio-fs {}: {}", d.bus, e.as_str())),
        };
        let tag = core::str::from_utf8(s.config.tag()).unwrap_or("(not UTF-8)");
        crate::out!(
            "# fs {}: tag '{}', num_request_queues {}, features {}, revision {}\n",
            d.bus,
            tag,
            s.config.num_request_queues,
            Hex(s.features),
            s.t.revision()
        );
        if tag != share.tag {
            return Outcome::mismatch(&format!("virtio-fs {} tag", d.bus), share.tag.as_str(), tag);
        }
        let want = share.queues.unwrap_or(DEFAULT_REQUEST_QUEUES);
        if s.config.num_request_queues != u32::from(want) {
            return Outcome::mismatch(
                &format!("virtio-fs {} num_request_queues", d.bus),
                want,
                s.config.num_request_queues,
            );
        }
    }
    Outcome::Pass
}

/// Files up to this size are read whole.
const WHOLE_MAX: u64 = 1 << 20;

/// Reads of the file at `path` (node `nodeid`, `size` bytes): the whole
/// of a small file, and seeded random offsets and sizes; then one at the
/// end (nothing) and one across it (the rest).
fn read_file(
    s: &mut Session,
    seed: u64,
    path: &'static str,
    nodeid: u64,
    size: u64,
) -> Result<u64, String> {
    let fh = s.open_file(nodeid, fs::O_RDONLY, false)?;
    let mut rng = Rng::new(seed ^ share::path_key(path));
    let mut reads: Vec<(u64, u32)> = Vec::new();
    // Every byte of the small files; the large one at random only.
    if size <= WHOLE_MAX {
        let mut at = 0;
        while at < size {
            let n = (size - at).min(u64::from(READ_MAX));
            reads.push((at, n as u32));
            at += n;
        }
    }
    if size > 0 {
        for _ in 0..4 {
            let len = rng.range(1, size.min(u64::from(READ_MAX))) as u32;
            reads.push((rng.below(size - u64::from(len) + 1), len));
        }
    }
    let mut bytes = 0;
    for (offset, len) in reads {
        let got = s.read(nodeid, fh, offset, len)?;
        if got.len() != len as usize {
            return Err(format!(
                "READ {} at {} of {} bytes: {} bytes came",
                path,
                offset,
                len,
                got.len()
            ));
        }
        if let Some((at, want)) = share::first_difference(seed, path, offset, &got) {
            return Err(format!(
                "READ {} at {} of {} bytes: offset {}: expected {}, got {} (seed {})",
                path,
                offset,
                len,
                at,
                Hex(u64::from(want)),
                Hex(u64::from(got[(at - offset) as usize])),
                Hex(seed)
            ));
        }
        bytes += got.len() as u64;
    }
    // At the end: nothing; across it: only what is there.
    let at_end = s.read(nodeid, fh, size, 100)?;
    let across = s.read(nodeid, fh, size.saturating_sub(3), 100)?;
    if !at_end.is_empty() || across.len() as u64 != size.min(3) {
        return Err(format!(
            "READ {} ({} bytes) at its end: {} bytes came, 0 expected; 3 before it: {} came, {} expected",
            path,
            size,
            at_end.len(),
            across.len(),
            size.min(3)
        ));
    }
    s.ok(Opcode::Flush, nodeid, &fs::flush_in(fh), &[], 0)?;
    s.release(nodeid, fh, false)?;
    Ok(bytes)
}

fn type_name(mode: u32) -> &'static str {
    match mode & fs::S_IFMT {
        fs::S_IFDIR => "directory",
        fs::S_IFREG => "regular file",
        fs::S_IFLNK => "symlink",
        _ => "other",
    }
}

/// The tree read through the device: every entry looked up and its
/// attributes held to the tree's, every file read, every directory listed,
/// a missing name answered ENOENT, and every lookup forgotten.
fn read_tree(s: &mut Session, seed: u64) -> Result<String, String> {
    let init = s.init(REQUEST_QUEUE)?;
    crate::out!(
        "# fs: INIT answered {}.{} (we speak {}.{}: {}.{} negotiated), max_write {}, max_pages {}, flags {}\n",
        init.major,
        init.minor,
        FUSE_MAJOR,
        FUSE_MINOR,
        FUSE_MAJOR,
        init.minor.min(FUSE_MINOR),
        init.max_write,
        init.max_pages,
        Hex(u64::from(init.flags))
    );
    let mut nodes: Vec<(&str, u64)> = Vec::new();
    let mut bytes = 0u64;
    for e in TREE {
        let parent = match share::parent(e.path) {
            "" => ROOT_ID,
            p => nodes
                .iter()
                .find(|(q, _)| *q == p)
                .map(|&(_, n)| n)
                .ok_or_else(|| format!("{}: parent not looked up", e.path))?,
        };
        let entry = s
            .lookup(parent, share::name(e.path))?
            .map_err(|errno| format!("LOOKUP {}: errno {}, an entry expected", e.path, errno))?;
        nodes.push((e.path, entry.nodeid));
        let (typ, size) = match e.kind {
            Kind::Dir => (fs::S_IFDIR, None),
            Kind::File(n) => (fs::S_IFREG, Some(n)),
            Kind::Symlink(t) => (fs::S_IFLNK, Some(t.len() as u64)),
        };
        let attr = s.getattr(entry.nodeid)?;
        for (how, a) in [("LOOKUP", entry.attr), ("GETATTR", attr)] {
            if a.mode & fs::S_IFMT != typ {
                return Err(format!(
                    "{} {}: a {} expected, got a {} (mode {})",
                    how,
                    e.path,
                    type_name(typ),
                    type_name(a.mode),
                    Hex(u64::from(a.mode))
                ));
            }
            if typ != fs::S_IFLNK && a.mode & 0o7777 != e.mode {
                return Err(format!(
                    "{} {}: permissions {} expected, got {} (octal digits in hex)",
                    how,
                    e.path,
                    Hex(u64::from(octal(e.mode))),
                    Hex(u64::from(octal(a.mode & 0o7777)))
                ));
            }
            if let Some(n) = size.filter(|_| typ != fs::S_IFDIR) {
                if a.size != n {
                    return Err(format!(
                        "{} {}: size {} expected, got {}",
                        how, e.path, n, a.size
                    ));
                }
            }
        }
        if let Kind::File(n) = e.kind {
            bytes += read_file(s, seed, e.path, entry.nodeid, n)?;
        }
    }
    // Directory listings: names and types as the tree has them (the root
    // may hold the firmware's own output directory too).
    let dirs = core::iter::once(("", ROOT_ID)).chain(
        TREE.iter()
            .filter(|e| e.kind == Kind::Dir)
            .filter_map(|e| nodes.iter().find(|(p, _)| *p == e.path).copied()),
    );
    let dirs: Vec<(&str, u64)> = dirs.collect();
    for (dir, nodeid) in dirs {
        let mut got = s.list(nodeid)?;
        got.retain(|(n, _)| !(dir.is_empty() && n.as_slice() == OUT_DIR.as_bytes()));
        got.sort();
        let mut want: Vec<(Vec<u8>, u32)> = share::children(dir)
            .map(|e| {
                let t = match e.kind {
                    Kind::Dir => fs::DT_DIR,
                    Kind::File(_) => fs::DT_REG,
                    Kind::Symlink(_) => fs::DT_LNK,
                };
                (share::name(e.path).as_bytes().to_vec(), t)
            })
            .collect();
        want.sort();
        if got != want {
            let show = |v: &[(Vec<u8>, u32)]| {
                let mut s = String::new();
                for (n, t) in v {
                    s.push_str(core::str::from_utf8(n).unwrap_or("?"));
                    s.push_str(&format!("/{} ", t));
                }
                s
            };
            return Err(format!(
                "READDIR '{}': expected [{}] (name/type), got [{}]",
                dir,
                show(&want).as_str(),
                show(&got).as_str()
            ));
        }
    }
    // A name that is not there.
    match s.lookup(ROOT_ID, "zvtest-no-such-name")? {
        Err(ENOENT) => {}
        Err(errno) => {
            return Err(format!(
                "LOOKUP of a missing name: errno {}, ENOENT ({}) expected",
                errno, ENOENT
            ))
        }
        Ok(e) => {
            return Err(format!(
                "LOOKUP of a missing name: node {} found, ENOENT expected",
                e.nodeid
            ))
        }
    }
    let hello = nodes
        .iter()
        .find(|(p, _)| *p == "hello.txt")
        .map(|&(_, n)| n);
    let forgotten = s.forget_all()?;
    // Forgotten, a node is unknown to the daemon (QEMU's C virtiofsd:
    // passthrough_ll.c finds no inode and answers an error).
    if let Some(n) = hello {
        let a = s.request(
            REQUEST_QUEUE,
            Opcode::Getattr,
            n,
            &fs::getattr_in(),
            &[],
            REPLY,
        )?;
        if a.error == 0 {
            return Err(format!(
                "GETATTR of node {} (hello.txt) after FORGET of all its lookups: success, an error expected",
                n
            ));
        }
    }
    Ok(format!(
        "{} entries looked up, {} bytes read and checked, {} directories listed, {} nodes forgotten on queue 0",
        TREE.len(),
        bytes,
        TREE.iter().filter(|e| e.kind == Kind::Dir).count() + 1,
        forgotten
    ))
}

/// Permission bits shown as their octal digits (0o644 -> 0x644).
fn octal(mode: u32) -> u32 {
    (0..4).fold(0, |v, i| v | ((mode >> (3 * i)) & 7) << (4 * i))
}

/// The devices whose share holds the seeded tree, or the outcome.
fn tree_devices(m: &Machine) -> Result<Vec<Found>, Outcome> {
    let found = devices(m);
    if found.is_empty() {
        return Err(Outcome::skip(no_device(m)));
    }
    let mut with_tree = Vec::new();
    for d in found {
        match share_of(&d) {
            Err(o) => return Err(o),
            Ok(s) if s.tree => with_tree.push(d),
            Ok(_) => {}
        }
    }
    if with_tree.is_empty() {
        return Err(Outcome::skip(
            "no virtio-fs share holds the seeded tree (shares= without :tree)",
        ));
    }
    Ok(with_tree)
}

pub fn read(m: &mut Machine) -> Outcome {
    let found = match tree_devices(m) {
        Ok(f) => f,
        Err(o) => return o,
    };
    let seed = m.cfg.seed;
    for d in &found {
        let r = open(d.sid).and_then(|mut s| read_tree(&mut s, seed));
        match r {
            Ok(what) => crate::out!("# fs {}: {}\n", d.bus, what.as_str()),
            Err(e) => {
                return Outcome::fail(&format!(
                    "virtio-fs {} (replay: seed={} only=fs.read): {}",
                    d.bus,
                    Hex(seed),
                    e.as_str()
                ))
            }
        }
    }
    Outcome::Pass
}

/// The file's bytes as `fs.write` writes them (`fs-corrupt=` inverts one).
fn file_bytes(seed: u64, corrupt: Option<u32>) -> Vec<u8> {
    let mut data = alloc::vec![0u8; virtiofs::FILE_SIZE as usize];
    share::fill(seed, virtiofs::FILE, 0, &mut data);
    if let Some(at) = corrupt {
        if let Some(b) = data.get_mut(at as usize) {
            *b ^= 0xff;
        }
    }
    data
}

/// CREATE, WRITE, FLUSH, RELEASE, RENAME, MKDIR and UNLINK under
/// `OUT_DIR`, each result looked up again; what stays is
/// `virtiofs::WRITTEN`, which the runner checks after the run.
fn write_tree(s: &mut Session, seed: u64, corrupt: Option<u32>) -> Result<String, String> {
    let init = s.init(REQUEST_QUEUE)?;
    let out = match s.lookup(ROOT_ID, OUT_DIR)? {
        Ok(e) => e.nodeid,
        Err(ENOENT) => {
            let b = s.ok(
                Opcode::Mkdir,
                ROOT_ID,
                &fs::mkdir_in(0o755),
                &[&fs::name(OUT_DIR)],
                REPLY,
            )?;
            let e = EntryOut::parse(&b).map_err(|e| err("MKDIR", &e))?;
            s.note_lookup(e.nodeid);
            e.nodeid
        }
        Err(errno) => return Err(format!("LOOKUP {}: errno {}", OUT_DIR, errno)),
    };
    // The file, under its temporary name, in seeded pieces.
    let b = s.ok(
        Opcode::Create,
        out,
        &fs::create_in(fs::O_WRONLY | fs::O_CREAT | fs::O_EXCL, 0o644),
        &[&fs::name(virtiofs::FILE_TMP)],
        REPLY,
    )?;
    let (entry, fh) = parse_create_out(&b).map_err(|e| err("CREATE", &e))?;
    s.note_lookup(entry.nodeid);
    if entry.attr.mode & fs::S_IFMT != fs::S_IFREG || entry.attr.size != 0 {
        return Err(format!(
            "CREATE {}: an empty regular file expected, got a {} of {} bytes",
            virtiofs::FILE_TMP,
            type_name(entry.attr.mode),
            entry.attr.size
        ));
    }
    let data = file_bytes(seed, corrupt);
    let mut rng = Rng::new(seed ^ share::path_key(virtiofs::FILE));
    let max = init.max_write.min(8192);
    let mut at = 0usize;
    let mut writes = 0;
    while at < data.len() {
        let n = (rng.range(1, u64::from(max)) as usize).min(data.len() - at);
        let b = s.ok(
            Opcode::Write,
            entry.nodeid,
            &fs::write_in(fh, at as u64, n as u32),
            &[&data[at..at + n]],
            64,
        )?;
        let wrote = parse_write_out(&b).map_err(|e| err("WRITE", &e))?;
        if wrote as usize != n {
            return Err(format!(
                "WRITE {} at {} of {} bytes: {} written",
                virtiofs::FILE_TMP,
                at,
                n,
                wrote
            ));
        }
        at += n;
        writes += 1;
    }
    s.ok(Opcode::Flush, entry.nodeid, &fs::flush_in(fh), &[], 0)?;
    s.release(entry.nodeid, fh, false)?;
    let final_name = share::name(virtiofs::FILE);
    s.ok(
        Opcode::Rename,
        out,
        &fs::rename_in(out),
        &[&fs::name(virtiofs::FILE_TMP), &fs::name(final_name)],
        0,
    )?;
    if let Ok(e) = s.lookup(out, virtiofs::FILE_TMP)? {
        return Err(format!(
            "LOOKUP {} after RENAME: node {} found, ENOENT expected",
            virtiofs::FILE_TMP,
            e.nodeid
        ));
    }
    let e = s
        .lookup(out, final_name)?
        .map_err(|errno| format!("LOOKUP {} after RENAME: errno {}", virtiofs::FILE, errno))?;
    if e.attr.size != virtiofs::FILE_SIZE {
        return Err(format!(
            "{}: size {} after the writes, {} expected",
            virtiofs::FILE,
            e.attr.size,
            virtiofs::FILE_SIZE
        ));
    }
    // Read back: what was written.
    let fh = s.open_file(e.nodeid, fs::O_RDONLY, false)?;
    let mut at = 0usize;
    while at < data.len() {
        let n = (data.len() - at).min(READ_MAX as usize);
        let got = s.read(e.nodeid, fh, at as u64, n as u32)?;
        if let Some(i) = got.iter().zip(&data[at..at + n]).position(|(a, b)| a != b) {
            return Err(format!(
                "READ back {} offset {}: expected {} (written), got {}",
                virtiofs::FILE,
                at + i,
                Hex(u64::from(data[at + i])),
                Hex(u64::from(got[i]))
            ));
        }
        if got.len() != n {
            return Err(format!(
                "READ back {} at {}: {} bytes came, {} expected",
                virtiofs::FILE,
                at,
                got.len(),
                n
            ));
        }
        at += n;
    }
    s.release(e.nodeid, fh, false)?;
    // A directory, a file made in it and unlinked again.
    let dir_name = share::name(virtiofs::DIR);
    let b = s.ok(
        Opcode::Mkdir,
        out,
        &fs::mkdir_in(0o755),
        &[&fs::name(dir_name)],
        REPLY,
    )?;
    let d = EntryOut::parse(&b).map_err(|e| err("MKDIR", &e))?;
    s.note_lookup(d.nodeid);
    if d.attr.mode & fs::S_IFMT != fs::S_IFDIR {
        return Err(format!(
            "MKDIR {}: a directory expected, got a {}",
            virtiofs::DIR,
            type_name(d.attr.mode)
        ));
    }
    let b = s.ok(
        Opcode::Create,
        d.nodeid,
        &fs::create_in(fs::O_RDWR | fs::O_CREAT | fs::O_EXCL, 0o600),
        &[&fs::name(virtiofs::GONE)],
        REPLY,
    )?;
    let (g, gfh) = parse_create_out(&b).map_err(|e| err("CREATE", &e))?;
    s.note_lookup(g.nodeid);
    s.ok(
        Opcode::Write,
        g.nodeid,
        &fs::write_in(gfh, 0, 10),
        &[b"zvtest-gon"],
        64,
    )?;
    s.release(g.nodeid, gfh, false)?;
    s.ok(
        Opcode::Unlink,
        d.nodeid,
        &[],
        &[&fs::name(virtiofs::GONE)],
        0,
    )?;
    match s.lookup(d.nodeid, virtiofs::GONE)? {
        Err(ENOENT) => {}
        other => {
            return Err(format!(
                "LOOKUP {} after UNLINK: {}, ENOENT expected",
                virtiofs::GONE,
                match other {
                    Ok(e) => format!("node {}", e.nodeid),
                    Err(errno) => format!("errno {}", errno),
                }
                .as_str()
            ))
        }
    }
    let left = s.list(d.nodeid)?;
    if !left.is_empty() {
        return Err(format!(
            "READDIR {} after UNLINK: {} entries, none expected",
            virtiofs::DIR,
            left.len()
        ));
    }
    let forgotten = s.forget_all()?;
    Ok(format!(
        "{} written in {} pieces, renamed from {}, read back; {} made, {} made in it and unlinked; {} nodes forgotten",
        virtiofs::FILE,
        writes,
        virtiofs::FILE_TMP,
        virtiofs::DIR,
        virtiofs::GONE,
        forgotten
    ))
}

pub fn write(m: &mut Machine) -> Outcome {
    let found = match tree_devices(m) {
        Ok(f) => f,
        Err(o) => return o,
    };
    let seed = m.cfg.seed;
    let mut wrote = 0;
    let mut read_only = Vec::new();
    for d in &found {
        if !d.scratch {
            read_only.push(d.bus);
            continue;
        }
        match open(d.sid).and_then(|mut s| write_tree(&mut s, seed, m.cfg.fs_corrupt)) {
            Ok(what) => crate::out!("# fs {}: {}\n", d.bus, what.as_str()),
            Err(e) => {
                return Outcome::fail(&format!(
                    "virtio-fs {} (replay: seed={} only=fs.write): {}",
                    d.bus,
                    Hex(seed),
                    e.as_str()
                ))
            }
        }
        wrote += 1;
    }
    for bus in &read_only {
        crate::out!(
            "# fs {}: not named in scratch=: only read, nothing written\n",
            *bus
        );
    }
    if wrote == 0 {
        return Outcome::skip("no virtio-fs share is named in scratch=: the shares are only read");
    }
    Outcome::Pass
}

/// Requests per request queue, before `stress=`.
const STRESS_REQUESTS: u64 = 96;
/// The largest read under stress.
const STRESS_READ_MAX: u32 = 8192;

/// Every request queue of one device stressed with reads of the large
/// file in one setup; one QueueStats line per queue.
fn stress_queues(
    s: &mut Session,
    bus: BusId,
    (seed, stress, round): (u64, u32, usize),
    label: &str,
    completion: Completion,
) -> Result<u32, String> {
    let init = s.init(REQUEST_QUEUE)?;
    let e = s
        .lookup(ROOT_ID, share::LARGE)?
        .map_err(|errno| format!("LOOKUP {}: errno {}", share::LARGE, errno))?;
    let fh = s.open_file(e.nodeid, fs::O_RDONLY, false)?;
    let queues = s.dev.queue_count();
    for q in REQUEST_QUEUE..queues {
        // One session serves every request queue: INIT on the first only.
        let mut w = Reads {
            seed,
            path: share::LARGE,
            file_size: share::LARGE_SIZE,
            nodeid: e.nodeid,
            fh,
            unique_base: (u64::from(q) << 40) + s.unique + 1,
            max_size: STRESS_READ_MAX.min(init.max_write),
        };
        let size = s
            .dev
            .queue_mut(q)
            .map(|q| q.size())
            .ok_or_else(|| format!("queue {} missing", q))?;
        let opts = Options::varied(
            seed,
            // Device round and queue: each its own reads.
            (round as u64) << 24 | u64::from(q) << 16,
            size,
            STRESS_REQUESTS * u64::from(stress),
            has(s.features, F_INDIRECT_DESC),
            completion,
            now_us,
        );
        let Session { t, ind, dev, .. } = s;
        let queue = dev.queue_mut(q).expect("looked up above");
        let result = crate::suites::setups::run_counted(t, queue, &mut w, &opts, ind);
        // A polled phase left the queue's interrupts off.
        queue.enable_interrupts(true);
        let st = result.map_err(|f| {
            format!(
                "request queue {} ({} {}) request {}: {}",
                q,
                label,
                completion.name(),
                f.request,
                f.what.as_str()
            )
        })?;
        crate::out!(
            "# fs {} request{} {} {}: {}\n",
            bus,
            q,
            label,
            completion.name(),
            st
        );
        crate::judge::echo_queue(
            &format!("request queue {} ({})", q, label),
            (completion == Completion::Polled, false),
            &st,
        )?;
        s.unique = w.unique_base + st.requests;
    }
    s.release(e.nodeid, fh, false)?;
    s.forget_all()?;
    Ok(u32::from(queues - REQUEST_QUEUE))
}

pub fn stress(m: &mut Machine) -> Outcome {
    let found = match tree_devices(m) {
        Ok(f) => f,
        Err(o) => return o,
    };
    let seed = m.cfg.seed;
    let mut rounds = stress_rounds(false);
    // The closing repeat of the first setup is blk's fill round.
    rounds.pop();
    for d in &found {
        let mut driven = 0;
        let mut not_taken: Vec<String> = Vec::new();
        for (i, (setup, completion)) in rounds.iter().copied().enumerate() {
            let label = setup.label();
            let r = open_setup(d.sid, setup).and_then(|s| match s {
                None => Ok(None),
                Some(mut s) => {
                    let n =
                        stress_queues(&mut s, d.bus, (seed, m.cfg.stress, i), &label, completion)?;
                    let _ = s.t.reset();
                    Ok(Some(n))
                }
            });
            match r {
                Ok(Some(_)) => driven += 1,
                Ok(None) => {
                    if !not_taken.contains(&label) {
                        not_taken.push(label);
                    }
                }
                Err(e) => {
                    return Outcome::mismatch(
                        &format!(
                            "virtio-fs {} (replay: seed={} only=fs.stress)",
                            d.bus,
                            Hex(seed)
                        ),
                        "every read answered with the file's bytes",
                        e.as_str(),
                    )
                }
            }
        }
        let not_taken = if not_taken.is_empty() {
            String::from("none")
        } else {
            not_taken.join(", ")
        };
        crate::out!(
            "# fs {}: {} setups stressed on every request queue; not taken by the device: {}\n",
            d.bus,
            driven,
            not_taken.as_str()
        );
        if driven == 0 {
            return Outcome::fail(&format!(
                "virtio-fs {}: no setup of the device could be driven",
                d.bus
            ));
        }
    }
    Outcome::Pass
}
