//! Every check, by group. A check's name is `group.what`; groups are
//! selected with `only=`/`skip=` on the command line.

mod boot;
mod css;
mod heap;
mod inject;
mod legacy;
mod timer;
mod virtio;

use crate::check::Check;
use crate::runner::Machine;

pub static ALL: &[Check<Machine>] = &[
    Check::new("boot.vectors", boot::vectors),
    Check::new("boot.svc", boot::svc_round_trip),
    Check::new("pgm.operation", boot::operation_exception),
    Check::new("pgm.privileged", boot::privileged_operation),
    Check::new("pgm.specification", boot::specification_exception),
    Check::new("pgm.addressing", boot::addressing_exception),
    Check::new("sclp.memory", boot::sclp_memory),
    Check::new("css.characteristics", css::characteristics),
    Check::new("css.sense-id", css::sense_id),
    Check::new("css.inventory", css::inventory),
    Check::new("css.chaining", css::chaining),
    Check::new("css.command-reject", css::command_reject),
    Check::new("css.clear", css::clear),
    Check::new("css.halt", css::halt),
    Check::new("css.hotplug", css::hotplug).timeout(30_000),
    Check::new("legacy.page", legacy::page),
    Check::new("legacy.hypercalls", legacy::hypercalls),
    Check::new("virtio.revisions", virtio::revisions).timeout(20_000),
    Check::new("heap.stress", heap::stress),
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
];
