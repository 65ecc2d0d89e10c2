"""benchmarks/paired_step_bench.py's summary: paired ratios, their p-value, and the loss check."""

import math

import pytest


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("benchmarks/paired_step_bench.py")


def test_summary_of_hand_pairs(bench):
    # the options side 10% faster in every pair whatever the machine's drift (the pairs' level moves 100 -> 300)
    defaults = [110.0, 220.0, 330.0, 165.0]
    result = {"step_ms": {"defaults": defaults, "options": [d / 1.1 for d in defaults]},
              "first_loss": {"defaults": 8.25, "options": 8.2500005}}
    s = bench.summarise(result)
    assert s["speedup"] == pytest.approx(1.1)
    assert s["faster_pairs"] == s["pairs"] == 4
    assert s["median_ms"]["defaults"] == pytest.approx(192.5)
    assert s["loss_gap"] == pytest.approx(5e-7)
    assert s["p_value"] is None or s["p_value"] < 1e-6  # identical log ratios: no spread at all


def test_a_tie_is_not_significant(bench):
    d = [100.0, 100.0, 100.0, 100.0]
    s = bench.summarise({"step_ms": {"defaults": d, "options": [101.0, 99.0, 102.0, 98.0]},
                         "first_loss": {"defaults": 1.0, "options": 1.0}})
    assert math.isclose(s["speedup"], 1.0, rel_tol=2e-3) and s["p_value"] > 0.5 and s["faster_pairs"] == 2
