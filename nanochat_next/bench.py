"""The benchmark harness: ours vs karpathy/nanochat at a pinned ref, on one dataset, one tokenizer, one config.

``nanochat-next bench --profile NAME`` (and notebook 06) call :func:`run_bench`, which

1. prepares ONE dataset in nanochat's layout (``base_data/shard_*.parquet``, the last shard is validation)
   and ONE tokenizer: nanochat trains it with its own ``scripts.tok_train``; ours trains on the same text
   and must come out identical (checked by a digest of the ranks) before anything is trained;
2. trains nanochat (its ``scripts.base_train``, from its checkout, in a private ``NANOCHAT_BASE_DIR``)
   and ours (``nanochat-next train --mode tensor``) with the profile's config on the same device, each in
   its own process (peak RSS from the kernel; on CUDA the allocator's peak that each side reports);
3. trains ours again with the same seed (the losses must be identical) and with a second seed (the
   spread is the noise floor to read quality deltas against);
4. measures greedy decode tok/s of both engines on the same trained weights;
5. writes ``results/bench_<profile>_<UTC>.json`` and ``.md`` with a three-row scorecard (quality, speed,
   reproducibility), the thresholds that decided it and the metadata to reproduce it.

The baseline comes from ``nanochat`` (a checkout path), else a clone of ``nanochat_ref`` in the cache
(downloaded once), else it is not run: the scorecard then says "baseline: not run", never "pass".

Profiles are data: one row of :data:`PROFILES` each. nanochat's ``base_train`` has no seed flag; its
seed is 42, so the first seed of every profile is 42 (the same seed gives ours nanochat's initial
weights bit for bit, see docs/parity.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from nanochat_next.errors import UserError

PINNED_NANOCHAT = "2f096867244e3d00a50284d1be05fa3f5dcfb84b"
NANOCHAT_URL_ENV = "NANOCHAT_NEXT_NANOCHAT_URL"  # where to clone nanochat from (tests point it at a local repo)
NANOCHAT_URL = "https://github.com/karpathy/nanochat.git"
SPEED_THRESHOLD = 1.0  # ours / nanochat median tok/s, and nanochat / ours time to the target bpb
DOC_CAP = 10_000  # nanochat's tok_train default: characters per document used for the tokenizer


@dataclass(frozen=True)
class Profile:
    """One benchmark configuration. Every field is shared by both sides unless its comment says otherwise."""

    name: str
    description: str
    device: str  # cpu | cuda
    dtype: str  # ours (float32 | bfloat16 | float16+GradScaler); nanochat: fp32 on CPU, bf16 autocast on CUDA
    compile: bool  # ours; nanochat's base_train always compiles the model
    corpus: str  # a known corpus (paragraph documents, last 10% = val shard) or "fineweb-edu:N" (N shards)
    vocab_size: int
    depth: int
    max_seq_len: int
    device_batch_size: int
    total_batch_size: int
    steps: int
    eval_every: int
    eval_tokens: int
    target_bpb: float | None  # for time to target; None = nanochat's final bpb + quality_tolerance
    quality_tolerance: float  # pass when our final val bpb <= nanochat's + this
    head_dim: int = 64
    window_pattern: str = "L"
    seeds: tuple[int, int] = (42, 43)
    warmup_steps: int = 10  # steps left out of tok/s statistics (compilation, allocator warm-up)
    repro_tolerance: float = 0.0  # max |loss difference| between two runs with one seed
    tokenizer_max_chars: int = 2_000_000_000  # nanochat's tok_train default
    decode_prompt_tokens: int = 32
    decode_new_tokens: int = 64
    decode_repeats: int = 3


# The one table of benchmark configs. CPU targets were read off measured runs (results/bench_cpu_*.md);
# the GPU rows are configs, not measurements: no GPU number is claimed until a GPU run commits its artifact.
PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("smoke", "the whole pipeline in under 2 minutes on a 2-core CPU (CI): depth 2, 30 steps",
            device="cpu", dtype="float32", compile=True, corpus="tinyshakespeare", vocab_size=512, depth=2,
            max_seq_len=128, device_batch_size=4, total_batch_size=512, steps=30, eval_every=10, eval_tokens=4096,
            target_bpb=4.5, quality_tolerance=0.02, warmup_steps=5, decode_prompt_tokens=16, decode_new_tokens=32),
    Profile("cpu", "the CPU comparison: depth 4, seq 256, 2048-token steps, 200 steps on tinyshakespeare",
            device="cpu", dtype="float32", compile=True, corpus="tinyshakespeare", vocab_size=4096, depth=4,
            max_seq_len=256, device_batch_size=8, total_batch_size=2048, steps=200, eval_every=25,
            eval_tokens=16384, target_bpb=2.5, quality_tolerance=0.005),
    Profile("t4", "Colab T4 (16 GB, no bf16): ours fp16 + GradScaler, depth 6, seq 512, 300 steps on FineWeb-EDU",
            device="cuda", dtype="float16", compile=True, corpus="fineweb-edu:3", vocab_size=8192, depth=6,
            max_seq_len=512, device_batch_size=32, total_batch_size=32768, steps=300, eval_every=50,
            eval_tokens=262144, target_bpb=None, quality_tolerance=0.01, repro_tolerance=5e-3,
            tokenizer_max_chars=200_000_000, decode_prompt_tokens=64, decode_new_tokens=128),
    Profile("a100", "A100 (40/80 GB) bf16: depth 12 (nanochat's d12), seq 2048, 300 steps on FineWeb-EDU",
            device="cuda", dtype="bfloat16", compile=True, corpus="fineweb-edu:4", vocab_size=32768, depth=12,
            max_seq_len=2048, device_batch_size=16, total_batch_size=262144, steps=300, eval_every=50,
            eval_tokens=1048576, target_bpb=None, quality_tolerance=0.01, repro_tolerance=5e-3,
            tokenizer_max_chars=500_000_000, decode_prompt_tokens=64, decode_new_tokens=128),
    Profile("h100", "H100 (80 GB) bf16: depth 12 (nanochat's d12), seq 2048, 300 steps on FineWeb-EDU",
            device="cuda", dtype="bfloat16", compile=True, corpus="fineweb-edu:5", vocab_size=32768, depth=12,
            max_seq_len=2048, device_batch_size=32, total_batch_size=524288, steps=300, eval_every=50,
            eval_tokens=2097152, target_bpb=None, quality_tolerance=0.01, repro_tolerance=5e-3,
            tokenizer_max_chars=500_000_000, decode_prompt_tokens=64, decode_new_tokens=128),
)}


def profile_for_gpu(name: str | None, capability: tuple[int, int] | None) -> str:
    """The profile that fits a GPU (what the Colab launcher runs): no GPU -> smoke; before Ampere (T4, sm75:
    no native bf16) -> t4; an H100 -> h100; any other Ampere or newer -> a100."""
    if name is None or capability is None:
        return "smoke"
    if tuple(capability) < (8, 0):
        return "t4"
    return "h100" if "H100" in name.upper() else "a100"


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


# ---------------------------------------------------------------------------------------------- the baseline

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
NANOCHAT_IMPORTS = ("import wandb, torch, pyarrow, tiktoken, rustbpe; import nanochat.gpt, nanochat.dataloader, "
                    "nanochat.tokenizer, nanochat.checkpoint_manager, nanochat.loss_eval, nanochat.engine, "
                    "nanochat.report, scripts.base_eval")


def resolve_baseline(nanochat: str | None, nanochat_ref: str | None, python: str | None,
                     cache: Path | None = None) -> Baseline:
    """Find nanochat: a checkout path (an error if it is not one), else a cached clone of ``nanochat_ref``,
    else not run. Then check that ``python`` can import nanochat's training script's dependencies."""
    from nanochat_next.corpus import cache_dir
    from nanochat_next.provenance import git_state

    python = python or sys.executable
    if nanochat is not None:
        checkout = Path(nanochat).expanduser().resolve()
        if not (checkout / "scripts" / "base_train.py").is_file():
            raise UserError(f"--nanochat {nanochat}: not a nanochat checkout (no scripts/base_train.py there)")
    elif nanochat_ref is not None:
        try:
            checkout = clone_nanochat(nanochat_ref, (cache or cache_dir()) / "nanochat")
        except (OSError, subprocess.SubprocessError) as exc:
            return Baseline("not run", f"no nanochat checkout: cloning {nanochat_ref[:12]} failed ({exc}); offline? "
                            "pass --nanochat PATH", ref=nanochat_ref)
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


# ---------------------------------------------------------------------------------------- data and tokenizer

def prepare_data(profile: Profile, base: Path) -> dict:
    """``base/base_data/shard_*.parquet`` in nanochat's layout (the last shard validates); returns a summary."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nanochat_next.atomic import sha256_file
    from nanochat_next.corpus import fineweb_shards, load_corpus, split_documents, train_val_split

    data = base / "base_data"
    data.mkdir(parents=True, exist_ok=True)
    if profile.corpus.startswith("fineweb-edu:"):
        for src in fineweb_shards(int(profile.corpus.split(":", 1)[1])):
            (data / src.name).symlink_to(src)
    else:
        text, rule = load_corpus(profile.corpus)
        train_docs, val_docs = train_val_split(split_documents(text, rule))
        for i, part in enumerate([train_docs, val_docs]):
            pq.write_table(pa.table({"text": part}), data / f"shard_{i:05d}.parquet", row_group_size=1024)
    shards = sorted(data.glob("*.parquet"))
    rows = [pq.ParquetFile(s).metadata.num_rows for s in shards]
    return {"corpus": profile.corpus, "directory_layout": "nanochat base_data (last shard = validation)",
            "train_documents": sum(rows[:-1]), "val_documents": rows[-1],
            "shards": {s.name: sha256_file(s) for s in shards}}


