//! One way of booting the firmware: machine, memory, devices, command line.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::json::{self, Value};
use crate::version::{self, QemuVersion};

/// Overrides the QEMU binary for every scenario (e.g. a QEMU 10 build).
pub const QEMU_ENV: &str = "ZVTEST_QEMU";

/// A QEMU data directory for every scenario (`-L`): the BIOS and keymaps
/// of a QEMU that is not installed where it was built to look.
pub const QEMU_DATA_ENV: &str = "ZVTEST_QEMU_DATA";

/// The longest `-append` the firmware's image takes: it tells QEMU its
/// parameter area holds 0xb80 bytes with the closing NUL (hw/s390x/ipl.c
/// reads the size at 0x10430; without it QEMU allows 0x380).
pub const MAX_APPEND_LEN: usize = 0xb80 - 1;

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
    /// Channel-subsystem devices present at boot, each with its backends
    /// and its expected inventory entry ([`Scenario::ccw_device`]).
    pub ccw_devices: Vec<CcwDevice>,
    /// What `devices=` tells the firmware to find at boot; `None` leaves
    /// the word out (the firmware then skips `css.inventory`).
    pub expected_devices: Option<Vec<ExpectedDevice>>,
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
    /// Keep a QMP connection for the whole run and record QEMU's events
    /// ([`crate::Outcome::qmp_events`]); on for `Diag288::Expire`.
    pub qmp_events: bool,
    /// Use the SCLP line-mode console (EBCDIC messages, as z/VM and LPAR
    /// operators see them) instead of the VT220 one.
    pub line_mode_console: bool,
    /// Mistakes made while building (a malformed bus id, ...); reported
    /// by [`Scenario::validate`].
    pub errors: Vec<String>,
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

/// A channel-subsystem bus id as QEMU writes it: `cssid.ssid.devno` in
/// hex, e.g. `fe.1.0005` (devno always 4 digits, ssid 0-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BusId {
    pub cssid: u8,
    pub ssid: u8,
    pub devno: u16,
}

impl FromStr for BusId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| Err(format!("bad bus id '{s}': {why}"));
        let parts: Vec<&str> = s.split('.').collect();
        let [c, ss, d] = parts[..] else {
            return bad("expected cssid.ssid.devno, e.g. fe.0.0001");
        };
        let hex = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex(c) || c.len() > 2 {
            return bad("cssid must be 1 or 2 hex digits");
        }
        if ss.len() != 1 || !matches!(ss.as_bytes()[0], b'0'..=b'3') {
            return bad("ssid must be 0, 1, 2 or 3");
        }
        if d.len() != 4 || !hex(d) {
            return bad("devno must be 4 hex digits");
        }
        // All three checked to be short hex numbers.
        Ok(BusId {
            cssid: u8::from_str_radix(c, 16).map_err(|e| e.to_string())?,
            ssid: ss.as_bytes()[0] - b'0',
            devno: u16::from_str_radix(d, 16).map_err(|e| e.to_string())?,
        })
    }
}

impl fmt::Display for BusId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}.{:x}.{:04x}", self.cssid, self.ssid, self.devno)
    }
}

/// One entry of the firmware's device inventory: `fe.0.0001:blk`.
/// Ordered as the firmware sorts them: by bus id, then name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExpectedDevice {
    pub bus: BusId,
    /// virtio short name (`blk`, `net`, ...), `virtio-N`, or `cu-XXXX`.
    pub name: String,
}

impl fmt::Display for ExpectedDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.bus, self.name)
    }
}

/// A channel-subsystem device: its QEMU model and id, where it sits, what
/// the firmware should call it, and the backends QEMU needs for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CcwDevice {
    /// QEMU driver, e.g. `virtio-blk-ccw`.
    pub model: String,
    /// QEMU id (`-device ...,id=`, QMP `device_del`): [`CcwDevice::default_id`].
    pub id: String,
    pub bus: BusId,
    /// Expected inventory name.
    pub name: String,
    /// Properties besides `devno` and `id`, e.g. `drive=...`.
    pub properties: Vec<(String, String)>,
    /// QEMU arguments creating its backends (`-blockdev ...`), present from
    /// boot even when the device itself is hot-plugged later.
    pub backend_args: Vec<String>,
}

