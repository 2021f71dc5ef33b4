//! The parts of xtask that its integration tests drive directly.

pub mod signals;
