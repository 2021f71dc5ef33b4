//! virtio-gpu's host side: the device with its mode (`xres`, `yres`) and
//! EDID (`edid=`), told to the firmware as `gpu=BUS:WxH[:edid][:dump]`,
//! and the screendump peer. At the firmware's `# zvtest: gpu scanout`
//! marker the peer takes a QMP `screendump` (PPM: QEMU's only format on
//! 7.2, still the default on 10.0 and 11.1) into the run's directory,
//! compares every pixel with the seeded image (contract `gpu`), and then
//! injects a restart interrupt (`inject-nmi`): the firmware keeps the
//! image on scanout 0 until that signal comes. A differing pixel fails
//! the verdict, naming the first (x, y, expected, got) and how many.
//!
//! ```
//! use qemu_runner::gpu::{Gpu, GpuScenario};
//! use qemu_runner::Scenario;
//!
//! let s = Scenario::new("gpu").virtio_gpu(Gpu::new("fe.0.0007", 640, 480).edid(true));
//! assert!(s.command_line().ends_with("gpu=fe.0.0007:640x480:edid:dump"));
//! assert_eq!(
//!     s.ccw_devices[0].device_arg(),
//!     "virtio-gpu-ccw,devno=fe.0.0007,id=ccw-fe.0.0007,xres=640,yres=480,edid=on"
//! );
//! ```

use crate::peers::{Peer, PeerContext, PeerEnd, PeerMonitor, PeerOutcome, PeerSpec};
use crate::scenario::Scenario;
use std::io;
use std::path::{Path, PathBuf};
use zvtest_contract::checks::markers::GPU_SCANOUT;
use zvtest_contract::gpu::{pixel, GpuConfig};
use zvtest_contract::inventory::BusId;

/// A virtio-gpu-ccw as a scenario wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    bus: String,
    width: u32,
    height: u32,
    /// QEMU's `max_outputs` (None: its default, 1).
    scanouts: Option<u32>,
    edid: bool,
    /// The screendump peer (on by default).
    dump: bool,
    /// Test only: the firmware draws one pixel wrong.
    flip: bool,
    /// Test only: the peer expects the image of this seed instead.
    expect_seed: Option<u64>,
    /// Test only: `max_outputs` the firmware is not told of.
    untold_scanouts: Option<u32>,
}

impl Gpu {
    /// A GPU at `bus` with scanout 0 at `width` x `height`, EDID off, its
    /// image checked by a screendump.
    pub fn new(bus: &str, width: u32, height: u32) -> Self {
        Gpu {
            bus: bus.into(),
            width,
            height,
            scanouts: None,
            edid: false,
            dump: true,
            flip: false,
            expect_seed: None,
            untold_scanouts: None,
        }
    }

    /// QEMU's `edid=on` (VIRTIO_GPU_F_EDID offered).
    pub fn edid(mut self, on: bool) -> Self {
        self.edid = on;
        self
    }

    /// QEMU's `max_outputs=N`, told to the firmware as `scanouts=N`.
    pub fn scanouts(mut self, n: u32) -> Self {
        self.scanouts = Some(n);
        self
    }

    /// Test only: the device gets `max_outputs=N` while the firmware is
    /// told QEMU's default (1 scanout).
    pub fn scanouts_untold(mut self, n: u32) -> Self {
        self.untold_scanouts = Some(n);
        self
    }

    /// Whether the runner takes the screendump (without it the firmware
    /// leaves a note that nobody compared the image).
    pub fn dump(mut self, on: bool) -> Self {
        self.dump = on;
        self
    }

    /// Test only: `:flip`, one pixel drawn inverted by the firmware, so
    /// the screendump must differ there.
    pub fn flip(mut self) -> Self {
        self.flip = true;
        self
    }

    /// Test only: the peer compares with the image of `seed` instead of
    /// the firmware's.
    pub fn expect_seed(mut self, seed: u64) -> Self {
        self.expect_seed = Some(seed);
        self
    }
}

/// Adding a GPU to a scenario.
pub trait GpuScenario {
    /// The `virtio-gpu-ccw` at the GPU's bus with `xres`, `yres` and
    /// `edid`, the `gpu=` word, and (with `dump`) the screendump peer.
    fn virtio_gpu(self, gpu: Gpu) -> Self;
}

