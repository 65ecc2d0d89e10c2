"""Optimizers for scalar ``Value`` parameters: SGD (with momentum) and AdamW.

The same update rules as torch.optim.SGD and torch.optim.AdamW (decoupled weight decay applied as
``p *= 1 - lr * weight_decay`` before the Adam step), written out one scalar at a time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from nanochat_next.scalar.value import Value


class SGD:
    def __init__(self, params: Sequence[Value], lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        self.params = list(params)
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.buf = [0.0] * len(self.params)
        self.steps = 0

    def step(self, lr_multiplier: float = 1.0) -> None:
        lr, mom, wd = self.lr * lr_multiplier, self.momentum, self.weight_decay
        for i, p in enumerate(self.params):
            g = p.grad + wd * p.data
            if mom:
                g = self.buf[i] = mom * self.buf[i] + g if self.steps else g
            p.data -= lr * g
        self.steps += 1

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = 0.0

    def state_dict(self) -> dict:
        return {"kind": "sgd", "steps": self.steps, "buf": list(self.buf)}

    def load_state_dict(self, state: dict) -> None:
        self.steps, self.buf = state["steps"], list(state["buf"])


class AdamW:
    def __init__(self, params: Sequence[Value], lr: float, betas: tuple[float, float] = (0.9, 0.95),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        self.params = list(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.m = [0.0] * len(self.params)
        self.v = [0.0] * len(self.params)
        self.steps = 0

    def step(self, lr_multiplier: float = 1.0) -> None:
        self.steps += 1
        lr = self.lr * lr_multiplier
        b1, b2 = self.betas
        c1, c2 = 1.0 - b1**self.steps, 1.0 - b2**self.steps
        decay = 1.0 - lr * self.weight_decay
        m, v, eps = self.m, self.v, self.eps
        for i, p in enumerate(self.params):
            g = p.grad
            m[i] = b1 * m[i] + (1.0 - b1) * g
            v[i] = b2 * v[i] + (1.0 - b2) * g * g
            if decay != 1.0:
                p.data *= decay
            p.data -= lr * (m[i] / c1) / (math.sqrt(v[i] / c2) + eps)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = 0.0

    def state_dict(self) -> dict:
        return {"kind": "adamw", "steps": self.steps, "m": list(self.m), "v": list(self.v)}

    def load_state_dict(self, state: dict) -> None:
        self.steps, self.m, self.v = state["steps"], list(state["m"]), list(state["v"])


OPTIMIZERS = {"sgd": SGD, "adamw": AdamW}
