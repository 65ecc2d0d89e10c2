"""The benchmark harness: profiles, the nanochat baseline's resolution, parsing nanochat's real output, the
scorecard's rules, and the smoke profile end to end (ours alone, as in CI; with nanochat where a checkout is
given by NANOCHAT_NEXT_TEST_NANOCHAT and NANOCHAT_NEXT_TEST_NANOCHAT_PYTHON)."""

from __future__ import annotations

import copy
import json
import os
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nanochat_next.bench import baseline, data, harness, profiles, scorecard
from nanochat_next.bench.baseline import Baseline
from nanochat_next.bench.profiles import PINNED_NANOCHAT, PROFILES, Profile
from nanochat_next.cli.main import main
from nanochat_next.corpus import fineweb_shards
from nanochat_next.errors import UserError

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
SCHEMA = json.loads((REPO / "results" / "schema.json").read_text())


@pytest.mark.parametrize("profile", PROFILES.values(), ids=lambda p: p.name)
def test_every_profile_is_a_valid_training_config(profile: Profile):
    from nanochat_next.train.processes import gradient_accumulation

    run = profile.run  # a TensorRun: validated when the table was built
    assert gradient_accumulation(run, world=1) >= 1
    assert profile.seeds[0] == 42, "nanochat's base_train always seeds 42"
    assert profile.seeds[0] != profile.seeds[1]
    assert run.dtype == "auto", "the runtime's policy picks every dtype (tests/base/test_device_policy.py)"
    assert run.device in {"cpu", "cuda"}
    assert Profile.from_flat(profile.flat()) == profile, "an artifact's config gives back its profile"
    if run.device == "cpu":
        assert profile.target_bpb is not None, "CPU profiles have a measured target"
    assert profile.corpus == "tinyshakespeare" or profile.corpus.startswith("fineweb-edu:")


def test_profile_fields_never_shadow_run_fields():
    """A profile and its run are written into one flat dict (an artifact's config) and read back from it: a name
    in both would be read into the run (the profile's 10 timing warm-up steps became a 10-step LR warmup once)."""
    from dataclasses import fields

    from nanochat_next.bench.profiles import Profile
    from nanochat_next.train.config import TensorRun

    assert not ({f.name for f in fields(Profile)} - {"run"}) & {f.name for f in fields(TensorRun)}
    for profile in PROFILES.values():
        assert Profile.from_flat(profile.flat()) == profile


def test_gpu_profiles_follow_the_dtype_rule_and_profile_choice(monkeypatch):
    import torch

    from nanochat_next import runtime

    monkeypatch.setattr(runtime, "resolve_device", lambda name: torch.device("cuda"))
    for name, capability, dtype in (("t4", (7, 5), "float16"), ("a100", (8, 0), "bfloat16"),
                                    ("h100", (9, 0), "bfloat16")):
        monkeypatch.setattr(runtime, "cuda_capability", lambda device, c=capability: c)
        resolved = profiles.resolve_profile(name)
        assert resolved.run.dtype == dtype and f"{capability[0]}.{capability[1]}" in resolved.dtype_reason
    assert profiles.profile_for_gpu(None, None) == "smoke"
    assert profiles.profile_for_gpu("Tesla T4", (7, 5)) == "t4"
    assert profiles.profile_for_gpu("NVIDIA A100-SXM4-40GB", (8, 0)) == "a100"
    assert profiles.profile_for_gpu("NVIDIA H100 80GB HBM3", (9, 0)) == "h100"
    assert profiles.profile_for_gpu("NVIDIA L4", (8, 9)) == "a100"


def test_profile_errors_are_clear(monkeypatch):
    with pytest.raises(UserError, match="unknown profile 'x'.*smoke"):
        profiles.resolve_profile("x")
    with pytest.raises(UserError, match="--steps must be positive"):
        profiles.resolve_profile("smoke", steps=0)
    smoke = profiles.resolve_profile("smoke", steps=7)
    assert (smoke.run.steps, smoke.run.device) == (7, "cpu")
    assert smoke.run.dtype in {"float32", "bfloat16"} and "measured" in smoke.dtype_reason  # auto, resolved here
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="profile 't4' runs on cuda.*--device cpu"):
            profiles.resolve_profile("t4")
        run = profiles.resolve_profile("t4", device="cpu").run
        assert run.device == "cpu" and run.dtype in {"float32", "bfloat16"}  # our CPU rule, not the T4's fp16
        with pytest.raises(UserError, match="^--device cuda: "):
            profiles.resolve_profile("smoke", device="cuda")


# ------------------------------------------------------------------------------------------- the baseline