impl GpuScenario for Scenario {
    fn virtio_gpu(self, gpu: Gpu) -> Self {
        let bus: BusId = match gpu.bus.parse() {
            Ok(b) => b,
            Err(e) => {
                let mut s = self;
                s.errors.push(format!("virtio-gpu: {e}"));
                return s;
            }
        };
        let mut s = self.ccw_device("virtio-gpu-ccw", &gpu.bus, "gpu");
        if let Some(dev) = s.ccw_devices.iter_mut().find(|d| d.bus == bus) {
            dev.properties.extend([
                ("xres".to_string(), gpu.width.to_string()),
                ("yres".to_string(), gpu.height.to_string()),
                (
                    "edid".to_string(),
                    if gpu.edid { "on" } else { "off" }.to_string(),
                ),
            ]);
            if let Some(n) = gpu.untold_scanouts.or(gpu.scanouts) {
                dev.properties.push(("max_outputs".into(), n.to_string()));
            }
        }
        let config = GpuConfig {
            bus,
            width: gpu.width,
            height: gpu.height,
            scanouts: gpu.scanouts.unwrap_or(1),
            edid: gpu.edid,
            dump: gpu.dump,
            flip: gpu.flip,
        };
        if GpuConfig::parse(&config.item()).as_ref() != Some(&config) {
            s.errors.push(format!(
                "virtio-gpu {bus}: not a valid gpu= item ({})",
                config.item()
            ));
        }
        s = s.append(format!("gpu={}", config.item()));
        if gpu.dump {
            s = s.peer(Screendump {
                config,
                expect_seed: gpu.expect_seed,
            });
        }
        s
    }
}

/// The screendump peer of one GPU.
#[derive(Debug, Clone)]
pub struct Screendump {
    config: GpuConfig,
    expect_seed: Option<u64>,
}

impl PeerSpec for Screendump {
    fn name(&self) -> String {
        format!("gpu {}", self.config.bus)
    }

    fn start(&self, ctx: &PeerContext) -> io::Result<Box<dyn Peer>> {
        Ok(Box::new(Running {
            monitor: PeerMonitor::new(ctx, &format!("gpu-{}.qmp", self.config.bus)),
            file: ctx.dir.join(format!("gpu-{}.ppm", self.config.bus)),
            seed: self.expect_seed.unwrap_or(ctx.seed),
            spec: self.clone(),
            seen: false,
            lines: Vec::new(),
            reasons: Vec::new(),
        }))
    }
}

struct Running {
    spec: Screendump,
    monitor: PeerMonitor,
    file: PathBuf,
    seed: u64,
    /// The marker came (and was acted on).
    seen: bool,
    lines: Vec<String>,
    reasons: Vec<String>,
}

impl Running {
    fn act(&mut self) {
        let c = &self.spec.config;
        let dump = serde_json::json!({
            "execute": "screendump",
            "arguments": { "filename": self.file.to_string_lossy() },
        })
        .to_string();
        match self.monitor.query("screendump", &dump) {
            Ok(_) => match std::fs::read(&self.file) {
                Ok(bytes) => match compare(&bytes, c.width, c.height, self.seed) {
                    Ok(n) => self.lines.push(format!(
                        "screendump {}: {}x{}, all {n} pixels as seeded (seed={:#x})",
                        self.file.display(),
                        c.width,
                        c.height,
                        self.seed
                    )),
                    Err(e) => self.reasons.push(format!(
                        "the screendump of scanout 0 ({}) differs from the seeded image (seed={:#x}): {e}",
                        self.file.display(),
                        self.seed
                    )),
                },
                Err(e) => self
                    .reasons
                    .push(format!("cannot read the screendump {}: {e}", self.file.display())),
            },
            Err(e) => self.reasons.push(format!("screendump: {e}")),
        }
        // The firmware's signal to let the image go, whatever we found.
        let nmi = crate::qmp::client::command("inject-nmi", &[]);
        if let Err(e) = self.monitor.query("inject-nmi", &nmi) {
            self.reasons
                .push(format!("inject-nmi (the signal after the screendump): {e}"));
        }
    }
}

impl Peer for Running {
    fn qemu_args(&self) -> Vec<String> {
        self.monitor.qemu_args()
    }

    fn line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix(GPU_SCANOUT) else {
            return;
        };
        let mut words = rest.split_whitespace();
        if words.next() != Some(&self.spec.config.bus.to_string()) {
            return;
        }
        let c = &self.spec.config;
        let mode = format!("{}x{}", c.width, c.height);
        if words.next() != Some(mode.as_str()) {
            self.reasons.push(format!(
                "the firmware's marker names another mode: {line:?} ({mode} configured)"
            ));
        }
        if self.seen {
            self.reasons
                .push(format!("the gpu scanout marker came twice: {line:?}"));
            return;
        }
        self.seen = true;
        self.act();
    }

    fn finish(self: Box<Self>, end: &PeerEnd<'_>) -> PeerOutcome {
        let mut o = PeerOutcome::new(self.spec.name());
        o.lines = self.lines;
        o.reasons = self.reasons;
        let ran = end
            .tap
            .result("gpu.scanout")
            .is_some_and(|r| r.ok && !r.is_skip());
        if !self.seen && ran {
            o.reasons.push(format!(
                "gpu.scanout passed but its marker `{GPU_SCANOUT} {}` never came: no screendump taken",
                self.spec.config.bus
            ));
        } else if !self.seen && end.complete && end.tap.result("gpu.scanout").is_none() {
            o.lines
                .push("gpu.scanout did not run: no screendump taken".into());
        }
        o.figures
            .push(("screendumps".into(), f64::from(u8::from(self.seen))));
        for l in self.monitor.log() {
            if l.contains("error") {
                o.lines.push(format!("QMP {l}"));
            }
        }
        o
    }
}

