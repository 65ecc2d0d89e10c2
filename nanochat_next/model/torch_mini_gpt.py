"""The scalar mini-GPT written with torch tensors: the same function on whole sequences at once.

Given the same weights, ``TorchMiniGPT`` (float64 by default) computes the same logits, loss and
gradients as ``ScalarMiniGPT`` (the tests check 1e-9): per-token KV lists become one causal attention
over the sequence. This is where the teaching path moves from scalars to tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nanochat_next.scalar.gpt import MiniGPTConfig, ScalarMiniGPT, matrix_names


def rms_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    return x * (x.pow(2).mean(-1, keepdim=True) + eps).rsqrt()


class TorchMiniGPT(nn.Module):
    def __init__(self, config: MiniGPTConfig, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.config = config
        # parameters named like the scalar model's weights, with "." replaced by "_" (torch forbids dots)
        for name, rows, cols, std in matrix_names(config):
            self.register_parameter(name.replace(".", "_"), nn.Parameter(torch.randn(rows, cols, dtype=dtype) * std))

    def weight(self, name: str) -> torch.Tensor:
        return getattr(self, name.replace(".", "_"))

    @classmethod
    def from_scalar(cls, model: ScalarMiniGPT, dtype: torch.dtype = torch.float64) -> TorchMiniGPT:
        twin = cls(model.config, dtype)
        with torch.no_grad():
            for name, mat in model.weights.items():
                twin.weight(name).copy_(torch.tensor([[p.data for p in row] for row in mat], dtype=dtype))
        return twin

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (n_tok, vocab) for a 1-D tensor of n_tok token ids, position i seeing tokens 0..i."""
        c = self.config
        n_tok = idx.shape[0]
        if n_tok > c.block_size:
            raise ValueError(f"sequence of {n_tok} tokens is longer than the block size {c.block_size}")
        x = rms_norm(self.weight("wte")[idx] + self.weight("wpe")[:n_tok])  # token + position, normed
        # the scalar model's KV lists, all at once: row i may look at columns 0..i
        causal = torch.ones(n_tok, n_tok, dtype=torch.bool, device=idx.device).tril()
        for li in range(c.n_layer):
            w = lambda n, li=li: self.weight(f"layer{li}.{n}")  # noqa: E731
            residual = x
            h = rms_norm(x)
            # (heads, n_tok, head_dim): each head attends in its own slice of the width
            q, k, v = (t.view(n_tok, c.n_head, c.head_dim).transpose(0, 1)
                       for t in (h @ w("attn_wq").T, h @ w("attn_wk").T, h @ w("attn_wv").T))
            scores = (q @ k.transpose(1, 2)) / c.head_dim**0.5  # every query against every key, scaled
            att = scores.masked_fill(~causal, float("-inf")).softmax(-1)  # no weight on the future
            x = (att @ v).transpose(0, 1).reshape(n_tok, c.n_embd) @ w("attn_wo").T + residual
            residual = x
            x = F.relu(rms_norm(x) @ w("mlp_fc1").T).square() @ w("mlp_fc2").T + residual  # the MLP, ReLU squared
        return x @ self.weight("lm_head").T

    def loss(self, tokens: list[int]) -> torch.Tensor:
        """Mean cross-entropy over the first min(block_size, len - 1) positions, as ScalarMiniGPT.loss."""
        n = min(self.config.block_size, len(tokens) - 1)
        idx = torch.tensor(tokens[: n + 1])
        return F.cross_entropy(self.forward(idx[:n]), idx[1 : n + 1])
