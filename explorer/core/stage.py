"""What a pruning stage may see, in one place for the engine's pruned runs and the diagnostics' reference
scores: which original positions are still rows (TokenIndex), what a method may ask about the sequence entering
the pruning layer (LayerView), the StageInputs of one group, and which methods can score at which layer (the
needs rule).
"""

import itertools

import torch

from explorer.core.plan import plan
from explorer.methods import attention
from explorer.methods.registry import METHODS, StageInputs
from models.base import BadInput


# ------------------------------------------------------------------------------------------ the needs rule


def lowest_layer(method):
    """The lowest layer K a method can prune at: methods that look inside the decoder need a layer before K."""
    return 1 if {"attention", "reference"} & set(METHODS[method].needs) else 0


def unmet_need(method, encoded, k):
    """Why `method` cannot score at layer k of this input (a sentence for the user), or None."""
    spec = METHODS[method]
    if "vision" in spec.needs and not encoded.vision_scores:
        return (f"{method} reads the vision encoder's [CLS] attention to each patch, and this model has none "
                "that lies on the decoder's grid of visual tokens (no [CLS] token, or patches merged or "
                "rearranged before the decoder); choose another method")
    if k < lowest_layer(method):
        return f"{method} looks inside the decoder and needs a layer before the pruning layer (K >= 1)"
    return None


def method_plan(encoded, settings, num_layers, method):
    """The plan of one method on this input; BadInput when the method cannot apply to the model."""
    spec = METHODS[method]
    if spec.prunes and "vision" in spec.needs and not encoded.vision_scores:
        raise BadInput(unmet_need(method, encoded, 0))
    lowest = lowest_layer(method) if spec.prunes else 0
    return plan(encoded.groups, settings, num_layers, encoded.family, encoded.kind, first_layer_min=lowest,
                official=spec.official)


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


class LayerView:
    """What a method may ask about the sequence entering pruning layer k, each computed only when asked and
    once: the last prompt token's attention row at layer k-1 (from the cached keys) and at layer k itself
    (keys recomputed from the states entering k), SparseVLM's raters' rows at k-1, and DART's inputs. Rows are
    current rows of `hidden`; hidden_before is the sequence entering layer k-1 (the same rows)."""

    def __init__(self, model, family, k, hidden, cos, sin, keys_before, hidden_before):
        self.model, self.family, self.k = model, family, k
        self.hidden, self.cos, self.sin, self.keys_before = hidden, cos, sin, keys_before
        self.hidden_before = hidden_before
        self.last_before = hidden_before[:, -1:] if hidden_before is not None else None
        self.rows = {}

    def _cached(self, name, compute):
        if name not in self.rows:
            self.rows[name] = compute()
        return self.rows[name]

    def attention_before(self, rows):
        row = self._cached("before", lambda: attention.last_token_row(
            self.family.layer_parts(self.model, self.k - 1), self.last_before, self.cos[:, -1:], self.sin[:, -1:],
            self.keys_before))
        return row[rows.to(row.device)]

    def attention_at(self, rows):
        row = self._cached("at", lambda: attention.row_entering(
            self.family.layer_parts(self.model, self.k), self.hidden, self.cos, self.sin))
        return row[rows.to(row.device)]

    def rater_attention(self, rows, rater_rows):
        """SparseVLM's score: the rater tokens' head-mean attention at layer k-1 (causal), averaged over them."""
        key = ("raters", tuple(rater_rows.tolist()))
        matrix = self._cached(key, lambda: attention.rows_attention(
            self.family.layer_parts(self.model, self.k - 1), self.hidden_before, self.cos, self.sin,
            self.keys_before, rater_rows).mean(dim=0))
        return matrix[rows.to(matrix.device)]

    def duplication(self, rows, text_rows):
        """DART's inputs: final-normed states entering k and L1 key norms at k-1, visual rows and text after."""
        norm = self.family.text_model(self.model).norm
        normed = self._cached("normed", lambda: norm(self.hidden[0].to(norm.weight.device)))
        norms = self._cached("key_norms", lambda: attention.key_l1_norms(self.keys_before))
        pick = lambda x, r: x[r.to(x.device)]  # noqa: E731
        return pick(normed, rows), pick(norms, rows), pick(normed, text_rows), pick(norms, text_rows)


def raters(encoded, group_index):
    """SparseVLM's text raters of one group: the sequence positions of the text tokens after the image that are
    most relevant to it. From the decoder's input embeddings (layer 0): softmax over the text tokens of each
    visual token's dot product with them, averaged over the visual tokens; the raters are the text tokens
    above the mean of those scores (SparseVLM v1.5, `modelling_sparse_llama.py`)."""
    group = encoded.groups[group_index]
    embeds = encoded.inputs_embeds[0]
    visual = torch.zeros(embeds.shape[0], dtype=torch.bool, device="cpu")
    for g in encoded.groups:
        visual[g.positions.cpu()] = True
    text = (~visual & (torch.arange(embeds.shape[0], device="cpu") > int(group.positions[-1]))).nonzero().flatten()
    if len(text) == 0:
        return text
    relevance = (embeds[group.positions.to(embeds.device)].float() @ embeds[text.to(embeds.device)].float().T)
    score = relevance.softmax(dim=-1).mean(dim=0).cpu()
    return text[score > score.mean()] if len(text) > 1 else text


def stage_inputs(group_index, stage_index, k, index, z_ref, view, encoded, settings):
    """StageInputs for one group: everything restricted to its alive tokens (current rows from `index`)."""
    alive, rows = index.alive[group_index], index.group_rows()[group_index]
    group = encoded.groups[group_index]
    text_after = ~index.is_visual[index.positions] & (index.positions > int(group.positions[-1]))
    text_rows = text_after.nonzero().flatten()
    pick = lambda values: values[group_index][alive] if values else None  # noqa: E731
    return StageInputs(
        stage=stage_index, grid=group.grid, alive=alive, k=k, seed=(settings.seed + encoded.content_seed) % 2**31,
        cutoff=settings.cutoff,
        temp=settings.temp, z_ref=None if z_ref is None else z_ref[group_index][alive],
        z_cur=view.hidden[0, rows.to(view.hidden.device)],
        attention=lambda: view.attention_before(rows), attention_at_k=lambda: view.attention_at(rows),
        duplication=lambda: view.duplication(rows, text_rows),
        raters=lambda: view.rater_attention(rows, index.rows(encoded.raters[group_index])),
        official=settings.schedule == "official", positions=group.positions.cpu()[alive],
        text_positions=index.positions[text_rows],
        vision_scores=pick(encoded.vision_scores), vision_keys=pick(encoded.vision_keys),
        vision_features=pick(encoded.vision_features), project=encoded.project)
