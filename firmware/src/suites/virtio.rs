//! virtio-ccw devices through the transport: every revision each device
//! accepts, feature negotiation, status, DRIVER_OK.

use crate::check::Outcome;
use crate::css::channel;
use crate::discovery::Device;
use crate::fmt::{Hex, ToText};
use crate::format;
use crate::inventory::VirtioConfig;
use crate::judge::RevisionSeen;
use crate::machine::Machine;
use crate::virtio::ccw::CcwTransport;
use crate::virtio::driver::{setup_queue, DmaMemory, DriveError, USED_TIMEOUT_US};
use crate::virtio::ids;
use crate::virtio::ring::{Buffer, RingMemory};
use crate::virtio::transport::{
    driver_ok_status, has, negotiate, Transport, TransportError, F_EVENT_IDX, F_INDIRECT_DESC,
    F_NOTIFICATION_DATA, F_RING_PACKED,
};
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

/// Devices that accept nothing below revision 1.
fn modern_only(id: u32) -> bool {
    matches!(
        id,
        ids::GPU | ids::INPUT | ids::CRYPTO | ids::VSOCK | ids::FS
    )
}

const WANTED: u64 = 1 << F_INDIRECT_DESC | 1 << F_EVENT_IDX | 1 << F_RING_PACKED;

/// Queues a device may have that we look for.
const MAX_QUEUES: u16 = 256;

/// One bring-up at the revision `t` has: features (packed ring or not),
/// indicators, every queue, DRIVER_OK, status read back, reset. None when
/// the device does not offer the packed ring.
fn bring_up(
    t: &mut CcwTransport,
    packed: bool,
    mode: Indicators,
) -> Result<Option<(u64, u16)>, DriveError> {
    let ring = if packed { 1 << F_RING_PACKED } else { 0 };
    let features = negotiate(t, (WANTED & !(1 << F_RING_PACKED)) | ring)?;
    if packed && !has(features, F_RING_PACKED) {
        return Ok(None);
    }
    let _indicators = IndicatorArea::install(t, mode)?;
    let mut queues = Vec::new();
    for index in 0..MAX_QUEUES {
        match setup_queue(t, index, features, packed) {
            Ok(q) => queues.push(q),
            Err(DriveError::NoQueue { .. }) => break,
            Err(e) => return Err(e),
        }
    }
    let ok = driver_ok_status(t.revision());
    t.set_status(ok)?;
    if let Some(read) = t.status()? {
        if read != ok {
            return Err(TransportError::StatusNotKept { wrote: ok, read }.into());
        }
    }
    t.reset()?;
    Ok(Some((features, queues.len() as u16)))
}

