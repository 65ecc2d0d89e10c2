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
# # 10 · Reinforcement learning from a checker
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ricardofrantz/nanochat-next/blob/main/notebooks/10_rl.ipynb)
#
# Supervised fine-tuning (notebook 08) shows the model one right reply per question and makes it more likely.
# Reinforcement learning (RL) instead lets the model **try**: it samples several replies, a checker says which
# are right, and the right ones are made more likely, the wrong ones less. No reference reply is needed, only a
# way to tell right from wrong. nanochat's last training stage (its `chat_rl`) does this on GSM8K; here, on a
# 2-core CPU in about two minutes, on the tasks of notebook 08:
#
# 1. a tiny base model and a short SFT, as in notebook 08;
# 2. one **rollout group**: a question, eight sampled replies, their rewards and advantages;
# 3. the REINFORCE loss written out by hand, and checked against the library's training step;
# 4. a short RL run (`nanochat-next rl`): the reward rising, accuracy before and after;
# 5. what RL cannot fix: a question the model never gets right gives no signal.
#
# The command: `nanochat-next rl --base OUT_SFT --mix 'letters:2000,compare:1000' --out DIR`.
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
preset = "auto"  # auto: tiny on a CPU (~2 minutes); on a GPU the cpu bench profile's depth-4 model, longer runs
rl_steps = 30
out_dir = ""  # "" = a fresh temporary directory

# %% [markdown]
# ## 1. A model that can answer, sometimes
#
# RL needs a model that is right *some* of the time: the reward has to vary between samples, or there is
# nothing to compare. So first the pipeline of notebook 08, small: a base model on Shakespeare, then SFT on two
# tasks with checkers: `letters` ("How many p are in apple?", answers 0 to 3 in equal shares) and `compare`
# ("Which number is larger? A. 23 B. 58"). After SFT it answers in the right form and is right on some questions.

# %%
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from nanochat_next.cli.main import main as nanochat_next

gpu = torch.cuda.is_available()
if preset == "auto":
    preset = "gpu" if gpu else "tiny"
size = {"tiny": ["--depth", "4", "--aspect-ratio", "32", "--head-dim", "32", "--max-seq-len", "128",
                 "--vocab-size", "512", "--device-batch-size", "8", "--total-batch-size", "1024", "--no-compile"],
        "gpu": ["--device", "cuda"]}[preset]
base_steps, sft_steps = {"tiny": (300, 300), "gpu": (2000, 1000)}[preset]
device = "cuda" if preset == "gpu" else "cpu"
out = Path(out_dir or tempfile.mkdtemp(prefix="rl-"))
mix = "letters:3000,compare:1000"
print(f"preset {preset}: base {base_steps} steps, SFT {sft_steps} steps, RL {rl_steps} steps, in {out}")

# %% tags=["nbval-ignore-output"]
assert nanochat_next(["train", *size, "--steps", str(base_steps), "--eval-every", "0", "--no-progress",
                      "--seed", "42", "--out", str(out / "base")]) == 0
assert nanochat_next(["sft", "--base", str(out / "base"), "--mix", mix, "--steps", str(sft_steps),
                      "--eval-every", "0", "--no-progress", "--out", str(out / "sft")]) == 0

# %% [markdown]
# ## 2. One rollout group
#
# A question, rendered with the chat template up to `<|assistant_start|>`; eight replies sampled at temperature
# 1 (more varied than greedy decoding: RL needs the variety); the task's checker gives each a reward, 1 or 0.
# The **advantage** of a reply is its reward minus the group's mean reward: a right reply in a group that is
# mostly wrong gets a large push up, a wrong one in a mostly right group a push down, and when all eight agree
# every advantage is 0: nothing to learn from that question, this time.

# %% tags=["nbval-ignore-output"]
from nanochat_next.chat.rl import RLSettings, RolloutStream, advantages
from nanochat_next.chat.tasks import TASKS, default_words
from nanochat_next.model.saving import load_trained

model, tokenizer, _ = load_trained(out / "sft", device)
words = default_words()
questions = TASKS["letters"].examples("train", 40, 0, words)
settings = RLSettings(samples=8, max_new_tokens=4, seed=0)
stream = RolloutStream(questions, tokenizer, settings)
stream.attach(model)
for _ in range(40):  # the first question whose samples disagree
    inputs, targets, adv = next(stream)
    if adv.abs().sum() > 0:
        break
group = stream.last
print(f"question: {group['question']!r}   answer: {group['answer']!r}")
for reply, reward, advantage in zip(group["replies"], group["rewards"], adv.tolist()):
    print(f"  reply {reply!r:12}  reward {reward:.0f}  advantage {advantage:+.3f}")
print("mean reward of the group (pass@1 of these samples):", sum(group["rewards"]) / len(group["rewards"]))
assert abs(float(adv.sum())) < 1e-6, "advantages sum to zero: the group's mean is the baseline"
stream.pop_stats()

