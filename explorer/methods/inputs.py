"""What a method may read at a pruning stage, by name: one table (INPUTS) of the named inputs, each a function
computing it for one group's alive tokens from where the stage stands (`at`: explorer/core/stage.py's At, with
the view of the sequence entering the pruning layer, the token index and the encoded input), with what a model
or layer must give for it. A method's registry line names the inputs it reads (`needs`); the engine computes an
input only when a method reads it, once per group and stage (the view computes what groups share, such as an
attention row, once per stage). Adding an input is one function and one line here.

Every method also reads the stage's facts, named in no line: stage, grid, alive, k, seed, cutoff, temp, official
and positions (StageInputs' class attributes give the defaults of a hand-built one).
"""

from dataclasses import dataclass
from typing import Callable

import torch


# ------------------------------------------------------------------------------------------ what a layer must give


def scoring_layer(encoded, k):
    """The layer whose attention row an attention score reads for pruning at k: K - 1, or on a hybrid decoder
    (linear-attention, convolution or sliding-window layers beside full attention) the nearest full-attention
    layer before k; None where there is none."""
    readable = [j for j in encoded.attention_layers if j < k]
    return readable[-1] if readable else None


def full_attention_before(method, encoded, k):
    if k is not None and scoring_layer(encoded, k) is None:
        return (f"{method} reads a full-attention layer's attention row, and this decoder has none before layer "
                f"{k} (its layers before it are linear-attention, convolution or sliding-window layers, which "
                f"have no such row over every token); choose a pruning layer after layer "
                f"{encoded.attention_layers[0] if encoded.attention_layers else '(none)'}, or another method")
    return None


def full_attention_at(method, encoded, k):
    if k is not None and k not in encoded.attention_layers:
        return (f"{method} reads the attention row of the pruning layer {k} itself, which is not a full-attention "
                f"layer of this decoder (full attention at layers {', '.join(map(str, encoded.attention_layers))})")
    return None


def vision_row(method, encoded, k):
    if not encoded.vision_scores:
        return (f"{method} reads the vision encoder's [CLS] attention to each patch, and this model has none "
                "that lies on the decoder's grid of visual tokens (no [CLS] token, or patches merged or "
                "rearranged before the decoder); choose another method")
    return None


# ------------------------------------------------------------------------------------------ the inputs


def pick(per_group, at):
    """One group's alive rows of a per-group list from the encoded input, or None where the model gives none."""
    return per_group[at.group][at.alive] if per_group else None


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


@dataclass(frozen=True)
class Input:
    """A named input: how to compute it, and what it needs of the model and the pruning layer K."""

    compute: Callable  # at -> the input for the group's alive tokens (first axis: its alive tokens, in order)
    lowest_layer: int = 0  # the lowest K it exists at (1: it reads a layer before K)
    unmet: Callable = None  # (method, encoded, k) -> why this model (k None: at any layer) or layer k cannot give
    # it, a sentence for the user, or None
    about: str = ""  # what it is, for the docs and errors


INPUTS = {
    "z_cur": Input(lambda at: at.view.hidden[0, at.rows.to(at.view.hidden.device)],
                   about="[n, C] hidden states entering the pruning layer K"),
    "z_ref": Input(lambda at: None if at.z_ref is None else at.z_ref[at.group][at.alive], lowest_layer=1,
                   about="[n, C] hidden states entering the reference layer L (L < K)"),
    "attention": Input(lambda at: at.view.attention_before(at.rows), 1, full_attention_before,
                       about="[n] float32: the last prompt token's head-mean attention at the scoring layer "
                             "(K - 1, or the nearest full-attention layer before K)"),
    "attention_at_k": Input(lambda at: at.view.attention_at(at.rows), unmet=full_attention_at,
                            about="[n]: the same row at layer K itself, from the states entering K"),
    "duplication": Input(lambda at: at.view.duplication(at.rows, at.text_rows), 1, full_attention_before,
                         about="DART's (hidden, key_norms, text_hidden, text_key_norms) at K"),
    "raters": Input(lambda at: at.view.rater_attention(at.rows, raters(at.encoded, at.group)), 1,
                    full_attention_before, about="[n]: SparseVLM's text raters' mean head-mean attention at the "
                                                 "scoring layer"),
    "text_positions": Input(lambda at: at.index.positions[at.text_rows],
                            about="sequence positions of the text tokens after the group (CPU)"),
    "vision": Input(lambda at: pick(at.encoded.vision_scores, at), unmet=vision_row,
                    about="[n] the vision tower's [CLS] attention to each patch"),
    "vision_keys": Input(lambda at: pick(at.encoded.vision_keys, at),
                         about="[n, d] head-averaged keys of that vision layer (None where the model gives none)"),
    "vision_features": Input(lambda at: pick(at.encoded.vision_features, at),
                             about="[n, Dv] the vision features entering the family's projector (or None)"),
    "project": Input(lambda at: at.encoded.project,
                     about="features [m, Dv] -> decoder inputs [m, D]: the family's projector (or None)"),
}


def check_needs(needs, owner="a method"):
    """needs as a tuple of known input names; ValueError naming the unknown ones and the known ones."""
    unknown = [name for name in needs if name not in INPUTS]
    if unknown:
        raise ValueError(f"{owner} needs unknown input(s) {', '.join(map(repr, unknown))}; the inputs are "
                         f"{', '.join(INPUTS)} (explorer/methods/inputs.py)")
    return tuple(needs)


class StageInputs:
    """What a method reads for one group at one stage: the stage's facts, given, and the inputs its registry line
    names, each computed from `at` when first read and kept. Reading an input the line does not name is an
    error (the line is what the engine relies on). Tests build one by hand from keywords alone."""

    stage, grid, alive, k, seed, cutoff, temp, official, positions = 0, None, None, 0, 0, 0.1, 0.1, False, None

    def __init__(self, at=None, method="", needs=(), **given):
        self._at, self._method, self._needs = at, method, needs
        self.__dict__.update(given)

    def __getattr__(self, name):  # called only for what is not set yet
        if name.startswith("_") or name not in INPUTS or self._at is None:
            raise AttributeError(name)
        if name not in self._needs:
            raise AttributeError(f"{self._method} reads {name!r}, which its registry line does not name in "
                                 f"`needs` ({', '.join(self._needs) or 'none'})")
        value = self.__dict__[name] = INPUTS[name].compute(self._at)
        return value
