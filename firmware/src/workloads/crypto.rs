//! virtio-crypto traffic for the stress engine: AES-128-CBC requests on
//! one data queue, each an encryption or a decryption of a seeded
//! plaintext of 1 to [`MAX_BLOCKS`] blocks under a seeded IV, on the two
//! sessions (one per direction) the suite created with the workload's
//! key. Every destination is held byte for byte to our own AES-128-CBC
//! (zvtest_contract::crypto): an encryption to the ciphertext we compute,
//! a decryption of our ciphertext to the plaintext. Pure, host-tested.

use crate::format;
use crate::virtio::devices::crypto::{
    cipher_request, status_byte, StatusCode, CIPHER_AES_CBC, CIPHER_DECRYPT, CIPHER_ENCRYPT,
    DATA_LEN, OK,
};
use crate::virtio::stress::{Plan, Rng, Workload};
use alloc::string::String;
use alloc::vec::Vec;
use zvtest_contract::crypto::{Aes128, BLOCK, KEY_LEN};

/// The longest request, in AES blocks.
pub const MAX_BLOCKS: u64 = 32;

/// One request: its direction, length, IV and the seed of its plaintext.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    pub encrypt: bool,
    pub len: u32,
    pub iv: [u8; BLOCK],
    pub data: u64,
}

/// AES-128-CBC requests on the sessions `sessions` (encrypt, decrypt)
/// made with `key`.
pub struct Cipher {
    aes: Aes128,
    sessions: [u64; 2],
    /// Test only: byte `.1` of request `.0`'s expected destination flipped.
    corrupt: Option<(u64, u32)>,
    scratch: Vec<u8>,
}

impl Cipher {
    pub fn new(key: &[u8; KEY_LEN], sessions: [u64; 2], corrupt: Option<(u64, u32)>) -> Self {
        Cipher {
            aes: Aes128::new(key),
            sessions,
            corrupt,
            scratch: Vec::new(),
        }
    }

    /// The plaintext of `req` into `out`.
    fn plaintext(req: &Request, out: &mut Vec<u8>) {
        let mut rng = Rng::new(req.data);
        out.clear();
        while out.len() < req.len as usize {
            out.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
        out.truncate(req.len as usize);
    }

    /// What the device must write before the status byte.
    fn expected(&self, req: &Request, out: &mut Vec<u8>) {
        Self::plaintext(req, out);
        if req.encrypt {
            self.aes.cbc_encrypt(&req.iv, out);
        }
    }
}

impl Workload for Cipher {
    type Req = (u64, Request);

