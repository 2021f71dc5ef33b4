//! Device drivers: each knows its device's protocol (queues, request
//! layouts, configuration fields, feature bits) over any [`Transport`],
//! and nothing about checks; the suites hold the expectations.
//!
//! [`Transport`]: super::transport::Transport

pub mod balloon;
pub mod blk;
pub mod gpu;
pub mod net;
pub mod order;
pub mod rng;
pub mod scsi;
pub mod serial;
