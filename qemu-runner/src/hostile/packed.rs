//! The device side of a packed virtqueue, our own (virtio-queue serves
//! split rings only): one descriptor ring the driver and we both write.
//!
//! A slot is available when its AVAIL bit equals the driver's wrap
//! counter and its USED bit does not; we mark a used descriptor with both
//! bits equal to our used wrap counter. Both counters start at 1 and flip
//! each time a position passes the ring's end. We keep the positions
//! ourselves: the framework keeps only the low 16 bits of SET_VRING_BASE
//! (`last_avail | wrap << 15` for packed rings) and rereads a split ring's
//! used index on SET_VRING_ADDR, which means nothing here.

use std::io;
use std::sync::atomic::Ordering;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap, Le16, Le32};

/// VIRTIO_F_RING_PACKED (the virtio spec).
pub const F_RING_PACKED: u64 = 1 << 34;

const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
const F_INDIRECT: u16 = 4;
const F_AVAIL: u16 = 1 << 7;
const F_USED: u16 = 1 << 15;
const WRAP: u16 = 1 << 15;
/// addr u64, len u32, id u16, flags u16.
const DESC_LEN: u64 = 16;
/// The device event suppression structure: off_wrap u16, flags u16.
pub const DEVICE_AREA_LEN: u64 = 4;

/// The flags of a used descriptor in the lap `wrap`.
pub fn used_flags(wrap: bool) -> u16 {
    if wrap {
        F_AVAIL | F_USED
    } else {
        0
    }
}

/// One available chain, as the driver wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The buffer id (the last descriptor's).
    pub id: u16,
    /// Ring slots it takes.
    pub slots: u16,
    /// (address, length, device-writable), in order.
    pub buffers: Vec<(GuestAddress, u32, bool)>,
}

/// Where we stand on one packed ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ring {
    pub desc: u64,
    /// The device event suppression structure (the device area).
    pub device_area: u64,
    pub size: u16,
    pub avail: u16,
    pub avail_wrap: bool,
    pub used: u16,
    pub used_wrap: bool,
}

impl Ring {
    /// A ring started at `base` (`position | wrap << 15`, what
    /// SET_VRING_BASE gave for the available side); the used side starts
    /// there too (nothing in flight at a start).
    pub fn new(desc: u64, device_area: u64, size: u16, base: u16) -> Self {
        let (pos, wrap) = (base & !WRAP, base & WRAP != 0);
        Ring {
            desc,
            device_area,
            size,
            avail: pos,
            avail_wrap: wrap,
            used: pos,
            used_wrap: wrap,
        }
    }

    /// The available position as SET/GET_VRING_BASE encode it.
    pub fn avail_base(&self) -> u16 {
        self.avail | if self.avail_wrap { WRAP } else { 0 }
    }

    /// (slot, wrap) moved on by `by` slots.
    pub fn advance(&self, slot: u16, wrap: bool, by: u16) -> (u16, bool) {
        let s = u32::from(slot) + u32::from(by);
        let n = u32::from(self.size);
        if s >= n {
            ((s - n) as u16, !wrap)
        } else {
            (s as u16, wrap)
        }
    }

    fn at(&self, slot: u16) -> u64 {
        self.desc + DESC_LEN * u64::from(slot)
    }

    fn flags(&self, mem: &GuestMemoryMmap, slot: u16) -> io::Result<u16> {
        let raw: u16 = mem
            .load(GuestAddress(self.at(slot) + 14), Ordering::Acquire)
            .map_err(io::Error::other)?;
        Ok(u16::from_le(raw))
    }

    /// The chain at our available position, if the driver made one
    /// available there; it stays there until [`Ring::take`].
    pub fn available(&self, mem: &GuestMemoryMmap) -> io::Result<Option<Chain>> {
        if self.size == 0 {
            return Ok(None);
        }
        let first = self.flags(mem, self.avail)?;
        let w = self.avail_wrap;
        if (first & F_AVAIL != 0) != w || (first & F_USED != 0) == w {
            return Ok(None);
        }
        let mut slot = self.avail;
        let mut buffers = Vec::new();
        loop {
            let at = self.at(slot);
            // The first descriptor's flags (read with acquire) are written
            // last: the rest of the chain is in place.
            let flags = if buffers.is_empty() {
                first
            } else {
                self.flags(mem, slot)?
            };
            if flags & F_INDIRECT != 0 {
                return Err(io::Error::other(format!(
                    "slot {slot}: an indirect descriptor (INDIRECT_DESC is not offered)"
                )));
            }
            let addr: u64 = mem
                .read_obj::<vm_memory::Le64>(GuestAddress(at))
                .map_err(io::Error::other)?
                .into();
            let len: u32 = mem
                .read_obj::<Le32>(GuestAddress(at + 8))
                .map_err(io::Error::other)?
                .into();
            let id: u16 = mem
                .read_obj::<Le16>(GuestAddress(at + 12))
                .map_err(io::Error::other)?
                .into();
            buffers.push((GuestAddress(addr), len, flags & F_WRITE != 0));
            slot = self.advance(slot, w, 1).0;
            if flags & F_NEXT == 0 {
                return Ok(Some(Chain {
                    id,
                    slots: buffers.len() as u16,
                    buffers,
                }));
            }
            if buffers.len() >= usize::from(self.size) {
                return Err(io::Error::other(format!(
                    "chain at slot {} is longer than the ring ({} slots)",
                    self.avail, self.size
                )));
            }
        }
    }

