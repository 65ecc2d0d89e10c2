# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · A GPT on scalars
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ricardofrantz/nanochat-next/blob/main/notebooks/03_mini_gpt.ipynb)
#
# The bigram of notebook 02 sees one character. A GPT sees all the previous ones, through **attention**.
# First, the step in between: an MLP that sees a fixed window of characters (section 0). Then we build a
# tiny GPT (karpathy's `microgpt.py` architecture: 1 layer, 16-wide, 4 heads) in which *every* number is a
# scalar `Value`, piece by piece: embeddings, RMSNorm, attention, MLP, loss, backward, AdamW. We write the
# whole model on screen and check it against the library's, check every gradient against a torch
# implementation, train it on names, sample from it, and look at what its attention heads learned to look at.
# Runs on a 2-core CPU in about three minutes (most of it section 6: 2,000 training steps in pure Python scalars).
#
# *About the outputs:* the scalar GPT computes in Python floats (float64) from fixed seeds, so its losses and
# samples are the same on any machine; only the timings, and the last digits of section 0's torch (float32)
# losses, move.

# %%
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

# %% tags=["parameters"]
corpus = "names"
steps = 2000  # one name per step
block_size = 16  # longest context in characters (+ <|bos|>)
n_embd = 16
n_head = 4
lr = 0.01
seed = 42

# %%
import math
import random
import time

import matplotlib.pyplot as plt

from nanochat_next.corpus import load_corpus, split_documents
from nanochat_next.scalar.gpt import MiniGPTConfig, ScalarMiniGPT
from nanochat_next.scalar.train import ScalarRun, prepare
from nanochat_next.scalar.value import Value, cross_entropy, dot, linear, rmsnorm, softmax, softmax_data

text, rule = load_corpus(corpus)
docs = split_documents(text, rule)
run = ScalarRun(steps=steps, lr=lr, seed=seed, n_embd=n_embd, n_head=n_head, block_size=block_size)
rng, tok, train_tokens, val_tokens = prepare(docs, run)
print(f"{len(train_tokens):,} training names, {len(val_tokens):,} held out, vocab {tok.vocab_size}")

# %% [markdown]
# ## 0. Between the bigram and attention: an MLP over a fixed window
#
# The bigram of notebook 02 sees one character. The simplest way to see more (Bengio et al. 2003, karpathy's
# makemore part 2): take the previous `k` characters, look up a learned vector (an **embedding**) for each,
# concatenate them, and feed the result to an **MLP**: a linear layer, a nonlinearity, a linear layer to one
# logit per character. With `k = 1` it is a bigram again; with `k = 3` it sees three characters. We train both
# for a few seconds with torch (2,000 Adam steps on random mini-batches of 512 windows) and compare their
# held-out loss.

# %%
import torch
import torch.nn.functional as F


