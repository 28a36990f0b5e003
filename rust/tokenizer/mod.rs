//! Exact tokenizers: the OpenAI encodings (vocabularies embedded in the build) and Hugging Face
//! `tokenizer.json` files.

mod ascii_blocks;
mod bpe;
mod hf_bpe;
mod onig;
mod pretokenize;

use std::hash::BuildHasher;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use regex::Regex;
use rustc_hash::FxHashMap;

pub use bpe::{Rank, Ranks};
pub use hf_bpe::byte_chars;
pub use pretokenize::{PatternKind, Pretokenizer};

use hf_bpe::HfBpe;

use crate::error::Error;

/// The built-in OpenAI encodings, with their embedded vocabularies.
pub const BUILTIN_ENCODINGS: &[&str] = &["cl100k_base", "o200k_base", "p50k_base", "r50k_base"];

const ENDOFTEXT: &str = "<|endoftext|>";
const FIM_PREFIX: &str = "<|fim_prefix|>";
const FIM_MIDDLE: &str = "<|fim_middle|>";
const FIM_SUFFIX: &str = "<|fim_suffix|>";
const ENDOFPROMPT: &str = "<|endofprompt|>";

/// A tiktoken-style encoding: ranks, pre-tokenizer and special tokens.
pub struct Tiktoken {
    pub ranks: Ranks,
    pub pretokenizer: Pretokenizer,
    pub special_tokens: Vec<(&'static str, Rank)>,
    special_regex: Regex,
    caches: CachePool,
}

fn builtin(name: &str) -> Option<&'static Arc<Tiktoken>> {
    static CELLS: [OnceLock<Arc<Tiktoken>>; 4] = [const { OnceLock::new() }; 4];
    let (index, vocab, kind, special): (usize, &'static [u8], _, &[(&'static str, Rank)]) = match name {
        "cl100k_base" => (
            0,
            include_bytes!("../vocab/cl100k_base.tiktoken"),
            PatternKind::Cl100k,
            &[
                (ENDOFTEXT, 100257),
                (FIM_PREFIX, 100258),
                (FIM_MIDDLE, 100259),
                (FIM_SUFFIX, 100260),
                (ENDOFPROMPT, 100276),
            ],
        ),
        "o200k_base" => (
            1,
            include_bytes!("../vocab/o200k_base.tiktoken"),
            PatternKind::O200k,
            &[(ENDOFTEXT, 199999), (ENDOFPROMPT, 200018)],
        ),
        "p50k_base" => {
            (2, include_bytes!("../vocab/p50k_base.tiktoken"), PatternKind::Gpt2, &[(ENDOFTEXT, 50256)])
        }
        "r50k_base" => {
            (3, include_bytes!("../vocab/r50k_base.tiktoken"), PatternKind::Gpt2, &[(ENDOFTEXT, 50256)])
        }
        _ => return None,
    };
    Some(CELLS[index].get_or_init(|| {
        let ranks = Ranks::parse(vocab).expect("embedded vocabulary parses");
        let alternatives: Vec<String> = special.iter().map(|(s, _)| regex::escape(s)).collect();
        Arc::new(Tiktoken {
            ranks,
            pretokenizer: Pretokenizer::new(kind),
            special_tokens: special.to_vec(),
            special_regex: Regex::new(&alternatives.join("|")).expect("special tokens compile"),
            caches: CachePool::default(),
        })
    }))
}

/// A Hugging Face tokenizer.json: the `tokenizers` crate, and the native path when the file is one
/// that [`HfBpe`] reproduces exactly (else why not).
struct HuggingFace {
    tokenizer: tokenizers::Tokenizer,
    native: Result<HfBpe, String>,
    caches: CachePool,
}

#[derive(Clone)]
enum Backend {
    Tiktoken(Arc<Tiktoken>),
    HuggingFace(Arc<HuggingFace>),
}

impl Backend {
    fn caches(&self) -> &CachePool {
        match self {
            Backend::Tiktoken(t) => &t.caches,
            Backend::HuggingFace(hf) => &hf.caches,
        }
    }
}

