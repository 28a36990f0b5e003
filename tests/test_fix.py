"""Fixing commands: `filter`, `dedup`, `chunk` and `split` write what they should, byte for byte,
atomically, and never touch their input."""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import tokenlens
import tokenlens.cli
import tokenlens.output
import zstandard
from click.testing import CliRunner
from tokenlens.fix import chunk, dedup, filter_lines, split
from tokenlens.report import scan

from tests.conftest import interruptible, reference_encoding, shared_file
from tests.test_count import CLI, run_cli

WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
]


def words(seed: int, n: int) -> str:
    return " ".join(
        WORDS[(seed * 7 + i * (seed % 5 + 1)) % len(WORDS)] + str((seed * 31 + i) % 97) for i in range(n)
    )


def raw_lines(data: bytes) -> list[bytes]:
    """The lines of `data`, each with its terminator (the last one may have none)."""
    return data.splitlines(keepends=True)


def with_newline(line: bytes) -> bytes:
    return line if line.endswith(b"\n") else line + b"\n"


def read_output(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    return data


def no_temp_files(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


# --- filter ---------------------------------------------------------------------------------------


def test_filter_keeps_exactly_the_right_lines_byte_for_byte(tmp_path: Path) -> None:
    lines = [
        b'{"text": "short one"}\r\n',
        b'{"text": "broken\n',
        b"\n",
        b'{"text": "' + b"long " * 50 + b'"}\n',
        b'{"text": "caf\xc3\xa9 \xe6\xb7\xb1\xe5\xba\xa6"}\r\n',
        b"[1, 2]\n",
        b'{"text": "no newline at the end"}',
    ]
    data = b"".join(lines)
    src = tmp_path / "in.jsonl"
    src.write_bytes(data)
    out = tmp_path / "out.jsonl"
    result = filter_lines(src, str(out), drop_invalid=True, max_tokens=20)
    expected = [lines[0], lines[4], lines[6]]
    assert out.read_bytes() == b"".join(with_newline(x) for x in expected)
    assert src.read_bytes() == data
    reasons = dict(result.dropped.select("line", "reason").iter_rows())
    assert reasons == {2: "invalid", 3: "blank", 4: "max_tokens", 6: "invalid"}
    manifest = json.loads(Path(f"{out}.manifest.json").read_text())
    assert manifest["lines_read"] == 7 and manifest["lines_written"] == 3
    assert [d["line"] for d in manifest["dropped"]] == [2, 3, 4, 6]
    # The token limit agrees with tiktoken.
    ref = reference_encoding("cl100k_base")
    assert len(ref.encode_ordinary(json.loads(lines[3])["text"])) > 20
    # An existing output is refused without --force, and the input is never the output.
    with pytest.raises(tokenlens.InvalidInputError):
        filter_lines(src, str(out), drop_invalid=True)
    filter_lines(src, str(out), force=True)
    assert out.read_bytes() == with_newline(data)
    with pytest.raises(tokenlens.TokenlensError):
        filter_lines(src, str(src), force=True)
    # A dropped line is named by file and line, which would not tell two copies of one input apart.
    with pytest.raises(tokenlens.InvalidInputError, match="more than once"):
        dedup([src, src], str(tmp_path / "twice.jsonl"))
    assert src.read_bytes() == data
    assert no_temp_files(tmp_path)


@pytest.mark.parametrize("ext", [".jsonl.gz", ".jsonl.zst"])
def test_filter_compresses_by_extension(tmp_path: Path, ext: str) -> None:
    data = b"".join(json.dumps({"text": f"record {i}"}).encode() + b"\n" for i in range(100)) + b"oops\n"
    src = tmp_path / "in.jsonl"
    src.write_bytes(data)
    out = tmp_path / f"out{ext}"
    filter_lines(src, str(out), drop_invalid=True)
    assert read_output(out) == data[: -len(b"oops\n")]


# --- dedup ----------------------------------------------------------------------------------------


def dedup_input(tmp_path: Path) -> tuple[Path, list[bytes]]:
    base = words(1, 200)
    lines = [
        json.dumps({"text": base}).encode() + b"\n",  # 1: first of a near cluster
        json.dumps({"text": words(2, 60)}).encode() + b"\r\n",  # 2
        json.dumps({"text": base}).encode() + b"\n",  # 3: exact duplicate of 1
        json.dumps({"text": base + " zulu"}).encode() + b"\n",  # 4: near duplicate of 1, longest
        b"not json\n",  # 5: kept
        json.dumps({"text": words(3, 60)}).encode(),  # 6: unique, no newline
    ]
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(lines))
    return src, lines


def test_dedup_exact_near_and_keep(tmp_path: Path) -> None:
    src, lines = dedup_input(tmp_path)
    before = src.read_bytes()

    exact = dedup(src, str(tmp_path / "exact.jsonl"), exact_only=True)
    assert exact.dropped.select("line", "reason").rows() == [(3, "exact_duplicate")]
    # No near-duplicate search at all (not merely its results left unused).
    assert exact.summary["near_dup_clusters"] == 0
    assert (tmp_path / "exact.jsonl").read_bytes() == b"".join(
        with_newline(x) for i, x in enumerate(lines) if i != 2
    )

    clusters = tmp_path / "clusters.parquet"
    near = dedup(src, str(tmp_path / "near.jsonl"), clusters=str(clusters))
    assert near.dropped.select("line", "reason").rows() == [(3, "exact_duplicate"), (4, "near_duplicate")]
    assert (tmp_path / "near.jsonl").read_bytes() == b"".join(with_newline(lines[i]) for i in (0, 1, 4, 5))
    table = pl.read_parquet(clusters)
    assert sorted(table["line"].to_list()) == [1, 3, 4]
    assert table["cluster"].n_unique() == 1

    longest = dedup(src, str(tmp_path / "longest.jsonl"), keep="longest")
    assert longest.dropped.select("line", "reason").rows() == [(1, "near_duplicate"), (3, "exact_duplicate")]
    assert (tmp_path / "longest.jsonl").read_bytes() == b"".join(with_newline(lines[i]) for i in (1, 3, 4, 5))
    assert src.read_bytes() == before
    assert no_temp_files(tmp_path)


def test_dedup_across_files_names_the_right_file(tmp_path: Path) -> None:
    first = [json.dumps({"text": words(i, 40)}) for i in range(3)]
    second = [json.dumps({"text": words(7, 40)}), first[1], json.dumps({"text": words(7, 40)})]
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("\n".join(first) + "\n", encoding="utf-8")
    b.write_text("\n".join(second) + "\n", encoding="utf-8")
    result = dedup([b, a], str(tmp_path / "out.jsonl"))
    # Input order: b's lines first, so a's copy of b's line 2 is the duplicate.
    assert result.dropped.select("file", "line").rows() == [(str(b), 3), (str(a), 2)]
    assert result.dropped["detail"].to_list() == [f"same text as {b}:1", f"same text as {b}:2"]
    kept = [second[0], second[1], first[0], first[2]]
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8") == "".join(line + "\n" for line in kept)


def test_dedup_without_duplicates_copies_everything(tmp_path: Path) -> None:
    data = b"".join(json.dumps({"text": words(i, 40)}).encode() + b"\r\n" for i in range(50))
    src = tmp_path / "in.jsonl"
    src.write_bytes(data)
    result = dedup(src, str(tmp_path / "out.jsonl"))
    assert result.dropped.is_empty()
    assert (tmp_path / "out.jsonl").read_bytes() == data


# --- chunk ----------------------------------------------------------------------------------------


def check_pieces(out: bytes, originals: dict[int, dict[str, Any]], max_tokens: int, encoding: str) -> int:
    """Every piece fits (tokenlens and tiktoken agree) and the pieces rebuild each record."""
    ours = tokenlens.Encoding(encoding)
    ref = reference_encoding(encoding)
    rebuilt: dict[int, list[str]] = {}
    pieces = 0
    for line in out.splitlines():
        if b'"chunk_index"' not in line:
            continue
        record = json.loads(line)
        if "chunk_index" not in record:
            continue
        pieces += 1
        text = record["text"]
        assert ours.count(text) <= max_tokens
        assert len(ref.encode_ordinary(text)) <= max_tokens
        parts = rebuilt.setdefault(record["source_line"], [])
        assert record["chunk_index"] == len(parts)
        parts.append(text)
        original = originals[record["source_line"]]
        assert {
            k: v
            for k, v in record.items()
            if k not in ("text", "source_file", "source_line", "chunk_index", "chunk_count")
        } == {k: v for k, v in original.items() if k != "text"}
    for line, parts in rebuilt.items():
        assert "".join(parts) == originals[line]["text"]
    return pieces


@pytest.mark.parametrize("max_tokens", [4, 7, 50])
def test_chunk_pieces_fit_and_reassemble(tmp_path: Path, max_tokens: int) -> None:
    texts = [
        "short",
        "The quick brown fox jumps over the lazy dog. " * 30,
        "深度学习是机器学习的分支。自然语言处理很有趣\uff01" * 20,
        "emoji 👩‍👩‍👧‍👦🎉🇫🇷 mixed with text ✨ and more 😀😀😀 " * 15,
        " \t\n\r\n   spaces  " * 40,
        "<|endoftext|> is ordinary text here " * 10,
    ]
    records = [{"id": i, "text": t, "meta": {"k": [i]}} for i, t in enumerate(texts)]
    lines = [json.dumps(r, ensure_ascii=i % 2 == 0).encode() + b"\n" for i, r in enumerate(records)]
    lines.insert(3, b"\n")
    lines.insert(5, b'{"no_text": 1}\r\n')
    lines.append(b'{"text": 5}')
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(lines))
    out = tmp_path / "out.jsonl"
    result = chunk(src, str(out), max_tokens=max_tokens)
    data = out.read_bytes()
    originals = {i + 1: json.loads(x) for i, x in enumerate(lines) if x.strip().startswith(b'{"id')}
    pieces = check_pieces(data, originals, max_tokens, "cl100k_base")
    assert pieces == sum(c.pieces for c in result.changed) == result.summary["pieces"]
    # Lines that fit or cannot be chunked are copied byte for byte.
    for line in lines:
        record = json.loads(line) if line.strip() else None
        fits = (
            record is None
            or not isinstance(record.get("text"), str)
            or tokenlens.Encoding("cl100k_base").count(record["text"]) <= max_tokens
        )
        assert (with_newline(line) in data) == fits or line == b"\n"
    assert [(u.line, u.reason) for u in result.not_chunked] == [
        (4, "blank_line"),
        (6, "field_missing"),
        (9, "field_not_string"),
    ]
    manifest = json.loads(Path(f"{out}.manifest.json").read_text())
    assert manifest["changed"] == [c.__dict__ for c in result.changed]
    assert manifest["dropped"] == []
    assert result.lines_written == len(data.splitlines())
    assert no_temp_files(tmp_path)