def tokenizer_texts(data: Path, max_chars: int, doc_cap: int = DOC_CAP):
    """The documents nanochat's tok_train sees: train shards in order, each cut to doc_cap characters, up to
    and including the document that passes max_chars."""
    import pyarrow.parquet as pq

    seen = 0
    for path in sorted(data.glob("*.parquet"))[:-1]:
        pf = pq.ParquetFile(path)
        for rg in range(pf.num_row_groups):
            for doc in pf.read_row_group(rg, columns=["text"]).column("text").to_pylist():
                doc = doc[:doc_cap]
                seen += len(doc)
                yield doc
                if seen > max_chars:
                    return


def ranks_digest(token_bytes: list[bytes]) -> str:
    return hashlib.sha256(repr(list(enumerate(token_bytes))).encode()).hexdigest()


NANOCHAT_RANKS = """
import hashlib, pickle, sys
enc = pickle.load(open(sys.argv[1], "rb"))
items = sorted((rank, token) for token, rank in enc._mergeable_ranks.items())
print(hashlib.sha256(repr(items).encode()).hexdigest())
"""


# ----------------------------------------------------------------------------------------- running the sides

def run_process(cmd: list[str], cwd: str | Path, env: dict, log_path: Path) -> dict:
    """Run ``cmd`` with its output in ``log_path``; wall seconds and the process tree's peak RSS (MB)."""
    t0 = time.perf_counter()
    with open(log_path, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"{' '.join(map(str, cmd[:4]))} ... exited {proc.returncode} (log {log_path}):\n{tail}")
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return {"wall_seconds": time.perf_counter() - t0, "peak_rss_mb": usage.ru_maxrss / scale}


