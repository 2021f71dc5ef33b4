//! The legacy s390-virtio transport (the seed's: KVM guests before
//! virtio-ccw) behind the same `Transport` interface as virtio-ccw.
//!
//! Device state lives in the host's device page (see the contract's
//! `legacy_page`): the driver writes a device's status byte, its accepted
//! feature bits and each queue's token there. It tells the host through
//! three hypercalls, DIAG 0x500 functions 0 (NOTIFY, the ring's address),
//! 1 (RESET) and 2 (SET_STATUS) (both the descriptor's address); the host
//! answers with external interrupt 0x2603, whose 64-bit parameter is the
//! token of the queue concerned. The host places the rings, in storage it
//! sets aside above the guest's; the driver only uses them.
//!
//! All of that goes through a [`LegacyHost`]: on s390x the real DIAG and
//! interrupt ([`diag::DiagHost`]); in the unit tests a model host. The
//! transport parses the page itself and checks every ring the host
//! placed, so a malformed page or ring is an error, never an access out
//! of bounds. What it cannot check — that the host's ring storage is
//! storage nothing else uses — is the host's promise: [`LegacyHost`] is an
//! unsafe trait. The request buffers a queue hands the device are kept
//! with the device's memory, as on virtio-ccw (see `transport`), until a
//! RESET answers 0; a transport dropped while it holds some resets the
//! device first.

#[cfg(target_arch = "s390x")]
pub mod diag;
#[cfg(test)]
mod tests;

use super::legacy_page::{self, LegacyDevice, LegacyPageError, PAGE_SIZE};
use super::ring::{split_layout, RingMemory, LEGACY_ALIGN};
use super::transport::{HostRing, QueueRings, Status, Transport, TransportError};
use crate::dma::DeviceHeld;
use alloc::vec::Vec;
use core::ops::Range;
use ufmt::{uDisplay, uWrite, Formatter};

/// The hypercalls (DIAG 0x500 function numbers, the seed's
/// KVM_S390_VIRTIO_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegacyCall {
    /// r2: the ring's address.
    Notify = 0,
    /// r2: the device descriptor's address.
    Reset = 1,
    /// r2: the device descriptor's address; the status is in the page.
    SetStatus = 2,
}

/// External interruption code of the host's notifications.
pub const EXT_VIRTIO: u16 = 0x2603;

/// What the low byte of a 0x2603 interrupt's 32-bit parameter says.
pub const PARAM_VRING: u8 = 0;
pub const PARAM_CONFIG_CHANGED: u8 = 1;
pub const PARAM_DEVICE_ADDED: u8 = 2;

/// One 0x2603 interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegacyInterrupt {
    /// The 32-bit parameter's low byte: `PARAM_*`.
    pub kind: u8,
    /// The 64-bit parameter: a queue's token.
    pub token: u64,
}

/// The legacy host as the guest sees it: its device page, the storage it
/// sets aside for rings, its hypercalls and its interrupt.
///
/// # Safety
///
/// The transport makes queues over rings in [`LegacyHost::ring_window`]
/// on the host's word. An implementation promises that the window is
/// storage, valid for reads and writes for the rest of the run (a queue
/// may outlive the host), in which no Rust object lives and which no
/// allocator hands out, so that the firmware touches it only through the
/// rings the host hands out (and the device page, should the window hold
/// it: the transport keeps rings clear of the page); and that
/// [`LegacyHost::claim_ring`] says yes at most once for any byte of the
/// window, whichever host over that window is asked, so that no two
/// queues share a ring.
pub unsafe trait LegacyHost {
    /// The page's real address (descriptor addresses are relative to it).
    fn page_addr(&self) -> u64;
    /// Bytes of the page that are storage: normally `PAGE_SIZE`, fewer
    /// where storage ends inside it.
    fn page_len(&self) -> usize;
    /// Copies `buf.len()` page bytes from `offset`; false, nothing read,
    /// past `page_len`.
    fn read_page(&mut self, offset: usize, buf: &mut [u8]) -> bool;
    /// Writes `data` at page `offset`; false, nothing written, past
    /// `page_len`.
    fn write_page(&mut self, offset: usize, data: &[u8]) -> bool;
    /// Where the host may place rings: storage nothing in the firmware
    /// uses. A ring must lie wholly inside.
    fn ring_window(&self) -> Range<u64>;
    /// Records `ring` (inside the window) as handed to a queue; false,
    /// nothing recorded, where it overlaps a ring handed out before (or
    /// the host can record no more).
    fn claim_ring(&mut self, ring: Range<u64>) -> bool;
    /// Hypercall `call` with `arg` in r2: its result, or None when the host
    /// does not serve it (a program interrupt).
    fn hypercall(&mut self, call: LegacyCall, arg: u64) -> Option<i64>;
    /// The 0x2603 interrupts taken since the last call, oldest first.
    fn take_interrupts(&mut self) -> Vec<LegacyInterrupt>;
    /// Waits, taking the host's interrupts, until `done()` holds or
    /// `timeout_us` passes; says whether it held.
    fn wait(&mut self, timeout_us: u64, done: &mut dyn FnMut() -> bool) -> bool;
}

