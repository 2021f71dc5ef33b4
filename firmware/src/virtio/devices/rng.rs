//! virtio-rng, the entropy device (virtio 1.x section 5.4): one queue,
//! `requestq`, of device-writable buffers the device fills with random
//! bytes; no feature bits of its own and no configuration space.

use super::super::queue::{setup_queue, DmaBuffer, DriveError, Queue};
use super::super::transport::Transport;
use crate::dma::DmaMemory;
use alloc::rc::Rc;
use alloc::vec::Vec;
use ufmt::{uDisplay, uWrite, Formatter};

pub const DEVICE_ID: u32 = super::super::ids::RNG;
/// The request queue's index.
pub const REQUEST_QUEUE: u16 = 0;

/// A request the device answered against the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntropyError {
    /// The used buffer is not the request just made.
    WrongToken { used: u16, submitted: u16 },
    /// The device must write at least one byte and at most the buffer.
    BadLength { used: u32, len: u32 },
}

impl uDisplay for EntropyError {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match *self {
            EntropyError::WrongToken { used, submitted } => {
                ufmt::uwrite!(f, "used token {} for submitted {}", used, submitted)
            }
            EntropyError::BadLength { used, len } => {
                ufmt::uwrite!(f, "used length {} for a {}-byte buffer", used, len)
            }
        }
    }
}

/// The buffer chain of one request for the first `len` bytes of `mem`,
/// in `elements` device-writable parts (the first ones `len / elements`
/// bytes, the last the rest).
pub fn request_chain(mem: &Rc<DmaMemory>, len: u32, elements: u32) -> Vec<DmaBuffer<'_>> {
    let elements = elements.clamp(1, len.max(1));
    let part = len / elements;
    (0..elements)
        .map(|i| {
            let start = part * i;
            let end = if i + 1 == elements { len } else { start + part };
            DmaBuffer {
                mem,
                offset: start as usize,
                len: end - start,
                device_writable: true,
            }
        })
        .collect()
}

/// A driven entropy device: its request queue.
pub struct Rng {
    queue: Queue,
}

impl Rng {
    /// Sets up the request queue of a device whose features were
    /// negotiated as `features` (a packed ring if asked for and offered).
    pub fn setup<T: Transport + ?Sized>(
        t: &mut T,
        features: u64,
        packed: bool,
    ) -> Result<Self, DriveError> {
        Ok(Rng {
            queue: setup_queue(t, REQUEST_QUEUE, features, packed)?,
        })
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// The request queue, for the stress engine to drive.
    pub fn queue_mut(&mut self) -> &mut Queue {
        &mut self.queue
    }

    /// Makes a request available (through an indirect table where
    /// `indirect`) and notifies as the ring says; returns its token. The
    /// chain's memory is the device's until it is reset.
    pub fn request<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        chain: &[DmaBuffer<'_>],
        indirect: bool,
    ) -> Result<u16, DriveError> {
        self.queue.submit(t, chain, indirect)
    }

    /// Waits for the request `token` of `len` bytes to come back; returns
    /// how many bytes the device wrote.
    pub fn wait<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        token: u16,
        len: u32,
    ) -> Result<Result<u32, EntropyError>, DriveError> {
        let used = self.queue.wait_used(t)?;
        Ok(if used.token != token {
            Err(EntropyError::WrongToken {
                used: used.token,
                submitted: token,
            })
        } else if used.len == 0 || used.len > len {
            Err(EntropyError::BadLength {
                used: used.len,
                len,
            })
        } else {
            Ok(used.len)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_cover_the_buffer() {
        let mem = Rc::new(DmaMemory::new(4096));
        let one = request_chain(&mem, 9, 1);
        assert_eq!(one.len(), 1);
        assert_eq!((one[0].offset, one[0].len), (0, 9));
        let two = request_chain(&mem, 9, 2);
        assert_eq!(
            two.iter().map(|b| (b.offset, b.len)).collect::<Vec<_>>(),
            [(0, 4), (4, 5)]
        );
        assert!(two.iter().all(|b| b.device_writable));
        assert!(two.iter().all(|b| Rc::ptr_eq(b.mem, &mem)));
        assert_eq!(request_chain(&mem, 1, 4).len(), 1);
    }
}
