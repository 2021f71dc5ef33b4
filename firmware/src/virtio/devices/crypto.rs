//! virtio-crypto (virtio 1.x section 5.9): `max_dataqueues` data queues,
//! then the control queue last. Sessions are created and destroyed on the
//! control queue; cipher requests on a data queue name a session. No
//! feature bits of its own are used here, so every request has the fixed
//! layout without VIRTIO_CRYPTO_F_*_REVISION_1: a 72-byte control request
//! (16-byte header and a 56-byte body) and a 72-byte data request
//! (24-byte header and a 48-byte body). The device is modern only
//! (revision 1 and up): every field is little-endian.
//!
//! Layouts and answers are pure and host-tested; [`Crypto`] drives them
//! over any [`Transport`].

use super::super::queue::{setup_all_queues, DmaBuffer, DriveError, Queue};
use super::super::transport::{Transport, TransportError};
use crate::dma::DmaMemory;
use alloc::rc::Rc;
use alloc::vec::Vec;
use ufmt::{uDisplay, uWrite, Formatter};

pub const DEVICE_ID: u32 = super::super::ids::CRYPTO;

/// Services (bits of `crypto_services`).
pub const SERVICE_CIPHER: u32 = 0;
pub const SERVICE_HASH: u32 = 1;
pub const SERVICE_MAC: u32 = 2;
pub const SERVICE_AEAD: u32 = 3;
pub const SERVICE_AKCIPHER: u32 = 4;

/// Cipher algorithms (bits of `cipher_algo_l`, and the session's `algo`).
pub const CIPHER_ARC4: u32 = 1;
pub const CIPHER_AES_ECB: u32 = 2;
pub const CIPHER_AES_CBC: u32 = 3;
/// Hash algorithm SHA-1 (bit of `hash_algo`); akcipher RSA (of `akcipher_algo`).
pub const HASH_SHA1: u32 = 2;
pub const AKCIPHER_RSA: u32 = 1;

/// The configuration's `status` bit: the back-end is ready.
pub const S_HW_READY: u32 = 1;

/// Opcodes: (service << 8) | operation.
pub const fn opcode(service: u32, op: u32) -> u32 {
    service << 8 | op
}
pub const CIPHER_CREATE_SESSION: u32 = opcode(SERVICE_CIPHER, 2);
pub const CIPHER_DESTROY_SESSION: u32 = opcode(SERVICE_CIPHER, 3);
pub const HASH_CREATE_SESSION: u32 = opcode(SERVICE_HASH, 2);
pub const CIPHER_ENCRYPT: u32 = opcode(SERVICE_CIPHER, 0);
pub const CIPHER_DECRYPT: u32 = opcode(SERVICE_CIPHER, 1);
pub const HASH: u32 = opcode(SERVICE_HASH, 0);

/// A session's direction (`op` of the cipher session parameters).
pub const OP_ENCRYPT: u32 = 1;
pub const OP_DECRYPT: u32 = 2;

/// Symmetric operation types (`op_type`).
pub const SYM_OP_NONE: u32 = 0;
pub const SYM_OP_CIPHER: u32 = 1;

/// Status values, of the session input (32 bits) and of a data request's
/// last byte.
pub const OK: u32 = 0;
pub const ERR: u32 = 1;
pub const BADMSG: u32 = 2;
pub const NOTSUPP: u32 = 3;
pub const INVSESS: u32 = 4;
pub const NOSPC: u32 = 5;
pub const KEY_REJECTED: u32 = 6;

/// The name of a status value; None for one the spec does not define.
pub fn status_name(s: u32) -> Option<&'static str> {
    Some(match s {
        OK => "OK",
        ERR => "ERR",
        BADMSG => "BADMSG",
        NOTSUPP => "NOTSUPP",
        INVSESS => "INVSESS",
        NOSPC => "NOSPC",
        KEY_REJECTED => "KEY_REJECTED",
        _ => return None,
    })
}

/// A status value, printed with its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusCode(pub u32);

