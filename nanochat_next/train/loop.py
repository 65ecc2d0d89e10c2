"""The training loop: pretraining with nanochat's recipe (``recipe``), and any other job on the same loop.

Read ``train_job`` top to bottom, in the manner of nanochat's base_train: setup, model and optimizer, resume,
then the loop (save before eval, eval, one step), then finish. One step = ``grad_accum`` micro-batches of
``device_batch_size x max_seq_len`` tokens per process, so a step always sees ``total_batch_size`` tokens
whatever the number of processes. Under ``torchrun`` it runs DDP (gloo on CPU, nccl on CUDA). The logged
training loss is the mean over all micro-batches of the step and all ranks (nanochat logs rank 0's last one).

Two entries:

- ``train(run, data)``: pretraining on a run's documents and tokenizer (``data.run_data``);
- ``train_job(run, tokenizer, build)``: any job ``build(procs, loader_state) -> Job`` makes (SFT: another start,
  loaders and hyperparameters, ``chat.sft``); checkpoints, resume, signals, NaN checks and metrics come with it.

Validation bits per byte every ``eval_every`` steps and at the end; tokens/s and MFU every step; one JSON
line per step in ``OUT/metrics.jsonl``; checkpoints in ``OUT/checkpoints`` (see ``checkpoint``); the final
model in ``OUT/model/``. A stop asked for by Ctrl-C or SIGTERM saves and returns (``summary["stopped_by"]``).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from nanochat_next.atomic import write_text
from nanochat_next.errors import UserError
from nanochat_next.faults import crash_after_save
from nanochat_next.interrupt import GracefulStop
from nanochat_next.model.saving import save_model
from nanochat_next.runtime import DtypeChoice, busy_note, choose_dtype, keep_freed_memory, measure_matmul_flops
from nanochat_next.tokenizer.bpe import BPETokenizer
from nanochat_next.train import checkpoint
from nanochat_next.train.config import (
    RESUMABLE_CHANGES,
    TensorRun,
    build_model,
    compile_forward,
    model_class,
    model_config,
    run_shapes,
    with_recipe_fields,
)
from nanochat_next.train.data import RunData
from nanochat_next.train.evaluate import evaluate_bpb
from nanochat_next.train.memory import available_bytes, estimate_training_bytes, gigabytes
from nanochat_next.train.packing import MicroBatchStream, PackingLoader
from nanochat_next.train.processes import Processes, gradient_accumulation, setup_processes
from nanochat_next.train.recipe import (
    build_optimizer,
    choose_attention,
    scaled_hyperparameters,
    set_step_hyperparameters,
)


@dataclass
class Job:
    """Everything a training step, an eval and a save need, built once per run."""

    run: TensorRun
    procs: Processes
    tokenizer: BPETokenizer
    model: torch.nn.Module
    forward: torch.nn.Module  # the model as the step calls it: compiled and/or wrapped in DDP
    optimizer: torch.optim.Optimizer
    choice: DtypeChoice  # the compute dtype and why
    muon_choice: DtypeChoice | None  # Muon's orthogonalisation dtype and why (None: no Muon)
    autocast: AbstractContextManager
    scaler: torch.amp.GradScaler | None
    grad_accum: int
    weight_decay: float  # Muon's, after nanochat's scaling
    loader: MicroBatchStream  # packed documents (pretraining) or conversations (SFT): one global, resumable stream
    make_val_loader: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]  # a fresh one for each eval
    ckpt_root: Path
    # "micro_batch": each micro-batch's mean loss counts equally (pretraining: every target is real);
    # "tokens": every trained token of the step counts equally, whatever micro-batch it is in (SFT, where masks
    # leave micro-batches with few or no targets: a fully masked one adds nothing instead of a NaN)
    loss_weighting: str = "micro_batch"
    attention_choice: DtypeChoice | None = None  # the attention's dtype where it is not the compute dtype, and why


BuildJob = Callable[[Processes, dict | None], Job]  # (processes, the loader state to resume from) -> the job


@dataclass
class LoopState:
    """What the loop has done so far; saved in every checkpoint, so a resume continues it exactly."""

    step: int = 0
    losses: list[float] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    tok_per_s: list[float] = field(default_factory=list)
    saved: list[int] = field(default_factory=list)  # steps this process checkpointed (not saved to disk)


# --------------------------------------------------------------------------------------------- building the job

def check_memory(run: TensorRun, vocab_size: int, procs: Processes, log) -> None:
    """Estimate the run's memory from the model's shapes (nothing allocated yet); refuse what cannot fit."""
    config = model_config(run, vocab_size)
    with torch.device("meta"):
        num_params = sum(p.numel() for p in model_class(run)(config, init=False).parameters())
    need = estimate_training_bytes(num_params, config.n_layer, config.n_embd, config.n_head,
                                   config.padded_vocab_size, run.device_batch_size, run.max_seq_len)
    have, source = available_bytes(procs.device)
    # several processes on one machine share its memory (CPU) or each has a GPU of its own (CUDA)
    sharing = procs.world if procs.device.type != "cuda" else 1
    log(f"memory estimate: {gigabytes(need['total'] * sharing)} ({gigabytes(need['state'])} weights, gradients "
        f"and optimizer state + {gigabytes(need['activations'])} activations per process)"
        + (f"; {gigabytes(have)} available ({source})" if have is not None else ""))
    if have is not None and need["total"] * sharing > have:
        raise UserError(f"this run needs about {gigabytes(need['total'] * sharing)} of memory ({num_params:,} "
                        f"parameters) but {gigabytes(have)} is available ({source}); use a smaller --depth, "
                        "--device-batch-size or --max-seq-len")


def pretraining_job(run: TensorRun, data: RunData, log=print) -> BuildJob:
    """Pretraining's ``build``: the model from the seed (nanochat's init), the packing loaders over the run's
    documents (training at the resumed state, if any), nanochat's batch-scaled hyperparameters."""

    def build(procs: Processes, loader_state: dict | None) -> Job:
        loader = PackingLoader(data.train, data.tokenizer, run.device_batch_size, run.max_seq_len, procs.rank,
                               procs.world, state=loader_state)

        def make_val_loader() -> PackingLoader:  # every eval reads the same validation rows, from the start
            return PackingLoader(data.val, data.tokenizer, run.device_batch_size, run.max_seq_len, procs.rank,
                                 procs.world)

        return assemble_job(run, procs, data.tokenizer, loader, make_val_loader, log=log)

    return build


