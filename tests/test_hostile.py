"""A hostile corpus, generated here: every kind of broken line gets its verdict and code, reading goes
on, every line is accounted for, and the valid lines are counted exactly (against tiktoken)."""

from __future__ import annotations

import functools
import gzip
import json
import os
from pathlib import Path
from typing import Any

import pytest
import tokenlens
import zstandard
from tokenlens.report import scan

from tests.conftest import reference_encoding
from tests.test_count import run_cli

BOM = b"\xef\xbb\xbf"
DEEP = 200_000
BIG_WORDS = 6_000_000  # a line of about 30 MB

# (line without its terminator, count verdict: "ok", "blank" or an error code); scan agrees, with
# "valid" for "ok". The first line carries the file's byte-order mark.
CORPUS: list[tuple[bytes, str]] = [
    (BOM + b'{"text": "starts with a byte-order mark"}', "ok"),
    (b'{"text": "truncated', "invalid_json"),
    (b'{"text": ', "invalid_json"),
    (b"[1, 2, 3]", "data_type"),
    (b'"a string"', "data_type"),
    (b"42", "data_type"),
    (b"null", "data_type"),
    (b'{"text": "bad \xff\xfe bytes"}', "invalid_utf8"),
    (b'{"text": "overlong \xc0\xaf"}', "invalid_utf8"),
    (b'{"text": "a raw \x01 control"}', "invalid_json"),
    (b'{"text": "a raw \x00 NUL"}', "invalid_json"),
    (b'{"text": "a raw \x1b escape"}', "invalid_json"),
    (b"\x00\x00\x00\x00", "invalid_json"),
    (b'{"text": "escaped NUL \\u0000 and \\u001b are fine"}', "ok"),
    (b'{"text": "U+FEFF inside a string \xef\xbb\xbf is text"}', "ok"),
    (b"[" * DEEP, "invalid_json"),
    (b'{"a":' * DEEP + b"1" + b"}" * DEEP, "invalid_json"),
    (b'{"text": "x", "deep": ' + b"[" * DEEP + b"]" * DEEP + b"}", "invalid_json"),
    (b'{"text": "lone \\ud800 surrogate"}', "invalid_json"),
    (b'{"text": "lone \\udfff surrogate"}', "invalid_json"),
    (b'{"text": "pair \\ud83d\\ude00 is fine"}', "ok"),
    (b'{"text": "big", "n": 1e999}', "invalid_json"),
    (b'{"text": "big", "n": -1e400}', "invalid_json"),
    (b'{"text": "huge integers are floats", "n": 123456789012345678901234567890}', "ok"),
    (b'{"text": "first", "text": "second"}', "duplicate_key"),
    (b'{"text": "x", "meta": {"k": 1, "\\u006b": 2}}', "duplicate_key"),
    (b'{"messages": [{"role": "user", "role": "user", "content": "hi"}]}', "duplicate_key"),
    (b'{"text": "trailing"} garbage', "invalid_json"),
    (b'{"text": "trailing"},', "invalid_json"),
    (b'{"text": "one"}{"text": "two"}', "invalid_json"),
    (b'{"text": "one"} {"text": "two"}', "invalid_json"),
    (b'{"text": "cr"}\r{"text": "inside"}', "invalid_json"),
    (b"", "blank"),
    (b"   \t  ", "blank"),
    (b"\t", "blank"),
    (b'  {"text": "padded with whitespace"}  ', "ok"),
    (b'{"text": "' + b"word " * BIG_WORDS + b'"}', "ok"),
    (b'{"text": "' + b"x" * (1 << 20), "invalid_json"),
    (b'{"text": "the last line, without a newline"}', "ok"),
]

# Each line's message must say what is wrong, in words.
MESSAGES = {
    b'{"text": "truncated': "truncated",
    b"[" * DEEP: "nested too deeply",
    b'{"text": "first", "text": "second"}': 'duplicate key "text"',
    b'{"messages": [{"role": "user", "role": "user", "content": "hi"}]}': "messages[0]",
    b'{"text": "one"}{"text": "two"}': "two records on one line",
    b'{"text": "lone \\ud800 surrogate"}': "surrogate",
    b'{"text": "big", "n": 1e999}': "number out of range",
    b'{"text": "a raw \x00 NUL"}': "control character",
    b'{"text": "bad \xff\xfe bytes"}': "invalid UTF-8",
}


def terminator(i: int) -> bytes:
    return b"\r\n" if i % 3 == 1 else b"\n"


@functools.cache
def corpus_bytes() -> bytes:
    lines = [line + terminator(i) for i, (line, _) in enumerate(CORPUS)]
    lines[-1] = CORPUS[-1][0]  # no final newline
    return b"".join(lines)