impl uDisplay for StatusCode {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match status_name(self.0) {
            Some(n) => ufmt::uwrite!(f, "{} ({})", self.0, n),
            None => ufmt::uwrite!(f, "{} (not a status)", self.0),
        }
    }
}

/// The configuration space (56 bytes; `akcipher_algo` was reserved
/// before the spec named it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CryptoSpace {
    pub status: u32,
    pub max_dataqueues: u32,
    pub crypto_services: u32,
    pub cipher_algo_l: u32,
    pub cipher_algo_h: u32,
    pub hash_algo: u32,
    pub mac_algo_l: u32,
    pub mac_algo_h: u32,
    pub aead_algo: u32,
    pub max_cipher_key_len: u32,
    pub max_auth_key_len: u32,
    pub akcipher_algo: u32,
    pub max_size: u64,
}

pub const CONFIG_LEN: usize = 56;

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from(le32(b, at)) | u64::from(le32(b, at + 4)) << 32
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

impl CryptoSpace {
    pub fn decode(b: &[u8; CONFIG_LEN]) -> Self {
        CryptoSpace {
            status: le32(b, 0),
            max_dataqueues: le32(b, 4),
            crypto_services: le32(b, 8),
            cipher_algo_l: le32(b, 12),
            cipher_algo_h: le32(b, 16),
            hash_algo: le32(b, 20),
            mac_algo_l: le32(b, 24),
            mac_algo_h: le32(b, 28),
            aead_algo: le32(b, 32),
            max_cipher_key_len: le32(b, 36),
            max_auth_key_len: le32(b, 40),
            akcipher_algo: le32(b, 44),
            max_size: le64(b, 48),
        }
    }
}

pub fn read_config<T: Transport + ?Sized>(t: &mut T) -> Result<CryptoSpace, TransportError> {
    let mut b = [0u8; CONFIG_LEN];
    t.read_config(&mut b)?;
    Ok(CryptoSpace::decode(&b))
}

/// A control request's fixed part, and a data request's.
pub const CTRL_LEN: usize = 72;
pub const DATA_LEN: usize = 72;
/// What the device writes for a session creation: session id (u64),
/// status (u32), padding; its status field's end.
pub const SESSION_INPUT_LEN: usize = 16;
const SESSION_STATUS_END: u32 = 12;

/// CIPHER_CREATE_SESSION's fixed part (the key follows, device-readable):
/// header (opcode, algo, flag, queue_id), then the cipher session
/// parameters (algo, keylen, op) and, at the body's byte 48, `op_type`.
pub fn create_cipher_session(
    algo: u32,
    key_len: u32,
    op: u32,
    op_type: u32,
    queue_id: u32,
) -> [u8; CTRL_LEN] {
    let mut b = [0u8; CTRL_LEN];
    put32(&mut b, 0, CIPHER_CREATE_SESSION);
    put32(&mut b, 4, algo);
    put32(&mut b, 12, queue_id);
    put32(&mut b, 16, algo);
    put32(&mut b, 20, key_len);
    put32(&mut b, 24, op);
    put32(&mut b, 16 + 48, op_type);
    b
}

/// A control request of `opcode` with an empty body (an opcode the
/// device may not know).
pub fn bare_control(opcode: u32, queue_id: u32) -> [u8; CTRL_LEN] {
    let mut b = [0u8; CTRL_LEN];
    put32(&mut b, 0, opcode);
    put32(&mut b, 12, queue_id);
    b
}

/// CIPHER_DESTROY_SESSION of `session` (the device writes one status byte).
pub fn destroy_session(session: u64, queue_id: u32) -> [u8; CTRL_LEN] {
    let mut b = [0u8; CTRL_LEN];
    put32(&mut b, 0, CIPHER_DESTROY_SESSION);
    put32(&mut b, 12, queue_id);
    put64(&mut b, 16, session);
    b
}

