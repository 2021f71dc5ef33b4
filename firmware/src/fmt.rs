//! Small ufmt helpers: hex numbers and a growable string sink.

use alloc::string::String;
use ufmt::{uDisplay, uWrite, Formatter};

/// `0x`-prefixed lowercase hex, no padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hex(pub u64);

/// Zero-padded lowercase hex of a fixed number of digits, no prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HexW(pub u64, pub u8);

fn hex_digits(mut v: u64, min: usize, out: &mut [u8; 16]) -> usize {
    let mut n = 0;
    while n < min || v != 0 {
        out[15 - n] = b"0123456789abcdef"[(v & 0xf) as usize];
        v >>= 4;
        n += 1;
        if n == 16 {
            break;
        }
    }
    n
}

impl uDisplay for Hex {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        let mut buf = [0u8; 16];
        let n = hex_digits(self.0, 1, &mut buf);
        f.write_str("0x")?;
        // The digits are ASCII by construction.
        f.write_str(core::str::from_utf8(&buf[16 - n..]).unwrap_or("?"))
    }
}

impl uDisplay for HexW {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        let mut buf = [0u8; 16];
        let n = hex_digits(self.0, usize::from(self.1).min(16), &mut buf);
        f.write_str(core::str::from_utf8(&buf[16 - n..]).unwrap_or("?"))
    }
}

/// A `String` that ufmt can write into.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct StrBuf(pub String);

impl uWrite for StrBuf {
    type Error = core::convert::Infallible;
    fn write_str(&mut self, s: &str) -> Result<(), Self::Error> {
        self.0.push_str(s);
        Ok(())
    }
}

/// Formats with ufmt into a fresh `String`.
#[macro_export]
macro_rules! format {
    ($($arg:tt)*) => {{
        let mut s = $crate::fmt::StrBuf::default();
        let _ = ufmt::uwrite!(s, $($arg)*);
        s.0
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_forms() {
        assert_eq!(crate::format!("{}", Hex(0)), "0x0");
        assert_eq!(crate::format!("{}", Hex(0x2401)), "0x2401");
        assert_eq!(crate::format!("{}", Hex(u64::MAX)), "0xffffffffffffffff");
        assert_eq!(crate::format!("{}", HexW(0x1a, 4)), "001a");
        assert_eq!(
            crate::format!("{}", HexW(0x180000000, 16)),
            "0000000180000000"
        );
    }
}
