"""``tok-train`` and ``tok-eval``: train a BPE tokenizer; compare compression across vocabulary sizes."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from nanochat_next.atomic import writable_dir, write_text
from nanochat_next.cli.args import add_corpus_flags, int_list, non_negative_int, positive_int
from nanochat_next.corpus import load_split

TOK_EVAL_OUT = "out/tok_eval"


def register(sub, fmt) -> None:
    p = sub.add_parser("tok-train", help="train a GPT-4 style byte-level BPE tokenizer and save it",
                       formatter_class=fmt,
                       description="Train a byte-level BPE tokenizer (nanochat's split pattern and special tokens) "
                                   "on the training split of a corpus, save it as text files, and report its "
                                   "compression on the held-out split.")
    add_corpus_flags(p)
    p.add_argument("--vocab-size", type=positive_int, default=4096,
                   help="total vocabulary size, the 9 special tokens included (at least 265)")
    p.add_argument("--trainer", choices=["rustbpe", "python"], default="rustbpe",
                   help="rustbpe (fast) or python (our readable trainer; identical merges)")
    p.add_argument("--doc-cap", type=non_negative_int, default=10_000,
                   help="crop each document to this many characters before training, 0 = no crop")
    p.add_argument("--max-chars", type=non_negative_int, default=0,
                   help="stop adding documents after this many characters, 0 = all")
    p.add_argument("--out", default="out/tokenizer", help="directory to save the tokenizer")
    p.set_defaults(func=cmd_tok_train)

    p = sub.add_parser("tok-eval", help="compression (bytes/token, tokens/document) across vocab sizes",
                       formatter_class=fmt,
                       description="Train one tokenizer per vocab size on the training split (or load saved ones "
                                   "with --tokenizer) and measure bytes per token and tokens per document on the "
                                   "held-out split. Prints a table; writes JSON, Markdown and a plot to --out.")
    add_corpus_flags(p)
    p.add_argument("--vocab-sizes", type=int_list, default=[512, 1024, 2048, 4096],
                   help="comma-separated vocab sizes to train and compare")
    p.add_argument("--tokenizer", action="append", metavar="DIR",
                   help="evaluate a saved tokenizer instead of training (repeat for several)")
    p.add_argument("--trainer", choices=["rustbpe", "python"], default="rustbpe", help="trainer for the sweep")
    p.add_argument("--out", default=None,
                   help=f"directory for tok_eval.json/.md/.png (default: {TOK_EVAL_OUT}, or {TOK_EVAL_OUT}_2, _3, ... "
                        "when it already holds a result: an earlier table is never overwritten unless named)")
    p.set_defaults(func=cmd_tok_eval)


def training_texts(docs: list[str], doc_cap: int, max_chars: int) -> list[str]:
    """Documents cropped to ``doc_cap`` characters, up to ``max_chars`` characters in all (0 = no limit)."""
    texts = [d[:doc_cap] for d in docs] if doc_cap else list(docs)
    if not max_chars:
        return texts
    kept, total = [], 0
    for d in texts:
        if total >= max_chars:
            break
        kept.append(d)
        total += len(d)
    return kept


def cmd_tok_train(args: argparse.Namespace) -> int:
    from nanochat_next.tokenizer.bpe import BPETokenizer
    from nanochat_next.tokenizer.compression import compression

    writable_dir(args.out)  # before the work: a bad --out must not cost a training run
    train_docs, val_docs = load_split(args.corpus, args.documents, args.val_fraction, not args.no_download)
    texts = training_texts(train_docs, args.doc_cap, args.max_chars)
    n_chars = sum(len(d) for d in texts)
    print(f"training a {args.vocab_size:,}-token BPE with {args.trainer} on {len(texts):,} documents "
          f"({n_chars:,} characters) of {args.corpus}")
    t0 = time.perf_counter()
    tok = BPETokenizer.train(texts, args.vocab_size, trainer=args.trainer, progress=args.trainer == "python")
    seconds = time.perf_counter() - t0
    if tok.vocab_size < args.vocab_size:
        print(f"note: the text ran out of pairs to merge; the vocabulary has {tok.vocab_size:,} tokens")
    out = tok.save(args.out)
    stats = compression(tok, val_docs)
    print(f"trained in {seconds:.2f} s: {tok.num_merges:,} merges + 256 bytes + {len(tok.special_tokens)} special "
          f"tokens = {tok.vocab_size:,}")
    print(f"held-out compression: {stats['bytes_per_token']:.3f} bytes/token, "
          f"{stats['tokens_per_document']:.1f} tokens/document over {stats['documents']:,} documents")
    sample = val_docs[0][:60]
    pieces = [tok.decode([i]) for i in tok.encode(sample)]
    print(f"example: {sample!r} -> {len(pieces)} tokens {pieces[:12]}{' ...' if len(pieces) > 12 else ''}")
    print(f"saved to {out}/ (tokenizer.json + tokenizer.tiktoken)")
    return 0


def fresh_out(requested: str | None) -> Path:
    """--out as given, else the first of out/tok_eval, out/tok_eval_2, ... that holds no earlier result."""
    if requested is not None:
        return Path(requested)
    candidate, n = Path(TOK_EVAL_OUT), 1
    while (candidate / "tok_eval.json").exists():
        n += 1
        candidate = Path(f"{TOK_EVAL_OUT}_{n}")
    return candidate


def cmd_tok_eval(args: argparse.Namespace) -> int:
    from nanochat_next.tokenizer.bpe import BPETokenizer
    from nanochat_next.tokenizer.compression import compression, format_table, plot_compression

    out = writable_dir(fresh_out(args.out))
    train_docs, val_docs = load_split(args.corpus, args.documents, args.val_fraction, not args.no_download)
    rows = []
    if args.tokenizer:
        for directory in args.tokenizer:
            row = compression(BPETokenizer.load(directory), val_docs)
            rows.append({**row, "tokenizer": str(directory)})
    else:
        for vocab_size in args.vocab_sizes:
            t0 = time.perf_counter()
            tok = BPETokenizer.train(train_docs, vocab_size, trainer=args.trainer)
            rows.append({**compression(tok, val_docs), "train_seconds": time.perf_counter() - t0})
            print(f"vocab {vocab_size:>6,}: {rows[-1]['bytes_per_token']:.3f} bytes/token", file=sys.stderr)
    rows.sort(key=lambda r: r["vocab_size"])
    table = format_table(rows)
    print(table)
    report = {"corpus": args.corpus, "val_fraction": args.val_fraction, "trainer": args.trainer,
              "train_documents": len(train_docs), "val_documents": len(val_docs), "rows": rows}
    write_text(out / "tok_eval.json", json.dumps(report, indent=2) + "\n")
    write_text(out / "tok_eval.md", f"# Tokenizer compression on {args.corpus} (held-out {args.val_fraction:.0%})"
                                    f"\n\n{table}\n")
    plot_compression(rows, out / "tok_eval.png", title=f"{args.corpus}: held-out compression")
    print(f"wrote {out}/tok_eval.json, tok_eval.md and tok_eval.png")
    return 0
