from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nanochat_next.errors import UserError
from nanochat_next.tokenizer.bpe import MIN_VOCAB_SIZE, SPECIAL_TOKENS, BPETokenizer


@pytest.fixture(scope="module")
def tok(shakespeare_docs) -> BPETokenizer:
    return BPETokenizer.train(shakespeare_docs[:3000], 1024)


def test_vocabulary_layout(tok):
    assert tok.vocab_size == 1024
    assert tok.num_merges == 1024 - 256 - len(SPECIAL_TOKENS)
    assert list(tok.special_tokens) == SPECIAL_TOKENS
    assert tok.bos_id == 1024 - len(SPECIAL_TOKENS)
    assert sorted(tok.special_tokens.values()) == list(range(tok.bos_id, 1024))
    assert tok.token_bytes[:256] == [bytes([i]) for i in range(256)]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_encode_decode_round_trip_on_arbitrary_unicode(tok, text):
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert all(0 <= i < tok.bos_id for i in ids), "plain text must never produce a special token"


@settings(max_examples=100, deadline=None)
@given(st.text(), st.sampled_from(SPECIAL_TOKENS), st.text())
def test_special_tokens_only_when_allowed(tok, before, special, after):
    text = before + special + after
    plain = tok.encode(text)
    assert not set(plain) & set(tok.special_tokens.values())
    assert tok.decode(plain) == text
    allowed = tok.encode(text, allow_special=True)
    assert tok.special_id(special) in allowed
    assert tok.decode(allowed) == text


def test_prepend_bos_and_batch(tok):
    assert tok.encode("hi", prepend_bos=True) == [tok.bos_id, *tok.encode("hi")]
    docs = ["First Citizen:\n", "", "naïve 👍"]
    assert tok.encode_batch(docs, prepend_bos=True) == [tok.encode(d, prepend_bos=True) for d in docs]


def test_decode_of_a_cut_character_is_replacement_not_crash(tok):
    first_byte = "👍".encode()[0]  # a lone lead byte of a 4-byte character
    assert tok.decode_bytes([first_byte]) == bytes([first_byte])
    assert tok.decode([first_byte]) == "\ufffd"
    assert tok.decode_bytes(tok.encode("👍")) == "👍".encode()
    with pytest.raises(UserError, match="outside this tokenizer's vocabulary"):
        tok.decode([tok.vocab_size])
    with pytest.raises(UserError, match="outside"):
        tok.decode([-1])


def test_token_byte_lengths_weight_specials_zero(tok):
    lengths = tok.token_byte_lengths()
    assert len(lengths) == tok.vocab_size
    assert lengths[: tok.bos_id] == [len(b) for b in tok.token_bytes]
    assert lengths[tok.bos_id:] == [0] * len(SPECIAL_TOKENS)
    text = "To be, or not to be: that is the question."
    assert sum(lengths[i] for i in tok.encode(text, prepend_bos=True)) == len(text.encode("utf-8"))


def test_save_load_round_trip_is_exact(tok, tmp_path, shakespeare_docs):
    tok.save(tmp_path / "t")
    files = sorted(p.name for p in (tmp_path / "t").iterdir())
    assert files == ["tokenizer.json", "tokenizer.tiktoken"]
    back = BPETokenizer.load(tmp_path / "t")
    assert back.token_bytes == tok.token_bytes
    assert back.special_tokens == tok.special_tokens
    assert back.pattern == tok.pattern
    for doc in shakespeare_docs[-50:]:
        assert back.encode(doc) == tok.encode(doc)
    # the ranks file is tiktoken's own text format, so tiktoken's loader reads it too
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(str(tmp_path / "t" / "tokenizer.tiktoken"))
    assert ranks == {b: i for i, b in enumerate(tok.token_bytes)}


def test_load_detects_damage(tok, tmp_path):
    d = tok.save(tmp_path / "t")
    ranks = d / "tokenizer.tiktoken"
    ranks.write_text(ranks.read_text()[:-10])  # truncated
    with pytest.raises(UserError, match="damaged.*sha256"):
        BPETokenizer.load(d)
    tok.save(d)
    meta = json.loads((d / "tokenizer.json").read_text())
    del meta["pattern"]
    (d / "tokenizer.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="lacks pattern"):
        BPETokenizer.load(d)
    (d / "tokenizer.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        BPETokenizer.load(d)
    with pytest.raises(UserError, match="no tokenizer at"):
        BPETokenizer.load(tmp_path / "nowhere")


@pytest.mark.parametrize("trainer", ["rustbpe", "python"])
def test_bad_training_input(trainer):
    with pytest.raises(UserError, match=f"at least\\s*{MIN_VOCAB_SIZE}|{MIN_VOCAB_SIZE} at least"):
        BPETokenizer.train(["hello"], MIN_VOCAB_SIZE - 1, trainer=trainer)
    with pytest.raises(UserError, match="empty"):
        BPETokenizer.train([], 300, trainer=trainer)
    with pytest.raises(UserError, match="empty"):
        BPETokenizer.train(["", ""], 300, trainer=trainer)
    with pytest.raises(UserError, match="must be str"):
        BPETokenizer.train([b"bytes"], 300, trainer=trainer)
    with pytest.raises(UserError, match="unknown trainer"):
        BPETokenizer.train(["x"], 300, trainer="sentencepiece")


def test_minimum_vocab_has_no_merges():
    tok = BPETokenizer.train(["abc abc"], MIN_VOCAB_SIZE)
    assert tok.num_merges == 0 and tok.vocab_size == MIN_VOCAB_SIZE
    assert tok.encode("ab") == [97, 98]
