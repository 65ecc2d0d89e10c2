"""Compute multipliers against cases worked out by hand on a curve that halves its bpb per decade of FLOPs
(a straight line in log-log: every interpolated or extrapolated point is a power of ten or its square root)."""

from __future__ import annotations

import math

import pytest

from nanochat_next.bench.compute_multiplier import best_so_far, compute_multiplier, flops_to_reach

CURVE = [(1.0, 4.0), (10.0, 2.0), (100.0, 1.0)]  # bpb = 4 x FLOPs ** -log10(2)


@pytest.mark.parametrize("bpb, flops, extrapolated", [
    (4.0, 1.0, False),  # the first point
    (2.0, 10.0, False),  # a measured point: the first segment that reaches it
    (math.sqrt(8), math.sqrt(10), False),  # halfway along the first segment in log space
    (math.sqrt(2), math.sqrt(1000), False),  # halfway along the second
    (0.5, 1000.0, True),  # better than the curve ever got: the last segment extended
    (8.0, 0.1, True),  # worse than its first point: the first segment extended backwards
])
def test_flops_to_reach_by_hand(bpb, flops, extrapolated):
    found, flag = flops_to_reach(CURVE, bpb)
    assert found == pytest.approx(flops, rel=1e-12) and flag is extrapolated


def test_the_multiplier_is_baseline_flops_over_variant_flops():
    # a variant that reached 1.0 bpb with 10 FLOPs: the baseline needs 100 -> CM 10, a win
    m = compute_multiplier(CURVE, 10.0, 1.0)
    assert m.cm == pytest.approx(10.0) and not m.extrapolated and str(m) == "10.00"
    # one that needed 100 FLOPs to reach 2.0 bpb, which the baseline reached at 10: CM 0.1, a regression
    assert compute_multiplier(CURVE, 100.0, 2.0).cm == pytest.approx(0.1)
    # past the baseline's curve the value is stated, and flagged
    m = compute_multiplier(CURVE, 100.0, 0.5)
    assert m.cm == pytest.approx(10.0) and m.extrapolated and str(m) == "10.00?"


def test_a_curve_that_rises_is_read_at_its_first_crossing():
    rising = [(1.0, 4.0), (10.0, 2.0), (100.0, 3.0), (1000.0, 1.5)]
    found, flag = flops_to_reach(rising, 2.5)
    assert found == pytest.approx(10 ** (math.log(4 / 2.5) / math.log(2))) and not flag  # 4.76, not past 100
    assert best_so_far(rising) == [(1.0, 4.0), (10.0, 2.0), (100.0, 2.0), (1000.0, 1.5)]
    assert best_so_far(CURVE) == CURVE


def test_no_slope_no_multiplier():
    assert flops_to_reach([(1.0, 2.0)], 1.0) is None
    assert flops_to_reach([(1.0, 2.0), (10.0, 2.0)], 1.0) is None  # flat: nothing to extend
    assert compute_multiplier([(1.0, 2.0), (10.0, 2.0)], 5.0, 1.0) is None


def test_a_rising_last_segment_is_not_extended():
    """A baseline that over-fits (its last segment rises) never reached a bpb below its minimum: extending the rising
    line would place that bpb at fewer FLOPs than the minimum's, a made-up multiplier."""
    overfit = [(10.0, 3.0), (20.0, 2.0), (40.0, 2.5)]
    assert flops_to_reach(overfit, 1.5) is None
    assert compute_multiplier(overfit, 40.0, 1.5) is None
    found, flag = flops_to_reach(overfit, 2.4)  # above the minimum: the first crossing, going down
    assert found == pytest.approx(10 * 2 ** (math.log(3 / 2.4) / math.log(3 / 2))) and not flag
