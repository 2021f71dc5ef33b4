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

pub mod run;
pub mod scenario;
pub mod tap;
pub mod verdict;

pub use run::{run, Outcome, RunOptions, STDERR_PREFIX};
pub use scenario::{Scenario, MAX_APPEND_LEN, QEMU_ENV};
pub use tap::{Directive, Plan, Summary, TapParser, TapReport, TestResult, Yaml};
pub use verdict::{judge, Exit, Verdict};