# %% [markdown]
# The same group as a picture: each reply's reward (grey), the group's mean (the dashed line: the baseline), and
# the advantage = reward - mean that weighs the reply's tokens in the loss (green pushes its tokens up, red
# down). The bars above and below zero cancel: the update moves probability between replies, not all up.

# %% tags=["nbval-ignore-output"]
rewards = group["rewards"]
fig, ax = plt.subplots(figsize=(11, 2.8))
slots = range(len(rewards))
ax.bar([i - 0.2 for i in slots], rewards, 0.4, color="lightgrey", label="reward (checker: 1 right, 0 wrong)")
ax.bar([i + 0.2 for i in slots], adv.tolist(), 0.4, color=["tab:green" if a > 0 else "tab:red" for a in adv.tolist()],
       label="advantage = reward - group mean")
ax.axhline(sum(rewards) / len(rewards), color="black", ls="--", lw=1, label="group mean reward")
ax.axhline(0, color="black", lw=0.5)
ax.set(xticks=list(slots), xticklabels=[repr(r) for r in group["replies"]], xlabel="sampled reply",
       title=f"one rollout group: {group['question']!r}")
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, not over them
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3. The REINFORCE loss, by hand
#
# The gradient of the expected reward is the expected `advantage x gradient of log p(reply)` (the policy
# gradient theorem): so the loss to minimise is `-sum(advantage x log p(token))` over every sampled token, and
# nanochat divides it by the number of trained tokens in the whole step (token-level, as DAPO does: long and
# short replies weigh per token, not per reply). Prompt tokens and padding are not trained (`targets == -1`).
# Below, that written out on the group above, then the library's training step on the same batch: the same
# number.

# %%
from dataclasses import replace

from nanochat_next.chat.rl import rl_job, rl_run
from nanochat_next.train.loop import train_step
from nanochat_next.train.processes import Processes

with torch.no_grad():
    logits = model(inputs.to(device)).float()
    log_probs = torch.log_softmax(logits, dim=-1)  # (samples, T, vocab)
    trained = targets >= 0
    token_log_p = log_probs.gather(-1, targets.clamp_min(0).to(device).unsqueeze(-1)).squeeze(-1).cpu()
    by_hand = -(token_log_p * trained * adv[:, None]).sum() / trained.sum()
print(f"loss by hand: {by_hand.item():+.6f} over {int(trained.sum())} trained tokens")

config = json.loads((out / "sft" / "model" / "config.json").read_text())
run = replace(rl_run(config["run"], RLSettings(out=str(out / "check"), questions=1, samples=8)), dtype="float32",
              device=device)
job = rl_job(run, tokenizer, model.state_dict(), questions, questions, settings)(
    Processes(0, 0, 1, torch.device(device)), None)
job.loader = iter([(inputs, targets, adv)])  # the very group above
library = train_step(job, 0, 1.0)
print(f"library step: {library.item():+.6f}")
assert abs(library.item() - by_hand.item()) < 1e-5  # float32, the same sums in another order

# %% [markdown]
# ## 4. RL, and what it changes
#
# `nanochat-next rl` repeats this: each step samples 8 questions x 8 replies from the current model (on-policy),
# weighs every reply by its advantage, takes one optimizer step at 5% of nanochat's learning rates, decaying to
# 0. `metrics.jsonl` records per step the mean reward and pass@8 (the share of questions with at least one
# right sample). Before and after, `chat-eval` measures greedy accuracy on held-out questions, beside the
# majority baseline: what always giving the most common answer would score.

# %%
from nanochat_next.chat.evaluate import evaluate_tasks

before = evaluate_tasks(model, tokenizer, ["letters", "compare"], count=100, seed=0, words=words)

# %% tags=["nbval-ignore-output"]
assert nanochat_next(["rl", "--base", str(out / "sft"), "--mix", mix, "--steps", str(rl_steps), "--samples", "8",
                      "--questions", "8", "--max-new-tokens", "4", "--eval-every", "0", "--no-progress",
                      "--out", str(out / "rl")]) == 0

# %%
rl_model, _, _ = load_trained(out / "rl", device)
after = evaluate_tasks(rl_model, tokenizer, ["letters", "compare"], count=100, seed=0, words=words)
steps = [m for m in map(json.loads, (out / "rl" / "metrics.jsonl").read_text().splitlines()) if "reward" in m]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
ax1.plot([m["reward"] for m in steps], label="mean reward (pass@1 of the samples)")
ax1.plot([m["pass@8"] for m in steps], label="pass@8")
ax1.set(xlabel="RL step", ylabel="share of samples / questions right", ylim=(0, 1.05), title="rollouts")
ax1.legend()
names = list(after)
x = range(len(names))
ax2.bar([i - 0.27 for i in x], [before[n]["accuracy"] for n in names], 0.27, label="after SFT")
ax2.bar([i for i in x], [after[n]["accuracy"] for n in names], 0.27, label="after SFT + RL")
ax2.bar([i + 0.27 for i in x], [after[n]["majority"] for n in names], 0.27, label="majority baseline")
ax2.set(xticks=list(x), xticklabels=names, ylabel="accuracy on held-out questions", ylim=(0, 1.05),
        title="greedy replies, 100 questions each")
