//! Channel-subsystem control blocks.

pub mod blocks;
