//! Device drivers: each knows its device's protocol (queues, request
//! layouts, configuration fields, feature bits) over any [`Transport`],
//! and nothing about checks; the suites hold the expectations.
//!
//! [`Transport`]: super::transport::Transport

pub mod balloon;
pub mod blk;
pub mod crypto;
pub mod fs;
pub mod gpu;
pub mod input;
pub mod mem;
pub mod net;
pub mod order;
pub mod p9;
pub mod rng;
pub mod scsi;
pub mod serial;
