"""`tokenlens bench`: the generated corpus and the side-by-side measurement (not its speed)."""

from __future__ import annotations

import json
from pathlib import Path

from tokenlens import scan
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
