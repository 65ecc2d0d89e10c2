"""nanochat-next's models as one self-contained file: PyTorch only, no import from the nanochat_next package.

This file is the reference forward that leaves the package: the ONNX export traces it, and the Hugging Face
export copies it verbatim next to the weights (``trust_remote_code``), so a user of an export needs only torch.
It is a second, independent writing of the math in ``nanochat_next/model/gpt.py`` (modern style, with every
recipe feature) and ``gpt_classic.py`` (GPT-2), tested against both to 1e-5.

What makes it exportable, compared with the training model:

- the KV cache is an input and an output: ``past_k``/``past_v`` of shape (n_layer, B, n_kv_head, P, head_dim)
  in, the same with P + T positions out (a cache that grows by concatenation: ONNX runtimes and a browser
  handle that without preallocation);
- attention is written out (q k^T / sqrt(d), an additive mask, softmax, x v) and the causal + sliding-window
  mask is computed inside the graph from the positions, so a client never builds masks;
- positions start at P, read from the cache's shape; the smear feature's previous embedding is an input and
  the last token's embedding an output (zeros at the start of a sequence, where smear adds nothing).

Weights are loaded by name from the package's ``model.safetensors`` (same names, see ``from_state_dict``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SOFTCAP = 15.0
SMEAR_CHANNELS = 24
RMS_EPS = torch.finfo(torch.float32).eps  # F.rms_norm's default eps for float32


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + RMS_EPS)


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).square().mean(-1, keepdim=True)
    return (x - mean) * torch.rsqrt(var + 1e-5) * weight + bias


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def has_value_embedding(layer: int, n_layer: int) -> bool:
    return layer % 2 == (n_layer - 1) % 2


def window_sizes(config: dict) -> list[int]:
    """Tokens each layer may look back besides itself: L = sequence_len, S = half of it (or, with short_window
    "quarter128", a quarter rounded up to a multiple of 128); the last layer is L."""
    n, seq, pattern = config["n_layer"], config["sequence_len"], config.get("window_pattern", "L").upper()
    short = seq // 2 if config.get("short_window", "half") == "half" else -(-seq // 4 // 128) * 128
    sizes = [seq if pattern[i % len(pattern)] == "L" else short for i in range(n)]
    sizes[-1] = seq
    return sizes


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: torch.Tensor | int,
              window: int) -> torch.Tensor:
    """q (B, H, T, D) at positions start .. start + T - 1; k, v (B, H_kv, start + T, D). A query at position p
    sees the keys p - window .. p (GQA: each key head serves H / H_kv query heads)."""
    n_q, n_k = q.size(2), k.size(2)
    if k.size(1) != q.size(1):
        k = k.repeat_interleave(q.size(1) // k.size(1), dim=1)
        v = v.repeat_interleave(q.size(1) // v.size(1), dim=1)
    rows = torch.arange(n_q, device=q.device)[:, None] + start
    cols = torch.arange(n_k, device=q.device)[None, :]
    allowed = (cols <= rows) & (rows - cols <= window)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.size(-1))
    scores = scores.masked_fill(~allowed, float("-inf"))
    return scores.softmax(-1) @ v


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding: pairs (x[i], x[i + d/2]) of each head turned by the position's angles."""
    d = x.size(-1) // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], -1)


def linear(n_in: int, n_out: int, bias: bool = False) -> nn.Linear:
    return nn.Linear(n_in, n_out, bias=bias)


class ModernLayer(nn.Module):
    def __init__(self, c: dict, layer: int):
        super().__init__()
        d, head_dim = c["n_embd"], c["n_embd"] // c["n_head"]
        kv = c["n_kv_head"] * head_dim
        self.attn = nn.Module()
        self.attn.c_q, self.attn.c_k, self.attn.c_v = linear(d, d), linear(d, kv), linear(d, kv)
        self.attn.c_proj = linear(d, d)
        if has_value_embedding(layer, c["n_layer"]):
            self.attn.ve_gate = linear(c.get("ve_gate_channels", 32), c["n_kv_head"])
        self.mlp = nn.Module()
        self.mlp.c_fc, self.mlp.c_proj = linear(d, 4 * d), linear(4 * d, d)


