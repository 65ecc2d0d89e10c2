"""The CPU dtype is decided by measurement: the rule on injected figures, the quality guard and the artifact it
comes from, and a cache that is never trusted across another CPU, torch or shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nanochat_next import dtype_choice
from nanochat_next.dtype_choice import DtypeMeasurement, decide

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("fp32, bf16, gap, chosen", [
    (0.20, 0.08, 0.0, True),  # 2.5x faster, no quality cost
    (0.20, 0.08, 0.02, False),  # faster, but bf16 trains worse than the guard allows
    (0.10, 0.095, 0.0, False),  # 1.05x: below the margin, timing noise
    (0.10, 0.20, 0.0, False),  # slower (a Xeon without AMX)
])
def test_the_rule(fp32, bf16, gap, chosen):
    use, why = decide(DtypeMeasurement(fp32, bf16, "k"), quality_gap=gap)
    assert use is chosen
    assert f"{fp32 / bf16:.2f}x" in why


def test_the_quality_guard_is_the_measured_one():
    artifact = json.loads((REPO / "results" / "cpu_dtype.json").read_text())
    assert pytest.approx(artifact["bf16_minus_fp32_val_bpb"], abs=5e-5) == dtype_choice.BF16_QUALITY_GAP
    assert len(artifact["seeds"]) >= 3, "a gap from one seed would be noise"


def test_the_probe_times_both_dtypes():
    fp32, bf16 = dtype_choice.time_shapes([(64, 32, 32), (64, 32, 128)], rounds=2)
    assert fp32 > 0 and bf16 > 0


def test_the_cache_is_keyed_by_machine_torch_and_shapes(tmp_path, monkeypatch):
    monkeypatch.setenv("NANOCHAT_NEXT_CACHE", str(tmp_path))
    calls = []
    monkeypatch.setattr(dtype_choice, "time_shapes", lambda shapes: calls.append(shapes) or (0.2, 0.1))
    shapes = [(64, 32, 32)]
    first = dtype_choice.measure(shapes)
    assert dtype_choice.measure(shapes) == first and len(calls) == 1, "the same machine reuses its figure"
    dtype_choice.measure([(64, 32, 64)])
    assert len(calls) == 2, "other shapes are measured anew"
    monkeypatch.setattr(dtype_choice.torch, "__version__", "9.9.9")
    dtype_choice.measure(shapes)
    assert len(calls) == 3, "another torch is measured anew"
    monkeypatch.setattr("nanochat_next.runtime.cpu_model_name", lambda: "Another CPU")
    dtype_choice.measure(shapes)
    assert len(calls) == 4, "another CPU is measured anew"
    (tmp_path / "dtype" / "cpu_measurements.json").write_text("{broken")
    dtype_choice.measure(shapes)
    assert len(calls) == 5, "a damaged cache is measured again, not trusted"
