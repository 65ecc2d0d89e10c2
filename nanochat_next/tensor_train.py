"""Training the tensor models: nanochat's recipe, with the device/dtype rules of ``runtime``.

One step = ``grad_accum`` micro-batches of ``device_batch_size x max_seq_len`` tokens per process, so a
step always sees ``total_batch_size`` tokens whatever the number of processes. Then the optimizer step
with the LR multiplier of the schedule, Muon momentum warming 0.85 -> 0.95 over 300 steps and Muon
weight decay decaying linearly to 0, as nanochat. Learning rates and weight decay are scaled to the
batch size and model as nanochat does (LR x sqrt(B / 2^19); weight decay x sqrt(B / 2^19) x D_ref / D).

Validation bits per byte every ``eval_every`` steps and at the end; tokens/s and MFU every step; a
progress bar; one JSON line per step in ``OUT/metrics.jsonl``; the final model in ``OUT/model/`` as
safetensors + config JSON. Under ``torchrun`` it runs DDP (gloo on CPU, nccl on CUDA). The logged training
loss is the mean over all micro-batches of the step and all ranks (nanochat logs rank 0's last one).
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from nanochat_next import checkpoint
from nanochat_next.atomic import write_text, write_with
from nanochat_next.bpe_tokenizer import BPETokenizer
from nanochat_next.errors import UserError
from nanochat_next.evaluate import evaluate_bpb
from nanochat_next.gpt import GPT, GPTConfig, config_for_depth
from nanochat_next.gpt_classic import ClassicGPT
from nanochat_next.muon import MuonAdamW, nanochat_param_groups
from nanochat_next.packing import DocumentSource, PackingLoader
from nanochat_next.runtime import choose_dtype, measure_matmul_flops, resolve_device
from nanochat_next.schedule import LRSchedule
from nanochat_next.tensor_bigram import TensorBigram

# run settings that may change between a checkpoint and its resume; every other one must match
# (learning rates and dtype may change too, e.g. to recover from a NaN: the resume is then no longer exact)
RESUMABLE_CHANGES = {"eval_every", "eval_tokens", "device", "compile", "deterministic", "peak_flops", "save_every",
                     "keep_last", "extra", "lr", "embedding_lr", "unembedding_lr", "matrix_lr", "scalar_lr", "dtype"}
STOP_AFTER_SAVE_ENV = "NANOCHAT_NEXT_TEST_CRASH_AFTER_SAVE"  # tests: die (os._exit) right after saving step N
B_REF = 2**19  # nanochat's reference batch size (tokens) for its LR and weight-decay scaling
PARAM_DATA_RATIO = 10.5  # nanochat's default target tokens : scaling params


@dataclass
class TensorRun:
    model_kind: str = "mini-gpt"  # bigram | mini-gpt
    style: str = "modern"  # modern (nanochat) | classic (GPT-2)
    depth: int = 4
    aspect_ratio: int = 64
    head_dim: int = 64
    max_seq_len: int = 256
    window_pattern: str = "L"
    device_batch_size: int = 8
    total_batch_size: int = 2048
    num_iterations: int = 200
    optimizer: str = "muon"  # muon (nanochat's MuonAdamW) | adamw | sgd
    lr: float = 1e-3  # adamw / sgd only
    embedding_lr: float = 0.3
    unembedding_lr: float = 0.004
    matrix_lr: float = 0.02
    scalar_lr: float = 0.5
    weight_decay: float = 0.2
    adam_beta1: float = 0.8
    adam_beta2: float = 0.95
    warmup_ratio: float = 0.0
    warmdown_ratio: float = 0.5
    final_lr_frac: float = 0.0
    lr_schedule: str = "linear"
    eval_every: int = 50
    eval_tokens: int = 16384
    device: str = "auto"
    dtype: str = "auto"
    compile: bool = False
    # torch deterministic algorithms while training: a compiled model's embedding backward otherwise
    # accumulates with atomic adds, so two runs with one seed differ in the last bits (measured on CPU)
    deterministic: bool = True
    seed: int = 42
    peak_flops: float | None = None  # FLOP/s for MFU; None = measure a matmul at start
    save_every: int = 0  # checkpoint every N steps (0: only at the end); always before that step's eval
    keep_last: int = 0  # keep the newest N checkpoints (0: all)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model_kind not in ("bigram", "mini-gpt"):
            raise UserError(f"unknown model kind {self.model_kind!r} (bigram, mini-gpt)")
        if self.style not in ("modern", "classic"):
            raise UserError(f"unknown style {self.style!r} (modern, classic)")
        if self.optimizer not in ("muon", "adamw", "sgd"):
            raise UserError(f"unknown optimizer {self.optimizer!r} (muon, adamw, sgd)")
        if self.optimizer == "muon" and self.model_kind == "bigram":
            raise UserError("muon needs weight matrices inside blocks; train the bigram with --optimizer adamw")
        for name in ("depth", "max_seq_len", "device_batch_size", "total_batch_size", "num_iterations",
                     "eval_tokens", "head_dim", "aspect_ratio"):
            if getattr(self, name) < 1:
                raise UserError(f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        LRSchedule(self.num_iterations, self.warmup_ratio, self.warmdown_ratio, self.final_lr_frac, self.lr_schedule)


def distributed_info() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment; (0, 0, 1) without it."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"])
    return 0, 0, 1


def model_config(run: TensorRun, vocab_size: int) -> GPTConfig:
    return config_for_depth(run.depth, vocab_size, run.aspect_ratio, run.head_dim, run.max_seq_len, run.window_pattern)


def build_model(run: TensorRun, vocab_size: int, device: torch.device | str = "cpu") -> torch.nn.Module:
    """Built on the meta device, then initialised on ``device``: with the same seed, the modern GPT's
    weights equal nanochat's (its init draws random numbers in the same order)."""
    config = model_config(run, vocab_size)
    cls = TensorBigram if run.model_kind == "bigram" else GPT if run.style == "modern" else ClassicGPT
    with torch.device("meta"):
        model = cls(config, init=False)
    model.to_empty(device=device)
    model.init_weights()
    return model


