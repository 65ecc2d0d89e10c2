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

from nanochat_next.errors import UserError
from nanochat_next.tokenizer.bpe import BPETokenizer, rustbpe_shortfall
from nanochat_next.tokenizer.bpe_train import SPLIT_PATTERN, count_chunks, merges_to_token_bytes, train_merges
from nanochat_next.tokenizer.split import TiktokenSplitter


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


def tiktoken_chunks(chunks: list[str]) -> list[bytes]:
    """tiktoken's tokens of the text made of ``chunks``, with every prefix of every chunk and of every two
    adjacent chunks as tokens (and nothing else). Inside one of tiktoken's chunks the leftmost token is always a
    prefix that can absorb its neighbour, so each chunk of tiktoken's comes out as ONE token if it is one of
    ours or two of ours joined, and as pieces otherwise: the tokens equal ``chunks`` exactly when the splits
    agree (finer and coarser splits both show)."""
    ranks = {bytes([i]): i for i in range(256)}
    for chunk in [*chunks, *(a + b for a, b in zip(chunks, chunks[1:]))]:
        full = chunk.encode("utf-8", "surrogatepass")
        for end in range(2, len(full) + 1):
            ranks.setdefault(full[:end], len(ranks))
    enc = tiktoken.Encoding("chunk-probe", pat_str=SPLIT_PATTERN, mergeable_ranks=ranks, special_tokens={})
    return [enc.decode_single_token_bytes(t) for t in enc.encode_ordinary("".join(chunks))]


def our_chunks(text: str) -> list[str]:
    return TiktokenSplitter(SPLIT_PATTERN).split(text)


def test_regex_chunks_match_tiktoken_on_adversarial_text():
    for doc in ADVERSARIAL_DOCS:
        ours = our_chunks(doc)
        assert "".join(ours) == doc
        assert [c.encode("utf-8") for c in ours] == tiktoken_chunks(ours), doc
    assert count_chunks(["a b", "a"])["a"] == 2


def test_the_chunk_comparison_sees_a_different_split():
    # one character per chunk covers the text like the real split does, but cuts it differently
    assert tiktoken_chunks(list("Hello world")) != [c.encode() for c in "Hello world"]
    assert tiktoken_chunks(["Hello", " world"]) == [b"Hello", b" world"]


def test_a_letter_newer_than_the_rust_tables_splits_like_tiktoken():
    # U+323B0 (CJK Extension J, Unicode 17): a letter to a current `regex`, unassigned to an older Rust engine
    docs = ["A\U000323B0 " * 20 + "A\U000323B0"]
    assert python_token_bytes(docs, 260) == rustbpe_token_bytes(docs, 260)
    assert [c.encode() for c in our_chunks(docs[0])] == tiktoken_chunks(our_chunks(docs[0]))


@pytest.mark.slow
def test_every_code_point_splits_like_tiktoken():
    """The whole code-point space, in blocks: a character after a letter, after a digit and alone, as our
    Python split and tiktoken cut it. A `regex` or tiktoken upgrade with other Unicode tables fails here."""
    splitter = TiktokenSplitter(SPLIT_PATTERN)
    block = 4096
    for start in range(0x80, 0x110000, block):
        chars = [chr(c) for c in range(start, min(start + block, 0x110000)) if not 0xD800 <= c <= 0xDFFF]
        text = "\n".join(f"A{c}x1{c} {c}" for c in chars)
        ours = splitter.split(text)
        assert [c.encode("utf-8", "surrogatepass") for c in ours] == tiktoken_chunks(ours), f"block {start:#x}"


def test_whitespace_runs_the_rust_engine_cannot_split_are_one_clear_error():
    tok = BPETokenizer.train(["hello world " * 50], 300)
    long_run = "a" + " " * 1_000_000 + "b"
    for call in (lambda: tok.encode(long_run), lambda: tok.encode_batch([long_run]),
                 lambda: BPETokenizer.train([long_run], 300)):
        with pytest.raises(UserError, match="run of 1,000,000 whitespace characters"):
            call()
    assert tok.decode(tok.encode("a" + "\t" * 900_000 + "b")) == "a" + "\t" * 900_000 + "b"  # below the limit
    assert BPETokenizer.train([long_run, "hello"], 265, trainer="python").vocab_size == 265  # Python copes


def test_rustbpe_overflow_is_named_not_silent():
    assert rustbpe_shortfall(100, 100, 10**10) is None  # all merges learned
    assert rustbpe_shortfall(40, 100, 10**6) is None  # a small text ran out of pairs: normal
    assert "2^31-1" in rustbpe_shortfall(0, 100, 2**31)  # a huge text and no merges: the 32-bit counters


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
