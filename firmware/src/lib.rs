//! zvtest firmware library.
//!
//! What the host side shares with it (command line, TAP, check names, wait
//! codes, the hypercall table, control blocks, rings) is the
//! `zvtest-contract` crate, re-exported here. The firmware's own pure logic
//! (judgments, the console line buffer, decoding) builds on every target
//! and is unit-tested on the host; everything that touches the machine is
//! under `cfg(target_arch = "s390x")`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

// What the host side shares, under the names the firmware has always used.
pub use zvtest_contract::{
    check, checks, cmdline, disk, ebcdic, fmt, format, format_fixed, glob, gpu, host, hypercalls,
    inventory, net, sccb, tap, verdict,
};

pub mod css;
pub mod decode;
pub mod dma;
pub mod host_wait;
pub mod judge;
pub mod line;
pub mod spare;
pub mod virtio;
pub mod workloads;

#[cfg(target_arch = "s390x")]
pub mod arch;
#[cfg(target_arch = "s390x")]
pub mod console;
#[cfg(target_arch = "s390x")]
pub mod deadline;
#[cfg(target_arch = "s390x")]
pub mod discovery;
#[cfg(target_arch = "s390x")]
pub mod machine;
#[cfg(target_arch = "s390x")]
pub mod memory;
#[cfg(target_arch = "s390x")]
pub mod runner;
#[cfg(target_arch = "s390x")]
pub mod smp;
#[cfg(target_arch = "s390x")]
pub mod suites;
