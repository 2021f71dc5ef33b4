//! virtio-gpu: the display info and EDID against `gpu=` (QEMU's `xres`,
//! `yres`, `edid`), the seeded image put on scanout 0 for the runner's
//! screendump, the cursor queue, the documented errors for bad ids, and
//! resources created, backed, transferred, flushed and destroyed under
//! the stress engine. Expectations from the virtio spec (5.7) and QEMU's
//! hw/display/virtio-gpu.c, virtio-gpu-base.c and edid-generate.c.

use super::virtio::WANTED;
use crate::arch::handlers;
use crate::arch::timer;
use crate::check::Outcome;
use crate::dma::DmaMemory;
use crate::fmt::Hex;
use crate::format;
use crate::gpu::{drawn_pixel, GpuConfig};
use crate::inventory::BusId;
use crate::machine::Machine;
use crate::virtio::ccw::CcwTransport;
use crate::virtio::devices::gpu::{
    self as dev, answer_name, command_name, parse_edid, Answer, AnswerType, Command, Gpu, Header,
    Rect, CURSOR_SIDE, F_EDID, MAX_SCANOUTS,
};
use crate::virtio::indicators::{self, IndicatorMode, Indicators};
use crate::virtio::stress::{Completion, Options, QueueStats};
use crate::virtio::transport::{driver_ok_status, has, negotiate, Transport, F_INDIRECT_DESC};
use crate::workloads::gpu::{Lifecycles, LANE_BYTES};
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

fn now_us() -> u64 {
    crate::arch::tod() / crate::arch::TOD_PER_US
}

struct GpuDev {
    bus: BusId,
    sid: u32,
    cfg: Option<GpuConfig>,
}

fn devices(m: &Machine) -> Vec<GpuDev> {
    m.inventory
        .virtio_devices(dev::DEVICE_ID)
        .map(|d| GpuDev {
            bus: d.bus_id(),
            sid: d.subchannel.sid,
            cfg: m.cfg.gpu.iter().find(|g| g.bus == d.bus_id()).cloned(),
        })
        .collect()
}

/// A `gpu=` item for a bus with no GPU: the host's word and ours differ.
fn missing(m: &Machine) -> Option<Outcome> {
    let have: Vec<BusId> = devices(m).iter().map(|d| d.bus).collect();
    m.cfg.gpu.iter().find(|g| !have.contains(&g.bus)).map(|g| {
        Outcome::mismatch(
            "gpu= names a device the channel subsystem lacks",
            format!("a virtio-gpu at {}", g.bus).as_str(),
            "none",
        )
    })
}

/// A device at DRIVER_OK with both queues.
struct Open {
    t: CcwTransport,
    ind: Indicators,
    gpu: Gpu,
    features: u64,
    config: dev::GpuConfig,
}

/// Opens the device at the highest revision it takes (a GPU takes none
/// below 1), with EDID and the ring features it offers.
fn open(sid: u32, mode: IndicatorMode) -> Result<Open, String> {
    let mut t = CcwTransport::open(sid, 2).map_err(|e| format!("open: {}", e))?;
    if t.revision() == 0 {
        return Err(String::from(
            "the device took revision 0 only (a GPU exists from virtio 1.0 on)",
        ));
    }
    let wanted = (WANTED & !(1 << crate::virtio::transport::F_RING_PACKED)) | 1 << F_EDID;
    let features = negotiate(&mut t, wanted).map_err(|e| format!("negotiate: {}", e))?;
    let ind = Indicators::install(&mut t, mode).map_err(|e| format!("indicators: {}", e))?;
    let gpu = Gpu::setup(&mut t, features, false).map_err(|e| format!("queues: {}", e))?;
    let config = dev::read_config(&mut t).map_err(|e| format!("config: {}", e))?;
    t.set_status(driver_ok_status(t.revision()))
        .map_err(|e| format!("DRIVER_OK: {}", e))?;
    Ok(Open {
        t,
        ind,
        gpu,
        features,
        config,
    })
}

