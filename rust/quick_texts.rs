//! The fast path of `count`, and of `scan` on text records: the texts of a record line, read in one
//! pass over its bytes without building the record, and without allocating once the worker's
//! buffers have grown.
//!
//! [`record::parse_line`], [`TextSpec::for_each_text`] and [`Format::detect`] stay the definition of
//! a line's verdict; this only answers for the lines they accept as a record with texts (or as a
//! text record with its field), and gives up (`None`) on anything else, which the caller then hands
//! to them for the verdict and its message. It reads strict JSON
//! (RFC 8259: no trailing commas, no leading zeros, no raw control characters in strings) and gives up
//! wherever serde_json's answer takes more than the grammar to know: numbers that might be out of
//! `f64` range, escapes of surrogates that are not a pair, objects with many keys. Every
//! object is checked for duplicate keys. A line this accepts is therefore one they accept, with the
//! same texts; tests compare both on random lines.

use std::ops::Range;

use crate::audit::Format;
use crate::record::{self, TextSpec};

/// Objects with more keys than this go to the slow path (duplicate checks here are quadratic).
const MAX_QUICK_KEYS: usize = 64;
/// Numbers with more digits before the point (plus a positive exponent) than this go to the slow
/// path: below it, a number is far inside `f64` range, so serde_json reads it without an error.
const MAX_QUICK_MAGNITUDE: usize = 300;

/// The fast path's buffers, kept by a worker from line to line.
#[derive(Default)]
pub struct QuickTexts {
    /// The strings of the line that have escapes, unescaped, one after the other.
    unescaped: String,
    /// The texts found, in order.
    texts: Vec<Span>,
    /// The keys of the objects being read, innermost last.
    keys: Vec<Span>,
}

/// Where a string's value is: a part of the line (no escapes), or of the unescaped strings.
#[derive(Clone, Debug)]
enum Span {
    Line(Range<usize>),
    Unescaped(Range<usize>),
}

impl Span {
    fn value<'a>(&self, line: &'a str, unescaped: &'a str) -> &'a str {
        match self {
            Span::Line(range) => &line[range.clone()],
            Span::Unescaped(range) => &unescaped[range.clone()],
        }
    }
}

impl QuickTexts {
    /// The texts that `parse_line` and `spec.for_each_text` would give for the line, in the same
    /// order, if they would give a record and texts; `None` otherwise.
    pub fn line_texts<'a>(
        &'a mut self,
        line_number: u64,
        line: &'a [u8],
        spec: &TextSpec,
    ) -> Option<impl Iterator<Item = &'a str> + 'a> {
        let (text, ()) = self.read(line_number, line, spec, |reader| reader.choose_texts())?;
        let unescaped = self.unescaped.as_str();
        Some(self.texts.iter().map(move |span| span.value(text, unescaped)))
    }

    /// The text of a line that `parse_line` would give as a record in the text format
    /// ([`Format::detect`]) whose field `field` (a [`TextSpec::Field`]) is a string; `None` otherwise.
    pub fn text_field<'a>(
        &'a mut self,
        line_number: u64,
        line: &'a [u8],
        field: &TextSpec,
    ) -> Option<&'a str> {
        let (text, span) = self.read(line_number, line, field, |reader| {
            let has = |key: &str| {
                Format::KEYS.iter().position(|k| *k == key).is_some_and(|i| reader.format_keys >> i & 1 == 1)
            };
            (Format::from_keys(has) == Format::Text).then_some(reader.text_field?)
        })?;
        Some(span.value(text, &self.unescaped))
    }

    /// Reads the line for `spec`, then gives what `conclude` makes of the reader at its end, with
    /// the line's text.
    fn read<'l, R>(
        &mut self,
        line_number: u64,
        line: &'l [u8],
        spec: &TextSpec,
        conclude: impl FnOnce(Reader<'l, '_>) -> Option<R>,
    ) -> Option<(&'l str, R)> {
        let line = match line.strip_prefix(record::UTF8_BOM) {
            Some(rest) if line_number == 1 => rest,
            Some(_) => return None,
            None => line,
        };
        let text = simdutf8::basic::from_utf8(line).ok()?;
        self.unescaped.clear();
        self.texts.clear();
        self.keys.clear();
        let mut reader = Reader {
            text,
            bytes: line,
            at: 0,
            spec,
            buffers: self,
            has_texts: false,
            text_field: None,
            prompt: None,
            completion: None,
            format_keys: 0,
        };
        reader.value(Role::Record, 0)?;
        reader.skip_whitespace();
        if reader.at != line.len() {
            return None;
        }
        Some((text, conclude(reader)?))
    }
}

