//! virtio-9p (virtio 1.x section 5.11, device id 9): a configuration of
//! `tag_len` and the mount tag (with feature bit 0, MOUNT_TAG), and one
//! request queue, each request a 9P2000.L message the device reads
//! followed by room for its answer.
//!
//! Messages are `size[4] type[1] tag[2]` and the body, little-endian,
//! strings `len[2]` then bytes. Encoding and decoding are pure and
//! refuse what does not fit: a size past the bytes the device wrote, a
//! field past the message's end, another type or tag than the request's.

use super::super::queue::{setup_queue, DmaBuffer, DriveError, Queue};
use super::super::transport::{Transport, TransportError};
use crate::dma::DmaMemory;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use ufmt::{uDisplay, uWrite, Formatter};

pub const DEVICE_ID: u32 = super::super::ids::NINE_P;
/// The request queue's index.
pub const REQUEST_QUEUE: u16 = 0;
/// The device has a mount tag in its configuration.
pub const F_MOUNT_TAG: u32 = 0;

/// Message types (9P2000.L and the 9P2000 ones it keeps); an answer's
/// type is its request's plus one.
pub mod ty {
    pub const RLERROR: u8 = 7;
    pub const TLOPEN: u8 = 12;
    pub const TLCREATE: u8 = 14;
    pub const TREADLINK: u8 = 22;
    pub const TGETATTR: u8 = 24;
    pub const TREADDIR: u8 = 40;
    pub const TFSYNC: u8 = 50;
    pub const TMKDIR: u8 = 72;
    pub const TRENAMEAT: u8 = 74;
    pub const TUNLINKAT: u8 = 76;
    pub const TVERSION: u8 = 100;
    pub const TATTACH: u8 = 104;
    pub const TWALK: u8 = 110;
    pub const TREAD: u8 = 116;
    pub const TWRITE: u8 = 118;
    pub const TCLUNK: u8 = 120;
}

/// The tag of Tversion, and the fid meaning none.
pub const NOTAG: u16 = 0xffff;
pub const NOFID: u32 = 0xffff_ffff;
/// The protocol we speak.
pub const VERSION: &str = "9P2000.L";
/// `size[4] type[1] tag[2]`.
pub const HEADER: usize = 7;
/// Rread's bytes before the data: header and `count[4]`.
pub const RREAD_HEADER: usize = HEADER + 4;
/// Tread's length: header, `fid[4] offset[8] count[4]`.
pub const TREAD_LEN: usize = HEADER + 16;
/// Twrite's bytes before the data.
pub const TWRITE_HEADER: usize = HEADER + 16;
/// Twalk takes at most this many names.
pub const MAX_WALK: usize = 16;

/// Qid types.
pub const QT_DIR: u8 = 0x80;
pub const QT_SYMLINK: u8 = 0x02;
pub const QT_FILE: u8 = 0;
/// File type bits of a mode (Linux's `S_IFMT` values, as 9P2000.L has them).
pub const S_IFMT: u32 = 0o170_000;
pub const S_IFDIR: u32 = 0o040_000;
pub const S_IFREG: u32 = 0o100_000;
pub const S_IFLNK: u32 = 0o120_000;
/// Tgetattr's mask for the basic fields (mode to blocks).
pub const GETATTR_BASIC: u64 = 0x7ff;
/// Open flags (Linux's values, as 9P2000.L has them).
pub const O_RDONLY: u32 = 0;
pub const O_WRONLY: u32 = 1;
pub const O_RDWR: u32 = 2;
pub const O_CREAT: u32 = 0o100;
pub const O_EXCL: u32 = 0o200;
pub const O_DIRECTORY: u32 = 0o200_000;
/// Tunlinkat's flag for a directory.
pub const AT_REMOVEDIR: u32 = 0x200;
/// Error numbers (Linux's, which Rlerror carries).
pub const ENOENT: u32 = 2;
pub const EINVAL: u32 = 22;

