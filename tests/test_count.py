"""`count_file` and `tokenlens count`: accounting, errors, inputs, exit codes."""

from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from random import Random

import pytest
import tokenlens
import zstandard
from tokenlens._core import Progress

from tests.conftest import SAMPLE, interruptible, reference_encoding

CLI = [sys.executable, "-m", "tokenlens"]


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, timeout=120, check=False)


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_broken_line_in_the_middle_is_reported_and_later_lines_counted(tmp_path: Path) -> None:
    lines = [json.dumps({"text": f"line number {i}"}) for i in range(1, 1001)]
    lines[499] = '{"text": "broken'
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = tokenlens.count_file(path, threads=2)
    assert (result.total.lines, result.total.records, result.total.invalid) == (1000, 999, 1)
    assert [(p.line, p.code) for p in result.problems] == [(500, "invalid_json")]
    reference = reference_encoding("cl100k_base")
    expected = sum(len(reference.encode_ordinary(f"line number {i}")) for i in range(1, 1001) if i != 500)
    assert result.total.tokens == expected
    assert result.lines.filter(result.lines["line"] > 500)["tokens"].null_count() == 0


def test_every_line_is_accounted_for(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b'{"text": "a"}\r\n\n   \n[1]\n{"x": 1}\n\xff\xfe\n{"text": "last, no newline"}')
    progress = Progress()
    result = tokenlens.count_file(path, progress=progress)
    t = result.total
    assert t.lines == t.records + t.blank + t.invalid == 7
    # The progress line ends at every line and byte too, the last line without a newline included.
    assert (progress.lines_done, progress.bytes_read) == (7, path.stat().st_size)
    assert (t.records, t.blank, t.invalid) == (2, 2, 3)
    assert t.problems_by_code == {"data_type": 1, "no_text": 1, "invalid_utf8": 1}
    assert result.lines["status"].to_list() == ["ok", "blank", "blank", "invalid", "invalid", "invalid", "ok"]
    errors = [None, None, None, "data_type", "no_text", "invalid_utf8", None]
    assert result.lines["error"].to_list() == errors
    assert result.lines["tokens"].to_list() == [1, None, None, None, None, None, 4]  # "last|,| no| newline"
    assert result.lines["file"].to_list() == [str(path)] * 7
    assert result.lines["offset"].to_list() == [0, 15, 16, 20, 24, 33, 36]


def test_compressed_inputs_are_detected_by_content(tmp_path: Path) -> None:
    records = [{"text": f"hello {i}"} for i in range(100)]
    plain = write_jsonl(tmp_path / "plain.jsonl", records)
    data = plain.read_bytes()
    (tmp_path / "gz.data").write_bytes(gzip.compress(data[:500]) + gzip.compress(data[500:]))  # multi-member
    (tmp_path / "zst.jsonl").write_bytes(zstandard.ZstdCompressor().compress(data))
    results = [tokenlens.count_file(tmp_path / n) for n in ("plain.jsonl", "gz.data", "zst.jsonl")]
    assert [r.files[0].compression for r in results] == ["none", "gzip", "zstd"]
    assert len({(r.total.lines, r.total.tokens) for r in results}) == 1


def test_results_do_not_depend_on_thread_count(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "word " * (i % 50) + str(i)} for i in range(5000)])
    one = tokenlens.count_file(path, threads=1)
    for threads in (2, 3, 8):
        other = tokenlens.count_file(path, threads=threads)
        assert other.total == one.total
        assert other.lines.equals(one.lines)


def test_field_selects_the_text(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"body": {"text": "hello world"}, "text": "x"}])
    enc = tokenlens.Encoding("cl100k_base")
    assert tokenlens.count_file(path, field="body.text").total.tokens == enc.count("hello world")
    assert tokenlens.count_file(path, field="missing").total.problems_by_code == {"field_missing": 1}


def test_missing_file_is_a_file_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        tokenlens.count_file(tmp_path / "nope.jsonl")
    with pytest.raises(tokenlens.TokenizerError):
        tokenlens.Encoding("cl99k_base")
    assert issubclass(tokenlens.TokenizerError, tokenlens.TokenlensError)
    with pytest.raises(FileNotFoundError):
        tokenlens.Encoding(str(tmp_path / "tokenizer.json"))


def test_cli_counts_the_sample_and_exits_1_for_broken_lines() -> None:
    proc = run_cli("count", str(SAMPLE), "--no-progress")
    out = proc.stdout.decode()
    assert proc.returncode == 1, proc.stderr
    assert "sample_chat.jsonl:91: invalid_json" in out
    assert "bytes/token" in out


def test_cli_exit_codes(tmp_path: Path) -> None:
    clean = write_jsonl(tmp_path / "clean.jsonl", [{"text": "fine"}])
    assert run_cli("count", str(clean)).returncode == 0
    missing = run_cli("count", str(clean), str(tmp_path / "missing.jsonl"))
    assert missing.returncode == 2
    assert b"missing.jsonl" in missing.stdout + missing.stderr
    assert b"clean.jsonl" in missing.stdout  # the other file was still counted
    assert run_cli("count").returncode == 2
    assert run_cli("count", str(clean), "--threads", "0").returncode == 2
    assert run_cli("count", str(clean), "--encoding", "nope").returncode == 2


