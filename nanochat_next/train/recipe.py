"""nanochat's training recipe at 2f09686: how learning rates, weight decay and Muon's momentum are set.

- LRs scale with the batch: LR x sqrt(B / 2^19) (nanochat's reference batch of 524,288 tokens).
- Muon's weight decay scales with the batch and with the training horizon:
  wd x sqrt(B / 2^19) x D_ref / D, where D = 10.5 x the model's scaling parameters (its target tokens) and
  D_ref the same for nanochat's depth-12 reference model.
- Param groups: Muon for the block matrices (grouped by shape), AdamW for embeddings, the head and scalars.
- Per step: every group's LR = its initial LR x the schedule's multiplier; Muon's momentum warms up
  0.85 -> 0.95 over 300 steps; Muon's weight decay decays linearly to 0 at the last step.

The `next` recipe's alternatives (``TensorRun.muon_momentum``/``wd_schedule``, nanochat's later rules):
momentum 0.85 -> 0.97 over 400 steps (first), then down to 0.90 across the LR warmdown; weight decay along a
half cosine to 0.
"""

from __future__ import annotations

import math

import torch

from nanochat_next.dtype_choice import cache_key, measure_attention, measured
from nanochat_next.model.gpt import GPT, causal_attention, config_for_depth
from nanochat_next.runtime import DtypeChoice, choose_attention_dtype, choose_dtype, choose_muon_dtype
from nanochat_next.train.config import TensorRun, attention_shape, model_class, model_config, run_shapes
from nanochat_next.train.muon import MuonAdamW, orthogonalize_items, stacked_shapes

B_REF = 2**19  # nanochat's reference batch size (tokens) for its LR and weight-decay scaling
PARAM_DATA_RATIO = 10.5  # nanochat's default target tokens : scaling params
MOMENTUM_WARMUP_STEPS = 300


def scaling_params(model: torch.nn.Module) -> int:
    """nanochat's 'scaling params': block matrices + lm_head (embeddings excluded)."""
    if isinstance(model, GPT):
        return sum(p.numel() for p in model.transformer.h.parameters()) + model.lm_head.weight.numel()
    return sum(p.numel() for p in model.parameters())


def scaled_hyperparameters(run: TensorRun, model: torch.nn.Module, vocab_size: int) -> tuple[float, float]:
    """(LR scale, weight decay) by nanochat's batch-size and horizon rules."""
    # a batch k times smaller averages away k times less gradient noise: step sqrt(k) times more gently. At 2,048
    # tokens this is 1/16 of nanochat's reference LRs (the reason `next` raises the head's LR, docs/recipe.md)
    lr_scale = (run.total_batch_size / B_REF) ** 0.5
    with torch.device("meta"):  # only the parameter count of nanochat's depth-12 reference model is needed
        # windows do not change a parameter count
        reference = GPT(config_for_depth(12, vocab_size, run.aspect_ratio, run.head_dim, run.max_seq_len), init=False)
    d_ref = PARAM_DATA_RATIO * scaling_params(reference)  # the reference's compute-optimal token budget
    target_tokens = PARAM_DATA_RATIO * scaling_params(model)
    # weight decay acts once per step: scaled like the LR by the batch, and up for a smaller model (fewer tokens
    # to its budget) so the total decay over a compute-optimal run stays the same
    weight_decay = run.weight_decay * math.sqrt(run.total_batch_size / B_REF) * (d_ref / target_tokens)
    return lr_scale, weight_decay


