//! A model legacy s390-virtio host, written from the seed's header
//! (kvm_virtio.h): one device page of `kvm_device_desc` entries, each
//! followed by its `kvm_vqconfig`s (token, address, num, padded to 24
//! bytes), the host's then the guest's feature bytes and the config; the
//! three hypercalls on the descriptor or ring address; 0x2603 with the
//! queue's token when it has used buffers. Rings are in guest byte order
//! (big-endian) and the legacy layout (used ring 4096-aligned).
//!
//! It lays the page out itself rather than with the contract's builder,
//! so the tests compare two independent readings of the header.

use super::super::{LegacyCall, LegacyHost, LegacyInterrupt, PARAM_VRING};
use std::ops::Range;

pub const PAGE: usize = 4096;
const ALIGN: u64 = 4096;
const EINVAL: i64 = -22;
const STATUS_DRIVER_OK: u8 = 4;
const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
const DESC_F_INDIRECT: u16 = 4;
const AVAIL_F_NO_INTERRUPT: u16 = 1;

/// Bytes a legacy split ring of `num` entries takes (vring_size, 4096).
pub fn ring_size(num: u16) -> u64 {
    let n = u64::from(num);
    let avail_end = 16 * n + 6 + 2 * n;
    avail_end.next_multiple_of(ALIGN) + (6 + 8 * n).next_multiple_of(ALIGN)
}

/// A device to put on the page.
#[derive(Clone, Debug)]
pub struct DeviceSpec {
    pub device_type: u8,
    /// Ring sizes, one a queue.
    pub queues: Vec<u16>,
    pub host_features: Vec<u8>,
    pub config: Vec<u8>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct ModelQueue {
    pub addr: u64,
    pub num: u16,
    last_avail: u16,
    used_idx: u16,
}

#[derive(Clone, Debug, Default)]
pub struct ModelDevice {
    pub offset: usize,
    pub device_type: u8,
    pub feature_len: usize,
    pub config_len: usize,
    pub queues: Vec<ModelQueue>,
    /// Every status SET_STATUS found in the page, in order.
    pub statuses: Vec<u8>,
    /// The guest's feature bytes as SET_STATUS last found them.
    pub acked: Vec<u8>,
    pub resets: u32,
    /// Requests completed, and bytes written into them.
    pub requests: u32,
    pub bytes: u64,
}

impl ModelDevice {
    fn queue_desc(&self, q: usize) -> usize {
        self.offset + 5 + 24 * q
    }
    fn host_features(&self) -> usize {
        self.queue_desc(self.queues.len())
    }
    fn guest_features(&self) -> usize {
        self.host_features() + self.feature_len
    }
    pub fn config(&self) -> usize {
        self.guest_features() + self.feature_len
    }
}

/// The page and the ring area are one allocation, which never moves and is
/// never freed (leaked: a queue over one of its rings may outlive the
/// host), reached only through raw pointers.
pub struct ModelHost {
    backing: *mut u64,
    words: usize,
    /// Rings handed to queues.
    claimed: Vec<Range<u64>>,
    pub devices: Vec<ModelDevice>,
    pending: Vec<LegacyInterrupt>,
    /// False: every hypercall raises a program interrupt (no host).
    pub serve: bool,
    pub page_len: usize,
    /// Overrides where rings may be (to test the driver's checks).
    pub window: Option<Range<u64>>,
    /// Answer requests with fewer bytes than offered (at least one).
    pub short_answers: bool,
    entropy: u64,
    pub calls: Vec<(LegacyCall, u64)>,
}

impl ModelHost {
    fn with_backing(bytes: usize) -> Self {
        let backing = vec![0u64; bytes.div_ceil(8) + ALIGN as usize / 8].leak();
        ModelHost {
            words: backing.len(),
            backing: backing.as_mut_ptr(),
            claimed: Vec::new(),
            devices: Vec::new(),
            pending: Vec::new(),
            serve: true,
            page_len: PAGE,
            window: None,
            short_answers: false,
            entropy: 0x9e37_79b9_7f4a_7c15,
            calls: Vec::new(),
        }
    }

