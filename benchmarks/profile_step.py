"""Where a training step's time goes: torch.profiler over the cpu profile's step, ours and nanochat's.

    python benchmarks/profile_step.py [--nanochat PATH --nanochat-python PY] [--out results]

The cpu profile's model (depth 4, width 256, vocab 4096) on one micro-batch of 8 x 256 random tokens: forward +
backward + optimizer step, 3 warm-up steps (compilation of the optimizer kernels included), then 5 profiled
steps. Ours runs in float32 and in bfloat16 autocast (what ``--dtype auto`` picks where it is faster);
nanochat at the pinned ref as its base_train runs on CPU (float32; its optimizer kernels compiled), each in
its own process. Time is split by phase (forward, backward, optimizer: record_function scopes) and by kind of
operation (matmul, attention, softcap + cross-entropy, elementwise/other), from self CPU time. Writes
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
STEPS, WARMUP = 5, 3


def kind_of(name: str) -> str:
    for kind, fragments in KINDS.items():
        if any(f in name for f in fragments):
            return kind
    return "elementwise / other"


def build(side: str, nanochat: str | None):
    import torch

    torch.manual_seed(42)
    if side == "nanochat":
        sys.path.insert(0, nanochat)
        from nanochat.gpt import GPT, GPTConfig

        model = GPT(GPTConfig(sequence_len=256, vocab_size=4096, n_layer=4, n_head=4, n_kv_head=4, n_embd=256,
                              window_pattern="L"))
        model.init_weights()
        return model, model.setup_optimizer()
    from nanochat_next.train.config import TensorRun, build_model
    from nanochat_next.train.recipe import build_optimizer, scaled_hyperparameters

    run = TensorRun()
    model = build_model(run, 4096)
    return model, build_optimizer(run, model, *scaled_hyperparameters(run, model, 4096))


def worker(side: str, dtype: str, nanochat: str | None) -> dict:
    import contextlib

    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    model, optimizer = build(side, nanochat)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 4096, (8, 256), generator=gen), torch.randint(0, 4096, (8, 256), generator=gen)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bfloat16" else contextlib.nullcontext()

    def step() -> None:
        with record_function("forward"), autocast:
            loss = model(x, y)
        with record_function("backward"):
            loss.backward()
        with record_function("optimizer"):
            optimizer.step()
            model.zero_grad(set_to_none=True)

    for _ in range(WARMUP):
        step()
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
    return {"phases_ms": phases, "kinds_ms": kinds, "step_ms": sum(phases.values()), "table": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nanochat")
    parser.add_argument("--nanochat-python")
    parser.add_argument("--out", default="results")
    parser.add_argument("--worker", nargs=2, metavar=("SIDE", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT", json.dumps(worker(*args.worker, args.nanochat)), flush=True)
        return
    sides = [("ours", "float32", sys.executable), ("ours", "bfloat16", sys.executable)]
    if args.nanochat:
        sides.insert(0, ("nanochat", "float32", args.nanochat_python or sys.executable))
    results = {}
    for side, dtype, python in sides:
        cmd = [python, __file__, "--worker", side, dtype, *(["--nanochat", args.nanochat] if args.nanochat else [])]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path.cwd())
        if proc.returncode != 0:
            sys.exit(f"{side} {dtype} failed:\n{proc.stderr[-2000:]}")
        results[f"{side} {dtype}"] = json.loads(proc.stdout.split("RESULT", 1)[1])
        print(f"{side} {dtype}: {results[f'{side} {dtype}']['step_ms']:.0f} ms per step", flush=True)
    write(results, args.out)


def write(results: dict, out: str) -> None:
    from nanochat_next.provenance import write_results

    names = list(results)
    kinds = sorted({k for r in results.values() for k in r["kinds_ms"]})
    lines = ["# Where a training step's time goes (cpu profile, one micro-batch of 8 x 256 tokens)", "",
             f"Mean of {STEPS} profiled steps after {WARMUP} warm-up steps; self CPU time by kind of operation "
             "(torch.profiler), and wall time by phase.", "",
             "| ms per step | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for phase in ("forward", "backward", "optimizer"):
        lines.append(f"| {phase} | " + " | ".join(f"{results[n]['phases_ms'].get(phase, 0):.1f}" for n in names)
                     + " |")
    lines.append("| **step** | " + " | ".join(f"**{results[n]['step_ms']:.1f}**" for n in names) + " |")
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
