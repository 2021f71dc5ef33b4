//! The machine the checks run on, as start-up found it: what every check
//! gets (the configuration, storage, CPUs, the host, the devices).

use crate::arch;
use crate::cmdline::Config;
use crate::discovery::Inventory;
use crate::ebcdic::Name;
use crate::host::{self, HostKind};
use crate::memory::HeapRange;

/// What the checks get to work with.
pub struct Machine {
    pub cfg: Config,
    /// Storage size reported by SCLP.
    pub memory: u64,
    pub cpus: u16,
    /// The CPUs found and started (smp.rs).
    pub smp: crate::smp::Cpus,
    pub heap: HeapRange,
    pub host: HostInfo,
    pub inventory: Inventory,
    /// Whether a diag288 watchdog is there: as `diag288=` says, else found
    /// out by the first check that needs to know.
    pub diag288: Option<bool>,
}

pub struct HostInfo {
    pub kind: HostKind,
    pub level: u8,
    pub manufacturer: Name,
    pub machine_type: Name,
    pub control_program: Name,
    /// LPAR name and number (STSI 2.2.2), where we run in or under one.
    pub lpar: Option<(Name, u16)>,
    pub facilities: [u64; 4],
}

/// STSI's page: the host is identified before there is a heap.
#[repr(C, align(4096))]
struct StsiPage(core::cell::UnsafeCell<[u8; 4096]>);

// SAFETY: used once, by `HostInfo::probe`, before anything else runs.
unsafe impl Sync for StsiPage {}

static STSI_PAGE: StsiPage = StsiPage(core::cell::UnsafeCell::new([0; 4096]));

impl HostInfo {
    /// Identifies the host (STSI, STFLE). Runs once, at start-up.
    pub fn probe() -> HostInfo {
        // SAFETY: `probe` runs once, at start-up; nothing else uses the page.
        let page = unsafe { &mut *STSI_PAGE.0.get() };
        let level = arch::stsi_level();
        let (mut manufacturer, mut machine_type, mut control_program) =
            (Name::default(), Name::default(), Name::default());
        if arch::stsi(page, 1, 1, 1) == 0 {
            manufacturer = Name::decode(&page[32..48]);
            machine_type = Name::decode(&page[48..52]);
        }
        let mut lpar = None;
        if level >= 2 && arch::stsi(page, 2, 2, 2) == 0 {
            lpar = Some((
                Name::decode(&page[44..52]),
                u16::from_be_bytes([page[32], page[33]]),
            ));
        }
        if level >= 3 && arch::stsi(page, 3, 2, 2) == 0 && page[31] > 0 {
            control_program = Name::decode(&page[56..72]);
        }
        let mut facilities = [0u64; 4];
        arch::stfle(&mut facilities);
        HostInfo {
            kind: host::classify(level, manufacturer.as_str(), control_program.as_str()),
            level,
            manufacturer,
            machine_type,
            control_program,
            lpar,
            facilities,
        }
    }

    pub fn has_facility(&self, bit: usize) -> bool {
        bit < 256 && self.facilities[bit / 64] & (1 << (63 - bit % 64)) != 0
    }
}
