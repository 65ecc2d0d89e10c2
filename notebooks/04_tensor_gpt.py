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
# Notebook 03 trained a GPT whose every number was a Python object. Here the same model becomes a few
# tensor operations, and then we upgrade it, feature by feature, to karpathy/nanochat's model (the
# `modern` style; its logits equal nanochat's own code bit for bit, see [docs/parity.md][parity]). We write its
# forward pass, its optimizer's key step (Muon) and its training loop on screen, each checked against the library,
# then train it and a GPT-2 style `classic` model on Shakespeare with the same budget and sample from both.
#
# With the default parameters this runs on a laptop CPU in about 2 minutes; on a GPU (Colab) `preset="auto"`
# picks a larger model and a longer run, and prints what it chose.
#
# [parity]: https://github.com/ricardofrantz/nanochat-next/blob/main/docs/parity.md
#
# *About the outputs:* cells that print what a trained model did (losses, samples, timings) show the
# numbers of the machine that ran them; another CPU's float kernels give slightly different ones. The
# checks inside those cells hold everywhere.

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
preset = "auto"  # auto: the values below on a CPU; "gpu" (picked on CUDA): depth 4, 256 tokens, 800 steps of 4,096
corpus = "tinyshakespeare"
vocab_size = 2048
depth = 2  # layers; width = depth x 64
max_seq_len = 128
device_batch_size = 8
total_batch_size = 1024  # tokens per step
steps = 600
eval_every = 100
device = "auto"  # cpu, cuda or mps; an absent device is an error
seed = 42

# %%
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from nanochat_next.model.gpt import GPT, apply_rotary, config_for_depth, rms_norm, rotary_tables, window_sizes
from nanochat_next.runtime import choose_dtype, resolve_device
from nanochat_next.train.config import TensorRun
from nanochat_next.train.data import run_data
from nanochat_next.train.packing import DocumentSource

if preset == "auto":
    preset = "gpu" if torch.cuda.is_available() else "cpu"
if preset == "gpu":  # a model worth sampling from, in a few minutes on a Colab GPU. Shakespeare is only ~0.3M
    # tokens: 800 steps of 4,096 already pass over it ~10 times (watch train and validation part in section 5)
    depth, max_seq_len, device_batch_size, total_batch_size, steps, eval_every = 4, 256, 16, 4096, 800, 100
print(f"preset {preset}: depth {depth}, context {max_seq_len}, {steps} steps of {total_batch_size:,} tokens")

# the documents and the tokenizer every run of this notebook trains on: what `nanochat-next train` reads for
# this corpus (the first 90% of the documents train, the last 10% validate; BPE trained on the training part)
data = run_data(TensorRun(data=corpus, vocab_size=vocab_size), save_tokenizer=False, log=lambda *a: None)
train_docs, val_docs, tok = data.train.docs, data.val.docs, data.tokenizer
dev = resolve_device(device)
print(f"{len(train_docs):,} train / {len(val_docs):,} val documents; vocab {tok.vocab_size}; device {dev}")

# %% tags=["nbval-ignore-output"]
choice = choose_dtype(dev)
print(f"compute dtype on {dev}: {choice.name} ({choice.reason})")

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


check = GPT(GPTConfig(sequence_len=16, vocab_size=tok.vocab_size, n_layer=3, n_head=4, n_kv_head=2, n_embd=64,
                      window_pattern="SL"))
with torch.no_grad():
    for p_ in check.parameters():
        p_.add_(torch.randn_like(p_) * 0.02)  # no zero projections: every path contributes
    idx = torch.randint(0, tok.vocab_size, (2, 16))
    gap = (forward_by_hand(check, idx) - check(idx)).abs().max().item()
print(f"max |by hand - library| = {gap:.2e}")
assert gap < 1e-4  # fp32, two summation orders (explicit softmax vs the fused attention kernel)

