"""Two versions of the training step, paired step by step in one process: a speed change judged to a few percent.

    python benchmarks/paired_step_bench.py compile_options [--pairs 40] [--out results]
    python benchmarks/paired_step_bench.py attention_kernel [--pairs 40] [--out results]

The cpu profile's model (depth 4, width 256, vocab 4096; one micro-batch of 8 x 256 tokens), built twice from the
same weights, one per side. Forward + loss + backward (the optimizer does not change) alternate between the two
sides, the order swapped every pair, so a machine that gets busier for a few seconds slows both sides of a pair
alike: on a shared VM whose separate runs differ by 20%, only such pairs resolve a few percent. Variants:

- ``compile_options``: the model compiled with Inductor's defaults vs ``train.config.COMPILE_OPTIONS`` (what
  ``train --compile`` uses), in float32 and in bf16 autocast where ``--dtype auto`` picks it;
- ``attention_kernel``: under bf16 autocast, attention in float32 by the CPU's flash kernel (what ``auto``
  picked on the CPUs measured before) vs in bf16: by explicit matmuls compiled as ``train --compile`` does
  (``model.gpt.explicit_causal_attention``), by the bf16 flash kernel eager as ``train`` does.

Per row: the median step of each side, the geometric mean of the paired ratios (base / candidate: > 1 = the
candidate is faster), the paired t-test's p on their logs, and both sides' first loss. Writes
results/<variant>.json and .md.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import statistics
import time

WARMUP = 3
VARIANTS = {"compile_options": ("defaults", "options"), "attention_kernel": ("fp32 flash", "bf16")}


def sides_for(variant: str, compiled: bool):
    """The two models (same weights) and their forwards, base first."""
    import torch

    from nanochat_next.train.config import TensorRun, build_model, compile_forward

    torch.manual_seed(42)
    model = build_model(TensorRun(compile=True), 4096)
    with torch.no_grad():  # nanochat's init starts the head at 0: give the soft cap real logits to work on
        model.lm_head.weight.normal_(0, 0.5)
        if variant == "attention_kernel":  # and the blocks' zero-initialised outputs, so attention shows in the loss
            for p in model.parameters():
                if p.dim() == 2 and not p.any():
                    p.normal_(0, 0.02)
    other = copy.deepcopy(model)
    if variant == "compile_options":
        return [model, other], [torch.compile(model, dynamic=False), compile_forward(other)]
    model.set_attention_dtype(torch.float32)  # flash attention in fp32 inside the bf16 model
    other.set_attention_dtype(None)  # autocast's bf16: explicit matmuls for a short whole sequence
    forwards = [compile_forward(m) if compiled else m for m in (model, other)]
    return [model, other], forwards


def measure(variant: str, dtype: str, compiled: bool, pairs: int) -> dict:
    import torch

    from nanochat_next.train.config import COMPILE_OPTIONS

    labels = VARIANTS[variant]
    models, forwards = sides_for(variant, compiled)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 4096, (8, 256), generator=gen), torch.randint(0, 4096, (8, 256), generator=gen)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bfloat16" else contextlib.nullcontext()

    def step(side: int) -> tuple[float, float]:
        t0 = time.perf_counter()
        with autocast:
            loss = forwards[side](x, y)
        loss.backward()
        ms = 1e3 * (time.perf_counter() - t0)
        models[side].zero_grad(set_to_none=True)
        return ms, loss.item()

    first = {labels[side]: step(side)[1] for side in (0, 1)}  # compiles each side
    for _ in range(WARMUP):
        for side in (0, 1):
            step(side)
    times: dict[str, list[float]] = {label: [] for label in labels}
    for i in range(pairs):
        for side in ((0, 1) if i % 2 == 0 else (1, 0)):
            times[labels[side]].append(step(side)[0])
    return {"first_loss": first, "step_ms": times, "options": COMPILE_OPTIONS}


def summarise(result: dict) -> dict:
    """``step_ms`` and ``first_loss`` hold the base side first, then the candidate."""
    from nanochat_next.bench.stats import compare

    (base, base_ms), (candidate, candidate_ms) = result["step_ms"].items()
    log_ratios = [math.log(b / c) for b, c in zip(base_ms, candidate_ms)]  # > 0: the candidate is faster
    losses = result["first_loss"]
    return {"median_ms": {base: statistics.median(base_ms), candidate: statistics.median(candidate_ms)},
            "speedup": math.exp(statistics.fmean(log_ratios)),
            "p_value": compare(log_ratios, [0.0] * len(log_ratios), paired=True)["p_value"],
            "faster_pairs": sum(r > 0 for r in log_ratios), "pairs": len(log_ratios),
            "first_loss": losses, "loss_gap": abs(losses[base] - losses[candidate])}


def rows_to_run(variant: str, bf16_chosen: bool) -> list[tuple[str, str, bool]]:
    """(row label, dtype, compiled) for this variant on a CPU where ``--dtype auto`` picks bf16 or not."""
    if variant == "compile_options":
        return [(f"{d} compiled", d, True) for d in ["float32"] + (["bfloat16"] if bf16_chosen else [])]
    if not bf16_chosen:  # the attention kernel only differs under bf16 autocast, which this CPU never runs
        raise SystemExit("attention_kernel: --dtype auto picks float32 on this CPU; nothing to compare")
    return [("bfloat16 compiled", "bfloat16", True), ("bfloat16 eager", "bfloat16", False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    import torch

    from nanochat_next.runtime import choose_dtype

    rows = {}
    for label, dtype, compiled in rows_to_run(args.variant, choose_dtype("cpu", "auto").dtype == torch.bfloat16):
        raw = measure(args.variant, dtype, compiled, args.pairs)
        rows[label] = {**summarise(raw), "raw": raw}
        print(f"{label}: {rows[label]['speedup']:.3f}x, p {rows[label]['p_value']:.2g}", flush=True)
    write(args, rows, raw["options"])


def write(args, rows: dict, options: dict) -> None:
    from nanochat_next.provenance import run_metadata, write_results

    base, candidate = VARIANTS[args.variant]
    metadata = run_metadata()
    machine = metadata["machine"]
    what = {"compile_options": "Inductor's defaults vs `train.config.COMPILE_OPTIONS` ("
                               + ", ".join(f"`{k}={v}`" for k, v in options.items()) + ")",
            "attention_kernel": "under bf16 autocast, attention by fp32 flash vs in bf16 (compiled: explicit "
                                "matmuls, `model.gpt.explicit_causal_attention`; eager: the bf16 flash kernel)"
            }[args.variant]
    lines = [f"# {what}: the cpu profile's forward + loss + backward", "",
             f"One process, both sides built from the same weights; {args.pairs} pairs of steps alternating (order "
             f"swapped every pair) after warm-up. **speed-up** = geometric mean of the paired ratios ({base} / "
             f"{candidate}: > 1 = {candidate} is faster), p = paired t-test on their logs.", "",
             f"Machine: {machine['cpu']}, {machine['cpu_count']} cores, {machine['torch_threads']} torch threads; "
             f"torch {metadata['versions']['torch']}; measured {metadata['timestamp_utc']}.", "",
             f"| step | median ms: {base} | {candidate} | speed-up | p | pairs faster | first loss: {base} "
             f"| {candidate} |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, r in rows.items():
        lines.append(f"| {label} | {r['median_ms'][base]:.1f} | {r['median_ms'][candidate]:.1f} "
                     f"| **{r['speedup']:.3f}x** | {r['p_value']:.2g} | {r['faster_pairs']}/{r['pairs']} "
                     f"| {r['first_loss'][base]:.6f} | {r['first_loss'][candidate]:.6f} |")
    data = {"benchmark": args.variant, "config": {"depth": 4, "n_embd": 256, "vocab": 4096, "batch": [8, 256],
                                                  "pairs": args.pairs, "warmup": WARMUP},
            "speedup": {label: r["speedup"] for label, r in rows.items()},
            "p_value": {label: r["p_value"] for label, r in rows.items()}, "rows": rows}
    json_path, md_path = write_results(args.out, args.variant, data, "\n".join(lines), metadata)
    print("\n".join(lines))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
