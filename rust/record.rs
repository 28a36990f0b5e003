//! From a raw line to a JSON record, and the texts a record holds.

use std::cell::RefCell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::error::Category;
use serde_json::map::Entry;
use serde_json::Value;

/// Stable codes for lines that are not records. Other modules add their own codes; these are the
/// ones every job shares.
pub mod codes {
    pub const BLANK_LINE: &str = "blank_line";
    pub const INVALID_UTF8: &str = "invalid_utf8";
    pub const INVALID_JSON: &str = "invalid_json";
    /// An object with the same key twice (at any depth).
    pub const DUPLICATE_KEY: &str = "duplicate_key";
    /// A UTF-8 byte-order mark at the start of a line other than the first.
    pub const UNEXPECTED_BOM: &str = "unexpected_bom";
    pub const NOT_AN_OBJECT: &str = "data_type";
    pub const LINE_TOO_LONG: &str = "line_too_long";
    pub const NO_TEXT: &str = "no_text";
    pub const FIELD_MISSING: &str = "field_missing";
    pub const FIELD_NOT_STRING: &str = "field_not_string";
    pub const TOKENIZER_FAILED: &str = "tokenizer_failed";
}

/// A line's verdict problem: a stable code and a human message.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    #[serde(deserialize_with = "crate::interned::str")]
    pub code: crate::interned::Label,
    pub message: String,
}

impl Problem {
    pub fn new(code: &'static str, message: impl Into<String>) -> Problem {
        Problem { code, message: message.into() }
    }
}

/// What a line turned out to be.
#[derive(Debug)]
pub enum Parsed {
    Blank,
    Invalid(Problem),
    Record(serde_json::Map<String, Value>),
}

pub(crate) const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The deepest nesting of arrays and objects a line may have: serde_json's recursion limit, which
/// keeps parsing (and dropping) a value off the end of the stack whatever the input.
pub const MAX_DEPTH: usize = 127;

/// Parses line number `line_number` (1-based, without its terminator) of a file.
///
/// Verdicts:
/// - empty or ASCII-whitespace-only: [`Parsed::Blank`];
/// - a UTF-8 byte-order mark at the start of line 1 is the file's encoding signature and is skipped;
///   at the start of any other line (files concatenated with `cat`?) it is [`codes::UNEXPECTED_BOM`].
///   U+FEFF inside a string is ordinary text;
/// - bytes that are not UTF-8: [`codes::INVALID_UTF8`];
/// - anything [RFC 8259](https://www.rfc-editor.org/rfc/rfc8259) rejects (truncated, raw control
///   characters in strings, lone surrogate escapes, numbers out of `f64` range, trailing text after
///   the value, two values on one line), or nesting deeper than [`MAX_DEPTH`] levels: [`codes::INVALID_JSON`]
///   with the reason and column;
/// - an object with the same key twice, at any depth: [`codes::DUPLICATE_KEY`] (JSON parsers
///   disagree on which value wins, so the record is ambiguous);
/// - a JSON value that is not an object: [`codes::NOT_AN_OBJECT`].
pub fn parse_line(line_number: u64, line: &[u8]) -> Parsed {
    let line = match line.strip_prefix(UTF8_BOM) {
        Some(_) if line_number != 1 => {
            return Parsed::Invalid(Problem::new(
                codes::UNEXPECTED_BOM,
                "the line starts with a UTF-8 byte-order mark, which only the first line of a file may \
                 have (were files concatenated?)",
            ))
        }
        Some(rest) => rest,
        None => line,
    };
    if line.iter().all(u8::is_ascii_whitespace) {
        return Parsed::Blank;
    }
    let text = match simdutf8::compat::from_utf8(line) {
        Ok(text) => text,
        Err(e) => {
            let msg = format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1);
            return Parsed::Invalid(Problem::new(codes::INVALID_UTF8, msg));
        }
    };
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = ValueSeed { duplicate: &duplicate }.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(Value::Object(map)) => Parsed::Record(map),
        Ok(other) => Parsed::Invalid(Problem::new(
            codes::NOT_AN_OBJECT,
            format!("expected a JSON object, found {}", json_type(&other)),
        )),
        Err(e) => match duplicate.into_inner() {
            Some(dup) => Parsed::Invalid(dup.problem(e.column())),
            None => Parsed::Invalid(Problem::new(codes::INVALID_JSON, json_error_message(&e))),
        },
    }
}

