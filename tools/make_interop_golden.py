"""Make tests/fixtures/golden/: tiny trained models with their logits and greedy tokens, what every exporter
is tested against (tests/export/).

Three models, one per export-relevant style: ``modern-nanochat`` (nanochat 2f09686's model, --recipe nanochat),
``modern-next`` (the next recipe: smear, later init) and ``classic`` (GPT-2). Each is trained for 200 steps on
tinyshakespeare (depth 2, width 64, seq 64, vocab 512, float32) and saved in our layout (model/ + tokenizer/);
``golden.json`` holds the prompt and our Engine's greedy tokens, ``logits.safetensors`` the prompt's logits.

    python tools/make_interop_golden.py            # rewrites tests/fixtures/golden/
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from nanochat_next.cli.main import main as cli
from nanochat_next.infer.engine import Engine
from nanochat_next.model.saving import load_trained

MODELS = {
    "modern-nanochat": ["--recipe", "nanochat"],
    "modern-next": ["--recipe", "next"],
    "classic": ["--style", "classic", "--optimizer", "adamw", "--lr", "1e-2"],
}
PROMPT = "First Citizen:\n"
NEW_TOKENS = 24
TRAIN = ["--depth", "2", "--aspect-ratio", "32", "--head-dim", "32", "--max-seq-len", "64", "--steps", "200",
         "--vocab-size", "512", "--device-batch-size", "8", "--total-batch-size", "1024", "--eval-every", "0",
         "--dtype", "float32", "--device", "cpu", "--no-progress", "--seed", "7"]


def make(name: str, flags: list[str], out: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        if cli(["train", *TRAIN, *flags, "--out", tmp]) != 0:
            raise SystemExit(f"training {name} failed")
        out.mkdir(parents=True, exist_ok=True)
        for part in ("model", "tokenizer"):
            shutil.rmtree(out / part, ignore_errors=True)
            shutil.copytree(Path(tmp) / part, out / part)
    model, tokenizer, _ = load_trained(out, "cpu")
    prompt = tokenizer.encode(PROMPT, prepend_bos=True)
    with torch.no_grad():
        logits = model(torch.tensor([prompt]))[0]
    greedy = Engine(model, tokenizer).generate_batch(prompt, NEW_TOKENS, temperature=0.0)[0]
    save_file({"logits": logits.contiguous()}, out / "logits.safetensors")
    doc = {"prompt": PROMPT, "prompt_ids": prompt, "greedy": greedy, "greedy_text": tokenizer.decode(greedy),
           "train_flags": TRAIN + flags}
    (out / "golden.json").write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).parent.parent / "tests/fixtures/golden"))
    args = parser.parse_args()
    for name, flags in MODELS.items():
        doc = make(name, flags, Path(args.out) / name)
        print(f"{name}: {doc['greedy_text']!r}")


if __name__ == "__main__":
    main()
