//! Memory a device reads and writes by itself: rings, indirect tables,
//! request buffers, indicators, channel programs and their data.
//!
//! A [`DmaMemory`] is page-aligned, zeroed, owned, and never moves while it
//! lives, so an address handed to a device stays good until the owner
//! drops it. On s390x it comes from the heap, which lies below 2 GiB
//! (memory.rs): every address is then also a valid 31-bit channel-program
//! address, which [`DmaMemory::addr31`] checks all the same.

use alloc::vec::Vec;

#[repr(C, align(4096))]
struct DmaPage([u8; PAGE]);

const PAGE: usize = 4096;

pub struct DmaMemory {
    pages: Vec<DmaPage>,
}

impl DmaMemory {
    /// At least `bytes` (at least one page), zeroed.
    pub fn new(bytes: usize) -> Self {
        let n = bytes.div_ceil(PAGE).max(1);
        let mut pages = Vec::with_capacity(n);
        pages.resize_with(n, || DmaPage([0; PAGE]));
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
        unsafe { core::slice::from_raw_parts_mut(self.pages.as_mut_ptr().cast::<u8>(), len) }
    }

    /// Byte `offset`, read volatile: for memory a device may be writing
    /// right now (indicators).
    pub fn load(&self, offset: usize) -> u8 {
        assert!(offset < self.len(), "DMA read out of bounds");
        // SAFETY: in bounds (checked) of memory we own.
        unsafe { core::ptr::read_volatile(self.pages.as_ptr().cast::<u8>().add(offset)) }
    }

    /// Zeroes `len` bytes from `offset`, volatile: the device may be
    /// setting them meanwhile, and must see each write.
    pub fn clear(&mut self, offset: usize, len: usize) {
        assert!(
            offset <= self.len() && len <= self.len() - offset,
            "DMA write out of bounds"
        );
        let base = self.pages.as_mut_ptr().cast::<u8>();
        for i in offset..offset + len {
            // SAFETY: in bounds (checked) of memory we own.
            unsafe { core::ptr::write_volatile(base.add(i), 0) };
        }
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
        assert_eq!(DmaMemory::new(0).len(), 4096);
        assert_eq!(m.addr31(8193), None);
    }
}
