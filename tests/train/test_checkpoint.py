"""Checkpoint lifecycle: exact resume, crash recovery (kill -9 mid-save), signals, corruption, disk errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from nanochat_next.errors import UserError
from nanochat_next.train import checkpoint

TINY = ["train", "--mode", "tensor", "--depth", "1", "--aspect-ratio", "32", "--head-dim", "32", "--max-seq-len",
        "32", "--device-batch-size", "2", "--total-batch-size", "128", "--eval-tokens", "256", "--vocab-size",
        "300", "--no-progress", "--no-download", "--dtype", "float32", "--eval-every", "3"]


def cli(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nanochat_next", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})}, **kwargs)


def losses(out) -> list[float]:
    return [r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    result = cli(*TINY, "--steps", "8", "--save-every", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_crash_then_resume_equals_uninterrupted_bit_for_bit(uninterrupted, tmp_path):
    crashed = cli(*TINY, "--steps", "8", "--save-every", "2", "--out", str(tmp_path),
                  env={"NANOCHAT_NEXT_TEST_CRASH_AFTER_SAVE": "4"})
    assert crashed.returncode == 17  # died right after writing checkpoint 4
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step_000004"
    resumed = cli(*TINY, "--steps", "8", "--save-every", "2", "--out", str(tmp_path), "--resume", "latest")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout
    assert losses(tmp_path) == losses(uninterrupted)  # exact, not approximately
    a = load_file(uninterrupted / "model" / "model.safetensors")
    b = load_file(tmp_path / "model" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    evals = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines() if "val_bpb" in x]
    assert [e["step"] for e in evals] == [0, 3, 6, 8]


def test_checkpoint_written_before_eval_and_retention(uninterrupted, tmp_path):
    names = sorted(p.name for p in (uninterrupted / "checkpoints").glob("step_*"))
    assert names == ["step_000002", "step_000004", "step_000006", "step_000008"]
    kept = cli(*TINY, "--steps", "6", "--save-every", "2", "--keep-last", "2", "--out", str(tmp_path))
    assert kept.returncode == 0
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*")) == ["step_000004", "step_000006"]


def test_corrupt_newest_is_skipped_with_one_clear_line(uninterrupted, tmp_path):
    import shutil

    root = tmp_path / "checkpoints"
    shutil.copytree(uninterrupted / "checkpoints", root)
    newest = root / "step_000008" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:-100])  # truncated
    (root / "step_000006" / "optimizer.safetensors").unlink()  # missing file
    lines: list[str] = []
    found = checkpoint.find(root, warn=lines.append)
    assert found.name == "step_000004"
    assert lines == ["skipping checkpoint step_000008: model.safetensors is "
                     f"{newest.stat().st_size} bytes, the manifest says {newest.stat().st_size + 100} (truncated?)",
                     "skipping checkpoint step_000006: optimizer.safetensors is missing"]
    manifest = root / "step_000004" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["files"]["state.json"]["sha256"] = "0" * 64
    manifest.write_text(json.dumps(data))
    assert "does not match its sha256" in checkpoint.verify(root / "step_000004")
    with pytest.raises(UserError, match="no checkpoint for step 5"):
        checkpoint.find(root, "5")


@pytest.mark.slow
def test_kill_9_at_random_moments_never_leaves_an_unloadable_directory(tmp_path):
    out = tmp_path / "run"
    root = out / "checkpoints"
    env = {**os.environ, "NANOCHAT_NEXT_TEST_SLEEP_BETWEEN_FILES": "0.15"}  # widen the window inside saves
    kills = 0
    for delay in [0.0, 0.3, 0.65, 0.9, 1.4]:  # after the first checkpoint, kill at these extra delays
        resume = ["--resume", "latest"] if any(root.glob("step_*")) else []
        proc = subprocess.Popen([sys.executable, "-m", "nanochat_next", *TINY, "--steps", "60", "--save-every", "1",
                                 "--out", str(out), *resume], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        before = {p.name for p in root.glob("step_*")}
        deadline = time.time() + 120
        while time.time() < deadline and not ({p.name for p in root.glob("step_*")} - before):
            time.sleep(0.05)
        time.sleep(delay)
        proc.kill()  # SIGKILL: no handler runs, possibly in the middle of writing a checkpoint
        proc.wait()
        kills += 1
        good = checkpoint.find(root, warn=lambda line: None)
        assert checkpoint.verify(good) is None
        checkpoint.load(good)  # loads without error
    assert kills == 5
    finish = cli(*TINY, "--steps", "60", "--save-every", "20", "--out", str(out), "--resume", "latest")
    assert finish.returncode == 0, finish.stderr
    assert len(losses(out)) == 60


def test_sigterm_finishes_the_step_saves_and_exits(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "nanochat_next", *TINY, "--steps", "500", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not ((tmp_path / "metrics.jsonl").exists()
                                          and len(losses(tmp_path)) >= 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "stopped by signal" in out and "--resume latest" in out
    latest = (tmp_path / "checkpoints" / "latest").read_text().strip()
    assert checkpoint.verify(tmp_path / "checkpoints" / latest) is None
    assert int(latest.removeprefix("step_")) == len(losses(tmp_path))


@pytest.mark.parametrize("code, message", [(28, "No space left on device"), (30, "Read-only file system")])
def test_disk_errors_keep_the_previous_checkpoint(tmp_path, monkeypatch, code, message):
    # injected: a real full disk needs a mount, and root ignores read-only permissions
    model = torch.nn.Linear(3, 3)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    first = checkpoint.save(tmp_path, 1, model, opt, {"run": {}})

    def failing_disk(*args, **kwargs):
        raise OSError(code, message)

    monkeypatch.setattr("safetensors.torch.save_file", failing_disk)
    with pytest.raises(UserError, match=f"{message}.*previous checkpoints are untouched"):
        checkpoint.save(tmp_path, 2, model, opt, {"run": {}})
    assert checkpoint.find(tmp_path) == first and checkpoint.verify(first) is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".step_")], "no temp directory left behind"
    loaded = checkpoint.load(first)
    opt2 = torch.optim.AdamW(model.parameters())
    opt2.load_state_dict(loaded.optimizer)
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_resume_with_changed_settings_is_refused(uninterrupted, tmp_path):
    import shutil

    shutil.copytree(uninterrupted, tmp_path / "run")
    result = cli(*TINY, "--steps", "8", "--depth", "2", "--out", str(tmp_path / "run"), "--resume", "latest")
    assert result.returncode == 2 and "depth (was 1, now 2)" in result.stderr


def test_nan_loss_names_the_last_good_checkpoint(tmp_path):
    # nanochat's recipe: its first step stays finite at this LR, so a good checkpoint exists before the NaN
    bad = cli(*TINY, "--recipe", "nanochat", "--steps", "20", "--optimizer", "sgd", "--lr", "1e30", "--save-every",
              "1", "--out", str(tmp_path))
    assert bad.returncode == 2
    line = bad.stderr.strip().splitlines()[-1]
    step = int(line.split("at step ")[1].split(";")[0])
    assert f"the last good checkpoint is {tmp_path / 'checkpoints' / f'step_{step - 1:06d}'}" in line
    assert "Lower the learning rates" in line
    # a checkpoint may be resumed with other learning rates (e.g. to recover from a NaN)
    again = cli(*TINY, "--recipe", "nanochat", "--steps", "20", "--optimizer", "sgd", "--lr", "1e-30",
                "--save-every", "5",
                "--out", str(tmp_path), "--resume", "1")
    assert "resumed from" in again.stdout, again.stderr


def test_eval_memory_stays_flat():
    from nanochat_next.tokenizer.bpe import BPETokenizer
    from nanochat_next.train.evaluate import evaluate_bpb
    from nanochat_next.train.loop import TensorRun, build_model
    from nanochat_next.train.packing import DocumentSource, PackingLoader

    def rss_kb() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024

    tok = BPETokenizer([bytes([i]) for i in range(256)])
    docs = [f"document number {i} " * (1 + i % 7) for i in range(400)]
    model = build_model(TensorRun(depth=2, aspect_ratio=32, head_dim=32, max_seq_len=64), tok.vocab_size)
    token_bytes = torch.tensor(tok.token_byte_lengths())

    def one_eval() -> float:
        loader = PackingLoader(DocumentSource.from_docs(docs), tok, 4, 64)
        return evaluate_bpb(model, loader, 4, token_bytes)

    first = one_eval()
    base = rss_kb()
    values = [one_eval() for _ in range(50)]
    assert all(v == first for v in values), "evaluation is deterministic"
    assert rss_kb() < base * 1.05, f"RSS grew from {base} kB to {rss_kb()} kB over 50 evals"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_eval_gpu_memory_stays_flat():
    from nanochat_next.train.evaluate import evaluate_bpb
    from nanochat_next.train.loop import TensorRun, build_model

    model = build_model(TensorRun(depth=2, aspect_ratio=32, head_dim=32, max_seq_len=64), 300, "cuda")
    batches = [(torch.randint(0, 300, (4, 64)), torch.randint(0, 300, (4, 64))) for _ in range(4)]
    token_bytes = torch.ones(300, dtype=torch.int64)
    evaluate_bpb(model, iter(batches), 4, token_bytes, "cuda")
    torch.cuda.reset_peak_memory_stats()
    evaluate_bpb(model, iter(batches), 4, token_bytes, "cuda")
    peak = torch.cuda.max_memory_allocated()
    for _ in range(50):
        evaluate_bpb(model, iter(batches), 4, token_bytes, "cuda")
    assert torch.cuda.max_memory_allocated() <= peak * 1.05


def test_every_recipe_feature_resumes_bit_for_bit(tmp_path):
    """Smear, backout, tied embeddings, MuonEq, the later schedules and AdamW groups: their parameters and
    optimizer state go through a checkpoint like the rest (a crash + resume equals the uninterrupted run)."""
    features = ["--smear", "--backout", "--tie-embeddings", "--muon-eq", "--muon-momentum", "next", "--wd-schedule",
                "cosine", "--adam-groups", "next", "--init", "next", "--qk-scale", "1.2", "--steps", "6",
                "--save-every", "2"]
    full = cli(*TINY, *features, "--out", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr
    assert "with backout=True" in full.stdout  # train says what differs from its recipe
    crashed = cli(*TINY, *features, "--out", str(tmp_path / "r"), env={"NANOCHAT_NEXT_TEST_CRASH_AFTER_SAVE": "2"})
    assert crashed.returncode == 17
    resumed = cli(*TINY, *features, "--out", str(tmp_path / "r"), "--resume", "latest")
    assert resumed.returncode == 0, resumed.stderr
    assert losses(tmp_path / "r") == losses(tmp_path / "full")
    assert losses(tmp_path / "full")[-1] < losses(tmp_path / "full")[0]


@pytest.mark.slow
def test_ddp_crash_then_resume_equals_an_uninterrupted_two_process_run(tmp_path):
    """Two processes (torchrun, gloo), rank 0 killed right after saving step 2, the pair restarted with --resume
    latest: the losses and final weights equal an uninterrupted two-process run (the loader's state is the global
    stream's, so both ranks continue at the same place)."""
    def torchrun(out, *extra, env=None):
        return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                               "--master_port=29631", "-m", "nanochat_next", *TINY, "--steps", "6", "--save-every", "2",
                               "--device-batch-size", "1", "--out", str(out), *extra], capture_output=True, text=True,
                              timeout=300, env={**os.environ, **(env or {})})

    full = torchrun(tmp_path / "full")
    assert full.returncode == 0, full.stderr[-2000:]
    crashed = torchrun(tmp_path / "cut", env={"NANOCHAT_NEXT_TEST_CRASH_AFTER_SAVE": "2"})
    assert crashed.returncode != 0 and (tmp_path / "cut" / "checkpoints" / "step_000002").is_dir()
    assert len(losses(tmp_path / "cut")) == 2, "it died after step 2"
    resumed = torchrun(tmp_path / "cut", "--resume", "latest")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stdout and "processes 2" in resumed.stdout
    assert losses(tmp_path / "cut") == losses(tmp_path / "full") and len(losses(tmp_path / "full")) == 6
    a, b = (load_file(tmp_path / d / "model" / "model.safetensors") for d in ("full", "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)
