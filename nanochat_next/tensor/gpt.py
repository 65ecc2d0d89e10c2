"""The tensor GPT in its ``modern`` style: karpathy/nanochat's model at the pinned ref 2f09686.

Every feature of that model, written anew and checked against nanochat's own code (tests/fixtures):

- rotary position embeddings (base 10,000, "split halves" rotation, tables kept in bfloat16 as nanochat
  does), QK-norm applied after rotary, no learned positions;
- parameter-free RMSNorm after the token embedding, before each attention/MLP and before the head;
- MLP with ReLU², no biases anywhere, an untied ``lm_head``;
- grouped-query attention (``n_kv_head`` divides ``n_head``) and a sliding-window pattern tiled over the
  layers (``L`` = full context, ``S`` = half; the last layer is always ``L``);
- value embeddings (ResFormer) on alternating layers, the last included, mixed into the values through a
  per-head gate ``2 * sigmoid(W x[:32])``;
- per-layer scalars ``resid_lambdas`` (init 1.0) and ``x0_lambdas`` (init 0.1) that blend the normed
  input embedding back into the residual stream before every block;
- logits soft-capped at 15 (``15 * tanh(logits / 15)``) in float32; vocabulary padded to a multiple of 64;
- nanochat's init; the depth dial (``config_for_depth``): model_dim = depth x aspect_ratio rounded up to
  a multiple of head_dim, heads = model_dim / head_dim.

Parameter names and shapes are nanochat's, so ``GPT.load_state_dict`` takes a nanochat checkpoint.
Master weights stay float32 on every device (nanochat casts embeddings to bf16 on CUDA); mixed precision
comes from autocast in the training loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nanochat_next.errors import UserError

SOFTCAP = 15.0
VE_GATE_CHANNELS = 32


@dataclass
class GPTConfig:
    """Field names as nanochat's GPTConfig, so its meta_*.json ``model_config`` loads directly."""

    sequence_len: int = 2048
    vocab_size: int = 32768
    n_layer: int = 12
    n_head: int = 6
    n_kv_head: int = 6
    n_embd: int = 768
    window_pattern: str = "SSSL"

    def __post_init__(self) -> None:
        for name in ("sequence_len", "vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise UserError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if self.n_head % self.n_kv_head:
            raise UserError(f"n_head {self.n_head} is not divisible by n_kv_head {self.n_kv_head}")
        if (self.n_embd // self.n_head) % 2:
            raise UserError(f"head_dim {self.n_embd // self.n_head} must be even for rotary embeddings")
        if self.n_embd < VE_GATE_CHANNELS:
            raise UserError(f"n_embd must be at least {VE_GATE_CHANNELS} (the value-embedding gate reads 32 channels)")
        if not self.window_pattern or any(c not in "SL" for c in self.window_pattern.upper()):
            raise UserError(f"window pattern {self.window_pattern!r} must be a non-empty string of S and L")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def padded_vocab_size(self) -> int:
        return -(-self.vocab_size // 64) * 64


def config_for_depth(depth: int, vocab_size: int, aspect_ratio: int = 64, head_dim: int = 128,
                     max_seq_len: int = 2048, window_pattern: str = "SSSL") -> GPTConfig:
    """nanochat's depth dial: width = depth x aspect_ratio rounded up to a multiple of head_dim."""
    if depth < 1 or aspect_ratio < 1 or head_dim < 1:
        raise UserError(f"depth, aspect ratio and head dim must be positive, got {depth}, {aspect_ratio}, {head_dim}")
    model_dim = -(-depth * aspect_ratio // head_dim) * head_dim
    heads = model_dim // head_dim
    return GPTConfig(sequence_len=max_seq_len, vocab_size=vocab_size, n_layer=depth, n_head=heads, n_kv_head=heads,
                     n_embd=model_dim, window_pattern=window_pattern)


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


def logits_or_loss(logits: torch.Tensor, targets: torch.Tensor | None, reduction: str = "mean") -> torch.Tensor:
    """What every model's forward returns: the logits, or with targets the cross-entropy (-1 = ignore)."""
    if targets is None:
        return logits
    return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1, reduction=reduction)


def has_value_embedding(layer: int, n_layer: int) -> bool:
    """Alternating layers, the last one always included."""
    return layer % 2 == (n_layer - 1) % 2


def window_sizes(config: GPTConfig) -> list[int]:
    """Tokens each layer may look back (besides itself): L = sequence_len, S = sequence_len // 2."""
    pattern = config.window_pattern.upper()
    sizes = [config.sequence_len if pattern[i % len(pattern)] == "L" else config.sequence_len // 2
             for i in range(config.n_layer)]
    sizes[-1] = config.sequence_len
    return sizes


def rotary_tables(seq_len: int, head_dim: int, base: float = 10000.0,
                  device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape (1, seq_len, 1, head_dim / 2), rounded to bfloat16 as nanochat keeps them."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim))
    freqs = torch.outer(torch.arange(seq_len, dtype=torch.float32, device=device), inv_freq)
    return freqs.cos().bfloat16()[None, :, None, :], freqs.sin().bfloat16()[None, :, None, :]


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the pairs (x[i], x[i + d/2]) of every head by the position's angles."""
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat([x1 * cos + x2 * sin, x1 * (-sin) + x2 * cos], -1)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int) -> torch.Tensor:
    """q (B, H, Tq, D), k/v (B, H_kv, Tk, D), the queries being the last Tq of Tk positions: query at
    absolute position p attends to keys p - window .. p."""
    n_q, n_k = q.size(2), k.size(2)
    gqa = q.size(1) != k.size(1)
    if window >= n_k and n_q == n_k:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
    if n_q == 1:  # decoding one token: it sees the last window + 1 keys, no mask needed
        start = max(0, n_k - 1 - window)
        return F.scaled_dot_product_attention(q, k[:, :, start:], v[:, :, start:], enable_gqa=gqa)
    rows = torch.arange(n_k - n_q, n_k, device=q.device)[:, None]
    cols = torch.arange(n_k, device=q.device)[None, :]
    mask = (cols <= rows) & (rows - cols <= window)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        kv_dim = config.n_kv_head * config.head_dim
        self.c_q = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.c_k = nn.Linear(config.n_embd, kv_dim, bias=False)
        self.c_v = nn.Linear(config.n_embd, kv_dim, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.ve_gate = (nn.Linear(VE_GATE_CHANNELS, config.n_kv_head, bias=False)
                        if has_value_embedding(layer, config.n_layer) else None)

    def forward(self, x: torch.Tensor, ve: torch.Tensor | None, cos: torch.Tensor, sin: torch.Tensor,
                window: int, cache=None) -> torch.Tensor:
        B, n_tok, C = x.shape
        q = self.c_q(x).view(B, n_tok, self.n_head, self.head_dim)
        k = self.c_k(x).view(B, n_tok, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(B, n_tok, self.n_kv_head, self.head_dim)
        if ve is not None:  # add the token's value embedding to its values, through a per-head gate
            gate = 2 * torch.sigmoid(self.ve_gate(x[..., :VE_GATE_CHANNELS]))  # (B, T, n_kv_head) in (0, 2)
            v = v + gate.unsqueeze(-1) * ve.view(B, n_tok, self.n_kv_head, self.head_dim)
        # rotate queries and keys by their positions, then QK-norm: attention logits stay bounded
        q, k = rms_norm(apply_rotary(q, cos, sin)), rms_norm(apply_rotary(k, cos, sin))
        if cache is not None:  # incremental decoding: attend over everything cached so far
            k, v = cache.update(self.layer, k, v)
        y = causal_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), window)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, n_tok, C))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.relu(self.c_fc(x)).square())


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        self.attn = CausalSelfAttention(config, layer)
        self.mlp = MLP(config)

    def forward(self, x, ve, cos, sin, window, cache=None):
        x = x + self.attn(rms_norm(x), ve, cos, sin, window, cache)
        return x + self.mlp(rms_norm(x))


