"""``sft``, ``chat-eval`` and ``serve``: from a base model to an assistant, how well it does its tasks, and a web
chat to talk to it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nanochat_next.cli.args import DEVICES, non_negative_int, positive_float, positive_int

TASK_LIST = "spelling,letters,arith,identity,compare"


def register(sub, fmt) -> None:
    p = sub.add_parser("sft", help="supervised fine-tuning of a base model on conversations and tasks",
                       formatter_class=fmt,
                       description="Fine-tune a trained base model on a mixture of generated tasks and conversation "
                                   "files with nanochat's SFT recipe (only the assistant's tokens are trained); "
                                   "checkpoints, --resume, metrics and Ctrl-C as in train. Writes OUT/model/ + "
                                   "OUT/tokenizer/ (sample, chat, chat-eval and serve use them).")
    p.add_argument("--base", required=True, help="the base model: a training output directory")
    p.add_argument("--mix", default="spelling:2000,letters:2000,arith:2000,identity:200,compare:1000",
                   help=f"comma-separated task:count ({TASK_LIST}), dataset:count (smoltalk, gsm8k, arc: downloaded "
                        "once into the cache) and .jsonl conversation files")
    p.add_argument("--out", default="out/sft", help="output directory")
    p.add_argument("--steps", type=positive_int, default=None, help="optimizer steps (default: about one epoch)")
    p.add_argument("--seed", type=int, default=42, help="the mixture's examples and order")
    p.add_argument("--train-on", choices=["assistant", "all"], default="assistant",
                   help="trained tokens: the assistant's (the template's mask) or all (nanochat 2f09686)")
    for name, kind, what in (("--device-batch-size", positive_int, "rows per micro-batch"),
                             ("--total-batch-size", positive_int, "tokens per step"),
                             ("--matrix-lr", positive_float, "Muon LR (nanochat's SFT: 0.02)"),
                             ("--embedding-lr", positive_float, "embeddings' AdamW LR (0.3)"),
                             ("--unembedding-lr", positive_float, "lm_head's AdamW LR (0.004)"),
                             ("--eval-every", int, "validation bpb (assistant tokens) every N steps"),
                             ("--eval-tokens", positive_int, "tokens per validation"),
                             ("--save-every", non_negative_int, "checkpoint every N steps"),
                             ("--keep-last", non_negative_int, "checkpoints to keep")):
        p.add_argument(name, type=kind, default=None, help=f"{what} (default: the recipe's or the base run's)")
    p.add_argument("--device", choices=DEVICES, default=None, help="device (default: the base run's)")
    p.add_argument("--resume", default=None, metavar="latest|STEP", help="continue from a checkpoint in OUT")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sft)

    p = sub.add_parser("chat-eval", help="task accuracy of a model on held-out task examples",
                       formatter_class=fmt,
                       description="Generative accuracy (greedy replies checked by each task's checker) and, for "
                                   "multiple-choice tasks, categorical accuracy (the choice letters' logits), on the "
                                   "test split of each task (questions never trained on). Prints a table; --json "
                                   "writes every figure.")
    p.add_argument("--checkpoint", required=True, help="a training or sft output directory")
    p.add_argument("--tasks", default=TASK_LIST, help="comma-separated task names (and gsm8k, arc)")
    p.add_argument("--count", type=positive_int, default=200, help="test examples per task")
    p.add_argument("--seed", type=int, default=0, help="which test examples")
    p.add_argument("--max-new-tokens", type=positive_int, default=24, help="longest generated reply")
    p.add_argument("--device", choices=DEVICES, default="auto", help="device")
    p.add_argument("--json", dest="json_out", default=None, help="write the results to this JSON file")
    p.set_defaults(func=cmd_chat_eval)

    p = sub.add_parser("serve", help="a web chat over a model (streamed replies)", formatter_class=fmt,
                       description="Serve a chat page and a streaming endpoint (server-sent events) for a trained "
                                   "model: open http://HOST:PORT/. Needs the serve extra: pip install "
                                   "'nanochat-next[serve]'.")
    p.add_argument("--checkpoint", required=True, help="a training or sft output directory")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=positive_int, default=8000, help="port")
    p.add_argument("--device", choices=DEVICES, default="auto", help="device")
    p.add_argument("--max-concurrent", type=positive_int, default=2,
                   help="replies generated at once; more requests are answered 429 (busy)")
    p.set_defaults(func=cmd_serve)


def cmd_sft(args: argparse.Namespace) -> int:
    from nanochat_next.atomic import writable_dir, write_text
    from nanochat_next.tensor.mixture import build_mixture, parse_mix
    from nanochat_next.tensor.model_io import load_trained
    from nanochat_next.tensor.sft import sft_builder, sft_run
    from nanochat_next.tensor.train import train

    parts = parse_mix(args.mix)  # bad input fails before the model loads
    out = writable_dir(args.out)
    model, tokenizer, config = load_trained(args.base, "cpu")
    if "run" not in config:
        from nanochat_next.errors import UserError

        raise UserError(f"{args.base} has no training record (model/config.json 'run'); train it with "
                        "`nanochat-next train` or import it with import-nanochat")
    train_convs, val_convs = build_mixture(parts, args.seed)
    flags = {k: getattr(args, k) for k in ("device_batch_size", "total_batch_size", "matrix_lr", "embedding_lr",
                                           "unembedding_lr", "eval_every", "eval_tokens", "save_every", "keep_last",
                                           "device") if getattr(args, k) is not None}
    tokens = sum(len(m["content"]) for c in train_convs for m in c["messages"]) // 3  # ~3 characters a token
    run = sft_run(config["run"], out, args.steps, tokens, seed=args.seed, **flags)
    write_text(out / "sft.json", json.dumps({"base": str(args.base), "mix": args.mix, "train_on": args.train_on,
                                             "train_conversations": len(train_convs),
                                             "val_conversations": len(val_convs)}, indent=2) + "\n")
    print(f"SFT of {args.base}: {len(train_convs):,} conversations ({args.mix}), {len(val_convs):,} held out; "
          f"{run.steps} steps of {run.total_batch_size:,} tokens, training on the {args.train_on} tokens")
    build = sft_builder(run, tokenizer, model.state_dict(), train_convs, val_convs, args.train_on)
    result = train(run, None, None, tokenizer, progress=not args.no_progress, resume=args.resume, build=build)
    print(f"done: {result['steps']} steps, final loss {result['final_loss']:.4f}, val bpb (assistant tokens) "
          f"{result['final_val_bpb']:.4f}; saved {out}/. Next: nanochat-next chat-eval --checkpoint {out}")
    return 0


def cmd_chat_eval(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from nanochat_next.atomic import write_text
    from nanochat_next.tensor.chat_eval import evaluate_tasks, table
    from nanochat_next.tensor.datasets import FILES as DATASETS
    from nanochat_next.tensor.model_io import load_trained
    from nanochat_next.tensor.tasks import default_words, task

    names = [n.strip() for n in args.tasks.split(",") if n.strip()]
    for name in names:
        if name not in DATASETS:
            task(name)  # an unknown name fails before the model loads
    model, tokenizer, _ = load_trained(args.checkpoint, args.device)
    with tqdm(total=len(names) * args.count, desc="chat-eval", unit="example") as bar:
        results = evaluate_tasks(model, tokenizer, names, args.count, args.seed, default_words(),
                                 args.max_new_tokens, on_example=lambda: bar.update(1))
    print(table(results))
    if args.json_out:
        doc = {"checkpoint": str(args.checkpoint), "count": args.count, "seed": args.seed, "tasks": results}
        write_text(Path(args.json_out), json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json_out}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from nanochat_next.errors import UserError

    try:
        import uvicorn
    except ImportError:
        raise UserError("serve needs the serve extra: pip install 'nanochat-next[serve]'") from None
    from nanochat_next.serve.app import create_app

    if not (Path(args.checkpoint) / "model" / "config.json").is_file():
        raise UserError(f"no model at {args.checkpoint} (expected model/config.json); train one first")
    check_listen(args.host, args.port)  # a taken port is one error line, before the model loads
    app = create_app(args.checkpoint, args.device, args.max_concurrent)
    print(f"serving {args.checkpoint} on http://{args.host}:{args.port}/ (Ctrl-C stops)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def check_listen(host: str, port: int) -> None:
    import socket

    from nanochat_next.errors import UserError

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind((host, port))
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port or "
                        "--host") from None
