"""Where and how much each method prunes: the schedule maths the planner (explorer/core/plan.py) calls. A
schedule is a function of a `Layout` (the decoder's depth, every group's token count and requested budget, the
family's data) that returns the stages [(layer, [kept count per group])] and the notes the record carries.

Three kinds of schedule:
- the controlled one (`single`): one stage at the family's K (or the request's), the requested count: the same
  for every method, so a comparison isolates the score;
- the paper's (`paper`): CLSE's three stages with the family's keep table;
- each method's official one, named in its registry line (`Method(official=Official(...))`): the layers, counts
  and KV policy its authors' code uses. Nothing here names a method; the registry binds them.
"""

import math
from dataclasses import dataclass
from typing import Callable

from explorer.methods import baselines
from models.base import BadInput

GENERIC_LAYERS = (1, 0.36, 0.67)  # the paper's stages for a decoder of another depth: 1, round(0.36 n), round(0.67 n)


@dataclass(frozen=True)
class Layout:
    """What a schedule may know about one request."""

    num_layers: int
    counts: list  # N per group
    nominal: list  # the requested budget per group, as a count
    keep: object  # the request's keep (a count or a ratio), for tables keyed by it
    paper: dict  # the family's PAPER_SCHEDULE
    defaults: dict  # the family's DEFAULTS for this input kind
    kind: str  # "image" or "video"
    grids: list = None  # (t, h, w) per group


@dataclass(frozen=True)
class Official:
    """How a method's authors run it: its stages (a function of the Layout -> (stages, notes)), the KV policy of
    the layers before a stage ("keep", "prune", or None: the family's), its reference layer where it has one
    (None: the family's), what the official code does that the schedule alone does not say (`about`, for
    docs/methods.md and the page), and the inputs it applies to (`inputs`; the planner refuses any other kind, in
    every schedule, with `refusal`)."""

    stages: Callable
    early_kv: str = None
    ref_layer: int = None
    about: str = ""
    inputs: tuple = ("image", "video")
    refusal: str = ""


# ------------------------------------------------------------------------------------------ building blocks


def clamp_counts(stages, counts):
    """Stages with every count in 1 .. the previous stage's count (the first: N), layers as given."""
    out, previous = [], list(counts)
    for layer, wanted in stages:
        kept = [max(1, min(prev, int(c))) for prev, c in zip(previous, wanted)]
        out.append((layer, kept))
        previous = kept
    return out


def average_kept(stages, num_layers, count):
    """Visual tokens per layer averaged over all num_layers layers for one group of `count` tokens (all of them
    before the first stage): the real cost the records report as budget["average_kept"]."""
    total, previous_layer, previous_count = 0, 0, count
    for layer, kept in stages:
        total += (layer - previous_layer) * previous_count
        previous_layer, previous_count = layer, kept
    return (total + (num_layers - previous_layer) * previous_count) / num_layers


def single(layer=None, count=None):
    """One stage at `layer` (None: the family's K for the input kind) keeping count(budget) tokens (None: the
    budget). Layers are absolute: FastV's and DART's K = 2 on any depth, as their code sets it."""
    def stages(layout):
        at = layout.defaults["prune_layer"] if layer is None else layer
        kept = [count(n) if count else n for n in layout.nominal]
        return clamp_counts([(at, kept)], layout.counts), []
    return stages


def paper_layers(num_layers, paper):
    if num_layers == paper["depth"]:
        raw = paper["layers"]
    else:
        raw = (1, round(GENERIC_LAYERS[1] * num_layers), round(GENERIC_LAYERS[2] * num_layers))
    layers = []
    for layer in raw:  # shallow decoders: keep the stages strictly increasing and inside the model
        layer = max(layer, layers[-1] + 1 if layers else 1)
        if layer < num_layers:
            layers.append(layer)
    return layers


