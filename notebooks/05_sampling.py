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
# # 05 · Sampling: greedy, temperature, top-k, top-p, and the KV cache
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ricardofrantz/nanochat-next/blob/main/notebooks/05_sampling.ipynb)
#
# A trained model gives, at every step, a probability for each possible next token. *How* we pick from
# that distribution changes the text a lot. We train a tiny GPT on Shakespeare (half a minute on a CPU) with
# `nanochat-next train`'s default, the `next` recipe (nanochat's model and training plus a few measured changes:
# docs/recipe.md; notebook 04 trains nanochat's own; sampling works the same on both),
# see why a prompt should end where the training text had a token boundary, compute the exact distribution
# under each sampling rule, sample with each, and finally measure what the KV cache buys: the same tokens,
# faster, and more so the longer the text. On a GPU (Colab), `preset="auto"` trains a larger model.
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
depth = 2
max_seq_len = 128
steps = 400
device = "auto"
seed = 42
prompt = "KING RICHARD:\n"  # ends with ":\n", one token in the training text (section 1)

# %%
import math
import tempfile
import time

import matplotlib.pyplot as plt
import torch

from nanochat_next.infer.engine import Engine, sample_next
from nanochat_next.train.config import TensorRun
from nanochat_next.train.data import run_data
from nanochat_next.train.loop import train

device_batch_size, total_batch_size = 8, 1024
if preset == "auto":
    preset = "gpu" if torch.cuda.is_available() else "cpu"
if preset == "gpu":  # a model worth sampling from, in a few minutes on a Colab GPU (~10 passes over Shakespeare)
    depth, max_seq_len, device_batch_size, total_batch_size, steps = 4, 256, 16, 4096, 800
print(f"preset {preset}: depth {depth}, context {max_seq_len}, {steps} steps of {total_batch_size:,} tokens")
run = TensorRun(data=corpus, vocab_size=vocab_size, depth=depth, head_dim=64, max_seq_len=max_seq_len,
                device_batch_size=device_batch_size, total_batch_size=total_batch_size,
                steps=steps, eval_every=0, eval_tokens=1024, device=device, seed=seed, out=tempfile.mkdtemp())
data = run_data(run, log=lambda *a: None)  # the documents and tokenizer `nanochat-next train` would use
train_docs, val_docs, tok = data.train.docs, data.val.docs, data.tokenizer
result = train(run, data, progress=False, log=lambda *a, **k: None)
model = result["model"].eval()
print(f"trained {result['num_params']:,} parameters for {steps} steps: val bpb {result['final_val_bpb']:.3f}")

# %% [markdown]
# ## 1. Where the prompt ends matters
#
# In Shakespeare a speaker's name is followed by `:` and a newline, and the tokenizer of notebook 01 learned
# `:\n` as **one** token. A prompt that stops at `:` ends with a *different* token, the `:` that in training only
# appeared inside a line (`for this: the ...`). So the model continues as if mid-sentence. End the prompt where
# the training text had a token boundary (here after the newline) and the model starts a speech:

# %%
for text_ in ("KING RICHARD:", "KING RICHARD:\n", "for this: the"):
    print(f"{text_!r:20} -> {[tok.decode([i]) for i in tok.encode(text_)]}")
colon_newline = sum(d.count(":\n") for d in train_docs)
colon_inline = sum(d.count(":") for d in train_docs) - colon_newline
print(f"in the training text ':' is followed by a newline {colon_newline:,} times, by something else {colon_inline:,}")
assert tok.encode("KING RICHARD:\n")[-1] != tok.encode("KING RICHARD:")[-1]

# %% tags=["nbval-ignore-output"]
engine = Engine(model, tok)
for text_ in ("KING RICHARD:", "KING RICHARD:\n"):
    greedy = tok.decode(engine.generate_batch(tok.encode(text_, prepend_bos=True), 16, temperature=0.0)[0])
    print(f"{text_!r:18} continues greedily with {greedy!r}")
    assert greedy

