"""`scan`, `validate` and `cost`: the audit of fine-tuning data, end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import tokenlens
from tokenlens.report import scan

from tests.conftest import SAMPLE, reference_encoding, shared_file
from tests.test_count import run_cli, write_jsonl

SUMMARY_KEYS = {
    "records",
    "valid",
    "invalid",
    "blank",
    "errors",
    "warnings",
    "tokens",
    "trainable_tokens",
    "messages",
    "too_long",
    "labels",
    "cost",
}


def cookbook_num_tokens(messages: list[dict[str, Any]], encoding: str) -> int:
    """`num_tokens_from_messages` of OpenAI's data-prep cookbook, where it is right."""
    enc = reference_encoding(encoding)
    n = 0
    for message in messages:
        n += 3
        for key, value in message.items():
            n += len(enc.encode_ordinary(value))
            if key == "name":
                n += 1
    return n + 3


TOY = [
    {
        "messages": [
            {"role": "system", "content": "You are a factual chatbot that is also sarcastic."},
            {"role": "user", "content": "What's the capital of France?"},
            {"role": "assistant", "content": "Paris, as if everyone doesn't know that already."},
        ]
    },
    {
        "messages": [
            {"role": "system", "content": "You are a factual chatbot that is also sarcastic."},
            {"role": "user", "content": "Who wrote 'Romeo and Juliet'?", "name": "student"},
            {"role": "assistant", "content": "Oh, just some guy named William Shakespeare."},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "How far is the Moon from Earth?"},
            {"role": "assistant", "content": "Around 384,400 kilometers. Give or take."},
        ]
    },
]


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
def test_chat_tokens_reproduce_the_cookbook(tmp_path: Path, encoding: str) -> None:
    path = write_jsonl(tmp_path / "toy.jsonl", TOY)
    report = scan(path, encoding=encoding)
    expected = [cookbook_num_tokens(r["messages"], encoding) for r in TOY]
    assert report.records["tokens"].to_list() == expected
    # The cookbook prints its 10th/90th percentiles as "p5/p95"; these are the true nearest-rank ones.
    assert report.summary["tokens"]["p5"] == sorted(expected)[0]
    assert report.summary["tokens"]["p95"] == sorted(expected)[-1]


def test_summary_has_the_documented_keys_and_accounts_for_every_line() -> None:
    report = scan(SAMPLE, model="gpt-4o-mini", context_limit=2048)
    s = report.summary
    assert set(s) >= SUMMARY_KEYS
    assert s["lines"] == s["valid"] + s["invalid"] + s["blank"]
    assert set(s["tokens"]) >= {"total", "min", "max", "mean", "p5", "p50", "p95"}
    assert set(s["cost"]) >= {
        "model",
        "encoding",
        "limit",
        "epochs",
        "billed_tokens_per_epoch",
        "charged_tokens",
        "usd",
    }
    assert s["cost"]["encoding"] == "o200k_base"
    assert s["too_long"] == 1
    assert s["labels"]["classification"] and s["labels"]["imbalanced"]
    assert s["errors"] == {
        "invalid_json": 1,
        "example_missing_assistant_message": 1,
        "unrecognized_role": 1,
        "invalid_weight": 1,
    }
    tokens = report.records.filter(pl.col("valid"))["tokens"]
    billed = sum(min(2048, t) for t in tokens)
    assert s["cost"]["billed_tokens_per_epoch"] == billed
    assert s["cost"]["charged_tokens"] == billed * s["cost"]["epochs"]
    assert s["cost"]["usd"] == pytest.approx(billed * s["cost"]["epochs"] / 1e6 * 3.0)


def test_records_table_columns(tmp_path: Path) -> None:
    out = tmp_path / "records.parquet"
    assert run_cli("scan", str(SAMPLE), "--records", str(out), "--no-progress").returncode == 1
    records = pl.read_parquet(out)
    assert {
        "file",
        "line",
        "format",
        "valid",
        "errors",
        "warnings",
        "n_messages",
        "tokens",
        "trainable_tokens",
    } <= set(records.columns)
    assert records.height == 209
    broken = records.filter(pl.col("line") == 91).row(0, named=True)
    assert broken["errors"] == ["invalid_json"] and broken["format"] is None


