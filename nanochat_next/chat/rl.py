"""Reinforcement learning from the tasks' own checkers: nanochat's chat_rl (at 2f09686 and its newest commit) on our
training loop (``train.loop.train_job``: checkpoints, resume, signals, NaN checks, metrics come with it).

Why a reward instead of a target: SFT imitates one reference reply; RL lets the model try and keeps what the
checker accepts, so it can find its own way to a right answer and unlearn the wrong habits its samples show.

nanochat's algorithm ("GRPO" in its file, in fact REINFORCE with a group baseline), and where we differ:

- on-policy rollouts: for each question, ``samples`` replies sampled from the current model (temperature 1.0,
  top-k 50), prompt rendered with the chat template up to ``<|assistant_start|>``; a reply ends at
  ``<|assistant_end|>`` (trained, so the model learns to stop) or at ``max_new_tokens``;
- reward: the question's checker on the reply (1 right, 0 wrong); advantage = reward - the mean reward of the
  question's samples (no division by the std, no KL to a reference model, no ratio clipping: on-policy);
- the loss: -sum over sampled tokens of advantage x log p(token), divided by the number of trained tokens in the
  whole step (token-level, DAPO-style normalisation); prompt and padding tokens are not trained;
- a group whose samples all get the same reward has advantage 0 everywhere: it teaches nothing and is left out of
  the step (its tokens are not counted either: DAPO's dynamic-sampling filter; nanochat counts them in the
  normaliser); a step whose groups all tie makes no update at all. Such groups are counted (``zero_groups``);
  with ``resample_tied`` N > 0 a tied group is replaced by the next question's, up to N times per slot (DAPO's
  dynamic sampling: more rollouts, but every slot of the step carries signal; nanochat keeps the tied group);
- learning rates: nanochat's chat_rl group LRs times ``init_lr_frac`` (0.05), decayed linearly to 0 over the run,
  no weight decay, no batch scaling;
- the batch: ``questions`` questions x ``samples`` samples per step (nanochat: 16 x 16; the CPU default 8 x 8).

``metrics.jsonl`` gets, per step, besides the loop's figures: the mean reward (= pass@1 of the samples), pass@k
(the share of questions with at least one right sample), the groups that tied, sampled tokens, and the seconds
spent generating rollouts vs the whole step.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from nanochat_next.errors import UserError
from nanochat_next.tokenizer.chat_template import render_for_reply
from nanochat_next.train.config import TensorRun, with_recipe_fields
from nanochat_next.train.packing import MicroBatchStream

if TYPE_CHECKING:  # the loop itself is imported when a job is built: the CLI's parser stays light
    from nanochat_next.train.loop import BuildJob, Job
    from nanochat_next.train.processes import Processes

# nanochat's chat_rl learning rates (its argparse defaults at 2f09686 and 92d63d4), before init_lr_frac
RL_LRS = {"matrix_lr": 0.02, "embedding_lr": 0.2, "unembedding_lr": 0.004, "scalar_lr": 0.5}
RL_RULES = {"optimizer": "muon", "weight_decay": 0.0, "warmup_ratio": 0.0, "warmdown_ratio": 1.0,
            "final_lr_fraction": 0.0, "lr_schedule": "linear",  # the LR falls linearly from the first step to 0
            "compile": False}  # every group has its own shape: a compiled model would recompile each micro-batch


@dataclass(frozen=True)
class RLSettings:
    """Every setting of an RL run beyond its starting model, with its default (the ``rl`` flags' defaults)."""

    mix: str = "letters:2000,spelling:2000,arith:2000"  # questions: tasks (and gsm8k:N) with checkers
    out: str = "out/rl"
    steps: int = 40
    questions: int = 8  # per step (nanochat: 16)
    samples: int = 8  # per question (nanochat: 16)
    temperature: float = 1.0
    top_k: int = 50
    max_new_tokens: int = 16  # replies of these tasks are short (nanochat: 256 for GSM8K's worked answers)
    init_lr_frac: float = 0.05  # nanochat's: RL fine-tunes gently
    resample_tied: int = 0  # a tied group is replaced by the next question's, up to this many times (0: nanochat)
    seed: int = 42
    eval_every: int | None = None  # validation bpb of the held-out answers; None: the base run's
    save_every: int | None = None
    keep_last: int | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "questions", "samples", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.resample_tied < 0:
            raise UserError(f"--resample-tied must be 0 or more, got {self.resample_tied}")
        if self.samples < 2:
            raise UserError("--samples must be at least 2: the advantage compares a question's samples")
        if not 0 < self.init_lr_frac <= 1 or not self.temperature > 0:
            raise UserError(f"--init-lr-frac must be in (0, 1] and --temperature > 0, got {self.init_lr_frac}, "
                            f"{self.temperature}")


def checker(conversation: dict) -> Callable[[str, str], bool]:
    """The right checker for a question of a task or a checked dataset."""
    from nanochat_next.chat import datasets
    from nanochat_next.chat.evaluate import letter
    from nanochat_next.chat.tasks import TASKS

    name = conversation.get("task")
    if name in TASKS:
        return letter if TASKS[name].choices else TASKS[name].check
    if name == "gsm8k":
        return datasets.check_gsm8k
    if name == "arc":
        return letter
    raise UserError(f"RL needs questions with a checker (a task or gsm8k/arc), not {name!r}")


def advantages(rewards: torch.Tensor) -> torch.Tensor:
    """reward - the group's mean reward: above-average samples are pushed up, below-average ones down."""
    return rewards - rewards.mean()


class RolloutStream(MicroBatchStream):
    """One micro-batch per question: its ``samples`` replies from the current model, as (inputs, targets, advantage
    per row). Targets are -1 on the prompt, the padding and every row of a tied group. The model is attached once
    the job exists (``attach``); rollouts are seeded by the micro-batch index, so a resumed run draws the same."""

    def __init__(self, questions: Sequence[dict], tokenizer, settings: RLSettings, rank: int = 0,  # noqa: PLR0913
                 world_size: int = 1, state: dict | None = None):
        if not questions:
            raise UserError("no questions to learn from")
        self.questions, self.tokenizer, self.settings = questions, tokenizer, settings
        self.checks = [checker(q) for q in questions]  # an unknown task fails here, before any rollout
        self.rank, self.world_size = rank, world_size
        state = state or {"micro_batch": 0}
        self.micro_batch = state["micro_batch"]
        self.engine = None
        self.stats: list[dict] = []
        self.last: dict = {}

    def attach(self, model: torch.nn.Module) -> None:
        from nanochat_next.infer.engine import Engine

        self.engine = Engine(model, self.tokenizer)

    def state_dict(self) -> dict:
        return {"micro_batch": self.micro_batch}

    def _group(self) -> tuple[dict, list[int], list[list[int]], torch.Tensor]:
        """The next question's rollout group: (question, prompt, sampled rows, rewards). Seeded by its index."""
        s, index = self.settings, self.micro_batch
        question = self.questions[index % len(self.questions)]  # the questions in their (shuffled) order, cycled
        self.micro_batch += 1
        prompt = render_for_reply({"messages": [m for m in question["messages"] if m["role"] != "assistant"]},
                                  self.tokenizer)
        budget = min(s.max_new_tokens, self.engine.context - len(prompt))
        if budget < 1:
            raise UserError(f"a question of {len(prompt)} tokens leaves no room for a reply in the context")
        t0 = time.perf_counter()
        replies = self.engine.generate_batch(prompt, budget, s.samples, temperature=s.temperature, top_k=s.top_k,
                                             seed=s.seed * 1_000_003 + index)
        end = self.tokenizer.special_id("<|assistant_end|>")
        # a reply that stopped ends with <|assistant_end|>: trained, so the model learns when to stop
        rows = [r + [end] if reason == "stop" else r for r, reason in zip(replies, self.engine.stop_reason)]
        rewards = torch.tensor([float(self.checks[index % len(self.questions)](self.tokenizer.decode(r),
                                                                               question["answer"])) for r in replies])
        # the last group, as text: to read what the model tries (notebook 10 shows one)
        self.last = {"question": question["messages"][0]["content"], "answer": question["answer"],
                     "replies": [self.tokenizer.decode(r) for r in replies], "rewards": rewards.tolist()}
        self.stats.append({"reward": rewards.mean().item(), "any": float(rewards.max().item() > 0),
                           "tied": float(bool((rewards == rewards[0]).all())), "tokens": sum(map(len, rows)),
                           "rollout_s": time.perf_counter() - t0})
        return question, prompt, rows, rewards

    def _micro_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        for attempt in range(self.settings.resample_tied + 1):  # dynamic sampling: a tied group is drawn again
            _, prompt, rows, rewards = self._group()
            if not self.stats[-1]["tied"]:  # the group's own record: some samples right, some wrong
                break
            self.stats[-1]["resampled"] = float(attempt < self.settings.resample_tied)  # replaced, not trained
        adv = advantages(rewards)
        end = self.tokenizer.special_id("<|assistant_end|>")
        width = len(prompt) + max(len(r) for r in rows)
        ids = torch.full((len(rows), width), end, dtype=torch.long)  # padding (never trained)
        targets = torch.full((len(rows), width), -1, dtype=torch.long)
        for row, reply in enumerate(rows):
            ids[row, :len(prompt) + len(reply)] = torch.tensor(prompt + reply)
            if adv[row] != 0:  # a tied group teaches nothing: its rows stay untrained (and uncounted)
                targets[row, len(prompt):len(prompt) + len(reply)] = torch.tensor(reply)
        # next-token prediction: position t of the input predicts target t (= token t + 1 of the row)
        return ids[:, :-1].contiguous(), targets[:, 1:].contiguous(), adv

    def pop_stats(self) -> dict:
        """What this step's rollouts did (logged into metrics.jsonl), and reset."""
        stats, self.stats = self.stats, []
        if not stats:
            return {}
        n = len(stats)  # every group sampled this step, the ones dynamic sampling replaced included
        return {"reward": sum(x["reward"] for x in stats) / n, f"pass@{self.settings.samples}":
                sum(x["any"] for x in stats) / n, "zero_groups": int(sum(x["tied"] for x in stats)),
                "resampled_groups": int(sum(x.get("resampled", 0.0) for x in stats)), "groups": n,
                "sampled_tokens": sum(x["tokens"] for x in stats), "rollout_s": sum(x["rollout_s"] for x in stats)}


def rl_run(base_record: dict, settings: RLSettings) -> TensorRun:
    """The RL run config: the starting model's fields, nanochat's RL rules; a micro-batch is one question's group."""
    base = TensorRun(**with_recipe_fields(base_record))
    if base.model_kind != "gpt":
        raise UserError("RL trains a GPT (modern or classic style); this model is a bigram")
    overrides = {k: getattr(settings, k) for k in ("eval_every", "save_every", "keep_last", "device")
                 if getattr(settings, k) is not None}
    return replace(base, **RL_RULES, **RL_LRS, **overrides, out=settings.out, steps=settings.steps,
                   seed=settings.seed, device_batch_size=settings.samples,
                   total_batch_size=settings.questions * settings.samples * base.max_seq_len)


def rl_job(run: TensorRun, tokenizer, weights: dict[str, torch.Tensor], questions: Sequence[dict],
           val: Sequence[dict], settings: RLSettings) -> BuildJob:
    """RL's ``build(procs, loader_state)`` for ``train_job``: the starting weights, the rollout stream, the LRs at
    ``init_lr_frac`` of nanochat's (no weight decay), every trained token of a step weighing the same."""
    from nanochat_next.chat.sft import ConversationLoader
    from nanochat_next.train.loop import assemble_job

    def build(procs: Processes, loader_state: dict | None) -> Job:
        loader = RolloutStream(questions, tokenizer, settings, procs.rank, procs.world, loader_state)

        def make_val_loader() -> ConversationLoader:  # the held-out questions' reference answers, in bpb
            return ConversationLoader(val, tokenizer, 4, run.max_seq_len, procs.rank, procs.world)

        job = assemble_job(run, procs, tokenizer, loader, make_val_loader, weights=weights,
                           hyperparameters=(settings.init_lr_frac, 0.0), loss_weighting="tokens")
        loader.attach(job.model)  # rollouts come from the model being trained (on-policy)
        return job

    return build


def reinforce(base: str | Path, settings: RLSettings, resume: str | None = None, progress: bool = True,
              log=print) -> dict:
    """RL from a (fine-tuned) model's directory into ``settings.out``: questions from the mix (bad input fails before
    anything is written or loaded), the run config, the job on the training loop. Returns the loop's summary."""
    from nanochat_next.atomic import writable_dir, write_text
    from nanochat_next.chat.mixture import build_mixture, parse_mix
    from nanochat_next.model.saving import load_trained
    from nanochat_next.train.loop import train_job

    parts = parse_mix(settings.mix)
    if any(not p.is_task for p in parts):
        raise UserError("--mix for RL takes tasks and checked datasets with counts (their checkers give the "
                        "rewards), not conversation files")
    model, tokenizer, config = load_trained(base, "cpu")
    if "run" not in config:
        raise UserError(f"{base} has no training record (model/config.json 'run'); train it with nanochat-next")
    questions, val = build_mixture(parts, settings.seed)
    for q in questions:
        checker(q)  # a question without a checker fails before anything is written
    run = rl_run(config["run"], settings)
    out = writable_dir(settings.out)
    write_text(out / "rl.json", json.dumps({"base": str(base), "settings": settings.__dict__,
                                            "questions": len(questions), "val": len(val)}, indent=2) + "\n")
    log(f"RL of {base}: {len(questions):,} questions ({settings.mix}); {run.steps} steps of {settings.questions} "
        f"questions x {settings.samples} samples at temperature {settings.temperature}, LR x {settings.init_lr_frac}")
    build = rl_job(run, tokenizer, model.state_dict(), questions, val, settings)
    return train_job(run, tokenizer, build, progress=progress, log=log, resume=resume)
