"""The attention's dtype under a CPU's bf16 autocast: attending in float32 inside the bf16 model is the float32
attention of the same (bf16) queries, keys and values; the choice follows the measured rule, is set on the model
by training, carried by a benchmark's profile, and changes nothing without autocast."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nanochat_next import dtype_choice
from nanochat_next.dtype_choice import DtypeMeasurement
from nanochat_next.errors import UserError
from nanochat_next.model import gpt
from nanochat_next.model.gpt import GPT, GPTConfig, causal_attention
from nanochat_next.runtime import DtypeChoice, choose_attention_dtype
from nanochat_next.train import recipe
from nanochat_next.train.config import TensorRun, build_model

BF16 = DtypeChoice(torch.bfloat16, False, "bf16 autocast")
FP32 = DtypeChoice(torch.float32, False, "float32")


def qkv(seed: int = 0, shape=(2, 4, 32, 16)):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=gen).bfloat16() for _ in range(3)]


def test_float32_attention_under_autocast_is_the_float32_attention_of_the_bf16_inputs():
    q, k, v = qkv()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        in_fp32 = causal_attention(q, k, v, 32, torch.float32)
        in_bf16 = causal_attention(q, k, v, 32)
    expected = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True).bfloat16()
    assert in_fp32.dtype == in_bf16.dtype == torch.bfloat16  # what follows sees autocast's dtype either way
    assert torch.equal(in_fp32, expected)
    exact = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), is_causal=True)
    # one rounding (of the result) instead of bf16 arithmetic throughout: nearer the exact attention
    assert (in_fp32.double() - exact).abs().max() < (in_bf16.double() - exact).abs().max()


def test_the_sliding_window_path_is_cast_too():
    q, k, v = qkv(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        windowed = causal_attention(q, k, v, 8, torch.float32)
    with torch.autocast("cpu", enabled=False):
        expected = causal_attention(q.float(), k.float(), v.float(), 8).bfloat16()
    assert torch.equal(windowed, expected)


def tiny_gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(sequence_len=32, vocab_size=64, n_layer=2, n_head=2, n_kv_head=2, n_embd=32))


def test_without_autocast_the_setting_changes_nothing():
    model, x = tiny_gpt(), torch.randint(0, 64, (2, 32))
    before = model(x, x)
    model.set_attention_dtype(torch.bfloat16)
    assert torch.equal(model(x, x), before)


def test_the_bf16_model_attending_in_fp32_trains_as_the_fp32_model_does():
    """Loss and gradients of the bf16 model with its attention in fp32 stay within bf16's tolerance of the fp32
    model's, as with its attention in bf16 (a speed change at equal loss)."""
    model = tiny_gpt()
    x, y = torch.randint(0, 64, (2, 32)), torch.randint(0, 64, (2, 32))

    def loss_and_grads(attention: torch.dtype | None, autocast: bool):
        model.zero_grad(set_to_none=True)
        model.set_attention_dtype(attention)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model(x, y)
        loss.backward()
        return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    ref_loss, ref_grad = loss_and_grads(None, autocast=False)
    for attention in (torch.float32, None):
        loss, grad = loss_and_grads(attention, autocast=True)
        assert loss == pytest.approx(ref_loss, rel=1e-2)
        assert torch.nn.functional.cosine_similarity(grad, ref_grad, dim=0) > 0.99


@pytest.mark.parametrize("fp32, bf16, chosen", [
    (0.020, 0.010, torch.bfloat16),  # bf16 2x faster: kept
    (0.020, 0.019, torch.float32),  # 1.05x: a tie goes to fp32, the more precise
    (0.016, 0.032, torch.float32),  # bf16 2x slower (its backward, on an AMX Xeon)
])
def test_the_rule_on_a_cpu_under_bf16_autocast(fp32, bf16, chosen):
    choice = choose_attention_dtype("cpu", BF16, "auto", lambda: DtypeMeasurement(fp32, bf16, "k"))
    assert choice.dtype == chosen and f"{fp32 / bf16:.2f}x" in choice.reason


def never_measured():
    raise AssertionError("measured where nothing needs measuring")


@pytest.mark.parametrize("device, compute, requested, expected", [
    ("cpu", FP32, "auto", None),  # an fp32 model attends in fp32 anyway
    ("cpu", BF16, "compute", None),  # autocast's own bf16
    ("cuda", BF16, "auto", None),  # a GPU's bf16 flash attention is its fast path
    ("cpu", BF16, "float32", torch.float32),
    ("cpu", BF16, "bfloat16", torch.bfloat16),
])
def test_where_nothing_is_measured(device, compute, requested, expected):
    choice = choose_attention_dtype(device, compute, requested, never_measured)
    assert (None if choice is None else choice.dtype) == expected


def test_an_unknown_attention_dtype_is_one_clear_error():
    with pytest.raises(UserError, match="unknown attention dtype 'fp8'"):
        choose_attention_dtype("cpu", BF16, "fp8")
    with pytest.raises(UserError, match="attention dtype"):
        TensorRun(attention_dtype="fp8")


