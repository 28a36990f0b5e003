//! Byte-pair encoding with tiktoken's ranks and merge order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Range;

use rustc_hash::FxHashMap;

pub type Rank = u32;

/// Byte sequences up to this long are looked up as one integer (no byte comparison).
pub const SHORT_KEY_MAX_LEN: usize = 15;

/// `bytes` (at most [`SHORT_KEY_MAX_LEN`]) and their length packed into one integer key.
#[inline]
pub fn short_key(bytes: &[u8]) -> u128 {
    debug_assert!(bytes.len() <= SHORT_KEY_MAX_LEN);
    let mut buf = [0u8; 16];
    buf[..bytes.len()].copy_from_slice(bytes);
    buf[15] = bytes.len() as u8;
    u128::from_le_bytes(buf)
}

/// [`short_key`] of `text[range]`, read with whole 16- or 8-byte loads from `text` (mostly longer
/// than the piece) instead of a copy of variable length.
#[inline(always)]
pub fn short_key_in(text: &[u8], range: Range<usize>) -> u128 {
    let (start, end) = (range.start, range.end);
    let n = end - start;
    debug_assert!(0 < n && n <= SHORT_KEY_MAX_LEN);
    if let Some(bytes) = text.get(start..start + 16) {
        // The low `n` bytes, by a mask from a table: a shift of u128 by a variable amount is slow.
        const LOW_BYTES: [u128; 16] = {
            let mut masks = [0u128; 16];
            let mut n = 1;
            while n < 16 {
                masks[n] = u128::MAX >> (8 * (16 - n));
                n += 1;
            }
            masks
        };
        let value = u128::from_le_bytes(bytes.try_into().expect("16 bytes"));
        return value & LOW_BYTES[n] | (n as u128) << 120;
    }
    let word = |at: usize| u64::from_le_bytes(text[at..at + 8].try_into().expect("8 bytes"));
    let value = if n >= 8 {
        // The first and the last 8 bytes; where they overlap, they hold the same bytes.
        word(start) as u128 | (word(end - 8) as u128) << (8 * (n - 8))
    } else if start + 8 <= text.len() {
        (word(start) & (u64::MAX >> (8 * (8 - n)))) as u128
    } else if end >= 8 {
        (word(end - 8) >> (8 * (8 - n))) as u128
    } else {
        return short_key(&text[range]);
    };
    value | (n as u128) << 120
}

/// Tokens up to this long (70% of cl100k's) are keyed by a `u64`: their map's entries take 16 bytes
/// rather than 32, so more of them stay in the cache during merges.
const TINY_KEY_MAX_LEN: usize = 7;

/// A [`short_key`] of at most [`TINY_KEY_MAX_LEN`] bytes as a `u64`: its bytes, then its length in
/// the top byte.
#[inline(always)]
fn tiny_key(key: u128) -> u64 {
    key as u64 | ((key >> 120) as u64) << 56
}

/// Vocabulary of a tiktoken encoding: byte sequence -> rank (which is also the token id). Short
/// tokens, nearly all of them, are keyed by [`short_key`], which makes the hot lookup cheap.
pub struct Ranks {
    tiny: FxHashMap<u64, Rank>,
    short: FxHashMap<u128, Rank>,
    long: FxHashMap<Vec<u8>, Rank>,
    decoder: Vec<Vec<u8>>,
    /// The rank of every two-byte sequence (`Rank::MAX` when it is no token), by `first << 8 | second`:
    /// the first lookups of every merge, in 256 KB rather than in the hash map's megabytes.
    byte_pairs: Box<[Rank]>,
    /// The rank of every character of three UTF-8 bytes (most of CJK) that is a token, by its code
    /// point (`Rank::MAX` when it is none): the merge that completes such a character, in 256 KB too.
    three_byte_chars: Box<[Rank]>,
    /// One bit per [`short_filter_bit`] of every token of up to [`SHORT_KEY_MAX_LEN`] bytes: a
    /// sequence whose bit is clear is no token, known without reading the maps. Most lookups of a
    /// merge fail (two characters that are no token together), and each would read a bucket of a
    /// map of megabytes; this is 256 KB and about 5% of its bits are set.
    short_filter: Box<[u64]>,
    /// One bit per pair of bytes, by `first << 8 | second`: set when the two bytes follow each other
    /// in some token ([`Ranks::splits_at`]).
    joined_pairs: Box<[u64]>,
    /// One bit per [`triple_bit`] of every three bytes that follow each other in some token (about
    /// 30,000 triples for cl100k, 50,000 for o200k, in 1M bits).
    joined_triples: Box<[u64]>,
}

