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
# # nanochat-next on Colab: the benchmark scorecard on this GPU
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ricardofrantz/nanochat-next/blob/main/colab/benchmark_colab.ipynb)
#
# One click: *Runtime → Change runtime type → GPU*, then *Runtime → Run all*. This notebook
#
# 1. installs nanochat-next (and nanochat's few extra dependencies),
# 2. checks the GPU and picks its profile: T4 → `t4` (fp16 + GradScaler: a T4 has no native bf16),
#    A100 → `a100`, H100 → `h100` (bf16); no GPU → `smoke` on the CPU,
# 3. clones karpathy/nanochat at the pinned commit,
# 4. runs `notebooks/06_benchmark.ipynb` with papermill for that profile (nanochat and ours on the same
#    data, tokenizer, config, seed and GPU), and
# 5. saves the executed notebook and the `bench_<profile>_<UTC>.json/.md` scorecard to Google Drive (or
#    offers them as a download).
#
# GPU profiles train on nanochat's FineWeb-EDU shards (downloaded once, a few hundred MB) and take minutes.
# To run several profiles or notebooks in a row, use `colab/run_batch.py` (see the last cell).

# %% tags=["parameters"]
profile = "auto"  # auto = by GPU (see above), or smoke | cpu | t4 | a100 | h100
repo_ref = "main"  # the nanochat-next branch or commit to benchmark
nanochat_ref = "2f096867244e3d00a50284d1be05fa3f5dcfb84b"  # nanochat's pinned commit
save_to = "drive"  # drive | download | local
steps = 0  # 0 = the profile's number of steps

# %%
import os
import subprocess
import sys
from pathlib import Path

REPO_URL = "https://github.com/ricardofrantz/nanochat-next"
IN_COLAB = "google.colab" in sys.modules
root = Path("/content") if IN_COLAB else Path.cwd()
repo = root / "nanochat-next"
if IN_COLAB:  # install this repository at repo_ref, plus papermill and what nanochat's scripts import
    if not repo.exists():
        subprocess.run(["git", "clone", "--quiet", REPO_URL, str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "checkout", "--quiet", repo_ref], check=True)
    # a plain (not editable) install: importable in this kernel without a restart
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", str(repo), "papermill"], check=True)
    from nanochat_next.bench.baseline import NANOCHAT_DEPENDENCIES

    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *NANOCHAT_DEPENDENCIES], check=True)
    os.environ["NANOCHAT_NEXT_INSTALLED"] = repo_ref  # the notebooks it runs keep this version

# %%
import torch

from nanochat_next.bench.baseline import clone_nanochat
from nanochat_next.bench.profiles import PROFILES, profile_for_gpu
from nanochat_next.runtime import choose_dtype

if torch.cuda.is_available():
    gpu, capability = torch.cuda.get_device_name(), torch.cuda.get_device_capability()
    choice = choose_dtype("cuda")
    print(f"GPU: {gpu} (compute capability {capability[0]}.{capability[1]}); our default dtype {choice.name}"
          f"{' + GradScaler' if choice.grad_scaler else ''} ({choice.reason})")
else:
    gpu, capability = None, None
    print("no GPU: Runtime > Change runtime type > GPU. Running the smoke profile on the CPU instead.")
chosen = profile_for_gpu(gpu, capability) if profile == "auto" else profile
print(f"profile {chosen}: {PROFILES[chosen].description}")

# %%
nanochat = clone_nanochat(nanochat_ref, root / "nanochat-checkouts")
print(f"nanochat at {nanochat_ref[:12]}: {nanochat}")

# %%
import datetime as dt

import papermill as pm

if save_to == "drive" and IN_COLAB:
    from google.colab import drive

    drive.mount("/content/drive")
    out_dir = Path("/content/drive/MyDrive/nanochat-next/bench")
else:
    out_dir = root / "bench_results"
out_dir.mkdir(parents=True, exist_ok=True)
stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
executed = out_dir / f"06_benchmark_{chosen}_{stamp}.ipynb"
pm.execute_notebook(str(repo / "notebooks" / "06_benchmark.ipynb"), str(executed), kernel_name="python3",
                    cwd=str(repo), parameters=dict(profile=chosen, nanochat_path=str(nanochat), out_dir=str(out_dir),
                                                   steps=steps))
print(f"executed notebook: {executed}")
for path in sorted(out_dir.glob(f"bench_{chosen}_*.md"))[-1:]:
    print(path.read_text())

# %%
if save_to == "download" and IN_COLAB:
    import shutil

    from google.colab import files

    files.download(shutil.make_archive(str(root / f"bench_{chosen}_{stamp}"), "zip", out_dir))

# %% [markdown]
# ## Several runs in a row
#
# `colab/run_batch.py` runs a list of profiles and notebooks one after the other with papermill and keeps
# going past a failure, e.g. in a cell:
#
# ```
# !python /content/nanochat-next/colab/run_batch.py --out /content/drive/MyDrive/nanochat-next/batch \
#     --profiles t4 smoke --nanochat /content/nanochat-checkouts/nanochat-2f096867244e3d00a50284d1be05fa3f5dcfb84b \
#     --notebooks 04b_training 05_sampling -p device=cuda
# ```
#
# Commit the `bench_*.json/.md` it writes into `results/` to cite a GPU number in the README: numbers
# for a GPU exist in this project only as artifacts from a real run on it.
