"""`tokenlens bench`: the generated corpus and the side-by-side measurement (not its speed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenlens import bench, scan
from tokenlens.bench import Result, generate_corpus, table

from tests.test_count import run_cli


def test_generated_corpus_is_deterministic_valid_and_mixed(tmp_path: Path) -> None:
    first = generate_corpus(tmp_path / "a.jsonl", 1, seed=3)
    assert first.read_bytes() == generate_corpus(tmp_path / "b.jsonl", 1, seed=3).read_bytes()
    assert first.read_bytes() != generate_corpus(tmp_path / "c.jsonl", 1, seed=4).read_bytes()
    assert first.stat().st_size >= 1 << 20
    summary = scan(first, keep_records=False).summary
    assert summary["invalid"] == 0 and summary["blank"] == 0
    assert set(summary["formats"]) == {"chat", "completion", "text"}
    assert any(not line.isascii() for line in first.read_text(encoding="utf-8").splitlines())


def test_bench_command_measures_tokenlens_and_checks_the_peers_totals(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = run_cli("bench", "--mb", "1", "--threads", "2,1", "--dir", str(tmp_path), "--json", str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    results = json.loads(out.read_text())["results"]
    by_tool: dict[str, dict[int, dict[str, object]]] = {}
    for r in results:
        by_tool.setdefault(r["tool"], {})[r["threads"]] = r
    assert set(by_tool["tokenlens count"]) == {1, 2} and set(by_tool["tokenlens scan"]) == {1, 2}
    assert by_tool["tokenlens count"][1]["tokens"] == by_tool["tokenlens count"][2]["tokens"]
    # tiktoken is installed with the test dependencies; built from the embedded ranks, it must agree.
    assert [r["exact"] for r in by_tool["tiktoken encode_ordinary_batch"].values()] == [True, True]
    assert all(r["mb_per_s"] > 0 for r in results)
    assert "tokenlens/peer" in proc.stdout.decode()
    assert (tmp_path / "tokenlens-bench-cl100k_base-1mb-seed0.jsonl").exists()
    assert run_cli("bench", "--threads", "x").returncode == 2


def test_the_ratio_column_compares_tokenlens_with_peers_only() -> None:
    results = [
        Result("tokenlens count", 1, 1.0, 100, 10, None),
        # Checked against `count`'s total, but another tokenlens run, not a peer: no ratio.
        Result("tokenlens count (texts file)", 1, 2.0, 100, 10, True, "tokenlens count"),
        Result("gigatoken", 1, 5.0, 100, 10, True, "tokenlens count (texts file)"),
    ]
    header, count, texts, peer = table(results)
    assert header.endswith("tokenlens/peer")
    assert count.endswith("-") and texts.endswith("yes")
    assert peer.endswith("yes    2.50x")


def test_tools_take_turns_and_each_keeps_its_median_round(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock[0])
    calls: list[tuple[str, int]] = []

    def tool(name: str, seconds: list[float], totals: list[int], baseline: str | None) -> bench.Tool:
        rounds = iter(zip(seconds, totals, strict=True))

        def work(threads: int) -> int:
            calls.append((name, threads))
            took, total = next(rounds)
            clock[0] += took
            return total

        return bench.Tool(name, work, Path(__file__), baseline, "")

    ours = tool("tokenlens count", [9, 1, 5, 3], [7, 7, 7, 7], None)
    steady = tool("steady peer", [9, 2, 2, 8], [7, 7, 7, 7], "tokenlens count")
    wobbly = tool("wobbly peer", [9, 4, 4, 4], [7, 7, 8, 7], "tokenlens count")
    results = bench.measure([ours, steady, wobbly], (2,), 3, lambda _: None)
    warm_up = [("tokenlens count", 2), ("steady peer", 2), ("wobbly peer", 2)]
    assert calls == warm_up * 4
    assert [(r.tool, r.seconds, r.exact) for r in results] == [
        ("tokenlens count", 3, None),
        ("steady peer", 2, True),
        ("wobbly peer", 4, False),
    ]
