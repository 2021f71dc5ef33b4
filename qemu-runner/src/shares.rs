//! Shared directories on the host (virtio-9p, virtio-fs): the seeded tree
//! laid out before the run (`zvtest_contract::share::TREE`) and checked
//! after it — unchanged, and nothing but `OUT_DIR` added.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use zvtest_contract::share::{self, Kind, OUT_DIR, TREE};

/// Lays out the seeded tree of `seed` in `dir`, emptied first — only if it
/// is missing, empty or holds nothing but a tree laid out before (the
/// tree's names and `OUT_DIR`): a directory of the user's is refused, never
/// emptied.
pub fn lay_out(dir: &Path, seed: u64) -> io::Result<()> {
    if dir.exists() {
        let foreign = fs::read_dir(dir)?.flatten().find(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n != OUT_DIR && !share::children("").any(|t| t.path == n)
        });
        if let Some(e) = foreign {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} holds {:?}, which is not part of a seeded tree: not emptying a directory of the user's (give an empty or new one)",
                    dir.display(),
                    e.file_name()
                ),
            ));
        }
        fs::remove_dir_all(dir)?;
    }
    fs::create_dir_all(dir)?;
    // Directories' modes last: a read-only directory would refuse children.
    for e in TREE {
        let p = dir.join(e.path);
        match e.kind {
            Kind::Dir => fs::create_dir(&p)?,
            Kind::File(size) => {
                let mut data = vec![0u8; size as usize];
                share::fill(seed, e.path, 0, &mut data);
                fs::write(&p, &data)?;
                fs::set_permissions(&p, fs::Permissions::from_mode(e.mode))?;
            }
            Kind::Symlink(target) => std::os::unix::fs::symlink(target, &p)?,
        }
    }
    for e in TREE.iter().filter(|e| e.kind == Kind::Dir) {
        fs::set_permissions(dir.join(e.path), fs::Permissions::from_mode(e.mode))?;
    }
    Ok(())
}

/// How `dir` differs from the seeded tree of `seed`: each difference named
/// (path, what was expected, what is there). `OUT_DIR` is not looked at.
pub fn differences(dir: &Path, seed: u64) -> Vec<String> {
    let mut out = Vec::new();
    for e in TREE {
        let p = dir.join(e.path);
        let meta = match fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(err) => {
                out.push(format!("{}: expected it to exist, got {err}", e.path));
                continue;
            }
        };
        let ft = meta.file_type();
        match e.kind {
            Kind::Dir if !ft.is_dir() => out.push(format!("{}: expected a directory", e.path)),
            Kind::Symlink(target) => match fs::read_link(&p) {
                Ok(t) if t == Path::new(target) => {}
                Ok(t) => out.push(format!(
                    "{}: expected a symlink to {target}, got one to {}",
                    e.path,
                    t.display()
                )),
                Err(_) => out.push(format!("{}: expected a symlink to {target}", e.path)),
            },
            Kind::File(size) => {
                if !ft.is_file() {
                    out.push(format!("{}: expected a regular file", e.path));
                } else if meta.len() != size {
                    out.push(format!(
                        "{}: expected {size} bytes, got {}",
                        e.path,
                        meta.len()
                    ));
                } else if let Some(d) = file_difference(&p, seed, e.path) {
                    out.push(d);
                }
            }
            Kind::Dir => {}
        }
        if !matches!(e.kind, Kind::Symlink(_)) && meta.permissions().mode() & 0o7777 != e.mode {
            out.push(format!(
                "{}: expected mode {:o}, got {:o}",
                e.path,
                e.mode,
                meta.permissions().mode() & 0o7777
            ));
        }
    }
    // Nothing added beside the tree, but the firmware's own directory.
    let mut dirs = vec![String::new()];
    while let Some(d) = dirs.pop() {
        let Ok(rd) = fs::read_dir(dir.join(&d)) else {
            continue;
        };
        for ent in rd.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            let path = if d.is_empty() {
                name
            } else {
                format!("{d}/{name}")
            };
            match TREE.iter().find(|e| e.path == path) {
                Some(e) if e.kind == Kind::Dir => dirs.push(path),
                Some(_) => {}
                None if path == OUT_DIR => {}
                None => out.push(format!(
                    "{path}: not in the seeded tree (added during the run)"
                )),
            }
        }
    }
    out
}

