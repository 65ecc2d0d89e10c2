"""``sft``, ``chat-eval`` and ``serve``: from a base model to an assistant, how well it does its tasks, and a web
chat to talk to it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nanochat_next.cli.args import DEVICES, add_config_flags, non_negative_int, positive_float, positive_int

TASK_LIST = "spelling,letters,arith,identity,compare"


def register(sub, fmt) -> None:
    from nanochat_next.chat.sft import TRAIN_ON, SFTSettings

    p = sub.add_parser("sft", help="supervised fine-tuning of a base model on conversations and tasks",
                       formatter_class=fmt,
                       description="Fine-tune a trained base model on a mixture of generated tasks and conversation "
                                   "files with nanochat's SFT recipe (only the assistant's tokens are trained); "
                                   "checkpoints, --resume, metrics and Ctrl-C as in train. Writes OUT/model/ + "
                                   "OUT/tokenizer/ (sample, chat, chat-eval and serve use them).")
    p.add_argument("--base", required=True, help="the base model: a training output directory")
    add_config_flags(p, [
        (("--mix",), {}, f"comma-separated task:count ({TASK_LIST}), dataset:count (smoltalk, gsm8k, arc: "
                         "downloaded once into the cache) and .jsonl conversation files"),
        (("--out",), {}, "output directory"),
        (("--steps",), {"type": positive_int}, "optimizer steps"),
        (("--seed",), {"type": int}, "the mixture's examples and order"),
        (("--train-on",), {"choices": list(TRAIN_ON)},
         "trained tokens: the assistant's (the template's mask) or all (nanochat 2f09686)"),
        (("--matrix-lr",), {"type": positive_float}, "Muon LR of the block matrices (nanochat's SFT)"),
        (("--embedding-lr",), {"type": positive_float}, "AdamW LR of the embeddings (nanochat's SFT)"),
        (("--unembedding-lr",), {"type": positive_float}, "AdamW LR of the lm_head (nanochat's SFT)"),
        (("--scalar-lr",), {"type": positive_float}, "AdamW LR of the per-layer scalars (nanochat's SFT)"),
        (("--device-batch-size",), {"type": positive_int}, "rows per micro-batch"),
        (("--total-batch-size",), {"type": positive_int}, "tokens per step"),
        (("--eval-every",), {"type": int}, "validation bpb (assistant tokens) every N steps"),
        (("--eval-tokens",), {"type": positive_int}, "tokens per validation"),
        (("--save-every",), {"type": non_negative_int}, "checkpoint every N steps"),
        (("--keep-last",), {"type": non_negative_int}, "checkpoints to keep"),
        (("--device",), {"choices": DEVICES}, "device"),
    ], SFTSettings)
    p.add_argument("--resume", default=None, metavar="latest|STEP", help="continue from a checkpoint in OUT")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sft)

    from nanochat_next.chat.rl import RLSettings

    p = sub.add_parser("rl", help="reinforcement learning from the tasks' checkers (nanochat's chat_rl)",
                       formatter_class=fmt,
                       description="On-policy REINFORCE as nanochat's chat_rl: for each question, several sampled "
                                   "replies from the current model, rewarded by the task's checker; advantage = "
                                   "reward - the question's mean reward; token-level normalisation; no KL, no "
                                   "clipping. Same loop as train and sft: checkpoints, --resume, Ctrl-C, metrics "
                                   "(reward, pass@k, tied groups, rollout time per step). Writes OUT/model/.")
    p.add_argument("--base", required=True, help="the model to improve: an sft (or training) output directory")
    add_config_flags(p, [
        (("--mix",), {}, "the questions: task:count (spelling, letters, arith, identity, compare) and gsm8k:N, arc:N"),
        (("--out",), {}, "output directory"),
        (("--steps",), {"type": positive_int}, "optimizer steps"),
        (("--questions",), {"type": positive_int}, "questions per step"),
        (("--samples",), {"type": positive_int}, "sampled replies per question (at least 2)"),
        (("--temperature",), {"type": positive_float}, "sampling temperature of the rollouts"),
        (("--top-k",), {"type": positive_int}, "rollouts sample among the k most likely tokens"),
        (("--max-new-tokens",), {"type": positive_int}, "longest sampled reply"),
        (("--init-lr-frac",), {"type": positive_float}, "the learning rates as a fraction of nanochat's chat_rl ones"),
        (("--resample-tied",), {"type": non_negative_int}, "replace a question whose samples all get the same reward "
         "by the next one, up to N times per slot (DAPO's dynamic sampling; 0: nanochat's rule, the group stays)"),
        (("--seed",), {"type": int}, "the questions' order and the rollouts' samples"),
        (("--eval-every",), {"type": int}, "validation bpb of the held-out answers every N steps"),
        (("--save-every",), {"type": non_negative_int}, "checkpoint every N steps"),
        (("--keep-last",), {"type": non_negative_int}, "checkpoints to keep"),
        (("--device",), {"choices": DEVICES}, "device"),
    ], RLSettings)
    p.add_argument("--resume", default=None, metavar="latest|STEP", help="continue from a checkpoint in OUT")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_rl)
    register_evaluation(sub, fmt)


def register_evaluation(sub, fmt) -> None:
    """eval, chat-eval and serve: the commands that read a trained model without changing it."""
    p = sub.add_parser("eval", help="evaluate a base model: CORE (nanochat's 22-task few-shot metric)",
                       formatter_class=fmt,
                       description="CORE as nanochat computes it (bench/core_eval.py): each task's few-shot prompts, "
                                   "the choice with the lowest mean loss (or the exact greedy continuation), accuracy "
                                   "centred on the task's random baseline, CORE = their mean. The eval bundle is "
                                   "downloaded once into the cache (nanochat's eval_bundle.zip), or read from "
                                   "--bundle.")
    p.add_argument("--checkpoint", required=True, help="a training output directory")
    p.add_argument("--core", action="store_true", required=True, help="compute CORE (the one evaluation so far)")
    p.add_argument("--bundle", default=None, help="the eval bundle: a directory or the zip (default: the cache's)")
    p.add_argument("--max-per-task", type=positive_int, default=None,
                   help="items per task (shuffled as nanochat does); default: all (minutes to hours on a CPU)")
    p.add_argument("--tasks", default=None, help="comma-separated task labels (default: every task of the bundle)")
    p.add_argument("--device", choices=DEVICES, default="auto", help="device")
    p.add_argument("--json", dest="json_out", default=None, help="write the results with metadata to this JSON file")
    p.add_argument("--no-download", action="store_true", help="never download the bundle")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("chat-eval", help="task accuracy of a model on held-out task examples",
                       formatter_class=fmt,
                       description="Generative accuracy (greedy replies checked by each task's checker) and, for "
                                   "multiple-choice tasks, categorical accuracy (the choice letters' logits), on the "
                                   "test split of each task (questions never trained on), beside the majority "
                                   "baseline (the best constant reply) and chance; ChatCORE over the tasks; with "
                                   "--pass-k, pass@k of sampled replies. Prints a table; --json writes every figure.")
    p.add_argument("--checkpoint", required=True, help="a training or sft output directory")
    p.add_argument("--tasks", default=TASK_LIST, help="comma-separated task names (and gsm8k, arc)")
    p.add_argument("--count", type=positive_int, default=200, help="test examples per task")
    p.add_argument("--seed", type=int, default=0, help="which test examples")
    p.add_argument("--max-new-tokens", type=positive_int, default=24, help="longest generated reply")
    p.add_argument("--pass-k", type=positive_int, default=1,
                   help="also sample k replies per question (generative tasks) and report pass@k")
    p.add_argument("--temperature", type=positive_float, default=1.0, help="the temperature of those samples")
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
    from dataclasses import fields

    from nanochat_next.chat.sft import SFTSettings, fine_tune

    settings = SFTSettings(**{f.name: getattr(args, f.name) for f in fields(SFTSettings) if hasattr(args, f.name)})
    result = fine_tune(args.base, settings, resume=args.resume, progress=not args.no_progress)
    if result["stopped_by"]:
        return 130
    print(f"done: {result['steps']} steps, final loss {result['final_loss']:.4f}, val bpb (assistant tokens) "
          f"{result['final_val_bpb']:.4f}; saved {settings.out}/. Next: nanochat-next chat-eval --checkpoint "
          f"{settings.out}")
    return 0


def cmd_rl(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from nanochat_next.chat.rl import RLSettings, reinforce

    settings = RLSettings(**{f.name: getattr(args, f.name) for f in fields(RLSettings) if hasattr(args, f.name)})
    result = reinforce(args.base, settings, resume=args.resume, progress=not args.no_progress)
    if result["stopped_by"]:
        return 130
    print(f"done: {result['steps']} steps; saved {settings.out}/. Next: nanochat-next chat-eval --checkpoint "
          f"{settings.out} --pass-k 8")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from nanochat_next.atomic import write_text
    from nanochat_next.bench.core_eval import bundle_dir, evaluate_core, load_tasks, table
    from nanochat_next.model.saving import load_trained
    from nanochat_next.provenance import run_metadata

    only = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    bundle = bundle_dir(args.bundle, allow_download=not args.no_download)
    load_tasks(bundle, only)  # an unknown task label fails before the model loads
    model, tokenizer, _ = load_trained(args.checkpoint, args.device)
    result = evaluate_core(model, tokenizer, bundle, args.max_per_task, only, progress=not args.no_progress)
    print(table(result))
    print(f"CORE {result['core']:+.4f} over {len(result['tasks'])} tasks (GPT-2: 0.2565; a model near random guessing "
          "scores about 0, or below when it is worse than chance)")
    if args.json_out:
        doc = {"benchmark": "core", "checkpoint": str(args.checkpoint), "bundle": str(bundle), **result,
               "metadata": run_metadata()}
        write_text(Path(args.json_out), json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json_out}")
    return 0


def cmd_chat_eval(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from nanochat_next.atomic import write_text
    from nanochat_next.chat.datasets import FILES as DATASETS
    from nanochat_next.chat.evaluate import chatcore, evaluate_tasks, table
    from nanochat_next.chat.tasks import default_words, task
    from nanochat_next.model.saving import load_trained

    names = [n.strip() for n in args.tasks.split(",") if n.strip()]
    for name in names:
        if name not in DATASETS:
            task(name)  # an unknown name fails before the model loads
    model, tokenizer, _ = load_trained(args.checkpoint, args.device)
    with tqdm(total=len(names) * args.count, desc="chat-eval", unit="example") as bar:
        results = evaluate_tasks(model, tokenizer, names, args.count, args.seed, default_words(),
                                 args.max_new_tokens, on_example=lambda: bar.update(1), pass_k=args.pass_k,
                                 temperature=args.temperature)
    print(table(results))
    if args.json_out:
        doc = {"checkpoint": str(args.checkpoint), "count": args.count, "seed": args.seed,
               "chatcore": chatcore(results), "tasks": results}
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