def scaling_params(model: torch.nn.Module) -> int:
    """nanochat's 'scaling params': block matrices + lm_head (embeddings excluded)."""
    if isinstance(model, GPT):
        return sum(p.numel() for p in model.transformer.h.parameters()) + model.lm_head.weight.numel()
    return sum(p.numel() for p in model.parameters())


def scaled_hyperparameters(run: TensorRun, model: torch.nn.Module, vocab_size: int) -> tuple[float, float]:
    """(LR scale, weight decay) by nanochat's batch-size and horizon rules."""
    lr_scale = (run.total_batch_size / B_REF) ** 0.5
    with torch.device("meta"):
        reference = GPT(config_for_depth(12, vocab_size, run.aspect_ratio, run.head_dim, run.max_seq_len,
                                         run.window_pattern), init=False)
    d_ref = PARAM_DATA_RATIO * scaling_params(reference)
    target_tokens = PARAM_DATA_RATIO * scaling_params(model)
    weight_decay = run.weight_decay * math.sqrt(run.total_batch_size / B_REF) * (d_ref / target_tokens)
    return lr_scale, weight_decay


def build_optimizer(run: TensorRun, model: torch.nn.Module, lr_scale: float, weight_decay: float):
    if run.optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=run.lr, betas=(0.9, 0.95), weight_decay=0.0)
    elif run.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=run.lr, momentum=0.9)
    elif isinstance(model, GPT):
        opt = MuonAdamW(nanochat_param_groups(
            model, unembedding_lr=run.unembedding_lr * lr_scale, embedding_lr=run.embedding_lr * lr_scale,
            matrix_lr=run.matrix_lr * lr_scale, weight_decay=weight_decay, adam_betas=(run.adam_beta1, run.adam_beta2),
            scalar_lr=run.scalar_lr * lr_scale), compile=run.compile)
    else:  # classic: Muon on block matrices, AdamW (embedding LR) on the rest
        groups = model.param_groups()
        scale = (model.config.n_embd / 768) ** -0.5
        adam = dict(kind="adamw", betas=(run.adam_beta1, run.adam_beta2), eps=1e-10, weight_decay=0.0)
        param_groups = [dict(adam, params=groups["embeddings"] + groups["positions"],
                             lr=run.embedding_lr * lr_scale * scale * 0.1),
                        dict(adam, params=groups["norms_and_biases"], lr=run.scalar_lr * lr_scale * 0.01)]
        for shape in sorted({tuple(p.shape) for p in groups["matrices"]}):
            param_groups.append(dict(kind="muon", params=[p for p in groups["matrices"] if tuple(p.shape) == shape],
                                     lr=run.matrix_lr * lr_scale, momentum=0.95, ns_steps=5, beta2=0.95,
                                     weight_decay=weight_decay))
        opt = MuonAdamW(param_groups, compile=run.compile)
    for group in opt.param_groups:
        group["initial_lr"] = group["lr"]
    return opt


