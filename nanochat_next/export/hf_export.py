"""``export --to hf``: a directory ``transformers`` loads with ``AutoModelForCausalLM.from_pretrained``.

- classic style: the stock ``GPT2LMHeadModel`` (no remote code). Its math is ours exactly: learned positions,
  LayerNorm eps 1e-5, GELU with the tanh approximation (``gelu_new``), attention scaled by 1/sqrt(head_dim),
  biases everywhere, the head tied to the embedding. Two translations: GPT-2 stores linear weights transposed
  (its ``Conv1D``), and the embedding keeps only the real vocabulary (our padding rows to a multiple of 64 are
  never read as inputs; dropped, so the tied head yields exactly our logits, no phantom tokens).
- modern style (nanochat's model, every recipe feature): a custom architecture, ``model_type``
  ``nanochat_next``, whose code (hf_modeling.py + portable.py) is written into the directory: load it with
  ``trust_remote_code=True``. transformers' own ``NanoChat`` class lacks value embeddings, the residual
  lambdas and sliding windows, so it cannot hold this model.

Both get the tokenizer as ``PreTrainedTokenizerFast`` files (hf_tokenizer.py).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import torch

from nanochat_next.atomic import write_text, write_with
from nanochat_next.export.hf_tokenizer import write_hf_tokenizer
from nanochat_next.tokenizer.bpe import BPETokenizer

HERE = Path(__file__).parent


def save_tensors(path: Path, state: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().clone().contiguous() for k, v in state.items()}  # tied tensors saved as copies
    write_with(path, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))


def gpt2_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Our classic GPT's weights under GPT2LMHeadModel's names and layouts."""
    vocab, sd = model.config.vocab_size, model.state_dict()
    state = {"transformer.wte.weight": sd["transformer.wte.weight"][:vocab],
             "transformer.wpe.weight": sd["transformer.wpe.weight"],
             "transformer.ln_f.weight": sd["transformer.ln_f.weight"],
             "transformer.ln_f.bias": sd["transformer.ln_f.bias"]}
    names = {"ln_1": "ln_1", "ln_2": "ln_2", "c_attn": "attn.c_attn", "attn_proj": "attn.c_proj",
             "c_fc": "mlp.c_fc", "mlp_proj": "mlp.c_proj"}
    for i in range(model.config.n_layer):
        for ours, theirs in names.items():
            for kind in ("weight", "bias"):
                tensor = sd[f"transformer.h.{i}.{ours}.{kind}"]
                is_matrix = kind == "weight" and not ours.startswith("ln_")
                state[f"transformer.h.{i}.{theirs}.{kind}"] = tensor.t() if is_matrix else tensor  # Conv1D: (in, out)
    state["lm_head.weight"] = state["transformer.wte.weight"]
    return state


def gpt2_config(model: torch.nn.Module, tokenizer: BPETokenizer) -> dict:
    c = model.config
    return {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": c.vocab_size,
            "n_positions": c.sequence_len, "n_ctx": c.sequence_len, "n_embd": c.n_embd, "n_layer": c.n_layer,
            "n_head": c.n_head, "n_inner": None, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
            "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "scale_attn_weights": True,
            "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
            "tie_word_embeddings": True, "bos_token_id": tokenizer.bos_id, "eos_token_id": tokenizer.bos_id,
            "torch_dtype": "float32"}


def custom_config(model: torch.nn.Module, tokenizer: BPETokenizer) -> dict:
    c = model.config
    return {"model_type": "nanochat_next", "architectures": ["NanochatNextForCausalLM"],
            "auto_map": {"AutoConfig": "modeling_nanochat_next.NanochatNextConfig",
                         "AutoModelForCausalLM": "modeling_nanochat_next.NanochatNextForCausalLM"},
            "style": model.style, "model_config": asdict(c), "vocab_size": c.vocab_size,
            "max_position_embeddings": c.sequence_len, "tie_word_embeddings": c.tie_embeddings,
            "bos_token_id": tokenizer.bos_id, "eos_token_id": tokenizer.bos_id, "torch_dtype": "float32"}


def export_hf(model: torch.nn.Module, tokenizer: BPETokenizer, out: Path) -> list[Path]:
    """Write the directory; return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    if model.style == "classic":
        config, state = gpt2_config(model, tokenizer), gpt2_state(model)
        code = []
    else:
        config = custom_config(model, tokenizer)
        state = {f"model.{k}": v for k, v in model.state_dict().items()}
        code = [out / "modeling_nanochat_next.py", out / "portable.py"]
        shutil.copyfile(HERE / "hf_modeling.py", code[0])
        shutil.copyfile(HERE / "portable.py", code[1])
    save_tensors(out / "model.safetensors", state)
    write_text(out / "config.json", json.dumps(config, indent=2) + "\n")
    generation = {"bos_token_id": tokenizer.bos_id, "eos_token_id": [tokenizer.bos_id,
                  tokenizer.special_id("<|assistant_end|>")], "use_cache": model.style == "classic"}
    write_text(out / "generation_config.json", json.dumps(generation, indent=2) + "\n")
    tokenizer_files = write_hf_tokenizer(tokenizer, out, model.config.sequence_len)
    return [out / "config.json", out / "generation_config.json", out / "model.safetensors", *code, *tokenizer_files]