def test_chunk_overlap_and_options(tmp_path: Path) -> None:
    text = " ".join(f"w{i} x" for i in range(300))  # every piece occurs once in the text
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"body": text}) + "\n")
    out = tmp_path / "out.jsonl.zst"
    chunk(src, str(out), max_tokens=16, overlap=4, field="body", encoding="o200k_base")
    pieces = [json.loads(x) for x in read_output(out).splitlines()]
    assert len(pieces) > 1 and all(p["chunk_count"] == len(pieces) for p in pieces)
    ours = tokenlens.Encoding("o200k_base")
    previous = position = 0
    for i, p in enumerate(pieces):
        body = p["body"]
        assert ours.count(body) <= 16
        start = text.index(body)
        assert start == 0 if i == 0 else previous < start < position  # overlaps the previous piece
        previous, position = start, start + len(body)
    assert position == len(text)
    with pytest.raises(tokenlens.InvalidInputError):
        chunk(src, str(out), max_tokens=16)  # exists
    with pytest.raises(tokenlens.InvalidInputError):
        chunk(src, str(tmp_path / "x.jsonl"), max_tokens=4, overlap=4)
    proc = run_cli("chunk", str(src), "-o", str(src), "--max-tokens", "8", "--field", "body", "--force")
    assert proc.returncode == 2 and b"also an input" in proc.stderr
    proc = run_cli("chunk", str(src), "-o", str(tmp_path / "c.jsonl.gz"), "--max-tokens", "8", "-f", "body")
    assert proc.returncode == 0, proc.stderr
    assert "".join(json.loads(x)["body"] for x in read_output(tmp_path / "c.jsonl.gz").splitlines()) == text


