"""`tokenlens bench`: tokenlens and the peers that are installed, on a corpus generated here, at the
same thread counts, with every peer's token total checked against tokenlens's. The figures of
`make bench` (benches/, on the real data of ../shared/data) for any machine, without that data.

The corpus is synthetic but shaped like fine-tuning data: chat (60%), prompt/completion (20%) and text
(20%) records whose sentences are drawn from the encoding's own word tokens with a Zipf-like law (lower
ranks, the earlier BPE merges, are the frequent words), with numbers, punctuation, line breaks and some
non-ASCII words (accents, CJK, emoji). It is deterministic for a seed.

Every tool is run once untimed (they all keep caches between calls in a process), then the tools take
turns, one round each, for a number of rounds, and each tool's time is its median round. A machine's
speed drifts within minutes; tools timed in turn see the same drift, so their ratios stay steady.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tokenlens import _core
from tokenlens.api import count_file
from tokenlens.report import scan

MB = 1 << 20
COUNT = "tokenlens count"
COUNT_TEXTS = "tokenlens count (texts file)"
#: Sentences in the pool that records are made of (records repeat sentences, as templated data does).
POOL_SENTENCES = 40_000
NON_ASCII_WORDS = [
    "café",
    "naïve",
    "Zürich",
    "über",
    "日本語",
    "中文",
    "데이터",
    "données",
    "🙂",
    "👩‍💻",
    "ça",
    "Ελλάδα",
]


@dataclass(frozen=True)
class Result:
    tool: str
    threads: int
    seconds: float
    megabytes: float
    tokens: int
    #: The token total equals tokenlens's (None for tokenlens itself).
    exact: bool | None
    #: The tokenlens run (tool name, same threads) on the same input, whose rate the ratio divides.
    baseline: str | None = None
    note: str = ""

    @property
    def mb_per_s(self) -> float:
        return self.megabytes / self.seconds if self.seconds > 0 else float("inf")


def _words(encoding: str) -> tuple[list[str], list[float]]:
    """Word tokens (" word") of the encoding in rank order, with Zipf-like cumulative weights."""
    ranks = _core.Encoding(encoding).tiktoken_ranks()
    if ranks is None:
        raise ValueError(f"{encoding} is not a built-in OpenAI encoding")
    words = []
    for token, _ in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) > 2 and token[0] == 0x20 and token[1:].isalpha() and token.isascii():
            words.append(token[1:].decode())
    words = words[:30_000]
    cumulative, total = [], 0.0
    for rank in range(len(words)):
        total += 1.0 / (rank + 10)
        cumulative.append(total)
    return words, cumulative


def _sentence(rng: random.Random, words: list[str], cumulative: list[float]) -> str:
    n = rng.randint(4, 28)
    picked = rng.choices(words, cum_weights=cumulative, k=n)
    for i in range(n):
        roll = rng.random()
        if roll < 0.03:
            picked[i] = str(rng.randint(0, 10 ** rng.randint(1, 7)))
        elif roll < 0.05:
            picked[i] = rng.choice(NON_ASCII_WORDS)
        elif roll < 0.08:
            picked[i] += rng.choice([",", ";", ":", "'s", ")"])
    text = " ".join(picked)
    return text[0].upper() + text[1:] + rng.choice([".", ".", ".", "?", "!", ":\n", ".\n\n"])


def generate_corpus(path: Path, megabytes: int, encoding: str = "cl100k_base", seed: int = 0) -> Path:
    """Writes about `megabytes` MB of JSONL records to `path` (see the module's doc)."""
    rng = random.Random(seed)
    words, cumulative = _words(encoding)
    pool = [_sentence(rng, words, cumulative) for _ in range(POOL_SENTENCES)]

    def text(sentences: int) -> str:
        return " ".join(rng.choices(pool, k=sentences)).strip()

    def records() -> Iterator[dict[str, Any]]:
        while True:
            kind = rng.random()
            if kind < 0.6:
                messages = [{"role": "system", "content": text(1)}] if rng.random() < 0.3 else []
                for _ in range(rng.randint(1, 3)):
                    messages.append({"role": "user", "content": text(rng.randint(1, 8))})
                    messages.append({"role": "assistant", "content": text(rng.randint(1, 12))})
                yield {"messages": messages}
            elif kind < 0.8:
                yield {"prompt": text(rng.randint(1, 10)), "completion": " " + text(rng.randint(1, 4))}
            else:
                yield {"text": text(rng.randint(3, 40))}

    target, written = megabytes * MB, 0
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for record in records():
            line = json.dumps(record, ensure_ascii=False) + "\n"
            out.write(line)
            written += len(line.encode())
            if written >= target:
                break
    tmp.replace(path)
    return path


def record_texts(record: dict[str, Any]) -> list[str]:
    """The texts `tokenlens count` counts by default, for peers that take strings."""
    if "messages" in record:
        return [m["content"] for m in record["messages"] if isinstance(m.get("content"), str)]
    if "text" in record:
        return [record["text"]]
    return [record[k] for k in ("prompt", "completion") if k in record]


def _optional(module: str) -> Any:
    """A peer's module, or None when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def tiktoken_file(encoding: str, path: Path) -> Path:
    """The encoding's ranks in tiktoken's file format (base64 token, rank), written to `path`."""
    ranks = _core.Encoding(encoding).tiktoken_ranks() or {}
    by_rank = sorted(ranks.items(), key=lambda item: item[1])
    path.write_text("".join(f"{base64.b64encode(token).decode()} {rank}\n" for token, rank in by_rank))
    return path


def byte_level_chars() -> list[str]:
    """GPT-2's printable stand-in character of every byte (`bytes_to_unicode`), in which the tokens of a
    byte-level BPE tokenizer.json are written."""
    printable = {*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)}
    others = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(others)) for b in range(256)]


def tokenizer_json(encoding: str, pattern: str | None = None) -> dict[str, Any]:
    """A built-in encoding as a Hugging Face tokenizer.json (write it with `json.dumps`): a byte-level BPE
    of the encoding's vocabulary, its merges derived from the ranks as `transformers`' tiktoken converter
    does, after a `Split` on `pattern` (`ignore_merges`, as tiktoken: a piece that is a token is one).

    The default pattern is the encoding's own with `\\p{N}{1,3}+` written `\\p{N}{1,3}`: Onig, the regex
    engine of the `tokenizers` wheel, reads tiktoken's possessive `{1,3}+` as `({1,3})+` (any run of
    digits), while plain `{1,3}` matches the same pieces in every engine."""
    enc = _core.Encoding(encoding)
    ranks = enc.tiktoken_ranks() or {}
    assert enc.pattern is not None
    chars = byte_level_chars()

    def show(token: bytes) -> str:
        return "".join(chars[b] for b in token)

    # Every split of a token into two tokens of lower rank is a merge, in the merged token's rank order.
    merges = []
    for token, rank in ranks.items():
        for i in range(1, len(token)):
            left, right = ranks.get(token[:i]), ranks.get(token[i:])
            if left is not None and right is not None and max(left, right) < rank:
                merges.append((rank, left, right, token[:i], token[i:]))
    merges.sort()
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    split = {
        "type": "Split",
        "pattern": {"Regex": pattern or enc.pattern.replace("{1,3}+", "{1,3}")},
        "behavior": "Isolated",
        "invert": False,
    }
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [split, byte_level]},
        "post_processor": None,
        "decoder": {**byte_level, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": True,
            "vocab": {show(token): rank for token, rank in ranks.items()},
            "merges": [[show(a), show(b)] for *_, a, b in merges],
        },
    }


def _peers(encoding: str, texts: list[str]) -> dict[str, Callable[[int], int]]:
    """Count-the-texts functions (of a thread count) of the string-taking peers that are installed."""
    peers: dict[str, Callable[[int], int]] = {}
    tiktoken, toktok, quicktok = _optional("tiktoken"), _optional("toktok"), _optional("quicktok")
    if tiktoken is not None:
        ours = _core.Encoding(encoding)
        assert ours.pattern is not None and ours.tiktoken_ranks() is not None
        # Built from the ranks tokenlens embeds: tiktoken would download them otherwise.
        tk = tiktoken.Encoding(
            name=encoding,
            pat_str=ours.pattern,
            mergeable_ranks=ours.tiktoken_ranks() or {},
            special_tokens=ours.special_tokens,
        )
        peers["tiktoken encode_ordinary_batch"] = lambda threads: sum(
            len(ids) for ids in tk.encode_ordinary_batch(texts, num_threads=threads)
        )
    if toktok is not None:
        peers["toktok-rs batch_count"] = lambda threads: sum(
            toktok.batch_count(texts, encoding, threads=threads)
        )
    if quicktok is not None:
        qenc = quicktok.get_encoding(encoding)
        peers["quicktok-v1 count_batch"] = lambda threads: int(
            quicktok.count_batch(qenc, texts, threads=threads).sum()
        )
    return peers


@dataclass(frozen=True)
class Tool:
    name: str
    #: Counts the tokens of `input` with a number of threads.
    work: Callable[[int], int]
    input: Path
    #: The tokenlens run whose total this one's must equal (same threads).
    baseline: str | None
    note: str


def run(
    directory: Path,
    megabytes: int = 128,
    threads: tuple[int, ...] = (1, 2),
    encoding: str = "cl100k_base",
    seed: int = 0,
    with_peers: bool = True,
    progress: Callable[[str], None] = lambda _: None,
    rounds: int = 3,
) -> list[Result]:
    """Generates the corpus in `directory` (re-used when it is there) and measures everything on it."""
    path = directory / f"tokenlens-bench-{encoding}-{megabytes}mb-seed{seed}.jsonl"
    if not path.exists():
        progress(f"generating a {megabytes} MB corpus in {path}")
        generate_corpus(path, megabytes, encoding, seed)

    def tokenlens_count(input: Path) -> Callable[[int], int]:
        return lambda n: count_file(input, encoding, threads=n, keep_lines=False).total.tokens

    def tokenlens_scan(n: int) -> int:
        return int(scan(path, encoding=encoding, threads=n, keep_records=False).summary["tokens"]["total"])

    count_note = "reads and parses the JSONL itself"
    scan_note = "validation, chat accounting, duplicates, statistics; tokens as the cookbook counts them"
    tools = [
        Tool(COUNT, tokenlens_count(path), path, None, count_note),
        Tool("tokenlens scan", tokenlens_scan, path, None, scan_note),
    ]
    if with_peers:
        texts = [t for line in path.open(encoding="utf-8") for t in record_texts(json.loads(line))]
        parsed_note = "pre-parsed texts (its JSON parsing is not timed)"
        tools += [
            Tool(name, count, path, COUNT, parsed_note) for name, count in _peers(encoding, texts).items()
        ]
        gigatoken = _gigatoken(encoding, directory)
        if gigatoken is not None:
            # gigatoken reads one top-level string field: it gets the same texts as {"text": ...} lines.
            texts_path = path.with_name(path.stem + "-texts.jsonl")
            if not texts_path.exists():
                lines = (json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
                texts_path.write_text("".join(lines))
            note = "encode_files(JsonlFileSource) on the texts file; builds the ids"
            tools += [
                Tool(COUNT_TEXTS, tokenlens_count(texts_path), texts_path, COUNT, count_note),
                Tool("gigatoken", lambda n: gigatoken(texts_path, n), texts_path, COUNT_TEXTS, note),
            ]
    return measure(tools, threads, rounds, progress)


def measure(
    tools: list[Tool], threads: tuple[int, ...], rounds: int, progress: Callable[[str], None]
) -> list[Result]:
    """Times every tool at each thread count, by turns (see the module docs); checks each total against
    its baseline's in every round."""
    for tool in tools:
        progress(f"{tool.name}, warming up")
        tool.work(max(threads))
    seconds: dict[tuple[str, int], list[float]] = {}
    totals: dict[tuple[str, int], set[int]] = {}
    for n in threads:
        for turn in range(1, rounds + 1):
            for tool in tools:
                progress(f"{tool.name}, {n} thread(s), round {turn} of {rounds}")
                start = time.perf_counter()
                tokens = tool.work(n)
                seconds.setdefault((tool.name, n), []).append(time.perf_counter() - start)
                totals.setdefault((tool.name, n), set()).add(tokens)
    results = []
    for tool in tools:
        for n in threads:
            found = totals[(tool.name, n)]
            reference = totals.get((tool.baseline, n)) if tool.baseline else None
            exact = None if reference is None else found == reference and len(found) == 1
            time_taken = statistics.median(seconds[(tool.name, n)])
            megabytes = tool.input.stat().st_size / MB
            results.append(
                Result(tool.name, n, time_taken, megabytes, max(found), exact, tool.baseline, tool.note)
            )
    return results


