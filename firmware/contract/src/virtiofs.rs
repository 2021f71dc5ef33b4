//! virtio-fs (`vhost-user-fs-ccw`): what `fs.write` leaves on a scratch
//! share, so the runner can check it after the run with nothing but the
//! seed. The files' content is `share::byte` of their path.

use crate::share::{Kind, OUT_DIR};

/// The file `fs.write` creates (under a temporary name, then renamed),
/// writes in pieces and leaves: `share::out_path("fs", 0)`.
pub const FILE: &str = "zvtest-out/fs-0";
/// Its name before the rename.
pub const FILE_TMP: &str = "fs-0.tmp";
/// Its size: not a multiple of a page, more than one write.
pub const FILE_SIZE: u64 = 20_011;
/// The directory it makes (left empty: a file made there is unlinked).
pub const DIR: &str = "zvtest-out/fs-dir";
/// The file made in [`DIR`] and unlinked again.
pub const GONE: &str = "fs-gone";

/// Everything in `OUT_DIR` after a complete `fs.write`, parents first.
pub const WRITTEN: &[(&str, Kind)] = &[(FILE, Kind::File(FILE_SIZE)), (DIR, Kind::Dir)];

/// The name of an entry of [`WRITTEN`] in `OUT_DIR`.
pub fn out_name(path: &str) -> &str {
    path.strip_prefix(OUT_DIR)
        .and_then(|p| p.strip_prefix('/'))
        .unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_lies_in_the_out_dir() {
        assert_eq!(crate::share::out_path("fs", 0), FILE);
        for (p, _) in WRITTEN {
            assert_eq!(crate::share::parent(p), OUT_DIR);
        }
        assert_eq!(out_name(DIR), "fs-dir");
    }
}