/// An answer that is not what the protocol allows, or an error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum P9Error {
    /// The device wrote fewer bytes than a header.
    Short {
        used: usize,
    },
    /// The device says it wrote more than the room it was given.
    PastRoom {
        used: usize,
        room: usize,
    },
    /// The size field disagrees with the bytes the device wrote.
    BadSize {
        size: u32,
        used: usize,
    },
    /// Another type than the request's answer (or Rlerror).
    WrongType {
        expected: u8,
        got: u8,
    },
    WrongTag {
        expected: u16,
        got: u16,
    },
    /// A field of `len` bytes at `at` runs past the message's `size`.
    PastEnd {
        field: &'static str,
        at: usize,
        len: usize,
        size: usize,
    },
    /// Bytes left after the last field.
    Trailing {
        extra: usize,
    },
    /// A string that is not UTF-8.
    NotUtf8 {
        field: &'static str,
    },
    /// Rlerror with this error number.
    Lerror(u32),
    /// A message too large for the negotiated msize.
    TooLarge {
        len: usize,
        msize: u32,
    },
}

impl uDisplay for P9Error {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match *self {
            P9Error::Short { used } => {
                ufmt::uwrite!(f, "answer of {} bytes, shorter than a 7-byte header", used)
            }
            P9Error::PastRoom { used, room } => ufmt::uwrite!(
                f,
                "the device says it wrote {} bytes into {} of room",
                used,
                room
            ),
            P9Error::BadSize { size, used } => {
                ufmt::uwrite!(f, "size field {} but the device wrote {} bytes", size, used)
            }
            P9Error::WrongType { expected, got } => {
                ufmt::uwrite!(f, "answer type {}, expected {}", got, expected)
            }
            P9Error::WrongTag { expected, got } => {
                ufmt::uwrite!(f, "answer tag {}, expected {}", got, expected)
            }
            P9Error::PastEnd {
                field,
                at,
                len,
                size,
            } => ufmt::uwrite!(
                f,
                "{} ({} bytes at {}) past the message's {} bytes",
                field,
                len,
                at,
                size
            ),
            P9Error::Trailing { extra } => {
                ufmt::uwrite!(f, "{} bytes after the last field", extra)
            }
            P9Error::NotUtf8 { field } => ufmt::uwrite!(f, "{} is not UTF-8", field),
            P9Error::Lerror(e) => ufmt::uwrite!(f, "Rlerror {} ({})", e, errno_name(e)),
            P9Error::TooLarge { len, msize } => {
                ufmt::uwrite!(f, "a {}-byte message past msize {}", len, msize)
            }
        }
    }
}

/// A name for the error numbers a 9p server commonly gives.
pub fn errno_name(e: u32) -> &'static str {
    match e {
        1 => "EPERM",
        2 => "ENOENT",
        5 => "EIO",
        9 => "EBADF",
        13 => "EACCES",
        17 => "EEXIST",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        30 => "EROFS",
        39 => "ENOTEMPTY",
        95 => "EOPNOTSUPP",
        _ => "?",
    }
}

/// A message being written: header first, its size set by `finish`.
pub struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    pub fn new(ty: u8, tag: u16) -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&[0; 4]);
        buf.push(ty);
        buf.extend_from_slice(&tag.to_le_bytes());
        Msg { buf }
    }
    pub fn u8(mut self, v: u8) -> Self {
        self.buf.push(v);
        self
    }
    pub fn u16(mut self, v: u16) -> Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u32(mut self, v: u32) -> Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(mut self, v: u64) -> Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A string: `len[2]` then its bytes (at most 65535 of them).
    pub fn str(self, s: &str) -> Self {
        let b = &s.as_bytes()[..s.len().min(0xffff)];
        let mut m = self.u16(b.len() as u16);
        m.buf.extend_from_slice(b);
        m
    }
    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.buf.extend_from_slice(b);
        self
    }
    pub fn finish(mut self) -> Vec<u8> {
        let n = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&n.to_le_bytes());
        self.buf
    }
}

pub fn tversion(msize: u32, version: &str) -> Vec<u8> {
    Msg::new(ty::TVERSION, NOTAG)
        .u32(msize)
        .str(version)
        .finish()
}

