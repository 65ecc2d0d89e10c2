"""Validation in bits per byte (nanochat's definition), independent of the tokenizer's vocabulary size.

bpb = (sum of the loss in nats over target tokens that carry bytes) / (ln 2 x sum of those bytes), where
a token's bytes are the UTF-8 length of its text and special tokens (``<|bos|>``) weigh 0: they are left
out of both sums, as are ignored targets (-1). Summed over all ranks under DDP.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.distributed as dist


@torch.no_grad()
def evaluate_bpb(model: torch.nn.Module, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], steps: int,
                 token_bytes: torch.Tensor, device: torch.device | str = "cpu",
                 autocast: AbstractContextManager | None = None) -> float:
    """Bits per byte over ``steps`` batches; ``token_bytes[i]`` is the byte length of token i (0 = skip)."""
    was_training = model.training
    model.eval()
    # float64 sums: thousands of per-token losses added in float32 would lose digits the comparisons need
    total_nats = torch.zeros((), dtype=torch.float64, device=device)
    total_bytes = torch.zeros((), dtype=torch.int64, device=device)
    token_bytes = token_bytes.to(device)
    for _ in range(steps):
        x, y = next(batches)
        x, y = x.to(device), y.to(device)
        with autocast or nullcontext():
            loss = model(x, y, loss_reduction="none").view(-1).double()
        y = y.view(-1)
        # each target's byte length (0 for ignored targets and special tokens): bpb does not depend on how many
        # bytes a tokenizer packs into a token, so models with different vocabularies compare
        nbytes = torch.where(y >= 0, token_bytes[y.clamp_min(0)], torch.zeros_like(y))
        total_nats += (loss * (nbytes > 0)).sum()
        total_bytes += nbytes.sum()
        del loss  # keep nothing alive between batches: eval memory stays flat
    if dist.is_initialized():  # every rank evaluated its own share of the rows
        dist.all_reduce(total_nats)
        dist.all_reduce(total_bytes)
    model.train(was_training)
    n_bytes = total_bytes.item()
    # nats / ln 2 = bits; per byte of text
    return total_nats.item() / (math.log(2) * n_bytes) if n_bytes else math.inf
