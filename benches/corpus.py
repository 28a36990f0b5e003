"""The benchmark corpus: the real records of ../shared/data, shuffled and repeated up to a given size.

`corpus_file()` writes it once to bench-data/ at the repository root (git-ignored) and re-uses it while
its recorded size and sources still match; `corpus_texts()` gives the texts tokenlens counts by default
(chat message contents, else "text", else prompt and completion), in file order, for peers that take
pre-parsed strings. The size is TOKENLENS_BENCH_MB megabytes (default 1024).

Run `python benches/corpus.py` to build the corpus ahead of the benchmarks.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tokenlens
import zstandard
from tokenlens.bench import record_texts, tiktoken_file, tokenizer_json

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
BENCH_DATA = ROOT / "bench-data"
SOURCES = (
    "gsm8k_chat.jsonl.gz",
    "t0_dev_chat.jsonl.zst",
    "t0_dev_completion.jsonl.zst",
    "t0_dev_text.jsonl.zst",
)
SEED = 20240601
MB = 1 << 20


def target_mb() -> int:
    return int(os.environ.get("TOKENLENS_BENCH_MB", "1024"))


def missing_sources() -> list[Path]:
    """The source files that are absent (a fresh clone without ../shared/data)."""
    return [SHARED_DATA / name for name in SOURCES if not (SHARED_DATA / name).exists()]


def _decompressed(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    if raw[:4] == b"\x28\xb5\x2f\xfd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    return raw


@functools.cache
def source_lines() -> tuple[bytes, ...]:
    """Every non-blank line of the four sources, in file order."""
    lines: list[bytes] = []
    for name in SOURCES:
        lines.extend(line for line in _decompressed(SHARED_DATA / name).split(b"\n") if line.strip())
    return tuple(lines)


def _order(size: int) -> Iterator[int]:
    """Indexes into source_lines(): one shuffled pass after another (each pass shuffled anew), stopping
    once the lines given add up to at least `size` bytes with their newlines."""
    lines = source_lines()
    rng = random.Random(SEED)
    written = 0
    while True:
        order = list(range(len(lines)))
        rng.shuffle(order)
        for i in order:
            yield i
            written += len(lines[i]) + 1
            if written >= size:
                return


def _meta(size: int) -> dict[str, Any]:
    sources = {name: (SHARED_DATA / name).stat().st_size for name in SOURCES}
    return {"target_bytes": size, "seed": SEED, "sources": sources}


def corpus_file(mb: int | None = None) -> Path:
    """The JSONL corpus of about `mb` megabytes (written on first use, then re-used)."""
    size = (mb if mb is not None else target_mb()) * MB
    path = BENCH_DATA / f"corpus-{size // MB}mb.jsonl"
    meta_path = path.with_suffix(".meta.json")
    meta = _meta(size)
    if path.exists() and meta_path.exists():
        recorded = json.loads(meta_path.read_text())
        if recorded.get("inputs") == meta and recorded.get("bytes") == path.stat().st_size:
            return path
    BENCH_DATA.mkdir(exist_ok=True)
    lines = source_lines()
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb", buffering=16 * MB) as out:
        for i in _order(size):
            out.write(lines[i])
            out.write(b"\n")
    tmp.replace(path)
    meta_path.write_text(json.dumps({"inputs": meta, "bytes": path.stat().st_size}, indent=2))
    return path


@functools.cache
def _texts_of_source_line(i: int) -> tuple[str, ...]:
    return tuple(record_texts(json.loads(source_lines()[i])))


def corpus_texts(mb: int | None = None) -> list[str]:
    """The texts of corpus_file(mb), in file order. A repeated record shares its str objects."""
    size = (mb if mb is not None else target_mb()) * MB
    texts: list[str] = []
    for i in _order(size):
        texts.extend(_texts_of_source_line(i))
    return texts


def texts_file(mb: int | None = None) -> Path:
    """corpus_texts(mb) as JSONL, one {"text": ...} line per text: the same texts for tools that read
    only a top-level string field (gigatoken's JsonlFileSource). Written once."""
    base = corpus_file(mb)
    path = base.with_name(f"{base.stem}-texts.jsonl")
    if path.exists() and path.stat().st_mtime >= base.stat().st_mtime:
        return path
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8", buffering=16 * MB) as out:
        for text in corpus_texts(mb):
            out.write(json.dumps({"text": text}, ensure_ascii=False))
            out.write("\n")
    tmp.replace(path)
    return path


def first_copies_file(path: Path) -> Path:
    """The lines of `path` without the repeats of an earlier line (the corpus is its sources over and
    over, so most of its records are copies). Written once."""
    out_path = path.with_name(f"{path.stem}-first-copies.jsonl")
    if out_path.exists() and out_path.stat().st_mtime >= path.stat().st_mtime:
        return out_path
    seen: set[bytes] = set()
    tmp = out_path.with_suffix(".tmp")
    with path.open("rb") as src, tmp.open("wb", buffering=16 * MB) as out:
        for line in src:
            if line not in seen:
                seen.add(line)
                out.write(line)
    tmp.replace(out_path)
    return out_path


def repeated_path(times: int, mb: int | None = None) -> Path:
    size = (mb if mb is not None else target_mb()) * MB
    return BENCH_DATA / f"corpus-{size // MB}mb-x{times}.jsonl"


def repeated_file(times: int, mb: int | None = None) -> Path:
    """corpus_file(mb) concatenated `times` times (for the memory benchmark), written once."""
    base = corpus_file(mb)
    path = repeated_path(times, mb)
    if path.exists() and path.stat().st_size == times * base.stat().st_size:
        return path
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as out:
        for _ in range(times):
            with base.open("rb") as src:
                while chunk := src.read(16 * MB):
                    out.write(chunk)
    tmp.replace(path)
    return path


def distinct_path(times: int, mb: int | None = None) -> Path:
    repeated = repeated_path(times, mb)
    return repeated.with_name(f"{repeated.stem}-distinct.jsonl")


#: Where a record's first text starts, for each record shape of the corpus.
_TEXT_STARTS = (b'"content": "', b'"text": "', b'"prompt": "')


def distinct_file(times: int, mb: int | None = None) -> Path:
    """corpus_file(mb) `times` times over, every line made a distinct record by its number written at
    the start of its first text: no exact duplicates, and the copies of a record are near duplicates of
    each other (for the memory benchmark of `dedup`, where every record is signed and most are
    candidates). Written once."""
    path = distinct_path(times, mb)
    base = corpus_file(mb)
    if path.exists() and path.stat().st_size > times * base.stat().st_size:
        return path
    tmp = path.with_suffix(".tmp")
    number = 0
    with tmp.open("wb", buffering=16 * MB) as out:
        for _ in range(times):
            with base.open("rb") as src:
                for line in src:
                    at = min(i + len(s) for s in _TEXT_STARTS if (i := line.find(s)) >= 0)
                    out.write(b"%s%d %s" % (line[:at], number, line[at:]))
                    number += 1
    tmp.replace(path)
    return path


# Text in other scripts: the real data is English, and a tokenizer's speed outside ASCII (more bytes
# per character, fewer pieces that repeat) is another matter.

SCRIPTS = ("Chinese", "Russian", "German-like")
#: A full-width comma and stop, which end Chinese clauses.
FULL_WIDTH_STOPS = "\uff0c\u3002"


def _script_tokens(script: str) -> list[str]:
    """The cl100k_base tokens (as text) of a script, in rank order: Chinese ideographs (no spaces);
    Cyrillic words after a space; words after a space that hold a Latin letter outside ASCII."""
    ranks = tokenlens.Encoding("cl100k_base").tiktoken_ranks()
    assert ranks is not None

    def wanted(text: str) -> bool:
        word = text[1:] if text.startswith(" ") and len(text) > 2 else ""
        if script == "Chinese":
            return all("\u4e00" <= c <= "\u9fff" for c in text)
        if script == "Russian":
            return bool(word) and all("\u0400" <= c <= "\u04ff" for c in word)
        # Latin letters: below the IPA block.
        return word.isalpha() and not word.isascii() and all(c < "\u0250" for c in word)

    tokens = []
    for token in sorted(ranks, key=ranks.__getitem__):
        try:
            text = token.decode()
        except UnicodeDecodeError:
            continue
        if wanted(text):
            tokens.append(text)
    return tokens


def script_file(script: str, mb: int = 16) -> Path:
    """About `mb` MB of {"text": ...} lines in `script`, made of the encoding's own tokens (there is no
    such real data here): Chinese runs of 1 to 6 ideograph tokens, each after a full-width comma or
    stop; Russian words with now and then a comma or a stop; German-like text, a third of its words
    with accented letters and the rest common short ASCII words. Nearly every Chinese piece is new,
    so it measures the merging of pieces that no cache holds. Written once."""
    path = BENCH_DATA / f"script-{script.lower()}-{mb}mb.jsonl"
    if path.exists():
        return path
    rng = random.Random(SEED)
    tokens = _script_tokens(script)
    ascii_words = [" der", " die", " und", " Haus", " gehen", " sehr", " nicht", " auch"]

    def word() -> str:
        if script == "Chinese":
            run = "".join(rng.choice(tokens) for _ in range(rng.randint(1, 6)))
            return run + rng.choice(FULL_WIDTH_STOPS)
        if script == "Russian":
            return rng.choice(tokens) + (rng.choice([".", ","]) if rng.random() < 0.1 else "")
        return rng.choice(tokens) if rng.random() < 0.3 else rng.choice(ascii_words)

    BENCH_DATA.mkdir(exist_ok=True)
    tmp, written = path.with_suffix(".tmp"), 0
    with tmp.open("w", encoding="utf-8") as out:
        while written < mb * MB:
            text = "".join(word() for _ in range(rng.randint(20, 200)))
            line = json.dumps({"text": text}, ensure_ascii=False)
            out.write(line + "\n")
            written += len(line.encode()) + 1
    tmp.replace(path)
    return path


# Tokenizer files for the peers, made from the cl100k_base ranks that tokenlens embeds (no network).


def cl100k_tiktoken_file() -> Path:
    """cl100k_base in tiktoken's rank-file format (base64 token, rank), for gigatoken."""
    path = BENCH_DATA / "cl100k_base.tiktoken"
    if not path.exists():
        BENCH_DATA.mkdir(exist_ok=True)
        tiktoken_file("cl100k_base", path)
    return path


def cl100k_tokenizer_json() -> Path:
    """cl100k_base as a Hugging Face tokenizer.json (`tokenlens.bench.tokenizer_json`: vocab, merges
    derived from the ranks, tiktoken's split pattern with `\\p{N}{1,3}` for Onig), for the `tokenizers`
    package and for tokenlens reading the same file."""
    path = BENCH_DATA / "cl100k_base.tokenizer.json"
    if not path.exists():
        BENCH_DATA.mkdir(exist_ok=True)
        path.write_text(json.dumps(tokenizer_json("cl100k_base"), ensure_ascii=False), encoding="utf-8")
    return path


if __name__ == "__main__":
    if missing := missing_sources():
        raise SystemExit(f"real data is absent: {', '.join(map(str, missing))}")
    built = corpus_file()
    print(f"{built}: {built.stat().st_size / MB:,.1f} MB")
