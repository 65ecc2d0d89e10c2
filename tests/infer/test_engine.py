"""Inference engine: KV cache = full forward, greedy = argmax, seeds, top-k/top-p, context limits, streaming."""

from __future__ import annotations

import pytest
import torch

from nanochat_next.errors import UserError
from nanochat_next.infer.engine import Engine, sample_next
from nanochat_next.infer.kv_cache import KVCache
from nanochat_next.model.gpt import GPT, GPTConfig
from nanochat_next.model.gpt_classic import ClassicGPT
from nanochat_next.tokenizer.bpe import BPETokenizer

BYTES = BPETokenizer([bytes([i]) for i in range(256)])  # vocab 265: bytes + specials, BOS = 256


def perturbed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model.eval()


def modern(window_pattern: str = "SL", seq: int = 24) -> GPT:
    return perturbed(GPT(GPTConfig(sequence_len=seq, vocab_size=265, n_layer=3, n_head=4, n_kv_head=2, n_embd=32,
                                   window_pattern=window_pattern)))


def classic(seq: int = 24) -> ClassicGPT:
    return perturbed(ClassicGPT(GPTConfig(sequence_len=seq, vocab_size=265, n_layer=2, n_head=4, n_kv_head=4,
                                          n_embd=32)))


@pytest.mark.parametrize("make", [modern, lambda: modern("L"), classic], ids=["modern-SL", "modern-L", "classic"])
@pytest.mark.parametrize("prefill", [1, 5, 23])
def test_kv_cache_logits_equal_full_forward(make, prefill):
    model = make()
    idx = torch.randint(0, 265, (2, 24), generator=torch.Generator().manual_seed(prefill))
    with torch.no_grad():
        full = model(idx)
        c = model.config
        cache = KVCache(c.n_layer, 2, 24, c.n_kv_head, c.head_dim)
        got = [model(idx[:, :prefill], kv_cache=cache)]
        for t in range(prefill, 24):
            got.append(model(idx[:, t:t + 1], kv_cache=cache))
    assert cache.pos == 24
    assert (torch.cat(got, dim=1) - full).abs().max().item() < 1e-5


def test_cache_overflow_is_a_clear_error():
    model = modern()
    cache = KVCache(3, 1, 4, 2, 8)
    model(torch.zeros(1, 4, dtype=torch.long), kv_cache=cache)
    with pytest.raises(UserError, match="KV cache full"):
        model(torch.zeros(1, 1, dtype=torch.long), kv_cache=cache)


def test_greedy_equals_argmax_of_repeated_full_forwards():
    model = modern()
    prompt = [256, 72, 105]
    ours = Engine(model, BYTES).generate_batch(prompt, 12, temperature=0.0, stop_tokens=set())[0]
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(12):
            ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
    assert ours == ids[len(prompt):]


def test_seeds_temperature_top_k_top_p():
    engine = Engine(modern(), BYTES)
    prompt = [256, 65]
    a = engine.generate_batch(prompt, 10, num_samples=3, temperature=1.0, seed=5, stop_tokens=set())
    b = engine.generate_batch(prompt, 10, num_samples=3, temperature=1.0, seed=5, stop_tokens=set())
    c = engine.generate_batch(prompt, 10, num_samples=3, temperature=1.0, seed=6, stop_tokens=set())
    assert a == b and a != c
    assert len({tuple(s) for s in a}) > 1, "samples of one prompt differ from each other"
    greedy = engine.generate_batch(prompt, 10, temperature=0.0, stop_tokens=set())[0]
    assert engine.generate_batch(prompt, 10, num_samples=2, top_k=1, seed=9, stop_tokens=set()) == [greedy, greedy]
    assert engine.generate_batch(prompt, 10, top_p=1e-6, seed=9, stop_tokens=set())[0] == greedy


def test_top_k_and_top_p_restrict_the_support():
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]])
    gen = torch.Generator().manual_seed(0)
    draws = {int(sample_next(logits, 1.0, top_k=2, generator=gen)) for _ in range(200)}
    assert draws == {0, 1}
    probs = logits.softmax(-1)[0]  # 0.64, 0.24, 0.09, ...: top-p 0.8 keeps the first two
    assert probs[0] < 0.8 < probs[0] + probs[1]
    draws = {int(sample_next(logits, 1.0, top_p=0.8, generator=gen)) for _ in range(200)}
    assert draws == {0, 1}


def test_context_limits():
    engine = Engine(modern(seq=8), BYTES)
    with pytest.raises(UserError, match="prompt is 9 tokens but the model's context is 8"):
        engine.generate_batch([256] * 9, 5)
    assert engine.generate_batch([256] * 8, 5, stop_tokens=set()) == [[]]
    assert engine.stop_reason == ["context"]
    out = engine.generate_batch([256] * 5, 10, stop_tokens=set(), temperature=0.0)
    assert len(out[0]) == 3 and engine.stop_reason == ["context"]
    out = engine.generate_batch([256] * 2, 3, stop_tokens=set(), temperature=0.0)
    assert len(out[0]) == 3 and engine.stop_reason == ["length"]
    for bad in (dict(temperature=-1.0), dict(temperature=float("nan")), dict(top_k=0), dict(top_p=0.0)):
        with pytest.raises(UserError):
            engine.generate_batch([256], 2, **bad)


def test_stop_tokens_end_samples():
    engine = Engine(modern(), BYTES)
    greedy = engine.generate_batch([256, 70], 12, temperature=0.0, stop_tokens=set())[0]
    stopped = engine.generate_batch([256, 70], 12, temperature=0.0, stop_tokens={greedy[3]})[0]
    assert stopped == greedy[: greedy.index(greedy[3])]
    assert engine.stop_reason == ["stop"]


def test_stream_never_splits_a_utf8_character(monkeypatch):
    engine = Engine(modern(), BYTES)
    text = "aé👋z"
    tokens = list(text.encode("utf-8"))
    monkeypatch.setattr(engine, "generate", lambda *a, **k: iter([[t] for t in tokens] + [[None]]))
    pieces = list(engine.stream_text([256], 10))
    assert pieces == ["a", "é", "👋", "z"] and "".join(pieces) == text
