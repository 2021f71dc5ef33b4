//! The names of the regular checks, in the order they run: what a full
//! run's plan counts, known to host-side code too. suites/mod.rs holds the
//! checks themselves and refuses to build if the two lists differ.

/// Every check a run without `only=`/`skip=` reports, in order (the
/// fault-injection checks, which run only on request, are not among them).
pub const NAMES: &[&str] = &[
    "boot.vectors",
    "boot.svc",
    "pgm.operation",
    "pgm.privileged",
    "pgm.specification",
    "pgm.addressing",
    "sclp.memory",
    "sclp.cpus",
    "smp.cpus",
    "smp.start",
    "smp.hotplug",
    "smp.heap",
    "smp.console",
    "sigp.sense",
    "sigp.external-call",
    "sigp.emergency-signal",
    "sigp.conditional-emergency",
    "sigp.start",
    "sigp.stop",
    "sigp.stop-store-status",
    "sigp.restart",
    "sigp.restart-in-wait",
    "sigp.set-prefix",
    "sigp.store-status",
    "sigp.store-additional-status",
    "sigp.set-architecture",
    "sigp.sense-running",
    "sigp.cpu-reset",
    "sigp.no-cpu",
    "sigp.invalid-order",
    "css.characteristics",
    "css.sense-id",
    "css.inventory",
    "css.chaining",
    "css.command-reject",
    "css.clear",
    "css.halt",
    "css.hotplug",
    "legacy.page",
    "virtio.revisions",
    "virtio.rng",
    "virtio.config",
    "virtio.config-change",
    "balloon.inflate",
    "balloon.stats",
    "balloon.report",
    "balloon.hint",
    "mem.config",
    "mem.plug",
    "mem.resize",
    "blk.config",
    "blk.requests",
    "blk.stress",
    "scsi.commands",
    "scsi.errors",
    "scsi.control",
    "scsi.stress",
    "scsi.hotplug",
    "net.config",
    "net.control",
    "net.link",
    "net.echo",
    "net.filter",
    "net.user",
    "smp.stress-blk",
    "smp.stress-net",
    "serial.config",
    "serial.control",
    "serial.stress",
    "serial.emergency",
    "serial.close",
    "serial.hotplug",
    "crypto.config",
    "crypto.kat",
    "crypto.errors",
    "crypto.stress",
    "p9.config",
    "p9.read",
    "p9.write",
    "p9.stress",
    "input.config",
    "input.events",
    "input.status",
    "fs.config",
    "fs.read",
    "fs.write",
    "fs.stress",
    "hostile.echo",
    "gpu.display",
    "gpu.scanout",
    "gpu.cursor",
    "gpu.errors",
    "gpu.stress",
    "hcall.abi.registers",
    "hcall.diag500.printk-inside",
    "hcall.diag500.printk-outside",
    "hcall.diag500.reset",
    "hcall.diag500.set-status",
    "hcall.diag500.notify",
    "hcall.diag500.notify-not-set-up",
    "hcall.diag500.notify-past-queues",
    "hcall.diag500.notify-queue-limit",
    "hcall.diag500.notify-bad-subchannel",
    "hcall.diag500.storage-limit",
    "hcall.diag500.function-5",
    "hcall.diag500.function-ffff",
    "hcall.diag500.function-2pow63",
    "hcall.diag500.problem-state",
    "hcall.diag10",
    "hcall.diag44",
    "hcall.diag9c.self",
    "hcall.diag9c.other",
    "hcall.diag9c.missing",
    "hcall.diag258",
    "hcall.diag288.start",
    "hcall.diag288.cancel",
    "hcall.diag288.cancel-idle",
    "hcall.diag288.short-timeout",
    "hcall.diag288.odd-register",
    "hcall.diag288.expiry",
    "hcall.diag308.store",
    "hcall.diag308.set-invalid",
    "hcall.diag308.bad-subcode",
    "hcall.diag308.odd-register",
    "hcall.diag318",
    "hcall.diag320.query",
    "hcall.diag508.query",
    "hcall.diag501",
    "heap.stress",
    "heap.exhaustion",
    "timer.cpu-timer",
    "timer.clock-comparator",
];

/// The check that lets the diag288 watchdog expire (`diag288=expire`):
/// the host holds its pass to QEMU's `WATCHDOG` event.
pub const DIAG288_EXPIRY: &str = "hcall.diag288.expiry";

const _: () = {
    let mut i = 0;
    while !same(NAMES[i], DIAG288_EXPIRY) {
        i += 1; // past the end: not a check, and the build fails
    }
};