// SAFETY: every method is `H`'s, whose implementation keeps the promise.
unsafe impl<H: LegacyHost + ?Sized> LegacyHost for &mut H {
    fn page_addr(&self) -> u64 {
        (**self).page_addr()
    }
    fn page_len(&self) -> usize {
        (**self).page_len()
    }
    fn read_page(&mut self, offset: usize, buf: &mut [u8]) -> bool {
        (**self).read_page(offset, buf)
    }
    fn write_page(&mut self, offset: usize, data: &[u8]) -> bool {
        (**self).write_page(offset, data)
    }
    fn ring_window(&self) -> Range<u64> {
        (**self).ring_window()
    }
    fn claim_ring(&mut self, ring: Range<u64>) -> bool {
        (**self).claim_ring(ring)
    }
    fn hypercall(&mut self, call: LegacyCall, arg: u64) -> Option<i64> {
        (**self).hypercall(call, arg)
    }
    fn take_interrupts(&mut self) -> Vec<LegacyInterrupt> {
        (**self).take_interrupts()
    }
    fn wait(&mut self, timeout_us: u64, done: &mut dyn FnMut() -> bool) -> bool {
        (**self).wait(timeout_us, done)
    }
}

/// Why a device of the page cannot be driven.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LegacyError {
    /// The page (its readable part) does not parse.
    Page(LegacyPageError),
    /// The page lists fewer devices.
    NoDevice { index: usize, devices: usize },
    /// RESET raised a program interrupt: no legacy host behind the page.
    NotServed,
}

impl uDisplay for LegacyError {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match self {
            LegacyError::Page(e) => ufmt::uwrite!(f, "{}", e),
            LegacyError::NoDevice { index, devices } => {
                ufmt::uwrite!(f, "device {} asked for, the page lists {}", index, devices)
            }
            LegacyError::NotServed => f.write_str("the legacy hypercalls are not served"),
        }
    }
}

/// Tokens carry this tag, the descriptor's page offset and the queue index.
const TOKEN_TAG: u64 = 0x7a76_0000_0000_0000;

/// Interrupts a transport has attributed to its device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interrupts {
    /// Used-buffer notifications, by queue.
    pub vring: Vec<u32>,
    pub config_changed: u32,
    /// Interrupts with a token that is none of this device's queues.
    pub foreign: u32,
}

pub struct LegacyTransport<H: LegacyHost> {
    host: H,
    dev: LegacyDevice,
    /// The request buffers (and indirect tables) the device was given.
    held: DeviceHeld,
    interrupts: Interrupts,
}

/// Feature bits as bytes, bit n in byte n / 8 at 1 << (n % 8).
fn bits_from_bytes(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .take(8)
        .enumerate()
        .fold(0, |acc, (i, &b)| acc | u64::from(b) << (8 * i))
}

