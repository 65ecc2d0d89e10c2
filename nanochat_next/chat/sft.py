"""Supervised fine-tuning (SFT): a base model trained further on conversations, nanochat's chat_sft at 2f09686 on
our training loop (``train.loop.train_job`` with its own job: the same steps, evals, checkpoints, resume,
signals, NaN checks).

nanochat's SFT recipe at the pinned ref, and where we differ:

- start from the base model's weights; Muon for the block matrices (LR 0.02) and AdamW for the rest
  (embeddings 0.3, head 0.004, scalars 0.5; betas 0.8/0.95) with no batch scaling of the LRs and no weight
  decay; LR flat for 80% of the steps, then linearly to 0; Muon's momentum 0.85 -> 0.95 over 300 steps;
- batches: whole conversations, each rendered with the chat template and starting with ``<|bos|>``, packed
  into rows best-fit from a buffer of 100; when none fits, the row is padded (never cropped) and the padding
  is not trained;
- the loss: **only the assistant's tokens** (the template's mask), every trained token of a step weighted
  equally. nanochat 2f09686 trains on every token of the conversation (it drops the mask) and averages each
  micro-batch, which gives NaN on a micro-batch with no trained token (nanochat#590): here such a step adds
  nothing (``--train-on all`` gives nanochat's choice of tokens);
- the length: ``--steps`` (default 300: the budget behind results/sft_cpu; nanochat's default is one epoch).

Every setting an SFT run adds to its base run, with its default, is a field of ``SFTSettings`` (the CLI's flags
map onto them, their help shows these defaults).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from nanochat_next.errors import UserError
from nanochat_next.tokenizer.chat_template import render_conversation
from nanochat_next.train.config import RECIPES, TensorRun, with_recipe_fields
from nanochat_next.train.packing import MicroBatchStream

if TYPE_CHECKING:  # the loop itself is imported when a job is built: the CLI's parser stays light
    from nanochat_next.train.loop import BuildJob, Job
    from nanochat_next.train.processes import Processes

NANOCHAT = RECIPES["nanochat"]
# nanochat 2f09686's chat_sft rules that are not flags, as TensorRun fields: its base recipe's betas, momentum
# and schedule shape, no weight decay, the LR flat for 80% of the steps then linearly to 0
SFT_RULES = {**{k: NANOCHAT[k] for k in ("adam_beta1", "adam_beta2", "warmup_ratio", "final_lr_fraction",
                                         "lr_schedule", "muon_momentum", "wd_schedule", "adam_groups",
                                         "muon_beta2", "muon_eq")},
             "optimizer": "muon", "weight_decay": 0.0, "warmdown_ratio": 0.2}
BUFFER = 100  # conversations to choose from when filling a row (nanochat's buffer_size)
TRAIN_ON = ("assistant", "all")
# the run fields an SFT flag may set on top of the base run; None keeps the base run's value
BASE_OVERRIDES = ("device_batch_size", "total_batch_size", "eval_every", "eval_tokens", "save_every", "keep_last",
                  "device")


@dataclass(frozen=True)
class SFTSettings:
    """Every setting of an SFT run beyond its base model, with its default (the ``sft`` flags' defaults)."""

    mix: str = "spelling:2000,letters:2000,arith:2000,identity:200,compare:1000"
    out: str = "out/sft"
    steps: int = 300  # the budget behind results/sft_cpu (README's SFT figures)
    seed: int = 42  # the mixture's examples and order
    train_on: str = "assistant"  # assistant (the template's mask) | all (nanochat 2f09686)
    # nanochat 2f09686's chat_sft learning rates (= its base recipe's), unscaled by the batch
    matrix_lr: float = NANOCHAT["matrix_lr"]
    embedding_lr: float = NANOCHAT["embedding_lr"]
    unembedding_lr: float = NANOCHAT["unembedding_lr"]
    scalar_lr: float = NANOCHAT["scalar_lr"]
    # from the base run unless given
    device_batch_size: int | None = None
    total_batch_size: int | None = None
    eval_every: int | None = None
    eval_tokens: int | None = None
    save_every: int | None = None
    keep_last: int | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        if self.train_on not in TRAIN_ON:
            raise UserError(f"--train-on must be one of {', '.join(TRAIN_ON)}, got {self.train_on!r}")
        if self.steps < 1:
            raise UserError(f"--steps must be positive, got {self.steps}")


class ConversationLoader(MicroBatchStream):
    """(inputs, targets) of shape (batch_size, seq_len) forever: conversations packed best-fit, padded rows,
    targets -1 where nothing is trained. The stream is the same on every rank (each takes its micro-batches),
    and ``state_dict`` (position + buffer) resumes it exactly, as ``packing.PackingLoader``."""

    def __init__(self, conversations: Sequence[dict], tokenizer, batch_size: int, seq_len: int,  # noqa: PLR0913
                 rank: int = 0, world_size: int = 1, train_on: str = "assistant", state: dict | None = None):
        if not conversations:
            raise UserError("no conversations to train on")
        if train_on not in TRAIN_ON:
            raise UserError(f"--train-on must be one of {', '.join(TRAIN_ON)}, got {train_on!r}")
        self.conversations, self.tokenizer = conversations, tokenizer
        self.batch_size, self.seq_len, self.rank, self.world_size = batch_size, seq_len, rank, world_size
        self.train_on, self.pad = train_on, tokenizer.bos_id
        state = state or {"cursor": 0, "epoch": 1, "buffer": [], "micro_batch": 0}
        self.cursor, self.epoch, self.micro_batch = state["cursor"], state["epoch"], state["micro_batch"]
        self.buffer = [(i, *self.render(i)) for i in state["buffer"]]

    def state_dict(self) -> dict:
        return {"cursor": self.cursor, "epoch": self.epoch, "buffer": [i for i, _, _ in self.buffer],
                "micro_batch": self.micro_batch}

    def render(self, index: int) -> tuple[list[int], list[int]]:
        """Tokens and trained-mask of one conversation, cut to a row (seq_len + 1 tokens)."""
        ids, mask = render_conversation(self.conversations[index], self.tokenizer, max_tokens=self.seq_len + 1)
        return ids, (mask if self.train_on == "assistant" else [1] * len(ids))

    def _row(self) -> tuple[list[int], list[int]]:
        capacity = self.seq_len + 1  # +1: the inputs are row[:-1], the targets row[1:]
        ids: list[int] = []
        mask: list[int] = []
        while len(ids) < capacity:
            while len(self.buffer) < BUFFER:
                self.buffer.append((self.cursor, *self.render(self.cursor)))
                self.cursor += 1
                if self.cursor == len(self.conversations):
                    self.cursor, self.epoch = 0, self.epoch + 1
            remaining = capacity - len(ids)
            # best fit: the longest buffered conversation that fits whole in what is left of the row
            best = max((i for i, (_, c, _) in enumerate(self.buffer) if len(c) <= remaining),
                       key=lambda i: len(self.buffer[i][1]), default=None)
            if best is None:  # none fits: pad the rest (padding is never trained)
                ids += [self.pad] * remaining
                mask += [0] * remaining
                break
            _, c_ids, c_mask = self.buffer.pop(best)
            ids += c_ids
            mask += c_mask
        return ids, mask

    def _micro_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self._row() for _ in range(self.batch_size)]
        self.micro_batch += 1
        ids = torch.tensor([r[0] for r in rows], dtype=torch.long)
        trained = torch.tensor([r[1] for r in rows], dtype=torch.bool)
        # target t is token t + 1 of the row, trained where that token is (the assistant's, not padding)
        targets = ids[:, 1:].masked_fill(~trained[:, 1:], -1)
        return ids[:, :-1].contiguous(), targets.contiguous()


