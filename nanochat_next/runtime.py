"""Device and dtype rules, in one place: the CLI, the training loop and ``doctor`` all use these.

Rules (the same everywhere, printed at the start of every run):

- Device: ``auto`` takes CUDA, then MPS, then CPU. A device asked for by name that is not there is an
  error that names what is missing; we never fall back silently.
- Compute dtype for ``auto`` (master weights always stay float32):
  - CUDA with compute capability 8.0 or newer (A100, H100, RTX 30xx+): bfloat16.
  - CUDA older than 8.0 (T4, V100): float16 with a GradScaler. ``torch.cuda.is_bf16_supported()`` says
    True on a T4 through emulation, so we decide by capability, not by that call.
  - CPU: measured, not guessed from flags (``dtype_choice``): bfloat16 autocast when it runs the model's own
    matmuls (forward + backward) at least 10% faster than float32 on this machine and its measured quality
    cost is within 0.01 val bpb; float32 otherwise. CPU flags only explain (``cpu_native_bf16``).
  - MPS: float32.
- Muon's orthogonalisation dtype for ``auto`` (``choose_muon_dtype``; nanochat 2f09686 always uses bfloat16):
  CUDA 8.0+ bfloat16; older CUDA float32 (no bf16 there, and fp16's range is too narrow for the iteration);
  MPS float32; CPU measured on the optimizer's own stacked shapes, by the same rule as the model's matmuls.
- Attention dtype (``choose_attention_dtype``): the compute dtype, except under a CPU's bf16 autocast, where one
  layer's attention is timed in bf16 and in fp32 (the casts included; compiled for a compiled run, whose bf16
  attention over a short sequence is explicit matmuls, not the flash kernel): bf16 only if it is at least 10%
  faster.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from nanochat_next.dtype_choice import cpu_model_name
from nanochat_next.errors import UserError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class DeviceUnavailable(UserError):
    """A device was asked for by name and this machine or this torch build does not have it."""


def cuda_missing_reason() -> str | None:
    """Why CUDA cannot be used here, or None when it can."""
    if torch.version.cuda is None:
        return (f"this torch build ({torch.__version__}) has no CUDA support; install a CUDA build of torch "
                "(see pytorch.org) or use --device cpu")
    if not torch.cuda.is_available():
        return (f"torch {torch.__version__} was built with CUDA {torch.version.cuda} but no GPU is visible "
                "(check nvidia-smi and CUDA_VISIBLE_DEVICES) or use --device cpu")
    return None


def mps_missing_reason() -> str | None:
    """Why Apple's MPS backend cannot be used here, or None when it can."""
    if not torch.backends.mps.is_built():
        return f"this torch build ({torch.__version__}) has no MPS support (MPS needs macOS on Apple silicon)"
    if not torch.backends.mps.is_available():
        return "torch has MPS support but the device is not available (needs macOS 12.3+ on Apple silicon)"
    return None


def available_device_types() -> list[str]:
    """Device types usable right now, best first."""
    found = []
    if cuda_missing_reason() is None:
        found.append("cuda")
    if mps_missing_reason() is None:
        found.append("mps")
    found.append("cpu")
    return found


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a device name into a torch.device, or raise DeviceUnavailable saying what is missing."""
    if name not in DEVICE_CHOICES:
        raise UserError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if name == "auto":
        return torch.device(available_device_types()[0])
    reason = {"cuda": cuda_missing_reason, "mps": mps_missing_reason}.get(name, lambda: None)()
    if reason is not None:
        raise DeviceUnavailable(f"--device {name} was requested but {reason}")
    return torch.device(name)


def cpu_native_bf16(cpuinfo: str | None = None) -> tuple[bool, str]:
    """Whether this CPU does bf16 matmul fast (AMX-BF16 tiles), and how we know (from /proc/cpuinfo, or the
    given text in its format)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            cpuinfo = ""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    if "amx_bf16" in flags:
        return True, "CPU flag amx_bf16 (AMX tiles)"
    if "avx512_bf16" in flags:
        return False, "avx512_bf16 without AMX: bf16 matmul is not faster than fp32 there"
    if flags:
        return False, "CPU flags show no bf16 support"
    return False, "CPU flags unknown on this platform (no /proc/cpuinfo)"


