//! The virtio-ccw transport: virtio commands as channel programs on the
//! device's subchannel, notification through DIAG 0x500 function 3.
//!
//! Control blocks are big-endian; feature words are little-endian (the
//! virtio-ccw layout), which `u32::to_le_bytes` spells out.
//!
//! The device keeps the addresses of its rings and indicators until
//! VDEV_RESET, and stores there whenever it likes: disabling the
//! subchannel does not make it forget them (QEMU only drops the revision
//! then). So every command that names memory takes the DMA memory itself,
//! checks the address against it and keeps it in the device's
//! [`DeviceHeld`] before the command starts; a completed VDEV_RESET lets
//! go of it, and a transport dropped while it holds memory issues one
//! first (if that fails, the memory is never freed).

use super::ring::LEGACY_ALIGN;
use super::transport::{QueueRings, RingFormat, Status, Transport, TransportError};
use crate::arch::hypercall::diag500;
use crate::arch::timer;
use crate::css::blocks::CCW_SLI;
use crate::css::channel::{self, IoError, IO_TIMEOUT_US};
use crate::css::program::ChannelProgram;
use crate::dma::{DeviceHeld, DmaMemory};
use alloc::rc::Rc;
use alloc::vec::Vec;

pub const CMD_WRITE_FEAT: u8 = 0x11;
pub const CMD_READ_FEAT: u8 = 0x12;
pub const CMD_SET_VQ: u8 = 0x13;
pub const CMD_WRITE_CONF: u8 = 0x21;
pub const CMD_READ_CONF: u8 = 0x22;
pub const CMD_WRITE_STATUS: u8 = 0x31;
pub const CMD_READ_VQ_CONF: u8 = 0x32;
pub const CMD_VDEV_RESET: u8 = 0x33;
pub const CMD_SET_IND: u8 = 0x43;
pub const CMD_SET_CONF_IND: u8 = 0x53;
pub const CMD_READ_STATUS: u8 = 0x72;
pub const CMD_SET_IND_ADAPTER: u8 = 0x73;
pub const CMD_SET_VIRTIO_REV: u8 = 0x83;

/// DIAG 0x500 function 3: virtio-ccw notify.
pub const HYPERCALL_CCW_NOTIFY: u64 = 3;

/// Largest config space we read in one go.
const BUF_LEN: usize = 256;

/// Queues a device may have (QEMU's VIRTIO_QUEUE_MAX): an adapter
/// indicator bit may be set for any of them.
const QUEUES_MAX: u64 = 1024;

pub struct CcwTransport {
    sid: u32,
    revision: u8,
    /// One CCW and BUF_LEN bytes of data, reused for every command.
    program: ChannelProgram,
    /// The host's cookie for each queue, fed back on the next notify.
    cookies: Vec<u64>,
    /// The memory the device holds addresses in.
    held: DeviceHeld,
}

