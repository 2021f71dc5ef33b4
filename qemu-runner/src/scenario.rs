//! One way of booting the firmware: the scenario, built with chained
//! setters and checked by [`Scenario::validate`], and the firmware command
//! line it implies. Its QEMU arguments are in [`crate::qemu_args`], its
//! devices' QEMU set-up in [`crate::devices`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::devices::{model_setup, CcwDevice};
pub use crate::disks::Disk;
use crate::disks::{self, drive_id};
use crate::version::{self, QemuVersion};
use zvtest_contract::cmdline::{self, Config, VirtioConfig};
pub use zvtest_contract::disk::DiskId;
use zvtest_contract::inventory;
pub use zvtest_contract::inventory::{BusId, Entry};

/// Overrides the QEMU binary for every scenario (e.g. a QEMU 10 build).
pub const QEMU_ENV: &str = "ZVTEST_QEMU";

/// A QEMU data directory for every scenario (`-L`): the BIOS and keymaps
/// of a QEMU that is not installed where it was built to look.
pub const QEMU_DATA_ENV: &str = "ZVTEST_QEMU_DATA";

/// The longest `-append` the firmware's image takes: it tells QEMU its
/// parameter area holds [`cmdline::AREA_SIZE`] bytes with the closing NUL
/// (hw/s390x/ipl.c reads the size at 0x10430; without it QEMU allows 0x380).
pub const MAX_APPEND_LEN: usize = cmdline::AREA_SIZE - 1;

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
    /// `-smp N,maxcpus=M`: room for CPUs plugged later.
    pub max_cpus: Option<u32>,
    /// CPUs (core ids) plugged over QMP at the firmware's `cpu plug ready`.
    pub plugged_cpus: Vec<u32>,
    /// Values of `-device` options.
    pub devices: Vec<String>,
    /// Further QEMU arguments, passed as they are.
    pub extra_args: Vec<String>,
    /// The firmware command-line words given with [`Scenario::append`]
    /// (`key=value`), passed as they are after the runner's own: a key the
    /// runner writes too is refused by [`Scenario::validate`].
    pub append: Vec<String>,
    pub timeout: Duration,
    pub qemu: PathBuf,
    /// Channel-subsystem devices present at boot, each with its backends
    /// and its expected inventory entry ([`Scenario::ccw_device`]).
    pub ccw_devices: Vec<CcwDevice>,
    /// What `devices=` tells the firmware to find at boot; `None` leaves
    /// the word out (the firmware then skips `css.inventory`).
    pub expected_devices: Option<Vec<Entry>>,
    /// Hot plug and unplug over QMP once the firmware is ready.
    pub hotplug: Vec<HotplugStep>,
    /// QMP commands sent when console lines appear ([`Scenario::qmp_on_line`]).
    pub line_commands: Vec<LineCommand>,
    /// A synthetic legacy s390-virtio device page loaded into guest memory.
    pub legacy_page: Option<LegacyPage>,
    /// What `qemu-version=` tells the firmware: by default the version
    /// of [`Scenario::qemu`], asked when the scenario runs.
    pub qemu_version: VersionWord,
    /// QEMU's data directory (`-L`), from `ZVTEST_QEMU_DATA` by default.
    pub data_dir: Option<PathBuf>,
    /// The diag288 watchdog: device, action and `diag288=` word.
    pub diag288: Option<Diag288>,
    /// What `balloon-pages=` tells the firmware: the balloon's size in
    /// 4 KiB pages after each config-change ready line.
    pub balloon_pages: Option<[u32; 2]>,
    /// Keep a QMP connection for the whole run and record QEMU's events
    /// ([`crate::Run::qmp_events`]); on for `Diag288::Expire`.
    pub qmp_events: bool,
    /// Use the SCLP line-mode console (EBCDIC messages, as z/VM and LPAR
    /// operators see them) instead of the VT220 one.
    pub line_mode_console: bool,
    /// What `seed=` tells the firmware (None: the firmware's default);
    /// the scratch images are made for it too ([`Scenario::disk_seed`]).
    pub seed: Option<u64>,
    /// Disks on fresh scratch images ([`Scenario::scratch_blk`],
    /// [`Scenario::scratch_scsi`]), verified byte by byte after the run.
    pub disks: Vec<(DiskId, Disk)>,
    /// Where the runner makes their images; by default a fresh directory
    /// under the temp directory, removed once every image verified clean.
    pub disk_dir: Option<PathBuf>,
    /// Mistakes made while building (a malformed bus id, ...); reported
    /// by [`Scenario::validate`].
    pub errors: Vec<String>,
    /// Programs of the runner at the host end of devices
    /// ([`Scenario::peer`]), heard in the verdict.
    pub peers: Vec<crate::peers::PeerRef>,
    /// What `nets=` tells the firmware of each net device ([`crate::net`]).
    pub nets: Vec<zvtest_contract::net::NetConfig>,
    /// What `shares=` tells the firmware (9p, virtio-fs), and whether
    /// `scratch=` names each ([`Scenario::share`]).
    pub shares: Vec<(zvtest_contract::share::ShareConfig, bool)>,
    /// Guest RAM on a shared memory back-end (`memory-backend-memfd`,
    /// `share=on`): what a vhost-user device's back-end process maps.
    pub shared_memory: bool,
}

/// Where the firmware's `qemu-version=` word comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionWord {
    /// The version of the scenario's QEMU, from `<qemu> --version` when it
    /// runs (once per binary); a QEMU whose version cannot be told fails
    /// the run.
    Detect,
    /// This version, whatever QEMU runs (to test a wrong claim).
    Claim(QemuVersion),
    /// No word: the firmware skips its version-dependent checks.
    Omit,
}

/// The s390x diag288 watchdog, as the firmware's `diag288=` word says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Diag288 {
    /// No device; the firmware expects DIAG 0x288 to be refused.
    Absent,
    /// `-device diag288`; start and cancel must complete.
    Present,
    /// `-device diag288` and `-action watchdog=inject-nmi`: the firmware
    /// also lets a 15 s watchdog expire (`hcall.diag288.expiry`) and waits
    /// for the restart interrupt; the runner watches QMP for the
    /// `WATCHDOG` event and fails the run without it.
    Expire,
}

impl Diag288 {
    /// The value of the firmware's `diag288=`.
    pub fn word(self) -> &'static str {
        match self {
            Diag288::Absent => "absent",
            Diag288::Present => "present",
            Diag288::Expire => "expire",
        }
    }
}

/// One hot-plug step, performed over QMP after the firmware printed
/// `# zvtest: hotplug ready`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HotplugStep {
    /// `device_add` of this device (its backends exist from boot).
    Add(CcwDevice),
    /// `device_del` of the device with this QEMU id, then wait for its
    /// `DEVICE_DELETED` event.
    Remove { id: String },
}

/// A QMP command sent, once, the first time a console line appears
/// ([`Scenario::qmp_on_line`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineCommand {
    /// The console line, compared with each console line with surrounding
    /// whitespace trimmed from both.
    pub line: String,
    /// One QMP command as JSON text, `{"execute": NAME, ...}`.
    pub command: String,
}

impl LineCommand {
    /// The command's `execute` member; the error says what is wrong with
    /// the command or the line.
    pub fn execute(&self) -> Result<String, String> {
        if self.line.trim().is_empty() {
            return Err(format!("QMP command {}: empty console line", self.command));
        }
        let v: serde_json::Value = serde_json::from_str(&self.command)
            .map_err(|e| format!("QMP command {}: not JSON: {e}", self.command))?;
        match v.get("execute").and_then(serde_json::Value::as_str) {
            Some(name) if !name.is_empty() => Ok(name.to_string()),
            _ => Err(format!(
                "QMP command {}: not an object with an \"execute\" string",
                self.command
            )),
        }
    }

    /// The command as sent: on one line (valid JSON has no line breaks
    /// inside its strings, so this changes only whitespace).
    pub fn wire(&self) -> String {
        self.command.trim().replace(['\n', '\r'], " ")
    }

    /// How failure reasons name it: `{"execute": ...} on '<line>'`.
    pub fn describe(&self) -> String {
        format!("{} on '{}'", self.wire(), self.line.trim())
    }
}

