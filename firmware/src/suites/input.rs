//! virtio-input (keyboard, mouse, tablet): the configuration window held
//! to what QEMU's source gives each model (`input.config`), a seeded
//! sequence of events the host injects received exactly (`input.events`),
//! and LED events taken from the keyboard's status queue (`input.status`).
//! `input=` says which model sits where.

use crate::check::Outcome;
use crate::fmt::Hex;
use crate::format;
use crate::machine::Machine;
use crate::virtio::ccw::CcwTransport;
use crate::virtio::devices::input::{self as dev, Event, Input, Selected};
use crate::virtio::indicators::{self, IndicatorMode, Indicators};
use crate::virtio::transport::{driver_ok_status, negotiate, Transport};
use alloc::string::String;
use alloc::vec::Vec;
use zvtest_contract::input::{self as contract, InputConfig, Model};

/// How long the host has to deliver each event of a round.
const EVENT_WAIT_US: u64 = 10_000_000;
/// How long the device has to take a status buffer.
const STATUS_WAIT_US: u64 = 2_000_000;

/// The configured devices, each with its subchannel: an error names a
/// bus id `input=` gives where no virtio-input device is.
fn configured(m: &Machine) -> Result<Vec<(InputConfig, u32)>, Outcome> {
    let mut v = Vec::new();
    for c in &m.cfg.input {
        let Some(d) = m
            .inventory
            .virtio_devices(dev::DEVICE_ID)
            .find(|d| d.bus_id() == c.bus)
        else {
            return Err(Outcome::mismatch(
                &format!("input= names {} ({})", c.bus, c.model.word()),
                "a virtio-input device there",
                "none",
            ));
        };
        v.push((*c, d.subchannel.sid));
    }
    Ok(v)
}

/// The devices found that `input=` does not name, for a skip's reason.
fn unnamed(m: &Machine) -> String {
    let mut s = String::new();
    for d in m.inventory.virtio_devices(dev::DEVICE_ID) {
        if !m.cfg.input.iter().any(|c| c.bus == d.bus_id()) {
            s.push_str(&format!(" {}", d.bus_id()));
        }
    }
    s
}

fn no_input(m: &Machine) -> Outcome {
    let found = unnamed(m);
    if found.is_empty() {
        Outcome::skip("no input= on the command line and no virtio-input device")
    } else {
        Outcome::skip(&format!(
            "no input= on the command line: the model of the virtio-input devices at{} is not known",
            found.as_str()
        ))
    }
}

/// Opens a device at revision 1 or 2 (virtio-input takes nothing lower),
/// features negotiated.
fn open(sid: u32) -> Result<CcwTransport, String> {
    let mut t = CcwTransport::open(sid, 2).map_err(|e| format!("open: {}", e))?;
    if t.revision() < 1 {
        return Err(format!("revision {} (1 or 2 wanted)", t.revision()));
    }
    negotiate(&mut t, 0).map_err(|e| format!("negotiate: {}", e))?;
    Ok(t)
}

fn hex_bytes(b: &[u8]) -> String {
    let mut s = String::new();
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("{}", crate::fmt::HexW(u64::from(*x), 2)));
    }
    if s.is_empty() {
        s.push_str("(size 0)");
    }
    s
}

fn type_name(t: u16) -> String {
    match t {
        contract::EV_SYN => "EV_SYN".into(),
        contract::EV_KEY => "EV_KEY".into(),
        contract::EV_REL => "EV_REL".into(),
        contract::EV_ABS => "EV_ABS".into(),
        contract::EV_MSC => "EV_MSC".into(),
        contract::EV_LED => "EV_LED".into(),
        contract::EV_REP => "EV_REP".into(),
        _ => format!("type {}", Hex(u64::from(t))),
    }
}

