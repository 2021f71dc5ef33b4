//! The machine as the entry code left it: vectors, SVC, program
//! interrupts of several kinds, storage size.

use crate::arch::context::{class_name, ProgramInterrupt};
use crate::arch::interrupt::{
    expect_program_interrupt, in_problem_state, last_svc, supervisor_call,
};
use crate::arch::{lowcore, probe, symbols, PSW_MASK_64, PSW_MASK_PSTATE};
use crate::check::Outcome;
use crate::fmt::{Hex, HexW};
use crate::format;
use crate::machine::Machine;

pub fn vectors(_: &mut Machine) -> Outcome {
    for (class, entry) in symbols::entry_points().into_iter().enumerate() {
        let psw = lowcore::new_psw(class);
        if psw.mask != PSW_MASK_64 || psw.addr != entry {
            return Outcome::mismatch(
                &format!("{} new PSW", class_name(class as u64)),
                format!("{} {}", HexW(PSW_MASK_64, 16), HexW(entry, 16)).as_str(),
                format!("{} {}", HexW(psw.mask, 16), HexW(psw.addr, 16)).as_str(),
            );
        }
    }
    Outcome::Pass
}

pub fn svc_round_trip(_: &mut Machine) -> Outcome {
    let before = last_svc().count;
    supervisor_call::<42>();
    let svc = last_svc();
    Outcome::expect_eq("SVC interruptions seen", before + 1, svc.count)
        .and_then(|| Outcome::expect_eq("SVC code", 42, svc.code))
        .and_then(|| Outcome::expect_eq("SVC instruction length", 2, svc.ilc))
}

/// Compares a program interrupt with the expected code and instruction length.
fn expect_pgm(got: Option<ProgramInterrupt>, code: u16, ilc: u8) -> Outcome {
    let Some(p) = got else {
        return Outcome::mismatch(
            "no program interrupt",
            format!("code {}", Hex(code.into())).as_str(),
            "none",
        );
    };
    Outcome::expect_eq("interruption code", Hex(code.into()), Hex(p.code.into()))
        .and_then(|| Outcome::expect_eq("instruction length", ilc, p.ilc))
}

pub fn operation_exception(_: &mut Machine) -> Outcome {
    expect_pgm(expect_program_interrupt(probe::invalid_opcode), 0x01, 2)
}

pub fn privileged_operation(_: &mut Machine) -> Outcome {
    let got = expect_program_interrupt(|| in_problem_state(probe::privileged_op));
    expect_pgm(got, 0x02, 6).and_then(|| {
        let mask = got.map_or(0, |p| p.old_psw.mask);
        Outcome::expect_eq(
            "problem-state bit in the old PSW",
            Hex(PSW_MASK_PSTATE),
            Hex(mask & PSW_MASK_PSTATE),
        )
    })
}

pub fn specification_exception(_: &mut Machine) -> Outcome {
    expect_pgm(expect_program_interrupt(probe::stsi_reserved_bit), 0x06, 4)
}

pub fn addressing_exception(m: &mut Machine) -> Outcome {
    let beyond = m.memory + (1 << 20);
    expect_pgm(
        expect_program_interrupt(|| {
            probe::load_u64(beyond);
        }),
        0x05,
        6,
    )
}

pub fn sclp_memory(m: &mut Machine) -> Outcome {
    match m.cfg.expect_mem {
        Some(want) => Outcome::expect_eq("storage size from SCLP (bytes)", want, m.memory),
        None => Outcome::skip("no expect-mem= on the command line"),
    }
}

pub fn sclp_cpus(m: &mut Machine) -> Outcome {
    match m.cfg.expect_cpus {
        Some(want) => Outcome::expect_eq("CPUs from SCLP", want, m.cpus),
        None => Outcome::skip("no expect-cpus= on the command line"),
    }
}