def build_optimizer(run: TensorRun, model: torch.nn.Module, lr_scale: float, weight_decay: float,  # noqa: PLR0913
                    say=None, compute: DtypeChoice | None = None) -> torch.optim.Optimizer:
    """The run's optimizer with every group's ``initial_lr`` set (the schedule multiplies it each step) and, for
    Muon, its orthogonalisation dtype chosen on the model's device (``choose_orthogonalization``; the choice and
    its reason in ``optimizer.orthogonalization``, None without Muon). ``say``: where a slow probe says so."""
    if run.optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=run.lr, betas=(0.9, 0.95), weight_decay=0.0)
    elif run.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=run.lr, momentum=0.9)
    else:
        opt = MuonAdamW(muon_adamw_groups(run, model, lr_scale, weight_decay), compile=run.compile)
    for group in opt.param_groups:
        group["initial_lr"] = group["lr"]  # the schedule multiplies this one each step (set here only)
    device = next(model.parameters()).device
    if run.muon_dtype == "compute" and compute is None:  # the model's compute dtype, by the same policy
        compute = choose_dtype(device, run.dtype, run_shapes(run, model.config.vocab_size), say=say)
    opt.orthogonalization = choose_orthogonalization(run, opt, device, say, compute)
    return opt


def muon_shapes(run: TensorRun, vocab_size: int) -> list[tuple[int, int, int]]:
    """The stacked shapes (matrices, rows, cols) the run's Muon orthogonalises each step, from a model on the meta
    device (no memory, no random draws); empty for an optimizer without Muon."""
    if run.optimizer in ("adamw", "sgd"):
        return []
    with torch.device("meta"):
        model = model_class(run)(model_config(run, vocab_size), init=False)
    return sorted(stacked_shapes(muon_adamw_groups(run, model, 1.0, 0.0)))


def default_muon_shapes() -> list[tuple[int, int, int]]:
    """The stacked Muon shapes of the default run's model (what ``doctor`` measures)."""
    run = TensorRun()
    return muon_shapes(run, run.vocab_size)


def muon_adamw_groups(run: TensorRun, model: torch.nn.Module, lr_scale: float, weight_decay: float) -> list[dict]:
    """The param groups of the run's MuonAdamW: nanochat's for the modern GPT, else Muon on the block matrices and
    AdamW (embedding LR) on the rest."""
    if isinstance(model, GPT):
        return nanochat_param_groups(
            model, unembedding_lr=run.unembedding_lr * lr_scale, embedding_lr=run.embedding_lr * lr_scale,
            matrix_lr=run.matrix_lr * lr_scale, weight_decay=weight_decay, adam_betas=(run.adam_beta1, run.adam_beta2),
            scalar_lr=run.scalar_lr * lr_scale, adam_groups=run.adam_groups, muon_beta2=run.muon_beta2,
            equalize=run.muon_eq, norm_factor=run.muon_norm)
    return classic_param_groups(run, model, lr_scale, weight_decay)


def muon_dtype_for_shapes(run: TensorRun, shapes: list[tuple[int, int, int]], device: torch.device | str,
                          say=None, compute: DtypeChoice | None = None) -> DtypeChoice:
    """``runtime.choose_muon_dtype`` for these stacked shapes (on a CPU: measured on them, the figures cached)."""

    def measure():
        return measured(cache_key("muon", shapes), lambda: orthogonalize_items(shapes), say=say,
                        what="Muon's orthogonalisation")

    return choose_muon_dtype(device, run.muon_dtype, measure, compute)


def resolve_muon_dtype(run: TensorRun, device: torch.device | str, vocab_size: int,
                       compute: DtypeChoice | None = None) -> DtypeChoice | None:
    """The Muon dtype the run's training would choose, decided before it starts (``muon_shapes``); None for an
    optimizer without Muon. A benchmark writes the answer into every run's
    config, so all its runs orthogonalise alike: each run resolving "auto" on its own reads the probe's cache, which
    a concurrent process measuring the same shapes may rewrite with the other answer where the two dtypes are
    close (the rerun then differs from the first run)."""
    shapes = muon_shapes(run, vocab_size)
    if not shapes:
        return None
    if run.muon_dtype == "compute" and compute is None:
        compute = choose_dtype(device, run.dtype, run_shapes(run, vocab_size))
    return muon_dtype_for_shapes(run, shapes, device, compute=compute)


