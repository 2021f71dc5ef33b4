//! Scratch disk images on the host: made before a run (`cargo xtask disk`,
//! the runner) and checked byte by byte after it against what the run may
//! have written. Which bytes and with what is the contract's
//! ([`zvtest_contract::disk`]); this module reads and writes files in
//! [`CHUNK`]-byte pieces, so memory stays bounded whatever the image size.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use zvtest_contract::disk::{
    self, DiskConfig, DiskId, HeaderSays, Pattern, HEADER_LEN, MAGIC, MIN_SIZE, STRIPE,
};
use zvtest_contract::tap::{TapReport, TestResult};

/// Bytes read or written at a time (a whole number of stripes, so no
/// stripe straddles two chunks).
pub const CHUNK: usize = 1 << 20;
const _: () = assert!((CHUNK as u64).is_multiple_of(STRIPE));

/// Offsets are also given in these (what the firmware's reports count).
pub const SECTOR: u64 = 512;

/// Linux's errno for an I/O error: what `blkdebug` returns for a read of
/// [`Disk::read_errors`] or a write of [`Disk::write_errors`] unless
/// [`Disk::errno`] says otherwise.
pub const EIO: u32 = 5;

/// Linux's errno for "no space left": on a write, QEMU's default
/// werror=enospc stops the VM (and retries on `cont`), so it is refused.
pub const ENOSPC: u32 = 28;

/// `64M`, `1G`, `4K` or bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let (num, shift) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 10),
        b'M' | b'm' => (&s[..s.len() - 1], 20),
        b'G' | b'g' => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    zvtest_contract::cmdline::digits(num, 10)?.checked_mul(1 << shift)
}

/// A seed as `seed=` takes it: decimal or `0x` hex.
pub fn parse_seed(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => zvtest_contract::cmdline::digits(hex, 16),
        None => zvtest_contract::cmdline::digits(s, 10),
    }
}

/// Why an image size cannot be used: the contract needs room for the
/// header and a writable stripe, and disks come in sectors.
pub fn size_problem(size: u64) -> Option<String> {
    if size < MIN_SIZE {
        Some(format!(
            "{size} bytes is too small for a scratch image (at least {MIN_SIZE})"
        ))
    } else if !size.is_multiple_of(SECTOR) {
        Some(format!(
            "{size} bytes is not a whole number of {SECTOR}-byte sectors"
        ))
    } else {
        None
    }
}

/// Writes a fresh image of `size` bytes for `seed` at `path`: the header,
/// then pattern A (what a run finds before it writes anything).
pub fn create(path: &Path, seed: u64, size: u64) -> io::Result<()> {
    if let Some(why) = size_problem(size) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, why));
    }
    let mut f = File::create(path)?;
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0;
    while at < size {
        let n = chunk_len(size - at);
        disk::fill_image(seed, size, at, false, &mut buf[..n]);
        f.write_all(&buf[..n])?;
        at += n as u64;
    }
    Ok(())
}

/// How many stripes a complete run writes in an image of `size` bytes.
pub fn writable_count(seed: u64, size: u64) -> u64 {
    disk::writable_stripes(seed, size).count() as u64
}

fn chunk_len(rest: u64) -> usize {
    usize::try_from(rest).map_or(CHUNK, |r| r.min(CHUNK))
}

/// What an image must hold after a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Pattern A everywhere: nothing wrote to it (a read-only disk, one
    /// not named scratch, or a run that only read).
    Untouched,
    /// What a complete run leaves: pattern B in every writable stripe,
    /// pattern A everywhere else.
    Complete,
    /// What an incomplete run may leave: each byte of a writable stripe A
    /// or B, everything else A (a write outside them is still caught).
    Partial,
}

/// A byte that is not what it should be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bad {
    pub offset: u64,
    pub expected: u8,
    pub got: u8,
    /// The pattern `expected` belongs to (None: a header byte).
    pub pattern: Option<Pattern>,
    /// With [`Expect::Partial`] in a writable stripe: pattern A's byte,
    /// which would do as well.
    pub or_a: Option<u8>,
}

impl Bad {
    pub fn sector(&self) -> u64 {
        self.offset / SECTOR
    }

    pub fn stripe(&self) -> u64 {
        self.offset / STRIPE
    }
}

impl fmt::Display for Bad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pattern = self
            .pattern
            .map_or_else(|| "header".to_string(), |p| format!("pattern {}", p.name()));
        write!(
            f,
            "offset {:#x} ({}; sector {}, stripe {}): expected {:#04x} ({pattern})",
            self.offset,
            self.offset,
            self.sector(),
            self.stripe(),
            self.expected
        )?;
        if let Some(a) = self.or_a {
            write!(f, " or {a:#04x} (pattern A)")?;
        }
        write!(f, ", got {:#04x}", self.got)
    }
}

