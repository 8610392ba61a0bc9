"""What a pruning stage may see, in one place for the engine's pruned runs and the diagnostics' reference
scores: which original positions are still rows (TokenIndex), what a method may ask about the sequence entering
the pruning layer (LayerView, computing what groups share once per stage), where one group stands (At, from which
explorer/methods/inputs.py's table computes the inputs a method names) and its StageInputs, and which methods can
score at which layer (the needs rule, from the same table).
"""

import itertools
from dataclasses import dataclass, replace

import torch

from explorer.core.plan import plan
from explorer.methods import attention
from explorer.methods.inputs import INPUTS, StageInputs, full_attention_before, raters  # noqa: F401 (raters: where tests read it)
from explorer.methods.registry import METHODS
from models.base import BadInput


# ------------------------------------------------------------------------------------------ the needs rule


def lowest_layer(method):
    """The lowest layer K a method can prune at: methods that look inside the decoder need a layer before K."""
    return max((INPUTS[name].lowest_layer for name in METHODS[method].needs), default=0)


def unmet_need(method, encoded, k):
    """Why `method` cannot score at layer k of this input (a sentence for the user), or None; k None: what this
    model cannot give at any layer."""
    needs = METHODS[method].needs
    if k is not None and k < lowest_layer(method):
        return f"{method} looks inside the decoder and needs a layer before the pruning layer (K >= 1)"
    unmet = (INPUTS[name].unmet(method, encoded, k) for name in needs if INPUTS[name].unmet)
    return next((why for why in unmet if why), None)


def reads_scoring_layer(method):
    """Whether a method reads the scoring layer before K (K - 1, or the nearest full-attention layer before it)."""
    return any(INPUTS[name].unmet is full_attention_before for name in METHODS[method].needs)


def readable_prune_layer(encoded, settings, num_layers):
    """The single schedule's K when the user set none and the decoder's first full-attention layer is at or
    after the family's default K (hybrid decoders such as Qwen3.5's three linear-attention layers per full one,
    or sliding windows shorter than the prompt): just after that layer, for every method alike, so that the
    attention scores have a row to read. Returns (K or None for the default, a note or None)."""
    if settings.schedule != "single" or settings.prune_layer is not None or not encoded.attention_layers:
        return None, None
    default, first = encoded.family.DEFAULTS[encoded.kind]["prune_layer"], encoded.attention_layers[0]
    if first < default or first + 1 >= num_layers:
        return None, None
    return first + 1, (f"pruning at layer {first + 1} instead of the default {default}: layer {first} is this "
                       "decoder's first full-attention layer, whose attention row the scores read")


def method_plan(encoded, settings, num_layers, method):
    """The plan of one method on this input; BadInput when the method cannot apply to the model."""
    spec = METHODS[method]
    prune_layer, note = readable_prune_layer(encoded, settings, num_layers)
    if prune_layer is not None:
        settings = replace(settings, prune_layer=prune_layer)
    if spec.prunes and (why := unmet_need(method, encoded, None)):
        raise BadInput(why)
    lowest = lowest_layer(method) if spec.prunes else 0
    the_plan = plan(encoded.groups, settings, num_layers, encoded.family, encoded.kind, first_layer_min=lowest,
                    official=spec.official)
    if spec.prunes:
        for layer, _ in the_plan.stages:
            why = unmet_need(method if layer == the_plan.prune_layer else (spec.later or method), encoded, layer)
            if why:
                raise BadInput(why)
    if spec.prunes and the_plan.positions == "renumber" and not plain_positions(encoded):
        why = ("renumbered positions are what the LLaVA-based official code does to a sequence numbered 0, 1, 2, "
               "...; this model numbers its tokens otherwise (multimodal rotary positions, M-RoPE: time, height "
               "and width per visual token), where numbering the kept tokens again has no one meaning")
        if settings.schedule != "official":
            raise BadInput(why + "; use positions original")
        the_plan.positions = "original"
        the_plan.notes.append(f"official schedule: positions kept original: {why}")
    if note:
        the_plan.notes.append(note)
    return the_plan


