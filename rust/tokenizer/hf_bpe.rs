//! The native path for byte-level BPE tokenizer.json files (GPT-2 style, and the ones converted from
//! tiktoken encodings: cl100k, o200k, Llama 3): the hand-written pre-tokenizer, then Hugging Face's BPE
//! on token ids, with the per-thread piece cache of the built-in encodings. A file is recognized at load
//! time only when every step that could change its token ids is one this module reproduces exactly;
//! anything else stays with the `tokenizers` crate.
//!
//! Hugging Face's BPE merges by the rank of a pair of ids (its place in the merge list) and gives the
//! merge's own id, which is not always tiktoken's "rank of the merged bytes", so it is written out here.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use aho_corasick::AhoCorasick;
use rustc_hash::FxHashMap;
use serde_json::Value;
use tokenizers::Model;

use super::bpe::{Rank, Ranks};
use super::pretokenize::{PatternKind, Pretokenizer};
use super::PieceModel;

/// Pieces at least this long use the heap-based merge (O(n log n) instead of O(n^2)).
const HEAP_MERGE_MIN_LEN: usize = 128;

/// GPT-2's printable stand-in character of every byte (`bytes_to_unicode`), in which byte-level tokens
/// are written.
pub fn byte_chars() -> [char; 256] {
    let mut chars = ['\0'; 256];
    let mut others = 0;
    for (b, c) in chars.iter_mut().enumerate() {
        let printable = matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
        let code = if printable {
            b as u32
        } else {
            others += 1;
            255 + others
        };
        *c = char::from_u32(code).expect("a code point below 0x200");
    }
    chars
}

/// The pre-tokenizer of a `Split` pattern whose matches (in the `onig` engine of the `tokenizers`
/// wheel, and in `fancy-regex`) are exactly the hand-written ones. cl100k's own pattern is not one:
/// Onig reads its possessive `\p{N}{1,3}+` as `(\p{N}{1,3})+`; the same pattern with `{1,3}` is.
fn split_pattern_kind(pattern: &str) -> Option<PatternKind> {
    if pattern == PatternKind::Cl100k.reference_pattern().replace("{1,3}+", "{1,3}") {
        return Some(PatternKind::Cl100k);
    }
    [PatternKind::Llama3, PatternKind::O200k].into_iter().find(|k| k.reference_pattern() == pattern)
}

/// The pre-tokenizer of a serialized `pre_tokenizer`, if native.
fn pattern_kind(pre: &Value) -> Result<PatternKind, String> {
    let byte_level = |v: &Value, use_regex: bool| {
        v["type"] == "ByteLevel" && v["add_prefix_space"] == false && v["use_regex"] == use_regex
    };
    if byte_level(pre, true) {
        return Ok(PatternKind::Gpt2);
    }
    if let (true, Some([split, last])) =
        (pre["type"] == "Sequence", pre["pretokenizers"].as_array().map(Vec::as_slice))
    {
        let isolated =
            split["type"] == "Split" && split["behavior"] == "Isolated" && split["invert"] == false;
        if let (true, Some(pattern)) =
            (isolated && byte_level(last, false), split["pattern"]["Regex"].as_str())
        {
            return split_pattern_kind(pattern)
                .ok_or_else(|| format!("the split pattern {pattern:?} is not a native one"));
        }
    }
    Err(format!("the pre-tokenizer {pre} is not a native one"))
}

/// Post-processors that add nothing when special tokens are not asked for (which `encode` and `count`
/// never do).
fn post_processor_adds_nothing(post: &Value) -> bool {
    match post["type"].as_str() {
        None => post.is_null(),
        Some("ByteLevel" | "TemplateProcessing" | "RobertaProcessing" | "BertProcessing") => true,
        Some("Sequence") => {
            post["processors"].as_array().is_some_and(|all| all.iter().all(post_processor_adds_nothing))
        }
        Some(_) => false,
    }
}

