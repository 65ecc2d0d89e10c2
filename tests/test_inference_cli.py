"""`sample` and `chat` on a tensor checkpoint, end to end."""

from __future__ import annotations

import subprocess
import sys

import pytest

TINY = ["--depth", "1", "--aspect-ratio", "32", "--head-dim", "32", "--max-seq-len", "32", "--device-batch-size",
        "2", "--total-batch-size", "128", "--eval-tokens", "256", "--vocab-size", "300", "--no-progress",
        "--no-download"]


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nanochat_next", *args], capture_output=True, text=True,
                          input=stdin, timeout=300)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("tensor")
    result = run_cli("train", "--mode", "tensor", "--steps", "10", "--eval-every", "0", "--out", str(out), *TINY)
    assert result.returncode == 0, result.stderr
    return out


def test_sample_is_reproducible_and_streaming_matches(checkpoint):
    args = ["sample", "--checkpoint", str(checkpoint), "--prompt", "KING", "--max-new-tokens", "15"]
    a = run_cli(*args, "--num-samples", "3", "--seed", "4", "--top-k", "20")
    b = run_cli(*args, "--num-samples", "3", "--seed", "4", "--top-k", "20")
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout and a.stdout.count("KING") == 3
    greedy = run_cli(*args, "--num-samples", "1", "--temperature", "0")
    streamed = run_cli(*args, "--num-samples", "1", "--temperature", "0", "--stream")
    assert greedy.stdout == streamed.stdout and greedy.stdout.startswith("KING")


def test_chat_answers_every_line_and_survives_a_long_history(checkpoint):
    lines = ["hello", "tell me about the king " * 3, "and the queen?", "x" * 200, "/clear", "bye"]
    result = run_cli("chat", "--checkpoint", str(checkpoint), "--max-new-tokens", "8", stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) >= 5  # one reply per message (a reply may contain newlines)


BAD = {
    "temperature nan": (["--temperature", "nan"], "expected a number >= 0"),
    "top-p too big": (["--top-p", "1.5"], "expected a number in [0, 1]"),
    "top-k zero": (["--top-k", "0"], "expected a positive integer"),
    "prompt past the context": (["--prompt", "word " * 40], "but the model's context is 32"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_sampling_input(checkpoint, case):
    extra, expected = BAD[case]
    result = run_cli("sample", "--checkpoint", str(checkpoint), *extra)
    assert result.returncode == 2 and expected in result.stderr.strip().splitlines()[-1], result.stderr


def test_missing_checkpoint(tmp_path):
    for command in ("sample", "chat"):
        result = run_cli(command, "--checkpoint", str(tmp_path / "none"))
        assert result.returncode == 2 and "no " in result.stderr and "Traceback" not in result.stderr
