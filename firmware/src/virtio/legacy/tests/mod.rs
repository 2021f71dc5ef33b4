//! The legacy transport driven end to end against a model host.

mod model;

use super::{LegacyCall, LegacyError, LegacyTransport, PARAM_CONFIG_CHANGED};
use crate::dma::DmaMemory;
use crate::virtio::devices::balloon;
use crate::virtio::devices::rng::{request_chain, Rng};
use crate::virtio::legacy_page::{self, LegacyDeviceSpec, LegacyPageBuilder, LegacyPageError};
use crate::virtio::queue::DriveError;
use crate::virtio::transport::{
    driver_ok_status, negotiate, Status, Transport, TransportError, F_INDIRECT_DESC,
};
use model::{ring_size, DeviceSpec, ModelHost, PAGE};
use std::rc::Rc;

const RNG: u8 = 4;
const BALLOON: u8 = 5;
const CONSOLE: u8 = 3;

/// A copy of `mem`'s bytes (the device may hold it: read volatile).
fn bytes_of(mem: &DmaMemory) -> Vec<u8> {
    let mut b = vec![0u8; mem.len()];
    mem.read(0, &mut b);
    b
}

/// Feature bytes with `bits` set (bit n in byte n / 8).
fn feature_bytes(len: usize, bits: &[u32]) -> Vec<u8> {
    let mut b = vec![0u8; len];
    for &n in bits {
        b[n as usize / 8] |= 1 << (n % 8);
    }
    b
}

fn rng_spec() -> DeviceSpec {
    DeviceSpec {
        device_type: RNG,
        queues: vec![64],
        host_features: feature_bytes(4, &[F_INDIRECT_DESC]),
        config: vec![],
    }
}

fn console_spec() -> DeviceSpec {
    DeviceSpec {
        device_type: CONSOLE,
        queues: vec![16, 16],
        host_features: feature_bytes(4, &[0]),
        config: vec![0, 80, 0, 25],
    }
}

fn balloon_spec() -> DeviceSpec {
    DeviceSpec {
        device_type: BALLOON,
        queues: vec![16, 16],
        host_features: feature_bytes(4, &[balloon::F_STATS_VQ]),
        config: vec![0x10, 0, 0, 0, 0, 0, 0, 0],
    }
}

#[test]
fn page_laid_out_as_the_seed_header() {
    let host = ModelHost::new(&[console_spec(), rng_spec()]);
    // The contract's builder, from the same devices, lays out the same page.
    let spec = |d: &DeviceSpec| {
        let mut s = LegacyDeviceSpec::new(d.device_type)
            .with_host_features(&d.host_features)
            .with_config(&d.config);
        for (i, &num) in d.queues.iter().enumerate() {
            let m = &host
                .devices
                .iter()
                .find(|m| m.device_type == d.device_type)
                .unwrap();
            s = s.with_queue(0, m.queues[i].addr, num);
        }
        s
    };
    let built = LegacyPageBuilder::default()
        .device(spec(&console_spec()))
        .device(spec(&rng_spec()))
        .build()
        .unwrap();
    assert_eq!(host.page(), &built[..]);
    let parsed = legacy_page::parse(host.page()).unwrap();
    for (p, m) in parsed.iter().zip(&host.devices) {
        assert_eq!(p.offset, m.offset);
        assert_eq!(p.config_offset(), m.config());
        assert_eq!(p.queues.len(), m.queues.len());
    }
}

#[test]
fn negotiates_features_through_the_page() {
    let mut host = ModelHost::new(&[console_spec(), rng_spec()]);
    let mut t = LegacyTransport::open(&mut host, 1).unwrap();
    assert_eq!(t.revision(), 0);
    assert_eq!(t.device_features().unwrap(), 1 << F_INDIRECT_DESC);
    // Only what the host offers is accepted; no FEATURES_OK before virtio 1.
    let got = negotiate(&mut t, 1 << F_INDIRECT_DESC | 1 << 5).unwrap();
    assert_eq!(got, 1 << F_INDIRECT_DESC);
    t.set_status(driver_ok_status(0)).unwrap();
    drop(t);
    let rng = &host.devices[1];
    assert_eq!(rng.acked, feature_bytes(4, &[F_INDIRECT_DESC]));
    assert_eq!(rng.statuses, [1, 3, 7]);
    // The console was never touched.
    assert!(host.devices[0].statuses.is_empty());
    assert_eq!(host.devices[0].resets, 0);
}

