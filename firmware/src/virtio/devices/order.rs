//! The byte order of a device's own fields (request headers, configuration
//! space): little-endian from virtio 1.0 on, the guest's order (big-endian
//! on s390) for a legacy (revision 0) device.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Virtio 1 (revisions 1 and 2).
    Little,
    /// Legacy (revision 0): the guest's own, big-endian.
    Big,
}

impl Order {
    pub fn for_revision(revision: u8) -> Self {
        if revision == 0 {
            Order::Big
        } else {
            Order::Little
        }
    }

    pub fn u16(self, b: &[u8]) -> u16 {
        let a = [b[0], b[1]];
        match self {
            Order::Little => u16::from_le_bytes(a),
            Order::Big => u16::from_be_bytes(a),
        }
    }

    pub fn u32(self, b: &[u8]) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        match self {
            Order::Little => u32::from_le_bytes(a),
            Order::Big => u32::from_be_bytes(a),
        }
    }

    pub fn u64(self, b: &[u8]) -> u64 {
        let mut a = [0; 8];
        a.copy_from_slice(&b[..8]);
        match self {
            Order::Little => u64::from_le_bytes(a),
            Order::Big => u64::from_be_bytes(a),
        }
    }

    pub fn put32(self, v: u32) -> [u8; 4] {
        match self {
            Order::Little => v.to_le_bytes(),
            Order::Big => v.to_be_bytes(),
        }
    }

    pub fn put64(self, v: u64) -> [u8; 8] {
        match self {
            Order::Little => v.to_le_bytes(),
            Order::Big => v.to_be_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_orders() {
        let b = [1u8, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(Order::Little.u16(&b), 0x0201);
        assert_eq!(Order::Big.u32(&b), 0x0102_0304);
        assert_eq!(Order::Little.u64(&b), 0x0807_0605_0403_0201);
        assert_eq!(Order::Big.put32(1), [0, 0, 0, 1]);
        assert_eq!(Order::Little.put64(1)[0], 1);
        assert_eq!(Order::for_revision(0), Order::Big);
        assert_eq!(Order::for_revision(2), Order::Little);
    }
}