/// A legacy s390-virtio device page in a file, loaded raw at `addr`, and
/// the devices the firmware should find on it (`name`, `num_vq`), in page order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyPage {
    pub file: PathBuf,
    pub addr: u64,
    pub devices: Vec<(String, u32)>,
}

impl Scenario {
    /// The defaults: s390-ccw-virtio, TCG, 128 MiB, one CPU, 60 s, the QEMU
    /// binary from `ZVTEST_QEMU` or else `qemu-system-s390x` on PATH, its
    /// data directory from `ZVTEST_QEMU_DATA` (else none), and its version
    /// detected for `qemu-version=`.
    pub fn new(name: impl Into<String>) -> Self {
        let env = |var| std::env::var_os(var).filter(|v| !v.is_empty());
        let qemu = env(QEMU_ENV).map_or_else(|| PathBuf::from("qemu-system-s390x"), PathBuf::from);
        Scenario {
            name: name.into(),
            machine: "s390-ccw-virtio".into(),
            accel: "tcg".into(),
            cpu: None,
            memory_mib: 128,
            smp: 1,
            max_cpus: None,
            plugged_cpus: Vec::new(),
            devices: Vec::new(),
            extra_args: Vec::new(),
            append: Vec::new(),
            timeout: Duration::from_secs(60),
            qemu,
            ccw_devices: Vec::new(),
            expected_devices: None,
            hotplug: Vec::new(),
            line_commands: Vec::new(),
            legacy_page: None,
            qemu_version: VersionWord::Detect,
            data_dir: env(QEMU_DATA_ENV).map(PathBuf::from),
            diag288: None,
            balloon_pages: None,
            qmp_events: false,
            line_mode_console: false,
            seed: None,
            disks: Vec::new(),
            disk_dir: None,
            errors: Vec::new(),
            peers: Vec::new(),
            nets: Vec::new(),
            shares: Vec::new(),
            shared_memory: false,
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

    /// Room for `max` CPUs, and `cores` (core ids, the CPU addresses)
    /// plugged with QMP `device_add` when the firmware prints
    /// `# zvtest: cpu plug ready`; the firmware is told `cpu-plug=<count>`
    /// and must find and start each (`smp.hotplug`).
    pub fn plug_cpus(mut self, max: u32, cores: &[u32]) -> Self {
        self.max_cpus = Some(max);
        let model = self.cpu.clone().unwrap_or_else(|| "qemu".into());
        for &core in cores {
            self.plugged_cpus.push(core);
            let cmd = format!(
                r#"{{"execute":"device_add","arguments":{{"driver":"{model}-s390x-cpu","id":"cpu{core}","core-id":{core}}}}}"#
            );
            self = self.qmp_on_line(zvtest_contract::checks::markers::CPU_PLUG_READY, &cmd);
        }
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

    /// Adds firmware command-line words; a string with spaces is split into
    /// words. They come after the words the runner writes, unchecked (so
    /// that a scenario can give the firmware a line it must refuse), but a
    /// key the runner writes itself is an error (see [`Scenario::validate`]).
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

    /// QEMU's data directory (`-L dir`), e.g. `<root>/usr/share/qemu` of a
    /// QEMU unpacked from a package (the field set to `None` gives QEMU's
    /// own default).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Where `qemu-version=` comes from (default [`VersionWord::Detect`]).
    pub fn qemu_version(mut self, word: VersionWord) -> Self {
        self.qemu_version = word;
        self
    }

    /// Tells the firmware `qemu-version=<version>` (`"10.0"`), whatever
    /// QEMU runs; a malformed version is reported by [`Scenario::validate`].
    pub fn claim_qemu_version(mut self, version: &str) -> Self {
        match version.parse() {
            Ok(v) => self.qemu_version = VersionWord::Claim(v),
            Err(e) => self.errors.push(format!("qemu version: {e}")),
        }
        self
    }

    /// The diag288 watchdog: [`Diag288::Present`] adds `-device diag288`,
    /// [`Diag288::Expire`] also `-action watchdog=inject-nmi` and QMP
    /// event watching; every mode puts `diag288=<mode>` on the command line.
    pub fn diag288(mut self, mode: Diag288) -> Self {
        self.diag288 = Some(mode);
        if mode == Diag288::Expire {
            self.qmp_events = true;
        }
        self
    }

    /// Tells the firmware `balloon-pages=<after_classic>,<after_adapter>`:
    /// the balloon sizes (4 KiB pages) the host sets after each of the
    /// firmware's config-change ready lines (`virtio.config-change` waits
    /// for them; the scenario sends the QMP commands that set them).
    pub fn balloon_pages(mut self, after_classic: u32, after_adapter: u32) -> Self {
        self.balloon_pages = Some([after_classic, after_adapter]);
        self
    }

    /// A peer at the host end of a device's back-end: it binds before
    /// QEMU starts, adds the back-end's arguments, sees the console lines
    /// and its findings join the verdict ([`crate::peers`]).
    pub fn peer(mut self, spec: impl crate::peers::PeerSpec + 'static) -> Self {
        self.peers
            .push(crate::peers::PeerRef(std::sync::Arc::new(spec)));
        self
    }

    /// Tells the firmware of a share (`shares=`), and names it in
    /// `scratch=` where the firmware may write to it.
    pub fn share(mut self, config: zvtest_contract::share::ShareConfig, scratch: bool) -> Self {
        self.shares.push((config, scratch));
        self
    }

    /// Guest RAM on a shared memory back-end (see the field).
    pub fn shared_memory(mut self, on: bool) -> Self {
        self.shared_memory = on;
        self
    }

    /// Tells the firmware `seed=<seed>`; the scratch images are made for it.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The seed the scratch images are made for: the firmware's, whether
    /// [`Scenario::seed`] or a `seed=` word of [`Scenario::append`] gives
    /// it (`cargo xtask run seed=7`), else the firmware's default.
    pub fn disk_seed(&self) -> u64 {
        let appended = self
            .append
            .iter()
            .filter_map(|w| w.strip_prefix("seed="))
            .find_map(disks::parse_seed);
        appended
            .or(self.seed)
            .unwrap_or_else(|| Config::default().seed)
    }

    /// A virtio-blk device at `bus` on a fresh scratch image (header and
    /// pattern A, made by the runner before QEMU starts):
    /// `.scratch_blk("fe.0.0001", 64 << 20)` or with a [`Disk`] built with
    /// options, `.scratch_blk("fe.0.0002", Disk::new(1 << 20).block_size(4096))`.
    /// The device is expected in `devices=` as `blk`, the disk in
    /// `disks=` and (unless read-only or a user disk) `scratch=`; after
    /// the run every byte of the image is verified.
    pub fn scratch_blk(mut self, bus: &str, disk: impl Into<Disk>) -> Self {
        let disk = disk.into();
        let bus: BusId = match bus.parse() {
            Ok(b) => b,
            Err(e) => {
                self.errors.push(format!("scratch blk: {e}"));
                return self;
            }
        };
        let id = DiskId { bus, lun: None };
        let mut dev = CcwDevice::new("virtio-blk-ccw", bus, "blk");
        dev.backend_args.clear(); // the -drive comes from the disk
        dev.properties = blk_properties(&id, &disk);
        self.expected_devices
            .get_or_insert_with(Vec::new)
            .push(dev.entry());
        self.ccw_devices.push(dev);
        self.disks.push((id, disk));
        self
    }

    /// A SCSI disk (QEMU `scsi-hd`) at `target`/`lun` of the virtio-scsi
    /// controller at `controller`, on a fresh scratch image as
    /// [`Scenario::scratch_blk`]; the controller (`virtio-scsi-ccw`,
    /// expected as `scsi`) is added with the first of its disks unless the
    /// scenario has it already. Vendor and product stay QEMU's.
    pub fn scratch_scsi(
        mut self,
        controller: &str,
        target: u8,
        lun: u16,
        disk: impl Into<Disk>,
    ) -> Self {
        let disk = disk.into();
        let bus: BusId = match controller.parse() {
            Ok(b) => b,
            Err(e) => {
                self.errors.push(format!("scratch scsi: {e}"));
                return self;
            }
        };
        let blk_only = disk.blk_only_properties();
        if !blk_only.is_empty() {
            self.errors.push(format!(
                "scratch scsi {bus}/{target}/{lun}: {} belong to the controller, not a LUN",
                blk_only.join(", ")
            ));
        }
        match self.ccw_devices.iter().find(|d| d.bus == bus) {
            Some(d) if d.model == "virtio-scsi-ccw" => {}
            Some(d) => self.errors.push(format!(
                "scratch scsi {bus}/{target}/{lun}: the device at {bus} is {}, not virtio-scsi-ccw",
                d.model
            )),
            None => self = self.ccw_device("virtio-scsi-ccw", controller, "scsi"),
        }
        self.disks.push((
            DiskId {
                bus,
                lun: Some((target, lun)),
            },
            disk,
        ));
        self
    }

    /// Where the runner makes the scratch images (kept after the run).
    pub fn disk_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.disk_dir = Some(dir.into());
        self
    }

    /// The image of disk `id`, in [`Scenario::disk_dir`] (or, before
    /// [`crate::run()`] picked one, a per-process temp directory).
    pub fn disk_image(&self, id: &DiskId) -> PathBuf {
        self.disk_dir
            .clone()
            .unwrap_or_else(|| default_disk_dir(&self.name, None))
            .join(disks::image_name(id))
    }

    /// QEMU arguments of the disks: their `-drive`s ...
    pub(crate) fn drive_args(&self) -> Vec<std::ffi::OsString> {
        let mut args = Vec::new();
        for (id, disk) in &self.disks {
            let injection = disk.injection_keys();
            // Under blkdebug the image is the injecting node's child.
            let mut v = std::ffi::OsString::from(if injection.is_empty() {
                "file="
            } else {
                "file.image.driver=file,file.image.filename="
            });
            v.push(self.disk_image(id).to_string_lossy().replace(',', ",,"));
            v.push(format!(
                ",if=none,id={},format=raw,cache=writeback",
                drive_id(id)
            ));
            for k in injection {
                v.push(",");
                v.push(k);
            }
            if disk.read_only {
                v.push(",readonly=on");
            }
            args.push("-drive".into());
            args.push(v);
        }
        args
    }

    /// ... and the `scsi-hd` devices on their controllers' buses (after
    /// the controllers).
    pub(crate) fn scsi_disk_args(&self) -> Vec<std::ffi::OsString> {
        let mut args = Vec::new();
        for (id, disk) in &self.disks {
            let Some((target, lun)) = id.lun else {
                continue;
            };
            let mut v = format!(
                "scsi-hd,bus={}.0,scsi-id={target},lun={lun},drive={},id={}-hd",
                CcwDevice::default_id(id.bus),
                drive_id(id),
                drive_id(id)
            );
            for (k, val) in block_properties(disk) {
                v.push_str(&format!(",{k}={val}"));
            }
            args.push("-device".into());
            args.push(v.into());
        }
        args
    }

    /// Boots with the SCLP line-mode console instead of the VT220 one.
    pub fn line_mode_console(mut self, on: bool) -> Self {
        self.line_mode_console = on;
        self
    }

    /// Records QEMU's QMP events for the whole run.
    pub fn qmp_events(mut self, on: bool) -> Self {
        self.qmp_events = on;
        self
    }

    /// The scenario as it runs: with [`VersionWord::Detect`] replaced by
    /// the claim of the version `<qemu> --version` reports (asked once per
    /// binary). The error names the binary and what it printed.
    pub fn resolve_qemu_version(&self) -> Result<Scenario, String> {
        let mut s = self.clone();
        if s.qemu_version == VersionWord::Detect {
            let v = version::detect(&s.qemu).map_err(|e| {
                format!(
                    "scenario {}: {e}; the firmware's qemu-version= needs it (claim one \
                     with Scenario::claim_qemu_version or qemu-runner --qemu-version X.Y, \
                     or leave it out with VersionWord::Omit or --qemu-version none)",
                    s.name
                )
            })?;
            s.qemu_version = VersionWord::Claim(v);
        }
        Ok(s)
    }

    /// The version the command line claims, once known.
    pub fn claimed_qemu_version(&self) -> Option<QemuVersion> {
        match self.qemu_version {
            VersionWord::Claim(v) => Some(v),
            VersionWord::Detect | VersionWord::Omit => None,
        }
    }

    /// Adds a channel-subsystem device of `model` at bus id `bus`
    /// (`fe.0.0002`) with the QEMU id [`CcwDevice::default_id`] and the
    /// backends the model needs, and expects it in the inventory as `name`:
    /// the command line then carries `devices=` with every expected entry.
    /// A malformed bus id is reported by [`Scenario::validate`].
    pub fn ccw_device(mut self, model: &str, bus: &str, name: &str) -> Self {
        match bus.parse() {
            Ok(bus) => {
                let dev = CcwDevice::new(model, bus, name);
                self.expected_devices
                    .get_or_insert_with(Vec::new)
                    .push(dev.entry());
                self.ccw_devices.push(dev);
            }
            Err(e) => self.errors.push(format!("device {model}: {e}")),
        }
        self
    }

    /// [`Scenario::ccw_device`] for a virtio model:
    /// `.virtio_ccw("virtio-rng-ccw", "fe.0.0002", "rng")`.
    pub fn virtio_ccw(self, model: &str, bus: &str, name: &str) -> Self {
        self.ccw_device(model, bus, name)
    }

    /// Expects an inventory entry without adding a device (to test a
    /// wrong expectation, or a device added with [`Scenario::device`]).
    pub fn expect_device(mut self, bus: &str, name: &str) -> Self {
        match bus.parse() {
            Ok(bus) => self
                .expected_devices
                .get_or_insert_with(Vec::new)
                .push(Entry {
                    bus,
                    name: name.into(),
                }),
            Err(e) => self.errors.push(format!("expected device {name}: {e}")),
        }
        self
    }

    /// Makes the command line say `devices=none` unless devices are added.
    pub fn expect_no_devices(mut self) -> Self {
        self.expected_devices.get_or_insert_with(Vec::new);
        self
    }

    /// A hot-plug step: `device_add` of `model` at `bus` (QEMU id
    /// [`CcwDevice::default_id`]); the firmware is told to expect `+bus:name`.
    pub fn hot_plug(mut self, model: &str, bus: &str, name: &str) -> Self {
        match bus.parse() {
            Ok(bus) => self
                .hotplug
                .push(HotplugStep::Add(CcwDevice::new(model, bus, name))),
            Err(e) => self.errors.push(format!("hot plug {model}: {e}")),
        }
        self
    }

    /// A hot-unplug step: `device_del` of the device with QEMU id `id`
    /// (added at boot or by an earlier step); the firmware is told to
    /// expect `-bus:name` of that device.
    pub fn hot_unplug(mut self, id: &str) -> Self {
        self.hotplug.push(HotplugStep::Remove { id: id.into() });
        self
    }

    /// Sends `command_json` (one QMP command, `{"execute": ...}`) over QMP
    /// the first time the console shows `line` (compared without
    /// surrounding whitespace); later appearances send nothing. Commands
    /// run in the order their lines appear, those of one line in the order
    /// added (after the hot-plug steps when `line` is
    /// [`markers::HOTPLUG_READY`](zvtest_contract::checks::markers::HOTPLUG_READY)).
    /// A command that QEMU answers with an
    /// error, or does not answer within [`crate::qmp::TIMEOUT`], and one
    /// whose line never appears, fails the run with a reason naming it.
    /// Malformed JSON is reported by [`Scenario::validate`].
    ///
    /// `.qmp_on_line("# zvtest: config-change ready",
    /// r#"{"execute": "balloon", "arguments": {"value": 67108864}}"#)`
    pub fn qmp_on_line(mut self, line: &str, command_json: &str) -> Self {
        self.line_commands.push(LineCommand {
            line: line.trim().to_string(),
            command: command_json.to_string(),
        });
        self
    }

    /// Loads `file` (a legacy s390-virtio device page) raw at guest address
    /// `addr` and tells the firmware `ram-end=<addr>` and
    /// `legacy-devices=<name:num_vq,...>` (or `none`).
    pub fn legacy_page(
        mut self,
        file: impl Into<PathBuf>,
        addr: u64,
        devices: &[(&str, u32)],
    ) -> Self {
        self.legacy_page = Some(LegacyPage {
            file: file.into(),
            addr,
            devices: devices.iter().map(|(n, q)| (n.to_string(), *q)).collect(),
        });
        self
    }

    /// The `devices=` entries, sorted as the firmware sorts its inventory.
    pub fn expected_device_list(&self) -> Option<Vec<Entry>> {
        let mut list = self.expected_devices.clone()?;
        list.sort();
        Some(list)
    }

    /// The hot-plug steps as the firmware's `hotplug=` items, `+fe.0.0007:rng`
    /// and `-fe.0.0001:blk` (`true` for a plug), in step order; an error
    /// names a step that removes an unknown id, adds a second device at one
    /// bus id, or reuses a QEMU id.
    pub fn hotplug_changes(&self) -> Result<Vec<(bool, Entry)>, String> {
        let mut present: BTreeMap<&str, &CcwDevice> = BTreeMap::new();
        for d in &self.ccw_devices {
            if present.insert(d.id.as_str(), d).is_some() {
                return Err(format!("two devices with QEMU id {}", d.id));
            }
        }
        let mut changes = Vec::new();
        for (i, step) in self.hotplug.iter().enumerate() {
            match step {
                HotplugStep::Add(d) => {
                    if present.values().any(|p| p.bus == d.bus) {
                        return Err(format!(
                            "hot-plug step {}: bus id {} is taken",
                            i + 1,
                            d.bus
                        ));
                    }
                    if present.insert(d.id.as_str(), d).is_some() {
                        return Err(format!(
                            "hot-plug step {}: QEMU id {} is taken",
                            i + 1,
                            d.id
                        ));
                    }
                    changes.push((true, d.entry()));
                }
                HotplugStep::Remove { id } => match present.remove(id.as_str()) {
                    Some(d) => changes.push((false, d.entry())),
                    None => {
                        return Err(format!(
                            "hot-plug step {}: no device with QEMU id '{id}' to remove",
                            i + 1
                        ))
                    }
                },
            }
        }
        Ok(changes)
    }

    /// What the runner tells the firmware, as the firmware's own
    /// configuration: `expect-mem` and `expect-cpus` from memory and CPUs,
    /// `qemu-version` (once known: [`VersionWord::Detect`] is filled in by
    /// [`Scenario::resolve_qemu_version`], which [`crate::run()`] calls),
    /// `diag288`, `balloon-pages`, and what the devices imply: `devices`
    /// (virtio devices with `:revN` and `:packed` where their properties
    /// set `max_revision=N` or `packed=on`), `hotplug`, `ram-end` and
    /// `legacy-devices`. What is invalid (see [`Scenario::validate`]) is
    /// left out rather than guessed.
    pub fn firmware_config(&self) -> Config {
        let mut c = Config {
            expect_mem: Some(u64::from(self.memory_mib) << 20),
            expect_cpus: u16::try_from(self.smp).ok(),
            cpu_plug: u16::try_from(self.plugged_cpus.len())
                .ok()
                .filter(|&n| n > 0),
            qemu_version: self.claimed_qemu_version().map(|v| (v.major, v.minor)),
            balloon_pages: self.balloon_pages,
            ..Config::default()
        };
        if let Some(mode) = self.diag288 {
            c.diag288 = Some(mode != Diag288::Absent);
            c.diag288_expire = mode == Diag288::Expire;
        }
        if let Some(list) = self.expected_device_list() {
            c.virtio = list
                .iter()
                .filter_map(|e| self.virtio_config(e.bus))
                .collect();
            c.devices = Some(list);
        }
        if let Ok(changes) = self.hotplug_changes() {
            c.hotplug = changes;
        }
        if let Some(seed) = self.seed {
            c.seed = seed;
        }
        c.disks = self.disks.iter().map(|(id, d)| d.config(*id)).collect();
        c.nets = self.nets.clone();
        c.scratch = self
            .disks
            .iter()
            .filter(|(_, d)| d.scratch)
            .map(|(id, _)| *id)
            .collect();
        c.shares = self.shares.iter().map(|(s, _)| s.clone()).collect();
        c.scratch.extend(
            self.shares
                .iter()
                .filter(|(_, scratch)| *scratch)
                .map(|(s, _)| DiskId {
                    bus: s.bus,
                    lun: None,
                }),
        );
        if let Some(page) = &self.legacy_page {
            c.ram_end = Some(page.addr);
            c.legacy_devices = page
                .devices
                .iter()
                .map(|(n, q)| Some((n.clone(), u8::try_from(*q).ok()?)))
                .collect();
        }
        c
    }

    /// How the firmware is to hold the device at `bus`, where its
    /// properties say more than QEMU's defaults: `packed=on` (or `true`, `yes`),
    /// `max_revision=0`, `1` or `2`. A property given twice counts as QEMU
    /// takes it: the last.
    fn virtio_config(&self, bus: BusId) -> Option<(BusId, VirtioConfig)> {
        let d = self.ccw_devices.iter().find(|d| d.bus == bus)?;
        let last = |key: &str| d.properties.iter().rev().find(|(k, _)| k == key);
        let mut config = VirtioConfig::default();
        let mut said = false;
        if let Some((_, v)) = last("packed") {
            config.packed = matches!(v.as_str(), "on" | "true" | "yes");
            said |= config.packed;
        }
        if let Some((_, r @ ("0" | "1" | "2"))) = last("max_revision").map(|(k, v)| (k, v.as_str()))
        {
            config.max_revision = r.as_bytes()[0] - b'0';
            said = true;
        }
        said.then_some((bus, config))
    }

    /// The firmware command line: the words of [`Scenario::firmware_config`]
    /// (in the order [`cmdline::words`] gives), then the scenario's own
    /// words ([`Scenario::append`]).
    pub fn command_line(&self) -> String {
        let mut words = cmdline::words(&self.firmware_config());
        words.extend(self.append.iter().cloned());
        words.join(" ")
    }

    /// Catches what QEMU would only reject (or the guest silently truncate) later.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err(format!(
                "scenario {:?}: the name must not be empty (it names logs and reports)",
                self.name
            ));
        }
        if self.memory_mib == 0 {
            return Err(format!("scenario {}: memory must be > 0 MiB", self.name));
        }
        if self.smp == 0 {
            return Err(format!("scenario {}: smp must be >= 1", self.name));
        }
        if u16::try_from(self.smp).is_err() {
            return Err(format!(
                "scenario {}: smp must be at most 65535 (expect-cpus=)",
                self.name
            ));
        }
        if self.timeout.is_zero() {
            return Err(format!("scenario {}: timeout must be > 0", self.name));
        }
        if let Some(e) = self.errors.first() {
            return Err(format!("scenario {}: {e}", self.name));
        }
        let mut names: Vec<&str> = Vec::new();
        if let Some(list) = &self.expected_devices {
            names.extend(list.iter().map(|e| e.name.as_str()));
        }
        for step in &self.hotplug {
            if let HotplugStep::Add(d) = step {
                names.push(&d.name);
            }
        }
        if let Some(page) = &self.legacy_page {
            names.extend(page.devices.iter().map(|(n, _)| n.as_str()));
        }
        if let Some(bad) = names.iter().find(|n| !inventory::valid_name(n)) {
            return Err(format!(
                "scenario {}: device name '{bad}' is not letters, digits and '-'",
                self.name
            ));
        }
        if let Some(list) = self.expected_device_list() {
            if let Some(w) = list.windows(2).find(|w| w[0].bus == w[1].bus) {
                return Err(format!(
                    "scenario {}: two devices expected at {}",
                    self.name, w[0].bus
                ));
            }
        }
        self.hotplug_changes()
            .map_err(|e| format!("scenario {}: {e}", self.name))?;
        for c in &self.line_commands {
            c.execute()
                .map_err(|e| format!("scenario {}: {e}", self.name))?;
        }
        if let Some(page) = &self.legacy_page {
            if let Some((name, q)) = page.devices.iter().find(|(_, q)| *q > u32::from(u8::MAX)) {
                return Err(format!(
                    "scenario {}: legacy device {name} has {q} queues, a device page at most {}",
                    self.name,
                    u8::MAX
                ));
            }
            if page.file.to_string_lossy().contains(',') {
                return Err(format!(
                    "scenario {}: legacy page file {} has a comma (QEMU option syntax)",
                    self.name,
                    page.file.display()
                ));
            }
        }
        let mut ids: Vec<DiskId> = Vec::new();
        for (id, disk) in &self.disks {
            if let Some(why) = disk.problem() {
                return Err(format!("scenario {}: disk {id}: {why}", self.name));
            }
            if ids.contains(id) {
                return Err(format!("scenario {}: two disks at {id}", self.name));
            }
            ids.push(*id);
        }
        self.check_own_words()?;
        // Room for the word a detected version adds when the scenario runs.
        let reserve = match self.qemu_version {
            VersionWord::Detect => 1 + QemuVersion::new(u16::MAX, u16::MAX).word().len(),
            VersionWord::Claim(_) | VersionWord::Omit => 0,
        };
        let len = self.command_line().len() + reserve;
        if len > MAX_APPEND_LEN {
            return Err(format!(
                "scenario {}: command line is {len} bytes, QEMU passes at most {MAX_APPEND_LEN}",
                self.name,
            ));
        }
        Ok(())
    }

    /// A key of the scenario's own words that the runner writes too: the
    /// firmware refuses a key given twice, so it is caught here, naming both.
    fn check_own_words(&self) -> Result<(), String> {
        let made = cmdline::words(&self.firmware_config());
        let key = |w: &str| w.split_once('=').map(|(k, _)| k.to_string());
        for word in &self.append {
            let Some(k) = key(word) else { continue };
            if let Some(ours) = made.iter().find(|m| key(m).as_ref() == Some(&k)) {
                return Err(format!(
                    "scenario {}: '{word}' gives {k}= again: the runner writes '{ours}' \
                     from the scenario's settings (the firmware refuses a key given twice)",
                    self.name
                ));
            }
        }
        Ok(())
    }
}

