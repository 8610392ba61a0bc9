"""Batched runs: several inputs (different images, questions and prompt lengths) through the stock decoder in one
batch, each sample with its own plan, its own method scores over its own visual tokens and its own kept set,
decoded greedily together with a stop per sample. Beside the batch-of-one engine (explorer/core/engine.py),
whose helpers it shares; a batch of one is engine.run itself, so its records stay exactly those.

Layout: left padding. Sample b's rows are the last n_b rows of the batch (pad rows first), at every layer and
in every cache layer, so a layout is its length and one pad count per sample. The position ids are each
sample's own (the ones its batch-of-one run gets, multimodal rows included), so the rotary inputs of every
kept row are identical to its batch-of-one run; the attention masks are built here per layout (causal over the
rows, pad columns hidden; a pad row sees itself only, so no row is all masked and nothing turns NaN). At a
stage, each pruning sample is scored by the batch-of-one code (engine.prune_stage) on its own rows (a view of
the batch: its hidden states, rotary inputs and cached keys without the padding), and the batch is gathered to
the new layout with one index per sample; every argument the stock decoder built for the whole padded prompt
is gathered the same way from the original layout (the kept rows' original positions). Layers before a stage
keep their cache (early_kv="keep"), or lose the pruned rows, sample by sample (early_kv="prune"). The prefill
runs the padded batch at once ("together") or every sample alone and pads the caches into one batch for
decoding ("each": a CPU's default, see prefill_mode); decoding writes into a cache buffer made once.

What batches: decoders of full-attention layers with dynamic caches (no sliding window, chunk, linear attention
or convolution layers), SDPA or eager attention, whose wrapper hands the decoder nothing but position ids and
masks (no per-layer inputs, DeepStack injections or bidirectional image blocks), without captured hidden states
or follow-up questions. Everything else runs sample by sample through engine.run (the answers are those of a
batch of one by construction), and each record says so in a note (`batchable` gives the reason).
"""

import torch

from explorer.core import interrupt
from explorer.core.devices import clock, device_of
from explorer.core.engine import (
    RunState, _Hooks, _hidden_of, _with_hidden, cache_bytes, decoder_notes, eos_ids, finish_record, logits_of, margins,
    new_record, peak_memory, prune_stage, run,
)
from explorer.core.settings import check_settings
from explorer.core.stage import Before, LayerView, TokenIndex, method_plan
from explorer.methods.registry import METHODS, check_method

BATCHED_NOTE = ("run in a batch of {n} (left-padded to {length} tokens; prefill {mode}): its timings (and, on "
                "CUDA, its peak memory) are the whole batch's")
ONE_BY_ONE_NOTE = "asked for in a batch of {n}, run alone: {why}"
ARGUMENTS = {"attention_mask", "position_ids"}  # what a batchable wrapper hands its decoder besides the engine's own


def batchable(model, encodeds, method, capture=False, follow_ups=()):
    """None when these inputs can run as one batch with `method`, else the reason (a sentence)."""
    lm = encodeds[0].family.text_model(model)
    text_config = model.config.get_text_config()
    implementation = getattr(lm.config, "_attn_implementation", None) or text_config._attn_implementation
    if implementation not in ("sdpa", "eager"):
        return f"{implementation} attention (batches use SDPA or eager masks)"
    if capture or follow_ups:
        return "diagnostics and follow-up questions run one input at a time"
    try:
        from transformers import DynamicCache  # noqa: PLC0415

        kinds = {type(layer).__name__ for layer in DynamicCache(config=text_config).layers}
    except Exception:  # noqa: BLE001  (a config the cache cannot read: not batched)
        kinds = {"unknown"}
    if kinds != {"DynamicLayer"}:
        return ("the decoder has layers other than full attention (sliding window, chunked, linear attention or "
                "convolution), whose caches keep no padded rows")
    for encoded in encodeds:
        if encoded.injections:
            return "the text model adds features after some layers (DeepStack), not padded here"
        extra = sorted(name for name, value in encoded.arguments.items() if name not in ARGUMENTS
                       and (has_tensor(value) or value != encodeds[0].arguments.get(name)))
        if extra:
            return f"the wrapper hands its decoder {', '.join(extra)}, not padded here"
        mask = encoded.arguments.get("attention_mask")
        if mask is not None and (not torch.is_tensor(mask) or mask.dim() != 2 or not bool(mask.all())):
            return "the wrapper's attention mask is not a plain all-ones mask"
        if encoded.attention_layers != list(range(len(lm.layers))):
            return "not every decoder layer is a full-attention layer over the whole prompt"
    return None


