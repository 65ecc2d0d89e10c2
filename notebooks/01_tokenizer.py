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
# # 01 · Tokenization: from characters to byte-level BPE
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ricardofrantz/nanochat-next/blob/main/notebooks/01_tokenizer.ipynb)
#
# A language model reads integers, not text. A **tokenizer** turns text into a sequence of integer ids
# and back. This notebook builds up the tokenizer that nanochat (and GPT-4) use:
#
# 1. **characters**: one id per distinct character: simple, but every unseen character is a failure;
# 2. **bytes**: one id per UTF-8 byte: 256 ids cover any text, but sequences get long;
# 3. **byte-level BPE**: start from bytes and repeatedly *merge the most frequent pair* into a new id.
#
# We write BPE by hand on a tiny string, then use the library's readable trainer on Shakespeare and check
# that it learns *exactly* the same merges as `rustbpe` (the fast Rust trainer nanochat uses), encode with
# `tiktoken`, save the tokenizer as plain text, and measure how compression grows with vocabulary size.
#
# Runs top to bottom on a laptop CPU in well under 2 minutes.
#
# *About the outputs:* cells that print what a trained model did (losses, samples, timings) show the
# numbers of the machine that ran them; another CPU's float kernels give slightly different ones. The
# checks inside those cells hold everywhere.

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
corpus = "tinyshakespeare"  # a known corpus name, or a path to a .txt file / folder of .txt files
vocab_size = 4096  # the tokenizer we train in full (special tokens included)
compare_vocab_sizes = [300, 512, 1024, 2048, 4096, 8192]  # for the compression plot

# %%
import time

import regex

from nanochat_next.corpus import load_corpus, split_documents, train_val_split
from nanochat_next.errors import UserError
from nanochat_next.tokenizer.bpe import SPECIAL_TOKENS, BPETokenizer
from nanochat_next.tokenizer.bpe_train import SPLIT_PATTERN, train_merges
from nanochat_next.tokenizer.char import CharTokenizer
from nanochat_next.tokenizer.compression import compression, format_table, plot_compression, sweep_vocab_sizes

text, rule = load_corpus(corpus)  # downloads once into the cache (checksum-verified), then reads it
docs = split_documents(text, rule)
train_docs, val_docs = train_val_split(docs)  # first 90% train, last 10% held out
print(f"{len(text):,} characters, {len(docs):,} documents ({rule})")
print(f"{len(train_docs):,} train, {len(val_docs):,} held out")
print(repr(docs[0]))

# %% [markdown]
# ## 1. Characters
#
# The simplest tokenizer gives every distinct character an id. We follow karpathy's `microgpt.py`: the
# sorted characters get ids `0..n-1` and a special `<|bos|>` ("beginning of sequence") token gets id `n`;
# it will separate documents during training.

# %%
chars = CharTokenizer.from_text(train_docs)
print("vocab size:", chars.vocab_size)
print("characters:", repr("".join(chars.chars)))
ids = chars.encode("To be, or not to be", prepend_bos=True)
print(ids)
print(chars.decode(ids))

# %% [markdown]
# The weakness: a character that was not in the training text has no id at all.

# %%
try:
    chars.encode("naïve café ☕")
except UserError as err:
    print("UserError:", err)

# %% [markdown]
# ## 2. Bytes
#
# UTF-8 writes every character as 1 to 4 bytes. With the 256 possible byte values as the vocabulary,
# *any* text can be encoded, but non-ASCII text gets longer.

# %%
sample = "naïve café ☕"
as_bytes = list(sample.encode("utf-8"))
print(f"{len(sample)} characters -> {len(as_bytes)} bytes")
print(as_bytes)

# %% [markdown]
# ## 3. Byte pair encoding, by hand
#
# BPE starts from bytes and repeats one step: count every adjacent pair of ids, take the most frequent
# pair (ties: the smallest pair, as `rustbpe` does), and replace it everywhere by a new id
# (256, 257, ...). Each merge shortens the sequence; the list of merges *is* the tokenizer.


# %%
def count_pairs(ids: list[int]) -> dict[tuple[int, int], int]:
    counts: dict[tuple[int, int], int] = {}
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


tiny = "the cat in the hat ate the hot oat at the theatre"
ids = list(tiny.encode("utf-8"))
vocab = {i: bytes([i]) for i in range(256)}
hand_merges = []
for step in range(6):
    counts = count_pairs(ids)
    pair = max(counts, key=lambda p: (counts[p], -p[0], -p[1]))  # most frequent, then smallest pair
    new_id = 256 + step
    vocab[new_id] = vocab[pair[0]] + vocab[pair[1]]
    hand_merges.append(pair)
    ids = merge(ids, pair, new_id)
    print(f"merge {step}: {vocab[pair[0]]!r} + {vocab[pair[1]]!r} -> {new_id} {vocab[new_id]!r}"
          f"  (seen {counts[pair]}x, sequence now {len(ids)} long)")

