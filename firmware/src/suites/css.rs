//! The channel subsystem: CHSC, SENSE ID on every device, the inventory
//! against what the host configured, and channel-program mechanics.

use crate::arch::handlers;
use crate::arch::{self, io, timer};
use crate::check::Outcome;
use crate::css::blocks::{self, FCTL_CLEAR, FCTL_HALT};
use crate::css::channel::{self, IoError, IO_TIMEOUT_US};
use crate::css::program::ChannelProgram;
use crate::fmt::Hex;
use crate::format;
use crate::inventory::{diff, list};
use crate::machine::Machine;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

pub fn characteristics(m: &mut Machine) -> Outcome {
    match channel::store_characteristics() {
        None => Outcome::skip("CHSC is not available (condition code not 0)"),
        // 0x0002: the host does not offer this request (Hercules 3.13).
        Some(c) if c.code == 0x0002 => {
            Outcome::skip("CHSC SCSC not offered by the host (response 0x0002)")
        }
        Some(c) => crate::judge::scsc(&c, m.host.kind.is_qemu(), m.inventory.mcss),
    }
}

pub fn sense_id(m: &mut Machine) -> Outcome {
    if m.inventory.devices.is_empty() {
        return Outcome::skip("no device in the channel subsystem");
    }
    let failed: Vec<_> = m
        .inventory
        .devices
        .iter()
        .filter(|d| d.sense.is_err())
        .collect();
    match failed.first() {
        None => Outcome::Pass,
        Some(d) => Outcome::mismatch(
            &format!(
                "SENSE ID failed on {} of {} devices",
                failed.len(),
                m.inventory.devices.len()
            ),
            "identification data",
            format!("{}: {}", d.bus_id(), d.sense.err().unwrap_or(IoError::Busy)).as_str(),
        ),
    }
}

pub fn inventory(m: &mut Machine) -> Outcome {
    let Some(expected) = &m.cfg.devices else {
        return Outcome::skip("no devices= on the command line");
    };
    let found = m.inventory.entries();
    let (missing, extra) = diff(expected, &found);
    if missing.is_empty() && extra.is_empty() {
        return Outcome::Pass;
    }
    Outcome::mismatch(
        &format!(
            "device inventory differs: missing {}; unexpected {}",
            list(&missing).as_str(),
            list(&extra).as_str()
        ),
        list(expected).as_str(),
        list(&found).as_str(),
    )
}

/// The first device that answered SENSE ID, for mechanics checks.
fn first_device(m: &Machine) -> Option<u32> {
    m.inventory
        .devices
        .iter()
        .find(|d| d.sense.is_ok())
        .map(|d| d.subchannel.sid)
}

pub fn chaining(m: &mut Machine) -> Outcome {
    let Some(sid) = first_device(m) else {
        return Outcome::skip("no identified device");
    };
    // NOOP, command-chained to a TIC that jumps over a command that would
    // be rejected, to a final NOOP.
    let Some(mut program) = ChannelProgram::new(4, 0) else {
        return Outcome::fail("no storage below 2 GiB for a channel program");
    };
    program.ccw(0, blocks::CMD_NOOP, blocks::CCW_CHAIN_COMMAND, 0, 0);
    program.tic(1, 3);
    program.ccw(2, 0xf3, 0, 0, 0);
    program.ccw(3, blocks::CMD_NOOP, 0, 0, 0);
    let after_last = program.ccw_address(4);
    match channel::run_program(sid, &mut program, IO_TIMEOUT_US) {
        Ok(irb) => Outcome::expect_eq(
            "CCW address in the SCSW (last CCW + 8)",
            Hex(after_last.into()),
            Hex(irb.scsw.ccw_addr.into()),
        ),
        Err(e) => Outcome::mismatch(
            "chained NOOP-TIC-NOOP",
            "channel end + device end",
            format!("{}", e).as_str(),
        ),
    }
}

pub fn command_reject(m: &mut Machine) -> Outcome {
    let Some(sid) = first_device(m) else {
        return Outcome::skip("no identified device");
    };
    let mut program = match channel::single(0xf3, blocks::CCW_SLI, 8) {
        Ok(p) => p,
        Err(e) => return Outcome::mismatch("unknown command 0xf3", "unit check", e),
    };
    match channel::run_program(sid, &mut program, IO_TIMEOUT_US) {
        Err(IoError::UnitCheck { sense0 }) => Outcome::expect_eq(
            "sense byte 0 after an unknown command",
            Hex(0x80),
            Hex(sense0.into()),
        ),
        Ok(_) => Outcome::mismatch("unknown command 0xf3", "unit check", "normal completion"),
        Err(e) => Outcome::mismatch(
            "unknown command 0xf3",
            "unit check",
            format!("{}", e).as_str(),
        ),
    }
}

