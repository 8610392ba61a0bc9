"""Pruning methods, registered by name. A method maps what is known at a pruning stage to one score per alive
visual token of one group (higher = keep). Adding a method is one function and one line in METHODS (its
group, label, colour, description, what scores its later stages and the inputs it reads, by name: `needs`, from
explorer/methods/inputs.py's table, where a new input is one function and one line).

Selection is shared by every method (`select_top`): the k highest scores, ties broken towards the earlier
token, returned sorted.
"""

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from explorer.methods import baselines, schedules
from explorer.methods.inputs import StageInputs, check_needs  # noqa: F401 (StageInputs: what `score` takes)
from explorer.methods.schedules import Official
from explorer.methods.scoring import clse_scores
from models.base import BadInput


def clse(inp):
    """The published CLSE score: spectral evolution between L and K times the last prompt token's attention."""
    return clse_scores(inp.z_ref, inp.z_cur, inp.grid, inp.cutoff, inp.temp) * inp.attention.double()


def clse_spectral(inp):
    """The paper's ablation: spectral evolution alone (not question-aware)."""
    return clse_scores(inp.z_ref, inp.z_cur, inp.grid, inp.cutoff, inp.temp)


def fastv(inp):
    return inp.attention


def pyramiddrop(inp):
    return inp.attention_at_k.double()


def divprune(inp):
    return baselines.divprune_scores(inp.z_cur)


def dart(inp):
    """Officially, the pivots are visited in the order of a Python set of their sequence positions."""
    hidden, key_norms, text_hidden, text_key_norms = inp.duplication
    if not inp.official:
        return baselines.dart_scores(hidden, key_norms, inp.k, text_hidden, text_key_norms)
    return baselines.dart_scores(hidden, key_norms, inp.k, text_hidden, text_key_norms,
                                 positions=inp.positions, text_positions=inp.text_positions)


def visionzip(inp):
    return inp.vision


def vispruner(inp):
    """VisPruner: important patches by the tower's [CLS] attention, then diverse ones from the rest (near-duplicates
    by cosine on the tower's features entering the projector; the decoder's inputs where the family gives none)."""
    features = inp.vision_features if inp.vision_features is not None else inp.z_cur
    return baselines.vispruner_scores(inp.vision, features, inp.k)


def sparsevlm(inp):
    return inp.raters.double()


# ------------------------------------------------------------------------------------------ merges
# A method that merges (its official schedule only): merge(inputs, ranked scores, k) -> (picks, merges), picks
# the local indices kept by score, merges [(centre, [absorbed], vector)]: the pruned token whose slot (and
# position id) the merged token takes, every original it stands for, and its decoder input [D].


def visionzip_merge(inp, ranked, k):
    """VisionZip's dominant + contextual tokens: the top k - c patches by the [CLS] attention, then c contextual
    tokens (schedules.visionzip_contextual) from the rest: each a target patch plus the mean of the patches
    whose keys are most similar to its own, in the tower's feature space, through the family's projector."""
    contextual = schedules.visionzip_contextual(k)
    picks = select_top(ranked, k - contextual)
    if not contextual or inp.vision_keys is None or inp.project is None:
        return select_top(ranked, k), []
    remaining = sorted(set(range(len(ranked))) - set(picks.tolist()))
    merges = []
    for target, assigned in baselines.visionzip_contextual(inp.vision_keys, remaining, contextual):
        features = inp.vision_features[target] + (inp.vision_features[assigned].mean(dim=0) if assigned else 0)
        merges.append((target, [target, *assigned], inp.project(features[None])[0]))
    return picks, merges


def downsample_merge(inp, ranked, k):
    """Downsampling's pooled tokens: every block of each frame's adaptive pooling (baselines.pooling_blocks) is
    one merged token, the mean of its members' states entering the stage's layer (at K = 0 the decoder inputs,
    the projected visual features), at its centre's slot and position id; nothing is kept by score. Inverted
    (the ranked scores do not put the centres first) it pools nothing and keeps the k lowest-ranked tokens."""
    blocks = baselines.pooling_blocks(inp.grid, downsample_grid(inp))
    centres = torch.tensor(sorted(c for c, _ in blocks), dtype=torch.long, device="cpu")
    whole = len(inp.alive) == inp.grid[0] * inp.grid[1] * inp.grid[2]
    if not whole or not torch.equal(select_top(ranked, len(blocks)), centres):
        return select_top(ranked, k), []
    z = inp.z_cur
    merges = [(centre, members, z[torch.tensor(members, device=z.device)].float().mean(dim=0).to(z.dtype))
              for centre, members in blocks]
    return torch.empty(0, dtype=torch.long, device="cpu"), merges


