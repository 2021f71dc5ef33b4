//! virtio-gpu, the 2D part (virtio 1.x section 5.7): a control queue of
//! commands, each a 24-byte header and its fields the device reads, then
//! room for the answer it writes (a header, and data for some); a cursor
//! queue of commands the device only reads. Little-endian throughout (the
//! device exists only from virtio 1.0 on).
//!
//! Commands and answers are encoded and decoded here, pure; an answer of
//! the wrong type or length for its command is an error naming both.
//! A command that names guest storage itself (the backing pages of
//! RESOURCE_ATTACH_BACKING) keeps that memory with the device's
//! ([`Transport::held`]) before the device sees it.

use super::super::queue::{setup_queue, DmaBuffer, DriveError, Queue};
use super::super::transport::Transport;
use crate::dma::DmaMemory;
use alloc::rc::Rc;
use alloc::vec::Vec;
use ufmt::{uDisplay, uWrite, Formatter};

pub const DEVICE_ID: u32 = super::super::ids::GPU;
pub const CONTROL_QUEUE: u16 = 0;
pub const CURSOR_QUEUE: u16 = 1;

/// Feature bits.
pub const F_VIRGL: u32 = 0;
pub const F_EDID: u32 = 1;

/// Command types.
pub const CMD_GET_DISPLAY_INFO: u32 = 0x0100;
pub const CMD_RESOURCE_CREATE_2D: u32 = 0x0101;
pub const CMD_RESOURCE_UNREF: u32 = 0x0102;
pub const CMD_SET_SCANOUT: u32 = 0x0103;
pub const CMD_RESOURCE_FLUSH: u32 = 0x0104;
pub const CMD_TRANSFER_TO_HOST_2D: u32 = 0x0105;
pub const CMD_RESOURCE_ATTACH_BACKING: u32 = 0x0106;
pub const CMD_RESOURCE_DETACH_BACKING: u32 = 0x0107;
pub const CMD_GET_EDID: u32 = 0x010a;
pub const CMD_UPDATE_CURSOR: u32 = 0x0300;
pub const CMD_MOVE_CURSOR: u32 = 0x0301;

/// Answer types.
pub const RESP_OK_NODATA: u32 = 0x1100;
pub const RESP_OK_DISPLAY_INFO: u32 = 0x1101;
pub const RESP_OK_EDID: u32 = 0x1104;
pub const RESP_ERR_UNSPEC: u32 = 0x1200;
pub const RESP_ERR_OUT_OF_MEMORY: u32 = 0x1201;
pub const RESP_ERR_INVALID_SCANOUT_ID: u32 = 0x1202;
pub const RESP_ERR_INVALID_RESOURCE_ID: u32 = 0x1203;
pub const RESP_ERR_INVALID_CONTEXT_ID: u32 = 0x1204;
pub const RESP_ERR_INVALID_PARAMETER: u32 = 0x1205;

/// Header flag: the device echoes the fence id in its answer.
pub const FLAG_FENCE: u32 = 1;

/// Pixel formats used here: bytes B, G, R, then unused or alpha.
pub const FORMAT_B8G8R8A8: u32 = 1;
pub const FORMAT_B8G8R8X8: u32 = 2;

pub const HEADER_LEN: usize = 24;
/// Scanouts a display-info answer describes, whatever the device has.
pub const MAX_SCANOUTS: usize = 16;
/// The display-info answer: a header and 16 modes of 24 bytes.
pub const DISPLAY_INFO_LEN: usize = HEADER_LEN + MAX_SCANOUTS * 24;
/// The EDID answer: a header, size, padding and 1024 bytes of blob.
pub const EDID_BLOB_MAX: usize = 1024;
pub const EDID_LEN: usize = HEADER_LEN + 8 + EDID_BLOB_MAX;
/// A cursor command (update and move alike).
pub const CURSOR_LEN: usize = HEADER_LEN + 32;
/// One backing entry: address, length, padding.
pub const MEM_ENTRY_LEN: usize = 16;
/// Cursor images are 64 x 64.
pub const CURSOR_SIDE: u32 = 64;

