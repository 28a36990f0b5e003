"""A generated set of texts that stress pre-tokenization and BPE: whitespace runs, line endings, scripts
with combining marks, emoji sequences, digits of many scripts, contractions in every case, huge words."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

#: The pieces, shared with the Rust tests (rust/testing.rs).
PIECES: list[str] = json.loads(
    (Path(__file__).parent / "adversarial_pieces.json").read_text(encoding="utf-8")
)


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