impl CcwDevice {
    /// A device of `model` at `bus`, with whatever backend the model needs
    /// to start without host privileges (see [`model_setup`]).
    pub fn new(model: impl Into<String>, bus: BusId, name: impl Into<String>) -> Self {
        let model = model.into();
        let id = Self::default_id(bus);
        let (properties, backend_args) = model_setup(&model, &id, bus);
        CcwDevice {
            model,
            id,
            bus,
            name: name.into(),
            properties,
            backend_args,
        }
    }

    /// `ccw-fe.0.0001`: unique per bus id, valid as a QEMU id.
    pub fn default_id(bus: BusId) -> String {
        format!("ccw-{bus}")
    }

    /// The `-device` value: `model,devno=BUS,id=ID,prop=value,...`.
    pub fn device_arg(&self) -> String {
        let mut s = format!("{},devno={},id={}", self.model, self.bus, self.id);
        for (k, v) in &self.properties {
            s.push_str(&format!(",{k}={v}"));
        }
        s
    }

    /// The QMP `device_add` properties besides driver and id.
    pub fn qmp_properties(&self) -> Vec<(String, String)> {
        let mut p = vec![("devno".to_string(), self.bus.to_string())];
        p.extend(self.properties.iter().cloned());
        p
    }

    pub fn entry(&self) -> ExpectedDevice {
        ExpectedDevice {
            bus: self.bus,
            name: self.name.clone(),
        }
    }
}