/// The configuration space (4 little-endian u32).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuConfig {
    pub events_read: u32,
    pub events_clear: u32,
    pub num_scanouts: u32,
    pub num_capsets: u32,
}

pub const CONFIG_LEN: usize = 16;

impl GpuConfig {
    pub fn decode(b: &[u8; CONFIG_LEN]) -> Self {
        let w = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        GpuConfig {
            events_read: w(0),
            events_clear: w(4),
            num_scanouts: w(8),
            num_capsets: w(12),
        }
    }
}

pub fn read_config<T: Transport + ?Sized>(
    t: &mut T,
) -> Result<GpuConfig, super::super::transport::TransportError> {
    let mut b = [0u8; CONFIG_LEN];
    t.read_config(&mut b)?;
    Ok(GpuConfig::decode(&b))
}

/// A rectangle: x, y, width, height.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    pub fn whole(width: u32, height: u32) -> Self {
        Rect {
            x: 0,
            y: 0,
            width,
            height,
        }
    }
}

/// The control header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub kind: u32,
    pub flags: u32,
    pub fence_id: u64,
    pub ctx_id: u32,
    pub ring_idx: u8,
}

impl Header {
    pub fn command(kind: u32) -> Self {
        Header {
            kind,
            ..Header::default()
        }
    }

    pub fn fenced(kind: u32, fence_id: u64) -> Self {
        Header {
            kind,
            flags: FLAG_FENCE,
            fence_id,
            ..Header::default()
        }
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&self.kind.to_le_bytes());
        b[4..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..16].copy_from_slice(&self.fence_id.to_le_bytes());
        b[16..20].copy_from_slice(&self.ctx_id.to_le_bytes());
        b[20] = self.ring_idx;
        b
    }

    pub fn decode(b: &[u8]) -> Self {
        Header {
            kind: le32(b, 0),
            flags: le32(b, 4),
            fence_id: u64::from(le32(b, 8)) | u64::from(le32(b, 12)) << 32,
            ctx_id: le32(b, 16),
            ring_idx: b[20],
        }
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A command's bytes: the header, then its fields as little-endian u32
/// (and u64 where the layout says).
pub struct Command(pub Vec<u8>);

impl Command {
    fn new(h: Header) -> Self {
        Command(h.encode().to_vec())
    }

    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    fn rect(self, r: Rect) -> Self {
        self.u32(r.x).u32(r.y).u32(r.width).u32(r.height)
    }

    pub fn kind(&self) -> u32 {
        le32(&self.0, 0)
    }

    /// The answer the command expects when it succeeds: type and length.
    pub fn ok_answer(&self) -> (u32, usize) {
        match self.kind() {
            CMD_GET_DISPLAY_INFO => (RESP_OK_DISPLAY_INFO, DISPLAY_INFO_LEN),
            CMD_GET_EDID => (RESP_OK_EDID, EDID_LEN),
            _ => (RESP_OK_NODATA, HEADER_LEN),
        }
    }
}

pub fn get_display_info(h: Header) -> Command {
    Command::new(h)
}

pub fn get_edid(h: Header, scanout: u32) -> Command {
    Command::new(h).u32(scanout).u32(0)
}

pub fn resource_create_2d(h: Header, id: u32, format: u32, width: u32, height: u32) -> Command {
    Command::new(h).u32(id).u32(format).u32(width).u32(height)
}

pub fn resource_unref(h: Header, id: u32) -> Command {
    Command::new(h).u32(id).u32(0)
}

pub fn set_scanout(h: Header, r: Rect, scanout: u32, id: u32) -> Command {
    Command::new(h).rect(r).u32(scanout).u32(id)
}

pub fn resource_flush(h: Header, r: Rect, id: u32) -> Command {
    Command::new(h).rect(r).u32(id).u32(0)
}

pub fn transfer_to_host_2d(h: Header, r: Rect, offset: u64, id: u32) -> Command {
    Command::new(h).rect(r).u64(offset).u32(id).u32(0)
}

/// ATTACH_BACKING of `entries` (guest address, length).
pub fn resource_attach_backing(h: Header, id: u32, entries: &[(u64, u32)]) -> Command {
    let mut c = Command::new(h).u32(id).u32(entries.len() as u32);
    for &(addr, len) in entries {
        c = c.u64(addr).u32(len).u32(0);
    }
    c
}

pub fn resource_detach_backing(h: Header, id: u32) -> Command {
    Command::new(h).u32(id).u32(0)
}

/// UPDATE_CURSOR or MOVE_CURSOR (`kind`): position on a scanout, the
/// cursor image's resource (0: none) and its hot spot.
pub fn cursor(kind: u32, scanout: u32, x: u32, y: u32, id: u32, hot: (u32, u32)) -> Command {
    Command::new(Header::command(kind))
        .u32(scanout)
        .u32(x)
        .u32(y)
        .u32(0)
        .u32(id)
        .u32(hot.0)
        .u32(hot.1)
        .u32(0)
}

/// Splits `len` bytes of `mem` into backing entries of at most `chunk`
/// bytes (a multiple of 4096, or 0 for one entry).
pub fn backing_entries(mem: &DmaMemory, len: usize, chunk: usize) -> Vec<(u64, u32)> {
    let chunk = if chunk == 0 { len.max(1) } else { chunk };
    (0..len)
        .step_by(chunk)
        .map(|at| (mem.addr() + at as u64, (len - at).min(chunk) as u32))
        .collect()
}

/// The name of an answer type, for reports.
pub fn answer_name(kind: u32) -> &'static str {
    match kind {
        RESP_OK_NODATA => "OK_NODATA",
        RESP_OK_DISPLAY_INFO => "OK_DISPLAY_INFO",
        RESP_OK_EDID => "OK_EDID",
        0x1102 => "OK_CAPSET_INFO",
        0x1103 => "OK_CAPSET",
        RESP_ERR_UNSPEC => "ERR_UNSPEC",
        RESP_ERR_OUT_OF_MEMORY => "ERR_OUT_OF_MEMORY",
        RESP_ERR_INVALID_SCANOUT_ID => "ERR_INVALID_SCANOUT_ID",
        RESP_ERR_INVALID_RESOURCE_ID => "ERR_INVALID_RESOURCE_ID",
        RESP_ERR_INVALID_CONTEXT_ID => "ERR_INVALID_CONTEXT_ID",
        RESP_ERR_INVALID_PARAMETER => "ERR_INVALID_PARAMETER",
        _ => "not an answer type",
    }
}

