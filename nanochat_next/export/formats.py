"""One export entry point for every format: write it, then check it against the model (``verify``).

``safetensors`` is written here (it is our own model format, versioned): a directory with

- ``model.safetensors``: the weights under our parameter names (a tied head stored once, as
  ``transformer.wte.weight``; padded vocabulary rows included);
- ``config.json``: ``format`` "nanochat-next/model", ``format_version``, ``style``, ``model_config`` (every
  field of GPTConfig) and ``tokenizer`` (pattern, special token ids, the ranks file);
- ``tokenizer.tiktoken`` (one ``base64(bytes) rank`` line per token) and the Hugging Face ``tokenizer.json``.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch

from nanochat_next.atomic import writable_dir, write_text
from nanochat_next.errors import UserError
from nanochat_next.export import FORMATS
from nanochat_next.export import verify as check
from nanochat_next.export.optional import need
from nanochat_next.model.saving import MODEL_FORMAT, MODEL_FORMAT_VERSION
from nanochat_next.tokenizer.bpe import BPETokenizer


@contextmanager
def quiet_logger(name: str):
    """A logger at ERROR for the block, back to its own level after (no global change outlives the export)."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)


def export_safetensors(model: torch.nn.Module, tokenizer: BPETokenizer, source: Path, out: Path) -> list[Path]:
    from nanochat_next.export.hf_tokenizer import write_hf_tokenizer

    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "model" / "model.safetensors", out / "model.safetensors")
    shutil.copyfile(source / "tokenizer" / "tokenizer.tiktoken", out / "tokenizer.tiktoken")
    config = {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "style": model.style,
              "model_config": asdict(model.config),
              "tokenizer": {"ranks_file": "tokenizer.tiktoken", "pattern": tokenizer.pattern,
                            "special_tokens": tokenizer.special_tokens, "vocab_size": tokenizer.vocab_size}}
    write_text(out / "config.json", json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    hf_files = write_hf_tokenizer(tokenizer, out, model.config.sequence_len)
    return [out / "model.safetensors", out / "config.json", out / "tokenizer.tiktoken", *hf_files]


def export_onnx(model: torch.nn.Module, tokenizer: BPETokenizer, out: Path) -> list[Path]:
    need("onnxscript", "onnx")
    from nanochat_next.export.hf_tokenizer import write_hf_tokenizer
    from nanochat_next.export.onnx_graphs import export_graphs, write_onnx_config
    from nanochat_next.export.portable import PortableGPT

    portable = PortableGPT.from_state_dict(asdict(model.config), model.style, model.cpu().state_dict())
    with quiet_logger("torch.onnx"):  # its "torchvision is not installed" notes; the level is restored after
        graphs = export_graphs(portable, out)
    stops = [tokenizer.bos_id, tokenizer.special_id("<|assistant_end|>")]
    return [*graphs, write_onnx_config(portable, out, tokenizer.bos_id, stops),
            *write_hf_tokenizer(tokenizer, out, model.config.sequence_len)]


def write_format(fmt: str, model: torch.nn.Module, tokenizer: BPETokenizer, source: Path, out: Path,
                 record: dict) -> list[Path]:
    if fmt == "safetensors":
        return export_safetensors(model, tokenizer, source, out)
    if fmt == "onnx":
        return export_onnx(model, tokenizer, out)
    if fmt == "hf":
        from nanochat_next.export.hf_export import export_hf

        return export_hf(model, tokenizer, out)
    if fmt == "gguf":
        from nanochat_next.export.gguf_export import export_gguf

        return export_gguf(model, tokenizer, out)
    if fmt == "tokenizer":
        from nanochat_next.export.hf_tokenizer import write_hf_tokenizer

        return write_hf_tokenizer(tokenizer, out, model.config.sequence_len)
    from nanochat_next.model.nanochat_layout import export_nanochat

    return list(export_nanochat(model, record.get("steps", 0), out, {"val_bpb": record.get("final_val_bpb")}))


def export(source: str | Path, fmt: str, out: Path, verify: bool = True) -> dict:
    """Write ``fmt`` for the trained model at ``source`` into ``out``; with ``verify``, check it. Returns a
    report: files with their sizes, seconds to export and to verify, the verification's figures."""
    from nanochat_next.model.saving import load_trained

    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r} ({', '.join(FORMATS)})")
    source = Path(source)
    model, tokenizer, config = load_trained(source, "cpu")
    if model.style not in ("modern", "classic") and fmt != "tokenizer":
        raise UserError(f"--to {fmt} exports GPT models (modern or classic style); this is a {model.style} model")
    # only now, once the model has loaded: a command that fails on its input creates nothing
    first_new = next((p for p in (*reversed(Path(out).absolute().parents), Path(out).absolute()) if not p.exists()),
                     None)
    out = writable_dir(out)
    model = model.float().eval()
    start = time.perf_counter()
    try:
        files = write_format(fmt, model, tokenizer, source, out, config.get("summary", {}))
    except UserError:  # refused (e.g. a `next` model to nanochat's layout): take back the empty folders we made
        if first_new is not None and not any(f.is_file() for f in first_new.rglob("*")):
            shutil.rmtree(first_new, ignore_errors=True)
        raise
    report = {"format": fmt, "style": model.style, "out": str(out),
              "export_seconds": round(time.perf_counter() - start, 3),
              "files": {p.name: p.stat().st_size for p in files}, "verified": None}
    if verify and fmt == "tokenizer":
        report["verified"] = check.verify_tokenizer(out, tokenizer, tokenizer_texts())
    elif verify and fmt in check.RUNNERS:
        report["verified"] = check.verify(fmt, out, check.reference(model, tokenizer))
    return report


def tokenizer_texts() -> list[str]:
    """Texts the tokenizer check encodes both ways: adversarial unicode and whitespace (what regex engines and
    byte-level BPE implementations get wrong)."""
    return ["First Citizen:\nBefore we proceed any further, hear me speak.\n",
            "👨‍👩‍👧‍👦 family 👍🏽 🇫🇷", "漢字かな交じり文、中文测试。한국어", "مرحبا بالعالم — עברית (RTL)",
            "1234567890 3.14159 1,000,000 ٣٤٥", "a   \t\t  b\n\n\n  c   ", "line\r\nnext\r\n\r\n", "it's I'LL we'Ve 'ſ",
            "<|bos|> is plain text here <|user_start|>", "ß ǅ ﬁ \u00a0\u3000\u200b\ufeff",
            "\U000323b0 \U0001d400 x\u0301",
            " \n \n\n\t", "x" * 300 + " " * 50 + "y"]