/// A binary PPM (P6, maxval 255): width, height and the RGB bytes.
pub fn parse_ppm(b: &[u8]) -> Result<(u32, u32, &[u8]), String> {
    let mut at = 0;
    let mut token = || -> Result<&[u8], String> {
        while at < b.len() && b[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while at < b.len() && !b[at].is_ascii_whitespace() {
            at += 1;
        }
        if start == at {
            return Err("the PPM header ends early".into());
        }
        Ok(&b[start..at])
    };
    if token()? != b"P6" {
        return Err("not a binary PPM (P6)".into());
    }
    let mut number = |what: &str| -> Result<u32, String> {
        let t = token()?;
        std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("the PPM's {what} is not a number"))
    };
    let (w, h, max) = (number("width")?, number("height")?, number("maxval")?);
    if max != 255 {
        return Err(format!("PPM maxval {max} (255 expected)"));
    }
    // One whitespace byte after maxval, then the pixels.
    let data = &b[(at + 1).min(b.len())..];
    let want = w as usize * h as usize * 3;
    if data.len() != want {
        return Err(format!(
            "{} bytes of pixels for {w}x{h} ({want} expected)",
            data.len()
        ));
    }
    Ok((w, h, data))
}

/// Compares a PPM screendump with the seeded `width` x `height` image;
/// the pixels compared, or what differs: the size, or the first pixel
/// (row by row) and how many.
pub fn compare(ppm: &[u8], width: u32, height: u32, seed: u64) -> Result<u64, String> {
    let (w, h, data) = parse_ppm(ppm)?;
    if (w, h) != (width, height) {
        return Err(format!(
            "the screendump is {w}x{h}, {width}x{height} expected"
        ));
    }
    let mut first = None;
    let mut differ = 0u64;
    for y in 0..h {
        for x in 0..w {
            let at = (y as usize * w as usize + x as usize) * 3;
            let got = [data[at], data[at + 1], data[at + 2]];
            let want = pixel(seed, x, y);
            if got != want {
                differ += 1;
                first.get_or_insert((x, y, want, got));
            }
        }
    }
    match first {
        None => Ok(u64::from(w) * u64::from(h)),
        Some((x, y, want, got)) => Err(format!(
            "first at (x {x}, y {y}): expected #{:02x}{:02x}{:02x}, got #{:02x}{:02x}{:02x}; \
             {differ} of {} pixels differ",
            want[0],
            want[1],
            want[2],
            got[0],
            got[1],
            got[2],
            u64::from(w) * u64::from(h)
        )),
    }
}

/// Writes the seeded image as a PPM (for tests and a look by hand).
pub fn write_ppm(path: &Path, width: u32, height: u32, seed: u64) -> io::Result<()> {
    std::fs::write(path, seeded_ppm(width, height, seed))
}

fn seeded_ppm(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let mut b = format!("P6\n{width} {height}\n255\n").into_bytes();
    for y in 0..height {
        for x in 0..width {
            b.extend_from_slice(&pixel(seed, x, y));
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeded_image_compares_equal_and_a_pixel_off_is_named() {
        let good = seeded_ppm(7, 5, 3);
        assert_eq!(compare(&good, 7, 5, 3), Ok(35));
        let mut bad = good.clone();
        let header = b"P6\n7 5\n255\n".len();
        let at = header + (2 * 7 + 4) * 3 + 1;
        bad[at] ^= 0xff;
        let e = compare(&bad, 7, 5, 3).unwrap_err();
        assert!(
            e.contains("first at (x 4, y 2)") && e.contains("1 of 35 pixels differ"),
            "{e}"
        );
        let e = compare(&good, 7, 5, 4).unwrap_err();
        assert!(e.contains("first at (x 0, y 0)"), "{e}");
        let e = compare(&good, 8, 5, 3).unwrap_err();
        assert!(e.contains("the screendump is 7x5, 8x5 expected"), "{e}");
        assert!(compare(&good[..good.len() - 1], 7, 5, 3).is_err());
        assert!(compare(b"P5\n1 1\n255\n\0", 1, 1, 3).is_err());
    }

    #[test]
    fn the_device_and_the_word() {
        let s = Scenario::new("g").virtio_gpu(Gpu::new("fe.0.0007", 64, 48).dump(false).flip());
        assert!(
            s.command_line().ends_with("gpu=fe.0.0007:64x48:flip"),
            "{}",
            s.command_line()
        );
        assert!(s.peers.is_empty());
        let bad = Scenario::new("g").virtio_gpu(Gpu::new("fe.0.0007", 0, 48));
        assert!(!bad.errors.is_empty());
    }
}