@dataclass(frozen=True)
class DtypeChoice:
    """The compute dtype for a device, whether fp16 loss scaling is needed, and why."""

    dtype: torch.dtype
    grad_scaler: bool
    reason: str

    @property
    def name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def cuda_capability(device: torch.device) -> tuple[int, int] | None:
    """The GPU's compute capability (None off CUDA): the one input of the CUDA dtype rules (tests inject it)."""
    return torch.cuda.get_device_capability(device) if device.type == "cuda" else None


def choose_dtype(device: torch.device | str, requested: str = "auto",
                 shapes: list[tuple[int, int, int]] | None = None,
                 say: Callable[[str], None] | None = None) -> DtypeChoice:
    """Apply the dtype rules of this module; an explicit request is honoured unless the device can't do it.
    ``shapes``: the model's matmuls (M, K, N) that a CPU measures for ``auto`` (default: the cpu profile's);
    ``say``: where the probe tells that it is measuring, when that takes more than a second."""
    device = torch.device(device)
    if requested not in DTYPE_CHOICES:
        raise UserError(f"unknown dtype {requested!r}; choose one of {', '.join(DTYPE_CHOICES)}")
    capability = cuda_capability(device)
    if requested != "auto":
        dtype = DTYPES[requested]
        if dtype == torch.bfloat16 and capability is not None and capability < (8, 0):
            raise UserError(f"bfloat16 needs a GPU of compute capability 8.0 or newer; this one is "
                            f"{capability[0]}.{capability[1]}: use --dtype float16 or --dtype auto")
        scaler = dtype == torch.float16 and device.type == "cuda"
        return DtypeChoice(dtype, scaler, f"requested with --dtype {requested}")
    if device.type == "cuda":
        cap = f"{capability[0]}.{capability[1]}"
        if capability >= (8, 0):
            return DtypeChoice(torch.bfloat16, False, f"CUDA compute capability {cap} >= 8.0 has native bf16")
        return DtypeChoice(torch.float16, True,
                           f"CUDA compute capability {cap} < 8.0 has no fast bf16: fp16 with GradScaler")
    if device.type == "cpu":
        from nanochat_next import dtype_choice

        use_bf16, why = dtype_choice.decide(dtype_choice.measure(shapes, say=say))
        return DtypeChoice(torch.bfloat16 if use_bf16 else torch.float32, False, why)
    return DtypeChoice(torch.float32, False, f"{device.type}: float32 (reduced precision not validated there)")


MUON_DTYPE_CHOICES = ("auto", "compute", "float32", "bfloat16")