def plain_positions(encoded):
    """Whether the decoder numbers the prompt 0..S-1 along one axis (LLaVA's 1-D rotary positions), where a
    renumbered shortened sequence takes the rotary inputs of positions 0..n-1."""
    ids = encoded.position_ids
    return ids.dim() == 2 and ids.shape[0] == 1 and torch.equal(
        ids[0].cpu(), torch.arange(ids.shape[1], device="cpu", dtype=ids.dtype))


# ------------------------------------------------------------------------------------------ rows and views


class TokenIndex:
    """Which original sequence positions are still rows of the hidden states (host-side bookkeeping).

    positions: original sequence positions of the current rows, sorted; alive[g]: group-local indices of group
    g's visual tokens still in the sequence, sorted. All on the CPU.
    """

    def __init__(self, seq_len, groups):
        self.groups = groups
        self.positions = torch.arange(seq_len, device="cpu")
        self.alive = [torch.arange(g.count, device="cpu") for g in groups]
        self.offsets = list(itertools.accumulate([g.count for g in groups], initial=0))
        self.is_visual = torch.zeros(seq_len, dtype=torch.bool, device="cpu")
        for g in groups:
            self.is_visual[g.positions.cpu()] = True
        self._group_rows = None  # cached until restrict changes the rows
        self.absorbed = {}  # visual index (0..N-1) of an alive merged token -> the originals it stands for

    def rows(self, positions):
        """Current rows of these original positions."""
        return torch.searchsorted(self.positions, positions.cpu())

    def group_rows(self):
        """Current rows of every group's alive tokens (asked for once per group and method at a stage)."""
        if self._group_rows is None:
            self._group_rows = [self.rows(g.positions.cpu()[a]) for g, a in zip(self.groups, self.alive)]
        return self._group_rows

    def visual_count(self):
        return sum(len(a) for a in self.alive)

    def kept_indices(self):
        """Alive visual tokens as indices 0..N-1 over all groups, original order."""
        return torch.cat([self.offsets[gi] + a for gi, a in enumerate(self.alive)]).tolist()

    def merge(self, merges):
        """Record merges[g] = [(centre, [absorbed], vector)] (indices into alive[g], before restrict): each
        centre now stands for its absorbed originals, and for what those stood for if they were merged tokens
        themselves. Returns {centre's visual index: [absorbed visual indices]} of this stage."""
        stage = {}
        for gi, merged in enumerate(merges):
            for centre, members, _ in merged:
                originals = set()
                for m in members:
                    n = self.offsets[gi] + int(self.alive[gi][m])
                    originals |= set(self.absorbed.pop(n, [n]))
                stage[self.offsets[gi] + int(self.alive[gi][centre])] = sorted(originals)
        self.absorbed.update(stage)
        return stage

    def restrict(self, picks):
        """Keep picks[g] (indices into alive[g]) of every group; returns the current rows to keep."""
        self.alive = [a[p] for a, p in zip(self.alive, picks)]
        alive = set(self.kept_indices())
        self.absorbed = {n: a for n, a in self.absorbed.items() if n in alive}  # a merged token pruned later
        kept = torch.cat([g.positions.cpu()[a] for g, a in zip(self.groups, self.alive)])
        keep = torch.cat([self.positions[~self.is_visual[self.positions]], kept]).sort().values
        rows = self.rows(keep)
        self.positions = keep
        self._group_rows = None
        return rows


@dataclass
class Before:
    """The scoring layer j a method's attention row is read at (K - 1, or the nearest full-attention layer before
    it on hybrid decoders): the sequence entering it, its rotary inputs, its cached keys after it ran and the
    original positions of its rows (a stage between j and K may have removed some since)."""

    layer: int
    hidden: torch.Tensor  # [1, S_j, D]
    rope: tuple
    keys: torch.Tensor  # [1, kv_heads, S_j, head_dim]
    positions: torch.Tensor  # [S_j] original positions, on the CPU


