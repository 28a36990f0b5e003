//! The regexes of a tokenizer.json as the `tokenizers` wheel reads them. The wheel matches them with
//! Onig (Ruby syntax), the crate here with fancy-regex, and the two read one construct differently:
//! a `+` after an interval. Onig repeats the interval (`\p{N}{1,3}+` is any run of digits), fancy-regex
//! makes it possessive (runs of at most three, as in tiktoken). Every other possessive quantifier
//! (`?+`, `*+`, `++`) means the same in both.

use std::borrow::Cow;

use serde_json::Value;

/// Rewrites every regex of a serialized tokenizer (`{"Regex": ...}`: split pre-tokenizers, replace
/// normalizers and decoders) so that fancy-regex matches what Onig matches.
pub fn read_regexes_as_onig(json: &mut Value) {
    match json {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    Value::String(pattern) if key == "Regex" => {
                        if let Cow::Owned(rewritten) = repeat_intervals(pattern) {
                            *pattern = rewritten;
                        }
                    }
                    _ => read_regexes_as_onig(value),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(read_regexes_as_onig),
        _ => {}
    }
}

/// `pattern` with each `X{n,m}+` written `(?:X{n,m})+`, the repetition Onig reads there.
pub fn repeat_intervals(pattern: &str) -> Cow<'_, str> {
    if !pattern.contains("}+") {
        return Cow::Borrowed(pattern);
    }
    let mut out = String::with_capacity(pattern.len() + 8);
    // Where the last atom starts in `out`, while a quantifier may still follow it.
    let mut atom: Option<usize> = None;
    let mut i = 0;
    while i < pattern.len() {
        let rest = &pattern[i..];
        if let (Some(start), Some(len)) = (atom, interval_len(rest)) {
            if rest[len..].starts_with('+') {
                out.insert_str(start, "(?:");
                out.push_str(&rest[..len]);
                out.push_str(")+");
                i += len + 1;
            } else {
                out.push_str(&rest[..len]);
                i += len;
            }
            atom = None;
            continue;
        }
        let c = rest.chars().next().expect("not at the end");
        let len = match c {
            '\\' => escape_len(rest),
            '[' => class_len(rest),
            '(' => group_len(rest),
            _ => c.len_utf8(),
        };
        atom = (!matches!(c, '|' | '^' | '$' | '*' | '+' | '?' | '{' | ')')).then_some(out.len());
        out.push_str(&rest[..len]);
        i += len;
    }
    if out == pattern {
        Cow::Borrowed(pattern)
    } else {
        Cow::Owned(out)
    }
}

/// The length of `{n}`, `{n,}` or `{n,m}` at the start of `s`, if it is one.
fn interval_len(s: &str) -> Option<usize> {
    let inner = s.strip_prefix('{')?;
    let close = inner.find('}')?;
    let (low, high) = inner[..close].split_once(',').unwrap_or((&inner[..close], "0"));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    (!low.is_empty() && digits(low) && digits(high)).then_some(close + 2)
}

/// The length of the escape at the start of `s` (`\p{L}`, `\x{263a}`, `\k<name>`, `\n`, ...).
fn escape_len(s: &str) -> usize {
    let Some(c) = s[1..].chars().next() else { return 1 };
    let after = &s[1 + c.len_utf8()..];
    let closer = match (c, after.chars().next()) {
        ('p' | 'P' | 'x' | 'o' | 'u', Some('{')) => Some('}'),
        ('k' | 'g', Some('<')) => Some('>'),
        _ => None,
    };
    let escaped = 1 + c.len_utf8();
    match closer.and_then(|closer| after.find(closer)) {
        Some(end) => escaped + end + 1,
        None => escaped,
    }
}

/// The length of the character class at the start of `s`, nested classes included.
fn class_len(s: &str) -> usize {
    let mut depth = 0;
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let c = rest.chars().next().expect("not at the end");
        match c {
            '\\' => {
                i += escape_len(rest);
                continue;
            }
            '[' => {
                depth += 1;
                // A `]` right after the opening (or after `^`) is a literal.
                let body = rest[1..].strip_prefix('^').unwrap_or(&rest[1..]);
                if body.starts_with(']') {
                    i = s.len() - body.len() + 1;
                    continue;
                }
            }
            ']' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += c.len_utf8();
    }
    s.len()
}

/// The length of the group at the start of `s`, up to its closing parenthesis.
fn group_len(s: &str) -> usize {
    let mut depth = 0;
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let c = rest.chars().next().expect("not at the end");
        i += match c {
            '\\' => escape_len(rest),
            '[' => class_len(rest),
            '(' => {
                depth += 1;
                1
            }
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
                1
            }
            _ => c.len_utf8(),
        };
    }
    s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plus_after_an_interval_repeats_it() {
        let cases = [
            (r"\p{N}{1,3}+", r"(?:\p{N}{1,3})+"),
            (r"a|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++", r"a|(?:\p{N}{1,3})+| ?[^\s\p{L}\p{N}]++"),
            (r"[]a-z]{2}+b", r"(?:[]a-z]{2})+b"),
            (r"[^\]]{2,}+", r"(?:[^\]]{2,})+"),
            (r"(?i:ab|c){1,2}+", r"(?:(?i:ab|c){1,2})+"),
            (r"x(\d[)]){3}+", r"x(?:(\d[)]){3})+"),
            (r"é{1,3}+", r"(?:é{1,3})+"),
            (r"\x{263a}{2}+", r"(?:\x{263a}{2})+"),
        ];
        for (pattern, onig) in cases {
            assert_eq!(repeat_intervals(pattern), onig, "{pattern}");
            let rewritten = repeat_intervals(pattern);
            assert!(fancy_regex::Regex::new(&rewritten).is_ok(), "{rewritten}");
        }
    }

    #[test]
    fn everything_else_is_left_alone() {
        for pattern in [
            crate::tokenizer::PatternKind::O200k.reference_pattern(),
            r"\p{N}{1,3}|a++|b*+|c?+|d{2}?|e{2}",
            r"\{1,3}+|[{1,3}+]|a{x}+|^{1}+",
            r"\p{N}{1,3}",
        ] {
            assert!(matches!(repeat_intervals(pattern), Cow::Borrowed(_)), "{pattern}");
        }
    }

    #[test]
    fn rewrites_every_regex_of_a_tokenizer() {
        let mut json = serde_json::json!({
            "normalizer": {"type": "Replace", "pattern": {"Regex": "a{2}+"}, "content": "b"},
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": r"\p{N}{1,3}+"}},
                {"type": "Split", "pattern": {"String": "x{2}+"}},
            ]},
        });
        read_regexes_as_onig(&mut json);
        assert_eq!(json["normalizer"]["pattern"]["Regex"], "(?:a{2})+");
        assert_eq!(json["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"], r"(?:\p{N}{1,3})+");
        assert_eq!(json["pre_tokenizer"]["pretokenizers"][1]["pattern"]["String"], "x{2}+");
    }
}