    fn plan(&mut self, n: u64, rng: &mut Rng) -> Plan<(u64, Request)> {
        let blocks = rng.range(1, MAX_BLOCKS);
        let len = (blocks as usize * BLOCK) as u32;
        let mut iv = [0u8; BLOCK];
        iv[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        iv[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        let req = Request {
            encrypt: rng.chance(1, 2),
            len,
            iv,
            data: rng.next_u64(),
        };
        let readable = (DATA_LEN + BLOCK) as u32 + len;
        Plan {
            req: (n, req),
            readable,
            writable: len + 1,
            cuts: [0, 0],
            whole: [(0, 0); 2],
        }
    }

    fn conflicts(&self, _: &(u64, Request), _: &(u64, Request)) -> bool {
        false
    }

    fn fill(&mut self, (_, req): &(u64, Request), readable: &mut [u8]) {
        let (opcode, session) = if req.encrypt {
            (CIPHER_ENCRYPT, self.sessions[0])
        } else {
            (CIPHER_DECRYPT, self.sessions[1])
        };
        readable[..DATA_LEN].copy_from_slice(&cipher_request(
            opcode,
            CIPHER_AES_CBC,
            session,
            BLOCK as u32,
            req.len,
            req.len,
        ));
        readable[DATA_LEN..DATA_LEN + BLOCK].copy_from_slice(&req.iv);
        let mut src = core::mem::take(&mut self.scratch);
        Self::plaintext(req, &mut src);
        if !req.encrypt {
            // The device decrypts our ciphertext back to the plaintext.
            self.aes.cbc_encrypt(&req.iv, &mut src);
        }
        readable[DATA_LEN + BLOCK..].copy_from_slice(&src);
        self.scratch = src;
    }

    fn check(
        &mut self,
        (n, req): &(u64, Request),
        written: &[u8],
        used: u32,
    ) -> Result<u64, String> {
        let what = if req.encrypt { "encrypt" } else { "decrypt" };
        let status = status_byte("cipher request", written, used, req.len + 1)
            .map_err(|e| format!("{} of {} bytes: {}", what, req.len, e))?;
        if status != OK {
            return Err(format!(
                "{} of {} bytes: status {}, expected {}",
                what,
                req.len,
                StatusCode(status),
                StatusCode(OK)
            ));
        }
        let mut want = core::mem::take(&mut self.scratch);
        self.expected(req, &mut want);
        if let Some((r, o)) = self.corrupt {
            if r == *n && (o as usize) < want.len() {
                want[o as usize] ^= 0xff;
            }
        }
        let bad = want
            .iter()
            .zip(written)
            .position(|(w, g)| w != g)
            .map(|i| (i, want[i], written[i]));
        self.scratch = want;
        match bad {
            Some((i, w, g)) => Err(format!(
                "{} of {} bytes: destination offset {}: expected {}, got {}",
                what,
                req.len,
                i,
                crate::fmt::Hex(u64::from(w)),
                crate::fmt::Hex(u64::from(g))
            )),
            None => Ok(u64::from(req.len)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zvtest_contract::crypto::sp800_38a;

    fn planned(w: &mut Cipher, n: u64) -> (u64, Request) {
        let mut rng = Rng::for_request(3, 1, n);
        let p = w.plan(n, &mut rng);
        assert_eq!(p.readable, 88 + p.req.1.len);
        assert_eq!(p.writable, p.req.1.len + 1);
        p.req
    }

    /// What a right device writes: our AES over the request's source.
    fn device(req: &Request, readable: &[u8]) -> Vec<u8> {
        let aes = Aes128::new(&sp800_38a::KEY);
        let mut d = readable[88..].to_vec();
        if req.encrypt {
            aes.cbc_encrypt(&req.iv, &mut d);
        } else {
            aes.cbc_decrypt(&req.iv, &mut d);
        }
        d.push(OK as u8);
        d
    }

    #[test]
    fn plans_vary_and_a_right_answer_passes() {
        let mut w = Cipher::new(&sp800_38a::KEY, [1, 2], None);
        let mut dirs = [0; 2];
        for n in 0..200 {
            let req = planned(&mut w, n);
            assert!(req.1.len.is_multiple_of(16) && req.1.len >= 16 && req.1.len <= 512);
            dirs[usize::from(req.1.encrypt)] += 1;
            let mut r = alloc::vec![0u8; 88 + req.1.len as usize];
            w.fill(&req, &mut r);
            let session = u64::from_le_bytes(r[8..16].try_into().unwrap());
            assert_eq!(session, if req.1.encrypt { 1 } else { 2 });
            let d = device(&req.1, &r);
            assert_eq!(w.check(&req, &d, d.len() as u32), Ok(u64::from(req.1.len)));
        }
        assert!(dirs[0] > 50 && dirs[1] > 50, "{dirs:?}");
    }

    #[test]
    fn wrong_answers_name_what_is_wrong() {
        let mut w = Cipher::new(&sp800_38a::KEY, [1, 2], None);
        let req = planned(&mut w, 5);
        let mut r = alloc::vec![0u8; 88 + req.1.len as usize];
        w.fill(&req, &mut r);
        let good = device(&req.1, &r);
        let mut d = good.clone();
        d[7] ^= 1;
        let e = w.check(&req, &d, d.len() as u32).unwrap_err();
        assert!(e.contains("destination offset 7"), "{e}");
        let mut d = good.clone();
        *d.last_mut().unwrap() = 4;
        let e = w.check(&req, &d, d.len() as u32).unwrap_err();
        assert!(e.contains("status 4 (INVSESS)"), "{e}");
        let e = w.check(&req, &good, 1).unwrap_err();
        assert!(e.contains("used length 1"), "{e}");
        // The test-only corruption of one expected byte fails a right answer.
        let mut w = Cipher::new(&sp800_38a::KEY, [1, 2], Some((5, 3)));
        let e = w.check(&req, &good, good.len() as u32).unwrap_err();
        assert!(e.contains("destination offset 3"), "{e}");
    }
}
