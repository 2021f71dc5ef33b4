//! Finds every device on the channel subsystem and names it.

use crate::css::blocks::{subchannel_id, subchannel_id_in, SenseId, CU_TYPE_VIRTIO};
use crate::css::channel::{self, IoError, Subchannel, CHSC_OK};
use crate::fmt::HexW;
use crate::inventory::{BusId, Entry};
use crate::virtio::ids;
use alloc::string::String;
use alloc::vec::Vec;

/// What the host gave us on the channel subsystem.
pub struct Inventory {
    /// MCSS-E could be enabled: channel-subsystem ids are known.
    pub mcss: bool,
    /// Multiple subchannel sets could be enabled.
    pub mss: bool,
    pub devices: Vec<Device>,
}

pub struct Device {
    pub cssid: u8,
    pub subchannel: Subchannel,
    pub sense: Result<SenseId, IoError>,
}

impl Device {
    pub fn devno(&self) -> u16 {
        self.subchannel.pmcw.devno
    }

    pub fn is_virtio(&self) -> bool {
        self.sense.is_ok_and(|s| s.cu_type == CU_TYPE_VIRTIO)
    }

    /// The virtio device id (the control-unit model), for a virtio device.
    pub fn virtio_id(&self) -> Option<u32> {
        match self.sense {
            Ok(s) if s.cu_type == CU_TYPE_VIRTIO => Some(u32::from(s.cu_model)),
            _ => None,
        }
    }

    pub fn bus_id(&self) -> BusId {
        BusId {
            cssid: self.cssid,
            ssid: self.subchannel.ssid,
            devno: self.devno(),
        }
    }

    /// `blk`, `net`, ... for virtio; `virtio-N` for an unknown virtio id;
    /// `cu-XXXX` for other control units; `unidentified` without SENSE ID.
    pub fn name(&self) -> String {
        match self.sense {
            Ok(s) if s.cu_type == CU_TYPE_VIRTIO => match ids::name(s.cu_model.into()) {
                Some(n) => n.into(),
                None => crate::format!("virtio-{}", s.cu_model),
            },
            Ok(s) => crate::format!("cu-{}", HexW(s.cu_type.into(), 4)),
            Err(_) => "unidentified".into(),
        }
    }

    pub fn entry(&self) -> Entry {
        Entry {
            bus: self.bus_id(),
            name: self.name(),
        }
    }
}

impl Inventory {
    /// The virtio devices with device id `id`, in inventory order.
    pub fn virtio_devices(&self, id: u32) -> impl Iterator<Item = &Device> {
        self.devices
            .iter()
            .filter(move |d| d.virtio_id() == Some(id))
    }

    /// Sorted `busid:name` entries, as the command line's `devices=` lists them.
    pub fn entries(&self) -> Vec<Entry> {
        let mut v: Vec<Entry> = self.devices.iter().map(Device::entry).collect();
        v.sort();
        v
    }

    /// One lscss-style line per device.
    pub fn print(&self) {
        crate::out!(
            "# channel subsystem: {} devices (MCSS-E {}, MSS {})\n",
            self.devices.len(),
            if self.mcss { "on" } else { "off" },
            if self.mss { "on" } else { "off" }
        );
        crate::out!("# device     subchannel  CU type  device type  name\n");
        for d in &self.devices {
            let sch = BusId {
                cssid: d.cssid,
                ssid: d.subchannel.ssid,
                devno: d.subchannel.number,
            };
            match d.sense {
                Ok(s) => crate::out!(
                    "# {}  {}   {}/{}  {}/{}      {}\n",
                    d.bus_id(),
                    sch,
                    HexW(s.cu_type.into(), 4),
                    HexW(s.cu_model.into(), 2),
                    HexW(s.dev_type.into(), 4),
                    HexW(s.dev_model.into(), 2),
                    d.name().as_str()
                ),
                Err(e) => crate::out!("# {}  {}   SENSE ID failed: {}\n", d.bus_id(), sch, e),
            }
        }
    }
}

/// Highest channel-subsystem id scanned when MCSS-E is on.
const MAX_CSSID: u8 = 0xfe;

/// Scans the channel subsystem (its I/O interrupts must be taken:
/// `channel::init`).
pub fn discover() -> Inventory {
    let mcss = channel::set_domain_attributes(0) == Some(CHSC_OK);
    let mss = channel::set_domain_attributes(2) == Some(CHSC_OK);
    let max_ssid = if mss { 3 } else { 0 };
    let mut found: Vec<(u8, Subchannel)> = Vec::new();
    if mcss {
        for cssid in 0..=MAX_CSSID {
            for s in channel::scan_with(max_ssid, |ssid, n| subchannel_id_in(cssid, ssid, n)) {
                found.push((cssid, s));
            }
        }
    } else {
        for s in channel::scan_with(max_ssid, subchannel_id) {
            found.push((0, s));
        }
    }
    let devices = found
        .into_iter()
        .map(|(cssid, subchannel)| {
            let sense = channel::set_enabled(subchannel.sid, true)
                .and_then(|()| channel::sense_id(subchannel.sid));
            Device {
                cssid,
                subchannel,
                sense,
            }
        })
        .collect();
    Inventory { mcss, mss, devices }
}
