"""SFT benchmark: held-out task accuracy of a base model before and after SFT, over several seeds.

    python benchmarks/sft_bench.py [--base DIR] [--seeds 42,43,44] [--steps 300] [--out results] [--keep DIR]

The base model: ``--base``, else the README's main job trained here (``train``: the cpu profile's depth-4 model,
next recipe, 200 steps on tinyshakespeare, seed 42). Each seed fine-tunes it with ``sft`` on the default
mixture (its examples and order drawn from the seed) and ``chat-eval`` scores it on the same 200 test
examples per task (test seed 0: questions the mixture never trains on), beside each task's majority-answer
baseline (what the best constant reply scores on those questions) and chance. Writes results/sft_cpu.json
(top-level ``tasks``: per task the base accuracy, every seed's accuracy after SFT, ``majority``, ``chance``;
``seeds``, ``steps``) and .md. ``--keep DIR`` keeps the base and SFT models (DIR/base, DIR/sft_<seed>): the RL
benchmark starts from them (benchmarks/rl_bench.py --sft DIR).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from nanochat_next.cli.main import main as cli
from nanochat_next.provenance import write_results

TASKS = "spelling,letters,arith,identity,compare"
MIX = "spelling:2000,letters:2000,arith:2000,identity:200,compare:1000"
COUNT = 200


def chat_eval(checkpoint: Path, out: Path) -> dict:
    if cli(["chat-eval", "--checkpoint", str(checkpoint), "--tasks", TASKS, "--count", str(COUNT), "--json",
            str(out), "--device", "cpu"]) != 0:
        raise SystemExit(f"chat-eval of {checkpoint} failed")
    return json.loads(out.read_text())["tasks"]


def train_sft(base: Path, seed: int, steps: int, out: Path) -> None:
    """This benchmark's SFT recipe (the RL benchmark trains its missing SFT models with it too)."""
    if cli(["sft", "--base", str(base), "--mix", MIX, "--steps", str(steps), "--seed", str(seed), "--out", str(out),
            "--no-progress", "--eval-every", str(steps // 3)]) != 0:
        raise SystemExit(f"sft seed {seed} failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=None)
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", default="results")
    parser.add_argument("--keep", default=None, help="keep the base and SFT models here (default: a temporary dir)")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="sft-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    base = Path(args.base) if args.base else work / "base"
    if not args.base and cli(["train", "--no-progress", "--seed", "42", "--out", str(base)]) != 0:
        raise SystemExit("training the base model failed")
    seeds = [int(s) for s in args.seeds.split(",")]
    before = chat_eval(base, work / "base_eval.json")
    after, runs = {}, []
    for seed in seeds:
        out = work / f"sft_{seed}"
        start = time.perf_counter()
        train_sft(base, seed, args.steps, out)
        metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        evals = [m for m in metrics if "val_bpb" in m]
        runs.append({"seed": seed, "seconds": round(time.perf_counter() - start, 1),
                     "val_bpb_first": evals[0]["val_bpb"], "val_bpb_last": evals[-1]["val_bpb"]})
        after[seed] = chat_eval(out, work / f"eval_{seed}.json")
    tasks = {}
    for name in TASKS.split(","):
        values = [after[s][name]["accuracy"] for s in seeds]
        tasks[name] = {"kind": before[name]["kind"], "base": before[name]["accuracy"], "after": values,
                       "after_mean": statistics.mean(values),
                       "after_std": statistics.stdev(values) if len(values) > 1 else 0.0,
                       "majority": before[name]["majority"], "majority_reply": before[name]["majority_reply"],
                       "chance": before[name]["chance"], "distinct": before[name]["distinct"],
                       "beyond_majority": min(values) > before[name]["majority"],
                       "samples": after[seeds[0]][name]["samples"]}
    data = {"benchmark": "sft", "tasks": tasks, "seeds": seeds, "steps": args.steps, "mix": MIX,
            "test_examples_per_task": COUNT, "runs": runs, "base": str(args.base or "trained here (README main job)")}
    json_path, md_path = write_results(args.out, "sft_cpu", data, report(data))
    print(f"wrote {json_path} and {md_path}")


def report(data: dict) -> str:
    lines = ["# SFT on CPU: task accuracy before and after", "",
             f"`python benchmarks/sft_bench.py`: the base model (cpu profile, depth 4, 200 steps of tinyshakespeare) "
             f"fine-tuned by `nanochat-next sft` for {data['steps']} steps on `{data['mix']}` with seeds "
             f"{', '.join(map(str, data['seeds']))}, then `nanochat-next chat-eval` on "
             f"{data['test_examples_per_task']} held-out examples per task (questions never trained on; greedy "
             "replies, or for `compare` the choice letters' logits). Majority: what the best constant reply scores on "
             "these very questions (every answer tried as the reply to all); chance: a uniform guess among the "
             "answers. Bold: every seed above the majority baseline.", "",
             "| task | kind | distinct questions | majority (reply) | chance | base model | after SFT (mean ± std) | "
             "per seed |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for name, t in data["tasks"].items():
        seeds = ", ".join(f"{v:.1%}" for v in t["after"])
        mean = f"{t['after_mean']:.1%} ± {t['after_std']:.1%}"
        lines.append(f"| {name} | {t['kind']} | {t['distinct']} | {t['majority']:.1%} ({t['majority_reply'][:24]!r}) | "
                     f"{t['chance']:.1%} | {t['base']:.1%} | {'**' + mean + '**' if t['beyond_majority'] else mean} | "
                     f"{seeds} |")
    learned = [n for n, t in data["tasks"].items() if t["beyond_majority"]]
    not_learned = [n for n in data["tasks"] if n not in learned]
    lines += ["", f"Learned beyond the majority baseline on every seed: {', '.join(learned) or 'none'}. "
              f"Not beyond it: {', '.join(not_learned) or 'none'}.", "",
              "How each task is checked: `spelling` the exact letters; `letters` and `arith` the first integer of the "
              "reply; `compare` the choice letter with the larger logit; `identity` only whether the reply names "
              "nanochat-next exactly when the question asks who it is (its other half, e.g. 'Is the sun hot?', "
              "counts as right whatever else the reply says, so a constant reply scores 50%)."]
    lines += ["", "| seed | SFT seconds | val bpb (assistant tokens) at step 0 | at the end |", "|---|---:|---:|---:|"]
    for r in data["runs"]:
        lines.append(f"| {r['seed']} | {r['seconds']:.0f} | {r['val_bpb_first']:.3f} | {r['val_bpb_last']:.3f} |")
    lines += ["", "Replies of the first seed's model:", "", *reply_lines(data["tasks"])]
    return "\n".join(lines)


def reply_lines(tasks: dict) -> list[str]:
    """Two kept replies per task, as a learner reads them (question -> reply, the answer, right or wrong)."""
    return [f"- {name}: {s['question']!r} -> {s['reply']!r} (answer {s['answer']!r}, "
            f"{'right' if s['correct'] else 'wrong'})" for name, t in tasks.items() for s in t["samples"][:2]]


if __name__ == "__main__":
    main()
