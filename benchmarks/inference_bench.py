"""Inference benchmark: our Engine vs nanochat's Engine at the pinned ref, on the same weights.

    python benchmarks/inference_bench.py --nanochat PATH --nanochat-python PY [--out results]

The depth-4 model of the cpu bench profile (vocab 4096, seq 256, head_dim 64), initialised once with a fixed
seed and saved as a plain tensor dict; both engines load the same file (nanochat's GPT takes our state dict
as is). Greedy decoding, so both must produce the same tokens (checked). For each engine and batch size 1
and 8 (8 samples of one prompt): prefill tok/s (prompt tokens / time to the first token) and decode tok/s
(new tokens x batch / time from the first to the last token), median of 5 runs, each side in its own
process for its peak RSS; ours without the KV cache (a full forward per token) at batch 1 too. The runner
is the one `nanochat-next bench` uses (``nanochat_next.bench.DECODE_RUNNER``); this script adds the batch-8
and no-cache measurements. Writes results/inference.json (top-level ``decode_ratio_b1`` = ours / nanochat
decode tok/s at batch 1) and results/inference.md.
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
from nanochat_next.tensor.config import TensorRun
from nanochat_next.tensor.model_io import build_model, model_config

PROMPT_LEN, NEW_TOKENS, VOCAB, REPEATS = 64, 128, 4096, 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nanochat", required=True)
    parser.add_argument("--nanochat-python", required=True)
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    run = TensorRun(depth=4, head_dim=64, max_seq_len=256, window_pattern="L")
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
    nocache = side("ours-nocache", sys.executable, Path.cwd(), [1])
    same_tokens = ours["by_batch"][1]["tokens"] == nanochat["by_batch"][1]["tokens"] == nocache["by_batch"][1]["tokens"]

    def table_row(name: str, result: dict, batch: int) -> str:
        r = result["by_batch"][batch]
        return (f"| {name} | {batch} | {r['prefill_tok_s']:,.0f} | {r['decode_tok_s']:,.0f} "
                f"| {result['peak_rss_mb']:,.0f} |")

    data = {
        "benchmark": "inference",
        "config": {"depth": 4, "n_embd": 256, "vocab": VOCAB, "sequence_len": 256, "prompt_tokens": PROMPT_LEN,
                   "new_tokens": NEW_TOKENS, "decoding": "greedy", "repeats": REPEATS, "dtype": "float32"},
        "nanochat_ref": PINNED_NANOCHAT,
        "nanochat_git": git_state(args.nanochat),
        "same_greedy_tokens": same_tokens,
        "decode_ratio_b1": ours["by_batch"][1]["decode_tok_s"] / nanochat["by_batch"][1]["decode_tok_s"],
        "decode_ratio_b8": ours["by_batch"][8]["decode_tok_s"] / nanochat["by_batch"][8]["decode_tok_s"],
        "prefill_ratio_b1": ours["by_batch"][1]["prefill_tok_s"] / nanochat["by_batch"][1]["prefill_tok_s"],
        "peak_rss_mb": {"ours": ours["peak_rss_mb"], "nanochat": nanochat["peak_rss_mb"],
                        "ours_nocache": nocache["peak_rss_mb"]},
        "table": {name: {b: {k: v for k, v in r.items() if k != "tokens"} for b, r in res["by_batch"].items()}
                  for name, res in (("ours", ours), ("nanochat", nanochat), ("ours_nocache", nocache))},
        "targets": {"decode_ratio_b1": 1.5, "peak_memory": "ours <= nanochat"},
    }
    data["targets_met"] = {"decode_ratio_b1": data["decode_ratio_b1"] >= 1.5,
                           "peak_memory": ours["peak_rss_mb"] <= nanochat["peak_rss_mb"]}
    lines = [
        "# Inference benchmark: our Engine vs nanochat's Engine (same weights, CPU, fp32)",
        "",
        f"Depth-4 model (256 wide, vocab {VOCAB}), prompt of {PROMPT_LEN} tokens, {NEW_TOKENS} new tokens, greedy; "
        f"median of {REPEATS} runs; each side in its own process. Identical greedy tokens from all three: "
        f"{same_tokens}.",
        "",
        "| engine | batch | prefill tok/s | decode tok/s | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|",
        table_row("nanochat 2f09686", nanochat, 1), table_row("ours (KV cache)", ours, 1),
        table_row("ours, no cache", nocache, 1), table_row("nanochat 2f09686", nanochat, 8),
        table_row("ours (KV cache)", ours, 8),
        "",
        f"- Decode at batch 1: **{data['decode_ratio_b1']:.2f}x** nanochat (target >= 1.5x): "
        f"{'met' if data['targets_met']['decode_ratio_b1'] else 'MISSED'}; at batch 8: "
        f"{data['decode_ratio_b8']:.2f}x.",
        f"- Peak RSS: ours {ours['peak_rss_mb']:,.0f} MB vs nanochat {nanochat['peak_rss_mb']:,.0f} MB "
        f"(target: no higher): {'met' if data['targets_met']['peak_memory'] else 'MISSED'}.",
    ]
    json_path, md_path = write_results(args.out, "inference", data, "\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
