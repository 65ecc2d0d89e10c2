"""The CPU dtypes are decided by measurement: the rule on injected figures, the quality guards and the artifacts
they come from, a probe whose cost is bounded on every CPU kind (simulated, never timed on large shapes here),
and a cache that is never trusted across another CPU, torch or shape."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from nanochat_next import dtype_choice
from nanochat_next.dtype_choice import DtypeMeasurement, decide
from nanochat_next.train import recipe
from nanochat_next.train.config import build_model

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


def test_the_muon_quality_guard_is_the_measured_one():
    """Muon's bf16 orthogonalisation against float32 (results/muon_dtype.json): one finished pair of seeds and a
    second to step 100, every evaluation within 3e-4 bpb (~1/90 of the seed spread); the guard is their gap."""
    artifact = json.loads((REPO / "results" / "muon_dtype.json").read_text())
    assert pytest.approx(artifact["bf16_minus_fp32_val_bpb"], abs=5e-5) == dtype_choice.MUON_BF16_QUALITY_GAP
    assert artifact["max_abs_gap_any_eval"] < artifact["fp32_seed_spread"] / 10


def test_the_probe_times_both_dtypes_on_tiny_shapes():
    fp32, bf16, rounds, _ = dtype_choice.race(dtype_choice.matmul_items([(64, 32, 32), (64, 32, 128)]), rounds=2)
    assert fp32 > 0 and bf16 > 0 and 1 <= rounds <= 2


# Simulated CPUs: GFLOP/s of (fp32, bf16) work, from results/cpu_dtype*.md and results/muon_dtype.md (the AVX2 figures
# of a shared, busy machine: the slowest a user is likely to meet)
CPU_KINDS = {"amx": (150.0, 375.0), "avx512_bf16": (150.0, 75.0), "avx2": (13.0, 0.5)}


class SimulatedCPU:
    """A clock that advances by each work item's FLOPs at the kind's rate; counts what was run. ``jit`` seconds
    more on a kernel's first call in each dtype (oneDNN builds it then)."""

    def __init__(self, monkeypatch, kind: str, jit: tuple[float, float] = (0.0, 0.0)):
        self.now, self.runs = 0.0, {torch.float32: 0, torch.bfloat16: 0}
        self.rates = dict(zip(dtype_choice.DTYPE_PAIR, CPU_KINDS[kind]))
        self.jit, self.built = dict(zip(dtype_choice.DTYPE_PAIR, jit)), set()
        monkeypatch.setattr(dtype_choice, "CLOCK", lambda: self.now)

    def items(self, items):
        def run(dtype, flops, index):
            self.runs[dtype] += 1
            self.now += flops / (self.rates[dtype] * 1e9)
            if (index, dtype) not in self.built:
                self.built.add((index, dtype))
                self.now += self.jit[dtype]
        return [dtype_choice.WorkItem(lambda dtype, f=item.flops, i=i: run(dtype, f, i), item.weight, item.flops)
                for i, item in enumerate(items)]


@pytest.mark.parametrize("kind, chosen", [("amx", True), ("avx512_bf16", False), ("avx2", False)])
def test_the_default_model_gets_the_same_dtype_as_before_on_every_cpu_kind(monkeypatch, kind, chosen):
    cpu = SimulatedCPU(monkeypatch, kind)
    fp32, bf16, rounds, stopped = dtype_choice.race(cpu.items(dtype_choice.matmul_items(dtype_choice.DEFAULT_SHAPES)))
    use, _ = decide(DtypeMeasurement(fp32, bf16, "k", rounds, stopped))
    assert use is chosen
    assert cpu.now < dtype_choice.BUDGET_SECONDS + 1, f"the probe took {cpu.now:.1f} s of simulated time"
    if kind == "avx2":  # bf16 emulated: decided after one item, its bf16 run (after one untimed warm-up run)
        assert cpu.runs[torch.bfloat16] == 2 and rounds == 1 and "stopped early" in stopped
    if kind == "amx":
        assert rounds == dtype_choice.ROUNDS and stopped == ""


