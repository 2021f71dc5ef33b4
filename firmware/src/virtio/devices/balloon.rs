//! virtio-balloon, the memory balloon (virtio 1.x section 5.5): the host
//! sets how many 4 KiB pages it wants (`num_pages`), the driver says how
//! many it has given (`actual`). Both configuration fields are 32-bit
//! little-endian, in the legacy interface too. Pages go to the device as
//! 32-bit page frame numbers on the inflate queue and come back on the
//! deflate queue; statistics are tagged 64-bit values; free page reports
//! and hints are device-writable buffers over free memory. The rings'
//! payloads (page numbers, statistics, the hint's command id) are in the
//! device's byte order: little-endian from revision 1, big-endian (the
//! guest's) at revision 0.

use super::super::transport::{has, Transport, TransportError};
use alloc::vec::Vec;

pub const DEVICE_ID: u32 = super::super::ids::BALLOON;

/// Queues: pages given up, pages taken back, statistics (with
/// [`F_STATS_VQ`]); the later ones' indexes depend on the features
/// ([`queue_index`]).
pub const INFLATE_QUEUE: u16 = 0;
pub const DEFLATE_QUEUE: u16 = 1;
pub const STATS_QUEUE: u16 = 2;

/// Feature bits.
pub const F_MUST_TELL_HOST: u32 = 0;
pub const F_STATS_VQ: u32 = 1;
pub const F_DEFLATE_ON_OOM: u32 = 2;
pub const F_FREE_PAGE_HINT: u32 = 3;
pub const F_PAGE_POISON: u32 = 4;
pub const F_PAGE_REPORTING: u32 = 5;

/// The queues a balloon may have, in index order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BalloonQueue {
    Inflate,
    Deflate,
    Stats,
    FreePage,
    Reporting,
}

/// A queue's index under `features` (virtio 1.x 5.5.2): the optional
/// queues exist only with their feature, and each takes the next index
/// after those that exist. None: the queue does not exist. (QEMU lays its
/// queues out by the features it offers, and always offers STATS_VQ:
/// a driver that accepts every queue feature offered agrees with it.)
pub fn queue_index(features: u64, q: BalloonQueue) -> Option<u16> {
    let present = [
        (BalloonQueue::Inflate, true),
        (BalloonQueue::Deflate, true),
        (BalloonQueue::Stats, has(features, F_STATS_VQ)),
        (BalloonQueue::FreePage, has(features, F_FREE_PAGE_HINT)),
        (BalloonQueue::Reporting, has(features, F_PAGE_REPORTING)),
    ];
    let mut index = 0;
    for (which, here) in present {
        if which == q {
            return here.then_some(index);
        }
        index += u16::from(here);
    }
    None
}

/// How many queues the device has under `features`.
pub fn queue_count(features: u64) -> u16 {
    2 + [F_STATS_VQ, F_FREE_PAGE_HINT, F_PAGE_REPORTING]
        .iter()
        .map(|&b| u16::from(has(features, b)))
        .sum::<u16>()
}

/// The inflate or deflate request for `pfns`: 32-bit page frame numbers
/// in the device's byte order (big-endian at revision 0).
pub fn pfn_request(pfns: impl Iterator<Item = u32>, revision: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pfns {
        if revision == 0 {
            out.extend_from_slice(&p.to_be_bytes());
        } else {
            out.extend_from_slice(&p.to_le_bytes());
        }
    }
    out
}

/// Statistics tags (virtio 1.x 5.5.6.3) the driver reports.
pub const S_SWAP_IN: u16 = 0;
pub const S_SWAP_OUT: u16 = 1;
pub const S_MAJFLT: u16 = 2;
pub const S_MINFLT: u16 = 3;
pub const S_MEMFREE: u16 = 4;
pub const S_MEMTOT: u16 = 5;
pub const S_AVAIL: u16 = 6;
pub const S_CACHES: u16 = 7;
pub const S_HTLB_PGALLOC: u16 = 8;
pub const S_HTLB_PGFAIL: u16 = 9;

/// Bytes of one statistic: a 16-bit tag, then a 64-bit value, packed.
pub const STAT_LEN: usize = 10;