# %% [markdown]
# ## 2. The next-token distribution under each rule
#
# - **greedy** (temperature 0): always the most likely token. Deterministic, and prone to loops.
# - **temperature** T: softmax(logits / T). T < 1 sharpens the distribution, T > 1 flattens it.
# - **top-k**: keep only the k most likely tokens, renormalise.
# - **top-p** (nucleus): keep the smallest set of most likely tokens whose probability reaches p.
#
# These are exact probabilities, computed from the logits the way the library's `sample_next` draws (the check
# at the end draws 20,000 times and compares). The last bar adds up every token outside the 12 most likely.

# %%
def rule_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None) -> torch.Tensor:
    """The exact distribution sample_next draws from."""
    scaled = logits.float() / temperature
    if top_k is not None:  # everything below the k-th largest logit is cut
        scaled = scaled.masked_fill(scaled < scaled.topk(top_k).values[-1], float("-inf"))
    probs = scaled.softmax(-1)
    if top_p is not None:  # keep the most likely tokens until their mass reaches top_p
        sorted_p, order_ = probs.sort(descending=True)
        keep_sorted = sorted_p.cumsum(0) - sorted_p < top_p
        probs = torch.zeros_like(probs).scatter(0, order_, sorted_p * keep_sorted)
        probs = probs / probs.sum()
    return probs


# %% tags=["nbval-ignore-output"]
ids = torch.tensor([tok.encode(prompt, prepend_bos=True)], device=next(model.parameters()).device)
with torch.no_grad():
    logits = model(ids)[0, -1].float().cpu()
order = logits.argsort(descending=True)[:12]
labels = [repr(tok.decode([int(i)])) for i in order]
settings = {"T=0.5": dict(temperature=0.5), "T=1.0": dict(temperature=1.0), "T=1.5": dict(temperature=1.5),
            "top-k 3": dict(top_k=3), "top-p 0.5": dict(top_p=0.5)}
fig, axes = plt.subplots(1, len(settings), figsize=(15, 3.4), sharey=True)
for ax, (name, kwargs) in zip(axes, settings.items()):
    probs = rule_probs(logits, **kwargs)
    others = probs.sum() - probs[order].sum()
    kept = int((probs > 0).sum())
    ax.bar(range(13), [*probs[order].tolist(), others.item()], color=["C0"] * 12 + ["C7"])
    ax.set_title(f"{name} ({kept:,} tokens possible)")
    ax.set_xticks(range(13), [*labels, f"other {tok.vocab_size - 12:,}"], rotation=90, fontsize=7)
axes[0].set_ylabel("probability")
plt.tight_layout()
plt.show()
print("most likely next tokens:", labels[:5])
gen = torch.Generator().manual_seed(seed)
for kwargs in settings.values():  # the library draws from exactly these distributions
    draws = sample_next(logits.expand(20000, -1), generator=gen, **{"temperature": 1.0, **kwargs})
    freq = torch.bincount(draws, minlength=logits.numel()).float() / 20000
    assert (freq - rule_probs(logits, **kwargs)).abs().max() < 0.02  # 20,000 draws: std <= 0.0036
    assert freq[rule_probs(logits, **kwargs) == 0].sum() == 0  # never a token the rule cut
assert (rule_probs(logits, top_k=3) > 0).sum() == 3

# %% [markdown]
# **The nucleus cut.** Sort the tokens from most to least likely and add up their probabilities: top-p keeps
# tokens until this curve reaches p. A confident step (a steep curve) keeps a few tokens; an uncertain one keeps
# many, which top-k's fixed k cannot do.

# %% tags=["nbval-ignore-output"]
cumulative = logits.softmax(-1).sort(descending=True).values.cumsum(0)
plt.figure(figsize=(7, 3))
plt.plot(range(1, 201), cumulative[:200], label="cumulative probability, most likely first")
for p_, color in ((0.5, "C1"), (0.9, "C2")):
    n_kept = int((cumulative - logits.softmax(-1).sort(descending=True).values < p_).sum())
    plt.axhline(p_, color=color, ls=":", lw=1)
    plt.axvline(n_kept, color=color, ls="--", label=f"top-p {p_}: keeps {n_kept} tokens")
    assert n_kept == int((rule_probs(logits, top_p=p_) > 0).sum())