@pytest.mark.parametrize("kind", list(CPU_KINDS))
def test_every_bench_profile_resolves_on_the_cpu_within_seconds(monkeypatch, tmp_path, kind):
    """The probe's cost is bounded whatever the model (the t4/a100/h100 configs on a CPU: 16k-token micro-batches,
    vocab 32768), on every CPU kind: simulated, so the test is fast on any machine."""
    from nanochat_next.bench import profiles

    monkeypatch.setenv("NANOCHAT_NEXT_CACHE", str(tmp_path))
    cpu = SimulatedCPU(monkeypatch, kind)
    real, real_muon = dtype_choice.matmul_items, recipe.orthogonalize_items
    monkeypatch.setattr(dtype_choice, "matmul_items", lambda shapes: cpu.items(real(shapes)))
    monkeypatch.setattr(recipe, "orthogonalize_items", lambda shapes: cpu.items(real_muon(shapes)))
    real_attention = dtype_choice.attention_items
    # eager kernels whatever the profile compiles: the simulated CPU times them, compiling would only cost seconds
    monkeypatch.setattr(dtype_choice, "attention_items",
                        lambda shape, attend, compiled=False: cpu.items(real_attention(shape, attend)))
    for name in profiles.PROFILES:
        start = cpu.now
        profile = profiles.resolve_profile(name, device="cpu")
        run = profile.run
        assert run.device == "cpu" and run.dtype in {"float32", "bfloat16"}
        # Muon's dtype decided here, once, for every run of the bench (not "auto" left to each run's process)
        assert run.muon_dtype in {"float32", "bfloat16"} and "measured" in profile.muon_dtype_reason
        if kind == "avx2":
            assert run.muon_dtype == "float32", "bf16 emulated: Muon orthogonalises in fp32"
        assert cpu.now - start < 5.0, f"{name} on {kind}: {cpu.now - start:.1f} s"


def test_a_benchmarks_runs_keep_the_muon_dtype_it_resolved(monkeypatch, tmp_path):
    """CI, 2026-12-02 (Xeon with AMX, where bf16 orthogonalises only 1.1x faster): each run of a bench resolved Muon's
    "auto" dtype on its own, from the probe's cache; a test running beside the bench measured the same shapes and
    rewrote that cache with the other answer, so the bench's rerun of its first seed orthogonalised in the other
    dtype and its losses differed ("identical rerun" failed). The profile now carries the dtype, and a run built
    from it ignores whatever the cache says later."""
    from nanochat_next.bench import profiles

    monkeypatch.setenv("NANOCHAT_NEXT_CACHE", str(tmp_path))
    monkeypatch.setattr(dtype_choice, "race", lambda items, **kw: (0.2, 0.1, 5, ""))  # injected: bf16 2x, any CPU
    profile = profiles.resolve_profile("smoke")
    chosen = profile.run.muon_dtype
    assert chosen in {"float32", "bfloat16"}
    other = {"float32": (1.0, 0.01), "bfloat16": (0.01, 1.0)}[chosen]  # (fp32, bf16) seconds: the other answer
    cache = json.loads(dtype_choice.cache_path().read_text())
    [key] = [k for k in cache if k.startswith("muon")]
    cache[key].update(float32_seconds=other[0], bfloat16_seconds=other[1])
    dtype_choice.cache_path().write_text(json.dumps(cache))
    auto = replace(profile.run, muon_dtype="auto")
    model = build_model(profile.run, profile.run.vocab_size)
    flipped = recipe.build_optimizer(auto, model, 1.0, 0.0).orthogonalization.name
    assert flipped != chosen, "the rewritten cache flips a run that resolves auto itself"
    kept = recipe.build_optimizer(profile.run, model, 1.0, 0.0).orthogonalization.name
    assert kept == chosen


def test_a_kernels_build_time_is_not_timed_as_its_work(monkeypatch):
    """On a Xeon with AMX (this repository's CI machine, 2026-12-02) oneDNN built each bf16 kernel on its first call:
    the probe's first round took 508 ms in bf16 and 236 ms in fp32, the later rounds 92-95 ms and 170-181 ms. Timed,
    the build made bf16 look 2.4x slower and stopped the probe early: fp32 was chosen where bf16 runs 1.9x faster.
    Simulated: the default model's matmuls at AMX rates, 0.1 s per bf16 kernel build, 0.01 s per fp32 one."""
    cpu = SimulatedCPU(monkeypatch, "amx", jit=(0.01, 0.1))
    fp32, bf16, rounds, stopped = dtype_choice.race(cpu.items(dtype_choice.matmul_items(dtype_choice.DEFAULT_SHAPES)))
    use, _ = decide(DtypeMeasurement(fp32, bf16, "k", rounds, stopped))
    assert use and stopped == "" and fp32 / bf16 == pytest.approx(375.0 / 150.0)


def test_figures_cached_by_the_old_probe_are_measured_again():
    """Version 1 of the probe timed the kernel builds (above): its cached figures must not decide a run."""
    assert dtype_choice.cache_key("matmul", [(1, 2, 3)]).startswith(f"matmul-v{dtype_choice.PROBE_VERSION}|")
    assert dtype_choice.PROBE_VERSION >= 2


