"""The pruning engine: runs a stock transformers multimodal model's decoder layer by layer, prunes visual tokens
at the planned stages with any registered method, finishes the prefill, decodes greedily with the KV cache and
returns a Record of what happened.

Flow: media -> family.build_inputs (real processor) -> encode (vision tower + merge, captured at the decoder's
door) -> run (plan, prefill with pruning, decode) -> Record. With `capture=True` the run also keeps the visual
rows of the hidden states entering every layer, so the diagnostics (explorer/diagnostics.py) are computed after
the run from that record, outside the decoder loop. Only stock modules are called: the decoder layers, their
norms and projections, the rotary embedding, the LM head; attention stays SDPA (or whatever the model was
loaded with). The engine knows no family: it calls the contract of models/base.py.

Choices (see README): batch size 1; kept tokens keep their original position ids, so RoPE sees gaps, as in the
paper; layers before a stage keep (early_kv="keep") or drop ("prune") the pruned tokens in their KV cache.
Every tensor the engine makes names its device: the model's for anything that meets the model, the CPU for
bookkeeping. Scores are computed in float32 and ranked in float64 whatever the model's dtype.
"""

import hashlib
import itertools
import time
from dataclasses import dataclass

import torch
from transformers import DynamicCache
from transformers.masking_utils import create_causal_mask

from explorer import baselines, scoring
from explorer.methods import METHODS, StageInputs, select_top
from explorer.plan import plan
from explorer.record import Record, Stage
from explorer.settings import check_settings
from models.base import BadInput

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


def device_of(module):
    return next(module.parameters()).device


def clock(device):
    """Seconds, read only after the device has finished its queued work."""
    if device.type == "cuda":
        for index in range(torch.cuda.device_count()):  # a device_map may spread the layers over several GPUs
            torch.cuda.synchronize(index)
    elif device.type == "mps":
        torch.mps.synchronize()
    return time.perf_counter()


def encode(model, family, inputs, kind="image"):
    """Run the vision tower and the merge through the stock forward, stopping at the decoder's door. Where the
    family names a vision [CLS] attention, its row over every image's patches is read on the way."""
    captured, vision_inputs = {}, []

    def grab(module, args, kwargs):
        captured.update(kwargs)
        raise _Captured

    lm = family.text_model(model)
    device = device_of(lm)
    inputs = inputs.to(device)
    handles = [lm.register_forward_pre_hook(grab, with_kwargs=True)]
    vision = family.vision_attention(model)
    if vision is not None:
        handles.append(vision[0].register_forward_pre_hook(
            lambda module, args, kwargs: vision_inputs.append(kwargs["hidden_states"]), with_kwargs=True))
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
    return encoded


def content_seed(inputs):
    """A 31-bit number from the input's pixels (every floating-point tensor the processor made)."""
    digest = hashlib.sha1()
    for value in inputs.values():
        if torch.is_tensor(value) and value.is_floating_point():
            digest.update(value.detach().to("cpu", torch.float32).numpy().tobytes())
    return int.from_bytes(digest.digest()[:4], "big") >> 1


def vision_cls_scores(vision, hidden_states, groups):
    """Per group, the [CLS] attention to each patch of its images (frames in order), [count] float64."""
    module, cls_index = vision
    with torch.inference_mode():
        per_image = [baselines.visionzip_scores(baselines.cls_attention(module, h[None], cls_index), cls_index)
                     for h in hidden_states]
    scores, start = [], 0
    for group in groups:
        frames = group.grid[0] if group.kind == "video" else 1
        patches = torch.cat(per_image[start:start + frames])
        start += frames
        if len(patches) != group.count:  # e.g. a tower whose patches are merged or cropped before the decoder
            return None
        scores.append(patches)
    return scores


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

    def restrict(self, picks):
        """Keep picks[g] (indices into alive[g]) of every group; returns the current rows to keep."""
        self.alive = [a[p] for a, p in zip(self.alive, picks)]
        kept = torch.cat([g.positions.cpu()[a] for g, a in zip(self.groups, self.alive)])
        keep = torch.cat([self.positions[~self.is_visual[self.positions]], kept]).sort().values
        rows = self.rows(keep)
        self.positions = keep
        self._group_rows = None
        return rows


# ------------------------------------------------------------------------------------------ decoder parts