def has_tensor(value):
    if isinstance(value, (tuple, list)):
        return any(has_tensor(v) for v in value)
    if isinstance(value, dict):
        return any(has_tensor(v) for v in value.values())
    return torch.is_tensor(value) or type(value).__name__ == "BlockMask"


def shared_arguments(encoded):
    """The wrapper's other arguments to its decoder that hold no tensor (flags such as output_router_logits),
    the same for every sample (batchable checks): passed to the batch's decoder call as they are."""
    return {name: value for name, value in encoded.arguments.items() if name not in ARGUMENTS}


# ---------------------------------------------------------------------------------------------- layouts


class Layout:
    """Left-padded rows: `length` rows per sample, the last counts[b] of them sample b's (pads[b] pad rows first)."""

    def __init__(self, counts, length=None):
        self.counts = [int(c) for c in counts]
        self.length = max(self.counts) if length is None else length
        self.pads = [self.length - c for c in self.counts]

    def index(self, rows, source):
        """[B, length] indices into `source`'s rows: sample b's rows[b] (indices into its own rows in source),
        a pad row repeating the sample's first row (finite values; masked everywhere)."""
        out = torch.empty(len(rows), self.length, dtype=torch.long, device="cpu")
        for b, r in enumerate(rows):
            r = source.pads[b] + r.cpu()
            out[b, :self.pads[b]] = r[0]
            out[b, self.pads[b]:] = r
        return out

    def mask(self, queries, dtype, device, eager):
        """The [B, 1, queries, length (+ decoded columns)] mask of `queries` rows at the end of this layout:
        causal, pad columns hidden, every query sees itself. None (SDPA's own causal attention, which skips the
        hidden half) where no sample is padded."""
        if not eager and not any(self.pads):
            return None
        keys = torch.arange(self.length, device="cpu")
        rows = torch.arange(self.length - queries, self.length, device="cpu")
        pads = torch.tensor(self.pads, device="cpu")
        allowed = (keys[None, None] <= rows[None, :, None]) & (keys[None, None] >= pads[:, None, None])
        allowed |= keys[None, None] == rows[None, :, None]
        allowed = allowed[:, None].to(device)
        if not eager:
            return allowed
        zero = torch.zeros((), dtype=dtype, device=device)
        return torch.where(allowed, zero, torch.finfo(dtype).min)

    def grown(self, steps):
        """The same layout with `steps` decoded columns after it (every sample's)."""
        return Layout([c + steps for c in self.counts], self.length + steps)


def gather_rows(tensor, axis, index, batch_axis=None):
    """tensor's rows along `axis` (the sequence axis; the batch axis is the one before it unless named) picked
    per sample by index [B, L]."""
    index = index.to(tensor.device)
    batch_axis = axis - 1 if batch_axis is None else batch_axis
    inner = axis - 1 if axis > batch_axis else axis
    parts = [tensor.select(batch_axis, b).index_select(inner, index[b]) for b in range(index.shape[0])]
    return torch.stack(parts, dim=batch_axis)


def gather_argument(value, index, length, batch):
    """An argument the stock decoder built for the padded prompt (`length` rows) gathered per sample: tensors
    with a batch axis followed by a sequence axis (hidden-sized, rotary inputs, [B, S] or [3, B, S] position
    ids); a 1-D cache_position becomes 0..L-1; non-tensors pass unchanged."""
    if value is None:
        return value
    if isinstance(value, (tuple, list)):
        return type(value)(gather_argument(v, index, length, batch) for v in value)
    if isinstance(value, dict):
        return {key: gather_argument(v, index, length, batch) for key, v in value.items()}
    if not torch.is_tensor(value):
        return value
    if value.dim() == 1 and value.shape[0] == length:
        return torch.arange(index.shape[1], device=value.device)
    for axis in range(1, value.dim()):
        if value.shape[axis] == length and value.shape[axis - 1] == batch:
            return gather_rows(value, axis, index)
    return value