/// A tokenizer, cheap to clone and share between threads.
#[derive(Clone)]
pub struct Encoding {
    name: String,
    backend: Backend,
}

impl std::fmt::Debug for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Encoding({:?})", self.name)
    }
}

impl Encoding {
    /// A built-in encoding name (`cl100k_base`, ...) or the path of a Hugging Face `tokenizer.json`.
    pub fn load(spec: &str) -> Result<Encoding, Error> {
        if let Some(tiktoken) = builtin(spec) {
            return Ok(Encoding { name: spec.to_string(), backend: Backend::Tiktoken(tiktoken.clone()) });
        }
        let path = Path::new(spec);
        if !spec.ends_with(".json") && !path.exists() {
            return Err(Error::Tokenizer(format!(
                "unknown encoding {spec:?}: use one of {} or the path of a tokenizer.json",
                BUILTIN_ENCODINGS.join(", ")
            )));
        }
        if !path.exists() {
            return Err(Error::NotFound(path.to_path_buf()));
        }
        let cannot_load = |e: &dyn std::fmt::Display| {
            Error::Tokenizer(format!("{}: cannot load tokenizer: {e}", path.display()))
        };
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display().to_string(), e))?;
        let mut json: serde_json::Value = serde_json::from_str(&text).map_err(|e| cannot_load(&e))?;
        // Counts must be those of the `tokenizers` wheel, whose regex engine is not the crate's.
        onig::read_regexes_as_onig(&mut json);
        let mut tokenizer: tokenizers::Tokenizer = json.to_string().parse().map_err(|e| cannot_load(&e))?;
        // Count every token of every text: truncation or padding configured in the file would hide some.
        tokenizer.with_truncation(None).map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        tokenizer.with_padding(None);
        let native = HfBpe::recognize(&tokenizer);
        Ok(Encoding {
            name: spec.to_string(),
            backend: Backend::HuggingFace(Arc::new(HuggingFace {
                tokenizer,
                native,
                caches: CachePool::default(),
            })),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// What runs the encoding: `tiktoken` (a built-in encoding), `native-bpe` (a tokenizer.json on the
    /// native byte-level BPE path, texts that hold an added token aside) or `tokenizers` (the crate).
    pub fn backend(&self) -> &'static str {
        match &self.backend {
            Backend::Tiktoken(_) => "tiktoken",
            Backend::HuggingFace(hf) if hf.native.is_ok() => "native-bpe",
            Backend::HuggingFace(_) => "tokenizers",
        }
    }

    /// Why a tokenizer.json is not on the native path; None when it is, and for built-in encodings.
    pub fn fallback_reason(&self) -> Option<&str> {
        match &self.backend {
            Backend::HuggingFace(hf) => hf.native.as_ref().err().map(String::as_str),
            Backend::Tiktoken(_) => None,
        }
    }

    /// The tiktoken vocabulary, for built-in encodings.
    pub fn tiktoken(&self) -> Option<&Tiktoken> {
        match &self.backend {
            Backend::Tiktoken(t) => Some(t),
            Backend::HuggingFace(_) => None,
        }
    }

    /// A per-thread counter. With `special_tokens`, text such as `<|endoftext|>` counts as the special
    /// token; otherwise it is ordinary text (tiktoken's `encode_ordinary`).
    pub fn counter(&self, special_tokens: bool) -> Counter {
        Counter { backend: self.backend.clone(), special_tokens, cache: self.backend.caches().take() }
    }

    /// Token ids of `text`.
    pub fn encode(&self, text: &str, special_tokens: bool) -> Result<Vec<Rank>, Error> {
        match &self.backend {
            Backend::Tiktoken(t) => {
                let mut ids = Vec::new();
                t.for_each_segment(text, special_tokens, |segment| match segment {
                    Segment::Special(rank) => ids.push(rank),
                    Segment::Ordinary(text) => {
                        t.pretokenizer.for_each(text, |r| {
                            let piece = &text.as_bytes()[r];
                            if let Some(rank) = t.ranks.get(piece) {
                                ids.push(rank);
                            } else {
                                let bounds = bpe::merge_boundaries(&t.ranks, piece);
                                ids.extend(bounds.windows(2).map(|w| {
                                    t.ranks.get(&piece[w[0]..w[1]]).expect("merged parts are tokens")
                                }));
                            }
                        })
                    }
                });
                Ok(ids)
            }
            Backend::HuggingFace(hf) => match &hf.native {
                Ok(native) if !native.has_added_token(text) => {
                    let mut ids = Vec::new();
                    native
                        .pretokenizer
                        .for_each(text, |r| native.encode_piece(&text.as_bytes()[r], &mut ids));
                    Ok(ids)
                }
                _ => hf
                    .tokenizer
                    .encode(text, false)
                    .map(|e| e.get_ids().to_vec())
                    .map_err(|e| Error::Tokenizer(e.to_string())),
            },
        }
    }

    /// The bytes of token ids (which need not be valid UTF-8 on their own).
    pub fn decode_bytes(&self, ids: &[Rank]) -> Result<Vec<u8>, Error> {
        match &self.backend {
            Backend::Tiktoken(t) => {
                let mut out = Vec::new();
                for &id in ids {
                    if let Some(bytes) = t.ranks.token_bytes(id) {
                        out.extend_from_slice(bytes);
                    } else if let Some((s, _)) = t.special_tokens.iter().find(|(_, r)| *r == id) {
                        out.extend_from_slice(s.as_bytes());
                    } else {
                        return Err(Error::Tokenizer(format!("token id {id} is not in {}", self.name)));
                    }
                }
                Ok(out)
            }
            Backend::HuggingFace(hf) => hf
                .tokenizer
                .decode(ids, false)
                .map(String::into_bytes)
                .map_err(|e| Error::Tokenizer(e.to_string())),
        }
    }
}

