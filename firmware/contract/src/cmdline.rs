//! The firmware command line (QEMU `-append`): space-separated `key=value`.
//!
//! No command line at all (z/VM, LPAR) means the defaults. Anything not
//! understood is an error that names the offending word: a typo must never
//! silently run a different selection.

use crate::fmt::Escaped;
pub use crate::inventory::VirtioConfig;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use ufmt::{uDisplay, uWrite, Formatter};

/// Faults the firmware injects on request, to prove the failure paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inject {
    /// A check that fails with expected/got.
    Fail,
    /// A check that never finishes (caught by the per-check timeout).
    Hang,
    /// An unexpected program interrupt inside a check.
    Pgm,
    /// Spin with interrupts disabled: only the host timeout can end it.
    Forever,
    /// Exhaust the heap.
    Oom,
    /// An external interrupt nobody owns (an emergency signal to ourselves).
    Ext,
    /// An I/O interrupt for a subchannel we do not drive.
    Io,
    /// A channel-report machine check while nobody waits for one (the
    /// host plugs a device after `# zvtest: inject mcck ready`).
    Mcck,
    /// SCLP Read SCP Info with an SCCB too short for its answer: the run
    /// must end with "no storage information".
    Sclp,
    /// The CPU with the highest address is told not to come up:
    /// `smp.start` must fail naming it.
    Cpu,
    /// `smp.heap` runs with the heap's lock left out: it must fail.
    Heap,
    /// The concurrent stress hands one CPU's queue accounting the same
    /// used id twice: `smp.stress-blk` must fail naming it.
    Double,
    /// One CPU of the concurrent stress takes the disk's subchannel status
    /// behind the interrupt handler's back: an interrupt then finds none,
    /// and `smp.stress-blk` must fail calling it taken twice.
    Steal,
}

impl Inject {
    pub const ALL: [(&'static str, Inject); 13] = [
        ("fail", Inject::Fail),
        ("hang", Inject::Hang),
        ("pgm", Inject::Pgm),
        ("forever", Inject::Forever),
        ("oom", Inject::Oom),
        ("ext", Inject::Ext),
        ("io", Inject::Io),
        ("mcck", Inject::Mcck),
        ("sclp", Inject::Sclp),
        ("cpu", Inject::Cpu),
        ("heap", Inject::Heap),
        ("double", Inject::Double),
        ("steal", Inject::Steal),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("?", |(n, _)| n)
    }
}

/// A block benchmark workload: request size and depth, random reads or
/// sequential writes (the names the Linux reference's fio jobs have).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bench {
    RandRead4kQd1,
    RandRead4kQd32,
    SeqWrite64kQd1,
    SeqWrite64kQd8,
}

