"""Spread over seeds: mean ± sample standard deviation, and the paired t-interval of a difference.

No scipy: the two-sided 95% critical values of Student's t come from a table (exact to 3 decimals).
"""

from __future__ import annotations

import math
from statistics import fmean, stdev

# df -> t_{0.975, df}; beyond the table the value is within 0.02 of the normal's 1.960.
T_975 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    11: 2.201,
    12: 2.179,
    13: 2.160,
    14: 2.145,
    15: 2.131,
    16: 2.120,
    17: 2.110,
    18: 2.101,
    19: 2.093,
    20: 2.086,
    21: 2.080,
    22: 2.074,
    23: 2.069,
    24: 2.064,
    25: 2.060,
    26: 2.056,
    27: 2.052,
    28: 2.048,
    29: 2.045,
    30: 2.042,
    40: 2.021,
    60: 2.000,
    120: 1.980,
}


def t_critical(df: int) -> float:
    """t_{0.975, df}: the largest tabled df not above ``df`` (conservative between table rows)."""
    if df < 1:
        raise ValueError("a t-interval needs at least two paired values")
    return T_975[max(d for d in T_975 if d <= df)]


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return fmean(values), (stdev(values) if len(values) > 1 else 0.0)


def paired_interval(a: list[float], b: list[float]) -> tuple[float, float, float] | None:
    """Mean of a - b over pairs and its 95% t-interval (low, high); None for fewer than two
    pairs."""
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    if len(diffs) < 2:
        return None
    mean, sd = mean_std(diffs)
    half = t_critical(len(diffs) - 1) * sd / math.sqrt(len(diffs))
    return mean, mean - half, mean + half
