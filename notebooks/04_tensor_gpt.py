# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   accelerator: GPU
#   colab:
#     gpuType: T4
#     provenance: []
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · The tensor GPT: from the scalar mini-GPT to nanochat's model
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ricardofrantz/nanochat-next/blob/main/notebooks/04_tensor_gpt.ipynb)
#
# Notebook 03 built a GPT whose every number was a Python object. Here the same model becomes a few tensor
# operations, and then we upgrade it, feature by feature, to karpathy/nanochat's model (the `modern` style; its
# logits equal nanochat's own code bit for bit, see [docs/parity.md][parity]): the depth dial, rotary positions,
# QK-norm, RMSNorm, ReLU², the logit soft-cap, grouped-query attention, sliding windows, value embeddings and the
# per-layer scalars. Each is shown on a small example, then all of them go into one forward pass written on screen
# and checked against the library's. Nothing is trained here: notebook 04b trains this model (Muon, the training
# loop, a comparison with a GPT-2 style model). Under a minute on a laptop CPU.
#
# [parity]: https://github.com/ricardofrantz/nanochat-next/blob/main/docs/parity.md
#
# *About the outputs:* the first cell prints the runtime of the machine that ran it; every other output here comes
# from fixed seeds and small examples, and the checks inside the cells hold on any machine.

# %% tags=["nbval-ignore-output"]
import importlib.util
import os
import sys

# on Colab: install this repository's library first (the Colab launcher, which installs it itself, sets
# NANOCHAT_NEXT_INSTALLED so that a notebook it runs keeps the version it chose)
if "google.colab" in sys.modules and not os.environ.get("NANOCHAT_NEXT_INSTALLED"):
    # %pip install -q "git+https://github.com/ricardofrantz/nanochat-next@main"
    os.environ["NANOCHAT_NEXT_INSTALLED"] = "1"  # once per runtime: running this cell again skips it
if importlib.util.find_spec("nanochat_next") is None:  # a local clone that was never installed
    raise ModuleNotFoundError("nanochat_next is not installed: run `pip install -e .` in the repository, then restart")
from nanochat_next.runtime import runtime_banner

print(runtime_banner(in_colab="google.colab" in sys.modules))  # which runtime, and on Colab's CPU how to get a GPU

# %% tags=["parameters"]
corpus = "tinyshakespeare"
vocab_size = 2048
depth = 2  # layers; width = depth x 64
max_seq_len = 128
seed = 42

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from nanochat_next.model.gpt import GPT, apply_rotary, config_for_depth, rms_norm, rotary_tables, window_sizes
from nanochat_next.train.config import TensorRun
from nanochat_next.train.data import run_data

# the tokenizer every run of notebooks 04-05 uses: what `nanochat-next train` trains for this corpus (BPE on the
# first 90% of the documents)
data = run_data(TensorRun(data=corpus, vocab_size=vocab_size), save_tokenizer=False, log=lambda *a: None)
tok = data.tokenizer
print(f"vocab {tok.vocab_size}")

# %% [markdown]
# ## 1. The scalar mini-GPT, as tensors
#
# The KV lists of notebook 03 become one matrix product: all positions' queries against all keys at once,
# with a causal mask so that position `t` only sees `0..t`. `TorchMiniGPT` is that model; from the same
# weights it gives the scalar model's loss.

# %%
from nanochat_next.model.torch_mini_gpt import TorchMiniGPT
from nanochat_next.scalar.gpt import MiniGPTConfig, ScalarMiniGPT

scalar = ScalarMiniGPT(MiniGPTConfig(vocab_size=27, block_size=8), seed=seed)
twin = TorchMiniGPT.from_scalar(scalar)
doc = [26, 4, 12, 12, 0, 26]  # <|bos|> e m m a <|bos|>
print(f"scalar loss {scalar.loss(doc).data:.6f} | tensor loss {twin.loss(doc).item():.6f}")
assert abs(scalar.loss(doc).data - twin.loss(doc).item()) < 1e-9

