"""Inference benchmark: our Engine vs nanochat's Engine at the pinned ref, on the same weights.

    python benchmarks/inference_bench.py --nanochat PATH --nanochat-python PY [--out results]

The depth-4 model of the cpu bench profile (vocab 4096, seq 256, head_dim 64), initialised once with a fixed
seed and saved as a plain tensor dict; both engines load the same file (nanochat's GPT takes our state dict
as is). Greedy decoding, so both must produce the same tokens (checked). For each engine and batch size 1
and 8 (8 samples of one prompt): prefill tok/s (prompt tokens / time to the first token) and decode tok/s
(new tokens x batch / time from the first to the last token), median of 5 runs, each side in its own
process for its peak RSS; ours eager (KV cache), ours compiled (``infer.decode_step``: the one-token step
as one graph over a static cache; its compile time is measured apart as warm-up) and ours without the KV
cache (a full forward per token) at batch 1. The runner is the one `nanochat-next bench` uses
(``nanochat_next.bench.decode_runner``). Also: model-bandwidth utilisation (MBU: bytes of weights + KV read
per decode step / step time, against this machine's measured copy bandwidth) and MFU (FLOPs per token x
tok/s / measured fp32 matmul peak), as nanochat's newer infer_bench reports. Writes results/inference.json
(top-level ``decode_ratio_b1`` and ``decode_ratio_b8`` = our best engine / nanochat decode tok/s) and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

from nanochat_next.bench.harness import decode_speed
from nanochat_next.bench.profiles import PINNED_NANOCHAT
from nanochat_next.provenance import git_state, write_results
from nanochat_next.runtime import measure_matmul_flops, measure_memory_bandwidth
from nanochat_next.train.config import TensorRun, build_model, model_config, recipe_values

PROMPT_LEN, NEW_TOKENS, VOCAB, REPEATS = 64, 128, 4096, 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nanochat", required=True)
    parser.add_argument("--nanochat-python", required=True)
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    # nanochat's own model (its recipe's features): nanochat's GPT must load the same weights
    run = TensorRun(**recipe_values("nanochat"), depth=4, head_dim=64, max_seq_len=256, window_pattern="L")
    torch.manual_seed(0)
    model = build_model(run, VOCAB)
    work = Path(tempfile.mkdtemp(prefix="inference-bench-"))
    weights = work / "weights.pt"
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
    gen = torch.Generator().manual_seed(1)
    prompt = [VOCAB - 9] + torch.randint(0, VOCAB - 9, (PROMPT_LEN - 1,), generator=gen).tolist()

    def side(name: str, python: str, cwd: Path, batches: list[int]) -> dict:
        config = work / f"{name}.json"
        config.write_text(json.dumps({"model_config": asdict(model_config(run, VOCAB)), "prompt": prompt,
                                      "new_tokens": NEW_TOKENS, "batches": batches, "repeats": REPEATS,
                                      "device": "cpu", "dtype": "float32", "nanochat": args.nanochat}))
        return decode_speed(python, name, weights, config, cwd, work / f"{name}.log")

    nanochat = side("nanochat", args.nanochat_python, Path(args.nanochat), [1, 8])
    ours = side("ours", sys.executable, Path.cwd(), [1, 8])
    compiled = side("ours-compiled", sys.executable, Path.cwd(), [1, 8])
    nocache = side("ours-nocache", sys.executable, Path.cwd(), [1])
    same_tokens = all(r["by_batch"][1]["tokens"] == nanochat["by_batch"][1]["tokens"]
                      for r in (ours, compiled, nocache))
    bandwidth, peak = measure_memory_bandwidth("cpu"), measure_matmul_flops("cpu", torch.float32)
    # bytes a decode step reads: every matrix of the blocks and the head; embeddings are only indexed (a row)
    weight_bytes = 4 * (sum(p.numel() for p in model.transformer.h.parameters()) + model.lm_head.weight.numel())
    c = model_config(run, VOCAB)
    kv_per_position = 2 * c.n_layer * c.n_kv_head * c.head_dim * 4  # keys and values, fp32

    def utilisation(result: dict, batch: int) -> tuple[float, float]:
        """(MBU, MFU) of a decode: per step the weights once and each row's cache (mean length) are read."""
        tps = result["by_batch"][batch]["decode_tok_s"]
        mean_len = PROMPT_LEN + NEW_TOKENS / 2
        step_bytes = weight_bytes + batch * mean_len * kv_per_position
        return step_bytes * tps / batch / bandwidth, model.flops_per_token() / 3 * tps / peak  # forward only

    def table_row(name: str, result: dict, batch: int) -> str:
        r = result["by_batch"][batch]
        mbu, mfu = utilisation(result, batch)
        warm = f"{r['warmup_s']:.1f}" if r.get("warmup_s") else "-"
        return (f"| {name} | {batch} | {r['prefill_tok_s']:,.0f} | {r['decode_tok_s']:,.0f} | {100 * mbu:.1f}% "
                f"| {100 * mfu:.1f}% | {warm} | {result['peak_rss_mb']:,.0f} |")

    data = {
        "benchmark": "inference",
        "config": {"depth": 4, "n_embd": 256, "vocab": VOCAB, "sequence_len": 256, "prompt_tokens": PROMPT_LEN,
                   "new_tokens": NEW_TOKENS, "decoding": "greedy", "repeats": REPEATS, "dtype": "float32"},
        "nanochat_ref": PINNED_NANOCHAT,
        "nanochat_git": git_state(args.nanochat),
        "same_greedy_tokens": same_tokens,
        "decode_ratio_b1": compiled["by_batch"][1]["decode_tok_s"] / nanochat["by_batch"][1]["decode_tok_s"],
        "decode_ratio_b8": compiled["by_batch"][8]["decode_tok_s"] / nanochat["by_batch"][8]["decode_tok_s"],
        "eager_decode_ratio_b1": ours["by_batch"][1]["decode_tok_s"] / nanochat["by_batch"][1]["decode_tok_s"],
        "eager_decode_ratio_b8": ours["by_batch"][8]["decode_tok_s"] / nanochat["by_batch"][8]["decode_tok_s"],
        "compile_warmup_s": {b: compiled["by_batch"][b]["warmup_s"] for b in (1, 8)},
        "memory_bandwidth_gb_s": bandwidth / 1e9, "matmul_peak_gflops": peak / 1e9,
        "utilisation": {name: {b: dict(zip(("mbu", "mfu"), utilisation(res, b))) for b in res["by_batch"]}
                        for name, res in (("ours", ours), ("ours_compiled", compiled), ("nanochat", nanochat))},
        "prefill_ratio_b1": ours["by_batch"][1]["prefill_tok_s"] / nanochat["by_batch"][1]["prefill_tok_s"],
        "peak_rss_mb": {"ours": ours["peak_rss_mb"], "ours_compiled": compiled["peak_rss_mb"],
                        "nanochat": nanochat["peak_rss_mb"], "ours_nocache": nocache["peak_rss_mb"]},
        "table": {name: {b: {k: v for k, v in r.items() if k != "tokens"} for b, r in res["by_batch"].items()}
                  for name, res in (("ours", ours), ("ours_compiled", compiled), ("nanochat", nanochat),
                                    ("ours_nocache", nocache))},
        "targets": {"decode_ratio_b1": 1.5, "decode_ratio_b8": 1.5, "peak_memory": "ours <= nanochat"},
    }
    data["targets_met"] = {"decode_ratio_b1": data["decode_ratio_b1"] >= 1.5,
                           "decode_ratio_b8": data["decode_ratio_b8"] >= 1.5,
                           "peak_memory": ours["peak_rss_mb"] <= nanochat["peak_rss_mb"]}
    lines = [
        "# Inference benchmark: our Engine vs nanochat's Engine (same weights, CPU, fp32)",
        "",
        f"Depth-4 model (256 wide, vocab {VOCAB}), prompt of {PROMPT_LEN} tokens, {NEW_TOKENS} new tokens, greedy; "
        f"median of {REPEATS} runs; each side in its own process. Identical greedy tokens from all four: "
        f"{same_tokens}. MBU against a measured copy bandwidth of {bandwidth / 1e9:.1f} GB/s; MFU (forward "
        f"FLOPs) against a measured fp32 matmul peak of {peak / 1e9:.0f} GFLOP/s.",
        "",
        "| engine | batch | prefill tok/s | decode tok/s | MBU | MFU | compile warm-up (s) | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        table_row("nanochat 2f09686", nanochat, 1), table_row("ours eager (KV cache)", ours, 1),
        table_row("ours compiled (static cache)", compiled, 1), table_row("ours, no cache", nocache, 1),
        table_row("nanochat 2f09686", nanochat, 8), table_row("ours eager (KV cache)", ours, 8),
        table_row("ours compiled (static cache)", compiled, 8),
        "",
        f"- Decode, our compiled engine: **{data['decode_ratio_b1']:.2f}x** nanochat at batch 1 and "
        f"**{data['decode_ratio_b8']:.2f}x** at batch 8 (target >= 1.5x: "
        f"{'met' if data['targets_met']['decode_ratio_b1'] else 'MISSED'} / "
        f"{'met' if data['targets_met']['decode_ratio_b8'] else 'MISSED'}); eager: "
        f"{data['eager_decode_ratio_b1']:.2f}x and {data['eager_decode_ratio_b8']:.2f}x.",
        f"- Peak RSS: ours {ours['peak_rss_mb']:,.0f} MB vs nanochat {nanochat['peak_rss_mb']:,.0f} MB "
        f"(target: no higher): {'met' if data['targets_met']['peak_memory'] else 'MISSED'}.",
    ]
    json_path, md_path = write_results(args.out, "inference", data, "\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
