"""Where a training step's time goes: torch.profiler over the cpu profile's step, ours and nanochat's.

    python benchmarks/profile_step.py [--nanochat PATH] [--nanochat-newest PATH] [--nanochat-python PY]
                                      [--out results]

The cpu profile's model (depth 4, width 256, vocab 4096) on one micro-batch of 8 x 256 random tokens: forward +
backward + optimizer step. Each side runs in its own process, eager and compiled: ours in float32 (Muon's
orthogonalisation in float32 too, and, the ``float32+muon_auto`` rows, in the dtype ``--muon-dtype auto`` measures:
bfloat16 where it is faster, as nanochat 2f09686 always does, so that row compares the step's own code) and in
bfloat16 autocast (what ``--dtype auto`` picks where it is faster; the attention in the dtype training measures
for it, and, the ``bfloat16+bf16_attention`` rows, in autocast's bf16), compiled as ``train --compile`` does (the
model with its loss as one graph, with ``train.config.COMPILE_OPTIONS``, the optimizer's updates as compiled
kernels; the compiled-only ``+sleef_tanh`` rows: the same model compiled with inductor's defaults); nanochat
(at the pinned ref and/or its newest commit) as its base_train runs on a CPU: float32, the model compiled, its
optimizer kernels compiled. First ``WARMUP`` steps (compilation), then the wall time of ``TIMED`` steps without
the profiler (median: the number to compare), then ``STEPS`` profiled steps: time split by phase (forward, backward,
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
MATMULS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")
OUR_DTYPES = ("float32", "float32+muon_auto", "bfloat16", "bfloat16+bf16_attention",  # ours, each eager and compiled
              "float32+sleef_tanh", "bfloat16+sleef_tanh")
SLEEF_TANH = ("float32+sleef_tanh", "bfloat16+sleef_tanh")  # compiled only: without train.config.COMPILE_OPTIONS


def kind_of(name: str) -> str:
    for kind, fragments in KINDS.items():
        if any(f in name for f in fragments):
            return kind
    return "elementwise / other"


def build(side: str, nanochat: str | None, compiled: bool, dtype: str = "float32"):
    """The model and optimizer as each side's training script builds them; the model compiled if asked (nanochat's
    optimizer compiles its own kernels whatever the model does, as in its base_train). Ours orthogonalises in
    float32 in the float32 rows (all float32, the machine-independent comparison) and in the dtype ``--dtype auto``
    measures for Muon in the others (float32+muon_auto and bfloat16: what a user on a fast-bf16 CPU gets)."""
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
        from nanochat_next.runtime import DtypeChoice
        from nanochat_next.train.config import TensorRun, build_model
        from nanochat_next.train.recipe import build_optimizer, choose_attention, scaled_hyperparameters

        muon_dtype = "float32" if dtype in ("float32", "float32+sleef_tanh") else "auto"
        run = TensorRun(compile=compiled, muon_dtype=muon_dtype)
        model = build_model(run, 4096)
        optimizer = build_optimizer(run, model, *scaled_hyperparameters(run, model, 4096))
        if dtype.startswith("bfloat16"):  # the attention's dtype as training picks it under bf16 autocast
            choose_attention(run, model, DtypeChoice(torch.bfloat16, False, "bf16 autocast"))
        if dtype == "bfloat16+bf16_attention":  # before that choice: attention in autocast's bf16
            model.set_attention_dtype(None)
    if not compiled:
        return model, model, optimizer
    if side == "nanochat" or dtype in SLEEF_TANH:  # inductor's defaults (its tanh from Sleef)
        return model, torch.compile(model, dynamic=False), optimizer
    from nanochat_next.train.config import compile_forward

    return model, compile_forward(model), optimizer  # as train --compile: with COMPILE_OPTIONS


def worker(side: str, dtype: str, mode: str, nanochat: str | None) -> dict:
    import contextlib
    import statistics
    import time

    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    model, forward, optimizer = build(side, nanochat, mode == "compiled", dtype)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 4096, (8, 256), generator=gen), torch.randint(0, 4096, (8, 256), generator=gen)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype.startswith("bfloat16") else contextlib.nullcontext()

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
    with profile(activities=[ProfilerActivity.CPU]) as prof:  # times: no shape recording (it slows eager ops)
        for _ in range(STEPS):
            step()
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as flop_prof:  # FLOPs: one step is enough
        step()
    events = prof.key_averages()
    matmul = matmul_by_phase(flop_prof.events(), steps=1)
    phases = {e.key: e.cpu_time_total / STEPS / 1e3 for e in events if e.key in ("forward", "backward", "optimizer")}
    kinds: dict[str, float] = {}
    for e in events:
        if e.key not in phases:
            kinds[kind_of(e.key)] = kinds.get(kind_of(e.key), 0.0) + e.self_cpu_time_total / STEPS / 1e3
    table = events.table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=48)
    ortho = sorted({str(g["ortho_dtype"]) for g in optimizer.param_groups if "ortho_dtype" in g})
    attention = sorted({str(m.attention_dtype or "autocast's").removeprefix("torch.") for m in model.modules()
                        if hasattr(m, "attention_dtype")}) if dtype.startswith("bfloat16") else []
    return {"phases_ms": phases, "kinds_ms": kinds, "step_ms": statistics.median(wall), "step_ms_timed": wall,
            "muon_ortho_dtype": ortho,  # ours: the Muon groups' orthogonalisation dtype (auto's pick in bf16 rows)
            "attention_dtype": attention,  # ours, bf16 rows: what the attention ran in under autocast
            "profiled_step_ms": sum(phases.values()), "matmul_by_phase": matmul, "table": table}


def matmul_by_phase(events, steps: int = STEPS) -> dict:
    """Per phase (forward, backward, optimizer): the matmuls' FLOPs and self time per step (ms), from the
    profiler's FLOP count of each mm/bmm/addmm/baddbmm call, attributed to the record_function scope above it.
    (The times of a FLOP-counting profile carry its shape-recording overhead: the roofline takes the matmul time
    from the profile without it.)"""
    out: dict[str, dict[str, float]] = {}
    for e in events:
        if e.name not in MATMULS:
            continue
        scope = e.cpu_parent
        while scope is not None and scope.name not in ("forward", "backward", "optimizer"):
            scope = scope.cpu_parent
        phase = scope.name if scope is not None else "other"  # autograd's backward runs on its own thread
        slot = out.setdefault(phase, {"gflop": 0.0, "ms": 0.0})
        slot["gflop"] += (e.flops or 0) / steps / 1e9
        slot["ms"] += e.self_cpu_time_total / steps / 1e3
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nanochat", help="a checkout of nanochat at the pinned ref")
    parser.add_argument("--nanochat-newest", help="a checkout of nanochat at its newest commit we pin")
    parser.add_argument("--nanochat-python")
    parser.add_argument("--out", default="results")
    parser.add_argument("--sides", help="comma-separated labels to run (default: all), e.g. "
                        "'ours float32 compiled,nanochat 92d63d4 float32 compiled'")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run every side this many times, interleaved (the machine's drift hits all sides alike); "
                             "its step is the median of every timed step, its profile the last run's")
    parser.add_argument("--worker", nargs=3, metavar=("SIDE", "DTYPE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT", json.dumps(worker(*args.worker, args.nanochat)), flush=True)
        return
    python = args.nanochat_python or sys.executable
    sides = [(f"ours {dtype} {mode}", "ours", dtype, mode, sys.executable, None)
             for mode in ("eager", "compiled") for dtype in OUR_DTYPES if mode == "compiled" or dtype not in SLEEF_TANH]
    for label, checkout in (("nanochat 2f09686", args.nanochat), ("nanochat 92d63d4", args.nanochat_newest)):
        if checkout:
            sides += [(f"{label} float32 {mode}", "nanochat", "float32", mode, python, checkout)
                      for mode in ("eager", "compiled")]
    if args.sides:
        wanted = [w.strip() for w in args.sides.split(",")]
        unknown = sorted(set(wanted) - {s[0] for s in sides})
        if unknown:
            sys.exit(f"unknown sides {unknown}; known: {[s[0] for s in sides]}")
        sides = [s for s in sides if s[0] in wanted]
    results: dict[str, dict] = {}
    timed: dict[str, list[float]] = {}
    medians: dict[str, list[float]] = {}  # each run's median step
    for repeat in range(args.repeats):
        for label, side, dtype, mode, exe, checkout in sides:
            cmd = [exe, __file__, "--worker", side, dtype, mode, *(["--nanochat", checkout] if checkout else [])]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path.cwd())
            if proc.returncode != 0:
                sys.exit(f"{label} failed:\n{proc.stderr[-2000:]}")
            results[label] = json.loads(proc.stdout.split("RESULT", 1)[1])
            timed.setdefault(label, []).extend(results[label]["step_ms_timed"])
            medians.setdefault(label, []).append(results[label]["step_ms"])
            print(f"[{repeat + 1}/{args.repeats}] {label}: {results[label]['step_ms']:.0f} ms per step", flush=True)
    import statistics

    for label, r in results.items():  # every run's timed steps together
        r["step_ms_timed"], r["step_ms"] = timed[label], statistics.median(timed[label])
        r["run_medians_ms"] = medians[label]
    import torch

    from nanochat_next.runtime import measure_matmul_flops

    peaks = {d: measure_matmul_flops("cpu", getattr(torch, d), seconds=2.0) for d in ("float32", "bfloat16")}
    write(results, peaks, args.out)


def roofline(results: dict, peaks: dict) -> tuple[list[str], dict]:
    """How far each side's step is from its matmuls alone: the matmul FLOPs per step (model and Newton-Schulz),
    the time they took, the time they would take at this machine's measured peak, and the speed-up left if every
    non-matmul millisecond vanished (step / matmul time): the ceiling of any elementwise or fusion work."""
    names, rows = list(results), {}
    for n, r in results.items():
        mm = r.get("matmul_by_phase", {})
        gflop, ms = sum(v["gflop"] for v in mm.values()), r["kinds_ms"].get("matmul", 0.0)
        peak = peaks["bfloat16" if "bfloat16" in n else "float32"]
        rows[n] = {"matmul_gflop": gflop, "optimizer_gflop": mm.get("optimizer", {}).get("gflop", 0.0),
                   "matmul_ms": ms, "matmul_gflop_s": gflop / ms * 1e3 if ms else 0.0,
                   "at_peak_ms": gflop * 1e12 / peak if peak else 0.0,  # GFLOP x 1e9 / (FLOP/s) x 1e3 ms
                   "ceiling": r["profiled_step_ms"] / ms if ms else 0.0}
    table = {"matmul GFLOP per step": "matmul_gflop", "of which the optimizer (Newton-Schulz)": "optimizer_gflop",
             "matmul self ms": "matmul_ms", "matmul GFLOP/s achieved": "matmul_gflop_s",
             "matmul ms at the measured peak": "at_peak_ms", "ceiling: profiled step / matmul ms": "ceiling"}
    lines = ["", "## Roofline: what is left once the matmuls are counted", "",
             f"Measured peak (1024 x 1024 matmul, this machine): {peaks['float32'] / 1e9:.0f} GFLOP/s float32, "
             f"{peaks['bfloat16'] / 1e9:.0f} GFLOP/s bfloat16. Matmul FLOPs are the profiler's count of every "
             "mm/bmm/addmm/baddbmm call; the ceiling is the speed-up a step could get if everything that is not a "
             "matmul took no time at all.", "",
             "| per step | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for label, key in table.items():
        fmt = "{:.2f}x" if key == "ceiling" else "{:.1f}"
        lines.append(f"| {label} | " + " | ".join(fmt.format(rows[n][key]) for n in names) + " |")
    return lines, rows


def write(results: dict, peaks: dict, out: str) -> None:
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
    lines += ["", "Each run's median step (ms), runs interleaved side by side: " + "; ".join(
        f"{n}: {', '.join(f'{m:.0f}' for m in results[n].get('run_medians_ms', [results[n]['step_ms']]))}"
        for n in names) + "."]
    ortho = [f"{n}: {', '.join(results[n]['muon_ortho_dtype'])}" for n in names if results[n].get("muon_ortho_dtype")]
    if ortho:
        lines += ["", "Our Muon orthogonalisation ran in: " + "; ".join(ortho)
                  + " (float32 rows: float32; float32+muon_auto and bfloat16 rows: what `--muon-dtype auto` "
                  "measured on this machine)."]
    attention = [f"{n}: {', '.join(results[n]['attention_dtype'])}" for n in names if results[n].get("attention_dtype")]
    if attention:
        lines += ["", "Our attention under bf16 autocast ran in: " + "; ".join(attention)
                  + " (bfloat16 rows: what training measures, `runtime.choose_attention_dtype`; "
                  "bfloat16+bf16_attention rows: autocast's bf16, as before that choice)."]
    if any(dtype in n for n in names for dtype in SLEEF_TANH):
        lines += ["", "The +sleef_tanh rows compile the model with inductor's defaults, its tanh from Sleef; every "
                  "other compiled row of ours as `train --compile` does, with `train.config.COMPILE_OPTIONS` "
                  "(tanh as 2 / (1 + exp(-2x)) - 1)."]
    speed = {}
    pairs = [(f"ours {d} {m}", f"nanochat {ref} float32 {m}") for ref in ("92d63d4", "2f09686")
             for m in ("compiled", "eager") for d in OUR_DTYPES]
    for ours, theirs in pairs:
        if ours in results and theirs in results:
            speed[f"{ours} vs {theirs}"] = results[theirs]["step_ms"] / results[ours]["step_ms"]
            lines.append(f"**{ours} is {speed[f'{ours} vs {theirs}']:.2f}x {theirs}'s speed** (step time ratio).")
    roof_lines, roof = roofline(results, peaks)
    lines += roof_lines
    for name in names:
        lines += ["", f"## {name}: top operations", "", "```", results[name]["table"], "```"]
    data = {"benchmark": "profile_step", "config": {"depth": 4, "n_embd": 256, "vocab": 4096, "batch": [8, 256]},
            "steps_profiled": STEPS, "peaks_flops": peaks, "roofline": roof, "speed_ratio": speed,
            "sides": {n: {k: v for k, v in r.items() if k != "table"} for n, r in results.items()}}
    json_path, md_path = write_results(out, "profile_step", data, "\n".join(lines))
    print("\n".join(lines[:20]))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
