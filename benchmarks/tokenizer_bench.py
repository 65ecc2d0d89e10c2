"""Tokenizer benchmark: training time and encode throughput against the references.

    python benchmarks/tokenizer_bench.py [--repeats 5] [--out results]

On tinyshakespeare (training split, 6,499 documents) at vocab 512 / 1024 / 4096 it times:
- rustbpe called directly (train_from_iterator + get_mergeable_ranks), the reference;
- our fast path, ``BPETokenizer.train(trainer="rustbpe")`` (rustbpe + building the tiktoken encoder);
- our pure-Python trainer, ``BPETokenizer.train(trainer="python")``;
- encoding the whole corpus (one string, and a batch of documents) with tiktoken directly vs through
  ``BPETokenizer``.
Every time is the median of interleaved repeats. Writes results/tokenizer.json and results/tokenizer.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import rustbpe
import tiktoken

from nanochat_next.corpus import load_corpus, split_documents, train_val_split
from nanochat_next.provenance import write_results
from nanochat_next.tokenizer.bpe import SPECIAL_TOKENS, BPETokenizer
from nanochat_next.tokenizer.bpe_train import SPLIT_PATTERN


def rustbpe_direct(docs: list[str], vocab_size: int) -> list:
    tok = rustbpe.Tokenizer()
    tok.train_from_iterator(iter(docs), vocab_size - len(SPECIAL_TOKENS), pattern=SPLIT_PATTERN)
    return tok.get_mergeable_ranks()


def median_times(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each function, running them interleaved so drift hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--vocab-sizes", default="512,1024,4096")
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    vocab_sizes = [int(v) for v in args.vocab_sizes.split(",")]

    text, rule = load_corpus("tinyshakespeare")
    train_docs, _ = train_val_split(split_documents(text, rule))
    all_docs = split_documents(text, rule)
    rows = []
    for vocab_size in vocab_sizes:
        train = median_times({
            "rustbpe_direct": lambda v=vocab_size: rustbpe_direct(train_docs, v),
            "fastpath": lambda v=vocab_size: BPETokenizer.train(train_docs, v, trainer="rustbpe"),
            "python": lambda v=vocab_size: BPETokenizer.train(train_docs, v, trainer="python"),
        }, args.repeats)
        ours = BPETokenizer.train(train_docs, vocab_size, trainer="python")
        reference = [bytes(b) for b, _ in sorted(rustbpe_direct(train_docs, vocab_size), key=lambda r: r[1])]
        enc = tiktoken.Encoding("reference", pat_str=SPLIT_PATTERN,
                                mergeable_ranks={b: i for i, b in enumerate(reference)},
                                special_tokens={s: len(reference) + i for i, s in enumerate(SPECIAL_TOKENS)})
        assert ours.encode(text) == enc.encode_ordinary(text)
        encode = median_times({
            "tiktoken_text": lambda e=enc: e.encode_ordinary(text),
            "ours_text": lambda t=ours: t.encode(text),
            "tiktoken_batch": lambda e=enc: e.encode_ordinary_batch(all_docs),
            "ours_batch": lambda t=ours: t.encode_batch(all_docs),
        }, args.repeats)
        n_bytes = len(text.encode("utf-8"))
        rows.append({
            "vocab_size": vocab_size,
            "identical_vocab_python_vs_rustbpe": ours.token_bytes == reference,
            "train_seconds": {k: round(v, 4) for k, v in train.items()},
            "encode_seconds": {k: round(v, 4) for k, v in encode.items()},
            "encode_mb_per_s": {k: round(n_bytes / v / 1e6, 2) for k, v in encode.items()},
            "python_vs_rustbpe_train_ratio": round(train["python"] / train["rustbpe_direct"], 3),
            "fastpath_vs_rustbpe_train_ratio": round(train["fastpath"] / train["rustbpe_direct"], 3),
            "encode_vs_tiktoken_ratio": round(encode["ours_text"] / encode["tiktoken_text"], 3),
            "encode_batch_vs_tiktoken_ratio": round(encode["ours_batch"] / encode["tiktoken_batch"], 3),
        })
        print(rows[-1])

    head = next((r for r in rows if r["vocab_size"] == 4096), rows[-1])
    data = {
        "benchmark": "tokenizer",
        "corpus": "tinyshakespeare",
        "train_documents": len(train_docs),
        "encode_bytes": len(text.encode("utf-8")),
        "repeats": args.repeats,
        "headline_vocab_size": head["vocab_size"],
        "python_vs_rustbpe_train_ratio": head["python_vs_rustbpe_train_ratio"],
        "fastpath_vs_rustbpe_train_ratio": head["fastpath_vs_rustbpe_train_ratio"],
        "encode_vs_tiktoken_ratio": head["encode_vs_tiktoken_ratio"],
        "targets": {"python_vs_rustbpe_train_ratio": 30.0, "fastpath_vs_rustbpe_train_ratio": 1.05,
                    "encode_vs_tiktoken_ratio": 1.05},
        "rows": rows,
    }
    data["targets_met"] = {k: data[k] <= limit for k, limit in data["targets"].items()}

    lines = [
        "# Tokenizer benchmark",
        "",
        f"tinyshakespeare: training on {len(train_docs):,} documents, encoding the whole corpus "
        f"({data['encode_bytes']:,} bytes); median of {args.repeats} interleaved repeats. "
        "Ratios are time ours / time reference (lower is better; 1.0 = same speed).",
        "",
        "| vocab | rustbpe direct (s) | fast path (s) | python trainer (s) | python / rustbpe | fast path / rustbpe "
        "| tiktoken encode (MB/s) | ours encode (MB/s) | encode ours / tiktoken | identical vocab |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in rows:
        t, mbs = r["train_seconds"], r["encode_mb_per_s"]
        lines.append(
            f"| {r['vocab_size']} | {t['rustbpe_direct']:.3f} | {t['fastpath']:.3f} | {t['python']:.3f} "
            f"| {r['python_vs_rustbpe_train_ratio']:.2f}x | {r['fastpath_vs_rustbpe_train_ratio']:.3f} "
            f"| {mbs['tiktoken_text']:.2f} | {mbs['ours_text']:.2f} | {r['encode_vs_tiktoken_ratio']:.3f} "
            f"| {'yes' if r['identical_vocab_python_vs_rustbpe'] else 'NO'} |")
    lines += ["", f"Targets at vocab {head['vocab_size']}:", ""]
    for key, limit in data["targets"].items():
        verdict = "met" if data["targets_met"][key] else "MISSED"
        lines.append(f"- `{key}` = {data[key]:.3f} (target <= {limit}): {verdict}")
    json_path, md_path = write_results(args.out, "tokenizer", data, "\n".join(lines))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
