"""One dtype policy for every device, tested without the hardware: the GPU's compute capability is injected into
the functions that decide (not torch mocked wholesale). A T4 (7.5) gets fp16 + GradScaler and no bf16 anywhere
(Muon's orthogonalisation included: Triton's bf16 code does not build for sm_75); an A100/H100 (8.0/9.0) bf16;
MPS float32; a CPU what it measures. And nothing bypasses the policy: no notebook, launcher, benchmark or profile
writes a reduced-precision dtype of its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from nanochat_next import runtime
from nanochat_next.dtype_choice import DtypeMeasurement
from nanochat_next.errors import UserError

REPO = Path(__file__).resolve().parents[2]

ACCELERATORS = [  # (name, capability, model dtype, GradScaler, Muon's dtype)
    ("T4", (7, 5), torch.float16, True, torch.float32),
    ("V100", (7, 0), torch.float16, True, torch.float32),
    ("A100", (8, 0), torch.bfloat16, False, torch.bfloat16),
    ("L4", (8, 9), torch.bfloat16, False, torch.bfloat16),
    ("H100", (9, 0), torch.bfloat16, False, torch.bfloat16),
]


@pytest.mark.parametrize("name, capability, dtype, scaler, muon", ACCELERATORS, ids=[a[0] for a in ACCELERATORS])
def test_every_gpu_class_gets_the_policy(monkeypatch, name, capability, dtype, scaler, muon):
    monkeypatch.setattr(runtime, "cuda_capability", lambda device: capability)
    cuda = torch.device("cuda")
    choice = runtime.choose_dtype(cuda)
    assert (choice.dtype, choice.grad_scaler) == (dtype, scaler)
    assert runtime.choose_muon_dtype(cuda).dtype == muon
    if capability < (8, 0):  # no bf16 on these, whoever asks
        with pytest.raises(UserError, match="compute capability 8.0"):
            runtime.choose_dtype(cuda, "bfloat16")
        with pytest.raises(UserError, match="compute capability 8.0"):
            runtime.choose_muon_dtype(cuda, "bfloat16")


def test_mps_is_float32_everywhere():
    mps = torch.device("mps")
    assert runtime.choose_dtype(mps).dtype == torch.float32
    assert runtime.choose_muon_dtype(mps).dtype == torch.float32


def test_a_cpu_takes_what_it_measures(monkeypatch):
    from nanochat_next import dtype_choice

    for fp32, bf16, expected in ((0.2, 0.08, torch.bfloat16), (0.1, 1.6, torch.float32)):
        monkeypatch.setattr(dtype_choice, "measure",
                            lambda shapes=None, f=fp32, b=bf16, **kw: DtypeMeasurement(f, b, "k"))
        assert runtime.choose_dtype("cpu").dtype == expected
        assert runtime.choose_muon_dtype("cpu", "auto", lambda f=fp32, b=bf16: DtypeMeasurement(f, b, "k")).dtype \
            == expected


# a reduced-precision dtype written into code that should ask the policy: dtype="bfloat16", "--dtype", "float16", ...
HARD_CODED = re.compile(r"""(?:dtype\s*=\s*|["']--(?:muon-)?dtype["']\s*,\s*)["'](?:bfloat16|float16)["']""")
SOURCES = ["notebooks/*.py", "colab/*.py", "benchmarks/*.py", "nanochat_next/bench/*.py", "nanochat_next/cli/*.py",
           "nanochat_next/chat/*.py", "nanochat_next/train/loop.py", "nanochat_next/train/data.py"]


def test_nothing_bypasses_the_policy():
    found = [f"{path.relative_to(REPO)}:{n}: {line.strip()}" for pattern in SOURCES for path in REPO.glob(pattern)
             for n, line in enumerate(path.read_text().splitlines(), 1) if HARD_CODED.search(line)]
    assert found == [], "dtypes chosen outside runtime's policy (use dtype='auto'):\n" + "\n".join(found)


def test_the_scan_finds_what_it_looks_for():
    assert HARD_CODED.search('replace(run, device="cuda", dtype="bfloat16")')
    assert HARD_CODED.search('["train", "--dtype", "float16"]')
    assert HARD_CODED.search("cfg(muon_dtype='bfloat16')")
    assert not HARD_CODED.search('replace(run, dtype="auto")') and not HARD_CODED.search('dtype="float32"')
