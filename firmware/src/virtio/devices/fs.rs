//! virtio-fs (virtio 1.2 section 5.11): a FUSE file system carried over
//! virtqueues. Queue 0 is the high-priority queue (FORGET and the like,
//! which have no reply), queues 1.. the request queues; the configuration
//! space holds the file system's tag (36 bytes, NUL padded) and the
//! number of request queues. Every request is a FUSE message: an in
//! header and the opcode's arguments (device-readable), then room for the
//! out header and the reply (device-writable).
//!
//! The FUSE layouts are those of the Linux FUSE protocol, 7.31 (the
//! lowest minor QEMU's C virtiofsd takes: tools/virtiofsd/fuse_lowlevel.c
//! do_init answers EPROTO below it). Encoding and decoding are pure; a
//! reply that claims more bytes than its buffer, or answers another
//! request, is refused with what was wrong.

use super::super::queue::{setup_queue, DmaBuffer, DriveError, Queue};
use super::super::transport::Transport;
use crate::dma::DmaMemory;
use alloc::rc::Rc;
use alloc::vec::Vec;
use ufmt::{uDisplay, uWrite, Formatter};

pub const DEVICE_ID: u32 = super::super::ids::FS;
/// The high-priority queue.
pub const HIPRIO_QUEUE: u16 = 0;
/// The first request queue.
pub const REQUEST_QUEUE: u16 = 1;

/// The configuration space: tag, then `num_request_queues` (le32).
pub const TAG_LEN: usize = 36;
pub const CONFIG_LEN: usize = TAG_LEN + 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsConfig {
    pub tag: [u8; TAG_LEN],
    pub num_request_queues: u32,
}

impl FsConfig {
    pub fn parse(raw: &[u8; CONFIG_LEN]) -> Self {
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&raw[..TAG_LEN]);
        FsConfig {
            tag,
            num_request_queues: le32(raw, TAG_LEN),
        }
    }

    /// The tag's bytes up to the first NUL (all 36 if none).
    pub fn tag(&self) -> &[u8] {
        let end = self.tag.iter().position(|&b| b == 0).unwrap_or(TAG_LEN);
        &self.tag[..end]
    }
}

/// FUSE protocol version we speak.
pub const FUSE_MAJOR: u32 = 7;
pub const FUSE_MINOR: u32 = 31;
/// The root directory's node id.
pub const ROOT_ID: u64 = 1;
/// INIT flag: the server may say how many pages a request takes.
pub const INIT_MAX_PAGES: u32 = 1 << 22;

/// The opcodes we send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Opcode {
    Lookup = 1,
    Forget = 2,
    Getattr = 3,
    Mkdir = 9,
    Unlink = 10,
    Rename = 12,
    Open = 14,
    Read = 15,
    Write = 16,
    Release = 18,
    Flush = 25,
    Init = 26,
    Opendir = 27,
    Readdir = 28,
    Releasedir = 29,
    Create = 35,
}

impl Opcode {
    pub fn name(self) -> &'static str {
        match self {
            Opcode::Lookup => "LOOKUP",
            Opcode::Forget => "FORGET",
            Opcode::Getattr => "GETATTR",
            Opcode::Mkdir => "MKDIR",
            Opcode::Unlink => "UNLINK",
            Opcode::Rename => "RENAME",
            Opcode::Open => "OPEN",
            Opcode::Read => "READ",
            Opcode::Write => "WRITE",
            Opcode::Release => "RELEASE",
            Opcode::Flush => "FLUSH",
            Opcode::Init => "INIT",
            Opcode::Opendir => "OPENDIR",
            Opcode::Readdir => "READDIR",
            Opcode::Releasedir => "RELEASEDIR",
            Opcode::Create => "CREATE",
        }
    }
}

pub const IN_HEADER_LEN: usize = 40;
pub const OUT_HEADER_LEN: usize = 16;

/// The in header's fields (the length is the message's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InHeader {
    pub opcode: Opcode,
    pub unique: u64,
    pub nodeid: u64,
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