#[test]
fn status_reaches_the_host_and_reset_clears_it() {
    let mut host = ModelHost::new(&[console_spec()]);
    let base = host.base();
    let mut t = LegacyTransport::open(&mut host, 0).unwrap();
    t.set_status(Status::ACKNOWLEDGE | Status::DRIVER).unwrap();
    assert_eq!(
        t.status().unwrap(),
        Some(Status::ACKNOWLEDGE | Status::DRIVER)
    );
    t.notify(1, None).unwrap();
    t.reset().unwrap();
    assert_eq!(t.status().unwrap(), Some(Status::empty()));
    drop(t);
    let dev = &host.devices[0];
    assert_eq!(dev.statuses, [3]);
    // Opening resets too.
    assert_eq!(dev.resets, 2);
    let ring1 = dev.queues[1].addr;
    assert_eq!(
        host.calls,
        [
            (LegacyCall::Reset, base),
            (LegacyCall::SetStatus, base),
            (LegacyCall::Notify, ring1),
            (LegacyCall::Reset, base),
        ]
    );
}

/// Entropy requests as suites/rng.rs makes them: one and two elements,
/// every third through an indirect table, the whole buffer canaried and
/// checked after each answer.
fn rng_requests(host: &mut ModelHost, rounds: u32) -> (u32, u64) {
    let mut t = LegacyTransport::open(&mut *host, 0).unwrap();
    let features = negotiate(&mut t, 1 << F_INDIRECT_DESC).unwrap();
    let mut dev = Rng::setup(&mut t, features, false).unwrap();
    assert!(!dev.queue().packed);
    t.set_status(driver_ok_status(0)).unwrap();
    let data = Rc::new(DmaMemory::new(4096));
    let mut total = 0;
    for round in 0..rounds {
        let seed = 0x5eed_0000 + u64::from(round);
        let len = 8 + (seed % 249) as u32;
        let canary: Vec<u8> = (0..data.len())
            .map(|i| crate::judge::canary(seed, i))
            .collect();
        data.write(0, &canary);
        let chain = request_chain(&data, len, 1 + round % 2);
        let token = dev.request(&mut t, &chain, round % 3 == 2).unwrap();
        let got = dev.wait(&mut t, token, len).unwrap().unwrap();
        crate::judge::entropy_fill(&bytes_of(&data), got as usize, seed)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        total += u64::from(got);
    }
    let irq = t.interrupts().clone();
    assert_eq!(irq.foreign, 0);
    (irq.vring[0], total)
}

#[test]
fn rng_requests_return_fresh_bytes() {
    let mut host = ModelHost::new(&[console_spec(), rng_spec()]);
    // Device 1 of the page: open it through a host whose first device is
    // the console, as the seed's hosts listed them.
    let mut t = LegacyTransport::open(&mut host, 1).unwrap();
    let features = negotiate(&mut t, 1 << F_INDIRECT_DESC).unwrap();
    let mut dev = Rng::setup(&mut t, features, false).unwrap();
    t.set_status(driver_ok_status(0)).unwrap();
    let data = Rc::new(DmaMemory::new(4096));
    let chain = request_chain(&data, 100, 1);
    let token = dev.request(&mut t, &chain, false).unwrap();
    assert_eq!(dev.wait(&mut t, token, 100).unwrap(), Ok(100));
    let bytes = bytes_of(&data);
    assert!(bytes[..100].iter().any(|&b| b != 0));
    assert!(bytes[100..].iter().all(|&b| b == 0));
    assert_eq!(t.interrupts().vring, [1]);
    drop(t);

    let mut host = ModelHost::new(&[rng_spec()]);
    let (interrupts, bytes) = rng_requests(&mut host, 48);
    assert_eq!(interrupts, 48, "one 0x2603 with queue 0's token a request");
    let dev = &host.devices[0];
    assert_eq!((dev.requests, dev.bytes), (48, bytes));
    // The token the driver wrote for queue 0 is in the page.
    let token = &host.page()[5..13];
    assert_eq!(token[0..2], [0x7a, 0x76]);
}