plt.xscale("log")
plt.xlabel("tokens kept (log scale)")
plt.ylabel("probability mass")
plt.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 3. Samples
#
# The same prompt, the same seed, five rules (the text differs from machine to machine, the pattern does not).
# Greedy takes the likeliest path, which circles back on its own words (on this model, a line about being "a man"
# that says it twice) and may end at the first likely line break; a high temperature invents words; top-k and
# top-p cut off the unlikely tail that produces most of the nonsense.

# %% tags=["nbval-ignore-output"]
prompt_ids = tok.encode(prompt, prepend_bos=True)
for name, kwargs in {"greedy": dict(temperature=0.0), **settings}.items():
    sample = engine.generate_batch(prompt_ids, 40, seed=seed, **kwargs)[0]
    print(f"--- {name}\n{prompt}{tok.decode(sample)}\n")
    assert sample == engine.generate_batch(prompt_ids, 40, seed=seed, **kwargs)[0]  # same seed, same text

# %% [markdown]
# ## 4. The KV cache
#
# Without a cache, generating token n means running the model over all n previous tokens again: the
# cost of a whole generation grows with the square of its length. With a cache, the prompt is processed
# once (**prefill**) and each new token only computes its own query, key and value and attends to the
# stored keys and values (**decode**). In a picture, for a 4-token prompt and 5 new tokens (each row is one
# forward pass; a dark cell is a position whose keys and values that pass computes):

# %%
prompt_len, new = 4, 5
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
for ax, cached_ in zip(axes, (False, True)):
    grid = torch.zeros(new + 1, prompt_len + new)
    for step in range(new + 1):  # pass 0 reads the prompt; pass k reads the prompt + k new tokens
        end = prompt_len + step
        grid[step, (end - 1 if cached_ and step else 0):end] = 2  # computed in this pass
        if cached_ and step:
            grid[step, :end - 1] = 1  # read back from the cache
    ax.imshow(grid, cmap="Blues", vmin=0, vmax=2.4, aspect="auto")
    ax.set_xticks(range(prompt_len + new), [f"p{i}" for i in range(prompt_len)] + [f"n{i}" for i in range(new)])
    ax.set_yticks(range(new + 1), ["prefill"] + [f"decode {k}" for k in range(1, new + 1)])
    work = int((grid == 2).sum())
    ax.set(xlabel="position in the text (p: prompt, n: new)", title=("with a KV cache: each pass computes one "
           "position and reads the rest" if cached_ else "without a cache: every pass recomputes everything")
           + f"\n({work} positions computed in all)")
plt.tight_layout()
plt.show()

# %% [markdown]
# The tokens are the same (greedy, to compare them exactly):

