//! The device page of the legacy s390-virtio transport (the one KVM guests
//! used before virtio-ccw): parsing it, and building synthetic ones.
//!
//! The host put one page of memory just above guest RAM. It holds a list
//! of device descriptors packed back to back from offset 0 and ended by a
//! descriptor whose type byte is 0 (only that byte has to fit). A
//! descriptor is, with no padding anywhere and every number big-endian:
//!
//! | bytes               | contents                                          |
//! |---------------------|---------------------------------------------------|
//! | 1                   | device type (a virtio device id, see [`super::ids`]) |
//! | 1                   | `num_vq`, the number of virtqueues                |
//! | 1                   | `feature_len`, bytes in each feature bitmap       |
//! | 1                   | `config_len`, bytes of device configuration       |
//! | 1                   | status, written by the guest                      |
//! | `num_vq` × 24       | queue descriptors, see below                      |
//! | `feature_len`       | features the host offers                          |
//! | `feature_len`       | features the guest accepts (written by the guest) |
//! | `config_len`        | device-specific configuration                     |
//!
//! A queue descriptor is the token the host hands back with interrupts for
//! this queue (u64, chosen by the guest), the ring address (u64), the ring
//! size in entries (u16) and 6 bytes of padding. Queue descriptors start at
//! offset 5 of their descriptor, so they are usually not aligned: every
//! field is read byte by byte.
//!
//! Feature bitmaps number their bits from the least significant bit of the
//! first byte: bit `n` is `1 << (n % 8)` in byte `n / 8`.
//!
//! The parser takes the page as a byte slice whose length is the hard
//! bound: no input makes it read outside the slice, loop forever or panic.

use alloc::vec::Vec;
use core::ops::Range;
use ufmt::{uDisplay, uWrite, Formatter};

use super::ids;
use crate::fmt::Hex;

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
const QUEUE_PAD: usize = QUEUE_DESC_LEN - (QUEUE_NUM_AT + 2);
/// The largest ring size virtio allows.
pub const MAX_QUEUE_NUM: u16 = 32768;
/// The smallest descriptor we accept: a header and one queue.
const MIN_DESC_LEN: usize = HEADER_LEN + QUEUE_DESC_LEN;

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

/// Why a page could not be walked. Every variant names the descriptor
/// (`index`, from 0) and its page `offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LegacyPageError {
    /// A non-zero type byte whose 5-byte header does not fit in the page.
    HeaderPastEnd {
        index: usize,
        offset: usize,
        device_type: u8,
        needed: usize,
        available: usize,
    },
    /// The queues, feature bitmaps and config the header announces run past
    /// the end of the page. `needed` and `available` count from just after
    /// the header.
    BodyPastEnd {
        index: usize,
        offset: usize,
        device_type: u8,
        num_vq: u8,
        feature_len: u8,
        config_len: u8,
        needed: usize,
        available: usize,
    },
    /// The page ended where the next descriptor's type byte should be:
    /// `devices` descriptors, then nothing at `offset`.
    NoTerminator {
        devices: usize,
        offset: usize,
        page_len: usize,
    },
    /// A device with `num_vq` = 0.
    NoQueues {
        index: usize,
        offset: usize,
        device_type: u8,
    },
    /// Queue `queue` (from 0; its descriptor at `queue_offset`) has 0 entries.
    ZeroQueueSize {
        index: usize,
        offset: usize,
        device_type: u8,
        queue: usize,
        queue_offset: usize,
    },
    /// Queue `queue` has a size that is not a power of two, or is above
    /// [`MAX_QUEUE_NUM`].
    BadQueueSize {
        index: usize,
        offset: usize,
        device_type: u8,
        queue: usize,
        queue_offset: usize,
        num: u16,
    },
}

/// `descriptor 2 at offset 0x40 (type 2, blk)`
fn descriptor<W: uWrite + ?Sized>(
    f: &mut Formatter<'_, W>,
    index: usize,
    offset: usize,
    device_type: u8,
) -> Result<(), W::Error> {
    ufmt::uwrite!(
        f,
        "descriptor {} at offset {} (type {}",
        index,
        Hex(offset as u64),
        device_type
    )?;
    match ids::name(u32::from(device_type)) {
        Some(n) => ufmt::uwrite!(f, ", {})", n),
        None => f.write_str(", unknown)"),
    }
}

