"""A compiled one-token decode step over a static KV cache, in the manner of pytorch-labs/gpt-fast.

Decoding one token is a few small matmuls: in eager PyTorch the time goes to Python and to launching ~20
kernels per layer, not to arithmetic. Compiling the whole step into one graph removes that, but only if
every shape is fixed, so the step:

- reads the KV cache's full preallocated buffers (``KVCache.k``/``.v``: (layers, B, max_len, kv_heads,
  head_dim)), nothing sliced, and never writes them: a graph that mutates a large input is functionalised
  into a copy of the whole cache every step (measured: 3x slower at batch 8). The step returns the new
  position's keys and values, and the caller stores them (``write``: one small copy per step);
- takes the position as a 0-D tensor, so the rotary angles and the mask are looked up, not baked in;
- attends over the whole cache with a mask, cached position ``j`` visible when ``j < pos`` and
  ``pos - j <= window`` (the layer's sliding window), plus the new position itself: the same keys as
  attending over the filled part only.

Smear (a recipe feature) needs the previous token's embedding: the step takes it (``prev``, from the cache)
and returns this token's, which ``write`` keeps in the cache.

One graph per batch size (``dynamic=False``); on CPU Inductor's C++ backend, on CUDA with CUDA graphs
(``mode="reduce-overhead"``). The prompt is prefilled by the ordinary (eager) forward into the same cache.
Greedy tokens equal the eager engine's (tests/tensor/test_fast_decode.py).
"""

from __future__ import annotations

import torch
from torch import nn

from nanochat_next.tensor.gpt import GPT, SMEAR_CHANNELS, SOFTCAP, apply_rotary, rms_norm


class DecodeStep(nn.Module):
    """``forward(token (B, 1), pos (0-D long), k_cache, v_cache, prev (B, 1, n_embd)) -> (logits (B, vocab),
    new_k, new_v, embedding)`` for the modern GPT; ``new_k``/``new_v`` (layers, B, 1, kv_heads, head_dim)
    belong at ``pos`` and ``embedding`` is the next step's ``prev`` (see ``write``)."""

    def __init__(self, model: GPT):
        super().__init__()
        self.model = model

    def forward(self, token: torch.Tensor, pos: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        m, c = self.model, self.model.config
        B, group = token.size(0), c.n_head // c.n_kv_head
        cos, sin = m.cos.index_select(1, pos.view(1)), m.sin.index_select(1, pos.view(1))  # this position's angles
        slots = torch.arange(k_cache.size(2), device=token.device)
        x = m.transformer.wte(token)  # (B, 1, n_embd)
        x = embedding = rms_norm(x) if c.embed_norm else x
        if c.smear:  # the previous token's embedding through the gate, as in GPT.smear
            x = x + m.smear_lambda * torch.sigmoid(m.smear_gate(x[..., :SMEAR_CHANNELS])) * prev
        x0, mid = x, None
        new_k, new_v = [], []
        for i, block in enumerate(m.transformer.h):
            x = m.resid_lambdas[i] * x + m.x0_lambdas[i] * x0
            a, h = block.attn, rms_norm(x)
            q = a.c_q(h).view(B, 1, c.n_head, c.head_dim)
            k = a.c_k(h).view(B, 1, c.n_kv_head, c.head_dim)
            v = a.c_v(h).view(B, 1, c.n_kv_head, c.head_dim)
            if a.ve_gate is not None:  # value embedding through its gate, as in the full forward
                gate = c.ve_gate_range * torch.sigmoid(a.ve_gate(h[..., :c.ve_gate_channels]))
                v = v + gate.unsqueeze(-1) * m.value_embeds[str(i)](token).view_as(v)
            q, k = rms_norm(apply_rotary(q, cos, sin)) * c.qk_scale, rms_norm(apply_rotary(k, cos, sin)) * c.qk_scale
            new_k.append(k)
            new_v.append(v)
            # one query per head against the cached positions and itself; the query heads sharing a key/value
            # head (GQA: head h reads kv head h // group) are one small matmul against that head's cache
            qg = q.view(B, c.n_kv_head, group, c.head_dim) / c.head_dim**0.5
            kh, vh = k.view(B, c.n_kv_head, 1, c.head_dim), v.view(B, c.n_kv_head, 1, c.head_dim)
            visible = (slots < pos) & (pos - slots <= m.window_sizes[i])  # cached and inside the window
            cached = (qg @ k_cache[i].permute(0, 2, 3, 1)).masked_fill(~visible, float("-inf"))
            scores = torch.cat([cached, (qg * kh).sum(-1, keepdim=True)], dim=-1)  # (B, kv, group, max_len + 1)
            probs = scores.softmax(-1)
            y = probs[..., :-1] @ v_cache[i].transpose(1, 2) + probs[..., -1:] * vh  # (B, kv, group, head_dim)
            x = x + a.c_proj(y.reshape(B, 1, c.n_embd))
            x = x + block.mlp(rms_norm(x))
            if c.backout and i == c.n_layer // 2:
                mid = x
        if mid is not None:
            x = x - m.backout_lambda * mid
        logits = m.lm_head(rms_norm(x))[:, -1, : c.vocab_size].float()
        return SOFTCAP * torch.tanh(logits / SOFTCAP), torch.stack(new_k), torch.stack(new_v), embedding


def previous_embedding(cache, model: GPT) -> torch.Tensor:
    """The ``prev`` input of a step: the cache's last embedding (zeros when the model has no smear)."""
    if cache.prev_embedding is not None:
        return cache.prev_embedding
    return torch.zeros(cache.batch_size, 1, model.config.n_embd, device=cache.k.device, dtype=cache.k.dtype)


def write(cache, new_k: torch.Tensor, new_v: torch.Tensor, embedding: torch.Tensor | None = None) -> None:
    """Store a step's keys and values (and, for smear, its embedding) at the cache's position and advance it."""
    cache.check_room(1)
    cache.k[:, :, cache.pos: cache.pos + 1] = new_k
    cache.v[:, :, cache.pos: cache.pos + 1] = new_v
    if cache.prev_embedding is not None and embedding is not None:
        cache.prev_embedding = embedding
    cache.advance(1)


def compiled_step(model: GPT) -> nn.Module:
    """The decode step compiled for the model's device (CUDA graphs on CUDA)."""
    mode = "reduce-overhead" if next(model.parameters()).device.type == "cuda" else None
    return torch.compile(DecodeStep(model), dynamic=False, fullgraph=True, mode=mode)
