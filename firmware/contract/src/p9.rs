//! virtio-9p's part of the shares contract: the files `p9.write` leaves
//! on a scratch share (names and sizes; their content is
//! `share::fill` of each path under `seed=`), so the runner can check
//! them after the run with nothing but the seed.

use crate::share;
use alloc::string::String;

/// The device's short name in `share::out_path`.
pub const DEVICE: &str = "9p";

/// The files `p9.write` leaves in `share::OUT_DIR`, by number: their
/// sizes (one spans many writes, one is a single byte). File 1 is written
/// under a temporary name and renamed into place.
pub const WRITTEN: [u64; 3] = [70_001, 4096, 1];

/// Where file `n` lies in the share.
pub fn written_path(n: u32) -> String {
    share::out_path(DEVICE, n)
}

/// The temporary name file `n` is written under before the rename.
pub fn temporary_name(n: u32) -> String {
    crate::format!("{}-{}.tmp", DEVICE, n)
}

/// Test only (`p9-corrupt=N@OFFSET`): the firmware writes byte OFFSET of
/// file N inverted, to prove the runner's check of written files fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corrupt {
    pub file: u32,
    pub offset: u64,
}

impl Corrupt {
    /// `N@OFFSET`, N a file of [`WRITTEN`] and OFFSET inside it.
    pub fn parse(v: &str) -> Option<Self> {
        let (n, off) = v.split_once('@')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(n) || !digits(off) {
            return None;
        }
        let file: u32 = n.parse().ok()?;
        let offset: u64 = off.parse().ok()?;
        (offset < *WRITTEN.get(file as usize)?).then_some(Corrupt { file, offset })
    }

    pub fn item(&self) -> String {
        crate::format!("{}@{}", self.file, self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_parses_inside_the_files_only() {
        let c = Corrupt::parse("0@100").unwrap();
        assert_eq!((c.file, c.offset), (0, 100));
        assert_eq!(Corrupt::parse(&c.item()), Some(c));
        for bad in ["", "0", "@1", "0@", "3@0", "2@1", "+0@1", "0@-1", "0@70001"] {
            assert_eq!(Corrupt::parse(bad), None, "{bad}");
        }
        assert_eq!(written_path(2), "zvtest-out/9p-2");
        assert_eq!(temporary_name(1), "9p-1.tmp");
    }
}