/// Block sizes and serial, as both virtio-blk and scsi-hd spell them.
fn block_properties(disk: &Disk) -> Vec<(String, String)> {
    let mut p = Vec::new();
    if disk.logical_block_size != 512 {
        p.push((
            "logical_block_size".into(),
            disk.logical_block_size.to_string(),
        ));
    }
    if let Some(b) = disk.physical_block_size {
        p.push(("physical_block_size".into(), b.to_string()));
    }
    if let Some(s) = &disk.serial {
        p.push(("serial".into(), s.clone()));
    }
    p
}

/// A virtio-blk device's properties for `disk`: its drive, then what
/// [`Scenario::firmware_config`] reads back for `devices=` (`packed`,
/// `max_revision`) and the rest.
fn blk_properties(id: &DiskId, disk: &Disk) -> Vec<(String, String)> {
    let mut p = vec![("drive".to_string(), drive_id(id))];
    p.extend(block_properties(disk));
    if let Some(n) = disk.queues {
        p.push(("num-queues".into(), n.to_string()));
    }
    if let Some(n) = disk.queue_size {
        p.push(("queue-size".into(), n.to_string()));
    }
    if disk.packed {
        p.push(("packed".into(), "on".into()));
    }
    if let Some(r) = disk.max_revision {
        p.push(("max_revision".into(), r.to_string()));
    }
    if disk.in_order {
        p.push(("in_order".into(), "on".into()));
    }
    if disk.injects() {
        // One request per failing read: merged, its neighbours would fail too.
        p.push(("request-merging".into(), "off".into()));
    }
    p
}