def choose_muon_dtype(device: torch.device | str, requested: str = "auto",
                      measure_cpu: Callable[[], object] | None = None,
                      compute: DtypeChoice | None = None) -> DtypeChoice:
    """The dtype of Muon's orthogonalisation (module docstring). ``measure_cpu()`` returns the CPU's
    ``DtypeMeasurement`` of the optimizer's own stacked shapes (``train.muon.orthogonalize_items``). ``compute``:
    the model's compute dtype, which ``requested="compute"`` follows (nanochat 92d63d4's rule: bf16 when it computes
    in bf16, else float32: fp16's range is too narrow for the iteration)."""
    device = torch.device(device)
    if requested not in MUON_DTYPE_CHOICES:
        raise UserError(f"unknown Muon dtype {requested!r}; choose one of {', '.join(MUON_DTYPE_CHOICES)}")
    if requested == "compute":
        if compute is None:
            raise ValueError("muon dtype 'compute' needs the model's compute dtype")
        dtype = torch.bfloat16 if compute.dtype == torch.bfloat16 else torch.float32
        return DtypeChoice(dtype, False, f"the model's compute dtype ({compute.name}), as nanochat 92d63d4")
    capability = cuda_capability(device)
    if requested != "auto":
        if requested == "bfloat16" and capability is not None and capability < (8, 0):
            raise UserError(f"bfloat16 needs a GPU of compute capability 8.0 or newer; this one is "
                            f"{capability[0]}.{capability[1]}: use --muon-dtype float32 or auto")
        return DtypeChoice(DTYPES[requested], False, f"requested with --muon-dtype {requested}")
    if device.type == "cuda":
        cap = f"{capability[0]}.{capability[1]}"
        if capability >= (8, 0):
            return DtypeChoice(torch.bfloat16, False, f"CUDA compute capability {cap} >= 8.0 has native bf16")
        return DtypeChoice(torch.float32, False, f"CUDA compute capability {cap} < 8.0 has no bf16 (and fp16's "
                                                 "range is too narrow for the iteration): float32")
    if device.type == "cpu" and measure_cpu is not None:
        from nanochat_next import dtype_choice

        use_bf16, why = dtype_choice.decide(measure_cpu(), dtype_choice.MUON_BF16_QUALITY_GAP,
                                            "Muon's orthogonalisation of this model's matrices")
        return DtypeChoice(torch.bfloat16 if use_bf16 else torch.float32, False, why)
    return DtypeChoice(torch.float32, False, f"{device.type}: float32 (bf16 not measured there)")


ATTENTION_DTYPE_CHOICES = ("auto", "compute", "float32", "bfloat16")


def choose_attention_dtype(device: torch.device | str, compute: DtypeChoice, requested: str = "auto",
                           measure_cpu: Callable[[], object] | None = None) -> DtypeChoice | None:
    """The dtype the model attends in (module docstring); None: the compute dtype, nothing to set (the setting only
    applies under a CPU's bf16 autocast; ``compute`` asks for autocast's dtype there too). ``measure_cpu()``
    returns the CPU's ``DtypeMeasurement`` of one layer's attention (``dtype_choice.measure_attention``)."""
    if requested not in ATTENTION_DTYPE_CHOICES:
        raise UserError(f"unknown attention dtype {requested!r}; choose one of {', '.join(ATTENTION_DTYPE_CHOICES)}")
    if torch.device(device).type != "cpu" or compute.dtype != torch.bfloat16 or requested == "compute":
        return None
    if requested != "auto":
        return DtypeChoice(DTYPES[requested], False, f"requested with --attention-dtype {requested}")
    if measure_cpu is None:
        raise ValueError("attention dtype 'auto' on a CPU needs its measurement")
    from nanochat_next import dtype_choice

    # bf16 must win clearly: fp32 attention is the more precise one, so a tie goes to it (no quality cost to weigh)
    use_bf16, why = dtype_choice.decide(measure_cpu(), 0.0, "this model's attention")
    return DtypeChoice(torch.bfloat16 if use_bf16 else torch.float32, False, why)


def compile_support(device: torch.device | str = "cpu") -> tuple[bool, str]:
    """Try torch.compile on a tiny function on the device; return (works, what happened)."""
    device = torch.device(device)
    if sys.platform == "win32":
        return False, "torch.compile is not supported on Windows"
    try:
        t0 = time.perf_counter()
        fn = torch.compile(lambda x: torch.relu(x) * 2.0 + 1.0, dynamic=False)
        x = torch.randn(8, device=device)
        ok = torch.allclose(fn(x), torch.relu(x) * 2.0 + 1.0)
        seconds = time.perf_counter() - t0
    except Exception as exc:  # compile failures come in many types (missing compiler, Triton, ...)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return False, f"torch.compile failed: {type(exc).__name__}: {first_line[:200]}"
    if not ok:
        return False, "torch.compile ran but gave a different result than eager"
    return True, f"torch.compile works (tiny function compiled in {seconds:.1f} s)"


