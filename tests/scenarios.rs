//! The QEMU boot scenarios, a module per area, in one test binary: as 21
//! binaries each built the shared helpers again and linked on its own, a
//! fifth of a clean build of the suite. Run one area with a name filter:
//! `cargo xtask test -- smp::`.

mod common;

mod balloon;
mod blk;
mod crypto;
mod discovery;
mod failure_paths;
mod gpu;
mod hercules;
mod hostile;
mod hypercalls;
mod input;
mod junit;
mod mem;
mod net;
mod p9;
mod scsi;
mod serial;
mod sigp;
mod skeleton;
mod smp;
mod smp_stress;
mod virtio;
mod virtiofs;
