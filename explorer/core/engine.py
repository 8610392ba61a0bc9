"""The pruning engine: runs a stock transformers multimodal model's decoder layer by layer, prunes visual tokens
at the planned stages with any registered method, finishes the prefill, decodes greedily with the KV cache and
returns a Record of what happened.

Flow: media -> family.build_inputs (real processor) -> encode (vision tower + merge, captured at the decoder's
door) -> run (plan, prefill with pruning, decode) -> Record. With `capture=True` the run also keeps the visual
rows of the hidden states entering every layer, so the diagnostics (explorer/core/diagnostics.py) are computed
after the run from that record, outside the decoder loop; comparing several methods on one input is
explorer/core/compare.py, one floor up. Only stock modules are called: the decoder layers, their norms and
projections, the rotary embedding, the LM head; attention stays SDPA (or whatever the model was loaded with).
The engine knows no family: it calls the contract of models/base.py (models.base.Family).

Choices (see README): batch size 1; kept tokens keep their original position ids, so RoPE sees gaps, as in the
paper; layers before a stage keep (early_kv="keep") or drop ("prune") the pruned tokens in their KV cache.
Every tensor the engine makes names its device: the model's for anything that meets the model, the CPU for
bookkeeping. Scores are computed in float32 and ranked in float64 whatever the model's dtype.
"""

import hashlib
import itertools
from dataclasses import dataclass

import torch
from transformers import DynamicCache
from transformers.masking_utils import create_causal_mask

from explorer.core.devices import clock, device_of
from explorer.core.record import Record, Stage
from explorer.core.settings import check_settings
from explorer.core import interrupt, stage
from explorer.core.stage import LayerView, TokenIndex, method_plan, stage_inputs
from explorer.methods import attention, baselines, scoring
from explorer.methods.registry import METHODS, check_method, select_top

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
    raters: list = None  # per group, SparseVLM's rater tokens' sequence positions (stage.raters)
    injections: list = None  # [models.base.Injection]: what the text model adds after some layers (DeepStack)


def encode(model, family, inputs, kind="image"):
    """Run the vision tower and the merge through the stock forward, stopping at the decoder's door. Where the
    family names a vision [CLS] attention, its row over every image's patches is read on the way, with that
    layer's keys and the features entering the family's projector (what VisionZip's contextual tokens merge)."""
    captured, vision_inputs, projector_inputs = {}, [], []

    def grab(module, args, kwargs):
        captured.update(kwargs)
        raise _Captured

    lm = family.text_model(model)
    device = device_of(lm)
    inputs = inputs.to(device)
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
    position_ids = captured.get("position_ids")
    if position_ids is None:
        position_ids = torch.arange(embeds.shape[1], device=embeds.device).unsqueeze(0)
    groups = family.visual_groups(model, inputs, kind=kind)
    encoded = Encoded(family, kind, inputs["input_ids"], embeds, family.decoder_positions(position_ids), groups,
                      vision_ms, content_seed=content_seed(inputs))
    if vision_inputs:
        encoded.vision_scores = vision_cls_scores(vision, vision_inputs[0], groups)
        encoded.vision_keys = per_group(list(vision_keys(vision, vision_inputs[0])), groups)
    if encoded.vision_scores and projector_inputs:
        encoded.vision_features = per_group(list(projector_inputs[0]), groups)
        encoded.project = projector
    encoded.raters = [stage.raters(encoded, gi) for gi in range(len(groups))]
    encoded.injections = family.injections(model, captured, groups)
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


def causal_mask(text_config, hidden, cache, layer_idx):
    # position_ids stay out on purpose: pruned ids have gaps, which the mask code would read as packed sequences.
    return create_causal_mask(config=text_config, inputs_embeds=hidden, attention_mask=None,
                              past_key_values=cache, position_ids=None, layer_idx=layer_idx)


def cache_bytes(cache):
    return sum(layer.keys.numel() * layer.keys.element_size() + layer.values.numel() * layer.values.element_size()
               for layer in cache.layers if getattr(layer, "keys", None) is not None)


def layer_flops(n, hidden, mlp):
    """FastV's per-layer convention (multiply-accumulates): 4 n d^2 + 2 n^2 d + 2 n d m."""
    return 4 * n * hidden**2 + 2 * n**2 * hidden + 2 * n * hidden * mlp


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


