"""Real chat datasets, as nanochat's SFT uses them, downloaded on demand into the cache.

| name | source (Hugging Face) | becomes | checked by |
|---|---|---|---|
| ``smoltalk`` | HuggingFaceTB/smol-smoltalk | its conversations as they are | - (training only) |
| ``gsm8k`` | openai/gsm8k (main) | a word problem -> the worked answer ending ``#### N`` | the number after #### |
| ``arc`` | allenai/ai2_arc (ARC-Easy) | a multiple-choice science question -> the letter | the letter's logit |

Each split is one parquet file, downloaded once to ``$NANOCHAT_NEXT_CACHE/datasets/`` atomically (temp file,
fsync, rename; ``corpus.download``). Its sha256 is recorded beside it on first download and checked on every
use, so a damaged or swapped file is an error, never silently different data (no pins ship with the package:
they could not be fetched where it was built). ``NANOCHAT_NEXT_DATASETS_URL`` replaces the Hugging Face base
address (a mirror, or the local files the tests make).
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

from nanochat_next.atomic import sha256_file
from nanochat_next.errors import UserError

HF = "https://huggingface.co/datasets"
URL_ENV = "NANOCHAT_NEXT_DATASETS_URL"
FILES = {
    "smoltalk": {"train": "HuggingFaceTB/smol-smoltalk/resolve/main/data/train-00000-of-00001.parquet",
                 "test": "HuggingFaceTB/smol-smoltalk/resolve/main/data/test-00000-of-00001.parquet"},
    "gsm8k": {"train": "openai/gsm8k/resolve/main/main/train-00000-of-00001.parquet",
              "test": "openai/gsm8k/resolve/main/main/test-00000-of-00001.parquet"},
    "arc": {"train": "allenai/ai2_arc/resolve/main/ARC-Easy/train-00000-of-00001.parquet",
            "test": "allenai/ai2_arc/resolve/main/ARC-Easy/test-00000-of-00001.parquet"},
}
GSM8K_ANSWER = re.compile(r"####\s*(-?[\d,.]+)")


def dataset_file(name: str, split: str, allow_download: bool = True) -> Path:
    """The cached parquet file of a dataset split, downloaded if needed; its recorded sha256 verified."""
    from nanochat_next.corpus import cache_dir, download

    if name not in FILES or split not in FILES[name]:
        raise UserError(f"unknown dataset {name!r} split {split!r} ({', '.join(FILES)}; train or test)")
    path = cache_dir() / "datasets" / name / f"{split}.parquet"
    pin = path.with_name(path.name + ".sha256")
    if not path.is_file():
        if not allow_download:
            raise UserError(f"{name} ({split}) is not in the cache ({path}) and downloads are off")
        url = f"{os.environ.get(URL_ENV, HF).rstrip('/')}/{FILES[name][split]}"
        try:
            download(url, path, None)
        except OSError as exc:
            raise UserError(f"could not download {name} ({split}) from {url} ({exc}); put the file at {path} by "
                            f"hand or set {URL_ENV} to a mirror") from None
        pin.write_text(sha256_file(path) + "\n")
    if pin.is_file() and pin.read_text().strip() != sha256_file(path):
        raise UserError(f"{path} does not match the sha256 recorded when it was downloaded ({pin}): delete both "
                        "to download it again")
    return path


def rows(name: str, split: str) -> list[dict]:
    import pyarrow.parquet as pq

    path = dataset_file(name, split)
    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow's own error types for a damaged file
        raise UserError(f"{path} is not a readable parquet file ({exc}); delete it to download it again") from None


def to_conversation(name: str, row: dict) -> dict:
    """One dataset row as a conversation (with ``task``, ``answer`` and ``choices`` for the checked ones)."""
    try:
        if name == "smoltalk":
            return {"messages": [{"role": m["role"], "content": m["content"]} for m in row["messages"]],
                    "task": name}
        if name == "gsm8k":
            match = GSM8K_ANSWER.search(row["answer"])
            return {"messages": [{"role": "user", "content": row["question"]},
                                 {"role": "assistant", "content": row["answer"]}],
                    "task": name, "answer": match.group(1).replace(",", "") if match else "", "choices": []}
        labels, texts = list(row["choices"]["label"]), list(row["choices"]["text"])
        letters = "ABCDE"[: len(labels)]  # ARC labels some questions 1-4: letters throughout
        question = row["question"] + "".join(f"\n{letter}. {text}" for letter, text in zip(letters, texts))
        answer = letters[labels.index(row["answerKey"])]
        return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
                "task": name, "answer": answer, "choices": list(letters)}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UserError(f"a {name} row does not have the expected fields ({type(exc).__name__}: {exc})") from None


def examples(name: str, split: str, count: int | None, seed: int) -> list[dict]:
    """``count`` conversations of a dataset split (all with None), a seeded sample when fewer than all."""
    conversations = [to_conversation(name, row) for row in rows(name, split)]
    if count is not None and count < len(conversations):
        conversations = random.Random(f"{name}/{split}/{seed}").sample(conversations, count)
    return conversations


def check_gsm8k(reply: str, answer: str) -> bool:
    match = GSM8K_ANSWER.search(reply)
    return match is not None and match.group(1).replace(",", "") == answer
