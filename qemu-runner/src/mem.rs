//! virtio-mem in a scenario (QEMU 10.0 and later): the memory backend,
//! `-m maxmem=` for the device memory, the device's block and requested
//! sizes, `mem=` for the firmware, and the requested size changed over
//! QMP (`qom-set requested-size`) at the firmware's `# zvtest: mem
//! resize BUS` line.

use crate::scenario::Scenario;
use zvtest_contract::balloon::MemConfig;
use zvtest_contract::checks::markers::MEM_RESIZE;
use zvtest_contract::inventory::BusId;

/// `VirtioMem::new("fe.0.0011", 256 << 20).block(1 << 20).requested(64 << 20)
/// .resize(32 << 20)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtioMem {
    pub bus: String,
    pub region: u64,
    pub block: u64,
    pub requested: u64,
    /// The size the host sets at the marker, and the size the firmware is
    /// told it will set (they differ only to prove `mem.resize` fails).
    pub resize: Option<(u64, u64)>,
}

impl VirtioMem {
    pub fn new(bus: &str, region: u64) -> Self {
        VirtioMem {
            bus: bus.into(),
            region,
            block: 1 << 20,
            requested: 0,
            resize: None,
        }
    }

    pub fn block(mut self, bytes: u64) -> Self {
        self.block = bytes;
        self
    }

    pub fn requested(mut self, bytes: u64) -> Self {
        self.requested = bytes;
        self
    }

    /// The host sets the requested size to `bytes` at the marker.
    pub fn resize(mut self, bytes: u64) -> Self {
        self.resize = Some((bytes, bytes));
        self
    }

    /// Test only: the host sets `sets`, the firmware is told `told`.
    pub fn resize_told(mut self, sets: u64, told: u64) -> Self {
        self.resize = Some((sets, told));
        self
    }
}

pub trait MemScenario {
    /// Adds the device with its backend and `-m maxmem=` (the storage plus
    /// the region), `mem=` for the firmware, and the QMP resize.
    fn virtio_mem(self, m: VirtioMem) -> Self;
}

impl MemScenario for Scenario {
    fn virtio_mem(self, v: VirtioMem) -> Self {
        let mut s = self.ccw_device("virtio-mem-ccw", &v.bus, "mem");
        let Ok(bus) = v.bus.parse::<BusId>() else {
            return s;
        };
        let id = crate::devices::CcwDevice::default_id(bus);
        let backend = format!("{id}-ram");
        let ram = u64::from(s.memory_mib) << 20;
        let maxmem = ram + v.region;
        if let Some(dev) = s.ccw_devices.iter_mut().find(|d| d.bus == bus) {
            dev.properties.push(("memdev".into(), backend.clone()));
            dev.properties
                .push(("block-size".into(), v.block.to_string()));
            dev.properties
                .push(("requested-size".into(), v.requested.to_string()));
            dev.backend_args.extend([
                "-object".into(),
                format!("memory-backend-ram,id={backend},size={}", v.region),
            ]);
        }
        // A second -m merges with the runner's (QEMU's memory options do).
        s = s.extra_args(["-m".to_string(), format!("maxmem={maxmem}")]);
        let cfg = MemConfig {
            bus,
            block: v.block,
            region: v.region,
            requested: v.requested,
            maxmem,
            resize: v.resize.map(|(_, told)| told),
        };
        s = s.append(format!("mem={}", cfg.item()));
        if let Some((sets, _)) = v.resize {
            let json = serde_json::json!({"execute": "qom-set", "arguments": {
                "path": format!("/machine/peripheral/{id}"),
                "property": "requested-size", "value": sets}});
            s = s.qmp_on_line(&format!("{MEM_RESIZE} {bus}"), &json.to_string());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scenario_carries_backend_maxmem_word_and_resize() {
        let s = Scenario::new("m").virtio_mem(
            VirtioMem::new("fe.0.0011", 256 << 20)
                .requested(64 << 20)
                .resize(32 << 20),
        );
        let dev = &s.ccw_devices[0];
        assert_eq!(
            dev.device_arg(),
            "virtio-mem-ccw,devno=fe.0.0011,id=ccw-fe.0.0011,memdev=ccw-fe.0.0011-ram,block-size=1048576,requested-size=67108864"
        );
        assert!(s
            .extra_args
            .contains(&format!("maxmem={}", (128u64 + 256) << 20)));
        assert!(s.append.contains(
            &"mem=fe.0.0011:block=1M:region=256M:requested=64M:maxmem=384M:resize=32M".to_string()
        ));
        assert_eq!(s.line_commands.len(), 1);
        assert_eq!(s.line_commands[0].line, "# zvtest: mem resize fe.0.0011");
    }
}
