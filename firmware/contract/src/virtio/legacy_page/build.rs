//! Writing a device page, for test hosts and synthetic pages.

use super::layout::*;
use alloc::vec::Vec;
use ufmt::{uDisplay, uWrite, Formatter};

/// A queue for [`LegacyDeviceSpec`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueSpec {
    pub token: u64,
    pub address: u64,
    pub num: u16,
}

/// One device to place on a synthetic page.
///
/// Nothing about the values is checked beyond what the layout can hold, so
/// tests can build pages the parser must refuse (no queues, bad ring sizes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LegacyDeviceSpec {
    pub device_type: u8,
    pub status: u8,
    pub queues: Vec<QueueSpec>,
    pub host_features: Vec<u8>,
    /// Zero-padded (as is `host_features`) to the longer of the two.
    pub guest_features: Vec<u8>,
    pub config: Vec<u8>,
}

impl LegacyDeviceSpec {
    pub fn new(device_type: u8) -> Self {
        LegacyDeviceSpec {
            device_type,
            ..Default::default()
        }
    }

    pub fn with_status(mut self, status: u8) -> Self {
        self.status = status;
        self
    }

    pub fn with_queue(mut self, token: u64, address: u64, num: u16) -> Self {
        self.queues.push(QueueSpec {
            token,
            address,
            num,
        });
        self
    }

    pub fn with_host_features(mut self, bytes: &[u8]) -> Self {
        self.host_features = bytes.to_vec();
        self
    }

    pub fn with_guest_features(mut self, bytes: &[u8]) -> Self {
        self.guest_features = bytes.to_vec();
        self
    }

    pub fn with_config(mut self, bytes: &[u8]) -> Self {
        self.config = bytes.to_vec();
        self
    }

    /// Bytes in each feature bitmap on the page.
    pub fn feature_len(&self) -> usize {
        self.host_features.len().max(self.guest_features.len())
    }

    /// Bytes this device takes on the page.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN
            .saturating_add(self.queues.len().saturating_mul(QUEUE_DESC_LEN))
            .saturating_add(self.feature_len().saturating_mul(2))
            .saturating_add(self.config.len())
    }
}

/// Why a synthetic page could not be built. `index` is the device's
/// position in the builder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LegacyBuildError {
    /// Type 0 would end the list at this device.
    TypeZero {
        index: usize,
    },
    TooManyQueues {
        index: usize,
        count: usize,
    },
    FeaturesTooLong {
        index: usize,
        len: usize,
    },
    ConfigTooLong {
        index: usize,
        len: usize,
    },
    /// The devices plus the terminator byte need `needed` bytes.
    PageTooSmall {
        needed: usize,
        page_len: usize,
    },
}

impl uDisplay for LegacyBuildError {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match *self {
            LegacyBuildError::TypeZero { index } => ufmt::uwrite!(
                f,
                "legacy page device {}: type 0 is the terminator, not a device",
                index
            ),
            LegacyBuildError::TooManyQueues { index, count } => ufmt::uwrite!(
                f,
                "legacy page device {}: {} queues, at most 255 fit",
                index,
                count
            ),
            LegacyBuildError::FeaturesTooLong { index, len } => ufmt::uwrite!(
                f,
                "legacy page device {}: {} feature bytes, at most 255 fit",
                index,
                len
            ),
            LegacyBuildError::ConfigTooLong { index, len } => ufmt::uwrite!(
                f,
                "legacy page device {}: {} config bytes, at most 255 fit",
                index,
                len
            ),
            LegacyBuildError::PageTooSmall { needed, page_len } => ufmt::uwrite!(
                f,
                "legacy page: the devices and terminator need {} bytes, the page has {}",
                needed,
                page_len
            ),
        }
    }
}

/// Builds a device page: the devices in order from offset 0, then zeros
/// (so the byte after the last device is the terminator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyPageBuilder {
    page_len: usize,
    devices: Vec<LegacyDeviceSpec>,
}

impl Default for LegacyPageBuilder {
    fn default() -> Self {
        Self::new(PAGE_SIZE)
    }
}

impl LegacyPageBuilder {
    pub fn new(page_len: usize) -> Self {
        LegacyPageBuilder {
            page_len,
            devices: Vec::new(),
        }
    }

    pub fn device(mut self, spec: LegacyDeviceSpec) -> Self {
        self.devices.push(spec);
        self
    }

    pub fn push(&mut self, spec: LegacyDeviceSpec) -> &mut Self {
        self.devices.push(spec);
        self
    }

    pub fn devices(&self) -> &[LegacyDeviceSpec] {
        &self.devices
    }

    /// Bytes the devices and the terminator take, after checking that every
    /// count fits its byte.
    pub fn needed_len(&self) -> Result<usize, LegacyBuildError> {
        let mut total = 1usize; // the terminator
        for (index, d) in self.devices.iter().enumerate() {
            counts(index, d)?;
            total = total.saturating_add(d.encoded_len());
        }
        Ok(total)
    }

    /// The page, `page_len` bytes long.
    pub fn build(&self) -> Result<Vec<u8>, LegacyBuildError> {
        let needed = self.needed_len()?;
        let too_small = LegacyBuildError::PageTooSmall {
            needed,
            page_len: self.page_len,
        };
        if needed > self.page_len {
            return Err(too_small);
        }
        let mut page = alloc::vec![0u8; self.page_len];
        let mut w = Writer {
            page: &mut page,
            pos: 0,
        };
        for (index, d) in self.devices.iter().enumerate() {
            let (num_vq, feature_len, config_len) = counts(index, d)?;
            let ok = w.put(&[d.device_type, num_vq, feature_len, config_len, d.status])
                && d.queues.iter().all(|q| {
                    w.put(&q.token.to_be_bytes())
                        && w.put(&q.address.to_be_bytes())
                        && w.put(&q.num.to_be_bytes())
                        && w.put(&[0; QUEUE_PAD])
                })
                && w.put_padded(&d.host_features, usize::from(feature_len))
                && w.put_padded(&d.guest_features, usize::from(feature_len))
                && w.put(&d.config);
            if !ok {
                return Err(too_small);
            }
        }
        Ok(page)
    }
}

/// The three counts of a device's header.
fn counts(index: usize, d: &LegacyDeviceSpec) -> Result<(u8, u8, u8), LegacyBuildError> {
    if d.device_type == 0 {
        return Err(LegacyBuildError::TypeZero { index });
    }
    let count = d.queues.len();
    let num_vq =
        u8::try_from(count).map_err(|_| LegacyBuildError::TooManyQueues { index, count })?;
    let len = d.feature_len();
    let feature_len =
        u8::try_from(len).map_err(|_| LegacyBuildError::FeaturesTooLong { index, len })?;
    let len = d.config.len();
    let config_len =
        u8::try_from(len).map_err(|_| LegacyBuildError::ConfigTooLong { index, len })?;
    Ok((num_vq, feature_len, config_len))
}

/// Bounds-checked sequential writes; false when the bytes do not fit.
struct Writer<'a> {
    page: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> bool {
        let Some(end) = self.pos.checked_add(bytes.len()) else {
            return false;
        };
        match self.page.get_mut(self.pos..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.pos = end;
                true
            }
            None => false,
        }
    }

    /// `bytes` then zeros up to `len` (the page is already zero).
    fn put_padded(&mut self, bytes: &[u8], len: usize) -> bool {
        let Some(end) = self.pos.checked_add(len) else {
            return false;
        };
        bytes.len() <= len && self.put(bytes) && end <= self.page.len() && {
            self.pos = end;
            true
        }
    }
}
