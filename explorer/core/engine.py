"""The pruning engine: runs a stock transformers multimodal model's own decoder, prunes visual tokens at the
planned stages with any registered method from hooks around the decoder's layers, decodes greedily with the KV
cache and returns a Record of what happened.

Flow: media -> family.build_inputs (real processor) -> encode (vision tower + merge, captured at the decoder's
door with every argument the wrapper gives the decoder) -> run (plan, prefill with pruning, decode) -> Record.
The decoder's forward is the stock one, so whatever a model does there (multimodal rotary positions,
bidirectional image blocks, sliding-window, chunked, linear-attention or convolution layers, per-layer inputs,
its own cache classes) happens as in `generate`; a pruning stage only removes rows, and every later layer gets
the decoder's arguments restricted to the rows left (`restrict`). With `capture=True` the run also keeps the
visual rows of the hidden states entering every layer, so the diagnostics (explorer/core/diagnostics.py) are
computed after the run from that record; comparing several methods on one input is explorer/core/compare.py,
one floor up. Attention stays SDPA (or whatever the model was loaded with). The engine knows no family: it
calls the contract of models/base.py (models.base.Family), whose defaults serve any model.

Choices (docs/methods.md): batch size 1; kept tokens keep their original position ids, so RoPE sees gaps, as in the
paper, or (positions="renumber", what official DivPrune, VisionZip, PyramidDrop and SparseVLM do) the shortened
sequence is numbered 0.. again after each stage, its rotary inputs those of the new numbers (1-D rotary
positions only); layers before a stage keep (early_kv="keep") or drop ("prune") the pruned tokens in their KV
cache.
Every tensor the engine makes names its device: the model's for anything that meets the model, the CPU for
bookkeeping. Scores are computed in float32 and ranked in float64 whatever the model's dtype.
"""

import hashlib
import itertools
from dataclasses import dataclass

import torch

from explorer.core.devices import clock, device_of
from explorer.core.record import Record, Stage
from explorer.core.settings import check_settings
from explorer.core import interrupt
from explorer.core.stage import At, Before, LayerView, TokenIndex, method_plan, reads_scoring_layer, stage_inputs
from explorer.methods import attention, baselines, scoring
from explorer.methods.inputs import scoring_layer
from explorer.methods.registry import METHODS, check_method, select_top
from models.base import BadInput, decoder_shape

TIE_AT_CUT = "tie at the cut"  # in a note of record.notes when a stage's cut fell inside a tie (tie_note)


class _Captured(Exception):
    pass


@dataclass
class Encoded:
    """What the wrapper feeds the decoder for one request (computed once, reused by every method)."""

    family: object  # the models/ module of this model
    kind: str  # "image" or "video"
    input_ids: torch.Tensor  # [1, S]
    inputs_embeds: torch.Tensor  # [1, S, D] with visual features merged in
    position_ids: torch.Tensor  # [1, S], or [3, 1, S] for multimodal rotary positions
    groups: list  # VisualGroup per image / video
    vision_ms: float
    vision_scores: list = None  # per group, scores from the vision tower (methods that prune before the decoder)
    content_seed: int = 0  # from the pixels: `random` draws another subset for every input, reproducibly
    vision_keys: list = None  # per group, [count, d] head-averaged keys of that vision layer (VisionZip's merge)
    vision_features: list = None  # per group, [count, Dv] the features entering the family's projector
    project: object = None  # features [m, Dv] -> decoder inputs [m, D]: the family's projector
    injections: list = None  # [models.base.Injection]: what the text model adds after some layers (DeepStack)
    arguments: dict = None  # every other argument the wrapper passed its decoder (masks, position ids, ...)
    attention_layers: list = None  # the decoder layers whose attention rows a score can read (full attention)


# What the wrapper passes its decoder that the engine sets itself (or that is never a model input).
OWN_ARGUMENTS = ("input_ids", "inputs_embeds", "past_key_values", "use_cache", "return_dict", "output_attentions",
                 "output_hidden_states", "cache_position", "logits_to_keep")