def save_model(directory: Path, model: torch.nn.Module, run: TensorRun, extra: dict) -> Path:
    """model.safetensors + config.json, each via temp file + fsync + rename."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if isinstance(model, ClassicGPT):
        state.pop("lm_head.weight")  # tied to transformer.wte.weight
    write_with(directory / "model.safetensors", lambda tmp: save_file(state, tmp))
    config = {"model_config": asdict(model.config), "model_kind": run.model_kind, "style": model.style,
              "run": asdict(run), **extra}
    write_text(directory / "config.json", json.dumps(config, indent=2) + "\n")
    return directory


def load_trained(directory: str | Path, device: str = "auto") -> tuple[torch.nn.Module, BPETokenizer, dict]:
    """(model, tokenizer, config) from a training output directory (model/ + tokenizer/), no pickle involved."""
    from safetensors.torch import load_file

    directory = Path(directory)
    model_dir = directory / "model"
    if not (model_dir / "config.json").is_file() or not (model_dir / "model.safetensors").is_file():
        raise UserError(f"no tensor model at {directory} (expected model/config.json and model/model.safetensors); "
                        f"train one with `nanochat-next train --mode tensor --out {directory}`")
    try:
        config = json.loads((model_dir / "config.json").read_text())
        gpt_config = GPTConfig(**config["model_config"])
        cls = {"modern": GPT, "classic": ClassicGPT, "bigram": TensorBigram}[config["style"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{model_dir / 'config.json'} is damaged ({type(exc).__name__}: {exc})") from None
    model = cls(gpt_config, init=False)
    try:
        missing, unexpected = model.load_state_dict(load_file(model_dir / "model.safetensors"), strict=False)
    except Exception as exc:  # safetensors raises its own error types for truncated/corrupt files
        raise UserError(f"{model_dir / 'model.safetensors'} is damaged ({exc})") from None
    missing = [k for k in missing if not (cls is ClassicGPT and k == "lm_head.weight")]  # tied to wte
    if missing or unexpected:
        raise UserError(f"{model_dir} does not match its config: missing {missing[:3]}, unexpected {unexpected[:3]}")
    tokenizer = BPETokenizer.load(directory / "tokenizer")
    return model.to(resolve_device(device)).eval(), tokenizer, config


def train(run: TensorRun, train_source: DocumentSource, val_source: DocumentSource, tokenizer: BPETokenizer,
          out_dir: str | Path, progress: bool = True, log=print, resume: str | None = None) -> dict:
    """Train per ``run``; returns a summary with per-step losses and eval results.

    Checkpoints go to ``out_dir/checkpoints`` (see ``checkpoint``); at an eval step the checkpoint is
    written before the eval runs. ``resume`` ("latest" or a step) continues from one exactly: same
    weights, optimizer state, loader position, RNG and history, so the losses equal an uninterrupted
    run's bit for bit (on CPU, fp32). SIGINT/SIGTERM finish the current step, save, and stop."""
    rank, local_rank, world = distributed_info()
    device = resolve_device(run.device)
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    master = rank == 0
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    if run.deterministic and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's condition for determinism
    torch.use_deterministic_algorithms(run.deterministic, warn_only=True)
    try:
        return _train(run, train_source, val_source, tokenizer, out_dir, progress, log, resume, device, world, rank,
                      local_rank, master)
    finally:
        torch.use_deterministic_algorithms(deterministic_before)


