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


def shown(value: Any) -> Any:
    """A value as a learner reads it: tensors as nested lists, floats rounded to 6 significant digits."""
    if isinstance(value, torch.Tensor):
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
            print(f"not yet: for {label} you gave {brief(got)}, expected {brief(want)}")
            return False
    print(f"right on all {len(cases)} cases")
    return True