STEP_LINE = re.compile(r"step (\d+)/\d+ \([\d.]+%\) \| loss: ([\d.]+) \| lrm: [\d.]+ \| dt: ([\d.]+)ms \| "
                       r"tok/sec: ([\d,]+)")
EVAL_LINE = re.compile(r"Step (\d+) \| Validation bpb: ([\d.]+)")
PEAK_LINE = re.compile(r"Peak memory usage: ([\d.]+)MiB")


def parse_nanochat_log(text: str) -> dict:
    """Per-step smoothed loss, dt and tok/s, the evals and the reported peak memory from base_train's output."""
    steps = [(int(s), float(loss), float(dt_ms) / 1000, int(tps.replace(",", "")))
             for s, loss, dt_ms, tps in STEP_LINE.findall(text)]
    if not steps:
        raise ValueError("no step lines in nanochat's output (is it base_train at the pinned ref?)")
    peak = PEAK_LINE.search(text)
    return {"smooth_losses": [s[1] for s in steps], "dt": [s[2] for s in steps], "tok_per_s": [s[3] for s in steps],
            "evals": [{"step": int(s), "val_bpb": float(b)} for s, b in EVAL_LINE.findall(text)],
            "reported_peak_memory_mb": float(peak.group(1)) if peak else None}


def parse_our_metrics(text: str) -> dict:
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    train = [r for r in records if "loss" in r]
    return {"losses": [r["loss"] for r in train], "dt": [r["dt"] for r in train],
            "tok_per_s": [r["tok_per_s"] for r in train],
            "evals": [{"step": r["step"], "val_bpb": r["val_bpb"]} for r in records if "val_bpb" in r]}


def smooth(losses: list[float], beta: float = 0.9) -> list[float]:
    """nanochat's logged training loss: an EMA with bias correction (what its step lines print)."""
    out, ema = [], 0.0
    for i, loss in enumerate(losses):
        ema = beta * ema + (1 - beta) * loss
        out.append(ema / (1 - beta ** (i + 1)))
    return out


def summarize(raw: dict, warmup: int, target_bpb: float | None) -> dict:
    """tok/s statistics after warm-up, a training-time axis and the time to the target bpb.

    Training time excludes evals and counts each warm-up step (compilation) at the steady median step
    time, so a compile cache hit or miss does not decide the comparison."""
    tps = raw["tok_per_s"][warmup:] or raw["tok_per_s"]
    dts = raw["dt"]
    steady_dt = statistics.median(dts[warmup:] or dts)
    clean = [steady_dt if i < warmup else d for i, d in enumerate(dts)]
    elapsed = [0.0]
    for d in clean:
        elapsed.append(elapsed[-1] + d)
    evals = [{**e, "train_time_s": elapsed[min(e["step"], len(clean))]} for e in raw["evals"]]
    reached = [e for e in evals if target_bpb is not None and e["val_bpb"] <= target_bpb]
    return {"tok_per_s": {"median": statistics.median(tps), "min": min(tps), "max": max(tps)},
            "evals": evals, "final_val_bpb": evals[-1]["val_bpb"] if evals else None,
            "time_to_target_s": reached[0]["train_time_s"] if reached else None,
            "steps_to_target": reached[0]["step"] if reached else None,
            "step_seconds": raw["dt"], "train_time_s": elapsed[-1]}


def our_train_command(profile: Profile, seed: int, data: Path, tokenizer: Path, out: Path, device: str,
                      dtype: str) -> list[str]:
    return [sys.executable, "-m", "nanochat_next", "train", "--mode", "tensor", "--data", str(data),
            "--tokenizer", str(tokenizer), "--depth", str(profile.depth), "--head-dim", str(profile.head_dim),
            "--max-seq-len", str(profile.max_seq_len), "--device-batch-size", str(profile.device_batch_size),
            "--total-batch-size", str(profile.total_batch_size), "--window-pattern", profile.window_pattern,
            "--steps", str(profile.steps), "--eval-every", str(profile.eval_every), "--eval-tokens",
            str(profile.eval_tokens), "--seed", str(seed), "--dtype", dtype, "--device", device, "--out", str(out),
            "--no-progress", "--compile" if profile.compile else "--no-compile"]