enum Segment<'t> {
    Ordinary(&'t str),
    Special(Rank),
}

impl Tiktoken {
    fn for_each_segment<'t>(&self, text: &'t str, special_tokens: bool, mut f: impl FnMut(Segment<'t>)) {
        if !special_tokens {
            return f(Segment::Ordinary(text));
        }
        let mut pos = 0;
        for m in self.special_regex.find_iter(text) {
            if m.start() > pos {
                f(Segment::Ordinary(&text[pos..m.start()]));
            }
            let rank = self.special_tokens.iter().find(|(s, _)| *s == m.as_str()).map(|(_, r)| *r);
            f(Segment::Special(rank.expect("matched a special token")));
            pos = m.end();
        }
        if pos < text.len() {
            f(Segment::Ordinary(&text[pos..]));
        }
    }
}

/// Pieces up to this many bytes have their token count cached per thread.
const CACHED_PIECE_MAX_LEN: usize = 64;
/// The per-thread cache is emptied when it grows past this many pieces, which bounds its memory.
const CACHE_MAX_ENTRIES: usize = 1 << 20;

/// Counts tokens; holds a per-thread cache of pre-token counts, so create one per worker thread. The
/// cache comes warm from the counters of the same tokenizer that are done, and goes back when this one
/// is dropped.
pub struct Counter {
    backend: Backend,
    special_tokens: bool,
    cache: PieceCounts,
}

impl Counter {
    /// The exact number of tokens in `text`.
    pub fn count(&mut self, text: &str) -> Result<u64, Error> {
        match &self.backend {
            Backend::Tiktoken(t) => {
                let mut total = 0u64;
                let cache = &mut self.cache;
                t.for_each_segment(text, self.special_tokens, |segment| match segment {
                    Segment::Special(_) => total += 1,
                    Segment::Ordinary(text) => {
                        total += count_pieces(t.as_ref(), &t.pretokenizer, cache, text)
                    }
                });
                Ok(total)
            }
            Backend::HuggingFace(hf) => match &hf.native {
                Ok(native) if !native.has_added_token(text) => {
                    Ok(count_pieces(native, &native.pretokenizer, &mut self.cache, text))
                }
                _ => hf
                    .tokenizer
                    .encode_fast(text, false)
                    .map(|e| e.len() as u64)
                    .map_err(|e| Error::Tokenizer(e.to_string())),
            },
        }
    }
}

