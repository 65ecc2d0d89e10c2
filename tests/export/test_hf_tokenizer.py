"""tokenizer.json: the Hugging Face tokenizers library (Rust) and transformers encode exactly as our tokenizer
(tiktoken) does, on tinyshakespeare's validation split and on adversarial unicode; specials only when allowed."""

from __future__ import annotations

import json

import pytest

from nanochat_next.corpus import train_val_split
from nanochat_next.export.formats import tokenizer_texts
from nanochat_next.export.hf_tokenizer import byte_alphabet, merges_of, tokenizer_json, write_hf_tokenizer
from nanochat_next.tokenizer.bpe import BPETokenizer

tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def trained(shakespeare_docs) -> tuple[BPETokenizer, list[str]]:
    train, val = train_val_split(shakespeare_docs)
    return BPETokenizer.train(train, 4096), val


def hf_tokenizer(tokenizer: BPETokenizer, specials_as_text: bool = True):
    hf = tokenizers.Tokenizer.from_str(json.dumps(tokenizer_json(tokenizer)))
    hf.encode_special_tokens = specials_as_text
    return hf


def test_byte_alphabet_is_a_printable_bijection():
    alphabet = byte_alphabet()
    assert len(set(alphabet.values())) == 256 and all(c.isprintable() and not c.isspace() for c in alphabet.values())
    assert alphabet[ord("A")] == "A" and alphabet[ord(" ")] == "Ġ"  # GPT-2's choice, which every loader expects


def test_merges_rebuild_every_token_in_rank_order(trained):
    tokenizer, _ = trained
    merges = merges_of(tokenizer.token_bytes)
    built = {tokenizer.token_bytes[a] + tokenizer.token_bytes[b] for a, b in merges}
    assert built == set(tokenizer.token_bytes[256:])  # every merged token, and nothing else
    rank = {tb: i for i, tb in enumerate(tokenizer.token_bytes)}
    made = [rank[tokenizer.token_bytes[a] + tokenizer.token_bytes[b]] for a, b in merges]
    assert made == sorted(made) and all(max(a, b) < m for (a, b), m in zip(merges, made))


def test_validation_split_encodes_identically(trained):
    tokenizer, val = trained
    hf = hf_tokenizer(tokenizer)
    ours = tokenizer.encode_batch(val)
    theirs = [e.ids for e in hf.encode_batch(val, add_special_tokens=False)]
    assert sum(map(len, ours)) > 20_000  # the whole split, ~25k tokens
    assert [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b] == []
    assert hf.decode(ours[0], skip_special_tokens=False) == val[0]


@pytest.mark.parametrize("text", tokenizer_texts())
def test_adversarial_unicode_encodes_and_decodes_identically(trained, text):
    tokenizer, _ = trained
    hf = hf_tokenizer(tokenizer)
    assert hf.encode(text, add_special_tokens=False).ids == tokenizer.encode(text)
    assert hf.decode(tokenizer.encode(text), skip_special_tokens=False) == text


def test_special_tokens_only_when_allowed(trained):
    tokenizer, _ = trained
    text = "<|bos|>Hello<|user_start|> there<|assistant_end|>"
    assert hf_tokenizer(tokenizer, True).encode(text).ids == tokenizer.encode(text)  # plain text
    allowed = hf_tokenizer(tokenizer, False).encode(text).ids
    assert allowed == tokenizer.encode(text, allow_special=True)
    assert tokenizer.bos_id in allowed and tokenizer.bos_id not in tokenizer.encode(text)


def test_transformers_loads_the_files_as_a_fast_tokenizer(trained, tmp_path):
    transformers = pytest.importorskip("transformers")
    tokenizer, val = trained
    write_hf_tokenizer(tokenizer, tmp_path, 256)
    fast = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert fast.is_fast and fast.bos_token_id == tokenizer.bos_id and len(fast) == tokenizer.vocab_size
    assert fast(val[1], add_special_tokens=False)["input_ids"] == tokenizer.encode(val[1])
    assert fast.decode(tokenizer.encode(val[1])) == val[1]


@pytest.mark.parametrize("conversation", [
    [{"role": "user", "content": "Who are you?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Spell 'cat'."},
     {"role": "assistant", "content": "c-a-t"}, {"role": "user", "content": "Now 'dog', ünïcödé 👍"}],
])
def test_the_chat_template_renders_as_ours(trained, tmp_path, conversation):
    """A chat model exported to Hugging Face renders conversations with nanochat's template: transformers'
    apply_chat_template gives the ids of our renderer (for a reply, and for a whole conversation)."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("jinja2")
    from nanochat_next.tokenizer.chat_template import render_conversation, render_for_reply

    tokenizer, _ = trained
    write_hf_tokenizer(tokenizer, tmp_path, 256)
    fast = transformers.AutoTokenizer.from_pretrained(tmp_path)
    ids = fast.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else list(ids)  # a BatchEncoding in newer transformers
    assert ids == render_for_reply({"messages": conversation}, tokenizer)
    if conversation[-1]["role"] == "user":
        whole = [*conversation, {"role": "assistant", "content": "ok"}]
        ids = fast.apply_chat_template(whole, tokenize=True)
        ids = ids["input_ids"] if hasattr(ids, "keys") else list(ids)  # a BatchEncoding in newer transformers
        assert ids == render_conversation({"messages": whole}, tokenizer)[0]