# %% [markdown]
# ## 2. nanochat's model, feature by feature
#
# **The depth dial.** One number sets the size: width = depth x 64, rounded up to a multiple of the head
# size; the number of heads follows. Scaling laws are then a function of depth alone. nanochat's heads are
# 128 wide; our small models use 64 (the model below), so that even depth 2 has two heads:

# %%
for d in (2, 4, 12, 20):
    c, c128 = config_for_depth(d, vocab_size=65536, head_dim=64), config_for_depth(d, vocab_size=65536)
    print(f"depth {d:2d}: width {c.n_embd:4d}, {c.n_head:2d} heads of 64 (nanochat's head_dim 128: "
          f"{c128.n_head:2d} head{'s' if c128.n_head > 1 else ''} of 128)")

# %% [markdown]
# **Rotary position embeddings** replace learned positions: each pair of channels of a query or key is
# rotated by an angle proportional to its position, so the score `q · k` depends only on the *distance*
# between the two tokens. Take one query and one key vector, place them at positions (3, 1) and then at
# (8, 6): the distance is 2 both times, and the score is the same; at (8, 1) it differs.

# %%
torch.manual_seed(0)
head_dim = 16
q, k = torch.randn(head_dim), torch.randn(head_dim)
cos, sin = rotary_tables(64, head_dim)  # (1, 64, 1, head_dim/2); nanochat keeps them in bfloat16
cos, sin = cos.float()[0, :, 0], sin.float()[0, :, 0]


def score(q_pos: int, k_pos: int) -> float:
    return float(apply_rotary(q, cos[q_pos], sin[q_pos]) @ apply_rotary(k, cos[k_pos], sin[k_pos]))


print(f"score at (3, 1): {score(3, 1):.3f} | at (8, 6): {score(8, 6):.3f} | at (8, 1): {score(8, 1):.3f}")
assert abs(score(3, 1) - score(8, 6)) < 0.05 * abs(score(3, 1)) + 0.05  # equal up to bf16 table rounding

# %% [markdown]
# **QK-norm** normalises queries and keys (RMSNorm, no parameters) after the rotation, so attention
# logits stay bounded however the weights grow. **RMSNorm** everywhere (no learned scale, no mean),
# **ReLU²** in the MLP, **no biases**, and an **untied** output head. The logits are **soft-capped**
# at ±15 by `15 tanh(x / 15)`, which keeps the loss smooth early in training:

# %%
x = torch.linspace(-40, 40, 200)
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
axes[0].plot(x, F.relu(x / 10).square(), label="ReLU²(x)")
axes[0].plot(x, F.gelu(x / 10), label="GELU(x)")
axes[0].set(title="MLP activations (input scaled by 1/10)", xlabel="pre-activation x", ylabel="activation")
axes[0].legend()
axes[1].plot(x, 15 * torch.tanh(x / 15), label="15 tanh(x/15)")
axes[1].plot(x, x, ls=":", color="gray", label="no cap")
axes[1].set(title="logit soft-cap", xlabel="raw logit", ylabel="capped logit", ylim=(-20, 20))
axes[1].legend()
plt.tight_layout()
plt.show()
v = torch.randn(4, 64) * 7
print("RMSNorm output rms:", [round(r, 3) for r in rms_norm(v).pow(2).mean(-1).sqrt().tolist()])

# %% [markdown]
# **Grouped-query attention** lets several query heads share one key/value head (`n_kv_head < n_head`):
# a smaller KV cache at inference. **Sliding windows** (`S` = half the context, `L` = full, tiled over
# the layers; the last layer always `L`) make long contexts cheaper. The masks, for a 16-token context:

# %%
from nanochat_next.model.gpt import GPTConfig

cfg = GPTConfig(sequence_len=16, vocab_size=tok.vocab_size, n_layer=4, n_head=4, n_kv_head=2, n_embd=64,
                window_pattern="SSL")
