"""The CPU's compute dtypes, decided by measuring the work, not by guessing from CPU flags.

bfloat16 is faster than float32 on some CPUs and much slower on others, and CPU flags do not say which: with
AMX tiles (a recent Xeon) torch's bf16 matmuls measured 2.5x its fp32 ones; on a Xeon with avx512_bf16 but no
AMX, 0.5x; on an AVX2-only CPU (most laptops: Intel since 12th gen, AMD Zen 2/3) bf16 is emulated and ran 0.1x
for matmuls and 0.02x for Muon's batched orthogonalisation (results/cpu_dtype.md, results/muon_dtype.md).
Three decisions use one method:

- the model's compute dtype (bf16 autocast or fp32), timed on the model's own matmuls, forward + backward;
- Muon's orthogonalisation dtype, timed on the optimizer's own stacked update shapes (``train.muon``);
- under bf16 autocast, the attention's dtype, timed on one layer's causal attention, forward + backward: a CPU's
  bf16 flash attention was slower than its fp32 one in the training step on both fast-bf16 CPUs measured (its
  backward 2x on an AMX Xeon, results/profile_step_xeon_amx.md; its self time 82 vs 69 ms a compiled step on an
  EPYC with avx512_bf16, side by side in results/profile_step_epyc_avx512bf16_attention.md, where the whole step
  was a tie), so there the attention runs in fp32 inside the bf16 model, eager. A compiled run times the
  compiled attention: its bf16 side is explicit matmuls (``model.gpt.explicit_attention_applies``), measured
  faster than fp32 flash attention on that EPYC (results/attention_kernel.md), so there it attends in bf16.

The probe (``race``) times both dtypes on the same work items, interleaved, and stops as soon as the answer is
decided, whatever the model's size:

1. the shapes are sliced: each distinct shape once (weighted by how often it occurs), with the rows cut so a
   pass is a few GFLOP: the speed ratio of two dtypes on one kernel does not depend on how many rows it runs;
2. each item runs once in both dtypes untimed before its first timed run: a kernel's first call builds it
   (oneDNN's JIT for AMX tiles took ~0.1 s per bf16 shape, more than the work: timed, it made bf16 look 2.4x
   slower where it is 1.9x faster); then a round times every item in fp32 then bf16; after each item, bf16
   already ``CLEARLY_SLOWER`` (2x) than fp32 on the work so far, by more than ``MIN_GAP_SECONDS``, ends the
   probe (the 1.10x bar cannot be met);
3. at most ``ROUNDS`` rounds and ``BUDGET_SECONDS`` of wall time; the decision takes the median round;
4. the figure is cached per probe, CPU model, torch version, thread count, machine and shapes, so a run never
   trusts a figure measured on another CPU or with another torch, and measures each only once.

bf16 is then chosen only if it is at least ``SPEEDUP_MARGIN`` faster AND its measured quality cost (final val
bpb, bf16 minus fp32, at the cpu profile over several seeds) is within ``QUALITY_TOLERANCE``.
"""

from __future__ import annotations

import contextlib
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

SPEEDUP_MARGIN = 1.10  # bf16 must be at least 10% faster: smaller gaps are within timing noise
QUALITY_TOLERANCE = 0.01  # bf16's final val bpb at most 0.01 above fp32's
# final val bpb, bfloat16 autocast minus float32, cpu profile, mean over seeds 42-44 (results/cpu_dtype.json,
# field bf16_minus_fp32_val_bpb; tests/base/test_dtype_choice.py checks the two agree)
BF16_QUALITY_GAP = 0.0005
# final val bpb, Muon's orthogonalisation in bfloat16 minus float32 (model in float32 both), cpu profile: -3e-5 on
# seed 42, every eval of seeds 42-43 within 2.3e-4 (results/muon_dtype.json, field bf16_minus_fp32_val_bpb; the
# same test checks it)
MUON_BF16_QUALITY_GAP = 0.0
# the probe's bounds (see the module docstring)
ROUNDS = 5
BUDGET_SECONDS = 3.0
CLEARLY_SLOWER = 2.0  # bf16 this many times fp32's time on the same work: no further round can reach 1.10x
MIN_GAP_SECONDS = 0.1  # and slower by more than this (a few ms of timer noise on tiny work is no evidence)
SLICE_FLOPS = 8e9  # a timed pass of the model's matmuls does about this many FLOPs (fp32: ~0.1 s on 2 cores)
MIN_ROWS = 128  # but never fewer rows than this: small matmuls measure call overhead, not arithmetic
Shape = tuple[int, int, int]  # (M, K, N): an (M x K) @ (K x N) matmul
DTYPE_PAIR = (torch.float32, torch.bfloat16)
CLOCK = time.perf_counter  # what the probe times with (tests replace it to simulate a CPU's speed)


