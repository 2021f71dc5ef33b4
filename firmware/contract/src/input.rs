//! virtio-input as host and firmware share it: which model sits at which
//! bus id (`input=` on the command line), the 8-byte event the device
//! writes, the Linux input codes involved, and the seeded sequence the
//! runner injects over QMP (`input-send-event`) and the firmware expects.
//!
//! How QEMU turns an injected action into device events comes from its
//! source (hw/input/virtio-input-hid.c `virtio_input_handle_event` and
//! `virtio_input_handle_sync`, ui/input.c `qmp_input_send_event`): one
//! event per action, then one SYN_REPORT per `input-send-event` command.
//! Absolute values sent over QMP reach the device unscaled.

use crate::inventory::BusId;
use crate::stress::Rng;
use alloc::string::String;
use alloc::vec::Vec;

/// Linux event types (include/uapi/linux/input-event-codes.h).
pub const EV_SYN: u16 = 0x00;
pub const EV_KEY: u16 = 0x01;
pub const EV_REL: u16 = 0x02;
pub const EV_ABS: u16 = 0x03;
pub const EV_MSC: u16 = 0x04;
pub const EV_LED: u16 = 0x11;
pub const EV_REP: u16 = 0x14;
/// Highest event type (EV_MAX).
pub const EV_MAX: u16 = 0x1f;

pub const SYN_REPORT: u16 = 0;
pub const REL_X: u16 = 0x00;
pub const REL_Y: u16 = 0x01;
pub const REL_WHEEL: u16 = 0x08;
pub const ABS_X: u16 = 0x00;
pub const ABS_Y: u16 = 0x01;
/// Highest absolute axis (ABS_MAX).
pub const ABS_MAX: u16 = 0x3f;
pub const BTN_LEFT: u16 = 0x110;
pub const BTN_RIGHT: u16 = 0x111;
pub const BTN_MIDDLE: u16 = 0x112;
pub const BTN_SIDE: u16 = 0x113;
pub const BTN_EXTRA: u16 = 0x114;
pub const BTN_TOUCH: u16 = 0x14a;
pub const BTN_GEAR_DOWN: u16 = 0x150;
pub const BTN_GEAR_UP: u16 = 0x151;
/// First code of the button range (BTN_MISC): keys lie below it.
pub const BTN_MISC: u16 = 0x100;
pub const LED_NUML: u16 = 0;
pub const LED_CAPSL: u16 = 1;
pub const LED_SCROLLL: u16 = 2;

/// The largest absolute value QEMU's pointer devices report (ui/input.h
/// INPUT_EVENT_ABS_MAX; the minimum is 0).
pub const ABS_RANGE_MAX: u32 = 0x7fff;

/// One event as the device writes it (virtio 1.2 section 5.8.6.2): type,
/// code, value, all little-endian.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub kind: u16,
    pub code: u16,
    pub value: i32,
}

/// Bytes of an [`Event`].
pub const EVENT_LEN: usize = 8;

impl Event {
    pub const fn new(kind: u16, code: u16, value: i32) -> Self {
        Event { kind, code, value }
    }

    pub const SYN: Event = Event::new(EV_SYN, SYN_REPORT, 0);

    pub fn encode(&self) -> [u8; EVENT_LEN] {
        let mut b = [0u8; EVENT_LEN];
        b[0..2].copy_from_slice(&self.kind.to_le_bytes());
        b[2..4].copy_from_slice(&self.code.to_le_bytes());
        b[4..8].copy_from_slice(&self.value.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8; EVENT_LEN]) -> Self {
        Event {
            kind: u16::from_le_bytes([b[0], b[1]]),
            code: u16::from_le_bytes([b[2], b[3]]),
            value: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

impl ufmt::uDisplay for Event {
    fn fmt<W: ufmt::uWrite + ?Sized>(
        &self,
        f: &mut ufmt::Formatter<'_, W>,
    ) -> Result<(), W::Error> {
        let kind = match self.kind {
            EV_SYN => "EV_SYN",
            EV_KEY => "EV_KEY",
            EV_REL => "EV_REL",
            EV_ABS => "EV_ABS",
            EV_LED => "EV_LED",
            _ => "",
        };
        if kind.is_empty() {
            ufmt::uwrite!(f, "type {}", self.kind)?;
        } else {
            f.write_str(kind)?;
        }
        ufmt::uwrite!(f, " code {} value {}", self.code, self.value)
    }
}

/// The QEMU models of virtio-input-ccw this project drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Model {
    Keyboard,
    Mouse,
    Tablet,
}

impl Model {
    pub const ALL: [Model; 3] = [Model::Keyboard, Model::Mouse, Model::Tablet];

    /// The word `input=` uses.
    pub fn word(self) -> &'static str {
        match self {
            Model::Keyboard => "kbd",
            Model::Mouse => "mouse",
            Model::Tablet => "tablet",
        }
    }

    /// QEMU's device model on the channel subsystem.
    pub fn qemu_model(self) -> &'static str {
        match self {
            Model::Keyboard => "virtio-keyboard-ccw",
            Model::Mouse => "virtio-mouse-ccw",
            Model::Tablet => "virtio-tablet-ccw",
        }
    }