# %% [markdown]
# ## 3. Muon: every direction moves by the same amount
#
# AdamW scales each *number* of an update by its own running statistics. Muon (nanochat's optimizer for the
# matrices of the blocks) treats a weight matrix as a matrix: it takes the update `G` (momentum of the
# gradient), writes it as `U S Vᵀ` (singular value decomposition), and applies `U Vᵀ` instead, the same
# directions with every singular value set to 1. A gradient is usually dominated by a few directions; after
# orthogonalization the weak ones move as much as the strong ones.
#
# The SVD is slow on a GPU, so Muon approximates `U Vᵀ` with a few **Newton-Schulz** steps: multiply by an
# odd polynomial `a X + b (X Xᵀ) X + c (X Xᵀ)² X` that pushes every singular value of `X` towards 1 (after
# scaling `X` so that they all start below 1). One step by hand, checked against the library's
# `orthogonalize` (nanochat's coefficients, in bfloat16 as nanochat runs it), then the singular values after
# each of the five steps, on a real gradient of this model (8 rows of `max_seq_len` tokens):

# %%
from nanochat_next.train.muon import POLAR_EXPRESS, orthogonalize

torch.manual_seed(seed)
probe = GPT(config_for_depth(depth, tok.vocab_size, head_dim=64, max_seq_len=max_seq_len))
stream = [t for d in val_docs[:200] for t in tok.encode(d, prepend_bos=True)][: 8 * max_seq_len + 1]
batch = torch.tensor(stream)
probe(batch[:-1].view(8, max_seq_len), batch[1:].view(8, max_seq_len)).backward()
G = probe.transformer.h[0].mlp.c_proj.weight.grad  # (C, 4C): a wide matrix (the block's other matrices start
# with zero gradients: nanochat initialises the output projections to zero)


def newton_schulz_step(X: torch.Tensor, a: float, b: float, c: float) -> torch.Tensor:
    gram = X @ X.mT  # (C, C) for a wide X: the small side
    return a * X + (b * gram + c * (gram @ gram)) @ X


X = G.bfloat16()
X = X / (X.norm() * 1.02 + 1e-6)  # every singular value now below 1
by_hand = newton_schulz_step(X, *POLAR_EXPRESS[0])
print(f"one step, by hand vs library: max difference {(by_hand - orthogonalize(G, steps=1)).abs().max():.1e}")
assert torch.equal(by_hand, orthogonalize(G, steps=1))  # the same bfloat16 operations in the same order

svals = {"gradient (scaled)": torch.linalg.svdvals(X.float())}
for k in range(1, 6):
    svals[f"after {k} step{'s' if k > 1 else ''}"] = torch.linalg.svdvals(orthogonalize(G, steps=k).float())
plt.figure(figsize=(7, 3))
for name, sv in svals.items():
    plt.plot(sv, label=name, lw=2.5 if name == "after 5 steps" else 1)
plt.xlabel("singular value index (largest first)")
plt.ylabel("singular value")
plt.title(f"Newton-Schulz on the gradient of layer 0's MLP output matrix {tuple(G.shape)}")
plt.legend(fontsize=7)
plt.show()
final = svals["after 5 steps"]
print(f"singular values: gradient {svals['gradient (scaled)'].max():.3f}..{svals['gradient (scaled)'].min():.5f}, "
      f"after 5 steps {final.max():.2f}..{final.min():.2f}")
# roughly orthogonal: most directions about the same size (the tiniest of the gradient's stay below)
assert (final > 0.5).float().mean() > 0.8 and final.max() < 1.5

# %% [markdown]
# ## 4. The training loop, written out
#
# A training step: take `total_batch_size` tokens as several micro-batches (as many as fit in memory), add up
# their gradients (each loss divided by the number of micro-batches, so the sum is the step's mean), set the
# step's learning rates from the schedule, let the optimizer update, clear the gradients. Below is that loop
# with the library's model, optimizer (nanochat's groups: Muon for the block matrices, AdamW for embeddings,
# head and scalars, LRs scaled to the batch) and data loader (documents packed into rows, each row starting
# with `<|bos|>`). The library's `train` runs the same loop plus evaluation, checkpoints, logging and crash
# safety; from the same seed both must produce the same losses and the same weights.
#
# First, what one micro-batch of the loader looks like: rows of `max_seq_len` tokens, each filled with whole
# documents (Shakespeare's speeches here) that start with `<|bos|>`, the best-fitting ones first (nanochat's
# packing); the last document of a row is cropped where the row ends. No padding: every position is trained.

# %%
from nanochat_next.train.packing import PackingLoader

