//! The SCLP service call: one page-aligned SCCB, completion signalled by the
//! service-signal external interrupt, always with a timeout.

use crate::arch::interrupt::Global;
use crate::arch::{service_call, timer};
use crate::sccb::{self, SCCB_SIZE};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// Below 2 GiB, outside the first 8 KiB, and never crossing a page: a
/// page-aligned static in the image satisfies all three.
#[repr(C, align(4096))]
struct SccbPage(UnsafeCell<[u8; SCCB_SIZE]>);

// SAFETY: used by one CPU, only inside `request`, which is not re-entered
// (guarded by BUSY).
unsafe impl Sync for SccbPage {}

static PAGE: SccbPage = SccbPage(UnsafeCell::new([0; SCCB_SIZE]));
static DONE: AtomicBool = AtomicBool::new(false);
static BUSY: AtomicBool = AtomicBool::new(false);
/// Service signals that named no SCCB of ours.
pub static STRAY_SIGNALS: Global<u32> = Global::new(0);

/// How long the SCLP may take for one request.
const TIMEOUT_US: u64 = 2_000_000;
const BUSY_RETRIES: u32 = 100;

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

pub(crate) fn on_service_signal(param: u32) {
    if u64::from(param & !7) == page_addr() {
        DONE.store(true, Ordering::SeqCst);
    } else {
        STRAY_SIGNALS.set(STRAY_SIGNALS.get() + 1);
    }
}

/// Builds an SCCB with `build`, runs `command`, and hands the completed
/// SCCB to `parse`.
pub fn request<R>(
    command: u32,
    build: impl FnOnce(&mut [u8]) -> usize,
    parse: impl FnOnce(&[u8]) -> R,
) -> Result<R, SclpError> {
    if BUSY.swap(true, Ordering::SeqCst) {
        return Err(SclpError::Reentered);
    }
    let r = timer::critical(|| {
        // SAFETY: BUSY gives us sole use of the page.
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
        if !timer::wait_until(TIMEOUT_US, false, || DONE.load(Ordering::SeqCst)) {
            return Err(SclpError::Timeout);
        }
        // SAFETY: the SCLP has finished with the page.
        Ok(parse(unsafe { &*PAGE.0.get() }))
    });
    BUSY.store(false, Ordering::SeqCst);
    r
}

/// Reads the storage size and CPU count.
pub fn read_scp_info() -> Option<sccb::ScpInfo> {
    for cmd in [sccb::CMD_READ_SCP_INFO_FORCED, sccb::CMD_READ_SCP_INFO] {
        let info = request(cmd, sccb::build_read_info, |s| {
            (sccb::response_code(s) == sccb::RC_NORMAL_READ)
                .then(|| sccb::parse_read_info(s))
                .flatten()
        });
        if let Ok(Some(info)) = info {
            return Some(info);
        }
    }
    None
}
