//! The default scenario: what `cargo xtask run` and `cargo xtask bench`
//! boot, the product's first impression. Every device model this QEMU can
//! run without host privileges, each with a backend that carries data
//! (a scratch disk image, a scratch directory), hot plug, the balloon
//! resized twice over QMP and the diag288 watchdog, so that every check
//! that can run on this host runs.

use crate::balloon::BalloonScenario;
use crate::gpu::GpuScenario;
use crate::hostile::{Hostile, HostileScenario};
use crate::mem::MemScenario;
use crate::net::{Echo, NetScenario};
use crate::p9::{P9Scenario, Share9p};
use crate::scenario::{Diag288, Scenario};
use crate::virtiofs::{VirtioFs, VirtioFsScenario};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use zvtest_contract::checks::markers::CONFIG_CHANGE_READY;

/// The devices at boot: model, bus id, the firmware's name for it.
pub const DEVICES: &[(&str, &str, &str)] = &[
    ("virtio-blk-ccw", "fe.0.0001", "blk"),
    ("virtio-net-ccw", "fe.0.0002", "net"),
    ("virtio-serial-ccw", "fe.0.0003", "console"),
    ("virtio-rng-ccw", "fe.0.0004", "rng"),
    ("virtio-balloon-ccw", "fe.0.0005", "balloon"),
    ("virtio-scsi-ccw", "fe.0.0006", "scsi"),
    ("virtio-gpu-ccw", "fe.0.0007", "gpu"),
    ("virtio-keyboard-ccw", "fe.0.0008", "input"),
    ("virtio-crypto-ccw", "fe.0.0009", "crypto"),
    ("virtio-9p-ccw", "fe.0.000a", "9p"),
    ("virtio-mem-ccw", "fe.0.0011", "mem"),
    ("virtio-mouse-ccw", "fe.0.000e", "input"),
    ("virtio-tablet-ccw", "fe.0.000f", "input"),
];

/// Devices that need a host device QEMU opens itself (model, bus id, the
/// firmware's name, the host device): in the scenario where the host has
/// it, else left out with the reason.
pub const HOST_DEVICES: &[(&str, &str, &str, &str)] =
    &[("vhost-vsock-ccw", "fe.0.000c", "vsock", "/dev/vhost-vsock")];

/// A second net device, on QEMU's user-mode network (`net.user`); the
/// first one (fe.0.0002) has the runner's echo peer on a datagram back-end.
pub const USER_NET: (&str, &str, &str) = ("virtio-net-ccw", "fe.0.000d", "net");
/// The MACs of the echo and the user-mode net device (locally administered).
pub const ECHO_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x7a, 0x76, 0x02];
pub const USER_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x7a, 0x76, 0x0d];

/// virtio-fs (model, bus id, tag): on the seeded tree, scratch, where
/// the host has a `virtiofsd` (and then guest RAM is a shared back-end).
pub const VIRTIO_FS: (&str, &str, &str) = ("vhost-user-fs-ccw", "fe.0.0010", "zvtest-fs");

/// The hostile device (model, bus id), behaving: the runner's own
/// vhost-user back-end (crate::hostile), guest RAM shared.
pub const HOSTILE: (&str, &str) = ("vhost-user-fs-ccw", "fe.0.0012");

/// The device plugged once the firmware says it is ready (`css.hotplug`).
pub const HOT_PLUGGED: (&str, &str, &str) = ("virtio-rng-ccw", "fe.0.000b", "rng");

/// The scratch disk of the blk device: big enough for a few hundred
/// writable stripes, made in well under a second.
pub const SCRATCH_BLK_BYTES: u64 = 64 << 20;
/// Each of the SCSI controller's two scratch LUNs (target 0, LUNs 0 and 1).
pub const SCRATCH_LUN_BYTES: u64 = 32 << 20;

/// The serial device's ports, each on a socket the runner serves: a
/// console and two named ports, 32 KiB each way on each spread over the
/// 14 setups (packed too; under 200 ms under TCG, mostly the setups'
/// bring-ups, not the bytes), the emergency write, and port 2 closed by
/// the host at the firmware's marker; port 1 unplugged and port 3 plugged
/// over QMP at the firmware's markers (`serial.hotplug`).
pub fn default_serial(bus: &str) -> crate::serial::SerialPorts {
    crate::serial::SerialPorts::new(bus)
        .max_ports(4)
        .emergency_write(true)
        .bytes(32 << 10)
        .packed(true)
        .console(0, Some("org.zvtest.console"))
        .port(1, "org.zvtest.port1")
        .port(2, "org.zvtest.port2")
        .close(2)
        .unplug(1)
        .plug(3, "org.zvtest.port3")
}

