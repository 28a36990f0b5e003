//! Differential: the hand-written pre-tokenizer against tiktoken's own patterns (run by fancy-regex)
//! for the four pattern families; and BPE encode/decode round-trips, with counts equal to the ids.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tokenlens::tokenizer::{Encoding, PatternKind, Pretokenizer};

const KINDS: [PatternKind; 4] =
    [PatternKind::Gpt2, PatternKind::Cl100k, PatternKind::O200k, PatternKind::Llama3];
const ENCODINGS: [&str; 3] = ["r50k_base", "cl100k_base", "o200k_base"];

struct Fixture {
    fast: Vec<Pretokenizer>,
    reference: Vec<fancy_regex::Regex>,
    encodings: Vec<Encoding>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| Fixture {
        fast: KINDS.into_iter().map(Pretokenizer::new).collect(),
        reference: KINDS.iter().map(|k| fancy_regex::Regex::new(k.reference_pattern()).unwrap()).collect(),
        encodings: ENCODINGS.iter().map(|n| Encoding::load(n).unwrap()).collect(),
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let fx = fixture();
    for (i, kind) in KINDS.iter().enumerate() {
        let mut fast = Vec::new();
        fx.fast[i].for_each(text, |r| fast.push(&text[r]));
        assert_eq!(fast.concat(), text, "{kind:?}: the pieces do not make up the text");
        let reference: Result<Vec<&str>, _> =
            fx.reference[i].find_iter(text).map(|m| m.map(|m| m.as_str())).collect();
        // fancy-regex gives up past its backtracking limit; nothing to compare then.
        if let Ok(reference) = reference {
            assert_eq!(fast, reference, "{kind:?} pre-tokens differ for {text:?}");
        }
    }
    for encoding in &fx.encodings {
        for special in [false, true] {
            let ids = encoding.encode(text, special).unwrap();
            let bytes = encoding.decode_bytes(&ids).unwrap();
            assert_eq!(bytes, text.as_bytes(), "{} round trip (special tokens {special})", encoding.name());
            let n = encoding.counter(special).count(text).unwrap();
            assert_eq!(n, ids.len() as u64, "{}: count differs from encode", encoding.name());
        }
    }
});
