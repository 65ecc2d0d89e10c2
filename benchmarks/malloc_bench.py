"""Page faults and step time with glibc's malloc defaults vs ``runtime.keep_freed_memory`` (what training uses).

    python benchmarks/malloc_bench.py [--repeats 4] [--steps 15] [--out results]

The cpu profile's step (depth 4, width 256, vocab 4096, one micro-batch of 8 x 256 tokens: forward, backward,
optimizer) in fp32 eager (the default `train`), fp32 compiled and bf16 compiled (``--compile``; bf16 only where
``--dtype auto`` measures it faster). Each run is its own process, ``NANOCHAT_NEXT_MALLOC=system`` (glibc's
defaults) or not (freed memory kept); the two modes alternate, their order swapped every repeat, so a machine
getting busier slows both alike. Per run: the median step after 3 warm-up steps, the minor page faults per
step, the peak resident size and the last loss (the two modes must agree: only where the bytes live changes).
Step times are compared per repeat (a paired t-test on the log ratio, keep vs system). Writes
results/malloc_cpu.json and .md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

CONFIGS = {"float32 eager": ("float32", False), "float32 compiled": ("float32", True),
           "bfloat16 compiled": ("bfloat16", True)}
MODES = ("system", "keep")
WARMUP = 3


def worker(config: str, steps: int) -> dict:
    import contextlib
    import resource
    import time

    import torch

    from nanochat_next.runtime import keep_freed_memory
    from nanochat_next.train.config import TensorRun, build_model, compile_forward
    from nanochat_next.train.recipe import build_optimizer, scaled_hyperparameters

    kept = keep_freed_memory()  # NANOCHAT_NEXT_MALLOC=system leaves glibc's defaults
    dtype, compiled = CONFIGS[config]
    # as `train` runs (TensorRun.deterministic): a compiled embedding backward otherwise adds with atomics, and the
    # losses of two runs would differ whatever the allocator does
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(42)
    run = TensorRun(compile=compiled, muon_dtype="float32" if dtype == "float32" else "auto")
    model = build_model(run, 4096)
    optimizer = build_optimizer(run, model, *scaled_hyperparameters(run, model, 4096))
    forward = compile_forward(model) if compiled else model
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 4096, (8, 256), generator=gen), torch.randint(0, 4096, (8, 256), generator=gen)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bfloat16" else contextlib.nullcontext()
    losses, wall = [], []

    def step() -> None:
        with autocast:
            loss = forward(x, y)
        loss.backward()
        optimizer.step()
        model.zero_grad(set_to_none=True)
        losses.append(loss.item())

    for _ in range(WARMUP):
        step()
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        wall.append(1e3 * (time.perf_counter() - t0))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"kept": kept, "step_ms": statistics.median(wall), "step_ms_min": min(wall),
            "faults_per_step": (usage.ru_minflt - faults0) / steps, "max_rss_mb": usage.ru_maxrss / 1024,
            "last_loss": losses[-1]}


def bf16_is_chosen() -> bool:
    import torch

    from nanochat_next.runtime import choose_dtype

    return choose_dtype("cpu", "auto").dtype == torch.bfloat16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated, of: " + ", ".join(CONFIGS))
    parser.add_argument("--out", default="results")
    parser.add_argument("--render", metavar="JSON", help="write the report again from a run's malloc_cpu.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT", json.dumps(worker(args.worker, args.steps)), flush=True)
        return
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        args.repeats, args.steps = saved["config"]["repeats"], saved["config"]["steps"]
        write({c: row["runs"] for c, row in saved["rows"].items()}, args, saved["metadata"])
        return
    configs = [c.strip() for c in args.configs.split(",")]
    if "bfloat16 compiled" in configs and not bf16_is_chosen():
        configs.remove("bfloat16 compiled")  # this CPU runs bf16 slower: --dtype auto would never pick it
        print("bfloat16 compiled left out: --dtype auto measures fp32 faster on this CPU", flush=True)
    runs: dict[str, dict[str, list[dict]]] = {c: {m: [] for m in MODES} for c in configs}
    for repeat in range(args.repeats):
        for config in configs:
            for mode in (MODES if repeat % 2 == 0 else MODES[::-1]):
                env = {**os.environ, "NANOCHAT_NEXT_MALLOC": mode}
                proc = subprocess.run([sys.executable, __file__, "--worker", config, "--steps", str(args.steps)],
                                      capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    sys.exit(f"{config} {mode} failed:\n{proc.stderr[-2000:]}")
                result = json.loads(proc.stdout.split("RESULT", 1)[1])
                runs[config][mode].append(result)
                print(f"[{repeat + 1}/{args.repeats}] {config}, {mode}: {result['step_ms']:.0f} ms a step, "
                      f"{result['faults_per_step']:,.0f} page faults a step", flush=True)
    write(runs, args)


def summarise(runs: dict[str, dict[str, list[dict]]]) -> dict:
    from nanochat_next.bench.stats import compare

    out = {}
    for config, by_mode in runs.items():
        system, keep = by_mode["system"], by_mode["keep"]
        log_ratios = [math.log(s["step_ms"] / k["step_ms"]) for s, k in zip(system, keep)]  # > 0: keep faster
        test = compare(log_ratios, [0.0] * len(log_ratios), paired=True)
        out[config] = {
            "step_ms": {m: statistics.median(r["step_ms"] for r in by_mode[m]) for m in MODES},
            "step_ms_min": {m: min(r["step_ms_min"] for r in by_mode[m]) for m in MODES},
            "faults_per_step": {m: statistics.median(r["faults_per_step"] for r in by_mode[m]) for m in MODES},
            "max_rss_mb": {m: statistics.median(r["max_rss_mb"] for r in by_mode[m]) for m in MODES},
            "speedup": math.exp(statistics.fmean(log_ratios)),  # geometric mean of the paired ratios
            "p_value": test["p_value"],
            # each pair (one repeat: both modes) must end on the same loss, bit for bit
            "same_losses": all(s["last_loss"] == k["last_loss"] for s, k in zip(system, keep)),
            "runs": by_mode,
        }
    return out


def write(runs: dict, args, metadata: dict | None = None) -> None:
    from nanochat_next.provenance import run_metadata, write_results

    summary = summarise(runs)
    metadata = metadata or run_metadata()
    machine = metadata["machine"]
    lines = ["# Page faults: glibc's malloc defaults vs freed memory kept (cpu profile's training step)", "",
             f"{args.repeats} runs of each mode per row, alternating (order swapped every repeat), each its own "
             f"process; per run the median of {args.steps} steps after {WARMUP} warm-up steps. **speed-up** = "
             "geometric mean of the paired step-time ratios (system / keep), p = paired t-test on their logs. "
             "glibc serves every block of 32 MiB or more with a fresh mmap and unmaps it when freed, so the kernel "
             "zero-fills the same tensors' pages again every step; `runtime.keep_freed_memory` (mmap off, trim "
             "threshold 1 GiB) keeps them in the heap.", "",
             f"Machine: {machine['cpu']}, {machine['cpu_count']} cores, {machine['torch_threads']} torch threads; "
             f"torch {metadata['versions']['torch']}; measured {metadata['timestamp_utc']}.", "",
             "| step | page faults a step: defaults | kept | step ms: defaults | kept | best step ms: defaults | kept "
             "| speed-up | p | peak RSS MB: defaults | kept | same losses |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for config, s in summary.items():
        p = f"{s['p_value']:.2g}" if s["p_value"] is not None else "-"
        same = "yes" if s["same_losses"] else "**no**"
        lines.append(f"| {config} | {s['faults_per_step']['system']:,.0f} | {s['faults_per_step']['keep']:,.0f} "
                     f"| {s['step_ms']['system']:.0f} | {s['step_ms']['keep']:.0f} "
                     f"| {s['step_ms_min']['system']:.0f} | {s['step_ms_min']['keep']:.0f} "
                     f"| **{s['speedup']:.2f}x** | {p} | {s['max_rss_mb']['system']:,.0f} "
                     f"| {s['max_rss_mb']['keep']:,.0f} | {same} |")
    lines += ["", "Each run (step ms / page faults a step):", ""]
    for config, s in summary.items():
        for mode in MODES:
            lines.append(f"- {config}, {mode}: " + ", ".join(f"{r['step_ms']:.0f} / {r['faults_per_step']:,.0f}"
                                                            for r in s["runs"][mode]))
    data = {"benchmark": "malloc", "config": {"depth": 4, "n_embd": 256, "vocab": 4096, "batch": [8, 256],
                                              "steps": args.steps, "warmup": WARMUP, "repeats": args.repeats},
            "rows": summary}
    json_path, md_path = write_results(args.out, "malloc_cpu", data, "\n".join(lines), metadata)
    print("\n".join(lines[:12]))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
