"""Chat evaluation: task accuracy of a model on held-out task examples (the test split), as nanochat's chat_eval;
the generated tasks (``tasks``) and the checked datasets (``datasets``: GSM8K, ARC).

- generative: the question rendered with the chat template up to ``<|assistant_start|>``, the reply generated
  greedily by the engine (KV cache) until ``<|assistant_end|>``, then the task's checker;
- categorical (multiple-choice tasks: ``compare``, ARC): no generation; the logits at the reply's first
  position, restricted to the choice letters, argmax = the model's choice (nanochat's categorical eval).
  Examples go through the model in batches (right-padded: a causal model's earlier positions do not see the
  padding).

Beside every accuracy: the **majority** baseline (the best a constant reply scores on these very questions: each
answer tried as the reply to all) and the **chance** baseline (a uniform guess among the choices; for generated
tasks, the task's balanced constant-answer rate), and the number of **distinct** questions. ChatCORE is nanochat's
summary over tasks: the mean of the accuracies centred on chance, (acc - chance) / (1 - chance). With ``pass_k``
> 1, generative tasks are also sampled k times at a temperature: pass@k = the share of questions with at least
one correct sample (how RL's effect is measured, as nanochat does).

Examples are generated, scored and dropped one batch at a time: memory stays flat however many there are.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from nanochat_next.chat.tasks import Task, majority_baseline, task
from nanochat_next.errors import UserError
from nanochat_next.infer.engine import Engine
from nanochat_next.tokenizer.chat_template import render_for_reply

SAMPLES_KEPT = 10  # examples shown per task in the report (enough to read what the model does)


def prompt_ids(example: dict, tokenizer, context: int) -> list[int]:
    question = {"messages": [m for m in example["messages"] if m["role"] != "assistant"]}
    return render_for_reply(question, tokenizer)[-context:]


def generative(model: torch.nn.Module, tokenizer, examples: list[dict], check: Callable[[str, str], bool],  # noqa: PLR0913
               max_new_tokens: int, on_example: Callable[[], None] | None = None, pass_k: int = 1,
               temperature: float = 1.0, seed: int = 0) -> dict:
    """Greedy accuracy; with ``pass_k`` > 1 also k samples per question at ``temperature`` (top-k 50, as nanochat's
    RL eval): pass@k (any of the k correct) and the sampled pass@1 (the mean over samples)."""
    engine, correct, samples, outcomes, sampled = Engine(model, tokenizer), 0, [], [], []
    any_correct = sampled_correct = 0
    for i, example in enumerate(examples):
        prompt = prompt_ids(example, tokenizer, engine.context - max_new_tokens)
        reply = tokenizer.decode(engine.generate_batch(prompt, max_new_tokens, temperature=0.0)[0])
        ok = check(reply, example["answer"])
        correct += ok
        outcomes.append(int(ok))
        if pass_k > 1:  # seeded per question: the same replies on every run
            replies = engine.generate_batch(prompt, max_new_tokens, pass_k, temperature=temperature, top_k=50,
                                            seed=seed * 100_003 + i)
            hits = [check(tokenizer.decode(r), example["answer"]) for r in replies]
            any_correct += any(hits)
            sampled_correct += sum(hits)
            sampled.append(sum(hits) / pass_k)
        if len(samples) < SAMPLES_KEPT:
            samples.append({"question": example["messages"][0]["content"], "reply": reply,
                            "answer": example["answer"], "correct": bool(ok)})
        if on_example:
            on_example()
    out = {"correct": correct, "total": len(examples), "samples": samples, "outcomes": outcomes}
    if pass_k > 1:
        out.update({"pass_k": pass_k, "temperature": temperature, f"pass@{pass_k}": any_correct / len(examples),
                    "pass@1_sampled": sampled_correct / (pass_k * len(examples)), "sampled_outcomes": sampled})
    return out


@torch.no_grad()
def categorical(model: torch.nn.Module, tokenizer, examples: list[dict], batch_size: int = 32,
                on_example: Callable[[], None] | None = None) -> dict:
    """Each example's ``choices`` (letters, one token each): the model's choice is the letter with the largest
    logit right after ``<|assistant_start|>``."""
    device = next(model.parameters()).device
    correct, outcomes = 0, []
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
            outcomes.append(int(chosen == example["answer"]))
            if on_example:
                on_example()
    return {"correct": correct, "total": len(examples), "samples": [], "outcomes": outcomes}


def evaluation_set(name: str, count: int, seed: int, words: list[str]) -> tuple[str, list[dict], Callable, float]:
    """(kind, test examples, checker, chance) of a task or a checked dataset (gsm8k, arc)."""
    from nanochat_next.chat import datasets

    if name in datasets.FILES:
        if name == "smoltalk":
            raise UserError("smoltalk has no answers to check: it trains, it does not evaluate")
        examples = datasets.examples(name, "test", count, seed)
        if name == "arc":  # four (sometimes three or five) choices: chance is 1 / their number, on average
            return "categorical", examples, letter, sum(1 / len(e["choices"]) for e in examples) / len(examples)
        return "generative", examples, datasets.check_gsm8k, 0.0
    spec: Task = task(name)
    examples = spec.examples("test", count, seed, words)
    return ("categorical" if spec.choices else "generative"), examples, (letter if spec.choices else spec.check), \
        spec.chance


def letter(reply: str, answer: str) -> bool:
    return reply.strip()[:1] == answer


def evaluate_tasks(model: torch.nn.Module, tokenizer, names: list[str], count: int, seed: int, words: list[str],  # noqa: PLR0913
                   max_new_tokens: int = 24, on_example: Callable[[], None] | None = None, pass_k: int = 1,
                   temperature: float = 1.0) -> dict[str, dict]:
    """{task: {"kind", "correct", "total", "accuracy", "majority", "chance", "distinct", "seconds", "samples",
    "outcomes", ...}} on ``count`` test examples each; ``outcomes`` is 1/0 per example in order, so two models
    scored on the same examples can be compared question by question (benchmarks/rl_bench.py does); with ``pass_k``
    > 1, ``sampled_outcomes`` is each generative example's share of right samples."""
    model.eval()
    results = {}
    for name in names:
        kind, examples, check, chance = evaluation_set(name, count, seed, words)
        start = time.perf_counter()
        if kind == "categorical":
            result = {"kind": kind, **categorical(model, tokenizer, examples, on_example=on_example)}
        else:
            result = {"kind": kind, **generative(model, tokenizer, examples, check, max_new_tokens, on_example,
                                                 pass_k, temperature, seed)}
        result["accuracy"] = result["correct"] / max(result["total"], 1)
        majority, reply = majority_baseline(examples, check)
        result.update({"majority": majority, "majority_reply": reply, "chance": chance,
                       "distinct": len({e["messages"][0]["content"] for e in examples}),
                       "seconds": round(time.perf_counter() - start, 2)})
        results[name] = result
    return results