/// Slots of the cache of the most recent short pieces (2^17 x 16 bytes: 2 MB). On the benchmark
/// corpus, 2^16 counted 7% faster than 2^14 (more pieces hit), and 2^17 as fast as 2^16; on text with
/// more distinct pieces (`tokenlens bench`'s corpus, drawn from the whole vocabulary) 2^17 counted 7%
/// faster than 2^16. 2^18 was no faster on either.
const HOT_SLOTS_BITS: u32 = 17;
/// A hot slot holds a short piece's key with its token count in the top 4 bits, which the key leaves
/// free: its top byte is the piece's length, at most 15, and so is the count (a token has a byte).
const HOT_COUNT_SHIFT: u32 = 124;

/// Per-thread memory of pre-token counts: a cache that keeps the frequent short pieces close to the
/// CPU (each in its own slot, or another of the same cache line), and a map of the longer pieces
/// seen twice by their bytes.
///
/// A short piece that is not in its line is looked up in the vocabulary or merged again: a map of
/// every short piece behind the lines was no faster on English text, and 6% slower on Chinese, where
/// nearly every piece is new. Long pieces enter their map on their second sight, not their first:
/// copying and inserting every new one took a third of the time on Chinese text.
struct PieceCounts {
    hot: Box<[u128]>,
    long: FxHashMap<Box<[u8]>, u32>,
    /// Fingerprints of the last long pieces merged, one per slot, to tell a second sight.
    seen: Box<[u32]>,
}

impl Drop for Counter {
    fn drop(&mut self) {
        let cache = std::mem::replace(&mut self.cache, PieceCounts::placeholder());
        self.backend.caches().give(cache);
    }
}

/// At most this many warm caches wait for a counter, per tokenizer.
const POOLED_CACHES_MAX: usize = 16;
/// A cache with more pieces than this goes back to the pool with its hot slots only, so that what the
/// pool keeps stays small (a few MB per cache at most).
const POOLED_PIECES_MAX: usize = 1 << 16;

/// The caches of the counters of one tokenizer that are done (per process for a built-in encoding),
/// so that a caller who counts in many calls (one text at a time, or batch after batch) neither starts
/// cold nor clears a new 2 MB table of hot slots each time. Counts are exact whatever a cache holds.
#[derive(Default)]
struct CachePool(Mutex<Vec<PieceCounts>>);

impl CachePool {
    fn take(&self) -> PieceCounts {
        self.0.lock().ok().and_then(|mut caches| caches.pop()).unwrap_or_default()
    }

    fn give(&self, mut cache: PieceCounts) {
        if cache.long.len() > POOLED_PIECES_MAX {
            cache.long = FxHashMap::default();
        }
        if let Ok(mut caches) = self.0.lock() {
            if caches.len() < POOLED_CACHES_MAX {
                caches.push(cache);
            }
        }
    }
}

impl PieceCounts {
    /// An empty stand-in that allocates nothing, for a counter being dropped.
    fn placeholder() -> PieceCounts {
        PieceCounts { hot: Box::default(), long: FxHashMap::default(), seen: Box::default() }
    }
}

impl Default for PieceCounts {
    fn default() -> Self {
        // Key 0 is never a piece's key (its length byte would be 0), so it marks an empty slot.
        PieceCounts {
            hot: vec![0; 1 << HOT_SLOTS_BITS].into(),
            long: Default::default(),
            seen: vec![0; 1 << SEEN_SLOTS_BITS].into(),
        }
    }
}

