//! cl100k's and o200k's pre-tokens on ASCII text, up to 64 bytes at a time.
//!
//! The one-piece-at-a-time matchers in [`super::pretokenize`] cannot look at a piece before the
//! previous one has ended, and that chain of loads and branches is most of their time. Here the
//! pattern's alternatives are rewritten as bit operations on class masks of a window of bytes (bit
//! `j` is byte `j`), so that every piece start of the window comes out at once; only the starts
//! that what follows the window cannot move are used, and the next window begins at the last of
//! them. What the masks do not decide (text outside ASCII, a window that is one run) goes to the
//! character matcher, piece by piece. The differential tests of `pretokenize` cover both paths.
//!
//! The rules, for a text that starts at a piece start (the patterns have no look-behind, so the
//! pieces from any piece start on are those of the text that starts there):
//! - a word is one piece, which also takes the character before it when that is whitespace other
//!   than a line break, or the only character of a punctuation run not preceded by a space
//!   (`[^\r\n\p{L}\p{N}]?`). In cl100k a word is a letter run (`\p{L}++`), and an apostrophe that
//!   starts a contraction (`'s`, `'ll`, ...) is a piece of its own instead of a prefix. In o200k a
//!   letter run splits before each capital that follows a small letter (`[A-Z]*[a-z]+|[A-Z]+[a-z]*`
//!   in ASCII), and a contraction right after a word belongs to it;
//! - digits come in threes from the start of their run (`\p{N}{1,3}`);
//! - a punctuation run is a piece, with a space before it and the line breaks after it (and, in
//!   o200k, the slashes among and after those: `[\r\n/]*`);
//! - a whitespace run ends a piece after its last line break (`\s*[\r\n]`), and its last
//!   character, unless a line break, starts a piece (`\s+(?!\S)` and `\s`), which takes the next
//!   word or punctuation when it can (above). In cl100k a whitespace run that ends the text is one
//!   piece (`\s++$`); in o200k only its part after the last line break is.

use std::ops::Range;

use super::pretokenize::{contraction_end, PatternKind};

/// Bytes per window.
const WINDOW: usize = 64;
/// Bytes outside ASCII from which a window looks for [`LetterBlock`]s: half of it, as in Cyrillic or
/// Greek text; from 16, o200k counted German-like text (an accented word here and there) 9% slower.
const LETTER_BLOCKS_MIN_BYTES: u32 = 32;

/// Two-byte characters that a window finds 16 bytes at a time, all letters of one kind: lead bytes
/// `leads.0` to `leads.0 + leads.1 - 1`, each followed by a byte from `follows.0` to
/// `follows.0 + follows.1 - 1`; lower-case (`[a-z]` to the masks) or not (`[A-Z]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct LetterBlock {
    pub leads: (u8, u8),
    pub follows: (u8, u8),
    pub lower: bool,
}

/// Every second byte of a two-byte character.
pub(super) const ANY_FOLLOW: (u8, u8) = (0x80, 64);

/// The bits of positions `0..n` (all 64 for `n` of 64 or more).
#[inline(always)]
fn below(n: usize) -> u64 {
    1u64.checked_shl(n as u32).map_or(u64::MAX, |bit| bit - 1)
}

/// Class masks of a window; bit `j` is byte `j`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Masks {
    letter: u64,
    /// `[a-z]`
    lower: u64,
    digit: u64,
    /// `\s` in ASCII: tab to carriage return, and space.
    space: u64,
    newline: u64,
    /// ` ` itself.
    blank: u64,
    apostrophe: u64,
    slash: u64,
    /// Bytes outside ASCII.
    non_ascii: u64,
}

impl Masks {
    /// Marks the bytes of `bits` as letters, lower-case ones (`[a-z]`) with `lower`.
    #[inline(always)]
    fn mark_letters(&mut self, bits: u64, lower: bool) {
        self.letter |= bits;
        if lower {
            self.lower |= bits;
        }
    }
}