def paper_counts(group_count, keep, nominal, paper):
    """Kept counts per stage for one group, as the official code computes them: the paper's keep table used
    literally where it has this budget, looked up by its nominal preset (a third of 576 tokens is "192":
    330 / 210 / 62); a ratio table's shares of N floored (`int`, clse_qwen2vl_model.py: 583 / 368 / 100 of 1024
    at "0.334"), a preset ratio (1/3, 2/9, 1/9) taken as the table's nominal one; any other budget floored
    factor x nominal with the official off-table factors."""
    table = paper.get("keep_table", {})
    if group_count == paper.get("tokens"):
        preset = keep if keep in table else nominal if nominal in table else None
        if preset is not None:
            return list(table[preset])
    for ratio, ratios in paper.get("ratio_table", {}).items():
        if isinstance(keep, float) and abs(keep - ratio) < RATIO_PRESET_TOLERANCE:
            return [int(r * group_count) for r in ratios]
    return [int(f * nominal) for f in paper["factors"]]


RATIO_PRESET_TOLERANCE = 2e-3  # 1/3, 2/9 and 1/9 are the tables' 0.334, 0.223 and 0.112


def paper(layout):
    """CLSE's staged schedule from the family's PAPER_SCHEDULE (its keep table used literally)."""
    layers = paper_layers(layout.num_layers, layout.paper)
    per_group = [paper_counts(n, layout.keep, r, layout.paper) for n, r in zip(layout.counts, layout.nominal)]
    return clamp_counts([(layer, [c[s] for c in per_group]) for s, layer in enumerate(layers)], layout.counts), []


def paper_for_images(layout):
    """CLSE as published: the staged schedule for images, one stage at the family's video K for video (the
    official Video-LLaVA code: L = 2, K = 3)."""
    return paper(layout) if layout.kind == "image" else single()(layout)


# ------------------------------------------------------------------------------------------ PyramidDrop

# Its stages, as layers of LLaVA-1.5's 32 (depth-scaled on other decoders): the default of its code
# (`--layer_list [8,16,24]`), then the earlier ones its author gives for budgets the default cannot reach
# (Cooperx521/PyramidDrop issue #29: "2, 8, 16 or 2, 4, 6, 8"), tried in this order.
PYRAMID_LAYERS = ((8, 16, 24), (2, 8, 16), (2, 4, 6, 8))
PYRAMID_DEPTH = 32


def pyramid_stages(num_layers, count, lam, depth_layers=PYRAMID_LAYERS[0], depth=PYRAMID_DEPTH):
    """PyramidDrop's stages for one group of `count` tokens: entering the depth-scaled layers of depth_layers (of
    a `depth`-layer decoder; round(l * num_layers / depth)), int(count * lam**s) tokens at stage s = 1, 2, ...
    (at least 1), as its code floors them (`pdrop_rank_drop`, --layer_list [8,16,24],
    --image_token_ratio_list [0.5,0.25,0.125] at lam = 0.5)."""
    layers = depth_scaled(depth_layers, depth, num_layers)
    return [(layer, max(1, int(count * lam ** s))) for s, layer in enumerate(layers, start=1)]


def pyramid_lowest_lambda(count, stages):
    """The smallest lam whose last stage keeps a token by its own formula, int(count * lam**stages) >= 1: below
    it the pyramid collapses to one token a stage (lam -> 0), which is not PyramidDrop."""
    lam = (1.0 / count) ** (1.0 / stages)
    while int(count * lam ** stages) < 1:  # floating-point: nudge up until the floor reaches 1
        lam = math.nextafter(lam, 2.0)
    return lam


def pyramid_lambda(target, num_layers, count, depth_layers=PYRAMID_LAYERS[0]):
    """(lam, its average) whose pyramid averages closest to `target` visual tokens per layer: bisection on lam in
    [pyramid_lowest_lambda, 1] (counts are floored, so the average is a step function of lam, non-decreasing);
    outside the reachable averages, the nearest end."""
    stages = len(depth_scaled(depth_layers, PYRAMID_DEPTH, num_layers))

    def average(lam):
        return average_kept(pyramid_stages(num_layers, count, lam, depth_layers), num_layers, count)

    low, high = pyramid_lowest_lambda(count, max(stages, 1)), 1.0
    if average(low) >= target:
        return low, average(low)
    for _ in range(60):
        middle = (low + high) / 2
        if average(middle) < target:
            low = middle
        else:
            high = middle
    candidates = [low, high]
    averages = [average(lam) for lam in candidates]
    best = min(range(2), key=lambda i: abs(averages[i] - target))
    return candidates[best], averages[best]


