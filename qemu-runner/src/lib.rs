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
//!     "expect-mem=128M devices=fe.0.0001:blk hotplug=+fe.0.0007:rng,-fe.0.0001:blk"
//! );
//! ```

pub mod json;
pub mod qmp;
pub mod run;
pub mod scenario;
pub mod tap;
pub mod verdict;

pub use run::{run, Outcome, RunOptions, STDERR_PREFIX};
pub use scenario::{
    BusId, CcwDevice, ExpectedDevice, HotplugStep, LegacyPage, Scenario, MAX_APPEND_LEN, QEMU_ENV,
};
pub use tap::{Directive, Plan, Summary, TapParser, TapReport, TestResult, Yaml};
pub use verdict::{judge, Exit, Verdict};
