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
# Here we build a tiny GPT (karpathy's `microgpt.py` architecture: 1 layer, 16-wide, 4 heads) in which
# *every* number is a scalar `Value`, piece by piece: embeddings, RMSNorm, attention, MLP, loss,
# backward, AdamW. Then we train it on names, sample from it, and check every gradient against a torch
# implementation of the same model. Runs on a CPU in about a minute.

# %%
import importlib.util
import os
import sys

# on Colab: install this repository's library first (the Colab launcher, which installs it itself, sets
# NANOCHAT_NEXT_INSTALLED so that a notebook it runs keeps the version it chose)
if "google.colab" in sys.modules and not os.environ.get("NANOCHAT_NEXT_INSTALLED"):
    # %pip install -q "git+https://github.com/ricardofrantz/nanochat-next@main"
    pass
if importlib.util.find_spec("nanochat_next") is None:  # a local clone that was never installed
    raise ModuleNotFoundError("nanochat_next is not installed: run `pip install -e .` in the repository, then restart")

# %% tags=["parameters"]
corpus = "names"
steps = 3000  # one name per step
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
from nanochat_next.scalar.value import Value, cross_entropy, dot, linear, rmsnorm, softmax

text, rule = load_corpus(corpus)
docs = split_documents(text, rule)
run = ScalarRun(steps=steps, lr=lr, seed=seed, n_embd=n_embd, n_head=n_head, block_size=block_size)
rng, tok, train_tokens, val_tokens = prepare(docs, run)
print(f"{len(train_tokens):,} training names, {len(val_tokens):,} held out, vocab {tok.vocab_size}")

# %% [markdown]
# ## 1. Fused nodes: the same math with fewer nodes
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
# ## 2. The pieces of a transformer block, on one short sequence
#
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
# At initialisation the weights are nearly uniform: the model has not learned what to attend to yet.
# After attention comes the **MLP**: widen to 4x, apply ReLU² (`max(0, x)²`, nanochat's activation),
# project back. Both attention and MLP *add* their output to the residual stream `x`. Finally `lm_head`
# maps the vector to one logit per vocabulary entry. `ScalarMiniGPT.forward_token` does all of this one
# token at a time, appending each position's key and value to lists (the KV cache):

# %%
keys, values = model.new_cache()
logits = [model.forward_token(t, pos, keys, values) for pos, t in enumerate(tokens)]
print(f"{len(logits)} positions x {len(logits[0])} logits; cached keys per layer: {len(keys[0])}")

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
from nanochat_next.tensor.mini_gpt import TorchMiniGPT

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
# ## 5. Training with AdamW
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
# ## 6. Held-out loss and samples
#
# The held-out loss should beat the bigram's 2.46 nats (after 3000 steps: about 2.38), because the GPT
# uses the whole prefix, not just the last character. Samples start
# from `<|bos|>` and stop when the model emits `<|bos|>` (end of name).

# %%
from nanochat_next.scalar.sample import generate
from nanochat_next.scalar.train import evaluate

val_loss = evaluate(model, val_tokens, 200)
print(f"held-out loss on 200 names: {val_loss:.4f}")
if steps >= 3000:
    assert val_loss < 2.42, "the GPT should beat the bigram (2.458) clearly"

sample_rng = random.Random(seed)
for temperature in (0.5, 1.0):
    names = [tok.decode(generate(model, [tok.bos_id], block_size, temperature, sample_rng, stop_token=tok.bos_id))
             for _ in range(10)]
    print(f"temperature {temperature}: {', '.join(names)}")

# %% [markdown]
# The same run from the command line: `nanochat-next train --mode scalar --steps 3000` then
# `nanochat-next sample --mode scalar`. Next, notebook 04 moves to tensors: the same model in torch,
# then the modern GPT of nanochat, feature by feature.
