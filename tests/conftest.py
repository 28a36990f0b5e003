"""Shared fixtures: the real data in ../shared/data and reference tokenizers built without network."""

from __future__ import annotations

import functools
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import tiktoken
import tokenlens

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLE = ROOT / "examples" / "sample_chat.jsonl"


def shared_file(name: str) -> Path:
    """A file of ../shared/data, or a skip with the reason when it is absent (a user's fresh clone)."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real data {path} is absent (it ships beside the repository in CI only)")
    return path


@functools.cache
def reference_encoding(name: str) -> tiktoken.Encoding:
    """tiktoken's Encoding built from the ranks tokenlens embeds, so that nothing is downloaded."""
    ours = tokenlens.Encoding(name)
    ranks = ours.tiktoken_ranks()
    assert ranks is not None and ours.pattern is not None
    return tiktoken.Encoding(
        name=f"reference_{name}",
        pat_str=ours.pattern,
        mergeable_ranks=ranks,
        special_tokens=ours.special_tokens,
    )


def interruptible(args: list[str], **popen: Any) -> subprocess.Popen[bytes]:
    """Starts `args` with Ctrl-C (SIGINT) at its default, for the tests that send it one: a child
    inherits an ignored SIGINT, as when the test suite itself runs as a background job, and Python
    then leaves it ignored."""
    return subprocess.Popen(args, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **popen)