def assemble_job(run: TensorRun, procs: Processes, tokenizer: BPETokenizer, loader: MicroBatchStream,  # noqa: PLR0913
                 make_val_loader, weights: dict[str, torch.Tensor] | None = None,
                 hyperparameters: tuple[float, float] | None = None, loss_weighting: str = "micro_batch",
                 log=print) -> Job:
    """Model (nanochat's init for the seed, then ``weights`` if given), optimizer (nanochat's scaled LR and weight
    decay unless ``hyperparameters`` = (LR scale, weight decay) says otherwise), compile/DDP wrapping, mixed
    precision; the loaders as given."""
    say = log if procs.master else None
    if procs.device.type == "cpu":  # the same large tensors every step: reuse their pages (runtime.keep_freed_memory)
        keep_freed_memory()
    # on a CPU, --dtype auto times this model's own matmuls in both dtypes (dtype_choice)
    choice = choose_dtype(procs.device, run.dtype, run_shapes(run, tokenizer.vocab_size), say=say)
    grad_accum = gradient_accumulation(run, procs.world)
    torch.manual_seed(run.seed)  # the init's random draws: the same seed gives nanochat's weights
    model = build_model(run, tokenizer.vocab_size, procs.device)
    if weights is not None:  # a fine-tuning run starts from trained weights
        missing, unexpected = model.load_state_dict(weights, strict=False)
        if unexpected or [k for k in missing if k != "lm_head.weight"]:
            raise UserError(f"the weights do not fit this model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    lr_scale, weight_decay = hyperparameters or scaled_hyperparameters(run, model, tokenizer.vocab_size)
    # Muon's dtype measured like the matmuls (or following the compute dtype, for nanochat 92d63d4's recipe)
    optimizer = build_optimizer(run, model, lr_scale, weight_decay, say, choice)
    forward = compile_forward(model) if run.compile else model
    if procs.world > 1:
        device_ids = [procs.local_rank] if procs.device.type == "cuda" else None
        forward = torch.nn.parallel.DistributedDataParallel(forward, device_ids=device_ids)
    # mixed precision: the weights stay fp32, the matmuls run in the chosen dtype
    autocast = torch.autocast(procs.device.type, dtype=choice.dtype) if choice.dtype != torch.float32 \
        else nullcontext()
    scaler = torch.amp.GradScaler(procs.device.type) if choice.grad_scaler else None  # fp16 needs loss scaling
    return Job(run, procs, tokenizer, model, forward, optimizer, choice, optimizer.orthogonalization, autocast, scaler,
               grad_accum, weight_decay, loader, make_val_loader, Path(run.out) / "checkpoints", loss_weighting,
               choose_attention(run, model, choice, say))  # set before the model is first called (and compiled)


def restore(job: Job, loaded: checkpoint.Loaded, log) -> LoopState:
    """Put a checkpoint's weights, optimizer state and RNG states into the job; return its loop state.
    Settings that would change the run's math must equal the checkpoint's."""
    saved_run = with_recipe_fields(loaded.state["run"])  # a checkpoint from before recipes: nanochat's
    changed = sorted(k for k, v in asdict(job.run).items() if k not in RESUMABLE_CHANGES and saved_run.get(k) != v)
    if changed:
        raise UserError(f"cannot resume {loaded.path}: these settings differ from the checkpoint's: "
                        + ", ".join(f"{k} (was {saved_run.get(k)!r}, now {getattr(job.run, k)!r})" for k in changed))
    missing, unexpected = job.model.load_state_dict(loaded.model, strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise UserError(f"checkpoint {loaded.path} does not fit this model (missing {missing[:3]}, "
                        f"unexpected {unexpected[:3]})")
    # this run's LRs and orthogonalisation dtype win over the saved ones (both may change on a resume)
    fresh = [(g["initial_lr"], g.get("ortho_dtype")) for g in job.optimizer.param_groups]
    job.optimizer.load_state_dict(loaded.optimizer)
    for group, (lr, ortho_dtype) in zip(job.optimizer.param_groups, fresh):
        group["initial_lr"] = lr
        if ortho_dtype is not None:
            group["ortho_dtype"] = ortho_dtype
    checkpoint.set_rng_state(loaded.state["rng"])
    log(f"resumed from {loaded.path} at step {loaded.step}")
    return LoopState(loaded.step, loaded.state["losses"], loaded.state["evals"], loaded.state["tok_per_s"])


# ------------------------------------------------------------------------------------ one step, an eval, a save

def train_step(job: Job, step: int, lr_multiplier: float) -> torch.Tensor:
    """One optimizer step: forward/backward over ``grad_accum`` micro-batches, then the update.
    Returns the step's mean loss as a 0-D tensor (reading it is the caller's one host sync).

    A micro-batch is (inputs, targets), or (inputs, targets, row weights) for a loop whose rows weigh differently
    (RL: each sample's advantage; the loss is then sum(weight x token loss) over the trained tokens)."""
    device = job.procs.device
    batches = [next(job.loader) for _ in range(job.grad_accum)]  # all of them first: RL rollouts see one model
    weights = step_weights(job, batches)
    if weights is None:  # no trained token anywhere in this step (SFT, RL): nothing to learn, no update
        job.model.zero_grad(set_to_none=True)
        return torch.zeros((), device=device)
    step_loss = torch.zeros((), device=device)
    for micro, batch in enumerate(batches):
        x, y = batch[0].to(device), batch[1].to(device)
        # DDP: all-reduce the gradients only after the last micro-batch of the step
        last = micro == job.grad_accum - 1
        with nullcontext() if job.procs.world == 1 or last else job.forward.no_sync():
            with job.autocast:
                if len(batch) > 2:  # per-row weights: each token's loss times its row's weight, summed
                    losses = job.forward(x, y, loss_reduction="none").view(y.shape)
                    loss = (losses * batch[2].to(device)[:, None]).sum()
                else:
                    loss = job.forward(x, y) if weights == "mean" else job.forward(x, y, loss_reduction="sum")
            # the step's gradient: the mean over its micro-batches, or over all its trained tokens; gradients add
            # up across backward calls, so dividing each micro-batch's loss is dividing their sum
            scaled = loss / job.grad_accum if weights == "mean" else loss * weights
            step_loss += scaled.detach()
            (job.scaler.scale(scaled) if job.scaler else scaled).backward()
    # the schedule's LR multiplier, Muon's momentum and weight decay for this step, then the update
    set_step_hyperparameters(job.optimizer, job.run, step, lr_multiplier, job.weight_decay)
    if job.scaler:  # fp16: unscale, skip the step on inf/nan gradients, adapt the scale
        job.scaler.step(job.optimizer)
        job.scaler.update()
    else:
        job.optimizer.step()
    job.model.zero_grad(set_to_none=True)  # None, not zeros: the next backward writes instead of adding
    if job.procs.world > 1:  # the logged loss is the mean over the whole step's batch, on every rank
        dist.all_reduce(step_loss)
        step_loss /= job.procs.world
    return step_loss


def step_weights(job: Job, batches: list[tuple]) -> str | float | None:
    """"mean" (each micro-batch's mean loss / grad_accum), or with token weighting 1 / (trained tokens in the
    whole step, all ranks) for the summed losses; None when the step has no trained token at all."""
    if job.loss_weighting == "micro_batch":
        return "mean"
    count = torch.tensor(float(sum(int((b[1] >= 0).sum()) for b in batches)), device=job.procs.device)
    if job.procs.world > 1:
        dist.all_reduce(count)
        count /= job.procs.world  # each rank divides its sum by the per-rank mean count; DDP then averages
    return None if count.item() == 0 else 1.0 / count.item()


def evaluate(job: Job) -> float:
    """Validation bits per byte over ``eval_tokens`` tokens of the validation data, from its start."""
    run, procs = job.run, job.procs
    steps = max(1, run.eval_tokens // (run.tokens_per_micro_batch * procs.world))
    token_bytes = torch.tensor(job.tokenizer.token_byte_lengths(), dtype=torch.int64)
    return evaluate_bpb(job.model, job.make_val_loader(), steps, token_bytes, procs.device, job.autocast)


def save_checkpoint(job: Job, state: LoopState) -> Path | None:
    """Checkpoint the step ``state.step`` is at (rank 0 writes; every rank's loader is at the same place)."""
    if not job.procs.master:
        return None
    job.loader.advance_to(state.step * job.grad_accum * job.procs.world)  # the state all ranks share now
    record = {"run": asdict(job.run), "loader": job.loader.state_dict(), "rng": checkpoint.rng_state(),
              "losses": state.losses, "evals": state.evals, "tok_per_s": state.tok_per_s,
              "vocab_size": job.tokenizer.vocab_size}
    path = checkpoint.save(job.ckpt_root, state.step, job.model, job.optimizer, record, job.run.keep_last)
    state.saved.append(state.step)
    crash_after_save(state.step)
    return path


def nan_message(job: Job, state: LoopState, value: float, resumed_at: int | None) -> str:
    # the checkpoint of this very step (if any) holds the weights that produced the loss: not a good one
    before = [s for s in state.saved if s < state.step] or ([resumed_at] if resumed_at is not None
                                                            and resumed_at < state.step else [])
    good = (f"the last good checkpoint is {job.ckpt_root / f'step_{before[-1]:06d}'} (resume it with --resume "
            f"{before[-1]} and lower learning rates, e.g. --matrix-lr)" if before else "no good checkpoint exists")
    return (f"loss became {value} at step {state.step}; {good}. Lower the learning rates (--matrix-lr, "
            "--embedding-lr, --unembedding-lr, --scalar-lr, or --lr for adamw/sgd) or use --dtype float32")


# ----------------------------------------------------------------------------------- what the run shows as it goes

class ProgressLog:
    """The progress bar (a resumed run's starts where it left off) and ``metrics.jsonl`` (one JSON line per step:
    loss, LR multiplier, step time, tok/s, MFU; one per eval: val bpb), rank 0 only. The bar closes before the
    last eval's line, so a finished run shows one complete bar."""

    def __init__(self, job: Job, state: LoopState, progress: bool, log, metrics_path: Path,
                 resumed_at: int | None):
        self.master, self.log, self.bar = job.procs.master, log, None
        self.metrics = open_metrics(metrics_path, resumed_at) if self.master else None
        if self.master and progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=job.run.steps, initial=state.step, desc=f"train {job.run.style}", unit="step")

    def say(self, text: str) -> None:
        (self.bar.write if self.bar else self.log)(text)

    def write(self, record: dict) -> None:
        try:
            self.metrics.write(json.dumps(record) + "\n")
        except OSError as exc:
            raise UserError(f"cannot write {self.metrics.name} ({exc.strerror or exc}); the checkpoints saved so far "
                            "are intact (--resume latest continues from the newest)") from None

    def eval(self, step: int, bpb: float) -> None:
        if self.master:
            self.write({"step": step, "val_bpb": bpb})
            self.say(f"step {step:5d} | val bpb {bpb:.4f}")

    def step(self, step: int, loss: float, lrm: float, dt: float, tps: float, mfu: float,  # noqa: PLR0913
             extra: dict | None = None) -> None:
        if not self.master:
            return
        self.write({"step": step, "loss": loss, "lrm": lrm, "dt": dt, "tok_per_s": tps, "mfu": mfu, **(extra or {})})
        if self.bar:
            self.bar.update(1)
            shown = {"reward": f"{extra['reward']:.2f}"} if extra and "reward" in extra else {}
            self.bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tps:,.0f}", mfu=f"{100 * mfu:.1f}%", **shown,
                                 refresh=False)

    def finish(self) -> None:
        if self.bar:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> ProgressLog:
        return self

    def __exit__(self, *exc) -> None:
        self.finish()
        if self.metrics:
            self.metrics.close()