/// Where a value is, as far as the texts are concerned.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The line's value: an object.
    Record,
    /// Anything else: read and checked only.
    Ignore,
    // TextSpec::Auto
    /// `messages`: a list of messages.
    Messages,
    /// An item of `messages`; its `content` counts when it is an object.
    Message,
    /// A message's `content`: a string, or a list of parts.
    Content,
    /// An item of a content list; its `text` counts when it is an object.
    Part,
    /// A part's `text`, counted when it is a string.
    PartText,
    /// The record's `text`, `prompt`, `completion`: counted when they are strings.
    Text,
    Prompt,
    Completion,
    // TextSpec::Field
    /// An object on the field's path, whose key number `n` of the path leads on.
    Path(usize),
    /// The field: a string or a list of strings.
    Field,
    /// An item of the field's list: a string.
    FieldItem,
}

impl Role {
    /// The role of the value under `key` of an object in this role.
    fn child(self, key: &str, spec: &TextSpec) -> Role {
        match (self, spec) {
            (Role::Record, TextSpec::Auto) => match key {
                "messages" => Role::Messages,
                "text" => Role::Text,
                "prompt" => Role::Prompt,
                "completion" => Role::Completion,
                _ => Role::Ignore,
            },
            (Role::Record, TextSpec::Field(_)) => Role::Path(0).child(key, spec),
            (Role::Path(n), TextSpec::Field(path)) if path[n] == key => {
                if n + 1 == path.len() {
                    Role::Field
                } else {
                    Role::Path(n + 1)
                }
            }
            (Role::Message, _) if key == "content" => Role::Content,
            (Role::Part, _) if key == "text" => Role::PartText,
            _ => Role::Ignore,
        }
    }
}

/// Reads one line; every method returns `None` to give up.
struct Reader<'l, 'b> {
    text: &'l str,
    bytes: &'l [u8],
    /// The next byte to read.
    at: usize,
    spec: &'b TextSpec,
    buffers: &'b mut QuickTexts,
    /// `messages` is a list (Auto), or the field is there.
    has_texts: bool,
    /// The record's `text` (Auto), or the field (Field), when it is a string.
    text_field: Option<Span>,
    prompt: Option<Span>,
    completion: Option<Span>,
    /// The record's keys among [`Format::KEYS`], a bit each.
    format_keys: u8,
}