    pub fn from_word(w: &str) -> Option<Model> {
        Model::ALL.into_iter().find(|m| m.word() == w)
    }
}

/// One input device as the host configured it (`input=BUS:MODEL[:mute]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputConfig {
    pub bus: BusId,
    pub model: Model,
    /// Test only: `input.events` asks the device for no used-buffer
    /// interrupts on the event queue (and polls), so that its interrupt
    /// check must fail.
    pub mute: bool,
}

impl InputConfig {
    pub fn new(bus: BusId, model: Model) -> Self {
        InputConfig {
            bus,
            model,
            mute: false,
        }
    }

    pub fn parse(item: &str) -> Option<Self> {
        let mut parts = item.split(':');
        let bus = crate::inventory::parse_bus_id(parts.next()?)?;
        let model = Model::from_word(parts.next()?)?;
        let mute = match parts.next() {
            None => false,
            Some("mute") => true,
            Some(_) => return None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(InputConfig { bus, model, mute })
    }

    pub fn item(&self) -> String {
        let mut s = alloc::format!("{}:{}", self.bus, self.model.word());
        if self.mute {
            s.push_str(":mute");
        }
        s
    }
}

/// A pointer button as QMP names it (qapi InputButton) and the code QEMU's
/// `keymap_button` gives it.
pub const BUTTONS: &[(&str, u16)] = &[
    ("left", BTN_LEFT),
    ("right", BTN_RIGHT),
    ("middle", BTN_MIDDLE),
    ("side", BTN_SIDE),
    ("extra", BTN_EXTRA),
];

/// Keys the sequence presses: QMP's qcode names and the Linux codes
/// QEMU's qcode-to-linux map (ui/keycodemapdb, keymaps.csv) gives them,
/// the same in every QEMU this project runs.
pub const KEYS: &[(&str, u16)] = &[
    ("esc", 1),
    ("1", 2),
    ("2", 3),
    ("3", 4),
    ("4", 5),
    ("5", 6),
    ("6", 7),
    ("7", 8),
    ("8", 9),
    ("9", 10),
    ("0", 11),
    ("backspace", 14),
    ("tab", 15),
    ("q", 16),
    ("w", 17),
    ("e", 18),
    ("r", 19),
    ("t", 20),
    ("y", 21),
    ("u", 22),
    ("i", 23),
    ("o", 24),
    ("p", 25),
    ("ret", 28),
    ("ctrl", 29),
    ("a", 30),
    ("s", 31),
    ("d", 32),
    ("f", 33),
    ("g", 34),
    ("h", 35),
    ("j", 36),
    ("k", 37),
    ("l", 38),
    ("shift", 42),
    ("z", 44),
    ("x", 45),
    ("c", 46),
    ("v", 47),
    ("b", 48),
    ("n", 49),
    ("m", 50),
    ("alt", 56),
    ("spc", 57),
    ("f1", 59),
    ("f2", 60),
    ("f3", 61),
    ("f4", 62),
    ("f5", 63),
    ("f6", 64),
    ("f7", 65),
    ("f8", 66),
    ("f9", 67),
    ("f10", 68),
    ("f11", 87),
    ("f12", 88),
    ("home", 102),
    ("up", 103),
    ("pgup", 104),
    ("left", 105),
    ("right", 106),
    ("end", 107),
    ("down", 108),
    ("pgdn", 109),
    ("insert", 110),
    ("delete", 111),
];

/// An axis as QMP names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    X,
    Y,
}

