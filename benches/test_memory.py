"""Peak memory of `tokenlens count` on the corpus and on the corpus repeated 4 times: it must stay small and
not grow with the file. Peak memory of `tokenlens dedup` on a 2 GiB file of distinct records (issue #4: within
1 GB). The 4x and 2x files take that much disk: TOKENLENS_BENCH_LARGE=0 skips them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benches import corpus
from benches.conftest import record_memory

TIME = Path("/usr/bin/time")
TOKENLENS = Path(sys.executable).with_name("tokenlens")
LIMIT_MB = 300
#: How much the peak may grow from the corpus to 4 times the corpus.
GROWTH = 1.2
REPEAT = 4
#: `dedup` of a 2 GiB file must stay within 1 GB (issue #4).
DEDUP_TIMES = 2
DEDUP_LIMIT_MB = 1000

_peaks: dict[Path, float] = {}


def peak_rss_mb(path: Path, *command: str) -> float:
    """Maximum resident set size of `tokenlens COMMAND PATH` (default: count), in MB, as GNU time reports
    it."""
    run = subprocess.run(
        [str(TIME), "-v", str(TOKENLENS), *(command or ["count"]), str(path), "--no-progress"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr)
    assert found, run.stderr[-2000:]
    _peaks[path] = int(found[1]) / 1024
    return _peaks[path]


def require_gnu_time() -> None:
    if not TIME.exists():
        pytest.skip(f"{TIME} is absent (Debian: apt-get install time)")


def input_file(times: int) -> Path:
    require_gnu_time()
    if times == 1:
        return corpus.corpus_file()
    large_file_allowed(times, corpus.repeated_path(times))
    return corpus.repeated_file(times)


def large_file_allowed(times: int, path: Path) -> None:
    """Skips unless TOKENLENS_BENCH_LARGE allows a file `times` the corpus and the disk has room for it."""
    if os.environ.get("TOKENLENS_BENCH_LARGE", "1") == "0":
        pytest.skip("TOKENLENS_BENCH_LARGE=0")
    need = times * corpus.corpus_file().stat().st_size
    if not path.exists() and shutil.disk_usage(corpus.BENCH_DATA).free < need + (1 << 30):
        pytest.skip(f"{need / corpus.MB:,.0f} MB of free disk needed for {path.name}")


@pytest.mark.parametrize("times", [1, REPEAT])
def test_peak_rss(benchmark: BenchmarkFixture, corpus_path: Path, times: int) -> None:
    path = input_file(times)
    peak = benchmark.pedantic(peak_rss_mb, args=(path,), rounds=1, iterations=1)
    seconds = benchmark.stats.stats.min
    record_memory(benchmark, path, peak, seconds)
    assert peak < LIMIT_MB, f"peak RSS {peak:.0f} MB on {path.name}"
    if times > 1:
        single = _peaks.get(corpus_path) or peak_rss_mb(corpus_path)
        benchmark.extra_info["growth_from_1x"] = round(peak / single, 3)
        assert peak <= GROWTH * single, f"peak RSS grows with the file: {single:.0f} MB -> {peak:.0f} MB"


def test_dedup_peak_rss_on_2gib(benchmark: BenchmarkFixture, corpus_path: Path, tmp_path: Path) -> None:
    """Every record distinct and a near duplicate of its ~40 copies: all are signed and nearly all are
    candidates, the most memory `dedup` needs for a file of this size."""
    require_gnu_time()
    large_file_allowed(DEDUP_TIMES, corpus.distinct_path(DEDUP_TIMES))
    path = corpus.distinct_file(DEDUP_TIMES)
    output = tmp_path / "deduplicated.jsonl"
    peak = benchmark.pedantic(peak_rss_mb, args=(path, "dedup", "-o", str(output)), rounds=1, iterations=1)
    record_memory(benchmark, path, peak, benchmark.stats.stats.min)
    assert peak < DEDUP_LIMIT_MB, f"peak RSS {peak:.0f} MB deduplicating {path.name}"
