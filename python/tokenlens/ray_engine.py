"""The Ray engine: `tokenlens scan --engine ray`, `tokenlens.scan(..., engine="ray")` and
`scan_dataset(ray_dataset)`. Installed with `pip install tokenlens[ray]`; the rest of tokenlens never
imports this module (nor Ray) unless asked to.

How a run goes:
1. The input becomes shards: each plain file is cut at line starts into byte ranges of about
   `shard_bytes`; a compressed file is one shard (it can only be read from its start); a Ray Dataset
   gives one shard per block, written as JSON lines into the object store.
2. One Ray task per shard runs the same Rust kernel as the local engine (`_core.scan_shard`) and
   returns its state: tallies, the first problems of each code, every record's token figures, labels
   and duplicate band keys. Nothing is estimated, so the merge is exact.
3. The driver merges the states in input order (`_core.scan_merge`), renumbering lines, and groups
   the band keys of all shards into candidate groups. Candidate pairs are verified with their full
   MinHash signatures, which the shards holding them compute in a second round of tasks; union-find
   then makes the same clusters as the local engine.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ray

from tokenlens import _core
from tokenlens._core import Encoding, Progress
from tokenlens.errors import InvalidInputError

if TYPE_CHECKING:
    from ray.data import Dataset

    from tokenlens.report import Report

__all__ = ["DEFAULT_SHARD_BYTES", "scan_dataset"]

#: Plain files are cut into shards of about this size (at line starts).
DEFAULT_SHARD_BYTES = 128 << 20

#: What `_core.scan_files` returns, and so do the functions here.
ScanResult = tuple[str, list[tuple[int, int, str, str, str]], bytes]


@dataclass(frozen=True)
class Shard:
    """A piece of the input: file number `file` of the run, named `path`; bytes `byte_range` of it, or
    all of it; for a dataset block, `data` holds its JSON lines in the object store."""

    file: int
    path: str
    size: int
    byte_range: tuple[int, int] | None = None
    data: ray.ObjectRef | None = None  # type: ignore[type-arg]


def scan_dataset(dataset: Dataset, *, name: str = "dataset", **options: Any) -> Report:
    """Audits a Ray Dataset of records (one row per record, e.g. from `ray.data.read_json` or
    `read_parquet`) on the cluster it lives on; `options` are those of `tokenlens.scan`. Lines are the
    rows, numbered from 1 in the dataset's order, under the file name `name`.

    Arrow has no "missing" apart from null, so keys whose value is null are left out of each record
    (a chat message without `name` stays without it)."""
    from tokenlens.report import scan

    return scan((), dataset=dataset, dataset_name=name, engine="ray", **options)


def connect(address: str | None) -> None:
    """Joins the Ray cluster at `address` ("auto", "ray://HOST:PORT"), or starts a local Ray runtime
    when it is None; does nothing when this process is already connected."""
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING}
    if address is None:
        kwargs["include_dashboard"] = False
    ray.init(address=address, **kwargs)


def file_shards(names: Sequence[str], shard_bytes: int) -> list[Shard]:
    """The shards of the input files, in input order."""
    if shard_bytes < 1:
        raise InvalidInputError("the shard size must be at least 1 byte")
    shards = []
    for file, name in enumerate(names):
        if name == "-":
            raise InvalidInputError("the Ray engine reads files, not stdin")
        size = os.path.getsize(name)
        ranges = _core.line_ranges(name, max(1, -(-size // shard_bytes)))
        if ranges is None:
            shards.append(Shard(file, name, size))
        else:
            shards.extend(Shard(file, name, end - start, (start, end)) for start, end in ranges)
    return shards


def scan_files_on_ray(
    names: list[str],
    encodings: list[Encoding],
    config: dict[str, Any],
    *,
    ray_address: str | None = None,
    shard_bytes: int | None = None,
    threads: int | None = None,
    max_line_bytes: int,
    progress: Progress | None = None,
    chunk_size: int | None = None,
) -> ScanResult:
    """`_core.scan_files` on a Ray cluster. `threads` is the number of CPUs (and threads) of each task."""
    shards = file_shards(names, shard_bytes or DEFAULT_SHARD_BYTES)
    connect(ray_address)
    return _run(names, shards, encodings, config, threads or 1, max_line_bytes, chunk_size, progress)


def scan_dataset_on_ray(
    dataset: Dataset,
    name: str,
    encodings: list[Encoding],
    config: dict[str, Any],
    *,
    ray_address: str | None = None,
    threads: int | None = None,
    max_line_bytes: int,
    progress: Progress | None = None,
    chunk_size: int | None = None,
) -> ScanResult:
    """`_core.scan_files` over the records of a Ray Dataset, one shard per block."""
    if config.get("sample") is not None:
        raise InvalidInputError("sampling needs files (a line's place in its file); scan the whole dataset")
    connect(ray_address)
    # Each block: (its JSON lines, their size), two objects in the object store.
    blocks: list[Any] = [_block_to_jsonl.remote(block) for block in dataset.to_arrow_refs()]
    sizes = ray.get([size for _, size in blocks])
    shards = [Shard(0, name, size, data=data) for (data, _), size in zip(blocks, sizes, strict=True)]
    return _run([name], shards, encodings, config, threads or 1, max_line_bytes, chunk_size, progress)


def _run(
    names: list[str],
    shards: list[Shard],
    encodings: list[Encoding],
    config: dict[str, Any],
    task_cpus: int,
    max_line_bytes: int,
    chunk_size: int | None,
    progress: Progress | None,
) -> ScanResult:
    scan_config = _core.ScanConfig(**config)  # checked here before any task starts
    specs = [e.name for e in encodings]
    scan_task = _scan_shard.options(num_cpus=task_cpus)
    run: dict[str, Any] = {"threads": task_cpus, "max_line_bytes": max_line_bytes}
    scan_run = {**run, "chunk_size": chunk_size}
    refs = [scan_task.remote(s.path, s.file, s.byte_range, s.data, specs, config, **scan_run) for s in shards]
    shown = progress or Progress()
    shown.add(bytes_total=sum(s.size for s in shards))

    def scanned(i: int, result: tuple[int, bytes]) -> None:
        shown.add(bytes_read=shards[i].size, lines_done=result[0])

    states = _gather(refs, scanned)

    minhash_task = _shard_minhashes.options(num_cpus=task_cpus)

    def fetch(requests: list[tuple[int, list[int]]]) -> list[list[tuple[int, bytes]]]:
        wanted = [
            minhash_task.remote(shards[i].path, shards[i].byte_range, shards[i].data, config, lines, **run)
            for i, lines in requests
        ]
        return _gather(wanted)

    merged = [(shard.file, state) for shard, (_, state) in zip(shards, states, strict=True)]
    del states
    return _core.scan_merge(names, encodings, scan_config, merged, fetch)


def _gather(
    refs: list[ray.ObjectRef],  # type: ignore[type-arg]
    done: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """The results of `refs`, in their order; `done(index, result)` is called as each one arrives.
    On an error or Ctrl-C the tasks still running are cancelled."""
    results: list[Any] = [None] * len(refs)
    index = {ref: i for i, ref in enumerate(refs)}
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            more, pending = ray.wait(pending, num_returns=len(pending), timeout=0) if pending else ([], [])
            for ref in ready + more:
                i = index[ref]
                results[i] = ray.get(ref)
                if done is not None:
                    done(i, results[i])
    except BaseException:
        for ref in pending:
            ray.cancel(ref)
        raise
    return results


@ray.remote
def _scan_shard(
    path: str,
    file: int,
    byte_range: tuple[int, int] | None,
    data: bytes | None,
    specs: list[str],
    config: dict[str, Any],
    **run: Any,
) -> tuple[int, bytes]:
    # The built-in vocabularies are embedded; a tokenizer.json path must be readable on the worker.
    encodings = [Encoding(spec) for spec in specs]
    scan_config = _core.ScanConfig(**config)
    return _core.scan_shard(path, file, encodings, scan_config, byte_range=byte_range, data=data, **run)


@ray.remote
def _shard_minhashes(
    path: str,
    byte_range: tuple[int, int] | None,
    data: bytes | None,
    config: dict[str, Any],
    lines: list[int],
    **run: Any,
) -> list[tuple[int, bytes]]:
    scan_config = _core.ScanConfig(**config)
    return _core.shard_minhashes(path, scan_config, lines, byte_range=byte_range, data=data, **run)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


@ray.remote(num_returns=2)
def _block_to_jsonl(block: Any) -> tuple[bytes, int]:
    """A block's rows (a pyarrow Table) as JSON lines, and their size."""
    lines = []
    for i, row in enumerate(block.to_pylist()):
        try:
            lines.append(json.dumps(_without_nulls(row), ensure_ascii=False))
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"row {i + 1} of a block cannot be written as JSON: {e}") from e
    data = "".join(line + "\n" for line in lines).encode()
    return data, len(data)
