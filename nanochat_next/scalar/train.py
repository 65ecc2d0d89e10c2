"""Training the scalar models (bigram, mini-GPT): data preparation, the loop, evaluation, checkpoint.

Data order follows microgpt.py so that a run can be compared with it step for step: a
``random.Random(seed)`` shuffles the documents, the same generator then initialises the weights, and step
``i`` trains on training document ``i mod n`` (framed as ``<|bos|> doc <|bos|>``). The last
``val_fraction`` of the shuffled documents is held out (0 keeps them all for training, as microgpt does).

The bigram trains full batch: every step sees the (smoothed) counts of all training pairs. The
mini-GPT trains one document per step.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from nanochat_next.corpus import train_val_split
from nanochat_next.errors import UserError
from nanochat_next.interrupt import GracefulStop
from nanochat_next.scalar import checkpoint
from nanochat_next.scalar.bigram import ScalarBigram, bigram_counts, nll
from nanochat_next.scalar.config import ScalarRun
from nanochat_next.scalar.gpt import MiniGPTConfig, ScalarMiniGPT
from nanochat_next.scalar.optim import OPTIMIZERS
from nanochat_next.tokenizer.char import CharTokenizer

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


def train_step(model: ScalarBigram | ScalarMiniGPT, opt, lr_multiplier: float, train_tokens: list[list[int]],
               counts, step: int, run: ScalarRun) -> float:
    """One step: the loss (all pair counts for the bigram, one document for the mini-GPT), backward, update."""
    if counts is not None:
        loss = model.loss(counts, run.smoothing)
    else:
        loss = model.loss(train_tokens[step % len(train_tokens)])
    if not math.isfinite(loss.data):
        raise UserError(f"loss became {loss.data} at step {step}; lower --lr (now {run.learning_rate})")
    loss.backward()  # fills .grad of every parameter Value
    opt.step(lr_multiplier)
    opt.zero_grad()
    return loss.data


def write_metrics(metrics, record: dict, bar):
    """One metrics line; on a write error (a full disk) say so once and go on without metrics (returns None):
    the model itself is still saved, or rescued, at the end."""
    try:
        metrics.write(json.dumps(record) + "\n")
        return metrics
    except OSError as exc:
        say = bar.write if bar is not None else print
        say(f"cannot write {metrics.name} ({exc.strerror or exc}); training goes on without metrics")
        with contextlib.suppress(OSError):
            metrics.close()
        return None


def save_or_rescue(directory, model, tokenizer, summary: dict) -> Path:
    """Save the checkpoint; if that fails (full or read-only disk), save it in a fresh temporary directory
    instead and say where: a trained model is never thrown away."""
    import tempfile

    try:
        return checkpoint.save(directory, model, tokenizer, summary)
    except OSError as exc:
        rescue = checkpoint.save(tempfile.mkdtemp(prefix="nanochat-next-rescue-"), model, tokenizer, summary)
        raise UserError(f"could not write the checkpoint to {directory} ({exc.strerror or exc}); the trained model "
                        f"was saved to {rescue} instead") from None


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
    t0 = time.perf_counter()
    # Ctrl-C / SIGTERM: finish the step, then save what was trained (a second Ctrl-C stops without saving)
    with GracefulStop(bar.write if bar is not None else None) as stop:
        try:
            for step in range(run.steps):
                if stop.requested:
                    break
                loss = train_step(model, opt, schedule(step), train_tokens, counts, step, run)
                losses.append(loss)
                if metrics is not None:
                    metrics = write_metrics(metrics, {"step": step, "loss": loss,
                                                      "lr": run.learning_rate * schedule(step)}, bar)
                if on_step is not None:
                    on_step(step, loss)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        finally:
            if bar is not None:
                bar.close()
            if metrics is not None:
                metrics.close()
    interrupted = stop.requested
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
        summary["checkpoint"] = str(save_or_rescue(checkpoint_dir, model, tokenizer, summary))
    return {**summary, "model": model, "tokenizer": tokenizer, "losses": losses}
