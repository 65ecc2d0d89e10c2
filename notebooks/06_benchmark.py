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
# # 06 · Benchmark: ours vs nanochat, one scorecard
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ricardofrantz/nanochat-next/blob/main/notebooks/06_benchmark.ipynb)
#
# A claim such as "as good as nanochat, and faster" means something only if both sides ran on the **same
# data, tokenizer, config, seed and device**, and anyone can run it again. This notebook runs the project's
# one benchmark harness (the same code as `nanochat-next bench`):
#
# 1. one dataset in nanochat's parquet layout and one tokenizer (nanochat trains it; ours must come out
#    identical, or nothing is compared);
# 2. nanochat at its pinned commit and ours, trained with one profile's config;
# 3. ours with our `next` recipe on every seed of the profile (their spread is the noise floor for reading
#    quality differences), once more on the first seed (the losses must be identical), and our copy of
#    nanochat's recipe on the same seeds: a claim of "better" must beat that with p < 0.01, not one lucky seed;
# 4. a scorecard with three rows (quality, speed, reproducibility) and the thresholds that decided them,
#    written to `bench_<profile>_<UTC>.json` and `.md`.
#
# Without a nanochat checkout (and offline, as in CI) ours runs alone and the scorecard says
# **baseline: not run**: a missing baseline is never a pass. On Colab, `colab/benchmark_colab.ipynb` picks
# the GPU's profile, clones nanochat and runs this notebook with papermill.

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
profile = "smoke"  # smoke | cpu | t4 | a100 | h100 (nanochat_next.bench.PROFILES)
device = ""  # "" = the profile's own device
nanochat_path = ""  # a nanochat checkout; "" = clone nanochat_ref into the cache (needs internet once)
nanochat_ref = "2f096867244e3d00a50284d1be05fa3f5dcfb84b"  # the pinned ref; "" = run ours alone
nanochat_python = ""  # the Python with nanochat's dependencies; "" = this kernel's
out_dir = ""  # where the .json/.md go; "" = a fresh temporary directory
steps = 0  # 0 = the profile's number of steps

# %% [markdown]
# ## The profile
#
# Profiles are rows of one table (`nanochat_next.bench.PROFILES`): data, not code paths. Every field is
# shared by both sides; nanochat's `base_train` always compiles and on CUDA always uses bf16 autocast.

# %%
import tempfile

import matplotlib.pyplot as plt

from nanochat_next.bench.harness import BenchOptions, run_bench
from nanochat_next.bench.profiles import PROFILES
from nanochat_next.bench.scorecard import scorecard_table

chosen = PROFILES[profile]
print(f"{chosen.name}: {chosen.description}")
print("the run config both sides train with (a TensorRun, as `nanochat-next train --config` takes):")
for name in ("depth", "max_seq_len", "device_batch_size", "total_batch_size", "steps", "eval_every", "eval_tokens",
             "vocab_size", "device", "dtype", "compile"):
    print(f"{name:>22}: {getattr(chosen.run, name)}")
print(f"{'seeds':>22}: {chosen.seeds}; target bpb {chosen.target_bpb}; quality margin {chosen.quality_margin}")

# %% [markdown]
# ## Run it
#
# Each training run is its own process (its peak memory is measured by the kernel); logs go to a work
# directory that is deleted on success. The smoke profile takes about a minute on a 2-core CPU.

# %%
# NBVAL_IGNORE_OUTPUT
out = out_dir or tempfile.mkdtemp(prefix="bench-")
result = run_bench(BenchOptions(profile=profile, nanochat=nanochat_path or None, nanochat_ref=nanochat_ref or None,
                                nanochat_python=nanochat_python or None, device=device or None, out=out,
                                steps=steps or None, progress=False))
print(f"wrote {result['artifacts']['json']}\n  and {result['artifacts']['md']}")

# %% [markdown]
# ## The scorecard
#
# - **quality**: the mean of our seeds' final validation bits per byte at least the profile's margin below
#   nanochat's (a negative margin, as in `smoke`, allows parity within it); a positive margin also needs the
#   paired t-test against our nanochat-recipe runs at p < 0.01;
# - **speed**: our median tok/s (after warm-up) at least nanochat's, and nanochat's time to its own final bpb
#   over ours (the median of our seeds) at least the profile's ratio;
# - **reproducibility**: the same seed gives identical losses, the metadata is complete (commits, dirty
#   flags, versions, device, dtype, config, seeds, command line) and our work tree was clean.

