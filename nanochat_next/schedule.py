"""Learning-rate schedules, shared by the scalar and tensor training paths.

The multiplier of the base learning rate at step ``step`` (0-based) of ``num_steps``:

    warmup (linear, (step+1)/warmup_steps)  ->  constant 1.0  ->  warmdown to ``final_lr_fraction``

with ``warmup_steps = round(warmup_ratio * num_steps)`` and ``warmdown_steps = round(warmdown_ratio *
num_steps)``, exactly as nanochat's ``get_lr_multiplier`` at the pinned ref. The warmdown shape, with
``e`` the elapsed fraction of the warmdown:

- ``linear``: 1 - e (nanochat)
- ``sqrt``:   1 - sqrt(e), the "1-sqrt" cooldown (Hägele et al. 2024)
- ``cosine``: (1 + cos(pi e)) / 2; with warmdown_ratio=1 this is microgpt's whole-run cosine decay
- ``constant``: no warmdown

each then mapped to [final_lr_fraction, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nanochat_next.errors import UserError

SHAPES = ("linear", "sqrt", "cosine", "constant")


@dataclass(frozen=True)
class LRSchedule:
    num_steps: int
    warmup_ratio: float = 0.0
    warmdown_ratio: float = 0.5
    final_lr_fraction: float = 0.0
    shape: str = "linear"
    warmup_steps: int = 0  # > 0: the warmup in steps, whatever the run's length (nanochat 92d63d4: 40)

    def __post_init__(self) -> None:
        if self.num_steps < 1:
            raise UserError(f"the schedule needs at least 1 step, got {self.num_steps}")
        if self.shape not in SHAPES:
            raise UserError(f"unknown LR schedule {self.shape!r}; choose one of {', '.join(SHAPES)}")
        for name in ("warmup_ratio", "warmdown_ratio", "final_lr_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0 or math.isnan(value):
                raise UserError(f"{name.replace('_', ' ')} must be in [0, 1], got {value}")
        if self.warmup_ratio + self.warmdown_ratio > 1.0:
            raise UserError(f"warmup ratio {self.warmup_ratio} + warmdown ratio {self.warmdown_ratio} exceeds 1")
        if self.warmup_steps < 0:
            raise UserError(f"warmup steps must be >= 0, got {self.warmup_steps}")
        if self.warmup_steps and self.warmup_ratio:
            raise UserError(f"set a warmup ratio ({self.warmup_ratio}) or warmup steps ({self.warmup_steps}), "
                            "not both")

    def __call__(self, step: int) -> float:
        # (in steps, a warmup may run into the warmdown: as nanochat, the warmup then comes first)
        warmup = self.warmup_steps or round(self.warmup_ratio * self.num_steps)
        warmdown = 0 if self.shape == "constant" else round(self.warmdown_ratio * self.num_steps)
        if step < warmup:  # ramp up from nearly 0: the first updates of a random model are the least trustworthy
            return (step + 1) / warmup
        if step <= self.num_steps - warmdown:  # the plateau: the peak LR
            return 1.0
        # the warmdown: lowering the LR at the end averages away the noise of the last steps, which is where most
        # of the final loss drop comes from (the "wsd" schedule nanochat uses)
        remaining = (self.num_steps - step) / warmdown  # 1 -> 0 across the warmdown (nanochat's "progress")
        if self.shape == "linear":
            level = remaining
        elif self.shape == "sqrt":  # 1 - sqrt: stays high longer, then drops fast
            level = 1.0 - math.sqrt(1.0 - remaining)
        else:  # cosine: smooth at both ends
            level = 0.5 * (1.0 + math.cos(math.pi * (1.0 - remaining)))
        # from the peak (1) to final_lr_fraction, not necessarily to 0
        return level * 1.0 + (1.0 - level) * self.final_lr_fraction
