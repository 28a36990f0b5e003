//! `dedup`: exact and near-duplicate records, and the n-gram diversity of a dataset.
//!
//! # Texts
//!
//! A record's *text* ([`normalize_into`]) is what a model is trained on, in a form that keeps the
//! record's structure: chat records give `role U+001F content U+001E` per message (the parts of a
//! content-part list joined by `\n`), prompt/completion records `prompt U+001F completion`, text
//! records the text unchanged, and `--field` the field's strings joined by U+001E. The contents are
//! not changed at all (no trimming, no Unicode normalization, no case folding): two records are
//! *exact duplicates* when these texts are byte-identical, tested by their xxh3-128 hashes.
//!
//! For near duplicates the text is cut into *words*: runs of alphanumeric characters, lower-cased;
//! everything else (punctuation, whitespace, the separators above) only separates words, so case,
//! punctuation and spacing do not matter. CJK ideographs and kana are one word each (those scripts
//! have no spaces). *Shingles* are the word n-grams (`ngram`, default 5) of a record; a record with
//! fewer words has one shingle of all its words, and a record without words has none (it takes part
//! in exact deduplication only).
//!
//! # MinHash and LSH
//!
//! Each word is hashed once (its lower-cased UTF-8 bytes, 8 at a time) and each shingle once, by a
//! rolling hash of its word hashes (their XOR, each rotated by its distance to the shingle's end,
//! then mixed). The signature is a *one-permutation MinHash with optimal densification* (Li, Owen
//! and Zhang 2012; Shrivastava 2017), which costs O(shingles + `num_perm`) instead of the
//! O(shingles x `num_perm`) of one hash function per value: the `num_perm` values are *bins*; a
//! shingle's 64-bit hash picks its bin (the high 32 bits) and its rank there (the low 32 bits), and a
//! bin's value is the smallest rank among its shingles. A bin without shingles takes the value of the
//! first non-empty bin along a probe sequence of its own, the same for every record.
//!
//! For two records with Jaccard similarity `s` and any bin, the two values are equal with
//! probability `s` over the choice of the hash function: the shingles of either record that fall in
//! the bin (for an empty bin: in the first bin of its sequence that either record fills) are a
//! random sample of their union, and the two values agree exactly when the smallest-ranked shingle of
//! that sample is in both records. The share of equal values is thus an unbiased estimate of `s`,
//! with a spread close to that of `num_perm` independent permutations, `sqrt(s (1 - s) / num_perm)`
//! (less for records with many shingles, whose bins sample without replacement; a little more for
//! records with far fewer shingles than bins, whose densified bins repeat values; the tests measure
//! both). The first `bands * rows` values are cut into `bands` bands of `rows` values; a band's key is
//! a 64-bit hash of its values and its index. Records sharing a band key are *candidates*; the
//! probability that two records with Jaccard similarity `s` become candidates is
//! [`detection_probability`], `1 - (1 - s^rows)^bands`: the tests find it within 0.01 for records of
//! a thousand shingles; with far fewer shingles than bins, repeated values make detection somewhat
//! more likely (more candidates to verify, none lost).
//!
//! With [`DedupOptions::exact_only`] no words are cut and nothing is signed, and the input is read
//! once.
//!
//! # Memory and verification
//!
//! Signatures are not kept for every record. The first pass keeps per record its band keys
//! (`8 * bands` = 112 bytes with the defaults; none for exact duplicates or records without words)
//! and 36 bytes of integers (its length, its first identical record, its file and line), plus the
//! exact-hash map (32 to 64 bytes per distinct text) until [`DedupIndex::finish`]. `finish` drops
//! the map and sorts the band keys band by band (32 bytes a record, one band at a time: the pairs
//! and their sorted copy) into groups of records sharing a key, freeing each band's keys once it is
//! grouped, and needs the signatures of the candidate records only.
//! A signature is kept as 8-bit values (b-bit MinHash: the chance, 2^-8, that two different
//! minima agree in their low 8 bits is corrected for), `num_perm` = 112 bytes. While the signatures
//! of all the records in the LSH index fit [`DedupConfig::held_signature_bytes`] (64 MiB by default,
//! about 600,000 records), the first pass keeps them and the input is read once; past that it drops
//! them all, and [`dedup()`] reads its input a second time for the candidates' signatures (parsing
//! only the candidates). Grouping lists each group's members (4 bytes each, one list per band
//! where the groups differ), and the results take about 130 bytes a record. Measured on a 2 GiB file
//! of 2.67 M distinct records that are all candidates (`benches/test_memory.py`): about 600 MB at
//! the end of the first pass; `tokenlens dedup` as a whole peaks at 750-790 MB (GNU time, several
//! runs). It peaked at 880 MB when the candidates were listed by sorting every group's members as
//! 8-byte values (one per member of every group of every band) rather than by marking them, and all
//! band keys were kept until every band was grouped.
//!
//! Every candidate pair is *verified* before it is joined: the Jaccard similarity estimated from
//! the full `num_perm` signature values must reach `threshold` (with 112 values the estimate's
//! standard deviation is `sqrt(s (1 - s) / 112)`, about 0.04 at s = 0.8). Within a group each record
//! is compared with the earlier members that are not yet in its cluster (at most
//! [`MAX_GROUP_WINDOW`] of them, which bounds the work of huge groups). Verified pairs are joined
//! with union-find; a cluster is a connected set of at least two distinct texts, with the exact
//! duplicates of its members added.
//!
//! # Determinism
//!
//! Hashing and signing are pure functions of the text; the collector sees the records in input
//! order and clustering runs on one thread. A cluster's id is the index of its first record; its
//! representative is its first record (`keep = first`) or its longest one in characters, ties to
//! the first (`keep = longest`). Nothing depends on the thread count or the chunking.
//!
//! # Diversity
//!
//! Distinct word 1-, 2- and 3-grams (words as above, n-grams within a record) over all records that
//! have text, exact duplicates included. Each n-gram is hashed to 64 bits and counted exactly in a
//! hash set up to [`EXACT_DISTINCT_LIMIT`] distinct values; above that a HyperLogLog with 2^14
//! registers takes over (relative standard error 1.04 / 128 = 0.8%). The limit keeps the sets
//! within a core's cache: with a limit of 2^17 the sets (2 MB each) missed the cache on nearly
//! every word, and diversity took about a fifth of `scan`'s time on text without copies, against
//! a seventh now (perf, `examples/scan_file.rs`). Threads keep their own counters and merge them,
//! which gives the same result whatever the split.

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{Map, Value};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

use crate::error::Error;
use crate::pipeline::{run, Event, Kernel, RunOptions};
use crate::reader::{LinesChunk, Source};
use crate::record::{codes, for_each_content_text, parse_line, Parsed, Problem, TextSpec};

/// Groups larger than this compare each record with the previous `MAX_GROUP_WINDOW` members only.
pub const MAX_GROUP_WINDOW: usize = 1024;

/// Distinct n-grams are counted exactly up to this many, then estimated.
pub const EXACT_DISTINCT_LIMIT: usize = 1 << 14;

/// Separates a role from its content, a prompt from its completion.
const UNIT_SEP: char = '\u{1F}';
/// Ends a message; separates the strings of a `--field` list.
const RECORD_SEP: char = '\u{1E}';

/// Which record a cluster keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// The record that comes first in the input.
    First,
    /// The record with the most characters; ties go to the first.
    Longest,
}

