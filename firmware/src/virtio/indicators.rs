//! virtio-ccw indicators: where the host flags a used queue or a
//! configuration change before it interrupts.
//!
//! Classic indicators (SET_IND, SET_CONF_IND) are two 64-bit words, bit
//! `q` (from the right) for queue `q` and bit 0 for a configuration change,
//! signalled by an I/O interrupt for the subchannel. Adapter indicators
//! (SET_IND_ADAPTER) are a summary byte and a bit string (bit `q` from the
//! left), signalled by an adapter interrupt on their own ISC, which the
//! host raises only when the summary goes from 0 to 1; configuration
//! changes stay classic.
//!
//! The indicator memory is shared with the transport, which keeps it for
//! the device until a reset: the [`Indicators`] can be dropped whenever
//! (on an error path too) without the device ever setting bits in freed
//! memory.

use super::ccw::CcwTransport;
use super::transport::TransportError;
use crate::arch::io;
use crate::css::channel;
use crate::dma::DmaMemory;
use alloc::rc::Rc;
use core::sync::atomic::Ordering;

/// ISC for adapter (thin) interrupts, apart from the subchannels' own.
pub const ADAPTER_ISC: u8 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndicatorMode {
    Classic,
    Adapter,
}

impl IndicatorMode {
    pub const ALL: [IndicatorMode; 2] = [IndicatorMode::Classic, IndicatorMode::Adapter];

    pub fn name(self) -> &'static str {
        match self {
            IndicatorMode::Classic => "classic",
            IndicatorMode::Adapter => "adapter",
        }
    }
}

/// Offsets in the area: the classic queue word, the configuration word,
/// the adapter summary byte and the adapter bit string.
const QUEUES: usize = 0;
const CONFIG: usize = 8;
const SUMMARY: usize = 0;
const ADAPTER_BITS: usize = 64;
/// Everything the host may set.
const USED: usize = 128;

/// Indicator memory registered with a device, read as the host sets it;
/// the transport keeps it too, until the device is reset.
pub struct Indicators {
    mem: Rc<DmaMemory>,
    mode: IndicatorMode,
}

impl Indicators {
    /// Registers fresh indicators of `mode` with the device.
    pub fn install(t: &mut CcwTransport, mode: IndicatorMode) -> Result<Self, TransportError> {
        let mem = Rc::new(DmaMemory::new(4096));
        match mode {
            IndicatorMode::Classic => t.set_classic_indicators(&mem, QUEUES, CONFIG)?,
            IndicatorMode::Adapter => {
                io::enable_isc(ADAPTER_ISC);
                t.set_adapter_indicators(&mem, SUMMARY, ADAPTER_BITS, 0, ADAPTER_ISC)?;
                // Configuration changes are never adapter-signalled.
                t.set_config_indicator(&mem, CONFIG)?
            }
        }
        Ok(Indicators { mem, mode })
    }

    pub fn mode(&self) -> IndicatorMode {
        self.mode
    }

    /// Clears what the host set, as a driver does once it has looked: the
    /// host raises an adapter interrupt only when the summary goes 0 -> 1.
    pub fn acknowledge(&mut self) {
        self.mem.clear(0, USED);
        core::sync::atomic::fence(Ordering::SeqCst);
    }

    fn word(&self, at: usize) -> u64 {
        (0..8).fold(0, |v, i| v << 8 | u64::from(self.mem.load(at + i)))
    }

    /// The adapter summary byte, for CPUs that each clear it before they
    /// wait on queues of their own (the concurrent stress); None with
    /// classic indicators.
    pub fn summary_clear(&self) -> Option<SummaryClear<'_>> {
        (self.mode == IndicatorMode::Adapter).then(|| SummaryClear {
            at: (self.mem.addr() as usize + SUMMARY) as *mut u8,
            _of: core::marker::PhantomData,
        })
    }

    /// Whether the host flagged a configuration change.
    pub fn config_flagged(&self) -> bool {
        self.word(CONFIG) & 1 != 0
    }

    /// Whether the host flagged queue `q`.
    pub fn queue_flagged(&self, q: u16) -> bool {
        match self.mode {
            IndicatorMode::Classic => q < 64 && self.word(QUEUES) & (1 << q) != 0,
            IndicatorMode::Adapter => {
                let byte = ADAPTER_BITS + usize::from(q / 8);
                self.mem.load(SUMMARY) != 0
                    && byte < self.mem.len()
                    && self.mem.load(byte) & (0x80 >> (q % 8)) != 0
            }
        }
    }
}

/// The summary byte of adapter indicators, cleared by whichever CPU is
/// about to wait: the host raises an adapter interrupt only when it goes
/// from 0 to 1.
pub struct SummaryClear<'a> {
    at: *mut u8,
    _of: core::marker::PhantomData<&'a Indicators>,
}

impl SummaryClear<'_> {
    pub fn clear(&self) {
        // SAFETY: `at` is the summary byte of indicator memory the
        // borrowed `Indicators` keeps alive (and the transport keeps for
        // the device until a reset). While a SummaryClear lives nothing of
        // ours touches that byte but these single-byte atomic stores, from
        // any CPU; the host sets it with its own atomic update.
        unsafe { core::sync::atomic::AtomicU8::from_ptr(self.at) }.store(0, Ordering::SeqCst);
    }
}

/// Subchannel interrupts nobody waited for (classic indicators, and
/// configuration changes in either mode) so far.
pub fn subchannel_interrupts() -> u32 {
    channel::unsolicited_interrupts()
}

/// Adapter interrupts so far.
pub fn adapter_interrupts() -> u32 {
    channel::ADAPTER_INTERRUPTS.load(Ordering::SeqCst)
}

/// Interrupts a virtio-ccw device may have signalled with so far, of
/// either kind.
pub fn interrupts_seen() -> u32 {
    subchannel_interrupts() + adapter_interrupts()
}
