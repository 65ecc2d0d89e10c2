"""RL from the tasks' checkers: the loss is REINFORCE with a group baseline and token-level normalisation (checked
by hand on a tiny batch), a step whose groups all tie updates nothing, rollouts are on-policy and seeded, and `rl`
resumes exactly after kill -9 (same rewards, losses and weights as an uninterrupted run)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nanochat_next.chat.rl import RLSettings, RolloutStream, advantages, rl_job, rl_run
from nanochat_next.chat.tasks import TASKS, corpus_words
from nanochat_next.errors import UserError
from nanochat_next.model.saving import load_trained
from nanochat_next.train.loop import train_step
from nanochat_next.train.processes import Processes

BASE = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "modern-next"  # depth 2, seq 64, vocab 512
SMALL = ["--questions", "2", "--samples", "4", "--max-new-tokens", "4", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def words(shakespeare_text) -> list[str]:
    return corpus_words(shakespeare_text)


def job_for(tmp_path, questions, settings: RLSettings | None = None):
    model, tokenizer, config = load_trained(BASE, "cpu")
    settings = settings or RLSettings(out=str(tmp_path), questions=2, samples=3, max_new_tokens=4, device="cpu")
    run = replace(rl_run(config["run"], settings), dtype="float32")
    build = rl_job(run, tokenizer, model.state_dict(), questions, questions, settings)
    return build(Processes(0, 0, 1, torch.device("cpu")), None)


def test_advantage_is_the_reward_minus_the_group_mean():
    assert advantages(torch.tensor([1.0, 0.0, 0.0, 1.0])).tolist() == [0.5, -0.5, -0.5, 0.5]
    assert advantages(torch.tensor([1.0, 1.0, 1.0])).tolist() == [0.0, 0.0, 0.0], "a tie teaches nothing"


def test_the_loss_is_the_hand_computed_reinforce_loss(tmp_path, words):
    """Two groups (micro-batches): rows weighted by their advantage, every trained token of the step weighing the
    same: loss = sum over rows of adv x sum of its tokens' -log p, / all trained tokens of the step."""
    job = job_for(tmp_path, TASKS["letters"].examples("train", 4, 0, words))
    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.randint(0, 500, (3, 10), generator=g), torch.randint(0, 500, (3, 12), generator=g)
    y1, y2 = torch.randint(0, 500, (3, 10), generator=g), torch.randint(0, 500, (3, 12), generator=g)
    y1[:, :4] = -1  # the prompt: not trained
    y2[:, :7] = -1
    y2[2, :] = -1  # a row with advantage 0: untrained, uncounted
    a1, a2 = torch.tensor([0.5, -0.25, -0.25]), torch.tensor([1.0, -1.0, 0.0])
    job.loader = iter([(x1, y1, a1), (x2, y2, a2)])
    job.grad_accum = 2
    with torch.no_grad():
        nll1 = job.model(x1, y1, loss_reduction="none").view(3, 10)
        nll2 = job.model(x2, y2, loss_reduction="none").view(3, 12)
        trained = int((y1 >= 0).sum() + (y2 >= 0).sum())
        expected = ((nll1 * a1[:, None]).sum() + (nll2 * a2[:, None]).sum()) / trained
    assert torch.allclose(train_step(job, 0, 1.0), expected, rtol=1e-5)
    assert trained == 3 * 6 + 2 * 5


def test_a_step_where_every_group_ties_updates_nothing(tmp_path, words):
    job = job_for(tmp_path, TASKS["letters"].examples("train", 4, 0, words))
    job.loader.checks = [lambda reply, answer: True] * len(job.loader.checks)  # every sample right: all tie
    before = {k: v.clone() for k, v in job.model.state_dict().items()}
    loss = train_step(job, 0, 1.0)
    stats = job.loader.pop_stats()
    assert loss.item() == 0.0 and stats["zero_groups"] == 2 and stats["reward"] == 1.0
    assert all(torch.equal(before[k], v) for k, v in job.model.state_dict().items()), "weights moved"


def alternating():
    """A checker whose verdicts alternate from one sample to the next: every group it scores is mixed."""
    calls = itertools.count()
    return lambda reply, answer: next(calls) % 2 == 0


