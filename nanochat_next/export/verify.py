"""Checking an export against the model it came from: the logits of a prompt and the greedy tokens after it.

The reference is our own model and ``Engine`` (float32, CPU). Each format is loaded the way its users load it
(onnxruntime; transformers' ``AutoModelForCausalLM``; the safetensors file read by the portable forward, as a
loader in another language would; the GGUF file read by the gguf package into a numpy forward) and must give
logits within its tolerance and exactly the same tokens.
Tolerances: float32 end to end, so differences are summation order only (measured: ~3e-6 on logits of
magnitude up to 15); 1e-5 where the same kernels run (PyTorch), 1e-4 for another runtime (onnxruntime, numpy).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nanochat_next.errors import UserError
from nanochat_next.export.optional import need
from nanochat_next.infer.engine import Engine
from nanochat_next.tokenizer.bpe import BPETokenizer

TOLERANCE = {"safetensors": 1e-5, "hf": 1e-5, "onnx": 1e-4, "gguf": 1e-4}
PROMPT = "First Citizen:\nBefore we proceed any further, hear me speak.\n"
NEW_TOKENS = 32


@dataclass
class Reference:
    prompt: list[int]
    logits: np.ndarray  # (T, vocab)
    greedy: list[int]


def reference(model: torch.nn.Module, tokenizer: BPETokenizer, prompt: str = PROMPT,
              new_tokens: int = NEW_TOKENS) -> Reference:
    """Our model's logits on the prompt and our Engine's greedy continuation (default stop tokens)."""
    ids = tokenizer.encode(prompt, prepend_bos=True)[: model.config.sequence_len - 1]
    with torch.no_grad():
        logits = model(torch.tensor([ids], device=next(model.parameters()).device))[0].float().cpu().numpy()
    # no stop tokens: a fixed number of tokens, whatever they are (a tiny model may well say <|bos|> first)
    greedy = Engine(model, tokenizer).generate_batch(ids, new_tokens, temperature=0.0, stop_tokens=set())[0]
    return Reference(ids, logits, greedy)


def run_onnx(directory: Path, ref: Reference) -> tuple[np.ndarray, list[int]]:
    need("onnxruntime", "onnx")
    from nanochat_next.export.onnx_graphs import OnnxModel

    model = OnnxModel(directory)
    return model.logits(ref.prompt), model.greedy(ref.prompt, len(ref.greedy), stop_ids=())


def run_hf(directory: Path, ref: Reference) -> tuple[np.ndarray, list[int]]:
    transformers = need("transformers", "hf")
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, trust_remote_code=True).eval()
    model.generation_config.eos_token_id = None  # a fixed number of tokens, as the reference
    ids = torch.tensor([ref.prompt])
    with torch.no_grad():
        logits = model(ids).logits[0].numpy()
        out = model.generate(ids, max_new_tokens=len(ref.greedy), do_sample=False, pad_token_id=0)
    return logits, out[0, len(ref.prompt):].tolist()


def run_safetensors(directory: Path, ref: Reference) -> tuple[np.ndarray, list[int]]:
    from safetensors.torch import load_file

    from nanochat_next.export.portable import PortableGPT

    config = json.loads((directory / "config.json").read_text())
    model = PortableGPT.from_state_dict(config["model_config"], config["style"],
                                        load_file(directory / "model.safetensors"))
    past_k, past_v, prev = model.empty_cache()
    with torch.no_grad():
        logits = model(torch.tensor([ref.prompt]), past_k, past_v, prev)[0][0].numpy()
    return logits, model.greedy(ref.prompt, len(ref.greedy))


def run_gguf(directory: Path, ref: Reference) -> tuple[np.ndarray, list[int]]:
    """The file read back by the gguf package and run by a numpy GPT-2 (no cache: the sequence each step)."""
    need("gguf", "gguf")
    from nanochat_next.export.gguf_export import gpt2_forward, read_gguf

    hparams, weights = read_gguf(directory / "model.gguf")
    ids = list(ref.prompt)
    for _ in range(len(ref.greedy)):
        ids.append(int(gpt2_forward(hparams, weights, ids)[-1].argmax()))
    return gpt2_forward(hparams, weights, ref.prompt), ids[len(ref.prompt):]


RUNNERS = {"onnx": run_onnx, "hf": run_hf, "safetensors": run_safetensors, "gguf": run_gguf}


def verify(fmt: str, directory: Path, ref: Reference) -> dict:
    """{"max_logit_diff", "tolerance", "greedy_equal", "seconds"}; a mismatch is a UserError."""
    start = time.perf_counter()
    logits, greedy = RUNNERS[fmt](directory, ref)
    diff = float(np.abs(np.asarray(logits, dtype=np.float64) - ref.logits).max())
    result = {"max_logit_diff": diff, "tolerance": TOLERANCE[fmt], "greedy_equal": greedy == ref.greedy,
              "greedy_tokens": len(ref.greedy), "seconds": round(time.perf_counter() - start, 3)}
    if diff > TOLERANCE[fmt] or greedy != ref.greedy:
        raise UserError(f"the {fmt} export at {directory} does not reproduce the model: max logit difference "
                        f"{diff:.2e} (tolerance {TOLERANCE[fmt]:.0e}), greedy tokens "
                        f"{'equal' if greedy == ref.greedy else 'differ'}")
    return result


def verify_tokenizer(directory: Path, tokenizer: BPETokenizer, texts: list[str]) -> dict:
    """The exported tokenizer.json, loaded by the ``tokenizers`` library, encodes ``texts`` as we do (specials
    as plain text), and with special tokens matched as our allow_special=True does."""
    tokenizers = need("tokenizers", "tokenizer")
    hf = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
    hf.encode_special_tokens = True
    start, mismatches = time.perf_counter(), 0
    for text in texts:
        ours = tokenizer.encode(text)
        mismatches += hf.encode(text, add_special_tokens=False).ids != ours or hf.decode(ours, False) != text
    hf.encode_special_tokens = False
    special = "<|bos|>" + texts[0][:50] + "<|assistant_end|>"
    mismatches += hf.encode(special, add_special_tokens=False).ids != tokenizer.encode(special, allow_special=True)
    if mismatches:
        raise UserError(f"the tokenizer.json at {directory} encodes {mismatches} of {len(texts) + 1} texts "
                        "differently from ours")
    return {"texts": len(texts) + 1, "mismatches": 0, "seconds": round(time.perf_counter() - start, 3)}
