//! virtio-mem (QEMU 10.0 and later): the configuration against `mem=`
//! (`mem.config`), blocks plugged up to the requested size, written and
//! read back, state queries, unplug and unplug-all (`mem.plug`), and the
//! requested size changed by the host mid-run, followed (`mem.resize`).
//!
//! Plugged memory lies outside our storage and outside anything the
//! firmware owns: it is written and read through its absolute address,
//! only while the device says it is plugged.

use crate::check::Outcome;
use crate::checks::markers;
use crate::discovery::Device;
use crate::fmt::{Hex, ToText};
use crate::format;
use crate::inventory::BusId;
use crate::machine::Machine;
use crate::virtio::ccw::CcwTransport;
use crate::virtio::devices::mem::{self, BlockState, Mem, MemConfig, Request, Response};
use crate::virtio::indicators::{IndicatorMode, Indicators};
use crate::virtio::transport::{driver_ok_status, negotiate, Transport};
use alloc::string::String;
use zvtest_contract::balloon::MemConfig as HostMem;

/// How long the host has to change the requested size.
const HOST_WAIT_US: u64 = 10_000_000;

/// QEMU's usable region: the requested size and 256 MiB more, within the
/// region, in whole blocks (hw/virtio/virtio-mem.c,
/// virtio_mem_resize_usable_region, VIRTIO_MEM_USABLE_EXTENT for s390x).
fn qemu_usable(region: u64, requested: u64, block: u64) -> u64 {
    if requested == 0 {
        return 0;
    }
    region.min(requested + (256 << 20)).next_multiple_of(block)
}

struct Open {
    t: CcwTransport,
    ind: Indicators,
    dev: Mem,
    bus: BusId,
}

impl Open {
    fn config(&mut self) -> Result<MemConfig, Outcome> {
        mem::read_config(&mut self.t).map_err(|e| {
            Outcome::mismatch(
                &format!("{} mem: reading the configuration", self.bus),
                "READ_CONF",
                e.text().as_str(),
            )
        })
    }

    /// Sends `req`; the answer must be `want` (a STATE request's state is
    /// returned).
    fn expect(&mut self, req: Request, want: Response, what: &str) -> Result<BlockState, Outcome> {
        match self.dev.request(&mut self.t, req) {
            Ok((got, state)) if got == want => Ok(state),
            Ok((got, _)) => Err(Outcome::mismatch(
                &format!(
                    "{} mem: {} ({})",
                    self.bus,
                    what,
                    RequestText(req).text().as_str()
                ),
                want,
                got,
            )),
            Err(e) => Err(Outcome::mismatch(
                &format!("{} mem queue 0: {}", self.bus, what),
                "an answer",
                e.text().as_str(),
            )),
        }
    }

    fn state(
        &mut self,
        addr: u64,
        blocks: u16,
        want: BlockState,
        what: &str,
    ) -> Result<(), Outcome> {
        let req = Request::State { addr, blocks };
        let got = self.expect(req, Response::Ack, what)?;
        if got != want {
            return Err(Outcome::mismatch(
                &format!(
                    "{} mem: state of {} ({})",
                    self.bus,
                    what,
                    RequestText(req).text().as_str()
                ),
                want,
                got,
            ));
        }
        Ok(())
    }

    fn plugged(&mut self, want: u64, when: &str) -> Result<(), Outcome> {
        let got = self.config()?.plugged_size;
        if got != want {
            return Err(Outcome::mismatch(
                &format!("{} mem: plugged_size {}", self.bus, when),
                Hex(want),
                Hex(got),
            ));
        }
        Ok(())
    }
}

struct RequestText(Request);

impl ufmt::uDisplay for RequestText {
    fn fmt<W: ufmt::uWrite + ?Sized>(
        &self,
        f: &mut ufmt::Formatter<'_, W>,
    ) -> Result<(), W::Error> {
        match self.0 {
            Request::Plug { addr, blocks } => ufmt::uwrite!(f, "PLUG {} x{}", Hex(addr), blocks),
            Request::Unplug { addr, blocks } => {
                ufmt::uwrite!(f, "UNPLUG {} x{}", Hex(addr), blocks)
            }
            Request::UnplugAll => f.write_str("UNPLUG_ALL"),
            Request::State { addr, blocks } => {
                ufmt::uwrite!(f, "STATE {} x{}", Hex(addr), blocks)
            }
        }
    }
}