impl Open {
    /// Sends `c` and holds its answer to `want` (an answer type); the
    /// error names the step.
    fn expect(&mut self, step: &str, c: &Command, want: u32) -> Result<(Header, Answer), String> {
        self.ind.acknowledge();
        let (h, a) = self
            .gpu
            .command(&mut self.t, c)
            .map_err(|e| format!("{} ({}): {}", step, command_name(c.kind()), e))?;
        let got = match a {
            Answer::Error(k) => k,
            _ => h.kind,
        };
        if got != want {
            return Err(format!(
                "{} ({}): answered {}, expected {}",
                step,
                command_name(c.kind()),
                AnswerType(got),
                AnswerType(want)
            ));
        }
        Ok((h, a))
    }

    fn ok(&mut self, step: &str, c: &Command) -> Result<(), String> {
        self.expect(step, c, dev::RESP_OK_NODATA).map(|_| ())
    }
}

fn header(kind: u32) -> Header {
    Header::command(kind)
}

/// Runs `f` on every GPU (with its `gpu=` item, if any); the first error
/// fails the check, naming the device.
fn each(
    m: &mut Machine,
    mut f: impl FnMut(&GpuDev, u64) -> Result<Option<String>, String>,
) -> Outcome {
    if let Some(o) = missing(m) {
        return o;
    }
    let devs = devices(m);
    if devs.is_empty() {
        return Outcome::skip("no virtio-gpu-ccw device");
    }
    let mut notes = Vec::new();
    for d in &devs {
        match f(d, m.cfg.seed) {
            Ok(Some(note)) => notes.push(format!("{}: {}", d.bus, note.as_str())),
            Ok(None) => {}
            Err(e) => {
                return Outcome::fail(&format!(
                    "virtio-gpu {} (seed={}): {}",
                    d.bus,
                    Hex(m.cfg.seed),
                    e.as_str()
                ))
            }
        }
    }
    if notes.is_empty() {
        Outcome::Pass
    } else {
        Outcome::PassNote(notes.join("; "))
    }
}

/// The configuration, the display info (fenced) and the EDID against
/// `gpu=`.
pub fn display(m: &mut Machine) -> Outcome {
    each(m, |d, seed| {
        let mut o = open(d.sid, IndicatorMode::Classic)?;
        let c = o.config;
        // QEMU's plain (2D) device: no capability sets, no event pending
        // at start (virtio-gpu-base.c).
        if !(1..=MAX_SCANOUTS as u32).contains(&c.num_scanouts) {
            return Err(format!(
                "num_scanouts {} (1 to {} expected)",
                c.num_scanouts, MAX_SCANOUTS
            ));
        }
        if c.num_capsets != 0 || c.events_read != 0 {
            return Err(format!(
                "config num_capsets {} and events_read {} (0 and 0 expected of a 2D device at start)",
                c.num_capsets, c.events_read
            ));
        }
        let edid = has(o.features, F_EDID);
        if let Some(cfg) = &d.cfg {
            if c.num_scanouts != cfg.scanouts {
                return Err(format!(
                    "num_scanouts {}, gpu= says {} (QEMU's max_outputs)",
                    c.num_scanouts, cfg.scanouts
                ));
            }
            if edid != cfg.edid {
                return Err(format!(
                    "VIRTIO_GPU_F_EDID {} (gpu= says edid {})",
                    if edid { "offered" } else { "not offered" },
                    if cfg.edid { "on" } else { "off" }
                ));
            }
        }
        let fence = seed | 1;
        let (h, a) = o.expect(
            "display info",
            &dev::get_display_info(Header::fenced(dev::CMD_GET_DISPLAY_INFO, fence)),
            dev::RESP_OK_DISPLAY_INFO,
        )?;
        if h.flags & dev::FLAG_FENCE == 0 || h.fence_id != fence {
            return Err(format!(
                "display info answer: fence flag {} id {} (the command's fence id {} echoed expected)",
                h.flags & dev::FLAG_FENCE,
                Hex(h.fence_id),
                Hex(fence)
            ));
        }
        let Answer::DisplayInfo(modes) = a else {
            return Err(String::from("display info: no modes"));
        };
        let m0 = modes[0];
        for (i, mode) in modes.iter().enumerate().skip(c.num_scanouts as usize) {
            if *mode != dev::Mode::default() {
                return Err(format!(
                    "display info: scanout {} past num_scanouts {} is described ({}x{} enabled {})",
                    i, c.num_scanouts, mode.r.width, mode.r.height, mode.enabled
                ));
            }
        }
        if m0.enabled != 1 || m0.r.x != 0 || m0.r.y != 0 {
            return Err(format!(
                "display info: scanout 0 enabled {} at {},{} (enabled 1 at 0,0 expected)",
                m0.enabled, m0.r.x, m0.r.y
            ));
        }
        crate::out!(
            "# gpu {}: {} scanouts, scanout 0 {}x{}, EDID {}\n",
            d.bus,
            c.num_scanouts,
            m0.r.width,
            m0.r.height,
            if edid { "offered" } else { "not offered" }
        );
        let Some(cfg) = &d.cfg else {
            return Ok(Some(format!(
                "scanout 0 is {}x{}; no gpu= to compare with",
                m0.r.width, m0.r.height
            )));
        };
        if (m0.r.width, m0.r.height) != (cfg.width, cfg.height) {
            return Err(format!(
                "display info: scanout 0 is {}x{}, gpu= says {}x{} (QEMU's xres x yres)",
                m0.r.width, m0.r.height, cfg.width, cfg.height
            ));
        }
        if edid {
            let (_, a) = o.expect(
                "EDID of scanout 0",
                &dev::get_edid(header(dev::CMD_GET_EDID), 0),
                dev::RESP_OK_EDID,
            )?;
            let Answer::Edid(blob) = a else {
                return Err(String::from("GET_EDID: no blob"));
            };
            let s = parse_edid(&blob).map_err(|e| format!("EDID of scanout 0: {}", e))?;
            // QEMU's generator puts the configured mode in the first
            // detailed timing (edid-generate.c).
            if s.preferred != (cfg.width, cfg.height) {
                return Err(format!(
                    "EDID preferred mode {}x{}, gpu= says {}x{}",
                    s.preferred.0, s.preferred.1, cfg.width, cfg.height
                ));
            }
            crate::out!(
                "# gpu {}: EDID of {} blocks ({} bytes reported), preferred mode {}x{}\n",
                d.bus,
                s.blocks,
                blob.len(),
                s.preferred.0,
                s.preferred.1
            );
        }
        let _ = o.t.reset();
        Ok(None)
    })
}

