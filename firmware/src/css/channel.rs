//! Channel-subsystem driver: enumeration over every subchannel set,
//! enabling with an ISC, channel programs completed by I/O interrupts with
//! a timeout, unit checks answered by BASIC SENSE, CSCH to recover.

use super::blocks::{self, Irb, Pmcw, SenseId, IRB_SIZE, ORB_SIZE, SCHIB_SIZE};
use super::program::ChannelProgram;
use crate::arch::context::IoInterrupt;
use crate::arch::global::Global;
use crate::arch::handlers::{self, Registration};
use crate::arch::io::{self, Block};
use crate::arch::lock::CpuLock;
use crate::arch::smp::MAX_CPUS;
use crate::arch::{timer, Page};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

const _: () = assert!(ORB_SIZE == io::ORB_SIZE);

/// The interruption subclass our subchannels use.
pub const ISC: u8 = 3;
pub const IO_TIMEOUT_US: u64 = 1_000_000;
const MAX_SSID: u8 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoError {
    NotOperational,
    Busy,
    /// No final status within the timeout (the subchannel was cleared).
    Timeout,
    UnitCheck {
        sense0: u8,
    },
    ChannelStatus(u8),
    DeviceStatus(u8),
    /// MSCH did not leave the subchannel in the state asked for.
    NotEnabled,
    /// No storage below 2 GiB for the channel program.
    NoLowMemory,
}

