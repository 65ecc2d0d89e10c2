"""The scalar run config: every setting of a scalar training run, its default and its rules, in one place.

The CLI maps its flags onto these fields (a flag's name is its field's name); a run writes the resolved
config to ``OUT/config.json`` and ``train --config FILE`` rebuilds the run from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nanochat_next.errors import UserError
from nanochat_next.run_config import flag
from nanochat_next.scalar.optim import OPTIMIZERS
from nanochat_next.schedule import LRSchedule

MODEL_KINDS = ("bigram", "mini-gpt")
# the peak LR when none is given, per (model kind, optimizer): full-batch bigram counts take large steps
DEFAULT_LR = {("mini-gpt", "adamw"): 1e-2, ("mini-gpt", "sgd"): 0.1, ("bigram", "adamw"): 0.5, ("bigram", "sgd"): 50.0}
MAX_STEPS = 10_000_000  # a bound that catches a typo but no real run


@dataclass(frozen=True)
class ScalarRun:
    """Every setting of a scalar training run (recorded in OUT/config.json and in the checkpoint)."""

    data: str = "names"  # a known corpus or a path to .txt file(s)
    documents: str = "auto"  # auto (the corpus's own rule) | paragraphs | lines
    model_kind: str = "mini-gpt"
    steps: int = 500
    optimizer: str = "adamw"
    lr: float | None = None  # None: DEFAULT_LR for the model kind and optimizer
    lr_schedule: str = "linear"
    warmup_ratio: float = 0.0
    warmdown_ratio: float = 0.5
    final_lr_fraction: float = 0.0
    weight_decay: float = 0.0
    seed: int = 42  # seeds the document shuffle and the weight init (microgpt's order)
    val_fraction: float = 0.1  # of the shuffled documents held out; 0 = none
    eval_docs: int = 200  # mini-gpt: held-out documents for the final validation loss (the bigram uses all)
    smoothing: float = 1.0  # bigram: pseudo-count added to every pair (add-one smoothing)
    n_embd: int = 16
    n_head: int = 4
    n_layer: int = 1
    block_size: int = 16
    out: str = "out/scalar"

    def __post_init__(self) -> None:
        if self.model_kind not in MODEL_KINDS:
            raise UserError(f"unknown model kind {self.model_kind!r}; choose one of {', '.join(MODEL_KINDS)}")
        if self.optimizer not in OPTIMIZERS:
            muon = " (muon is for --mode tensor)" if self.optimizer == "muon" else ""
            raise UserError(f"unknown optimizer {self.optimizer!r} for the scalar path{muon}; choose one of "
                            f"{', '.join(OPTIMIZERS)}")
        if self.documents not in ("auto", "paragraphs", "lines"):
            raise UserError(f"unknown document rule {self.documents!r} (auto, paragraphs, lines)")
        if not 1 <= self.steps <= MAX_STEPS:
            raise UserError(f"{flag('steps')} must be between 1 and {MAX_STEPS:,}, got {self.steps}")
        if self.lr is not None and (math.isnan(self.lr) or self.lr <= 0):
            raise UserError(f"learning rate must be > 0, got {self.lr}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise UserError(f"{flag('val_fraction')} must be in [0, 1), got {self.val_fraction}")
        if self.smoothing < 0:
            raise UserError(f"smoothing must be >= 0, got {self.smoothing}")
        for name in ("eval_docs", "n_embd", "n_head", "n_layer", "block_size"):
            if getattr(self, name) < 1:
                raise UserError(f"{flag(name)} must be positive, got {getattr(self, name)}")
        if self.model_kind == "mini-gpt" and self.n_embd % self.n_head:
            raise UserError(f"--n-embd {self.n_embd} must be divisible by --n-head {self.n_head}")
        self.schedule()  # validates the schedule settings

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[(self.model_kind, self.optimizer)]

    def schedule(self) -> LRSchedule:
        return LRSchedule(self.steps, self.warmup_ratio, self.warmdown_ratio, self.final_lr_fraction,
                          self.lr_schedule)
