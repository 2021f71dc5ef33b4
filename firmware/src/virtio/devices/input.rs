//! virtio-input (virtio 1.2 section 5.8): the device writes 8-byte events
//! into buffers of the event queue; the driver writes events (LEDs) to the
//! status queue. The configuration space is a window: the driver writes a
//! selector and sub-selector, then reads the size and the union the
//! device fills for that pair (a string, ids, a bitmap, an axis's range).

use super::super::queue::{setup_queue, DmaBuffer, DriveError, Queue};
use super::super::ring::{QueueError, Used};
use super::super::transport::{Transport, TransportError};
use crate::dma::DmaMemory;
use alloc::rc::Rc;
use alloc::vec::Vec;
use ufmt::{uDisplay, uWrite, Formatter};
pub use zvtest_contract::input::{Event, EVENT_LEN};

pub const DEVICE_ID: u32 = super::super::ids::INPUT;
pub const EVENT_QUEUE: u16 = 0;
pub const STATUS_QUEUE: u16 = 1;

/// Configuration selectors (`select`).
pub const CFG_UNSET: u8 = 0x00;
pub const CFG_ID_NAME: u8 = 0x01;
pub const CFG_ID_SERIAL: u8 = 0x02;
pub const CFG_ID_DEVIDS: u8 = 0x03;
pub const CFG_PROP_BITS: u8 = 0x10;
pub const CFG_EV_BITS: u8 = 0x11;
pub const CFG_ABS_INFO: u8 = 0x12;

/// Bytes of the union; the configuration space is 8 bytes of header
/// (select, subsel, size, 5 reserved) and the union.
pub const UNION_LEN: usize = 128;
pub const CONFIG_LEN: usize = 8 + UNION_LEN;

/// A selector's answer the driver cannot take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    Transport(TransportError),
    /// `size` says more bytes than the union holds.
    SizePastUnion {
        select: u8,
        subsel: u8,
        size: u8,
    },
    /// The device shows another selector than the one written.
    WrongSelector {
        wrote: (u8, u8),
        read: (u8, u8),
    },
    /// A fixed-size answer (ids, axis info) of the wrong size.
    WrongSize {
        select: u8,
        subsel: u8,
        size: u8,
        want: u8,
    },
}

impl From<TransportError> for ConfigError {
    fn from(e: TransportError) -> Self {
        ConfigError::Transport(e)
    }
}

impl uDisplay for ConfigError {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match *self {
            ConfigError::Transport(e) => uDisplay::fmt(&e, f),
            ConfigError::SizePastUnion {
                select,
                subsel,
                size,
            } => ufmt::uwrite!(
                f,
                "select {}/{}: size {} past the {}-byte union",
                select,
                subsel,
                size,
                UNION_LEN
            ),
            ConfigError::WrongSelector { wrote, read } => ufmt::uwrite!(
                f,
                "selector {}/{} written, {}/{} read back",
                wrote.0,
                wrote.1,
                read.0,
                read.1
            ),
            ConfigError::WrongSize {
                select,
                subsel,
                size,
                want,
            } => ufmt::uwrite!(
                f,
                "select {}/{}: size {} where {} bytes belong",
                select,
                subsel,
                size,
                want
            ),
        }
    }
}

/// What the device shows for one selector pair: the first `size` bytes of
/// the union count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selected {
    pub select: u8,
    pub subsel: u8,
    pub size: u8,
    pub union: [u8; UNION_LEN],
}

impl Selected {
    /// Decodes the configuration space as read after selecting
    /// (`select`, `subsel`).
    pub fn decode(b: &[u8; CONFIG_LEN], select: u8, subsel: u8) -> Result<Self, ConfigError> {
        let (read_select, read_subsel, size) = (b[0], b[1], b[2]);
        // An answer must be for the selector written; where there is none
        // (size 0) QEMU clears the whole window, selector bytes included.
        if size != 0 && (read_select, read_subsel) != (select, subsel) {
            return Err(ConfigError::WrongSelector {
                wrote: (select, subsel),
                read: (read_select, read_subsel),
            });
        }
        if usize::from(size) > UNION_LEN {
            return Err(ConfigError::SizePastUnion {
                select,
                subsel,
                size,
            });
        }
        let mut union = [0u8; UNION_LEN];
        union.copy_from_slice(&b[8..]);
        Ok(Selected {
            select,
            subsel,
            size,
            union,
        })
    }

    /// The bytes that count.
    pub fn bytes(&self) -> &[u8] {
        &self.union[..usize::from(self.size)]
    }

    fn fixed(&self, want: usize) -> Result<&[u8], ConfigError> {
        if usize::from(self.size) != want {
            return Err(ConfigError::WrongSize {
                select: self.select,
                subsel: self.subsel,
                size: self.size,
                want: want as u8,
            });
        }
        Ok(self.bytes())
    }

