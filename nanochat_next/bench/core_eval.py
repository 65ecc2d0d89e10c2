"""CORE: nanochat's headline base-model metric (the DCLM paper's), evaluated the same way, item for item.

The eval bundle (nanochat's ``eval_bundle.zip``) holds ``core.yaml`` (22 few-shot tasks: a label, a task type, a
data file, the number of few-shot examples, a continuation delimiter), ``eval_data/*.jsonl`` (the items) and
``eval_meta_data.csv`` (each task's random-guess accuracy, in percent). For every item:

1. few-shot examples: ``k`` other items of the task, drawn with ``random.Random(1234 + index)`` (never the item);
2. the prompts, by task type (as nanochat's Jinja templates render them; tests/fixtures/core_parity.json checks):
   - multiple choice: the same context, one continuation per choice (the answer is the choice);
   - schema: one context per option, the same continuation (the answer is the context);
   - language modelling: the context without and with the continuation (the answer must be generated exactly);
3. each prompt tokenized with ``<|bos|>`` in front, and cropped from the left to the model's context: the start of
   a long few-shot prompt goes, the part being scored stays;
4. one forward over all of the item's prompts (padded with ``<|bos|>``): per position the loss of the next token;
5. multiple choice and schema: the option with the lowest mean loss over its scored tokens is the answer;
   language modelling: correct when greedy decoding reproduces every continuation token.

A task's accuracy is centred on its random baseline, ``(acc - base) / (1 - base)``, and CORE is the mean of the
centred accuracies (GPT-2 scores 0.2565; nanochat's leaderboard goal). With ``max_per_task`` each task's items
are shuffled with ``random.Random(1337)`` and the first ``max_per_task`` kept, as nanochat does.

Where nanochat deviates from the DCLM reference (its note: squad 31% vs 37%), we match nanochat. One difference:
nanochat crops only models that declare a ``max_seq_len`` (its own GPT does not, and reads positions up to 10x
its training context); we always crop to the model's training context (``sequence_len``). The parity fixture
sets ``max_seq_len`` on nanochat's model so both crop the same way.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from nanochat_next.errors import UserError

BUNDLE_URL = "https://karpathy-public.s3.us-west-2.amazonaws.com/eval_bundle.zip"  # nanochat's
URL_ENV = "NANOCHAT_NEXT_CORE_URL"  # a mirror of the zip (or a local file:// URL, as the tests use)
TASK_TYPES = ("multiple_choice", "schema", "language_modeling")
FEWSHOT_SEED, SHUFFLE_SEED = 1234, 1337  # nanochat's


@dataclass(frozen=True)
class Task:
    label: str
    kind: str  # one of TASK_TYPES
    data: Path
    fewshot: int
    delimiter: str
    baseline: float  # random-guess accuracy, 0..1


# ------------------------------------------------------------------------------------------------ the bundle

def bundle_dir(path: str | Path | None = None, allow_download: bool = True) -> Path:
    """The bundle's directory: ``path`` (a directory or a .zip), else the cache's copy, downloaded once (the zip's
    sha256 recorded on first download and checked on every later extraction)."""
    from nanochat_next.atomic import sha256_file
    from nanochat_next.corpus import cache_dir, download

    if path is not None:
        path = Path(path)
        if path.is_dir():
            return find_root(path)
        if path.is_file() and path.suffix == ".zip":
            return extract(path, path.with_suffix(""))
        raise UserError(f"--bundle {path} is neither a directory nor a .zip file")
    root = cache_dir() / "core"
    if (root / "eval_bundle" / "core.yaml").is_file():
        return root / "eval_bundle"
    archive = root / "eval_bundle.zip"
    url = os.environ.get(URL_ENV, BUNDLE_URL)
    if not archive.is_file():
        if not allow_download:
            raise UserError(f"the CORE eval bundle is not in the cache ({archive}) and downloads are off: put "
                            f"{BUNDLE_URL} there, or pass --bundle PATH")
        try:
            download(url, archive, None)
        except OSError as exc:
            raise UserError(f"could not download the CORE eval bundle from {url} ({exc}); put the zip at {archive} "
                            f"by hand, pass --bundle PATH, or set {URL_ENV} to a mirror") from None
        archive.with_name(archive.name + ".sha256").write_text(sha256_file(archive) + "\n")
    pin = archive.with_name(archive.name + ".sha256")
    if pin.is_file() and pin.read_text().strip() != sha256_file(archive):
        raise UserError(f"{archive} does not match the sha256 recorded when it was downloaded ({pin}): delete both "
                        "to download it again")
    return extract(archive, root / "eval_bundle")


def extract(archive: Path, dest: Path) -> Path:
    """The zip unpacked into ``dest`` atomically (a temporary sibling, renamed into place)."""
    if (dest / "core.yaml").is_file():
        return dest
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as z:
            z.extractall(tmp)
        root = find_root(tmp)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(root, dest)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"{archive} is not a usable eval bundle ({exc}); delete it to download it again") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def find_root(path: Path) -> Path:
    """The directory holding core.yaml: ``path`` itself or its ``eval_bundle`` folder (the zip's layout)."""
    for candidate in (path, path / "eval_bundle"):
        if (candidate / "core.yaml").is_file():
            return candidate
    raise UserError(f"{path} has no core.yaml: not a CORE eval bundle")


def load_tasks(bundle: Path, only: list[str] | None = None) -> list[Task]:
    """The bundle's tasks (in core.yaml's order) with their random baselines; ``only`` keeps those labels."""
    import yaml

    try:
        config = yaml.safe_load((bundle / "core.yaml").read_text(encoding="utf-8"))
        with open(bundle / "eval_meta_data.csv", encoding="utf-8") as f:
            baselines = {row["Eval Task"]: float(row["Random baseline"]) / 100 for row in csv.DictReader(f)}
        tasks = [Task(t["label"], t["icl_task_type"], bundle / "eval_data" / t["dataset_uri"], t["num_fewshot"][0],
                      t.get("continuation_delimiter", " "), baselines[t["label"]]) for t in config["icl_tasks"]]
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise UserError(f"{bundle} is not a usable CORE bundle ({type(exc).__name__}: {exc})") from None
    unknown = [t.label for t in tasks if t.kind not in TASK_TYPES]
    if unknown:
        raise UserError(f"unknown task types in {bundle / 'core.yaml'}: {unknown}")
    if only:
        missing = sorted(set(only) - {t.label for t in tasks})
        if missing:
            labels = ", ".join(t.label for t in tasks)
            raise UserError(f"no task {', '.join(missing)} in the bundle; its tasks: {labels}")
        tasks = [t for t in tasks if t.label in only]
    return tasks


def load_items(task: Task, max_per_task: int | None = None) -> list[dict]:
    """A task's items, shuffled with nanochat's seed and cut to ``max_per_task`` (None: all)."""
    try:
        items = [json.loads(line) for line in task.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {task.data} ({exc})") from None
    random.Random(SHUFFLE_SEED).shuffle(items)
    return items[:max_per_task] if max_per_task else items


# ------------------------------------------------------------------------------------------- prompts and scoring

def fewshot_examples(items: list[dict], index: int, k: int) -> list[dict]:
    """k items other than ``index``, drawn with a seed of the index (the same draw every run, every machine)."""
    if k == 0:
        return []
    rng = random.Random(FEWSHOT_SEED + index)
    return [items[i] for i in rng.sample([i for i in range(len(items)) if i != index], k)]


def render(kind: str, item: dict, delimiter: str, shots: list[dict]) -> list[str]:
    """The item's prompts as nanochat's templates render them: few-shot examples each followed by a blank line."""
    if kind == "multiple_choice":
        head = "".join(f"{s['query']}{delimiter}{s['choices'][s['gold']]}\n\n" for s in shots)
        return [f"{head}{item['query']}{delimiter}{choice}" for choice in item["choices"]]
    if kind == "schema":
        head = "".join(f"{s['context_options'][s['gold']]}{delimiter}{s['continuation']}\n\n" for s in shots)
        return [f"{head}{option}{delimiter}{item['continuation']}" for option in item["context_options"]]
    # language modelling: contexts are trimmed (some datasets carry trailing spaces), and the prompt without the
    # continuation is stripped, so it stays a clean prefix of the one with it in token space
    head = "".join(f"{s['context'].strip()}{delimiter}{s['continuation']}\n\n" for s in shots)
    without = f"{head}{item['context'].strip()}{delimiter}"
    return [without.strip(), f"{without}{item['continuation']}"]


def common_length(sequences: list[list[int]], from_end: bool = False) -> int:
    """How many tokens all sequences share at the start (or the end)."""
    shortest = min(len(s) for s in sequences)
    for n in range(shortest):
        position = -1 - n if from_end else n
        if any(s[position] != sequences[0][position] for s in sequences):
            return n
    return shortest


def spans(kind: str, tokens: list[list[int]]) -> tuple[list[list[int]], list[tuple[int, int]]]:
    """The sequences to score and, per sequence, the [start, end) of its scored tokens."""
    if kind == "multiple_choice":  # the choices differ after the shared context
        start = common_length(tokens)
        return tokens, [(start, len(t)) for t in tokens]
    if kind == "schema":  # the contexts differ before the shared continuation
        tail = common_length(tokens, from_end=True)
        return tokens, [(len(t) - tail, len(t)) for t in tokens]
    without, with_ = tokens
    if without != with_[:len(without)] or len(without) >= len(with_):
        raise UserError("a language-modelling prompt without its continuation is not a prefix of the one with it")
    return [with_], [(len(without), len(with_))]  # scored: the continuation's tokens


def crop(tokens: list[list[int]], where: list[tuple[int, int]], context: int):
    """Sequences longer than the context lose their start (the scored tokens are at the end and stay); None when
    a scored part itself does not fit (its first token needs one token before it to be predicted from)."""
    out_tokens, out_where = [], []
    for t, (s, e) in zip(tokens, where):
        cut = max(0, len(t) - context)
        if s - cut < 1:
            return None
        out_tokens.append(t[cut:])
        out_where.append((s - cut, e - cut))
    return out_tokens, out_where


def item_inputs(tokenizer, kind: str, prompts: list[str], context: int):
    """(ids (rows, width) padded with <|bos|>, each row's scored [start, end)), or None when a scored part does not
    fit the context."""
    tokens = [tokenizer.encode(p, prepend_bos=True) for p in prompts]
    cropped = crop(*spans(kind, tokens), context)
    if cropped is None:
        return None
    tokens, where = cropped
    ids = torch.full((len(tokens), max(len(t) for t in tokens)), tokenizer.bos_id, dtype=torch.long)  # pads: unscored
    for row, t in enumerate(tokens):
        ids[row, :len(t)] = torch.tensor(t)
    return ids, where


@torch.no_grad()
def score_item(model: torch.nn.Module, tokenizer, kind: str, prompts: list[str], device: torch.device,  # noqa: PLR0913
               context: int, gold: int | None = None, keep: bool = False) -> dict:
    """One forward over the item's prompts; {"correct", "mean_losses" | "predicted", "margin"} (``keep``: also the
    ids and the per-position losses, what the parity test compares with nanochat's)."""
    inputs = item_inputs(tokenizer, kind, prompts, context)
    if inputs is None:  # counted as wrong, and said (nanochat asserts, or scores a slice that wraps around)
        return {"correct": False, "skipped": f"a scored part is longer than the context of {context} tokens"}
    ids, where = inputs
    logits = model(ids.to(device)).float()  # (rows, width, vocab)
    # the loss of position i is that of token i + 1, predicted from the tokens up to i
    losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:].to(device), reduction="none")
    kept = {"ids": ids.tolist(), "losses": losses.tolist()} if keep else {}
    if kind == "language_modeling":
        (s, e), = where
        scored = logits[0, s - 1:e - 1]
        predicted = scored.argmax(-1)
        top2 = scored.topk(2, dim=-1).values if scored.size(-1) > 1 else torch.zeros(len(scored), 2)
        return {"correct": bool((predicted.cpu() == ids[0, s:e]).all()), "predicted": predicted.tolist(),
                "margin": float((top2[:, 0] - top2[:, 1]).min()), **kept}  # a near tie could flip on another CPU
    means = [losses[row, s - 1:e - 1].mean().item() for row, (s, e) in enumerate(where)]
    ranked = sorted(means)
    return {"correct": means.index(ranked[0]) == gold, "mean_losses": means,
            "margin": ranked[1] - ranked[0] if len(ranked) > 1 else float("inf"), **kept}


