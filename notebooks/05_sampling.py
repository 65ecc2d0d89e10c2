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
# # 05 · Sampling: greedy, temperature, top-k, top-p, and the KV cache
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ricardofrantz/nanochat-next/blob/main/notebooks/05_sampling.ipynb)
#
# A trained model gives, at every step, a probability for each possible next token. *How* we pick from
# that distribution changes the text a lot. We train a tiny GPT on Shakespeare (half a minute on a CPU),
# then look at the distribution under each sampling rule, sample with each, and finally measure what the
# KV cache buys: the same tokens, much faster.

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
corpus = "tinyshakespeare"
vocab_size = 2048
depth = 2
max_seq_len = 128
steps = 400
device = "auto"
seed = 42
prompt = "KING RICHARD:"

# %%
import tempfile
import time

import matplotlib.pyplot as plt
import torch

from nanochat_next.corpus import load_corpus, split_documents, train_val_split
from nanochat_next.tensor.config import TensorRun
from nanochat_next.tensor.engine import Engine, sample_next
from nanochat_next.tensor.packing import DocumentSource
from nanochat_next.tensor.train import train
from nanochat_next.tokenizer.bpe import BPETokenizer

text, rule = load_corpus(corpus)
train_docs, val_docs = train_val_split(split_documents(text, rule))
tok = BPETokenizer.train(train_docs, vocab_size)
run = TensorRun(depth=depth, head_dim=64, max_seq_len=max_seq_len, device_batch_size=8, total_batch_size=1024,
                steps=steps, eval_every=0, eval_tokens=1024, device=device, seed=seed, out=tempfile.mkdtemp())
result = train(run, DocumentSource.from_docs(train_docs), DocumentSource.from_docs(val_docs), tok, progress=False,
               log=lambda *a, **k: None)
model = result["model"].eval()
print(f"trained {result['num_params']:,} parameters for {steps} steps: val bpb {result['final_val_bpb']:.3f}")

# %% [markdown]
# ## 1. The next-token distribution under each rule
#
# - **greedy** (temperature 0): always the most likely token. Deterministic, and prone to loops.
# - **temperature** T: softmax(logits / T). T < 1 sharpens the distribution, T > 1 flattens it.
# - **top-k**: keep only the k most likely tokens, renormalise.
# - **top-p** (nucleus): keep the smallest set of most likely tokens whose probability reaches p.

# %%
# NBVAL_IGNORE_OUTPUT
# (which tokens a trained model ranks first depends on float kernels: another CPU may order near-ties
# differently; the checks in this cell hold everywhere)
ids = torch.tensor([tok.encode(prompt, prepend_bos=True)], device=next(model.parameters()).device)
with torch.no_grad():
    logits = model(ids)[0, -1].float().cpu()
order = logits.argsort(descending=True)[:12]
labels = [repr(tok.decode([int(i)])) for i in order]


def distribution(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """The probabilities sample_next draws from, estimated by drawing 4,000 times."""
    gen = torch.Generator().manual_seed(seed)
    draws = sample_next(logits.expand(4000, -1), temperature, top_k, top_p, gen)
    return torch.bincount(draws, minlength=logits.numel()).float() / 4000


settings = {"T=0.5": dict(temperature=0.5), "T=1.0": dict(temperature=1.0), "T=1.5": dict(temperature=1.5),
            "top-k 3": dict(top_k=3), "top-p 0.5": dict(top_p=0.5)}
fig, axes = plt.subplots(1, len(settings), figsize=(15, 3.2), sharey=True)
for ax, (name, kwargs) in zip(axes, settings.items()):
    ax.bar(range(12), distribution(**kwargs)[order])
    ax.set_title(name)
    ax.set_xticks(range(12), labels, rotation=90, fontsize=7)
axes[0].set_ylabel("probability of being drawn")
plt.tight_layout()
plt.show()
print("most likely next tokens:", labels[:5])
assert distribution(top_k=3)[order[3:]].sum() == 0  # top-k 3 never draws a token outside the 3 most likely

# %% [markdown]
# ## 2. Samples
#
# The same prompt, the same seed, five rules. Greedy repeats itself; a high temperature invents words;
# top-k and top-p cut off the unlikely tail that produces most of the nonsense.

# %%
# NBVAL_IGNORE_OUTPUT
# (sampled text depends on float kernels: another CPU draws other tokens; the checks below hold everywhere)
engine = Engine(model, tok)
prompt_ids = tok.encode(prompt, prepend_bos=True)
for name, kwargs in {"greedy": dict(temperature=0.0), **settings}.items():
    sample = engine.generate_batch(prompt_ids, 40, seed=seed, **kwargs)[0]
    print(f"--- {name}\n{prompt}{tok.decode(sample)}\n")
    assert sample == engine.generate_batch(prompt_ids, 40, seed=seed, **kwargs)[0]  # same seed, same text

# %% [markdown]
# ## 3. The KV cache
#
# Without a cache, generating token n means running the model over all n previous tokens again: the
# cost of a whole generation grows with the square of its length. With a cache, the prompt is processed
# once (**prefill**) and each new token only computes its own query, key and value and attends to the
# stored keys and values (**decode**). The tokens are the same (greedy, to compare them exactly):

# %%
new_tokens = max_seq_len - len(prompt_ids)
t0 = time.perf_counter()
cached = engine.generate_batch(prompt_ids, new_tokens, temperature=0.0, stop_tokens=set())[0]
t_cache = time.perf_counter() - t0

t0 = time.perf_counter()
ids = torch.tensor([prompt_ids], device=next(model.parameters()).device)
with torch.no_grad():
    for _ in range(new_tokens):
        ids = torch.cat([ids, model(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
t_full = time.perf_counter() - t0
uncached = ids[0, len(prompt_ids):].tolist()
print(f"{new_tokens} tokens: with cache {t_cache:.2f} s, without {t_full:.2f} s ({t_full / t_cache:.1f}x faster)")
print("same tokens:", cached == uncached)
assert cached == uncached

# %% [markdown]
# ## 4. Streaming
#
# `Engine.stream_text` yields text as it is generated, for a chat-like display. A token can end in the
# middle of a multi-byte UTF-8 character; the stream holds such bytes back until the character is whole,
# so it never prints a broken character. Here the pieces are separated by `|`:

# %%
# NBVAL_IGNORE_OUTPUT
# (sampled text: machine-dependent; the check holds everywhere)
pieces = list(engine.stream_text(prompt_ids, 25, temperature=0.8, top_k=40, seed=seed))
print("|".join(pieces))
batch = engine.generate_batch(prompt_ids, 25, temperature=0.8, top_k=40, seed=seed)[0]
assert "".join(pieces) == tok.decode(batch)  # the stream is the same sample, piece by piece

# %% [markdown]
# From the command line, on the model the README's main job writes (`nanochat-next train` saves it in
# `out/tensor/`): `nanochat-next sample --checkpoint out/tensor --prompt "KING RICHARD:" --temperature 0.8
# --top-k 40 --stream`, and `nanochat-next chat --checkpoint out/tensor`. [results/inference.md][inference]
# compares our engine's speed with nanochat's.
#
# [inference]: https://github.com/ricardofrantz/nanochat-next/blob/main/results/inference.md
