//! virtio-rng: real requests in every configuration the device takes
//! (revision, ring format, indicator mode), each answer checked for
//! fresh bytes and nothing written past what the device reports.

use super::virtio::WANTED;
use crate::check::Outcome;
use crate::dma::DmaMemory;
use crate::fmt::{Hex, ToText};
use crate::format;
use crate::machine::Machine;
use crate::virtio::ccw::CcwTransport;
use crate::virtio::devices::rng::{self, request_chain, Rng};
use crate::virtio::indicators::{self, IndicatorMode, Indicators};
use crate::virtio::queue::USED_TIMEOUT_US;
use crate::virtio::transport::{
    driver_ok_status, has, negotiate, Transport, F_INDIRECT_DESC, F_NOTIFICATION_DATA,
    F_RING_PACKED,
};
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;

/// Requests on an entropy device in one configuration; None when the
/// device does not take it (the revision refused, no packed ring). An
/// error (a request that never came back too) drops the transport, which
/// resets the device before the memory it was given can go.
fn round(
    sid: u32,
    rev: u8,
    packed: bool,
    mode: IndicatorMode,
    rounds: u32,
    rng: &mut u64,
) -> Result<Option<String>, String> {
    let fail = |what: &str, e: &dyn ToText| format!("{}: {}", what, e.text().as_str());
    let mut t = CcwTransport::open(sid, rev).map_err(|e| fail("open", &e))?;
    if t.revision() != rev {
        return Ok(None);
    }
    // The ring format follows the negotiated features: ask for packed
    // only when driving a packed ring.
    let ring = if packed { 1 << F_RING_PACKED } else { 0 };
    let wanted = (WANTED & !(1 << F_RING_PACKED)) | ring | 1 << F_NOTIFICATION_DATA;
    let features = negotiate(&mut t, wanted).map_err(|e| fail("negotiate", &e))?;
    if packed && !has(features, F_RING_PACKED) {
        return Ok(None);
    }
    let mut ind = Indicators::install(&mut t, mode).map_err(|e| fail("indicators", &e))?;
    let mut dev = Rng::setup(&mut t, features, packed).map_err(|e| fail("queue 0", &e))?;
    let ok = driver_ok_status(rev);
    t.set_status(ok).map_err(|e| fail("DRIVER_OK", &e))?;
    let interrupts_before = indicators::interrupts_seen();
    let indirect = has(features, F_INDIRECT_DESC);
    // The device's from the first request until the reset (the transport
    // keeps it): written and read volatile, from and into `seen`.
    let data = Rc::new(DmaMemory::new(4096));
    let mut seen = alloc::vec![0u8; data.len()];
    let mut total = 0u64;
    let mut flagged = false;
    for round in 0..rounds {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        let len = 8 + (*rng % 249) as u32;
        let base = data.addr();
        // The whole buffer, past the chain too: nothing beyond what the
        // device reports may change.
        let canary_seed = *rng;
        for (i, b) in seen.iter_mut().enumerate() {
            *b = crate::judge::canary(canary_seed, i);
        }
        data.write(0, &seen);
        // Two elements on odd rounds, indirect on every third where offered.
        let chain = request_chain(&data, len, if round % 2 == 1 { 2 } else { 1 });
        flagged |= ind.queue_flagged(rng::REQUEST_QUEUE);
        ind.acknowledge();
        let token = dev
            .request(&mut t, &chain, indirect && round % 3 == 2)
            .map_err(|e| fail("submit", &e))?;
        let got = match dev.wait(&mut t, token, len).map_err(|e| fail("wait", &e))? {
            Ok(n) => n,
            Err(e) => return Err(format!("round {}: {}", round, e)),
        };
        data.read(0, &mut seen);
        if let Err(e) = crate::judge::entropy_fill(&seen, got as usize, canary_seed) {
            return Err(format!(
                "round {} (a {}-byte chain of {} elements at {}): {}",
                round,
                len,
                chain.len(),
                Hex(base),
                e.as_str()
            ));
        }
        total += u64::from(got);
    }
    // Buffers can be used before we ever wait, leaving the interrupt
    // pending: wait until it arrives.
    t.wait(USED_TIMEOUT_US, &mut || {
        indicators::interrupts_seen() != interrupts_before
    });
    let interrupts = indicators::interrupts_seen() - interrupts_before;
    flagged |= ind.queue_flagged(rng::REQUEST_QUEUE);
    let _ = t.reset();
    if !flagged {
        return Err(String::from(
            "the host never flagged queue 0 in the indicators",
        ));
    }
    if interrupts == 0 {
        return Err(String::from("no interrupt arrived for used buffers"));
    }
    Ok(Some(format!(
        "{} requests, {} bytes, {} interrupts",
        rounds, total, interrupts
    )))
}

pub fn requests(m: &mut Machine) -> Outcome {
    let devices: Vec<u32> = m
        .inventory
        .virtio_devices(rng::DEVICE_ID)
        .map(|d| d.subchannel.sid)
        .collect();
    if devices.is_empty() {
        return Outcome::skip("no virtio-rng-ccw device");
    }
    let rounds = 16 * m.cfg.stress;
    let mut seed = m.cfg.seed | 1;
    let mut ran = 0;
    for sid in devices {
        for rev in [2u8, 1, 0] {
            for packed in [false, true] {
                for mode in IndicatorMode::ALL {
                    let label = format!(
                        "{} rev {} {} {}",
                        Hex(sid.into()),
                        rev,
                        if packed { "packed" } else { "split" },
                        mode.name()
                    );
                    let t0 = crate::arch::tod();
                    match round(sid, rev, packed, mode, rounds, &mut seed) {
                        Ok(Some(summary)) => {
                            ran += 1;
                            let ms = (crate::arch::tod() - t0) / crate::arch::TOD_PER_US / 1000;
                            crate::out!(
                                "# virtio rng {}: {} in {} ms\n",
                                label.as_str(),
                                summary.as_str(),
                                ms
                            );
                        }
                        Ok(None) => {}
                        Err(e) => {
                            return Outcome::mismatch(
                                &format!(
                                    "virtio-rng {} (replay: seed={})",
                                    label.as_str(),
                                    Hex(m.cfg.seed)
                                ),
                                "every request returned with fresh data",
                                e.as_str(),
                            )
                        }
                    }
                }
            }
        }
    }
    if ran == 0 {
        return Outcome::fail("no configuration of the rng device could be driven");
    }
    Outcome::Pass
}
