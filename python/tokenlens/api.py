"""The typed Python API: thin wrappers that turn engine results into dataclasses and polars frames.

polars is imported where a frame is made, not with the package: it takes a few tenths of a second to
import, which every command line would pay (`tokenlens count` makes no frame).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Self, TypeAlias

from tokenlens import _core
from tokenlens._core import Encoding, Progress

if TYPE_CHECKING:
    import polars as pl

PathLike = str | os.PathLike[str]

#: Lines longer than this are reported as `line_too_long` instead of being read into memory.
DEFAULT_MAX_LINE_BYTES = 256 << 20


@dataclass(frozen=True)
class Totals:
    """Counts for one file or all of them; always `lines == records + blank + invalid`."""

    lines: int
    records: int
    blank: int
    invalid: int
    tokens: int
    text_bytes: int
    input_bytes: int
    problems_by_code: dict[str, int]

    @property
    def bytes_per_token(self) -> float | None:
        return self.text_bytes / self.tokens if self.tokens else None

    @classmethod
    def _from_core(cls, d: dict[str, Any]) -> Self:
        return cls(**{f: d[f] for f in cls.__dataclass_fields__})


@dataclass(frozen=True)
class FileTotals(Totals):
    name: str = ""
    compression: str | None = None
    #: Why the file could not be read to its end (missing, unreadable, truncated stream).
    error: str | None = None


@dataclass(frozen=True)
class LineProblem:
    file: str
    line: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.code}: {self.message}"


@dataclass(frozen=True)
class CountResult:
    encoding: str
    files: list[FileTotals]
    total: Totals
    #: The first problem lines (up to 10,000), in input order; `total.problems_by_code` counts all.
    problems: list[LineProblem]
    _lines_csv: bytes = field(repr=False)
    _names: list[str] = field(repr=False)

    @cached_property
    def lines(self) -> pl.DataFrame:
        """One row per line (none unless counted with `keep_lines`): file, line, offset, tokens,
        text_bytes, status, error."""
        import polars as pl

        schema: TableSchema = {"file": pl.UInt32}
        schema |= dict.fromkeys(("line", "offset", "tokens", "text_bytes"), pl.UInt64)
        schema |= {"status": pl.String, "error": pl.String}
        return _read_table(self._lines_csv, schema, self._names, ["file"])


def _encoding(encoding: str | Encoding) -> Encoding:
    return encoding if isinstance(encoding, Encoding) else Encoding(str(encoding))


def _paths(paths: PathLike | Sequence[PathLike], missing_ok: bool = True) -> list[str]:
    """The inputs as strings; unless `missing_ok`, a missing one raises `FileNotFoundError` up front."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    names = [os.fspath(p) for p in paths]
    for name in names:
        if not missing_ok and name != "-" and not os.path.exists(name):
            raise FileNotFoundError(2, "No such file", name)
    return names


#: Column names and types of a table that `_core` hands over as CSV.
TableSchema: TypeAlias = "dict[str, pl.DataType | type[pl.DataType]]"


def _read_table(
    csv: bytes, schema: TableSchema, names: list[str], file_columns: Sequence[str]
) -> pl.DataFrame:
    """A table that `_core` hands over as CSV, with the input's name for each file index in `file_columns`."""
    import polars as pl

    table = pl.read_csv(io.BytesIO(csv), schema=schema)
    files = pl.Series(names, dtype=pl.String)
    return table.with_columns(**{c: files.gather(table[c]) for c in file_columns})


def count_file(
    paths: PathLike | Sequence[PathLike],
    encoding: str | Encoding = "cl100k_base",
    field: str | None = None,
    *,
    special_tokens: bool = False,
    threads: int | None = None,
    keep_lines: bool = True,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    progress: Progress | None = None,
    missing_ok: bool = False,
    chunk_size: int | None = None,
) -> CountResult:
    """Counts the tokens of every line of one or more JSONL files (plain, .gz, .zst; `-` is stdin).

    `field` picks the text (a key or dotted path); by default chat records count their message
    contents, else `text`, else `prompt` and `completion`. A missing file raises `FileNotFoundError`
    unless `missing_ok`, in which case it is reported in its `FileTotals.error`.
    """
    names = _paths(paths, missing_ok)
    raw = _core.count_files(
        names,
        _encoding(encoding),
        field=field,
        special_tokens=special_tokens,
        threads=threads,
        keep_lines=keep_lines,
        max_line_bytes=max_line_bytes,
        progress=progress,
        chunk_size=chunk_size,
    )
    files = [FileTotals._from_core(f) for f in raw["files"]]
    problems = [LineProblem(names[f], line, code, msg) for f, line, code, msg in raw["problems"]]
    return CountResult(raw["encoding"], files, Totals._from_core(raw["total"]), problems, raw["lines"], names)
