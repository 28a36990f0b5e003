//! cl100k's pre-tokens on ASCII text, up to 64 bytes at a time.
//!
//! The one-piece-at-a-time matchers in [`super::pretokenize`] cannot look at a piece before the
//! previous one has ended, and that chain of loads and branches is most of their time. Here the
//! pattern's alternatives are rewritten as bit operations on class masks of a window of bytes (bit
//! `j` is byte `j`), so that every piece start of the window comes out at once; only the starts
//! that what follows the window cannot move are used, and the next window begins at the last of
//! them. What the masks do not decide (text outside ASCII, a window that is one run) goes to the
//! character matcher, piece by piece. The differential tests of `pretokenize` cover both paths.
//!
//! The rules, for a text that starts at a piece start (the pattern has no look-behind, so the
//! pieces from any piece start on are those of the text that starts there):
//! - a letter run is one piece, which also takes the character before it when that is whitespace
//!   other than a line break, or the only character of a punctuation run not preceded by a space
//!   (`[^\r\n\p{L}\p{N}]?+\p{L}++`), unless that character is an apostrophe that starts a
//!   contraction (`'s`, `'ll`, ...), which is a piece of its own;
//! - digits come in threes from the start of their run (`\p{N}{1,3}+`);
//! - a punctuation run is a piece, with a space before it and the line breaks after it
//!   (` ?[^\s\p{L}\p{N}]++[\r\n]*+`);
//! - a whitespace run that ends the text is one piece (`\s++$`); otherwise it ends a piece after
//!   its last line break (`\s*[\r\n]`), and its last character, unless a line break, starts a piece
//!   (`\s+(?!\S)` and `\s`), which takes the next word or punctuation when it can (above).

use std::ops::Range;

use super::pretokenize::contraction_end;

/// Bytes per window.
const WINDOW: usize = 64;

/// Class masks of a window; bit `j` is byte `j`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Masks {
    letter: u64,
    digit: u64,
    /// `\s` in ASCII: tab to carriage return, and space.
    space: u64,
    newline: u64,
    /// ` ` itself.
    blank: u64,
    apostrophe: u64,
    /// Bytes outside ASCII.
    non_ascii: u64,
}

/// The class masks of 64 bytes, 16 at a time with SSE2 (which every x86-64 processor has).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn classify(bytes: &[u8; WINDOW]) -> Masks {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of x86-64, and each load reads 16 of the 64 bytes of `bytes`.
    unsafe {
        let splat = |b: u8| _mm_set1_epi8(b as i8);
        // `x - low < width` for unsigned bytes, as a signed comparison of both sides shifted by 128.
        let in_range = |v: __m128i, low: u8, width: u8| {
            let shifted = _mm_xor_si128(_mm_sub_epi8(v, splat(low)), splat(0x80));
            _mm_cmplt_epi8(shifted, splat(width ^ 0x80))
        };
        let mut m =
            Masks { letter: 0, digit: 0, space: 0, newline: 0, blank: 0, apostrophe: 0, non_ascii: 0 };
        for k in 0..WINDOW / 16 {
            let v = _mm_loadu_si128(bytes.as_ptr().add(16 * k).cast());
            let bits = |x: __m128i| (_mm_movemask_epi8(x) as u32 as u64) << (16 * k);
            let blank = _mm_cmpeq_epi8(v, splat(b' '));
            m.letter |= bits(in_range(_mm_or_si128(v, splat(0x20)), b'a', 26));
            m.digit |= bits(in_range(v, b'0', 10));
            m.space |= bits(_mm_or_si128(blank, in_range(v, b'\t', 5)));
            m.newline |= bits(_mm_or_si128(_mm_cmpeq_epi8(v, splat(b'\n')), _mm_cmpeq_epi8(v, splat(b'\r'))));
            m.blank |= bits(blank);
            m.apostrophe |= bits(_mm_cmpeq_epi8(v, splat(b'\'')));
            m.non_ascii |= bits(v);
        }
        m
    }
}

/// The class masks of 64 bytes, one byte at a time.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn classify_bytewise(bytes: &[u8; WINDOW]) -> Masks {
    let mut m = Masks { letter: 0, digit: 0, space: 0, newline: 0, blank: 0, apostrophe: 0, non_ascii: 0 };
    for (j, &c) in bytes.iter().enumerate() {
        let bit = 1u64 << j;
        let set = |mask: &mut u64, yes: bool| *mask |= if yes { bit } else { 0 };
        set(&mut m.letter, c.is_ascii_alphabetic());
        set(&mut m.digit, c.is_ascii_digit());
        set(&mut m.space, matches!(c, b'\t'..=b'\r' | b' '));
        set(&mut m.newline, matches!(c, b'\n' | b'\r'));
        set(&mut m.blank, c == b' ');
        set(&mut m.apostrophe, c == b'\'');
        set(&mut m.non_ascii, !c.is_ascii());
    }
    m
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn classify(bytes: &[u8; WINDOW]) -> Masks {
    classify_bytewise(bytes)
}

