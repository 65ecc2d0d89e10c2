"""``export --to gguf``: the classic style as llama.cpp's ``gpt2`` architecture, in float32.

Why only classic: llama.cpp's ``gpt2`` graph is GPT-2's math (learned positions, LayerNorm, fused QKV with
biases, GELU, tied head), which is exactly the classic style. The modern style has no GGUF architecture: none
has value embeddings, per-layer residual lambdas, smear, QK-norm after rotary and a soft-capped head together.

Tensors keep PyTorch's (out, in) layout under llama.cpp's names (``token_embd``, ``blk.N.attn_qkv``, ...); the
vocabulary is cut to its real size (as in the hf export). The tokenizer goes in as GGUF's ``gpt2`` BPE
(token strings in GPT-2's byte alphabet + merges, the special tokens as control tokens). llama.cpp chooses its
pre-tokenizer regex from a fixed list by name and none is our split pattern (digits in runs of at most 2):
tokenize with tokenizer.json and hand llama.cpp the ids for exactly our tokens.

Checked by ``read_gguf`` + ``gpt2_forward`` below: the file read back with the ``gguf`` package's reader and
run by a numpy forward (a third writing of the math, beside torch's and ONNX's), logits within 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nanochat_next.errors import UserError
from nanochat_next.export.hf_tokenizer import byte_alphabet, merges_of
from nanochat_next.tokenizer.bpe import BPETokenizer

NAMES = {"ln_1": "attn_norm", "c_attn": "attn_qkv", "attn_proj": "attn_output", "ln_2": "ffn_norm",
         "c_fc": "ffn_up", "mlp_proj": "ffn_down"}
EPS = 1e-5


def gguf_tensors(model: torch.nn.Module) -> dict[str, np.ndarray]:
    sd, vocab = model.state_dict(), model.config.vocab_size
    wte = sd["transformer.wte.weight"][:vocab]
    tensors = {"token_embd.weight": wte, "position_embd.weight": sd["transformer.wpe.weight"],
               "output_norm.weight": sd["transformer.ln_f.weight"], "output_norm.bias": sd["transformer.ln_f.bias"],
               "output.weight": wte}
    for i in range(model.config.n_layer):
        for ours, theirs in NAMES.items():
            for kind in ("weight", "bias"):
                tensors[f"blk.{i}.{theirs}.{kind}"] = sd[f"transformer.h.{i}.{ours}.{kind}"]
    return {k: v.detach().cpu().float().numpy().copy() for k, v in tensors.items()}


def export_gguf(model: torch.nn.Module, tokenizer: BPETokenizer, out: Path) -> list[Path]:
    if model.style != "classic":
        raise UserError(f"--to gguf exports the classic style (llama.cpp's gpt2); no GGUF architecture has the "
                        f"{model.style} style's math (docs/interop.md): use --to onnx or --to hf")
    from nanochat_next.export.optional import need

    gguf = need("gguf", "gguf")
    c = model.config
    out.mkdir(parents=True, exist_ok=True)
    path = out / "model.gguf"
    writer = gguf.GGUFWriter(str(path), "gpt2")
    writer.add_name("nanochat-next classic")
    writer.add_context_length(c.sequence_len)
    writer.add_embedding_length(c.n_embd)
    writer.add_feed_forward_length(4 * c.n_embd)
    writer.add_block_count(c.n_layer)
    writer.add_head_count(c.n_head)
    writer.add_layer_norm_eps(EPS)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    alphabet = byte_alphabet()
    names = ["".join(alphabet[b] for b in tb) for tb in tokenizer.token_bytes]
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(names + list(tokenizer.special_tokens))
    specials = len(tokenizer.special_tokens)
    writer.add_token_types([gguf.TokenType.NORMAL] * len(names) + [gguf.TokenType.CONTROL] * specials)
    writer.add_token_merges([f"{names[a]} {names[b]}" for a, b in merges_of(tokenizer.token_bytes)])
    writer.add_bos_token_id(tokenizer.bos_id)
    writer.add_eos_token_id(tokenizer.bos_id)
    writer.add_add_bos_token(False)
    for name, array in gguf_tensors(model).items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return [path]


def read_gguf(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(hyperparameters, tensors) of a gpt2 GGUF file, with the gguf package's reader."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    fields = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("tokenizer.")}
    if fields.get("general.architecture") != "gpt2":
        raise UserError(f"{path} is a {fields.get('general.architecture')} model, not gpt2")
    # the reader gives ggml's dimension order (innermost first): reversed, it is PyTorch's
    tensors = {t.name: np.asarray(t.data, dtype=np.float32).reshape(tuple(reversed(t.shape))) for t in reader.tensors}
    return fields, tensors


def gpt2_forward(hparams: dict, w: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """Logits (T, vocab) of GPT-2 in numpy, from the GGUF tensors: the math llama.cpp's gpt2 graph runs."""
    n_head, n_layer = hparams["gpt2.attention.head_count"], hparams["gpt2.block_count"]

    def norm(x, name):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + EPS) * w[f"{name}.weight"] + w[f"{name}.bias"]

    def linear(x, name):
        return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]

    n = len(ids)
    x = w["token_embd.weight"][ids] + w["position_embd.weight"][:n]
    causal = np.triu(np.full((n, n), -np.inf, dtype=np.float32), 1)
    for i in range(n_layer):
        q, k, v = np.split(linear(norm(x, f"blk.{i}.attn_norm"), f"blk.{i}.attn_qkv"), 3, axis=-1)
        d = q.shape[-1] // n_head
        q, k, v = (t.reshape(n, n_head, d).transpose(1, 0, 2) for t in (q, k, v))
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(d) + causal
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        y = (scores / scores.sum(-1, keepdims=True)) @ v
        x = x + linear(y.transpose(1, 0, 2).reshape(n, n_head * d), f"blk.{i}.attn_output")
        h = linear(norm(x, f"blk.{i}.ffn_norm"), f"blk.{i}.ffn_up")
        h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h**3)))
        x = x + linear(h, f"blk.{i}.ffn_down")
    return norm(x, "output_norm") @ w["output.weight"].T
