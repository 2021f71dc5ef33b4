//! virtio-crypto's shared facts: our own AES-128 and CBC mode (the
//! reference every ciphertext the device returns is held to), the
//! published known-answer vectors, and how the host configured a crypto
//! device (`crypto=`). Pure, host-tested against FIPS-197 and
//! NIST SP 800-38A.

use crate::inventory::BusId;
use alloc::string::String;
use alloc::vec::Vec;

/// AES's block and the AES-128 key, in bytes.
pub const BLOCK: usize = 16;
pub const KEY_LEN: usize = 16;

/// The AES S-box (FIPS-197 figure 7).
const SBOX: [u8; 256] = [
    0x63, 0x7c, 0x77, 0x7b, 0xf2, 0x6b, 0x6f, 0xc5, 0x30, 0x01, 0x67, 0x2b, 0xfe, 0xd7, 0xab, 0x76,
    0xca, 0x82, 0xc9, 0x7d, 0xfa, 0x59, 0x47, 0xf0, 0xad, 0xd4, 0xa2, 0xaf, 0x9c, 0xa4, 0x72, 0xc0,
    0xb7, 0xfd, 0x93, 0x26, 0x36, 0x3f, 0xf7, 0xcc, 0x34, 0xa5, 0xe5, 0xf1, 0x71, 0xd8, 0x31, 0x15,
    0x04, 0xc7, 0x23, 0xc3, 0x18, 0x96, 0x05, 0x9a, 0x07, 0x12, 0x80, 0xe2, 0xeb, 0x27, 0xb2, 0x75,
    0x09, 0x83, 0x2c, 0x1a, 0x1b, 0x6e, 0x5a, 0xa0, 0x52, 0x3b, 0xd6, 0xb3, 0x29, 0xe3, 0x2f, 0x84,
    0x53, 0xd1, 0x00, 0xed, 0x20, 0xfc, 0xb1, 0x5b, 0x6a, 0xcb, 0xbe, 0x39, 0x4a, 0x4c, 0x58, 0xcf,
    0xd0, 0xef, 0xaa, 0xfb, 0x43, 0x4d, 0x33, 0x85, 0x45, 0xf9, 0x02, 0x7f, 0x50, 0x3c, 0x9f, 0xa8,
    0x51, 0xa3, 0x40, 0x8f, 0x92, 0x9d, 0x38, 0xf5, 0xbc, 0xb6, 0xda, 0x21, 0x10, 0xff, 0xf3, 0xd2,
    0xcd, 0x0c, 0x13, 0xec, 0x5f, 0x97, 0x44, 0x17, 0xc4, 0xa7, 0x7e, 0x3d, 0x64, 0x5d, 0x19, 0x73,
    0x60, 0x81, 0x4f, 0xdc, 0x22, 0x2a, 0x90, 0x88, 0x46, 0xee, 0xb8, 0x14, 0xde, 0x5e, 0x0b, 0xdb,
    0xe0, 0x32, 0x3a, 0x0a, 0x49, 0x06, 0x24, 0x5c, 0xc2, 0xd3, 0xac, 0x62, 0x91, 0x95, 0xe4, 0x79,
    0xe7, 0xc8, 0x37, 0x6d, 0x8d, 0xd5, 0x4e, 0xa9, 0x6c, 0x56, 0xf4, 0xea, 0x65, 0x7a, 0xae, 0x08,
    0xba, 0x78, 0x25, 0x2e, 0x1c, 0xa6, 0xb4, 0xc6, 0xe8, 0xdd, 0x74, 0x1f, 0x4b, 0xbd, 0x8b, 0x8a,
    0x70, 0x3e, 0xb5, 0x66, 0x48, 0x03, 0xf6, 0x0e, 0x61, 0x35, 0x57, 0xb9, 0x86, 0xc1, 0x1d, 0x9e,
    0xe1, 0xf8, 0x98, 0x11, 0x69, 0xd9, 0x8e, 0x94, 0x9b, 0x1e, 0x87, 0xe9, 0xce, 0x55, 0x28, 0xdf,
    0x8c, 0xa1, 0x89, 0x0d, 0xbf, 0xe6, 0x42, 0x68, 0x41, 0x99, 0x2d, 0x0f, 0xb0, 0x54, 0xbb, 0x16,
];

/// The inverse S-box, derived from [`SBOX`].
const INV_SBOX: [u8; 256] = {
    let mut inv = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        inv[SBOX[i] as usize] = i as u8;
        i += 1;
    }
    inv
};

