"""The bigram of notebook 02 as a tensor model, trainable by the same loop as the GPTs."""

from __future__ import annotations

import torch
from torch import nn

from nanochat_next.model.gpt import GPTConfig, logits_or_loss


class TensorBigram(nn.Module):
    """The bigram of notebook 02 as a tensor model: a (vocab x vocab) table of next-token logits."""

    style = "bigram"

    def __init__(self, config: GPTConfig, init: bool = True):
        super().__init__()
        self.config = config
        self.logits = nn.Embedding(config.vocab_size, config.vocab_size)
        if init:
            self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        nn.init.zeros_(self.logits.weight)  # uniform predictions at the start

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, loss_reduction: str = "mean",
                kv_cache=None) -> torch.Tensor:
        if kv_cache is not None:  # nothing to cache: the next token depends on the current one only
            kv_cache.check_room(idx.size(1))
            kv_cache.advance(idx.size(1))
        logits = self.logits(idx).float()  # row `token` of the table: the next token's logits, nothing else
        return logits_or_loss(logits, targets, loss_reduction)

    def flops_per_token(self) -> int:
        return 6 * self.config.vocab_size  # the softmax over one row; the lookup costs no matmul

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"embeddings": [self.logits.weight]}