/// What a verification found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub expect: Expect,
    /// The image's size (its file's length).
    pub size: u64,
    /// Writable stripes in the image ...
    pub writable: u64,
    /// ... and those of them that hold pattern B whole.
    pub holding_b: u64,
    /// Bytes that are not what they should be (every one is counted).
    pub mismatches: u64,
    pub first: Option<Bad>,
}

impl Verified {
    pub fn is_clean(&self) -> bool {
        self.mismatches == 0
    }

    /// `67108864 bytes verified (N writable stripes hold B)`, or the
    /// first mismatch and how many bytes differ.
    pub fn summary(&self) -> String {
        match &self.first {
            None => format!("{} bytes verified ({})", self.size, self.what_holds()),
            Some(bad) => format!(
                "{} of {} bytes differ from {}; the first at {bad}",
                self.mismatches,
                self.size,
                self.what_should_hold()
            ),
        }
    }

    /// What the image holds, when it is clean.
    pub fn what_holds(&self) -> String {
        match self.expect {
            Expect::Untouched => "pattern A everywhere".into(),
            Expect::Complete => format!("{} writable stripes hold B", self.holding_b),
            Expect::Partial => format!(
                "{} of {} writable stripes hold B, the rest A or part B; nothing else written",
                self.holding_b, self.writable
            ),
        }
    }

    fn what_should_hold(&self) -> &'static str {
        match self.expect {
            Expect::Untouched => "pattern A (untouched)",
            Expect::Complete => {
                "what a complete run leaves (B in the writable stripes, A elsewhere)"
            }
            Expect::Partial => "A, or B in the writable stripes",
        }
    }
}

/// Why an image could not be verified at all.
#[derive(Debug)]
pub enum Problem {
    Io(io::Error),
    /// No scratch header (the magic is not there): `got` is what bytes
    /// 0..16 hold.
    NotScratch {
        got: Vec<u8>,
    },
    /// A scratch header for another seed or size; `len` is the file's
    /// length (a truncated or grown file shows as a size that differs).
    OtherHeader {
        seed: u64,
        size: u64,
        want_seed: u64,
        len: u64,
    },
    TooSmall {
        len: u64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Io(e) => write!(f, "cannot read it: {e}"),
            Problem::NotScratch { got } => write!(
                f,
                "no scratch header: offset 0 (sector 0): expected {:?}, got {:?}",
                String::from_utf8_lossy(&MAGIC),
                String::from_utf8_lossy(got)
            ),
            Problem::OtherHeader {
                seed,
                size,
                want_seed,
                len,
            } => {
                write!(
                    f,
                    "wrong header: expected seed {want_seed:#x} and size {len} (the file's length), \
                     got seed {seed:#x} and size {size}"
                )?;
                if *size != *len {
                    write!(
                        f,
                        " (the file was truncated or grown, or made for another size)"
                    )?;
                }
                Ok(())
            }
            Problem::TooSmall { len } => write!(
                f,
                "{len} bytes: too small for a scratch image (at least {MIN_SIZE})"
            ),
        }
    }
}

impl From<io::Error> for Problem {
    fn from(e: io::Error) -> Self {
        Problem::Io(e)
    }
}

/// Checks every byte of the image at `path` (its size is the file's
/// length; its header must name `seed` and that size) against `expect`.
pub fn verify(path: &Path, seed: u64, expect: Expect) -> Result<Verified, Problem> {
    let mut f = File::open(path)?;
    let size = f.metadata()?.len();
    let mut got = vec![0u8; CHUNK];
    let mut head = [0u8; HEADER_LEN];
    let n = read_full(&mut f, &mut head)?;
    match disk::read_header(&head[..n], seed, size) {
        HeaderSays::Scratch => {}
        HeaderSays::NotScratch => {
            return Err(Problem::NotScratch {
                got: head[..n.min(MAGIC.len())].to_vec(),
            })
        }
        HeaderSays::Other { seed: s, size: z } => {
            return Err(Problem::OtherHeader {
                seed: s,
                size: z,
                want_seed: seed,
                len: size,
            })
        }
    }
    if size < MIN_SIZE {
        return Err(Problem::TooSmall { len: size });
    }
    got[..HEADER_LEN].copy_from_slice(&head);
    let mut v = Verified {
        expect,
        size,
        writable: writable_count(seed, size),
        holding_b: 0,
        mismatches: 0,
        first: None,
    };
    let mut a = vec![0u8; CHUNK];
    let mut b = vec![0u8; CHUNK];
    let mut at = 0u64;
    let mut first_read = HEADER_LEN;
    while at < size {
        let n = chunk_len(size - at);
        let read = read_full(&mut f, &mut got[first_read..n])?;
        if first_read + read < n {
            return Err(Problem::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the file ended at {} while it was read",
                    at + (first_read + read) as u64
                ),
            )));
        }
        first_read = 0;
        disk::fill_image(seed, size, at, false, &mut a[..n]);
        let mut s0 = 0;
        while s0 < n {
            let s1 = n.min(s0 + STRIPE as usize);
            let off = at + s0 as u64;
            let writable = disk::writable_stripe(seed, size, off / STRIPE);
            let (g, a) = (&got[s0..s1], &a[s0..s1]);
            if writable && expect != Expect::Untouched {
                let b = &mut b[s0..s1];
                disk::fill(seed, Pattern::After, off, b);
                if g == &b[..] {
                    v.holding_b += 1;
                } else if expect == Expect::Complete {
                    v.count(off, g, b, Pattern::After, None);
                } else if g != a {
                    v.count(off, g, b, Pattern::After, Some(a));
                }
            } else if g != a {
                v.count(off, g, a, Pattern::Before, None);
            }
            s0 = s1;
        }
        at += n as u64;
    }
    Ok(v)
}