x_, _ = next(PackingLoader(DocumentSource.from_docs(train_docs), tok, 4, 256))
fig, ax = plt.subplots(figsize=(11, 2.2))
for row in range(x_.shape[0]):
    doc = -1
    for col, token in enumerate(x_[row].tolist()):
        doc += token == tok.bos_id  # a new document starts at every <|bos|>
        ax.add_patch(plt.Rectangle((col, row), 1, 0.9, fc=f"C{doc % 10}", alpha=0.35 if token != tok.bos_id else 1))
ax.set(xlim=(0, x_.shape[1]), ylim=(x_.shape[0], -0.1), xlabel="position in the row",
       yticks=[r + 0.45 for r in range(x_.shape[0])], yticklabels=[f"row {r}" for r in range(x_.shape[0])],
       title="one micro-batch (4 rows x 256 tokens): a colour per document; dark cell: its <|bos|>")
plt.show()
print("documents per row:", [int((r == tok.bos_id).sum()) for r in x_])
assert (x_[:, 0] == tok.bos_id).all()  # every row starts at a document boundary

# %%
import tempfile

from nanochat_next.train.config import TensorRun, build_model, recipe_values
from nanochat_next.train.loop import train
from nanochat_next.train.recipe import build_optimizer, scaled_hyperparameters, set_step_hyperparameters

# nanochat's recipe (2f09686): the model written out above and its training rules. One change: Muon
# orthogonalises in the dtype measured fastest here (nanochat: always bf16, which a CPU without AVX-512 emulates
# ~13x slower; the result is the same within rounding, results/muon_dtype.md)
NANOCHAT = {**recipe_values("nanochat"), "muon_dtype": "auto"}


def train_by_hand(run: TensorRun) -> tuple[torch.nn.Module, list[float]]:
    torch.manual_seed(run.seed)
    model = build_model(run, tok.vocab_size, dev)  # nanochat's initialisation
    lr_scale, weight_decay = scaled_hyperparameters(run, model, tok.vocab_size)  # LRs scaled to the batch size
    optimizer = build_optimizer(run, model, lr_scale, weight_decay)
    loader = PackingLoader(DocumentSource.from_docs(train_docs), tok, run.device_batch_size, run.max_seq_len)
    micro_batches = run.total_batch_size // (run.device_batch_size * run.max_seq_len)
    schedule, losses = run.schedule(), []
    for step in range(run.steps):
        step_loss = torch.zeros(())
        for _ in range(micro_batches):
            x, y = next(loader)  # (B, T) token ids, and the same shifted by one: the targets
            loss = model(x.to(dev), y.to(dev)) / micro_batches  # mean cross-entropy of this micro-batch
            loss.backward()  # gradients add up over the micro-batches
            step_loss += loss.detach().cpu()
        set_step_hyperparameters(optimizer, run, step, schedule(step), weight_decay)  # LR x schedule, momentum
        optimizer.step()
        model.zero_grad(set_to_none=True)
        losses.append(step_loss.item())
    return model, losses


check_run = TensorRun(**NANOCHAT, depth=depth, head_dim=64, max_seq_len=max_seq_len,
                      device_batch_size=device_batch_size, total_batch_size=total_batch_size, steps=10, eval_every=0,
                      eval_tokens=1024, device=device, dtype="float32", seed=seed, out=tempfile.mkdtemp())
hand_model, hand_losses = train_by_hand(check_run)
library_result = train(check_run, data, progress=False, log=lambda *a, **k: None)
same_weights = all(torch.equal(a, b) for a, b in zip(hand_model.parameters(), library_result["model"].parameters()))
print("losses by hand:", [round(v, 4) for v in hand_losses[:5]], "...")
print("library train: ", [round(v, 4) for v in library_result["losses"][:5]], "...")
print("identical losses:", hand_losses == library_result["losses"], "| identical weights:", same_weights)
if dev.type == "cpu":  # float32 on a CPU: the same operations in the same order give the same bits
    assert hand_losses == library_result["losses"] and same_weights
else:  # a GPU may sum in another order from run to run (atomic adds in attention's backward): float32 noise on a
    # loss of ~8 is ~1e-5 per step, so 1e-3 after 10 steps still fails any real difference between the two loops
    assert max(abs(a - b) for a, b in zip(hand_losses, library_result["losses"])) < 1e-3

