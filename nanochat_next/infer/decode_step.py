"""A compiled one-token decode step over a static KV cache, in the manner of pytorch-labs/gpt-fast.

Decoding one token is a few small matmuls: in eager PyTorch the time goes to Python and to launching ~20
kernels per layer, not to arithmetic. Compiling the whole step into one graph removes that, but only if every
shape is fixed. The step runs the model's own forward (``GPT.forward``: one forward for training, prefill and
decode) with a ``StepCache``, which answers the forward's cache calls over fixed shapes:

- it reads the KV cache's full preallocated buffers (``KVCache.k``/``.v``: (layers, B, max_len, kv_heads,
  head_dim)), nothing sliced, and never writes them: a graph that mutates a large input is functionalised into a
  copy of the whole cache every step (measured: 3x slower at batch 8). It collects the new position's keys and
  values, the step returns them and the caller stores them (``write``: one small copy per step);
- the position is a 0-D tensor, so the rotary angles and the mask are looked up, not baked into the graph;
- attention covers the whole cache with a mask, cached position ``j`` visible when ``j < pos`` and
  ``pos - j <= window`` (the layer's sliding window), plus the new position itself: the same keys as attending
  over the filled part only;
- smear (a recipe feature) needs the previous token's embedding: the step takes it (``prev``, from the cache) and
  returns this token's, which ``write`` keeps in the cache.

One graph per batch size (``dynamic=False``). On CUDA with CUDA graphs (``mode="reduce-overhead"``). On CPU with
Inductor's own matrix-multiply kernels, picked by measuring each against ATen's at compile time
(``max_autotune``), over frozen weights (``freezing``: the weights become constants of the graph, packed once for
those kernels). At batch 8 a step is ~27 small matmuls (8 rows against a weight matrix) and ATen's spend most of
their time in overhead, not arithmetic or memory. Measured on an AVX2-only EPYC (results/inference_epyc_avx2.md):
decode 4.14x nanochat's Engine at batch 1 and 2.44x at batch 8 (1.65x and 1.20x before), same greedy tokens, for
a compile of ~60 s instead of ~5 s the first time (~20-25 s once Inductor's cache has the kernels). Frozen
weights mean a step compiled before the weights change would decode with the old ones: ``Engine`` checks
(``weights_version``). The prompt is prefilled by the eager forward into the same cache. Greedy tokens
equal the eager engine's (tests/infer/test_decode_step.py).
"""

from __future__ import annotations

import torch
from torch import nn

from nanochat_next.model.gpt import GPT


