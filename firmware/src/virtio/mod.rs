//! Virtio: device identities and the transports the firmware knows about.
//!
//! Everything here is pure logic over plain bytes, so it builds and is
//! unit-tested on the host as well as on s390x.

pub mod ids;
pub mod legacy_page;