@functools.cache
def expected_tokens() -> int:
    enc = reference_encoding("cl100k_base")
    total = 0
    for line, verdict in CORPUS:
        if verdict == "ok":
            total += len(enc.encode_ordinary(json.loads(line.removeprefix(BOM))["text"]))
    return total


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "hostile.jsonl"
    path.write_bytes(corpus_bytes())
    return path


def test_the_corpus_covers_every_case() -> None:
    data = corpus_bytes()
    assert len(data) > 30_000_000
    assert not data.endswith(b"\n")
    assert b"\r\n" in data
    verdicts = {v for _, v in CORPUS}
    assert verdicts == {
        "ok",
        "blank",
        "invalid_json",
        "invalid_utf8",
        "data_type",
        "duplicate_key",
    }


def check_count(result: tokenlens.CountResult, *, too_long: int | None = None) -> None:
    expected = [v for _, v in CORPUS]
    if too_long is not None:
        expected[too_long] = "line_too_long"
    lines = result.lines
    assert lines["line"].to_list() == list(range(1, len(CORPUS) + 1))
    got = [s if s != "invalid" else e for s, e in zip(lines["status"], lines["error"], strict=True)]
    assert got == expected
    t = result.total
    assert t.lines == len(CORPUS) == t.records + t.blank + t.invalid
    assert t.blank == expected.count("blank")
    assert t.records == expected.count("ok")
    codes: dict[str, int] = {}
    for v in expected:
        if v not in ("ok", "blank"):
            codes[v] = codes.get(v, 0) + 1
    assert t.problems_by_code == codes
    assert result.files[0].error is None
    if too_long is None:
        assert t.tokens == expected_tokens()
        assert t.input_bytes == len(corpus_bytes())
    messages = {p.line: p.message for p in result.problems}
    for i, (line, _) in enumerate(CORPUS, start=1):
        if line in MESSAGES:
            assert MESSAGES[line] in messages[i], messages[i]


@pytest.mark.parametrize(("threads", "chunk_size"), [(1, None), (4, 4096), (3, 1)])
def test_count_gives_every_line_its_verdict(hostile: Path, threads: int, chunk_size: int | None) -> None:
    check_count(tokenlens.count_file(hostile, threads=threads, chunk_size=chunk_size))


def test_max_line_bytes_turns_the_huge_line_into_an_error(hostile: Path) -> None:
    huge = next(i for i, (line, _) in enumerate(CORPUS) if len(line) > 20_000_000)
    result = tokenlens.count_file(hostile, max_line_bytes=8 << 20, threads=2)
    check_count(result, too_long=huge)
    problem = next(p for p in result.problems if p.code == "line_too_long")
    assert problem.line == huge + 1
    assert "--max-line-bytes" in problem.message


def scan_verdicts(report: Any) -> list[str]:
    out = []
    for status, errors in zip(report.records["status"], report.records["errors"], strict=True):
        out.append(status if status in ("valid", "blank") else errors[0])
    return out


def test_scan_gives_every_line_its_verdict(hostile: Path) -> None:
    report = scan(hostile, threads=3, chunk_size=65536)
    expected = ["valid" if v == "ok" else v for _, v in CORPUS]
    assert scan_verdicts(report) == expected
    s = report.summary
    assert s["lines"] == len(CORPUS) == s["valid"] + s["invalid"] + s["blank"]
    keys = ("lines", "valid", "invalid", "blank")
    assert [s["files"][0][k] for k in keys] == [s[k] for k in keys]
    assert s["tokens"]["total"] == expected_tokens()


def test_cli_count_and_validate_survive_the_corpus(hostile: Path) -> None:
    proc = run_cli("count", str(hostile), "--json", "-", "--no-progress")
    assert proc.returncode == 1, proc.stderr
    total = json.loads(proc.stdout)["total"]
    assert total["lines"] == len(CORPUS) == total["records"] + total["blank"] + total["invalid"]
    assert total["tokens"] == expected_tokens()
    assert total["problems_by_code"]["duplicate_key"] == 3

    proc = run_cli("count", str(hostile), "--max-line-bytes", str(8 << 20), "--json", "-", "--no-progress")
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["total"]["problems_by_code"]["line_too_long"] == 1

    proc = run_cli("validate", str(hostile), "--no-progress")
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout.decode()
    for i, (_, verdict) in enumerate(CORPUS, start=1):
        if verdict not in ("ok", "blank"):
            assert f"hostile.jsonl:{i}: error: {verdict}:" in out


# Broken files: what was read is kept, the end is reported, the other files are still read.


