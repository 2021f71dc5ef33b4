//! The engine on the host, against a model device behind a fake
//! transport: a split ring read from the memory the queue placed it in,
//! chains taken on each notification and answered in reverse order (or
//! wrongly, on request), indirect tables followed.

use super::*;
use crate::dma::DeviceHeld;
use crate::virtio::queue::setup_queue;
use crate::virtio::transport::{QueueRings, Status, TransportError, F_INDIRECT_DESC};
use alloc::collections::VecDeque;

/// How the model device misbehaves.
#[derive(Clone, Copy, PartialEq)]
enum Lie {
    None,
    /// Returns one chain twice.
    Twice,
    /// Never answers.
    Silent,
    /// Writes a wrong byte into the answer of request 5.
    WrongData,
    /// An entropy device: random bytes into every writable byte, all
    /// reported.
    Entropy,
    /// An entropy device that writes half of each chain, reports it all.
    EntropyShort,
    /// An entropy device that writes all of each chain, reports half.
    EntropyPast,
    /// Request 5's answer, and a zero byte right before its first element.
    StrayBefore,
    /// Request 5's answer, and a zero byte right after its first element
    /// (the gap before element 1).
    StrayGap,
    /// Request 5's answer, and a zero byte right after its last element.
    StrayPast,
    /// A zero byte right after request 5's last element, and request 5
    /// never answered (the others are).
    StrayKept,
}

/// A chain's elements as the device sees them: address, length, writable.
type Elements = Vec<(u64, u32, bool)>;

struct Model {
    held: DeviceHeld,
    desc: u64,
    avail: u64,
    used: u64,
    size: u16,
    last_avail: u16,
    used_idx: u16,
    /// Chains taken, not answered.
    taken: VecDeque<(u16, Elements)>,
    lie: Lie,
    answered: u32,
    kicks: u32,
    /// Chains taken and never to be answered.
    kept: Vec<(u16, Elements)>,
    /// Where a lie stored outside a chain.
    stray: Option<u64>,
}

// The model reads and writes the rings and buffers by their addresses:
// they are heap memory of this test process, kept by the queue and `held`.
fn r16(a: u64) -> u16 {
    // SAFETY: an address inside ring memory the queue owns (see above).
    unsafe { core::ptr::read_volatile(a as *const u16) }.to_le()
}
fn r32(a: u64) -> u32 {
    // SAFETY: as r16.
    unsafe { core::ptr::read_volatile(a as *const u32) }.to_le()
}
fn r64(a: u64) -> u64 {
    // SAFETY: as r16.
    unsafe { core::ptr::read_volatile(a as *const u64) }.to_le()
}
fn w16(a: u64, v: u16) {
    // SAFETY: as r16; the used ring is the device's to write.
    unsafe { core::ptr::write_volatile(a as *mut u16, v.to_le()) }
}
fn w32(a: u64, v: u32) {
    // SAFETY: as w16.
    unsafe { core::ptr::write_volatile(a as *mut u32, v.to_le()) }
}

impl Model {
    fn elements(&self, head: u16) -> Elements {
        let mut out = Vec::new();
        let (mut table, mut count, mut i) = (self.desc, self.size, head);
        loop {
            let at = table + 16 * u64::from(i);
            let (addr, len, flags, next) = (r64(at), r32(at + 8), r16(at + 12), r16(at + 14));
            if flags & 4 != 0 {
                // Indirect: its own table, walked from 0.
                table = addr;
                count = (len / 16) as u16;
                i = 0;
                continue;
            }
            out.push((addr, len, flags & 2 != 0));
            assert!(
                out.len() <= usize::from(count),
                "a chain longer than its table"
            );
            if flags & 1 == 0 {
                return out;
            }
            i = next;
        }
    }

    fn take_all(&mut self) {
        while self.last_avail != r16(self.avail + 2) {
            let slot = u64::from(self.last_avail % self.size);
            let head = r16(self.avail + 4 + 2 * slot);
            let elements = self.elements(head);
            self.taken.push_back((head, elements));
            self.last_avail = self.last_avail.wrapping_add(1);
        }
    }

