"""tokenlens: a fast, exact batch tokenizer and analyzer for JSONL datasets."""

from tokenlens._core import BUILD_PROFILE, BUILTIN_ENCODINGS, Encoding, __version__
from tokenlens.api import CountResult, FileTotals, LineProblem, Totals, count_file
from tokenlens.errors import InvalidInputError, TokenizerError, TokenlensError
from tokenlens.report import Report, scan

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
