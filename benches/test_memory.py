"""Peak memory of `tokenlens count` on the corpus and on the corpus repeated 4 times: it must stay small and
not grow with the file. The 4x file takes 4x the corpus's size on disk: TOKENLENS_BENCH_LARGE=0 skips it."""

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

_peaks: dict[Path, float] = {}


def peak_rss_mb(path: Path) -> float:
    """Maximum resident set size of `tokenlens count PATH`, in MB, as GNU time reports it."""
    command = [str(TIME), "-v", str(TOKENLENS), "count", str(path), "--no-progress"]
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr)
    assert found, run.stderr[-2000:]
    _peaks[path] = int(found[1]) / 1024
    return _peaks[path]


def input_file(times: int) -> Path:
    if not TIME.exists():
        pytest.skip(f"{TIME} is absent (Debian: apt-get install time)")
    if times == 1:
        return corpus.corpus_file()
    if os.environ.get("TOKENLENS_BENCH_LARGE", "1") == "0":
        pytest.skip("TOKENLENS_BENCH_LARGE=0")
    need = times * corpus.corpus_file().stat().st_size
    if not corpus.repeated_path(times).exists() and shutil.disk_usage(corpus.BENCH_DATA).free < need + (
        1 << 30
    ):
        pytest.skip(f"{need / corpus.MB:,.0f} MB of free disk needed for the {times}x file")
    return corpus.repeated_file(times)


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