/// Multiplication by x in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1.
fn xtime(b: u8) -> u8 {
    (b << 1) ^ (0x1b & (b >> 7).wrapping_neg())
}

/// An expanded AES-128 key: the 11 round keys.
#[derive(Clone)]
pub struct Aes128 {
    round_keys: [[u8; BLOCK]; 11],
}

impl Aes128 {
    /// The key schedule (FIPS-197 section 5.2).
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        let mut w = [[0u8; 4]; 44];
        for (i, word) in w.iter_mut().take(4).enumerate() {
            word.copy_from_slice(&key[4 * i..4 * i + 4]);
        }
        let mut rcon = 1u8;
        for i in 4..44 {
            let mut t = w[i - 1];
            if i % 4 == 0 {
                t = [
                    SBOX[t[1] as usize] ^ rcon,
                    SBOX[t[2] as usize],
                    SBOX[t[3] as usize],
                    SBOX[t[0] as usize],
                ];
                rcon = xtime(rcon);
            }
            for j in 0..4 {
                w[i][j] = w[i - 4][j] ^ t[j];
            }
        }
        let mut round_keys = [[0u8; BLOCK]; 11];
        for (r, rk) in round_keys.iter_mut().enumerate() {
            for c in 0..4 {
                rk[4 * c..4 * c + 4].copy_from_slice(&w[4 * r + c]);
            }
        }
        Aes128 { round_keys }
    }

    fn add_round_key(s: &mut [u8; BLOCK], k: &[u8; BLOCK]) {
        for (b, k) in s.iter_mut().zip(k) {
            *b ^= k;
        }
    }

    /// The state is column-major: byte `4 * c + r` is row r, column c.
    fn shift_rows(s: &mut [u8; BLOCK], inverse: bool) {
        let old = *s;
        for r in 1..4 {
            for c in 0..4 {
                let from = if inverse {
                    (c + 4 - r) % 4
                } else {
                    (c + r) % 4
                };
                s[4 * c + r] = old[4 * from + r];
            }
        }
    }

    /// MixColumns (FIPS-197 5.1.3) with xtime only: each byte becomes
    /// itself ^ (the column's XOR) ^ 2·(itself ^ its upper neighbour).
    /// The inverse first multiplies by 04·x^2 + 05 (section 5.3.3 factors
    /// as that times the forward matrix).
    fn mix_columns(s: &mut [u8; BLOCK], inverse: bool) {
        for c in s.chunks_exact_mut(4) {
            if inverse {
                let u = xtime(xtime(c[0] ^ c[2]));
                let v = xtime(xtime(c[1] ^ c[3]));
                c[0] ^= u;
                c[1] ^= v;
                c[2] ^= u;
                c[3] ^= v;
            }
            let t = c[0] ^ c[1] ^ c[2] ^ c[3];
            let a0 = c[0];
            c[0] ^= t ^ xtime(c[0] ^ c[1]);
            c[1] ^= t ^ xtime(c[1] ^ c[2]);
            c[2] ^= t ^ xtime(c[2] ^ c[3]);
            c[3] ^= t ^ xtime(c[3] ^ a0);
        }
    }

    /// Encrypts one block (FIPS-197 section 5.1).
    pub fn encrypt_block(&self, block: &mut [u8; BLOCK]) {
        Self::add_round_key(block, &self.round_keys[0]);
        for round in 1..11 {
            for b in block.iter_mut() {
                *b = SBOX[*b as usize];
            }
            Self::shift_rows(block, false);
            if round != 10 {
                Self::mix_columns(block, false);
            }
            Self::add_round_key(block, &self.round_keys[round]);
        }
    }

    /// Decrypts one block (FIPS-197 section 5.3).
    pub fn decrypt_block(&self, block: &mut [u8; BLOCK]) {
        Self::add_round_key(block, &self.round_keys[10]);
        for round in (0..10).rev() {
            Self::shift_rows(block, true);
            for b in block.iter_mut() {
                *b = INV_SBOX[*b as usize];
            }
            Self::add_round_key(block, &self.round_keys[round]);
            if round != 0 {
                Self::mix_columns(block, true);
            }
        }
    }

    /// CBC encryption of `data` in place (a whole number of blocks; a
    /// trailing partial block is left as it is).
    pub fn cbc_encrypt(&self, iv: &[u8; BLOCK], data: &mut [u8]) {
        let mut chain = *iv;
        for chunk in data.chunks_exact_mut(BLOCK) {
            let mut b = [0u8; BLOCK];
            for i in 0..BLOCK {
                b[i] = chunk[i] ^ chain[i];
            }
            self.encrypt_block(&mut b);
            chunk.copy_from_slice(&b);
            chain = b;
        }
    }

    /// CBC decryption of `data` in place (whole blocks).
    pub fn cbc_decrypt(&self, iv: &[u8; BLOCK], data: &mut [u8]) {
        let mut chain = *iv;
        for chunk in data.chunks_exact_mut(BLOCK) {
            let mut b = [0u8; BLOCK];
            b.copy_from_slice(chunk);
            let next = b;
            self.decrypt_block(&mut b);
            for i in 0..BLOCK {
                chunk[i] = b[i] ^ chain[i];
            }
            chain = next;
        }
    }
}

