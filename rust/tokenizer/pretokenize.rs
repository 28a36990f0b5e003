//! Splitting text into pre-tokens exactly as tiktoken's regular expressions do.
//!
//! tiktoken's patterns use a negative look-ahead (`\s+(?!\S)`) and possessive quantifiers, which need a
//! backtracking engine. We compile an equivalent pattern into a lazy DFA (`regex-automata`'s hybrid
//! DFA, much faster), searched anchored at each position since every character starts a pre-token:
//! possessive quantifiers become greedy ones (the classes they guard are disjoint, so no backtracking
//! can change a match), and the look-ahead alternatives become a plain `\s+` that is fixed up here:
//! a whitespace run without a line break that is followed by more text gives its last character back
//! to the next pre-token. Differential tests in `tests/` compare the result with the original pattern.

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind};

/// Pattern family of an OpenAI encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatternKind {
    /// r50k_base, p50k_base (GPT-2 style).
    Gpt2,
    /// cl100k_base.
    Cl100k,
    /// o200k_base.
    O200k,
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
        }
    }

    /// The equivalent pattern without look-ahead or possessive quantifiers.
    fn fast_pattern(self) -> &'static str {
        match self {
            PatternKind::Gpt2 => r"'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+$|\s+",
            PatternKind::Cl100k => {
                r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s+$|\s*[\r\n]|\s+"
            }
            PatternKind::O200k => concat!(
                r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
                r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
                r"|\p{N}{1,3}",
                r"| ?[^\s\p{L}\p{N}]+[\r\n/]*",
                r"|\s*[\r\n]+",
                r"|\s+",
            ),
        }
    }

    /// Whether a whitespace run that contains a line break came from a line-break alternative
    /// (which the look-ahead never shortens).
    fn line_breaks_have_own_rule(self) -> bool {
        !matches!(self, PatternKind::Gpt2)
    }
}

/// A compiled pre-tokenizer. Searching needs a [`PretokenCache`], one per thread.
#[derive(Clone, Debug)]
pub struct Pretokenizer {
    kind: PatternKind,
    dfa: DFA,
}

/// The lazy DFA's per-thread state.
pub type PretokenCache = Cache;

impl Pretokenizer {
    pub fn new(kind: PatternKind) -> Self {
        let config = DFA::config()
            .match_kind(MatchKind::LeftmostFirst)
            // Large Unicode classes make many states: never give up, just rebuild the cache.
            .minimum_cache_clear_count(None)
            .cache_capacity(8 << 20);
        let dfa = DFA::builder()
            .configure(config)
            .syntax(syntax::Config::new().unicode(true).utf8(true))
            .build(kind.fast_pattern())
            .expect("built-in pattern compiles");
        Pretokenizer { kind, dfa }
    }

    pub fn cache(&self) -> PretokenCache {
        self.dfa.create_cache()
    }

    pub fn kind(&self) -> PatternKind {
        self.kind
    }

    /// Calls `f` with every pre-token of `text`, in order; the pieces concatenate to `text`.
    #[inline]
    pub fn for_each<'t>(&self, cache: &mut PretokenCache, text: &'t str, mut f: impl FnMut(&'t str)) {
        let mut pos = 0;
        while pos < text.len() {
            let input = Input::new(text).range(pos..).anchored(Anchored::Yes);
            let end = match self.dfa.try_search_fwd(cache, &input) {
                Ok(Some(m)) => m.offset(),
                // Every character starts a pre-token, so an anchored search always matches; the DFA
                // never quits (no Unicode word boundaries, no cache limit). Be safe: one character.
                _ => pos + text[pos..].chars().next().map_or(1, char::len_utf8),
            };
            let piece = &text[pos..end];
            let mut end = end;
            if end < text.len() && self.is_lookahead_run(piece) {
                // `\s+(?!\S)`: keep the last whitespace character for the next pre-token.
                let last = piece.chars().next_back().map_or(0, char::len_utf8);
                if piece.len() > last {
                    end -= last;
                }
            }
            f(&text[pos..end]);
            pos = end;
        }
    }

    /// True when `piece` can only have come from the plain `\s+` alternative.
    #[inline]
    fn is_lookahead_run(&self, piece: &str) -> bool {
        let b = piece.as_bytes();
        // Every other alternative starts with a non-space or contains one; check cheaply first.
        let first_is_space = matches!(b[0], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) || b[0] >= 0x80;
        if !first_is_space || !piece.chars().all(char::is_whitespace) {
            return false;
        }
        !(self.kind.line_breaks_have_own_rule() && piece.bytes().any(|c| c == b'\n' || c == b'\r'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fancy_regex::Regex as Reference;

    fn reference_pieces(kind: PatternKind, text: &str) -> Vec<String> {
        thread_local! {
            static COMPILED: Vec<Reference> = [PatternKind::Gpt2, PatternKind::Cl100k, PatternKind::O200k]
                .iter()
                .map(|k| Reference::new(k.reference_pattern()).unwrap())
                .collect();
        }
        let index = kind as usize;
        COMPILED.with(|c| c[index].find_iter(text).map(|m| m.unwrap().as_str().to_string()).collect())
    }

    fn pieces(kind: PatternKind, text: &str) -> Vec<String> {
        thread_local! {
            static COMPILED: Vec<Pretokenizer> =
                [PatternKind::Gpt2, PatternKind::Cl100k, PatternKind::O200k].into_iter().map(Pretokenizer::new).collect();
        }
        let mut out = Vec::new();
        COMPILED.with(|c| {
            let pretokenizer = &c[kind as usize];
            pretokenizer.for_each(&mut pretokenizer.cache(), text, |p| out.push(p.to_string()))
        });
        out
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
    ];

    #[test]
    fn matches_reference_patterns() {
        for kind in [PatternKind::Gpt2, PatternKind::Cl100k, PatternKind::O200k] {
            for text in SAMPLES {
                assert_eq!(pieces(kind, text), reference_pieces(kind, text), "{kind:?} on {text:?}");
            }
        }
    }

    #[test]
    fn matches_reference_on_whitespace_combinations() {
        // Every string of length <= 4 over a small alphabet of spaces, breaks and letters.
        let alphabet = [" ", "\n", "\r", "\t", "a", "1", ".", "\u{a0}", "'"];
        let mut texts = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for t in &texts {
                for a in alphabet {
                    next.push(format!("{t}{a}"));
                }
            }
            for kind in [PatternKind::Gpt2, PatternKind::Cl100k, PatternKind::O200k] {
                for t in &next {
                    assert_eq!(pieces(kind, t), reference_pieces(kind, t), "{kind:?} on {t:?}");
                }
            }
            texts = next;
        }
    }
}