impl Axis {
    pub fn name(self) -> &'static str {
        match self {
            Axis::X => "x",
            Axis::Y => "y",
        }
    }
}

/// One event the runner injects (an element of `input-send-event`'s
/// `events`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A key of [`KEYS`] (index) pressed or released.
    Key { key: usize, down: bool },
    /// A button of [`BUTTONS`] (index) pressed or released.
    Btn { button: usize, down: bool },
    /// The wheel turned one notch (a `wheel-up`/`wheel-down` press).
    Wheel { up: bool },
    /// A relative move.
    Rel { axis: Axis, value: i32 },
    /// An absolute position, 0..=[`ABS_RANGE_MAX`].
    Abs { axis: Axis, value: i32 },
}

impl Action {
    /// The event QEMU's virtio-input HID model writes for it (with
    /// `wheel-axis` on, QEMU's default: a wheel press is REL_WHEEL +1 up,
    /// -1 down).
    pub fn event(&self) -> Event {
        match *self {
            Action::Key { key, down } => Event::new(EV_KEY, KEYS[key].1, i32::from(down)),
            Action::Btn { button, down } => Event::new(EV_KEY, BUTTONS[button].1, i32::from(down)),
            Action::Wheel { up } => Event::new(EV_REL, REL_WHEEL, if up { 1 } else { -1 }),
            Action::Rel { axis, value } => Event::new(
                EV_REL,
                match axis {
                    Axis::X => REL_X,
                    Axis::Y => REL_Y,
                },
                value,
            ),
            Action::Abs { axis, value } => Event::new(
                EV_ABS,
                match axis {
                    Axis::X => ABS_X,
                    Axis::Y => ABS_Y,
                },
                value,
            ),
        }
    }
}

/// Rounds of `input.events` per device at `stress=1` (each round the
/// firmware's event buffers are all posted again, so the ring wraps).
pub const ROUNDS: u32 = 2;
/// Events (with the SYN_REPORTs) of one round at most: fewer than QEMU's
/// 64-entry event queue holds, since QEMU drops a whole batch it has no
/// room for.
pub const MAX_ROUND_EVENTS: usize = 48;

/// The batches (one `input-send-event` each) of round `round` for the
/// device at `bus` of `model`: a function of the seed and those only.
pub fn round(seed: u64, bus: BusId, model: Model, round: u32) -> Vec<Vec<Action>> {
    let stream = (u64::from(bus.cssid) << 24 | u64::from(bus.ssid) << 16 | u64::from(bus.devno))
        ^ 0x696e_7075_7400_0000;
    let mut rng = Rng::for_request(seed, stream, u64::from(round));
    let mut batches = Vec::new();
    let mut events = 0;
    let mut held: Vec<usize> = Vec::new();
    loop {
        let mut batch = Vec::new();
        let n = rng.range(1, 3) as usize;
        for _ in 0..n {
            batch.push(draw(&mut rng, model, &mut held));
        }
        // The batch and its SYN_REPORT must fit.
        if events + batch.len() + 1 > MAX_ROUND_EVENTS {
            break;
        }
        events += batch.len() + 1;
        batches.push(batch);
    }
    batches
}

/// One action for `model`; keys and buttons pressed are released later
/// (`held` lists them).
fn draw(rng: &mut Rng, model: Model, held: &mut Vec<usize>) -> Action {
    let coord = |rng: &mut Rng| rng.range(0, u64::from(ABS_RANGE_MAX)) as i32;
    let axis = |rng: &mut Rng| if rng.chance(1, 2) { Axis::X } else { Axis::Y };
    let press = |rng: &mut Rng, held: &mut Vec<usize>, n: usize| {
        if !held.is_empty() && rng.chance(1, 2) {
            let i = rng.below(held.len() as u64) as usize;
            (held.swap_remove(i), false)
        } else {
            let k = rng.below(n as u64) as usize;
            if !held.contains(&k) {
                held.push(k);
            }
            (k, true)
        }
    };
    match model {
        Model::Keyboard => {
            let (key, down) = press(rng, held, KEYS.len());
            Action::Key { key, down }
        }
        Model::Mouse | Model::Tablet => match rng.below(8) {
            0..=1 => {
                let (button, down) = press(rng, held, BUTTONS.len());
                Action::Btn { button, down }
            }
            2 => Action::Wheel {
                up: rng.chance(1, 2),
            },
            _ if model == Model::Mouse => {
                let v = rng.range(1, 200) as i32;
                Action::Rel {
                    axis: axis(rng),
                    value: if rng.chance(1, 2) { v } else { -v },
                }
            }
            _ => Action::Abs {
                axis: axis(rng),
                value: coord(rng),
            },
        },
    }
}

