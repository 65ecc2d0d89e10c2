"""Tensor training end to end: the CLI, bits per byte, checkpoints, and DDP = single process."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from nanochat_next.model.bigram import TensorBigram
from nanochat_next.model.gpt import GPT, GPTConfig
from nanochat_next.model.gpt_classic import ClassicGPT
from nanochat_next.tokenizer.bpe import BPETokenizer
from nanochat_next.train.evaluate import evaluate_bpb

TINY = ["--depth", "1", "--aspect-ratio", "32", "--head-dim", "32", "--max-seq-len", "32", "--device-batch-size",
        "2", "--total-batch-size", "128", "--eval-tokens", "256", "--vocab-size", "300", "--no-progress",
        "--no-download"]


def run_cli(*args: str, torchrun: int = 0) -> subprocess.CompletedProcess:
    prefix = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={torchrun}", "--master_port=29617"] \
        if torchrun else [sys.executable]
    return subprocess.run([*prefix, "-m", "nanochat_next", *args], capture_output=True, text=True, timeout=600)


def losses_of(out) -> list[float]:
    return [r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


@pytest.mark.parametrize("style", ["modern", "classic"])
def test_train_cli_learns_and_saves(tmp_path, style):
    out = tmp_path / style
    result = run_cli("train", "--mode", "tensor", "--style", style, "--steps", "12", "--eval-every", "6",
                     "--out", str(out), "--dtype", "float32", *TINY)
    assert result.returncode == 0, result.stderr
    assert "val bpb" in result.stdout and "tok/s" in result.stdout
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r["val_bpb"] for r in records if "val_bpb" in r]
    assert len(evals) == 3 and evals[-1] < evals[0]
    losses = losses_of(out)
    assert len(losses) == 12 and all(math.isfinite(x) for x in losses)
    assert all(r["tok_per_s"] > 0 and 0 < r["mfu"] < 1 for r in records if "loss" in r)
    config = json.loads((out / "model" / "config.json").read_text())
    weights = load_file(out / "model" / "model.safetensors")
    model_cls = GPT if style == "modern" else ClassicGPT
    model = model_cls(GPTConfig(**config["model_config"]), init=False)
    model.load_state_dict(weights, strict=style == "modern")
    tok = BPETokenizer.load(out / "tokenizer")
    assert tok.vocab_size == 300 and config["model_config"]["vocab_size"] == 300


def test_tensor_bigram_trains_with_adamw(tmp_path):
    result = run_cli("train", "--mode", "tensor", "--model-kind", "bigram", "--optimizer", "adamw", "--lr", "0.1",
                     "--steps", "8", "--eval-every", "4", "--out", str(tmp_path), *TINY)
    assert result.returncode == 0, result.stderr
    evals = [json.loads(line)["val_bpb"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
             if "val_bpb" in line]
    assert evals[-1] < evals[0]
    weights = load_file(tmp_path / "model" / "model.safetensors")
    assert tuple(weights["logits.weight"].shape) == (300, 300)


def test_ddp_two_processes_equal_one_process(tmp_path):
    common = ["train", "--mode", "tensor", "--steps", "4", "--eval-every", "0", "--dtype", "float32", *TINY]
    single = run_cli(*common, "--out", str(tmp_path / "one"))
    assert single.returncode == 0, single.stderr
    double = run_cli(*common, "--out", str(tmp_path / "two"), torchrun=2)
    assert double.returncode == 0, double.stderr
    assert "processes 2" in double.stdout and "2 x 32 x 1 accumulation x 2 processes" in double.stdout
    one, two = losses_of(tmp_path / "one"), losses_of(tmp_path / "two")
    # same total batch, same data (ranks split the global stream): the same losses up to summation order
    assert len(one) == len(two) == 4
    for a, b in zip(one, two):
        assert abs(a - b) < 2e-5, (one, two)
    w1 = load_file(tmp_path / "one" / "model" / "model.safetensors")
    w2 = load_file(tmp_path / "two" / "model" / "model.safetensors")
    assert max((w1[k] - w2[k]).abs().max().item() for k in w1) < 1e-4


def test_bits_per_byte_matches_a_hand_computation():
    torch.manual_seed(0)
    model = TensorBigram(GPTConfig(sequence_len=8, vocab_size=40, n_layer=1, n_head=1, n_kv_head=1, n_embd=32))
    with torch.no_grad():
        model.logits.weight.normal_()
    token_bytes = torch.tensor([0] + [1, 2, 3, 4] * 9 + [0, 0, 0])  # 0: special tokens
    x = torch.randint(0, 40, (3, 8))
    y = torch.randint(0, 40, (3, 8))
    y[0, 0] = -1
    bpb = evaluate_bpb(model, iter([(x, y)]), 1, token_bytes)
    nats = torch.nn.functional.cross_entropy(model(x).view(-1, 40), y.view(-1), ignore_index=-1, reduction="none")
    valid = (y.view(-1) >= 0) & (token_bytes[y.view(-1).clamp_min(0)] > 0)
    expected = nats[valid].sum().item() / (math.log(2) * token_bytes[y.view(-1)[valid]].sum().item())
    assert abs(bpb - expected) < 1e-6  # we sum in float64, the hand computation in float32


BAD = {
    "batch not divisible": (["--total-batch-size", "100"], "must be a multiple"),
    "absent device": (["--device", "cuda"], "--device cuda was requested"),
    "muon on bigram": (["--model-kind", "bigram", "--optimizer", "muon"], "muon needs weight matrices"),
    "bad window pattern": (["--window-pattern", "SX"], "window pattern"),
    "missing tokenizer": (["--tokenizer", "/nonexistent"], "no tokenizer at"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_tensor_input_is_one_clear_line(tmp_path, case):
    if case == "absent device" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    extra, expected = BAD[case]
    result = run_cli("train", "--mode", "tensor", "--steps", "1", "--out", str(tmp_path), *TINY, *extra)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert expected in lines[-1] and "Traceback" not in result.stderr, result.stderr


def test_config_file_reproduces_a_run_and_records_overrides(tmp_path):
    first = run_cli("train", "--mode", "tensor", "--steps", "5", "--eval-every", "0", "--seed", "7", "--dtype",
                    "float32", "--out", str(tmp_path / "a"), *TINY)
    assert first.returncode == 0, first.stderr
    record = json.loads((tmp_path / "a" / "config.json").read_text())
    assert record["mode"] == "tensor" and record["config"]["seed"] == 7 and record["config"]["steps"] == 5
    assert record["config"]["matrix_lr"] == 0.02, "defaults are written too: the file is the whole run"
    again = run_cli("train", "--config", str(tmp_path / "a" / "config.json"), "--out", str(tmp_path / "b"))
    assert again.returncode == 0, again.stderr
    assert losses_of(tmp_path / "b") == losses_of(tmp_path / "a"), "the same run, bit for bit (one machine)"
    replay = json.loads((tmp_path / "b" / "config.json").read_text())
    assert replay["overrides"] == {"out": str(tmp_path / "b")}
    assert replay["based_on"] == str(tmp_path / "a" / "config.json")
    other = run_cli("train", "--config", str(tmp_path / "a"), "--seed", "8", "--out", str(tmp_path / "c"))
    assert other.returncode == 0 and losses_of(tmp_path / "c") != losses_of(tmp_path / "a")
    assert json.loads((tmp_path / "c" / "config.json").read_text())["overrides"]["seed"] == 8


def test_scalar_config_file_reproduces_a_run(tmp_path):
    args = ["--mode", "scalar", "--steps", "20", "--block-size", "8", "--eval-docs", "5", "--no-progress",
            "--no-download"]
    assert run_cli("train", *args, "--out", str(tmp_path / "a")).returncode == 0
    again = run_cli("train", "--config", str(tmp_path / "a"), "--out", str(tmp_path / "b"))
    assert again.returncode == 0, again.stderr
    weights = [json.loads((tmp_path / d / "model.json").read_text())["weights"] for d in ("a", "b")]
    assert weights[0] == weights[1]
    mismatch = run_cli("train", "--config", str(tmp_path / "a"), "--mode", "tensor")
    assert mismatch.returncode == 2 and "is a scalar run; drop --mode tensor" in mismatch.stderr


@pytest.mark.parametrize("extra, message", [
    (["--style", "classic", "--window-pattern", "SSL"], "the classic style has no sliding windows"),
    (["--model-kind", "bigram", "--optimizer", "adamw", "--window-pattern", "SX"], None),  # the bigram has no windows
])
def test_config_rules_follow_the_model(tmp_path, extra, message):
    result = run_cli("train", "--mode", "tensor", "--steps", "1", "--eval-every", "0", "--out", str(tmp_path),
                     *TINY, *extra)
    if message is None:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 2 and message in result.stderr.strip().splitlines()[-1]
