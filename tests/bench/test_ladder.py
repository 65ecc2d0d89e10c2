"""The depth ladder: the analysis on hand-made runs whose CM is worked out by hand, and a tiny real ladder that
writes its artifacts and resumes without training anything twice."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jsonschema
import pytest

from nanochat_next.bench.ablate import run_dir
from nanochat_next.bench.ladder import PRESETS, Ladder, analyse
from nanochat_next.cli.main import main
from nanochat_next.errors import UserError

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "results" / "schema.json").read_text())
FLOPS_PER_TOKEN, TOKENS_PER_STEP = 1000, 100  # one step = 1e5 FLOPs


def fake_run(path: Path, evals: list[tuple[int, float]]) -> None:
    (path / "model").mkdir(parents=True)
    summary = {"evals": [{"step": s, "val_bpb": b} for s, b in evals], "flops_per_token": FLOPS_PER_TOKEN,
               "train_seconds": 2.0}
    (path / "model" / "config.json").write_text(json.dumps({"summary": summary,
                                                            "run": {"total_batch_size": TOKENS_PER_STEP}}))


def hand_made(tmp_path: Path, ours: dict[int, list], theirs: dict[int, list]) -> Ladder:
    ladder = Ladder("tiny", PRESETS["tiny"].base, depths=(1,), steps=(40,), recipes=("next", "nanochat"),
                    seeds=tuple(ours), out=tmp_path)
    sweep = ladder.sweep(1, 40)
    for recipe, runs in (("next", ours), ("nanochat", theirs)):
        for seed, evals in runs.items():
            fake_run(run_dir(sweep, recipe, seed), evals)
    return ladder


def test_compute_multipliers_and_p_values_worked_by_hand(tmp_path):
    # theirs falls 4 -> 2 -> 1 over steps 10, 20, 40 (halving per doubling: a straight line in log-log)
    theirs = {42: [(0, 5.0), (10, 4.0), (20, 2.0), (40, 1.0)], 43: [(0, 5.0), (10, 4.0), (20, 2.0), (40, 1.0)]}
    # seed 42: ours ends at 2.0 at step 40: theirs needed 20 steps for that: CM 0.5 (a loss)
    # seed 43: ours ends at 1.0 at step 20 ... then evaluated at 40 again at 1.0; the final point (40, 1.0):
    #   theirs needs 40 steps: CM 1.0. Its best point (1.0 first reached at step 20) against theirs: CM best 2.0
    ours = {42: [(0, 5.0), (10, 3.0), (20, 2.5), (40, 2.0)], 43: [(0, 5.0), (10, 2.0), (20, 1.0), (40, 1.0)]}
    data = analyse(hand_made(tmp_path, ours, theirs), tokens=2000)
    [rung] = data["rungs"]
    assert rung["tokens"] == 4000 and rung["epochs"] == 2.0
    cm = rung["versus"]["nanochat"]["cm"]
    assert cm["by_seed"][42]["cm"] == pytest.approx(0.5) and cm["by_seed"][43]["cm"] == pytest.approx(1.0)
    assert cm["geomean"] == pytest.approx(math.sqrt(0.5)) and not cm["extrapolated"]
    head = rung["versus"]["nanochat"]["cm_headline"]  # read inside theirs' curve: nanochat's own, unchanged
    assert [s["kind"] for s in head["by_seed"].values()] == ["nanochat", "nanochat"]
    assert head["geomean"] == cm["geomean"]
    best = rung["versus"]["nanochat"]["cm_best_so_far"]
    assert best["by_seed"][43]["cm"] == pytest.approx(2.0) and best["by_seed"][42]["cm"] == pytest.approx(0.5)
    ours_rec = rung["recipes"]["next"]
    assert ours_rec["best_step_by_seed"] == {42: 40, 43: 20}  # the first step that reached the best
    assert rung["versus"]["nanochat"]["final"]["difference"] == pytest.approx(((2.0 - 1.0) + 0.0) / 2)
    assert rung["versus"]["nanochat"]["final"]["test"].startswith("paired")
    assert data["summary"]["nanochat"]["cm_min"] == pytest.approx(math.sqrt(0.5))
    assert data["summary"]["nanochat"]["rungs_at_target"] == 0  # the pinned baseline's target is CM >= 2


def test_overfitting_baselines_the_best_point_and_undefined_multipliers(tmp_path):
    # theirs over-fits: best 2.0 at step 20, then it rises. Seed 42: ours ends at 2.4, which theirs first reached
    # between steps 10 and 20 (the first crossing, as nanochat reads a curve); ours' best, 2.2 at step 20, against
    # theirs' best-so-far curve. Seed 43: ours ends at 1.5, below anything theirs reached, and theirs' last segment
    # rises: no slope leads there, so the CM is undefined rather than read off a rising line
    theirs = {42: [(0, 5.0), (10, 3.0), (20, 2.0), (40, 2.5)], 43: [(0, 5.0), (10, 3.0), (20, 2.0), (40, 2.4)]}
    ours = {42: [(0, 5.0), (10, 2.5), (20, 2.2), (40, 2.4)], 43: [(0, 5.0), (10, 2.0), (20, 1.8), (40, 1.5)]}
    data = analyse(hand_made(tmp_path, ours, theirs), tokens=None)
    v = data["rungs"][0]["versus"]["nanochat"]
    assert data["rungs"][0]["epochs"] is None

    def steps_to(bpb):  # on theirs' segment (10, 3.0) -> (20, 2.0), a straight line in log-log
        return 10 * 2 ** ((math.log(3.0) - math.log(bpb)) / (math.log(3.0) - math.log(2.0)))

    assert v["cm"]["by_seed"][42]["cm"] == pytest.approx(steps_to(2.4) / 40)
    assert v["cm_best_so_far"]["by_seed"][42]["cm"] == pytest.approx(steps_to(2.2) / 20)
    assert v["cm"]["by_seed"][43] is None and v["cm_best_so_far"]["by_seed"][43] is None
    assert v["cm"]["undefined"] == 1 and v["cm"]["geomean"] == pytest.approx(steps_to(2.4) / 40)
    assert data["rungs"][0]["recipes"]["next"]["best_step_by_seed"] == {42: 20, 43: 40}
    assert v["best"]["difference"] == pytest.approx(((2.2 - 2.0) + (1.5 - 2.0)) / 2)


def test_the_headline_reads_inside_a_curve_when_nanochats_cm_would_extrapolate(tmp_path):
    # ours ends at 1.5, below anything theirs reached (2.5): nanochat's CM extends theirs' last segment (flagged);
    # the headline takes the CM anchored at theirs' final bpb, read inside our curve between steps 10 and 20
    theirs = {42: [(0, 5.0), (10, 4.0), (20, 3.0), (40, 2.5)], 43: [(0, 5.0), (10, 4.0), (20, 3.0), (40, 2.5)]}
    ours = {42: [(0, 5.0), (10, 3.0), (20, 2.0), (40, 1.5)], 43: [(0, 5.0), (10, 3.0), (20, 2.0), (40, 1.6)]}
    v = analyse(hand_made(tmp_path, ours, theirs), tokens=None)["rungs"][0]["versus"]["nanochat"]
    assert v["cm"]["extrapolated"] and v["cm"]["by_seed"][42]["text"].endswith("?")
    ours_steps = 10 * 2 ** ((math.log(3.0) - math.log(2.5)) / (math.log(3.0) - math.log(2.0)))  # 12.9 steps
    at_final = v["cm_at_their_final"]["by_seed"][42]
    assert at_final["cm"] == pytest.approx(40 / ours_steps) and not at_final["extrapolated"]
    head = v["cm_headline"]
    assert head["by_seed"][42]["kind"] == "at the baseline's final bpb" and not head["extrapolated"]
    assert head["geomean"] == pytest.approx(40 / ours_steps)


def test_bad_ladders_are_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="unknown ladder preset"):
        Ladder.from_preset("huge", tmp_path)
    with pytest.raises(UserError, match="unknown recipe"):
        Ladder.from_preset("tiny", tmp_path, recipes=("next", "gpt5"))
    with pytest.raises(UserError, match="two distinct seeds"):
        Ladder.from_preset("tiny", tmp_path, seeds=(42,))
    with pytest.raises(UserError, match="at least two distinct recipes"):
        Ladder.from_preset("tiny", tmp_path, recipes=("next",))


@pytest.mark.slow
def test_a_tiny_ladder_runs_writes_its_artifacts_and_resumes(tmp_path, capsys):
    args = ["ladder", "--preset", "tiny", "--depths", "1", "--recipes", "next,nanochat", "--out", str(tmp_path)]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert first.count("already finished") == 0 and "[8/8]" in first  # 1 depth x 2 budgets x 2 recipes x 2 seeds
    [json_path] = tmp_path.glob("ladder_tiny_*.json")
    data = json.loads(json_path.read_text())
    jsonschema.validate(data, SCHEMA)
    assert [r["rung"] for r in data["rungs"]] == ["d1_s4", "d1_s8"]
    for rung in data["rungs"]:
        for recipe in ("next", "nanochat"):
            rec = rung["recipes"][recipe]
            assert all(rec["best_by_seed"][s] <= rec["final_by_seed"][s] for s in rec["final_by_seed"])
            assert rec["flops_per_token"] > 0
        assert rung["epochs"] > 0 and set(rung["versus"]) == {"nanochat"}
    assert json_path.with_suffix(".md").read_text().startswith("# Depth ladder `tiny`")
    assert json_path.with_suffix(".png").stat().st_size > 10_000
    assert main(args) == 0  # again: every run is found finished, nothing trains
    assert capsys.readouterr().out.count("already finished") == 8
    assert data["pending"] == []


def test_report_writes_the_finished_rungs_and_lists_the_pending_ones(tmp_path, capsys):
    ladder = hand_made(tmp_path, {42: [(10, 3.0), (40, 2.0)], 43: [(10, 3.1), (40, 2.1)]},
                       {42: [(10, 3.2), (40, 2.5)], 43: [(10, 3.3), (40, 2.6)]})
    args = ["ladder", "--preset", "tiny", "--depths", "1", "--steps", "40,80", "--recipes", "next,nanochat",
            "--seeds", "42,43", "--out", str(tmp_path), "--report"]
    assert main(args) == 0  # d1_s40 finished (hand-made runs); d1_s80 has none: pending, nothing trained
    out = capsys.readouterr().out
    assert "pending (not every run finished): d1_s80" in out and "[1/" not in out
    [json_path] = tmp_path.glob("ladder_tiny_*.json")
    data = json.loads(json_path.read_text())
    jsonschema.validate(data, SCHEMA)
    assert [r["rung"] for r in data["rungs"]] == ["d1_s40"] and data["pending"] == ["d1_s80"]
    assert data["rungs"][0]["versus"]["nanochat"]["final"]["difference"] == pytest.approx(-0.5)
    assert "**Not run yet**" in json_path.with_suffix(".md").read_text() and ladder.out == tmp_path
    fake_run(run_dir(ladder.sweep(1, 40), "next", 44), [(40, 2.0)])  # a third seed not run by the baseline:
    assert main([*args[:-5], "--seeds", "42,43,44", "--out", str(tmp_path), "--report"]) == 2  # no rung complete
    assert "no rung of this ladder has finished" in capsys.readouterr().err


def test_report_compares_a_rung_with_the_baselines_that_finished_it(tmp_path, capsys):
    """A ladder run in parts: at d1_s40 ours and nanochat finished every seed, nanochat-92d63d4 one seed of two.
    The rung is compared with nanochat, listed as partly run, and left out of nanochat-92d63d4's table only."""
    ladder = hand_made(tmp_path, {42: [(10, 3.0), (40, 2.0)], 43: [(10, 3.1), (40, 2.1)]},
                       {42: [(10, 3.2), (40, 2.5)], 43: [(10, 3.3), (40, 2.6)]})
    fake_run(run_dir(ladder.sweep(1, 40), "nanochat-92d63d4", 42), [(10, 3.0), (40, 2.2)])  # seed 43 missing
    args = ["ladder", "--preset", "tiny", "--depths", "1", "--steps", "40", "--recipes",
            "next,nanochat,nanochat-92d63d4", "--seeds", "42,43", "--out", str(tmp_path), "--report"]
    assert main(args) == 0
    assert "partly run: d1_s40 without nanochat-92d63d4" in capsys.readouterr().out
    [json_path] = tmp_path.glob("ladder_tiny_*.json")
    data = json.loads(json_path.read_text())
    jsonschema.validate(data, SCHEMA)
    [rung] = data["rungs"]
    assert set(rung["recipes"]) == {"next", "nanochat"} and set(rung["versus"]) == {"nanochat"}
    assert data["partial"] == {"d1_s40": ["nanochat-92d63d4"]} and data["pending"] == []
    assert data["summary"]["nanochat"]["rungs"] == 1 and data["summary"]["nanochat-92d63d4"]["rungs"] == 0
    assert data["wall_seconds"] == pytest.approx(4 * 2.0)  # the four finished runs, not the unfinished one
    md = json_path.with_suffix(".md").read_text()
    assert "**Partly run**: d1_s40 against `nanochat-92d63d4`" in md
    newest_table = md.split("## `next` vs `nanochat-92d63d4`")[1]
    assert "| d1 x 40 |" not in newest_table and "| d1 x 40 |" in md.split("## `next` vs `nanochat`")[1]
