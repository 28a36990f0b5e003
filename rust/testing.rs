//! Test helpers shared by the modules' tests: a deterministic random number generator and
//! adversarial text for the tokenizer's differential tests.

/// A xorshift generator: `random(n)` is a pseudo-random number below `n`, the same for every run.
pub fn xorshift(seed: u64) -> impl FnMut(usize) -> usize {
    let mut state = seed | 1;
    move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    }
}

/// Pieces that stress pre-tokenizers: whitespace of every kind, scripts without spaces, joined emoji,
/// combining marks, case and contraction edge cases, digits, punctuation, control characters.
pub const ADVERSARIAL_PIECES: &[&str] = &[
    " ",
    "  ",
    "   ",
    "\t",
    "\n",
    "\n\n",
    "\r\n",
    "\r",
    "\u{a0}",
    "\u{3000}",
    "\u{2028}",
    "\u{200b}",
    "\u{0b}",
    "\u{0c}",
    "\u{85}",
    "\u{feff}",
    "深度学习",
    "สวัสดีครับ",
    "น้ำ",
    "नमस्ते",
    "ـعربيـ",
    "שָׁלוֹם",
    "👩‍👩‍👧‍👦",
    "🏳️‍🌈",
    "👍🏽",
    "🇩🇪",
    "e\u{301}",
    "\u{301}\u{302}",
    "İ",
    "ǅ",
    "ﬁ",
    "Ⅻ",
    "²",
    "½",
    "١٢٣٤",
    "𝟘𝟙𝟚",
    "0123456789",
    "1,000.5",
    "'s",
    "'S",
    "'ſ",
    "'t",
    "'Re",
    "'vE",
    "'M",
    "'lL",
    "'D",
    "don't",
    "DON'T",
    "’s",
    "camelCase",
    "McDonald",
    "HELLO",
    "hello",
    "Hello",
    "<|endoftext|>",
    "a/b",
    "//",
    "./\n",
    "...",
    "\\n",
    "\u{0}",
    "\u{7f}",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "ab",
    "Internationalization",
    "tokenization",
];

/// Up to 24 adversarial pieces and random code points of every plane (one in `code_point_odds`),
/// stuck together at random.
pub fn adversarial_text(random: &mut impl FnMut(usize) -> usize, code_point_odds: usize) -> String {
    let mut text = String::new();
    for _ in 0..random(24) + 1 {
        if random(code_point_odds) == 0 {
            let limit = [0x80, 0x800, 0x1_0000, 0x11_0000][random(4)];
            text.extend(char::from_u32(random(limit) as u32));
        } else {
            text += ADVERSARIAL_PIECES[random(ADVERSARIAL_PIECES.len())];
        }
    }
    text
}
