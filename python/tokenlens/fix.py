"""Fixing the data: `dedup` and `filter` write the kept lines byte for byte, in input order,
atomically, with a manifest beside the output that lists every dropped line and why. Dropped lines
are kept as a polars table, never as one Python object each: `dedup` may drop millions. `chunk` cuts
long text records into pieces of at most N tokens; `split` writes a reproducible train/validation
split that never separates duplicates."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from tokenlens import _core
from tokenlens._core import Progress
from tokenlens.api import DEFAULT_MAX_LINE_BYTES, PathLike, TableSchema, _encoding, _paths, _read_table
from tokenlens.errors import InvalidInputError
from tokenlens.output import OutputSet, check_outputs, manifest_path, outputs_together
from tokenlens.report import Report, scan


@dataclass(frozen=True)
class Dropped:
    """One dropped line, for commands that decide line by line; see `dropped_frame`."""

    file: str
    line: int
    reason: str
    detail: str = ""


#: The columns of `FixResult.dropped`.
DROPPED_SCHEMA = {"file": pl.String, "line": pl.UInt64, "reason": pl.String, "detail": pl.String}


def dropped_frame(rows: Iterable[Dropped]) -> pl.DataFrame:
    data = [(d.file, d.line, d.reason, d.detail) for d in rows]
    return pl.DataFrame(data, schema=DROPPED_SCHEMA, orient="row")


@dataclass(frozen=True)
class Changed:
    """A line that `chunk` replaced by `pieces` records."""

    file: str
    line: int
    pieces: int


@dataclass(frozen=True)
class Unchanged:
    """A line that `chunk` copied as it is although it is not a text record it could measure."""

    file: str
    line: int
    reason: str


@dataclass
class FixResult:
    """What a fixing command did: lines read and written, and each dropped line with its reason
    (`dropped`: file, line, reason, detail, in input order)."""

    output: str
    lines_read: int
    lines_written: int
    dropped: pl.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    #: `chunk` only: the records it cut into pieces, and the lines it could not look into.
    changed: list[Changed] | None = None
    not_chunked: list[Unchanged] | None = None

    @property
    def dropped_by_reason(self) -> dict[str, int]:
        counts = self.dropped.group_by("reason", maintain_order=True).len()
        return dict(zip(counts["reason"].to_list(), counts["len"].to_list(), strict=True))

    def write_manifest(self, outputs: OutputSet, command: str) -> None:
        """The manifest beside the output, as JSON, with the output's set; the dropped lines are
        streamed, a slice at a time."""
        document: dict[str, Any] = {
            "tokenlens_version": _core.__version__,
            "command": command,
            "output": self.output,
            "lines_read": self.lines_read,
            "lines_written": self.lines_written,
            "dropped_by_reason": self.dropped_by_reason,
            "summary": self.summary,
        }
        if self.changed is not None:
            document["changed"] = [c.__dict__ for c in self.changed]
        if self.not_chunked is not None:
            document["not_chunked"] = [u.__dict__ for u in self.not_chunked]
        with outputs.open(manifest_path(self.output)) as f:
            f.write(json.dumps(document, indent=2)[:-2] + ',\n  "dropped": [')
            separator = "\n    "
            for start in range(0, self.dropped.height, 100_000):
                for row in self.dropped.slice(start, 100_000).write_ndjson().splitlines():
                    f.write(separator + row)
                    separator = ",\n    "
            f.write("\n  ]\n}\n")


def _check_outputs(names: list[str], outputs: list[str], force: bool) -> None:
    """Refuses stdin and repeated inputs, and `outputs` (each data output with its manifest) that are
    not files or that `check_outputs` refuses."""
    if "-" in names:
        raise InvalidInputError("fixing reads the input twice: give files, not stdin")
    if repeated := sorted({name for name in names if names.count(name) > 1}):
        # Dropped lines are named by file and line, which would not say which copy they are in.
        raise InvalidInputError(f"an input is given more than once: {', '.join(repeated)}")
    if "-" in outputs:
        raise InvalidInputError("the outputs must be files, not stdout (-)")
    check_outputs(list(outputs), names, force)


def _with_manifests(*outputs: str) -> list[str]:
    return [path for output in outputs for path in (output, manifest_path(output))]


def _write(
    outputs: OutputSet,
    names: list[str],
    dropped: pl.DataFrame,
    output: str,
    command: str,
    summary: dict[str, Any],
    force: bool,
    threads: int | None,
    max_line_bytes: int,
    progress: Progress | None,
) -> FixResult:
    """Writes the lines of `names` but the `dropped` ones (a frame as `dropped_frame` makes) to `output`,
    and the manifest beside it, both with `outputs`."""
    order = pl.DataFrame({"file": pl.Series(names, dtype=pl.String), "file_index": range(len(names))})
    dropped = dropped.join(order, on="file", how="left").sort("file_index", "line", maintain_order=True)
    parts = dropped.partition_by("file_index", as_dict=True)
    drop = [parts[(i,)]["line"].to_list() if (i,) in parts else [] for i in range(len(names))]
    read, written, pending = _core.write_lines(
        names, drop, output, force=force, threads=threads, max_line_bytes=max_line_bytes, progress=progress
    )
    outputs.add(pending)
    result = FixResult(output, read, written, dropped.drop("file_index"), summary)
    result.write_manifest(outputs, command)
    return result


def dedup(
    paths: PathLike | Sequence[PathLike],
    output: str,
    *,
    field: str | None = None,
    exact_only: bool = False,
    keep: str = "first",
    ngram: int = 5,
    num_perm: int = 112,
    bands: int = 14,
    rows: int = 8,
    threshold: float = 0.8,
    clusters: str | None = None,
    force: bool = False,
    threads: int | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    progress: Progress | None = None,
    command: str = "tokenlens.dedup",
) -> FixResult:
    """Drops exact duplicates (and, unless `exact_only`, near duplicates that are not their cluster's
    representative) and writes the other lines to `output`. Lines that are not records are kept."""
    names = _paths(paths)
    _check_outputs(names, _with_manifests(output) + ([clusters] if clusters is not None else []), force)
    summary_text, records_csv = _core.dedup_files(
        names,
        field=field,
        exact_only=exact_only,
        ngram=ngram,
        num_perm=num_perm,
        bands=bands,
        rows=rows,
        threshold=threshold,
        keep=keep,
        threads=threads,
        max_line_bytes=max_line_bytes,
        progress=progress,
    )
    summary = json.loads(summary_text)
    records = dedup_records(records_csv, names)
    del records_csv
    exact = pl.col("exact_dup_of").is_not_null()
    near = pl.lit(not exact_only) & pl.col("cluster").is_not_null() & ~pl.col("is_representative")
    dropped = records.filter(exact | near).select(
        "file",
        "line",
        reason=pl.when(exact).then(pl.lit("exact_duplicate")).otherwise(pl.lit("near_duplicate")),
        detail=pl.when(exact)
        .then(pl.format("same text as {}:{}", "exact_dup_of_file", "exact_dup_of"))
        .otherwise(pl.format("cluster {} ({} kept)", "cluster", pl.lit(keep))),
    )
    with outputs_together() as outputs:
        if clusters is not None:
            in_clusters = records.filter(pl.col("cluster").is_not_null())
            with outputs.open(clusters, "wb") as f:
                in_clusters.sort("cluster", "file", "line").write_parquet(f)
            del in_clusters
        del records
        common = (force, threads, max_line_bytes, progress)
        return _write(outputs, names, dropped, output, command, summary, *common)


def dedup_records(records_csv: bytes, names: list[str]) -> pl.DataFrame:
    """The records table of `_core.dedup_files`, with file names for file indices."""
    u64 = pl.UInt64
    schema: TableSchema = {"file": pl.UInt32, "line": u64}
    schema |= {"exact_dup_of_file": pl.UInt32, "exact_dup_of": u64, "cluster": u64, "cluster_size": u64}
    schema |= {"is_representative": pl.Boolean, "removed": pl.Boolean}
    return _read_table(records_csv, schema, names, ["file", "exact_dup_of_file"])


def filter_lines(
    paths: PathLike | Sequence[PathLike],
    output: str,
    *,
    drop_invalid: bool = False,
    drop_too_long: bool = False,
    max_tokens: int | None = None,
    drop_duplicates: str | None = None,
    model: str | None = None,
    encoding: str | None = None,
    force: bool = False,
    threads: int | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    progress: Progress | None = None,
    command: str = "tokenlens.filter",
    **scan_options: Any,
) -> FixResult:
    """Writes the lines that pass the chosen filters to `output`: invalid lines (and blank ones),
    examples over the model's context limit or over `max_tokens`, exact or near duplicates."""
    if drop_duplicates not in (None, "exact", "near"):
        raise InvalidInputError("drop_duplicates is 'exact' or 'near'")
    names = _paths(paths)
    _check_outputs(names, _with_manifests(output), force)
    report: Report = scan(
        names,
        model=model,
        encoding=encoding,
        threads=threads,
        max_line_bytes=max_line_bytes,
        progress=progress,
        keep_records=True,
        dedup=drop_duplicates is not None,
        **scan_options,
    )
    limit = report.summary["cost"]["limit"]
    if drop_too_long and limit is None:
        raise InvalidInputError("--drop-too-long needs a context limit: give --model or --context-limit")
    dropped = []
    for r in report.records.iter_rows(named=True):
        reason, detail = None, ""
        if drop_invalid and r["status"] in ("invalid", "blank"):
            reason, detail = r["status"], ",".join(r["errors"])
        elif drop_too_long and r["tokens"] is not None and r["tokens"] > limit:
            reason, detail = "too_long", f"{r['tokens']} tokens > limit {limit}"
        elif max_tokens is not None and r["tokens"] is not None and r["tokens"] > max_tokens:
            reason, detail = "max_tokens", f"{r['tokens']} tokens > {max_tokens}"
        elif drop_duplicates and r["exact_dup_of"] is not None:
            reason, detail = "exact_duplicate", f"same text as {r['exact_dup_of_file']}:{r['exact_dup_of']}"
        elif drop_duplicates == "near" and r["cluster"] is not None and not r["is_representative"]:
            reason, detail = "near_duplicate", f"cluster {r['cluster']}"
        if reason:
            dropped.append(Dropped(r["file"], r["line"], reason, detail))
    frame = dropped_frame(dropped)
    with outputs_together() as outputs:
        common = (force, threads, max_line_bytes, progress)
        return _write(outputs, names, frame, output, command, report.summary, *common)


