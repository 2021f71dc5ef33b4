//! Driving a device's queues over any transport: ring memory, set-up,
//! notification, and waiting for used buffers with a timeout (the
//! transport knows how its devices signal).

use super::ring::packed::PackedQueue;
use super::ring::split::{split_layout, SplitQueue};
use super::ring::{Buffer, Endian, QueueError, RingMemory, Used, Virtqueue, LEGACY_ALIGN};
use super::transport::{
    has, QueueAddresses, Transport, TransportError, F_EVENT_IDX, F_NOTIFICATION_DATA, F_RING_PACKED,
};
use crate::dma::DmaMemory;
use alloc::boxed::Box;
use alloc::vec::Vec;
use ufmt::{uDisplay, uWrite, Formatter};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriveError {
    Transport(TransportError),
    Queue(QueueError),
    /// The device never returned the buffer.
    Timeout {
        queue: u16,
        in_flight: u16,
    },
    /// The queue does not exist or has no room.
    NoQueue {
        queue: u16,
    },
}

impl From<TransportError> for DriveError {
    fn from(e: TransportError) -> Self {
        DriveError::Transport(e)
    }
}

impl From<QueueError> for DriveError {
    fn from(e: QueueError) -> Self {
        DriveError::Queue(e)
    }
}

impl uDisplay for DriveError {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match self {
            DriveError::Transport(e) => ufmt::uwrite!(f, "{}", e),
            DriveError::Queue(e) => ufmt::uwrite!(f, "{}", e),
            DriveError::Timeout { queue, in_flight } => ufmt::uwrite!(
                f,
                "queue {}: no used buffer within the timeout ({} in flight)",
                queue,
                in_flight
            ),
            DriveError::NoQueue { queue } => ufmt::uwrite!(f, "queue {} does not exist", queue),
        }
    }
}

/// Ring memory over `mem`.
fn ring_memory(mem: &DmaMemory) -> RingMemory {
    // SAFETY: the memory is owned by the queue that gets it and lives as
    // long as that queue (both are fields of `Queue`); its pages stay put
    // when the `DmaMemory` itself moves.
    unsafe { RingMemory::new(mem.addr(), mem.len()) }
}

/// A set-up queue and the memory it lives in.
pub struct Queue {
    pub index: u16,
    pub ring: Box<dyn Virtqueue>,
    pub packed: bool,
    notification_data: bool,
    /// The ring's memory, where the driver placed it (None: the host did).
    _mem: Option<DmaMemory>,
}

/// Largest queue we set up: enough for stress, small enough for TCG.
pub const QUEUE_SIZE_MAX: u16 = 128;

/// Sets up every queue the device has (up to `MAX_QUEUES`), in order.
pub fn setup_all_queues<T: Transport + ?Sized>(
    t: &mut T,
    features: u64,
    packed: bool,
) -> Result<Vec<Queue>, DriveError> {
    let mut queues = Vec::new();
    for index in 0..MAX_QUEUES {
        match setup_queue(t, index, features, packed) {
            Ok(q) => queues.push(q),
            Err(DriveError::NoQueue { .. }) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(queues)
}

/// Queues a device may have that we look for.
pub const MAX_QUEUES: u16 = 256;

/// Sets up queue `index` with a split or packed ring, as `features` allow.
pub fn setup_queue<T: Transport + ?Sized>(
    t: &mut T,
    index: u16,
    features: u64,
    packed: bool,
) -> Result<Queue, DriveError> {
    let max = t.queue_max(index)?;
    if max == 0 {
        return Err(DriveError::NoQueue { queue: index });
    }
    let event_idx = has(features, F_EVENT_IDX);
    let legacy = t.revision() == 0;
    let packed = packed && has(features, F_RING_PACKED) && !legacy;
    // Split sizes are powers of two; a legacy queue must keep the device's size.
    let mut size = if legacy { max } else { max.min(QUEUE_SIZE_MAX) };
    if !packed && !size.is_power_of_two() {
        size = 1 << (15 - size.leading_zeros());
    }
    let host = t.host_ring(index, size)?;
    // The driver's own memory for the ring, unless the host placed it.
    let place = |total: usize| match host {
        Some(at) => (at, None),
        None => {
            let mem = DmaMemory::new(total);
            (ring_memory(&mem), Some(mem))
        }
    };
    let (ring, mem): (Box<dyn Virtqueue>, Option<DmaMemory>) = if packed {
        let layout = super::ring::packed::packed_layout(size)?;
        let (at, mem) = place(layout.total);
        (Box::new(PackedQueue::new(at, size, event_idx)?), mem)
    } else {
        let layout = split_layout(size, legacy.then_some(LEGACY_ALIGN))?;
        let (at, mem) = place(layout.total);
        let endian = if legacy { Endian::Big } else { Endian::Little };
        (
            Box::new(SplitQueue::new(at, size, endian, legacy, event_idx)?),
            mem,
        )
    };
    let at = QueueAddresses {
        desc: ring.desc_area(),
        driver: ring.driver_area(),
        device: ring.device_area(),
    };
    t.set_queue(index, size, at)?;
    Ok(Queue {
        index,
        ring,
        packed,
        notification_data: has(features, F_NOTIFICATION_DATA),
        _mem: mem,
    })
}

/// How long a device may take to return a buffer.
pub const USED_TIMEOUT_US: u64 = 2_000_000;

impl Queue {
    /// Makes `chain` available (indirectly when `table` is given) and
    /// notifies the device if the ring says so. Returns the token.
    pub fn submit<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        chain: &[Buffer],
        table: Option<RingMemory>,
    ) -> Result<u16, DriveError> {
        let token = match table {
            Some(mem) => self.ring.add_indirect(chain, mem)?,
            None => self.ring.add(chain)?,
        };
        if self.ring.should_notify() {
            let data = self
                .notification_data
                .then(|| u32::from(self.ring.next_avail_index()));
            t.notify(self.index, data)?;
        }
        Ok(token)
    }

    /// Waits for the next used buffer, as `t` waits for its devices.
    pub fn wait_used<T: Transport + ?Sized>(&mut self, t: &mut T) -> Result<Used, DriveError> {
        let mut got = None;
        let mut err = None;
        let ring = &mut self.ring;
        t.wait(USED_TIMEOUT_US, &mut || match ring.pop_used() {
            Ok(Some(u)) => {
                got = Some(u);
                true
            }
            Ok(None) => false,
            Err(e) => {
                err = Some(e);
                true
            }
        });
        if let Some(e) = err {
            return Err(e.into());
        }
        got.ok_or(DriveError::Timeout {
            queue: self.index,
            in_flight: self.ring.in_flight(),
        })
    }
}
