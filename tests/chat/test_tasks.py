"""Honest task accuracy: on every task's test split no constant reply scores above the task's chance (the answers a
guess could exploit are balanced), the baselines are computed from the questions themselves, and chat-eval shows
them beside each accuracy (with distinct questions, more replies to read, pass@k and ChatCORE)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from nanochat_next.chat.evaluate import chatcore, evaluate_tasks, table
from nanochat_next.chat.tasks import IDENTITY, TASKS, corpus_words, majority_baseline
from nanochat_next.model.saving import load_trained

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "modern-next"


@pytest.fixture(scope="module")
def words(shakespeare_text) -> list[str]:
    return corpus_words(shakespeare_text)


@pytest.mark.parametrize("name", TASKS)
def test_no_constant_answer_scores_above_chance(words, name):
    """The bug this catches: 66.5% of `letters` test questions were answered "1", so a model that always said "1"
    scored above the reported accuracy after SFT (58.7%)."""
    spec = TASKS[name]
    # balanced tasks stay balanced in any count (37: not a multiple of the classes). Open answers (spelling, arith:
    # chance 0, as nanochat's GSM8K) can repeat by coincidence: arith's answers -99..198 collide on a few percent
    for count, seed in ((200, 0), (100, 1), (37, 2)):
        test = spec.examples("test", count, seed, words)
        best, reply = majority_baseline(test, spec.check)
        bound = spec.chance + 1 / count if spec.chance else 0.06
        assert best <= bound, f"{name}: always answering {reply!r} scores {best:.1%}"


def test_the_classes_a_guess_could_exploit_are_balanced(words):
    letters = Counter(e["answer"] for e in TASKS["letters"].examples("test", 200, 0, words))
    assert letters == {"0": 50, "1": 50, "2": 50, "3": 50}
    compare = Counter(e["answer"] for e in TASKS["compare"].examples("test", 200, 0, words))
    assert compare == {"A": 100, "B": 100}
    identity = TASKS["identity"].examples("test", 200, 0, words)
    assert sum(e["answer"] == IDENTITY for e in identity) == 100
    train = Counter(e["answer"] for e in TASKS["letters"].examples("train", 100, 3, words))
    assert train == {"0": 25, "1": 25, "2": 25, "3": 25}, "training is balanced too: no prior to learn"


def test_identity_checks_that_the_model_introduces_itself_only_when_asked():
    check = TASKS["identity"].check
    assert check(IDENTITY, IDENTITY) and not check("Blue.", IDENTITY)
    assert check("Blue.", "Blue.") and not check(IDENTITY, "Blue."), "introducing itself to everything is wrong"
    # a garbled name is no introduction: RL at a high LR learned to stop at "I am nanochat-nextle." when a
    # substring test rewarded it
    assert check("I am nanochat-next.", IDENTITY) and not check("I am nanochat-nextle.", IDENTITY)
    assert check("nanochat-nextle", "Blue.")


def test_majority_baseline_tries_every_answer_as_the_reply():
    examples = [{"answer": a} for a in ("1", "1", "1", "2")]
    assert majority_baseline(examples, lambda reply, answer: reply == answer) == (0.75, "1")


def test_chat_eval_reports_baselines_distinct_questions_and_pass_at_k(words):
    model, tokenizer, _ = load_trained(GOLDEN, "cpu")
    results = evaluate_tasks(model, tokenizer, ["letters", "compare", "identity"], 12, 0, words, max_new_tokens=4,
                             pass_k=3)
    for name, r in results.items():
        assert {"majority", "chance", "distinct", "accuracy"} <= set(r)
        assert r["majority"] <= TASKS[name].chance + 1 / 12
        # one outcome per example, in order: the samples kept are the first examples' outcomes
        assert len(r["outcomes"]) == r["total"] == 12 and sum(r["outcomes"]) == r["correct"]
        assert [int(s["correct"]) for s in r["samples"]] == r["outcomes"][:len(r["samples"])]
    assert results["letters"]["distinct"] == 12 and results["identity"]["distinct"] <= 12
    assert "pass@3" in results["letters"] and 0 <= results["letters"]["pass@3"] <= 1
    assert results["letters"]["pass@1_sampled"] <= results["letters"]["pass@3"]
    shares = results["letters"]["sampled_outcomes"]  # per question: the share of its 3 samples that were right
    assert len(shares) == 12 and set(shares) <= {0, 1 / 3, 2 / 3, 1}
    assert sum(shares) / 12 == pytest.approx(results["letters"]["pass@1_sampled"])
    assert results["letters"]["pass@3"] == pytest.approx(sum(s > 0 for s in shares) / 12)
    assert "pass_k" not in results["compare"], "a categorical task is not sampled"
    assert len(results["letters"]["samples"]) == 10
    text = table(results)
    assert "| majority | chance |" in text and "ChatCORE" in text and "(k=3)" in text
    core = sum((r["accuracy"] - r["chance"]) / (1 - r["chance"]) for r in results.values()) / 3
    assert chatcore(results) == pytest.approx(core)
    json.dumps(results)  # the JSON artifact holds all of it
