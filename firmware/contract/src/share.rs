//! Shared directories (virtio-9p, virtio-fs): the seeded tree the runner
//! lays out for a share, the content of every file in it, and the files
//! the firmware writes on a scratch share — one definition for the
//! firmware, which reads and checks, and the runner, which lays out and
//! checks after the run.
//!
//! A share is only written to when `scratch=` names its bus id; on any
//! other share the firmware's checks are read-only.

use crate::disk::mix;
use crate::inventory::BusId;
use alloc::string::{String, ToString};

/// How the host configured a share (`shares=BUS:TAG[:tree]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareConfig {
    pub bus: BusId,
    /// The mount tag (9p) or file system tag (virtio-fs) the device reports.
    pub tag: String,
    /// The runner laid out [`tree`] of `seed=` at the share's root.
    pub tree: bool,
    /// virtio-fs: the request queues the device was given
    /// (`:queues=N`; None: QEMU's default, 1).
    pub queues: Option<u16>,
}

impl ShareConfig {
    /// `BUS:TAG[:tree]`; a tag is 1 to 36 characters without `:`, `,` or
    /// blanks (virtio-fs's tag field is 36 bytes).
    pub fn parse(item: &str) -> Option<Self> {
        let mut parts = item.split(':');
        let bus = crate::inventory::parse_bus_id(parts.next()?)?;
        let tag = parts.next()?;
        if tag.is_empty()
            || tag.len() > 36
            || !tag.bytes().all(|b| b.is_ascii_graphic() && b != b',')
        {
            return None;
        }
        let mut tree = false;
        let mut queues = None;
        for word in parts {
            match word {
                "tree" if !tree => tree = true,
                w if w.starts_with("queues=") && queues.is_none() => {
                    let n: u16 = w["queues=".len()..].parse().ok()?;
                    if n == 0 {
                        return None;
                    }
                    queues = Some(n);
                }
                _ => return None,
            }
        }
        Some(ShareConfig {
            bus,
            tag: tag.to_string(),
            tree,
            queues,
        })
    }

    /// The item as `shares=` takes it.
    pub fn item(&self) -> String {
        let mut s = alloc::format!("{}:{}", self.bus, self.tag);
        if self.tree {
            s.push_str(":tree");
        }
        if let Some(n) = self.queues {
            s.push_str(&alloc::format!(":queues={}", n));
        }
        s
    }
}

/// What an entry of the tree is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// A regular file of this many bytes, its content [`byte`] of its path.
    File(u64),
    /// A symbolic link to this target (relative to the link's directory).
    Symlink(&'static str),
}

/// One entry of the seeded tree: its path from the share's root (`/`
/// separated, parents listed before children) and kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: &'static str,
    pub kind: Kind,
    /// Permission bits the runner sets (files and directories).
    pub mode: u32,
}

/// The directory the firmware writes into on a scratch share; the runner
/// checks what is in it after the run (and nothing else may change).
pub const OUT_DIR: &str = "zvtest-out";

/// A large file: reads at random offsets and sizes across it.
pub const LARGE: &str = "large.bin";
pub const LARGE_SIZE: u64 = 4 << 20;

/// The tree (fixed shape; only the file contents depend on the seed).
pub const TREE: &[Entry] = &[
    Entry {
        path: "empty",
        kind: Kind::File(0),
        mode: 0o644,
    },
    Entry {
        path: "hello.txt",
        kind: Kind::File(100),
        mode: 0o644,
    },
    Entry {
        path: "odd.bin",
        kind: Kind::File(4097),
        mode: 0o600,
    },
    Entry {
        path: LARGE,
        kind: Kind::File(LARGE_SIZE),
        mode: 0o444,
    },
    Entry {
        path: "dir1",
        kind: Kind::Dir,
        mode: 0o755,
    },
    Entry {
        path: "dir1/a.bin",
        kind: Kind::File(8192),
        mode: 0o644,
    },
    Entry {
        path: "dir1/dir2",
        kind: Kind::Dir,
        mode: 0o750,
    },
    Entry {
        path: "dir1/dir2/b.bin",
        kind: Kind::File(65_537),
        mode: 0o640,
    },
    Entry {
        path: "dir1/dir2/c.txt",
        kind: Kind::File(1),
        mode: 0o644,
    },
    Entry {
        path: "link",
        kind: Kind::Symlink("dir1/a.bin"),
        mode: 0o777,
    },
];

/// The entries directly in directory `dir` ("" for the root), by name.
pub fn children(dir: &str) -> impl Iterator<Item = &'static Entry> + '_ {
    TREE.iter().filter(move |e| parent(e.path) == dir)
}

/// The directory part of `path` ("" at the root).
pub fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

/// The last component of `path`.
pub fn name(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[i + 1..])
}