    fn push_used(&mut self, id: u16, len: u32) {
        let slot = u64::from(self.used_idx % self.size);
        w32(self.used + 4 + 8 * slot, u32::from(id));
        w32(self.used + 8 + 8 * slot, len);
        self.used_idx = self.used_idx.wrapping_add(1);
        w16(self.used + 2, self.used_idx);
    }

    /// Answers what it holds, newest first: the request's number (8
    /// readable bytes) times 3 into the first 8 writable bytes.
    fn answer(&mut self) {
        if self.lie == Lie::Silent {
            return;
        }
        while let Some((head, elements)) = self.taken.pop_back() {
            if matches!(
                self.lie,
                Lie::Entropy | Lie::EntropyShort | Lie::EntropyPast
            ) {
                self.entropy(head, &elements);
                continue;
            }
            let mut input = [0u8; 8];
            let mut got = 0;
            for &(addr, len, w) in elements.iter().filter(|e| !e.2) {
                let _ = w;
                for k in 0..len as usize {
                    if got < 8 {
                        // SAFETY: inside a buffer the engine made available.
                        input[got] =
                            unsafe { core::ptr::read_volatile((addr + k as u64) as *const u8) };
                        got += 1;
                    }
                }
            }
            let n = u64::from_le_bytes(input);
            if n == 5 && self.stray(&elements) {
                self.kept.push((head, elements));
                continue;
            }
            let mut out = (n * 3).to_le_bytes();
            if self.lie == Lie::WrongData && n == 5 {
                out[2] ^= 1;
            }
            let mut put = 0;
            let mut written = 0u32;
            for &(addr, len, _) in elements.iter().filter(|e| e.2) {
                for k in 0..len as usize {
                    if put < 8 {
                        // SAFETY: inside a device-writable buffer.
                        unsafe {
                            core::ptr::write_volatile((addr + k as u64) as *mut u8, out[put])
                        };
                        put += 1;
                    }
                }
                written += len;
            }
            self.push_used(head, written);
            if self.lie == Lie::Twice && self.answered == 3 {
                self.push_used(head, written);
            }
            self.answered += 1;
        }
    }
}

impl Model {
    /// A lie's stray store into request 5's memory, outside its chain;
    /// true if the chain is kept, never to be answered.
    fn stray(&mut self, elements: &Elements) -> bool {
        let (first, last) = (elements[0], elements[elements.len() - 1]);
        let at = match self.lie {
            Lie::StrayBefore => first.0 - 1,
            Lie::StrayGap => first.0 + u64::from(first.1),
            Lie::StrayPast | Lie::StrayKept => last.0 + u64::from(last.1),
            _ => return false,
        };
        // SAFETY: a guard byte of the slot the engine made the chain in
        // (it keeps guards around every chain): what the lie is about.
        unsafe { core::ptr::write_volatile(at as *mut u8, 0) };
        self.stray = Some(at);
        self.lie == Lie::StrayKept
    }

    /// Answers a chain of device-writable elements with xorshift bytes,
    /// writing and reporting as the lie says.
    fn entropy(&mut self, head: u16, elements: &Elements) {
        let total: u32 = elements.iter().filter(|e| e.2).map(|e| e.1).sum();
        let (write, report) = match self.lie {
            Lie::EntropyShort => (total / 2, total),
            Lie::EntropyPast => (total, total / 2),
            _ => (total, total),
        };
        let mut x = 0x9e37_79b9_u64 ^ u64::from(self.answered) << 20;
        let mut put = 0;
        for &(addr, len, _) in elements.iter().filter(|e| e.2) {
            for k in 0..u64::from(len) {
                if put < write {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // SAFETY: inside a device-writable buffer.
                    unsafe { core::ptr::write_volatile((addr + k) as *mut u8, x as u8) };
                    put += 1;
                }
            }
        }
        self.push_used(head, report);
        self.answered += 1;
    }
}

struct Fake(Model);