def test_chunk_real_data(tmp_path: Path) -> None:
    data = read_output(shared_file("t0_dev_text.jsonl.zst"))
    lines = data.splitlines(keepends=True)[:3000]
    src = tmp_path / "t0.jsonl"
    src.write_bytes(b"".join(lines))
    out = tmp_path / "out.jsonl"
    result = chunk(src, str(out), max_tokens=48, threads=4)
    assert result.changed, "some records are longer than 48 tokens"
    originals = {i + 1: json.loads(x) for i, x in enumerate(lines)}
    pieces = check_pieces(out.read_bytes(), originals, 48, "cl100k_base")
    assert pieces == result.summary["pieces"]
    changed = {c.line for c in result.changed}
    kept = [with_newline(x) for i, x in enumerate(lines) if i + 1 not in changed]
    assert [x for x in out.read_bytes().splitlines(keepends=True) if b'"chunk_index"' not in x] == kept


# --- split ----------------------------------------------------------------------------------------


def t0_subset(tmp_path: Path, name: str, n: int) -> Path:
    data = read_output(shared_file(name))
    src = tmp_path / name.removesuffix(".zst")
    src.write_bytes(b"".join(data.splitlines(keepends=True)[:n]))
    return src


def sides(result: Any) -> tuple[set[int], set[int]]:
    val = set(result.train.dropped.filter(pl.col("reason") == "validation")["line"])
    train = set(result.validation.dropped.filter(pl.col("reason") == "train")["line"])
    return train, val


