//! The CPUs: what SCLP says is there, and every one started (smp.rs does
//! the starting at start-up; these checks hold it to what it should be).

use crate::arch::sigp;
use crate::check::Outcome;
use crate::machine::Machine;
use crate::out;
use crate::smp::{self, State};
use alloc::string::String;
use alloc::vec::Vec;

/// Read CPU Info's list against Read SCP Info's count, `expect-cpus=`
/// and this CPU's own address.
pub fn cpus(m: &mut Machine) -> Outcome {
    let list = match &m.smp.configured {
        Ok(l) => l,
        Err(e) => {
            return Outcome::mismatch("SCLP Read CPU Info", "the configured CPUs", e.as_str())
        }
    };
    out!("# smp: {} configured CPUs, addresses", list.len());
    for a in list {
        out!(" {}", a);
    }
    out!("; this CPU {}\n", m.smp.boot_address);
    let mut sorted = list.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != list.len() {
        return Outcome::mismatch(
            "Read CPU Info's addresses",
            "each address once",
            crate::format!("{} entries, {} distinct", list.len(), sorted.len()).as_str(),
        );
    }
    if !list.contains(&m.smp.boot_address) {
        return Outcome::mismatch(
            "this CPU (STAP) among Read CPU Info's",
            m.smp.boot_address,
            "not listed",
        );
    }
    if list.len() != usize::from(m.cpus) {
        return Outcome::mismatch(
            "CPUs: Read CPU Info's list vs Read SCP Info's count",
            m.cpus,
            list.len(),
        );
    }
    match m.cfg.expect_cpus {
        Some(want) => Outcome::expect_eq(
            "CPUs from Read CPU Info (expect-cpus=)",
            want as usize,
            list.len(),
        ),
        None => Outcome::Pass,
    }
}

/// What a CPU says about itself when asked to run something.
#[derive(Clone, Copy, Default)]
struct Seen {
    address: u16,
    prefix: u32,
    number: usize,
    ran: bool,
}

/// Every other CPU came up, and each runs work as itself: its own address
/// (STAP), its own prefix area, its own number.
pub fn start(m: &mut Machine) -> Outcome {
    let cpus = &m.smp;
    if cpus.configured.is_ok() && cpus.others.is_empty() && cpus.left_out.is_empty() {
        return Outcome::skip("one CPU: no other to start");
    }
    let mut failed: Vec<String> = Vec::new();
    for c in &cpus.others {
        match &c.started {
            Ok(us) => out!(
                "# smp: CPU {} (address {}) up in {} us\n",
                c.number,
                c.address,
                us
            ),
            Err(e) => failed.push(crate::format!(
                "CPU {} (address {}): {}",
                c.number,
                c.address,
                e.as_str()
            )),
        }
    }
    if !cpus.left_out.is_empty() {
        failed.push(crate::format!(
            "{} CPUs past the {} zvtest drives were not started",
            cpus.left_out.len(),
            crate::arch::smp::MAX_CPUS
        ));
    }
    if !failed.is_empty() {
        return Outcome::mismatch(
            "every CPU in its idle loop after SIGP RESTART",
            crate::format!("{} CPUs up", cpus.count()).as_str(),
            join(&failed).as_str(),
        );
    }
    let mut work: Vec<(usize, Seen)> = cpus
        .ready()
        .into_iter()
        .map(|n| (n, Seen::default()))
        .collect();
    let asked = work.len();
    let r = smp::run_each(
        &mut work,
        &|n, seen: &mut Seen| {
            *seen = Seen {
                address: sigp::cpu_address(),
                prefix: sigp::prefix(),
                number: smp::this_cpu(),
                ran: n == smp::this_cpu(),
            };
        },
        2_000_000,
    );
    if let Err(stuck) = r {
        let what: Vec<String> = stuck
            .iter()
            .map(|s| {
                crate::format!(
                    "CPU {} (address {}): {}",
                    s.number,
                    s.address.unwrap_or(0xffff),
                    s.why.as_str()
                )
            })
            .collect();
        return Outcome::mismatch("work run on every CPU", asked, join(&what).as_str());
    }
    let mut wrong = Vec::new();
    let mut prefixes: Vec<u32> = Vec::new();
    for (n, seen) in &work {
        let want = smp::address(*n).unwrap_or(0xffff);
        if !seen.ran || seen.number != *n {
            wrong.push(crate::format!("CPU {}: ran as CPU {}", n, seen.number));
        } else if seen.address != want {
            wrong.push(crate::format!(
                "CPU {}: STAP {}, expected {}",
                n,
                seen.address,
                want
            ));
        } else if prefixes.contains(&seen.prefix) {
            wrong.push(crate::format!(
                "CPU {}: prefix {} shared",
                n,
                crate::fmt::Hex(u64::from(seen.prefix))
            ));
        }
        prefixes.push(seen.prefix);
    }
    if !wrong.is_empty() {
        return Outcome::mismatch(
            "each CPU runs as itself",
            "its own address, number and prefix",
            join(&wrong).as_str(),
        );
    }
    if work
        .iter()
        .any(|(n, _)| *n != 0 && smp::state(*n) != State::Idle)
    {
        return Outcome::fail("a CPU did not return to its idle loop after its work");
    }
    Outcome::Pass
}

fn join(items: &[String]) -> String {
    let mut s = String::new();
    for (i, t) in items.iter().enumerate() {
        if i > 0 {
            s.push_str("; ");
        }
        s.push_str(t);
    }
    s
}
