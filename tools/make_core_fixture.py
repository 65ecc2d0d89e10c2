"""Generate the CORE parity fixture from nanochat's own core_eval code at the pinned ref.

    python tools/make_core_fixture.py --nanochat /path/to/nanochat-checkout [--out tests/fixtures]

1. Writes a small eval bundle in the real format (core.yaml, eval_data/*.jsonl, eval_meta_data.csv) into
   OUT/core_bundle/: multiple choice (0-shot and 3-shot with another delimiter), schema (2-shot), language
   modelling (0- and 1-shot, contexts with trailing spaces), and a task whose prompts are longer than the model's
   context (the crop). The items are made from a fixed word list with a fixed seed.
2. Loads our golden `modern-nanochat` model (tests/fixtures/golden: nanochat's architecture, context 64) into
   nanochat's own GPT class, and our tokenizer into nanochat's RustBPETokenizer (a tiktoken Encoding of our ranks).
   nanochat crops prompts only for a model that declares ``max_seq_len`` (its GPT does not): the script sets it to
   the model's context, so nanochat's own crop runs.
3. Runs nanochat's ``evaluate_example`` on every item (tasks shuffled and loaded as its base_eval does) and records
   what its ``forward_model`` saw and returned (input ids, per-position losses) and whether the item was correct.
   Output: OUT/core_parity.json.

Importing nanochat needs ``jinja2``, ``filelock`` and ``tokenizers`` besides torch. No nanochat code is copied: it is
imported from the checkout at run time, and its forward_model is wrapped (not changed) to record its inputs.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
from pathlib import Path

PINNED = "2f096867244e3d00a50284d1be05fa3f5dcfb84b"
REPO = Path(__file__).resolve().parents[1]
WORDS = ["the", "king", "my", "lord", "good", "sweet", "night", "love", "death", "fair", "heart", "sir", "speak",
         "come", "hear", "well", "honour", "noble", "crown", "blood", "tongue", "war", "peace", "heaven", "grace",
         "gentle", "brother", "father", "mother", "thee", "thou", "art", "hath", "doth", "shall", "never"]
TASKS = [  # (label, file, type, shots, delimiter, random baseline in percent)
    ("mc_zeroshot", "synthetic/mc.jsonl", "multiple_choice", 0, None, 100 / 3),
    ("mc_fewshot", "synthetic/mc.jsonl", "multiple_choice", 3, "\nAnswer: ", 100 / 3),
    ("schema_fewshot", "synthetic/schema.jsonl", "schema", 2, None, 50.0),
    ("lm_zeroshot", "synthetic/lm.jsonl", "language_modeling", 0, None, 0.0),
    ("lm_fewshot", "synthetic/lm.jsonl", "language_modeling", 1, None, 0.0),
    ("long_mc", "synthetic/long_mc.jsonl", "multiple_choice", 0, None, 25.0),
]


def phrase(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_bundle(root: Path) -> None:
    rng = random.Random(2026)
    items = {
        "synthetic/mc.jsonl": [{"query": f"{phrase(rng, 5).capitalize()}:", "gold": rng.randrange(3),
                                "choices": [f" {phrase(rng, 2)}." for _ in range(3)]} for _ in range(12)],
        "synthetic/schema.jsonl": [{"context_options": [phrase(rng, 4).capitalize() for _ in range(2)],
                                    "continuation": f"{phrase(rng, 3)}.", "gold": rng.randrange(2)} for _ in range(10)],
        "synthetic/lm.jsonl": [{"context": f"{phrase(rng, 6).capitalize()}," + " " * rng.randrange(3),
                                "continuation": f" {phrase(rng, 2)}"} for _ in range(10)],
        "synthetic/long_mc.jsonl": [{"query": phrase(rng, 90).capitalize(), "gold": rng.randrange(4),
                                     "choices": [f" {phrase(rng, 1)}" for _ in range(4)]} for _ in range(6)],
    }
    for name, rows in items.items():
        path = root / "eval_data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    lines = ["icl_tasks:"]
    for label, uri, kind, shots, delimiter, _ in TASKS:
        lines += [f"- label: {label}", f"  dataset_uri: {uri}", f"  num_fewshot: [{shots}]",
                  f"  icl_task_type: {kind}"]
        if delimiter is not None:
            lines.append(f"  continuation_delimiter: {json.dumps(delimiter)}")
    (root / "core.yaml").write_text("\n".join(lines) + "\n")
    with open(root / "eval_meta_data.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Eval Task", "Task Category", "Task Type", "#shots", "#datapoints", "Random baseline"])
        for label, _, kind, shots, _, base in TASKS:
            writer.writerow([label, "synthetic", kind, shots, 0, f"{base:.4f}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nanochat", required=True, help="path to a karpathy/nanochat checkout at the pinned ref")
    parser.add_argument("--out", default=str(REPO / "tests" / "fixtures"))
    args = parser.parse_args()
    head = subprocess.run(["git", "-C", args.nanochat, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    if head.strip() != PINNED:
        sys.exit(f"{args.nanochat} is at {head.strip() or '?'}, expected the pinned ref {PINNED}")
    sys.path.insert(0, args.nanochat)
    import tiktoken
    import torch
    import yaml
    from nanochat import core_eval  # imported from the checkout
    from nanochat.gpt import GPT, GPTConfig
    from nanochat.tokenizer import RustBPETokenizer

    from nanochat_next.model.saving import load_trained

    out = Path(args.out)
    bundle = out / "core_bundle"
    make_bundle(bundle)
    ours, tokenizer, _ = load_trained(REPO / "tests" / "fixtures" / "golden" / "modern-nanochat", "cpu")
    c = ours.config
    model = GPT(GPTConfig(sequence_len=c.sequence_len, vocab_size=c.vocab_size, n_layer=c.n_layer, n_head=c.n_head,
                          n_kv_head=c.n_kv_head, n_embd=c.n_embd, window_pattern=c.window_pattern))
    model.load_state_dict(ours.state_dict(), strict=True)
    model.eval()
    model.max_seq_len = c.sequence_len  # nanochat's crop runs for models that declare it
    ranks = {token: rank for rank, token in enumerate(tokenizer.token_bytes)}
    enc = tiktoken.Encoding(name="fixture", pat_str=tokenizer.pattern, mergeable_ranks=ranks,
                            special_tokens=tokenizer.special_tokens)
    theirs = RustBPETokenizer(enc, "<|bos|>")

    seen = []
    original = core_eval.forward_model

    def recording_forward(model, input_ids):  # the wrapped function runs unchanged; its inputs/outputs are kept
        losses, predictions = original(model, input_ids)
        seen.append({"ids": input_ids.tolist(), "losses": [[None if x != x else x for x in row]
                                                           for row in losses.tolist()]})
        return losses, predictions

    core_eval.forward_model = recording_forward
    config = yaml.safe_load((bundle / "core.yaml").read_text())
    records = []
    for task in config["icl_tasks"]:  # as nanochat's base_eval loads and shuffles a task
        meta = {"task_type": task["icl_task_type"], "dataset_uri": task["dataset_uri"],
                "num_fewshot": task["num_fewshot"][0],
                "continuation_delimiter": task.get("continuation_delimiter", " ")}
        data = [json.loads(line) for line in (bundle / "eval_data" / task["dataset_uri"]).read_text().splitlines()]
        random.Random(1337).shuffle(data)
        for idx in range(len(data)):
            seen.clear()
            with torch.no_grad():
                correct = bool(core_eval.evaluate_example(idx, model, theirs, data, "cpu", meta))
            records.append({"task": task["label"], "index": idx, "correct": correct, **seen[0]})
    (out / "core_parity.json").write_text(json.dumps({"nanochat_ref": PINNED, "model": "golden/modern-nanochat",
                                                      "items": records}) + "\n")
    print(f"wrote {bundle}/ and {out / 'core_parity.json'} ({len(records)} items)")


if __name__ == "__main__":
    main()