impl Verified {
    /// Counts the bytes of `got` (from image offset `off`) that are
    /// neither `want` nor, where given, `or_a`.
    fn count(&mut self, off: u64, got: &[u8], want: &[u8], pattern: Pattern, or_a: Option<&[u8]>) {
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let a = or_a.map(|a| a[i]);
            if g == w || a == Some(g) {
                continue;
            }
            self.mismatches += 1;
            if self.first.is_none() {
                let offset = off + i as u64;
                self.first = Some(Bad {
                    offset,
                    expected: w,
                    got: g,
                    pattern: (offset >= HEADER_LEN as u64).then_some(pattern),
                    or_a: a,
                });
            }
        }
    }
}

/// Where a sector every write to which failed (a [`Disk::write_errors`]
/// one) holds anything but what the image was made with: each must hold
/// pattern A, whatever the run wrote around it.
pub fn failed_writes_changed(path: &Path, seed: u64, sectors: &[u64]) -> Option<String> {
    if sectors.is_empty() {
        return None;
    }
    let check = || -> io::Result<Option<String>> {
        use std::os::unix::fs::FileExt;
        let f = File::open(path)?;
        let size = f.metadata()?.len();
        let (mut got, mut want) = ([0u8; SECTOR as usize], [0u8; SECTOR as usize]);
        for &s in sectors {
            f.read_exact_at(&mut got, s * SECTOR)?;
            disk::fill_image(seed, size, s * SECTOR, false, &mut want);
            if let Some(i) = got.iter().zip(&want).position(|(g, w)| g != w) {
                let at = s * SECTOR + i as u64;
                return Ok(Some(format!(
                    "sector {s}, where every write failed, changed: offset {at:#x} ({at}): \
                     expected {:#04x} (pattern A), got {:#04x}",
                    want[i], got[i]
                )));
            }
        }
        Ok(None)
    };
    check().unwrap_or_else(|e| Some(format!("cannot read it: {e}")))
}

/// Reads until `buf` is full or the file ends; how much was read.
fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A disk a scenario gives the firmware: a fresh image of `size` bytes
/// (header and pattern A), on a virtio-blk device
/// ([`Scenario::scratch_blk`](crate::Scenario::scratch_blk)) or a SCSI LUN
/// ([`Scenario::scratch_scsi`](crate::Scenario::scratch_scsi)), built with
/// chained setters: `Disk::new(64 << 20).block_size(4096).queues(2)`.
/// `disks=` tells the firmware how it is configured; `scratch=` names it
/// unless it is read-only or a user disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disk {
    /// Bytes (a whole number of sectors and of the logical block size).
    pub size: u64,
    /// QEMU's `logical_block_size` (512 unless set).
    pub logical_block_size: u32,
    /// QEMU's `physical_block_size` (QEMU's default unless set).
    pub physical_block_size: Option<u32>,
    /// virtio-blk `num-queues` (QEMU's default: 1 here, as TCG has one CPU).
    pub queues: Option<u16>,
    /// virtio-blk `queue-size`.
    pub queue_size: Option<u16>,
    /// `readonly=on` on the drive (and `:ro` in `disks=`).
    pub read_only: bool,
    /// `serial=` of the device (and `:serial=` in `disks=`).
    pub serial: Option<String>,
    /// Named in `scratch=`: the firmware may write it. Off for read-only
    /// and user disks; such a disk must hold pattern A after the run.
    pub scratch: bool,
    /// virtio-blk `packed=on` (VIRTIO_F_RING_PACKED).
    pub packed: bool,
    /// virtio-blk `max_revision`.
    pub max_revision: Option<u8>,
    /// virtio-blk `in_order=on` (VIRTIO_F_IN_ORDER; QEMU 10.0 and later).
    pub in_order: bool,
    /// 512-byte sectors whose reads fail with EIO: the image sits under
    /// QEMU's error-injecting `blkdebug` driver, one rule per sector
    /// (see [`Disk::read_errors`]).
    pub read_errors: Vec<u64>,
    /// 512-byte sectors whose writes fail with EIO (see
    /// [`Disk::write_errors`]).
    pub write_errors: Vec<u64>,
    /// The errno the injected errors carry ([`EIO`] unless set).
    pub errno: u32,
}