def sft_run(base_record: dict, settings: SFTSettings) -> TensorRun:
    """The SFT run config: the base run's model fields, nanochat's SFT rules and learning rates, the settings'
    overrides of the base run, ``settings.out``, ``steps`` and ``seed``."""
    base = TensorRun(**with_recipe_fields(base_record))
    if base.model_kind != "gpt":
        raise UserError("SFT fine-tunes a GPT (modern or classic style); this base is a bigram")
    overrides = {k: getattr(settings, k) for k in BASE_OVERRIDES if getattr(settings, k) is not None}
    lrs = {k: getattr(settings, k) for k in ("matrix_lr", "embedding_lr", "unembedding_lr", "scalar_lr")}
    return replace(base, **SFT_RULES, **lrs, **overrides, out=settings.out, steps=settings.steps, seed=settings.seed)


def epochs(run: TensorRun, train_tokens: int) -> float:
    """About how many passes over the mixture the run's steps make (``train_tokens``: the mixture's size)."""
    return run.steps * run.total_batch_size / max(1, train_tokens)


def sft_job(run: TensorRun, tokenizer, base_weights: dict[str, torch.Tensor], train: Sequence[dict],
            val: Sequence[dict], train_on: str = "assistant") -> BuildJob:
    """SFT's ``build(procs, loader_state)`` for ``train_job``: the base weights, the conversation loaders and
    nanochat's unscaled SFT hyperparameters (LR scale 1, Muon weight decay 0)."""
    from nanochat_next.train.loop import assemble_job

    def build(procs: Processes, loader_state: dict | None) -> Job:
        loader = ConversationLoader(train, tokenizer, run.device_batch_size, run.max_seq_len, procs.rank,
                                    procs.world, train_on, loader_state)

        def make_val_loader() -> ConversationLoader:  # validation: always the assistant's tokens
            return ConversationLoader(val, tokenizer, run.device_batch_size, run.max_seq_len, procs.rank, procs.world)

        return assemble_job(run, procs, tokenizer, loader, make_val_loader, weights=base_weights,
                            hyperparameters=(1.0, run.weight_decay), loss_weighting="tokens")

    return build


