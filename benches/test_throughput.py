"""Throughput in MB of the JSONL corpus per second: tokenlens and its peers, on the same corpus, at the same
thread counts, and each peer's token total checked against tokenlens's.

Peers that take strings get the corpus's texts already parsed (corpus.corpus_texts), so their rate leaves
out the JSON parsing that tokenlens does. The slow ones (tiktoken, tokenizers, datasketch) run on the first
few MB of the same corpus (corpus_file(mb) is a prefix of the full one), and their rate is compared with
tokenlens's on the same MB. Ratios are tokenlens's rate over the peer's: above 1, tokenlens is faster.
"""

from __future__ import annotations

import os
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import awkward as ak
import gigatoken
import pytest
import quicktok
import tiktoken
import tokenizers
import tokenlens
import toktok
from datasketch import MinHash
from pytest_benchmark.fixture import BenchmarkFixture

from benches import corpus
from benches.conftest import PAIRED, THREADS, Measurement, record, timed

ENCODING = "cl100k_base"
#: Batch size for the peers that build Python objects per token (bounds their memory).
CHUNK = 8192
TOKENLENS = "tokenlens count"
TOKENLENS_TEXTS = "tokenlens count (texts file)"
TOKENLENS_SUBSET = "tokenlens count (subset)"
TOKENLENS_JSON = "tokenlens count (tokenizer.json)"
#: Pairs of rounds in the interleaved comparisons with gigatoken; TOKENLENS_BENCH_PAIRS overrides.
PAIRS = int(os.environ.get("TOKENLENS_BENCH_PAIRS", "5"))
#: MB of the texts file that scan and gigatoken take in turns; TOKENLENS_BENCH_SCAN_MB overrides.
SCAN_MB = int(os.environ.get("TOKENLENS_BENCH_SCAN_MB", "256"))

_totals: dict[tuple[Path, str], int] = {}


def tokenlens_tokens(path: Path, encoding: str = ENCODING) -> int:
    """tokenlens's token total of a file (from its benchmark run when there was one)."""
    if (path, encoding) not in _totals:
        result = tokenlens.count_file(path, encoding, threads=max(THREADS), keep_lines=False)
        _totals[(path, encoding)] = result.total.tokens
    return _totals[(path, encoding)]


def subset_mb(tool: str, default: int) -> int:
    """How many MB of the corpus a slow peer gets: TOKENLENS_BENCH_<TOOL>_MB, at most the full corpus."""
    return min(int(os.environ.get(f"TOKENLENS_BENCH_{tool.upper()}_MB", default)), corpus.target_mb())


def chunks(texts: list[str]) -> list[list[str]]:
    return [texts[i : i + CHUNK] for i in range(0, len(texts), CHUNK)]


def measure_tokens(
    benchmark: BenchmarkFixture,
    tool: str,
    threads: int,
    path: Path,
    count: Callable[[], int],
    baseline: str | None,
    encoding: str = ENCODING,
    note: str = "",
    warm: bool = False,
) -> None:
    """Times `count` (which returns a token total for `path`'s texts), records it, checks it is exact."""
    tokens, seconds = timed(benchmark, count, warm)
    expected = tokenlens_tokens(path, encoding)
    base = (baseline, threads) if baseline else None
    record(benchmark, Measurement(tool, threads, path, seconds, tokens, base, tokens == expected, note))
    assert tokens == expected, f"{tool} counts {tokens:,} tokens where tokenlens counts {expected:,}"


# tokenlens first: the peers' ratios divide its rates.


@pytest.mark.parametrize("threads", THREADS)
def test_tokenlens_count(benchmark: BenchmarkFixture, corpus_path: Path, threads: int) -> None:
    enc = tokenlens.Encoding(ENCODING)

    def count() -> int:
        result = tokenlens.count_file(corpus_path, enc, threads=threads, keep_lines=False)
        assert result.total.invalid == 0
        return result.total.tokens

    tokens, seconds = timed(benchmark, count, warm=True)
    _totals[(corpus_path, ENCODING)] = tokens
    record(benchmark, Measurement(TOKENLENS, threads, corpus_path, seconds, tokens, None, None))