impl uDisplay for LegacyPageError {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        f.write_str("legacy virtio page: ")?;
        match *self {
            LegacyPageError::HeaderPastEnd {
                index,
                offset,
                device_type,
                needed,
                available,
            } => {
                descriptor(f, index, offset, device_type)?;
                ufmt::uwrite!(
                    f,
                    ": header needs {} bytes, only {} left in the page",
                    needed,
                    available
                )
            }
            LegacyPageError::BodyPastEnd {
                index,
                offset,
                device_type,
                num_vq,
                feature_len,
                config_len,
                needed,
                available,
            } => {
                descriptor(f, index, offset, device_type)?;
                ufmt::uwrite!(
                    f,
                    ": {} queues, 2 x {} feature bytes and {} config bytes need {} bytes after the header, only {} left in the page",
                    num_vq,
                    feature_len,
                    config_len,
                    needed,
                    available
                )
            }
            LegacyPageError::NoTerminator {
                devices,
                offset,
                page_len,
            } => ufmt::uwrite!(
                f,
                "no terminator (type 0) in the {}-byte page: {} descriptors, then the page ends at offset {}",
                page_len,
                devices,
                Hex(offset as u64)
            ),
            LegacyPageError::NoQueues {
                index,
                offset,
                device_type,
            } => {
                descriptor(f, index, offset, device_type)?;
                f.write_str(" has no virtqueues (num_vq 0)")
            }
            LegacyPageError::ZeroQueueSize {
                index,
                offset,
                device_type,
                queue,
                queue_offset,
            } => {
                descriptor(f, index, offset, device_type)?;
                ufmt::uwrite!(
                    f,
                    ": queue {} (at offset {}) has 0 entries",
                    queue,
                    Hex(queue_offset as u64)
                )
            }
            LegacyPageError::BadQueueSize {
                index,
                offset,
                device_type,
                queue,
                queue_offset,
                num,
            } => {
                descriptor(f, index, offset, device_type)?;
                ufmt::uwrite!(
                    f,
                    ": queue {} (at offset {}) has {} entries: ",
                    queue,
                    Hex(queue_offset as u64),
                    num
                )?;
                if num > MAX_QUEUE_NUM {
                    ufmt::uwrite!(f, "more than the maximum {}", MAX_QUEUE_NUM)
                } else {
                    f.write_str("not a power of two")
                }
            }
        }
    }
}

/// Bounds-checked sequential reads from a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn be_u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    fn be_u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }
}

/// Walks a device page. `page.len()` (normally [`PAGE_SIZE`]) bounds the
/// walk; the devices come back in page order.
pub fn parse(page: &[u8]) -> Result<Vec<LegacyDevice>, LegacyPageError> {
    let mut devices = Vec::new();
    let mut offset = 0usize;
    // Every descriptor but the terminator takes at least MIN_DESC_LEN bytes,
    // so descriptor `k` starts at or after `k * MIN_DESC_LEN`; the one with
    // index `page.len() / MIN_DESC_LEN` can no longer be followed by another
    // type byte. The loop therefore always returns before it runs out.
    for index in 0..=page.len() / MIN_DESC_LEN {
        let Some(&device_type) = page.get(offset) else {
            return Err(LegacyPageError::NoTerminator {
                devices: index,
                offset,
                page_len: page.len(),
            });
        };
        if device_type == 0 {
            return Ok(devices);
        }
        let device = parse_one(page, index, offset, device_type)?;
        offset = device.end();
        devices.push(device);
    }
    Err(LegacyPageError::NoTerminator {
        devices: devices.len(),
        offset,
        page_len: page.len(),
    })
}

