//! The CPUs: what SCLP says is there, and every one started (smp.rs does
//! the starting at start-up; these checks hold it to what it should be).

use crate::arch::{sigp, timer};
use crate::check::Outcome;
use crate::checks::markers;
use crate::console::sclp;
use crate::machine::Machine;
use crate::out;
use crate::sccb;
use crate::smp::{self, State};
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

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
        return stuck_cpus("work run on every CPU", asked, &stuck);
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

/// The failure of work `smp::run_each` could not finish on every CPU:
/// each CPU that missed it, by number and address, and why.
fn stuck_cpus(what: &str, asked: usize, stuck: &[smp::Stuck]) -> Outcome {
    let each: Vec<String> = stuck
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
    Outcome::mismatch(what, asked, join(&each).as_str())
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

/// How long the host has to plug the CPUs once asked.
const PLUG_TIMEOUT_US: u64 = 10_000_000;

/// CPUs plugged while the run goes on: after `cpu plug ready` the host
/// plugs `cpu-plug=` CPUs; each plug is announced by the SCLP (a service
/// signal saying an event waits, then a configuration-management event
/// "CPUs changed"), Read CPU Info then lists the new addresses, and each
/// new CPU is started like the others and runs work as itself.
pub fn hotplug(m: &mut Machine) -> Outcome {
    let Some(want) = m.cfg.cpu_plug else {
        return Outcome::skip("no cpu-plug= on the command line: the host plugs no CPU");
    };
    let want = usize::from(want);
    let before = match sclp::read_cpu_entries() {
        Ok(Ok(i)) => i.configured,
        Ok(Err(e)) => return Outcome::mismatch("SCLP Read CPU Info", "a CPU list", e),
        Err(e) => return Outcome::mismatch("SCLP Read CPU Info", "an answer", e),
    };
    match sclp::receive_config_events(true) {
        Ok(sccb::RC_NORMAL) => {}
        Ok(rc) => {
            return Outcome::mismatch(
                "Write Event Mask with configuration events",
                crate::fmt::Hex(u64::from(sccb::RC_NORMAL)),
                crate::fmt::Hex(u64::from(rc)),
            )
        }
        Err(e) => {
            return Outcome::mismatch(
                "Write Event Mask with configuration events",
                "an answer",
                sclp::InfoError::Call(e),
            )
        }
    }
    let outcome = plugged(m, want, &before);
    let _ = sclp::receive_config_events(false);
    outcome
}

fn plugged(m: &mut Machine, want: usize, before: &[u16]) -> Outcome {
    let deadline = timer::deadline_after_us(crate::host_wait::us(PLUG_TIMEOUT_US));
    let mut seen = sclp::EVENT_SIGNALS.load(Ordering::SeqCst);
    out!("{}\n", markers::CPU_PLUG_READY);
    let mut events = 0usize;
    let mut added: Vec<u16> = Vec::new();
    while added.len() < want {
        // The service signal floats: any CPU may take it, so the wait
        // looks again every millisecond rather than sleep until its end.
        let left = deadline.saturating_sub(crate::arch::tod()) / crate::arch::TOD_PER_US;
        if !timer::poll_until(left, || sclp::EVENT_SIGNALS.load(Ordering::SeqCst) != seen) {
            return Outcome::mismatch(
                "CPUs plugged by the host, each announced by a service signal",
                crate::format!("{} new CPUs", want).as_str(),
                crate::format!(
                    "{} within {} ({} configuration events)",
                    added.len(),
                    crate::host_wait::text(PLUG_TIMEOUT_US).as_str(),
                    events
                )
                .as_str(),
            );
        }
        seen = sclp::EVENT_SIGNALS.load(Ordering::SeqCst);
        match sclp::read_events() {
            // Read Event Data answers normal completion (QEMU's event-facility.c).
            Ok((sccb::RC_NORMAL, Ok(list))) => {
                for (kind, data) in &list {
                    if *kind != sccb::EVENT_CONFIG_MGT
                        || data.get(1) != Some(&sccb::CONFIG_QUALIFIER_CPU)
                    {
                        return Outcome::mismatch(
                            "Read Event Data after a CPU was plugged",
                            "configuration-management events, qualifier 1 (CPUs changed)",
                            crate::format!(
                                "type {} data {:?}",
                                crate::fmt::Hex(u64::from(*kind)),
                                data.as_slice()
                            )
                            .as_str(),
                        );
                    }
                    events += 1;
                }
            }
            // A signal for an event another read already took.
            Ok((sccb::RC_NO_EVENTS, _)) => {}
            Ok((rc, list)) => {
                return Outcome::mismatch(
                    "Read Event Data after a CPU was plugged",
                    "normal read completion with well-formed events",
                    crate::format!(
                        "response {} ({}), {}",
                        crate::fmt::Hex(u64::from(rc)),
                        sccb::response_meaning(rc),
                        list.err()
                            .map_or(String::from("events well-formed"), |e| crate::format!(
                                "{}", e
                            ))
                            .as_str()
                    )
                    .as_str(),
                )
            }
            Err(e) => {
                return Outcome::mismatch("Read Event Data", "an answer", sclp::InfoError::Call(e))
            }
        }
        let now = match sclp::read_cpu_entries() {
            Ok(Ok(i)) => i.configured,
            Ok(Err(e)) => {
                return Outcome::mismatch("SCLP Read CPU Info after the plug", "a CPU list", e)
            }
            Err(e) => {
                return Outcome::mismatch("SCLP Read CPU Info after the plug", "an answer", e)
            }
        };
        if let Some(gone) = before.iter().find(|a| !now.contains(a)) {
            return Outcome::mismatch(
                "CPUs configured before the plug",
                "all still listed",
                crate::format!("address {} gone", gone).as_str(),
            );
        }
        added = now
            .iter()
            .copied()
            .filter(|a| !before.contains(a))
            .collect();
    }
    if events == 0 || added.len() != want {
        return Outcome::mismatch(
            "new CPUs in Read CPU Info, announced by configuration events",
            crate::format!("{} new, at least one event", want).as_str(),
            crate::format!("{} new, {} events", added.len(), events).as_str(),
        );
    }
    added.sort_unstable();
    // Later checks (sigp.no-cpu) hold the CPUs to the list as it is now.
    if let Ok(list) = &mut m.smp.configured {
        list.extend(added.iter().copied());
    }
    m.smp.plugged += added.len();
    let mut failed = Vec::new();
    for a in added {
        let rec = smp::start_added(&mut m.smp, a);
        match &rec.started {
            Ok(us) => out!(
                "# smp: CPU {} (address {}) plugged, up in {} us\n",
                rec.number,
                a,
                us
            ),
            Err(e) => failed.push(crate::format!(
                "CPU {} (address {}): {}",
                rec.number,
                a,
                e.as_str()
            )),
        }
    }
    if !failed.is_empty() {
        return Outcome::mismatch(
            "every plugged CPU in its idle loop after SIGP RESTART",
            want,
            join(&failed).as_str(),
        );
    }
    // Each new CPU works as itself, like the others.
    start(m)
}

/// One CPU's share of `smp.heap`: its seed in, what it saw out.
struct HeapWork {
    seed: u64,
    /// With the lock left out (`inject=heap`): the CPUs taking part, who
    /// meet before every operation so that they enter the heap together.
    lockstep: Option<usize>,
    result: Option<Result<u64, String>>,
}

/// Operations started, over all CPUs, for the lockstep of `inject=heap`.
static HEAP_STEPS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Waits (at most 10 ms) until every one of `cpus` has reached step `t`.
fn meet(cpus: usize, t: u64) {
    HEAP_STEPS.fetch_add(1, Ordering::SeqCst);
    let want = (t + 1) * cpus as u64;
    let end = timer::deadline_after_us(10_000);
    let mut spins = 0u32;
    while HEAP_STEPS.load(Ordering::SeqCst) < want {
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(64) && crate::arch::tod() >= end {
            break;
        }
        core::hint::spin_loop();
    }
}

/// Blocks each CPU keeps live at most, and operations per CPU.
const HEAP_LIVE: usize = 24;
const HEAP_OPS: u64 = 1500;

fn heap_byte(cpu: usize, tag: u64, i: usize) -> u8 {
    (tag.wrapping_mul(0x9e37)
        .wrapping_add(i as u64 * 13)
        .wrapping_add(cpu as u64 * 101)
        >> 2) as u8
}

/// Allocates, fills, checks and frees seeded blocks on this CPU; the
/// first byte found changed names the block and offset.
fn heap_churn(cpu: usize, seed: u64, lockstep: Option<usize>) -> Result<u64, String> {
    let mut rng = zvtest_contract::stress::Rng::for_request(seed, 0x736d_7068, cpu as u64);
    let mut live: Vec<(u64, Vec<u8>)> = Vec::new();
    let check = |tag: u64, b: &[u8]| -> Result<(), String> {
        match b.iter().enumerate().find(|&(i, &v)| v != heap_byte(cpu, tag, i)) {
            None => Ok(()),
            Some((i, &v)) => Err(crate::format!(
                "CPU {}: block {} ({} bytes at {}) changed at offset {}: expected {}, got {} (seed {})",
                cpu,
                tag,
                b.len(),
                crate::fmt::Hex(b.as_ptr() as u64),
                i,
                heap_byte(cpu, tag, i),
                v,
                seed
            )),
        }
    };
    let mut allocs = 0u64;
    for tag in 0..HEAP_OPS {
        if let Some(n) = lockstep {
            meet(n, tag);
        }
        if live.len() < HEAP_LIVE && (live.is_empty() || rng.below(3) != 0) {
            let len = if rng.below(16) == 0 {
                4096 + rng.below(60 << 10)
            } else {
                8 + rng.below(4088)
            } as usize;
            let b: Vec<u8> = (0..len).map(|i| heap_byte(cpu, tag, i)).collect();
            allocs += 1;
            live.push((tag, b));
        } else {
            let (t, b) = live.swap_remove(rng.below(live.len() as u64) as usize);
            check(t, &b)?;
        }
    }
    for (t, b) in &live {
        check(*t, b)?;
    }
    Ok(allocs)
}

/// The heap from every CPU at once: each allocates, fills, checks and
/// frees seeded blocks while the others do the same; a block another
/// CPU was also given, or a free list broken by two CPUs at once, shows
/// as a changed byte (or a fault).
pub fn heap(m: &mut Machine) -> Outcome {
    let ready = m.smp.ready();
    if ready.len() < 2 {
        return Outcome::skip("one CPU: nothing to share the heap with");
    }
    let bypass = m.cfg.inject.contains(&crate::cmdline::Inject::Heap);
    let mut work: Vec<(usize, HeapWork)> = ready
        .iter()
        .map(|&n| {
            (
                n,
                HeapWork {
                    seed: m.cfg.seed,
                    lockstep: bypass.then_some(ready.len()),
                    result: None,
                },
            )
        })
        .collect();
    HEAP_STEPS.store(0, Ordering::SeqCst);
    crate::memory::bypass_lock(bypass);
    let r = smp::run_each(
        &mut work,
        &|n, w: &mut HeapWork| w.result = Some(heap_churn(n, w.seed, w.lockstep)),
        10_000_000,
    );
    crate::memory::bypass_lock(false);
    if let Err(stuck) = r {
        return stuck_cpus("every CPU through its heap churn", ready.len(), &stuck);
    }
    let mut total = 0;
    for (n, w) in &work {
        match &w.result {
            Some(Ok(a)) => total += a,
            Some(Err(e)) => {
                return Outcome::mismatch(
                    "every block as its CPU wrote it",
                    "unchanged",
                    e.as_str(),
                )
            }
            None => {
                return Outcome::mismatch(
                    "heap churn on every CPU",
                    "a result",
                    crate::format!("none from CPU {}", n).as_str(),
                )
            }
        }
    }
    out!(
        "# smp: {} CPUs made {} allocations at once, every byte checked\n",
        ready.len(),
        total
    );
    Outcome::Pass
}

/// Every CPU writes its seeded lines at once, each line in pieces; the
/// host checks that every line arrived whole and in its order (the
/// runner's verdict, contract `smp::check_console`). Here: every CPU
/// finished its lines.
pub fn console(m: &mut Machine) -> Outcome {
    let ready = m.smp.ready();
    if ready.len() < 2 {
        return Outcome::skip("one CPU: no other to write at the same time");
    }
    let seed = m.cfg.seed;
    let mut work: Vec<(usize, ())> = ready.iter().map(|&n| (n, ())).collect();
    let r = smp::run_each(
        &mut work,
        &|n, _: &mut ()| {
            for k in 0..zvtest_contract::smp::CONSOLE_LINES {
                let line = zvtest_contract::smp::console_line(seed, n, k);
                // In pieces: a console shared mid-line would mix them.
                let (a, rest) = line.split_at(line.len() / 3);
                let (b, c) = rest.split_at(rest.len() / 2);
                for piece in [a, b, c, "\n"] {
                    out!("{}", piece);
                }
            }
        },
        10_000_000,
    );
    if let Err(stuck) = r {
        return stuck_cpus("every CPU through its lines", ready.len(), &stuck);
    }
    out!(
        "{}\n",
        zvtest_contract::smp::console_summary(seed, &ready).as_str()
    );
    Outcome::Pass
}
