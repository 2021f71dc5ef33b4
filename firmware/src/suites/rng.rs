//! virtio-rng: entropy requests on the stress engine in every setup the
//! device takes (revision, ring format, EVENT_IDX, IN_ORDER, indicator
//! mode, interrupts or polling), up to the queue's size in flight, each
//! answer held to its canary: the reported range overwritten, nothing
//! past it touched. From `stress=10` on, the ring index wraps too.

use super::setups::{stress_rounds, Setup};
use super::virtio::WANTED;
use crate::check::Outcome;
use crate::dma::DmaMemory;
use crate::fmt::{Hex, ToText};
use crate::format;
use crate::inventory::BusId;
use crate::machine::Machine;
use crate::virtio::ccw::CcwTransport;
use crate::virtio::devices::rng::{self, Rng};
use crate::virtio::guard::Slots;
use crate::virtio::health;
use crate::virtio::indicators::Indicators;
use crate::virtio::queue::{DmaBuffer, USED_TIMEOUT_US};
use crate::virtio::stress::{self, Completion, Options, Poison, QueueStats, ShapeLimits};
use crate::virtio::transport::{
    driver_ok_status, has, negotiate, Transport, F_EVENT_IDX, F_INDIRECT_DESC, F_IN_ORDER,
    F_NOTIFICATION_DATA, F_RING_PACKED,
};
use crate::workloads::rng::Entropy;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;

/// Requests per setup, before `stress=`.
const ROUND_REQUESTS: u64 = 64;

/// Enough requests for the 16-bit available index to wrap once.
const WRAP_REQUESTS: u64 = 65_536 + 512;

/// The wrap costs seconds under TCG (each answer goes through QEMU's
/// entropy backend): only from this `stress=` on.
const WRAP_FROM_STRESS: u32 = 10;

fn now_us() -> u64 {
    crate::arch::tod() / crate::arch::TOD_PER_US
}

/// A device at DRIVER_OK with its request queue.
pub(super) struct Open {
    pub(super) t: CcwTransport,
    pub(super) ind: Indicators,
    pub(super) dev: Rng,
    pub(super) features: u64,
}

/// Opens the device as `s` says; None where it does not take that setup
/// (revision refused, a feature not offered). An error drops the
/// transport, which resets the device before its memory can go.
pub(super) fn open(sid: u32, s: Setup) -> Result<Option<Open>, String> {
    let fail = |what: &str, e: &dyn ToText| format!("{}: {}", what, e.text().as_str());
    let mut t = CcwTransport::open(sid, s.revision).map_err(|e| fail("open", &e))?;
    if t.revision() != s.revision {
        return Ok(None);
    }
    let mut wanted = (WANTED & !(1 << F_RING_PACKED | 1 << F_EVENT_IDX)) | 1 << F_NOTIFICATION_DATA;
    wanted |= u64::from(s.packed) << F_RING_PACKED;
    wanted |= u64::from(s.event_idx) << F_EVENT_IDX;
    wanted |= u64::from(s.in_order) << F_IN_ORDER;
    let features = negotiate(&mut t, wanted).map_err(|e| fail("negotiate", &e))?;
    let offered = |bit| !has(wanted, bit) || has(features, bit);
    if !offered(F_RING_PACKED) || !offered(F_EVENT_IDX) || !offered(F_IN_ORDER) {
        return Ok(None);
    }
    let ind = Indicators::install(&mut t, s.mode).map_err(|e| fail("indicators", &e))?;
    let dev = Rng::setup(&mut t, features, s.packed).map_err(|e| fail("queue 0", &e))?;
    t.set_status(driver_ok_status(s.revision))
        .map_err(|e| fail("DRIVER_OK", &e))?;
    Ok(Some(Open {
        t,
        ind,
        dev,
        features,
    }))
}

/// One phase on the request queue; counts the interrupts that came
/// meanwhile, acknowledging the indicators before each wait (the host
/// raises an adapter interrupt only when the summary goes 0 -> 1).
fn drive(o: &mut Open, opts: &Options) -> Result<QueueStats, stress::Failure> {
    crate::suites::setups::run_counted(&mut o.t, o.dev.queue_mut(), &mut Entropy, opts, &mut o.ind)
}

/// Test only (`rng-loop=`): one looped descriptor chain on the request
/// queue. QEMU's device takes it for a guest error: it sets
/// DEVICE_NEEDS_RESET and signals a configuration change, which is waited
/// for before the status is read. The failure, in every case; the
/// buffer lies between canaries, looked at once the status was.
fn looped_chain(o: &mut Open, bus: BusId) -> String {
    let slots = Slots { max: 64 };
    let mem = Rc::new(DmaMemory::new(slots.bytes(1)));
    slots.lay(&mem, 0, 64);
    o.ind.acknowledge();
    let buf = DmaBuffer {
        mem: &mem,
        offset: slots.buffer(0),
        len: 64,
        device_writable: true,
    };
    let q = o.dev.queue_mut();
    match q.add_looped(buf) {
        Ok(Some(_)) => {}
        Ok(None) => {
            return format!(
                "rng-loop: no looped chain on this ring ({} free)",
                q.free_descriptors()
            )
        }
        Err(e) => return format!("rng-loop: {}", e.text().as_str()),
    }
    if let Err(e) = q.kick(&mut o.t) {
        return format!("rng-loop: notify: {}", e.text().as_str());
    }
    let ind = &o.ind;
    let when = if o.t.wait(USED_TIMEOUT_US, &mut || ind.config_flagged()) {
        "after a configuration-change interrupt"
    } else {
        "with no configuration-change interrupt within the timeout"
    };
    let said = match health::needs_reset(&mut o.t, bus, when) {
        Err(e) => e,
        Ok(Some(note)) => note,
        Ok(None) => format!(
            "device {}: a looped descriptor chain (rng-loop=), and no DEVICE_NEEDS_RESET {}",
            bus, when
        ),
    };
    match slots.hit(&mem, 0, 64) {
        Some(hit) => format!("{}; rng-loop: {}", said.as_str(), hit.as_str()),
        None => said,
    }
}