    /// The page's address: the backing store's first 4096-aligned byte.
    pub fn base(&self) -> u64 {
        (self.backing as u64).next_multiple_of(ALIGN)
    }

    fn end(&self) -> u64 {
        self.backing as u64 + 8 * self.words as u64
    }

    /// A host with `devices` on its page and their rings after it.
    pub fn new(devices: &[DeviceSpec]) -> Self {
        let rings: u64 = devices
            .iter()
            .flat_map(|d| d.queues.iter().map(|&n| ring_size(n)))
            .sum();
        let mut h = ModelHost::with_backing(PAGE + rings as usize);
        let mut ring = h.base() + PAGE as u64;
        let mut at = 0usize;
        for d in devices {
            let dev = ModelDevice {
                offset: at,
                device_type: d.device_type,
                feature_len: d.host_features.len(),
                config_len: d.config.len(),
                queues: d
                    .queues
                    .iter()
                    .map(|&num| {
                        let q = ModelQueue {
                            addr: ring,
                            num,
                            ..ModelQueue::default()
                        };
                        ring += ring_size(num);
                        q
                    })
                    .collect(),
                ..ModelDevice::default()
            };
            // kvm_device_desc: type, num_vq, feature_len, config_len, status.
            h.put(
                at,
                &[
                    d.device_type,
                    d.queues.len() as u8,
                    d.host_features.len() as u8,
                    d.config.len() as u8,
                    0,
                ],
            );
            // kvm_vqconfig: token (the guest's to set), address, num.
            for (i, q) in dev.queues.iter().enumerate() {
                let qd = dev.queue_desc(i);
                h.put(qd + 8, &q.addr.to_be_bytes());
                h.put(qd + 16, &q.num.to_be_bytes());
            }
            h.put(dev.host_features(), &d.host_features);
            h.put(dev.config(), &d.config);
            at = dev.config() + dev.config_len;
            h.devices.push(dev);
        }
        h
    }

    /// A host whose page holds `page` as given (malformed ones too), with
    /// `ring_area` bytes of ring storage after it.
    pub fn raw(page: &[u8], ring_area: usize) -> Self {
        let mut h = ModelHost::with_backing(PAGE + ring_area);
        h.put(0, &page[..page.len().min(PAGE)]);
        h
    }

    /// The whole page as bytes.
    pub fn page(&self) -> &[u8] {
        let off = (self.base() - self.backing as u64) as usize;
        // SAFETY: the backing store holds the page from `off` on (one
        // page of alignment slack was allocated); the slice covers the
        // page alone, never the rings, and nothing writes the page while
        // it is borrowed (`put` takes `&mut self`).
        unsafe { std::slice::from_raw_parts(self.backing.cast::<u8>().add(off), PAGE) }
    }

    pub fn put(&mut self, offset: usize, data: &[u8]) {
        let at = self.base() + offset as u64;
        assert!(offset + data.len() <= PAGE);
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: inside the page (asserted), which the backing holds.
            unsafe { std::ptr::write_volatile((at + i as u64) as *mut u8, b) };
        }
    }

    fn byte(&self, offset: usize) -> u8 {
        self.page()[offset]
    }

    fn page_u64(&self, offset: usize) -> u64 {
        u64::from_be_bytes(self.page()[offset..offset + 8].try_into().unwrap())
    }

    /// Raises a 0x2603 interrupt as the host would.
    pub fn raise(&mut self, kind: u8, token: u64) {
        self.pending.push(LegacyInterrupt { kind, token });
    }

    fn device_at(&self, desc: u64) -> Option<usize> {
        self.devices
            .iter()
            .position(|d| self.base() + d.offset as u64 == desc)
    }

    fn reset(&mut self, d: usize) {
        let (status, guest, len) = {
            let dev = &self.devices[d];
            (dev.offset + 4, dev.guest_features(), dev.feature_len)
        };
        self.put(status, &[0]);
        self.put(guest, &vec![0; len]);
        let dev = &mut self.devices[d];
        dev.resets += 1;
        for q in &mut dev.queues {
            q.last_avail = 0;
            q.used_idx = 0;
        }
    }