print("windows per layer:", window_sizes(cfg), "| c_q", tuple(GPT(cfg).transformer.h[0].attn.c_q.weight.shape),
      "c_k", tuple(GPT(cfg).transformer.h[0].attn.c_k.weight.shape))
rows, cols = torch.arange(16)[:, None], torch.arange(16)[None, :]
fig, axes = plt.subplots(1, 2, figsize=(6, 3))
for ax, w, name in ((axes[0], 8, "S (window 8)"), (axes[1], 16, "L (full)")):
    ax.imshow(((cols <= rows) & (rows - cols <= w)).int(), cmap="Greys")
    ax.set_title(f"{name}: black = may attend")
    ax.set_xlabel("key position (looked at)")
axes[0].set_ylabel("query position (looking)")
plt.tight_layout()
plt.show()

# %% [markdown]
# **Value embeddings** (on alternating layers) add a per-token vector to the attention values through a
# learned gate, and **per-layer scalars** `resid_lambdas`, `x0_lambdas` mix the first (normed) embedding
# back into the residual stream before every block. The vocabulary is padded to a multiple of 64.
# All together, with nanochat's parameter names:

# %%
model = GPT(config_for_depth(depth, tok.vocab_size, head_dim=64, max_seq_len=max_seq_len, window_pattern="L"))
for name, p in list(model.named_parameters())[:4] + list(model.named_parameters())[-3:]:
    print(f"{name:32s} {tuple(p.shape)}")
print(f"... {sum(p.numel() for p in model.parameters()):,} parameters; vocab {tok.vocab_size} padded to "
      f"{model.config.padded_vocab_size}")

# %% [markdown]
# **The whole forward pass, written out.** Everything above, in one function over the library model's own
# weights: embed and norm, then per layer the lambda mix, attention (rotary, QK-norm, value embedding, the
# window mask, GQA) and the ReLU² MLP, each added to the residual stream; then the head and the soft-cap.
# It must give the library's logits exactly. Notebook 03's torch mini-GPT had the same pieces under other
# names:
#
# | notebook 03 (`TorchMiniGPT`) | nanochat / modern GPT | what changed |
# |---|---|---|
# | `wte` | `transformer.wte.weight` | padded to a multiple of 64 rows |
# | `wpe` (learned positions) | none: rotary angles | positions rotate q and k |
# | `attn_wq`, `attn_wk`, `attn_wv`, `attn_wo` | `transformer.h.{i}.attn.c_q`, `c_k`, `c_v`, `c_proj` | GQA |
# | `mlp_fc1`, `mlp_fc2` (ReLU) | `transformer.h.{i}.mlp.c_fc`, `c_proj` (ReLU²) | |
# | `lm_head` | `lm_head.weight` | logits soft-capped at 15 |
# | none | `value_embeds.{i}`, `attn.ve_gate`, `resid_lambdas`, `x0_lambdas` | new in nanochat |

