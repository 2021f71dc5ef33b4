//! Who owns which interrupt source: handlers registered by the modules
//! above arch, each through a [`Registration`] that gives the source up
//! when dropped.
//!
//! arch only dispatches. An interrupt no registration claims goes to the
//! registered reporter of unexpected interrupts, or (before anyone
//! registered one, or after it was dropped) ends the run with the
//! unexpected-interrupt wait code.
//!
//! A check cut short by its timeout is abandoned without its destructors
//! running, so the guards it held never drop: [`release_since`] with a
//! [`mark`] taken before the check gives those sources up all the same.

use super::context::{
    ExternalInterrupt, InterruptContext, InterruptInfo, IoInterrupt, EXT_CLOCK_COMPARATOR,
    EXT_CPU_TIMER,
};
use super::global::Global;
use super::lock::{CpuLock, Refused};
use core::sync::atomic::{AtomicU64, Ordering};

/// Handles the external interrupts of the code it was registered for.
pub type ExternalHandler = fn(&ExternalInterrupt, &mut InterruptContext);
/// Handles an I/O interrupt; false when it is not the owner's after all
/// (a subchannel enabled by someone else), which makes it unexpected.
pub type IoHandler = fn(&IoInterrupt) -> bool;
/// Called for each channel-report machine check.
pub type ChannelReportHandler = fn();
/// Called for each restart interrupt.
pub type RestartHandler = fn();
/// Reports an interrupt nobody owns and ends the run.
pub type UnexpectedHandler = fn(&InterruptInfo, &InterruptContext) -> !;

/// The wait code when an unexpected interrupt arrives and no reporter is
/// registered: the contract's unexpected-interrupt abort (the runner
/// asserts the two agree).
pub const WAIT_UNREPORTED: u64 =
    zvtest_contract::verdict::Abort::UnexpectedInterrupt.wait_address();

/// Registrations are numbered; a slot remembers the number of the one
/// holding it, so only that registration (or a release covering it) frees it.
static NEXT_SEQ: AtomicU64 = AtomicU64::new(1);

#[derive(Clone, Copy)]
struct Slot<H: Copy> {
    seq: u64,
    handler: H,
}

const EXTERNAL_SLOTS: usize = 8;

#[derive(Clone, Copy)]
struct ExternalSlot {
    code: u16,
    slot: Slot<ExternalHandler>,
}

static EXTERNAL: Global<[Option<ExternalSlot>; EXTERNAL_SLOTS]> =
    Global::new([None; EXTERNAL_SLOTS]);
static IO: Global<Option<Slot<IoHandler>>> = Global::new(None);
static CHANNEL_REPORT: Global<Option<Slot<ChannelReportHandler>>> = Global::new(None);
static RESTART: Global<Option<Slot<RestartHandler>>> = Global::new(None);
static UNEXPECTED: Global<Option<Slot<UnexpectedHandler>>> = Global::new(None);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    External(u16),
    Io,
    ChannelReport,
    Restart,
    Unexpected,
}

/// Ownership of one interrupt source; dropping it gives the source up.
#[must_use = "the source is given up when the registration is dropped"]
pub struct Registration {
    source: Source,
    seq: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        release(self.source, |seq| seq == self.seq);
    }
}

/// A point in the sequence of registrations; see [`release_since`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark(u64);

pub fn mark() -> Mark {
    Mark(NEXT_SEQ.load(Ordering::SeqCst))
}

/// Gives up every source registered after `mark` whose registration is
/// still held (or was abandoned without being dropped).
pub fn release_since(mark: Mark) {
    let since = |seq: u64| seq >= mark.0;
    for code in external_codes() {
        release(Source::External(code), since);
    }
    for s in [
        Source::Io,
        Source::ChannelReport,
        Source::Restart,
        Source::Unexpected,
    ] {
        release(s, since);
    }
}

fn external_codes() -> impl Iterator<Item = u16> {
    quietly(|| EXTERNAL.get())
        .into_iter()
        .flatten()
        .map(|e| e.code)
}

fn next_seq() -> u64 {
    NEXT_SEQ.fetch_add(1, Ordering::SeqCst)
}

/// The tables' lock: the dispatcher on any CPU never sees a slot half
/// updated.
static TABLES: CpuLock = CpuLock::new();

/// Runs `f` with the tables locked (and this CPU's interrupts off).
fn quietly<R>(f: impl FnOnce() -> R) -> R {
    // A handler that registers from inside the dispatcher is a firmware bug.
    let _held = TABLES
        .lock(1_000_000)
        .expect("interrupt tables held too long, or re-entered");
    f()
}

