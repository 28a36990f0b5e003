"""Writing outputs safely. Each output goes to a temporary file beside its destination; the outputs
of one job (a dataset and its manifest, a train and a validation set) are renamed into place together,
once all are complete, so that an error or Ctrl-C never leaves a partial file or a file without its
companions."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from tokenlens import _core
from tokenlens.errors import InvalidInputError


def manifest_path(output: str) -> str:
    """Where the manifest of a fixed dataset `output` goes: beside it."""
    return f"{output}.manifest.json"


def check_outputs(outputs: list[str | None], inputs: list[str], force: bool) -> None:
    """Refuses an output that is one of the inputs, that is named twice, or that exists already
    (unless `force`)."""
    real_inputs = {os.path.realpath(p) for p in inputs if p != "-"}
    seen: set[str] = set()
    for path in outputs:
        if path is None or path == "-":
            continue
        real = os.path.realpath(path)
        if real in real_inputs:
            raise InvalidInputError(f"output {path} is also an input; choose another path")
        if real in seen:
            raise InvalidInputError(f"{path} is given for two outputs; choose another path")
        seen.add(real)
        if os.path.exists(path) and not force:
            raise InvalidInputError(f"{path} exists; use --force to replace it")


class OutputSet:
    """The outputs of one job, complete in temporary files and not yet in place."""

    #: Sets committed in this process, so that a caller interrupted by Ctrl-C can tell whether its
    #: outputs were put in place before.
    committed = 0

    def __init__(self) -> None:
        self._pending: list[_core.PendingOutput] = []

    def add(self, pending: _core.PendingOutput) -> None:
        """Takes an output that the engine wrote."""
        self._pending.append(pending)

    @contextmanager
    def open(self, path: str, mode: str = "w") -> Iterator[IO[Any]]:
        """A file to write the output `path` to."""
        pending = _core.PendingOutput(path)
        self.add(pending)
        with open(pending.temp, mode) as f:
            yield f

    def commit(self) -> None:
        """Renames every output into place. Ctrl-C waits meanwhile: the renames take no time, and
        stopping between two of them would leave an output without its companions."""
        with _ctrl_c_ignored():
            for pending in self._pending:
                pending.commit()
            OutputSet.committed += 1

    def discard(self) -> None:
        """Removes the temporary files of the outputs not committed."""
        for pending in self._pending:
            pending.discard()


@contextmanager
def outputs_together() -> Iterator[OutputSet]:
    """An output set that is committed if the block succeeds and discarded otherwise."""
    outputs = OutputSet()
    try:
        yield outputs
        outputs.commit()
    finally:
        outputs.discard()


@contextmanager
def atomic_output(path: str, mode: str = "w") -> Iterator[IO[Any]]:
    """A file for the single output `path`, in place only if the block succeeds."""
    with outputs_together() as outputs, outputs.open(path, mode) as f:
        yield f


@contextmanager
def _ctrl_c_ignored() -> Iterator[None]:
    """Ignores Ctrl-C in the block: the work is done by then, and the run ends normally. Only the
    main thread handles signals, so elsewhere this does nothing (and nothing is needed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # A Ctrl-C that came before is raised here, by signal.signal, before anything is renamed.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)


def write_json_atomic(path: str, document: Any) -> None:
    """Writes `document` as JSON to `path`, or to stdout for `-`."""
    if path == "-":
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    with atomic_output(path) as f:
        json.dump(document, f, indent=2)
        f.write("\n")
