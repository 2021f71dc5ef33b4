//! virtio-crypto on QEMU's `cryptodev-backend-builtin`: the configuration
//! against what that back-end announces (`crypto.config`), the published
//! NIST SP 800-38A CBC-AES128 vectors encrypted and decrypted exactly
//! (`crypto.kat`), the error codes of a bad session id, an unsupported
//! algorithm or opcode and a destroyed session (`crypto.errors`), and
//! seeded AES-128-CBC requests on every data queue under the stress
//! engine, each destination held to our own AES (`crypto.stress`).
//!
//! Expectations, from QEMU's source: hw/virtio/virtio-crypto.c (the
//! device: data queues then the control queue, the answers' layouts and
//! status codes) and backends/cryptodev-builtin.c (what the back-end
//! offers: services CIPHER, HASH, MAC and, where the build can do RSA,
//! AKCIPHER; cipher AES-CBC, hash SHA-1, akcipher RSA; keys up to 64 and
//! 512 bytes; 256 sessions; exactly one queue).

use super::virtio::WANTED;
use crate::check::Outcome;
use crate::fmt::{Hex, ToText};
use crate::format;
use crate::inventory::BusId;
use crate::judge::crypto::{builtin, config_differences, first_difference};
use crate::machine::Machine;
use crate::virtio::ccw::CcwTransport;
use crate::virtio::devices::crypto::{self as dev, Crypto, CryptoSpace, StatusCode};
use crate::virtio::indicators::{IndicatorMode, Indicators};
use crate::virtio::stress::{self, Completion, Options, QueueStats, ShapeLimits};
use crate::virtio::transport::{
    driver_ok_status, has, negotiate, Transport, F_INDIRECT_DESC, F_RING_PACKED,
};
use crate::workloads::crypto::Cipher;
use alloc::string::String;
use alloc::vec::Vec;
use zvtest_contract::crypto::{sp800_38a, CryptoConfig, KEY_LEN};

fn now_us() -> u64 {
    crate::arch::tod() / crate::arch::TOD_PER_US
}

/// A device at DRIVER_OK with its queues.
struct Open {
    t: CcwTransport,
    ind: Indicators,
    dev: Crypto,
    features: u64,
}

/// Opens the device at revision 2 (or 1, which it may stop at), with a
/// packed ring where `packed` (None where the device does not offer it).
/// An error drops the transport, which resets the device before its
/// memory can go.
fn open(sid: u32, packed: bool) -> Result<Option<Open>, String> {
    let fail = |what: &str, e: &dyn ToText| format!("{}: {}", what, e.text().as_str());
    let mut t = CcwTransport::open(sid, 2).map_err(|e| fail("open", &e))?;
    if t.revision() == 0 {
        return Err(String::from(
            "the device took revision 0 (virtio-crypto is modern only)",
        ));
    }
    let ring = if packed { 1 << F_RING_PACKED } else { 0 };
    let features = negotiate(&mut t, (WANTED & !(1 << F_RING_PACKED)) | ring)
        .map_err(|e| fail("negotiate", &e))?;
    if packed && !has(features, F_RING_PACKED) {
        return Ok(None);
    }
    let ind =
        Indicators::install(&mut t, IndicatorMode::Classic).map_err(|e| fail("indicators", &e))?;
    let dev = Crypto::setup(&mut t, features, packed).map_err(|e| fail("queues", &e))?;
    t.set_status(driver_ok_status(t.revision()))
        .map_err(|e| fail("DRIVER_OK", &e))?;
    Ok(Some(Open {
        t,
        ind,
        dev,
        features,
    }))
}

fn devices(m: &Machine) -> Vec<(BusId, u32, bool)> {
    m.inventory
        .virtio_devices(dev::DEVICE_ID)
        .map(|d| {
            let bus = d.bus_id();
            let packed = m.cfg.virtio_config(bus).is_some_and(|c| c.packed);
            (bus, d.subchannel.sid, packed)
        })
        .collect()
}

fn configured(m: &Machine, bus: BusId) -> Option<CryptoConfig> {
    m.cfg.crypto.iter().find(|c| c.bus == bus).cloned()
}