impl InHeader {
    /// A request of root (uid 0, gid 0) from pid 1.
    pub fn new(opcode: Opcode, unique: u64, nodeid: u64) -> Self {
        InHeader {
            opcode,
            unique,
            nodeid,
            uid: 0,
            gid: 0,
            pid: 1,
        }
    }
}

/// A request message: the in header, then `args` (the opcode's fixed
/// arguments) and `tail` (names, data).
pub fn encode(h: &InHeader, args: &[u8], tail: &[&[u8]]) -> Vec<u8> {
    let len = IN_HEADER_LEN + args.len() + tail.iter().map(|t| t.len()).sum::<usize>();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_le_bytes());
    m.extend_from_slice(&(h.opcode as u32).to_le_bytes());
    m.extend_from_slice(&h.unique.to_le_bytes());
    m.extend_from_slice(&h.nodeid.to_le_bytes());
    m.extend_from_slice(&h.uid.to_le_bytes());
    m.extend_from_slice(&h.gid.to_le_bytes());
    m.extend_from_slice(&h.pid.to_le_bytes());
    // total_extlen and padding.
    m.extend_from_slice(&[0; 4]);
    m.extend_from_slice(args);
    for t in tail {
        m.extend_from_slice(t);
    }
    m
}

/// Little-endian fields laid one after the other.
struct Args<const N: usize>([u8; N], usize);

impl<const N: usize> Args<N> {
    fn new() -> Self {
        Args([0; N], 0)
    }
    fn u32(mut self, v: u32) -> Self {
        self.0[self.1..self.1 + 4].copy_from_slice(&v.to_le_bytes());
        self.1 += 4;
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0[self.1..self.1 + 8].copy_from_slice(&v.to_le_bytes());
        self.1 += 8;
        self
    }
}

/// INIT's arguments, in their full (64-byte) form: the C virtiofsd takes
/// its own structure's size from a client of minor 6 or more.
pub fn init_in(max_readahead: u32, flags: u32) -> [u8; 64] {
    Args::<64>::new()
        .u32(FUSE_MAJOR)
        .u32(FUSE_MINOR)
        .u32(max_readahead)
        .u32(flags)
        .0
}

/// GETATTR: flags (1: `fh` is valid), dummy, fh.
pub fn getattr_in() -> [u8; 16] {
    [0; 16]
}

/// OPEN and OPENDIR: open(2) flags, open flags.
pub fn open_in(flags: u32) -> [u8; 8] {
    Args::<8>::new().u32(flags).0
}

/// READ and READDIR: fh, offset, size, read flags, lock owner, flags, padding.
pub fn read_in(fh: u64, offset: u64, size: u32) -> [u8; 40] {
    Args::<40>::new().u64(fh).u64(offset).u32(size).0
}

/// WRITE: as READ's, the data follows.
pub fn write_in(fh: u64, offset: u64, size: u32) -> [u8; 40] {
    read_in(fh, offset, size)
}

/// CREATE: open flags, mode, umask, open flags; the name follows.
pub fn create_in(flags: u32, mode: u32) -> [u8; 16] {
    Args::<16>::new().u32(flags).u32(mode).0
}

/// MKDIR: mode, umask; the name follows.
pub fn mkdir_in(mode: u32) -> [u8; 8] {
    Args::<8>::new().u32(mode).0
}

/// RENAME: the new parent; the old and new names follow.
pub fn rename_in(newdir: u64) -> [u8; 8] {
    newdir.to_le_bytes()
}

/// RELEASE and RELEASEDIR: fh, flags, release flags, lock owner.
pub fn release_in(fh: u64, flags: u32) -> [u8; 24] {
    Args::<24>::new().u64(fh).u32(flags).0
}

/// FLUSH: fh, unused, padding, lock owner.
pub fn flush_in(fh: u64) -> [u8; 24] {
    Args::<24>::new().u64(fh).0
}

/// FORGET: how many lookups of the node to forget.
pub fn forget_in(nlookup: u64) -> [u8; 8] {
    nlookup.to_le_bytes()
}

