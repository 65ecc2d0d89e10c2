"""Is bfloat16 faster than float32 on this CPU, and what does it cost in quality? The evidence for --dtype auto.

    python benchmarks/cpu_dtype_bench.py [--steps 200] [--seeds 42,43,44] [--out results]

Measures, on this machine: matmul GFLOP/s per dtype; the probe ``--dtype auto`` runs (the cpu profile's own
matmul shapes, forward + backward, ``nanochat_next.dtype_choice``) and its decision; and training at the cpu
profile's config (depth 4, seq 256, 2,048-token steps, tinyshakespeare, vocab 4096, eager) in float32 and
under bfloat16 autocast for several seeds: median tok/s and final val bpb. The mean bf16 - fp32 val bpb gap is
the quality guard ``dtype_choice.BF16_QUALITY_GAP`` (a test keeps the two equal). Writes
results/cpu_dtype.json and .md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from dataclasses import replace

import torch

from nanochat_next import dtype_choice
from nanochat_next.bench.profiles import PROFILES
from nanochat_next.dtype_choice import cpu_model_name
from nanochat_next.provenance import write_results
from nanochat_next.runtime import cpu_native_bf16, measure_matmul_flops
from nanochat_next.train.data import run_data
from nanochat_next.train.loop import train


def train_both(steps: int, seeds: list[int]) -> dict:
    base = replace(PROFILES["cpu"].run, steps=steps, eval_every=0, compile=False, device="cpu")
    data = run_data(base, save_tokenizer=False, log=lambda *a, **k: None)  # what `train` reads for this run
    runs: dict[str, list[dict]] = {"float32": [], "bfloat16": []}
    for seed in seeds:
        for dtype in runs:
            with tempfile.TemporaryDirectory() as out:
                run = replace(base, dtype=dtype, seed=seed, out=out)
                result = train(run, data, progress=False, log=lambda *a, **k: None)
            runs[dtype].append({"seed": seed, "tok_per_s_median": round(result["tok_per_s_median"], 1),
                                "final_val_bpb": result["final_val_bpb"], "final_loss": result["final_loss"]})
            print(f"seed {seed} {dtype}: {result['tok_per_s_median']:,.0f} tok/s, val bpb "
                  f"{result['final_val_bpb']:.4f}", flush=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    matmul = {n: {name: round(measure_matmul_flops("cpu", dt, n=n, seconds=1.0) / 1e9, 1)
                  for name, dt in (("float32", torch.float32), ("bfloat16", torch.bfloat16))}
              for n in (512, 1024, 2048)}
    probe = dtype_choice.measure(use_cache=False)
    runs = train_both(args.steps, seeds)
    gaps = [b["final_val_bpb"] - f["final_val_bpb"] for f, b in zip(runs["float32"], runs["bfloat16"])]
    tps = {d: statistics.median(r["tok_per_s_median"] for r in rs) for d, rs in runs.items()}
    gap = statistics.mean(gaps)
    use_bf16, why = dtype_choice.decide(probe, quality_gap=gap)
    native, flags = cpu_native_bf16()
    data = {"benchmark": "cpu_dtype", "cpu": cpu_model_name(), "matmul_gflops": matmul,
            "training_depth4_seq256": runs, "steps": args.steps, "seeds": seeds,
            "bf16_over_fp32_training": tps["bfloat16"] / tps["float32"],
            "bf16_minus_fp32_val_bpb": gap, "bf16_minus_fp32_val_bpb_by_seed": gaps,
            "probe": {"float32_seconds": probe.float32_seconds, "bfloat16_seconds": probe.bfloat16_seconds,
                      "speedup": probe.speedup},
            "cpu_bf16_rule": {"auto_dtype": "bfloat16" if use_bf16 else "float32", "reason": why,
                              "cpu_flags": flags, "flags_guess": native}}
    lines = [f"# bfloat16 vs float32 on this CPU ({cpu_model_name()}; flags: {flags})", "",
             "| matmul n | float32 GFLOP/s | bfloat16 GFLOP/s |", "|---:|---:|---:|"]
    lines += [f"| {n} | {v['float32']:.0f} | {v['bfloat16']:.0f} |" for n, v in matmul.items()]
    lines += ["", f"Training at the cpu profile's config ({args.steps} steps, eager), seeds {args.seeds}:", "",
              "| seed | float32 tok/s | bfloat16 tok/s | float32 val bpb | bfloat16 val bpb | gap |",
              "|---:|---:|---:|---:|---:|---:|"]
    for f, b, g in zip(runs["float32"], runs["bfloat16"], gaps):
        lines.append(f"| {f['seed']} | {f['tok_per_s_median']:,.0f} | {b['tok_per_s_median']:,.0f} | "
                     f"{f['final_val_bpb']:.4f} | {b['final_val_bpb']:.4f} | {g:+.4f} |")
    lines += ["", f"bf16 / fp32 training tok/s (median over seeds): {data['bf16_over_fp32_training']:.2f}x; mean "
              f"val bpb gap {gap:+.4f} (the guard allows {dtype_choice.QUALITY_TOLERANCE}).", "",
              f"`--dtype auto` here: **{data['cpu_bf16_rule']['auto_dtype']}** ({why})."]
    json_path, md_path = write_results(args.out, "cpu_dtype", data, "\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