/// One descriptor with a non-zero type byte at `offset` (< page length).
fn parse_one(
    page: &[u8],
    index: usize,
    offset: usize,
    device_type: u8,
) -> Result<LegacyDevice, LegacyPageError> {
    let rest = page.get(offset..).unwrap_or(&[]);
    let mut r = Reader::new(rest);
    let header_past_end = LegacyPageError::HeaderPastEnd {
        index,
        offset,
        device_type,
        needed: HEADER_LEN,
        available: rest.len(),
    };
    let [_, num_vq, feature_len, config_len, status] =
        r.array::<HEADER_LEN>().ok_or(header_past_end)?;
    if num_vq == 0 {
        return Err(LegacyPageError::NoQueues {
            index,
            offset,
            device_type,
        });
    }

    // At most 255 * 24 + 2 * 255 + 255 bytes: no overflow is possible.
    let queues_len = usize::from(num_vq) * QUEUE_DESC_LEN;
    let body_len = queues_len + 2 * usize::from(feature_len) + usize::from(config_len);
    let body_past_end = LegacyPageError::BodyPastEnd {
        index,
        offset,
        device_type,
        num_vq,
        feature_len,
        config_len,
        needed: body_len,
        available: rest.len().saturating_sub(HEADER_LEN),
    };
    let body = r.take(body_len).ok_or_else(|| body_past_end.clone())?;
    let queues_offset = offset
        .checked_add(HEADER_LEN)
        .ok_or_else(|| body_past_end.clone())?;

    let mut b = Reader::new(body);
    let mut queues = Vec::with_capacity(usize::from(num_vq));
    for queue in 0..usize::from(num_vq) {
        let queue_offset = queues_offset + b.pos;
        let q = b
            .take(QUEUE_DESC_LEN)
            .ok_or_else(|| body_past_end.clone())?;
        let mut qr = Reader::new(q);
        let (Some(token), Some(address), Some(num)) = (qr.be_u64(), qr.be_u64(), qr.be_u16())
        else {
            return Err(body_past_end);
        };
        if num == 0 {
            return Err(LegacyPageError::ZeroQueueSize {
                index,
                offset,
                device_type,
                queue,
                queue_offset,
            });
        }
        if !num.is_power_of_two() || num > MAX_QUEUE_NUM {
            return Err(LegacyPageError::BadQueueSize {
                index,
                offset,
                device_type,
                queue,
                queue_offset,
                num,
            });
        }
        queues.push(LegacyQueue {
            offset: queue_offset,
            token,
            address,
            num,
        });
    }
    let host_features = b
        .take(usize::from(feature_len))
        .ok_or_else(|| body_past_end.clone())?;
    let guest_features = b
        .take(usize::from(feature_len))
        .ok_or_else(|| body_past_end.clone())?;
    let config = b.take(usize::from(config_len)).ok_or(body_past_end)?;
    Ok(LegacyDevice {
        index,
        offset,
        device_type,
        status,
        queues,
        host_features: host_features.to_vec(),
        guest_features: guest_features.to_vec(),
        config: config.to_vec(),
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn net() -> LegacyDeviceSpec {
        LegacyDeviceSpec::new(1)
            .with_queue(0x11, 0x10_0000, 256)
            .with_queue(0x12, 0x10_4000, 256)
            .with_host_features(&[0x21, 0x00, 0x01, 0x80])
            .with_config(&[0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
    }

    fn blk() -> LegacyDeviceSpec {
        LegacyDeviceSpec::new(2)
            .with_status(0x07)
            .with_queue(0xdead_beef_0000_0001, 0x20_0000, 128)
            .with_host_features(&[0x44])
            .with_guest_features(&[0x04])
            .with_config(&[0, 0, 0, 0, 0, 0, 0x10, 0])
    }

    fn console() -> LegacyDeviceSpec {
        LegacyDeviceSpec::new(3)
            .with_queue(1, 0x30_0000, 64)
            .with_queue(2, 0x30_2000, 64)
    }

    fn build(specs: &[LegacyDeviceSpec]) -> Vec<u8> {
        let mut b = LegacyPageBuilder::default();
        for s in specs {
            b.push(s.clone());
        }
        b.build().unwrap()
    }

    /// The spec a parsed device would be built from.
    fn spec_of(d: &LegacyDevice) -> LegacyDeviceSpec {
        LegacyDeviceSpec {
            device_type: d.device_type,
            status: d.status,
            queues: d
                .queues
                .iter()
                .map(|q| QueueSpec {
                    token: q.token,
                    address: q.address,
                    num: q.num,
                })
                .collect(),
            host_features: d.host_features.clone(),
            guest_features: d.guest_features.clone(),
            config: d.config.clone(),
        }
    }

    /// Everything a successful parse promises about the devices it returns.
    fn check_devices(page: &[u8], devs: &[LegacyDevice]) {
        let mut expect_offset = 0;
        for (i, d) in devs.iter().enumerate() {
            assert_eq!(d.index, i);
            assert_eq!(d.offset, expect_offset);
            assert!(d.end() <= page.len(), "device {i} ends past the page");
            assert!(d.len() >= MIN_DESC_LEN);
            assert!(!d.is_empty());
            let head = page.get(d.offset..d.offset + HEADER_LEN).unwrap();
            assert_eq!(head[0], d.device_type);
            assert_ne!(d.device_type, 0);
            assert_eq!(usize::from(head[1]), d.queues.len());
            assert_eq!(usize::from(head[2]), d.feature_len());
            assert_eq!(usize::from(head[3]), d.config.len());
            assert_eq!(page[d.status_offset()], d.status);
            assert_eq!(d.guest_features.len(), d.feature_len());
            assert_eq!(
                page.get(d.host_features_range()).unwrap(),
                &d.host_features[..]
            );
            assert_eq!(
                page.get(d.guest_features_range()).unwrap(),
                &d.guest_features[..]
            );
            assert_eq!(page.get(d.config_range()).unwrap(), &d.config[..]);
            assert_eq!(d.range(), d.offset..d.end());
            for (k, q) in d.queues.iter().enumerate() {
                assert_eq!(q.offset, d.queues_offset() + k * QUEUE_DESC_LEN);
                assert_eq!(q.token_offset(), q.offset);
                let b = page.get(q.offset..q.offset + QUEUE_DESC_LEN).unwrap();
                assert_eq!(u64::from_be_bytes(b[0..8].try_into().unwrap()), q.token);
                assert_eq!(u64::from_be_bytes(b[8..16].try_into().unwrap()), q.address);
                assert_eq!(u16::from_be_bytes([b[16], b[17]]), q.num);
                assert!(q.num.is_power_of_two() && q.num <= MAX_QUEUE_NUM);
            }
            expect_offset = d.end();
        }
        assert_eq!(page.get(expect_offset), Some(&0), "terminator");
    }

    #[test]
    fn only_a_terminator() {
        assert_eq!(parse(&[0u8; PAGE_SIZE]), Ok(vec![]));
        assert_eq!(parse(&[0u8]), Ok(vec![]));
        // Bytes after the terminator are never looked at.
        assert_eq!(parse(&[0, 0xff, 0xff, 0xff, 0xff, 0xff]), Ok(vec![]));
        assert_eq!(
            LegacyPageBuilder::default().build().unwrap(),
            vec![0; PAGE_SIZE]
        );
    }

    #[test]
    fn empty_slice_has_no_terminator() {
        assert_eq!(
            parse(&[]),
            Err(LegacyPageError::NoTerminator {
                devices: 0,
                offset: 0,
                page_len: 0
            })
        );
    }

    /// A page written byte by byte, independently of the builder.
    #[test]
    fn one_device_by_hand() {
        let mut page = vec![0u8; 64];
        let bytes: &[u8] = &[
            3, 1, 2, 3, 0x07, // console, 1 queue, 2 feature bytes, 3 config bytes, status
            1, 2, 3, 4, 5, 6, 7, 8, // token (at the unaligned offset 5)
            0, 0, 0, 0, 0, 0xab, 0xc0, 0, // ring address
            0x01, 0x00, // 256 entries
            0, 0, 0, 0, 0, 0, // padding
            0x05, 0x80, // host features: bits 0, 2 and 15
            0x00, 0x01, // guest features: bit 8
            0xaa, 0xbb, 0xcc, // config
        ];
        page[..bytes.len()].copy_from_slice(bytes);
        let devs = parse(&page).unwrap();
        assert_eq!(devs.len(), 1);
        let d = &devs[0];
        assert_eq!((d.index, d.offset, d.device_type, d.status), (0, 0, 3, 7));
        assert_eq!(
            d.queues,
            vec![LegacyQueue {
                offset: 5,
                token: 0x0102_0304_0506_0708,
                address: 0xab_c000,
                num: 256
            }]
        );
        assert_eq!(d.status_offset(), 4);
        assert_eq!(d.queues_offset(), 5);
        assert_eq!(d.host_features_offset(), 29);
        assert_eq!(d.guest_features_offset(), 31);
        assert_eq!(d.config_offset(), 33);
        assert_eq!(d.end(), 36);
        assert_eq!(d.len(), 36);
        assert_eq!(d.host_features_range(), 29..31);
        assert_eq!(d.guest_features_range(), 31..33);
        assert_eq!(d.config_range(), 33..36);
        assert_eq!(d.host_features, [0x05, 0x80]);
        assert_eq!(d.guest_features, [0x00, 0x01]);
        assert_eq!(d.config, [0xaa, 0xbb, 0xcc]);
        for (bit, on) in [
            (0, true),
            (1, false),
            (2, true),
            (7, false),
            (15, true),
            (16, false),
        ] {
            assert_eq!(d.has_host_feature(bit), on, "bit {bit}");
        }
        assert!(!d.has_host_feature(u32::MAX));
        check_devices(&page, &devs);

        // The builder lays out the same bytes.
        let built = LegacyPageBuilder::new(64)
            .device(
                LegacyDeviceSpec::new(3)
                    .with_status(7)
                    .with_queue(0x0102_0304_0506_0708, 0xab_c000, 256)
                    .with_host_features(&[0x05, 0x80])
                    .with_guest_features(&[0x00, 0x01])
                    .with_config(&[0xaa, 0xbb, 0xcc]),
            )
            .build()
            .unwrap();
        assert_eq!(built, page);
    }

    #[test]
    fn several_devices() {
        let specs = [
            net(),
            blk(),
            console(),
            LegacyDeviceSpec::new(4).with_queue(0, 0, 1),
        ];
        let page = build(&specs);
        assert_eq!(page.len(), PAGE_SIZE);
        let devs = parse(&page).unwrap();
        check_devices(&page, &devs);
        let types: Vec<u8> = devs.iter().map(|d| d.device_type).collect();
        assert_eq!(types, [1, 2, 3, 4]);
        // net: 5 + 2 * 24 + 2 * 4 + 6 = 67 bytes.
        assert_eq!(devs[0].len(), 67);
        assert_eq!(devs[1].offset, 67);
        assert_eq!(devs[1].status_offset(), 71);
        assert_eq!(devs[1].guest_features, [0x04]);
        assert!(devs[0].has_host_feature(0) && devs[0].has_host_feature(5));
        assert!(devs[0].has_host_feature(16) && devs[0].has_host_feature(31));
        assert!(!devs[0].has_host_feature(32));
        assert_eq!(devs[2].feature_len(), 0);
        assert!(devs[2].config.is_empty());
        assert_eq!(devs[2].config_range(), devs[2].end()..devs[2].end());
    }

    #[test]
    fn builder_round_trip() {
        let big = LegacyDeviceSpec::new(26)
            .with_status(0xff)
            .with_queue(u64::MAX, u64::MAX - 1, MAX_QUEUE_NUM)
            .with_host_features(&[0xff; 255])
            .with_guest_features(&[0x5a; 255])
            .with_config(&[0xee; 255]);
        for specs in [
            vec![],
            vec![net()],
            vec![blk(), blk(), blk()],
            vec![console(), net(), blk(), big.clone()],
            vec![big],
        ] {
            let page = build(&specs);
            let devs = parse(&page).unwrap();
            check_devices(&page, &devs);
            let back: Vec<LegacyDeviceSpec> = devs.iter().map(spec_of).collect();
            // The page always holds both bitmaps at full length.
            let padded: Vec<LegacyDeviceSpec> = specs
                .iter()
                .map(|s| {
                    let mut s = s.clone();
                    let n = s.feature_len();
                    s.host_features.resize(n, 0);
                    s.guest_features.resize(n, 0);
                    s
                })
                .collect();
            assert_eq!(back, padded);
        }
    }

    #[test]
    fn builder_pads_feature_bitmaps() {
        let spec = LegacyDeviceSpec::new(2)
            .with_queue(0, 0, 8)
            .with_host_features(&[1])
            .with_guest_features(&[2, 3, 4]);
        assert_eq!(spec.feature_len(), 3);
        assert_eq!(spec.encoded_len(), 5 + 24 + 6);
        let page = build(&[spec]);
        let d = &parse(&page).unwrap()[0];
        assert_eq!(d.host_features, [1, 0, 0]);
        assert_eq!(d.guest_features, [2, 3, 4]);
    }

    #[test]
    fn driver_writes_in_place() {
        let mut page = build(&[net(), blk()]);
        let devs = parse(&page).unwrap();
        let d = &devs[1];
        page[d.status_offset()] = 0x0f;
        let guest = &mut page[d.guest_features_range()];
        guest.fill(0);
        assert!(set_feature_bit(guest, 6));
        assert!(!set_feature_bit(guest, 8));
        assert!(!set_feature_bit(guest, u32::MAX));
        let t = d.queues[0].token_offset();
        page[t..t + 8].copy_from_slice(&0x1234u64.to_be_bytes());

        let again = parse(&page).unwrap();
        assert_eq!(again[0], devs[0]);
        assert_eq!(again[1].status, 0x0f);
        assert_eq!(again[1].guest_features, [0x40]);
        assert!(feature_bit(&again[1].guest_features, 6));
        assert_eq!(again[1].queues[0].token, 0x1234);
        assert_eq!(again[1].host_features, devs[1].host_features);
    }

    #[test]
    fn feature_bits() {
        let mut bm = [0u8; 2];
        assert!(!feature_bit(&bm, 0));
        for bit in [0, 3, 9, 15] {
            assert!(set_feature_bit(&mut bm, bit));
        }
        assert_eq!(bm, [0x09, 0x82]);
        assert!(feature_bit(&bm, 9) && !feature_bit(&bm, 10));
        assert!(!feature_bit(&bm, 16) && !feature_bit(&[], 0));
    }

    /// The terminator needs only its type byte, even in the page's last byte.
    #[test]
    fn terminator_in_last_byte() {
        let spec = console();
        let len = spec.encoded_len() + 1;
        let page = LegacyPageBuilder::new(len).device(spec).build().unwrap();
        assert_eq!(page.len(), len);
        let devs = parse(&page).unwrap();
        assert_eq!(devs.len(), 1);
        assert_eq!(devs[0].end(), len - 1);
    }

    /// Cut a page at every byte of a descriptor: each field in turn is the
    /// one that runs past the end.
    #[test]
    fn truncated_at_every_field() {
        let first = blk();
        let second = net(); // 67 bytes: body is 62
        let page = build(&[first.clone(), second]);
        let at = first.encoded_len();
        for cut in 0..=at + 67 + 1 {
            let got = parse(&page[..cut]);
            let (index, offset, rel) = if cut < at {
                (0, 0, cut)
            } else {
                (1, at, cut - at)
            };
            let device_type = if index == 0 { 2 } else { 1 };
            let body_len = if index == 0 { at - 5 } else { 62 };
            let want = match rel {
                0 => Err(LegacyPageError::NoTerminator {
                    devices: index,
                    offset: cut,
                    page_len: cut,
                }),
                1..=4 => Err(LegacyPageError::HeaderPastEnd {
                    index,
                    offset,
                    device_type,
                    needed: 5,
                    available: rel,
                }),
                r if r < body_len + 5 => {
                    let d = if index == 0 { blk() } else { net() };
                    Err(LegacyPageError::BodyPastEnd {
                        index,
                        offset,
                        device_type,
                        num_vq: d.queues.len() as u8,
                        feature_len: d.feature_len() as u8,
                        config_len: d.config.len() as u8,
                        needed: body_len,
                        available: rel - 5,
                    })
                }
                _ if cut == at + 67 => Err(LegacyPageError::NoTerminator {
                    devices: 2,
                    offset: cut,
                    page_len: cut,
                }),
                _ => {
                    let devs = got.clone().unwrap();
                    check_devices(&page[..cut], &devs);
                    Ok(devs)
                }
            };
            assert_eq!(got, want, "cut at {cut}");
        }
    }

    fn header_page(len: usize, header: [u8; 5]) -> Vec<u8> {
        let mut page = vec![0u8; len];
        page[..5].copy_from_slice(&header);
        // A valid first queue where there is room for one.
        if len >= 5 + 24 {
            page[5 + 16] = 1;
        }
        page
    }

    #[test]
    fn huge_counts_run_past_the_page() {
        let cases = [
            // (page length, header, needed after the header)
            (PAGE_SIZE, [1, 255, 0, 0, 0], 255 * 24),
            (100, [1, 1, 255, 0, 0], 24 + 2 * 255),
            (100, [1, 1, 0, 255, 0], 24 + 255),
            (PAGE_SIZE, [9, 255, 255, 255, 0], 255 * 24 + 3 * 255),
        ];
        for (len, h, needed) in cases {
            let got = parse(&header_page(len, h));
            assert_eq!(
                got,
                Err(LegacyPageError::BodyPastEnd {
                    index: 0,
                    offset: 0,
                    device_type: h[0],
                    num_vq: h[1],
                    feature_len: h[2],
                    config_len: h[3],
                    needed,
                    available: len - 5
                }),
                "{h:?}"
            );
        }
        assert!(matches!(
            parse(&[0xff; PAGE_SIZE]),
            Err(LegacyPageError::BodyPastEnd {
                needed: 6885,
                available: 4091,
                ..
            })
        ));
        // The largest bitmaps and config do fit a real page.
        let devs = parse(&header_page(PAGE_SIZE, [2, 1, 255, 255, 0])).unwrap();
        assert_eq!(devs[0].len(), 5 + 24 + 3 * 255);
    }

    #[test]
    fn no_terminator() {
        let min = LegacyDeviceSpec::new(4).with_queue(0, 0, 1);
        assert_eq!(min.encoded_len(), MIN_DESC_LEN);
        // Three minimal devices exactly filling the page.
        let page = build(&[min.clone(), min.clone(), min.clone()]);
        assert_eq!(
            parse(&page[..3 * MIN_DESC_LEN]),
            Err(LegacyPageError::NoTerminator {
                devices: 3,
                offset: 87,
                page_len: 87
            })
        );
        // The most devices a real page holds: 140 minimal ones and one of 36
        // bytes fill it exactly; with one byte less of config the last byte
        // is the terminator.
        let mut b = LegacyPageBuilder::new(PAGE_SIZE + 1);
        for _ in 0..140 {
            b.push(min.clone());
        }
        let full = b
            .clone()
            .device(min.clone().with_config(&[7; 7]))
            .build()
            .unwrap();
        assert_eq!(
            parse(&full[..PAGE_SIZE]),
            Err(LegacyPageError::NoTerminator {
                devices: 141,
                offset: PAGE_SIZE,
                page_len: PAGE_SIZE
            })
        );
        let fits = b.device(min.with_config(&[7; 6])).build().unwrap();
        let devs = parse(&fits[..PAGE_SIZE]).unwrap();
        assert_eq!(devs.len(), 141);
        check_devices(&fits[..PAGE_SIZE], &devs);
    }

    #[test]
    fn device_without_queues() {
        let page = build(&[net(), LegacyDeviceSpec::new(5).with_config(&[1, 2])]);
        assert_eq!(
            parse(&page),
            Err(LegacyPageError::NoQueues {
                index: 1,
                offset: 67,
                device_type: 5
            })
        );
        // Refused even when the rest of the header would not fit.
        assert_eq!(
            parse(&[5, 0, 0, 0, 0]),
            Err(LegacyPageError::NoQueues {
                index: 0,
                offset: 0,
                device_type: 5
            })
        );
    }

    #[test]
    fn queue_of_zero_entries() {
        let page = build(&[console().with_queue(3, 0x40_0000, 0)]);
        assert_eq!(
            parse(&page),
            Err(LegacyPageError::ZeroQueueSize {
                index: 0,
                offset: 0,
                device_type: 3,
                queue: 2,
                queue_offset: 5 + 2 * 24
            })
        );
    }

    #[test]
    fn ring_sizes() {
        for shift in 0..=15 {
            let num = 1u16 << shift;
            let page = build(&[LegacyDeviceSpec::new(2).with_queue(0, 0, num)]);
            assert_eq!(parse(&page).unwrap()[0].queues[0].num, num);
        }
        for num in [
            3,
            6,
            100,
            255,
            257,
            1000,
            32767,
            32769,
            0x8001,
            0xc000,
            u16::MAX,
        ] {
            let page = build(&[
                blk(),
                LegacyDeviceSpec::new(2)
                    .with_queue(0, 0, 16)
                    .with_queue(0, 0, num),
            ]);
            let offset = blk().encoded_len();
            assert_eq!(
                parse(&page),
                Err(LegacyPageError::BadQueueSize {
                    index: 1,
                    offset,
                    device_type: 2,
                    queue: 1,
                    queue_offset: offset + 5 + 24,
                    num
                }),
                "num {num}"
            );
        }
    }

    #[test]
    fn error_messages() {
        let msg = |e: LegacyPageError| crate::format!("{}", e);
        assert_eq!(
            msg(LegacyPageError::HeaderPastEnd {
                index: 3,
                offset: 0xffe,
                device_type: 2,
                needed: 5,
                available: 2
            }),
            "legacy virtio page: descriptor 3 at offset 0xffe (type 2, blk): header needs 5 bytes, only 2 left in the page"
        );
        assert_eq!(
            msg(LegacyPageError::BodyPastEnd {
                index: 0,
                offset: 0,
                device_type: 200,
                num_vq: 255,
                feature_len: 1,
                config_len: 2,
                needed: 6124,
                available: 4091
            }),
            "legacy virtio page: descriptor 0 at offset 0x0 (type 200, unknown): 255 queues, 2 x 1 feature bytes and 2 config bytes need 6124 bytes after the header, only 4091 left in the page"
        );
        assert_eq!(
            msg(LegacyPageError::NoTerminator {
                devices: 2,
                offset: 4096,
                page_len: 4096
            }),
            "legacy virtio page: no terminator (type 0) in the 4096-byte page: 2 descriptors, then the page ends at offset 0x1000"
        );
        assert_eq!(
            msg(LegacyPageError::NoQueues {
                index: 1,
                offset: 0x43,
                device_type: 5
            }),
            "legacy virtio page: descriptor 1 at offset 0x43 (type 5, balloon) has no virtqueues (num_vq 0)"
        );
        assert_eq!(
            msg(LegacyPageError::ZeroQueueSize {
                index: 0,
                offset: 0,
                device_type: 1,
                queue: 1,
                queue_offset: 29
            }),
            "legacy virtio page: descriptor 0 at offset 0x0 (type 1, net): queue 1 (at offset 0x1d) has 0 entries"
        );
        assert_eq!(
            msg(LegacyPageError::BadQueueSize {
                index: 0,
                offset: 0,
                device_type: 3,
                queue: 0,
                queue_offset: 5,
                num: 100
            }),
            "legacy virtio page: descriptor 0 at offset 0x0 (type 3, console): queue 0 (at offset 0x5) has 100 entries: not a power of two"
        );
        assert!(msg(LegacyPageError::BadQueueSize {
            index: 0,
            offset: 0,
            device_type: 3,
            queue: 0,
            queue_offset: 5,
            num: 40000
        })
        .ends_with("has 40000 entries: more than the maximum 32768"));
    }

    #[test]
    fn builder_errors() {
        let one = |spec: LegacyDeviceSpec| {
            LegacyPageBuilder::default()
                .device(net())
                .device(spec)
                .build()
        };
        assert_eq!(
            one(LegacyDeviceSpec::new(0).with_queue(0, 0, 1)),
            Err(LegacyBuildError::TypeZero { index: 1 })
        );
        let mut many = LegacyDeviceSpec::new(1);
        many.queues = vec![
            QueueSpec {
                token: 0,
                address: 0,
                num: 1
            };
            256
        ];
        assert_eq!(
            one(many),
            Err(LegacyBuildError::TooManyQueues {
                index: 1,
                count: 256
            })
        );
        assert_eq!(
            one(LegacyDeviceSpec::new(1).with_guest_features(&[0; 256])),
            Err(LegacyBuildError::FeaturesTooLong { index: 1, len: 256 })
        );
        assert_eq!(
            one(LegacyDeviceSpec::new(1).with_config(&[0; 300])),
            Err(LegacyBuildError::ConfigTooLong { index: 1, len: 300 })
        );
        let exact = net().encoded_len() + 1;
        assert!(LegacyPageBuilder::new(exact).device(net()).build().is_ok());
        assert_eq!(
            LegacyPageBuilder::new(exact - 1).device(net()).build(),
            Err(LegacyBuildError::PageTooSmall {
                needed: exact,
                page_len: exact - 1
            })
        );
        assert_eq!(
            LegacyPageBuilder::new(0).build(),
            Err(LegacyBuildError::PageTooSmall {
                needed: 1,
                page_len: 0
            })
        );
        assert_eq!(
            crate::format!(
                "{}",
                LegacyBuildError::PageTooSmall {
                    needed: 68,
                    page_len: 67
                }
            ),
            "legacy page: the devices and terminator need 68 bytes, the page has 67"
        );
        assert_eq!(
            crate::format!(
                "{}",
                LegacyBuildError::TooManyQueues {
                    index: 2,
                    count: 256
                }
            ),
            "legacy page device 2: 256 queues, at most 255 fit"
        );
        assert_eq!(
            LegacyPageBuilder::default().device(net()).devices(),
            &[net()]
        );
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn byte(&mut self) -> u8 {
            self.next() as u8
        }

        /// A byte that is often one of the interesting small values.
        fn count(&mut self) -> u8 {
            match self.below(8) {
                0 => 0,
                1 => 255,
                2..=5 => self.below(4) as u8,
                _ => self.byte(),
            }
        }

        fn ring_size(&mut self) -> u16 {
            match self.below(10) {
                0 => 0,
                1 => self.next() as u16,
                _ => 1 << self.below(16),
            }
        }
    }

    /// Pages that look roughly like device pages: plausible headers with
    /// random counts, mostly valid ring sizes, random cut and noise.
    fn plausible_page(rng: &mut XorShift) -> Vec<u8> {
        let len = match rng.below(4) {
            0 => PAGE_SIZE,
            _ => rng.below(400) as usize,
        };
        let mut page = vec![0u8; len];
        let mut at = 0;
        while at < len && rng.below(6) != 0 {
            let (num_vq, fl, cl) = (rng.count() % 5, rng.count() % 9, rng.count() % 17);
            let head = [rng.byte() | 1, num_vq, fl, cl, rng.byte()];
            for (k, b) in head.iter().enumerate() {
                if let Some(p) = page.get_mut(at + k) {
                    *p = *b;
                }
            }
            for q in 0..usize::from(num_vq) {
                let qa = at + 5 + q * 24;
                let num = rng.ring_size().to_be_bytes();
                for k in 0..16 {
                    if let Some(p) = page.get_mut(qa + k) {
                        *p = rng.byte();
                    }
                }
                for (k, b) in num.iter().enumerate() {
                    if let Some(p) = page.get_mut(qa + 16 + k) {
                        *p = *b;
                    }
                }
            }
            let body = usize::from(num_vq) * 24 + 2 * usize::from(fl) + usize::from(cl);
            for k in 0..2 * usize::from(fl) + usize::from(cl) {
                if let Some(p) = page.get_mut(at + 5 + usize::from(num_vq) * 24 + k) {
                    *p = rng.byte();
                }
            }
            at += 5 + body;
        }
        for _ in 0..rng.below(3) {
            if len > 0 {
                let i = rng.below(len as u64) as usize;
                page[i] = rng.byte();
            }
        }
        page
    }

    fn check_outcome(page: &[u8], got: &Result<Vec<LegacyDevice>, LegacyPageError>) {
        match got {
            Ok(devs) => check_devices(page, devs),
            Err(LegacyPageError::NoTerminator {
                offset, page_len, ..
            }) => {
                assert_eq!((*offset, *page_len), (page.len(), page.len()));
            }
            Err(LegacyPageError::HeaderPastEnd {
                offset, available, ..
            }) => {
                assert!(*available < HEADER_LEN && offset + available == page.len());
            }
            Err(LegacyPageError::BodyPastEnd {
                offset,
                needed,
                available,
                ..
            }) => {
                assert!(available < needed && offset + 5 + available == page.len());
            }
            Err(LegacyPageError::NoQueues { offset, .. }) => {
                assert_eq!(page.get(offset + 1), Some(&0));
            }
            Err(LegacyPageError::ZeroQueueSize { queue_offset, .. }) => {
                assert_eq!(
                    page.get(queue_offset + 16..queue_offset + 18),
                    Some(&[0u8, 0][..])
                );
            }
            Err(LegacyPageError::BadQueueSize {
                queue_offset, num, ..
            }) => {
                let b = page.get(queue_offset + 16..queue_offset + 18).unwrap();
                assert_eq!(u16::from_be_bytes([b[0], b[1]]), *num);
            }
        }
    }

    /// Many pseudo-random pages: the parser never panics, every device it
    /// returns lies inside the page, every error points inside the page,
    /// and each kind of outcome turns up.
    #[test]
    fn random_pages_never_escape() {
        let mut rng = XorShift(0x5a76_7465_7374_0001);
        let mut seen = [0usize; 7];
        for round in 0..30_000 {
            let page = match round % 3 {
                0 => {
                    let len = rng.below(300) as usize;
                    (0..len).map(|_| rng.count()).collect()
                }
                1 => plausible_page(&mut rng),
                _ => {
                    // A valid page (of up to 3 devices; its length cut at
                    // random) with a few bytes changed.
                    let pool = [net(), blk(), console()];
                    let specs: Vec<_> = (0..rng.below(4))
                        .map(|_| pool[rng.below(3) as usize].clone())
                        .collect();
                    let mut page = build(&specs);
                    page.truncate(1 + rng.below(300) as usize);
                    for _ in 0..rng.below(4) {
                        if !page.is_empty() {
                            let i = rng.below(page.len() as u64) as usize;
                            page[i] = rng.count();
                        }
                    }
                    page
                }
            };
            let got = parse(&page);
            check_outcome(&page, &got);
            let kind = match got {
                Ok(ref d) if d.is_empty() => 0,
                Ok(_) => 1,
                Err(LegacyPageError::NoTerminator { .. }) => 2,
                Err(LegacyPageError::HeaderPastEnd { .. }) => 3,
                Err(LegacyPageError::BodyPastEnd { .. }) => 4,
                Err(LegacyPageError::NoQueues { .. }) => 5,
                Err(_) => 6,
            };
            seen[kind] += 1;
            // Formatting never panics either.
            if let Err(e) = got {
                assert!(!crate::format!("{}", e).is_empty());
            }
        }
        assert!(seen.iter().all(|&n| n > 0), "outcomes seen: {seen:?}");
        assert!(seen[1] > 1000, "too few good pages: {seen:?}");
    }
}