/// A name as FUSE sends it: NUL terminated.
pub fn name(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    v
}

/// open(2) flags and mode bits (Linux values).
pub const O_RDONLY: u32 = 0;
pub const O_WRONLY: u32 = 1;
pub const O_RDWR: u32 = 2;
pub const O_CREAT: u32 = 0o100;
pub const O_EXCL: u32 = 0o200;
pub const O_DIRECTORY: u32 = 0o200000;
pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
/// Directory entry types (`d_type`).
pub const DT_DIR: u32 = 4;
pub const DT_REG: u32 = 8;
pub const DT_LNK: u32 = 10;
pub const ENOENT: i32 = 2;

/// A reply the device gave against the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FuseError {
    /// The device reported writing fewer bytes than an out header.
    Short { used: u32 },
    /// It reported writing more than the buffer holds.
    UsedPastBuffer { used: u32, buffer: usize },
    /// The out header's length says more than was written.
    LenPastUsed { len: u32, used: u32 },
    /// The out header's length is below its own size.
    LenTooSmall { len: u32 },
    /// The reply is to another request.
    WrongUnique { got: u64, sent: u64 },
    /// An error that is no errno (positive, or below -4095).
    BadError { error: i32 },
    /// An error reply with arguments after the header.
    ErrorWithBody { error: i32, len: u32 },
    /// The reply's arguments are shorter than the opcode's.
    ShortBody {
        what: &'static str,
        need: usize,
        got: usize,
    },
    /// A directory entry runs past the reply.
    DirentPastEnd { at: usize, namelen: u32, len: usize },
}

impl uDisplay for FuseError {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match *self {
            FuseError::Short { used } => {
                ufmt::uwrite!(f, "{} bytes used, fewer than an out header (16)", used)
            }
            FuseError::UsedPastBuffer { used, buffer } => {
                ufmt::uwrite!(f, "{} bytes used of a {}-byte reply buffer", used, buffer)
            }
            FuseError::LenPastUsed { len, used } => {
                ufmt::uwrite!(f, "out header length {} but {} bytes used", len, used)
            }
            FuseError::LenTooSmall { len } => {
                ufmt::uwrite!(f, "out header length {} below 16", len)
            }
            FuseError::WrongUnique { got, sent } => {
                ufmt::uwrite!(f, "reply to unique {} for request unique {}", got, sent)
            }
            FuseError::BadError { error } => {
                ufmt::uwrite!(f, "error {} is no negative errno", error)
            }
            FuseError::ErrorWithBody { error, len } => {
                ufmt::uwrite!(f, "error {} with a {}-byte reply (16 expected)", error, len)
            }
            FuseError::ShortBody { what, need, got } => {
                ufmt::uwrite!(f, "{} reply of {} bytes, {} expected", what, got, need)
            }
            FuseError::DirentPastEnd { at, namelen, len } => ufmt::uwrite!(
                f,
                "directory entry at {} with a {}-byte name past the {}-byte reply",
                at,
                namelen,
                len
            ),
        }
    }
}

/// A decoded reply: its error (0 or a negative errno) and arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    pub error: i32,
    pub body: &'a [u8],
}

/// Decodes the reply in `buf` (the device-writable bytes) of which the
/// device reported writing `used`, to the request `unique`.
pub fn decode_reply(buf: &[u8], used: u32, unique: u64) -> Result<Reply<'_>, FuseError> {
    if used as usize > buf.len() {
        return Err(FuseError::UsedPastBuffer {
            used,
            buffer: buf.len(),
        });
    }
    if (used as usize) < OUT_HEADER_LEN {
        return Err(FuseError::Short { used });
    }
    let len = le32(buf, 0);
    let error = le32(buf, 4) as i32;
    let got = le64(buf, 8);
    if len < OUT_HEADER_LEN as u32 {
        return Err(FuseError::LenTooSmall { len });
    }
    if len > used {
        return Err(FuseError::LenPastUsed { len, used });
    }
    if got != unique {
        return Err(FuseError::WrongUnique { got, sent: unique });
    }
    if !(-4095..=0).contains(&error) {
        return Err(FuseError::BadError { error });
    }
    if error != 0 && len as usize != OUT_HEADER_LEN {
        return Err(FuseError::ErrorWithBody { error, len });
    }
    Ok(Reply {
        error,
        body: &buf[OUT_HEADER_LEN..len as usize],
    })
}

