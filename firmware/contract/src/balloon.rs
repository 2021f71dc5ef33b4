//! The memory devices the host resizes: virtio-balloon (`balloon=`) and
//! virtio-mem (`mem=`). What the host configured and what its peer checks,
//! one definition for the firmware and the runner: the options, the
//! statistics' tags and the names QEMU gives them, and the lines the
//! firmware prints for the peer to compare.

use crate::inventory::{parse_bus_id, BusId};
use crate::number::{digits, size_text, size_value};
use alloc::string::String;

/// The balloon's page: page frame numbers count 4 KiB pages
/// (VIRTIO_BALLOON_PFN_SHIFT 12) whatever the guest's page size.
pub const PAGE: u64 = 4096;

/// How the host set up the balloon and takes part (`balloon=BUS[:inflate=N]
/// [:stats][:report][:hint][:skew]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalloonConfig {
    pub bus: BusId,
    /// Pages `balloon.inflate` gives the device; the host's peer holds
    /// QEMU's `query-balloon` to exactly this many (0: no inflate).
    pub inflate: u32,
    /// The peer asks for statistics (QOM `guest-stats-polling-interval`)
    /// and compares QOM `guest-stats` with what the firmware printed.
    pub stats: bool,
    /// The device was started with `free-page-reporting=on`.
    pub report: bool,
    /// The device was started with `free-page-hint=on`.
    pub hint: bool,
    /// Test only: inflate one page more than `inflate`, and post one byte
    /// more of free memory than printed, so that the peer's checks must
    /// fail. Never outside such a proof.
    pub skew: bool,
}

impl BalloonConfig {
    pub fn new(bus: BusId) -> Self {
        BalloonConfig {
            bus,
            inflate: 0,
            stats: false,
            report: false,
            hint: false,
            skew: false,
        }
    }

    pub fn parse(v: &str) -> Option<Self> {
        let mut parts = v.split(':');
        let mut c = BalloonConfig::new(parse_bus_id(parts.next()?)?);
        let mut seen: alloc::vec::Vec<&str> = alloc::vec::Vec::new();
        for attr in parts {
            let (key, value) = attr.split_once('=').unwrap_or((attr, ""));
            if seen.contains(&key) {
                return None;
            }
            seen.push(key);
            match (key, value) {
                ("inflate", v) => {
                    c.inflate = u32::try_from(digits(v, 10)?)
                        .ok()
                        .filter(|&n| (1..=MAX_INFLATE).contains(&n))?
                }
                ("stats", "") => c.stats = true,
                ("report", "") => c.report = true,
                ("hint", "") => c.hint = true,
                ("skew", "") => c.skew = true,
                _ => return None,
            }
        }
        Some(c)
    }

    /// The value [`BalloonConfig::parse`] reads back as `self`.
    pub fn item(&self) -> String {
        let mut s = crate::format!("{}", self.bus);
        if self.inflate != 0 {
            s.push_str(&crate::format!(":inflate={}", self.inflate));
        }
        for (on, word) in [
            (self.stats, ":stats"),
            (self.report, ":report"),
            (self.hint, ":hint"),
            (self.skew, ":skew"),
        ] {
            if on {
                s.push_str(word);
            }
        }
        s
    }
}

/// The most pages `inflate=` takes (64 MiB): the firmware allocates them.
pub const MAX_INFLATE: u32 = 16384;

/// One statistic: its tag (virtio 1.x 5.5.6.3), a short name for our
/// lines, and the name of its member in QEMU's QOM `guest-stats`
/// (hw/virtio/virtio-balloon.c, balloon_stat_names; tags 0 to 9 exist in
/// QEMU 7.2, 10.0 and 11.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub tag: u16,
    pub name: &'static str,
    pub qemu: &'static str,
}