def _train(run: TensorRun, train_source: DocumentSource, val_source: DocumentSource, tokenizer: BPETokenizer,
           out_dir: str | Path, progress: bool, log, resume: str | None, device: torch.device, world: int, rank: int,
           local_rank: int, master: bool) -> dict:
    import signal
    choice = choose_dtype(device, run.dtype)
    tokens_per_micro = run.device_batch_size * run.max_seq_len
    if run.total_batch_size % (tokens_per_micro * world):
        raise UserError(f"total batch size {run.total_batch_size} must be a multiple of device batch x seq len x "
                        f"processes = {run.device_batch_size} x {run.max_seq_len} x {world} = "
                        f"{tokens_per_micro * world}")
    grad_accum = run.total_batch_size // (tokens_per_micro * world)

    torch.manual_seed(run.seed)
    model = build_model(run, tokenizer.vocab_size, device)
    lr_scale, weight_decay = scaled_hyperparameters(run, model, tokenizer.vocab_size)
    optimizer = build_optimizer(run, model, lr_scale, weight_decay)
    forward = torch.compile(model, dynamic=False) if run.compile else model
    if world > 1:
        forward = torch.nn.parallel.DistributedDataParallel(forward, device_ids=[local_rank] if device.type == "cuda"
                                                            else None)
    autocast = (torch.autocast(device.type, dtype=choice.dtype) if choice.dtype != torch.float32 else nullcontext())
    scaler = torch.amp.GradScaler(device.type) if choice.grad_scaler else None
    schedule = LRSchedule(run.num_iterations, run.warmup_ratio, run.warmdown_ratio, run.final_lr_frac, run.lr_schedule)
    token_bytes = torch.tensor(tokenizer.token_byte_lengths(), dtype=torch.int64)
    ckpt_root = Path(out_dir) / "checkpoints"
    start, losses, evals, tok_per_s, loader_state = 0, [], [], [], None
    if resume:
        loaded = checkpoint.load(checkpoint.find(ckpt_root, resume, warn=log))
        saved_run = loaded.state["run"]
        changed = sorted(k for k, v in asdict(run).items() if k not in RESUMABLE_CHANGES and saved_run.get(k) != v)
        if changed:
            raise UserError(f"cannot resume {loaded.path}: these settings differ from the checkpoint's: "
                            + ", ".join(f"{k} (was {saved_run.get(k)!r}, now {getattr(run, k)!r})" for k in changed))
        missing, unexpected = model.load_state_dict(loaded.model, strict=False)
        if unexpected or [k for k in missing if k != "lm_head.weight"]:
            raise UserError(f"checkpoint {loaded.path} does not fit this model (missing {missing[:3]}, "
                            f"unexpected {unexpected[:3]})")
        fresh_lrs = [g["initial_lr"] for g in optimizer.param_groups]  # this run's LRs win over the saved ones
        optimizer.load_state_dict(loaded.optimizer)
        for group, lr in zip(optimizer.param_groups, fresh_lrs):
            group["initial_lr"] = lr
        checkpoint.set_rng_state(loaded.state["rng"])
        start, losses, evals = loaded.step, loaded.state["losses"], loaded.state["evals"]
        tok_per_s, loader_state = loaded.state["tok_per_s"], loaded.state["loader"]
        if master:
            log(f"resumed from {loaded.path} at step {start}")
    train_loader = PackingLoader(train_source, tokenizer, run.device_batch_size, run.max_seq_len, rank, world,
                                 state=loader_state)

    def save(step: int) -> Path | None:
        if not master:
            return None
        train_loader.advance_to(step * grad_accum * world)  # the loader state all ranks share at this step
        state = {"run": asdict(run), "loader": train_loader.state_dict(), "rng": checkpoint.rng_state(),
                 "losses": losses, "evals": evals, "tok_per_s": tok_per_s, "vocab_size": tokenizer.vocab_size}
        path = checkpoint.save(ckpt_root, step, model, optimizer, state, run.keep_last)
        if os.environ.get(STOP_AFTER_SAVE_ENV) == str(step):
            os._exit(17)  # simulated crash (fault-injection tests)
        return path

    stop_signal: list[int] = []
    previous_handlers = {}
    if master:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous_handlers[sig] = signal.signal(sig, lambda signum, frame: stop_signal.append(signum))
    flops_per_token = model.flops_per_token()
    peak = run.peak_flops or measure_matmul_flops(device, choice.dtype)
    out_dir = Path(out_dir)
    if master:
        out_dir.mkdir(parents=True, exist_ok=True)
        log(f"device {device} | dtype {choice.name}{' + GradScaler' if scaler else ''} ({choice.reason}) | "
            f"compile {run.compile} | processes {world}")
        log(f"{run.model_kind}/{run.style}: {sum(p.numel() for p in model.parameters()):,} parameters, "
            f"{flops_per_token:,} FLOPs/token | batch {run.total_batch_size:,} tokens = {run.device_batch_size} x "
            f"{run.max_seq_len} x {grad_accum} accumulation x {world} processes | LR scale {lr_scale:.4f}, "
            f"weight decay {weight_decay:.4f}")

    def run_eval() -> float:
        val_loader = PackingLoader(val_source, tokenizer, run.device_batch_size, run.max_seq_len, rank, world)
        steps = max(1, run.eval_tokens // (tokens_per_micro * world))
        return evaluate_bpb(model, val_loader, steps, token_bytes, device, autocast)

    metrics_path = out_dir / "metrics.jsonl"
    if master and resume and metrics_path.exists():  # drop lines past the checkpoint: those steps are redone
        kept = [line for line in metrics_path.read_text().splitlines() if json.loads(line)["step"] < start]
        write_text(metrics_path, "".join(line + "\n" for line in kept))
    # line-buffered: every step's line reaches the file even if the process is killed right after
    metrics = open(metrics_path, "a" if resume else "w", encoding="utf-8", buffering=1) if master else None  # noqa: SIM115
    bar = None
    if master and progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=run.num_iterations, desc=f"train {run.style}", unit="step")
    t_start = time.perf_counter()
    last_saved, saved = None, []
    try:
        for step in range(start, run.num_iterations + 1):
            is_save_step = step == run.num_iterations or (run.save_every > 0 and step % run.save_every == 0)
            if step > 0 and step != start and is_save_step:
                last_saved = save(step)  # before the eval: a crash in eval loses nothing
                saved.append(step)
            if stop_signal:
                if last_saved is None or not last_saved.name.endswith(f"{step:06d}"):
                    last_saved = save(step)
                log(f"stopped by signal {stop_signal[0]} after step {step}; saved {last_saved}. Continue with "
                    f"--resume latest")
                raise KeyboardInterrupt
            if step == run.num_iterations or (run.eval_every > 0 and step % run.eval_every == 0):
                bpb = run_eval()
                evals.append({"step": step, "val_bpb": bpb, "time": time.perf_counter() - t_start})
                if master:
                    metrics.write(json.dumps({"step": step, "val_bpb": bpb}) + "\n")
                    (bar.write if bar else log)(f"step {step:5d} | val bpb {bpb:.4f}")
            if step == run.num_iterations:
                break
            t0 = time.perf_counter()
            step_loss = torch.zeros((), device=device)
            for micro in range(grad_accum):
                x, y = next(train_loader)
                x, y = x.to(device), y.to(device)
                sync = nullcontext()
                if world > 1 and micro < grad_accum - 1:
                    sync = forward.no_sync()
                with sync:
                    with autocast:
                        loss = forward(x, y)
                    scaled = loss / grad_accum
                    step_loss += scaled.detach()
                    (scaler.scale(scaled) if scaler else scaled).backward()
            lrm = schedule(step)
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * lrm
                if group.get("kind") == "muon":
                    frac = min(step / 300, 1)
                    group["momentum"] = (1 - frac) * 0.85 + frac * 0.95
                    group["weight_decay"] = weight_decay * (1 - step / run.num_iterations)
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            model.zero_grad(set_to_none=True)
            if world > 1:  # the logged loss is the mean over the whole step's batch, on every rank
                dist.all_reduce(step_loss)
                step_loss /= world
            loss_value = step_loss.item()
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            if not math.isfinite(loss_value):
                # checkpoint `step` (if saved) holds the weights that produced this loss: not a good one
                before = [s_ for s_ in saved if s_ < step] or ([start] if resume and start < step else [])
                good = (f"the last good checkpoint is {ckpt_root / f'step_{before[-1]:06d}'} (resume it with "
                        f"--resume {before[-1]} and lower learning rates)" if before else "no good checkpoint exists")
                raise UserError(f"loss became {loss_value} at step {step}; {good}. Lower the learning rates or "
                                "use --dtype float32")
            losses.append(loss_value)
            tps = run.total_batch_size / dt
            tok_per_s.append(tps)
            mfu = flops_per_token * tps / (peak * world)
            if master:
                metrics.write(json.dumps({"step": step, "loss": loss_value, "lrm": lrm, "dt": dt, "tok_per_s": tps,
                                          "mfu": mfu}) + "\n")
                if bar:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{tps:,.0f}", mfu=f"{100 * mfu:.1f}%",
                                    refresh=False)
    finally:
        if bar:
            bar.close()
        if metrics:
            metrics.close()
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
    steady = sorted(tok_per_s[10:] or tok_per_s)
    summary = {
        "steps": len(losses), "final_loss": losses[-1] if losses else math.nan,
        "final_val_bpb": evals[-1]["val_bpb"] if evals else math.nan, "evals": evals,
        "tok_per_s_median": steady[len(steady) // 2] if steady else math.nan,
        "dtype": choice.name, "device": str(device), "processes": world, "grad_accum": grad_accum,
        "num_params": sum(p.numel() for p in model.parameters()), "peak_flops": peak,
        "train_seconds": time.perf_counter() - t_start,
        # CUDA: the allocator's peak (what nanochat reports); elsewhere None (measure the process's RSS instead)
        "peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
    }
    if master:
        save_model(out_dir / "model", model, run, {"summary": summary})
        tokenizer.save(out_dir / "tokenizer")
        summary["checkpoint"] = str(out_dir / "model")
    return {**summary, "losses": losses, "model": model}