def test_split_is_reproducible_and_byte_for_byte(tmp_path: Path) -> None:
    src = t0_subset(tmp_path, "t0_dev_completion.jsonl.zst", 4000)
    lines = src.read_bytes().splitlines(keepends=True)
    runs = []
    for i, (seed, threads) in enumerate([(7, 1), (7, 8), (8, 4)]):
        train, val = tmp_path / f"train{i}.jsonl", tmp_path / f"val{i}.jsonl.gz"
        result = split(src, str(train), str(val), val_fraction=0.2, seed=seed, threads=threads)
        t, v = sides(result)
        assert not t & v and len(t) + len(v) == result.summary["records"]
        assert train.read_bytes() == b"".join(with_newline(lines[i - 1]) for i in sorted(t))
        assert read_output(val) == b"".join(with_newline(lines[i - 1]) for i in sorted(v))
        assert abs(len(v) - 0.2 * len(lines)) <= 1
        runs.append((train.read_bytes(), read_output(val)))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    with pytest.raises(tokenlens.InvalidInputError):
        split(src, str(tmp_path / "train0.jsonl"), str(tmp_path / "v.jsonl"))


def test_split_keeps_clusters_together_and_strata(tmp_path: Path) -> None:
    src = t0_subset(tmp_path, "t0_dev_completion.jsonl.zst", 21246)
    result = split(
        src,
        str(tmp_path / "train.jsonl"),
        str(tmp_path / "val.jsonl"),
        val_fraction=0.1,
        stratify=True,
        seed=3,
    )
    train, val = sides(result)
    records = scan(src, keep_records=True).records
    assert result.summary["clusters_kept_together"] > 100
    # No near-duplicate cluster nor exact-duplicate pair crosses the split.
    for (cluster,), group in records.filter(pl.col("cluster").is_not_null()).group_by("cluster"):
        members = set(group["line"].to_list())
        assert members <= train or members <= val, f"cluster {cluster} crosses the split"
    for line, first in (
        records.filter(pl.col("exact_dup_of").is_not_null()).select("line", "exact_dup_of").iter_rows()
    ):
        assert (line in val) == (first in val)
    # Each label's validation share is within one example of its exact share, except labels whose
    # records sit in duplicate groups too big to fit (the summary lists those).
    grouped = records.filter(pl.col("cluster").is_not_null() | pl.col("exact_dup_of").is_not_null())
    grouped_labels = set(grouped["label"].to_list())
    counts: dict[str | None, list[int]] = {}
    for line, label in records.filter(pl.col("status") == "valid").select("line", "label").iter_rows():
        c = counts.setdefault(label, [0, 0])
        c[0] += 1
        c[1] += line in val
    missed = result.summary["targets_missed"]
    for label, (n, v) in counts.items():
        assert (abs(v - 0.1 * n) >= 1) == (str(label) in missed)
        assert str(label) not in missed or label in grouped_labels
    assert len(missed) < 0.05 * len(counts)
    assert abs(len(val) - 0.1 * len(train | val)) <= 1