pub const STATS: &[Stat] = &[
    Stat {
        tag: 0,
        name: "swap-in",
        qemu: "stat-swap-in",
    },
    Stat {
        tag: 1,
        name: "swap-out",
        qemu: "stat-swap-out",
    },
    Stat {
        tag: 2,
        name: "major-faults",
        qemu: "stat-major-faults",
    },
    Stat {
        tag: 3,
        name: "minor-faults",
        qemu: "stat-minor-faults",
    },
    Stat {
        tag: 4,
        name: "memfree",
        qemu: "stat-free-memory",
    },
    Stat {
        tag: 5,
        name: "memtot",
        qemu: "stat-total-memory",
    },
    Stat {
        tag: 6,
        name: "avail",
        qemu: "stat-available-memory",
    },
    Stat {
        tag: 7,
        name: "caches",
        qemu: "stat-disk-caches",
    },
    Stat {
        tag: 8,
        name: "htlb-pgalloc",
        qemu: "stat-htlb-pgalloc",
    },
    Stat {
        tag: 9,
        name: "htlb-pgfail",
        qemu: "stat-htlb-pgfail",
    },
];

pub fn stat(tag: u16) -> Option<&'static Stat> {
    STATS.iter().find(|s| s.tag == tag)
}

/// The line the firmware prints for each statistic it posted when the
/// device asked: `# balloon <bus> stat <tag> <name> <value>`.
pub fn stat_line(bus: BusId, tag: u16, value: u64) -> String {
    let name = stat(tag).map_or("?", |s| s.name);
    crate::format!("# balloon {} stat {} {} {}", bus, tag, name, value)
}

/// A [`stat_line`] read back: bus, tag, value.
pub fn parse_stat_line(line: &str) -> Option<(BusId, u16, u64)> {
    let mut w = line.trim().strip_prefix("# balloon ")?.split(' ');
    let bus = parse_bus_id(w.next()?)?;
    if w.next()? != "stat" {
        return None;
    }
    let tag = u16::try_from(digits(w.next()?, 10)?).ok()?;
    let name = w.next()?;
    let value = digits(w.next()?, 10)?;
    (w.next().is_none() && stat(tag).is_some_and(|s| s.name == name)).then_some((bus, tag, value))
}

/// How the host configured a virtio-mem device (`mem=BUS:block=SIZE:
/// region=SIZE:requested=SIZE:maxmem=SIZE[:resize=SIZE]`): QEMU's
/// `block-size`, the memory backend's size, `requested-size` at boot,
/// `-m maxmem=`, and the size the host sets over QMP after
/// `# zvtest: mem resize BUS` (`mem.resize`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemConfig {
    pub bus: BusId,
    pub block: u64,
    pub region: u64,
    pub requested: u64,
    pub maxmem: u64,
    pub resize: Option<u64>,
}

impl MemConfig {
    /// Where QEMU's device memory (the memory devices' space) ends for
    /// `storage` bytes of RAM: it starts at the RAM size rounded up to
    /// 1 GiB and holds `maxmem` less the RAM (seen on QEMU 10.0 and 11.1:
    /// DIAG 0x500 subcode 4 then gives this less 1).
    pub fn device_memory_end(&self, storage: u64) -> u64 {
        storage.next_multiple_of(1 << 30) + self.maxmem.saturating_sub(storage)
    }
}

impl MemConfig {
    pub fn parse(v: &str) -> Option<Self> {
        let mut parts = v.split(':');
        let bus = parse_bus_id(parts.next()?)?;
        let (mut block, mut region, mut requested, mut maxmem, mut resize) =
            (None, None, None, None, None);
        for attr in parts {
            let (key, value) = attr.split_once('=')?;
            let slot = match key {
                "block" => &mut block,
                "region" => &mut region,
                "requested" => &mut requested,
                "maxmem" => &mut maxmem,
                "resize" => &mut resize,
                _ => return None,
            };
            if slot.is_some() {
                return None;
            }
            // A requested size may be 0 (everything unplugged).
            let zero_ok = matches!(key, "requested" | "resize") && value == "0";
            *slot = Some(if zero_ok { 0 } else { size_value(value)? });
        }
        let c = MemConfig {
            bus,
            block: block?,
            region: region?,
            requested: requested?,
            maxmem: maxmem?,
            resize,
        };
        let fits = |s: u64| s <= c.region && s.is_multiple_of(c.block);
        (c.block.is_power_of_two()
            && c.region.is_multiple_of(c.block)
            && fits(c.requested)
            && c.resize.is_none_or(fits))
        .then_some(c)
    }