/// The name of a command type, for reports.
pub fn command_name(kind: u32) -> &'static str {
    match kind {
        CMD_GET_DISPLAY_INFO => "GET_DISPLAY_INFO",
        CMD_RESOURCE_CREATE_2D => "RESOURCE_CREATE_2D",
        CMD_RESOURCE_UNREF => "RESOURCE_UNREF",
        CMD_SET_SCANOUT => "SET_SCANOUT",
        CMD_RESOURCE_FLUSH => "RESOURCE_FLUSH",
        CMD_TRANSFER_TO_HOST_2D => "TRANSFER_TO_HOST_2D",
        CMD_RESOURCE_ATTACH_BACKING => "RESOURCE_ATTACH_BACKING",
        CMD_RESOURCE_DETACH_BACKING => "RESOURCE_DETACH_BACKING",
        CMD_GET_EDID => "GET_EDID",
        CMD_UPDATE_CURSOR => "UPDATE_CURSOR",
        CMD_MOVE_CURSOR => "MOVE_CURSOR",
        _ => "unknown command",
    }
}

/// An answer type, printed with its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnswerType(pub u32);

impl uDisplay for AnswerType {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        ufmt::uwrite!(
            f,
            "{} ({})",
            crate::fmt::Hex(self.0.into()),
            answer_name(self.0)
        )
    }
}

/// One scanout's mode in a display-info answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mode {
    pub r: Rect,
    pub enabled: u32,
    pub flags: u32,
}