/// The class masks of 64 bytes, 16 at a time with SSE2 (which every x86-64 processor has).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn classify(bytes: &[u8; WINDOW]) -> Masks {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of x86-64, and each load reads 16 of the 64 bytes of `bytes`.
    unsafe {
        let splat = |b: u8| _mm_set1_epi8(b as i8);
        let mut m = Masks::default();
        for k in 0..WINDOW / 16 {
            let v = _mm_loadu_si128(bytes.as_ptr().add(16 * k).cast());
            let bits = |x: __m128i| (_mm_movemask_epi8(x) as u32 as u64) << (16 * k);
            let blank = _mm_cmpeq_epi8(v, splat(b' '));
            m.letter |= bits(in_range(_mm_or_si128(v, splat(0x20)), b'a', 26));
            m.lower |= bits(in_range(v, b'a', 26));
            m.digit |= bits(in_range(v, b'0', 10));
            m.space |= bits(_mm_or_si128(blank, in_range(v, b'\t', 5)));
            m.newline |= bits(_mm_or_si128(_mm_cmpeq_epi8(v, splat(b'\n')), _mm_cmpeq_epi8(v, splat(b'\r'))));
            m.blank |= bits(blank);
            m.apostrophe |= bits(_mm_cmpeq_epi8(v, splat(b'\'')));
            m.slash |= bits(_mm_cmpeq_epi8(v, splat(b'/')));
            m.non_ascii |= bits(v);
        }
        m
    }
}

/// Per byte of `v`, all ones when `low <= byte < low + width` (unsigned), as a signed comparison of
/// both sides shifted by 128.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn in_range(v: std::arch::x86_64::__m128i, low: u8, width: u8) -> std::arch::x86_64::__m128i {
    use std::arch::x86_64::*;
    let shifted = _mm_xor_si128(_mm_sub_epi8(v, _mm_set1_epi8(low as i8)), _mm_set1_epi8(0x80u8 as i8));
    _mm_cmplt_epi8(shifted, _mm_set1_epi8((width ^ 0x80) as i8))
}

/// The bits of the bytes of a window from `low` to `low + width - 1`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn bytes_in(bytes: &[u8; WINDOW], (low, width): (u8, u8)) -> u64 {
    use std::arch::x86_64::*;
    let mut mask = 0;
    for (k, part) in bytes.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of x86-64, and the load reads the 16 bytes of `part`.
        let found = unsafe { _mm_movemask_epi8(in_range(_mm_loadu_si128(part.as_ptr().cast()), low, width)) };
        mask |= u64::from(found as u16) << (16 * k);
    }
    mask
}

#[cfg(not(target_arch = "x86_64"))]
fn bytes_in(bytes: &[u8; WINDOW], (low, width): (u8, u8)) -> u64 {
    bytes.iter().enumerate().fold(0, |mask, (j, &c)| mask | u64::from(c.wrapping_sub(low) < width) << j)
}

/// The class masks of 64 bytes, one byte at a time.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn classify_bytewise(bytes: &[u8; WINDOW]) -> Masks {
    let mut m = Masks::default();
    for (j, &c) in bytes.iter().enumerate() {
        let bit = 1u64 << j;
        let set = |mask: &mut u64, yes: bool| *mask |= if yes { bit } else { 0 };
        set(&mut m.letter, c.is_ascii_alphabetic());
        set(&mut m.lower, c.is_ascii_lowercase());
        set(&mut m.digit, c.is_ascii_digit());
        set(&mut m.space, matches!(c, b'\t'..=b'\r' | b' '));
        set(&mut m.newline, matches!(c, b'\n' | b'\r'));
        set(&mut m.blank, c == b' ');
        set(&mut m.apostrophe, c == b'\'');
        set(&mut m.slash, c == b'/');
        set(&mut m.non_ascii, !c.is_ascii());
    }
    m
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn classify(bytes: &[u8; WINDOW]) -> Masks {
    classify_bytewise(bytes)
}

