"""Fixing the data: `dedup` and `filter` write the kept lines byte for byte, in input order,
atomically, with a manifest beside the output that lists every dropped line and why."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from tokenlens import _core
from tokenlens._core import Progress
from tokenlens.api import DEFAULT_MAX_LINE_BYTES, PathLike, _paths
from tokenlens.errors import InvalidInputError
from tokenlens.output import write_json_atomic
from tokenlens.report import Report, scan


@dataclass(frozen=True)
class Dropped:
    file: str
    line: int
    reason: str
    detail: str = ""


@dataclass
class FixResult:
    """What a fixing command did: lines read and written, and each dropped line with its reason."""

    output: str
    lines_read: int
    lines_written: int
    dropped: list[Dropped]
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def dropped_by_reason(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for d in self.dropped:
            counts[d.reason] = counts.get(d.reason, 0) + 1
        return counts

    def manifest(self, command: str) -> dict[str, Any]:
        return {
            "tokenlens_version": _core.__version__,
            "command": command,
            "output": self.output,
            "lines_read": self.lines_read,
            "lines_written": self.lines_written,
            "dropped_by_reason": self.dropped_by_reason,
            "dropped": [d.__dict__ for d in self.dropped],
            "summary": self.summary,
        }


def manifest_path(output: str) -> str:
    return f"{output}.manifest.json"


def _check_output(names: list[str], output: str, force: bool) -> None:
    if output == "-":
        raise InvalidInputError("the output must be a file")
    if "-" in names:
        raise InvalidInputError("fixing reads the input twice: give files, not stdin")
    for path in (output, manifest_path(output)):
        if os.path.exists(path) and not force:
            raise InvalidInputError(f"{path} exists; use --force to replace it")


def _write(
    names: list[str],
    dropped: list[Dropped],
    output: str,
    command: str,
    summary: dict[str, Any],
    force: bool,
    threads: int | None,
    max_line_bytes: int,
    progress: Progress | None,
) -> FixResult:
    index = {name: i for i, name in enumerate(names)}
    drop: list[list[int]] = [[] for _ in names]
    for d in dropped:
        drop[index[d.file]].append(d.line)
    read, written = _core.write_lines(
        names, drop, output, force=force, threads=threads, max_line_bytes=max_line_bytes, progress=progress
    )
    result = FixResult(output, read, written, sorted(dropped, key=lambda d: (index[d.file], d.line)), summary)
    write_json_atomic(manifest_path(output), result.manifest(command))
    return result


def dedup(
    paths: PathLike | Sequence[PathLike],
    output: str,
    *,
    field: str | None = None,
    exact_only: bool = False,
    keep: str = "first",
    ngram: int = 5,
    num_perm: int = 112,
    bands: int = 14,
    rows: int = 8,
    threshold: float = 0.8,
    clusters: str | None = None,
    force: bool = False,
    threads: int | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    progress: Progress | None = None,
    command: str = "tokenlens.dedup",
) -> FixResult:
    """Drops exact duplicates (and, unless `exact_only`, near duplicates that are not their cluster's
    representative) and writes the other lines to `output`. Lines that are not records are kept."""
    names = _paths(paths)
    _check_output(names, output, force)
    summary_text, columns = _core.dedup_files(
        names,
        field=field,
        ngram=ngram,
        num_perm=num_perm,
        bands=bands,
        rows=rows,
        threshold=threshold,
        keep=keep,
        threads=threads,
        max_line_bytes=max_line_bytes,
        progress=progress,
    )
    summary = json.loads(summary_text)
    records = pl.DataFrame(columns).with_columns(
        pl.col("file").map_elements(lambda i: names[i], return_dtype=pl.String),
        pl.col("exact_dup_of_file").map_elements(lambda i: names[i], return_dtype=pl.String),
    )
    dropped = []
    for r in records.iter_rows(named=True):
        if r["exact_dup_of"] is not None:
            detail = f"same text as {r['exact_dup_of_file']}:{r['exact_dup_of']}"
            dropped.append(Dropped(r["file"], r["line"], "exact_duplicate", detail))
        elif not exact_only and r["cluster"] is not None and not r["is_representative"]:
            dropped.append(
                Dropped(r["file"], r["line"], "near_duplicate", f"cluster {r['cluster']} ({keep} kept)")
            )
    if clusters is not None:
        from tokenlens.output import atomic_output

        with atomic_output(clusters, "wb") as f:
            records.filter(pl.col("cluster").is_not_null()).sort("cluster", "file", "line").write_parquet(f)
    return _write(names, dropped, output, command, summary, force, threads, max_line_bytes, progress)


def filter_lines(
    paths: PathLike | Sequence[PathLike],
    output: str,
    *,
    drop_invalid: bool = False,
    drop_too_long: bool = False,
    max_tokens: int | None = None,
    drop_duplicates: str | None = None,
    model: str | None = None,
    encoding: str | None = None,
    force: bool = False,
    threads: int | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    progress: Progress | None = None,
    command: str = "tokenlens.filter",
    **scan_options: Any,
) -> FixResult:
    """Writes the lines that pass the chosen filters to `output`: invalid lines (and blank ones),
    examples over the model's context limit or over `max_tokens`, exact or near duplicates."""
    if drop_duplicates not in (None, "exact", "near"):
        raise InvalidInputError("drop_duplicates is 'exact' or 'near'")
    names = _paths(paths)
    _check_output(names, output, force)
    report: Report = scan(
        names,
        model=model,
        encoding=encoding,
        threads=threads,
        max_line_bytes=max_line_bytes,
        progress=progress,
        keep_records=True,
        dedup=drop_duplicates is not None,
        **scan_options,
    )
    limit = report.summary["cost"]["limit"]
    if drop_too_long and limit is None:
        raise InvalidInputError("--drop-too-long needs a context limit: give --model or --context-limit")
    dropped = []
    for r in report.records.iter_rows(named=True):
        reason, detail = None, ""
        if drop_invalid and r["status"] in ("invalid", "blank"):
            reason, detail = r["status"], ",".join(r["errors"])
        elif drop_too_long and r["tokens"] is not None and r["tokens"] > limit:
            reason, detail = "too_long", f"{r['tokens']} tokens > limit {limit}"
        elif max_tokens is not None and r["tokens"] is not None and r["tokens"] > max_tokens:
            reason, detail = "max_tokens", f"{r['tokens']} tokens > {max_tokens}"
        elif drop_duplicates and r["exact_dup_of"] is not None:
            reason, detail = "exact_duplicate", f"same text as {r['exact_dup_of_file']}:{r['exact_dup_of']}"
        elif drop_duplicates == "near" and r["cluster"] is not None and not r["is_representative"]:
            reason, detail = "near_duplicate", f"cluster {r['cluster']}"
        if reason:
            dropped.append(Dropped(r["file"], r["line"], reason, detail))
    return _write(names, dropped, output, command, report.summary, force, threads, max_line_bytes, progress)
