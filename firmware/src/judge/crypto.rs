//! How the crypto checks decide: what QEMU's builtin crypto back-end
//! announces through the device, and where two byte strings differ.

use crate::fmt::Hex;
use crate::format;
use crate::virtio::devices::crypto::{self as dev, CryptoSpace};
use alloc::string::String;
use alloc::vec::Vec;

/// What cryptodev-backend-builtin announces through the device, for a
/// back-end of `queues` queues on QEMU `version` (None: unknown).
/// backends/cryptodev-builtin.c: services CIPHER, HASH, MAC (and AKCIPHER:
/// always before QEMU 8.0, from 8.0 where the build's crypto library does
/// RSA), cipher AES-CBC only, hash SHA-1, keys of up to 64 (cipher) and
/// 512 (authentication) bytes, `max_size` LONG_MAX less the size of the
/// back-end's operation record on a 64-bit host (24 bytes before 8.0, 64
/// from 8.0, when it gained a queue index, a callback, its argument and a
/// list link: include/sysemu/cryptodev.h, include/system/cryptodev.h),
/// and from QEMU 11.0 1 MiB (the fix of CVE-2025-14876, which stable
/// and distribution builds of 8.0 to 10.x may carry: there either value);
/// hw/virtio/virtio-crypto.c: `max_dataqueues` the back-end's queues,
/// status HW_READY.
pub struct Builtin {
    pub queues: u32,
    /// Whether AKCIPHER (with RSA) must be offered: Some(true) before 8.0,
    /// None from 8.0 (it depends on the build).
    pub akcipher: Option<bool>,
    /// The values `max_size` may have (empty: not compared).
    pub max_size: Vec<u64>,
}

/// `max_size` of QEMU 11.0's builtin back-end on.
pub const MAX_SIZE_CAPPED: u64 = 1 << 20;

pub fn builtin(queues: u32, version: Option<(u16, u16)>) -> Builtin {
    let old = version.map(|v| v < (8, 0));
    Builtin {
        queues,
        akcipher: if old == Some(true) { Some(true) } else { None },
        max_size: match version {
            None => Vec::new(),
            Some(v) if v < (8, 0) => alloc::vec![i64::MAX as u64 - 24],
            Some(v) if v < (11, 0) => alloc::vec![i64::MAX as u64 - 64, MAX_SIZE_CAPPED],
            Some(_) => alloc::vec![MAX_SIZE_CAPPED],
        },
    }
}

/// The fields of `got` that differ from `want`: (field, expected, got).
pub fn config_differences(want: &Builtin, got: &CryptoSpace) -> Vec<(&'static str, u64, u64)> {
    let mut d = Vec::new();
    let mut field = |name, e: u64, g: u64| {
        if e != g {
            d.push((name, e, g));
        }
    };
    let bit = |b: u32| 1u64 << b;
    let akcipher = match want.akcipher {
        Some(on) => on,
        None => got.crypto_services & (1 << dev::SERVICE_AKCIPHER) != 0,
    };
    let services = bit(dev::SERVICE_CIPHER)
        | bit(dev::SERVICE_HASH)
        | bit(dev::SERVICE_MAC)
        | if akcipher {
            bit(dev::SERVICE_AKCIPHER)
        } else {
            0
        };
    field("status", u64::from(dev::S_HW_READY), got.status.into());
    field(
        "max_dataqueues",
        want.queues.into(),
        got.max_dataqueues.into(),
    );
    field("crypto_services", services, got.crypto_services.into());
    field(
        "cipher_algo_l",
        bit(dev::CIPHER_AES_CBC),
        got.cipher_algo_l.into(),
    );
    field("cipher_algo_h", 0, got.cipher_algo_h.into());
    field("hash_algo", bit(dev::HASH_SHA1), got.hash_algo.into());
    field("mac_algo_l", 0, got.mac_algo_l.into());
    field("mac_algo_h", 0, got.mac_algo_h.into());
    field("aead_algo", 0, got.aead_algo.into());
    field(
        "akcipher_algo",
        if akcipher { bit(dev::AKCIPHER_RSA) } else { 0 },
        got.akcipher_algo.into(),
    );
    field("max_cipher_key_len", 64, got.max_cipher_key_len.into());
    field("max_auth_key_len", 512, got.max_auth_key_len.into());
    if !want.max_size.is_empty() && !want.max_size.contains(&got.max_size) {
        field("max_size", want.max_size[0], got.max_size);
    }
    d
}

