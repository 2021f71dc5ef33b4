//! Virtqueues, driver side: the split ring (virtio 1.x and the legacy
//! single-area layout) and the packed ring.
//!
//! A ring is plain memory that the device reads and writes behind our back,
//! so every access to it is volatile, in the ring's byte order, and ordered
//! by fences where the spec asks for a barrier. Nothing the device writes is
//! trusted: ids, lengths, indexes and flags are checked against our own
//! shadow state, and the shadow (never the descriptor table, which a broken
//! device could overwrite) decides which descriptors are free.
//!
//! The code is pure: addresses are used directly as pointers, which is right
//! on s390x with DAT off (physical = virtual) and in the host tests.

mod common;
pub mod packed;
pub mod split;

pub use common::*;
pub use packed::{packed_layout, packed_layout_spaced, PackedLayout, PackedQueue};
pub use split::{split_layout, split_layout_spaced, SplitLayout, SplitQueue};

#[cfg(test)]
mod tests;