/// One device's configuration against QEMU's for its model; the note of
/// what could not be compared, if anything.
fn config_device(
    t: &mut CcwTransport,
    c: InputConfig,
    touch: Option<bool>,
) -> Result<Option<String>, Outcome> {
    let who = format!("{} {}", c.bus, c.model.word());
    let sel = |t: &mut CcwTransport, s: u8, sub: u8, what: &str| -> Result<Selected, Outcome> {
        dev::select(t, s, sub).map_err(|e| {
            Outcome::mismatch(
                &format!("{} {}", who.as_str(), what),
                "an answer within the union",
                format!("{}", e).as_str(),
            )
        })
    };
    let want = contract::qemu_config(c.model, touch.unwrap_or(true));
    let field = |what: &str, expected: &[u8], got: &Selected| -> Result<(), Outcome> {
        if got.bytes() == expected {
            Ok(())
        } else {
            Err(Outcome::mismatch(
                &format!("{} {}", who.as_str(), what),
                hex_bytes(expected).as_str(),
                hex_bytes(got.bytes()).as_str(),
            ))
        }
    };
    // The name, with the NUL QEMU counts in its size.
    let name = sel(t, dev::CFG_ID_NAME, 0, "ID_NAME")?;
    let mut want_name = Vec::from(want.name.as_bytes());
    want_name.push(0);
    if name.bytes() != want_name.as_slice() {
        // Printable ASCII as it is, NUL as `\0`, anything else as `?`.
        let mut got = String::new();
        for &b in name.bytes() {
            match b {
                0 => got.push_str("\\0"),
                0x20..0x7f => got.push(b as char),
                _ => got.push('?'),
            }
        }
        return Err(Outcome::mismatch(
            &format!("{} ID_NAME (the model's name with its NUL)", who.as_str()),
            format!("'{}\\0' ({} bytes)", want.name, want_name.len()).as_str(),
            format!("'{}' ({} bytes)", got.as_str(), name.size).as_str(),
        ));
    }
    // No serial property: no serial string.
    field(
        "ID_SERIAL",
        &[],
        &sel(t, dev::CFG_ID_SERIAL, 0, "ID_SERIAL")?,
    )?;
    let ids = sel(t, dev::CFG_ID_DEVIDS, 0, "ID_DEVIDS")?;
    let got = ids.devids().map_err(|e| {
        Outcome::mismatch(
            &format!("{} ID_DEVIDS", who.as_str()),
            "8 bytes",
            format!("{}", e).as_str(),
        )
    })?;
    for (what, w, g) in [
        ("bustype", want.bustype, got.bustype),
        ("vendor", want.vendor, got.vendor),
        ("product", want.product, got.product),
        ("version", want.version, got.version),
    ] {
        if w != g {
            return Err(Outcome::mismatch(
                &format!("{} ID_DEVIDS {}", who.as_str(), what),
                Hex(w.into()),
                Hex(g.into()),
            ));
        }
    }
    field(
        "PROP_BITS",
        &[],
        &sel(t, dev::CFG_PROP_BITS, 0, "PROP_BITS")?,
    )?;
    field("UNSET selector", &[], &sel(t, dev::CFG_UNSET, 0, "UNSET")?)?;
    let mut note = None;
    for ty in 0..=contract::EV_MAX {
        let what = format!("EV_BITS {}", type_name(ty).as_str());
        let got = sel(t, dev::CFG_EV_BITS, ty as u8, what.as_str())?;
        if ty == contract::EV_KEY && want.keys {
            // Every key the sequence presses; nothing of the button range.
            let bits = got.bits();
            if let Some((q, code)) = contract::KEYS.iter().find(|(_, k)| !bits.contains(k)) {
                return Err(Outcome::mismatch(
                    &format!("{} {} (qcode {})", who.as_str(), what.as_str(), q),
                    format!("key {} set", code).as_str(),
                    "clear",
                ));
            }
            if let Some(b) = bits.iter().find(|b| **b >= contract::BTN_MISC) {
                return Err(Outcome::mismatch(
                    &format!("{} {}: keys only", who.as_str(), what.as_str()),
                    "no code from BTN_MISC (0x100) up",
                    format!("code {} set", Hex(u64::from(*b))).as_str(),
                ));
            }
            crate::out!(
                "# input {} EV_KEY: {} keys in {} bytes\n",
                c.bus,
                bits.len(),
                got.size
            );
            continue;
        }
        let mut expected: Vec<u8> = want
            .ev_bits
            .iter()
            .find(|(t, _)| *t == ty)
            .map(|(_, b)| b.clone())
            .unwrap_or_default();
        let mut got_bytes = Vec::from(got.bytes());
        if ty == contract::EV_KEY && touch.is_none() {
            // The QEMU version is not known: BTN_TOUCH (from 8.1) not compared.
            let (byte, bit) = (
                usize::from(contract::BTN_TOUCH / 8),
                contract::BTN_TOUCH % 8,
            );
            for v in [&mut expected, &mut got_bytes] {
                if let Some(b) = v.get_mut(byte) {
                    *b &= !(1 << bit);
                }
            }
            note = Some(String::from(
                "BTN_TOUCH not compared: no qemu-version= (QEMU maps it from 8.1)",
            ));
        }
        if got_bytes != expected {
            return Err(Outcome::mismatch(
                &format!("{} {}", who.as_str(), what.as_str()),
                hex_bytes(&expected).as_str(),
                hex_bytes(&got_bytes).as_str(),
            ));
        }
    }
    for axis in 0..=contract::ABS_MAX {
        let what = format!("ABS_INFO axis {}", axis);
        let got = sel(t, dev::CFG_ABS_INFO, axis as u8, what.as_str())?;
        if !want.abs_axes.contains(&axis) {
            field(what.as_str(), &[], &got)?;
            continue;
        }
        let info = got.abs_info().map_err(|e| {
            Outcome::mismatch(
                &format!("{} {}", who.as_str(), what.as_str()),
                "20 bytes",
                format!("{}", e).as_str(),
            )
        })?;
        for (f, w, g) in [
            ("min", 0, info.min),
            ("max", contract::ABS_RANGE_MAX, info.max),
            ("fuzz", 0, info.fuzz),
            ("flat", 0, info.flat),
            ("res", 0, info.res),
        ] {
            if w != g {
                return Err(Outcome::mismatch(
                    &format!("{} {} {}", who.as_str(), what.as_str(), f),
                    Hex(w.into()),
                    Hex(g.into()),
                ));
            }
        }
    }
    Ok(note)
}

