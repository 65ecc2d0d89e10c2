"""The CPU's compute dtype, decided by measuring the work, not by guessing from CPU flags.

bfloat16 autocast is faster than float32 on some CPUs and slower on others, and CPU flags do not say which:
on an AMD EPYC with avx512_bf16 torch's bf16 matmul measured 2.3-2.5x its fp32 one, on a Xeon with the same
flag but no AMX 0.5x (results/cpu_dtype.md). So ``--dtype auto`` on a CPU:

1. times the model's own matmul shapes (M tokens x K -> N for every linear layer of a micro-batch), forward
   and backward, in float32 and under bfloat16 autocast, interleaved, a median of several rounds (~1 s);
2. picks bfloat16 only if it is at least ``SPEEDUP_MARGIN`` faster AND the measured quality cost of bf16
   training (``BF16_QUALITY_GAP``: final val bpb, bf16 minus fp32, at the cpu profile over several seeds,
   results/cpu_dtype.json) is within ``QUALITY_TOLERANCE``;
3. caches the measurement per CPU model, torch version, thread count, machine and shapes, so a run never
   trusts a figure measured on another CPU or with another torch.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from dataclasses import asdict, dataclass

import torch

SPEEDUP_MARGIN = 1.10  # bf16 must be at least 10% faster: smaller gaps are within timing noise
QUALITY_TOLERANCE = 0.01  # the guard: bf16's final val bpb at most 0.01 above fp32's
# final val bpb, bfloat16 autocast minus float32, cpu profile, mean over seeds 42-44 (results/cpu_dtype.json,
# field bf16_minus_fp32_val_bpb; tests/base/test_dtype_choice.py checks the two agree)
BF16_QUALITY_GAP = 0.0005
Shape = tuple[int, int, int]  # (M, K, N): an (M x K) @ (K x N) matmul


@dataclass(frozen=True)
class DtypeMeasurement:
    float32_seconds: float  # one forward + backward of every shape
    bfloat16_seconds: float
    key: str  # what the figures are valid for

    @property
    def speedup(self) -> float:
        return self.float32_seconds / self.bfloat16_seconds


def model_shapes(tokens: int, n_embd: int, kv_dim: int, vocab: int, n_layer: int) -> list[Shape]:
    """The matmuls of one micro-batch of a GPT: q, k, v, attention output, MLP in and out, per layer; the head."""
    per_layer = [(tokens, n_embd, n_embd), (tokens, n_embd, kv_dim), (tokens, n_embd, kv_dim),
                 (tokens, n_embd, n_embd), (tokens, n_embd, 4 * n_embd), (tokens, 4 * n_embd, n_embd)]
    return per_layer * n_layer + [(tokens, n_embd, vocab)]


DEFAULT_SHAPES = model_shapes(2048, 256, 256, 4096, 4)  # the cpu profile's depth-4 model (what doctor times)


def cache_key(shapes: list[Shape]) -> str:
    from nanochat_next.runtime import cpu_model_name

    distinct = sorted(set(shapes))
    counts = [shapes.count(s) for s in distinct]
    return "|".join([cpu_model_name(), torch.__version__, f"threads={torch.get_num_threads()}", platform.node(),
                     ";".join(f"{m}x{k}x{n}*{c}" for (m, k, n), c in zip(distinct, counts))])


def time_shapes(shapes: list[Shape], rounds: int = 5) -> tuple[float, float]:
    """Median seconds of one forward + backward over ``shapes``: (float32, bfloat16 autocast), interleaved."""
    gen = torch.Generator().manual_seed(0)
    layers = [(torch.randn(m, k, generator=gen), torch.randn(n, k, generator=gen, requires_grad=True))
              for m, k, n in shapes]

    def one_pass(dtype: torch.dtype) -> float:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            for x, w in layers:
                x = x.requires_grad_()
                torch.nn.functional.linear(x, w).float().sum().backward()
                x.grad, w.grad = None, None
        return time.perf_counter() - t0

    one_pass(torch.float32), one_pass(torch.bfloat16)  # warm-up: allocations, kernel selection
    times: dict[torch.dtype, list[float]] = {torch.float32: [], torch.bfloat16: []}
    for _ in range(rounds):
        for dtype in times:
            times[dtype].append(one_pass(dtype))
    return statistics.median(times[torch.float32]), statistics.median(times[torch.bfloat16])


def cache_path():
    from nanochat_next.corpus import cache_dir

    return cache_dir() / "dtype" / "cpu_measurements.json"


def measure(shapes: list[Shape] | None = None, use_cache: bool = True) -> DtypeMeasurement:
    """The measurement for these shapes on this machine: from the cache when it holds one for exactly this
    CPU, torch, thread count, machine and shapes; else measured now (and cached)."""
    shapes = shapes or DEFAULT_SHAPES
    key = cache_key(shapes)
    path = cache_path()
    cached: dict = {}
    if use_cache and path.is_file():
        try:
            cached = json.loads(path.read_text())
        except (OSError, ValueError):
            cached = {}  # a damaged cache is measured again
    if key in cached:
        return DtypeMeasurement(**cached[key])
    fp32, bf16 = time_shapes(shapes)
    result = DtypeMeasurement(fp32, bf16, key)
    if use_cache:
        try:
            from nanochat_next.atomic import write_text

            path.parent.mkdir(parents=True, exist_ok=True)
            write_text(path, json.dumps({**cached, key: asdict(result)}, indent=1))
        except OSError:
            pass  # a read-only cache only costs a new measurement next time
    return result


def decide(m: DtypeMeasurement, quality_gap: float = BF16_QUALITY_GAP) -> tuple[bool, str]:
    """(use bfloat16?, the figures behind the decision)."""
    figures = (f"measured on this model's matmuls: bf16 {1e3 * m.bfloat16_seconds:.1f} ms vs fp32 "
               f"{1e3 * m.float32_seconds:.1f} ms per pass, {m.speedup:.2f}x")
    if m.speedup < SPEEDUP_MARGIN:
        return False, f"{figures} (bf16 must be >= {SPEEDUP_MARGIN:.2f}x to be chosen)"
    if quality_gap > QUALITY_TOLERANCE:
        return False, f"{figures}, but bf16 costs {quality_gap:+.4f} val bpb (> {QUALITY_TOLERANCE})"
    return True, f"{figures}; bf16 quality cost {quality_gap:+.4f} val bpb (<= {QUALITY_TOLERANCE})"
