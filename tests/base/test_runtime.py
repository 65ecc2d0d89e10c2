from __future__ import annotations

import pytest
import torch

from nanochat_next import runtime
from nanochat_next.errors import UserError
from nanochat_next.runtime import DeviceUnavailable, choose_dtype, resolve_device


def test_auto_device_is_the_best_available():
    assert resolve_device("auto").type == runtime.available_device_types()[0]
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_absent_cuda_is_a_clear_error_not_a_fallback():
    with pytest.raises(DeviceUnavailable, match="--device cuda was requested but .*use --device cpu"):
        resolve_device("cuda")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_absent_mps_is_a_clear_error():
    with pytest.raises(DeviceUnavailable, match="--device mps was requested"):
        resolve_device("mps")


def test_unknown_device_and_dtype():
    with pytest.raises(UserError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(UserError, match="unknown dtype 'fp8'"):
        choose_dtype("cpu", "fp8")


@pytest.mark.parametrize("fp32, bf16, expected", [(0.200, 0.080, torch.bfloat16), (0.100, 0.200, torch.float32),
                                                   (0.100, 0.095, torch.float32)])  # 1.05x: within noise
def test_cpu_auto_dtype_follows_the_measurement(monkeypatch, fp32, bf16, expected):
    from nanochat_next import dtype_choice

    monkeypatch.setattr(dtype_choice, "measure",
                        lambda shapes=None, **kw: dtype_choice.DtypeMeasurement(fp32, bf16, "k"))
    choice = choose_dtype("cpu")
    assert choice.dtype == expected and not choice.grad_scaler
    assert f"{fp32 / bf16:.2f}x" in choice.reason, "the figures behind the choice are printed"
    assert choose_dtype("cpu", "float32").dtype == torch.float32, "an explicit dtype is never overruled"


@pytest.mark.parametrize("capability, dtype, scaler", [((7, 5), torch.float16, True), ((8, 0), torch.bfloat16, False),
                                                       ((9, 0), torch.bfloat16, False), ((6, 0), torch.float16, True)])
def test_cuda_dtype_by_capability(monkeypatch, capability, dtype, scaler):
    # decided by compute capability, never by torch.cuda.is_bf16_supported() (True on a T4 by emulation)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    choice = choose_dtype(torch.device("cuda"))
    assert (choice.dtype, choice.grad_scaler) == (dtype, scaler)
    assert f"{capability[0]}.{capability[1]}" in choice.reason
    if capability < (8, 0):
        with pytest.raises(UserError, match="bfloat16 needs a GPU of compute capability 8.0"):
            choose_dtype(torch.device("cuda"), "bfloat16")
        assert choose_dtype(torch.device("cuda"), "float16").grad_scaler


@pytest.mark.parametrize("flags, native, reason", [
    ("fpu sse2 avx512f avx512_bf16 amx_bf16 amx_tile", True, "amx_bf16"),
    ("fpu sse2 avx512f avx512_bf16", False, "avx512_bf16 without AMX"),
    ("fpu sse2 avx2", False, "no bf16 support"),
    (None, False, "flags unknown"),
])
def test_cpu_flags_decide_bf16(flags, native, reason):
    cpuinfo = "" if flags is None else f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\nbugs\t: x\n"
    got, why = runtime.cpu_native_bf16(cpuinfo)
    assert got is native and reason in why


def test_profile_is_complete_without_compile_check():
    profile = runtime.runtime_profile("cpu", check_compile=False)
    assert profile["torch"] == torch.__version__
    assert profile["torch_threads"] == torch.get_num_threads()
    (cpu,) = profile["devices"]
    assert cpu["device"] == "cpu" and cpu["dtype"] in ("bfloat16", "float32") and cpu["compile_ok"] is None
    text = runtime.format_profile(profile)
    assert "dtype" in text and "compile     unknown" in text


def test_measured_matmul_flops_counts_2n3_per_product(monkeypatch):
    ticks = iter(range(100))  # a clock that advances one second per reading
    monkeypatch.setattr(runtime.time, "perf_counter", lambda: float(next(ticks)))
    # start at 0; loop checks at 1 and 2 (< 2.5: two products), exit at 3; end at 4: 2 x 2n^3 in 4 s = n^3 / s
    assert runtime.measure_matmul_flops("cpu", torch.float32, n=8, seconds=2.5) == 8**3


# Muon's orthogonalisation dtype: one policy for every device, the capability injected (no GPU needed)
@pytest.mark.parametrize("kind, fp32, bf16, expected", [
    ("amx", 0.20, 0.08, torch.bfloat16),  # bf16 2.5x faster (a Xeon with AMX)
    ("avx512_bf16", 0.10, 0.20, torch.float32),  # slower (a Xeon without AMX)
    ("avx2", 0.07, 2.9, torch.float32),  # emulated: measured 0.02x on an AMD EPYC Zen 3 (results/muon_dtype.md)
])
def test_cpu_muon_dtype_follows_the_measurement(kind, fp32, bf16, expected):
    from nanochat_next import dtype_choice

    choice = runtime.choose_muon_dtype("cpu", "auto", lambda: dtype_choice.DtypeMeasurement(fp32, bf16, kind))
    assert choice.dtype == expected, choice.reason
    assert f"{fp32 / bf16:.2f}x" in choice.reason and "Muon's orthogonalisation" in choice.reason
    assert runtime.choose_muon_dtype("cpu", "bfloat16", None).dtype == torch.bfloat16, "explicit: never overruled"


@pytest.mark.parametrize("capability, expected", [((7, 5), torch.float32), ((6, 0), torch.float32),
                                                  ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_cuda_muon_dtype_by_capability(monkeypatch, capability, expected):
    monkeypatch.setattr(runtime, "cuda_capability", lambda device: capability)
    choice = runtime.choose_muon_dtype(torch.device("cuda"))
    assert choice.dtype == expected and f"{capability[0]}.{capability[1]}" in choice.reason
    if capability < (8, 0):  # a T4: no bf16 anywhere
        with pytest.raises(UserError, match="bfloat16 needs a GPU of compute capability 8.0"):
            runtime.choose_muon_dtype(torch.device("cuda"), "bfloat16")


def test_mps_and_unknown_muon_dtypes():
    assert runtime.choose_muon_dtype(torch.device("mps")).dtype == torch.float32
    with pytest.raises(UserError, match="unknown Muon dtype 'float16'"):
        runtime.choose_muon_dtype("cpu", "float16")


@pytest.mark.parametrize("load, cores, said", [(3.4, 2, True), (1.9, 2, False), (2.0, 2, False), (9.0, 16, False)])
def test_a_busy_machine_is_said_once(load, cores, said):
    note = runtime.busy_note(cores, load)
    assert (note is not None) is said
    if said:
        assert f"load {load:.1f} on {cores} cores" in note and "--threads 1" in note


def test_threads_are_set_for_this_process_and_its_children(monkeypatch):
    import os

    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    try:
        runtime.set_threads(1)
        assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
        runtime.set_threads(None)  # no flag: torch's choice stays
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


GLIBC = __import__("sys").platform.startswith("linux") and __import__("platform").libc_ver()[0] == "glibc"
FAULTS_SCRIPT = """
import resource, sys, torch
from nanochat_next.runtime import keep_freed_memory
kept = keep_freed_memory()
def step():  # what a training step does with its logits: a 64 MiB tensor written, then freed
    torch.empty(16 << 20).fill_(1.0)
for _ in range(12):  # glibc's heap grows for the first few (an aligned block needs a little more than the
    step()             # freed one holds) until freed blocks coalesce into one big enough: then it is reused
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    step()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    """The cpu profile's step freed and re-allocated ~370 MB of large tensors a step, each page faulted in again
    (92,000 faults a step, eager fp32): with ``keep_freed_memory`` a freed 64 MiB block is reused."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    def faults(env_value: str) -> tuple[str, int]:
        env = {**os.environ, "NANOCHAT_NEXT_MALLOC": env_value}
        out = subprocess.run([sys.executable, "-c", FAULTS_SCRIPT], capture_output=True, text=True, env=env,
                             timeout=120, check=True).stdout.split()
        return out[0], int(out[1])

    (kept, with_keep), (system, without) = faults("keep"), faults("system")
    assert (kept, system) == ("True", "False")
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if thp.is_file() and "[always]" in thp.read_text():  # 2 MiB pages may back a fresh mmap: few faults either way
        assert with_keep <= without, (with_keep, without)
        return
    assert without > 8 * 10_000  # 8 x 64 MiB = 16,384 pages per block: glibc's defaults fault every one in again
    assert with_keep < without / 20, (with_keep, without)


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_keeping_freed_memory_changes_no_loss(tmp_path):
    """Only where the bytes live changes: the same run with glibc's defaults has the same losses, bit for bit."""
    import json
    import os
    import subprocess
    import sys

    from tests.train.test_loop import TINY

    losses = {}
    for mode in ("keep", "system"):
        out = tmp_path / mode
        subprocess.run([sys.executable, "-m", "nanochat_next", "train", "--mode", "tensor", "--steps", "4",
                        "--eval-every", "0", "--dtype", "float32", "--out", str(out), *TINY],
                       env={**os.environ, "NANOCHAT_NEXT_MALLOC": mode}, capture_output=True, timeout=600, check=True)
        losses[mode] = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()
                        if '"loss"' in line]
    assert len(losses["keep"]) == 4 and losses["keep"] == losses["system"]