fn need(what: &'static str, body: &[u8], n: usize) -> Result<(), FuseError> {
    if body.len() < n {
        Err(FuseError::ShortBody {
            what,
            need: n,
            got: body.len(),
        })
    } else {
        Ok(())
    }
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// INIT's reply (the fields we look at).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitOut {
    pub major: u32,
    pub minor: u32,
    pub max_readahead: u32,
    pub flags: u32,
    pub max_background: u16,
    pub congestion_threshold: u16,
    pub max_write: u32,
    pub time_gran: u32,
    pub max_pages: u16,
}

/// The reply's size from minor 23 on (up to and with `max_pages`' word).
pub const INIT_OUT_LEN: usize = 64;

impl InitOut {
    pub fn parse(body: &[u8]) -> Result<Self, FuseError> {
        // A major-only answer (a server of another major) is 8 bytes.
        need("INIT", body, 8)?;
        let (major, minor) = (le32(body, 0), le32(body, 4));
        if major != FUSE_MAJOR {
            return Ok(InitOut {
                major,
                minor,
                max_readahead: 0,
                flags: 0,
                max_background: 0,
                congestion_threshold: 0,
                max_write: 0,
                time_gran: 0,
                max_pages: 0,
            });
        }
        need("INIT", body, 40)?;
        Ok(InitOut {
            major,
            minor,
            max_readahead: le32(body, 8),
            flags: le32(body, 12),
            max_background: le16(body, 16),
            congestion_threshold: le16(body, 18),
            max_write: le32(body, 20),
            time_gran: le32(body, 24),
            max_pages: le16(body, 28),
        })
    }
}

/// A node's attributes (the fields we look at).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub size: u64,
    pub mode: u32,
    pub nlink: u32,
}

pub const ATTR_LEN: usize = 88;

impl Attr {
    fn parse(b: &[u8]) -> Self {
        Attr {
            ino: le64(b, 0),
            size: le64(b, 8),
            mode: le32(b, 60),
            nlink: le32(b, 64),
        }
    }
}

/// LOOKUP, MKDIR and CREATE's entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryOut {
    pub nodeid: u64,
    pub attr: Attr,
}

pub const ENTRY_OUT_LEN: usize = 40 + ATTR_LEN;

impl EntryOut {
    pub fn parse(body: &[u8]) -> Result<Self, FuseError> {
        need("entry", body, ENTRY_OUT_LEN)?;
        Ok(EntryOut {
            nodeid: le64(body, 0),
            attr: Attr::parse(&body[40..]),
        })
    }
}

/// GETATTR's reply: valid times, then the attributes.
pub const ATTR_OUT_LEN: usize = 16 + ATTR_LEN;

pub fn parse_attr_out(body: &[u8]) -> Result<Attr, FuseError> {
    need("GETATTR", body, ATTR_OUT_LEN)?;
    Ok(Attr::parse(&body[16..]))
}

/// OPEN, OPENDIR (and CREATE after its entry): the file handle.
pub const OPEN_OUT_LEN: usize = 16;

pub fn parse_open_out(body: &[u8]) -> Result<u64, FuseError> {
    need("OPEN", body, OPEN_OUT_LEN)?;
    Ok(le64(body, 0))
}

/// CREATE's reply: an entry, then the open reply.
pub fn parse_create_out(body: &[u8]) -> Result<(EntryOut, u64), FuseError> {
    need("CREATE", body, ENTRY_OUT_LEN + OPEN_OUT_LEN)?;
    Ok((
        EntryOut::parse(body)?,
        parse_open_out(&body[ENTRY_OUT_LEN..])?,
    ))
}

