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
# # 08 · From base model to assistant: chat template, SFT, evaluation
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ricardofrantz/nanochat-next/blob/main/notebooks/08_chat.ipynb)
#
# A base model continues text. An assistant answers. The difference is a second, short training run on
# **conversations** (supervised fine-tuning, SFT), in which the model sees a user's question and learns to
# produce the assistant's reply, and only the reply. This notebook, on a 2-core CPU in about a minute:
#
# 1. trains a tiny base model on Shakespeare (as notebook 04, smaller);
# 2. renders a conversation with nanochat's chat template and shows which tokens are trained (the mask);
# 3. generates tasks offline (spell a word, add two numbers, say who you are) with a checker for each answer;
# 4. measures the base model's accuracy on held-out questions, fine-tunes it, measures again;
# 5. talks to it.
#
# The commands: `nanochat-next sft --base DIR --mix 'spelling:2000,arith:2000'`, `nanochat-next chat-eval`,
# `nanochat-next serve` (a web chat).
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
preset = "auto"  # auto: tiny on a CPU (~1 minute); on a GPU the cpu bench profile's depth-4 model, longer runs
out_dir = ""  # "" = a fresh temporary directory

# %% [markdown]
# ## 1. A base model
#
# The same `nanochat-next train` as notebook 04 (run in this process), here a small model: 4 layers of width
# 128, a 512-token vocabulary, 128-token context, 300 steps. It learns to continue Shakespeare, nothing else.

# %%
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
base_steps, sft_steps = {"tiny": (300, 400), "gpu": (2000, 1500)}[preset]
out = Path(out_dir or tempfile.mkdtemp(prefix="chat-"))
print(f"preset {preset}: base {base_steps} steps, SFT {sft_steps} steps, in {out}")

# %% tags=["nbval-ignore-output"]
assert nanochat_next(["train", *size, "--steps", str(base_steps), "--eval-every", "0", "--no-progress",
                      "--seed", "42", "--out", str(out / "base")]) == 0

# %% tags=["nbval-ignore-output"]
from nanochat_next.infer.engine import Engine
from nanochat_next.model.saving import load_trained

device = "cuda" if preset == "gpu" else "cpu"  # evaluate and chat where it trained
base, tokenizer, _ = load_trained(out / "base", device)
prompt = tokenizer.encode("ROMEO:\n", prepend_bos=True)
continuation = tokenizer.decode(Engine(base, tokenizer).generate_batch(prompt, 40, temperature=0.0)[0])
print(continuation)  # the words depend on how this CPU rounds; that it continues the text does not
assert len(continuation) > 20

# %% [markdown]
# ## 2. A conversation as tokens, and what is trained
#
# nanochat's template wraps every turn in special tokens: `<|user_start|> ... <|user_end|>` and
# `<|assistant_start|> ... <|assistant_end|>`, after one `<|bos|>`. The **mask** says which tokens the loss
# counts: the assistant's reply and its `<|assistant_end|>` (the model must learn to stop), never the user's
# words (the model should not learn to imitate the user) nor the template around them.

# %%
from nanochat_next.tokenizer.chat_template import render_conversation

conversation = {"messages": [{"role": "user", "content": "Spell the word rose"},
                             {"role": "assistant", "content": "r-o-s-e"}]}
ids, mask = render_conversation(conversation, tokenizer)
for token, trained in zip(ids, mask):
    print(f"{'TRAIN' if trained else '     '}  {token:4d}  {tokenizer.decode([token])!r}")
assert sum(mask) == len(tokenizer.encode("r-o-s-e")) + 1  # the reply + <|assistant_end|>

# %% [markdown]
# The same row as a picture: what the model reads (every token) and what the loss counts (green). In training,
# several conversations are packed one after another into each row of the batch, each with its own mask.

# %%
fig, ax = plt.subplots(figsize=(11, 1.6))
for i, (token, trained) in enumerate(zip(ids, mask)):
    ax.add_patch(plt.Rectangle((i, 0), 0.95, 1, fc="#9fd89f" if trained else "#e6e6e6", ec="black", lw=0.5))
    text = tokenizer.decode([token]).replace(" ", "␣").replace("<|", "<").replace("|>", ">").replace("_", " ")
    ax.text(i + 0.475, 0.5, text, ha="center", va="center", fontsize=7, rotation=90 if len(text) > 3 else 0)
