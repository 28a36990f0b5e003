"""Token counts equal the reference implementations on every line of real data and on adversarial text."""

from __future__ import annotations

import gzip
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
import tokenlens
import zstandard
from tokenlens.bench import record_texts, tokenizer_json

from tests.adversarial import adversarial_texts
from tests.conftest import reference_encoding, shared_file

DATASETS = [
    "gsm8k_chat.jsonl.gz",
    "t0_dev_chat.jsonl.zst",
    "t0_dev_completion.jsonl.zst",
    "t0_dev_text.jsonl.zst",
]


def read_lines(path: Path) -> list[str]:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    elif raw[:4] == b"\x28\xb5\x2f\xfd":
        raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
    return raw.decode("utf-8").removesuffix("\n").split("\n")


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
@pytest.mark.parametrize("dataset", DATASETS)
def test_every_line_of_real_data_matches_tiktoken(dataset: str, encoding: str) -> None:
    path = shared_file(dataset)
    reference = reference_encoding(encoding)
    expected = [
        sum(len(reference.encode_ordinary(t)) for t in record_texts(json.loads(line)))
        for line in read_lines(path)
    ]
    result = tokenlens.count_file(path, encoding)
    assert result.total.invalid == 0
    assert result.lines["tokens"].to_list() == expected
    assert result.total.tokens == sum(expected)


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base", "p50k_base", "r50k_base"])
def test_adversarial_unicode_matches_tiktoken(encoding: str) -> None:
    reference = reference_encoding(encoding)
    ours = tokenlens.Encoding(encoding)
    texts = adversarial_texts()
    expected = [reference.encode_ordinary(t) for t in texts]
    mismatches = [(t[:80], len(e)) for t, e in zip(texts, expected, strict=True) if ours.encode(t) != e]
    assert not mismatches, f"{len(mismatches)} texts differ, first: {mismatches[:3]}"
    # The threads take blocks of texts as they come free: the same counts, in order, on any number.
    counts = [len(e) for e in expected]
    assert all(ours.count_batch(texts, threads=n) == counts for n in (None, 1, 3))


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
def test_long_chinese_clauses_match_tiktoken(encoding: str) -> None:
    """A Chinese clause is one pre-token, which tokenlens cuts where no token can span and counts
    in segments: clauses of random ideograph tokens of the vocabulary (most of them new to it)."""
    reference = reference_encoding(encoding)
    ranks = tokenlens.Encoding(encoding).tiktoken_ranks()
    assert ranks is not None
    ideographs = []
    for token in ranks:
        text = token.decode("utf-8", errors="replace")
        if all("\u4e00" <= c <= "\u9fff" for c in text):
            ideographs.append(text)
    rng = random.Random(3)
    clause = lambda: "".join(rng.choice(ideographs) for _ in range(rng.randint(1, 40)))  # noqa: E731
    texts = ["\uff0c".join(clause() for _ in range(rng.randint(1, 6))) + "\u3002" for _ in range(2000)]
    counts = [len(reference.encode_ordinary(t)) for t in texts]
    assert tokenlens.Encoding(encoding).count_batch(texts, threads=2) == counts


def test_adversarial_lines_in_a_file_match_tiktoken(tmp_path: Path) -> None:
    texts = adversarial_texts(seed=11, count=500)
    path = tmp_path / "adversarial.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    reference = reference_encoding("o200k_base")
    result = tokenlens.count_file(path, "o200k_base", threads=2)
    assert result.lines["tokens"].to_list() == [len(reference.encode_ordinary(t)) for t in texts]


def test_special_tokens_count_as_text_unless_asked() -> None:
    enc = tokenlens.Encoding("cl100k_base")
    reference = reference_encoding("cl100k_base")
    text = "end<|endoftext|>start<|fim_prefix|>"
    assert enc.encode(text) == reference.encode_ordinary(text)
    assert enc.encode(text, special_tokens=True) == reference.encode(text, allowed_special="all")
    assert enc.count(text, special_tokens=True) == len(reference.encode(text, allowed_special="all"))


