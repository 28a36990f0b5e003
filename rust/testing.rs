//! Test helpers shared by the modules' tests: a deterministic random number generator and
//! adversarial text for the tokenizer's differential tests.

use std::sync::OnceLock;

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
/// combining marks, case and contraction edge cases, digits, punctuation, control characters. The
/// Python tests read the same file.
pub fn adversarial_pieces() -> &'static [String] {
    static PIECES: OnceLock<Vec<String>> = OnceLock::new();
    PIECES.get_or_init(|| {
        serde_json::from_str(include_str!("../tests/adversarial_pieces.json"))
            .expect("the pieces are JSON strings")
    })
}

/// Up to 24 adversarial pieces and random code points of every plane (one in `code_point_odds`),
/// stuck together at random.
pub fn adversarial_text(random: &mut impl FnMut(usize) -> usize, code_point_odds: usize) -> String {
    let mut text = String::new();
    for _ in 0..random(24) + 1 {
        if random(code_point_odds) == 0 {
            let limit = [0x80, 0x800, 0x1_0000, 0x11_0000][random(4)];
            text.extend(char::from_u32(random(limit) as u32));
        } else {
            let pieces = adversarial_pieces();
            text += &pieces[random(pieces.len())];
        }
    }
    text
}