// SAFETY: the fake gives its model device only the rings and buffers the
// queue keeps in `held`, and nothing is ever freed under it in a test.
unsafe impl Transport for Fake {
    fn revision(&self) -> u8 {
        1
    }
    fn reset(&mut self) -> Result<(), TransportError> {
        Ok(())
    }
    fn held(&self) -> DeviceHeld {
        self.0.held.clone()
    }
    fn device_features(&mut self) -> Result<u64, TransportError> {
        Ok(1 << F_INDIRECT_DESC)
    }
    fn set_driver_features(&mut self, _: u64) -> Result<(), TransportError> {
        Ok(())
    }
    fn set_status(&mut self, _: Status) -> Result<(), TransportError> {
        Ok(())
    }
    fn status(&mut self) -> Result<Option<Status>, TransportError> {
        Ok(None)
    }
    fn read_config(&mut self, _: &mut [u8]) -> Result<(), TransportError> {
        Ok(())
    }
    fn write_config(&mut self, _: &[u8]) -> Result<(), TransportError> {
        Ok(())
    }
    fn queue_max(&mut self, index: u16) -> Result<u16, TransportError> {
        Ok(if index == 0 { 16 } else { 0 })
    }
    fn set_queue(&mut self, _: u16, rings: QueueRings) -> Result<(), TransportError> {
        rings.keep_memory(&self.0.held);
        let at = rings.addresses();
        (self.0.desc, self.0.avail, self.0.used, self.0.size) =
            (at.desc, at.driver, at.device, rings.size());
        Ok(())
    }
    fn notify(&mut self, _: u16, _: Option<u32>) -> Result<(), TransportError> {
        self.0.kicks += 1;
        self.0.take_all();
        Ok(())
    }
    fn wait(&mut self, _: u64, done: &mut dyn FnMut() -> bool) -> bool {
        if done() {
            return true;
        }
        self.0.take_all();
        self.0.answer();
        done()
    }
}

/// Requests carry their number; the answer must be three times it.
struct Echo {
    checked: u64,
}

impl Workload for Echo {
    type Req = u64;
    fn plan(&mut self, n: u64, rng: &mut Rng) -> Plan<u64> {
        Plan {
            req: n,
            readable: 8 + rng.below(40) as u32,
            writable: 8 + rng.below(40) as u32,
            cuts: [8, 0],
            whole: [(0, 0); 2],
        }
    }
    fn conflicts(&self, _: &u64, _: &u64) -> bool {
        false
    }
    fn fill(&mut self, req: &u64, readable: &mut [u8]) {
        readable[..8].copy_from_slice(&req.to_le_bytes());
    }
    fn check(&mut self, req: &u64, written: &[u8], _: u32) -> Result<u64, String> {
        let got = u64::from_le_bytes(written[..8].try_into().unwrap());
        if got != req * 3 {
            return Err(crate::format!("expected {}, got {}", req * 3, got));
        }
        self.checked += 1;
        Ok(8)
    }
}

/// The model device, telling `lie`, behind the fake transport.
fn fake(lie: Lie) -> Fake {
    Fake(Model {
        held: DeviceHeld::default(),
        desc: 0,
        avail: 0,
        used: 0,
        size: 0,
        last_avail: 0,
        used_idx: 0,
        taken: VecDeque::new(),
        lie,
        answered: 0,
        kicks: 0,
        kept: Vec::new(),
        stray: None,
    })
}

/// The model's runs: up to four elements with indirect tables, on
/// interrupts, every buffer poisoned, no deadline.
fn options(seed: u64, stream: u64, depth: u16, requests: u64) -> Options {
    Options {
        seed,
        stream,
        depth,
        requests,
        limits: ShapeLimits {
            max_elements: 4,
            max_len: None,
            max_gap: 16,
        },
        indirect: 3,
        completion: Completion::Interrupts,
        poison: Poison::All,
        until_us: None,
        now_us: || 0,
    }
}

