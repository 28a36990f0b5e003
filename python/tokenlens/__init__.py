"""tokenlens: a fast, exact batch tokenizer and analyzer for JSONL datasets."""

from typing import TYPE_CHECKING, Any

from tokenlens._core import BUILD_PROFILE, BUILTIN_ENCODINGS, Encoding, __version__
from tokenlens.api import CountResult, FileTotals, LineProblem, Totals, count_file
from tokenlens.errors import InvalidInputError, TokenizerError, TokenlensError

if TYPE_CHECKING:
    from tokenlens.report import Report, scan


def __getattr__(name: str) -> Any:
    """`Report` and `scan` load the report layer, and polars with it, on first use (see `api`)."""
    if name in ("Report", "scan"):
        from tokenlens import report

        return getattr(report, name)
    raise AttributeError(f"module 'tokenlens' has no attribute {name!r}")


__all__ = [
    "BUILD_PROFILE",
    "BUILTIN_ENCODINGS",
    "CountResult",
    "Encoding",
    "FileTotals",
    "InvalidInputError",
    "LineProblem",
    "Report",
    "TokenizerError",
    "TokenlensError",
    "Totals",
    "__version__",
    "count_file",
    "scan",
]
