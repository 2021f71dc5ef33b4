//! The QEMU side of a channel-subsystem device: its `-device` value, the
//! back-ends it needs, and its QMP `device_add` properties.

use zvtest_contract::inventory::{BusId, Entry};

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

    /// Its inventory entry: where it sits and what the firmware calls it.
    pub fn entry(&self) -> Entry {
        Entry {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