def rows(n: int) -> bytes:
    return b"".join(json.dumps({"text": f"row {i}"}).encode() + b"\n" for i in range(n))


ROWS = rows(30_000)


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x55]) + data[at + 1 :]


def broken_files(tmp_path: Path) -> dict[str, Path]:
    gz = gzip.compress(ROWS)
    zst = zstandard.ZstdCompressor(write_checksum=True).compress(ROWS)
    files = {
        "truncated.gz": gz[: len(gz) // 2],
        "truncated.zst": zst[: len(zst) // 2],
        "flipped.gz": flip(gz, len(gz) // 2),
        "flipped.zst": flip(zst, len(zst) // 2),
        "gz-tail-cut.gz": gz[:-4],
        "zst-tail-cut.zst": zst[:-3],
    }
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / name
        paths[name].write_bytes(data)
    return paths


def test_broken_streams_keep_what_was_read(tmp_path: Path) -> None:
    paths = broken_files(tmp_path)
    good = tmp_path / "good.jsonl"
    good.write_bytes(rows(1000))
    names = [*paths.values(), tmp_path / "missing.jsonl", tmp_path, good]
    result = tokenlens.count_file(names, missing_ok=True, threads=2)
    by_name = {Path(f.name).name: f for f in result.files}
    for name in paths:
        f = by_name[name]
        kind = "gzip" if name.endswith(".gz") else "zstd"
        assert f.error is not None and f"truncated or corrupt {kind} stream" in f.error, (name, f.error)
        assert f.lines == f.records + f.blank + f.invalid
        if name.startswith("truncated"):
            # Everything before the cut is kept; at most the line cut in two is invalid.
            assert f.records > 1000 and f.invalid <= 1, (name, f.problems_by_code)
        # A flipped bit may decode to garbage lines before the checksum catches it (gzip checks
        # at the end of a member): those lines are reported, never silently counted as valid.
    assert "missing.jsonl" in by_name["missing.jsonl"].error
    assert by_name[tmp_path.name].error is not None  # a directory
    assert (by_name["good.jsonl"].records, by_name["good.jsonl"].error) == (1000, None)
    assert result.total.lines == sum(f.lines for f in result.files)

    report = scan(names, missing_ok=True, threads=2)
    files = report.summary["files"]
    assert [f["error"] is not None for f in files] == [True] * (len(paths) + 2) + [False]
    for f in files:
        assert f["lines"] == f["valid"] + f["invalid"] + f["blank"]
    assert report.summary["lines"] == sum(f["lines"] for f in files)


def test_broken_stream_names_the_last_good_line(tmp_path: Path) -> None:
    for name, path in broken_files(tmp_path).items():
        f = tokenlens.count_file(path).files[0]
        assert f.error is not None
        last_good = int(f.error.split("after line ")[1].split(":")[0])
        assert last_good <= f.lines <= last_good + 1, (name, f.error, f.lines)


def test_a_byte_order_mark_on_a_later_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "concatenated.jsonl"
    path.write_bytes(BOM + b'{"text": "a"}\n' + BOM + b'{"text": "b"}\n' + BOM + b"\n")
    result = tokenlens.count_file(path)
    assert result.lines["error"].to_list() == [None, "unexpected_bom", "unexpected_bom"]
    assert scan_verdicts(scan(path)) == ["valid", "unexpected_bom", "unexpected_bom"]


def test_unreadable_file_is_named_and_the_others_are_read(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_bytes(rows(100))
    if os.geteuid() == 0:
        # root reads any file whatever its mode; /proc/self/mem opens but fails to read at offset 0.
        unreadable = Path("/proc/self/mem")
    else:
        unreadable = tmp_path / "secret.jsonl"
        unreadable.write_bytes(rows(10))
        unreadable.chmod(0)
    result = tokenlens.count_file([unreadable, good])
    assert result.files[0].error
    assert (result.files[1].records, result.files[1].error) == (100, None)
    proc = run_cli("count", str(unreadable), str(good), "--no-progress")
    assert proc.returncode == 2
    assert str(unreadable).encode() in proc.stdout + proc.stderr
    assert b"good.jsonl" in proc.stdout


def test_cli_reports_broken_streams_and_reads_on(tmp_path: Path) -> None:
    paths = broken_files(tmp_path)
    good = tmp_path / "good.jsonl"
    good.write_bytes(rows(10))
    proc = run_cli("count", *map(str, paths.values()), str(good), "--json", "-", "--no-progress")
    assert proc.returncode == 2
    files = json.loads(proc.stdout)["files"]
    assert [f["error"] is None for f in files] == [False] * len(paths) + [True]
    assert files[-1]["records"] == 10
