"""The JSON summary follows its published schema, for every kind of run."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema
import pytest

from tests.conftest import SAMPLE, shared_file
from tests.test_count import run_cli


def schema() -> dict[str, Any]:
    text = resources.files("tokenlens").joinpath("summary.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


@pytest.mark.parametrize(
    "args",
    [
        ["scan", str(SAMPLE), "-m", "gpt-4o-mini", "--context-limit", "2048"],
        ["scan", str(SAMPLE), "-e", "cl100k_base,o200k_base", "--sample", "0.5", "--price-per-mtok", "1"],
        ["cost", str(SAMPLE), "--tokens-per-second", "2000", "--usd-per-gpu-hour", "2"],
        ["scan", "-"],
    ],
)
def test_summary_validates_against_its_schema(args: list[str]) -> None:
    stdin = SAMPLE.read_bytes() if "-" in args else None
    proc = run_cli(*args, "--json", "-", stdin=stdin)
    assert proc.returncode in (0, 1), proc.stderr
    summary = json.loads(proc.stdout)  # stdout holds the JSON alone
    jsonschema.validate(summary, schema())
    assert (
        summary["lines"] == summary["valid"] + summary["invalid"] + summary["blank"] + summary["not_sampled"]
    )


def test_real_data_summary_validates() -> None:
    path = shared_file("t0_dev_chat.jsonl.zst")
    proc = run_cli("scan", str(path), "--json", "-")
    jsonschema.validate(json.loads(proc.stdout), schema())