/// A decoded answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    NoData,
    DisplayInfo(alloc::boxed::Box<[Mode; MAX_SCANOUTS]>),
    /// The EDID blob, `size` bytes of it.
    Edid(Vec<u8>),
    /// An ERR_* type (or any type the command did not expect, with the
    /// header's length).
    Error(u32),
}

/// An answer against the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerError {
    /// Fewer bytes than a header.
    Short { command: u32, used: u32 },
    /// The type's length differs from what the device reported.
    WrongLength {
        command: u32,
        kind: u32,
        want: u32,
        used: u32,
    },
    /// An OK type that is not the command's.
    WrongType { command: u32, want: u32, got: u32 },
    /// An EDID size past the blob.
    EdidSize { size: u32 },
}

impl uDisplay for AnswerError {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match *self {
            AnswerError::Short { command, used } => ufmt::uwrite!(
                f,
                "{} answered with {} bytes, less than a header",
                command_name(command),
                used
            ),
            AnswerError::WrongLength {
                command,
                kind,
                want,
                used,
            } => ufmt::uwrite!(
                f,
                "{} answered {} in {} bytes, the type has {}",
                command_name(command),
                AnswerType(kind),
                used,
                want
            ),
            AnswerError::WrongType { command, want, got } => ufmt::uwrite!(
                f,
                "{} answered {}, expected {} or an error",
                command_name(command),
                AnswerType(got),
                AnswerType(want)
            ),
            AnswerError::EdidSize { size } => ufmt::uwrite!(
                f,
                "GET_EDID answered an EDID of {} bytes, past the {}-byte blob",
                size,
                EDID_BLOB_MAX
            ),
        }
    }
}

/// Decodes the answer to a command of type `command`: `bytes` are the
/// writable bytes, `used` what the device reported writing.
pub fn decode_answer(
    command: u32,
    bytes: &[u8],
    used: u32,
) -> Result<(Header, Answer), AnswerError> {
    if (used as usize) < HEADER_LEN || bytes.len() < HEADER_LEN {
        return Err(AnswerError::Short { command, used });
    }
    let h = Header::decode(bytes);
    let want_len = |len: usize| {
        if used as usize != len || bytes.len() < len {
            Err(AnswerError::WrongLength {
                command,
                kind: h.kind,
                want: len as u32,
                used,
            })
        } else {
            Ok(())
        }
    };
    let (ok_kind, _) = match command {
        CMD_GET_DISPLAY_INFO => (RESP_OK_DISPLAY_INFO, DISPLAY_INFO_LEN),
        CMD_GET_EDID => (RESP_OK_EDID, EDID_LEN),
        _ => (RESP_OK_NODATA, HEADER_LEN),
    };
    let answer = match h.kind {
        k if k >= RESP_ERR_UNSPEC => {
            want_len(HEADER_LEN)?;
            Answer::Error(k)
        }
        k if k != ok_kind => {
            return Err(AnswerError::WrongType {
                command,
                want: ok_kind,
                got: k,
            })
        }
        RESP_OK_NODATA => {
            want_len(HEADER_LEN)?;
            Answer::NoData
        }
        RESP_OK_DISPLAY_INFO => {
            want_len(DISPLAY_INFO_LEN)?;
            let mut modes = [Mode::default(); MAX_SCANOUTS];
            for (i, m) in modes.iter_mut().enumerate() {
                let at = HEADER_LEN + i * 24;
                *m = Mode {
                    r: Rect {
                        x: le32(bytes, at),
                        y: le32(bytes, at + 4),
                        width: le32(bytes, at + 8),
                        height: le32(bytes, at + 12),
                    },
                    enabled: le32(bytes, at + 16),
                    flags: le32(bytes, at + 20),
                };
            }
            Answer::DisplayInfo(alloc::boxed::Box::new(modes))
        }
        _ => {
            want_len(EDID_LEN)?;
            let size = le32(bytes, HEADER_LEN);
            if size as usize > EDID_BLOB_MAX {
                return Err(AnswerError::EdidSize { size });
            }
            let from = HEADER_LEN + 8;
            Answer::Edid(bytes[from..from + size as usize].to_vec())
        }
    };
    Ok((h, answer))
}

