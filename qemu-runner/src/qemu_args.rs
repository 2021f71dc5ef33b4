//! QEMU's command line for a scenario: machine, console, memory, devices
//! and their back-ends, the legacy page loader, the kernel and `-append`.

use crate::scenario::{Diag288, HotplugStep, Scenario};
use std::ffi::OsString;
use std::path::Path;

/// The id of the shared RAM back-end ([`Scenario::shared_memory`]).
pub const SHARED_RAM_ID: &str = "zvtest-ram";

impl Scenario {
    /// QEMU's arguments (without the binary) to boot `kernel`.
    ///
    /// `-no-shutdown` is never passed: with it a failing run would pause
    /// forever instead of exiting 1.
    pub fn qemu_args(&self, kernel: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut add = |words: &[&str]| args.extend(words.iter().map(OsString::from));
        if self.shared_memory {
            // The RAM's back-end by id; `-m` must say the same size.
            let machine = format!("{},memory-backend={SHARED_RAM_ID}", self.machine);
            let ram = format!(
                "memory-backend-memfd,id={SHARED_RAM_ID},size={}M,share=on",
                self.memory_mib
            );
            add(&["-machine", &machine, "-object", &ram]);
        } else {
            add(&["-machine", &self.machine]);
        }
        add(&["-accel", &self.accel]);
        if let Some(cpu) = &self.cpu {
            add(&["-cpu", cpu]);
        }
        let console = if self.line_mode_console {
            "sclplmconsole,chardev=con0"
        } else {
            "sclpconsole,chardev=con0"
        };
        add(&[
            "-nodefaults",
            "-nographic",
            "-chardev",
            "stdio,id=con0",
            "-device",
            console,
            "-no-reboot",
            "-action",
            "panic=exit-failure",
            // QEMU prints the wait PSW of a crash: the firmware's verdict
            // code, which the runner checks against the TAP.
            "-d",
            "guest_errors",
        ]);
        add(&["-m", &self.memory_mib.to_string()]);
        let smp = match self.max_cpus {
            Some(m) => format!("{},maxcpus={m}", self.smp),
            None => self.smp.to_string(),
        };
        add(&["-smp", &smp]);
        for d in &self.devices {
            add(&["-device", d]);
        }
        match self.diag288 {
            None | Some(Diag288::Absent) => {}
            Some(Diag288::Present) => add(&["-device", "diag288"]),
            Some(Diag288::Expire) => add(&["-device", "diag288", "-action", "watchdog=inject-nmi"]),
        }
        if let Some(dir) = &self.data_dir {
            args.push("-L".into());
            args.push(dir.into());
        }
        // Backends first (QEMU creates them before devices either way),
        // including those of devices that are only hot-plugged later.
        let plugged = self.hotplug.iter().filter_map(|s| match s {
            HotplugStep::Add(d) => Some(d),
            HotplugStep::Remove { .. } => None,
        });
        for d in self.ccw_devices.iter().chain(plugged) {
            args.extend(d.backend_args.iter().map(OsString::from));
        }
        args.extend(self.drive_args());
        for d in &self.ccw_devices {
            args.push("-device".into());
            args.push(d.device_arg().into());
        }
        args.extend(self.scsi_disk_args());
        if let Some(page) = &self.legacy_page {
            let mut loader = OsString::from("loader,file=");
            loader.push(&page.file);
            loader.push(format!(",addr={:#x},force-raw=on", page.addr));
            args.push("-device".into());
            args.push(loader);
        }
        args.extend(self.extra_args.iter().map(OsString::from));
        args.push("-kernel".into());
        args.push(kernel.into());
        let line = self.command_line();
        if !line.is_empty() {
            args.push("-append".into());
            args.push(line.into());
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    fn strings(args: &[OsString]) -> Vec<&str> {
        args.iter().map(|a| a.to_str().unwrap()).collect()
    }

    #[test]
    fn default_arguments() {
        let mut s = Scenario::new("default");
        s.data_dir = None; // whatever ZVTEST_QEMU_DATA says
        let args = s.qemu_args(Path::new("/k/zvtest.elf"));
        assert_eq!(
            strings(&args),
            [
                "-machine",
                "s390-ccw-virtio",
                "-accel",
                "tcg",
                "-nodefaults",
                "-nographic",
                "-chardev",
                "stdio,id=con0",
                "-device",
                "sclpconsole,chardev=con0",
                "-no-reboot",
                "-action",
                "panic=exit-failure",
                "-d",
                "guest_errors",
                "-m",
                "128",
                "-smp",
                "1",
                "-kernel",
                "/k/zvtest.elf",
                "-append",
                "expect-mem=128M expect-cpus=1",
            ]
        );
        assert_eq!(s.timeout, Duration::from_secs(60));
        assert!(s.validate().is_ok());
    }

    #[test]
    fn builder_options_reach_the_arguments() {
        let s = Scenario::new("big")
            .machine("s390-ccw-virtio-7.2")
            .accel("kvm")
            .cpu("qemu")
            .memory_mib(512)
            .smp(2)
            .device("virtio-net-ccw")
            .device("virtio-rng-ccw,devno=fe.0.0002")
            .extra_args(["-d", "guest_errors"])
            .append("only=boot.* verbose=1")
            .append("x=y")
            .timeout(Duration::from_secs(5))
            .qemu("/opt/qemu");
        let args = s.qemu_args(Path::new("k"));
        let args = strings(&args);
        assert_eq!(
            &args[..6],
            [
                "-machine",
                "s390-ccw-virtio-7.2",
                "-accel",
                "kvm",
                "-cpu",
                "qemu"
            ]
        );
        let at = |flag: &str| args.iter().position(|a| *a == flag).unwrap();
        assert_eq!(args[at("-m") + 1], "512");
        assert_eq!(args[at("-smp") + 1], "2");
        assert_eq!(
            args[at("-append") + 1],
            "expect-mem=512M expect-cpus=2 only=boot.* verbose=1 x=y"
        );
        assert!(args.windows(2).any(|w| w == ["-device", "virtio-net-ccw"]));
        assert!(args
            .windows(2)
            .any(|w| w == ["-device", "virtio-rng-ccw,devno=fe.0.0002"]));
        assert!(args.windows(2).any(|w| w == ["-d", "guest_errors"]));
        assert!(!args.contains(&"-no-shutdown"));
        assert_eq!(s.qemu, PathBuf::from("/opt/qemu"));
        assert_eq!(s.timeout, Duration::from_secs(5));
        assert_eq!(s.append, ["only=boot.*", "verbose=1", "x=y"]);
    }

    /// Shared RAM: the machine names the back-end, which has `-m`'s size;
    /// shares reach `shares=`, and `scratch=` only where they may be written.
    #[test]
    fn shared_memory_and_shares() {
        use zvtest_contract::share::ShareConfig;
        let s = Scenario::new("vfs")
            .memory_mib(256)
            .shared_memory(true)
            .share(ShareConfig::parse("fe.0.0010:zv-fs:tree").unwrap(), true)
            .share(ShareConfig::parse("fe.0.0011:ro").unwrap(), false);
        let args = s.qemu_args(Path::new("k"));
        let args = strings(&args);
        assert!(args
            .windows(2)
            .any(|w| w == ["-machine", "s390-ccw-virtio,memory-backend=zvtest-ram"]));
        assert!(args.windows(2).any(|w| w
            == [
                "-object",
                "memory-backend-memfd,id=zvtest-ram,size=256M,share=on"
            ]));
        assert!(args.windows(2).any(|w| w == ["-m", "256"]));
        let line = s.command_line();
        assert!(
            line.contains("scratch=fe.0.0010 ") && !line.contains("scratch=fe.0.0010,"),
            "{line}"
        );
        assert!(
            line.contains("shares=fe.0.0010:zv-fs:tree,fe.0.0011:ro"),
            "{line}"
        );
        let plain = Scenario::new("p").qemu_args(Path::new("k"));
        assert!(strings(&plain)
            .windows(2)
            .any(|w| w == ["-machine", "s390-ccw-virtio"]));
        assert!(!strings(&plain).contains(&"-object"));
    }

    #[test]
    fn data_directory() {
        let s = Scenario::new("l").data_dir("/opt/q/usr/share/qemu");
        let args = s.qemu_args(Path::new("k"));
        let args = strings(&args);
        assert!(args
            .windows(2)
            .any(|w| w == ["-L", "/opt/q/usr/share/qemu"]));
        assert!(args.iter().position(|a| *a == "-L") < args.iter().position(|a| *a == "-kernel"));
    }

    #[test]
    fn ccw_devices_bring_their_backends_and_expectations() {
        let s = Scenario::new("devs")
            .virtio_ccw("virtio-net-ccw", "fe.1.0005", "net")
            .virtio_ccw("virtio-blk-ccw", "fe.0.0001", "blk")
            .virtio_ccw("virtio-rng-ccw", "fe.0.0002", "rng")
            .virtio_ccw("virtio-9p-ccw", "fe.0.0003", "9p")
            .virtio_ccw("virtio-crypto-ccw", "fe.0.0004", "crypto")
            .ccw_device("x-terminal3270", "fe.2.0020", "cu-3270");
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(
            s.command_line(),
            "expect-mem=128M expect-cpus=1 devices=fe.0.0001:blk,fe.0.0002:rng,fe.0.0003:9p,\
             fe.0.0004:crypto,fe.1.0005:net,fe.2.0020:cu-3270"
        );
        let args = s.qemu_args(Path::new("k"));
        let args = strings(&args);
        let has = |pair: [&str; 2]| args.windows(2).any(|w| w == pair);
        assert!(has([
            "-device",
            "virtio-rng-ccw,devno=fe.0.0002,id=ccw-fe.0.0002"
        ]));
        assert!(has([
            "-device",
            "virtio-blk-ccw,devno=fe.0.0001,id=ccw-fe.0.0001,drive=ccw-fe.0.0001-disk"
        ]));
        assert!(has([
            "-blockdev",
            "driver=null-co,node-name=ccw-fe.0.0001-disk,read-zeroes=on"
        ]));
        assert!(has(["-netdev", "user,id=ccw-fe.1.0005-net,restrict=on"]));
        assert!(has([
            "-device",
            "virtio-net-ccw,devno=fe.1.0005,id=ccw-fe.1.0005,netdev=ccw-fe.1.0005-net"
        ]));
        assert!(has(["-fsdev", "synth,id=ccw-fe.0.0003-fs"]));
        assert!(has([
            "-device",
            "virtio-9p-ccw,devno=fe.0.0003,id=ccw-fe.0.0003,fsdev=ccw-fe.0.0003-fs,mount_tag=zvtest"
        ]));
        assert!(has([
            "-object",
            "cryptodev-backend-builtin,id=ccw-fe.0.0004-crypto"
        ]));
        assert!(has(["-chardev", "null,id=ccw-fe.2.0020-chr"]));
        // Backends come before the devices that use them, after -m/-smp.
        let at = |a: &str| args.iter().position(|x| *x == a).unwrap();
        assert!(
            at("-blockdev")
                < at("virtio-blk-ccw,devno=fe.0.0001,id=ccw-fe.0.0001,drive=ccw-fe.0.0001-disk")
        );
        assert!(at("-smp") < at("-blockdev"));
        assert_eq!(args[args.len() - 2], "-append");
    }
}
