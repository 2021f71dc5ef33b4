//! zvtest firmware library.
//!
//! The pure logic (command line, TAP writer, check bookkeeping, SCCB and host
//! decoding) builds on every target and is unit-tested on the host. Everything
//! that touches the machine is under `cfg(target_arch = "s390x")`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod check;
pub mod checks;
pub mod cmdline;
pub mod css;
pub mod decode;
pub mod ebcdic;
pub mod fmt;
pub mod glob;
pub mod host;
pub mod hypercalls;
pub mod inventory;
pub mod judge;
pub mod line;
pub mod sccb;
pub mod tap;
pub mod verdict;
pub mod virtio;

#[cfg(target_arch = "s390x")]
pub mod arch;
#[cfg(target_arch = "s390x")]
pub mod console;
#[cfg(target_arch = "s390x")]
pub mod discovery;
#[cfg(target_arch = "s390x")]
pub mod memory;
#[cfg(target_arch = "s390x")]
pub mod runner;
#[cfg(target_arch = "s390x")]
pub mod suites;