/// The balloon: 64 pages inflated and deflated with the peer holding
/// `query-balloon` to them, statistics read back through QOM, free page
/// reporting (about 50 ms under TCG; free-page-hint is left out: QEMU
/// before 11 crashes with it at random).
pub fn default_balloon(bus: &str) -> crate::balloon::Balloon {
    crate::balloon::Balloon::new(bus)
        .inflate(64)
        .stats()
        .report()
}

/// virtio-mem (QEMU 10.0 and later): a 256 MiB region of 2 MiB blocks
/// (QEMU warns below the host's huge page size), 16 MiB requested at boot
/// and plugged, then 32 MiB set over QMP and followed (a larger requested
/// size costs TCG time: 64 MiB plugs in about 0.4 s).
pub fn default_mem(bus: &str) -> crate::mem::VirtioMem {
    crate::mem::VirtioMem::new(bus, 256 << 20)
        .block(2 << 20)
        .requested(16 << 20)
        .resize(32 << 20)
}

/// Does `qemu` (with data directory `data_dir`) offer device `model`?
/// `-device MODEL,help` exits 0 even for a model it does not know (it says
/// so on stderr), so both are read. The error says why not.
pub fn offered(qemu: &Path, data_dir: Option<&Path>, model: &str) -> Result<(), String> {
    let mut cmd = Command::new(qemu);
    if let Some(dir) = data_dir {
        cmd.arg("-L").arg(dir);
    }
    let out = cmd
        .args(["-machine", "s390-ccw-virtio", "-nodefaults", "-device"])
        .arg(format!("{model},help"))
        .output()
        .map_err(|e| format!("cannot run {}: {e}", qemu.display()))?;
    let err = String::from_utf8_lossy(&out.stderr);
    let unknown = err.contains("not found") || err.contains("is not a valid device model");
    if out.status.success() && !unknown {
        Ok(())
    } else {
        Err(format!(
            "this QEMU does not offer it: {}",
            err.lines().next().unwrap_or("(no message)")
        ))
    }
}