#[test]
fn short_answers_are_checked_not_trusted() {
    let mut host = ModelHost::new(&[rng_spec()]);
    host.short_answers = true;
    let (interrupts, bytes) = rng_requests(&mut host, 32);
    assert_eq!(interrupts, 32);
    assert!(bytes < 32 * 8 + 32 * 248, "the model answered short");
}

#[test]
fn requests_before_driver_ok_are_not_served() {
    let mut host = ModelHost::new(&[rng_spec()]);
    let mut t = LegacyTransport::open(&mut host, 0).unwrap();
    let features = negotiate(&mut t, 0).unwrap();
    let mut dev = Rng::setup(&mut t, features, false).unwrap();
    let data = Rc::new(DmaMemory::new(4096));
    let token = dev
        .request(&mut t, &request_chain(&data, 16, 1), false)
        .unwrap();
    assert!(matches!(
        dev.wait(&mut t, token, 16),
        Err(DriveError::Timeout {
            queue: 0,
            in_flight: 1
        })
    ));
}

#[test]
fn not_served_without_a_host() {
    let mut host = ModelHost::new(&[rng_spec()]);
    host.serve = false;
    assert!(matches!(
        LegacyTransport::open(&mut host, 0),
        Err(LegacyError::NotServed)
    ));
}

#[test]
fn malformed_pages_are_errors() {
    let open = |page: &[u8], page_len: usize| {
        let mut host = ModelHost::raw(page, 4 * 4096);
        host.page_len = page_len;
        LegacyTransport::open(&mut host, 0).map(|_| ())
    };
    let page_err = |r: Result<(), LegacyError>| match r {
        Err(LegacyError::Page(e)) => e,
        other => panic!("expected a page error, got {other:?}"),
    };
    // No terminator: 32-byte devices (one queue, 3 config bytes) fill
    // the page to its last byte.
    let mut full = vec![0u8; PAGE];
    for d in full.chunks_mut(32) {
        d[..5].copy_from_slice(&[RNG, 1, 0, 3, 0]);
        d[5 + 16..5 + 18].copy_from_slice(&1u16.to_be_bytes());
    }
    assert!(matches!(
        page_err(open(&full, PAGE)),
        LegacyPageError::NoTerminator { devices: 128, .. }
    ));
    // A header announcing more than the page holds.
    let mut big = vec![0u8; PAGE];
    big[..5].copy_from_slice(&[RNG, 200, 255, 255, 0]);
    big[5 + 16..5 + 18].copy_from_slice(&64u16.to_be_bytes());
    assert!(matches!(
        page_err(open(&big, PAGE)),
        LegacyPageError::BodyPastEnd { .. }
    ));
    // No queues; a ring of 0 entries; one of 3.
    assert!(matches!(
        page_err(open(&[RNG, 0, 0, 0, 0], PAGE)),
        LegacyPageError::NoQueues { .. }
    ));
    let mut q = vec![RNG, 1, 0, 0, 0];
    q.extend_from_slice(&[0; 24]);
    assert!(matches!(
        page_err(open(&q, PAGE)),
        LegacyPageError::ZeroQueueSize { .. }
    ));
    q[5 + 17] = 3;
    assert!(matches!(
        page_err(open(&q, PAGE)),
        LegacyPageError::BadQueueSize { num: 3, .. }
    ));
    // A good device, but storage ends inside it: only the storage parses.
    let good = ModelHost::new(&[rng_spec()]).page().to_vec();
    assert!(open(&good, PAGE).is_ok());
    assert!(matches!(
        page_err(open(&good, 20)),
        LegacyPageError::BodyPastEnd { .. }
    ));
    assert!(matches!(
        page_err(open(&good, 0)),
        LegacyPageError::NoTerminator { .. }
    ));
    // A device the page does not list.
    let mut host = ModelHost::raw(&good, 4 * 4096);
    assert!(matches!(
        LegacyTransport::open(&mut host, 1),
        Err(LegacyError::NoDevice {
            index: 1,
            devices: 1
        })
    ));
}