const TRIPLE_BITS: u32 = 20;

/// The bit of three bytes in [`Ranks::joined_triples`].
#[inline(always)]
fn triple_bit(bytes: &[u8]) -> usize {
    let value = u64::from(bytes[0]) << 16 | u64::from(bytes[1]) << 8 | u64::from(bytes[2]);
    (value.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - TRIPLE_BITS)) as usize
}

fn set_bit(bits: &mut [u64], bit: usize) {
    bits[bit / 64] |= 1 << (bit % 64);
}

fn has_bit(bits: &[u64], bit: usize) -> bool {
    bits[bit / 64] & (1 << (bit % 64)) != 0
}

const SHORT_FILTER_BITS: u32 = 21;

/// The bit of a [`short_key`] in [`Ranks::short_filter`].
#[inline(always)]
fn short_filter_bit(key: u128) -> usize {
    let mixed = ((key as u64) ^ ((key >> 64) as u64).rotate_left(23)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    (mixed >> (64 - SHORT_FILTER_BITS)) as usize
}

/// The code point of the character of three UTF-8 bytes at the start of `bytes`, if one starts there.
#[inline(always)]
fn three_byte_char(bytes: &[u8]) -> Option<usize> {
    match *bytes {
        [lead @ 0xE0..=0xEF, second, third, ..] if second & 0xC0 == 0x80 && third & 0xC0 == 0x80 => {
            Some(usize::from(lead & 0x0F) << 12 | usize::from(second & 0x3F) << 6 | usize::from(third & 0x3F))
        }
        _ => None,
    }
}

impl Ranks {
    /// Parses a `.tiktoken` file: one `base64(token) rank` pair per line.
    pub fn parse(data: &[u8]) -> Result<Ranks, String> {
        use base64::Engine;
        let mut encoder = FxHashMap::default();
        for (i, line) in data.split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let bad = || format!("vocabulary line {}: expected `base64 rank`", i + 1);
            let mut parts = line.split(|&b| b == b' ');
            let (Some(token), Some(rank), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(bad());
            };
            let token = base64::engine::general_purpose::STANDARD.decode(token).map_err(|_| bad())?;
            let rank: Rank = std::str::from_utf8(rank).ok().and_then(|r| r.parse().ok()).ok_or_else(bad)?;
            encoder.insert(token, rank);
        }
        Ok(Ranks::from_tokens(encoder))
    }

    /// A vocabulary of (token bytes, id) pairs, each token and each id once.
    pub fn from_tokens(encoder: impl IntoIterator<Item = (Vec<u8>, Rank)>) -> Ranks {
        let encoder: Vec<(Vec<u8>, Rank)> = encoder.into_iter().collect();
        let size = encoder.iter().map(|&(_, rank)| rank).max().map_or(0, |m| m as usize + 1);
        let mut decoder = vec![Vec::new(); size];
        let (mut tiny, mut short, mut long) =
            (FxHashMap::default(), FxHashMap::default(), FxHashMap::default());
        let mut byte_pairs: Box<[Rank]> = vec![Rank::MAX; 1 << 16].into();
        let mut three_byte_chars: Box<[Rank]> = vec![Rank::MAX; 1 << 16].into();
        let mut short_filter: Box<[u64]> = vec![0; 1 << (SHORT_FILTER_BITS - 6)].into();
        let mut joined_pairs: Box<[u64]> = vec![0; (1 << 16) / 64].into();
        let mut joined_triples: Box<[u64]> = vec![0; (1 << TRIPLE_BITS) / 64].into();
        for (token, rank) in encoder {
            decoder[rank as usize] = token.clone();
            if let &[first, second] = token.as_slice() {
                byte_pairs[usize::from(first) << 8 | usize::from(second)] = rank;
            }
            if let Some(code_point) = three_byte_char(&token).filter(|_| token.len() == 3) {
                three_byte_chars[code_point] = rank;
            }
            for pair in token.windows(2) {
                set_bit(&mut joined_pairs, usize::from(pair[0]) << 8 | usize::from(pair[1]));
            }
            for triple in token.windows(3) {
                set_bit(&mut joined_triples, triple_bit(triple));
            }
            if token.len() <= SHORT_KEY_MAX_LEN {
                set_bit(&mut short_filter, short_filter_bit(short_key(&token)));
            }
            if token.len() <= TINY_KEY_MAX_LEN {
                tiny.insert(tiny_key(short_key(&token)), rank);
            } else if token.len() <= SHORT_KEY_MAX_LEN {
                short.insert(short_key(&token), rank);
            } else {
                long.insert(token, rank);
            }
        }
        Ranks {
            tiny,
            short,
            long,
            decoder,
            byte_pairs,
            three_byte_chars,
            short_filter,
            joined_pairs,
            joined_triples,
        }
    }

    #[inline]
    pub fn get(&self, bytes: &[u8]) -> Option<Rank> {
        if bytes.len() <= SHORT_KEY_MAX_LEN {
            self.get_short(short_key(bytes))
        } else {
            self.long.get(bytes).copied()
        }
    }

    /// The rank of `bytes[range]`, read in place (no copy of a short key); two bytes and
    /// three-byte characters from their tables.
    #[inline]
    fn get_in(&self, bytes: &[u8], range: Range<usize>) -> Option<Rank> {
        let found = |rank: Rank| (rank != Rank::MAX).then_some(rank);
        if range.len() == 2 {
            return found(
                self.byte_pairs[usize::from(bytes[range.start]) << 8 | usize::from(bytes[range.start + 1])],
            );
        }
        if range.len() == 3 {
            if let Some(code_point) = three_byte_char(&bytes[range.clone()]) {
                return found(self.three_byte_chars[code_point]);
            }
        }
        if range.len() <= SHORT_KEY_MAX_LEN {
            self.get_short(short_key_in(bytes, range))
        } else {
            self.long.get(&bytes[range]).copied()
        }
    }

    /// The rank of the bytes of a [`short_key`].
    #[inline]
    fn get_short(&self, key: u128) -> Option<Rank> {
        if !has_bit(&self.short_filter, short_filter_bit(key)) {
            return None;
        }
        if (key >> 120) as usize <= TINY_KEY_MAX_LEN {
            self.tiny.get(&tiny_key(key)).copied()
        } else {
            self.short.get(&key).copied()
        }
    }

    /// Whether no token can hold bytes `at - 1` and `at` of `piece` (`0 < at < piece.len()`). Then
    /// the piece merges as its two sides would on their own: every part of a merge is a byte or a
    /// token, so none spans the place, and the merges on each side meet no part of the other.
    ///
    /// A token that spans it is the two bytes themselves, or holds the three bytes that end at
    /// `at`, or the three that start at `at - 1`; the tables tell where no token holds them (the
    /// triples' bits are hashed, so a set bit may be another triple's: that only keeps a piece
    /// whole).
    #[inline]
    pub fn splits_at(&self, piece: &[u8], at: usize) -> bool {
        let pair = usize::from(piece[at - 1]) << 8 | usize::from(piece[at]);
        if !has_bit(&self.joined_pairs, pair) {
            return true;
        }
        let in_a_token =
            |triple: Option<&[u8]>| triple.is_some_and(|t| has_bit(&self.joined_triples, triple_bit(t)));
        self.byte_pairs[pair] == Rank::MAX
            && !in_a_token(at.checked_sub(2).map(|start| &piece[start..=at]))
            && !in_a_token(piece.get(at - 1..at + 2))
    }

    pub fn token_bytes(&self, rank: Rank) -> Option<&[u8]> {
        self.decoder.get(rank as usize).map(Vec::as_slice).filter(|b| !b.is_empty())
    }

    pub fn len(&self) -> usize {
        self.tiny.len() + self.short.len() + self.long.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All (token bytes, rank) pairs, for handing the vocabulary to reference implementations.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Rank)> {
        self.decoder
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.is_empty())
            .map(|(rank, t)| (t.as_slice(), rank as Rank))
    }
}

