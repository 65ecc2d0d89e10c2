"""A preallocated key/value cache for incremental decoding: one (B, max_len, n_kv_head, head_dim) pair per layer.

Positions are shared by the whole batch (all rows advance together). Writing past ``max_len`` is an
error that says so, never a silent wrap or crop: nanochat's rotary/cache bounds checks miss the cache
offset (its issues #514, #581), which is exactly the bug class this guards against.
"""

from __future__ import annotations

import torch

from nanochat_next.errors import UserError


class KVCache:
    def __init__(self, n_layer: int, batch_size: int, max_len: int, n_kv_head: int, head_dim: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        if max_len < 1:
            raise UserError(f"a KV cache needs room for at least one position, got {max_len}")
        shape = (n_layer, batch_size, max_len, n_kv_head, head_dim)
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

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this layer's new (B, T, H_kv, D) keys/values at the current position; return all so far."""
        n_new = k.size(1)
        self.check_room(n_new)
        self.k[layer, :, self.pos:self.pos + n_new] = k
        self.v[layer, :, self.pos:self.pos + n_new] = v
        end = self.pos + n_new
        return self.k[layer, :, :end], self.v[layer, :, :end]

    def advance(self, n_new: int) -> None:
        self.pos += n_new

    def expand(self, batch_size: int) -> KVCache:
        """A cache for ``batch_size`` rows that all start from this (batch 1) cache's contents."""
        if self.batch_size != 1:
            raise ValueError("only a batch-1 cache can be expanded")
        other = KVCache.__new__(KVCache)
        other.k = self.k.expand(-1, batch_size, -1, -1, -1).contiguous()
        other.v = self.v.expand(-1, batch_size, -1, -1, -1).contiguous()
        other.max_len, other.pos = self.max_len, self.pos
        other.prev_embedding = (None if self.prev_embedding is None
                                else self.prev_embedding.expand(batch_size, -1, -1).contiguous())
        return other
