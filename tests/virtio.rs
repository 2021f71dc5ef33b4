//! virtio-ccw: every runnable device model brought to DRIVER_OK with the
//! packed ring on and off (`virtio.revisions`), the revisions each one
//! accepts under `max_revision` 0, 1 and 2, real requests on virtio-rng in
//! every configuration (`virtio.rng`), a device that negotiation must
//! fail on: one whose FEATURES_OK QEMU refuses, and the balloon's
//! configuration-change notification when the host resizes it over QMP
//! (`virtio.config-change`).

use crate::common;

use common::models::{probe_line, refused_by_qemu, shared_probe, usable_models, with_device};
use common::{
    assert_pass, boot, check, check_ran, check_summary, elf, fails_with, failure_text, scenario,
};
use qemu_runner::Run;
use std::io::Write;
use std::sync::OnceLock;
use zvtest_contract::checks::markers::CONFIG_CHANGE_READY;

/// What a candidate model needs from the host besides QEMU (as in
/// tests/discovery.rs, whose probe this repeats: it is local to that file).
const MODERN_ONLY: &[&str] = &["gpu", "input", "crypto", "vsock", "fs"];

fn modern_only(name: &str) -> bool {
    MODERN_ONLY.contains(&name)
}

#[derive(Clone, Copy)]
struct Model {
    model: &'static str,
    name: &'static str,
    /// QEMU creates it with `max_revision=0`.
    takes_revision_0: bool,
}

struct Probe {
    usable: Vec<Model>,
    /// Models left out altogether, and why.
    left_out: Vec<(&'static str, String)>,
    /// Usable models QEMU will not create with `max_revision=0`, and what
    /// it said.
    no_revision_0: Vec<(&'static str, String)>,
}

/// The first line QEMU printed on stderr.
/// What QEMU says to each model with `max_revision=0`: None if it started.
fn refusals_of_revision_0(runnable: &[(&'static str, &'static str)]) -> Vec<Option<String>> {
    std::thread::scope(|sc| {
        let handles: Vec<_> = runnable
            .iter()
            .map(|&(model, name)| {
                sc.spawn(move || refused_by_qemu("rev0", model, name, &[("max_revision", "0")]))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("probe thread"))
            .collect()
    })
}

/// Decides once per test binary which models to boot, and which of them
/// QEMU creates with `max_revision=0`; prints what was left out and why.
fn probe() -> &'static Probe {
    static PROBE: OnceLock<Probe> = OnceLock::new();
    PROBE.get_or_init(|| {
        let (runnable, left_out) = usable_models();
        let lines = shared_probe("revision-0", || {
            let said = refusals_of_revision_0(&runnable);
            runnable
                .iter()
                .zip(said)
                .map(|(&(m, _), r)| match r {
                    None => probe_line(&["takes", m]),
                    Some(said) => probe_line(&["refuses", m, &said]),
                })
                .collect()
        });
        let no_rev0: Vec<Option<String>> = runnable
            .iter()
            .map(|&(model, _)| {
                lines
                    .iter()
                    .find_map(|l| match l.split('\t').collect::<Vec<_>>()[..] {
                        ["takes", m] if m == model => Some(None),
                        ["refuses", m, said] if m == model => Some(Some(said.to_string())),
                        _ => None,
                    })
                    .unwrap_or_else(|| panic!("no revision-0 probe line for {model}"))
            })
            .collect();
        let mut p = Probe {
            usable: Vec::new(),
            left_out,
            no_revision_0: Vec::new(),
        };
        for (&(model, name), refusal) in runnable.iter().zip(no_rev0) {
            p.usable.push(Model {
                model,
                name,
                takes_revision_0: refusal.is_none(),
            });
            if let Some(said) = refusal {
                p.no_revision_0.push((model, said));
            }
        }
        // Past the harness's capture: it swallows print! of passing tests.
        let mut err = std::io::stderr().lock();
        for (model, why) in &p.left_out {
            let _ = writeln!(err, "virtio: left out {model}: {why}");
        }
        for (model, said) in &p.no_revision_0 {
            let _ = writeln!(
                err,
                "virtio: no max_revision=0 scenario for {model}: QEMU said: {said}"
            );
        }
        p
    })
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

fn bus(i: usize) -> String {
    format!("fe.0.{:04x}", i + 1)
}

/// The firmware's `# virtio <bus> <name>: ...` line for a device.
fn virtio_line<'a>(o: &'a Run, bus: &str, name: &str) -> Option<&'a str> {
    let prefix = format!("virtio {bus} {name}: ");
    o.tap
        .diagnostics
        .iter()
        .find_map(|d| d.strip_prefix(prefix.as_str()))
}

const CONFIGS: [&str; 4] = [
    "split/classic",
    "split/adapter",
    "packed/classic",
    "packed/adapter",
];

/// A `# virtio` line reduced to one entry per revision, in its order:
/// `rev 2: split/classic split/adapter` (the configurations brought to
/// DRIVER_OK, `... failed` for those that were not), `rev 2 refused (got
/// 1)`, `rev 0: legacy refused`, or `rev N failed: ...` as printed; and
/// the queue counts of every configuration.
fn revisions(line: &str) -> (Vec<String>, Vec<u32>) {
    let mut out = Vec::new();
    let mut queues = Vec::new();
    for seg in line.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let Some(rest) = seg.strip_prefix("rev ") else {
            out.push(format!("unexpected {seg:?}"));
            continue;
        };
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        let (rev, body) = rest.split_at(digits);
        let Some(body) = body.strip_prefix(':') else {
            out.push(seg.to_string()); // refused (got N) / failed: ...
            continue;
        };
        if body.contains("legacy refused as expected") {
            out.push(format!("rev {rev}: legacy refused"));
            continue;
        }
        let tokens: Vec<&str> = body.split_whitespace().collect();
        let mut got = Vec::new();
        for (i, t) in tokens.iter().enumerate() {
            if !CONFIGS.contains(t) {
                continue;
            }
            let next = tokens.get(i + 1).copied().unwrap_or("");
            match next.strip_suffix('q').and_then(|n| n.parse::<u32>().ok()) {
                Some(n) => {
                    queues.push(n);
                    got.push(t.to_string());
                }
                None => got.push(format!("{t} failed")),
            }
        }
        out.push(format!("rev {rev}: {}", got.join(" ")));
    }
    (out, queues)
}

