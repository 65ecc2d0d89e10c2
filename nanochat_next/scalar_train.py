"""Training the scalar models (bigram, mini-GPT): data preparation, the loop, evaluation, checkpoint.

Data order follows microgpt.py so that a run can be compared with it step for step: a
``random.Random(seed)`` shuffles the documents, the same generator then initialises the weights, and step
``i`` trains on training document ``i mod n`` (framed as ``<|bos|> doc <|bos|>``). The last
``val_fraction`` of the shuffled documents is held out (0 keeps them all for training, as microgpt does).

The bigram trains full batch: every step sees the (smoothed) counts of all training pairs. The
mini-GPT trains one document per step.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from nanochat_next import scalar_checkpoint
from nanochat_next.char_tokenizer import CharTokenizer
from nanochat_next.corpus import train_val_split
from nanochat_next.errors import UserError
from nanochat_next.scalar_bigram import ScalarBigram, bigram_counts, nll
from nanochat_next.scalar_gpt import MiniGPTConfig, ScalarMiniGPT
from nanochat_next.scalar_optim import OPTIMIZERS
from nanochat_next.schedule import LRSchedule

MODEL_KINDS = ("bigram", "mini-gpt")
DEFAULT_LR = {("mini-gpt", "adamw"): 1e-2, ("mini-gpt", "sgd"): 0.1, ("bigram", "adamw"): 0.5, ("bigram", "sgd"): 50.0}


@dataclass(frozen=True)
class ScalarRun:
    """Every setting of a scalar training run (recorded in the checkpoint)."""

    model_kind: str = "mini-gpt"
    steps: int = 500
    optimizer: str = "adamw"
    lr: float | None = None  # None: DEFAULT_LR for the model kind and optimizer
    lr_schedule: str = "linear"
    warmup_ratio: float = 0.0
    warmdown_ratio: float = 0.5
    final_fraction: float = 0.0
    weight_decay: float = 0.0
    seed: int = 42
    val_fraction: float = 0.1
    eval_docs: int = 200
    smoothing: float = 1.0  # bigram: pseudo-count added to every pair (add-one smoothing)
    n_embd: int = 16
    n_head: int = 4
    n_layer: int = 1
    block_size: int = 16

    def __post_init__(self) -> None:
        if self.model_kind not in MODEL_KINDS:
            raise UserError(f"unknown model kind {self.model_kind!r}; choose one of {', '.join(MODEL_KINDS)}")
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.steps < 1:
            raise UserError(f"steps must be at least 1, got {self.steps}")
        if self.lr is not None and (math.isnan(self.lr) or self.lr <= 0):
            raise UserError(f"learning rate must be > 0, got {self.lr}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise UserError(f"val fraction must be in [0, 1), got {self.val_fraction}")
        if self.smoothing < 0:
            raise UserError(f"smoothing must be >= 0, got {self.smoothing}")
        self.schedule()  # validates the schedule settings

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[(self.model_kind, self.optimizer)]

    def schedule(self) -> LRSchedule:
        return LRSchedule(self.steps, self.warmup_ratio, self.warmdown_ratio, self.final_fraction, self.lr_schedule)


Prepared = tuple[random.Random, CharTokenizer, list[list[int]], list[list[int]]]


def prepare(docs: Sequence[str], run: ScalarRun) -> Prepared:
    """Shuffle (seeded), build the character vocabulary, split, and frame every document with <|bos|>."""
    docs = [d for d in docs if d]
    if len(docs) < (2 if run.val_fraction else 1):
        raise UserError(f"need at least {2 if run.val_fraction else 1} non-empty documents, got {len(docs)}")
    rng = random.Random(run.seed)
    rng.shuffle(docs)
    tokenizer = CharTokenizer.from_text(docs)
    train_docs, val_docs = train_val_split(docs, run.val_fraction) if run.val_fraction else (docs, [])
    bos = tokenizer.bos_id

    def frame(d: str) -> list[int]:
        return [bos, *tokenizer.encode(d), bos]

    return rng, tokenizer, [frame(d) for d in train_docs], [frame(d) for d in val_docs]


def build_model(run: ScalarRun, vocab_size: int, rng: random.Random) -> ScalarBigram | ScalarMiniGPT:
    if run.model_kind == "bigram":
        return ScalarBigram(vocab_size)
    config = MiniGPTConfig(vocab_size, run.n_embd, run.n_head, run.n_layer, run.block_size)
    return ScalarMiniGPT(config, rng=rng)


def evaluate(model: ScalarBigram | ScalarMiniGPT, token_docs: Sequence[list[int]], max_docs: int) -> float:
    """Mean next-token loss (nats per token): all documents for the bigram (cheap), the first max_docs for
    the mini-GPT (each costs a forward pass on scalars)."""
    if not token_docs:
        return math.nan
    if isinstance(model, ScalarBigram):
        return nll(model.probs(), bigram_counts(token_docs, model.vocab_size))
    token_docs = list(token_docs)[:max_docs]
    total, count = 0.0, 0
    for tokens in token_docs:
        n = min(model.config.block_size, len(tokens) - 1)
        total += model.loss(tokens).data * n
        count += n
    return total / count


def train(docs: Sequence[str], run: ScalarRun, checkpoint_dir: str | Path | None = None, progress: bool = True,
          on_step: Callable[[int, float], None] | None = None, data_name: str = "") -> dict:
    """Train per ``run``; save a checkpoint (also on Ctrl-C) if checkpoint_dir is given; return a summary."""
    rng, tokenizer, train_tokens, val_tokens = prepare(docs, run)
    model = build_model(run, tokenizer.vocab_size, rng)
    opt = OPTIMIZERS[run.optimizer](model.params, run.learning_rate, weight_decay=run.weight_decay)
    schedule = run.schedule()
    counts = bigram_counts(train_tokens, tokenizer.vocab_size) if run.model_kind == "bigram" else None
    metrics = None
    if checkpoint_dir is not None:
        Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
        metrics = open(Path(checkpoint_dir) / "metrics.jsonl", "w", encoding="utf-8")  # noqa: SIM115
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=run.steps, desc=f"train {run.model_kind}", unit="step")
    losses: list[float] = []
    interrupted = False
    t0 = time.perf_counter()
    try:
        for step in range(run.steps):
            if counts is not None:
                loss = model.loss(counts, run.smoothing)
            else:
                loss = model.loss(train_tokens[step % len(train_tokens)])
            if not math.isfinite(loss.data):
                raise UserError(f"loss became {loss.data} at step {step}; lower --lr (now {run.learning_rate})")
            loss.backward()
            lr_multiplier = schedule(step)
            opt.step(lr_multiplier)
            opt.zero_grad()
            losses.append(loss.data)
            if metrics is not None:
                metrics.write(json.dumps({"step": step, "loss": loss.data, "lr": run.learning_rate * lr_multiplier})
                              + "\n")
            if on_step is not None:
                on_step(step, loss.data)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.data:.4f}", refresh=False)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
        if metrics is not None:
            metrics.close()
    seconds = time.perf_counter() - t0
    val_loss = evaluate(model, val_tokens, run.eval_docs)
    summary = {
        "run": asdict(run),
        "data": data_name,
        "steps_done": len(losses),
        "interrupted": interrupted,
        "train_seconds": seconds,
        "steps_per_s": len(losses) / seconds if seconds > 0 else math.nan,
        "final_train_loss": losses[-1] if losses else math.nan,
        "val_loss": val_loss,
        "num_params": len(model.params),
        "vocab_size": tokenizer.vocab_size,
        "train_documents": len(train_tokens),
        "val_documents": len(val_tokens),
        "val_documents_evaluated": min(len(val_tokens), run.eval_docs if run.model_kind == "mini-gpt" else math.inf),
    }
    if checkpoint_dir is not None:
        summary["checkpoint"] = str(scalar_checkpoint.save(checkpoint_dir, model, tokenizer, summary))
    return {**summary, "model": model, "tokenizer": tokenizer, "losses": losses}
