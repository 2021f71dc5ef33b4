//! `cargo xtask disk` through the built binary: an image made, verified
//! untouched, refused as not run, and a flipped byte named where it is.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn xtask(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("xtask runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn image(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("xtask-disk");
    fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn make_verify_and_find_a_flipped_byte() {
    let p = image("d.img");
    let f = p.to_str().unwrap();
    let (rc, out) = xtask(&["disk", "--seed", "0x1234", "--size", "2M", f]);
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("2097152 bytes, seed 0x1234"), "{out}");
    assert_eq!(fs::metadata(&p).unwrap().len(), 2 << 20);

    let (rc, out) = xtask(&["disk", "--verify", "--untouched", "--seed", "0x1234", f]);
    assert_eq!(rc, 0, "{out}");
    assert!(
        out.contains("2097152 bytes verified (pattern A everywhere)"),
        "{out}"
    );
    // Not what a complete run leaves: its writable stripes still hold A.
    let (rc, out) = xtask(&["disk", "--verify", "--seed", "0x1234", f]);
    assert_eq!(rc, 1, "{out}");
    assert!(out.contains("(pattern B), got"), "{out}");
    // Another seed's run would not touch it.
    let (rc, out) = xtask(&["disk", "--verify", "--untouched", "--seed", "0x1235", f]);
    assert_eq!(rc, 1, "{out}");
    assert!(out.contains("wrong header: expected seed 0x1235"), "{out}");

    let at = 1_500_000u64;
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    let mut b = [0u8];
    file.read_exact_at(&mut b, at).unwrap();
    file.write_all_at(&[!b[0]], at).unwrap();
    let (rc, out) = xtask(&["disk", "--verify", "--untouched", "--seed", "0x1234", f]);
    assert_eq!(rc, 1, "{out}");
    assert!(
        out.contains(&format!(
            "1 of 2097152 bytes differ from pattern A (untouched); the first at offset {at:#x} \
             ({at}; sector {}, stripe {}): expected {:#04x} (pattern A), got {:#04x}",
            at / 512,
            at / 65536,
            b[0],
            !b[0]
        )),
        "{out}"
    );

    // Truncated: the header's size is no longer the file's.
    file.set_len((2 << 20) - 512).unwrap();
    let (rc, out) = xtask(&["disk", "--verify", "--untouched", "--seed", "0x1234", f]);
    assert_eq!(rc, 1, "{out}");
    assert!(out.contains("truncated"), "{out}");
}