# %% [markdown]
# ## 5. Training: modern (Muon) vs classic (GPT-2, AdamW), same data and budget
#
# Now the real runs, with the library's `train` (what `nanochat-next train --mode tensor` runs), validating in
# **bits per byte** (loss per byte of text, comparable across tokenizers) every `eval_every` steps.
#
# Both train with nanochat's recipe (`NANOCHAT` above: its schedule, weight decay and batch), so the modern
# run is exactly the model written out in section 2. This comparison is of two *recipes*, not of one feature:
# everything in the table printed below differs at once (architecture, optimizer and its learning rates,
# parameter count, and time per step). The learning rates are a confound too: Muon's four group LRs are
# nanochat's, tuned by its author at larger scale; AdamW's single 3e-3 is a common GPT-2-size value, not swept
# here, so a tuned AdamW would close part of the gap. One seed, too. To learn what one feature is worth, change
# only that one, on several seeds (exercise 1, and notebook 07). (The project's own default, the `next` recipe
# of `nanochat-next train`, adds a few changes to nanochat's: docs/recipe.md; notebook 07 measures them.)

# %% tags=["nbval-ignore-output"]
results = {}
for style, optimizer, lr in (("modern", "muon", None), ("classic", "adamw", 3e-3)):
    options = {"lr": lr} if lr else {}  # Muon takes nanochat's four group LRs (defaults); AdamW one LR
    run = TensorRun(**NANOCHAT, style=style, optimizer=optimizer, depth=depth, head_dim=64, max_seq_len=max_seq_len,
                    device_batch_size=device_batch_size, total_batch_size=total_batch_size, steps=steps,
                    eval_every=eval_every, eval_tokens=8 * max_seq_len * device_batch_size, device=device, seed=seed,
                    out=tempfile.mkdtemp(), **options)
    t0 = time.perf_counter()
    results[style] = train(run, data, progress=False, log=lambda *a, **k: None)
    r = results[style]
    r["seconds"] = time.perf_counter() - t0
    r["optimizer"] = f"{optimizer}, " + (f"lr {lr}" if lr else "nanochat's group LRs")

m, c = results["modern"], results["classic"]
print(f"{'architecture':16s}{'modern':>30s}{'classic':>30s}")
print(f"{'optimizer':16s}{m['optimizer']:>30s}{c['optimizer']:>30s}")
print(f"{'parameters':16s}{m['num_params']:>30,}{c['num_params']:>30,}")
print(f"{'seconds':16s}{m['seconds']:>30.1f}{c['seconds']:>30.1f}")
print(f"{'final val bpb':16s}{m['final_val_bpb']:>30.3f}{c['final_val_bpb']:>30.3f}")

# %% [markdown]
# Training loss is in nats per *token*, validation in bits per *byte*: to see over-fitting, put both in bits per
# byte. A token of the training split holds `bytes_per_token` bytes on average, so `loss / ln 2 / bytes_per_token`
# is the training loss in the validation's unit (an estimate: a micro-batch's bytes per token vary). At the end
# both splits are also measured exactly, with the same evaluation code: a training bpb well below validation
# means the model memorises the training text.

# %% tags=["nbval-ignore-output"]
import math

from nanochat_next.train.evaluate import evaluate_bpb

token_bytes = torch.tensor(tok.token_byte_lengths())
train_ids = [tok.encode(d, prepend_bos=True) for d in train_docs]
bytes_per_token = sum(len(d.encode("utf-8")) for d in train_docs) / sum(len(t) for t in train_ids)
fig, ax = plt.subplots(figsize=(8, 3.5))
for i, (style, r) in enumerate(results.items()):
    window = 20
    bpb = [v / math.log(2) / bytes_per_token for v in r["losses"]]
    smooth = [sum(bpb[max(0, j - window + 1): j + 1]) / min(j + 1, window) for j in range(len(bpb))]
    ax.plot(smooth, color=f"C{i}", alpha=0.8, label=f"{style}: train (converted, mean of {window} steps)")
    ax.plot([e["step"] for e in r["evals"]], [e["val_bpb"] for e in r["evals"]], "o--", color=f"C{i}",
            label=f"{style}: validation")
ax.set(xlabel="step", ylabel="bits per byte", title="train and validation, one unit", ylim=(None, 4))
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
plt.show()


def split_bpb(model: torch.nn.Module, docs: list[str]) -> float:
    rows = PackingLoader(DocumentSource.from_docs(docs), tok, device_batch_size, max_seq_len)
    return evaluate_bpb(model, rows, 8, token_bytes, dev)