    pub fn item(&self) -> String {
        let mut s = crate::format!(
            "{}:block={}:region={}:requested={}:maxmem={}",
            self.bus,
            size_text(self.block).as_str(),
            size_text(self.region).as_str(),
            size_text(self.requested).as_str(),
            size_text(self.maxmem).as_str()
        );
        if let Some(r) = self.resize {
            s.push_str(&crate::format!(":resize={}", size_text(r).as_str()));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bus(s: &str) -> BusId {
        parse_bus_id(s).unwrap()
    }

    #[test]
    fn balloon_items_read_back() {
        let c = BalloonConfig::parse("fe.0.0005:inflate=64:stats:report").unwrap();
        assert_eq!(c.inflate, 64);
        assert!(c.stats && c.report && !c.hint && !c.skew);
        assert_eq!(c.item(), "fe.0.0005:inflate=64:stats:report");
        let all = BalloonConfig::parse("fe.0.0005:hint:skew:inflate=1").unwrap();
        assert_eq!(BalloonConfig::parse(&all.item()), Some(all));
        assert_eq!(
            BalloonConfig::parse("fe.0.0005"),
            Some(BalloonConfig::new(bus("fe.0.0005")))
        );
        for bad in [
            "",
            "fe.0.0005:inflate=0",
            "fe.0.0005:inflate=16385",
            "fe.0.0005:inflate=+1",
            "fe.0.0005:stats:stats",
            "fe.0.0005:stats=1",
            "fe.0.0005:other",
            "x:stats",
        ] {
            assert_eq!(BalloonConfig::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn stat_lines_read_back() {
        let l = stat_line(bus("fe.0.0005"), 4, 123_456);
        assert_eq!(l, "# balloon fe.0.0005 stat 4 memfree 123456");
        assert_eq!(parse_stat_line(&l), Some((bus("fe.0.0005"), 4, 123_456)));
        assert_eq!(parse_stat_line("# balloon fe.0.0005 stat 4 memtot 1"), None);
        assert_eq!(parse_stat_line("# balloon fe.0.0005 stat 10 x 1"), None);
        assert_eq!(parse_stat_line("# balloon fe.0.0005 stat 4 memfree"), None);
        let tags: alloc::vec::Vec<u16> = STATS.iter().map(|s| s.tag).collect();
        assert_eq!(tags, (0..10).collect::<alloc::vec::Vec<u16>>());
    }

    #[test]
    fn mem_items_read_back() {
        let c =
            MemConfig::parse("fe.0.0011:block=1M:region=256M:requested=64M:maxmem=1G:resize=32M")
                .unwrap();
        assert_eq!(
            (c.block, c.region, c.requested, c.resize),
            (1 << 20, 256 << 20, 64 << 20, Some(32 << 20))
        );
        assert_eq!(
            c.item(),
            "fe.0.0011:block=1M:region=256M:requested=64M:maxmem=1G:resize=32M"
        );
        let z = MemConfig::parse("fe.0.0011:block=2M:region=1G:requested=0:maxmem=2G").unwrap();
        assert_eq!((z.requested, z.resize), (0, None));
        assert_eq!(MemConfig::parse(&z.item()), Some(z));
        assert_eq!(c.device_memory_end(128 << 20), (1 << 30) + (896 << 20));
        assert!(MemConfig::parse("fe.0.0011:block=1M:region=256M:requested=64M").is_none());
        for bad in [
            "fe.0.0011:block=1M:region=256M",
            "fe.0.0011:block=3M:region=255M:requested=3M:maxmem=1G",
            "fe.0.0011:block=1M:region=256M:requested=512M:maxmem=1G",
            "fe.0.0011:block=2M:region=256M:requested=3M:maxmem=1G",
            "fe.0.0011:block=1M:region=256M:requested=64M:resize=300M:maxmem=1G",
            "fe.0.0011:block=1M:block=1M:region=256M:requested=64M:maxmem=1G",
            "fe.0.0011:block=1M:region=256M:requested=64M:x=1:maxmem=1G",
            "fe.0.0011:block=0:region=256M:requested=64M:maxmem=1G",
        ] {
            assert_eq!(MemConfig::parse(bad), None, "{bad}");
        }
    }
}
