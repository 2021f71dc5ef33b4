//! The SCLP service call: one page-aligned SCCB, completion signalled by the
//! service-signal external interrupt, always with a timeout.

use crate::arch::context::{ExternalInterrupt, InterruptContext};
use crate::arch::lock::{CpuLock, Refused};
use crate::arch::{service_call, smp, timer};
use crate::deadline::critical;
use crate::sccb::{self, SCCB_SIZE};
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Below 2 GiB, outside the first 8 KiB, and never crossing a page: a
/// page-aligned static in the image satisfies all three. Two pages: Read
/// SCP Info may use both where the extended-length-SCCB facility lets it.
#[repr(C, align(4096))]
struct SccbPage(UnsafeCell<[u8; 2 * SCCB_SIZE]>);

// SAFETY: used only inside `request`, by the CPU holding LOCK, which only
// a completed request gives up (see take_over).
unsafe impl Sync for SccbPage {}

static PAGE: SccbPage = SccbPage(UnsafeCell::new([0; 2 * SCCB_SIZE]));
static DONE: AtomicBool = AtomicBool::new(false);
/// One request at a time, whichever CPU makes it.
static LOCK: CpuLock = CpuLock::new();
/// Service signals that named no SCCB of ours.
pub static STRAY_SIGNALS: AtomicU32 = AtomicU32::new(0);

/// How long the SCLP may take for one request.
const TIMEOUT_US: u64 = 2_000_000;
const BUSY_RETRIES: u32 = 100;
/// How long another CPU's request may keep us waiting: one request's
/// timeout and its busy retries, with room.
const LOCK_TIMEOUT_US: u64 = 3_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SclpError {
    NotOperational,
    Busy,
    Timeout,
    /// A request was made while another was in flight (re-entry).
    Reentered,
}

fn page_addr() -> u64 {
    PAGE.0.get() as u64
}

/// The external interruption code of the service signal.
pub const EXT_SERVICE_SIGNAL: u16 = 0x2401;

/// The service signal: the parameter names the SCCB the SCLP finished;
/// its lowest bit says an event waits to be read (Read Event Data).
pub(super) fn on_service_signal(ext: &ExternalInterrupt, _: &mut InterruptContext) {
    if ext.param & 1 != 0 {
        EVENT_SIGNALS.fetch_add(1, Ordering::SeqCst);
    }
    if u64::from(ext.param & !7) == page_addr() {
        DONE.store(true, Ordering::SeqCst);
    } else if ext.param & !7 != 0 || ext.param & 1 == 0 {
        STRAY_SIGNALS.fetch_add(1, Ordering::SeqCst);
    }
}

/// Service signals that said an event is pending.
pub static EVENT_SIGNALS: AtomicU32 = AtomicU32::new(0);

/// Receives configuration-management events (a CPU plugged) or not, the
/// consoles staying as they are. Returns the SCLP's response code.
pub fn receive_config_events(on: bool) -> Result<u16, SclpError> {
    request(
        sccb::CMD_WRITE_EVENT_MASK,
        |s| sccb::build_event_mask_receiving(s, on),
        sccb::response_code,
    )
}

/// Read Event Data: the pending events' (type, data) and the response
/// code; malformed buffers are an error naming what is wrong.
#[allow(clippy::type_complexity)]
pub fn read_events() -> Result<(u16, Result<Vec<(u8, Vec<u8>)>, sccb::BadEvent>), SclpError> {
    request(
        sccb::CMD_READ_EVENT_DATA,
        |s| sccb::build_read_event(s, SCCB_SIZE),
        |s| {
            let rc = sccb::response_code(s);
            let list = sccb::events(&s[..SCCB_SIZE])
                .map(|l| l.into_iter().map(|(t, d)| (t, d.to_vec())).collect());
            (rc, list)
        },
    )
}

/// Ends a request that an interrupt cut off (the run is about to end from
/// the interrupt handler): waits for its completion, then frees the page.
/// A request that never completes keeps the page: the SCLP may still
/// write it, so nothing more is written (the wait PSW still tells).
pub fn take_over() {
    if LOCK.owner() == Some(smp::cpu_number() as u32)
        && timer::spin_until(TIMEOUT_US, || DONE.load(Ordering::SeqCst))
    {
        LOCK.release_mine();
    }
}

