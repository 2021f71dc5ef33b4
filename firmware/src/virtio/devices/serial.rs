//! virtio-console, QEMU's virtio-serial (virtio 1.x section 5.3): ports
//! that carry bytes each way. Port 0's receive and transmit queues are 0
//! and 1; with MULTIPORT the control queues are 2 (device to driver) and
//! 3 (driver to device), and port n >= 1 has queues 2n+2 and 2n+3. Control
//! messages are 8 bytes (port id, event, value) in the device's byte
//! order, PORT_NAME followed by the name.

use super::super::queue::{setup_queue, DmaBuffer, DriveError, Queue};
use super::super::transport::{Transport, TransportError};
use super::order::Order;
use crate::dma::DmaMemory;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use ufmt::{uDisplay, uWrite, Formatter};

pub const DEVICE_ID: u32 = super::super::ids::CONSOLE;

/// Feature bits: `cols`/`rows` are valid, several ports and the control
/// queues, the `emerg_wr` field.
pub const F_SIZE: u32 = 0;
pub const F_MULTIPORT: u32 = 1;
pub const F_EMERG_WRITE: u32 = 2;

/// Configuration space: cols (u16), rows (u16), max_nr_ports (u32),
/// emerg_wr (u32, present where EMERG_WRITE is offered).
pub const CONFIG_LEN: usize = 12;
pub const CONFIG_LEN_NO_EMERG: usize = 8;
const EMERG_WR: usize = 8;

/// Control queues (MULTIPORT only).
pub const CONTROL_RX: u16 = 2;
pub const CONTROL_TX: u16 = 3;

/// The receive (device to driver) queue of `port`.
pub fn rx_queue(port: u32) -> u16 {
    if port == 0 {
        0
    } else {
        (2 * port + 2) as u16
    }
}

/// The transmit (driver to device) queue of `port`.
pub fn tx_queue(port: u32) -> u16 {
    rx_queue(port) + 1
}

/// Control events.
pub const DEVICE_READY: u16 = 0;
pub const PORT_ADD: u16 = 1;
pub const PORT_REMOVE: u16 = 2;
pub const PORT_READY: u16 = 3;
pub const CONSOLE_PORT: u16 = 4;
pub const RESIZE: u16 = 5;
pub const PORT_OPEN: u16 = 6;
pub const PORT_NAME: u16 = 7;

pub fn event_name(event: u16) -> &'static str {
    match event {
        DEVICE_READY => "DEVICE_READY",
        PORT_ADD => "PORT_ADD",
        PORT_REMOVE => "PORT_REMOVE",
        PORT_READY => "PORT_READY",
        CONSOLE_PORT => "CONSOLE_PORT",
        RESIZE => "RESIZE",
        PORT_OPEN => "PORT_OPEN",
        PORT_NAME => "PORT_NAME",
        _ => "unknown event",
    }
}

/// The configuration as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub cols: u16,
    pub rows: u16,
    pub max_nr_ports: u32,
}

impl Config {
    /// From the first [`CONFIG_LEN_NO_EMERG`] bytes of the space.
    pub fn parse(b: &[u8; CONFIG_LEN_NO_EMERG], order: Order) -> Self {
        Config {
            cols: order.u16(&b[0..2]),
            rows: order.u16(&b[2..4]),
            max_nr_ports: order.u32(&b[4..8]),
        }
    }
}

/// The whole configuration space with `emerg_wr` holding `byte`: what
/// the driver writes for one emergency byte (`read` is the space as read).
pub fn emergency_write(read: &[u8; CONFIG_LEN], byte: u8, order: Order) -> [u8; CONFIG_LEN] {
    let mut out = *read;
    out[EMERG_WR..].copy_from_slice(&order.put32(u32::from(byte)));
    out
}

/// A control message's fixed part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Control {
    pub id: u32,
    pub event: u16,
    pub value: u16,
}

pub const CONTROL_LEN: usize = 8;

impl Control {
    pub fn encode(&self, order: Order) -> [u8; CONTROL_LEN] {
        let mut b = [0u8; CONTROL_LEN];
        b[0..4].copy_from_slice(&order.put32(self.id));
        let (e, v) = match order {
            Order::Little => (self.event.to_le_bytes(), self.value.to_le_bytes()),
            Order::Big => (self.event.to_be_bytes(), self.value.to_be_bytes()),
        };
        b[4..6].copy_from_slice(&e);
        b[6..8].copy_from_slice(&v);
        b
    }
}

/// A message the device sent: the fixed part and, for PORT_NAME, the
/// name (the bytes after it up to a NUL or the end).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub control: Control,
    pub name: Option<String>,
}

/// A control message the driver cannot take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageError {
    Short { len: usize },
    NameNotText,
}

impl uDisplay for MessageError {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match self {
            MessageError::Short { len } => ufmt::uwrite!(
                f,
                "a {}-byte control message (at least {} expected)",
                *len,
                CONTROL_LEN
            ),
            MessageError::NameNotText => f.write_str("a PORT_NAME whose name is not ASCII text"),
        }
    }
}

impl Message {
    pub fn decode(b: &[u8], order: Order) -> Result<Self, MessageError> {
        if b.len() < CONTROL_LEN {
            return Err(MessageError::Short { len: b.len() });
        }
        let control = Control {
            id: order.u32(&b[0..4]),
            event: order.u16(&b[4..6]),
            value: order.u16(&b[6..8]),
        };
        let name = if control.event == PORT_NAME {
            let rest = &b[CONTROL_LEN..];
            let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
            let text = core::str::from_utf8(&rest[..end]).map_err(|_| MessageError::NameNotText)?;
            if !text.bytes().all(|c| c.is_ascii_graphic()) {
                return Err(MessageError::NameNotText);
            }
            Some(String::from(text))
        } else {
            None
        };
        Ok(Message { control, name })
    }
}