def chunk(
    paths: PathLike | Sequence[PathLike],
    output: str,
    *,
    max_tokens: int,
    overlap: int = 0,
    field: str = "text",
    encoding: str | _core.Encoding | None = None,
    force: bool = False,
    threads: int | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    progress: Progress | None = None,
    command: str = "tokenlens.chunk",
) -> FixResult:
    """Cuts every text record over `max_tokens` tokens (of `encoding`, cl100k_base by default; the
    text is the top-level key `field`) into pieces of at most `max_tokens` tokens each, counted
    alone, at token boundaries moved back to character boundaries. Each piece is the record with
    its text replaced and `source_file`, `source_line` (1-based), `chunk_index` (0-based) and
    `chunk_count` added. Without `overlap` the pieces of a record concatenate to its text exactly;
    with `overlap` K each piece after the first starts K tokens before the previous one's end.

    Everything else is copied byte for byte: records that fit, and lines `chunk` cannot measure
    (blank, not JSON objects, no such field, a field that is not a string), which the manifest lists
    under `not_chunked` with a reason. Nothing is dropped. The manifest's `changed` lists each cut
    record with its number of pieces."""
    names = _paths(paths)
    _check_outputs(names, _with_manifests(output), force)
    if max_tokens < 1 or not 0 <= overlap < max_tokens:
        raise InvalidInputError("max_tokens must be at least 1, and overlap from 0 to max_tokens - 1")
    with outputs_together() as outputs:
        summary_text, changed, unchanged, pending = _core.chunk_files(
            names,
            output,
            _encoding(encoding if encoding is not None else "cl100k_base"),
            max_tokens=max_tokens,
            overlap=overlap,
            field=field,
            force=force,
            threads=threads,
            max_line_bytes=max_line_bytes,
            progress=progress,
        )
        outputs.add(pending)
        summary = json.loads(summary_text)
        result = FixResult(
            output,
            summary["lines_read"],
            summary["lines_written"],
            dropped_frame([]),
            summary,
            changed=[Changed(names[f], line, n) for f, line, n in changed],
            not_chunked=[Unchanged(names[f], line, reason) for f, line, reason in unchanged],
        )
        result.write_manifest(outputs, command)
    return result


