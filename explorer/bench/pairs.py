"""Ratios that are ratios: every timed repeat runs the unpruned model and one pruned variant back to back on the
same encoded input (the pair's order alternated between repeats, the variants' order rotated), and each pair
gives its own ratio pruned / unpruned. A machine whose speed drifts (other processes, a busy core, frequency
changes) moves both runs of a pair alike, so the ratio survives what an absolute time does not; the table then
reports the median ratio over the repeats and its spread (min - max), and a figure whose spread is wider than
the stated tolerance is printed as a spread, never as a bare number.

Used by python -m explorer.bench (explorer/bench/engine.py) and its paper suite (explorer/bench/paper.py).
"""

import contextlib
import time
from dataclasses import dataclass, field

import numpy as np

from explorer.core import engine
from explorer.core.engine import run

TOLERANCE = 0.10  # a figure is steady when every repeat's ratio lies within +-10% of the median


@dataclass
class Pairs:
    """The records of one variant's timed pairs, repeat by repeat."""

    label: str
    unpruned: list = field(default_factory=list)  # Record per repeat
    pruned: list = field(default_factory=list)  # Record per repeat, the same repeat's pair as unpruned[i]

    def ratios(self, value):
        """Per repeat, value(pruned record) / value(unpruned record of the same pair)."""
        return [value(p) / value(u) for p, u in zip(self.pruned, self.unpruned)]

    def values(self, value, which="pruned"):
        return [value(r) for r in getattr(self, which)]


def run_pairs(model, processor, encoded, variants, repeats, progress=None):
    """variants: [(label, method, Settings)] on one encoded input. Returns {label: Pairs}: per repeat and
    variant, the unpruned run and the variant's run back to back; even repeats run unpruned first, odd ones
    pruned first; the variants' order rotates by one each repeat."""
    out = {label: Pairs(label) for label, _, _ in variants}
    for repeat in range(repeats):
        shift = repeat % len(variants)
        for label, method, settings in variants[shift:] + variants[:shift]:
            if progress:
                progress(f"{label}, repeat {repeat + 1} of {repeats}")
            order = ("none", method) if repeat % 2 == 0 else (method, "none")
            records = {name: run(model, processor, encoded, name, settings) for name in order}
            out[label].unpruned.append(records["none"])
            out[label].pruned.append(records[method])
    return out


@contextlib.contextmanager
def clock(kind):
    """kind "wall": the engine's own clock (wall time after the device finished its work). "cpu": the CPU time
    of this process, all its threads (time.process_time), for a model on the CPU of a shared machine: other
    processes' load does not count in it; with one thread on an idle machine it equals wall time, while with
    several threads it also counts their spin-waiting, so use it with --threads 1."""
    if kind == "wall":
        yield
        return
    if kind != "cpu":
        raise ValueError(f"clock must be 'wall' or 'cpu', got {kind!r}")
    wall = engine.clock
    engine.clock = lambda device: time.process_time()
    try:
        yield
    finally:
        engine.clock = wall


def median(values):
    return float(np.median(values))


def spread(values):
    """(median, min, max)."""
    return median(values), float(min(values)), float(max(values))


def steady(values, tolerance=TOLERANCE):
    """Whether every value lies within +-tolerance of their median."""
    mid = median(values)
    return bool(mid) and max(abs(v / mid - 1) for v in values) <= tolerance + 1e-12


def cell(values, digits=3, tolerance=TOLERANCE):
    """'0.452 (0.440-0.461)': the median and its spread, when steady; otherwise no bare number: 'unsteady:
    0.38-0.61, median 0.45' (a spread beyond +-tolerance of the median). One value: the value alone."""
    mid, low, high = spread(values)
    if len(values) == 1:
        return f"{mid:.{digits}f}"
    if steady(values, tolerance):
        return f"{mid:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"
    return f"unsteady: {low:.{digits}f}-{high:.{digits}f}, median {mid:.{digits}f}"