/// Sets up queue `index` of device 0 of a page whose queue descriptors
/// `edit` changed; returns what went wrong.
fn ring_error(edit: impl Fn(&mut ModelHost)) -> TransportError {
    let mut host = ModelHost::new(&[console_spec()]);
    edit(&mut host);
    let mut t = LegacyTransport::open(&mut host, 0).unwrap();
    let features = negotiate(&mut t, 0).unwrap();
    match crate::virtio::queue::setup_queue(&mut t, 0, features, false) {
        Err(DriveError::Transport(e)) => e,
        Err(e) => panic!("expected a transport error, got {e:?}"),
        Ok(_) => panic!("a ring the driver may not use was used"),
    }
}

fn set_ring(host: &mut ModelHost, queue: usize, addr: u64) {
    let at = host.devices[0].offset + 5 + 24 * queue + 8;
    host.put(at, &addr.to_be_bytes());
}

#[test]
fn rings_the_driver_may_not_use() {
    let why = |e: TransportError| match e {
        TransportError::BadRing { index: 0, why, .. } => why,
        other => panic!("expected a bad ring, got {other:?}"),
    };
    // Outside the storage set aside for rings: below it (in the guest's
    // own storage), past its end, or wrapping the address space.
    let e = ring_error(|h| h.window = Some(h.base() + 2 * 4096..h.base() + 64 * 4096));
    assert!(why(e).contains("outside"));
    let e = ring_error(|h| set_ring(h, 0, h.base() + (1 << 30)));
    assert!(why(e).contains("outside"));
    let e = ring_error(|h| set_ring(h, 0, !4095));
    assert!(why(e).contains("past the end") || why(e).contains("outside"));
    // Misaligned; on the page itself; on the other queue's ring.
    let e = ring_error(|h| set_ring(h, 0, h.base() + 4096 + 8));
    assert!(why(e).contains("aligned"));
    let e = ring_error(|h| {
        h.window = Some(h.base()..h.base() + 64 * 4096);
        set_ring(h, 0, h.base());
    });
    assert!(why(e).contains("device page"));
    let e = ring_error(|h| {
        let other = h.devices[0].queues[1].addr;
        set_ring(h, 0, other);
    });
    assert!(why(e).contains("another queue"));
    // The same ring handed out twice.
    let mut host = ModelHost::new(&[console_spec()]);
    let mut t = LegacyTransport::open(&mut host, 0).unwrap();
    let q = crate::virtio::queue::setup_queue(&mut t, 0, 0, false).unwrap();
    let again = crate::virtio::queue::setup_queue(&mut t, 0, 0, false);
    assert!(matches!(
        again,
        Err(DriveError::Transport(TransportError::BadRing { .. }))
    ));
    drop(q);
    // And the layout the model placed was accepted: sizes agree.
    assert_eq!(ring_size(16), 2 * 4096);
}

#[test]
fn config_accesses_stay_in_bounds() {
    let mut host = ModelHost::new(&[balloon_spec()]);
    let mut t = LegacyTransport::open(&mut host, 0).unwrap();
    negotiate(&mut t, 0).unwrap();
    let cfg = balloon::read_config(&mut t).unwrap();
    assert_eq!(cfg.num_pages, 0x10);
    balloon::set_actual(&mut t, cfg, 0x0a0b_0c0d).unwrap();
    assert_eq!(balloon::read_config(&mut t).unwrap().actual, 0x0a0b_0c0d);
    let mut nine = [0u8; 9];
    assert!(matches!(
        t.read_config(&mut nine),
        Err(TransportError::ConfigPastEnd {
            len: 9,
            config_len: 8
        })
    ));
    assert!(t.write_config(&nine).is_err());
    drop(t);
    // The host's copy is what the driver wrote, little-endian.
    let at = host.devices[0].config();
    assert_eq!(host.page()[at + 4..at + 8], [0x0d, 0x0c, 0x0b, 0x0a]);
}