def measure_matmul_flops(device: torch.device | str, dtype: torch.dtype, n: int = 1024,
                         seconds: float = 0.5) -> float:
    """Measured dense matmul throughput in FLOP/s for an n x n product (a peak for MFU on this machine)."""
    device = torch.device(device)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()
        elif device.type == "mps":
            torch.mps.synchronize()

    a @ b  # warm-up
    sync()
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    sync()
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def measure_memory_bandwidth(device: torch.device | str = "cpu", megabytes: int = 256, seconds: float = 0.5) -> float:
    """Measured copy bandwidth in bytes/s (bytes read + bytes written per second), the denominator of MBU."""
    device = torch.device(device)
    src = torch.ones(megabytes * 2**18, device=device)  # 4-byte floats
    dst = torch.empty_like(src)
    dst.copy_(src)  # warm-up: pages touched
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        dst.copy_(src)
        reps += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * src.numel() * 4 * reps / (time.perf_counter() - t0)


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
KEEP_FREED_BYTES = 1 << 30  # free memory at the heap's top kept for reuse up to this much, not given back
_malloc_kept: bool | None = None


def keep_freed_memory() -> bool:
    """Have glibc's malloc reuse freed memory instead of returning it to the OS: True if it does now.

    A training step allocates and frees the same large tensors every step (logits: 8 x 256 x 4096 floats = 32 MiB
    at the cpu profile). glibc serves every block of 32 MiB or more with a fresh mmap and unmaps it on free, so
    each step the kernel zero-fills those pages again: 92,000 page faults a step in the cpu profile's eager fp32
    step (370 MB of fresh pages), 23,000-29,000 compiled (benchmarks/malloc_bench.py). With mmap off and a high
    trim threshold the heap keeps the pages and the faults fall to ~0 after the first steps; the arithmetic is
    untouched (same losses, tested). The cost is a higher resident size (the heap keeps its high-water mark).
    Linux with glibc only (macOS and Windows allocators differ: nothing is done); ``NANOCHAT_NEXT_MALLOC=system``
    keeps glibc's defaults."""
    global _malloc_kept
    if _malloc_kept is None:
        _malloc_kept = False
        if os.environ.get("NANOCHAT_NEXT_MALLOC", "").lower() != "system" and sys.platform.startswith("linux") \
                and platform.libc_ver()[0] == "glibc":
            import ctypes

            try:
                libc = ctypes.CDLL("libc.so.6")
                # mallopt returns 1 on success; mmap off first (every block from the heap), then no trimming
                _malloc_kept = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD,
                                                                                       KEEP_FREED_BYTES))
            except (OSError, AttributeError):
                pass
    return _malloc_kept


def set_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads in this process and in the processes it starts (bench, ablate); None keeps
    torch's choice (one per core). Two torch processes on the same cores each want them all and both run several
    times slower: give each fewer."""
    if threads is None:
        return
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # children read it when they start


def busy_note(cpu_count: int | None = None, load: float | None = None) -> str | None:
    """One line when the machine is busy at the start of a run (the 1-minute load above the cores), else None."""
    cpu_count = cpu_count or os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (OSError, AttributeError):  # not on this platform (Windows)
            return None
    if load <= cpu_count:
        return None
    return (f"note: this machine is busy (load {load:.1f} on {cpu_count} cores): another process is using the cores "
            f"this run needs, so it will run slower than it should. Wait for it, or give each process its share "
            f"with --threads (e.g. --threads {max(1, cpu_count // 2)})")


def runtime_banner(in_colab: bool = False) -> str:
    """One line for a notebook's first cell: the runtime it is on and, on a CPU in Colab, how to get a GPU."""
    if torch.cuda.is_available():
        return (f"runtime: GPU {torch.cuda.get_device_name()} ({device_description(torch.device('cuda'))}); "
                "preset='auto' takes the GPU preset")
    where = f"CPU ({os.cpu_count()} cores)"
    if in_colab:
        return (f"runtime: {where}. For the GPU preset: Runtime > Change runtime type > T4 GPU, then Run all; on the "
                "CPU, preset='auto' takes the small one (a few minutes)")
    return f"runtime: {where}; preset='auto' takes the CPU preset (a few minutes)"