/// A byte-level BPE tokenizer.json, run natively.
pub struct HfBpe {
    pub pretokenizer: Pretokenizer,
    /// Token bytes -> id, for the tokens made only of byte-level characters (all that BPE can reach).
    vocab: Ranks,
    /// The id of each byte's character: every piece starts as these.
    byte_ids: [Rank; 256],
    /// (left id << 32 | right id) -> (rank, merged id).
    merges: FxHashMap<u64, (Rank, Rank)>,
    /// A piece that is itself a token is that token, without merges.
    ignore_merges: bool,
    /// The contents of the added tokens: a text holding any of them goes to the `tokenizers` crate,
    /// which splits it there first.
    added_tokens: Option<AhoCorasick>,
}

fn bad(what: &str) -> String {
    format!("the model's {what} is not what a byte-level BPE serializes")
}

impl HfBpe {
    /// The native path of a loaded tokenizer, or why it stays with the `tokenizers` crate.
    pub fn recognize(tokenizer: &tokenizers::Tokenizer) -> Result<HfBpe, String> {
        // The crate's own serialization: one canonical form whatever the file's (merges in rank order,
        // defaults filled in).
        let json: Value = tokenizer
            .to_string(false)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))?;
        if !json["normalizer"].is_null() {
            return Err(format!("it has a normalizer ({})", json["normalizer"]["type"]));
        }
        let pretokenizer = Pretokenizer::new(pattern_kind(&json["pre_tokenizer"])?);
        if !post_processor_adds_nothing(&json["post_processor"]) {
            return Err(format!("the post-processor {} may add tokens", json["post_processor"]["type"]));
        }
        let model = &json["model"];
        if model["type"] != "BPE" {
            return Err(format!("the model is {}, not BPE", model["type"]));
        }
        if !(model["dropout"].is_null() || model["dropout"].as_f64() == Some(0.0)) {
            return Err("the model has dropout".into());
        }
        for affix in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if !(model[affix].is_null() || model[affix] == "") {
                return Err(format!("the model has a {affix}"));
            }
        }
        if model["byte_fallback"] != false {
            return Err("the model has byte_fallback".into());
        }
        let ignore_merges = model["ignore_merges"].as_bool().ok_or_else(|| bad("ignore_merges"))?;
        let vocab_json = model["vocab"].as_object().ok_or_else(|| bad("vocab"))?;
        // The serialized vocabulary comes from the crate's id -> token map, so it is shorter than its
        // token -> id map when tokens share an id; merging by id needs one token per id.
        if vocab_json.len() != tokenizer.get_model().get_vocab_size() {
            return Err("some tokens of the vocabulary share an id".into());
        }
        let mut ids: FxHashMap<&str, Rank> = FxHashMap::default();
        for (token, id) in vocab_json {
            let id = id.as_u64().and_then(|id| Rank::try_from(id).ok()).ok_or_else(|| bad("vocab"))?;
            ids.insert(token, id);
        }
        // The vocabulary's table of tokens by id is as long as the largest id.
        if ids.values().any(|&id| id as usize > 2 * ids.len() + (1 << 16)) {
            return Err("the vocabulary's ids are sparse".into());
        }
        let chars = byte_chars();
        let byte_of: FxHashMap<char, u8> = chars.iter().enumerate().map(|(b, &c)| (c, b as u8)).collect();
        let mut byte_ids = [0; 256];
        for (b, c) in chars.iter().enumerate() {
            byte_ids[b] = *ids
                .get(c.encode_utf8(&mut [0; 4]) as &str)
                .ok_or_else(|| format!("byte {b:#04x} ({c:?}) is not in the vocabulary"))?;
        }
        let vocab = Ranks::from_tokens(ids.iter().filter_map(|(token, &id)| {
            token.chars().map(|c| byte_of.get(&c).copied()).collect::<Option<Vec<u8>>>().map(|b| (b, id))
        }));
        let mut merges = FxHashMap::default();
        for (rank, pair) in model["merges"].as_array().ok_or_else(|| bad("merges"))?.iter().enumerate() {
            let (Some(left), Some(right)) = (pair[0].as_str(), pair[1].as_str()) else {
                return Err(bad("merges"));
            };
            let id = |token: &str| ids.get(token).copied().ok_or_else(|| bad("merges"));
            let key = (id(left)? as u64) << 32 | id(right)? as u64;
            merges.insert(key, (rank as Rank, id(&format!("{left}{right}"))?));
        }
        let contents: Vec<String> =
            tokenizer.get_added_tokens_decoder().into_values().map(|t| t.content).collect();
        if contents.iter().any(String::is_empty) {
            return Err("an added token is empty".into());
        }
        let added_tokens = if contents.is_empty() {
            None
        } else {
            Some(AhoCorasick::new(&contents).map_err(|e| format!("added tokens: {e}"))?)
        };
        Ok(HfBpe { pretokenizer, vocab, byte_ids, merges, ignore_merges, added_tokens })
    }

    /// Whether `text` holds an added token's content (then the `tokenizers` crate counts it).
    #[inline]
    pub fn has_added_token(&self, text: &str) -> bool {
        self.added_tokens.as_ref().is_some_and(|tokens| tokens.is_match(text))
    }

    /// Appends the ids of the pre-token `piece`.
    pub fn encode_piece(&self, piece: &[u8], ids: &mut Vec<Rank>) {
        match self.vocab.get(piece).filter(|_| self.ignore_merges) {
            Some(id) => ids.push(id),
            None => ids.extend(self.merge(piece)),
        }
    }

    #[inline]
    fn pair(&self, left: Rank, right: Rank) -> Option<(Rank, Rank)> {
        self.merges.get(&((left as u64) << 32 | right as u64)).copied()
    }

    /// The ids of `piece` by Hugging Face's BPE: of the adjacent pairs that have a merge, the one of the
    /// lowest rank merges first, the leftmost of equal ranks, until none is left.
    fn merge(&self, piece: &[u8]) -> Vec<Rank> {
        if piece.len() >= HEAP_MERGE_MIN_LEN {
            self.merge_with_heap(piece)
        } else {
            self.merge_by_scan(piece)
        }
    }

    /// A scan for the lowest pair after each merge: fastest for short pieces.
    fn merge_by_scan(&self, piece: &[u8]) -> Vec<Rank> {
        let mut ids: Vec<Rank> = piece.iter().map(|&b| self.byte_ids[b as usize]).collect();
        // pairs[i]: the (rank, merged id) of ids[i] and ids[i + 1].
        let mut pairs: Vec<Option<(Rank, Rank)>> = ids.windows(2).map(|w| self.pair(w[0], w[1])).collect();
        while let Some((i, merged)) = pairs
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.map(|(rank, id)| (rank, i, id)))
            .min()
            .map(|(_, i, id)| (i, id))
        {
            ids[i] = merged;
            ids.remove(i + 1);
            pairs.remove(i);
            if i > 0 {
                pairs[i - 1] = self.pair(ids[i - 1], ids[i]);
            }
            if i < pairs.len() {
                pairs[i] = self.pair(ids[i], ids[i + 1]);
            }
        }
        ids
    }

    /// The same order with a priority queue over a linked list (Hugging Face's own way), for long pieces.
    fn merge_with_heap(&self, piece: &[u8]) -> Vec<Rank> {
        let n = piece.len();
        let mut ids: Vec<Rank> = piece.iter().map(|&b| self.byte_ids[b as usize]).collect();
        // Symbol i is followed by next[i] (n: none) and preceded by prev[i] (usize::MAX: none).
        let mut next: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        let mut alive = vec![true; n];
        let mut heap = BinaryHeap::with_capacity(n);
        for i in 0..n - 1 {
            if let Some((rank, id)) = self.pair(ids[i], ids[i + 1]) {
                heap.push(Reverse((rank, i, id)));
            }
        }
        while let Some(Reverse((rank, i, merged))) = heap.pop() {
            let j = next[i];
            // Skip stale entries: the symbol was merged away or its pair has changed since.
            if !alive[i] || j == n || self.pair(ids[i], ids[j]) != Some((rank, merged)) {
                continue;
            }
            ids[i] = merged;
            alive[j] = false;
            next[i] = next[j];
            if next[i] < n {
                prev[next[i]] = i;
                if let Some((rank, id)) = self.pair(ids[i], ids[next[i]]) {
                    heap.push(Reverse((rank, i, id)));
                }
            }
            let p = prev[i];
            if p != usize::MAX {
                if let Some((rank, id)) = self.pair(ids[p], ids[i]) {
                    heap.push(Reverse((rank, p, id)));
                }
            }
        }
        (0..n).filter(|&i| alive[i]).map(|i| ids[i]).collect()
    }
}