def evaluate_task(model: torch.nn.Module, tokenizer, task: Task, items: list[dict], device: torch.device,
                  on_item: Callable[[], None] | None = None) -> list[dict]:
    """Every item's result, in the items' order (nothing kept between items: memory stays flat)."""
    context = model.config.sequence_len
    results = []
    for index, item in enumerate(items):
        prompts = render(task.kind, item, task.delimiter, fewshot_examples(items, index, task.fewshot))
        results.append(score_item(model, tokenizer, task.kind, prompts, device, context, item.get("gold")))
        if on_item is not None:
            on_item()
    return results


def centred(accuracy: float, baseline: float) -> float:
    """Accuracy above chance, as a fraction of the room above chance: 0 = guessing, 1 = perfect."""
    return (accuracy - baseline) / (1.0 - baseline)


def evaluate_core(model: torch.nn.Module, tokenizer, bundle: Path, max_per_task: int | None = None,
                  only: list[str] | None = None, progress: bool = True) -> dict:
    """CORE of a model over the bundle's tasks: per task accuracy, centred accuracy, items, seconds; and CORE."""
    from tqdm.auto import tqdm

    tasks = load_tasks(bundle, only)
    loaded = [(task, load_items(task, max_per_task)) for task in tasks]  # bad data fails before any scoring
    device = next(model.parameters()).device
    model.eval()
    rows = {}
    with tqdm(total=sum(len(items) for _, items in loaded), desc="CORE", unit="item", disable=not progress) as bar:
        for task, items in loaded:
            t0 = time.perf_counter()
            results = evaluate_task(model, tokenizer, task, items, device, on_item=lambda: bar.update(1))
            accuracy = sum(r["correct"] for r in results) / len(results)
            rows[task.label] = {"type": task.kind, "fewshot": task.fewshot, "items": len(results),
                                "unscorable": sum("skipped" in r for r in results),
                                "accuracy": accuracy, "random_baseline": task.baseline,
                                "centred": centred(accuracy, task.baseline),
                                "seconds": round(time.perf_counter() - t0, 2)}
    core = sum(r["centred"] for r in rows.values()) / len(rows)
    return {"core": core, "tasks": rows, "max_per_task": max_per_task}


def table(result: dict) -> str:
    lines = ["| task | type | shots | items | accuracy | random | centred |", "|---|---|---:|---:|---:|---:|---:|"]
    for label, r in result["tasks"].items():
        lines.append(f"| {label} | {r['type']} | {r['fewshot']} | {r['items']} | {r['accuracy']:.4f} | "
                     f"{r['random_baseline']:.4f} | {r['centred']:+.4f} |")
    lines.append(f"| **CORE** | | | | | | **{result['core']:+.4f}** |")
    return "\n".join(lines)
