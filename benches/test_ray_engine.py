"""The Ray engine's overhead: `scan` on a local Ray runtime against the local engine, same machine, same
file, same number of CPUs, with their summaries checked equal. The ratio is the local engine's rate over
the Ray engine's (above 1: the local engine is faster, by the cost of tasks, serialization and the merge).

The file is the first TOKENLENS_BENCH_RAY_MB megabytes (default 256) of the benchmark corpus, cut into
shards of TOKENLENS_BENCH_RAY_SHARD_MB (default 32). Starting the Ray runtime is timed apart.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from pytest_benchmark.fixture import BenchmarkFixture
from tokenlens import scan

from benches import corpus
from benches.conftest import THREADS, Measurement, record, timed

LOCAL = "tokenlens scan (local engine)"
RAY = "tokenlens scan --engine ray"
SHARD_BYTES = int(os.environ.get("TOKENLENS_BENCH_RAY_SHARD_MB", "32")) * corpus.MB
_summaries: dict[tuple[str, int], dict[str, Any]] = {}


@pytest.fixture(scope="module")
def ray_input(corpus_path: Path) -> Path:
    return corpus.corpus_file(min(int(os.environ.get("TOKENLENS_BENCH_RAY_MB", "256")), corpus.target_mb()))


@pytest.fixture(scope="module")
def ray_runtime() -> Iterator[Callable[[int | None], None]]:
    """`ray_runtime(cpus)` makes sure a local Ray runtime with `cpus` CPUs is up; `ray_runtime(None)` that
    none is, so that the local engine is never timed beside an idle Ray runtime (its processes took about
    a sixth of this 2-core machine from a two-thread scan). Starting the runtime is timed apart."""
    running: list[int] = []

    def ensure(cpus: int | None) -> None:
        if running and running[0] != cpus:
            ray.shutdown()
            running.clear()
        if cpus is not None and not running:
            start = time.perf_counter()
            ray.init(num_cpus=cpus, include_dashboard=False)
            print(f"\nlocal Ray runtime with {cpus} CPUs started in {time.perf_counter() - start:.1f} s")
            running.append(cpus)

    yield ensure
    if running:
        ray.shutdown()


@pytest.mark.parametrize("tool", [LOCAL, RAY])
@pytest.mark.parametrize("cpus", THREADS, ids=lambda n: f"{n}cpu")
def test_scan_throughput(
    benchmark: BenchmarkFixture,
    ray_input: Path,
    ray_runtime: Callable[[int | None], None],
    cpus: int,
    tool: str,
) -> None:
    ray_runtime(cpus if tool == RAY else None)
    if tool == LOCAL:
        options: dict[str, Any] = {"threads": cpus}
    else:
        # Single-threaded tasks, as many at a time as the runtime has CPUs.
        options = {"engine": "ray", "shard_bytes": SHARD_BYTES, "threads": 1}
    report, seconds = timed(benchmark, lambda: scan(ray_input, keep_records=False, **options))
    _summaries[(tool, cpus)] = report.summary
    baseline = None if tool == LOCAL else (LOCAL, cpus)
    shards = -(-ray_input.stat().st_size // SHARD_BYTES)
    note = (
        f"{shards} shards of {SHARD_BYTES // corpus.MB} MB; ratio = local rate / Ray rate"
        if tool == RAY
        else ""
    )
    tokens = report.summary["tokens"]["total"]
    record(benchmark, Measurement(tool, cpus, ray_input, seconds, tokens, baseline, None, note))
    if tool == RAY and (LOCAL, cpus) in _summaries:
        assert report.summary == _summaries[(LOCAL, cpus)]
