//! boot/layout.h, read at compile time: the entry code's offsets come from
//! there, and the Rust side asserts (in const items) that its own layout
//! gives the same numbers.

const LAYOUT_H: &[u8] = include_bytes!("../../../boot/layout.h");

/// The value of `#define NAME VALUE` in boot/layout.h. VALUE is a number
/// (decimal or 0x hex), a name defined there, or a parenthesised sum or
/// difference of such terms. Anything else fails the build.
pub const fn define(name: &str) -> u64 {
    value_in(LAYOUT_H, name.as_bytes())
}

const fn value_in(text: &[u8], name: &[u8]) -> u64 {
    let (start, end) = definition(text, name);
    let mut p = Parser {
        text,
        pos: start,
        end,
    };
    let v = p.expression();
    p.skip_space();
    assert!(
        p.pos == p.end,
        "layout.h: a definition this reader cannot evaluate"
    );
    v
}

/// Where the value of `name`'s definition lies: (start, end) in `text`.
const fn definition(text: &[u8], name: &[u8]) -> (usize, usize) {
    let directive = b"#define";
    let mut line = 0;
    while line < text.len() {
        let mut eol = line;
        while eol < text.len() && text[eol] != b'\n' {
            eol += 1;
        }
        if starts_with(text, line, eol, directive) {
            let mut p = line + directive.len();
            let before = p;
            while p < eol && is_space(text[p]) {
                p += 1;
            }
            if p > before
                && starts_with(text, p, eol, name)
                && (p + name.len() == eol || is_space(text[p + name.len()]))
            {
                return (p + name.len(), eol);
            }
        }
        line = eol + 1;
    }
    panic!("layout.h does not define a name asked for");
}

const fn starts_with(text: &[u8], at: usize, end: usize, s: &[u8]) -> bool {
    if end - at < s.len() {
        return false;
    }
    let mut i = 0;
    while i < s.len() {
        if text[at + i] != s[i] {
            return false;
        }
        i += 1;
    }
    true
}

const fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

const fn is_ident(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphanumeric()
}

struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
    end: usize,
}

impl Parser<'_> {
    const fn skip_space(&mut self) {
        while self.pos < self.end && is_space(self.text[self.pos]) {
            self.pos += 1;
        }
    }

    const fn peek(&mut self) -> u8 {
        self.skip_space();
        if self.pos < self.end {
            self.text[self.pos]
        } else {
            0
        }
    }

    /// term (('+' | '-') term)*, optionally in parentheses.
    const fn expression(&mut self) -> u64 {
        let paren = self.peek() == b'(';
        if paren {
            self.pos += 1;
        }
        let mut v = self.term();
        loop {
            match self.peek() {
                b'+' => {
                    self.pos += 1;
                    v += self.term();
                }
                b'-' => {
                    self.pos += 1;
                    v -= self.term();
                }
                _ => break,
            }
        }
        if paren {
            assert!(self.peek() == b')', "layout.h: unbalanced parenthesis");
            self.pos += 1;
        }
        v
    }

    const fn term(&mut self) -> u64 {
        let c = self.peek();
        if c == b'(' {
            return self.expression();
        }
        assert!(is_ident(c), "layout.h: expected a number or a name");
        let start = self.pos;
        while self.pos < self.end && is_ident(self.text[self.pos]) {
            self.pos += 1;
        }
        if c.is_ascii_digit() {
            number(self.text, start, self.pos)
        } else {
            // A name defined elsewhere in the file.
            let mut name = [0u8; 64];
            let len = self.pos - start;
            assert!(len <= name.len(), "layout.h: name too long");
            let mut i = 0;
            while i < len {
                name[i] = self.text[start + i];
                i += 1;
            }
            let (name, _) = name.split_at(len);
            value_in(self.text, name)
        }
    }
}

/// A decimal or 0x-prefixed hexadecimal number.
const fn number(text: &[u8], start: usize, end: usize) -> u64 {
    let hex = end - start > 2 && text[start] == b'0' && (text[start + 1] | 0x20) == b'x';
    let (mut i, base) = if hex { (start + 2, 16) } else { (start, 10) };
    let mut v = 0u64;
    while i < end {
        let d = match text[i] {
            b @ b'0'..=b'9' => b - b'0',
            b @ b'a'..=b'f' if hex => b - b'a' + 10,
            b @ b'A'..=b'F' if hex => b - b'A' + 10,
            _ => panic!("layout.h: not a number"),
        };
        v = v * base + d as u64;
        i += 1;
    }
    v
}

// The reader itself, on text of our own.
const _: () = {
    let t = b"#define A\t0x10\n#define B_2 (A + 8)\n#define C\t\t(B_2 - A - 2)\n#define AB 7\n";
    assert!(value_in(t, b"A") == 0x10);
    assert!(value_in(t, b"B_2") == 0x18);
    assert!(value_in(t, b"C") == 6);
    assert!(value_in(t, b"AB") == 7);
};