/// A 64-bit key of a path (FNV-1a), so every file has its own stream.
pub fn path_key(path: &str) -> u64 {
    path.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The 8-byte word `index` of the file at `path` under `seed`.
pub fn word(seed: u64, path: &str, index: u64) -> u64 {
    mix(seed ^ mix(path_key(path)) ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// The byte at `offset` of the file at `path` under `seed`.
pub fn byte(seed: u64, path: &str, offset: u64) -> u8 {
    word(seed, path, offset / 8).to_be_bytes()[(offset % 8) as usize]
}

/// Fills `out` with the content at `offset` of the file at `path`.
pub fn fill(seed: u64, path: &str, offset: u64, out: &mut [u8]) {
    let key = path_key(path);
    let mut i = 0;
    while i < out.len() {
        let at = offset + i as u64;
        let w = mix(seed ^ mix(key) ^ (at / 8).wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_be_bytes();
        let from = (at % 8) as usize;
        let n = (8 - from).min(out.len() - i);
        out[i..i + n].copy_from_slice(&w[from..from + n]);
        i += n;
    }
}

/// The first offset where `got` differs from the content at `offset` of
/// the file at `path`, with the expected byte.
pub fn first_difference(seed: u64, path: &str, offset: u64, got: &[u8]) -> Option<(u64, u8)> {
    let mut want = [0u8; 256];
    for (c, chunk) in got.chunks(want.len()).enumerate() {
        let at = offset + (c * want.len()) as u64;
        let want = &mut want[..chunk.len()];
        fill(seed, path, at, want);
        if let Some(i) = chunk.iter().zip(want.iter()).position(|(a, b)| a != b) {
            return Some((at + i as u64, want[i]));
        }
    }
    None
}

/// A file the firmware writes on a scratch share: `OUT_DIR/<device>-<n>`
/// (the device's short name, e.g. `9p` or `fs`), content [`byte`] of that
/// path, so the runner needs nothing but the seed to check it.
pub fn out_path(device: &str, n: u32) -> String {
    // ufmt's format: the firmware links no `core::fmt` formatting.
    crate::format!("{}/{}-{}", OUT_DIR, device, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn config_round_trips_and_refuses() {
        let c = ShareConfig::parse("fe.0.000a:zvtest:tree").unwrap();
        assert_eq!(c.tag, "zvtest");
        assert!(c.tree);
        assert_eq!(ShareConfig::parse(&c.item()).unwrap(), c);
        assert!(!ShareConfig::parse("fe.0.0010:fs").unwrap().tree);
        let q = ShareConfig::parse("fe.0.0010:fs:tree:queues=2").unwrap();
        assert_eq!(q.queues, Some(2));
        assert_eq!(q.item(), "fe.0.0010:fs:tree:queues=2");
        for bad in [
            "",
            "fe.0.000a",
            "fe.0.000a:",
            "fe.0.000a:a b",
            "fe.0.000a:t:tree:tree",
            "fe.0.000a:t:scratch",
            "fe.0.0010:t:queues=0",
            "fe.0.0010:t:queues=1:queues=2",
            "zz:t",
            "fe.0.000a:0123456789012345678901234567890123456",
        ] {
            assert_eq!(ShareConfig::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn tree_is_well_formed() {
        for (i, e) in TREE.iter().enumerate() {
            let p = parent(e.path);
            assert!(
                p.is_empty() || TREE[..i].iter().any(|d| d.path == p && d.kind == Kind::Dir),
                "{} before its parent",
                e.path
            );
            assert!(
                !TREE[..i].iter().any(|d| d.path == e.path),
                "{} twice",
                e.path
            );
        }
        let root: Vec<&str> = children("").map(|e| name(e.path)).collect();
        assert_eq!(
            root,
            ["empty", "hello.txt", "odd.bin", LARGE, "dir1", "link"]
        );
        assert_eq!(children("dir1/dir2").count(), 2);
    }

    #[test]
    fn content_is_seeded_per_path_and_offset() {
        let mut a = [0u8; 37];
        fill(7, "dir1/a.bin", 5, &mut a);
        for (i, &b) in a.iter().enumerate() {
            assert_eq!(b, byte(7, "dir1/a.bin", 5 + i as u64));
        }
        assert_eq!(first_difference(7, "dir1/a.bin", 5, &a), None);
        a[20] ^= 1;
        assert_eq!(
            first_difference(7, "dir1/a.bin", 5, &a),
            Some((25, a[20] ^ 1))
        );
        let mut b = [0u8; 37];
        fill(8, "dir1/a.bin", 5, &mut b);
        assert_ne!(a[..8], b[..8]);
        fill(7, "odd.bin", 5, &mut b);
        assert_ne!(a[..8], b[..8]);
        assert_eq!(out_path("9p", 3), "zvtest-out/9p-3");
    }
}
