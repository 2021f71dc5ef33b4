//! The setups a device's queues are stressed in, the same for every
//! device suite: what the transport and rings can be, each once.

use crate::format;
use crate::virtio::indicators::{self, IndicatorMode, Indicators};
use crate::virtio::queue::{Queue, USED_TIMEOUT_US};
use crate::virtio::stress::{self, Completion, Options, QueueStats};
use crate::virtio::transport::Transport;
use alloc::string::String;
use alloc::vec::Vec;

/// How a device is driven in one round.
#[derive(Clone, Copy)]
pub struct Setup {
    pub revision: u8,
    pub packed: bool,
    pub event_idx: bool,
    /// VIRTIO_F_IN_ORDER (split rings only).
    pub in_order: bool,
    pub mode: IndicatorMode,
}

impl Setup {
    pub fn label(&self) -> String {
        format!(
            "rev {} {}{}{} {}",
            self.revision,
            if self.packed { "packed" } else { "split" },
            if self.event_idx { " event-idx" } else { "" },
            if self.in_order { " in-order" } else { "" },
            self.mode.name()
        )
    }
}

/// The rounds, in order: revision 2 with split and packed rings, EVENT_IDX
/// on and off, classic and adapter indicators, each taking its answers by
/// interrupt and, with classic indicators, by polling; revision 0 (split,
/// classic, no EVENT_IDX) both ways; an IN_ORDER round where `in_order`;
/// and last the first setup again, which every device takes (the suites
/// write every writable stripe there). A device skips what it does not
/// offer.
pub fn stress_rounds(in_order: bool) -> Vec<(Setup, Completion)> {
    let mut rounds = Vec::new();
    for revision in [2u8, 0] {
        for packed in [false, true] {
            for event_idx in [true, false] {
                for mode in IndicatorMode::ALL {
                    if revision == 0 && (packed || event_idx || mode == IndicatorMode::Adapter) {
                        continue;
                    }
                    let s = Setup {
                        revision,
                        packed,
                        event_idx,
                        in_order: false,
                        mode,
                    };
                    rounds.push((s, Completion::Interrupts));
                    if mode == IndicatorMode::Classic {
                        rounds.push((s, Completion::Polled));
                    }
                }
            }
        }
    }
    if in_order {
        rounds.push((
            Setup {
                revision: 2,
                packed: false,
                event_idx: true,
                in_order: true,
                mode: IndicatorMode::Adapter,
            },
            Completion::Interrupts,
        ));
    }
    rounds.push((rounds[0].0, Completion::Interrupts));
    rounds
}

/// [`stress::run`] with the indicators acknowledged first and before each wait
/// (the host raises an adapter interrupt only when the summary goes
/// 0 -> 1: a summary left set by an earlier request would hide a phase
/// that never needs to wait) and the interrupts that came meanwhile
/// counted. Answers can all be there before any wait, their interrupt
/// still pending (taken only while waiting): an interrupt round waits for
/// it.
pub fn run_counted<T: Transport + ?Sized, W: stress::Workload>(
    t: &mut T,
    q: &mut Queue,
    w: &mut W,
    opts: &Options,
    ind: &mut Indicators,
) -> Result<QueueStats, stress::Failure> {
    ind.acknowledge();
    let ints0 = indicators::interrupts_seen();
    let mut s = stress::run(t, q, w, opts, &mut || ind.acknowledge(), &mut |_, _| {})?;
    if opts.completion == Completion::Interrupts && indicators::interrupts_seen() == ints0 {
        t.wait(USED_TIMEOUT_US, &mut || {
            indicators::interrupts_seen() != ints0
        });
    }
    s.interrupts = u64::from(indicators::interrupts_seen() - ints0);
    Ok(s)
}