@dataclass
class SplitResult:
    """What `split` wrote: the train and validation outputs (each with its manifest) and a summary."""

    train: FixResult
    validation: FixResult
    summary: dict[str, Any]


def _targets(sizes: dict[Any, int], fraction: float, rng: random.Random) -> dict[Any, int]:
    """Validation examples per stratum: floor or ceil of `fraction` of its size (largest remainders
    get the extra ones, ties in seeded random order), summing to `fraction` of all, rounded."""
    total = sum(sizes.values())
    wanted = math.floor(fraction * total + 0.5)
    targets = {s: math.floor(fraction * n) for s, n in sizes.items()}
    strata = list(sizes)
    rng.shuffle(strata)
    strata.sort(key=lambda s: -(fraction * sizes[s] - targets[s]))
    for s in strata[: max(0, wanted - sum(targets.values()))]:
        if targets[s] < sizes[s]:
            targets[s] += 1
    return targets


def split(
    paths: PathLike | Sequence[PathLike],
    train: str,
    validation: str,
    *,
    val_fraction: float = 0.1,
    stratify: bool = False,
    seed: int = 0,
    label_field: str | None = None,
    force: bool = False,
    threads: int | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    progress: Progress | None = None,
    command: str = "tokenlens.split",
    **scan_options: Any,
) -> SplitResult:
    """A reproducible train/validation split of the valid records, written byte for byte in input
    order to `train` and `validation`.

    Records are grouped first: exact duplicates and near-duplicate clusters (as `scan` finds them)
    form one group each, and a group goes to one side whole, so no duplicate crosses the split. The
    groups are visited in an order shuffled with `seed` (Python's `random.Random`, so the split
    depends on the seed and the data only, never on the thread count), and a group goes to
    validation while that keeps validation at or under its target, else to train. The target is
    `val_fraction` of the records, rounded; with `stratify`, per label (scan's `label`: the last
    assistant message or completion, or `label_field`; records without one form their own stratum)
    floor or ceil of `val_fraction` of the label's records (largest remainders round up, so that
    the total is right). Groups that hold several labels must fit every label's target. A second
    pass adds groups, while validation is short of its total, up to the ceiling of each label's
    share. So each label's validation count is within one of its exact share whenever its groups
    allow it; the summary lists the labels that are not (`targets_missed`).

    Invalid and blank lines go to neither output; both manifests list them (reasons `invalid`,
    `blank`). Each manifest also lists the lines that went to the other output (reason
    `validation` in the train manifest, `train` in the validation one)."""
    if not 0 < val_fraction < 1:
        raise InvalidInputError("val_fraction must be between 0 and 1")
    names = _paths(paths)
    _check_outputs(names, _with_manifests(train, validation), force)
    report = scan(
        names,
        label_field=label_field,
        threads=threads,
        max_line_bytes=max_line_bytes,
        progress=progress,
        keep_records=True,
        dedup=True,
        **scan_options,
    )
    columns = ["file", "line", "status", "errors", "label", "exact_dup_of_file", "exact_dup_of", "cluster"]
    parent: dict[Any, Any] = {}

    def find(x: Any) -> Any:
        root = x
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while x != root:
            parent[x], x = root, parent[x]
        return root

    excluded: list[Dropped] = []
    members: list[tuple[str, int]] = []
    labels: dict[tuple[str, int], str | None] = {}
    for r in report.records.select(columns).iter_rows(named=True):
        key = (r["file"], r["line"])
        if r["status"] != "valid":
            excluded.append(Dropped(r["file"], r["line"], r["status"], ",".join(r["errors"])))
            continue
        members.append(key)
        labels[key] = r["label"]
        find(key)
        if r["exact_dup_of"] is not None:
            parent[find(key)] = find((r["exact_dup_of_file"], r["exact_dup_of"]))
        if r["cluster"] is not None:
            parent[find(key)] = find(("cluster", r["cluster"]))
    groups: dict[Any, list[tuple[str, int]]] = {}
    for key in members:
        groups.setdefault(find(key), []).append(key)
    ordered = list(groups.values())  # by first member, in input order

    def stratum(key: tuple[str, int]) -> str | None:
        return labels[key] if stratify else ""

    sizes: dict[str | None, int] = {}
    for key in members:
        sizes[stratum(key)] = sizes.get(stratum(key), 0) + 1
    rng = random.Random(seed)
    targets = _targets(sizes, val_fraction, rng)
    in_val = dict.fromkeys(sizes, 0)
    order = list(range(len(ordered)))
    rng.shuffle(order)
    to_val: set[tuple[str, int]] = set()
    needs: list[dict[str | None, int]] = []
    for group in ordered:
        need: dict[str | None, int] = {}
        for key in group:
            need[stratum(key)] = need.get(stratum(key), 0) + 1
        needs.append(need)
    # First within the targets; then, while validation is short of its total, up to the ceiling of
    # each stratum's share (still within one example of it).
    ceilings = {s: math.ceil(val_fraction * n) for s, n in sizes.items()}
    wanted = sum(targets.values())
    for limits in (targets, ceilings):
        for i in order:
            if ordered[i][0] in to_val or len(to_val) + len(ordered[i]) > wanted:
                continue
            if all(in_val[s] + n <= limits[s] for s, n in needs[i].items()):
                for s, n in needs[i].items():
                    in_val[s] += n
                to_val.update(ordered[i])
    together = [g for g in ordered if len(g) > 1]
    summary: dict[str, Any] = {
        "lines": int(report.records.height),
        "records": len(members),
        "train": len(members) - len(to_val),
        "validation": len(to_val),
        "excluded": len(excluded),
        "val_fraction": val_fraction,
        "actual_val_fraction": len(to_val) / len(members) if members else None,
        "seed": seed,
        "stratify": stratify,
        "groups": len(ordered),
        "clusters_kept_together": len(together),
        "records_in_clusters_kept_together": sum(len(g) for g in together),
        "targets_missed": {
            str(s): {"records": n, "validation": in_val[s]}
            for s, n in sizes.items()
            if abs(in_val[s] - val_fraction * n) >= 1
        },
    }
    if stratify:
        summary["labels"] = {
            str(s): {"records": n, "validation": in_val[s], "train": n - in_val[s]} for s, n in sizes.items()
        }
    dropped_train = excluded + [Dropped(f, line, "validation") for f, line in sorted(to_val)]
    dropped_val = excluded + [Dropped(f, line, "train") for f, line in members if (f, line) not in to_val]
    common = (force, threads, max_line_bytes, progress)
    with outputs_together() as outputs:
        train_result = _write(outputs, names, dropped_frame(dropped_train), train, command, summary, *common)
        val_result = _write(outputs, names, dropped_frame(dropped_val), validation, command, summary, *common)
    return SplitResult(train_result, val_result, summary)