/// The statistics buffer for `stats` (tag, value), in the device's byte
/// order.
pub fn stats_buffer(stats: &[(u16, u64)], revision: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(stats.len() * STAT_LEN);
    for &(tag, value) in stats {
        if revision == 0 {
            out.extend_from_slice(&tag.to_be_bytes());
            out.extend_from_slice(&value.to_be_bytes());
        } else {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
    out
}

/// `free_page_hint_cmd_id` (configuration offset 8, with
/// FREE_PAGE_HINT): 0 tells the driver to stop hinting, 1 that hinting is
/// done (the pages may be used again), 2 and above ask for hints under
/// that id.
pub const CMD_ID_STOP: u32 = 0;
pub const CMD_ID_DONE: u32 = 1;
pub const CMD_ID_MIN: u32 = 2;

/// Reads `free_page_hint_cmd_id` (little-endian, like every balloon field).
pub fn read_hint_cmd_id<T: Transport + ?Sized>(t: &mut T) -> Result<u32, TransportError> {
    let mut b = [0u8; 12];
    t.read_config(&mut b)?;
    Ok(u32::from_le_bytes([b[8], b[9], b[10], b[11]]))
}

/// The command id a driver sends first on the free page queue, in the
/// device's byte order.
pub fn hint_cmd_id(id: u32, revision: u8) -> [u8; 4] {
    if revision == 0 {
        id.to_be_bytes()
    } else {
        id.to_le_bytes()
    }
}

/// The configuration fields every balloon has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BalloonConfig {
    /// Pages the host asks the driver to give up.
    pub num_pages: u32,
    /// Pages the driver says it has given up (driver-written).
    pub actual: u32,
}

/// Bytes of [`BalloonConfig`] in the configuration space.
pub const CONFIG_LEN: usize = 8;

impl BalloonConfig {
    pub fn decode(b: &[u8; CONFIG_LEN]) -> Self {
        BalloonConfig {
            num_pages: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            actual: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    pub fn encode(&self) -> [u8; CONFIG_LEN] {
        let mut b = [0u8; CONFIG_LEN];
        b[0..4].copy_from_slice(&self.num_pages.to_le_bytes());
        b[4..8].copy_from_slice(&self.actual.to_le_bytes());
        b
    }
}

pub fn read_config<T: Transport + ?Sized>(t: &mut T) -> Result<BalloonConfig, TransportError> {
    let mut b = [0u8; CONFIG_LEN];
    t.read_config(&mut b)?;
    Ok(BalloonConfig::decode(&b))
}

/// Says the driver has given up `actual` pages. The write covers both
/// fields (a virtio-ccw write starts at offset 0): `num_pages` is written
/// back as `current` holds it.
pub fn set_actual<T: Transport + ?Sized>(
    t: &mut T,
    current: BalloonConfig,
    actual: u32,
) -> Result<(), TransportError> {
    t.write_config(&BalloonConfig { actual, ..current }.encode())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_indexes_follow_the_features() {
        use BalloonQueue::*;
        let f = |bits: &[u32]| bits.iter().fold(0u64, |a, &b| a | 1 << b);
        assert_eq!(queue_index(0, Inflate), Some(0));
        assert_eq!(queue_index(0, Deflate), Some(1));
        assert_eq!(queue_index(0, Stats), None);
        assert_eq!(queue_index(0, Reporting), None);
        assert_eq!(queue_index(f(&[F_PAGE_REPORTING]), Reporting), Some(2));
        assert_eq!(
            queue_index(f(&[F_STATS_VQ, F_PAGE_REPORTING]), Reporting),
            Some(3)
        );
        let all = f(&[F_STATS_VQ, F_FREE_PAGE_HINT, F_PAGE_REPORTING]);
        assert_eq!(queue_index(all, FreePage), Some(3));
        assert_eq!(queue_index(all, Reporting), Some(4));
        assert_eq!(queue_count(all), 5);
        assert_eq!(queue_count(f(&[F_STATS_VQ])), 3);
    }

    #[test]
    fn payloads_in_the_device_byte_order() {
        let p = [0x0001_0203u32, 0x0a0b_0c0d];
        assert_eq!(
            pfn_request(p.iter().copied(), 2),
            [3, 2, 1, 0, 0x0d, 0x0c, 0x0b, 0x0a]
        );
        assert_eq!(
            pfn_request(p.iter().copied(), 0),
            [0, 1, 2, 3, 0x0a, 0x0b, 0x0c, 0x0d]
        );
        let s = stats_buffer(&[(S_MEMFREE, 0x0102), (S_MEMTOT, 1 << 40)], 1);
        assert_eq!(s.len(), 2 * STAT_LEN);
        assert_eq!(&s[..STAT_LEN], &[4, 0, 2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&s[STAT_LEN..STAT_LEN + 2], &[5, 0]);
        assert_eq!(s[STAT_LEN + 2 + 5], 1);
        let b = stats_buffer(&[(S_MEMFREE, 0x0102)], 0);
        assert_eq!(b, [0, 4, 0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(hint_cmd_id(CMD_ID_MIN, 2), [2, 0, 0, 0]);
        assert_eq!(hint_cmd_id(CMD_ID_MIN, 0), [0, 0, 0, 2]);
    }

    #[test]
    fn config_is_little_endian() {
        let c = BalloonConfig {
            num_pages: 0x0102_0304,
            actual: 0x0a0b_0c0d,
        };
        assert_eq!(c.encode(), [4, 3, 2, 1, 0x0d, 0x0c, 0x0b, 0x0a]);
        assert_eq!(BalloonConfig::decode(&c.encode()), c);
    }
}