/// Stresses one device in every setup it takes; the number of setups.
/// A device that sets DEVICE_NEEDS_RESET (looked at after each setup) is
/// named and left.
/// `wrap`: whether the index may wrap (`index-wrap=`).
fn device(
    bus: BusId,
    sid: u32,
    seed: u64,
    (stress, wrap): (u32, bool),
    looped: bool,
) -> Result<u32, String> {
    let mut noted = false;
    let mut rounds = stress_rounds(true);
    // The closing repeat of the first setup is blk's fill round: nothing
    // new for an entropy device.
    rounds.pop();
    let mut driven = 0;
    for (i, (setup, completion)) in rounds.into_iter().enumerate() {
        // A device that stops at revision 1 takes the revision 2 setups
        // there (packed rings and EVENT_IDX need revision 1 only).
        let mut o = match open(sid, setup)? {
            Some(o) => o,
            None if setup.revision == 2 => match open(
                sid,
                Setup {
                    revision: 1,
                    ..setup
                },
            )? {
                Some(o) => o,
                None => continue,
            },
            None => continue,
        };
        let setup = Setup {
            revision: o.t.revision(),
            ..setup
        };
        let label = setup.label();
        let size = o.dev.queue().size();
        let mut phases: Vec<(&str, u64)> = Vec::new();
        if driven == 0 && wrap && stress >= WRAP_FROM_STRESS {
            phases.push(("wrap", WRAP_REQUESTS));
        }
        phases.push(("random", ROUND_REQUESTS * u64::from(stress)));
        for (phase, requests) in phases {
            let wrap = phase == "wrap";
            let opts = Options {
                seed,
                // Device and round: each round its own requests.
                stream: u64::from(sid) << 24 | (i as u64) << 16,
                depth: size,
                requests,
                // The wrap's many requests one element each; the others
                // cut anywhere, apart, some through indirect tables.
                limits: if wrap {
                    ShapeLimits {
                        max_elements: 1,
                        ..ShapeLimits::LEAN
                    }
                } else {
                    ShapeLimits {
                        max_elements: usize::from(size).min(4),
                        max_len: None,
                        max_gap: 64,
                    }
                },
                indirect: if !wrap && has(o.features, F_INDIRECT_DESC) {
                    3
                } else {
                    0
                },
                completion,
                // Unused: the workload fills the canary itself.
                poison: Poison::All,
                until_us: None,
                now_us,
            };
            let s = drive(&mut o, &opts).map_err(|f| {
                format!(
                    "{} {} {} request {}: {}",
                    label.as_str(),
                    completion.name(),
                    phase,
                    f.request,
                    f.what.as_str()
                )
            })?;
            crate::out!(
                "# virtio rng {} {} {} {}: {}\n",
                bus,
                label.as_str(),
                completion.name(),
                phase,
                s
            );
            // Taken by interrupt, at least one came; polled, hardly any;
            // the wrap wrapped.
            crate::judge::echo_queue(
                &format!("queue 0 ({}, {})", label.as_str(), phase),
                (completion == Completion::Polled, wrap),
                &s,
            )?;
        }
        if looped && driven == 0 {
            let e = looped_chain(&mut o, bus);
            let _ = o.t.reset();
            return Err(e);
        }
        match health::needs_reset(&mut o.t, bus, "at the end of a setup") {
            Ok(None) => {}
            Ok(Some(note)) => {
                if !noted {
                    crate::out!("# {}\n", note.as_str());
                }
                noted = true;
            }
            Err(e) => {
                let _ = o.t.reset();
                return Err(format!("{}: {}", label.as_str(), e.as_str()));
            }
        }
        driven += 1;
        let _ = o.t.reset();
    }
    Ok(driven)
}

pub fn requests(m: &mut Machine) -> Outcome {
    let devices: Vec<(BusId, u32)> = m
        .inventory
        .virtio_devices(rng::DEVICE_ID)
        .map(|d| (d.bus_id(), d.subchannel.sid))
        .collect();
    if devices.is_empty() {
        return Outcome::skip("no virtio-rng-ccw device");
    }
    for (bus, sid) in devices {
        let looped = m.cfg.rng_loop == Some(bus);
        match device(bus, sid, m.cfg.seed, (m.cfg.stress, m.cfg.index_wrap), looped) {
            Ok(0) => {
                return Outcome::fail(&format!(
                    "virtio-rng {}: no setup of the device could be driven",
                    bus
                ))
            }
            Ok(_) => {}
            Err(e) => {
                return Outcome::mismatch(
                    &format!(
                        "virtio-rng {} (replay: seed={} only=virtio.rng)",
                        bus,
                        Hex(m.cfg.seed)
                    ),
                    "every request answered with fresh bytes over its canary, nothing past the reported length",
                    e.as_str(),
                )
            }
        }
    }
    Outcome::Pass
}