impl Reader<'_, '_> {
    /// `TextSpec::for_each_text`'s choice of texts, left in `buffers.texts`; `None` when it finds none.
    fn choose_texts(self) -> Option<()> {
        if self.has_texts {
            return Some(());
        }
        if let TextSpec::Field(_) = self.spec {
            return None;
        }
        let texts = &mut self.buffers.texts;
        texts.clear();
        match self.text_field {
            Some(text) => texts.push(text),
            None => texts.extend(self.prompt.into_iter().chain(self.completion)),
        }
        (!texts.is_empty()).then_some(())
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// Skips whitespace, then reads one byte.
    fn next_token(&mut self) -> Option<u8> {
        self.skip_whitespace();
        let byte = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    /// Reads a value in `role`, at `depth` arrays and objects deep.
    fn value(&mut self, role: Role, depth: usize) -> Option<()> {
        match self.next_token()? {
            b'{' => self.object(role, depth + 1),
            b'[' => self.array(role, depth + 1),
            b'"' => {
                let string = self.string()?;
                self.found_string(role, string)
            }
            b't' => self.literal(b"rue", role),
            b'f' => self.literal(b"alse", role),
            b'n' => self.literal(b"ull", role),
            b'-' | b'0'..=b'9' => {
                self.at -= 1;
                self.number()?;
                scalar(role)
            }
            _ => None,
        }
    }

    /// A string in `role`.
    fn found_string(&mut self, role: Role, string: Span) -> Option<()> {
        match role {
            Role::Record | Role::Messages => return None,
            Role::Content | Role::PartText | Role::FieldItem => self.buffers.texts.push(string),
            Role::Field => {
                self.has_texts = true;
                self.text_field = Some(string.clone());
                self.buffers.texts.push(string);
            }
            Role::Text => self.text_field = Some(string),
            Role::Prompt => self.prompt = Some(string),
            Role::Completion => self.completion = Some(string),
            Role::Ignore | Role::Message | Role::Part | Role::Path(_) => {}
        }
        Some(())
    }

    /// The rest of `true`, `false` or `null`, after its first letter.
    fn literal(&mut self, rest: &[u8], role: Role) -> Option<()> {
        if !self.bytes[self.at..].starts_with(rest) {
            return None;
        }
        self.at += rest.len();
        scalar(role)
    }

    /// After `{`.
    fn object(&mut self, role: Role, depth: usize) -> Option<()> {
        if depth > record::MAX_DEPTH || matches!(role, Role::Messages | Role::Field | Role::FieldItem) {
            return None;
        }
        let first = self.buffers.keys.len();
        self.skip_whitespace();
        if self.bytes.get(self.at) == Some(&b'}') {
            self.at += 1;
            return Some(());
        }
        loop {
            if self.next_token()? != b'"' {
                return None;
            }
            let key = self.string()?;
            let keys = &self.buffers.keys[first..];
            let name = self.resolve(&key);
            if keys.len() >= MAX_QUICK_KEYS || keys.iter().any(|k| self.resolve(k) == name) {
                return None;
            }
            let format_key =
                if role == Role::Record { Format::KEYS.iter().position(|k| *k == name) } else { None };
            let child = role.child(name, self.spec);
            if let Some(i) = format_key {
                self.format_keys |= 1 << i;
            }
            self.buffers.keys.push(key);
            if self.next_token()? != b':' {
                return None;
            }
            self.value(child, depth)?;
            match self.next_token()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
        self.buffers.keys.truncate(first);
        Some(())
    }

    /// After `[`.
    fn array(&mut self, role: Role, depth: usize) -> Option<()> {
        let item = match role {
            Role::Record | Role::FieldItem => return None,
            _ if depth > record::MAX_DEPTH => return None,
            Role::Messages => Role::Message,
            Role::Content => Role::Part,
            Role::Field => Role::FieldItem,
            _ => Role::Ignore,
        };
        if matches!(role, Role::Messages | Role::Field) {
            self.has_texts = true;
        }
        self.skip_whitespace();
        if self.bytes.get(self.at) == Some(&b']') {
            self.at += 1;
            return Some(());
        }
        loop {
            self.value(item, depth)?;
            match self.next_token()? {
                b',' => continue,
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    /// A number, at its first byte: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, within the
    /// magnitude that serde_json reads without a range error.
    fn number(&mut self) -> Option<()> {
        if self.bytes[self.at] == b'-' {
            self.at += 1;
        }
        let whole_digits = match self.bytes.get(self.at)? {
            b'0' => {
                self.at += 1;
                1
            }
            b'1'..=b'9' => self.digits(),
            _ => return None,
        };
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        let mut magnitude = whole_digits;
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            let sign = self.bytes.get(self.at).copied();
            if let Some(b'+' | b'-') = sign {
                self.at += 1;
            }
            let start = self.at;
            if !(1..=3).contains(&self.digits()) {
                return None;
            }
            if sign != Some(b'-') {
                magnitude += self.text[start..self.at].parse::<usize>().ok()?;
            }
        }
        (magnitude <= MAX_QUICK_MAGNITUDE).then_some(())
    }

    /// Skips ASCII digits; how many.
    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.bytes.get(self.at) {
            self.at += 1;
        }
        self.at - start
    }

    /// After a string's opening quote: its value.
    fn string(&mut self) -> Option<Span> {
        let start = self.at;
        let mut at = special_byte(self.bytes, start)?;
        if self.bytes[at] == b'"' {
            self.at = at + 1;
            return Some(Span::Line(start..at));
        }
        let unescaped = &mut self.buffers.unescaped;
        let from = unescaped.len();
        let mut run = start;
        loop {
            match self.bytes[at] {
                b'"' => {
                    unescaped.push_str(&self.text[run..at]);
                    self.at = at + 1;
                    return Some(Span::Unescaped(from..unescaped.len()));
                }
                b'\\' => {
                    unescaped.push_str(&self.text[run..at]);
                    let (char, len) = escape(&self.bytes[at..])?;
                    unescaped.push(char);
                    run = at + len;
                }
                // A raw control character.
                _ => return None,
            }
            at = special_byte(self.bytes, run)?;
        }
    }

    fn resolve(&self, span: &Span) -> &str {
        span.value(self.text, &self.buffers.unescaped)
    }
}

/// A number, boolean or null in `role`.
fn scalar(role: Role) -> Option<()> {
    match role {
        Role::Record | Role::Messages | Role::Field | Role::FieldItem => None,
        _ => Some(()),
    }
}

/// Whether a byte ends a run of plain string content: a quote, a backslash or a control character.
fn is_special(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}

/// The first quote, backslash or control character at or after `at`.
fn special_byte(bytes: &[u8], mut at: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    while let Some(chunk) = bytes.get(at..at + 16) {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of every x86_64 CPU, and the load reads the 16 bytes of `chunk`.
        let found = unsafe {
            let x = _mm_loadu_si128(chunk.as_ptr().cast());
            let quote = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\\' as i8));
            // Below 0x20 exactly when the unsigned maximum with 0x1F is 0x1F.
            let below_space = _mm_cmpeq_epi8(_mm_max_epu8(x, _mm_set1_epi8(0x1F)), _mm_set1_epi8(0x1F));
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), below_space))
        };
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize);
        }
        at += 16;
    }
    Some(at + bytes[at..].iter().position(|&byte| is_special(byte))?)
}