/// What [`revisions`] must give for a device limited to `max_rev` (QEMU's
/// default is 2) with the packed ring offered or not.
fn expected_revisions(max_rev: u8, packed: bool, modern_only: bool) -> Vec<String> {
    [2u8, 1, 0]
        .iter()
        .map(|&want| {
            if want > max_rev {
                format!("rev {want} refused (got {max_rev})")
            } else if want == 0 && modern_only {
                "rev 0: legacy refused".to_string()
            } else {
                let n = if packed && want >= 1 { 4 } else { 2 };
                format!("rev {want}: {}", CONFIGS[..n].join(" "))
            }
        })
        .collect()
}

/// The queues each model has with its default properties and one CPU
/// (QEMU's sources, 7.2 to 10.2): blk one request queue; net receive,
/// transmit and control; scsi control, event and one request queue;
/// console (virtio-serial, 31 ports) two per port and two for control;
/// balloon inflate, deflate and statistics; gpu control and cursor; input
/// event and status; crypto one data queue and control.
fn queues_of(model: &str) -> u32 {
    match model {
        "virtio-blk-ccw" | "virtio-rng-ccw" | "virtio-9p-ccw" => 1,
        "virtio-net-ccw" | "virtio-scsi-ccw" | "virtio-balloon-ccw" => 3,
        "virtio-serial-ccw" => 2 + 2 * 31,
        "virtio-gpu-ccw"
        | "virtio-keyboard-ccw"
        | "virtio-mouse-ccw"
        | "virtio-tablet-ccw"
        | "virtio-crypto-ccw" => 2,
        other => panic!("no queue count recorded for {other}"),
    }
}

