"""SFT benchmark: held-out task accuracy of a base model before and after SFT, over several seeds.

    python benchmarks/sft_bench.py [--base DIR] [--seeds 42,43,44] [--steps 300] [--out results]

The base model: ``--base``, else the README's main job trained here (``train``: the cpu profile's depth-4 model,
next recipe, 200 steps on tinyshakespeare, seed 42). Each seed fine-tunes it with ``sft`` on the default
mixture (its examples and order drawn from the seed) and ``chat-eval`` scores it on the same 100 test
examples per task (test seed 0: questions the mixture never trains on). Writes results/sft_cpu.json
(top-level ``tasks``: per task the base accuracy and every seed's accuracy after SFT, ``seeds``, ``steps``) and .md.
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
COUNT = 100


def chat_eval(checkpoint: Path, out: Path) -> dict:
    if cli(["chat-eval", "--checkpoint", str(checkpoint), "--tasks", TASKS, "--count", str(COUNT), "--json",
            str(out), "--device", "cpu"]) != 0:
        raise SystemExit(f"chat-eval of {checkpoint} failed")
    return json.loads(out.read_text())["tasks"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=None)
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sft-bench-"))
    base = Path(args.base) if args.base else work / "base"
    if not args.base and cli(["train", "--no-progress", "--seed", "42", "--out", str(base)]) != 0:
        raise SystemExit("training the base model failed")
    seeds = [int(s) for s in args.seeds.split(",")]
    before = chat_eval(base, work / "base_eval.json")
    after, runs = {}, []
    for seed in seeds:
        out = work / f"sft_{seed}"
        start = time.perf_counter()
        if cli(["sft", "--base", str(base), "--mix", MIX, "--steps", str(args.steps), "--seed", str(seed), "--out",
                str(out), "--no-progress", "--eval-every", str(args.steps // 3)]) != 0:
            raise SystemExit(f"sft seed {seed} failed")
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
             "replies, or for `compare` the choice letters' logits).", "",
             "| task | kind | base model | after SFT (mean ± std) | per seed |", "|---|---|---:|---:|---|"]
    for name, t in data["tasks"].items():
        seeds = ", ".join(f"{v:.0%}" for v in t["after"])
        lines.append(f"| {name} | {t['kind']} | {t['base']:.0%} | {t['after_mean']:.1%} ± {t['after_std']:.1%} | "
                     f"{seeds} |")
    lines += ["", "| seed | SFT seconds | val bpb (assistant tokens) at step 0 | at the end |", "|---|---:|---:|---:|"]
    for r in data["runs"]:
        lines.append(f"| {r['seed']} | {r['seconds']:.0f} | {r['val_bpb_first']:.3f} | {r['val_bpb_last']:.3f} |")
    lines += ["", "Replies of the first seed's model:", ""]
    for name, t in data["tasks"].items():
        for s in t["samples"][:2]:
            lines.append(f"- {name}: {s['question']!r} -> {s['reply']!r} (answer {s['answer']!r}, "
                         f"{'right' if s['correct'] else 'wrong'})")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
