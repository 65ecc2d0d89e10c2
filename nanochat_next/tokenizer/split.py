"""Splitting text into chunks exactly as tiktoken and rustbpe do, on every code point.

BPE never merges across the chunks the split pattern cuts (``bpe_train.SPLIT_PATTERN``). Python's ``regex``
module and the Rust regex engine inside tiktoken and rustbpe each carry their own Unicode tables. When one is
newer, a character assigned in the newer Unicode version (e.g. CJK Extension J, U+323B0..U+33479, in
Unicode 17) is a letter (``\\p{L}``) to one engine and an unassigned code point to the other: the same text
then splits differently, and the Python trainer would learn merges that the encoder never applies.

So the Python side asks tiktoken itself how it classifies each non-ASCII character it meets (once per
distinct character), and before splitting with ``regex`` replaces every character on which the two engines
disagree by a stand-in of the class tiktoken sees: a letter, a number, or a code point unassigned in every
Unicode version so far. Stand-ins are single code points, so the match positions are unchanged and the
chunks are cut from the original text.

How tiktoken's class is read: a probe encoding whose only multi-byte tokens are the prefixes of ``"A" + c``
(and of ``"1" + c``). ``"A" + c`` comes out as one token exactly when tiktoken's split keeps it in one chunk,
which happens exactly when ``c`` is a letter (``\\p{L}+``); ``"1" + c`` when ``c`` is a number (``\\p{N}{1,2}``).
"""

from __future__ import annotations

from collections.abc import Iterable

import regex

STAND_INS = {"L": "a", "N": "0", "": "\u0378"}  # a letter, a number, a code point unassigned in all versions


def python_class(c: str) -> str:
    """'L', 'N' or '' for a character, as the ``regex`` module classifies it."""
    if regex.fullmatch(r"\p{L}", c):
        return "L"
    return "N" if regex.fullmatch(r"\p{N}", c) else ""


def whole_tokens(texts: list[str], pattern: str) -> set[bytes]:
    """Which of ``texts`` tiktoken keeps as one chunk each, under ``pattern``: every prefix of every text is a
    token (and nothing else but the 256 bytes), so a text is one token exactly when it is one chunk."""
    import tiktoken

    ranks = {bytes([i]): i for i in range(256)}
    for text in texts:
        full = text.encode("utf-8")
        for end in range(2, len(full) + 1):
            ranks.setdefault(full[:end], len(ranks))
    enc = tiktoken.Encoding("split-probe", pat_str=pattern, mergeable_ranks=ranks, special_tokens={})
    tokens = enc.encode_ordinary("\n".join(texts))  # a newline is a chunk of its own between the texts
    return {enc.decode_single_token_bytes(t) for t in tokens}


def tiktoken_classes(chars: Iterable[str], pattern: str) -> dict[str, str]:
    """'L', 'N' or '' for each character, as tiktoken's regex engine classifies it."""
    chars = list(chars)
    letters = whole_tokens([f"A{c}" for c in chars], pattern)
    numbers = whole_tokens([f"1{c}" for c in chars], pattern)
    return {c: "L" if f"A{c}".encode() in letters else "N" if f"1{c}".encode() in numbers else "" for c in chars}


class TiktokenSplitter:
    """``split(text)``: the chunks of ``text`` that tiktoken's engine would cut, computed with ``regex``."""

    def __init__(self, pattern: str):
        self.pattern = pattern
        self.compiled = regex.compile(pattern)
        self.known: set[str] = set()  # non-ASCII characters already classified
        self.table: dict[int, str] = {}  # code point -> stand-in, for the characters the engines disagree on

    def learn(self, text: str) -> None:
        new = {c for c in set(text) if ord(c) > 127} - self.known
        if not new:
            return
        for c, theirs in tiktoken_classes(sorted(new), self.pattern).items():
            if theirs != python_class(c):
                self.table[ord(c)] = STAND_INS[theirs]
        self.known |= new

    def split(self, text: str) -> list[str]:
        self.learn(text)
        mapped = text.translate(self.table) if self.table else text
        return [text[m.start():m.end()] for m in self.compiled.finditer(mapped)]