/// A clear message for a serde_json error on a one-line document.
fn json_error_message(e: &serde_json::Error) -> String {
    let column = e.column();
    let full = e.to_string();
    // serde_json appends " at line L column C"; the line is always 1 here.
    let reason = full.rsplit_once(" at line ").map_or(full.as_str(), |(reason, _)| reason);
    match e.classify() {
        Category::Eof => {
            format!("invalid JSON: the line ends inside a value at column {column} (truncated record?)")
        }
        _ if reason == "recursion limit exceeded" => {
            format!("invalid JSON: nested too deeply (over {MAX_DEPTH} levels) at column {column}")
        }
        _ if reason == "trailing characters" => format!(
            "invalid JSON: unexpected text after the end of the value at column {column} \
             (two records on one line?)"
        ),
        _ if reason.contains("hex escape")
            || reason.contains("surrogate")
            || reason.contains("code point") =>
        {
            format!(
                "invalid JSON: {reason} at column {column} (a \\u escape that is no character, such as a \
                 lone UTF-16 surrogate)"
            )
        }
        _ => format!("invalid JSON: {reason} at column {column}"),
    }
}

/// A key seen twice in one object, and where that object is.
struct Duplicate {
    key: String,
    /// From the innermost container out: filled in as the error unwinds.
    path: Vec<PathPart>,
}

enum PathPart {
    Key(String),
    Index(usize),
}

impl Duplicate {
    fn problem(self, column: usize) -> Problem {
        let mut path = String::new();
        for part in self.path.iter().rev() {
            match part {
                PathPart::Index(i) => path += &format!("[{i}]"),
                PathPart::Key(k) if is_plain_key(k) => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path += k;
                }
                PathPart::Key(k) => path += &format!("[{k:?}]"),
            }
        }
        let place = if path.is_empty() { "the record".to_string() } else { format!("object {path}") };
        Problem::new(
            codes::DUPLICATE_KEY,
            format!(
                "duplicate key {:?} in {place} (column {column}); which value counts is ambiguous",
                self.key
            ),
        )
    }
}

fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Deserializes a [`Value`] like serde_json does, but fails on a duplicate key (noting it in
/// `duplicate`) instead of keeping the last value. serde_json's recursion limit still applies: it is
/// checked by the deserializer, whatever the visitor.
#[derive(Clone, Copy)]
struct ValueSeed<'a> {
    duplicate: &'a RefCell<Option<Duplicate>>,
}

impl ValueSeed<'_> {
    /// On the way out of a failed child, records where the child was.
    fn note_path(self, part: impl FnOnce() -> PathPart) {
        if let Some(dup) = self.duplicate.borrow_mut().as_mut() {
            dup.path.push(part());
        }
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        loop {
            match seq.next_element_seed(self) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return Ok(Value::Array(items)),
                Err(e) => {
                    self.note_path(|| PathPart::Index(items.len()));
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = serde_json::Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let value = match access.next_value_seed(self) {
                Ok(value) => value,
                Err(e) => {
                    self.note_path(|| PathPart::Key(key));
                    return Err(e);
                }
            };
            match map.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                Entry::Occupied(slot) => {
                    let key = slot.key().clone();
                    *self.duplicate.borrow_mut() = Some(Duplicate { key, path: Vec::new() });
                    return Err(A::Error::custom("duplicate key"));
                }
            }
        }
        Ok(Value::Object(map))
    }
}

pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Which texts of a record to count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TextSpec {
    /// `messages` contents for chat records, else `text`, else `prompt` and `completion`.
    Auto,
    /// One field, given as a key or a dotted path (`meta.body`); a string or a list of strings.
    Field(Vec<String>),
}

