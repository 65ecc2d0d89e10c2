"""The one run config of tensor training, and the model it describes.

``TensorRun`` holds every setting of a run, its default and its rules, in one place: the CLI maps its flags
onto these fields (a flag's name is its field's name, its help shows the default from here), the bench profiles
hold an instance, every run writes the resolved config to ``OUT/config.json``, and ``train --config FILE``
rebuilds the run from that file. ``RECIPES`` names bundles of fields (``next``: the defaults; ``nanochat``:
nanochat 2f09686's values). ``model_config``/``build_model`` turn a run into its model.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from nanochat_next.dtype_choice import model_shapes
from nanochat_next.errors import UserError
from nanochat_next.model.gpt import INITS, GPTConfig, config_for_depth
from nanochat_next.model.gpt import RECIPE_FIELDS as MODEL_RECIPE_FIELDS
from nanochat_next.model.saving import MODEL_CLASSES
from nanochat_next.run_config import flag
from nanochat_next.runtime import ATTENTION_DTYPE_CHOICES, DEVICE_CHOICES, DTYPE_CHOICES, MUON_DTYPE_CHOICES
from nanochat_next.schedule import LRSchedule

# "gpt" was called "mini-gpt" before (the scalar path's name): old config files and flags still say so
MODEL_KINDS = ("gpt", "bigram")
OLD_MODEL_KINDS = {"mini-gpt": "gpt"}
STYLES = ("modern", "classic")  # modern = nanochat's GPT at 2f09686; classic = GPT-2
OPTIMIZERS = ("muon", "adamw", "sgd")  # muon = nanochat's MuonAdamW
MUON_LRS = ("embedding_lr", "unembedding_lr", "matrix_lr", "scalar_lr")  # the Muon recipe's group LRs
# settings that may change between a checkpoint and its resume; every other one must match. Learning rates
# and dtype may change too (e.g. to recover from a NaN): the resume is then no longer exact.
RESUMABLE_CHANGES = frozenset({"eval_every", "eval_tokens", "device", "compile", "deterministic", "peak_flops",
                               "save_every", "keep_last", "keep_best", "early_stop", "out", "tokenizer", "lr",
                               *MUON_LRS, "dtype", "muon_dtype", "attention_dtype"})
MUON_MOMENTUM = ("nanochat", "next")  # 0.85 -> 0.95 over 300 steps | -> 0.97 over 400, down to 0.90 in warmdown
WD_SCHEDULES = ("linear", "cosine")  # Muon's weight decay over the run: linear to 0 | half-cosine to 0
ADAM_GROUPS = ("nanochat", "next")  # per-group AdamW settings (train.muon.nanochat_param_groups)
MAX_STEPS = 10_000_000  # a bound that catches a typo (99999999999999999999) but no real run


@dataclass(frozen=True)
class TensorRun:
    """Every setting of a tensor training run (recorded in OUT/config.json and in each checkpoint)."""

    # data: a known corpus, a path to .txt file(s), or a directory of parquet shards in nanochat's layout
    data: str = "tinyshakespeare"
    documents: str = "auto"  # auto (the corpus's own rule) | paragraphs | lines
    val_fraction: float = 0.1  # last fraction of the documents held out (parquet: the last shard instead)
    tokenizer: str | None = None  # a tokenizer directory; None = train one on the training split
    vocab_size: int = 4096  # of the tokenizer trained when none is given
    # model
    model_kind: str = "gpt"  # gpt (style modern or classic) | bigram
    style: str = "modern"
    depth: int = 4
    aspect_ratio: int = 64  # model width per layer of depth
    head_dim: int = 64
    max_seq_len: int = 256
    window_pattern: str = "L"  # sliding windows per layer, e.g. SSSL (L = full context); modern style only
    # batch: device_batch_size x max_seq_len tokens per micro-batch, accumulated up to total_batch_size
    device_batch_size: int = 8
    total_batch_size: int = 2048
    steps: int = 200
    # optimizer: Muon's group LRs (nanochat's base_train names) or one LR for adamw/sgd
    optimizer: str = "muon"
    lr: float = 1e-3  # adamw / sgd only
    embedding_lr: float = 0.6  # next; nanochat 0.3 (RECIPES)
    unembedding_lr: float = 0.016  # next; nanochat 0.004
    matrix_lr: float = 0.02
    scalar_lr: float = 0.5
    weight_decay: float = 0.28  # Muon's, scaled to batch and model size as nanochat does; nanochat 0.2
    adam_beta1: float = 0.8
    adam_beta2: float = 0.95
    # LR schedule: multiplier of every group's LR per step
    warmup_ratio: float = 0.0
    lr_warmup_steps: int = 0  # > 0: LR warmup in steps instead of a ratio (nanochat 92d63d4: --warmup-steps 40)
    warmdown_ratio: float = 0.35  # next; nanochat 0.5
    final_lr_fraction: float = 0.05  # next; nanochat 0.0
    lr_schedule: str = "linear"  # linear | sqrt | cosine | constant
    # the recipe: model features and training rules beyond nanochat 2f09686 (docs/recipe.md). These defaults
    # are the `next` recipe; `--recipe nanochat` sets every field of RECIPES["nanochat"] back to nanochat's
    recipe: str = "next"
    smear: bool = True  # next; nanochat False. previous token's embedding mixed in through a gate (modern style)
    backout: bool = False  # a learned fraction of the mid-depth residual subtracted before the head
    qk_scale: float = 1.0  # q and k scaled after QK-norm
    rope_base: float = 10000.0
    ve_gate_range: float = 2.0  # value-embedding gate range (0, R)
    ve_gate_channels: int = 32  # channels the value-embedding gate reads
    init: str = "next"  # nanochat | next (nanochat's later init)
    tie_embeddings: bool = False
    embed_norm: bool = True  # RMSNorm on the token embedding
    short_window: str = "half"  # an S window: half the context (2f09686) | quarter128 (92d63d4)
    rotary_dtype: str = "bfloat16"  # rotary tables rounded to bf16 (2f09686) | float32 (92d63d4 on a CPU)
    adam_groups: str = "nanochat"  # nanochat | next (per-group betas and weight decays)
    muon_beta2: float = 0.95  # NorMuon's second-moment decay
    muon_eq: bool = False  # MuonEq row equilibration + Muon+ renormalisation
    muon_norm: float = 1.02  # the update is divided by its Frobenius norm x this before orthogonalising (92d63d4: 1.01)
    muon_momentum: str = "nanochat"
    wd_schedule: str = "linear"
    # evaluation
    eval_every: int = 50  # validation bpb every N steps (<= 0: only at the end)
    eval_tokens: int = 16384
    # runtime
    device: str = "auto"
    dtype: str = "auto"  # compute dtype; weights stay float32
    # Muon's orthogonalisation: auto = bf16 where measured faster (next); nanochat always bf16 (RECIPES)
    muon_dtype: str = "auto"
    # the attention's dtype under a CPU's bf16 autocast: auto = timed (fp32 unless bf16 is clearly faster), compute =
    # autocast's bf16; elsewhere it computes in the compute dtype whatever this says (runtime.choose_attention_dtype)
    attention_dtype: str = "auto"
    compile: bool = False
    # torch deterministic algorithms: a compiled model's embedding backward otherwise accumulates with
    # atomic adds, so two runs with one seed differ in the last bits (measured on CPU)
    deterministic: bool = True
    seed: int = 42
    peak_flops: float | None = None  # FLOP/s for MFU; None = measure a matmul at start
    # output and checkpoints
    out: str = "out/tensor"
    save_every: int = 0  # checkpoint every N steps (0: only at the end); always before that step's eval
    keep_last: int = 0  # keep the newest N checkpoints (0: all)
    keep_best: bool = False  # also save OUT/best/: the model at its lowest val bpb so far (off: budgets stay matched)
    early_stop: int = 0  # end the run after N evals without a new lowest val bpb (0: never)

    def __post_init__(self) -> None:
        if self.model_kind in OLD_MODEL_KINDS:  # frozen: the one place a field is rewritten after construction
            object.__setattr__(self, "model_kind", OLD_MODEL_KINDS[self.model_kind])
        for name, allowed in (("model_kind", MODEL_KINDS), ("style", STYLES), ("optimizer", OPTIMIZERS),
                              ("device", DEVICE_CHOICES), ("dtype", DTYPE_CHOICES), ("muon_dtype", MUON_DTYPE_CHOICES),
                              ("attention_dtype", ATTENTION_DTYPE_CHOICES),
                              ("documents", ("auto", "paragraphs", "lines")),
                              ("recipe", tuple(RECIPES)), ("init", INITS), ("adam_groups", ADAM_GROUPS),
                              ("muon_momentum", MUON_MOMENTUM), ("wd_schedule", WD_SCHEDULES)):
            if getattr(self, name) not in allowed:
                raise UserError(f"unknown {name.replace('_', ' ')} {getattr(self, name)!r} ({', '.join(allowed)})")
        for name in ("depth", "max_seq_len", "device_batch_size", "total_batch_size", "steps", "eval_tokens",
                     "head_dim", "aspect_ratio", "vocab_size", "ve_gate_channels"):
            if getattr(self, name) < 1:
                raise UserError(f"{flag(name)} must be positive, got {getattr(self, name)}")
        if self.early_stop < 0:
            raise UserError(f"{flag('early_stop')} must be >= 0 (0: never), got {self.early_stop}")
        if self.steps > MAX_STEPS:
            raise UserError(f"{flag('steps')} {self.steps:,} is more than {MAX_STEPS:,}; is it a typo?")
        if not 0.0 < self.val_fraction < 1.0:
            raise UserError(f"{flag('val_fraction')} must be between 0 and 1, got {self.val_fraction}")
        for name in ("lr", *MUON_LRS, "weight_decay", "qk_scale", "ve_gate_range"):
            value = getattr(self, name)
            if not value >= 0 or (name != "weight_decay" and value == 0):  # `not >=` also catches nan
                raise UserError(f"{flag(name)} must be {'>= 0' if name == 'weight_decay' else '> 0'}, got {value}")
        if not 0 <= self.muon_beta2 < 1 or not self.rope_base > 1:
            raise UserError(f"{flag('muon_beta2')} must be in [0, 1) and {flag('rope_base')} > 1, got "
                            f"{self.muon_beta2}, {self.rope_base}")
        self.check_model_kind()
        self.schedule()  # validates the schedule settings

    def beyond_recipe(self) -> dict:
        """The recipe fields that differ from the named recipe's values (e.g. a `nanochat` run + smear)."""
        preset = {**{f.name: f.default for f in fields(self) if f.name in RECIPE_FIELDS}, **RECIPES[self.recipe]}
        return {k: getattr(self, k) for k in RECIPE_FIELDS if getattr(self, k) != preset[k]}

    def check_model_kind(self) -> None:
        """The rules that depend on what is trained: Muon needs matrices; windows exist in the modern GPT only."""
        if self.model_kind == "bigram":
            if self.optimizer == "muon":
                raise UserError("muon needs weight matrices inside blocks; train the bigram with --optimizer adamw")
            return
        if self.style == "modern":
            if not self.window_pattern or any(c not in "SL" for c in self.window_pattern.upper()):
                raise UserError(f"window pattern {self.window_pattern!r} must be a non-empty string of S and L")
        elif self.window_pattern.upper().strip("L"):
            raise UserError(f"the classic style has no sliding windows; drop --window-pattern {self.window_pattern}")

    def schedule(self) -> LRSchedule:
        return LRSchedule(self.steps, self.warmup_ratio, self.warmdown_ratio, self.final_lr_fraction,
                          self.lr_schedule, self.lr_warmup_steps)

    @property
    def tokens_per_micro_batch(self) -> int:
        return self.device_batch_size * self.max_seq_len


