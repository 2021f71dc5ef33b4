//! Channel programs that own what they name: the CCWs and every byte of
//! data they let a device read or store lie in one DMA buffer below 2 GiB.
//!
//! A channel program lets the device store wherever its CCWs point, which
//! is why starting one is unsafe in general. [`ChannelProgram`] keeps the
//! invariant that makes it safe to start: each CCW's data (address and
//! count) or a TIC's target lies inside the program's own buffer. CCWs are
//! kept as offsets and written out, as absolute addresses, by
//! [`ChannelProgram::prepare`].

use super::blocks::{
    Ccw1, CCW_CHAIN_COMMAND, CCW_CHAIN_DATA, CCW_SKIP, CCW_SLI, CMD_NOOP, CMD_TIC,
};
use crate::dma::DmaMemory;
use alloc::vec::Vec;

const CCW_LEN: usize = 8;

/// The CCW flags a program may carry: chaining, suppressed length and
/// skip. The others would let the device reach outside the program (IDA,
/// MIDA: the data area becomes a list of addresses) or leave it running
/// behind our back (suspend, PCI).
const ALLOWED_FLAGS: u8 = CCW_CHAIN_DATA | CCW_CHAIN_COMMAND | CCW_SLI | CCW_SKIP;

fn flags_allowed(flags: u8) -> bool {
    flags & !ALLOWED_FLAGS == 0
}

/// What a CCW names, relative to its program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// `count` bytes of the data area from `offset`.
    Data { offset: usize, count: u16 },
    /// A TIC to CCW `index`.
    Ccw(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    cmd: u8,
    flags: u8,
    target: Target,
}

/// CCWs, then a data area, in one buffer.
pub struct ChannelProgram {
    mem: DmaMemory,
    ccws: Vec<Entry>,
    data_len: usize,
}

/// The CCWs of `entries` as the channel reads them, for a buffer at `base`
/// whose data area starts `data_at` bytes in.
fn encode(entries: &[Entry], base: u32, data_at: usize) -> Vec<[u8; CCW_LEN]> {
    entries
        .iter()
        .map(|e| {
            let (count, offset) = match e.target {
                Target::Data { offset, count } => (count, data_at + offset),
                Target::Ccw(i) => (0, i * CCW_LEN),
            };
            Ccw1::new(e.cmd, e.flags, count, base + offset as u32).to_bytes()
        })
        .collect()
}

const NOOP: Entry = Entry {
    cmd: CMD_NOOP,
    flags: 0,
    target: Target::Data {
        offset: 0,
        count: 0,
    },
};

impl ChannelProgram {
    /// Room for `ccws` CCWs (NOOPs until set) and `data` bytes of data;
    /// None where the buffer would not lie below 2 GiB.
    pub fn new(ccws: usize, data: usize) -> Option<Self> {
        assert!(ccws > 0, "a channel program has at least one CCW");
        let mem = DmaMemory::new(ccws * CCW_LEN + data);
        mem.addr31(mem.len())?;
        Some(ChannelProgram {
            mem,
            ccws: alloc::vec![NOOP; ccws],
            data_len: data,
        })
    }

    fn data_at(&self) -> usize {
        self.ccws.len() * CCW_LEN
    }

    fn base(&self) -> u32 {
        // Checked below 2 GiB (to its end) when made.
        self.mem.addr() as u32
    }

    /// CCW `i`: command `cmd` with `flags` on `count` bytes of the data
    /// area from `offset`.
    pub fn ccw(&mut self, i: usize, cmd: u8, flags: u8, offset: usize, count: u16) {
        assert!(cmd != CMD_TIC, "a TIC names a CCW: use `tic`");
        assert!(
            flags_allowed(flags),
            "only chaining, SLI and skip flags keep a device inside the program"
        );
        assert!(
            offset <= self.data_len && usize::from(count) <= self.data_len - offset,
            "CCW data past the program's data area"
        );
        self.ccws[i] = Entry {
            cmd,
            flags,
            target: Target::Data { offset, count },
        };
    }