def nanochat_train_command(profile: Profile, python: str, device: str) -> list[str]:
    return [python, "-m", "scripts.base_train", "--device-type", device, "--depth", str(profile.depth),
            "--head-dim", str(profile.head_dim), "--max-seq-len", str(profile.max_seq_len), "--device-batch-size",
            str(profile.device_batch_size), "--total-batch-size", str(profile.total_batch_size), "--window-pattern",
            profile.window_pattern, "--num-iterations", str(profile.steps), "--eval-every", str(profile.eval_every),
            "--eval-tokens", str(profile.eval_tokens), "--core-metric-every", "-1", "--sample-every", "-1",
            "--save-every", "-1"]


# Runs in each side's own process: greedy decoding of one prompt, batch by batch; prints one JSON line.
# side: "nanochat" (its Engine), "ours" (our Engine) or "ours-nocache" (a full forward per new token).
DECODE_RUNNER = r"""
import json, statistics, sys, time, contextlib, torch
side, weights, config_path = sys.argv[1], sys.argv[2], sys.argv[3]
cfg = json.load(open(config_path))
state = torch.load(weights, weights_only=True)
device = torch.device(cfg["device"])
amp = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(cfg["dtype"])
autocast = torch.autocast(device.type, dtype=amp) if amp and device.type == "cuda" else contextlib.nullcontext()
prompt, new = cfg["prompt"], cfg["new_tokens"]
if side == "nanochat":
    sys.path.insert(0, cfg["nanochat"])
    from nanochat.gpt import GPT, GPTConfig
    from nanochat.engine import Engine
    model = GPT(GPTConfig(**cfg["model_config"]))
    model.load_state_dict(state, strict=True)
    model.to(device).eval()
    class Tok:  # special ids nanochat's Engine acts on (stop at bos/assistant_end, tool calls): none match,
        def encode_special(self, s): return -1  # so both engines decode exactly new_tokens tokens
        def get_bos_token_id(self): return -1
    engine = Engine(model, Tok())
    def stream(batch):
        for column, _ in engine.generate(prompt, num_samples=batch, max_tokens=new, temperature=0.0):
            yield column
else:
    from nanochat_next.engine import Engine
    from nanochat_next.gpt import GPT, GPTConfig
    model = GPT(GPTConfig(**cfg["model_config"]), init=False)
    model.load_state_dict(state, strict=True)
    model.to(device).eval()
    engine = Engine(model)
    def stream(batch):
        yield from engine.generate(prompt, new, num_samples=batch, temperature=0.0, stop_tokens=set())
    if side == "ours-nocache":
        def stream(batch):
            ids = torch.tensor([prompt] * batch, device=device)
            with torch.no_grad():
                for _ in range(new):
                    nxt = model(ids)[:, -1].argmax(-1)
                    ids = torch.cat([ids, nxt[:, None]], 1)
                    yield nxt.tolist()
def measure(batch):
    t0 = time.perf_counter(); stamps, tokens = [], []
    with autocast:
        for column in stream(batch):
            if device.type == "cuda":
                torch.cuda.synchronize()
            stamps.append(time.perf_counter()); tokens.append(column[0])
    if len(stamps) != new:
        raise SystemExit(f"{side} decoded {len(stamps)} tokens, expected {new}")
    return {"prefill_tok_s": len(prompt) / (stamps[0] - t0),
            "decode_tok_s": (len(stamps) - 1) * batch / (stamps[-1] - stamps[0]), "tokens": tokens}
out = {}
for batch in cfg.get("batches", [1]):
    runs = [measure(batch) for _ in range(cfg["repeats"])]
    out[batch] = {"prefill_tok_s": statistics.median(r["prefill_tok_s"] for r in runs),
                  "decode_tok_s": statistics.median(r["decode_tok_s"] for r in runs), "tokens": runs[0]["tokens"]}
print("RESULT", json.dumps(out), flush=True)
"""


def decode_speed(python: str, side: str, weights: Path, config: Path, cwd: Path, log_path: Path) -> dict:
    """Run DECODE_RUNNER for one side in its own process: {batch: {prefill_tok_s, decode_tok_s, tokens}} and
    the process's peak RSS (MB) under ``"peak_rss_mb"``."""
    proc = run_process([python, "-c", DECODE_RUNNER, side, str(weights), str(config)], cwd, dict(os.environ),
                       log_path)
    result = json.loads(log_path.read_text().split("RESULT", 1)[1])
    return {"by_batch": {int(k): v for k, v in result.items()}, "peak_rss_mb": proc["peak_rss_mb"]}


# ------------------------------------------------------------------------------------------------ the verdict