/// One device at each revision 2, 1, 0, each ring format and indicator
/// mode, held to how the host configured it (`configured`, from
/// `devices=`): the line to print and the failures.
fn device_revisions(d: &Device, configured: Option<VirtioConfig>) -> (String, Vec<String>) {
    let id = d.sense.map_or(0, |s| u32::from(s.cu_model));
    let mut line = format!("{} {}:", d.bus_id(), d.name().as_str());
    let mut seen = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for want in [2u8, 1, 0] {
        let mut t = match CcwTransport::open(d.subchannel.sid, want) {
            Ok(t) if t.revision() == want => t,
            Ok(t) => {
                line.push_str(&format!(" rev {} refused (got {});", want, t.revision()));
                seen.push(RevisionSeen {
                    asked: want,
                    got: t.revision(),
                    driven: false,
                    packed_offered: false,
                });
                continue;
            }
            Err(e) => {
                line.push_str(&format!(" rev {} failed: {};", want, e));
                failures.push(format!("revision {}: {}", want, e));
                continue;
            }
        };
        let mut parts = String::new();
        let mut rev = RevisionSeen {
            asked: want,
            got: want,
            driven: false,
            packed_offered: false,
        };
        for packed in [false, true] {
            for mode in [Indicators::Classic, Indicators::Adapter] {
                let what = format!(
                    "{}/{}",
                    if packed { "packed" } else { "split" },
                    mode_name(mode)
                );
                match bring_up(&mut t, packed, mode) {
                    Ok(Some((features, n))) => {
                        rev.driven = true;
                        rev.packed_offered |= packed;
                        parts.push_str(&format!(" {} {}q {}", what.as_str(), n, Hex(features)));
                    }
                    Ok(None) => {}
                    Err(e) if want == 0 && modern_only(id) => {
                        parts.push_str(&format!(" legacy refused as expected ({})", e));
                        break;
                    }
                    Err(e) => {
                        parts.push_str(&format!(" {} failed: {}", what.as_str(), e));
                        failures.push(format!("revision {} {}: {}", want, what.as_str(), e));
                    }
                }
            }
            if want == 0 {
                break; // no packed ring before virtio 1.0
            }
        }
        seen.push(rev);
        line.push_str(&format!(" rev {}:{};", want, parts.as_str()));
    }
    failures.extend(crate::judge::virtio_revisions(
        configured,
        modern_only(id),
        &seen,
    ));
    if !seen.iter().any(|s| s.driven && s.got == s.asked) {
        let why = failures
            .first()
            .cloned()
            .unwrap_or_else(|| String::from("every SET_VIRTIO_REV refused"));
        failures.insert(0, format!("no virtio revision accepted ({})", why.as_str()));
    }
    let failures = failures
        .into_iter()
        .map(|f| format!("{} {}: {}", d.bus_id(), d.name().as_str(), f.as_str()))
        .collect();
    (line, failures)
}

pub fn revisions(m: &mut Machine) -> Outcome {
    let devices: Vec<&Device> = m
        .inventory
        .devices
        .iter()
        .filter(|d| d.is_virtio())
        .collect();
    if devices.is_empty() {
        return Outcome::skip("no virtio-ccw device");
    }
    let mut failures = Vec::new();
    let compared = m.cfg.devices.is_some();
    for d in devices {
        let (line, failure) = device_revisions(d, m.cfg.virtio_config(d.bus_id()));
        crate::out!("# virtio {}\n", line.as_str());
        failures.extend(failure);
    }
    if !compared {
        crate::out!("# virtio: no devices= on the command line: revisions and ring formats not compared with the host's configuration\n");
    }
    match failures.first() {
        None => Outcome::Pass,
        Some(first) => Outcome::mismatch(
            &format!("{} failures; the first: {}", failures.len(), first.as_str()),
            "every configured revision and ring format driven to DRIVER_OK",
            failures.join("; ").as_str(),
        ),
    }
}

/// ISC for adapter (thin) interrupts, apart from the subchannels' own.
const ADAPTER_ISC: u8 = 4;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Indicators {
    Classic,
    Adapter,
}

/// Indicator memory: classic queue/config indicators, or the adapter
/// summary byte and indicator bits.
struct IndicatorArea(DmaMemory);

impl IndicatorArea {
    fn install(t: &mut CcwTransport, mode: Indicators) -> Result<Self, TransportError> {
        let area = IndicatorArea(DmaMemory::new(4096));
        let base = area.0.addr();
        match mode {
            Indicators::Classic => t.set_classic_indicators(base, base + 8)?,
            Indicators::Adapter => {
                crate::arch::io::enable_isc(ADAPTER_ISC);
                t.set_adapter_indicators(base, base + 64, 0, ADAPTER_ISC)?;
                // Configuration changes are never adapter-signalled.
                t.set_config_indicator(base + 8)?
            }
        }
        Ok(area)
    }

    /// Clears what the host set, as a driver does once it has looked: the
    /// host raises an adapter interrupt only when the summary goes 0 -> 1.
    fn acknowledge(&mut self) {
        self.0.bytes()[..128].fill(0);
        core::sync::atomic::fence(Ordering::SeqCst);
    }

    /// Whether the host flagged a configuration change (classic mode).
    fn config_flagged(&mut self) -> bool {
        let b = self.0.bytes();
        u64::from_be_bytes(b[8..16].try_into().unwrap_or([0; 8])) & 1 != 0
    }

