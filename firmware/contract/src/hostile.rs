//! The hostile device: a vhost-user back-end of the runner's behind a
//! `vhost-user-fs-ccw` (QEMU serves its configuration: the tag). It
//! speaks an echo protocol, not FUSE: each chain's device-readable bytes
//! come back in its device-writable part, the used length the bytes
//! written. The firmware knows it by `shares=BUS:TAG` with this tag and
//! the tag in the device's configuration; the virtio-fs suite leaves it.

use crate::stress::Rng;
use alloc::vec::Vec;

/// The tag the runner gives the device and the firmware looks for.
pub const TAG: &str = "zv-hostile";

/// Its request queue (queue 0 is the file system's high-priority queue,
/// unused here).
pub const REQUEST_QUEUE: u16 = 1;

/// Known bytes before and after every buffer.
pub const CANARY: usize = 16;

/// Where one request's pieces lie in its memory: canary, readable part,
/// canary, canary, writable part, canary (each part 8-byte aligned).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub len: usize,
    pub read_at: usize,
    pub write_at: usize,
    pub total: usize,
}

impl Layout {
    pub fn new(len: usize) -> Self {
        let read_at = CANARY;
        let write_at = (read_at + len + CANARY).next_multiple_of(8) + CANARY;
        Layout {
            len,
            read_at,
            write_at,
            total: write_at + len + CANARY,
        }
    }

    /// The canaries' places: (offset, what the report calls it).
    pub fn canaries(&self) -> [(usize, &'static str); 4] {
        [
            (self.read_at - CANARY, "before the readable buffer"),
            (self.read_at + self.len, "after the readable buffer"),
            (self.write_at - CANARY, "before the writable buffer"),
            (self.write_at + self.len, "after the writable buffer"),
        ]
    }
}

/// The readable bytes of request `n`.
pub fn payload(seed: u64, n: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::for_request(seed, 0x4e5c, n);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_keep_canaries_apart_and_aligned() {
        for len in [1, 7, 8, 9, 1024] {
            let l = Layout::new(len);
            assert_eq!(l.write_at % 8, 0, "{len}");
            assert!(l.read_at + len + CANARY <= l.write_at - CANARY, "{len}");
            assert_eq!(l.total, l.write_at + len + CANARY);
        }
    }

    #[test]
    fn payloads_are_seeded() {
        assert_eq!(payload(1, 2, 64), payload(1, 2, 64));
        assert_ne!(payload(1, 2, 64), payload(1, 3, 64));
        assert_ne!(payload(1, 2, 64), payload(2, 2, 64));
    }
}
