"""A compiled one-token decode step over a static KV cache, in the manner of pytorch-labs/gpt-fast.

Decoding one token is a few small matmuls: in eager PyTorch the time goes to Python and to launching ~20
kernels per layer, not to arithmetic. Compiling the whole step into one graph removes that, but only if
every shape is fixed, so the step:

- reads and writes the KV cache's full preallocated buffers (``KVCache.k``/``.v``: (layers, B, max_len,
  kv_heads, head_dim)): the new key/value go in at ``pos`` with ``index_copy_``, nothing is sliced;
- takes the position as a 0-D tensor, so the rotary angles and the mask are looked up, not baked in;
- attends over the whole cache with a mask: position ``j`` is visible when ``j <= pos`` and
  ``pos - j <= window`` (the layer's sliding window), which equals attending over the filled part only.

One graph per batch size (``dynamic=False``); on CPU Inductor's C++ backend, on CUDA with CUDA graphs
(``mode="reduce-overhead"``). The prompt is prefilled by the ordinary (eager) forward into the same cache.
Greedy tokens equal the eager engine's (tests/tensor/test_fast_decode.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nanochat_next.tensor.gpt import GPT, SOFTCAP, VE_GATE_CHANNELS, apply_rotary, rms_norm


class DecodeStep(nn.Module):
    """``forward(token (B, 1), pos (0-D long), k_cache, v_cache) -> logits (B, vocab)`` for the modern GPT."""

    def __init__(self, model: GPT):
        super().__init__()
        self.model = model

    def forward(self, token: torch.Tensor, pos: torch.Tensor, k_cache: torch.Tensor,
                v_cache: torch.Tensor) -> torch.Tensor:
        m, c = self.model, self.model.config
        B = token.size(0)
        cos, sin = m.cos.index_select(1, pos.view(1)), m.sin.index_select(1, pos.view(1))  # this position's angles
        slots = torch.arange(k_cache.size(2), device=token.device)
        x = rms_norm(m.transformer.wte(token))  # (B, 1, n_embd)
        x0 = x
        for i, block in enumerate(m.transformer.h):
            x = m.resid_lambdas[i] * x + m.x0_lambdas[i] * x0
            a, h = block.attn, rms_norm(x)
            q = a.c_q(h).view(B, 1, c.n_head, c.head_dim)
            k = a.c_k(h).view(B, 1, c.n_kv_head, c.head_dim)
            v = a.c_v(h).view(B, 1, c.n_kv_head, c.head_dim)
            if a.ve_gate is not None:  # value embedding through its gate, as in the full forward
                gate = 2 * torch.sigmoid(a.ve_gate(h[..., :VE_GATE_CHANNELS]))
                v = v + gate.unsqueeze(-1) * m.value_embeds[str(i)](token).view_as(v)
            q, k = rms_norm(apply_rotary(q, cos, sin)), rms_norm(apply_rotary(k, cos, sin))
            k_cache[i].index_copy_(1, pos.view(1), k)  # write this position into the static cache
            v_cache[i].index_copy_(1, pos.view(1), v)
            visible = (slots <= pos) & (pos - slots <= m.window_sizes[i])  # filled and inside the window
            y = F.scaled_dot_product_attention(q.transpose(1, 2), k_cache[i].transpose(1, 2),
                                               v_cache[i].transpose(1, 2), attn_mask=visible.view(1, 1, 1, -1),
                                               enable_gqa=c.n_head != c.n_kv_head)
            x = x + a.c_proj(y.transpose(1, 2).reshape(B, 1, c.n_embd))
            x = x + block.mlp(rms_norm(x))
        logits = m.lm_head(rms_norm(x))[:, -1, : c.vocab_size].float()
        return SOFTCAP * torch.tanh(logits / SOFTCAP)


def compiled_step(model: GPT) -> nn.Module:
    """The decode step compiled for the model's device (CUDA graphs on CUDA)."""
    mode = "reduce-overhead" if next(model.parameters()).device.type == "cuda" else None
    return torch.compile(DecodeStep(model), dynamic=False, fullgraph=True, mode=mode)