def prune_stage(view, counts, method, settings, index, z_ref, encoded, record):
    """Score every group's alive tokens, keep counts[g] of each (in the official schedule a method that merges
    also keeps merged tokens: its merge decides); returns (the current rows to keep, the merged tokens as
    [(their current row, decoder input)])."""
    stage_index = len(record.stages)
    scorer = method if stage_index == 0 else (METHODS[method].later or method)
    spec = METHODS[scorer]
    scores_all = torch.full((sum(g.count for g in index.groups),), float("nan"), dtype=torch.float64, device="cpu")
    picks, merges = [], []
    for gi in range(len(index.groups)):
        inputs = stage_inputs(gi, stage_index, counts[gi], index, z_ref, view, encoded, settings)
        scores = spec.score(inputs).float().cpu().double()  # ranked in float64 on the host
        scores_all[index.offsets[gi] + index.alive[gi]] = scores
        ranked = -scores if settings.invert else scores
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
    written = [(int(index.rows(encoded.groups[gi].positions[local:local + 1])[0]), vector)
               for gi, local, vector in centres]
    record.stages.append(Stage(layer=view.k, scorer=scorer, keep_counts=[len(a) for a in index.alive],
                               scores=scores_all.tolist(), keep_indices=index.kept_indices(), merged=absorbed))
    return rows, written


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


def trim_early_cache(cache, layer_idx, rows):
    """early_kv="prune": layers before this stage drop the pruned tokens from their KV cache too."""
    for layer in cache.layers[:layer_idx]:
        index = rows.to(layer.keys.device)
        layer.keys, layer.values = layer.keys[:, :, index], layer.values[:, :, index]


def prefill(model, encoded, method, settings, the_plan, record, capture=None):
    """The decoder over the prompt, pruning at the planned stages. Returns (last hidden, cache).
    capture (a dict) receives the visual rows and the last token entering every layer (unpruned run)."""
    lm = encoded.family.text_model(model)
    text_config = model.config.get_text_config()
    index = TokenIndex(encoded.inputs_embeds.shape[1], encoded.groups)
    hidden, position_ids = encoded.inputs_embeds, encoded.position_ids
    cos, sin = lm.rotary_emb(hidden, position_ids)
    cache = DynamicCache(config=text_config)
    stage_at = dict(the_plan.stages) if METHODS[method].prunes else {}
    z_ref, before, mask = None, None, causal_mask(text_config, hidden, cache, 0)
    for i, layer in enumerate(lm.layers):
        interrupt.check("prefill", i)  # the visitor may have left (explorer/core/interrupt.py)
        if capture is not None:
            capture["visual"].append(hidden[0, torch.cat(index.group_rows()).to(hidden.device)])
            if i == the_plan.prune_layer - 1:
                capture["before_k"] = hidden
            if i == the_plan.prune_layer:
                capture.update(hidden_at_k=hidden, cos=cos, sin=sin)
        if i == the_plan.ref_layer:
            z_ref = [hidden[0, rows.to(hidden.device)] for rows in index.group_rows()]
        if i in stage_at:
            start = clock(hidden.device)
            keys_before = cache.layers[i - 1].keys if i > 0 else None
            view = LayerView(model, encoded.family, i, hidden, cos, sin, keys_before, before)
            rows, merged = prune_stage(view, stage_at[i], method, settings, index, z_ref, encoded, record)
            hidden, cos, sin = (t[:, rows.to(t.device)] for t in (hidden, cos, sin))
            for row, vector in merged:  # a merged token takes its centre's slot and position id
                hidden[0, row] = vector.to(hidden.device, hidden.dtype)
            position_ids = position_ids[..., rows.to(position_ids.device)]
            if the_plan.early_kv == "prune":
                trim_early_cache(cache, i, rows)
            mask = causal_mask(text_config, hidden, cache, i)
            record.timings_ms["scoring"] += (clock(hidden.device) - start) * 1e3
        record.tokens_per_layer.append(hidden.shape[1])
        record.visual_per_layer.append(index.visual_count())
        before = hidden  # the sequence entering this layer, for the next stage's attention scores
        hidden = layer(hidden, attention_mask=mask, position_embeddings=(cos, sin), past_key_values=cache,
                       use_cache=True)
        hidden = inject(hidden, encoded.injections, i, index)
    if capture is not None:
        capture["visual"].append(hidden[0, torch.cat(index.group_rows()).to(hidden.device)])
    record.kept_indices = index.kept_indices()
    record.merged = {str(n): a for n, a in sorted(index.absorbed.items())}
    return hidden, cache


