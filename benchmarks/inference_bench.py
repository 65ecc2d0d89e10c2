"""Inference benchmark: our Engine vs nanochat's Engine at the pinned ref, on the same weights.

    python benchmarks/inference_bench.py --nanochat PATH --nanochat-python PY [--out results]

The depth-4 model of the training benchmark (vocab 4096, seq 256, head_dim 64), initialised once with a
fixed seed and saved as a plain tensor dict; both engines load the same file (nanochat's GPT takes our
state dict as is). Greedy decoding, so both must produce the same tokens (checked). For each engine and
batch size 1 and 8 (8 samples of one prompt): prefill tok/s (prompt tokens / time to the first token) and
decode tok/s (new tokens x batch / time from the first to the last token), median of 3 runs, each side in
its own process for its peak RSS. Ours without the KV cache (a full forward per token) at batch 1 too.
Writes results/inference.json (top-level ``decode_ratio_b1`` = ours / nanochat decode tok/s at batch 1)
and results/inference.md.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from nanochat_next.provenance import git_state, write_results
from nanochat_next.tensor_train import TensorRun, build_model, model_config

PINNED = "2f096867244e3d00a50284d1be05fa3f5dcfb84b"
PROMPT_LEN, NEW_TOKENS, VOCAB, REPEATS = 64, 128, 4096, 5

# Runs inside each side's process: prints one JSON line with timings and the greedy tokens.
RUNNER = r"""
import json, statistics, sys, time, torch
side, weights, config_path = sys.argv[1], sys.argv[2], sys.argv[3]
cfg = json.load(open(config_path))
state = torch.load(weights, weights_only=True)
prompt = cfg["prompt"]; new = cfg["new_tokens"]
torch.set_num_threads(torch.get_num_threads())
if side == "nanochat":
    sys.path.insert(0, cfg["nanochat"])
    from nanochat.gpt import GPT, GPTConfig
    from nanochat.engine import Engine
    model = GPT(GPTConfig(**cfg["model_config"]))
    model.load_state_dict(state, strict=True)
    model.eval()
    specials = {s: cfg["bos"] + i for i, s in enumerate(cfg["specials"])}
    class Tok:
        def encode_special(self, s): return specials[s]
        def get_bos_token_id(self): return cfg["bos"]
    engine = Engine(model, Tok())
    def stream(batch):
        for column, _ in engine.generate(prompt, num_samples=batch, max_tokens=new, temperature=0.0):
            yield column
else:
    from nanochat_next.engine import Engine
    from nanochat_next.gpt import GPT, GPTConfig
    model = GPT(GPTConfig(**cfg["model_config"]), init=False)
    model.load_state_dict(state, strict=True)
    engine = Engine(model.eval())
    def stream(batch):
        for step in engine.generate(prompt, new, num_samples=batch, temperature=0.0, stop_tokens=set()):
            yield step
    if side == "ours-nocache":
        def stream(batch):
            ids = torch.tensor([prompt] * batch)
            with torch.no_grad():
                for _ in range(new):
                    nxt = model(ids)[:, -1].argmax(-1)
                    ids = torch.cat([ids, nxt[:, None]], 1)
                    yield nxt.tolist()
def measure(batch):
    t0 = time.perf_counter(); stamps = []; tokens = []
    for column in stream(batch):
        stamps.append(time.perf_counter()); tokens.append(column[0])
    return {"prefill_tok_s": len(prompt) / (stamps[0] - t0),
            "decode_tok_s": (len(stamps) - 1) * batch / (stamps[-1] - stamps[0]), "tokens": tokens}
out = {}
for batch in cfg["batches"]:
    runs = [measure(batch) for _ in range(cfg["repeats"])]
    out[batch] = {"prefill_tok_s": statistics.median(r["prefill_tok_s"] for r in runs),
                  "decode_tok_s": statistics.median(r["decode_tok_s"] for r in runs), "tokens": runs[0]["tokens"]}
print("RESULT", json.dumps(out), flush=True)
"""


def run_side(python: str, side: str, weights: Path, config: Path, cwd: Path) -> dict:
    proc = subprocess.run(["/usr/bin/time", "-v", python, "-c", RUNNER, side, str(weights), str(config)],
                          capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    return {"by_batch": {int(k): v for k, v in result.items()}, "peak_rss_mb": int(rss.group(1)) / 1024}


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
    from nanochat_next.bpe_tokenizer import SPECIAL_TOKENS

    config = work / "config.json"
    config.write_text(json.dumps({"model_config": model_config(run, VOCAB).__dict__, "prompt": prompt,
                                  "new_tokens": NEW_TOKENS, "batches": [1, 8], "repeats": REPEATS,
                                  "nanochat": args.nanochat, "bos": VOCAB - 9, "specials": SPECIAL_TOKENS}))
    nanochat = run_side(args.nanochat_python, "nanochat", weights, config, Path(args.nanochat))
    ours = run_side(sys.executable, "ours", weights, config, Path.cwd())
    cfg = json.loads(config.read_text())
    cfg["batches"] = [1]
    config.write_text(json.dumps(cfg))
    nocache = run_side(sys.executable, "ours-nocache", weights, config, Path.cwd())
    same_tokens = ours["by_batch"][1]["tokens"] == nanochat["by_batch"][1]["tokens"] == nocache["by_batch"][1]["tokens"]

    def table_row(name: str, side: dict, batch: int) -> str:
        r = side["by_batch"][batch]
        return (f"| {name} | {batch} | {r['prefill_tok_s']:,.0f} | {r['decode_tok_s']:,.0f} "
                f"| {side['peak_rss_mb']:,.0f} |")

    data = {
        "benchmark": "inference",
        "config": {"depth": 4, "n_embd": 256, "vocab": VOCAB, "sequence_len": 256, "prompt_tokens": PROMPT_LEN,
                   "new_tokens": NEW_TOKENS, "decoding": "greedy", "repeats": REPEATS, "dtype": "float32"},
        "nanochat_ref": PINNED,
        "nanochat_git": git_state(args.nanochat),
        "same_greedy_tokens": same_tokens,
        "decode_ratio_b1": ours["by_batch"][1]["decode_tok_s"] / nanochat["by_batch"][1]["decode_tok_s"],
        "decode_ratio_b8": ours["by_batch"][8]["decode_tok_s"] / nanochat["by_batch"][8]["decode_tok_s"],
        "prefill_ratio_b1": ours["by_batch"][1]["prefill_tok_s"] / nanochat["by_batch"][1]["prefill_tok_s"],
        "peak_rss_mb": {"ours": ours["peak_rss_mb"], "nanochat": nanochat["peak_rss_mb"],
                        "ours_nocache": nocache["peak_rss_mb"]},
        "table": {side: {b: {k: v for k, v in r.items() if k != "tokens"} for b, r in res["by_batch"].items()}
                  for side, res in (("ours", ours), ("nanochat", nanochat), ("ours_nocache", nocache))},
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