const HOT_KEY_BITS: u128 = u128::MAX >> (128 - HOT_COUNT_SHIFT);
/// Hot slots per 64-byte cache line: a piece not in its own slot may be in another of its line.
const HOT_LINE_SLOTS: usize = 4;
/// Slots of [`PieceCounts::seen`]: a long piece that comes back among the next few thousand is
/// kept.
const SEEN_SLOTS_BITS: u32 = 12;

impl PieceCounts {
    /// The count of a short piece that is not in its hot slot: from another slot of the line (then
    /// swapped into its own), else from the vocabulary or by merging; then it takes its slot, and
    /// the pieces from there on move one slot along the line.
    #[inline(never)]
    fn short_miss(&mut self, t: &impl PieceModel, piece: &[u8], key: u128, home: usize) -> u32 {
        let line = home & !(HOT_LINE_SLOTS - 1);
        for other in line..line + HOT_LINE_SLOTS {
            let slot = self.hot[other];
            if slot & HOT_KEY_BITS == key {
                self.hot.swap(home, other);
                return (slot >> HOT_COUNT_SHIFT) as u32;
            }
        }
        let n = if t.is_one_token(piece) { 1 } else { merged_count(t, self, piece) };
        debug_assert!(n <= bpe::SHORT_KEY_MAX_LEN as u32);
        // From its own slot on, the line keeps the most recent pieces first; the last one goes.
        let at = |k: usize| line | ((home + k) % HOT_LINE_SLOTS);
        for k in (1..HOT_LINE_SLOTS).rev() {
            self.hot[at(k)] = self.hot[at(k - 1)];
        }
        self.hot[home] = key | (n as u128) << HOT_COUNT_SHIFT;
        n
    }

    /// Whether a long piece's fingerprint is in its slot (it was merged a short while ago, or,
    /// rarely, another piece with the same fingerprint was); else it takes the slot.
    fn seen_before(&mut self, piece: &[u8]) -> bool {
        let hash = self.long.hasher().hash_one(piece);
        let slot = &mut self.seen[hash as usize & ((1 << SEEN_SLOTS_BITS) - 1)];
        // Never 0, which marks an empty slot.
        let fingerprint = (hash >> 32) as u32 | 1;
        let seen = *slot == fingerprint;
        *slot = fingerprint;
        seen
    }
}

#[inline]
fn hot_slot(key: u128) -> usize {
    let mixed = ((key as u64) ^ ((key >> 64) as u64).rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> (64 - HOT_SLOTS_BITS)) as usize
}

/// How a BPE counts one pre-token when it is not cached: the only step in which the built-in
/// encodings and the native tokenizer.json path differ.
trait PieceModel {
    /// Whether the piece is one token as it stands, without merging.
    fn is_one_token(&self, piece: &[u8]) -> bool;
    /// The piece's token count by merging.
    fn merged_count(&self, piece: &[u8]) -> u32;
    /// Whether the piece merges as its two sides before and after byte `at` would on their own (see
    /// [`bpe::Ranks::splits_at`]); false where it is not known.
    fn splits_at(&self, piece: &[u8], at: usize) -> bool;
}

impl PieceModel for Tiktoken {
    #[inline]
    fn is_one_token(&self, piece: &[u8]) -> bool {
        self.ranks.get(piece).is_some()
    }

    fn merged_count(&self, piece: &[u8]) -> u32 {
        bpe::merged_count(&self.ranks, piece) as u32
    }

    #[inline]
    fn splits_at(&self, piece: &[u8], at: usize) -> bool {
        self.ranks.splits_at(piece, at)
    }
}

/// The token count of a piece that is no token, by merging: the segments between the places where
/// no token can span are counted on their own, each through the cache. On Chinese, whose pre-tokens
/// are whole clauses, two places between characters in three are such places for cl100k, and
/// short segments repeat.
fn merged_count(t: &impl PieceModel, cache: &mut PieceCounts, piece: &[u8]) -> u32 {
    let mut start = 0;
    let mut total = 0;
    for end in 1..piece.len() {
        if t.splits_at(piece, end) {
            total += count_piece(t, cache, piece, start..end) as u32;
            start = end;
        }
    }
    if start == 0 {
        return t.merged_count(piece);
    }
    total + count_piece(t, cache, piece, start..piece.len()) as u32
}

