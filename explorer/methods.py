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

from explorer import baselines
from explorer.scoring import clse_scores


@dataclass
class StageInputs:
    """What a method may look at for one group at one stage (everything restricted to the alive tokens)."""

    stage: int  # 0 for the first pruning stage
    grid: tuple  # (t, h, w) of the group's full token grid
    alive: torch.Tensor  # original indices (within the group) of the tokens still alive, sorted (CPU)
    z_ref: torch.Tensor  # [n_alive, C] hidden states entering the reference layer L (None at K = 0)
    z_cur: torch.Tensor  # [n_alive, C] hidden states entering the pruning layer K
    attention: Callable  # () -> [n_alive] float32: last prompt token's head-mean attention at layer K - 1
    seed: int
    cutoff: float = 0.1
    temp: float = 0.1
    vision_scores: torch.Tensor = None  # [n_alive] scores from the vision tower, where the family gives them
    k: int = 0  # this stage's kept count for the group (DART's blocks depend on it)
    attention_at_k: Callable = None  # () -> [n_alive]: the same row at layer K itself, from the states entering K
    duplication: Callable = None  # () -> DART's (hidden, key_norms, text_hidden, text_key_norms) at K


def clse(inp):
    """The published CLSE score: spectral evolution between L and K times the last prompt token's attention."""
    return clse_scores(inp.z_ref, inp.z_cur, inp.grid, inp.cutoff, inp.temp) * inp.attention().double()


def clse_spectral(inp):
    """The paper's ablation: spectral evolution alone (not question-aware)."""
    return clse_scores(inp.z_ref, inp.z_cur, inp.grid, inp.cutoff, inp.temp)


def fastv(inp):
    return inp.attention()


def pyramiddrop(inp):
    return inp.attention_at_k().double()


def divprune(inp):
    return baselines.divprune_scores(inp.z_cur)


def dart(inp):
    hidden, key_norms, text_hidden, text_key_norms = inp.duplication()
    return baselines.dart_scores(hidden, key_norms, inp.k, text_hidden, text_key_norms)


def visionzip(inp):
    return inp.vision_scores


def random_scores(inp):
    generator = torch.Generator(device="cpu").manual_seed(inp.seed + 7919 * inp.stage)
    return torch.rand(len(inp.alive), generator=generator, device="cpu")


def uniform(inp):
    """Spatially even subsample: farthest-point order within each frame, frames taken in turn."""
    t, h, w = inp.grid
    idx = inp.alive
    frame = idx // (h * w)
    rank = torch.empty(len(idx), device="cpu")
    for f in frame.unique():
        members = (frame == f).nonzero().flatten()
        order = torch.from_numpy(frame_order(tuple((idx[members] % (h * w)).tolist()), w))
        rank[members[order]] = torch.arange(len(members), dtype=torch.float32, device="cpu") * t + f
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


@dataclass(frozen=True)
class Method:
    score: Callable  # StageInputs -> [n_alive] scores, higher = keep
    group: str  # how the page groups it: spectral, attention, diversity, vision, baseline
    description: str  # one sentence: what it looks at
    later: str = None  # the method scoring stages after the first (None: itself)
    needs: tuple = ()  # "attention" (layer K-1 exists: K >= 1), "reference" (L < K), "vision" (vision scores)


# Adding a method is one function above and one line here.
METHODS = {
    "none": None,  # the unpruned reference
    "clse": Method(clse, "spectral", "CLSE (published): spectral evolution of each token between layers L and K "
                   "x the last prompt token's attention at K-1; attention at later stages", "fastv",
                   ("attention", "reference")),
    "clse_spectral": Method(clse_spectral, "spectral", "CLSE's spectral evolution alone (the paper's ablation; "
                            "not question-aware); attention at later stages", "fastv", ("reference",)),
    "fastv": Method(fastv, "attention", "FastV: the last prompt token's head-mean attention at layer K-1",
                    needs=("attention",)),
    "pyramiddrop": Method(pyramiddrop, "attention", "PyramidDrop: the last prompt token's head-mean attention at "
                          "the pruning layer K itself (from the states entering K)", needs=("attention",)),
    "divprune": Method(divprune, "diversity", "DivPrune: a max-min diverse subset of the visual tokens' "
                       "features (cosine distance), greedy", "fastv"),
    "dart": Method(dart, "diversity", "DART: pivot tokens (largest key norms) and the tokens least duplicated "
                   "with them (cosine)", "fastv", ("attention",)),
    "visionzip": Method(visionzip, "vision", "VisionZip (dominant tokens): the vision encoder's [CLS] attention "
                        "to each patch, before the decoder", "fastv", ("vision",)),
    "random": Method(random_scores, "baseline", "random tokens (seeded)"),
    "uniform": Method(uniform, "baseline", "a spatially even subsample of the grid"),
}
GROUPS = {"spectral": "spectral", "attention": "attention", "diversity": "diversity / similarity",
          "vision": "vision-side", "baseline": "baselines"}
DESCRIPTIONS = {"none": "unpruned reference", **{n: m.description for n, m in METHODS.items() if m}}

# Old names still accepted: name -> (new name, the note the record carries)
ALIASES = {"clse_hybrid": ("clse", "'clse_hybrid' is now called 'clse' (spectral evolution x attention, the "
                                   "published score); the spectral-only ablation is 'clse_spectral'")}


def select_top(scores, k):
    """Positions (into scores) of the k highest scores, ties to the earlier token, sorted ascending."""
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN")
    order = torch.sort(scores, descending=True, stable=True).indices
    return torch.sort(order[:k]).values
