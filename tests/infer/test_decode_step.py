"""The compiled one-token decode step: the same greedy tokens as the eager engine (fp32), with sliding windows,
GQA and value embeddings, at batch 1 and several samples; the static cache's bounds still checked."""

from __future__ import annotations

import pytest
import torch

from nanochat_next.errors import UserError
from nanochat_next.infer.decode_step import DecodeStep, previous_embedding, write
from nanochat_next.infer.engine import Engine
from nanochat_next.infer.kv_cache import KVCache
from nanochat_next.model.gpt import GPT, GPTConfig
from nanochat_next.model.gpt_classic import ClassicGPT

# the `next` recipe's model features, all at once: the step must follow every one of them
FEATURES = dict(smear=True, backout=True, qk_scale=1.2, rope_base=100000.0, ve_gate_range=3.0, ve_gate_channels=12,
                init="next")


@pytest.fixture(scope="module", params=["nanochat", "features", "tied-unnormed"])
def model(request) -> GPT:
    torch.manual_seed(3)
    extra = {"nanochat": {}, "features": FEATURES, "tied-unnormed": dict(tie_embeddings=True, embed_norm=False)}
    config = GPTConfig(sequence_len=48, vocab_size=96, n_layer=3, n_head=4, n_kv_head=2, n_embd=64,
                       window_pattern="SL", **extra[request.param])
    m = GPT(config)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # no zero projections: every path matters
    return m.eval()


@torch.inference_mode()
def test_the_static_cache_step_equals_the_full_forward(model):
    """Uncompiled (fast to test everywhere): every decoded position's logits equal a full forward's."""
    ids = torch.randint(0, 96, (2, 40), generator=torch.Generator().manual_seed(0))
    full = model(ids)
    cache = KVCache(3, 2, 48, 2, 16)
    model(ids[:, :5], kv_cache=cache)  # prefill 5, then 35 single steps past the window of 24
    step = DecodeStep(model)
    for t in range(5, 40):
        logits, new_k, new_v, emb = step(ids[:, t:t + 1], torch.tensor(cache.pos), cache.k, cache.v,
                                         previous_embedding(cache, model))
        write(cache, new_k, new_v, emb)
        assert (logits - full[:, t]).abs().max().item() < 1e-4  # fp32, another summation order (masked slots)


@pytest.mark.slow
@pytest.mark.parametrize("samples, autotune", [(1, True), (3, False)])  # --compile's kernels; Inductor's defaults
def test_compiled_greedy_tokens_equal_the_eager_engine(model, samples, autotune):
    prompt = [95, 3, 17, 42, 8]
    eager = Engine(model).generate_batch(prompt, 40, samples, temperature=0.0, stop_tokens=set())
    fast = Engine(model, compile=True, autotune=autotune)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    compiled = fast.generate_batch(prompt, 40, samples, temperature=0.0, stop_tokens=set())
    assert compiled == eager
    # one graph per model and batch size: smear's first input (a view of the prompt's embeddings) once had other
    # strides than the later ones, and each smear model was compiled twice
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] - graphs == 1
    assert len(set(compiled[0])) > 3, "a degenerate sequence would prove little"
    assert fast.stop_reason == ["length"] * samples


@pytest.mark.slow
def test_the_compiled_engine_refuses_weights_changed_since_it_compiled():
    """The CPU step freezes the weights into its graph: after an in-place change (an optimizer step) it would decode
    with the old ones, so it says so instead."""
    torch.manual_seed(0)
    m = GPT(GPTConfig(sequence_len=16, vocab_size=32, n_layer=1, n_head=2, n_kv_head=2, n_embd=32)).eval()
    engine = Engine(m, compile=True)
    engine.generate_batch([1, 2, 3], 4, temperature=0.0, stop_tokens=set())
    with torch.no_grad():
        m.lm_head.weight.mul_(2.0)
    with pytest.raises(UserError, match="weights changed since this engine compiled"):
        engine.generate_batch([1, 2, 3], 4, temperature=0.0, stop_tokens=set())
    # a new engine compiles the new weights and decodes as the eager model does
    fresh = Engine(m, compile=True).generate_batch([1, 2, 3], 6, temperature=0.0, stop_tokens=set())
    assert fresh == Engine(m).generate_batch([1, 2, 3], 6, temperature=0.0, stop_tokens=set())


def test_compiled_decoding_is_for_the_modern_gpt():
    classic = ClassicGPT(GPTConfig(sequence_len=16, vocab_size=32, n_layer=1, n_head=2, n_kv_head=2, n_embd=32))
    with pytest.raises(UserError, match="compiled decoding is for the modern GPT"):
        Engine(classic, compile=True)