/// What an EDID blob says, as far as we hold it to anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EdidSummary {
    /// 128-byte blocks: the base and its extensions.
    pub blocks: usize,
    /// The preferred mode: the first detailed timing's active pixels.
    pub preferred: (u32, u32),
}

/// An EDID blob against the EDID structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdidError {
    /// Not a whole number of 128-byte blocks, or not 1 + the extension
    /// count of byte 126.
    Size { size: usize, extensions: u8 },
    /// Byte `at` of the fixed header 00 ff ff ff ff ff ff 00.
    Header { at: usize, got: u8 },
    /// Block `block`'s bytes do not sum to 0 modulo 256.
    Checksum { block: usize, sum: u8 },
    /// The first descriptor is not a detailed timing (pixel clock 0).
    NoTiming,
}

impl uDisplay for EdidError {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match *self {
            EdidError::Size { size, extensions } => ufmt::uwrite!(
                f,
                "an EDID of {} bytes with {} extension blocks (128 bytes each, plus the base; zeros past them)",
                size,
                extensions
            ),
            EdidError::Header { at, got } => ufmt::uwrite!(
                f,
                "EDID header byte {} is {}",
                at,
                crate::fmt::Hex(got.into())
            ),
            EdidError::Checksum { block, sum } => ufmt::uwrite!(
                f,
                "EDID block {} sums to {} (0 modulo 256 expected)",
                block,
                sum
            ),
            EdidError::NoTiming => {
                f.write_str("the first EDID descriptor is no detailed timing (pixel clock 0)")
            }
        }
    }
}

/// The fixed first 8 bytes of every EDID.
pub const EDID_HEADER: [u8; 8] = [0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0];

/// Checks an EDID blob's structure (the base block and the extensions
/// byte 126 counts, each block's checksum, the header) and reads its
/// preferred mode (the detailed timing at byte 54). The device may report
/// more bytes than the blocks (QEMU reports its whole 1024-byte buffer,
/// virtio-gpu-base.c): those must be zero.
pub fn parse_edid(all: &[u8]) -> Result<EdidSummary, EdidError> {
    let extensions = all.get(126).copied().unwrap_or(0);
    let len = 128 * (1 + usize::from(extensions));
    if all.len() < len || !all.len().is_multiple_of(128) || all[len..].iter().any(|&x| x != 0) {
        return Err(EdidError::Size {
            size: all.len(),
            extensions,
        });
    }
    let b = &all[..len];
    if let Some(at) = (0..8).find(|&i| b[i] != EDID_HEADER[i]) {
        return Err(EdidError::Header { at, got: b[at] });
    }
    for (block, bytes) in b.chunks(128).enumerate() {
        let sum = bytes.iter().fold(0u8, |s, &x| s.wrapping_add(x));
        if sum != 0 {
            return Err(EdidError::Checksum { block, sum });
        }
    }
    let d = &b[54..72];
    if d[0] == 0 && d[1] == 0 {
        return Err(EdidError::NoTiming);
    }
    let width = u32::from(d[2]) | u32::from(d[4] & 0xf0) << 4;
    let height = u32::from(d[5]) | u32::from(d[7] & 0xf0) << 4;
    Ok(EdidSummary {
        blocks: b.len() / 128,
        preferred: (width, height),
    })
}

/// A command that went wrong: on the way, or in its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuError {
    Drive(DriveError),
    /// The used buffer is not the command just sent.
    WrongToken {
        queue: u16,
        used: u16,
        submitted: u16,
    },
    Answer(AnswerError),
}

impl From<DriveError> for GpuError {
    fn from(e: DriveError) -> Self {
        GpuError::Drive(e)
    }
}

impl From<AnswerError> for GpuError {
    fn from(e: AnswerError) -> Self {
        GpuError::Answer(e)
    }
}