@dataclass(frozen=True)
class DtypeMeasurement:
    float32_seconds: float  # one pass over the work, median round
    bfloat16_seconds: float
    key: str  # what the figures are valid for
    rounds: int = ROUNDS  # timed rounds (fewer when stopped early)
    stopped: str = ""  # why the probe stopped before ROUNDS rounds ("" = it did not)

    @property
    def speedup(self) -> float:
        return self.float32_seconds / self.bfloat16_seconds


@dataclass(frozen=True)
class WorkItem:
    """One piece of the probe's work: ``run(dtype)`` does it once; its time counts ``weight`` times."""

    run: Callable[[torch.dtype], None]
    weight: float = 1.0
    flops: float = 0.0  # one run's arithmetic (what a simulated CPU in the tests turns into time)


def race(items: list[WorkItem], rounds: int = ROUNDS, budget: float = BUDGET_SECONDS,
         say: Callable[[str], None] | None = None, what: str = "this work") -> tuple[float, float, int, str]:
    """(fp32 seconds, bf16 seconds, rounds timed, why it stopped early or "") of one pass over ``items``:
    the median round, or the part of a round timed before an early stop."""
    clock = CLOCK
    start, told = clock(), False
    passes: dict[torch.dtype, list[float]] = {dtype: [] for dtype in DTYPE_PAIR}
    for round_index in range(rounds):
        so_far = dict.fromkeys(DTYPE_PAIR, 0.0)
        for item in items:
            if round_index == 0:  # each kernel's first call builds it (oneDNN's JIT: ~0.1 s per shape in bf16 on
                for dtype in DTYPE_PAIR:  # AMX, 5x the work itself); run once untimed, so only the work is timed
                    item.run(dtype)
            for dtype in DTYPE_PAIR:  # interleaved: a machine getting busier slows both alike
                t0 = clock()
                item.run(dtype)
                so_far[dtype] += item.weight * (clock() - t0)
            if say is not None and not told and clock() - start > 1.0:
                say(f"measuring float32 vs bfloat16 on {what} (once per machine, then cached) ...")
                told = True
            fp32, bf16 = so_far[torch.float32], so_far[torch.bfloat16]
            # bf16 already far slower on the same (warmed) work, by more than noise: no round can reverse it
            if bf16 >= CLEARLY_SLOWER * fp32 and bf16 - fp32 >= MIN_GAP_SECONDS:
                return fp32, bf16, round_index + 1, (f"stopped early: bf16 {bf16 / fp32:.1f}x slower on the part "
                                                     "timed")
        for dtype in DTYPE_PAIR:
            passes[dtype].append(so_far[dtype])
        if clock() - start > budget and round_index + 1 < rounds:
            return (statistics.median(passes[torch.float32]), statistics.median(passes[torch.bfloat16]),
                    round_index + 1, f"stopped at the {budget:.0f} s time budget")
    return statistics.median(passes[torch.float32]), statistics.median(passes[torch.bfloat16]), rounds, ""


def warm_up() -> None:
    """Load both dtypes' matmul kernels once on a tiny product (library loading is not the work measured)."""
    a = torch.randn(64, 64)
    a @ a
    a.bfloat16() @ a.bfloat16()


