//! The fast path of `count`: the texts of a record line, read in one pass over the JSON without
//! building the record.
//!
//! [`record::parse_line`] and [`TextSpec::for_each_text`] stay the definition of a line's verdict; this
//! only answers for the lines they accept as a record with texts, and gives up (`None`) on anything
//! else, which the caller then hands to them for the verdict and its message. The same serde_json
//! deserializer reads every value (`deserialize_any`, so numbers, escapes, control characters, nesting
//! depth and trailing text are checked exactly as there), and every object is checked for duplicate
//! keys; a line this accepts is therefore one they accept, with the same texts (tests compare both).

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::record::{self, TextSpec};

/// Objects with more keys than this go to the slow path (duplicate checks here are quadratic).
const MAX_QUICK_KEYS: usize = 64;

/// The texts that `parse_line` and `spec.for_each_text` would give for the line, in the same order,
/// if they would give a record and texts; `None` otherwise.
pub fn line_texts<'l>(line_number: u64, line: &'l [u8], spec: &TextSpec) -> Option<Vec<Cow<'l, str>>> {
    let line = match line.strip_prefix(record::UTF8_BOM) {
        Some(rest) if line_number == 1 => rest,
        Some(_) => return None,
        None => line,
    };
    let text = std::str::from_utf8(line).ok()?;
    let mut found = Found {
        spec,
        texts: Vec::new(),
        has_texts: false,
        text: None,
        prompt: None,
        completion: None,
        keys: Vec::new(),
    };
    let mut de = serde_json::Deserializer::from_str(text);
    Scan { role: Role::Record, found: &mut found }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    found.into_texts()
}

/// What has been read so far.
struct Found<'s, 'de> {
    spec: &'s TextSpec,
    /// The texts of `messages` (Auto) or of the field.
    texts: Vec<Cow<'de, str>>,
    /// `messages` is a list (Auto), or the field is there.
    has_texts: bool,
    text: Option<Cow<'de, str>>,
    prompt: Option<Cow<'de, str>>,
    completion: Option<Cow<'de, str>>,
    /// The keys of the objects being read, innermost last.
    keys: Vec<Cow<'de, str>>,
}

impl<'de> Found<'_, 'de> {
    /// `TextSpec::for_each_text`'s choice, when it finds texts.
    fn into_texts(self) -> Option<Vec<Cow<'de, str>>> {
        if self.has_texts {
            return Some(self.texts);
        }
        if let TextSpec::Field(_) = self.spec {
            return None;
        }
        if let Some(text) = self.text {
            return Some(vec![text]);
        }
        let texts: Vec<_> = self.prompt.into_iter().chain(self.completion).collect();
        (!texts.is_empty()).then_some(texts)
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

/// Reads one value in a role.
struct Scan<'f, 's, 'de> {
    role: Role,
    found: &'f mut Found<'s, 'de>,
}

/// Gives up on the fast path (the message is never shown: the slow path takes over).
fn give_up<E: serde::de::Error>() -> E {
    E::custom("not for the fast path")
}

impl<'de> Scan<'_, '_, 'de> {
    fn string<E: serde::de::Error>(self, text: impl FnOnce() -> Cow<'de, str>) -> Result<(), E> {
        let found = self.found;
        match self.role {
            Role::Record | Role::Messages => return Err(give_up()),
            Role::Content | Role::PartText | Role::FieldItem => found.texts.push(text()),
            Role::Field => {
                found.has_texts = true;
                found.texts.push(text());
            }
            Role::Text => found.text = Some(text()),
            Role::Prompt => found.prompt = Some(text()),
            Role::Completion => found.completion = Some(text()),
            Role::Ignore | Role::Message | Role::Part | Role::Path(_) => {}
        }
        Ok(())
    }

    /// A number, boolean or null.
    fn scalar<E: serde::de::Error>(self) -> Result<(), E> {
        match self.role {
            Role::Record | Role::Messages | Role::Field | Role::FieldItem => Err(give_up()),
            _ => Ok(()),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Scan<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Scan<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<(), E> {
        self.string(|| Cow::Borrowed(v))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.string(|| Cow::Owned(v.to_owned()))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.scalar()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let found = self.found;
        let item = match self.role {
            Role::Record | Role::FieldItem => return Err(give_up()),
            Role::Messages => Role::Message,
            Role::Content => Role::Part,
            Role::Field => Role::FieldItem,
            _ => Role::Ignore,
        };
        if matches!(self.role, Role::Messages | Role::Field) {
            found.has_texts = true;
        }
        while seq.next_element_seed(Scan { role: item, found: &mut *found })?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let found = self.found;
        if matches!(self.role, Role::Messages | Role::Field | Role::FieldItem) {
            return Err(give_up());
        }
        let spec = found.spec;
        let first = found.keys.len();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let keys = &found.keys[first..];
            if keys.len() >= MAX_QUICK_KEYS || keys.contains(&key) {
                return Err(give_up());
            }
            let role = self.role.child(&key, spec);
            found.keys.push(key);
            map.next_value_seed(Scan { role, found: &mut *found })?;
        }
        found.keys.truncate(first);
        Ok(())
    }
}

/// An object key, borrowed from the line unless it has escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Cow<'de, str>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
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
        line_texts(line_number, line, spec).map(|t| t.into_iter().map(String::from).collect())
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
        const KEYS: [&str; 12] = [
            "messages",
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
        const SCALARS: [&str; 10] = [
            "\"s\"",
            "\"a\\nb\"",
            "\"\\u00e9\\ud83d\\ude00\"",
            "\"\u{301}x\"",
            "1",
            "-0",
            "2.5e3",
            "true",
            "null",
            "\"\"",
        ];
        /// Values that serde_json refuses: a lone surrogate, a number out of range.
        const INVALID: [&str; 2] = ["\"\\ud800\"", "1e400"];
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
                    let bytes = b"{}[]\",:\\ x\xff";
                    line.insert(at, bytes[random(bytes.len())]);
                }
                _ => line = [record::UTF8_BOM, &line].concat(),
            }
        }
        line
    }

    #[test]
    fn random_lines_agree_with_the_slow_path() {
        let mut random = crate::testing::xorshift(0x9E37_79B9_7F4A_7C15);
        let specs = specs();
        let mut records = 0;
        for _ in 0..40_000 {
            let line = random_line(&mut random);
            let line_number = 1 + random(2) as u64;
            for spec in &specs {
                // Without objects of over MAX_QUICK_KEYS keys, the fast path answers exactly when the
                // slow path finds texts.
                let slow = slow_texts(line_number, &line, spec);
                let fast = fast_texts(line_number, &line, spec);
                assert_eq!(fast, slow, "{spec:?} on line {line_number} {:?}", String::from_utf8_lossy(&line));
                records += usize::from(slow.is_some());
            }
        }
        // The generator must make records with texts often enough for this to mean something.
        assert!(records > 4_000, "only {records} of 160,000 have texts");
    }
}
