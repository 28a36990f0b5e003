"""A self-contained HTML report: one page, inline CSS, charts as inline SVG drawn here (no JavaScript,
no network resources of any kind), so it can be mailed, archived or opened offline."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenlens.report import Problem, Report

#: Longest text shown for one message, line or file name before it is cut with an ellipsis.
MAX_TEXT = 300
#: Example locations shown per error or warning code.
EXAMPLES_PER_CODE = 3
#: Duplicate clusters shown, largest first, and lines shown per cluster.
MAX_CLUSTERS = 6
LINES_PER_CLUSTER = 4

_CSS = """
:root { --fg:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; --accent:#3b6fd8;
        --bad:#c53030; --warn:#b7791f; --ok:#2f855a; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
       font:14px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header { background:#1f2933; color:#f5f7fa; padding:20px 32px; }
header h1 { margin:0 0 6px; font-size:22px; font-weight:600; }
header code { background:#323f4b; color:#e4e7eb; padding:2px 6px; border-radius:4px;
              word-break:break-all; }
header .meta { color:#9aa5b1; font-size:13px; }
main { max-width:1140px; margin:0 auto; padding:20px 32px 48px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:16px 20px;
          margin:18px 0; }
h2 { font-size:17px; margin:0 0 12px; font-weight:600; }
h3 { font-size:14px; margin:8px 0; font-weight:600; color:var(--muted); }
p.note { color:var(--muted); margin:6px 0 0; font-size:13px; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-weight:600; color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.03em; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
tr:last-child td { border-bottom:none; }
.cards { display:flex; flex-wrap:wrap; gap:12px; }
.card { flex:1 1 140px; background:#fff; border:1px solid var(--line); border-radius:8px; padding:12px 16px; }
.card .v { font-size:22px; font-weight:600; font-variant-numeric:tabular-nums; }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.03em; }
.card.bad .v { color:var(--bad); } .card.warn .v { color:var(--warn); } .card.ok .v { color:var(--ok); }
.sev { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; }
.sev.error { background:#fde8e8; color:var(--bad); } .sev.warning { background:#fdf3d8; color:var(--warn); }
.ex { font-size:13px; margin:2px 0; } .loc { font-family:ui-monospace, Menlo, Consolas, monospace;
      color:var(--muted); }
.grid { display:grid; grid-template-columns:repeat(auto-fit, minmax(420px, 1fr)); gap:16px; }
.chart svg { width:100%; height:auto; display:block; }
.chart.wide { grid-column:1 / -1; }
.clusters { display:grid; grid-template-columns:repeat(auto-fit, minmax(320px, 1fr)); gap:12px; }
.cluster { border:1px solid var(--line); border-radius:6px; padding:10px 12px; background:#fafbfc; }
.cluster pre { white-space:pre-wrap; word-break:break-word; margin:4px 0 8px; font-size:12px;
               font-family:ui-monospace, Menlo, Consolas, monospace; }
.empty { color:var(--muted); font-style:italic; }
"""


def _text(value: object, limit: int = MAX_TEXT) -> str:
    """HTML-escaped text, cut to `limit` characters."""
    s = str(value)
    if len(s) > limit:
        s = s[: limit - 1] + "\u2026"
    return escape(s, quote=True)


def _int(n: object) -> str:
    if n is None:
        return "\u2014"
    if isinstance(n, float):
        return f"{n:,.1f}"
    return f"{n:,}" if isinstance(n, int) else _text(n)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """A table of already-escaped cells; columns in `numeric` are right-aligned."""
    head = "".join(
        f'<th class="num">{h}</th>' if i in numeric else f"<th>{h}</th>" for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(title: str, body: str, note: str = "") -> str:
    extra = f'<p class="note">{note}</p>' if note else ""
    return f"<section><h2>{escape(title)}</h2>{body}{extra}</section>"


# ---------------------------------------------------------------------------------------------- charts


@dataclass(frozen=True)
class _Bin:
    lo: float
    hi: float
    count: int
    label: str
    tail: bool = False  # an overflow bin of the long tail, drawn apart


def _nice_step(span: float, target_bins: int) -> float:
    """A 1, 2 or 5 times a power of ten near span / target_bins (at least 1: the data are integers)."""
    raw = max(span / max(target_bins, 1), 1.0)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return float(m * mag)
    return float(10 * mag)


def _bins(values: Sequence[int], limit: int | None, target_bins: int = 24) -> list[_Bin]:
    """Integer-aligned histogram bins. A long tail (max well beyond the 99th percentile) goes into
    overflow bins (split at the context limit when it falls in the tail), so that one huge example
    does not squash the chart into a single bar."""
    if not values:
        return []
    vs = sorted(values)
    lo, hi = vs[0], vs[-1]
    p99 = vs[min(len(vs) - 1, math.ceil(0.99 * len(vs)) - 1)]
    cap = hi
    if hi > 2 * max(p99, 1) and hi - lo > 20:
        cap = min(hi, int(p99 * 1.25) + 1)
    if cap - lo + 1 < 8:  # Few distinct values: pad to eight slots so that bars keep a sensible width.
        lo = max(0, lo - (8 - (cap - lo + 1)) // 2)
        cap = lo + 7
    step = _nice_step(cap - lo + 1, target_bins)
    start = math.floor(lo / step) * step
    n = max(1, math.floor((cap - start) / step) + 1)
    counts = [0] * n
    for v in vs:
        if v <= cap:
            counts[min(n - 1, int((v - start) // step))] += 1
    out = []
    for i, c in enumerate(counts):
        a = start + i * step
        b = a + step
        label = f"{int(a):,}" if step == 1 else f"{int(a):,}\u2013{int(b) - 1:,}"
        out.append(_Bin(a, b, c, label))
    edge = int(start + n * step)  # first value past the regular bins
    tail = [v for v in vs if v >= edge]
    if tail:
        if limit is not None and edge <= limit < hi:
            below = sum(1 for v in tail if v <= limit)
            out.append(_Bin(edge, limit + 1, below, f"{edge:,}\u2013{limit:,}", True))
            out.append(_Bin(limit + 1, hi + 1, len(tail) - below, f"> {limit:,} (max {hi:,})", True))
        else:
            out.append(_Bin(edge, hi + 1, len(tail), f"\u2265 {edge:,} (max {hi:,})", True))
    return out


def _fmt_axis(v: float) -> str:
    if v >= 10_000:
        return f"{v / 1000:,.0f}k"
    return f"{int(v):,}"


def _histogram_svg(
    title: str,
    values: Sequence[int],
    x_label: str,
    limit: int | None = None,
    color: str = "#3b6fd8",
    wide: bool = False,
) -> str:
    """A histogram as inline SVG: bars, count axis with ticks, value axis, long-tail bins set apart in
    red, and the context limit as a dashed red line."""
    if not values:
        return f'<div class="chart"><h3>{escape(title)}</h3><p class="empty">No valid examples.</p></div>'
    bins = _bins(values, limit)
    regular = [b for b in bins if not b.tail]
    tails = [b for b in bins if b.tail]
    w, h = (1040, 280) if wide else (520, 250)
    ml, mr, mt, mb = 48, 14, 16, 52
    pw, ph = w - ml - mr, h - mt - mb
    ymax = max(b.count for b in bins)
    ystep = _nice_step(ymax, 4)
    ytop = max(ystep * math.ceil(ymax / ystep), 1.0)
    gap = 0.6 if tails else 0.0
    tw = 2.2  # width of a tail bar, in slots
    slot = pw / (len(regular) + gap + tw * len(tails))
    # Left edge and width of every bar, regular bins first, then the tail bins after a gap.
    geo: list[tuple[float, float]] = [(ml + i * slot, slot) for i in range(len(regular))]
    x0 = ml + (len(regular) + gap) * slot
    geo += [(x0 + j * tw * slot, tw * slot) for j in range(len(tails))]
    parts = [
        f'<svg viewBox="0 0 {w} {h}" role="img" aria-label="{escape(title)}" '
        f'font-family="sans-serif" font-size="12">'
    ]
    t = 0.0
    while t <= ytop + 1e-9:
        y = mt + ph - ph * t / ytop
        parts.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e7eb"/>')
        parts.append(
            f'<text x="{ml - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#616e7c">{_fmt_axis(t)}</text>'
        )
        t += ystep
    for b, (x, bw) in zip(bins, geo, strict=True):
        bh = max(ph * b.count / ytop, 2.0) if b.count else 0.0  # a lone example stays visible
        fill = "#e05252" if b.tail else color
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{mt + ph - bh:.1f}" width="{max(bw - 2, 1):.1f}" height="{bh:.1f}" '
            f'fill="{fill}" rx="1"><title>{escape(b.label)}: {b.count:,}</title></rect>'
        )
        if b.tail and b.count:
            parts.append(
                f'<text x="{x + bw / 2:.1f}" y="{mt + ph - bh - 3:.1f}" text-anchor="middle" '
                f'fill="#c53030">{b.count:,}</text>'
            )
    # Value axis: about six labels over the regular bins (at bar centres), one under each tail bin.
    every = max(1, math.ceil(len(regular) / 6))
    ticks: list[tuple[float, str]] = [
        (geo[i][0] + slot / 2, _fmt_axis(b.lo)) for i, b in enumerate(regular) if i % every == 0
    ]
    for b, (x, bw) in zip(tails, geo[len(regular) :], strict=True):
        if b.label.startswith(">"):
            short = f"> {_fmt_axis(b.lo - 1)}"
        elif b.label.startswith("\u2265"):
            short = f"\u2265 {_fmt_axis(b.lo)}"
        else:
            short = f"{_fmt_axis(b.lo)}\u2013{_fmt_axis(b.hi - 1)}"
        ticks.append((x + bw / 2, short))
    for x, text in ticks:
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{mt + ph}" y2="{mt + ph + 4}" stroke="#9aa5b1"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{mt + ph + 16}" text-anchor="middle" fill="#616e7c">{text}</text>'
        )
    parts.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{mt + ph}" y2="{mt + ph}" stroke="#9aa5b1"/>')
    parts.append(
        f'<text x="{ml + pw / 2:.1f}" y="{h - 18}" text-anchor="middle" fill="#1f2933">'
        f"{escape(x_label)}</text>"
    )
    parts.append(
        f'<text transform="translate(12 {mt + ph / 2:.1f}) rotate(-90)" text-anchor="middle" '
        f'fill="#1f2933">examples</text>'
    )
    notes: list[str] = []
    if tails:
        n_tail = sum(b.count for b in tails)
        plural = "s" if n_tail != 1 else ""
        notes.append(f"Red bars: the long tail, {n_tail:,} example{plural} past {tails[0].lo - 1:,.0f}.")
    if limit is not None:
        pos: float | None = None
        for b, (x, bw) in zip(bins, geo, strict=True):
            if b.tail and b.lo == limit + 1:
                pos = x
                break
            if not b.tail and b.lo <= limit < b.hi:
                pos = x + bw * (limit - b.lo) / (b.hi - b.lo)
                break
        if pos is None and limit < bins[0].lo:
            pos = float(ml)
        if pos is not None:
            parts.append(
                f'<line x1="{pos:.1f}" x2="{pos:.1f}" y1="{mt - 4}" y2="{mt + ph}" stroke="#c53030" '
                f'stroke-width="2" stroke-dasharray="5 3"/>'
            )
            anchor = "end" if pos > ml + pw * 0.6 else "start"
            dx = -5 if anchor == "end" else 5
            parts.append(
                f'<text x="{pos + dx:.1f}" y="{mt + 6}" text-anchor="{anchor}" fill="#c53030" '
                f'font-weight="bold">context limit {limit:,}</text>'
            )
        over = sum(1 for v in values if v > limit)
        notes.append(f"{over:,} of {len(values):,} examples exceed the context limit of {limit:,} tokens.")
        if pos is None:
            notes.append("The limit lies beyond every example.")
    parts.append("</svg>")
    n = len(values)
    vs = sorted(values)
    stats = f"n = {n:,} \u00b7 min {vs[0]:,} \u00b7 median {vs[n // 2]:,} \u00b7 max {vs[-1]:,}"
    extra = "".join(f"<br>{escape(x)}" for x in notes)
    cls = "chart wide" if wide else "chart"
    return (
        f'<div class="{cls}"><h3>{escape(title)}</h3>{"".join(parts)}<p class="note">{stats}{extra}</p></div>'
    )


def _bar_chart_svg(title: str, items: Sequence[tuple[str, int]]) -> str:
    """Horizontal bars, one per label, with the count and share written at the end of each bar."""
    if not items:
        return f'<div class="chart"><h3>{escape(title)}</h3><p class="empty">No labels.</p></div>'
    shown = list(items[:20])
    total = sum(c for _, c in items) or 1
    row = 26
    ml, mr = 150, 160
    w = 1000
    h = row * len(shown) + 12
    pw = w - ml - mr
    cmax = max(c for _, c in shown) or 1
    parts = [
        f'<svg viewBox="0 0 {w} {h}" role="img" '
        f'aria-label="{escape(title)}" font-family="sans-serif" font-size="12">'
    ]
    for i, (label, c) in enumerate(shown):
        y = 6 + i * row
        bw = pw * c / cmax
        parts.append(
            f'<text x="{ml - 8}" y="{y + 15}" text-anchor="end" fill="#1f2933">{_text(label, 24)}</text>'
            f'<rect x="{ml}" y="{y + 2}" width="{max(bw, 1):.1f}" height="{row - 8}" fill="#3b6fd8" rx="2">'
            f"<title>{_text(label)}: {c:,}</title></rect>"
            f'<text x="{ml + bw + 6:.1f}" y="{y + 15}" fill="#616e7c">{c:,} ({100 * c / total:.1f}%)</text>'
        )
    parts.append("</svg>")
    more = (
        f'<p class="note">{len(items) - len(shown):,} more labels not shown.</p>'
        if len(items) > len(shown)
        else ""
    )
    return f'<div class="chart"><h3>{escape(title)}</h3>{"".join(parts)}{more}</div>'


# -------------------------------------------------------------------------------------------- sections


def _header(summary: dict[str, Any], command: str | None) -> str:
    version = _text(summary.get("tokenlens_version", "?"))
    cmd = f"<div><code>{_text(command, 1000)}</code></div>" if command else ""
    enc = _text(summary.get("encoding") or "?")
    return (
        f"<header><h1>tokenlens report</h1>{cmd}"
        f'<div class="meta">tokenlens {version} \u00b7 encoding {enc} \u00b7 summary schema '
        f"v{_text(summary.get('schema_version', '?'))}</div></header>"
    )


def _cards(summary: dict[str, Any]) -> str:
    tokens = summary.get("tokens") or {}
    cost = summary.get("cost") or {}
    usd = cost.get("usd")

    def card(k: str, v: str, cls: str = "") -> str:
        return f'<div class="card {cls}"><div class="v">{v}</div><div class="k">{k}</div></div>'

    invalid = int(summary.get("invalid") or 0)
    too_long = int(summary.get("too_long") or 0)
    return (
        '<div class="cards">'
        + "".join(
            [
                card("valid examples", _int(summary.get("valid", 0)), "ok"),
                card("invalid lines", _int(invalid), "bad" if invalid else ""),
                card("over context limit", _int(too_long), "warn" if too_long else ""),
                card("tokens", _int(tokens.get("total", 0))),
                card("est. cost (USD)", f"${usd:,.2f}" if isinstance(usd, int | float) else "\u2014"),
            ]
        )
        + "</div>"
    )


def _files(summary: dict[str, Any]) -> str:
    rows = []
    for f in summary.get("files", []):
        lines = int(f.get("valid") or 0) + int(f.get("invalid") or 0) + int(f.get("blank") or 0)
        err = f'<span class="sev error">{_text(f["error"])}</span>' if f.get("error") else ""
        rows.append(
            [
                f"{_text(f.get('name', ''))} {err}",
                _int(lines),
                _int(f.get("valid")),
                _int(f.get("invalid")),
                _int(f.get("blank")),
                _int(f.get("not_sampled")),
                _text(f.get("compression") or ""),
            ]
        )
    if not rows:
        return _section("Files", '<p class="empty">No files.</p>')
    table = _table(
        ["file", "lines", "valid", "invalid", "blank", "not sampled", "compression"], rows, (1, 2, 3, 4, 5)
    )
    return _section("Files", table, "lines = valid + invalid + blank.")


def _problems(summary: dict[str, Any], problems: Sequence[Problem]) -> str:
    examples: dict[tuple[str, str], list[Problem]] = {}
    for p in problems:
        lst = examples.setdefault((p.severity, p.code), [])
        if len(lst) < EXAMPLES_PER_CODE:
            lst.append(p)
    counts: list[tuple[str, str, int]] = [
        ("error", c, int(n)) for c, n in (summary.get("errors") or {}).items()
    ]
    counts += [("warning", c, int(n)) for c, n in (summary.get("warnings") or {}).items()]
    # Codes only seen in the problem list (for instance a whole-file error) still get a row.
    known = {(s, c) for s, c, _ in counts}
    for (s, c), lst in examples.items():
        if (s, c) not in known:
            counts.append((s, c, len(lst)))
    if not counts:
        return _section("Errors and warnings", '<p class="empty">None: every line is valid.</p>')
    counts.sort(key=lambda t: (t[0] != "error", -t[2], t[1]))
    rows = []
    for sev, code, n in counts:
        ex = "".join(
            f'<div class="ex"><span class="loc">{_text(p.file, 80)}:{p.line}</span> {_text(p.message)}</div>'
            for p in examples.get((sev, code), [])
        )
        rows.append([f'<span class="sev {sev}">{sev}</span>', f"<code>{_text(code)}</code>", _int(n), ex])
    note = f"Up to {EXAMPLES_PER_CODE} example locations per code; counts cover all lines."
    return _section(
        "Errors and warnings", _table(["severity", "code", "count", "examples"], rows, (2,)), note
    )


def _distributions(report: Report) -> str:
    summary = report.summary
    rec = report.records
    limit = (summary.get("cost") or {}).get("limit")
    tokens: list[int] = []
    trainable: list[int] = []
    messages: list[int] = []
    if rec.height and "valid" in rec.columns:
        valid = rec.filter(rec["valid"])
        tokens = [int(v) for v in valid["tokens"].drop_nulls().to_list()]
        trainable = [int(v) for v in valid["trainable_tokens"].drop_nulls().to_list()]
        messages = [int(v) for v in valid["n_messages"].drop_nulls().to_list()]
    charts = [
        _histogram_svg("Tokens per example", tokens, "tokens", limit, wide=True),
        _histogram_svg("Trainable tokens per example", trainable, "trainable tokens", color="#2f855a"),
        _histogram_svg("Messages per example", messages, "messages", color="#805ad5"),
    ]
    note = "Valid examples only; the dashed red line marks the context limit."
    return _section("Distributions", f'<div class="grid">{"".join(charts)}</div>', note)


def _labels(summary: dict[str, Any]) -> str:
    labels = summary.get("labels") or {}
    if not labels.get("classification"):
        return ""
    classes = [(str(k), int(v)) for k, v in labels.get("classes") or []]
    ratio = labels.get("imbalance_ratio")
    note = f"{_int(labels.get('labeled'))} labeled, {_int(labels.get('unlabeled'))} unlabeled."
    if isinstance(ratio, int | float):
        note += f" Largest / smallest class: {ratio:.1f}\u00d7"
        note += " \u2014 imbalanced." if labels.get("imbalanced") else "."
    return _section("Label balance", _bar_chart_svg("Examples per label", classes), note)


def _costs(summary: dict[str, Any]) -> str:
    costs = summary.get("costs") or []
    if not costs:
        return ""
    rows = []
    for c in costs:
        usd = c.get("usd")
        rows.append(
            [
                _text(c.get("encoding") or ""),
                _text(c.get("model") or "\u2014"),
                _int(c.get("tokens")),
                _int(c.get("billed_tokens_per_epoch")),
                _int(c.get("epochs")),
                _int(c.get("charged_tokens")),
                _int(c.get("price_per_mtok")) if c.get("price_per_mtok") is not None else "\u2014",
                (f"${usd:,.4f}" if isinstance(usd, int | float) else "\u2014")
                + (" (estimate)" if c.get("estimate") else ""),
            ]
        )
    table = _table(
        ["encoding", "model", "tokens", "billed / epoch", "epochs", "charged tokens", "USD / Mtok", "cost"],
        rows,
        (2, 3, 4, 5, 6, 7),
    )
    sources = {str(c["price_source"]) for c in costs if c.get("price_source")}
    note = (
        "Epochs, unless given, follow the usual fine-tuning heuristic: target 3 epochs, clamped so that "
        "100 \u2264 examples \u00d7 epochs \u2264 25,000, and always between 1 and 25 epochs. "
        "Billed tokens per epoch count each example up to the context limit."
    )
    if sources:
        note += " Prices: " + "; ".join(_text(s) for s in sorted(sources)) + "."
    hw = [c["own_hardware"] for c in costs if c.get("own_hardware")]
    if hw:
        h = hw[0]
        note += (
            f" Own hardware: {_int(h.get('gpu_hours'))} GPU hours at {_int(h.get('tokens_per_second'))} "
            f"tokens/s, ${float(h.get('usd') or 0):,.2f}."
        )
    return _section("Training cost", table, note)


def _packing(summary: dict[str, Any]) -> str:
    packing = summary.get("packing")
    if not packing:
        return ""
    rows = []
    for key, name in (
        ("unpacked", "one example per sequence"),
        ("packed_ffd", "packed (first-fit decreasing)"),
    ):
        p = packing.get(key)
        if not p:
            continue
        waste = p.get("padding_waste_percent")
        rows.append(
            [
                _text(name),
                _int(p.get("sequences")),
                f"{waste:.1f}%" if isinstance(waste, int | float) else "\u2014",
                _int(p.get("truncated_examples")),
            ]
        )
    table = _table(["layout", "sequences", "padding waste", "truncated examples"], rows, (1, 2, 3))
    note = f"Sequence length {_int(packing.get('max_length'))} tokens."
    return _section("Packing", table, note)


def _duplicates(report: Report) -> str:
    dup = report.summary.get("duplicates")
    if not isinstance(dup, dict):
        return ""
    scalars = [(k, v) for k, v in dup.items() if isinstance(v, int | float | str | bool) and k != "clusters"]
    body = ""
    if scalars:
        body += _table(["measure", "value"], [[_text(k), _int(v)] for k, v in scalars], (1,))
    clusters = report.cluster_lines(MAX_CLUSTERS, LINES_PER_CLUSTER)
    cards = []
    for c in clusters[:MAX_CLUSTERS]:
        lines = []
        for entry in (c.get("lines") or [])[:LINES_PER_CLUSTER]:
            if isinstance(entry, list | tuple) and len(entry) >= 3:
                f, ln, text = entry[0], entry[1], entry[2]
                lines.append(f'<div class="loc">{_text(f, 80)}:{_text(ln)}</div><pre>{_text(text)}</pre>')
        cards.append(
            f'<div class="cluster"><h3>{_int(int(c.get("size") or 0))} copies</h3>{"".join(lines)}</div>'
        )
    if cards:
        body += f'<div class="clusters">{"".join(cards)}</div>'
    if not body:
        body = '<p class="empty">No duplicates found.</p>'
    total = dup.get("near_dup_clusters", len(clusters))
    note = f"Largest {len(clusters)} of {total:,} near-duplicate clusters." if clusters else ""
    return _section("Duplicates", body, note)


def render_html(report: Report, command: str | None = None) -> str:
    """The report as one self-contained HTML page (no scripts, no network resources)."""
    summary = report.summary
    parts = [
        _cards(summary),
        _files(summary),
        _problems(summary, report.problems),
        _distributions(report),
        _labels(summary),
        _costs(summary),
        _packing(summary),
        _duplicates(report),
    ]
    title = "tokenlens report" + (f" \u2014 {_text(command, 120)}" if command else "")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>"
        f"{_header(summary, command)}<main>{''.join(p for p in parts if p)}</main></body></html>\n"
    )
