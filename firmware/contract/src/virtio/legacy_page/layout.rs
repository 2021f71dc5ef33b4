//! The page's layout: offsets and sizes, the device and queue records the
//! parser produces, and the feature bitmaps.

use alloc::vec::Vec;
use core::ops::Range;

/// The size of the device page the host provides.
pub const PAGE_SIZE: usize = 4096;
/// Bytes before the queue descriptors: type, num_vq, feature_len,
/// config_len, status.
pub const HEADER_LEN: usize = 5;
/// Offset of the status byte within a descriptor.
pub const STATUS_AT: usize = 4;
/// Bytes per queue descriptor (16 bytes of fields, padded to a multiple of 8).
pub const QUEUE_DESC_LEN: usize = 24;
/// Offsets of the fields within a queue descriptor.
pub const QUEUE_TOKEN_AT: usize = 0;
pub const QUEUE_ADDRESS_AT: usize = 8;
pub const QUEUE_NUM_AT: usize = 16;
/// Padding at the end of a queue descriptor.
pub(super) const QUEUE_PAD: usize = QUEUE_DESC_LEN - (QUEUE_NUM_AT + 2);
/// The largest ring size virtio allows.
pub const MAX_QUEUE_NUM: u16 = 32768;
/// The smallest descriptor we accept: a header and one queue.
pub(super) const MIN_DESC_LEN: usize = HEADER_LEN + QUEUE_DESC_LEN;

/// One virtqueue as the page describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegacyQueue {
    /// Offset of this queue descriptor within the page.
    pub offset: usize,
    pub token: u64,
    pub address: u64,
    /// Ring size in entries: a power of two from 1 to [`MAX_QUEUE_NUM`].
    pub num: u16,
}

impl LegacyQueue {
    /// Where the guest writes its token for this queue.
    pub fn token_offset(&self) -> usize {
        self.offset + QUEUE_TOKEN_AT
    }
}

/// One device descriptor, checked to lie wholly inside the page.
///
/// The offsets are page offsets, so a driver can write the status byte and
/// the guest feature bytes in place. The byte vectors are copies taken when
/// the page was parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyDevice {
    /// Position in the list, from 0.
    pub index: usize,
    /// Offset of the descriptor (its type byte) within the page.
    pub offset: usize,
    pub device_type: u8,
    pub status: u8,
    /// At least one; at most 255.
    pub queues: Vec<LegacyQueue>,
    pub host_features: Vec<u8>,
    /// What the guest side held at parse time (zero on a fresh page).
    pub guest_features: Vec<u8>,
    pub config: Vec<u8>,
}

impl LegacyDevice {
    pub fn status_offset(&self) -> usize {
        self.offset + STATUS_AT
    }

    pub fn queues_offset(&self) -> usize {
        self.offset + HEADER_LEN
    }

    /// Bytes in each of the two feature bitmaps.
    pub fn feature_len(&self) -> usize {
        self.host_features.len()
    }

    pub fn host_features_offset(&self) -> usize {
        self.queues_offset() + self.queues.len() * QUEUE_DESC_LEN
    }

    pub fn guest_features_offset(&self) -> usize {
        self.host_features_offset() + self.feature_len()
    }

    pub fn config_offset(&self) -> usize {
        self.guest_features_offset() + self.feature_len()
    }

    /// Offset just past this descriptor: where the next one starts.
    pub fn end(&self) -> usize {
        self.config_offset() + self.config.len()
    }

    /// Length of the whole descriptor.
    pub fn len(&self) -> usize {
        self.end() - self.offset
    }

    /// Never true for a parsed device (a descriptor has a header).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn range(&self) -> Range<usize> {
        self.offset..self.end()
    }

    pub fn host_features_range(&self) -> Range<usize> {
        self.host_features_offset()..self.guest_features_offset()
    }

    pub fn guest_features_range(&self) -> Range<usize> {
        self.guest_features_offset()..self.config_offset()
    }

    pub fn config_range(&self) -> Range<usize> {
        self.config_offset()..self.end()
    }

    /// Whether the host offers feature `bit`. Bits past the bitmap are off.
    pub fn has_host_feature(&self, bit: u32) -> bool {
        feature_bit(&self.host_features, bit)
    }
}

/// Bit `bit` of a feature bitmap (see the module notes for the numbering).
/// Bits past the end of the bitmap are off.
pub fn feature_bit(bitmap: &[u8], bit: u32) -> bool {
    let Ok(byte) = usize::try_from(bit / 8) else {
        return false;
    };
    bitmap
        .get(byte)
        .is_some_and(|b| b & (1u8 << (bit % 8)) != 0)
}

/// Sets bit `bit` of a feature bitmap; false (and nothing changed) if the
/// bitmap is too short to hold it.
pub fn set_feature_bit(bitmap: &mut [u8], bit: u32) -> bool {
    let Ok(byte) = usize::try_from(bit / 8) else {
        return false;
    };
    match bitmap.get_mut(byte) {
        Some(b) => {
            *b |= 1u8 << (bit % 8);
            true
        }
        None => false,
    }
}