def pad_left(tensors, length, axis, value=0):
    """Each sample's tensor (batch axis of size 1 at axis - 1) left-padded on `axis` to `length`, concatenated on
    the batch axis."""
    out = []
    for t in tensors:
        shape = list(t.shape)
        shape[axis] = length - t.shape[axis]
        out.append(torch.cat([torch.full(shape, value, dtype=t.dtype, device=t.device), t], dim=axis))
    return torch.cat(out, dim=axis - 1)


# ---------------------------------------------------------------------------------------------- the run


def prefill_batch(model, encodeds, method, settings, plans, records):
    """The stock decoder over the padded batch, each sample pruned at its own planned stages; returns (the
    last prompt token's final-normed hidden state per sample [B, 1, D], cache, per-layer Layout of the cache)."""
    lm = encodeds[0].family.text_model(model)
    device = device_of(lm)
    batch = len(encodeds)
    counts = [e.inputs_embeds.shape[1] for e in encodeds]
    start_layout = Layout(counts)
    length = start_layout.length
    embeds = pad_left([e.inputs_embeds for e in encodeds], length, 1)
    positions = []
    for e in encodeds:
        p = e.arguments.get("position_ids")
        positions.append(torch.arange(e.inputs_embeds.shape[1], device=device)[None] if p is None else p)
    position_ids = pad_left(positions, length, positions[0].dim() - 1)
    eager = lm.config._attn_implementation == "eager"
    dtype = embeds.dtype
    indexes = [TokenIndex(c, e.groups) for c, e in zip(counts, encodeds)]
    stage_at = [dict(p.stages) if METHODS[method].prunes else {} for p in plans]
    state = {"layout": start_layout, "version": 0, "before": None, "z_ref": [None] * batch, "kv": {}}
    memo = {}

    def original_index():
        """Current rows -> rows of the padded prompt, per sample (from each sample's kept original positions)."""
        return state["layout"].index([ix.positions for ix in indexes], start_layout)

    def restricted(name, value):
        if state["version"] == 0 or value is None:
            return value
        key = (name, id(value), state["version"])
        if key not in memo:
            memo[key] = (value, gather_argument(value, state["original"], length, batch))
        return memo[key][1]

    def sample_view(hidden, b, layout):
        return hidden[b:b + 1, layout.pads[b]:]

    def sample_rope(rope, b, layout):
        if rope is None:
            return None
        return tuple(r[b:b + 1, layout.pads[b]:] for r in rope)

    def enter(i):
        def hook(module, args, kwargs):
            interrupt.check("prefill", i)
            hidden, cache = _hidden_of(args, kwargs), kwargs.get("past_key_values")
            layout = state["layout"]
            rope = restricted("position_embeddings", kwargs.get("position_embeddings"))
            befores = state["before"]
            if befores is not None and befores[0].keys is None:  # the scoring layer has run: its keys are cached
                keys, kv_layout = cache.layers[befores[0].layer].keys, state["kv"][befores[0].layer]
                for b, before in enumerate(befores):
                    if before is not None:
                        before.keys = keys[b:b + 1, :, kv_layout.pads[b]:]
            pruning = [b for b in range(batch) if i in stage_at[b]]
            if pruning:
                start = clock(hidden.device)
                rows, written = [], []
                for b in range(batch):
                    if b not in pruning:
                        rows.append(torch.arange(layout.counts[b], device="cpu"))
                        written.append([])
                        continue
                    view = LayerView(model, encodeds[b].family, i, sample_view(hidden, b, layout),
                                     sample_rope(rope, b, layout), indexes[b].positions.clone(),
                                     befores[b] if befores is not None else None)
                    sample = RunState(model, encodeds[b], method, settings[b], plans[b], records[b],
                                      index=indexes[b], z_ref=state["z_ref"][b])
                    kept, merged = prune_stage(sample, view, stage_at[b][i])
                    rows.append(kept)
                    written.append(merged)
                new_layout = Layout([len(r) for r in rows])
                index = new_layout.index(rows, layout)
                hidden = gather_rows(hidden, 1, index)
                for b, merged in enumerate(written):
                    for row, vector in merged:  # a merged token takes its centre's slot and position id
                        hidden[b, new_layout.pads[b] + row] = vector.to(hidden.device, hidden.dtype)
                trimming = [b for b in pruning if plans[b].early_kv == "prune"]
                if trimming:
                    trim_early_cache_batch(cache, i, rows, trimming, state["kv"])
                    if befores is not None:
                        for b in trimming:
                            before = befores[b]
                            before.hidden = before.hidden[:, torch.searchsorted(before.positions, indexes[b].positions)
                                                          .to(before.hidden.device)]
                            kv_layout = state["kv"][before.layer]
                            before.keys = cache.layers[before.layer].keys[b:b + 1, :, kv_layout.pads[b]:]
                            before.positions = indexes[b].positions.clone()
                layout = state["layout"] = new_layout
                state["version"] += 1
                state["original"] = original_index()
                rope = restricted("position_embeddings", kwargs.get("position_embeddings"))
                elapsed = (clock(hidden.device) - start) * 1e3
                for b in pruning:
                    records[b].timings_ms["scoring"] += elapsed
            kwargs = {name: value if name == "past_key_values" else restricted(name, value)
                      for name, value in kwargs.items() if name != "hidden_states"}
            kwargs["attention_mask"] = mask_of(layout, layout.length)
            state["kv"][i] = layout
            if any(stage_at):
                state["before"] = [Before(i, sample_view(hidden, b, layout), sample_rope(rope, b, layout), None,
                                          indexes[b].positions.clone()) for b in range(batch)]
            for b in range(batch):
                if i == plans[b].ref_layer:
                    h = sample_view(hidden, b, layout)
                    state["z_ref"][b] = [h[0, r.to(hidden.device)] for r in indexes[b].group_rows()]
                records[b].tokens_per_layer.append(layout.counts[b])
                records[b].visual_per_layer.append(indexes[b].visual_count())
            return _with_hidden(args, kwargs, hidden)
        return hook

    masks = {}

    def mask_of(layout, queries):
        key = (id(layout), queries)
        if key not in masks:
            masks[key] = (layout, layout.mask(queries, dtype, device, eager))
        return masks[key][1]

    with _Hooks(lm.layers, enter):
        out = lm(inputs_embeds=embeds, attention_mask=mask_of(start_layout, length), position_ids=position_ids,
                 use_cache=True, **shared_arguments(encodeds[0]))
    for b, record in enumerate(records):
        record.kept_indices = indexes[b].kept_indices()
        record.merged = {str(n): a for n, a in sorted(indexes[b].absorbed.items())}
    layouts = [state["kv"][i] for i in range(len(lm.layers))]
    return out.last_hidden_state[:, -1:], out.past_key_values, layouts