impl CcwTransport {
    /// Resets the subchannel's virtio revision (disable, enable), then
    /// asks for the highest revision up to `max`; falls back to legacy.
    pub fn open(sid: u32, max: u8) -> Result<Self, TransportError> {
        let io = |_| TransportError::Io { what: "MSCH" };
        channel::set_enabled(sid, false).map_err(io)?;
        channel::set_enabled(sid, true).map_err(io)?;
        let program = ChannelProgram::new(1, BUF_LEN).ok_or(TransportError::Io {
            what: "channel program below 2 GiB",
        })?;
        let mut t = CcwTransport {
            sid,
            revision: 0,
            program,
            cookies: Vec::new(),
            held: DeviceHeld::default(),
        };
        for rev in (1..=max.min(2)).rev() {
            let mut info = [0u8; 4];
            info[..2].copy_from_slice(&u16::from(rev).to_be_bytes());
            match t.command(CMD_SET_VIRTIO_REV, &info, 0, "SET_VIRTIO_REV") {
                Ok(_) => {
                    t.revision = rev;
                    return Ok(t);
                }
                Err(TransportError::Rejected { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(t)
    }

    pub fn subchannel(&self) -> u32 {
        self.sid
    }

    /// Runs one command: `out` is sent; `read` bytes come back. Lengths
    /// must match the device's exactly unless `flags` has SLI.
    fn run(
        &mut self,
        cmd: u8,
        flags: u8,
        out: &[u8],
        read: usize,
        what: &'static str,
    ) -> Result<&[u8], TransportError> {
        let len = out.len().max(read);
        if len > BUF_LEN {
            return Err(TransportError::Io { what });
        }
        let data = self.program.data();
        data[..len].fill(0);
        data[..out.len()].copy_from_slice(out);
        self.program.ccw(0, cmd, flags, 0, len as u16);
        match channel::run_program(self.sid, &mut self.program, IO_TIMEOUT_US) {
            Ok(_) => Ok(&self.program.data()[..read]),
            Err(IoError::UnitCheck { sense0: 0x80 }) => Err(TransportError::Rejected { what }),
            Err(_) => Err(TransportError::Io { what }),
        }
    }

    fn command(
        &mut self,
        cmd: u8,
        out: &[u8],
        read: usize,
        what: &'static str,
    ) -> Result<&[u8], TransportError> {
        self.run(cmd, 0, out, read, what)
    }

    /// The address of `len` bytes at `offset` of `mem`, which is kept with
    /// the device's memory from now on; an error if they lie outside.
    fn give(
        &mut self,
        mem: &Rc<DmaMemory>,
        offset: usize,
        len: usize,
        what: &'static str,
    ) -> Result<u64, TransportError> {
        if !mem.contains(offset, len) {
            return Err(TransportError::OutsideMemory {
                what,
                offset,
                len,
                mem_len: mem.len(),
            });
        }
        self.held.keep(mem);
        Ok(mem.addr() + offset as u64)
    }

    /// SET_IND and SET_CONF_IND: classic 64-bit indicators, the queues'
    /// and the configuration's doublewords at offsets `queues` and
    /// `config` of `mem`.
    pub fn set_classic_indicators(
        &mut self,
        mem: &Rc<DmaMemory>,
        queues: usize,
        config: usize,
    ) -> Result<(), TransportError> {
        let at = self.give(mem, queues, 8, "SET_IND")?;
        self.command(CMD_SET_IND, &at.to_be_bytes(), 0, "SET_IND")?;
        self.set_config_indicator(mem, config)
    }

    /// SET_CONF_IND alone: the configuration-change indicator (a
    /// doubleword at `config` of `mem`), which adapter interrupts leave
    /// classic.
    pub fn set_config_indicator(
        &mut self,
        mem: &Rc<DmaMemory>,
        config: usize,
    ) -> Result<(), TransportError> {
        let at = self.give(mem, config, 8, "SET_CONF_IND")?;
        self.command(CMD_SET_CONF_IND, &at.to_be_bytes(), 0, "SET_CONF_IND")?;
        Ok(())
    }

    /// SET_IND_ADAPTER: the summary byte at `summary` of `mem`, the
    /// indicator bits from bit `bit` of the string at `indicators`, and the
    /// ISC. The string must hold a bit for every queue a device may have.
    pub fn set_adapter_indicators(
        &mut self,
        mem: &Rc<DmaMemory>,
        summary: usize,
        indicators: usize,
        bit: u64,
        isc: u8,
    ) -> Result<(), TransportError> {
        let bits_len = usize::try_from((bit + QUEUES_MAX).div_ceil(8)).unwrap_or(usize::MAX);
        let summary = self.give(mem, summary, 1, "SET_IND_ADAPTER summary")?;
        let indicators = self.give(mem, indicators, bits_len, "SET_IND_ADAPTER indicators")?;
        let mut b = [0u8; 25];
        b[0..8].copy_from_slice(&summary.to_be_bytes());
        b[8..16].copy_from_slice(&indicators.to_be_bytes());
        b[16..24].copy_from_slice(&bit.to_be_bytes());
        b[24] = isc;
        self.command(CMD_SET_IND_ADAPTER, &b, 0, "SET_IND_ADAPTER")?;
        Ok(())
    }

    /// Revision-0 SET_VQ: one area, 4096-aligned used ring.
    fn set_queue_legacy(&mut self, index: u16, size: u16, area: u64) -> Result<(), TransportError> {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&area.to_be_bytes());
        b[8..12].copy_from_slice(&LEGACY_ALIGN.to_be_bytes());
        b[12..14].copy_from_slice(&index.to_be_bytes());
        b[14..16].copy_from_slice(&size.to_be_bytes());
        self.command(CMD_SET_VQ, &b, 0, "SET_VQ")?;
        Ok(())
    }

    /// DIAG 0x500 function 3 with an explicit cookie; returns the result.
    pub fn notify_raw(&self, queue_word: u64, cookie: u64) -> i64 {
        diag500(
            HYPERCALL_CCW_NOTIFY,
            [u64::from(self.sid), queue_word, cookie, 0, 0, 0],
        ) as i64
    }
}

impl Drop for CcwTransport {
    /// A device holding memory is reset before that memory may go; should
    /// VDEV_RESET fail, the memory stays held, never freed.
    fn drop(&mut self) {
        if !self.held.is_empty() {
            let _ = self.reset();
        }
    }
}

// SAFETY: the device is given addresses only inside memory kept in `held`
// first (`give`, `set_queue`); `held` is released only after VDEV_RESET
// completed, and `Drop` resets a device that holds memory.
unsafe impl Transport for CcwTransport {
    fn revision(&self) -> u8 {
        self.revision
    }

    fn reset(&mut self) -> Result<(), TransportError> {
        self.cookies.clear();
        self.command(CMD_VDEV_RESET, &[], 0, "VDEV_RESET")?;
        // SAFETY: VDEV_RESET completed: the device has dropped its rings
        // and indicators (QEMU: virtio_reset, indicators released), and
        // holds no address in this memory any more.
        unsafe { self.held.release() };
        Ok(())
    }

    fn held(&self) -> DeviceHeld {
        self.held.clone()
    }

    fn device_features(&mut self) -> Result<u64, TransportError> {
        let words = if self.revision >= 1 { 2 } else { 1 };
        let mut features = 0u64;
        for index in 0..words {
            let mut b = [0u8; 5];
            b[4] = index as u8;
            let got = self.command(CMD_READ_FEAT, &b, 5, "READ_FEAT")?;
            let word = u32::from_le_bytes([got[0], got[1], got[2], got[3]]);
            features |= u64::from(word) << (32 * index);
        }
        Ok(features)
    }

    fn set_driver_features(&mut self, features: u64) -> Result<(), TransportError> {
        let words = if self.revision >= 1 { 2 } else { 1 };
        for index in 0..words {
            let mut b = [0u8; 5];
            b[..4].copy_from_slice(&((features >> (32 * index)) as u32).to_le_bytes());
            b[4] = index as u8;
            self.command(CMD_WRITE_FEAT, &b, 0, "WRITE_FEAT")?;
        }
        Ok(())
    }

    fn set_status(&mut self, status: Status) -> Result<(), TransportError> {
        self.command(CMD_WRITE_STATUS, &[status.bits()], 0, "WRITE_STATUS")
            .map(|_| ())
    }

    fn status(&mut self) -> Result<Option<Status>, TransportError> {
        if self.revision < 2 {
            return Ok(None);
        }
        let got = self.command(CMD_READ_STATUS, &[], 1, "READ_STATUS")?;
        Ok(Some(Status::from_bits_retain(got[0])))
    }

    fn read_config(&mut self, buf: &mut [u8]) -> Result<(), TransportError> {
        let got = self.run(CMD_READ_CONF, CCW_SLI, &[], buf.len(), "READ_CONF")?;
        buf.copy_from_slice(got);
        Ok(())
    }

    fn write_config(&mut self, buf: &[u8]) -> Result<(), TransportError> {
        self.run(CMD_WRITE_CONF, CCW_SLI, buf, 0, "WRITE_CONF")
            .map(|_| ())
    }

    fn queue_max(&mut self, index: u16) -> Result<u16, TransportError> {
        let mut b = [0u8; 4];
        b[..2].copy_from_slice(&index.to_be_bytes());
        match self.command(CMD_READ_VQ_CONF, &b, 4, "READ_VQ_CONF") {
            Ok(got) => Ok(u16::from_be_bytes([got[2], got[3]])),
            Err(TransportError::Rejected { .. }) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Rings in the driver's memory, laid out for this revision: legacy at
    /// revision 0, split or packed from revision 1.
    fn set_queue(&mut self, index: u16, rings: QueueRings) -> Result<(), TransportError> {
        if !rings.placed_by_driver() {
            return Err(TransportError::WrongRings {
                why: "placed by the host (a virtio-ccw host places none)",
            });
        }
        if (rings.format() == RingFormat::Legacy) != (self.revision == 0) {
            return Err(TransportError::WrongRings {
                why: "laid out for another virtio revision",
            });
        }
        rings.keep_memory(&self.held);
        let (size, at) = (rings.size(), rings.addresses());
        if self.revision == 0 {
            return self.set_queue_legacy(index, size, at.desc);
        }
        let mut b = [0u8; 32];
        b[0..8].copy_from_slice(&at.desc.to_be_bytes());
        b[12..14].copy_from_slice(&index.to_be_bytes());
        b[14..16].copy_from_slice(&size.to_be_bytes());
        b[16..24].copy_from_slice(&at.driver.to_be_bytes());
        b[24..32].copy_from_slice(&at.device.to_be_bytes());
        self.command(CMD_SET_VQ, &b, 0, "SET_VQ")?;
        Ok(())
    }

    fn notify(&mut self, index: u16, data: Option<u32>) -> Result<(), TransportError> {
        let slot = usize::from(index);
        if self.cookies.len() <= slot {
            self.cookies.resize(slot + 1, 0);
        }
        notify_queue(self.sid, index, data, &mut self.cookies[slot])
    }

    /// Devices signal with I/O interrupts (subchannel or adapter).
    fn wait(&mut self, timeout_us: u64, done: &mut dyn FnMut() -> bool) -> bool {
        timer::wait_until(timeout_us, true, done)
    }

    fn poll(&mut self, timeout_us: u64, done: &mut dyn FnMut() -> bool) -> bool {
        poll_until(timeout_us, done)
    }
}

/// The virtio-ccw notification of queue `index` of subchannel `sid`
/// (with `data` where VIRTIO_F_NOTIFICATION_DATA was negotiated), passing
/// the queue's `cookie` and keeping the one the host returns.
pub(crate) fn notify_queue(
    sid: u32,
    index: u16,
    data: Option<u32>,
    cookie: &mut u64,
) -> Result<(), TransportError> {
    let word = match data {
        Some(d) => (u64::from(d) << 16) | u64::from(index),
        None => u64::from(index),
    };
    let r = diag500(
        HYPERCALL_CCW_NOTIFY,
        [u64::from(sid), word, *cookie, 0, 0, 0],
    ) as i64;
    if r < 0 {
        return Err(TransportError::Hypercall {
            what: "virtio-ccw notify",
            result: r,
        });
    }
    *cookie = r as u64;
    Ok(())
}

/// Polls `done` until it holds or `timeout_us` passes, interrupts as
/// they were; returns whether it held.
pub(crate) fn poll_until(timeout_us: u64, done: &mut dyn FnMut() -> bool) -> bool {
    let end = timer::deadline_after_us(timeout_us);
    // The clock only now and then: under TCG each STORE CLOCK is a call
    // into QEMU that costs more than a look at the ring.
    let mut spins = 0u32;
    loop {
        if done() {
            return true;
        }
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(256) && crate::arch::tod() >= end {
            return done();
        }
        core::hint::spin_loop();
    }
}