/// Every device of `devices` (model and max_revision, at bus ids from
/// [`bus`]`(first)` on) got its `# virtio` line with exactly the expected
/// revisions and ring formats, and the model's number of queues in every
/// configuration.
#[track_caller]
fn check_virtio_lines(o: &Run, devices: &[(Model, u8)], packed: bool, first: usize) {
    for (i, (m, max_rev)) in devices.iter().enumerate() {
        let bus = bus(first + i);
        let line = virtio_line(o, &bus, m.name);
        check(
            o,
            line.is_some(),
            &format!("a `# virtio {bus} {}:` line for {}", m.name, m.model),
        );
        let (got, queues) = revisions(line.unwrap_or_default());
        let want = expected_revisions(*max_rev, packed, modern_only(m.name));
        check(
            o,
            got == want,
            &format!(
                "{} ({bus}, max_revision={max_rev}, packed={}): {want:?}, got {got:?}",
                m.model,
                on_off(packed)
            ),
        );
        let want = queues_of(m.model);
        check(
            o,
            !queues.is_empty() && queues.iter().all(|&q| q == want),
            &format!(
                "{} ({bus}): {want} queues in every configuration, got {queues:?}",
                m.model
            ),
        );
    }
}

/// `only=virtio` plus `css.inventory`, so the `devices=` list the builder
/// adds is checked too: no device can go missing without a failure.
const ONLY: &str = "only=virtio,css.inventory";

/// Boots every usable model, each with `packed` and `max_revision` (None:
/// QEMU's default, 2), and checks each device's `# virtio` line.
fn boot_models(tag: &str, models: &[Model], packed: bool, max_rev: Option<u8>) -> Run {
    let mut s = scenario(tag).append(ONLY);
    let rev = max_rev.map(|r| r.to_string());
    let mut devices = Vec::new();
    for (i, m) in models.iter().enumerate() {
        let mut props = vec![("packed", on_off(packed))];
        if let Some(r) = &rev {
            props.push(("max_revision", r.as_str()));
        }
        s = with_device(s, m.model, &bus(i), m.name, &props);
        devices.push((*m, max_rev.unwrap_or(2)));
    }
    let o = boot(&s, &elf());
    assert_pass(&o);
    check_ran(&o, "css.inventory");
    check_ran(&o, "virtio.revisions");
    check_virtio_lines(&o, &devices, packed, 0);
    o
}

#[test]
fn every_model_packed_on() {
    boot_models("virtio-models-packed-on", &probe().usable, true, None);
}

#[test]
fn every_model_packed_off() {
    boot_models("virtio-models-packed-off", &probe().usable, false, None);
}

/// QEMU refuses `max_revision=0` exactly for the modern-only models, which
/// the max_revision=0 scenarios therefore leave out.
#[test]
fn max_revision_0_refused_exactly_for_modern_only_models() {
    let p = probe();
    for m in &p.usable {
        let said = p.no_revision_0.iter().find(|(model, _)| *model == m.model);
        if modern_only(m.name) {
            let said = said.map(|(_, s)| s.as_str()).unwrap_or("");
            assert!(
                said.contains("max_rev"),
                "{} is modern-only: QEMU should refuse max_revision=0 naming max_rev, said {said:?}",
                m.model
            );
        } else {
            assert!(
                m.takes_revision_0,
                "{} has a legacy interface but QEMU refused max_revision=0: {said:?}",
                m.model
            );
        }
    }
}

fn max_revision(r: u8) {
    let models: Vec<Model> = probe()
        .usable
        .iter()
        .copied()
        .filter(|m| r > 0 || m.takes_revision_0)
        .collect();
    assert!(!models.is_empty(), "no model takes max_revision={r}");
    for packed in [true, false] {
        let tag = format!("virtio-max-revision-{r}-packed-{}", on_off(packed));
        boot_models(&tag, &models, packed, Some(r));
    }
}

#[test]
fn max_revision_0() {
    max_revision(0);
}

#[test]
fn max_revision_1() {
    max_revision(1);
}

#[test]
fn max_revision_2() {
    max_revision(2);
}

/// Every [`rng_line`] of a run's report, in order.
fn rng_lines(o: &Run) -> Vec<(String, u64, u64, u64, u64)> {
    o.tap
        .diagnostics
        .iter()
        .filter_map(|d| rng_line(d))
        .collect()
}

/// One `# virtio rng <bus> <setup> <completion> <phase>: <QueueStats>`
/// line: (`<setup> <completion> <phase>`, requests, bytes, interrupts,
/// index wraps).
fn rng_line(d: &str) -> Option<(String, u64, u64, u64, u64)> {
    let (head, stats) = d.strip_prefix("virtio rng ")?.split_once(": ")?;
    let (_bus, label) = head.split_once(' ')?;
    let stat = |what: &str| -> Option<u64> {
        stats
            .split(", ")
            .find_map(|f| f.strip_suffix(what))
            .and_then(|n| n.trim().parse().ok())
    };
    Some((
        label.to_string(),
        stat(" requests")?,
        stat(" bytes")?,
        stat(" interrupts")?,
        stat(" index wraps")?,
    ))
}

