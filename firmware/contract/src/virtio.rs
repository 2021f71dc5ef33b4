//! Virtio device identities, rings, and the legacy s390-virtio device page.

pub mod ids;
pub mod legacy_page;
pub mod ring;