impl Disk {
    pub fn new(size: u64) -> Self {
        Disk {
            size,
            logical_block_size: 512,
            physical_block_size: None,
            queues: None,
            queue_size: None,
            read_only: false,
            serial: None,
            scratch: true,
            packed: false,
            max_revision: None,
            in_order: false,
            read_errors: Vec::new(),
            write_errors: Vec::new(),
            errno: EIO,
        }
    }

    pub fn block_size(mut self, logical: u32) -> Self {
        self.logical_block_size = logical;
        self
    }

    pub fn physical_block_size(mut self, physical: u32) -> Self {
        self.physical_block_size = Some(physical);
        self
    }

    pub fn queues(mut self, n: u16) -> Self {
        self.queues = Some(n);
        self
    }

    pub fn queue_size(mut self, n: u16) -> Self {
        self.queue_size = Some(n);
        self
    }

    /// `readonly=on`: not named scratch (a write must not reach it).
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self.scratch = false;
        self
    }

    pub fn serial(mut self, serial: &str) -> Self {
        self.serial = Some(serial.into());
        self
    }

    /// A user disk: in `disks=` but not in `scratch=`, so the firmware must
    /// leave it alone (it must hold pattern A after the run).
    pub fn user(mut self) -> Self {
        self.scratch = false;
        self
    }

    pub fn packed(mut self) -> Self {
        self.packed = true;
        self
    }

    /// `in_order=on`: the device offers VIRTIO_F_IN_ORDER.
    pub fn in_order(mut self) -> Self {
        self.in_order = true;
        self
    }

    pub fn max_revision(mut self, rev: u8) -> Self {
        self.max_revision = Some(rev);
        self
    }

    /// Every read that covers one of `sectors` (512-byte units, whatever
    /// the block size) fails with EIO; the image itself is never changed,
    /// so the host still verifies it after the run. A virtio-blk device
    /// gets `request-merging=off` too: QEMU would otherwise fail every
    /// request merged with a failing one.
    pub fn read_errors(mut self, sectors: &[u64]) -> Self {
        self.read_errors.extend_from_slice(sectors);
        self
    }

    /// Every write that covers one of `sectors` fails with EIO, and
    /// writes nothing: after the run the host holds those sectors to what
    /// they held before (pattern A), whatever else it expects. A
    /// virtio-blk device gets `request-merging=off` as for
    /// [`Disk::read_errors`].
    pub fn write_errors(mut self, sectors: &[u64]) -> Self {
        self.write_errors.extend_from_slice(sectors);
        self
    }

    /// The injected errors fail with Linux errno `n` rather than EIO: 61
    /// (ENODATA) is what scsi-hd turns into MEDIUM ERROR 11/00, the
    /// unrecovered read error of a real disk.
    pub fn errno(mut self, n: u32) -> Self {
        self.errno = n;
        self
    }

    /// Whether errors are injected (the image sits under `blkdebug`).
    pub fn injects(&self) -> bool {
        !self.read_errors.is_empty() || !self.write_errors.is_empty()
    }

    /// The `-drive` keys that put the image under `blkdebug` with a rule
    /// for each of [`Disk::read_errors`] and [`Disk::write_errors`] (none
    /// without them). The rules are armed by the event `none`, which
    /// fires once, when the drive opens, and never again, so they stay
    /// armed for the whole run; each names its I/O type (without one a
    /// rule fails every kind of request).
    pub fn injection_keys(&self) -> Vec<String> {
        if !self.injects() {
            return Vec::new();
        }
        let mut v = vec!["file.driver=blkdebug".to_string()];
        let rules = self
            .read_errors
            .iter()
            .map(|s| ("read", s))
            .chain(self.write_errors.iter().map(|s| ("write", s)));
        for (i, (io, s)) in rules.enumerate() {
            let rule = format!("file.inject-error.{i}");
            v.push(format!("{rule}.event=none"));
            v.push(format!("{rule}.iotype={io}"));
            v.push(format!("{rule}.sector={s}"));
            v.push(format!("{rule}.errno={}", self.errno));
        }
        v
    }

    /// Properties only a virtio-blk device has (the error names them): a
    /// SCSI LUN's queues and ring belong to its controller.
    pub fn blk_only_properties(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.queues.is_some() {
            v.push("num-queues");
        }
        if self.queue_size.is_some() {
            v.push("queue-size");
        }
        if self.packed {
            v.push("packed");
        }
        if self.max_revision.is_some() {
            v.push("max_revision");
        }
        if self.in_order {
            v.push("in_order");
        }
        v
    }

    /// What is wrong with it (QEMU or the contract would refuse it).
    pub fn problem(&self) -> Option<String> {
        if let Some(why) = size_problem(self.size) {
            return Some(why);
        }
        let bs = |b: u32| b.is_power_of_two() && (512..=65536).contains(&b);
        if !bs(self.logical_block_size) {
            return Some(format!(
                "logical_block_size {} is not a power of two from 512 to 65536",
                self.logical_block_size
            ));
        }
        if !self.size.is_multiple_of(u64::from(self.logical_block_size)) {
            return Some(format!(
                "{} bytes is not a whole number of {}-byte blocks",
                self.size, self.logical_block_size
            ));
        }
        if let Some(p) = self.physical_block_size {
            if !bs(p) || p < self.logical_block_size {
                return Some(format!(
                    "physical_block_size {p} is not a power of two from the logical block size to 65536"
                ));
            }
        }
        if self.queues == Some(0) || self.queue_size == Some(0) {
            return Some("num-queues and queue-size must be at least 1".into());
        }
        if let Some(s) = &self.serial {
            if !zvtest_contract::disk::valid_serial(s) {
                return Some(format!(
                    "serial '{s}' is not 1 to 20 letters, digits, '-' and '_'"
                ));
            }
        }
        if let Some(r) = self.max_revision.filter(|&r| r > 2) {
            return Some(format!("max_revision {r}: virtio-ccw has revisions 0 to 2"));
        }
        if self.errno == 0 {
            return Some("errno 0 is no error".into());
        }
        if self.errno == ENOSPC && !self.write_errors.is_empty() {
            return Some(format!(
                "errno {ENOSPC} (ENOSPC) on writes: QEMU's default werror=enospc would stop the VM"
            ));
        }
        for (what, list) in [("read", &self.read_errors), ("write", &self.write_errors)] {
            if let Some(s) = list.iter().find(|&&s| s >= self.size / SECTOR) {
                return Some(format!(
                    "{what} error at sector {s}: the disk has {} sectors",
                    self.size / SECTOR
                ));
            }
        }
        None
    }

    /// Its `disks=` item.
    pub fn config(&self, id: DiskId) -> DiskConfig {
        let mut c = DiskConfig::new(id, self.size);
        c.block_size = self.logical_block_size;
        c.queues = self.queues.unwrap_or(1);
        c.read_only = self.read_only;
        c.serial = self.serial.clone();
        c
    }
}

