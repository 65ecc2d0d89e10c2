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

``GPTConfig``'s recipe fields switch on what came after 2f09686 (candidates for the ``next`` recipe, see
docs/recipe.md); their defaults are the pinned model, so a nanochat checkpoint's config loads unchanged:
smear and backout (nanochat's later gpt.py), the q/k scale after QK-norm, the RoPE base, the value-embedding
gate's range and width, nanochat's later init, and the seed's ablation pair (tied embeddings, input norm).
Master weights stay float32 on every device (nanochat casts embeddings to bf16 on CUDA); mixed precision
comes from autocast in the training loop.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from nanochat_next.errors import UserError

SOFTCAP = 15.0
VE_GATE_CHANNELS = 32  # nanochat 2f09686's value-embedding gate width (its later code reads 12)
SMEAR_CHANNELS = 24  # the smear gate reads the first 24 channels of the token's embedding
INITS = ("nanochat", "next")  # nanochat 2f09686's init, or its later one (see GPT.init_weights)


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
    # recipe features (defaults: nanochat 2f09686)
    smear: bool = False  # mix the previous token's embedding into each position through a learned gate
    backout: bool = False  # subtract a learned fraction of the mid-depth residual before the final norm
    qk_scale: float = 1.0  # q and k multiplied by this after QK-norm (sharper attention; later nanochat 1.2)
    rope_base: float = 10000.0
    ve_gate_range: float = 2.0  # the value-embedding gate is ve_gate_range x sigmoid(...)
    ve_gate_channels: int = VE_GATE_CHANNELS
    init: str = "nanochat"
    tie_embeddings: bool = False  # lm_head shares the token embedding's matrix
    embed_norm: bool = True  # RMSNorm on the token embedding
    # a short (S) window: "half" = T/2 (2f09686) | "quarter128" = T/4 rounded up to 128 (nanochat 92d63d4, FA3's tile)
    short_window: str = "half"
    # the rotary tables: rounded to "bfloat16" (2f09686) | kept in "float32" (92d63d4's compute dtype on a CPU)
    rotary_dtype: str = "bfloat16"

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
        if not 1 <= self.ve_gate_channels <= self.n_embd:
            raise UserError(f"the value-embedding gate reads {self.ve_gate_channels} channels; n_embd is {self.n_embd}")
        if self.smear and self.n_embd < SMEAR_CHANNELS:
            raise UserError(f"smear's gate reads {SMEAR_CHANNELS} channels; n_embd is {self.n_embd}")
        if self.init not in INITS:
            raise UserError(f"unknown init {self.init!r} ({', '.join(INITS)})")
        if self.short_window not in SHORT_WINDOWS or self.rotary_dtype not in ROTARY_DTYPES:
            raise UserError(f"short_window must be one of {', '.join(SHORT_WINDOWS)} and rotary_dtype one of "
                            f"{', '.join(ROTARY_DTYPES)}, got {self.short_window!r}, {self.rotary_dtype!r}")
        if not (self.qk_scale > 0 and self.rope_base > 1 and self.ve_gate_range > 0):
            raise UserError(f"qk_scale and ve_gate_range must be > 0 and rope_base > 1, got {self.qk_scale}, "
                            f"{self.ve_gate_range}, {self.rope_base}")
        if not self.window_pattern or any(c not in "SL" for c in self.window_pattern.upper()):
            raise UserError(f"window pattern {self.window_pattern!r} must be a non-empty string of S and L")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def padded_vocab_size(self) -> int:
        return -(-self.vocab_size // 64) * 64

    def beyond_nanochat(self) -> list[str]:
        """The recipe fields that differ from nanochat 2f09686's model (what nanochat cannot load)."""
        return [f.name for f in fields(self) if f.name in RECIPE_FIELDS and getattr(self, f.name) != f.default]


RECIPE_FIELDS = ("smear", "backout", "qk_scale", "rope_base", "ve_gate_range", "ve_gate_channels", "init",
                 "tie_embeddings", "embed_norm", "short_window", "rotary_dtype")
SHORT_WINDOWS = ("half", "quarter128")
ROTARY_DTYPES = ("bfloat16", "float32")


def config_for_depth(depth: int, vocab_size: int, aspect_ratio: int = 64, head_dim: int = 128,
                     max_seq_len: int = 2048, window_pattern: str = "SSSL") -> GPTConfig:
    """nanochat's depth dial: width = depth x aspect_ratio rounded up to a multiple of head_dim."""
    if depth < 1 or aspect_ratio < 1 or head_dim < 1:
        raise UserError(f"depth, aspect ratio and head dim must be positive, got {depth}, {aspect_ratio}, {head_dim}")
    model_dim = -(-depth * aspect_ratio // head_dim) * head_dim  # ceil to whole heads: -(-a // b) is ceil(a / b)
    heads = model_dim // head_dim  # a deeper model is wider and has more heads; the head size stays
    return GPTConfig(sequence_len=max_seq_len, vocab_size=vocab_size, n_layer=depth, n_head=heads, n_kv_head=heads,
                     n_embd=model_dim, window_pattern=window_pattern)


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    # x / sqrt(mean(x^2)): every vector to unit RMS. No learned gain (nanochat's choice): one less parameter
    # group, and the next matmul's weights can carry any scale a gain would
    return F.rms_norm(x, (x.size(-1),))


def logits_or_loss(logits: torch.Tensor, targets: torch.Tensor | None, reduction: str = "mean") -> torch.Tensor:
    """What every model's forward returns: the logits, or with targets the cross-entropy (-1 = ignore)."""
    if targets is None:
        return logits
    # -log p(target): flattened to (positions, vocab); -1 marks a position that is not trained (padding, a
    # masked user turn in SFT)
    return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1, reduction=reduction)


def head_is_tied(model: nn.Module) -> bool:
    """Whether the model's lm_head is its token embedding (classic GPT, or --tie-embeddings): the matrix is
    then saved once, under transformer.wte.weight."""
    head, wte = getattr(model, "lm_head", None), getattr(getattr(model, "transformer", None), "wte", None)
    return head is not None and wte is not None and head.weight is wte.weight


def has_value_embedding(layer: int, n_layer: int) -> bool:
    """Alternating layers, the last one always included."""
    return layer % 2 == (n_layer - 1) % 2


def window_sizes(config: GPTConfig) -> list[int]:
    """Tokens each layer may look back (besides itself): L = sequence_len, S = the short window (sequence_len // 2,
    or a quarter rounded up to a multiple of 128 in nanochat's newest commit)."""
    pattern = config.window_pattern.upper()
    T = config.sequence_len
    short = T // 2 if config.short_window == "half" else -(-T // 4 // 128) * 128
    # short windows are cheaper (less attention to compute) and push long-range work into the layers that have it
    sizes = [T if pattern[i % len(pattern)] == "L" else short for i in range(config.n_layer)]
    sizes[-1] = config.sequence_len  # the last layer always sees the whole context
    return sizes


def rotary_tables(seq_len: int, head_dim: int, base: float = 10000.0, device: torch.device | str | None = None,
                  dtype: str = "bfloat16") -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape (1, seq_len, 1, head_dim / 2), rounded to bfloat16 as nanochat 2f09686 keeps them (or in
    float32: nanochat's newest commit keeps them in its compute dtype, float32 on a CPU)."""
    # one frequency per pair of channels, from 1 (fast: neighbouring positions differ) down to 1/base (slow: far
    # apart positions still differ); the angle of position p is p x frequency
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim))
    freqs = torch.outer(torch.arange(seq_len, dtype=torch.float32, device=device), inv_freq)
    cast = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    return freqs.cos().to(cast)[None, :, None, :], freqs.sin().to(cast)[None, :, None, :]


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the pairs (x[i], x[i + d/2]) of every head by the position's angles."""
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d], x[..., d:]
    # a 2-D rotation of each pair: rotating q by angle(p) and k by angle(p') makes q.k depend on p - p' only
    return torch.cat([x1 * cos + x2 * sin, x1 * (-sin) + x2 * cos], -1)


