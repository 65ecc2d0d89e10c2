"""``sample`` and ``chat``: generation from a trained checkpoint (scalar or tensor for sample, tensor for chat).

Neither imports the training code: a model is loaded with ``model.saving`` (or ``scalar.checkpoint``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nanochat_next.cli.args import add_device_flag, add_sampling_flags, positive_int, sample_count
from nanochat_next.errors import UserError

BATCH_LIMIT = 64  # samples decoded together; more are decoded in several batches (memory stays bounded)


def register(sub, fmt) -> None:
    p = sub.add_parser("sample", help="generate text from a trained checkpoint", formatter_class=fmt,
                       description="Generate samples from a checkpoint. Each sample starts from <|bos|> + --prompt "
                                   "and stops at <|bos|>, after --max-new-tokens, or at the model's context. The "
                                   "same --seed gives the same output, byte for byte.")
    p.add_argument("--mode", choices=["auto", "scalar", "tensor"], default="auto",
                   help="auto: detect from the checkpoint (model.json = scalar, model/config.json = tensor)")
    p.add_argument("--checkpoint", "--checkpoint-dir", dest="checkpoint", default="out/tensor",
                   help="a training output directory, or a scalar model.json file")
    p.add_argument("--prompt", default="", help="text to continue (scalar: characters must be in the vocabulary)")
    p.add_argument("--num-samples", type=sample_count, default=10,
                   help="how many samples (greedy decoding, --temperature 0, gives one: they would all be equal)")
    p.add_argument("--max-new-tokens", type=positive_int, default=100, help="most tokens generated per sample")
    add_sampling_flags(p, temperature=0.8, top_k=None, scalar=True)
    p.add_argument("--stream", action="store_true", help="tensor: print text as it is generated")
    add_compile_flag(p)
    add_device_flag(p, "tensor: device")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("chat", help="a chat REPL on a tensor checkpoint", formatter_class=fmt,
                       description="Read messages from the terminal (or stdin, one per line) and stream the "
                                   "model's replies, rendering the conversation with nanochat's chat template. The "
                                   "oldest exchanges are dropped (with a note) when the context would overflow. A "
                                   "base model was not trained to chat: expect it to continue text.")
    p.add_argument("--checkpoint", default="out/tensor", help="a tensor training output directory")
    p.add_argument("--max-new-tokens", type=positive_int, default=64, help="most tokens per reply")
    add_sampling_flags(p, temperature=0.8, top_k=50)
    add_compile_flag(p)
    add_device_flag(p)
    p.set_defaults(func=cmd_chat)


def add_compile_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--compile", action="store_true",
                   help="tensor, modern GPT: decode with one compiled graph per token (infer/decode_step.py); "
                        "compiling takes up to a minute once per batch size on a CPU (it tunes its matmul kernels), "
                        "then each token is faster")


def checkpoint_mode(path: str) -> str:
    """'scalar' for a model.json checkpoint, 'tensor' for a training output with model/config.json."""
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
    from nanochat_next.infer.engine import Engine
    from nanochat_next.model.saving import load_trained

    model, tokenizer, _ = load_trained(args.checkpoint, args.device)
    engine = Engine(model, tokenizer, compile=args.compile)
    prompt = tokenizer.encode(args.prompt, prepend_bos=True)
    options = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    count = args.num_samples
    if args.temperature == 0 and count > 1:
        print("note: greedy decoding (--temperature 0) gives the same text every time; printing one sample",
              file=sys.stderr)
        count = 1
    if args.stream:
        for i in range(count):
            if count > 1:
                print(f"--- sample {i + 1} of {count} (seed {args.seed + i}) ---")
            print(args.prompt, end="", flush=True)
            for piece in engine.stream_text(prompt, args.max_new_tokens, **options, seed=args.seed + i):
                print(piece, end="", flush=True)
            print()
    else:
        for first in range(0, count, BATCH_LIMIT):
            batch = min(BATCH_LIMIT, count - first)
            for sample in engine.generate_batch(prompt, args.max_new_tokens, batch, **options, seed=args.seed + first):
                print(args.prompt + tokenizer.decode(sample))
                if count > 1:
                    print("-" * 40)
    if "context" in engine.stop_reason:
        print(f"note: generation stopped at the model's context of {engine.context} tokens", file=sys.stderr)
    return 0


def sample_scalar(args: argparse.Namespace) -> int:
    import random

    from nanochat_next.scalar import checkpoint
    from nanochat_next.scalar.sample import check_temperature, generate

    check_temperature(args.temperature)
    model, tokenizer, _ = checkpoint.load(args.checkpoint)
    prompt = tokenizer.encode(args.prompt, prepend_bos=True)
    rng = random.Random(args.seed)
    for _ in range(args.num_samples):
        new = generate(model, prompt, args.max_new_tokens, args.temperature, rng, stop_token=tokenizer.bos_id)
        print(args.prompt + tokenizer.decode(new))
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    """A small REPL. Each reply streams; the conversation is re-rendered with nanochat's template every turn."""
    from nanochat_next.infer.engine import Engine
    from nanochat_next.model.saving import load_trained
    from nanochat_next.tokenizer.chat_template import fit_history

    model, tok, _ = load_trained(args.checkpoint, args.device)
    engine = Engine(model, tok, compile=args.compile)
    room = engine.context - args.max_new_tokens  # the prompt may use the rest of the context
    if room < 5:  # <|bos|> <|user_start|> (at least one token) <|user_end|> <|assistant_start|>
        raise UserError(f"--max-new-tokens {args.max_new_tokens} leaves no room for a message in the model's context "
                        f"of {engine.context} tokens; use at most {engine.context - 5}")
    interactive = sys.stdin.isatty()
    if interactive:
        print("chat with the model; /clear starts over, /quit or Ctrl-D leaves (a base model was not trained to chat)")
    messages: list[dict] = []
    turn = 0
    while True:
        try:
            line = input("you> " if interactive else "").strip()
        except EOFError:
            break
        if line in ("/quit", "/exit"):
            break
        if line == "/clear" or not line:
            messages = [] if line == "/clear" else messages
            continue
        messages.append({"role": "user", "content": line})
        prompt, dropped = fit_history(messages, tok, room)
        if prompt is None:
            print(f"note: that message is {dropped} tokens with the template; with replies of "
                  f"{args.max_new_tokens} tokens the context of {engine.context} allows {room}: shorten it",
                  file=sys.stderr)
            messages.clear()
            continue
        if dropped:
            print(f"note: dropped the oldest {dropped} exchange(s) to fit the context", file=sys.stderr)
        print("bot> ", end="", flush=True)
        reply = []
        for piece in engine.stream_text(prompt, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                                        top_p=args.top_p, seed=args.seed + turn):
            print(piece, end="", flush=True)
            reply.append(piece)
        print(flush=True)
        messages.append({"role": "assistant", "content": "".join(reply)})
        turn += 1
    return 0