fn run_with(lie: Lie, depth: u16, requests: u64) -> (Result<QueueStats, Failure>, u64, u32) {
    let mut t = fake(lie);
    let mut q = setup_queue(&mut t, 0, 1 << F_INDIRECT_DESC, false).unwrap();
    let mut w = Echo { checked: 0 };
    let opts = options(42, 1, depth, requests);
    let r = run(&mut t, &mut q, &mut w, &opts, &mut || {}, &mut |_, _| {});
    let kicks = t.0.kicks;
    (r, w.checked, kicks)
}

#[test]
fn every_request_answered_in_any_order_at_every_depth() {
    for depth in [1u16, 3, 16] {
        let (r, checked, kicks) = run_with(Lie::None, depth, 300);
        let s = r.unwrap_or_else(|f| panic!("depth {depth}: request {}: {}", f.request, f.what));
        assert_eq!((s.requests, s.completed, checked), (300, 300, 300));
        assert!(s.max_depth > 0 && s.max_depth <= depth);
        // One kick per batch, never more than one per request.
        assert!(u64::from(kicks) <= s.requests && s.kicks == u64::from(kicks));
        assert_eq!(s.bytes, 300 * 8);
    }
}

#[test]
fn a_device_that_lies_fails_naming_the_request() {
    let (r, _, _) = run_with(Lie::WrongData, 4, 50);
    let f = r.unwrap_err();
    assert_eq!(f.request, 5);
    assert!(f.what.contains("expected 15"), "{}", f.what);

    let (r, _, _) = run_with(Lie::Twice, 4, 50);
    let f = r.unwrap_err();
    assert!(
        f.what.contains("chains are in flight") || f.what.contains("not a chain in flight"),
        "{}",
        f.what
    );

    let (r, _, _) = run_with(Lie::Silent, 4, 50);
    let f = r.unwrap_err();
    assert!(
        f.what.contains("no used buffer within the timeout"),
        "{}",
        f.what
    );
    assert_eq!(f.request, 0, "the oldest request in flight is named");
}

fn entropy_run(lie: Lie) -> Result<QueueStats, Failure> {
    let mut t = fake(lie);
    let mut q = setup_queue(&mut t, 0, 1 << F_INDIRECT_DESC, false).unwrap();
    let opts = options(9, 2, 16, 200);
    let mut w = crate::workloads::rng::Entropy;
    run(&mut t, &mut q, &mut w, &opts, &mut || {}, &mut |_, _| {})
}

#[test]
fn entropy_answers_are_held_to_the_canary() {
    let s = entropy_run(Lie::Entropy).unwrap_or_else(|f| panic!("{}: {}", f.request, f.what));
    assert_eq!(s.completed, 200);
    assert!(s.bytes >= 200 * 8 && s.bytes <= 200 * 256);
    let f = entropy_run(Lie::EntropyShort).unwrap_err();
    assert!(f.what.contains("still hold the canary"), "{}", f.what);
    let f = entropy_run(Lie::EntropyPast).unwrap_err();
    assert!(f.what.contains("past the reported length"), "{}", f.what);
}

/// A guarded queue's ring parts lie between canaries: the model device
/// drives it as any other and leaves them intact; a byte changed right
/// before or after any part is named with its place, byte, expected and
/// got. An unguarded queue has none.
#[test]
fn ring_canaries_name_a_write_past_each_part() {
    use crate::virtio::queue::{ring_canary_byte, setup_guarded_queue, RING_CANARY};
    let mut t = fake(Lie::None);
    let plain = setup_queue(&mut t, 0, 0, false).unwrap();
    assert_eq!(plain.ring_canary_hit(), None);
    let mut q = setup_guarded_queue(&mut t, 0, 1 << F_INDIRECT_DESC, false).unwrap();
    assert_eq!(q.ring_canary_hit(), None);
    let mut w = Echo { checked: 0 };
    let opts = options(7, 1, 16, 100);
    let r = run(&mut t, &mut q, &mut w, &opts, &mut || {}, &mut |_, _| {});
    assert_eq!(r.map(|s| s.completed).map_err(|f| f.what), Ok(100));
    assert_eq!(q.ring_canary_hit(), None);
    let flip = |addr: u64| {
        // SAFETY: a canary byte of the queue's own ring memory, which
        // stands in for a device writing there.
        unsafe {
            let p = addr as *mut u8;
            core::ptr::write_volatile(p, !core::ptr::read_volatile(p));
        }
    };
    // 16 entries: descriptors 256 bytes, avail 6 + 32, used 6 + 128.
    let (d, a, u) = (t.0.desc, t.0.avail, t.0.used);
    let last = RING_CANARY - 1;
    for (addr, what, i) in [
        (d - 1, "before the descriptor table", last),
        (d + 256, "after the descriptor table", 0),
        (a - 1, "before the driver area", last),
        (a + 38, "after the driver area", 0),
        (u - 1, "before the device area", last),
        (u + 134, "after the device area", 0),
    ] {
        flip(addr);
        let want = ring_canary_byte(i);
        assert_eq!(q.ring_canary_hit(), Some((what, i, want, !want)), "{what}");
        flip(addr);
        assert_eq!(q.ring_canary_hit(), None);
    }
}