    /// CCW `i`: transfer in channel to CCW `to`.
    pub fn tic(&mut self, i: usize, to: usize) {
        assert!(to < self.ccws.len(), "TIC past the program");
        self.ccws[i] = Entry {
            cmd: CMD_TIC,
            flags: 0,
            target: Target::Ccw(to),
        };
    }

    /// Where CCW `i` is (the ORB names CCW 0; a final SCSW names the one
    /// after the last executed).
    pub fn ccw_address(&self, i: usize) -> u32 {
        assert!(i <= self.ccws.len(), "CCW index past the program");
        self.base() + (i * CCW_LEN) as u32
    }

    /// The data area, to fill before the program runs and read after.
    pub fn data(&mut self) -> &mut [u8] {
        let (at, len) = (self.data_at(), self.data_len);
        &mut self.mem.bytes()[at..at + len]
    }

    /// Writes the CCWs into the buffer; returns the channel-program
    /// address for the ORB.
    pub fn prepare(&mut self) -> u32 {
        let ccws = encode(&self.ccws, self.base(), self.data_at());
        for (slot, c) in self.mem.bytes().chunks_exact_mut(CCW_LEN).zip(ccws) {
            slot.copy_from_slice(&c);
        }
        self.base()
    }

    /// Gives the buffer up for good: a device whose program never ended
    /// may still store into it, and then stores into memory nobody reuses.
    /// The program continues in a fresh buffer, its data area zeroed.
    pub fn abandon(&mut self) {
        let fresh = DmaMemory::new(self.mem.len());
        if fresh.addr31(fresh.len()).is_none() {
            // No low memory for a fresh one: the old buffer stays (still
            // ours, never freed) rather than one the channel cannot use.
            return;
        }
        core::mem::forget(core::mem::replace(&mut self.mem, fresh));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::css::blocks::CMD_SENSE_ID;

    /// IDA would make the data area a list of addresses the device stores
    /// to: the program refuses it, and every flag but the four it allows.
    #[test]
    fn flags_that_let_the_device_out_are_refused() {
        // IDA, MIDA, suspend, PCI.
        for bad in [0x04u8, 0x01, 0x02, 0x08] {
            assert!(!flags_allowed(bad), "flag {bad:#x} allowed");
        }
        assert!(flags_allowed(
            CCW_CHAIN_DATA | CCW_CHAIN_COMMAND | CCW_SLI | CCW_SKIP
        ));
    }

    #[test]
    fn ccws_name_their_own_buffer() {
        let entries = [
            Entry {
                cmd: CMD_NOOP,
                flags: CCW_CHAIN_COMMAND,
                ..NOOP
            },
            Entry {
                cmd: CMD_TIC,
                flags: 0,
                target: Target::Ccw(2),
            },
            Entry {
                cmd: CMD_SENSE_ID,
                flags: CCW_SLI,
                target: Target::Data {
                    offset: 8,
                    count: 256,
                },
            },
        ];
        let c = encode(&entries, 0x4000, 24);
        assert_eq!(c[0], [CMD_NOOP, CCW_CHAIN_COMMAND, 0, 0, 0, 0, 0x40, 0x18]);
        assert_eq!(c[1], [CMD_TIC, 0, 0, 0, 0, 0, 0x40, 0x10]);
        assert_eq!(c[2], [CMD_SENSE_ID, CCW_SLI, 1, 0, 0, 0, 0x40, 0x20]);
    }

    #[test]
    fn no_program_above_2_gib() {
        // Host heaps usually lie above 2 GiB; a program may only be made
        // where its whole buffer is below.
        if let Some(p) = ChannelProgram::new(1, 8) {
            assert!(u64::from(p.ccw_address(1)) + 8 <= 1 << 31);
        }
    }
}
