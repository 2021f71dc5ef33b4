//! Console output collected a line at a time (one SCLP write a line), and
//! what a report that ends the run finds of a line half written.

/// The longest line written at once; longer ones go out in pieces.
pub const LINE_MAX: usize = 512;

#[derive(Clone, Copy)]
pub struct LineBuffer {
    buf: [u8; LINE_MAX],
    len: usize,
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl LineBuffer {
    pub const fn new() -> Self {
        LineBuffer {
            buf: [0; LINE_MAX],
            len: 0,
        }
    }

    /// Appends `bytes`. Each complete (or full) line leaves the buffer
    /// before `emit` writes it: `emit` gets the line and the buffer as an
    /// interrupt arriving during the write would find it (without the line).
    pub fn push(&mut self, bytes: &[u8], mut emit: impl FnMut(&[u8], &LineBuffer)) {
        for &b in bytes {
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' || self.len == LINE_MAX {
                let line = *self;
                self.len = 0;
                emit(&line.buf[..line.len], self);
            }
        }
    }

    /// Takes the unfinished line, if any: a report that ends the run
    /// closes it first, so that its own lines start a line of their own.
    pub fn cut_off(&mut self) -> Option<LineBuffer> {
        let partial = *self;
        self.len = 0;
        (partial.len > 0).then_some(partial)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(buf: &mut LineBuffer, s: &str) -> Vec<String> {
        let mut out = Vec::new();
        buf.push(s.as_bytes(), |l, rest| {
            assert!(
                rest.as_bytes().is_empty(),
                "a line leaves before it is written"
            );
            out.push(String::from_utf8_lossy(l).into_owned());
        });
        out
    }

    #[test]
    fn lines_go_out_whole() {
        let mut b = LineBuffer::new();
        assert!(lines(&mut b, "ok 1 - a").is_empty());
        assert_eq!(lines(&mut b, ".b\nok 2"), ["ok 1 - a.b\n"]);
        assert_eq!(b.as_bytes(), b"ok 2");
        let long = "x".repeat(LINE_MAX + 3);
        assert_eq!(lines(&mut LineBuffer::new(), &long).len(), 1);
    }

    /// A restart interrupt while `ok 6 - pgm.` was being written used to
    /// give `ok 6 - pgm.Bail out! ...`: the report now takes the half line
    /// away first.
    #[test]
    fn a_report_starts_its_own_line() {
        let mut b = LineBuffer::new();
        assert!(lines(&mut b, "ok 6 - pgm.").is_empty());
        let cut = b.cut_off().expect("a half line");
        assert_eq!(cut.as_bytes(), b"ok 6 - pgm.");
        assert_eq!(lines(&mut b, "Bail out! x\n"), ["Bail out! x\n"]);
        assert!(b.cut_off().is_none());
    }
}
