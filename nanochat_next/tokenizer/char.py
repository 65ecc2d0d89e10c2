"""A character-level tokenizer, for teaching: one id per distinct character, plus <|bos|>.

Ids follow karpathy's microgpt.py: the sorted distinct characters of the training text get ids
0..n-1 and ``<|bos|>`` gets id n, so ``vocab_size == n + 1``. It is saved as plain JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from nanochat_next.errors import UserError

BOS = "<|bos|>"


class CharTokenizer:
    def __init__(self, chars: Iterable[str]):
        chars = list(chars)
        if not chars:
            raise UserError("a character tokenizer needs at least one character; the text was empty")
        if any(len(c) != 1 for c in chars) or len(set(chars)) != len(chars):
            raise UserError("a character tokenizer's vocabulary must be distinct single characters")
        self.chars = chars
        self.bos_id = len(chars)
        self._ids = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str | Iterable[str]) -> CharTokenizer:
        """Vocabulary = the sorted set of characters in the text (or in every text of an iterable)."""
        seen: set[str] = set()
        for piece in [text] if isinstance(text, str) else text:
            seen.update(piece)
        return cls(sorted(seen))

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str, prepend_bos: bool = False) -> list[int]:
        try:
            ids = [self._ids[c] for c in text]
        except KeyError:
            unknown = sorted({c for c in text if c not in self._ids})
            shown = ", ".join(repr(c) for c in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            raise UserError(f"{len(unknown)} character(s) not in the tokenizer's vocabulary: {shown}; "
                            "train the tokenizer on text that contains them") from None
        return [self.bos_id, *ids] if prepend_bos else ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text for ids; <|bos|> is written out as the marker string, so nothing is dropped silently."""
        out = []
        for i in ids:
            if i == self.bos_id:
                out.append(BOS)
            elif 0 <= i < self.bos_id:
                out.append(self.chars[i])
            else:
                raise UserError(f"token id {i} is outside this tokenizer's vocabulary (0..{self.bos_id})")
        return "".join(out)

    def to_dict(self) -> dict:
        return {"format": "nanochat-next/char", "version": 1, "chars": "".join(self.chars), "bos": BOS}

    @classmethod
    def from_dict(cls, data: dict) -> CharTokenizer:
        if data.get("format") != "nanochat-next/char":
            raise UserError(f"not a character tokenizer (format {data.get('format')!r})")
        return cls(list(data["chars"]))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"cannot load a character tokenizer from {path}: {exc}") from None