    /// Whether the host flagged queue `q`.
    fn queue_flagged(&mut self, mode: Indicators, q: u16) -> bool {
        let b = self.0.bytes();
        match mode {
            Indicators::Classic => {
                let v = u64::from_be_bytes(b[0..8].try_into().unwrap_or([0; 8]));
                v & (1 << q) != 0
            }
            Indicators::Adapter => b[0] != 0 && b[64 + usize::from(q / 8)] & (0x80 >> (q % 8)) != 0,
        }
    }
}

/// Requests on an entropy device's queue 0 in one configuration.
fn rng_round(
    sid: u32,
    rev: u8,
    packed: bool,
    mode: Indicators,
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
    let mut ind = IndicatorArea::install(&mut t, mode).map_err(|e| fail("indicators", &e))?;
    let mut q = setup_queue(&mut t, 0, features, packed).map_err(|e| fail("queue 0", &e))?;
    let ok = driver_ok_status(rev);
    t.set_status(ok).map_err(|e| fail("DRIVER_OK", &e))?;
    let interrupts_before =
        channel::unsolicited_interrupts() + channel::ADAPTER_INTERRUPTS.load(Ordering::SeqCst);
    let indirect = has(features, F_INDIRECT_DESC);
    let mut data = DmaMemory::new(4096);
    let table = DmaMemory::new(4096);
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
        for (i, b) in data.bytes().iter_mut().enumerate() {
            *b = crate::judge::canary(canary_seed, i);
        }
        // Two elements on odd rounds, indirect on every third where offered.
        let half = len / 2;
        let chain2 = [
            Buffer {
                addr: base,
                len: half,
                device_writable: true,
            },
            Buffer {
                addr: base + u64::from(half),
                len: len - half,
                device_writable: true,
            },
        ];
        let chain1 = [Buffer {
            addr: base,
            len,
            device_writable: true,
        }];
        let chain: &[Buffer] = if round % 2 == 1 { &chain2 } else { &chain1 };
        // SAFETY: `table` is ours and idle until this chain comes back.
        let tbl = (indirect && round % 3 == 2)
            .then(|| unsafe { RingMemory::new(table.addr(), table.len()) });
        flagged |= ind.queue_flagged(mode, 0);
        ind.acknowledge();
        let token = q
            .submit(&mut t, chain, tbl)
            .map_err(|e| fail("submit", &e))?;
        let used = q.wait_used().map_err(|e| fail("wait", &e))?;
        if used.token != token {
            return Err(format!(
                "round {}: used token {} for submitted {}",
                round, used.token, token
            ));
        }
        if used.len == 0 || used.len > len {
            return Err(format!(
                "round {}: used length {} for a {}-byte buffer",
                round, used.len, len
            ));
        }
        if let Err(e) = crate::judge::entropy_fill(data.bytes(), used.len as usize, canary_seed) {
            return Err(format!(
                "round {} (a {}-byte chain of {} elements at {}): {}",
                round,
                len,
                chain.len(),
                Hex(base),
                e.as_str()
            ));
        }
        total += u64::from(used.len);
    }
    // Buffers can be used before we ever wait, leaving the interrupt
    // pending: open the I/O mask until it arrives.
    let seen =
        || channel::unsolicited_interrupts() + channel::ADAPTER_INTERRUPTS.load(Ordering::SeqCst);
    crate::arch::timer::wait_until(USED_TIMEOUT_US, true, || seen() != interrupts_before);
    let interrupts = seen() - interrupts_before;
    flagged |= ind.queue_flagged(mode, 0);
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

