//! The channel subsystem: control blocks as the architecture lays them out
//! (pure, host-tested) and, on s390x, the driver that enumerates
//! subchannels and runs channel programs.

pub use zvtest_contract::css::blocks;
#[cfg(target_arch = "s390x")]
pub mod channel;
pub mod program;
