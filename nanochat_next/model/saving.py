"""Saving and loading a trained tensor model with its tokenizer: what train writes and infer, chat, export and serve
read.

A trained model is a directory: ``model/model.safetensors`` + ``model/config.json`` (the model config, its
style, the run that trained it and its summary) and ``tokenizer/`` (see ``tokenizer.bpe``). Nothing is
unpickled on load. Nothing here knows about training, so generation and export stay light.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from nanochat_next.atomic import write_text, write_with
from nanochat_next.errors import UserError
from nanochat_next.model.bigram import TensorBigram
from nanochat_next.model.gpt import GPT, GPTConfig, head_is_tied
from nanochat_next.model.gpt_classic import ClassicGPT
from nanochat_next.runtime import resolve_device
from nanochat_next.tokenizer.bpe import BPETokenizer

MODEL_CLASSES = {"modern": GPT, "classic": ClassicGPT, "bigram": TensorBigram}
# config.json's format and its version (docs/interop.md): a reader refuses a version newer than it knows
MODEL_FORMAT, MODEL_FORMAT_VERSION = "nanochat-next/model", 1


def save_model(directory: Path, model: torch.nn.Module, record: dict) -> Path:
    """model.safetensors + config.json (model config, style and ``record``), each via temp file + fsync + rename."""
    from dataclasses import asdict

    from safetensors import SafetensorError
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if head_is_tied(model):
        state.pop("lm_head.weight")  # tied to transformer.wte.weight
    # JSON beside the weights: what the model is (its config and style) and how it was made (the run, the summary)
    config = {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "model_config": asdict(model.config),
              "model_kind": "bigram" if model.style == "bigram" else "gpt",
              "style": model.style, **record}
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # weights first, config last: a directory with a config.json has its weights (each file written atomically)
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
        # a newer writer may have added what this reader cannot honour: refuse rather than load it wrongly
        if config.get("format_version", 1) > MODEL_FORMAT_VERSION:
            raise UserError(f"{model_dir} is format version {config['format_version']} of {MODEL_FORMAT}; this "
                            f"nanochat-next reads up to {MODEL_FORMAT_VERSION}: upgrade it")
        gpt_config = GPTConfig(**config["model_config"])
        cls = MODEL_CLASSES[config["style"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{model_dir / 'config.json'} is damaged ({type(exc).__name__}: {exc})") from None
    model = cls(gpt_config, init=False)  # no init: every weight comes from the file
    try:
        missing, unexpected = model.load_state_dict(load_file(model_dir / "model.safetensors"), strict=False)
    except Exception as exc:  # safetensors raises its own error types for truncated/corrupt files
        raise UserError(f"{model_dir / 'model.safetensors'} is damaged ({exc})") from None
    missing = [k for k in missing if not (head_is_tied(model) and k == "lm_head.weight")]  # tied to wte
    if missing or unexpected:
        raise UserError(f"{model_dir} does not match its config: missing {missing[:3]}, unexpected {unexpected[:3]}")
    tokenizer = BPETokenizer.load(directory / "tokenizer")
    return model.to(resolve_device(device)).eval(), tokenizer, config