fn describe(c: &CryptoSpace) -> String {
    format!(
        "status {} max_dataqueues {} services {} cipher {}/{} hash {} mac {}/{} aead {} akcipher {} max_cipher_key_len {} max_auth_key_len {} max_size {}",
        Hex(c.status.into()),
        c.max_dataqueues,
        Hex(c.crypto_services.into()),
        Hex(c.cipher_algo_l.into()),
        Hex(c.cipher_algo_h.into()),
        Hex(c.hash_algo.into()),
        Hex(c.mac_algo_l.into()),
        Hex(c.mac_algo_h.into()),
        Hex(c.aead_algo.into()),
        Hex(c.akcipher_algo.into()),
        c.max_cipher_key_len,
        c.max_auth_key_len,
        Hex(c.max_size)
    )
}

pub fn config(m: &mut Machine) -> Outcome {
    let found = devices(m);
    if found.is_empty() {
        return Outcome::skip("no virtio-crypto-ccw device");
    }
    let mut notes = Vec::new();
    for (bus, sid, packed) in found {
        let mut o = match open(sid, packed) {
            Ok(Some(o)) => o,
            Ok(None) => {
                return Outcome::mismatch(
                    &format!("virtio-crypto {}: the packed ring (packed=on)", bus),
                    "VIRTIO_F_RING_PACKED offered",
                    "not offered",
                )
            }
            Err(e) => {
                return Outcome::mismatch(
                    &format!("virtio-crypto {}: bring-up", bus),
                    "DRIVER_OK",
                    e.as_str(),
                )
            }
        };
        let c = match dev::read_config(&mut o.t) {
            Ok(c) => c,
            Err(e) => {
                return Outcome::mismatch(
                    &format!("virtio-crypto {}: READ_CONF", bus),
                    "56 bytes",
                    format!("{}", e).as_str(),
                )
            }
        };
        crate::out!("# crypto {} config: {}\n", bus, describe(&c).as_str());
        // The device's queues: max_dataqueues data queues and the control queue.
        if o.dev.data_queues() as u64 != u64::from(c.max_dataqueues) {
            return Outcome::mismatch(
                &format!(
                    "virtio-crypto {}: data queues found (all queues but the last, the control queue)",
                    bus
                ),
                c.max_dataqueues,
                o.dev.data_queues() as u32,
            );
        }
        let _ = o.t.reset();
        let Some(cc) = configured(m, bus) else {
            notes.push(format!("{}: {}", bus, describe(&c).as_str()));
            continue;
        };
        let want = builtin(cc.queues, m.cfg.qemu_version);
        if let Some((field, e, g)) = config_differences(&want, &c).first() {
            return Outcome::mismatch(
                &format!(
                    "virtio-crypto {} config field {} (cryptodev-backend-builtin, queues={})",
                    bus, field, cc.queues
                ),
                Hex(*e),
                Hex(*g),
            );
        }
        if want.max_size.is_empty() {
            notes.push(format!(
                "{}: max_size {} not compared (no qemu-version=)",
                bus,
                Hex(c.max_size)
            ));
        }
    }
    if notes.is_empty() {
        Outcome::Pass
    } else {
        Outcome::PassNote(format!(
            "no crypto= entry to compare with for {}",
            notes.join("; ").as_str()
        ))
    }
}

fn request_failed(what: &str, e: dev::RequestError) -> String {
    format!("{}: {}", what, e)
}

/// Creates a session that must succeed; its id.
fn session(o: &mut Open, key: &[u8], op: u32, q: u32) -> Result<u64, String> {
    let name = if op == dev::OP_ENCRYPT {
        "CIPHER_CREATE_SESSION (AES-CBC, encrypt)"
    } else {
        "CIPHER_CREATE_SESSION (AES-CBC, decrypt)"
    };
    let s = o
        .dev
        .create_session(
            &mut o.t,
            dev::CIPHER_AES_CBC,
            key,
            op,
            dev::SYM_OP_CIPHER,
            q,
        )
        .map_err(|e| request_failed(name, e))?;
    if s.status != dev::OK {
        return Err(format!(
            "{}: status {}, expected {}",
            name,
            StatusCode(s.status),
            StatusCode(dev::OK)
        ));
    }
    Ok(s.session)
}

fn destroy(o: &mut Open, session: u64, q: u32) -> Result<(), String> {
    let st = o
        .dev
        .destroy_session(&mut o.t, session, q)
        .map_err(|e| request_failed("CIPHER_DESTROY_SESSION", e))?;
    if st != dev::OK {
        return Err(format!(
            "CIPHER_DESTROY_SESSION of session {}: status {}, expected {}",
            session,
            StatusCode(st),
            StatusCode(dev::OK)
        ));
    }
    Ok(())
}

