"""Is bfloat16 faster than float32 on this CPU? Matmul throughput and real training tok/s, both dtypes.

    python benchmarks/cpu_dtype_bench.py [--steps 30] [--out results]

Backs the CPU rule in nanochat_next/runtime.py. Writes results/cpu_dtype.json and results/cpu_dtype.md.
"""

from __future__ import annotations

import argparse
import tempfile

import torch

from nanochat_next.corpus import load_corpus, split_documents, train_val_split
from nanochat_next.provenance import write_results
from nanochat_next.runtime import choose_dtype, cpu_native_bf16, measure_matmul_flops
from nanochat_next.tensor.config import TensorRun
from nanochat_next.tensor.packing import DocumentSource
from nanochat_next.tensor.train import train
from nanochat_next.tokenizer.bpe import BPETokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    matmul = {n: {name: round(measure_matmul_flops("cpu", dt, n=n, seconds=1.0) / 1e9, 1)
                  for name, dt in (("float32", torch.float32), ("bfloat16", torch.bfloat16))}
              for n in (512, 1024, 2048)}
    text, rule = load_corpus("tinyshakespeare")
    train_docs, val_docs = train_val_split(split_documents(text, rule))
    tok = BPETokenizer.train(train_docs, 4096)
    training = {}
    for dtype in ("float32", "bfloat16"):
        with tempfile.TemporaryDirectory() as out:
            run = TensorRun(steps=args.steps, eval_every=0, eval_tokens=2048, dtype=dtype, device="cpu", out=out)
            result = train(run, DocumentSource.from_docs(train_docs), DocumentSource.from_docs(val_docs), tok,
                           progress=False, log=lambda *a, **k: None)
        training[dtype] = {"tok_per_s_median": round(result["tok_per_s_median"], 1),
                           "final_loss": result["final_loss"]}
    native, why = cpu_native_bf16()
    data = {"benchmark": "cpu_dtype", "matmul_gflops": matmul, "training_depth4_seq256": training,
            "bf16_over_fp32_training": (training["bfloat16"]["tok_per_s_median"]
                                        / training["float32"]["tok_per_s_median"]),
            "cpu_bf16_rule": {"fast_bf16": native, "reason": why, "auto_dtype": choose_dtype("cpu").name}}
    lines = ["# bfloat16 vs float32 on this CPU", "", "| matmul n | float32 GFLOP/s | bfloat16 GFLOP/s |",
             "|---:|---:|---:|"]
    lines += [f"| {n} | {v['float32']:.0f} | {v['bfloat16']:.0f} |" for n, v in matmul.items()]
    lines += ["", f"Training (depth 4, seq 256, 2048-token steps, {args.steps} steps, eager): float32 "
              f"{training['float32']['tok_per_s_median']:,.0f} tok/s, bfloat16 autocast "
              f"{training['bfloat16']['tok_per_s_median']:,.0f} tok/s "
              f"({data['bf16_over_fp32_training']:.2f}x).", "",
              f"Rule applied by `--dtype auto` here: {data['cpu_bf16_rule']['auto_dtype']} ({why})."]
    json_path, md_path = write_results(args.out, "cpu_dtype", data, "\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
