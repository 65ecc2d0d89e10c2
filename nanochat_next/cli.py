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


def checked(parse, ok, expected: str):
    """An argparse type: parse the text, then require ``ok(value)``; otherwise say what was expected."""

    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value):  # comparisons with nan are False, so nan is rejected too
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    convert.__name__ = expected
    return convert


positive_int = checked(int, lambda v: v > 0, "a positive integer")
non_negative_int = checked(int, lambda v: v >= 0, "an integer >= 0")
positive_float = checked(float, lambda v: v > 0, "a number > 0")
non_negative_float = checked(float, lambda v: v >= 0, "a number >= 0")
fraction = checked(float, lambda v: 0.0 < v < 1.0, "a number between 0 and 1 (exclusive)")
unit_interval = checked(float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")


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
    if args.mode == "tensor":
        return cmd_train_tensor(args)
    from nanochat_next.corpus import load_corpus, split_documents
    from nanochat_next.scalar_train import ScalarRun, train

    if args.optimizer == "muon":
        raise UserError("--optimizer muon is for --mode tensor; the scalar path has adamw and sgd")
    args.steps = args.steps or 500
    args.optimizer = args.optimizer or "adamw"
    args.checkpoint_dir = args.checkpoint_dir or "out/scalar"
    args.data = args.data or "names"
    args.weight_decay = args.weight_decay or 0.0
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


def load_tensor_data(args: argparse.Namespace):
    """(train source, val source) from a parquet directory (nanochat layout) or a corpus name/path."""
    from pathlib import Path

    from nanochat_next.corpus import load_corpus, split_documents, train_val_split
    from nanochat_next.packing import DocumentSource, parquet_shards

    if Path(args.data).is_dir() and any(Path(args.data).glob("*.parquet")):
        train_files, val_files = parquet_shards(args.data)
        return DocumentSource.from_parquet(train_files), DocumentSource.from_parquet(val_files)
    text, rule = load_corpus(args.data, allow_download=not args.no_download)
    docs = split_documents(text, rule if args.documents == "auto" else args.documents)
    train_docs, val_docs = train_val_split(docs, args.val_fraction)
    return DocumentSource.from_docs(train_docs), DocumentSource.from_docs(val_docs)


def cmd_train_tensor(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nanochat_next.bpe_tokenizer import BPETokenizer
    from nanochat_next.tensor_train import TensorRun, distributed_info, train

    if not 0.0 < args.val_fraction < 1.0:
        raise UserError(f"--val-fraction must be between 0 and 1 in tensor mode, got {args.val_fraction}")
    args.data = args.data or "tinyshakespeare"
    run = TensorRun(model_kind=args.model_kind, style=args.style, depth=args.depth, aspect_ratio=args.aspect_ratio,
                    head_dim=args.head_dim, max_seq_len=args.max_seq_len, window_pattern=args.window_pattern,
                    device_batch_size=args.device_batch_size, total_batch_size=args.total_batch_size,
                    num_iterations=args.steps or 200, optimizer=args.optimizer or "muon", lr=args.lr or 1e-3,
                    eval_every=args.eval_every, eval_tokens=args.eval_tokens, device=args.device, dtype=args.dtype,
                    compile=args.compile, deterministic=args.deterministic, seed=args.seed, peak_flops=args.peak_flops,
                    warmup_ratio=args.warmup_ratio, warmdown_ratio=args.warmdown_ratio,
                    final_lr_frac=args.final_lr_fraction, lr_schedule=args.lr_schedule,
                    weight_decay=0.2 if args.weight_decay is None else args.weight_decay,
                    save_every=args.save_every, keep_last=args.keep_last)
    out = args.checkpoint_dir or "out/tensor"
    train_source, val_source = load_tensor_data(args)
    rank = distributed_info()[0]
    if args.tokenizer:
        tokenizer = BPETokenizer.load(args.tokenizer)
    elif args.resume and (Path(out) / "tokenizer" / "tokenizer.json").is_file():
        tokenizer = BPETokenizer.load(Path(out) / "tokenizer")
    else:
        tokenizer = BPETokenizer.train(train_source.docs, args.vocab_size)
        if rank == 0:
            tokenizer.save(Path(out) / "tokenizer")  # saved first, so a resumed run uses the very same one
    result = train(run, train_source, val_source, tokenizer, out, progress=not args.no_progress and rank == 0,
                   log=print if rank == 0 else (lambda *a, **k: None), resume=args.resume)
    if rank == 0:
        print(f"done: {result['steps']} steps, final loss {result['final_loss']:.4f}, val bpb "
              f"{result['final_val_bpb']:.4f}, median {result['tok_per_s_median']:,.0f} tok/s; saved {out}/")
    return 0


def checkpoint_mode(path: str) -> str:
    """'scalar' for a model.json checkpoint, 'tensor' for a training output with model/config.json."""
    from pathlib import Path

    p = Path(path)
    if p.suffix == ".json" or (p / "model.json").is_file():
        return "scalar"
    if (p / "model" / "config.json").is_file():
        return "tensor"
    raise UserError(f"no checkpoint at {path}: expected model.json (scalar) or model/config.json (tensor); "
                    "train one with `nanochat-next train`")


def cmd_sample(args: argparse.Namespace) -> int:
    mode = checkpoint_mode(args.checkpoint) if args.mode == "auto" else args.mode
    if mode == "scalar":
        return sample_scalar(args)
    from nanochat_next.engine import Engine
    from nanochat_next.tensor_train import load_trained

    model, tokenizer, _ = load_trained(args.checkpoint, args.device)
    engine = Engine(model, tokenizer)
    prompt = tokenizer.encode(args.prompt, prepend_bos=True)
    options = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    if args.stream:
        for i in range(args.num_samples):
            print(args.prompt, end="", flush=True)
            for piece in engine.stream_text(prompt, args.max_new_tokens, **{**options, "seed": args.seed + i}):
                print(piece, end="", flush=True)
            print()
        return 0
    for sample in engine.generate_batch(prompt, args.max_new_tokens, args.num_samples, **options):
        print(args.prompt + tokenizer.decode(sample))
        if args.num_samples > 1:
            print("-" * 40)
    if "context" in engine.stop_reason:
        print(f"note: generation stopped at the model's context of {engine.context} tokens", file=sys.stderr)
    return 0


def sample_scalar(args: argparse.Namespace) -> int:
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


def cmd_chat(args: argparse.Namespace) -> int:
    """A small REPL: each turn is rendered with the tokenizer's chat special tokens; old turns are dropped
    (whole) when the conversation would not leave room for a reply within the model's context."""
    from nanochat_next.engine import Engine
    from nanochat_next.tensor_train import load_trained

    model, tok, _ = load_trained(args.checkpoint, args.device)
    engine = Engine(model, tok)
    special = tok.special_tokens
    user_start, user_end = special["<|user_start|>"], special["<|user_end|>"]
    asst_start, asst_end = special["<|assistant_start|>"], special["<|assistant_end|>"]
    turns: list[list[int]] = []
    interactive = sys.stdin.isatty()
    if interactive:
        print("chat with the model; /clear starts over, /quit or Ctrl-D leaves (a base model was not trained to chat)")
    turn = 0
    while True:
        try:
            line = input("you> " if interactive else "")
        except EOFError:
            break
        line = line.strip()
        if line in ("/quit", "/exit"):
            break
        if line == "/clear":
            turns = []
            continue
        if not line:
            continue
        turns.append([user_start, *tok.encode(line), user_end, asst_start])
        room = engine.context - args.max_new_tokens
        while len(turns) > 1 and 1 + sum(map(len, turns)) > room:
            turns.pop(0)  # forget the oldest exchange rather than overflow the context
        prompt = [tok.bos_id, *[t for chunk in turns for t in chunk]]
        if len(prompt) > room:  # a single message too long for the context: keep its end
            prompt = [tok.bos_id, *prompt[len(prompt) - room + 1:]]
        reply = engine.generate_batch(prompt, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                                      top_p=args.top_p, seed=args.seed + turn)[0]
        print(("bot> " if interactive else "") + tok.decode(reply), flush=True)
        turns[-1] = [*turns[-1], *reply, asst_end]
        turn += 1
    return 0


# ---------------------------------------------------------------------------------------------- export / import
def cmd_export(args: argparse.Namespace) -> int:
    from nanochat_next.nanochat_layout import export_nanochat
    from nanochat_next.tensor_train import load_trained

    model, _, config = load_trained(args.checkpoint, "cpu")
    step = config.get("summary", {}).get("steps", 0)
    model_path, meta_path = export_nanochat(model, step, args.dest, {"val_bpb": config.get("summary", {})
                                                                     .get("final_val_bpb")})
    print(f"wrote {model_path} and {meta_path} (nanochat's layout; load with its checkpoint_manager)")
    return 0


def cmd_import_nanochat(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nanochat_next.bpe_tokenizer import BPETokenizer
    from nanochat_next.nanochat_layout import load_nanochat
    from nanochat_next.tensor_train import TensorRun, save_model

    model, meta = load_nanochat(args.source, args.step)
    tokenizer = BPETokenizer.load(args.tokenizer)
    if tokenizer.vocab_size != model.config.vocab_size:
        raise UserError(f"tokenizer {args.tokenizer} has {tokenizer.vocab_size} tokens but the model expects "
                        f"{model.config.vocab_size}")
    c = model.config
    run = TensorRun(depth=c.n_layer, max_seq_len=c.sequence_len, window_pattern=c.window_pattern)
    out = Path(args.out)
    save_model(out / "model", model, run, {"imported_from": str(args.source), "nanochat_meta": meta})
    tokenizer.save(out / "tokenizer")
    print(f"imported {args.source} (step {meta.get('step')}) into {out}/; "
          f"try `nanochat-next sample --checkpoint {out}`")
    return 0


# ---------------------------------------------------------------------------------------------- doctor
def cmd_doctor(args: argparse.Namespace) -> int:
    from nanochat_next.runtime import format_profile, runtime_profile

    if not args.no_compile_check:
        print("checking torch.compile (the first compile on a machine can take ~30 s) ...", file=sys.stderr)
    profile = runtime_profile(args.device, check_compile=not args.no_compile_check, measure=args.measure)
    print(json.dumps(profile, indent=2) if args.json else format_profile(profile))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from nanochat_next.bench import BenchOptions, run_bench, scorecard_table

    if args.nanochat and args.no_baseline:
        raise UserError("--nanochat and --no-baseline contradict each other; pass one")
    result = run_bench(BenchOptions(profile=args.profile, nanochat=args.nanochat,
                                    nanochat_ref=None if args.no_baseline or args.nanochat else args.nanochat_ref,
                                    nanochat_python=args.nanochat_python, device=args.device, out=args.out,
                                    steps=args.steps, keep_work=args.keep_work, progress=not args.no_progress))
    print(scorecard_table(result["scorecard"]))
    base = result["baseline"]
    if base["status"] != "run":
        print(f"baseline {base['status']}: {base['reason']}")
    print(f"wrote {result['artifacts']['json']} and {result['artifacts']['md']}")
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
    p.add_argument("--mode", choices=["scalar", "tensor"], default="scalar",
                   help="scalar: Python Value autograd (teaching); tensor: torch models, nanochat's recipe")
    p.add_argument("--model-kind", choices=["bigram", "mini-gpt"], default="mini-gpt", help="which model")
    p.add_argument("--data", "--corpus", dest="data", default=None,
                   help="known corpus (names, tinyshakespeare), a path to .txt file(s), or (tensor mode) a directory "
                        "of parquet shards in nanochat's layout (default: names scalar, tinyshakespeare tensor)")
    p.add_argument("--documents", choices=["auto", "paragraphs", "lines"], default="auto",
                   help="document rule: auto = the corpus's own (names: lines), paragraphs for paths")
    p.add_argument("--val-fraction", type=unit_interval, default=0.1,
                   help="fraction of the (shuffled) documents held out for the validation loss; 0 = none")
    p.add_argument("--no-download", action="store_true", help="use only the corpus cache, never download")
    p.add_argument("--steps", "--num-iterations", dest="steps", type=positive_int, default=None,
                   help="optimizer steps (default: 500 scalar, 200 tensor)")
    p.add_argument("--optimizer", choices=["adamw", "sgd", "muon"], default=None,
                   help="scalar: adamw (default) or sgd; tensor: muon (nanochat's MuonAdamW, default), adamw, sgd")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="peak learning rate for adamw/sgd (scalar default: 0.01 mini-gpt/adamw, 0.1 mini-gpt/sgd, "
                        "0.5 bigram/adamw, 50 bigram/sgd; tensor default 0.001)")
    p.add_argument("--lr-schedule", choices=["linear", "sqrt", "cosine", "constant"], default="linear",
                   help="warmdown shape: linear, sqrt (1-sqrt), cosine, or constant (no warmdown)")
    p.add_argument("--warmup-ratio", type=unit_interval, default=0.0, help="fraction of steps of linear warmup")
    p.add_argument("--warmdown-ratio", type=unit_interval, default=0.5, help="fraction of steps of warmdown")
    p.add_argument("--final-lr-fraction", type=unit_interval, default=0.0, help="LR at the end, as a fraction of peak")
    p.add_argument("--weight-decay", type=non_negative_float, default=None,
                   help="weight decay (default: 0 scalar; tensor: 0.2 for Muon, scaled like nanochat)")
    p.add_argument("--seed", type=int, default=42, help="seeds the document shuffle and the weight init")
    p.add_argument("--smoothing", type=non_negative_float, default=1.0, help="bigram: pseudo-count added to every pair")
    p.add_argument("--n-embd", type=positive_int, default=16, help="mini-gpt: embedding width")
    p.add_argument("--n-head", type=positive_int, default=4, help="mini-gpt: attention heads (must divide n-embd)")
    p.add_argument("--n-layer", type=positive_int, default=1, help="mini-gpt: transformer blocks")
    p.add_argument("--block-size", type=positive_int, default=16, help="mini-gpt: context length in tokens")
    p.add_argument("--eval-docs", type=positive_int, default=200,
                   help="mini-gpt: held-out documents for the final validation loss (the bigram uses all)")
    p.add_argument("--checkpoint-dir", "--out", dest="checkpoint_dir", default=None,
                   help="output directory: the checkpoint and metrics.jsonl (one line per step) (default: "
                        "out/scalar or out/tensor)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    t = p.add_argument_group("tensor mode (--mode tensor)")
    t.add_argument("--style", choices=["modern", "classic"], default="modern",
                   help="modern = nanochat's GPT at 2f09686; classic = GPT-2")
    t.add_argument("--depth", type=positive_int, default=4, help="layers; width = depth x aspect ratio")
    t.add_argument("--aspect-ratio", type=positive_int, default=64, help="model width per layer of depth")
    t.add_argument("--head-dim", type=positive_int, default=64, help="attention head width")
    t.add_argument("--max-seq-len", type=positive_int, default=256, help="context length in tokens")
    t.add_argument("--window-pattern", default="L", help="sliding windows per layer, e.g. SSSL (L = full context)")
    t.add_argument("--device-batch-size", type=positive_int, default=8, help="sequences per micro-batch")
    t.add_argument("--total-batch-size", type=positive_int, default=2048,
                   help="tokens per optimizer step (gradient accumulation makes up the rest)")
    t.add_argument("--eval-every", type=int, default=50, help="validation bpb every N steps (<= 0: only at the end)")
    t.add_argument("--eval-tokens", type=positive_int, default=16384, help="validation tokens per evaluation")
    t.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                   help="an absent device is an error, never a silent fallback")
    t.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                   help="compute dtype (auto: see `nanochat-next doctor`); weights stay float32")
    t.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False, help="torch.compile the model")
    t.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=True,
                   help="torch deterministic algorithms: one seed gives identical runs (compiled runs otherwise "
                        "differ in the last bits)")
    t.add_argument("--tokenizer", default=None,
                   help="a tokenizer directory (tok-train); default: train one on the training split")
    t.add_argument("--vocab-size", type=positive_int, default=4096, help="vocab of the tokenizer trained when no "
                   "--tokenizer is given")
    t.add_argument("--peak-flops", type=positive_float, default=None,
                   help="peak FLOP/s for MFU (default: a matmul measured at start)")
    t.add_argument("--save-every", type=non_negative_int, default=0,
                   help="checkpoint every N steps into OUT/checkpoints (0: only at the end); written before eval")
    t.add_argument("--keep-last", type=non_negative_int, default=0, help="keep only the newest N checkpoints (0: all)")
    t.add_argument("--resume", default=None, metavar="latest|STEP",
                   help="continue exactly from the newest intact checkpoint in OUT/checkpoints, or from a step")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="generate text from a trained checkpoint",
                       description="Generate samples from a checkpoint. Each sample starts from <|bos|> + --prompt "
                                   "and stops at <|bos|>, after --max-new-tokens, or at the model's block size. The "
                                   "same --seed gives the same output, byte for byte.",
                       formatter_class=fmt)
    p.add_argument("--mode", choices=["auto", "scalar", "tensor"], default="auto",
                   help="auto: detect from the checkpoint (model.json = scalar, model/config.json = tensor)")
    p.add_argument("--checkpoint", "--checkpoint-dir", dest="checkpoint", default="out/scalar",
                   help="a training output directory, or a scalar model.json file")
    p.add_argument("--prompt", default="", help="text to continue (characters must be in the model's vocabulary)")
    p.add_argument("--num-samples", type=positive_int, default=10, help="how many samples")
    p.add_argument("--max-new-tokens", type=positive_int, default=100, help="most tokens generated per sample")
    p.add_argument("--temperature", type=non_negative_float, default=0.8,
                   help="softmax temperature (tensor: 0 = greedy; scalar: must be > 0)")
    p.add_argument("--top-k", type=positive_int, default=None, help="tensor: sample among the k most likely tokens")
    p.add_argument("--top-p", type=unit_interval, default=None, help="tensor: nucleus sampling mass in (0, 1]")
    p.add_argument("--stream", action="store_true", help="tensor: print text as it is generated")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto", help="tensor: device")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("chat", help="a small chat REPL on a tensor checkpoint",
                       description="Read messages from the terminal (or stdin, one per line) and answer with the "
                                   "model, rendering the conversation with the chat special tokens. The oldest turns "
                                   "are dropped when the context would overflow. Works with a base model too.",
                       formatter_class=fmt)
    p.add_argument("--checkpoint", default="out/tensor", help="a tensor training output directory")
    p.add_argument("--max-new-tokens", type=positive_int, default=64, help="most tokens per reply")
    p.add_argument("--temperature", type=non_negative_float, default=0.8, help="0 = greedy")
    p.add_argument("--top-k", type=positive_int, default=50, help="sample among the k most likely tokens")
    p.add_argument("--top-p", type=unit_interval, default=None, help="nucleus sampling mass in (0, 1]")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto", help="device")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (turn i uses seed + i)")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("export", help="export a tensor model to karpathy/nanochat's checkpoint layout",
                       description="Write model_<step>.pt (a plain state dict) and meta_<step>.json in nanochat's "
                                   "layout, loadable by nanochat's checkpoint_manager (modern style only).",
                       formatter_class=fmt)
    p.add_argument("--checkpoint", default="out/tensor", help="a tensor training output directory")
    p.add_argument("--to", choices=["nanochat"], default="nanochat", help="target layout")
    p.add_argument("--dest", required=True, help="directory to write into")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import-nanochat", help="import a nanochat checkpoint (model_<step>.pt + meta_<step>.json)",
                       description="Load a nanochat base checkpoint without unpickling (weights_only) into our "
                                   "training output layout, so sample and chat work on it. nanochat's tokenizer is "
                                   "a pickle and is not read: give an equivalent tokenizer of ours.",
                       formatter_class=fmt)
    p.add_argument("--source", required=True, help="directory with model_<step>.pt and meta_<step>.json")
    p.add_argument("--step", type=non_negative_int, default=None, help="step to import (default: the newest)")
    p.add_argument("--tokenizer", required=True, help="our tokenizer directory with the same vocabulary")
    p.add_argument("--out", required=True, help="output directory (model/ + tokenizer/)")
    p.set_defaults(func=cmd_import_nanochat)

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

    from nanochat_next.bench import PINNED_NANOCHAT, PROFILES

    p = sub.add_parser("bench", help="benchmark ours vs nanochat: pass/fail scorecard in results/",
                       description="Train nanochat (pinned ref) and ours on one dataset with one tokenizer, config, "
                                   "seed and device; measure tok/s, val bpb, time to a target bpb, peak memory, "
                                   "decode tok/s and reproducibility; write results/bench_<profile>_<UTC>.json/.md "
                                   "with a quality/speed/reproducibility scorecard. Without a nanochat checkout "
                                   "(and offline) ours runs alone and the scorecard says 'baseline: not run'. "
                                   "Profiles: " + "; ".join(f"{p.name}: {p.description}" for p in PROFILES.values()),
                       formatter_class=fmt)
    p.add_argument("--profile", required=True, choices=list(PROFILES), help="the config to run (see above)")
    p.add_argument("--nanochat", metavar="PATH", help="a local nanochat checkout to use as the baseline")
    p.add_argument("--nanochat-ref", metavar="SHA", default=PINNED_NANOCHAT,
                   help="without --nanochat: clone nanochat at this commit into the cache (needs internet once)")
    p.add_argument("--nanochat-python", metavar="PY",
                   help="the Python that runs nanochat (needs its dependencies; default: this one)")
    p.add_argument("--no-baseline", action="store_true", help="run ours alone (the scorecard says so)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"],
                   help="override the profile's device (our dtype then follows our default rule)")
    p.add_argument("--steps", type=int, help="override the profile's number of steps")
    p.add_argument("--out", default="results", help="where the .json and .md go")
    p.add_argument("--keep-work", action="store_true", help="keep the temporary runs, logs and checkpoints")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_bench)
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