#[test]
fn a_page_shrinking_under_the_driver_is_an_error() {
    let mut host = ModelHost::new(&[console_spec(), balloon_spec()]);
    let mut t = LegacyTransport::open(&mut host, 1).unwrap();
    // Storage now ends before the balloon's descriptor.
    t.host().page_len = 40;
    assert!(matches!(
        t.status(),
        Err(TransportError::OutsidePage { .. })
    ));
    assert!(matches!(
        t.set_status(Status::ACKNOWLEDGE),
        Err(TransportError::OutsidePage { .. })
    ));
    assert!(matches!(
        balloon::read_config(&mut t),
        Err(TransportError::OutsidePage { .. })
    ));
}

#[test]
fn interrupts_are_told_apart_by_token() {
    let mut host = ModelHost::new(&[console_spec()]);
    let mut t = LegacyTransport::open(&mut host, 0).unwrap();
    let features = negotiate(&mut t, 0).unwrap();
    let _q0 = crate::virtio::queue::setup_queue(&mut t, 0, features, false).unwrap();
    let _q1 = crate::virtio::queue::setup_queue(&mut t, 1, features, false).unwrap();
    let (t0, t1) = (t.token(0), t.token(1));
    assert_ne!(t0, t1);
    let h = t.host();
    h.raise(0, t1);
    h.raise(0, t1);
    h.raise(PARAM_CONFIG_CHANGED, t0);
    h.raise(0, 0xdead);
    let irq = t.interrupts().clone();
    assert_eq!(irq.vring, [0, 2]);
    assert_eq!((irq.config_changed, irq.foreign), (1, 1));
    // The tokens are in the page, where the host reads them.
    let page = t.host().page().to_vec();
    let q1 = 5 + 24;
    assert_eq!(page[q1..q1 + 8], t1.to_be_bytes());
}

/// What a request hands the device stays the device's until a RESET
/// answers: the caller dropping its own handle frees nothing before.
#[test]
fn request_memory_is_kept_until_the_device_is_reset() {
    let mut host = ModelHost::new(&[rng_spec()]);
    let mut t = LegacyTransport::open(&mut host, 0).unwrap();
    let features = negotiate(&mut t, 1 << F_INDIRECT_DESC).unwrap();
    let mut dev = Rng::setup(&mut t, features, false).unwrap();
    t.set_status(driver_ok_status(0)).unwrap();
    let data = Rc::new(DmaMemory::new(4096));
    let token = dev
        .request(&mut t, &request_chain(&data, 16, 2), true)
        .unwrap();
    assert_eq!(Rc::strong_count(&data), 2, "kept with the device's memory");
    dev.wait(&mut t, token, 16).unwrap().unwrap();
    // Returned, but the device is not reset: still kept.
    assert_eq!(Rc::strong_count(&data), 2);
    t.reset().unwrap();
    assert_eq!(Rc::strong_count(&data), 1, "let go after the reset");
}

/// A transport dropped while its device holds memory resets the device
/// first; one that gave nothing does not.
#[test]
fn dropping_a_transport_resets_a_device_that_holds_memory() {
    let mut host = ModelHost::new(&[rng_spec()]);
    let t = LegacyTransport::open(&mut host, 0).unwrap();
    drop(t);
    assert_eq!(host.devices[0].resets, 1, "only the reset at open");

    let mut t = LegacyTransport::open(&mut host, 0).unwrap();
    let features = negotiate(&mut t, 0).unwrap();
    let mut dev = Rng::setup(&mut t, features, false).unwrap();
    let data = Rc::new(DmaMemory::new(4096));
    // Never served (no DRIVER_OK): in flight when the transport goes.
    dev.request(&mut t, &request_chain(&data, 16, 1), false)
        .unwrap();
    let resets = host_resets(&mut t);
    drop(t);
    assert_eq!(host.devices[0].resets, resets + 1, "reset on drop");
    assert_eq!(host.calls.last().map(|c| c.0), Some(LegacyCall::Reset));
    assert_eq!(Rc::strong_count(&data), 1);
    drop(dev);
}