/// Pieces longer than this use the heap-based merge, which is O(n log n) instead of O(n^2).
const HEAP_MERGE_MIN_LEN: usize = 128;

/// Splits `piece` into token boundaries: returns the start offset of every token plus `piece.len()`.
///
/// Merges always apply to the adjacent pair with the lowest rank, the leftmost one on ties, which is
/// exactly tiktoken's `byte_pair_merge` order.
pub fn merge_boundaries(ranks: &Ranks, piece: &[u8]) -> Vec<usize> {
    if piece.len() >= HEAP_MERGE_MIN_LEN {
        merge_with_heap(ranks, piece)
    } else {
        let mut starts = [0; HEAP_MERGE_MIN_LEN];
        let parts = merge_by_scan(ranks, piece, &mut starts);
        starts[..=parts].iter().map(|&start| usize::from(start)).collect()
    }
}

/// The number of tokens of `piece`: [`merge_boundaries`] without the list.
pub fn merged_count(ranks: &Ranks, piece: &[u8]) -> usize {
    if piece.len() >= HEAP_MERGE_MIN_LEN {
        merge_with_heap(ranks, piece).len() - 1
    } else {
        merge_by_scan(ranks, piece, &mut [0; HEAP_MERGE_MIN_LEN])
    }
}

/// tiktoken's quadratic scan, fastest for short pieces (under [`HEAP_MERGE_MIN_LEN`] bytes), on
/// arrays on the stack: `starts[..=parts]` gets the parts' start offsets and the piece's end, and
/// the number of parts is returned.
fn merge_by_scan(ranks: &Ranks, piece: &[u8], starts: &mut [u8; HEAP_MERGE_MIN_LEN]) -> usize {
    let n = piece.len();
    debug_assert!(0 < n && n < HEAP_MERGE_MIN_LEN);
    // pair[i]: the rank of parts i and i + 1 merged (`Rank::MAX`: they are no token).
    let mut pair = [Rank::MAX; HEAP_MERGE_MIN_LEN];
    for (i, start) in starts[..=n].iter_mut().enumerate() {
        *start = i as u8;
    }
    for (rank, bytes) in pair.iter_mut().zip(piece.windows(2)) {
        *rank = ranks.byte_pairs[usize::from(bytes[0]) << 8 | usize::from(bytes[1])];
    }
    let mut parts = n;
    while parts > 1 {
        let (mut lowest, mut at) = (Rank::MAX, 0);
        for (i, &rank) in pair[..parts - 1].iter().enumerate() {
            if rank < lowest {
                (lowest, at) = (rank, i);
            }
        }
        if lowest == Rank::MAX {
            break;
        }
        // Parts `at` and `at + 1` become one: the start of `at + 1` and its pair go.
        starts.copy_within(at + 2..=parts, at + 1);
        pair.copy_within(at + 2..parts, at + 1);
        parts -= 1;
        let merged = |i: usize| -> Rank {
            if i + 1 == parts {
                return Rank::MAX;
            }
            let span = usize::from(starts[i])..usize::from(starts[i + 2]);
            ranks.get_in(piece, span).unwrap_or(Rank::MAX)
        };
        pair[at] = merged(at);
        if at > 0 {
            pair[at - 1] = merged(at - 1);
        }
    }
    parts
}