def encode(model, family, inputs, kind="image"):
    """Run the vision tower and the merge through the stock forward, stopping at the decoder's door: the merged
    embeddings and every other argument the wrapper passes its decoder (position ids of any rank, masks
    including bidirectional image blocks, per-layer inputs, ...), so the engine's decoder run gets exactly what
    the stock one gets. Where the family names a vision [CLS] attention, its row over every image's patches is
    read on the way, with that layer's keys and the features entering the family's projector (what
    VisionZip's contextual tokens merge)."""
    captured, vision_inputs, projector_inputs = {}, [], []

    def grab(module, args, kwargs):
        captured.update(kwargs)
        if args:
            captured.setdefault("input_ids", args[0])
        raise _Captured

    lm = family.text_model(model)
    device = device_of(lm)
    inputs = inputs.to(device).to(model.dtype)  # floating-point tensors (pixels) in the model's dtype, as users do
    handles = [lm.register_forward_pre_hook(grab, with_kwargs=True)]
    vision = family.vision_attention(model)
    projector = family.feature_projector(model) if vision is not None else None
    if vision is not None:
        handles.append(vision[0].register_forward_pre_hook(
            lambda module, args, kwargs: vision_inputs.append(kwargs["hidden_states"]), with_kwargs=True))
    if projector is not None:
        handles.append(projector.register_forward_pre_hook(
            lambda module, args: projector_inputs.append(args[0])))
    start = clock(device)
    try:
        with torch.inference_mode():
            model(**inputs, use_cache=False)
    except _Captured:
        pass
    finally:
        for handle in handles:
            handle.remove()
    vision_ms = (clock(device) - start) * 1e3
    embeds = captured["inputs_embeds"]
    if embeds is None:  # a wrapper that hands its decoder token ids (the decoder embeds them itself)
        embeds = lm.embed_tokens(captured["input_ids"])
    groups = family.visual_groups(model, inputs, kind=kind)
    injections = family.injections(model, captured, groups)
    arguments = {name: value for name, value in captured.items()
                 if name not in OWN_ARGUMENTS and name not in family.INJECTED_ARGUMENTS}
    position_ids = captured.get("position_ids")
    if position_ids is None:  # the decoder numbers the tokens 0.. itself
        position_ids = torch.arange(embeds.shape[1], device=embeds.device).unsqueeze(0)
    encoded = Encoded(family, kind, inputs["input_ids"], embeds, family.decoder_positions(position_ids), groups,
                      vision_ms, content_seed=content_seed(inputs), arguments=arguments,
                      attention_layers=family.attention_layers(model, embeds.shape[1]))
    if vision_inputs:
        encoded.vision_scores = vision_cls_scores(vision, vision_inputs[0], groups)
        encoded.vision_keys = per_group(list(vision_keys(vision, vision_inputs[0])), groups)
    if encoded.vision_scores and projector_inputs:
        encoded.vision_features = per_group(list(projector_inputs[0]), groups)
        encoded.project = projector
    encoded.injections = injections
    return encoded


def encode_input(model, processor, family, images, question, kind="image", prompt="chat", history=()):
    """media -> the family's real processor call -> the engine's Encoded (vision tower and merge, once). A video
    sampled from a file carries its frames' times (media.read.Frames.timing) to the processor; history: the
    conversation's earlier turns [(question, answer)]."""
    inputs = family.build_inputs(processor, images, question, kind=kind, prompt=prompt,
                                 timing=getattr(images, "timing", None), history=tuple(history))
    return encode(model, family, inputs, kind=kind)


def content_seed(inputs):
    """A 31-bit number from the input's pixels (every floating-point tensor the processor made)."""
    digest = hashlib.sha1()
    for value in inputs.values():
        if torch.is_tensor(value) and value.is_floating_point():
            digest.update(value.detach().to("cpu", torch.float32).numpy().tobytes())
    return int.from_bytes(digest.digest()[:4], "big") >> 1


def per_group(per_image, groups):
    """Per-image rows (one tensor per image or frame, its patches in order) -> one tensor per group (its images
    or frames in order), or None when the rows are not the group's tokens (a tower whose patches are merged or
    cropped before the decoder)."""
    out, start = [], 0
    for group in groups:
        frames = group.grid[0] if group.kind == "video" else 1
        rows = torch.cat(per_image[start:start + frames])
        start += frames
        if len(rows) != group.count:
            return None
        out.append(rows)
    return out


def vision_cls_scores(vision, hidden_states, groups):
    """Per group, the [CLS] attention to each patch of its images (frames in order), [count] float64."""
    module, cls_index = vision
    with torch.inference_mode():
        per_image = [baselines.visionzip_scores(attention.cls_row(module, h[None], cls_index), cls_index)
                     for h in hidden_states]
    return per_group(per_image, groups)


def vision_keys(vision, hidden_states):
    """Per image, [patches, head_dim] keys of the vision layer averaged over heads, the CLS row left out."""
    module, cls_index = vision
    with torch.inference_mode():
        keys = module.k_proj(hidden_states).view(*hidden_states.shape[:2], module.num_heads, module.head_dim)
        keys = keys.mean(dim=2)
    return torch.cat([keys[:, :cls_index], keys[:, cls_index + 1:]], dim=1)


def cache_bytes(cache):
    """Every tensor the cache holds: keys and values of attention layers, the fixed-size convolution and
    recurrent states of linear-attention and convolution layers."""
    total = 0
    for layer in cache.layers:
        tensors = [getattr(layer, "keys", None), getattr(layer, "values", None)]
        for states in (getattr(layer, "conv_states", None), getattr(layer, "recurrent_states", None)):
            tensors += list(states.values()) if isinstance(states, dict) else [states]
        total += sum(t.numel() * t.element_size() for t in tensors if torch.is_tensor(t))
    return total