/// Properties and backend arguments a ccw model needs, none of which needs
/// host privileges or files: a `null-co` block node for blk, a user-mode
/// (slirp, `restrict=on`) netdev for net, the `synth` 9p backend, the
/// built-in crypto backend, a null chardev for the 3270 terminal. vhost
/// models get their mandatory properties, but need host devices
/// (`/dev/vhost-vsock`, `/dev/vhost-scsi` with a configured target) that
/// QEMU opens itself. Other models need nothing.
pub fn model_setup(model: &str, id: &str, bus: BusId) -> (Vec<(String, String)>, Vec<String>) {
    let p = |k: &str, v: String| (k.to_string(), v);
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match model {
        "virtio-blk-ccw" => {
            let node = format!("{id}-disk");
            let backend = format!("driver=null-co,node-name={node},read-zeroes=on");
            (vec![p("drive", node)], args(&["-blockdev", &backend]))
        }
        "virtio-net-ccw" => {
            let net = format!("{id}-net");
            let backend = format!("user,id={net},restrict=on");
            (vec![p("netdev", net)], args(&["-netdev", &backend]))
        }
        "virtio-9p-ccw" => {
            let fs = format!("{id}-fs");
            let backend = format!("synth,id={fs}");
            (
                vec![p("fsdev", fs), p("mount_tag", "zvtest".into())],
                args(&["-fsdev", &backend]),
            )
        }
        "virtio-crypto-ccw" => {
            let c = format!("{id}-crypto");
            let backend = format!("cryptodev-backend-builtin,id={c}");
            (vec![p("cryptodev", c)], args(&["-object", &backend]))
        }
        "x-terminal3270" => {
            let c = format!("{id}-chr");
            let backend = format!("null,id={c}");
            (vec![p("chardev", c)], args(&["-chardev", &backend]))
        }
        // A context id unique per bus id (3 is the first a guest may have).
        "vhost-vsock-ccw" => {
            let cid =
                3 + (u64::from(bus.cssid) << 18 | u64::from(bus.ssid) << 16) + u64::from(bus.devno);
            (vec![p("guest-cid", cid.to_string())], Vec::new())
        }
        "vhost-scsi-ccw" => (
            vec![p(
                "wwpn",
                format!("naa.5001405{:09x}", u64::from(bus.devno)),
            )],
            Vec::new(),
        ),
        _ => (Vec::new(), Vec::new()),
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
        let v = json::parse(&self.command)
            .map_err(|e| format!("QMP command {}: not JSON: {e}", self.command))?;
        match v.get("execute").and_then(Value::as_str) {
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

/// Inventory and legacy names: what the firmware's `devices=` accepts.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
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
            qmp_events: false,
            line_mode_console: false,
            errors: Vec::new(),
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

    /// Records QEMU's QMP events for the whole run.
    /// Boots with the SCLP line-mode console instead of the VT220 one.
    pub fn line_mode_console(mut self, on: bool) -> Self {
        self.line_mode_console = on;
        self
    }

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
                .push(ExpectedDevice {
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
    /// [`crate::qmp::READY_LINE`]). A command that QEMU answers with an
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
    pub fn expected_device_list(&self) -> Option<Vec<ExpectedDevice>> {
        let mut list = self.expected_devices.clone()?;
        list.sort();
        Some(list)
    }

    /// The hot-plug steps as the firmware's `hotplug=` items, `+fe.0.0007:rng`
    /// and `-fe.0.0001:blk`, in step order; an error names a step that
    /// removes an unknown id, adds a second device at one bus id, or
    /// reuses a QEMU id.
    pub fn hotplug_changes(&self) -> Result<Vec<String>, String> {
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
                    changes.push(format!("+{}", d.entry()));
                }
                HotplugStep::Remove { id } => match present.remove(id.as_str()) {
                    Some(d) => changes.push(format!("-{}", d.entry())),
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

    /// The firmware command line: `expect-mem=<M>M expect-cpus=<N>` first,
    /// then `qemu-version=` (once known: [`VersionWord::Detect`] is filled
    /// in by [`Scenario::resolve_qemu_version`], which [`crate::run`]
    /// calls) and `diag288=`, then our words, then what the devices imply:
    /// `devices=` (virtio devices with `:packed` and `:revN` where their
    /// properties set `packed=on` or `max_revision=N`), `hotplug=`,
    /// `ram-end=` and `legacy-devices=`.
    pub fn command_line(&self) -> String {
        let mut words = vec![
            format!("expect-mem={}M", self.memory_mib),
            format!("expect-cpus={}", self.smp),
        ];
        if let Some(v) = self.claimed_qemu_version() {
            words.push(v.word());
        }
        if let Some(mode) = self.diag288 {
            words.push(format!("diag288={}", mode.word()));
        }
        words.extend(self.append.iter().cloned());
        if let Some(list) = self.expected_device_list() {
            let items: Vec<String> = list.iter().map(|e| self.device_item(e)).collect();
            words.push(format!("devices={}", join_or_none(&items)));
        }
        // An invalid step sequence is left out here; validate() reports it.
        if let Ok(changes) = self.hotplug_changes() {
            if !changes.is_empty() {
                words.push(format!("hotplug={}", changes.join(",")));
            }
        }
        if let Some(page) = &self.legacy_page {
            words.push(format!("ram-end={:#x}", page.addr));
            let items: Vec<String> = page
                .devices
                .iter()
                .map(|(n, q)| format!("{n}:{q}"))
                .collect();
            words.push(format!("legacy-devices={}", join_or_none(&items)));
        }
        words.join(" ")
    }

    /// One `devices=` item: `bus:name`, with the configuration the
    /// firmware holds a virtio device to (`packed=on`, `max_revision=N`).
    fn device_item(&self, e: &ExpectedDevice) -> String {
        let mut item = e.to_string();
        let Some(d) = self.ccw_devices.iter().find(|d| d.bus == e.bus) else {
            return item;
        };
        for (k, v) in &d.properties {
            match (k.as_str(), v.as_str()) {
                ("packed", "on" | "true") => item.push_str(":packed"),
                ("max_revision", r @ ("0" | "1" | "2")) => item.push_str(&format!(":rev{r}")),
                _ => {}
            }
        }
        item
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
        if let Some(bad) = names.iter().find(|n| !valid_name(n)) {
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
            if page.file.to_string_lossy().contains(',') {
                return Err(format!(
                    "scenario {}: legacy page file {} has a comma (QEMU option syntax)",
                    self.name,
                    page.file.display()
                ));
            }
        }
        // Room for the word a detected version adds when the scenario runs.
        let reserve = match self.qemu_version {
            VersionWord::Detect => " qemu-version=65535.65535".len(),
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
        add(&["-smp", &self.smp.to_string()]);
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
        for d in &self.ccw_devices {
            args.push("-device".into());
            args.push(d.device_arg().into());
        }
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

/// `a,b,c`, or `none` for an empty list.
fn join_or_none<T: ToString>(items: &[T]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The longest command line is the firmware image's area, less its NUL.
    #[test]
    fn the_longest_command_line_is_the_images() {
        assert_eq!(MAX_APPEND_LEN, zvtest_firmware::cmdline::AREA_SIZE - 1);
    }

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
    fn bus_ids() {
        let b: BusId = "fe.1.0005".parse().unwrap();
        assert_eq!(
            b,
            BusId {
                cssid: 0xfe,
                ssid: 1,
                devno: 5
            }
        );
        assert_eq!(b.to_string(), "fe.1.0005");
        assert_eq!(
            "FE.3.ABCD".parse::<BusId>().unwrap().to_string(),
            "fe.3.abcd"
        );
        assert_eq!("0.0.0001".parse::<BusId>().unwrap().to_string(), "0.0.0001");
        assert_eq!("a.2.1234".parse::<BusId>().unwrap().to_string(), "a.2.1234");
        for bad in [
            "",
            "fe",
            "fe.0",
            "fe.0.001",
            "fe.0.00001",
            "fe.4.0001",
            "fe.00.0001",
            "100.0.0001",
            "fe.0.000g",
            "x.0.0001",
            "fe.0.0001.1",
            ".0.0001",
            "fe.-1.0001",
        ] {
            let err = bad.parse::<BusId>().unwrap_err();
            assert!(err.contains(&format!("'{bad}'")), "{bad}: {err}");
        }
        // Sorted as the firmware sorts: cssid, ssid, devno.
        let mut v: Vec<BusId> = ["fe.1.0000", "fe.0.ffff", "0.3.0000"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        v.sort();
        let v: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(v, ["0.3.0000", "fe.0.ffff", "fe.1.0000"]);
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

    #[test]
    fn vhost_models_get_their_mandatory_properties() {
        let bus: BusId = "fe.1.0010".parse().unwrap();
        let d = CcwDevice::new("vhost-vsock-ccw", bus, "vsock");
        assert_eq!(
            d.properties,
            [(
                "guest-cid".to_string(),
                (3 + (0xfe << 18) + (1 << 16) + 0x10).to_string()
            )]
        );
        assert!(d.backend_args.is_empty());
        let d = CcwDevice::new("vhost-scsi-ccw", bus, "scsi");
        assert_eq!(d.properties[0].0, "wwpn");
        let d = CcwDevice::new("virtio-gpu-ccw", bus, "gpu");
        assert!(d.properties.is_empty() && d.backend_args.is_empty());
        assert_eq!(
            d.device_arg(),
            "virtio-gpu-ccw,devno=fe.1.0010,id=ccw-fe.1.0010"
        );
        assert_eq!(
            d.qmp_properties(),
            [("devno".to_string(), "fe.1.0010".to_string())]
        );
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
        assert_eq!(
            s.command_line(),
            "expect-mem=128M expect-cpus=1 only=css.* devices=fe.0.0001:blk,fe.0.0009:rng"
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
}