/// The first byte where `got` differs from `want`, named.
pub fn first_difference(what: &str, want: &[u8], got: &[u8]) -> Result<(), String> {
    if want.len() != got.len() {
        return Err(format!(
            "{}: {} bytes, expected {}",
            what,
            got.len(),
            want.len()
        ));
    }
    match want.iter().zip(got).position(|(w, g)| w != g) {
        None => Ok(()),
        Some(i) => Err(format!(
            "{}: offset {}: expected {}, got {}",
            what,
            i,
            Hex(want[i].into()),
            Hex(got[i].into())
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu_builtin(akcipher: bool, max_size: u64) -> CryptoSpace {
        CryptoSpace {
            status: 1,
            max_dataqueues: 1,
            crypto_services: 0b111 | u32::from(akcipher) << 4,
            cipher_algo_l: 1 << 3,
            hash_algo: 1 << 2,
            akcipher_algo: u32::from(akcipher) << 1,
            max_cipher_key_len: 64,
            max_auth_key_len: 512,
            max_size,
            ..Default::default()
        }
    }

    #[test]
    fn the_builtin_back_end_of_each_version() {
        let old = builtin(1, Some((7, 2)));
        assert!(config_differences(&old, &qemu_builtin(true, 0x7fff_ffff_ffff_ffe7)).is_empty());
        // 7.2 always offers AKCIPHER.
        assert_eq!(
            config_differences(&old, &qemu_builtin(false, 0x7fff_ffff_ffff_ffe7))
                .first()
                .map(|d| d.0),
            Some("crypto_services")
        );
        let new = builtin(1, Some((10, 0)));
        for ak in [false, true] {
            assert!(config_differences(&new, &qemu_builtin(ak, 0x7fff_ffff_ffff_ffbf)).is_empty());
        }
        // AKCIPHER without RSA, a wrong max_size, a wrong queue count.
        let mut c = qemu_builtin(true, 0x7fff_ffff_ffff_ffbf);
        c.akcipher_algo = 0;
        assert_eq!(config_differences(&new, &c)[0].0, "akcipher_algo");
        let c = qemu_builtin(true, 0x7fff_ffff_ffff_ffe7);
        assert_eq!(config_differences(&new, &c)[0].0, "max_size");
        // A 10.0 build with the CVE fix; 11.1 has it, and only it.
        assert!(config_differences(&new, &qemu_builtin(false, 1 << 20)).is_empty());
        let newest = builtin(1, Some((11, 1)));
        assert!(config_differences(&newest, &qemu_builtin(false, 1 << 20)).is_empty());
        assert_eq!(
            config_differences(&newest, &qemu_builtin(false, 0x7fff_ffff_ffff_ffbf))[0],
            ("max_size", 1 << 20, 0x7fff_ffff_ffff_ffbf)
        );
        assert_eq!(
            config_differences(&builtin(2, None), &qemu_builtin(true, 0))[0],
            ("max_dataqueues", 2, 1)
        );
        // Every other field is held too.
        let mut c = qemu_builtin(true, 0x7fff_ffff_ffff_ffbf);
        c.cipher_algo_l |= 1 << 2;
        c.max_cipher_key_len = 32;
        let names: Vec<&str> = config_differences(&new, &c).iter().map(|d| d.0).collect();
        assert_eq!(names, ["cipher_algo_l", "max_cipher_key_len"]);
    }

    #[test]
    fn differences_are_named_at_the_first_byte() {
        assert!(first_difference("x", &[1, 2], &[1, 2]).is_ok());
        let e = first_difference("x", &[1, 2, 3], &[1, 9, 3]).unwrap_err();
        assert!(e.contains("offset 1: expected 0x2, got 0x9"), "{e}");
        assert!(first_difference("x", &[1], &[1, 2]).is_err());
    }
}
