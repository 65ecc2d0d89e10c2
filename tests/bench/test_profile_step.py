"""benchmarks/profile_step.py's accounting: matmul FLOPs attributed to the phase that ran them, and the roofline
that turns them into a ceiling."""


import pytest
import torch
from torch.profiler import ProfilerActivity, profile, record_function


@pytest.fixture(scope="module")
def profile_step(load_script):
    return load_script("benchmarks/profile_step.py")


def test_matmul_flops_are_attributed_to_their_phase(profile_step):
    a, b = torch.randn(32, 64), torch.randn(64, 16)
    stacked = torch.randn(3, 16, 16)
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        for _ in range(profile_step.STEPS):
            with record_function("forward"):
                a @ b  # 2 * 32 * 64 * 16 FLOPs
            with record_function("optimizer"):
                torch.bmm(stacked, stacked)  # 2 * 3 * 16^3 FLOPs
            torch.relu(a)  # not a matmul: counted nowhere
    by_phase = profile_step.matmul_by_phase(prof.events())
    assert set(by_phase) == {"forward", "optimizer"}
    assert by_phase["forward"]["gflop"] == pytest.approx(2 * 32 * 64 * 16 / 1e9)
    assert by_phase["optimizer"]["gflop"] == pytest.approx(2 * 3 * 16**3 / 1e9)
    assert by_phase["forward"]["ms"] > 0


def test_roofline_on_hand_numbers(profile_step):
    results = {"ours float32 compiled": {
        "profiled_step_ms": 900.0, "kinds_ms": {"matmul": 600.0, "elementwise / other": 300.0},
        # the FLOP-counting pass's times are inflated by its shape recording: the roofline ignores them
        "matmul_by_phase": {"forward": {"gflop": 20.0, "ms": 999.0}, "optimizer": {"gflop": 10.0, "ms": 999.0}}}}
    lines, rows = profile_step.roofline(results, {"float32": 100e9, "bfloat16": 400e9})
    row = rows["ours float32 compiled"]
    assert row["matmul_gflop"] == 30.0 and row["optimizer_gflop"] == 10.0
    assert row["matmul_ms"] == 600.0
    assert row["matmul_gflop_s"] == pytest.approx(50.0)  # 30 GFLOP in 0.6 s
    assert row["at_peak_ms"] == pytest.approx(300.0)  # 30 GFLOP at 100 GFLOP/s
    assert row["ceiling"] == pytest.approx(1.5)  # 900 ms / 600 ms of matmuls
    assert any("| ceiling" in line and "1.50x" in line for line in lines)
    bf16 = profile_step.roofline({"ours bfloat16 eager": results["ours float32 compiled"]},
                                 {"float32": 100e9, "bfloat16": 400e9})[1]["ours bfloat16 eager"]
    assert bf16["at_peak_ms"] == pytest.approx(75.0)  # the bf16 peak for a bf16 side


def test_the_fp32_muon_auto_side_differs_from_fp32_only_in_muon(profile_step):
    """float32+muon_auto: the float32 model with Muon in auto's dtype, the same the bfloat16 side's Muon uses."""
    def build(dtype):
        model, _, optimizer = profile_step.build("ours", None, False, dtype)
        ortho = [str(g["ortho_dtype"]) for g in optimizer.param_groups if "ortho_dtype" in g]
        return {p.dtype for p in model.parameters()}, ortho

    params32, ortho32 = build("float32")
    params_auto, ortho_auto = build("float32+muon_auto")
    assert params32 == params_auto == {torch.float32}
    assert ortho32 and set(ortho32) == {"float32"}
    assert ortho_auto == build("bfloat16")[1]  # what --muon-dtype auto measured, as in the bfloat16 rows
