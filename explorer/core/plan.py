"""Where and how much to prune, from a request's Settings, the input's visual groups and the family's data
(its one-stage settings DEFAULTS and its PAPER_SCHEDULE). Raises BadInput on impossible settings.
"""

from dataclasses import dataclass

from models.base import BadInput

GENERIC_LAYERS = (1, 0.36, 0.67)  # the paper's stages for a decoder of another depth: 1, round(0.36 n), round(0.67 n)


@dataclass
class Plan:
    stages: list  # [(layer, [kept count per group])], layers increasing
    nominal: list  # the nominal budget per group
    prune_layer: int  # the first stage's layer K
    ref_layer: int  # CLSE's reference layer L
    early_kv: str  # "keep" | "prune"


def budget_for(group_count, keep):
    if isinstance(keep, float):  # a ratio
        return max(1, min(group_count, round(keep * group_count)))
    if keep > group_count:
        raise BadInput(f"keep {keep} is more than the {group_count} visual tokens of this input")
    return keep


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
    """Kept counts per stage for one group: the paper's keep table used literally where it has this budget
    (counts of `tokens` visual tokens, or ratios of N), else round(factor * nominal)."""
    table = paper.get("keep_table", {})
    if group_count == paper.get("tokens") and keep in table:
        return list(table[keep])
    for ratio, ratios in paper.get("ratio_table", {}).items():
        if isinstance(keep, float) and abs(keep - ratio) < 5e-4:
            return [round(r * group_count) for r in ratios]
    return [round(f * nominal) for f in paper["factors"]]


def plan(groups, settings, num_layers, family, kind="image", first_layer_min=1):
    """The stages of one request. first_layer_min: 0 for methods that score before the decoder, else 1."""
    defaults = family.DEFAULTS[kind]
    nominal = [budget_for(g.count, settings.keep) for g in groups]
    if settings.schedule == "single":
        prune_layer = defaults["prune_layer"] if settings.prune_layer is None else settings.prune_layer
        if not first_layer_min <= prune_layer < num_layers:
            raise BadInput(f"prune layer must be between {first_layer_min} and {num_layers - 1} for this "
                           f"{num_layers}-layer decoder, got {prune_layer}")
        stages = [(prune_layer, nominal)]
    else:
        layers = paper_layers(num_layers, family.PAPER_SCHEDULE)
        per_group = [paper_counts(g.count, settings.keep, r, family.PAPER_SCHEDULE) for g, r in zip(groups, nominal)]
        stages, previous = [], [g.count for g in groups]
        for s, layer in enumerate(layers):
            counts = [max(1, min(prev, c[s])) for prev, c in zip(previous, per_group)]
            stages.append((layer, counts))
            previous = counts
    first = stages[0][0]
    ref_layer = min(defaults["ref_layer"], max(first - 1, 0)) if settings.ref_layer is None else settings.ref_layer
    if first > 0 and not 0 <= ref_layer < first:
        raise BadInput(f"reference layer must be between 0 and {first - 1} (before the pruning layer {first}), "
                       f"got {ref_layer}")
    early_kv = settings.early_kv or defaults["early_kv"]
    return Plan(stages, nominal, first, ref_layer, early_kv)
