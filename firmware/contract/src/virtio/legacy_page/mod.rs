//! The device page of the legacy s390-virtio transport (the one KVM guests
//! used before virtio-ccw): parsing it, and building synthetic ones.
//!
//! The host put one page of memory just above guest RAM. It holds a list
//! of device descriptors packed back to back from offset 0 and ended by a
//! descriptor whose type byte is 0 (only that byte has to fit). A
//! descriptor is, with no padding anywhere and every number big-endian:
//!
//! | bytes               | contents                                          |
//! |---------------------|---------------------------------------------------|
//! | 1                   | device type (a virtio device id, see [`super::ids`]) |
//! | 1                   | `num_vq`, the number of virtqueues                |
//! | 1                   | `feature_len`, bytes in each feature bitmap       |
//! | 1                   | `config_len`, bytes of device configuration       |
//! | 1                   | status, written by the guest                      |
//! | `num_vq` × 24       | queue descriptors, see below                      |
//! | `feature_len`       | features the host offers                          |
//! | `feature_len`       | features the guest accepts (written by the guest) |
//! | `config_len`        | device-specific configuration                     |
//!
//! A queue descriptor is the token the host hands back with interrupts for
//! this queue (u64, chosen by the guest), the ring address (u64), the ring
//! size in entries (u16) and 6 bytes of padding. Queue descriptors start at
//! offset 5 of their descriptor, so they are usually not aligned: every
//! field is read byte by byte.
//!
//! Feature bitmaps number their bits from the least significant bit of the
//! first byte: bit `n` is `1 << (n % 8)` in byte `n / 8`.
//!
//! The parser takes the page as a byte slice whose length is the hard
//! bound: no input makes it read outside the slice, loop forever or panic.

mod build;
mod layout;
mod parse;
#[cfg(test)]
mod tests;

pub use build::*;
pub use layout::*;
pub use parse::*;