ax2.legend()
fig.tight_layout()
assert all(0 <= m["reward"] <= 1 for m in steps) and len(steps) == rl_steps

# %% tags=["nbval-ignore-output"]
for name in names:
    print(f"{name:8s} after SFT {before[name]['accuracy']:.2f} -> after RL {after[name]['accuracy']:.2f} "
          f"(majority baseline {after[name]['majority']:.2f})")
print("groups with no signal (all samples tied), per step:", [m["zero_groups"] for m in steps])

# %% [markdown]
# On such a small budget the change is small and noisy (results/rl_cpu.md measures it over seeds, with a
# p-value): what this notebook shows is the mechanism. Read the last line: a group that ties (all right, or all
# wrong) contributes nothing. Which brings us to the limit.
#
# ## 5. What RL cannot fix
#
# If the model never gets a question right, every sample's reward is 0, every advantage is 0, and the loss is
# 0: RL has nothing to reinforce. `arith` after this SFT (never trained on it) is such a task: see how many of
# its groups tie at 0. RL sharpens what the model can already sometimes do; teaching a new skill is SFT's job
# (or a much larger model and budget, where lucky guesses become frequent enough to learn from).

# %% tags=["nbval-ignore-output"]
arith = TASKS["arith"].examples("train", 16, 0, words)
probe = RolloutStream(arith, tokenizer, RLSettings(samples=8, max_new_tokens=6, seed=0))
probe.attach(rl_model)
for _ in range(len(arith)):
    next(probe)
stats = probe.pop_stats()
print(f"arith: {stats['zero_groups']} of {len(arith)} groups tied; mean reward {stats['reward']:.3f}")
assert stats["zero_groups"] >= len(arith) // 2  # most questions give no signal at all

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell for your attempt: write the function, run the cell, and the checker compares it with
# the library on several inputs and says where it differs. The solutions follow, hidden (the tests run both).
#
# 1. **Advantages.** Write `my_advantages(rewards)` for one group: each reward minus the group's mean. What do
#    eight samples that are all right give?
# 2. **Token-level vs sequence-level.** nanochat divides the summed loss by the number of trained tokens in the
#    step. Write `my_normaliser(targets)` returning that count for a batch of targets (-1 = not trained), and
#    think about what changes if each reply were averaged on its own first (short replies would weigh more).

# %%
from nanochat_next.exercises import check  # your function vs the library's on each case: prints the first difference

reward_cases = [torch.tensor(r) for r in ([1.0, 0.0, 0.0, 1.0], [1.0] * 8, [0.0, 0.0, 0.0, 1.0], [0.0, 1.0])]
target_cases = [torch.tensor([[-1, -1, 5, 7], [-1, 3, -1, -1]]), torch.full((2, 3), -1), torch.tensor([[1, 2, 3]])]


def trained_tokens(targets: torch.Tensor) -> torch.Tensor:
    return (targets >= 0).sum()


# %%
# Your attempt (exercise 1): replace the body
def my_advantages(rewards: torch.Tensor) -> torch.Tensor:
    return rewards  # TODO: the reward minus the group's mean reward


check(my_advantages, advantages, reward_cases)  # prints where your function differs


# %%
# Your attempt (exercise 2): replace the body
def my_normaliser(targets: torch.Tensor) -> torch.Tensor:
    return torch.tensor(targets.numel())  # TODO: count only the trained tokens


check(my_normaliser, trained_tokens, target_cases)  # prints where your function differs

# %% tags=["solution", "nbval-ignore-output"] cellView="form" jupyter={"source_hidden": true}
# @title Solution 1: advantages
def solution_advantages(rewards: torch.Tensor) -> torch.Tensor:
    return rewards - rewards.mean()


assert check(solution_advantages, advantages, reward_cases)
assert not check(lambda r: r, advantages, reward_cases)  # the untouched attempt is caught
print("eight right samples:", solution_advantages(torch.ones(8)).tolist(), "-> nothing to learn")

# %% tags=["solution", "nbval-ignore-output"] cellView="form" jupyter={"source_hidden": true}
# @title Solution 2: token-level normalisation
def solution_normaliser(targets: torch.Tensor) -> torch.Tensor:
    return (targets >= 0).sum()


assert check(solution_normaliser, trained_tokens, target_cases)
assert not check(lambda t: torch.tensor(t.numel()), trained_tokens, target_cases)
# per reply first, then averaged: a 2-token reply would count as much as a 20-token one, so each of its tokens
# would weigh 10x more; token-level normalisation weighs every sampled token the same