def train_tokenizer_json(tmp_path: Path, texts: list[str], nfkc: bool = True) -> Path:
    """A GPT-2 style byte-level BPE (ByteLevel pre-tokenizer with its regex) trained on `texts`; with an
    NFKC normalizer unless told otherwise (which keeps it off tokenlens's native path)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    if nfkc:
        tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=4000,
        special_tokens=["[UNK]", "<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts, trainer)
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    return path


def test_tokenizer_json_matches_the_tokenizers_package(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    texts = adversarial_texts(seed=3, count=1000)
    # Training on the 100,000-character words would take minutes; encoding them is what is tested.
    path = train_tokenizer_json(tmp_path, [t for t in texts if len(t) < 2000])
    reference = Tokenizer.from_file(str(path))
    ours = tokenlens.Encoding(str(path))
    # A normalizer keeps the file on the `tokenizers` crate.
    assert ours.backend == "tokenizers"
    assert "normalizer" in (ours.fallback_reason or "")
    expected = [len(e.ids) for e in reference.encode_batch(texts, add_special_tokens=False)]
    assert ours.count_batch(texts) == expected
    assert ours.encode(texts[5]) == reference.encode(texts[5], add_special_tokens=False).ids


def test_tokenizer_json_on_real_data(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    lines = read_lines(shared_file("t0_dev_text.jsonl.zst"))[:3000]
    texts = [json.loads(line)["text"] for line in lines]
    path = train_tokenizer_json(tmp_path, texts)
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    reference = Tokenizer.from_file(str(path))
    expected = [len(e.ids) for e in reference.encode_batch(texts, add_special_tokens=False)]
    assert tokenlens.count_file(data, str(path)).lines["tokens"].to_list() == expected


# The native path for byte-level BPE tokenizer.json files (Encoding.backend == "native-bpe"), against the
# `tokenizers` package on the same file.

# The pattern of Llama 3's tokenizer.json and the default of transformers' tiktoken converter.
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def write_json(path: Path, tokenizer: dict[str, Any]) -> Path:
    path.write_text(json.dumps(tokenizer), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def cl100k_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cl100k_base as a tokenizer.json, as the benchmarks make it."""
    return write_json(tmp_path_factory.mktemp("hf") / "cl100k_base.json", tokenizer_json("cl100k_base"))


def package_counts(path: Path, texts: list[str]) -> list[int]:
    from tokenizers import Tokenizer

    reference = Tokenizer.from_file(str(path))
    return [len(e.ids) for e in reference.encode_batch(texts, add_special_tokens=False)]


def edge_texts() -> list[str]:
    """Beyond the adversarial set: characters where regex engines could differ (case folding, rarer
    white space, recent Unicode letters, marks) and random code points of every plane."""
    rng = random.Random(5)
    # U+017F (long s) folds to s, U+212A (Kelvin sign) to k; U+11F04 and U+31350 are Unicode 15 letters.
    pieces = ["'\u017f", "'\u212a", "\x85", "\u180e", "\u2028\n", "\U00011f04", "\U00031350", "x\u0345"]
    pieces += ["ǅa'S", "Σσς'ß"]
    code_points = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    texts = []
    for _ in range(2000):
        parts = [
            rng.choice(pieces) if rng.random() < 0.3 else chr(rng.choice(code_points)) for _ in range(20)
        ]
        texts.append(" ".join(parts[:5]) + "".join(parts[5:]))
    return texts


@pytest.mark.parametrize("dataset", DATASETS)
def test_cl100k_tokenizer_json_on_real_data(dataset: str, cl100k_json: Path) -> None:
    """Every line: tokenlens on the file == the `tokenizers` package == the built-in cl100k_base."""
    path = shared_file(dataset)
    ours = tokenlens.Encoding(str(cl100k_json))
    assert ours.backend == "native-bpe", ours.fallback_reason
    per_line = [record_texts(json.loads(line)) for line in read_lines(path)]
    counts = iter(package_counts(cl100k_json, [t for texts in per_line for t in texts]))
    expected = [sum(next(counts) for _ in texts) for texts in per_line]
    assert tokenlens.count_file(path, ours).lines["tokens"].to_list() == expected
    assert tokenlens.count_file(path, "cl100k_base").lines["tokens"].to_list() == expected


@pytest.mark.parametrize(
    ("encoding", "pattern"),
    [("cl100k_base", None), ("cl100k_base", LLAMA3_PATTERN), ("o200k_base", None)],
    ids=["cl100k", "llama3-pattern", "o200k"],
)
def test_tiktoken_derived_tokenizer_json_on_adversarial_text(
    tmp_path: Path, encoding: str, pattern: str | None, cl100k_json: Path
) -> None:
    from tokenizers import Tokenizer

    path = cl100k_json if pattern is None and encoding == "cl100k_base" else None
    path = path or write_json(tmp_path / "tokenizer.json", tokenizer_json(encoding, pattern))
    ours = tokenlens.Encoding(str(path))
    assert ours.backend == "native-bpe", ours.fallback_reason
    reference = Tokenizer.from_file(str(path))
    texts = adversarial_texts() + edge_texts()
    expected = [e.ids for e in reference.encode_batch(texts, add_special_tokens=False)]
    mismatches = [t[:80] for t, e in zip(texts, expected, strict=True) if ours.encode(t) != e]
    assert not mismatches, f"{len(mismatches)} texts differ, first: {mismatches[:3]}"
    assert ours.count_batch(texts) == [len(e) for e in expected]
    if pattern is None:
        # tiktoken's own pattern (with {1,3}): the built-in encoding counts the same.
        assert tokenlens.Encoding(encoding).count_batch(texts) == [len(e) for e in expected]