/// The events the device writes for `batches`: each action's event, and a
/// SYN_REPORT after each batch.
pub fn expected_events(batches: &[Vec<Action>]) -> Vec<Event> {
    let mut v = Vec::new();
    for b in batches {
        v.extend(b.iter().map(Action::event));
        v.push(Event::SYN);
    }
    v
}

/// What QEMU's HID models show in their configuration space
/// (hw/input/virtio-input-hid.c, with `wheel-axis` on as by default; the
/// ids' bus type is BUS_VIRTUAL, the vendor 0x0627).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// ID_NAME: the name with its NUL (QEMU's size is the C string's).
    pub name: &'static str,
    pub bustype: u16,
    pub vendor: u16,
    pub product: u16,
    pub version: u16,
    /// EV_BITS per event type with a bitmap; every other type has size 0.
    /// The keyboard's EV_KEY is not here: it is QEMU's whole qcode map
    /// ([`Expected::keys`]).
    pub ev_bits: Vec<(u16, Vec<u8>)>,
    /// Whether EV_KEY is the keyboard's (every key of [`KEYS`], nothing
    /// from the button range up).
    pub keys: bool,
    /// Axes with ABS_INFO: min 0, max [`ABS_RANGE_MAX`], fuzz, flat and
    /// resolution 0; every other axis has size 0.
    pub abs_axes: Vec<u16>,
}

/// BUS_VIRTUAL (include/uapi/linux/input.h).
pub const BUS_VIRTUAL: u16 = 0x06;
/// The vendor id QEMU gives its virtio input devices.
pub const QEMU_VENDOR: u16 = 0x0627;

/// A bitmap of `bits`, as long as its highest byte needs.
pub fn bitmap(bits: &[u16]) -> Vec<u8> {
    let len = bits
        .iter()
        .map(|b| usize::from(*b) / 8 + 1)
        .max()
        .unwrap_or(0);
    let mut v = alloc::vec![0u8; len];
    for b in bits {
        v[usize::from(*b) / 8] |= 1 << (b % 8);
    }
    v
}

/// The pointer buttons QEMU's `keymap_button` maps: BTN_TOUCH only from
/// QEMU 8.1, which added it with virtio-multitouch.
pub fn button_bits(touch: bool) -> Vec<u16> {
    let mut v = alloc::vec![BTN_LEFT, BTN_RIGHT, BTN_MIDDLE, BTN_SIDE, BTN_EXTRA];
    if touch {
        v.push(BTN_TOUCH);
    }
    v.extend([BTN_GEAR_DOWN, BTN_GEAR_UP]);
    v
}

/// Whether QEMU `version` (major, minor) maps BTN_TOUCH.
pub fn has_touch(version: (u16, u16)) -> bool {
    version >= (8, 1)
}