EXPLICIT_ATTENTION_MAX_SEQ = 512  # its (T x T) scores are kept for the backward: memory grows with T^2


def explicit_attention_applies(q: torch.Tensor, gqa: bool) -> bool:
    """In a compiled graph under a CPU's bf16 autocast, a whole causal sequence of up to
    ``EXPLICIT_ATTENTION_MAX_SEQ`` positions attends by ``explicit_causal_attention`` rather than the CPU's bf16
    flash kernel: its two matmuls run as bf16 GEMMs and Inductor fuses the mask and softmax around them.
    Measured on the cpu profile, paired steps (results/attention_kernel.md, an avx512_bf16 EPYC): compiled, the
    forward + backward 1.06x faster than with fp32 flash attention, at the same val bpb in training
    (results/ablate_attention_kernel_*). Eager, its mask and softmax run as separate passes (slower than the
    flash kernel in a development run, not kept in results/), so eager runs keep the flash kernel. Whether bf16
    attention runs at all is measured (``runtime.choose_attention_dtype``, timing this same function, compiled
    for a compiled run)."""
    return (q.device.type == "cpu" and torch.compiler.is_compiling() and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16 and not gqa
            and q.size(2) <= EXPLICIT_ATTENTION_MAX_SEQ)


def explicit_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_dim), future keys masked) v, written out: two matmuls (in autocast's dtype) and a
    float32 softmax, as nanoGPT's attention without flash. q, k, v (B, H, T, D), one whole sequence."""
    n = q.size(2)
    scores = (q @ k.transpose(-2, -1)) * q.size(-1) ** -0.5  # (B, H, T, T): every query against every key
    future = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)  # keys after the query's position
    weights = torch.softmax(scores.float().masked_fill(future, float("-inf")), dim=-1)  # each row sums to 1
    return weights.to(v.dtype) @ v  # each query's mix of the values it attends to


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int,
                     dtype: torch.dtype | None = None) -> torch.Tensor:
    """q (B, H, Tq, D), k/v (B, H_kv, Tk, D), the queries being the last Tq of Tk positions: query at
    absolute position p attends to keys p - window .. p. ``dtype``: under a CPU's autocast, attend in this dtype
    instead of autocast's (a CPU's bf16 flash attention can be slower than its fp32 one, its backward 2x on an AMX
    Xeon: ``runtime.choose_attention_dtype`` measures which), the result back in autocast's dtype."""
    if dtype is not None and q.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        autocast_dtype = torch.get_autocast_dtype("cpu")
        if dtype != autocast_dtype:
            with torch.autocast("cpu", enabled=False):
                return causal_attention(q.to(dtype), k.to(dtype), v.to(dtype), window).to(autocast_dtype)
    n_q, n_k = q.size(2), k.size(2)
    gqa = q.size(1) != k.size(1)  # grouped-query: several query heads share one key/value head (a smaller cache)
    if window >= n_k and n_q == n_k:  # the common case: plain causal attention
        if explicit_attention_applies(q, gqa):
            return explicit_causal_attention(q, k, v)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
    if n_q == 1:  # decoding one token: it sees the last window + 1 keys, no mask needed
        start = max(0, n_k - 1 - window)
        return F.scaled_dot_product_attention(q, k[:, :, start:], v[:, :, start:], enable_gqa=gqa)
    # the general case (a sliding window, or a chunk of queries after cached keys): an explicit mask over absolute
    # positions, True where query row may see key column
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
        self.qk_scale, self.ve_gate_range, self.ve_gate_channels = (config.qk_scale, config.ve_gate_range,
                                                                    config.ve_gate_channels)
        self.ve_gate = (nn.Linear(config.ve_gate_channels, config.n_kv_head, bias=False)
                        if has_value_embedding(layer, config.n_layer) else None)
        self.attention_dtype: torch.dtype | None = None  # None: autocast's dtype (GPT.set_attention_dtype)

    def forward(self, x: torch.Tensor, ve: torch.Tensor | None, cos: torch.Tensor, sin: torch.Tensor,
                window: int, cache=None) -> torch.Tensor:
        B, n_tok, C = x.shape
        # every position asks (q), offers (k) and carries (v); heads split the width into head_dim slices
        q = self.c_q(x).view(B, n_tok, self.n_head, self.head_dim)
        k = self.c_k(x).view(B, n_tok, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(B, n_tok, self.n_kv_head, self.head_dim)
        if ve is not None:  # add the token's value embedding to its values, through a per-head gate
            gate = self.ve_gate_range * torch.sigmoid(self.ve_gate(x[..., :self.ve_gate_channels]))  # (B, T, kv)
            v = v + gate.unsqueeze(-1) * ve.view(B, n_tok, self.n_kv_head, self.head_dim)
        # rotate queries and keys by their positions (their dot product then depends on the distance only), then
        # QK-norm: unit-RMS queries and keys keep the attention logits bounded whatever the weights grow to
        q, k = rms_norm(apply_rotary(q, cos, sin)), rms_norm(apply_rotary(k, cos, sin))
        if self.qk_scale != 1.0:  # a fixed sharpening of every attention logit (by qk_scale^2)
            q, k = q * self.qk_scale, k * self.qk_scale
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, T, head_dim) for attention
        # without a cache: causal attention over this sequence; with one, over everything cached so far too
        y = (causal_attention(q, k, v, window, self.attention_dtype) if cache is None
             else cache.attend(self.layer, q, k, v, window))
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, n_tok, C))  # heads side by side, mixed


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # widen 4x, ReLU squared (sparse like ReLU, smooth at 0, measured better than GELU in modded-nanogpt),
        # project back
        return self.c_proj(F.relu(self.c_fc(x)).square())


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        self.attn = CausalSelfAttention(config, layer)
        self.mlp = MLP(config)

    def forward(self, x, ve, cos, sin, window, cache=None):
        # pre-norm residual blocks: each sublayer reads a normed copy and adds its result to the stream, so the
        # stream itself is never squashed and gradients flow straight through the additions
        x = x + self.attn(rms_norm(x), ve, cos, sin, window, cache)  # tokens exchange information
        return x + self.mlp(rms_norm(x))  # each token computes on what it gathered


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
        if config.tie_embeddings:
            self.lm_head.weight = self.transformer.wte.weight  # one matrix reads tokens in and writes them out
        if config.smear:
            self.smear_gate = nn.Linear(SMEAR_CHANNELS, 1, bias=False)
            self.smear_lambda = nn.Parameter(torch.zeros(1))
        if config.backout:
            self.backout_lambda = nn.Parameter(torch.zeros(1))
        # rotary tables for 10x the training context, as nanochat; longer inputs are an error (see forward)
        self.rotary_seq_len = config.sequence_len * 10
        cos, sin = rotary_tables(self.rotary_seq_len, config.head_dim, config.rope_base, dtype=config.rotary_dtype)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        if init:
            self.init_weights()

    def set_attention_dtype(self, dtype: torch.dtype | None) -> None:
        """Attend in ``dtype`` under a CPU's autocast (None: in autocast's dtype); training sets the measured
        choice (``runtime.choose_attention_dtype``). Without autocast it changes nothing."""
        for block in self.transformer.h:
            block.attn.attention_dtype = dtype

    @torch.no_grad()
    def init_weights(self) -> None:
        """nanochat's init: wte N(0, 1), lm_head N(0, 0.001), matrices U(+-sqrt(3/n_embd)), projections 0.

        The random draws come in nanochat's order, so a model built on the meta device, moved with
        ``to_empty`` and initialised here after ``torch.manual_seed(s)`` equals nanochat's with that seed.

        ``init="next"`` is nanochat's later init: wte N(0, 0.8), c_fc at 0.4x the bound, resid lambdas
        1.15 -> 1.05 and x0 lambdas 0.20 -> 0.05 from the first layer to the last, value-embedding gates
        U(0, 0.02) (slightly open). Tied embeddings start at N(0, 1/sqrt(n_embd)): unit-scale logits."""
        c, later = self.config, self.config.init == "next"
        if c.tie_embeddings:
            self.lm_head.weight = self.transformer.wte.weight  # again: to_empty() gives every parameter its own
            nn.init.normal_(self.transformer.wte.weight, std=c.n_embd**-0.5)
        else:
            nn.init.normal_(self.transformer.wte.weight, std=0.8 if later else 1.0)
            nn.init.normal_(self.lm_head.weight, std=0.001)
        s = 3**0.5 * c.n_embd**-0.5  # the uniform bound with std 1/sqrt(n_embd)
        for block in self.transformer.h:
            for w in (block.attn.c_q.weight, block.attn.c_k.weight, block.attn.c_v.weight):
                nn.init.uniform_(w, -s, s)
            nn.init.uniform_(block.mlp.c_fc.weight, -s * (0.4 if later else 1.0), s * (0.4 if later else 1.0))
            nn.init.zeros_(block.attn.c_proj.weight)
            nn.init.zeros_(block.mlp.c_proj.weight)
        # later: from the first layer to the last, resid 1.15 -> 1.05 and x0 0.20 -> 0.05; each value worked out in
        # float64 and rounded once to float32, as nanochat does (float32 arithmetic would differ by an ulp)
        last = max(c.n_layer - 1, 1)
        resid = [1.15 - (0.10 * i / last) for i in range(c.n_layer)] if later else [1.0] * c.n_layer
        x0 = [0.20 - (0.15 * i / last) for i in range(c.n_layer)] if later else [0.1] * c.n_layer
        self.resid_lambdas.copy_(torch.tensor(resid, dtype=torch.float64))
        self.x0_lambdas.copy_(torch.tensor(x0, dtype=torch.float64))
        # smear and backout before the value embeddings: nanochat 92d63d4 draws its smear gate here, and the same
        # seed gives its weights only if every draw comes in its order
        if c.smear:  # the gate slightly open, its strength 0: smear starts switched off and learns its weight
            nn.init.zeros_(self.smear_lambda)
            nn.init.uniform_(self.smear_gate.weight, 0.0, 0.02)
        if c.backout:
            nn.init.constant_(self.backout_lambda, 0.2)
        for ve in self.value_embeds.values():
            nn.init.uniform_(ve.weight, -s, s)
        for block in self.transformer.h:
            if block.attn.ve_gate is None:
                continue
            if later:  # slightly open
                nn.init.uniform_(block.attn.ve_gate.weight, 0.0, 0.02)
            else:  # 2f09686: exactly half open (gate 2 x sigmoid(0)); no random draw (the RNG order is nanochat's)
                nn.init.zeros_(block.attn.ve_gate.weight)
        # (re)compute the rotary tables on the weights' device (after a meta-device build they hold garbage)
        self.cos, self.sin = rotary_tables(self.rotary_seq_len, c.head_dim, c.rope_base,
                                           device=self.transformer.wte.weight.device, dtype=c.rotary_dtype)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, loss_reduction: str = "mean",
                kv_cache=None) -> torch.Tensor:
        """Logits (B, T, vocab) in float32, or the cross-entropy loss if targets are given (-1 = ignore).

        With a cache (``infer.kv_cache.KVCache``, or the compiled step's static one), ``idx`` continues the cached
        positions: rotary angles start at the cache's offset, attention reads the cached keys and values, and
        the cache advances by T. This is the only forward of the modern GPT: training, evaluation, prefill and
        the compiled decode step all run it."""
        B, n_tok = idx.shape
        if kv_cache is None:
            if n_tok > self.rotary_seq_len:
                raise UserError(f"position {n_tok} is past the rotary tables ({self.rotary_seq_len} = 10 x "
                                f"sequence_len {self.config.sequence_len})")
            cos, sin = self.cos[:, :n_tok], self.sin[:, :n_tok]  # angles of positions 0 .. T-1
        else:
            kv_cache.reserve(n_tok, self.rotary_seq_len, f"the rotary tables ({self.rotary_seq_len} = 10 x "
                                                         f"sequence_len {self.config.sequence_len})")
            where = kv_cache.positions(n_tok)  # angles of the positions after the cached ones
            cos, sin = self.cos.index_select(1, where), self.sin.index_select(1, where)
        x = self.transformer.wte(idx)  # token embeddings (B, T, n_embd)
        if self.config.embed_norm:
            x = rms_norm(x)
        if self.config.smear:
            x = self.smear(x, kv_cache)
        x0 = x  # kept: every block mixes the first embedding back in
        mid = None
        for i, block in enumerate(self.transformer.h):
            x = self.resid_lambdas[i] * x + self.x0_lambdas[i] * x0  # learned per-layer blend
            ve = self.value_embeds[str(i)](idx) if str(i) in self.value_embeds else None  # value embedding
            x = block(x, ve, cos, sin, self.window_sizes[i], kv_cache)  # attention then MLP, each residual
            if self.config.backout and i == self.config.n_layer // 2:
                mid = x  # the mid-depth stream, mostly low-level features
        if mid is not None:  # backout: remove a learned fraction of it before the head
            x = x - self.backout_lambda * mid
        if kv_cache is not None:
            kv_cache.advance(n_tok)
        # the head on the normed stream, padding columns dropped, then the soft-cap 15 tanh(x / 15) in fp32: the
        # logits cannot run away (a bounded loss landscape), and fp32 keeps the cross entropy exact
        logits = self.lm_head(rms_norm(x))[..., : self.config.vocab_size].float()
        return logits_or_loss(SOFTCAP * torch.tanh(logits / SOFTCAP), targets, loss_reduction)

    def smear(self, x: torch.Tensor, kv_cache=None) -> torch.Tensor:
        """x[t] + lambda * sigmoid(w . x[t, :24]) * x[t - 1]: a gated copy of the previous token's embedding
        (cheap bigram information). Position 0 of a sequence has no predecessor; with a KV cache the last
        embedding is kept in the cache, so decoding one token at a time equals the full forward."""
        gate = self.smear_lambda * torch.sigmoid(self.smear_gate(x[..., :SMEAR_CHANNELS]))  # (B, T, 1)
        before = kv_cache.swap_previous(x) if kv_cache is not None else None  # the last chunk's last embedding
        if before is None:  # the chunk starts the sequence: position 0 is left alone
            return torch.cat([x[:, :1], x[:, 1:] + gate[:, 1:] * x[:, :-1]], dim=1)
        return x + gate * torch.cat([before, x[:, :-1]], dim=1)

    def flops_per_token(self) -> int:
        """nanochat's estimate: 6 x matmul params + 12 x heads x head_dim x effective context, per layer."""
        c = self.config
        # counted structurally, as nanochat 92d63d4 does: every matmul with the token stream is an nn.Linear (a tied
        # head included); embeddings are lookups and the per-layer and smear/backout scalars are no matmuls
        matmul = sum(m.weight.numel() for m in self.modules() if isinstance(m, nn.Linear))
        attention = sum(12 * c.n_head * c.head_dim * min(w, c.sequence_len) for w in self.window_sizes)
        return 6 * matmul + attention

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """nanochat's optimizer grouping: matrices (Muon), embeddings, value embeddings, lm_head, scalars."""
        return {
            "matrices": list(self.transformer.h.parameters()),
            # tied: the shared matrix trains once, in the lm_head group (its LR; the embedding LR, 37-75x larger in the
            # recipes, made the head diverge in tests/train/test_checkpoint.py's tied run)
            "embeddings": [] if self.config.tie_embeddings else list(self.transformer.wte.parameters()),
            "value_embeds": list(self.value_embeds.parameters()),
            "lm_head": list(self.lm_head.parameters()),
            "resid_lambdas": [self.resid_lambdas],
            "x0_lambdas": [self.x0_lambdas],
            "smear_backout": self.smear_backout_params(),
        }

    def smear_backout_params(self) -> list[nn.Parameter]:
        params = [self.smear_gate.weight, self.smear_lambda] if self.config.smear else []
        return params + ([self.backout_lambda] if self.config.backout else [])