# %% [markdown]
# The library's trainer (`nanochat_next.tokenizer.bpe_train.train_merges`) does the same, but *incrementally*: it
# keeps the pair counts and only updates them around each replacement, instead of recounting the whole
# text after every merge. Given the whole string as one chunk, it learns the same merges:

# %%
library_merges = train_merges([tiny], 6, pattern=r"(?s).+")
print(library_merges == hand_merges)
assert library_merges == hand_merges

# %% [markdown]
# ## 4. Split first, then merge
#
# GPT-style tokenizers never merge across certain boundaries: a regex first splits the text into chunks
# (words with their leading space, runs of digits, punctuation, whitespace), and BPE runs inside each
# chunk. nanochat's pattern is GPT-4's with one change: numbers split into runs of at most **2** digits
# (`\p{N}{1,2}`), which wastes fewer tokens on numbers at small vocabulary sizes.

# %%
print(regex.findall(SPLIT_PATTERN, "Hello world! It's 2024... 1234567   spaces\n\nDON'T"))

# %% [markdown]
# ## 5. Training on Shakespeare: our readable trainer vs rustbpe
#
# Now the real thing, `vocab_size` tokens in total: 256 bytes + merges + nanochat's 9 special tokens
# (`<|bos|>`, `<|user_start|>`, ...). The `python` trainer is the readable one; `rustbpe` is the fast one.
# They must produce the *identical* vocabulary, merge for merge; the test suite checks this on
# adversarial text too.

# %%
t0 = time.perf_counter()
tok_python = BPETokenizer.train(train_docs, vocab_size, trainer="python")
t_python = time.perf_counter() - t0
t0 = time.perf_counter()
tok = BPETokenizer.train(train_docs, vocab_size, trainer="rustbpe")
t_rust = time.perf_counter() - t0
print(f"python trainer: {t_python:.2f} s, rustbpe: {t_rust:.2f} s")
print("identical vocabularies:", tok_python.token_bytes == tok.token_bytes)
assert tok_python.token_bytes == tok.token_bytes
print(f"{tok.vocab_size} tokens = 256 bytes + {tok.num_merges} merges + {len(SPECIAL_TOKENS)} special")

# %%
print("first merges:", [tok.token_bytes[i].decode("utf-8", "replace") for i in range(256, 276)])
print("last merges: ", [tok.token_bytes[i].decode("utf-8", "replace") for i in range(tok.bos_id - 12, tok.bos_id)])

# %% [markdown]
# ## 6. Encoding with tiktoken
#
# Training is done once; encoding happens all the time. `BPETokenizer` hands the learned ranks to
# OpenAI's `tiktoken`, a fast encoder. Special tokens are *never* produced from plain text: the string
# `"<|bos|>"` inside a document stays ordinary characters unless we explicitly allow special tokens.

# %%
line = "ROMEO: But, soft! what light through yonder window breaks?"
ids = tok.encode(line, prepend_bos=True)
print(len(line.encode("utf-8")), "bytes ->", len(ids), "tokens")
print(ids)
print([tok.decode([i]) for i in ids])
assert tok.decode(ids[1:]) == line

# %% [markdown]
# The same line as the model sees it: one box per token, its id beneath. Common words with their leading
# space are one token; a word the training text rarely used is cut into pieces the vocabulary does have
# (`␣window` is `␣wind` + `ow`). On the right, how long the vocabulary's merged tokens are, in the order they
# were learned: early merges join two bytes, later ones whole words (the line is the mean of each 256 ids).

# %%
import matplotlib.pyplot as plt

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 2.6), width_ratios=[3, 1])
x = 0.0
for i, token_id in enumerate(ids[1:]):
    piece = tok.decode([token_id])
    width = max(len(piece), 2) * 0.6
    ax1.add_patch(plt.Rectangle((x, 0), width - 0.1, 1, fc=plt.cm.Pastel1(i % 9), ec="grey", lw=0.5))
    ax1.text(x + width / 2, 0.55, piece.replace(" ", "␣"), ha="center", va="center", family="monospace", fontsize=9)
    ax1.text(x + width / 2, -0.35, str(token_id), ha="center", va="center", fontsize=7, color="dimgrey")
    x += width