fn host_resets(t: &mut LegacyTransport<&mut ModelHost>) -> u32 {
    t.host().devices[0].resets
}

/// A device whose reset fails may still store into what it was given:
/// that memory is never freed.
#[test]
fn memory_of_a_device_that_cannot_be_reset_is_never_freed() {
    let mut host = ModelHost::new(&[rng_spec()]);
    let mut t = LegacyTransport::open(&mut host, 0).unwrap();
    let features = negotiate(&mut t, 0).unwrap();
    let mut dev = Rng::setup(&mut t, features, false).unwrap();
    let data = Rc::new(DmaMemory::new(4096));
    dev.request(&mut t, &request_chain(&data, 16, 1), false)
        .unwrap();
    t.host().serve = false;
    assert!(t.reset().is_err());
    drop(t);
    drop(dev);
    assert_eq!(Rc::strong_count(&data), 2, "still held: never freed");
}

/// A ring the host placed serves one queue, whichever transport asks.
#[test]
fn a_host_ring_serves_one_queue_across_transports() {
    let mut host = ModelHost::new(&[console_spec()]);
    let mut t = LegacyTransport::open(&mut host, 0).unwrap();
    let q = crate::virtio::queue::setup_queue(&mut t, 0, 0, false).unwrap();
    drop(t);
    let mut again = LegacyTransport::open(&mut host, 0).unwrap();
    assert!(matches!(
        crate::virtio::queue::setup_queue(&mut again, 0, 0, false),
        Err(DriveError::Transport(TransportError::BadRing {
            index: 0,
            ..
        }))
    ));
    // Its other ring is still free.
    assert!(crate::virtio::queue::setup_queue(&mut again, 1, 0, false).is_ok());
    drop(q);
}

/// A chain element must lie in its memory; nothing is made available
/// otherwise.
#[test]
fn buffers_outside_their_memory_are_refused() {
    let mut host = ModelHost::new(&[rng_spec()]);
    let mut t = LegacyTransport::open(&mut host, 0).unwrap();
    let features = negotiate(&mut t, 0).unwrap();
    let mut dev = Rng::setup(&mut t, features, false).unwrap();
    let data = Rc::new(DmaMemory::new(4096));
    let mut chain = request_chain(&data, 16, 2);
    chain[1].offset = 4090;
    assert!(matches!(
        dev.request(&mut t, &chain, false),
        Err(DriveError::OutsideMemory {
            element: 1,
            offset: 4090,
            len: 8,
            mem_len: 4096
        })
    ));
    assert_eq!(dev.queue().in_flight(), 0);
    assert_eq!(Rc::strong_count(&data), 1, "nothing given");
}

/// The legacy host places rings itself: rings in the driver's memory are
/// refused, whatever their address.
#[test]
fn driver_rings_are_refused_by_the_legacy_transport() {
    use crate::virtio::transport::{QueueAddresses, QueueRings, RingFormat};
    let mut host = ModelHost::new(&[console_spec()]);
    let desc = host.devices[0].queues[0].addr;
    let mut t = LegacyTransport::open(&mut host, 0).unwrap();
    let mem = DmaMemory::new(2 * 4096);
    let at = QueueAddresses {
        desc: mem.addr(),
        driver: 0,
        device: 0,
    };
    let rings = QueueRings::zeroed(mem, 16, RingFormat::Legacy, at).unwrap();
    assert!(matches!(
        t.set_queue(0, rings),
        Err(TransportError::Rejected { .. })
    ));
    assert!(t.set_queue(0, QueueRings::host(16, desc)).is_ok());
}