# %%
# NBVAL_IGNORE_OUTPUT
print(scorecard_table(result["scorecard"]))
base = result["baseline"]
print(f"\nbaseline {base['status']}" + (f": {base['reason']}" if base["status"] != "run" else f" at {base['commit']}"))

# %%
rows = {r["row"]: r for r in result["scorecard"]}
assert list(rows) == ["quality", "speed", "reproducibility"]
if base["status"] != "run":  # no baseline, no verdict on quality or speed
    assert rows["quality"]["status"] == rows["speed"]["status"] == f"baseline: {base['status']}"
repro = result["reproducibility"]
assert repro["identical_rerun"], repro
print("rows:", ", ".join(rows), "| identical reruns:", repro["identical_rerun"],
      "| missing metadata:", repro["missing_metadata"] or "none")

# %% [markdown]
# ## Curves
#
# Training loss (nanochat logs an exponential moving average; ours is smoothed the same way here) and
# validation bpb against steps and against training time (evals excluded, compilation counted at the
# steady step time), and the median tok/s of every run with its min-max range.

# %%
runs = {key: run for key, run in result["runs"].items() if run is not None}
seeds = result["seeds"]
labels = {"nanochat": "nanochat", "ours": f"ours seed {seeds[0]}", "ours_rerun": f"ours seed {seeds[0]} again"}
styles = {"nanochat": dict(color="black"), "ours": dict(color="C0"), "ours_rerun": dict(color="C0", ls=":")}
for i, seed in enumerate(seeds):
    labels[f"ours_seed{i + 1}"], styles[f"ours_seed{i + 1}"] = f"ours seed {seed}", dict(color="C0", alpha=0.6)
    labels[f"nanochat_recipe_seed{i + 1}"] = f"ours, nanochat recipe, seed {seed}"
    styles[f"nanochat_recipe_seed{i + 1}"] = dict(color="C1", alpha=0.6)
dots = dict(marker="o", ms=3)
fig, axes = plt.subplots(2, 2, figsize=(11, 7))
for key, run in runs.items():
    axes[0, 0].plot(run["smooth_losses"], label=labels[key], **styles[key])
    axes[0, 1].plot([e["step"] for e in run["evals"]], [e["val_bpb"] for e in run["evals"]], label=labels[key],
                    **dots, **styles[key])
    axes[1, 0].plot([e["train_time_s"] for e in run["evals"]], [e["val_bpb"] for e in run["evals"]],
                    label=labels[key], **dots, **styles[key])
if result["target_bpb"] is not None:
    for ax in (axes[0, 1], axes[1, 0]):
        ax.axhline(result["target_bpb"], color="gray", lw=0.8, ls="--", label="target bpb")
names = list(runs)
medians = [runs[k]["tok_per_s"]["median"] for k in names]
spread = [[m - runs[k]["tok_per_s"]["min"] for k, m in zip(names, medians)],
          [runs[k]["tok_per_s"]["max"] - m for k, m in zip(names, medians)]]
axes[1, 1].bar([labels[k] for k in names], medians, yerr=spread, capsize=4,
               color=[styles[k]["color"] for k in names])
axes[1, 1].tick_params(axis="x", rotation=20)
for ax, (title, xlabel, ylabel) in zip(axes.flat, [("training loss (EMA)", "step", "loss"),
                                                    ("validation", "step", "val bpb"),
                                                    ("validation vs time", "training seconds", "val bpb"),
                                                    ("throughput (min-max)", "", "tok/s")]):
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if ax is not axes[1, 1]:
        ax.legend(fontsize=8)
fig.suptitle(f"profile {profile}: {result['config']['device']}, ours {result['config']['our_dtype']}")
fig.tight_layout()

# %% [markdown]
# ## Reading and reproducing it
#
# - The `.md` is for people; the `.json` holds every number, the thresholds and the metadata, and
#   [results/schema.json][schema] validates it (a file claiming a pass without a baseline is rejected).
# - Re-run the same thing from a shell: `nanochat-next bench --profile smoke --nanochat PATH` (with the
#   command line recorded in the artifact's metadata). Compare ratios measured in one run, not absolute
#   numbers across machines.
# - [results/README.md][results-readme] explains every artifact in [results/][results].
#
# [schema]: https://github.com/ricardofrantz/nanochat-next/blob/main/results/schema.json
# [results-readme]: https://github.com/ricardofrantz/nanochat-next/blob/main/results/README.md
# [results]: https://github.com/ricardofrantz/nanochat-next/tree/main/results