/// `scratch_blk("fe.0.0001", 64 << 20)`: a disk of that size, defaults otherwise.
impl From<u64> for Disk {
    fn from(size: u64) -> Self {
        Disk::new(size)
    }
}

/// A file name for a disk's image: `fe.0.0001.img`, `fe.0.0006-0-1.img`.
pub fn image_name(id: &DiskId) -> String {
    format!("{}.img", id.to_string().replace('/', "-"))
}

/// The QEMU id of a disk's `-drive`: `disk-fe.0.0001`, `disk-fe.0.0006-0-1`.
pub fn drive_id(id: &DiskId) -> String {
    format!("disk-{}", id.to_string().replace('/', "-"))
}

/// The checks whose groups drive each kind of disk: a blk device's, a
/// SCSI LUN's. The one named `<group>.stress` writes every writable
/// stripe; any check of the group may write some.
pub fn check_group(id: &DiskId) -> &'static str {
    if id.lun.is_some() {
        "scsi"
    } else {
        "blk"
    }
}

/// Checks of other groups that write every writable stripe of such a
/// disk when they pass (the concurrent stress of every CPU).
fn also_fills(id: &DiskId) -> &'static [&'static str] {
    if id.lun.is_some() {
        &[]
    } else {
        &["smp.stress-blk"]
    }
}