/// Where the file at `p` first differs from the content of `path`.
fn file_difference(p: &Path, seed: u64, path: &str) -> Option<String> {
    let mut f = match fs::File::open(p) {
        Ok(f) => f,
        Err(e) => return Some(format!("{path}: {e}")),
    };
    let mut buf = vec![0u8; 64 << 10];
    let mut at = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => n,
            Err(e) => return Some(format!("{path}: {e}")),
        };
        if let Some((off, want)) = share::first_difference(seed, path, at, &buf[..n]) {
            let got = buf[(off - at) as usize];
            return Some(format!(
                "{path}: offset {off}: expected {want:#04x}, got {got:#04x} (seed {seed:#x})"
            ));
        }
        at += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("zvtest-shares-{}-{name}", std::process::id()))
    }

    /// A directory with anything but a seeded tree in it is refused and
    /// left as it was; one laid out before is laid out again.
    #[test]
    fn a_users_directory_is_never_emptied() {
        let d = dir("users");
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("thesis.tex"), b"mine").unwrap();
        let e = lay_out(&d, 1).unwrap_err();
        assert!(e.to_string().contains("thesis.tex"), "{e}");
        assert_eq!(fs::read(d.join("thesis.tex")).unwrap(), b"mine");
        fs::remove_file(d.join("thesis.tex")).unwrap();
        lay_out(&d, 1).unwrap();
        fs::create_dir(d.join(OUT_DIR)).unwrap();
        lay_out(&d, 2).unwrap();
        assert_eq!(differences(&d, 2), Vec::<String>::new());
        assert!(!d.join(OUT_DIR).exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_fresh_tree_has_no_difference() {
        let d = dir("fresh");
        lay_out(&d, 42).unwrap();
        fs::create_dir(d.join(OUT_DIR)).unwrap();
        fs::write(d.join(OUT_DIR).join("x"), b"x").unwrap();
        assert_eq!(differences(&d, 42), Vec::<String>::new());
        fs::remove_dir_all(&d).unwrap();
    }

    /// Each kind of change is named: a flipped byte (with its offset), a
    /// wrong size, a mode, a removed file, a moved link, an added file, and
    /// another seed.
    #[test]
    fn every_change_is_named() {
        let d = dir("changed");
        lay_out(&d, 42).unwrap();
        let p = d.join("dir1/dir2/b.bin");
        let mut data = fs::read(&p).unwrap();
        data[40_000] ^= 0x10;
        fs::write(&p, &data).unwrap();
        fs::write(d.join("hello.txt"), b"short").unwrap();
        fs::set_permissions(d.join("odd.bin"), fs::Permissions::from_mode(0o666)).unwrap();
        fs::remove_file(d.join("empty")).unwrap();
        fs::remove_file(d.join("link")).unwrap();
        std::os::unix::fs::symlink("odd.bin", d.join("link")).unwrap();
        fs::write(d.join("dir1/new"), b"").unwrap();
        let diffs = differences(&d, 42);
        let want = [
            "dir1/dir2/b.bin: offset 40000: expected",
            "hello.txt: expected 100 bytes, got 5",
            "odd.bin: expected mode 600, got 666",
            "empty: expected it to exist",
            "link: expected a symlink to dir1/a.bin, got one to odd.bin",
            "dir1/new: not in the seeded tree",
        ];
        for w in want {
            assert!(
                diffs.iter().any(|d| d.starts_with(w)),
                "{w} not in {diffs:?}"
            );
        }
        assert_eq!(diffs.len(), want.len(), "{diffs:?}");
        lay_out(&d, 42).unwrap();
        assert!(differences(&d, 43).len() >= 5);
        fs::remove_dir_all(&d).unwrap();
    }
}
