# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: accelerator,colab,-jupytext.text_representation.jupytext_version
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
# # 09 · Inside the model: what attention learns, and how loss scales with size
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ricardofrantz/nanochat-next/blob/main/notebooks/09_inside_the_model.ipynb)
#
# Two questions about the GPT of notebook 04, answered by measuring:
#
# 1. **What do trained attention heads look at?** We draw every head's attention weights on a line of
#    Shakespeare and measure how focused they are, against uniform attention and against the same model
#    untrained.
# 2. **How does the loss fall as the model grows?** A *depth sweep*: the same data, tokens and recipe for
#    depths 1 to 4 (nanochat's one dial: width = 64 x depth). Plotted against parameters and against training
#    compute, the points fall on nearly straight lines on a log axis: a tiny **scaling law**, the same shape that
#    decides how big models like nanochat's are trained.
#
# On a 2-core CPU this takes about three minutes (2.8 on an AVX2-only EPYC); on a GPU (Colab) `preset="auto"`
# sweeps larger models longer.
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
preset = "auto"  # auto: the values below on a CPU; "gpu" (picked on CUDA): depths 2-6, 256 tokens, 400 steps
corpus = "tinyshakespeare"
vocab_size = 1024
depths = [1, 2, 3, 4]  # the sweep; width = 64 x depth
max_seq_len = 128
device_batch_size = 8
total_batch_size = 1024  # tokens per step
steps = 150
eval_every = 50
device = "auto"
seed = 42

# %%
import math
import tempfile

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.ticker import NullFormatter

from nanochat_next.model.gpt import GPT, apply_rotary, rms_norm
from nanochat_next.train.config import TensorRun, recipe_values
from nanochat_next.train.data import run_data
from nanochat_next.train.loop import train

if preset == "auto":
    preset = "gpu" if torch.cuda.is_available() else "cpu"
if preset == "gpu":  # 400 steps of 4,096 tokens: ~5 passes over Shakespeare's ~0.3M tokens
    depths, max_seq_len, device_batch_size, total_batch_size = [2, 3, 4, 6], 256, 16, 4096
    steps, eval_every = 400, 50
print(f"preset {preset}: depths {depths}, context {max_seq_len}, {steps} steps of {total_batch_size:,} tokens")
data = run_data(TensorRun(data=corpus, vocab_size=vocab_size), save_tokenizer=False, log=lambda *a: None)
train_docs, val_docs, tok = data.train.docs, data.val.docs, data.tokenizer  # what `nanochat-next train` reads
print(f"{len(train_docs):,} train / {len(val_docs):,} val documents; vocab {tok.vocab_size}")

# %% [markdown]
# ## 1. The sweep
#
# Every model gets the same tokens in the same order (one seed), the same number of steps and nanochat's recipe
# (its learning rates scale with the batch; Muon's do not depend on width). Only the depth, and with it the
# width and the number of heads, changes. We keep each run's validation curve and its FLOPs per token
# (nanochat's estimate: 6 x matmul parameters, plus attention).

# %% tags=["nbval-ignore-output"]
runs = {}
for depth in depths:
    run = TensorRun(**{**recipe_values("nanochat"), "muon_dtype": "auto"}, depth=depth, head_dim=64,
                    max_seq_len=max_seq_len,
                    device_batch_size=device_batch_size, total_batch_size=total_batch_size, steps=steps,
                    eval_every=eval_every, eval_tokens=16 * max_seq_len * device_batch_size, device=device, seed=seed,
                    out=tempfile.mkdtemp())
    r = train(run, data, progress=False, log=lambda *a, **k: None)
    r["flops_per_token"] = r["model"].flops_per_token()
    runs[depth] = r

for depth, r in runs.items():
    c = r["model"].config
    print(f"depth {depth}: width {c.n_embd:3d}, {c.n_head} head{'s' if c.n_head > 1 else ''}, "
          f"{r['num_params']:>9,} parameters, final val bpb {r['final_val_bpb']:.3f}")