/// The same merge order with a priority queue and a linked list, for long pieces
/// (100,000-character words, long whitespace runs).
fn merge_with_heap(ranks: &Ranks, piece: &[u8]) -> Vec<usize> {
    let n = piece.len();
    // Part i covers piece[start[i]..start[next[i]]]; removed parts have start = usize::MAX.
    let mut start: Vec<usize> = (0..=n).collect();
    let mut next: Vec<usize> = (1..=n + 1).collect();
    let mut prev: Vec<usize> = (0..=n).map(|i| i.wrapping_sub(1)).collect();
    let pair_rank = |start: &[usize], next: &[usize], i: usize| -> Option<Rank> {
        let j = next[i];
        if j >= n {
            return None;
        }
        ranks.get(&piece[start[i]..start[next[j]]])
    };
    let mut heap = BinaryHeap::with_capacity(n);
    for i in 0..n - 1 {
        if let Some(r) = ranks.get(&piece[i..i + 2]) {
            heap.push(Reverse((r, i, i + 2)));
        }
    }
    while let Some(Reverse((rank, i, end))) = heap.pop() {
        // Skip stale entries: the part was merged away or its pair changed since it was pushed.
        if start[i] == usize::MAX || next[i] >= n || start[next[next[i]]] != end {
            continue;
        }
        let j = next[i];
        debug_assert_eq!(ranks.get(&piece[start[i]..end]), Some(rank));
        next[i] = next[j];
        prev[next[j]] = i;
        start[j] = usize::MAX;
        if let Some(r) = pair_rank(&start, &next, i) {
            heap.push(Reverse((r, i, start[next[next[i]]])));
        }
        let p = prev[i];
        if p != usize::MAX {
            if let Some(r) = pair_rank(&start, &next, p) {
                heap.push(Reverse((r, p, start[next[next[p]]])));
            }
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i <= n {
        out.push(start[i]);
        if i == n {
            break;
        }
        i = next[i];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy_ranks() -> Ranks {
        use base64::Engine;
        let enc = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        let mut lines = String::new();
        let mut rank = 0;
        for b in 0u8..=255 {
            lines += &format!("{} {}\n", enc(&[b]), rank);
            rank += 1;
        }
        for tok in ["ab", "bc", "abc", "aa", "aaaa", "  ", "    ", "cd", "abcd"] {
            lines += &format!("{} {}\n", enc(tok.as_bytes()), rank);
            rank += 1;
        }
        Ranks::parse(lines.as_bytes()).unwrap()
    }

    #[test]
    fn heap_and_scan_agree() {
        let ranks = toy_ranks();
        let mut state = 12345u64;
        // Every length the scan takes, many pieces each.
        for len in (1..HEAP_MERGE_MIN_LEN).flat_map(|len| [len; 20]) {
            let piece: Vec<u8> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    b"abcd "[(state >> 33) as usize % 5]
                })
                .collect();
            let mut starts = [0; HEAP_MERGE_MIN_LEN];
            let parts = merge_by_scan(&ranks, &piece, &mut starts);
            let by_scan: Vec<usize> = starts[..=parts].iter().map(|&s| usize::from(s)).collect();
            assert_eq!(by_scan, merge_with_heap(&ranks, &piece), "{piece:?}");
            assert_eq!(merged_count(&ranks, &piece), parts);
        }
    }

    #[test]
    fn heap_and_scan_agree_on_real_vocabularies() {
        // Pieces of random tokens and bytes of each vocabulary, of every length the scan takes: the
        // scan (on the byte-pair table) and the heap (on the hash maps) are written independently.
        let mut random = crate::testing::xorshift(0xb9e);
        for name in ["cl100k_base", "o200k_base"] {
            let encoding = crate::tokenizer::Encoding::load(name).unwrap();
            let ranks = &encoding.tiktoken().unwrap().ranks;
            let tokens: Vec<&[u8]> = ranks.iter().map(|(bytes, _)| bytes).collect();
            for len in (1..HEAP_MERGE_MIN_LEN).flat_map(|len| [len; 30]) {
                let mut piece = Vec::new();
                while piece.len() < len {
                    match random(4) {
                        0 => piece.push(random(256) as u8),
                        _ => piece.extend_from_slice(tokens[random(tokens.len())]),
                    }
                }
                piece.truncate(len);
                let heap = merge_with_heap(ranks, &piece);
                assert_eq!(merge_boundaries(ranks, &piece), heap, "{name}: {piece:?}");
                assert_eq!(merged_count(ranks, &piece), heap.len() - 1);
            }
        }
    }

    #[test]
    fn every_token_is_found_and_few_other_sequences_pass_the_filter() {
        let mut random = crate::testing::xorshift(0xf11);
        for name in ["cl100k_base", "o200k_base"] {
            let encoding = crate::tokenizer::Encoding::load(name).unwrap();
            let ranks = &encoding.tiktoken().unwrap().ranks;
            for (bytes, rank) in ranks.iter() {
                assert_eq!(ranks.get(bytes), Some(rank), "{name}: {bytes:?}");
                assert_eq!(ranks.get_in(bytes, 0..bytes.len()), Some(rank), "{name}: {bytes:?}");
            }
            // Random sequences of 4 to 15 bytes are nearly never tokens: the filter stops most.
            let (mut passed, tries) = (0, 10_000);
            for _ in 0..tries {
                let bytes: Vec<u8> = (0..4 + random(12)).map(|_| random(256) as u8).collect();
                assert_eq!(ranks.get(&bytes), None);
                let bit = short_filter_bit(short_key(&bytes));
                passed += usize::from(ranks.short_filter[bit / 64] & (1 << (bit % 64)) != 0);
            }
            assert!(passed < tries / 8, "{name}: {passed} of {tries} passed the filter");
        }
    }

    #[test]
    fn short_keys_read_in_place_equal_copied_ones() {
        let text: Vec<u8> = (0..40u8).map(|b| b.wrapping_mul(97) | 1).collect();
        for len in 1..=text.len() {
            for start in 0..len {
                for end in start + 1..=len.min(start + SHORT_KEY_MAX_LEN) {
                    let text = &text[..len];
                    assert_eq!(
                        short_key_in(text, start..end),
                        short_key(&text[start..end]),
                        "{len} {start}..{end}"
                    );
                }
            }
        }
    }

    #[test]
    fn merges_lowest_rank_first() {
        let ranks = toy_ranks();
        // "ab" (rank 256) merges before "bc" (257), then "abc" (258) before "cd", then "abcd".
        assert_eq!(merge_boundaries(&ranks, b"abcd"), vec![0, 4]);
        assert_eq!(merge_boundaries(&ranks, b"aaaaa"), vec![0, 4, 5]);
    }
}
