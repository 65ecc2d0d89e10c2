"""Training benchmark: ours vs karpathy/nanochat at the pinned ref, same data, tokenizer, config, machine.

    python benchmarks/train_vs_nanochat.py --nanochat PATH --nanochat-python PY [--steps 200] [--out results]

PATH is a nanochat checkout at 2f096867244e3d00a50284d1be05fa3f5dcfb84b; PY a Python with nanochat's
dependencies (e.g. the venv that ../shared/tools/nanochat_cpu.sh builds). Nothing of nanochat is copied:
it runs from its checkout, in a temporary NANOCHAT_BASE_DIR.

1. One dataset: tinyshakespeare, documents = blank-line separated paragraphs, the first 90% as the train
   parquet shard and the last 10% as the val shard (row groups of 1024), nanochat's layout.
2. One tokenizer: nanochat's tok_train (rustbpe, vocab 4096) on the train shard; ours trains the same way
   and the benchmark checks both vocabularies are identical before training anything.
3. The same config: depth 4, head_dim 64, seq 256, device batch 8, total batch 2048 tokens, window L,
   200 steps, eval every 50 steps on 16384 tokens, seed fixed (nanochat's is 42; ours --seed 42).
4. nanochat (always compiled, fp32 on CPU) and ours in float32 (compiled, the same math) and with our
   default dtype. Each as its own process under /usr/bin/time for peak RSS.
Writes results/train_vs_nanochat.json and .md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from nanochat_next.bpe_tokenizer import BPETokenizer
from nanochat_next.corpus import load_corpus, split_documents, train_val_split
from nanochat_next.provenance import git_state, write_results
from nanochat_next.runtime import choose_dtype

PINNED = "2f096867244e3d00a50284d1be05fa3f5dcfb84b"
CONFIG = dict(depth=4, head_dim=64, max_seq_len=256, device_batch_size=8, total_batch_size=2048, window_pattern="L",
              num_iterations=200, eval_every=50, eval_tokens=16384, vocab_size=4096, seed=42)

NANOCHAT_RANKS = """
import hashlib, pickle, sys
enc = pickle.load(open(sys.argv[1], "rb"))
items = sorted((rank, token) for token, rank in enc._mergeable_ranks.items())
print(hashlib.sha256(repr(items).encode()).hexdigest())
"""


def ranks_digest(token_bytes: list[bytes]) -> str:
    return hashlib.sha256(repr(list(enumerate(token_bytes))).encode()).hexdigest()


def timed(cmd: list[str], cwd: str | Path, env: dict, log: Path) -> dict:
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
    text = log.read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed (exit {proc.returncode}); see {log}:\n{text[-2000:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return {"wall_seconds": time.perf_counter() - t0, "peak_rss_mb": int(rss.group(1)) / 1024 if rss else None,
            "log": text}


def parse_nanochat(text: str) -> dict:
    tps = [int(x.replace(",", "")) for x in re.findall(r"tok/sec: ([\d,]+)", text)]
    evals = [{"step": int(s), "val_bpb": float(b)} for s, b in re.findall(r"Step (\d+) \| Validation bpb: ([\d.]+)",
                                                                        text)]
    return {"tok_per_s": tps, "evals": evals}


def parse_ours(out: Path) -> dict:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {"tok_per_s": [r["tok_per_s"] for r in records if "tok_per_s" in r],
            "evals": [{"step": r["step"], "val_bpb": r["val_bpb"]} for r in records if "val_bpb" in r],
            "losses": [r["loss"] for r in records if "loss" in r]}


def steady(tps: list[float]) -> dict:
    rest = tps[10:] or tps  # the first steps include compilation and warm-up
    return {"median": statistics.median(rest), "min": min(rest), "max": max(rest)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nanochat", required=True)
    parser.add_argument("--nanochat-python", required=True)
    parser.add_argument("--steps", type=int, default=CONFIG["num_iterations"])
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    nc_head = subprocess.run(["git", "-C", args.nanochat, "rev-parse", "HEAD"], capture_output=True, text=True)
    if nc_head.stdout.strip() != PINNED:
        sys.exit(f"{args.nanochat} is not at the pinned ref {PINNED}")
    config = {**CONFIG, "num_iterations": args.steps}
    work = Path(tempfile.mkdtemp(prefix="train-vs-nanochat-"))
    base = work / "ncbase"
    (base / "base_data").mkdir(parents=True)
    text, rule = load_corpus("tinyshakespeare")
    train_docs, val_docs = train_val_split(split_documents(text, rule))
    for i, part in enumerate([train_docs, val_docs]):
        pq.write_table(pa.table({"text": part}), base / "base_data" / f"shard_{i:05d}.parquet", row_group_size=1024)
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(base), "OMP_NUM_THREADS": str(os.cpu_count())}

    # one tokenizer: nanochat trains it; ours must come out identical
    subprocess.run([args.nanochat_python, "-m", "scripts.tok_train", "--vocab-size", str(config["vocab_size"])],
                   cwd=args.nanochat, env=env, check=True, capture_output=True)
    theirs = subprocess.run([args.nanochat_python, "-c", NANOCHAT_RANKS, str(base / "tokenizer" / "tokenizer.pkl")],
                            capture_output=True, text=True, check=True).stdout.strip()
    ours_tok = BPETokenizer.train([d[:10_000] for d in train_docs], config["vocab_size"])
    same_tokenizer = ranks_digest(ours_tok.token_bytes) == theirs
    if not same_tokenizer:
        sys.exit("the two tokenizers differ; refusing to compare training runs on different tokens")
    ours_tok.save(work / "tokenizer")

    nc_cmd = [args.nanochat_python, "-m", "scripts.base_train", "--device-type", "cpu", "--depth", str(config["depth"]),
              "--head-dim", str(config["head_dim"]), "--max-seq-len", str(config["max_seq_len"]),
              "--device-batch-size", str(config["device_batch_size"]), "--total-batch-size",
              str(config["total_batch_size"]), "--window-pattern", config["window_pattern"], "--num-iterations",
              str(config["num_iterations"]), "--eval-every", str(config["eval_every"]), "--eval-tokens",
              str(config["eval_tokens"]), "--core-metric-every", "-1", "--sample-every", "-1", "--save-every", "-1"]
    print("running nanochat ...", flush=True)
    nc_run = timed(nc_cmd, args.nanochat, env, work / "nanochat.log")
    nanochat = {**parse_nanochat(nc_run["log"]), "peak_rss_mb": nc_run["peak_rss_mb"],
                "wall_seconds": nc_run["wall_seconds"]}

    def ours(dtype: str, compile_: bool) -> dict:
        out = work / f"ours_{dtype}_{'compiled' if compile_ else 'eager'}"
        cmd = [sys.executable, "-m", "nanochat_next", "train", "--mode", "tensor", "--data", str(base / "base_data"),
               "--tokenizer", str(work / "tokenizer"), "--depth", str(config["depth"]), "--head-dim",
               str(config["head_dim"]), "--max-seq-len", str(config["max_seq_len"]), "--device-batch-size",
               str(config["device_batch_size"]), "--total-batch-size", str(config["total_batch_size"]),
               "--window-pattern", config["window_pattern"], "--steps", str(config["num_iterations"]),
               "--eval-every", str(config["eval_every"]), "--eval-tokens", str(config["eval_tokens"]),
               "--seed", str(config["seed"]), "--dtype", dtype, "--device", "cpu", "--out", str(out), "--no-progress",
               "--compile" if compile_ else "--no-compile"]
        print(f"running ours ({dtype}, compile={compile_}) ...", flush=True)
        run = timed(cmd, Path.cwd(), env, work / f"{out.name}.log")
        return {**parse_ours(out), "peak_rss_mb": run["peak_rss_mb"], "wall_seconds": run["wall_seconds"],
                "dtype": dtype, "compile": compile_}

    default_dtype = choose_dtype("cpu").name
    ours_fp32 = ours("float32", True)
    ours_default = ours_fp32 if default_dtype == "float32" else ours(default_dtype, True)

    def final_bpb(side: dict) -> float:
        return side["evals"][-1]["val_bpb"]

    nc_tps = steady(nanochat["tok_per_s"])
    data = {
        "benchmark": "train_vs_nanochat",
        "config": config,
        "nanochat_ref": PINNED,
        "nanochat_git": git_state(args.nanochat),
        "same_tokenizer": same_tokenizer,
        "our_default_dtype": default_dtype,
        "tok_per_s_ratio": steady(ours_default["tok_per_s"])["median"] / nc_tps["median"],
        "val_bpb_delta": final_bpb(ours_default) - final_bpb(nanochat),
        "tok_per_s_ratio_fp32": steady(ours_fp32["tok_per_s"])["median"] / nc_tps["median"],
        "val_bpb_delta_fp32": final_bpb(ours_fp32) - final_bpb(nanochat),
        "targets": {"val_bpb_delta_fp32": 0.005, "tok_per_s_ratio": 2.0, "val_bpb_delta": 0.01},
        "nanochat": {"tok_per_s": nc_tps, "evals": nanochat["evals"], "peak_rss_mb": nanochat["peak_rss_mb"],
                     "wall_seconds": nanochat["wall_seconds"], "dtype": "float32", "compile": True},
        "ours_fp32": {"tok_per_s": steady(ours_fp32["tok_per_s"]), "evals": ours_fp32["evals"],
                      "peak_rss_mb": ours_fp32["peak_rss_mb"], "wall_seconds": ours_fp32["wall_seconds"],
                      "losses": ours_fp32["losses"]},
        "ours_default": {"tok_per_s": steady(ours_default["tok_per_s"]), "evals": ours_default["evals"],
                         "peak_rss_mb": ours_default["peak_rss_mb"], "dtype": default_dtype},
    }
    data["targets_met"] = {
        "val_bpb_delta_fp32": data["val_bpb_delta_fp32"] <= 0.005,
        "tok_per_s_ratio": data["tok_per_s_ratio"] >= 2.0,
        "val_bpb_delta": data["val_bpb_delta"] <= 0.01,
    }
    rows = [("nanochat 2f09686 (fp32, compiled)", nanochat, nc_tps), ("ours (fp32, compiled)", ours_fp32,
                                                                       steady(ours_fp32["tok_per_s"]))]
    if ours_default is not ours_fp32:
        rows.append((f"ours ({default_dtype}, compiled)", ours_default, steady(ours_default["tok_per_s"])))
    eval_steps = [e["step"] for e in nanochat["evals"]]
    lines = [
        "# Training benchmark: ours vs nanochat at the pinned ref",
        "",
        f"Same data (tinyshakespeare paragraphs, last 10% val, nanochat's parquet layout), the same tokenizer "
        f"(identical 4096-token vocabularies: {same_tokenizer}), the same config (depth {config['depth']}, head_dim "
        f"{config['head_dim']}, seq {config['max_seq_len']}, batch {config['device_batch_size']} x "
        f"{config['max_seq_len']}, total {config['total_batch_size']} tokens, window {config['window_pattern']}, "
        f"{config['num_iterations']} steps), the same machine, run one after the other. tok/s is over steps 10+.",
        "",
        "| run | tok/s median (min-max) | " + " | ".join(f"val bpb @{s}" for s in eval_steps) + " | peak RSS (MB) |",
        "|---|---:|" + "---:|" * len(eval_steps) + "---:|",
    ]
    for name, side, tps in rows:
        bpbs = " | ".join(f"{e['val_bpb']:.4f}" for e in side["evals"])
        lines.append(f"| {name} | {tps['median']:,.0f} ({tps['min']:,.0f}-{tps['max']:,.0f}) | {bpbs} "
                     f"| {side['peak_rss_mb']:,.0f} |")
    lines += [
        "",
        f"- Quality, same math (fp32): val bpb delta at the last step {data['val_bpb_delta_fp32']:+.4f} "
        f"(target <= +0.005): {'met' if data['targets_met']['val_bpb_delta_fp32'] else 'MISSED'}.",
        f"- Speed with our default dtype on this CPU ({default_dtype}): {data['tok_per_s_ratio']:.2f}x nanochat's "
        f"tok/s (target >= 2x): {'met' if data['targets_met']['tok_per_s_ratio'] else 'MISSED'}; bpb delta "
        f"{data['val_bpb_delta']:+.4f} (target <= +0.01).",
    ]
    json_path, md_path = write_results(args.out, "train_vs_nanochat", data, "\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
