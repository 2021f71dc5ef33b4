//! Memory a device reads and writes by itself: rings, indirect tables,
//! request buffers, indicators, channel programs and their data.
//!
//! A [`DmaMemory`] is page-aligned, zeroed, owned, and never moves while it
//! lives, so an address handed to a device stays good until the owner
//! drops it. On s390x it comes from the heap, which lies below 2 GiB
//! (memory.rs): every address is then also a valid 31-bit channel-program
//! address, which [`DmaMemory::addr31`] checks all the same.
//!
//! # Memory a device keeps
//!
//! A channel program is done with its memory at its final status; a virtio
//! device is not: it keeps the addresses of its rings, its indicators and
//! every buffer made available to it until it is reset, and may store
//! there at any time until then. Such memory is an `Rc<DmaMemory>` with two
//! kinds of owner: the driver part that uses it (a queue, the indicators,
//! the caller of a request) and the device's [`DeviceHeld`], which the
//! transport empties only once a reset has completed. Whichever lets go
//! last frees it, so dropping a queue or the indicators early (an error
//! path) never frees memory the device still holds. Its bytes are read and
//! written through `&self`, volatile ([`DmaMemory::load`],
//! [`DmaMemory::store`], [`DmaMemory::read`], [`DmaMemory::write`],
//! [`DmaMemory::clear`]), since the device may store into them meanwhile;
//! [`DmaMemory::bytes`], which forms a Rust reference to them, needs the
//! memory unshared.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{RefCell, UnsafeCell};

/// A page of memory a device may store into behind our back: hence the
/// `UnsafeCell`, through which the volatile `&self` accesses write.
#[repr(C, align(4096))]
struct DmaPage(UnsafeCell<[u8; PAGE]>);

const PAGE: usize = 4096;

pub struct DmaMemory {
    pages: Vec<DmaPage>,
}

impl DmaMemory {
    /// At least `bytes` (at least one page), zeroed.
    pub fn new(bytes: usize) -> Self {
        let n = bytes.div_ceil(PAGE).max(1);
        let mut pages = Vec::with_capacity(n);
        pages.resize_with(n, || DmaPage(UnsafeCell::new([0; PAGE])));
        DmaMemory { pages }
    }

    pub fn addr(&self) -> u64 {
        self.pages.as_ptr() as u64
    }

    pub fn len(&self) -> usize {
        self.pages.len() * PAGE
    }

    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Whether `len` bytes from `offset` lie inside.
    pub fn contains(&self, offset: usize, len: usize) -> bool {
        offset <= self.len() && len <= self.len() - offset
    }

    /// The address of byte `offset` as a channel program names it (31
    /// bits); None past the end or at or above 2 GiB.
    pub fn addr31(&self, offset: usize) -> Option<u32> {
        if offset > self.len() {
            return None;
        }
        u32::try_from(self.addr() + offset as u64)
            .ok()
            .filter(|&a| a < 1 << 31)
    }

    /// The bytes, for filling before a device is given them and reading
    /// after it is done with them.
    pub fn bytes(&mut self) -> &mut [u8] {
        let len = self.len();
        // SAFETY: the pages are contiguous, owned, and `len` bytes long.
        // `&mut self` means they are not shared, and memory a device keeps
        // is (module notes); a channel program's device is done with its
        // memory once the program's borrow ends.
        unsafe { core::slice::from_raw_parts_mut(self.pages.as_mut_ptr().cast::<u8>(), len) }
    }

    /// Byte `offset` on, as a pointer that may write (the pages' contents
    /// are in `UnsafeCell`s); the callers check the bounds.
    fn at(&self, offset: usize) -> *mut u8 {
        let cells = self.pages.as_ptr().cast::<UnsafeCell<[u8; PAGE]>>();
        UnsafeCell::raw_get(cells).cast::<u8>().wrapping_add(offset)
    }

    /// Byte `offset`, read volatile: for memory a device may be writing
    /// right now (indicators, buffers it holds).
    pub fn load(&self, offset: usize) -> u8 {
        assert!(offset < self.len(), "DMA read out of bounds");
        // SAFETY: in bounds (checked) of memory we own.
        unsafe { core::ptr::read_volatile(self.at(offset)) }
    }

    /// Stores byte `offset`, volatile: the device may be reading it.
    pub fn store(&self, offset: usize, value: u8) {
        assert!(offset < self.len(), "DMA write out of bounds");
        // SAFETY: in bounds (checked) of memory we own, inside UnsafeCell.
        unsafe { core::ptr::write_volatile(self.at(offset), value) }
    }

