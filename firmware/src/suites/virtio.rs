//! virtio-ccw devices through the transport, whatever the device: every
//! revision each accepts, feature negotiation, ring formats, indicator
//! modes, status, DRIVER_OK.

use crate::check::Outcome;
use crate::discovery::Device;
use crate::fmt::Hex;
use crate::format;
use crate::inventory::VirtioConfig;
use crate::judge::RevisionSeen;
use crate::machine::Machine;
use crate::virtio::ccw::CcwTransport;
use crate::virtio::ids;
use crate::virtio::indicators::{IndicatorMode, Indicators};
use crate::virtio::queue::{setup_all_queues, DriveError};
use crate::virtio::transport::{
    driver_ok_status, has, negotiate, Transport, TransportError, F_EVENT_IDX, F_INDIRECT_DESC,
    F_RING_PACKED,
};
use alloc::string::String;
use alloc::vec::Vec;

/// Devices that accept nothing below revision 1.
fn modern_only(id: u32) -> bool {
    matches!(
        id,
        ids::GPU | ids::INPUT | ids::CRYPTO | ids::VSOCK | ids::FS
    )
}

/// Device features a device refuses to run without when it offers them:
/// virtio-mem's UNPLUGGED_INACCESSIBLE (QEMU fails FEATURES_OK without
/// it, hw/virtio/virtio-mem.c virtio_mem_validate_features).
fn required_features(id: u32) -> u64 {
    match id {
        ids::MEM => 1 << crate::virtio::devices::mem::F_UNPLUGGED_INACCESSIBLE,
        _ => 0,
    }
}

/// The transport features the suites drive when a device offers them.
pub(super) const WANTED: u64 = 1 << F_INDIRECT_DESC | 1 << F_EVENT_IDX | 1 << F_RING_PACKED;

/// One bring-up at the revision `t` has: features (packed ring or not),
/// indicators, every queue, DRIVER_OK, status read back, reset. None when
/// the device does not offer the packed ring. On an error the indicators
/// and queues go, but `t` keeps their memory for the device until the
/// next bring-up's reset (in `negotiate`) or its own drop.
fn bring_up(
    t: &mut CcwTransport,
    packed: bool,
    mode: IndicatorMode,
    own: u64,
) -> Result<Option<(u64, u16)>, DriveError> {
    let ring = if packed { 1 << F_RING_PACKED } else { 0 };
    let features = negotiate(t, (WANTED & !(1 << F_RING_PACKED)) | ring | own)?;
    if packed && !has(features, F_RING_PACKED) {
        return Ok(None);
    }
    let _indicators = Indicators::install(t, mode)?;
    let queues = setup_all_queues(t, features, packed)?;
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
            for mode in IndicatorMode::ALL {
                let what = format!(
                    "{}/{}",
                    if packed { "packed" } else { "split" },
                    mode.name()
                );
                match bring_up(&mut t, packed, mode, required_features(id)) {
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