def test_records_table_keeps_awkward_labels_codes_and_nulls(tmp_path: Path) -> None:
    # Labels with the characters CSV must quote, an empty one and missing ones; a line with several
    # error codes; a blank and a broken line; a copy of a record of the first file in the second.
    labels: list[object] = ["a,b", 'say "hi"', "two\nlines\r", "", 7]
    first = [{"text": f"record {i} of the first file", "label": label} for i, label in enumerate(labels)]
    first.append({"text": "no label"})
    one = write_jsonl(tmp_path / "one.jsonl", first)
    two = tmp_path / "two.jsonl"
    bad_chat = {"messages": [{"role": "wizard", "content": 1}]}
    two.write_text("\n".join([json.dumps(first[1]), "", "{broken", json.dumps(bad_chat)]) + "\n")
    report = scan([one, two], encoding="cl100k_base", label_field="label", keep_records=True)
    rows = report.records.rows(named=True)
    assert [(r["file"], r["line"], r["status"]) for r in rows] == [
        *((str(one), i, "valid") for i in range(1, 7)),
        (str(two), 1, "valid"),
        (str(two), 2, "blank"),
        (str(two), 3, "invalid"),
        (str(two), 4, "invalid"),
    ]
    assert [r["label"] for r in rows[:7]] == ["a,b", 'say "hi"', "two\nlines\r", "", "7", None, 'say "hi"']
    assert rows[6]["exact_dup_of_file"] == str(one) and rows[6]["exact_dup_of"] == 2
    assert rows[0]["exact_dup_of_file"] is None and rows[0]["exact_dup_of"] is None
    blank, broken, chat = rows[7:]
    assert blank["errors"] == [] and blank["warnings"] == [] and blank["format"] is None
    assert blank["tokens"] is None and blank["cluster_size"] is None and blank["valid"] is False
    assert broken["errors"] == ["invalid_json"]
    codes = [p.code for p in report.problems if p.file == str(two) and p.line == 4 and p.severity == "error"]
    assert len(codes) >= 2 and chat["errors"] == codes and chat["format"] == "chat"


def test_validate_prints_compiler_style_lines_and_exits_1() -> None:
    proc = run_cli("validate", str(SAMPLE), "--no-progress")
    out = proc.stdout.decode()
    assert proc.returncode == 1
    assert f"{SAMPLE}:143: error: unrecognized_role:" in out
    clean = run_cli(
        "validate", "-", "--no-warnings", stdin=b"".join(json.dumps(r).encode() + b"\n" for r in TOY * 4)
    )
    assert clean.returncode == 0, clean.stdout


def test_scan_results_do_not_depend_on_threads() -> None:
    path = shared_file("t0_dev_chat.jsonl.zst")
    one = scan(path, threads=1)
    two = scan(path, threads=2)
    assert one.summary == two.summary
    assert one.records.equals(two.records)


def test_sampled_cost_is_an_estimate_whose_95ci_covers_the_truth_95_percent_of_the_time() -> None:
    path = shared_file("gsm8k_chat.jsonl.gz")
    exact = scan(path, model="gpt-4o-mini", keep_records=False, dedup=False).summary["cost"]
    truth = exact["billed_tokens_per_epoch"]
    covered = 0
    for seed in range(40):
        estimate = scan(
            path, model="gpt-4o-mini", sample=0.2, seed=seed, keep_records=False, dedup=False
        ).summary["cost"]
        assert estimate["estimate"] is True and exact["estimate"] is False
        low, high = estimate["billed_tokens_per_epoch_95ci"]
        covered += low <= truth <= high
        assert high - low < 0.05 * truth
    # 38 of 40 seeds cover it; fewer than 34 would happen by chance less than 1% of the time.
    assert covered >= 34


def test_cost_side_by_side_and_epoch_override(tmp_path: Path) -> None:
    proc = run_cli(
        "cost",
        str(SAMPLE),
        "-e",
        "cl100k_base,o200k_base",
        "--price-per-mtok",
        "2",
        "--epochs",
        "4",
        "--json",
        "-",
    )
    summary = json.loads(proc.stdout)
    assert [c["encoding"] for c in summary["costs"]] == ["cl100k_base", "o200k_base"]
    assert all(c["epochs"] == 4 for c in summary["costs"])
    assert summary["costs"][0]["tokens"] != summary["costs"][1]["tokens"]


def test_completion_records_count_prompt_and_completion() -> None:
    path = shared_file("t0_dev_completion.jsonl.zst")
    report = scan(path, encoding="cl100k_base")
    counted = tokenlens.count_file(path, "cl100k_base", keep_lines=False)
    assert report.summary["formats"] == {"completion": counted.total.records}
    assert report.summary["tokens"]["total"] == counted.total.tokens
    # Completions end in the literal text <|endoftext|>: a warning, not an error.
    assert report.summary["warnings"].get("special_token_text", 0) > 0


def test_scan_of_stdin_finds_the_near_duplicates_of_the_file() -> None:
    """The first pass keeps the signatures of inputs this size, so stdin needs no second read."""
    import zstandard

    path = shared_file("t0_dev_text.jsonl.zst")
    with path.open("rb") as compressed:
        data = zstandard.ZstdDecompressor().stream_reader(compressed).read()
    from_file = json.loads(run_cli("scan", str(path), "--json", "-").stdout)["duplicates"]
    from_stdin = json.loads(run_cli("scan", "-", "--json", "-", stdin=data).stdout)["duplicates"]
    assert from_stdin["near_duplicates_searched"] and from_file["near_duplicates_searched"]
    assert from_file["near_dup_clusters"] > 0
    # The same clusters, at the same lines of "-" instead of the file.
    for cluster in from_file["clusters"]:
        cluster["lines"] = [["-", line] for _, line in cluster["lines"]]
    assert from_stdin == from_file
