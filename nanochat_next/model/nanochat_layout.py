"""Conversion to and from karpathy/nanochat's checkpoint layout (pinned ref 2f09686).

nanochat saves ``model_<step:06d>.pt`` (``torch.save`` of the state dict) and ``meta_<step:06d>.json``
(whose ``model_config`` holds its GPTConfig). Our modern GPT uses the same parameter names and shapes, so:

- ``export_nanochat`` writes our weights in that layout: nanochat's ``build_model`` loads it unchanged,
  and the ``.pt`` holds only tensors, so ``torch.load(..., weights_only=True)`` reads it safely.
- ``load_nanochat`` reads theirs with ``weights_only=True`` (never full unpickling), undoes what
  nanochat's own loader undoes (``_orig_mod.`` prefixes from torch.compile, bfloat16 weights, lambdas
  missing from old checkpoints, a missing window pattern) and returns our ``GPT``.

nanochat's tokenizer is a pickle; we do not load it. Pair an imported model with an equivalent tokenizer
of ours (``tok-train`` on the same data gives the identical vocabulary, checked by every nanochat-next bench run).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from nanochat_next.atomic import write_text, write_with
from nanochat_next.errors import UserError
from nanochat_next.model.gpt import GPT, GPTConfig


def export_nanochat(model: GPT, step: int, dest: str | Path, meta: dict | None = None) -> tuple[Path, Path]:
    if not isinstance(model, GPT):
        raise UserError("only the modern style has nanochat's architecture; a classic or bigram model cannot be "
                        "exported to nanochat's layout")
    beyond = model.config.beyond_nanochat()
    if beyond:
        raise UserError(f"this model uses {', '.join(beyond)} (the `next` recipe), which nanochat 2f09686 cannot "
                        "load; train with --recipe nanochat for a model nanochat runs (this model's own "
                        "model/model.safetensors + config.json hold every weight)")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    model_path, meta_path = dest / f"model_{step:06d}.pt", dest / f"meta_{step:06d}.json"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # nanochat loads torch.save files: a plain dict of tensors (no code), written atomically unlike nanochat's own
    write_with(model_path, lambda tmp: torch.save(state, tmp))
    config = {k: getattr(model.config, k) for k in ("sequence_len", "vocab_size", "n_layer", "n_head", "n_kv_head",
                                                     "n_embd", "window_pattern")}
    write_text(meta_path, json.dumps({"step": step, "model_config": config, **(meta or {}),
                                      "exported_by": "nanochat-next"}, indent=2))
    return model_path, meta_path


def latest_step(directory: str | Path) -> int:
    steps = [int(m.group(1)) for p in Path(directory).glob("model_*.pt")
             if (m := re.fullmatch(r"model_(\d+)\.pt", p.name))]
    if not steps:
        raise UserError(f"no nanochat checkpoint (model_<step>.pt) in {directory}")
    return max(steps)


def load_nanochat(directory: str | Path, step: int | None = None) -> tuple[GPT, dict]:
    directory = Path(directory)
    step = latest_step(directory) if step is None else step
    model_path, meta_path = directory / f"model_{step:06d}.pt", directory / f"meta_{step:06d}.json"
    if not model_path.is_file() or not meta_path.is_file():
        raise UserError(f"{directory} lacks model_{step:06d}.pt or meta_{step:06d}.json")
    try:  # weights_only: a .pt file is a pickle, and a pickle can run code; only tensors are accepted
        state = torch.load(model_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses anything but tensors and plain containers
        raise UserError(f"{model_path} is not a plain state dict of tensors ({type(exc).__name__}); refusing to "
                        "unpickle it") from None
    meta = json.loads(meta_path.read_text())
    config_kwargs = dict(meta["model_config"])
    config_kwargs.setdefault("window_pattern", "L")  # older nanochat checkpoints predate sliding windows
    config = GPTConfig(**config_kwargs)
    # a compiled model saves its weights under "_orig_mod."; nanochat keeps embeddings in bf16 on CUDA: ours are fp32
    state = {k.removeprefix("_orig_mod."): (v.float() if v.dtype == torch.bfloat16 else v) for k, v in state.items()}
    # checkpoints from before the per-layer scalars: the values that make them a no-op (x unchanged, no x0 mixed in)
    state.setdefault("resid_lambdas", torch.ones(config.n_layer))
    state.setdefault("x0_lambdas", torch.zeros(config.n_layer))
    model = GPT(config, init=False)
    model.load_state_dict(state, strict=True)
    return model.eval(), meta