ax1.set_xlim(0, x)
ax1.set_ylim(-0.7, 1.1)
ax1.axis("off")
ax1.set_title(f"{len(line.encode('utf-8'))} bytes -> {len(ids) - 1} tokens (␣ = space)")
merge_lengths = [len(tok.token_bytes[i]) for i in range(256, 256 + tok.num_merges)]
ax2.scatter(range(256, 256 + tok.num_merges), merge_lengths, s=2, alpha=0.2)
bins = [merge_lengths[i: i + 256] for i in range(0, len(merge_lengths), 256)]
ax2.plot([256 + 256 * k + 128 for k in range(len(bins))], [sum(b) / len(b) for b in bins], color="black")
ax2.set_xlabel("token id (order learned)")
ax2.set_ylabel("bytes in the token")
ax2.set_title("merges grow longer")
plt.tight_layout()
plt.show()
assert merge_lengths[0] == 2  # the first merge joins two bytes

# %%
tricky = "a document that mentions <|bos|> in its text"
plain, allowed = tok.encode(tricky), tok.encode(tricky, allow_special=True)
print(f"plain text:      {len(plain)} tokens, contains <|bos|> (id {tok.bos_id}): {tok.bos_id in plain}")
print(f"special allowed: {len(allowed)} tokens, contains <|bos|> (id {tok.bos_id}): {tok.bos_id in allowed}")

# %% [markdown]
# ## 7. Saving without pickle
#
# nanochat pickles its tokenizer, and loading a pickle can run arbitrary code. We save two text files:
# `tokenizer.tiktoken` (tiktoken's own format: base64 of each token's bytes and its id) and
# `tokenizer.json` (the split pattern, special token ids, and a checksum of the ranks file).

# %%
import tempfile
from pathlib import Path

save_dir = Path(tempfile.mkdtemp()) / "tokenizer"
tok.save(save_dir)
print(sorted(p.name for p in save_dir.iterdir()))
print((save_dir / "tokenizer.tiktoken").read_text().splitlines()[256:260])
loaded = BPETokenizer.load(save_dir)
assert loaded.encode(line) == tok.encode(line)
print("reloaded tokenizer encodes identically")

# %% [markdown]
# ## 8. Compression vs vocabulary size
#
# A bigger vocabulary packs more bytes into each token, so the model sees more text per position, but
# each extra token costs an embedding row and an output column. We train one tokenizer per size on the
# training split and measure **bytes per token** and **tokens per document** on the held-out split.

# %%
rows = sweep_vocab_sizes(train_docs, val_docs, compare_vocab_sizes)
print(format_table(rows))
bytes_per_token = [r["bytes_per_token"] for r in rows]
assert all(a < b for a, b in zip(bytes_per_token, bytes_per_token[1:])), "compression grows with vocab size"
assert 3.0 < compression(tok, val_docs)["bytes_per_token"] < 3.6  # Shakespeare at 4096 tokens: ~3.3

# %%
fig = plot_compression(rows, title=f"{corpus}: held-out compression")

# %% [markdown]
# ## 9. Compared with GPT-2 and GPT-4 (needs internet)
#
# tiktoken downloads the GPT-2 and GPT-4 vocabularies on first use. Offline, this cell says so and moves
# on. Those vocabularies are 50k and 100k tokens trained on web text, so they compress Shakespeare well,
# but a tiny model could never afford their embedding tables.

# %% tags=["nbval-ignore-output"]
import tiktoken

val_bytes = sum(len(d.encode("utf-8")) for d in val_docs)
for name in ("gpt2", "cl100k_base"):
    try:
        enc = tiktoken.get_encoding(name)
    except Exception as err:  # offline: no network to fetch the vocabulary
        print(f"{name}: skipped, its vocabulary could not be downloaded ({type(err).__name__})")
        continue
    n_tokens = sum(len(enc.encode_ordinary(d)) for d in val_docs)
    print(f"{name}: {enc.n_vocab:,} tokens, {val_bytes / n_tokens:.3f} bytes/token")

# %% [markdown]
# ## What's next
#
# `nanochat-next tok-train` and `nanochat-next tok-eval` do all of this from the command line. Notebook 02
# uses the character tokenizer to build a bigram language model on scalars.
#
# ## Exercises
#
# Try each one before opening its solution (the hidden cell under it; the tests run every solution).
#
# 1. **Write `encode` from the merges.** `tok.token_bytes[i]` is the byte string of token `i`, and a merge's
#    rank is its id: a lower id was learned earlier. Encode a text with nothing but that list and the split
#    pattern: split into chunks, start each chunk from its bytes, and repeatedly merge the adjacent pair whose
#    joined bytes form the *lowest-ranked* token, until no pair forms a token. Check it against `tok.encode`.
# 2. **Decode by hand**: join the tokens' bytes of `"naïve café ☕"` and decode them as UTF-8. Which of its
#    tokens are only a *piece* of a character (Shakespeare has no `ï` or `☕`), and what does `tok.decode`
#    print for one of them alone?
# 3. **Out of domain.** Measure bytes per token of the Shakespeare tokenizer on the `names` corpus (one name
#    per line). Is it better or worse than on held-out Shakespeare, and why?
#
# Each exercise has a cell for your attempt: replace the function's body and run the cell; `check` compares your
# function with the library's on several inputs and prints the first one where they differ.

