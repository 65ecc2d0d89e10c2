"""The baseline: karpathy/nanochat at a pinned ref, found or cloned, checked, and run in its own process.

The bench runs two of them side by side: nanochat at the pinned ref (2f09686) and at the newest commit we pin
(92d63d4). Both train with their own ``scripts.base_train``; the flags the bench passes and the log lines it reads
are the same at both commits (checked on their code: 92d63d4 adds flags and log fields, renames none).

The baseline comes from a checkout path, else a clone of a ref in the cache (downloaded once), else it is
not run: the scorecard then says "baseline: not run", never "pass". nanochat needs a Python with its
dependencies; ``resolve_baseline`` checks that Python can import what its training script imports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from nanochat_next.bench.profiles import Profile
from nanochat_next.errors import UserError

NANOCHAT_URL_ENV = "NANOCHAT_NEXT_NANOCHAT_URL"  # where to clone nanochat from (tests point it at a local repo)
NANOCHAT_URL = "https://github.com/karpathy/nanochat.git"


@dataclass
class Baseline:
    """Where nanochat comes from in this run and whether it ran."""

    status: str  # "ready" -> "run" | "not run" | "failed"
    reason: str | None = None
    checkout: str | None = None
    ref: str | None = None
    commit: str | None = None
    dirty: bool | None = None
    python: str | None = None
    versions: dict | None = None  # of the Python that runs nanochat: python, torch, CUDA


def _git(*args: str, cwd: str | Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def clone_nanochat(ref: str, cache: Path) -> Path:
    """A checkout of nanochat at ``ref`` under ``cache`` (cloned once, reused after). Raises OSError offline."""
    if not re.fullmatch(r"[0-9a-f]{7,40}", ref):
        raise UserError(f"--nanochat-ref must be a commit hash (7-40 hex digits), got {ref!r}")
    dest = cache / f"nanochat-{ref}"
    if (dest / "scripts" / "base_train.py").is_file():
        return dest
    url = os.environ.get(NANOCHAT_URL_ENV, NANOCHAT_URL)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=f".nanochat-{ref}."))
    try:
        for args in (("clone", "--quiet", url, str(tmp)), ("checkout", "--quiet", ref)):
            proc = _git(*args, cwd=tmp if args[0] == "checkout" else None)
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                raise OSError(f"git {args[0]} failed: {last}")
        tmp.rename(dest)  # only a complete checkout at the ref appears under its final name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


# what nanochat's base_train imports beyond this package's own dependencies (torch, pyarrow, tiktoken, rustbpe)
NANOCHAT_DEPENDENCIES = ("wandb", "tabulate", "psutil", "python-dotenv", "filelock", "jinja2", "tokenizers", "pyyaml",
                         "requests")
# (nanochat.report, imported at 2f09686, is gone at 92d63d4: the check names what both commits' base_train import)
NANOCHAT_IMPORTS = ("import wandb, torch, pyarrow, tiktoken, rustbpe; import nanochat.gpt, nanochat.dataloader, "
                    "nanochat.tokenizer, nanochat.checkpoint_manager, nanochat.loss_eval, nanochat.engine, "
                    "scripts.base_eval")


def resolve_baseline(nanochat: str | None, nanochat_ref: str | None, python: str | None,
                     cache: Path | None = None, flag: str = "--nanochat") -> Baseline:
    """Find nanochat: a checkout path (an error naming ``flag`` if it is not one), else a cached clone of
    ``nanochat_ref``, else not run. Then check that ``python`` can import nanochat's training script's
    dependencies."""
    from nanochat_next.corpus import cache_dir
    from nanochat_next.provenance import git_state

    python = python or sys.executable
    if nanochat is not None:
        checkout = Path(nanochat).expanduser().resolve()
        if not (checkout / "scripts" / "base_train.py").is_file():
            raise UserError(f"{flag} {nanochat}: not a nanochat checkout (no scripts/base_train.py there)")
    elif nanochat_ref is not None:
        try:
            checkout = clone_nanochat(nanochat_ref, (cache or cache_dir()) / "nanochat")
        except (OSError, subprocess.SubprocessError) as exc:
            return Baseline("not run", f"no nanochat checkout: cloning {nanochat_ref[:12]} failed ({exc}); offline? "
                            f"pass {flag} PATH", ref=nanochat_ref)
    else:
        return Baseline("not run", "no nanochat requested (--no-baseline)")
    state = git_state(checkout)
    baseline = Baseline("ready", checkout=str(checkout), ref=nanochat_ref or state["commit"], commit=state["commit"],
                        dirty=state["dirty"], python=python)
    report_versions = ("; import json, platform; print(json.dumps({'python': platform.python_version(), "
                       "'torch': torch.__version__, 'cuda': torch.version.cuda}))")
    proc = subprocess.run([python, "-c", NANOCHAT_IMPORTS + report_versions], cwd=checkout, capture_output=True,
                          text=True)
    if proc.returncode == 0:
        baseline.versions = json.loads(proc.stdout.strip().splitlines()[-1])
    else:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        baseline.status, baseline.reason = "not run", (
            f"{python} cannot run nanochat's training script ({last}); install nanochat's dependencies there "
            f"(pip install {' '.join(NANOCHAT_DEPENDENCIES)}) or pass --nanochat-python")
    return baseline


NANOCHAT_RANKS = """
import hashlib, pickle, sys
enc = pickle.load(open(sys.argv[1], "rb"))
items = sorted((rank, token) for token, rank in enc._mergeable_ranks.items())
print(hashlib.sha256(repr(items).encode()).hexdigest())
"""


# Runs a command as its child and writes the child's peak RSS (ru_maxrss) to a file. A child's ru_maxrss starts at
# its parent's RSS at fork, so the command is started from this small process, not from the benchmark (which
# holds torch: hundreds of MB that would be a floor under every figure).
LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_process(cmd: list[str], cwd: str | Path, env: dict, log_path: Path, poll=None) -> dict:
    """Run ``cmd`` with its output in ``log_path``; wall seconds and the process's peak RSS (MB), measured by
    a small launcher process (see LAUNCHER). ``poll()``, if given, is called about once a second (progress)."""
    t0 = time.perf_counter()
    rss_file = log_path.with_suffix(".maxrss")
    with open(log_path, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(rss_file), *map(str, cmd)], cwd=cwd, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while proc.poll() is None:
                if poll:
                    poll()
                time.sleep(0.2 if poll is None else 1.0)
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and the command it runs
            proc.wait()
            raise
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"{' '.join(map(str, cmd[:4]))} ... exited {proc.returncode} (log {log_path}):\n{tail}")
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    peak = int(rss_file.read_text()) * scale
    return {"wall_seconds": time.perf_counter() - t0, "peak_rss_mb": peak / 2**20}


STEP_LINE = re.compile(r"step (\d+)/\d+ \([\d.]+%\) \| loss: ([\d.]+) \| lrm: [\d.]+ \| dt: ([\d.]+)ms \| "
                       r"tok/sec: ([\d,]+)")
EVAL_LINE = re.compile(r"Step (\d+) \| Validation bpb: ([\d.]+)")
PEAK_LINE = re.compile(r"Peak memory usage: ([\d.]+)MiB")
FLOPS_LINE = re.compile(r"Estimated FLOPs per token: ([\d.e+]+)")
DTYPE_LINE = re.compile(r"COMPUTE_DTYPE: torch\.(\w+)")  # 92d63d4 only


def parse_nanochat_log(text: str) -> dict:
    """Per-step smoothed loss, dt and tok/s, the evals and the reported peak memory from base_train's output."""
    steps = [(int(s), float(loss), float(dt_ms) / 1000, int(tps.replace(",", "")))
             for s, loss, dt_ms, tps in STEP_LINE.findall(text)]
    if not steps:
        raise ValueError("no step lines in nanochat's output (is it base_train at the pinned ref?)")
    peak, flops, dtype = PEAK_LINE.search(text), FLOPS_LINE.search(text), DTYPE_LINE.search(text)
    return {"flops_per_token": float(flops.group(1)) if flops else None, "compute_dtype": dtype and dtype.group(1),
            "smooth_losses": [s[1] for s in steps], "dt": [s[2] for s in steps], "tok_per_s": [s[3] for s in steps],
            "evals": [{"step": int(s), "val_bpb": float(b)} for s, b in EVAL_LINE.findall(text)],
            "reported_peak_memory_mb": float(peak.group(1)) if peak else None}


def nanochat_train_command(profile: Profile, python: str) -> list[str]:
    """nanochat's base_train with the profile's run config (it has no seed flag: its seed is 42)."""
    run = profile.run
    return [python, "-m", "scripts.base_train", "--device-type", run.device, "--depth", str(run.depth),
            "--head-dim", str(run.head_dim), "--max-seq-len", str(run.max_seq_len), "--device-batch-size",
            str(run.device_batch_size), "--total-batch-size", str(run.total_batch_size), "--window-pattern",
            run.window_pattern, "--num-iterations", str(run.steps), "--eval-every", str(run.eval_every),
            "--eval-tokens", str(run.eval_tokens), "--core-metric-every", "-1", "--sample-every", "-1",
            "--save-every", "-1"]
