//! TAP version 14, both ways: the firmware writes it ([`mod@write`]), the host
//! reads it back ([`mod@read`]); the round trip is tested on the host.

pub mod read;
pub mod write;

pub use read::*;
pub use write::{Tally, TapWriter};