/// The device `mem=` names, or the first virtio-mem (then `mem=` is
/// `None`); Err: nothing to do, or a device missing.
fn device(m: &Machine) -> Result<(&Device, Option<HostMem>), Outcome> {
    let cfg = m.cfg.mem.clone();
    let found = match &cfg {
        Some(c) => m
            .inventory
            .virtio_devices(mem::DEVICE_ID)
            .find(|d| d.bus_id() == c.bus),
        None => m.inventory.virtio_devices(mem::DEVICE_ID).next(),
    };
    match (found, &cfg) {
        (Some(d), _) => Ok((d, cfg)),
        (None, Some(c)) => Err(Outcome::mismatch(
            "mem= names a device that is not a virtio-mem",
            format!("a virtio-mem at {}", c.bus).as_str(),
            "none there",
        )),
        (None, None) => Err(Outcome::skip(
            "no virtio-mem-ccw device (QEMU 10.0 and later have one; -m maxmem= and a memory backend)",
        )),
    }
}

/// The requested size the plug and resize checks start from is the one
/// `mem=` says the host configured, not just what the device reports.
fn requested_as_told(bus: BusId, host: Option<&HostMem>, got: u64) -> Result<(), Outcome> {
    match host {
        Some(h) if h.requested != got => Err(Outcome::mismatch(
            &format!("{} mem: requested_size", bus),
            Hex(h.requested),
            Hex(got),
        )),
        _ => Ok(()),
    }
}

fn open(d: &Device) -> Result<Open, Outcome> {
    let bus = d.bus_id();
    let err = |what: &str, e: &dyn ToText| {
        Outcome::mismatch(&format!("{} mem: {}", bus, what), "done", e.text().as_str())
    };
    let mut t = CcwTransport::open(d.subchannel.sid, 2).map_err(|e| err("open", &e))?;
    if t.revision() == 0 {
        return Err(Outcome::fail(&format!(
            "{} mem: revision 1 or 2 refused (virtio-mem has no legacy interface)",
            bus
        )));
    }
    // A device that offers UNPLUGGED_INACCESSIBLE refuses a driver that
    // does not accept it; we never touch unplugged memory.
    let features =
        negotiate(&mut t, 1 << mem::F_UNPLUGGED_INACCESSIBLE).map_err(|e| err("negotiate", &e))?;
    let ind =
        Indicators::install(&mut t, IndicatorMode::Classic).map_err(|e| err("indicators", &e))?;
    let dev = Mem::setup(&mut t, features).map_err(|e| err("queue 0", &e))?;
    let rev = t.revision();
    t.set_status(driver_ok_status(rev))
        .map_err(|e| err("DRIVER_OK", &e))?;
    Ok(Open { t, ind, dev, bus })
}

/// The doubleword a plugged block's word holds.
fn pattern(seed: u64, addr: u64) -> u64 {
    zvtest_contract::disk::mix(seed ^ addr.rotate_left(29))
}

/// What of each plugged block is written and read back: its first and
/// last 512 bytes (where a block's mapping would break first), every byte
/// from `stress=` 2 on.
const EDGE: u64 = 512;

fn probe_ranges(block: u64, stress: u32) -> [(u64, u64); 2] {
    if stress > 1 {
        [(0, block), (block, block)]
    } else {
        [(0, EDGE), (block - EDGE, block)]
    }
}