def resolve_attention_dtype(run: TensorRun, device: torch.device | str, vocab_size: int, compute: DtypeChoice,
                            say=None) -> DtypeChoice | None:
    """``runtime.choose_attention_dtype`` for this run (on a CPU under bf16 autocast, ``auto`` measured on one
    layer's attention at this run's shape, compiled for a compiled run, the figures cached); None where the model
    attends in its compute dtype. A benchmark writes the answer into its runs' configs, as it does Muon's
    (``resolve_muon_dtype``)."""
    shape = attention_shape(run, vocab_size)
    return choose_attention_dtype(device, compute, run.attention_dtype,
                                  lambda: measure_attention(shape, causal_attention, run.compile, say=say))


def choose_attention(run: TensorRun, model: torch.nn.Module, compute: DtypeChoice, say=None) -> DtypeChoice | None:
    """``resolve_attention_dtype``, set on the model (before it is first called and compiled); None where the
    model attends in its compute dtype, or has no such setting (the classic GPT)."""
    if not hasattr(model, "set_attention_dtype"):
        return None
    choice = resolve_attention_dtype(run, next(model.parameters()).device, model.config.vocab_size, compute, say)
    model.set_attention_dtype(None if choice is None else choice.dtype)
    return choice


def choose_orthogonalization(run: TensorRun, optimizer: torch.optim.Optimizer, device: torch.device,
                             say=None, compute: DtypeChoice | None = None) -> DtypeChoice | None:
    """Muon's orthogonalisation dtype for this run (``runtime.choose_muon_dtype``; on a CPU measured on this
    optimizer's own stacked shapes), written into every Muon group; None when the optimizer has no Muon."""
    shapes = stacked_shapes(optimizer.param_groups)
    if not shapes:
        return None
    choice = muon_dtype_for_shapes(run, shapes, device, say, compute)
    for group in optimizer.param_groups:
        if group.get("kind") == "muon":
            group["ortho_dtype"] = choice.name
    return choice


def nanochat_param_groups(model, *, unembedding_lr: float, embedding_lr: float, matrix_lr: float,  # noqa: PLR0913
                          weight_decay: float, adam_betas: tuple[float, float], scalar_lr: float,
                          adam_groups: str = "nanochat", muon_beta2: float = 0.95, equalize: bool = False,
                          ortho_dtype: str = "bfloat16", norm_factor: float = 1.02) -> list[dict]:
    """nanochat's groups and LR rules for the modern GPT: AdamW LRs scaled by (n_embd / 768) ** -0.5 (a wider
    model takes smaller steps on its embeddings and head); Muon for the block matrices, one group per shape
    (they are stacked and orthogonalised together). The values come from the run (``TensorRun``).

    ``adam_groups="next"``: nanochat's later per-group settings: betas (0.8, 0.96) for the head and
    (0.8, 0.995) for the embeddings, value embeddings at half the embedding LR, small AdamW weight decays
    (head 0.01, embeddings 0.001, value embeddings 0.01, resid lambdas 0.05). Smear and backout scalars
    (when the model has them) train at LR 0.2, as in nanochat, unscaled."""
    groups = model.param_groups()
    scale = (model.config.n_embd / 768) ** -0.5  # 1 at nanochat's 768-wide reference model
    adam = dict(kind="adamw", betas=adam_betas, eps=1e-10, weight_decay=0.0)
    later = adam_groups == "next"
    # AdamW for what is not a hidden matrix: a lookup table (embeddings) or the head sees one row per token, which
    # an orthogonalised update would spread over every row; scalars have no matrix to orthogonalise
    out = [
        dict(adam, params=groups["lm_head"], lr=unembedding_lr * scale,
             **(dict(betas=(0.8, 0.96), weight_decay=0.01) if later else {})),
        dict(adam, params=groups["embeddings"], lr=embedding_lr * scale,
             **(dict(betas=(0.8, 0.995), weight_decay=0.001) if later else {})),
        dict(adam, params=groups["value_embeds"], lr=embedding_lr * scale * (0.5 if later else 1.0),
             **(dict(betas=(0.8, 0.995), weight_decay=0.01) if later else {})),
        # the residual scalars multiply the whole stream: a 100x smaller LR keeps them from swinging it
        dict(adam, params=groups["resid_lambdas"], lr=scalar_lr * 0.01, **(dict(weight_decay=0.05) if later else {})),
        dict(adam, params=groups["x0_lambdas"], lr=scalar_lr, betas=(0.96, 0.95)),
    ]
    if groups.get("smear_backout"):
        out.append(dict(adam, params=groups["smear_backout"], lr=0.2, betas=(0.8, 0.95)))
    matrices = groups["matrices"]
    for shape in sorted({tuple(p.shape) for p in matrices}):  # one Muon group per shape: stacked, one batched call
        out.append(dict(kind="muon", params=[p for p in matrices if tuple(p.shape) == shape], lr=matrix_lr,
                        momentum=0.95, ns_steps=5, beta2=muon_beta2, weight_decay=weight_decay, equalize=equalize,
                        ortho_dtype=ortho_dtype, norm_factor=norm_factor))
    return out