/// A cipher data request's fixed part: header (opcode, algo, session id,
/// flag), then the cipher parameters (iv_len, src_data_len, dst_data_len)
/// and, at the body's byte 40, `op_type`. The IV and source follow
/// (device-readable); the device writes the destination and a status byte.
pub fn cipher_request(
    opcode: u32,
    algo: u32,
    session: u64,
    iv_len: u32,
    src_len: u32,
    dst_len: u32,
) -> [u8; DATA_LEN] {
    let mut b = [0u8; DATA_LEN];
    put32(&mut b, 0, opcode);
    put32(&mut b, 4, algo);
    put64(&mut b, 8, session);
    put32(&mut b, 24, iv_len);
    put32(&mut b, 28, src_len);
    put32(&mut b, 32, dst_len);
    put32(&mut b, 24 + 40, SYM_OP_CIPHER);
    b
}

/// A device's answer against the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CryptoError {
    /// The used buffer is not the request just made.
    WrongToken { used: u16, submitted: u16 },
    /// The reported length ends before the status field.
    StatusPastAnswer {
        what: &'static str,
        used: u32,
        needed: u32,
    },
    /// The reported length is not what the device must write.
    WrongLength {
        what: &'static str,
        used: u32,
        expected: u32,
    },
    /// A status value the spec does not define.
    UnknownStatus { what: &'static str, status: u32 },
}

impl uDisplay for CryptoError {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match *self {
            CryptoError::WrongToken { used, submitted } => {
                ufmt::uwrite!(f, "used token {} for submitted {}", used, submitted)
            }
            CryptoError::StatusPastAnswer { what, used, needed } => ufmt::uwrite!(
                f,
                "{}: used length {} ends before the status field ({} bytes needed)",
                what,
                used,
                needed
            ),
            CryptoError::WrongLength {
                what,
                used,
                expected,
            } => ufmt::uwrite!(f, "{}: used length {}, expected {}", what, used, expected),
            CryptoError::UnknownStatus { what, status } => {
                ufmt::uwrite!(f, "{}: status {} is not a status", what, status)
            }
        }
    }
}

/// A session creation's answer: the session id and the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionInput {
    pub session: u64,
    pub status: u32,
}

/// Decodes what the device wrote for a session creation (`written` its
/// bytes, `used` the length it reported).
pub fn session_input(written: &[u8], used: u32) -> Result<SessionInput, CryptoError> {
    let what = "session input";
    if used < SESSION_STATUS_END || written.len() < SESSION_INPUT_LEN {
        return Err(CryptoError::StatusPastAnswer {
            what,
            used,
            needed: SESSION_STATUS_END,
        });
    }
    if used != SESSION_INPUT_LEN as u32 {
        return Err(CryptoError::WrongLength {
            what,
            used,
            expected: SESSION_INPUT_LEN as u32,
        });
    }
    let status = le32(written, 8);
    if status_name(status).is_none() {
        return Err(CryptoError::UnknownStatus { what, status });
    }
    Ok(SessionInput {
        session: le64(written, 0),
        status,
    })
}

/// The status of an answer whose status byte is the last of `writable`
/// device-writable bytes, all of which the device must count as used (a
/// destroy: 1 byte; a cipher request: the destination and the status).
pub fn status_byte(
    what: &'static str,
    written: &[u8],
    used: u32,
    writable: u32,
) -> Result<u32, CryptoError> {
    if used == 0 || used as usize > written.len() {
        return Err(CryptoError::StatusPastAnswer {
            what,
            used,
            needed: writable,
        });
    }
    if used != writable {
        return Err(CryptoError::WrongLength {
            what,
            used,
            expected: writable,
        });
    }
    let status = u32::from(written[used as usize - 1]);
    if status_name(status).is_none() {
        return Err(CryptoError::UnknownStatus { what, status });
    }
    Ok(status)
}

/// Why a request on a driven device went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    Drive(DriveError),
    Answer(CryptoError),
}

impl From<DriveError> for RequestError {
    fn from(e: DriveError) -> Self {
        RequestError::Drive(e)
    }
}

impl From<CryptoError> for RequestError {
    fn from(e: CryptoError) -> Self {
        RequestError::Answer(e)
    }
}

impl uDisplay for RequestError {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match self {
            RequestError::Drive(e) => e.fmt(f),
            RequestError::Answer(e) => e.fmt(f),
        }
    }
}