impl ufmt::uDisplay for IoError {
    fn fmt<W: ufmt::uWrite + ?Sized>(
        &self,
        f: &mut ufmt::Formatter<'_, W>,
    ) -> Result<(), W::Error> {
        use crate::fmt::Hex;
        match *self {
            IoError::NotOperational => f.write_str("not operational (cc 3)"),
            IoError::Busy => f.write_str("busy (cc 2)"),
            IoError::Timeout => f.write_str("no final status before the timeout"),
            IoError::UnitCheck { sense0 } => {
                ufmt::uwrite!(f, "unit check, sense byte 0 {}", Hex(sense0.into()))
            }
            IoError::ChannelStatus(s) => ufmt::uwrite!(f, "subchannel status {}", Hex(s.into())),
            IoError::DeviceStatus(s) => ufmt::uwrite!(f, "device status {}", Hex(s.into())),
            IoError::NotEnabled => f.write_str("MSCH did not take effect"),
            IoError::NoLowMemory => f.write_str("no storage below 2 GiB for the channel program"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subchannel {
    /// Subsystem-identification word used with the I/O instructions.
    pub sid: u32,
    pub ssid: u8,
    pub number: u16,
    pub pmcw: Pmcw,
}

/// Interrupt-side state: the subchannel being waited for and its status.
#[derive(Clone, Copy)]
struct Completion {
    waiting: u32,
    irb: Option<Irb>,
    unsolicited: u32,
}

static COMPLETION: Global<Completion> = Global::new(Completion {
    waiting: 0,
    irb: None,
    unsolicited: 0,
});
/// Any CPU may take a subchannel's interrupt.
static COMPLETION_LOCK: CpuLock = CpuLock::new();

/// Reads or changes the interrupt-side state under its lock.
fn completion<R>(f: impl FnOnce(&mut Completion) -> R) -> R {
    // Only a machine check or restart could cut through this CPU's own
    // update, and neither changes the state: go on as one CPU would.
    let _held = COMPLETION_LOCK.lock(1_000_000);
    let mut c = COMPLETION.get();
    let r = f(&mut c);
    COMPLETION.set(c);
    r
}

/// Interruption-word bit of an adapter (thin) interrupt: no subchannel.
const IO_WORD_ADAPTER: u32 = 0x8000_0000;
/// Adapter interrupts seen, for any ISC.
pub static ADAPTER_INTERRUPTS: AtomicU32 = AtomicU32::new(0);

/// The I/O interrupts one CPU's handler took, by what they brought.
pub struct IoTaken {
    /// Adapter interrupts.
    pub adapter: AtomicU32,
    /// Subchannel interrupts whose TEST SUBCHANNEL found status.
    pub status: AtomicU32,
    /// Subchannel interrupts whose TEST SUBCHANNEL found none pending
    /// (cc 1): status another took already.
    pub empty: AtomicU32,
}

static TAKEN: [IoTaken; MAX_CPUS] = [const {
    IoTaken {
        adapter: AtomicU32::new(0),
        status: AtomicU32::new(0),
        empty: AtomicU32::new(0),
    }
}; MAX_CPUS];

/// What CPU `n`'s I/O interrupt handler took so far.
pub fn taken(n: usize) -> &'static IoTaken {
    &TAKEN[n.min(MAX_CPUS - 1)]
}

fn on_io_interrupt(i: &IoInterrupt) -> bool {
    let sid = i.subchannel;
    let mine = taken(crate::arch::smp::cpu_number());
    // With every CPU driving queues, the one that took this may not be
    // the one waiting for it; nor where another CPU than the checking one
    // took it after sharing ended, before its wait was made afresh.
    if crate::smp::io_shared() || crate::arch::smp::cpu_number() != 0 {
        crate::smp::wake_busy();
    }
    if i.word & IO_WORD_ADAPTER != 0 {
        ADAPTER_INTERRUPTS.fetch_add(1, Ordering::SeqCst);
        mine.adapter.fetch_add(1, Ordering::SeqCst);
        return true;
    }
    // Every subchannel we drive carries its own id as its parameter
    // (set_enabled): anything else was enabled by someone else.
    if i.param != sid {
        return false;
    }
    let mut irb = Block::<IRB_SIZE>::zeroed();
    if io::test_subchannel(sid, &mut irb) != 0 {
        mine.empty.fetch_add(1, Ordering::SeqCst);
    } else {
        mine.status.fetch_add(1, Ordering::SeqCst);
        completion(|c| {
            if sid == c.waiting {
                c.irb = Some(Irb::parse(&irb.0));
            } else {
                c.unsolicited += 1;
            }
        });
    }
    true
}

/// Takes a pending status nobody asked for (TSCH), counting it as unsolicited.
fn collect_pending(sid: u32) {
    let mut irb = Block::<IRB_SIZE>::zeroed();
    if io::test_subchannel(sid, &mut irb) == 0 {
        completion(|c| c.unsolicited += 1);
    }
}

/// For `inject=steal`: takes `sid`'s pending status with TEST
/// SUBCHANNEL outside its interrupt, uncounted; the interrupt QEMU queued
/// with that status then finds none. Whether there was status.
pub fn steal_status(sid: u32) -> bool {
    let mut irb = Block::<IRB_SIZE>::zeroed();
    io::test_subchannel(sid, &mut irb) == 0
}

/// Interrupts that arrived for subchannels nobody was waiting on.
pub fn unsolicited_interrupts() -> u32 {
    completion(|c| c.unsolicited)
}

/// Takes I/O interrupts and enables our ISC; the driver owns them while
/// the registration lasts (the run).
pub fn init() -> Registration {
    let r = handlers::on_io(on_io_interrupt);
    io::enable_isc(ISC);
    r
}

/// CHSC request: header (length, code, three parameters) in a page.
fn chsc_call(code: u16, len: u16, param0: u32) -> Option<(u16, Box<Page>)> {
    let mut page = Box::new(Page([0; 4096]));
    page.0[0..2].copy_from_slice(&len.to_be_bytes());
    page.0[2..4].copy_from_slice(&code.to_be_bytes());
    page.0[4..8].copy_from_slice(&param0.to_be_bytes());
    if io::chsc(&mut page) != 0 {
        return None;
    }
    let at = usize::from(len);
    let rc = u16::from_be_bytes([page.0[at + 2], page.0[at + 3]]);
    Some((rc, page))
}

/// CHSC response code meaning success.
pub const CHSC_OK: u16 = 0x0001;

/// CHSC Set Domain Attributes: operation 0 enables multiple channel-subsystem
/// images (MCSS-E), 2 multiple subchannel sets (MSS). Returns the response code.
pub fn set_domain_attributes(operation: u16) -> Option<u16> {
    chsc_call(0x0031, 0x0400, u32::from(operation)).map(|(rc, _)| rc)
}

/// CHSC Store Channel Subsystem Characteristics: the response block
/// (after the 16-byte request), decoded.
pub fn store_characteristics() -> Option<crate::css::blocks::Characteristics> {
    chsc_call(0x0010, 0x0010, 0)
        .map(|(_, page)| crate::css::blocks::Characteristics::decode(&page.0[0x10..]))
}

pub fn store_schib(sid: u32) -> Option<Block<SCHIB_SIZE>> {
    let mut schib = Block::<SCHIB_SIZE>::zeroed();
    (io::store_subchannel(sid, &mut schib) == 0).then_some(schib)
}

/// Every subchannel with a valid device number in subchannel sets
/// 0..=`max_ssid`, with `id` forming the identification word.
pub fn scan_with(max_ssid: u8, id: impl Fn(u8, u16) -> u32) -> Vec<Subchannel> {
    let mut found = Vec::new();
    for ssid in 0..=max_ssid.min(MAX_SSID) {
        for number in 0..=u16::MAX {
            let sid = id(ssid, number);
            let Some(schib) = store_schib(sid) else {
                break; // cc 3: past the last subchannel of this set
            };
            let pmcw = blocks::parse_pmcw(&schib.0);
            if pmcw.devno_valid() {
                found.push(Subchannel {
                    sid,
                    ssid,
                    number,
                    pmcw,
                });
            }
        }
    }
    found
}

/// Enables (or disables) a subchannel for I/O with our ISC; the
/// interruption parameter is the subchannel id.
pub fn set_enabled(sid: u32, on: bool) -> Result<(), IoError> {
    for _ in 0..8 {
        let mut schib = store_schib(sid).ok_or(IoError::NotOperational)?;
        // "Enabled" means enabled our way: an IPL leaves the IPL device
        // enabled with ISC 0 and parameter 0, whose interrupts never come.
        let pmcw = blocks::parse_pmcw(&schib.0);
        let ours = pmcw.isc() == ISC && pmcw.intparm == sid;
        if pmcw.enabled() == on && (!on || ours) {
            return Ok(());
        }
        blocks::set_enabled(&mut schib.0, on, ISC, sid);
        match io::modify_subchannel(sid, &mut schib) {
            0 => {}
            1 => collect_pending(sid),
            2 => {
                timer::wait_until(1000, false, || false);
            }
            _ => return Err(IoError::NotOperational),
        }
    }
    Err(IoError::NotEnabled)
}

/// For `inject=io`: enables `sid` with a parameter that is not ours and
/// starts a NOOP, so that an I/O interrupt nobody owns arrives.
pub fn start_foreign(sid: u32) -> Result<(), IoError> {
    let mut schib = store_schib(sid).ok_or(IoError::NotOperational)?;
    blocks::set_enabled(&mut schib.0, true, ISC, !sid);
    if io::modify_subchannel(sid, &mut schib) != 0 {
        return Err(IoError::NotEnabled);
    }
    // Kept for good: nobody waits for its end, so the device may read it
    // after we are gone.
    let noop = Box::leak(Box::new(
        ChannelProgram::new(1, 0).ok_or(IoError::NoLowMemory)?,
    ));
    let mut orb = Block::<ORB_SIZE>::zeroed();
    orb.0 = blocks::build_orb(!sid, noop.prepare());
    // SAFETY: a NOOP names no storage; its one CCW is leaked, so it stays
    // valid for as long as the device may read it.
    match unsafe { io::start_subchannel(sid, &orb) } {
        0 => Ok(()),
        3 => Err(IoError::NotOperational),
        _ => Err(IoError::Busy),
    }
}

fn set_waiting(sid: u32) {
    completion(|c| {
        c.waiting = sid;
        c.irb = None;
    });
}

/// Starts `program` and returns the final IRB, whatever its status. On a
/// timeout the subchannel is cleared; should the clear not complete
/// either, the program's buffer is abandoned to the device.
fn start_and_wait(sid: u32, program: &mut ChannelProgram, timeout_us: u64) -> Result<Irb, IoError> {
    set_waiting(sid);
    let mut orb = Block::<ORB_SIZE>::zeroed();
    orb.0 = blocks::build_orb(sid, program.prepare());
    let mut tries = 0;
    loop {
        // SAFETY: every CCW of a ChannelProgram names storage inside the
        // program's own buffer, below 2 GiB; `program` is borrowed until
        // the final status below, and a program that never ends keeps its
        // buffer for good (`abandon`). A check cut short meanwhile never
        // frees it either.
        match unsafe { io::start_subchannel(sid, &orb) } {
            0 => break,
            // Status pending: unsolicited status (a virtio-ccw device's
            // classic-indicator notification) not yet taken as an interrupt.
            1 if tries < 4 => {
                tries += 1;
                collect_pending(sid);
            }
            cc => {
                set_waiting(0);
                return Err(if cc == 3 {
                    IoError::NotOperational
                } else {
                    IoError::Busy
                });
            }
        }
    }
    let done = timer::wait_until(timeout_us, true, || {
        completion(|c| c.irb.is_some_and(|irb| irb.scsw.is_final()))
    });
    let irb = completion(|c| c.irb).filter(|_| done);
    set_waiting(0);
    irb.ok_or_else(|| {
        if clear(sid).is_err() {
            program.abandon();
        }
        IoError::Timeout
    })
}

/// Runs `program` and checks its final status: a unit check is answered
/// with BASIC SENSE.
pub fn run_program(
    sid: u32,
    program: &mut ChannelProgram,
    timeout_us: u64,
) -> Result<Irb, IoError> {
    let irb = start_and_wait(sid, program, timeout_us)?;
    if irb.scsw.dstat & blocks::DEV_UNIT_CHECK != 0 {
        let sense0 = basic_sense(sid).map_or(0xff, |s| s[0]);
        return Err(IoError::UnitCheck { sense0 });
    }
    if irb.scsw.cstat & !blocks::SCH_INCORRECT_LENGTH != 0 {
        return Err(IoError::ChannelStatus(irb.scsw.cstat));
    }
    let expected = blocks::DEV_CHANNEL_END | blocks::DEV_DEVICE_END;
    if irb.scsw.dstat & !expected != 0 {
        return Err(IoError::DeviceStatus(irb.scsw.dstat));
    }
    Ok(irb)
}

/// Issues CSCH or HSCH (`instruction`) and waits for the function's
/// completion; returns its status.
fn function_and_wait(sid: u32, instruction: fn(u32) -> u32) -> Result<Irb, IoError> {
    set_waiting(sid);
    let r = match instruction(sid) {
        0 => {
            timer::wait_until(IO_TIMEOUT_US, true, || completion(|c| c.irb.is_some()));
            completion(|c| c.irb).ok_or(IoError::Timeout)
        }
        1 | 2 => Err(IoError::Busy),
        _ => Err(IoError::NotOperational),
    };
    set_waiting(0);
    r
}

/// CLEAR SUBCHANNEL and wait for the clear to complete.
pub fn clear(sid: u32) -> Result<Irb, IoError> {
    function_and_wait(sid, io::clear_subchannel)
}

/// HALT SUBCHANNEL and wait for the halt to complete.
pub fn halt(sid: u32) -> Result<Irb, IoError> {
    function_and_wait(sid, io::halt_subchannel)
}

/// One command on `len` bytes of data, as a channel program.
pub fn single(cmd: u8, flags: u8, len: u16) -> Result<ChannelProgram, IoError> {
    let mut p = ChannelProgram::new(1, usize::from(len)).ok_or(IoError::NoLowMemory)?;
    p.ccw(0, cmd, flags, 0, len);
    Ok(p)
}

/// BASIC SENSE: the first 32 sense bytes.
pub fn basic_sense(sid: u32) -> Result<[u8; 32], IoError> {
    let mut p = single(blocks::CMD_BASIC_SENSE, blocks::CCW_SLI, 32)?;
    start_and_wait(sid, &mut p, IO_TIMEOUT_US)?;
    let mut sense = [0u8; 32];
    sense.copy_from_slice(&p.data()[..32]);
    Ok(sense)
}

/// SENSE ID.
pub fn sense_id(sid: u32) -> Result<SenseId, IoError> {
    let mut p = single(blocks::CMD_SENSE_ID, blocks::CCW_SLI, 256)?;
    let irb = run_program(sid, &mut p, IO_TIMEOUT_US)?;
    let got = 256usize.saturating_sub(usize::from(irb.scsw.count));
    blocks::parse_sense_id(&p.data()[..got]).ok_or(IoError::DeviceStatus(irb.scsw.dstat))
}