/// `input.config`: each device of `input=` shows QEMU's name, ids, event
/// bits for every type and axis ranges for its model.
pub fn config(m: &mut Machine) -> Outcome {
    if m.cfg.input.is_empty() {
        return no_input(m);
    }
    let devices = match configured(m) {
        Ok(d) => d,
        Err(o) => return o,
    };
    let touch = m.cfg.qemu_version.map(contract::has_touch);
    let mut note = None;
    for (c, sid) in devices {
        let mut t = match open(sid) {
            Ok(t) => t,
            Err(e) => {
                return Outcome::fail(&format!("{} {}: {}", c.bus, c.model.word(), e.as_str()))
            }
        };
        match config_device(&mut t, c, touch) {
            Ok(n) => note = note.or(n),
            Err(o) => return o,
        }
        let _ = t.reset();
    }
    let others = unnamed(m);
    if !others.is_empty() {
        let n = format!(
            "virtio-input devices input= does not name, not compared:{}",
            others.as_str()
        );
        note = Some(match note {
            Some(a) => format!("{}; {}", a.as_str(), n.as_str()),
            None => n,
        });
    }
    match note {
        Some(n) => Outcome::PassNote(n),
        None => Outcome::Pass,
    }
}

/// A device at DRIVER_OK with every event buffer posted, its used
/// buffers signalled with classic indicators and an I/O interrupt.
fn open_ready(sid: u32) -> Result<(CcwTransport, Indicators, Input), String> {
    let mut t = open(sid)?;
    let ind = Indicators::install(&mut t, IndicatorMode::Classic)
        .map_err(|e| format!("indicators: {}", e))?;
    let mut d = Input::setup(&mut t, 0).map_err(|e| format!("queues: {}", e))?;
    for slot in 0..d.event_slots() {
        d.post(slot).map_err(|e| format!("posting: {}", e))?;
    }
    d.kick(&mut t).map_err(|e| format!("kick: {}", e))?;
    t.set_status(driver_ok_status(t.revision()))
        .map_err(|e| format!("DRIVER_OK: {}", e))?;
    Ok((t, ind, d))
}

/// One device's rounds: the events must come exactly as the sequence says.
fn events_device(c: InputConfig, sid: u32, seed: u64, rounds: u32) -> Result<u32, String> {
    let (mut t, mut ind, mut d) = open_ready(sid)?;
    if c.mute {
        // Test only: no interrupts asked for, the ring polled.
        d.event_interrupts(false);
    }
    let mut total = 0;
    for r in 0..rounds {
        let interrupts = indicators::subchannel_interrupts();
        let want = contract::expected_events(&contract::round(seed, c.bus, c.model, r));
        crate::out!("{} {} {}\n", crate::checks::markers::INPUT_EVENTS, c.bus, r);
        for (i, e) in want.iter().enumerate() {
            let mut got = None;
            let mut err = None;
            // Taken by interrupt: the device must signal what it used.
            ind.acknowledge();
            let mut done = || match d.take_event() {
                Ok(Some(x)) => {
                    got = Some(x);
                    true
                }
                Ok(None) => false,
                Err(e) => {
                    err = Some(e);
                    true
                }
            };
            if c.mute {
                t.poll(crate::host_wait::us(EVENT_WAIT_US), &mut done);
            } else {
                t.wait(crate::host_wait::us(EVENT_WAIT_US), &mut done);
            }
            if let Some(e) = err {
                return Err(format!("round {} event {}: {}", r, i, e));
            }
            let Some((slot, ev)) = got else {
                return Err(format!(
                    "round {} event {}: expected {}, got nothing within {}",
                    r,
                    i,
                    e,
                    crate::host_wait::text(EVENT_WAIT_US).as_str()
                ));
            };
            match ev {
                Err(len) => {
                    return Err(format!(
                        "round {} event {}: used length {} (an event is {} bytes)",
                        r,
                        i,
                        len,
                        dev::EVENT_LEN
                    ))
                }
                Ok(got) if got != *e => {
                    return Err(format!(
                        "round {} event {}: expected {}, got {}",
                        r, i, e, got
                    ))
                }
                Ok(_) => {}
            }
            total += 1;
            d.post(slot)
                .and_then(|()| d.kick(&mut t))
                .map_err(|e| format!("posting again: {}", e))?;
        }
        if indicators::subchannel_interrupts() == interrupts {
            return Err(format!(
                "round {}: {} events used with no I/O interrupt for the subchannel",
                r,
                want.len()
            ));
        }
    }
    let _ = t.reset();
    Ok(total)
}

