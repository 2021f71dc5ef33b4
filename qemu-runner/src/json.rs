//! Just enough JSON for QMP: string escaping for the commands we send, and
//! a small, bounded parser for the replies and events QEMU sends back.
//!
//! A JSON crate would do, but QMP needs a dozen lines of encoding and a
//! small reader; this keeps the runner's dependencies few. The reader is
//! strict (RFC 8259): whatever it accepts, serde_json accepts with the
//! same value, and the other way round (the property tests check this),
//! except that nesting is limited to [`MAX_DEPTH`] levels (serde_json: 128).

use std::fmt::Write as _;

/// A parsed JSON value. Numbers are kept as their text (QMP numbers we look
/// at are small integers; nothing is computed with them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Value>),
    /// Members in the order received (duplicates kept; `get` finds the first).
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// `s` as a JSON string literal, quotes included.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            // Other control characters, and DEL and the Unicode line
            // separators that some readers choke on.
            c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON object of string members, in the order given: `{"a": "b", ...}`.
pub fn string_object<'a>(members: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let body: Vec<String> = members
        .into_iter()
        .map(|(k, v)| format!("{}: {}", string(k), string(v)))
        .collect();
    format!("{{{}}}", body.join(", "))
}

/// Nesting deeper than this is refused (QMP replies nest a few levels);
/// it also bounds the parser's recursion.
pub const MAX_DEPTH: usize = 64;

