"""The GPT-4 style byte-level BPE tokenizer with nanochat's split pattern and special tokens.

- Training: ``BPETokenizer.train(texts, vocab_size)``. ``vocab_size`` counts everything, special tokens
  included (as in nanochat): ``vocab_size - 9`` byte and merge tokens are learned. The default trainer is
  rustbpe (fast, Rust); ``trainer="python"`` uses our readable trainer in ``bpe_train`` and gives the
  identical vocabulary.
- Encoding and decoding go through tiktoken, built from the learned ranks. Special tokens such as
  ``<|bos|>`` are never produced from plain text unless ``allow_special=True``.
- Saving writes a directory with two text files, so loading never needs pickle:
  ``tokenizer.tiktoken`` (tiktoken's own format: one ``base64(token bytes) id`` line per token) and
  ``tokenizer.json`` (format, pattern, special token ids and the sha256 of the ranks file).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import regex
import tiktoken

from nanochat_next.atomic import write_text
from nanochat_next.errors import UserError
from nanochat_next.tokenizer.bpe_train import SPLIT_PATTERN, merges_to_token_bytes, train_merges

SPECIAL_TOKENS = [
    "<|bos|>",  # begins every document; documents are delimited by it
    "<|user_start|>",
    "<|user_end|>",
    "<|assistant_start|>",
    "<|assistant_end|>",
    "<|python_start|>",
    "<|python_end|>",
    "<|output_start|>",
    "<|output_end|>",
]
MIN_VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)
FORMAT = "nanochat-next/bpe"
TRAINERS = ("rustbpe", "python")
# tiktoken's and rustbpe's regex engine overflows its stack on a whitespace run of about 1,000,000 characters
# (measured: 999,998 works, 1,000,000 panics); longer runs are refused before they reach it
MAX_WHITESPACE_RUN = 990_000
LONG_WHITESPACE = regex.compile(rf"\s{{{MAX_WHITESPACE_RUN},}}")
PAIR_COUNT_LIMIT = 2**31 - 1  # rustbpe counts pairs in 32-bit integers


def check_whitespace_runs(text: str) -> None:
    """Refuse (one line) a text the Rust regex engine would crash on."""
    if len(text) >= MAX_WHITESPACE_RUN and (m := LONG_WHITESPACE.search(text)):
        raise UserError(f"the text has a run of {m.end() - m.start():,} whitespace characters (at character "
                        f"{m.start():,}); tiktoken's and rustbpe's regex engine crash on runs of about 1,000,000: "
                        "shorten it")


def rust_call(call, what: str):
    """Run a call into tiktoken/rustbpe; a Rust panic (a BaseException, not an Exception) becomes one line."""
    try:
        return call()
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        first = (str(exc).splitlines() or ["?"])[0][:160]
        raise UserError(f"{what} crashed inside its Rust code ({first})") from None


def rustbpe_shortfall(learned: int, requested: int, chars: int) -> str | None:
    """Why rustbpe learned fewer merges than asked, when it is not because the text ran out of pairs: past
    2^31-1 occurrences of a pair its 32-bit counts overflow and it silently stops (only possible on text of
    at least that many bytes)."""
    if learned >= requested or chars < PAIR_COUNT_LIMIT // 4:  # a UTF-8 character has at most 4 bytes
        return None
    return (f"rustbpe learned {learned:,} of {requested:,} merges on {chars:,} characters: a pair count may have "
            "passed 2^31-1, where its 32-bit counters overflow; train on less text (--max-chars) or with "
            "--trainer python")


class BPETokenizer:
    """Token ids 0..255 are bytes, then merges in the order learned, then the special tokens."""

    def __init__(self, token_bytes: list[bytes], pattern: str = SPLIT_PATTERN,
                 special_tokens: list[str] | None = None):
        if len(token_bytes) < 256 or any(token_bytes[i] != bytes([i]) for i in range(256)):
            raise UserError("a byte-level BPE vocabulary must start with the 256 single bytes in order")
        self.token_bytes = list(token_bytes)
        self.pattern = pattern
        specials = SPECIAL_TOKENS if special_tokens is None else special_tokens
        self.special_tokens = {name: len(token_bytes) + i for i, name in enumerate(specials)}
        # two merges could in principle spell the same bytes; tiktoken's ranks then keep the later id
        ranks = {tb: i for i, tb in enumerate(token_bytes)}
        self.enc = tiktoken.Encoding(name="nanochat-next", pat_str=pattern, mergeable_ranks=ranks,
                                     special_tokens=self.special_tokens)

    # ------------------------------------------------------------------ training
    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, trainer: str = "rustbpe",
              pattern: str = SPLIT_PATTERN, progress: bool = False) -> BPETokenizer:
        """Train on an iterable of texts (documents). Fewer tokens result if the text runs out of pairs."""
        if trainer not in TRAINERS:
            raise UserError(f"unknown trainer {trainer!r}; choose one of {', '.join(TRAINERS)}")
        if not isinstance(vocab_size, int) or vocab_size < MIN_VOCAB_SIZE:
            raise UserError(f"vocab size {vocab_size} is too small: a byte-level BPE needs 256 byte tokens + "
                            f"{len(SPECIAL_TOKENS)} special tokens = {MIN_VOCAB_SIZE} at least")
        seen = _CharCounter(texts)
        num_learned = vocab_size - len(SPECIAL_TOKENS)
        if trainer == "python":
            token_bytes = merges_to_token_bytes(train_merges(seen, num_learned - 256, pattern, progress))
        else:
            import rustbpe

            rust = rustbpe.Tokenizer()
            seen.check = check_whitespace_runs
            rust_call(lambda: rust.train_from_iterator(seen, num_learned, pattern=pattern), "rustbpe training")
            token_bytes = [bytes(b) for b, _ in sorted(rust.get_mergeable_ranks(), key=lambda r: r[1])]
            shortfall = rustbpe_shortfall(len(token_bytes), num_learned, seen.chars)
            if shortfall:
                raise UserError(shortfall)
        if seen.chars == 0:
            raise UserError("the training text is empty: give a corpus with some text in it")
        return cls(token_bytes, pattern)

    # ------------------------------------------------------------------ encode / decode
    @property
    def vocab_size(self) -> int:
        return len(self.token_bytes) + len(self.special_tokens)

    @property
    def num_merges(self) -> int:
        return len(self.token_bytes) - 256

    @property
    def bos_id(self) -> int:
        return self.special_tokens["<|bos|>"]

    def special_id(self, name: str) -> int:
        if name not in self.special_tokens:
            raise UserError(f"unknown special token {name!r}; this tokenizer has {', '.join(self.special_tokens)}")
        return self.special_tokens[name]

    def encode(self, text: str, prepend_bos: bool = False, allow_special: bool = False) -> list[int]:
        """Token ids of text. Special-token strings in the text stay plain text unless allow_special."""
        check_whitespace_runs(text)
        if allow_special:
            ids = rust_call(lambda: self.enc.encode(text, allowed_special="all"), "tiktoken encoding")
        else:
            ids = rust_call(lambda: self.enc.encode_ordinary(text), "tiktoken encoding")
        return [self.bos_id, *ids] if prepend_bos else ids

    def encode_batch(self, texts: list[str], prepend_bos: bool = False, num_threads: int = 8) -> list[list[int]]:
        for text in texts:
            check_whitespace_runs(text)
        batch = rust_call(lambda: self.enc.encode_ordinary_batch(texts, num_threads=num_threads), "tiktoken encoding")
        return [[self.bos_id, *ids] for ids in batch] if prepend_bos else batch

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        ids = list(ids)
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise UserError(f"token id {bad[0]} is outside this tokenizer's vocabulary (0..{self.vocab_size - 1})")
        return self.enc.decode_bytes(ids)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ids; a byte sequence that is not valid UTF-8 (a cut multi-byte character) shows as U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def token_byte_lengths(self) -> list[int]:
        """UTF-8 byte length of every token id, 0 for special tokens (the weights of bits-per-byte)."""
        return [len(tb) for tb in self.token_bytes] + [0] * len(self.special_tokens)

    # ------------------------------------------------------------------ save / load
    def save(self, directory: str | Path) -> Path:
        """Write tokenizer.tiktoken and tokenizer.json into directory (each atomically, JSON last)."""
        try:
            return self._save(Path(directory))
        except OSError as exc:
            raise UserError(f"could not save the tokenizer to {directory} ({exc.strerror or exc})") from None

    def _save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        ranks_text = "".join(f"{base64.b64encode(tb).decode('ascii')} {i}\n" for i, tb in enumerate(self.token_bytes))
        meta = {
            "format": FORMAT,
            "version": 1,
            "pattern": self.pattern,
            "special_tokens": self.special_tokens,
            "num_merges": self.num_merges,
            "vocab_size": self.vocab_size,
            "ranks_file": "tokenizer.tiktoken",
            "ranks_sha256": hashlib.sha256(ranks_text.encode("ascii")).hexdigest(),
        }
        write_text(directory / "tokenizer.tiktoken", ranks_text)
        write_text(directory / "tokenizer.json", json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> BPETokenizer:
        directory = Path(directory)
        meta_path = directory / "tokenizer.json"
        if not meta_path.is_file():
            raise UserError(f"no tokenizer at {directory} (missing tokenizer.json); train one with "
                            f"`nanochat-next tok-train --out {directory}`")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise UserError(f"tokenizer at {directory} is damaged: tokenizer.json is not valid JSON ({exc})") from None
        if meta.get("format") != FORMAT:
            raise UserError(f"{meta_path} is not a nanochat-next BPE tokenizer (format {meta.get('format')!r})")
        missing = [k for k in ("pattern", "special_tokens", "ranks_file", "ranks_sha256") if k not in meta]
        if missing:
            raise UserError(f"tokenizer at {directory} is damaged: tokenizer.json lacks {', '.join(missing)}")
        ranks_path = directory / meta["ranks_file"]
        try:
            ranks_text = ranks_path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"tokenizer at {directory} is damaged: cannot read {ranks_path.name} ({exc})") from None
        if hashlib.sha256(ranks_text.encode("ascii")).hexdigest() != meta["ranks_sha256"]:
            raise UserError(f"tokenizer at {directory} is damaged: {ranks_path.name} does not match the sha256 "
                            "recorded in tokenizer.json; retrain or restore it")
        token_bytes = []
        for line_no, line in enumerate(ranks_text.splitlines()):
            try:
                token_b64, rank = line.split()
                token_bytes.append(base64.b64decode(token_b64, validate=True))
                if int(rank) != line_no:
                    raise ValueError(f"rank {rank} where {line_no} was expected")
            except ValueError as exc:
                raise UserError(f"tokenizer at {directory} is damaged: {ranks_path.name} line {line_no + 1}: "
                                f"{exc}") from None
        specials = sorted(meta["special_tokens"].items(), key=lambda kv: kv[1])
        if [i for _, i in specials] != list(range(len(token_bytes), len(token_bytes) + len(specials))):
            raise UserError(f"tokenizer at {directory} is damaged: special token ids do not follow the ranks")
        return cls(token_bytes, meta["pattern"], [name for name, _ in specials])


class _CharCounter:
    """Passes texts through while counting their characters (to detect an empty corpus after training)."""

    def __init__(self, texts: Iterable[str]):
        self.texts = texts
        self.chars = 0
        self.check = None  # a check of each text (the Rust trainer's limits)

    def __iter__(self) -> Iterator[str]:
        for text in self.texts:
            if not isinstance(text, str):
                raise UserError(f"training texts must be str, got {type(text).__name__}")
            if self.check:
                self.check(text)
            self.chars += len(text)
            yield text
