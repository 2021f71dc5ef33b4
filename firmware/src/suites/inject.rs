//! Deliberate faults, selected with `inject=`, that prove each failure path
//! ends in a report and a failing verdict.

use crate::arch::probe;
use crate::check::Outcome;
use crate::runner::Machine;
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