class LayerView:
    """What a method may ask about the sequence entering pruning layer k, each computed only when asked and
    once: the last prompt token's attention row at the scoring layer before k (from its cached keys) and at
    layer k itself (keys recomputed from the states entering k), SparseVLM's raters' rows there, and DART's
    inputs. Rows are current rows of `hidden` (original positions `positions`); rope: layer k's rotary inputs
    for those rows; before: a Before, or None when no layer before k can be read."""

    def __init__(self, model, family, k, hidden, rope, positions, before):
        self.model, self.family, self.k = model, family, k
        self.hidden, self.rope, self.positions, self.before = hidden, rope, positions, before
        self.rows = {}

    def once(self, name, compute):
        """compute() the first time `name` is asked at this stage; what it gave, after."""
        if name not in self.rows:
            self.rows[name] = compute()
        return self.rows[name]

    def _before_rows(self, rows):
        """The scoring layer's rows of these current rows."""
        return torch.searchsorted(self.before.positions, self.positions[rows.cpu()])

    def attention_before(self, rows):
        b = self.before
        row = self.once("before", lambda: attention.last_token_row(
            self.family.layer_parts(self.model, b.layer), b.hidden[:, -1:],
            attention.on(b.rope, b.hidden.device, torch.tensor([b.hidden.shape[1] - 1], device="cpu")), b.keys))
        return row[self._before_rows(rows).to(row.device)]

    def attention_at(self, rows):
        row = self.once("at", lambda: attention.row_entering(
            self.family.layer_parts(self.model, self.k), self.hidden, self.rope))
        return row[rows.to(row.device)]

    def rater_attention(self, rows, rater_positions):
        """SparseVLM's score: the rater tokens' head-mean attention at the scoring layer (causal), averaged over
        them."""
        b = self.before
        rater_rows = torch.searchsorted(b.positions, rater_positions.cpu())
        key = ("raters", tuple(rater_rows.tolist()))
        matrix = self.once(key, lambda: attention.rows_attention(
            self.family.layer_parts(self.model, b.layer), b.hidden, b.rope, b.keys, rater_rows).mean(dim=0))
        return matrix[self._before_rows(rows).to(matrix.device)]

    def duplication(self, rows, text_rows):
        """DART's inputs: final-normed states entering k and L1 key norms at the scoring layer, visual rows and
        text after."""
        norm = self.family.final_norm(self.model)
        normed = self.once("normed", lambda: norm(self.hidden[0].to(norm.weight.device)))
        norms = self.once("key_norms", lambda: attention.key_l1_norms(self.before.keys))
        pick = lambda x, r: x[r.to(x.device)]  # noqa: E731
        return (pick(normed, rows), pick(norms, self._before_rows(rows)), pick(normed, text_rows),
                pick(norms, self._before_rows(text_rows)))


@dataclass
class At:
    """Where one group stands at one stage: what the input table's functions compute from
    (explorer/methods/inputs.py)."""

    group: int  # the group's index
    view: LayerView  # the sequence entering the pruning layer
    index: TokenIndex  # which original positions are still rows
    encoded: object  # the engine's Encoded
    z_ref: list = None  # per group, the states entering the reference layer L (None before L has run)

    @property
    def alive(self):
        return self.index.alive[self.group]

    @property
    def rows(self):
        """Current rows of the group's alive tokens."""
        return self.index.group_rows()[self.group]

    @property
    def text_rows(self):
        """Current rows of the text tokens after the group."""
        index, last = self.index, int(self.encoded.groups[self.group].positions[-1])
        return (~index.is_visual[index.positions] & (index.positions > last)).nonzero().flatten()


def stage_inputs(method, at, stage_index, k, settings):
    """The StageInputs `method` reads for one group: the stage's facts, and its registry line's inputs computed
    from `at` when first read."""
    group = at.encoded.groups[at.group]
    return StageInputs(at, method, METHODS[method].needs, stage=stage_index, grid=group.grid, alive=at.alive, k=k,
                       seed=(settings.seed + at.encoded.content_seed) % 2**31, cutoff=settings.cutoff,
                       temp=settings.temp, official=settings.schedule == "official",
                       positions=group.positions.cpu()[at.alive])
