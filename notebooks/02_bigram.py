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
# # 02 · The bigram model: counting, then gradient descent on scalars
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ricardofrantz/nanochat-next/blob/main/notebooks/02_bigram.ipynb)
#
# The simplest language model predicts the next character from the current one only: a table
# `P[current][next]`. We build it three ways and check they agree:
#
# 1. by **counting** pairs in 29,000 names (the maximum-likelihood answer);
# 2. by **gradient descent on scalars**: a table of logits, each one a `Value` that knows its gradient;
# 3. the same two with **torch tensors**.
#
# Along the way: what the negative log-likelihood (NLL) measures, and why smoothing matters.
# Runs on a CPU in well under a minute.

# %%
import os
import sys

# on Colab: install this repository's library first (the Colab launcher, which installs it itself, sets
# NANOCHAT_NEXT_INSTALLED so that a notebook it runs keeps the version it chose)
if "google.colab" in sys.modules and not os.environ.get("NANOCHAT_NEXT_INSTALLED"):
    # %pip install -q "git+https://github.com/ricardofrantz/nanochat-next@main"
    pass

# %% tags=["parameters"]
corpus = "names"  # one name per line (karpathy/makemore)
smoothing = 1.0  # pseudo-count added to every pair
steps = 300  # gradient-descent steps (full batch: every step sees all training pairs)
lr = 0.5  # AdamW learning rate for the scalar and the tensor model
seed = 42

# %%
import math
import random

import matplotlib.pyplot as plt

from nanochat_next.corpus import load_corpus, split_documents
from nanochat_next.scalar.bigram import ScalarBigram, bigram_counts, count_probs, nll
from nanochat_next.scalar.sample import generate
from nanochat_next.scalar.train import ScalarRun, prepare

text, rule = load_corpus(corpus)
docs = split_documents(text, rule)
run = ScalarRun(model_kind="bigram", seed=seed)
_, tok, train_tokens, val_tokens = prepare(docs, run)  # shuffled with the seed, last 10% held out
V = tok.vocab_size
print(f"{len(docs):,} names; {len(train_tokens):,} train, {len(val_tokens):,} held out")
print(f"vocab {V}: 26 letters + <|bos|>")
print(train_tokens[0], "=", repr(tok.decode(train_tokens[0])))

# %% [markdown]
# Every name is framed by `<|bos|>` on both sides: the pair (`<|bos|>`, `e`) teaches which letters start
# names, and (`a`, `<|bos|>`) which letters end them. For plots we write `<|bos|>` as `.`.
#
# ## 1. Counting

# %%
counts = bigram_counts(train_tokens, V)
labels = [*tok.chars, "."]
fig, ax = plt.subplots(figsize=(7, 7))
ax.imshow(counts, cmap="Blues")
ax.set_xticks(range(V), labels)
ax.set_yticks(range(V), labels)
ax.set_xlabel("next character")
ax.set_ylabel("current character")
ax.set_title("bigram counts in the training names")
plt.show()

top = sorted(range(V), key=lambda j: -counts[tok.bos_id][j])[:5]
print("most common first letters:", [(labels[j], counts[tok.bos_id][j]) for j in top])

# %% [markdown]
# Normalising each row gives probabilities. A pair never seen in training would get probability 0, and
# a single such pair in new text makes its likelihood 0 (an infinite loss), so we add `smoothing` to
# every count first.
#
# The quality measure is the **negative log-likelihood** per character, in nats: the average of
# `-log P[current][next]` over all pairs. Guessing uniformly among 27 characters scores `log 27`.

# %%
probs = count_probs(counts, smoothing)
val_counts = bigram_counts(val_tokens, V)
nll_count_train, nll_count_val = nll(probs, counts), nll(probs, val_counts)
print(f"uniform guess:  {math.log(V):.4f} nats")
print(f"counting model: {nll_count_train:.4f} train, {nll_count_val:.4f} held out")
print(f"without smoothing, held out: {nll(count_probs(counts, 0.0), val_counts):.4f}")
assert 2.40 < nll_count_val < 2.52

# %% [markdown]
# ## 2. The same model by gradient descent on scalars
#
# A `Value` is one number that remembers how it was computed, so it can compute its gradient: the
# derivative of a final result with respect to it. A tiny example, checked by hand:

# %%
from nanochat_next.scalar.value import Value

a, b = Value(2.0), Value(-3.0)
c = a * b + a  # c = ab + a
c.backward()
print(f"c = {c.data}, dc/da = b + 1 = {a.grad}, dc/db = a = {b.grad}")
assert (a.grad, b.grad) == (-2.0, 2.0)