impl uDisplay for GpuError {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match self {
            GpuError::Drive(e) => ufmt::uwrite!(f, "{}", e),
            GpuError::WrongToken {
                queue,
                used,
                submitted,
            } => ufmt::uwrite!(
                f,
                "queue {}: used token {} for submitted {}",
                queue,
                used,
                submitted
            ),
            GpuError::Answer(e) => ufmt::uwrite!(f, "{}", e),
        }
    }
}

/// Bytes of the one command buffer: the longest command (an attach with
/// up to [`MAX_ENTRIES`] entries), then the longest answer.
const REQUEST_AT: usize = 0;
const ANSWER_AT: usize = 4096;
/// Backing entries one attach may carry here.
pub const MAX_ENTRIES: usize = (ANSWER_AT - 32) / MEM_ENTRY_LEN;

/// A driven GPU: its two queues and a buffer for one command at a time.
pub struct Gpu {
    control: Queue,
    cursor: Queue,
    buf: Rc<DmaMemory>,
}

impl Gpu {
    /// Sets up both queues of a device whose features were negotiated as
    /// `features`.
    pub fn setup<T: Transport + ?Sized>(
        t: &mut T,
        features: u64,
        packed: bool,
    ) -> Result<Self, DriveError> {
        Ok(Gpu {
            control: setup_queue(t, CONTROL_QUEUE, features, packed)?,
            cursor: setup_queue(t, CURSOR_QUEUE, features, packed)?,
            buf: Rc::new(DmaMemory::new(ANSWER_AT + EDID_LEN)),
        })
    }

    pub fn control_mut(&mut self) -> &mut Queue {
        &mut self.control
    }

