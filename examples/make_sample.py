"""Generates `sample_chat.jsonl`, the bundled demo dataset: a small sentiment-classification chat
fine-tuning set with the problems real sets have (near-duplicate templates, class imbalance, an
over-long example, a few broken lines). Deterministic: run it again and the file is the same.

    python examples/make_sample.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).with_name("sample_chat.jsonl")
SYSTEM = "You label the sentiment of product reviews as positive, negative or neutral."
PRODUCTS = [
    "kettle",
    "headphones",
    "backpack",
    "desk lamp",
    "running shoes",
    "coffee grinder",
    "keyboard",
    "tent",
    "blender",
    "e-reader",
    "water bottle",
    "office chair",
]
POSITIVE = [
    "works perfectly",
    "exceeded my expectations",
    "is worth every penny",
    "feels sturdy and well made",
    "arrived early and works great",
    "is the best purchase I made this year",
]
NEGATIVE = [
    "broke after two days",
    "is much smaller than pictured",
    "stopped working after a week",
    "smells of burnt plastic",
    "was missing parts",
    "is loud and flimsy",
]
NEUTRAL = [
    "does what it says",
    "is fine for the price",
    "is okay, nothing special",
    "arrived on time",
    "looks like the photos",
]
OPENERS = [
    "I bought this {p} last month and it {x}.",
    "The {p} {x}.",
    "Honestly, this {p} {x}.",
    "My partner got me the {p}; it {x}.",
    "Ordered the {p} for camping and it {x}.",
]
EXTRAS = [
    "",
    " Delivery was quick.",
    " Would buy again?",
    " The box was damaged.",
    " Customer service replied fast.",
    " 10/10 packaging.",
    " Ça marche très bien.",
    " 很好用。",
    " 👍",
]


def review(rng: random.Random, label: str) -> str:
    phrase = rng.choice({"positive": POSITIVE, "negative": NEGATIVE, "neutral": NEUTRAL}[label])
    return rng.choice(OPENERS).format(p=rng.choice(PRODUCTS), x=phrase) + rng.choice(EXTRAS)


def example(text: str, label: str) -> dict[str, object]:
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": text},
            {"role": "assistant", "content": label},
        ]
    }


def lines(rng: random.Random) -> list[str]:
    out: list[str] = []
    # Imbalanced on purpose: 60% positive, 30% negative, 10% neutral.
    labels = ["positive"] * 120 + ["negative"] * 60 + ["neutral"] * 20
    rng.shuffle(labels)
    for label in labels:
        out.append(json.dumps(example(review(rng, label), label), ensure_ascii=False))
    # Exact and near duplicates, as template-made sets have.
    out += [out[3], out[10]]
    near = json.loads(out[20])
    near["messages"][1]["content"] = near["messages"][1]["content"].replace(".", "!", 1)
    out.append(json.dumps(near, ensure_ascii=False))
    # One example far over a small context limit.
    long_text = " ".join(review(rng, "positive") for _ in range(400))
    out.append(json.dumps(example(long_text, "positive"), ensure_ascii=False))
    # Broken lines, each with a different problem.
    out.append(
        '{"messages": [{"role": "user", "content": "Great kettle."}, {"role": "assistant", "content": '
    )
    out.append(json.dumps({"messages": [{"role": "user", "content": "Meh."}]}))
    out.append(
        json.dumps(
            {
                "messages": [
                    {"role": "customer", "content": "Lovely."},
                    {"role": "assistant", "content": "positive"},
                ]
            }
        )
    )
    out.append(
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "Bad."},
                    {"role": "assistant", "content": "negative", "weight": 2},
                ]
            }
        )
    )
    out.append("")
    positions = sorted(rng.sample(range(len(out)), 5))
    broken = out[-5:]
    del out[-5:]
    for pos, line in zip(positions, broken, strict=True):
        out.insert(pos, line)
    return out


def main() -> None:
    OUT.write_text("\n".join(lines(random.Random(20261126))) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