pub fn tattach(tag: u16, fid: u32, uname: &str, aname: &str, n_uname: u32) -> Vec<u8> {
    Msg::new(ty::TATTACH, tag)
        .u32(fid)
        .u32(NOFID)
        .str(uname)
        .str(aname)
        .u32(n_uname)
        .finish()
}

/// Twalk of `names` (at most [`MAX_WALK`]; the caller splits longer paths).
pub fn twalk(tag: u16, fid: u32, newfid: u32, names: &[&str]) -> Vec<u8> {
    let mut m = Msg::new(ty::TWALK, tag)
        .u32(fid)
        .u32(newfid)
        .u16(names.len() as u16);
    for n in names {
        m = m.str(n);
    }
    m.finish()
}

pub fn tgetattr(tag: u16, fid: u32, mask: u64) -> Vec<u8> {
    Msg::new(ty::TGETATTR, tag).u32(fid).u64(mask).finish()
}

pub fn tlopen(tag: u16, fid: u32, flags: u32) -> Vec<u8> {
    Msg::new(ty::TLOPEN, tag).u32(fid).u32(flags).finish()
}

pub fn tread(tag: u16, fid: u32, offset: u64, count: u32) -> Vec<u8> {
    Msg::new(ty::TREAD, tag)
        .u32(fid)
        .u64(offset)
        .u32(count)
        .finish()
}

/// Tread written into `out` ([`TREAD_LEN`] bytes): no allocation, for
/// the stress engine.
pub fn tread_into(out: &mut [u8], tag: u16, fid: u32, offset: u64, count: u32) {
    out[..4].copy_from_slice(&(TREAD_LEN as u32).to_le_bytes());
    out[4] = ty::TREAD;
    out[5..7].copy_from_slice(&tag.to_le_bytes());
    out[7..11].copy_from_slice(&fid.to_le_bytes());
    out[11..19].copy_from_slice(&offset.to_le_bytes());
    out[19..23].copy_from_slice(&count.to_le_bytes());
}

pub fn twrite(tag: u16, fid: u32, offset: u64, data: &[u8]) -> Vec<u8> {
    Msg::new(ty::TWRITE, tag)
        .u32(fid)
        .u64(offset)
        .u32(data.len() as u32)
        .bytes(data)
        .finish()
}

pub fn tclunk(tag: u16, fid: u32) -> Vec<u8> {
    Msg::new(ty::TCLUNK, tag).u32(fid).finish()
}

pub fn treaddir(tag: u16, fid: u32, offset: u64, count: u32) -> Vec<u8> {
    Msg::new(ty::TREADDIR, tag)
        .u32(fid)
        .u64(offset)
        .u32(count)
        .finish()
}

pub fn treadlink(tag: u16, fid: u32) -> Vec<u8> {
    Msg::new(ty::TREADLINK, tag).u32(fid).finish()
}

/// Tlcreate: creates `name` in the directory `fid` stands for, which then
/// stands for the new file, open with `flags`.
pub fn tlcreate(tag: u16, fid: u32, name: &str, flags: u32, mode: u32, gid: u32) -> Vec<u8> {
    Msg::new(ty::TLCREATE, tag)
        .u32(fid)
        .str(name)
        .u32(flags)
        .u32(mode)
        .u32(gid)
        .finish()
}

pub fn tmkdir(tag: u16, dfid: u32, name: &str, mode: u32, gid: u32) -> Vec<u8> {
    Msg::new(ty::TMKDIR, tag)
        .u32(dfid)
        .str(name)
        .u32(mode)
        .u32(gid)
        .finish()
}

pub fn trenameat(tag: u16, olddir: u32, oldname: &str, newdir: u32, newname: &str) -> Vec<u8> {
    Msg::new(ty::TRENAMEAT, tag)
        .u32(olddir)
        .str(oldname)
        .u32(newdir)
        .str(newname)
        .finish()
}

pub fn tunlinkat(tag: u16, dfid: u32, name: &str, flags: u32) -> Vec<u8> {
    Msg::new(ty::TUNLINKAT, tag)
        .u32(dfid)
        .str(name)
        .u32(flags)
        .finish()
}

