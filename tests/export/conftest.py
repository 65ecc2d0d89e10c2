"""The golden models (tests/fixtures/golden, made by tools/make_interop_golden.py) and their exports, made once
per test session."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
NAMES = ("modern-nanochat", "modern-next", "classic")


@dataclass
class Golden:
    name: str
    path: Path
    prompt: str
    prompt_ids: list[int]
    recorded_greedy: list[int]  # our engine's tokens on the machine that made the fixture
    logits: torch.Tensor

    @functools.cached_property
    def greedy(self) -> list[int]:
        """Our engine's greedy tokens computed on THIS machine: what every export must reproduce. (The recorded
        ones may differ on another CPU where a near-tie rounds the other way: see test_portable.)"""
        from nanochat_next.infer.engine import Engine
        from nanochat_next.model.saving import load_trained

        model, tokenizer, _ = load_trained(self.path, "cpu")
        return Engine(model, tokenizer).generate_batch(self.prompt_ids, 24, temperature=0.0)[0]


def golden(name: str) -> Golden:
    from safetensors.torch import load_file

    doc = json.loads((GOLDEN / name / "golden.json").read_text())
    return Golden(name, GOLDEN / name, doc["prompt"], doc["prompt_ids"], doc["greedy"],
                  load_file(GOLDEN / name / "logits.safetensors")["logits"])


@pytest.fixture(scope="session")
def golden_root() -> Path:
    return GOLDEN


@pytest.fixture(scope="session")
def classic_gold() -> Golden:
    return golden("classic")


@pytest.fixture(scope="session")
def next_gold() -> Golden:
    return golden("modern-next")


@pytest.fixture(scope="session", params=NAMES)
def gold(request) -> Golden:
    return golden(request.param)


@pytest.fixture(scope="session")
def onnx_exports(tmp_path_factory) -> dict[str, Path]:
    """Every golden model exported to ONNX once (export only; the tests check it)."""
    pytest.importorskip("onnxscript", reason="ONNX export needs the export extra: pip install 'nanochat-next[export]'")
    from nanochat_next.export.formats import export

    root = tmp_path_factory.mktemp("onnx")
    return {name: Path(export(GOLDEN / name, "onnx", root / name, verify=False)["out"]) for name in NAMES}