/// A cipher request whose status must be `want`; the destination.
#[allow(clippy::too_many_arguments)]
fn cipher(
    o: &mut Open,
    what: &str,
    q: usize,
    opcode: u32,
    session: u64,
    iv: &[u8],
    src: &[u8],
    want: u32,
) -> Result<Vec<u8>, String> {
    let (dst, st) = o
        .dev
        .cipher(&mut o.t, q, opcode, session, iv, src)
        .map_err(|e| request_failed(what, e))?;
    if st != want {
        return Err(format!(
            "{} (dq{}): status {}, expected {}",
            what,
            q,
            StatusCode(st),
            StatusCode(want)
        ));
    }
    Ok(dst)
}

/// The SP 800-38A vectors on data queue `q` (test only: byte `flip` of
/// the expected ciphertext flipped).
fn kat_queue(o: &mut Open, q: usize, flip: Option<u32>) -> Result<(), String> {
    let qid = q as u32;
    let enc = session(o, &sp800_38a::KEY, dev::OP_ENCRYPT, qid)?;
    let dec = session(o, &sp800_38a::KEY, dev::OP_DECRYPT, qid)?;
    let mut published = sp800_38a::CIPHERTEXT;
    if let Some(i) = flip {
        published[i as usize] ^= 0xff;
    }
    let (pt, ct, iv) = (&sp800_38a::PLAINTEXT, &published, &sp800_38a::IV);
    let got = cipher(
        o,
        "encrypt F.2.1",
        q,
        dev::CIPHER_ENCRYPT,
        enc,
        iv,
        pt,
        dev::OK,
    )?;
    first_difference(&format!("dq{} encrypt F.2.1 (4 blocks)", q), ct, &got)?;
    let got = cipher(
        o,
        "decrypt F.2.2",
        q,
        dev::CIPHER_DECRYPT,
        dec,
        iv,
        ct,
        dev::OK,
    )?;
    first_difference(&format!("dq{} decrypt F.2.2 (4 blocks)", q), pt, &got)?;
    // Blocks 3 and 4 alone, chained from ciphertext block 2: the device
    // takes each request's own IV.
    let (iv2, rest) = (&ct[16..32], 32..64);
    let got = cipher(
        o,
        "encrypt blocks 3-4",
        q,
        dev::CIPHER_ENCRYPT,
        enc,
        iv2,
        &pt[rest.clone()],
        dev::OK,
    )?;
    first_difference(
        &format!("dq{} encrypt F.2.1 blocks 3-4", q),
        &ct[rest.clone()],
        &got,
    )?;
    let got = cipher(
        o,
        "decrypt blocks 3-4",
        q,
        dev::CIPHER_DECRYPT,
        dec,
        iv2,
        &ct[rest.clone()],
        dev::OK,
    )?;
    first_difference(
        &format!("dq{} decrypt F.2.2 blocks 3-4", q),
        &pt[rest],
        &got,
    )?;
    destroy(o, enc, qid)?;
    destroy(o, dec, qid)
}

pub fn kat(m: &mut Machine) -> Outcome {
    let found = devices(m);
    if found.is_empty() {
        return Outcome::skip("no virtio-crypto-ccw device");
    }
    for (bus, sid, packed) in found {
        let flip = configured(m, bus).and_then(|c| c.corrupt_kat);
        let r = open(sid, packed).and_then(|o| {
            let mut o = o.ok_or_else(|| String::from("packed ring not offered"))?;
            for q in 0..o.dev.data_queues() {
                kat_queue(&mut o, q, flip)?;
            }
            let _ = o.t.reset();
            Ok(())
        });
        if let Err(e) = r {
            return Outcome::mismatch(
                &format!("virtio-crypto {}: NIST SP 800-38A CBC-AES128", bus),
                "the published ciphertext and plaintext exactly, every status OK",
                e.as_str(),
            );
        }
    }
    Outcome::Pass
}

