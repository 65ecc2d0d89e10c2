"""benchmarks/malloc_bench.py's summary: the paired speed-up and its p-value, the loss check, and the committed
artifact is what the script writes."""

import json
import math
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def malloc_bench(load_script):
    return load_script("benchmarks/malloc_bench.py")


def run(ms: float, faults: float = 0.0, loss: float = 1.5) -> dict:
    return {"kept": True, "step_ms": ms, "step_ms_min": ms - 1, "faults_per_step": faults, "max_rss_mb": 900.0,
            "last_loss": loss}


def test_the_speed_up_is_the_geometric_mean_of_paired_ratios(malloc_bench):
    runs = {"float32 eager": {"system": [run(800, 90_000), run(900, 92_000), run(1000, 91_000)],
                              "keep": [run(400, 100), run(600, 0), run(500, 50)]}}
    row = malloc_bench.summarise(runs)["float32 eager"]
    assert row["speedup"] == pytest.approx(math.exp((math.log(2) + math.log(1.5) + math.log(2)) / 3))
    assert row["p_value"] is not None and row["p_value"] < 0.1  # every pair faster
    assert row["faults_per_step"] == {"system": 91_000, "keep": 50}
    assert row["step_ms"] == {"system": 900, "keep": 500} and row["same_losses"] is True


def test_a_loss_that_moves_between_modes_is_reported(malloc_bench):
    runs = {"float32 compiled": {"system": [run(600), run(610, loss=1.4)], "keep": [run(590), run(580)]}}
    row = malloc_bench.summarise(runs)["float32 compiled"]
    assert row["same_losses"] is False


def test_the_committed_artifact_has_equal_losses_in_every_row():
    artifact = json.loads((REPO / "results" / "malloc_cpu.json").read_text())
    rows = artifact["rows"]
    assert {"float32 eager", "float32 compiled"} <= set(rows)
    for name, row in rows.items():
        assert len(row["runs"]["system"]) == len(row["runs"]["keep"]) == artifact["config"]["repeats"] >= 3
        assert row["same_losses"] is True, name
