//! The hostile device's echo for the stress engine: seeded device-readable
//! bytes of 1 to `max_len` bytes, and the same bytes back in as many
//! device-writable ones, the used length that count. Echoes never
//! conflict. Pure, host-tested.

use crate::format;
use crate::virtio::stress::{Plan, Rng, Workload};
use alloc::string::String;
use zvtest_contract::hostile::payload;

/// One echo: its number (the payload's stream) and length.
#[derive(Clone, Copy, Debug)]
pub struct Echo {
    pub n: u64,
    pub len: u32,
}

pub struct Echoes {
    pub seed: u64,
    /// Added to each request's number for its payload: a phase's own.
    pub base: u64,
    pub max_len: u32,
}

impl Workload for Echoes {
    type Req = Echo;

    fn plan(&mut self, n: u64, rng: &mut Rng) -> Plan<Echo> {
        let len = rng.range(1, u64::from(self.max_len) + 1) as u32;
        Plan {
            req: Echo {
                n: self.base + n,
                len,
            },
            readable: len,
            writable: len,
            cuts: [0, 0],
            whole: [(0, 0), (0, 0)],
        }
    }

    fn conflicts(&self, _: &Echo, _: &Echo) -> bool {
        false
    }

    fn fill(&mut self, req: &Echo, readable: &mut [u8]) {
        readable.copy_from_slice(&payload(self.seed, req.n, req.len as usize));
    }

    fn check(&mut self, req: &Echo, written: &[u8], used_len: u32) -> Result<u64, String> {
        if used_len != req.len {
            return Err(format!(
                "echo {}: used length: expected {}, got {}",
                req.n, req.len, used_len
            ));
        }
        let want = payload(self.seed, req.n, req.len as usize);
        if let Some(i) = (0..want.len()).find(|&i| written.get(i) != Some(&want[i])) {
            return Err(format!(
                "echo {}: byte {}: expected {}, got {} (seed {})",
                req.n,
                i,
                want[i],
                written.get(i).copied().unwrap_or(0),
                crate::fmt::Hex(self.seed)
            ));
        }
        Ok(u64::from(req.len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The echo of the planned bytes passes; a flipped byte, a short
    /// length and a long one are each named.
    #[test]
    fn echoes_are_held_to_their_bytes() {
        let mut w = Echoes {
            seed: 3,
            base: 1000,
            max_len: 64,
        };
        let mut rng = Rng::new(1);
        let p = w.plan(5, &mut rng);
        assert_eq!(p.req.n, 1005);
        assert_eq!((p.readable, p.writable), (p.req.len, p.req.len));
        let mut bytes = alloc::vec![0u8; p.req.len as usize];
        w.fill(&p.req, &mut bytes);
        assert_eq!(w.check(&p.req, &bytes, p.req.len), Ok(u64::from(p.req.len)));
        let short = w.check(&p.req, &bytes, p.req.len - 1).unwrap_err();
        assert!(
            short.starts_with("echo 1005: used length: expected"),
            "{short}"
        );
        bytes[0] ^= 1;
        let bad = w.check(&p.req, &bytes, p.req.len).unwrap_err();
        assert!(bad.starts_with("echo 1005: byte 0: expected"), "{bad}");
        assert!(bad.ends_with("(seed 0x3)"), "{bad}");
    }
}