def test_the_probe_times_both_dtypes_on_a_tiny_attention():
    fp32, bf16, rounds, _ = dtype_choice.race(dtype_choice.attention_items((1, 2, 16, 8), causal_attention), rounds=2)
    assert fp32 > 0 and bf16 > 0 and 1 <= rounds <= 2


def test_training_sets_the_measured_choice_on_every_layer(monkeypatch, tmp_path):
    monkeypatch.setenv("NANOCHAT_NEXT_CACHE", str(tmp_path))
    monkeypatch.setattr(dtype_choice, "race", lambda items, **kw: (0.01, 0.02, 5, ""))  # bf16 2x slower
    run = TensorRun(depth=2, dtype="bfloat16", device="cpu", vocab_size=256)
    model = build_model(run, 256)
    choice = recipe.choose_attention(run, model, BF16)
    assert choice.dtype == torch.float32 and "measured on this model's attention" in choice.reason
    assert [b.attn.attention_dtype for b in model.transformer.h] == [torch.float32] * 2
    assert recipe.choose_attention(run, model, FP32) is None  # an fp32 run: autocast's (none) again
    assert [b.attn.attention_dtype for b in model.transformer.h] == [None] * 2


def test_a_benchmark_profile_carries_the_attention_dtype(monkeypatch, tmp_path):
    """As with Muon's dtype: every run of a bench attends alike, whatever a later probe writes to the cache."""
    from nanochat_next.bench import profiles

    monkeypatch.setenv("NANOCHAT_NEXT_CACHE", str(tmp_path))
    monkeypatch.setattr(dtype_choice, "race", lambda items, **kw: (0.2, 0.1, 5, ""))  # bf16 2x faster: bf16 model
    monkeypatch.setattr(recipe, "measure_attention", lambda *args, **kw: DtypeMeasurement(0.01, 0.02, "k"))
    run = profiles.resolve_profile("smoke", device="cpu").run
    assert run.dtype == "bfloat16" and run.attention_dtype == "float32"


def test_a_train_run_says_where_it_attends(tmp_path):
    from tests.train.test_loop import TINY, run_cli

    result = run_cli("train", "--mode", "tensor", "--steps", "2", "--eval-every", "0", "--out", str(tmp_path),
                     "--dtype", "bfloat16", "--attention-dtype", "float32", *TINY)
    assert result.returncode == 0, result.stderr
    assert "attention in float32 (requested with --attention-dtype float32)" in result.stdout


def test_explicit_attention_is_causal_attention():
    q, k, v = (t.double() for t in qkv(3, (2, 3, 24, 8)))
    out = gpt.explicit_causal_attention(q, k, v)  # its softmax runs in float32
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), rtol=1e-5, atol=1e-6)


def test_explicit_attention_applies_only_in_a_compiled_graph_under_cpu_bf16_autocast(monkeypatch):
    q = torch.randn(1, 2, 16, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not gpt.explicit_attention_applies(q, False)  # eager: the flash kernel (explicit measured slower)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert not gpt.explicit_attention_applies(q, False)  # float32: the flash kernel
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert gpt.explicit_attention_applies(q, False)
        assert not gpt.explicit_attention_applies(q, True)  # grouped-query heads: the flash kernel's enable_gqa
        long = torch.randn(1, 1, gpt.EXPLICIT_ATTENTION_MAX_SEQ + 1, 8)
        assert not gpt.explicit_attention_applies(long, False)  # its T x T scores would grow with T^2


def test_a_compiled_bf16_model_attends_explicitly_with_the_eager_models_loss_and_gradients(monkeypatch):
    calls = []
    explicit = gpt.explicit_causal_attention
    monkeypatch.setattr(gpt, "explicit_causal_attention", lambda *a: calls.append(1) or explicit(*a))
    torch.manual_seed(0)
    run = TensorRun(depth=2, aspect_ratio=32, head_dim=32, max_seq_len=64)
    model = build_model(run, 256)
    with torch.no_grad():  # the blocks' outputs start at 0 in nanochat's init: let attention reach the loss
        for p in model.parameters():
            if p.dim() == 2 and not p.any():
                p.normal_(0, 0.05)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randint(0, 256, (2, 64), generator=gen), torch.randint(0, 256, (2, 64), generator=gen)

    def loss_and_grad(forward, autocast: bool):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = forward(x, y)
        loss.backward()
        return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    exact_loss, exact_grad = loss_and_grad(model, autocast=False)  # float32 throughout
    eager_loss, eager_grad = loss_and_grad(model, autocast=True)  # bf16, the flash kernel
    assert not calls
    compiled_loss, compiled_grad = loss_and_grad(torch.compile(model, dynamic=False), autocast=True)
    assert calls, "the compiled bf16 graph attends by explicit matmuls"
    # both bf16 runs land as near the float32 loss and gradient as each other: bf16 rounding, nothing more
    for loss, grad in ((eager_loss, eager_grad), (compiled_loss, compiled_grad)):
        assert abs(loss - exact_loss) <= 1e-2 * abs(exact_loss)
        assert F.cosine_similarity(grad, exact_grad, dim=0) > 0.99