/// The piece starts among the first `len` bytes of a window that begins at a piece start, as bits;
/// `text_end` says whether the text ends after them. `text` is the text from the window's start:
/// the rare contractions are read from it.
#[inline(always)]
fn piece_starts(m: &Masks, len: usize, text_end: bool, text: &[u8]) -> u64 {
    let valid = if len == WINDOW { u64::MAX } else { (1u64 << len) - 1 };
    let (letter, digit, space, newline, blank) =
        (m.letter & valid, m.digit & valid, m.space & valid, m.newline & valid, m.blank & valid);
    let other = valid & !(letter | digit | space);
    // Bit j of `before(x)` is bit j - 1 of x (nothing before the window); of `after(x)`, bit j + 1.
    let before = |x: u64| x << 1;
    let after = |x: u64| x >> 1;
    let mut starts = 1;

    // Punctuation runs start a piece, taking a space before them.
    let other_starts = other & !before(other);
    starts |= (other_starts & !before(blank)) | (blank & after(other_starts));

    // Contractions: an apostrophe alone before letters, not after a space.
    let mut contractions = 0;
    let mut candidates = other_starts & m.apostrophe & after(letter) & !before(blank);
    while candidates != 0 {
        let j = candidates.trailing_zeros() as usize;
        candidates &= candidates - 1;
        if let Some(end) = contraction_end(text, j + 1, true) {
            contractions |= 1 << j;
            // The letters after a contraction start a piece of their own.
            starts |= 1u64.checked_shl(end as u32).unwrap_or(0);
        }
    }

    // Words start at their first letter or at the character before it that they take.
    let prefixes = ((space & !newline) | (other_starts & !before(blank))) & after(letter) & !contractions;
    let letter_starts = letter & !before(letter);
    starts |= prefixes | (letter_starts & !before(prefixes | contractions));

    // Digits in threes.
    let mut group = digit & !before(digit);
    let three_digits = digit & before(digit) & before(before(digit));
    while group != 0 {
        starts |= group;
        group = (group << 3) & three_digits;
    }

    // Whitespace. The line breaks right after punctuation belong to its piece.
    let taken_seeds = space & !before(space) & before(other) & newline;
    let taken = (newline.wrapping_add(taken_seeds) ^ newline) & newline;
    let rest = space & !taken;
    starts |= rest & !before(rest);
    // A run's last character starts a piece unless it is a line break or ends the text.
    let mut last = space & !newline & !after(space);
    if text_end {
        last &= !(1u64 << (len - 1));
    }
    starts |= last;
    // After a run's last line break a piece starts, when the run goes on after it (with no line
    // break) and does not end the text.
    let no_break = space & !newline;
    let mut tails = no_break & before(newline);
    while tails != 0 {
        let j = tails.trailing_zeros() as usize;
        tails &= tails - 1;
        let end = j + (!no_break >> j).trailing_zeros() as usize;
        if end < len && newline & (1 << end) == 0 {
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

/// Calls `f` with the range of each cl100k pre-token of `text`, in order; `piece_end(bytes, start)`
/// is the character matcher, for what the masks leave.
#[inline(always)]
pub(super) fn split_cl100k(
    text: &str,
    mut f: impl FnMut(Range<usize>),
    piece_end: impl Fn(&[u8], usize) -> usize,
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
        let masks = classify(window);
        let non_ascii = masks.non_ascii & if len == WINDOW { u64::MAX } else { (1u64 << len) - 1 };
        if non_ascii != 0 {
            len = non_ascii.trailing_zeros() as usize;
            text_end = false;
        }
        let mut done = 0;
        if len > 0 {
            let starts = piece_starts(&masks, len, text_end, &b[pos..]);
            let cutoff = if text_end { len } else { last_run_start(&masks, len) };
            // Piece ends up to the cutoff: starts at bits 1..=cutoff.
            let mut ends = starts & !1 & (u64::MAX >> (63 - cutoff.min(63)));
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
                *b = if round % 2 == 0 {
                    random(256) as u8
                } else {
                    b"\t\n\x0b\x0c\r\x08\x0e\x1f @AZ[`az{09/:'\x7f\x80\xff"[random(24)]
                };
            }
            assert_eq!(classify(&bytes), classify_bytewise(&bytes), "{bytes:?}");
        }
    }
}