def scorecard(profile: Profile, runs: dict, baseline: Baseline, reproducibility: dict) -> list[dict]:
    """Three rows: quality, speed, reproducibility; status "pass", "fail" or "baseline: not run|failed"."""
    ours, nc = runs["ours"], runs.get("nanochat")
    quality_rule = f"our final val bpb <= nanochat's + {profile.quality_tolerance}"
    speed_rule = (f"our median tok/s / nanochat's >= {SPEED_THRESHOLD} and nanochat's time to the target bpb / ours "
                  f">= {SPEED_THRESHOLD}")
    repro_rule = (f"two runs with seed {profile.seeds[0]}: max |loss difference| <= {profile.repro_tolerance:g}; "
                  "metadata complete; our work tree clean")
    if nc is None:
        missing = f"baseline: {baseline.status}"
        rows = [{"row": "quality", "status": missing, "value": None, "threshold": quality_rule,
                 "detail": baseline.reason},
                {"row": "speed", "status": missing, "value": None, "threshold": speed_rule, "detail": baseline.reason}]
    else:
        delta = ours["final_val_bpb"] - nc["final_val_bpb"]
        tps_ratio = ours["tok_per_s"]["median"] / nc["tok_per_s"]["median"]
        ours_t, nc_t = ours["time_to_target_s"], nc["time_to_target_s"]
        if ours_t is None:
            ttt_ratio, ttt_ok, ttt_text = None, False, "ours never reached the target"
        elif nc_t is None:
            ttt_ratio, ttt_ok, ttt_text = None, True, "nanochat never reached the target, ours did"
        else:
            ttt_ratio = nc_t / ours_t
            ttt_ok, ttt_text = ttt_ratio >= SPEED_THRESHOLD, f"time-to-target ratio {ttt_ratio:.2f}x"
        rerun = runs.get("ours_rerun")
        noise_text = ""
        if rerun:
            noise = abs(rerun["tok_per_s"]["median"] / ours["tok_per_s"]["median"] - 1)
            noise_text = f" (our two identical runs differ by {100 * noise:.1f}% in tok/s)"
        decode_text = ""
        if ours.get("decode_tok_s") and nc.get("decode_tok_s"):
            decode_text = f"; decode {ours['decode_tok_s'] / nc['decode_tok_s']:.2f}x (reported, not scored)"
        rows = [{"row": "quality", "status": "pass" if delta <= profile.quality_tolerance else "fail",
                 "value": delta, "threshold": quality_rule,
                 "detail": f"val bpb {ours['final_val_bpb']:.4f} vs {nc['final_val_bpb']:.4f} ({delta:+.4f}); "
                           f"seed spread {reproducibility['seed_spread_bpb']:.4f}"},
                {"row": "speed", "status": "pass" if tps_ratio >= SPEED_THRESHOLD and ttt_ok else "fail",
                 "value": {"tok_per_s_ratio": tps_ratio, "time_to_target_ratio": ttt_ratio}, "threshold": speed_rule,
                 "detail": f"tok/s ratio {tps_ratio:.2f}x{noise_text}; {ttt_text}" + decode_text}]
    ok = (reproducibility["identical_rerun"] and not reproducibility["missing_metadata"]
          and reproducibility["our_tree_clean"])
    diff = reproducibility["max_abs_loss_diff"]
    problems = ([] if reproducibility["identical_rerun"] else
                [f"reruns differ by up to {diff:.3g}" if diff is not None else "reruns logged different step counts"])
    problems += [f"missing metadata: {', '.join(reproducibility['missing_metadata'])}"] * bool(
        reproducibility["missing_metadata"])
    problems += [] if reproducibility["our_tree_clean"] else ["our work tree has uncommitted changes"]
    rows.append({"row": "reproducibility", "status": "pass" if ok else "fail",
                 "value": reproducibility["max_abs_loss_diff"], "threshold": repro_rule,
                 "detail": "; ".join(problems) or (f"identical losses over {profile.steps} steps; seed spread "
                                                   f"{reproducibility['seed_spread_bpb']:.4f} bpb")})
    return rows


def missing_metadata(metadata: dict, baseline: Baseline) -> list[str]:
    required = {"our commit": metadata["git"]["commit"], "our dirty flag": metadata["git"]["dirty"],
                "torch version": metadata["versions"].get("torch"),
                "python version": metadata["versions"].get("python"),
                "nanochat-next version": metadata["versions"].get("nanochat-next"),
                "CPU model": metadata["machine"].get("cpu"), "device name": metadata["run"].get("device_name"),
                "dtype": metadata["run"].get("dtype"), "command line": metadata.get("command")}
    if baseline.status == "run":
        required |= {"nanochat commit": baseline.commit, "nanochat dirty flag": baseline.dirty}
    return [name for name, value in required.items() if value is None or value == ""]


# ---------------------------------------------------------------------------------------------------- harness

@dataclass
class BenchOptions:
    profile: str
    nanochat: str | None = None
    nanochat_ref: str | None = PINNED_NANOCHAT
    nanochat_python: str | None = None
    device: str | None = None
    out: str = "results"
    steps: int | None = None
    keep_work: bool = False
    progress: bool = True


def resolve_profile(name: str, steps: int | None = None, device: str | None = None) -> tuple[Profile, str, str]:
    """(profile with overrides, device, our dtype). A device other than the profile's uses our default dtype."""
    from nanochat_next.runtime import choose_dtype, resolve_device

    if name not in PROFILES:
        raise UserError(f"unknown profile {name!r}; profiles: {', '.join(PROFILES)}")
    profile = PROFILES[name]
    if steps is not None:
        if steps < 1:
            raise UserError(f"--steps must be positive, got {steps}")
        profile = replace(profile, steps=steps)
    wanted = device or profile.device
    try:
        resolved = resolve_device(wanted)
    except UserError as exc:
        raise UserError(f"profile {name!r} runs on {wanted}: {exc}. Pass --device cpu to run its config on the CPU, "
                        "or pick a CPU profile (smoke, cpu)") from None
    dtype = profile.dtype if resolved.type == profile.device else choose_dtype(resolved).name
    return profile, resolved.type, dtype


