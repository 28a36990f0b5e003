"""A progress line on stderr, fed by counters the engine updates without the GIL."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from tokenlens._core import Progress

REFRESH_SECONDS = 0.2


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def render(progress: Progress, elapsed: float) -> str:
    """One status line: bytes done (of total), throughput, lines, ETA."""
    done, total = progress.bytes_read, progress.bytes_total
    rate = done / elapsed if elapsed > 0 else 0.0
    parts = [f"{_size(done)}" + (f" / {_size(total)}" if total else "")]
    parts.append(f"{rate / 1e6:.1f} MB/s")
    parts.append(f"{progress.lines_done:,} lines")
    if total and rate > 0 and done < total:
        parts.append(f"ETA {max(0.0, (total - done) / rate):.0f}s")
    return "  ".join(parts)


@contextmanager
def progress_line(enabled: bool, stream: TextIO = sys.stderr) -> Iterator[Progress]:
    """Yields engine counters; while the block runs, shows them on `stream` when it is a terminal."""
    progress = Progress()
    if not (enabled and stream.isatty()):
        yield progress
        return
    stop = threading.Event()
    start = time.monotonic()

    def draw() -> None:
        while not stop.wait(REFRESH_SECONDS):
            stream.write("\r\x1b[2K" + render(progress, time.monotonic() - start))
            stream.flush()

    thread = threading.Thread(target=draw, daemon=True)
    thread.start()
    try:
        yield progress
    finally:
        stop.set()
        thread.join()
        stream.write("\r\x1b[2K")
        stream.flush()
