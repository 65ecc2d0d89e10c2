"""Real datasets (smoltalk, gsm8k, arc) downloaded on demand into the cache, tested against small parquet files
the test makes and serves as a mirror: atomically saved, their sha256 recorded and checked, rows turned into
conversations, usable in --mix and chat-eval."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nanochat_next.atomic import sha256_file
from nanochat_next.chat import datasets
from nanochat_next.chat.evaluate import evaluate_tasks
from nanochat_next.chat.mixture import build_mixture, parse_mix
from nanochat_next.errors import UserError

ROWS = {
    "smoltalk": [{"messages": [{"role": "user", "content": f"hello {i}"}, {"role": "assistant", "content": "hi!"}],
                  "source": "x"} for i in range(30)],
    "gsm8k": [{"question": f"Tom has {i} apples and buys 2. How many?", "answer": f"{i} + 2 = {i + 2}\n#### {i + 2}"}
              for i in range(30)],
    "arc": [{"id": str(i), "question": f"Which is a planet? ({i})",
             "choices": {"text": ["Mars", "Moon", "Sun", "Comet"], "label": ["A", "B", "C", "D"] if i % 2 else
                         ["1", "2", "3", "4"]}, "answerKey": "A" if i % 2 else "1"} for i in range(30)],
}


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local mirror laid out like Hugging Face's paths, and an empty cache."""
    root = tmp_path / "mirror"
    for name, splits in datasets.FILES.items():
        for rel in splits.values():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(ROWS[name]), root / rel)
    monkeypatch.setenv(datasets.URL_ENV, root.as_uri())
    monkeypatch.setenv("NANOCHAT_NEXT_CACHE", str(tmp_path / "cache"))
    return root


def test_download_once_record_the_sha256_and_refuse_a_changed_file(mirror, tmp_path):
    path = datasets.dataset_file("gsm8k", "train")
    assert path.is_file() and path.with_name("train.parquet.sha256").read_text().strip() == sha256_file(path)
    assert not list(path.parent.glob("*.part"))  # nothing half-written left behind
    (mirror / datasets.FILES["gsm8k"]["train"]).unlink()
    assert datasets.dataset_file("gsm8k", "train") == path  # cached: the mirror is not asked again
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(UserError, match="does not match the sha256 recorded"):
        datasets.dataset_file("gsm8k", "train")


def test_missing_files_and_names_are_clear_errors(mirror):
    with pytest.raises(UserError, match="unknown dataset"):
        datasets.dataset_file("mmlu", "train")
    (mirror / datasets.FILES["arc"]["test"]).unlink()
    with pytest.raises(UserError, match="could not download arc"):
        datasets.dataset_file("arc", "test")
    with pytest.raises(UserError, match="downloads are off"):
        datasets.dataset_file("arc", "test", allow_download=False)


def test_rows_become_conversations(mirror):
    talk, gsm, arc = (datasets.examples(n, "train", None, 0) for n in ("smoltalk", "gsm8k", "arc"))
    assert talk[0]["messages"][1] == {"role": "assistant", "content": "hi!"}
    assert gsm[3]["answer"] == "5" and datasets.check_gsm8k("3 + 2 = 5\n#### 5", "5")
    assert not datasets.check_gsm8k("5", "5")  # the answer must follow ####, as GSM8K's solutions do
    assert arc[0]["answer"] == "A" and arc[0]["choices"] == ["A", "B", "C", "D"]  # labels 1-4 become letters
    assert arc[1]["messages"][0]["content"].endswith("\nD. Comet")
    assert len(datasets.examples("gsm8k", "train", 5, 1)) == 5


def test_datasets_in_the_mixture_and_in_chat_eval(mirror, golden_model):
    train, val = build_mixture(parse_mix("gsm8k:10,arc:10,smoltalk:10"), seed=0, words=["unused"])
    assert len(train) == 30 and len(val) == 60 and {c["task"] for c in train} == {"gsm8k", "arc", "smoltalk"}
    model, tokenizer = golden_model
    results = evaluate_tasks(model, tokenizer, ["arc", "gsm8k"], count=8, seed=0, words=[], max_new_tokens=4)
    assert results["arc"]["kind"] == "categorical" and results["arc"]["total"] == 8
    assert results["gsm8k"]["kind"] == "generative" and 0 <= results["gsm8k"]["accuracy"] <= 1
    with pytest.raises(UserError, match="smoltalk has no answers"):
        evaluate_tasks(model, tokenizer, ["smoltalk"], count=2, seed=0, words=[])


@pytest.fixture
def golden_model():
    from pathlib import Path

    from nanochat_next.model.saving import load_trained

    model, tokenizer, _ = load_trained(Path(__file__).resolve().parents[1] / "fixtures/golden/modern-next", "cpu")
    return model, tokenizer


def test_categorical_accuracy_of_a_known_model(golden_model):
    """A model that always prefers the letter A scores exactly the share of questions whose answer is A."""
    import torch

    from nanochat_next.chat.evaluate import categorical
    from nanochat_next.chat.tasks import TASKS

    _, tokenizer = golden_model
    a = tokenizer.encode("A")[0]

    class AlwaysA(torch.nn.Module):
        config = type("C", (), {"sequence_len": 64})()

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, ids):
            logits = torch.zeros(*ids.shape, tokenizer.vocab_size)
            logits[..., a] = 1.0
            return logits

    examples = TASKS["compare"].examples("test", 50, 0, [])
    result = categorical(AlwaysA(), tokenizer, examples, batch_size=7)
    assert result["total"] == 50 and result["correct"] == sum(e["answer"] == "A" for e in examples)