/// Writes then reads back the probe ranges of `blocks` blocks from `addr`.
fn write_read(
    bus: BusId,
    addr: u64,
    blocks: u64,
    block: u64,
    seed: u64,
    stress: u32,
) -> Result<u64, Outcome> {
    let mut bytes = 0;
    for b in 0..blocks {
        let base = addr + b * block;
        for (from, to) in probe_ranges(block, stress) {
            for at in (base + from..base + to).step_by(8) {
                // SAFETY: `at` lies in a block the device ACKed as plugged
                // (our caller's request), in the device's region above our
                // storage: memory nothing in the firmware owns or uses.
                unsafe { core::ptr::write_volatile(at as *mut u64, pattern(seed, at)) };
            }
            bytes += to - from;
        }
    }
    for b in 0..blocks {
        let base = addr + b * block;
        for (from, to) in probe_ranges(block, stress) {
            for at in (base + from..base + to).step_by(8) {
                // SAFETY: as above; written just now.
                let got = unsafe { core::ptr::read_volatile(at as *const u64) };
                if got != pattern(seed, at) {
                    return Err(Outcome::mismatch(
                        &format!(
                            "{} mem: plugged memory read back at {} (block {}, seed={})",
                            bus,
                            Hex(at),
                            Hex(base),
                            Hex(seed)
                        ),
                        Hex(pattern(seed, at)),
                        Hex(got),
                    ));
                }
            }
        }
    }
    Ok(bytes)
}

/// `mem.config`: the configuration against `mem=`: block size, region
/// size, requested size, nothing plugged at boot, the usable region as
/// QEMU sizes it, the region block-aligned above our storage; and DIAG
/// 0x500 subcode 4 (QEMU 10.0's storage limit) covering the region.
pub fn config(m: &mut Machine) -> Outcome {
    let (d, host) = match device(m) {
        Ok(x) => x,
        Err(o) => return o,
    };
    let memory = m.memory;
    let r = (|| -> Result<String, Outcome> {
        let mut o = open(d)?;
        let c = o.config()?;
        let bus = o.bus;
        let _ = o.t.reset();
        let found = format!(
            "block {} region {} at {} usable {} plugged {} requested {} node {}",
            Hex(c.block_size),
            Hex(c.region_size),
            Hex(c.addr),
            Hex(c.usable_region_size),
            Hex(c.plugged_size),
            Hex(c.requested_size),
            c.node_id
        );
        crate::out!("# mem {}: {}\n", bus, found.as_str());
        let eq = |what: &str, want: u64, got: u64| {
            if want == got {
                Ok(())
            } else {
                Err(Outcome::mismatch(
                    &format!("{} mem: {} (mem= says)", bus, what),
                    Hex(want),
                    Hex(got),
                ))
            }
        };
        if !c.block_size.is_power_of_two() || !c.addr.is_multiple_of(c.block_size.max(1)) {
            return Err(Outcome::mismatch(
                &format!("{} mem: block size and region address", bus),
                "a power of two, the address a multiple of it",
                found.as_str(),
            ));
        }
        if c.addr < memory {
            return Err(Outcome::mismatch(
                &format!(
                    "{} mem: region address (our storage ends at {})",
                    bus,
                    Hex(memory)
                ),
                format!("at least {}", Hex(memory)).as_str(),
                Hex(c.addr),
            ));
        }
        let Some(h) = host else {
            return Ok(format!(
                "found {} (no mem= to compare with)",
                found.as_str()
            ));
        };
        eq("block_size", h.block, c.block_size)?;
        eq("region_size", h.region, c.region_size)?;
        eq("requested_size", h.requested, c.requested_size)?;
        eq("plugged_size at boot", 0, c.plugged_size)?;
        if m.cfg.qemu_version.is_some() {
            eq(
                "usable_region_size (QEMU: requested + 256 MiB, within the region)",
                qemu_usable(c.region_size, c.requested_size, c.block_size),
                c.usable_region_size,
            )?;
        }
        let end = c.addr + c.region_size - 1;
        match m.cfg.qemu_version {
            Some(v) if v >= (10, 0) => {
                let limit = crate::arch::hypercall::diag500(4, [0; 6]);
                if limit < end {
                    return Err(Outcome::mismatch(
                        &format!(
                            "{} mem: DIAG 0x500 subcode 4 (the storage limit) covering the region {}-{}",
                            bus,
                            Hex(c.addr),
                            Hex(end)
                        ),
                        format!("at least {}", Hex(end)).as_str(),
                        Hex(limit),
                    ));
                }
                Ok(format!(
                    "{}; storage limit {} covers the region",
                    found.as_str(),
                    Hex(limit)
                ))
            }
            _ => Ok(format!(
                "{} (storage limit not asked: no qemu-version= of 10.0 or later)",
                found.as_str()
            )),
        }
    })();
    match r {
        Ok(note) => Outcome::PassNote(note),
        Err(o) => o,
    }
}