def _gigatoken(encoding: str, directory: Path) -> Callable[[Path, int], int] | None:
    """gigatoken's file counter (of a path and a thread count), when it is installed (cl100k_base only)."""
    if encoding != "cl100k_base":
        return None
    ak, gigatoken = _optional("awkward"), _optional("gigatoken")
    if ak is None or gigatoken is None:
        return None
    vocab = tiktoken_file(encoding, directory / f"{encoding}.tiktoken")
    tokenizer = gigatoken.Tokenizer.from_tiktoken(vocab, pretokenizer="gpt4", special_tokens={})

    def count(path: Path, threads: int) -> int:
        source = gigatoken.JsonlFileSource([str(path)], field="text")
        # More than one thread: its rayon pool, sized by RAYON_NUM_THREADS (set by the CLI).
        return int(ak.sum(ak.num(tokenizer.encode_files(source, parallel=threads > 1))))

    return count


def table(results: list[Result]) -> list[str]:
    """Lines of a plain-text table; the ratio is tokenlens's rate over the peer's on the same input (above
    1: tokenlens is faster)."""
    rate = {(r.tool, r.threads): r.mb_per_s for r in results}

    def ratio(r: Result) -> str:
        # Peers only: tokenlens's own other runs check their totals against a baseline, not their speed.
        peer = not r.tool.startswith("tokenlens")
        base = rate.get((r.baseline, r.threads)) if r.baseline and peer else None
        return f"{base / r.mb_per_s:.2f}x" if base else ""

    header = ("tool", "threads", "MB", "MB/s", "tokens", "exact", "tokenlens/peer")
    rows = [
        (
            r.tool,
            str(r.threads),
            f"{r.megabytes:,.0f}",
            f"{r.mb_per_s:,.1f}",
            f"{r.tokens:,}",
            {True: "yes", False: "NO", None: "-"}[r.exact],
            ratio(r),
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]
    ]


def to_json(results: list[Result]) -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "results": [{**asdict(r), "mb_per_s": r.mb_per_s} for r in results],
    }
