"""A preallocated key/value cache for incremental decoding: one (B, max_len, n_kv_head, head_dim) pair per layer.

Attention at position t needs the keys and values of every position before it. Recomputing them for every new
token makes generation quadratic; keeping them makes each new token one small forward. The model's forward
talks to a cache through four calls (``GPT.forward``; the compiled step's ``decode_step.StepCache`` answers the
same calls over a static cache):

- ``reserve(n, limit)``: room for n more positions, within the cache and the model's position ``limit``;
- ``positions(n)``: the absolute positions of the n new tokens (they start at the cache's offset);
- ``attend(layer, q, k, v, window)``: store this layer's new keys/values, attend over everything cached;
- ``swap_previous(x)``: smear's memory, the previous chunk's last token embedding;

then ``advance(n)``. Positions are shared by the whole batch (all rows advance together). Writing past
``max_len`` is an error that says so, never a silent wrap or crop: nanochat's rotary/cache bounds checks miss the
cache offset (its issues #514, #581), which is exactly the bug class this guards against.
"""

from __future__ import annotations

import torch

from nanochat_next.errors import UserError
from nanochat_next.model.gpt import causal_attention


class KVCache:
    def __init__(self, n_layer: int, batch_size: int, max_len: int, n_kv_head: int, head_dim: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        if max_len < 1:
            raise UserError(f"a KV cache needs room for at least one position, got {max_len}")
        shape = (n_layer, batch_size, max_len, n_kv_head, head_dim)
        # preallocated once: growing tensors token by token would copy the whole cache every step
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.max_len = max_len
        self.pos = 0  # positions filled so far
        self.prev_embedding: torch.Tensor | None = None  # (B, 1, n_embd): the last token's, for smear

    @property
    def batch_size(self) -> int:
        return self.k.size(1)

    def check_room(self, n_new: int) -> None:
        if self.pos + n_new > self.max_len:
            raise UserError(f"KV cache full: {self.pos} positions cached + {n_new} new > its size {self.max_len}")

    def reserve(self, n_new: int, limit: int, what: str) -> None:
        """Room for ``n_new`` more positions in the cache and up to ``limit`` (``what`` names it: e.g. the rotary
        tables' length)."""
        if self.pos + n_new > limit:
            raise UserError(f"position {self.pos + n_new} is past {what}")
        self.check_room(n_new)

    def positions(self, n_new: int) -> torch.Tensor:
        return torch.arange(self.pos, self.pos + n_new, device=self.k.device)

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int) -> torch.Tensor:
        """q (B, H, T, D) and this layer's new k/v (B, H_kv, T, D): store k/v at the current position, then causal
        attention of the T queries over every cached position (those before them and themselves)."""
        n_new = k.size(2)
        end = self.pos + n_new
        self.k[layer, :, self.pos:end] = k.transpose(1, 2)  # the cache keeps (B, T, H_kv, D), as nanochat's
        self.v[layer, :, self.pos:end] = v.transpose(1, 2)
        return causal_attention(q, self.k[layer, :, :end].transpose(1, 2), self.v[layer, :, :end].transpose(1, 2),
                                window)

    def swap_previous(self, x: torch.Tensor) -> torch.Tensor | None:
        """The previous chunk's last embedding (None at the start), keeping this chunk's last one for the next."""
        before, self.prev_embedding = self.prev_embedding, x[:, -1:]
        return before

    def advance(self, n_new: int) -> None:
        self.pos += n_new

    def expand(self, batch_size: int) -> KVCache:
        """A cache for ``batch_size`` rows that all start from this (batch 1) cache's contents."""
        if self.batch_size != 1:
            raise ValueError("only a batch-1 cache can be expanded")
        other = KVCache.__new__(KVCache)
        # expand is a view; contiguous makes each row its own copy, which its sample then writes alone
        other.k = self.k.expand(-1, batch_size, -1, -1, -1).contiguous()
        other.v = self.v.expand(-1, batch_size, -1, -1, -1).contiguous()
        other.max_len, other.pos = self.max_len, self.pos
        other.prev_embedding = (None if self.prev_embedding is None
                                else self.prev_embedding.expand(batch_size, -1, -1).contiguous())
        return other