/// Plugs `blocks` blocks from `addr` in requests of 1, 2, 4, ... blocks,
/// each ACKed with plugged_size following.
fn plug_range(
    o: &mut Open,
    addr: u64,
    blocks: u64,
    block: u64,
    before: u64,
) -> Result<(), Outcome> {
    let mut done = 0;
    let mut chunk = 1u64;
    while done < blocks {
        let n = chunk.min(blocks - done).min(u64::from(u16::MAX));
        o.expect(
            Request::Plug {
                addr: addr + done * block,
                blocks: n as u16,
            },
            Response::Ack,
            "plugging towards the requested size",
        )?;
        done += n;
        o.plugged(before + done * block, "after a plug")?;
        chunk *= 2;
    }
    Ok(())
}

/// `mem.plug`: UNPLUG_ALL (nothing plugged), then blocks plugged up to
/// the requested size, `plugged_size` following each ACK; the plugged
/// memory written and read back; STATE of the plugged range (PLUGGED),
/// the rest of the usable region (UNPLUGGED) and across the boundary
/// (MIXED); a plug past the requested size (NACK) and past the usable
/// region (ERROR); the last block unplugged (ACK, then UNPLUGGED), a plug
/// of a plugged block and an unplug of an unplugged one (ERROR);
/// UNPLUG_ALL (plugged_size 0, everything UNPLUGGED).
pub fn plug(m: &mut Machine) -> Outcome {
    let (d, host) = match device(m) {
        Ok(x) => x,
        Err(o) => return o,
    };
    let (seed, stress) = (m.cfg.seed, m.cfg.stress);
    let r = (|| -> Result<String, Outcome> {
        let mut o = open(d)?;
        o.expect(Request::UnplugAll, Response::Ack, "UNPLUG_ALL first")?;
        o.plugged(0, "after UNPLUG_ALL")?;
        let c = o.config()?;
        requested_as_told(o.bus, host.as_ref(), c.requested_size)?;
        let (bs, addr) = (c.block_size, c.addr);
        let want = c.requested_size / bs;
        let usable = c.usable_region_size / bs;
        if want == 0 {
            return Err(Outcome::skip("the requested size is 0: nothing to plug"));
        }
        plug_range(&mut o, addr, want, bs, 0)?;
        let bytes = write_read(o.bus, addr, want, bs, seed, stress)?;
        let all = |n: u64| u16::try_from(n).unwrap_or(u16::MAX);
        o.state(addr, all(want), BlockState::Plugged, "the plugged blocks")?;
        if usable > want {
            o.state(
                addr + want * bs,
                all(usable - want),
                BlockState::Unplugged,
                "the usable blocks past them",
            )?;
            o.state(
                addr + (want - 1) * bs,
                2,
                BlockState::Mixed,
                "the last plugged and the first unplugged block",
            )?;
            o.expect(
                Request::Plug {
                    addr: addr + want * bs,
                    blocks: 1,
                },
                Response::Nack,
                "a plug past the requested size",
            )?;
        }
        o.expect(
            Request::Plug {
                addr: addr + usable * bs,
                blocks: 1,
            },
            Response::Error,
            "a plug past the usable region",
        )?;
        let last = addr + (want - 1) * bs;
        o.expect(
            Request::Unplug {
                addr: last,
                blocks: 1,
            },
            Response::Ack,
            "an unplug of the last plugged block",
        )?;
        o.plugged((want - 1) * bs, "after the unplug")?;
        o.state(last, 1, BlockState::Unplugged, "the unplugged block")?;
        // Below the requested size now: a plug is judged by the blocks'
        // state (QEMU answers NACK first for a plug past the size).
        o.expect(
            Request::Plug { addr, blocks: 1 },
            Response::Error,
            "a plug of a plugged block",
        )?;
        o.expect(
            Request::Unplug {
                addr: last,
                blocks: 1,
            },
            Response::Error,
            "an unplug of an unplugged block",
        )?;
        o.expect(Request::UnplugAll, Response::Ack, "UNPLUG_ALL")?;
        o.plugged(0, "after UNPLUG_ALL")?;
        o.state(
            addr,
            all(usable.max(1)),
            BlockState::Unplugged,
            "every usable block after UNPLUG_ALL",
        )?;
        let _ = o.t.reset();
        Ok(format!(
            "{} blocks of {} plugged, {} bytes written and read back, unplugged",
            want,
            Hex(bs),
            bytes
        ))
    })();
    match r {
        Ok(note) => Outcome::PassNote(note),
        Err(o) => o,
    }
}