/// The rng lines one device at `max_rev` (packed offered or not) must
/// print at stress=1: the stress rounds it takes (revision 2's at
/// revision 1 where it stops there), each `random`.
fn rng_setups(max_rev: u8, packed: bool) -> Vec<String> {
    let mut want = Vec::new();
    if max_rev >= 1 {
        for ring in ["split", "packed"] {
            if ring == "packed" && !packed {
                continue;
            }
            for idx in [" event-idx", ""] {
                for mode in ["classic interrupts", "classic polled", "adapter interrupts"] {
                    want.push(format!("rev {max_rev} {ring}{idx} {mode} random"));
                }
            }
        }
    }
    for mode in ["classic interrupts", "classic polled"] {
        want.push(format!("rev 0 split {mode} random"));
    }
    want
}

/// Requests per setup and phase at stress=1 (the suite's ROUND_REQUESTS).
const RNG_ROUND: u64 = 64;

/// virtio-rng alone with `packed` and each `max_revision`: `virtio.rng`
/// passes and reports exactly the setups that revision allows, each with
/// its requests, 8 to 256 bytes each, and interrupts where taken by them.
fn rng(packed: bool) {
    for max_rev in [0u8, 1, 2] {
        let tag = format!(
            "virtio-rng-max-revision-{max_rev}-packed-{}",
            on_off(packed)
        );
        let rev = max_rev.to_string();
        let s = with_device(
            scenario(&tag).append(ONLY),
            "virtio-rng-ccw",
            "fe.0.0001",
            "rng",
            &[("packed", on_off(packed)), ("max_revision", &rev)],
        );
        let o = boot(&s, &elf());
        assert_pass(&o);
        check_ran(&o, "virtio.rng");
        let rng = Model {
            model: "virtio-rng-ccw",
            name: "rng",
            takes_revision_0: true,
        };
        check_virtio_lines(&o, &[(rng, max_rev)], packed, 0);
        let lines: Vec<_> = rng_lines(&o);
        let got: Vec<&str> = lines.iter().map(|l| l.0.as_str()).collect();
        let want = rng_setups(max_rev, packed);
        check(&o, got == want, &format!("rng lines {want:?}, got {got:?}"));
        for (what, n, b, i, _) in &lines {
            let polled = what.contains("polled");
            check(
                &o,
                *n == RNG_ROUND && *b >= 8 * n && *b <= 256 * n && (polled || *i >= 1),
                &format!(
                    "{what}: {RNG_ROUND} requests, 8..=256 bytes each, an interrupt unless polled; \
                     got {n} requests, {b} bytes, {i} interrupts"
                ),
            );
        }
    }
}

/// At stress=10 with a packed ring offered: the first setup's wrap phase
/// passes the 16-bit ring index (66 048 requests, a wrap counted), and
/// the packed ring carries its requests in every packed setup.
#[test]
fn rng_packed_ring_and_index_wrap_at_stress_10() {
    let s = with_device(
        scenario("virtio-rng-wrap-packed")
            .append("only=virtio.rng")
            .append("stress=10"),
        "virtio-rng-ccw",
        "fe.0.0001",
        "rng",
        &[("packed", "on")],
    );
    let o = boot(&s, &elf());
    assert_pass(&o);
    check_ran(&o, "virtio.rng");
    let lines: Vec<_> = rng_lines(&o);
    let wrap: Vec<_> = lines.iter().filter(|l| l.0.ends_with(" wrap")).collect();
    check(
        &o,
        wrap.len() == 1
            && wrap[0].0 == "rev 2 split event-idx classic interrupts wrap"
            && wrap[0].1 == 65_536 + 512
            && wrap[0].4 >= 1,
        &format!(
            "one wrap phase in the first setup, 66048 requests, the index wrapped; got {wrap:?}"
        ),
    );
    let packed: Vec<_> = lines
        .iter()
        .filter(|l| l.0.contains(" packed") && l.0.ends_with(" random"))
        .collect();
    check(
        &o,
        packed.len() == 6
            && packed
                .iter()
                .all(|l| l.1 == 10 * RNG_ROUND && l.2 >= 8 * l.1),
        &format!(
            "6 packed setups with {} requests each; got {packed:?}",
            10 * RNG_ROUND
        ),
    );
    let mut got: Vec<String> = lines
        .iter()
        .filter(|l| l.0.ends_with(" random"))
        .map(|l| l.0.clone())
        .collect();
    got.sort();
    let mut want = rng_setups(2, true);
    want.sort();
    check(
        &o,
        got == want,
        &format!("rng setups {want:?}, got {got:?}"),
    );
}

