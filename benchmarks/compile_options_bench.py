"""Inductor's defaults vs ``train.config.COMPILE_OPTIONS`` (what ``train --compile`` uses), paired step by step.

    python benchmarks/compile_options_bench.py [--pairs 40] [--out results]

The cpu profile's model (depth 4, width 256, vocab 4096; one micro-batch of 8 x 256 tokens), compiled twice in one
process from the same weights: with inductor's defaults and with ``COMPILE_OPTIONS``. Forward + loss + backward
(the optimizer is compiled separately and does not change) alternate between the two, the order swapped every
pair, so a machine that gets busier for a few seconds slows both sides of a pair alike: on a shared VM whose
separate runs differ by 20%, only such pairs resolve a few percent. In float32, and in bf16 autocast where
``--dtype auto`` picks it. Per dtype: the median step of each side, the geometric mean of the paired ratios
(defaults / options: > 1 = the options are faster), the paired t-test's p on their logs, and both sides' first
loss (they must agree to float32 rounding). Writes results/compile_options.json and .md.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import statistics
import time

WARMUP = 3


def measure(dtype: str, pairs: int) -> dict:
    import torch

    from nanochat_next.train.config import COMPILE_OPTIONS, TensorRun, build_model, compile_forward

    torch.manual_seed(42)
    model = build_model(TensorRun(compile=True), 4096)
    with torch.no_grad():  # nanochat's init starts the head at 0: give the soft cap real logits to work on
        model.lm_head.weight.normal_(0, 0.5)
    other = copy.deepcopy(model)
    sides = {"defaults": torch.compile(model, dynamic=False), "options": compile_forward(other)}
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 4096, (8, 256), generator=gen), torch.randint(0, 4096, (8, 256), generator=gen)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bfloat16" else contextlib.nullcontext()

    def step(name: str) -> tuple[float, float]:
        t0 = time.perf_counter()
        with autocast:
            loss = sides[name](x, y)
        loss.backward()
        ms = 1e3 * (time.perf_counter() - t0)
        (model if name == "defaults" else other).zero_grad(set_to_none=True)
        return ms, loss.item()

    first = {name: step(name)[1] for name in sides}  # compiles each side
    for _ in range(WARMUP):
        for name in sides:
            step(name)
    times: dict[str, list[float]] = {name: [] for name in sides}
    for i in range(pairs):
        for name in (("defaults", "options") if i % 2 == 0 else ("options", "defaults")):
            times[name].append(step(name)[0])
    return {"first_loss": first, "step_ms": times, "options": COMPILE_OPTIONS}


def summarise(result: dict) -> dict:
    from nanochat_next.bench.stats import compare

    times = result["step_ms"]
    log_ratios = [math.log(d / o) for d, o in zip(times["defaults"], times["options"])]  # > 0: options faster
    losses = result["first_loss"]
    return {"median_ms": {k: statistics.median(v) for k, v in times.items()},
            "speedup": math.exp(statistics.fmean(log_ratios)),
            "p_value": compare(log_ratios, [0.0] * len(log_ratios), paired=True)["p_value"],
            "faster_pairs": sum(r > 0 for r in log_ratios), "pairs": len(log_ratios),
            "first_loss": losses, "loss_gap": abs(losses["defaults"] - losses["options"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    import torch

    from nanochat_next.provenance import run_metadata, write_results
    from nanochat_next.runtime import choose_dtype

    dtypes = ["float32"] + (["bfloat16"] if choose_dtype("cpu", "auto").dtype == torch.bfloat16 else [])
    rows = {}
    for dtype in dtypes:
        raw = measure(dtype, args.pairs)
        rows[dtype] = {**summarise(raw), "raw": raw}
        print(f"{dtype}: {rows[dtype]['speedup']:.3f}x, p {rows[dtype]['p_value']:.2g}", flush=True)
    metadata = run_metadata()
    machine = metadata["machine"]
    lines = ["# Inductor's defaults vs `train.config.COMPILE_OPTIONS` (cpu profile: forward + loss + backward)", "",
             f"One process, the same weights compiled both ways; {args.pairs} pairs of steps alternating (order "
             "swapped every pair) after warm-up. **speed-up** = geometric mean of the paired ratios (defaults / "
             "options), p = paired t-test on their logs. Options: "
             + ", ".join(f"`{k}={v}`" for k, v in raw["options"].items()) + ".", "",
             f"Machine: {machine['cpu']}, {machine['cpu_count']} cores, {machine['torch_threads']} torch threads; "
             f"torch {metadata['versions']['torch']}; measured {metadata['timestamp_utc']}.", "",
             "| dtype | median ms: defaults | options | speed-up | p | pairs faster | first loss: defaults | options |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for dtype, r in rows.items():
        lines.append(f"| {dtype} | {r['median_ms']['defaults']:.1f} | {r['median_ms']['options']:.1f} "
                     f"| **{r['speedup']:.3f}x** | {r['p_value']:.2g} | {r['faster_pairs']}/{r['pairs']} "
                     f"| {r['first_loss']['defaults']:.6f} | {r['first_loss']['options']:.6f} |")
    data = {"benchmark": "compile_options", "config": {"depth": 4, "n_embd": 256, "vocab": 4096, "batch": [8, 256],
                                                      "pairs": args.pairs, "warmup": WARMUP},
            "speedup": {d: r["speedup"] for d, r in rows.items()},
            "p_value": {d: r["p_value"] for d, r in rows.items()}, "rows": rows}
    json_path, md_path = write_results(args.out, "compile_options", data, "\n".join(lines), metadata)
    print("\n".join(lines))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