/// The piece starts among the first `len` bytes of a window that begins at a piece start, as bits,
/// for cl100k or (`o200k`) o200k; `text_end` says whether the text ends after them. `text` is the
/// text from the window's start: the rare contractions are read from it.
#[inline(always)]
fn piece_starts(m: &Masks, len: usize, text_end: bool, text: &[u8], o200k: bool) -> u64 {
    let valid = below(len);
    let (letter, digit, space, newline, blank) =
        (m.letter & valid, m.digit & valid, m.space & valid, m.newline & valid, m.blank & valid);
    let other = valid & !(letter | digit | space);
    // Bit j of `before(x)` is bit j - 1 of x (nothing before the window); of `after(x)`, bit j + 1.
    let before = |x: u64| x << 1;
    let after = |x: u64| x >> 1;
    let mut starts = 1;

    // What a punctuation piece takes after its run: line breaks (cl100k), or line breaks and the
    // slashes among and after them (o200k); a carry-propagating add fills each such run from the
    // line break that follows the punctuation.
    let trailing = if o200k { newline | (m.slash & valid) } else { newline };
    let seeds = newline & before(other);
    let filled = (trailing.wrapping_add(seeds) ^ trailing) & trailing;
    // A second seed in one run (o200k: `.\n/\n`) stops the carry at its own bit only.
    let taken = filled | (seeds & before(filled));
    // Punctuation runs start a piece, taking a space before them; in o200k a run may also start
    // right after the slashes that the piece before took.
    let free_other = other & !taken;
    let other_starts = free_other & !before(free_other);
    starts |= (other_starts & !before(blank)) | (blank & after(other_starts));

    // Contractions: in cl100k an apostrophe alone before letters, not after a space, starts one;
    // in o200k one right after a letter belongs to the word before it.
    let (mut contractions, mut contraction_letters) = (0u64, 0u64);
    let mut candidates = if o200k {
        other_starts & m.apostrophe & before(letter)
    } else {
        other_starts & m.apostrophe & after(letter) & !before(blank)
    };
    while candidates != 0 {
        let j = candidates.trailing_zeros() as usize;
        candidates &= candidates - 1;
        // In o200k a word takes one contraction: not another right after it.
        if o200k && before(contraction_letters) & (1 << j) != 0 {
            continue;
        }
        if let Some(end) = contraction_end(text, j + 1, true) {
            contractions |= 1 << j;
            contraction_letters |= below(end) & !below(j + 1);
            // The letters after a contraction start a piece of their own.
            starts |= 1u64.checked_shl(end as u32).unwrap_or(0);
        }
    }

    // Words start at their first letter or at the character before it that they take; in o200k
    // also at a capital after a small letter.
    let prefixes = ((space & !newline) | (other_starts & !before(blank))) & after(letter) & !contractions;
    let letter_starts = letter & !before(letter);
    starts |= prefixes | (letter_starts & !before(prefixes | contractions));
    if o200k {
        starts |= letter & !m.lower & before(m.lower & valid);
        starts &= !(contractions | contraction_letters);
    }

    // Digits in threes.
    let mut group = digit & !before(digit);
    let three_digits = digit & before(digit) & before(before(digit));
    while group != 0 {
        starts |= group;
        group = (group << 3) & three_digits;
    }

    // Whitespace, but for the line breaks that a punctuation piece took.
    let rest = space & !taken;
    starts |= rest & !before(rest);
    // A run's last character starts a piece unless it is a line break or ends the text.
    let mut last = space & !newline & !after(space);
    if text_end {
        last &= !(1u64 << (len - 1));
    }
    starts |= last;
    // After a run's last line break a piece starts when the run goes on after it (with no line
    // break); in cl100k not when it goes on to the text's end.
    let no_break = space & !newline;
    let mut tails = no_break & before(newline);
    while tails != 0 {
        let j = tails.trailing_zeros() as usize;
        tails &= tails - 1;
        let end = (j + (!no_break >> j).trailing_zeros() as usize).min(len);
        if end < len && newline & (1 << end) == 0 || end == len && text_end && o200k {
            starts |= 1 << j;
        }
    }
    starts & valid
}

/// Where the run of same-class bytes (letters, digits, whitespace, the rest) that holds the
/// window's last byte starts: what follows the window can move the piece starts from there on,
/// never those before.
#[inline(always)]
fn last_run_start(m: &Masks, len: usize) -> usize {
    let last = 1u64 << (len - 1);
    let class = [m.letter, m.digit, m.space]
        .into_iter()
        .find(|c| c & last != 0)
        .unwrap_or(!(m.letter | m.digit | m.space));
    let others_before = !class & (last - 1);
    if others_before == 0 {
        0
    } else {
        64 - others_before.leading_zeros() as usize
    }
}