/// Restart interrupts: the runner's signal that its screendump is taken.
static RESTARTS: AtomicUsize = AtomicUsize::new(0);

fn on_restart() {
    RESTARTS.fetch_add(1, Ordering::SeqCst);
}

/// How long the runner has for its screendump.
const DUMP_WAIT_US: u64 = 20_000_000;

/// The resource ids of the single checks (the stress uses its own).
const SCANOUT_RES: u32 = 1;
const CURSOR_RES: u32 = 2;
const ERRORS_RES: u32 = 7;

/// Fills `mem` with the seeded image, B, G, R, X per pixel, row by row.
fn draw(mem: &DmaMemory, seed: u64, cfg: &GpuConfig) {
    let mut row = alloc::vec![0u8; cfg.width as usize * 4];
    for y in 0..cfg.height {
        for x in 0..cfg.width {
            let [r, g, b] = drawn_pixel(seed, cfg.width, cfg.height, cfg.flip, x, y);
            let at = x as usize * 4;
            row[at..at + 4].copy_from_slice(&[b, g, r, 0]);
        }
        mem.write(y as usize * row.len(), &row);
    }
}

/// Bytes per backing entry for `len` bytes: 64 KiB, or more so that the
/// entries fit one command.
fn chunk_for(len: usize) -> usize {
    let min = len.div_ceil(dev::MAX_ENTRIES).next_multiple_of(4096);
    min.max(64 << 10)
}

