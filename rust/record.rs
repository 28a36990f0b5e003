//! From a raw line to a JSON record, and the texts a record holds.

use serde_json::Value;

/// Stable codes for lines that are not records. Other modules add their own codes; these are the
/// ones every job shares.
pub mod codes {
    pub const BLANK_LINE: &str = "blank_line";
    pub const INVALID_UTF8: &str = "invalid_utf8";
    pub const INVALID_JSON: &str = "invalid_json";
    pub const NOT_AN_OBJECT: &str = "data_type";
    pub const LINE_TOO_LONG: &str = "line_too_long";
    pub const NO_TEXT: &str = "no_text";
    pub const FIELD_MISSING: &str = "field_missing";
    pub const FIELD_NOT_STRING: &str = "field_not_string";
    pub const TOKENIZER_FAILED: &str = "tokenizer_failed";
}

/// A line's verdict problem: a stable code and a human message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub code: &'static str,
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

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Parses one line (without its terminator). A UTF-8 byte-order mark at the start is ignored.
pub fn parse_line(line: &[u8]) -> Parsed {
    let line = line.strip_prefix(UTF8_BOM).unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Parsed::Blank;
    }
    let text = match std::str::from_utf8(line) {
        Ok(text) => text,
        Err(e) => {
            let msg = format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1);
            return Parsed::Invalid(Problem::new(codes::INVALID_UTF8, msg));
        }
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Parsed::Record(map),
        Ok(other) => Parsed::Invalid(Problem::new(
            codes::NOT_AN_OBJECT,
            format!("expected a JSON object, found {}", json_type(&other)),
        )),
        Err(e) => Parsed::Invalid(Problem::new(codes::INVALID_JSON, format!("invalid JSON: {e}"))),
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
        let Parsed::Record(rec) = parse_line(line.as_bytes()) else { panic!("not a record: {line}") };
        let mut out = Vec::new();
        spec.for_each_text(&rec, |t| out.push(t.to_string())).map_err(|p| p.code)?;
        Ok(out)
    }

    #[test]
    fn verdicts_for_non_records() {
        assert!(matches!(parse_line(b""), Parsed::Blank));
        assert!(matches!(parse_line(b" \t "), Parsed::Blank));
        let code = |l: &[u8]| match parse_line(l) {
            Parsed::Invalid(p) => p.code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(b"{\"a\": \"\xff\"}"), codes::INVALID_UTF8);
        assert_eq!(code(b"{\"a\": 1"), codes::INVALID_JSON);
        assert_eq!(code(b"{\"a\": 1} {\"b\": 2}"), codes::INVALID_JSON);
        assert_eq!(code(b"[1, 2]"), codes::NOT_AN_OBJECT);
        assert_eq!(code(&vec![b'['; 200_000]), codes::INVALID_JSON);
        assert!(matches!(parse_line(b"\xEF\xBB\xBF{\"a\": 1}"), Parsed::Record(_)));
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