class StepCache:
    """The static cache as one decode step sees it (the cache calls of ``infer.kv_cache``, over fixed shapes)."""

    def __init__(self, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: torch.Tensor, prev: torch.Tensor):
        self.k_cache, self.v_cache, self.pos, self.prev = k_cache, v_cache, pos, prev
        self.slots = torch.arange(k_cache.size(2), device=k_cache.device)  # every cache position
        self.new_k: list[torch.Tensor] = []  # per layer: this token's keys and values, for the caller to store
        self.new_v: list[torch.Tensor] = []
        self.embedding: torch.Tensor | None = None  # this token's embedding (smear's next "previous")

    def reserve(self, n_new: int, limit: int, what: str) -> None:
        pass  # checked outside the graph, before the step (``write`` and the engine)

    def positions(self, n_new: int) -> torch.Tensor:
        return self.pos.view(1)

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int) -> torch.Tensor:
        """One query per head, q (B, H, 1, D), against the cached positions and itself, k/v (B, H_kv, 1, D)."""
        B, n_head, _, head_dim = q.shape
        n_kv = k.size(1)
        self.new_k.append(k.transpose(1, 2))  # (B, 1, H_kv, D): the cache's layout
        self.new_v.append(v.transpose(1, 2))
        # GQA: the query heads that share a key/value head (head h reads kv head h // group) are one small matmul
        # against that head's cache; scaled by 1/sqrt(head_dim) as scaled_dot_product_attention does
        qg = q.reshape(B, n_kv, n_head // n_kv, head_dim) / head_dim**0.5
        visible = (self.slots < self.pos) & (self.pos - self.slots <= window)  # cached and inside the window
        cached = (qg @ self.k_cache[layer].permute(0, 2, 3, 1)).masked_fill(~visible, float("-inf"))
        itself = (qg * k).sum(-1, keepdim=True)  # the new position attends to itself too
        probs = torch.cat([cached, itself], dim=-1).softmax(-1)  # (B, kv, group, max_len + 1)
        y = probs[..., :-1] @ self.v_cache[layer].transpose(1, 2) + probs[..., -1:] * v  # (B, kv, group, D)
        return y.reshape(B, n_head, 1, head_dim)

    def swap_previous(self, x: torch.Tensor) -> torch.Tensor:
        self.embedding = x[:, -1:]
        return self.prev

    def advance(self, n_new: int) -> None:
        pass  # the caller advances the real cache (``write``)


class DecodeStep(nn.Module):
    """``forward(token (B, 1), pos (0-D long), k_cache, v_cache, prev (B, 1, n_embd)) -> (logits (B, vocab),
    new_k, new_v, embedding)`` for the modern GPT; ``new_k``/``new_v`` (layers, B, 1, kv_heads, head_dim)
    belong at ``pos`` and ``embedding`` is the next step's ``prev`` (see ``write``)."""

    def __init__(self, model: GPT):
        super().__init__()
        self.model = model

    def forward(self, token: torch.Tensor, pos: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        cache = StepCache(k_cache, v_cache, pos, prev)
        logits = self.model(token, kv_cache=cache)[:, -1]  # the model's own forward, one token
        embedding = cache.embedding if cache.embedding is not None else prev
        return logits, torch.stack(cache.new_k), torch.stack(cache.new_v), embedding


def previous_embedding(cache, model: GPT) -> torch.Tensor:
    """The ``prev`` input of a step: the cache's last embedding (zeros when the model has no smear)."""
    if cache.prev_embedding is not None:
        # after the prefill it is a view into the prompt's embeddings, with other strides than a step's output:
        # copied with the standard strides (``.contiguous()`` keeps a one-row view as it is), or the graph would be
        # compiled a second time for the first step's strides (measured)
        return cache.prev_embedding.clone(memory_format=torch.contiguous_format)
    return torch.zeros(cache.batch_size, 1, model.config.n_embd, device=cache.k.device, dtype=cache.k.dtype)


def write(cache, new_k: torch.Tensor, new_v: torch.Tensor, embedding: torch.Tensor | None = None) -> None:
    """Store a step's keys and values (and, for smear, its embedding) at the cache's position and advance it."""
    cache.check_room(1)
    cache.k[:, :, cache.pos: cache.pos + 1] = new_k
    cache.v[:, :, cache.pos: cache.pos + 1] = new_v
    if cache.prev_embedding is not None and embedding is not None:
        cache.prev_embedding = embedding
    cache.advance(1)


def compiled_step(model: GPT, autotune: bool = True):
    """The decode step compiled for the model's device: CUDA graphs on CUDA; on CPU autotuned matmul kernels over
    frozen weights (see the module's docstring), or with ``autotune=False`` Inductor's defaults (a few seconds of
    compilation instead of 20-60 per batch size, ATen's matmuls: for a check of the pipeline, not for speed);
    elsewhere Inductor's defaults."""
    device = next(model.parameters()).device.type
    if device == "cuda":
        return torch.compile(DecodeStep(model), dynamic=False, fullgraph=True, mode="reduce-overhead")
    if device != "cpu" or not autotune:  # mps: Inductor's defaults (the choices below were measured on CPUs only)
        return torch.compile(DecodeStep(model), dynamic=False, fullgraph=True)
    return FrozenStep(torch.compile(DecodeStep(model), dynamic=False, fullgraph=True, options={"max_autotune": True}))


class FrozenStep:
    """Calls a compiled step with Inductor's ``freezing`` on. Passed in ``torch.compile``'s options it is ignored
    (measured: same speed as without), and set globally it would freeze every other graph compiled under no_grad;
    patched around the call, it holds while the first call of a batch size compiles (and costs microseconds later)."""

    def __init__(self, step):
        self.step = step

    def __call__(self, *args):
        with torch._inductor.config.patch(freezing=True):
            return self.step(*args)


def weights_version(model: nn.Module) -> tuple[tuple[int, int], ...]:
    """What changes whenever a parameter does: modified in place (an optimizer step, ``load_state_dict``: its
    version counter) or replaced (``model.to(...)``: its storage)."""
    return tuple((p.data_ptr(), p._version) for p in model.parameters())