pub fn tfsync(tag: u16, fid: u32, datasync: u32) -> Vec<u8> {
    Msg::new(ty::TFSYNC, tag).u32(fid).u32(datasync).finish()
}

/// A decoder over one answer's body, bounded by its size field.
pub struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

/// Checks an answer's header against the request (`request` type, `tag`)
/// and returns a reader over its body: the size field must equal what
/// the device wrote (`used`, which must lie inside `buf`); Rlerror gives
/// its error number.
pub fn answer(buf: &[u8], used: usize, request: u8, tag: u16) -> Result<Reader<'_>, P9Error> {
    if used > buf.len() {
        return Err(P9Error::PastRoom {
            used,
            room: buf.len(),
        });
    }
    if used < HEADER {
        return Err(P9Error::Short { used });
    }
    let size = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if size as usize != used {
        return Err(P9Error::BadSize { size, used });
    }
    let got_tag = u16::from_le_bytes([buf[5], buf[6]]);
    if got_tag != tag {
        return Err(P9Error::WrongTag {
            expected: tag,
            got: got_tag,
        });
    }
    let mut r = Reader {
        buf: &buf[..used],
        at: HEADER,
    };
    match buf[4] {
        t if t == request.wrapping_add(1) => Ok(r),
        ty::RLERROR => {
            let e = r.u32("ecode")?;
            r.end()?;
            Err(P9Error::Lerror(e))
        }
        got => Err(P9Error::WrongType {
            expected: request.wrapping_add(1),
            got,
        }),
    }
}

/// A qid: the server's identity of a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Qid {
    pub ty: u8,
    pub version: u32,
    pub path: u64,
}

/// Rgetattr's fields (the ones past `blocks` are read and dropped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attr {
    pub valid: u64,
    pub qid: Qid,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u64,
    pub rdev: u64,
    pub size: u64,
    pub blksize: u64,
    pub blocks: u64,
}

/// One Rreaddir entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub qid: Qid,
    /// Where the next Treaddir goes on from.
    pub offset: u64,
    pub ty: u8,
    pub name: String,
}

