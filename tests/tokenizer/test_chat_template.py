"""The chat template: ids and loss mask equal nanochat's render_conversation (fixture from its code), and bad
conversations are one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nanochat_next.errors import UserError
from nanochat_next.tokenizer.bpe import BPETokenizer
from nanochat_next.tokenizer.chat_template import render_conversation, render_for_reply

FIXTURE = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "chat_parity.json").read_text())


@pytest.fixture(scope="module")
def tok() -> BPETokenizer:
    tok = BPETokenizer.train(FIXTURE["tokenizer_text"], FIXTURE["vocab_size"])
    assert tok.vocab_size == FIXTURE["vocab_size"]
    return tok


@pytest.mark.parametrize("case", FIXTURE["cases"], ids=lambda c: str(len(c["conversation"]["messages"])))
def test_render_equals_nanochat(tok, case):
    ids, mask = render_conversation(case["conversation"], tok, max_tokens=case["max_tokens"])
    assert ids == case["ids"]
    assert mask == case["mask"]


def test_only_the_assistant_is_trained(tok):
    conv = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ho"}]}
    ids, mask = render_conversation(conv, tok)
    trained = [i for i, m in zip(ids, mask) if m]
    assert tok.decode(trained[:-1]) == "ho" and trained[-1] == tok.special_id("<|assistant_end|>")
    prompt = render_for_reply({"messages": conv["messages"][:1]}, tok)
    assert prompt == ids[: len(prompt)] and prompt[-1] == tok.special_id("<|assistant_start|>")


@pytest.mark.parametrize("messages, message", [
    ([], "at least one message"),
    ([{"role": "robot", "content": "x"}], "must have a role"),
    ([{"role": "assistant", "content": "x"}], "should be from user"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "should be from assistant"),
    ([{"role": "system", "content": "s"}], "followed by a user message"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": [{"type": "image", "text": "x"}]}],
     "unknown assistant content part"),
])
def test_bad_conversations_are_clear_errors(tok, messages, message):
    with pytest.raises(UserError, match=message):
        render_conversation({"messages": messages}, tok)