def fine_tune(base: str | Path, settings: SFTSettings, resume: str | None = None, progress: bool = True,
              log=print) -> dict:
    """SFT from a base model's directory into ``settings.out``: the mixture (bad input fails before anything is
    written or loaded), the run config, the job on the training loop. Returns the loop's summary."""
    from nanochat_next.atomic import writable_dir, write_text
    from nanochat_next.chat.mixture import build_mixture, parse_mix
    from nanochat_next.model.saving import load_trained
    from nanochat_next.train.loop import train_job

    parts = parse_mix(settings.mix)
    model, tokenizer, config = load_trained(base, "cpu")
    if "run" not in config:
        raise UserError(f"{base} has no training record (model/config.json 'run'); train it with "
                        "`nanochat-next train` or import it with import-nanochat")
    train_convs, val_convs = build_mixture(parts, settings.seed)
    run = sft_run(config["run"], settings)
    out = writable_dir(settings.out)  # only now: a command that fails on its input creates nothing
    tokens = sum(len(m["content"]) for c in train_convs for m in c["messages"]) // 3  # ~3 characters a token
    write_text(out / "sft.json", json.dumps({"base": str(base), "mix": settings.mix, "train_on": settings.train_on,
                                             "train_conversations": len(train_convs),
                                             "val_conversations": len(val_convs)}, indent=2) + "\n")
    log(f"SFT of {base}: {len(train_convs):,} conversations ({settings.mix}), {len(val_convs):,} held out; "
        f"{run.steps} steps of {run.total_batch_size:,} tokens (about {epochs(run, tokens):.1f} passes over the "
        f"mixture), training on the {settings.train_on} tokens")
    build = sft_job(run, tokenizer, model.state_dict(), train_convs, val_convs, settings.train_on)
    return train_job(run, tokenizer, build, progress=progress, log=log, resume=resume)