impl Bench {
    pub const ALL: [(&'static str, Bench); 4] = [
        ("randread4k_qd1", Bench::RandRead4kQd1),
        ("randread4k_qd32", Bench::RandRead4kQd32),
        ("seqwrite64k_qd1", Bench::SeqWrite64kQd1),
        ("seqwrite64k_qd8", Bench::SeqWrite64kQd8),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("?", |(n, _)| n)
    }

    /// Bytes per request, requests in flight, whether it writes.
    pub fn shape(self) -> (u32, u16, bool) {
        match self {
            Bench::RandRead4kQd1 => (4096, 1, false),
            Bench::RandRead4kQd32 => (4096, 32, false),
            Bench::SeqWrite64kQd1 => (65536, 1, true),
            Bench::SeqWrite64kQd8 => (65536, 8, true),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Selectors (names, globs, groups); empty means every regular check.
    pub only: Vec<String>,
    pub skip: Vec<String>,
    pub seed: u64,
    /// Multiplier for stress loops, 1..=1000.
    pub stress: u32,
    /// Whether the stress wraps the 16-bit ring indexes (`index-wrap=`):
    /// blk.stress and scsi.stress on their first device's first queue
    /// always, every stress from `stress=10` on. Some 66 000 requests
    /// each: `no` leaves them out of a run about something else.
    pub index_wrap: bool,
    /// 0 quiet, 1 normal, 2 chatty diagnostics.
    pub verbose: u8,
    /// Default per-check timeout.
    pub timeout_ms: u64,
    /// How long a check waits for a change it asked the host for (a plug,
    /// a resize, a link change, a reconnect, an input event); None: each
    /// wait's own default, 5 to 20 s (`host-wait=`).
    pub host_wait_ms: Option<u64>,
    /// Memory size the host says it configured, in bytes.
    pub expect_mem: Option<u64>,
    /// CPUs the host says it configured.
    pub expect_cpus: Option<u16>,
    /// CPUs the host plugs when the firmware says it is ready
    /// (`smp.hotplug`).
    pub cpu_plug: Option<u16>,
    pub inject: Vec<Inject>,
    /// Channel-subsystem devices the host configured (`devices=`).
    pub devices: Option<Vec<crate::inventory::Entry>>,
    /// How the host configured each virtio device of `devices=`; devices
    /// listed without attributes have the defaults.
    pub virtio: Vec<(crate::inventory::BusId, VirtioConfig)>,
    /// Devices the host will plug (`+`) and unplug (`-`) while we wait.
    pub hotplug: Vec<(bool, crate::inventory::Entry)>,
    /// Where storage ends, for the legacy device page (default: SCLP's size).
    pub ram_end: Option<u64>,
    /// Legacy s390-virtio devices expected on the device page: (name, queues).
    pub legacy_devices: Option<Vec<(String, u8)>>,
    /// The QEMU version the runner started (major, minor).
    pub qemu_version: Option<(u16, u16)>,
    /// Whether a diag288 watchdog is configured; None: find out.
    pub diag288: Option<bool>,
    /// Let the watchdog expire (the host injects a restart interrupt).
    pub diag288_expire: bool,
    /// The balloon sizes (pages) the host will ask for after each of our
    /// two ready lines (classic, then adapter indicators):
    /// `virtio.config-change` waits for them.
    pub balloon_pages: Option<[u32; 2]>,
    /// Benchmark workloads `blk.stress` runs instead of its stress
    /// (`bench=`), each for `bench_ms`.
    pub bench: Vec<Bench>,
    pub bench_ms: u64,
    /// Disks the firmware may write (`scratch=`): each must hold the
    /// scratch pattern of `seed=` (crate::disk); every other disk is only
    /// read.
    pub scratch: Vec<crate::disk::DiskId>,
    /// The disks the host configured (`disks=`): the firmware holds each
    /// to its size, block size, queues, read-only flag and serial.
    pub disks: Vec<crate::disk::DiskConfig>,
    /// The SCSI LUN the host plugs after `SCSI_HOTPLUG_READY[0]` and
    /// unplugs after `[1]` (`scsi-hotplug=`; `scsi.hotplug` checks).
    pub scsi_hotplug: Option<crate::disk::DiskId>,
    /// How the host configured each net device (`nets=`): its MAC, its
    /// peer, queue pairs, link changes (crate::net).
    pub nets: Vec<crate::net::NetConfig>,
    /// The virtio-serial devices the host configured (`serial=`): ports,
    /// names, consoles, `max_ports`, emergency write, the bytes each port
    /// carries and the port the host closes.
    pub serial: Vec<crate::serial::SerialConfig>,
    /// The shared directories the host configured (`shares=`, 9p and
    /// virtio-fs): tag and whether the seeded tree is laid out
    /// (crate::share); written to only where `scratch=` names the bus.
    pub shares: Vec<crate::share::ShareConfig>,
    /// The virtio-crypto devices the host configured (`crypto=`): the
    /// back-end's queues (crate::crypto).
    pub crypto: Vec<crate::crypto::CryptoConfig>,
    /// Test only (`p9-corrupt=N@OFFSET`): `p9.write` writes that byte of
    /// its file N inverted, so the runner's check of the share must fail.
    pub p9_corrupt: Option<crate::p9::Corrupt>,
    /// How the host set up the balloon and takes part in its checks
    /// (`balloon=`, crate::balloon).
    pub balloon: Option<crate::balloon::BalloonConfig>,
    /// How the host configured the virtio-mem device (`mem=`).
    pub mem: Option<crate::balloon::MemConfig>,
    /// The virtio-input devices the host configured (`input=`): which
    /// model sits at which bus id (crate::input).
    pub input: Vec<crate::input::InputConfig>,
    /// Test only (`fs-corrupt=OFFSET`): `fs.write` writes that byte of its
    /// file inverted (and reads back what it wrote), so the runner's check
    /// of the share must fail the run.
    pub fs_corrupt: Option<u32>,
    /// Test only (`sigp-expect=ORDER:CC[:STATUS]`): the sigp.* checks
    /// expect this answer to every ORDER instead of the architecture's,
    /// so the first comparison of that order must fail.
    pub sigp_expect: Option<crate::sigp::Claim>,
    /// Test only (`rng-loop=BUS`): `virtio.rng` puts one looped descriptor
    /// chain (a descriptor whose next is itself) on the virtio-rng at BUS
    /// after its first setup, so that QEMU's own device sets
    /// DEVICE_NEEDS_RESET mid-run (its error path; no host route sets it
    /// on virtio-ccw otherwise) and the check must name it.
    pub rng_loop: Option<crate::inventory::BusId>,
    /// The virtio-gpu devices the host configured (`gpu=`): scanout 0's
    /// mode, EDID offered, and whether the runner takes a screendump.
    pub gpu: Vec<crate::gpu::GpuConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            only: Vec::new(),
            skip: Vec::new(),
            seed: 0x5a76_7465_7374, // "Zvtest"
            stress: 1,
            index_wrap: true,
            verbose: 1,
            timeout_ms: 5000,
            host_wait_ms: None,
            expect_mem: None,
            expect_cpus: None,
            cpu_plug: None,
            inject: Vec::new(),
            devices: None,
            virtio: Vec::new(),
            hotplug: Vec::new(),
            ram_end: None,
            legacy_devices: None,
            qemu_version: None,
            diag288: None,
            diag288_expire: false,
            balloon_pages: None,
            bench: Vec::new(),
            bench_ms: 3000,
            scratch: Vec::new(),
            disks: Vec::new(),
            scsi_hotplug: None,
            nets: Vec::new(),
            serial: Vec::new(),
            shares: Vec::new(),
            crypto: Vec::new(),
            p9_corrupt: None,
            balloon: None,
            mem: None,
            input: Vec::new(),
            fs_corrupt: None,
            sigp_expect: None,
            rng_loop: None,
            gpu: Vec::new(),
        }
    }
}

impl Config {
    /// How the host configured the virtio device at `bus`: None when
    /// `devices=` was not given (nothing to hold the device to).
    pub fn virtio_config(&self, bus: crate::inventory::BusId) -> Option<VirtioConfig> {
        self.devices.as_ref()?;
        Some(
            self.virtio
                .iter()
                .find(|(b, _)| *b == bus)
                .map_or_else(VirtioConfig::default, |(_, c)| *c),
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmdlineError {
    UnknownOption(String),
    NotKeyValue(String),
    BadValue {
        option: &'static str,
        value: String,
        expected: &'static str,
    },
    Repeated(&'static str),
    NotAscii,
}

impl uDisplay for CmdlineError {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        match self {
            CmdlineError::UnknownOption(k) => {
                ufmt::uwrite!(f, "unknown option '{}' (known: ", Escaped(k.as_bytes()))?;
                for (i, (name, _, _)) in OPTIONS.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(name)?;
                }
                f.write_str(")")
            }
            CmdlineError::NotKeyValue(w) => ufmt::uwrite!(
                f,
                "'{}' is not of the form key=value",
                Escaped(w.as_bytes())
            ),
            CmdlineError::BadValue {
                option,
                value,
                expected,
            } => ufmt::uwrite!(
                f,
                "bad value '{}' for {}: expected {}",
                Escaped(value.as_bytes()),
                *option,
                *expected
            ),
            CmdlineError::Repeated(k) => ufmt::uwrite!(
                f,
                "option '{}' given twice (give it once; lists are comma-separated)",
                *k
            ),
            CmdlineError::NotAscii => f.write_str("command line is not printable ASCII"),
        }
    }
}

type Setter = fn(&mut Config, &str) -> Option<()>;

/// Every option: name, what its value looks like, how to apply it.
const OPTIONS: &[(&str, &str, Setter)] = &[
    (
        "only",
        "comma-separated check names, globs or groups (a-z, 0-9, '.', '-', '*', '?')",
        |c, v| {
            c.only = selectors(v)?;
            Some(())
        },
    ),
    (
        "skip",
        "comma-separated check names, globs or groups (a-z, 0-9, '.', '-', '*', '?')",
        |c, v| {
            c.skip = selectors(v)?;
            Some(())
        },
    ),
    ("seed", "a number (decimal or 0x hex)", |c, v| {
        c.seed = number(v)?;
        Some(())
    }),
    ("stress", "a number from 1 to 1000", |c, v| {
        c.stress = ranged(v, 1, 1000)? as u32;
        Some(())
    }),
    ("index-wrap", "yes or no", |c, v| {
        c.index_wrap = match v {
            "yes" => true,
            "no" => false,
            _ => return None,
        };
        Some(())
    }),
    ("verbose", "0, 1 or 2", |c, v| {
        c.verbose = ranged(v, 0, 2)? as u8;
        Some(())
    }),
    ("timeout", "milliseconds from 1 to 600000", |c, v| {
        c.timeout_ms = ranged(v, 1, 600_000)?;
        Some(())
    }),
    (
        "host-wait",
        "milliseconds a check waits for a change asked of the host, 1 to 600000",
        |c, v| {
            c.host_wait_ms = Some(ranged(v, 1, 600_000)?);
            Some(())
        },
    ),
    (
        "expect-mem",
        "a size such as 134217728, 128M or 2G",
        |c, v| {
            c.expect_mem = Some(size(v)?);
            Some(())
        },
    ),
    ("expect-cpus", "a number from 1 to 65535", |c, v| {
        c.expect_cpus = Some(ranged(v, 1, 0xffff)? as u16);
        Some(())
    }),
    ("cpu-plug", "a number from 1 to 247", |c, v| {
        c.cpu_plug = Some(ranged(v, 1, 247)? as u16);
        Some(())
    }),
    (
        "devices",
        "none, or comma-separated busid:name[:revN][:packed] (fe.0.0001:blk:rev1:packed)",
        |c, v| {
            let (entries, virtio) = crate::inventory::parse_configured(v)?;
            c.devices = Some(entries);
            c.virtio = virtio;
            Some(())
        },
    ),
    (
        "hotplug",
        "comma-separated +busid:name or -busid:name",
        |c, v| {
            for item in v.split(',') {
                let (add, rest) = match item.as_bytes().first()? {
                    b'+' => (true, &item[1..]),
                    b'-' => (false, &item[1..]),
                    _ => return None,
                };
                let mut e = crate::inventory::parse_expected(rest)?;
                c.hotplug.push((add, e.pop().filter(|_| e.is_empty())?));
            }
            Some(())
        },
    ),
    ("ram-end", "an address such as 0x7c80000 or 124M", |c, v| {
        c.ram_end = Some(number(v).or_else(|| size(v))?);
        Some(())
    }),
    (
        "legacy-devices",
        "none, or comma-separated name:queues (console:2)",
        |c, v| {
            let mut out = Vec::new();
            if v != "none" {
                for item in v.split(',') {
                    let (name, n) = item.split_once(':')?;
                    if name.is_empty()
                        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    {
                        return None;
                    }
                    out.push((name.to_string(), u8::try_from(decimal(n)?).ok()?));
                }
            }
            c.legacy_devices = Some(out);
            Some(())
        },
    ),
    ("qemu-version", "major.minor, such as 7.2", |c, v| {
        let (major, minor) = v.split_once('.')?;
        c.qemu_version = Some((
            u16::try_from(decimal(major)?).ok()?,
            u16::try_from(decimal(minor)?).ok()?,
        ));
        Some(())
    }),
    (
        "diag288",
        "absent, present, or expire (present, and let it expire)",
        |c, v| {
            (c.diag288, c.diag288_expire) = match v {
                "absent" => (Some(false), false),
                "present" => (Some(true), false),
                "expire" => (Some(true), true),
                _ => return None,
            };
            Some(())
        },
    ),
    (
        "balloon-pages",
        "two numbers of 4 KiB pages: after the classic, then the adapter ready line (16384,8192)",
        |c, v| {
            let (a, b) = v.split_once(',')?;
            c.balloon_pages = Some([
                u32::try_from(number(a)?).ok()?,
                u32::try_from(number(b)?).ok()?,
            ]);
            Some(())
        },
    ),
    (
        "bench",
        "comma-separated randread4k_qd1, randread4k_qd32, seqwrite64k_qd1, seqwrite64k_qd8: blk.stress runs these instead",
        |c, v| {
            for word in list(v)? {
                let (_, b) = Bench::ALL.iter().find(|(n, _)| *n == word)?;
                c.bench.push(*b);
            }
            Some(())
        },
    ),
    ("bench-ms", "milliseconds per benchmark workload, 100 to 600000", |c, v| {
        c.bench_ms = ranged(v, 100, 600_000)?;
        Some(())
    }),
    (
        "scratch",
        "comma-separated disks holding the scratch pattern of seed=: bus ids, or busid/target/lun for one SCSI LUN (fe.0.0001,fe.0.0006/0/1)",
        |c, v| {
            for item in list(v)? {
                c.scratch.push(item.parse().ok()?);
            }
            Some(())
        },
    ),
    (
        "disks",
        "comma-separated ID:SIZE[:bs=N][:queues=N][:ro][:serial=WORD], ID a bus id or busid/target/lun (fe.0.0001:64M:bs=4096)",
        |c, v| {
            for item in v.split(',') {
                let d = crate::disk::DiskConfig::parse(item)?;
                if c.disks.iter().any(|x| x.id == d.id) {
                    return None;
                }
                c.disks.push(d);
            }
            Some(())
        },
    ),
    (
        "scsi-hotplug",
        "busid/target/lun of the SCSI LUN the host plugs and unplugs (fe.0.0006/0/5)",
        |c, v| {
            let id: crate::disk::DiskId = v.parse().ok()?;
            c.scsi_hotplug = Some(id.lun.map(|_| id)?);
            Some(())
        },
    ),
    (
        "nets",
        "comma-separated BUSID:MAC[:echo|:user][:pairs=N][:mtu=N][:link], the MAC with dashes (fe.0.0002:52-54-00-12-34-56:echo)",
        |c, v| {
            for item in v.split(',') {
                let n = crate::net::NetConfig::parse(item)?;
                if c.nets.iter().any(|x| x.bus == n.bus) {
                    return None;
                }
                c.nets.push(n);
            }
            Some(())
        },
    ),
    (
        "serial",
        "comma-separated BUS[:max=N][:emerg][:bytes=N][:close=N][:drop=N][:unplug=N][:plug=N[=NAME]] then :cN[=NAME] (console) or :pN[=NAME] (port) per port (fe.0.0003:max=4:c0:p1=zv.a)",
        |c, v| {
            for item in v.split(',') {
                let d = crate::serial::SerialConfig::parse(item)?;
                if c.serial.iter().any(|x| x.bus == d.bus) {
                    return None;
                }
                c.serial.push(d);
            }
            Some(())
        },
    ),
    (
        "input",
        "comma-separated BUS:MODEL[:mute] of virtio-input devices, MODEL kbd, mouse or tablet; test only: mute, no event-queue interrupts asked for (fe.0.0008:kbd,fe.0.000e:mouse)",
        |c, v| {
            for item in v.split(',') {
                let d = crate::input::InputConfig::parse(item)?;
                if c.input.iter().any(|x| x.bus == d.bus) {
                    return None;
                }
                c.input.push(d);
            }
            Some(())
        },
    ),
    (
        "shares",
        "comma-separated BUS:TAG[:tree][:queues=N] of 9p and virtio-fs shares, :tree when the seeded tree is laid out, :queues= a virtio-fs device's request queues (fe.0.000a:zvtest:tree)",
        |c, v| {
            for item in v.split(',') {
                let d = crate::share::ShareConfig::parse(item)?;
                if c.shares.iter().any(|x| x.bus == d.bus) {
                    return None;
                }
                c.shares.push(d);
            }
            Some(())
        },
    ),
    (
        "crypto",
        "comma-separated BUS[:queues=N] of virtio-crypto devices on cryptodev-backend-builtin with queues=N; test only :corrupt=R@O, :corrupt-kat=O (fe.0.0009)",
        |c, v| {
            for item in v.split(',') {
                let d = crate::crypto::CryptoConfig::parse(item)?;
                if c.crypto.iter().any(|x| x.bus == d.bus) {
                    return None;
                }
                c.crypto.push(d);
            }
            Some(())
        },
    ),
    (
        "gpu",
        "comma-separated BUS:WxH[:scanouts=N][:edid][:dump] of virtio-gpu devices: QEMU's xres x yres, max_outputs, edid=on, a screendump by the runner at the gpu.scanout marker (fe.0.0007:640x480:edid:dump); test only: :flip, one pixel drawn wrong",
        |c, v| {
            for item in v.split(',') {
                let d = crate::gpu::GpuConfig::parse(item)?;
                if c.gpu.iter().any(|x| x.bus == d.bus) {
                    return None;
                }
                c.gpu.push(d);
            }
            Some(())
        },
    ),
    (
        "balloon",
        "BUS[:inflate=N][:stats][:report][:hint]: the balloon, N pages inflated and held by the host's peer, statistics read by it, free-page-reporting=on, free-page-hint=on (fe.0.0005:inflate=64:stats:report)",
        |c, v| {
            c.balloon = Some(crate::balloon::BalloonConfig::parse(v)?);
            Some(())
        },
    ),
    (
        "p9-corrupt",
        "test only: N@OFFSET, p9.write writes that byte of its file N inverted (the runner's check must fail)",
        |c, v| {
            c.p9_corrupt = Some(crate::p9::Corrupt::parse(v)?);
            Some(())
        },
    ),
    (
        "mem",
        "BUS:block=SIZE:region=SIZE:requested=SIZE:maxmem=SIZE[:resize=SIZE]: the virtio-mem device, its block size, region, requested size, -m maxmem=, and the size the host sets at `# zvtest: mem resize` (fe.0.0011:block=1M:region=256M:requested=64M:maxmem=1G:resize=32M)",
        |c, v| {
            c.mem = Some(crate::balloon::MemConfig::parse(v)?);
            Some(())
        },
    ),
    (
        "fs-corrupt",
        "test only: fs.write writes this byte offset of its file inverted (the runner's share check must fail)",
        |c, v| {
            c.fs_corrupt = Some(ranged(v, 0, crate::virtiofs::FILE_SIZE - 1)? as u32);
            Some(())
        },
    ),
    (
        "rng-loop",
        "test only: BUS, virtio.rng puts one looped descriptor chain on that virtio-rng after its first setup: QEMU's device sets DEVICE_NEEDS_RESET, the check must name it",
        |c, v| {
            c.rng_loop = Some(v.parse().ok()?);
            Some(())
        },
    ),
    (
        "sigp-expect",
        "ORDER:CC[:0xSTATUS], ORDER a SIGP order's name (sense, stop, set-prefix, ...) or code (0xff), CC 0-3, STATUS only with cc 1 (test only)",
        |c, v| {
            c.sigp_expect = Some(crate::sigp::Claim::parse(v)?);
            Some(())
        },
    ),
    (
        "inject",
        "fail, hang, pgm, forever, oom, ext, io, mcck, sclp, cpu, heap, double or steal",
        |c, v| {
            for word in list(v)? {
                let (_, inj) = Inject::ALL.iter().find(|(n, _)| *n == word)?;
                if c.inject.contains(inj) {
                    return None;
                }
                c.inject.push(*inj);
            }
            Some(())
        },
    ),
];

/// Comma-separated, none empty, none twice.
fn list(v: &str) -> Option<Vec<String>> {
    let items: Vec<String> = v.split(',').map(|s| s.to_string()).collect();
    let twice = items
        .iter()
        .enumerate()
        .any(|(i, s)| items[..i].contains(s));
    if items.iter().any(|s| s.is_empty()) || twice {
        return None;
    }
    Some(items)
}

/// Check selectors: names are lower-case letters, digits, '.' and '-';
/// globs add '*' and '?'.
fn selectors(v: &str) -> Option<Vec<String>> {
    let ok = |s: &String| {
        s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-*?".contains(&b))
    };
    list(v).filter(|items| items.iter().all(ok))
}

pub use crate::number::digits;

fn decimal(v: &str) -> Option<u64> {
    digits(v, 10)
}

fn number(v: &str) -> Option<u64> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => digits(hex, 16),
        None => decimal(v),
    }
}

fn ranged(v: &str, lo: u64, hi: u64) -> Option<u64> {
    number(v).filter(|n| (lo..=hi).contains(n))
}

fn size(v: &str) -> Option<u64> {
    let (digits, shift) = match v.as_bytes().last()? {
        b'K' | b'k' => (&v[..v.len() - 1], 10),
        b'M' | b'm' => (&v[..v.len() - 1], 20),
        b'G' | b'g' => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    decimal(digits)?
        .checked_mul(1u64 << shift)
        .filter(|&b| b > 0)
}

/// How many bytes the image's command-line area holds, the closing NUL
/// included (boot/layout.h: 0x10480 up to 0x11000; the image tells QEMU so
/// at 0x10430).
pub const AREA_SIZE: usize = 0xb80;

/// What the image's command-line area starts with until QEMU copies a
/// command line over it (boot/layout.h): not ASCII, so no command line
/// starts with it.
pub const NOT_PASSED: u8 = 0xff;

/// Whether a command line reached the area: QEMU writes one (perhaps
/// empty) over the marker for every -kernel boot whose -append fits.
pub fn passed(raw: &[u8]) -> bool {
    raw.first() != Some(&NOT_PASSED)
}

/// The words of a command line: QEMU's NUL padding ends it.
pub fn text(raw: &[u8]) -> &[u8] {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    &raw[..end]
}

/// Whether `inject=` names `what`, read before there is a heap to parse
/// with (for faults injected into start-up itself). A malformed line is
/// reported later by [`parse`].
pub fn early_inject(raw: &[u8], what: Inject) -> bool {
    text(raw)
        .split(|b| b.is_ascii_whitespace())
        .filter_map(|w| w.strip_prefix(b"inject="))
        .flat_map(|v| v.split(|&b| b == b','))
        .any(|n| n == what.name().as_bytes())
}

/// Parses a command line. `raw` may carry QEMU's NUL padding.
pub fn parse(raw: &[u8]) -> Result<Config, CmdlineError> {
    let text = core::str::from_utf8(text(raw)).map_err(|_| CmdlineError::NotAscii)?;
    if !text
        .bytes()
        .all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t' || b == b'\n')
    {
        return Err(CmdlineError::NotAscii);
    }
    let mut cfg = Config::default();
    let mut seen: Vec<&str> = Vec::new();
    for word in text.split_ascii_whitespace() {
        let Some((key, value)) = word.split_once('=') else {
            return Err(CmdlineError::NotKeyValue(word.to_string()));
        };
        let Some(&(option, expected, set)) = OPTIONS.iter().find(|(n, _, _)| *n == key) else {
            return Err(CmdlineError::UnknownOption(key.to_string()));
        };
        if seen.contains(&option) {
            return Err(CmdlineError::Repeated(option));
        }
        seen.push(option);
        set(&mut cfg, value).ok_or_else(|| CmdlineError::BadValue {
            option,
            value: value.to_string(),
            expected,
        })?;
    }
    Ok(cfg)
}

/// The words of a command line that [`parse`] reads back as `cfg`: one
/// `key=value` per setting that is not the default, in a fixed order (what
/// the host is told first: `expect-mem`, `expect-cpus`, `qemu-version`,
/// `diag288`; then the selection and run settings; then the devices:
/// `devices`, `hotplug`, `ram-end`, `legacy-devices`).
///
/// For every configuration `parse` can give, `parse(write(c)) == c` (the
/// round-trip tests hold both to it); values out of the parser's ranges
/// are written as they are, for the parser to refuse. Sizes are written in
/// MiB where they are whole MiB (`expect-mem=128M`), addresses in hex.
pub fn words(cfg: &Config) -> Vec<String> {
    use crate::fmt::Hex;
    use crate::format;
    let default = Config::default();
    let mut out = Vec::new();
    let mut word = |key: &str, value: &str| out.push(format!("{}={}", key, value));
    if let Some(bytes) = cfg.expect_mem {
        word("expect-mem", &size_text(bytes));
    }
    if let Some(n) = cfg.expect_cpus {
        word("expect-cpus", &format!("{}", n));
    }
    if let Some(n) = cfg.cpu_plug {
        word("cpu-plug", &format!("{}", n));
    }
    if let Some((major, minor)) = cfg.qemu_version {
        word("qemu-version", &format!("{}.{}", major, minor));
    }
    match (cfg.diag288, cfg.diag288_expire) {
        (None, _) => {}
        (Some(false), _) => word("diag288", "absent"),
        (Some(true), false) => word("diag288", "present"),
        (Some(true), true) => word("diag288", "expire"),
    }
    if !cfg.only.is_empty() {
        word("only", &cfg.only.join(","));
    }
    if !cfg.skip.is_empty() {
        word("skip", &cfg.skip.join(","));
    }
    if cfg.seed != default.seed {
        word("seed", &format!("{}", Hex(cfg.seed)));
    }
    if cfg.stress != default.stress {
        word("stress", &format!("{}", cfg.stress));
    }
    if !cfg.index_wrap {
        word("index-wrap", "no");
    }
    if cfg.verbose != default.verbose {
        word("verbose", &format!("{}", cfg.verbose));
    }
    if cfg.timeout_ms != default.timeout_ms {
        word("timeout", &format!("{}", cfg.timeout_ms));
    }
    if let Some(ms) = cfg.host_wait_ms {
        word("host-wait", &format!("{}", ms));
    }
    if !cfg.inject.is_empty() {
        let names: Vec<&str> = cfg.inject.iter().map(|i| i.name()).collect();
        word("inject", &names.join(","));
    }
    if let Some([a, b]) = cfg.balloon_pages {
        word("balloon-pages", &format!("{},{}", a, b));
    }
    if !cfg.bench.is_empty() {
        let names: Vec<&str> = cfg.bench.iter().map(|b| b.name()).collect();
        word("bench", &names.join(","));
    }
    if cfg.bench_ms != default.bench_ms {
        word("bench-ms", &format!("{}", cfg.bench_ms));
    }
    if !cfg.scratch.is_empty() {
        let items: Vec<String> = cfg.scratch.iter().map(|b| format!("{}", b)).collect();
        word("scratch", &items.join(","));
    }
    if !cfg.disks.is_empty() {
        let items: Vec<String> = cfg.disks.iter().map(|d| d.item()).collect();
        word("disks", &items.join(","));
    }
    if let Some(id) = &cfg.scsi_hotplug {
        word("scsi-hotplug", &format!("{}", id));
    }
    if !cfg.nets.is_empty() {
        let items: Vec<String> = cfg.nets.iter().map(|n| n.item()).collect();
        word("nets", &items.join(","));
    }
    if !cfg.serial.is_empty() {
        let items: Vec<String> = cfg.serial.iter().map(|d| d.item()).collect();
        word("serial", &items.join(","));
    }
    if !cfg.shares.is_empty() {
        let items: Vec<String> = cfg.shares.iter().map(|d| d.item()).collect();
        word("shares", &items.join(","));
    }
    if !cfg.crypto.is_empty() {
        let items: Vec<String> = cfg.crypto.iter().map(|d| d.item()).collect();
        word("crypto", &items.join(","));
    }
    if let Some(c) = &cfg.p9_corrupt {
        word("p9-corrupt", &c.item());
    }
    if let Some(b) = &cfg.balloon {
        word("balloon", &b.item());
    }
    if let Some(m) = &cfg.mem {
        word("mem", &m.item());
    }
    if !cfg.input.is_empty() {
        let items: Vec<String> = cfg.input.iter().map(|d| d.item()).collect();
        word("input", &items.join(","));
    }
    if let Some(at) = cfg.fs_corrupt {
        word("fs-corrupt", &format!("{}", at));
    }
    if let Some(bus) = cfg.rng_loop {
        word("rng-loop", &format!("{}", bus));
    }
    if let Some(claim) = &cfg.sigp_expect {
        word("sigp-expect", &claim.item());
    }
    if !cfg.gpu.is_empty() {
        let items: Vec<String> = cfg.gpu.iter().map(|d| d.item()).collect();
        word("gpu", &items.join(","));
    }
    if let Some(devices) = &cfg.devices {
        let items: Vec<String> = devices
            .iter()
            .map(|e| {
                let mut item = format!("{}", e);
                if let Some((_, c)) = cfg.virtio.iter().find(|(b, _)| *b == e.bus) {
                    // An item with no attribute has no entry in `virtio`:
                    // the default revision is written when nothing else is.
                    if c.max_revision != VirtioConfig::default().max_revision || !c.packed {
                        item.push_str(&format!(":rev{}", c.max_revision));
                    }
                    if c.packed {
                        item.push_str(":packed");
                    }
                }
                item
            })
            .collect();
        word("devices", &none_or_list(&items));
    }
    if !cfg.hotplug.is_empty() {
        let items: Vec<String> = cfg
            .hotplug
            .iter()
            .map(|(add, e)| format!("{}{}", if *add { "+" } else { "-" }, e))
            .collect();
        word("hotplug", &items.join(","));
    }
    if let Some(end) = cfg.ram_end {
        word("ram-end", &format!("{}", Hex(end)));
    }
    if let Some(legacy) = &cfg.legacy_devices {
        let items: Vec<String> = legacy
            .iter()
            .map(|(name, queues)| format!("{}:{}", name.as_str(), *queues))
            .collect();
        word("legacy-devices", &none_or_list(&items));
    }
    out
}

/// [`words`], separated by spaces: the whole command line.
pub fn write(cfg: &Config) -> String {
    words(cfg).join(" ")
}

impl Config {
    /// This configuration as a command line: see [`write()`].
    pub fn to_command_line(&self) -> String {
        write(self)
    }
}

/// `128M` for whole MiB, `4K` for whole KiB, else the bytes.
fn size_text(bytes: u64) -> String {
    match bytes {
        0 => crate::format!("{}", bytes),
        b if b % (1 << 20) == 0 => crate::format!("{}M", b >> 20),
        b if b % (1 << 10) == 0 => crate::format!("{}K", b >> 10),
        b => crate::format!("{}", b),
    }
}

/// `a,b,c`, or `none` for no items.
fn none_or_list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_padding_give_defaults() {
        assert_eq!(parse(b"").unwrap(), Config::default());
        assert_eq!(parse(b"\0\0\0garbage").unwrap(), Config::default());
        assert_eq!(parse(b"   ").unwrap(), Config::default());
    }

    #[test]
    fn all_options() {
        let c = parse(b"only=pgm,heap.* skip=heap.stress seed=0x10 stress=7 verbose=2 timeout=250 expect-mem=128M inject=fail,hang\0").unwrap();
        assert_eq!(c.only, ["pgm", "heap.*"]);
        assert_eq!(c.skip, ["heap.stress"]);
        assert_eq!(c.seed, 16);
        assert_eq!(c.stress, 7);
        assert_eq!(c.verbose, 2);
        assert_eq!(c.timeout_ms, 250);
        assert_eq!(c.host_wait_ms, None);
        assert_eq!(parse(b"host-wait=1500").unwrap().host_wait_ms, Some(1500));
        assert_eq!(c.expect_mem, Some(128 << 20));
        assert_eq!(c.inject, [Inject::Fail, Inject::Hang]);
        assert_eq!(parse(b"expect-mem=2G").unwrap().expect_mem, Some(2 << 30));
        assert_eq!(parse(b"expect-mem=4096").unwrap().expect_mem, Some(4096));
        assert_eq!(parse(b"devices=none").unwrap().devices, Some(Vec::new()));
        let h = parse(b"hotplug=+fe.0.0007:rng,-fe.0.0001:blk")
            .unwrap()
            .hotplug;
        assert_eq!((h.len(), h[0].0, h[1].0), (2, true, false));
        assert_eq!(crate::format!("{}", h[1].1), "fe.0.0001:blk");
        let lun = parse(b"scsi-hotplug=fe.0.0006/0/5").unwrap().scsi_hotplug;
        assert_eq!(lun.and_then(|d| d.lun), Some((0, 5)));
        assert!(
            parse(b"scsi-hotplug=fe.0.0006").is_err(),
            "a LUN, not a controller"
        );
        assert_eq!(
            parse(b"ram-end=0x7c80000").unwrap().ram_end,
            Some(0x7c8_0000)
        );
        assert_eq!(parse(b"ram-end=124M").unwrap().ram_end, Some(124 << 20));
        let l = parse(b"legacy-devices=console:2,blk:1")
            .unwrap()
            .legacy_devices
            .unwrap();
        assert_eq!(l, [("console".to_string(), 2), ("blk".to_string(), 1)]);
        assert_eq!(
            parse(b"legacy-devices=none").unwrap().legacy_devices,
            Some(Vec::new())
        );
        assert_eq!(
            parse(b"devices=fe.0.0001:blk")
                .unwrap()
                .devices
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn crypto() {
        let c = parse(b"crypto=fe.0.0009,fe.0.0019:queues=2:corrupt=1@5").unwrap();
        assert_eq!(c.crypto.len(), 2);
        assert_eq!((c.crypto[0].queues, c.crypto[1].queues), (1, 2));
        assert_eq!(write(&c), "crypto=fe.0.0009,fe.0.0019:queues=2:corrupt=1@5");
        for bad in [
            &b"crypto=fe.0.0009,fe.0.0009"[..],
            b"crypto=fe.0.0009:queues=0",
            b"crypto=",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn balloon_and_mem() {
        let c = parse(
            b"balloon=fe.0.0005:inflate=64:stats mem=fe.0.0011:block=1M:region=256M:requested=64M:maxmem=1G",
        )
        .unwrap();
        assert_eq!(c.balloon.as_ref().map(|b| b.inflate), Some(64));
        assert_eq!(c.mem.as_ref().map(|m| m.region), Some(256 << 20));
        assert_eq!(
            write(&c),
            "balloon=fe.0.0005:inflate=64:stats mem=fe.0.0011:block=1M:region=256M:requested=64M:maxmem=1G"
        );
        for bad in [
            &b"balloon=fe.0.0005:inflate=x"[..],
            b"balloon=fe.0.0005 balloon=fe.0.0006",
            b"mem=fe.0.0011:block=1M",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn gpu() {
        let c = parse(b"gpu=fe.0.0007:640x480:edid:dump,fe.1.0001:1024x768").unwrap();
        assert_eq!(c.gpu.len(), 2);
        assert!(c.gpu[0].edid && c.gpu[0].dump && !c.gpu[1].edid);
        assert_eq!((c.gpu[1].width, c.gpu[1].height), (1024, 768));
        assert_eq!(
            write(&c),
            "gpu=fe.0.0007:640x480:edid:dump,fe.1.0001:1024x768"
        );
        for bad in [
            &b"gpu=fe.0.0007:640x480,fe.0.0007:800x600"[..],
            b"gpu=fe.0.0007",
            b"gpu=fe.0.0007:640x480:dump:dump",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn input_devices() {
        let c = parse(b"input=fe.0.0008:kbd,fe.0.000e:mouse,fe.0.000f:tablet").unwrap();
        assert_eq!(c.input.len(), 3);
        assert_eq!(c.input[2].model, crate::input::Model::Tablet);
        assert_eq!(
            write(&c),
            "input=fe.0.0008:kbd,fe.0.000e:mouse,fe.0.000f:tablet"
        );
        for bad in [
            &b"input=fe.0.0008:kbd,fe.0.0008:mouse"[..],
            b"input=fe.0.0008",
            b"input=fe.0.0008:pen",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn sigp_expect() {
        let c = parse(b"sigp-expect=stop:1:0x40").unwrap();
        assert_eq!(
            c.sigp_expect,
            Some(crate::sigp::Claim {
                order: 0x05,
                cc: 1,
                status: Some(0x40)
            })
        );
        assert_eq!(write(&c), "sigp-expect=stop:1:0x40");
        assert!(parse(b"sigp-expect=stop:0:0x40").is_err());
        assert!(parse(b"sigp-expect=halt:0").is_err());
    }

    #[test]
    fn index_wrap() {
        assert!(Config::default().index_wrap);
        let c = parse(b"index-wrap=no").unwrap();
        assert!(!c.index_wrap);
        assert_eq!(write(&c), "index-wrap=no");
        assert!(parse(b"index-wrap=yes").unwrap().index_wrap);
        assert_eq!(write(&parse(b"index-wrap=yes").unwrap()), "");
        assert!(parse(b"index-wrap=0").is_err());
        assert!(parse(b"index-wrap=").is_err());
    }

    #[test]
    fn rng_loop() {
        let c = parse(b"rng-loop=fe.0.0004").unwrap();
        assert_eq!(c.rng_loop, Some("fe.0.0004".parse().unwrap()));
        assert_eq!(write(&c), "rng-loop=fe.0.0004");
        assert!(parse(b"rng-loop=4").is_err());
        assert!(parse(b"rng-loop=").is_err());
    }

    #[test]
    fn fs_corrupt() {
        let c = parse(b"fs-corrupt=17").unwrap();
        assert_eq!(c.fs_corrupt, Some(17));
        assert_eq!(write(&c), "fs-corrupt=17");
        assert!(parse(b"fs-corrupt=20011").is_err());
        assert!(parse(b"fs-corrupt=x").is_err());
    }

    #[test]
    fn shares() {
        let c = parse(b"shares=fe.0.000a:zvtest:tree,fe.0.0010:fs").unwrap();
        assert_eq!(c.shares.len(), 2);
        assert!(c.shares[0].tree && !c.shares[1].tree);
        assert_eq!(write(&c), "shares=fe.0.000a:zvtest:tree,fe.0.0010:fs");
        for bad in [
            &b"shares=fe.0.000a:a,fe.0.000a:b"[..],
            b"shares=fe.0.000a",
            b"shares=fe.0.000a:t:ro",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn p9_corrupt() {
        let c = parse(b"p9-corrupt=1@4095").unwrap();
        assert_eq!(
            c.p9_corrupt,
            Some(crate::p9::Corrupt {
                file: 1,
                offset: 4095
            })
        );
        assert_eq!(write(&c), "p9-corrupt=1@4095");
        for bad in [
            &b"p9-corrupt=1@4096"[..],
            b"p9-corrupt=9@0",
            b"p9-corrupt=x",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn serial_devices() {
        let c =
            parse(b"serial=fe.0.0003:max=4:emerg:c0=zv.con:p1=zv.a,fe.0.0004:max=1:c0").unwrap();
        assert_eq!(c.serial.len(), 2);
        assert_eq!(c.serial[0].ports.len(), 2);
        assert!(c.serial[0].emergency && !c.serial[1].multiport());
        assert_eq!(
            write(&c),
            "serial=fe.0.0003:max=4:emerg:c0=zv.con:p1=zv.a,fe.0.0004:max=1:c0"
        );
        for bad in [
            &b"serial=fe.0.0003:p1,fe.0.0003:p2"[..],
            b"serial=fe.0.0003:max=1:p1",
            b"serial=fe.0.0003:p1=a:p2=a",
            b"serial=fe.0.0003:close=1",
            b"serial=",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(
                matches!(
                    e,
                    CmdlineError::BadValue {
                        option: "serial",
                        ..
                    }
                ),
                "{:?}: {e:?}",
                core::str::from_utf8(bad)
            );
        }
    }

    #[test]
    fn repeated_keys_signs_and_devices() {
        assert_eq!(
            parse(b"seed=1 stress=2 seed=3").unwrap_err(),
            CmdlineError::Repeated("seed")
        );
        assert_eq!(
            parse(b"only=pgm only=heap").unwrap_err(),
            CmdlineError::Repeated("only")
        );
        let msg = crate::format!("{}", CmdlineError::Repeated("only"));
        assert!(msg.starts_with("option 'only' given twice"), "{msg}");
        for bad in [
            &b"seed=+5"[..],
            b"stress=+2",
            b"timeout=+100",
            b"host-wait=+100",
            b"expect-mem=+128M",
            b"expect-cpus=+1",
            b"qemu-version=+7.2",
            b"qemu-version=7.+2",
            b"devices=+fe.0.0001:blk",
            b"devices=fe.+0.0001:blk",
            b"devices=fe.0.+001:blk",
            b"legacy-devices=console:+2",
            b"balloon-pages=+1,2",
            b"seed=0x+10",
            b"only=pgm,pgm",
            b"inject=fail,fail",
            b"devices=fe.0.0001:blk,fe.0.0001:net",
            b"devices=fe.0.0001:blk:rev3",
            b"devices=fe.0.0001:blk:packed:packed",
            b"devices=fe.0.0001:blk:rev1:rev2",
            b"devices=fe.0.0001:blk:fast",
            b"balloon-pages=16384",
            b"expect-cpus=0",
        ] {
            assert!(
                matches!(parse(bad), Err(CmdlineError::BadValue { .. })),
                "{:?} accepted",
                core::str::from_utf8(bad)
            );
        }
        let c = parse(b"devices=fe.0.0002:net:rev1,fe.0.0001:blk:packed,fe.0.0003:rng").unwrap();
        let bus = |s| crate::inventory::parse_bus_id(s).unwrap();
        assert_eq!(c.devices.as_ref().map(Vec::len), Some(3));
        assert_eq!(
            c.virtio_config(bus("fe.0.0001")),
            Some(VirtioConfig {
                max_revision: 2,
                packed: true
            })
        );
        assert_eq!(
            c.virtio_config(bus("fe.0.0002")),
            Some(VirtioConfig {
                max_revision: 1,
                packed: false
            })
        );
        assert_eq!(
            c.virtio_config(bus("fe.0.0003")),
            Some(VirtioConfig::default())
        );
        assert_eq!(parse(b"").unwrap().virtio_config(bus("fe.0.0003")), None);
        let c = parse(b"balloon-pages=16384,0x2000 expect-cpus=4").unwrap();
        assert_eq!(c.balloon_pages, Some([16384, 8192]));
        assert_eq!(c.expect_cpus, Some(4));
        assert_eq!(parse(b"cpu-plug=3").unwrap().cpu_plug, Some(3));
        assert!(parse(b"cpu-plug=0").is_err());
        assert!(parse(b"cpu-plug=248").is_err());
        assert_eq!(parse(b"diag288=present").unwrap().diag288, Some(true));
        assert_eq!(parse(b"").unwrap().diag288, None);
        // Leading zeros are digits, not signs.
        assert_eq!(parse(b"seed=007").unwrap().seed, 7);
    }

    #[test]
    fn messages_escape_what_they_quote() {
        let e = CmdlineError::BadValue {
            option: "seed",
            value: "1\x1b[2J".into(),
            expected: "a number",
        };
        assert_eq!(
            crate::format!("{}", e),
            "bad value '1\\x1b[2J' for seed: expected a number"
        );
    }

    #[test]
    fn a_double_completion_is_injected_on_request() {
        let c = parse(b"inject=double,cpu").unwrap();
        assert_eq!(c.inject, [Inject::Double, Inject::Cpu]);
        assert_eq!(Inject::Double.name(), "double");
        assert!(write(&c).contains("inject=double,cpu"));
        assert!(parse(b"inject=doubles").is_err());
        assert_eq!(parse(b"inject=steal").unwrap().inject, [Inject::Steal]);
    }

    #[test]
    fn early_injections_are_found_without_parsing() {
        assert!(early_inject(
            b"seed=1 inject=fail,sclp\0garbage",
            Inject::Sclp
        ));
        assert!(!early_inject(b"inject=fail", Inject::Sclp));
        assert!(!early_inject(b"xinject=sclp", Inject::Sclp));
        assert!(!early_inject(b"\0inject=sclp", Inject::Sclp));
    }

    #[test]
    fn the_area_is_as_the_entry_code_lays_it_out() {
        let layout = include_str!("../../../boot/layout.h");
        let define = |name: &str| -> usize {
            let line = layout
                .lines()
                .find(|l| l.split_whitespace().nth(1) == Some(name))
                .unwrap_or_else(|| panic!("{name} not in layout.h"));
            let v = line.split_whitespace().nth(2).unwrap();
            usize::from_str_radix(v.trim_start_matches("0x"), 16).unwrap()
        };
        assert_eq!(define("IPL_PARAMS_END") - define("IPL_CMDLINE"), AREA_SIZE);
        assert_eq!(define("IPL_CMDLINE_NOT_PASSED"), usize::from(NOT_PASSED));
    }

    #[test]
    fn a_command_line_that_never_came_is_told_apart() {
        assert!(passed(b"\0"), "an empty -append is still passed");
        assert!(passed(b"seed=1\0"));
        assert!(!passed(&[NOT_PASSED, 0, 0]));
        assert_eq!(parse(&[NOT_PASSED]), Err(CmdlineError::NotAscii));
    }

    #[test]
    fn errors_name_the_word() {
        let e = parse(b"seed=1 bogus=1").unwrap_err();
        assert_eq!(e, CmdlineError::UnknownOption("bogus".into()));
        let msg = crate::format!("{}", e);
        assert!(
            msg.contains("'bogus'") && msg.contains("expect-mem"),
            "{msg}"
        );
        assert_eq!(
            parse(b"verbose").unwrap_err(),
            CmdlineError::NotKeyValue("verbose".into())
        );
        for bad in [
            &b"stress=0"[..],
            b"stress=1001",
            b"verbose=3",
            b"seed=0x",
            b"seed=12a",
            b"timeout=0",
            b"host-wait=0",
            b"host-wait=600001",
            b"host-wait=2s",
            b"expect-mem=0",
            b"expect-mem=12Q",
            b"expect-mem=99999999999999G",
            b"inject=nothing",
            b"only=",
            b"only=a,,b",
            b"only=PGM",
            b"only=+pgm",
            b"skip=pgm;x",
            b"devices=fe.9.0001:blk",
            b"hotplug=fe.0.0001:blk",
            b"hotplug=+fe.0.0001",
            b"hotplug=+fe.0.0001:blk,",
            b"ram-end=xyz",
            b"legacy-devices=console",
            b"legacy-devices=:2",
            b"legacy-devices=console:300",
            b"qemu-version=7",
            b"qemu-version=a.b",
            b"diag288=yes",
            b"balloon-pages=5000000000",
        ] {
            assert!(
                matches!(parse(bad), Err(CmdlineError::BadValue { .. })),
                "{:?}",
                core::str::from_utf8(bad)
            );
        }
        let msg = crate::format!("{}", parse(b"stress=0").unwrap_err());
        assert_eq!(
            msg,
            "bad value '0' for stress: expected a number from 1 to 1000"
        );
        assert_eq!(parse(b"seed=\x01").unwrap_err(), CmdlineError::NotAscii);
        assert_eq!(parse(&[0xff, 0xfe]).unwrap_err(), CmdlineError::NotAscii);
    }

    #[test]
    fn the_writer_writes_what_the_parser_reads() {
        assert_eq!(write(&Config::default()), "");
        let line = "expect-mem=512M expect-cpus=2 qemu-version=10.0 diag288=expire \
                    only=pgm,heap.* skip=heap.stress seed=0x10 stress=7 verbose=2 timeout=250 \
                    inject=fail,hang balloon-pages=16384,8192 \
                    devices=fe.0.0001:blk:packed,fe.0.0002:net:rev1,fe.0.0003:rng:rev2,\
                    fe.1.0004:gpu:rev0:packed,fe.2.0005:cu-3270 \
                    hotplug=+fe.0.0007:rng,-fe.0.0001:blk ram-end=0x7c80000 \
                    legacy-devices=console:2,blk:1";
        let cfg = parse(line.as_bytes()).unwrap();
        assert_eq!(write(&cfg), line);
        assert_eq!(cfg.to_command_line(), line);
        assert_eq!(words(&cfg).len(), 16);
        // Sizes and lists in their short forms.
        let cfg = Config {
            expect_mem: Some(3 << 10),
            devices: Some(Vec::new()),
            legacy_devices: Some(Vec::new()),
            ..Config::default()
        };
        assert_eq!(
            write(&cfg),
            "expect-mem=3K devices=none legacy-devices=none"
        );
        let odd = Config {
            expect_mem: Some(1000),
            ..Config::default()
        };
        assert_eq!(write(&odd), "expect-mem=1000");
        assert_eq!(parse(write(&odd).as_bytes()), Ok(odd));
        // What the parser refuses is written as it is, for it to refuse.
        let bad = Config {
            stress: 0,
            ..Config::default()
        };
        assert!(matches!(
            parse(write(&bad).as_bytes()),
            Err(CmdlineError::BadValue {
                option: "stress",
                ..
            })
        ));
    }

    /// Generated configurations, written and parsed back, are what they
    /// were: the host's writer and the firmware's parser agree.
    mod round_trip {
        use super::*;
        use crate::inventory::{BusId, Entry};
        use proptest::prelude::*;

        fn bus() -> impl Strategy<Value = BusId> {
            (any::<u8>(), 0u8..=3, any::<u16>()).prop_map(|(cssid, ssid, devno)| BusId {
                cssid,
                ssid,
                devno,
            })
        }

        fn name() -> impl Strategy<Value = String> {
            "[a-zA-Z0-9-]{1,8}"
        }

        fn entry() -> impl Strategy<Value = Entry> {
            (bus(), name()).prop_map(|(bus, name)| Entry { bus, name })
        }

        /// Distinct, non-empty selectors.
        fn selectors() -> impl Strategy<Value = Vec<String>> {
            prop::collection::btree_set("[a-z0-9.*?-]{1,12}", 0..4)
                .prop_map(|s| s.into_iter().collect())
        }

        /// Sorted devices, one per bus id, and attributes for some of them
        /// (in device order, as the parser gives them).
        fn devices() -> impl Strategy<Value = (Vec<Entry>, Vec<(BusId, VirtioConfig)>)> {
            let attrs = proptest::option::of((0u8..=2, any::<bool>()));
            prop::collection::vec((entry(), attrs), 0..6).prop_map(|items| {
                let mut entries: Vec<Entry> = Vec::new();
                let mut virtio = Vec::new();
                for (e, attrs) in items {
                    if entries.iter().any(|x| x.bus == e.bus) {
                        continue;
                    }
                    if let Some((max_revision, packed)) = attrs {
                        virtio.push((
                            e.bus,
                            VirtioConfig {
                                max_revision,
                                packed,
                            },
                        ));
                    }
                    entries.push(e);
                }
                entries.sort();
                virtio.sort_by_key(|(b, _)| *b);
                (entries, virtio)
            })
        }

        fn disk_id() -> impl Strategy<Value = crate::disk::DiskId> {
            (bus(), proptest::option::of((any::<u8>(), any::<u16>())))
                .prop_map(|(bus, lun)| crate::disk::DiskId { bus, lun })
        }

        fn disk() -> impl Strategy<Value = crate::disk::DiskConfig> {
            (
                disk_id(),
                1u64..=1 << 40,
                9u32..=16,
                1u16..=u16::MAX,
                any::<bool>(),
                any::<bool>(),
                proptest::option::of("[a-zA-Z0-9_-]{1,20}"),
            )
                .prop_map(|(id, size, bs, queues, read_only, null, serial)| {
                    crate::disk::DiskConfig {
                        id,
                        size,
                        block_size: 1 << bs,
                        queues,
                        read_only,
                        null,
                        serial,
                    }
                })
        }

        /// A virtio-serial device: ports below `max`, distinct names, the
        /// closed and the dropped port serial ports.
        fn serial_device() -> impl Strategy<Value = crate::serial::SerialConfig> {
            (
                bus(),
                1u32..=511,
                any::<bool>(),
                0u32..=64 << 20,
                prop::collection::btree_map(
                    0u32..511,
                    (any::<bool>(), proptest::option::of("[a-zA-Z0-9._-]{1,12}")),
                    0..5,
                ),
                any::<prop::sample::Index>(),
                any::<bool>(),
                any::<bool>(),
            )
                .prop_map(|(bus, max, emergency, bytes, ports, pick, close, drop)| {
                    let mut c = crate::serial::SerialConfig::new(bus);
                    c.max_ports = max;
                    c.emergency = emergency;
                    c.bytes = bytes;
                    for (i, (id, (console, name))) in ports.into_iter().enumerate() {
                        c.ports.push(crate::serial::PortConfig {
                            id: id % max,
                            // Distinct: the index makes them so.
                            name: name.map(|n| std::format!("{n}{i}")),
                            console,
                        });
                    }
                    c.ports.sort_by_key(|p| p.id);
                    c.ports.dedup_by_key(|p| p.id);
                    let serial: Vec<u32> = c
                        .ports
                        .iter()
                        .filter(|p| !p.console)
                        .map(|p| p.id)
                        .collect();
                    if close && !serial.is_empty() {
                        c.close = Some(serial[pick.index(serial.len())]);
                    }
                    if drop && !serial.is_empty() {
                        c.drop = Some(serial[serial.len() - 1 - pick.index(serial.len())]);
                    }
                    c
                })
        }

        fn benches() -> impl Strategy<Value = Vec<Bench>> {
            Just(Bench::ALL.iter().map(|(_, b)| *b).collect::<Vec<_>>())
                .prop_shuffle()
                .prop_flat_map(|all| {
                    let n = all.len();
                    (Just(all), 0..=n).prop_map(|(all, k)| all[..k].to_vec())
                })
        }

        fn injections() -> impl Strategy<Value = Vec<Inject>> {
            Just(Inject::ALL.iter().map(|(_, i)| *i).collect::<Vec<_>>())
                .prop_shuffle()
                .prop_flat_map(|all| {
                    let n = all.len();
                    (Just(all), 0..=n).prop_map(|(all, k)| all[..k].to_vec())
                })
        }

        fn diag288() -> impl Strategy<Value = (Option<bool>, bool)> {
            prop::sample::select(
                &[
                    (None, false),
                    (Some(false), false),
                    (Some(true), false),
                    (Some(true), true),
                ][..],
            )
        }

        fn net() -> impl Strategy<Value = crate::net::NetConfig> {
            use crate::net::{NetConfig, NetPeer};
            (
                bus(),
                any::<[u8; 6]>(),
                prop::sample::select(&[NetPeer::None, NetPeer::Echo, NetPeer::User][..]),
                1u16..=crate::net::MAX_PAIRS as u16,
                any::<bool>(),
                proptest::option::of(crate::net::MIN_MTU as u16..=crate::net::MAX_MTU as u16),
                0u8..8,
            )
                .prop_map(|(bus, mac, peer, pairs, link, mtu, ctrl_off)| NetConfig {
                    bus,
                    mac,
                    peer,
                    pairs,
                    link,
                    mtu,
                    ctrl_off,
                })
        }

        fn input() -> impl Strategy<Value = (crate::input::Model, bool)> {
            (
                prop::sample::select(&crate::input::Model::ALL[..]),
                any::<bool>(),
            )
        }

        fn share() -> impl Strategy<Value = crate::share::ShareConfig> {
            (
                bus(),
                "[a-zA-Z0-9._-]{1,36}",
                any::<bool>(),
                proptest::option::of(1u16..=16),
            )
                .prop_map(|(bus, tag, tree, queues)| crate::share::ShareConfig {
                    bus,
                    tag,
                    tree,
                    queues,
                })
        }

        fn balloon() -> impl Strategy<Value = crate::balloon::BalloonConfig> {
            (
                bus(),
                0u32..=crate::balloon::MAX_INFLATE,
                any::<[bool; 4]>(),
            )
                .prop_map(|(bus, inflate, [stats, report, hint, skew])| {
                    crate::balloon::BalloonConfig {
                        bus,
                        inflate,
                        stats,
                        report,
                        hint,
                        skew,
                    }
                })
        }

        fn mem() -> impl Strategy<Value = crate::balloon::MemConfig> {
            (
                bus(),
                0u32..12,
                1u64..64,
                0u64..64,
                proptest::option::of(0u64..64),
                1u64..64,
            )
                .prop_map(|(bus, shift, blocks, requested, resize, maxmem)| {
                    let block = 1u64 << (20 + shift);
                    crate::balloon::MemConfig {
                        bus,
                        block,
                        region: blocks * block,
                        requested: requested.min(blocks) * block,
                        maxmem: maxmem << 30,
                        resize: resize.map(|r| r.min(blocks) * block),
                    }
                })
        }

        fn crypto() -> impl Strategy<Value = crate::crypto::CryptoConfig> {
            (
                bus(),
                1u32..=crate::crypto::MAX_QUEUES,
                proptest::option::of((any::<u64>(), any::<u32>())),
                proptest::option::of(0u32..64),
            )
                .prop_map(|(bus, queues, corrupt, corrupt_kat)| {
                    crate::crypto::CryptoConfig {
                        bus,
                        queues,
                        corrupt,
                        corrupt_kat,
                    }
                })
        }

        fn gpu() -> impl Strategy<Value = crate::gpu::GpuConfig> {
            (
                bus(),
                1u32..=crate::gpu::MAX_SIDE,
                1u32..=crate::gpu::MAX_SIDE,
                (1u32..=crate::gpu::MAX_SCANOUTS, any::<(bool, bool, bool)>()),
            )
                .prop_map(|(bus, w, h, (scanouts, (edid, dump, flip)))| {
                    crate::gpu::GpuConfig {
                        bus,
                        width: w,
                        height: h,
                        scanouts,
                        edid,
                        dump,
                        flip,
                    }
                })
        }

        fn sigp_claim() -> impl Strategy<Value = crate::sigp::Claim> {
            (any::<u8>(), 0u8..4, proptest::option::of(any::<u32>())).prop_map(
                |(order, cc, status)| crate::sigp::Claim {
                    order,
                    cc,
                    status: status.filter(|_| cc == 1),
                },
            )
        }

        /// Every option: the older ones, then one entry per newer device
        /// option (add yours to the tuple).
        fn config() -> impl Strategy<Value = Config> {
            (
                base_config(),
                (
                    prop::collection::btree_map(bus(), share(), 0..3),
                    prop::collection::btree_map(bus(), crypto(), 0..3),
                    prop::option::of((0u32..3, any::<u64>())),
                    proptest::option::of(balloon()),
                    proptest::option::of(mem()),
                    prop::collection::btree_map(bus(), input(), 0..4),
                    proptest::option::of(0u32..crate::virtiofs::FILE_SIZE as u32),
                    prop::collection::btree_map(bus(), gpu(), 0..3),
                    proptest::option::of(1u16..248),
                    proptest::option::of(sigp_claim()),
                    proptest::option::of(bus()),
                ),
            )
                .prop_map(
                    |(
                        mut cfg,
                        (
                            shares,
                            crypto,
                            corrupt,
                            balloon,
                            mem,
                            input,
                            fs_corrupt,
                            gpus,
                            cpu_plug,
                            sigp,
                            rng_loop,
                        ),
                    )| {
                        cfg.rng_loop = rng_loop;
                        cfg.cpu_plug = cpu_plug;
                        cfg.crypto = crypto
                            .into_iter()
                            .map(|(bus, mut d)| {
                                d.bus = bus;
                                d
                            })
                            .collect();
                        cfg.p9_corrupt = corrupt.map(|(file, at)| crate::p9::Corrupt {
                            file,
                            offset: at % crate::p9::WRITTEN[file as usize],
                        });
                        cfg.balloon = balloon;
                        cfg.mem = mem;
                        cfg.input = input
                            .into_iter()
                            .map(|(bus, (model, mute))| crate::input::InputConfig {
                                bus,
                                model,
                                mute,
                            })
                            .collect();
                        cfg.fs_corrupt = fs_corrupt;
                        cfg.sigp_expect = sigp;
                        cfg.gpu = gpus
                            .into_iter()
                            .map(|(bus, mut d)| {
                                d.bus = bus;
                                d
                            })
                            .collect();
                        cfg.shares = shares
                            .into_iter()
                            .map(|(bus, mut d)| {
                                d.bus = bus;
                                d
                            })
                            .collect();
                        cfg
                    },
                )
        }

        fn base_config() -> impl Strategy<Value = Config> {
            let selection = (
                selectors(),
                selectors(),
                any::<u64>(),
                1u32..=1000,
                0u8..=2,
                (1u64..=600_000, proptest::option::of(1u64..=600_000)),
                injections(),
                any::<bool>(),
            );
            let host = (
                proptest::option::of(1u64..=u64::MAX >> 30),
                proptest::option::of(1u16..=u16::MAX),
                proptest::option::of((any::<u16>(), any::<u16>())),
                diag288(),
                proptest::option::of(any::<[u32; 2]>()),
                (benches(), 100u64..=600_000),
            );
            let devices = (
                proptest::option::of(devices()),
                prop::collection::vec((any::<bool>(), entry()), 0..4),
                proptest::option::of(any::<u64>()),
                proptest::option::of(prop::collection::vec((name(), any::<u8>()), 0..4)),
                (
                    prop::collection::btree_set(disk_id(), 0..3),
                    prop::collection::btree_map(disk_id(), disk(), 0..3),
                    prop::option::of(disk_id().prop_filter("a LUN", |d| d.lun.is_some())),
                    prop::collection::btree_map(bus(), net(), 0..3),
                    prop::collection::btree_map(bus(), serial_device(), 0..3),
                ),
            );
            (selection, host, devices).prop_map(
                |(
                    (
                        only,
                        skip,
                        seed,
                        stress,
                        verbose,
                        (timeout_ms, host_wait_ms),
                        inject,
                        index_wrap,
                    ),
                    (
                        mem,
                        cpus,
                        qemu_version,
                        (diag288, diag288_expire),
                        balloon_pages,
                        (bench, bench_ms),
                    ),
                    (
                        devices,
                        hotplug,
                        ram_end,
                        legacy_devices,
                        (scratch, disks, scsi_hotplug, nets, serial),
                    ),
                )| {
                    let (devices, virtio) = match devices {
                        Some((d, v)) => (Some(d), v),
                        None => (None, Vec::new()),
                    };
                    Config {
                        only,
                        skip,
                        seed,
                        stress,
                        index_wrap,
                        verbose,
                        timeout_ms,
                        host_wait_ms,
                        // Whole KiB, MiB or bytes alike.
                        expect_mem: mem.map(|m| m << (m % 3 * 10)),
                        expect_cpus: cpus,
                        inject,
                        devices,
                        virtio,
                        hotplug,
                        ram_end,
                        legacy_devices,
                        qemu_version,
                        diag288,
                        diag288_expire,
                        balloon_pages,
                        bench,
                        bench_ms,
                        scratch: scratch.into_iter().collect(),
                        disks: disks
                            .into_iter()
                            .map(|(id, mut d)| {
                                d.id = id;
                                d
                            })
                            .collect(),
                        scsi_hotplug,
                        nets: nets
                            .into_iter()
                            .map(|(bus, mut n)| {
                                n.bus = bus;
                                n
                            })
                            .collect(),
                        serial: serial
                            .into_iter()
                            .map(|(bus, mut d)| {
                                d.bus = bus;
                                d
                            })
                            .collect(),
                        ..Config::default()
                    }
                },
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: 512,
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            #[test]
            fn written_configurations_parse_back_the_same(cfg in config()) {
                let line = write(&cfg);
                prop_assert!(line.len() < 4096, "{line}");
                prop_assert_eq!(parse(line.as_bytes()), Ok(cfg.clone()), "{}", line);
                // Written again, the same text: one canonical form.
                prop_assert_eq!(write(&parse(line.as_bytes()).unwrap()), line);
            }
        }
    }

    /// Property tests: generated well-formed lines parse to what they say;
    /// each one broken in one way is refused with a message that names
    /// the word; arbitrary bytes never panic.
    mod generated {
        use super::*;
        use proptest::prelude::*;
        use std::sync::atomic::{AtomicUsize, Ordering};

        static TRIED: AtomicUsize = AtomicUsize::new(0);
        static REJECTED: AtomicUsize = AtomicUsize::new(0);

        /// One valid word per option, with the value it must parse to
        /// (as the option's Debug text).
        fn word() -> impl Strategy<Value = (&'static str, String)> {
            prop_oneof![
                (0u64..u64::MAX).prop_map(|n| ("seed", crate::format!("seed={}", n))),
                (0u64..u64::MAX).prop_map(|n| {
                    let mut s = String::from("seed=0x");
                    s.push_str(&std::format!("{n:x}"));
                    ("seed", s)
                }),
                (1u64..=1000).prop_map(|n| ("stress", crate::format!("stress={}", n))),
                (0u64..=2).prop_map(|n| ("verbose", crate::format!("verbose={}", n))),
                (1u64..=600_000).prop_map(|n| ("timeout", crate::format!("timeout={}", n))),
                (1u64..=600_000).prop_map(|n| ("host-wait", crate::format!("host-wait={}", n))),
                (1u64..=4096).prop_map(|n| ("expect-mem", crate::format!("expect-mem={}M", n))),
                (1u64..=248).prop_map(|n| ("expect-cpus", crate::format!("expect-cpus={}", n))),
                (0u8..=0xff, 0u8..=3, 0u16..=0xffff, any::<bool>(), 0u8..=3).prop_map(
                    |(c, s, d, packed, rev)| {
                        let mut w = std::format!("devices={c:x}.{s}.{d:04x}:blk");
                        if packed {
                            w.push_str(":packed");
                        }
                        if rev < 3 {
                            w.push_str(&std::format!(":rev{rev}"));
                        }
                        ("devices", w)
                    }
                ),
                (0u16..100, 0u16..100)
                    .prop_map(|(a, b)| ("qemu-version", std::format!("qemu-version={a}.{b}"))),
                prop::sample::select(&["absent", "present", "expire"][..])
                    .prop_map(|v| ("diag288", std::format!("diag288={v}"))),
                prop::sample::select(&["pgm", "heap.*", "*.stress", "css.hotplug"][..])
                    .prop_map(|v| ("only", std::format!("only={v}"))),
            ]
        }

        /// A line of distinct options.
        fn line() -> impl Strategy<Value = Vec<(&'static str, String)>> {
            prop::collection::vec(word(), 1..8).prop_map(|mut v| {
                let mut seen = Vec::new();
                v.retain(|(k, _)| {
                    let new = !seen.contains(k);
                    seen.push(*k);
                    new
                });
                v
            })
        }

        /// Ways to break one word.
        #[derive(Clone, Copy, Debug)]
        enum Break {
            SignedNumber,
            UnknownKey,
            NoEquals,
            Repeated,
            Empty,
            Trailing,
        }

        fn breaking() -> impl Strategy<Value = Break> {
            prop::sample::select(
                &[
                    Break::SignedNumber,
                    Break::UnknownKey,
                    Break::NoEquals,
                    Break::Repeated,
                    Break::Empty,
                    Break::Trailing,
                ][..],
            )
        }

        fn report() {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr().lock(),
                "cmdline: {} malformed lines tried, {} rejected naming the word, 0 accepted",
                TRIED.load(Ordering::SeqCst),
                REJECTED.load(Ordering::SeqCst)
            );
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: 512,
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            #[test]
            fn well_formed_lines_parse(words in line()) {
                let text = words.iter().map(|(_, w)| w.as_str()).collect::<Vec<_>>().join(" ");
                let cfg = parse(text.as_bytes());
                prop_assert!(cfg.is_ok(), "{text}: {:?}", cfg);
            }

            #[test]
            fn one_broken_word_is_refused_by_name(words in line(), which in any::<prop::sample::Index>(), how in breaking()) {
                let i = which.index(words.len());
                let (key, word) = words[i].clone();
                let mut broken: Vec<String> = words.iter().map(|(_, w)| w.clone()).collect();
                let named: String = match how {
                    Break::SignedNumber => {
                        let (k, v) = word.split_once('=').unwrap();
                        broken[i] = std::format!("{k}=+{v}");
                        std::format!("+{v}")
                    }
                    Break::UnknownKey => {
                        broken[i] = std::format!("x{word}");
                        std::format!("x{key}")
                    }
                    Break::NoEquals => {
                        broken[i] = word.replace('=', "");
                        broken[i].clone()
                    }
                    Break::Repeated => {
                        broken.push(word.clone());
                        key.to_string()
                    }
                    Break::Empty => {
                        broken[i] = std::format!("{key}=");
                        key.to_string()
                    }
                    Break::Trailing => {
                        broken[i] = std::format!("{word},");
                        key.to_string()
                    }
                };
                let text = broken.join(" ");
                TRIED.fetch_add(1, Ordering::SeqCst);
                let err = parse(text.as_bytes());
                prop_assert!(err.is_err(), "malformed line accepted: {text}");
                let msg = crate::format!("{}", err.unwrap_err());
                prop_assert!(msg.contains(named.as_str()), "{text}: message {msg:?} does not name {named:?}");
                REJECTED.fetch_add(1, Ordering::SeqCst);
                if TRIED.load(Ordering::SeqCst).is_multiple_of(512) {
                    report();
                }
            }

            #[test]
            fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..3000)) {
                let _ = parse(&bytes);
                let _ = early_inject(&bytes, Inject::Sclp);
            }
        }
    }
}
