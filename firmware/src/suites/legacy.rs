//! The legacy s390-virtio transport: the device page above storage and
//! its hypercalls. Absent on every current QEMU (one SKIP line); a test
//! scenario places a synthetic page and passes `ram-end=`.

use crate::arch::interrupt::expect_program_interrupt;
use crate::arch::{probe, Page};
use crate::check::Outcome;
use crate::fmt::Hex;
use crate::format;
use crate::machine::Machine;
use crate::virtio::ids::DeviceName;
use crate::virtio::legacy::diag::DiagHost;
use crate::virtio::legacy::{LegacyError, LegacyTransport};
use crate::virtio::legacy_page::{self, LegacyDevice, PAGE_SIZE};
use crate::virtio::transport::{Status, Transport, TransportError};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

/// Copies the page at `addr` and says how many of its bytes are storage;
/// None if its first doubleword is not. A page cut short by the end of
/// storage keeps zeros past that point.
fn read_page(addr: u64) -> Option<(Box<Page>, usize)> {
    let mut page = Box::new(Page([0; 4096]));
    let mut read = 0usize;
    let buf = &mut page.0;
    let read_ref = &mut read;
    expect_program_interrupt(|| {
        for (i, chunk) in buf.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&probe::load_u64(addr + 8 * i as u64).to_be_bytes());
            *read_ref += 8;
        }
    });
    (read > 0).then_some((page, read))
}

fn page_address(m: &Machine) -> u64 {
    m.cfg.ram_end.unwrap_or(m.memory)
}

fn describe(devs: &[LegacyDevice]) -> String {
    let parts: Vec<String> = devs
        .iter()
        .map(|d| format!("{}:{}", DeviceName(d.device_type.into()), d.queues.len()))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(",")
    }
}

/// `name:queues,...` of the expected devices, or `none`.
fn expected(want: &[(String, u8)]) -> String {
    let items: Vec<String> = want
        .iter()
        .map(|(n, q)| format!("{}:{}", n.as_str(), q))
        .collect();
    if items.is_empty() {
        String::from("none")
    } else {
        items.join(",")
    }
}

pub fn page(m: &mut Machine) -> Outcome {
    let addr = page_address(m);
    let Some((page, readable)) = read_page(addr) else {
        return match &m.cfg.legacy_devices {
            Some(want) if !want.is_empty() => Outcome::mismatch(
                &format!("legacy device page at {}", Hex(addr)),
                expected(want).as_str(),
                "no page (addressing exception: storage ends there)",
            ),
            // Expected none, and there is none.
            Some(_) => Outcome::Pass,
            None => Outcome::skip(&format!(
                "no s390-virtio device page at {} (addressing exception: storage ends there)",
                Hex(addr)
            )),
        };
    };
    let devs = match legacy_page::parse(&page.0) {
        Ok(d) => d,
        Err(e) => {
            return Outcome::mismatch(
                "device page at ram-end",
                "a well-formed page",
                format!("{}", e).as_str(),
            )
        }
    };
    for d in &devs {
        crate::out!(
            "# legacy device {} at {}: {}, {} queues, {} feature bytes, {} config bytes, status {}\n",
            d.index,
            Hex(addr + d.offset as u64),
            DeviceName(d.device_type.into()),
            d.queues.len(),
            d.host_features.len(),
            d.config.len(),
            Hex(d.status.into())
        );
    }
    let got = describe(&devs);
    if let Some(want) = &m.cfg.legacy_devices {
        let listed = Outcome::expect_eq(
            "legacy devices (name:queues)",
            expected(want).as_str(),
            got.as_str(),
        );
        if !listed.is_pass() {
            return listed;
        }
    }
    let compared = if m.cfg.legacy_devices.is_some() {
        "equal to legacy-devices="
    } else {
        "not compared: no legacy-devices= on the command line"
    };
    match drive(m, addr, readable, &devs) {
        Driven::NotServed => Outcome::skip(&format!(
            "page at {} holds {} ({}), but the legacy hypercalls are not served (RESET faults): no legacy host behind it",
            Hex(addr),
            got.as_str(),
            compared
        )),
        Driven::Failed(o) => o,
        Driven::Done if m.cfg.legacy_devices.is_some() => Outcome::Pass,
        Driven::Done => Outcome::PassNote(format!(
            "page at {} holds {} ({}); reset, set and notified through the legacy hypercalls",
            Hex(addr),
            got.as_str(),
            compared
        )),
    }
}

