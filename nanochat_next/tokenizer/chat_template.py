"""Conversations as tokens: nanochat's chat template and its loss mask.

A conversation is ``{"messages": [{"role": ..., "content": ...}, ...]}`` (nanochat's shape). Rendered::

    <|bos|> <|user_start|> user text <|user_end|> <|assistant_start|> reply <|assistant_end|> <|user_start|> ...

with a mask of 1 on the tokens the assistant is trained to produce (its reply and its ``<|assistant_end|>``)
and 0 elsewhere. As nanochat at 2f09686: a leading system message is merged into the first user message
(``system + "\\n\\n" + user``); roles must alternate user, assistant, user, ...; an assistant's content may be a
list of parts: ``text`` (trained), ``python`` (trained, inside ``<|python_start|> ... <|python_end|>``) and
``python_output`` (not trained: it comes from the tool, inside ``<|output_start|> ... <|output_end|>``).
The result is cut to ``max_tokens``. Ids and mask equal nanochat's ``render_conversation`` (tests/fixtures).
"""

from __future__ import annotations

from nanochat_next.errors import UserError
from nanochat_next.tokenizer.bpe import BPETokenizer

ROLES = ("system", "user", "assistant")
PART_MARKERS = {"python": ("<|python_start|>", "<|python_end|>", 1),
                "python_output": ("<|output_start|>", "<|output_end|>", 0)}


def chat_messages(conversation: dict) -> list[dict]:
    """The messages to render: validated, the system message merged into the first user message."""
    messages = conversation.get("messages") if isinstance(conversation, dict) else None
    if not isinstance(messages, list) or not messages:
        raise UserError('a conversation is {"messages": [...]} with at least one message')
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise UserError(f"message {i} must have a role of {', '.join(ROLES)}, got {m!r:.80}")
    if messages[0]["role"] == "system":
        if len(messages) < 2 or messages[1]["role"] != "user":
            raise UserError("a system message must be followed by a user message")
        merged = {"role": "user", "content": f"{messages[0]['content']}\n\n{messages[1]['content']}"}
        messages = [merged, *messages[2:]]
    for i, m in enumerate(messages):
        expected = "user" if i % 2 == 0 else "assistant"
        if m["role"] != expected:
            raise UserError(f"message {i} is from {m['role']} but should be from {expected} (roles alternate, "
                            "starting with the user)")
        if m["role"] == "user" and not isinstance(m["content"], str):
            raise UserError(f"message {i}: a user message's content must be a string")
    return messages


def render_conversation(conversation: dict, tokenizer: BPETokenizer, max_tokens: int = 2048) -> tuple[list[int],
                                                                                                      list[int]]:
    """(ids, mask) of a conversation: mask[i] = 1 where token i is trained (the assistant's own tokens)."""
    ids, mask = [tokenizer.bos_id], [0]
    for message in chat_messages(conversation):
        message_ids, message_mask = message_tokens(message, tokenizer)
        ids += message_ids
        mask += message_mask
    return ids[:max_tokens], mask[:max_tokens]


def message_tokens(message: dict, tokenizer: BPETokenizer) -> tuple[list[int], list[int]]:
    """(ids, mask) of one (validated) message: a conversation renders as <|bos|> + its messages, one after another."""
    special = tokenizer.special_id
    content = message["content"]
    if message["role"] == "user":  # the user's turn is context, never trained
        ids = [special("<|user_start|>"), *tokenizer.encode(content), special("<|user_end|>")]
        return ids, [0] * len(ids)
    ids, mask = [special("<|assistant_start|>")], [0]
    for kind, text in assistant_parts(content):
        if kind == "text":
            part = tokenizer.encode(text)
            ids, mask = ids + part, mask + [1] * len(part)
        else:
            start, end, trained = PART_MARKERS[kind]
            part = [special(start), *tokenizer.encode(text), special(end)]
            ids, mask = ids + part, mask + [trained] * len(part)
    return ids + [special("<|assistant_end|>")], mask + [1]  # the model learns to end its turn


def assistant_parts(content) -> list[tuple[str, str]]:
    """An assistant's content as (kind, text) parts: a string is one text part."""
    if isinstance(content, str):
        return [("text", content)]
    if not isinstance(content, list):
        raise UserError(f"an assistant message's content must be a string or a list of parts, got "
                        f"{type(content).__name__}")
    parts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in ("text", *PART_MARKERS) or not isinstance(part.get("text"), str):
            raise UserError(f"unknown assistant content part {part!r:.80} (types: text, python, python_output)")
        parts.append((kind, part["text"]))
    return parts


def render_for_reply(conversation: dict, tokenizer: BPETokenizer) -> list[int]:
    """The prompt that asks the model for the assistant's next reply: the conversation (ending with a user
    message) followed by ``<|assistant_start|>``."""
    ids, _ = render_conversation(conversation, tokenizer, max_tokens=10**9)
    return [*ids, tokenizer.special_id("<|assistant_start|>")]


def fit_history(messages: list[dict], tokenizer: BPETokenizer, room: int) -> tuple[list[int] | None, int]:
    """The reply prompt of the newest conversation that fits in ``room`` tokens, dropping the oldest exchanges
    (a user message and its reply) first; (None, tokens of the last message's prompt) if the last message alone
    is too long. Returns (prompt, exchanges dropped). Each message is tokenized once: linear in the history."""
    rendered = [message_tokens(m, tokenizer)[0] for m in chat_messages({"messages": messages})]
    total = 1 + sum(map(len, rendered)) + 1  # <|bos|>, the messages, <|assistant_start|>
    start = 0
    while total > room:
        if start + 1 >= len(rendered):  # only the last user message is left, and it does not fit
            return None, total
        total -= len(rendered[start]) + len(rendered[start + 1])  # forget the oldest exchange
        start += 2
    prompt = [tokenizer.bos_id, *(t for ids in rendered[start:] for t in ids),
              tokenizer.special_id("<|assistant_start|>")]
    return prompt, start // 2