def test_the_time_budget_ends_the_probe(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(dtype_choice, "CLOCK", lambda: now[0])

    def slow(dtype):  # 1 s fp32, 0.8 s bf16 per item: close, so no early stop; the budget ends it
        now[0] += 1.0 if dtype == torch.float32 else 0.8

    # round 1: 1.8 s warm-up (untimed, but on the clock) + 1.8 s timed; round 2 ends at 5.4 s, past the budget
    fp32, bf16, rounds, stopped = dtype_choice.race([dtype_choice.WorkItem(slow)], budget=5.0)
    assert (fp32, bf16) == pytest.approx((1.0, 0.8)) and rounds == 2 and "budget" in stopped


def test_a_slow_first_call_does_not_stop_the_probe(monkeypatch):
    """bf16's first call may pay a kernel's JIT: 2x slower by a few ms is not evidence, and later rounds decide."""
    now, calls = [0.0], []

    def run(dtype):
        calls.append(dtype)
        first_bf16 = dtype == torch.bfloat16 and calls.count(torch.bfloat16) == 1
        now[0] += 0.010 if dtype == torch.float32 else (0.050 if first_bf16 else 0.004)

    monkeypatch.setattr(dtype_choice, "CLOCK", lambda: now[0])
    fp32, bf16, rounds, stopped = dtype_choice.race([dtype_choice.WorkItem(run)])
    assert stopped == "" and rounds == dtype_choice.ROUNDS and fp32 / bf16 == pytest.approx(2.5)


def test_the_probe_says_what_it_does_when_it_takes_more_than_a_second(monkeypatch):
    now, said = [0.0], []
    monkeypatch.setattr(dtype_choice, "CLOCK", lambda: now[0])

    def run(dtype):
        now[0] += 0.6

    dtype_choice.race([dtype_choice.WorkItem(run)], rounds=2, say=said.append, what="the test's matmuls")
    assert said == ["measuring float32 vs bfloat16 on the test's matmuls (once per machine, then cached) ..."]


def test_the_cache_is_keyed_by_machine_torch_and_shapes(tmp_path, monkeypatch):
    monkeypatch.setenv("NANOCHAT_NEXT_CACHE", str(tmp_path))
    calls = []
    monkeypatch.setattr(dtype_choice, "race", lambda items, **kw: calls.append(items) or (0.2, 0.1, 5, ""))
    shapes = [(64, 32, 32)]
    first = dtype_choice.measure(shapes)
    assert dtype_choice.measure(shapes) == first and len(calls) == 1, "the same machine reuses its figure"
    dtype_choice.measure([(64, 32, 64)])
    assert len(calls) == 2, "other shapes are measured anew"
    monkeypatch.setattr(dtype_choice.torch, "__version__", "9.9.9")
    dtype_choice.measure(shapes)
    assert len(calls) == 3, "another torch is measured anew"
    monkeypatch.setattr(dtype_choice, "cpu_model_name", lambda: "Another CPU")
    dtype_choice.measure(shapes)
    assert len(calls) == 4, "another CPU is measured anew"
    (tmp_path / "dtype" / "cpu_measurements.json").write_text("{broken")
    dtype_choice.measure(shapes)
    assert len(calls) == 5, "a damaged cache is measured again, not trusted"


def test_the_first_measurement_stored_wins(tmp_path, monkeypatch):
    """Two processes that find no figures both measure; where bf16 and fp32 are close they may decide differently.
    The one that stores second takes the first one's figures, so every process on the machine decides alike (a bench's
    rerun, a resumed run). Simulated: another process stores its figures while this one measures."""
    monkeypatch.setenv("NANOCHAT_NEXT_CACHE", str(tmp_path))
    shapes = [(64, 32, 32)]
    key = dtype_choice.cache_key("matmul", shapes)
    theirs = DtypeMeasurement(0.1, 0.2, key, 5, "")  # the other process: bf16 slower, fp32 chosen

    def race_while_another_process_stores(items, **kw):
        path = dtype_choice.cache_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({key: vars(theirs)}))
        return 0.2, 0.1, 5, ""  # this process: bf16 2x faster

    monkeypatch.setattr(dtype_choice, "race", race_while_another_process_stores)
    assert dtype_choice.measure(shapes) == theirs, "the figures stored first decide"
    assert json.loads(dtype_choice.cache_path().read_text())[key] == vars(theirs), "and stay stored"
    monkeypatch.setattr(dtype_choice, "race", lambda items, **kw: (0.2, 0.1, 5, ""))
    mine = dtype_choice.measure([(64, 32, 64)])
    assert mine.bfloat16_seconds == 0.1, "with nobody first, the process's own figures are stored and used"
    assert set(json.loads(dtype_choice.cache_path().read_text())) == {key, mine.key}