    /// Copies `out.len()` bytes from `offset` into `out`, volatile: bytes
    /// up to a doubleword boundary, doublewords, then the bytes left.
    pub fn read(&self, offset: usize, out: &mut [u8]) {
        assert!(self.contains(offset, out.len()), "DMA read out of bounds");
        let at = self.at(offset);
        let head = at.align_offset(8).min(out.len());
        let (head_out, body_out) = out.split_at_mut(head);
        for (i, b) in head_out.iter_mut().enumerate() {
            // SAFETY: in bounds (checked) of memory we own.
            *b = unsafe { core::ptr::read_volatile(at.wrapping_add(i)) };
        }
        let words = at.wrapping_add(head).cast::<u64>();
        let tail = words.cast::<u8>().wrapping_add(body_out.len() & !7);
        let mut chunks = body_out.chunks_exact_mut(8);
        for (i, chunk) in chunks.by_ref().enumerate() {
            // SAFETY: in bounds (checked) of memory we own; aligned.
            let w = unsafe { core::ptr::read_volatile(words.wrapping_add(i)) };
            let chunk: &mut [u8; 8] = chunk.try_into().expect("8 bytes");
            *chunk = w.to_ne_bytes();
        }
        for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
            // SAFETY: in bounds (checked) of memory we own.
            *b = unsafe { core::ptr::read_volatile(tail.wrapping_add(i)) };
        }
    }

    /// Copies `data` to `offset`, volatile, as `read` does.
    pub fn write(&self, offset: usize, data: &[u8]) {
        assert!(self.contains(offset, data.len()), "DMA write out of bounds");
        let at = self.at(offset);
        let head = at.align_offset(8).min(data.len());
        let (head_data, body_data) = data.split_at(head);
        for (i, &b) in head_data.iter().enumerate() {
            // SAFETY: in bounds (checked) of memory we own, inside UnsafeCell.
            unsafe { core::ptr::write_volatile(at.wrapping_add(i), b) };
        }
        let words = at.wrapping_add(head).cast::<u64>();
        let mut chunks = body_data.chunks_exact(8);
        for (i, chunk) in chunks.by_ref().enumerate() {
            let w = u64::from_ne_bytes(chunk.try_into().expect("8 bytes"));
            // SAFETY: in bounds (checked) of memory we own, inside
            // UnsafeCell; aligned.
            unsafe { core::ptr::write_volatile(words.wrapping_add(i), w) };
        }
        let tail = words.cast::<u8>().wrapping_add(body_data.len() & !7);
        for (i, &b) in chunks.remainder().iter().enumerate() {
            // SAFETY: in bounds (checked) of memory we own, inside UnsafeCell.
            unsafe { core::ptr::write_volatile(tail.wrapping_add(i), b) };
        }
    }

    /// Calls `f` with each of the `n` doublewords from `offset` (8-byte
    /// aligned), read volatile as big-endian numbers, until it returns
    /// false; returns that word's index. No copy: for checking what a
    /// device wrote where it is.
    pub fn scan_words(
        &self,
        offset: usize,
        n: usize,
        mut f: impl FnMut(u64) -> bool,
    ) -> Option<usize> {
        assert!(offset.is_multiple_of(8), "unaligned word scan");
        assert!(self.contains(offset, n * 8), "DMA read out of bounds");
        let words = self.at(offset).cast::<u64>();
        for i in 0..n {
            // SAFETY: in bounds (checked) of memory we own; aligned.
            let w = unsafe { core::ptr::read_volatile(words.wrapping_add(i)) };
            if !f(u64::from_be_bytes(w.to_ne_bytes())) {
                return Some(i);
            }
        }
        None
    }

    /// Stores `n` doublewords from `offset` (8-byte aligned), volatile,
    /// each `f()` as a big-endian number: for filling a buffer in place.
    pub fn fill_words(&self, offset: usize, n: usize, mut f: impl FnMut() -> u64) {
        assert!(offset.is_multiple_of(8), "unaligned word fill");
        assert!(self.contains(offset, n * 8), "DMA write out of bounds");
        let words = self.at(offset).cast::<u64>();
        for i in 0..n {
            let w = u64::from_ne_bytes(f().to_be_bytes());
            // SAFETY: in bounds (checked) of memory we own, inside
            // UnsafeCell; aligned.
            unsafe { core::ptr::write_volatile(words.wrapping_add(i), w) };
        }
    }

    /// Zeroes `len` bytes from `offset`, volatile: the device may be
    /// setting them meanwhile, and must see each write.
    pub fn clear(&self, offset: usize, len: usize) {
        assert!(self.contains(offset, len), "DMA write out of bounds");
        for i in offset..offset + len {
            // SAFETY: in bounds (checked) of memory we own, inside UnsafeCell.
            unsafe { core::ptr::write_volatile(self.at(i), 0) };
        }
    }
}

/// The DMA memory one device holds addresses in, kept from the moment the
/// device is given an address in it until the device is reset.
///
/// A handle: clones share one list. The transport owns the device's and
/// gives each queue set up on it a clone, so what a queue hands the device
/// is kept with the rest, whatever happens to the queue. Memory can only
/// be added, and taken out only by [`DeviceHeld::release`], whose caller
/// vouches for the reset. When the last handle goes with memory still in
/// the list (a device that was never reset, or whose reset failed), that
/// memory is never freed: the device may still store there.
#[derive(Clone, Default)]
pub struct DeviceHeld(Rc<RefCell<Held>>);

#[derive(Default)]
struct Held(Vec<Rc<DmaMemory>>);

