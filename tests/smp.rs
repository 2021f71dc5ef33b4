//! The CPUs: every one the host gives found (SCLP Read CPU Info, checked
//! against -smp) and started with SIGP into its own prefix area and stack,
//! under multi-threaded TCG with 1, 2, 4 and 8 CPUs on our 2 cores; and a
//! CPU that does not come up fails the run, named.

use crate::common;

use common::{assert_pass, boot, check, check_ran, elf, fails_with, scenario};
use qemu_runner::Scenario;

/// -smp N under multi-threaded TCG, the runner telling the firmware
/// expect-cpus=N.
fn cpus(name: &str, n: u32) -> Scenario {
    scenario(name)
        .accel("tcg,thread=multi")
        .smp(n)
        .append("only=sclp.*,smp.*")
}

fn brought_up(n: u32) {
    let o = boot(&cpus(&format!("smp-{n}"), n), &elf());
    assert_pass(&o);
    check_ran(&o, "smp.cpus");
    if n == 1 {
        check(
            &o,
            o.tap.result("smp.start").is_some_and(|r| r.is_skip()),
            "smp.start to SKIP with one CPU",
        );
    } else {
        check_ran(&o, "smp.start");
        check_ran(&o, "smp.heap");
        check_ran(&o, "smp.console");
        // The verdict has held every CPU's lines whole (contract smp).
        check(
            &o,
            zvtest_contract::smp::check_console(&o.tap.diagnostics)
                == Ok(Some(
                    n as usize * zvtest_contract::smp::CONSOLE_LINES as usize,
                )),
            "every CPU's console lines, whole and in order",
        );
        for a in 1..n {
            let line = format!("# smp: CPU {a} (address {a}) up in");
            check(
                &o,
                o.console().lines().any(|l| l.starts_with(&line)),
                &format!("a line {line:?}"),
            );
        }
    }
}

#[test]
fn one_cpu() {
    brought_up(1);
}

#[test]
fn two_cpus() {
    brought_up(2);
}

#[test]
fn four_cpus() {
    brought_up(4);
}

#[test]
fn eight_cpus() {
    brought_up(8);
}

#[test]
fn a_cpu_that_does_not_start_fails_named() {
    // host-wait=: the CPU left out is given up on after that, not 5 s.
    let o = boot(
        &cpus("smp-refused", 4).append("inject=cpu host-wait=1500"),
        &elf(),
    );
    fails_with(
        &o,
        "smp.start",
        &[
            "CPU 3 (address 3)",
            "not in its idle loop 1500 ms after SIGP RESTART",
            "state stopped",
        ],
    );
    check_ran(&o, "smp.cpus");
}

#[test]
fn a_wrong_cpu_count_fails_smp_cpus() {
    // The runner says expect-cpus=2; a later -smp gives QEMU 3.
    let o = boot(
        &cpus("smp-wrong-count", 2).extra_args(["-smp", "3"]),
        &elf(),
    );
    fails_with(&o, "smp.cpus", &["expect-cpus="]);
}

#[test]
fn plugged_cpus_are_found_and_started() {
    // -smp 1,maxcpus=4; the runner plugs cores 1 and 3 at the marker.
    let s = cpus("smp-plug", 1).plug_cpus(4, &[1, 3]);
    let o = boot(&s, &elf());
    assert_pass(&o);
    check_ran(&o, "smp.hotplug");
    for (n, a) in [(1, 1), (2, 3)] {
        let line = format!("# smp: CPU {n} (address {a}) plugged, up in");
        check(
            &o,
            o.console().lines().any(|l| l.starts_with(&line)),
            &format!("a line {line:?}"),
        );
    }
}

#[test]
fn a_cpu_promised_but_not_plugged_fails() {
    // The firmware is told two CPUs come (cpu-plug=2); the host plugs one.
    // host-wait=: the one CPU that comes is there long before it ends.
    let mut s = cpus("smp-plug-short", 1)
        .plug_cpus(4, &[2])
        .append("host-wait=2500");
    s.plugged_cpus.push(3);
    let o = boot(&s, &elf());
    fails_with(&o, "smp.hotplug", &["2 new CPUs", "1 within 2500 ms"]);
}

#[test]
fn the_heap_without_its_lock_fails_smp_heap() {
    // inject=heap leaves the heap's lock out while four CPUs churn it in
    // lockstep. Whether two of them are inside the allocator at the same
    // instant is up to the host's scheduler (two cores, other tests
    // running): one of three boots must fail.
    let mut last = None;
    for attempt in 0..3 {
        let o = boot(
            &cpus(&format!("smp-heap-unlocked-{attempt}"), 4).append("inject=heap"),
            &elf(),
        );
        if !o.passed() {
            // A broken free list shows as a changed block, CPUs that never
            // finish (named), or a panic inside the check.
            check(
                &o,
                o.tap.result("smp.heap").is_some_and(|r| !r.ok)
                    || o.tap
                        .bail_out
                        .as_deref()
                        .is_some_and(|b| b.contains("smp.heap")),
                "smp.heap to fail, or a bail out inside it",
            );
            // A bail out by any CPU ends the run: every other CPU stopped,
            // the IPL CPU too (once it went on, waited out the churn and
            // wrote more results after the bail out).
            if o.tap.bail_out.is_some() {
                let console = o.console();
                let after: Vec<&str> = console
                    .lines()
                    .skip_while(|l| !l.starts_with("Bail out!"))
                    .filter(|l| l.starts_with("ok ") || l.starts_with("not ok "))
                    .collect();
                check(
                    &o,
                    after.is_empty(),
                    &format!("no result after the bail out, got {after:?}"),
                );
            }
            return;
        }
        last = Some(o);
    }
    let o = last.expect("three boots");
    check(&o, false, "a failing verdict in one of three boots");
}
