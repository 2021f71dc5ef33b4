//! Scratch disks: what an image holds before a run (`cargo xtask disk`),
//! which parts a run may write and with what, and what the image must
//! hold after it.
//!
//! Every byte of the image is a function of the seed and its own offset,
//! so a byte in the wrong place, a lost write or a stale one shows as a
//! mismatch at that offset:
//!
//! - Bytes 0..32 are the header: [`MAGIC`], the seed and the image size
//!   (both big-endian). The firmware writes to a disk only if it finds
//!   this header with the seed and size it was told: a user's own disk,
//!   named as scratch by mistake, is left alone.
//! - Every other byte of the image holds pattern A ([`Pattern::Before`]).
//! - The image is cut in [`STRIPE`]-byte stripes. Some of them, chosen
//!   from the seed ([`writable_stripe`]), are the only places a run
//!   writes, and it writes them whole with pattern B
//!   ([`Pattern::After`]). Stripe 0 (the header's) never is one.
//!
//! After a complete run every byte of a writable stripe holds pattern B
//! and every other byte what it held before; [`first_mismatch`] says where
//! that is not so.

use crate::inventory::{parse_bus_id, BusId};
use crate::number::{digits, size_text, size_value};
use alloc::string::String;
use alloc::vec::Vec;
use ufmt::{uDisplay, uWrite, Formatter};

pub use zvtest_pattern::*;

/// A disk the host configured: a virtio-blk device, or one LUN of a
/// virtio-scsi controller. Written `fe.0.0001` or `fe.0.0006/0/1`
/// (bus id / target / LUN).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DiskId {
    pub bus: BusId,
    /// SCSI target and LUN; None for a virtio-blk device, and in
    /// `scratch=` for every LUN of a controller.
    pub lun: Option<(u8, u16)>,
}

impl DiskId {
    /// Whether `self`, as named in `scratch=`, covers `disk`.
    pub fn covers(&self, disk: &DiskId) -> bool {
        self.bus == disk.bus && (self.lun.is_none() || self.lun == disk.lun)
    }
}

impl core::str::FromStr for DiskId {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let mut parts = s.split('/');
        let bus = parse_bus_id(parts.next().ok_or(())?).ok_or(())?;
        let lun = match (parts.next(), parts.next(), parts.next()) {
            (None, _, _) => None,
            (Some(t), Some(l), None) => Some((
                u8::try_from(digits(t, 10).ok_or(())?).map_err(|_| ())?,
                u16::try_from(digits(l, 10).ok_or(())?).map_err(|_| ())?,
            )),
            _ => return Err(()),
        };
        Ok(DiskId { bus, lun })
    }
}

impl uDisplay for DiskId {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        ufmt::uwrite!(f, "{}", self.bus)?;
        if let Some((t, l)) = self.lun {
            ufmt::uwrite!(f, "/{}/{}", t, l)?;
        }
        Ok(())
    }
}

impl core::fmt::Display for DiskId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.bus)?;
        if let Some((t, l)) = self.lun {
            write!(f, "/{t}/{l}")?;
        }
        Ok(())
    }
}

/// How the host configured a disk (`disks=` item
/// `ID:SIZE[:bs=N][:queues=N][:ro][:null][:serial=WORD]`): the firmware holds
/// the device to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskConfig {
    pub id: DiskId,
    /// Bytes.
    pub size: u64,
    /// Logical block size (QEMU's `logical_block_size`).
    pub block_size: u32,
    /// Request queues (QEMU's `num-queues` of virtio-blk).
    pub queues: u16,
    pub read_only: bool,
    /// A device that keeps nothing (QEMU's `null-co`): no header, reads
    /// unchecked; written only if also named scratch.
    pub null: bool,
    /// What GET_ID / the unit serial number must answer.
    pub serial: Option<String>,
}

impl DiskConfig {
    pub fn new(id: DiskId, size: u64) -> Self {
        DiskConfig {
            id,
            size,
            block_size: 512,
            queues: 1,
            read_only: false,
            null: false,
            serial: None,
        }
    }

    /// Parses one `disks=` item.
    pub fn parse(item: &str) -> Option<Self> {
        let mut fields = item.split(':');
        let id: DiskId = fields.next()?.parse().ok()?;
        let size = size_value(fields.next()?)?;
        let mut d = DiskConfig::new(id, size);
        let mut seen: Vec<&str> = Vec::new();
        for attr in fields {
            let (key, value) = attr.split_once('=').unwrap_or((attr, ""));
            if seen.contains(&key) {
                return None;
            }
            seen.push(key);
            match (key, value) {
                ("bs", v) => {
                    d.block_size = u32::try_from(digits(v, 10)?).ok()?;
                    if !d.block_size.is_power_of_two() || !(512..=65536).contains(&d.block_size) {
                        return None;
                    }
                }
                ("queues", v) => {
                    d.queues = u16::try_from(digits(v, 10)?).ok().filter(|&q| q > 0)?
                }
                ("ro", "") => d.read_only = true,
                ("null", "") => d.null = true,
                ("serial", v) if valid_serial(v) => d.serial = Some(String::from(v)),
                _ => return None,
            }
        }
        Some(d)
    }