    fn set_status(&mut self, d: usize) {
        let dev = &self.devices[d];
        let status = self.byte(dev.offset + 4);
        let acked = self.page()[dev.guest_features()..dev.config()].to_vec();
        let dev = &mut self.devices[d];
        dev.statuses.push(status);
        dev.acked = acked;
        if status == 0 {
            self.reset(d);
        }
    }

    fn next_entropy(&mut self) -> u8 {
        self.entropy ^= self.entropy << 13;
        self.entropy ^= self.entropy >> 7;
        self.entropy ^= self.entropy << 17;
        (self.entropy >> 24) as u8
    }

    /// NOTIFY of the ring at `addr`: an entropy device fills what is
    /// available; other devices only take note.
    fn notify(&mut self, addr: u64) -> i64 {
        let found = self.devices.iter().enumerate().find_map(|(d, dev)| {
            dev.queues
                .iter()
                .position(|q| q.addr == addr)
                .map(|q| (d, q))
        });
        let Some((d, qi)) = found else {
            return EINVAL;
        };
        let dev = &self.devices[d];
        let ready = self.byte(dev.offset + 4) & STATUS_DRIVER_OK != 0;
        if dev.device_type != 4 || !ready {
            return 0;
        }
        let token = self.page_u64(dev.queue_desc(qi));
        let q = dev.queues[qi];
        let n = u64::from(q.num);
        let avail = q.addr + 16 * n;
        let used = (avail + 6 + 2 * n).next_multiple_of(ALIGN);
        let mut last_avail = q.last_avail;
        let mut used_idx = q.used_idx;
        let avail_idx = self.r16(avail + 2);
        let mut any = false;
        while last_avail != avail_idx {
            let head = self.r16(avail + 4 + 2 * u64::from(last_avail % q.num));
            let elems = self.chain(q.addr, q.num, head);
            let total: u64 = elems.iter().map(|e| u64::from(e.1)).sum();
            let want = if self.short_answers {
                1 + u64::from(self.next_entropy()) % total
            } else {
                total
            };
            let mut left = want;
            for (at, len) in elems {
                for i in 0..u64::from(len).min(left) {
                    let b = self.next_entropy();
                    self.write8(at + i, b);
                }
                left = left.saturating_sub(u64::from(len));
            }
            let slot = used + 4 + 8 * u64::from(used_idx % q.num);
            self.w32(slot, u32::from(head));
            self.w32(slot + 4, want as u32);
            used_idx = used_idx.wrapping_add(1);
            self.w16(used + 2, used_idx);
            last_avail = last_avail.wrapping_add(1);
            let dev = &mut self.devices[d];
            dev.requests += 1;
            dev.bytes += want;
            any = true;
        }
        let q = &mut self.devices[d].queues[qi];
        q.last_avail = last_avail;
        q.used_idx = used_idx;
        if any && self.r16(avail) & AVAIL_F_NO_INTERRUPT == 0 {
            self.raise(PARAM_VRING, token);
        }
        0
    }

    /// The device-writable elements of the chain at `head`: (address, length).
    fn chain(&self, desc: u64, num: u16, head: u16) -> Vec<(u64, u32)> {
        let mut out = Vec::new();
        let mut i = head;
        for _ in 0..num {
            assert!(i < num, "descriptor {i} past the ring");
            let d = desc + 16 * u64::from(i);
            let (addr, len, flags, next) = (
                self.r64(d),
                self.r32(d + 8),
                self.r16(d + 12),
                self.r16(d + 14),
            );
            if flags & DESC_F_INDIRECT != 0 {
                assert!(len % 16 == 0 && len > 0, "indirect table of {len} bytes");
                let mut j = 0u16;
                loop {
                    let t = addr + 16 * u64::from(j);
                    let (a, l, f, n) = (
                        self.r64(t),
                        self.r32(t + 8),
                        self.r16(t + 12),
                        self.r16(t + 14),
                    );
                    assert!(
                        f & DESC_F_WRITE != 0,
                        "an entropy buffer the device may not write"
                    );
                    out.push((a, l));
                    if f & DESC_F_NEXT == 0 {
                        break;
                    }
                    assert!(u32::from(n) < len / 16, "indirect next past the table");
                    j = n;
                }
            } else {
                assert!(
                    flags & DESC_F_WRITE != 0,
                    "an entropy buffer the device may not write"
                );
                out.push((addr, len));
            }
            if flags & DESC_F_NEXT == 0 {
                return out;
            }
            i = next;
        }
        panic!("a descriptor chain that loops");
    }