ax.add_patch(plt.Rectangle((0, 0), 0, 0, fc="#9fd89f", label="trained: in the loss"))
ax.add_patch(plt.Rectangle((0, 0), 0, 0, fc="#e6e6e6", label="read, not trained"))
ax.set(xlim=(0, len(ids)), ylim=(0, 1), title="one conversation as the model sees it, and the SFT loss mask")
ax.axis("off")
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.05), ncol=2, fontsize=8, frameon=False)
plt.show()

# %% [markdown]
# ## 3. Tasks with answers we can check
#
# Real SFT mixes general conversations (nanochat uses SmolTalk) with tasks that teach a skill. Here every
# conversation is generated offline from a seed, with a known answer and a checker: `spelling` (spell a word
# letter by letter), `arith` (add or subtract two numbers below 100), `identity` (say who you are). A question
# belongs to the train or the test split by a hash of its key, so the test questions are never trained on.

# %%
from nanochat_next.chat.tasks import TASKS, default_words, split_of

words = default_words()
for name in ("spelling", "arith", "identity"):
    example = TASKS[name].examples("train", 1, 0, words)[0]
    print(f"{name:9s} user: {example['messages'][0]['content']!r:34} assistant: {example['answer']!r}")
test_questions = {e["messages"][0]["content"] for e in TASKS["arith"].examples("test", 200, 0, words)}
train_questions = {e["messages"][0]["content"] for e in TASKS["arith"].examples("train", 2000, 0, words)}
print("test questions also in the training set:", len(test_questions & train_questions))
assert split_of("rose") == split_of("rose")

# %% [markdown]
# ## 4. Accuracy before and after SFT
#
# `chat-eval` renders each held-out question up to `<|assistant_start|>`, lets the model reply greedily until
# `<|assistant_end|>`, and runs the task's checker. The base model has never seen the template: it cannot do
# any of this. Then SFT: nanochat's recipe (the base weights, Muon + AdamW at nanochat's SFT learning rates,
# flat then decaying to 0), trained on the assistant tokens only.
#
# An accuracy means something only above what a *constant* reply scores on the same questions (`majority`, the
# dashed line in the chart): for spelling and arith that is 0 (every answer differs), but half of the identity
# questions are not about the assistant, so a model that never names itself already scores 0.50 there. The base
# model's 0.50 on identity is that, not knowledge.

# %%
from nanochat_next.chat.evaluate import evaluate_tasks

tasks = ["spelling", "arith", "identity"]
before = evaluate_tasks(base, tokenizer, tasks, count=50, seed=0, words=words)
print({name: r["accuracy"] for name, r in before.items()})

