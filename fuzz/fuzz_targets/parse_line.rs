//! The record parser and validator: any bytes get a verdict, records are audited and counted, and a
//! record is exactly what serde_json reads (the parser only refuses more: duplicate keys, late BOMs).
//! `count`'s fast path gives the texts of exactly the records whose texts `TextSpec::Auto` finds.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tokenlens::audit::{audit_record, AuditOptions};
use tokenlens::quick_texts::QuickTexts;
use tokenlens::record::{codes, parse_line, Parsed, TextSpec};
use tokenlens::tokenizer::Encoding;

fn encoding() -> &'static Encoding {
    static ENCODING: OnceLock<Encoding> = OnceLock::new();
    ENCODING.get_or_init(|| Encoding::load("cl100k_base").expect("built-in encoding"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, line)) = data.split_first() else { return };
    let line_number = u64::from(first % 3) + 1;
    let without_bom = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let serde: Option<Value> = serde_json::from_slice(without_bom).ok();
    let quick: Option<Vec<String>> = QuickTexts::default()
        .line_texts(line_number, line, &TextSpec::Auto)
        .map(|t| t.map(String::from).collect());
    let mut texts = None;
    match parse_line(line_number, line) {
        Parsed::Blank => assert!(without_bom.iter().all(u8::is_ascii_whitespace)),
        Parsed::Invalid(problem) => {
            assert!(!problem.message.is_empty());
            if let Some(Value::Object(_)) = serde {
                assert!(
                    problem.code == codes::DUPLICATE_KEY
                        || (problem.code == codes::UNEXPECTED_BOM && line_number != 1),
                    "serde_json reads an object, we say {problem:?}"
                );
            }
        }
        Parsed::Record(record) => {
            assert_eq!(serde, Some(Value::Object(record.clone())), "the record differs from serde_json's");
            let mut counter = encoding().counter(false);
            let audit = audit_record(&record, &AuditOptions::default(), &mut counter);
            assert!(audit.trainable_tokens <= audit.total_tokens);
            let mut found = Vec::new();
            let spec = TextSpec::Auto.for_each_text(&record, |text| {
                counter.count(text).expect("tiktoken counts any text");
                found.push(text.to_string());
            });
            texts = spec.ok().map(|()| found);
        }
    }
    // The fast path leaves objects of over 64 keys to the slow one (such an object takes over 300
    // bytes), and numbers that might leave f64's range (three exponent digits or more).
    let long_exponent = line
        .windows(4)
        .any(|w| matches!(w[0], b'e' | b'E' | b'+' | b'-') && w[1..].iter().all(u8::is_ascii_digit));
    if quick.is_some() || (data.len() < 300 && !long_exponent) {
        assert_eq!(quick, texts, "count's fast path differs from parse_line and for_each_text");
    }
});