/// WRITE's reply: the bytes written.
pub fn parse_write_out(body: &[u8]) -> Result<u32, FuseError> {
    need("WRITE", body, 8)?;
    Ok(le32(body, 0))
}

/// One READDIR entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dirent {
    pub ino: u64,
    /// Where the next READDIR goes on from.
    pub off: u64,
    pub typ: u32,
    pub name: Vec<u8>,
}

/// READDIR's entries: ino, off, namelen, type, the name, padded to 8.
pub fn parse_dirents(body: &[u8]) -> Result<Vec<Dirent>, FuseError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        need("READDIR entry", &body[at..], 24)?;
        let namelen = le32(body, at + 16);
        let end = at + 24 + namelen as usize;
        if end > body.len() {
            return Err(FuseError::DirentPastEnd {
                at,
                namelen,
                len: body.len(),
            });
        }
        out.push(Dirent {
            ino: le64(body, at),
            off: le64(body, at + 8),
            typ: le32(body, at + 20),
            name: body[at + 24..end].to_vec(),
        });
        at = end.next_multiple_of(8);
    }
    Ok(out)
}

/// A driven file system device: its queues (high priority first).
pub struct Fs {
    queues: Vec<Queue>,
}

/// What went wrong with one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FsError {
    Drive(DriveError),
    /// The used buffer is not the request just made.
    WrongToken {
        used: u16,
        submitted: u16,
    },
    Fuse(FuseError),
}

impl From<DriveError> for FsError {
    fn from(e: DriveError) -> Self {
        FsError::Drive(e)
    }
}

impl From<FuseError> for FsError {
    fn from(e: FuseError) -> Self {
        FsError::Fuse(e)
    }
}

impl uDisplay for FsError {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match self {
            FsError::Drive(e) => ufmt::uwrite!(f, "{}", e),
            FsError::WrongToken { used, submitted } => {
                ufmt::uwrite!(f, "used token {} for submitted {}", used, submitted)
            }
            FsError::Fuse(e) => ufmt::uwrite!(f, "{}", e),
        }
    }
}

/// A request's memory after the device answered: the message, then the
/// reply buffer, and how much of it the device wrote.
pub struct Answer {
    pub mem: Rc<DmaMemory>,
    pub reply_at: usize,
    pub reply_len: usize,
    pub used: u32,
}

impl Answer {
    /// The reply buffer's bytes.
    pub fn reply(&self) -> Vec<u8> {
        let mut v = alloc::vec![0u8; self.reply_len];
        self.mem.read(self.reply_at, &mut v);
        v
    }
}

impl Fs {
    /// Sets up the high-priority queue and `request_queues` request
    /// queues (packed rings where asked for and negotiated).
    pub fn setup<T: Transport + ?Sized>(
        t: &mut T,
        features: u64,
        request_queues: u16,
        packed: bool,
    ) -> Result<Self, DriveError> {
        let mut queues = Vec::new();
        for q in 0..=request_queues {
            queues.push(setup_queue(t, q, features, packed)?);
        }
        Ok(Fs { queues })
    }

    /// Queue `index` (0: high priority), for the stress engine.
    pub fn queue_mut(&mut self, index: u16) -> Option<&mut Queue> {
        self.queues.get_mut(usize::from(index))
    }

    pub fn queue_count(&self) -> u16 {
        self.queues.len() as u16
    }

