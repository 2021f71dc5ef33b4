//! Small ufmt helpers: hex numbers and a growable string sink.

use alloc::string::String;
use ufmt::{uDisplay, uWrite, Formatter};

/// `0x`-prefixed lowercase hex, no padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hex(pub u64);

/// Any ufmt-displayable value as a String, through a trait object (for
/// error values of different types in one closure).
pub trait ToText {
    fn text(&self) -> String;
}

impl<T: uDisplay> ToText for T {
    fn text(&self) -> String {
        crate::format!("{}", *self)
    }
}

/// Bytes as printable ASCII: anything else (control characters such as
/// ESC or CR, non-ASCII) and the backslash become `\xNN` escapes, so text
/// from outside can never steer the console or break a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Escaped<'a>(pub &'a [u8]);

impl uDisplay for Escaped<'_> {
    fn fmt<W: uWrite + ?Sized>(&self, f: &mut Formatter<'_, W>) -> Result<(), W::Error> {
        let mut rest = self.0;
        while !rest.is_empty() {
            let plain = rest
                .iter()
                .position(|&b| !(0x20..0x7f).contains(&b) || b == b'\\')
                .unwrap_or(rest.len());
            // Printable ASCII only, so valid UTF-8.
            f.write_str(core::str::from_utf8(&rest[..plain]).unwrap_or("?"))?;
            if let Some(&b) = rest.get(plain) {
                ufmt::uwrite!(f, "\\x{}", HexW(b.into(), 2))?;
            }
            rest = &rest[(plain + 1).min(rest.len())..];
        }
        Ok(())
    }
}

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

/// A ufmt sink of fixed size that needs no heap (for reports made before
/// there is one); what does not fit is cut, at a character boundary.
pub struct FixedBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Default for FixedBuf<N> {
    fn default() -> Self {
        FixedBuf {
            buf: [0; N],
            len: 0,
        }
    }
}

impl<const N: usize> FixedBuf<N> {
    pub fn as_str(&self) -> &str {
        // Only whole characters are copied in.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl<const N: usize> uWrite for FixedBuf<N> {
    type Error = core::convert::Infallible;

    fn write_str(&mut self, s: &str) -> Result<(), Self::Error> {
        let mut n = s.len().min(N - self.len);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// `format!` into a [`FixedBuf`] of `N` bytes: no heap.
#[macro_export]
macro_rules! format_fixed {
    ($n:literal, $($arg:tt)*) => {{
        let mut s = $crate::fmt::FixedBuf::<$n>::default();
        let _ = ufmt::uwrite!(s, $($arg)*);
        s
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_buffers_cut_at_characters() {
        assert_eq!(crate::format_fixed!(16, "a{}b", 12u32).as_str(), "a12b");
        assert_eq!(crate::format_fixed!(4, "abcdef").as_str(), "abcd");
        assert_eq!(crate::format_fixed!(3, "ab\u{e9}").as_str(), "ab");
    }

    #[test]
    fn escapes() {
        assert_eq!(crate::format!("{}", Escaped(b"a=b c")), "a=b c");
        assert_eq!(
            crate::format!("{}", Escaped(b"x\x1b[2J\r\\\xff")),
            "x\\x1b[2J\\x0d\\x5c\\xff"
        );
    }

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
