"""Muon's float32 orthogonalisation of a long matrix iterates on its Gram matrix alone (fewer FLOPs): the same
polynomial as the step-by-step iteration, so the same update and the same losses to float32 rounding."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from nanochat_next.train import muon
from nanochat_next.train.config import TensorRun, build_model
from nanochat_next.train.muon import orthogonalize, polar_express, polar_express_gram
from nanochat_next.train.recipe import build_optimizer, scaled_hyperparameters


def spread_spectrum(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """A gradient-like matrix: singular values from 1 down to 1e-3, in float64."""
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(*shape, generator=gen, dtype=torch.float64)
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    s = torch.logspace(0, -3, min(shape[-2:]), dtype=torch.float64)
    return (u * s[..., None, :]) @ vh


@pytest.mark.parametrize("shape", [(2, 32, 128), (2, 128, 32), (1, 24, 60)])  # wide, tall, a 2.5:1
@pytest.mark.parametrize("steps", [5, 3, 2])  # with and without the restart
def test_the_gram_form_is_the_same_polynomial(shape, steps):
    """In float64 the two forms agree to rounding: the Gram form is a reordering of the same products."""
    x = spread_spectrum(shape)
    x = x / x.norm(dim=(-2, -1), keepdim=True)
    assert (polar_express_gram(x, steps) - polar_express(x, steps)).abs().max() < 1e-10


@pytest.mark.parametrize("shape", [(2, 64, 256), (2, 256, 64)])
def test_float32_uses_the_gram_form_on_long_matrices_within_float32_rounding(shape):
    g64 = spread_spectrum(shape)
    exact = orthogonalize(g64, 5, torch.float64)
    g = g64.float()
    got = orthogonalize(g, 5, torch.float32)
    normalised = g / (g.norm(dim=(-2, -1), keepdim=True) * 1.02 + 1e-6)
    assert torch.equal(got, polar_express_gram(normalised, 5)), "a 4:1 matrix in float32 takes the Gram form"
    # measured 1-2e-5 here (step by step: 5e-6; without the restart 4e-4, which this bound rejects); bf16's ~1e-2
    assert ((got.double() - exact).norm() / exact.norm()) < 5e-5


@pytest.mark.parametrize(("shape", "dtype"), [((4, 64, 64), torch.float32), ((4, 48, 64), torch.float32),
                                              ((2, 64, 256), torch.bfloat16)])
def test_square_near_square_and_bf16_keep_the_step_by_step_form(shape, dtype):
    g = spread_spectrum(shape).float()
    x = g.to(dtype)
    x = x / (x.norm(dim=(-2, -1), keepdim=True) * 1.02 + 1e-6)
    assert torch.equal(orthogonalize(g, 5, dtype), polar_express(x, 5))


def test_training_losses_are_unchanged_by_the_gram_form(monkeypatch):
    """Eight float32 steps of a model whose MLP matrices are 4:1: the same losses (to float32 rounding) with the
    Gram form as with the step-by-step one."""
    run = replace(TensorRun(), depth=2, aspect_ratio=32, head_dim=32, max_seq_len=32, dtype="float32",
                  muon_dtype="float32", device="cpu")

    def losses() -> list[float]:
        torch.manual_seed(0)
        model = build_model(run, 128)
        opt = build_optimizer(run, model, *scaled_hyperparameters(run, model, 128))
        data = torch.randint(0, 128, (4, 33), generator=torch.Generator().manual_seed(1))
        out = []
        for _ in range(8):
            loss = model(data[:, :-1].contiguous(), data[:, 1:].contiguous())
            loss.backward()
            opt.step()
            model.zero_grad(set_to_none=True)
            out.append(loss.item())
        return out

    calls = []
    monkeypatch.setattr(muon, "polar_express_gram",
                        lambda x, steps: calls.append(x.shape) or polar_express_gram(x, steps))
    gram = losses()
    assert {(64, 256), (256, 64)} <= {tuple(shape[-2:]) for shape in calls}, "the MLP matrices took the Gram form"
    assert all(max(shape[-2:]) >= 2 * min(shape[-2:]) for shape in calls), "and nothing near square did"
    monkeypatch.setattr(muon, "GRAM_RATIO", math.inf)  # every matrix takes the step-by-step form
    step_by_step = losses()
    assert max(abs(a - b) for a, b in zip(gram, step_by_step)) < 1e-4
