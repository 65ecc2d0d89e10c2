"""Conversation files: JSON Lines, one ``{"messages": [{"role": ..., "content": ...}, ...]}`` per line (nanochat's
shape; ``chat.render_conversation`` turns one into tokens).

Every line is checked as it is read, and a bad one is an error naming the file and the line: not JSON, no
messages, an unknown role, an empty turn, roles out of order (user, assistant, user, ...; a system message
may come first), or a conversation that does not end with the assistant (there would be nothing to train).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from nanochat_next.atomic import write_text
from nanochat_next.errors import UserError
from nanochat_next.tokenizer.chat_template import assistant_parts, chat_messages


def check_conversation(conversation: object) -> dict:
    """The conversation if it is trainable; a UserError saying what is wrong otherwise."""
    messages = chat_messages(conversation)  # roles, order, the system message
    for i, message in enumerate(messages):
        content = message["content"]
        texts = [content] if isinstance(content, str) else [text for _, text in assistant_parts(content)]
        if not any(text.strip() for text in texts):
            raise UserError(f"message {i} ({message['role']}) is empty")
    if messages[-1]["role"] != "assistant":
        raise UserError("the conversation ends with the user: there is no assistant reply to train on")
    return conversation


def read_conversations(path: str | Path) -> list[dict]:
    """All conversations of a JSONL file, each checked (errors name the line)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read conversations from {path} ({exc})") from None
    conversations = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            conversations.append(check_conversation(json.loads(line)))
        except ValueError as exc:
            raise UserError(f"{path} line {number}: not JSON ({exc})") from None
        except UserError as exc:
            raise UserError(f"{path} line {number}: {exc}") from None
    if not conversations:
        raise UserError(f"{path} has no conversations (one JSON object per line)")
    return conversations


def write_conversations(path: str | Path, conversations: Iterable[dict]) -> Path:
    """Conversations as JSONL (atomically); the ``messages`` of each, other keys dropped."""
    lines = [json.dumps({"messages": c["messages"]}, ensure_ascii=False) for c in conversations]
    write_text(Path(path), "".join(line + "\n" for line in lines))
    return Path(path)