impl Keep {
    pub fn parse(name: &str) -> Result<Keep, Error> {
        match name {
            "first" => Ok(Keep::First),
            "longest" => Ok(Keep::Longest),
            other => Err(Error::InvalidInput(format!(
                "unknown keep policy {other:?}: expected \"first\" or \"longest\""
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Keep::First => "first",
            Keep::Longest => "longest",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct DedupConfig {
    /// Words per shingle.
    pub ngram: usize,
    /// MinHash signature length; the first `bands * rows` values make the LSH bands, all of them
    /// verify candidates.
    pub num_perm: usize,
    pub bands: usize,
    pub rows: usize,
    /// Estimated Jaccard similarity that a candidate pair must reach to be joined.
    pub threshold: f64,
    pub keep: Keep,
    /// Memory the first pass may spend keeping the records' signatures, so that the candidates need
    /// not be read again (see the module docs).
    pub held_signature_bytes: usize,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            ngram: 5,
            num_perm: 112,
            bands: 14,
            rows: 8,
            threshold: 0.8,
            keep: Keep::First,
            held_signature_bytes: 64 << 20,
        }
    }
}

impl DedupConfig {
    pub fn validate(&self) -> Result<(), Error> {
        let fail = |msg: String| Err(Error::InvalidInput(msg));
        if self.ngram == 0 {
            return fail("ngram must be at least 1".into());
        }
        if self.bands == 0 || self.rows == 0 {
            return fail("bands and rows must be at least 1".into());
        }
        if self.num_perm > 4096 {
            return fail(format!("num_perm {} is over the limit of 4096", self.num_perm));
        }
        if self.bands * self.rows > self.num_perm {
            return fail(format!(
                "bands * rows ({} * {}) is more than num_perm ({})",
                self.bands, self.rows, self.num_perm
            ));
        }
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return fail(format!("threshold {} is not in (0, 1]", self.threshold));
        }
        Ok(())
    }
}

/// The probability that two records with Jaccard similarity `jaccard` share at least one band:
/// `1 - (1 - s^rows)^bands`.
pub fn detection_probability(bands: usize, rows: usize, jaccard: f64) -> f64 {
    1.0 - (1.0 - jaccard.powi(rows as i32)).powi(bands as i32)
}

/// `(s, detection_probability(bands, rows, s))` for s = 0.50, 0.55, ..., 0.95.
pub fn detection_table(bands: usize, rows: usize) -> Vec<(f64, f64)> {
    (10..20)
        .map(|i| {
            let s = i as f64 * 0.05;
            (s, detection_probability(bands, rows, s))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Texts

/// The record's text for deduplication (see the module docs), written into `out` (cleared first).
pub fn normalize_into(record: &Map<String, Value>, spec: &TextSpec, out: &mut String) -> Result<(), Problem> {
    out.clear();
    match spec {
        TextSpec::Field(_) => {
            let mut first = true;
            spec.for_each_text(record, |text| {
                if !first {
                    out.push(RECORD_SEP);
                }
                first = false;
                out.push_str(text);
            })
        }
        TextSpec::Auto => {
            if let Some(messages) = record.get("messages") {
                let Value::Array(messages) = messages else {
                    return Err(Problem::new(codes::NO_TEXT, "\"messages\" is not a list"));
                };
                for message in messages {
                    out.push_str(message.get("role").and_then(Value::as_str).unwrap_or(""));
                    out.push(UNIT_SEP);
                    if let Some(content) = message.get("content") {
                        let mut first = true;
                        for_each_content_text(content, &mut |text| {
                            if !first {
                                out.push('\n');
                            }
                            first = false;
                            out.push_str(text);
                        });
                    }
                    out.push(RECORD_SEP);
                }
                return Ok(());
            }
            if let Some(Value::String(text)) = record.get("text") {
                out.push_str(text);
                return Ok(());
            }
            let prompt = record.get("prompt").and_then(Value::as_str);
            let completion = record.get("completion").and_then(Value::as_str);
            if prompt.is_none() && completion.is_none() {
                return Err(Problem::new(
                    codes::NO_TEXT,
                    "no text: expected \"messages\", \"text\" or \"prompt\"/\"completion\" (or choose one with --field)",
                ));
            }
            out.push_str(prompt.unwrap_or(""));
            out.push(UNIT_SEP);
            out.push_str(completion.unwrap_or(""));
            Ok(())
        }
    }
}

/// The record's text for deduplication, or `None` when it has none.
pub fn normalize(record: &Map<String, Value>, spec: &TextSpec) -> Option<String> {
    let mut out = String::new();
    normalize_into(record, spec, &mut out).ok().map(|_| out)
}

/// OR-ing bit 5 lower-cases ASCII letters and leaves digits as they are.
const ASCII_LOWER: u64 = 0x2020_2020_2020_2020;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
const WORD_SEED: u64 = 0x776f_7264_7365_6564; // "wordseed"

#[inline(always)]
fn mix_word_block(h: u64, block: u64) -> u64 {
    let h = (h ^ block).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^ (h >> 32)
}

/// The hash of a word (its lower-cased UTF-8 bytes), 8 bytes at a time, the last block padded with
/// zeros (words hold no NUL byte, so the blocks tell them apart).
fn hash_word(word: &[u8]) -> u64 {
    word.chunks(8).fold(WORD_SEED, |h, chunk| {
        let mut block = [0u8; 8];
        block[..chunk.len()].copy_from_slice(chunk);
        mix_word_block(h, u64::from_le_bytes(block))
    })
}

/// Scripts written without spaces: each character is a word.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// Scratch buffers of [`hash_words`].
#[derive(Clone, Debug, Default)]
struct WordScratch {
    /// The text and at least 8 zero bytes, to a multiple of 64 bytes: 8-byte loads need no checks.
    padded: Vec<u8>,
    /// Bit `i % 64` of `mask[i / 64]` is set when byte `i` may belong to a word.
    mask: Vec<u64>,
    /// A word with non-ASCII characters, lower-cased.
    word: Vec<u8>,
}

/// Whether a byte may belong to a word: an ASCII alphanumeric or a byte of a non-ASCII character.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn word_byte_mask64_scalar(block: &[u8; 64]) -> u64 {
    let word_byte = |b: u8| b >= 0x80 || b.is_ascii_alphanumeric();
    block.iter().enumerate().fold(0, |mask, (i, &b)| mask | u64::from(word_byte(b)) << i)
}

#[cfg(not(target_arch = "x86_64"))]
use word_byte_mask64_scalar as word_byte_mask64;

/// [`word_byte_mask64_scalar`] 16 bytes at a time with SSE2, which every x86-64 CPU has.
#[cfg(target_arch = "x86_64")]
fn word_byte_mask64(block: &[u8; 64]) -> u64 {
    use std::arch::x86_64::*;
    let mut mask = 0;
    for (k, part) in block.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is enabled on every x86-64 target; `part` has the 16 bytes the unaligned
        // load reads.
        let word = unsafe {
            let x = _mm_loadu_si128(part.as_ptr().cast());
            let at_least = |x, c: u8| _mm_cmpgt_epi8(x, _mm_set1_epi8(c as i8 - 1));
            let at_most = |x, c: u8| _mm_cmplt_epi8(x, _mm_set1_epi8(c as i8 + 1));
            // Signed comparisons: bytes of non-ASCII characters are negative and in no range.
            let lower = _mm_or_si128(x, _mm_set1_epi8(0x20));
            let digit = _mm_and_si128(at_least(x, b'0'), at_most(x, b'9'));
            let letter = _mm_and_si128(at_least(lower, b'a'), at_most(lower, b'z'));
            // The sign bits: alphanumerics, and the non-ASCII bytes themselves.
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(digit, letter), x))
        };
        mask |= u64::from(word as u16) << (16 * k);
    }
    mask
}

/// Appends the hash of each word of `text` to `words` (see the module docs for what a word is).
/// The bytes are classified 16 at a time into a bit mask whose runs are the candidate words; the
/// runs of ASCII alphanumerics (nearly all of them in most data) are hashed where they are.
fn hash_words(text: &str, scratch: &mut WordScratch, words: &mut Vec<u64>) {
    words.clear();
    let WordScratch { padded, mask, word } = scratch;
    padded.clear();
    padded.extend_from_slice(text.as_bytes());
    padded.resize((text.len() + 8).next_multiple_of(64), 0);
    mask.clear();
    mask.extend(padded.chunks_exact(64).map(|block| word_byte_mask64(block.try_into().expect("64 bytes"))));
    let mut run_start = None;
    let mut before = 0; // the bit of the byte before the current 64
    for (at, &bits) in mask.iter().enumerate() {
        // Set where a run of word bytes starts or ends (the zeros at the end close the last run).
        let mut edges = bits ^ (bits << 1 | before);
        before = bits >> 63;
        while edges != 0 {
            let edge = at * 64 + edges.trailing_zeros() as usize;
            edges &= edges - 1;
            match run_start.take() {
                None => run_start = Some(edge),
                Some(start) => hash_run(text, padded, start, edge, word, words),
            }
        }
    }
}

/// Hashes the words of `text[start..end]`, a run of ASCII alphanumerics and non-ASCII characters;
/// `padded` is `text` followed by zeros.
#[inline(always)]
fn hash_run(text: &str, padded: &[u8], start: usize, end: usize, word: &mut Vec<u8>, words: &mut Vec<u64>) {
    let mut h = WORD_SEED;
    let mut at = start;
    loop {
        let left = end - at;
        let keep = u64::MAX >> (64 - 8 * left.min(8));
        let block = u64::from_le_bytes(padded[at..at + 8].try_into().expect("8 bytes")) & keep;
        if block & HIGH_BITS != 0 {
            return hash_mixed_run(&text[start..end], word, words);
        }
        h = mix_word_block(h, (block | ASCII_LOWER) & keep);
        if left <= 8 {
            break;
        }
        at += 8;
    }
    words.push(h);
}

/// Hashes the words of a run with non-ASCII characters one character at a time: a non-ASCII
/// character that is not alphanumeric separates words, and CJK characters are words of their own.
fn hash_mixed_run(run: &str, word: &mut Vec<u8>, words: &mut Vec<u64>) {
    fn flush(word: &mut Vec<u8>, words: &mut Vec<u64>) {
        if !word.is_empty() {
            words.push(hash_word(word));
            word.clear();
        }
    }
    word.clear();
    let mut buf = [0u8; 4];
    for c in run.chars() {
        if !c.is_alphanumeric() {
            flush(word, words);
        } else if is_cjk(c) {
            flush(word, words);
            words.push(hash_word(c.encode_utf8(&mut buf).as_bytes()));
        } else {
            for lower in c.to_lowercase() {
                word.extend_from_slice(lower.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    flush(word, words);
}

#[inline]
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

// ---------------------------------------------------------------------------------------------
// Signing

/// What the collector needs of a record.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordSignature {
    /// xxh3-128 of the record's text.
    pub exact: u128,
    /// One key per band; empty when the text has no words.
    pub bands: Vec<u64>,
    /// Characters (Unicode scalar values) of the record's text.
    pub n_chars: u64,
    /// The full MinHash signature as stored values, for the local collector to keep; empty when the
    /// text has no words, and never sent from a shard.
    #[serde(skip)]
    pub minhash: Vec<Stored>,
}

/// Per-thread signing state: the densification probes and scratch buffers.
#[derive(Clone, Debug)]
pub struct Signer {
    config: DedupConfig,
    probes: Probes,
    scratch: WordScratch,
    words: Vec<u64>,
    bins: BinScratch,
    mins: Vec<u32>,
}

impl Signer {
    /// `config` must be valid ([`DedupConfig::validate`]).
    pub fn new(config: &DedupConfig) -> Signer {
        Signer {
            config: config.clone(),
            probes: Probes::new(config.num_perm),
            scratch: WordScratch::default(),
            words: Vec::new(),
            bins: BinScratch::default(),
            mins: vec![0; config.num_perm],
        }
    }

    pub fn config(&self) -> &DedupConfig {
        &self.config
    }

    /// The exact hash, band keys and length of a record's text.
    pub fn sign(&mut self, text: &str) -> RecordSignature {
        self.add_bands(exact_signature(text), text)
    }

    /// Adds the band keys and MinHash signature of `text` to its [`exact_signature`].
    fn add_bands(&mut self, mut sig: RecordSignature, text: &str) -> RecordSignature {
        if self.compute(text) {
            let rows = self.config.rows;
            sig.bands = (0..self.config.bands)
                .map(|band| band_key(band, &self.mins[band * rows..(band + 1) * rows]))
                .collect();
            sig.minhash = self.mins.iter().map(|&m| m as Stored).collect();
        }
        sig
    }

    /// The full MinHash signature of a text (`num_perm` values), or `None` when it has no words.
    pub fn minhash(&mut self, text: &str) -> Option<&[u32]> {
        self.compute(text).then_some(&self.mins[..])
    }

    /// The word hashes of the last text signed (for [`Diversity::add_words`]).
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Fills `words` and `mins`; false when the text has no words.
    fn compute(&mut self, text: &str) -> bool {
        hash_words(text, &mut self.scratch, &mut self.words);
        if self.words.is_empty() {
            return false;
        }
        let shingles = shingle_hashes(&self.words, self.config.ngram);
        one_permutation_minhash(shingles, &self.probes, &mut self.bins, &mut self.mins);
        true
    }
}

/// A record's signature without band keys: what exact deduplication needs.
pub fn exact_signature(text: &str) -> RecordSignature {
    RecordSignature {
        exact: xxh3_128(text.as_bytes()),
        bands: Vec::new(),
        n_chars: text.chars().count() as u64,
        minhash: Vec::new(),
    }
}

/// Rotation between the words of an n-gram (odd, so 64 positions get distinct rotations).
const NGRAM_ROTATION: u32 = 13;

/// An unmixed hash of each run of `n` consecutive words (none when there are fewer), rolled from one
/// to the next: the XOR of its word hashes, each rotated by its distance to the end. MinHash shingles
/// and the diversity n-grams both come from here.
fn ngram_hashes(words: &[u64], n: usize) -> impl Iterator<Item = u64> + '_ {
    let first_rotation = (n as u32).wrapping_sub(1).wrapping_mul(NGRAM_ROTATION);
    let first =
        words.get(..n).map(|head| head.iter().fold(0, |h: u64, &w| h.rotate_left(NGRAM_ROTATION) ^ w));
    let rest = words.get(n..).unwrap_or_default();
    let rolled = words.iter().zip(rest).scan(first.unwrap_or(0), move |h, (&leaving, &entering)| {
        *h = (*h ^ leaving.rotate_left(first_rotation)).rotate_left(NGRAM_ROTATION) ^ entering;
        Some(*h)
    });
    first.into_iter().chain(rolled)
}

/// The hashes of the word `n`-grams of `words` (one of all the words when there are fewer), mixed.
fn shingle_hashes(words: &[u64], n: usize) -> impl Iterator<Item = u64> + '_ {
    ngram_hashes(words, n.min(words.len())).map(fmix64)
}

/// Marks a bin without shingles (ranks are 32-bit).
const EMPTY_BIN: u64 = u64::MAX;

/// The bin of a 64-bit value among `k`: its high 32 bits scaled to `0..k`.
#[inline(always)]
fn bin_of(h: u64, k: usize) -> usize {
    (((h >> 32) * k as u64) >> 32) as usize
}

/// Where an empty bin looks for a value: the bins of `start + t * step` for t = 1, 2, ... (`step`
/// odd, so every bin comes up), the same for every record.
#[derive(Clone, Copy, Debug)]
struct Probe {
    start: u64,
    step: u64,
}

impl Probe {
    /// The bin probed in round `t` (from 1) among `k`.
    fn bin(self, t: u64, k: usize) -> usize {
        bin_of(self.start.wrapping_add(t.wrapping_mul(self.step)), k)
    }
}

/// Probe rounds whose bins are looked up in a table rather than computed. Where a share `f` of a
/// record's bins is full, an empty bin needs `1 / f` rounds on average: most find a value within these.
const TABLED_ROUNDS: usize = 16;

/// Signatures of up to this many values get tables of first visits ([`Probes::visit_order`]).
const VISIT_TABLE_MAX_BINS: usize = 254;
/// In [`Probes::visit_rank`]: a bin that another bin does not visit within `u16::MAX` rounds.
const NEVER: u8 = u8::MAX;

/// The probe sequences of `k` bins, and the bins of their first [`TABLED_ROUNDS`] rounds.
#[derive(Clone, Debug)]
struct Probes {
    sequences: Vec<Probe>,
    /// `first_rounds[(t - 1) * k + i]`: the bin that bin `i` probes in round `t`.
    first_rounds: Vec<u32>,
    /// `visit_order[i * k + r]`: the `r`-th distinct bin that bin `i` probes (from `r = 0`).
    /// Empty, as is `visit_rank`, when `k` is over [`VISIT_TABLE_MAX_BINS`].
    visit_order: Vec<u8>,
    /// `visit_rank[b * k + i]`: where bin `b` comes in `visit_order` of bin `i` ([`NEVER`] when it
    /// does not). Row `b` is about every bin, so that the rows of a record's full bins give the
    /// first full bin that each bin probes by an element-wise minimum over whole vectors.
    visit_rank: Vec<u8>,
}

impl Probes {
    fn new(k: usize) -> Probes {
        let mut state: u64 = 0x6465_6e73_6966_7921; // "densify!"
        let mut next = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            fmix64(state)
        };
        let sequences: Vec<Probe> = (0..k).map(|_| Probe { start: next(), step: next() | 1 }).collect();
        let first_rounds = (1..=TABLED_ROUNDS as u64)
            .flat_map(|t| sequences.iter().map(move |probe| probe.bin(t, k) as u32))
            .collect();
        let (mut visit_order, mut visit_rank) = (Vec::new(), Vec::new());
        if k <= VISIT_TABLE_MAX_BINS {
            visit_order = vec![0; k * k];
            visit_rank = vec![NEVER; k * k];
            for (i, probe) in sequences.iter().enumerate() {
                // Every bin comes up after about k ln k rounds.
                let mut seen = 0;
                for t in 1..=u64::from(u16::MAX) {
                    let b = probe.bin(t, k);
                    if visit_rank[b * k + i] == NEVER {
                        visit_rank[b * k + i] = seen as u8;
                        visit_order[i * k + seen] = b as u8;
                        seen += 1;
                        if seen == k {
                            break;
                        }
                    }
                }
            }
        }
        Probes { sequences, first_rounds, visit_order, visit_rank }
    }
}

/// Scratch buffers of [`one_permutation_minhash`].
#[derive(Clone, Debug, Default)]
struct BinScratch {
    /// Per bin, the smallest rank of its shingles ([`EMPTY_BIN`] when it has none).
    bins: Vec<u64>,
    /// The bins still looking for a value.
    pending: Vec<u32>,
    /// Per bin, the rank of the first full bin it probes ([`Probes::visit_rank`]).
    reach: Vec<u8>,
}

/// One-permutation MinHash with optimal densification (see the module docs): `mins[i]` is the
/// smallest rank among the shingles of bin `i` or, when there are none, the value of the first
/// non-empty bin of bin `i`'s probe sequence. `shingles` must not be empty.
///
/// With the visit tables, the rows of the full bins give every bin its first full bin at once,
/// by one vector minimum per full bin ([`Probes::visit_rank`]). Without them (and for a bin that
/// visits no full bin within the tables), the empty bins probe in rounds, one step each per round,
/// and the ones that found a value leave the pending list without a branch: probing bin by bin
/// until each finds one mispredicts at the end of nearly every sequence.
fn one_permutation_minhash(
    shingles: impl Iterator<Item = u64>,
    probes: &Probes,
    scratch: &mut BinScratch,
    mins: &mut [u32],
) {
    let k = mins.len();
    let BinScratch { bins, pending, reach } = scratch;
    bins.clear();
    bins.resize(k, EMPTY_BIN);
    // Internal iteration (`for_each`), so that the chained shingles run as two plain loops.
    shingles.for_each(|h| {
        let bin = &mut bins[bin_of(h, k)];
        *bin = (*bin).min(h & 0xFFFF_FFFF);
    });
    pending.resize(k, 0);
    let mut n_pending = 0;
    for (i, (m, &own)) in mins.iter_mut().zip(bins.iter()).enumerate() {
        *m = own as u32;
        pending[n_pending] = i as u32;
        n_pending += usize::from(own == EMPTY_BIN);
    }
    if n_pending > 0 && !probes.visit_rank.is_empty() {
        reach.clear();
        reach.resize(k, NEVER);
        let full_rows =
            probes.visit_rank.chunks_exact(k).zip(bins.iter()).filter(|(_, &own)| own != EMPTY_BIN);
        for (ranks, _) in full_rows {
            reach.iter_mut().zip(ranks).for_each(|(r, &rank)| *r = (*r).min(rank));
        }
        let mut still = 0;
        for j in 0..n_pending {
            let i = pending[j] as usize;
            let rank = reach[i];
            if rank != NEVER {
                mins[i] = bins[usize::from(probes.visit_order[i * k + usize::from(rank)])] as u32;
            }
            pending[still] = i as u32;
            still += usize::from(rank == NEVER);
        }
        n_pending = still;
    }
    let mut round = 0;
    while n_pending > 0 {
        round += 1;
        let tabled = probes.first_rounds.get((round - 1) * k..round * k);
        let mut still = 0;
        for j in 0..n_pending {
            let i = pending[j] as usize;
            let probed = match tabled {
                Some(targets) => targets[i] as usize,
                None => probes.sequences[i].bin(round as u64, k),
            };
            let value = bins[probed];
            mins[i] = value as u32;
            pending[still] = i as u32;
            still += usize::from(value == EMPTY_BIN);
        }
        n_pending = still;
    }
}

fn band_key(band: usize, rows: &[u32]) -> u64 {
    let mut h = (band as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F);
    for &v in rows {
        h = (h.rotate_left(29) ^ u64::from(v)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fmix64(h ^ rows.len() as u64)
}

// ---------------------------------------------------------------------------------------------
// Collecting and clustering

/// Streaming collector: sees every record's signature in input order.
#[derive(Debug)]
pub struct DedupIndex {
    config: DedupConfig,
    /// Exact hash -> index of the first record with that text.
    first_of: FxHashMap<u128, u64>,
    /// Per record: index of its first identical record, or `NONE`.
    exact_of: Vec<u64>,
    n_chars: Vec<u64>,
    /// Records in the LSH index (distinct texts with words), ascending, and their band keys, one
    /// list per band (so that a band is read in one sweep, and freed once grouped).
    lsh_records: Vec<u32>,
    band_keys: Vec<Vec<u64>>,
    /// The signatures of the `lsh_records` (`num_perm` values each) while they fit
    /// `config.held_signature_bytes`; `None` once they do not, or once a record came without one.
    held: Option<Vec<Stored>>,
}

const NONE: u64 = u64::MAX;

impl DedupIndex {
    /// `config` must be valid ([`DedupConfig::validate`]).
    pub fn new(config: &DedupConfig) -> DedupIndex {
        DedupIndex {
            config: config.clone(),
            first_of: FxHashMap::default(),
            exact_of: Vec::new(),
            n_chars: Vec::new(),
            lsh_records: Vec::new(),
            band_keys: vec![Vec::new(); config.bands],
            held: Some(Vec::new()),
        }
    }

    /// Adds the next record and returns its index (0, 1, 2, ... in the order of the calls).
    pub fn add(&mut self, sig: &RecordSignature) -> u64 {
        let index = self.exact_of.len() as u64;
        assert!(index < u64::from(u32::MAX), "more than 4 billion records");
        let first = *self.first_of.entry(sig.exact).or_insert(index);
        self.n_chars.push(sig.n_chars);
        if first != index {
            self.exact_of.push(first);
            return index;
        }
        self.exact_of.push(NONE);
        if !sig.bands.is_empty() {
            assert_eq!(sig.bands.len(), self.config.bands, "band count differs from the configuration");
            self.lsh_records.push(index as u32);
            for (keys, &key) in self.band_keys.iter_mut().zip(&sig.bands) {
                keys.push(key);
            }
            self.hold(&sig.minhash);
        }
        index
    }

    /// Keeps the signature of the record just added to the LSH index, or gives up keeping any.
    fn hold(&mut self, minhash: &[Stored]) {
        let Some(held) = &mut self.held else { return };
        let num_perm = self.config.num_perm;
        let limit = self.config.held_signature_bytes / std::mem::size_of::<Stored>();
        if minhash.len() != num_perm || held.len() + num_perm > limit {
            self.held = None;
            return;
        }
        if held.len() + num_perm > held.capacity() {
            // Grow by doubling, but never past the limit.
            let want = (2 * held.capacity()).max(1024 * num_perm).min(limit);
            held.reserve_exact(want.max(held.len() + num_perm) - held.len());
        }
        held.extend_from_slice(minhash);
    }

    /// Records added so far.
    pub fn len(&self) -> u64 {
        self.exact_of.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.exact_of.is_empty()
    }

    /// Clusters the records. When the first pass could not keep every signature, `fetch` is given
    /// the candidate records ([`CandidateSignatures::records`]) and sets the MinHash signature of
    /// each ([`CandidateSignatures::set`]); a candidate left unset is joined with nothing.
    pub fn finish<E>(
        self,
        fetch: impl FnOnce(&mut CandidateSignatures) -> Result<(), E>,
    ) -> Result<DedupResult, E> {
        let DedupIndex { config, first_of, exact_of, n_chars, lsh_records, band_keys, held } = self;
        drop(first_of);
        let n = exact_of.len();

        // Groups of records sharing a band key, each listed once, members ascending.
        let mut group_members: Vec<u32> = Vec::new();
        let mut group_ends: Vec<usize> = Vec::new();
        let mut seen_groups: FxHashSet<(u64, u32, u32)> = FxHashSet::default();
        let mut by_key: Vec<(u64, u32)> = Vec::with_capacity(lsh_records.len());
        let mut sort_scratch = Vec::new();
        let mut member_bytes: Vec<u8> = Vec::new();
        for keys in band_keys {
            by_key.clear();
            by_key.extend(keys.into_iter().zip(lsh_records.iter().copied()));
            sort_by_hash(&mut by_key, &mut sort_scratch);
            for run in by_key.chunk_by(|x, y| x.0 == y.0).filter(|run| run.len() >= 2) {
                member_bytes.clear();
                member_bytes.extend(run.iter().flat_map(|&(_, r)| r.to_le_bytes()));
                let id = (xxh3_64(&member_bytes), run[0].1, run.len() as u32);
                if seen_groups.insert(id) {
                    group_members.extend(run.iter().map(|&(_, r)| r));
                    group_ends.push(group_members.len());
                }
            }
        }
        drop((by_key, sort_scratch, member_bytes));
        drop(seen_groups);

        // The records in any group, ascending: marked, then listed (no sort of the members).
        let mut in_group = vec![false; n];
        group_members.iter().for_each(|&r| in_group[r as usize] = true);
        let candidates: Vec<u64> = (0..n as u64).filter(|&r| in_group[r as usize]).collect();
        drop(in_group);
        let mut sigs = CandidateSignatures::new(candidates, config.num_perm);
        match held {
            // Every candidate is in the LSH index: walk both ascending lists.
            Some(held) => {
                let mut at = 0;
                for pos in 0..sigs.records.len() {
                    at += lsh_records[at..].partition_point(|&r| u64::from(r) < sigs.records[pos]);
                    sigs.store(pos, held[at * config.num_perm..(at + 1) * config.num_perm].iter().copied());
                }
            }
            None => fetch(&mut sigs)?,
        }
        drop(lsh_records);
        let near_searched = sigs.missing() == 0;
        // Each record's position among the candidates, `u32::MAX` for the others.
        let mut position = vec![u32::MAX; n];
        for (pos, &record) in sigs.records.iter().enumerate() {
            position[record as usize] = pos as u32;
        }

        // Verify pairs within groups; join the similar ones.
        let num_perm = config.num_perm;
        let chance = 1.0 / f64::from(1u32 << Stored::BITS);
        let need =
            ((config.threshold * (1.0 - chance) + chance) * num_perm as f64 - 1e-9).ceil().max(1.0) as usize;
        let mut sets = UnionFind::new(sigs.records.len());
        let (mut pairs_compared, mut pairs_joined) = (0u64, 0u64);
        let mut start = 0;
        let mut members: Vec<usize> = Vec::new();
        for &end in &group_ends {
            members.clear();
            members.extend(group_members[start..end].iter().map(|&r| position[r as usize] as usize));
            start = end;
            // Groups already within one cluster (most of them, once a template's copies are joined)
            // have no pair left to compare.
            let first_root = sets.find(members[0]);
            if members[1..].iter().all(|&m| sets.find(m) == first_root) {
                continue;
            }
            for j in 1..members.len() {
                let b = members[j];
                if !sigs.is_set(b) {
                    continue;
                }
                for &a in &members[j.saturating_sub(MAX_GROUP_WINDOW)..j] {
                    if !sigs.is_set(a) || sets.find(a) == sets.find(b) {
                        continue;
                    }
                    pairs_compared += 1;
                    if matches_at_least(sigs.get(a), sigs.get(b), need) {
                        sets.union(a, b);
                        pairs_joined += 1;
                    }
                }
            }
        }
        drop(group_members);

        // Clusters: id = smallest record index; size counts exact duplicates of members too.
        let CandidateSignatures { records: candidates, values, .. } = sigs;
        drop(values);
        let mut copies = vec![0u64; candidates.len()];
        for &first in exact_of.iter().filter(|&&f| f != NONE) {
            let pos = position[first as usize];
            if pos != u32::MAX {
                copies[pos as usize] += 1;
            }
        }
        let mut root_min = vec![u64::MAX; candidates.len()];
        let mut root_size = vec![0u64; candidates.len()];
        let mut root_best = vec![usize::MAX; candidates.len()];
        let mut distinct = vec![0u64; candidates.len()];
        for (pos, &record) in candidates.iter().enumerate() {
            let root = sets.find(pos);
            root_min[root] = root_min[root].min(record);
            root_size[root] += 1 + copies[pos];
            distinct[root] += 1;
            let best = root_best[root];
            let better = best == usize::MAX
                || match config.keep {
                    Keep::First => record < candidates[best],
                    Keep::Longest => {
                        let (len, best_len) = (n_chars[record as usize], n_chars[candidates[best] as usize]);
                        len > best_len || (len == best_len && record < candidates[best])
                    }
                };
            if better {
                root_best[root] = pos;
            }
        }
        drop(copies);
        let mut cluster_root = |record: usize| -> Option<usize> {
            let pos = position[record];
            let root = sets.find((pos != u32::MAX).then_some(pos as usize)?);
            (distinct[root] >= 2).then_some(root)
        };

        let mut records: Vec<RecordOutcome> = Vec::with_capacity(n);
        let mut summary = DedupSummary {
            records: n as u64,
            near_searched,
            candidates: candidates.len() as u64,
            pairs_compared,
            pairs_joined,
            ..Default::default()
        };
        for (index, (&exact, &chars)) in exact_of.iter().zip(&n_chars).enumerate() {
            let mut outcome = RecordOutcome {
                n_chars: chars,
                exact_dup_of: None,
                cluster: None,
                cluster_size: 0,
                is_representative: false,
            };
            if exact != NONE {
                // A copy is in the cluster of the first record with its text, and never represents it.
                let first = &records[exact as usize];
                outcome.exact_dup_of = Some(exact);
                outcome.cluster = first.cluster;
                outcome.cluster_size = first.cluster_size;
            } else if let Some(root) = cluster_root(index) {
                outcome.cluster = Some(root_min[root]);
                outcome.cluster_size = root_size[root];
                outcome.is_representative = candidates[root_best[root]] == index as u64;
                summary.near_dup_clusters += u64::from(outcome.is_representative);
            }
            summary.records_in_clusters += u64::from(outcome.cluster.is_some());
            summary.exact_duplicates += u64::from(outcome.exact_dup_of.is_some());
            summary.removed += u64::from(outcome.removed());
            records.push(outcome);
        }
        summary.kept = summary.records - summary.removed;
        summary.unique_fraction = if n == 0 { 1.0 } else { summary.kept as f64 / n as f64 };
        Ok(DedupResult { records, summary })
    }
}

/// Sorts `(key, record)` pairs whose keys are hashes into the order of `sort_unstable`: one pass
/// counts the pairs by the top `bits` of their keys (about four pairs per bucket, 16 bits at most so
/// that the counts stay in cache), one pass scatters them into `scratch` by those bits, and each
/// bucket, a few pairs unless many share a key, is sorted on its own. Measured on random keys:
/// 1.0 ms for 60,000 pairs and 80 ms for 2.67 M, against 1.6 and 95 ms for `sort_unstable` and 1.7
/// and 106 ms for the in-place radix sort (one byte per level) it replaced.
fn sort_by_hash(pairs: &mut [(u64, u32)], scratch: &mut Vec<(u64, u32)>) {
    const MAX_BITS: u32 = 16;
    let bits = pairs.len().max(1).ilog2().saturating_sub(2).min(MAX_BITS);
    if bits < 8 {
        pairs.sort_unstable();
        return;
    }
    let bucket = |key: u64| (key >> (64 - bits)) as usize;
    // Counts and places fit u32: records are numbered in u32 (`DedupIndex::add`).
    let mut next = vec![0u32; (1 << bits) + 1];
    for &(key, _) in pairs.iter() {
        next[bucket(key) + 1] += 1;
    }
    for b in 1..next.len() {
        next[b] += next[b - 1];
    }
    let starts = next.clone();
    scratch.clear();
    scratch.resize(pairs.len(), (0, 0));
    for &pair in pairs.iter() {
        let at = &mut next[bucket(pair.0)];
        scratch[*at as usize] = pair;
        *at += 1;
    }
    for range in starts.windows(2) {
        if range[1] - range[0] > 1 {
            scratch[range[0] as usize..range[1] as usize].sort_unstable();
        }
    }
    pairs.copy_from_slice(scratch);
}

/// True when at least `need` of the values agree.
fn matches_at_least(a: &[Stored], b: &[Stored], need: usize) -> bool {
    // 8-bit counts over 128 values at a time, which the compiler turns into vector compares.
    let same: usize = a
        .chunks(128)
        .zip(b.chunks(128))
        .map(|(x, y)| usize::from(x.iter().zip(y).map(|(p, q)| u8::from(p == q)).sum::<u8>()))
        .sum();
    same >= need
}

/// A MinHash value as verification keeps it: its low 8 bits (b-bit MinHash), a quarter of the memory
/// of the whole value, at the price of a chance of 2^-8 that two different values agree.
type Stored = u8;

/// The signatures of the candidate records, as [`Stored`] values.
#[derive(Debug)]
pub struct CandidateSignatures {
    records: Vec<u64>,
    num_perm: usize,
    values: Vec<Stored>,
    set: Vec<bool>,
    missing: usize,
}

impl CandidateSignatures {
    fn new(records: Vec<u64>, num_perm: usize) -> CandidateSignatures {
        let len = records.len();
        CandidateSignatures {
            records,
            num_perm,
            values: vec![0; len * num_perm],
            set: vec![false; len],
            missing: len,
        }
    }

    /// The records whose signatures are needed, ascending.
    pub fn records(&self) -> &[u64] {
        &self.records
    }

    /// Records whose signatures are still missing.
    pub fn missing(&self) -> usize {
        self.missing
    }

    /// Stores the MinHash signature ([`Signer::minhash`]) of `record`; false when `record` is not
    /// a candidate or the signature has the wrong length.
    pub fn set(&mut self, record: u64, minhash: &[u32]) -> bool {
        let Some(pos) = self.position(record) else { return false };
        if minhash.len() != self.num_perm {
            return false;
        }
        self.store(pos, minhash.iter().map(|&v| v as Stored));
        true
    }

    /// Stores the signature (`num_perm` values) of the candidate at `pos`.
    fn store(&mut self, pos: usize, values: impl IntoIterator<Item = Stored>) {
        let out = &mut self.values[pos * self.num_perm..(pos + 1) * self.num_perm];
        for (o, v) in out.iter_mut().zip(values) {
            *o = v;
        }
        if !self.set[pos] {
            self.set[pos] = true;
            self.missing -= 1;
        }
    }

    fn position(&self, record: u64) -> Option<usize> {
        self.records.binary_search(&record).ok()
    }

    fn is_set(&self, pos: usize) -> bool {
        self.set[pos]
    }

    fn get(&self, pos: usize) -> &[Stored] {
        &self.values[pos * self.num_perm..(pos + 1) * self.num_perm]
    }
}

struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    fn new(n: usize) -> UnionFind {
        UnionFind { parent: (0..n as u32).collect() }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] as usize != x {
            let grand = self.parent[self.parent[x] as usize];
            self.parent[x] = grand;
            x = grand as usize;
        }
        x
    }

    /// The smaller root becomes the parent, so that a root is its set's first member.
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[hi] = lo as u32;
        }
    }
}