def attention_row(layer, rotate, last_hidden, cos_last, sin_last, keys):
    """Head-mean softmax attention of the last token over all tokens at this layer: [n], float32.

    q is recomputed for the one last token from the layer's own input norm, q projection and rotary embedding
    (`rotate`, the family's apply_rotary_pos_emb); the keys are the layer's rotated keys as they sit in the KV
    cache ([1, kv_heads, n, head_dim]). One query row, no N x N matrix, and the model keeps its SDPA attention.
    """
    attn = layer.self_attn
    device = device_of(attn)
    last_hidden, cos_last, sin_last = last_hidden.to(device), cos_last.to(device), sin_last.to(device)
    q = attn.q_proj(layer.input_layernorm(last_hidden)).view(1, 1, -1, attn.head_dim)  # [1, 1, H, hd]
    if hasattr(attn, "q_norm"):  # families that normalise q per head
        q = attn.q_norm(q)
    q, _ = rotate(q.transpose(1, 2), q.transpose(1, 2), cos_last, sin_last)  # [1, H, 1, hd]
    keys = keys.to(device).repeat_interleave(q.shape[1] // keys.shape[1], dim=1)  # grouped-query attention
    logits = (q.float() @ keys.float().transpose(-1, -2)) * attn.scaling  # [1, H, 1, n]
    return logits.softmax(dim=-1)[0, :, 0].mean(dim=0)


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


def method_plan(encoded, settings, num_layers, method):
    """The plan for one method: methods that look inside the decoder need a layer before K (K >= 1)."""
    spec = METHODS[method]
    if spec is not None and "vision" in spec.needs and not encoded.vision_scores:
        raise BadInput(f"{method} reads the vision encoder's [CLS] attention, and this model's vision tower has "
                       "no [CLS] token feeding the decoder's grid")
    inside = spec is not None and any(need in spec.needs for need in ("attention", "reference"))
    return plan(encoded.groups, settings, num_layers, encoded.family, encoded.kind, first_layer_min=1 if inside else 0)


class LayerView:
    """What a method may ask about the sequence entering pruning layer k, each computed only when asked and
    once: the last prompt token's attention row at layer k-1 (from the cached keys) and at layer k itself
    (keys recomputed from the states entering k), and DART's inputs. Rows are current rows of `hidden`."""

    def __init__(self, model, family, k, hidden, cos, sin, keys_before, last_before):
        self.model, self.family, self.k = model, family, k
        self.hidden, self.cos, self.sin, self.keys_before, self.last_before = hidden, cos, sin, keys_before, last_before
        self.rows = {}

    def _cached(self, name, compute):
        if name not in self.rows:
            self.rows[name] = compute()
        return self.rows[name]

    def attention_before(self, rows):
        layers = self.family.text_model(self.model).layers
        row = self._cached("before", lambda: attention_row(
            layers[self.k - 1], self.family.rotary(self.model), self.last_before, self.cos[:, -1:],
            self.sin[:, -1:], self.keys_before))
        return row[rows.to(row.device)]

    def attention_at(self, rows):
        layer = self.family.text_model(self.model).layers[self.k]
        row = self._cached("at", lambda: baselines.attention_row_entering(
            layer, self.family.rotary(self.model), self.hidden.to(device_of(layer)), self.cos.to(device_of(layer)),
            self.sin.to(device_of(layer))))
        return row[rows.to(row.device)]

    def duplication(self, rows, text_rows):
        """DART's inputs: final-normed states entering k and L1 key norms at k-1, visual rows and text after."""
        norm = self.family.text_model(self.model).norm
        normed = self._cached("normed", lambda: norm(self.hidden[0].to(device_of(norm))))
        norms = self._cached("key_norms", lambda: baselines.key_l1_norms(self.keys_before))
        pick = lambda x, r: x[r.to(x.device)]  # noqa: E731
        return pick(normed, rows), pick(norms, rows), pick(normed, text_rows), pick(norms, text_rows)


def stage_inputs(group_index, stage_index, k, index, z_ref, view, encoded, settings):
    """StageInputs for one group: everything restricted to its alive tokens (current rows from `index`)."""
    alive, rows = index.alive[group_index], index.group_rows()[group_index]
    group = encoded.groups[group_index]
    text_after = ~index.is_visual[index.positions] & (index.positions > int(group.positions[-1]))
    text_rows = text_after.nonzero().flatten()
    return StageInputs(
        stage=stage_index, grid=group.grid, alive=alive, k=k, seed=(settings.seed + encoded.content_seed) % 2**31,
        cutoff=settings.cutoff,
        temp=settings.temp, z_ref=None if z_ref is None else z_ref[group_index][alive],
        z_cur=view.hidden[0, rows.to(view.hidden.device)],
        attention=lambda: view.attention_before(rows), attention_at_k=lambda: view.attention_at(rows),
        duplication=lambda: view.duplication(rows, text_rows),
        vision_scores=encoded.vision_scores[group_index][alive] if encoded.vision_scores else None)


def prune_stage(view, counts, method, settings, index, z_ref, encoded, record):
    """Score every group's alive tokens, keep counts[g] of each; returns the current rows to keep."""
    stage_index = len(record.stages)
    scorer = method if stage_index == 0 else (METHODS[method].later or method)
    scores_all = torch.full((sum(g.count for g in index.groups),), float("nan"), dtype=torch.float64, device="cpu")
    picks = []
    for gi in range(len(index.groups)):
        inputs = stage_inputs(gi, stage_index, counts[gi], index, z_ref, view, encoded, settings)
        scores = METHODS[scorer].score(inputs).float().cpu().double()  # ranked in float64 on the host
        scores_all[index.offsets[gi] + index.alive[gi]] = scores
        ranked = -scores if settings.invert else scores
        note = tie_note(ranked, counts[gi])
        if note:
            record.notes.append(f"{scorer}, layer {view.k}, group {gi}: {note}")
        picks.append(select_top(ranked, counts[gi]))
    rows = index.restrict(picks)
    record.stages.append(Stage(layer=view.k, scorer=scorer, keep_counts=[len(a) for a in index.alive],
                               scores=scores_all.tolist(), keep_indices=index.kept_indices()))
    return rows


def trim_early_cache(cache, layer_idx, rows):
    """early_kv="prune": layers before this stage drop the pruned tokens from their KV cache too."""
    for layer in cache.layers[:layer_idx]:
        index = rows.to(layer.keys.device)
        layer.keys, layer.values = layer.keys[:, :, index], layer.values[:, :, index]


def prefill(model, encoded, method, settings, the_plan, record, capture=None):
    """The decoder over the prompt, pruning at the planned stages. Returns (last hidden, cache, position ids).
    capture (a dict) receives the visual rows and the last token entering every layer (unpruned run)."""
    lm = encoded.family.text_model(model)
    text_config = model.config.get_text_config()
    index = TokenIndex(encoded.inputs_embeds.shape[1], encoded.groups)
    hidden, position_ids = encoded.inputs_embeds, encoded.position_ids
    cos, sin = lm.rotary_emb(hidden, position_ids)
    cache = DynamicCache(config=text_config)
    stage_at = {} if method == "none" else dict(the_plan.stages)
    z_ref, last_before, mask = None, None, causal_mask(text_config, hidden, cache, 0)
    for i, layer in enumerate(lm.layers):
        if capture is not None:
            capture["visual"].append(hidden[0, torch.cat(index.group_rows()).to(hidden.device)])
            capture["last"].append(hidden[:, -1:])
            if i == the_plan.prune_layer:
                capture.update(hidden_at_k=hidden, cos=cos, sin=sin)
        if i == the_plan.ref_layer:
            z_ref = [hidden[0, rows.to(hidden.device)] for rows in index.group_rows()]
        if i in stage_at:
            start = clock(hidden.device)
            keys_before = cache.layers[i - 1].keys if i > 0 else None
            view = LayerView(model, encoded.family, i, hidden, cos, sin, keys_before, last_before)
            rows = prune_stage(view, stage_at[i], method, settings, index, z_ref, encoded, record)
            hidden, cos, sin = (t[:, rows.to(t.device)] for t in (hidden, cos, sin))
            position_ids = position_ids[..., rows.to(position_ids.device)]
            if the_plan.early_kv == "prune":
                trim_early_cache(cache, i, rows)
            mask = causal_mask(text_config, hidden, cache, i)
            record.timings_ms["scoring"] += (clock(hidden.device) - start) * 1e3
        record.tokens_per_layer.append(hidden.shape[1])
        record.visual_per_layer.append(index.visual_count())
        last_before = hidden[:, -1:]  # the last prompt token entering this layer, for attention scores
        hidden = layer(hidden, attention_mask=mask, position_embeddings=(cos, sin), past_key_values=cache,
                       use_cache=True)
    if capture is not None:
        capture["visual"].append(hidden[0, torch.cat(index.group_rows()).to(hidden.device)])
    record.kept_indices = index.kept_indices()
    return hidden, cache, position_ids


def decode(model, encoded, cache, first_logits, stop_ids, max_new_tokens):
    """Greedy decoding from the (pruned) cache; positions continue after the original sequence.
    Returns (token ids, logits of every step as float32)."""
    lm = encoded.family.text_model(model)
    text_config = model.config.get_text_config()
    embed_device = device_of(lm.embed_tokens)
    step_logits = [first_logits]
    tokens = [int(first_logits.argmax())]
    next_position = int(encoded.position_ids.max()) + 1
    position_shape = (*encoded.position_ids.shape[:-1], 1)
    while tokens[-1] not in stop_ids and len(tokens) < max_new_tokens:
        hidden = lm.embed_tokens(torch.tensor([[tokens[-1]]], device=embed_device))
        position = torch.full(position_shape, next_position, device=encoded.position_ids.device)
        next_position += 1
        cos, sin = lm.rotary_emb(hidden, position)
        for i, layer in enumerate(lm.layers):
            hidden = layer(hidden, attention_mask=causal_mask(text_config, hidden, cache, i),
                           position_embeddings=(cos, sin), past_key_values=cache, use_cache=True)
        step_logits.append(model.lm_head(lm.norm(hidden))[0, -1].float())
        tokens.append(int(step_logits[-1].argmax()))
    return tokens, step_logits


def new_record(model, encoded, method, settings, the_plan, question):
    lm = encoded.family.text_model(model)
    groups = encoded.groups
    offsets = list(itertools.accumulate([g.count for g in groups], initial=0))
    first_parameter = next(lm.parameters())
    return Record(
        model=str(getattr(model, "name_or_path", "")), method=method, question=question, answer="", answer_ids=[],
        groups=[{"kind": g.kind, "grid": list(g.grid), "offset": offsets[i], "count": g.count,
                 "first_position": int(g.positions[0])} for i, g in enumerate(groups)],
        visual_tokens=offsets[-1], text_tokens=encoded.inputs_embeds.shape[1] - offsets[-1],
        num_layers=len(lm.layers), prune_layer=the_plan.prune_layer, ref_layer=the_plan.ref_layer,
        schedule=settings.schedule,
        budget={"requested": settings.keep, "keep_per_group": the_plan.nominal, "nominal": sum(the_plan.nominal),
                "average_kept": None},
        device=str(first_parameter.device), dtype=str(first_parameter.dtype).removeprefix("torch."),
        early_kv=the_plan.early_kv, invert=settings.invert and method != "none", settings=settings.to_json(),
        timings_ms={"vision_encoder": encoded.vision_ms, "scoring": 0.0, "diagnostics": 0.0},
    )


def finish_record(record, model, processor, cache, tokens, step_logits, prefill_ms, decode_ms, vision_ms):
    text_config = model.config.get_text_config()
    record.step_logits = step_logits
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


def run(model, processor, encoded, method, settings=None, capture=False, question="", **raw):
    """One generation with `method` (a METHODS name). Returns a Record; with capture=True its `capture`
    attribute holds what explorer/diagnostics.py needs. Nothing persists between calls."""
    settings = settings or check_settings(**raw)
    if method not in METHODS:
        raise BadInput(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    lm = encoded.family.text_model(model)
    the_plan = method_plan(encoded, settings, len(lm.layers), method)
    record = new_record(model, encoded, method, settings, the_plan, question)
    device = device_of(lm)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    captured = {"visual": [], "last": []} if capture else None
    with torch.inference_mode():
        start = clock(device)
        hidden, cache, _ = prefill(model, encoded, method, settings, the_plan, record, captured)
        first_logits = model.lm_head(lm.norm(hidden[:, -1:]))[0, -1].float()
        prefill_ms = (clock(device) - start) * 1e3
        record.kv_cache_bytes_prefill = cache_bytes(cache)
        if captured is not None:  # keys as they were after the prefill; decoding appends to the cache
            captured["keys"] = [layer.keys for layer in cache.layers]
        start = clock(device)
        tokens, step_logits = decode(model, encoded, cache, first_logits, eos_ids(model, processor),
                                     settings.max_new_tokens)
        decode_ms = (clock(device) - start) * 1e3
    finish_record(record, model, processor, cache, tokens, step_logits, prefill_ms, decode_ms, encoded.vision_ms)
    record.peak_memory_bytes, record.peak_memory_kind = peak_memory(device, record, model)
    record.capture = captured
    return record


def summarize(runs):
    """One record from the timed repeats of a method: the first run's record (the answers are the same: the
    run is deterministic), timings as the median over repeats and their spread [min, max]."""
    record = runs[0]
    if len(runs) > 1:
        spread = {}
        for name in record.timings_ms:
            values = sorted(r.timings_ms[name] for r in runs)
            record.timings_ms[name] = values[len(values) // 2] if len(values) % 2 else sum(
                values[len(values) // 2 - 1:len(values) // 2 + 1]) / 2
            spread[name] = [values[0], values[-1]]
        record.timings_spread_ms = spread
        record.peak_memory_bytes = max(r.peak_memory_bytes for r in runs)
    record.repeats = len(runs)
    return record


def unknown_words_note(tokenizer, question, listed=300):
    """A note naming the question's words the tokenizer maps to its unknown token (word-level vocabularies,
    like the embedded model's), with the words it knows when the vocabulary is small enough to list."""
    if tokenizer.unk_token_id is None:
        return None
    encoding = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    unknown = [question[a:b] for token, (a, b) in zip(encoding["input_ids"], encoding["offset_mapping"])
               if token == tokenizer.unk_token_id]
    if not unknown:
        return None
    note = f"the model does not know the word(s) {', '.join(repr(w) for w in dict.fromkeys(unknown))}"
    vocabulary = [w for w in tokenizer.get_vocab() if w not in tokenizer.all_special_tokens]
    if len(vocabulary) <= listed:
        note += f"; it knows: {' '.join(sorted(vocabulary))}"
    return note


def compare(model, processor, family, images, question, settings=None, kind="image", diagnostics=True,
            progress=None, **raw):
    """The unpruned run and each method of settings.methods on one input, encoded once. With repeats > 1 the
    methods run in an order rotated between repeats and the timings are medians. Returns {method: Record}."""
    settings = settings or check_settings(**raw)
    say = progress or (lambda text: None)
    question = (question or "").strip()
    if not question:
        raise BadInput("the question is empty")
    if not images:
        raise BadInput("no image or video frames were given")
    say("encoding the input")
    inputs = family.build_inputs(processor, images, question, kind=kind, prompt=settings.prompt)
    encoded = encode(model, family, inputs, kind=kind)
    names = ["none"] + [m for m in settings.methods if m != "none"]
    num_layers = len(family.text_model(model).layers)
    for name in names[1:] + names[:1]:  # checked before any run, so nothing is half-done (methods first: their
        # limits are the stricter ones, e.g. K >= 1 for attention)
        method_plan(encoded, settings, num_layers, name)
    runs = {name: [] for name in names}
    for repeat in range(settings.repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            say(f"running {name}" + (f" (repeat {repeat + 1} of {settings.repeats})" if settings.repeats > 1 else ""))
            runs[name].append(run(model, processor, encoded, name, settings, question=question,
                                  capture=diagnostics and name == "none" and repeat == 0))
    records = {name: summarize(runs[name]) for name in names}
    notes = [*settings.notes, unknown_words_note(processor.tokenizer, question)]
    for record in records.values():
        record.notes[:0] = [note for note in notes if note]
    if diagnostics:
        say("computing the diagnostics (spectra, every method's scores)")
        from explorer.diagnostics import attach  # noqa: PLC0415  (diagnostics imports the engine)
        attach(records["none"], model, encoded, settings)
    return records


def warm_up(model, processor, family, progress=None):
    """One short unpruned run on a blank image right after loading, so that no method of the first request
    pays for the first kernels, allocations and caches."""
    from PIL import Image  # noqa: PLC0415

    if progress:
        progress("warming up")
    compare(model, processor, family, [Image.new("RGB", (64, 64), (128, 128, 128))], "warm up",
            check_settings(methods=[], keep=1, max_new_tokens=2), diagnostics=False)
