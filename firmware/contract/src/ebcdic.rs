//! EBCDIC for the printable ASCII range: line-mode console text and STSI
//! strings.
//!
//! Two code pages differ in five printable characters. z/VM's console reads
//! code page 037; an LPAR's operator console and QEMU's line-mode console
//! (`sclplmconsole`, whose guest-to-host table is code page 500 for every
//! printable character) read code page 500. Written in the wrong one,
//! `Bail out!` arrives as `Bail out]`.

/// The code pages the consoles we know read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodePage {
    /// z/VM.
    Cp037,
    /// QEMU's line-mode console, LPAR.
    Cp500,
}

/// The five printable characters whose codes differ: (ASCII, code page
/// 037, code page 500).
const CP500_DIFFERS: [(u8, u8, u8); 5] = [
    (b'!', 0x5a, 0x4f),
    (b'[', 0xba, 0x4a),
    (b']', 0xbb, 0x5a),
    (b'^', 0xb0, 0x5f),
    (b'|', 0x4f, 0xbb),
];

/// Code page 037 code of ASCII 0x20..=0x7e.
const PRINTABLE: [u8; 95] = [
    0x40, 0x5a, 0x7f, 0x7b, 0x5b, 0x6c, 0x50, 0x7d, 0x4d, 0x5d, 0x5c, 0x4e, 0x6b, 0x60, 0x4b,
    0x61, // ' '../
    0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0x7a, 0x5e, 0x4c, 0x7e, 0x6e,
    0x6f, // 0..?
    0x7c, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5,
    0xd6, // @..O
    0xd7, 0xd8, 0xd9, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xba, 0xe0, 0xbb, 0xb0,
    0x6d, // P.._
    0x79, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x91, 0x92, 0x93, 0x94, 0x95,
    0x96, // `..o
    0x97, 0x98, 0x99, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xc0, 0x4f, 0xd0,
    0xa1, // p..~
];

const QUESTION: u8 = 0x6f;

/// `ascii` in code page `cp`; `?` for anything but printable ASCII.
pub fn encode(cp: CodePage, ascii: u8) -> u8 {
    if cp == CodePage::Cp500 {
        if let Some(&(_, _, e)) = CP500_DIFFERS.iter().find(|(a, _, _)| *a == ascii) {
            return e;
        }
    }
    match ascii {
        0x20..=0x7e => PRINTABLE[usize::from(ascii - 0x20)],
        _ => QUESTION,
    }
}

/// ASCII for an EBCDIC byte of code page 037, `?` for anything outside the
/// printable set.
pub fn to_ascii(ebcdic: u8) -> u8 {
    PRINTABLE
        .iter()
        .position(|&e| e == ebcdic)
        .map_or(b'?', |i| i as u8 + 0x20)
}

/// Decodes an EBCDIC field into `out`, dropping trailing blanks.
pub fn decode_field<'a>(field: &[u8], out: &'a mut [u8]) -> &'a str {
    let n = field.len().min(out.len());
    for (o, &e) in out.iter_mut().zip(&field[..n]) {
        *o = to_ascii(e);
    }
    let len = out[..n]
        .iter()
        .rposition(|&c| c != b' ')
        .map_or(0, |p| p + 1);
    // Only printable ASCII was written.
    core::str::from_utf8(&out[..len]).unwrap_or("")
}

/// A name of up to 16 characters from an EBCDIC field (STSI), kept
/// without the heap: the host is identified before there is one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Name {
    buf: [u8; 16],
    len: u8,
}

impl Name {
    pub fn decode(field: &[u8]) -> Name {
        let mut n = Name::default();
        n.len = decode_field(field, &mut n.buf).len() as u8;
        n
    }

    pub fn as_str(&self) -> &str {
        // decode_field writes printable ASCII only.
        core::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_printable() {
        for c in 0x20u8..=0x7e {
            assert_eq!(to_ascii(encode(CodePage::Cp037, c)), c, "{}", c as char);
        }
        assert_eq!(encode(CodePage::Cp037, b'Q'), 0xd8);
        assert_eq!(encode(CodePage::Cp037, b'z'), 0xa9);
        assert_eq!(encode(CodePage::Cp037, b'\n'), QUESTION);
    }

    /// QEMU's line-mode console output table (EBCDIC to ASCII) for the codes
    /// of printable characters in either code page, as its
    /// include/hw/s390x/ebcdic.h has it (7.2 to 10.2): code page 500.
    const QEMU_LINE_MODE: [(u8, u8); 13] = [
        (0x4a, b'['),
        (0x4f, b'!'),
        (0x5a, b']'),
        (0x5f, b'^'),
        (0xbb, b'|'),
        (0xba, 0xaa), // not ASCII: cp037's '[' is lost
        (0xb0, 0x9b), // not ASCII: cp037's '^' is lost
        (0x40, b' '),
        (0x7f, b'"'),
        (0xc1, b'A'),
        (0xa9, b'z'),
        (0xf0, b'0'),
        (0xe0, b'\\'),
    ];

    fn qemu_reads(e: u8) -> Option<u8> {
        QEMU_LINE_MODE
            .iter()
            .find(|(c, _)| *c == e)
            .map(|(_, a)| *a)
    }

    #[test]
    fn qemu_line_mode_reads_code_page_500() {
        // What the runner must see of a bail-out and of TAP's YAML.
        for c in b"Bail out! |[]^" {
            let e = encode(CodePage::Cp500, *c);
            if let Some(a) = qemu_reads(e) {
                assert_eq!(a, *c, "{} written as {:#x}", *c as char, e);
            }
        }
        // Code page 037 is what garbled it.
        assert_eq!(qemu_reads(encode(CodePage::Cp037, b'!')), Some(b']'));
        assert_eq!(qemu_reads(encode(CodePage::Cp037, b'|')), Some(b'!'));
        for (a, e037, e500) in CP500_DIFFERS {
            assert_eq!(encode(CodePage::Cp037, a), e037);
            assert_eq!(encode(CodePage::Cp500, a), e500);
            assert_eq!(qemu_reads(e500), Some(a));
        }
        // Everything else is the same in both.
        for c in 0x20u8..=0x7e {
            if !CP500_DIFFERS.iter().any(|(a, _, _)| *a == c) {
                assert_eq!(encode(CodePage::Cp500, c), encode(CodePage::Cp037, c));
            }
        }
    }

    #[test]
    fn fields() {
        let kvm: [u8; 16] = [
            0xd2, 0xe5, 0xd4, 0x61, 0xd3, 0x89, 0x95, 0xa4, 0xa7, 0x40, 0x40, 0x40, 0x40, 0x40,
            0x40, 0x40,
        ];
        let mut buf = [0u8; 16];
        assert_eq!(decode_field(&kvm, &mut buf), "KVM/Linux");
        assert_eq!(decode_field(&[0x40; 8], &mut buf), "");
        assert_eq!(Name::decode(&kvm).as_str(), "KVM/Linux");
        assert_eq!(Name::decode(&[0x40; 16]).as_str(), "");
    }
}