/// Parses one JSON text; surrounding whitespace is allowed, anything else
/// after the value is an error.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
    };
    let v = p.value(0)?;
    p.ws();
    if p.pos != p.s.len() {
        return Err(format!("trailing characters at offset {}", p.pos));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at offset {}", self.pos))
    }

    fn ws(&mut self) {
        while matches!(self.s.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.s.get(self.pos) == Some(&b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn literal(&mut self, word: &str, v: Value) -> Result<Value, String> {
        if self.s[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(v)
        } else {
            self.err("unknown literal")
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return self.err("nested too deeply");
        }
        self.ws();
        match self.s.get(self.pos) {
            None => self.err("unexpected end"),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => self.err("unexpected character"),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, String> {
        self.pos += 1; // {
        let mut members = Vec::new();
        self.ws();
        if self.eat(b'}') {
            return Ok(Value::Object(members));
        }
        loop {
            self.ws();
            if self.s.get(self.pos) != Some(&b'"') {
                return self.err("expected a member name");
            }
            let key = self.string()?;
            self.ws();
            if !self.eat(b':') {
                return self.err("expected ':'");
            }
            let v = self.value(depth + 1)?;
            members.push((key, v));
            self.ws();
            if self.eat(b',') {
                continue;
            }
            if self.eat(b'}') {
                return Ok(Value::Object(members));
            }
            return self.err("expected ',' or '}'");
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, String> {
        self.pos += 1; // [
        let mut items = Vec::new();
        self.ws();
        if self.eat(b']') {
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth + 1)?);
            self.ws();
            if self.eat(b',') {
                continue;
            }
            if self.eat(b']') {
                return Ok(Value::Array(items));
            }
            return self.err("expected ',' or ']'");
        }
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.pos;
        self.eat(b'-');
        // JSON has no leading zeros: "0", "0.5", never "01".
        if self.s.get(self.pos) == Some(&b'0')
            && matches!(self.s.get(self.pos + 1), Some(b'0'..=b'9'))
        {
            return self.err("leading zero in a number");
        }
        let digits = |p: &mut Self| {
            let from = p.pos;
            while matches!(p.s.get(p.pos), Some(b'0'..=b'9')) {
                p.pos += 1;
            }
            p.pos > from
        };
        if !digits(self) {
            return self.err("expected digits");
        }
        if self.eat(b'.') && !digits(self) {
            return self.err("expected digits after '.'");
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if !digits(self) {
                return self.err("expected exponent digits");
            }
        }
        // Only ASCII was consumed.
        let text = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
        // As serde_json: a number no f64 can hold is refused.
        if text.parse::<f64>().map_or(true, |f| f.is_infinite()) {
            return self.err("number out of range");
        }
        Ok(Value::Number(text))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let Some(h) = self.s.get(self.pos..self.pos + 4) else {
            return self.err("short \\u escape");
        };
        // Exactly four hex digits: from_str_radix alone would take "+041".
        if !h.iter().all(u8::is_ascii_hexdigit) {
            return self.err("bad \\u escape");
        }
        let v = h
            .iter()
            .fold(0, |v, &d| v << 4 | (d as char).to_digit(16).unwrap_or(0));
        self.pos += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, String> {
        self.pos += 1; // "
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.s.get(self.pos) else {
                return self.err("unterminated string");
            };
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.pos) else {
                        return self.err("unterminated escape");
                    };
                    self.pos += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return self.err("unknown escape"),
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                b if b < 0x20 => return self.err("control character in string"),
                b => out.push(b),
            }
        }
        // The input is a str and escapes make whole characters: valid UTF-8.
        String::from_utf8(out).or_else(|_| self.err("invalid UTF-8 in string"))
    }

    /// After `\u`: one code unit, or a surrogate pair. A lone surrogate
    /// is no character: an error, as in serde_json.
    fn unicode_escape(&mut self) -> Result<char, String> {
        let hi = self.hex4()?;
        if (0xdc00..0xe000).contains(&hi) {
            return self.err("lone low surrogate in \\u escape");
        }
        if !(0xd800..0xdc00).contains(&hi) {
            return char::from_u32(hi).map_or_else(|| self.err("bad \\u escape"), Ok);
        }
        if !self.s[self.pos..].starts_with(b"\\u") {
            return self.err("lone high surrogate in \\u escape");
        }
        self.pos += 2;
        let lo = self.hex4()?;
        if !(0xdc00..0xe000).contains(&lo) {
            return self.err("high surrogate not followed by a low one");
        }
        let c = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
        char::from_u32(c).map_or_else(|| self.err("bad surrogate pair"), Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    #[test]
    fn escaping() {
        assert_eq!(string("plain fe.0.0001"), "\"plain fe.0.0001\"");
        assert_eq!(string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(string("l1\nl2\r\t"), r#""l1\nl2\r\t""#);
        assert_eq!(
            string("\u{0}\u{1f}\u{7f}\u{8}\u{c}"),
            r#""\u0000\u001f\u007f\b\f""#
        );
        assert_eq!(string("grüße ✓"), "\"grüße ✓\"");
        assert_eq!(string("\u{2028}"), r#""\u2028""#);
        assert_eq!(string(""), "\"\"");
    }

    #[test]
    fn escaping_round_trips() {
        for text in [
            "",
            "a\"b",
            "\\\\",
            "\u{0}\u{1}\u{1f} \u{7f}",
            "tab\tnl\ncr\r",
            "😀 ü \u{2029}",
        ] {
            assert_eq!(parse(&string(text)), Ok(s(text)), "{text:?}");
        }
    }

    #[test]
    fn objects_of_strings() {
        assert_eq!(string_object([]), "{}");
        assert_eq!(
            string_object([("id", "rng1"), ("devno", "fe.0.0007")]),
            r#"{"id": "rng1", "devno": "fe.0.0007"}"#
        );
        assert_eq!(string_object([("k\"", "v\n")]), r#"{"k\"": "v\n"}"#);
    }

    #[test]
    fn parses_qmp_shapes() {
        let greeting = r#"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian"}, "capabilities": ["oob"]}}"#;
        let v = parse(greeting).unwrap();
        let qmp = v.get("QMP").unwrap();
        assert_eq!(qmp.get("capabilities"), Some(&Value::Array(vec![s("oob")])));
        assert_eq!(
            qmp.get("version")
                .and_then(|v| v.get("qemu"))
                .and_then(|q| q.get("major")),
            Some(&Value::Number("7".into()))
        );
        let ev = parse(
            "{\"timestamp\": {\"seconds\": 1, \"microseconds\": -2}, \"event\": \"DEVICE_DELETED\", \
             \"data\": {\"device\": \"rng1\", \"path\": \"/machine/peripheral/rng1\"}}\r\n",
        )
        .unwrap();
        assert_eq!(
            ev.get("event").and_then(Value::as_str),
            Some("DEVICE_DELETED")
        );
        assert_eq!(
            ev.get("data")
                .and_then(|d| d.get("device"))
                .and_then(Value::as_str),
            Some("rng1")
        );
    }

    #[test]
    fn scalars_and_nesting() {
        assert_eq!(parse(" null "), Ok(Value::Null));
        assert_eq!(parse("true"), Ok(Value::Bool(true)));
        assert_eq!(parse("false"), Ok(Value::Bool(false)));
        assert_eq!(parse("-12.5e+3"), Ok(Value::Number("-12.5e+3".into())));
        assert_eq!(parse("0"), Ok(Value::Number("0".into())));
        assert_eq!(
            parse(r#"[1, [], {}, "x", {"a": [true]}]"#),
            Ok(Value::Array(vec![
                Value::Number("1".into()),
                Value::Array(vec![]),
                Value::Object(vec![]),
                s("x"),
                Value::Object(vec![("a".into(), Value::Array(vec![Value::Bool(true)]))]),
            ]))
        );
        assert_eq!(parse(r#""\u00fc\ud83d\ude00\/""#), Ok(s("ü😀/")));
        assert_eq!(parse(r#""\u00FC""#), Ok(s("ü")));
        assert_eq!(parse("-0"), Ok(Value::Number("-0".into())));
        assert_eq!(parse("0.05e-3"), Ok(Value::Number("0.05e-3".into())));
        assert_eq!(parse("1e-400"), Ok(Value::Number("1e-400".into())));
        assert_eq!(Value::Null.get("x"), None);
        assert_eq!(Value::Null.as_str(), None);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in [
            "",
            "{",
            "{\"a\"}",
            "{\"a\": }",
            "{\"a\": 1,}",
            "[1 2]",
            "\"open",
            "\"bad \\x escape\"",
            "\"\\u12\"",
            "tru",
            "nul",
            "-",
            "1.",
            "1e",
            "{} {}",
            "\"ctl \u{1} char\"",
            "{1: 2}",
            "@",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    /// RFC 8259 leniencies the reader had: each was accepted before.
    #[test]
    fn strict_as_rfc_8259() {
        for (bad, why) in [
            (r#""\u+041""#, "bad \\u escape"),
            (r#""\u-041""#, "bad \\u escape"),
            (r#""\u 041""#, "bad \\u escape"),
            ("01", "leading zero"),
            ("-01", "leading zero"),
            ("[00]", "leading zero"),
            ("{\"a\": 007}", "leading zero"),
            (r#""\ud800""#, "lone high surrogate"),
            (r#""\ud800x""#, "lone high surrogate"),
            (r#""\udc00""#, "lone low surrogate"),
            (r#""\ud800\u0041""#, "not followed by a low one"),
            ("1e400", "out of range"),
            ("-1e309", "out of range"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_depth_bomb_is_refused_at_once() {
        for open in ["[", "{\"a\":", "[{\"b\":"] {
            let bomb = open.repeat(1_000_000);
            let t = std::time::Instant::now();
            let e = parse(&bomb).unwrap_err();
            assert!(e.contains("nested too deeply"), "{e}");
            assert!(t.elapsed() < std::time::Duration::from_secs(1));
        }
        let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
        assert!(parse(&deep).unwrap_err().contains("deeply"));
        let ok_deep = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(&ok_deep).is_ok());
    }
}
