"""Statistics shared by one comparison's analysis (comparison.py) and the benchmark report (eval/report.py):
ranks, percentiles, Spearman's rank correlation, and the third of the image a place falls in. numpy only."""

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
