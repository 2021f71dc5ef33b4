//! The contract between the zvtest firmware and its host side, in one
//! place: `no_std` + `alloc`, pure, unit-tested on the host, used by the
//! firmware, qemu-runner and the scenarios.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod balloon;
pub mod check;
pub mod checks;
pub mod cmdline;
pub mod crypto;
pub mod css;
pub mod disk;
pub mod ebcdic;
pub mod fmt;
pub mod glob;
pub mod gpu;
pub mod host;
pub mod hostile;
pub mod hypercalls;
pub mod input;
pub mod inventory;
pub mod lock;
pub mod net;
pub mod number;
pub mod p9;
pub mod sccb;
pub mod serial;
pub mod share;
pub mod sigp;
pub mod smp;
pub mod stress;
pub mod tap;
pub mod verdict;
pub mod virtio;
pub mod virtiofs;