    /// Sends `message` on `queue` with room for a `reply_len`-byte reply
    /// (none: a message without reply, such as FORGET) and waits for it:
    /// by polling the used ring (one request at a time needs no
    /// interrupt; the stress engine takes them by interrupt), or as the
    /// transport waits.
    pub fn call<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        queue: u16,
        message: &[u8],
        reply_len: usize,
        poll: bool,
    ) -> Result<Answer, FsError> {
        let q = self
            .queues
            .get_mut(usize::from(queue))
            .ok_or(DriveError::NoQueue { queue })?;
        let reply_at = message.len().next_multiple_of(8);
        let mem = Rc::new(DmaMemory::new((reply_at + reply_len).max(8)));
        mem.write(0, message);
        let mut chain = alloc::vec![DmaBuffer {
            mem: &mem,
            offset: 0,
            len: message.len() as u32,
            device_writable: false,
        }];
        if reply_len > 0 {
            chain.push(DmaBuffer {
                mem: &mem,
                offset: reply_at,
                len: reply_len as u32,
                device_writable: true,
            });
        }
        let token = q.submit(t, &chain, false)?;
        let used = if poll {
            q.poll_used(t)?
        } else {
            q.wait_used(t)?
        };
        if used.token != token {
            return Err(FsError::WrongToken {
                used: used.token,
                submitted: token,
            });
        }
        drop(chain);
        Ok(Answer {
            mem,
            reply_at,
            reply_len,
            used: used.len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(len: u32, error: i32, unique: u64, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(&error.to_le_bytes());
        v.extend_from_slice(&unique.to_le_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn config_fields_where_the_spec_puts_them() {
        let mut raw = [0u8; CONFIG_LEN];
        raw[..5].copy_from_slice(b"zv-fs");
        raw[36..].copy_from_slice(&3u32.to_le_bytes());
        let c = FsConfig::parse(&raw);
        assert_eq!(c.tag(), b"zv-fs");
        assert_eq!(c.num_request_queues, 3);
        raw[..36].fill(b'x');
        assert_eq!(FsConfig::parse(&raw).tag().len(), 36);
    }

    #[test]
    fn messages_carry_header_and_arguments() {
        let h = InHeader::new(Opcode::Lookup, 0x1122, ROOT_ID);
        let m = encode(&h, &[], &[&name("dir1")]);
        assert_eq!(m.len(), 45);
        assert_eq!(le32(&m, 0), 45);
        assert_eq!(le32(&m, 4), 1);
        assert_eq!(le64(&m, 8), 0x1122);
        assert_eq!(le64(&m, 16), 1);
        assert_eq!(le32(&m, 32), 1, "pid");
        assert_eq!(&m[40..], b"dir1\0");
        let r = read_in(7, 4096, 512);
        assert_eq!((le64(&r, 0), le64(&r, 8), le32(&r, 16)), (7, 4096, 512));
        let i = init_in(0, INIT_MAX_PAGES);
        assert_eq!((le32(&i, 0), le32(&i, 4), le32(&i, 12)), (7, 31, 1 << 22));
        assert_eq!(le32(&create_in(O_WRONLY | O_CREAT, 0o644), 4), 0o644);
        assert_eq!(le64(&release_in(9, 1), 0), 9);
        assert_eq!(le64(&flush_in(9), 0), 9);
        assert_eq!(le64(&forget_in(2), 0), 2);
        assert_eq!(le64(&rename_in(5), 0), 5);
        assert_eq!(le32(&mkdir_in(0o755), 0), 0o755);
        assert_eq!(le32(&open_in(O_RDONLY), 0), 0);
    }

    #[test]
    fn replies_are_decoded_and_malformed_ones_refused() {
        let ok = reply(20, 0, 5, &[1, 2, 3, 4, 0xee, 0xee]);
        let r = decode_reply(&ok, 20, 5).unwrap();
        assert_eq!((r.error, r.body), (0, &[1u8, 2, 3, 4][..]));
        let enoent = reply(16, -ENOENT, 6, &[]);
        assert_eq!(decode_reply(&enoent, 16, 6).unwrap().error, -2);
        // The header's length counts, whatever else the device wrote.
        assert_eq!(decode_reply(&ok, 21, 5).unwrap().body.len(), 4);
        assert_eq!(
            decode_reply(&ok, 23, 5),
            Err(FuseError::UsedPastBuffer {
                used: 23,
                buffer: 22
            })
        );
        assert_eq!(
            decode_reply(&ok, 19, 5),
            Err(FuseError::LenPastUsed { len: 20, used: 19 })
        );
        assert_eq!(decode_reply(&ok, 8, 5), Err(FuseError::Short { used: 8 }));
        assert_eq!(
            decode_reply(&ok, 20, 4),
            Err(FuseError::WrongUnique { got: 5, sent: 4 })
        );
        let bad = reply(16, 3, 1, &[]);
        assert_eq!(
            decode_reply(&bad, 16, 1),
            Err(FuseError::BadError { error: 3 })
        );
        let body = reply(20, -2, 1, &[0; 4]);
        assert_eq!(
            decode_reply(&body, 20, 1),
            Err(FuseError::ErrorWithBody { error: -2, len: 20 })
        );
        let tiny = reply(8, 0, 1, &[0; 8]);
        assert_eq!(
            decode_reply(&tiny, 16, 1),
            Err(FuseError::LenTooSmall { len: 8 })
        );
    }

    #[test]
    fn reply_bodies() {
        let mut e = [0u8; ENTRY_OUT_LEN + OPEN_OUT_LEN];
        e[..8].copy_from_slice(&42u64.to_le_bytes());
        e[40 + 8..40 + 16].copy_from_slice(&4097u64.to_le_bytes());
        e[40 + 60..40 + 64].copy_from_slice(&(S_IFREG | 0o600).to_le_bytes());
        e[ENTRY_OUT_LEN..ENTRY_OUT_LEN + 8].copy_from_slice(&77u64.to_le_bytes());
        let (entry, fh) = parse_create_out(&e).unwrap();
        assert_eq!(
            (entry.nodeid, entry.attr.size, entry.attr.mode, fh),
            (42, 4097, S_IFREG | 0o600, 77)
        );
        assert_eq!(
            EntryOut::parse(&e[..100]),
            Err(FuseError::ShortBody {
                what: "entry",
                need: 128,
                got: 100
            })
        );
        let mut a = [0u8; ATTR_OUT_LEN];
        a[16 + 8..16 + 16].copy_from_slice(&5u64.to_le_bytes());
        assert_eq!(parse_attr_out(&a).unwrap().size, 5);
        assert!(parse_attr_out(&a[..50]).is_err());
        let mut i = [0u8; 64];
        i[..4].copy_from_slice(&7u32.to_le_bytes());
        i[4..8].copy_from_slice(&36u32.to_le_bytes());
        i[20..24].copy_from_slice(&(1u32 << 20).to_le_bytes());
        i[28..30].copy_from_slice(&256u16.to_le_bytes());
        let init = InitOut::parse(&i).unwrap();
        assert_eq!(
            (init.major, init.minor, init.max_write, init.max_pages),
            (7, 36, 1 << 20, 256)
        );
        assert!(InitOut::parse(&i[..20]).is_err());
        assert_eq!(parse_write_out(&100u64.to_le_bytes()).unwrap(), 100);
    }

    #[test]
    fn directory_entries() {
        let mut b = Vec::new();
        for (ino, name, typ) in [(5u64, &b"a.bin"[..], DT_REG), (6, b"dir2", DT_DIR)] {
            let start = b.len();
            b.extend_from_slice(&ino.to_le_bytes());
            b.extend_from_slice(&(ino + 100).to_le_bytes());
            b.extend_from_slice(&(name.len() as u32).to_le_bytes());
            b.extend_from_slice(&typ.to_le_bytes());
            b.extend_from_slice(name);
            while (b.len() - start) % 8 != 0 {
                b.push(0);
            }
        }
        let d = parse_dirents(&b).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].ino, d[0].off, d[0].typ), (5, 105, DT_REG));
        assert_eq!(d[0].name, b"a.bin");
        assert_eq!(d[1].name, b"dir2");
        // A name running past the reply is refused, not read.
        b[16 + 32] = 200;
        assert_eq!(
            parse_dirents(&b),
            Err(FuseError::DirentPastEnd {
                at: 32,
                namelen: 200,
                len: 64
            })
        );
        assert!(parse_dirents(&b[..10]).is_err());
    }
}
