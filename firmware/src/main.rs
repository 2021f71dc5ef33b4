//! The zvtest image. Everything lives in the library; this binary only links it.
#![cfg_attr(target_arch = "s390x", no_std, no_main)]

#[cfg(target_arch = "s390x")]
use zvtest_firmware as _;

#[cfg(not(target_arch = "s390x"))]
fn main() {
    eprintln!(
        "zvtest is an s390x image: build it with `cargo xtask build`, boot it with `cargo xtask run`"
    );
    std::process::exit(2);
}
