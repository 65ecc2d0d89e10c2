"""--keep-best and --early-stop: the evals are scripted (a val curve that falls, then rises), the weights real."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import nanochat_next.train.loop as loop
from nanochat_next.errors import UserError
from nanochat_next.tokenizer.bpe import BPETokenizer
from nanochat_next.train import checkpoint
from nanochat_next.train.config import TensorRun
from nanochat_next.train.data import RunData
from nanochat_next.train.loop import since_best, train

TINY = dict(depth=1, aspect_ratio=32, head_dim=32, max_seq_len=32, device_batch_size=2, total_batch_size=128,
            eval_tokens=256, dtype="float32", muon_dtype="float32", steps=8, eval_every=1, peak_flops=1e12)
CURVE = [5.0, 4.0, 3.5, 3.6, 3.7, 3.8, 3.9, 4.0, 4.1]  # best at step 2, then over-fitting


@pytest.fixture(scope="module")
def data(shakespeare_docs) -> RunData:
    tokenizer = BPETokenizer.train(shakespeare_docs[:500], 300)
    return RunData.from_docs(shakespeare_docs[:400], shakespeare_docs[400:500], tokenizer)


@pytest.fixture
def scripted_evals(monkeypatch):
    values = iter(CURVE)
    monkeypatch.setattr(loop, "evaluate", lambda job: next(values))


def test_since_best_counts_from_the_first_lowest():
    evals = [{"val_bpb": b} for b in (5.0, 3.0, 3.0, 4.0)]
    assert since_best(evals) == (1, 2)
    assert since_best(evals[:1]) == (0, 0)


def test_early_stop_ends_the_run_and_keep_best_holds_the_best_weights(tmp_path, data, scripted_evals):
    (tmp_path / "stopped").mkdir()
    run = TensorRun(**TINY, keep_best=True, early_stop=3, out=str(tmp_path / "stopped"))
    result = train(run, data, progress=False, log=lambda *a, **k: None)
    # evals at steps 0..5: the lowest at step 2, then 3 without a new lowest: the run ends after step 5's eval
    assert result["stopped_by"] == loop.EARLY_STOP and result["steps"] == 5
    assert result["best_step"] == 2 and result["best_val_bpb"] == 3.5 and result["final_val_bpb"] == 3.8
    saved = json.loads((tmp_path / "stopped" / "model" / "config.json").read_text())["summary"]
    assert saved["steps"] == 5 and saved["best_step"] == 2, "the early-stopped run's model is saved like any"
    best = json.loads((tmp_path / "stopped" / "best" / "config.json").read_text())["summary"]
    assert best["step"] == 2 and best["val_bpb"] == 3.5
    assert (tmp_path / "stopped" / "checkpoints").is_dir(), "a checkpoint at the stop: the run can be continued"


def test_the_best_weights_are_the_weights_at_the_best_step(tmp_path, data, scripted_evals):
    run = TensorRun(**TINY, keep_best=True, save_every=1, out=str(tmp_path))
    train(run, data, progress=False, log=lambda *a, **k: None)
    best = load_file(tmp_path / "best" / "model.safetensors")
    at_two = checkpoint.load(checkpoint.find(tmp_path / "checkpoints", "2")).model  # saved before step 2's eval
    assert best.keys() <= at_two.keys() and all(torch.equal(best[k], at_two[k]) for k in best)
    final = load_file(tmp_path / "model" / "model.safetensors")
    assert any(not torch.equal(best[k], final[k]) for k in best), "six more steps changed the weights"


def test_without_the_flags_nothing_changes(tmp_path, data, scripted_evals):
    result = train(TensorRun(**TINY, out=str(tmp_path)), data, progress=False, log=lambda *a, **k: None)
    assert result["stopped_by"] is None and result["steps"] == 8 and not (tmp_path / "best").exists()
    assert result["best_step"] == 2


def test_a_negative_early_stop_is_refused():
    with pytest.raises(UserError, match="--early-stop must be >= 0"):
        TensorRun(early_stop=-1)