def windows(names: list[list[int]], k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(the k previous tokens, the next token) at every position; a name starts after k <|bos|> of padding."""
    xs, ys = [], []
    for t in names:
        seq = [tok.bos_id] * (k - 1) + t  # t is already <|bos|> name <|bos|>
        xs += [seq[j : j + k] for j in range(len(seq) - k)]
        ys += seq[k:]
    return torch.tensor(xs), torch.tensor(ys)


def train_window_mlp(k: int, width: int = 64, steps: int = 2000, batch: int = 512) -> float:
    torch.manual_seed(seed)
    emb = torch.nn.Embedding(tok.vocab_size, 16)
    mlp = torch.nn.Sequential(torch.nn.Linear(16 * k, width), torch.nn.Tanh(), torch.nn.Linear(width, tok.vocab_size))
    params = [*emb.parameters(), *mlp.parameters()]
    optimizer = torch.optim.Adam(params, lr=0.01)
    x, y = windows(train_tokens, k)
    for _ in range(steps):
        rows = torch.randint(0, len(x), (batch,))  # a random mini-batch of windows
        loss = F.cross_entropy(mlp(emb(x[rows]).flatten(1)), y[rows])  # (B, k, 16) -> (B, 16k) -> (B, vocab)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        xv, yv = windows(val_tokens, k)
        return F.cross_entropy(mlp(emb(xv).flatten(1)), yv).item()


window_nll = {k: train_window_mlp(k) for k in (1, 3)}
for k, value in window_nll.items():
    print(f"window of {k} character{'s' * (k > 1)}: held-out loss {value:.3f} nats per character")
assert window_nll[3] < window_nll[1] - 0.1  # more context, better predictions

# %% [markdown]
# Three characters of context help. But the window is fixed (a name's first letters cannot influence its
# ninth), and every slot has its own weights, so "an `a` two back" and "an `a` three back" are learned
# separately. **Attention** removes both limits: every position can look at *all* earlier ones, and it decides
# from their content (not their slot) how much each matters. That is the GPT below.
#
# ## 1. The pieces of a transformer block, on one short sequence
#
# The picture first. A token's vector travels left to right along the **residual stream**. Each block reads a
# normalised copy of it twice: attention (mixing in information from earlier positions) and the MLP (computing
# on the position's own vector); each *adds* its result back to the stream. At the end, `lm_head` turns the
# vector into one score (logit) per vocabulary entry. This notebook's model has one block; nanochat's, many.

# %%
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle


def draw_block() -> None:
    """The transformer block as a diagram: the residual stream, and the two branches that add to it."""
    fig, ax = plt.subplots(figsize=(11, 3.4))

    def box(x, y, w, text, color):
        ax.add_patch(FancyBboxPatch((x, y), w, 0.9, boxstyle="round,pad=0.05", fc=color, ec="black", lw=0.8))
        ax.text(x + w / 2, y + 0.45, text, ha="center", va="center", fontsize=9)

    def arrow(a, b, **kw):
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=12, lw=1, **kw))

    box(0, -0.45, 1.9, "token + position\nwte[id] + wpe[pos]", "#dbe9f6")
    box(2.3, -0.45, 1.1, "RMSNorm", "#eeeeee")
    arrow((1.95, 0), (2.3, 0))
    arrow((3.45, 0), (11.0, 0), color="C0")
    ax.text(3.6, -0.35, "residual stream x", color="C0", fontsize=9)
    for x0, name, detail, color in ((4.0, "attention", "q, k, v per head;\nlooks at earlier tokens", "#fde2c8"),
                                    (7.3, "MLP", "widen 4x, ReLU²,\nnarrow back", "#d9f2d9")):
        box(x0, 1.0, 0.9, "RMSNorm", "#eeeeee")
        box(x0 + 1.2, 1.0, 1.5, f"{name}\n{detail}", color)
        arrow((x0 - 0.2, 0), (x0 + 0.1, 0.95))  # read a copy of the stream
        arrow((x0 + 0.95, 1.45), (x0 + 1.2, 1.45))
        arrow((x0 + 2.75, 1.0), (x0 + 3.0, 0.12))  # add the result back
        ax.text(x0 + 3.0, 0, "+", ha="center", va="center", fontsize=14, fontweight="bold",
                bbox=dict(boxstyle="circle,pad=0.1", fc="white", ec="black"))
    ax.add_patch(Rectangle((3.7, -0.7), 7.0, 2.9, fill=False, ls="--", ec="gray"))
    ax.text(10.6, 2.0, "one block (x n_layer)", ha="right", color="gray", fontsize=9)
    box(11.1, -0.45, 1.6, "lm_head\none logit per token\nof the vocabulary", "#f3d9f5")
    ax.set(xlim=(-0.2, 12.9), ylim=(-0.9, 2.4), title="A GPT: embeddings, then blocks that add to a residual stream, "
           "then logits")
    ax.axis("off")
    plt.show()


draw_block()

# %% [markdown]
# **Embeddings.** Each token id picks a row of `wte` (what the token is) and each position a row of `wpe`
# (where it is); their sum is the token's vector. **RMSNorm** rescales a vector to unit root-mean-square,
# keeping activations in a healthy range (no learned parameters here, as in nanochat).

# %%
config = MiniGPTConfig(tok.vocab_size, n_embd, n_head, 1, block_size)
model = ScalarMiniGPT(config, rng=rng)  # the rng continues from the shuffle, as in microgpt.py
wts = model.weights
print(f"{model.num_params():,} parameters:", {name: f"{len(m)}x{len(m[0])}" for name, m in wts.items()})

tokens = tok.encode("emma", prepend_bos=True)
emb = [[t + p for t, p in zip(wts["wte"][tid], wts["wpe"][pos])] for pos, tid in enumerate(tokens)]
normed = [rmsnorm(e) for e in emb]
rms = math.sqrt(sum(v.data**2 for v in normed[0]) / n_embd)
print(f"tokens {tokens}: {len(emb)} vectors of {len(emb[0])}; after RMSNorm the first has rms {rms:.4f}")

# %% [markdown]
# **Attention.** Each position makes a query `q`, a key `k` and a value `v` (three `linear` maps). A
# position's output is an average of the values of itself and *earlier* positions, weighted by
# `softmax(q · k / sqrt(head_dim))`: it looks back at what is relevant. With several heads, each works
# on its own slice of the vector. Here, head 0 at the last position of `<|bos|>emma`:

# %%
hd = config.head_dim
qs = [linear(h, wts["layer0.attn_wq"]) for h in normed]
ks = [linear(h, wts["layer0.attn_wk"]) for h in normed]
vs = [linear(h, wts["layer0.attn_wv"]) for h in normed]
last = len(tokens) - 1
scores = [dot(qs[last][:hd], ks[t][:hd]) * (1 / math.sqrt(hd)) for t in range(last + 1)]
weights = softmax(scores)
print("attention weights of the last position over", tok.decode(tokens).replace("<|bos|>", "."), ":",
      [round(wt.data, 3) for wt in weights])
assert abs(sum(wt.data for wt in weights) - 1) < 1e-12

# %% [markdown]
# The same for every position and every head, as a picture. Row *i* is position *i* asking "which earlier
# positions matter to me?"; its weights sum to 1. Above the diagonal is the **causal mask**: a position may not
# look at later ones (they are the future it must predict), so those scores are set to minus infinity before
# the softmax and get weight 0. Each of the 4 heads compares its own slice of `q` and `k`, so each can look for
# something different; their outputs (weighted means of `v`) are concatenated back to one vector.

# %%
labels = [tok.decode([t]).replace("<|bos|>", "<bos>") for t in tokens]
fig, axes = plt.subplots(1, config.n_head, figsize=(12, 3.2))
for head, ax in enumerate(axes):
    s_ = slice(head * hd, (head + 1) * hd)
    grid = [[math.nan] * len(tokens) for _ in tokens]  # NaN above the diagonal: the causal mask
    for i in range(len(tokens)):
        row = softmax_data([dot(qs[i][s_], ks[j][s_]).data / math.sqrt(hd) for j in range(i + 1)])
        grid[i][: i + 1] = row
    image = ax.imshow(grid, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(tokens)):
        for j in range(len(tokens)):
            ax.text(j, i, "mask" if j > i else f"{grid[i][j]:.2f}", ha="center", va="center", fontsize=7,
                    color="gray" if j > i else "black")
    ax.set(title=f"head {head}", xticks=range(len(tokens)), yticks=range(len(tokens)), xlabel="looks at (key)")
    ax.set_xticklabels(labels)
    ax.set_yticklabels(labels if head == 0 else [])
axes[0].set_ylabel("position (query)")
fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
plt.show()
assert all(abs(sum(softmax_data([dot(qs[i][:hd], ks[j][:hd]).data for j in range(i + 1)])) - 1) < 1e-12
           for i in range(len(tokens)))

# %% [markdown]
# At initialisation the weights are nearly uniform: the model has not learned what to attend to yet.
# After attention comes the **MLP**: widen to 4x, apply ReLU² (`max(0, x)²`, nanochat's activation),
# project back. Both attention and MLP *add* their output to the residual stream `x`. Finally `lm_head`
# maps the vector to one logit per vocabulary entry.
#
# ## 2. The whole model, written out
#
# Here is all of it, one token at a time: the function below is the complete forward pass of the scalar GPT.
# Each position appends its key and value to per-layer lists (the **KV cache**), so a later position can
# attend to every earlier one. The library's `ScalarMiniGPT.forward_token` is the same code; the check below
# asserts identical logits at every position. (`attention`, if given, collects every head's weights: we
# will draw them after training.)

# %%
def forward_by_hand(model: ScalarMiniGPT, token_id: int, pos: int, keys: list, values: list,
                    attention: list | None = None) -> list[Value]:
    c, w = model.config, model.weights
    hd = c.head_dim
    x = rmsnorm([t + p for t, p in zip(w["wte"][token_id], w["wpe"][pos])])  # what + where, normed
    for li in range(c.n_layer):
        residual, h = x, rmsnorm(x)
        q = linear(h, w[f"layer{li}.attn_wq"])
        keys[li].append(linear(h, w[f"layer{li}.attn_wk"]))  # cache this position's key and value
        values[li].append(linear(h, w[f"layer{li}.attn_wv"]))
        heads: list[Value] = []
        for head in range(c.n_head):  # each head works on its own slice of q, k and v
            s = slice(head * hd, (head + 1) * hd)
            scores = [dot(q[s], k[s]) * (1 / math.sqrt(hd)) for k in keys[li]]  # positions 0..pos only
            weights = softmax(scores)
            if attention is not None:
                attention.append((li, head, [wt.data for wt in weights]))
            heads += [dot(weights, [v[s][j] for v in values[li]]) for j in range(hd)]  # weighted mean of values
        x = [a + r for a, r in zip(linear(heads, w[f"layer{li}.attn_wo"]), residual)]  # add to the residual
        hidden = [u.relu() ** 2 for u in linear(rmsnorm(x), w[f"layer{li}.mlp_fc1"])]  # widen 4x, ReLU²
        x = [a + r for a, r in zip(linear(hidden, w[f"layer{li}.mlp_fc2"]), x)]  # narrow, add to the residual
    return linear(x, w["lm_head"])  # one logit per vocabulary entry


keys, values = model.new_cache()
logits = [forward_by_hand(model, t, pos, keys, values) for pos, t in enumerate(tokens)]
lib_keys, lib_values = model.new_cache()
library = [model.forward_token(t, pos, lib_keys, lib_values) for pos, t in enumerate(tokens)]
gap = max(abs(a.data - b.data) for row, lib_row in zip(logits, library) for a, b in zip(row, lib_row))
print(f"{len(logits)} positions x {len(logits[0])} logits; cached keys per layer: {len(keys[0])}; "
      f"largest difference from the library: {gap:.1e}")
assert gap < 1e-12  # the same float64 operations in the same order

# %% [markdown]
# ## 3. Loss and backward
#
# The loss of a name is the mean cross-entropy of predicting each next character (the last prediction
# is `<|bos|>`: "the name ends here"). At initialisation every character is about equally likely, so
# the loss is close to `log(27) = 3.30`. `backward()` then fills `.grad` of all parameters.

# %%
target = [*tokens[1:], tok.bos_id]
loss = sum((cross_entropy(lg, t) for lg, t in zip(logits, target)), Value(0.0)) * (1 / len(target))
print(f"loss {loss.data:.4f} vs log(27) = {math.log(27):.4f}")
loss.backward()
print(f"graph: {len(loss.topological_order()):,} nodes; |grad| of wte row 'e': "
      f"{math.sqrt(sum(p.grad**2 for p in wts['wte'][tokens[1]])):.2e}")
assert abs(loss.data - model.loss([*tokens, tok.bos_id]).data) < 1e-12  # the library computes the same

# %% [markdown]
# ## 4. Checking every gradient against torch
#
# `TorchMiniGPT` is the same model written with tensors in float64: whole sequences at once, causal
# attention with a mask instead of KV lists. From the same weights it must give the same loss and the
# same gradient for every one of the parameters.

# %%
from nanochat_next.model.torch_mini_gpt import TorchMiniGPT

for p in model.params:
    p.grad = 0.0
doc = [*tokens, tok.bos_id]
loss = model.loss(doc)
loss.backward()
twin = TorchMiniGPT.from_scalar(model)
loss_t = twin.loss(doc)
loss_t.backward()
worst = max(abs(p.grad - g) for name, mat in wts.items()
            for row, grow in zip(mat, twin.weight(name).grad.tolist()) for p, g in zip(row, grow))
print(f"loss difference {abs(loss.data - loss_t.item()):.1e}, largest gradient difference {worst:.1e}")
assert abs(loss.data - loss_t.item()) < 1e-9 and worst < 1e-9
for p in model.params:
    p.grad = 0.0

# %% [markdown]
# ## 5. Why training takes a minute, not ten: fused nodes
#
# microgpt computes a dot product as `sum(w * x)`: one multiply node and one add node per element. Our
# `dot` is a single node that stores the local gradients of all its inputs (`d/dw_i = x_i`,
# `d/dx_i = w_i`). The gradients are identical, but a 16-wide dot product adds 1 node to the graph
# instead of 33. Fewer Python objects to create and walk is most of why our scalar GPT trains about 10x
# faster than microgpt (see [results/scalar.md][scalar]).
#
# [scalar]: https://github.com/ricardofrantz/nanochat-next/blob/main/results/scalar.md

# %%
r = random.Random(0)
w = [Value(r.gauss(0, 1)) for _ in range(16)]
x = [Value(r.gauss(0, 1)) for _ in range(16)]
unfused = sum((wi * xi for wi, xi in zip(w, x)), Value(0.0))
fused = dot(w, x)
new_unfused = len(unfused.topological_order()) - 32  # minus the 32 inputs
new_fused = len(fused.topological_order()) - 32
print(f"same value: {abs(unfused.data - fused.data) < 1e-12}; new nodes: unfused {new_unfused}, fused {new_fused}")
unfused.backward()
grads_unfused = [v.grad for v in w + x]
for v in w + x:
    v.grad = 0.0
fused.backward()
assert all(abs(a - v.grad) < 1e-12 for a, v in zip(grads_unfused, w + x))


# %% [markdown]
# ## 6. Training with AdamW
#
# One name per step: forward, loss, backward, and an AdamW update of every scalar. AdamW keeps, per
# parameter, running averages of the gradient (`m`) and of its square (`v`), and steps by
# `lr * m / sqrt(v)`: each parameter gets its own step size. The learning rate stays constant for half
# the run, then decays linearly to zero.

# %%
from nanochat_next.scalar.optim import AdamW

optimizer = AdamW(model.params, lr, betas=(0.9, 0.95), eps=1e-8)
schedule = run.schedule()
losses = []
t0 = time.perf_counter()
for step in range(steps):
    loss = model.loss(train_tokens[step % len(train_tokens)])
    loss.backward()
    optimizer.step(schedule(step))
    optimizer.zero_grad()
    losses.append(loss.data)
seconds = time.perf_counter() - t0
print(f"{steps} steps in {seconds:.1f} s ({steps / seconds:.1f} steps/s)")

window = 50
smooth = [sum(losses[max(0, i - window + 1): i + 1]) / len(losses[max(0, i - window + 1): i + 1])
          for i in range(len(losses))]
plt.figure(figsize=(7, 3))
plt.plot(losses, alpha=0.25, label="per name")
plt.plot(smooth, label=f"mean of last {window}")
plt.axhline(2.458, color="gray", ls=":", label="bigram, held out (notebook 02)")
plt.xlabel("step")
plt.ylabel("loss (nats/char)")
plt.legend()
plt.show()

# %% [markdown]
# ## 7. Held-out loss and samples
#
# The held-out loss should beat the bigram's 2.46 nats (after 2000 steps: about 2.38), because the GPT
# uses the whole prefix, not just the last character. Samples start
# from `<|bos|>` and stop when the model emits `<|bos|>` (end of name).

# %%
from nanochat_next.scalar.sample import generate
from nanochat_next.scalar.train import evaluate

val_loss = evaluate(model, val_tokens, 200)
print(f"held-out loss on 200 names: {val_loss:.4f}")
if steps >= 2000:
    assert val_loss < 2.42, "the GPT should beat the bigram (2.458) clearly"

sample_rng = random.Random(seed)
for temperature in (0.5, 1.0):
    names = [tok.decode(generate(model, [tok.bos_id], block_size, temperature, sample_rng, stop_token=tok.bos_id))
             for _ in range(10)]
    print(f"temperature {temperature}: {', '.join(names)}")

# %% [markdown]
# ## 8. What the trained heads look at
#
# Each row of a map is one position of a held-out name; its colours are the attention weights of one head over
# that position and the earlier ones (the upper triangle is empty: no head sees the future). At initialisation
# every row was nearly uniform; after training, heads specialise: some look at the previous character or
# two, some back at `<|bos|>` (how long is the name so far?).

# %%
def attention_maps(model: ScalarMiniGPT, tokens: list[int]) -> list[list[list[float]]]:
    """maps[layer * n_head + head][query position][key position], from forward_by_hand's record."""
    c, record = model.config, []
    keys, values = model.new_cache()
    for pos, t in enumerate(tokens):
        forward_by_hand(model, t, pos, keys, values, attention=record)
    maps = [[[0.0] * len(tokens) for _ in tokens] for _ in range(c.n_layer * c.n_head)]
    for i, (layer, head, weights) in enumerate(record):
        maps[layer * c.n_head + head][i // (c.n_layer * c.n_head)][: len(weights)] = weights
    return maps


def draw_maps(maps: list, tokens: list[int], title: str) -> None:
    chars = [tok.decode([t]).replace("<|bos|>", ".") for t in tokens]
    fig, axes = plt.subplots(1, len(maps), figsize=(3.2 * len(maps), 3.4))
    for i, (ax, m) in enumerate(zip(axes, maps)):
        im = ax.imshow(m, cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(len(chars)), chars)
        ax.set_yticks(range(len(chars)), chars)
        ax.set_title(f"layer {i // n_head}, head {i % n_head}")
        ax.set_xlabel("attends to (key)")
    axes[0].set_ylabel("position (query)")
    fig.colorbar(im, ax=axes, shrink=0.8, label="attention weight")
    fig.suptitle(title)
    plt.show()


example = next(t for t in val_tokens if len(t) >= 8)[:-1]  # a held-out name, without its final <|bos|>
maps = attention_maps(model, example)
draw_maps(maps, example, f"trained heads on {tok.decode(example[1:])!r}")
assert all(abs(sum(row[: q + 1]) - 1) < 1e-9 and not any(row[q + 1 :]) for m in maps for q, row in enumerate(m))

# %% [markdown]
# The same run from the command line: `nanochat-next train --mode scalar --steps 2000` then
# `nanochat-next sample --mode scalar`. Next, notebook 04 moves to tensors: the same model in torch,
# then the modern GPT of nanochat, feature by feature.
#
# ## Exercises
#
# Try each one before opening its solution (the hidden cell under it; the tests run every solution).
#
# 1. **Two layers.** Build a `MiniGPTConfig` with `n_layer=2`, train it for 300 steps, and draw the heat maps of
#    all eight heads on the same name. How many parameters did the second layer add? Do the second layer's heads
#    look at other positions than the first's?
# 2. **Why divide by `sqrt(head_dim)`?** With random unit-variance queries and keys of width 64, compare the
#    softmax over 16 positions with and without the scale. How much weight does the largest score take?
#
# Each exercise starts with a cell for your attempt. Exercise 1's: the number of parameters as a function of the
# config, from the shapes printed in section 1; `check` compares it with the library's model (`num_params()`) for
# several widths and depths and prints the first config where they differ. Exercise 2's: one query's attention
# weights over a few keys, in plain Python; `check` compares them with torch's `scaled_dot_product_attention`
# (asked for its weights: with the identity matrix as the values, output column `j` is key `j`'s weight) on several
# queries and prints the first that differs. Then use your function for the comparison the exercise asks for.

# %%
from nanochat_next.exercises import check  # your function vs the library's on each case: prints the first difference

config_cases = [MiniGPTConfig(tok.vocab_size, 16, 4, 1, 16), MiniGPTConfig(tok.vocab_size, 16, 4, 2, 16),
                MiniGPTConfig(tok.vocab_size, 32, 4, 3, 8)]


# Your attempt (exercise 1): replace the body
def my_num_params(c: MiniGPTConfig) -> int:
    """The scalar GPT's parameters from c.vocab_size, c.n_embd, c.n_layer and c.block_size alone."""
    return 2 * c.vocab_size * c.n_embd  # TODO: wte and lm_head so far; add wpe and every layer's matrices


check(my_num_params, lambda c: ScalarMiniGPT(c).num_params(), config_cases)

# %%

def torch_weights(q: list[float], keys: list[list[float]]) -> list[float]:
    """torch's attention weights of one query over ``keys`` (the values are the identity: out[j] = weight j)."""
    q_t, k_t = torch.tensor([[q]], dtype=torch.float64), torch.tensor([keys], dtype=torch.float64)
    return F.scaled_dot_product_attention(q_t, k_t, torch.eye(len(keys), dtype=torch.float64)[None])[0, 0].tolist()


case_rng = random.Random(0)
weight_cases = [([case_rng.gauss(0, 1) for _ in range(width_)], [[case_rng.gauss(0, 1) for _ in range(width_)]
                                                                 for _ in range(positions_)])
                for width_, positions_ in ((4, 3), (8, 5), (64, 16))]


# Your attempt (exercise 2): replace the body
def attention_weights(q: list[float], keys: list[list[float]]) -> list[float]:
    scores = [sum(a * b for a, b in zip(q, k)) for k in keys]
    return softmax_data(scores)  # TODO: scale the scores first


check(attention_weights, torch_weights, weight_cases)

# %% tags=["solution", "nbval-ignore-output"] cellView="form" jupyter={"source_hidden": true}
# @title Solution 1: two layers
config2 = MiniGPTConfig(tok.vocab_size, n_embd, n_head, 2, block_size)
model2 = ScalarMiniGPT(config2, rng=random.Random(seed))
optimizer2 = AdamW(model2.params, lr, betas=(0.9, 0.95), eps=1e-8)
short = 300  # a few hundred steps: enough for the heads to differ, within the notebook's time
for step in range(short):
    loss = model2.loss(train_tokens[step % len(train_tokens)])
    loss.backward()
    optimizer2.step(1 - step / short)  # decay linearly to zero
    optimizer2.zero_grad()
print(f"parameters: 1 layer {model.num_params():,}, 2 layers {model2.num_params():,} "
      f"(+{model2.num_params() - model.num_params():,}: one more block of attention + MLP)")
val2 = evaluate(model2, val_tokens, 200)
print(f"held-out loss after {short} steps: {val2:.4f}")
draw_maps(attention_maps(model2, example), example, "two layers: eight heads")
assert model2.num_params() - model.num_params() == 12 * n_embd * n_embd  # 4 attention + 8 MLP matrices


def params_by_hand(c: MiniGPTConfig) -> int:
    C = c.n_embd  # wte, lm_head and wpe; per layer q, k, v, o (C x C each) and the MLP's C x 4C and 4C x C
    return 2 * c.vocab_size * C + c.block_size * C + c.n_layer * (4 * C * C + 8 * C * C)


assert check(params_by_hand, lambda c: ScalarMiniGPT(c).num_params(), config_cases)
assert not check(lambda c: 2 * c.vocab_size * c.n_embd, lambda c: ScalarMiniGPT(c).num_params(), config_cases)
assert val2 < 2.7  # well below the uniform log(27) = 3.30 after 300 steps

# %% tags=["solution", "nbval-ignore-output"] cellView="form" jupyter={"source_hidden": true}
# @title Solution 2: why divide by sqrt(head_dim)?
def scaled_weights(q: list[float], keys: list[list[float]]) -> list[float]:
    scale = 1 / math.sqrt(len(q))  # the scores' variance grows with the width: bring it back to ~1
    return softmax_data([scale * sum(a * b for a, b in zip(q, k)) for k in keys])


assert check(scaled_weights, torch_weights, weight_cases)
untouched = lambda q, keys: softmax_data([sum(a * b for a, b in zip(q, k)) for k in keys])  # noqa: E731 - the stub
assert not check(untouched, torch_weights, weight_cases)
gen = random.Random(seed)
width, positions = 64, 16
q_ = [gen.gauss(0, 1) for _ in range(width)]
ks_ = [[gen.gauss(0, 1) for _ in range(width)] for _ in range(positions)]
raw = [sum(a * b for a, b in zip(q_, k_)) for k_ in ks_]  # variance ~ width: scores of about +-8
for name, scale in (("unscaled", 1.0), ("scaled by 1/sqrt(64)", 1 / math.sqrt(width))):
    weights = softmax_data([r * scale for r in raw])
    print(f"{name:>22}: largest weight {max(weights):.3f}")
assert max(softmax_data(raw)) > max(softmax_data([r / math.sqrt(width) for r in raw]))
# unscaled, the largest weight is several times larger and the softmax is far peakier (with a wider head or
# larger scores one key takes nearly all of it): a saturated softmax passes almost no gradient to the others