for style, r in results.items():
    print(f"{style:8s} end of training, bits per byte: train split {split_bpb(r['model'], train_docs):.3f}, "
          f"validation split {split_bpb(r['model'], val_docs):.3f}")
assert results["modern"]["final_val_bpb"] < results["modern"]["evals"][0]["val_bpb"] - 0.5

# %% [markdown]
# ## 6. Samples
#
# Generation feeds the model its own output one token at a time (here the simple way: a full forward
# pass per new token; notebook 05 adds the KV cache that makes it fast).

# %% tags=["nbval-ignore-output"]
@torch.no_grad()
def sample(model, prompt: str, new_tokens: int = 40, temperature: float = 0.8) -> str:
    gen = torch.Generator(device=dev).manual_seed(seed)
    ids = torch.tensor([tok.encode(prompt, prepend_bos=True)], device=dev)
    for _ in range(new_tokens):
        logits = model(ids[:, -max_seq_len:])[:, -1] / temperature
        ids = torch.cat([ids, torch.multinomial(logits.softmax(-1), 1, generator=gen)], dim=1)
    return tok.decode(ids[0, 1:].tolist())


for style, r in results.items():
    r["model"].eval()
    text = sample(r["model"], "ROMEO:\n")  # ends at a token boundary (05)
    print(f"--- {style}\n{text}\n")
    assert text.startswith("ROMEO:") and len(text) > len("ROMEO:")

# %% [markdown]
# The same from the command line: `nanochat-next train --mode tensor --style modern` (see README), and
# `nanochat-next bench --profile cpu` (notebook 06) for the side-by-side run against nanochat itself.
#
# ## Exercises
#
# Try each one before opening its solution (the hidden cell under it; the tests run every solution).
#
# 1. **Toggle one feature.** Train nanochat's model twice for 200 steps, identical except for `smear` (the
#    `next` recipe's change that mixes the previous token's embedding into each position; `smear=False` is
#    nanochat's model). Which is lower, and by how much? Why can one seed not settle it (notebook 07)?
# 2. **Count the parameters by hand** for `config_for_depth(4, ...)` from the description above (embeddings,
#    per-block attention with GQA and MLP, value embeddings on alternating layers with their gates, per-layer
#    scalars, the head), then check against the model.
#
# Exercise 2 has a cell for your attempt: write the count as a function of the config and run the cell; `check`
# compares it with the real model's parameter count at depths 2, 4 and 6 and prints the first depth where they
# differ.

# %%
from nanochat_next.exercises import check  # your function vs the library's on each case: prints the first difference


def model_parameters(c) -> int:
    """What the library says: build the model and count."""
    return sum(p.numel() for p in GPT(c).parameters())


depth_configs = [config_for_depth(d, tok.vocab_size, head_dim=64, max_seq_len=max_seq_len) for d in (2, 4, 6)]


# Your attempt (exercise 2): replace the body
def count_parameters(c) -> int:
    """GPT(c)'s number of parameters, from the config's numbers alone (c.n_embd, c.n_layer, ...)."""
    return c.padded_vocab_size * c.n_embd  # TODO: only the token embedding so far; add the rest


check(count_parameters, model_parameters, depth_configs)

# %% tags=["solution", "nbval-ignore-output"] cellView="form" jupyter={"source_hidden": true}
# @title Solution 1: toggle one feature
toggled = {}
for smear in (True, False):
    run = TensorRun(**{**NANOCHAT, "smear": smear}, depth=depth, head_dim=64, max_seq_len=max_seq_len,
                    device_batch_size=device_batch_size, total_batch_size=total_batch_size, steps=200, eval_every=0,
                    eval_tokens=8 * max_seq_len * 8, device=device, seed=seed, out=tempfile.mkdtemp())
    toggled[smear] = train(run, data, progress=False, log=lambda *a, **k: None)["final_val_bpb"]

print(f"val bpb after 200 steps: smear on {toggled[True]:.4f}, off {toggled[False]:.4f} "
      f"(difference {toggled[False] - toggled[True]:+.4f})")
assert all(2.0 < v < 3.5 for v in toggled.values())
# one seed: the difference mixes the feature's effect with seed noise of a similar size (notebook 07 measures it)

# %% tags=["solution"] cellView="form" jupyter={"source_hidden": true}
# @title Solution 2: count the parameters by hand
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