class GPT(nn.Module):
    style = "modern"

    def __init__(self, config: GPTConfig, init: bool = True):
        super().__init__()
        self.config = config
        self.window_sizes = window_sizes(config)
        vocab = config.padded_vocab_size
        kv_dim = config.n_kv_head * config.head_dim
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(vocab, config.n_embd),
            "h": nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
        })
        self.lm_head = nn.Linear(config.n_embd, vocab, bias=False)
        self.resid_lambdas = nn.Parameter(torch.ones(config.n_layer))
        self.x0_lambdas = nn.Parameter(torch.zeros(config.n_layer))
        self.value_embeds = nn.ModuleDict({str(i): nn.Embedding(vocab, kv_dim) for i in range(config.n_layer)
                                           if has_value_embedding(i, config.n_layer)})
        # rotary tables for 10x the training context, as nanochat; longer inputs are an error (see forward)
        self.rotary_seq_len = config.sequence_len * 10
        cos, sin = rotary_tables(self.rotary_seq_len, config.head_dim)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        if init:
            self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """nanochat's init: wte N(0, 1), lm_head N(0, 0.001), matrices U(+-sqrt(3/n_embd)), projections 0.

        The random draws come in nanochat's order, so a model built on the meta device, moved with
        ``to_empty`` and initialised here after ``torch.manual_seed(s)`` equals nanochat's with that seed."""
        nn.init.normal_(self.transformer.wte.weight, std=1.0)
        nn.init.normal_(self.lm_head.weight, std=0.001)
        s = 3**0.5 * self.config.n_embd**-0.5
        for block in self.transformer.h:
            for w in (block.attn.c_q.weight, block.attn.c_k.weight, block.attn.c_v.weight, block.mlp.c_fc.weight):
                nn.init.uniform_(w, -s, s)
            nn.init.zeros_(block.attn.c_proj.weight)
            nn.init.zeros_(block.mlp.c_proj.weight)
        self.resid_lambdas.fill_(1.0)
        self.x0_lambdas.fill_(0.1)
        for ve in self.value_embeds.values():
            nn.init.uniform_(ve.weight, -s, s)
        for block in self.transformer.h:
            if block.attn.ve_gate is not None:
                nn.init.zeros_(block.attn.ve_gate.weight)
        # (re)compute the rotary tables on the weights' device (after a meta-device build they hold garbage)
        self.cos, self.sin = rotary_tables(self.rotary_seq_len, self.config.head_dim,
                                           device=self.transformer.wte.weight.device)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, loss_reduction: str = "mean",
                kv_cache=None) -> torch.Tensor:
        """Logits (B, T, vocab) in float32, or the cross-entropy loss if targets are given (-1 = ignore).

        With a ``KVCache``, ``idx`` continues the cached positions (rotary angles start at the cache
        offset) and the cache advances by T."""
        B, n_tok = idx.shape
        start = kv_cache.pos if kv_cache is not None else 0
        if start + n_tok > self.rotary_seq_len:
            raise UserError(f"position {start + n_tok} is past the rotary tables ({self.rotary_seq_len} = "
                            f"10 x sequence_len {self.config.sequence_len})")
        if kv_cache is not None:
            kv_cache.check_room(n_tok)
        cos, sin = self.cos[:, start:start + n_tok], self.sin[:, start:start + n_tok]  # angles of these positions
        x = rms_norm(self.transformer.wte(idx))  # token embeddings, normed: (B, T, n_embd)
        x0 = x  # kept: every block mixes the first embedding back in
        for i, block in enumerate(self.transformer.h):
            x = self.resid_lambdas[i] * x + self.x0_lambdas[i] * x0  # learned per-layer blend
            ve = self.value_embeds[str(i)](idx) if str(i) in self.value_embeds else None  # value embedding
            x = block(x, ve, cos, sin, self.window_sizes[i], kv_cache)  # attention then MLP, each residual
        if kv_cache is not None:
            kv_cache.advance(n_tok)
        # the head on the normed stream, padding columns dropped, then the soft-cap 15 tanh(x / 15) in fp32
        logits = self.lm_head(rms_norm(x))[..., : self.config.vocab_size].float()
        return logits_or_loss(SOFTCAP * torch.tanh(logits / SOFTCAP), targets, loss_reduction)

    def flops_per_token(self) -> int:
        """nanochat's estimate: 6 x matmul params + 12 x heads x head_dim x effective context, per layer."""
        c = self.config
        excluded = self.transformer.wte.weight.numel() + self.resid_lambdas.numel() + self.x0_lambdas.numel()
        excluded += sum(ve.weight.numel() for ve in self.value_embeds.values())
        matmul = sum(p.numel() for p in self.parameters()) - excluded
        attention = sum(12 * c.n_head * c.head_dim * min(w, c.sequence_len) for w in self.window_sizes)
        return 6 * matmul + attention

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """nanochat's optimizer grouping: matrices (Muon), embeddings, value embeddings, lm_head, scalars."""
        return {
            "matrices": list(self.transformer.h.parameters()),
            "embeddings": list(self.transformer.wte.parameters()),
            "value_embeds": list(self.value_embeds.parameters()),
            "lm_head": list(self.lm_head.parameters()),
            "resid_lambdas": [self.resid_lambdas],
            "x0_lambdas": [self.x0_lambdas],
        }