/// NIST SP 800-38A appendix F.2.1/F.2.2, CBC-AES128: key, IV, the four
/// plaintext blocks and the published ciphertext.
pub mod sp800_38a {
    pub const KEY: [u8; 16] = [
        0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f,
        0x3c,
    ];
    pub const IV: [u8; 16] = [
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
        0x0f,
    ];
    pub const PLAINTEXT: [u8; 64] = [
        0x6b, 0xc1, 0xbe, 0xe2, 0x2e, 0x40, 0x9f, 0x96, 0xe9, 0x3d, 0x7e, 0x11, 0x73, 0x93, 0x17,
        0x2a, 0xae, 0x2d, 0x8a, 0x57, 0x1e, 0x03, 0xac, 0x9c, 0x9e, 0xb7, 0x6f, 0xac, 0x45, 0xaf,
        0x8e, 0x51, 0x30, 0xc8, 0x1c, 0x46, 0xa3, 0x5c, 0xe4, 0x11, 0xe5, 0xfb, 0xc1, 0x19, 0x1a,
        0x0a, 0x52, 0xef, 0xf6, 0x9f, 0x24, 0x45, 0xdf, 0x4f, 0x9b, 0x17, 0xad, 0x2b, 0x41, 0x7b,
        0xe6, 0x6c, 0x37, 0x10,
    ];
    pub const CIPHERTEXT: [u8; 64] = [
        0x76, 0x49, 0xab, 0xac, 0x81, 0x19, 0xb2, 0x46, 0xce, 0xe9, 0x8e, 0x9b, 0x12, 0xe9, 0x19,
        0x7d, 0x50, 0x86, 0xcb, 0x9b, 0x50, 0x72, 0x19, 0xee, 0x95, 0xdb, 0x11, 0x3a, 0x91, 0x76,
        0x78, 0xb2, 0x73, 0xbe, 0xd6, 0xb8, 0xe3, 0xc1, 0x74, 0x3b, 0x71, 0x16, 0xe6, 0x9e, 0x22,
        0x22, 0x95, 0x16, 0x3f, 0xf1, 0xca, 0xa1, 0x68, 0x1f, 0xac, 0x09, 0x12, 0x0e, 0xca, 0x30,
        0x75, 0x86, 0xe1, 0xa7,
    ];
}

/// How the host configured a virtio-crypto device (`crypto=BUS[:queues=N]`):
/// on `cryptodev-backend-builtin` with `queues=N` (default 1). Test only:
/// `corrupt=R@O`, byte O of the expected output of `crypto.stress`'s
/// request R flipped, and `corrupt-kat=O`, byte O of the published
/// ciphertext `crypto.kat` expects flipped, to prove those checks fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CryptoConfig {
    pub bus: BusId,
    pub queues: u32,
    pub corrupt: Option<(u64, u32)>,
    pub corrupt_kat: Option<u32>,
}

/// The back-end's queue counts a scenario may give (QEMU's builtin back-end
/// takes only 1; the limit is the option's range).
pub const MAX_QUEUES: u32 = 64;

fn digits(v: &str) -> Option<u64> {
    crate::number::digits(v, 10)
}

impl CryptoConfig {
    pub fn new(bus: BusId) -> Self {
        CryptoConfig {
            bus,
            queues: 1,
            corrupt: None,
            corrupt_kat: None,
        }
    }

    /// Parses one `crypto=` item; each attribute at most once.
    pub fn parse(item: &str) -> Option<Self> {
        let mut fields = item.split(':');
        let mut c = CryptoConfig::new(fields.next()?.parse().ok()?);
        let mut seen: Vec<&str> = Vec::new();
        for field in fields {
            let (key, value) = field.split_once('=')?;
            if seen.contains(&key) {
                return None;
            }
            seen.push(key);
            match key {
                "queues" => {
                    let n = u32::try_from(digits(value)?).ok()?;
                    if !(1..=MAX_QUEUES).contains(&n) {
                        return None;
                    }
                    c.queues = n;
                }
                "corrupt" => {
                    let (r, o) = value.split_once('@')?;
                    c.corrupt = Some((digits(r)?, u32::try_from(digits(o)?).ok()?));
                }
                "corrupt-kat" => {
                    let o = u32::try_from(digits(value)?).ok()?;
                    if o as usize >= sp800_38a::CIPHERTEXT.len() {
                        return None;
                    }
                    c.corrupt_kat = Some(o);
                }
                _ => return None,
            }
        }
        Some(c)
    }

