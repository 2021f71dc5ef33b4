//! Virtio device ids (the "device type" every transport reports) and their
//! short names.
//!
//! The numbers are those of the device-id table in the virtio 1.2
//! specification. Id 0 is reserved (it marks "no device"; the legacy
//! s390-virtio page uses it as its terminator) and has no name. Ids the
//! table does not assign give `None`; callers print them as
//! `unknown (id N)`, which [`DeviceName`] does for them.

use ufmt::{uDisplay, uWrite, Formatter};

pub const NET: u32 = 1;
pub const BLOCK: u32 = 2;
pub const CONSOLE: u32 = 3;
pub const RNG: u32 = 4;
pub const BALLOON: u32 = 5;
pub const IOMEM: u32 = 6;
pub const RPMSG: u32 = 7;
pub const SCSI: u32 = 8;
pub const NINE_P: u32 = 9;
pub const WLAN: u32 = 10;
pub const RPROC_SERIAL: u32 = 11;
pub const CAIF: u32 = 12;
pub const MEMORY_BALLOON: u32 = 13;
pub const GPU: u32 = 16;
pub const CLOCK: u32 = 17;
pub const INPUT: u32 = 18;
pub const VSOCK: u32 = 19;
pub const CRYPTO: u32 = 20;
pub const SIGNAL_DIST: u32 = 21;
pub const PSTORE: u32 = 22;
pub const IOMMU: u32 = 23;
pub const MEM: u32 = 24;
pub const SOUND: u32 = 25;
pub const FS: u32 = 26;
pub const PMEM: u32 = 27;
pub const RPMB: u32 = 28;
pub const HWSIM: u32 = 29;
pub const VIDEO_ENCODER: u32 = 30;
pub const VIDEO_DECODER: u32 = 31;
pub const SCMI: u32 = 32;
pub const NSM: u32 = 33;
pub const I2C: u32 = 34;
pub const WATCHDOG: u32 = 35;
pub const CAN: u32 = 36;
pub const PARAM_SERV: u32 = 38;
pub const AUDIO_POLICY: u32 = 39;
pub const BLUETOOTH: u32 = 40;
pub const GPIO: u32 = 41;

/// Every named id with its short name, in increasing id order.
pub const ALL: &[(u32, &str)] = &[
    (NET, "net"),
    (BLOCK, "blk"),
    (CONSOLE, "console"),
    (RNG, "rng"),
    (BALLOON, "balloon"),
    (IOMEM, "iomem"),
    (RPMSG, "rpmsg"),
    (SCSI, "scsi"),
    (NINE_P, "9p"),
    (WLAN, "wlan"),
    (RPROC_SERIAL, "rproc-serial"),
    (CAIF, "caif"),
    (MEMORY_BALLOON, "memory-balloon"),
    (GPU, "gpu"),
    (CLOCK, "clock"),
    (INPUT, "input"),
    (VSOCK, "vsock"),
    (CRYPTO, "crypto"),
    (SIGNAL_DIST, "signal-dist"),
    (PSTORE, "pstore"),
    (IOMMU, "iommu"),
    (MEM, "mem"),
    (SOUND, "sound"),
    (FS, "fs"),
    (PMEM, "pmem"),
    (RPMB, "rpmb"),
    (HWSIM, "hwsim"),
    (VIDEO_ENCODER, "video-enc"),
    (VIDEO_DECODER, "video-dec"),
    (SCMI, "scmi"),
    (NSM, "nsm"),
    (I2C, "i2c"),
    (WATCHDOG, "watchdog"),
    (CAN, "can"),
    (PARAM_SERV, "param-serv"),
    (AUDIO_POLICY, "audio-policy"),
    (BLUETOOTH, "bt"),
    (GPIO, "gpio"),
];

/// The short name of device id `id`, or `None` if the table does not
/// assign it (including the reserved id 0).
pub fn name(id: u32) -> Option<&'static str> {
    ALL.iter().find(|(n, _)| *n == id).map(|(_, s)| *s)
}

/// The id with short name `short`, the inverse of [`name`].
pub fn by_name(short: &str) -> Option<u32> {
    ALL.iter().find(|(_, s)| *s == short).map(|(n, _)| *n)
}

/// Prints a device id as its short name, or `unknown (id N)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceName(pub u32);

impl uDisplay for DeviceName {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match name(self.0) {
            Some(s) => f.write_str(s),
            None => ufmt::uwrite!(f, "unknown (id {})", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_ids() {
        let want = [
            (1, "net"),
            (2, "blk"),
            (3, "console"),
            (4, "rng"),
            (5, "balloon"),
            (8, "scsi"),
            (9, "9p"),
            (16, "gpu"),
            (18, "input"),
            (19, "vsock"),
            (20, "crypto"),
            (24, "mem"),
            (26, "fs"),
        ];
        for (id, n) in want {
            assert_eq!(name(id), Some(n), "id {id}");
            assert_eq!(by_name(n), Some(id), "name {n}");
        }
    }

    #[test]
    fn unassigned_ids_have_no_name() {
        for id in [0, 14, 15, 37, 42, 255, 256, 0xffff, u32::MAX] {
            assert_eq!(name(id), None, "id {id}");
        }
        assert_eq!(by_name("nonesuch"), None);
        assert_eq!(by_name(""), None);
    }

    #[test]
    fn table_is_sorted_and_unique() {
        for w in ALL.windows(2) {
            assert!(w[0].0 < w[1].0, "ids {} and {}", w[0].0, w[1].0);
        }
        for (i, (_, a)) in ALL.iter().enumerate() {
            assert!(!a.is_empty());
            assert!(a
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase()));
            for (_, b) in &ALL[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn display() {
        assert_eq!(crate::format!("{}", DeviceName(2)), "blk");
        assert_eq!(crate::format!("{}", DeviceName(9)), "9p");
        assert_eq!(crate::format!("{}", DeviceName(0)), "unknown (id 0)");
        assert_eq!(crate::format!("{}", DeviceName(99)), "unknown (id 99)");
    }
}