/// What a disk must hold after a run, and why, from what the report
/// says of the checks that drive it. `complete`: the run reached its
/// summary line (no bail-out, no timeout).
pub fn expectation(id: &DiskId, disk: &Disk, tap: &TapReport, complete: bool) -> (Expect, String) {
    if disk.read_only {
        return (Expect::Untouched, "read-only".into());
    }
    if !disk.scratch {
        return (Expect::Untouched, "not named scratch".into());
    }
    let group = check_group(id);
    let stress = format!("{group}.stress");
    let prefix = format!("{group}.");
    let also = also_fills(id);
    let ran = |r: &TestResult| {
        (r.name.starts_with(&prefix) || also.contains(&r.name.as_str())) && !r.is_skip()
    };
    let any_ran = tap.results.iter().any(ran);
    // A check outside the group that also writes every writable stripe
    // when it passes stands for the group's stress where that did not run.
    let filler = also
        .iter()
        .filter_map(|n| tap.result(n))
        .find(|r| !r.is_skip());
    let result = match tap.result(&stress) {
        Some(r) if !r.is_skip() => Some(r),
        _ => filler,
    };
    if let (Some(r), Some(f)) = (tap.result(&stress), filler) {
        if complete && r.ok && !r.is_skip() && !f.ok {
            return (
                Expect::Partial,
                format!("{} failed: not every stripe may have been written", f.name),
            );
        }
    }
    let stress = result.map_or(stress, |r| r.name.clone());
    match result {
        Some(r) if complete && r.ok && !r.is_skip() => {
            (Expect::Complete, format!("{stress} passed"))
        }
        _ if !complete => (
            Expect::Partial,
            "the run was incomplete: not every stripe may have been written".into(),
        ),
        Some(r) if !r.ok => (
            Expect::Partial,
            format!("{stress} failed: not every stripe may have been written"),
        ),
        _ if any_ran => (
            Expect::Partial,
            format!("{stress} did not run, other {group} checks did"),
        ),
        _ => (Expect::Untouched, format!("no {group} check ran")),
    }
}

/// One disk after the run: what it was held to and what was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskCheck {
    pub id: DiskId,
    pub image: PathBuf,
    pub expect: Expect,
    /// `disk fe.0.0001: 67108864 bytes verified (N writable stripes hold B)`.
    pub line: String,
    /// Why the disk fails the run, if it does.
    pub reason: Option<String>,
}

