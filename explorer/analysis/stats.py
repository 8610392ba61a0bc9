"""Statistics shared by one comparison's analysis (comparison.py), the embedded model's evaluation
(eval/embedded.py) and the benchmark report (analysis/report.py): ranks, percentiles, Spearman's rank correlation,
the third of the image a place falls in, and for accuracies compared on the same questions a 95% Wilson interval
of a proportion, the exact McNemar test and Newcombe's interval of a paired difference. numpy and the standard
library only."""

import math
from statistics import NormalDist

import numpy as np

THIRDS = ("top", "middle", "bottom")


def third_of(fraction):
    """"top", "middle" or "bottom": the third of the image (from the top) at this fraction of its height."""
    return THIRDS[0] if fraction < 1 / 3 else THIRDS[1] if fraction < 2 / 3 else THIRDS[2]


def average_ranks(values):
    """1-based ascending ranks, ties averaged (as Spearman needs)."""
    _, inverse, counts = np.unique(np.asarray(values, dtype=float), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def percentiles(values):
    """Scores -> 0..100 within the vector (100 = highest, ties share a value); NaN stays NaN."""
    values = np.asarray(values, dtype=float)
    out = np.full(values.shape, np.nan)
    valid = ~np.isnan(values)
    n = int(valid.sum())
    if n == 1:
        out[valid] = 100.0
    elif n > 1:
        out[valid] = (average_ranks(values[valid]) - 1) / (n - 1) * 100
    return out


def descending_ranks(values):
    """1 = highest score, ties to the earlier token (the selection's order); NaN stays NaN."""
    values = np.asarray(values, dtype=float)
    ranks = np.full(values.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(values))
    order = valid[np.argsort(-values[valid], kind="stable")]
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks


def rank_correlation(scores, positions):
    """Spearman's rho (Pearson correlation of ranks, ties averaged), numpy only. Pairs with a None/NaN are
    dropped; NaN if fewer than 2 pairs remain or either side is constant."""
    x = np.array([np.nan if v is None else v for v in scores], dtype=float)
    y = np.array([np.nan if v is None else v for v in positions], dtype=float)
    valid = ~(np.isnan(x) | np.isnan(y))
    if valid.sum() < 2:
        return float("nan")
    rx, ry = average_ranks(x[valid]), average_ranks(y[valid])
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = np.sqrt((rx**2).sum() * (ry**2).sum())
    return float((rx * ry).sum() / denominator) if denominator > 0 else float("nan")


# ------------------------------------------------------------------------------------------ accuracies


def normal_quantile(level):
    """z of a two-sided interval at this level (1.959964 at 0.95)."""
    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson_interval(successes, n, level=0.95):
    """Wilson's score interval [low, high] of a proportion successes / n (None when n == 0). Unlike p +- z se it
    stays inside [0, 1] and does not collapse to a point at 0 or n successes (8 of 10: 0.490 to 0.943)."""
    if n <= 0:
        return None
    z = normal_quantile(level)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends where the data sit at a bound
    high = 1.0 if successes == n else min(1.0, centre + half)
    return [low, high]


def mcnemar_exact(only_first, only_second):
    """Two-sided exact McNemar p-value: the discordant pairs (questions only the first got right, only the second
    got right) as a binomial with p = 1/2; twice the smaller tail, at most 1 (1 without discordant pairs)."""
    n = only_first + only_second
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_first, only_second) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired_difference(first, second, level=0.95):
    """Two methods' correctness on the same questions (two equal-length sequences of bools): the accuracy of
    each, the difference second - first with Newcombe's hybrid score interval for paired proportions (Newcombe
    1998, Statistics in Medicine 17: 2635-2650, his method 10: the two Wilson intervals combined with the
    correlation phi of the 2 x 2 table, phi's numerator ad - bc shrunk by n / 2 towards 0 when positive, 0
    when a margin is empty) and the exact McNemar p-value on the discordant pairs."""
    if len(first) != len(second):
        raise ValueError("paired_difference needs the same questions for both methods")
    n = len(first)
    if n == 0:
        return None
    a = sum(1 for x, y in zip(first, second) if x and y)  # both right
    b = sum(1 for x, y in zip(first, second) if x and not y)  # only the first right
    c = sum(1 for x, y in zip(first, second) if y and not x)  # only the second right
    d = n - a - b - c
    p_first, p_second = (a + b) / n, (a + c) / n
    difference = p_second - p_first
    low_first, high_first = wilson_interval(a + b, n, level)
    low_second, high_second = wilson_interval(a + c, n, level)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    numerator = a * d - b * c
    numerator = numerator - n / 2 if numerator > n / 2 else numerator if numerator < 0 else 0.0
    phi = numerator / math.sqrt(margins) if margins else 0.0
    down_second, up_first = p_second - low_second, high_first - p_first
    up_second, down_first = high_second - p_second, p_first - low_first
    low = difference - math.sqrt(max(0.0, down_second ** 2 - 2 * phi * down_second * up_first + up_first ** 2))
    high = difference + math.sqrt(max(0.0, up_second ** 2 - 2 * phi * up_second * down_first + down_first ** 2))
    return {"questions": n, "first": p_first, "second": p_second, "difference": difference,
            "interval": [max(-1.0, low), min(1.0, high)], "only_first": b, "only_second": c,
            "p": mcnemar_exact(b, c)}


def interval_text(value, interval, digits=3):
    """"0.920 [0.884, 0.945]"; "-" without a value."""
    if value is None:
        return "-"
    if not interval:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def difference_text(paired, digits=3):
    """"+0.023 [-0.010, 0.057], p = 0.17" for a paired_difference; "-" without one."""
    if not paired:
        return "-"
    low, high = paired["interval"]
    return (f"{paired['difference']:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}], "
            f"p = {paired['p']:.2g}")
