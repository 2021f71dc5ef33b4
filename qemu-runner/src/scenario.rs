//! One way of booting the firmware: machine, memory, devices, command line.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Overrides the QEMU binary for every scenario (e.g. a QEMU 10 build).
pub const QEMU_ENV: &str = "ZVTEST_QEMU";

/// QEMU copies at most 0x380 bytes of `-append` into the guest (hw/s390x/ipl.c).
pub const MAX_APPEND_LEN: usize = 0x380 - 1;

/// A boot configuration, built with chained setters:
/// `Scenario::new("big").memory_mib(512).smp(2).append("only=boot.*")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub name: String,
    pub machine: String,
    pub accel: String,
    pub cpu: Option<String>,
    pub memory_mib: u32,
    pub smp: u32,
    /// Values of `-device` options.
    pub devices: Vec<String>,
    /// Further QEMU arguments, passed as they are.
    pub extra_args: Vec<String>,
    /// The firmware's own command-line words (`key=value`).
    pub append: Vec<String>,
    pub timeout: Duration,
    pub qemu: PathBuf,
}

impl Scenario {
    /// The defaults: s390-ccw-virtio, TCG, 128 MiB, one CPU, 60 s, and the QEMU
    /// binary from `ZVTEST_QEMU` or else `qemu-system-s390x` on PATH.
    pub fn new(name: impl Into<String>) -> Self {
        let qemu = std::env::var_os(QEMU_ENV)
            .filter(|q| !q.is_empty())
            .map_or_else(|| PathBuf::from("qemu-system-s390x"), PathBuf::from);
        Scenario {
            name: name.into(),
            machine: "s390-ccw-virtio".into(),
            accel: "tcg".into(),
            cpu: None,
            memory_mib: 128,
            smp: 1,
            devices: Vec::new(),
            extra_args: Vec::new(),
            append: Vec::new(),
            timeout: Duration::from_secs(60),
            qemu,
        }
    }

    pub fn machine(mut self, machine: impl Into<String>) -> Self {
        self.machine = machine.into();
        self
    }

    pub fn accel(mut self, accel: impl Into<String>) -> Self {
        self.accel = accel.into();
        self
    }

    pub fn cpu(mut self, cpu: impl Into<String>) -> Self {
        self.cpu = Some(cpu.into());
        self
    }

    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }

    pub fn smp(mut self, cpus: u32) -> Self {
        self.smp = cpus;
        self
    }

    /// Adds one `-device` value, e.g. `virtio-net-ccw,devno=fe.0.0001`.
    pub fn device(mut self, device: impl Into<String>) -> Self {
        self.devices.push(device.into());
        self
    }

    /// Adds raw QEMU arguments.
    pub fn extra_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds firmware command-line words; a string with spaces is split into words.
    pub fn append(mut self, words: impl AsRef<str>) -> Self {
        self.append
            .extend(words.as_ref().split_whitespace().map(String::from));
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn qemu(mut self, qemu: impl Into<PathBuf>) -> Self {
        self.qemu = qemu.into();
        self
    }

    /// The firmware command line: `expect-mem=<M>M` first, then our words.
    pub fn command_line(&self) -> String {
        let mut words = vec![format!("expect-mem={}M", self.memory_mib)];
        words.extend(self.append.iter().cloned());
        words.join(" ")
    }

    /// Catches what QEMU would only reject (or the guest silently truncate) later.
    pub fn validate(&self) -> Result<(), String> {
        if self.memory_mib == 0 {
            return Err(format!("scenario {}: memory must be > 0 MiB", self.name));
        }
        if self.smp == 0 {
            return Err(format!("scenario {}: smp must be >= 1", self.name));
        }
        if self.timeout.is_zero() {
            return Err(format!("scenario {}: timeout must be > 0", self.name));
        }
        let line = self.command_line();
        if line.len() > MAX_APPEND_LEN {
            return Err(format!(
                "scenario {}: command line is {} bytes, QEMU passes at most {MAX_APPEND_LEN}",
                self.name,
                line.len()
            ));
        }
        Ok(())
    }

    /// QEMU's arguments (without the binary) to boot `kernel`.
    ///
    /// `-no-shutdown` is never passed: with it a failing run would pause
    /// forever instead of exiting 1.
    pub fn qemu_args(&self, kernel: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut add = |words: &[&str]| args.extend(words.iter().map(OsString::from));
        add(&["-machine", &self.machine, "-accel", &self.accel]);
        if let Some(cpu) = &self.cpu {
            add(&["-cpu", cpu]);
        }
        add(&[
            "-nodefaults",
            "-nographic",
            "-chardev",
            "stdio,id=con0",
            "-device",
            "sclpconsole,chardev=con0",
            "-no-reboot",
            "-action",
            "panic=exit-failure",
        ]);
        add(&["-m", &self.memory_mib.to_string()]);
        add(&["-smp", &self.smp.to_string()]);
        for d in &self.devices {
            add(&["-device", d]);
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

    fn strings(args: &[OsString]) -> Vec<&str> {
        args.iter().map(|a| a.to_str().unwrap()).collect()
    }

    #[test]
    fn default_arguments() {
        let s = Scenario::new("default");
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
                "-m",
                "128",
                "-smp",
                "1",
                "-kernel",
                "/k/zvtest.elf",
                "-append",
                "expect-mem=128M",
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
            "expect-mem=512M only=boot.* verbose=1 x=y"
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

    #[test]
    fn validation() {
        assert!(Scenario::new("m").memory_mib(0).validate().is_err());
        assert!(Scenario::new("s").smp(0).validate().is_err());
        assert!(Scenario::new("t")
            .timeout(Duration::ZERO)
            .validate()
            .is_err());
        let long = "x".repeat(MAX_APPEND_LEN);
        let err = Scenario::new("long").append(long).validate().unwrap_err();
        assert!(err.contains("at most"), "{err}");
    }
}