def test_cli_truncated_stream_is_an_io_error_that_keeps_what_was_read(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(json.dumps({"text": f"row {i}"}).encode() + b"\n" for i in range(50000)))
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    proc = run_cli("count", str(path), "--json", "-")
    assert proc.returncode == 2
    summary = json.loads(proc.stdout)
    assert "truncated or corrupt gzip stream" in summary["files"][0]["error"]
    assert summary["total"]["records"] > 1000


def test_cli_json_to_stdout_is_pure_json_and_reads_stdin(tmp_path: Path) -> None:
    data = b'{"text": "from stdin"}\n{"text": "two"}\n'
    proc = run_cli("count", "-", "--json", "-", stdin=data)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["total"]["records"] == 2
    assert summary["files"][0]["name"] == "-"
    assert b"records" in proc.stderr  # the table went to stderr


def test_cli_json_file_is_written(tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    assert run_cli("count", str(SAMPLE), "--json", str(out)).returncode == 1
    summary = json.loads(out.read_text())
    assert (
        summary["total"]["lines"]
        == summary["total"]["records"] + summary["total"]["blank"] + summary["total"]["invalid"]
    )
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_cli_version_names_the_build_profile() -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert (
        proc.stdout.decode().strip() == f"tokenlens {tokenlens.__version__} ({tokenlens.BUILD_PROFILE} build)"
    )


def write_slow_jsonl(path: Path, lines: int) -> Path:
    """Lines of random base64 text (4 KB each): nearly every piece is new and must be merged, so one
    thread counts them at tens of MB/s. Repeated text is counted too fast to be caught running."""
    random = Random(0)
    with path.open("w") as f:
        for _ in range(lines):
            f.write(json.dumps({"text": base64.b64encode(random.randbytes(3000)).decode()}) + "\n")
    return path


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_ctrl_c_stops_a_long_run_promptly(tmp_path: Path, source: str) -> None:
    # A file that takes a while to count, or a pipe that never ends: either way Ctrl-C stops the run.
    path = write_slow_jsonl(tmp_path / "big.jsonl", 40_000)
    args = [str(path)] if source == "file" else ["-"]
    proc = interruptible(
        [*CLI, "count", *args, "--threads", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    if source == "stdin":
        proc.stdin.write(b'{"text": "a"}\n' * 1000)
        proc.stdin.flush()
    time.sleep(1.5)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - started < 5
    assert proc.returncode == 130
    assert b"interrupted" in stderr.lower()


@pytest.mark.parametrize("threads", [1, 2])
def test_ctrl_c_stops_a_long_count_batch_promptly(threads: int) -> None:
    # Long runs of random letters make pieces that no cache holds: about 8 MB/s on one thread, so the
    # 160 MB batch would run for many seconds if Ctrl-C waited for it.
    script = f"""
import os
import tokenlens
encoding = tokenlens.Encoding("cl100k_base")
letters = bytes(97 + i % 26 for i in range(256))
texts = [os.urandom(4096).translate(letters).decode() for _ in range(40_000)]
print("counting", flush=True)
encoding.count_batch(texts, threads={threads})
print("finished", flush=True)
"""
    proc = interruptible([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"counting\n"
    time.sleep(1)
    assert proc.poll() is None, "the batch finished before it could be interrupted"
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert time.monotonic() - started < 3, "Ctrl-C waited for the batch"
    assert b"KeyboardInterrupt" in stderr
    assert b"finished" not in stdout


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX")
def test_python_api_releases_the_gil(tmp_path: Path) -> None:
    import threading

    path = write_slow_jsonl(tmp_path / "d.jsonl", 4000)
    ticks = 0
    done = threading.Event()

    def tick() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0.001)

    thread = threading.Thread(target=tick)
    thread.start()
    tokenlens.count_file(path, threads=1)
    done.set()
    thread.join()
    assert ticks > 10


def test_report_files_never_replace_inputs_or_existing_files(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": "x"}])
    before = data.read_bytes()
    existing = tmp_path / "summary.json"
    existing.write_text("keep me")
    refused = run_cli("count", str(data), "--json", str(existing))
    assert refused.returncode == 2 and b"--force" in refused.stderr
    assert existing.read_text() == "keep me"
    assert run_cli("count", str(data), "--json", str(existing), "--force").returncode == 0
    assert json.loads(existing.read_text())["total"]["records"] == 1
    for command in (["count", "--json"], ["scan", "--records"], ["cost", "--json"]):
        proc = run_cli(command[0], str(data), command[1], str(data), "--force")
        assert proc.returncode == 2 and b"also an input" in proc.stderr
    both = tmp_path / "both"
    proc = run_cli("scan", str(data), "--json", str(both), "--html", str(both))
    assert proc.returncode == 2 and b"two outputs" in proc.stderr and not both.exists()
    assert data.read_bytes() == before


def test_count_on_the_command_line_does_not_import_polars(tmp_path: Path) -> None:
    # polars takes a few tenths of a second to import: the command line loads it only for the commands
    # that make tables, and a count makes the frame of its lines only when it is asked for.
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "hello world"}])
    script = """
import sys
from tokenlens.cli import main
try:
    main(["count", sys.argv[1], "--no-progress"])
except SystemExit as e:
    assert e.code == 0, e.code
assert "polars" not in sys.modules, "the count command imported polars"
import tokenlens
result = tokenlens.count_file(sys.argv[1])
assert "polars" not in sys.modules, "count_file imported polars"
assert result.lines["tokens"].to_list() == [2]
print(tokenlens.scan(sys.argv[1]).summary["tokens"]["total"])
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split()[-1] == "2"