def reaches(average, budget):
    """Whether a schedule's real average is the budget, to a token or 2%."""
    return abs(average - budget) <= max(1.0, 0.02 * budget)


def pyramid(layout):
    """PyramidDrop by its author's rule: its default stages (8 / 16 / 24 of 32, depth-scaled) where they can
    average the budget, else the earlier ones he gives (2 / 8 / 16, then 2 / 4 / 6 / 8; issue #29), the first
    that reaches every group's budget; its one free parameter lam is solved so that the real average of visual
    tokens over all layers matches the budget, with the lam^s structure kept and never collapsed to one token a
    stage (lam >= pyramid_lowest_lambda). Where no stage set reaches the budget: BadInput, saying how low it can
    go. The paper's own 192 / 128 / 64 settings are not published (its issues #10, #28)."""
    lowest, tried = {}, []
    for depth_layers in PYRAMID_LAYERS:
        layers = depth_scaled(depth_layers, PYRAMID_DEPTH, layout.num_layers)
        tried.append("/".join(map(str, layers)))
        solved = [pyramid_lambda(budget, layout.num_layers, count, depth_layers)
                  for count, budget in zip(layout.counts, layout.nominal)]
        for gi, ((lam, average), budget) in enumerate(zip(solved, layout.nominal)):
            lowest[gi] = min(lowest.get(gi, math.inf), average)
        if all(reaches(average, budget) for (_, average), budget in zip(solved, layout.nominal)):
            break
    else:
        gi = next(gi for gi, ((_, average), budget) in enumerate(zip(solved, layout.nominal))
                  if not reaches(average, budget))
        raise BadInput(f"PyramidDrop cannot average {layout.nominal[gi]} visual tokens per layer on this "
                       f"{layout.num_layers}-layer decoder ({layout.counts[gi]} tokens): its stage sets (entering "
                       f"layers {', '.join(tried)}), each with the smallest lambda that keeps its lambda^s pyramid "
                       f"(one token at the last stage), average at least {lowest[gi]:.1f} (every token is kept "
                       f"until the first stage); ask for at least {math.ceil(lowest[gi] - 1.0)}")
    moved = depth_layers != PYRAMID_LAYERS[0]
    default = "/".join(map(str, depth_scaled(PYRAMID_LAYERS[0], PYRAMID_DEPTH, layout.num_layers)))
    notes, per_group = [], []
    for gi, ((lam, average), budget, count) in enumerate(zip(solved, layout.nominal, layout.counts)):
        stages = pyramid_stages(layout.num_layers, count, lam, depth_layers)
        per_group.append(stages)
        notes.append(f"group {gi}: PyramidDrop's lambda {lam:.3g} keeps {'/'.join(str(c) for _, c in stages)} "
                     f"tokens entering layers {'/'.join(map(str, layers))} of {layout.num_layers}: {average:.2f} "
                     f"visual tokens per layer on average for the budget {budget}"
                     + (f" (its default stages {default} cannot average {budget}: every token is kept until layer "
                        f"{default.split('/')[0]}; moved earlier as its author advises, PyramidDrop issue #29)"
                        if moved else ""))
    stages = [(layer, [g[s][1] for g in per_group]) for s, layer in enumerate(layers)]
    return clamp_counts(stages, layout.counts), notes


def round_half_up(x):
    return math.floor(x + 0.5)


# ------------------------------------------------------------------------------------------ SparseVLM

