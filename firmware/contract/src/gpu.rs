//! virtio-gpu: how the host configured a GPU (`gpu=BUS:WxH[:edid][:dump]`)
//! and the seeded image the firmware puts on scanout 0, which the runner
//! compares pixel by pixel with a screendump — one definition for both.

use crate::disk::mix;
use crate::inventory::BusId;
use alloc::string::String;

/// The largest width and height `gpu=` takes (the image lives in guest
/// storage: 4 bytes a pixel).
pub const MAX_SIDE: u32 = 4096;
/// Scanouts a virtio-gpu has at most (the display-info answer's 16).
pub const MAX_SCANOUTS: u32 = 16;

/// How the host configured a virtio-gpu device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuConfig {
    pub bus: BusId,
    /// QEMU's `xres` and `yres`: scanout 0's mode.
    pub width: u32,
    pub height: u32,
    /// QEMU's `max_outputs` (default 1): the scanouts the device has.
    pub scanouts: u32,
    /// QEMU's `edid=on`: VIRTIO_GPU_F_EDID offered (QEMU's default; the
    /// runner writes `edid=` either way).
    pub edid: bool,
    /// The runner takes a screendump at the `gpu.scanout` marker and then
    /// signals with a restart interrupt (QMP `inject-nmi`), which the
    /// firmware waits for before it lets the image go.
    pub dump: bool,
    /// Test only: one pixel of the image ([`flipped_pixel`]) is drawn
    /// inverted, so the runner's comparison must fail while every
    /// firmware check passes.
    pub flip: bool,
}

impl GpuConfig {
    pub fn new(bus: BusId, width: u32, height: u32) -> Self {
        GpuConfig {
            bus,
            width,
            height,
            scanouts: 1,
            edid: false,
            dump: false,
            flip: false,
        }
    }

    /// `BUS:WxH[:scanouts=N][:edid][:dump][:flip]`, each once, sides 1
    /// to [`MAX_SIDE`], scanouts 1 to [`MAX_SCANOUTS`].
    pub fn parse(item: &str) -> Option<Self> {
        let mut parts = item.split(':');
        let bus = crate::inventory::parse_bus_id(parts.next()?)?;
        let (w, h) = parts.next()?.split_once('x')?;
        let side = |s: &str| {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse::<u32>()
                .ok()
                .filter(|&v| (1..=MAX_SIDE).contains(&v))
        };
        let mut c = GpuConfig::new(bus, side(w)?, side(h)?);
        let mut scanouts = false;
        for word in parts {
            if let Some(n) = word.strip_prefix("scanouts=") {
                if scanouts || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                c.scanouts = n.parse().ok().filter(|n| (1..=MAX_SCANOUTS).contains(n))?;
                scanouts = true;
                continue;
            }
            let flag = match word {
                "edid" => &mut c.edid,
                "dump" => &mut c.dump,
                "flip" => &mut c.flip,
                _ => return None,
            };
            if *flag {
                return None;
            }
            *flag = true;
        }
        Some(c)
    }

    /// The item as `gpu=` takes it.
    pub fn item(&self) -> String {
        let mut s = alloc::format!("{}:{}x{}", self.bus, self.width, self.height);
        if self.scanouts != 1 {
            s.push_str(&alloc::format!(":scanouts={}", self.scanouts));
        }
        for (on, word) in [
            (self.edid, ":edid"),
            (self.dump, ":dump"),
            (self.flip, ":flip"),
        ] {
            if on {
                s.push_str(word);
            }
        }
        s
    }
}

/// Pixel (x, y) of the seeded image as red, green, blue.
pub fn pixel(seed: u64, x: u32, y: u32) -> [u8; 3] {
    let v = mix(seed ^ 0x6770_7500_0000_0000 ^ (u64::from(y) << 20 | u64::from(x)));
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

/// The pixel `:flip` draws inverted in a `width` x `height` image.
pub fn flipped_pixel(width: u32, height: u32) -> (u32, u32) {
    (width * 2 / 3, height / 3)
}

/// The image's pixel as the firmware draws it: [`pixel`], inverted at
/// [`flipped_pixel`] where `flip`.
pub fn drawn_pixel(seed: u64, width: u32, height: u32, flip: bool, x: u32, y: u32) -> [u8; 3] {
    let p = pixel(seed, x, y);
    if flip && (x, y) == flipped_pixel(width, height) {
        p.map(|c| !c)
    } else {
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_and_refuse_the_malformed() {
        let c = GpuConfig::parse("fe.0.0007:640x480:edid:dump").unwrap();
        assert_eq!(
            (c.width, c.height, c.edid, c.dump, c.flip),
            (640, 480, true, true, false)
        );
        assert_eq!(c.item(), "fe.0.0007:640x480:edid:dump");
        let bare = GpuConfig::parse("fe.0.0007:1x4096").unwrap();
        assert_eq!(
            (bare.item().as_str(), bare.scanouts),
            ("fe.0.0007:1x4096", 1)
        );
        let two = GpuConfig::parse("fe.0.0007:8x8:scanouts=2:edid").unwrap();
        assert_eq!(
            (two.scanouts, two.item().as_str()),
            (2, "fe.0.0007:8x8:scanouts=2:edid")
        );
        for bad in [
            "fe.0.0007",
            "fe.0.0007:640",
            "fe.0.0007:0x480",
            "fe.0.0007:640x4097",
            "fe.0.0007:+640x480",
            "fe.0.0007:640x480:edid:edid",
            "fe.0.0007:640x480:vga",
            "fe.0.0007:640x480:",
            "fe.0.0007:640x480:scanouts=0",
            "fe.0.0007:640x480:scanouts=17",
            "fe.0.0007:640x480:scanouts=1:scanouts=2",
        ] {
            assert_eq!(GpuConfig::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_image_depends_on_seed_and_place() {
        let a = pixel(1, 10, 20);
        assert_eq!(a, pixel(1, 10, 20));
        assert_ne!(a, pixel(2, 10, 20));
        assert_ne!(a, pixel(1, 11, 20));
        assert_ne!(a, pixel(1, 10, 21));
        let (fx, fy) = flipped_pixel(640, 480);
        assert_eq!((fx, fy), (426, 160));
        assert_eq!(
            drawn_pixel(1, 640, 480, true, fx, fy),
            pixel(1, fx, fy).map(|c| !c)
        );
        assert_eq!(drawn_pixel(1, 640, 480, false, fx, fy), pixel(1, fx, fy));
        assert_eq!(drawn_pixel(1, 640, 480, true, 0, 0), pixel(1, 0, 0));
    }
}