/// Bytes each control receive buffer holds: a PORT_NAME with a long name.
pub const CONTROL_BUF: u32 = 512;

/// The control queues of a MULTIPORT device: receive buffers kept posted,
/// messages sent one at a time.
pub struct ControlQueues {
    rx: Queue,
    tx: Queue,
    rx_mem: Rc<DmaMemory>,
    /// Token of the buffer in each receive slot.
    rx_slots: Vec<Option<u16>>,
    tx_mem: Rc<DmaMemory>,
    order: Order,
}

impl ControlQueues {
    /// Sets up queues 2 and 3 and posts a receive buffer in every
    /// descriptor of queue 2 (the device drops a message it has no
    /// buffer for).
    pub fn setup<T: Transport + ?Sized>(t: &mut T, features: u64) -> Result<Self, DriveError> {
        let mut rx = setup_queue(t, CONTROL_RX, features, false)?;
        let tx = setup_queue(t, CONTROL_TX, features, false)?;
        rx.enable_interrupts(false);
        let slots = usize::from(rx.size());
        let rx_mem = Rc::new(DmaMemory::new(slots * CONTROL_BUF as usize));
        let mut c = ControlQueues {
            rx,
            tx,
            rx_mem,
            rx_slots: alloc::vec![None; slots],
            tx_mem: Rc::new(DmaMemory::new(CONTROL_LEN)),
            order: Order::for_revision(t.revision()),
        };
        c.tx.enable_interrupts(false);
        for slot in 0..slots {
            c.post(slot)?;
        }
        c.rx.kick(t)?;
        Ok(c)
    }

    fn post(&mut self, slot: usize) -> Result<(), DriveError> {
        let buf = DmaBuffer {
            mem: &self.rx_mem,
            offset: slot * CONTROL_BUF as usize,
            len: CONTROL_BUF,
            device_writable: true,
        };
        self.rx_slots[slot] = Some(self.rx.add(&[buf], false)?);
        Ok(())
    }

    /// The next message the device sent, if any, without waiting; its
    /// buffer is posted again.
    pub fn try_receive<T: Transport + ?Sized>(
        &mut self,
        t: &mut T,
    ) -> Result<Option<Result<Message, MessageError>>, DriveError> {
        let Some(used) = self.rx.try_used()? else {
            return Ok(None);
        };
        let slot = self
            .rx_slots
            .iter()
            .position(|s| *s == Some(used.token))
            .ok_or(DriveError::NoQueue { queue: CONTROL_RX })?;
        let mut bytes = alloc::vec![0u8; used.len as usize];
        self.rx_mem
            .read(slot * CONTROL_BUF as usize, bytes.as_mut_slice());
        self.post(slot)?;
        self.rx.kick(t)?;
        Ok(Some(Message::decode(&bytes, self.order)))
    }

    /// Sends `c` and waits until the device has taken it (QEMU handles a
    /// message, and sends what it answers with, before returning it).
    pub fn send<T: Transport + ?Sized>(&mut self, t: &mut T, c: Control) -> Result<(), DriveError> {
        self.tx_mem.write(0, &c.encode(self.order));
        let buf = DmaBuffer {
            mem: &self.tx_mem,
            offset: 0,
            len: CONTROL_LEN as u32,
            device_writable: false,
        };
        let token = self.tx.submit(t, &[buf], false)?;
        let used = self.tx.poll_used(t)?;
        if used.token != token {
            return Err(DriveError::Transport(TransportError::WrongRings {
                why: "the control transmit queue returned another buffer",
            }));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_layout() {
        assert_eq!((rx_queue(0), tx_queue(0)), (0, 1));
        assert_eq!((rx_queue(1), tx_queue(1)), (4, 5));
        assert_eq!((rx_queue(30), tx_queue(30)), (62, 63));
    }

    #[test]
    fn control_messages_both_orders() {
        let c = Control {
            id: 5,
            event: PORT_OPEN,
            value: 1,
        };
        assert_eq!(c.encode(Order::Little), [5, 0, 0, 0, 6, 0, 1, 0]);
        assert_eq!(c.encode(Order::Big), [0, 0, 0, 5, 0, 6, 0, 1]);
        for o in [Order::Little, Order::Big] {
            let m = Message::decode(&c.encode(o), o).unwrap();
            assert_eq!((m.control, m.name), (c, None));
        }
        let mut named = Control {
            id: 2,
            event: PORT_NAME,
            value: 1,
        }
        .encode(Order::Little)
        .to_vec();
        named.extend_from_slice(b"zv.a\0");
        let m = Message::decode(&named, Order::Little).unwrap();
        assert_eq!(m.name.as_deref(), Some("zv.a"));
        assert_eq!(
            Message::decode(&named[..7], Order::Little),
            Err(MessageError::Short { len: 7 })
        );
        named[9] = 0xff;
        assert_eq!(
            Message::decode(&named, Order::Little),
            Err(MessageError::NameNotText)
        );
    }

    #[test]
    fn config_and_emergency_write() {
        let raw = [80, 0, 25, 0, 4, 0, 0, 0];
        assert_eq!(
            Config::parse(&raw, Order::Little),
            Config {
                cols: 80,
                rows: 25,
                max_nr_ports: 4
            }
        );
        let mut read = [0u8; CONFIG_LEN];
        read[..8].copy_from_slice(&raw);
        let w = emergency_write(&read, 0x41, Order::Little);
        assert_eq!(&w[..8], &raw);
        assert_eq!(&w[8..], &[0x41, 0, 0, 0]);
        assert_eq!(
            &emergency_write(&read, 0x41, Order::Big)[8..],
            &[0, 0, 0, 0x41]
        );
    }
}