# The recipes: every field a recipe sets, with nanochat 2f09686's values; `next` is TensorRun's defaults.
NANOCHAT_NEWEST = "nanochat-92d63d4"
RECIPES: dict[str, dict] = {
    "next": {},
    "nanochat": dict(recipe="nanochat", smear=False, backout=False, qk_scale=1.0, rope_base=10000.0,
                     ve_gate_range=2.0, ve_gate_channels=32, init="nanochat", tie_embeddings=False, embed_norm=True,
                     adam_groups="nanochat", muon_beta2=0.95, muon_eq=False, muon_momentum="nanochat",
                     wd_schedule="linear", embedding_lr=0.3, unembedding_lr=0.004, matrix_lr=0.02, scalar_lr=0.5,
                     weight_decay=0.2, adam_beta1=0.8, adam_beta2=0.95, warmup_ratio=0.0, warmdown_ratio=0.5,
                     final_lr_fraction=0.0, lr_schedule="linear", muon_dtype="bfloat16", short_window="half",
                     rotary_dtype="bfloat16", muon_norm=1.02, lr_warmup_steps=0),
    # nanochat's newest commit (master 92d63d4, 2026-07-03): its base_train defaults and its model, as its code has
    # them on a CPU (tests/model/test_gpt_parity.py checks init, logits and steps against fixtures from its code)
    NANOCHAT_NEWEST: dict(recipe=NANOCHAT_NEWEST, smear=True, backout=True, qk_scale=1.2, rope_base=100000.0,
                          ve_gate_range=3.0, ve_gate_channels=12, init="next", tie_embeddings=False, embed_norm=True,
                          adam_groups="next", muon_beta2=0.9, muon_eq=True, muon_momentum="next", wd_schedule="cosine",
                          embedding_lr=0.3, unembedding_lr=0.008, matrix_lr=0.02, scalar_lr=0.5, weight_decay=0.28,
                          adam_beta1=0.8, adam_beta2=0.95, warmup_ratio=0.0, warmdown_ratio=0.65,
                          final_lr_fraction=0.05, lr_schedule="linear", muon_dtype="compute",
                          short_window="quarter128", rotary_dtype="float32", muon_norm=1.01, lr_warmup_steps=40),
}
RECIPE_FIELDS = tuple(k for k in RECIPES["nanochat"] if k != "recipe")  # MODEL_RECIPE_FIELDS among them


