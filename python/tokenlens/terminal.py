"""The terminal summary of `scan`: rich tables, coloured only on a terminal (or with --color always)."""

from __future__ import annotations

from typing import Any, TextIO

from rich import box
from rich.console import Console
from rich.table import Table

from tokenlens.report import Report

#: Line numbers shown beside each error or warning code.
SHOWN_LINES = 5
#: Columns of text (left-aligned); the others hold numbers.
TEXT_COLUMNS = {"status", "severity", "first lines", "price source"}


def console(out: TextIO, color: str) -> Console:
    """`color` is auto (colour on a terminal), always or never."""
    if color == "never":
        return Console(file=out, color_system=None, highlight=False, width=120)
    return Console(file=out, force_terminal=True if color == "always" else None, highlight=False)


def _first_lines(report: Report, code: str) -> str:
    lines = [str(p.line) for p in report.problems if p.code == code and p.line][:SHOWN_LINES]
    return ", ".join(lines)


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, title_style="bold")
    for i, name in enumerate(columns):
        text_column = i == 0 or name in TEXT_COLUMNS
        table.add_column(name, justify="left" if text_column else "right", overflow="fold")
    return table


def _n(value: Any) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def render_scan(report: Report, con: Console) -> None:
    s = report.summary
    con.print(f"[bold]tokenlens {s['tokenlens_version']}[/]  encoding [cyan]{s['encoding']}[/]")

    files = _table("Files", "file", "lines", "valid", "invalid", "blank", "not sampled", "status")
    rows = [*s["files"], {**s, "name": "total", "error": None}] if len(s["files"]) > 1 else s["files"]
    for f in rows:
        status = f"[red]{f['error']}[/]" if f["error"] else "[green]read to the end[/]"
        files.add_row(
            f["name"],
            _n(f["lines"]),
            _n(f["valid"]),
            f"[red]{f['invalid']:,}[/]" if f["invalid"] else "0",
            _n(f["blank"]),
            _n(f["not_sampled"]),
            status,
        )
    con.print(files)

    if s["errors"] or s["warnings"]:
        problems = _table("Errors and warnings", "code", "severity", "count", "first lines")
        for severity, style in (("errors", "red"), ("warnings", "yellow")):
            for code, n in sorted(s[severity].items(), key=lambda kv: -kv[1]):
                problems.add_row(code, f"[{style}]{severity[:-1]}[/]", _n(n), _first_lines(report, code))
        con.print(problems)

    dists = _table("Per valid example", "", "min", "p5", "p50", "mean", "p95", "max", "total")
    for name, key in (
        ("tokens", "tokens"),
        ("trainable tokens", "trainable_tokens"),
        ("messages", "messages"),
    ):
        d = s[key]
        dists.add_row(name, *(_n(d[k]) for k in ("min", "p5", "p50", "mean", "p95", "max", "total")))
    con.print(dists)
    formats = ", ".join(f"{n:,} {name}" for name, n in s["formats"].items())
    con.print(f"formats: {formats or '-'}")
    if s["cost"]["limit"]:
        style = "red" if s["too_long"] else "green"
        con.print(f"over the context limit ({s['cost']['limit']:,} tokens): [{style}]{s['too_long']:,}[/]")

    labels = s["labels"]
    if labels["classification"]:
        table = _table("Labels", "label", "examples", "share")
        total = sum(n for _, n in labels["classes"])
        for label, n in labels["classes"]:
            table.add_row(label, _n(n), f"{n / total:.1%}")
        con.print(table)
        flag = "[red]imbalanced (worse than 1:1.5)[/]" if labels["imbalanced"] else "[green]balanced[/]"
        con.print(f"max/min {labels['imbalance_ratio']:.2f}: {flag}")

    dup = s["duplicates"]
    if dup:
        table = _table("Duplicates", "", "records")
        table.add_row("exact duplicates", _n(dup["exact_duplicates"]))
        if dup["near_duplicates_searched"]:
            table.add_row("near-duplicate clusters", _n(dup["near_dup_clusters"]))
            table.add_row("records in clusters", _n(dup["records_in_clusters"]))
        else:
            table.add_row("near duplicates", "not searched (stdin too large to keep its signatures)")
        table.add_row("dedup would remove", _n(dup["removed"]))
        table.add_row("unique after dedup", f"{dup['unique_fraction']:.1%}")
        con.print(table)
        ratios = ", ".join(f"{d['n']}-gram {d['ratio']:.3f}" for d in dup["diversity"])
        con.print(f"diversity (distinct/total word n-grams): {ratios}")

    packing = s["packing"]
    if packing:
        u, p = packing["unpacked"], packing["packed_ffd"]
        con.print(
            f"packing at {packing['max_length']:,} tokens: {u['sequences']:,} sequences unpacked "
            f"({u['padding_waste_percent']:.1f}% padding), {p['sequences']:,} packed first-fit-decreasing "
            f"({p['padding_waste_percent']:.1f}% padding)"
        )

    cost = _table("Cost", "encoding", "tokens", "billed/epoch", "epochs", "charged", "USD", "price source")
    for c in s["costs"]:

        def ci(key: str, fmt: str = "{:,.0f}", c: dict[str, Any] = c) -> str:
            value, interval = c.get(key), c.get(f"{key}_95ci")
            if value is None:
                return "-"
            text = fmt.format(value)
            return text + (f" [{fmt.format(interval[0])}..{fmt.format(interval[1])}]" if interval else "")

        cost.add_row(
            c["encoding"],
            _n(c["tokens"]),
            ci("billed_tokens_per_epoch"),
            str(c["epochs"]),
            ci("charged_tokens"),
            ci("usd", "${:,.2f}"),
            c["price_source"] or "-",
        )
    con.print(cost)
    con.print(
        "epochs: OpenAI's default heuristic (target 3, clamped so that 100 <= examples x epochs <= 25,000, "
        "1..25) unless --epochs is given"
    )
    if s["cost"]["estimate"]:
        con.print("[yellow]estimated from a sample; brackets give the 95% confidence interval[/]")
