"""Determinism: random files of valid, hostile and blank lines, CRLF and a missing final newline give
the same `count_file` and `scan` results whatever the chunk size and thread count."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import tokenlens
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenlens.report import scan

HOSTILE = [
    b'{"text": "truncated',
    b"[1, 2]",
    b'"a string"',
    b'{"text": "bad \xff bytes"}',
    b'{"text": "raw \x00 NUL"}',
    b'{"text": "raw \x01 control"}',
    b"\xef\xbb\xbf" + b'{"text": "a byte-order mark"}',
    b"[" * 5000,
    b'{"text": "lone \\ud800"}',
    b'{"text": "x", "n": 1e999}',
    b'{"text": "a", "text": "b"}',
    b'{"messages": [{"role": "user", "content": "x", "content": "y"}]}',
    b'{"text": "a"} trailing',
    b'{"text": "a"}{"text": "b"}',
    b'{"x": 1}',
    b'{"messages": "not a list"}',
    b"\r",
]

valid_records = st.one_of(
    st.builds(lambda t: {"text": t}, st.text(max_size=40)),
    st.builds(
        lambda u, a: {"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}]},
        st.text(max_size=30),
        st.text(min_size=1, max_size=30),
    ),
    st.builds(lambda p, c: {"prompt": p, "completion": c}, st.text(max_size=20), st.text(max_size=20)),
)

lines = st.one_of(
    valid_records.map(lambda r: json.dumps(r, ensure_ascii=False).encode()),
    st.sampled_from(HOSTILE),
    st.sampled_from([b"", b"  ", b"\t \t"]),
    st.binary(max_size=30),
)


@st.composite
def files(draw: st.DrawFn) -> bytes:
    body = draw(st.lists(lines, max_size=40))
    out = b""
    for i, line in enumerate(body):
        last = i == len(body) - 1
        if last and draw(st.booleans()):
            out += line  # no final newline
        else:
            out += line + draw(st.sampled_from([b"\n", b"\r\n"]))
    return out


def count_view(result: tokenlens.CountResult) -> tuple[Any, ...]:
    return (result.total, result.files, result.problems, result.lines.to_dicts())


def scan_view(report: Any) -> tuple[Any, ...]:
    return (report.summary, report.problems, report.records.to_dicts())


@settings(max_examples=40, deadline=None)
@given(
    data=files(),
    chunk_size=st.integers(min_value=1, max_value=4096),
    threads=st.integers(min_value=1, max_value=4),
    max_line_bytes=st.sampled_from([64, 1 << 20]),
)
def test_results_do_not_depend_on_chunking_or_threads(
    data: bytes, chunk_size: int, threads: int, max_line_bytes: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "random.jsonl"
        path.write_bytes(data)
        n_lines = len(data.split(b"\n")) - (1 if data.endswith(b"\n") or not data else 0)

        reference = tokenlens.count_file(path, threads=1, max_line_bytes=max_line_bytes)
        other = tokenlens.count_file(
            path, threads=threads, chunk_size=chunk_size, max_line_bytes=max_line_bytes
        )
        assert count_view(other) == count_view(reference)
        t = reference.total
        assert t.lines == n_lines == t.records + t.blank + t.invalid
        assert reference.lines["line"].to_list() == list(range(1, n_lines + 1))

        scanned = scan(path, threads=1, max_line_bytes=max_line_bytes)
        other_scan = scan(path, threads=threads, chunk_size=chunk_size, max_line_bytes=max_line_bytes)
        assert scan_view(other_scan) == scan_view(scanned)
        s = scanned.summary
        assert s["lines"] == n_lines == s["valid"] + s["invalid"] + s["blank"]
        assert s["blank"] == t.blank