def trim_early_cache_batch(cache, layer_idx, rows, trimming, layouts):
    """early_kv="prune" for the samples in `trimming`: the layers before this stage drop their pruned rows
    (rows[b]: the rows kept of the sequence entering the stage, which those layers hold); the other samples keep
    theirs."""
    for j in range(layer_idx):
        layer, old = cache.layers[j], layouts[j]
        picks = [rows[b] if b in trimming else torch.arange(old.counts[b], device="cpu") for b in range(len(rows))]
        new = Layout([len(p) for p in picks])
        index = new.index(picks, old)
        layer.keys, layer.values = gather_rows(layer.keys, 2, index, 0), gather_rows(layer.values, 2, index, 0)
        layouts[j] = new


def decode_batch(model, encodeds, cache, layouts, first_logits, stop_ids, max_new_tokens, keep_logits=False):
    """Greedy decoding of the batch from its (pruned, padded) cache, every sample at its own next position; a
    sample stops at a stop token or its max_new_tokens (the batch runs until the last one stops: a stopped
    sample's rows are computed and ignored). Returns (tokens per sample, their margins per sample (engine.margins),
    step logits per sample)."""
    lm = encodeds[0].family.text_model(model)
    device = device_of(lm)
    batch = len(encodeds)
    eager = lm.config._attn_implementation == "eager"
    dtype = next(lm.parameters()).dtype
    if not dtype.is_floating_point:
        dtype = torch.float32
    tokens = [[t] for t in first_logits.argmax(-1).tolist()]  # one transfer per step for the whole batch
    gaps = [[g] for g in margins(first_logits)]
    logits_kept = [[first_logits[b].cpu()] if keep_logits else [] for b in range(batch)]
    next_position = [int(e.position_ids.max()) + 1 for e in encodeds]
    shape = encodeds[0].position_ids.shape[:-2]  # multimodal rows ([3, B, S]) or none ([B, S])
    done = [t[-1] in stop_ids or len(t) >= max_new_tokens[b] for b, t in enumerate(tokens)]
    if not all(done):
        preallocate(cache, max(max_new_tokens) - 1)
    step = 0
    while not all(done):
        step += 1
        grown = {}

        def enter(i):
            def hook(module, args, kwargs):
                interrupt.check("decoding step", i)
                key = id(layouts[i])
                if key not in grown:
                    grown[key] = layouts[i].grown(step).mask(1, dtype, device, eager)
                kwargs["attention_mask"] = grown[key]
                return args, kwargs
            return hook

        ids = torch.tensor([[t[-1]] for t in tokens], device=device)
        position = torch.tensor([[p] for p in next_position], device=encodeds[0].position_ids.device)
        position = position.expand(*shape, batch, 1) if shape else position
        with _Hooks(lm.layers, enter):
            out = lm(input_ids=ids, position_ids=position, attention_mask=grown_dummy(layouts[0], step, device),
                     past_key_values=cache, use_cache=True)
        logits = logits_of(model, out.last_hidden_state[:, -1:])[:, -1].float()
        picked, picked_gaps = logits.argmax(-1).tolist(), margins(logits)
        for b in range(batch):
            next_position[b] += 1
            if done[b]:
                continue
            tokens[b].append(picked[b])
            gaps[b].append(picked_gaps[b])
            if keep_logits:
                logits_kept[b].append(logits[b].cpu())
            done[b] = tokens[b][-1] in stop_ids or len(tokens[b]) >= max_new_tokens[b]
    return tokens, gaps, logits_kept