/// The seeded image on scanout 0: a 2D resource, its backing, transfer,
/// set scanout, flush; then, with `:dump`, the marker and the runner's
/// restart interrupt once its screendump is taken.
pub fn scanout(m: &mut Machine) -> Outcome {
    if m.cfg.gpu.is_empty() && m.inventory.virtio_devices(dev::DEVICE_ID).next().is_some() {
        return Outcome::skip("no gpu= item: the mode is not known, nothing put on screen");
    }
    each(m, |d, seed| {
        let Some(cfg) = d.cfg.clone() else {
            return Ok(Some(String::from(
                "no gpu= item: the mode is not known, nothing put on screen",
            )));
        };
        let mut o = open(d.sid, IndicatorMode::Classic)?;
        let whole = Rect::whole(cfg.width, cfg.height);
        let len = cfg.width as usize * cfg.height as usize * 4;
        let mem = Rc::new(DmaMemory::new(len));
        draw(&mem, seed, &cfg);
        o.ok(
            "create",
            &dev::resource_create_2d(
                header(dev::CMD_RESOURCE_CREATE_2D),
                SCANOUT_RES,
                dev::FORMAT_B8G8R8X8,
                cfg.width,
                cfg.height,
            ),
        )?;
        o.ind.acknowledge();
        let attach = o
            .gpu
            .attach_backing(
                &mut o.t,
                header(dev::CMD_RESOURCE_ATTACH_BACKING),
                SCANOUT_RES,
                &mem,
                len,
                chunk_for(len),
            )
            .map_err(|e| format!("attach backing: {}", e))?;
        if !matches!(attach.1, Answer::NoData) {
            return Err(format!(
                "attach backing: answered {}",
                answer_name(match attach.1 {
                    Answer::Error(k) => k,
                    _ => attach.0.kind,
                })
            ));
        }
        o.ok(
            "transfer",
            &dev::transfer_to_host_2d(header(dev::CMD_TRANSFER_TO_HOST_2D), whole, 0, SCANOUT_RES),
        )?;
        o.ok(
            "set scanout 0",
            &dev::set_scanout(header(dev::CMD_SET_SCANOUT), whole, 0, SCANOUT_RES),
        )?;
        o.ok(
            "flush",
            &dev::resource_flush(header(dev::CMD_RESOURCE_FLUSH), whole, SCANOUT_RES),
        )?;
        let note = if cfg.dump {
            let before = RESTARTS.load(Ordering::SeqCst);
            let restarts = handlers::on_restart(on_restart);
            crate::out!(
                "{} {} {}x{}\n",
                crate::checks::markers::GPU_SCANOUT,
                d.bus,
                cfg.width,
                cfg.height
            );
            let signalled = timer::wait_until(crate::host_wait::us(DUMP_WAIT_US), false, || {
                RESTARTS.load(Ordering::SeqCst) != before
            });
            drop(restarts);
            if !signalled {
                return Err(format!(
                    "no restart interrupt from the runner within {} of the marker (its signal that the screendump is taken)",
                    crate::host_wait::text(DUMP_WAIT_US).as_str()
                ));
            }
            None
        } else {
            Some(String::from(
                "the image was put on scanout 0, but no :dump in gpu=: nobody compared it",
            ))
        };
        // Off the screen and gone: the device must take that too.
        o.ok(
            "scanout 0 off",
            &dev::set_scanout(header(dev::CMD_SET_SCANOUT), Rect::default(), 0, 0),
        )?;
        o.ok(
            "detach backing",
            &dev::resource_detach_backing(header(dev::CMD_RESOURCE_DETACH_BACKING), SCANOUT_RES),
        )?;
        o.ok(
            "unref",
            &dev::resource_unref(header(dev::CMD_RESOURCE_UNREF), SCANOUT_RES),
        )?;
        let _ = o.t.reset();
        Ok(note)
    })
}

