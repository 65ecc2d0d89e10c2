"""The ``nanochat-next`` command line (also ``python -m nanochat_next``).

Every subcommand turns bad input into one line on stderr, ``error: ...``, and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from nanochat_next import __version__
from nanochat_next.errors import UserError


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 (exclusive), got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def unit_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text}")
    return value


def int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 512,1024, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive comma-separated integers, got {text!r}")
    return values


# ---------------------------------------------------------------------------------------------- data
def add_corpus_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", default="tinyshakespeare",
                   help="a known corpus (tinyshakespeare, names), downloaded once into the cache, or a path to a "
                        "UTF-8 .txt file or a folder of .txt files (default: tinyshakespeare)")
    p.add_argument("--documents", choices=["auto", "paragraphs", "lines"], default="auto",
                   help="how to split the corpus into documents: paragraphs (blank-line separated), lines (one per "
                        "line), or auto = the known corpus's own rule, paragraphs for paths (default: auto)")
    p.add_argument("--val-fraction", type=fraction, default=0.1,
                   help="last fraction of the documents held out for evaluation (default: 0.1)")
    p.add_argument("--no-download", action="store_true",
                   help="never download: use only the cache (error with instructions if the corpus is missing)")


def load_split(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    from nanochat_next.corpus import load_corpus, split_documents, train_val_split

    text, rule = load_corpus(args.corpus, allow_download=not args.no_download)
    docs = split_documents(text, rule if args.documents == "auto" else args.documents)
    return train_val_split(docs, args.val_fraction)


# ---------------------------------------------------------------------------------------------- tok-train
def cmd_tok_train(args: argparse.Namespace) -> int:
    from nanochat_next.bpe_tokenizer import BPETokenizer
    from nanochat_next.tok_eval import compression

    train_docs, val_docs = load_split(args)
    texts = [d[: args.doc_cap] for d in train_docs] if args.doc_cap else train_docs
    if args.max_chars:
        kept, total = [], 0
        for d in texts:
            if total >= args.max_chars:
                break
            kept.append(d)
            total += len(d)
        texts = kept
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


# ---------------------------------------------------------------------------------------------- tok-eval
def cmd_tok_eval(args: argparse.Namespace) -> int:
    from nanochat_next.bpe_tokenizer import BPETokenizer
    from nanochat_next.tok_eval import compression, format_table, plot_compression

    train_docs, val_docs = load_split(args)
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
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"corpus": args.corpus, "val_fraction": args.val_fraction, "trainer": args.trainer,
              "train_documents": len(train_docs), "val_documents": len(val_docs), "rows": rows}
    (out / "tok_eval.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "tok_eval.md").write_text(f"# Tokenizer compression on {args.corpus} (held-out {args.val_fraction:.0%})"
                                     f"\n\n{table}\n")
    plot_compression(rows, out / "tok_eval.png", title=f"{args.corpus}: held-out compression")
    print(f"wrote {out}/tok_eval.json, tok_eval.md and tok_eval.png")
    return 0


# ---------------------------------------------------------------------------------------------- train / sample
def cmd_train(args: argparse.Namespace) -> int:
    from nanochat_next.corpus import load_corpus, split_documents
    from nanochat_next.scalar_train import ScalarRun, train

    if args.val_fraction >= 1.0:
        raise UserError(f"--val-fraction must be below 1, got {args.val_fraction}")
    run = ScalarRun(model_kind=args.model_kind, steps=args.steps, optimizer=args.optimizer, lr=args.lr,
                    lr_schedule=args.lr_schedule, warmup_ratio=args.warmup_ratio, warmdown_ratio=args.warmdown_ratio,
                    final_fraction=args.final_lr_fraction, weight_decay=args.weight_decay, seed=args.seed,
                    val_fraction=args.val_fraction, eval_docs=args.eval_docs, smoothing=args.smoothing,
                    n_embd=args.n_embd, n_head=args.n_head, n_layer=args.n_layer, block_size=args.block_size)
    text, rule = load_corpus(args.data, allow_download=not args.no_download)
    docs = split_documents(text, rule if args.documents == "auto" else args.documents)
    print(f"scalar {run.model_kind}: {len(docs):,} documents from {args.data}, {run.steps} steps of {run.optimizer} "
          f"(lr {run.learning_rate:g}, {run.lr_schedule} schedule), seed {run.seed}")
    result = train(docs, run, checkpoint_dir=args.checkpoint_dir, progress=not args.no_progress, data_name=args.data)
    losses = result["losses"]
    print(f"{result['num_params']:,} parameters, vocab {result['vocab_size']}, "
          f"{result['steps_per_s']:.1f} steps/s over {result['steps_done']} steps")
    if losses:
        first = sum(losses[:10]) / len(losses[:10])
        last = sum(losses[-10:]) / len(losses[-10:])
        print(f"train loss {first:.4f} (first 10 steps) -> {last:.4f} (last 10); "
              f"val loss {result['val_loss']:.4f} on {result['val_documents_evaluated']:,} held-out documents")
    print(f"saved {result['checkpoint']}")
    if result["interrupted"]:
        print(f"interrupted after {result['steps_done']} steps; the checkpoint holds the model at that point",
              file=sys.stderr)
        return 130
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import random

    from nanochat_next import scalar_checkpoint
    from nanochat_next.scalar_sample import check_temperature, generate

    check_temperature(args.temperature)
    model, tokenizer, _ = scalar_checkpoint.load(args.checkpoint)
    prompt = tokenizer.encode(args.prompt, prepend_bos=True)
    rng = random.Random(args.seed)
    for _ in range(args.num_samples):
        new = generate(model, prompt, args.max_new_tokens, args.temperature, rng, stop_token=tokenizer.bos_id)
        print(args.prompt + tokenizer.decode(new))
    return 0


# ---------------------------------------------------------------------------------------------- doctor
def cmd_doctor(args: argparse.Namespace) -> int:
    from nanochat_next.runtime import format_profile, runtime_profile

    if not args.no_compile_check:
        print("checking torch.compile (the first compile on a machine can take ~30 s) ...", file=sys.stderr)
    profile = runtime_profile(args.device, check_compile=not args.no_compile_check, measure=args.measure)
    print(json.dumps(profile, indent=2) if args.json else format_profile(profile))
    return 0


# ---------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nanochat-next",
        description="Train tiny GPT language models from scratch, and compare them with karpathy/nanochat.",
        epilog="Run `nanochat-next COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.ArgumentDefaultsHelpFormatter

    p = sub.add_parser("tok-train", help="train a GPT-4 style byte-level BPE tokenizer and save it",
                       description="Train a byte-level BPE tokenizer (nanochat's split pattern and special tokens) "
                                   "on the training split of a corpus, save it as text files, and report its "
                                   "compression on the held-out split.")
    add_corpus_args(p)
    p.add_argument("--vocab-size", type=positive_int, default=4096,
                   help="total vocabulary size, the 9 special tokens included (at least 265; default: 4096)")
    p.add_argument("--trainer", choices=["rustbpe", "python"], default="rustbpe",
                   help="rustbpe (fast) or python (our readable trainer; identical merges) (default: rustbpe)")
    p.add_argument("--doc-cap", type=non_negative_int, default=10_000,
                   help="crop each document to this many characters before training, 0 = no crop (default: 10000)")
    p.add_argument("--max-chars", type=non_negative_int, default=0,
                   help="stop adding documents after this many characters, 0 = all (default: 0)")
    p.add_argument("--out", default="out/tokenizer", help="directory to save the tokenizer (default: out/tokenizer)")
    p.set_defaults(func=cmd_tok_train)

    p = sub.add_parser("tok-eval", help="compression (bytes/token, tokens/document) across vocab sizes",
                       description="Train one tokenizer per vocab size on the training split (or load saved ones "
                                   "with --tokenizer) and measure bytes per token and tokens per document on the "
                                   "held-out split. Prints a table; writes JSON, Markdown and a plot to --out.")
    add_corpus_args(p)
    p.add_argument("--vocab-sizes", type=int_list, default=[512, 1024, 2048, 4096],
                   help="comma-separated vocab sizes to train and compare (default: 512,1024,2048,4096)")
    p.add_argument("--tokenizer", action="append", metavar="DIR",
                   help="evaluate a saved tokenizer instead of training (repeat for several)")
    p.add_argument("--trainer", choices=["rustbpe", "python"], default="rustbpe",
                   help="trainer for the sweep (default: rustbpe)")
    p.add_argument("--out", default="out/tok_eval", help="directory for tok_eval.json/.md/.png (default: out/tok_eval)")
    p.set_defaults(func=cmd_tok_eval)

    p = sub.add_parser("train", help="train a model (scalar bigram or scalar mini-GPT) and save a checkpoint",
                       description="Train a model and save a checkpoint. --mode scalar trains on Python scalars "
                                   "(the teaching path): a bigram table or a microgpt-style mini-GPT, on a character "
                                   "tokenizer, one document per step (the bigram: all documents every step).",
                       formatter_class=fmt)
    p.add_argument("--mode", choices=["scalar"], default="scalar", help="scalar: Python Value autograd")
    p.add_argument("--model-kind", choices=["bigram", "mini-gpt"], default="mini-gpt", help="which model")
    p.add_argument("--data", "--corpus", dest="data", default="names",
                   help="known corpus (names, tinyshakespeare) or a path to .txt file(s)")
    p.add_argument("--documents", choices=["auto", "paragraphs", "lines"], default="auto",
                   help="document rule: auto = the corpus's own (names: lines), paragraphs for paths")
    p.add_argument("--val-fraction", type=unit_interval, default=0.1,
                   help="fraction of the (shuffled) documents held out for the validation loss; 0 = none")
    p.add_argument("--no-download", action="store_true", help="use only the corpus cache, never download")
    p.add_argument("--steps", type=positive_int, default=500, help="optimizer steps")
    p.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw", help="optimizer")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="peak learning rate (default: 0.01 mini-gpt/adamw, 0.1 mini-gpt/sgd, 0.5 bigram/adamw, "
                        "50 bigram/sgd)")
    p.add_argument("--lr-schedule", choices=["linear", "sqrt", "cosine", "constant"], default="linear",
                   help="warmdown shape: linear, sqrt (1-sqrt), cosine, or constant (no warmdown)")
    p.add_argument("--warmup-ratio", type=unit_interval, default=0.0, help="fraction of steps of linear warmup")
    p.add_argument("--warmdown-ratio", type=unit_interval, default=0.5, help="fraction of steps of warmdown")
    p.add_argument("--final-lr-fraction", type=unit_interval, default=0.0, help="LR at the end, as a fraction of peak")
    p.add_argument("--weight-decay", type=non_negative_float, default=0.0, help="decoupled weight decay")
    p.add_argument("--seed", type=int, default=42, help="seeds the document shuffle and the weight init")
    p.add_argument("--smoothing", type=non_negative_float, default=1.0, help="bigram: pseudo-count added to every pair")
    p.add_argument("--n-embd", type=positive_int, default=16, help="mini-gpt: embedding width")
    p.add_argument("--n-head", type=positive_int, default=4, help="mini-gpt: attention heads (must divide n-embd)")
    p.add_argument("--n-layer", type=positive_int, default=1, help="mini-gpt: transformer blocks")
    p.add_argument("--block-size", type=positive_int, default=16, help="mini-gpt: context length in tokens")
    p.add_argument("--eval-docs", type=positive_int, default=200,
                   help="mini-gpt: held-out documents for the final validation loss (the bigram uses all)")
    p.add_argument("--checkpoint-dir", default="out/scalar",
                   help="where model.json (the checkpoint) and metrics.jsonl (one line per step) go")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="generate text from a trained checkpoint",
                       description="Generate samples from a checkpoint. Each sample starts from <|bos|> + --prompt "
                                   "and stops at <|bos|>, after --max-new-tokens, or at the model's block size. The "
                                   "same --seed gives the same output, byte for byte.",
                       formatter_class=fmt)
    p.add_argument("--mode", choices=["scalar"], default="scalar", help="scalar: a checkpoint from train --mode scalar")
    p.add_argument("--checkpoint", "--checkpoint-dir", dest="checkpoint", default="out/scalar",
                   help="checkpoint directory (holding model.json) or the .json file itself")
    p.add_argument("--prompt", default="", help="text to continue (characters must be in the model's vocabulary)")
    p.add_argument("--num-samples", type=positive_int, default=10, help="how many samples")
    p.add_argument("--max-new-tokens", type=positive_int, default=100, help="most tokens generated per sample")
    p.add_argument("--temperature", type=positive_float, default=0.8, help="softmax temperature, > 0")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("doctor", help="print the runtime profile: versions, devices, dtypes, compile support",
                       description="Print python/torch versions, available devices, the default dtype of each "
                                   "device and why, whether torch.compile works, and threads. With --device, check "
                                   "that one device only; an absent device is an error (exit code 2).",
                       formatter_class=fmt)
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                   help="device to check; auto reports every available device")
    p.add_argument("--json", action="store_true", help="print the profile as JSON")
    p.add_argument("--no-compile-check", action="store_true", help="skip the torch.compile test (it takes seconds)")
    p.add_argument("--measure", action="store_true", help="also measure matmul GFLOP/s per dtype (about 2 s)")
    p.set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