def decode(model, encoded, cache, first_logits, stop_ids, max_new_tokens, keep_logits=False, start_position=None):
    """Greedy decoding from the (pruned) cache; positions continue after the original sequence (or from
    start_position). Returns (token ids, the logits of every step as float32 CPU tensors when keep_logits, else
    [], the position id the next token would take)."""
    lm = encoded.family.text_model(model)
    text_config = model.config.get_text_config()
    embed_device = device_of(lm.embed_tokens)
    step_logits = [first_logits.cpu()] if keep_logits else []
    tokens = [int(first_logits.argmax())]
    next_position = int(encoded.position_ids.max()) + 1 if start_position is None else start_position
    position_shape = (*encoded.position_ids.shape[:-1], 1)
    while tokens[-1] not in stop_ids and len(tokens) < max_new_tokens:
        hidden = lm.embed_tokens(torch.tensor([[tokens[-1]]], device=embed_device))
        position = torch.full(position_shape, next_position, device=encoded.position_ids.device)
        next_position += 1
        cos, sin = lm.rotary_emb(hidden, position)
        for i, layer in enumerate(lm.layers):
            interrupt.check("decoding step", i)
            hidden = layer(hidden, attention_mask=causal_mask(text_config, hidden, cache, i),
                           position_embeddings=(cos, sin), past_key_values=cache, use_cache=True)
        logits = model.lm_head(lm.norm(hidden))[0, -1].float()
        tokens.append(int(logits.argmax()))
        if keep_logits:
            step_logits.append(logits.cpu())
    return tokens, step_logits, next_position


def extend(model, encoded, cache, ids, start_position):
    """Prefill text tokens on top of a (pruned) cache, at positions start_position.. (every row of multimodal
    position ids alike, as the stock model numbers text); returns the last token's logits (float32). A
    follow-up question continues a conversation this way."""
    lm = encoded.family.text_model(model)
    text_config = model.config.get_text_config()
    hidden = lm.embed_tokens(torch.tensor([ids], device=device_of(lm.embed_tokens)))
    shape = (*encoded.position_ids.shape[:-1], len(ids))
    position = torch.arange(start_position, start_position + len(ids), device=encoded.position_ids.device).expand(shape)
    cos, sin = lm.rotary_emb(hidden, position)
    for i, layer in enumerate(lm.layers):
        interrupt.check("follow-up's prefill", i)
        hidden = layer(hidden, attention_mask=causal_mask(text_config, hidden, cache, i),
                       position_embeddings=(cos, sin), past_key_values=cache, use_cache=True)
    return model.lm_head(lm.norm(hidden[:, -1:]))[0, -1].float()


@dataclass
class Continuation:
    """Where a run's conversation stands: its KV cache (pruned as it was), the token ids the cache holds (the
    prompt, then every generated token but the last, which was never fed) and the next token's position id."""

    cache: object
    ids: list
    next_position: int


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
    text_config = model.config.get_text_config()
    record.answer_ids = tokens
    record.answer = processor.tokenizer.decode(tokens, skip_special_tokens=True).strip()
    record.kv_cache_bytes = cache_bytes(cache)
    record.budget["average_kept"] = sum(record.visual_per_layer) / record.num_layers
    d, m = text_config.hidden_size, text_config.intermediate_size
    record.flops = {"prefill": sum(layer_flops(n, d, m) for n in record.tokens_per_layer),
                    "formula": "per decoder layer with n tokens: 4 n d^2 + 2 n^2 d + 2 n d m (FastV convention, "
                               f"multiply-accumulates; d = {d}, m = {m})"}
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
    text_config = model.config.get_text_config()
    element = torch.finfo(next(model.parameters()).dtype).bits // 8
    activation = 3 * max(record.tokens_per_layer) * text_config.intermediate_size * element
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
    device = device_of(lm)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    captured = {"visual": []} if capture else None
    with torch.inference_mode():
        start = clock(device)
        hidden, cache = prefill(model, encoded, method, settings, the_plan, record, captured)
        first_logits = model.lm_head(lm.norm(hidden[:, -1:]))[0, -1].float()
        prefill_ms = (clock(device) - start) * 1e3
        record.kv_cache_bytes_prefill = cache_bytes(cache)
        record.notes += the_plan.notes
        if captured is not None:  # keys as they were after the prefill; decoding appends to the cache
            captured["keys"] = [layer.keys for layer in cache.layers]
        start = clock(device)
        tokens, step_logits, next_position = decode(model, encoded, cache, first_logits, eos_ids(model, processor),
                                                    settings.max_new_tokens, keep_logits)
        decode_ms = (clock(device) - start) * 1e3
    finish_record(record, model, processor, cache, tokens, prefill_ms, decode_ms, encoded.vision_ms)
    record.peak_memory_bytes, record.peak_memory_kind = peak_memory(device, record, model)
    record.capture = captured
    if keep_logits:
        record.step_logits = step_logits
    if keep_state:
        record.state = Continuation(cache, encoded.input_ids[0].tolist() + tokens[:-1], next_position)
    return record