/// What was left out of the default scenario, and why.
pub type LeftOut = Vec<(&'static str, String)>;

/// The default scenario, its scratch files under `scratch` (the disk
/// images, made by the runner when it boots, and a directory for 9p, made
/// afresh here: nothing of the user's is written to), and the models this
/// QEMU does not offer, left out with the reason.
pub fn default_scenario(scratch: &Path) -> io::Result<(Scenario, LeftOut)> {
    fs::create_dir_all(scratch)?;
    // The seeded tree is laid out there afresh when the run starts.
    let share = scratch.join("scratch-9p");

    // Two CPUs under multi-threaded TCG and a third plugged mid-run:
    // smp.* starts and checks them; an idle CPU waits in an enabled wait
    // and costs no host time.
    let mut s = Scenario::new("default")
        .accel("tcg,thread=multi")
        .smp(2)
        .plug_cpus(3, &[2])
        .timeout(Duration::from_secs(60))
        .disk_dir(scratch);
    let probes: Vec<Result<(), String>> = std::thread::scope(|sc| {
        let handles: Vec<_> = DEVICES
            .iter()
            .map(|&(model, _, _)| {
                let (qemu, data) = (s.qemu.clone(), s.data_dir.clone());
                sc.spawn(move || offered(&qemu, data.as_deref(), model))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("probe panicked".into())))
            .collect()
    });
    let mut left_out = Vec::new();
    // The keyboard, mouse and tablet, with the peer that injects their events.
    let mut input = crate::input::InputDevices::new();
    for (&(model, bus, name), probe) in DEVICES.iter().zip(probes) {
        if let Err(why) = probe {
            left_out.push((model, why));
            continue;
        }
        s = match model {
            "virtio-blk-ccw" => s.scratch_blk(bus, SCRATCH_BLK_BYTES),
            "virtio-scsi-ccw" => s
                .ccw_device(model, bus, name)
                .scratch_scsi(bus, 0, 0, SCRATCH_LUN_BYTES)
                .scratch_scsi(bus, 0, 1, SCRATCH_LUN_BYTES),
            // The echo peer over dgram, or socket,udp= on QEMUs before 7.2.
            "virtio-net-ccw" => match (
                crate::net::netdev_offered(&s, crate::net::DGRAM_PROBE),
                crate::net::netdev_offered(&s, crate::net::SOCKET_UDP_PROBE),
            ) {
                (Ok(()), _) => s
                    .net_echo(bus, ECHO_MAC, Echo::dgram().packed())
                    .net_link(bus),
                (Err(_), Ok(())) => s
                    .net_echo(bus, ECHO_MAC, Echo::socket_udp().packed())
                    .net_link(bus),
                (Err(why), Err(_)) => {
                    left_out.push(("the echo peer of virtio-net-ccw", why));
                    s.ccw_device(model, bus, name)
                }
            },
            "virtio-serial-ccw" => s.virtio_serial(default_serial(bus)),
            // On the builtin back-end (devices.rs), held to what it offers.
            "virtio-crypto-ccw" => s
                .ccw_device(model, bus, name)
                .append(format!("crypto={bus}")),
            "virtio-9p-ccw" => s.share_9p(Share9p::new(bus, "zvtest").scratch().dir(&share)),
            "virtio-balloon-ccw" => s.balloon(default_balloon(bus)),
            "virtio-mem-ccw" => s.virtio_mem(default_mem(bus)),
            "virtio-keyboard-ccw" | "virtio-mouse-ccw" | "virtio-tablet-ccw" => {
                let m = zvtest_contract::input::Model::ALL
                    .into_iter()
                    .find(|m| m.qemu_model() == model)
                    .expect("an input model");
                input = input.device(bus, m);
                s
            }
            // Its mode told to the firmware and its image checked by the
            // runner's screendump (qemu-runner/src/gpu.rs); a small mode keeps the
            // image and the dump cheap.
            "virtio-gpu-ccw" => s.virtio_gpu(crate::gpu::Gpu::new(bus, 320, 240).edid(true)),
            _ => s.ccw_device(model, bus, name),
        };
        if model == "virtio-net-ccw" {
            let (_, bus, _) = USER_NET;
            match crate::net::netdev_offered(&s, crate::net::USER_PROBE) {
                Ok(()) => s = s.net_user(bus, USER_MAC),
                Err(why) => left_out.push(("virtio-net-ccw on -netdev user", why)),
            }
        }
    }
    s = s.input(input);
    for &(model, bus, name, host) in HOST_DEVICES {
        if !Path::new(host).exists() {
            left_out.push((
                model,
                format!("it needs {host}, which this host does not have (a kernel module)"),
            ));
        } else if let Err(why) = offered(&s.qemu, s.data_dir.as_deref(), model) {
            left_out.push((model, why));
        } else {
            s = s.ccw_device(model, bus, name);
        }
    }
    let (model, bus, tag) = VIRTIO_FS;
    match crate::virtiofs::virtiofsd()
        .and_then(|d| offered(&s.qemu, s.data_dir.as_deref(), model).map(|()| d))
    {
        Ok(daemon) => {
            s = s.virtio_fs(
                VirtioFs::new(bus, tag)
                    .scratch(true)
                    .daemon(daemon)
                    .dir(scratch.join("scratch-fs")),
            )
        }
        Err(why) => left_out.push((model, why)),
    }
    let (model, bus) = HOSTILE;
    match offered(&s.qemu, s.data_dir.as_deref(), model) {
        Ok(()) => s = s.hostile(Hostile::new(bus)),
        Err(why) => left_out.push(("vhost-user-fs-ccw (the hostile device)", why)),
    }
    let (model, bus, name) = HOT_PLUGGED;
    s = s.hot_plug(model, bus, name).diag288(Diag288::Present);
    if s.ccw_devices
        .iter()
        .any(|d| d.model == "virtio-balloon-ccw")
    {
        // Two resizes, one per indicator mode: to half, then a quarter of
        // the guest's storage (the balloon's 4 KiB pages).
        let ram = u64::from(s.memory_mib) << 20;
        let targets = [ram / 2, ram / 4];
        let pages = targets.map(|t| u32::try_from((ram - t) >> 12).unwrap_or(u32::MAX));
        s = s.balloon_pages(pages[0], pages[1]);
        // After each of the firmware's lines, with classic and then
        // adapter indicators for its queues.
        for (line, target) in CONFIG_CHANGE_READY.iter().zip(targets) {
            s = s.qmp_on_line(line, &crate::qmp::balloon(target));
        }
    }
    Ok((s, left_out))
}

/// Where `cargo xtask` keeps the default scenario's scratch files.
pub fn scratch_dir(target: &Path) -> PathBuf {
    target.join("zvtest-run").join("scratch")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::BusId;

    #[test]
    fn every_device_has_its_own_bus_id() {
        let mut buses: Vec<BusId> = DEVICES
            .iter()
            .chain([&HOT_PLUGGED, &USER_NET, &VIRTIO_FS])
            .map(|(_, b, _)| b.parse().unwrap())
            .collect();
        buses.sort();
        buses.dedup();
        assert_eq!(buses.len(), DEVICES.len() + 3);
    }
}
