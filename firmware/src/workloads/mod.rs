//! Stress traffic per device for the engine in `virtio::stress`: what
//! requests to make and what every answer must be. Pure, host-tested.

pub mod blk;
pub mod crypto;
pub mod fs;
pub mod gpu;
pub mod hostile;
pub mod p9;
pub mod rng;
pub mod scsi;
pub mod serial;