def layer_flops(n, hidden, mlp, gated=False):
    """One decoder layer with n tokens, in multiply-accumulates, FastV's convention with the MLP the model has:
    4 n d^2 (the q, k, v and o projections) + 2 n^2 d (scores and weighted values) + the MLP: 2 n d m for a
    plain one (up and down projections, FastV's formula), 3 n d m for a gated one (SwiGLU / GeGLU: gate, up and
    down)."""
    return 4 * n * hidden**2 + 2 * n**2 * hidden + (3 if gated else 2) * n * hidden * mlp


def eos_ids(model, processor):
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, (list, tuple)) else [ids] if ids is not None else [])
    if processor.tokenizer.eos_token_id is not None:
        ids.add(processor.tokenizer.eos_token_id)
    return ids


def tie_note(scores, k):
    """A warning when the k-th and (k+1)-th highest scores are equal: the cut then falls inside a tie, which
    select_top breaks towards earlier tokens (top rows), a positional effect of the tie-break rather than of
    the score. CLSE does this when its evolution intensity clamps to 1 for most tokens."""
    if k >= len(scores) or k == 0:
        return None
    ordered = torch.sort(scores, descending=True).values
    if ordered[k - 1] != ordered[k]:
        return None
    tied = int((scores == ordered[k]).sum())
    return (f"{tied} of {len(scores)} scores {TIE_AT_CUT} ({float(ordered[k]):.4g}); the tie was broken "
            "towards earlier tokens (top rows)")


# ------------------------------------------------------------------------------------------------ the run


def joint_counts(groups, ranked, counts):
    """rank="joint": per group, how many of its tokens one ranking over each image's grids keeps (groups sharing
    a unit: LLaVA-NeXT's base and tiles, InternVL's tiles and thumbnail): the unit's budget (its groups' counts
    summed) filled by the highest scores of all its grids together, ties to the earlier token (the earlier
    grid), at least one a grid; a group of its own keeps its count. Each group then keeps its share by its own
    ranking (select_top), which is the joint selection restricted to it."""
    units = {}
    for gi, group in enumerate(groups):
        unit = getattr(group, "unit", None)
        units.setdefault(("unit", unit) if unit is not None else ("own", gi), []).append(gi)
    out = list(counts)
    for members in units.values():
        if len(members) < 2:
            continue
        scores = torch.cat([ranked[gi] for gi in members])
        owner = torch.cat([torch.full((len(ranked[gi]),), gi, dtype=torch.long, device="cpu") for gi in members])
        total = min(sum(counts[gi] for gi in members), len(scores))
        chosen = owner[torch.sort(scores, descending=True, stable=True).indices[:total]]
        for gi in members:
            out[gi] = int((chosen == gi).sum())
        for gi in members:  # every grid keeps a token (a later stage scores each grid's alive tokens)
            if out[gi] == 0:
                out[max(members, key=lambda g: out[g])] -= 1
                out[gi] = 1
    return out


def prune_stage(state, view, counts):
    """Score every group's alive tokens, keep counts[g] of each (rank "joint": the counts an image's grids ranked
    together give them, joint_counts; in the official schedule a method that merges also keeps merged tokens:
    its merge decides); returns (the current rows to keep, the merged tokens as [(their current row, decoder
    input)])."""
    index, settings, record = state.index, state.settings, state.record
    stage_index = len(record.stages)
    scorer = state.method if stage_index == 0 else (METHODS[state.method].later or state.method)
    spec = METHODS[scorer]
    scores_all = torch.full((sum(g.count for g in index.groups),), float("nan"), dtype=torch.float64, device="cpu")
    picks, merges, scored = [], [], []
    for gi in range(len(index.groups)):
        inputs = stage_inputs(scorer, At(gi, view, index, state.encoded, state.z_ref), stage_index, counts[gi],
                              settings)
        scores = spec.score(inputs).float().cpu().double()  # ranked in float64 on the host
        scores_all[index.offsets[gi] + index.alive[gi]] = scores
        scored.append((inputs, -scores if settings.invert else scores))
    if state.plan.rank == "joint" and len(index.groups) > 1:
        planned, counts = counts, joint_counts(index.groups, [r for _, r in scored], counts)
        if counts != list(planned):
            record.notes.append(f"layer {view.k}: the grids ranked jointly kept {'/'.join(map(str, counts))} "
                                f"(fixed quotas per grid: {'/'.join(map(str, planned))})")
    for gi, (inputs, ranked) in enumerate(scored):
        inputs.k = counts[gi]  # the joint ranking's count (the inputs were made with the planned one)
        note = tie_note(ranked, counts[gi])
        if note:
            record.notes.append(f"{scorer}, layer {view.k}, group {gi}: {note}")
        if settings.schedule == "official" and spec.merge is not None:
            kept, merged = spec.merge(inputs, ranked, counts[gi])
        else:
            kept, merged = select_top(ranked, counts[gi]), []
        centres = torch.tensor([m[0] for m in merged], dtype=torch.long, device="cpu")
        picks.append(torch.cat([kept, centres]).sort().values)
        merges.append(merged)
    centres = [(gi, int(index.alive[gi][c]), vector) for gi, merged in enumerate(merges) for c, _, vector in merged]
    absorbed = index.merge(merges)  # before restrict: the merges name positions in the alive tokens
    rows = index.restrict(picks)
    written = [(int(index.rows(state.encoded.groups[gi].positions[local:local + 1])[0]), vector)
               for gi, local, vector in centres]
    record.stages.append(Stage(layer=view.k, scorer=scorer, keep_counts=[len(a) for a in index.alive],
                               scores=scores_all.tolist(), keep_indices=index.kept_indices(), merged=absorbed))
    return rows, written


