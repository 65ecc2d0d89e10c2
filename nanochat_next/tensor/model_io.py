"""Building, saving and loading a tensor model, with its tokenizer: what train, sample, chat and export share.

A trained model is a directory: ``model/model.safetensors`` + ``model/config.json`` (the model config, its
style, the run that trained it and its summary) and ``tokenizer/`` (see ``tokenizer.bpe``). Nothing is
unpickled on load. This module does not import the training loop, so generation and export stay light.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch

from nanochat_next.atomic import write_text, write_with
from nanochat_next.dtype_choice import model_shapes
from nanochat_next.errors import UserError
from nanochat_next.runtime import resolve_device
from nanochat_next.tensor.bigram import TensorBigram
from nanochat_next.tensor.config import MODEL_RECIPE_FIELDS, TensorRun
from nanochat_next.tensor.gpt import GPT, GPTConfig, config_for_depth, head_is_tied
from nanochat_next.tensor.gpt_classic import ClassicGPT
from nanochat_next.tokenizer.bpe import BPETokenizer

MODEL_CLASSES = {"modern": GPT, "classic": ClassicGPT, "bigram": TensorBigram}
# config.json's format and its version (docs/interop.md): a reader refuses a version newer than it knows
MODEL_FORMAT, MODEL_FORMAT_VERSION = "nanochat-next/model", 1


def model_config(run: TensorRun, vocab_size: int) -> GPTConfig:
    """The model's shape from the run; only the modern GPT has sliding windows (the others attend to all or
    none) and the recipe's model features (the others keep GPTConfig's defaults)."""
    modern = run.model_kind == "mini-gpt" and run.style == "modern"
    config = config_for_depth(run.depth, vocab_size, run.aspect_ratio, run.head_dim, run.max_seq_len,
                              run.window_pattern if modern else "L")
    return replace(config, **{k: getattr(run, k) for k in MODEL_RECIPE_FIELDS}) if modern else config


def run_shapes(run: TensorRun, vocab_size: int) -> list[tuple[int, int, int]]:
    """The matmuls (M, K, N) of one micro-batch of this run's model: what ``--dtype auto`` times on a CPU."""
    c = model_config(run, vocab_size)
    return model_shapes(run.tokens_per_micro_batch, c.n_embd, c.n_kv_head * c.head_dim, c.padded_vocab_size,
                        c.n_layer)


def model_class(run: TensorRun) -> type[torch.nn.Module]:
    return MODEL_CLASSES["bigram" if run.model_kind == "bigram" else run.style]


def build_model(run: TensorRun, vocab_size: int, device: torch.device | str = "cpu") -> torch.nn.Module:
    """Built on the meta device, then initialised on ``device``: with the same seed, the modern GPT's
    weights equal nanochat's (its init draws random numbers in the same order)."""
    with torch.device("meta"):
        model = model_class(run)(model_config(run, vocab_size), init=False)
    model.to_empty(device=device)
    model.init_weights()
    return model


def save_model(directory: Path, model: torch.nn.Module, record: dict) -> Path:
    """model.safetensors + config.json (model config, style and ``record``), each via temp file + fsync + rename."""
    from dataclasses import asdict

    from safetensors import SafetensorError
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if head_is_tied(model):
        state.pop("lm_head.weight")  # tied to transformer.wte.weight
    config = {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "model_config": asdict(model.config),
              "model_kind": "bigram" if model.style == "bigram" else "mini-gpt",
              "style": model.style, **record}
    try:
        directory.mkdir(parents=True, exist_ok=True)
        write_with(directory / "model.safetensors", lambda tmp: save_file(state, tmp))
        write_text(directory / "config.json", json.dumps(config, indent=2) + "\n")
    except (OSError, SafetensorError) as exc:  # safetensors reports a full disk as its own error type
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UserError(f"could not save the model to {directory} ({why})") from None
    return directory


def load_trained(directory: str | Path, device: str = "auto") -> tuple[torch.nn.Module, BPETokenizer, dict]:
    """(model, tokenizer, config) from a training output directory (model/ + tokenizer/), no pickle involved."""
    from safetensors.torch import load_file

    directory = Path(directory)
    model_dir = directory / "model"
    if not (model_dir / "config.json").is_file() or not (model_dir / "model.safetensors").is_file():
        raise UserError(f"no tensor model at {directory} (expected model/config.json and model/model.safetensors); "
                        f"train one with `nanochat-next train --mode tensor --out {directory}`")
    try:
        config = json.loads((model_dir / "config.json").read_text())
        if config.get("format_version", 1) > MODEL_FORMAT_VERSION:
            raise UserError(f"{model_dir} is format version {config['format_version']} of {MODEL_FORMAT}; this "
                            f"nanochat-next reads up to {MODEL_FORMAT_VERSION}: upgrade it")
        gpt_config = GPTConfig(**config["model_config"])
        cls = MODEL_CLASSES[config["style"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{model_dir / 'config.json'} is damaged ({type(exc).__name__}: {exc})") from None
    model = cls(gpt_config, init=False)
    try:
        missing, unexpected = model.load_state_dict(load_file(model_dir / "model.safetensors"), strict=False)
    except Exception as exc:  # safetensors raises its own error types for truncated/corrupt files
        raise UserError(f"{model_dir / 'model.safetensors'} is damaged ({exc})") from None
    missing = [k for k in missing if not (head_is_tied(model) and k == "lm_head.weight")]  # tied to wte
    if missing or unexpected:
        raise UserError(f"{model_dir} does not match its config: missing {missing[:3]}, unexpected {unexpected[:3]}")
    tokenizer = BPETokenizer.load(directory / "tokenizer")
    return model.to(resolve_device(device)).eval(), tokenizer, config
