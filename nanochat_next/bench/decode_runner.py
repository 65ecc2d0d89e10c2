"""Greedy decode speed of one engine, run in that engine's own process; prints one ``RESULT <json>`` line.

    python -m nanochat_next.bench.decode_runner SIDE WEIGHTS CONFIG      (ours)
    python PATH/TO/decode_runner.py nanochat WEIGHTS CONFIG              (nanochat's Python, in its checkout)

SIDE is ``nanochat`` (its Engine), ``ours`` (our Engine), ``ours-compiled`` (our Engine with the compiled
one-token step, ``infer.decode_step``; one untimed warm-up generation per batch size compiles it, and its
seconds are reported as ``warmup_s``) or ``ours-nocache`` (a full forward per new token).
WEIGHTS is a ``torch.save``d state dict (loaded with ``weights_only=True``); CONFIG a JSON file with
``model_config``, ``prompt`` (token ids), ``new_tokens``, ``repeats``, ``device``, ``dtype``, ``nanochat`` (its
checkout) and optionally ``batches``. Both engines decode exactly ``new_tokens`` tokens (nothing stops them
early), so their speeds compare the same work. This file imports nothing of our package at the top: run by
path, it needs only torch (and nanochat's checkout for the nanochat side).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator

SIDES = ("nanochat", "ours", "ours-compiled", "ours-nocache")


def nanochat_stream(cfg: dict, state: dict, device) -> Callable[[int], Iterator[list[int]]]:
    sys.path.insert(0, cfg["nanochat"])
    from nanochat.engine import Engine
    from nanochat.gpt import GPT, GPTConfig

    # our model config also records the recipe's features (at nanochat's values in a model nanochat can run);
    # nanochat's GPTConfig takes only its own fields
    known = {f.name for f in dataclasses.fields(GPTConfig)}
    model = GPT(GPTConfig(**{k: v for k, v in cfg["model_config"].items() if k in known}))
    model.load_state_dict(state, strict=True)
    model.to(device).eval()

    class NoSpecialTokens:  # the ids nanochat's Engine acts on (stop at bos/assistant_end, tool calls): none
        def encode_special(self, s):
            return -1

        def get_bos_token_id(self):
            return -1

    engine = Engine(model, NoSpecialTokens())

    def stream(batch: int) -> Iterator[list[int]]:
        for column, _ in engine.generate(cfg["prompt"], num_samples=batch, max_tokens=cfg["new_tokens"],
                                         temperature=0.0):
            yield column

    return stream


def our_stream(cfg: dict, state: dict, device, cache: bool = True,
               compile: bool = False) -> Callable[[int], Iterator[list[int]]]:
    import torch

    from nanochat_next.infer.engine import Engine
    from nanochat_next.model.gpt import GPT, GPTConfig

    model = GPT(GPTConfig(**cfg["model_config"]), init=False)
    model.load_state_dict(state, strict=True)
    model.to(device).eval()
    engine = Engine(model, compile=compile, autotune=cfg.get("autotune", True))

    def stream(batch: int) -> Iterator[list[int]]:
        yield from engine.generate(cfg["prompt"], cfg["new_tokens"], num_samples=batch, temperature=0.0,
                                   stop_tokens=set())

    def stream_without_cache(batch: int) -> Iterator[list[int]]:
        ids = torch.tensor([cfg["prompt"]] * batch, device=device)
        with torch.no_grad():
            for _ in range(cfg["new_tokens"]):
                nxt = model(ids)[:, -1].argmax(-1)  # the whole sequence again for every new token
                ids = torch.cat([ids, nxt[:, None]], 1)
                yield nxt.tolist()

    return stream if cache else stream_without_cache


def measure(stream, batch: int, cfg: dict, device, autocast) -> dict:
    """Prefill tok/s (prompt / time to the first token) and decode tok/s (the rest, all samples counted)."""
    import torch

    t0 = time.perf_counter()
    stamps, tokens = [], []
    with autocast:
        for column in stream(batch):
            if device.type == "cuda":
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())
            tokens.append(column[0])
    if len(stamps) != cfg["new_tokens"]:
        raise SystemExit(f"decoded {len(stamps)} tokens, expected {cfg['new_tokens']}")
    return {"prefill_tok_s": len(cfg["prompt"]) / (stamps[0] - t0),
            "decode_tok_s": (len(stamps) - 1) * batch / (stamps[-1] - stamps[0]), "tokens": tokens}


def main(argv: list[str]) -> dict:
    import torch

    side, weights, config_path = argv
    if side not in SIDES:
        raise SystemExit(f"unknown side {side!r} ({', '.join(SIDES)})")
    with open(config_path) as f:
        cfg = json.load(f)
    state = torch.load(weights, weights_only=True)
    device = torch.device(cfg["device"])
    amp = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(cfg["dtype"])
    autocast = torch.autocast(device.type, dtype=amp) if amp and device.type == "cuda" else contextlib.nullcontext()
    if side == "nanochat":
        stream = nanochat_stream(cfg, state, device)
    else:
        stream = our_stream(cfg, state, device, cache=side != "ours-nocache", compile=side == "ours-compiled")
    out = {}
    for batch in cfg.get("batches", [1]):
        warmup = None
        if side == "ours-compiled":  # compile this batch size's graph before timing
            t0 = time.perf_counter()
            for _ in stream(batch):
                pass
            warmup = time.perf_counter() - t0
        runs = [measure(stream, batch, cfg, device, autocast) for _ in range(cfg["repeats"])]
        out[batch] = {"prefill_tok_s": statistics.median(r["prefill_tok_s"] for r in runs),
                      "decode_tok_s": statistics.median(r["decode_tok_s"] for r in runs), "tokens": runs[0]["tokens"],
                      "warmup_s": warmup}
    return out


if __name__ == "__main__":
    print("RESULT", json.dumps(main(sys.argv[1:])), flush=True)
