"""SFT data: conversation files validated with line numbers, offline tasks (deterministic, train/test disjoint,
checkers), the mixture spec, and the conversation loader's rows, masks, padding and exact resume."""

from __future__ import annotations

import json
import re

import pytest
import torch

from nanochat_next.chat.conversations import read_conversations, write_conversations
from nanochat_next.chat.mixture import build_mixture, parse_mix
from nanochat_next.chat.sft import ConversationLoader
from nanochat_next.chat.tasks import TASKS, corpus_words, split_of
from nanochat_next.errors import UserError
from nanochat_next.tokenizer.bpe import BPETokenizer
from nanochat_next.tokenizer.chat_template import render_conversation

CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]}


@pytest.fixture(scope="module")
def words(shakespeare_text) -> list[str]:
    return corpus_words(shakespeare_text)


@pytest.fixture(scope="module")
def tokenizer(shakespeare_docs) -> BPETokenizer:
    return BPETokenizer.train(shakespeare_docs[:2000], 512)


def write_lines(path, lines) -> str:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


BAD_LINES = {
    "not json": ("{oops", "line 2: not JSON"),
    "no messages": ('{"text": "hi"}', 'line 2: a conversation is {"messages": [...]}'),
    "unknown role": ('{"messages": [{"role": "robot", "content": "x"}]}', "line 2: message 0 must have a role"),
    "empty turn": ('{"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "x"}]}',
                   "line 2: message 0 (user) is empty"),
    "wrong order": ('{"messages": [{"role": "assistant", "content": "x"}]}', "line 2: message 0 is from assistant"),
    "ends with the user": ('{"messages": [{"role": "user", "content": "x"}]}', "line 2: the conversation ends with"),
}


@pytest.mark.parametrize("case", BAD_LINES)
def test_a_bad_line_is_an_error_naming_its_line(tmp_path, case):
    line, message = BAD_LINES[case]
    path = write_lines(tmp_path / "c.jsonl", [json.dumps(CHAT), line, json.dumps(CHAT)])
    with pytest.raises(UserError, match=re.escape(message)):
        read_conversations(path)


def test_conversations_round_trip_and_blank_lines_are_skipped(tmp_path):
    system = {"messages": [{"role": "system", "content": "be brief"}, *CHAT["messages"]]}
    path = write_conversations(tmp_path / "c.jsonl", [CHAT, system])
    path.write_text(path.read_text() + "\n\n")
    assert read_conversations(path) == [CHAT, system]
    with pytest.raises(UserError, match="has no conversations"):
        read_conversations(write_lines(tmp_path / "empty.jsonl", ["", " "]))


@pytest.mark.parametrize("name", TASKS)
def test_tasks_are_deterministic_disjoint_and_their_answers_check(words, name):
    spec = TASKS[name]
    train = spec.examples("train", 300, 1, words)
    assert train == spec.examples("train", 300, 1, words) and train != spec.examples("train", 300, 2, words)
    test = spec.examples("test", 60, 1, words)
    questions = lambda examples: {e["messages"][0]["content"] for e in examples}  # noqa: E731
    assert not questions(train) & questions(test)  # no test question is ever trained on
    for example in train[:50] + test[:50]:
        assert spec.check(example["messages"][1]["content"], example["answer"])
        assert example["task"] == name
    assert not spec.check("a reply that answers nothing", test[0]["answer"])
    if spec.choices:
        assert {e["answer"] for e in train} == set(spec.choices)


def test_checkers_read_the_answer_not_the_noise():
    assert TASKS["arith"].check("The answer is -12.", "-12") and not TASKS["arith"].check("12", "-12")
    assert TASKS["letters"].check("3", "3") and not TASKS["letters"].check("three", "3")
    assert TASKS["spelling"].check(" c-a-t ", "c-a-t") and not TASKS["spelling"].check("c-a-t-s", "c-a-t")
    assert TASKS["compare"].check("B", "B") and not TASKS["compare"].check("A", "B")
    assert split_of("apple") == split_of("apple")