/// The cursor queue: a 64 x 64 cursor image set, moved twice and hidden;
/// the device uses each command and writes nothing (QEMU pushes every
/// cursor buffer back with length 0, virtio-gpu.c).
pub fn cursor(m: &mut Machine) -> Outcome {
    each(m, |d, seed| {
        let mut o = open(d.sid, IndicatorMode::Classic)?;
        let len = (CURSOR_SIDE * CURSOR_SIDE * 4) as usize;
        let mem = Rc::new(DmaMemory::new(len));
        let image = GpuConfig::new(d.bus, CURSOR_SIDE, CURSOR_SIDE);
        draw(&mem, seed ^ 0xc0, &image);
        o.ok(
            "cursor resource",
            &dev::resource_create_2d(
                header(dev::CMD_RESOURCE_CREATE_2D),
                CURSOR_RES,
                dev::FORMAT_B8G8R8A8,
                CURSOR_SIDE,
                CURSOR_SIDE,
            ),
        )?;
        o.ind.acknowledge();
        let (h, a) = o
            .gpu
            .attach_backing(
                &mut o.t,
                header(dev::CMD_RESOURCE_ATTACH_BACKING),
                CURSOR_RES,
                &mem,
                len,
                4096,
            )
            .map_err(|e| format!("cursor backing: {}", e))?;
        if a != Answer::NoData {
            return Err(format!("cursor backing: answered {}", AnswerType(h.kind)));
        }
        o.ok(
            "cursor transfer",
            &dev::transfer_to_host_2d(
                header(dev::CMD_TRANSFER_TO_HOST_2D),
                Rect::whole(CURSOR_SIDE, CURSOR_SIDE),
                0,
                CURSOR_RES,
            ),
        )?;
        let steps = [
            (dev::CMD_UPDATE_CURSOR, 40, 30, CURSOR_RES, (3, 5)),
            (dev::CMD_MOVE_CURSOR, 100, 60, CURSOR_RES, (3, 5)),
            (dev::CMD_MOVE_CURSOR, 0, 0, CURSOR_RES, (3, 5)),
            (dev::CMD_UPDATE_CURSOR, 0, 0, 0, (0, 0)),
        ];
        for (kind, x, y, id, hot) in steps {
            o.ind.acknowledge();
            let c = dev::cursor(kind, 0, x, y, id, hot);
            let used = o
                .gpu
                .cursor_command(&mut o.t, &c)
                .map_err(|e| format!("{} to {},{}: {}", command_name(kind), x, y, e))?;
            if used != 0 {
                return Err(format!(
                    "{} to {},{}: used length {} (0 expected: nothing to write)",
                    command_name(kind),
                    x,
                    y,
                    used
                ));
            }
        }
        o.ok(
            "cursor resource unref",
            &dev::resource_unref(header(dev::CMD_RESOURCE_UNREF), CURSOR_RES),
        )?;
        crate::out!(
            "# gpu {}: cursor set, moved twice and hidden; {} interrupts so far\n",
            d.bus,
            indicators::interrupts_seen()
        );
        let _ = o.t.reset();
        Ok(None)
    })
}

/// A resource id no check creates.
const NO_SUCH_RES: u32 = 0xdead;

/// Commands with bad ids or parameters, each answered with the error the
/// spec documents and QEMU's virtio-gpu.c gives.
pub fn errors(m: &mut Machine) -> Outcome {
    each(m, |d, _| {
        let mut o = open(d.sid, IndicatorMode::Classic)?;
        // The first scanout id past the configured ones (the device's
        // own count without gpu=).
        let scanouts = d.cfg.as_ref().map_or(o.config.num_scanouts, |c| c.scanouts);
        let h = header;
        let whole = Rect::whole(16, 16);
        use dev::{
            RESP_ERR_INVALID_PARAMETER as PARAM, RESP_ERR_INVALID_RESOURCE_ID as RES,
            RESP_ERR_INVALID_SCANOUT_ID as SCANOUT, RESP_ERR_UNSPEC as UNSPEC,
            RESP_OK_NODATA as OK,
        };
        let mut steps: Vec<(&str, Command, u32)> = alloc::vec![
            (
                "unref of a resource never created",
                dev::resource_unref(h(dev::CMD_RESOURCE_UNREF), NO_SUCH_RES),
                RES,
            ),
            (
                "create with resource id 0",
                dev::resource_create_2d(h(dev::CMD_RESOURCE_CREATE_2D), 0, 2, 16, 16),
                RES,
            ),
            (
                "create",
                dev::resource_create_2d(h(dev::CMD_RESOURCE_CREATE_2D), ERRORS_RES, 2, 16, 16),
                OK,
            ),
            (
                "create of an id in use",
                dev::resource_create_2d(h(dev::CMD_RESOURCE_CREATE_2D), ERRORS_RES, 2, 16, 16),
                RES,
            ),
            (
                "create in an unknown format",
                dev::resource_create_2d(
                    h(dev::CMD_RESOURCE_CREATE_2D),
                    ERRORS_RES + 1,
                    0x7777,
                    16,
                    16
                ),
                PARAM,
            ),
            (
                "set scanout past num_scanouts",
                dev::set_scanout(h(dev::CMD_SET_SCANOUT), whole, scanouts, ERRORS_RES),
                SCANOUT,
            ),
            (
                "set scanout 0 to a resource never created",
                dev::set_scanout(h(dev::CMD_SET_SCANOUT), whole, 0, NO_SUCH_RES),
                RES,
            ),
            (
                "flush of a resource never created",
                dev::resource_flush(h(dev::CMD_RESOURCE_FLUSH), whole, NO_SUCH_RES),
                RES,
            ),
            (
                "flush past the resource",
                dev::resource_flush(h(dev::CMD_RESOURCE_FLUSH), Rect::whole(17, 16), ERRORS_RES),
                PARAM,
            ),
            (
                "transfer to a resource never created",
                dev::transfer_to_host_2d(h(dev::CMD_TRANSFER_TO_HOST_2D), whole, 0, NO_SUCH_RES),
                RES,
            ),
            (
                "attach backing to a resource never created",
                dev::resource_attach_backing(h(dev::CMD_RESOURCE_ATTACH_BACKING), NO_SUCH_RES, &[],),
                RES,
            ),
            (
                "an unknown command",
                dev::get_display_info(h(0x01ff)),
                UNSPEC,
            ),
            (
                "unref",
                dev::resource_unref(h(dev::CMD_RESOURCE_UNREF), ERRORS_RES),
                OK,
            ),
            (
                "unref of a resource already gone",
                dev::resource_unref(h(dev::CMD_RESOURCE_UNREF), ERRORS_RES),
                RES,
            ),
        ];
        if has(o.features, F_EDID) {
            steps.push((
                "EDID of a scanout past num_scanouts",
                dev::get_edid(h(dev::CMD_GET_EDID), scanouts),
                PARAM,
            ));
        }
        for (step, c, want) in &steps {
            o.expect(step, c, *want)?;
        }
        crate::out!(
            "# gpu {}: {} commands answered with their documented errors and OKs\n",
            d.bus,
            steps.len()
        );
        let _ = o.t.reset();
        Ok(None)
    })
}