/// A session creation that must be refused with `want`.
fn refused(o: &mut Open, what: &str, req: &[u8], want: u32) -> Result<(), String> {
    let s = o
        .dev
        .session_request(&mut o.t, req)
        .map_err(|e| request_failed(what, e))?;
    if s.status != want {
        return Err(format!(
            "{}: status {}, expected {}",
            what,
            StatusCode(s.status),
            StatusCode(want)
        ));
    }
    Ok(())
}

fn create_request(algo: u32, key: &[u8], op_type: u32) -> Vec<u8> {
    let mut r =
        dev::create_cipher_session(algo, key.len() as u32, dev::OP_ENCRYPT, op_type, 0).to_vec();
    r.extend_from_slice(key);
    r
}

/// The error answers, on data queue 0.
fn errors_device(o: &mut Open) -> Result<(), String> {
    let (key, iv, pt) = (&sp800_38a::KEY, &sp800_38a::IV, &sp800_38a::PLAINTEXT[..16]);
    // A session id never created: cryptodev-builtin.c answers a data
    // request naming no session with INVSESS, and writes nothing.
    let dst = cipher(
        o,
        "encrypt on session 0xdead (never created)",
        0,
        dev::CIPHER_ENCRYPT,
        0xdead,
        iv,
        pt,
        dev::INVSESS,
    )?;
    if let Some(i) = dst.iter().position(|&b| b != 0xa5) {
        return Err(format!(
            "encrypt on session 0xdead: destination offset {} written ({}) though the request failed",
            i,
            Hex(dst[i].into())
        ));
    }
    // An algorithm the back-end lacks (ARC4; its mask has AES-CBC only)
    // and an AES key of 17 bytes: cryptodev-builtin.c fails the creation,
    // which virtio-crypto.c answers with ERR (NOTSUPP only comes from the
    // device model itself).
    refused(
        o,
        "CIPHER_CREATE_SESSION with ARC4",
        &create_request(dev::CIPHER_ARC4, key, dev::SYM_OP_CIPHER),
        dev::ERR,
    )?;
    refused(
        o,
        "CIPHER_CREATE_SESSION with a 17-byte AES key",
        &create_request(dev::CIPHER_AES_CBC, &[7u8; 17], dev::SYM_OP_CIPHER),
        dev::ERR,
    )?;
    // What virtio-crypto.c itself refuses with NOTSUPP: a session of no
    // operation, and HASH_CREATE_SESSION (not one of the opcodes it takes).
    refused(
        o,
        "CIPHER_CREATE_SESSION with op_type NONE",
        &create_request(dev::CIPHER_AES_CBC, key, dev::SYM_OP_NONE),
        dev::NOTSUPP,
    )?;
    refused(
        o,
        "HASH_CREATE_SESSION",
        &dev::bare_control(dev::HASH_CREATE_SESSION, 0),
        dev::NOTSUPP,
    )?;
    // A data request of an opcode the device does not take (HASH).
    let s = session(o, key, dev::OP_ENCRYPT, 0)?;
    cipher(
        o,
        "HASH request on the data queue",
        0,
        dev::HASH,
        s,
        iv,
        pt,
        dev::NOTSUPP,
    )?;
    // Destroyed, then used: no session any more.
    destroy(o, s, 0)?;
    cipher(
        o,
        "encrypt on a destroyed session",
        0,
        dev::CIPHER_ENCRYPT,
        s,
        iv,
        pt,
        dev::INVSESS,
    )?;
    // Destroyed twice: cryptodev-builtin.c refuses a session it does not
    // have (it asserted before the 2023 fix, which stable 7.2 carries),
    // and virtio-crypto.c answers every refused destruction with ERR.
    let st = o
        .dev
        .destroy_session(&mut o.t, s, 0)
        .map_err(|e| request_failed("CIPHER_DESTROY_SESSION of a destroyed session", e))?;
    if st != dev::ERR {
        return Err(format!(
            "CIPHER_DESTROY_SESSION of a destroyed session: status {}, expected {}",
            StatusCode(st),
            StatusCode(dev::ERR)
        ));
    }
    Ok(())
}

