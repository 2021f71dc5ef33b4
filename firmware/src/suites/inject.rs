//! Deliberate faults, selected with `inject=`, that prove each failure path
//! ends in a report and a failing verdict.

use crate::arch::probe;
use crate::check::Outcome;
use crate::machine::Machine;
use alloc::boxed::Box;

pub fn fail(_: &mut Machine) -> Outcome {
    Outcome::mismatch("failure injected with inject=fail", "pass", "fail")
}

pub fn hang(_: &mut Machine) -> Outcome {
    loop {
        core::hint::spin_loop();
    }
}

pub fn pgm(m: &mut Machine) -> Outcome {
    probe::load_u64(m.memory + (1 << 20));
    Outcome::fail("load past the end of storage did not fault")
}

pub fn forever(_: &mut Machine) -> Outcome {
    probe::spin_disabled()
}

pub fn oom(_: &mut Machine) -> Outcome {
    // Leak 1 MiB blocks until the allocator gives up (a panic, reported).
    loop {
        Box::leak(Box::<[u8]>::new_uninit_slice(1 << 20));
    }
}

/// An emergency signal to ourselves with its subclass open: nobody owns
/// that external interrupt, so the run must end reporting it.
pub fn ext(_: &mut Machine) -> Outcome {
    crate::arch::cr0_subclass(crate::arch::CR0_EMERGENCY_SIGNAL, true);
    let cc = crate::arch::sigp_emergency_signal(crate::arch::hypercall::cpu_address());
    // The interrupt is taken as soon as the subclass and EXT are open.
    crate::arch::timer::wait_until(1_000_000, false, || false);
    crate::arch::cr0_subclass(crate::arch::CR0_EMERGENCY_SIGNAL, false);
    Outcome::mismatch(
        "emergency signal to this CPU",
        "an external interrupt (the run ends reporting it)",
        crate::format!("none within 1 s (SIGP cc {})", cc).as_str(),
    )
}

/// A NOOP on the first device with an interruption parameter that is not
/// ours: the I/O interrupt that follows belongs to nobody.
pub fn io(m: &mut Machine) -> Outcome {
    let Some(d) = m.inventory.devices.first() else {
        return Outcome::fail("inject=io needs a device to start I/O on");
    };
    if let Err(e) = crate::css::channel::start_foreign(d.subchannel.sid) {
        return Outcome::mismatch(
            "starting a NOOP with a foreign parameter",
            "started",
            crate::format!("{}", e).as_str(),
        );
    }
    crate::arch::timer::wait_until(1_000_000, true, || false);
    Outcome::mismatch(
        "I/O interrupt for a subchannel started with a foreign parameter",
        "an I/O interrupt (the run ends reporting it)",
        "none within 1 s",
    )
}

/// How long the host has to plug a device after the ready line.
const MCCK_WAIT_US: u64 = 20_000_000;

/// Opens channel-report machine checks without owning them and asks the
/// host (`# zvtest: inject mcck ready`) to plug a device: the machine check
/// that follows belongs to nobody.
pub fn mcck(_: &mut Machine) -> Outcome {
    crate::arch::enable_channel_reports();
    crate::out!("{}\n", crate::checks::markers::MCCK_READY);
    crate::arch::timer::wait_until(MCCK_WAIT_US, true, || false);
    crate::arch::disable_channel_reports();
    Outcome::mismatch(
        "channel-report machine check after the host's hot plug",
        "a machine check (the run ends reporting it)",
        "none within 20 s",
    )
}
