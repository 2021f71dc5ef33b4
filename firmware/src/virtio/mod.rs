//! Virtio: the transports (virtio-ccw, legacy s390-virtio), the queues,
//! and the device drivers over them.
//!
//! Everything here but the CCW transport, its indicators and the legacy
//! transport's DIAG host builds on the host too: the queues and drivers are
//! unit-tested there, and the legacy transport is driven against a model
//! host.
//!
//! A device stores into what it was given until it is reset, so nothing
//! here hands it a raw address: rings, indicators and buffers come as the
//! DMA memory they lie in, which the transport keeps until a reset has
//! completed (see `transport`).

#[cfg(target_arch = "s390x")]
pub mod ccw;
pub mod devices;
pub mod guard;
pub mod health;
#[cfg(target_arch = "s390x")]
pub mod indicators;
#[cfg(target_arch = "s390x")]
pub mod lane;
pub mod legacy;
pub mod queue;
pub mod stress;
pub mod transport;

pub use zvtest_contract::virtio::{ids, legacy_page, ring};