def test_an_interval_then_plus_is_read_as_the_tokenizers_package_reads_it(tmp_path: Path) -> None:
    """tiktoken's own cl100k pattern in a tokenizer.json: Onig, the package's regex engine, reads its
    `\\p{N}{1,3}+` as any run of digits, and so must tokenlens (the `tokenizers` crate's engine, on
    its own, reads it as tiktoken does: runs of at most three)."""
    from tokenizers import Tokenizer

    pattern = tokenlens.Encoding("cl100k_base").pattern
    assert pattern is not None and "\\p{N}{1,3}+" in pattern
    path = write_json(tmp_path / "tokenizer.json", tokenizer_json("cl100k_base", pattern))
    ours = tokenlens.Encoding(str(path))
    assert ours.backend == "tokenizers", "a pattern that no native pre-tokenizer matches"
    rng = random.Random(3)
    digits = ["".join(rng.choice("0123456789\u0663") for _ in range(rng.randint(1, 40))) for _ in range(2000)]
    texts = [*digits, *(f"v{d}.{d[::-1]} x{d}y" for d in digits[:500]), *adversarial_texts(seed=4, count=500)]
    expected = [e.ids for e in Tokenizer.from_file(str(path)).encode_batch(texts, add_special_tokens=False)]
    mismatches = [t[:80] for t, e in zip(texts, expected, strict=True) if ours.encode(t) != e]
    assert not mismatches, f"{len(mismatches)} texts differ, first: {mismatches[:3]}"
    assert ours.count_batch(texts) == [len(e) for e in expected]
    # The file is not read as tiktoken reads its pattern.
    tiktoken_counts = tokenlens.Encoding("cl100k_base").count_batch(digits)
    assert sum(a != len(e) for a, e in zip(tiktoken_counts, expected, strict=False)) > len(digits) // 2


def test_texts_with_added_tokens_match_the_tokenizers_package(tmp_path: Path) -> None:
    """Texts holding an added token's content (special or not, stripping, single word) are split there
    by the `tokenizers` crate; the others take the native path. A post-processor that adds tokens only
    when asked changes nothing."""
    from tokenizers import AddedToken, Tokenizer, processors

    base = write_json(tmp_path / "base.json", tokenizer_json("cl100k_base"))
    tokenizer = Tokenizer.from_file(str(base))
    tokenizer.add_special_tokens(["<|endoftext|>", AddedToken("<|im_start|>", lstrip=True, rstrip=True)])
    tokenizer.add_tokens([AddedToken(" world", single_word=True), AddedToken("ation", normalized=False)])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", tokenizer.token_to_id("<|endoftext|>"))]
    )
    path = tmp_path / "added.json"
    tokenizer.save(str(path))
    ours = tokenlens.Encoding(str(path))
    assert ours.backend == "native-bpe", ours.fallback_reason
    texts = [
        *adversarial_texts(seed=9, count=1000),
        "a<|endoftext|>b",
        "x  <|im_start|>  y",
        "hello world, worldwide world",
        "nation station",
        "<|endoftext",
        "plain text",
    ]
    assert sum("<|endoftext|>" in t for t in texts) > 10
    expected = [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
    mismatches = [t[:80] for t, e in zip(texts, expected, strict=True) if ours.encode(t) != e]
    assert not mismatches, f"{len(mismatches)} texts differ, first: {mismatches[:3]}"
    assert ours.count_batch(texts) == [len(e) for e in expected]


def test_gpt2_style_tokenizer_json_on_real_data(tmp_path: Path) -> None:
    """A ByteLevel(use_regex=True) BPE trained on real data (merges applied to every piece, as trained
    files do), on the native path: the data file and the adversarial set."""
    lines = read_lines(shared_file("t0_dev_text.jsonl.zst"))[:3000]
    texts = [json.loads(line)["text"] for line in lines]
    path = train_tokenizer_json(tmp_path, texts, nfkc=False)
    ours = tokenlens.Encoding(str(path))
    assert ours.backend == "native-bpe", ours.fallback_reason
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert tokenlens.count_file(data, ours).lines["tokens"].to_list() == package_counts(path, texts)
    adversarial = [t for t in adversarial_texts(seed=4, count=1000) if len(t) < 20_000] + edge_texts()
    assert ours.count_batch(adversarial) == package_counts(path, adversarial)
