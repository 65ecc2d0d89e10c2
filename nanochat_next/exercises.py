"""The notebooks' exercise checker: the learner's function against the library's on several inputs.

Every exercise in notebooks/ has a "your attempt" cell: a stub the learner fills in, then ``check(mine, reference,
cases)``, which calls both functions on each case and prints the first case where they differ (or that all agree).
It prints and returns a bool, never raises: an unfinished stub must not stop the notebook (nbval runs it as is),
and the hidden solution cell asserts that the checker accepts the solution and rejects the stub.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

SHOWN_ELEMENTS = 16  # a tensor with more values is shown by its shape, and a difference by its first place


class Shape:
    """How a large tensor is shown: ``tensor(2, 3, 64)``."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape

    def __repr__(self) -> str:
        return f"tensor{self.shape}" if len(self.shape) != 1 else f"tensor({self.shape[0]})"


def shown(value: Any) -> Any:
    """A value as a learner reads it: small tensors as nested lists, large ones by their shape, floats rounded to
    6 significant digits."""
    if isinstance(value, torch.Tensor):
        if value.numel() > SHOWN_ELEMENTS:
            return Shape(tuple(value.shape))
        return shown(value.tolist())  # its floats rounded too (a float32 tensor's tolist has 17 digits)
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, (list, tuple)):
        return type(value)(shown(v) for v in value)
    return value


def brief(value: Any, width: int = 100) -> str:
    """A shown value in at most about ``width`` characters (a long input is cut, with how much is left out)."""
    text = str(shown(value))
    return text if len(text) <= width else f"{text[:width]}... ({len(text) - width:,} more characters)"


def same(got: Any, want: Any, rel: float = 1e-5, abs_: float = 1e-6) -> bool:
    """Equal, with floats (and float tensors) compared within a relative and absolute tolerance (float32's
    rounding on a learner's different but equivalent formula); shapes and lengths must match exactly."""
    if isinstance(want, torch.Tensor) or isinstance(got, torch.Tensor):
        got_t, want_t = torch.as_tensor(got), torch.as_tensor(want)
        if got_t.shape != want_t.shape:
            return False
        return torch.allclose(got_t.double(), want_t.double(), rtol=rel, atol=abs_, equal_nan=True)
    if isinstance(want, float) or isinstance(got, float):  # a number against a number, never a string
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (got, want))
        return numbers and math.isclose(got, want, rel_tol=rel, abs_tol=abs_)
    if isinstance(want, (list, tuple)) and isinstance(got, (list, tuple)):
        return len(got) == len(want) and all(same(g, w, rel, abs_) for g, w in zip(got, want))
    return got == want


def first_difference(got: torch.Tensor, want: torch.Tensor, rel: float, abs_: float) -> str:
    """Where two tensors of one shape first differ: the index, both values and how many places differ."""
    close = torch.isclose(got.double(), want.double(), rtol=rel, atol=abs_, equal_nan=True)
    wrong = (~close).nonzero()
    place = wrong[0].tolist()
    return (f"at {place} you gave {shown(got[tuple(place)].item())}, expected {shown(want[tuple(place)].item())} "
            f"({len(wrong):,} of {got.numel():,} values differ)")


def check(mine: Callable, reference: Callable, cases: Sequence, rel: float = 1e-5, abs_: float = 1e-6) -> bool:
    """Call ``mine`` and ``reference`` on every case (a tuple is unpacked into arguments) and compare; print the
    first difference, or that all cases agree. Returns whether they all agree."""
    for case in cases:
        args = case if isinstance(case, tuple) else (case,)
        label = brief(case)
        try:
            got = mine(*args)
        except Exception as exc:  # noqa: BLE001 - a learner's half-written function may raise anything
            print(f"not yet: for {label} your function raised {type(exc).__name__}: {exc}")
            return False
        want = reference(*args)
        if not same(got, want, rel, abs_):
            large = all(isinstance(v, torch.Tensor) and v.numel() > SHOWN_ELEMENTS for v in (got, want))
            if large and got.shape == want.shape:
                print(f"not yet: for {label} your tensor differs {first_difference(got, want, rel, abs_)}")
            else:
                print(f"not yet: for {label} you gave {brief(got)}, expected {brief(want)}")
            return False
    print(f"right on all {len(cases)} cases")
    return True