/// The character of the escape at the start of `bytes` and the escape's length; `None` for an
/// invalid escape, and for surrogate escapes other than a high-low pair.
fn escape(bytes: &[u8]) -> Option<(char, usize)> {
    let char = match *bytes.get(1)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let code = hex4(bytes.get(2..6)?)?;
            return match code {
                0xD800..=0xDBFF => {
                    let low = match bytes.get(6..12)? {
                        [b'\\', b'u', hex @ ..] => hex4(hex)?,
                        _ => return None,
                    };
                    if !(0xDC00..=0xDFFF).contains(&low) {
                        return None;
                    }
                    let code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                    Some((char::from_u32(code)?, 12))
                }
                _ => Some((char::from_u32(code)?, 6)),
            };
        }
        _ => return None,
    };
    Some((char, 2))
}

/// Four hexadecimal digits.
fn hex4(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0, |value, &digit| Some(value << 4 | (digit as char).to_digit(16)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{parse_line, Parsed};

    /// The texts of the slow path, when it gives a record with texts.
    fn slow_texts(line_number: u64, line: &[u8], spec: &TextSpec) -> Option<Vec<String>> {
        let Parsed::Record(record) = parse_line(line_number, line) else { return None };
        let mut texts = Vec::new();
        spec.for_each_text(&record, |t| texts.push(t.to_string())).ok()?;
        Some(texts)
    }

    /// Checks that the fast path, when it answers, agrees with the slow one; true when it answered.
    #[track_caller]
    fn check(line_number: u64, line: &[u8], spec: &TextSpec) -> bool {
        let fast = fast_texts(line_number, line, spec);
        if fast.is_some() {
            let slow = slow_texts(line_number, line, spec);
            assert_eq!(fast, slow, "{spec:?} on line {line_number} {:?}", String::from_utf8_lossy(line));
        }
        fast.is_some()
    }

    fn fast_texts(line_number: u64, line: &[u8], spec: &TextSpec) -> Option<Vec<String>> {
        QuickTexts::default().line_texts(line_number, line, spec).map(|t| t.map(String::from).collect())
    }

    fn specs() -> [TextSpec; 4] {
        [
            TextSpec::Auto,
            TextSpec::parse(Some("text")),
            TextSpec::parse(Some("meta.body")),
            TextSpec::parse(Some("messages")),
        ]
    }

    #[test]
    fn common_records_take_the_fast_path() {
        let auto = TextSpec::Auto;
        for line in [
            r#"{"text": "hello"}"#,
            r#"{"id": 3, "text": "a\nb \u00e9 \ud83d\ude00", "meta": {"x": [1, 2.5, null, true]}}"#,
            r#"{"prompt": "p", "completion": "c"}"#,
            r#"{"completion": "c", "x": "y"}"#,
            r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [{"type": "text", "text": "yo"}, {"type": "image"}]}]}"#,
            r#"{"messages": [], "text": "ignored"}"#,
            r#"{"text": 3, "prompt": "p"}"#,
        ] {
            assert!(check(1, line.as_bytes(), &auto), "{line}");
        }
        assert!(check(1, b"\xEF\xBB\xBF{\"text\": \"a\"}", &auto));
        assert!(check(5, br#"{"meta": {"body": ["a", "b"]}}"#, &TextSpec::parse(Some("meta.body"))));
    }

    #[test]
    fn other_lines_go_to_the_slow_path() {
        for (line_number, line) in [
            (2, &b"\xEF\xBB\xBF{\"text\": \"a\"}"[..]),
            (1, b""),
            (1, b"  "),
            (1, b"{\"text\": \"a\", \"text\": \"b\"}"),
            (1, br#"{"messages": [{"content": "a", "content": "b"}]}"#),
            (1, br#"{"x": {"k": 1, "\u006b": 2}, "text": "t"}"#),
            (1, br#"{"text": "a"} x"#),
            (1, br#"{"text": "\ud800"}"#),
            (1, br#"{"text": "a", "n": 1e400}"#),
            (1, b"{\"text\": \"\xff\"}"),
            (1, b"[\"text\"]"),
            (1, br#"{"messages": "a"}"#),
            (1, br#"{"x": 1}"#),
            // Valid, but left to the slow path: a large exponent.
            (1, br#"{"text": "a", "n": 1e-5000}"#),
        ] {
            assert!(!check(line_number, line, &TextSpec::Auto), "{:?}", String::from_utf8_lossy(line));
        }
        for line in [r#"{"meta": {"body": 3}}"#, r#"{"meta": {"body": ["a", 1]}}"#, r#"{"meta": 1}"#] {
            assert!(!check(1, line.as_bytes(), &TextSpec::parse(Some("meta.body"))), "{line}");
        }
    }

    /// A random JSON-like line: mostly records with the keys the specs look at (and values of the
    /// shapes they look for, or not), escapes, duplicates and (sometimes) a broken byte or a BOM.
    fn random_line(random: &mut impl FnMut(usize) -> usize) -> Vec<u8> {
        const KEYS: [&str; 14] = [
            "messages",
            "input",
            "preferred_output",
            "content",
            "text",
            "prompt",
            "completion",
            "meta",
            "body",
            "role",
            "a",
            "\\u0074ext",
            "te\\nxt",
            "",
        ];
        const SCALARS: [&str; 16] = [
            "\"s\"",
            "\"a\\nb\"",
            "\"\\u00e9\\ud83d\\ude00\"",
            "\"\\/\\b\\f\\r\\t\\\"\\\\\"",
            "\"\\u0000\\u00E9\\uD83D\\uDE00\"",
            "\"\u{301}x\"",
            "1",
            "-0",
            "2.5e3",
            "1E+2",
            "-0.5e-7",
            "123456789012345678901234567890",
            "true",
            "null",
            "false",
            "\"\"",
        ];
        /// Values that serde_json refuses: lone or broken surrogates, numbers out of range or not in
        /// JSON's grammar, bad escapes, a raw control character, trailing commas.
        const INVALID: [&str; 16] = [
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud83d\\u0041\"",
            "\"\\ud83dx\"",
            "\"\\x\"",
            "\"a\u{1}b\"",
            "1e400",
            "01",
            "1.",
            "-",
            ".5",
            "1e",
            "tru",
            "nul",
            "[1,]",
            "{\"a\": 1,}",
        ];
        /// A value; `list` makes it often a list of objects, as `messages` and `content` are.
        fn value(random: &mut dyn FnMut(usize) -> usize, depth: usize, out: &mut String, list: bool) {
            let kind = if depth >= 5 {
                2
            } else if list {
                [1, 1, 0, 2][random(4)]
            } else {
                random(3)
            };
            match kind {
                0 => {
                    out.push('{');
                    for i in 0..random(5) {
                        if i > 0 {
                            out.push_str(", ");
                        }
                        let key = KEYS[random(KEYS.len())];
                        out.push_str(&format!("\"{key}\": "));
                        value(random, depth + 1, out, matches!(key, "messages" | "content" | "body"));
                    }
                    out.push('}');
                }
                1 => {
                    out.push('[');
                    for i in 0..random(4) {
                        if i > 0 {
                            out.push(',');
                        }
                        let item_kind = if list { 0 } else { random(3) };
                        if item_kind == 0 && depth < 5 {
                            out.push_str(&format!("{{\"{}\": ", ["content", "text", "role"][random(3)]));
                            let list = random(2) == 0;
                            value(random, depth + 2, out, list);
                            out.push('}');
                        } else {
                            value(random, depth + 1, out, false);
                        }
                    }
                    out.push(']');
                }
                _ if random(50) == 0 => out.push_str(INVALID[random(INVALID.len())]),
                _ => out.push_str(SCALARS[random(SCALARS.len())]),
            }
        }
        let mut text = String::new();
        let kind = if random(8) == 0 { random(3) } else { 0 };
        if kind == 0 {
            // A record: an object (keys drawn as above) at the top.
            text.push('{');
            for i in 0..1 + random(4) {
                if i > 0 {
                    text.push_str(", ");
                }
                let key = KEYS[random(KEYS.len())];
                text.push_str(&format!("\"{key}\": "));
                value(random, 1, &mut text, matches!(key, "messages" | "content" | "body"));
            }
            text.push('}');
        } else {
            value(random, 0, &mut text, false);
        }
        let mut line = text.into_bytes();
        if random(4) == 0 && !line.is_empty() {
            let at = random(line.len());
            match random(3) {
                0 => {
                    line.remove(at);
                }
                1 => {
                    let bytes = b"{}[]\",:\\ \t\rx0e.-\xff";
                    line.insert(at, bytes[random(bytes.len())]);
                }
                _ => line = [record::UTF8_BOM, &line].concat(),
            }
        }
        line
    }

    #[test]
    fn nesting_is_limited_as_serde_json_limits_it() {
        // The record's object is one level, each list one more.
        let nested =
            |lists: usize| format!(r#"{{"x": {}1{}, "text": "t"}}"#, "[".repeat(lists), "]".repeat(lists));
        let deepest = nested(record::MAX_DEPTH - 1);
        assert!(check(1, deepest.as_bytes(), &TextSpec::Auto));
        let too_deep = nested(record::MAX_DEPTH);
        assert_eq!(fast_texts(1, too_deep.as_bytes(), &TextSpec::Auto), None);
        assert_eq!(slow_texts(1, too_deep.as_bytes(), &TextSpec::Auto), None);
    }

    #[test]
    fn special_bytes_are_found_wherever_they_are() {
        let mut random = crate::testing::xorshift(7);
        for _ in 0..20_000 {
            // Runs of plain bytes of every value that cross the 16-byte steps, and now and then a
            // special byte or a byte next to one.
            let mut bytes = Vec::new();
            for _ in 0..random(80) {
                bytes.push(match random(40) {
                    0 => [b'"', b'\\', 0, 0x1F, 0x20, b'!', b'#', b'[', b']', 0x7F, 0x80, 0xFF][random(12)],
                    _ => match 0x20 + random(0xE0) as u8 {
                        b'"' | b'\\' => b'a',
                        byte => byte,
                    },
                });
            }
            let at = random(bytes.len() + 1);
            let expected = bytes[at..].iter().position(|&b| is_special(b)).map(|p| at + p);
            assert_eq!(special_byte(&bytes, at), expected, "{bytes:?} from {at}");
        }
    }

    #[test]
    fn random_lines_agree_with_the_slow_path() {
        let mut random = crate::testing::xorshift(0x9E37_79B9_7F4A_7C15);
        let specs = specs();
        let mut records = 0;
        let mut quick = QuickTexts::default();
        for _ in 0..40_000 {
            let line = random_line(&mut random);
            let line_number = 1 + random(2) as u64;
            for spec in &specs {
                // Without objects of over MAX_QUICK_KEYS keys or numbers of over MAX_QUICK_MAGNITUDE
                // digits, the fast path answers exactly when the slow path finds texts.
                let slow = slow_texts(line_number, &line, spec);
                // One reader for all lines, as a worker has: nothing may leak from line to line.
                let fast: Option<Vec<String>> =
                    quick.line_texts(line_number, &line, spec).map(|t| t.map(String::from).collect());
                assert_eq!(fast, slow, "{spec:?} on line {line_number} {:?}", String::from_utf8_lossy(&line));
                records += usize::from(slow.is_some());
            }
        }
        // The generator must make records with texts often enough for this to mean something.
        assert!(records > 4_000, "only {records} of 160,000 have texts");
    }

    #[test]
    fn random_lines_give_the_field_of_text_records_as_the_slow_path() {
        let mut random = crate::testing::xorshift(0x2545_F491_4F6C_DD1D);
        let mut quick = QuickTexts::default();
        let mut found = 0;
        for _ in 0..40_000 {
            let mut line = random_line(&mut random);
            // Often a field that is a string, for the rest of the record to decide.
            if line.first() == Some(&b'{') && random(2) == 0 {
                let field = [&br#""text": "t\u00e9", "#[..], br#""meta": {"body": "b"}, "#][random(2)];
                line.splice(1..1, field.iter().copied());
            }
            let line_number = 1 + random(2) as u64;
            for path in [&["text"][..], &["meta", "body"]] {
                let path: Vec<String> = path.iter().map(|key| key.to_string()).collect();
                let slow = match parse_line(line_number, &line) {
                    Parsed::Record(record) if Format::detect(&record) == Format::Text => {
                        let field = path[1..].iter().fold(record.get(&path[0]), |v, key| v?.get(key));
                        field.and_then(serde_json::Value::as_str).map(String::from)
                    }
                    _ => None,
                };
                let fast =
                    quick.text_field(line_number, &line, &TextSpec::Field(path.clone())).map(String::from);
                assert_eq!(fast, slow, "{path:?} on line {line_number} {:?}", String::from_utf8_lossy(&line));
                found += usize::from(slow.is_some());
            }
        }
        assert!(found > 3_000, "only {found} of 80,000 are text records with the field");
    }

    #[test]
    fn records_of_other_formats_have_no_text_field() {
        let field = TextSpec::parse(Some("text"));
        let mut quick = QuickTexts::default();
        for line in [
            r#"{"text": "t", "messages": 1}"#,
            r#"{"text": "t", "prompt": null}"#,
            r#"{"completion": [], "text": "t"}"#,
            r#"{"text": "t", "input": {}, "non_preferred_output": []}"#,
            r#"{"text": ["t"]}"#,
        ] {
            assert_eq!(quick.text_field(1, line.as_bytes(), &field), None, "{line}");
        }
        for line in [r#"{"text": "t", "input": {}}"#, r#"{"preferred_output": 1, "text": "t"}"#] {
            assert_eq!(quick.text_field(1, line.as_bytes(), &field), Some("t"), "{line}");
        }
    }
}
