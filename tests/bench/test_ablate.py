"""The ablation runner: grid parsing, the statistics on known samples, and a tiny real sweep that resumes
without running anything twice."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace
from pathlib import Path

import jsonschema
import pytest
from scipy import stats as scipy_stats

from nanochat_next.bench import stats
from nanochat_next.bench.ablate import PRESETS, Sweep, parse_grid, prepare
from nanochat_next.cli.main import main
from nanochat_next.errors import UserError
from nanochat_next.run_config import read_config
from nanochat_next.train.config import RECIPES, TensorRun

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "results" / "schema.json").read_text())


def test_the_grid_is_every_combination_with_the_first_values_as_baseline():
    variants = parse_grid("depth=2,4 --matrix-lr=0.02,0.03 compile=false", "tensor")
    assert [name for name, _ in variants] == ["depth=2,matrix_lr=0.02,compile=False",
                                             "depth=2,matrix_lr=0.03,compile=False",
                                             "depth=4,matrix_lr=0.02,compile=False",
                                             "depth=4,matrix_lr=0.03,compile=False"]
    assert variants[3][1] == {"depth": 4, "matrix_lr": 0.03, "compile": False}
    assert parse_grid("style=modern,classic", "tensor")[1][1] == {"style": "classic"}
    assert parse_grid("n_embd=8,16", "scalar")[0][1] == {"n_embd": 8}


def test_each_screens_one_change_at_a_time_against_the_first_values():
    variants = parse_grid("matrix_lr=0.02,0.03,0.04 warmdown_ratio=0.5,0.65", "tensor", each=True)
    assert [name for name, _ in variants] == ["baseline", "matrix_lr=0.03", "matrix_lr=0.04", "warmdown_ratio=0.65"]
    assert variants[0][1] == {"matrix_lr": 0.02, "warmdown_ratio": 0.5}
    assert variants[3][1] == {"matrix_lr": 0.02, "warmdown_ratio": 0.65}


@pytest.mark.parametrize("grid, message", [
    ("", "empty"), ("depth", "expected KEY=V1,V2"), ("depth=", "expected KEY=V1,V2"),
    ("colour=red", "not a tensor train setting"), ("seed=1,2", "not a tensor train setting"),
    ("depth=1 depth=2", "appears twice"),
])
def test_bad_grids_are_one_clear_error(grid, message):
    with pytest.raises(UserError, match=message):
        parse_grid(grid, "tensor")


def test_describe_on_a_known_sample():
    d = stats.describe([1.0, 2.0, 3.0, 4.0])
    assert d["n"] == 4 and d["mean"] == 2.5 and d["std"] == pytest.approx(math.sqrt(5 / 3))
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2  # t(0.975, 3 degrees of freedom), from tables
    assert d["ci95"] == pytest.approx([2.5 - half, 2.5 + half])


def test_the_paired_and_welch_tests_on_known_samples():
    a, b = [2.0, 2.1, 2.2, 2.05], [2.1, 2.3, 2.25, 2.2]
    diffs = [x - y for x, y in zip(a, b)]
    mean_d = sum(diffs) / 4
    t = mean_d / (math.sqrt(sum((d - mean_d) ** 2 for d in diffs) / 3) / 2)  # the paired t statistic by hand
    paired = stats.compare(a, b, paired=True)
    assert paired["difference"] == pytest.approx(-0.125)
    assert paired["p_value"] == pytest.approx(2 * scipy_stats.t.sf(abs(t), 3))
    va = sum((x - sum(a) / 4) ** 2 for x in a) / 3
    vb = sum((x - sum(b) / 4) ** 2 for x in b) / 3
    t_w = (sum(a) / 4 - sum(b) / 4) / math.sqrt(va / 4 + vb / 4)
    dof = (va / 4 + vb / 4) ** 2 / ((va / 4) ** 2 / 3 + (vb / 4) ** 2 / 3)  # Welch-Satterthwaite
    assert stats.compare(a, b)["p_value"] == pytest.approx(2 * scipy_stats.t.sf(abs(t_w), dof))
    assert stats.compare([1.0], [2.0])["p_value"] is None


@pytest.mark.parametrize("diff, p, verdict", [(-0.1, 0.001, "improvement"), (0.1, 0.001, "regression"),
                                              (-0.1, 0.02, "no significant difference"),
                                              (-0.1, None, "no significant difference")])
def test_the_acceptance_rule(diff, p, verdict):
    assert stats.verdict({"difference": diff, "p_value": p}) == verdict


@pytest.mark.slow
def test_a_tiny_sweep_runs_reports_and_resumes(tmp_path, capsys):
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"aspect_ratio": 32, "head_dim": 32, "max_seq_len": 32, "device_batch_size": 2,
                                "total_batch_size": 128, "eval_tokens": 256, "vocab_size": 300, "eval_every": 2,
                                "dtype": "float32"}))
    args = ["ablate", "--grid", "depth=1,2", "--seeds", "1,2", "--steps", "4", "--base-config", str(base), "--out",
            str(tmp_path / "sweep")]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert first.count("ETA") == 4 and "already finished" not in first
    [artifact] = (tmp_path / "sweep").glob("ablate_depth_*.json")
    data = json.loads(artifact.read_text())
    jsonschema.validate(data, SCHEMA)
    assert data["baseline"] == "depth=1" and set(data["variants"]) == {"depth=1", "depth=2"}
    assert data["variants"]["depth=2"]["paired"]["p_value"] is not None
    assert artifact.with_suffix(".md").is_file() and artifact.with_suffix(".png").stat().st_size > 1000
    run = tmp_path / "sweep" / "runs" / "depth=2" / "seed_2"
    assert json.loads((run / "config.json").read_text())["config"]["depth"] == 2  # each run reproduces itself
    (run / "model" / "config.json").unlink()  # as if killed before it finished
    assert main(args) == 0
    again = capsys.readouterr().out
    assert again.count("already finished") == 3, again  # only the unfinished run ran again
    changed = [a if a != "4" else "5" for a in args]  # the same variants with other steps: not the same runs
    assert main(changed) == 2 and "holds a different sweep" in capsys.readouterr().err


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_is_a_grid_of_valid_runs(preset, tmp_path):
    grid, each = PRESETS[preset]
    variants = parse_grid(grid, "tensor", each=each)
    assert len(variants) >= 2
    sweep = Sweep(preset, "tensor", asdict(replace(TensorRun(), **RECIPES["nanochat"])), variants, [1, 2], tmp_path)
    prepare(sweep)  # every variant's config is resolved and validated
    assert len(list((tmp_path / "variants").glob("*.json"))) == len(variants)


def test_a_sweep_written_before_a_setting_existed_still_resumes(tmp_path):
    """A variant file from an older version lacks the fields added since (found when `keep_best` arrived in the middle
    of a ladder): their defaults fill in; a changed value is still a different sweep."""
    sweep = Sweep("old", "tensor", asdict(TensorRun(steps=7)), parse_grid("matrix_lr=0.02,0.03", "tensor"), [1],
                  tmp_path)
    prepare(sweep)
    path = tmp_path / "variants" / "matrix_lr=0.02.json"
    record = json.loads(path.read_text())
    del record["config"]["keep_best"], record["config"]["early_stop"]
    path.write_text(json.dumps(record))
    prepare(sweep)  # the same sweep
    record["config"]["steps"] = 8
    path.write_text(json.dumps(record))
    with pytest.raises(UserError, match="holds a different sweep"):
        prepare(sweep)


def test_a_recipe_variant_is_the_whole_bundle(tmp_path):
    sweep = Sweep("r", "tensor", asdict(replace(TensorRun(), **RECIPES["nanochat"], steps=7)),
                  parse_grid("recipe=nanochat,next", "tensor"), [1, 2], tmp_path)
    prepare(sweep)
    nanochat = read_config(tmp_path / "variants" / "recipe=nanochat.json")[1]
    ours = read_config(tmp_path / "variants" / "recipe=next.json")[1]
    assert ours == asdict(replace(TensorRun(), steps=7))  # every recipe field reset to next's, the rest kept
    assert nanochat == asdict(replace(TensorRun(), **RECIPES["nanochat"], steps=7))
