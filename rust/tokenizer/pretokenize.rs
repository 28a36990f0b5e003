//! Splitting text into pre-tokens exactly as tiktoken's regular expressions do.
//!
//! tiktoken's patterns are matched by hand here: at each position the alternatives are tried in the
//! pattern's order with the pattern's backtracking semantics, written out per pattern family (each
//! function below quotes the alternatives it implements). Every character starts a pre-token, so the
//! pieces are contiguous. The character classes (`\p{L}`, `\p{N}`, `\s`, o200k's case classes) come
//! from `regex-syntax`, the crate whose tables the `regex` and `fancy-regex` crates (and so tiktoken)
//! use, looked up through a two-level table with an ASCII shortcut. For cl100k and o200k, runs of
//! ASCII text go through [`super::ascii_blocks`] instead, which decides the pieces of 64 bytes at
//! once and hands back to the matchers here what it cannot. Differential tests below, in `tests/`
//! and in the `pretokenize` fuzz target compare the result with the original patterns.

use std::ops::Range;
use std::sync::OnceLock;

use regex_syntax::hir::{Class, HirKind};
use rustc_hash::FxHashMap;

use super::ascii_blocks::{self, LetterBlock, ANY_FOLLOW};

/// Pattern family of an OpenAI encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatternKind {
    /// r50k_base, p50k_base (GPT-2 style).
    Gpt2,
    /// cl100k_base.
    Cl100k,
    /// o200k_base.
    O200k,
    /// The pattern of Llama 3 and of `transformers`' tiktoken converter (its default): cl100k's words,
    /// numbers and punctuation with o200k's whitespace rules (no `\s++$`, `\s*[\r\n]+`). Not an OpenAI
    /// encoding; it comes from Hugging Face tokenizer.json files.
    Llama3,
}

impl PatternKind {
    /// The pattern exactly as tiktoken writes it (the reference for tests).
    pub fn reference_pattern(self) -> &'static str {
        match self {
            PatternKind::Gpt2 => {
                r"'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"
            }
            PatternKind::Cl100k => {
                r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"
            }
            PatternKind::O200k => concat!(
                r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
                r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
                r"|\p{N}{1,3}",
                r"| ?[^\s\p{L}\p{N}]+[\r\n/]*",
                r"|\s*[\r\n]+",
                r"|\s+(?!\S)",
                r"|\s+",
            ),
            PatternKind::Llama3 => {
                r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
            }
        }
    }
}

// Character classes, one bit each; a position past the end of the text has none of them.
/// `\p{L}`
const LETTER: u8 = 1;
/// `\p{N}`
const NUMBER: u8 = 2;
/// `\s` (Unicode White_Space)
const SPACE: u8 = 4;
/// `[^\s\p{L}\p{N}]`
const OTHER: u8 = 8;
/// `[\r\n]`
const NEWLINE: u8 = 16;
/// o200k's `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`
const UPPER: u8 = 32;
/// o200k's `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`
const LOWER: u8 = 64;