    /// Moves our available position past a chain of `slots`.
    pub fn take(&mut self, slots: u16) {
        (self.avail, self.avail_wrap) = self.advance(self.avail, self.avail_wrap, slots);
    }

    /// Writes a used descriptor at `slot`: id and length, then the flags
    /// that hand it out.
    pub fn write_used(
        &self,
        mem: &GuestMemoryMmap,
        slot: u16,
        (id, len, flags): (u16, u32, u16),
    ) -> io::Result<()> {
        let at = self.at(slot);
        mem.write_obj(Le32::from(len), GuestAddress(at + 8))
            .map_err(io::Error::other)?;
        mem.write_obj(Le16::from(id), GuestAddress(at + 12))
            .map_err(io::Error::other)?;
        mem.store(flags.to_le(), GuestAddress(at + 14), Ordering::Release)
            .map_err(io::Error::other)
    }

    /// Returns a chain of `slots` honestly at our used position.
    pub fn push_used(
        &mut self,
        mem: &GuestMemoryMmap,
        id: u16,
        len: u32,
        slots: u16,
    ) -> io::Result<()> {
        self.write_used(mem, self.used, (id, len, used_flags(self.used_wrap)))?;
        (self.used, self.used_wrap) = self.advance(self.used, self.used_wrap, slots);
        Ok(())
    }
}

/// The echo of a chain: its device-readable bytes written into its
/// device-writable buffers. Returns (bytes written, writable bytes).
pub fn echo(mem: &GuestMemoryMmap, chain: &Chain) -> io::Result<(u32, u64)> {
    let mut read = Vec::new();
    for &(addr, len, w) in &chain.buffers {
        if !w {
            let at = read.len();
            read.resize(at + len as usize, 0);
            mem.read_slice(&mut read[at..], addr)
                .map_err(io::Error::other)?;
        }
    }
    let (mut written, mut room) = (0usize, 0u64);
    for &(addr, len, w) in &chain.buffers {
        if w {
            room += u64::from(len);
            let n = (len as usize).min(read.len() - written);
            mem.write_slice(&read[written..written + n], addr)
                .map_err(io::Error::other)?;
            written += n;
        }
    }
    Ok((written as u32, room))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap()
    }

    /// Writes a driver's available descriptor.
    fn avail(mem: &GuestMemoryMmap, r: &Ring, slot: u16, d: (u64, u32, u16), flags: u16) {
        let at = r.desc + 16 * u64::from(slot);
        mem.write_obj(vm_memory::Le64::from(d.0), GuestAddress(at))
            .unwrap();
        mem.write_obj(Le32::from(d.1), GuestAddress(at + 8))
            .unwrap();
        mem.write_obj(Le16::from(d.2), GuestAddress(at + 12))
            .unwrap();
        mem.write_obj(Le16::from(flags), GuestAddress(at + 14))
            .unwrap();
    }

    /// A chain made available at the ring's end is read across it, echoed,
    /// and returned with the used flags of the lap; both positions wrap.
    #[test]
    fn a_chain_across_the_end_is_echoed_and_returned() {
        let mem = memory();
        let mut r = Ring::new(0x1000, 0x1040, 4, 3 | WRAP);
        assert_eq!(
            (r.avail, r.avail_wrap, r.used, r.used_wrap),
            (3, true, 3, true)
        );
        assert_eq!(r.available(&mem).unwrap(), None);
        mem.write_slice(b"hello", GuestAddress(0x2000)).unwrap();
        // Lap 1 at slot 3 (AVAIL set), lap 0 at slot 0 (USED set).
        avail(&mem, &r, 3, (0x2000, 5, 9), F_AVAIL | F_NEXT);
        avail(&mem, &r, 0, (0x3000, 8, 9), F_USED | F_WRITE);
        let c = r.available(&mem).unwrap().unwrap();
        assert_eq!((c.id, c.slots), (9, 2));
        assert_eq!(echo(&mem, &c).unwrap(), (5, 8));
        let mut got = [0u8; 5];
        mem.read_slice(&mut got, GuestAddress(0x3000)).unwrap();
        assert_eq!(&got, b"hello");
        r.take(c.slots);
        assert_eq!((r.avail, r.avail_wrap, r.avail_base()), (1, false, 1));
        r.push_used(&mem, c.id, 5, c.slots).unwrap();
        let f: u16 = mem
            .read_obj::<Le16>(GuestAddress(0x1000 + 16 * 3 + 14))
            .unwrap()
            .into();
        assert_eq!(f, F_AVAIL | F_USED);
        assert_eq!((r.used, r.used_wrap), (1, false));
        // Slot 1 still holds lap-1 leftovers (zero here): not available.
        assert_eq!(r.available(&mem).unwrap(), None);
        assert_eq!(used_flags(false), 0);
    }
}
