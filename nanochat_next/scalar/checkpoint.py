"""Scalar-model checkpoints: one JSON file (config, weights, vocabulary, training record), written atomically.

The file is plain JSON, so loading it runs no code. Floats are written with ``repr`` precision by the
json module, so a save/load round trip restores every weight bit for bit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from nanochat_next.atomic import write_text
from nanochat_next.errors import UserError
from nanochat_next.scalar.bigram import ScalarBigram
from nanochat_next.scalar.gpt import ScalarMiniGPT
from nanochat_next.tokenizer.char import CharTokenizer

FORMAT = "nanochat-next/scalar-checkpoint"
FILENAME = "model.json"
MODEL_KINDS = {"bigram": ScalarBigram, "mini-gpt": ScalarMiniGPT}


def save(path: str | os.PathLike, model: ScalarBigram | ScalarMiniGPT, tokenizer: CharTokenizer,
         record: dict | None = None) -> Path:
    """Write the checkpoint to ``path`` (a directory gets model.json inside) via temp file + fsync + rename."""
    path = Path(path)
    if path.suffix != ".json":
        path = path / FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = "bigram" if isinstance(model, ScalarBigram) else "mini-gpt"
    data = {"format": FORMAT, "version": 1, "model_kind": kind, **model.to_dict(),
            "tokenizer": tokenizer.to_dict(), "record": record or {}}
    return write_text(path, json.dumps(data, ensure_ascii=False))


def load(path: str | os.PathLike) -> tuple[ScalarBigram | ScalarMiniGPT, CharTokenizer, dict]:
    """(model, tokenizer, training record) from a checkpoint file or a directory holding model.json."""
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    if not path.is_file():
        raise UserError(f"no scalar checkpoint at {path}; train one with "
                        f"`nanochat-next train --mode scalar --checkpoint-dir {path.parent}`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"checkpoint {path} is damaged (not valid JSON: {exc}); retrain it") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path} is not a nanochat-next scalar checkpoint")
    kind = data.get("model_kind")
    if kind not in MODEL_KINDS:
        raise UserError(f"checkpoint {path} has unknown model kind {kind!r}")
    try:
        model = MODEL_KINDS[kind].from_dict(data)
        tokenizer = CharTokenizer.from_dict(data["tokenizer"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"checkpoint {path} is damaged ({type(exc).__name__}: {exc}); retrain it") from None
    vocab = model.vocab_size if isinstance(model, ScalarBigram) else model.config.vocab_size
    if vocab != tokenizer.vocab_size:
        raise UserError(f"checkpoint {path} is inconsistent: model vocab {vocab} vs tokenizer {tokenizer.vocab_size}")
    return model, tokenizer, data.get("record", {})