/// Builds an SCCB with `build`, runs `command`, and hands the completed
/// SCCB to `parse`.
pub fn request<R>(
    command: u32,
    build: impl FnOnce(&mut [u8]) -> usize,
    parse: impl FnOnce(&[u8]) -> R,
) -> Result<R, SclpError> {
    let held = match LOCK.lock(LOCK_TIMEOUT_US) {
        Ok(h) => h,
        Err(Refused::Reentered) => return Err(SclpError::Reentered),
        Err(Refused::Timeout { .. }) => return Err(SclpError::Timeout),
    };
    let r = critical(|| {
        // SAFETY: LOCK gives us sole use of the page.
        let page = unsafe { &mut *PAGE.0.get() };
        build(page);
        let mut tries = 0;
        loop {
            DONE.store(false, Ordering::SeqCst);
            // SAFETY: the page stays valid and untouched until DONE.
            match unsafe { service_call(command, page_addr()) } {
                0 => break,
                2 if tries < BUSY_RETRIES => {
                    tries += 1;
                    timer::wait_until(1000, false, || false);
                }
                2 => return Err(SclpError::Busy),
                _ => return Err(SclpError::NotOperational),
            }
        }
        // Spinning, external interrupts open: with several CPUs up, the
        // service signal goes to any of them, and whichever takes it sets
        // DONE; an enabled wait here would sleep through it.
        if !timer::spin_until(TIMEOUT_US, || DONE.load(Ordering::SeqCst)) {
            return Err(SclpError::Timeout);
        }
        // SAFETY: the SCLP has finished with the page.
        Ok(parse(unsafe { &*PAGE.0.get() }))
    });
    drop(held);
    r
}

/// Why Read SCP Info (or Read CPU Info) gave no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfoError {
    Call(SclpError),
    /// The SCLP answered with this response code.
    Response(u16),
    /// A normal completion that names no storage.
    NoStorageSize,
}

impl ufmt::uDisplay for InfoError {
    fn fmt<W: ufmt::uWrite + ?Sized>(
        &self,
        f: &mut ufmt::Formatter<'_, W>,
    ) -> Result<(), W::Error> {
        match *self {
            InfoError::Call(SclpError::NotOperational) => f.write_str("SERVC: not operational"),
            InfoError::Call(SclpError::Busy) => f.write_str("SERVC: busy"),
            InfoError::Call(SclpError::Timeout) => f.write_str("no completion signal"),
            InfoError::Call(SclpError::Reentered) => f.write_str("re-entered"),
            InfoError::Response(code) => ufmt::uwrite!(
                f,
                "response {} ({})",
                crate::fmt::Hex(code.into()),
                sccb::response_meaning(code)
            ),
            InfoError::NoStorageSize => f.write_str("the answer names no storage size"),
        }
    }
}

/// Reads the storage size and CPU count with an SCCB of `len` bytes (more
/// than a page only with the extended-length-SCCB facility): the forced
/// command first, then the plain one; the error is the last one's.
pub fn read_scp_info(len: usize) -> Result<sccb::ScpInfo, InfoError> {
    let len = len.min(2 * SCCB_SIZE);
    let mut last = InfoError::NoStorageSize;
    for cmd in [sccb::CMD_READ_SCP_INFO_FORCED, sccb::CMD_READ_SCP_INFO] {
        let r = request(
            cmd,
            |s| sccb::build_read_info(s, len),
            |s| match sccb::response_code(s) {
                sccb::RC_NORMAL_READ => sccb::parse_read_info(s).ok_or(InfoError::NoStorageSize),
                code => Err(InfoError::Response(code)),
            },
        );
        match r {
            Ok(Ok(info)) => return Ok(info),
            Ok(Err(e)) => last = e,
            Err(e) => last = InfoError::Call(e),
        }
    }
    Err(last)
}

/// The configured CPUs' addresses, from Read CPU Info; where the SCLP
/// does not know that command (Hercules), from Read SCP Info's entries.
pub fn read_cpu_entries() -> Result<Result<sccb::CpuInfo, &'static str>, InfoError> {
    let r = request(
        sccb::CMD_READ_CPU_INFO,
        |s| sccb::build_read_info(s, SCCB_SIZE),
        |s| match sccb::response_code(s) {
            sccb::RC_NORMAL_READ => Ok(sccb::parse_cpu_entries(&s[..SCCB_SIZE])),
            code => Err(InfoError::Response(code)),
        },
    );
    match r.map_err(InfoError::Call)? {
        Err(InfoError::Response(sccb::RC_UNKNOWN_COMMAND)) => {}
        other => return other,
    }
    let r = request(
        sccb::CMD_READ_SCP_INFO,
        |s| sccb::build_read_info(s, SCCB_SIZE),
        |s| match sccb::response_code(s) {
            sccb::RC_NORMAL_READ => Ok(sccb::parse_scp_cpu_entries(&s[..SCCB_SIZE])),
            code => Err(InfoError::Response(code)),
        },
    );
    r.map_err(InfoError::Call)?
}

/// The configured CPUs, from Read CPU Info (whose answer fits a page for
/// every CPU count, where Read SCP Info's may not).
pub fn read_cpu_info() -> Result<u16, InfoError> {
    let r = request(
        sccb::CMD_READ_CPU_INFO,
        |s| sccb::build_read_info(s, SCCB_SIZE),
        |s| match sccb::response_code(s) {
            sccb::RC_NORMAL_READ => Ok(sccb::parse_cpu_info(s)),
            code => Err(InfoError::Response(code)),
        },
    );
    r.map_err(InfoError::Call)?
}
