//! Assembles boot/ and hands the linker script to the image link.

use std::env;
use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("..");
    for f in ["linker.ld", "boot/head.S", "boot/mem.S", "boot/layout.h"] {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    // Host builds only compile the pure logic for unit tests.
    if env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("s390x") {
        return;
    }
    cc::Build::new()
        .file(root.join("boot/head.S"))
        .file(root.join("boot/mem.S"))
        .include(root.join("boot"))
        .compile("zvtest_boot");
    println!(
        "cargo:rustc-link-arg-bins=-T{}",
        root.join("linker.ld").display()
    );
}