def merged_last(hidden, group_rows, merged_rows):
    """Renumbered positions after a one-stage merge (VisionZip's official schedule): within each group the merged
    tokens come after the kept ones, as its code concatenates them (dominant, then contextual). The rows keep
    their bookkeeping (which patches each row stands for, for the record); only the order of their contents
    changes, which with positions numbered 0.. by row and a causal mask is what the placement decides. Not
    after a stage with another stage to come (SparseVLM's three): a later stage reads rows by that bookkeeping."""
    order = torch.arange(hidden.shape[1], device="cpu")
    for rows in group_rows:
        rows = rows.tolist()
        later = [r for r in rows if r in merged_rows]
        if later:
            order[rows] = torch.tensor([r for r in rows if r not in merged_rows] + later, dtype=torch.long,
                                       device="cpu")
    return hidden[:, order.to(hidden.device)]


def inject(hidden, injections, layer_idx, index):
    """Add what the text model adds after this layer (DeepStack's features) to the rows of the positions still
    alive; a pruned position's features are dropped with it."""
    for injection in injections or ():
        if injection.after_layer != layer_idx:
            continue
        positions = injection.positions.cpu()
        rows = index.rows(positions)
        alive = (rows < len(index.positions)) & (index.positions[rows.clamp(max=len(index.positions) - 1)]
                                                  == positions)
        if alive.any():
            hidden = hidden.clone()
            target = rows[alive].to(hidden.device)
            hidden[0, target] += injection.features[alive.to(injection.features.device)].to(hidden.device,
                                                                                             hidden.dtype)
    return hidden


def holds_every_token(layer):
    """A cache layer with every token's keys and values (full attention), not a window or a recurrent state."""
    return torch.is_tensor(getattr(layer, "keys", None)) and not getattr(layer, "is_sliding", False)


def trim_early_cache(cache, layer_idx, rows):
    """early_kv="prune": layers before this stage drop the pruned tokens from their KV cache too. Only layers
    holding every token can: a sliding window keeps the last tokens and a linear-attention or convolution
    layer a fixed-size state, with no per-token rows to drop."""
    for layer in cache.layers[:layer_idx]:
        if holds_every_token(layer):
            index = rows.to(layer.keys.device)
            layer.keys, layer.values = layer.keys[:, :, index], layer.values[:, :, index]


def restrict(name, value, positions, length):
    """One argument the stock decoder built for its whole `length`-token sequence, restricted to the rows still
    in the sequence (their original `positions`): both sequence axes of a 4-D mask, the axis after the batch
    of everything else (hidden-sized tensors, rotary inputs, per-layer inputs), the last axis of multimodal
    position ids ([3, B, S]: the batch axis has size 1). Non-tensors pass unchanged."""
    if positions is None or value is None:
        return value
    if isinstance(value, (tuple, list)):
        return type(value)(restrict(name, v, positions, length) for v in value)
    if isinstance(value, dict):
        return {key: restrict(key, v, positions, length) for key, v in value.items()}
    if not torch.is_tensor(value):
        if type(value).__name__ == "BlockMask":
            raise BadInput("this model was loaded with flex attention, whose block masks cannot follow pruned "
                           "tokens; load it with attn_implementation='sdpa' or 'eager'")
        return value
    axes = [d for d in range(1 if value.dim() > 1 else 0, value.dim()) if value.shape[d] == length]
    for axis in axes if name == "attention_mask" else axes[:1]:
        value = value.index_select(axis, positions.to(value.device))
    return value