impl TextSpec {
    pub fn parse(field: Option<&str>) -> TextSpec {
        match field {
            None | Some("") => TextSpec::Auto,
            Some(path) => TextSpec::Field(path.split('.').map(str::to_string).collect()),
        }
    }

    /// Calls `f` with each text of the record.
    pub fn for_each_text<'v>(
        &self,
        record: &'v serde_json::Map<String, Value>,
        mut f: impl FnMut(&'v str),
    ) -> Result<(), Problem> {
        match self {
            TextSpec::Field(path) => {
                let mut value = record.get(&path[0]);
                for key in &path[1..] {
                    value = value.and_then(|v| v.get(key));
                }
                let name = path.join(".");
                match value {
                    None => Err(Problem::new(codes::FIELD_MISSING, format!("no field {name:?}"))),
                    Some(Value::String(s)) => {
                        f(s);
                        Ok(())
                    }
                    Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                        items.iter().filter_map(Value::as_str).for_each(f);
                        Ok(())
                    }
                    Some(other) => Err(Problem::new(
                        codes::FIELD_NOT_STRING,
                        format!("field {name:?} is {}, not a string", json_type(other)),
                    )),
                }
            }
            TextSpec::Auto => {
                if let Some(messages) = record.get("messages") {
                    let Value::Array(messages) = messages else {
                        return Err(Problem::new(codes::NO_TEXT, "\"messages\" is not a list"));
                    };
                    for content in messages.iter().filter_map(|m| m.get("content")) {
                        for_each_content_text(content, &mut f);
                    }
                    return Ok(());
                }
                if let Some(Value::String(text)) = record.get("text") {
                    f(text);
                    return Ok(());
                }
                let prompt = record.get("prompt").and_then(Value::as_str);
                let completion = record.get("completion").and_then(Value::as_str);
                if prompt.is_none() && completion.is_none() {
                    return Err(Problem::new(
                        codes::NO_TEXT,
                        "no text to count: expected \"messages\", \"text\" or \"prompt\"/\"completion\" (or choose one with --field)",
                    ));
                }
                prompt.into_iter().chain(completion).for_each(f);
                Ok(())
            }
        }
    }
}

