"""Token counts equal the reference implementations on every line of real data and on adversarial text."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest
import tokenlens
import zstandard

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


def record_texts(record: dict[str, Any]) -> list[str]:
    """The texts `count` counts by default, extracted independently of tokenlens."""
    if "messages" in record:
        return [m["content"] for m in record["messages"] if isinstance(m.get("content"), str)]
    if "text" in record:
        return [record["text"]]
    return [record[k] for k in ("prompt", "completion") if k in record]


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
    assert ours.count_batch(texts) == [len(e) for e in expected]


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


def train_tokenizer_json(tmp_path: Path, texts: list[str]) -> Path:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
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
