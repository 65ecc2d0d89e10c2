"""The ``nanochat-92d63d4`` recipe against nanochat's newest commit's own code (master 92d63d4, 2026-07-03).

Fixtures: tests/fixtures/nanochat_newest_parity.{safetensors,json}, made by tools/make_nanochat_fixtures.py from
a nanochat checkout at that commit: a 3-layer model with GQA, smear, backout, value embeddings and an S window
that is really shorter than the context (1024 tokens -> 256; 2f09686 would give 512), nanochat's initial
weights for seed 1234, perturbed weights, its logits and losses, and 5 MuonAdamW steps. nanochat computes in
float32 on a CPU, so everything here is float32 and the bounds are tight.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nanochat_next.model.gpt import GPT, RECIPE_FIELDS, GPTConfig, window_sizes
from nanochat_next.train.config import NANOCHAT_NEWEST, RECIPES, TensorRun
from nanochat_next.train.muon import MuonAdamW
from nanochat_next.train.recipe import nanochat_param_groups

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RECIPE = RECIPES[NANOCHAT_NEWEST]
# logits here are ~1; identical on the machine the fixture was made on, and another CPU's fp32 kernels may sum
# in another order (a few ulps per layer): 2e-5 allows that and is 15x below the smallest real change below
LOGIT_BOUND = 2e-5


@pytest.fixture(scope="module")
def fixture():
    tensors = load_file(FIXTURES / "nanochat_newest_parity.safetensors")
    meta = json.loads((FIXTURES / "nanochat_newest_parity.json").read_text())
    assert meta["nanochat_ref"].startswith("92d63d4")
    return tensors, meta


def part(tensors, prefix: str) -> dict[str, torch.Tensor]:
    return {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}


def newest_config(meta) -> GPTConfig:
    """The fixture's shape with the recipe's model fields (what ``model_config`` gives a nanochat-92d63d4 run)."""
    return GPTConfig(**meta["config"], **{k: RECIPE[k] for k in RECIPE_FIELDS})


def test_the_same_seed_gives_nanochats_initial_weights(fixture):
    """Built on the meta device and initialised after ``manual_seed`` as both trainers do: every random draw in
    nanochat's order, so every initial weight is bit-identical (smear gate, value embeddings and gates included)."""
    tensors, meta = fixture
    with torch.device("meta"):
        model = GPT(newest_config(meta), init=False)
    model.to_empty(device="cpu")
    torch.manual_seed(meta["init_seed"])
    model.init_weights()
    theirs = part(tensors, "init.")
    ours = model.state_dict()
    assert ours.keys() == theirs.keys()
    for name, value in theirs.items():
        # bit-identical on the machine that made the fixture; torch's vectorised normal_/uniform_ may round the last
        # bit differently on another CPU's SIMD width; a draw out of order differs by O(std): 1e-6 tells them apart
        assert (ours[name] - value).abs().max().item() <= 1e-6, name


def test_logits_match_nanochat_newest(fixture):
    tensors, meta = fixture
    model = GPT(newest_config(meta), init=False)
    model.load_state_dict(part(tensors, "weights."), strict=True)
    assert model.window_sizes == [256, 1024, 1024]  # S = a quarter of 1024 (a multiple of 128); the last L
    assert model.cos.dtype == torch.float32  # its rotary tables stay in the compute dtype
    with torch.no_grad():
        logits = model(tensors["idx"])
        loss_none = model(tensors["idx"], tensors["targets"], loss_reduction="none")
    assert (logits - tensors["logits"]).abs().max().item() <= LOGIT_BOUND
    assert (loss_none - tensors["loss_none"]).abs().max().item() <= LOGIT_BOUND


def test_flops_per_token_is_nanochats_estimate(fixture):
    """Matmul weights counted as its estimate_flops counts them (every Linear; the smear gate in, the smear and
    backout scalars out), plus attention over the effective windows: a compute multiplier needs the same FLOPs."""
    _, meta = fixture
    assert GPT(newest_config(meta), init=False).flops_per_token() == meta["estimate_flops"]


