//! The legacy s390-virtio transport behind the same `Transport` interface
//! as virtio-ccw: device state lives in the shared device page, and the
//! host is told through DIAG 0x500 functions 0 (NOTIFY), 1 (RESET) and
//! 2 (SET_STATUS). The host places the rings (the queue descriptor's
//! address); the driver only uses them.

use super::legacy_page::LegacyDevice;
use super::transport::{QueueAddresses, Status, Transport, TransportError};
use crate::arch::hypercall::{diag500, LEGACY_NOTIFY, LEGACY_RESET, LEGACY_SET_STATUS};
use crate::arch::interrupt::expect_program_interrupt;

pub struct LegacyTransport {
    /// Real address of the device page.
    page: u64,
    dev: LegacyDevice,
}

impl LegacyTransport {
    /// The device `dev` of the page at `page`, if the host serves the
    /// legacy hypercalls (RESET answers instead of faulting).
    pub fn open(page: u64, dev: LegacyDevice) -> Option<Self> {
        let t = LegacyTransport { page, dev };
        let desc = t.descriptor();
        expect_program_interrupt(|| {
            diag500(LEGACY_RESET, [desc, 0, 0, 0, 0, 0]);
        })
        .is_none()
        .then_some(t)
    }

    fn descriptor(&self) -> u64 {
        self.page + self.dev.offset as u64
    }

    fn byte_at(&self, offset: usize) -> *mut u8 {
        (self.page + offset as u64) as *mut u8
    }

    fn read(&self, offset: usize, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: offsets come from the parsed page, whose parser
            // checked that every field lies inside it; the page is storage.
            *b = unsafe { core::ptr::read_volatile(self.byte_at(offset + i)) };
        }
    }

    fn write(&self, offset: usize, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: as in `read`; the guest-writable fields are ours.
            unsafe { core::ptr::write_volatile(self.byte_at(offset + i), b) };
        }
    }

    fn call(&self, function: u64, arg: u64, what: &'static str) -> Result<(), TransportError> {
        match diag500(function, [arg, 0, 0, 0, 0, 0]) as i64 {
            0 => Ok(()),
            result => Err(TransportError::Hypercall { what, result }),
        }
    }

    /// Where the host placed queue `index`'s ring.
    pub fn ring_address(&self, index: u16) -> Option<u64> {
        self.dev.queues.get(usize::from(index)).map(|q| q.address)
    }
}

/// Feature bits as bytes, bit n in byte n / 8 at 1 << (n % 8).
fn bits_from_bytes(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .take(8)
        .enumerate()
        .fold(0, |acc, (i, &b)| acc | u64::from(b) << (8 * i))
}

impl Transport for LegacyTransport {
    fn revision(&self) -> u8 {
        0
    }

    fn reset(&mut self) -> Result<(), TransportError> {
        self.call(LEGACY_RESET, self.descriptor(), "legacy RESET")
    }

    fn device_features(&mut self) -> Result<u64, TransportError> {
        let mut b = [0u8; 8];
        let n = self.dev.feature_len().min(8);
        self.read(self.dev.host_features_offset(), &mut b[..n]);
        Ok(bits_from_bytes(&b[..n]))
    }

    fn set_driver_features(&mut self, features: u64) -> Result<(), TransportError> {
        let n = self.dev.feature_len().min(8);
        self.write(
            self.dev.guest_features_offset(),
            &features.to_le_bytes()[..n],
        );
        Ok(())
    }

    fn set_status(&mut self, status: Status) -> Result<(), TransportError> {
        self.write(self.dev.status_offset(), &[status.bits()]);
        self.call(LEGACY_SET_STATUS, self.descriptor(), "legacy SET_STATUS")
    }

    fn status(&mut self) -> Result<Option<Status>, TransportError> {
        let mut s = [0u8];
        self.read(self.dev.status_offset(), &mut s);
        Ok(Some(Status::from_bits_retain(s[0])))
    }

    fn read_config(&mut self, buf: &mut [u8]) -> Result<(), TransportError> {
        let n = buf.len().min(self.dev.config.len());
        self.read(self.dev.config_offset(), &mut buf[..n]);
        Ok(())
    }

    fn write_config(&mut self, buf: &[u8]) -> Result<(), TransportError> {
        let n = buf.len().min(self.dev.config.len());
        self.write(self.dev.config_offset(), &buf[..n]);
        Ok(())
    }

    fn queue_max(&mut self, index: u16) -> Result<u16, TransportError> {
        Ok(self.dev.queues.get(usize::from(index)).map_or(0, |q| q.num))
    }

    /// The host placed the ring: only its own address and size are accepted.
    fn set_queue(
        &mut self,
        index: u16,
        size: u16,
        at: QueueAddresses,
    ) -> Result<(), TransportError> {
        match self.dev.queues.get(usize::from(index)) {
            None => Err(TransportError::NoSuchQueue { index }),
            Some(q) if q.address == at.desc && q.num == size => Ok(()),
            Some(_) => Err(TransportError::Rejected {
                what: "a ring away from the host's (the legacy host places rings)",
            }),
        }
    }

    fn notify(&mut self, index: u16, _data: Option<u32>) -> Result<(), TransportError> {
        let addr = self
            .ring_address(index)
            .ok_or(TransportError::NoSuchQueue { index })?;
        self.call(LEGACY_NOTIFY, addr, "legacy NOTIFY")
    }

    /// Devices signal with the 0x2603 external interrupt.
    fn wait(&mut self, timeout_us: u64, done: &mut dyn FnMut() -> bool) -> bool {
        crate::arch::timer::wait_until(timeout_us, false, done)
    }
}