def preallocate(cache, steps):
    """Every cache layer given room for `steps` more tokens: a layer's keys and values become views of a buffer
    the decoding steps write into, in place of the stock layer's concatenation, which copies the whole cache of
    the whole batch at every step (the same values either way; what the attention reads is a view). The cache
    is the run's own and is dropped with it."""
    for layer in cache.layers:
        keys, values = layer.keys, layer.values
        batch, heads, length, width = keys.shape
        buffers = [t.new_empty(batch, heads, length + steps, width) for t in (keys, values)]
        buffers[0][:, :, :length], buffers[1][:, :, :length] = keys, values

        def update(key_states, value_states, *args, layer=layer, buffers=buffers, **kwargs):
            n, m = layer.keys.shape[-2], key_states.shape[-2]
            if n + m > buffers[0].shape[-2]:  # beyond the room made: the stock concatenation
                layer.keys = torch.cat([layer.keys, key_states], dim=-2)
                layer.values = torch.cat([layer.values, value_states], dim=-2)
                return layer.keys, layer.values
            buffers[0][:, :, n:n + m], buffers[1][:, :, n:n + m] = key_states, value_states
            layer.keys, layer.values = buffers[0][:, :, :n + m], buffers[1][:, :, :n + m]
            return layer.keys, layer.values

        layer.keys, layer.values = buffers[0][:, :, :length], buffers[1][:, :, :length]
        layer.update = update


def grown_dummy(layout, step, device):
    """A 4-D mask for the decoder's own mask building to return as it is (every layer's hook sets its own)."""
    return torch.ones(len(layout.counts), 1, 1, layout.length + step, dtype=torch.bool, device=device)


def sample_cache_bytes(cache, layouts, b, steps):
    """Sample b's share of the batch's cache: its own rows (no pad rows) of every layer's keys and values, as its
    batch-of-one cache would hold them."""
    total = 0
    for layer, layout in zip(cache.layers, layouts):
        for t in (layer.keys, layer.values):
            per_row = t[0, :, 0].numel() * t.element_size()
            total += per_row * (layout.counts[b] + steps)
    return total


def merge_prefills(parts):
    """Single-sample prefills [(last hidden [1, 1, D], cache, layouts)] -> one batch's: each layer's keys and values
    left-padded (zeros, masked) to the longest sample's and stacked, with the layouts of their rows."""
    hidden = torch.cat([p[0] for p in parts])
    cache = parts[0][1]
    layouts = []
    for i, layer in enumerate(cache.layers):
        layout = Layout([p[2][i].counts[0] for p in parts])
        for name in ("keys", "values"):
            tensors = [getattr(p[1].layers[i], name) for p in parts]
            setattr(layer, name, torch.cat([torch.cat([t.new_zeros(*t.shape[:2], layout.length - t.shape[2],
                                                                    t.shape[3]), t], dim=2) for t in tensors]))
        layouts.append(layout)
    return hidden, cache, layouts


