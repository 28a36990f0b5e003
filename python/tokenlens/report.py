"""The report layer: `scan()` runs the one-pass audit and returns a `Report` of polars frames and a
JSON summary with a documented, versioned schema (`summary.schema.json`)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import polars as pl

from tokenlens import _core
from tokenlens._core import Encoding, Progress
from tokenlens.api import DEFAULT_MAX_LINE_BYTES, PathLike, TableSchema, _encoding, _paths, _read_table
from tokenlens.errors import InvalidInputError
from tokenlens.models import ModelProfile, OwnHardware, find_profile, load_profiles
from tokenlens.output import atomic_output, write_json_atomic

#: Version of the JSON summary's schema; bumped on any incompatible change.
SUMMARY_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Problem:
    file: str
    line: int  # 0 for a problem of the whole file
    severity: str  # "error" or "warning"
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.severity}: {self.code}: {self.message}"


@dataclass
class Report:
    """What `scan` found: `.summary` (the `--json` document), `.records` (one row per line),
    `.problems` (errors and warnings with file and line, the first 1,000 of each code)."""

    summary: dict[str, Any]
    problems: list[Problem]
    records: pl.DataFrame = field(repr=False)

    def cluster_lines(self, clusters: int, lines_per_cluster: int) -> list[dict[str, Any]]:
        """The largest near-duplicate clusters with the text of their first lines, read again from the
        input: [{"cluster", "size", "lines": [[file, line, text], ...]}]. Without texts when the input
        cannot be read again (stdin, a Ray Dataset)."""
        dup = self.summary.get("duplicates") or {}
        listed = [dict(c) for c in dup.get("clusters", [])[:clusters]]
        names = [f["name"] for f in self.summary["files"]]
        if not listed or not all(os.path.isfile(name) for name in names):
            return listed
        index = {name: i for i, name in enumerate(names)}
        wanted: list[list[int]] = [[] for _ in names]
        for c in listed:
            c["lines"] = c["lines"][:lines_per_cluster]
            for name, line in c["lines"]:
                wanted[index[name]].append(line)
        found = _core.read_lines(names, wanted)
        texts = {(f, line): raw.decode("utf-8", "replace") for f, line, raw in found}
        for c in listed:
            c["lines"] = [[name, line, texts.get((index[name], line), "")] for name, line in c["lines"]]
        return listed

    @property
    def files(self) -> pl.DataFrame:
        """One row per input file."""
        rows = [
            {k: v for k, v in f.items() if k not in ("errors", "warnings")} for f in self.summary["files"]
        ]
        return pl.DataFrame(rows)

    def file_records(self, name: str) -> pl.DataFrame:
        """The records table of one input file."""
        return self.records.filter(pl.col("file") == name)

    @property
    def problems_frame(self) -> pl.DataFrame:
        schema = {
            "file": pl.String,
            "line": pl.UInt64,
            "severity": pl.String,
            "code": pl.String,
            "message": pl.String,
        }
        return pl.DataFrame([p.__dict__ for p in self.problems], schema=schema)

    @property
    def has_errors(self) -> bool:
        return bool(self.summary["invalid"]) or any(f["error"] for f in self.summary["files"])

    def write_json(self, path: str) -> None:
        write_json_atomic(path, self.summary)

    def write_parquet(self, path: str) -> None:
        with atomic_output(path, "wb") as f:
            self.records.write_parquet(f)

    def write_csv(self, path: str) -> None:
        flat = self.records.with_columns(pl.col("errors").list.join(","), pl.col("warnings").list.join(","))
        with atomic_output(path, "wb") as f:
            flat.write_csv(f)

    def write_html(self, path: str, command: str | None = None) -> None:
        from tokenlens.html import render_html

        with atomic_output(path, "w") as f:
            f.write(render_html(self, command=command))


def _code_lists(column: str) -> pl.Expr:
    """A column of problem codes per row, which come joined by commas, as lists."""
    joined = pl.col(column)
    empty = pl.lit([], dtype=pl.List(pl.String))
    return pl.when(joined == "").then(empty).otherwise(joined.str.split(",")).alias(column)


def _records_frame(names: list[str], records_csv: bytes) -> pl.DataFrame:
    """The records table from the CSV of `_core.scan_files`, with file names for file indices."""
    u64 = pl.UInt64
    schema: TableSchema = {"file": pl.UInt32, "line": u64}
    schema |= dict.fromkeys(("status", "format", "errors", "warnings"), pl.String)
    schema |= {"n_messages": pl.UInt32}
    tokens = ("tokens", "trainable_tokens", "content_tokens", "prompt_tokens", "completion_tokens")
    schema |= dict.fromkeys(tokens, u64)
    schema |= {"label": pl.String, "exact_dup_of_file": pl.UInt32, "exact_dup_of": u64, "cluster": u64}
    schema |= {"cluster_size": u64, "is_representative": pl.Boolean}
    columns = list(schema)
    columns.insert(columns.index("errors"), "valid")
    return (
        _read_table(records_csv, schema, names, ["file", "exact_dup_of_file"])
        .with_columns(_code_lists("errors"), _code_lists("warnings"), valid=pl.col("status") == "valid")
        .select(columns)
    )


def scan(
    paths: PathLike | Sequence[PathLike],
    *,
    model: str | None = None,
    encoding: str | Encoding | Sequence[str | Encoding] | None = None,
    format: str = "auto",
    field: str = "text",
    label_field: str | None = None,
    context_limit: int | None = None,
    price_per_mtok: float | None = None,
    epochs: int | None = None,
    pack_length: int | None = None,
    sample: float | None = None,
    seed: int = 0,
    hardware: OwnHardware | None = None,
    profiles: str | None = None,
    threads: int | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    progress: Progress | None = None,
    keep_records: bool = True,
    missing_ok: bool = False,
    chunk_size: int | None = None,
    dedup: bool = True,
    ngram: int = 5,
    num_perm: int = 112,
    bands: int = 14,
    rows: int = 8,
    threshold: float = 0.8,
    keep: str = "first",
    engine: str = "local",
    ray_address: str | None = None,
    shard_bytes: int | None = None,
    dataset: Any = None,
    dataset_name: str = "dataset",
) -> Report:
    """Audits fine-tuning data in one streaming pass: validation, exact token accounting, distributions,
    label balance, packing and cost. `model` picks encoding, context limit and price from the model
    profiles; explicit `encoding`, `context_limit` and `price_per_mtok` override them. Several
    encodings are counted side by side (the first one is detailed).

    `engine="ray"` runs the same kernel on a Ray cluster (`pip install tokenlens[ray]`; see
    `tokenlens.ray_engine`): `ray_address` is "auto", "ray://HOST:PORT" or None for a local Ray
    runtime, and plain files are cut into shards of about `shard_bytes` at line starts. A Ray Dataset of
    records is scanned with `dataset` instead of paths (see `tokenlens.ray_engine.scan_dataset`)."""
    if engine not in ("local", "ray"):
        raise InvalidInputError(f"unknown engine {engine!r} (local or ray)")
    if dataset is not None and (engine != "ray" or paths):
        raise InvalidInputError("a Ray Dataset is scanned with engine='ray' and no paths")
    names = [dataset_name] if dataset is not None else _paths(paths, missing_ok)
    plan = _ScanPlan.make(model, encoding, profiles, context_limit, price_per_mtok, hardware)
    config: dict[str, Any] = dict(
        format=format,
        text_field=field,
        label_field=label_field,
        context_limit=plan.context_limit,
        price_per_mtok=plan.price_per_mtok,
        epochs=epochs,
        pack_length=pack_length,
        sample=sample,
        seed=seed,
        keep_records=keep_records,
        dedup=dedup,
        ngram=ngram,
        num_perm=num_perm,
        bands=bands,
        rows=rows,
        threshold=threshold,
        keep=keep,
    )
    run: dict[str, Any] = dict(
        threads=threads, max_line_bytes=max_line_bytes, chunk_size=chunk_size, progress=progress
    )
    if engine == "local":
        raw = _core.scan_files(names, plan.encodings, _core.ScanConfig(**config), **run)
    else:
        on_ray = _ray_engine()
        if dataset is not None:
            raw = on_ray.scan_dataset_on_ray(
                dataset, dataset_name, plan.encodings, config, ray_address=ray_address, **run
            )
        else:
            raw = on_ray.scan_files_on_ray(
                names, plan.encodings, config, ray_address=ray_address, shard_bytes=shard_bytes, **run
            )
    return plan.report(names, *raw)


def _ray_engine() -> ModuleType:
    try:
        from tokenlens import ray_engine
    except ModuleNotFoundError as e:
        if e.name == "ray":
            raise InvalidInputError("the Ray engine needs Ray: pip install 'tokenlens[ray]'") from e
        raise
    return ray_engine


@dataclass(frozen=True)
class _ScanPlan:
    """What a scan's options resolve to (encodings, limit, price from the model profile), and how the
    engine's raw result becomes a `Report`."""

    encodings: list[Encoding]
    profile: ModelProfile | None
    context_limit: int | None
    price_per_mtok: float | None
    #: The price was given (`--price-per-mtok`), not taken from the profile.
    price_given: bool
    hardware: OwnHardware | None

    @classmethod
    def make(
        cls,
        model: str | None,
        encoding: str | Encoding | Sequence[str | Encoding] | None,
        profiles: str | None,
        context_limit: int | None,
        price_per_mtok: float | None,
        hardware: OwnHardware | None,
    ) -> _ScanPlan:
        profile = find_profile(model, load_profiles(profiles)) if model else None
        if encoding is None:
            encoding = profile.encoding if profile else "cl100k_base"
        specs = [encoding] if isinstance(encoding, str | Encoding) else list(encoding)
        limit = context_limit if context_limit is not None else (profile.context_limit if profile else None)
        given = price_per_mtok is not None
        price = price_per_mtok if given else (profile.price_per_mtok if profile else None)
        return cls([_encoding(e) for e in specs], profile, limit, price, given, hardware)

    def report(
        self, names: list[str], summary_text: str, raw_problems: list[Any], records_csv: bytes
    ) -> Report:
        profile, hardware = self.profile, self.hardware
        summary: dict[str, Any] = json.loads(summary_text)
        summary["schema_version"] = SUMMARY_SCHEMA_VERSION
        summary["tokenlens_version"] = _core.__version__
        for cost in summary["costs"]:
            cost["model"] = profile.name if profile else None
            cost["price_source"] = (
                "--price-per-mtok"
                if self.price_given
                else (f"{profile.source}, {profile.as_of}" if profile else None)
            )
            if hardware is not None and cost["charged_tokens"] is not None:
                cost["own_hardware"] = {
                    "tokens_per_second": hardware.tokens_per_second,
                    "usd_per_gpu_hour": hardware.usd_per_gpu_hour,
                    "gpu_hours": hardware.gpu_hours(cost["charged_tokens"]),
                    "usd": hardware.usd(cost["charged_tokens"]),
                }
        summary["cost"] = summary["costs"][0]
        problems = [Problem(names[f], line, sev, code, msg) for f, line, sev, code, msg in raw_problems]
        return Report(summary, problems, _records_frame(names, records_csv))