/// The token count of `text`, pre-token by pre-token.
#[inline]
fn count_pieces(
    t: &impl PieceModel,
    pretokenizer: &Pretokenizer,
    cache: &mut PieceCounts,
    text: &str,
) -> u64 {
    let mut total = 0;
    pretokenizer.for_each(
        text,
        #[inline(always)]
        |r| total += count_piece(t, cache, text.as_bytes(), r),
    );
    total
}

/// The token count of the piece `text[range]`.
#[inline(always)]
fn count_piece(t: &impl PieceModel, cache: &mut PieceCounts, text: &[u8], range: Range<usize>) -> u64 {
    let piece = &text[range.clone()];
    if piece.len() <= bpe::SHORT_KEY_MAX_LEN {
        let key = bpe::short_key_in(text, range);
        let home = hot_slot(key);
        let slot = cache.hot[home];
        if slot & HOT_KEY_BITS == key {
            return (slot >> HOT_COUNT_SHIFT) as u64;
        }
        return cache.short_miss(t, piece, key, home).into();
    }
    if t.is_one_token(piece) {
        return 1;
    }
    if piece.len() > CACHED_PIECE_MAX_LEN {
        return merged_count(t, cache, piece).into();
    }
    if let Some(&n) = cache.long.get(piece) {
        return n.into();
    }
    let n = merged_count(t, cache, piece);
    if cache.seen_before(piece) {
        if cache.long.len() >= CACHE_MAX_ENTRIES {
            cache.long.clear();
        }
        cache.long.insert(piece.into(), n);
    }
    n.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_known_strings() {
        let enc = Encoding::load("cl100k_base").unwrap();
        let mut counter = enc.counter(false);
        assert_eq!(enc.encode("hello world", false).unwrap(), vec![15339, 1917]);
        assert_eq!(counter.count("hello world").unwrap(), 2);
        assert_eq!(counter.count("").unwrap(), 0);
        // Text that looks like a special token is ordinary text unless asked otherwise.
        assert!(counter.count("<|endoftext|>").unwrap() > 1);
        assert_eq!(enc.counter(true).count("a<|endoftext|>b").unwrap(), 3);
        assert_eq!(enc.encode("<|endoftext|>", true).unwrap(), vec![100257]);
    }

    #[test]
    fn encode_decode_round_trip_and_count_agree() {
        for name in BUILTIN_ENCODINGS {
            let enc = Encoding::load(name).unwrap();
            let mut counter = enc.counter(false);
            for text in ["Hello,  wörld!\r\n\n深度学习 👩‍👩‍👧", &"a".repeat(5000), &" ".repeat(3000)]
            {
                let ids = enc.encode(text, false).unwrap();
                assert_eq!(enc.decode_bytes(&ids).unwrap(), text.as_bytes());
                assert_eq!(counter.count(text).unwrap(), ids.len() as u64);
            }
        }
    }

    #[test]
    fn cache_pool_keeps_few_and_small_caches() {
        let pool = CachePool::default();
        let mut big = pool.take();
        big.long
            .extend((0..=POOLED_PIECES_MAX).map(|i| (format!("a long piece {i}").into_bytes().into(), 3)));
        big.hot[5] = 7;
        pool.give(big);
        // Back without its map, over the limit, but with its hot slots.
        let back = pool.take();
        assert!(back.long.is_empty() && back.hot[5] == 7);
        let mut small = back;
        small.long.insert(b"a long piece".as_slice().into(), 2);
        pool.give(small);
        assert_eq!(pool.take().long.get(b"a long piece".as_slice()), Some(&2));
        for _ in 0..POOLED_CACHES_MAX + 3 {
            pool.give(PieceCounts::default());
        }
        assert_eq!(pool.0.lock().unwrap().len(), POOLED_CACHES_MAX);
    }

    /// A model whose pieces are as many tokens as bytes, and which counts its merges.
    struct Bytes(std::cell::Cell<u32>);

    impl PieceModel for Bytes {
        fn is_one_token(&self, _: &[u8]) -> bool {
            false
        }
        fn merged_count(&self, piece: &[u8]) -> u32 {
            self.0.set(self.0.get() + 1);
            piece.len() as u32
        }
        fn splits_at(&self, _: &[u8], _: usize) -> bool {
            false
        }
    }

    #[test]
    fn pieces_split_where_no_token_spans_count_as_whole_merges() {
        // Pieces of random tokens (Chinese ones more often), and of random bytes, counted through
        // the cache (which splits them) and by one merge of the whole piece.
        let mut random = crate::testing::xorshift(0x5a1);
        for name in ["cl100k_base", "o200k_base"] {
            let encoding = Encoding::load(name).unwrap();
            let t = encoding.tiktoken().unwrap();
            let tokens: Vec<&[u8]> = t.ranks.iter().map(|(bytes, _)| bytes).collect();
            let chinese: Vec<&[u8]> = tokens
                .iter()
                .copied()
                .filter(|b| {
                    std::str::from_utf8(b)
                        .is_ok_and(|s| s.chars().all(|c| ('\u{4E00}'..='\u{9FFF}').contains(&c)))
                })
                .collect();
            let mut cache = PieceCounts::default();
            let mut split = 0;
            for len in (2..=200).flat_map(|len| [len; 20]) {
                let mut piece = Vec::new();
                while piece.len() < len {
                    match random(8) {
                        0 => piece.push(random(256) as u8),
                        1..=3 => piece.extend_from_slice(tokens[random(tokens.len())]),
                        _ => piece.extend_from_slice(chinese[random(chinese.len())]),
                    }
                }
                piece.truncate(len);
                split += usize::from((1..len).any(|at| t.splits_at(&piece, at)));
                let whole = bpe::merged_count(&t.ranks, &piece) as u64;
                assert_eq!(count_piece(t, &mut cache, &piece, 0..len), whole, "{name}: {piece:?}");
            }
            assert!(split > 1000, "{name}: {split} pieces split");
        }
    }

    #[test]
    fn pieces_that_share_a_hot_slot_stay_in_its_line() {
        let model = Bytes(Default::default());
        let mut cache = PieceCounts::default();
        let home = hot_slot(bpe::short_key(b"0"));
        let rivals: Vec<String> = (0u32..)
            .map(|i| format!("{i:x}"))
            .filter(|t| hot_slot(bpe::short_key(t.as_bytes())) == home)
            .take(3)
            .collect();
        for _ in 0..5 {
            for text in &rivals {
                let count = count_piece(&model, &mut cache, text.as_bytes(), 0..text.len());
                assert_eq!(count, text.len() as u64);
            }
        }
        assert_eq!(model.0.get(), 3, "each piece merged once");
    }

    #[test]
    fn long_pieces_are_kept_from_their_second_sight() {
        let model = Bytes(Default::default());
        let mut cache = PieceCounts::default();
        let count =
            |cache: &mut PieceCounts, text: &str| count_piece(&model, cache, text.as_bytes(), 0..text.len());
        // Pieces seen once are merged and not kept.
        for i in 0..1000 {
            assert_eq!(count(&mut cache, &format!("a long piece, number {i:05}")), 26);
        }
        assert!(cache.long.is_empty());
        assert_eq!(model.0.get(), 1000);
        // One seen again is kept, and is not merged a third time.
        for _ in 0..3 {
            assert_eq!(count(&mut cache, "a long piece, number 00999"), 26);
        }
        assert_eq!(cache.long.len(), 1);
        assert_eq!(model.0.get(), 1001);
    }

    #[test]
    fn unknown_names_are_clear_errors() {
        let err = Encoding::load("cl100k").unwrap_err().to_string();
        assert!(err.contains("unknown encoding"), "{err}");
        assert!(matches!(Encoding::load("/nonexistent/tokenizer.json"), Err(Error::NotFound(_))));
    }
}