# SparseVLM v1.5 (Gumpest/SparseVLMs, main, default mode; llava/model/language_model/score.py): LLaVA-1.5 prunes
# the outputs of decoder layers 2, 6 and 15, i.e. the states entering layers 3, 7 and 16 of 32, keeping these
# many of the 576 visual tokens at each stage (before the recycled tokens are added), selected by its
# RETAIN_TOKN setting. The budget names the real average over the 32 layers, recycled tokens included.
SPARSEVLM = {"depth": 32, "layers": (3, 7, 16), "tokens": 576,
             "keep_table": {192: (300, 200, 110), 128: (303, 110, 36), 96: (238, 48, 26), 64: (66, 30, 17)}}
SPARSEVLM_RECYCLE = 0.3  # of the tokens a stage prunes, the highest-scored 30% (+1) are recycled
SPARSEVLM_PER_CLUSTER = 10  # into int(candidates / 10) + 1 merged tokens


def recycled_count(pruned):
    """How many merged tokens SparseVLM's recycling adds when a stage prunes `pruned` tokens."""
    if pruned <= 0:
        return 0
    return int(recycling_candidates(pruned) / SPARSEVLM_PER_CLUSTER) + 1


def recycling_candidates(pruned):
    return min(pruned, int(pruned * SPARSEVLM_RECYCLE) + 1)


def depth_scaled(layers, depth, num_layers):
    """The layers of a `depth`-layer schedule on a num_layers decoder, strictly increasing, inside the model."""
    out = []
    for layer in layers:
        layer = max(round_half_up(layer * num_layers / depth), out[-1] + 1 if out else 1)
        if layer < num_layers:
            out.append(layer)
    return out


def sparsevlm_alive(count, keeps):
    """The visual tokens alive after each stage (kept + recycled), for one group of `count` tokens."""
    alive, out = count, []
    for keep in keeps:
        kept = max(1, min(int(keep), alive - 1 if alive > 1 else 1))
        alive = kept + recycled_count(alive - kept)
        out.append((kept, alive))
    return out


def sparsevlm_table_row(count, budget):
    """The official keep list of the budget nearest this one as a share of N, scaled to N."""
    table = SPARSEVLM["keep_table"]
    nearest = min(table, key=lambda b: abs(b / SPARSEVLM["tokens"] - budget / count))
    return [k * count / SPARSEVLM["tokens"] for k in table[nearest]]


def sparsevlm(layout):
    """SparseVLM as published: its layers (depth-scaled off LLaVA-1.5's 32) and its keep list used literally for
    576 tokens on 32 layers at 192 / 128 / 96 / 64; otherwise the nearest list scaled by the factor whose real
    average (recycled tokens included) matches the budget. Video: one stage entering layer 2 (the official
    Video-LLaVA branch prunes once, after layer 1), keeping the budget. The counts are the tokens each stage
    keeps by score; recycling adds its merged tokens on top (recycled_count)."""
    if layout.kind == "video":
        return single(2)(layout)
    layers = depth_scaled(SPARSEVLM["layers"], SPARSEVLM["depth"], layout.num_layers)
    per_group, notes = [], []
    for gi, (count, budget) in enumerate(zip(layout.counts, layout.nominal)):
        literal = (count == SPARSEVLM["tokens"] and layout.num_layers == SPARSEVLM["depth"]
                   and budget in SPARSEVLM["keep_table"])
        row = list(SPARSEVLM["keep_table"][budget]) if literal else sparsevlm_table_row(count, budget)
        row = row[:len(layers)]

        def average(scale):
            alive = sparsevlm_alive(count, [k * scale for k in row])
            return average_kept(list(zip(layers, [a for _, a in alive])), layout.num_layers, count)

        scale = 1.0
        if not literal:  # solve the scale so that the real average matches the budget (bisection, monotone)
            low, high = 0.0, count / max(min(row), 1e-9)
            for _ in range(60):
                middle = (low + high) / 2
                low, high = (middle, high) if average(middle) < budget else (low, middle)
            scale = high
        keeps = [max(1, int(k * scale)) for k in row]
        per_group.append(keeps)
        reached = average(scale)
        how = ("its official keep list" if literal else "its keep list scaled to this budget"
               if abs(reached - budget) <= max(1.0, 0.02 * budget) else
               f"the closest it reaches: it cannot average {budget} (every token until layer {layers[0]})")
        notes.append(f"group {gi}: SparseVLM keeps {'/'.join(map(str, keeps))} tokens by score entering layers "
                     f"{'/'.join(map(str, layers))}, plus its recycled tokens: {reached:.1f} visual tokens per "
                     f"layer on average for the budget {budget} ({how})")
    return [(layer, [k[s] for k in per_group]) for s, layer in enumerate(layers)], notes


