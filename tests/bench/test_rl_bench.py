"""benchmarks/rl_bench.py's report: why each task without a significant change did not move, read from the data;
and the committed results/rl_cpu.md is what the report renders from results/rl_cpu.json."""

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rl_bench(load_script):
    return load_script("benchmarks/rl_bench.py")


def task(sft: list[float], rl: list[float], trained: bool = True, improved: bool = False) -> dict:
    return {"trained_by_rl": trained, "sampled": {"sft": sft, "rl": rl, "improved": improved, "worse": False}}


def test_each_unmoved_task_says_why_from_its_own_scores(rl_bench):
    data = {"tasks": {"spelling": task([0.18, 0.19], [0.21, 0.22], improved=True),
                      "arith": task([0.02, 0.03], [0.02, 0.02]),
                      "easy": task([0.97, 0.99], [0.98, 0.99]),
                      "letters": task([0.39, 0.42], [0.40, 0.405]),
                      "compare": task([0.98, 0.99], [0.98, 0.98], trained=False)}}
    text = rl_bench.unmoved(data)
    assert "spelling" not in text, "an improved task needs no excuse"
    assert "arith has almost no success to reinforce (SFT 2.5%)" in text
    assert "easy has almost no failure left (SFT 98.0%)" in text
    assert "letters had signal (SFT 39%-42% over seeds) but moved -1.5% to +1.0% a seed" in text
    assert "compare is not in RL's mixture" in text
    # a task some seed scores in the middle has signal, even if another seed's model is near the ceiling
    mixed = rl_bench.unmoved({"tasks": {"identity": task([0.76, 0.99], [0.75, 0.99])}})
    assert "identity had signal (SFT 76%-99% over seeds)" in mixed
    assert rl_bench.unmoved({"tasks": {"spelling": task([0.1], [0.2], improved=True)}}) == ""


def test_the_committed_report_is_rendered_from_the_committed_data(rl_bench):
    data = json.loads((REPO / "results" / "rl_cpu.json").read_text())
    data.pop("metadata")
    assert rl_bench.report(data).rstrip() + "\n" == (REPO / "results" / "rl_cpu.md").read_text()


def test_a_rerun_reads_kept_results_back_and_refuses_other_settings(rl_bench, tmp_path):
    calls = []
    first = rl_bench.cached(tmp_path / "eval.json", lambda: calls.append(1) or {"letters": 0.4})
    again = rl_bench.cached(tmp_path / "eval.json", lambda: calls.append(1) or {"letters": 0.9})
    assert first == again == {"letters": 0.4} and calls == [1], "the second run must reuse the kept result"
    settings = {"mix": "letters:2000", "steps": 100}
    rl_bench.same_settings(tmp_path, settings)
    rl_bench.same_settings(tmp_path, dict(settings))  # the same settings: reuse allowed
    with pytest.raises(SystemExit, match=r"other settings \(steps 100 -> 200\)"):
        rl_bench.same_settings(tmp_path, {**settings, "steps": 200})


def test_a_finished_rl_run_without_its_timing_is_not_silently_reused(rl_bench, tmp_path):
    (tmp_path / "rl_42").mkdir()
    (tmp_path / "rl_42" / "rl.json").write_text("{}")
    with pytest.raises(SystemExit, match="finished RL run"):
        rl_bench.run_rl(tmp_path / "sft_42", tmp_path / "rl_42", [])


def test_the_replication_seeds_are_reported_alone(rl_bench):
    data = {"seeds": [1, 2, 3, 4], "settings": {"replication": [3, 4]},
            "tasks": {"letters": {"trained_by_rl": True,
                                  **{m: {"sft": [0.4, 0.4, 0.4, 0.5], "rl": [0.5, 0.4, 0.42, 0.54],
                                         "p_seeds_replication": 0.2} for m in rl_bench.METRICS}},
                      "compare": {"trained_by_rl": False}}}
    text = rl_bench.replicated(data)
    assert "Seeds 3, 4 were added after a first run on 1, 2" in text
    assert "letters sampled +3.0% (p 0.2)" in text and "compare" not in text
    assert rl_bench.replicated({**data, "settings": {}}) == ""
    data["tasks"]["letters"]["greedy"].update(rl=[0.4, 0.4, 0.4, 0.5], p_seeds_replication=None)  # no change: no p
    assert "letters greedy +0.0% (p n/a)" in rl_bench.replicated(data)