    // Guest storage, big-endian as an s390 guest lays it out. The model
    // reads and writes the rings in its own backing store and the request
    // buffers the driver under test made available: its DMA memory, alive
    // until the request comes back.
    fn r16(&self, a: u64) -> u16 {
        u16::from_be_bytes(self.read::<2>(a))
    }
    fn r32(&self, a: u64) -> u32 {
        u32::from_be_bytes(self.read::<4>(a))
    }
    fn r64(&self, a: u64) -> u64 {
        u64::from_be_bytes(self.read::<8>(a))
    }
    fn w16(&mut self, a: u64, v: u16) {
        self.write(a, &v.to_be_bytes());
    }
    fn w32(&mut self, a: u64, v: u32) {
        self.write(a, &v.to_be_bytes());
    }
    fn write8(&mut self, a: u64, v: u8) {
        self.write(a, &[v]);
    }
    fn read<const N: usize>(&self, a: u64) -> [u8; N] {
        let mut b = [0u8; N];
        for (i, x) in b.iter_mut().enumerate() {
            // SAFETY: see above: ring storage or a buffer made available.
            *x = unsafe { std::ptr::read_volatile((a + i as u64) as *const u8) };
        }
        b
    }
    fn write(&mut self, a: u64, data: &[u8]) {
        for (i, &x) in data.iter().enumerate() {
            // SAFETY: as for `read`.
            unsafe { std::ptr::write_volatile((a + i as u64) as *mut u8, x) };
        }
    }
}

// SAFETY: the ring window is the model's backing store past the page (a
// test's own window is clamped to the backing store): one allocation,
// leaked, so valid for the rest of the process, in which no Rust object
// lives and which the model and the driver reach only through raw
// pointers. Each model has its own, and `claim_ring` says yes once for
// any byte of it.
unsafe impl LegacyHost for ModelHost {
    fn page_addr(&self) -> u64 {
        self.base()
    }

    fn page_len(&self) -> usize {
        self.page_len
    }

    fn read_page(&mut self, offset: usize, buf: &mut [u8]) -> bool {
        if offset > self.page_len || buf.len() > self.page_len - offset {
            return false;
        }
        buf.copy_from_slice(&self.page()[offset..offset + buf.len()]);
        true
    }

    fn write_page(&mut self, offset: usize, data: &[u8]) -> bool {
        if offset > self.page_len || data.len() > self.page_len - offset {
            return false;
        }
        self.put(offset, data);
        true
    }

    fn ring_window(&self) -> Range<u64> {
        match &self.window {
            Some(w) => w.start.max(self.base())..w.end.min(self.end()),
            None => self.base() + PAGE as u64..self.end(),
        }
    }

    fn claim_ring(&mut self, ring: Range<u64>) -> bool {
        if self
            .claimed
            .iter()
            .any(|c| ring.start < c.end && c.start < ring.end)
        {
            return false;
        }
        self.claimed.push(ring);
        true
    }

    fn hypercall(&mut self, call: LegacyCall, arg: u64) -> Option<i64> {
        if !self.serve {
            return None;
        }
        self.calls.push((call, arg));
        Some(match call {
            LegacyCall::Notify => self.notify(arg),
            LegacyCall::Reset | LegacyCall::SetStatus => match self.device_at(arg) {
                None => EINVAL,
                Some(d) => {
                    if call == LegacyCall::Reset {
                        self.reset(d);
                    } else {
                        self.set_status(d);
                    }
                    0
                }
            },
        })
    }

    fn take_interrupts(&mut self) -> Vec<LegacyInterrupt> {
        std::mem::take(&mut self.pending)
    }

    /// Requests are served as they are notified: there is nothing to wait
    /// for but what has happened.
    fn wait(&mut self, _timeout_us: u64, done: &mut dyn FnMut() -> bool) -> bool {
        done()
    }
}