/// The text of a message `content`: a string, or the `text` of each part of a content-part list.
pub fn for_each_content_text<'v>(content: &'v Value, f: &mut impl FnMut(&'v str)) {
    match content {
        Value::String(s) => f(s),
        Value::Array(parts) => {
            for text in parts.iter().filter_map(|p| p.get("text")).filter_map(Value::as_str) {
                f(text);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &str, spec: &TextSpec) -> Result<Vec<String>, &'static str> {
        let Parsed::Record(rec) = parse_line(1, line.as_bytes()) else { panic!("not a record: {line}") };
        let mut out = Vec::new();
        spec.for_each_text(&rec, |t| out.push(t.to_string())).map_err(|p| p.code)?;
        Ok(out)
    }

    #[test]
    fn verdicts_for_non_records() {
        assert!(matches!(parse_line(1, b""), Parsed::Blank));
        assert!(matches!(parse_line(1, b" \t "), Parsed::Blank));
        let code = |l: &[u8]| match parse_line(1, l) {
            Parsed::Invalid(p) => p.code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(b"{\"a\": \"\xff\"}"), codes::INVALID_UTF8);
        assert_eq!(code(b"{\"a\": 1"), codes::INVALID_JSON);
        assert_eq!(code(b"{\"a\": 1} {\"b\": 2}"), codes::INVALID_JSON);
        assert_eq!(code(b"[1, 2]"), codes::NOT_AN_OBJECT);
        assert_eq!(code(&vec![b'['; 200_000]), codes::INVALID_JSON);
        assert!(matches!(parse_line(1, b"\xEF\xBB\xBF{\"a\": 1}"), Parsed::Record(_)));
    }

    fn problem(line: &[u8]) -> Problem {
        match parse_line(1, line) {
            Parsed::Invalid(p) => p,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(line)),
        }
    }

    #[track_caller]
    fn assert_problem(line: &[u8], code: &str, message_part: &str) {
        let p = problem(line);
        assert_eq!(p.code, code, "{:?}: {}", String::from_utf8_lossy(line), p.message);
        assert!(p.message.contains(message_part), "{:?} lacks {message_part:?}", p.message);
    }

    #[test]
    fn hostile_lines_get_clear_verdicts() {
        use codes::*;
        assert_problem(b"{\"text\": \"abc", INVALID_JSON, "ends inside a value at column 13 (truncated");
        assert_problem(b"{\"text\": ", INVALID_JSON, "truncated");
        assert_problem(b"[1]", NOT_AN_OBJECT, "found an array");
        assert_problem(b"\"s\"", NOT_AN_OBJECT, "found a string");
        assert_problem(b"12", NOT_AN_OBJECT, "found a number");
        assert_problem(b"null", NOT_AN_OBJECT, "found null");
        assert_problem(b"{\"text\": \"a\xC3\x28\"}", INVALID_UTF8, "byte 12");
        assert_problem(b"{\"text\": \"a\x01b\"}", INVALID_JSON, "control character");
        assert_problem(b"{\"text\": \"a\x00b\"}", INVALID_JSON, "control character");
        assert_problem(b"{\"text\": \"a\tb\"}", INVALID_JSON, "control character");
        assert_problem(b"{\"text\": 1}\x00", INVALID_JSON, "after the end of the value");
        assert_problem(b"{\"text\": \"\\ud800\"}", INVALID_JSON, "lone UTF-16 surrogate");
        assert_problem(b"{\"text\": \"\\udc00x\"}", INVALID_JSON, "surrogate");
        assert_problem(b"{\"text\": \"\\ud800\\u0041\"}", INVALID_JSON, "surrogate");
        assert_problem(b"{\"text\": \"\\ud800\\n\"}", INVALID_JSON, "surrogate");
        assert_problem(b"{\"text\": \"\\uZZZZ\"}", INVALID_JSON, "invalid escape at column 16");
        assert_problem(b"{\"n\": 1e400}", INVALID_JSON, "number out of range");
        assert_problem(b"{\"n\": -1e400}", INVALID_JSON, "number out of range");
        assert_problem(b"{\"text\": \"a\"} xyz", INVALID_JSON, "two records on one line");
        assert_problem(b"{\"text\": \"a\"}{\"text\": \"b\"}", INVALID_JSON, "at column 14");
        assert_problem(b"{\"a\": 1}\r{\"b\": 2}", INVALID_JSON, "after the end of the value");
        assert_problem(b"{'a': 1}", INVALID_JSON, "key must be a string at column 2");
        assert_problem(b"{\"a\": NaN}", INVALID_JSON, "expected value");
        assert_problem(b"{\"a\": 1,}", INVALID_JSON, "trailing comma");
        // Still valid: escaped control characters and NUL, U+FEFF inside a string, huge integers
        // (as floats), CR before the terminator is the reader's (a lone CR is JSON whitespace).
        for ok in [
            &b"{\"text\": \"a\\u0000b\\u0001\\ud83d\\ude00\"}"[..],
            b"{\"text\": \"\xEF\xBB\xBFx\"}",
            b"{\"n\": 123456789012345678901234567890, \"m\": 1e308, \"k\": -0}",
            b" \t{\"a\": {\"b\": [1, {\"c\": null}]}}\r ",
        ] {
            assert!(matches!(parse_line(1, ok), Parsed::Record(_)), "{:?}", String::from_utf8_lossy(ok));
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let deep_arrays = vec![b'['; 200_000];
        let mut deep_objects = b"{\"text\": \"x\", \"a\": ".repeat(200_000);
        deep_objects.extend(vec![b'}'; 200_000]);
        let mut closed = vec![b'['; 200_000];
        closed.extend(vec![b']'; 200_000]);
        for line in [deep_arrays, deep_objects, closed] {
            // Run on a small stack: a recursive parser without a limit would overflow it.
            let p = std::thread::Builder::new()
                .stack_size(512 << 10)
                .spawn(move || problem(&line))
                .unwrap()
                .join()
                .unwrap();
            assert_eq!(p.code, codes::INVALID_JSON);
            assert!(p.message.contains("nested too deeply"), "{}", p.message);
        }
        // 127 levels are fine, 128 are not.
        let nested = |n: usize| format!("{{\"a\": {}{}}}", "[".repeat(n - 1), "]".repeat(n - 1));
        assert!(matches!(parse_line(1, nested(MAX_DEPTH).as_bytes()), Parsed::Record(_)));
        assert_eq!(problem(nested(MAX_DEPTH + 1).as_bytes()).code, codes::INVALID_JSON);
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        use codes::DUPLICATE_KEY;
        assert_problem(
            b"{\"text\": \"a\", \"text\": \"b\"}",
            DUPLICATE_KEY,
            "duplicate key \"text\" in the record",
        );
        assert_problem(b"{\"a\": 1, \"\\u0061\": 1}", DUPLICATE_KEY, "duplicate key \"a\"");
        let chat = br#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "role": "user"}]}"#;
        assert_problem(chat, DUPLICATE_KEY, "duplicate key \"role\" in object messages[1] (column");
        assert_problem(
            br#"{"meta": {"a b": [[{"k": 1, "k": 2}]]}}"#,
            DUPLICATE_KEY,
            r#"object meta["a b"][0][0]"#,
        );
        // The same key in different objects is fine.
        let ok = br#"{"messages": [{"role": "user"}, {"role": "assistant"}], "role": 1}"#;
        assert!(matches!(parse_line(1, ok), Parsed::Record(_)));
        // A syntax error before the duplicate wins, one after it loses.
        assert_eq!(problem(br#"{"a": 1, "b": tru, "a": 2}"#).code, codes::INVALID_JSON);
        assert_eq!(problem(br#"{"a": 1, "a": 2, "b": tru}"#).code, DUPLICATE_KEY);
    }

    #[test]
    fn byte_order_mark_only_on_the_first_line() {
        let bom_record = b"\xEF\xBB\xBF{\"text\": \"a\"}";
        assert!(matches!(parse_line(1, bom_record), Parsed::Record(_)));
        assert!(matches!(parse_line(1, b"\xEF\xBB\xBF"), Parsed::Blank));
        for line in [&bom_record[..], b"\xEF\xBB\xBF", b"\xEF\xBB\xBF  "] {
            let Parsed::Invalid(p) = parse_line(2, line) else { panic!() };
            assert_eq!(p.code, codes::UNEXPECTED_BOM);
        }
        // A BOM after leading whitespace is not JSON whitespace.
        assert_eq!(problem(b" \xEF\xBB\xBF{}").code, codes::INVALID_JSON);
    }

    #[test]
    fn records_keep_every_value() {
        let line = br#"{"a": [1, -2, 2.5, true, null, "s", {"b": {}}], "c": 18446744073709551615}"#;
        let Parsed::Record(map) = parse_line(1, line) else { panic!() };
        let expected: Value = serde_json::from_slice(line).unwrap();
        assert_eq!(Value::Object(map), expected);
    }

    #[test]
    fn texts_by_format() {
        let auto = TextSpec::Auto;
        let chat = r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [{"type": "text", "text": "yo"}]}]}"#;
        assert_eq!(texts(chat, &auto).unwrap(), ["hi", "yo"]);
        assert_eq!(texts(r#"{"text": "abc"}"#, &auto).unwrap(), ["abc"]);
        assert_eq!(texts(r#"{"prompt": "p", "completion": "c"}"#, &auto).unwrap(), ["p", "c"]);
        assert_eq!(texts(r#"{"x": 1}"#, &auto), Err(codes::NO_TEXT));
        let field = TextSpec::parse(Some("meta.body"));
        assert_eq!(texts(r#"{"meta": {"body": "b"}}"#, &field).unwrap(), ["b"]);
        assert_eq!(texts(r#"{"meta": {}}"#, &field), Err(codes::FIELD_MISSING));
        assert_eq!(texts(r#"{"meta": {"body": 3}}"#, &field), Err(codes::FIELD_NOT_STRING));
    }
}