    /// Sends `c` on the control queue with room for its answer and waits
    /// for it; returns the bytes the device wrote (as many as it said)
    /// and the used length.
    pub fn exchange<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        c: &Command,
    ) -> Result<(Vec<u8>, u32), GpuError> {
        let len = c.0.len();
        if len > ANSWER_AT {
            return Err(GpuError::Drive(DriveError::OutsideMemory {
                element: 0,
                offset: REQUEST_AT,
                len: len as u32,
                mem_len: ANSWER_AT,
            }));
        }
        // The longest answer any command has: a device that answers with
        // another type than the command's is caught, not cut short.
        let room = EDID_LEN;
        self.buf.write(REQUEST_AT, &c.0);
        self.buf.clear(ANSWER_AT, room);
        let chain = [
            DmaBuffer {
                mem: &self.buf,
                offset: REQUEST_AT,
                len: len as u32,
                device_writable: false,
            },
            DmaBuffer {
                mem: &self.buf,
                offset: ANSWER_AT,
                len: room as u32,
                device_writable: true,
            },
        ];
        let token = self.control.submit(t, &chain, false)?;
        let used = self.control.wait_used(t)?;
        if used.token != token {
            return Err(GpuError::WrongToken {
                queue: CONTROL_QUEUE,
                used: used.token,
                submitted: token,
            });
        }
        let mut out = alloc::vec![0u8; (used.len as usize).min(room)];
        self.buf.read(ANSWER_AT, &mut out);
        Ok((out, used.len))
    }

    /// [`Gpu::exchange`] and [`decode_answer`].
    pub fn command<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        c: &Command,
    ) -> Result<(Header, Answer), GpuError> {
        let (bytes, used) = self.exchange(t, c)?;
        Ok(decode_answer(c.kind(), &bytes, used)?)
    }

    /// RESOURCE_ATTACH_BACKING of `len` bytes of `mem` in entries of
    /// `chunk` bytes: `mem` is kept with the device's memory first, since
    /// the device reads it whenever it transfers from then on.
    pub fn attach_backing<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        h: Header,
        id: u32,
        mem: &Rc<DmaMemory>,
        len: usize,
        chunk: usize,
    ) -> Result<(Header, Answer), GpuError> {
        t.held().keep(mem);
        let len = len.min(mem.len());
        let mut entries = backing_entries(mem, len, chunk);
        entries.truncate(MAX_ENTRIES);
        self.command(t, &resource_attach_backing(h, id, &entries))
    }

    /// Sends a cursor command and waits for the device to use it; returns
    /// the used length (the device writes nothing there).
    pub fn cursor_command<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        c: &Command,
    ) -> Result<u32, GpuError> {
        let at = ANSWER_AT + EDID_LEN - CURSOR_LEN;
        self.buf.write(at, &c.0);
        let chain = [DmaBuffer {
            mem: &self.buf,
            offset: at,
            len: c.0.len() as u32,
            device_writable: false,
        }];
        let token = self.cursor.submit(t, &chain, false)?;
        let used = self.cursor.wait_used(t)?;
        if used.token != token {
            return Err(GpuError::WrongToken {
                queue: CURSOR_QUEUE,
                used: used.token,
                submitted: token,
            });
        }
        Ok(used.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(kind: u32, len: usize) -> Vec<u8> {
        let mut b = alloc::vec![0u8; len];
        b[0..4].copy_from_slice(&kind.to_le_bytes());
        b
    }

    #[test]
    fn commands_are_laid_out_as_the_spec_says() {
        let c = resource_create_2d(Header::fenced(CMD_RESOURCE_CREATE_2D, 7), 5, 2, 640, 480);
        assert_eq!(c.0.len(), 40);
        assert_eq!(&c.0[0..8], &[1, 1, 0, 0, 1, 0, 0, 0]);
        assert_eq!(c.0[8], 7);
        assert_eq!(&c.0[24..28], &[5, 0, 0, 0]);
        assert_eq!(&c.0[32..36], &[0x80, 2, 0, 0]);
        assert_eq!(
            resource_unref(Header::command(CMD_RESOURCE_UNREF), 1)
                .0
                .len(),
            32
        );
        let r = Rect::whole(3, 4);
        assert_eq!(
            set_scanout(Header::command(CMD_SET_SCANOUT), r, 0, 1)
                .0
                .len(),
            48
        );
        assert_eq!(
            resource_flush(Header::command(CMD_RESOURCE_FLUSH), r, 1)
                .0
                .len(),
            48
        );
        let t = transfer_to_host_2d(Header::command(CMD_TRANSFER_TO_HOST_2D), r, 0x10, 9);
        assert_eq!(t.0.len(), 56);
        assert_eq!((t.0[40], t.0[48]), (0x10, 9));
        let a = resource_attach_backing(
            Header::command(CMD_RESOURCE_ATTACH_BACKING),
            3,
            &[(0x1000, 4096), (0x3000, 8)],
        );
        assert_eq!(a.0.len(), 32 + 2 * MEM_ENTRY_LEN);
        assert_eq!((a.0[28], a.0[33], a.0[40], a.0[49]), (2, 0x10, 0, 0x30));
        assert_eq!(get_edid(Header::command(CMD_GET_EDID), 0).0.len(), 32);
        let k = cursor(CMD_MOVE_CURSOR, 0, 10, 20, 0, (1, 2));
        assert_eq!(k.0.len(), CURSOR_LEN);
        assert_eq!((k.0[28], k.0[32], k.0[44]), (10, 20, 1));
        assert_eq!(k.kind(), CMD_MOVE_CURSOR);
    }

    #[test]
    fn answers_of_the_wrong_type_or_length_are_errors() {
        let nodata = answer(RESP_OK_NODATA, 24);
        assert_eq!(
            decode_answer(CMD_RESOURCE_FLUSH, &nodata, 24).unwrap().1,
            Answer::NoData
        );
        assert_eq!(
            decode_answer(CMD_RESOURCE_FLUSH, &nodata, 23),
            Err(AnswerError::Short {
                command: CMD_RESOURCE_FLUSH,
                used: 23
            })
        );
        let long = answer(RESP_OK_NODATA, 32);
        assert!(matches!(
            decode_answer(CMD_RESOURCE_FLUSH, &long, 32),
            Err(AnswerError::WrongLength {
                want: 24,
                used: 32,
                ..
            })
        ));
        let err = answer(RESP_ERR_INVALID_RESOURCE_ID, 24);
        assert_eq!(
            decode_answer(CMD_RESOURCE_UNREF, &err, 24).unwrap().1,
            Answer::Error(RESP_ERR_INVALID_RESOURCE_ID)
        );
        // Display info where no data was due, and the other way round.
        let info = answer(RESP_OK_DISPLAY_INFO, DISPLAY_INFO_LEN);
        assert!(matches!(
            decode_answer(CMD_SET_SCANOUT, &info, DISPLAY_INFO_LEN as u32),
            Err(AnswerError::WrongType { .. })
        ));
        assert!(matches!(
            decode_answer(CMD_GET_DISPLAY_INFO, &nodata, 24),
            Err(AnswerError::WrongType { .. })
        ));
        let mut info = info;
        info[24 + 8] = 0x80;
        info[24 + 9] = 2;
        info[24 + 12] = 0xe0;
        info[24 + 13] = 1;
        info[24 + 16] = 1;
        let (_, a) = decode_answer(CMD_GET_DISPLAY_INFO, &info, DISPLAY_INFO_LEN as u32).unwrap();
        let Answer::DisplayInfo(modes) = a else {
            panic!("display info")
        };
        assert_eq!(
            (modes[0].r.width, modes[0].r.height, modes[0].enabled),
            (640, 480, 1)
        );
        assert_eq!(modes[1], Mode::default());
        let mut edid = answer(RESP_OK_EDID, EDID_LEN);
        edid[24] = 0x80;
        edid[25] = 4; // 1152 bytes
        assert_eq!(
            decode_answer(CMD_GET_EDID, &edid, EDID_LEN as u32),
            Err(AnswerError::EdidSize { size: 1152 })
        );
        edid[25] = 0;
        let (_, a) = decode_answer(CMD_GET_EDID, &edid, EDID_LEN as u32).unwrap();
        assert_eq!(a, Answer::Edid(alloc::vec![0; 128]));
    }

    fn edid(width: u32, height: u32) -> Vec<u8> {
        let mut b = alloc::vec![0u8; 256];
        b[..8].copy_from_slice(&EDID_HEADER);
        b[126] = 1;
        b[54] = 1;
        b[56] = width as u8;
        b[58] = ((width >> 8) << 4) as u8;
        b[59] = height as u8;
        b[61] = ((height >> 8) << 4) as u8;
        for block in 0..2 {
            let s = b[block * 128..block * 128 + 127]
                .iter()
                .fold(0u8, |s, &x| s.wrapping_add(x));
            b[block * 128 + 127] = s.wrapping_neg();
        }
        b
    }

    #[test]
    fn edids_are_held_to_their_structure() {
        let good = edid(1280, 800);
        assert_eq!(
            parse_edid(&good),
            Ok(EdidSummary {
                blocks: 2,
                preferred: (1280, 800)
            })
        );
        let mut bad = good.clone();
        bad[3] = 0;
        assert_eq!(parse_edid(&bad), Err(EdidError::Header { at: 3, got: 0 }));
        let mut bad = good.clone();
        bad[200] ^= 1;
        assert!(matches!(
            parse_edid(&bad),
            Err(EdidError::Checksum { block: 1, .. })
        ));
        assert!(matches!(
            parse_edid(&good[..128]),
            Err(EdidError::Size { .. })
        ));
        let mut padded = good.clone();
        padded.resize(1024, 0);
        assert_eq!(parse_edid(&padded).map(|s| s.blocks), Ok(2));
        padded[700] = 1;
        assert!(matches!(parse_edid(&padded), Err(EdidError::Size { .. })));
    }

    #[test]
    fn backing_is_cut_into_entries() {
        let mem = DmaMemory::new(3 * 4096);
        let e = backing_entries(&mem, 10_000, 4096);
        assert_eq!(
            e,
            [
                (mem.addr(), 4096),
                (mem.addr() + 4096, 4096),
                (mem.addr() + 8192, 10_000 - 8192)
            ]
        );
        assert_eq!(backing_entries(&mem, 100, 0), [(mem.addr(), 100)]);
    }
}