    /// The item [`DiskConfig::parse`] reads back as `self`.
    pub fn item(&self) -> String {
        let mut s = crate::format!("{}:{}", self.id, size_text(self.size).as_str());
        if self.block_size != 512 {
            s.push_str(&crate::format!(":bs={}", self.block_size));
        }
        if self.queues != 1 {
            s.push_str(&crate::format!(":queues={}", self.queues));
        }
        if self.read_only {
            s.push_str(":ro");
        }
        if self.null {
            s.push_str(":null");
        }
        if let Some(serial) = &self.serial {
            s.push_str(":serial=");
            s.push_str(serial);
        }
        s
    }
}

/// A serial number QEMU passes through unchanged and the command line can
/// carry: 1 to 20 letters, digits, `-` and `_`.
pub fn valid_serial(s: &str) -> bool {
    (1..=20).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_items_read_back() {
        let d = DiskConfig::parse("fe.0.0006/0/1:64M:bs=4096:queues=4:ro:serial=zv-1").unwrap();
        assert_eq!(d.id.lun, Some((0, 1)));
        assert_eq!(
            (d.size, d.block_size, d.queues, d.read_only),
            (64 << 20, 4096, 4, true)
        );
        assert_eq!(d.serial.as_deref(), Some("zv-1"));
        assert_eq!(DiskConfig::parse(&d.item()), Some(d));
        let plain = DiskConfig::parse("fe.0.0001:1000").unwrap();
        assert_eq!(plain, DiskConfig::new("fe.0.0001".parse().unwrap(), 1000));
        assert_eq!(plain.item(), "fe.0.0001:1000");
        for bad in [
            "fe.0.0001",
            "fe.0.0001:0",
            "fe.0.0001:64M:bs=1000",
            "fe.0.0001:64M:ro:ro",
            "fe.0.0001:64M:queues=0",
            "fe.0.0001:64M:serial=a b",
            "fe.0.0001:64M:serial=",
            "fe.0.0001:64M:rw",
            "fe.0.0001/1:64M",
            "fe.0.0001/1/2/3:64M",
            "fe.0.0001:-64M",
        ] {
            assert_eq!(DiskConfig::parse(bad), None, "{bad}");
        }
        let all: DiskId = "fe.0.0006".parse().unwrap();
        let one: DiskId = "fe.0.0006/0/1".parse().unwrap();
        assert!(all.covers(&one) && one.covers(&one));
        assert!(!one.covers(&"fe.0.0006/0/2".parse().unwrap()));
    }

    #[test]
    fn bytes_words_and_fills_agree() {
        let seed = 0x1234;
        let mut buf = [0u8; 100];
        for start in [0u64, 1, 7, 8, 4093] {
            fill(seed, Pattern::After, start, &mut buf);
            for (i, b) in buf.iter().enumerate() {
                assert_eq!(*b, byte(seed, Pattern::After, start + i as u64));
            }
        }
        // Position-dependent, seed-dependent, pattern-dependent.
        assert_ne!(
            word(seed, Pattern::Before, 1),
            word(seed, Pattern::Before, 2)
        );
        assert_ne!(
            word(seed, Pattern::Before, 1),
            word(seed + 1, Pattern::Before, 1)
        );
        assert_ne!(
            word(seed, Pattern::Before, 1),
            word(seed, Pattern::After, 1)
        );
    }

    #[test]
    fn words_run_as_fill_lays_them() {
        let mut b = vec![0u8; 2048];
        fill(5, Pattern::After, 1024, &mut b);
        for (i, w) in Words::new(5, Pattern::After, 1024).take(256).enumerate() {
            assert_eq!(w.to_be_bytes(), b[8 * i..8 * i + 8], "word {i}");
        }
    }

    #[test]
    fn mismatch_agrees_with_fill_at_any_offset() {
        let seed = 0xabc;
        let mut buf = vec![0u8; 3000];
        for start in [0u64, 3, 8, 509, 512, 4093] {
            for len in [0usize, 1, 7, 8, 9, 511, 512, 513, 3000] {
                let b = &mut buf[..len];
                fill(seed, Pattern::Before, start, b);
                assert_eq!(mismatch(seed, Pattern::Before, start, b), None);
                assert_eq!(
                    (len > 0)
                        .then(|| mismatch(seed, Pattern::After, start, b))
                        .flatten(),
                    (len > 0).then_some(0).filter(|_| {
                        // Almost surely the first byte differs between patterns.
                        byte(seed, Pattern::Before, start) != byte(seed, Pattern::After, start)
                    })
                );
                for at in [0, len / 2, len.saturating_sub(1)] {
                    if at < len {
                        b[at] ^= 4;
                        assert_eq!(
                            mismatch(seed, Pattern::Before, start, b),
                            Some(at),
                            "{start} {len} {at}"
                        );
                        b[at] ^= 4;
                    }
                }
            }
        }
        // A sector in another sector's place differs from its first word.
        let mut two = vec![0u8; 1024];
        fill(seed, Pattern::Before, 0, &mut two);
        let first = two[..512].to_vec();
        two[512..].copy_from_slice(&first);
        assert_eq!(
            mismatch(seed, Pattern::Before, 0, &two).map(|i| i / 8),
            Some(64)
        );
    }

    #[test]
    fn the_header_names_seed_and_size() {
        let size = 8 * STRIPE;
        let mut img = vec![0u8; size as usize];
        fill_image(7, size, 0, false, &mut img);
        assert_eq!(read_header(&img, 7, size), HeaderSays::Scratch);
        assert_eq!(
            read_header(&img, 8, size),
            HeaderSays::Other { seed: 7, size }
        );
        assert_eq!(read_header(&img[..31], 7, size), HeaderSays::NotScratch);
        let mut other = img.clone();
        other[3] ^= 1;
        assert_eq!(read_header(&other, 7, size), HeaderSays::NotScratch);
        assert_eq!(first_mismatch(7, size, 0, false, &img), None);
        let m = first_mismatch(7, size, 0, false, &other).unwrap();
        assert_eq!((m.offset, m.pattern), (3, None));
    }

    #[test]
    fn a_flipped_byte_is_found_where_it_is() {
        let size = 16 * STRIPE;
        let seed = 99;
        let mut img = vec![0u8; size as usize];
        fill_image(seed, size, 0, false, &mut img);
        for at in [32usize, 4095, 65536, size as usize - 1] {
            let mut bad = img.clone();
            bad[at] ^= 0x40;
            let m = first_mismatch(seed, size, 0, false, &bad).unwrap();
            assert_eq!((m.offset, m.got ^ m.expected), (at as u64, 0x40));
            assert_eq!(m.pattern, Some(Pattern::Before));
        }
        // Checked piecewise from any offset, as a verifier reading in chunks.
        assert_eq!(
            first_mismatch(seed, size, 1000, false, &img[1000..5000]),
            None
        );
    }

    #[test]
    fn after_a_run_writable_stripes_hold_b_and_nothing_else_changes() {
        let size = 64 * STRIPE + 512; // a partial last stripe is never written
        for seed in [1u64, 2, 3, 0xdead_beef] {
            let stripes: Vec<u64> = writable_stripes(seed, size).collect();
            assert!(!stripes.is_empty() && !stripes.contains(&0));
            assert!(stripes.len() < 64, "{seed}: {} of 64", stripes.len());
            assert!(stripes.iter().all(|s| (s + 1) * STRIPE <= size));
            let mut img = vec![0u8; size as usize];
            fill_image(seed, size, 0, false, &mut img);
            for &s in &stripes {
                let at = (s * STRIPE) as usize;
                fill(
                    seed,
                    Pattern::After,
                    s * STRIPE,
                    &mut img[at..at + STRIPE as usize],
                );
            }
            assert_eq!(first_mismatch(seed, size, 0, true, &img), None);
            assert!(first_mismatch(seed, size, 0, false, &img).is_some());
            // A write that never landed, and one that landed one sector off.
            let s = stripes[0];
            let mut lost = img.clone();
            let at = (s * STRIPE) as usize + 512;
            fill(seed, Pattern::Before, at as u64, &mut lost[at..at + 512]);
            let m = first_mismatch(seed, size, 0, true, &lost).unwrap();
            assert_eq!((m.offset, m.pattern), (at as u64, Some(Pattern::After)));
            let mut shifted = img.clone();
            let src = img[at..at + 512].to_vec();
            shifted[at + 512..at + 1024].copy_from_slice(&src);
            let m = first_mismatch(seed, size, 0, true, &shifted).unwrap();
            assert_eq!(m.offset / 8, (at as u64 + 512) / 8);
        }
    }
}