def open_metrics(path: Path, resumed_at: int | None):
    """metrics.jsonl, line-buffered so each step's line survives a kill; on resume, lines past the checkpoint
    are dropped (those steps are redone)."""
    if resumed_at is not None and path.exists():
        kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] < resumed_at]
        write_text(path, "".join(line + "\n" for line in kept))
    return open(path, "a" if resumed_at is not None else "w", encoding="utf-8", buffering=1)  # noqa: SIM115


# -------------------------------------------------------------------------------------------------- the run

def train(run: TensorRun, data: RunData, progress: bool = True, log=print, resume: str | None = None) -> dict:
    """Pretrain per ``run`` on ``data`` into ``run.out``; returns a summary with per-step losses and eval results.

    ``resume`` ("latest" or a step) continues from a checkpoint exactly: same weights, optimizer state,
    loader position, RNG and history, so the losses equal an uninterrupted run's bit for bit (on one
    machine, fp32). SIGINT/SIGTERM finish the current step, save, and return (``stopped_by``)."""
    return train_job(run, data.tokenizer, pretraining_job(run, data, log), progress, log, resume)


@contextmanager
def determinism(run: TensorRun, device: torch.device):
    """torch's deterministic algorithms for the run (and cuBLAS's workspace setting they need on CUDA), restored
    afterwards: nothing of the process's state outlives the run."""
    before, cublas = torch.are_deterministic_algorithms_enabled(), os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    if run.deterministic and device.type == "cuda" and cublas is None:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"  # cuBLAS's condition for deterministic matmuls
    torch.use_deterministic_algorithms(run.deterministic, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def train_job(run: TensorRun, tokenizer: BPETokenizer, build: BuildJob, progress: bool = True, log=print,  # noqa: PLR0913
              resume: str | None = None) -> dict:
    """The loop for any job (module docstring): setup, resume, the steps, the final model."""
    # --- setup: processes, determinism, output directory
    procs = setup_processes(run.device)
    log = log if procs.master else (lambda *a, **k: None)
    out_dir = Path(run.out)
    with determinism(run, procs.device):
        # --- model, optimizer, data; resume
        check_memory(run, tokenizer.vocab_size, procs, log)
        ckpt_root = out_dir / "checkpoints"
        if procs.master:
            for path, size in checkpoint.remove_orphans(ckpt_root):
                log(f"removed {path.name} ({gigabytes(size)}): a partial checkpoint left by a save that was killed")
        loaded = checkpoint.load(checkpoint.find(ckpt_root, resume, warn=log)) if resume else None
        job = build(procs, loaded.state["loader"] if loaded else None)
        state = restore(job, loaded, log) if loaded else LoopState()
        resumed_at = state.step if loaded else None
        announce(job, log)
        # --- the loop
        t_start = time.perf_counter()
        with ProgressLog(job, state, progress, log, out_dir / "metrics.jsonl", resumed_at) as out, \
                GracefulStop(out.say, enabled=procs.master) as stop:
            stopped_by = run_loop(job, state, stop, out, resumed_at)
    # --- finish: the final model and tokenizer beside it (a stopped run keeps its checkpoint only)
    summary = summarize(job, state, time.perf_counter() - t_start)
    if procs.master and stopped_by in (None, EARLY_STOP):  # an early stop is a finished run, only shorter
        save_model(out_dir / "model", job.model, {"run": asdict(run), "summary": summary})
        tokenizer.save(out_dir / "tokenizer")
        summary["checkpoint"] = str(out_dir / "model")
    return {**summary, "stopped_by": stopped_by, "losses": state.losses, "model": job.model}


def run_loop(job: Job, state: LoopState, stop: GracefulStop, out: ProgressLog, resumed_at: int | None) -> str | None:
    """Steps from ``state.step`` to ``run.steps``: save (before eval), stop if asked, eval, train one step.
    Returns None at the end of the run, or the name of the signal that stopped it (after saving)."""
    run = job.run
    schedule = run.schedule()
    flops_per_token = job.model.flops_per_token()
    peak = run.peak_flops or measure_matmul_flops(job.procs.device, job.choice.dtype)  # MFU's denominator
    t_start = time.perf_counter()
    last_saved = None
    while True:
        step = state.step
        # save before the eval: a crash or a kill during a slow eval loses nothing (nanochat #446)
        if step > 0 and step != resumed_at and (step == run.steps or (run.save_every and step % run.save_every == 0)):
            last_saved = save_checkpoint(job, state) or last_saved
        if stop.requested:  # Ctrl-C/SIGTERM came during the last step: this step's checkpoint, then leave
            if last_saved is None or not last_saved.name.endswith(f"{step:06d}"):
                last_saved = save_checkpoint(job, state)
            out.say(f"stopped by signal {stop.signals[0]} after step {step}; saved {last_saved}. Continue with "
                    "--resume latest")
            return stop.name
        if step == run.steps:
            out.finish()  # the bar is complete: close it now, not redraw it under the last eval's line
        if step == run.steps or (run.eval_every > 0 and step % run.eval_every == 0):
            bpb = evaluate(job)
            state.evals.append({"step": step, "val_bpb": bpb, "time": time.perf_counter() - t_start})
            out.eval(step, bpb)
            if keep_or_stop(job, state, out) and step < run.steps:
                last_saved = save_checkpoint(job, state) or last_saved  # the run can be continued past the stop
                return EARLY_STOP
        if step == run.steps:
            return None
        t0 = time.perf_counter()
        lrm = schedule(step)  # the LR multiplier: warmup, constant, warmdown
        loss = train_step(job, step, lrm).item()  # the step's one host sync
        if job.procs.device.type == "cuda":
            torch.cuda.synchronize()  # the step's time is the GPU's, not the launch's
        dt = time.perf_counter() - t0
        if not math.isfinite(loss):
            raise UserError(nan_message(job, state, loss, resumed_at))
        tps = run.total_batch_size / dt
        state.losses.append(loss)
        state.tok_per_s.append(tps)
        # what the loader did this step, for a loop whose data is computed (RL: rewards, rollout time)
        extra = job.loader.pop_stats() if hasattr(job.loader, "pop_stats") else None
        # MFU: FLOPs done per second / the peak measured on this device in this dtype (all processes)
        out.step(step, loss, lrm, dt, tps, flops_per_token * tps / (peak * job.procs.world), extra)
        state.step += 1


EARLY_STOP = "early stop"


def since_best(evals: list[dict]) -> tuple[int, int]:
    """(index of the first eval with the lowest val bpb, evals after it)."""
    best = min(range(len(evals)), key=lambda i: (evals[i]["val_bpb"], i))
    return best, len(evals) - 1 - best


def keep_or_stop(job: Job, state: LoopState, out: ProgressLog) -> bool:
    """After an eval: with --keep-best, save OUT/best/ when it is a new lowest val bpb; with --early-stop N, True
    once N evals in a row brought no new lowest (the history comes from state.evals, so it survives a resume)."""
    run = job.run
    best, after = since_best(state.evals)
    if run.keep_best and after == 0 and job.procs.master:
        record = {"run": asdict(run), "summary": {"step": state.step, "val_bpb": state.evals[best]["val_bpb"],
                                                  "kept": "the lowest val bpb so far (--keep-best)"}}
        save_model(Path(run.out) / "best", job.model, record)
    if run.early_stop and after >= run.early_stop:
        out.say(f"early stop at step {state.step}: {after} evals without a val bpb below "
                f"{state.evals[best]['val_bpb']:.4f} (step {state.evals[best]['step']})")
        return True
    return False


def announce(job: Job, log) -> None:
    run, procs, choice = job.run, job.procs, job.choice
    params = sum(p.numel() for p in job.model.parameters())
    log(f"device {procs.device} | dtype {choice.name}{' + GradScaler' if job.scaler else ''} ({choice.reason}) | "
        f"compile {run.compile} | processes {procs.world} | threads {torch.get_num_threads()}")
    if job.muon_choice is not None:
        log(f"Muon orthogonalisation in {job.muon_choice.name} ({job.muon_choice.reason})")
    if job.attention_choice is not None:
        log(f"attention in {job.attention_choice.name} ({job.attention_choice.reason})")
    note = busy_note() if procs.device.type == "cpu" and procs.world == 1 else None
    if note:  # under torchrun the ranks themselves load the cores: no note
        log(note)
    log(f"{run.model_kind}/{run.style}: {params:,} parameters, {job.model.flops_per_token():,} FLOPs/token | batch "
        f"{run.total_batch_size:,} tokens = {run.device_batch_size} x {run.max_seq_len} x {job.grad_accum} "
        f"accumulation x {procs.world} processes | Muon weight decay {job.weight_decay:.4f}")
    if run.model_kind == "gpt":
        changes = ", ".join(f"{k}={v}" for k, v in run.beyond_recipe().items())
        log(f"recipe {run.recipe}" + (f" with {changes}" if changes else "") + " (docs/recipe.md)")


def summarize(job: Job, state: LoopState, seconds: float) -> dict:
    procs = job.procs
    steady = sorted(state.tok_per_s[10:] or state.tok_per_s)  # the first steps warm up (allocator, compile)
    return {
        "steps": len(state.losses), "final_loss": state.losses[-1] if state.losses else math.nan,
        "final_val_bpb": state.evals[-1]["val_bpb"] if state.evals else math.nan, "evals": state.evals,
        "best_val_bpb": min(e["val_bpb"] for e in state.evals) if state.evals else math.nan,
        "best_step": state.evals[since_best(state.evals)[0]]["step"] if state.evals else None,
        "tok_per_s_median": steady[len(steady) // 2] if steady else math.nan,
        "dtype": job.choice.name, "device": str(procs.device),
        "processes": procs.world, "grad_accum": job.grad_accum,
        "num_params": sum(p.numel() for p in job.model.parameters()), "train_seconds": seconds,
        # FLOPs = this x tokens seen: what a compute multiplier (bench.compute_multiplier) is read against
        "flops_per_token": job.model.flops_per_token() if hasattr(job.model, "flops_per_token") else None,
        # CUDA: the allocator's peak (what nanochat reports); elsewhere None (measure the process's RSS instead)
        "peak_memory_mb": torch.cuda.max_memory_allocated(procs.device) / 2**20 if procs.device.type == "cuda"
        else None,
    }
