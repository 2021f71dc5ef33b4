//! Virtio: the transports (virtio-ccw, legacy s390-virtio), the queues,
//! and the device drivers over them.
//!
//! Everything here but the CCW transport, its indicators and the legacy
//! transport's DIAG host builds on the host too: the queues and drivers are
//! unit-tested there, and the legacy transport is driven against a model
//! host.

#[cfg(target_arch = "s390x")]
pub mod ccw;
pub mod devices;
#[cfg(target_arch = "s390x")]
pub mod indicators;
pub mod legacy;
pub mod queue;
pub mod transport;

pub use zvtest_contract::virtio::{ids, legacy_page, ring};