/// Verifies every disk of `scenario` after its run; images live in
/// `dir`. A disk that fails adds a reason naming it, the offset, sector,
/// expected and got byte and the pattern.
pub fn check_after_run(
    scenario: &crate::Scenario,
    dir: &Path,
    tap: &TapReport,
    complete: bool,
) -> Vec<DiskCheck> {
    let seed = scenario.disk_seed();
    scenario
        .disks
        .iter()
        .map(|(id, disk)| {
            let image = dir.join(image_name(id));
            let (expect, why) = expectation(id, disk, tap, complete);
            let incomplete = if complete {
                ""
            } else {
                " (the run was incomplete)"
            };
            let (mut line, mut reason) = match verify(&image, seed, expect) {
                Ok(v) if v.is_clean() => {
                    let why = match expect {
                        Expect::Complete => String::new(),
                        _ => format!(": {why}"),
                    };
                    let line = format!(
                        "disk {id}: {} bytes verified ({}{why})",
                        v.size,
                        v.what_holds()
                    );
                    (line, None)
                }
                Ok(v) => {
                    let msg = format!(
                        "disk {id} ({why}): {}; image {}{incomplete}",
                        v.summary(),
                        image.display()
                    );
                    (msg.clone(), Some(msg))
                }
                Err(p) => {
                    let msg = format!("disk {id}: image {}: {p}{incomplete}", image.display());
                    (msg.clone(), Some(msg))
                }
            };
            if reason.is_none() && !disk.write_errors.is_empty() {
                reason = failed_writes_changed(&image, seed, &disk.write_errors)
                    .map(|e| format!("disk {id}: image {}: {e}", image.display()));
                if reason.is_none() {
                    line.push_str(&format!(
                        "; sectors {:?}, where writes failed, hold pattern A",
                        disk.write_errors
                    ));
                }
            }
            DiskCheck {
                id: *id,
                image,
                expect,
                line,
                reason,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::FileExt;
    use std::path::PathBuf;

    fn dir(test: &str) -> PathBuf {
        let d = std::env::temp_dir()
            .join("zvtest-disks-unit")
            .join(format!("{test}-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn poke(path: &Path, offset: u64, xor: u8) {
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let mut b = [0u8];
        f.read_exact_at(&mut b, offset).unwrap();
        f.write_all_at(&[b[0] ^ xor], offset).unwrap();
    }

    /// What a complete run does: pattern B over every writable stripe.
    fn run_completely(path: &Path, seed: u64) {
        let size = fs::metadata(path).unwrap().len();
        let f = fs::OpenOptions::new().write(true).open(path).unwrap();
        let mut b = vec![0u8; STRIPE as usize];
        for s in disk::writable_stripes(seed, size) {
            disk::fill(seed, Pattern::After, s * STRIPE, &mut b);
            f.write_all_at(&b, s * STRIPE).unwrap();
        }
    }

    #[test]
    fn sizes_and_seeds() {
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("4k"), Some(4096));
        assert_eq!(parse_size("131072"), Some(131072));
        for bad in ["", "M", "-1M", "1T", "1.5M", "99999999999G"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(parse_seed("0x10"), Some(16));
        assert_eq!(parse_seed("10"), Some(10));
        assert_eq!(parse_seed("+1"), None);
        assert!(size_problem(MIN_SIZE).is_none());
        assert!(size_problem(MIN_SIZE - 512).unwrap().contains("too small"));
        assert!(size_problem(MIN_SIZE + 1).unwrap().contains("sectors"));
    }

    #[test]
    fn a_fresh_image_is_untouched_and_not_yet_run() {
        let p = dir("fresh").join("d.img");
        let size = 3 * CHUNK as u64 + 5 * 512; // a partial last chunk and stripe
        create(&p, 7, size).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().len(), size);
        let v = verify(&p, 7, Expect::Untouched).unwrap();
        assert!(v.is_clean(), "{}", v.summary());
        assert_eq!(
            v.summary(),
            format!("{size} bytes verified (pattern A everywhere)")
        );
        // Partial allows a run that wrote nothing.
        let v = verify(&p, 7, Expect::Partial).unwrap();
        assert!(v.is_clean() && v.holding_b == 0 && v.writable > 0);
        // A complete run would have written every writable stripe.
        let v = verify(&p, 7, Expect::Complete).unwrap();
        let first = disk::writable_stripes(7, size).next().unwrap() * STRIPE;
        assert_eq!(v.mismatches, v.writable * STRIPE - count_equal_ab(7, size));
        let bad = v.first.unwrap();
        assert_eq!((bad.offset, bad.pattern), (first, Some(Pattern::After)));
        assert!(v.summary().contains("expected"), "{}", v.summary());
        assert!(v.summary().contains("(pattern B)"), "{}", v.summary());
    }

    /// Bytes where patterns A and B happen to agree in the writable stripes.
    fn count_equal_ab(seed: u64, size: u64) -> u64 {
        let mut a = vec![0u8; STRIPE as usize];
        let mut b = vec![0u8; STRIPE as usize];
        disk::writable_stripes(seed, size)
            .map(|s| {
                disk::fill(seed, Pattern::Before, s * STRIPE, &mut a);
                disk::fill(seed, Pattern::After, s * STRIPE, &mut b);
                a.iter().zip(&b).filter(|(x, y)| x == y).count() as u64
            })
            .sum()
    }

    #[test]
    fn after_a_complete_run() {
        let p = dir("complete").join("d.img");
        let size = 4 << 20;
        create(&p, 42, size).unwrap();
        run_completely(&p, 42);
        let v = verify(&p, 42, Expect::Complete).unwrap();
        assert!(v.is_clean(), "{}", v.summary());
        assert_eq!(v.holding_b, v.writable);
        assert_eq!(
            v.summary(),
            format!(
                "{size} bytes verified ({} writable stripes hold B)",
                v.writable
            )
        );
        assert!(verify(&p, 42, Expect::Partial).unwrap().is_clean());
        assert!(!verify(&p, 42, Expect::Untouched).unwrap().is_clean());
    }

    #[test]
    fn a_flipped_byte_is_found_where_it_is() {
        let p = dir("flipped").join("d.img");
        let size = 4 << 20;
        let seed = 3;
        let writable = disk::writable_stripes(seed, size).nth(2).unwrap() * STRIPE;
        let plain = (1..size / STRIPE)
            .find(|&s| !disk::writable_stripe(seed, size, s))
            .unwrap()
            * STRIPE;
        // Before a run: anywhere, the last byte included.
        for at in [HEADER_LEN as u64, plain + 777, size - 1] {
            create(&p, seed, size).unwrap();
            poke(&p, at, 0x10);
            let v = verify(&p, seed, Expect::Untouched).unwrap();
            assert_eq!(v.mismatches, 1);
            let bad = v.first.unwrap();
            assert_eq!((bad.offset, bad.got ^ bad.expected), (at, 0x10));
            assert_eq!(bad.pattern, Some(Pattern::Before));
            let s = v.summary();
            assert!(s.starts_with("1 of 4194304 bytes differ"), "{s}");
            assert!(
                s.contains(&format!(
                    "offset {at:#x} ({at}; sector {}, stripe {})",
                    at / 512,
                    at / STRIPE
                )),
                "{s}"
            );
            assert!(s.contains("(pattern A)"), "{s}");
        }
        // After a run: in a writable stripe (B) and outside (A).
        for (at, pattern) in [
            (writable + 4096, Pattern::After),
            (plain + 1, Pattern::Before),
        ] {
            create(&p, seed, size).unwrap();
            run_completely(&p, seed);
            poke(&p, at, 0x80);
            poke(&p, at + 3000, 0x01);
            let v = verify(&p, seed, Expect::Complete).unwrap();
            assert_eq!(v.mismatches, 2);
            let bad = v.first.unwrap();
            assert_eq!((bad.offset, bad.pattern), (at, Some(pattern)));
            assert_eq!(bad.got ^ bad.expected, 0x80);
        }
        // An incomplete run: a writable stripe half written is fine, a byte
        // that is neither A nor B is not, nor is a write outside.
        create(&p, seed, size).unwrap();
        let mut half = vec![0u8; STRIPE as usize / 2];
        disk::fill(seed, Pattern::After, writable, &mut half);
        let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(&half, writable).unwrap();
        assert!(verify(&p, seed, Expect::Partial).unwrap().is_clean());
        poke(&p, writable + 100, 0xff);
        let v = verify(&p, seed, Expect::Partial).unwrap();
        let bad = v.first.unwrap();
        assert_eq!(bad.offset, writable + 100);
        assert!(bad.or_a.is_some());
        assert!(v.summary().contains("(pattern B) or 0x"), "{}", v.summary());
        poke(&p, writable + 100, 0xff);
        poke(&p, plain, 0x02);
        let bad = verify(&p, seed, Expect::Partial).unwrap().first.unwrap();
        assert_eq!((bad.offset, bad.pattern), (plain, Some(Pattern::Before)));
    }

    #[test]
    fn a_sector_whose_writes_failed_must_hold_pattern_a() {
        let p = dir("failed-writes").join("d.img");
        let (seed, size) = (9, 1 << 20);
        create(&p, seed, size).unwrap();
        let s = disk::writable_stripes(seed, size).next().unwrap() * STRIPE / SECTOR + 3;
        assert_eq!(failed_writes_changed(&p, seed, &[s]), None);
        run_completely(&p, seed);
        let e = failed_writes_changed(&p, seed, &[1, s]).unwrap();
        assert!(
            e.starts_with(&format!(
                "sector {s}, where every write failed, changed: offset {:#x}",
                s * SECTOR
            )),
            "{e}"
        );
        assert!(e.contains("(pattern A), got"), "{e}");
        let e = failed_writes_changed(&dir("failed-writes").join("none.img"), seed, &[1]);
        assert!(e.unwrap().starts_with("cannot read it:"));
    }

    #[test]
    fn wrong_headers_and_lengths_are_refused() {
        let d = dir("headers");
        let p = d.join("d.img");
        let size = 1 << 20;
        create(&p, 5, size).unwrap();
        let e = verify(&p, 6, Expect::Untouched).unwrap_err();
        assert!(
            matches!(
                e,
                Problem::OtherHeader {
                    seed: 5,
                    want_seed: 6,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("expected seed 0x6"), "{e}");
        // Truncated: the header's size is no longer the file's length.
        fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(size - 512)
            .unwrap();
        let e = verify(&p, 5, Expect::Untouched).unwrap_err().to_string();
        assert!(
            e.contains(&format!("size {}", size - 512)) && e.contains("truncated"),
            "{e}"
        );
        // Somebody's disk.
        fs::write(&p, vec![0u8; size as usize]).unwrap();
        let e = verify(&p, 5, Expect::Untouched).unwrap_err().to_string();
        assert!(e.starts_with("no scratch header: offset 0"), "{e}");
        fs::write(&p, b"zvtest").unwrap();
        assert!(matches!(
            verify(&p, 5, Expect::Untouched),
            Err(Problem::NotScratch { .. })
        ));
        // A header byte flipped in the seed.
        create(&p, 5, size).unwrap();
        poke(&p, 20, 1);
        assert!(matches!(
            verify(&p, 5, Expect::Untouched),
            Err(Problem::OtherHeader { .. })
        ));
        let e = verify(&d.join("missing.img"), 5, Expect::Untouched).unwrap_err();
        assert!(e.to_string().starts_with("cannot read it:"), "{e}");
        assert!(create(&p, 5, 1000).is_err());
    }
}