/// Calls `f` with the range of each pre-token of `text` for `kind` (cl100k or o200k), in order;
/// `piece_end(bytes, start)` is the character matcher, for what the masks leave.
/// `letter(bytes, at)` gives the length of the character at `at` outside ASCII, and whether it is
/// lower-case, when the masks may take it as they take an ASCII letter (`[a-z]` if lower-case, else
/// `[A-Z]`): its bytes are then marked as letters, and words with accents, or in Cyrillic or Greek,
/// stay on the masks. Where most of a window is outside ASCII, the characters of `letter_blocks`
/// (letters that `letter` takes, of the kind it gives) are marked all at once first.
#[inline(always)]
pub(super) fn split(
    kind: PatternKind,
    text: &str,
    mut f: impl FnMut(Range<usize>),
    piece_end: impl Fn(&[u8], usize) -> usize,
    letter: impl Fn(&[u8], usize) -> Option<(usize, bool)>,
    letter_blocks: &[LetterBlock],
) {
    let b = text.as_bytes();
    let mut pos = 0;
    let mut padded = [0u8; WINDOW];
    while pos < b.len() {
        let (window, mut len, mut text_end) = match b.get(pos..pos + WINDOW) {
            Some(bytes) => (bytes.try_into().expect("64 bytes"), WINDOW, pos + WINDOW == b.len()),
            None => {
                let len = b.len() - pos;
                padded[..len].copy_from_slice(&b[pos..]);
                padded[len..].fill(0);
                (&padded, len, true)
            }
        };
        let mut masks = classify(window);
        // The bytes outside ASCII that are not letters the masks can take; the window stops at the
        // first of them.
        let mut non_ascii = masks.non_ascii & below(len);
        if non_ascii.count_ones() >= LETTER_BLOCKS_MIN_BYTES {
            for block in letter_blocks {
                let follows = match block.follows {
                    ANY_FOLLOW => u64::MAX,
                    some => bytes_in(window, some),
                };
                // Not a lead byte at the window's end: `letter` below sees whether its character ends.
                let chars = bytes_in(window, block.leads) & follows >> 1;
                let whole = (chars | chars << 1) & non_ascii;
                masks.mark_letters(whole, block.lower);
                non_ascii &= !whole;
            }
        }
        while non_ascii != 0 {
            let at = non_ascii.trailing_zeros() as usize;
            let Some((n, lower)) = letter(b, pos + at).filter(|&(n, _)| at + n <= len) else {
                len = at;
                text_end = false;
                break;
            };
            let bits = below(at + n) & !below(at);
            masks.mark_letters(bits, lower);
            non_ascii &= !bits;
        }
        let mut done = 0;
        if len > 0 {
            let starts = piece_starts(&masks, len, text_end, &b[pos..], kind == PatternKind::O200k);
            let cutoff = if text_end { len } else { last_run_start(&masks, len) };
            // Piece ends up to the cutoff: starts at bits 1..=cutoff.
            let mut ends = starts & !1 & below(cutoff + 1);
            while ends != 0 {
                let end = ends.trailing_zeros() as usize;
                ends &= ends - 1;
                f(pos + done..pos + end);
                done = end;
            }
            if text_end && done < len {
                f(pos + done..pos + len);
                done = len;
            }
        }
        if done > 0 {
            pos += done;
            continue;
        }
        // The character matcher takes over for one piece, or up to the window's last byte
        // outside ASCII.
        let until = pos + (64 - non_ascii.leading_zeros() as usize).max(1);
        while pos < until.min(b.len()) {
            let end = piece_end(b, pos);
            f(pos..end);
            pos = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse2_classes_are_the_bytewise_ones() {
        let mut random = crate::testing::xorshift(0x5eed);
        for round in 0..2000 {
            let mut bytes = [0u8; WINDOW];
            for b in &mut bytes {
                // Every byte value, with the classes' edges more often.
                let edges = b"\t\n\x0b\x0c\r\x08\x0e\x1f @AZ[`az{09/:'\x7f\x80\xff";
                *b = if round % 2 == 0 { random(256) as u8 } else { edges[random(edges.len())] };
            }
            assert_eq!(classify(&bytes), classify_bytewise(&bytes), "{bytes:?}");
        }
    }
}
