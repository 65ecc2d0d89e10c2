"""CORE item for item as nanochat computes it: on a small bundle in the real format (every task type, few-shot 0
and > 0, prompts longer than the context), our evaluator builds the same input ids as nanochat's core_eval (so the
same prompts, few-shot draws, tokens, crop and padding), gets the same per-position losses within fp32 summation
order, and the same verdict per item (tests/fixtures/core_parity.json, made by tools/make_core_fixture.py from
nanochat's own code). Then the command: the bundle from the cache or a path, offline errors, the table and JSON."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from nanochat_next.bench import core_eval
from nanochat_next.errors import UserError
from nanochat_next.model.saving import load_trained

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BUNDLE = FIXTURES / "core_bundle"
PARITY = json.loads((FIXTURES / "core_parity.json").read_text())
# fp32 logits summed in another order on another CPU move a loss by ~1e-6; 1e-4 still fails any real difference
# (another token, another position, another prompt move losses by 1e-1 or more)
LOSS_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def ours():
    model, tokenizer, _ = load_trained(FIXTURES / "golden" / "modern-nanochat", "cpu")
    return model, tokenizer


@pytest.fixture(scope="module")
def our_items(ours):
    model, tokenizer = ours
    results = {}
    for task in core_eval.load_tasks(BUNDLE):
        items = core_eval.load_items(task)
        for index, item in enumerate(items):
            prompts = core_eval.render(task.kind, item, task.delimiter,
                                       core_eval.fewshot_examples(items, index, task.fewshot))
            results[task.label, index] = core_eval.score_item(model, tokenizer, task.kind, prompts, "cpu",
                                                              model.config.sequence_len, item.get("gold"), keep=True)
    return results


def test_every_item_matches_nanochats_own_evaluation(our_items):
    assert len(PARITY["items"]) == len(our_items) == 60
    cropped = 0
    for record in PARITY["items"]:
        ours = our_items[record["task"], record["index"]]
        assert ours["ids"] == record["ids"], f"{record['task']} #{record['index']}: other prompt tokens"
        cropped += any(len(row) == 64 for row in record["ids"]) and record["task"] == "long_mc"
        for mine, theirs in zip(ours["losses"], record["losses"]):
            assert all(abs(a - b) <= LOSS_TOLERANCE for a, b in zip(mine, theirs[:-1]))  # theirs: NaN last column
        if ours["margin"] > 10 * LOSS_TOLERANCE:  # a near tie may go either way on another CPU: not a verdict
            assert ours["correct"] == record["correct"], f"{record['task']} #{record['index']}"
    assert cropped == 6, "the long task's prompts were cropped to the context by both"


def test_every_task_type_and_few_shot_count_is_covered():
    tasks = core_eval.load_tasks(BUNDLE)
    assert {t.kind for t in tasks} == set(core_eval.TASK_TYPES)
    assert {t.fewshot for t in tasks} >= {0, 1, 2, 3}
    assert {t.delimiter for t in tasks} == {" ", "\nAnswer: "}


def test_centred_accuracy_and_core():
    assert core_eval.centred(0.25, 0.25) == 0.0 and core_eval.centred(1.0, 0.25) == 1.0
    assert core_eval.centred(0.0, 0.5) == -1.0
    assert core_eval.centred(0.5, 0.0) == 0.5


def test_few_shot_examples_never_include_the_item():
    items = [{"n": i} for i in range(10)]
    for index in range(10):
        shots = core_eval.fewshot_examples(items, index, 3)
        assert len(shots) == 3 and items[index] not in shots
    assert core_eval.fewshot_examples(items, 4, 3) == core_eval.fewshot_examples(items, 4, 3), "seeded"


def test_language_modelling_prompts_are_prefixes(ours):
    _, tokenizer = ours
    item = {"context": "Good night, sweet prince,   ", "continuation": "and flights of angels"}
    without, with_ = core_eval.render("language_modeling", item, " ", [])
    # the context trimmed, the delimiter between; the prompt without the continuation stripped (nanochat's template)
    assert without == "Good night, sweet prince," and with_ == "Good night, sweet prince, and flights of angels"
    tokens = [tokenizer.encode(p, prepend_bos=True) for p in (without, with_)]
    (seq,), ((s, e),) = core_eval.spans("language_modeling", tokens)
    assert seq[:s] == tokens[0] and e == len(seq)


def test_evaluate_core_reports_every_task_and_core(ours):
    model, tokenizer = ours
    result = core_eval.evaluate_core(model, tokenizer, BUNDLE, max_per_task=4, progress=False)
    assert set(result["tasks"]) == {t.label for t in core_eval.load_tasks(BUNDLE)}
    assert all(r["items"] == 4 for r in result["tasks"].values())
    mean = sum(r["centred"] for r in result["tasks"].values()) / len(result["tasks"])
    assert result["core"] == pytest.approx(mean)
    assert "| **CORE** |" in core_eval.table(result)


def test_the_bundle_comes_from_the_cache_or_a_path(tmp_path, monkeypatch):
    monkeypatch.setenv("NANOCHAT_NEXT_CACHE", str(tmp_path / "cache"))
    zipped = tmp_path / "eval_bundle.zip"
    with zipfile.ZipFile(zipped, "w") as z:  # the zip's own layout: an eval_bundle/ folder
        for f in BUNDLE.rglob("*"):
            if f.is_file():
                z.write(f, Path("eval_bundle") / f.relative_to(BUNDLE))
    with pytest.raises(UserError, match=r"not in the cache .*eval_bundle.zip.*karpathy-public.*--bundle"):
        core_eval.bundle_dir(allow_download=False)
    monkeypatch.setenv(core_eval.URL_ENV, zipped.as_uri())
    got = core_eval.bundle_dir()
    assert (got / "core.yaml").is_file() and got == tmp_path / "cache" / "core" / "eval_bundle"
    assert (tmp_path / "cache" / "core" / "eval_bundle.zip.sha256").is_file()
    shutil.rmtree(got)
    (tmp_path / "cache" / "core" / "eval_bundle.zip").write_bytes(b"not the zip that was downloaded")
    with pytest.raises(UserError, match="does not match the sha256"):
        core_eval.bundle_dir()
    assert core_eval.bundle_dir(zipped) == tmp_path / "eval_bundle"  # a zip given by path
    assert core_eval.bundle_dir(BUNDLE) == BUNDLE
    with pytest.raises(UserError, match="no core.yaml"):
        core_eval.bundle_dir(tmp_path / "cache")


def test_eval_command_prints_the_table_and_writes_json(tmp_path, capsys):
    from nanochat_next.cli.main import main

    out = tmp_path / "core.json"
    assert main(["eval", "--checkpoint", str(FIXTURES / "golden" / "modern-nanochat"), "--core", "--bundle",
                 str(BUNDLE), "--max-per-task", "3", "--tasks", "mc_zeroshot,lm_fewshot", "--json", str(out),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| mc_zeroshot | multiple_choice | 0 | 3 |" in printed and "CORE" in printed
    doc = json.loads(out.read_text())
    assert set(doc["tasks"]) == {"mc_zeroshot", "lm_fewshot"} and "metadata" in doc and "core" in doc
    assert main(["eval", "--checkpoint", str(FIXTURES / "golden" / "modern-nanochat"), "--core", "--bundle",
                 str(BUNDLE), "--tasks", "nope"]) == 2
    assert "no task nope in the bundle" in capsys.readouterr().err
