"""A generated set of texts that stress pre-tokenization and BPE: whitespace runs, line endings, scripts
with combining marks, emoji sequences, digits of many scripts, contractions in every case, huge words."""

from __future__ import annotations

import itertools
import random

PIECES = [
    " ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2028", "\u200b", "\u2003", "\x0b", "\x0c",
    "深度学习", "東京都", "한국어", "สวัสดีครับ", "น้ำ", "नमस्ते", "क्षत्रिय", "ـعربيـ", "שָׁלוֹם",
    "👩‍👩‍👧‍👦", "🏳️‍🌈", "👍🏽", "🇩🇪", "e\u0301", "ñ", "Å", "ß", "İ", "ǅ", "ﬁ", "Ⅻ", "²", "½",
    "0123456789", "١٢٣٤٥٦٧٨٩٠", "०१२३४५", "๑๒๓", "১২৩", "𝟘𝟙𝟚", "1,000,000.50", "3.14159",
    "'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'lL", "'d", "'D",
    "don't", "DON'T", "I'M", "We'Ve", "’s", "hello", "Hello", "HELLO", "camelCase", "McDonald",
    "<|endoftext|>", "<|fim_prefix|>", "<|im_start|>", "http://x.y/z?q=1&r=2", "a/b/c", "//", "/*", "...",
    "!!!", "?!", "$$", "@user", "#tag", "\\n", "\\u0000", "{}", "[]", "\"quoted\"", "\u0000", "\x7f",
    "\ufeff", "\ud7ff", "\U0010fffd", "\U0001f600", "ǰ", "ᾖ", "Ꙭ",
]


def adversarial_texts(seed: int = 7, count: int = 3000) -> list[str]:
    rng = random.Random(seed)
    texts = [
        " " * 10_000,
        "\n" * 5_000,
        "\r\n" * 3_000 + "x",
        " \t" * 4_000 + "end",
        "a" * 100_000,
        "ab" * 50_000,
        "深" * 100_000,
        "👍" * 20_000,
        "1" * 100_000,
        "x" + " " * 2_000 + "y" + "\n " * 1_000,
        "".join(PIECES),
        "".join(reversed(PIECES)),
    ]
    # Every pair of pieces, so that each boundary between two kinds of text is tried.
    texts += [a + b for a, b in itertools.product(PIECES, repeat=2)]
    for _ in range(count):
        n = rng.randint(1, 40)
        texts.append("".join(rng.choice(PIECES) for _ in range(n)))
    return texts