/// A scenario name as a file name: letters, digits, `-` and `_` kept,
/// anything else `_`.
pub(crate) fn file_name_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `<tmp>/zvtest-disks/<name>-<pid>[-<n>]`: the images of one run.
pub(crate) fn default_disk_dir(name: &str, n: Option<usize>) -> PathBuf {
    let safe = file_name_safe(name);
    let leaf = match n {
        Some(n) => format!("{safe}-{}-{n}", std::process::id()),
        None => format!("{safe}-{}", std::process::id()),
    };
    std::env::temp_dir().join("zvtest-disks").join(leaf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disks::ENOSPC;
    use std::ffi::OsString;
    use std::path::Path;

    fn strings(args: &[OsString]) -> Vec<&str> {
        args.iter().map(|a| a.to_str().unwrap()).collect()
    }

    #[test]
    fn version_words() {
        let s = Scenario::new("v").append("only=hcall");
        assert_eq!(s.qemu_version, VersionWord::Detect);
        // Not known until the scenario runs.
        assert_eq!(s.command_line(), "expect-mem=128M expect-cpus=1 only=hcall");
        assert_eq!(s.claimed_qemu_version(), None);
        let s = s.claim_qemu_version("10.0");
        assert_eq!(s.qemu_version, VersionWord::Claim(QemuVersion::new(10, 0)));
        assert_eq!(
            s.command_line(),
            "expect-mem=128M expect-cpus=1 qemu-version=10.0 only=hcall"
        );
        // A claim needs no QEMU to resolve.
        let r = s.clone().qemu("/nonexistent/qemu").resolve_qemu_version();
        assert_eq!(r.map(|r| r.command_line()), Ok(s.command_line()));
        let s = s.qemu_version(VersionWord::Omit).qemu("/nonexistent/qemu");
        assert_eq!(s.command_line(), "expect-mem=128M expect-cpus=1 only=hcall");
        assert_eq!(
            s.resolve_qemu_version().unwrap().qemu_version,
            VersionWord::Omit
        );
        let e = Scenario::new("bad")
            .claim_qemu_version("ten")
            .validate()
            .unwrap_err();
        assert!(e.contains("scenario bad: qemu version: 'ten'"), "{e}");
    }

    #[test]
    fn failed_detection_fails_with_the_reason() {
        let e = Scenario::new("nov")
            .qemu("/nonexistent/qemu-system-s390x")
            .resolve_qemu_version()
            .unwrap_err();
        assert!(
            e.starts_with(
                "scenario nov: cannot tell the version of QEMU /nonexistent/qemu-system-s390x"
            ),
            "{e}"
        );
        assert!(e.contains("qemu-version="), "{e}");
    }

    #[test]
    fn detection_leaves_room_on_the_command_line() {
        // Fits only without the word a detected version adds.
        let words = "x".repeat(MAX_APPEND_LEN - "expect-mem=128M expect-cpus=1 ".len());
        let s = Scenario::new("full").append(&words);
        assert!(s.validate().unwrap_err().contains("at most"));
        assert_eq!(s.qemu_version(VersionWord::Omit).validate(), Ok(()));
    }

    #[test]
    fn diag288_modes() {
        let args_of = |mode: Option<Diag288>| {
            let mut s = Scenario::new("wd").claim_qemu_version("7.2");
            s.data_dir = None;
            if let Some(m) = mode {
                s = s.diag288(m);
            }
            let line = s.command_line();
            let args: Vec<String> = s
                .qemu_args(Path::new("k"))
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            (line, args.join(" "), s.qmp_events)
        };
        let (line, args, events) = args_of(None);
        assert_eq!(line, "expect-mem=128M expect-cpus=1 qemu-version=7.2");
        assert!(!args.contains("diag288") && !args.contains("watchdog"));
        assert!(!events);
        let (line, args, events) = args_of(Some(Diag288::Absent));
        assert_eq!(
            line,
            "expect-mem=128M expect-cpus=1 qemu-version=7.2 diag288=absent"
        );
        assert!(!args.contains("-device diag288"));
        assert!(!events);
        let (line, args, events) = args_of(Some(Diag288::Present));
        assert_eq!(
            line,
            "expect-mem=128M expect-cpus=1 qemu-version=7.2 diag288=present"
        );
        assert!(args.contains("-device diag288 "), "{args}");
        assert!(!args.contains("watchdog"), "{args}");
        assert!(!events);
        let (line, args, events) = args_of(Some(Diag288::Expire));
        assert_eq!(
            line,
            "expect-mem=128M expect-cpus=1 qemu-version=7.2 diag288=expire"
        );
        assert!(
            args.contains("-device diag288 -action watchdog=inject-nmi"),
            "{args}"
        );
        // The panic action stays.
        assert!(args.contains("-action panic=exit-failure"), "{args}");
        assert!(events, "expire watches for the WATCHDOG event");
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

    #[test]
    fn expectations_without_devices() {
        assert!(!Scenario::new("none").command_line().contains("devices="));
        assert_eq!(
            Scenario::new("none").expect_no_devices().command_line(),
            "expect-mem=128M expect-cpus=1 devices=none"
        );
        // A raw -device is not expected; expect_device claims without adding.
        let s = Scenario::new("wrong")
            .append("only=css.*")
            .device("virtio-rng-ccw,devno=fe.0.0003")
            .virtio_ccw("virtio-blk-ccw", "fe.0.0001", "blk")
            .expect_device("fe.0.0009", "rng");
        // The scenario's own words come after the runner's.
        assert_eq!(
            s.command_line(),
            "expect-mem=128M expect-cpus=1 devices=fe.0.0001:blk,fe.0.0009:rng only=css.*"
        );
        assert_eq!(s.ccw_devices.len(), 1);
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn hotplug_words_and_steps() {
        let s = Scenario::new("hp")
            .expect_no_devices()
            .hot_plug("virtio-rng-ccw", "fe.0.0007", "rng")
            .hot_plug("virtio-blk-ccw", "fe.1.0001", "blk")
            .hot_unplug("ccw-fe.0.0007")
            .hot_plug("virtio-net-ccw", "fe.0.0007", "net");
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(
            s.command_line(),
            "expect-mem=128M expect-cpus=1 devices=none \
             hotplug=+fe.0.0007:rng,+fe.1.0001:blk,-fe.0.0007:rng,+fe.0.0007:net"
        );
        // Backends of hot-plugged devices exist from boot; the devices do not.
        let args = s.qemu_args(Path::new("k"));
        let args = strings(&args);
        assert!(args.contains(&"driver=null-co,node-name=ccw-fe.1.0001-disk,read-zeroes=on"));
        assert!(args.contains(&"user,id=ccw-fe.0.0007-net,restrict=on"));
        assert!(!args.iter().any(|a| a.starts_with("virtio-")));
        assert!(
            !args.contains(&"-qmp"),
            "the runner adds -qmp, not the scenario"
        );
    }

    #[test]
    fn qmp_commands_on_lines() {
        let balloon = r#"{"execute": "balloon", "arguments": {"value": 67108864}}"#;
        let s = Scenario::new("qmp")
            .qmp_on_line("  # zvtest: config-change ready\n", balloon)
            .qmp_on_line("# later", "{\"execute\":\n  \"stop\"}\r\n");
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.line_commands[0].line, "# zvtest: config-change ready");
        assert_eq!(s.line_commands[0].execute(), Ok("balloon".into()));
        assert_eq!(s.line_commands[0].wire(), balloon);
        assert_eq!(
            s.line_commands[0].describe(),
            format!("{balloon} on '# zvtest: config-change ready'")
        );
        // Sent on one line.
        assert_eq!(s.line_commands[1].wire(), "{\"execute\":   \"stop\"}");
        assert_eq!(s.line_commands[1].execute(), Ok("stop".into()));
        // Nothing on the firmware's command line or QEMU's (the runner adds -qmp).
        assert_eq!(s.command_line(), "expect-mem=128M expect-cpus=1");
        assert!(!strings(&s.qemu_args(Path::new("k"))).contains(&"-qmp"));
    }

    #[test]
    fn qmp_command_mistakes() {
        let err = |line: &str, cmd: &str| {
            Scenario::new("x")
                .qmp_on_line(line, cmd)
                .validate()
                .unwrap_err()
        };
        let e = err("# ready", "{\"execute\": \"balloon\"");
        assert!(e.starts_with("scenario x: QMP command {"), "{e}");
        assert!(e.contains("not JSON"), "{e}");
        for cmd in [
            "[]",
            "{}",
            "{\"execute\": 5}",
            "{\"execute\": \"\"}",
            "\"balloon\"",
        ] {
            let e = err("# ready", cmd);
            assert!(e.contains("\"execute\" string"), "{cmd}: {e}");
        }
        let e = err("  ", "{\"execute\": \"stop\"}");
        assert!(e.contains("empty console line"), "{e}");
    }

    #[test]
    fn hotplug_mistakes() {
        let err = |s: Scenario| s.validate().unwrap_err();
        let e = err(Scenario::new("x").hot_unplug("nosuch"));
        assert!(e.contains("no device with QEMU id 'nosuch'"), "{e}");
        let e = err(Scenario::new("x")
            .virtio_ccw("virtio-rng-ccw", "fe.0.0001", "rng")
            .hot_plug("virtio-blk-ccw", "fe.0.0001", "blk"));
        assert!(e.contains("bus id fe.0.0001 is taken"), "{e}");
        let e = err(Scenario::new("x")
            .virtio_ccw("virtio-rng-ccw", "fe.0.0001", "rng")
            .hot_unplug("ccw-fe.0.0001")
            .hot_unplug("ccw-fe.0.0001"));
        assert!(e.contains("step 2"), "{e}");
        let e = err(Scenario::new("x").hot_plug("virtio-rng-ccw", "fe.9.0001", "rng"));
        assert!(e.contains("ssid"), "{e}");
        // The bad step leaves hotplug= out rather than guess.
        assert!(!Scenario::new("x")
            .hot_unplug("nosuch")
            .command_line()
            .contains("hotplug="));
    }

    #[test]
    fn empty_names_are_refused() {
        for name in ["", "  ", "\t\n"] {
            let e = Scenario::new(name).validate().unwrap_err();
            assert!(e.contains("the name must not be empty"), "{name:?}: {e}");
        }
        // Old behaviour: the length error came first and named "".
        let e = Scenario::new("")
            .append("x=".repeat(MAX_APPEND_LEN))
            .validate()
            .unwrap_err();
        assert!(e.contains("must not be empty"), "{e}");
        assert!(Scenario::new("x").validate().is_ok());
    }

    #[test]
    fn device_mistakes() {
        let err = |s: Scenario| s.validate().unwrap_err();
        let e = err(Scenario::new("x").virtio_ccw("virtio-rng-ccw", "fe.0.01", "rng"));
        assert!(e.contains("devno must be 4 hex digits"), "{e}");
        let e = err(Scenario::new("x").expect_device("bogus", "rng"));
        assert!(e.contains("'bogus'"), "{e}");
        let e = err(Scenario::new("x").virtio_ccw("virtio-rng-ccw", "fe.0.0001", "r n g"));
        assert!(e.contains("'r n g'"), "{e}");
        let e = err(Scenario::new("x")
            .virtio_ccw("virtio-rng-ccw", "fe.0.0001", "rng")
            .virtio_ccw("virtio-blk-ccw", "fe.0.0001", "blk"));
        assert!(e.contains("two devices expected at fe.0.0001"), "{e}");
        // Too many devices for the image's 2943 bytes of command line.
        let mut s = Scenario::new("many");
        for n in 0..200 {
            s = s.virtio_ccw("virtio-balloon-ccw", &format!("fe.0.{n:04x}"), "balloon");
        }
        assert!(err(s).contains("at most"));
    }

    #[test]
    fn legacy_page_words_and_loader() {
        let s = Scenario::new("legacy").legacy_page(
            "/t/page.bin",
            0x7c8_0000,
            &[("console", 2), ("blk", 1)],
        );
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(
            s.command_line(),
            "expect-mem=128M expect-cpus=1 ram-end=0x7c80000 legacy-devices=console:2,blk:1"
        );
        let args = s.qemu_args(Path::new("k"));
        assert!(strings(&args).windows(2).any(|w| w
            == [
                "-device",
                "loader,file=/t/page.bin,addr=0x7c80000,force-raw=on"
            ]));
        let empty = Scenario::new("legacy").legacy_page("/t/p", 0x1000, &[]);
        assert!(empty
            .command_line()
            .ends_with("ram-end=0x1000 legacy-devices=none"));
        let e = Scenario::new("x")
            .legacy_page("/a,b", 0x1000, &[])
            .validate()
            .unwrap_err();
        assert!(e.contains("comma"), "{e}");
    }

    /// What the runner writes is the firmware's configuration, read back
    /// by the firmware's parser as the runner built it.
    #[test]
    fn the_command_line_is_the_firmware_config_written() {
        let s = Scenario::new("all")
            .memory_mib(2048)
            .smp(4)
            .claim_qemu_version("10.0")
            .diag288(Diag288::Present)
            .balloon_pages(16384, 8192)
            .virtio_ccw("virtio-blk-ccw", "fe.0.0001", "blk")
            .hot_plug("virtio-rng-ccw", "fe.0.0007", "rng")
            .legacy_page("/t/p", 0x7c8_0000, &[("console", 2)]);
        let cfg = s.firmware_config();
        assert_eq!(cfg.expect_mem, Some(2 << 30));
        assert_eq!(cfg.expect_cpus, Some(4));
        assert_eq!(cfg.qemu_version, Some((10, 0)));
        assert_eq!((cfg.diag288, cfg.diag288_expire), (Some(true), false));
        assert_eq!(
            s.command_line(),
            "expect-mem=2048M expect-cpus=4 qemu-version=10.0 diag288=present \
             balloon-pages=16384,8192 devices=fe.0.0001:blk hotplug=+fe.0.0007:rng \
             ram-end=0x7c80000 legacy-devices=console:2"
        );
        assert_eq!(cmdline::parse(s.command_line().as_bytes()), Ok(cfg));
        assert_eq!(s.validate(), Ok(()));
    }

    /// `packed=on` and `max_revision=N` reach `devices=` as `:packed` and
    /// `:revN` (revision first, whatever the property order); other
    /// values say nothing.
    #[test]
    fn virtio_properties_become_device_attributes() {
        let mut s = Scenario::new("attrs")
            .virtio_ccw("virtio-rng-ccw", "fe.0.0001", "rng")
            .virtio_ccw("virtio-rng-ccw", "fe.0.0002", "rng")
            .virtio_ccw("virtio-rng-ccw", "fe.0.0003", "rng")
            .virtio_ccw("virtio-rng-ccw", "fe.0.0004", "rng");
        let props = |p: &[(&str, &str)]| -> Vec<(String, String)> {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        s.ccw_devices[0].properties = props(&[("packed", "on"), ("max_revision", "1")]);
        s.ccw_devices[1].properties = props(&[("max_revision", "2")]);
        s.ccw_devices[2].properties = props(&[("packed", "off"), ("max_revision", "7")]);
        s.ccw_devices[3].properties = props(&[("packed", "true")]);
        assert_eq!(
            s.command_line(),
            "expect-mem=128M expect-cpus=1 devices=fe.0.0001:rng:rev1:packed,\
             fe.0.0002:rng:rev2,fe.0.0003:rng,fe.0.0004:rng:packed"
        );
        let cfg = cmdline::parse(s.command_line().as_bytes()).unwrap();
        assert_eq!(cfg, s.firmware_config());
        let bus = |t: &str| t.parse::<BusId>().unwrap();
        assert_eq!(
            cfg.virtio_config(bus("fe.0.0001")),
            Some(VirtioConfig {
                max_revision: 1,
                packed: true
            })
        );
        assert_eq!(
            cfg.virtio_config(bus("fe.0.0003")),
            Some(VirtioConfig::default())
        );
    }

    /// QEMU takes the last of a property given twice; so does `devices=`.
    #[test]
    fn the_last_of_a_repeated_property_counts() {
        let mut s = Scenario::new("twice")
            .virtio_ccw("virtio-rng-ccw", "fe.0.0001", "rng")
            .virtio_ccw("virtio-rng-ccw", "fe.0.0002", "rng");
        for (k, v) in [("packed", "on"), ("max_revision", "1"), ("packed", "off")] {
            s.ccw_devices[0].properties.push((k.into(), v.into()));
        }
        for (k, v) in [("packed", "off"), ("packed", "on")] {
            s.ccw_devices[1].properties.push((k.into(), v.into()));
        }
        assert_eq!(
            s.command_line(),
            "expect-mem=128M expect-cpus=1 devices=fe.0.0001:rng:rev1,fe.0.0002:rng:packed"
        );
    }

    /// A key the runner writes, given again by the scenario, is refused
    /// before QEMU starts: the firmware would refuse the whole line.
    #[test]
    fn own_words_must_not_repeat_the_runners() {
        let e = Scenario::new("twice")
            .memory_mib(256)
            .append("only=pgm expect-mem=512M")
            .validate()
            .unwrap_err();
        assert_eq!(
            e,
            "scenario twice: 'expect-mem=512M' gives expect-mem= again: the runner writes \
             'expect-mem=256M' from the scenario's settings (the firmware refuses a key given twice)"
        );
        let devices = Scenario::new("d")
            .virtio_ccw("virtio-rng-ccw", "fe.0.0001", "rng")
            .append("devices=none");
        assert!(devices.validate().unwrap_err().contains("devices="));
        let watchdog = Scenario::new("w")
            .diag288(Diag288::Absent)
            .append("diag288=present");
        assert!(watchdog.validate().unwrap_err().contains("diag288="));
        // What the runner does not write is the scenario's to give, even
        // words the firmware will refuse.
        let ok = Scenario::new("ok").append("devices=none legacy-devices=none bogus=1 x");
        assert_eq!(ok.validate(), Ok(()));
        assert!(ok
            .command_line()
            .ends_with("devices=none legacy-devices=none bogus=1 x"));
    }

    #[test]
    fn scratch_disks_reach_qemu_and_the_firmware() {
        let mut s = Scenario::new("disks")
            .seed(0x77)
            .disk_dir("/d,x")
            .scratch_blk("fe.0.0001", 64 << 20)
            .scratch_blk(
                "fe.0.0002",
                Disk::new(1 << 20)
                    .block_size(4096)
                    .physical_block_size(8192)
                    .queues(2)
                    .queue_size(64)
                    .serial("zv-2")
                    .packed()
                    .max_revision(1),
            )
            .scratch_blk("fe.0.0003", Disk::new(1 << 20).read_only())
            .scratch_blk("fe.0.0004", Disk::new(1 << 20).user())
            .scratch_scsi("fe.0.0006", 0, 0, 32 << 20)
            .scratch_scsi(
                "fe.0.0006",
                0,
                1,
                Disk::new(32 << 20).block_size(4096).serial("lun1"),
            );
        s.data_dir = None;
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(
            s.command_line(),
            "expect-mem=128M expect-cpus=1 seed=0x77 \
             scratch=fe.0.0001,fe.0.0002,fe.0.0006/0/0,fe.0.0006/0/1 \
             disks=fe.0.0001:64M,fe.0.0002:1M:bs=4096:queues=2:serial=zv-2,fe.0.0003:1M:ro,\
             fe.0.0004:1M,fe.0.0006/0/0:32M,fe.0.0006/0/1:32M:bs=4096:serial=lun1 \
             devices=fe.0.0001:blk,fe.0.0002:blk:rev1:packed,fe.0.0003:blk,fe.0.0004:blk,fe.0.0006:scsi"
        );
        let cfg = cmdline::parse(s.command_line().as_bytes()).unwrap();
        assert_eq!(cfg, s.firmware_config());
        assert_eq!(s.disk_seed(), 0x77);
        let args = s.qemu_args(Path::new("k"));
        let args = strings(&args);
        let has = |pair: [&str; 2]| args.windows(2).any(|w| w == pair);
        assert!(has([
            "-drive",
            "file=/d,,x/fe.0.0001.img,if=none,id=disk-fe.0.0001,format=raw,cache=writeback"
        ]));
        assert!(has([
            "-drive",
            "file=/d,,x/fe.0.0003.img,if=none,id=disk-fe.0.0003,format=raw,cache=writeback,readonly=on"
        ]));
        assert!(has([
            "-drive",
            "file=/d,,x/fe.0.0006-0-1.img,if=none,id=disk-fe.0.0006-0-1,format=raw,cache=writeback"
        ]));
        assert!(has([
            "-device",
            "virtio-blk-ccw,devno=fe.0.0001,id=ccw-fe.0.0001,drive=disk-fe.0.0001"
        ]));
        assert!(has([
            "-device",
            "virtio-blk-ccw,devno=fe.0.0002,id=ccw-fe.0.0002,drive=disk-fe.0.0002,\
             logical_block_size=4096,physical_block_size=8192,serial=zv-2,num-queues=2,\
             queue-size=64,packed=on,max_revision=1"
        ]));
        let scsi = "scsi-hd,bus=ccw-fe.0.0006.0,scsi-id=0,lun=1,drive=disk-fe.0.0006-0-1,\
                    id=disk-fe.0.0006-0-1-hd,logical_block_size=4096,serial=lun1";
        assert!(has(["-device", scsi]));
        // Drives before devices, the controller before its LUNs.
        let at = |a: &str| args.iter().position(|x| *x == a).unwrap();
        assert!(
            at("-drive")
                < at("virtio-blk-ccw,devno=fe.0.0001,id=ccw-fe.0.0001,drive=disk-fe.0.0001")
        );
        assert!(at("virtio-scsi-ccw,devno=fe.0.0006,id=ccw-fe.0.0006") < at(scsi));
        assert_eq!(
            s.disk_image(&"fe.0.0006/0/1".parse().unwrap()),
            PathBuf::from("/d,x/fe.0.0006-0-1.img")
        );
    }

    /// Read errors put blkdebug between the drive and its image, one rule
    /// per sector armed at open, and turn request merging off.
    #[test]
    fn read_errors_inject_eio_through_blkdebug() {
        let mut s = Scenario::new("eio")
            .disk_dir("/d")
            .scratch_blk("fe.0.0001", Disk::new(1 << 20).read_errors(&[9, 1000]))
            .scratch_scsi(
                "fe.0.0006",
                0,
                0,
                Disk::new(1 << 20).read_errors(&[7]).write_errors(&[8]),
            );
        s.data_dir = None;
        assert_eq!(s.validate(), Ok(()));
        let args = s.qemu_args(Path::new("k"));
        let args = strings(&args);
        let has = |pair: [&str; 2]| args.windows(2).any(|w| w == pair);
        assert!(has([
            "-drive",
            "file.image.driver=file,file.image.filename=/d/fe.0.0001.img,if=none,\
             id=disk-fe.0.0001,format=raw,cache=writeback,file.driver=blkdebug,\
             file.inject-error.0.event=none,file.inject-error.0.iotype=read,\
             file.inject-error.0.sector=9,file.inject-error.0.errno=5,\
             file.inject-error.1.event=none,file.inject-error.1.iotype=read,\
             file.inject-error.1.sector=1000,file.inject-error.1.errno=5"
        ]));
        assert!(has([
            "-device",
            "virtio-blk-ccw,devno=fe.0.0001,id=ccw-fe.0.0001,drive=disk-fe.0.0001,\
             request-merging=off"
        ]));
        assert!(has([
            "-drive",
            "file.image.driver=file,file.image.filename=/d/fe.0.0006-0-0.img,if=none,\
             id=disk-fe.0.0006-0-0,format=raw,cache=writeback,file.driver=blkdebug,\
             file.inject-error.0.event=none,file.inject-error.0.iotype=read,\
             file.inject-error.0.sector=7,file.inject-error.0.errno=5,\
             file.inject-error.1.event=none,file.inject-error.1.iotype=write,\
             file.inject-error.1.sector=8,file.inject-error.1.errno=5"
        ]));
        // Past the end: refused.
        let e = Scenario::new("x")
            .scratch_blk("fe.0.0001", Disk::new(1 << 20).read_errors(&[2048]))
            .validate()
            .unwrap_err();
        assert!(
            e.contains("read error at sector 2048: the disk has 2048 sectors"),
            "{e}"
        );
        let e = Scenario::new("x")
            .scratch_blk("fe.0.0001", Disk::new(1 << 20).write_errors(&[4096]))
            .validate()
            .unwrap_err();
        assert!(e.contains("write error at sector 4096"), "{e}");
        let e = Scenario::new("x")
            .scratch_blk(
                "fe.0.0001",
                Disk::new(1 << 20).write_errors(&[9]).errno(ENOSPC),
            )
            .validate()
            .unwrap_err();
        assert!(e.contains("errno 28 (ENOSPC) on writes"), "{e}");
        let d = Disk::new(1 << 20).read_errors(&[3]).errno(61);
        assert!(d.problem().is_none());
        assert!(d
            .injection_keys()
            .contains(&"file.inject-error.0.errno=61".to_string()));
    }

    #[test]
    fn the_images_seed_is_the_firmwares() {
        let s = Scenario::new("seed").scratch_blk("fe.0.0001", 1 << 20);
        assert_eq!(s.disk_seed(), Config::default().seed);
        assert!(!s.command_line().contains("seed="));
        assert_eq!(s.clone().append("only=blk seed=0x99").disk_seed(), 0x99);
        assert_eq!(s.clone().seed(5).disk_seed(), 5);
        let e = s.seed(5).append("seed=6").validate().unwrap_err();
        assert!(e.contains("gives seed= again"), "{e}");
    }

    #[test]
    fn disk_mistakes() {
        let err = |s: Scenario| s.validate().unwrap_err();
        let e = err(Scenario::new("x").scratch_blk("fe.0.0001", 4096));
        assert!(e.contains("disk fe.0.0001: 4096 bytes is too small"), "{e}");
        let e =
            err(Scenario::new("x").scratch_blk("fe.0.0001", Disk::new(1 << 20).block_size(1000)));
        assert!(e.contains("logical_block_size 1000"), "{e}");
        let e = err(Scenario::new("x")
            .scratch_blk("fe.0.0001", Disk::new((1 << 20) + 512).block_size(4096)));
        assert!(e.contains("4096-byte blocks"), "{e}");
        let e = err(Scenario::new("x").scratch_blk(
            "fe.0.0001",
            Disk::new(1 << 20).block_size(4096).physical_block_size(512),
        ));
        assert!(e.contains("physical_block_size 512"), "{e}");
        let e = err(Scenario::new("x").scratch_blk("fe.0.0001", Disk::new(1 << 20).serial("a b")));
        assert!(e.contains("serial 'a b'"), "{e}");
        let e = err(Scenario::new("x").scratch_blk("fe.0.01", 1 << 20));
        assert!(e.contains("scratch blk"), "{e}");
        let e = err(Scenario::new("x")
            .scratch_blk("fe.0.0001", 1 << 20)
            .scratch_blk("fe.0.0001", 1 << 20));
        assert!(e.contains("two devices expected at fe.0.0001"), "{e}");
        let e = err(Scenario::new("x")
            .scratch_scsi("fe.0.0006", 0, 1, 1 << 20)
            .scratch_scsi("fe.0.0006", 0, 1, 1 << 20));
        assert!(e.contains("two disks at fe.0.0006/0/1"), "{e}");
        let e = err(Scenario::new("x").scratch_scsi(
            "fe.0.0006",
            0,
            1,
            Disk::new(1 << 20).queues(2).packed(),
        ));
        assert!(
            e.contains("num-queues, packed belong to the controller"),
            "{e}"
        );
        let e = err(Scenario::new("x")
            .virtio_ccw("virtio-rng-ccw", "fe.0.0006", "rng")
            .scratch_scsi("fe.0.0006", 0, 0, 1 << 20));
        assert!(e.contains("is virtio-rng-ccw, not virtio-scsi-ccw"), "{e}");
        // One controller for many LUNs.
        let s = Scenario::new("x")
            .scratch_scsi("fe.0.0006", 0, 0, 1 << 20)
            .scratch_scsi("fe.0.0006", 1, 3, 1 << 20);
        assert_eq!(s.ccw_devices.len(), 1);
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn what_the_command_line_cannot_say_is_refused() {
        let e = Scenario::new("cpus").smp(70_000).validate().unwrap_err();
        assert!(e.contains("at most 65535"), "{e}");
        let e = Scenario::new("queues")
            .legacy_page("/t/p", 0x1000, &[("console", 256)])
            .validate()
            .unwrap_err();
        assert!(e.contains("console has 256 queues"), "{e}");
        assert!(Scenario::new("q")
            .legacy_page("/t/p", 0x1000, &[("console", 255)])
            .validate()
            .is_ok());
    }
}