#[test]
fn rng_packed_on_every_max_revision() {
    rng(true);
}

#[test]
fn rng_packed_off_every_max_revision() {
    rng(false);
}

/// A device offering VIRTIO_F_IOMMU_PLATFORM (`iommu_platform=on`), which the
/// firmware does not accept: QEMU's virtio_validate_features() then fails
/// FEATURES_OK (hw/virtio/virtio.c), and the status write is rejected at
/// revisions 1 and 2. The device sits at fe.0.0001, a healthy rng at
/// fe.0.0002; returns the outcome and the device's revision summary.
fn features_ok_refused(tag: &str, m: Model) -> (Run, Vec<String>) {
    let s = with_device(
        scenario(tag).append(ONLY),
        m.model,
        "fe.0.0001",
        m.name,
        &[("iommu_platform", "on")],
    );
    let s = with_device(s, "virtio-rng-ccw", "fe.0.0002", "rng", &[]);
    let o = boot(&s, &elf());
    check(&o, !o.passed(), "FAIL");
    check(
        &o,
        o.exit.code().is_some_and(|c| c != 0),
        "QEMU to exit by itself with a non-zero status",
    );
    let failed: Vec<&str> = o.tap.failures().map(|r| r.name.as_str()).collect();
    check(
        &o,
        failed == ["virtio.revisions"],
        &format!("virtio.revisions to be the only failure, not {failed:?}"),
    );
    // The other checks are still reported.
    for ok in ["css.inventory", "virtio.rng"] {
        check_ran(&o, ok);
    }
    check(
        &o,
        o.tap.result("virtio.config").is_some(),
        "virtio.config reported",
    );
    check_summary(&o);
    let line = virtio_line(&o, "fe.0.0001", m.name).unwrap_or_default();
    check(
        &o,
        line.contains("WRITE_STATUS rejected") || line.contains("FEATURES_OK"),
        &format!("the FEATURES_OK status write refused in {line:?}"),
    );
    let (got, _) = revisions(line);
    let all_failed = |s: &str| CONFIGS.iter().all(|c| s.contains(&format!("{c} failed")));
    check(
        &o,
        got.len() == 3 && got[..2].iter().all(|s| all_failed(s)),
        &format!("every configuration failing at revisions 2 and 1, got {got:?}"),
    );
    // The rng beside it is untouched.
    let rng = Model {
        model: "virtio-rng-ccw",
        name: "rng",
        takes_revision_0: true,
    };
    check_virtio_lines(&o, &[(rng, 2)], false, 1);
    (o, got)
}

/// Finding 4: QEMU 7.2 will not start a modern-only device limited to
/// revision 0, but a modern-only device offering IOMMU_PLATFORM to a
/// driver that does not accept it refuses every revision: 2 and 1 at
/// FEATURES_OK, 0 because it has no legacy interface.
#[test]
fn modern_only_device_refusing_features_ok_accepts_no_revision() {
    let m = probe()
        .usable
        .iter()
        .copied()
        .find(|m| modern_only(m.name))
        .expect("a usable modern-only model (gpu, input or crypto)");
    let (o, got) = features_ok_refused("virtio-features-ok-refused-modern", m);
    check(
        &o,
        got.get(2).is_some_and(|s| s == "rev 0: legacy refused"),
        &format!("revision 0 refused as legacy, got {got:?}"),
    );
    let message = o
        .tap
        .result("virtio.revisions")
        .and_then(|r| r.yaml.as_ref())
        .and_then(|y| y.get("message"))
        .unwrap_or("");
    check(
        &o,
        message.contains(&format!(
            "fe.0.0001 {}: no virtio revision accepted",
            m.name
        )),
        &format!("a message naming the device and `no virtio revision accepted`, not {message:?}"),
    );
    check(
        &o,
        !failure_text(&o).contains("fe.0.0002"),
        "the rng beside it not among the failures",
    );
}

