"""Pruning methods, registered by name. A method maps what is known at a pruning stage to one score per alive
visual token of one group (higher = keep). Adding a method is one function and one line in METHODS.

Selection is shared by every method (`select_top`): the k highest scores, ties broken towards the earlier
token, returned sorted.
"""

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from explorer.scoring import clse_scores


@dataclass
class StageInputs:
    """What a method may look at for one group at one stage (everything restricted to the alive tokens)."""

    stage: int  # 0 for the first pruning stage
    grid: tuple  # (t, h, w) of the group's full token grid
    alive: torch.Tensor  # original indices (within the group) of the tokens still alive, sorted
    z_ref: torch.Tensor  # [n_alive, C] hidden states entering the reference layer L
    z_cur: torch.Tensor  # [n_alive, C] hidden states entering the pruning layer K
    attention: Callable  # () -> [n_alive]: last prompt token's head-mean attention at layer K - 1
    seed: int
    cutoff: float = 0.1
    temp: float = 0.1


def clse(inp):
    # The spectrum needs the full grid: only the first stage is spectral; later ones use attention (the paper).
    if inp.stage > 0:
        return inp.attention()
    return clse_scores(inp.z_ref, inp.z_cur, inp.grid, inp.cutoff, inp.temp)


def clse_hybrid(inp):
    if inp.stage > 0:
        return inp.attention()
    return clse_scores(inp.z_ref, inp.z_cur, inp.grid, inp.cutoff, inp.temp) * inp.attention()


def fastv(inp):
    return inp.attention()


def random_scores(inp):
    generator = torch.Generator().manual_seed(inp.seed + 7919 * inp.stage)
    return torch.rand(len(inp.alive), generator=generator)


def uniform(inp):
    """Spatially even subsample: farthest-point order within each frame, frames taken in turn."""
    t, h, w = inp.grid
    idx = inp.alive
    frame = idx // (h * w)
    rank = torch.empty(len(idx))
    for f in frame.unique():
        members = (frame == f).nonzero().flatten()
        order = torch.from_numpy(frame_order(tuple((idx[members] % (h * w)).tolist()), w))
        rank[members[order]] = torch.arange(len(members), dtype=torch.float32) * t + f
    return 1.0 - rank / max(len(idx) * t, 1)


@functools.lru_cache(maxsize=256)
def frame_order(cells, w):
    """Farthest-point order of a frame's alive cells (raster indices); cached: at the first stage every
    frame of a grid has the same cells, and the diagnostics score every method on every request."""
    cells = np.array(cells)
    return farthest_point_order(np.stack([cells // w, cells % w], axis=1).astype(float))


def farthest_point_order(coords):
    """Greedy farthest-point ordering of [n, 2] points, starting from the point nearest the centre
    (deterministic: the first of equals wins)."""
    n = len(coords)
    order = np.empty(n, dtype=np.int64)
    current = int(((coords - coords.mean(0)) ** 2).sum(1).argmin())
    nearest = np.full(n, np.inf)
    for i in range(n):
        order[i] = current
        nearest = np.minimum(nearest, ((coords - coords[current]) ** 2).sum(1))
        current = int(nearest.argmax())
    return order


METHODS = {
    "none": None,  # the unpruned reference
    "clse": clse,
    "clse_hybrid": clse_hybrid,
    "fastv": fastv,
    "random": random_scores,
    "uniform": uniform,
}

DESCRIPTIONS = {
    "none": "unpruned reference",
    "clse": "CLSE: spectral evolution between layers L and K (first stage), attention after",
    "clse_hybrid": "CLSE x attention (first stage), attention after",
    "fastv": "FastV: last prompt token's head-mean attention at layer K-1",
    "random": "random (seeded)",
    "uniform": "spatially even subsample of the grid",
}


# Old names still accepted: name -> (new name, the note the record carries)
ALIASES = {"clse_hybrid": ("clse", "'clse_hybrid' is now called 'clse' (spectral evolution x attention, the "
                                   "published score); the spectral-only ablation is 'clse_spectral'")}


def check_method(name):
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return name


def select_top(scores, k):
    """Positions (into scores) of the k highest scores, ties to the earlier token, sorted ascending."""
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN")
    order = torch.sort(scores, descending=True, stable=True).indices
    return torch.sort(order[:k]).values
