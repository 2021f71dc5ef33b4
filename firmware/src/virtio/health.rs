//! A device that asks to be reset: DEVICE_NEEDS_RESET in its status (the
//! virtio spec), which a device sets when it has hit an error it cannot
//! go on from, and follows with a configuration-change notification.
//! Any suite can look, on that notification or at the end of its work;
//! virtio-ccw reads the status back only from revision 2 (READ_STATUS),
//! and at a lower revision the look says so instead.

use super::transport::{Status, Transport};
use crate::fmt::ToText;
use crate::format;
use crate::inventory::BusId;
use alloc::string::String;

/// What a device's status says of it, `when` naming the moment ("after a
/// configuration-change interrupt"): Ok(None) when all is well, Ok(Some(note))
/// when the status cannot be read back (at `revision`), Err(the failure) when
/// the device set DEVICE_NEEDS_RESET.
pub fn judge(
    bus: BusId,
    revision: u8,
    status: Option<u8>,
    when: &str,
) -> Result<Option<String>, String> {
    match status {
        None => Ok(Some(format!(
            "device {}: revision {} has no READ_STATUS (revision 2 on): DEVICE_NEEDS_RESET not looked at",
            bus, revision
        ))),
        Some(s) if Status::from_bits_retain(s).contains(Status::NEEDS_RESET) => Err(format!(
            "device {}: the device set DEVICE_NEEDS_RESET (status {}) {}; its queues marked broken",
            bus,
            crate::fmt::Hex(u64::from(s)),
            when
        )),
        Some(_) => Ok(None),
    }
}

/// Reads the device's status and [`judge`]s it.
pub fn needs_reset<T: Transport + ?Sized>(
    t: &mut T,
    bus: BusId,
    when: &str,
) -> Result<Option<String>, String> {
    let status = t.status().map_err(|e| {
        format!(
            "device {}: reading the status {}: {}",
            bus,
            when,
            e.text().as_str()
        )
    })?;
    judge(bus, t.revision(), status.map(|s| s.bits()), when)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DRIVER_OK alone passes; with NEEDS_RESET it is named with the
    /// status; an unreadable status is a note, not a pass in disguise.
    #[test]
    fn needs_reset_is_named() {
        let bus: BusId = "fe.0.0004".parse().unwrap();
        let w = "after a configuration-change interrupt";
        assert_eq!(judge(bus, 2, Some(0x0f), w), Ok(None));
        assert_eq!(
            judge(bus, 2, Some(0x4f), w),
            Err(String::from("device fe.0.0004: the device set DEVICE_NEEDS_RESET (status 0x4f) after a configuration-change interrupt; its queues marked broken"))
        );
        assert_eq!(
            judge(bus, 1, None, w),
            Ok(Some(String::from("device fe.0.0004: revision 1 has no READ_STATUS (revision 2 on): DEVICE_NEEDS_RESET not looked at")))
        );
    }
}
