"""The tensor GPT in its ``classic`` style: GPT-2.

Learned position embeddings, LayerNorm (with bias) before attention and MLP and at the end, GELU (tanh
approximation), biases in every linear layer, and the output head tied to the token embedding. Init as
GPT-2: N(0, 0.02), residual projections scaled by 1 / sqrt(2 x n_layer). The vocabulary is padded to a
multiple of 64 like the modern style; it is the teaching model and a faithful export target (its
architecture is what non-Python stacks load as "gpt2").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nanochat_next.errors import UserError
from nanochat_next.model.gpt import GPTConfig, causal_attention, logits_or_loss


class ClassicBlock(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        c = config.n_embd
        self.n_head = config.n_head
        self.ln_1 = nn.LayerNorm(c)
        self.c_attn = nn.Linear(c, 3 * c)
        self.attn_proj = nn.Linear(c, c)
        self.ln_2 = nn.LayerNorm(c)
        self.c_fc = nn.Linear(c, 4 * c)
        self.mlp_proj = nn.Linear(4 * c, c)

    def forward(self, x: torch.Tensor, layer: int = 0, cache=None, context: int = 0) -> torch.Tensor:
        B, n_tok, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)  # one matmul for queries, keys and values
        q, k, v = (t.view(B, n_tok, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        # full causal attention (a window as long as the context), over the cached positions too when decoding
        y = causal_attention(q, k, v, context) if cache is None else cache.attend(layer, q, k, v, context)
        y = y.transpose(1, 2).contiguous().view(B, n_tok, C)
        x = x + self.attn_proj(y)  # pre-norm residual, as the modern style
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))  # GPT-2's GELU


class ClassicGPT(nn.Module):
    style = "classic"

    def __init__(self, config: GPTConfig, init: bool = True):
        super().__init__()
        self.config = config
        vocab = config.padded_vocab_size
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(vocab, config.n_embd),
            "wpe": nn.Embedding(config.sequence_len, config.n_embd),
            "h": nn.ModuleList([ClassicBlock(config) for _ in range(config.n_layer)]),
            "ln_f": nn.LayerNorm(config.n_embd),
        })
        self.lm_head = nn.Linear(config.n_embd, vocab, bias=False)
        # tied: one matrix reads tokens in and scores them out (fewer parameters; GPT-2's choice, not nanochat's)
        self.lm_head.weight = self.transformer.wte.weight
        if init:
            self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif "ln_" in name:
                nn.init.ones_(p)  # LayerNorm starts as the identity (gain 1)
            else:
                # GPT-2: every residual branch adds to the stream, 2 per layer; scaling their output projections by
                # 1/sqrt(2 n_layer) keeps the stream's variance from growing with depth
                std = 0.02 / (2 * self.config.n_layer) ** 0.5 if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, std=std)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, loss_reduction: str = "mean",
                kv_cache=None) -> torch.Tensor:
        n_tok, context = idx.size(1), self.config.sequence_len
        what = f"the learned positions ({context})"
        if kv_cache is None:
            if n_tok > context:
                raise UserError(f"position {n_tok} is past {what}")
            pos = torch.arange(n_tok, device=idx.device)
        else:
            kv_cache.reserve(n_tok, context, what)
            pos = kv_cache.positions(n_tok)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)  # token + learned position embeddings
        for i, block in enumerate(self.transformer.h):
            x = block(x, i, kv_cache, context)
        if kv_cache is not None:
            kv_cache.advance(n_tok)
        # the final LayerNorm, the head, padding columns dropped; no soft-cap in GPT-2
        logits = self.lm_head(self.transformer.ln_f(x))[..., : self.config.vocab_size].float()
        return logits_or_loss(logits, targets, loss_reduction)

    def flops_per_token(self) -> int:
        c = self.config
        # 6 FLOPs per matmul weight per token (2 forward, 4 backward), plus attention over the full context
        matmul = sum(p.numel() for n, p in self.named_parameters() if p.dim() == 2 and "wpe" not in n)
        return 6 * matmul + 12 * c.n_layer * c.n_head * c.head_dim * c.sequence_len

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        matrices = [p for n, p in self.transformer.h.named_parameters() if p.dim() == 2]
        others = [p for n, p in self.transformer.h.named_parameters() if p.dim() != 2]
        return {"matrices": matrices, "embeddings": list(self.transformer.wte.parameters()),
                "positions": list(self.transformer.wpe.parameters()),
                "norms_and_biases": others + list(self.transformer.ln_f.parameters())}