/// What driving the page's devices came to.
enum Driven {
    /// Every device reset, set and notified (or there were none).
    Done,
    /// The host does not serve the legacy hypercalls.
    NotServed,
    Failed(Outcome),
}

/// Where a legacy host keeps its rings: storage above both the page and
/// the guest's own (the seed's host extended storage past the page for
/// them), up to where storage ends.
fn ring_window(m: &Machine, page: u64) -> core::ops::Range<u64> {
    let start = (page + PAGE_SIZE as u64).max(m.memory);
    start..crate::memory::probe_storage_size().max(start)
}

/// Drives each device of the page through the legacy transport (RESET,
/// SET_STATUS, NOTIFY) where the host serves those hypercalls; a page
/// without a legacy host behind it (a synthetic one) says so.
fn drive(m: &Machine, addr: u64, readable: usize, devs: &[LegacyDevice]) -> Driven {
    if devs.is_empty() {
        return Driven::Done;
    }
    // The host writes the page in place: never where the firmware's own
    // objects live (`ram-end=` can name any address).
    if addr < m.heap.end {
        return Driven::Failed(Outcome::mismatch(
            &format!("legacy device page at {}", Hex(addr)),
            format!(
                "above the firmware's image and heap (they end at {})",
                Hex(m.heap.end)
            )
            .as_str(),
            "inside them: the page is not driven",
        ));
    }
    // It owns the 0x2603 interrupt until this check ends.
    // SAFETY: `readable` bytes from `addr` are storage (read above) at or
    // above the heap's end, where neither the image (below the heap) nor
    // any allocation lives: only the host's page is there. The ring window
    // starts at or above the storage size SCLP reports, above everything
    // the firmware uses, and ends where storage ends.
    let mut host = unsafe { DiagHost::new(addr, readable, ring_window(m, addr)) };
    match LegacyTransport::open(&mut host, 0) {
        Err(LegacyError::NotServed) => return Driven::NotServed,
        Err(e) => {
            return Driven::Failed(Outcome::mismatch(
                "legacy transport, device 0",
                "a device the transport can drive",
                format!("{}", e).as_str(),
            ))
        }
        Ok(_) => {}
    }
    for d in devs {
        let mut t = match LegacyTransport::open(&mut host, d.index) {
            Ok(t) => t,
            Err(LegacyError::NotServed) => {
                return Driven::Failed(Outcome::mismatch(
                    &format!("RESET of device {}", d.index),
                    "served",
                    "fault",
                ))
            }
            Err(e) => {
                return Driven::Failed(Outcome::mismatch(
                    &format!("legacy transport, device {}", d.index),
                    "a device the transport can drive",
                    format!("{}", e).as_str(),
                ))
            }
        };
        let r = (|| -> Result<Option<u8>, TransportError> {
            t.set_status(Status::ACKNOWLEDGE | Status::DRIVER)?;
            for q in 0..d.queues.len() as u16 {
                t.notify(q, None)?;
            }
            t.reset()?;
            Ok(t.status()?.map(|s| s.bits()))
        })();
        match r {
            Ok(Some(0)) => {}
            Ok(status) => {
                return Driven::Failed(Outcome::mismatch(
                    &format!("status byte of device {} after RESET", d.index),
                    0u8,
                    status.unwrap_or(0xff),
                ))
            }
            Err(e) => {
                return Driven::Failed(Outcome::mismatch(
                    &format!("legacy transport, device {}", d.index),
                    "RESET, SET_STATUS and NOTIFY answer 0",
                    format!("{}", e).as_str(),
                ))
            }
        }
    }
    crate::out!(
        "# legacy hypercalls: {} devices reset, set and notified; {} virtio external interrupts\n",
        devs.len(),
        host.interrupts_taken()
    );
    Driven::Done
}