def chatcore(results: dict[str, dict]) -> float:
    """nanochat's ChatCORE: the mean over tasks of the accuracy centred on chance, (acc - chance) / (1 - chance)."""
    return sum((r["accuracy"] - r["chance"]) / (1 - r["chance"]) for r in results.values()) / len(results)


def table(results: dict[str, dict]) -> str:
    sampled = any("pass_k" in r for r in results.values())
    head = "| task | kind | accuracy | majority | chance | correct / total | distinct |"
    rule = "|---|---|---:|---:|---:|---:|---:|"
    lines = [head + (" pass@k |" if sampled else ""), rule + ("---:|" if sampled else "")]
    for name, r in results.items():
        beyond = "**" if r["accuracy"] > r["majority"] else ""  # better than any constant reply on these questions
        row = (f"| {name} | {r['kind']} | {beyond}{r['accuracy']:.1%}{beyond} | {r['majority']:.1%} | "
               f"{r['chance']:.1%} | {r['correct']} / {r['total']} | {r['distinct']} |")
        if sampled:
            key = f"pass@{r.get('pass_k')}"
            row += f" {r[key]:.1%} (k={r['pass_k']}) |" if key in r else " - |"
        lines.append(row)
    lines.append(f"ChatCORE {chatcore(results):+.4f} (the mean of (accuracy - chance) / (1 - chance)); bold: above "
                 "the majority baseline (what a constant reply scores on these questions)")
    return "\n".join(lines)
