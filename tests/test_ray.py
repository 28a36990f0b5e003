"""The Ray engine against the local one, on a real local Ray runtime with 2 CPUs and real data split into
several files (plain files cut into byte-range shards, compressed files as whole shards)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import zstandard
from tokenlens import InvalidInputError, scan
from tokenlens.report import Report

from tests.conftest import SAMPLE, shared_file
from tests.test_count import run_cli

ray = pytest.importorskip("ray", reason="the Ray engine is an optional extra: pip install 'tokenlens[ray]'")

#: Small shards, so that each plain file is cut into several byte ranges.
SHARD_BYTES = 1 << 20


@pytest.fixture(scope="module")
def ray_runtime() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """T0 chat records cut into three plain files, T0 prompt/completion records as zstd, GSM8K as gzip,
    and the bundled sample with its deliberately broken lines. Records repeat across the files, so
    duplicates cross shard and file boundaries."""
    directory = tmp_path_factory.mktemp("ray-inputs")
    with shared_file("t0_dev_chat.jsonl.zst").open("rb") as f:
        chat = zstandard.ZstdDecompressor().stream_reader(f).read().splitlines(keepends=True)
    third = len(chat) // 3
    paths = []
    for i, part in enumerate([chat[:third], chat[third : 2 * third], chat[2 * third :]]):
        path = directory / f"t0_chat_{i}.jsonl"
        path.write_bytes(b"".join(part))
        paths.append(str(path))
    paths.append(str(shared_file("t0_dev_completion.jsonl.zst")))
    gsm8k = directory / "gsm8k_with_copies.jsonl.gz"
    with shared_file("gsm8k_chat.jsonl.gz").open("rb") as f:
        gsm8k_lines = gzip.decompress(f.read()).splitlines(keepends=True)
    gsm8k.write_bytes(gzip.compress(b"".join(gsm8k_lines[:3000] + chat[:200])))
    paths.append(str(gsm8k))
    paths.append(str(SAMPLE))
    return paths


def assert_same(local: Report, distributed: Report) -> None:
    assert distributed.summary == local.summary
    assert distributed.records.equals(local.records)
    assert distributed.problems == local.problems


@pytest.mark.slow
def test_ray_engine_gives_the_local_summary_records_and_clusters(
    ray_runtime: None, inputs: list[str]
) -> None:
    options = {"model": "gpt-4o-mini", "encoding": ["cl100k_base", "o200k_base"]}
    local = scan(inputs, **options)
    dup = local.summary["duplicates"]
    # The real data holds what must survive the merge: near-duplicate clusters, exact copies across
    # files and shards, invalid lines and warnings.
    assert dup["near_dup_clusters"] > 100 and dup["exact_duplicates"] > 200
    assert local.summary["invalid"] > 0 and local.summary["warnings"]
    distributed = scan(inputs, engine="ray", shard_bytes=SHARD_BYTES, **options)
    assert_same(local, distributed)
    clustered = distributed.records.filter(pl.col("cluster").is_not_null())
    assert clustered["file"].n_unique() >= 3


@pytest.mark.slow
def test_ray_engine_samples_the_same_lines(ray_runtime: None, inputs: list[str]) -> None:
    options = {"model": "gpt-4o-mini", "sample": 0.3, "seed": 5, "keep": "longest"}
    assert_same(scan(inputs, **options), scan(inputs, engine="ray", shard_bytes=SHARD_BYTES, **options))


@pytest.mark.slow
def test_cli_joins_a_running_cluster_and_writes_the_local_json(
    ray_runtime: None, inputs: list[str], tmp_path: Path
) -> None:
    local, distributed = tmp_path / "local.json", tmp_path / "ray.json"
    args = ["scan", *inputs, "-m", "gpt-4o-mini", "-q", "--json"]
    assert run_cli(*args, str(local)).returncode == 1  # the sample's broken lines are findings
    proc = run_cli(*args, str(distributed), "--engine", "ray", "--ray-address", "auto", "--shard-mb", "2")
    assert proc.returncode == 1, proc.stderr.decode()
    first, second = json.loads(local.read_text()), json.loads(distributed.read_text())
    assert second == first


@pytest.mark.slow
# Ray Data warns about the deprecated settings its own context sets.
@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")
def test_a_ray_dataset_of_records_is_scanned_like_its_file(ray_runtime: None, inputs: list[str]) -> None:
    from tokenlens.ray_engine import scan_dataset

    path = inputs[1]
    local = scan(path, model="gpt-4o-mini")
    dataset = ray.data.read_json(path, override_num_blocks=4)
    distributed = scan_dataset(dataset, name="t0 chat", model="gpt-4o-mini")
    for key in ("lines", "valid", "invalid", "tokens", "trainable_tokens", "messages", "labels", "cost"):
        assert distributed.summary[key] == local.summary[key], key
    for key in ("records", "exact_duplicates", "near_dup_clusters", "records_in_clusters", "removed"):
        assert distributed.summary["duplicates"][key] == local.summary["duplicates"][key], key
    columns = ["line", "tokens", "trainable_tokens", "exact_dup_of", "cluster", "cluster_size"]
    assert distributed.records.select(columns).equals(local.records.select(columns))
    assert distributed.records["file"].unique().to_list() == ["t0 chat"]


def test_ray_engine_refuses_stdin_and_options_that_do_not_fit(inputs: list[str]) -> None:
    proc = run_cli("scan", "-", "--engine", "ray", stdin=b'{"text": "x"}\n')
    assert proc.returncode == 2 and b"not stdin" in proc.stderr
    proc = run_cli("scan", inputs[-1], "--ray-address", "auto")
    assert proc.returncode == 2 and b"--engine ray" in proc.stderr
    with pytest.raises(InvalidInputError, match="unknown engine"):
        scan(inputs[-1], engine="spark")
    with pytest.raises(InvalidInputError, match="engine='ray' and no paths"):
        scan(inputs[-1], dataset=object())


def test_the_default_path_never_imports_ray() -> None:
    code = (
        "import sys, tokenlens, tokenlens.cli, tokenlens.report\n"
        f"tokenlens.scan({str(SAMPLE)!r})\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