def device_description(device: torch.device) -> str:
    """A human name for the device: the GPU model or the CPU model."""
    if device.type == "cuda":
        cap = torch.cuda.get_device_capability(device)
        return f"{torch.cuda.get_device_name(device)} (compute capability {cap[0]}.{cap[1]})"
    if device.type == "cpu":
        return cpu_model_name()
    return device.type


@dataclass
class DeviceProfile:
    device: str
    description: str
    dtype: str
    grad_scaler: bool
    dtype_reason: str
    compile_ok: bool | None
    compile_reason: str
    matmul_gflops: dict[str, float] | None = None
    muon_dtype: str | None = None  # Muon's orthogonalisation dtype for the default model, and why
    muon_reason: str = ""


def runtime_profile(device: str = "auto", check_compile: bool = True, measure: bool = False,
                    muon_measure: Callable[[], object] | None = None) -> dict:
    """Everything ``doctor`` reports, as a JSON-ready dict. Raises DeviceUnavailable for an absent device.
    ``muon_measure``: the CPU probe of Muon's orthogonalisation for the default model (``choose_muon_dtype``)."""
    wanted = [resolve_device(device)] if device != "auto" else [torch.device(t) for t in available_device_types()]
    missing = {"cuda": cuda_missing_reason(), "mps": mps_missing_reason()}
    devices = []
    for dev in wanted:
        choice = choose_dtype(dev)
        ok, why = compile_support(dev) if check_compile else (None, "not checked (--no-compile-check)")
        flops = None
        if measure:
            flops = {name: round(measure_matmul_flops(dev, dt) / 1e9, 1)
                     for name, dt in DTYPES.items() if not (dev.type == "cpu" and dt == torch.float16)}
        muon = choose_muon_dtype(dev, "auto", muon_measure) if muon_measure is not None else None
        devices.append(asdict(DeviceProfile(str(dev), device_description(dev), choice.name, choice.grad_scaler,
                                            choice.reason, ok, why, flops, muon and muon.name,
                                            muon.reason if muon else "")))
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cpu": cpu_model_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "available_devices": available_device_types(),
        "unavailable": {name: why for name, why in missing.items() if why is not None},
        "devices": devices,
    }


def format_profile(profile: dict) -> str:
    """The doctor report as aligned text."""
    lines = [
        f"python        {profile['python']} on {profile['platform']}",
        f"torch         {profile['torch']} (CUDA {profile['cuda'] or 'none'}, cuDNN {profile['cudnn'] or 'none'})",
        f"cpu           {profile['cpu']}, {profile['cpu_count']} logical cores, torch uses "
        f"{profile['torch_threads']} threads",
        f"devices       {', '.join(profile['available_devices'])}",
    ]
    for name, why in profile["unavailable"].items():
        lines.append(f"  no {name:<9} {why}")
    for d in profile["devices"]:
        lines.append(f"[{d['device']}] {d['description']}")
        scaler = " + GradScaler" if d["grad_scaler"] else ""
        lines.append(f"  dtype       {d['dtype']}{scaler}: {d['dtype_reason']}")
        if d.get("muon_dtype"):
            lines.append(f"  muon        orthogonalisation in {d['muon_dtype']}: {d['muon_reason']}")
        verdict = {True: "yes", False: "no", None: "unknown"}[d["compile_ok"]]
        lines.append(f"  compile     {verdict}: {d['compile_reason']}")
        if d["matmul_gflops"]:
            measured = ", ".join(f"{k} {v:,.0f}" for k, v in d["matmul_gflops"].items())
            lines.append(f"  matmul      GFLOP/s measured: {measured}")
    return "\n".join(lines)
