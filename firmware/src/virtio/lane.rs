//! One queue of a virtio-ccw device driven by one CPU while others drive
//! the device's other queues: a transport that only notifies that queue
//! (DIAG 0x500 function 3, with a cookie of its own) and waits for it.
//!
//! The device was set up whole beforehand on one CPU; every command that
//! would need a channel program (features, status, configuration, rings,
//! reset) is refused here, so a lane never gives the device an address:
//! the buffers its queue makes available are kept by the queue's own
//! memory list ([`Queue::hold_apart`](super::queue::Queue::hold_apart)).

use super::ccw::{notify_queue, poll_until};
use super::transport::{QueueRings, Status, Transport, TransportError};
use crate::arch::timer;
use crate::dma::DeviceHeld;

/// Notifies queue `index` of subchannel `sid` and waits for it.
pub struct Lane {
    sid: u32,
    index: u16,
    revision: u8,
    /// The host's cookie for this queue, fed back on the next notify.
    cookie: u64,
    held: DeviceHeld,
}

impl Lane {
    /// The lane of queue `index` on the device at `sid` (set up at
    /// `revision`); `held` is the queue's own memory list.
    pub fn new(sid: u32, index: u16, revision: u8, held: DeviceHeld) -> Lane {
        Lane {
            sid,
            index,
            revision,
            cookie: 0,
            held,
        }
    }

    pub fn index(&self) -> u16 {
        self.index
    }
}

const REFUSED: TransportError = TransportError::WrongRings {
    why: "a lane only notifies and waits (the device is set up beforehand)",
};

// SAFETY: a lane gives the device no address at all (`set_queue` and
// every channel command are refused) and never lets go of memory (it
// cannot reset): the queue it serves keeps its buffers' memory.
unsafe impl Transport for Lane {
    fn revision(&self) -> u8 {
        self.revision
    }

    fn reset(&mut self) -> Result<(), TransportError> {
        Err(REFUSED)
    }

    fn held(&self) -> DeviceHeld {
        self.held.clone()
    }

    fn device_features(&mut self) -> Result<u64, TransportError> {
        Err(REFUSED)
    }

    fn set_driver_features(&mut self, _: u64) -> Result<(), TransportError> {
        Err(REFUSED)
    }

    fn set_status(&mut self, _: Status) -> Result<(), TransportError> {
        Err(REFUSED)
    }

    fn status(&mut self) -> Result<Option<Status>, TransportError> {
        Err(REFUSED)
    }

    fn read_config(&mut self, _: &mut [u8]) -> Result<(), TransportError> {
        Err(REFUSED)
    }

    fn write_config(&mut self, _: &[u8]) -> Result<(), TransportError> {
        Err(REFUSED)
    }

    fn queue_max(&mut self, _: u16) -> Result<u16, TransportError> {
        Err(REFUSED)
    }

    fn set_queue(&mut self, _: u16, _: QueueRings) -> Result<(), TransportError> {
        Err(REFUSED)
    }

    fn notify(&mut self, index: u16, data: Option<u32>) -> Result<(), TransportError> {
        if index != self.index {
            return Err(TransportError::NoSuchQueue { index });
        }
        notify_queue(self.sid, index, data, &mut self.cookie)
    }

    /// The device signals with I/O interrupts, which any CPU may take
    /// while I/O is shared: the one that does wakes this one.
    fn wait(&mut self, timeout_us: u64, done: &mut dyn FnMut() -> bool) -> bool {
        timer::wait_until(timeout_us, true, done)
    }

    fn poll(&mut self, timeout_us: u64, done: &mut dyn FnMut() -> bool) -> bool {
        poll_until(timeout_us, done)
    }
}
