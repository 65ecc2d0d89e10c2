"""Ctrl-C and SIGTERM as a user meets them: acknowledged at once, the step finished and saved, a second Ctrl-C
stops without saving; the scalar path keeps the same rules; a resumed run's progress continues where it was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nanochat_next.train import checkpoint

TINY = ["train", "--depth", "1", "--aspect-ratio", "32", "--head-dim", "32", "--max-seq-len", "32",
        "--device-batch-size", "2", "--total-batch-size", "128", "--eval-tokens", "256", "--vocab-size", "300",
        "--no-download", "--dtype", "float32", "--eval-every", "0"]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nanochat_next", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_steps(metrics: Path, n: int, key: str = "loss") -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        if metrics.exists() and sum(key in line for line in metrics.read_text().splitlines()) >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"{metrics} never reached {n} steps")


def test_ctrl_c_is_acknowledged_at_once_then_saves(tmp_path):
    proc = start(*TINY, "--steps", "100000", "--out", str(tmp_path), "--no-progress")
    wait_for_steps(tmp_path / "metrics.jsonl", 3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Ctrl-C: stopping after this step and saving (Ctrl-C again to stop now without saving)" in out + err
    latest = (tmp_path / "checkpoints" / "latest").read_text().strip()
    assert checkpoint.verify(tmp_path / "checkpoints" / latest) is None


def test_a_second_ctrl_c_stops_now_without_a_traceback(tmp_path):
    # a slow save (fault hook) keeps the process inside the first stop long enough for a second signal
    env = {**os.environ, "NANOCHAT_NEXT_TEST_SLEEP_BETWEEN_FILES": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "nanochat_next", *TINY, "--steps", "100000", "--out",
                             str(tmp_path), "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    wait_for_steps(tmp_path / "metrics.jsonl", 3)
    proc.send_signal(signal.SIGINT)
    time.sleep(2)  # now inside the save
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "interrupted"
    assert not list((tmp_path / "checkpoints").glob("step_*")), "the interrupted save left no checkpoint behind"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_scalar_training_saves_on_sigterm_and_ctrl_c(tmp_path, sig):
    proc = start("train", "--mode", "scalar", "--steps", "1000000", "--out", str(tmp_path), "--no-progress",
                 "--no-download")
    wait_for_steps(tmp_path / "metrics.jsonl", 20)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    saved = json.loads((tmp_path / "model.json").read_text())
    assert 20 <= saved["record"]["steps_done"] < 1000000 and saved["record"]["interrupted"]


def test_a_resumed_run_shows_progress_from_where_it_was(tmp_path):
    env = {**os.environ, "NANOCHAT_NEXT_TEST_CRASH_AFTER_SAVE": "4"}
    first = subprocess.run([sys.executable, "-m", "nanochat_next", *TINY, "--steps", "8", "--save-every", "4",
                            "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 17, first.stderr
    resumed = subprocess.run([sys.executable, "-m", "nanochat_next", *TINY, "--steps", "8", "--save-every", "4",
                              "--out", str(tmp_path), "--resume", "latest"], capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    frames = resumed.stderr.replace("\r", "\n").splitlines()
    counts = [line.split("|")[2].split()[0] for line in frames if line.startswith("train modern") and "|" in line]
    assert counts[0] == "4/8" and counts[-1] == "8/8", counts
    steps = [int(c.split("/")[0]) for c in counts]
    assert steps == sorted(steps), f"one bar, never restarted: {counts}"  # (the final line may print twice: tqdm's
    # close() reprints it, and whether the last update printed too depends on the machine's speed)
    assert "training a 300-token BPE tokenizer" in first.stdout  # announced the first time
    assert "training a 300-token BPE tokenizer" not in resumed.stdout  # reused on resume


@pytest.mark.slow
def test_sft_stops_on_sigterm_saves_and_resumes(tmp_path):
    """SFT runs on the same loop: SIGTERM finishes the step and saves; --resume latest continues it."""
    base = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "modern-next"
    sft = ["sft", "--base", str(base), "--mix", "arith:400", "--device-batch-size", "2", "--total-batch-size", "128",
           "--eval-every", "0", "--eval-tokens", "128", "--device", "cpu", "--no-progress", "--out", str(tmp_path)]
    proc = start(*sft, "--steps", "120")
    wait_for_steps(tmp_path / "metrics.jsonl", 3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Continue with --resume latest" in out + err, err
    step = int((tmp_path / "checkpoints" / "latest").read_text().strip().removeprefix("step_"))
    assert step < 120
    done = subprocess.run([sys.executable, "-m", "nanochat_next", *sft, "--steps", "120", "--resume", "latest"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resumed from {tmp_path / 'checkpoints' / f'step_{step:06d}'}" in done.stdout + done.stderr
    assert "done: 120 steps" in done.stdout