/// Lanes of resources at once, and whole lifecycles per lane per round
/// (times `stress=`).
const LANES: usize = 8;
const GENERATIONS: u64 = 3;

/// Resource lifecycles on the control queue under the stress engine, in
/// three setups: classic and adapter indicators by interrupt, classic
/// polled; one QueueStats line each.
pub fn stress(m: &mut Machine) -> Outcome {
    let stress = m.cfg.stress;
    each(m, |d, seed| {
        let rounds = [
            (IndicatorMode::Classic, Completion::Interrupts),
            (IndicatorMode::Adapter, Completion::Interrupts),
            (IndicatorMode::Classic, Completion::Polled),
        ];
        for (i, (mode, completion)) in rounds.into_iter().enumerate() {
            let mut o = open(d.sid, mode)?;
            let held = o.t.held();
            let lanes: Vec<Rc<DmaMemory>> = (0..LANES)
                .map(|_| Rc::new(DmaMemory::new(LANE_BYTES)))
                .collect();
            // The commands name these pages themselves.
            for mem in &lanes {
                held.keep(mem);
            }
            let mut w = Lifecycles::new(seed ^ i as u64, lanes.iter().map(|m| m.addr()).collect());
            let size = o.gpu.control_mut().size();
            let opts = Options::varied(
                seed,
                u64::from(d.sid) << 24 | (i as u64) << 16,
                size,
                w.requests(GENERATIONS * u64::from(stress)),
                has(o.features, F_INDIRECT_DESC),
                completion,
                now_us,
            );
            let s: QueueStats = crate::suites::setups::run_counted(
                &mut o.t,
                o.gpu.control_mut(),
                &mut w,
                &opts,
                &mut o.ind,
            )
            .map_err(|f| {
                format!(
                    "controlq {} {}: request {}: {}",
                    mode.name(),
                    completion.name(),
                    f.request,
                    f.what.as_str()
                )
            })?;
            let label = format!("rev {} split {}", o.t.revision(), mode.name());
            crate::out!(
                "# gpu {} controlq {} {}: {}\n",
                d.bus,
                label.as_str(),
                completion.name(),
                s
            );
            crate::judge::echo_queue(
                &format!("controlq ({}, {})", label.as_str(), completion.name()),
                (completion == Completion::Polled, false),
                &s,
            )?;
            let _ = o.t.reset();
        }
        Ok(None)
    })
}