def prefill_mode(prefill, device):
    """"together" (the padded batch through the decoder at once) or "each" (every sample's prefill alone, then
    one padded batch for decoding); "auto": each on a CPU, where a batch's prefill gains nothing (its matrix
    products are compute-bound already and its larger activations leave the caches: measured slower per
    question), together elsewhere."""
    if prefill not in ("auto", "together", "each"):
        raise ValueError(f"prefill must be auto, together or each, got {prefill!r}")
    return ("each" if device.type == "cpu" else "together") if prefill == "auto" else prefill


def run_batch(model, processor, encodeds, method, settings=None, questions=None, keep_logits=False, prefill="auto",
              **raw):
    """`method` on every input of `encodeds` (engine.Encoded, one per sample; settings: one Settings for all,
    or one per sample). Returns one Record per sample, in order: batched where `batchable` allows (each record
    notes the batch), else each sample run alone through engine.run (each record notes why). prefill: "together"
    (one padded prefill of the whole batch), "each" (one prefill per sample, the decoding batched) or "auto"
    (prefill_mode); the answers are the same."""
    check_method(method)
    n = len(encodeds)
    if not isinstance(settings, (list, tuple)):
        settings = [settings or check_settings(**raw)] * n
    questions = list(questions or [""] * n)
    if n == 1:
        return [run(model, processor, encodeds[0], method, settings[0], question=questions[0],
                    keep_logits=keep_logits)]
    lm = encodeds[0].family.text_model(model)
    why = batchable(model, encodeds, method)
    plans = [method_plan(e, s, len(lm.layers), method) for e, s in zip(encodeds, settings)] if why is None else []
    if why is None and any(p.positions == "renumber" for p in plans):
        why = "renumbered positions (the rotary inputs recomputed per layer) run one input at a time"
    if why is not None:
        records = [run(model, processor, e, method, s, question=q, keep_logits=keep_logits)
                   for e, s, q in zip(encodeds, settings, questions)]
        for record in records:
            record.notes.append(ONE_BY_ONE_NOTE.format(n=n, why=why))
        return records
    records = []
    for e, s, p, q in zip(encodeds, settings, plans, questions):
        record = new_record(model, e, method, s, p, q)
        record.notes += decoder_notes(e, method, p, len(lm.layers))
        records.append(record)
    device = device_of(lm)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode():
        start = clock(device)
        if prefill_mode(prefill, device) == "each":
            hidden, cache, layouts = merge_prefills([
                prefill_batch(model, encodeds[b:b + 1], method, settings[b:b + 1], plans[b:b + 1], records[b:b + 1])
                for b in range(n)])
        else:
            hidden, cache, layouts = prefill_batch(model, encodeds, method, settings, plans, records)
        first_logits = logits_of(model, hidden)[:, -1].float()
        prefill_ms = (clock(device) - start) * 1e3
        for b, record in enumerate(records):
            record.kv_cache_bytes_prefill = sample_cache_bytes(cache, layouts, b, 0)
            record.notes += plans[b].notes
        start = clock(device)
        tokens, gaps, step_logits = decode_batch(model, encodeds, cache, layouts, first_logits,
                                                 eos_ids(model, processor), [s.max_new_tokens for s in settings],
                                                 keep_logits)
        decode_ms = (clock(device) - start) * 1e3
    vision_ms = sum(e.vision_ms for e in encodeds)
    length = max(e.inputs_embeds.shape[1] for e in encodeds)
    for b, record in enumerate(records):
        finish_record(record, model, processor, cache, tokens[b], prefill_ms, decode_ms, vision_ms)
        record.answer_margins = gaps[b]
        record.kv_cache_bytes = sample_cache_bytes(cache, layouts, b, len(tokens[b]) - 1)
        record.peak_memory_bytes, record.peak_memory_kind = peak_memory(device, record, model)
        record.capture = None
        record.notes.append(BATCHED_NOTE.format(n=n, length=length, mode=prefill_mode(prefill, device)))
        if keep_logits:
            record.step_logits = step_logits[b]
    return records


__all__ = ["batchable", "run_batch", "prefill_batch", "decode_batch", "cache_bytes"]