/// The lines the firmware prints when it waits for the host to act: the
/// runner acts on them.
pub mod markers {
    /// Hot plug and unplug now (`css.hotplug`).
    pub const HOTPLUG_READY: &str = "# zvtest: hotplug ready";
    /// Resize the balloon now: with classic, then adapter indicators for
    /// its queues (`virtio.config-change`).
    pub const CONFIG_CHANGE_READY: [&str; 2] = [
        "# zvtest: config-change ready classic",
        "# zvtest: config-change ready adapter",
    ];
    /// Followed by a disk's id: every writable stripe of that scratch disk
    /// now holds pattern B (contract `disk`). For people and scenarios to
    /// read; the runner decides what an image must hold from whether the
    /// disk's `<group>.stress` check passed in a complete run
    /// (qemu-runner `disks::expectation`).
    pub const DISK_WRITTEN: &str = "# zvtest: disk written";
    /// Plug, then unplug, the `scsi-hotplug=` LUN now (`scsi.hotplug`).
    pub const SCSI_HOTPLUG_READY: [&str; 2] = [
        "# zvtest: scsi hotplug ready plug",
        "# zvtest: scsi hotplug ready unplug",
    ];
    /// Set the link of the `nets=` device marked `:link` down, then up
    /// again (QMP `set_link`), now (`net.link`).
    pub const NET_LINK_READY: [&str; 2] = [
        "# zvtest: net link ready down",
        "# zvtest: net link ready up",
    ];
    /// Followed by ` <bus id> <end> <setup>`: the firmware starts a round
    /// of `serial.stress` on that virtio-serial device (one per setup,
    /// after a reset), moving every port's streams on to offset `<end>`
    /// (the last round's is `bytes=` times `stress=`): the host's peer
    /// sends its streams up to there and holds the guest's to the last.
    pub const SERIAL_STRESS: &str = "# zvtest: serial stress";
    /// Followed by ` <bus id> <port>`: close the host side of that port
    /// now (`serial.close`).
    pub const SERIAL_CLOSE: &str = "# zvtest: serial close";
    /// Followed by ` <bus id> <port> tx <D> rx <R>`: the host side of that
    /// port (`drop=`) dropped during `serial.stress`; once it is back the
    /// firmware sends its stream on from offset D (what it had handed to
    /// the device: bytes the host did not get before the drop are lost
    /// with it) and expects the host's from offset R (what it received).
    pub const SERIAL_DROP: &str = "# zvtest: serial drop";
    /// Followed by ` <bus id>`: the emergency-write bytes of that device
    /// were written (`serial.emergency`); the console's peer must have them.
    pub const SERIAL_EMERGENCY: &str = "# zvtest: serial emergency written";
    /// Followed by ` <bus id> <port>`: unplug that port now (`device_del`;
    /// `serial.hotplug`).
    pub const SERIAL_UNPLUG: &str = "# zvtest: serial unplug";
    /// Followed by ` <bus id> <port>`: plug that virtserialport now
    /// (`device_add`; `serial.hotplug`).
    pub const SERIAL_PLUG: &str = "# zvtest: serial plug";
    /// Followed by ` <bus id> <pages>`: the balloon holds that many pages
    /// and says so in `actual`; the host checks `query-balloon` and answers
    /// with a balloon target that many pages below the guest's storage
    /// (a configuration change) (`balloon.inflate`).
    pub const BALLOON_INFLATED: &str = "# zvtest: balloon inflated";
    /// Followed by ` <bus id>`: every page deflated, `actual` 0; the host
    /// checks and answers with the full storage as target.
    pub const BALLOON_DEFLATED: &str = "# zvtest: balloon deflated";
    /// Followed by ` <bus id>`: the first statistics buffer is posted; the
    /// host asks for statistics now (`balloon.stats`).
    pub const BALLOON_STATS_READY: &str = "# zvtest: balloon stats ready";
    /// Followed by ` <bus id>`: the statistics printed just before were
    /// posted; the host compares QOM `guest-stats` with them and answers
    /// with a balloon target of the full storage.
    pub const BALLOON_STATS_POSTED: &str = "# zvtest: balloon stats posted";
    /// Followed by ` <bus id>`: set that virtio-mem device's requested size
    /// to `mem=`'s `resize=` now (`mem.resize`).
    pub const MEM_RESIZE: &str = "# zvtest: mem resize";
    /// Followed by ` <bus id> <round>`: that virtio-input device has every
    /// event buffer posted; inject round `<round>` of its seeded sequence
    /// now (contract `input`; `input.events`).
    pub const INPUT_EVENTS: &str = "# zvtest: input events";
    /// Followed by ` <bus id> <width>x<height>`: the seeded image is on
    /// scanout 0 of that virtio-gpu (contract `gpu`); take a screendump
    /// now, then signal with a restart interrupt (QMP `inject-nmi`), for
    /// which the firmware waits before it lets the image go
    /// (`gpu.scanout`).
    pub const GPU_SCANOUT: &str = "# zvtest: gpu scanout";
    /// Plug a device now (`inject=mcck`).
    pub const MCCK_READY: &str = "# zvtest: inject mcck ready";
    /// Plug the `cpu-plug=` CPUs now (`smp.hotplug`); the firmware waits
    /// for the SCLP's configuration-change event.
    pub const CPU_PLUG_READY: &str = "# zvtest: cpu plug ready";
    /// Followed by ` <bus id>`: `blk.stress` starts the first phase of its
    /// first round on that virtio-blk device now (set up, its queue about
    /// to be busy), without waiting: the runner's faults during the stress
    /// (a VM stop and cont, a corruption, an unplug) take this as their cue.
    pub const BLK_STRESS: &str = "# zvtest: blk stress";