/// `mem.resize`: the requested size plugged, then `# zvtest: mem resize
/// BUS`: the host sets `requested-size` to `mem=`'s `resize=` (QMP
/// qom-set), we wait for the configuration change, the new requested size
/// must be that, and we follow it (plug or unplug the difference) until
/// plugged_size equals it; newly plugged memory is written and read back.
pub fn resize(m: &mut Machine) -> Outcome {
    let Some(new) = m.cfg.mem.as_ref().and_then(|c| c.resize) else {
        return Outcome::skip("no mem=...:resize=SIZE (the size the host sets mid-run)");
    };
    let (d, host) = match device(m) {
        Ok(x) => x,
        Err(o) => return o,
    };
    let (seed, stress) = (m.cfg.seed, m.cfg.stress);
    let r = (|| -> Result<String, Outcome> {
        let mut o = open(d)?;
        o.expect(Request::UnplugAll, Response::Ack, "UNPLUG_ALL first")?;
        let c = o.config()?;
        requested_as_told(o.bus, host.as_ref(), c.requested_size)?;
        let (bs, addr) = (c.block_size, c.addr);
        let before = c.requested_size / bs;
        plug_range(&mut o, addr, before, bs, 0)?;
        o.ind.acknowledge();
        crate::out!("{} {}\n", markers::MEM_RESIZE, o.bus);
        let ind = &o.ind;
        if !o.t.wait(crate::host_wait::us(HOST_WAIT_US), &mut || {
            ind.config_flagged()
        }) {
            return Err(Outcome::mismatch(
                &format!("{} mem: the host's new requested size", o.bus),
                "a configuration change",
                format!(
                    "none within {}",
                    crate::host_wait::text(HOST_WAIT_US).as_str()
                )
                .as_str(),
            ));
        }
        o.ind.acknowledge();
        let c = o.config()?;
        if c.requested_size != new {
            return Err(Outcome::mismatch(
                &format!(
                    "{} mem: requested_size after the host's change (mem= resize)",
                    o.bus
                ),
                Hex(new),
                Hex(c.requested_size),
            ));
        }
        let after = new / bs;
        if after > before {
            plug_range(&mut o, addr + before * bs, after - before, bs, before * bs)?;
            write_read(o.bus, addr + before * bs, after - before, bs, seed, stress)?;
        } else if after < before {
            let n = before - after;
            o.expect(
                Request::Unplug {
                    addr: addr + after * bs,
                    blocks: u16::try_from(n).unwrap_or(u16::MAX),
                },
                Response::Ack,
                "unplugging down to the new requested size",
            )?;
        }
        o.plugged(new, "after following the new requested size")?;
        if c.usable_region_size / bs > after {
            o.expect(
                Request::Plug {
                    addr: addr + after * bs,
                    blocks: 1,
                },
                Response::Nack,
                "a plug past the new requested size",
            )?;
        }
        o.expect(Request::UnplugAll, Response::Ack, "UNPLUG_ALL")?;
        let _ = o.t.reset();
        Ok(format!(
            "requested size {} -> {}, followed",
            Hex(before * bs),
            Hex(new)
        ))
    })();
    match r {
        Ok(note) => Outcome::PassNote(note),
        Err(o) => o,
    }
}
