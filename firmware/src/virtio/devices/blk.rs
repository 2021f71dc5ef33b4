//! virtio-blk, the block device (virtio 1.x section 5.2): request queues
//! (`num_queues` of them with VIRTIO_BLK_F_MQ) of chains laid out as a
//! 16-byte header the device reads, the data, and a status byte it writes.
//!
//! Byte order: fields of the header, of discard/write-zeroes segments and
//! of the configuration space are little-endian from virtio 1.0 on, and
//! the guest's order (big-endian on s390) for a legacy (revision 0)
//! device.

use super::super::transport::{has, Transport, TransportError};
use ufmt::{uDisplay, uWrite, Formatter};

pub const DEVICE_ID: u32 = super::super::ids::BLOCK;

/// Feature bits (section 5.2.3).
pub const F_SIZE_MAX: u32 = 1;
pub const F_SEG_MAX: u32 = 2;
pub const F_GEOMETRY: u32 = 4;
pub const F_RO: u32 = 5;
pub const F_BLK_SIZE: u32 = 6;
pub const F_FLUSH: u32 = 9;
pub const F_TOPOLOGY: u32 = 10;
pub const F_CONFIG_WCE: u32 = 11;
pub const F_MQ: u32 = 12;
pub const F_DISCARD: u32 = 13;
pub const F_WRITE_ZEROES: u32 = 14;

/// Every device feature the driver understands.
pub const FEATURES: u64 = 1 << F_SIZE_MAX
    | 1 << F_SEG_MAX
    | 1 << F_GEOMETRY
    | 1 << F_RO
    | 1 << F_BLK_SIZE
    | 1 << F_FLUSH
    | 1 << F_TOPOLOGY
    | 1 << F_CONFIG_WCE
    | 1 << F_MQ
    | 1 << F_DISCARD
    | 1 << F_WRITE_ZEROES;

/// Request types.
pub const T_IN: u32 = 0;
pub const T_OUT: u32 = 1;
pub const T_FLUSH: u32 = 4;
pub const T_GET_ID: u32 = 8;
pub const T_DISCARD: u32 = 11;
pub const T_WRITE_ZEROES: u32 = 13;

/// Status byte values.
pub const S_OK: u8 = 0;
pub const S_IOERR: u8 = 1;
pub const S_UNSUPP: u8 = 2;

/// The header's size, and the sector unit of its `sector` field whatever
/// the block size.
pub const HEADER_LEN: usize = 16;
pub const SECTOR: u64 = 512;
/// GET_ID answers in 20 bytes (NUL-terminated if shorter).
pub const ID_LEN: usize = 20;
/// A discard / write-zeroes segment: sector u64, num_sectors u32, flags u32.
pub const SEGMENT_LEN: usize = 16;
/// Segment flag: the device may unmap the range (write zeroes only).
pub const SEGMENT_UNMAP: u32 = 1;

/// The name of a status byte, for reports.
pub fn status_name(s: u8) -> &'static str {
    match s {
        S_OK => "OK",
        S_IOERR => "IOERR",
        S_UNSUPP => "UNSUPP",
        _ => "not a status",
    }
}

/// A status byte, printed with its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusByte(pub u8);

impl uDisplay for StatusByte {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        ufmt::uwrite!(f, "{} ({})", self.0, status_name(self.0))
    }
}

/// The device's byte order for header, segments and configuration.
pub use super::order::Order;

/// The configuration space (section 5.2.4), the fields of features not
/// negotiated left as read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkConfig {
    /// In 512-byte sectors, whatever the block size.
    pub capacity: u64,
    pub size_max: u32,
    pub seg_max: u32,
    pub blk_size: u32,
    pub physical_block_exp: u8,
    pub alignment_offset: u8,
    pub min_io_size: u16,
    pub opt_io_size: u32,
    pub writeback: u8,
    pub num_queues: u16,
    pub max_discard_sectors: u32,
    pub max_discard_seg: u32,
    pub discard_sector_alignment: u32,
    pub max_write_zeroes_sectors: u32,
    pub max_write_zeroes_seg: u32,
    pub write_zeroes_may_unmap: u8,
}

/// Bytes of the configuration space read: up to `write_zeroes_may_unmap`.
pub const CONFIG_LEN: usize = 57;