# %%
def forward_by_hand(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    c, T = model.config, idx.size(1)
    cos, sin = model.cos[:, :T], model.sin[:, :T]  # rotary angles of positions 0..T-1
    x = rms_norm(model.transformer.wte(idx))  # (B, T, C)
    x0 = x  # the first embedding, mixed back in before every block
    for i, block in enumerate(model.transformer.h):
        x = model.resid_lambdas[i] * x + model.x0_lambdas[i] * x0
        a, h = block.attn, rms_norm(x)
        q = a.c_q(h).view(*idx.shape, c.n_head, c.head_dim)
        k = a.c_k(h).view(*idx.shape, c.n_kv_head, c.head_dim)
        v = a.c_v(h).view(*idx.shape, c.n_kv_head, c.head_dim)
        if str(i) in model.value_embeds:  # value embedding through a gate in (0, 2)
            gate = 2 * torch.sigmoid(a.ve_gate(h[..., :32]))
            v = v + gate.unsqueeze(-1) * model.value_embeds[str(i)](idx).view_as(v)
        q, k = rms_norm(apply_rotary(q, cos, sin)), rms_norm(apply_rotary(k, cos, sin))  # rotate, then QK-norm
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, heads, T, head_dim)
        k, v = (t.repeat_interleave(c.n_head // c.n_kv_head, dim=1) for t in (k, v))  # GQA: share k/v heads
        scores = q @ k.transpose(-1, -2) / c.head_dim**0.5
        rows, cols = torch.arange(T)[:, None], torch.arange(T)[None, :]
        allowed = (cols <= rows) & (rows - cols <= model.window_sizes[i])  # causal, within the window
        y = scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ v
        x = x + a.c_proj(y.transpose(1, 2).reshape(x.shape))  # attention adds to the residual stream
        x = x + block.mlp.c_proj(F.relu(block.mlp.c_fc(rms_norm(x))).square())  # so does the ReLU² MLP
    logits = model.lm_head(rms_norm(x))[..., : c.vocab_size].float()
    return 15 * torch.tanh(logits / 15)  # soft-cap


check_model = GPT(GPTConfig(sequence_len=16, vocab_size=tok.vocab_size, n_layer=3, n_head=4, n_kv_head=2, n_embd=64,
                      window_pattern="SL"))
with torch.no_grad():
    for p_ in check_model.parameters():
        p_.add_(torch.randn_like(p_) * 0.02)  # no zero projections: every path contributes
    idx = torch.randint(0, tok.vocab_size, (2, 16))
    gap = (forward_by_hand(check_model, idx) - check_model(idx)).abs().max().item()
print(f"max |by hand - library| = {gap:.2e}")
assert gap < 1e-4  # fp32, two summation orders (explicit softmax vs the fused attention kernel)

# %% [markdown]
# Next, notebook 04b trains this model: Muon (its optimizer for the matrices), the training loop written out and
# checked against the library's `train`, and a run beside a GPT-2 style model on the same data and budget.
#
# ## Exercises
#
# Try each one before opening its solution (the hidden cell under it; the tests run every solution).
#
# 1. **Count the parameters by hand** for `config_for_depth(4, ...)` from the description above (embeddings,
#    per-block attention with GQA and MLP, value embeddings on alternating layers with their gates, per-layer
#    scalars, the head), then check against the model.
# 2. **One key/value head for all queries.** Multi-query attention is GQA taken to the end: `n_kv_head=1`. Build
#    the depth-3 check model above with 4 query heads and 1 key/value head, confirm that `forward_by_hand` still
#    gives the library's logits, and count what it saves: parameters, and the KV cache's bytes per token in bf16
#    (every layer keeps a key and a value vector per KV head).
#
# Each exercise has a cell for your attempt. Exercise 1: write the count as a function of the config and run the
# cell; `check` compares it with the real model's parameter count at depths 2, 4 and 6 and prints the first depth
# where they differ. Exercise 2: the KV cache's bytes per token as a function of the config and the bytes of one
# number; `check` compares it with the cache the library's engine allocates (`KVCache`) for several configs.

# %%
from nanochat_next.exercises import check  # your function vs the library's on each case: prints the first difference


def model_parameters(c) -> int:
    """What the library says: build the model and count."""
    return sum(p.numel() for p in GPT(c).parameters())


depth_configs = [config_for_depth(d, tok.vocab_size, head_dim=64, max_seq_len=max_seq_len) for d in (2, 4, 6)]


# Your attempt (exercise 1): replace the body
def count_parameters(c) -> int:
    """GPT(c)'s number of parameters, from the config's numbers alone (c.n_embd, c.n_layer, ...)."""
    return c.padded_vocab_size * c.n_embd  # TODO: only the token embedding so far; add the rest


check(count_parameters, model_parameters, depth_configs)

# %%
from nanochat_next.infer.kv_cache import KVCache


def library_cache_bytes(c, bytes_per_number: int) -> int:
    """What the library allocates: a cache for one sequence of 16 positions, its bytes per position."""
    dtype = {2: torch.bfloat16, 4: torch.float32}[bytes_per_number]
    cache = KVCache(c.n_layer, 1, 16, c.n_kv_head, c.head_dim, dtype=dtype)
    return (cache.k.nbytes + cache.v.nbytes) // 16


cache_cases = [(config_for_depth(4, tok.vocab_size, head_dim=64, max_seq_len=max_seq_len), 4),
               (GPTConfig(sequence_len=16, vocab_size=tok.vocab_size, n_layer=3, n_head=4, n_kv_head=4, n_embd=64), 2),
               (GPTConfig(sequence_len=16, vocab_size=tok.vocab_size, n_layer=3, n_head=4, n_kv_head=1, n_embd=64), 2)]


# Your attempt (exercise 2): replace the body
def kv_cache_bytes_per_token(c, bytes_per_number: int) -> int:
    """Bytes the KV cache keeps per token: every layer, a key and a value vector per KV head."""
    return c.n_embd * bytes_per_number  # TODO: one vector so far; count keys and values of every layer and KV head


check(kv_cache_bytes_per_token, library_cache_bytes, cache_cases)

# %% tags=["solution", "nbval-ignore-output"] cellView="form" jupyter={"source_hidden": true}
# @title Solution 1: count the parameters by hand
from nanochat_next.model.gpt import has_value_embedding


def counted_by_hand(c) -> int:
    C, V, L, KV = c.n_embd, c.padded_vocab_size, c.n_layer, c.n_kv_head * c.head_dim
    attention = C * C + 2 * C * KV + C * C  # c_q, c_k and c_v (GQA: KV wide), c_proj
    mlp = C * 4 * C + 4 * C * C  # c_fc, c_proj
    ve_layers = [i for i in range(L) if has_value_embedding(i, L)]
    value_embeddings = len(ve_layers) * (V * KV + c.ve_gate_channels * c.n_kv_head)  # table + gate
    return V * C + L * (attention + mlp) + value_embeddings + 2 * L + C * V  # wte, blocks, ve, lambdas, lm_head


c4 = config_for_depth(4, tok.vocab_size, head_dim=64, max_seq_len=max_seq_len)
print(f"depth 4: by hand {counted_by_hand(c4):,}, the model {model_parameters(c4):,}; value embeddings on layers "
      f"{[i for i in range(c4.n_layer) if has_value_embedding(i, c4.n_layer)]}")
assert check(counted_by_hand, model_parameters, depth_configs)
untouched = lambda c: c.padded_vocab_size * c.n_embd  # noqa: E731 - the stub, as given
assert not check(untouched, model_parameters, depth_configs)

# %% tags=["solution", "nbval-ignore-output"] cellView="form" jupyter={"source_hidden": true}
# @title Solution 2: one key/value head for all queries
configs = {kv: GPTConfig(sequence_len=16, vocab_size=tok.vocab_size, n_layer=3, n_head=4, n_kv_head=kv, n_embd=64,
                         window_pattern="SL") for kv in (4, 1)}
models = {kv: GPT(c) for kv, c in configs.items()}
with torch.no_grad():
    for p_ in models[1].parameters():
        p_.add_(torch.randn_like(p_) * 0.02)
    gap = (forward_by_hand(models[1], idx) - models[1](idx)).abs().max().item()
params = {kv: sum(p.numel() for p in m.parameters()) for kv, m in models.items()}
cache = {kv: 2 * c.n_layer * c.n_kv_head * c.head_dim * 2 for kv, c in configs.items()}  # k and v, 2 bytes each
print(f"multi-query: max |by hand - library| = {gap:.2e}; parameters {params[4]:,} -> {params[1]:,}; KV cache "
      f"{cache[4]:,} -> {cache[1]:,} bytes per token")
assert gap < 1e-4 and params[1] < params[4] and cache[4] == 4 * cache[1]
assert check(lambda c, b: 2 * c.n_layer * c.n_kv_head * c.head_dim * b, library_cache_bytes, cache_cases)
assert not check(lambda c, b: c.n_embd * b, library_cache_bytes, cache_cases)  # the stub