@pytest.mark.parametrize("pinned", [dict(short_window="half"), dict(rotary_dtype="bfloat16")])
def test_each_pinned_rule_would_not_match(fixture, pinned):
    """The check sees each of the newest commit's model changes alone: 2f09686's half window, or its rotary
    tables rounded to bf16 (3e-4 here), move the logits well beyond the bound above."""
    tensors, meta = fixture
    model = GPT(replace(newest_config(meta), **pinned), init=False)
    model.load_state_dict(part(tensors, "weights."), strict=True)
    with torch.no_grad():
        assert (model(tensors["idx"]) - tensors["logits"]).abs().max().item() > 5 * LOGIT_BOUND


def run_five_steps(meta, tensors, compile: bool = False) -> tuple[list[float], GPT]:
    model = GPT(newest_config(meta), init=False)
    model.load_state_dict(part(tensors, "weights."), strict=True)
    o = meta["optimizer"]
    groups = nanochat_param_groups(
        model, unembedding_lr=o["unembedding_lr"], embedding_lr=o["embedding_lr"], matrix_lr=o["matrix_lr"],
        weight_decay=o["weight_decay"], adam_betas=tuple(o["adam_betas"]), scalar_lr=o["scalar_lr"],
        adam_groups=RECIPE["adam_groups"], muon_beta2=RECIPE["muon_beta2"], equalize=RECIPE["muon_eq"],
        ortho_dtype="float32", norm_factor=RECIPE["muon_norm"])  # "compute": float32 on a CPU, as nanochat's
    opt = MuonAdamW([{**g, "initial_lr": g["lr"]} for g in groups], compile=compile)
    losses = []
    for lrm, momentum, wd in meta["schedule"]:
        loss = model(tensors["idx"], tensors["targets"])
        loss.backward()
        for group in opt.param_groups:
            group["lr"] = group["initial_lr"] * lrm
            if group["kind"] == "muon":
                group["momentum"], group["weight_decay"] = momentum, wd
        opt.step()
        model.zero_grad(set_to_none=True)
        losses.append(loss.item())
    with torch.no_grad():
        losses.append(model(tensors["idx"], tensors["targets"]).item())
    return losses, model


def test_five_steps_match_nanochat_newest(fixture):
    """Losses and every weight after 5 steps of MuonEq + Polar Express (norm x 1.01) + NorMuon + Muon+ and the
    per-group AdamW, all in float32: agreement to float32 rounding, not bf16's (measured: losses 5e-7, weights
    1e-5 apart: the same math in another order of operations)."""
    tensors, meta = fixture
    losses, model = run_five_steps(meta, tensors)
    assert max(abs(a - b) for a, b in zip(losses, meta["losses"])) <= 1e-4, (losses, meta["losses"])
    stepped = part(tensors, "stepped.")
    for name, value in model.state_dict().items():
        assert (value - stepped[name]).abs().max().item() <= 1e-4, name


def test_recipe_run_fields_are_the_newest_defaults():
    """The run-level values a nanochat-92d63d4 run takes, read against its base_train (see NANOCHAT_NOTES)."""
    run = TensorRun(**RECIPE)
    assert (run.lr_warmup_steps, run.warmdown_ratio, run.final_lr_fraction) == (40, 0.65, 0.05)
    assert (run.weight_decay, run.unembedding_lr, run.muon_norm, run.muon_dtype) == (0.28, 0.008, 1.01, "compute")
    schedule = run.schedule()
    assert schedule(0) == pytest.approx(1 / 40) and schedule(39) == pytest.approx(1.0)


def test_short_window_rule():
    """nanochat's code: -(-T // 4 // 128) * 128, a quarter of the context rounded up to 128 (its comment says
    2048 -> 768; its code gives 512, and so do we)."""
    base = dict(vocab_size=50, n_layer=4, n_head=2, n_kv_head=2, n_embd=32, window_pattern="SSSL")
    assert window_sizes(GPTConfig(sequence_len=2048, short_window="quarter128", **base)) == [512, 512, 512, 2048]
    assert window_sizes(GPTConfig(sequence_len=2048, **base)) == [1024, 1024, 1024, 2048]
    assert window_sizes(GPTConfig(sequence_len=100, short_window="quarter128", **base)) == [128, 128, 128, 100]