# %%
from nanochat_next.exercises import check  # your function vs the library's on each case: prints the first difference

encode_cases = ["Hello there", "ROMEO: What, ho! who's there?", "naïve café ☕", val_docs[0][:300]]


# Your attempt (exercise 1): replace the body
def my_encode(text: str) -> list[int]:
    return list(text.encode("utf-8"))  # TODO: split into chunks, then merge pairs, lowest rank first


check(my_encode, tok.encode, encode_cases)

# %%
# Your attempt (exercise 2): replace the body
def my_decode(ids: list[int]) -> str:
    return "".join(chr(i) for i in ids)  # TODO: join the tokens' bytes (tok.token_bytes), then decode UTF-8


check(my_decode, tok.decode, [tok.encode(text) for text in encode_cases])


# %%
# Your attempt (exercise 3): replace the body
def my_bytes_per_token(docs: list[str]) -> float:
    return 1.0  # TODO: the documents' UTF-8 bytes over their tokens (no <|bos|> counted)


check(my_bytes_per_token, lambda docs: compression(tok, docs)["bytes_per_token"], [val_docs[:50], ["emma", "olivia"]])

# %% tags=["solution", "nbval-ignore-output"] cellView="form" jupyter={"source_hidden": true}
# @title Solution 1: encode from the merges
ranks = {token: rank for rank, token in enumerate(tok.token_bytes[: tok.bos_id])}  # special tokens excluded


def encode_chunk(chunk: bytes) -> list[int]:
    parts = [bytes([b]) for b in chunk]  # start from single bytes (ids 0-255)
    while len(parts) > 1:
        # the adjacent pair whose joined bytes were merged earliest in training
        rank, i = min((ranks.get(a + b, len(ranks)), i) for i, (a, b) in enumerate(zip(parts, parts[1:])))
        if rank == len(ranks):  # no adjacent pair forms a token: done
            break
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    return [ranks[p] for p in parts]


def solution_encode(text: str) -> list[int]:
    return [i for chunk in regex.findall(SPLIT_PATTERN, text) for i in encode_chunk(chunk.encode("utf-8"))]


print(solution_encode(line)[:12])
assert check(solution_encode, tok.encode, encode_cases)
assert all(solution_encode(d) == tok.encode(d) for d in val_docs[:200])  # identical to tiktoken on 200 documents
assert not check(lambda text: list(text.encode("utf-8")), tok.encode, encode_cases)  # the untouched stub is caught

# %% tags=["solution", "nbval-ignore-output"] cellView="form" jupyter={"source_hidden": true}
# @title Solution 2: decode by hand
ids = tok.encode("naïve café ☕")
by_hand = b"".join(tok.token_bytes[i] for i in ids).decode("utf-8")
assert by_hand == tok.decode(ids) == "naïve café ☕"
pieces = [i for i in ids if 128 <= i < 256]  # single bytes >= 128: never a whole character in UTF-8
print("tokens:", [tok.token_bytes[i] for i in ids])
print(f"pieces of a character: {pieces}; alone, token {pieces[0]} decodes to {tok.decode([pieces[0]])!r}")
assert tok.decode([pieces[0]]) == "\ufffd"  # the replacement character: the bytes are not valid UTF-8 alone


def solution_decode(ids: list[int]) -> str:
    return b"".join(tok.token_bytes[i] for i in ids).decode("utf-8", errors="replace")


assert check(solution_decode, tok.decode, [tok.encode(text) for text in encode_cases])
assert not check(lambda ids: "".join(chr(i) for i in ids), tok.decode, [tok.encode(t) for t in encode_cases])

# %% tags=["solution", "nbval-ignore-output"] cellView="form" jupyter={"source_hidden": true}
# @title Solution 3: out of domain
names_text, names_rule = load_corpus("names")
names = compression(tok, split_documents(names_text, names_rule))["bytes_per_token"]
shakespeare = compression(tok, val_docs)["bytes_per_token"]
print(f"bytes per token: held-out Shakespeare {shakespeare:.2f}, names {names:.2f}")
assert names < shakespeare  # the merges are Shakespeare's words; names are mostly other letter sequences


def solution_bytes_per_token(docs: list[str]) -> float:
    return sum(len(d.encode("utf-8")) for d in docs) / sum(len(tok.encode(d)) for d in docs)


cases = [val_docs[:50], ["emma", "olivia"]]
assert check(solution_bytes_per_token, lambda docs: compression(tok, docs)["bytes_per_token"], cases)
assert not check(lambda docs: 1.0, lambda docs: compression(tok, docs)["bytes_per_token"], cases)
