"""``export`` and ``import-nanochat``: a trained tensor model to and from other layouts."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from nanochat_next.cli.args import non_negative_int
from nanochat_next.export import FORMATS

FORMAT_HELP = {"safetensors": "our versioned model format + the tokenizer files",
               "hf": "a transformers directory, AutoModelForCausalLM",
               "onnx": "prefill + decode graphs with the KV cache, for onnxruntime in Python, Node and the browser",
               "tokenizer": "tokenizer.json for Hugging Face tokenizers",
               "gguf": "llama.cpp's gpt2 architecture, classic style only",
               "nanochat": "nanochat 2f09686's checkpoint layout, --recipe nanochat models only"}


def register(sub, fmt) -> None:
    p = sub.add_parser("export", help=f"export a tensor model: {', '.join(FORMATS)}",
                       formatter_class=fmt,
                       description="Write a trained model in a format other stacks load, then verify it against the "
                                   "model (logits and greedy tokens; docs/interop.md): " + "; ".join(
                                       f"{name} ({what})" for name, what in FORMAT_HELP.items()) + ". All but "
                                   "safetensors and nanochat need the export extra: pip install "
                                   "'nanochat-next[export]'.")
    p.add_argument("--checkpoint", default="out/tensor", help="a tensor training output directory")
    p.add_argument("--to", choices=FORMATS, default="safetensors",
                   help="target format (the default works for every model the default recipe trains)")
    p.add_argument("--out", "--dest", dest="out", default=None,
                   help="directory to write into (default: CHECKPOINT/export/<format>)")
    p.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True,
                   help="load the export as its users do and compare logits and greedy tokens with the model")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import-nanochat", help="import a nanochat checkpoint (model_<step>.pt + meta_<step>.json)",
                       formatter_class=fmt,
                       description="Load a nanochat base checkpoint without unpickling (weights_only) into our "
                                   "training output layout, so sample and chat work on it. nanochat's tokenizer is "
                                   "a pickle and is not read: give an equivalent tokenizer of ours.")
    p.add_argument("--source", required=True, help="directory with model_<step>.pt and meta_<step>.json")
    p.add_argument("--step", type=non_negative_int, default=None, help="step to import (default: the newest)")
    p.add_argument("--tokenizer", required=True, help="our tokenizer directory with the same vocabulary")
    p.add_argument("--out", required=True, help="output directory (model/ + tokenizer/)")
    p.set_defaults(func=cmd_import_nanochat)


def cmd_export(args: argparse.Namespace) -> int:
    from nanochat_next.export.formats import export

    out = Path(args.out or Path(args.checkpoint) / "export" / args.to)
    report = export(args.checkpoint, args.to, out, args.verify)  # creates `out` only once the model has loaded
    size = sum(report["files"].values())
    print(f"wrote {len(report['files'])} files ({size / 1e6:.1f} MB) to {out}/ in {report['export_seconds']:.1f} s "
          f"({args.to}; docs/interop.md says what loads it)")
    checked = report["verified"]
    if checked and "max_logit_diff" in checked:
        print(f"verified: max logit difference {checked['max_logit_diff']:.1e} (tolerance {checked['tolerance']:.0e}), "
              f"{checked['greedy_tokens']} greedy tokens equal to our engine's ({checked['seconds']:.1f} s)")
    elif checked:
        print(f"verified: {checked['texts']} texts encode exactly as our tokenizer does")
    return 0


def cmd_import_nanochat(args: argparse.Namespace) -> int:
    from nanochat_next.atomic import writable_dir
    from nanochat_next.errors import UserError
    from nanochat_next.model.nanochat_layout import load_nanochat
    from nanochat_next.model.saving import save_model
    from nanochat_next.tokenizer.bpe import BPETokenizer
    from nanochat_next.train.config import TensorRun

    out = writable_dir(args.out)
    model, meta = load_nanochat(args.source, args.step)
    tokenizer = BPETokenizer.load(args.tokenizer)
    if tokenizer.vocab_size != model.config.vocab_size:
        raise UserError(f"tokenizer {args.tokenizer} has {tokenizer.vocab_size} tokens but the model expects "
                        f"{model.config.vocab_size}")
    c = model.config
    run = TensorRun(depth=c.n_layer, max_seq_len=c.sequence_len, window_pattern=c.window_pattern,
                    vocab_size=c.vocab_size, out=str(out))
    save_model(out / "model", model, {"run": asdict(run), "imported_from": str(args.source), "nanochat_meta": meta})
    tokenizer.save(out / "tokenizer")
    print(f"imported {args.source} (step {meta.get('step')}) into {out}/; "
          f"try `nanochat-next sample --checkpoint {out}`")
    return 0
