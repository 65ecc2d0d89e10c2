"""Every bad input or environment fault is one `error:` line with exit code 2, found before the work where it can
be, and nothing saved before is lost: existing files as --out, read-only and full file systems (real ones,
mounted here as tmpfs where the machine allows it), hopeless memory requests, typos in numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from nanochat_next.train import checkpoint

TINY = ["--depth", "1", "--aspect-ratio", "32", "--head-dim", "32", "--max-seq-len", "32", "--device-batch-size",
        "2", "--total-batch-size", "128", "--eval-tokens", "256", "--vocab-size", "300", "--no-progress",
        "--no-download", "--dtype", "float32"]
SCALAR = ["--mode", "scalar", "--steps", "5", "--block-size", "8", "--eval-docs", "5", "--no-progress",
          "--no-download"]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "RUST_BACKTRACE": "0"}
    return subprocess.run([sys.executable, "-m", "nanochat_next", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def one_error_line(result: subprocess.CompletedProcess, expected: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout[-500:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and expected in last, result.stderr
    return last


def mount_tmpfs(path: Path, size: str, read_only: bool = False) -> None:
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and mount rights): {result.stderr.strip()}")


@pytest.fixture
def small_fs(tmp_path):
    """A real file system of a few MB (a tmpfs), unmounted afterwards."""
    mounts = []

    def make(size: str = "3m", read_only: bool = False) -> Path:
        path = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
        mount_tmpfs(path, size, read_only)
        mounts.append(path)
        return path

    yield make
    for path in mounts:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


# ------------------------------------------------------------------------------------------------ --out is a file
@pytest.mark.parametrize("command", [
    ["train", *TINY, "--steps", "1"], ["train", *SCALAR], ["tok-train", "--no-download"],
    ["tok-eval", "--no-download", "--vocab-sizes", "300"], ["export"],
])
def test_out_naming_an_existing_file_is_refused_before_any_work(tmp_path, command):
    target = tmp_path / "a-file"
    target.write_text("keep me")
    if command[0] == "export":
        command = [*command, "--checkpoint", str(trained_tensor(tmp_path / "run"))]
    result = run_cli(*command, "--out", str(target), timeout=120)
    one_error_line(result, "is a file, not a directory")
    assert target.read_text() == "keep me"
    assert "training" not in result.stdout, "refused before training"


def crashed_after_step_4(out: Path) -> Path:
    """A 6-step run with checkpoints every 2 steps that died right after saving step 4 (faults.CRASH_AFTER_SAVE)."""
    env = {**os.environ, "NANOCHAT_NEXT_TEST_CRASH_AFTER_SAVE": "4"}
    result = subprocess.run([sys.executable, "-m", "nanochat_next", "train", *TINY, "--steps", "6", "--eval-every",
                             "0", "--save-every", "2", "--out", str(out)], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 17, result.stderr
    return out


RESUME_6 = [*TINY, "--steps", "6", "--eval-every", "0", "--save-every", "2", "--resume", "latest"]


def trained_tensor(out: Path, *extra: str) -> Path:
    result = run_cli("train", *TINY, "--steps", "4", "--eval-every", "0", "--out", str(out), *extra)
    assert result.returncode == 0, result.stderr
    return out


# ------------------------------------------------------------------------------------------- read-only and full
@pytest.mark.parametrize("command", [
    ["train", *TINY, "--steps", "1"], ["train", *SCALAR], ["tok-train", "--no-download"],
    ["tok-eval", "--no-download", "--vocab-sizes", "300"], ["bench", "--profile", "smoke", "--no-baseline"],
])
def test_read_only_output_is_refused_before_any_work(small_fs, command):
    ro = small_fs("1m", read_only=True)
    result = run_cli(*command, "--out", str(ro / "run"), timeout=120)
    one_error_line(result, "Read-only file system")


def test_read_only_checkpoints_on_resume_is_one_line(tmp_path):
    out = crashed_after_step_4(tmp_path / "run")
    ckpts = out / "checkpoints"
    bind = subprocess.run(["mount", "--bind", str(ckpts), str(ckpts)], capture_output=True, text=True)
    if bind.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {bind.stderr.strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ckpts)], check=True)
        result = run_cli("train", *RESUME_6, "--out", str(out))
        one_error_line(result, "could not write checkpoint")
    finally:
        subprocess.run(["umount", "-l", str(ckpts)], capture_output=True)
    assert checkpoint.verify(ckpts / "step_000004") is None, "the checkpoint it resumed from is intact"


def test_a_real_full_disk_during_checkpoints_keeps_the_last_good_one(small_fs):
    fs = small_fs("2m")
    out = fs / "run"
    result = run_cli("train", *TINY, "--steps", "30", "--eval-every", "0", "--save-every", "1", "--out", str(out))
    one_error_line(result, "No space left on device")
    ckpts = out / "checkpoints"
    saved = sorted(p for p in ckpts.glob("step_*") if p.is_dir())
    assert saved and checkpoint.verify(saved[-1]) is None, "the newest checkpoint on disk is complete"
    assert not list(ckpts.glob(".step_*.tmp-*")), "no partial checkpoint left on the full disk"
    assert (ckpts / "latest").read_text().strip() == saved[-1].name


def test_a_full_disk_in_tokenizer_training_is_one_line(small_fs):
    fs = small_fs("64k")
    (fs / "filler").write_bytes(b"x" * (60 * 1024))
    result = run_cli("tok-train", "--no-download", "--vocab-size", "4096", "--out", str(fs / "tok"))
    one_error_line(result, "No space left on device")


def test_a_full_disk_in_scalar_training_rescues_the_model(small_fs):
    fs = small_fs("256k")
    out = fs / "scalar"
    out.mkdir()
    (fs / "filler").write_bytes(b"x" * (244 * 1024))  # room for config.json and metrics, not for the model
    result = run_cli("train", *SCALAR, "--out", str(out))
    last = one_error_line(result, "the trained model was saved to")
    rescued = Path(last.split("was saved to ")[1].split(" instead")[0])
    assert json.loads(rescued.read_text())["record"]["steps_done"] == 5


# ---------------------------------------------------------------------------------- orphans, memory, big numbers
def test_orphaned_partial_checkpoints_are_removed_at_start(tmp_path):
    out = crashed_after_step_4(tmp_path / "run")
    dead = out / "checkpoints" / ".step_000006.tmp-999999999"  # no such process
    live = out / "checkpoints" / f".step_000008.tmp-{os.getppid()}"  # a live process: maybe saving right now
    for d in (dead, live):
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"\0" * 4096)
    result = run_cli("train", *RESUME_6, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"removed {dead.name}" in result.stdout and not dead.exists()
    assert live.exists()


def test_a_model_too_big_for_memory_is_refused_with_the_estimate(tmp_path):
    result = run_cli("train", "--depth", "100", "--steps", "1", "--no-progress", "--no-download", "--out",
                     str(tmp_path / "big"), "--vocab-size", "300", timeout=120)
    last = one_error_line(result, "this run needs about")
    assert "GB" in last and "available" in last and "--depth" in last


def test_every_run_prints_its_memory_estimate(tmp_path):
    result = run_cli("train", *TINY, "--steps", "1", "--eval-every", "0", "--out", str(tmp_path / "r"))
    assert result.returncode == 0 and "memory estimate:" in result.stdout


def test_the_memory_estimate_grows_with_the_model():
    from nanochat_next.train.memory import estimate_training_bytes

    small = estimate_training_bytes(10**6, 4, 256, 4, 4096, 8, 256)
    big = estimate_training_bytes(10**8, 4, 256, 4, 4096, 8, 256)
    assert big["state"] == 100 * small["state"] == 16 * 10**8
    assert estimate_training_bytes(10**6, 4, 256, 4, 4096, 16, 256)["activations"] == 2 * small["activations"]


@pytest.mark.parametrize("args, expected", [
    (["train", "--steps", "99999999999999999999", "--out", "OUT"], "is more than 10,000,000"),
    (["train", "--mode", "scalar", "--steps", "99999999999999999999", "--out", "OUT"],
     "--steps must be between 1 and"),
    (["sample", "--num-samples", "1000000", "--checkpoint", "OUT"], "expected an integer from 1 to 100,000"),
    (["train", "--resume", "latest", "--out", "OUT", "--no-download"], "nothing to resume: run without --resume"),
    (["train", "--lr", "0.01", "--out", "OUT"], "muon (the default optimizer) has four"),
    (["train", "--optimizer", "adamw", "--matrix-lr", "0.01", "--out", "OUT"], "--optimizer adamw takes --lr"),
    (["train", "--depht", "3"], "unrecognized arguments: --depht"),
])
def test_bad_numbers_and_flags_are_one_line(tmp_path, args, expected):
    result = run_cli(*[str(tmp_path / "x") if a == "OUT" else a for a in args])
    one_error_line(result, expected)
    assert len(result.stderr.strip().splitlines()) == 1, "no usage dump before the error"


def test_a_read_only_cache_says_cannot_write_not_offline(small_fs, tmp_path):
    ro = small_fs("1m", read_only=True)
    env = {**os.environ, "NANOCHAT_NEXT_CACHE": str(ro / "cache"), "RUST_BACKTRACE": "0"}
    result = subprocess.run([sys.executable, "-m", "nanochat_next", "tok-train", "--out", str(tmp_path / "t")],
                            capture_output=True, text=True, env=env, timeout=60)
    last = one_error_line(result, "cannot write to the cache")
    assert "offline" not in last


def test_atomic_writes_get_the_umask_mode(tmp_path):
    from nanochat_next.atomic import write_text

    old = os.umask(0o022)
    try:
        path = write_text(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
