//! Reading a device page: every offset and count checked against the page.

use super::layout::*;
use crate::fmt::Hex;
use crate::virtio::ids;
use alloc::vec::Vec;
use ufmt::{uDisplay, uWrite, Formatter};

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
