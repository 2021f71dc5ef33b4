//! Virtio device identities, rings, and the legacy s390-virtio device page.

pub mod ids;
pub mod legacy_page;
pub mod ring;

/// How long the firmware waits for a device to return a buffer (a host
/// fault that stalls a queue must outlast it to be seen).
pub const USED_TIMEOUT_US: u64 = 2_000_000;

/// What every report of a device's store outside the buffers it was
/// given begins with (the scenarios look for it on the console).
pub const WROTE_OUTSIDE: &str = "the device wrote outside the";