    /// The answer to ID_DEVIDS.
    pub fn devids(&self) -> Result<DevIds, ConfigError> {
        let b = self.fixed(8)?;
        let w = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Ok(DevIds {
            bustype: w(0),
            vendor: w(2),
            product: w(4),
            version: w(6),
        })
    }

    /// The answer to ABS_INFO.
    pub fn abs_info(&self) -> Result<AbsInfo, ConfigError> {
        let b = self.fixed(20)?;
        let w = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(AbsInfo {
            min: w(0),
            max: w(4),
            fuzz: w(8),
            flat: w(12),
            res: w(16),
        })
    }

    /// The set bits of a bitmap answer (PROP_BITS, EV_BITS).
    pub fn bits(&self) -> Vec<u16> {
        let mut v = Vec::new();
        for (i, byte) in self.bytes().iter().enumerate() {
            for bit in 0..8 {
                if byte & (1 << bit) != 0 {
                    v.push((i * 8 + bit) as u16);
                }
            }
        }
        v
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevIds {
    pub bustype: u16,
    pub vendor: u16,
    pub product: u16,
    pub version: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbsInfo {
    pub min: u32,
    pub max: u32,
    pub fuzz: u32,
    pub flat: u32,
    pub res: u32,
}

/// Selects (`select`, `subsel`) and reads what the device shows. The
/// write carries the two selector bytes only (virtio-ccw writes from
/// offset 0; the rest is the device's).
pub fn select<T: Transport + ?Sized>(
    t: &mut T,
    select: u8,
    subsel: u8,
) -> Result<Selected, ConfigError> {
    t.write_config(&[select, subsel])?;
    let mut b = [0u8; CONFIG_LEN];
    t.read_config(&mut b)?;
    Selected::decode(&b, select, subsel)
}

/// An event buffer the device returned: its slot, and the event or (the
/// used length not an event's) that length.
pub type Taken = (u16, Result<Event, u32>);

/// A device with both queues: `slots` event buffers of [`EVENT_LEN`]
/// bytes each in one piece of memory, and status buffers likewise.
pub struct Input {
    events: Queue,
    status: Queue,
    event_mem: Rc<DmaMemory>,
    status_mem: Rc<DmaMemory>,
    /// The event slot of each token made available (index: token).
    slot_of: Vec<Option<u16>>,
    status_slot_of: Vec<Option<u16>>,
}

impl Input {
    pub fn setup<T: Transport + ?Sized>(t: &mut T, features: u64) -> Result<Self, DriveError> {
        let events = setup_queue(t, EVENT_QUEUE, features, false)?;
        let status = setup_queue(t, STATUS_QUEUE, features, false)?;
        let event_mem = Rc::new(DmaMemory::new(usize::from(events.size()) * EVENT_LEN));
        let status_mem = Rc::new(DmaMemory::new(usize::from(status.size()) * EVENT_LEN));
        Ok(Input {
            slot_of: alloc::vec![None; usize::from(events.size())],
            status_slot_of: alloc::vec![None; usize::from(status.size())],
            events,
            status,
            event_mem,
            status_mem,
        })
    }

    pub fn event_slots(&self) -> u16 {
        self.events.size()
    }

    pub fn status_slots(&self) -> u16 {
        self.status.size()
    }

    /// Makes event slot `slot` available (not notifying: [`Input::kick`]).
    pub fn post(&mut self, slot: u16) -> Result<(), DriveError> {
        self.event_mem
            .write(usize::from(slot) * EVENT_LEN, &[0xa5; EVENT_LEN]);
        let chain = [DmaBuffer {
            mem: &self.event_mem,
            offset: usize::from(slot) * EVENT_LEN,
            len: EVENT_LEN as u32,
            device_writable: true,
        }];
        let token = self.events.add(&chain, false)?;
        set(&mut self.slot_of, token, slot);
        Ok(())
    }

    pub fn kick<T: Transport + ?Sized>(&mut self, t: &mut T) -> Result<(), DriveError> {
        self.events.kick(t)
    }

    /// Asks the device for used-buffer interrupts on the event queue, or not.
    pub fn event_interrupts(&mut self, on: bool) {
        self.events.enable_interrupts(on);
    }

    /// The next event the device returned, if any, and its slot (to post
    /// again); the used length must be the event's.
    pub fn take_event(&mut self) -> Result<Option<Taken>, DriveError> {
        let Some(Used { token, len }) = self.events.try_used()? else {
            return Ok(None);
        };
        let slot = self
            .slot_of
            .get_mut(usize::from(token))
            .and_then(Option::take)
            .ok_or(DriveError::Timeout {
                queue: EVENT_QUEUE,
                in_flight: 0,
            })?;
        if len as usize != EVENT_LEN {
            return Ok(Some((slot, Err(len))));
        }
        let mut b = [0u8; EVENT_LEN];
        self.event_mem.read(usize::from(slot) * EVENT_LEN, &mut b);
        Ok(Some((slot, Ok(Event::decode(&b)))))
    }

    /// Writes `e` to the status queue in slot `slot` and notifies.
    pub fn send_status<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
        slot: u16,
        e: Event,
    ) -> Result<u16, DriveError> {
        self.status_mem
            .write(usize::from(slot) * EVENT_LEN, &e.encode());
        let chain = [DmaBuffer {
            mem: &self.status_mem,
            offset: usize::from(slot) * EVENT_LEN,
            len: EVENT_LEN as u32,
            device_writable: false,
        }];
        let token = self.status.submit(t, &chain, false)?;
        set(&mut self.status_slot_of, token, slot);
        Ok(token)
    }

    /// The next status buffer the device returned, if any: its slot and
    /// the used length (which, the buffer being device-readable only,
    /// should be 0; a longer one is reported, not refused).
    pub fn take_status(&mut self) -> Result<Option<(u16, u32)>, DriveError> {
        let (token, len) = match self.status.try_used() {
            Ok(None) => return Ok(None),
            Ok(Some(Used { token, len })) => (token, len),
            // Consumed all the same: only the length is off.
            Err(DriveError::Queue(QueueError::UsedLenTooLong { id, len, .. })) => (id, len),
            Err(e) => return Err(e),
        };
        let slot = self
            .status_slot_of
            .get_mut(usize::from(token))
            .and_then(Option::take)
            .ok_or(DriveError::Timeout {
                queue: STATUS_QUEUE,
                in_flight: 0,
            })?;
        Ok(Some((slot, len)))
    }

    pub fn status_in_flight(&self) -> u16 {
        self.status.in_flight()
    }
}

fn set(v: &mut Vec<Option<u16>>, token: u16, slot: u16) {
    let i = usize::from(token);
    if v.len() <= i {
        v.resize(i + 1, None);
    }
    v[i] = Some(slot);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(select: u8, subsel: u8, size: u8, union: &[u8]) -> [u8; CONFIG_LEN] {
        let mut b = [0u8; CONFIG_LEN];
        b[0] = select;
        b[1] = subsel;
        b[2] = size;
        b[8..8 + union.len()].copy_from_slice(union);
        b
    }

    #[test]
    fn strings_ids_bits_and_axes() {
        let s = Selected::decode(&space(CFG_ID_NAME, 0, 3, b"abcd"), CFG_ID_NAME, 0).unwrap();
        assert_eq!(s.bytes(), b"abc");
        let ids = [6, 0, 0x27, 0x06, 2, 0, 1, 0];
        let d = Selected::decode(&space(CFG_ID_DEVIDS, 0, 8, &ids), CFG_ID_DEVIDS, 0).unwrap();
        assert_eq!(
            d.devids().unwrap(),
            DevIds {
                bustype: 6,
                vendor: 0x0627,
                product: 2,
                version: 1
            }
        );
        let b = Selected::decode(&space(CFG_EV_BITS, 2, 2, &[3, 1]), CFG_EV_BITS, 2).unwrap();
        assert_eq!(b.bits(), [0, 1, 8]);
        let mut abs = [0u8; 20];
        abs[4..8].copy_from_slice(&0x7fffu32.to_le_bytes());
        let a = Selected::decode(&space(CFG_ABS_INFO, 0, 20, &abs), CFG_ABS_INFO, 0).unwrap();
        assert_eq!(a.abs_info().unwrap().max, 0x7fff);
        assert_eq!(a.abs_info().unwrap().min, 0);
    }

    #[test]
    fn bad_answers_are_named() {
        assert_eq!(
            Selected::decode(&space(CFG_ID_NAME, 0, 129, &[]), CFG_ID_NAME, 0),
            Err(ConfigError::SizePastUnion {
                select: CFG_ID_NAME,
                subsel: 0,
                size: 129
            })
        );
        assert!(Selected::decode(&space(CFG_ID_NAME, 0, 128, &[]), CFG_ID_NAME, 0).is_ok());
        let none = Selected::decode(&space(0, 0, 0, &[]), CFG_ID_SERIAL, 0).unwrap();
        assert_eq!(none.bytes(), b"");
        assert_eq!(
            Selected::decode(&space(CFG_EV_BITS, 1, 1, &[]), CFG_EV_BITS, 2),
            Err(ConfigError::WrongSelector {
                wrote: (CFG_EV_BITS, 2),
                read: (CFG_EV_BITS, 1)
            })
        );
        let short = Selected::decode(&space(CFG_ID_DEVIDS, 0, 6, &[]), CFG_ID_DEVIDS, 0).unwrap();
        assert!(matches!(
            short.devids(),
            Err(ConfigError::WrongSize {
                size: 6,
                want: 8,
                ..
            })
        ));
        let long = Selected::decode(&space(CFG_ABS_INFO, 0, 24, &[]), CFG_ABS_INFO, 0).unwrap();
        assert!(long.abs_info().is_err());
    }
}