def sparsevlm_merge(inp, ranked, k):
    """SparseVLM's recycling: of the tokens this stage prunes, the highest-scored 30% (+1) are clustered by
    density peaks (DPC-kNN) into int(n / 10) + 1 merged tokens, each the mean of its cluster's hidden states
    entering the stage's layer; the rest are dropped."""
    picks = select_top(ranked, k)
    pruned = torch.tensor(sorted(set(range(len(ranked))) - set(picks.tolist())), dtype=torch.long, device="cpu")
    if not len(pruned):
        return picks, []
    candidates = pruned[select_top(ranked[pruned], schedules.recycling_candidates(len(pruned)))]
    clusters = baselines.dpc_knn_clusters(inp.z_cur[candidates.to(inp.z_cur.device)].float(),
                                          schedules.recycled_count(len(pruned)))
    merges = []
    for centre, members in clusters:
        rows = candidates[members]
        merges.append((int(candidates[centre]), rows.tolist(),
                       inp.z_cur[rows.to(inp.z_cur.device)].float().mean(dim=0).to(inp.z_cur.dtype)))
    return picks, merges


def downsample_grid(inp):
    """The pooled grid (oh, ow) per frame for this stage's count k: in the official schedule k is t x oh x ow
    exactly (schedules.downsample), so its factorisation; otherwise the grid for at most k // t per frame."""
    t, h, w = inp.grid
    per_frame = max(1, inp.k // t)
    exact = baselines.grid_of(h, w, per_frame) if inp.official and inp.k % t == 0 else None
    return exact or baselines.pooled_grid(h, w, per_frame)


def downsample(inp):
    """Downsampling's order: the centres of the pooled blocks first, then the tokens farthest from them. Its
    official schedule pools (downsample_merge); elsewhere (controlled, paper) it keeps the centres unpooled."""
    t, h, w = inp.grid
    order = baselines.downsample_order(inp.grid, downsample_grid(inp))
    return baselines.order_scores(order)[inp.alive]


def evs(inp):
    """vLLM's EVS score on the states entering the layer (at K = 0, the video embeddings vLLM scores)."""
    t, h, w = inp.grid
    if len(inp.alive) != t * h * w:
        raise ValueError("EVS scores a whole clip (its later stages are FastV's)")
    return baselines.evs_dissimilarity(inp.z_cur, inp.grid)


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
    """A registered method. Everything the explorer needs to know about it is here: the page's menus, colours
    and help, the stages' scorer and what the method must see come from this line only."""

    score: Callable = None  # StageInputs -> [n_alive] scores, higher = keep; None: never prunes (the reference)
    group: str = "baseline"  # how the menus group it; GROUPS names the known groups
    label: str = ""  # a short name for legends and menus
    description: str = ""  # one sentence: what it looks at
    color: str = "#7b4173"  # its colour in every figure
    later: str = None  # the method scoring the stages after the first (None: itself)
    needs: tuple = ()  # the inputs its score and merge read, by name (explorer/methods/inputs.py's INPUTS): the
    # engine computes those only, and refuses a model or layer that cannot give one
    official: Official = None  # None: ours (no official code), one stage at the family's K, its count solved
    merge: Callable = None  # official mode: keep some pruned tokens as merged ones (see the merges above)

    def __post_init__(self):
        object.__setattr__(self, "needs", check_needs(self.needs, f"method {self.label or self.description!r}"))
        if self.official is None:  # its refusals name it
            object.__setattr__(self, "official", Official(schedules.one_stage(name=self.label or "this method"),
                                                          about="ours: no official code; one stage at the family's "
                                                                "K, its count solved to the budget's real average"))

    @property
    def prunes(self):
        return self.score is not None


# Adding a method is one function above and one line here.
METHODS = {
    "none": Method(group="reference", label="unpruned", description="unpruned reference", color="#7f7f7f",
                   official=Official(schedules.single(), about="unpruned: every token at every layer")),
    "clse": Method(clse, group="spectral", label="CLSE", color="#9467bd", later="fastv",
                   needs=("z_ref", "z_cur", "attention"),
                   official=Official(schedules.paper_for_images, about="images: the paper's three stages (its keep "
                                     "table), spectral x attention at the first, attention after; video: one stage, "
                                     "L = 2, K = 3; the KV policy of its code per family (LLaVA images trim the "
                                     "early layers' cache); free parameter: one factor scaling the table's counts "
                                     "(video: the count after K), solved to the budget's real average"),
                   description="CLSE (published): spectral evolution of each token between layers L and K x the "
                               "last prompt token's attention at K-1; attention at later stages"),
    "clse_spectral": Method(clse_spectral, group="spectral", label="CLSE spectral", color="#1f77b4", later="fastv",
                            needs=("z_ref", "z_cur"), official=Official(schedules.paper_for_images, about="the paper's "
                                                                   "ablation, in CLSE's schedule (its table "
                                                                   "scaled to the budget's real average)"),
                            description="CLSE's spectral evolution alone (the paper's ablation; not "
                                        "question-aware); attention at later stages"),
    "fastv": Method(fastv, group="attention", label="FastV", color="#ff7f0e", needs=("attention",),
                    official=Official(schedules.one_stage(2, name="FastV"), early_kv="keep", about="one stage at "
                                      "K = 2 (its paper and inference scripts), earlier layers keep their KV cache; "
                                      "free parameter: the count after K, solved to the budget's real average (K "
                                      "moved earlier only where K = 2 cannot reach it, a shallow decoder); original "
                                      "position ids; one ranking over the image's whole span (joint)",
                                      rank="joint"),
                    description="FastV: the last prompt token's head-mean attention at layer K-1"),
    "pyramiddrop": Method(pyramiddrop, group="attention", label="PyramidDrop", color="#d62728",
                          needs=("attention", "attention_at_k"),  # attention: refused as FastV is (K >= 1 and
                          # a full-attention layer before K), though its score reads layer K's row alone
                          official=Official(schedules.pyramid, early_kv="keep", about="stages entering layers 8 / 16 / "
                                            "24 of 32 (depth-scaled), int(N x lambda^s) kept; free parameter: "
                                            "lambda, solved so that the real average matches the budget; where 8 / "
                                            "16 / 24 cannot, 2 / 8 / 16, then 2 / 4 / 6 / 8 (its author's rule, issue "
                                            "#29); else refused; the shortened sequence renumbered after each drop; "
                                            "one ranking over the image's whole span (joint)",
                                            positions="renumber", rank="joint"),
                          description="PyramidDrop: the last prompt token's head-mean attention at the pruning "
                                      "layer K itself (from the states entering K)"),
    "sparsevlm": Method(sparsevlm, group="attention", label="SparseVLM", color="#393b79", needs=("raters", "z_cur"),
                        merge=sparsevlm_merge,
                        official=Official(schedules.sparsevlm, early_kv="keep", about="stages entering layers 3 / "
                                          "7 / 16 of 32 (after 2 / 6 / 15; depth-scaled), its keep list, pruned "
                                          "tokens recycled into merged ones; free parameter: one factor scaling the "
                                          "nearest keep list, solved to the budget's real average (its lists at "
                                          "192 / 128 / 96 / 64 of 576 on 32 layers reach it as published); the "
                                          "shortened sequence renumbered after each drop; one ranking over the "
                                          "image's whole span (joint)", positions="renumber", rank="joint"),
                        description="SparseVLM: the attention of the question's rater tokens (those most relevant "
                                    "to the image) at layer K-1, averaged over heads and raters"),
    "divprune": Method(divprune, group="diversity", label="DivPrune", color="#e377c2", later="fastv", needs=("z_cur",),
                       official=Official(schedules.before_decoder, about="before the decoder (K = 0), on the "
                                         "projected visual features; free parameter: the count, the budget itself "
                                         "(every layer sees the kept tokens); the shorter sequence numbered 0.. "
                                         "(its llava_arch.py); each grid its quota", positions="renumber"),
                       description="DivPrune: a max-min diverse subset of the visual tokens' features (cosine "
                                   "distance), greedy"),
    "dart": Method(dart, group="diversity", label="DART", color="#bcbd22", later="fastv",
                   needs=("duplication", "text_positions"),
                   official=Official(schedules.one_stage(2, count=schedules.dart_count, name="DART"), early_kv="keep",
                                     about="K = 2, 4 + 8 (k // 8) tokens kept, pivots visited in its Python-set "
                                           "order, earlier layers keep their KV cache; free parameter: k, solved "
                                           "so that the real average is the budget to its 8-token blocks (K moved "
                                           "earlier only where K = 2 cannot reach it); original position ids; its "
                                           "LLaVA-NeXT code runs one pass over the image's whole span, base and "
                                           "tiles together (modeling_llama_self.py); ours runs its pivots per grid "
                                           "(per_grid: its scores are an order within one pass, not comparable "
                                           "across grids; a departure)"),
                   description="DART: pivot tokens (largest key norms) and the tokens least duplicated with them "
                               "(cosine)"),
    "visionzip": Method(visionzip, group="vision", label="VisionZip", color="#17becf", later="fastv",
                        needs=("vision", "vision_keys", "vision_features", "project"), merge=visionzip_merge,
                        official=Official(schedules.before_decoder, about="before the decoder (K = 0): dominant "
                                          "patches by the [CLS] attention plus contextual merged tokens (10 of 64); "
                                          "free parameter: the count (dominant + contextual), the budget itself; "
                                          "the shorter sequence numbered 0.. (its llava_arch.py); each crop its "
                                          "quota (it prunes inside the vision tower)", positions="renumber"),
                        description="VisionZip (dominant tokens): the vision encoder's [CLS] attention to each "
                                    "patch, before the decoder"),
    "vispruner": Method(vispruner, group="vision", label="VisPruner", color="#ce6dbd", later="fastv",
                        needs=("vision", "vision_features", "z_cur"),
                        official=Official(schedules.before_decoder, about="before the decoder (K = 0): int(k / 2) "
                                          "important patches by the [CLS] attention of the tower's feature layer, "
                                          "then k - int(k / 2) diverse ones from the rest, near-duplicates (cosine "
                                          "of that layer's features) removed 8 at a time; important ratio 0.5, its "
                                          "loader's default; free parameter: the count k, the budget itself; the "
                                          "shorter sequence numbered 0.. (its LLaVA fork hands the decoder fewer "
                                          "image features); each crop its quota", positions="renumber"),
                        description="VisPruner: the vision encoder's [CLS] attention for half the budget, the rest "
                                    "diverse tokens (near-duplicates removed by cosine similarity)"),
    "evs": Method(evs, group="diversity", label="EVS", color="#843c39", later="fastv", needs=("z_cur",),
                  official=Official(schedules.evs, inputs=("video",), about="vLLM's Efficient Video Sampling "
                                    "(vllm/multimodal/evs.py), before the decoder (K = 0): frame 0 whole, then the "
                                    "tokens least like the same place in the previous frame, max(tokens per frame, "
                                    "int(total x (1 - q))) kept, q printed as vLLM's --video-pruning-rate; free "
                                    "parameter: q, from the budget (more where the first frame alone is more); "
                                    "video only",
                                    refusal="evs (vLLM's Efficient Video Sampling) prunes video only: it compares "
                                            "each token with the same place in the previous frame, and an image has "
                                            "no previous frame; give a video, or choose another method"),
                  description="EVS (vLLM's Efficient Video Sampling): 1 - cosine similarity of each video token with "
                              "the same place in the previous frame, the first frame kept whole; video only"),
    "downsample": Method(downsample, label="downsample", color="#637939", later="fastv", needs=("z_cur",),
                         merge=downsample_merge,
                         official=Official(schedules.downsample, about="before the decoder (K = 0): each frame's "
                                           "grid average-pooled to the budget (adaptive where the sizes do not "
                                           "divide), each pooled token the mean of its block at the block's centre; "
                                           "free parameter: the pooled grid, the largest of the frame's aspect within "
                                           "the budget"),
                         description="downsample: average pooling of each frame's grid to the budget (controlled: "
                                     "the pooled blocks' centres, nothing pooled)"),
    "random": Method(random_scores, label="random", color="#2ca02c", description="random tokens (seeded)"),
    "uniform": Method(uniform, label="uniform", color="#8c564b", description="a spatially even subsample of the grid"),
}
GROUPS = {"spectral": "spectral", "attention": "attention", "diversity": "diversity / similarity",
                "vision": "vision-side", "baseline": "baselines", "reference": "reference"}

# Old names still accepted: name -> (new name, the note the record carries)
ALIASES = {"clse_hybrid": ("clse", "'clse_hybrid' is now called 'clse' (spectral evolution x attention, the "
                                   "published score); the spectral-only ablation is 'clse_spectral'")}


def pruning_methods():
    return [name for name, method in METHODS.items() if method.prunes]


def groups():
    """[(group label, [method names])] of the pruning methods, groups in the order their first method is
    registered (a method of a new group shows under the group's own name)."""
    out = {}
    for name in pruning_methods():
        out.setdefault(METHODS[name].group, []).append(name)
    return [(GROUPS.get(group, group), names) for group, names in out.items()]


def applies_to(name, kind):
    """Whether a method prunes this kind of input ("image" / "video"); the planner refuses the others with the
    method's sentence (its Official's `inputs` and `refusal`: EVS is video only)."""
    return kind in METHODS[name].official.inputs


def check_method(name):
    """The name of a registered method, or BadInput naming the known ones."""
    if not isinstance(name, str) or name not in METHODS:
        raise BadInput(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return name


def select_top(scores, k):
    """Positions (into scores) of the k highest scores, ties to the earlier token, sorted ascending."""
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN")
    order = torch.sort(scores, descending=True, stable=True).indices
    return torch.sort(order[:k]).values