/// Whether two address ranges share a byte.
fn overlap(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

impl<H: LegacyHost> LegacyTransport<H> {
    /// Device `index` of the host's page, if the page parses, lists it,
    /// and the host serves the legacy hypercalls (RESET answers instead of
    /// faulting; the device is reset).
    pub fn open(mut host: H, index: usize) -> Result<Self, LegacyError> {
        // Only what is storage is parsed: a device running past it is an
        // error of the page.
        let mut page = alloc::vec![0u8; host.page_len().min(PAGE_SIZE)];
        if !host.read_page(0, &mut page) {
            page.clear();
        }
        let devices = legacy_page::parse(&page).map_err(LegacyError::Page)?;
        let count = devices.len();
        let dev = devices
            .into_iter()
            .nth(index)
            .ok_or(LegacyError::NoDevice {
                index,
                devices: count,
            })?;
        let desc = host.page_addr() + dev.offset as u64;
        host.hypercall(LegacyCall::Reset, desc)
            .ok_or(LegacyError::NotServed)?;
        Ok(LegacyTransport {
            host,
            held: DeviceHeld::default(),
            interrupts: Interrupts {
                vring: alloc::vec![0; dev.queues.len()],
                ..Interrupts::default()
            },
            dev,
        })
    }

    /// The device as the page described it when opened.
    pub fn device(&self) -> &LegacyDevice {
        &self.dev
    }

    pub fn host(&mut self) -> &mut H {
        &mut self.host
    }

    fn descriptor(&self) -> u64 {
        self.host.page_addr() + self.dev.offset as u64
    }

    fn read(&mut self, offset: usize, out: &mut [u8]) -> Result<(), TransportError> {
        match self.host.read_page(offset, out) {
            true => Ok(()),
            false => Err(TransportError::OutsidePage {
                offset,
                len: out.len(),
            }),
        }
    }

    fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), TransportError> {
        match self.host.write_page(offset, data) {
            true => Ok(()),
            false => Err(TransportError::OutsidePage {
                offset,
                len: data.len(),
            }),
        }
    }

    fn call(
        &mut self,
        call: LegacyCall,
        arg: u64,
        what: &'static str,
    ) -> Result<(), TransportError> {
        match self.host.hypercall(call, arg) {
            Some(0) => Ok(()),
            Some(result) => Err(TransportError::Hypercall { what, result }),
            // A host that served RESET at open and now faults.
            None => Err(TransportError::HypercallFault { what }),
        }
    }

    /// Where the host placed queue `index`'s ring.
    pub fn ring_address(&self, index: u16) -> Option<u64> {
        self.dev.queues.get(usize::from(index)).map(|q| q.address)
    }

    /// The token this driver gives queue `index`.
    pub fn token(&self, index: u16) -> u64 {
        TOKEN_TAG | (self.dev.offset as u64) << 16 | u64::from(index)
    }

    /// Takes the host's pending interrupts and counts those for this
    /// device; returns the counts so far.
    pub fn interrupts(&mut self) -> &Interrupts {
        for i in self.host.take_interrupts() {
            let queue = (0..self.dev.queues.len() as u16).find(|&q| self.token(q) == i.token);
            match (i.kind, queue) {
                (PARAM_VRING, Some(q)) => self.interrupts.vring[usize::from(q)] += 1,
                (PARAM_CONFIG_CHANGED, Some(_)) => self.interrupts.config_changed += 1,
                _ => self.interrupts.foreign += 1,
            }
        }
        &self.interrupts
    }

    /// The ring of queue `index` with `size` entries, checked and claimed:
    /// the host's size, 4096-aligned, inside the ring window, clear of the
    /// page and of the device's other rings, and not handed out before.
    fn claimed_ring(&mut self, index: u16, size: u16) -> Result<Range<u64>, TransportError> {
        let q = *self
            .dev
            .queues
            .get(usize::from(index))
            .ok_or(TransportError::NoSuchQueue { index })?;
        let bad = |why| TransportError::BadRing {
            index,
            address: q.address,
            why,
        };
        if size != q.num {
            return Err(bad("is of another size than asked for"));
        }
        if !q.address.is_multiple_of(u64::from(LEGACY_ALIGN)) {
            return Err(bad("is not 4096-byte aligned"));
        }
        let ring = |address: u64, num: u16| -> Option<Range<u64>> {
            let len = split_layout(num, Some(LEGACY_ALIGN)).ok()?.total as u64;
            Some(address..address.checked_add(len)?)
        };
        let at = ring(q.address, q.num).ok_or(bad("runs past the end of storage"))?;
        let window = self.host.ring_window();
        if at.start < window.start || at.end > window.end {
            return Err(bad("lies outside the storage the host set aside for rings"));
        }
        let page = self.host.page_addr()..self.host.page_addr() + PAGE_SIZE as u64;
        if overlap(&at, &page) {
            return Err(bad("overlaps the device page"));
        }
        for (i, other) in self.dev.queues.iter().enumerate() {
            if i != usize::from(index)
                && ring(other.address, other.num).is_some_and(|o| overlap(&at, &o))
            {
                return Err(bad("overlaps another queue's ring"));
            }
        }
        if !self.host.claim_ring(at.clone()) {
            return Err(bad("is already in use by a queue"));
        }
        Ok(at)
    }
}

impl<H: LegacyHost> Drop for LegacyTransport<H> {
    /// A device holding memory is reset before that memory may go; should
    /// RESET fail, the memory stays held, never freed.
    fn drop(&mut self) {
        if !self.held.is_empty() {
            let _ = self.reset();
        }
    }
}