/// Reads the tables for the dispatcher. An interrupt that is not maskable
/// (restart, machine check) may cut through this CPU's own update: it
/// reads the tables as they are, as a single CPU always did.
fn lookup<R>(f: impl FnOnce() -> R) -> R {
    match TABLES.lock(1_000_000) {
        Ok(_held) => f(),
        Err(Refused::Reentered) => f(),
        Err(Refused::Timeout { owner }) => {
            panic!("interrupt tables held by CPU {} too long", owner)
        }
    }
}

fn release(source: Source, matches: impl Fn(u64) -> bool) {
    quietly(|| match source {
        Source::External(code) => {
            let mut table = EXTERNAL.get();
            for e in table.iter_mut() {
                if e.is_some_and(|e| e.code == code && matches(e.slot.seq)) {
                    *e = None;
                }
            }
            EXTERNAL.set(table);
        }
        Source::Io => {
            clear(&IO, matches);
        }
        Source::ChannelReport => {
            if clear(&CHANNEL_REPORT, matches) {
                super::disable_channel_reports();
            }
        }
        Source::Restart => {
            clear(&RESTART, matches);
        }
        Source::Unexpected => {
            clear(&UNEXPECTED, matches);
        }
    });
}

/// Empties `g` if its registration matches; says whether it did.
fn clear<H: Copy>(g: &Global<Option<Slot<H>>>, matches: impl Fn(u64) -> bool) -> bool {
    let hit = g.get().is_some_and(|s| matches(s.seq));
    if hit {
        g.set(None);
    }
    hit
}

/// Takes a single-owner source; a second owner is a bug in the firmware.
fn take<H: Copy>(g: &Global<Option<Slot<H>>>, handler: H, source: Source) -> Registration {
    let seq = next_seq();
    quietly(|| {
        assert!(g.get().is_none(), "interrupt source already owned");
        g.set(Some(Slot { seq, handler }));
    });
    Registration { source, seq }
}

/// Owns external interruption code `code` (the service signal 0x2401,
/// the legacy virtio 0x2603, ...). The clock comparator and the CPU timer
/// belong to arch::timer.
pub fn on_external(code: u16, handler: ExternalHandler) -> Registration {
    // Dispatched to the timers before any handler is looked up.
    assert!(
        code != EXT_CLOCK_COMPARATOR && code != EXT_CPU_TIMER,
        "the timers' external interrupts belong to arch::timer"
    );
    let seq = next_seq();
    quietly(|| {
        let mut table = EXTERNAL.get();
        assert!(
            table.iter().flatten().all(|e| e.code != code),
            "external interruption code already owned"
        );
        let free = table
            .iter_mut()
            .find(|e| e.is_none())
            .expect("no free external-interrupt slot");
        *free = Some(ExternalSlot {
            code,
            slot: Slot { seq, handler },
        });
        EXTERNAL.set(table);
    });
    Registration {
        source: Source::External(code),
        seq,
    }
}

/// Owns I/O interrupts (all of them: the handler says which are its own).
pub fn on_io(handler: IoHandler) -> Registration {
    take(&IO, handler, Source::Io)
}

/// Takes channel-report machine checks, with CR14's channel-report
/// subclass open while the registration lasts.
pub fn on_channel_report(handler: ChannelReportHandler) -> Registration {
    let r = take(&CHANNEL_REPORT, handler, Source::ChannelReport);
    super::enable_channel_reports();
    r
}

/// Takes restart interrupts (a watchdog set to inject one); without an
/// owner one ends the run.
pub fn on_restart(handler: RestartHandler) -> Registration {
    take(&RESTART, handler, Source::Restart)
}

/// Reports interrupts nobody owns.
pub fn on_unexpected(handler: UnexpectedHandler) -> Registration {
    take(&UNEXPECTED, handler, Source::Unexpected)
}

pub(super) fn external_handler(code: u16) -> Option<ExternalHandler> {
    lookup(|| {
        EXTERNAL
            .get()
            .into_iter()
            .flatten()
            .find(|e| e.code == code)
            .map(|e| e.slot.handler)
    })
}

pub(super) fn io_handler() -> Option<IoHandler> {
    lookup(|| IO.get().map(|s| s.handler))
}

pub(super) fn channel_report_handler() -> Option<ChannelReportHandler> {
    lookup(|| CHANNEL_REPORT.get().map(|s| s.handler))
}

pub(super) fn restart_handler() -> Option<RestartHandler> {
    lookup(|| RESTART.get().map(|s| s.handler))
}

/// Hands an interrupt nobody owns to the reporter; never returns.
pub(super) fn unexpected(info: &InterruptInfo, ctx: &InterruptContext) -> ! {
    // Not under the lock: the reporter ends the run, and the interrupt
    // may have cut through a registration on this CPU.
    match UNEXPECTED.get() {
        Some(s) => (s.handler)(info, ctx),
        None => super::smp::end_run(WAIT_UNREPORTED),
    }
}