def test_dynamic_sampling_replaces_tied_groups_by_the_next_questions(tmp_path, words):
    """--resample-tied N: a group whose samples all tie is replaced by the next question's (DAPO's dynamic sampling),
    at most N times per slot; the replaced groups are counted, the last draw of a slot is kept even when tied."""
    questions = TASKS["letters"].examples("train", 4, 0, words)
    settings = RLSettings(out=str(tmp_path), questions=2, samples=4, max_new_tokens=4, device="cpu", resample_tied=2)
    job = job_for(tmp_path, questions, settings)
    job.loader.checks = [lambda reply, answer: True, alternating(), lambda reply, answer: True, alternating()]
    assert train_step(job, 0, 1.0).item() != 0.0  # both slots carry signal: questions 1 and 3
    stats = job.loader.pop_stats()
    assert (stats["groups"], stats["zero_groups"], stats["resampled_groups"]) == (4, 2, 2)
    assert job.loader.state_dict() == {"micro_batch": 4}  # resumable: the index counts every group drawn

    nanochat_rule = job_for(tmp_path, questions, replace(settings, resample_tied=0))  # the tie stays, untrained
    nanochat_rule.loader.checks = job.loader.checks
    train_step(nanochat_rule, 0, 1.0)
    stats = nanochat_rule.loader.pop_stats()
    assert (stats["groups"], stats["zero_groups"], stats["resampled_groups"]) == (2, 1, 0)

    capped = job_for(tmp_path, questions, replace(settings, resample_tied=1))  # every question ties: 1 retry a slot
    capped.loader.checks = [lambda reply, answer: False] * 4
    before = {k: v.clone() for k, v in capped.model.state_dict().items()}
    assert train_step(capped, 0, 1.0).item() == 0.0
    stats = capped.loader.pop_stats()
    assert (stats["groups"], stats["zero_groups"], stats["resampled_groups"]) == (4, 4, 2)
    assert all(torch.equal(before[k], v) for k, v in capped.model.state_dict().items()), "weights moved"
    with pytest.raises(UserError, match="resample-tied"):
        replace(settings, resample_tied=-1)


def test_rollouts_are_the_current_models_and_seeded(tmp_path, words):
    questions = TASKS["compare"].examples("train", 6, 0, words)
    job = job_for(tmp_path, questions)
    first = next(job.loader)
    again = RolloutStream(questions, job.tokenizer, job.loader.settings)
    again.attach(job.model)
    assert all(torch.equal(a, b) for a, b in zip(first, next(again))), "the same index draws the same rollouts"
    x, y, adv = first
    assert x.shape[0] == 3 and y.shape == x.shape and adv.shape == (3,)
    assert (y[:, : len(x[0]) // 2] == -1).all(), "the prompt is never trained"


def test_bad_settings_and_questions_are_refused(tmp_path, words):
    with pytest.raises(UserError, match="--samples must be at least 2"):
        RLSettings(samples=1)
    with pytest.raises(UserError, match="needs questions with a checker"):
        job_for(tmp_path, [{"messages": [{"role": "user", "content": "hi"}], "task": None, "answer": ""}])


@pytest.fixture(scope="module")
def sft_tiny(tmp_path_factory) -> Path:
    """The golden base fine-tuned 20 steps on compare and letters: it answers in form, right some of the time."""
    from nanochat_next.cli.main import main

    out = tmp_path_factory.mktemp("sft")
    assert main(["sft", "--base", str(BASE), "--mix", "compare:200,letters:200", "--steps", "20", "--device-batch-size",
                 "4", "--total-batch-size", "256", "--eval-every", "0", "--eval-tokens", "256", "--out", str(out),
                 "--device", "cpu", "--no-progress"]) == 0
    return out


def rl_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nanochat_next", "rl", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def records(out: Path) -> list[dict]:
    return [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


@pytest.mark.slow
def test_rl_resumes_exactly_after_kill_9(sft_tiny, tmp_path):
    common = ["--base", str(sft_tiny), "--mix", "compare:100,letters:100", "--steps", "6", "--save-every", "2",
              *SMALL]
    full = rl_cli(*common, "--out", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr[-2000:]
    crashed = rl_cli(*common, "--out", str(tmp_path / "cut"), env={"NANOCHAT_NEXT_TEST_CRASH_AFTER_SAVE": "4"})
    assert crashed.returncode == 17
    resumed = rl_cli(*common, "--out", str(tmp_path / "cut"), "--resume", "latest")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = records(tmp_path / "full"), records(tmp_path / "cut")
    fields = ("loss", "reward", "pass@4", "zero_groups", "sampled_tokens")
    assert [[r[f] for f in fields] for r in a] == [[r[f] for f in fields] for r in b] and len(a) == 6
    assert any(r["reward"] > 0 for r in a) and any(r["loss"] != 0 for r in a), "the run must learn something"
    wa, wb = (load_file(tmp_path / d / "model" / "model.safetensors") for d in ("full", "cut"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_rl_refuses_bad_input_in_one_line(tmp_path, capsys):
    from nanochat_next.cli.main import main

    cases = [(["--base", str(tmp_path / "none")], "no tensor model at"),
             (["--base", str(BASE), "--mix", "letters:10,chat.jsonl"], "no such file"),
             (["--base", str(BASE), "--samples", "1"], "--samples must be at least 2")]
    for args, message in cases:
        assert main(["rl", *args, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / "o").exists()
