"""Writing outputs safely: to a temporary file beside the destination, then an atomic rename."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from tokenlens.errors import InvalidInputError


def check_outputs(outputs: list[str | None], inputs: list[str], force: bool) -> None:
    """Refuses an output that is one of the inputs, or that exists already (unless `force`)."""
    real_inputs = {os.path.realpath(p) for p in inputs if p != "-"}
    for path in outputs:
        if path is None or path == "-":
            continue
        if os.path.realpath(path) in real_inputs:
            raise InvalidInputError(f"output {path} is also an input; choose another path")
        if os.path.exists(path) and not force:
            raise InvalidInputError(f"{path} exists; use --force to replace it")


@contextmanager
def atomic_output(path: str, mode: str = "w") -> Iterator[IO[Any]]:
    """Opens a temporary file in `path`'s directory; renames it onto `path` only if the block succeeds,
    so a failure or Ctrl-C never leaves a partial file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_json_atomic(path: str, document: Any) -> None:
    """Writes `document` as JSON to `path`, or to stdout for `-`."""
    if path == "-":
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    with atomic_output(path) as f:
        json.dump(document, f, indent=2)
        f.write("\n")