/// What deduplication says of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordOutcome {
    pub n_chars: u64,
    /// The first record with the same text, when this one is not it.
    pub exact_dup_of: Option<u64>,
    /// The near-duplicate cluster (the index of its first record), when in one.
    pub cluster: Option<u64>,
    /// Records in the cluster, exact duplicates of its members included; 0 when in none.
    pub cluster_size: u64,
    /// The record the cluster keeps.
    pub is_representative: bool,
}

impl RecordOutcome {
    /// Whether deduplication drops this record.
    pub fn removed(&self) -> bool {
        self.exact_dup_of.is_some() || (self.cluster.is_some() && !self.is_representative)
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct DedupSummary {
    pub records: u64,
    /// Records identical to an earlier one.
    pub exact_duplicates: u64,
    pub near_dup_clusters: u64,
    pub records_in_clusters: u64,
    /// Exact duplicates and clustered records that are not their cluster's representative, each
    /// counted once.
    pub removed: u64,
    pub kept: u64,
    /// `kept / records` (1 when there are no records).
    pub unique_fraction: f64,
    /// Whether every candidate's signature was at hand, so that near duplicates were searched
    /// (not when the input could not be read twice and its signatures were too many to keep).
    pub near_searched: bool,
    /// Records that shared a band key with another one.
    pub candidates: u64,
    pub pairs_compared: u64,
    pub pairs_joined: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DedupResult {
    /// One per record, by index.
    pub records: Vec<RecordOutcome>,
    pub summary: DedupSummary,
}

// ---------------------------------------------------------------------------------------------
// Diversity

const HLL_BITS: u32 = 14;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum Distinct {
    Exact(FxHashSet<u64>),
    /// HyperLogLog registers.
    Sketch(Vec<u8>),
}

impl Distinct {
    /// Adds `hashes`, checking the exact limit once per batch rather than once per value: the set
    /// may pass the limit by one batch before it turns into a sketch, which gives the same sketch.
    fn insert_all(&mut self, hashes: impl Iterator<Item = u64>) {
        const BATCH: usize = 4096;
        let mut hashes = hashes.peekable();
        while hashes.peek().is_some() {
            match self {
                Distinct::Exact(set) => {
                    set.extend(hashes.by_ref().take(BATCH));
                    if set.len() > EXACT_DISTINCT_LIMIT {
                        self.convert_to_sketch();
                    }
                }
                Distinct::Sketch(regs) => hashes.by_ref().for_each(|h| hll_insert(regs, h)),
            }
        }
    }

    fn convert_to_sketch(&mut self) {
        if let Distinct::Exact(set) = self {
            let mut regs = vec![0u8; 1 << HLL_BITS];
            for &h in set.iter() {
                hll_insert(&mut regs, h);
            }
            *self = Distinct::Sketch(regs);
        }
    }

    fn merge(&mut self, other: &Distinct) {
        match other {
            Distinct::Exact(set) => self.insert_all(set.iter().copied()),
            Distinct::Sketch(theirs) => {
                self.convert_to_sketch();
                let Distinct::Sketch(regs) = self else { unreachable!() };
                for (r, &t) in regs.iter_mut().zip(theirs) {
                    *r = (*r).max(t);
                }
            }
        }
    }

    fn count(&self) -> (u64, bool) {
        match self {
            Distinct::Exact(set) => (set.len() as u64, true),
            Distinct::Sketch(regs) => {
                let m = regs.len() as f64;
                let sum: f64 = regs.iter().map(|&r| (-(r as i32) as f64).exp2()).sum();
                let zeros = regs.iter().filter(|&&r| r == 0).count();
                let raw = 0.7213 / (1.0 + 1.079 / m) * m * m / sum;
                let estimate = if raw <= 2.5 * m && zeros > 0 { m * (m / zeros as f64).ln() } else { raw };
                (estimate.round() as u64, false)
            }
        }
    }
}

/// Adds a hash to the registers. The hashes come unmixed from [`Diversity::add_words`]; the
/// register and the rank are taken from its mix.
fn hll_insert(regs: &mut [u8], h: u64) {
    let h = fmix64(h);
    let idx = (h >> (64 - HLL_BITS)) as usize;
    let rest = (h << HLL_BITS) | (1 << (HLL_BITS - 1));
    let rank = rest.leading_zeros() as u8 + 1;
    regs[idx] = regs[idx].max(rank);
}

/// Distinct word n-grams (n = 1, 2, 3); merge per-thread counters with [`Diversity::merge`].
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Diversity {
    distinct: [Distinct; 3],
    total: [u64; 3],
}

impl Default for Diversity {
    fn default() -> Self {
        let empty = || Distinct::Exact(FxHashSet::default());
        Diversity { distinct: [empty(), empty(), empty()], total: [0; 3] }
    }
}

/// Distinct n-grams of one size.
#[derive(Clone, Debug, PartialEq)]
pub struct NgramDiversity {
    pub n: usize,
    pub total: u64,
    pub distinct: u64,
    /// `distinct / total` (0 when there are none).
    pub ratio: f64,
    /// False when `distinct` is a HyperLogLog estimate.
    pub exact: bool,
}

impl Diversity {
    /// Counts the 1-, 2- and 3-grams of one record's words ([`Signer::words`]), by their
    /// [`ngram_hashes`]: words are hashed already, and the sketch mixes what it keeps ([`hll_insert`]).
    pub fn add_words(&mut self, words: &[u64]) {
        self.add_copy(words.len());
        let [unigrams, bigrams, trigrams] = &mut self.distinct;
        unigrams.insert_all(words.iter().copied());
        bigrams.insert_all(ngram_hashes(words, 2));
        trigrams.insert_all(ngram_hashes(words, 3));
    }

    /// Counts the n-grams of a text whose n-grams were added already, which has `n_words` words.
    fn add_copy(&mut self, n_words: usize) {
        for (n, total) in (1..).zip(&mut self.total) {
            *total += (n_words + 1).saturating_sub(n) as u64;
        }
    }

    pub fn merge(&mut self, other: &Diversity) {
        for i in 0..3 {
            self.distinct[i].merge(&other.distinct[i]);
            self.total[i] += other.total[i];
        }
    }

    pub fn report(&self) -> Vec<NgramDiversity> {
        (0..3)
            .map(|i| {
                let (distinct, exact) = self.distinct[i].count();
                let total = self.total[i];
                let ratio = if total == 0 { 0.0 } else { distinct as f64 / total as f64 };
                NgramDiversity { n: i + 1, total, distinct, ratio, exact }
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Whole files

#[derive(Clone, Debug)]
pub struct DedupOptions {
    pub text: TextSpec,
    pub config: DedupConfig,
    /// Find exact duplicates only: no words, shingles or MinHash, and no second pass.
    pub exact_only: bool,
}

/// Where a record is and what deduplication says of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordDedup {
    pub file: usize,
    /// 1-based line number.
    pub line: u64,
    pub outcome: RecordOutcome,
}

#[derive(Debug)]
pub struct DedupReport {
    /// One per record (a line with text), in input order; `exact_dup_of` and `cluster` are indices
    /// into this list.
    pub records: Vec<RecordDedup>,
    pub summary: DedupSummary,
    pub lines: u64,
    pub blank: u64,
    /// Lines that are not records with text (invalid JSON, no text, too long ...), by code.
    pub skipped_by_code: std::collections::BTreeMap<&'static str, u64>,
    /// Why a file could not be read to its end, per file, if it could not.
    pub file_errors: Vec<Option<String>>,
}

enum LineSig {
    Record(RecordSignature),
    Blank,
    Skipped(&'static str),
}

struct SignKernel<'a> {
    options: &'a DedupOptions,
}

/// [`FirstCopySigner`] remembers the texts it signed, up to this many (a table of about 9 MB),
/// then starts again.
const SIGNED_TEXTS_MAX: usize = 1 << 17;

/// A [`Signer`] for one pipeline thread that gives a copy of a text it signed before only its
/// [`exact_signature`]. That is all the collector needs: a thread takes its chunks in input order,
/// so the collector has met the first copy already and adds this one as an exact duplicate
/// ([`DedupIndex::add`] reads no more of it). Same results, and copies (most of some datasets)
/// cost little more than their hash.
struct FirstCopySigner {
    signer: Signer,
    /// The word counts of the texts signed, by exact hash.
    signed: FxHashMap<u128, u32>,
}

/// What [`FirstCopySigner::sign`] gives.
enum Signed<'s> {
    /// A text not signed before, and its word hashes.
    First(RecordSignature, &'s [u64]),
    /// A copy, and its number of words.
    Copy(RecordSignature, usize),
}

impl FirstCopySigner {
    fn new(config: &DedupConfig) -> FirstCopySigner {
        FirstCopySigner { signer: Signer::new(config), signed: FxHashMap::default() }
    }

    fn sign(&mut self, text: &str) -> Signed<'_> {
        let exact = exact_signature(text);
        if let Some(&n_words) = self.signed.get(&exact.exact) {
            return Signed::Copy(exact, n_words as usize);
        }
        let sig = self.signer.add_bands(exact, text);
        let words = self.signer.words();
        if self.signed.len() >= SIGNED_TEXTS_MAX {
            self.signed.clear();
        }
        self.signed.insert(sig.exact, u32::try_from(words.len()).unwrap_or(u32::MAX));
        Signed::First(sig, words)
    }
}

/// Per-thread signing state for `scan`: the signer, a text buffer and this thread's diversity
/// counts, which are merged into the shared total when the worker ends.
pub struct SignWorker<'a> {
    signer: FirstCopySigner,
    text: String,
    diversity: Diversity,
    merge_into: &'a Mutex<Diversity>,
}

impl<'a> SignWorker<'a> {
    pub fn new(config: &DedupConfig, merge_into: &'a Mutex<Diversity>) -> SignWorker<'a> {
        SignWorker {
            signer: FirstCopySigner::new(config),
            text: String::new(),
            diversity: Diversity::default(),
            merge_into,
        }
    }

    /// The signature of a record's text, or why it has none.
    pub fn sign_record(
        &mut self,
        record: &Map<String, Value>,
        spec: &TextSpec,
    ) -> Result<RecordSignature, Problem> {
        normalize_into(record, spec, &mut self.text)?;
        Ok(sign_counting(&mut self.signer, &mut self.diversity, &self.text))
    }

    /// The signature of a record whose text for deduplication is `text` alone: a text record (one
    /// string field) read without building it.
    pub fn sign_text(&mut self, text: &str) -> RecordSignature {
        sign_counting(&mut self.signer, &mut self.diversity, text)
    }
}

/// Signs `text` and counts its n-grams into `diversity`. A copy's n-grams are counted already (the
/// sets and sketches keep each once): only the totals grow.
fn sign_counting(signer: &mut FirstCopySigner, diversity: &mut Diversity, text: &str) -> RecordSignature {
    match signer.sign(text) {
        Signed::First(sig, words) => {
            diversity.add_words(words);
            sig
        }
        Signed::Copy(sig, n_words) => {
            diversity.add_copy(n_words);
            sig
        }
    }
}

impl Drop for SignWorker<'_> {
    fn drop(&mut self) {
        if let Ok(mut total) = self.merge_into.lock() {
            total.merge(&self.diversity);
        }
    }
}

impl Kernel for SignKernel<'_> {
    type Worker = (FirstCopySigner, String);
    type Output = Vec<(u64, LineSig)>;

    fn worker(&self) -> (FirstCopySigner, String) {
        (FirstCopySigner::new(&self.options.config), String::new())
    }

    fn process(
        &self,
        (signer, text): &mut (FirstCopySigner, String),
        chunk: &LinesChunk,
    ) -> Vec<(u64, LineSig)> {
        let mut out = Vec::new();
        chunk.for_each_line(|line, _, bytes| {
            let sig = match parse_line(line, bytes) {
                Parsed::Blank => LineSig::Blank,
                Parsed::Invalid(problem) => LineSig::Skipped(problem.code),
                Parsed::Record(record) => match normalize_into(&record, &self.options.text, text) {
                    Err(problem) => LineSig::Skipped(problem.code),
                    Ok(()) if self.options.exact_only => LineSig::Record(exact_signature(text)),
                    Ok(()) => match signer.sign(text) {
                        Signed::First(sig, _) | Signed::Copy(sig, _) => LineSig::Record(sig),
                    },
                },
            };
            out.push((line, sig));
        });
        out
    }
}

struct VerifyKernel<'a> {
    options: &'a DedupOptions,
    /// Per file, the line numbers of the candidate records, ascending.
    wanted: &'a [Vec<u64>],
}

impl Kernel for VerifyKernel<'_> {
    type Worker = (Signer, String);
    type Output = Vec<(u64, Option<Vec<u32>>)>;

    fn worker(&self) -> (Signer, String) {
        (Signer::new(&self.options.config), String::new())
    }

    fn process(&self, (signer, text): &mut (Signer, String), chunk: &LinesChunk) -> Self::Output {
        let mut out = Vec::new();
        chunk.for_each_wanted_line(&self.wanted[chunk.file], |line, bytes| {
            let minhash = match parse_line(line, bytes) {
                Parsed::Record(record) if normalize_into(&record, &self.options.text, text).is_ok() => {
                    signer.minhash(text).map(<[u32]>::to_vec)
                }
                _ => None,
            };
            out.push((line, minhash));
        });
        out
    }
}

/// Finds the exact and near duplicates among the records of `sources`. Reads the input twice (the
/// second time only the candidate records are parsed), so stdin cannot be one of the sources.
pub fn dedup(
    sources: &[Source],
    options: &DedupOptions,
    run_options: &RunOptions,
) -> Result<DedupReport, Error> {
    options.config.validate()?;
    if sources.contains(&Source::Stdin) {
        return Err(Error::InvalidInput(
            "dedup reads its input twice, so it cannot read stdin; give a file".into(),
        ));
    }
    let kernel = SignKernel { options };
    let mut index = DedupIndex::new(&options.config);
    let mut places: Vec<(u32, u64)> = Vec::new();
    let mut report = DedupReport {
        records: Vec::new(),
        summary: DedupSummary::default(),
        lines: 0,
        blank: 0,
        skipped_by_code: Default::default(),
        file_errors: vec![None; sources.len()],
    };
    run(sources, run_options, &kernel, |event| {
        match event {
            Event::Lines { chunk, output } => {
                for (line, sig) in output {
                    report.lines += 1;
                    match sig {
                        LineSig::Record(sig) => {
                            index.add(&sig);
                            places.push((chunk.file as u32, line));
                        }
                        LineSig::Blank => report.blank += 1,
                        LineSig::Skipped(code) => *report.skipped_by_code.entry(code).or_default() += 1,
                    }
                }
            }
            Event::LineTooLong { .. } => {
                report.lines += 1;
                *report.skipped_by_code.entry(codes::LINE_TOO_LONG).or_default() += 1;
            }
            Event::FileEnd { file, error, .. } => report.file_errors[file] = error,
            Event::FileStart { .. } => {}
        }
        Ok(())
    })?;

    let result = resolve(sources, options, run_options, index, &places)?;
    report.summary = result.summary;
    report.records = places
        .into_iter()
        .zip(result.records)
        .map(|((file, line), outcome)| RecordDedup { file: file as usize, line, outcome })
        .collect();
    Ok(report)
}

/// Clusters the records of a first pass (`index`, with each record's file and line in `places`):
/// unless the first pass kept every signature, reads `sources` a second time, parsing only the
/// candidate records, to verify candidate pairs. With stdin among the sources nothing can be read
/// again: without the kept signatures, near-duplicates are then not searched and only exact
/// duplicates are found.
pub fn resolve(
    sources: &[Source],
    options: &DedupOptions,
    run_options: &RunOptions,
    index: DedupIndex,
    places: &[(u32, u64)],
) -> Result<DedupResult, Error> {
    if sources.contains(&Source::Stdin) {
        return index.finish(|_| Ok(()));
    }
    cluster(index, places, sources.len(), |wanted, found| {
        read_minhashes(sources, options, run_options, wanted, found)
    })
}

/// Clusters the records of a first pass (`index`, with each record's file and line in `places`, for
/// `n_files` files). `read_minhashes(wanted, found)` is given, per file, the ascending line numbers
/// of the candidate records, and must call `found(file, line, minhash)` for each of them.
pub fn cluster(
    index: DedupIndex,
    places: &[(u32, u64)],
    n_files: usize,
    read_minhashes: impl FnOnce(&[Vec<u64>], &mut dyn FnMut(usize, u64, &[u32])) -> Result<(), Error>,
) -> Result<DedupResult, Error> {
    index.finish(|sigs| -> Result<(), Error> {
        if sigs.records().is_empty() {
            return Ok(());
        }
        let mut wanted = vec![Vec::new(); n_files];
        for &record in sigs.records() {
            let (file, line) = places[record as usize];
            wanted[file as usize].push(line);
        }
        let mut first_record_of_file = vec![0usize; n_files + 1];
        for &(file, _) in places {
            first_record_of_file[file as usize + 1] += 1;
        }
        for f in 1..first_record_of_file.len() {
            first_record_of_file[f] += first_record_of_file[f - 1];
        }
        read_minhashes(&wanted, &mut |file, line, minhash| {
            let file_places = &places[first_record_of_file[file]..first_record_of_file[file + 1]];
            let pos = file_places.partition_point(|&(_, l)| l < line);
            sigs.set((first_record_of_file[file] + pos) as u64, minhash);
        })?;
        if sigs.missing() > 0 {
            return Err(Error::InvalidInput(format!(
                "{} record(s) changed while the input was read a second time",
                sigs.missing()
            )));
        }
        Ok(())
    })
}

/// Reads the full MinHash signatures of the `wanted` lines (per source, ascending line numbers) of
/// `sources`, calling `found(source, line, minhash)` for each line that is a record with words.
pub fn read_minhashes(
    sources: &[Source],
    options: &DedupOptions,
    run_options: &RunOptions,
    wanted: &[Vec<u64>],
    found: &mut dyn FnMut(usize, u64, &[u32]),
) -> Result<(), Error> {
    // A second pass starts the progress counters again.
    run_options.progress.bytes_read.store(0, Ordering::Relaxed);
    run_options.progress.lines_done.store(0, Ordering::Relaxed);
    let kernel = VerifyKernel { options, wanted };
    run(sources, run_options, &kernel, |event| {
        if let Event::Lines { chunk, output } = event {
            for (line, minhash) in output {
                if let Some(minhash) = minhash {
                    found(chunk.file, line, &minhash);
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::ReadOptions;
    use std::path::PathBuf;
    use xxhash_rust::xxh3::xxh3_64;

    fn record(json: &str) -> Map<String, Value> {
        let Parsed::Record(map) = parse_line(1, json.as_bytes()) else { panic!("not a record: {json}") };
        map
    }

    fn splitmix64(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        fmix64(*state)
    }

    /// Deterministic pseudo-random words.
    fn random_words(seed: u64, n: usize) -> Vec<String> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                let r = splitmix64(&mut state);
                let len = 3 + (r % 6) as usize;
                (0..len).map(|i| (b'a' + ((r >> (8 + 5 * i)) % 26) as u8) as char).collect()
            })
            .collect()
    }

    /// Clusters `texts` twice: with the signatures kept by the index, and fetched for the
    /// candidates only (as a second read does); both must agree.
    fn run_index(texts: &[String], config: &DedupConfig) -> DedupResult {
        let mut signer = Signer::new(config);
        let mut index_of = |config: &DedupConfig| {
            let mut index = DedupIndex::new(config);
            for (i, text) in texts.iter().enumerate() {
                assert_eq!(index.add(&signer.sign(text)), i as u64);
            }
            index
        };
        let kept = index_of(config)
            .finish(|_| -> Result<(), ()> { panic!("the index kept every signature") })
            .unwrap();
        let fetched = index_of(&DedupConfig { held_signature_bytes: 0, ..config.clone() })
            .finish(|sigs| -> Result<(), ()> {
                for record in sigs.records().to_vec() {
                    let minhash = signer.minhash(&texts[record as usize]).unwrap().to_vec();
                    assert!(sigs.set(record, &minhash));
                }
                assert_eq!(sigs.missing(), 0);
                Ok(())
            })
            .unwrap();
        assert_eq!(kept, fetched);
        kept
    }

    #[test]
    fn a_worker_signs_copies_with_the_results_of_signing_each_in_full() {
        let config = DedupConfig::default();
        let words = random_words(11, 200);
        // Overlapping windows of words (near copies), texts without words, then exact copies of
        // earlier texts (of copies too) between new ones.
        let mut texts: Vec<String> = (0..60).map(|i| words[2 * i..2 * i + 40].join(" ")).collect();
        texts.extend(["!!!".to_string(), "- -".to_string()]);
        for i in 0..150 {
            let text =
                if i % 4 == 3 { words[i..i + 30].join(" ") } else { texts[(i * 7) % texts.len()].clone() };
            texts.push(text);
        }
        let expected = run_index(&texts, &config);
        let mut signer = Signer::new(&config);
        let mut expected_diversity = Diversity::default();
        for text in &texts {
            signer.sign(text);
            expected_diversity.add_words(signer.words());
        }

        let diversity = Mutex::new(Diversity::default());
        let mut index = DedupIndex::new(&config);
        let mut without_bands = 0;
        {
            let mut worker = SignWorker::new(&config, &diversity);
            // Text records, built or read as their text alone (as scan reads them), in turn.
            for (i, text) in texts.iter().enumerate() {
                let sig = if i % 2 == 0 {
                    worker.sign_text(text)
                } else {
                    worker.sign_record(&record(&format!(r#"{{"text": "{text}"}}"#)), &TextSpec::Auto).unwrap()
                };
                without_bands += usize::from(sig.bands.is_empty());
                index.add(&sig);
            }
        }
        // The copies and the texts without words.
        assert!(without_bands > 100, "{without_bands}");
        let found = index.finish(|_| -> Result<(), ()> { panic!("the index kept every signature") }).unwrap();
        assert_eq!(found, expected);
        assert_eq!(diversity.into_inner().unwrap().report(), expected_diversity.report());
    }

    fn word_hashes(text: &str) -> Vec<u64> {
        let mut words = Vec::new();
        hash_words(text, &mut WordScratch::default(), &mut words);
        words
    }

    #[test]
    fn texts_keep_structure_and_content() {
        let spec = TextSpec::Auto;
        let chat = r#"{"messages": [{"role": "user", "content": " Hi "}, {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}"#;
        assert_eq!(normalize(&record(chat), &spec).unwrap(), "user\u{1f} Hi \u{1e}assistant\u{1f}a\nb\u{1e}");
        assert_eq!(normalize(&record(r#"{"text": " x  y "}"#), &spec).unwrap(), " x  y ");
        assert_eq!(normalize(&record(r#"{"prompt": "p", "completion": "c"}"#), &spec).unwrap(), "p\u{1f}c");
        assert_eq!(normalize(&record(r#"{"completion": "c"}"#), &spec).unwrap(), "\u{1f}c");
        assert_eq!(normalize(&record(r#"{"x": 1}"#), &spec), None);
        assert_eq!(normalize(&record(r#"{"messages": 1}"#), &spec), None);
        let field = TextSpec::parse(Some("meta.body"));
        assert_eq!(normalize(&record(r#"{"meta": {"body": ["a", "b"]}}"#), &field).unwrap(), "a\u{1e}b");
        let mut out = String::from("old");
        let err = normalize_into(&record(r#"{"meta": {}}"#), &field, &mut out).unwrap_err();
        assert_eq!(err.code, codes::FIELD_MISSING);
        // A role boundary is not the same text as a newline inside one message.
        let one = r#"{"messages": [{"role": "user", "content": "a\nassistant\nb"}]}"#;
        let two =
            r#"{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}"#;
        assert_ne!(normalize(&record(one), &spec), normalize(&record(two), &spec));
    }

    #[test]
    fn words_ignore_case_punctuation_and_spacing() {
        let expect = |words: &[&str]| words.iter().map(|w| hash_word(w.as_bytes())).collect::<Vec<_>>();
        assert_eq!(
            word_hashes("Hello, WORLD!!  foo_bar\tcafé Straße ÉTÉ 中文x 42"),
            expect(&["hello", "world", "foo", "bar", "café", "straße", "été", "中", "文", "x", "42"])
        );
        assert_eq!(word_hashes("hello world"), word_hashes("  Hello --- World.  "));
        assert_eq!(word_hashes("a\0b\u{1f}c\u{1e}D"), expect(&["a", "b", "c", "d"]));
        assert_eq!(word_hashes("MiXed caseEnd"), expect(&["mixed", "caseend"]));
        assert!(word_hashes(" ,.!? \u{1f}").is_empty());
        assert!(word_hashes("").is_empty());
        // Words hashed in place (ASCII) and copied (with other characters) agree, at every length
        // and at the end of the text.
        for len in 1..=20 {
            let word: String = "AbCdEfGhIjKlMnOpQrStUv"[..len].into();
            let lower = word.to_lowercase();
            assert_eq!(word_hashes(&word), expect(&[&lower]));
            assert_eq!(word_hashes(&format!("{word}-x")), expect(&[&lower, "x"]));
            assert_eq!(word_hashes(&format!("{word}é")), expect(&[&format!("{lower}é")]));
            assert_eq!(word_hashes(&format!("«{word}»")), expect(&[&lower]));
        }
    }

    #[test]
    fn words_match_a_character_by_character_reference() {
        // The definition, one character at a time.
        fn reference(text: &str) -> Vec<u64> {
            let (mut out, mut word) = (Vec::new(), String::new());
            for c in text.chars().chain([' ']) {
                if c.is_alphanumeric() && !is_cjk(c) {
                    word.extend(c.to_lowercase());
                    continue;
                }
                if !word.is_empty() {
                    out.push(hash_word(word.as_bytes()));
                    word.clear();
                }
                if c.is_alphanumeric() {
                    out.push(hash_word(c.to_string().as_bytes()));
                }
            }
            out
        }
        let pieces = [
            "a",
            "Z",
            "q",
            "0",
            "9",
            " ",
            ".",
            "@",
            "[",
            "`",
            "{",
            "_",
            "\n",
            "\0",
            "\u{1f}",
            "é",
            "É",
            "ß",
            "中",
            "文",
            "カ",
            "—",
            "«",
            "\u{a0}",
            "İ",
            "Ω",
            "٣",
            "Hello",
            "WORLD",
            "abcdefgh",
            "ABCDEFGHIJ",
        ];
        let mut state = 42;
        for _ in 0..3000 {
            let len = (splitmix64(&mut state) % 40) as usize;
            let text: String =
                (0..len).map(|_| pieces[(splitmix64(&mut state) % pieces.len() as u64) as usize]).collect();
            assert_eq!(word_hashes(&text), reference(&text), "{text:?}");
        }
    }

    #[test]
    fn word_byte_masks_agree() {
        let mut state = 7;
        for _ in 0..2000 {
            let block: [u8; 64] = std::array::from_fn(|_| splitmix64(&mut state) as u8);
            assert_eq!(word_byte_mask64(&block), word_byte_mask64_scalar(&block), "{block:?}");
        }
        let all: Vec<u8> = (0..=255).collect();
        for block in all.chunks(64) {
            let block = block.try_into().unwrap();
            assert_eq!(word_byte_mask64(block), word_byte_mask64_scalar(block));
        }
    }

    #[test]
    fn detection_curve() {
        let p = |s| detection_probability(14, 8, s);
        assert!((p(0.5) - 0.05332).abs() < 1e-4, "{}", p(0.5));
        assert!((p(0.8) - 0.92354).abs() < 1e-4, "{}", p(0.8));
        assert!((p(0.9) - 0.99963).abs() < 1e-4, "{}", p(0.9));
        assert_eq!(p(1.0), 1.0);
        assert_eq!(p(0.0), 0.0);
        let table = detection_table(14, 8);
        assert_eq!(table.len(), 10);
        assert!((table[0].0 - 0.5).abs() < 1e-12 && (table[9].0 - 0.95).abs() < 1e-12);
        assert!(table.windows(2).all(|w| w[0].1 < w[1].1));
        for (s, prob) in table {
            assert_eq!(prob, p(s));
        }
    }

    #[test]
    fn config_is_checked() {
        assert!(DedupConfig::default().validate().is_ok());
        let bad = [
            DedupConfig { ngram: 0, ..Default::default() },
            DedupConfig { bands: 15, ..Default::default() },
            DedupConfig { rows: 0, ..Default::default() },
            DedupConfig { threshold: 0.0, ..Default::default() },
            DedupConfig { threshold: f64::NAN, ..Default::default() },
        ];
        for config in bad {
            assert!(config.validate().is_err(), "{config:?}");
        }
        assert_eq!(Keep::parse("longest").unwrap(), Keep::Longest);
        assert!(Keep::parse("last").is_err());
    }

    #[test]
    fn signatures_are_deterministic_and_sized() {
        let config = DedupConfig::default();
        let text = random_words(1, 50).join(" ");
        let a = Signer::new(&config).sign(&text);
        let mut signer = Signer::new(&config);
        signer.sign("something else entirely");
        assert_eq!(signer.sign(&text), a);
        assert_eq!(a.bands.len(), 14);
        assert_eq!(a.n_chars, text.chars().count() as u64);
        assert_eq!(a.exact, xxh3_128(text.as_bytes()));
        // Case and punctuation change the exact hash, not the near-duplicate signature.
        let shouted = Signer::new(&config).sign(&format!("{}!", text.to_uppercase()));
        assert_ne!(shouted.exact, a.exact);
        assert_eq!(shouted.bands, a.bands);
        assert!(Signer::new(&config).sign("?!").bands.is_empty());
        // Short texts have one shingle of all their words.
        let short = Signer::new(&config).sign("two words");
        assert_eq!(short.bands.len(), 14);
        assert_ne!(short.bands, Signer::new(&config).sign("two other").bands);
    }

    #[test]
    fn exact_duplicates_point_at_the_first() {
        let texts: Vec<String> = ["alpha beta", "gamma", "alpha beta", "", "", "alpha beta", "Alpha beta"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let result = run_index(&texts, &DedupConfig::default());
        let of: Vec<_> = result.records.iter().map(|r| r.exact_dup_of).collect();
        assert_eq!(of, [None, None, Some(0), None, Some(3), Some(0), None]);
        let s = &result.summary;
        assert_eq!((s.records, s.exact_duplicates), (7, 3));
        // "Alpha beta" differs only in case: a near duplicate of "alpha beta".
        assert_eq!(result.records[6].cluster, Some(0));
        assert_eq!(result.records[0].cluster_size, 4);
        assert_eq!(result.records[2].cluster, Some(0));
        assert!(result.records[0].is_representative && !result.records[2].is_representative);
        assert_eq!((s.near_dup_clusters, s.records_in_clusters, s.removed, s.kept), (1, 4, 4, 3));
        assert!((s.unique_fraction - 3.0 / 7.0).abs() < 1e-12);
    }

    #[test]
    fn near_duplicates_cluster_and_different_texts_do_not() {
        let base = random_words(7, 100);
        let mut one = base.clone();
        one[40] = "changed".into();
        let mut two = base.clone();
        two[70] = "other".into();
        two[71] = "words".into();
        let mut texts = vec![base.join(" ")];
        for i in 0..20 {
            texts.push(random_words(100 + i, 100).join(" "));
        }
        texts.push(one.join(" "));
        texts.push(two.join(" ").to_uppercase().replace(' ', ",  "));
        let result = run_index(&texts, &DedupConfig::default());
        let clustered: Vec<usize> =
            (0..texts.len()).filter(|&i| result.records[i].cluster.is_some()).collect();
        assert_eq!(clustered, [0, 21, 22]);
        for &i in &clustered {
            assert_eq!(result.records[i].cluster, Some(0));
            assert_eq!(result.records[i].cluster_size, 3);
            assert_eq!(result.records[i].is_representative, i == 0);
        }
        let s = &result.summary;
        assert_eq!((s.exact_duplicates, s.near_dup_clusters, s.records_in_clusters, s.removed), (0, 1, 3, 2));
    }

    #[test]
    fn dissimilar_candidates_are_not_joined() {
        // Records that share a band key but whose signatures disagree stay apart.
        let config = DedupConfig::default();
        let mut index = DedupIndex::new(&config);
        for i in 0..3u64 {
            let mut bands = vec![1000 + i; config.bands];
            bands[0] = 7;
            index.add(&RecordSignature { exact: u128::from(i), bands, n_chars: 10, minhash: vec![] });
        }
        let result = index
            .finish(|sigs| -> Result<(), ()> {
                assert_eq!(sigs.records(), [0, 1, 2]);
                let mut similar: Vec<u32> = (0..112).collect();
                sigs.set(0, &similar);
                similar[5] = 99_999;
                sigs.set(1, &similar);
                sigs.set(2, &(1000..1112).collect::<Vec<u32>>());
                assert!(!sigs.set(3, &similar));
                Ok(())
            })
            .unwrap();
        let clusters: Vec<_> = result.records.iter().map(|r| r.cluster).collect();
        assert_eq!(clusters, [Some(0), Some(0), None]);
        assert_eq!(result.summary.pairs_joined, 1);
    }

    #[test]
    fn keep_first_or_longest() {
        let base = random_words(3, 200);
        let mut longer = base.clone();
        longer[10] = "muchlongerword".into();
        let mut shorter = base.clone();
        shorter[30] = "x".into();
        let texts = vec![
            random_words(4, 200).join(" "),
            shorter.join(" "),
            longer.join(" "),
            base.join(" "),
            longer.join(" "),
        ];
        for (keep, rep) in [(Keep::First, 1), (Keep::Longest, 2)] {
            let result = run_index(&texts, &DedupConfig { keep, ..Default::default() });
            let reps: Vec<usize> = (0..5).filter(|&i| result.records[i].is_representative).collect();
            assert_eq!(reps, [rep], "{keep:?}");
            assert!(result.records[1..].iter().all(|r| r.cluster == Some(1) && r.cluster_size == 4));
            assert_eq!(result.records[4].exact_dup_of, Some(2));
            assert_eq!(result.summary.removed, 3);
            assert!(!result.records[0].removed());
        }
        // Equal lengths go to the first.
        let texts = vec![base.join(" "), base.join(" ").to_uppercase()];
        let result = run_index(&texts, &DedupConfig { keep: Keep::Longest, ..Default::default() });
        assert!(result.records[0].is_representative && !result.records[1].is_representative);
    }

    #[test]
    fn sort_by_hash_sorts_like_sort_unstable() {
        let mut state = 7u64;
        for n in [0, 1, 63, 64, 1000, 70_000] {
            let mut pairs: Vec<(u64, u32)> = (0..n as u32)
                .map(|r| {
                    let h = splitmix64(&mut state);
                    // Runs of equal keys, and keys that share their top bits, as well as spread ones.
                    let key = match h % 4 {
                        0 => h % 5,
                        1 => h >> 40,
                        _ => h,
                    };
                    (key, r)
                })
                .collect();
            let mut expected = pairs.clone();
            expected.sort_unstable();
            sort_by_hash(&mut pairs, &mut Vec::new());
            assert_eq!(pairs, expected, "{n} pairs");
        }
        // One key for all (a template's band), and keys that differ in their lowest byte only, with
        // the records in descending order.
        for key_of in [|_: u32| 42u64, |r: u32| (7 << 40) | u64::from(r % 200)] {
            let mut pairs: Vec<(u64, u32)> = (0..5000).rev().map(|r| (key_of(r), r)).collect();
            let mut expected = pairs.clone();
            expected.sort_unstable();
            sort_by_hash(&mut pairs, &mut Vec::new());
            assert_eq!(pairs, expected);
        }
    }

    #[test]
    fn diversity_counts_distinct_ngrams() {
        let mut d = Diversity::default();
        d.add_words(&word_hashes("a b a b"));
        d.add_words(&word_hashes("a"));
        let report = d.report();
        let got: Vec<_> = report.iter().map(|r| (r.n, r.total, r.distinct, r.exact)).collect();
        assert_eq!(got, [(1, 5, 2, true), (2, 3, 2, true), (3, 2, 2, true)]);
        assert!((report[0].ratio - 0.4).abs() < 1e-12);

        // Past the exact limit: an estimate within 3%, the same however the words are split.
        let words: Vec<u64> = (0..400_000u64).map(|i| xxh3_64(&i.to_le_bytes())).collect();
        let mut whole = Diversity::default();
        whole.add_words(&words);
        let mut parts = [Diversity::default(), Diversity::default(), Diversity::default()];
        for (i, chunk) in words.chunks(1000).enumerate() {
            parts[i % 3].add_words(chunk);
        }
        let mut merged = Diversity::default();
        for part in &parts {
            merged.merge(part);
        }
        let unigrams = &merged.report()[0];
        assert!(!unigrams.exact);
        assert!((unigrams.distinct as f64 / 400_000.0 - 1.0).abs() < 0.03, "{}", unigrams.distinct);
        assert_eq!(merged.report()[0], whole.report()[0]);
        // Bigrams across the split points differ; exact counts merge exactly.
        let mut small = [Diversity::default(), Diversity::default()];
        small[0].add_words(&words[..100]);
        small[1].add_words(&words[50..150]);
        small[0].merge(&small[1].clone());
        assert_eq!((small[0].report()[0].distinct, small[0].report()[0].total), (150, 200));
    }

    fn write_temp(name: &str, data: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tokenlens-dedup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap();
        path
    }

    fn dedup_file(path: &std::path::Path, threads: usize, chunk_size: usize, keep: Keep) -> DedupReport {
        dedup_file_holding(path, threads, chunk_size, keep, DedupConfig::default().held_signature_bytes)
    }

    fn dedup_file_holding(
        path: &std::path::Path,
        threads: usize,
        chunk_size: usize,
        keep: Keep,
        held_signature_bytes: usize,
    ) -> DedupReport {
        let options = DedupOptions {
            text: TextSpec::Auto,
            config: DedupConfig { keep, held_signature_bytes, ..Default::default() },
            exact_only: false,
        };
        let run_options = RunOptions {
            threads,
            read: ReadOptions { chunk_size, max_line_bytes: 1 << 20 },
            ..Default::default()
        };
        dedup(&[Source::Path(path.to_path_buf())], &options, &run_options).unwrap()
    }

    #[test]
    fn whole_files_do_not_depend_on_threads_or_chunking() {
        let mut data = String::new();
        let bases: Vec<Vec<String>> = (0..30).map(|i| random_words(1000 + i, 40 + i as usize)).collect();
        for i in 0..600u64 {
            match i % 10 {
                0 => data += "{broken\n",
                1 => data += "\n",
                2 => data += "{\"other\": 1}\n",
                _ => {
                    let mut words = bases[(i * 7 % 30) as usize].clone();
                    if i % 3 == 0 {
                        let at = (i as usize * 13) % words.len();
                        words[at] = format!("edit{}", i % 4);
                    }
                    let text = words.join(" ");
                    data += &match i % 4 {
                        0 => format!("{{\"text\": \"{text}\"}}\n"),
                        1 => format!("{{\"messages\": [{{\"role\": \"user\", \"content\": \"{text}\"}}]}}\n"),
                        _ => format!("{{\"text\": \"{}\"}}\n", random_words(i, 30).join(" ")),
                    };
                }
            }
        }
        let path = write_temp("determinism.jsonl", &data);
        let reference = dedup_file(&path, 1, 1 << 20, Keep::Longest);
        assert_eq!(reference.lines, 600);
        assert_eq!(reference.blank, 60);
        assert_eq!(reference.skipped_by_code.values().sum::<u64>(), 120);
        assert_eq!(reference.records.len(), 420);
        assert!(reference.summary.exact_duplicates > 0 && reference.summary.near_dup_clusters > 0);
        for (threads, chunk) in [(2, 1), (3, 100), (4, 4096)] {
            let other = dedup_file(&path, threads, chunk, Keep::Longest);
            assert_eq!(other.records, reference.records);
            assert_eq!(other.summary, reference.summary);
        }
        // Reading the candidates again gives what keeping the signatures gave: with no memory to
        // keep them, and with room for a few dozen records only.
        for held in [0, 50 * 112] {
            let reread = dedup_file_holding(&path, 2, 4096, Keep::Longest, held);
            assert_eq!(reread.records, reference.records);
            assert_eq!(reread.summary, reference.summary);
        }
        // Indices refer to records; lines are where they are.
        for r in &reference.records {
            if let Some(first) = r.outcome.exact_dup_of {
                assert!(reference.records[first as usize].line < r.line);
            }
        }
        let stdin = dedup(
            &[Source::Stdin],
            &DedupOptions { text: TextSpec::Auto, config: Default::default(), exact_only: false },
            &RunOptions::default(),
        );
        assert!(matches!(stdin, Err(Error::InvalidInput(_))));
    }

    #[test]
    fn real_data_has_near_duplicate_clusters() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/t0_dev_text.jsonl.zst");
        if !path.exists() {
            println!("skipped: {} is not there", path.display());
            return;
        }
        let data = zstd::decode_all(std::fs::File::open(&path).unwrap()).unwrap();
        let data = String::from_utf8(data).unwrap();
        // Unoptimized builds take the first 6000 records only.
        let lines: Vec<&str> =
            data.lines().take(if cfg!(debug_assertions) { 6000 } else { usize::MAX }).collect();
        let start = std::time::Instant::now();
        let report = if lines.len() < 21_246 {
            let prefix = write_temp("t0_prefix.jsonl", &(lines.join("\n") + "\n"));
            dedup_file(&prefix, 2, 1 << 20, Keep::First)
        } else {
            dedup_file(&path, 2, 1 << 20, Keep::First)
        };
        let s = &report.summary;
        println!("t0_dev_text ({} records): {s:?} in {:?}", lines.len(), start.elapsed());
        assert_eq!(s.records, lines.len() as u64);
        assert!(s.near_dup_clusters >= 100, "{s:?}");
        assert!(s.removed >= s.exact_duplicates + s.near_dup_clusters);

        // Every clustered record has a truly similar record in its cluster (exact Jaccard of the
        // shingle sets, with room for the estimate's error).
        let mut signer = Signer::new(&DedupConfig::default());
        let shingles = |signer: &mut Signer, i: usize| -> FxHashSet<u64> {
            let text = normalize(&record(lines[i]), &TextSpec::Auto).unwrap();
            signer.compute(&text);
            shingle_hashes(signer.words(), signer.config().ngram).collect()
        };
        let mut members: FxHashMap<u64, Vec<usize>> = FxHashMap::default();
        for (i, r) in report.records.iter().enumerate() {
            if let (Some(cluster), None) = (r.outcome.cluster, r.outcome.exact_dup_of) {
                members.entry(cluster).or_default().push(i);
            }
        }
        let mut checked = 0;
        for i in (0..report.records.len()).filter(|&i| report.records[i].outcome.exact_dup_of.is_none()) {
            let Some(cluster) = report.records[i].outcome.cluster else { continue };
            let mine = shingles(&mut signer, i);
            let best = members[&cluster]
                .iter()
                .filter(|&&j| j != i)
                .take(50)
                .map(|&j| {
                    let other = shingles(&mut signer, j);
                    mine.intersection(&other).count() as f64 / mine.union(&other).count() as f64
                })
                .fold(0.0, f64::max);
            assert!(best >= 0.65, "record {i} in cluster {cluster}: best Jaccard {best}");
            checked += 1;
            if checked == 300 {
                break;
            }
        }
    }

    #[test]
    fn one_permutation_minhash_fills_every_bin() {
        let shingles: Vec<u64> = (0..40u64).map(fmix64).collect();
        let probes = Probes::new(112);
        let (mut bins, mut mins) = (BinScratch::default(), vec![0u32; 112]);
        one_permutation_minhash(shingles.iter().copied(), &probes, &mut bins, &mut mins);
        let mut own: Vec<Option<u32>> = vec![None; 112];
        for &h in &shingles {
            let bin = &mut own[bin_of(h, 112)];
            *bin = Some(bin.map_or(h as u32, |m| m.min(h as u32)));
        }
        for (i, &m) in mins.iter().enumerate() {
            match own[i] {
                Some(value) => assert_eq!(m, value),
                // An empty bin borrows the value of a non-empty one.
                None => assert!(own.contains(&Some(m))),
            }
        }
        // A single shingle fills every bin; the order of the shingles does not matter.
        one_permutation_minhash(shingles[..1].iter().copied(), &probes, &mut bins, &mut mins);
        assert!(mins.iter().all(|&m| m == shingles[0] as u32));
        let mut reversed = mins.clone();
        let backwards: Vec<u64> = shingles.iter().rev().copied().collect();
        one_permutation_minhash(backwards.iter().copied(), &probes, &mut bins, &mut reversed);
        one_permutation_minhash(shingles.iter().copied(), &probes, &mut bins, &mut mins);
        assert_eq!(mins, reversed);
    }

    #[test]
    fn densification_equals_probing_bin_by_bin() {
        // The definition: each empty bin follows its own probe sequence to the first non-empty bin.
        fn bin_by_bin(shingles: &[u64], probes: &Probes, k: usize) -> Vec<u32> {
            let mut bins = vec![EMPTY_BIN; k];
            for &h in shingles {
                bins[bin_of(h, k)] = bins[bin_of(h, k)].min(h & 0xFFFF_FFFF);
            }
            (0..k)
                .map(|i| {
                    let probe = probes.sequences[i];
                    let (mut value, mut at) = (bins[i], probe.start);
                    while value == EMPTY_BIN {
                        at = at.wrapping_add(probe.step);
                        value = bins[bin_of(at, k)];
                    }
                    value as u32
                })
                .collect()
        }
        let mut state = 7;
        let mut scratch = BinScratch::default();
        // With the visit tables (up to 254 bins) and in rounds (past them).
        for k in [1, 7, 112, 254, 255] {
            let probes = Probes::new(k);
            let mut mins = vec![0u32; k];
            for n in [1, 2, 3, 4, 5, 7, 10, 12, 16, 50, 111, 112, 113, 400] {
                let shingles: Vec<u64> = (0..n).map(|_| splitmix64(&mut state)).collect();
                one_permutation_minhash(shingles.iter().copied(), &probes, &mut scratch, &mut mins);
                assert_eq!(mins, bin_by_bin(&shingles, &probes, k), "{n} shingles in {k} bins");
            }
        }
    }

    #[test]
    fn rolled_shingles_match_their_definition() {
        let words: Vec<u64> = (0..30u64).map(fmix64).collect();
        let direct = |window: &[u64]| {
            let rotated = window.iter().rev().enumerate();
            fmix64(rotated.fold(0, |h, (j, &w)| h ^ w.rotate_left(j as u32 * NGRAM_ROTATION)))
        };
        for n in [1, 2, 5, 7, 30, 40] {
            for len in [1, 4, 5, 6, 30] {
                let shingles: Vec<u64> = shingle_hashes(&words[..len], n).collect();
                let expect: Vec<u64> = words[..len].windows(n.min(len)).map(direct).collect();
                assert_eq!(shingles, expect, "n {n}, {len} words");
            }
        }
        // The diversity n-grams: none from fewer words than `n`.
        assert_eq!(ngram_hashes(&words[..2], 3).count(), 0);
        assert_eq!(ngram_hashes(&words[..3], 3).map(fmix64).collect::<Vec<_>>(), [direct(&words[..3])]);
        // Word order matters.
        let swapped: Vec<u64> = shingle_hashes(&[words[1], words[0]], 2).collect();
        assert_ne!(swapped, [direct(&words[..2])]);
    }

    /// Signatures of `pairs` random pairs of shingle sets of `union` shingles, `common` of them in
    /// both and the others split evenly: Jaccard similarity `common / union` exactly.
    fn random_pairs(union: usize, common: usize, pairs: u64) -> Vec<(Vec<u32>, Vec<u32>)> {
        let mut state = (union * 1000 + common) as u64;
        (0..pairs)
            .map(|_| {
                let shingles: Vec<u64> = (0..union).map(|_| splitmix64(&mut state)).collect();
                let only = (union - common) / 2;
                let a = [&shingles[..common], &shingles[common..common + only]].concat();
                let b = [&shingles[..common], &shingles[common + only..]].concat();
                let sign = |set: &[u64]| {
                    let mut mins = vec![0u32; 112];
                    one_permutation_minhash(
                        set.iter().copied(),
                        &Probes::new(112),
                        &mut BinScratch::default(),
                        &mut mins,
                    );
                    mins
                };
                (sign(&a), sign(&b))
            })
            .collect()
    }

    #[test]
    fn minhash_estimates_jaccard_without_bias() {
        // Small sets (many bins filled by densification), sets about as large as the signature, and
        // large ones; the estimate is the share of equal values.
        for (union, common) in [(30, 6), (30, 18), (30, 24), (120, 36), (120, 96), (110, 88), (1000, 800)] {
            let jaccard = common as f64 / union as f64;
            let estimates: Vec<f64> = random_pairs(union, common, 2000)
                .iter()
                .map(|(a, b)| a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / 112.0)
                .collect();
            let n = estimates.len() as f64;
            let mean = estimates.iter().sum::<f64>() / n;
            let sd = (estimates.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
            // Unbiased: the mean is within 4 standard errors of the true similarity.
            assert!((mean - jaccard).abs() < 4.0 * sd / n.sqrt(), "{union} {common}: mean {mean}, sd {sd}");
            // Spread: about that of 112 independent permutations, sqrt(s (1 - s) / 112), or less.
            let classic = (jaccard * (1.0 - jaccard) / 112.0).sqrt();
            assert!(sd < 1.3 * classic, "{union} {common}: sd {sd} vs {classic}");
            println!(
                "union {union} J {jaccard:.2}: mean {mean:.4} sd {sd:.4} (112 permutations: {classic:.4})"
            );
        }
    }

    #[test]
    fn band_collisions_follow_the_detection_curve() {
        let config = DedupConfig::default();
        for (union, common) in [(1000, 500), (1000, 700), (1000, 800), (1000, 900), (150, 120)] {
            let pairs = random_pairs(union, common, 1000);
            let rows = config.rows;
            let detected = pairs
                .iter()
                .filter(|(a, b)| {
                    (0..config.bands).any(|band| a[band * rows..][..rows] == b[band * rows..][..rows])
                })
                .count() as f64
                / pairs.len() as f64;
            let expect = detection_probability(config.bands, rows, common as f64 / union as f64);
            println!(
                "union {union} J {:.2}: detected {detected:.3}, curve {expect:.3}",
                common as f64 / union as f64
            );
            assert!((detected - expect).abs() < 0.05, "{union} {common}: {detected} vs {expect}");
        }
    }

    #[test]
    fn exact_only_skips_near_duplicates() {
        let base = random_words(9, 80);
        let mut edited = base.clone();
        edited[5] = "edited".into();
        let lines: Vec<String> = [&base, &edited, &base]
            .iter()
            .map(|words| format!("{{\"text\": \"{}\"}}", words.join(" ")))
            .collect();
        let path = write_temp("exact_only.jsonl", &(lines.join("\n") + "\n"));
        let sources = [Source::Path(path)];
        let mut options =
            DedupOptions { text: TextSpec::Auto, config: Default::default(), exact_only: false };
        let both = dedup(&sources, &options, &RunOptions::default()).unwrap();
        assert_eq!((both.summary.exact_duplicates, both.summary.near_dup_clusters), (1, 1));
        options.exact_only = true;
        let exact = dedup(&sources, &options, &RunOptions::default()).unwrap();
        let s = &exact.summary;
        assert_eq!((s.exact_duplicates, s.near_dup_clusters, s.candidates, s.removed), (1, 0, 0, 1));
        assert_eq!(exact.records[2].outcome.exact_dup_of, Some(0));
    }

    #[test]
    fn signing_speed() {
        let texts: Vec<String> = (0..2000).map(|i| random_words(i, 200).join(" ")).collect();
        let bytes: usize = texts.iter().map(String::len).sum();
        let mut signer = Signer::new(&DedupConfig::default());
        let start = std::time::Instant::now();
        let mut keys = 0u64;
        for text in &texts {
            keys ^= signer.sign(text).bands[0];
        }
        let secs = start.elapsed().as_secs_f64();
        println!("signing: {:.1} MB/s on one thread ({bytes} bytes, {keys:x})", bytes as f64 / secs / 1e6);
    }
}
