"""The HTML report: self-contained (no network resources), escaped, and it renders in headless Chromium.

Set TOKENLENS_WRITE_SCREENSHOT=1 to refresh docs/report.png from the sample."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from tokenlens.report import Report, scan

from tests.conftest import ROOT, SAMPLE

COMMAND = (
    "tokenlens scan examples/sample_chat.jsonl --model gpt-4o-mini --context-limit 2048 --html report.html"
)
EXTERNAL = re.compile(
    r"""(?:\b(?:src|href|srcset|action|poster|data|xlink:href)\s*=\s*["']?\s*(?:https?:)?//)"""
    r"""|(?:url\(\s*["']?\s*(?:https?:)?//)|(?:@import)""",
    re.IGNORECASE,
)


def _report(path: Path) -> Report:
    return scan(str(path), model="gpt-4o-mini", context_limit=2048)


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        pytest.skip("chromium is not installed (`make browser` installs it; `make test` runs that)")
    return exe


def _screenshot(html: Path, png: Path, height: int = 2400) -> None:
    """Renders `html` with every host name unresolvable, so that any network fetch would fail."""
    subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--screenshot={png}",
            f"--window-size=1200,{height}",
            html.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def _png_rows(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """Width, height, bytes per pixel and the unfiltered rows of an 8-bit RGB(A) non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = bpp = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def _assert_not_blank(png: Path) -> None:
    width, height, bpp, rows = _png_rows(png.read_bytes())
    assert width == 1200 and height > 1000
    colors: set[bytes] = set()
    non_white = 0
    for y in range(0, height, max(1, height // 40)):
        row = rows[y]
        for x in range(0, width, 2):
            px = row[x * bpp : x * bpp + 3]
            colors.add(px)
            non_white += px != b"\xff\xff\xff"
    assert len(colors) >= 20, f"only {len(colors)} distinct colors: the page looks blank"
    assert non_white >= 2000, f"only {non_white} sampled pixels are not white"


@pytest.fixture(scope="module")
def sample_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("html") / "report.html"
    _report(Path(os.path.relpath(SAMPLE))).write_html(str(path), command=COMMAND)  # short names
    return path


def test_html_is_self_contained(sample_html: Path) -> None:
    text = sample_html.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    for external in (
        '<img src="https://x/a.png">',
        "<link href='//cdn/x.css'>",
        "a{background:url( http://x)}",
    ):
        assert EXTERNAL.search(external), external  # the check itself catches what it must
    assert not EXTERNAL.findall(text), EXTERNAL.findall(text)
    assert "<script" not in text.lower() and "<link" not in text.lower() and "<img" not in text.lower()
    for needed in ("tokenlens 0.", "Tokens per example", "context limit 2,048", "Label balance", "Packing"):
        assert needed in text, needed
    assert "<svg" in text and "Duplicates" in text
    # The largest clusters show their lines' text, read again from the input.
    assert "near-duplicate clusters" in text and "You label the sentiment" in text


def test_html_escapes_content(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>"
    data = tmp_path / "evil <b>.jsonl"
    ok = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": evil}]}
    bad = '{"messages": [{"role": "' + evil + '", "content": "x"}]}'
    data.write_text(json.dumps(ok) + "\n" + bad + "\n", encoding="utf-8")
    report = _report(data)
    report.summary["duplicates"] = {
        "clusters": [{"cluster": 0, "size": 2, "lines": [[str(data), 1], [str(data), 2]]}]
    }
    out = tmp_path / "r.html"
    report.write_html(str(out), command=f"tokenlens scan '{data.name}' {evil}")
    text = out.read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    assert "&lt;script&gt;" in text
    assert "evil &lt;b&gt;.jsonl" in text
    assert "Duplicates" in text and "2 copies" in text


def test_html_empty_report(tmp_path: Path) -> None:
    data = tmp_path / "empty.jsonl"
    data.write_text("\n{not json\n", encoding="utf-8")
    out = tmp_path / "r.html"
    report = _report(data)
    report.summary["duplicates"] = {}
    report.write_html(str(out))
    text = out.read_text(encoding="utf-8")
    assert "No valid examples." in text and "invalid_json" in text


def test_html_renders_in_chromium(sample_html: Path, tmp_path: Path) -> None:
    exe = _chromium()
    png = tmp_path / "report.png"
    _screenshot(sample_html, png)
    _assert_not_blank(png)
    dom = subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--dump-dom",
            sample_html.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "Tokens per example" in dom and dom.count("<svg") >= 4
    if os.environ.get("TOKENLENS_WRITE_SCREENSHOT") == "1":
        docs = ROOT / "docs"
        docs.mkdir(exist_ok=True)
        _screenshot(sample_html, docs / "report.png", height=2000)