    /// The check that prints `line` (a marker, with or without the words
    /// some markers are followed by): a marker whose check did not run is
    /// not awaited.
    pub fn owner(line: &str) -> Option<&'static str> {
        let line = line.trim();
        let is = |m: &str| line == m || line.strip_prefix(m).is_some_and(|r| r.starts_with(' '));
        let owners: [(&[&str], &'static str); 20] = [
            (&[HOTPLUG_READY], "css.hotplug"),
            (&CONFIG_CHANGE_READY, "virtio.config-change"),
            (&SCSI_HOTPLUG_READY, "scsi.hotplug"),
            (&NET_LINK_READY, "net.link"),
            (&[SERIAL_STRESS], "serial.stress"),
            (&[SERIAL_CLOSE], "serial.close"),
            (&[SERIAL_DROP], "serial.stress"),
            (&[SERIAL_EMERGENCY], "serial.emergency"),
            (&[SERIAL_UNPLUG], "serial.hotplug"),
            (&[SERIAL_PLUG], "serial.hotplug"),
            (&[GPU_SCANOUT], "gpu.scanout"),
            (&[MCCK_READY], "inject.mcck"),
            (&[BALLOON_INFLATED], "balloon.inflate"),
            (&[BALLOON_DEFLATED], "balloon.inflate"),
            (&[BALLOON_STATS_READY], "balloon.stats"),
            (&[BALLOON_STATS_POSTED], "balloon.stats"),
            (&[MEM_RESIZE], "mem.resize"),
            (&[INPUT_EVENTS], "input.events"),
            (&[CPU_PLUG_READY], "smp.hotplug"),
            (&[BLK_STRESS], "blk.stress"),
        ];
        owners
            .iter()
            .find(|(ms, _)| ms.iter().any(|m| is(m)))
            .map(|&(_, check)| check)
    }
}

/// Whether `a` and `b` are equal, in a const context.
pub const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_grouped() {
        for (i, n) in NAMES.iter().enumerate() {
            assert!(!NAMES[i + 1..].contains(n), "{n} twice");
            assert!(n.contains('.'), "{n} has no group");
        }
        assert!(same("a.b", "a.b") && !same("a.b", "a.c") && !same("a", "ab"));
    }

    #[test]
    fn every_marker_has_a_check_that_prints_it() {
        use markers::*;
        for (line, check) in [
            (HOTPLUG_READY, "css.hotplug"),
            (CONFIG_CHANGE_READY[1], "virtio.config-change"),
            (SCSI_HOTPLUG_READY[0], "scsi.hotplug"),
            (NET_LINK_READY[1], "net.link"),
            (
                "# zvtest: serial stress fe.0.0003 4096 rev 2 split classic polled",
                "serial.stress",
            ),
            ("# zvtest: serial unplug fe.0.0003 2", "serial.hotplug"),
            ("# zvtest: serial plug fe.0.0003 5", "serial.hotplug"),
            ("# zvtest: serial close fe.0.0003 2", "serial.close"),
            (
                "# zvtest: serial drop fe.0.0003 2 tx 5 rx 7",
                "serial.stress",
            ),
            (SERIAL_EMERGENCY, "serial.emergency"),
            ("# zvtest: gpu scanout fe.0.0007 640x480", "gpu.scanout"),
            (MCCK_READY, "inject.mcck"),
            ("# zvtest: balloon inflated fe.0.0005 64", "balloon.inflate"),
            ("# zvtest: balloon deflated fe.0.0005", "balloon.inflate"),
            ("# zvtest: balloon stats ready fe.0.0005", "balloon.stats"),
            ("# zvtest: balloon stats posted fe.0.0005", "balloon.stats"),
            ("# zvtest: mem resize fe.0.0011", "mem.resize"),
            ("# zvtest: input events fe.0.000e 1", "input.events"),
            ("# zvtest: blk stress fe.0.0001", "blk.stress"),
        ] {
            assert_eq!(owner(line), Some(check), "{line}");
            assert!(NAMES.contains(&check) || check.starts_with("inject."));
        }
        assert_eq!(owner("# zvtest: hotplug ready now"), Some("css.hotplug"));
        assert_eq!(owner("# zvtest: hotplug readyx"), None);
        assert_eq!(owner("# zvtest: something else"), None);
        assert_eq!(owner(DISK_WRITTEN), None);
    }
}