/// The same refusal on a device with a legacy interface: revision 0 still
/// works, so the failure is FEATURES_OK at revisions 2 and 1, not "no
/// revision accepted".
#[test]
fn legacy_capable_device_refusing_features_ok_keeps_revision_0() {
    let blk = Model {
        model: "virtio-blk-ccw",
        name: "blk",
        takes_revision_0: true,
    };
    let (o, got) = features_ok_refused("virtio-features-ok-refused-legacy", blk);
    check(
        &o,
        got.get(2)
            .is_some_and(|s| s == "rev 0: split/classic split/adapter"),
        &format!("revision 0 brought to DRIVER_OK, got {got:?}"),
    );
    let text = failure_text(&o);
    check(
        &o,
        text.contains("fe.0.0001 blk: revision 2 ")
            && !text.contains("no virtio revision accepted"),
        "a failure at revision 2, not `no virtio revision accepted`",
    );
}

/// The balloon's page size (VIRTIO_BALLOON_PFN_SHIFT 12).
const BALLOON_PAGE: u64 = 4096;

/// `virtio.config-change`: the balloon at DRIVER_OK twice, first with
/// classic indicators for its queues, then with adapter (thin) interrupts,
/// the configuration indicator set with SET_CONF_IND both times. After each
/// ready line the runner sets the balloon target over QMP (half, then a
/// quarter of the guest's memory). QEMU's virtio_balloon_to_target()
/// (hw/virtio/virtio-balloon.c) sets num_pages = (ram_size - target) >> 12
/// and calls virtio_notify_config(), which virtio_ccw_notify()
/// (hw/s390x/virtio-ccw.c) turns into bit 0 of the SET_CONF_IND doubleword
/// and an I/O interrupt for the subchannel, with adapter interrupts on as
/// well (they carry queue notifications only). The firmware must see both
/// and read num_pages back, in each mode.
#[test]
fn balloon_config_change() {
    let s = scenario("virtio-balloon-config-change").virtio_ccw(
        "virtio-balloon-ccw",
        "fe.0.0001",
        "balloon",
    );
    let ram = u64::from(s.memory_mib) << 20;
    let targets = [ram / 2, ram / 4];
    let pages = targets.map(|t| (ram - t) / BALLOON_PAGE);
    assert_eq!(
        pages,
        [16384, 24576],
        "64 and 96 MiB of the default 128 MiB"
    );
    let mut s = s.append(format!(
        "only=virtio.config-change balloon-pages={},{}",
        pages[0], pages[1]
    ));
    for (line, target) in CONFIG_CHANGE_READY.iter().zip(targets) {
        s = s.qmp_on_line(
            line,
            &format!(r#"{{"execute": "balloon", "arguments": {{"value": {target}}}}}"#),
        );
    }
    let o = boot(&s, &elf());
    assert_pass(&o);
    check(
        &o,
        o.qmp_commands_done,
        "both balloon commands sent on their ready lines and accepted",
    );
    check_ran(&o, "virtio.config-change");
}

/// The same, but the host resizes only once: the adapter round waits in
/// vain and the check fails naming the mode.
#[test]
fn balloon_config_change_missing_fails() {
    let s = scenario("virtio-balloon-config-change-missing")
        .virtio_ccw("virtio-balloon-ccw", "fe.0.0001", "balloon")
        .append("only=virtio.config-change balloon-pages=16384,24576 host-wait=2500")
        .qmp_on_line(
            CONFIG_CHANGE_READY[0],
            r#"{"execute": "balloon", "arguments": {"value": 67108864}}"#,
        );
    let o = boot(&s, &elf());
    check(&o, !o.passed(), "FAIL");
    let message = o
        .tap
        .result("virtio.config-change")
        .and_then(|r| r.yaml.as_ref())
        .and_then(|y| y.get("message"))
        .unwrap_or("");
    check(
        &o,
        message.contains("adapter indicators for the queues"),
        &format!("a failure naming the adapter round, not {message:?}"),
    ); // After the wait it was given, not its own 10 s.
    check(
        &o,
        o.console().contains("after 2500 ms: "),
        "the round given up after host-wait=2500",
    );
}

/// A configuration the host does not have is held against it: the packed
/// ring claimed for a device without `packed=on`, a lower maximum revision
/// than QEMU's default.
#[test]
fn configured_revisions_and_rings_are_held_to() {
    for (tag, attrs, says) in [
        (
            "packed",
            ":packed",
            "the packed ring was not offered though the host configured packed=on",
        ),
        (
            "rev1",
            ":rev1",
            "asked for revision 2: expected 1 (max_revision=1), got 2",
        ),
    ] {
        let s = scenario(&format!("virtio-wrong-claim-{tag}"))
            .device("virtio-rng-ccw,devno=fe.0.0001")
            .append(format!(
                "only=virtio.revisions devices=fe.0.0001:rng{attrs}"
            ));
        let o = boot(&s, &elf());
        check(&o, !o.passed(), "FAIL");
        check(
            &o,
            failure_text(&o).contains(says),
            &format!("the failure to say {says:?}"),
        );
    }
}

/// The line parsers, on lines as the firmware prints them (no boot).
#[test]
fn parsers_read_the_firmware_lines() {
    let line = "rev 2 refused (got 1); rev 1: split/classic 3q 0x130000000 split/adapter 3q \
                0x130000000 packed/classic failed: VDEV_RESET failed on the channel \
                packed/adapter 3q 0x530000000; rev 0: split/classic 3q 0x30000000 \
                split/adapter 3q 0x30000000;";
    let (got, queues) = revisions(line);
    assert_eq!(
        got,
        [
            "rev 2 refused (got 1)",
            "rev 1: split/classic split/adapter packed/classic failed packed/adapter",
            "rev 0: split/classic split/adapter",
        ]
    );
    assert_eq!(queues, [3; 5]);
    let (got, _) = revisions(
        "rev 2: split/classic 2q 0x1 split/adapter 2q 0x1; rev 1: split/classic 2q 0x1 \
         split/adapter 2q 0x1; rev 0: legacy refused as expected (VDEV_RESET rejected by the device);",
    );
    assert_eq!(got, expected_revisions(2, false, true));
    assert_eq!(
        expected_revisions(0, true, false),
        [
            "rev 2 refused (got 0)",
            "rev 1 refused (got 0)",
            "rev 0: split/classic split/adapter",
        ]
    );
    assert_eq!(
        rng_line(
            "virtio rng fe.0.0004 rev 2 packed event-idx adapter interrupts wrap: 66048 requests, \
             8749327 bytes, 25657 req/s, 3319 KiB/s, 8256 kicks, 8214 interrupts, max depth 8, \
             1 index wraps, 2574 ms"
        ),
        Some((
            "rev 2 packed event-idx adapter interrupts wrap".to_string(),
            66048,
            8749327,
            8214,
            1
        ))
    );
    assert_eq!(
        rng_line("virtio fe.0.0001 rng: rev 2: split/classic 1q 0x1;"),
        None
    );
}

/// `rng-loop=` (test only): one looped descriptor chain on the virtio-rng
/// after its first setup. QEMU's own device takes it for a guest error
/// (its virtio_error path: a looped chain), sets DEVICE_NEEDS_RESET and
/// signals a configuration change; no host route sets NEEDS_RESET on
/// virtio-ccw otherwise. The firmware names it after the interrupt,
/// leaves the device, and the run goes on.
#[test]
fn a_device_that_needs_a_reset_is_named() {
    let s = with_device(
        scenario("virtio-rng-needs-reset")
            .append("only=virtio.rng,timer.cpu-timer")
            .append("rng-loop=fe.0.0001"),
        "virtio-rng-ccw",
        "fe.0.0001",
        "rng",
        &[],
    );
    let o = boot(&s, &elf());
    common::check_no_stray_writes(&o);
    fails_with(
        &o,
        Some("virtio.rng"),
        &["device fe.0.0001: the device set DEVICE_NEEDS_RESET (status 0x4f) after a configuration-change interrupt; its queues marked broken"],
    );
    let setups: Vec<_> = rng_lines(&o);
    check(
        &o,
        setups.len() == 1 && setups[0].0 == "rev 2 split event-idx classic interrupts random",
        &format!("the first setup only, then the device left; got {setups:?}"),
    );
    check_ran(&o, "timer.cpu-timer");
    check_summary(&o);
}
