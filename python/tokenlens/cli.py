"""The `tokenlens` command line. Exit codes: 0 clean, 1 the input has problems, 2 usage or I/O error.
Reports go to stdout (or stderr when `--json -` takes stdout); progress goes to stderr.

The report and fix layers (and polars with them) are imported by the commands that use them, so that
`count`, `--help` and `--version` start in a fraction of the time."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, TypeVar

import click

from tokenlens import _core
from tokenlens.api import DEFAULT_MAX_LINE_BYTES, CountResult, count_file
from tokenlens.errors import TokenlensError
from tokenlens.models import OwnHardware
from tokenlens.output import OutputSet, check_outputs, manifest_path, write_json_atomic
from tokenlens.progress import progress_line

if TYPE_CHECKING:
    from tokenlens.fix import FixResult
    from tokenlens.report import Report

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
#: The shell's code for a run stopped by Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130
#: Problem lines printed by `count` before "... and N more".
SHOWN_PROBLEMS = 20

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")


def fail(message: str) -> NoReturn:
    click.echo(f"tokenlens: error: {message}", err=True)
    sys.exit(EXIT_ERROR)


def input_options(command: F) -> F:
    """Options shared by every command that reads JSONL."""
    options = [
        click.argument("paths", nargs=-1, required=True, type=click.Path(allow_dash=True)),
        click.option(
            "--encoding",
            "-e",
            default=None,
            help=f"One of {', '.join(_core.BUILTIN_ENCODINGS)}, or the path of a tokenizer.json; several, "
            "comma-separated, are reported side by side [default: the model's, else cl100k_base].",
        ),
        click.option(
            "--threads",
            "-j",
            type=click.IntRange(min=1),
            default=None,
            help="Worker threads [default: all cores].",
        ),
        click.option(
            "--max-line-bytes",
            type=click.IntRange(min=1),
            default=DEFAULT_MAX_LINE_BYTES,
            show_default=True,
            help="Longer lines are reported as line_too_long.",
        ),
        click.option("--no-progress", is_flag=True, help="Never show the progress line on stderr."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _check_report_outputs(paths: tuple[str, ...], outputs: list[str | None], force: bool) -> None:
    """Before any work: report files never replace an input, nor an existing file without --force."""
    try:
        check_outputs(outputs, list(paths), force)
    except TokenlensError as e:
        fail(str(e))


def _command_line() -> str:
    """The command as the user typed it, for reports and manifests."""
    return " ".join(["tokenlens", *sys.argv[1:]])


def _version() -> str:
    return f"tokenlens {_core.__version__} ({_core.BUILD_PROFILE} build)"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(message=_version(), version=_core.__version__)
def main() -> None:
    """Fast, exact token counts and audits for JSONL datasets."""


def _report_stream(json_path: str | None) -> TextIO:
    """Human output goes to stdout, unless the JSON summary does."""
    return sys.stderr if json_path == "-" else sys.stdout


def _print_count(result: CountResult, out: TextIO) -> None:
    shown = result.problems[:SHOWN_PROBLEMS]
    for problem in shown:
        print(problem, file=out)
    hidden = result.total.invalid - len(shown)
    if hidden > 0:
        print(f"... and {hidden:,} more problem lines", file=out)
    for f in result.files:
        if f.error:
            print(f"{f.name}: error: {f.error}", file=out)
    header = ("file", "lines", "records", "blank", "invalid", "tokens", "text bytes", "bytes/token")
    rows: list[Sequence[str]] = []
    totals = [*((f.name, f) for f in result.files), ("total", result.total)]
    for name, t in totals if len(result.files) > 1 else totals[:1]:
        bpt = f"{t.bytes_per_token:.3f}" if t.bytes_per_token is not None else "-"
        rows.append(
            (
                name,
                f"{t.lines:,}",
                f"{t.records:,}",
                f"{t.blank:,}",
                f"{t.invalid:,}",
                f"{t.tokens:,}",
                f"{t.text_bytes:,}",
                bpt,
            )
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"encoding: {result.encoding}", file=out)
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))]
        print("  ".join(cells), file=out)


def count_summary(result: CountResult) -> dict[str, Any]:
    """The `count --json` document."""

    def totals(t: Any) -> dict[str, Any]:
        keys = (
            "lines",
            "records",
            "blank",
            "invalid",
            "tokens",
            "text_bytes",
            "input_bytes",
            "problems_by_code",
        )
        return {k: getattr(t, k) for k in keys} | {"bytes_per_token": t.bytes_per_token}

    return {
        "tokenlens_version": _core.__version__,
        "encoding": result.encoding,
        "files": [
            {"name": f.name, "compression": f.compression, "error": f.error} | totals(f) for f in result.files
        ],
        "total": totals(result.total),
        "problems": [p.__dict__ for p in result.problems],
    }


@main.command()
@input_options
@click.option(
    "--field",
    "-f",
    default=None,
    help="Key or dotted path of the text to count [default: chat message contents, else text, "
    "else prompt and completion].",
)
@click.option(
    "--special-tokens",
    is_flag=True,
    help="Count text such as <|endoftext|> as special tokens (default: ordinary text).",
)
@click.option("--json", "json_path", default=None, metavar="FILE|-", help="Write the summary as JSON.")
@click.option("--force", is_flag=True, help="Replace report files that exist already.")
def count(
    paths: tuple[str, ...],
    encoding: str | None,
    threads: int | None,
    max_line_bytes: int,
    no_progress: bool,
    field: str | None,
    special_tokens: bool,
    json_path: str | None,
    force: bool,
) -> None:
    """Count tokens exactly, per file and in total."""
    if list(paths).count("-") > 1:
        fail("stdin (-) can be read only once")
    _check_report_outputs(paths, [json_path], force)
    try:
        with progress_line(not no_progress) as progress:
            result = count_file(
                paths,
                encoding or "cl100k_base",
                field,
                special_tokens=special_tokens,
                threads=threads,
                keep_lines=False,
                max_line_bytes=max_line_bytes,
                progress=progress,
                missing_ok=True,
            )
    except (OSError, TokenlensError) as e:
        fail(str(e))
    except KeyboardInterrupt:
        click.echo("tokenlens: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    _print_count(result, _report_stream(json_path))
    if json_path is not None:
        write_json_atomic(json_path, count_summary(result))
    if any(f.error for f in result.files):
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_FINDINGS if result.total.invalid else EXIT_CLEAN)


def audit_options(command: F) -> F:
    """Options of the commands that audit fine-tuning data (scan, validate, cost)."""
    options = [
        click.option(
            "--model",
            "-m",
            default=None,
            help="Model profile: encoding, context limit and price (e.g. gpt-4o-mini).",
        ),
        click.option(
            "--format",
            "format_",
            type=click.Choice(["auto", "chat", "preference", "completion", "text"]),
            default="auto",
            show_default=True,
            help="Record format (auto: detected per record).",
        ),
        click.option("--field", "-f", default="text", show_default=True, help="Text field of text records."),
        click.option("--label-field", default=None, help="Key or dotted path of the class label."),
        click.option(
            "--context-limit",
            type=click.IntRange(min=1),
            default=None,
            help="Tokens per example before truncation [default: the model's].",
        ),
        click.option(
            "--price-per-mtok",
            type=click.FloatRange(min=0),
            default=None,
            help="Training price in USD per 1M tokens [default: the model's].",
        ),
        click.option(
            "--epochs",
            type=click.IntRange(min=1),
            default=None,
            help="Epochs [default: OpenAI's heuristic from the number of examples].",
        ),
        click.option(
            "--profiles",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            help="Your own model profiles file (same layout as the bundled models.json).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _encodings(encoding: str | None) -> list[str] | None:
    return [e.strip() for e in encoding.split(",") if e.strip()] if encoding else None


def _run_scan(
    paths: tuple[str, ...], no_progress: bool, encoding: str | None, format_: str = "auto", **kwargs: Any
) -> Report:
    from tokenlens.report import scan

    if list(paths).count("-") > 1:
        fail("stdin (-) can be read only once")
    try:
        with progress_line(not no_progress) as progress:
            return scan(
                paths,
                encoding=_encodings(encoding),
                format=format_,
                progress=progress,
                missing_ok=True,
                **kwargs,
            )
    except (OSError, TokenlensError) as e:
        fail(str(e))
    except KeyboardInterrupt:
        click.echo("tokenlens: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)


def _exit_for(report: Report) -> NoReturn:
    if any(f["error"] for f in report.summary["files"]):
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_FINDINGS if report.summary["invalid"] else EXIT_CLEAN)


def _print_file_errors(report: Report, out: TextIO) -> None:
    for f in report.summary["files"]:
        if f["error"]:
            print(f"{f['name']}: error: {f['error']}", file=out)


@main.command()
@input_options
@audit_options
@click.option("--warnings/--no-warnings", default=True, show_default=True, help="List warnings too.")
def validate(
    paths: tuple[str, ...],
    encoding: str | None,
    threads: int | None,
    max_line_bytes: int,
    no_progress: bool,
    warnings: bool,
    **audit: Any,
) -> None:
    """Check every line like a compiler: FILE:LINE: severity: code: message."""
    report = _run_scan(
        paths,
        no_progress,
        encoding,
        threads=threads,
        max_line_bytes=max_line_bytes,
        keep_records=False,
        **_scan_kwargs(audit),
    )
    out = sys.stdout
    shown = [p for p in report.problems if warnings or p.severity == "error"]
    for problem in shown:
        print(problem, file=out)
    s = report.summary
    listed = sum(s["errors"].values()) + (sum(s["warnings"].values()) if warnings else 0)
    if listed > len(shown):
        print(f"... and {listed - len(shown):,} more (see --json or scan --records)", file=out)
    _print_file_errors(report, out)
    for severity in ("errors", "warnings"):
        for code, n in sorted(s[severity].items(), key=lambda kv: -kv[1]):
            print(f"{n:>9,}  {severity[:-1]:<7}  {code}", file=out)
    print(
        f"{s['lines']:,} lines: {s['valid']:,} valid, {s['invalid']:,} invalid, {s['blank']:,} blank",
        file=out,
    )
    _exit_for(report)


def _scan_kwargs(audit: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": audit["model"],
        "field": audit["field"],
        "label_field": audit["label_field"],
        "context_limit": audit["context_limit"],
        "price_per_mtok": audit["price_per_mtok"],
        "epochs": audit["epochs"],
        "profiles": audit["profiles"],
        "format_": audit["format_"],
    }


def _cost_value(cost: dict[str, Any], key: str, fmt: str = "{:,.0f}") -> str:
    """A cost figure, with its 95% confidence interval when it is an estimate."""
    value = cost.get(key)
    if value is None:
        return "-"
    ci = cost.get(f"{key}_95ci")
    return fmt.format(value) + (f"  [{fmt.format(ci[0])} .. {fmt.format(ci[1])}]" if ci else "")


def _cost_lines(report: Report) -> list[str]:
    lines = []
    for cost in report.summary["costs"]:
        est = " (estimate from a sample, 95% CI)" if cost["estimate"] else ""
        lines.append(
            f"encoding {cost['encoding']}: {cost['tokens']:,} tokens in the {'sample' if est else 'data'}"
            + (f", limit {cost['limit']:,} per example" if cost["limit"] else "")
        )

        lines.append(f"  billed tokens per epoch: {_cost_value(cost, 'billed_tokens_per_epoch')}{est}")
        lines.append(f"  epochs: {cost['epochs']}")
        lines.append(f"  charged tokens: {_cost_value(cost, 'charged_tokens')}")
        price = (
            f" at ${cost['price_per_mtok']}/1M ({cost['price_source']})"
            if cost["price_per_mtok"] is not None
            else ""
        )
        lines.append(f"  cost: {_cost_value(cost, 'usd', '${:,.2f}')}{price}")
        if "own_hardware" in cost:
            hw = cost["own_hardware"]
            lines.append(f"  own hardware: {hw['gpu_hours']:,.1f} GPU-hours, ${hw['usd']:,.2f}")
    return lines


@main.command(name="cost")
@input_options
@audit_options
@click.option(
    "--sample",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=None,
    help="Estimate from this fraction of the lines (with a 95% confidence interval).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample.")
@click.option(
    "--tokens-per-second",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Own hardware: training throughput of one GPU.",
)
@click.option(
    "--usd-per-gpu-hour",
    type=click.FloatRange(min=0),
    default=None,
    help="Own hardware: price of one GPU-hour.",
)
@click.option("--json", "json_path", default=None, metavar="FILE|-", help="Write the summary as JSON.")
@click.option("--force", is_flag=True, help="Replace report files that exist already.")
def cost_command(
    paths: tuple[str, ...],
    encoding: str | None,
    threads: int | None,
    max_line_bytes: int,
    no_progress: bool,
    sample: float | None,
    seed: int,
    tokens_per_second: float | None,
    usd_per_gpu_hour: float | None,
    json_path: str | None,
    force: bool,
    **audit: Any,
) -> None:
    """What training on the data will cost: tokens, epochs, charged tokens, USD."""
    _check_report_outputs(paths, [json_path], force)
    if (tokens_per_second is None) != (usd_per_gpu_hour is None):
        raise click.UsageError("--tokens-per-second and --usd-per-gpu-hour go together")
    hardware = (
        OwnHardware(tokens_per_second, usd_per_gpu_hour)
        if tokens_per_second and usd_per_gpu_hour is not None
        else None
    )
    report = _run_scan(
        paths,
        no_progress,
        encoding,
        threads=threads,
        max_line_bytes=max_line_bytes,
        keep_records=False,
        sample=sample,
        seed=seed,
        hardware=hardware,
        **_scan_kwargs(audit),
    )
    out = _report_stream(json_path)
    _print_file_errors(report, out)
    print("\n".join(_cost_lines(report)), file=out)
    if json_path is not None:
        write_json_atomic(json_path, report.summary)
    _exit_for(report)


@main.command(name="scan")
@input_options
@audit_options
@click.option(
    "--pack-length",
    type=click.IntRange(min=1),
    default=None,
    help="Sequence length for the packing figures [default: the context limit].",
)
@click.option(
    "--sample",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=None,
    help="Audit this fraction of the lines and estimate the rest.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample.")
@click.option("--json", "json_path", default=None, metavar="FILE|-", help="Write the summary as JSON.")
@click.option(
    "--records",
    "records_path",
    default=None,
    metavar="FILE.parquet",
    help="Write one row per line (Parquet; .csv for CSV).",
)
@click.option(
    "--html", "html_path", default=None, metavar="FILE.html", help="Write a self-contained HTML report."
)
@click.option("--quiet", "-q", is_flag=True, help="Print no summary (outputs and the exit code only).")
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour in the summary.",
)
@click.option("--force", is_flag=True, help="Replace report files that exist already.")
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Run here, or on a Ray cluster (needs `pip install tokenlens[ray]`; -j is then each task's CPUs).",
)
@click.option(
    "--ray-address",
    default=None,
    metavar="auto|ray://HOST:PORT",
    help="The Ray cluster to join [default: start a local Ray runtime].",
)
@click.option(
    "--shard-mb",
    type=click.IntRange(min=1),
    default=128,
    show_default=True,
    help="With --engine ray: plain files are cut into shards of about this size.",
)
def scan_command(
    paths: tuple[str, ...],
    encoding: str | None,
    threads: int | None,
    max_line_bytes: int,
    no_progress: bool,
    pack_length: int | None,
    sample: float | None,
    seed: int,
    json_path: str | None,
    records_path: str | None,
    html_path: str | None,
    quiet: bool,
    color: str,
    force: bool,
    engine: str,
    ray_address: str | None,
    shard_mb: int,
    **audit: Any,
) -> None:
    """Audit fine-tuning data in one pass: validity, tokens, limits, labels, packing, cost."""
    _check_report_outputs(paths, [json_path, records_path, html_path], force)
    if engine == "local" and ray_address is not None:
        fail("--ray-address needs --engine ray")
    distributed: dict[str, Any] = {
        "engine": engine,
        "ray_address": ray_address,
        "shard_bytes": shard_mb << 20,
    }
    report = _run_scan(
        paths,
        no_progress,
        encoding,
        threads=threads,
        max_line_bytes=max_line_bytes,
        keep_records=bool(records_path or html_path),
        pack_length=pack_length,
        sample=sample,
        seed=seed,
        **distributed,
        **_scan_kwargs(audit),
    )
    if not quiet:
        from tokenlens.terminal import console, render_scan

        render_scan(report, console(_report_stream(json_path), color))
    if json_path is not None:
        report.write_json(json_path)
    if records_path is not None:
        (report.write_csv if records_path.endswith(".csv") else report.write_parquet)(records_path)
    if html_path is not None:
        report.write_html(html_path, command=_command_line())
    _exit_for(report)


def output_options(command: F) -> F:
    """Options of the commands that write a fixed dataset."""
    options = [
        click.option(
            "--output",
            "-o",
            required=True,
            metavar="OUT.jsonl[.gz|.zst]",
            help="Where the kept lines go (compressed by extension).",
        ),
        click.option("--force", is_flag=True, help="Replace OUT (and its manifest) if it exists."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def dedup_options(command: F) -> F:
    options = [
        click.option(
            "--keep",
            type=click.Choice(["first", "longest"]),
            default="first",
            show_default=True,
            help="Which record of a near-duplicate cluster stays.",
        ),
        click.option(
            "--ngram", type=click.IntRange(min=1), default=5, show_default=True, help="Words per shingle."
        ),
        click.option(
            "--num-perm",
            type=click.IntRange(min=1),
            default=112,
            show_default=True,
            help="MinHash permutations.",
        ),
        click.option("--bands", type=click.IntRange(min=1), default=14, show_default=True, help="LSH bands."),
        click.option(
            "--rows", type=click.IntRange(min=1), default=8, show_default=True, help="Rows per band."
        ),
        click.option(
            "--threshold",
            type=click.FloatRange(min=0, max=1),
            default=0.8,
            show_default=True,
            help="Jaccard similarity a candidate pair must reach to be joined.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _detection_curve(bands: int, rows: int) -> str:
    points = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95]
    return "  ".join(f"J={s:.2f}: {1 - (1 - s**rows) ** bands:.1%}" for s in points)


def _print_fix(result: FixResult, out: TextIO) -> None:
    print(
        f"{result.lines_read:,} lines read, {result.lines_written:,} written to {result.output}, "
        f"{len(result.dropped):,} dropped",
        file=out,
    )
    for reason, n in sorted(result.dropped_by_reason.items(), key=lambda kv: -kv[1]):
        print(f"  {n:>9,}  {reason}", file=out)
    print(f"manifest: {manifest_path(result.output)}", file=out)


def _run_fix(work: Callable[..., R], threads: int | None, max_line_bytes: int, no_progress: bool) -> R:
    """Runs the work of a command that writes a fixed dataset, giving it the reading options, the
    progress line and the command line that they all take; errors and Ctrl-C end it alike (the
    outputs are put in place together, so either all of them are there, whole, or none)."""
    committed_before = OutputSet.committed
    try:
        with progress_line(not no_progress) as progress:
            return work(
                threads=threads, max_line_bytes=max_line_bytes, progress=progress, command=_command_line()
            )
    except (OSError, TokenlensError) as e:
        fail(str(e))
    except KeyboardInterrupt:
        # Ctrl-C may come in the moment between putting the outputs in place and returning.
        written = OutputSet.committed > committed_before
        outcome = "the outputs were written whole" if written else "no output was written"
        click.echo(f"tokenlens: interrupted; {outcome}", err=True)
        sys.exit(EXIT_INTERRUPTED)


@main.command(name="dedup")
@input_options
@output_options
@dedup_options
@click.option("--field", "-f", default=None, help="Key or dotted path of the text [default: as count].")
@click.option("--exact-only", is_flag=True, help="Drop exact duplicates only.")
@click.option(
    "--clusters",
    "clusters_path",
    default=None,
    metavar="FILE.parquet",
    help="Write the near-duplicate clusters (file, line, cluster, ...).",
)
def dedup_command(
    paths: tuple[str, ...],
    encoding: str | None,
    threads: int | None,
    max_line_bytes: int,
    no_progress: bool,
    output: str,
    force: bool,
    field: str | None,
    exact_only: bool,
    clusters_path: str | None,
    **config: Any,
) -> None:
    """Drop exact and near-duplicate records; keep the rest byte for byte, in order."""
    from tokenlens.fix import dedup

    if not exact_only:
        print(
            f"detection probability ({config['bands']} bands x {config['rows']} rows): "
            f"{_detection_curve(config['bands'], config['rows'])}",
            file=sys.stderr,
        )
    work = partial(
        dedup,
        paths,
        output,
        field=field,
        exact_only=exact_only,
        clusters=clusters_path,
        force=force,
        **config,
    )
    result = _run_fix(work, threads, max_line_bytes, no_progress)
    _print_fix(result, sys.stdout)
    sys.exit(EXIT_CLEAN)


@main.command(name="filter")
@input_options
@output_options
@audit_options
@click.option("--drop-invalid", is_flag=True, help="Drop invalid and blank lines.")
@click.option("--drop-too-long", is_flag=True, help="Drop examples over the context limit.")
@click.option(
    "--max-tokens", type=click.IntRange(min=1), default=None, help="Drop examples with more tokens."
)
@click.option(
    "--drop-duplicates",
    type=click.Choice(["exact", "near"]),
    default=None,
    help="Drop exact duplicates, or exact and near duplicates.",
)
def filter_command(
    paths: tuple[str, ...],
    encoding: str | None,
    threads: int | None,
    max_line_bytes: int,
    no_progress: bool,
    output: str,
    force: bool,
    drop_invalid: bool,
    drop_too_long: bool,
    max_tokens: int | None,
    drop_duplicates: str | None,
    **audit: Any,
) -> None:
    """Keep the lines that pass the filters, byte for byte, in order."""
    from tokenlens.fix import filter_lines

    kwargs = _scan_kwargs(audit)
    kwargs["format"] = kwargs.pop("format_")
    work = partial(
        filter_lines,
        paths,
        output,
        drop_invalid=drop_invalid,
        drop_too_long=drop_too_long,
        max_tokens=max_tokens,
        drop_duplicates=drop_duplicates,
        encoding=encoding,
        force=force,
        **kwargs,
    )
    result = _run_fix(work, threads, max_line_bytes, no_progress)
    _print_fix(result, sys.stdout)
    sys.exit(EXIT_CLEAN)


@main.command(name="chunk")
@input_options
@output_options
@click.option(
    "--max-tokens", type=click.IntRange(min=1), required=True, help="Most tokens of a piece (counted alone)."
)
@click.option(
    "--overlap",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Each piece after the first starts this many tokens before the previous one's end.",
)
@click.option("--field", "-f", default="text", show_default=True, help="Top-level key of the text.")
def chunk_command(
    paths: tuple[str, ...],
    encoding: str | None,
    threads: int | None,
    max_line_bytes: int,
    no_progress: bool,
    output: str,
    force: bool,
    max_tokens: int,
    overlap: int,
    field: str,
) -> None:
    """Cut text records over --max-tokens into pieces at token boundaries; copy the rest byte for byte.

    Each piece is the record with its text replaced and source_file, source_line (1-based),
    chunk_index (0-based) and chunk_count added. Without --overlap the pieces of a record concatenate
    to its text exactly. The manifest beside OUT lists each cut record (changed) and each line that
    was copied because it is not a record with that text field (not_chunked)."""
    from tokenlens.fix import chunk

    if encoding is not None and "," in encoding:
        fail("chunk takes one encoding")
    if overlap >= max_tokens:
        fail("--overlap must be less than --max-tokens")
    work = partial(
        chunk,
        paths,
        output,
        max_tokens=max_tokens,
        overlap=overlap,
        field=field,
        encoding=encoding,
        force=force,
    )
    result = _run_fix(work, threads, max_line_bytes, no_progress)
    s = result.summary
    print(
        f"{result.lines_read:,} lines read, {result.lines_written:,} written to {result.output}: "
        f"{s['records_chunked']:,} records cut into {s['pieces']:,} pieces of at most {max_tokens:,} "
        f"{s['encoding']} tokens, {s['not_chunked']:,} lines copied without a text field",
        file=sys.stdout,
    )
    print(f"manifest: {manifest_path(result.output)}", file=sys.stdout)
    sys.exit(EXIT_CLEAN)


@main.command(name="split")
@input_options
@dedup_options
@click.option("--train", "train_path", required=True, metavar="OUT.jsonl[.gz|.zst]", help="Training lines.")
@click.option("--val", "val_path", required=True, metavar="OUT.jsonl[.gz|.zst]", help="Validation lines.")
@click.option(
    "--val-fraction",
    type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
    default=0.1,
    show_default=True,
    help="Share of the records that goes to validation.",
)
@click.option("--stratify", is_flag=True, help="Keep each label's share (within one example).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split.")
@click.option("--label-field", default=None, help="Key or dotted path of the label [default: as scan].")
@click.option("--field", "-f", default="text", show_default=True, help="Key or dotted path of text records.")
@click.option("--force", is_flag=True, help="Replace the outputs (and their manifests) if they exist.")
def split_command(
    paths: tuple[str, ...],
    encoding: str | None,
    threads: int | None,
    max_line_bytes: int,
    no_progress: bool,
    train_path: str,
    val_path: str,
    val_fraction: float,
    stratify: bool,
    seed: int,
    label_field: str | None,
    field: str,
    force: bool,
    **config: Any,
) -> None:
    """Split the valid records into train and validation, byte for byte, reproducibly (--seed).

    Exact duplicates and near-duplicate clusters go to one side whole, never across the split.
    Invalid and blank lines go to neither output; both manifests list them."""
    from tokenlens.fix import split

    work = partial(
        split,
        paths,
        train_path,
        val_path,
        val_fraction=val_fraction,
        stratify=stratify,
        seed=seed,
        label_field=label_field,
        field=field,
        encoding=_encodings(encoding),
        force=force,
        **config,
    )
    result = _run_fix(work, threads, max_line_bytes, no_progress)
    s = result.summary
    print(
        f"{s['records']:,} records: {s['train']:,} to {train_path}, {s['validation']:,} to {val_path} "
        f"({s['actual_val_fraction'] or 0:.1%}); {s['excluded']:,} invalid or blank lines in neither",
        file=sys.stdout,
    )
    print(
        f"{s['clusters_kept_together']:,} duplicate groups kept together "
        f"({s['records_in_clusters_kept_together']:,} records)",
        file=sys.stdout,
    )
    if s["targets_missed"]:
        print(
            f"{len(s['targets_missed']):,} strata missed their validation target (see manifest)",
            file=sys.stdout,
        )
    print(f"manifests: {manifest_path(train_path)}, {manifest_path(val_path)}", file=sys.stdout)
    sys.exit(EXIT_CLEAN)


@main.command(name="bench")
@click.option(
    "--mb", type=click.IntRange(min=1), default=128, show_default=True, help="Size of the generated corpus."
)
@click.option(
    "--threads",
    "-j",
    "thread_list",
    default=None,
    metavar="N[,N...]",
    help="Thread counts to measure [default: 1 and all cores].",
)
@click.option("--encoding", "-e", default="cl100k_base", show_default=True, help="A built-in encoding.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the generated corpus.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=None,
    help="Keep the corpus here and re-use it [default: a temporary directory, removed after].",
)
@click.option(
    "--rounds",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Timed rounds per tool and thread count, the tools taking turns; each tool's median counts.",
)
@click.option("--no-peers", is_flag=True, help="Measure tokenlens only.")
@click.option("--json", "json_path", default=None, metavar="FILE|-", help="Write the results as JSON.")
def bench_command(
    mb: int,
    thread_list: str | None,
    encoding: str,
    seed: int,
    directory: str | None,
    rounds: int,
    no_peers: bool,
    json_path: str | None,
) -> None:
    """Measure tokenlens, and the peers that are installed (tiktoken, toktok-rs, quicktok-v1, gigatoken),
    on a corpus generated here, at the same thread counts, in turns (the median of --rounds rounds);
    every peer's total is checked against tokenlens's. Exit 1 when one differs."""
    from tokenlens import bench

    if encoding not in _core.BUILTIN_ENCODINGS:
        fail(f"--encoding must be one of {', '.join(_core.BUILTIN_ENCODINGS)}")
    cpus = os.cpu_count() or 1
    try:
        threads = tuple(sorted({int(n) for n in (thread_list or f"1,{cpus}").split(",")}))
    except ValueError:
        fail(f"--threads takes numbers separated by commas, not {thread_list!r}")
    if threads[0] < 1:
        fail("--threads must be at least 1")
    # Peers built on rayon size their pool once, from this variable.
    os.environ.setdefault("RAYON_NUM_THREADS", str(max(threads)))

    def note(message: str) -> None:
        click.echo(f"tokenlens bench: {message}", err=True)

    with tempfile.TemporaryDirectory(prefix="tokenlens-bench-") as scratch:
        where = Path(directory or scratch)
        where.mkdir(parents=True, exist_ok=True)
        results = bench.run(where, mb, threads, encoding, seed, not no_peers, note, rounds)
    out = _report_stream(json_path)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{cpus} CPUs, load average {load}; {encoding}, generated corpus of {mb} MB (seed {seed}); "
        f"median of {rounds} rounds, tools in turn",
        file=out,
    )
    print("\n".join(bench.table(results)), file=out)
    notes = {r.tool: r.note for r in results if r.note}
    for tool, text in notes.items():
        print(f"  {tool}: {text}", file=out)
    if json_path is not None:
        document = bench.to_json(results)
        if json_path == "-":
            click.echo(json.dumps(document, indent=2))
        else:
            write_json_atomic(json_path, document)
    sys.exit(EXIT_FINDINGS if any(r.exact is False for r in results) else EXIT_CLEAN)