impl<'a> Reader<'a> {
    fn take(&mut self, field: &'static str, len: usize) -> Result<&'a [u8], P9Error> {
        let end = self.at.checked_add(len).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let b = &self.buf[self.at..end];
                self.at = end;
                Ok(b)
            }
            None => Err(P9Error::PastEnd {
                field,
                at: self.at,
                len,
                size: self.buf.len(),
            }),
        }
    }
    pub fn u8(&mut self, field: &'static str) -> Result<u8, P9Error> {
        Ok(self.take(field, 1)?[0])
    }
    pub fn u16(&mut self, field: &'static str) -> Result<u16, P9Error> {
        let b = self.take(field, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    pub fn u32(&mut self, field: &'static str) -> Result<u32, P9Error> {
        let b = self.take(field, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self, field: &'static str) -> Result<u64, P9Error> {
        let b = self.take(field, 8)?;
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        Ok(u64::from_le_bytes(w))
    }
    pub fn str(&mut self, field: &'static str) -> Result<String, P9Error> {
        let n = self.u16(field)? as usize;
        let b = self.take(field, n)?;
        core::str::from_utf8(b)
            .map(String::from)
            .map_err(|_| P9Error::NotUtf8 { field })
    }
    pub fn qid(&mut self, field: &'static str) -> Result<Qid, P9Error> {
        Ok(Qid {
            ty: self.u8(field)?,
            version: self.u32(field)?,
            path: self.u64(field)?,
        })
    }
    /// `count[4]` then that many bytes.
    pub fn data(&mut self, field: &'static str) -> Result<&'a [u8], P9Error> {
        let n = self.u32(field)? as usize;
        self.take(field, n)
    }
    /// Nothing may follow the last field.
    pub fn end(&self) -> Result<(), P9Error> {
        match self.buf.len() - self.at {
            0 => Ok(()),
            extra => Err(P9Error::Trailing { extra }),
        }
    }
    /// Bytes not read yet.
    pub fn left(&self) -> usize {
        self.buf.len() - self.at
    }
}

/// Rversion: msize and version.
pub fn rversion(mut r: Reader<'_>) -> Result<(u32, String), P9Error> {
    let msize = r.u32("msize")?;
    let v = r.str("version")?;
    r.end()?;
    Ok((msize, v))
}

/// An answer that is only a qid (Rattach, Rmkdir).
pub fn rqid(mut r: Reader<'_>) -> Result<Qid, P9Error> {
    let q = r.qid("qid")?;
    r.end()?;
    Ok(q)
}

/// Rwalk: a qid per name walked.
pub fn rwalk(mut r: Reader<'_>) -> Result<Vec<Qid>, P9Error> {
    let n = r.u16("nwqid")?;
    let mut v = Vec::with_capacity(usize::from(n).min(MAX_WALK));
    for _ in 0..n {
        v.push(r.qid("wqid")?);
    }
    r.end()?;
    Ok(v)
}

pub fn rgetattr(mut r: Reader<'_>) -> Result<Attr, P9Error> {
    let a = Attr {
        valid: r.u64("valid")?,
        qid: r.qid("qid")?,
        mode: r.u32("mode")?,
        uid: r.u32("uid")?,
        gid: r.u32("gid")?,
        nlink: r.u64("nlink")?,
        rdev: r.u64("rdev")?,
        size: r.u64("size")?,
        blksize: r.u64("blksize")?,
        blocks: r.u64("blocks")?,
    };
    // atime, mtime, ctime, btime (seconds, nanoseconds), gen, data_version.
    r.take("times", 8 * 10)?;
    r.end()?;
    Ok(a)
}

/// Rlopen and Rlcreate: qid and iounit.
pub fn ropen(mut r: Reader<'_>) -> Result<(Qid, u32), P9Error> {
    let q = r.qid("qid")?;
    let iounit = r.u32("iounit")?;
    r.end()?;
    Ok((q, iounit))
}

/// Rread: the data.
pub fn rread<'a>(mut r: Reader<'a>) -> Result<&'a [u8], P9Error> {
    let d = r.data("data")?;
    r.end()?;
    Ok(d)
}

/// Rwrite: the count written.
pub fn rwrite(mut r: Reader<'_>) -> Result<u32, P9Error> {
    let n = r.u32("count")?;
    r.end()?;
    Ok(n)
}

/// An answer with no body (Rclunk, Rrenameat, Runlinkat, Rfsync).
pub fn rempty(r: Reader<'_>) -> Result<(), P9Error> {
    r.end()
}

pub fn rreadlink(mut r: Reader<'_>) -> Result<String, P9Error> {
    let s = r.str("target")?;
    r.end()?;
    Ok(s)
}

/// Rreaddir: its entries, each held inside the answer's count.
pub fn rreaddir(mut r: Reader<'_>) -> Result<Vec<DirEntry>, P9Error> {
    let data = r.data("data")?;
    r.end()?;
    let mut e = Reader { buf: data, at: 0 };
    let mut v = Vec::new();
    while e.left() > 0 {
        v.push(DirEntry {
            qid: e.qid("entry qid")?,
            offset: e.u64("entry offset")?,
            ty: e.u8("entry type")?,
            name: e.str("entry name")?,
        });
    }
    Ok(v)
}

/// The configuration: the mount tag (`tag_len[2]` then that many bytes,
/// no NUL), read in the device's byte order (big-endian at revision 0).
pub fn read_tag<T: Transport + ?Sized>(t: &mut T) -> Result<Vec<u8>, TransportError> {
    let mut len = [0u8; 2];
    t.read_config(&mut len)?;
    let n = if t.revision() == 0 {
        u16::from_be_bytes(len)
    } else {
        u16::from_le_bytes(len)
    };
    let mut b = alloc::vec![0u8; 2 + usize::from(n)];
    t.read_config(&mut b)?;
    Ok(b.split_off(2))
}

/// A driven 9p device: its request queue.
pub struct P9 {
    queue: Queue,
}

impl P9 {
    /// Sets up the request queue of a device whose features were
    /// negotiated as `features` (a packed ring if asked for and offered).
    pub fn setup<T: Transport + ?Sized>(
        t: &mut T,
        features: u64,
        packed: bool,
    ) -> Result<Self, DriveError> {
        Ok(P9 {
            queue: setup_queue(t, REQUEST_QUEUE, features, packed)?,
        })
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// The request queue, for the stress engine to drive.
    pub fn queue_mut(&mut self) -> &mut Queue {
        &mut self.queue
    }

    /// Sends `msg` with room for an answer of `answer_len` bytes and
    /// waits for it; returns the bytes the device said it wrote (the
    /// queue refuses a used length past the room).
    pub fn call<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        msg: &[u8],
        answer_len: usize,
    ) -> Result<Vec<u8>, DriveError> {
        let mem = Rc::new(DmaMemory::new(msg.len() + answer_len));
        mem.write(0, msg);
        let chain = [
            DmaBuffer {
                mem: &mem,
                offset: 0,
                len: msg.len() as u32,
                device_writable: false,
            },
            DmaBuffer {
                mem: &mem,
                offset: msg.len(),
                len: answer_len as u32,
                device_writable: true,
            },
        ];
        // One request in flight: the ring refuses any used entry but its.
        self.queue.submit(t, &chain, false)?;
        let used = self.queue.wait_used(t)?;
        let mut out = alloc::vec![0u8; (used.len as usize).min(answer_len)];
        mem.read(msg.len(), &mut out);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(ty: u8, tag: u16, body: &[u8]) -> Vec<u8> {
        Msg::new(ty, tag).bytes(body).finish()
    }

    #[test]
    fn requests_are_laid_out_as_the_protocol_says() {
        let v = tversion(8192, VERSION);
        assert_eq!(
            v,
            [
                21, 0, 0, 0, 100, 0xff, 0xff, 0, 0x20, 0, 0, 8, 0, b'9', b'P', b'2', b'0', b'0',
                b'0', b'.', b'L'
            ]
        );
        let w = twalk(3, 1, 2, &["dir1", "a"]);
        assert_eq!(&w[..7], &[26, 0, 0, 0, 110, 3, 0]);
        assert_eq!(&w[7..17], &[1, 0, 0, 0, 2, 0, 0, 0, 2, 0]);
        assert_eq!(&w[17..23], &[4, 0, b'd', b'i', b'r', b'1']);
        let mut r = [0u8; TREAD_LEN];
        tread_into(&mut r, 9, 4, 0x1_0000_0002, 77);
        assert_eq!(r.to_vec(), tread(9, 4, 0x1_0000_0002, 77));
        assert_eq!(twrite(1, 2, 3, b"xy").len(), TWRITE_HEADER + 2);
    }

    #[test]
    fn answers_decode() {
        let b = reply(
            101,
            NOTAG,
            &Msg::new(0, 0).u32(4096).str(VERSION).finish()[7..],
        );
        let r = answer(&b, b.len(), ty::TVERSION, NOTAG).unwrap();
        assert_eq!(rversion(r).unwrap(), (4096, String::from(VERSION)));
        let body = Msg::new(0, 0)
            .u16(2)
            .bytes(&[0x80; 13])
            .bytes(&[0; 13])
            .finish();
        let b = reply(111, 5, &body[7..]);
        let q = rwalk(answer(&b, b.len(), ty::TWALK, 5).unwrap()).unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q[0].ty, QT_DIR);
        let b = reply(117, 6, &[3, 0, 0, 0, b'a', b'b', b'c']);
        assert_eq!(
            rread(answer(&b, b.len(), ty::TREAD, 6).unwrap()).unwrap(),
            b"abc"
        );
        // Two directory entries.
        let entries = Msg::new(0, 0)
            .bytes(&[0; 13])
            .u64(1)
            .u8(4)
            .str(".")
            .bytes(&[0; 13])
            .u64(2)
            .u8(8)
            .str("hello.txt")
            .finish();
        let data = &entries[7..];
        let body = Msg::new(0, 0).u32(data.len() as u32).bytes(data).finish();
        let b = reply(41, 8, &body[7..]);
        let e = rreaddir(answer(&b, b.len(), ty::TREADDIR, 8).unwrap()).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[1].offset, e[1].ty, e[1].name.as_str()),
            (2, 8, "hello.txt")
        );
        let b = reply(7, 8, &ENOENT.to_le_bytes());
        assert_eq!(
            answer(&b, b.len(), ty::TWALK, 8).err(),
            Some(P9Error::Lerror(ENOENT))
        );
    }

    /// Malformed answers are refused with what is wrong, never read past.
    #[test]
    fn malformed_answers_are_refused() {
        let good = reply(117, 6, &[3, 0, 0, 0, b'a', b'b', b'c']);
        assert_eq!(
            answer(&good, 5, ty::TREAD, 6).err(),
            Some(P9Error::Short { used: 5 })
        );
        // Size field larger than what was written.
        let mut b = good.clone();
        b[0] = 200;
        assert_eq!(
            answer(&b, b.len(), ty::TREAD, 6).err(),
            Some(P9Error::BadSize {
                size: 200,
                used: 14
            })
        );
        // A used length past the room given.
        assert_eq!(
            answer(&good, 1000, ty::TREAD, 6).err(),
            Some(P9Error::PastRoom {
                used: 1000,
                room: 14
            })
        );
        assert_eq!(
            answer(&good, good.len(), ty::TREAD, 7).err(),
            Some(P9Error::WrongTag {
                expected: 7,
                got: 6
            })
        );
        assert_eq!(
            answer(&good, good.len(), ty::TWRITE, 6).err(),
            Some(P9Error::WrongType {
                expected: 119,
                got: 117
            })
        );
        // A count past the message.
        let b = reply(117, 6, &[200, 0, 0, 0, b'a']);
        assert!(matches!(
            rread(answer(&b, b.len(), ty::TREAD, 6).unwrap()),
            Err(P9Error::PastEnd { field: "data", .. })
        ));
        // A string past the message, a short qid, trailing bytes.
        let b = reply(101, NOTAG, &[0, 16, 0, 0, 9, 0, b'9']);
        assert!(matches!(
            rversion(answer(&b, b.len(), ty::TVERSION, NOTAG).unwrap()),
            Err(P9Error::PastEnd {
                field: "version",
                ..
            })
        ));
        let b = reply(105, 1, &[0x80, 0, 0]);
        assert!(matches!(
            rqid(answer(&b, b.len(), ty::TATTACH, 1).unwrap()),
            Err(P9Error::PastEnd { .. })
        ));
        let b = reply(121, 1, &[0]);
        assert_eq!(
            rempty(answer(&b, b.len(), ty::TCLUNK, 1).unwrap()).err(),
            Some(P9Error::Trailing { extra: 1 })
        );
        // A walk claiming more qids than it holds.
        let b = reply(111, 1, &[0xff, 0xff, 0]);
        assert!(matches!(
            rwalk(answer(&b, b.len(), ty::TWALK, 1).unwrap()),
            Err(P9Error::PastEnd { .. })
        ));
        // A directory entry cut short inside the count.
        let body = Msg::new(0, 0).u32(5).bytes(&[0; 5]).finish();
        let b = reply(41, 1, &body[7..]);
        assert!(matches!(
            rreaddir(answer(&b, b.len(), ty::TREADDIR, 1).unwrap()),
            Err(P9Error::PastEnd { .. })
        ));
        let b = reply(23, 1, &[2, 0, 0xff, 0xfe]);
        assert_eq!(
            rreadlink(answer(&b, b.len(), ty::TREADLINK, 1).unwrap()).err(),
            Some(P9Error::NotUtf8 { field: "target" })
        );
        // Rlerror with a short body.
        let b = reply(7, 1, &[2, 0]);
        assert!(matches!(
            answer(&b, b.len(), ty::TREAD, 1).err(),
            Some(P9Error::PastEnd { .. })
        ));
    }
}