assert [r["num_params"] for r in runs.values()] == sorted(r["num_params"] for r in runs.values())
assert runs[depths[-1]]["final_val_bpb"] < runs[depths[0]]["final_val_bpb"] - 0.05  # bigger learns more per step

# %% [markdown]
# ## 2. A tiny scaling law
#
# Left: the final validation loss against the number of parameters (log axis). Right: every evaluation of
# every run against the compute spent so far (FLOPs per token x tokens seen). Early on a small model is the
# cheaper way to a given loss; later the bigger ones pass it. The lower envelope of the curves is the best loss
# a compute budget can buy, and choosing the model size on that envelope is what "compute-optimal" means.
#
# What this is not: a scaling-law fit in the Chinchilla sense. The exponent comes from 4 points at one fixed
# budget (150 steps), one seed; and the right panel reads the envelope off the *intermediate* evaluations of
# runs whose learning rate decays towards the end, so an early point of a long run is not what a run stopped
# there would reach (its LR never decayed). The Chinchilla method trains every (size, budget) pair to the end of
# its own schedule. `nanochat-next ladder` does that for three recipes (docs/benchmark.md): every rung is a full
# run with its own schedule, several seeds, compared by nanochat's compute multiplier.

# %% tags=["nbval-ignore-output"]
params = [r["num_params"] for r in runs.values()]
finals = [r["final_val_bpb"] for r in runs.values()]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
axes[0].semilogx(params, finals, "o-")
for depth, n, bpb in zip(depths, params, finals):
    axes[0].annotate(f"depth {depth}", (n, bpb), textcoords="offset points", xytext=(4, 4), fontsize=8)
axes[0].set(xlabel="parameters", ylabel="final val bits per byte", title=f"after {steps} steps")
for i, (depth, r) in enumerate(runs.items()):
    flops = [e["step"] * total_batch_size * r["flops_per_token"] for e in r["evals"] if e["step"] > 0]
    bpb = [e["val_bpb"] for e in r["evals"] if e["step"] > 0]
    axes[1].semilogx(flops, bpb, "o-", color=f"C{i}", label=f"depth {depth}")
axes[1].set(xlabel="training FLOPs", ylabel="val bits per byte", title="loss against compute")
axes[1].legend(fontsize=8)
for ax in axes:
    ax.xaxis.set_minor_formatter(NullFormatter())  # label the powers of ten only
    ax.grid(alpha=0.3, which="both")
plt.tight_layout()
plt.show()
slope = torch.linalg.lstsq(torch.tensor([[math.log(n), 1.0] for n in params], dtype=torch.float64),
                           torch.tensor([[math.log(b)] for b in finals], dtype=torch.float64)).solution[0, 0].item()
print(f"fitted: val bpb ~ parameters^{slope:.3f} over this range")

# %% [markdown]
# ## 3. What the heads look at
#
# The library's attention runs in one fused kernel that never shows its weights, so we compute them by hand
# (notebook 04's forward pass, recording `softmax(q·k / sqrt(d))` per head) and check that the logits agree with
# the library's. Each map: rows are positions of the line, columns the positions it attends to. First every head
# at a glance, with its spread in bits (defined below: lower = more focused), then the most focused head large
# enough to read its tokens.

