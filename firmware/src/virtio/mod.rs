//! Virtio: device identities and the transports the firmware knows about.
//!
//! Everything here but the CCW transport is pure logic over plain bytes, so
//! it builds and is unit-tested on the host as well as on s390x.

#[cfg(target_arch = "s390x")]
pub mod ccw;
pub mod devices;
#[cfg(target_arch = "s390x")]
pub mod indicators;
#[cfg(target_arch = "s390x")]
pub mod legacy;
pub mod queue;
pub mod transport;

pub use zvtest_contract::virtio::{ids, legacy_page, ring};