def test_mixture_spec_errors_are_one_clear_line(tmp_path):
    for spec, message in [("spelling", "needs a positive count, e.g. spelling:1000"), ("spelling:0", "positive count"),
                          ("nope:3", "neither a task"), ("missing.jsonl", "no such file"), (" , ", "--mix is empty")]:
        with pytest.raises(UserError, match=message):
            parse_mix(spec)


def test_mixture_combines_tasks_and_files_with_held_out_parts(tmp_path, words):
    path = write_conversations(tmp_path / "c.jsonl", [CHAT] * 40)
    train, val = build_mixture(parse_mix(f"arith:100,identity:10,{path}"), seed=3, words=words)
    assert len(train) == 100 + 10 + 38 and len(val) == 20 + 20 + 2
    assert build_mixture(parse_mix(f"arith:100,identity:10,{path}"), seed=3, words=words) == (train, val)


def test_loader_rows_masks_and_padding(tokenizer, words):
    conversations = TASKS["arith"].examples("train", 64, 0, words)
    loader = ConversationLoader(conversations, tokenizer, batch_size=4, seq_len=48)
    x, y = next(loader)
    assert x.shape == y.shape == (4, 48) and (x[:, 0] == tokenizer.bos_id).all()
    rendered = [render_conversation(c, tokenizer) for c in conversations]
    trained_tokens = {tuple(ids[i] for i in range(len(ids)) if mask[i]) for ids, mask in rendered}
    for row_x, row_y in zip(x.tolist(), y.tolist()):
        starts = [i for i, t in enumerate(row_x) if t == tokenizer.bos_id]
        assert starts[0] == 0
        # every target is -1 (a user token, the template, padding) or the assistant's own next token
        trained = [t for t in row_y if t >= 0]
        assert trained and all(t in {tok for toks in trained_tokens for tok in toks} for t in trained)
        assert row_y[-1] == -1 or row_x[-1] != tokenizer.bos_id
    all_tokens = ConversationLoader(conversations, tokenizer, 4, 48, train_on="all")
    assert (next(all_tokens)[1] >= 0).sum() > (y >= 0).sum()


def test_loader_never_crops_a_conversation_that_fits(tokenizer, words):
    conversations = TASKS["spelling"].examples("train", 40, 0, words)
    lengths = sorted(len(render_conversation(c, tokenizer)[0]) for c in conversations)
    loader = ConversationLoader(conversations, tokenizer, batch_size=1, seq_len=lengths[-1] + 3)
    for _ in range(10):
        x, y = next(loader)
        row = x[0].tolist() + [y[0, -1].item()]
        starts = [i for i, t in enumerate(row) if t == tokenizer.bos_id] + [len(row)]
        pieces = [row[a:b] for a, b in zip(starts, starts[1:])]
        whole = [render_conversation(c, tokenizer)[0] for c in conversations]
        assert all(p in whole or set(p) <= {tokenizer.bos_id, -1} for p in pieces)


def test_loader_resumes_exactly_and_ranks_split_the_stream(tokenizer, words):
    conversations = TASKS["letters"].examples("train", 80, 0, words)
    straight = ConversationLoader(conversations, tokenizer, 2, 32)
    batches = [next(straight) for _ in range(12)]
    first = ConversationLoader(conversations, tokenizer, 2, 32)
    for _ in range(5):
        next(first)
    resumed = ConversationLoader(conversations, tokenizer, 2, 32, state=json.loads(json.dumps(first.state_dict())))
    for expected in batches[5:]:
        assert all(torch.equal(a, b) for a, b in zip(next(resumed), expected))
    rank1 = ConversationLoader(conversations, tokenizer, 2, 32, rank=1, world_size=2)
    assert torch.equal(next(rank1)[0], batches[1][0]) and torch.equal(next(rank1)[0], batches[3][0])