@pytest.mark.parametrize("threads", THREADS)
def test_tokenlens_count_batch(
    benchmark: BenchmarkFixture, corpus_path: Path, corpus_texts: list[str], threads: int
) -> None:
    """The tokenizer alone, on the pre-parsed texts the string-taking peers get."""
    enc = tokenlens.Encoding(ENCODING)
    note = "Encoding.count_batch on the pre-parsed texts (no JSON parsing), like toktok and quicktok"
    measure_tokens(
        benchmark,
        "tokenlens count_batch",
        threads,
        corpus_path,
        lambda: sum(enc.count_batch(corpus_texts, threads=threads)),
        None,
        note=note,
        warm=True,
    )


def tokenlens_texts_count(threads: int, path: Path | None = None) -> Callable[[], int]:
    """tokenlens's count of a {"text": ...} file gigatoken reads, the full one by default: the same texts,
    so the same total."""
    path, enc = path or corpus.texts_file(), tokenlens.Encoding(ENCODING)
    return lambda: tokenlens.count_file(path, enc, threads=threads, keep_lines=False).total.tokens


def gigatoken_count(threads: int, path: Path | None = None) -> Callable[[], int]:
    """gigatoken's count of a texts file, the full one by default (the length of the ids it builds)."""
    # No special tokens: "<|endoftext|>" in the data is ordinary text, as tokenlens counts it by default.
    tokenizer = gigatoken.Tokenizer.from_tiktoken(
        corpus.cl100k_tiktoken_file(), pretokenizer="gpt4", special_tokens={}
    )
    path = path or corpus.texts_file()

    def count() -> int:
        source = gigatoken.JsonlFileSource([str(path)], field="text")
        # parallel=False encodes on the calling thread; True on the rayon pool of RAYON_NUM_THREADS.
        ids = tokenizer.encode_files(source, parallel=threads > 1)
        return int(ak.sum(ak.num(ids)))

    return count


@pytest.mark.parametrize("threads", THREADS)
def test_tokenlens_count_texts_file(benchmark: BenchmarkFixture, corpus_path: Path, threads: int) -> None:
    path = corpus.texts_file()
    tokens, seconds = timed(benchmark, tokenlens_texts_count(threads), warm=True)
    _totals[(path, ENCODING)] = tokens
    exact = tokens == tokenlens_tokens(corpus_path)
    record(benchmark, Measurement(TOKENLENS_TEXTS, threads, path, seconds, tokens, None, exact))
    assert exact


@pytest.mark.parametrize("threads", THREADS)
def test_gigatoken(benchmark: BenchmarkFixture, corpus_path: Path, threads: int) -> None:
    note = (
        "encode_files(JsonlFileSource) on the texts file (it reads one top-level string field and skips "
        "records without it, so it cannot count the chat and prompt/completion records of the corpus); "
        "builds the ids (no count-only API); 2 threads = RAYON_NUM_THREADS"
    )
    path, count = corpus.texts_file(), gigatoken_count(threads)
    measure_tokens(benchmark, "gigatoken", threads, path, count, TOKENLENS_TEXTS, note=note, warm=True)


@pytest.mark.parametrize("threads", THREADS)
def test_gigatoken_interleaved(benchmark: BenchmarkFixture, corpus_path: Path, threads: int) -> None:
    """tokenlens and gigatoken on the texts file, one round of each in turn, after an untimed one of each.
    The best rounds of the two tests above may come minutes apart, and this shared machine's speed moves
    more than that in minutes; a pair of rounds back to back sees one machine state, so the median of the
    pairs' ratios is the steadier figure."""
    tools = (tokenlens_texts_count(threads), gigatoken_count(threads))
    in_turns(benchmark, "gigatoken", threads, corpus.texts_file(), tools, tokenlens_tokens(corpus_path))


@pytest.mark.parametrize("inputs", ["as they come", "first copies"])
@pytest.mark.parametrize("threads", THREADS)
def test_scan_against_gigatoken_interleaved(
    benchmark: BenchmarkFixture, corpus_path: Path, threads: int, inputs: str
) -> None:
    """tokenlens scan (validation, accounting, duplicate signatures, statistics) against gigatoken's count
    alone, both on the first SCAN_MB of the texts file, in turns: its lines as they come (most are copies,
    which scan signs once per thread), and their first copies only (no exact duplicates)."""
    path = corpus.texts_file(min(SCAN_MB, corpus.target_mb()))
    if inputs == "first copies":
        path = corpus.first_copies_file(path)

    def scan() -> int:
        return int(tokenlens.scan(path, keep_records=False, threads=threads).summary["tokens"]["total"])

    tools = (scan, gigatoken_count(threads, path))
    in_turns(benchmark, f"gigatoken (scan, texts {inputs})", threads, path, tools, tokenlens_tokens(path))