# %% tags=["nbval-ignore-output"]
mix = "spelling:3000,arith:3000,identity:300"
assert nanochat_next(["sft", "--base", str(out / "base"), "--mix", mix, "--steps", str(sft_steps),
                      "--eval-every", str(sft_steps // 4), "--no-progress", "--out", str(out / "sft")]) == 0

# %%
import json

sft, _, _ = load_trained(out / "sft", device)
after = evaluate_tasks(sft, tokenizer, tasks, count=50, seed=0, words=words)
metrics = [json.loads(line) for line in (out / "sft" / "metrics.jsonl").read_text().splitlines()]
losses = [m["loss"] for m in metrics if "loss" in m]
assert sum(losses[-20:]) / 20 < 0.5 * sum(losses[:5]) / 5  # the loss on the assistant's tokens fell
assert after["identity"]["accuracy"] > before["identity"]["accuracy"]
assert sum(r["accuracy"] for r in after.values()) > sum(r["accuracy"] for r in before.values())

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
ax1.plot(losses)
ax1.set(xlabel="SFT step", ylabel="loss (assistant tokens)", title="fine-tuning", yscale="log")
x = range(len(tasks))
ax2.bar([i - 0.2 for i in x], [before[t]["accuracy"] for t in tasks], 0.4, label="base model")
ax2.bar([i + 0.2 for i in x], [after[t]["accuracy"] for t in tasks], 0.4, label="after SFT")
for i, t in enumerate(tasks):  # the best a constant reply scores on the same questions: accuracy must beat it
    ax2.hlines(after[t]["majority"], i - 0.45, i + 0.45, colors="black", linestyles="dashed",
               label="best constant reply" if i == 0 else None)
ax2.set(xticks=list(x), xticklabels=tasks, ylabel="accuracy on held-out questions", ylim=(0, 1.05))
ax2.legend()
fig.tight_layout()

# %% tags=["nbval-ignore-output"]
for name in tasks:
    print(f"{name:9s} before {before[name]['accuracy']:.2f} -> after {after[name]['accuracy']:.2f} "
          f"(a constant reply: {after[name]['majority']:.2f})")
    kept = after[name]["samples"]  # the first replies chat-eval keeps: one it got right and one it got wrong
    for example in [next((e for e in kept if e["correct"] is ok), None) for ok in (True, False)]:
        if example:
            print(f"    {'right' if example['correct'] else 'wrong'}: {example['question']!r} -> {example['reply']!r}"
                  + ("" if example["correct"] else f" (answer {example['answer']!r})"))

# %% [markdown]
# How identity is scored: the reply must name nanochat-next exactly when the question asks who it is. On a
# question that is not about the assistant any reply without the name counts as right ("Is the sun hot?" ->
# "No." scores: the checker does not judge facts), which is why a constant reply already gets 0.50 there.
#
# ## 5. Talk to it
#
# The chat loop: render the conversation so far, append `<|assistant_start|>`, generate until
# `<|assistant_end|>`. (`nanochat-next chat --checkpoint DIR` in a terminal; `nanochat-next serve --checkpoint
# DIR` for the web page.) What to expect, from the table above: it learned the *form* of all three tasks, but
# the skill of two. Spelling and its name work; arithmetic it answers with a plausible number that is almost
# never the sum (a 1M-parameter model after 400 steps has not learned to add; notebook 10's RL needs a task it
# gets right sometimes). And off-task it does not babble: a question it was not taught gets the answer it was
# taught most often for questions, its name. SFT taught it to reply, not to understand.

# %% tags=["nbval-ignore-output"]
from nanochat_next.tokenizer.chat_template import render_for_reply

engine = Engine(sft, tokenizer)
for question in ["Who are you?", "What is 12 + 30?", "Spell the word king", "How are you today?"]:
    reply_ids = engine.generate_batch(render_for_reply({"messages": [{"role": "user", "content": question}]},
                                                       tokenizer), 40, temperature=0.0)[0]
    print(f"you> {question}\nbot> {tokenizer.decode(reply_ids)}\n")
assert "nanochat-next" in tokenizer.decode(engine.generate_batch(
    render_for_reply({"messages": [{"role": "user", "content": "Who are you?"}]}, tokenizer), 40,
    temperature=0.0)[0])

# %% [markdown]
# ## What to try
#
# - `--train-on all` (nanochat 2f09686 trains every token of the conversation): does the user's text in the
#   loss help or hurt the tasks?
# - More SFT steps, or a larger base (`preset="gpu"` on Colab): which task improves first, and why is
#   spelling hard for a model that sees tokens, not letters?
# - Add your own conversations: a JSONL file of `{"messages": [...]}` lines in `--mix`.
#
# ## Exercises
#
# Try each one before opening its solution (the hidden cell under it; the tests run every solution).
#
# 1. **Your own data.** Write two conversations to a `.jsonl` file (one JSON object per line, `{"messages":
#    [...]}`), one of them with two user/assistant exchanges; read them back with `read_conversations` and count
#    the trained tokens of each. Then write a broken line (a conversation that ends with the user) and read the
#    error message. (`nanochat-next sft --mix 'your.jsonl'` trains on such a file.)
# 2. **Why is spelling hard?** Count the tokens of a few words and of their spelled-out answers. How many letters
#    does one token of the word hide, that the model must have memorised to spell it?
#
# Each exercise has a cell for your attempt. Exercise 1: count the tokens SFT trains on in a conversation from the
# tokenizer alone (which tokens does the loss mask keep?); `check` compares your count with the mask the library
# renders, on conversations of one, two and three exchanges. Exercise 2: the number of tokens of a word's
# spelled-out answer, from the tokenizer alone; `check` compares it with the reply the `spelling` task trains on
# (its loss mask, less the end token). Each prints the first case where they differ.

# %%
from nanochat_next.exercises import check  # your function vs the library's on each case: prints the first difference


def library_count(conversation: dict) -> int:
    """The library's answer: render the conversation and add up its loss mask."""
    return sum(render_conversation(conversation, tokenizer)[1])


def conversation_of(*turns: str) -> dict:
    return {"messages": [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(turns)]}


count_cases = [conversation_of("Who wrote Hamlet?", "Shakespeare."),
               conversation_of("Hi", "Hello!", "Spell the word rose", "r-o-s-e"),
               conversation_of("What is 2 + 3?", "5", "And 10 + 4?", "14", "Thanks", "You are welcome.")]


# Your attempt (exercise 1): replace the body
def trained_tokens(conversation: dict) -> int:
    """How many of the conversation's tokens the SFT loss trains on, counted with tokenizer.encode
    (conversation["messages"] is a list of {"role": "user" or "assistant", "content": text})."""
    return 0  # TODO: count from the assistant's replies


check(trained_tokens, library_count, count_cases)


# %%
import random

from nanochat_next.chat.tasks import conversation as task_conversation
from nanochat_next.chat.tasks import make_spelling


def library_answer_tokens(word: str) -> int:
    """The spelling task's example for this word, rendered: the tokens of the reply the loss trains on."""
    _, question, answer = make_spelling(random.Random(0), [word], 0)
    return sum(render_conversation(task_conversation("spelling", question, answer), tokenizer)[1]) - 1  # no end token


spelling_cases = ["king", "queen", "thou", "gentleman"]


# Your attempt (exercise 2): replace the body
def answer_tokens(word: str) -> int:
    """How many tokens the spelled-out answer to "Spell the word <word>" takes (tokenizer.encode)."""
    return len(tokenizer.encode(word))  # TODO: the tokens of the answer, not of the word


check(answer_tokens, library_answer_tokens, spelling_cases)

# %% tags=["solution", "nbval-ignore-output"] cellView="form" jupyter={"source_hidden": true}
# @title Solution 1: your own data
from nanochat_next.chat.conversations import read_conversations, write_conversations
from nanochat_next.errors import UserError

mine = [{"messages": [{"role": "user", "content": "Who wrote Hamlet?"},
                      {"role": "assistant", "content": "Shakespeare."}]},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                      {"role": "user", "content": "Spell the word rose"}, {"role": "assistant", "content": "r-o-s-e"}]}]
path = write_conversations(out / "mine.jsonl", mine)
for conversation in read_conversations(path):
    ids, mask = render_conversation(conversation, tokenizer)
    print(f"{len(ids)} tokens, {sum(mask)} trained (every assistant reply + its end token)")


def trained_by_hand(conversation: dict) -> int:
    replies = [m["content"] for m in conversation["messages"] if m["role"] == "assistant"]
    return sum(len(tokenizer.encode(r)) + 1 for r in replies)  # each reply's tokens + its end token


assert check(trained_by_hand, library_count, count_cases + mine)
assert not check(lambda conversation: 0, library_count, count_cases)  # the stub
path.write_text(path.read_text() + json.dumps({"messages": [{"role": "user", "content": "Hello?"}]}) + "\n")
try:
    read_conversations(path)
except UserError as err:
    print("UserError:", str(err).replace(str(out), "OUT"))

# %% tags=["solution", "nbval-ignore-output"] cellView="form" jupyter={"source_hidden": true}
# @title Solution 2: why is spelling hard?
for word in ("king", "queen", "thou", "gentleman"):
    word_tokens = tokenizer.encode(" " + word)
    answer_tokens = tokenizer.encode("-".join(word))
    print(f"{word!r}: {len(word_tokens)} token(s) {[tokenizer.decode([t]) for t in word_tokens]} -> "
          f"spelled in {len(answer_tokens)} tokens; {len(word) / len(word_tokens):.1f} letters per token to recall")
assert len(tokenizer.encode(" gentleman")) < len("gentleman")  # the model never sees most words' letters
assert check(lambda word: len(tokenizer.encode("-".join(word))), library_answer_tokens, spelling_cases)
assert not check(lambda word: len(tokenizer.encode(word)), library_answer_tokens, spelling_cases)  # the stub