def model_shapes(tokens: int, n_embd: int, kv_dim: int, vocab: int, n_layer: int) -> list[Shape]:
    """The matmuls of one micro-batch of a GPT: q, k, v, attention output, MLP in and out, per layer; the head."""
    per_layer = [(tokens, n_embd, n_embd), (tokens, n_embd, kv_dim), (tokens, n_embd, kv_dim),
                 (tokens, n_embd, n_embd), (tokens, n_embd, 4 * n_embd), (tokens, 4 * n_embd, n_embd)]
    return per_layer * n_layer + [(tokens, n_embd, vocab)]


DEFAULT_SHAPES = model_shapes(2048, 256, 256, 4096, 4)  # the cpu profile's depth-4 model (what doctor times)


def sliced(shapes: list[Shape]) -> list[tuple[Shape, int]]:
    """(shape with rows cut to the slice, how often the full shape occurs), smallest first."""
    distinct = sorted(set(shapes), key=lambda s: s[1] * s[2])
    per_row = sum(6 * k * n for _, k, n in distinct)  # forward + backward FLOPs per row over the distinct shapes
    rows = int(max(MIN_ROWS, SLICE_FLOPS // per_row))
    return [((min(m, rows), k, n), shapes.count((m, k, n))) for m, k, n in distinct]


def matmul_items(shapes: list[Shape]) -> list[WorkItem]:
    """Forward + backward of every (sliced) shape, under bf16 autocast or in fp32."""
    gen = torch.Generator().manual_seed(0)
    items = []
    for (m, k, n), count in sliced(shapes):
        x = torch.randn(m, k, generator=gen, requires_grad=True)
        w = torch.randn(n, k, generator=gen, requires_grad=True)

        def run(dtype: torch.dtype, x=x, w=w) -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                torch.nn.functional.linear(x, w).float().sum().backward()
            x.grad, w.grad = None, None

        items.append(WorkItem(run, count, 6 * m * k * n))
    return items


AttentionShape = tuple[int, int, int, int]  # (batch, heads, sequence, head_dim) of one layer's causal attention


def attention_items(shape: AttentionShape, attend: Callable, compiled: bool = False) -> list[WorkItem]:
    """Forward + backward of one layer's causal attention under bf16 autocast, attending in bf16 (autocast's own
    choice) or in fp32 (the bf16 queries, keys and values cast up, the result cast back: the casts are timed too),
    by ``attend(q, k, v, window, dtype)``: the model's own ``model.gpt.causal_attention``, compiled for a compiled
    run (whose bf16 attention is other kernels: ``model.gpt.explicit_attention_applies``), so both dtypes run the
    kernels training runs. Batch x heads is cut so a pass is a few GFLOP, as the matmuls' rows are."""
    if compiled:
        attend = torch.compile(attend, dynamic=False)
    batch, heads, seq, head_dim = shape
    per_head = 14 * seq * seq * head_dim  # causal flash attention forward + backward, roughly
    rows = max(1, min(batch * heads, int(SLICE_FLOPS // per_head)))
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, rows, seq, head_dim, generator=gen).bfloat16().requires_grad_() for _ in range(3))

    def run(dtype: torch.dtype) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = attend(q, k, v, seq, None if dtype == torch.bfloat16 else torch.float32)
            out.float().sum().backward()
        q.grad, k.grad, v.grad = None, None, None

    if compiled:  # compile both graphs here: the race's time budget is for the work, not for compiling
        for dtype in (torch.float32, torch.bfloat16):
            run(dtype)

    return [WorkItem(run, 1.0, rows * per_head)]


def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


PROBE_VERSION = 2  # 2: kernels warmed before timing (figures cached by version 1 timed bf16's JIT: measured again)


def cache_key(probe: str, shapes: list[tuple[int, ...]]) -> str:
    distinct = sorted(set(shapes))
    counts = [shapes.count(s) for s in distinct]
    return "|".join([f"{probe}-v{PROBE_VERSION}", cpu_model_name(), torch.__version__,
                     f"threads={torch.get_num_threads()}", platform.node(),
                     ";".join(f"{'x'.join(map(str, s))}*{c}" for s, c in zip(distinct, counts))])


def cache_path():
    from nanochat_next.corpus import cache_dir

    return cache_dir() / "dtype" / "cpu_measurements.json"


def _cached_entry(path: Path, key: str) -> tuple[dict, DtypeMeasurement | None]:
    """The cache file's contents and its measurement under ``key`` (None: absent, or written by another version)."""
    cached: dict = {}
    if path.is_file():
        try:
            cached = json.loads(path.read_text())
        except (OSError, ValueError):
            cached = {}  # a damaged cache is measured again
    try:
        return cached, DtypeMeasurement(**cached[key]) if key in cached else None
    except TypeError:
        return cached, None  # written by another version: measured again


@contextlib.contextmanager
def _locked(path: Path):
    """Hold an exclusive lock beside ``path`` (POSIX; elsewhere no lock)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def measured(key: str, items: Callable[[], list[WorkItem]], use_cache: bool = True,
             say: Callable[[str], None] | None = None, what: str = "this work") -> DtypeMeasurement:
    """The measurement stored under ``key`` on this machine, or ``race`` over ``items()`` now (and cached).

    The first measurement stored wins: a process that measured the same work as another one that stored its
    figures first takes those. Where bf16 and fp32 are close the two measurements can decide differently, and two
    runs that must compute alike (a rerun, a resumed run) would otherwise each follow the measurement of whichever
    process last wrote the cache (tests/base/test_dtype_choice.py)."""
    path = cache_path()
    if use_cache:
        _, found = _cached_entry(path, key)
        if found is not None:
            return found
    warm_up()
    fp32, bf16, rounds, stopped = race(items(), say=say, what=what)
    result = DtypeMeasurement(fp32, bf16, key, rounds, stopped)
    if use_cache:
        try:
            from nanochat_next.atomic import write_text

            path.parent.mkdir(parents=True, exist_ok=True)
            with _locked(path):  # the check and the write as one step: one first writer
                cached, first = _cached_entry(path, key)
                if first is not None:
                    return first
                write_text(path, json.dumps({**cached, key: asdict(result)}, indent=1))
        except OSError:
            pass  # a read-only cache only costs a new measurement next time
    return result


def measure(shapes: list[Shape] | None = None, use_cache: bool = True,
            say: Callable[[str], None] | None = None) -> DtypeMeasurement:
    """The model-matmul measurement for these shapes on this machine (cached)."""
    shapes = shapes or DEFAULT_SHAPES
    return measured(cache_key("matmul", shapes), lambda: matmul_items(shapes), use_cache, say,
                    "this model's matmuls")


def measure_attention(shape: AttentionShape, attend: Callable, compiled: bool = False, use_cache: bool = True,
                      say: Callable[[str], None] | None = None) -> DtypeMeasurement:
    """The attention measurement for this shape on this machine, eager or compiled (cached apart)."""
    name = "attention-compiled" if compiled else "attention"
    return measured(cache_key(name, [shape]), lambda: attention_items(shape, attend, compiled), use_cache, say,
                    "this model's compiled attention" if compiled else "this model's attention")


def decide(m: DtypeMeasurement, quality_gap: float = BF16_QUALITY_GAP, work: str = "this model's matmuls",
           ) -> tuple[bool, str]:
    """(use bfloat16?, the figures behind the decision)."""
    early = f"; {m.stopped}" if m.stopped else ""
    figures = (f"measured on {work}: bf16 {1e3 * m.bfloat16_seconds:.1f} ms vs fp32 "
               f"{1e3 * m.float32_seconds:.1f} ms per pass, {m.speedup:.2f}x{early}")
    if m.speedup < SPEEDUP_MARGIN:
        return False, f"{figures} (bf16 must be >= {SPEEDUP_MARGIN:.2f}x to be chosen)"
    if quality_gap > QUALITY_TOLERANCE:
        return False, f"{figures}, but bf16 costs {quality_gap:+.4f} val bpb (> {QUALITY_TOLERANCE})"
    return True, f"{figures}; bf16 quality cost {quality_gap:+.4f} val bpb (<= {QUALITY_TOLERANCE})"