impl PieceModel for HfBpe {
    #[inline]
    fn is_one_token(&self, piece: &[u8]) -> bool {
        self.ignore_merges && self.vocab.get(piece).is_some()
    }

    fn merged_count(&self, piece: &[u8]) -> u32 {
        self.merge(piece).len() as u32
    }

    fn splits_at(&self, _: &[u8], _: usize) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::OnceLock;

    use serde_json::json;

    use super::*;
    use crate::tokenizer::{Backend, Encoding};

    /// Bytes as a byte-level token string.
    fn show(bytes: &[u8]) -> String {
        let chars = byte_chars();
        bytes.iter().map(|&b| chars[b as usize]).collect()
    }

    fn byte_level(use_regex: bool) -> Value {
        json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex})
    }

    fn split_then_byte_level(pattern: &str) -> Value {
        json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false},
            byte_level(false),
        ]})
    }

    /// A tokenizer.json of a byte-level BPE.
    fn tokenizer_json(
        vocab: &[(Vec<u8>, Rank)],
        merges: &[(Vec<u8>, Vec<u8>)],
        pre: Value,
        ignore_merges: bool,
    ) -> Value {
        let vocab: serde_json::Map<String, Value> =
            vocab.iter().map(|(t, id)| (show(t), json!(id))).collect();
        let merges: Vec<Value> = merges.iter().map(|(a, b)| json!([show(a), show(b)])).collect();
        json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
            "pre_tokenizer": pre, "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {
                "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                "ignore_merges": ignore_merges, "vocab": vocab, "merges": merges,
            },
        })
    }

    /// A built-in encoding's vocabulary as a tokenizer.json: every split of a token into two tokens of
    /// lower rank is a merge, in the merged token's rank order (as `transformers`' converter does).
    fn from_builtin(name: &str, pre: Value, ignore_merges: bool) -> Value {
        let enc = Encoding::load(name).unwrap();
        let ranks = &enc.tiktoken().unwrap().ranks;
        let mut merges = Vec::new();
        for (token, rank) in ranks.iter() {
            for i in 1..token.len() {
                if let (Some(a), Some(b)) = (ranks.get(&token[..i]), ranks.get(&token[i..])) {
                    if a.max(b) < rank {
                        merges.push((rank, a, b, token[..i].to_vec(), token[i..].to_vec()));
                    }
                }
            }
        }
        merges.sort();
        let vocab: Vec<(Vec<u8>, Rank)> = ranks.iter().map(|(t, r)| (t.to_vec(), r)).collect();
        let merges: Vec<_> = merges.into_iter().map(|(.., a, b)| (a, b)).collect();
        tokenizer_json(&vocab, &merges, pre, ignore_merges)
    }

    fn write(json: &Value, name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tokenlens-hf-bpe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.tokenizer.json"));
        std::fs::write(&path, json.to_string()).unwrap();
        path
    }

    /// Ours and the `tokenizers` crate's, on the same file.
    fn load(json: &Value, name: &str) -> (Encoding, tokenizers::Tokenizer) {
        let path = write(json, name);
        let ours = Encoding::load(path.to_str().unwrap()).unwrap();
        (ours, tokenizers::Tokenizer::from_file(&path).unwrap())
    }

    /// Adversarial texts: pieces and random code points of every plane, stuck together at random, and a
    /// few long runs (which take the heap merge).
    fn random_texts(count: usize, seed: u64) -> Vec<String> {
        let mut random = crate::testing::xorshift(seed);
        let mut texts: Vec<String> = vec![
            "a".repeat(3000),
            "ab".repeat(700),
            " ".repeat(600) + "x",
            "\n".repeat(300),
            "1".repeat(500),
            "深".repeat(300),
            "👍".repeat(100),
            "x\u{301}".repeat(200),
            "Hello, world!  How are   you?\r\n\tFine.\n\n  ".into(),
        ];
        texts.extend((0..count).map(|_| crate::testing::adversarial_text(&mut random, 4)));
        texts
    }

    fn assert_native_matches_the_crate(json: &Value, name: &str, texts: &[String]) {
        let (ours, reference) = load(json, name);
        assert_eq!(ours.backend(), "native-bpe", "{name}: {:?}", ours.fallback_reason());
        let mut counter = ours.counter(false);
        for text in texts {
            let expected = reference.encode(text.as_str(), false).unwrap().get_ids().to_vec();
            let text_start: String = text.chars().take(100).collect();
            assert_eq!(ours.encode(text, false).unwrap(), expected, "{name}: ids of {text_start:?}");
            assert_eq!(
                counter.count(text).unwrap(),
                expected.len() as u64,
                "{name}: count of {text_start:?}"
            );
        }
    }

    fn cl100k_json() -> &'static Value {
        static JSON: OnceLock<Value> = OnceLock::new();
        JSON.get_or_init(|| {
            let pattern = PatternKind::Cl100k.reference_pattern().replace("{1,3}+", "{1,3}");
            from_builtin("cl100k_base", split_then_byte_level(&pattern), true)
        })
    }

    #[test]
    fn counters_hand_their_warm_cache_to_the_next_one() {
        // A tokenizer.json of its own, so that no other test's counters share its caches.
        let mut vocab: Vec<(Vec<u8>, Rank)> = (0..=255u8).map(|b| (vec![b], Rank::from(b))).collect();
        vocab.push((b"ab".to_vec(), 256));
        let json = tokenizer_json(&vocab, &[(b"a".to_vec(), b"b".to_vec())], byte_level(true), false);
        let (ours, _) = load(&json, "cache-pool");
        assert_eq!(ours.backend(), "native-bpe", "{:?}", ours.fallback_reason());
        let cached = |counter: &crate::tokenizer::Counter| counter.cache.hot.iter().any(|&slot| slot != 0);
        let mut first = ours.counter(false);
        assert!(!cached(&first));
        assert_eq!(first.count("abab xab").unwrap(), 5);
        assert!(cached(&first));
        drop(first);
        // The next counter of the same tokenizer, a clone's too, starts warm and counts the same.
        let mut next = ours.clone().counter(true);
        assert!(cached(&next));
        assert_eq!(next.count("abab xab").unwrap(), 5);
    }

    #[test]
    fn cl100k_tokenizer_json_matches_the_crate() {
        assert_native_matches_the_crate(cl100k_json(), "cl100k", &random_texts(1500, 1));
    }

    #[test]
    fn cl100k_tokenizer_json_with_every_native_pattern_matches_the_crate() {
        // cl100k's vocabulary with Llama 3's and o200k's patterns, and applying merges to every piece.
        for (kind, ignore_merges) in [(PatternKind::Llama3, true), (PatternKind::O200k, false)] {
            let mut json = cl100k_json().clone();
            json["pre_tokenizer"] = split_then_byte_level(kind.reference_pattern());
            json["model"]["ignore_merges"] = json!(ignore_merges);
            assert_native_matches_the_crate(&json, &format!("{kind:?}"), &random_texts(800, 2));
        }
    }

    #[test]
    fn gpt2_style_tokenizer_json_matches_the_crate() {
        for ignore_merges in [false, true] {
            let json = from_builtin("r50k_base", byte_level(true), ignore_merges);
            assert_native_matches_the_crate(&json, &format!("gpt2-{ignore_merges}"), &random_texts(1000, 3));
        }
    }

    /// A small random vocabulary whose ids are not in merge order, with several merges to the same token:
    /// the pair-rank rule of Hugging Face, unlike tiktoken's rank of the merged bytes.
    fn toy_json(seed: u64, ignore_merges: bool) -> Value {
        let mut state = seed | 1;
        let mut random = |n: usize| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) % n as u64) as usize
        };
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        tokens.push("é".into());
        let mut merges: Vec<(Vec<u8>, Vec<u8>)> = vec![(vec![0xC3], vec![0xA9])];
        let base: Vec<Vec<u8>> = "abc ".bytes().map(|b| vec![b]).chain(["é".as_bytes().to_vec()]).collect();
        while merges.len() < 120 {
            // A base character or, mostly, a token made by an earlier merge.
            let mut pick = |tokens: &Vec<Vec<u8>>| {
                let r = random(1 << 20);
                if r % 3 == 0 || tokens.len() == 257 {
                    base[r % base.len()].clone()
                } else {
                    tokens[257 + r % (tokens.len() - 257)].clone()
                }
            };
            let (a, b) = (pick(&tokens), pick(&tokens));
            if merges.contains(&(a.clone(), b.clone())) || a.len() + b.len() > 12 {
                continue;
            }
            let merged = [a.clone(), b.clone()].concat();
            if !tokens.contains(&merged) {
                tokens.push(merged);
            }
            merges.push((a, b));
        }
        // Ids in a random order.
        let mut ids: Vec<Rank> = (0..tokens.len() as Rank).collect();
        for i in (1..ids.len()).rev() {
            ids.swap(i, random(i + 1));
        }
        let vocab: Vec<(Vec<u8>, Rank)> = tokens.into_iter().zip(ids).collect();
        tokenizer_json(&vocab, &merges, byte_level(true), ignore_merges)
    }

    #[test]
    fn random_merge_orders_match_the_crate() {
        let mut texts = random_texts(200, 4);
        let mut state = 99u64;
        for len in 1..300 {
            texts.push(
                (0..len)
                    .map(|_| {
                        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        ["a", "b", "c", "é", "ab"][(state >> 33) as usize % 5]
                    })
                    .collect(),
            );
        }
        for seed in 0..6 {
            assert_native_matches_the_crate(&toy_json(seed, seed % 2 == 0), &format!("toy{seed}"), &texts);
        }
    }

    #[test]
    fn heap_and_scan_merges_agree() {
        let (ours, _) = load(cl100k_json(), "cl100k-heap");
        let Backend::HuggingFace(hf) = &ours.backend else { panic!("not a tokenizer.json") };
        let native = hf.native.as_ref().unwrap();
        for text in random_texts(300, 5) {
            for piece in [text.as_bytes(), &text.as_bytes()[..text.len().min(HEAP_MERGE_MIN_LEN - 1)]] {
                assert_eq!(native.merge_by_scan(piece), native.merge_with_heap(piece), "{text:?}");
            }
        }
    }

    #[test]
    fn texts_with_added_tokens_go_to_the_crate() {
        let mut json = cl100k_json().clone();
        json["added_tokens"] = json!([
            {"id": 100257, "content": "<|endoftext|>", "single_word": false, "lstrip": false, "rstrip": false,
             "normalized": false, "special": true},
            {"id": 100300, "content": " hello", "single_word": false, "lstrip": true, "rstrip": true,
             "normalized": true, "special": false},
        ]);
        // A template that adds a token when special tokens are asked for, which count and encode never do.
        let eot = json!({"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}});
        json["post_processor"] = json!({
            "type": "TemplateProcessing",
            "single": [eot, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [eot, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [100257], "tokens": ["<|endoftext|>"]}},
        });
        let mut texts = random_texts(300, 6);
        texts.extend(["a<|endoftext|>b", "say hello  world", "<|endoftext|>", " hello"].map(String::from));
        assert_native_matches_the_crate(&json, "added", &texts);
        let (ours, _) = load(&json, "added");
        let Backend::HuggingFace(hf) = &ours.backend else { panic!("not a tokenizer.json") };
        assert!(hf.native.as_ref().unwrap().has_added_token("x <|endoftext|>"));
        assert!(!hf.native.as_ref().unwrap().has_added_token("x <|endoftext|"));
    }

    #[test]
    fn unsupported_files_fall_back_to_the_crate() {
        let base = from_builtin("r50k_base", byte_level(true), false);
        type Change = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Change)> = vec![
            ("normalizer", Box::new(|j| j["normalizer"] = json!({"type": "NFKC"}))),
            ("pre-tokenizer", Box::new(|j| j["pre_tokenizer"]["add_prefix_space"] = json!(true))),
            (
                "pattern",
                Box::new(|j| {
                    j["pre_tokenizer"] = split_then_byte_level(PatternKind::Cl100k.reference_pattern())
                }),
            ),
            ("pattern", Box::new(|j| j["pre_tokenizer"] = split_then_byte_level(r"\p{L}+|\p{N}|\s+|."))),
            (
                "pre-tokenizer",
                Box::new(|j| {
                    j["pre_tokenizer"] = split_then_byte_level(PatternKind::O200k.reference_pattern());
                    j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = json!("Removed");
                }),
            ),
            ("dropout", Box::new(|j| j["model"]["dropout"] = json!(0.1))),
            (
                "continuing_subword_prefix",
                Box::new(|j| {
                    // (The crate's loader needs merges whose right side has the prefix: none here.)
                    j["model"]["continuing_subword_prefix"] = json!("##");
                    j["model"]["merges"] = json!([]);
                }),
            ),
            (
                "end_of_word_suffix",
                Box::new(|j| {
                    j["model"]["end_of_word_suffix"] = json!("</w>");
                    j["model"]["merges"] = json!([]);
                }),
            ),
            ("byte_fallback", Box::new(|j| j["model"]["byte_fallback"] = json!(true))),
            (
                "is not in the vocabulary",
                Box::new(|j| {
                    let vocab = j["model"]["vocab"].as_object_mut().unwrap();
                    let unused = show(&[0xF5]);
                    let id = vocab.remove(&unused).unwrap();
                    vocab.insert("<unused>".into(), id);
                }),
            ),
            (
                "sparse",
                Box::new(|j| {
                    j["model"]["vocab"].as_object_mut().unwrap().insert("<far>".into(), json!(50_000_000));
                }),
            ),
            (
                "share an id",
                Box::new(|j| {
                    j["model"]["vocab"].as_object_mut().unwrap().insert("<twin>".into(), json!(5));
                }),
            ),
        ];
        let texts = random_texts(100, 7);
        for (reason, change) in cases {
            let mut json = base.clone();
            change(&mut json);
            let path = write(&json, "fallback");
            // The crate reading the file's regexes as the wheel does (cl100k's `\p{N}{1,3}+`).
            crate::tokenizer::onig::read_regexes_as_onig(&mut json);
            let reference: tokenizers::Tokenizer = json.to_string().parse().unwrap();
            let ours = Encoding::load(path.to_str().unwrap()).unwrap();
            assert_eq!(ours.backend(), "tokenizers", "{reason}");
            let why = ours.fallback_reason().unwrap();
            assert!(why.contains(reason), "{reason}: {why}");
            if reason == "dropout" {
                continue; // Random merges: nothing to compare.
            }
            let mut counter = ours.counter(false);
            for text in &texts {
                let expected = reference.encode(text.as_str(), false).unwrap().get_ids().to_vec();
                assert_eq!(ours.encode(text, false).unwrap(), expected, "{reason}: {text:?}");
                assert_eq!(counter.count(text).unwrap(), expected.len() as u64, "{reason}: {text:?}");
            }
        }
    }
}
