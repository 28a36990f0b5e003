"""Type stubs for the native extension (checked by `mypy.stubtest`)."""

from collections.abc import Callable
from typing import Any, Final, Literal, final

__all__ = [
    "BUILD_PROFILE",
    "BUILTIN_ENCODINGS",
    "Encoding",
    "InvalidInputError",
    "PendingOutput",
    "Progress",
    "ScanConfig",
    "TokenizerError",
    "TokenlensError",
    "__version__",
    "chunk_files",
    "count_files",
    "dedup_files",
    "line_ranges",
    "read_lines",
    "scan_files",
    "scan_merge",
    "scan_shard",
    "shard_minhashes",
    "write_lines",
]
__version__: Final[str]
BUILD_PROFILE: Final[str]
BUILTIN_ENCODINGS: Final[list[str]]

class TokenlensError(Exception): ...
class InvalidInputError(TokenlensError): ...
class TokenizerError(TokenlensError): ...

@final
class Encoding:
    def __new__(cls, spec: str) -> Encoding: ...
    @property
    def name(self) -> str: ...
    @property
    def pattern(self) -> str | None: ...
    @property
    def special_tokens(self) -> dict[str, int]: ...
    # "tiktoken" (a built-in encoding), "native-bpe" (a byte-level BPE tokenizer.json on tokenlens's
    # own path; texts holding an added token go to the `tokenizers` crate) or "tokenizers" (any other).
    @property
    def backend(self) -> Literal["tiktoken", "native-bpe", "tokenizers"]: ...
    # Why a tokenizer.json is not on the native path; None when it is, and for built-in encodings.
    @property
    def fallback_reason(self) -> str | None: ...
    def count(self, text: str, special_tokens: bool = False) -> int: ...
    def count_batch(
        self, texts: list[str], special_tokens: bool = False, threads: int | None = None
    ) -> list[int]: ...
    def encode(self, text: str, special_tokens: bool = False) -> list[int]: ...
    def decode_bytes(self, ids: list[int]) -> bytes: ...
    def tiktoken_ranks(self) -> dict[bytes, int] | None: ...

@final
class Progress:
    def __new__(cls) -> Progress: ...
    @property
    def bytes_read(self) -> int: ...
    @property
    def bytes_total(self) -> int: ...
    @property
    def lines_done(self) -> int: ...
    def add(self, *, bytes_read: int = 0, lines_done: int = 0, bytes_total: int = 0) -> None: ...

@final
class PendingOutput:
    temp: Final[str]
    dest: Final[str]
    def __new__(cls, dest: str) -> PendingOutput: ...
    def commit(self) -> None: ...
    def discard(self) -> None: ...

@final
class ScanConfig:
    def __new__(
        cls,
        *,
        format: str | None = None,
        text_field: str = "text",
        label_field: str | None = None,
        context_limit: int | None = None,
        price_per_mtok: float | None = None,
        epochs: int | None = None,
        pack_length: int | None = None,
        sample: float | None = None,
        seed: int = 0,
        keep_records: bool = False,
        dedup: bool = True,
        ngram: int = 5,
        num_perm: int = 112,
        bands: int = 14,
        rows: int = 8,
        threshold: float = 0.8,
        keep: str = "first",
    ) -> ScanConfig: ...

def count_files(
    paths: list[str],
    encoding: Encoding,
    field: str | None = None,
    special_tokens: bool = False,
    threads: int | None = None,
    keep_lines: bool = True,
    max_line_bytes: int = ...,
    progress: Progress | None = None,
    chunk_size: int | None = None,
) -> dict[str, Any]: ...
def scan_files(
    paths: list[str],
    encodings: list[Encoding],
    config: ScanConfig,
    *,
    threads: int | None = None,
    max_line_bytes: int = ...,
    progress: Progress | None = None,
    chunk_size: int | None = None,
) -> tuple[str, list[tuple[int, int, str, str, str]], bytes]: ...
def scan_shard(
    path: str,
    file: int,
    encodings: list[Encoding],
    config: ScanConfig,
    *,
    byte_range: tuple[int, int] | None = None,
    data: bytes | None = None,
    threads: int | None = None,
    max_line_bytes: int = ...,
    chunk_size: int | None = None,
) -> tuple[int, bytes]: ...
def shard_minhashes(
    path: str,
    config: ScanConfig,
    lines: list[int],
    *,
    byte_range: tuple[int, int] | None = None,
    data: bytes | None = None,
    threads: int | None = None,
    max_line_bytes: int = ...,
) -> list[tuple[int, bytes]]: ...
def scan_merge(
    names: list[str],
    encodings: list[Encoding],
    config: ScanConfig,
    shards: list[tuple[int, bytes]],
    fetch: Callable[[list[tuple[int, list[int]]]], list[list[tuple[int, bytes]]]],
) -> tuple[str, list[tuple[int, int, str, str, str]], bytes]: ...
def line_ranges(path: str, parts: int) -> list[tuple[int, int]] | None: ...
def write_lines(
    paths: list[str],
    drop: list[list[int]],
    dest: str,
    *,
    force: bool = False,
    threads: int | None = None,
    max_line_bytes: int = ...,
    progress: Progress | None = None,
) -> tuple[int, int, PendingOutput]: ...
def dedup_files(
    paths: list[str],
    *,
    field: str | None = None,
    exact_only: bool = False,
    ngram: int = 5,
    num_perm: int = 112,
    bands: int = 14,
    rows: int = 8,
    threshold: float = 0.8,
    keep: str = "first",
    threads: int | None = None,
    max_line_bytes: int = ...,
    progress: Progress | None = None,
) -> tuple[str, bytes]: ...
def chunk_files(
    paths: list[str],
    dest: str,
    encoding: Encoding,
    *,
    max_tokens: int,
    overlap: int = 0,
    field: str = "text",
    force: bool = False,
    threads: int | None = None,
    max_line_bytes: int = ...,
    progress: Progress | None = None,
    chunk_size: int | None = None,
) -> tuple[str, list[tuple[int, int, int]], list[tuple[int, int, str]], PendingOutput]: ...
def read_lines(
    paths: list[str], wanted: list[list[int]], *, threads: int | None = None
) -> list[tuple[int, int, bytes]]: ...