/// What QEMU shows for `model`; `touch` as [`button_bits`].
pub fn qemu_config(model: Model, touch: bool) -> Expected {
    let buttons = bitmap(&button_bits(touch));
    let (name, product, version, ev_bits, keys, abs_axes) = match model {
        Model::Keyboard => (
            "QEMU Virtio Keyboard",
            1,
            1,
            alloc::vec![
                (EV_LED, bitmap(&[LED_NUML, LED_CAPSL, LED_SCROLLL])),
                // Size 1, no bit set: repeat offered, nothing in it.
                (EV_REP, alloc::vec![0]),
            ],
            true,
            Vec::new(),
        ),
        Model::Mouse => (
            "QEMU Virtio Mouse",
            2,
            2,
            alloc::vec![
                (EV_KEY, buttons),
                (EV_REL, bitmap(&[REL_X, REL_Y, REL_WHEEL])),
            ],
            false,
            Vec::new(),
        ),
        Model::Tablet => (
            "QEMU Virtio Tablet",
            3,
            2,
            alloc::vec![
                (EV_KEY, buttons),
                (EV_REL, bitmap(&[REL_WHEEL])),
                (EV_ABS, bitmap(&[ABS_X, ABS_Y])),
            ],
            false,
            alloc::vec![ABS_X, ABS_Y],
        ),
    };
    Expected {
        name,
        bustype: BUS_VIRTUAL,
        vendor: QEMU_VENDOR,
        product,
        version,
        ev_bits,
        keys,
        abs_axes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bus(devno: u16) -> BusId {
        BusId {
            cssid: 0xfe,
            ssid: 0,
            devno,
        }
    }

    #[test]
    fn events_are_little_endian() {
        let e = Event::new(EV_REL, REL_WHEEL, -1);
        assert_eq!(e.encode(), [2, 0, 8, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(Event::decode(&e.encode()), e);
        assert_eq!(Event::SYN.encode(), [0; 8]);
    }

    #[test]
    fn qemu_bitmaps() {
        // virtio-input-hid.c: REL_X|REL_Y, then REL_WHEEL in the second byte.
        assert_eq!(bitmap(&[REL_X, REL_Y, REL_WHEEL]), [0x03, 0x01]);
        assert_eq!(bitmap(&[REL_WHEEL]), [0x00, 0x01]);
        let b = bitmap(&button_bits(true));
        assert_eq!(b.len(), 43);
        assert_eq!((b[34], b[41], b[42]), (0x1f, 0x04, 0x03));
        assert_eq!(bitmap(&button_bits(false))[41], 0);
        assert!(has_touch((8, 1)) && has_touch((10, 0)) && !has_touch((7, 2)));
        let k = qemu_config(Model::Keyboard, true);
        assert!(k.keys && k.ev_bits.iter().all(|(t, _)| *t != EV_KEY));
        assert_eq!(qemu_config(Model::Tablet, false).abs_axes, [ABS_X, ABS_Y]);
    }

    #[test]
    fn items_round_trip() {
        let c = InputConfig::parse("fe.0.000e:mouse").unwrap();
        assert_eq!(c.model, Model::Mouse);
        assert_eq!(c.item(), "fe.0.000e:mouse");
        assert_eq!(InputConfig::parse("fe.0.000e:pen"), None);
        assert_eq!(InputConfig::parse("fe.0.000e"), None);
        assert_eq!(InputConfig::parse("fe.0.000e:kbd:x"), None);
        assert_eq!(InputConfig::parse("fe.0.000e:kbd:mute:mute"), None);
        let m = InputConfig::parse("fe.0.000e:tablet:mute").unwrap();
        assert!(m.mute && m.item() == "fe.0.000e:tablet:mute");
    }

    #[test]
    fn rounds_are_seeded_fit_the_queue_and_suit_the_model() {
        for model in Model::ALL {
            let a = round(7, bus(8), model, 0);
            assert_eq!(a, round(7, bus(8), model, 0));
            assert_ne!(a, round(8, bus(8), model, 0));
            assert_ne!(a, round(7, bus(8), model, 1));
            let e = expected_events(&a);
            assert!(e.len() <= MAX_ROUND_EVENTS && e.len() > MAX_ROUND_EVENTS - 5);
            assert_eq!(e.iter().filter(|e| **e == Event::SYN).count(), a.len());
            for ev in &e {
                match model {
                    Model::Keyboard => {
                        assert!(ev.kind == EV_KEY && ev.code < BTN_MISC || *ev == Event::SYN)
                    }
                    Model::Mouse => assert!(ev.kind != EV_ABS),
                    Model::Tablet => {
                        assert!(!(ev.kind == EV_REL && ev.code != REL_WHEEL));
                        if ev.kind == EV_ABS {
                            assert!((0..=ABS_RANGE_MAX as i32).contains(&ev.value));
                        }
                    }
                }
            }
        }
    }
}