class ClassicLayer(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        d = c["n_embd"]
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.attn_proj = linear(d, 3 * d, True), linear(d, d, True)
        self.c_fc, self.mlp_proj = linear(d, 4 * d, True), linear(4 * d, d, True)


class PortableGPT(nn.Module):
    """``forward(input_ids, past_k, past_v, prev_embedding) -> (logits, present_k, present_v, embedding)``.

    ``config`` is the ``model_config`` of the package's config.json; ``style`` is "modern" or "classic"."""

    def __init__(self, config: dict, style: str = "modern"):
        super().__init__()
        if style not in ("modern", "classic"):
            raise ValueError(f"no portable forward for the {style!r} style (modern or classic)")
        self.config, self.style = dict(config), style
        c = self.config
        self.n_layer, self.n_head, self.n_kv_head = c["n_layer"], c["n_head"], c["n_kv_head"]
        self.head_dim, self.vocab_size = c["n_embd"] // c["n_head"], c["vocab_size"]
        vocab = -(-c["vocab_size"] // 64) * 64
        self.transformer = nn.Module()
        self.transformer.wte = nn.Embedding(vocab, c["n_embd"])
        self.lm_head = linear(c["n_embd"], vocab)
        if style == "classic":
            self.transformer.wpe = nn.Embedding(c["sequence_len"], c["n_embd"])
            self.transformer.h = nn.ModuleList([ClassicLayer(c) for _ in range(self.n_layer)])
            self.transformer.ln_f = nn.LayerNorm(c["n_embd"])
            self.lm_head.weight = self.transformer.wte.weight
            self.max_positions = c["sequence_len"]
            return
        self.transformer.h = nn.ModuleList([ModernLayer(c, i) for i in range(self.n_layer)])
        self.resid_lambdas = nn.Parameter(torch.ones(self.n_layer))
        self.x0_lambdas = nn.Parameter(torch.zeros(self.n_layer))
        kv_dim = self.n_kv_head * self.head_dim
        self.value_embeds = nn.ModuleDict({str(i): nn.Embedding(vocab, kv_dim) for i in range(self.n_layer)
                                           if has_value_embedding(i, self.n_layer)})
        if c.get("tie_embeddings"):
            self.lm_head.weight = self.transformer.wte.weight
        if c.get("smear"):
            self.smear_gate = linear(SMEAR_CHANNELS, 1)
            self.smear_lambda = nn.Parameter(torch.zeros(1))
        if c.get("backout"):
            self.backout_lambda = nn.Parameter(torch.zeros(1))
        self.windows = window_sizes(c)
        # rotary tables for 10x the training context (as the package), rounded through bfloat16 unless the config
        # keeps them in float32 (rotary_dtype)
        self.max_positions = 10 * c["sequence_len"]
        self.register_buffer("cos", torch.empty(0), persistent=False)
        self.register_buffer("sin", torch.empty(0), persistent=False)
        self.make_rotary_tables()

    def make_rotary_tables(self, device: torch.device | str | None = None) -> None:
        """cos and sin of every position's angles, rounded through bfloat16 as nanochat 2f09686 keeps them (or
        float32 where the config's rotary_dtype says so)."""
        if self.style != "modern":
            return
        base, d = self.config.get("rope_base", 10000.0), self.head_dim
        inv_freq = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.float32, device=device) / d))
        angles = torch.outer(torch.arange(self.max_positions, dtype=torch.float32, device=device), inv_freq)
        cos, sin = angles.cos(), angles.sin()
        if self.config.get("rotary_dtype", "bfloat16") == "bfloat16":
            cos, sin = cos.bfloat16().float(), sin.bfloat16().float()
        self.cos, self.sin = cos, sin

    @classmethod
    def from_state_dict(cls, config: dict, style: str, state: dict[str, torch.Tensor]) -> PortableGPT:
        """Built from the package's config.json fields and the tensors of its model.safetensors."""
        model = cls(config, style)
        missing, unexpected = model.load_state_dict(state, strict=False)
        tied = model.lm_head.weight is model.transformer.wte.weight
        missing = [k for k in missing if not (tied and k == "lm_head.weight")]
        if missing or unexpected:
            raise ValueError(f"weights do not match the config: missing {missing[:3]}, unexpected {unexpected[:3]}")
        return model.eval()

    def empty_cache(self, batch: int = 1, device: torch.device | str | None = None):
        """past_k, past_v with 0 positions and a zero previous embedding: the state before a sequence."""
        shape = (self.n_layer, batch, self.n_kv_head, 0, self.head_dim)
        zeros = torch.zeros(shape, device=device)
        return zeros, zeros.clone(), torch.zeros(batch, 1, self.config["n_embd"], device=device)

    def forward(self, input_ids: torch.Tensor, past_k: torch.Tensor, past_v: torch.Tensor,
                prev_embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        start = past_k.size(3)  # positions already in the cache
        run = self.classic if self.style == "classic" else self.modern
        x, keys, values, embedding = run(input_ids, past_k, past_v, prev_embedding, start)
        logits = (x @ self.lm_head.weight.t())[..., : self.vocab_size].float()
        if self.style == "modern":
            logits = SOFTCAP * torch.tanh(logits / SOFTCAP)  # soft-cap at 15
        return logits, torch.stack(keys), torch.stack(values), embedding

    def split_heads(self, x: torch.Tensor, heads: int) -> torch.Tensor:
        return x.view(x.size(0), x.size(1), heads, self.head_dim).transpose(1, 2)  # (B, heads, T, D)

    def merge_heads(self, y: torch.Tensor) -> torch.Tensor:
        return y.transpose(1, 2).reshape(y.size(0), y.size(2), self.n_head * self.head_dim)

    def modern(self, idx, past_k, past_v, prev_embedding, start):
        c, n_tok = self.config, idx.size(1)
        cos = self.cos[start:start + n_tok][None, None]  # (1, 1, T, D/2): this chunk's positions
        sin = self.sin[start:start + n_tok][None, None]
        x = self.transformer.wte(idx)
        if c.get("embed_norm", True):
            x = rms_norm(x)
        embedding = x[:, -1:]
        if c.get("smear"):  # a gated copy of the previous token's embedding (zeros before the first token)
            gate = self.smear_lambda * torch.sigmoid(self.smear_gate(x[..., :SMEAR_CHANNELS]))
            x = x + gate * torch.cat([prev_embedding.to(x.dtype), x[:, :-1]], dim=1)
        x0, mid, keys, values = x, None, [], []
        for i, layer in enumerate(self.transformer.h):
            x = self.resid_lambdas[i] * x + self.x0_lambdas[i] * x0
            a, h = layer.attn, rms_norm(x)
            q = self.split_heads(a.c_q(h), self.n_head)
            k = self.split_heads(a.c_k(h), self.n_kv_head)
            v = self.split_heads(a.c_v(h), self.n_kv_head)
            if str(i) in self.value_embeds:  # value embedding through a per-head gate
                gate = c.get("ve_gate_range", 2.0) * torch.sigmoid(a.ve_gate(h[..., :c.get("ve_gate_channels", 32)]))
                v = v + gate.transpose(1, 2).unsqueeze(-1) * self.split_heads(self.value_embeds[str(i)](idx),
                                                                              self.n_kv_head)
            q, k = rms_norm(rotate(q, cos, sin)), rms_norm(rotate(k, cos, sin))  # rotary, then QK-norm
            q, k = q * c.get("qk_scale", 1.0), k * c.get("qk_scale", 1.0)
            k, v = torch.cat([past_k[i], k], dim=2), torch.cat([past_v[i], v], dim=2)
            keys.append(k)
            values.append(v)
            x = x + a.c_proj(self.merge_heads(attention(q, k, v, start, self.windows[i])))
            x = x + layer.mlp.c_proj(F.relu(layer.mlp.c_fc(rms_norm(x))).square())
            if c.get("backout") and i == self.n_layer // 2:
                mid = x
        if mid is not None:
            x = x - self.backout_lambda * mid
        return rms_norm(x), keys, values, embedding

    def classic(self, idx, past_k, past_v, prev_embedding, start):
        n_tok, keys, values = idx.size(1), [], []
        positions = torch.arange(n_tok, device=idx.device) + start
        x = self.transformer.wte(idx) + self.transformer.wpe(positions)
        for i, layer in enumerate(self.transformer.h):
            q, k, v = layer.c_attn(layer_norm(x, layer.ln_1.weight, layer.ln_1.bias)).split(x.size(-1), dim=2)
            q, k, v = (self.split_heads(t, self.n_head) for t in (q, k, v))
            k, v = torch.cat([past_k[i], k], dim=2), torch.cat([past_v[i], v], dim=2)
            keys.append(k)
            values.append(v)
            x = x + layer.attn_proj(self.merge_heads(attention(q, k, v, start, self.max_positions)))
            h = layer_norm(x, layer.ln_2.weight, layer.ln_2.bias)
            x = x + layer.mlp_proj(gelu_tanh(layer.c_fc(h)))
        x = layer_norm(x, self.transformer.ln_f.weight, self.transformer.ln_f.bias)
        return x, keys, values, prev_embedding

    @torch.no_grad()
    def greedy(self, prompt: list[int], max_new_tokens: int, stop_tokens: tuple[int, ...] = ()) -> list[int]:
        """Greedy tokens after ``prompt``: one prefill, then one token at a time through the cache."""
        past_k, past_v, prev = self.empty_cache()
        ids, out = torch.tensor([prompt]), []
        for _ in range(max(0, min(max_new_tokens, self.config["sequence_len"] - len(prompt)))):
            logits, past_k, past_v, prev = self(ids, past_k, past_v, prev)
            token = int(logits[0, -1].argmax())
            if token in stop_tokens:
                break
            out.append(token)
            ids = torch.tensor([[token]])
        return out
