//! virtio-9p traffic for the stress engine: Tread requests across the
//! seeded tree's files (fids opened beforehand), each with its own tag,
//! at seeded offsets and sizes; every answer's header, tag, count and
//! every byte of its data checked against the seeded content. Pure,
//! host-tested.

use crate::fmt::Hex;
use crate::format;
use crate::virtio::devices::p9::{self, RREAD_HEADER, TREAD_LEN};
use crate::virtio::stress::{Plan, Rng, Workload};
use alloc::string::String;
use alloc::vec::Vec;
use zvtest_contract::share;

/// A file open for reading on the device.
#[derive(Clone, Copy, Debug)]
pub struct OpenFile {
    pub fid: u32,
    pub path: &'static str,
    pub size: u64,
}

/// One read: which file, where, how much, under which tag.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    pub file: usize,
    pub offset: u64,
    pub count: u32,
    pub tag: u16,
}

/// Reads of up to `max_count` bytes across `files` (content of `seed`).
pub struct Reads {
    pub files: Vec<OpenFile>,
    pub seed: u64,
    pub max_count: u32,
}

impl Reads {
    /// The tag of request `n`: distinct among any 65535 in a row, never
    /// NOTAG.
    pub fn tag(n: u64) -> u16 {
        (n % u64::from(p9::NOTAG)) as u16
    }
}

impl Workload for Reads {
    type Req = Request;

    fn plan(&mut self, n: u64, rng: &mut Rng) -> Plan<Request> {
        let file = rng.below(self.files.len() as u64) as usize;
        let size = self.files[file].size;
        // Now and then at or past the end: an empty answer is checked too.
        let offset = rng.range(0, size);
        let count = rng.range(1, u64::from(self.max_count.max(1))) as u32;
        Plan {
            req: Request {
                file,
                offset,
                count,
                tag: Self::tag(n),
            },
            readable: TREAD_LEN as u32,
            writable: RREAD_HEADER as u32 + count,
            cuts: [0, 0],
            whole: [(0, 0); 2],
        }
    }

    fn conflicts(&self, _: &Request, _: &Request) -> bool {
        false
    }

    fn fill(&mut self, req: &Request, readable: &mut [u8]) {
        let f = &self.files[req.file];
        p9::tread_into(readable, req.tag, f.fid, req.offset, req.count);
    }

    fn check(&mut self, req: &Request, written: &[u8], used_len: u32) -> Result<u64, String> {
        let f = &self.files[req.file];
        let what = |e: &str| {
            format!(
                "{} (fid {}, tag {}): Tread of {} bytes at offset {}: {}",
                f.path, f.fid, req.tag, req.count, req.offset, e
            )
        };
        let data = p9::answer(written, used_len as usize, p9::ty::TREAD, req.tag)
            .and_then(p9::rread)
            .map_err(|e| what(format!("{}", e).as_str()))?;
        // The server reads on to the count or the end of the file.
        let want = f.size.saturating_sub(req.offset).min(u64::from(req.count));
        if data.len() as u64 != want {
            return Err(what(
                format!("{} bytes came, {} expected", data.len(), want).as_str(),
            ));
        }
        if let Some((at, byte)) = share::first_difference(self.seed, f.path, req.offset, data) {
            let got = data[(at - req.offset) as usize];
            return Err(what(
                format!(
                    "byte at offset {}: expected {}, got {} (seed {})",
                    at,
                    Hex(u64::from(byte)),
                    Hex(u64::from(got)),
                    Hex(self.seed)
                )
                .as_str(),
            ));
        }
        Ok(want)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn reads() -> Reads {
        Reads {
            files: vec![
                OpenFile {
                    fid: 10,
                    path: "odd.bin",
                    size: 4097,
                },
                OpenFile {
                    fid: 11,
                    path: "empty",
                    size: 0,
                },
            ],
            seed: 7,
            max_count: 512,
        }
    }

    /// What a right server answers.
    fn serve(w: &Reads, req: &Request) -> Vec<u8> {
        let f = &w.files[req.file];
        let n = f.size.saturating_sub(req.offset).min(u64::from(req.count)) as usize;
        let mut data = vec![0u8; n];
        share::fill(w.seed, f.path, req.offset, &mut data);
        p9::Msg::new(p9::ty::TREAD + 1, req.tag)
            .u32(n as u32)
            .bytes(&data)
            .finish()
    }

    #[test]
    fn plans_stay_in_bounds_and_tags_differ() {
        let mut w = reads();
        let mut tags = alloc::collections::BTreeSet::new();
        for n in 0..300 {
            let mut rng = Rng::for_request(1, 2, n);
            let p = w.plan(n, &mut rng);
            assert!(p.req.count >= 1 && p.req.count <= 512);
            assert!(p.req.offset <= w.files[p.req.file].size);
            assert_eq!(p.writable, 11 + p.req.count);
            assert!(tags.insert(p.req.tag));
            let mut b = [0u8; TREAD_LEN];
            w.fill(&p.req, &mut b);
            assert_eq!(b[4], p9::ty::TREAD);
        }
        assert_eq!(Reads::tag(65535), 0);
    }

    #[test]
    fn right_answers_pass_and_wrong_ones_are_named() {
        let mut w = reads();
        let req = Request {
            file: 0,
            offset: 4000,
            count: 300,
            tag: 5,
        };
        let mut a = serve(&w, &req);
        a.resize(11 + 300, 0);
        assert_eq!(w.check(&req, &a, 11 + 97), Ok(97));
        let empty = Request {
            file: 1,
            offset: 0,
            count: 9,
            tag: 6,
        };
        assert_eq!(w.check(&empty, &serve(&w, &empty), 11), Ok(0));
        // A flipped byte: path, offset, expected, got, seed.
        let mut bad = a.clone();
        bad[11 + 20] ^= 0xff;
        let e = w.check(&req, &bad, 11 + 97).unwrap_err();
        assert!(
            e.contains("odd.bin") && e.contains("byte at offset 4020: expected"),
            "{e}"
        );
        assert!(e.contains("(seed 0x7)"), "{e}");
        // Short data, another tag, a count past the message.
        let short = serve(&w, &Request { count: 50, ..req });
        let e = w.check(&req, &short, short.len() as u32).unwrap_err();
        assert!(e.contains("50 bytes came, 97 expected"), "{e}");
        let e = w
            .check(&Request { tag: 9, ..req }, &a, 11 + 97)
            .unwrap_err();
        assert!(e.contains("answer tag 5, expected 9"), "{e}");
        let mut long = a.clone();
        long[7] = 200;
        let e = w.check(&req, &long, 11 + 97).unwrap_err();
        assert!(e.contains("past the message"), "{e}");
    }
}
