"""Where a training step's time goes: torch.profiler over the cpu profile's step, ours and nanochat's.

    python benchmarks/profile_step.py [--nanochat PATH] [--nanochat-newest PATH] [--nanochat-python PY]
                                      [--out results]

The cpu profile's model (depth 4, width 256, vocab 4096) on one micro-batch of 8 x 256 random tokens: forward +
backward + optimizer step. Each side runs in its own process, eager and compiled: ours in float32 and in
bfloat16 autocast (what ``--dtype auto`` picks where it is faster), compiled as ``train --compile`` does (the
model with its loss as one graph, the optimizer's updates as compiled kernels); nanochat (at the pinned ref
and/or its newest commit) as its base_train runs on a CPU: float32, the model compiled, its optimizer kernels
compiled. First ``WARMUP`` steps (compilation), then the wall time of ``TIMED`` steps without the profiler
(median: the number to compare), then ``STEPS`` profiled steps: time split by phase (forward, backward,
optimizer: record_function scopes around each, compiled or not) and by kind of operation
(matmul, attention, softcap + cross-entropy, compiled kernels, elementwise/other), from self CPU time. Writes
results/profile_step.json and .md (the top operations of each side, as torch.profiler's table).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

KINDS = {  # operation name fragments -> kind (first match wins)
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "mkldnn", "onednn"),
    "attention": ("scaled_dot_product", "flash_attention", "_efficient_attention", "aten::softmax", "_softmax"),
    "softcap + cross-entropy": ("aten::tanh", "log_softmax", "nll_loss", "cross_entropy"),
    "compiled kernels": ("Torch-Compiled", "CompiledFunction", "inductor", "cpp_fused"),
}
STEPS, WARMUP, TIMED = 5, 3, 10


def kind_of(name: str) -> str:
    for kind, fragments in KINDS.items():
        if any(f in name for f in fragments):
            return kind
    return "elementwise / other"


def build(side: str, nanochat: str | None, compiled: bool):
    """The model and optimizer as each side's training script builds them; the model compiled if asked (nanochat's
    optimizer compiles its own kernels whatever the model does, as in its base_train)."""
    import torch

    torch.manual_seed(42)
    if side == "nanochat":
        sys.path.insert(0, nanochat)
        from nanochat.gpt import GPT, GPTConfig

        model = GPT(GPTConfig(sequence_len=256, vocab_size=4096, n_layer=4, n_head=4, n_kv_head=4, n_embd=256,
                              window_pattern="L"))
        model.init_weights()
        optimizer = model.setup_optimizer()
    else:
        from nanochat_next.train.config import TensorRun, build_model
        from nanochat_next.train.recipe import build_optimizer, scaled_hyperparameters

        run = TensorRun(compile=compiled, muon_dtype="float32")  # the fp32 orthogonalisation --dtype auto picks
        model = build_model(run, 4096)
        optimizer = build_optimizer(run, model, *scaled_hyperparameters(run, model, 4096))
    forward = torch.compile(model, dynamic=False) if compiled else model
    return model, forward, optimizer


def worker(side: str, dtype: str, mode: str, nanochat: str | None) -> dict:
    import contextlib
    import statistics
    import time

    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    model, forward, optimizer = build(side, nanochat, mode == "compiled")
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 4096, (8, 256), generator=gen), torch.randint(0, 4096, (8, 256), generator=gen)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bfloat16" else contextlib.nullcontext()

    def step() -> None:
        with record_function("forward"), autocast:
            loss = forward(x, y)
        with record_function("backward"):
            loss.backward()
        with record_function("optimizer"):
            optimizer.step()
            model.zero_grad(set_to_none=True)

    for _ in range(WARMUP):
        step()
    wall = []
    for _ in range(TIMED):
        t0 = time.perf_counter()
        step()
        wall.append(1e3 * (time.perf_counter() - t0))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(STEPS):
            step()
    events = prof.key_averages()
    phases = {e.key: e.cpu_time_total / STEPS / 1e3 for e in events if e.key in ("forward", "backward", "optimizer")}
    kinds: dict[str, float] = {}
    for e in events:
        if e.key not in phases:
            kinds[kind_of(e.key)] = kinds.get(kind_of(e.key), 0.0) + e.self_cpu_time_total / STEPS / 1e3
    table = events.table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=48)
    return {"phases_ms": phases, "kinds_ms": kinds, "step_ms": statistics.median(wall), "step_ms_timed": wall,
            "profiled_step_ms": sum(phases.values()), "table": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nanochat", help="a checkout of nanochat at the pinned ref")
    parser.add_argument("--nanochat-newest", help="a checkout of nanochat at its newest commit we pin")
    parser.add_argument("--nanochat-python")
    parser.add_argument("--out", default="results")
    parser.add_argument("--worker", nargs=3, metavar=("SIDE", "DTYPE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT", json.dumps(worker(*args.worker, args.nanochat)), flush=True)
        return
    python = args.nanochat_python or sys.executable
    sides = [(f"ours {dtype} {mode}", "ours", dtype, mode, sys.executable, None)
             for mode in ("eager", "compiled") for dtype in ("float32", "bfloat16")]
    for label, checkout in (("nanochat 2f09686", args.nanochat), ("nanochat 92d63d4", args.nanochat_newest)):
        if checkout:
            sides += [(f"{label} float32 {mode}", "nanochat", "float32", mode, python, checkout)
                      for mode in ("eager", "compiled")]
    results = {}
    for label, side, dtype, mode, exe, checkout in sides:
        cmd = [exe, __file__, "--worker", side, dtype, mode, *(["--nanochat", checkout] if checkout else [])]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path.cwd())
        if proc.returncode != 0:
            sys.exit(f"{label} failed:\n{proc.stderr[-2000:]}")
        results[label] = json.loads(proc.stdout.split("RESULT", 1)[1])
        print(f"{label}: {results[label]['step_ms']:.0f} ms per step", flush=True)
    write(results, args.out)


def write(results: dict, out: str) -> None:
    from nanochat_next.provenance import write_results

    names = list(results)
    kinds = sorted({k for r in results.values() for k in r["kinds_ms"]})
    lines = ["# Where a training step's time goes (cpu profile, one micro-batch of 8 x 256 tokens)", "",
             f"**step** = median wall time of {TIMED} steps after {WARMUP} warm-up steps (compilation), without the "
             f"profiler: the number to compare. Below it, the mean of {STEPS} profiled steps: wall time by phase "
             "and self CPU time by kind of operation (torch.profiler).", "",
             "| ms per step | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names),
             "| **step** | " + " | ".join(f"**{results[n]['step_ms']:.1f}**" for n in names) + " |"]
    for phase in ("forward", "backward", "optimizer"):
        lines.append(f"| {phase} | " + " | ".join(f"{results[n]['phases_ms'].get(phase, 0):.1f}" for n in names)
                     + " |")
    lines.append("| profiled step | " + " | ".join(f"{results[n]['profiled_step_ms']:.1f}" for n in names) + " |")
    for kind in kinds:
        lines.append(f"| {kind} (self) | " + " | ".join(f"{results[n]['kinds_ms'].get(kind, 0):.1f}" for n in names)
                     + " |")
    for name in names:
        lines += ["", f"## {name}: top operations", "", "```", results[name]["table"], "```"]
    data = {"benchmark": "profile_step", "config": {"depth": 4, "n_embd": 256, "vocab": 4096, "batch": [8, 256]},
            "steps_profiled": STEPS, "sides": {n: {k: v for k, v in r.items() if k != "table"}
                                               for n, r in results.items()}}
    json_path, md_path = write_results(out, "profile_step", data, "\n".join(lines))
    print("\n".join(lines[:20]))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