# %% [markdown]
# Now the bigram as a neural network: a `V x V` table of logits `W` (all zeros at first, so every row is
# uniform), probabilities `softmax(W[i])`, and the loss = the NLL of the training pairs, smoothed like
# the counts. `ScalarBigram.loss` builds it as one cross-entropy node per row (weighted by that row's
# counts) so each step is cheap. We train with AdamW for `steps` steps, learning rate decaying to 0.

# %%
from nanochat_next.scalar.optim import AdamW
from nanochat_next.schedule import LRSchedule

model = ScalarBigram(V)
optimizer = AdamW(model.params, lr)
schedule = LRSchedule(steps, warmdown_ratio=0.5)
losses = []
for step in range(steps):
    loss = model.loss(counts, smoothing)
    loss.backward()
    optimizer.step(schedule(step))
    optimizer.zero_grad()
    losses.append(loss.data)

learned = model.probs()
nll_grad_train, nll_grad_val = nll(learned, counts), nll(learned, val_counts)
print(f"gradient descent: {nll_grad_train:.4f} train, {nll_grad_val:.4f} held out")
print(f"counting:         {nll_count_train:.4f} train, {nll_count_val:.4f} held out")
assert abs(nll_grad_val - nll_count_val) < 1e-3, "both reach the same model"

plt.figure(figsize=(6, 3))
plt.plot(losses)
plt.axhline(math.log(V), color="gray", ls=":", label="uniform guess")
plt.xlabel("step")
plt.ylabel("smoothed training NLL (nats)")
plt.legend()
plt.show()

# %% [markdown]
# Why the same? The loss is minimised exactly when `softmax(W[i])` equals the (smoothed) frequencies of
# row `i`: the counting answer. Gradient descent just finds it slowly. The point is that the gradient
# route generalises: swap the table for a deep network and the training loop stays the same.
#
# ## 3. With torch tensors
#
# The same two models with tensors: counting is one `index_put_`, and the gradient model is a `V x V`
# weight matrix indexed by the current characters, trained with `torch.optim.AdamW`.

# %%
import torch
import torch.nn.functional as F

xs = torch.tensor([a for t in train_tokens for a in t[:-1]])
ys = torch.tensor([b for t in train_tokens for b in t[1:]])
N = torch.zeros(V, V, dtype=torch.float64)
N.index_put_((xs, ys), torch.ones(len(xs), dtype=torch.float64), accumulate=True)  # N[x, y] += 1 for every pair
P = (N + smoothing) / (N + smoothing).sum(1, keepdim=True)
xv = torch.tensor([a for t in val_tokens for a in t[:-1]])
yv = torch.tensor([b for t in val_tokens for b in t[1:]])
nll_tensor_count = -P[xv, yv].log().mean().item()

W = torch.zeros(V, V, dtype=torch.float64, requires_grad=True)
opt = torch.optim.AdamW([W], lr=lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
target = N + smoothing  # the same smoothed objective, as soft targets per row
for step in range(steps):
    for group in opt.param_groups:
        group["lr"] = lr * schedule(step)
    loss_t = -(target * F.log_softmax(W, 1)).sum() / target.sum()
    opt.zero_grad()
    loss_t.backward()
    opt.step()
nll_tensor_grad = F.cross_entropy(W[xv], yv).item()
print(f"held-out NLL: counting {nll_count_val:.4f} | scalar GD {nll_grad_val:.4f} | "
      f"tensor counting {nll_tensor_count:.4f} | tensor GD {nll_tensor_grad:.4f}")
assert abs(nll_tensor_count - nll_count_val) < 1e-9 and abs(nll_tensor_grad - nll_grad_val) < 1e-6

# %% [markdown]
# ## Samples
#
# Start from `<|bos|>`, draw the next character from the row of the current one, stop at `<|bos|>`.
# The counting model and the trained model sample alike: they are the same distribution. Bigrams know
# which letters follow which, nothing more, so the names are pronounceable at best.

# %%
count_model = ScalarBigram(V, [[math.log(p) for p in row] for row in probs])
for name, m in (("counting", count_model), ("gradient", model)):
    rng = random.Random(seed)
    samples = [tok.decode(generate(m, [tok.bos_id], 20, 1.0, rng, stop_token=tok.bos_id)) for _ in range(8)]
    print(f"{name:>8}: {', '.join(samples)}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 5))
for ax, table, title in ((axes[0], probs, "counting (smoothed)"), (axes[1], learned, "gradient descent")):
    ax.imshow(table, cmap="magma")
    ax.set_xticks(range(V), labels, fontsize=7)
    ax.set_yticks(range(V), labels, fontsize=7)
    ax.set_title(f"P(next | current): {title}")
plt.show()

# %% [markdown]
# The CLI trains the same scalar bigram: `nanochat-next train --mode scalar --model-kind bigram`, and
# `nanochat-next sample --mode scalar` samples from it. Notebook 03 replaces the table with a transformer.