/// CSCH or HSCH on an idle device completes with its function control.
fn function_completes(
    m: &Machine,
    name: &str,
    function: fn(u32) -> Result<crate::css::blocks::Irb, IoError>,
    fctl: u32,
) -> Outcome {
    let Some(sid) = first_device(m) else {
        return Outcome::skip("no identified device");
    };
    match function(sid) {
        Ok(irb) => Outcome::expect_eq(
            &format!("function control after {}", name),
            Hex(fctl.into()),
            Hex(irb.scsw.fctl().into()),
        ),
        Err(e) => Outcome::mismatch(name, "completion", format!("{}", e).as_str()),
    }
}

pub fn clear(m: &mut Machine) -> Outcome {
    function_completes(m, "CSCH", channel::clear, FCTL_CLEAR)
}

pub fn halt(m: &mut Machine) -> Outcome {
    function_completes(m, "HSCH", channel::halt, FCTL_HALT)
}

/// How long the host has to plug and unplug after we say we are ready.
const HOTPLUG_WAIT_US: u64 = 20_000_000;
/// How often STCRW is polled, and the inventory rescanned once channel
/// reports have come.
const RESCAN_INTERVAL_US: u64 = 50_000;

/// Channel-report machine checks taken while a hot-plug check waits.
static CHANNEL_REPORTS: AtomicUsize = AtomicUsize::new(0);

fn on_channel_report() {
    CHANNEL_REPORTS.fetch_add(1, Ordering::SeqCst);
}

/// Waits for the host's hot-plug steps (announced with `hotplug=`), taking
/// channel-report machine checks, and checks the rescanned inventory.
pub fn hotplug(m: &mut Machine) -> Outcome {
    if m.cfg.hotplug.is_empty() {
        return Outcome::skip("no hotplug= on the command line");
    }
    let mut want = m.inventory.entries();
    for (add, e) in &m.cfg.hotplug {
        if *add {
            want.push(e.clone());
        } else {
            want.retain(|x| x != e);
        }
    }
    want.sort();
    let reports_before = CHANNEL_REPORTS.load(Ordering::SeqCst);
    let mut crws: Vec<u32> = Vec::new();
    let mut found = m.inventory.entries();
    // The machine checks are ours only while we wait for them.
    {
        let _reports = handlers::on_channel_report(on_channel_report);
        crate::out!("{}\n", crate::checks::markers::HOTPLUG_READY);
        let started = arch::tod();
        let deadline = timer::deadline_after_us(crate::host_wait::us(HOTPLUG_WAIT_US));
        // Reports counted before "ready" was printed are taken as new too.
        let mut handled = reports_before;
        loop {
            let remaining = deadline.saturating_sub(arch::tod()) / arch::TOD_PER_US;
            if remaining == 0 {
                break;
            }
            // The machine check is the signal, but STCRW is polled too: under
            // QEMU TCG the machine check sometimes arrives only much later
            // (seen with 7.2), and a removal's report can come before the
            // subchannel is gone, with no later report to wake us.
            let wait = remaining.min(RESCAN_INTERVAL_US);
            timer::wait_until(wait, true, || {
                CHANNEL_REPORTS.load(Ordering::SeqCst) != handled
            });
            while let Some(crw) = io::store_crw() {
                crws.push(crw);
            }
            handled = CHANNEL_REPORTS.load(Ordering::SeqCst);
            if crws.is_empty() {
                continue;
            }
            m.inventory = crate::discovery::discover();
            found = m.inventory.entries();
            if m.cfg.verbose >= 2 {
                let ms = (arch::tod() - started) / arch::TOD_PER_US / 1000;
                crate::out!(
                    "# hotplug: rescan after {} ms, {} CRWs: {}\n",
                    ms,
                    crws.len(),
                    list(&found).as_str()
                );
            }
            if found == want {
                break;
            }
        }
    }
    crate::out!(
        "# hotplug: {} channel-report machine checks, {} CRWs stored\n",
        CHANNEL_REPORTS.load(Ordering::SeqCst) - reports_before,
        crws.len()
    );
    m.inventory.print();
    if crws.is_empty() {
        return Outcome::mismatch("channel report words after hot plug", ">= 1", 0u32);
    }
    let (missing, extra) = diff(&want, &found);
    if missing.is_empty() && extra.is_empty() {
        return Outcome::Pass;
    }
    Outcome::mismatch(
        &format!(
            "inventory after hot plug differs: missing {}; unexpected {}",
            list(&missing).as_str(),
            list(&extra).as_str()
        ),
        list(&want).as_str(),
        list(&found).as_str(),
    )
}