@pytest.mark.parametrize("script", corpus.SCRIPTS)
@pytest.mark.parametrize("threads", THREADS)
def test_scripts_against_gigatoken_interleaved(
    benchmark: BenchmarkFixture, threads: int, script: str
) -> None:
    """tokenlens count and gigatoken in turns on generated text in other scripts (corpus.script_file):
    the real corpus is English."""
    path = corpus.script_file(script)
    tools = (tokenlens_texts_count(threads, path), gigatoken_count(threads, path))
    in_turns(benchmark, f"gigatoken ({script})", threads, path, tools, tokenlens_tokens(path))


def in_turns(
    benchmark: BenchmarkFixture,
    peer: str,
    threads: int,
    path: Path,
    tools: tuple[Callable[[], int], Callable[[], int]],
    expected: int,
) -> None:
    """Times tokenlens (`tools[0]`) and a peer on `path`, one round of each in turn after an untimed one of
    each, PAIRS times; both must count `expected` tokens. The pairs go to the terminal summary."""

    def seconds(count: Callable[[], int]) -> float:
        start = time.perf_counter()
        tokens = count()
        elapsed = time.perf_counter() - start
        assert tokens == expected, f"{tokens:,} tokens where tokenlens counts {expected:,} in {path.name}"
        return elapsed

    for count in tools:
        seconds(count)

    def pairs() -> list[tuple[float, float]]:
        return [(seconds(tools[0]), seconds(tools[1])) for _ in range(PAIRS)]

    timings = benchmark.pedantic(pairs, rounds=1, iterations=1)
    PAIRED[(peer, threads)] = timings
    ratios = [theirs / ours for ours, theirs in timings]
    benchmark.extra_info.update(
        tool=f"tokenlens vs {peer}, interleaved",
        threads=threads,
        input=path.name,
        pair_seconds=timings,
        median_ratio=round(statistics.median(ratios), 3),
    )


@pytest.mark.parametrize("threads", THREADS)
def test_toktok(
    benchmark: BenchmarkFixture, corpus_path: Path, corpus_texts: list[str], threads: int
) -> None:
    toktok.batch_count(["load the encoding"], ENCODING)

    def count() -> int:
        return sum(toktok.batch_count(corpus_texts, ENCODING, threads=threads))

    note = "batch_count on pre-parsed texts (JSON parsing not timed)"
    measure_tokens(benchmark, "toktok-rs", threads, corpus_path, count, TOKENLENS, note=note, warm=True)


@pytest.mark.parametrize("threads", THREADS)
def test_quicktok(
    benchmark: BenchmarkFixture, corpus_path: Path, corpus_texts: list[str], threads: int
) -> None:
    enc = quicktok.get_encoding(ENCODING)

    def count() -> int:
        return int(quicktok.count_batch(enc, corpus_texts, threads=threads).sum())

    note = "count_batch on pre-parsed texts (JSON parsing not timed; it builds the ids)"
    measure_tokens(benchmark, "quicktok-v1", threads, corpus_path, count, TOKENLENS, note=note)


@pytest.mark.parametrize("threads", THREADS)
def test_tokenlens_count_subset(benchmark: BenchmarkFixture, corpus_path: Path, threads: int) -> None:
    """tokenlens on tiktoken's subset: the first MB hold no repeated record, unlike the full corpus."""
    path, enc = corpus.corpus_file(subset_mb("tiktoken", 32)), tokenlens.Encoding(ENCODING)

    def count() -> int:
        return tokenlens.count_file(path, enc, threads=threads, keep_lines=False).total.tokens

    tokens, seconds = timed(benchmark, count)
    _totals[(path, ENCODING)] = tokens
    record(benchmark, Measurement(TOKENLENS_SUBSET, threads, path, seconds, tokens, None, None))


