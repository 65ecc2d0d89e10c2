"""Our BPE as a Hugging Face ``tokenizer.json``: the file the ``tokenizers`` library (Rust/Python),
transformers' ``PreTrainedTokenizerFast`` and tokenizers.js (browser, Node) load.

The translation, piece by piece:

- pre-tokenizer: split the text with our regex (the same pattern tiktoken uses), then map every byte to a
  printable character (GPT-2's byte-level alphabet), so token strings are text;
- model: BPE over those characters. tiktoken merges by the rank of the *merged token*; a HF BPE merges by
  the rank of the *pair*. Every way to write token ``t`` as two tokens of lower rank becomes a merge, ordered
  by ``t``'s rank (then by the ranks of its parts): the pair HF picks next is then always one tiktoken picks.
  (Checked on tinyshakespeare and adversarial unicode by tests/export/test_hf_tokenizer.py.)
- special tokens: added tokens with their ids. The ``tokenizers`` library matches them in text by default
  (our ``allow_special=True``); set ``tokenizer.encode_special_tokens = True`` to read them as plain text (our
  default).
- decoder: byte-level, so decoding returns the exact bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

from nanochat_next.atomic import write_text
from nanochat_next.tokenizer.bpe import BPETokenizer


def byte_alphabet() -> dict[int, str]:
    """GPT-2's map from each byte to a printable unicode character (printable Latin-1 bytes map to
    themselves, the other 68 to U+0100 onwards): what ``ByteLevel`` pre-tokenizers and decoders use."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def merges_of(token_bytes: list[bytes]) -> list[tuple[int, int]]:
    """Merge pairs (left id, right id) in priority order, from the ranks alone (see the module docstring)."""
    rank = {tb: i for i, tb in enumerate(token_bytes)}
    merges = []
    for r, tb in enumerate(token_bytes[256:], start=256):
        pairs = [(rank[tb[:cut]], rank[tb[cut:]]) for cut in range(1, len(tb))
                 if rank.get(tb[:cut], r) < r and rank.get(tb[cut:], r) < r]
        merges.extend(sorted(pairs))
    return merges


def tokenizer_json(tokenizer: BPETokenizer) -> dict:
    """The tokenizer.json document (a dict) for ``tokenizer``."""
    alphabet = byte_alphabet()
    names = ["".join(alphabet[b] for b in tb) for tb in tokenizer.token_bytes]
    special = [{"id": i, "content": name, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": True} for name, i in tokenizer.special_tokens.items()]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": special,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": tokenizer.pattern}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {name: i for i, name in enumerate(names)},
                  "merges": [[names[a], names[b]] for a, b in merges_of(tokenizer.token_bytes)]},
    }


# nanochat's chat template (tokenizer.chat_template.render_for_reply) in Jinja, for transformers'
# apply_chat_template: <|bos|>, each user turn in <|user_start|> ... <|user_end|> (a leading system message merged
# into the first one, "system\n\nuser"), each assistant turn in <|assistant_start|> ... <|assistant_end|>, and
# <|assistant_start|> at the end when a reply is wanted. Rendered as text, then tokenized: the markers are the
# added special tokens (transformers matches them), the contents plain text, so the ids equal ours (tested)
CHAT_TEMPLATE = (
    "{%- set ns = namespace(system='') -%}"
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{%- set ns.system = message['content'] + '\n\n' -%}"
    "{%- elif message['role'] == 'user' -%}"
    "{{- '<|user_start|>' + ns.system + message['content'] + '<|user_end|>' -}}{%- set ns.system = '' -%}"
    "{%- else -%}{{- '<|assistant_start|>' + message['content'] + '<|assistant_end|>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant_start|>' -}}{%- endif -%}"
)


def tokenizer_config(tokenizer: BPETokenizer, max_length: int) -> dict:
    """tokenizer_config.json: what transformers and tokenizers.js read beside tokenizer.json (the chat template
    included, for models fine-tuned to chat; a base model has it too, it is the tokenizer's format)."""
    return {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|bos|>", "eos_token": "<|bos|>",
            "model_max_length": max_length, "clean_up_tokenization_spaces": False,
            "additional_special_tokens": [t for t in tokenizer.special_tokens if t != "<|bos|>"],
            "chat_template": CHAT_TEMPLATE}


def write_hf_tokenizer(tokenizer: BPETokenizer, directory: Path, max_length: int) -> list[Path]:
    """tokenizer.json + tokenizer_config.json + special_tokens_map.json into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {"tokenizer.json": tokenizer_json(tokenizer),
             "tokenizer_config.json": tokenizer_config(tokenizer, max_length),
             "special_tokens_map.json": {"bos_token": "<|bos|>", "eos_token": "<|bos|>"}}
    for name, doc in files.items():
        write_text(directory / name, json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    return [directory / name for name in files]
