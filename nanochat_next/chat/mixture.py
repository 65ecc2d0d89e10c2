"""An SFT data mixture from a spec such as ``spelling:2000,gsm8k:1000,chat.jsonl``: generated tasks and real
datasets (smoltalk, gsm8k, arc: downloaded on demand) with a count, and conversation files (JSONL), shuffled
together with a seed (as nanochat's TaskMixture).

Validation: each task's and dataset's test split (a fifth of its count, 20 to 200 examples: questions never
trained on), and the last 5% of each file with at least 20 conversations (a smaller file is all training).
A mixture with no held-out part at all (only small files) validates on its first 20 training conversations:
a loss to watch, not a held-out measure.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from nanochat_next.chat.conversations import read_conversations
from nanochat_next.chat.datasets import FILES as DATASETS
from nanochat_next.chat.datasets import examples as dataset_examples
from nanochat_next.chat.tasks import TASKS, default_words, task
from nanochat_next.errors import UserError


@dataclass(frozen=True)
class Part:
    name: str  # a task name, or a file path
    count: int | None  # examples of a task; None for a file (all of it)

    @property
    def is_task(self) -> bool:
        return self.count is not None


def parse_mix(spec: str) -> list[Part]:
    """``task:count`` and ``path.jsonl`` items, comma-separated."""
    parts = []
    for item in (i.strip() for i in spec.split(",")):
        if not item:
            continue
        name, _, count = item.rpartition(":") if ":" in item else (item, "", "")
        if name in TASKS or name in DATASETS:
            if not count.isdigit() or int(count) < 1:
                raise UserError(f"--mix item {item!r}: a task needs a positive count, e.g. {name}:1000")
            parts.append(Part(name, int(count)))
        elif Path(item).suffix == ".jsonl":
            if not Path(item).is_file():
                raise UserError(f"--mix item {item!r}: no such file")
            parts.append(Part(item, None))
        else:
            raise UserError(f"--mix item {item!r} is neither a task ({', '.join(TASKS)}) or dataset "
                            f"({', '.join(DATASETS)}) with a count nor a .jsonl file of conversations")
    if not parts:
        raise UserError("--mix is empty: give tasks with counts and/or .jsonl files, e.g. spelling:2000,arith:2000")
    return parts


def validation_count(count: int) -> int:
    return min(200, max(20, count // 5))


def build_mixture(parts: list[Part], seed: int, words: list[str] | None = None) -> tuple[list[dict], list[dict]]:
    """(train, validation) conversations, each list shuffled by ``seed``."""
    train: list[dict] = []
    val: list[dict] = []
    for part in parts:
        if part.name in DATASETS:
            train += dataset_examples(part.name, "train", part.count, seed)
            val += dataset_examples(part.name, "test", validation_count(part.count), seed)
        elif part.is_task:
            words = words if words is not None else default_words()
            train += task(part.name).examples("train", part.count, seed, words)
            val += task(part.name).examples("test", validation_count(part.count), seed, words)
        else:
            conversations = read_conversations(part.name)
            held = len(conversations) // 20 if len(conversations) >= 20 else 0
            train += conversations[: len(conversations) - held]
            val += conversations[len(conversations) - held:]
    rng = random.Random(seed)
    rng.shuffle(train)
    rng.shuffle(val)
    return train, val or train[:20]