# %%
def forward_with_attention(model: GPT, idx: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits, and per layer the (heads, T, T) attention weights, for nanochat's model (no sliding windows)."""
    c, T = model.config, idx.size(1)
    cos, sin = model.cos[:, :T], model.sin[:, :T]
    x = x0 = rms_norm(model.transformer.wte(idx))
    maps = []
    for i, block in enumerate(model.transformer.h):
        x = model.resid_lambdas[i] * x + model.x0_lambdas[i] * x0
        a, h = block.attn, rms_norm(x)
        q = a.c_q(h).view(1, T, c.n_head, c.head_dim)
        k = a.c_k(h).view(1, T, c.n_kv_head, c.head_dim)
        v = a.c_v(h).view(1, T, c.n_kv_head, c.head_dim)
        if str(i) in model.value_embeds:
            gate = a.ve_gate_range * torch.sigmoid(a.ve_gate(h[..., : a.ve_gate_channels]))  # value embedding gate
            v = v + gate.unsqueeze(-1) * model.value_embeds[str(i)](idx).view_as(v)
        q, k = rms_norm(apply_rotary(q, cos, sin)), rms_norm(apply_rotary(k, cos, sin))
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        k, v = (t.repeat_interleave(c.n_head // c.n_kv_head, dim=1) for t in (k, v))
        causal = torch.ones(T, T, dtype=torch.bool, device=idx.device).tril()
        weights = (q @ k.transpose(-1, -2) / c.head_dim**0.5).masked_fill(~causal, float("-inf")).softmax(-1)
        maps.append(weights[0])
        x = x + a.c_proj((weights @ v).transpose(1, 2).reshape(x.shape))
        x = x + block.mlp.c_proj(F.relu(block.mlp.c_fc(rms_norm(x))).square())
    logits = model.lm_head(rms_norm(x))[..., : c.vocab_size].float()
    return 15 * torch.tanh(logits / 15), maps


line = "ROMEO:\nWhat light through yonder window breaks?"
model = runs[depths[-1]]["model"].float().eval()
dev = next(model.parameters()).device
idx = torch.tensor([tok.encode(line, prepend_bos=True)], device=dev)
with torch.no_grad():
    logits, maps = forward_with_attention(model, idx)
    gap = (logits - model(idx).float()).abs().max().item()
print(f"depth {depths[-1]}: {len(maps)} layers x {maps[0].shape[0]} heads over {idx.size(1)} tokens; "
      f"max |by hand - library| = {gap:.1e}")
assert gap < 1e-3  # fp32 (the library may have trained in bf16; both run fp32 here): two summation orders

# %%
def entropy(w: torch.Tensor) -> float:
    """Mean over the rows of one head's (T, T) map of -sum p log2 p: bits of spread per position."""
    return -(w * w.clamp_min(1e-12).log2()).sum(-1).mean().item()


labels = [tok.decode([t]).replace("\n", "\\n").replace("<|bos|>", "BOS") for t in idx[0].tolist()]
n_layers, n_heads = len(maps), maps[0].shape[0]
# every head at a glance (the tokens are on the large map below): row = a position (query), colour = its weights
fig, axes = plt.subplots(n_layers, n_heads, figsize=(2.3 * n_heads + 1.2, 2.3 * n_layers + 0.6), squeeze=False)
for layer in range(n_layers):
    for head in range(n_heads):
        ax = axes[layer][head]
        im = ax.imshow(maps[layer][head].cpu(), cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"layer {layer}, head {head}\n{entropy(maps[layer][head]):.2f} bits", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
for layer in range(n_layers):
    axes[layer][0].set_ylabel("query position")
for head in range(n_heads):
    axes[-1][head].set_xlabel("key position")
fig.colorbar(im, ax=axes, shrink=0.6, label="attention weight")
fig.suptitle(f"every head of the depth-{depths[-1]} model on one line ({len(labels)} tokens; bits: the spread)")
plt.show()

# the most focused head (the lowest entropy), large enough to read which token looks at which
layer, head = min(((la, he) for la in range(n_layers) for he in range(n_heads)),
                  key=lambda lh: entropy(maps[lh[0]][lh[1]]))
fig, ax = plt.subplots(figsize=(7, 6))
im = ax.imshow(maps[layer][head].cpu(), cmap="viridis", vmin=0, vmax=1)
ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=9)
ax.set_yticks(range(len(labels)), labels, fontsize=9)
ax.set(xlabel="attends to (key)", ylabel="position (query)",
       title=f"the most focused head: layer {layer}, head {head} ({entropy(maps[layer][head]):.2f} bits)")
fig.colorbar(im, ax=ax, shrink=0.8, label="attention weight")
plt.show()

# %% [markdown]
# A few numbers summarise a head: how much weight it puts on the **previous token**, on **BOS** (the start: a
# "no-op" place to park attention), and its **entropy** (spread: 0 bits = one position, more = many). Attending
# equally to every earlier position has the largest entropy a causal head can have (`uniform` below). After a
# few hundred steps on a CPU the heads are still broad: more focused than uniform, a few leaning on the previous
# token or on BOS, but (exercise 1) not much more focused than the same model untrained, whose random queries and
# keys already prefer some positions. Attention patterns form slowly; the crisp ones of larger models (a head that
# copies the previous token, an "induction head" that completes a repeated phrase) need far more training than a
# CPU minute: try `preset="gpu"` and compare.

# %% tags=["nbval-ignore-output"]
def mean_entropy(maps_: list[torch.Tensor]) -> float:
    return sum(entropy(w) for heads in maps_ for w in heads) / sum(len(heads) for heads in maps_)


def uniform_causal_map(T: int) -> torch.Tensor:
    """The (T, T) map of a head that spreads evenly: row t gives 1 / (t + 1) to each of positions 0..t."""
    return torch.ones(T, T).tril() / torch.arange(1, T + 1)[:, None]


T = idx.size(1)
uniform = entropy(uniform_causal_map(T))  # the most spread a causal head can be
print(f"uniform causal attention: {uniform:.2f} bits")
for layer, heads in enumerate(maps):
    for head, w in enumerate(heads):
        previous = w[torch.arange(1, T), torch.arange(T - 1)].mean().item()
        bos = w[1:, 0].mean().item()
        print(f"layer {layer} head {head}: previous token {previous:.2f}, BOS {bos:.2f}, entropy {entropy(w):.2f} bits")
assert all(torch.allclose(w.sum(-1), torch.ones(T, device=w.device)) for heads in maps for w in heads)
assert all((w.triu(1) == 0).all() for heads in maps for w in heads)  # never the future


assert mean_entropy(maps) < uniform  # softmax weights of unequal scores: below the uniform maximum

# %% [markdown]
# ## What's next
#
# From a shell, the same sweep at any size: `nanochat-next ablate --grid 'depth=2,4,6'` (notebook 07's runner,
# several seeds and p-values). On a GPU, `preset="gpu"` (picked automatically on Colab) sweeps depths 2-6 with
# 256-token contexts for 400 steps.
#
# ## Exercises
#
# Try each one before opening its solution (the hidden cell under it; the tests run every solution).
#
# 1. **Untrained vs trained.** First the ceiling: write the entropy of uniform causal attention as a function of
#    the length T alone (row t spreads over t + 1 positions). Then build the same model untrained
#    (`GPT(model.config)` after `torch.manual_seed`), compute its maps on the same line and compare the mean
#    entropy with the trained model's and with uniform attention. Which head did training focus most?
# 2. **Compute-optimal, read off the plot.** For each evaluation budget (FLOPs) of the right-hand plot, which depth
#    had the lowest loss at about that budget? Does the best depth grow with the budget?
#
# Each exercise starts with a cell for your attempt. Exercise 1's `check` compares your formula with `entropy` of
# the uniform map for several lengths. Exercise 2's: the lowest val bpb any depth reached within a budget of
# FLOPs; `check` compares it with the envelope the library's compute-multiplier code draws over the same
# evaluations (`best_so_far`, the curve that never rises). Each prints the first case where they differ.

# %%
from nanochat_next.exercises import check  # your function vs the notebook's on each case: prints the first difference


def measured_on_the_map(T: int) -> float:
    """The reference: the mean entropy of the explicit uniform causal map, measured as the cells above measure."""
    return entropy(uniform_causal_map(T))


# Your attempt (exercise 1): replace the body
def uniform_entropy(T: int) -> float:
    """Mean over the T rows of the bits of a row that spreads evenly over the positions it may see."""
    return math.log2(T)  # TODO: only the last row's; average over the rows


check(uniform_entropy, measured_on_the_map, [1, 2, 3, 10, T], rel=1e-5)


# %%
from nanochat_next.bench.compute_multiplier import best_so_far

# every evaluation of every depth above: (FLOPs spent so far, val bpb, depth)
points = [(e["step"] * total_batch_size * r["flops_per_token"], e["val_bpb"], depth)
          for depth, r in runs.items() for e in r["evals"] if e["step"] > 0]


def library_lowest(budget: float, points: list[tuple[float, float, int]]) -> float:
    """The library's envelope over all evaluations in FLOPs order, read at the last one within the budget."""
    envelope = best_so_far(sorted((flops, bpb) for flops, bpb, _ in points))
    return [bpb for flops, bpb in envelope if flops <= budget][-1]


toy_points = [(1.0, 3.0, 2), (2.0, 2.5, 2), (2.0, 2.7, 4), (4.0, 2.2, 4), (3.0, 2.6, 2)]
budget_cases = [(2.0, toy_points), (3.5, toy_points), (4.0, toy_points),
                *((budget, points) for budget in sorted({f for f, _, _ in points})[1::3])]


# Your attempt (exercise 2): replace the body
def lowest_within(budget: float, points: list[tuple[float, float, int]]) -> float:
    """The lowest val bpb among the evaluations that spent at most ``budget`` FLOPs, any depth."""
    return points[0][1]  # TODO: only the first evaluation so far


check(lowest_within, library_lowest, budget_cases)

# %% tags=["solution", "nbval-ignore-output"] cellView="form" jupyter={"source_hidden": true}
# @title Solution 1: untrained vs trained
def uniform_by_formula(T: int) -> float:
    return sum(math.log2(t + 1) for t in range(T)) / T  # row t: log2 of the t + 1 positions it spreads over


assert check(uniform_by_formula, measured_on_the_map, [1, 2, 3, 10, T])
assert not check(lambda T: math.log2(T), measured_on_the_map, [1, 2, 3, 10, T])  # the stub
torch.manual_seed(seed)
untrained = GPT(model.config).to(dev).eval()
with torch.no_grad():
    _, untrained_maps = forward_with_attention(untrained, idx)
change = {(li, hi): entropy(untrained_maps[li][hi]) - entropy(maps[li][hi])
          for li in range(n_layers) for hi in range(n_heads)}
most = max(change, key=change.get)
print(f"mean entropy: uniform {uniform:.2f}, untrained {mean_entropy(untrained_maps):.2f}, "
      f"trained {mean_entropy(maps):.2f} bits; most focused by training: layer {most[0]} head {most[1]} "
      f"({change[most]:.2f} bits less)")
assert mean_entropy(untrained_maps) < uniform  # random queries and keys already prefer some positions
assert len(change) == n_layers * n_heads

# %% tags=["solution", "nbval-ignore-output"] cellView="form" jupyter={"source_hidden": true}
# @title Solution 2: compute-optimal, read off the plot
assert check(lambda budget, points: min(bpb for f, bpb, _ in points if f <= budget), library_lowest, budget_cases)
assert not check(lambda budget, points: points[0][1], library_lowest, budget_cases)  # the stub
budgets = sorted({f for f, _, _ in points})
best = []
for budget in budgets[:: max(1, len(budgets) // 6)]:
    reachable = [(bpb, depth) for f, bpb, depth in points if f <= budget]  # what this much compute could buy
    best.append((budget, *min(reachable)))
for budget, bpb, depth in best:
    print(f"{budget:.2e} FLOPs: best depth {depth} (val bpb {bpb:.3f})")
assert all(b2 <= b1 for (_, b1, _), (_, b2, _) in zip(best, best[1:]))  # more compute never buys a worse best