def classic_param_groups(run: TensorRun, model: torch.nn.Module, lr_scale: float, weight_decay: float) -> list[dict]:
    groups = model.param_groups()
    scale = (model.config.n_embd / 768) ** -0.5  # AdamW LRs shrink as 1/sqrt(width), as nanochat's do
    adam = dict(kind="adamw", betas=(run.adam_beta1, run.adam_beta2), eps=1e-10, weight_decay=0.0)
    # GPT-2's tied embedding is also its head: a tenth of the embedding LR (the head's LR is that much smaller)
    param_groups = [dict(adam, params=groups["embeddings"] + groups["positions"],
                         lr=run.embedding_lr * lr_scale * scale * 0.1),
                    dict(adam, params=groups["norms_and_biases"], lr=run.scalar_lr * lr_scale * 0.01)]
    for shape in sorted({tuple(p.shape) for p in groups["matrices"]}):
        param_groups.append(dict(kind="muon", params=[p for p in groups["matrices"] if tuple(p.shape) == shape],
                                 lr=run.matrix_lr * lr_scale, momentum=0.95, ns_steps=5, beta2=0.95,
                                 weight_decay=weight_decay, norm_factor=run.muon_norm))
    return param_groups


def muon_momentum(run: TensorRun, step: int) -> float:
    # low momentum at first (the early gradients change fast and are poor guides), then a long memory
    if run.muon_momentum == "nanochat":
        frac = min(step / MOMENTUM_WARMUP_STEPS, 1)
        return (1 - frac) * 0.85 + frac * 0.95
    warmdown = round(run.warmdown_ratio * run.steps)
    if step < 400:  # the warmup comes first, as in nanochat (a run of < 400 steps never reaches 0.97)
        return (1 - step / 400) * 0.85 + step / 400 * 0.97
    if warmdown and step >= run.steps - warmdown:  # across the LR warmdown: 0.97 -> 0.90
        progress = (step - (run.steps - warmdown)) / warmdown
        return 0.97 * (1 - progress) + 0.90 * progress
    return 0.97


def muon_weight_decay(run: TensorRun, step: int, weight_decay: float) -> float:
    # decay to 0 by the end: late in training the weights should settle, not keep shrinking
    if run.wd_schedule == "cosine":  # stays high longer, then falls faster
        return weight_decay * 0.5 * (1 + math.cos(math.pi * step / run.steps))
    return weight_decay * (1 - step / run.steps)


def set_step_hyperparameters(optimizer: torch.optim.Optimizer, run: TensorRun, step: int, lr_multiplier: float,
                             weight_decay: float) -> None:
    """This step's LR of every group, and Muon's momentum and weight decay (see the module docstring)."""
    momentum, decay = muon_momentum(run, step), muon_weight_decay(run, step, weight_decay)
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * lr_multiplier  # every group follows one schedule shape
        if group.get("kind") == "muon":  # momentum and decay are Muon's only: AdamW's groups keep theirs
            group["momentum"] = momentum
            group["weight_decay"] = decay
