//! Numbers and sizes as the command line writes them: one reading for
//! every option module (a leaf: it uses no other module of the crate).

use alloc::string::String;

/// Digits of `radix` only: no sign, no blanks (`str::parse` takes a `+`).
pub fn digits(v: &str, radix: u32) -> Option<u64> {
    if v.is_empty() || !v.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(v, radix).ok()
}

/// `64M`, `4K`, `1G` or bytes; not 0.
pub fn size_value(v: &str) -> Option<u64> {
    let (num, shift) = match v.as_bytes().last()? {
        b'K' => (&v[..v.len() - 1], 10),
        b'M' => (&v[..v.len() - 1], 20),
        b'G' => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    digits(num, 10)?.checked_mul(1 << shift).filter(|&b| b > 0)
}

/// The shortest of `NG`, `NM`, `NK` or bytes that [`size_value`] reads back.
pub fn size_text(bytes: u64) -> String {
    match bytes {
        0 => String::from("0"),
        b if b % (1 << 30) == 0 => crate::format!("{}G", b >> 30),
        b if b % (1 << 20) == 0 => crate::format!("{}M", b >> 20),
        b if b % (1 << 10) == 0 => crate::format!("{}K", b >> 10),
        b => crate::format!("{}", b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_digits() {
        assert_eq!(digits("0x10", 16), None);
        assert_eq!(digits("+1", 10), None);
        assert_eq!(digits("ff", 16), Some(255));
        for (text, bytes) in [
            ("64M", 64 << 20),
            ("4K", 4096),
            ("1G", 1 << 30),
            ("4097", 4097),
        ] {
            assert_eq!(size_value(text), Some(bytes));
            assert_eq!(size_text(bytes), text);
        }
        for bad in ["", "0", "0M", "M", "-1K", "1T", "99999999999G"] {
            assert_eq!(size_value(bad), None, "{bad}");
        }
        assert_eq!(size_text(0), "0");
    }
}