impl BlkConfig {
    pub fn decode(b: &[u8; CONFIG_LEN], order: Order) -> Self {
        BlkConfig {
            capacity: order.u64(&b[0..]),
            size_max: order.u32(&b[8..]),
            seg_max: order.u32(&b[12..]),
            blk_size: order.u32(&b[20..]),
            physical_block_exp: b[24],
            alignment_offset: b[25],
            min_io_size: order.u16(&b[26..]),
            opt_io_size: order.u32(&b[28..]),
            writeback: b[32],
            num_queues: order.u16(&b[34..]),
            max_discard_sectors: order.u32(&b[36..]),
            max_discard_seg: order.u32(&b[40..]),
            discard_sector_alignment: order.u32(&b[44..]),
            max_write_zeroes_sectors: order.u32(&b[48..]),
            max_write_zeroes_seg: order.u32(&b[52..]),
            write_zeroes_may_unmap: b[56],
        }
    }

    /// The logical block size in force: `blk_size` if negotiated, else 512.
    pub fn block_size(&self, features: u64) -> u32 {
        if has(features, F_BLK_SIZE) && self.blk_size >= 512 {
            self.blk_size
        } else {
            512
        }
    }

    /// Request queues in force: `num_queues` with MQ, else 1.
    pub fn queues(&self, features: u64) -> u16 {
        if has(features, F_MQ) {
            self.num_queues
        } else {
            1
        }
    }
}

/// Reads the configuration space of a device at `revision`. The space may
/// be shorter than [`CONFIG_LEN`] on devices without the later fields: the
/// transport refuses a read past the end, so shorter reads are tried.
pub fn read_config<T: Transport + ?Sized>(t: &mut T) -> Result<BlkConfig, TransportError> {
    let mut b = [0u8; CONFIG_LEN];
    let mut len = CONFIG_LEN;
    loop {
        match t.read_config(&mut b[..len]) {
            Ok(()) => break,
            // The fields before `writeback` are always there.
            Err(TransportError::ConfigPastEnd { .. }) if len > 34 => len = 34,
            Err(e) => return Err(e),
        }
    }
    Ok(BlkConfig::decode(&b, Order::for_revision(t.revision())))
}

/// A request header: type, reserved (I/O priority on legacy devices),
/// sector.
pub fn header(order: Order, kind: u32, sector: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&order.put32(kind));
    h[8..16].copy_from_slice(&order.put64(sector));
    h
}

/// A discard / write-zeroes segment.
pub fn segment(order: Order, sector: u64, sectors: u32, flags: u32) -> [u8; SEGMENT_LEN] {
    let mut s = [0u8; SEGMENT_LEN];
    s[0..8].copy_from_slice(&order.put64(sector));
    s[8..12].copy_from_slice(&order.put32(sectors));
    s[12..16].copy_from_slice(&order.put32(flags));
    s
}

/// What GET_ID answered: the bytes up to the first NUL, all 20 if none.
pub fn id_text(answer: &[u8]) -> &[u8] {
    let n = answer.len().min(ID_LEN);
    let end = answer[..n].iter().position(|&b| b == 0).unwrap_or(n);
    &answer[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_segments_in_either_order() {
        let h = header(Order::Little, T_OUT, 0x0102_0304_0506_0708);
        assert_eq!(h, [1, 0, 0, 0, 0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]);
        let h = header(Order::Big, T_GET_ID, 1);
        assert_eq!(h, [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let s = segment(Order::Little, 2, 3, SEGMENT_UNMAP);
        assert_eq!(s, [2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn configuration_fields_where_the_spec_puts_them() {
        let mut b = [0u8; CONFIG_LEN];
        b[0] = 0x80; // capacity 128 sectors
        b[12] = 126; // seg_max
        b[21] = 0x10; // blk_size 4096
        b[24] = 3;
        b[32] = 1;
        b[34] = 4; // num_queues
        b[48] = 0xff; // max_write_zeroes_sectors low byte
        b[56] = 1;
        let c = BlkConfig::decode(&b, Order::Little);
        assert_eq!((c.capacity, c.seg_max, c.blk_size), (128, 126, 4096));
        assert_eq!((c.physical_block_exp, c.writeback, c.num_queues), (3, 1, 4));
        assert_eq!(
            (c.max_write_zeroes_sectors, c.write_zeroes_may_unmap),
            (255, 1)
        );
        assert_eq!(c.block_size(1 << F_BLK_SIZE), 4096);
        assert_eq!(c.block_size(0), 512);
        assert_eq!((c.queues(1 << F_MQ), c.queues(0)), (4, 1));
        let big = BlkConfig::decode(&b, Order::Big);
        assert_eq!(big.capacity, 0x8000_0000_0000_0000);
    }

    #[test]
    fn ids_end_at_the_first_nul() {
        assert_eq!(id_text(b"zv-1\0\0\0"), b"zv-1");
        assert_eq!(id_text(&[b'x'; 24]), &[b'x'; 20]);
        assert_eq!(id_text(b"\0abc"), b"");
    }
}
