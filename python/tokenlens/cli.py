"""The `tokenlens` command line. Exit codes: 0 clean, 1 the input has problems, 2 usage or I/O error.
Reports go to stdout (or stderr when `--json -` takes stdout); progress goes to stderr."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO, TypeVar

import click

from tokenlens import _core
from tokenlens.api import DEFAULT_MAX_LINE_BYTES, CountResult, count_file
from tokenlens.errors import TokenlensError
from tokenlens.output import write_json_atomic
from tokenlens.progress import progress_line

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
#: The shell's code for a run stopped by Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130
#: Problem lines printed by `count` before "... and N more".
SHOWN_PROBLEMS = 20

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> NoReturn:
    click.echo(f"tokenlens: error: {message}", err=True)
    sys.exit(EXIT_ERROR)


def input_options(command: F) -> F:
    """Options shared by every command that reads JSONL."""
    options = [
        click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True)),
        click.option(
            "--encoding",
            "-e",
            default="cl100k_base",
            show_default=True,
            help=f"One of {', '.join(_core.BUILTIN_ENCODINGS)}, or the path of a tokenizer.json.",
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
def count(
    paths: tuple[str, ...],
    encoding: str,
    threads: int | None,
    max_line_bytes: int,
    no_progress: bool,
    field: str | None,
    special_tokens: bool,
    json_path: str | None,
) -> None:
    """Count tokens exactly, per file and in total."""
    if list(paths).count("-") > 1:
        fail("stdin (-) can be read only once")
    try:
        with progress_line(not no_progress) as progress:
            result = count_file(
                paths,
                encoding,
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