pub fn errors(m: &mut Machine) -> Outcome {
    let found = devices(m);
    if found.is_empty() {
        return Outcome::skip("no virtio-crypto-ccw device");
    }
    let mut ran = 0;
    for (bus, sid, packed) in found {
        if configured(m, bus).is_none() {
            continue;
        }
        ran += 1;
        let r = open(sid, packed).and_then(|o| {
            let mut o = o.ok_or_else(|| String::from("packed ring not offered"))?;
            errors_device(&mut o)?;
            let _ = o.t.reset();
            Ok(())
        });
        if let Err(e) = r {
            return Outcome::mismatch(
                &format!(
                    "virtio-crypto {}: error answers (cryptodev-backend-builtin)",
                    bus
                ),
                "each request answered with the status QEMU's source gives",
                e.as_str(),
            );
        }
    }
    if ran == 0 {
        return Outcome::skip(
            "no crypto= entry: the error codes are those of cryptodev-backend-builtin",
        );
    }
    Outcome::Pass
}

/// Requests per queue and round, before `stress=`.
const ROUND_REQUESTS: u64 = 48;
const POLLED_REQUESTS: u64 = 16;

/// Seeded sessions and requests on data queue `q` of one bring-up.
fn stress_queue(
    o: &mut Open,
    bus: BusId,
    q: usize,
    label: &str,
    seed: u64,
    stress: u32,
    corrupt: Option<(u64, u32)>,
) -> Result<(), String> {
    let stream = u64::from(bus.devno) << 32 | (q as u64) << 8 | label.len() as u64;
    let mut rng = stress::Rng::for_request(seed, stream, u64::MAX);
    let mut key = [0u8; KEY_LEN];
    key[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    key[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
    let qid = q as u32;
    let sessions = [
        session(o, &key, dev::OP_ENCRYPT, qid)?,
        session(o, &key, dev::OP_DECRYPT, qid)?,
    ];
    let mut w = Cipher::new(&key, sessions, corrupt);
    let indirect_desc = has(o.features, F_INDIRECT_DESC);
    for (completion, requests) in [
        (Completion::Interrupts, ROUND_REQUESTS),
        (Completion::Polled, POLLED_REQUESTS),
    ] {
        let queue = o.dev.data_queue(q);
        let size = queue.size();
        let opts = Options {
            limits: ShapeLimits {
                max_elements: usize::from(size).min(8),
                ..ShapeLimits::varied(size)
            },
            ..Options::varied(
                seed,
                stream | u64::from(completion == Completion::Polled) << 16,
                size,
                requests * u64::from(stress),
                indirect_desc,
                completion,
                now_us,
            )
        };
        let s: QueueStats =
            crate::suites::setups::run_counted(&mut o.t, queue, &mut w, &opts, &mut o.ind)
                .map_err(|f| {
                    format!(
                        "dq{} {} {} request {}: {}",
                        q,
                        label,
                        completion.name(),
                        f.request,
                        f.what.as_str()
                    )
                })?;
        crate::out!(
            "# crypto {} dq{} {} {}: {}\n",
            bus,
            q,
            label,
            completion.name(),
            s
        );
        crate::judge::echo_queue(
            &format!("dq{} ({}, {})", q, label, completion.name()),
            (completion == Completion::Polled, false),
            &s,
        )?;
    }
    destroy(o, sessions[0], qid)?;
    destroy(o, sessions[1], qid)
}

pub fn stress(m: &mut Machine) -> Outcome {
    let found = devices(m);
    if found.is_empty() {
        return Outcome::skip("no virtio-crypto-ccw device");
    }
    let (seed, level) = (m.cfg.seed, m.cfg.stress);
    for (bus, sid, packed) in found {
        let corrupt = configured(m, bus).and_then(|c| c.corrupt);
        // Split rings, and packed ones where the device offers them.
        let rings: &[bool] = if packed { &[false, true] } else { &[false] };
        for &p in rings {
            let r = open(sid, p).and_then(|o| {
                let mut o = o.ok_or_else(|| String::from("packed ring not offered"))?;
                let label = format!(
                    "rev {} {} classic",
                    o.t.revision(),
                    if p { "packed" } else { "split" }
                );
                for q in 0..o.dev.data_queues() {
                    stress_queue(&mut o, bus, q, &label, seed, level, corrupt)?;
                }
                let _ = o.t.reset();
                Ok(())
            });
            if let Err(e) = r {
                return Outcome::mismatch(
                    &format!(
                        "virtio-crypto {} (replay: seed={} only=crypto.stress)",
                        bus,
                        Hex(seed)
                    ),
                    "every AES-128-CBC destination equal to our own AES, status OK",
                    e.as_str(),
                );
            }
        }
    }
    Outcome::Pass
}
