//! virtio-balloon: its configuration space, driver-written and read back
//! at every revision (`virtio.config`), and the host's resize seen as a
//! configuration change in each indicator mode (`virtio.config-change`).

use crate::check::Outcome;
use crate::discovery::Device;
use crate::fmt::Hex;
use crate::format;
use crate::machine::Machine;
use crate::virtio::ccw::CcwTransport;
use crate::virtio::devices::balloon;
use crate::virtio::indicators::{self, IndicatorMode, Indicators};
use crate::virtio::queue::{setup_all_queues, DriveError};
use crate::virtio::transport::{driver_ok_status, negotiate, Transport, TransportError};
use alloc::vec::Vec;

/// A config-space round trip: the balloon's `actual` field (bytes 4..8,
/// little-endian in every revision) is driver-written and read back, at
/// every revision the device takes (as `devices=` configured it; without
/// it, at least one).
pub fn config(m: &mut Machine) -> Outcome {
    let balloons: Vec<&Device> = m.inventory.virtio_devices(balloon::DEVICE_ID).collect();
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
                let cfg = balloon::read_config(&mut t)?;
                balloon::set_actual(&mut t, cfg, pattern)?;
                let back = balloon::read_config(&mut t)?;
                t.reset()?;
                Ok(back.actual)
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
fn ready_line(mode: IndicatorMode) -> &'static str {
    let [classic, adapter] = crate::checks::markers::CONFIG_CHANGE_READY;
    match mode {
        IndicatorMode::Classic => classic,
        IndicatorMode::Adapter => adapter,
    }
}

/// One configuration change in one indicator mode: DRIVER_OK, the ready
/// line, then the configuration indicator and an I/O interrupt for the
/// subchannel; returns whether both came, the interrupts, the adapter
/// interrupts meanwhile (a configuration change is never one: nothing was
/// queued) and num_pages. An error drops the transport, which resets the
/// device before the indicators' and rings' memory can go.
fn config_change_round(
    d: &Device,
    mode: IndicatorMode,
) -> Result<(bool, u32, u32, u32), DriveError> {
    let mut t = CcwTransport::open(d.subchannel.sid, 2)?;
    let features = negotiate(&mut t, 0)?;
    let ind = Indicators::install(&mut t, mode)?;
    let _queues = setup_all_queues(&mut t, features, false)?;
    t.set_status(driver_ok_status(t.revision()))?;
    let before = indicators::subchannel_interrupts();
    let adapter_before = indicators::adapter_interrupts();
    crate::out!("{}\n", ready_line(mode));
    let flagged = t.wait(crate::host_wait::us(CONFIG_CHANGE_WAIT_US), &mut || {
        ind.config_flagged() && indicators::subchannel_interrupts() != before
    });
    let interrupts = indicators::subchannel_interrupts() - before;
    let adapter = indicators::adapter_interrupts() - adapter_before;
    let cfg = balloon::read_config(&mut t)?;
    let _ = t.reset();
    Ok((flagged, interrupts, adapter, cfg.num_pages))
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
    let Some(d) = m.inventory.virtio_devices(balloon::DEVICE_ID).next() else {
        return Outcome::fail("balloon-pages= given but there is no virtio-balloon-ccw device");
    };
    for (mode, pages) in [
        (IndicatorMode::Classic, want[0]),
        (IndicatorMode::Adapter, want[1]),
    ] {
        let name = mode.name();
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
                        "after {}: {} interrupts",
                        crate::host_wait::text(CONFIG_CHANGE_WAIT_US).as_str(),
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