# ------------------------------------------------------------------------------------------ VisionZip

VISIONZIP_CONTEXTUAL = (10, 64)  # its README's 64 = 54 dominant + 10 contextual: the contextual share


def visionzip_contextual(k):
    """How many of k tokens VisionZip makes contextual (merged): 10 of 64 in its README; 30 of 192 and 20 of
    128 (the splits third-party scripts extrapolate from it; the official repository publishes only 54 + 10)."""
    if k < 2:
        return 0
    return min(k - 1, max(1, round(k * VISIONZIP_CONTEXTUAL[0] / VISIONZIP_CONTEXTUAL[1])))


def before_decoder(layout):
    """One stage before the decoder (K = 0, on the projected visual features), keeping the budget."""
    return clamp_counts([(0, list(layout.nominal))], layout.counts), []


def downsample(layout):
    """Average pooling before the decoder (K = 0): each frame's h x w grid pooled to the grid
    baselines.pooled_grid gives for the budget's share of a frame (the budget split evenly over the frames, at
    least one token each), adaptive where the sizes do not divide; the stage keeps t x oh x ow pooled tokens
    (at most the budget: the pooled grid keeps the frame's aspect)."""
    counts, notes = [], []
    for gi, ((t, h, w), budget) in enumerate(zip(layout.grids, layout.nominal)):
        oh, ow = baselines.pooled_grid(h, w, max(1, budget // t))
        counts.append(t * oh * ow)
        per_frame = f"each of its {t} frames' " if t > 1 else "its "
        overlap = "" if h % oh == 0 and w % ow == 0 else ", overlapping blocks where the sizes do not divide"
        notes.append(f"group {gi}: downsample pools {per_frame}{h} x {w} grid to {oh} x {ow} (adaptive average "
                     f"pooling{overlap}): {t * oh * ow} pooled tokens for the budget {budget}, each the mean of its "
                     "block's decoder inputs, at its block's centre (slot and position id)")
    return clamp_counts([(0, counts)], layout.counts), notes


def evs(layout):
    """vLLM's Efficient Video Sampling before the decoder (K = 0): the rate q its `--video-pruning-rate` takes for
    this budget (baselines.evs_rate) and the count vLLM keeps with it, max(tokens per frame, int(total (1 - q)));
    the note prints the command."""
    counts, notes = [], []
    for gi, ((t, h, w), budget) in enumerate(zip(layout.grids, layout.nominal)):
        rate, kept = baselines.evs_rate(h * w, t, budget)
        counts.append(kept)
        notes.append(f"group {gi}: EVS keeps {kept} of its {t} x {h * w} video tokens (frame 0 whole, then the "
                     f"tokens least like the same place in the previous frame), as `vllm serve MODEL "
                     f"--video-pruning-rate {rate}` does (MODEL: this record's model; vLLM keeps max(tokens per "
                     f"frame, int(total x (1 - q))), vllm/multimodal/evs.py, and runs EVS only on the models that "
                     "implement its multimodal pruning, Qwen2.5-VL and Qwen3-VL among them)"
                     + (f"; more than the budget {budget}: EVS always keeps the first frame whole" if kept > budget
                        else ""))
    return clamp_counts([(0, counts)], layout.counts), notes


def dart_count(k):
    """DART keeps its 4 image pivots and 8 blocks of k // 8 tokens (4 image + 4 text pivots): 4 + 8 (k // 8)."""
    return 4 + 8 * (k // 8)