/// A driven crypto device: its data queues and its control queue.
pub struct Crypto {
    data: Vec<Queue>,
    control: Queue,
}

impl Crypto {
    /// Sets up every queue the device has; the last is the control queue.
    pub fn setup<T: Transport + ?Sized>(
        t: &mut T,
        features: u64,
        packed: bool,
    ) -> Result<Self, DriveError> {
        let mut data = setup_all_queues(t, features, packed)?;
        let control = data.pop().ok_or(DriveError::NoQueue { queue: 0 })?;
        Ok(Crypto { data, control })
    }

    pub fn data_queues(&self) -> usize {
        self.data.len()
    }

    pub fn data_queue(&mut self, i: usize) -> &mut Queue {
        &mut self.data[i]
    }

    pub fn control_queue(&self) -> &Queue {
        &self.control
    }

    /// One request on `q` (a data queue's index, or None for the control
    /// queue): `readable` then `writable` bytes, the latter filled with
    /// `poison` first; returns what the device left there and the length
    /// it reported.
    pub fn call<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        q: Option<usize>,
        readable: &[u8],
        writable: u32,
        poison: u8,
    ) -> Result<(Vec<u8>, u32), RequestError> {
        let queue = match q {
            Some(i) => &mut self.data[i],
            None => &mut self.control,
        };
        let mem = Rc::new(DmaMemory::new(readable.len() + writable as usize));
        mem.write(0, readable);
        let mut fill = alloc::vec![poison; writable as usize];
        mem.write(readable.len(), &fill);
        let chain = [
            DmaBuffer {
                mem: &mem,
                offset: 0,
                len: readable.len() as u32,
                device_writable: false,
            },
            DmaBuffer {
                mem: &mem,
                offset: readable.len(),
                len: writable,
                device_writable: true,
            },
        ];
        let token = queue.submit(t, &chain, false)?;
        let used = queue.wait_used(t)?;
        if used.token != token {
            return Err(CryptoError::WrongToken {
                used: used.token,
                submitted: token,
            }
            .into());
        }
        mem.read(readable.len(), &mut fill);
        Ok((fill, used.len))
    }

    /// Creates a cipher session for `key` on the control queue; the
    /// device's answer (its status may say no).
    #[allow(clippy::too_many_arguments)]
    pub fn create_session<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        algo: u32,
        key: &[u8],
        op: u32,
        op_type: u32,
        queue_id: u32,
    ) -> Result<SessionInput, RequestError> {
        let mut req = Vec::with_capacity(CTRL_LEN + key.len());
        req.extend_from_slice(&create_cipher_session(
            algo,
            key.len() as u32,
            op,
            op_type,
            queue_id,
        ));
        req.extend_from_slice(key);
        self.session_request(t, &req)
    }

    /// A control request answered with a session input (a creation, or an
    /// opcode the device may refuse).
    pub fn session_request<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        req: &[u8],
    ) -> Result<SessionInput, RequestError> {
        let (w, used) = self.call(t, None, req, SESSION_INPUT_LEN as u32, 0xa5)?;
        Ok(session_input(&w, used)?)
    }

    /// Destroys `session`; the status the device wrote.
    pub fn destroy_session<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        session: u64,
        queue_id: u32,
    ) -> Result<u32, RequestError> {
        let (w, used) = self.call(t, None, &destroy_session(session, queue_id), 1, 0xa5)?;
        Ok(status_byte("destroy session", &w, used, 1)?)
    }

    /// A cipher request on data queue `q`: `opcode` on `session` with `iv`
    /// over `src`; the destination the device wrote and its status.
    pub fn cipher<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        q: usize,
        opcode: u32,
        session: u64,
        iv: &[u8],
        src: &[u8],
    ) -> Result<(Vec<u8>, u32), RequestError> {
        let mut req = Vec::with_capacity(DATA_LEN + iv.len() + src.len());
        req.extend_from_slice(&cipher_request(
            opcode,
            CIPHER_AES_CBC,
            session,
            iv.len() as u32,
            src.len() as u32,
            src.len() as u32,
        ));
        req.extend_from_slice(iv);
        req.extend_from_slice(src);
        let writable = src.len() as u32 + 1;
        let (mut w, used) = self.call(t, Some(q), &req, writable, 0xa5)?;
        let status = status_byte("cipher request", &w, used, writable)?;
        w.truncate(src.len());
        Ok((w, status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_fields_at_their_offsets() {
        let mut b = [0u8; CONFIG_LEN];
        for i in 0..12 {
            put32(&mut b, 4 * i, 0x100 + i as u32);
        }
        put64(&mut b, 48, 0x7fff_ffff_ffff_ffbf);
        let c = CryptoSpace::decode(&b);
        assert_eq!(c.status, 0x100);
        assert_eq!(c.max_dataqueues, 0x101);
        assert_eq!(c.crypto_services, 0x102);
        assert_eq!(c.cipher_algo_l, 0x103);
        assert_eq!(c.aead_algo, 0x108);
        assert_eq!(c.max_cipher_key_len, 0x109);
        assert_eq!(c.max_auth_key_len, 0x10a);
        assert_eq!(c.akcipher_algo, 0x10b);
        assert_eq!(c.max_size, 0x7fff_ffff_ffff_ffbf);
    }

    #[test]
    fn requests_have_the_fixed_layouts() {
        let r = create_cipher_session(CIPHER_AES_CBC, 16, OP_DECRYPT, SYM_OP_CIPHER, 0);
        assert_eq!(le32(&r, 0), 2);
        assert_eq!((le32(&r, 16), le32(&r, 20), le32(&r, 24)), (3, 16, 2));
        assert_eq!(le32(&r, 64), SYM_OP_CIPHER);
        let d = destroy_session(0x0102_0304_0506_0708, 0);
        assert_eq!((le32(&d, 0), le64(&d, 16)), (3, 0x0102_0304_0506_0708));
        let c = cipher_request(CIPHER_DECRYPT, CIPHER_AES_CBC, 7, 16, 64, 64);
        assert_eq!((le32(&c, 0), le32(&c, 4), le64(&c, 8)), (1, 3, 7));
        assert_eq!((le32(&c, 24), le32(&c, 28), le32(&c, 32)), (16, 64, 64));
        assert_eq!(le32(&c, 64), SYM_OP_CIPHER);
        assert_eq!(HASH_CREATE_SESSION, 0x102);
    }

    #[test]
    fn session_inputs_decode_and_malformed_ones_are_named() {
        let mut w = [0u8; 16];
        put64(&mut w, 0, 5);
        assert_eq!(
            session_input(&w, 16),
            Ok(SessionInput {
                session: 5,
                status: OK
            })
        );
        assert_eq!(
            session_input(&w, 8),
            Err(CryptoError::StatusPastAnswer {
                what: "session input",
                used: 8,
                needed: 12
            })
        );
        assert!(matches!(
            session_input(&w, 12),
            Err(CryptoError::WrongLength { .. })
        ));
        put32(&mut w, 8, 99);
        assert_eq!(
            session_input(&w, 16),
            Err(CryptoError::UnknownStatus {
                what: "session input",
                status: 99
            })
        );
    }

    #[test]
    fn status_bytes_are_the_last_used_byte() {
        let w = [0xa5, 0xa5, INVSESS as u8];
        assert_eq!(status_byte("x", &w, 3, 3), Ok(INVSESS));
        assert!(matches!(
            status_byte("x", &w, 4, 3),
            Err(CryptoError::StatusPastAnswer { .. })
        ));
        assert!(matches!(
            status_byte("x", &w, 0, 3),
            Err(CryptoError::StatusPastAnswer { .. })
        ));
        assert!(matches!(
            status_byte("x", &w, 2, 3),
            Err(CryptoError::WrongLength { .. })
        ));
        assert_eq!(
            status_byte("x", &[0xa5], 1, 1),
            Err(CryptoError::UnknownStatus {
                what: "x",
                status: 0xa5
            })
        );
    }
}