/// The regex syntax of each class bit.
const CLASS_SYNTAX: [(u8, &str); 5] = [
    (LETTER, r"\p{L}"),
    (NUMBER, r"\p{N}"),
    (SPACE, r"\s"),
    (UPPER, r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]"),
    (LOWER, r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"),
];

/// Code points per leaf of the class table.
const LEAF: usize = 128;
/// Blocks in [`ClassTable::letter_blocks`], the largest ones of at least [`LETTER_BLOCK_MIN_CHARS`]:
/// each costs one or two comparisons per 16 bytes of a window that is mostly outside ASCII.
const LETTER_BLOCKS_MAX: usize = 12;
const LETTER_BLOCK_MIN_CHARS: u32 = 16;

/// The classes of every code point: `leaves[blocks[cp / LEAF]][cp % LEAF]`, identical leaves shared
/// (about 40 KB in all), and ASCII and the two-byte characters (Latin, Greek, Cyrillic, Hebrew,
/// Arabic, ...) on their own, looked up in one step.
struct ClassTable {
    ascii: [u8; 128],
    /// Code points 0 to 0x7FF, by the low 5 bits of their UTF-8 lead byte and 6 of their second.
    two_byte: [u8; 0x800],
    /// For cl100k (`[0]`) and o200k (`[1]`): blocks of two-byte letters that
    /// [`ClassTable::window_letter`] takes as one kind (Cyrillic, Latin, Greek, ...), for the windows
    /// of [`ascii_blocks::split`] to find at once.
    letter_blocks: [Vec<LetterBlock>; 2],
    blocks: Vec<u16>,
    leaves: Vec<[u8; LEAF]>,
}

/// The code point ranges (inclusive) of a class written in regex syntax, as `regex-syntax` reads it.
fn class_ranges(syntax: &str) -> Vec<(u32, u32)> {
    match regex_syntax::parse(syntax).expect("class syntax parses").into_kind() {
        HirKind::Class(Class::Unicode(class)) => {
            class.ranges().iter().map(|r| (r.start() as u32, r.end() as u32)).collect()
        }
        other => panic!("{syntax} is not a Unicode class: {other:?}"),
    }
}

impl ClassTable {
    fn get() -> &'static ClassTable {
        static TABLE: OnceLock<ClassTable> = OnceLock::new();
        TABLE.get_or_init(ClassTable::build)
    }

    fn build() -> ClassTable {
        let mut flags = vec![0u8; 0x11_0000];
        for (bit, syntax) in CLASS_SYNTAX {
            for (start, end) in class_ranges(syntax) {
                for f in &mut flags[start as usize..=end as usize] {
                    *f |= bit;
                }
            }
        }
        for f in &mut flags {
            if *f & (LETTER | NUMBER | SPACE) == 0 {
                *f |= OTHER;
            }
        }
        flags[b'\r' as usize] |= NEWLINE;
        flags[b'\n' as usize] |= NEWLINE;
        let mut leaves: Vec<[u8; LEAF]> = Vec::new();
        let mut seen: FxHashMap<[u8; LEAF], u16> = FxHashMap::default();
        let blocks = flags
            .chunks(LEAF)
            .map(|chunk| {
                let leaf: [u8; LEAF] = chunk.try_into().expect("the code space is a whole number of leaves");
                *seen.entry(leaf).or_insert_with(|| {
                    leaves.push(leaf);
                    (leaves.len() - 1) as u16
                })
            })
            .collect();
        let ascii = flags[..128].try_into().expect("128 ASCII classes");
        let two_byte: [u8; 0x800] = flags[..0x800].try_into().expect("0x800 classes");
        let mut table = ClassTable { ascii, two_byte, letter_blocks: Default::default(), blocks, leaves };
        table.letter_blocks = [false, true].map(|cased| table.find_letter_blocks(cased));
        table
    }

    /// The classes of the character at byte `i` of `b` (valid UTF-8) and its length; none past the end.
    #[inline(always)]
    fn at(&self, b: &[u8], i: usize) -> (u8, usize) {
        let Some(&b0) = b.get(i) else { return (0, 0) };
        if b0 < 0x80 {
            return (self.ascii[b0 as usize], 1);
        }
        let cont = |k: usize| (b[i + k] & 0x3F) as u32;
        if b0 < 0xE0 {
            return (self.two_byte[(((b0 as u32 & 0x1F) << 6) | cont(1)) as usize], 2);
        }
        let (cp, len) = if b0 < 0xF0 {
            (((b0 as u32 & 0x0F) << 12) | (cont(1) << 6) | cont(2), 3)
        } else {
            (((b0 as u32 & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3), 4)
        };
        let leaf = &self.leaves[self.blocks[cp as usize / LEAF] as usize];
        (leaf[cp as usize % LEAF], len)
    }

    /// For [`ascii_blocks::split`]: the length of the character at byte `i` (outside ASCII) and
    /// whether it is lower-case, when it is a letter that the window masks can take as an ASCII one.
    /// For cl100k that is any `\p{L}`; for o200k (`cased`) a letter of one of its two case classes
    /// only (`Lu`, `Lt` or `Ll`), not of both (`Lm`, `Lo`, marks), for which its words follow other
    /// rules than ASCII's.
    #[inline(always)]
    fn window_letter(&self, b: &[u8], i: usize, cased: bool) -> Option<(usize, bool)> {
        let (class, len) = self.at(b, i);
        if class & LETTER == 0 {
            return None;
        }
        if !cased {
            return Some((len, false));
        }
        match (class & UPPER != 0, class & LOWER != 0) {
            (true, false) => Some((len, false)),
            (false, true) => Some((len, true)),
            _ => None,
        }
    }

    /// The runs of two-byte characters that [`ClassTable::window_letter`] takes as letters of one
    /// kind, joined across lead bytes where they cover the same second bytes; the largest
    /// [`LETTER_BLOCKS_MAX`] of at least [`LETTER_BLOCK_MIN_CHARS`] characters.
    fn find_letter_blocks(&self, cased: bool) -> Vec<LetterBlock> {
        let kind =
            |lead: u8, follow: u8| self.window_letter(&[lead, follow], 0, cased).map(|(_, lower)| lower);
        let mut found: Vec<LetterBlock> = Vec::new();
        for lead in 0xC2..=0xDF {
            let mut follow = 0x80;
            while follow <= 0xBF {
                let Some(lower) = kind(lead, follow) else {
                    follow += 1;
                    continue;
                };
                let first = follow;
                while follow <= 0xBF && kind(lead, follow) == Some(lower) {
                    follow += 1;
                }
                let block = LetterBlock { leads: (lead, 1), follows: (first, follow - first), lower };
                match found.last_mut() {
                    Some(last)
                        if (last.follows, last.lower) == (block.follows, lower)
                            && last.leads.0 + last.leads.1 == lead =>
                    {
                        last.leads.1 += 1
                    }
                    _ => found.push(block),
                }
            }
        }
        let chars = |b: &LetterBlock| u32::from(b.leads.1) * u32::from(b.follows.1);
        // cl100k's word rule ignores case, so whole lead bytes cover its letters in fewer blocks of
        // one comparison each; a block of part of a lead's characters there slowed Cyrillic down.
        found.retain(|b| chars(b) >= LETTER_BLOCK_MIN_CHARS && (cased || b.follows == ANY_FOLLOW));
        found.sort_by_key(|b| std::cmp::Reverse(chars(b)));
        found.truncate(LETTER_BLOCKS_MAX);
        found
    }

    /// The end of the run of characters with any class of `mask` that starts at `i`.
    #[inline(always)]
    fn skip(&self, b: &[u8], mut i: usize, mask: u8) -> usize {
        if mask == LETTER || mask == LOWER {
            // Words are mostly ASCII: take their letters 8 at a time; where a non-ASCII character
            // stops that, go on one character at a time.
            i = ascii_letters_end(b, i, mask == LOWER);
            if b.get(i).is_some_and(u8::is_ascii) {
                return i;
            }
        }
        loop {
            let (class, len) = self.at(b, i);
            if class & mask == 0 {
                return i;
            }
            i += len;
        }
    }
}

/// The end of the ASCII letters (`[a-z]` only, with `lowercase`) from `i`, read 8 bytes at a time; the
/// byte there (if any) is not one, but may start a non-ASCII letter. `[A-Za-z]` and `[a-z]` are all
/// of `\p{L}` and of o200k's lower class in ASCII.
#[inline(always)]
fn ascii_letters_end(b: &[u8], mut i: usize, lowercase: bool) -> usize {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        // Per byte, for an ASCII byte (which leaves no carry to the next): the high bit of `at_least_a`
        // says `y >= b'a'`, that of `past_z` says `y > b'z'`. A non-ASCII byte may carry into the
        // bytes after it, which are not looked at: it is itself not a letter here.
        let y = if lowercase { x } else { x | 0x2020_2020_2020_2020 };
        let at_least_a = y.wrapping_add(0x1F1F_1F1F_1F1F_1F1F);
        let past_z = y.wrapping_add(0x0505_0505_0505_0505);
        let letters = at_least_a & !past_z & !x & HIGH;
        if letters != HIGH {
            return i + ((!letters & HIGH).trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    // The last few bytes, one at a time.
    while let Some(&c) = b.get(i) {
        let letter = if lowercase { c.is_ascii_lowercase() } else { c.is_ascii_alphabetic() };
        if !letter {
            break;
        }
        i += 1;
    }
    i
}

/// Calls `f` with the range of each piece of `text`, `piece_end(bytes, start)` giving where the piece
/// that starts at `start` ends.
#[inline(always)]
fn split(text: &str, mut f: impl FnMut(Range<usize>), piece_end: impl Fn(&[u8], usize) -> usize) {
    let b = text.as_bytes();
    let mut pos = 0;
    while pos < b.len() {
        let end = piece_end(b, pos);
        debug_assert!(end > pos && text.is_char_boundary(end));
        f(pos..end);
        pos = end;
    }
}

/// The end of ` ?[A-Za-z]+` at `pos` when an ASCII byte (or the end of the text) follows it: the most
/// common pre-token of prose and code, and a whole word alternative of the GPT-2, cl100k and Llama 3
/// patterns (no earlier alternative, contractions included, starts with a space or a letter). None for
/// the rest, which the class-table matchers decide, non-ASCII letters included.
#[inline(always)]
fn ascii_word_end(b: &[u8], pos: usize) -> Option<usize> {
    let start = pos + usize::from(b[pos] == b' ');
    if !b.get(start)?.is_ascii_alphabetic() {
        return None;
    }
    let end = ascii_letters_end(b, start + 1, false);
    b.get(end).map_or(true, u8::is_ascii).then_some(end)
}

/// The end of ` ?[A-Z]*[a-z]*` (one letter at least) at `pos` when an ASCII byte other than an
/// apostrophe (or the end of the text) follows it: o200k's word alternatives on ASCII, which both end
/// after the upper-case run and the lower-case run after it. None for the rest (contractions,
/// non-ASCII letters and marks), which [`Pretokenizer::o200k`] decides.
#[inline(always)]
fn ascii_cased_word_end(b: &[u8], pos: usize) -> Option<usize> {
    let start = pos + usize::from(b[pos] == b' ');
    let mut upper_end = start;
    while b.get(upper_end).is_some_and(u8::is_ascii_uppercase) {
        upper_end += 1;
    }
    let end = ascii_letters_end(b, upper_end, true);
    let settled = b.get(end).map_or(true, |&c| c.is_ascii() && c != b'\'');
    (end > start && settled).then_some(end)
}

/// `[^\r\n\p{L}\p{N}]`, the optional character before a word.
#[inline(always)]
fn is_word_prefix(class: u8) -> bool {
    class & (OTHER | SPACE) != 0 && class & NEWLINE == 0
}

/// The end of a contraction (`'` then `s`, `d`, `m`, `t`, `ll`, `ve` or `re`) whose letters start at
/// `i`, if there is one. Case-insensitive matching also takes `ſ` (U+017F) for `s`, as Unicode simple
/// case folding does.
#[inline]
pub(super) fn contraction_end(b: &[u8], i: usize, ignore_case: bool) -> Option<usize> {
    let letter = |i: usize| -> Option<(u8, usize)> {
        match *b.get(i)? {
            c @ b'a'..=b'z' => Some((c, 1)),
            c @ b'A'..=b'Z' if ignore_case => Some((c.to_ascii_lowercase(), 1)),
            0xC5 if ignore_case && b.get(i + 1) == Some(&0xBF) => Some((b's', 2)),
            _ => None,
        }
    };
    let (first, n) = letter(i)?;
    let second = match first {
        b's' | b'd' | b'm' | b't' => return Some(i + n),
        b'l' => b'l',
        b'v' | b'r' => b'e',
        _ => return None,
    };
    match letter(i + n)? {
        (c, m) if c == second => Some(i + n + m),
        _ => None,
    }
}

/// A compiled pre-tokenizer (cheap to copy, no per-thread state).
#[derive(Clone, Copy)]
pub struct Pretokenizer {
    kind: PatternKind,
    classes: &'static ClassTable,
}

impl std::fmt::Debug for Pretokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pretokenizer({:?})", self.kind)
    }
}

impl Pretokenizer {
    pub fn new(kind: PatternKind) -> Self {
        Pretokenizer { kind, classes: ClassTable::get() }
    }

    pub fn kind(&self) -> PatternKind {
        self.kind
    }

    /// Calls `f` with the byte range of every pre-token of `text`, in order; the ranges cover `text`.
    #[inline]
    pub fn for_each(&self, text: &str, f: impl FnMut(Range<usize>)) {
        // Words of ASCII letters and ASCII punctuation are decided in the loop; the rest by a call to
        // the pattern's matcher. One loop per pattern, so that the loop does not branch on it.
        match self.kind {
            PatternKind::Gpt2 => {
                split(text, f, |b, pos| ascii_word_end(b, pos).unwrap_or_else(|| self.gpt2(b, pos)))
            }
            PatternKind::Cl100k => ascii_blocks::split(
                PatternKind::Cl100k,
                text,
                f,
                |b, pos| self.cl100k_piece_end(b, pos),
                |b, at| self.classes.window_letter(b, at, false),
                &self.classes.letter_blocks[0],
            ),
            PatternKind::Llama3 => split(text, f, |b, pos| self.cl100k_piece_end(b, pos)),
            PatternKind::O200k => ascii_blocks::split(
                PatternKind::O200k,
                text,
                f,
                |b, pos| {
                    ascii_cased_word_end(b, pos)
                        .or_else(|| self.ascii_punctuation_end(b, pos))
                        .unwrap_or_else(|| self.o200k(b, pos))
                },
                |b, at| self.classes.window_letter(b, at, true),
                &self.classes.letter_blocks[1],
            ),
        }
    }

    /// The end of the cl100k (or Llama 3) piece that starts at `pos`, one character at a time.
    #[inline(always)]
    fn cl100k_piece_end(&self, b: &[u8], pos: usize) -> usize {
        ascii_word_end(b, pos)
            .or_else(|| self.ascii_punctuation_end(b, pos))
            .unwrap_or_else(|| self.cl100k(b, pos))
    }

    /// The end of ` ?[^\s\p{L}\p{N}]++[\r\n]*+` (cl100k, Llama 3) or ` ?[^\s\p{L}\p{N}]+[\r\n/]*`
    /// (o200k) on ASCII, the commonest piece after words (`,` `.` ` (` `.\n`). None where an earlier
    /// alternative may match (a character right before a letter is a word's prefix, or a
    /// contraction's apostrophe) and where the run goes on outside ASCII; the pattern's matcher
    /// decides those.
    #[inline(always)]
    fn ascii_punctuation_end(&self, b: &[u8], pos: usize) -> Option<usize> {
        let other = |c: &u8| c.is_ascii() && self.classes.ascii[*c as usize] & OTHER != 0;
        let start = pos + usize::from(b[pos] == b' ');
        if !b.get(start).is_some_and(other) {
            return None;
        }
        if start == pos && b.get(pos + 1).is_some_and(u8::is_ascii_alphabetic) {
            return None;
        }
        let mut end = start + 1;
        while b.get(end).is_some_and(other) {
            end += 1;
        }
        if !b.get(end).map_or(true, u8::is_ascii) {
            return None;
        }
        let slash = self.kind == PatternKind::O200k;
        while let Some(&c) = b.get(end) {
            if !(c == b'\r' || c == b'\n' || slash && c == b'/') {
                break;
            }
            end += 1;
        }
        Some(end)
    }

    /// `'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s`
    #[inline]
    fn gpt2(&self, b: &[u8], pos: usize) -> usize {
        if b[pos] == b'\'' {
            if let Some(end) = contraction_end(b, pos + 1, false) {
                return end;
            }
        }
        let start = if b[pos] == b' ' { pos + 1 } else { pos };
        let (class, _) = self.classes.at(b, start);
        for mask in [LETTER, NUMBER, OTHER] {
            if class & mask != 0 {
                return self.classes.skip(b, start, mask);
            }
        }
        self.whitespace(b, pos)
    }

    /// `'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|`
    /// `\s++$|\s*[\r\n]|\s+(?!\S)|\s`, and Llama 3's pattern but for its whitespace: the same
    /// contractions (`(?i:'s|'t|'re|'ve|'m|'ll|'d)`) and, without possessives, the same matches (a prefix
    /// character given back leaves a non-letter where a letter must start).
    #[inline]
    fn cl100k(&self, b: &[u8], pos: usize) -> usize {
        let t = self.classes;
        if b[pos] == b'\'' {
            if let Some(end) = contraction_end(b, pos + 1, true) {
                return end;
            }
        }
        let (class, len) = t.at(b, pos);
        if class & LETTER != 0 {
            return t.skip(b, pos + len, LETTER);
        }
        // The possessive `?+` keeps a prefix character once taken, so the word must follow it.
        if is_word_prefix(class) && t.at(b, pos + len).0 & LETTER != 0 {
            return t.skip(b, pos + len, LETTER);
        }
        if class & NUMBER != 0 {
            return self.up_to_three_numbers(b, pos);
        }
        let start = if b[pos] == b' ' { pos + 1 } else { pos };
        if t.at(b, start).0 & OTHER != 0 {
            let end = t.skip(b, start, OTHER);
            return t.skip(b, end, NEWLINE);
        }
        self.whitespace(b, pos)
    }

    /// `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|`
    /// `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|`
    /// `\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    #[inline]
    fn o200k(&self, b: &[u8], pos: usize) -> usize {
        let t = self.classes;
        let (class, len) = t.at(b, pos);
        if class & (UPPER | LOWER) != 0 || is_word_prefix(class) {
            if let Some(end) = self.o200k_word(b, pos, class, len) {
                if b.get(end) == Some(&b'\'') {
                    return contraction_end(b, end + 1, true).unwrap_or(end);
                }
                return end;
            }
        }
        if class & NUMBER != 0 {
            return self.up_to_three_numbers(b, pos);
        }
        let start = if b[pos] == b' ' { pos + 1 } else { pos };
        if t.at(b, start).0 & OTHER != 0 {
            let mut end = t.skip(b, start, OTHER);
            while let Some(b'\r' | b'\n' | b'/') = b.get(end) {
                end += 1;
            }
            return end;
        }
        self.whitespace(b, pos)
    }

    /// The end of o200k's word alternatives without their contraction, trying the backtracking
    /// regex's paths in its order: the first alternative with the prefix character, then without,
    /// then the second alternative with, then without. (Without the prefix differs from with it only
    /// for a mark, which is both a prefix and a cased-class character.)
    #[inline]
    fn o200k_word(&self, b: &[u8], pos: usize, class: u8, len: usize) -> Option<usize> {
        let prefixed = is_word_prefix(class);
        let t = self.classes;
        // `[UPPER]*[LOWER]+`: UPPER* backtracks until a LOWER character follows.
        let first = |s: usize| -> Option<usize> {
            let mut i = s;
            let mut last_both = None;
            loop {
                let (c, n) = t.at(b, i);
                if c & UPPER == 0 {
                    break;
                }
                if c & LOWER != 0 {
                    last_both = Some(i + n);
                }
                i += n;
            }
            if t.at(b, i).0 & LOWER != 0 {
                return Some(t.skip(b, i, LOWER));
            }
            // Give back the upper run down to its last character that is also LOWER, which is then
            // the whole `[LOWER]+` (the characters after it are not LOWER).
            last_both
        };
        // `[UPPER]+[LOWER]*`
        let second = |s: usize| -> Option<usize> {
            let e = t.skip(b, s, UPPER);
            (e > s).then(|| t.skip(b, e, LOWER))
        };
        (if prefixed { first(pos + len) } else { None })
            .or_else(|| first(pos))
            .or_else(|| if prefixed { second(pos + len) } else { None })
            .or_else(|| second(pos))
    }

    /// `\p{N}{1,3}`
    #[inline]
    fn up_to_three_numbers(&self, b: &[u8], pos: usize) -> usize {
        let mut end = pos;
        for _ in 0..3 {
            let (class, len) = self.classes.at(b, end);
            if class & NUMBER == 0 {
                break;
            }
            end += len;
        }
        end
    }

    /// The whitespace alternatives, for a whitespace run starting at `pos`:
    /// - `\s++$` (GPT-2, cl100k, first): a run that ends the text is one piece;
    /// - `\s*[\r\n]` (cl100k) and `\s*[\r\n]+` (o200k and Llama 3, before the end-of-text rule): a run
    ///   with a line break ends after its last line break;
    /// - `\s+(?!\S)`: a longer run followed by text gives its last character to the next piece;
    /// - `\s` or `\s+`: a single character.
    #[inline]
    fn whitespace(&self, b: &[u8], pos: usize) -> usize {
        let mut end = pos;
        let mut last_start = pos;
        let mut after_break = None;
        loop {
            let (class, len) = self.classes.at(b, end);
            if class & SPACE == 0 {
                break;
            }
            if class & NEWLINE != 0 {
                after_break = Some(end + 1);
            }
            last_start = end;
            end += len;
        }
        let at_text_end = end == b.len();
        match (self.kind, after_break) {
            (PatternKind::O200k | PatternKind::Llama3, Some(after_break)) => after_break,
            _ if at_text_end => end,
            (PatternKind::Cl100k, Some(after_break)) => after_break,
            _ if last_start > pos => last_start,
            _ => end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fancy_regex::Regex as Reference;

    const KINDS: [PatternKind; 4] =
        [PatternKind::Gpt2, PatternKind::Cl100k, PatternKind::O200k, PatternKind::Llama3];

    fn reference_pieces(kind: PatternKind, text: &str) -> Vec<String> {
        thread_local! {
            static COMPILED: Vec<Reference> =
                KINDS.iter().map(|k| Reference::new(k.reference_pattern()).unwrap()).collect();
        }
        let index = kind as usize;
        COMPILED.with(|c| c[index].find_iter(text).map(|m| m.unwrap().as_str().to_string()).collect())
    }

    fn pieces(kind: PatternKind, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        Pretokenizer::new(kind).for_each(text, |r| out.push(text[r].to_string()));
        out
    }

    fn assert_matches_reference(text: &str) {
        for kind in KINDS {
            assert_eq!(pieces(kind, text), reference_pieces(kind, text), "{kind:?} on {text:?}");
        }
    }

    const SAMPLES: &[&str] = &[
        "Hello, world!  How are   you?\n\n  Fine.\r\n\tTabs\t\there  ",
        "I'm   you'RE they'll WE'VE it's  'S 'd",
        "12345 ١٢٣٤٥ ๑๒๓ 1,000,000.50",
        "   \n   \n\n x  \u{a0} y\u{3000}z \u{2028} end   ",
        "深度学习 สวัสดีครับ नमस्ते 👩‍👩‍👧‍👦 e\u{301}",
        "path/to/file.txt //comment\n/*x*/ <|endoftext|>",
        "ALLCAPS CamelCase lowerUPPER McDonald's",
        " ",
        "  ",
        "a ",
        "a  b",
        "\n",
        " \n ",
        "x \t y",
        "Iſ 'ſ 'Ll 'lL x'Ve x'RE ǅemo ʰa ABCʰDE ABC\u{301}DE \u{301}ABC \u{301}abc",
        ".\n/\r\n/x ./ \u{301}\u{302} x\u{301}'s",
        "Internationalization ABCDEFGHIJKLmnopqrstuvwxyzé naïvetéabcdefgh xxxxxxxxé'sss aaaaaaaa\u{301}bbbbbbbbb",
    ];

    #[test]
    fn matches_reference_patterns() {
        for text in SAMPLES {
            assert_matches_reference(text);
        }
    }

    /// Every string of length 1..=`max_len` over `alphabet`.
    fn all_strings(alphabet: &[&str], max_len: usize, mut check: impl FnMut(&str)) {
        let mut texts = vec![String::new()];
        for _ in 0..max_len {
            texts = texts.iter().flat_map(|t| alphabet.iter().map(move |a| format!("{t}{a}"))).collect();
            texts.iter().for_each(|t| check(t));
        }
    }

    #[test]
    fn matches_reference_on_whitespace_combinations() {
        let alphabet = [" ", "\n", "\r", "\t", "a", "1", ".", "\u{a0}", "'", "\u{2028}"];
        all_strings(&alphabet, 4, assert_matches_reference);
    }

    #[test]
    fn matches_reference_on_letter_class_combinations() {
        // Upper (Lu, Lt), lower (Ll), both (Lm, Lo, Mn), a number, an apostrophe and contraction
        // letters in both cases, a prefix character, a slash, a space and a line break.
        let alphabet = ["A", "ǅ", "b", "ʰ", "中", "\u{301}", "٣", "'", "s", "L", "ſ", "/", " ", "\n"];
        all_strings(&alphabet, 4, assert_matches_reference);
    }

    #[test]
    fn matches_reference_on_random_text() {
        let mut random = crate::testing::xorshift(0x2545_f491_4f6c_dd1d);
        for _ in 0..3000 {
            let text = crate::testing::adversarial_text(&mut random, 3);
            assert_matches_reference(&text);
        }
    }

    #[test]
    fn matches_reference_on_long_mostly_ascii_text() {
        // Prose, code and numbers in both cases, with contractions and now and then a character
        // outside ASCII right after a word: the ASCII word paths and their hand-overs.
        let pieces = [
            " the",
            " quick",
            "Brown",
            " FOX",
            "\n",
            "\n\n",
            "  ",
            "\t",
            ". ",
            ", ",
            "!\n",
            "'s",
            "'T",
            " don't",
            "(x)",
            " 1234567",
            "3.14",
            " \u{a0}",
            "é",
            "naïve",
            " /path/to",
            "//",
            ".\n/",
            "\r\n",
            " ...",
            "ab'",
            "Internationalization",
            "ALLCAPSWORD",
            "camelCase",
            " @#$%^&*",
            "\u{301}",
            "中文",
            " 42",
            "x86_64",
            "'ll",
            " Straße",
            " über",
            "Überall",
            " привет",
            "Мир",
            " Ελλάδα",
            "ÀÉÎ",
        ];
        let mut random = crate::testing::xorshift(0x9e37_79b9);
        for _ in 0..1500 {
            let text: String = (0..random(80) + 1).map(|_| pieces[random(pieces.len())]).collect();
            assert_matches_reference(&text);
        }
    }

    #[test]
    fn matches_reference_on_random_ascii_across_windows() {
        // Every ASCII byte, the classes' edges and contraction letters more often, now and then a
        // character outside ASCII, in texts of up to several 64-byte windows: runs that cross a
        // window's end, contractions and line breaks at its edges, long runs of one class. Then
        // letters outside ASCII that the windows take (lower, upper, title case), and ones they leave
        // to the character matcher (both case classes, a mark, a number, a space).
        let ascii = [
            " ", " ", "  ", "\n", "\r\n", "\t", "\x0b", "'", "s", "ll", "Ve", "rE", "d", "T", "a", "Zq", "x",
            "1", "123", "4567", ".", "(", "),", "!!", "-", "_", "\x00", "\x7f", "é", "’",
        ];
        let outside = ["É", "ß", "ſ", "ж", "Жи", "Ωμέγα", "ǅ", "ʰ", "中", "\u{301}", "٣", "\u{a0}", "×"];
        let common: Vec<&str> = ascii.into_iter().chain(outside).collect();
        let mut random = crate::testing::xorshift(0xa5c1_1b10c);
        for round in 0..6000 {
            let parts = random(if round % 10 == 0 { 200 } else { 60 }) + 1;
            let text: String = (0..parts)
                .map(|_| match random(4) {
                    0 => char::from(random(128) as u8).to_string(),
                    _ => common[random(common.len())].to_string(),
                })
                .collect();
            assert_matches_reference(&text);
        }
        for run in ["a", "1", " ", "\n", ".", " \n", "ж", "Ǆǅ", " жи", "жж×"] {
            for len in [62, 63, 64, 65, 127, 128, 129, 200] {
                for around in ["", "x", " ", "'s", "\n", "é"] {
                    assert_matches_reference(&format!("{around}{}{around}", run.repeat(len)));
                }
            }
        }
    }

    #[test]
    fn class_table_matches_the_class_ranges() {
        let table = ClassTable::get();
        let ranges: Vec<(u8, Vec<(u32, u32)>)> =
            CLASS_SYNTAX.iter().map(|&(bit, syntax)| (bit, class_ranges(syntax))).collect();
        let mut buf = [0u8; 4];
        for c in (0..=0x10_FFFF).filter_map(char::from_u32) {
            let mut expected = 0;
            for (bit, ranges) in &ranges {
                let after = ranges.partition_point(|&(start, _)| start <= c as u32);
                if after > 0 && ranges[after - 1].1 >= c as u32 {
                    expected |= bit;
                }
            }
            if expected & (LETTER | NUMBER | SPACE) == 0 {
                expected |= OTHER;
            }
            if c == '\r' || c == '\n' {
                expected |= NEWLINE;
            }
            assert_eq!(table.at(c.encode_utf8(&mut buf).as_bytes(), 0), (expected, c.len_utf8()), "{c:?}");
        }
        // Every character of a letter block is a letter of the block's kind, and the blocks take in
        // Cyrillic (cl100k: all of U+0400-U+047F; o200k: its capitals and small letters).
        for (blocks, cased) in table.letter_blocks.iter().zip([false, true]) {
            for block in blocks {
                for lead in block.leads.0..block.leads.0 + block.leads.1 {
                    for follow in block.follows.0..block.follows.0 + block.follows.1 {
                        let kind = table.window_letter(&[lead, follow], 0, cased);
                        assert_eq!(kind, Some((2, block.lower)), "{block:?} at {lead:#x} {follow:#x}");
                    }
                }
            }
        }
        let has = |cased: usize, leads: (u8, u8), follows: (u8, u8)| {
            table.letter_blocks[cased].iter().any(|b| b.leads == leads && b.follows == follows)
        };
        assert!(has(0, (0xD0, 2), (0x80, 64)), "{:?}", table.letter_blocks[0]);
        let cased = &table.letter_blocks[1];
        assert!(has(1, (0xD0, 1), (0x80, 48)), "{cased:?}");
        assert!(has(1, (0xD0, 1), (0xB0, 16)) && has(1, (0xD1, 1), (0x80, 32)), "{cased:?}");
    }

    #[test]
    fn ascii_letter_runs_match_the_class_table() {
        // Runs of every length at every offset, ended by each kind of byte, against one character at
        // a time through the table.
        let table = ClassTable::get();
        let enders = ["", " ", "@", "[", "`", "{", "1", "é", "Z", "z", "\u{7f}", "中"];
        for len in 0..20 {
            for ender in enders {
                for start in 0..3 {
                    let text = format!("{}{}{ender}xY", &"-.".repeat(2)[..start], &"aBzZmQ".repeat(4)[..len]);
                    let b = text.as_bytes();
                    for (mask, lowercase) in [(LETTER, false), (LOWER, true)] {
                        let mut expected = start;
                        while b.get(expected).is_some_and(u8::is_ascii) && table.at(b, expected).0 & mask != 0
                        {
                            expected += 1;
                        }
                        assert_eq!(ascii_letters_end(b, start, lowercase), expected, "{text:?} {mask}");
                    }
                }
            }
        }
    }

    #[test]
    fn case_insensitive_contraction_letters_are_the_regex_ones() {
        // Of the contraction letters only `s` has a case variant beyond ASCII (ſ); the regex agrees.
        for letter in "sdmtlvre".chars() {
            let folded: Vec<char> = class_ranges(&format!("(?i:{letter})"))
                .into_iter()
                .flat_map(|(s, e)| (s..=e).filter_map(char::from_u32))
                .collect();
            let mut expected = vec![letter.to_ascii_uppercase(), letter];
            if letter == 's' {
                expected.push('ſ');
            }
            assert_eq!(folded, expected, "(?i:{letter})");
        }
    }
}