    /// The item as `crypto=` takes it.
    pub fn item(&self) -> String {
        let mut s = crate::format!("{}", self.bus);
        if self.queues != 1 {
            s.push_str(&crate::format!(":queues={}", self.queues));
        }
        if let Some((r, o)) = self.corrupt {
            s.push_str(&crate::format!(":corrupt={}@{}", r, o));
        }
        if let Some(o) = self.corrupt_kat {
            s.push_str(&crate::format!(":corrupt-kat={}", o));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fips197_appendix_c1() {
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let mut b: [u8; 16] = core::array::from_fn(|i| (i as u8) * 0x11);
        let aes = Aes128::new(&key);
        aes.encrypt_block(&mut b);
        assert_eq!(
            b,
            [
                0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4,
                0xc5, 0x5a
            ]
        );
        aes.decrypt_block(&mut b);
        assert_eq!(b, core::array::from_fn(|i| (i as u8) * 0x11));
    }

    #[test]
    fn fips197_key_expansion_last_round_key() {
        // Appendix A.1: w[40..44] of key 2b7e1516...
        let aes = Aes128::new(&sp800_38a::KEY);
        assert_eq!(
            aes.round_keys[10],
            [
                0xd0, 0x14, 0xf9, 0xa8, 0xc9, 0xee, 0x25, 0x89, 0xe1, 0x3f, 0x0c, 0xc8, 0xb6, 0x63,
                0x0c, 0xa6
            ]
        );
    }

    #[test]
    fn sp800_38a_cbc_aes128_both_ways() {
        let aes = Aes128::new(&sp800_38a::KEY);
        let mut d = sp800_38a::PLAINTEXT;
        aes.cbc_encrypt(&sp800_38a::IV, &mut d);
        assert_eq!(d, sp800_38a::CIPHERTEXT);
        aes.cbc_decrypt(&sp800_38a::IV, &mut d);
        assert_eq!(d, sp800_38a::PLAINTEXT);
        // Each prefix of blocks is the prefix of the ciphertext.
        let mut one = [0u8; 16];
        one.copy_from_slice(&sp800_38a::PLAINTEXT[..16]);
        aes.cbc_encrypt(&sp800_38a::IV, &mut one);
        assert_eq!(one[..], sp800_38a::CIPHERTEXT[..16]);
    }

    #[test]
    fn a_flipped_key_bit_changes_everything() {
        let mut key = sp800_38a::KEY;
        key[0] ^= 1;
        let mut d = sp800_38a::PLAINTEXT;
        Aes128::new(&key).cbc_encrypt(&sp800_38a::IV, &mut d);
        assert_ne!(d[..16], sp800_38a::CIPHERTEXT[..16]);
    }

    #[test]
    fn config_items_round_trip_and_refuse_nonsense() {
        let c = CryptoConfig::parse("fe.0.0009").unwrap();
        assert_eq!((c.queues, c.corrupt), (1, None));
        assert_eq!(c.item(), "fe.0.0009");
        let c = CryptoConfig::parse("fe.0.0009:queues=2:corrupt=3@17").unwrap();
        assert_eq!((c.queues, c.corrupt), (2, Some((3, 17))));
        assert_eq!(c.item(), "fe.0.0009:queues=2:corrupt=3@17");
        let c = CryptoConfig::parse("fe.0.0009:corrupt-kat=63").unwrap();
        assert_eq!(
            (c.corrupt_kat, c.item().as_str()),
            (Some(63), "fe.0.0009:corrupt-kat=63")
        );
        for bad in [
            "",
            "fe.0.0009:queues=0",
            "fe.0.0009:queues=65",
            "fe.0.0009:queues=+1",
            "fe.0.0009:queues=1:queues=1",
            "fe.0.0009:corrupt=3",
            "fe.0.0009:corrupt=a@1",
            "fe.0.0009:other=1",
            "fe.0.0009:queues",
            "fe.0.0009:corrupt-kat=64",
        ] {
            assert_eq!(CryptoConfig::parse(bad), None, "{bad}");
        }
    }
}