def run_bench(options: BenchOptions, log=print) -> dict:
    """Run the benchmark; write results/bench_<profile>_<UTC>.json and .md; return the JSON data (with the
    paths under ``"artifacts"``)."""
    import torch

    from nanochat_next.bpe_tokenizer import BPETokenizer
    from nanochat_next.provenance import run_metadata, write_results
    from nanochat_next.runtime import device_description

    if options.progress:
        from tqdm.auto import tqdm
    profile, device, dtype = resolve_profile(options.profile, options.steps, options.device)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    baseline = resolve_baseline(options.nanochat, options.nanochat_ref, options.nanochat_python)
    metadata = run_metadata()  # now: the git state of the code that runs, even if the tree changes meanwhile
    work = Path(tempfile.mkdtemp(prefix=f"bench-{profile.name}-"))
    base = work / "ncbase"
    phases = ["data + tokenizer", *(["nanochat train"] if baseline.status == "ready" else []),
              f"ours seed {profile.seeds[0]}", f"ours seed {profile.seeds[0]} again", f"ours seed {profile.seeds[1]}",
              "decode"]
    bar = tqdm(total=len(phases), desc=f"bench {profile.name}", unit="phase") if options.progress else None
    t_start = time.perf_counter()

    def phase(name: str) -> None:
        if bar:
            bar.set_postfix_str(name)
        (bar.write if bar else log)(f"[{time.perf_counter() - t_start:6.1f}s] {name}")

    def done() -> None:
        if bar:
            bar.update(1)

    try:
        phase("data + tokenizer")
        data_info = prepare_data(profile, base)
        tok_dir = work / "tokenizer"
        ours_tok = BPETokenizer.train(list(tokenizer_texts(base / "base_data", profile.tokenizer_max_chars)),
                                      profile.vocab_size)
        ours_tok.save(tok_dir)
        nc_env = {**os.environ, "NANOCHAT_BASE_DIR": str(base)}
        same_tokenizer = None
        if baseline.status == "ready":
            try:
                run_process([baseline.python, "-m", "scripts.tok_train", "--vocab-size", str(profile.vocab_size),
                             "--max-chars", str(profile.tokenizer_max_chars), "--doc-cap", str(DOC_CAP)],
                            baseline.checkout, nc_env, work / "nanochat_tok.log")
                pkl = base / "tokenizer" / "tokenizer.pkl"
                theirs = subprocess.run([baseline.python, "-c", NANOCHAT_RANKS, str(pkl)], capture_output=True,
                                        text=True, check=True).stdout.strip()
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                baseline.status, baseline.reason = "failed", f"nanochat's tokenizer training failed: {exc}"
            else:
                same_tokenizer = ranks_digest(ours_tok.token_bytes) == theirs
                if not same_tokenizer:
                    raise UserError("our tokenizer and nanochat's differ on the same text; refusing to compare "
                                    f"training runs on different tokens (work dir {work})")
        done()

        runs: dict[str, dict | None] = {"nanochat": None}
        raw: dict[str, dict] = {}
        target = profile.target_bpb  # None: nanochat's final bpb + the quality tolerance, once it has run
        if baseline.status == "ready":
            phase("nanochat train")
            try:
                proc = run_process(nanochat_train_command(profile, baseline.python, device), baseline.checkout, nc_env,
                                   work / "nanochat_train.log")
                raw["nanochat"] = parse_nanochat_log((work / "nanochat_train.log").read_text())
            except (RuntimeError, ValueError) as exc:
                baseline.status, baseline.reason = "failed", f"nanochat's training failed: {exc}"
            else:
                baseline.status = "run"
                memory = raw["nanochat"]["reported_peak_memory_mb"] if device == "cuda" else proc["peak_rss_mb"]
                if target is None and raw["nanochat"]["evals"]:
                    target = raw["nanochat"]["evals"][-1]["val_bpb"] + profile.quality_tolerance
                runs["nanochat"] = {**summarize(raw["nanochat"], profile.warmup_steps, target),
                                    "smooth_losses": raw["nanochat"]["smooth_losses"], "dtype":
                                    "bfloat16 autocast" if device == "cuda" else "float32", "compile": True,
                                    "peak_memory_mb": memory, "wall_seconds": proc["wall_seconds"]}
            done()

        def ours(key: str, seed: int) -> None:
            phase(f"ours seed {seed}" + (" again" if key == "ours_rerun" else ""))
            out = work / key
            proc = run_process(our_train_command(profile, seed, base / "base_data", tok_dir, out, device, dtype),
                               Path.cwd(), dict(os.environ), work / f"{key}.log")
            raw[key] = parse_our_metrics((out / "metrics.jsonl").read_text())
            summary = json.loads((out / "model" / "config.json").read_text())["summary"]
            runs[key] = {**summarize(raw[key], profile.warmup_steps, target), "seed": seed,
                         "losses": raw[key]["losses"], "smooth_losses": smooth(raw[key]["losses"]),
                         "dtype": summary["dtype"], "compile": profile.compile,
                         "peak_memory_mb": summary.get("peak_memory_mb") if device == "cuda" else proc["peak_rss_mb"],
                         "wall_seconds": proc["wall_seconds"], "num_params": summary["num_params"]}
            done()

        ours("ours", profile.seeds[0])
        ours("ours_rerun", profile.seeds[0])
        ours("ours_seed2", profile.seeds[1])

        phase("decode")
        from safetensors.torch import load_file

        model_dir = work / "ours" / "model"
        weights = work / "decode_weights.pt"
        torch.save(load_file(str(model_dir / "model.safetensors")), weights)
        prompt = ours_tok.encode(first_validation_text(base / "base_data"), prepend_bos=True)
        prompt = prompt[:profile.decode_prompt_tokens]
        decode_cfg = work / "decode.json"
        decode_cfg.write_text(json.dumps({
            "model_config": json.loads((model_dir / "config.json").read_text())["model_config"], "prompt": prompt,
            "new_tokens": profile.decode_new_tokens, "repeats": profile.decode_repeats, "device": device,
            "dtype": dtype, "nanochat": baseline.checkout}))
        decode = {"ours": decode_speed(sys.executable, "ours", weights, decode_cfg, Path.cwd(),
                                       work / "decode_ours.log")}
        if runs["nanochat"] is not None:
            try:
                decode["nanochat"] = decode_speed(baseline.python, "nanochat", weights, decode_cfg,
                                                  Path(baseline.checkout), work / "decode_nanochat.log")
            except RuntimeError as exc:
                decode["nanochat"] = {"error": str(exc)}
        for side, result in decode.items():
            runs[side]["decode_tok_s"] = result["by_batch"][1]["decode_tok_s"] if "by_batch" in result else None
            if "error" in result:
                runs[side]["decode_error"] = result["error"]
        done()
    except BaseException:
        if bar:
            bar.close()
        log(f"benchmark stopped; its logs are kept in {work}")
        raise
    if bar:
        bar.close()

    diffs = [abs(a - b) for a, b in zip(runs["ours"]["losses"], runs["ours_rerun"]["losses"])]
    same_length = len(runs["ours"]["losses"]) == len(runs["ours_rerun"]["losses"])
    metadata["run"] = {"device": device, "device_name": device_description(torch.device(device)), "dtype": dtype,
                       "compile": profile.compile, "seeds": list(profile.seeds), "profile": profile.name,
                       "nanochat": {k: getattr(baseline, k) for k in ("ref", "commit", "dirty", "checkout", "python")},
                       "nanochat_pinned_ref": PINNED_NANOCHAT}
    reproducibility = {
        "identical_rerun": same_length and max(diffs, default=0.0) <= profile.repro_tolerance,
        "max_abs_loss_diff": max(diffs, default=0.0) if same_length else None,
        "seed_spread_bpb": abs(runs["ours"]["final_val_bpb"] - runs["ours_seed2"]["final_val_bpb"]),
        "final_val_bpb_by_seed": {str(profile.seeds[0]): runs["ours"]["final_val_bpb"],
                                  str(profile.seeds[1]): runs["ours_seed2"]["final_val_bpb"]},
        "missing_metadata": missing_metadata(metadata, baseline),
        "our_tree_clean": metadata["git"]["dirty"] is False,
    }
    same_tokens = None
    if "by_batch" in decode.get("nanochat", {}):
        same_tokens = decode["ours"]["by_batch"][1]["tokens"] == decode["nanochat"]["by_batch"][1]["tokens"]
    data = {
        "benchmark": "bench",
        "profile": profile.name,
        "config": {**asdict(profile), "device": device, "our_dtype": dtype},
        "seeds": list(profile.seeds),
        "target_bpb": target,
        "baseline": asdict(baseline),
        "same_tokenizer": same_tokenizer,
        "same_greedy_tokens": same_tokens,
        "data": data_info,
        "thresholds": {"quality_tolerance_bpb": profile.quality_tolerance, "speed_ratio": SPEED_THRESHOLD,
                       "repro_tolerance": profile.repro_tolerance, "warmup_steps": profile.warmup_steps},
        "scorecard": scorecard(profile, runs, baseline, reproducibility),
        "reproducibility": reproducibility,
        "runs": runs,
        "wall_seconds": time.perf_counter() - t_start,
    }
    json_path, md_path = write_results(options.out, f"bench_{profile.name}_{stamp}", data, report(data, metadata),
                                       metadata=metadata)
    keep = options.keep_work or baseline.status == "failed"  # keep nanochat's logs to find out why
    if keep:
        log(f"runs and logs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return {**data, "metadata": metadata, "artifacts": {"json": str(json_path), "md": str(md_path),
                                                        "work": str(work) if keep else None}}


