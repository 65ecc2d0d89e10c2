"""Our pure-Python BPE trainer against rustbpe, the reference: identical vocabularies, merge for merge.

rustbpe exposes its result as token bytes by id (get_mergeable_ranks), so "identical merges" is checked
as identical (token bytes, id) lists: id 256 + i is the i-th merge, and its bytes are its two parts.
"""

from __future__ import annotations

import pytest
import rustbpe
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from nanochat_next.tokenizer.bpe import BPETokenizer
from nanochat_next.tokenizer.bpe_train import SPLIT_PATTERN, count_chunks, merges_to_token_bytes, train_merges


def rustbpe_token_bytes(texts: list[str], num_tokens: int) -> list[bytes]:
    tok = rustbpe.Tokenizer()
    tok.train_from_iterator(iter(texts), num_tokens, pattern=SPLIT_PATTERN)
    ranks = sorted(tok.get_mergeable_ranks(), key=lambda r: r[1])
    assert [i for _, i in ranks] == list(range(len(ranks)))
    return [bytes(b) for b, _ in ranks]


def python_token_bytes(texts: list[str], num_tokens: int) -> list[bytes]:
    return merges_to_token_bytes(train_merges(texts, num_tokens - 256))


def assert_same_vocab(ours: list[bytes], theirs: list[bytes]) -> None:
    assert len(ours) == len(theirs), f"{len(ours)} tokens vs rustbpe's {len(theirs)}"
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a == b, f"first difference at token id {i}: ours {a!r}, rustbpe {b!r}"


@pytest.mark.parametrize("num_tokens", [300, 512, 1024, 4087])
def test_merges_identical_to_rustbpe_on_tinyshakespeare(shakespeare_docs, num_tokens):
    assert_same_vocab(python_token_bytes(shakespeare_docs, num_tokens),
                      rustbpe_token_bytes(shakespeare_docs, num_tokens))


def test_merges_identical_when_trained_on_one_big_string(shakespeare_text):
    text = shakespeare_text[:200_000]
    assert_same_vocab(python_token_bytes([text], 1024), rustbpe_token_bytes([text], 1024))


ADVERSARIAL_DOCS = [
    "",  # empty documents
    "",
    "naïve café — résumé, Ångström, Straße, İstanbul, ǅemal",
    "日本語のテキスト、中文文本，한국어 텍스트",
    "emoji 👩‍👩‍👧‍👦 family, flags 🇫🇷🇯🇵, skin tones 👍🏽👍🏿, 🎉🎉🎉🎉",
    "windows\r\nline\r\nendings\r\n\r\n\r\nand old mac\rreturns\r",
    "digits 1234567890 00000000000000 3.14159265358979 1,000,000 ٣٤٥ ①②③",
    "spaces      and\t\ttabs \t \t and trailing     \n\n\n\n   \n",
    "\u00a0non-breaking\u2009thin\u3000ideographic\u200bzero-width\u2028line sep\u2029para",
    "\x1c\x1d\x1e\x1f control separators \x00 nul \x7f del \x0b\x0c vt ff",
    "combining: e\u0301 a\u0308 o\u0302\u0323, RTL: שלום עולם مرحبا بالعالم",
    "contractions: I'm you're he'll they've we'd IT'S DON'T 'tis o'clock",
    "<|bos|> special-looking <|user_start|> text <|assistant_end|>",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "abababababababababababab abab abab ab ab ab",
    "!!!???...,,,;;;:::---___***&&&%%%$$$###@@@",
    "mixed123abc456def 7x 8y9z",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𝒮𝒸𝓇𝒾𝓅𝓉 \U0010fffd \ufeff BOM",
]


@pytest.mark.parametrize("num_tokens", [256, 257, 300, 600, 2000])
def test_merges_identical_on_adversarial_text(num_tokens):
    docs = ADVERSARIAL_DOCS * 3 + [d[::-1] for d in ADVERSARIAL_DOCS]
    ours, theirs = python_token_bytes(docs, num_tokens), rustbpe_token_bytes(docs, num_tokens)
    assert_same_vocab(ours, theirs)
    if num_tokens == 2000:
        assert len(ours) < 2000, "this small text should run out of pairs before 2000 tokens"


def test_regex_chunks_match_tiktoken_on_adversarial_text():
    # tiktoken and rustbpe use fancy-regex; we use Python's `regex`. With no merges, BPE is the identity
    # on bytes, so tiktoken's token ids are exactly the bytes of each chunk: compare the splits through that.
    enc = tiktoken.Encoding("bytes-only", pat_str=SPLIT_PATTERN,
                            mergeable_ranks={bytes([i]): i for i in range(256)}, special_tokens={})
    import regex

    for doc in ADVERSARIAL_DOCS:
        ours = [list(chunk.encode("utf-8")) for chunk in regex.findall(SPLIT_PATTERN, doc)]
        assert sum(ours, []) == enc.encode_ordinary(doc)
    assert count_chunks(["a b", "a"])["a"] == 2


@settings(max_examples=60, deadline=None)
@given(docs=st.lists(st.text(alphabet=st.sampled_from("ab c\n1é😀'"), max_size=40), max_size=12),
       extra=st.integers(min_value=0, max_value=60))
def test_merges_identical_on_random_small_corpora(docs, extra):
    # tiny alphabets make many pairs tie on count: this is where the tie-breaking rule shows
    num_tokens = 256 + extra
    assert_same_vocab(python_token_bytes(docs, num_tokens), rustbpe_token_bytes(docs, num_tokens))


def test_tiktoken_encoding_equals_rustbpe_encode(shakespeare_docs):
    # encoding by tiktoken over our ranks gives rustbpe's own merge-order encoding
    train, held_out = shakespeare_docs[:2000], shakespeare_docs[-200:] + ADVERSARIAL_DOCS
    rust = rustbpe.Tokenizer()
    rust.train_from_iterator(iter(train), 1024 - 9, pattern=SPLIT_PATTERN)
    ours = BPETokenizer.train(train, 1024, trainer="python")
    for doc in held_out:
        assert ours.encode(doc) == rust.encode(doc)


def test_fast_path_and_python_trainer_give_the_same_tokenizer(shakespeare_docs):
    fast = BPETokenizer.train(shakespeare_docs, 2048, trainer="rustbpe")
    slow = BPETokenizer.train(shakespeare_docs, 2048, trainer="python")
    assert fast.token_bytes == slow.token_bytes
    assert fast.special_tokens == slow.special_tokens