def make_repo(path: Path) -> list[str]:
    """A git repository shaped like a nanochat checkout, with two commits; returns their hashes."""
    (path / "scripts").mkdir(parents=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    commits = []
    for i in range(2):
        (path / "scripts" / "base_train.py").write_text(f"# version {i}\n")
        for args in (["init", "-q"] if i == 0 else [], ["add", "-A"], ["commit", "-qm", f"v{i}"]):
            if args:
                subprocess.run(["git", *args], cwd=path, env=env, check=True)
        commits.append(subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True,
                                      check=True).stdout.strip())
    return commits


def test_clone_at_a_ref_into_the_cache_then_reuse_it(tmp_path, monkeypatch):
    first, _ = make_repo(tmp_path / "upstream")
    monkeypatch.setenv(baseline.NANOCHAT_URL_ENV, str(tmp_path / "upstream"))
    checkout = baseline.clone_nanochat(first, tmp_path / "cache")
    assert (checkout / "scripts" / "base_train.py").read_text() == "# version 0\n"
    assert subprocess.run(["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True).stdout.strip() \
        == first
    monkeypatch.setenv(baseline.NANOCHAT_URL_ENV, str(tmp_path / "gone"))  # offline now: the cached clone serves
    assert baseline.clone_nanochat(first, tmp_path / "cache") == checkout
    with pytest.raises(OSError, match="git clone failed"):
        baseline.clone_nanochat("0" * 40, tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [checkout.name], "no partial clone left"
    with pytest.raises(UserError, match="commit hash"):
        baseline.clone_nanochat("main; rm -rf /", tmp_path / "cache")


def test_baseline_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv(baseline.NANOCHAT_URL_ENV, str(tmp_path / "nowhere"))
    offline = baseline.resolve_baseline(None, PINNED_NANOCHAT, None, cache=tmp_path)
    assert offline.status == "not run" and "cloning 2f096867244e failed" in offline.reason
    assert baseline.resolve_baseline(None, None, None).status == "not run"
    with pytest.raises(UserError, match="not a nanochat checkout"):
        baseline.resolve_baseline(str(tmp_path), None, None)
    make_repo(tmp_path / "fake")  # looks like a checkout, but nanochat's modules are not there
    fake = baseline.resolve_baseline(str(tmp_path / "fake"), None, sys.executable)
    assert fake.status == "not run" and "cannot run nanochat's training script" in fake.reason
    assert fake.commit and fake.dirty is False


# --------------------------------------------------------------------------------------- data and parsing

def test_tokenizer_texts_follow_nanochat_tok_train(tmp_path):
    docs = ["a" * 6000, "b" * 12000, "c" * 5000, "d"]
    pq.write_table(pa.table({"text": docs[:2]}), tmp_path / "shard_00000.parquet", row_group_size=1)
    pq.write_table(pa.table({"text": docs[2:]}), tmp_path / "shard_00001.parquet")
    pq.write_table(pa.table({"text": ["val"]}), tmp_path / "shard_00002.parquet")
    lengths = [len(t) for t in data.tokenizer_texts(tmp_path, max_chars=15000, doc_cap=10000)]
    assert lengths == [6000, 10000]  # capped at 10000; the document that passes max_chars is the last one
    assert [len(t) for t in data.tokenizer_texts(tmp_path, max_chars=10**9)] == [6000, 10000, 5000, 1]
    assert data.first_validation_text(tmp_path) == "val"


def test_fineweb_shards_download_once_and_refuse_bad_files(tmp_path, monkeypatch):
    remote = tmp_path / "remote"
    remote.mkdir()
    for i in range(3):
        pq.write_table(pa.table({"text": [f"doc {i}"]}), remote / f"shard_{i:05d}.parquet")
    monkeypatch.setenv("NANOCHAT_NEXT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NANOCHAT_NEXT_FINEWEB_URL", remote.as_uri())
    paths = fineweb_shards(3)
    assert [p.name for p in paths] == ["shard_00000.parquet", "shard_00001.parquet", "shard_00002.parquet"]
    assert pq.read_table(paths[2]).column("text").to_pylist() == ["doc 2"]
    for p in remote.iterdir():
        p.unlink()
    assert fineweb_shards(3, allow_download=False) == paths  # cached: no network needed
    with pytest.raises(UserError, match="not cached and downloads are off"):
        fineweb_shards(4, allow_download=False)
    (remote / "shard_00003.parquet").write_text("<html>rate limited</html>")
    with pytest.raises(UserError, match="not a readable parquet file"):
        fineweb_shards(4)
    assert not (tmp_path / "cache" / "fineweb-edu" / "shard_00003.parquet").exists()
    assert [p.name for p in (tmp_path / "cache" / "fineweb-edu").iterdir() if p.name.startswith(".")] == []
    with pytest.raises(UserError, match="between 2 and"):
        fineweb_shards(1)


def test_parse_nanochat_log_recorded_from_the_pinned_ref():
    text = (FIXTURES / "nanochat_smoke_train.log").read_text()
    parsed = baseline.parse_nanochat_log(text)
    smoke = PROFILES["smoke"]
    assert len(parsed["dt"]) == len(parsed["tok_per_s"]) == len(parsed["smooth_losses"]) == smoke.run.steps
    assert [e["step"] for e in parsed["evals"]] == list(range(0, smoke.run.steps + 1, smoke.run.eval_every))
    minimum = float(text.split("Minimum validation bpb: ")[1].split()[0])  # nanochat's own summary line
    assert min(e["val_bpb"] for e in parsed["evals"]) == minimum
    assert parsed["reported_peak_memory_mb"] == 0.0  # nanochat reports no memory on CPU: we measure RSS
    summary = scorecard.summarize(parsed, smoke.warmup_steps, smoke.target_bpb)
    steady = parsed["tok_per_s"][smoke.warmup_steps:]
    assert summary["tok_per_s"] == {"median": statistics.median(steady), "min": min(steady), "max": max(steady)}
    with pytest.raises(ValueError, match="no step lines"):
        baseline.parse_nanochat_log("Traceback ...")


def test_parse_nanochat_log_recorded_from_its_newest_commit():
    """92d63d4 prints more fields on its step lines (mfu, epoch, total time) and renames no flag: the same parser
    reads it (the log recorded by tools/make_bench_fixture.py)."""
    text = (FIXTURES / "nanochat_newest_smoke_train.log").read_text()
    assert "COMPUTE_DTYPE: torch.float32" in text, "it ran fp32 on the CPU, as the bench reports"
    parsed = baseline.parse_nanochat_log(text)
    smoke = PROFILES["smoke"]
    assert len(parsed["dt"]) == len(parsed["smooth_losses"]) == smoke.run.steps
    assert [e["step"] for e in parsed["evals"]] == list(range(0, smoke.run.steps + 1, smoke.run.eval_every))
    minimum = float(text.split("Minimum validation bpb: ")[1].split()[0])
    assert min(e["val_bpb"] for e in parsed["evals"]) == minimum


def test_flops_and_dtype_read_from_both_commits_logs():
    pinned = baseline.parse_nanochat_log((FIXTURES / "nanochat_smoke_train.log").read_text())
    newest = baseline.parse_nanochat_log((FIXTURES / "nanochat_newest_smoke_train.log").read_text())
    assert pinned["compute_dtype"] is None and newest["compute_dtype"] == "float32"  # only 92d63d4 prints it
    # both count FLOPs per token as estimate_flops does; the same depth-2 shape: within the smear gate's few
    assert pinned["flops_per_token"] == pytest.approx(3.146112e6) and newest["flops_per_token"] == pytest.approx(
        pinned["flops_per_token"], rel=1e-3)


def test_mfu_and_mbu_against_the_measured_peaks():
    runs = {"ours": {"dtype": "bfloat16", "flops_per_token": 1e6, "tok_per_s": {"median": 5000.0}},
            "nanochat": {"dtype": "float32", "flops_per_token": 1e6, "tok_per_s": {"median": 4000.0}},
            "nanochat_newest": None}
    decode = {"ours": {"by_batch": {1: {"decode_tok_s": 100.0}, 8: {"decode_tok_s": 400.0}}},
              "nanochat": {"error": "it failed"},
              "bytes": {"weights": 1_000_000, "kv_per_position": 1000, "mean_positions": 50}}
    peaks = {"matmul_flops": {"float32": 1e10, "bfloat16": 5e10}, "memory_bandwidth_bytes_s": 1e9}
    harness.add_utilisation(runs, decode, peaks)
    assert runs["ours"]["mfu"] == pytest.approx(1e6 * 5000 / 5e10)  # against the bf16 peak
    assert runs["nanochat"]["mfu"] == pytest.approx(1e6 * 4000 / 1e10)
    # batch 1: 100 steps/s x (1 MB of weights + 50 positions x 1 kB); batch 8: 50 steps/s x (1 MB + 8 x 50 kB)
    assert decode["ours"]["by_batch"][1]["mbu"] == pytest.approx(100 * 1_050_000 / 1e9)
    assert decode["ours"]["by_batch"][8]["mbu"] == pytest.approx(50 * 1_400_000 / 1e9)
    assert scorecard.run_dtype({"dtype": "bfloat16 autocast"}) == "bfloat16"
    assert scorecard.run_dtype({"dtype": "float32"}) == "float32"


def test_summarize_time_axis_and_target():
    raw = {"tok_per_s": [1, 100, 100, 100], "dt": [9.0, 1.0, 2.0, 1.0],
           "evals": [{"step": 0, "val_bpb": 3.0}, {"step": 2, "val_bpb": 2.0}, {"step": 4, "val_bpb": 1.0}]}
    s = scorecard.summarize(raw, warmup=1, target_bpb=2.5)
    assert [e["train_time_s"] for e in s["evals"]] == [0.0, 2.0, 5.0]  # step 0's 9 s counted as the median 1 s
    assert (s["time_to_target_s"], s["steps_to_target"], s["final_val_bpb"]) == (2.0, 2, 1.0)
    assert s["tok_per_s"] == {"median": 100, "min": 100, "max": 100}
    assert scorecard.summarize(raw, 1, 0.5)["time_to_target_s"] is None
    assert scorecard.smooth([2.0, 4.0])[0] == 2.0 and scorecard.smooth([2.0, 4.0])[1] == pytest.approx(
        (0.9 * 0.1 * 2 + 0.1 * 4) / (1 - 0.81))


def test_steady_speed_leaves_out_warm_up_and_recompiles():
    # a first run whose compile leaks into later steps (a cold cache): 5 warm-up steps, then two slow outliers
    dts = [30.0, 9.0, 5.0, 2.0, 1.0] + [0.1] * 10 + [2.5, 0.1, 0.1, 3.0] + [0.1] * 10
    steady = scorecard.steady_steps(dts, warmup=5)
    assert steady == [i for i in range(5, len(dts)) if dts[i] == 0.1]
    raw = {"tok_per_s": [512 / d for d in dts], "dt": dts, "evals": [{"step": 0, "val_bpb": 3.0}]}
    assert scorecard.summarize(raw, 5, None)["tok_per_s"]["median"] == pytest.approx(5120)
    # an identical warm rerun gives the same steady figure: the compile cache no longer decides it
    warm = {"tok_per_s": [5120.0] * len(dts), "dt": [0.1] * len(dts), "evals": raw["evals"]}
    assert scorecard.summarize(warm, 5, None)["tok_per_s"]["median"] == pytest.approx(5120)
    assert scorecard.steady_steps([0.5, 0.5], warmup=5) == [0, 1], "too short to leave anything out"


def test_run_process_measures_peak_rss_and_reports_failures(tmp_path):
    grow = "b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096])"
    result = baseline.run_process([sys.executable, "-c", grow], tmp_path, dict(os.environ), tmp_path / "log")
    assert result["peak_rss_mb"] > 300
    with pytest.raises(RuntimeError, match="(?s)exited 3.*boom"):
        baseline.run_process([sys.executable, "-c", "print('boom'); raise SystemExit(3)"], tmp_path, dict(os.environ),
                          tmp_path / "log")


# ------------------------------------------------------------------------------------------- the scorecard

def side(bpb: float, tps: float, ttt: float | None) -> dict:
    return {"final_val_bpb": bpb, "tok_per_s": {"median": tps}, "time_to_target_s": ttt}


REPRO = {"identical_rerun": True, "max_abs_loss_diff": 0.0, "seed_spread_bpb": 0.001, "missing_metadata": [],
         "our_tree_clean": True}
CPU = PROFILES["cpu"]  # three seeds, margin 0.02 with significance, time ratio 1.3


def runs_for(ours, ref=(), nc=(2.05, 100, 13.0), tps=110, ttt=(10.0, 10.0, 10.0)) -> dict:
    """Our seeds' runs (bpb each), our nanochat-recipe runs (bpb each) and nanochat's (bpb, tok/s, time)."""
    keys = ["ours", "ours_seed2", "ours_seed3"]
    runs = {k: side(b, tps, t) for k, b, t in zip(keys, ours, ttt)}
    runs.update({f"nanochat_recipe_seed{i + 1}": side(b, tps, None) for i, b in enumerate(ref)})
    runs["nanochat"] = None if nc is None else side(*nc)
    return runs


def statuses(runs: dict, repro=REPRO, baseline: Baseline | None = None, profile: Profile = CPU) -> list[str]:
    baseline = baseline or Baseline("run")
    rows = scorecard.scorecard(profile, runs, baseline, repro, harness.quality_test(profile, runs))
    assert [r["row"] for r in rows] == ["quality", "speed", "reproducibility"]
    return [r["status"] for r in rows]


def test_quality_needs_the_margin_and_significance_against_our_nanochat_recipe():
    better = (2.020, 2.025, 2.015)
    ref = (2.050, 2.056, 2.044)  # the same seeds under the nanochat recipe: 0.03 worse, consistently
    assert statuses(runs_for(better, ref)) == ["pass", "pass", "pass"]
    assert statuses(runs_for((2.04, 2.045, 2.035), (2.07, 2.076, 2.064)))[0] == "fail"  # only 0.01 below nanochat
    assert statuses(runs_for(better, (2.09, 2.02, 2.03)))[0] == "fail"  # below, but not significant (p > 0.01)
    assert statuses(runs_for(better))[0] == "fail"  # no nanochat-recipe runs: no p-value, no claim
    smoke = PROFILES["smoke"]  # a negative margin: parity within 0.02, no test needed
    assert statuses(runs_for((2.06, 2.065), nc=(2.05, 100, 13.0)), profile=smoke)[0] == "pass"
    assert statuses(runs_for((2.08, 2.075), nc=(2.05, 100, 13.0)), profile=smoke)[0] == "fail"


def test_speed_counts_time_to_nanochats_final_bpb_over_our_seeds():
    better, ref = (2.020, 2.025, 2.015), (2.050, 2.056, 2.044)
    assert statuses(runs_for(better, ref, nc=(2.05, 100, 12.0)))[1] == "fail"  # 1.2x < 1.3
    assert statuses(runs_for(better, ref, tps=99))[1] == "fail"  # slower tok/s
    assert statuses(runs_for(better, ref, ttt=(10.0, None, None)))[1] == "fail"  # the median seed never got there
    assert statuses(runs_for(better, ref, ttt=(10.0, 9.0, None)))[1] == "pass"
    assert statuses(runs_for(better, ref, nc=(2.05, 100, None)))[1] == "pass"  # only ours reached it


def newest_side(bpb: float, tps: float) -> dict:
    """nanochat 92d63d4's run: its final bpb, tok/s and 12 s to reach that bpb."""
    return {"final_val_bpb": bpb, "tok_per_s": {"median": tps}, "time_to_target_s": 12.0}


def with_evals(runs: dict, evals=((0, 4.0, 0.0), (10, 2.04, 5.0), (20, 2.02, 10.0))) -> dict:
    for key in ("ours", "ours_seed2", "ours_seed3"):
        runs[key]["evals"] = [{"step": s, "val_bpb": b, "train_time_s": t} for s, b, t in evals]
    return runs


def test_the_second_baseline_gets_its_own_quality_and_speed_rows():
    better, ref = (2.020, 2.025, 2.015), (2.050, 2.056, 2.044)
    newer = (2.045, 2.052, 2.041)  # our runs of the nanochat-92d63d4 recipe, same seeds
    runs = with_evals(runs_for(better, ref))
    runs.update({f"newest_recipe_seed{i + 1}": side(b, 110, None) for i, b in enumerate(newer)})
    runs["nanochat_newest"] = newest_side(2.045, 100)
    quality = harness.quality_test(CPU, runs)
    assert quality["paired_vs_newest_recipe"]["difference"] == pytest.approx(-0.026, abs=1e-9)
    rows = scorecard.scorecard(CPU, runs, Baseline("run"), REPRO, quality, newest=Baseline("run", commit="92d63d4"))
    assert [r["row"] for r in rows] == ["quality", "speed", "quality vs newest", "speed vs newest", "reproducibility"]
    assert [r["status"] for r in rows] == ["pass"] * 5
    # our time to the newest's final bpb (2.045) is read off our evals: 5 s at step 10, vs its 12 s
    assert rows[3]["value"]["time_to_target_ratio"] == pytest.approx(12.0 / 5.0)
    assert "nanochat 92d63d4" in rows[2]["detail"] and "nanochat-92d63d4-recipe" in rows[2]["threshold"]
    # within the margin of the newest: its row fails while the pinned ref's passes
    runs["nanochat_newest"] = newest_side(2.030, 100)
    rows = scorecard.scorecard(CPU, runs, Baseline("run"), REPRO, harness.quality_test(CPU, runs),
                               newest=Baseline("run"))
    assert [r["status"] for r in rows][:3] == ["pass", "pass", "fail"]
    # not significant against our runs of its recipe: fails too
    runs["nanochat_newest"] = newest_side(2.045, 100)
    runs.update({f"newest_recipe_seed{i + 1}": side(b, 110, None) for i, b in enumerate((2.09, 2.02, 2.03))})
    rows = scorecard.scorecard(CPU, runs, Baseline("run"), REPRO, harness.quality_test(CPU, runs),
                               newest=Baseline("run"))
    assert rows[2]["status"] == "fail"
    # the second baseline offline: its rows say so, the pinned ref's rows are still decided
    runs["nanochat_newest"] = None
    rows = scorecard.scorecard(CPU, runs, Baseline("run"), REPRO, harness.quality_test(CPU, runs),
                               newest=Baseline("not run", "offline"))
    assert [r["status"] for r in rows] == ["pass", "pass", "baseline: not run", "baseline: not run", "pass"]


def test_our_runs_add_the_newest_recipe_on_every_seed_only_when_it_runs():
    keys = [(k, s, c) for k, s, c in harness.our_runs(CPU, newest=True) if k.startswith("newest_recipe")]
    assert keys == [(f"newest_recipe_seed{i + 1}", s, "newest_recipe.json") for i, s in enumerate(CPU.seeds)]
    assert not [k for k, _, _ in harness.our_runs(CPU) if k.startswith("newest_recipe")]
    from nanochat_next.train.config import NANOCHAT_NEWEST

    recipe = harness.REFERENCE_RECIPES["nanochat_newest"][2]
    assert recipe == NANOCHAT_NEWEST == f"nanochat-{profiles.NEWEST_NANOCHAT[:7]}"


def test_seeds_override_every_run_of_ours_and_the_rerun_uses_the_first():
    profile = profiles.resolve_profile("cpu", seeds=(101, 102, 103, 104, 105))
    assert profile.seeds == (101, 102, 103, 104, 105) and profile.run == profiles.resolve_profile("cpu").run
    runs = harness.our_runs(profile, newest=True)
    assert [(k, s) for k, s, _ in runs[:3]] == [("ours", 101), ("ours_rerun", 101), ("ours_seed2", 102)]
    for prefix, seeds in (("ours_seed", [102, 103, 104, 105]), ("nanochat_recipe_seed", [101, 102, 103, 104, 105]),
                          ("newest_recipe_seed", [101, 102, 103, 104, 105])):
        assert sorted(s for k, s, _ in runs if k.startswith(prefix)) == seeds
    fp32 = [(k, s, c) for k, s, c in runs if k == "ours_fp32"]  # only where our dtype choice is not float32
    assert fp32 == ([] if profile.run.dtype == "float32" else [("ours_fp32", 101, harness.FP32_CONFIG)])
    assert len(runs) == 2 + 4 + 5 + 5 + len(fp32)


def test_the_fp32_run_is_asked_for_by_the_cpu_profile_only_and_only_where_ours_is_not_fp32():
    cpu = replace(CPU, run=replace(CPU.run, dtype="bfloat16"))
    assert ("ours_fp32", CPU.seeds[0], harness.FP32_CONFIG) in harness.our_runs(cpu)
    assert "ours_fp32" not in [k for k, _, _ in harness.our_runs(replace(CPU, run=replace(CPU.run, dtype="float32")))]
    smoke = replace(PROFILES["smoke"], run=replace(PROFILES["smoke"].run, dtype="bfloat16"))
    assert "ours_fp32" not in [k for k, _, _ in harness.our_runs(smoke)]


def test_speed_by_dtype_rows_and_targets():
    def run(dtype: str, tps: float) -> dict:
        return {"dtype": dtype, "tok_per_s": {"median": tps}}

    nanochat = run("float32", 1000.0)
    rows = scorecard.speed_by_dtype({"nanochat": nanochat, "ours": run("bfloat16", 2100.0),
                                     "ours_fp32": run("float32", 1200.0)}, "bfloat16")
    assert [(r["run"], r["ours_dtype"], r["forced"]) for r in rows] == [("ours_fp32", "float32", True),
                                                                         ("ours", "bfloat16", False)]
    assert [r["ratio"] for r in rows] == pytest.approx([1.2, 2.1])
    assert [(r["target"], r["met"]) for r in rows] == [(1.3, False), (2.0, True)]
    assert all(r["muon_dtype"] == "bfloat16" for r in rows)
    # our choice is float32: one row, the first seed's own run
    rows = scorecard.speed_by_dtype({"nanochat": nanochat, "ours": run("float32", 1400.0)}, "float32")
    assert [(r["run"], r["forced"], r["met"]) for r in rows] == [("ours", True, True)]
    assert scorecard.speed_by_dtype({"nanochat": None, "ours": run("float32", 1.0)}, "float32") is None
    md = "\n".join(scorecard.speed_by_dtype_section({"speed_by_dtype": rows}))
    assert "| float32 (forced) | float32 | 1,400 | 1,000 (float32) | 1.40x | >= 1.3x: met |" in md
    assert scorecard.speed_by_dtype_section({"speed_by_dtype": None}) == []


def test_reproducibility_rules():
    runs = runs_for((2.02, 2.025, 2.015), (2.05, 2.056, 2.044))
    assert statuses(runs, {**REPRO, "identical_rerun": False, "max_abs_loss_diff": 1e-6})[2] == "fail"
    assert statuses(runs, {**REPRO, "missing_metadata": ["our commit"]})[2] == "fail"
    assert statuses(runs, {**REPRO, "our_tree_clean": False})[2] == "fail"


def test_without_a_baseline_quality_and_speed_never_pass():
    for status in ("not run", "failed"):
        got = statuses(runs_for((1.0, 1.0, 1.0), nc=None), baseline=Baseline(status, "offline"))
        assert got == [f"baseline: {status}", f"baseline: {status}", "pass"]


def test_schema_refuses_a_pass_without_a_baseline():
    artifact = json.loads((FIXTURES / "bench_smoke_with_nanochat.json").read_text())
    jsonschema.validate(artifact, SCHEMA)
    forged = copy.deepcopy(artifact)
    forged["baseline"]["status"] = "not run"
    forged["runs"]["nanochat"] = None
    with pytest.raises(jsonschema.ValidationError, match="does not match '\\^baseline: '"):
        jsonschema.validate(forged, SCHEMA)
    undecided = copy.deepcopy(artifact)
    undecided["scorecard"][0]["status"] = "baseline: not run"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(undecided, SCHEMA)
    assert [r["row"] for r in artifact["scorecard"]][2:4] == ["quality vs newest", "speed vs newest"]
    forged = copy.deepcopy(artifact)  # the second baseline did not run, yet its rows pass
    forged["baseline_newest"]["status"] = "not run"
    forged["runs"]["nanochat_newest"] = None
    with pytest.raises(jsonschema.ValidationError, match="does not match '\\^baseline: '"):
        jsonschema.validate(forged, SCHEMA)
    missing = copy.deepcopy(artifact)  # it ran, but its run is not in the artifact
    del missing["runs"]["nanochat_newest"]
    with pytest.raises(jsonschema.ValidationError, match="nanochat_newest"):
        jsonschema.validate(missing, SCHEMA)


def test_recorded_run_with_nanochat_rescored_gives_the_same_verdict():
    """A smoke run against nanochat at the pinned ref and at 92d63d4 (tools/make_bench_fixture.py): today's
    scorecard rules applied to its measurements give the verdict it recorded."""
    artifact = json.loads((FIXTURES / "bench_smoke_with_nanochat.json").read_text())
    assert artifact["baseline"]["commit"] == PINNED_NANOCHAT
    assert artifact["baseline_newest"]["commit"] == profiles.NEWEST_NANOCHAT
    assert artifact["baseline_newest"]["status"] == "run"
    assert artifact["same_tokenizer"] and artifact["same_greedy_tokens"]
    profile = Profile.from_flat(artifact["config"])
    rows = scorecard.scorecard(profile, artifact["runs"], Baseline(**artifact["baseline"]),
                               artifact["reproducibility"], artifact.get("quality"),
                               Baseline(**artifact["baseline_newest"]))
    decided = [{k: r[k] for k in ("row", "status", "value", "threshold")} for r in rows]  # not the prose
    assert decided == [{k: r[k] for k in ("row", "status", "value", "threshold")} for r in artifact["scorecard"]]


# ------------------------------------------------------------------------------------------- end to end

def check_artifact(out: Path) -> dict:
    [json_path] = out.glob("bench_smoke_*.json")
    assert json_path.with_suffix(".md").is_file()
    data = json.loads(json_path.read_text())
    jsonschema.validate(data, SCHEMA)
    repro = data["reproducibility"]
    assert repro["identical_rerun"] and repro["max_abs_loss_diff"] == 0.0, "one seed, compiled: identical losses"
    assert repro["missing_metadata"] == []
    assert repro["seed_spread_bpb"] > 0, "a second seed changes the run"
    rows = {r["row"]: r["status"] for r in data["scorecard"]}
    assert rows["reproducibility"] == ("pass" if repro["our_tree_clean"] else "fail")
    ours = data["runs"]["ours"]
    assert [e["step"] for e in ours["evals"]] == [0, 10, 20, 30]
    assert ours["evals"][-1]["val_bpb"] < ours["evals"][0]["val_bpb"] - 0.1
    assert ours["peak_memory_mb"] > 50 and ours["decode_tok_s"] > 0
    assert 0 < ours["mfu"] < 1, "against the matmul peak measured in the same run"
    for engine in ("ours", "ours_eager"):  # the compiled step (what --compile gives) and the eager engine
        by_batch = data["decode"][engine]["by_batch"]
        assert set(by_batch) == {"1", "8"} and all(0 < r["mbu"] < 2 for r in by_batch.values())
    assert ours["decode_tok_s"] == data["decode"]["ours"]["by_batch"]["1"]["decode_tok_s"]
    md = json_path.with_suffix(".md").read_text()
    assert "## Decode" in md
    # smoke checks the pipeline: its compiled step keeps Inductor's defaults (autotuning is 20-60 s per batch size)
    assert data["config"]["decode_autotune"] is False and "not autotuned: this profile checks the pipeline" in md
    return data


@pytest.mark.slow
def test_smoke_bench_offline_runs_ours_alone(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(baseline.NANOCHAT_URL_ENV, str(tmp_path / "no-network"))
    assert main(["bench", "--profile", "smoke", "--out", str(tmp_path), "--no-progress"]) == 0
    data = check_artifact(tmp_path)
    assert data["baseline"]["status"] == "not run" and "cloning" in data["baseline"]["reason"]
    assert data["baseline_newest"]["status"] == "not run" and "--nanochat-newest" in data["baseline_newest"]["reason"]
    assert [r["status"] for r in data["scorecard"][:4]] == ["baseline: not run"] * 4
    assert data["runs"]["nanochat"] is None
    report = next(tmp_path.glob("bench_smoke_*.md")).read_text()
    assert "| quality | baseline: not run |" in report and "Baseline not run:" in report
    assert "baseline not run" in capsys.readouterr().out


NANOCHAT = os.environ.get("NANOCHAT_NEXT_TEST_NANOCHAT")


@pytest.mark.slow
@pytest.mark.skipif(not NANOCHAT, reason="set NANOCHAT_NEXT_TEST_NANOCHAT (a checkout at the pinned ref) and "
                                         "NANOCHAT_NEXT_TEST_NANOCHAT_PYTHON to run the smoke profile against it")
def test_smoke_bench_against_nanochat(tmp_path):
    python = os.environ.get("NANOCHAT_NEXT_TEST_NANOCHAT_PYTHON", sys.executable)
    newest = os.environ.get("NANOCHAT_NEXT_TEST_NANOCHAT_NEWEST")  # a checkout at 92d63d4, if given
    assert main(["bench", "--profile", "smoke", "--nanochat", NANOCHAT, "--nanochat-python", python, "--out",
                 str(tmp_path), "--no-progress", *(["--nanochat-newest", newest] if newest else ["--no-newest"])]) == 0
    data = check_artifact(tmp_path)
    assert data["baseline"]["status"] == "run" and data["same_tokenizer"] and data["same_greedy_tokens"]
    assert data["baseline"]["versions"]["torch"], "the Python that ran nanochat is on record"
    ours, theirs = data["runs"]["ours"], data["runs"]["nanochat"]
    assert ours["evals"][0]["val_bpb"] == pytest.approx(theirs["evals"][0]["val_bpb"], abs=1e-5)  # same init
    assert data["scorecard"][0]["status"] == "pass"


def test_bench_cli_bad_input_is_one_clear_line(tmp_path, capsys):
    import torch

    cases = [(["--profile", "smoke", "--nanochat", str(tmp_path)], "not a nanochat checkout"),
             (["--profile", "smoke", "--nanochat", str(tmp_path), "--no-baseline"], "contradict"),
             (["--profile", "smoke", "--nanochat-newest", str(tmp_path), "--no-newest"], "contradict"),
             (["--profile", "smoke", "--nanochat-newest", str(tmp_path)], "--nanochat-newest"),
             (["--profile", "smoke", "--nanochat-ref", "not-a-sha"], "commit hash"),
             (["--profile", "smoke", "--steps", "-3"], "--steps: expected a positive integer"),
             (["--profile", "smoke", "--seeds", "101,x"], "--seeds: expected comma-separated ints"),
             (["--profile", "smoke", "--seeds", "101,102,101"], "--seeds: expected distinct seeds")]
    if not torch.cuda.is_available():
        cases.append((["--profile", "a100"], "runs on cuda"))
    for args, message in cases:
        assert main(["bench", *args, "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err, err
    assert not (tmp_path / "out").exists(), "nothing is written for bad input"


def fake_nanochat(path: Path) -> Path:
    """A checkout that passes the import check but whose tokenizer training fails, as a broken nanochat would."""
    make_repo(path)
    (path / "nanochat").mkdir()
    for module in ("__init__", "gpt", "dataloader", "tokenizer", "checkpoint_manager", "loss_eval", "engine",
                   "report"):
        (path / "nanochat" / f"{module}.py").write_text("")
    (path / "scripts" / "__init__.py").write_text("")
    (path / "scripts" / "base_eval.py").write_text("")
    (path / "wandb.py").write_text("")
    (path / "scripts" / "tok_train.py").write_text("raise SystemExit('tokenizer exploded')\n")
    return path


@pytest.mark.slow
def test_a_failing_baseline_is_reported_and_ours_still_runs(tmp_path, monkeypatch):
    # eager: torch.compile costs ~8 s in each of the five runs, and compiling is not what this test is about
    smoke = PROFILES["smoke"]
    monkeypatch.setitem(PROFILES, "smoke", replace(smoke, run=replace(smoke.run, compile=False)))
    checkout = fake_nanochat(tmp_path / "nanochat")
    result = harness.run_bench(harness.BenchOptions("smoke", nanochat=str(checkout), newest_ref=None,
                                                    out=str(tmp_path / "out"), steps=3, progress=False),
                               log=lambda _: None)
    assert result["baseline"]["status"] == "failed"
    assert "tokenizer training failed" in result["baseline"]["reason"] and "tokenizer exploded" in \
        result["baseline"]["reason"]
    assert [r["status"] for r in result["scorecard"][:2]] == ["baseline: failed"] * 2
    assert result["runs"]["ours"]["evals"], "ours ran without the baseline"
    work = Path(result["artifacts"]["work"])
    assert "tokenizer exploded" in (work / "nanochat_tok.log").read_text(), "the failing log is kept"
    jsonschema.validate(json.loads(Path(result["artifacts"]["json"]).read_text()), SCHEMA)