def first_validation_text(data: Path) -> str:
    """The decode prompt's source: the first document of the validation shard (text neither side trained on)."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(sorted(data.glob("*.parquet"))[-1])
    return pf.read_row_group(0, columns=["text"]).column("text")[0].as_py()


# ----------------------------------------------------------------------------------------------------- report

def _fmt(value, spec: str = ".4f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def scorecard_table(rows: list[dict]) -> str:
    lines = ["| row | status | measured | threshold |", "|---|---|---|---|"]
    for r in rows:
        status = {"pass": "**pass**", "fail": "**FAIL**"}.get(r["status"], r["status"])
        lines.append(f"| {r['row']} | {status} | {r['detail'] or '-'} | {r['threshold']} |")
    return "\n".join(lines)


def report(data: dict, metadata: dict) -> str:
    """The .md for people: scorecard first, then the runs, reproducibility and where it ran."""
    cfg, runs, base = data["config"], data["runs"], data["baseline"]
    nanochat_name = f"nanochat {base['commit'][:7]}" if base.get("commit") else "nanochat"
    lines = [
        f"# Benchmark `{data['profile']}`: ours vs nanochat",
        "",
        f"{PROFILES[data['profile']].description}. Device {metadata['run']['device_name']}; "
        f"ours {cfg['our_dtype']}, compile {cfg['compile']}. Same data ({cfg['corpus']}, nanochat's parquet layout), "
        f"same tokenizer (vocab {cfg['vocab_size']}; identical: {data['same_tokenizer']}), same config (depth "
        f"{cfg['depth']}, seq {cfg['max_seq_len']}, batch {cfg['device_batch_size']} x {cfg['max_seq_len']}, "
        f"{cfg['total_batch_size']:,} tokens/step, window {cfg['window_pattern']}, {cfg['steps']} steps), seed "
        f"{data['seeds'][0]}.",
        "",
        "## Scorecard",
        "",
        scorecard_table(data["scorecard"]),
        "",
    ]
    if base["status"] != "run":
        lines += [f"Baseline {base['status']}: {base['reason']}. Quality and speed are not judged without it.", ""]
    evals = [e["step"] for e in runs["ours"]["evals"]]
    lines += ["## Runs", "",
              "| run | tok/s median (min-max) | " + " | ".join(f"bpb @{s}" for s in evals)
              + " | time to target (s) | peak memory (MB) | decode tok/s |",
              "|---|---:|" + "---:|" * len(evals) + "---:|---:|---:|"]
    names = [("nanochat", nanochat_name), ("ours", f"ours seed {data['seeds'][0]}"),
             ("ours_rerun", f"ours seed {data['seeds'][0]} again"), ("ours_seed2", f"ours seed {data['seeds'][1]}")]
    for key, name in names:
        run = runs.get(key)
        if run is None:
            continue
        t = run["tok_per_s"]
        bpbs = " | ".join(_fmt(e["val_bpb"]) for e in run["evals"])
        lines.append(f"| {name} | {t['median']:,.0f} ({t['min']:,.0f}-{t['max']:,.0f}) | {bpbs} | "
                     f"{_fmt(run['time_to_target_s'], '.1f')} | {_fmt(run['peak_memory_mb'], ',.0f')} | "
                     f"{_fmt(run.get('decode_tok_s'), ',.0f')} |")
    memory = "peak CUDA memory allocated" if cfg["device"] == "cuda" else "peak RSS of the process tree"
    repro = data["reproducibility"]
    lines += [
        "",
        f"tok/s leaves out the first {data['thresholds']['warmup_steps']} steps (compilation, warm-up). Time to "
        f"target = training time (evals excluded, warm-up steps counted at the steady step time) until the first "
        f"eval at val bpb <= {_fmt(data['target_bpb'])}. Memory: {memory}. Decode: greedy, batch 1, "
        f"{cfg['decode_new_tokens']} tokens after a {cfg['decode_prompt_tokens']}-token prompt, both engines on the "
        f"same weights (ours, seed {data['seeds'][0]}); identical tokens: {data['same_greedy_tokens']}.",
        "",
        "## Reproducibility",
        "",
        f"- Seed {data['seeds'][0]} twice: max |loss difference| {_fmt(repro['max_abs_loss_diff'], '.3g')} over "
        f"{cfg['steps']} steps (identical: {repro['identical_rerun']}).",
        f"- Seeds {data['seeds'][0]} and {data['seeds'][1]}: final val bpb "
        + " vs ".join(f"{v:.4f}" for v in repro["final_val_bpb_by_seed"].values())
        + f", spread {repro['seed_spread_bpb']:.4f}: quality differences smaller than this are noise.",
        f"- Metadata missing: {', '.join(repro['missing_metadata']) or 'nothing'}; our tree clean: "
        f"{repro['our_tree_clean']}.",
        "",
        "## Where and what",
        "",
        f"- ours: nanochat-next {metadata['git']['commit']} (dirty: {metadata['git']['dirty']}); nanochat: "
        f"{base.get('commit') or 'not run'} (dirty: {base.get('dirty')}; pinned ref {PINNED_NANOCHAT[:12]}"
        + (f"; its Python {base['versions']['python']}, torch {base['versions']['torch']}"
           if base.get("versions") else "") + ").",
        f"- {metadata['machine']['cpu']}, {metadata['machine']['cpu_count']} CPUs, torch threads "
        f"{metadata['machine']['torch_threads']}; GPU {metadata['machine']['gpu']}; torch "
        f"{metadata['versions']['torch']}, CUDA {metadata['machine']['cuda']}, cuDNN {metadata['machine']['cudnn']}; "
        f"Python {metadata['versions']['python']}.",
        f"- Command: `{metadata['command']}` at {metadata['timestamp_utc']}; the whole benchmark took "
        f"{data['wall_seconds']:.0f} s.",
    ]
    return "\n".join(lines)
