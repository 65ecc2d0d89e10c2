"""Chat evaluation: task accuracy of a model on held-out task examples (the test split), as nanochat's chat_eval;
the generated tasks (``tasks``) and the checked datasets (``datasets``: GSM8K, ARC).

- generative: the question rendered with the chat template up to ``<|assistant_start|>``, the reply generated
  greedily by the engine (KV cache) until ``<|assistant_end|>``, then the task's checker;
- categorical (multiple-choice tasks: ``compare``, ARC): no generation; the logits at the reply's first
  position, restricted to the choice letters, argmax = the model's choice (nanochat's categorical eval).
  Examples go through the model in batches (right-padded: a causal model's earlier positions do not see the
  padding).

Examples are generated, scored and dropped one batch at a time: memory stays flat however many there are.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from nanochat_next.chat.tasks import Task, task
from nanochat_next.errors import UserError
from nanochat_next.infer.engine import Engine
from nanochat_next.tokenizer.chat_template import render_for_reply

SAMPLES_KEPT = 3  # examples shown per task in the report


def prompt_ids(example: dict, tokenizer, context: int) -> list[int]:
    question = {"messages": [m for m in example["messages"] if m["role"] != "assistant"]}
    return render_for_reply(question, tokenizer)[-context:]


def generative(model: torch.nn.Module, tokenizer, examples: list[dict], check: Callable[[str, str], bool],
               max_new_tokens: int, on_example: Callable[[], None] | None = None) -> dict:
    engine, correct, samples = Engine(model, tokenizer), 0, []
    for example in examples:
        prompt = prompt_ids(example, tokenizer, engine.context - max_new_tokens)
        reply = tokenizer.decode(engine.generate_batch(prompt, max_new_tokens, temperature=0.0)[0])
        ok = check(reply, example["answer"])
        correct += ok
        if len(samples) < SAMPLES_KEPT:
            samples.append({"question": example["messages"][0]["content"], "reply": reply,
                            "answer": example["answer"], "correct": bool(ok)})
        if on_example:
            on_example()
    return {"correct": correct, "total": len(examples), "samples": samples}


@torch.no_grad()
def categorical(model: torch.nn.Module, tokenizer, examples: list[dict], batch_size: int = 32,
                on_example: Callable[[], None] | None = None) -> dict:
    """Each example's ``choices`` (letters, one token each): the model's choice is the letter with the largest
    logit right after ``<|assistant_start|>``."""
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(examples), batch_size):
        batch = examples[start:start + batch_size]
        prompts = [prompt_ids(e, tokenizer, model.config.sequence_len) for e in batch]
        width = max(map(len, prompts))
        ids = torch.tensor([p + [tokenizer.bos_id] * (width - len(p)) for p in prompts], device=device)
        logits = model(ids)  # (B, T, vocab)
        for row, (prompt, example) in enumerate(zip(prompts, batch)):
            letters = [tokenizer.encode(letter)[0] for letter in example["choices"]]
            chosen = example["choices"][int(logits[row, len(prompt) - 1, letters].argmax())]
            correct += chosen == example["answer"]
            if on_example:
                on_example()
    return {"correct": correct, "total": len(examples), "samples": []}


def evaluation_set(name: str, count: int, seed: int, words: list[str]) -> tuple[str, list[dict], Callable | None]:
    """(kind, test examples, checker) of a task or a checked dataset (gsm8k, arc)."""
    from nanochat_next.chat import datasets

    if name in datasets.FILES:
        if name == "smoltalk":
            raise UserError("smoltalk has no answers to check: it trains, it does not evaluate")
        examples = datasets.examples(name, "test", count, seed)
        return ("categorical", examples, None) if name == "arc" else ("generative", examples, datasets.check_gsm8k)
    spec: Task = task(name)
    examples = spec.examples("test", count, seed, words)
    return ("categorical", examples, None) if spec.choices else ("generative", examples, spec.check)


def evaluate_tasks(model: torch.nn.Module, tokenizer, names: list[str], count: int, seed: int, words: list[str],
                   max_new_tokens: int = 24, on_example: Callable[[], None] | None = None) -> dict[str, dict]:
    """{task: {"kind", "correct", "total", "accuracy", "seconds", "samples"}} on ``count`` test examples each."""
    model.eval()
    results = {}
    for name in names:
        kind, examples, check = evaluation_set(name, count, seed, words)
        start = time.perf_counter()
        if kind == "categorical":
            result = {"kind": kind, **categorical(model, tokenizer, examples, on_example=on_example)}
        else:
            result = {"kind": kind, **generative(model, tokenizer, examples, check, max_new_tokens, on_example)}
        result["accuracy"] = result["correct"] / max(result["total"], 1)
        result["seconds"] = round(time.perf_counter() - start, 2)
        results[name] = result
    return results


def table(results: dict[str, dict]) -> str:
    lines = ["| task | kind | accuracy | correct / total |", "|---|---|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['kind']} | {r['accuracy']:.1%} | {r['correct']} / {r['total']} |")
    return "\n".join(lines)