/// `input.events`: for each device of `input=`, one at a time (QEMU hands
/// an event to the input device that reached DRIVER_OK last and takes its
/// kind), every event buffer posted, then `ROUNDS` x `stress=` rounds of
/// the seeded sequence the host injects at our marker: type, code and
/// value of every event and the SYN_REPORT after each batch, in order.
pub fn events(m: &mut Machine) -> Outcome {
    if m.cfg.input.is_empty() {
        return no_input(m);
    }
    let devices = match configured(m) {
        Ok(d) => d,
        Err(o) => return o,
    };
    let rounds = contract::ROUNDS * m.cfg.stress;
    for (c, sid) in devices {
        match events_device(c, sid, m.cfg.seed, rounds) {
            Ok(n) => crate::out!(
                "# input {} {}: {} events in {} rounds as injected\n",
                c.bus,
                c.model.word(),
                n,
                rounds
            ),
            Err(e) => {
                return Outcome::fail(&format!(
                    "{} {} (seed={} only=input.events): {}",
                    c.bus,
                    c.model.word(),
                    Hex(m.cfg.seed),
                    e.as_str()
                ))
            }
        }
    }
    Outcome::Pass
}

/// The LED changes written to the status queue: each LED on, then off,
/// each followed by SYN_REPORT, as a driver reports them.
fn led_events() -> Vec<Event> {
    let mut v = Vec::new();
    for on in [1, 0] {
        for led in [
            contract::LED_NUML,
            contract::LED_CAPSL,
            contract::LED_SCROLLL,
        ] {
            v.push(Event::new(contract::EV_LED, led, on));
            v.push(Event::SYN);
        }
    }
    v
}

fn status_device(sid: u32) -> Result<(u32, u32), String> {
    let (mut t, mut ind, mut d) = open_ready(sid)?;
    let mut nonzero = 0;
    let events = led_events();
    for (i, e) in events.iter().enumerate() {
        let slot = (i % usize::from(d.status_slots())) as u16;
        d.send_status(&mut t, slot, *e)
            .map_err(|err| format!("status {} ({}): {}", i, e, err))?;
        let mut got = None;
        let mut err = None;
        ind.acknowledge();
        t.wait(STATUS_WAIT_US, &mut || match d.take_status() {
            Ok(Some(x)) => {
                got = Some(x);
                true
            }
            Ok(None) => false,
            Err(e) => {
                err = Some(e);
                true
            }
        });
        if let Some(err) = err {
            return Err(format!("status {} ({}): {}", i, e, err));
        }
        match got {
            None => {
                return Err(format!(
                    "status {} ({}): not used within {} s",
                    i,
                    e,
                    STATUS_WAIT_US / 1_000_000
                ))
            }
            Some((s, _)) if s != slot => {
                return Err(format!("status {}: slot {} used for {}", i, s, slot))
            }
            Some((_, len)) => nonzero += u32::from(len != 0),
        }
    }
    let _ = t.reset();
    Ok((events.len() as u32, nonzero))
}

/// `input.status`: LED events (EV_LED then SYN_REPORT, each LED on and
/// off) written to each keyboard's status queue, every buffer used by the
/// device.
pub fn status(m: &mut Machine) -> Outcome {
    if m.cfg.input.is_empty() {
        return no_input(m);
    }
    let devices = match configured(m) {
        Ok(d) => d,
        Err(o) => return o,
    };
    let keyboards: Vec<(InputConfig, u32)> = devices
        .into_iter()
        .filter(|(c, _)| c.model == Model::Keyboard)
        .collect();
    if keyboards.is_empty() {
        return Outcome::skip("no keyboard in input= (only a keyboard has LEDs)");
    }
    let mut note = String::new();
    for (c, sid) in keyboards {
        match status_device(sid) {
            Ok((n, nonzero)) => {
                crate::out!("# input {} kbd: {} status events used\n", c.bus, n);
                if nonzero != 0 {
                    note = format!(
                        "{} of {} status buffers (device-readable only) came back with a used length above 0",
                        nonzero, n
                    );
                }
            }
            Err(e) => return Outcome::fail(&format!("{} kbd: {}", c.bus, e.as_str())),
        }
    }
    if note.is_empty() {
        Outcome::Pass
    } else {
        Outcome::PassNote(note)
    }
}
