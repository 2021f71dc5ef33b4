//! virtio-ccw devices through the transport: every revision each device
//! accepts, feature negotiation, status, DRIVER_OK.

use crate::check::Outcome;
use crate::discovery::Device;
use crate::fmt::Hex;
use crate::format;
use crate::runner::Machine;
use crate::virtio::ccw::CcwTransport;
use crate::virtio::ids;
use crate::virtio::transport::{
    negotiate, Transport, TransportError, F_EVENT_IDX, F_INDIRECT_DESC, F_RING_PACKED,
    STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK,
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

const WANTED: u64 = 1 << F_INDIRECT_DESC | 1 << F_EVENT_IDX | 1 << F_RING_PACKED;

/// Brings the device to DRIVER_OK at the revision `t` has; returns the
/// accepted features.
fn bring_up(t: &mut CcwTransport) -> Result<u64, TransportError> {
    let features = negotiate(t, WANTED)?;
    let ok = STATUS_ACKNOWLEDGE
        | STATUS_DRIVER
        | STATUS_DRIVER_OK
        | if t.revision() >= 1 {
            STATUS_FEATURES_OK
        } else {
            0
        };
    t.set_status(ok)?;
    if let Some(read) = t.status()? {
        if read != ok {
            return Err(TransportError::StatusNotKept { wrote: ok, read });
        }
    }
    t.reset()?;
    Ok(features)
}

/// One device at each revision 2, 1, 0: the line to print and a failure.
fn device_revisions(d: &Device) -> (String, Option<String>) {
    let id = d.sense.map_or(0, |s| u32::from(s.cu_model));
    let mut line = format!("{} {}:", d.bus_id(), d.name().as_str());
    let mut accepted = Vec::new();
    let mut failure = None;
    for want in [2u8, 1, 0] {
        let r = CcwTransport::open(d.subchannel.sid, want).and_then(|mut t| {
            let got = t.revision();
            bring_up(&mut t).map(|f| (got, f))
        });
        match r {
            Ok((got, features)) if got == want => {
                accepted.push(want);
                line.push_str(&format!(" rev {} ok (features {})", want, Hex(features)));
            }
            Ok((got, _)) => line.push_str(&format!(" rev {} refused (got {});", want, got)),
            Err(e) if want == 0 && modern_only(id) => {
                line.push_str(&format!(" legacy refused as expected ({})", e));
            }
            Err(e) => {
                line.push_str(&format!(" rev {} failed: {};", want, e));
                failure.get_or_insert_with(|| format!("{} revision {}: {}", d.bus_id(), want, e));
            }
        }
    }
    if modern_only(id) && accepted.contains(&0) {
        failure.get_or_insert_with(|| {
            format!("{}: modern-only device accepted revision 0", d.bus_id())
        });
    }
    if accepted.is_empty() {
        failure = Some(format!(
            "{} {}: no virtio revision accepted ({})",
            d.bus_id(),
            d.name().as_str(),
            failure.as_deref().unwrap_or("every SET_VIRTIO_REV refused")
        ));
    }
    (line, failure)
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
    for d in devices {
        let (line, failure) = device_revisions(d);
        crate::out!("# virtio {}\n", line.as_str());
        failures.extend(failure);
    }
    match failures.first() {
        None => Outcome::Pass,
        Some(first) => Outcome::mismatch(
            &format!(
                "{} devices could not be driven: {}",
                failures.len(),
                first.as_str()
            ),
            "DRIVER_OK at every accepted revision",
            failures.join("; ").as_str(),
        ),
    }
}
