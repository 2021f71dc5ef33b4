//! virtio-balloon, the memory balloon (virtio 1.x section 5.5): the host
//! sets how many 4 KiB pages it wants (`num_pages`), the driver says how
//! many it has given (`actual`). Both configuration fields are 32-bit
//! little-endian, in the legacy interface too.

use super::super::transport::{Transport, TransportError};

pub const DEVICE_ID: u32 = super::super::ids::BALLOON;

/// Queues: pages given up, pages taken back, statistics (with
/// [`F_STATS_VQ`]).
pub const INFLATE_QUEUE: u16 = 0;
pub const DEFLATE_QUEUE: u16 = 1;
pub const STATS_QUEUE: u16 = 2;

/// Feature bits.
pub const F_MUST_TELL_HOST: u32 = 0;
pub const F_STATS_VQ: u32 = 1;
pub const F_DEFLATE_ON_OOM: u32 = 2;

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
    fn config_is_little_endian() {
        let c = BalloonConfig {
            num_pages: 0x0102_0304,
            actual: 0x0a0b_0c0d,
        };
        assert_eq!(c.encode(), [4, 3, 2, 1, 0x0d, 0x0c, 0x0b, 0x0a]);
        assert_eq!(BalloonConfig::decode(&c.encode()), c);
    }
}