@pytest.mark.parametrize("threads", THREADS)
def test_tiktoken(benchmark: BenchmarkFixture, corpus_path: Path, threads: int) -> None:
    ours = tokenlens.Encoding(ENCODING)
    assert ours.pattern is not None and ours.tiktoken_ranks() is not None
    enc = tiktoken.Encoding(
        name=ENCODING,
        pat_str=ours.pattern,
        mergeable_ranks=ours.tiktoken_ranks(),
        special_tokens=ours.special_tokens,
    )
    mb = subset_mb("tiktoken", 32)
    path, batches = corpus.corpus_file(mb), chunks(corpus.corpus_texts(mb))

    def count() -> int:
        return sum(
            len(ids) for batch in batches for ids in enc.encode_ordinary_batch(batch, num_threads=threads)
        )

    note = f"encode_ordinary_batch on pre-parsed texts, first {mb} MB"
    measure_tokens(benchmark, "tiktoken", threads, path, count, TOKENLENS_SUBSET, note=note)


@pytest.mark.parametrize("threads", THREADS)
def test_tokenlens_count_tokenizer_json(benchmark: BenchmarkFixture, corpus_path: Path, threads: int) -> None:
    """tokenlens with the tokenizer.json the `tokenizers` package reads, on the same subset."""
    path = corpus.corpus_file(subset_mb("tokenizers", 16))
    spec = str(corpus.cl100k_tokenizer_json())
    enc = tokenlens.Encoding(spec)
    assert enc.backend == "native-bpe", enc.fallback_reason

    def count() -> int:
        return tokenlens.count_file(path, enc, threads=threads, keep_lines=False).total.tokens

    tokens, seconds = timed(benchmark, count)
    _totals[(path, spec)] = tokens
    note = "a cl100k_base tokenizer.json made from tokenlens's ranks; exact against the built-in cl100k_base"
    exact = tokens == tokenlens_tokens(path)
    record(benchmark, Measurement(TOKENLENS_JSON, threads, path, seconds, tokens, None, exact, note))
    assert exact


@pytest.mark.parametrize("threads", THREADS)
def test_hf_tokenizers(
    benchmark: BenchmarkFixture, corpus_path: Path, threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = str(corpus.cl100k_tokenizer_json())
    tokenizer = tokenizers.Tokenizer.from_file(spec)
    mb = subset_mb("tokenizers", 16)
    path, batches = corpus.corpus_file(mb), chunks(corpus.corpus_texts(mb))
    # Read at every call: false encodes on the calling thread, true on the rayon pool (RAYON_NUM_THREADS).
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "true" if threads > 1 else "false")

    def count() -> int:
        return sum(len(e.ids) for b in batches for e in tokenizer.encode_batch(b, add_special_tokens=False))

    note = f"encode_batch on pre-parsed texts, first {mb} MB, the same tokenizer.json as tokenlens"
    measure_tokens(benchmark, "HF tokenizers", threads, path, count, TOKENLENS_JSON, encoding=spec, note=note)


WORD = re.compile(r"\w+")


def minhash(text: str, ngram: int = 5, num_perm: int = 128) -> MinHash:
    words = WORD.findall(text.lower())
    shingles = [" ".join(words[i : i + ngram]).encode() for i in range(max(1, len(words) - ngram + 1))]
    signature = MinHash(num_perm=num_perm)
    signature.update_batch(shingles)
    return signature


def test_datasketch_minhash(benchmark: BenchmarkFixture, corpus_path: Path) -> None:
    """Near-duplicate signatures, the first half of dedup: a yardstick in MB/s, not the same work as
    counting, so no ratio."""
    mb = subset_mb("datasketch", 8)
    path, texts = corpus.corpus_file(mb), corpus.corpus_texts(mb)
    signatures, seconds = timed(benchmark, lambda: [minhash(t) for t in texts])
    assert len(signatures) == len(texts)
    note = (
        f"MinHash (128 permutations, 5-word shingles) per text, first {mb} MB, Python/numpy, one thread; "
        "signatures only; tokenlens's dedup against datasketch's MinHashLSH is in test_dedup_quality.py"
    )
    record(benchmark, Measurement("datasketch MinHash", 1, path, seconds, None, None, None, note))
