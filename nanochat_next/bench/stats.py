"""The statistics an ablation is judged by: seed noise first, then a difference and its p-value.

- ``describe(values)``: n, mean, sample standard deviation, and the 95% confidence interval of the mean,
  ``mean +- t(0.975, n-1) x std / sqrt(n)`` (Student's t: with 3-5 seeds the normal 1.96 would be too narrow).
- ``compare(variant, baseline, paired)``: the mean difference and a two-sided p-value: Welch's t-test
  (unequal variances) for independent runs, or the paired t-test when both ran the same seeds (each seed's
  data order and initialisation cancel out, which is the stronger test).
- The acceptance rule (modded-nanogpt's): a change is an improvement only if it moves the metric the right
  way with p < ``ACCEPT_P`` = 0.01, over several seeds. One lucky seed proves nothing.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

ACCEPT_P = 0.01


def describe(values: Sequence[float]) -> dict:
    n = len(values)
    mean = statistics.fmean(values) if n else math.nan
    std = statistics.stdev(values) if n > 1 else math.nan
    from scipy import stats as scipy_stats  # imported here: scipy.stats costs ~1.3 s, every CLI start paid it

    half = scipy_stats.t.ppf(0.975, n - 1) * std / math.sqrt(n) if n > 1 else math.nan
    return {"n": n, "mean": mean, "std": std, "ci95": [mean - half, mean + half]}


def compare(variant: Sequence[float], baseline: Sequence[float], paired: bool = False) -> dict:
    """Mean difference (variant - baseline) and the two-sided p-value of the t-test named in ``test``."""
    diff = statistics.fmean(variant) - statistics.fmean(baseline)
    if len(variant) < 2 or len(baseline) < 2:
        return {"difference": diff, "p_value": None, "test": "none (fewer than 2 runs a side)"}
    from scipy import stats as scipy_stats

    if paired:
        if len(variant) != len(baseline):
            raise ValueError("a paired test needs the same seeds on both sides")
        result, test = scipy_stats.ttest_rel(variant, baseline), "paired t-test (same seeds)"
    else:
        result, test = scipy_stats.ttest_ind(variant, baseline, equal_var=False), "Welch's t-test"
    p = float(result.pvalue)
    return {"difference": diff, "p_value": None if math.isnan(p) else p, "test": test}


def verdict(comparison: dict, lower_is_better: bool = True) -> str:
    """'improvement', 'regression' or 'no significant difference', by the acceptance rule."""
    p, diff = comparison["p_value"], comparison["difference"]
    if p is None or p >= ACCEPT_P or diff == 0:
        return "no significant difference"
    better = diff < 0 if lower_is_better else diff > 0
    return "improvement" if better else "regression"
