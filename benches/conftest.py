"""Fixtures and the closing report of the benchmarks (run with `make bench`, not collected by `make test`)."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benches import corpus

#: The thread counts every tool is measured at.
THREADS = (1, 2)
# Peers built on rayon size their global pool once, from this variable: "2 threads" means 2 on any machine.
os.environ.setdefault("RAYON_NUM_THREADS", str(max(THREADS)))
#: Timed rounds per throughput benchmark (the best one counts); TOKENLENS_BENCH_ROUNDS overrides.
ROUNDS = int(os.environ.get("TOKENLENS_BENCH_ROUNDS", "1"))


@dataclass
class Measurement:
    tool: str
    threads: int
    input: Path
    seconds: float
    tokens: int | None
    #: The (tool, threads) whose rate the ratio divides; None: no comparable tokenlens run.
    baseline: tuple[str, int] | None
    exact: bool | None
    note: str = ""

    @property
    def megabytes(self) -> float:
        return self.input.stat().st_size / corpus.MB

    @property
    def mb_per_s(self) -> float:
        return self.megabytes / self.seconds


RESULTS: dict[tuple[str, int], Measurement] = {}
#: (peer, threads) -> (tokenlens seconds, peer seconds) of each pair of interleaved rounds on one input.
PAIRED: dict[tuple[str, int], list[tuple[float, float]]] = {}
#: The machine is shared: its load average (1, 5, 15 min) when the benchmarks started.
LOAD_AT_START = os.getloadavg()


def ratio(m: Measurement) -> float | None:
    """tokenlens's rate over the peer's (above 1: tokenlens is faster)."""
    base = RESULTS.get(m.baseline) if m.baseline else None
    return base.mb_per_s / m.mb_per_s if base else None


def timed(benchmark: BenchmarkFixture, fn: Any, warm: bool = False) -> tuple[Any, float]:
    """Runs `fn` ROUNDS times under pytest-benchmark: its last result and the best round's seconds. With
    `warm`, after one untimed round: tokenlens (a pool per tokenizer), toktok-rs and gigatoken keep their
    caches between calls in a process, so the count comparisons time each tool warm, whatever ROUNDS is."""
    result = benchmark.pedantic(fn, rounds=ROUNDS, iterations=1, warmup_rounds=int(warm))
    return result, benchmark.stats.stats.min


def record(benchmark: BenchmarkFixture, m: Measurement) -> None:
    RESULTS[(m.tool, m.threads)] = m
    r = ratio(m)
    benchmark.extra_info.update(
        tool=m.tool,
        threads=m.threads,
        input=m.input.name,
        input_mb=round(m.megabytes, 1),
        mb_per_s=round(m.mb_per_s, 2),
        tokens=m.tokens,
        exact=m.exact,
        tokenlens_over_peer=round(r, 3) if r else None,
        note=m.note,
    )


#: Peak RSS of `tokenlens count`: file -> (MB of input, peak MB, seconds).
MEMORY: dict[str, tuple[float, float, float]] = {}


def record_memory(benchmark: BenchmarkFixture, path: Path, peak_mb: float, seconds: float) -> None:
    megabytes = path.stat().st_size / corpus.MB
    MEMORY[path.name] = (megabytes, peak_mb, seconds)
    benchmark.extra_info.update(
        input=path.name,
        input_mb=round(megabytes, 1),
        peak_rss_mb=round(peak_mb, 1),
        mb_per_s=round(megabytes / seconds, 2),
    )


@pytest.fixture(scope="session")
def corpus_path() -> Path:
    if missing := corpus.missing_sources():
        pytest.skip(f"real data is absent ({', '.join(map(str, missing))}): it ships beside the repository")
    return corpus.corpus_file()


@pytest.fixture(scope="session")
def corpus_texts(corpus_path: Path) -> list[str]:
    return corpus.corpus_texts()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if MEMORY:
        terminalreporter.section("peak RSS of tokenlens count and dedup (GNU time)")
        for name, (megabytes, peak, seconds) in MEMORY.items():
            line = f"{name}: {megabytes:,.0f} MB in {seconds:.1f} s, peak RSS {peak:,.1f} MB"
            terminalreporter.write_line(line)
    if PAIRED:
        terminalreporter.section("tokenlens vs peers, rounds interleaved on one input (median of the pairs)")
        for (peer, threads), timings in PAIRED.items():
            ratios = sorted(theirs / ours for ours, theirs in timings)
            terminalreporter.write_line(
                f"tokenlens/{peer}, {threads} thread(s), {len(timings)} pairs: median "
                f"{statistics.median(ratios):.2f}x (each: {', '.join(f'{r:.2f}x' for r in ratios)})"
            )
    if not RESULTS:
        return
    header = ("tool", "threads", "input", "MB", "MB/s", "tokens", "exact", "tokenlens/peer")
    rows = []
    for m in RESULTS.values():
        r = ratio(m)
        rows.append(
            (
                m.tool,
                str(m.threads),
                m.input.name,
                f"{m.megabytes:,.0f}",
                f"{m.mb_per_s:,.2f}",
                f"{m.tokens:,}" if m.tokens is not None else "-",
                {True: "yes", False: "NO", None: "-"}[m.exact],
                f"{r:.2f}x" if r else "-",
            )
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    terminalreporter.section("tokenlens vs peers (ratio above 1: tokenlens is faster)")
    loads = [", ".join(f"{x:.2f}" for x in load) for load in (LOAD_AT_START, os.getloadavg())]
    terminalreporter.write_line(f"{os.cpu_count()} CPUs, load average at start {loads[0]}, at end {loads[1]}")
    for row in [header, *rows]:
        terminalreporter.write_line("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    notes = {m.tool: m.note for m in RESULTS.values() if m.note}
    for tool, note in notes.items():
        terminalreporter.write_line(f"{tool}: {note}")