/// A device that stores one byte outside request 5's chain (before it,
/// into the gap after its first element, past its last) fails that
/// request naming the place, byte, expected and got; one that also
/// keeps the request has the run time out naming it as in flight.
#[test]
fn a_store_outside_a_chain_is_named_with_its_place() {
    use crate::virtio::guard::{canary_at, GUARD};
    // The run, and the canary byte the lie overwrote (slots are
    // page-aligned: an address's offset in its slot is congruent to it).
    let stray = |lie| {
        let mut t = fake(lie);
        let mut q = setup_queue(&mut t, 0, 1 << F_INDIRECT_DESC, false).unwrap();
        let mut w = Echo { checked: 0 };
        let r = run(
            &mut t,
            &mut q,
            &mut w,
            &options(42, 1, 4, 50),
            &mut || {},
            &mut |_, _| {},
        );
        let was = canary_at(t.0.stray.expect("the lie stored") as usize);
        (r.unwrap_err(), was, w.checked)
    };
    let (f, was, _) = stray(Lie::StrayPast);
    assert_eq!(
        crate::format!("{}", f),
        std::format!("request 5: the device wrote outside the chain's buffers: the canary after the chain byte 0: expected {was:#04x}, got 0x00")
    );
    let (f, was, _) = stray(Lie::StrayGap);
    assert_eq!(
        crate::format!("{}", f),
        std::format!("request 5: the device wrote outside the chain's buffers: the canary in the gap before element 1 byte 0: expected {was:#04x}, got 0x00")
    );
    // Before the chain: the last byte of its guard, whose length the
    // shape's gap decides.
    let (f, was, _) = stray(Lie::StrayBefore);
    let text = crate::format!("{}", f);
    let head = "request 5: the device wrote outside the chain's buffers: the canary before the chain byte ";
    let rest = text.strip_prefix(head).unwrap_or_else(|| panic!("{text}"));
    let byte: usize = rest.split(':').next().unwrap().parse().unwrap();
    assert!(byte >= GUARD - 1, "{text}");
    assert!(
        rest.ends_with(&std::format!(": expected {was:#04x}, got 0x00")),
        "{text}"
    );

    let (f, was, checked) = stray(Lie::StrayKept);
    assert_eq!(f.request, 5, "{}", f.what);
    assert!(checked >= 5, "the others were answered: {checked}");
    assert_eq!(
        f.what,
        std::format!("queue 0: no used buffer within the timeout (1 in flight) (requests in flight, the oldest 5); request 5 (in flight): the device wrote outside the chain's buffers: the canary after the chain byte 0: expected {was:#04x}, got 0x00")
    );
}

/// A run that fails for another reason with no guard hit says nothing of
/// guards.
#[test]
fn a_failure_without_a_stray_store_names_no_guard() {
    let (r, _, _) = run_with(Lie::Silent, 4, 50);
    let f = r.unwrap_err();
    assert!(!f.what.contains("outside"), "{}", f.what);
}
