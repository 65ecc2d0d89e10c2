"""Supervised fine-tuning (SFT): a base model trained further on conversations, nanochat's chat_sft at 2f09686 on
our training loop (``train.train`` with its own job: the same steps, evals, checkpoints, resume, signals, NaN
checks).

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
- the length: ``--steps`` (default: about one epoch of the mixture, as nanochat's default).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from nanochat_next.errors import UserError
from nanochat_next.tensor.chat import render_conversation
from nanochat_next.tensor.config import TensorRun, with_recipe_fields
from nanochat_next.tensor.packing import MicroBatchStream
from nanochat_next.tensor.processes import Processes
from nanochat_next.tensor.train import Job, assemble_job

# nanochat 2f09686's chat_sft settings, as TensorRun fields
SFT_SETTINGS = dict(matrix_lr=0.02, embedding_lr=0.3, unembedding_lr=0.004, scalar_lr=0.5, weight_decay=0.0,
                    adam_beta1=0.8, adam_beta2=0.95, warmup_ratio=0.0, warmdown_ratio=0.2, final_lr_fraction=0.0,
                    lr_schedule="linear", muon_momentum="nanochat", wd_schedule="linear", optimizer="muon",
                    adam_groups="nanochat", muon_beta2=0.95, muon_eq=False)
BUFFER = 100  # conversations to choose from when filling a row (nanochat's buffer_size)
TRAIN_ON = ("assistant", "all")


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


def sft_run(base_record: dict, out: str | Path, steps: int | None, train_tokens: int, **overrides) -> TensorRun:
    """The SFT run config: the base run's model fields, nanochat's SFT settings, then ``overrides`` (flags).
    Without ``steps``: about one epoch (the mixture's tokens / the batch)."""
    base = TensorRun(**with_recipe_fields(base_record))
    if base.model_kind != "mini-gpt":
        raise UserError("SFT fine-tunes a GPT (mini-gpt, modern or classic style); this base is a bigram")
    run = replace(base, **{**SFT_SETTINGS, "out": str(out), **overrides})
    if steps is None:
        steps = max(1, math.ceil(train_tokens / run.total_batch_size))
    return replace(run, steps=steps)


def sft_builder(run: TensorRun, tokenizer, base_weights: dict[str, torch.Tensor], train: Sequence[dict],
                val: Sequence[dict], train_on: str = "assistant"):
    """``build(procs, loader_state)`` for ``train.train``: the base weights, the conversation loaders and
    nanochat's unscaled SFT hyperparameters (LR scale 1, Muon weight decay 0)."""

    def build(procs: Processes, loader_state: dict | None) -> Job:
        loader = ConversationLoader(train, tokenizer, run.device_batch_size, run.max_seq_len, procs.rank,
                                    procs.world, train_on, loader_state)

        def make_val_loader() -> ConversationLoader:  # validation: always the assistant's tokens
            return ConversationLoader(val, tokenizer, run.device_batch_size, run.max_seq_len, procs.rank, procs.world)

        return assemble_job(run, procs, tokenizer, loader, make_val_loader, weights=base_weights,
                            hyperparameters=(1.0, run.weight_decay), loss_weighting="tokens")

    return build
