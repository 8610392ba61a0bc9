"""Where and how much to prune, from a request's Settings, the input's visual groups and the family's data (its
one-stage settings DEFAULTS and its PAPER_SCHEDULE). Raises BadInput on impossible settings.

Three schedules (Settings.schedule):
- "single", the controlled comparison: every method scores at the same layer K and keeps the same count, so the
  comparison isolates the score;
- "paper": CLSE's staged schedule for every method (its later stages score by each method's `later`);
- "official": each method as its authors run it: the stages, KV policy and reference layer its registry line
  names (methods/schedules.py holds the maths); the request's K, L and KV policy are not used then.
"""

from dataclasses import dataclass, field

from explorer.methods import schedules
from models.base import BadInput


@dataclass
class Plan:
    stages: list  # [(layer, [kept count per group])], layers increasing
    nominal: list  # the nominal budget per group
    prune_layer: int  # the first stage's layer K
    ref_layer: int  # CLSE's reference layer L
    early_kv: str  # "keep" | "prune"
    notes: list = field(default_factory=list)  # what the schedule says about itself (e.g. an unreachable budget)
    positions: str = "original"  # "original": kept tokens keep their position ids; "renumber": 0.. again
    rank: str = "per_grid"  # "per_grid": each grid its quota; "joint": an image's grids ranked together


def budget_for(group_count, keep):
    if isinstance(keep, float):  # a ratio
        return max(1, min(group_count, round(keep * group_count)))
    if keep > group_count:
        raise BadInput(f"keep {keep} is more than the {group_count} visual tokens of this input")
    return keep


def split(total, counts):
    """total tokens over grids of these counts, in proportion to them (largest remainders; at least one each)."""
    exact = [total * c / sum(counts) for c in counts]
    shares = [max(1, min(c, int(e))) for c, e in zip(counts, exact)]
    for i in sorted(range(len(counts)), key=lambda i: (-(exact[i] - int(exact[i])), i)):
        if sum(shares) >= total:
            break
        if shares[i] < counts[i]:
            shares[i] += 1
    return shares


def group_budgets(groups, keep, per="image"):
    """The requested budget of every group: per "grid", each its own; per "image", an image's budget over all its
    grids (groups sharing a unit: LLaVA-NeXT's base and tiles, InternVL's tiles and thumbnail) split over them
    in proportion to their token counts; each grid then keeps its share by the method's score on that grid."""
    if per == "grid":
        return [budget_for(g.count, keep) for g in groups]
    units = {}
    for i, g in enumerate(groups):
        unit = getattr(g, "unit", None)
        units.setdefault(("unit", unit) if unit is not None else ("own", i), []).append(i)
    out = [0] * len(groups)
    for members in units.values():
        counts = [groups[i].count for i in members]
        for i, share in zip(members, split(budget_for(sum(counts), keep), counts)):
            out[i] = share
    return out


def plan(groups, settings, num_layers, family, kind="image", first_layer_min=1, official=None):
    """The stages of one request. first_layer_min: 0 for methods that score before the decoder, else 1.
    official: the method's registry Official (used when settings.schedule == "official")."""
    defaults = family.DEFAULTS[kind]
    nominal = group_budgets(groups, settings.keep, settings.budget_per)
    layout = schedules.Layout(num_layers, [g.count for g in groups], nominal, settings.keep, family.PAPER_SCHEDULE,
                              defaults, kind, [tuple(getattr(g, "grid", ())) for g in groups])
    if official is not None and kind not in official.inputs:
        raise BadInput(official.refusal or f"this method does not apply to {kind} inputs")
    notes, ref_default, early_kv = [], defaults["ref_layer"], settings.early_kv or defaults["early_kv"]
    if settings.schedule == "single":
        prune_layer = defaults["prune_layer"] if settings.prune_layer is None else settings.prune_layer
        if not first_layer_min <= prune_layer < num_layers:
            raise BadInput(f"prune layer must be between {first_layer_min} and {num_layers - 1} for this "
                           f"{num_layers}-layer decoder, got {prune_layer}")
        stages, _ = schedules.single(prune_layer)(layout)
    elif settings.schedule == "paper":
        stages, _ = schedules.paper(layout)
    else:
        stages, notes = official.stages(layout)
        early_kv = official.early_kv or defaults["early_kv"]
        ref_default = defaults["ref_layer"] if official.ref_layer is None else official.ref_layer
        if not stages or not first_layer_min <= stages[0][0] < num_layers:
            raise BadInput(f"this method's official schedule does not fit a {num_layers}-layer decoder")
    first = stages[0][0]
    if settings.schedule == "official" or settings.ref_layer is None:
        ref_layer = min(ref_default, max(first - 1, 0))
    else:
        ref_layer = settings.ref_layer
    if first > 0 and not 0 <= ref_layer < first:
        raise BadInput(f"reference layer must be between 0 and {first - 1} (before the pruning layer {first}), "
                       f"got {ref_layer}")
    positions, rank = settings.positions or "original", settings.rank or "per_grid"
    if settings.schedule == "official":
        positions, rank = official.positions, official.rank
        notes = notes + overridden(settings, first, ref_layer, early_kv, positions, rank)
    return Plan(stages, nominal, first, ref_layer, early_kv, notes, positions, rank)


def overridden(settings, prune_layer, ref_layer, early_kv, positions=None, rank=None):
    """A note for each setting the user chose that the official schedule replaces with its authors' own."""
    chosen = {"the pruning layer K": (settings.prune_layer, prune_layer), "the reference layer L":
              (settings.ref_layer, ref_layer), "the early layers' KV policy": (settings.early_kv, early_kv),
              "the position ids after a drop": (settings.positions, positions),
              "the ranking over an image's grids": (settings.rank, rank)}
    return [f"official schedule: {name} is {used} as its authors run it, not the {asked} you chose"
            for name, (asked, used) in chosen.items() if asked is not None and asked != used]