def logits_of(model, hidden):
    """The LM head over final-normed hidden states (the wrapper's, or its decoder's where a causal-LM decoder
    holds it: Nemotron-H), scaled and soft-capped as the families that do it (Muse's output_multiplier, Gemma's
    final_logit_softcapping): what the stock forward returns."""
    head = model.get_output_embeddings() or model.get_decoder().get_output_embeddings()
    logits = head(hidden)
    text_config = model.config.get_text_config()
    multiplier = getattr(text_config, "output_multiplier", None)
    if multiplier:
        logits = logits * multiplier
    cap = getattr(text_config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def _hidden_of(args, kwargs):
    return args[0] if args else kwargs["hidden_states"]


def _with_hidden(args, kwargs, hidden):
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


class _Hooks:
    """Hooks around every decoder layer, removed on exit whatever happens; they run before any other hook on
    the layer, so others see the sequence the layer really gets."""

    def __init__(self, layers, enter=None, leave=None):
        self.handles = []
        for i, layer in enumerate(layers):
            if enter:
                self.handles.append(layer.register_forward_pre_hook(enter(i), with_kwargs=True, prepend=True))
            if leave:
                self.handles.append(layer.register_forward_hook(leave(i), with_kwargs=True, prepend=True))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()


@dataclass
class RunState:
    """One run: what it was asked (model, encoded input, method, settings, plan), what it writes (the record, and
    the capture where asked) and where its prefill stands (the rows left, the states entering the reference
    layer L, the scoring layer's Before, whether a stage has pruned)."""

    model: object
    encoded: Encoded
    method: str
    settings: object
    plan: object
    record: Record
    capture: dict = None  # the visual rows entering every layer and the view at K (diagnostics), where asked
    index: TokenIndex = None
    z_ref: list = None
    before: Before = None
    pruned: bool = False
    pre_injection: tuple = None  # (K, the states entering K before layer K-1's DeepStack injection): scoring_point


def prefill(state):
    """The decoder over the prompt, run by the stock decoder itself (its own masks, rotary inputs, layer types,
    per-layer inputs and cache), pruning at the planned stages from hooks around its layers: before a stage's
    layer the method scores the alive visual tokens and the hidden states lose the pruned rows; every layer
    from then on gets each argument the decoder built for the whole sequence restricted to the kept rows
    (restrict), so kept tokens keep their original positions. Returns (the final-normed hidden states, cache).
    state.capture (a dict) receives the visual rows entering every layer and the view a method had at layer K."""
    model, encoded, the_plan, record, capture = state.model, state.encoded, state.plan, state.record, state.capture
    lm = encoded.family.text_model(model)
    length = encoded.inputs_embeds.shape[1]
    index = state.index = TokenIndex(length, encoded.groups)
    stage_at = dict(the_plan.stages) if METHODS[state.method].prunes else {}
    readable = set(encoded.attention_layers)
    last_layer = len(lm.layers) - 1

    memo = {}  # the decoder hands every layer of a kind the same tensors: restrict each once per stage
    renumber = the_plan.positions == "renumber" and bool(stage_at)

    def restricted(name, value, kept):
        if kept is None or value is None:
            return value
        if renumber and name.startswith("position"):  # numbered 0..n-1: the rows of positions 0..n-1 (the
            kept = torch.arange(len(kept), device="cpu")  # decoder's positions are 0..S-1, method_plan checks)
        key = (name, id(value), len(kept))
        if key not in memo:
            memo[key] = (value, restrict(name, value, kept, length))  # the value held: its id stays its own
        return memo[key][1]

    def visual_rows(hidden):
        return hidden[0, torch.cat(index.group_rows()).to(hidden.device)]

    def enter(i):
        def hook(module, args, kwargs):
            interrupt.check("prefill", i)  # the visitor may have left (explorer/core/interrupt.py)
            hidden, cache = _hidden_of(args, kwargs), kwargs.get("past_key_values")
            kept = index.positions if state.pruned else None
            rope = restricted("position_embeddings", kwargs.get("position_embeddings"), kept)
            before = state.before
            if before is not None and before.keys is None:  # the scoring layer has run: its keys are cached
                before.keys = cache.layers[before.layer].keys
            if i in stage_at or (capture is not None and i == the_plan.prune_layer):
                scored = hidden  # the states entering i; scoring_point "before": without layer i-1's DeepStack
                if state.pre_injection is not None and state.pre_injection[0] == i:
                    scored = state.pre_injection[1]
                view = LayerView(model, encoded.family, i, scored, rope, index.positions.clone(), before)
            if i in stage_at:
                start = clock(hidden.device)
                rows, merged = prune_stage(state, view, stage_at[i])
                hidden = hidden[:, rows.to(hidden.device)]
                for row, vector in merged:  # a merged token takes its centre's slot and position id
                    hidden[0, row] = vector.to(hidden.device, hidden.dtype)
                if renumber and merged and len(stage_at) == 1:  # numbered 0..: the order is what differs
                    hidden = merged_last(hidden, index.group_rows(), {row for row, _ in merged})
                    record.notes.append("positions renumbered: the merged tokens after the kept ones in each group, "
                                        "as the official code concatenates them")
                if the_plan.early_kv == "prune":
                    trim_early_cache(cache, i, rows)
                    if before is not None:  # its cached keys lost the same rows
                        before.hidden = before.hidden[:, torch.searchsorted(before.positions, index.positions)
                                                      .to(before.hidden.device)]
                        before.keys, before.positions = cache.layers[before.layer].keys, index.positions.clone()
                state.pruned = True
                record.timings_ms["scoring"] += (clock(hidden.device) - start) * 1e3
            kept = index.positions if state.pruned else None
            kwargs = {name: value if name == "past_key_values" else restricted(name, value, kept)
                      for name, value in kwargs.items() if name != "hidden_states"}
            if i in readable and (stage_at or capture is not None):
                state.before = Before(i, hidden, kwargs.get("position_embeddings"), None,
                                         index.positions.clone())
            if capture is not None:
                capture["visual"].append(visual_rows(hidden))
                if i == the_plan.prune_layer:
                    capture["view"] = view
            if i == the_plan.ref_layer:
                state.z_ref = [hidden[0, rows.to(hidden.device)] for rows in index.group_rows()]
            record.tokens_per_layer.append(hidden.shape[1])
            record.visual_per_layer.append(index.visual_count())
            return _with_hidden(args, kwargs, hidden)
        return hook

    def leave(i):
        def hook(module, args, kwargs, output):
            hidden = output[0] if isinstance(output, tuple) else output
            entering = hidden
            hidden = inject(hidden, encoded.injections, i, index)
            if hidden is not entering and i + 1 in stage_at:
                if state.settings.scoring_point == "before":
                    state.pre_injection = (i + 1, entering)
                record.notes.append(f"the stage at layer {i + 1} scored the states entering it "
                                    + (f"before layer {i}'s DeepStack injection (scoring point before, as PriorTR's "
                                       "port)" if state.settings.scoring_point == "before" else
                                       f"after layer {i}'s DeepStack injection (scoring point after, the stock order)"))
            if capture is not None and i == last_layer:
                capture["visual"].append(visual_rows(hidden))
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden
        return hook

    with _Hooks(lm.layers, enter, leave):
        out = lm(inputs_embeds=encoded.inputs_embeds, use_cache=True, **encoded.arguments)
    record.kept_indices = index.kept_indices()
    record.merged = {str(n): a for n, a in sorted(index.absorbed.items())}
    return out.last_hidden_state, out.past_key_values


def fit_mask(mask, kv_length):
    """A 4-D mask built for one layer's cache length fitted to another's: causal masks of queries at the end of
    the keys are the same for the last keys, so a longer one keeps its last columns and a shorter one gains
    visible columns on the left. Layers hold different lengths once a stage pruned the layers from K on but
    kept the early ones' cache (early_kv="keep")."""
    have = mask.shape[-1]
    if have == kv_length:
        return mask
    if have > kv_length:
        return mask[..., have - kv_length:]
    visible = (torch.ones if mask.dtype == torch.bool else torch.zeros)((), dtype=mask.dtype, device=mask.device)
    pad = visible.expand(*mask.shape[:-1], kv_length - have)
    return torch.cat([pad, mask], dim=-1)


def extend(model, encoded, cache, ids, start_position, shifts=None):
    """Text tokens through the stock decoder on top of a (pruned) cache, at positions start_position.. (every
    row of multimodal position ids alike, as the stock model numbers text); returns the last token's logits
    (float32). Decoding feeds one token at a time this way; a follow-up question its whole turn. shifts: per
    layer, how many positions a renumbered prefill took off that layer's sequence (positions="renumber"): the
    layer then numbers the new tokens start_position - shift.., its rotary inputs recomputed for them."""
    lm = encoded.family.text_model(model)
    shape = (*encoded.position_ids.shape[:-1], len(ids))
    position = torch.arange(start_position, start_position + len(ids), device=encoded.position_ids.device)
    ropes = {}

    def enter(i):
        def hook(module, args, kwargs):
            interrupt.check("decoding step" if len(ids) == 1 else "follow-up's prefill", i)
            mask, layer = kwargs.get("attention_mask"), cache.layers[i] if i < len(cache.layers) else None
            if torch.is_tensor(mask) and mask.dim() == 4 and hasattr(layer, "get_mask_sizes"):
                kwargs["attention_mask"] = fit_mask(mask, layer.get_mask_sizes(len(ids))[0])
            shift = shifts[i] if shifts else 0
            if shift:
                shifted = (position - shift).expand(shape)
                if shift not in ropes:
                    ropes[shift] = lm.rotary_emb(_hidden_of(args, kwargs), shifted)
                kwargs["position_embeddings"] = ropes[shift]
                if "position_ids" in kwargs:
                    kwargs["position_ids"] = shifted
            return args, kwargs
        return hook

    with _Hooks(lm.layers, enter):
        out = lm(input_ids=torch.tensor([ids], device=device_of(lm)), position_ids=position.expand(shape),
                 past_key_values=cache, use_cache=True)
    return logits_of(model, out.last_hidden_state[:, -1:])[0, -1].float()


def margins(logits):
    """Per row of `logits` ([..., vocabulary]), how far the greedy token's logit lies above the runner-up's: 0 where
    two tokens tie at the top (the decoding took the first of them). A small margin says the answer's token was a
    close call, which another dtype, device or kernel may decide the other way."""
    top = logits.float().topk(2, dim=-1).values
    return (top[..., 0] - top[..., 1]).tolist()


def decode(model, encoded, cache, first_logits, stop_ids, max_new_tokens, keep_logits=False, start_position=None,
           shifts=None):
    """Greedy decoding from the (pruned) cache; positions continue after the original sequence (or from
    start_position; each layer less its shift where the prefill renumbered, see extend). Returns (token ids,
    each token's margin (margins), the logits of every step as float32 CPU tensors when keep_logits, else [],
    the position id the next token would take)."""
    step_logits = [first_logits.cpu()] if keep_logits else []
    tokens, gaps = [int(first_logits.argmax())], [margins(first_logits)]
    next_position = int(encoded.position_ids.max()) + 1 if start_position is None else start_position
    while tokens[-1] not in stop_ids and len(tokens) < max_new_tokens:
        logits = extend(model, encoded, cache, [tokens[-1]], next_position, shifts)
        next_position += 1
        tokens.append(int(logits.argmax()))
        gaps.append(margins(logits))
        if keep_logits:
            step_logits.append(logits.cpu())
    return tokens, gaps, step_logits, next_position


@dataclass
class Continuation:
    """Where a run's conversation stands: its KV cache (pruned as it was), the token ids the cache holds (the
    prompt, then every generated token but the last, which was never fed) and the next token's position id."""

    cache: object
    ids: list
    next_position: int
    shifts: list = None  # per layer, the positions a renumbered prefill took off (extend)


def decoder_notes(encoded, method, the_plan, num_layers):
    """What a decoder with layers other than full attention changes about a pruned run: which layer an attention
    score read, and where pruning saves no cache."""
    spec, notes = METHODS[method], []
    if not spec.prunes:
        return notes
    for n, (layer, _) in enumerate(the_plan.stages):
        scorer = method if n == 0 else (spec.later or method)
        j = scoring_layer(encoded, layer)
        if reads_scoring_layer(scorer) and j is not None and j != layer - 1:
            notes.append(f"{scorer} read layer {j}'s attention row for the stage at layer {layer}: the nearest "
                         "full-attention layer before it")
    others = [i for i in range(num_layers) if i not in encoded.attention_layers]
    if others:
        notes.append(f"layers {', '.join(map(str, others))} are not full-attention layers (linear attention, "
                     "convolution, or a sliding window or chunk shorter than the prompt): pruning shortens the "
                     "sequence they process, but they keep a fixed-size state or window, so it frees little or no "
                     "per-token cache there")
    return notes


def new_record(model, encoded, method, settings, the_plan, question):
    lm = encoded.family.text_model(model)
    groups = encoded.groups
    offsets = list(itertools.accumulate([g.count for g in groups], initial=0))
    first_parameter = next(lm.parameters())
    return Record(
        model=str(getattr(model, "name_or_path", "")), method=method, question=question, answer="", answer_ids=[],
        groups=[{"kind": g.kind, "grid": list(g.grid), "offset": offsets[i], "count": g.count,
                 "first_position": int(g.positions[0]), "unit": g.unit, "name": g.name}
                for i, g in enumerate(groups)],
        visual_tokens=offsets[-1], text_tokens=encoded.inputs_embeds.shape[1] - offsets[-1],
        num_layers=len(lm.layers), prune_layer=the_plan.prune_layer, ref_layer=the_plan.ref_layer,
        schedule=settings.schedule,
        budget={"requested": settings.keep, "keep_per_group": the_plan.nominal, "nominal": sum(the_plan.nominal),
                "average_kept": None},
        device=str(first_parameter.device), dtype=str(first_parameter.dtype).removeprefix("torch."),
        early_kv=the_plan.early_kv, invert=settings.invert and METHODS[method].prunes, settings=settings.to_json(),
        timings_ms={"vision_encoder": encoded.vision_ms, "scoring": 0.0, "diagnostics": 0.0},
    )


def finish_record(record, model, processor, cache, tokens, prefill_ms, decode_ms, vision_ms):
    record.answer_ids = tokens
    record.answer = processor.tokenizer.decode(tokens, skip_special_tokens=True).strip()
    record.kv_cache_bytes = cache_bytes(cache)
    record.budget["average_kept"] = sum(record.visual_per_layer) / record.num_layers
    shape = decoder_shape(model)  # read once per model
    d, m, gated = shape.hidden, shape.mlp, shape.gated
    mlp_term = "3 n d m (a gated MLP: gate, up and down projections)" if gated else \
        "2 n d m (a plain MLP: up and down projections)"
    record.flops = {"prefill": sum(layer_flops(n, d, m, gated) for n in record.tokens_per_layer),
                    "formula": f"per decoder layer with n tokens: 4 n d^2 + 2 n^2 d + {mlp_term}; FastV's convention "
                               f"with the model's MLP, multiply-accumulates; d = {d}, m = {m}"}
    steps = max(len(tokens) - 1, 0)
    record.timings_ms.update(prefill=prefill_ms, first_token=vision_ms + prefill_ms, decode=decode_ms,
                             decode_per_token=decode_ms / steps if steps else 0.0,
                             total=vision_ms + prefill_ms + decode_ms)
    for gi, group in enumerate(record.groups):  # each image/video has its own grid (Qwen: one per image size)
        if scoring.is_degenerate_grid(group["grid"], record.settings["cutoff"]):
            record.notes.append(f"group {gi}: grid {tuple(group['grid'])} too small for the high-pass mask "
                                "(sigma = 0): CLSE used an all-pass mask")


def peak_memory(device, record, model):
    """The device allocator's peak on CUDA; elsewhere an estimate: the KV cache plus the largest layer
    activation (the MLP's gate, up and product: 3 n m elements at the longest sequence)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device), "peak allocated on the device (torch.cuda)"
    element = torch.finfo(next(model.parameters()).dtype).bits // 8
    activation = 3 * max(record.tokens_per_layer) * decoder_shape(model).mlp * element
    return record.kv_cache_bytes + activation, "estimate: KV cache + the largest MLP activation (3 n m)"


def run(model, processor, encoded, method, settings=None, capture=False, question="", keep_logits=False,
        keep_state=False, **raw):
    """One generation with `method` (a METHODS name). Returns a Record; with capture=True its `capture`
    attribute holds what explorer/core/diagnostics.py needs (compare drops it once the diagnostics are made);
    with keep_logits=True its `step_logits` attribute holds every generated token's logits on the CPU (for the
    tests' oracles; a normal run keeps no per-step tensor); with keep_state=True its `state` attribute is the
    Continuation a follow-up question needs (explorer/core/conversation.py drops it when the conversation
    ends). Nothing persists between calls."""
    settings = settings or check_settings(**raw)
    check_method(method)
    lm = encoded.family.text_model(model)
    the_plan = method_plan(encoded, settings, len(lm.layers), method)
    record = new_record(model, encoded, method, settings, the_plan, question)
    record.notes += decoder_notes(encoded, method, the_plan, len(lm.layers))
    device = device_of(lm)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    captured = {"visual": []} if capture else None
    with torch.inference_mode():
        start = clock(device)
        hidden, cache = prefill(RunState(model, encoded, method, settings, the_plan, record, captured))
        first_logits = logits_of(model, hidden[:, -1:])[0, -1].float()
        prefill_ms = (clock(device) - start) * 1e3
        record.kv_cache_bytes_prefill = cache_bytes(cache)
        record.notes += the_plan.notes
        shifts = None
        if the_plan.positions == "renumber" and METHODS[method].prunes:
            shifts = [encoded.inputs_embeds.shape[1] - n for n in record.tokens_per_layer]
            record.notes.append("positions renumbered: after each stage the shortened sequence is numbered 0.. "
                                f"again (the last layer's {record.tokens_per_layer[-1]} tokens 0.."
                                f"{record.tokens_per_layer[-1] - 1}); decoding goes on from each layer's own count")
        start = clock(device)
        tokens, gaps, step_logits, next_position = decode(model, encoded, cache, first_logits,
                                                          eos_ids(model, processor), settings.max_new_tokens,
                                                          keep_logits, shifts=shifts)
        decode_ms = (clock(device) - start) * 1e3
    finish_record(record, model, processor, cache, tokens, prefill_ms, decode_ms, encoded.vision_ms)
    record.answer_margins = gaps
    record.peak_memory_bytes, record.peak_memory_kind = peak_memory(device, record, model)
    record.capture = captured
    if keep_logits:
        record.step_logits = step_logits
    if keep_state:
        record.state = Continuation(cache, encoded.input_ids[0].tolist() + tokens[:-1], next_position, shifts)
    return record
