//! The virtio-serial control protocol as the host configured it must
//! show it, judged from the messages the device sent. Pure, host-tested.

use crate::format;
use crate::virtio::devices::serial::{
    event_name, Message, CONSOLE_PORT, PORT_ADD, PORT_NAME, PORT_OPEN,
};
use alloc::string::String;
use alloc::vec::Vec;
use zvtest_contract::serial::SerialConfig;

/// The name port `id` must have (`want`, or none) and the PORT_NAMEs
/// `log` gave it, in the words a failure shows.
pub fn port_name<'a>(want: Option<&'a str>, log: &[Message], id: u32) -> (&'a str, String) {
    let names: Vec<&str> = log
        .iter()
        .filter(|m| m.control.event == PORT_NAME && m.control.id == id)
        .filter_map(|m| m.name.as_deref())
        .collect();
    let got = match names.as_slice() {
        [] => String::from(NO_NAME),
        [one] => String::from(*one),
        many => format!("{} PORT_NAMEs: {}", many.len(), many.join(" ").as_str()),
    };
    (want.unwrap_or(NO_NAME), got)
}

const NO_NAME: &str = "(no PORT_NAME)";

/// What the control protocol must show for `cfg`: PORT_ADD for exactly
/// its ports, then per port CONSOLE_PORT for consoles only, PORT_NAME
/// equal to its name (none without one), PORT_OPEN 1, and nothing else.
pub fn judge_control(cfg: &SerialConfig, log: &[Message]) -> Result<(), (String, String, String)> {
    let bus = cfg.bus;
    let ids = |event: u16, id: Option<u32>| -> Vec<u32> {
        log.iter()
            .filter(|m| m.control.event == event && id.is_none_or(|i| m.control.id == i))
            .map(|m| m.control.id)
            .collect()
    };
    let list = |v: &[u32]| {
        if v.is_empty() {
            String::from("none")
        } else {
            v.iter()
                .map(|i| format!("{}", i))
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    let want: Vec<u32> = cfg.ports.iter().map(|p| p.id).collect();
    let mut added = ids(PORT_ADD, None);
    added.sort_unstable();
    if added != want {
        return Err((format!("{} PORT_ADD ports", bus), list(&want), list(&added)));
    }
    for p in &cfg.ports {
        let consoles = ids(CONSOLE_PORT, Some(p.id)).len();
        if consoles != usize::from(p.console) {
            return Err((
                format!("{} port {} CONSOLE_PORT messages", bus, p.id),
                format!("{}", usize::from(p.console)),
                format!("{}", consoles),
            ));
        }
        let (want_name, got_name) = port_name(p.name.as_deref(), log, p.id);
        if want_name != got_name {
            return Err((
                format!("{} port {} PORT_NAME", bus, p.id),
                String::from(want_name),
                got_name,
            ));
        }
        let open = log
            .iter()
            .rev()
            .find(|m| m.control.event == PORT_OPEN && m.control.id == p.id)
            .map(|m| m.control.value);
        if open != Some(1) {
            return Err((
                format!(
                    "{} port {} PORT_OPEN (its host side is connected)",
                    bus, p.id
                ),
                String::from("1"),
                open.map_or(String::from("none"), |v| format!("{}", v)),
            ));
        }
    }
    let known = [PORT_ADD, CONSOLE_PORT, PORT_NAME, PORT_OPEN];
    if let Some(m) = log.iter().find(|m| !known.contains(&m.control.event)) {
        return Err((
            format!("{} control message", bus),
            String::from("PORT_ADD, CONSOLE_PORT, PORT_NAME or PORT_OPEN"),
            format!(
                "{} ({}) for port {}, value {}",
                event_name(m.control.event),
                m.control.event,
                m.control.id,
                m.control.value
            ),
        ));
    }
    Ok(())
}

pub fn describe(log: &[Message]) -> String {
    log.iter()
        .map(|m| match &m.name {
            Some(n) => format!(
                "{}({})={}",
                event_name(m.control.event),
                m.control.id,
                n.as_str()
            ),
            None => format!(
                "{}({})={}",
                event_name(m.control.event),
                m.control.id,
                m.control.value
            ),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::devices::serial::Control;
    use zvtest_contract::serial::PortConfig;

    fn msg(id: u32, event: u16, value: u16, name: Option<&str>) -> Message {
        Message {
            control: Control { id, event, value },
            name: name.map(String::from),
        }
    }

    fn cfg() -> SerialConfig {
        let mut c = SerialConfig::new("fe.0.0003".parse().unwrap());
        c.max_ports = 4;
        c.ports = alloc::vec![
            PortConfig {
                id: 0,
                name: Some("zv.con".into()),
                console: true
            },
            PortConfig {
                id: 1,
                name: Some("zv.a".into()),
                console: false
            },
        ];
        c
    }

    fn good() -> Vec<Message> {
        alloc::vec![
            msg(0, PORT_ADD, 1, None),
            msg(1, PORT_ADD, 1, None),
            msg(0, CONSOLE_PORT, 1, None),
            msg(0, PORT_NAME, 1, Some("zv.con")),
            msg(0, PORT_OPEN, 1, None),
            msg(1, PORT_NAME, 1, Some("zv.a")),
            msg(1, PORT_OPEN, 1, None),
        ]
    }

    #[test]
    fn the_right_protocol_passes() {
        assert_eq!(judge_control(&cfg(), &good()), Ok(()));
    }

    #[test]
    fn each_wrong_message_fails_naming_it() {
        type Spoil = fn(&mut Vec<Message>);
        let cases: [(Spoil, &str); 6] = [
            (|l| l.push(msg(2, PORT_ADD, 1, None)), "PORT_ADD ports"),
            (
                |l| {
                    l.remove(1);
                },
                "PORT_ADD ports",
            ),
            (|l| l[5].name = Some("zv.b".into()), "port 1 PORT_NAME"),
            (
                |l| {
                    l.remove(2);
                },
                "port 0 CONSOLE_PORT",
            ),
            (|l| l.push(msg(1, PORT_OPEN, 0, None)), "port 1 PORT_OPEN"),
            (|l| l.push(msg(1, 5, 0, None)), "control message"),
        ];
        for (spoil, what) in cases {
            let mut l = good();
            spoil(&mut l);
            let (got, _, _) = judge_control(&cfg(), &l).unwrap_err();
            assert!(got.contains(what), "{got} for {what}");
        }
    }
}
