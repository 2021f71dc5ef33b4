//! Every check, by group. A check's name is `group.what`; groups are
//! selected with `only=`/`skip=` on the command line.
//!
//! A device's suite (rng.rs, balloon.rs) holds the expectations and drives
//! the device through its driver in `virtio::devices`; virtio.rs checks
//! what every virtio-ccw device shares (the transport).

mod balloon;
mod balloon_pages;
mod blk;
mod boot;
mod crypto;
mod css;
mod fs;
mod gpu;
mod heap;
mod hostile;
mod hypercalls;
mod inject;
mod input;
mod legacy;
mod mem;
mod net;
mod p9;
mod rng;
mod scsi;
mod serial;
mod setups;
mod sigp;
mod smp;
mod smp_stress;
mod timer;
mod virtio;

use crate::check::Check;
use crate::checks;
use crate::hypercalls::Case;
use crate::machine::Machine;

const CHECKS: &[Check<Machine>] = &[
    Check::new("boot.vectors", boot::vectors),
    Check::new("boot.svc", boot::svc_round_trip),
    Check::new("pgm.operation", boot::operation_exception),
    Check::new("pgm.privileged", boot::privileged_operation),
    Check::new("pgm.specification", boot::specification_exception),
    Check::new("pgm.addressing", boot::addressing_exception),
    Check::new("sclp.memory", boot::sclp_memory),
    Check::new("sclp.cpus", boot::sclp_cpus),
    Check::new("smp.cpus", smp::cpus),
    Check::new("smp.start", smp::start).timeout(20_000),
    Check::new("smp.hotplug", smp::hotplug).timeout(60_000),
    Check::new("smp.heap", smp::heap).timeout(30_000),
    Check::new("smp.console", smp::console).timeout(30_000),
    Check::new("sigp.sense", sigp::sense).timeout(20_000),
    Check::new("sigp.external-call", sigp::external_call).timeout(20_000),
    Check::new("sigp.emergency-signal", sigp::emergency_signal).timeout(20_000),
    Check::new("sigp.conditional-emergency", sigp::conditional_emergency).timeout(20_000),
    Check::new("sigp.start", sigp::start).timeout(20_000),
    Check::new("sigp.stop", sigp::stop_order).timeout(20_000),
    Check::new("sigp.stop-store-status", sigp::stop_store_status).timeout(20_000),
    Check::new("sigp.restart", sigp::restart).timeout(20_000),
    Check::new("sigp.restart-in-wait", sigp::restart_in_wait).timeout(20_000),
    Check::new("sigp.set-prefix", sigp::set_prefix).timeout(20_000),
    Check::new("sigp.store-status", sigp::store_status).timeout(20_000),
    Check::new(
        "sigp.store-additional-status",
        sigp::store_additional_status,
    )
    .timeout(20_000),
    Check::new("sigp.set-architecture", sigp::set_architecture).timeout(20_000),
    Check::new("sigp.sense-running", sigp::sense_running).timeout(20_000),
    Check::new("sigp.cpu-reset", sigp::cpu_reset).timeout(20_000),
    Check::new("sigp.no-cpu", sigp::no_cpu).timeout(20_000),
    Check::new("sigp.invalid-order", sigp::invalid_order).timeout(20_000),
    Check::new("css.characteristics", css::characteristics),
    Check::new("css.sense-id", css::sense_id),
    Check::new("css.inventory", css::inventory),
    Check::new("css.chaining", css::chaining),
    Check::new("css.command-reject", css::command_reject),
    Check::new("css.clear", css::clear),
    Check::new("css.halt", css::halt),
    Check::new("css.hotplug", css::hotplug).timeout(30_000),
    Check::new("legacy.page", legacy::page),
    Check::new("virtio.revisions", virtio::revisions).timeout(20_000),
    Check::new("virtio.rng", rng::requests)
        .timeout(60_000)
        .stressed(),
    Check::new("virtio.config", balloon::config),
    Check::new("virtio.config-change", balloon::config_change).timeout(30_000),
    Check::new("balloon.inflate", balloon_pages::inflate).timeout(30_000),
    Check::new("balloon.stats", balloon_pages::stats).timeout(30_000),
    Check::new("balloon.report", balloon_pages::report).timeout(20_000),
    Check::new("balloon.hint", balloon_pages::hint),
    Check::new("mem.config", mem::config),
    Check::new("mem.plug", mem::plug).timeout(30_000).stressed(),
    Check::new("mem.resize", mem::resize).timeout(30_000),
    Check::new("blk.config", blk::config),
    Check::new("blk.requests", blk::requests).timeout(20_000),
    Check::new("blk.stress", blk::stress)
        .timeout(120_000)
        .stressed(),
    Check::new("scsi.commands", scsi::commands).timeout(30_000),
    Check::new("scsi.errors", scsi::errors).timeout(20_000),
    Check::new("scsi.control", scsi::control).timeout(20_000),
    Check::new("scsi.stress", scsi::stress)
        .timeout(120_000)
        .stressed(),
    Check::new("scsi.hotplug", scsi::hotplug).timeout(60_000),
    Check::new("net.config", net::config).timeout(20_000),
    Check::new("net.control", net::control).timeout(20_000),
    Check::new("net.link", net::link).timeout(30_000),
    Check::new("net.echo", net::echo)
        .timeout(120_000)
        .stressed(),
    Check::new("net.filter", net::filter).timeout(20_000),
    Check::new("net.user", net::user).timeout(20_000),
    Check::new("smp.stress-blk", smp_stress::blk)
        .timeout(120_000)
        .stressed(),
    Check::new("smp.stress-net", smp_stress::net)
        .timeout(120_000)
        .stressed(),
    Check::new("serial.config", serial::config),
    Check::new("serial.control", serial::control).timeout(20_000),
    Check::new("serial.stress", serial::stress)
        .timeout(120_000)
        .stressed(),
    Check::new("serial.emergency", serial::emergency),
    Check::new("serial.close", serial::close).timeout(20_000),
    Check::new("serial.hotplug", serial::hotplug).timeout(30_000),
    Check::new("crypto.config", crypto::config),
    Check::new("crypto.kat", crypto::kat).timeout(20_000),
    Check::new("crypto.errors", crypto::errors).timeout(20_000),
    Check::new("crypto.stress", crypto::stress)
        .timeout(30_000)
        .stressed(),
    Check::new("p9.config", p9::config),
    Check::new("p9.read", p9::read).timeout(30_000),
    Check::new("p9.write", p9::write).timeout(30_000),
    Check::new("p9.stress", p9::stress)
        .timeout(120_000)
        .stressed(),
    Check::new("input.config", input::config).timeout(20_000),
    Check::new("input.events", input::events)
        .timeout(60_000)
        .stressed(),
    Check::new("input.status", input::status).timeout(20_000),
    Check::new("fs.config", fs::config).timeout(20_000),
    Check::new("fs.read", fs::read).timeout(30_000),
    Check::new("fs.write", fs::write).timeout(30_000),
    Check::new("fs.stress", fs::stress)
        .timeout(60_000)
        .stressed(),
    Check::new("hostile.echo", hostile::echo).timeout(60_000),
    Check::new("gpu.display", gpu::display).timeout(20_000),
    Check::new("gpu.scanout", gpu::scanout).timeout(40_000),
    Check::new("gpu.cursor", gpu::cursor).timeout(20_000),
    Check::new("gpu.errors", gpu::errors).timeout(20_000),
    Check::new("gpu.stress", gpu::stress)
        .timeout(60_000)
        .stressed(),
    Check::new("hcall.abi.registers", hypercalls::abi_registers),
    Check::new(
        Case::Diag500PrintkInside.check_name(),
        hypercalls::printk_inside,
    ),
    Check::new(
        Case::Diag500PrintkOutside.check_name(),
        hypercalls::printk_outside,
    ),
    Check::new(Case::Diag500Reset.check_name(), hypercalls::legacy_reset),
    Check::new(
        Case::Diag500SetStatus.check_name(),
        hypercalls::legacy_set_status,
    ),
    Check::new(
        Case::Diag500NotifyConfigured.check_name(),
        hypercalls::notify_configured,
    ),
    Check::new(
        Case::Diag500NotifyNotSetUp.check_name(),
        hypercalls::notify_not_set_up,
    ),
    Check::new(
        Case::Diag500NotifyPastQueues.check_name(),
        hypercalls::notify_past_queues,
    ),
    Check::new(
        Case::Diag500NotifyQueueLimit.check_name(),
        hypercalls::notify_queue_limit,
    ),
    Check::new(
        Case::Diag500NotifyBadSubchannel.check_name(),
        hypercalls::notify_bad_subchannel,
    ),
    Check::new(
        Case::Diag500StorageLimit.check_name(),
        hypercalls::storage_limit,
    ),
    Check::new(Case::Diag500Function5.check_name(), hypercalls::function_5),
    Check::new(
        Case::Diag500FunctionFfff.check_name(),
        hypercalls::function_ffff,
    ),
    Check::new(
        Case::Diag500Function2Pow63.check_name(),
        hypercalls::function_2pow63,
    ),
    Check::new(
        Case::Diag500ProblemState.check_name(),
        hypercalls::problem_state,
    ),
    Check::new(Case::Diag10.check_name(), hypercalls::diag10),
    Check::new(Case::Diag44.check_name(), hypercalls::diag44),
    Check::new(Case::Diag9cSelf.check_name(), hypercalls::diag9c_self),
    Check::new(Case::Diag9cOther.check_name(), hypercalls::diag9c_other),
    Check::new(Case::Diag9cMissing.check_name(), hypercalls::diag9c_missing),
    Check::new(Case::Diag258.check_name(), hypercalls::diag258),
    Check::new(Case::Diag288Start.check_name(), hypercalls::diag288_start),
    Check::new(Case::Diag288Cancel.check_name(), hypercalls::diag288_cancel),
    Check::new(
        Case::Diag288CancelIdle.check_name(),
        hypercalls::diag288_cancel_idle,
    ),
    Check::new(
        Case::Diag288ShortTimeout.check_name(),
        hypercalls::diag288_short_timeout,
    ),
    Check::new(
        Case::Diag288OddRegister.check_name(),
        hypercalls::diag288_odd,
    ),
    Check::new(checks::DIAG288_EXPIRY, hypercalls::diag288_expiry).timeout(40_000),
    Check::new(Case::Diag308Store.check_name(), hypercalls::diag308_store),
    Check::new(
        Case::Diag308SetInvalid.check_name(),
        hypercalls::diag308_set_invalid,
    ),
    Check::new(
        Case::Diag308BadSubcode.check_name(),
        hypercalls::diag308_bad_subcode,
    ),
    Check::new(
        Case::Diag308OddRegister.check_name(),
        hypercalls::diag308_odd,
    ),
    Check::new(Case::Diag318.check_name(), hypercalls::diag318),
    Check::new(Case::Diag320Query.check_name(), hypercalls::diag320_query),
    Check::new(Case::Diag508Query.check_name(), hypercalls::diag508_query),
    Check::new(Case::Diag501.check_name(), hypercalls::diag501),
    Check::new("heap.stress", heap::stress).stressed(),
    Check::new("heap.exhaustion", heap::exhaustion),
    Check::new("timer.cpu-timer", timer::cpu_timer),
    Check::new("timer.clock-comparator", timer::clock_comparator),
    Check::new("inject.fail", inject::fail).injected(crate::cmdline::Inject::Fail),
    Check::new("inject.hang", inject::hang)
        .injected(crate::cmdline::Inject::Hang)
        .timeout(300),
    Check::new("inject.pgm", inject::pgm).injected(crate::cmdline::Inject::Pgm),
    Check::new("inject.forever", inject::forever).injected(crate::cmdline::Inject::Forever),
    Check::new("inject.oom", inject::oom).injected(crate::cmdline::Inject::Oom),
    Check::new("inject.ext", inject::ext).injected(crate::cmdline::Inject::Ext),
    Check::new("inject.io", inject::io).injected(crate::cmdline::Inject::Io),
    Check::new("inject.mcck", inject::mcck)
        .injected(crate::cmdline::Inject::Mcck)
        .timeout(30_000),
];

pub static ALL: &[Check<Machine>] = CHECKS;

/// The regular checks are exactly crate::checks::NAMES, in order.
const _: () = {
    let names = crate::checks::NAMES;
    let (mut i, mut n) = (0, 0);
    while i < CHECKS.len() {
        if CHECKS[i].inject.is_none() {
            assert!(
                n < names.len() && crate::checks::same(CHECKS[i].name, names[n]),
                "suites::ALL and checks::NAMES differ"
            );
            n += 1;
        }
        i += 1;
    }
    assert!(
        n == names.len(),
        "checks::NAMES lists a check suites::ALL lacks"
    );
};