def test_split_stratified_within_one_example_per_label(tmp_path: Path) -> None:
    labels = ["a"] * 53 + ["b"] * 27 + ["c"] * 9 + ["d"] * 1 + ["e"] * 15
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(json.dumps({"prompt": words(i, 40), "completion": x}) + "\n" for i, x in enumerate(labels))
    )
    for seed in range(5):
        result = split(
            src,
            str(tmp_path / f"t{seed}.jsonl"),
            str(tmp_path / f"v{seed}.jsonl"),
            val_fraction=0.2,
            stratify=True,
            seed=seed,
        )
        _, val = sides(result)
        assert len(val) == round(0.2 * len(labels))
        for label in set(labels):
            n = labels.count(label)
            v = sum(1 for line in val if labels[line - 1] == label)
            assert abs(v - 0.2 * n) < 1, (seed, label, v, n)
        assert result.summary["targets_missed"] == {}


def test_split_cli_lists_invalid_lines(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    good = [json.dumps({"text": words(i, 30)}) for i in range(40)]
    src.write_text("\n".join([*good[:10], "{broken", "", *good[10:]]) + "\n")
    train, val = tmp_path / "train.jsonl", tmp_path / "val.jsonl"
    proc = run_cli("split", str(src), "--train", str(train), "--val", str(val), "--val-fraction", "0.25")
    assert proc.returncode == 0, proc.stderr
    for path in (train, val):
        manifest = json.loads(Path(f"{path}.manifest.json").read_text())
        assert {
            d["line"]: d["reason"] for d in manifest["dropped"] if d["reason"] in ("invalid", "blank")
        } == {
            11: "invalid",
            12: "blank",
        }
    assert len(val.read_bytes().splitlines()) == 10 and len(train.read_bytes().splitlines()) == 30
    proc = run_cli("split", str(src), "--train", str(train), "--val", str(val))
    assert proc.returncode == 2 and b"--force" in proc.stderr


# --- Ctrl-C ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["dedup", "filter"])
def test_ctrl_c_leaves_no_partial_output(tmp_path: Path, command: str) -> None:
    src = tmp_path / "big.jsonl"
    with src.open("w") as f:
        for i in range(600):
            f.write(
                "".join(
                    json.dumps({"text": f"{i} {j} " + "lorem ipsum dolor sit amet " * 30}) + "\n"
                    for j in range(100)
                )
            )
    out = tmp_path / "out.jsonl.gz"  # compressing makes the write phase long enough to catch
    args = ["--drop-invalid"] if command == "filter" else ["--exact-only"]
    proc = interruptible(
        [*CLI, command, str(src), "-o", str(out), "--threads", "4", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # Interrupt while the output is being written, if it can be caught then, else at once.
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]:
            break
        time.sleep(0.002)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert not out.exists() and not Path(f"{out}.manifest.json").exists()
    assert no_temp_files(tmp_path), os.listdir(tmp_path)


def test_an_interruption_before_the_manifest_leaves_no_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The moment a Ctrl-C once fell in: the engine had written the output, the manifest was not
    # written yet. Neither may appear.
    src, _ = dedup_input(tmp_path)

    def interrupted(*_: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(tokenlens.fix.FixResult, "write_manifest", interrupted)
    for run in (
        lambda out: filter_lines(src, str(out), drop_invalid=True),
        lambda out: dedup(src, str(out), clusters=str(tmp_path / "clusters.parquet")),
        lambda out: chunk(src, str(out), max_tokens=8),
    ):
        with pytest.raises(KeyboardInterrupt):
            run(tmp_path / "out.jsonl.gz")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_an_interruption_after_the_commit_says_the_outputs_were_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Ctrl-C in the moment between the renames and the command's return: the outputs are in place
    # and whole, and the message must not say that nothing was written.
    src, _ = dedup_input(tmp_path)
    commit = tokenlens.output.OutputSet.commit

    def commit_then_interrupt(self: tokenlens.output.OutputSet) -> None:
        commit(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(tokenlens.output.OutputSet, "commit", commit_then_interrupt)
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(tokenlens.cli.main, ["filter", str(src), "-o", str(out), "--drop-invalid"])
    assert result.exit_code == 130, result.output
    assert "interrupted; the outputs were written whole" in result.stderr
    assert out.exists() and json.loads(Path(f"{out}.manifest.json").read_text())["lines_written"] > 0


def test_split_writes_both_sides_or_neither(tmp_path: Path) -> None:
    src, _ = dedup_input(tmp_path)
    train, validation = tmp_path / "train.jsonl", tmp_path / "missing" / "val.jsonl"
    with pytest.raises(OSError, match="missing"):
        split(src, str(train), str(validation), val_fraction=0.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_no_output_may_be_an_input_another_output_or_an_existing_file(tmp_path: Path) -> None:
    src, _ = dedup_input(tmp_path)
    before = src.read_bytes()
    # An input named as the manifest of the output `in.jsonl` would be.
    input_as_manifest = tmp_path / "in.jsonl.manifest.json"
    input_as_manifest.write_bytes(before)
    out, clusters = tmp_path / "out.jsonl", tmp_path / "clusters.parquet"
    refused: list[tuple[Callable[[], object], str]] = [
        (lambda: dedup(src, str(out), clusters=str(src), force=True), "also an input"),
        (lambda: dedup(src, str(out), clusters=str(out)), "two outputs"),
        (lambda: dedup(src, str(out), clusters=f"{out}.manifest.json"), "two outputs"),
        (lambda: dedup(src, str(out), clusters="-"), "not stdout"),
        (lambda: filter_lines(input_as_manifest, str(src), force=True), "also an input"),
        (lambda: split(src, str(out), str(out)), "two outputs"),
    ]
    for run, message in refused:
        with pytest.raises(tokenlens.InvalidInputError, match=message):
            run()
    clusters.write_bytes(b"mine")
    with pytest.raises(tokenlens.InvalidInputError, match="exists"):
        dedup(src, str(out), clusters=str(clusters))
    assert clusters.read_bytes() == b"mine"
    assert src.read_bytes() == before and input_as_manifest.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "clusters.parquet",
        "in.jsonl",
        input_as_manifest.name,
    ]
