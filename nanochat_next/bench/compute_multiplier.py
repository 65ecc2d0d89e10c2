"""Compute multiplier (CM): how much compute a baseline needs to reach what a variant reached, per unit of the
variant's compute. nanochat's own measure of "better" since its experiment branch (scripts/compare.py):

    CM = FLOPs the baseline needs to reach the variant's final val bpb / the variant's FLOPs

CM > 1: the variant reaches that quality with less compute (a win); CM < 1: it needs more. The baseline's
FLOPs are read off its training curve (val bpb at each evaluation against the FLOPs spent so far) by
piecewise-linear interpolation in (log FLOPs, log bpb): loss curves are close to power laws, straight lines on
log-log axes. When the target lies beyond the curve (the variant ends lower than the baseline ever got, or higher
than its first point), the boundary segment is extended in the same space and the result is flagged as
extrapolated (nanochat prints it with a trailing "?").

nanochat defines CM for monotone curves (infinite data). A curve that rises again (over-fitting on repeated
data) is read at its first crossing, as nanochat's reader does; ``best_so_far`` gives the monotone curve of the
best bpb reached so far, for comparing runs by their best point instead of their last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Curve = list[tuple[float, float]]  # (FLOPs, val bpb), in order of FLOPs


@dataclass(frozen=True)
class Multiplier:
    cm: float
    baseline_flops: float  # what the baseline needs to reach the anchor
    variant_flops: float
    anchor_bpb: float  # the variant's bpb that the baseline must reach
    extrapolated: bool  # the anchor lies beyond the baseline's measured curve

    def __str__(self) -> str:
        value = f"{self.cm:.2f}" if self.cm < 1000 else f"{self.cm:.1e}"  # an extrapolation can run to 1e27
        return f"{value}{'?' if self.extrapolated else ''}"


def flops_on_line(p0: tuple[float, float], p1: tuple[float, float], bpb: float) -> float:
    """The FLOPs where the straight line through p0 and p1 in (log FLOPs, log bpb) reaches ``bpb`` (inside the
    segment or beyond it)."""
    (f0, b0), (f1, b1) = p0, p1
    w = (math.log(b0) - math.log(bpb)) / (math.log(b0) - math.log(b1))  # 0 at p0, 1 at p1
    return math.exp((1 - w) * math.log(f0) + w * math.log(f1))


def flops_to_reach(curve: Curve, bpb: float) -> tuple[float, bool] | None:
    """(FLOPs where ``curve`` first reaches ``bpb``, extrapolated?), or None for a curve with no slope to follow
    (fewer than two points, or a boundary segment that is flat or rises: extending a rising last segment would
    "reach" a lower bpb at fewer FLOPs)."""
    if len(curve) < 2:
        return None
    for p0, p1 in zip(curve, curve[1:]):  # the first segment that crosses the target, going down
        if p1[1] <= bpb <= p0[1] and p0[1] != p1[1]:
            return flops_on_line(p0, p1, bpb), False
    p0, p1 = (curve[0], curve[1]) if bpb > curve[0][1] else (curve[-2], curve[-1])  # extend the boundary segment
    if p1[1] >= p0[1]:  # flat, or rising (over-fitting): no slope leads to the target, extended either way
        return None
    return flops_on_line(p0, p1, bpb), True


def compute_multiplier(baseline: Curve, variant_flops: float, variant_bpb: float) -> Multiplier | None:
    """The CM of a variant that reached ``variant_bpb`` after ``variant_flops``, against the baseline's curve."""
    found = flops_to_reach(baseline, variant_bpb)
    if found is None:
        return None
    flops, extrapolated = found
    return Multiplier(flops / variant_flops, flops, variant_flops, variant_bpb, extrapolated)


def best_so_far(curve: Curve) -> Curve:
    """The lowest bpb reached up to each point: a curve that never rises (equal to ``curve`` when it is already
    monotone)."""
    out, best = [], math.inf
    for flops, bpb in curve:
        best = min(best, bpb)
        out.append((flops, best))
    return out
