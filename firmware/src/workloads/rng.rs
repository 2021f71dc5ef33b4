//! virtio-rng traffic for the stress engine: requests of device-writable
//! bytes only, each filled with its own canary before the device answers.
//! The device writes random bytes, so an answer is judged by what it left
//! of the canary: the reported range overwritten (bar chance matches),
//! every byte past it untouched. Pure, host-tested.

use crate::format;
use crate::judge::{canary, entropy_fill};
use crate::virtio::stress::{Plan, Rng, Workload};
use alloc::string::String;

/// The shortest and longest request (bytes).
pub const MIN_LEN: u32 = 8;
pub const MAX_LEN: u32 = 256;

/// One request: its length and the seed of its canary.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    pub len: u32,
    pub canary: u64,
}

/// Entropy requests of [`MIN_LEN`]..=[`MAX_LEN`] bytes (the engine cuts
/// them into elements).
#[derive(Default)]
pub struct Entropy;

impl Workload for Entropy {
    type Req = Request;
    const PRIMES: bool = true;

    fn plan(&mut self, _n: u64, rng: &mut Rng) -> Plan<Request> {
        let len = rng.range(u64::from(MIN_LEN), u64::from(MAX_LEN)) as u32;
        Plan {
            req: Request {
                len,
                canary: rng.next_u64(),
            },
            readable: 0,
            writable: len,
            cuts: [0, 0],
            whole: [(0, 0); 2],
        }
    }

    fn conflicts(&self, _: &Request, _: &Request) -> bool {
        false
    }

    fn fill(&mut self, _: &Request, _: &mut [u8]) {}

    fn prime(&mut self, req: &Request, writable: &mut [u8]) {
        for (i, b) in writable.iter_mut().enumerate() {
            *b = canary(req.canary, i);
        }
    }

    fn check(&mut self, req: &Request, written: &[u8], used_len: u32) -> Result<u64, String> {
        // The device answers only with bytes to give (at least one).
        if used_len == 0 {
            return Err(format!(
                "a {}-byte request answered with 0 bytes written (at least 1 expected)",
                req.len
            ));
        }
        entropy_fill(written, used_len as usize, req.canary).map_err(|e| {
            format!(
                "a {}-byte request (canary seed {}): {}",
                req.len,
                crate::fmt::Hex(req.canary),
                e.as_str()
            )
        })?;
        Ok(u64::from(used_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn primed(req: &Request) -> alloc::vec::Vec<u8> {
        let mut b = alloc::vec![0u8; req.len as usize];
        Entropy.prime(req, &mut b);
        b
    }

    /// Bytes a working device writes: none equal to the canary.
    fn random_over(b: &mut [u8], req: &Request, n: usize) {
        for (i, x) in b[..n].iter_mut().enumerate() {
            *x = canary(req.canary, i) ^ (1 + (i as u8 % 255));
        }
    }

    #[test]
    fn plans_stay_in_bounds_and_differ() {
        let mut lens = alloc::collections::BTreeSet::new();
        for n in 0..500 {
            let mut rng = Rng::for_request(7, 1, n);
            let p = Entropy.plan(n, &mut rng);
            assert_eq!((p.readable, p.writable), (0, p.req.len));
            assert!((MIN_LEN..=MAX_LEN).contains(&p.req.len));
            lens.insert(p.req.len);
        }
        assert!(lens.len() > 100, "lengths vary: {}", lens.len());
    }

    #[test]
    fn an_honest_answer_passes_and_lies_fail() {
        let req = Request {
            len: 200,
            canary: 0x1234_5678_9abc,
        };
        // All written, or a prefix written and reported.
        for n in [200usize, 100, 1] {
            let mut b = primed(&req);
            random_over(&mut b, &req, n);
            assert_eq!(Entropy.check(&req, &b, n as u32), Ok(n as u64), "{n}");
        }
        // Reported more than written.
        let mut b = primed(&req);
        random_over(&mut b, &req, 100);
        let e = Entropy.check(&req, &b, 200).unwrap_err();
        assert!(e.contains("still hold the canary"), "{e}");
        // Written past the reported length.
        let mut b = primed(&req);
        random_over(&mut b, &req, 150);
        let e = Entropy.check(&req, &b, 100).unwrap_err();
        assert!(e.contains("byte 100 past the reported length 100"), "{e}");
        // Nothing reported.
        let e = Entropy.check(&req, &primed(&req), 0).unwrap_err();
        assert!(e.contains("0 bytes written"), "{e}");
    }
}
