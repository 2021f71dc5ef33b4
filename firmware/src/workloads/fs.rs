//! virtio-fs traffic for the stress engine: FUSE READs of one open file
//! of the seeded tree at seeded offsets and sizes, each answer decoded
//! (out header length, error, unique) and every byte held to the file's
//! content (`share::byte`). Reads never conflict. Pure, host-tested.

use crate::format;
use crate::virtio::devices::fs::{
    decode_reply, encode, read_in, InHeader, Opcode, IN_HEADER_LEN, OUT_HEADER_LEN,
};
use crate::virtio::stress::{Plan, Rng, Workload};
use alloc::string::String;
use zvtest_contract::share;

/// The bytes a READ message takes: the in header and READ's arguments.
pub const MESSAGE_LEN: u32 = IN_HEADER_LEN as u32 + 40;

/// One read: its unique, offset and size.
#[derive(Clone, Copy, Debug)]
pub struct Read {
    pub unique: u64,
    pub offset: u64,
    pub size: u32,
}

/// Reads of the file at `path` (`size` bytes, open as `fh` of node `nodeid`).
pub struct Reads {
    pub seed: u64,
    pub path: &'static str,
    pub file_size: u64,
    pub nodeid: u64,
    pub fh: u64,
    /// Added to each request's number for its unique (a queue's own range).
    pub unique_base: u64,
    /// The largest read.
    pub max_size: u32,
}

impl Workload for Reads {
    type Req = Read;

    fn plan(&mut self, n: u64, rng: &mut Rng) -> Plan<Read> {
        let size = rng.range(1, u64::from(self.max_size)) as u32;
        let size = size.min(self.file_size as u32).max(1);
        let offset = rng.below(self.file_size - u64::from(size) + 1);
        Plan {
            req: Read {
                unique: self.unique_base + n,
                offset,
                size,
            },
            readable: MESSAGE_LEN,
            writable: OUT_HEADER_LEN as u32 + size,
            cuts: [0, 0],
            // Each header in one element.
            whole: [
                (0, IN_HEADER_LEN as u32),
                (MESSAGE_LEN, MESSAGE_LEN + OUT_HEADER_LEN as u32),
            ],
        }
    }

    fn conflicts(&self, _: &Read, _: &Read) -> bool {
        false
    }

    fn fill(&mut self, req: &Read, readable: &mut [u8]) {
        let m = encode(
            &InHeader::new(Opcode::Read, req.unique, self.nodeid),
            &read_in(self.fh, req.offset, req.size),
            &[],
        );
        readable.copy_from_slice(&m);
    }

    fn check(&mut self, req: &Read, written: &[u8], used_len: u32) -> Result<u64, String> {
        let what = || {
            format!(
                "READ {} of {} bytes at {} (unique {})",
                self.path, req.size, req.offset, req.unique
            )
        };
        let r = decode_reply(written, used_len, req.unique)
            .map_err(|e| format!("{}: {}", what().as_str(), e))?;
        if r.error != 0 {
            return Err(format!("{}: error {}", what().as_str(), r.error));
        }
        if r.body.len() != req.size as usize {
            return Err(format!(
                "{}: {} bytes came, {} expected (all within the file)",
                what().as_str(),
                r.body.len(),
                req.size
            ));
        }
        if let Some((at, want)) = share::first_difference(self.seed, self.path, req.offset, r.body)
        {
            return Err(format!(
                "{}: {} offset {}: expected {}, got {} (seed {})",
                what().as_str(),
                self.path,
                at,
                crate::fmt::Hex(u64::from(want)),
                crate::fmt::Hex(u64::from(r.body[(at - req.offset) as usize])),
                crate::fmt::Hex(self.seed)
            ));
        }
        Ok(u64::from(req.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn reads() -> Reads {
        Reads {
            seed: 7,
            path: share::LARGE,
            file_size: share::LARGE_SIZE,
            nodeid: 5,
            fh: 9,
            unique_base: 1000,
            max_size: 16384,
        }
    }

    /// What a right device answers to `req`.
    fn answer(w: &Reads, req: &Read) -> Vec<u8> {
        let len = OUT_HEADER_LEN as u32 + req.size;
        let mut b = Vec::new();
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&0i32.to_le_bytes());
        b.extend_from_slice(&req.unique.to_le_bytes());
        let mut data = alloc::vec![0u8; req.size as usize];
        share::fill(w.seed, w.path, req.offset, &mut data);
        b.extend_from_slice(&data);
        b
    }

    #[test]
    fn plans_stay_in_the_file_and_messages_are_reads() {
        let mut w = reads();
        for n in 0..300 {
            let p = w.plan(n, &mut Rng::for_request(7, 1, n));
            assert!(p.req.size >= 1 && p.req.size <= 16384);
            assert!(p.req.offset + u64::from(p.req.size) <= share::LARGE_SIZE);
            assert_eq!(p.writable, 16 + p.req.size);
            let mut m = alloc::vec![0u8; p.readable as usize];
            w.fill(&p.req, &mut m);
            assert_eq!(m[4], Opcode::Read as u8);
            assert_eq!(u64::from_le_bytes(m[8..16].try_into().unwrap()), 1000 + n);
        }
    }

    #[test]
    fn a_right_answer_passes_and_wrong_ones_fail() {
        let mut w = reads();
        let req = Read {
            unique: 1001,
            offset: 4095,
            size: 300,
        };
        let good = answer(&w, &req);
        assert_eq!(w.check(&req, &good, good.len() as u32), Ok(300));
        let mut bad = good.clone();
        bad[16 + 10] ^= 1;
        let e = w.check(&req, &bad, bad.len() as u32).unwrap_err();
        assert!(e.contains("large.bin offset 4105: expected"), "{e}");
        assert!(e.contains("seed 0x7"), "{e}");
        let e = w.check(&req, &good, 20).unwrap_err();
        assert!(e.contains("out header length 316 but 20 bytes used"), "{e}");
        let other = Read {
            unique: 1002,
            ..req
        };
        let e = w.check(&other, &good, good.len() as u32).unwrap_err();
        assert!(e.contains("reply to unique 1001"), "{e}");
        let mut short = good[..100].to_vec();
        short[..4].copy_from_slice(&100u32.to_le_bytes());
        let e = w.check(&req, &short, 100).unwrap_err();
        assert!(e.contains("84 bytes came, 300 expected"), "{e}");
    }
}
