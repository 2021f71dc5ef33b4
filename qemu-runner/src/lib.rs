//! Host side of zvtest: boot the s390x firmware under QEMU and judge its TAP.
//!
//! ```no_run
//! use qemu_runner::{run, RunOptions, Scenario};
//! use std::path::Path;
//!
//! let scenario = Scenario::new("big").memory_mib(512).smp(2);
//! let outcome = run(&scenario, Path::new("target/zvtest.elf"), &RunOptions::default())?;
//! if !outcome.passed() {
//!     outcome.print_failure();
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Devices the firmware should find, and hot plug once it is ready:
//!
//! ```
//! use qemu_runner::Scenario;
//!
//! let s = Scenario::new("hotplug")
//!     .virtio_ccw("virtio-blk-ccw", "fe.0.0001", "blk")
//!     .hot_plug("virtio-rng-ccw", "fe.0.0007", "rng")
//!     .hot_unplug("ccw-fe.0.0001");
//! assert_eq!(
//!     s.command_line(),
//!     "expect-mem=128M expect-cpus=1 devices=fe.0.0001:blk hotplug=+fe.0.0007:rng,-fe.0.0001:blk"
//! );
//! ```
//!
//! QMP commands sent the first time a console line appears (once each;
//! an error, no reply or a line that never comes fails the run):
//!
//! ```
//! use qemu_runner::Scenario;
//!
//! let s = Scenario::new("balloon")
//!     .virtio_ccw("virtio-balloon-ccw", "fe.0.0001", "balloon")
//!     .qmp_on_line(
//!         "# zvtest: config-change ready",
//!         r#"{"execute": "balloon", "arguments": {"value": 67108864}}"#,
//!     );
//! assert_eq!(s.validate(), Ok(()));
//! assert_eq!(s.line_commands[0].execute(), Ok("balloon".into()));
//! ```
//!
//! The firmware is told QEMU's version (`qemu-version=`, detected from
//! `<qemu> --version` when the scenario runs, or claimed), and the diag288
//! watchdog it has; `ZVTEST_QEMU` and `ZVTEST_QEMU_DATA` (`-L`) pick
//! another QEMU for every scenario:
//!
//! ```
//! use qemu_runner::{Diag288, Scenario};
//!
//! let s = Scenario::new("watchdog")
//!     .claim_qemu_version("10.0")
//!     .diag288(Diag288::Expire)
//!     .data_dir("/opt/qemu-10.0/usr/share/qemu")
//!     .append("only=hcall");
//! assert_eq!(
//!     s.command_line(),
//!     "expect-mem=128M expect-cpus=1 qemu-version=10.0 diag288=expire only=hcall"
//! );
//! assert!(s.qmp_events, "the runner watches for QEMU's WATCHDOG event");
//! ```

pub mod assess;
pub mod balloon;
pub mod defaults;
pub mod devices;
pub mod disks;
pub mod faults;
pub mod gpu;
pub mod hostile;
pub mod input;
pub mod junit;
pub mod mem;
pub mod net;
pub mod p9;
pub mod peers;
pub mod qemu_args;
pub mod qmp;
pub mod run;
pub mod scenario;
pub mod serial;
pub mod shares;
pub mod version;
pub mod virtiofs;

/// TAP, read (and written, by the firmware): the contract's.
pub use zvtest_contract::tap;

pub use assess::{judge, judge_run, Exit, RunFacts, Verdict};
pub use defaults::default_scenario;
pub use devices::CcwDevice;
pub use disks::{Disk, DiskCheck, Expect};
pub use peers::{Peer, PeerContext, PeerEnd, PeerOutcome, PeerSpec};
pub use qmp::{QmpError, QmpEvent};
pub use run::{kill_running_qemus, run, Run, RunOptions, STDERR_PREFIX};
pub use scenario::{
    Diag288, DiskId, HotplugStep, LegacyPage, LineCommand, Scenario, VersionWord, MAX_APPEND_LEN,
    QEMU_DATA_ENV, QEMU_ENV,
};
pub use tap::{Directive, Plan, Summary, TapParser, TapReport, TestResult, Yaml};
pub use version::{detect as detect_qemu_version, parse_version_output, QemuVersion};
/// Bus ids and inventory entries: the contract's (`Entry` was
/// `ExpectedDevice`).
pub use zvtest_contract::inventory::{BusId, Entry};