def with_recipe_fields(values: dict) -> dict:
    """A tensor config file's fields, completed: a recipe field the file lacks (it was written before that field
    existed) takes its recipe's value, and a file without a ``recipe`` field was a nanochat 2f09686 run."""
    recipe = values.get("recipe", "nanochat")
    values = {**values, **({"model_kind": OLD_MODEL_KINDS[values["model_kind"]]}
                           if values.get("model_kind") in OLD_MODEL_KINDS else {})}
    return {**recipe_values(recipe), **values} if recipe in RECIPES else values


def recipe_values(name: str) -> dict:
    """Every recipe field at the named recipe's value (``next``: TensorRun's defaults), plus the name."""
    if name not in RECIPES:
        raise UserError(f"unknown recipe {name!r} ({', '.join(RECIPES)})")
    defaults = {f.name: f.default for f in fields(TensorRun)}
    return {**{k: defaults[k] for k in RECIPE_FIELDS}, **RECIPES[name], "recipe": name}


# --- the model a run describes


def model_config(run: TensorRun, vocab_size: int) -> GPTConfig:
    """The model's shape from the run; only the modern GPT has sliding windows (the others attend to all or
    none) and the recipe's model features (the others keep GPTConfig's defaults)."""
    modern = run.model_kind == "gpt" and run.style == "modern"
    config = config_for_depth(run.depth, vocab_size, run.aspect_ratio, run.head_dim, run.max_seq_len,
                              run.window_pattern if modern else "L")
    return replace(config, **{k: getattr(run, k) for k in MODEL_RECIPE_FIELDS}) if modern else config


