//! Guest memory for the tests: blocks with canary bytes on both sides, and
//! bounds-checked access for the device model, so that a stray access by
//! the model panics and a stray write by the driver shows in the canaries.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ptr;

use super::super::{Endian, RingMemory};

const GUARD: usize = 128;
const CANARY: u8 = 0xa5;

struct Block {
    /// Start of the backing store (guards included) and its address.
    base: *mut u8,
    base_addr: u64,
    backing_len: usize,
    /// The part handed out.
    start: u64,
    len: usize,
    _backing: Vec<u64>,
}

impl Block {
    /// A pointer to `addr`, derived from the backing store.
    fn ptr(&self, addr: u64) -> *mut u8 {
        self.base.wrapping_add((addr - self.base_addr) as usize)
    }

    fn guards_intact(&self) -> Result<(), usize> {
        let lo = (self.start - self.base_addr) as usize;
        let hi = lo + self.len;
        for i in (0..lo).chain(hi..self.backing_len) {
            // SAFETY: i < backing_len, inside the backing store.
            let b = unsafe { ptr::read_volatile(self.base.add(i)) };
            if b != CANARY {
                return Err(i);
            }
        }
        Ok(())
    }
}

#[derive(Default)]
pub struct TestMem {
    blocks: RefCell<BTreeMap<u64, Block>>,
}

impl TestMem {
    /// `len` bytes aligned to `align`, filled with `fill`.
    pub fn alloc(&self, len: usize, align: usize, fill: u8) -> u64 {
        let backing_len = GUARD + align + len + GUARD;
        let mut backing = vec![0u64; backing_len.div_ceil(8)];
        let base = backing.as_mut_ptr().cast::<u8>();
        let base_addr = base.expose_provenance() as u64;
        let start = (base_addr + GUARD as u64).next_multiple_of(align as u64);
        // SAFETY: the backing store holds at least backing_len bytes, and
        // start + len stays inside it by construction.
        unsafe {
            ptr::write_bytes(base, CANARY, backing_len);
            ptr::write_bytes(base.add((start - base_addr) as usize), fill, len);
        }
        let block = Block {
            base,
            base_addr,
            backing_len,
            start,
            len,
            _backing: backing,
        };
        self.blocks.borrow_mut().insert(start, block);
        start
    }

    /// Ring memory for a queue, filled with junk the queue must clear.
    pub fn ring(&self, len: usize, align: usize) -> RingMemory {
        let addr = self.alloc(len, align, 0xcc);
        // SAFETY: the block lives as long as this TestMem, which every test
        // keeps until its queues are gone; only the queue and the device
        // model touch it.
        unsafe { RingMemory::new(addr, len) }
    }

    /// Releases a block after checking its canaries.
    pub fn free(&self, addr: u64) {
        let block = self
            .blocks
            .borrow_mut()
            .remove(&addr)
            .expect("free of unknown block");
        if let Err(i) = block.guards_intact() {
            panic!("canary at backing offset {i} of block {addr:#x} overwritten");
        }
    }

    pub fn check_guards(&self) {
        for (addr, b) in self.blocks.borrow().iter() {
            if let Err(i) = b.guards_intact() {
                panic!("canary at backing offset {i} of block {addr:#x} overwritten");
            }
        }
    }

    /// A pointer to `len` bytes at `addr`, which must lie in one block.
    fn span(&self, addr: u64, len: usize) -> *mut u8 {
        let blocks = self.blocks.borrow();
        let (_, b) = blocks
            .range(..=addr)
            .next_back()
            .unwrap_or_else(|| panic!("access at {addr:#x} outside test memory"));
        assert!(
            addr >= b.start && addr + len as u64 <= b.start + b.len as u64,
            "access of {len} bytes at {addr:#x} outside block {:#x}+{}",
            b.start,
            b.len
        );
        b.ptr(addr)
    }

    pub fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let p = self.span(addr, len);
        let mut out = vec![0u8; len];
        // SAFETY: span checked the range lies in a live block.
        unsafe { ptr::copy_nonoverlapping(p, out.as_mut_ptr(), len) };
        out
    }

    pub fn write(&self, addr: u64, data: &[u8]) {
        let p = self.span(addr, data.len());
        // SAFETY: span checked the range lies in a live block.
        unsafe { ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
    }

    fn get<const N: usize>(&self, addr: u64) -> [u8; N] {
        self.read(addr, N).try_into().unwrap()
    }

    pub fn r16(&self, addr: u64, e: Endian) -> u16 {
        match e {
            Endian::Big => u16::from_be_bytes(self.get(addr)),
            Endian::Little => u16::from_le_bytes(self.get(addr)),
        }
    }

    pub fn r32(&self, addr: u64, e: Endian) -> u32 {
        match e {
            Endian::Big => u32::from_be_bytes(self.get(addr)),
            Endian::Little => u32::from_le_bytes(self.get(addr)),
        }
    }

    pub fn r64(&self, addr: u64, e: Endian) -> u64 {
        match e {
            Endian::Big => u64::from_be_bytes(self.get(addr)),
            Endian::Little => u64::from_le_bytes(self.get(addr)),
        }
    }

    pub fn w16(&self, addr: u64, v: u16, e: Endian) {
        match e {
            Endian::Big => self.write(addr, &v.to_be_bytes()),
            Endian::Little => self.write(addr, &v.to_le_bytes()),
        }
    }

    pub fn w32(&self, addr: u64, v: u32, e: Endian) {
        match e {
            Endian::Big => self.write(addr, &v.to_be_bytes()),
            Endian::Little => self.write(addr, &v.to_le_bytes()),
        }
    }
}

impl Drop for TestMem {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.check_guards();
        }
    }
}