pub fn rng(m: &mut Machine) -> Outcome {
    let devices: Vec<u32> = m
        .inventory
        .devices
        .iter()
        .filter(|d| d.is_virtio() && d.sense.is_ok_and(|s| u32::from(s.cu_model) == ids::RNG))
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
                for mode in [Indicators::Classic, Indicators::Adapter] {
                    let label = format!(
                        "{} rev {} {} {}",
                        crate::fmt::Hex(sid.into()),
                        rev,
                        if packed { "packed" } else { "split" },
                        if mode == Indicators::Classic {
                            "classic"
                        } else {
                            "adapter"
                        }
                    );
                    let t0 = crate::arch::tod();
                    match rng_round(sid, rev, packed, mode, rounds, &mut seed) {
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

/// A config-space round trip: the balloon's `actual` field (bytes 4..8,
/// little-endian in every revision) is driver-written and read back, at
/// every revision the device takes (as `devices=` configured it; without
/// it, at least one).
pub fn config(m: &mut Machine) -> Outcome {
    let balloons: Vec<&Device> = m
        .inventory
        .devices
        .iter()
        .filter(|d| d.is_virtio() && d.sense.is_ok_and(|s| u32::from(s.cu_model) == ids::BALLOON))
        .collect();
    if balloons.is_empty() {
        return Outcome::skip("no virtio-balloon-ccw device (its config space is driver-writable)");
    }
    for d in balloons {
        let configured = m.cfg.virtio_config(d.bus_id());
        let mut round_trips = 0;
        for rev in [2u8, 1, 0] {
            let mut t = match CcwTransport::open(d.subchannel.sid, rev) {
                Ok(t) => t,
                Err(e) => {
                    return Outcome::mismatch(
                        &format!("{} balloon: opening revision {}", d.bus_id(), rev),
                        "the subchannel enabled and the revision set",
                        format!("{}", e).as_str(),
                    )
                }
            };
            if t.revision() != rev {
                if let Some(c) = configured.filter(|c| rev <= c.max_revision) {
                    return Outcome::mismatch(
                        &format!(
                            "{} balloon: revision {} refused (max_revision={})",
                            d.bus_id(),
                            rev,
                            c.max_revision
                        ),
                        rev,
                        t.revision(),
                    );
                }
                continue;
            }
            let pattern = 0x0102_0304u32.wrapping_mul(u32::from(rev) + 1);
            let r = (|| -> Result<u32, TransportError> {
                negotiate(&mut t, 0)?;
                let mut cfg = [0u8; 8];
                t.read_config(&mut cfg)?;
                cfg[4..8].copy_from_slice(&pattern.to_le_bytes());
                t.write_config(&cfg)?;
                let mut back = [0u8; 8];
                t.read_config(&mut back)?;
                t.reset()?;
                Ok(u32::from_le_bytes([back[4], back[5], back[6], back[7]]))
            })();
            match r {
                Ok(got) if got == pattern => round_trips += 1,
                Ok(got) => {
                    return Outcome::mismatch(
                        &format!(
                            "{} balloon rev {}: config `actual` read back",
                            d.bus_id(),
                            rev
                        ),
                        Hex(pattern.into()),
                        Hex(got.into()),
                    )
                }
                Err(e) => {
                    return Outcome::mismatch(
                        &format!("{} balloon rev {}: config round trip", d.bus_id(), rev),
                        "READ_CONF / WRITE_CONF complete",
                        format!("{}", e).as_str(),
                    )
                }
            }
        }
        if round_trips == 0 {
            return Outcome::mismatch(
                &format!("{} balloon: config round trips", d.bus_id()),
                ">= 1 revision",
                "every revision refused",
            );
        }
    }
    Outcome::Pass
}

/// How long the host has to resize the balloon after we say we are ready.
const CONFIG_CHANGE_WAIT_US: u64 = 10_000_000;

/// The line after which the host resizes the balloon, per indicator mode.
fn ready_line(mode: Indicators) -> &'static str {
    let [classic, adapter] = crate::checks::markers::CONFIG_CHANGE_READY;
    match mode {
        Indicators::Classic => classic,
        Indicators::Adapter => adapter,
    }
}

/// One configuration change in one indicator mode: DRIVER_OK, the ready
/// line, then the configuration indicator and an I/O interrupt for the
/// subchannel; returns whether both came, the interrupts, the adapter
/// interrupts meanwhile (a configuration change is never one: nothing was
/// queued) and num_pages.
fn config_change_round(d: &Device, mode: Indicators) -> Result<(bool, u32, u32, u32), DriveError> {
    let mut t = CcwTransport::open(d.subchannel.sid, 2)?;
    let features = negotiate(&mut t, 0)?;
    let mut ind = IndicatorArea::install(&mut t, mode)?;
    let mut queues = Vec::new();
    for index in 0..MAX_QUEUES {
        match setup_queue(&mut t, index, features, false) {
            Ok(q) => queues.push(q),
            Err(DriveError::NoQueue { .. }) => break,
            Err(e) => return Err(e),
        }
    }
    t.set_status(driver_ok_status(t.revision()))?;
    let before = channel::unsolicited_interrupts();
    let adapter_before = channel::ADAPTER_INTERRUPTS.load(Ordering::SeqCst);
    crate::out!("{}\n", ready_line(mode));
    let flagged = crate::arch::timer::wait_until(CONFIG_CHANGE_WAIT_US, true, || {
        ind.config_flagged() && channel::unsolicited_interrupts() != before
    });
    let interrupts = channel::unsolicited_interrupts() - before;
    let adapter = channel::ADAPTER_INTERRUPTS.load(Ordering::SeqCst) - adapter_before;
    let mut cfg = [0u8; 8];
    t.read_config(&mut cfg)?;
    let _ = t.reset();
    Ok((
        flagged,
        interrupts,
        adapter,
        u32::from_le_bytes([cfg[0], cfg[1], cfg[2], cfg[3]]),
    ))
}

/// The configuration-change notification, with classic and then adapter
/// indicators for the queues: after each ready line the host changes the
/// balloon's target (`balloon-pages=` says to what); the configuration
/// indicator must be set, an I/O interrupt must arrive, and the config
/// must then show the new target.
pub fn config_change(m: &mut Machine) -> Outcome {
    let Some(want) = m.cfg.balloon_pages else {
        return Outcome::skip("no balloon-pages= on the command line");
    };
    let Some(d) =
        m.inventory.devices.iter().find(|d| {
            d.is_virtio() && d.sense.is_ok_and(|s| u32::from(s.cu_model) == ids::BALLOON)
        })
    else {
        return Outcome::fail("balloon-pages= given but there is no virtio-balloon-ccw device");
    };
    for (mode, pages) in [
        (Indicators::Classic, want[0]),
        (Indicators::Adapter, want[1]),
    ] {
        let name = mode_name(mode);
        match config_change_round(d, mode) {
            Err(e) => {
                return Outcome::mismatch(
                    &format!("{} balloon set-up ({} indicators)", d.bus_id(), name),
                    "DRIVER_OK",
                    format!("{}", e).as_str(),
                )
            }
            Ok((false, interrupts, _, _)) => {
                return Outcome::mismatch(
                    &format!(
                        "{} configuration-change indicator and interrupt ({} indicators for the queues)",
                        d.bus_id(),
                        name
                    ),
                    "indicator bit 0 set and an I/O interrupt",
                    format!(
                        "after {} s: {} interrupts",
                        CONFIG_CHANGE_WAIT_US / 1_000_000,
                        interrupts
                    )
                    .as_str(),
                )
            }
            Ok((true, _, adapter, _)) if adapter != 0 => {
                return Outcome::mismatch(
                    &format!(
                        "{} adapter interrupts for a configuration change ({} indicators)",
                        d.bus_id(),
                        name
                    ),
                    0u32,
                    adapter,
                )
            }
            Ok((true, _, _, got)) if got != pages => {
                return Outcome::mismatch(
                    &format!(
                        "{} balloon num_pages after the change ({} indicators)",
                        d.bus_id(),
                        name
                    ),
                    pages,
                    got,
                )
            }
            Ok(_) => {}
        }
    }
    Outcome::Pass
}

fn mode_name(mode: Indicators) -> &'static str {
    match mode {
        Indicators::Classic => "classic",
        Indicators::Adapter => "adapter",
    }
}