def run_shapes(run: TensorRun, vocab_size: int) -> list[tuple[int, int, int]]:
    """The matmuls (M, K, N) of one micro-batch of this run's model: what ``--dtype auto`` times on a CPU."""
    c = model_config(run, vocab_size)
    return model_shapes(run.tokens_per_micro_batch, c.n_embd, c.n_kv_head * c.head_dim, c.padded_vocab_size,
                        c.n_layer)


def attention_shape(run: TensorRun, vocab_size: int) -> tuple[int, int, int, int]:
    """One layer's causal attention in one micro-batch (batch, heads, sequence, head_dim): what the attention's
    dtype is timed on under a CPU's bf16 autocast."""
    c = model_config(run, vocab_size)
    return run.device_batch_size, c.n_head, run.max_seq_len, c.head_dim


def model_class(run: TensorRun) -> type[torch.nn.Module]:
    return MODEL_CLASSES["bigram" if run.model_kind == "bigram" else run.style]


def build_model(run: TensorRun, vocab_size: int, device: torch.device | str = "cpu") -> torch.nn.Module:
    """Built on the meta device (no memory, no random draws), then initialised on ``device``: with the same seed,
    the modern GPT's weights equal nanochat's (its init draws random numbers in the same order)."""
    with torch.device("meta"):
        model = model_class(run)(model_config(run, vocab_size), init=False)
    model.to_empty(device=device)
    model.init_weights()
    return model


# Inductor's C++ code for tanh, written as 2 / (1 + exp(-2x)) - 1 rather than with Sleef's (slower) tanh. The soft
# cap's tanh runs over all (B, T, vocab) logits, forward and backward: the step's largest elementwise kernels.
# Measured on the cpu profile, the same weights compiled both ways, steps paired (results/compile_options.md, an
# avx512_bf16 EPYC): forward + backward 1.025x faster in fp32, 1.027x in bf16. The formula loses relative accuracy
# only near x = 0 (absolute error ~1e-7, far below a logit's rounding), which is why torch leaves it off by default
# (pytorch#148241: tanh fed to atan2). CPU-only: CUDA ignores it
COMPILE_OPTIONS = {"cpp.use_decompose_tanh": True}


def compile_forward(model: torch.nn.Module) -> torch.nn.Module:
    """The model compiled as ``train --compile`` runs it: one graph per shape (forward with its loss)."""
    return torch.compile(model, dynamic=False, options=COMPILE_OPTIONS)
