//! The virtio-ccw models a scenario can boot with on this host: which this
//! QEMU offers, which it can start here, and why the others are left out.

use super::{boot, elf, scenario};
use qemu_runner::{Run, Scenario, STDERR_PREFIX};
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

/// Where `cargo xtask test` lets the tests of one suite run share what
/// they probed (see [`shared_probe`]).
pub const PROBE_DIR_ENV: &str = "ZVTEST_PROBE_DIR";

/// `probe()`'s lines, computed once per suite run: nextest runs every test
/// in a process of its own, and each would otherwise boot the same probes
/// again (a dozen QEMUs a test). Where `cargo xtask test` names a
/// directory, the first process keeps the lines in `<dir>/<name>` while
/// the others wait on its lock, then read them; elsewhere (cargo test,
/// nextest by hand) every process probes for itself.
pub fn shared_probe(name: &str, probe: impl FnOnce() -> Vec<String>) -> Vec<String> {
    let Some(dir) = std::env::var_os(PROBE_DIR_ENV).map(PathBuf::from) else {
        return probe();
    };
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let lock = fs::File::create(dir.join(format!("{name}.lock")))
        .unwrap_or_else(|e| panic!("cannot create {name}.lock in {}: {e}", dir.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("cannot lock {name}.lock: {e}"));
    let file = dir.join(name);
    if let Ok(text) = fs::read_to_string(&file) {
        return text.lines().map(String::from).collect();
    }
    let lines = probe();
    // Written whole, then renamed: a reader never sees half of it.
    let part = dir.join(format!("{name}.part"));
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(&part, text)
        .and_then(|()| fs::rename(&part, &file))
        .unwrap_or_else(|e| panic!("cannot keep {}: {e}", file.display()));
    lines
}

/// One line of a shared probe: fields apart by tabs (none inside them).
pub fn probe_line(fields: &[&str]) -> String {
    fields
        .iter()
        .map(|f| f.replace(['\t', '\n', '\r'], " "))
        .collect::<Vec<_>>()
        .join("\t")
}

/// The candidate `model` (a name from a probe line) as the table has it.
pub fn candidate(model: &str) -> (&'static str, &'static str) {
    CANDIDATES
        .iter()
        .find(|c| c.0 == model)
        .map(|c| (c.0, c.1))
        .unwrap_or_else(|| panic!("{model} is not a candidate model"))
}

/// What a candidate model needs from the host besides QEMU.
#[derive(Clone, Copy)]
pub enum Needs {
    /// Nothing: its backend (if any) is one [`qemu_runner::scenario::model_setup`]
    /// gives it without privileges or files. Left out only if this QEMU
    /// does not offer it (e.g. its loadable module is not installed).
    Nothing,
    /// A host resource QEMU opens itself when it creates the device; a
    /// short boot with only this device decides. The text says what.
    HostResource(&'static str),
    /// Cannot run here at all; the text says why.
    Never(&'static str),
}

/// Every virtio-ccw model of QEMU 7.2 (10.0 adds virtio-mem-ccw, which
/// needs a memory backend and a memory device slot: not a candidate here),
/// with the name the firmware gives it.
pub const CANDIDATES: &[(&str, &str, Needs)] = &[
    ("virtio-blk-ccw", "blk", Needs::Nothing), // null-co block node
    ("virtio-net-ccw", "net", Needs::Nothing), // user-mode (slirp) netdev, restrict=on
    ("virtio-scsi-ccw", "scsi", Needs::Nothing),
    ("virtio-serial-ccw", "console", Needs::Nothing),
    ("virtio-rng-ccw", "rng", Needs::Nothing),
    ("virtio-balloon-ccw", "balloon", Needs::Nothing),
    ("virtio-9p-ccw", "9p", Needs::Nothing), // the synth fsdev: no host directory
    ("virtio-gpu-ccw", "gpu", Needs::Nothing), // a loadable module in Debian's QEMU
    ("virtio-keyboard-ccw", "input", Needs::Nothing),
    ("virtio-mouse-ccw", "input", Needs::Nothing),
    ("virtio-tablet-ccw", "input", Needs::Nothing),
    ("virtio-crypto-ccw", "crypto", Needs::Nothing), // cryptodev-backend-builtin
    (
        "vhost-vsock-ccw",
        "vsock",
        Needs::HostResource("/dev/vhost-vsock (kernel module vhost_vsock), openable by this user"),
    ),
    (
        "vhost-scsi-ccw",
        "scsi",
        Needs::HostResource(
            "/dev/vhost-scsi and a LIO vhost target configured for its wwpn (root to set up)",
        ),
    ),
    (
        "vhost-user-fs-ccw",
        "fs",
        Needs::Never(
            "needs a vhost-user daemon (virtiofsd; QEMU 7.2's runs as root) on a chardev \
             socket and guest RAM on a shared memory backend; neither is set up by the tests",
        ),
    ),
];

/// Models every s390x QEMU has built in (hw/s390x, no modules, no host
/// resources): leaving one of these out means QEMU is broken, not the host.
pub const BUILT_IN: &[&str] = &[
    "virtio-blk-ccw",
    "virtio-net-ccw",
    "virtio-scsi-ccw",
    "virtio-serial-ccw",
    "virtio-rng-ccw",
    "virtio-balloon-ccw",
];

/// The first line QEMU printed on stderr, from a console log.
pub fn first_stderr_line(o: &Run) -> String {
    o.console()
        .lines()
        .find_map(|l| l.strip_prefix(STDERR_PREFIX))
        .unwrap_or("(nothing on stderr)")
        .to_string()
}

/// Does this QEMU offer `model`? (The runner's probe, with the scenario
/// defaults' QEMU and data directory.)
pub fn offered(model: &str) -> Result<(), String> {
    let s = Scenario::new("probe");
    qemu_runner::defaults::offered(&s.qemu, s.data_dir.as_deref(), model)
}

/// `Scenario::virtio_ccw` plus device properties (`packed=on`, ...).
pub fn with_device(
    s: Scenario,
    model: &str,
    bus: &str,
    name: &str,
    props: &[(&str, &str)],
) -> Scenario {
    let mut s = s.virtio_ccw(model, bus, name);
    let d = s
        .ccw_devices
        .last_mut()
        .filter(|d| d.bus.to_string() == bus)
        .unwrap_or_else(|| panic!("{model} at {bus} was not added"));
    d.properties
        .extend(props.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    s
}

/// A short boot with only `model` at fe.0.0001 and `props`: None if QEMU
/// started it, else what QEMU said.
pub fn refused_by_qemu(
    tag: &str,
    model: &'static str,
    name: &str,
    props: &[(&str, &str)],
) -> Option<String> {
    // The process id: tests in other processes may probe the same model.
    let s = with_device(
        scenario(&format!("probe-{tag}-{model}-{}", std::process::id())),
        model,
        "fe.0.0001",
        name,
        props,
    )
    .append("only=boot.vectors")
    .timeout(Duration::from_secs(15));
    let o = boot(&s, &elf());
    o.tap.version.is_none().then(|| first_stderr_line(&o))
}

/// A model QEMU can start here, and the name the firmware gives it.
pub type Usable = (&'static str, &'static str);
/// A model left out, and why.
pub type LeftOut = (&'static str, String);

/// The candidates this QEMU offers and can start here, and the others with
/// the reason; host resources are probed by booting, side by side.
pub fn usable_models() -> (Vec<Usable>, Vec<LeftOut>) {
    let lines = shared_probe("models", || {
        let (usable, left_out) = probe_models();
        let usable = usable.iter().map(|(m, _)| probe_line(&["usable", m]));
        let left = left_out
            .iter()
            .map(|(m, why)| probe_line(&["left-out", m, why]));
        usable.chain(left).collect()
    });
    let (mut usable, mut left_out) = (Vec::new(), Vec::new());
    for l in &lines {
        match l.split('\t').collect::<Vec<_>>()[..] {
            ["usable", m] => usable.push(candidate(m)),
            ["left-out", m, why] => left_out.push((candidate(m).0, why.to_string())),
            _ => panic!("a models probe line {l:?}"),
        }
    }
    (usable, left_out)
}

fn probe_models() -> (Vec<Usable>, Vec<LeftOut>) {
    let mut left_out = Vec::new();
    let mut offered_models = Vec::new();
    for &(model, name, needs) in CANDIDATES {
        match (needs, offered(model)) {
            (Needs::Never(why), _) => left_out.push((model, why.to_string())),
            (_, Err(why)) => left_out.push((model, why)),
            (needs, Ok(())) => offered_models.push((model, name, needs)),
        }
    }
    let refusals: Vec<Option<String>> = std::thread::scope(|sc| {
        let handles: Vec<_> = offered_models
            .iter()
            .map(|&(model, name, needs)| {
                sc.spawn(move || match needs {
                    Needs::HostResource(what) => refused_by_qemu("host", model, name, &[])
                        .map(|said| format!("needs {what}; QEMU said: {said}")),
                    _ => None,
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("probe thread"))
            .collect()
    });
    let mut usable = Vec::new();
    for ((model, name, _), refusal) in offered_models.into_iter().zip(refusals) {
        match refusal {
            Some(why) => left_out.push((model, why)),
            None => usable.push((model, name)),
        }
    }
    (usable, left_out)
}
