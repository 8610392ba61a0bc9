"""What a pruning stage may see, in one place for the engine's pruned runs and the diagnostics' reference
scores: which original positions are still rows (TokenIndex), what a method may ask about the sequence entering
the pruning layer (LayerView), the StageInputs of one group, and which methods can score at which layer (the
needs rule).
"""

import itertools
from dataclasses import dataclass, replace

import torch

from explorer.core.plan import plan
from explorer.methods import attention
from explorer.methods.registry import METHODS, StageInputs
from models.base import BadInput


# ------------------------------------------------------------------------------------------ the needs rule


def lowest_layer(method):
    """The lowest layer K a method can prune at: methods that look inside the decoder need a layer before K."""
    return 1 if {"attention", "reference"} & set(METHODS[method].needs) else 0


def scoring_layer(encoded, k):
    """The layer whose attention row an attention score reads for pruning at k: K - 1, or on a hybrid decoder
    (linear-attention, convolution or sliding-window layers beside full attention) the nearest full-attention
    layer before k; None where there is none."""
    readable = [j for j in encoded.attention_layers if j < k]
    return readable[-1] if readable else None


def unmet_need(method, encoded, k):
    """Why `method` cannot score at layer k of this input (a sentence for the user), or None."""
    spec = METHODS[method]
    if "vision" in spec.needs and not encoded.vision_scores:
        return (f"{method} reads the vision encoder's [CLS] attention to each patch, and this model has none "
                "that lies on the decoder's grid of visual tokens (no [CLS] token, or patches merged or "
                "rearranged before the decoder); choose another method")
    if k < lowest_layer(method):
        return f"{method} looks inside the decoder and needs a layer before the pruning layer (K >= 1)"
    if "attention" in spec.needs and scoring_layer(encoded, k) is None:
        return (f"{method} reads a full-attention layer's attention row, and this decoder has none before layer "
                f"{k} (its layers before it are linear-attention, convolution or sliding-window layers, which "
                f"have no such row over every token); choose a pruning layer after layer "
                f"{encoded.attention_layers[0] if encoded.attention_layers else '(none)'}, or another method")
    if "attention_at_k" in spec.needs and k not in encoded.attention_layers:
        return (f"{method} reads the attention row of the pruning layer {k} itself, which is not a full-attention "
                f"layer of this decoder (full attention at layers {', '.join(map(str, encoded.attention_layers))})")
    return None


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
    if spec.prunes and "vision" in spec.needs and not encoded.vision_scores:
        raise BadInput(unmet_need(method, encoded, 0))
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

    def _cached(self, name, compute):
        if name not in self.rows:
            self.rows[name] = compute()
        return self.rows[name]

    def _before_rows(self, rows):
        """The scoring layer's rows of these current rows."""
        return torch.searchsorted(self.before.positions, self.positions[rows.cpu()])

    def attention_before(self, rows):
        b = self.before
        row = self._cached("before", lambda: attention.last_token_row(
            self.family.layer_parts(self.model, b.layer), b.hidden[:, -1:],
            attention.on(b.rope, b.hidden.device, torch.tensor([b.hidden.shape[1] - 1], device="cpu")), b.keys))
        return row[self._before_rows(rows).to(row.device)]

    def attention_at(self, rows):
        row = self._cached("at", lambda: attention.row_entering(
            self.family.layer_parts(self.model, self.k), self.hidden, self.rope))
        return row[rows.to(row.device)]

    def rater_attention(self, rows, rater_positions):
        """SparseVLM's score: the rater tokens' head-mean attention at the scoring layer (causal), averaged over
        them."""
        b = self.before
        rater_rows = torch.searchsorted(b.positions, rater_positions.cpu())
        key = ("raters", tuple(rater_rows.tolist()))
        matrix = self._cached(key, lambda: attention.rows_attention(
            self.family.layer_parts(self.model, b.layer), b.hidden, b.rope, b.keys, rater_rows).mean(dim=0))
        return matrix[self._before_rows(rows).to(matrix.device)]

    def duplication(self, rows, text_rows):
        """DART's inputs: final-normed states entering k and L1 key norms at the scoring layer, visual rows and
        text after."""
        norm = self.family.final_norm(self.model)
        normed = self._cached("normed", lambda: norm(self.hidden[0].to(norm.weight.device)))
        norms = self._cached("key_norms", lambda: attention.key_l1_norms(self.before.keys))
        pick = lambda x, r: x[r.to(x.device)]  # noqa: E731
        return (pick(normed, rows), pick(norms, self._before_rows(rows)), pick(normed, text_rows),
                pick(norms, self._before_rows(text_rows)))


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
        raters=lambda: view.rater_attention(rows, encoded.raters[group_index]),
        official=settings.schedule == "official", positions=group.positions.cpu()[alive],
        text_positions=index.positions[text_rows],
        vision_scores=pick(encoded.vision_scores), vision_keys=pick(encoded.vision_keys),
        vision_features=pick(encoded.vision_features), project=encoded.project)