impl Drop for Held {
    fn drop(&mut self) {
        for mem in self.0.drain(..) {
            // Never freed: nobody reset the device that holds it.
            core::mem::forget(mem);
        }
    }
}

impl DeviceHeld {
    /// Keeps `mem` (once, however often it is given) until a release.
    pub fn keep(&self, mem: &Rc<DmaMemory>) {
        let mut held = self.0.borrow_mut();
        if !held.0.iter().any(|m| Rc::ptr_eq(m, mem)) {
            held.0.push(mem.clone());
        }
    }

    /// Moves everything `other` keeps into this list (still kept: only
    /// [`DeviceHeld::release`] lets go).
    pub fn absorb(&self, other: &DeviceHeld) {
        if Rc::ptr_eq(&self.0, &other.0) {
            return;
        }
        let moved: Vec<Rc<DmaMemory>> = other.0.borrow_mut().0.drain(..).collect();
        for mem in moved {
            self.keep(&mem);
        }
    }

    /// Whether any memory is kept.
    pub fn is_empty(&self) -> bool {
        self.0.borrow().0.is_empty()
    }

    /// Lets go of everything kept: each memory is freed once its other
    /// owners let go too.
    ///
    /// # Safety
    ///
    /// The device has been reset since it was last given an address in
    /// any of this memory: it holds none of them any more and will not
    /// store there.
    pub unsafe fn release(&self) {
        self.0.borrow_mut().0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_aligned_zeroed_and_bounded() {
        let mut m = DmaMemory::new(5000);
        assert_eq!(m.len(), 8192);
        assert_eq!(m.addr() % 4096, 0);
        assert!(m.bytes().iter().all(|&b| b == 0));
        m.bytes()[4097] = 7;
        assert_eq!(m.load(4097), 7);
        m.clear(4096, 2);
        assert_eq!(m.load(4097), 0);
        let mut k = 0u64;
        m.fill_words(8, 3, || {
            k += 1;
            k << 56 | k
        });
        assert_eq!((m.load(8), m.load(15), m.load(16)), (1, 1, 2));
        let mut seen = Vec::new();
        assert_eq!(
            m.scan_words(8, 3, |w| {
                seen.push(w);
                w != (2 << 56 | 2)
            }),
            Some(1)
        );
        assert_eq!(seen, [1 << 56 | 1, 2 << 56 | 2]);
        assert_eq!(m.scan_words(8, 3, |_| true), None);
        assert_eq!(DmaMemory::new(0).len(), 4096);
        assert_eq!(m.addr31(8193), None);
        assert!(m.contains(8192, 0) && !m.contains(8191, 2));
    }

    #[test]
    fn shared_memory_is_read_and_written_volatile() {
        let m = Rc::new(DmaMemory::new(16));
        m.write(10, &[1, 2, 3]);
        m.store(13, 4);
        let mut out = [0u8; 5];
        m.read(9, &mut out);
        assert_eq!(out, [0, 1, 2, 3, 4]);
        // Unaligned heads and tails around doublewords, every split.
        for start in 0..9 {
            for len in 0..40 {
                let data: Vec<u8> = (0..len).map(|i| i as u8 | 0x80).collect();
                m.clear(0, 64);
                m.write(start, &data);
                let mut back = vec![0u8; 64];
                m.read(0, &mut back);
                let mut want = vec![0u8; 64];
                want[start..start + len].copy_from_slice(&data);
                assert_eq!(back, want, "start {start} len {len}");
                let mut part = vec![0u8; len];
                m.read(start, &mut part);
                assert_eq!(part, data);
            }
        }
    }

    #[test]
    fn held_memory_outlives_its_other_owners_until_released() {
        let held = DeviceHeld::default();
        let mem = Rc::new(DmaMemory::new(1));
        held.keep(&mem);
        held.clone().keep(&mem);
        assert_eq!(Rc::strong_count(&mem), 2, "kept once");
        // SAFETY: no device was ever given this memory.
        unsafe { held.release() };
        assert_eq!(Rc::strong_count(&mem), 1);
        assert!(held.is_empty());
        // Never released: the memory is never freed.
        let kept = DeviceHeld::default();
        kept.keep(&mem);
        drop(kept);
        assert_eq!(Rc::strong_count(&mem), 2);
    }

    #[test]
    fn absorbed_memory_stays_kept_once() {
        let device = DeviceHeld::default();
        let own = DeviceHeld::default();
        let (a, b) = (Rc::new(DmaMemory::new(1)), Rc::new(DmaMemory::new(1)));
        device.keep(&a);
        own.keep(&a);
        own.keep(&b);
        device.absorb(&own);
        assert!(own.is_empty());
        assert_eq!(Rc::strong_count(&a), 2, "a kept once");
        assert_eq!(Rc::strong_count(&b), 2, "b moved, kept");
        device.absorb(&device.clone());
        assert_eq!(Rc::strong_count(&b), 2, "absorbing itself changes nothing");
        // SAFETY: no device was ever given this memory.
        unsafe { device.release() };
        assert_eq!(Rc::strong_count(&a), 1);
    }
}