# %%
def generate_uncached(m: torch.nn.Module, prompt_ids: list[int], n: int) -> list[int]:
    ids = torch.tensor([prompt_ids], device=next(m.parameters()).device)
    with torch.no_grad():
        for _ in range(n):
            ids = torch.cat([ids, m(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)  # the whole text again
    return ids[0, len(prompt_ids):].tolist()


new_tokens = max_seq_len - len(prompt_ids)
cached = engine.generate_batch(prompt_ids, new_tokens, temperature=0.0, stop_tokens=set())[0]
uncached = generate_uncached(model, prompt_ids, new_tokens)
print(f"{new_tokens} greedy tokens; same tokens with and without the cache: {cached == uncached}")
if next(model.parameters()).device.type == "cpu":  # float32 on a CPU: the two paths give the same argmax
    assert cached == uncached
else:  # reduced-precision GPU kernels may break a near tie one way in one path and the other way in the other;
    # after the first different token the texts part for good, so only a common start is comparable
    assert cached[:16] == uncached[:16]

# %% [markdown]
# How much faster? Timing needs care: the first call pays one-time costs (memory allocation, kernel selection),
# so each measurement is warmed up and the median of 3 runs is kept. The model is the trained one with its
# context stretched to 512 positions (rotary angles extend; the weights do not depend on length). Without the
# cache the time grows like the square of the length; with it, linearly.

# %% tags=["nbval-ignore-output"]
from dataclasses import replace
from statistics import median

from nanochat_next.model.gpt import GPT

long_model = GPT(replace(model.config, sequence_len=512), init=False).to(next(model.parameters()).device)
long_model.load_state_dict(model.state_dict(), strict=False)  # the rotary tables are longer, the weights equal
long_model.eval()
long_engine = Engine(long_model, tok)


def seconds(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return median(times)


lengths = [64, 128, 256, 512]
start = tok.encode("\n", prepend_bos=True)
timings = {n: (seconds(lambda n=n: long_engine.generate_batch(start, n - len(start), temperature=0.0,
                                                               stop_tokens=set())),
               seconds(lambda n=n: generate_uncached(long_model, start, n - len(start)))) for n in lengths}
plt.figure(figsize=(6, 3))
plt.plot(lengths, [c for c, _ in timings.values()], "o-", label="KV cache")
plt.plot(lengths, [u for _, u in timings.values()], "o-", label="no cache (the whole text each step)")
plt.xlabel("tokens generated")
plt.ylabel("seconds (median of 3)")
plt.legend()
plt.show()
for n, (c, u) in timings.items():
    print(f"{n:4d} tokens: cache {c:.3f} s, no cache {u:.3f} s, {u / c:.1f}x")

# %% [markdown]
# ## 5. Streaming
#
# `Engine.stream_text` yields text as it is generated, for a chat-like display. A token can end in the
# middle of a multi-byte UTF-8 character; the stream holds such bytes back until the character is whole,
# so it never prints a broken character. Here the pieces are separated by `|`:

# %% tags=["nbval-ignore-output"]
pieces = list(engine.stream_text(prompt_ids, 25, temperature=0.8, top_k=40, seed=seed))
print("|".join(pieces))
batch = engine.generate_batch(prompt_ids, 25, temperature=0.8, top_k=40, seed=seed)[0]
assert "".join(pieces) == tok.decode(batch)  # the stream is the same sample, piece by piece

# %% [markdown]
# From the command line, on the model the README's main job writes (`nanochat-next train` saves it in
# `out/tensor/`): `nanochat-next sample --checkpoint out/tensor --prompt $'KING RICHARD:\n' --temperature 0.8
# --top-k 40 --stream`, and `nanochat-next chat --checkpoint out/tensor`. [results/inference.md][inference]
# compares our engine's speed with nanochat's.
#
# [inference]: https://github.com/ricardofrantz/nanochat-next/blob/main/results/inference.md
#
# ## Exercises
#
# Try each one before opening its solution (the hidden cell under it; the tests run every solution).
#
# 1. **Min-p sampling.** Keep only the tokens whose probability is at least `min_p` times the most likely
#    token's, renormalise, draw. Unlike top-p, the cut scales with the model's confidence. Write the distribution
#    it draws from, then a sampler, and check that it never draws a token below the threshold.
# 2. **A repetition penalty.** Before each draw, divide the positive logits (multiply the negative ones) of every
#    token already generated by a penalty > 1. Generate greedily with and without it: count repeated 4-grams.
#
# Both have a cell for your attempt below: fill in the function and run the cell; `check` compares it with a
# reference written another way (min-p in log space; the penalty as one multiplication) on a hand-sized example
# and on this model's logits, and prints the first case where they differ.

# %%
from nanochat_next.exercises import check  # your function vs a reference on each case: prints the first difference


def min_p_in_log_space(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """The reference: p_i >= min_p * p_max  <=>  logit_i >= logit_max + log(min_p); softmax over what is left."""
    cut = logits.float().max(-1, keepdim=True).values + math.log(min_p)
    return logits.float().masked_fill(logits.float() < cut, float("-inf")).softmax(-1)


hand_logits = torch.tensor([2.0, 1.0, 0.0, -1.0])  # probabilities 0.64, 0.24, 0.09, 0.03 (ratios 1, e^-1, e^-2...)
min_p_cases = [(hand_logits, 0.3), (hand_logits, 0.05), (logits, 0.1), (logits, 0.5), (logits / 2, 0.02)]


# Your attempt (exercise 1): replace the body
def min_p_probs(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """The distribution min-p sampling draws from: softmax, zero every probability below min_p x the largest,
    renormalise."""
    probs = logits.float().softmax(-1)
    return probs  # TODO: zero the small ones, renormalise


check(min_p_probs, min_p_in_log_space, min_p_cases)


# %%
def penalty_as_one_product(logits: torch.Tensor, seen: set[int], penalty: float) -> torch.Tensor:
    """The reference: every seen token's logit times penalty^(-sign(logit)) (x 1/penalty if positive, x penalty if
    negative), the others times 1."""
    factor = torch.ones_like(logits)
    ids = torch.tensor(sorted(seen), dtype=torch.long)
    factor[ids] = penalty ** -logits[ids].sign()
    return logits * factor


penalty_cases = [(torch.tensor([2.0, -1.0, 0.5, -3.0]), {0, 1}, 2.0), (logits, set(order[:5].tolist()), 1.3),
                 (logits, set(range(0, tok.vocab_size, 7)), 1.5), (logits, set(), 1.3)]


# Your attempt (exercise 2): replace the body
def penalise(logits: torch.Tensor, seen: set[int], penalty: float) -> torch.Tensor:
    """The logits after the repetition penalty: every token id in ``seen`` divided by ``penalty`` if its logit is
    positive, multiplied by it if negative; the others unchanged. Leave ``logits`` itself as it was."""
    return logits.clone()  # TODO: penalise the seen tokens


check(penalise, penalty_as_one_product, penalty_cases)

# %% tags=["solution", "nbval-ignore-output"] cellView="form" jupyter={"source_hidden": true}
# @title Solution 1: min-p sampling
def min_p_solution(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    probs = logits.float().softmax(-1)  # (..., vocab)
    threshold = min_p * probs.max(-1, keepdim=True).values  # relative to each row's most likely token
    probs = probs.masked_fill(probs < threshold, 0.0)
    return probs / probs.sum(-1, keepdim=True)


def sample_min_p(logits: torch.Tensor, min_p: float, generator: torch.Generator) -> torch.Tensor:
    return torch.multinomial(min_p_solution(logits, min_p), 1, generator=generator).squeeze(-1)  # (B,)


assert check(min_p_solution, min_p_in_log_space, min_p_cases)
assert not check(lambda logits, min_p: logits.float().softmax(-1), min_p_in_log_space, min_p_cases)  # the stub
gen = torch.Generator().manual_seed(seed)
draws = sample_min_p(logits.expand(5000, -1), 0.1, gen)
probs = logits.softmax(-1)
allowed = probs >= 0.1 * probs.max()
print(f"min-p 0.1 keeps {int(allowed.sum())} tokens; drew {len(draws.unique())} distinct ones")
assert allowed[draws].all()

# %% tags=["solution", "nbval-ignore-output"] cellView="form" jupyter={"source_hidden": true}
# @title Solution 2: a repetition penalty
def penalise_solution(logits: torch.Tensor, seen: set[int], penalty: float) -> torch.Tensor:
    out = logits.clone()  # the caller's logits stay as they were
    ids = torch.tensor(sorted(seen), dtype=torch.long, device=logits.device)
    out[ids] = torch.where(out[ids] > 0, out[ids] / penalty, out[ids] * penalty)
    return out


assert check(penalise_solution, penalty_as_one_product, penalty_cases)
assert not check(lambda logits, seen, penalty: logits.clone(), penalty_as_one_product, penalty_cases)  # the stub


@torch.no_grad()
def greedy_with_penalty(prompt_ids: list[int], n: int, penalty: float) -> list[int]:
    ids = list(prompt_ids)
    for _ in range(n):
        logits_ = model(torch.tensor([ids[-max_seq_len:]], device=next(model.parameters()).device))[0, -1].float()
        ids.append(int(penalise_solution(logits_, set(ids[len(prompt_ids):]), penalty).argmax()))
    return ids[len(prompt_ids):]


def repeated_4grams(ids: list[int]) -> int:
    grams = [tuple(ids[i : i + 4]) for i in range(len(ids) - 3)]
    return len(grams) - len(set(grams))


plain, penalised = greedy_with_penalty(prompt_ids, 100, 1.0), greedy_with_penalty(prompt_ids, 100, 1.3)
assert plain == engine.generate_batch(prompt_ids, 100, temperature=0.0, stop_tokens=set())[0]  # penalty 1 = greedy
print(f"repeated 4-grams in 100 greedy tokens: {repeated_4grams(plain)} plain, {repeated_4grams(penalised)} "
      f"with penalty 1.3\n--- plain\n{tok.decode(plain)}\n--- penalised\n{tok.decode(penalised)}")