// SAFETY: the device is given addresses in the host's ring storage (rings
// the host placed, checked inside its window and claimed once, which the
// `LegacyHost` promise covers) and in buffers a queue keeps in `held`;
// `held` is released only after RESET answered 0, and `Drop` resets a
// device that holds memory.
unsafe impl<H: LegacyHost> Transport for LegacyTransport<H> {
    fn revision(&self) -> u8 {
        0
    }

    fn reset(&mut self) -> Result<(), TransportError> {
        self.call(LegacyCall::Reset, self.descriptor(), "legacy RESET")?;
        // SAFETY: RESET answered 0: the host has reset the device, which
        // holds no buffer any more.
        unsafe { self.held.release() };
        Ok(())
    }

    fn held(&self) -> DeviceHeld {
        self.held.clone()
    }

    fn device_features(&mut self) -> Result<u64, TransportError> {
        let mut b = [0u8; 8];
        let n = self.dev.feature_len().min(8);
        self.read(self.dev.host_features_offset(), &mut b[..n])?;
        Ok(bits_from_bytes(&b[..n]))
    }

    /// Bits past the page's bitmap cannot be accepted; nothing past 64 is
    /// written.
    fn set_driver_features(&mut self, features: u64) -> Result<(), TransportError> {
        let n = self.dev.feature_len().min(8);
        let at = self.dev.guest_features_offset();
        self.write(at, &features.to_le_bytes()[..n])
    }

    fn set_status(&mut self, status: Status) -> Result<(), TransportError> {
        self.write(self.dev.status_offset(), &[status.bits()])?;
        self.call(
            LegacyCall::SetStatus,
            self.descriptor(),
            "legacy SET_STATUS",
        )
    }

    fn status(&mut self) -> Result<Option<Status>, TransportError> {
        let mut s = [0u8];
        self.read(self.dev.status_offset(), &mut s)?;
        Ok(Some(Status::from_bits_retain(s[0])))
    }

    fn read_config(&mut self, buf: &mut [u8]) -> Result<(), TransportError> {
        let config_len = self.dev.config.len();
        if buf.len() > config_len {
            return Err(TransportError::ConfigPastEnd {
                len: buf.len(),
                config_len,
            });
        }
        self.read(self.dev.config_offset(), buf)
    }

    fn write_config(&mut self, buf: &[u8]) -> Result<(), TransportError> {
        let config_len = self.dev.config.len();
        if buf.len() > config_len {
            return Err(TransportError::ConfigPastEnd {
                len: buf.len(),
                config_len,
            });
        }
        self.write(self.dev.config_offset(), buf)
    }

    fn queue_max(&mut self, index: u16) -> Result<u16, TransportError> {
        Ok(self.dev.queues.get(usize::from(index)).map_or(0, |q| q.num))
    }

    fn host_ring(&mut self, index: u16, size: u16) -> Result<Option<HostRing>, TransportError> {
        let at = self.claimed_ring(index, size)?;
        // SAFETY: the ring lies wholly in the storage the host set aside for
        // rings, which by the `LegacyHost` promise stays valid for the run
        // and which nothing in the firmware uses but the rings the host
        // hands out; it is clear of the page and of the device's other
        // rings, and the host has just said no queue had it before.
        Ok(Some(HostRing::new(unsafe {
            RingMemory::new(at.start, (at.end - at.start) as usize)
        })))
    }

    /// The host placed the ring: only its own address and size are
    /// accepted. The queue's token goes into the page.
    fn set_queue(&mut self, index: u16, rings: QueueRings) -> Result<(), TransportError> {
        let q = *self
            .dev
            .queues
            .get(usize::from(index))
            .ok_or(TransportError::NoSuchQueue { index })?;
        if rings.placed_by_driver() || q.address != rings.addresses().desc || q.num != rings.size()
        {
            return Err(TransportError::Rejected {
                what: "a ring away from the host's (the legacy host places rings)",
            });
        }
        let token = self.token(index);
        self.write(q.token_offset(), &token.to_be_bytes())
    }

    fn notify(&mut self, index: u16, _data: Option<u32>) -> Result<(), TransportError> {
        let addr = self
            .ring_address(index)
            .ok_or(TransportError::NoSuchQueue { index })?;
        self.call(LegacyCall::Notify, addr, "legacy NOTIFY")
    }

    /// Devices signal with the 0x2603 external interrupt.
    fn wait(&mut self, timeout_us: u64, done: &mut dyn FnMut() -> bool) -> bool {
        self.host.wait(timeout_us, done)
    }
}
