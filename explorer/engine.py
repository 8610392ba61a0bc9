"""The pruning engine: runs a stock transformers multimodal model's decoder layer by layer, prunes visual tokens
at the planned stages with any registered method, finishes the prefill, decodes greedily with the KV cache and
returns a Record.

Flow: media -> family.build_inputs (real processor) -> encode (vision tower + merge, captured at the decoder's
door) -> run (decoder by hand, pruning) -> Record. Only stock modules are called: the decoder layers, their
norms and projections, the rotary embedding, the LM head. Attention stays SDPA (or whatever the model was
loaded with); the one attention row FastV needs is recomputed from the layer's own q/k projections.

Choices (see README): batch size 1; the KV cache of layers before a pruning stage keeps every token (decode
then still sees all visual tokens in those early layers, exactly as the model would); kept tokens keep their
original position ids, so RoPE sees gaps, as in the paper.
"""

import sys
import time
from dataclasses import dataclass

import torch
from transformers import DynamicCache
from transformers.masking_utils import create_causal_mask

from explorer import scoring
from explorer.methods import METHODS, StageInputs, check_method, select_top
from explorer.record import Record, Stage

# The paper's schedule (method.md), LLaVA-1.5's numbers: for a decoder of `depth` layers the stages sit at
# `layers` (other depths: 1, round(0.36 n), round(0.67 n)); stage s keeps round(factors[s] * r) for a nominal
# budget r. A family module may define its own PAPER_SCHEDULE (Qwen2-VL does).
PAPER_SCHEDULE = {"depth": 32, "layers": (1, 11, 21), "factors": (1.72, 1.09, 0.32)}


class RequestError(ValueError):
    """Bad input from the user: the message says what and how to fix it."""


@dataclass
class Encoded:
    """What the wrapper feeds the decoder for one request (computed once, reused by every method)."""

    input_ids: torch.Tensor  # [1, S]
    inputs_embeds: torch.Tensor  # [1, S, D] with visual features merged in
    position_ids: torch.Tensor  # [1, S], or [3, 1, S] for multimodal rotary positions
    groups: list  # VisualGroup per image / video
    vision_ms: float
    paper: dict = None  # the family's paper schedule (PAPER_SCHEDULE)


class _Captured(Exception):
    pass


def text_model(model):
    return model.model.language_model


def encode(model, family, inputs, kind="image"):
    """Run the vision tower and the merge through the stock forward, stopping at the decoder's door."""
    captured = {}

    def grab(module, args, kwargs):
        captured.update(kwargs)
        raise _Captured

    handle = text_model(model).register_forward_pre_hook(grab, with_kwargs=True)
    start = time.perf_counter()
    try:
        with torch.inference_mode():
            model(**inputs, use_cache=False)
    except _Captured:
        pass
    finally:
        handle.remove()
    vision_ms = (time.perf_counter() - start) * 1e3
    embeds = captured["inputs_embeds"]
    position_ids = captured.get("position_ids")
    if position_ids is None:
        position_ids = torch.arange(embeds.shape[1]).unsqueeze(0)
    elif position_ids.ndim == 3 and position_ids.shape[0] == 4:
        position_ids = position_ids[1:]  # Qwen-VL style [text; t; h; w]: the rotary embedding takes t, h, w
    groups = family.visual_groups(model, inputs, kind=kind)
    paper = getattr(family, "PAPER_SCHEDULE", PAPER_SCHEDULE)
    return Encoded(inputs["input_ids"], embeds, position_ids, groups, vision_ms, paper)


# ----------------------------------------------------------------------------------------------- planning


def parse_keep(keep):
    """A count (int >= 1) or a ratio (0 < r < 1). Gradio numbers arrive as floats: 64.0 means 64 tokens."""
    try:
        keep = float(keep)
    except (TypeError, ValueError):
        raise RequestError(f"keep must be a number (a count >= 1 or a ratio in (0, 1)), got {keep!r}") from None
    if not keep > 0:
        raise RequestError(f"keep must be a count >= 1 or a ratio in (0, 1), got {keep:g}")
    if keep < 1:
        return ("ratio", keep)
    if keep != int(keep):
        raise RequestError(f"keep {keep:g} is neither a whole count nor a ratio below 1")
    return ("count", int(keep))


def budget_for(group_count, keep):
    mode, value = keep
    if mode == "ratio":
        return max(1, min(group_count, round(value * group_count)))
    if value > group_count:
        raise RequestError(f"keep {value} is more than the {group_count} visual tokens of this input")
    return value


def paper_layers(num_layers, paper=PAPER_SCHEDULE):
    if num_layers == paper["depth"]:
        raw = paper["layers"]
    else:
        raw = (1, round(0.36 * num_layers), round(0.67 * num_layers))
    layers = []
    for layer in raw:  # shallow decoders: keep the stages strictly increasing and inside the model
        layer = max(layer, layers[-1] + 1 if layers else 1)
        if layer < num_layers:
            layers.append(layer)
    return layers


def plan(groups, keep, prune_layer, num_layers, schedule="single", paper=PAPER_SCHEDULE):
    """[(layer, [kept count per group])] for the request. Raises RequestError on impossible settings."""
    keep = parse_keep(keep)
    nominal = [budget_for(g.count, keep) for g in groups]
    if schedule == "single":
        if not 1 <= prune_layer < num_layers:
            raise RequestError(f"prune layer must be between 1 and {num_layers - 1} for this {num_layers}-layer "
                               f"decoder, got {prune_layer}")
        return [(prune_layer, nominal)], nominal
    if schedule != "paper":
        raise RequestError(f"schedule must be 'single' or 'paper', got {schedule!r}")
    stages, previous = [], [g.count for g in groups]
    for layer, factor in zip(paper_layers(num_layers, paper), paper["factors"]):
        counts = [max(1, min(prev, round(factor * r))) for prev, r in zip(previous, nominal)]
        stages.append((layer, counts))
        previous = counts
    return stages, nominal


# ------------------------------------------------------------------------------------------ decoder parts


def attention_row(layer, last_hidden, cos_last, sin_last, keys):
    """Head-mean softmax attention of the last token over all tokens at this layer: [n].

    q is recomputed for the one last token from the layer's own input norm, q projection and rotary embedding;
    the keys are the layer's rotated keys as they sit in the KV cache ([1, kv_heads, n, head_dim]). One query
    row, no N x N matrix, and the model keeps its SDPA attention.
    """
    attn = layer.self_attn
    q = attn.q_proj(layer.input_layernorm(last_hidden)).view(1, 1, -1, attn.head_dim)  # [1, 1, H, hd]
    if hasattr(attn, "q_norm"):  # families that normalise q per head
        q = attn.q_norm(q)
    q = q.transpose(1, 2)  # [1, H, 1, hd]
    rotate = sys.modules[type(attn).__module__].apply_rotary_pos_emb  # the family's own rotary function
    q, _ = rotate(q, q, cos_last, sin_last)
    keys = keys.repeat_interleave(q.shape[1] // keys.shape[1], dim=1)  # grouped-query attention
    logits = (q @ keys.transpose(-1, -2)).float() * attn.scaling  # [1, H, 1, n]
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


def _spectra_at(hidden, rows_of_groups, groups, cutoff):
    out = []
    for rows, group in zip(rows_of_groups, groups):
        z = hidden[0, rows]
        out.append((scoring.highpass_magnitude(z, group.grid, cutoff), scoring.radial_power_spectrum(z, group.grid),
                    scoring.highfreq_share(z, group.grid, cutoff)))
    return out


# ------------------------------------------------------------------------------------------------ the run


def run(model, processor, encoded, method, keep, prune_layer=2, ref_layer=0, schedule="single",
        max_new_tokens=20, seed=0, cutoff=0.1, temp=0.1, diagnostics=False, question=""):
    """One generation with `method` (a METHODS name). Returns a Record. Nothing persists between calls."""
    check_method(method)
    lm = text_model(model)
    text_config = model.config.get_text_config()
    num_layers = len(lm.layers)
    groups = encoded.groups
    planned, nominal = plan(groups, keep, prune_layer, num_layers, schedule, encoded.paper or PAPER_SCHEDULE)
    stages = [] if method == "none" else planned
    first_layer = planned[0][0]
    if not 0 <= ref_layer < first_layer:
        raise RequestError(f"reference layer must be between 0 and {first_layer - 1} (before the pruning layer "
                           f"{first_layer}), got {ref_layer}")
    stage_at = {layer: counts for layer, counts in stages}

    seq_len = encoded.inputs_embeds.shape[1]
    offsets = torch.tensor([0] + [g.count for g in groups]).cumsum(0).tolist()
    visual_total = offsets[-1]
    is_visual = torch.zeros(seq_len, dtype=torch.bool)
    for g in groups:
        is_visual[g.positions] = True
    alive = [torch.arange(g.count) for g in groups]  # group-local indices still in the sequence
    seq_index = torch.arange(seq_len)  # original positions of the current rows

    timings = {"vision_encoder": encoded.vision_ms, "scoring": 0.0, "diagnostics": 0.0}
    record = Record(
        model=str(getattr(model, "name_or_path", "")), method=method, question=question, answer="", answer_ids=[],
        groups=[{"kind": g.kind, "grid": list(g.grid), "offset": offsets[i], "count": g.count,
                 "first_position": int(g.positions[0])} for i, g in enumerate(groups)],
        visual_tokens=visual_total, text_tokens=seq_len - visual_total, num_layers=num_layers,
        prune_layer=first_layer, ref_layer=ref_layer, schedule=schedule,
        budget={"requested": keep, "keep_per_group": nominal, "nominal": sum(nominal), "average_kept": None},
    )
    spectra = [[] for _ in groups] if diagnostics and method == "none" else None

    def rows_of(positions):
        lookup = torch.full((seq_len,), -1, dtype=torch.long)
        lookup[seq_index] = torch.arange(len(seq_index))
        return lookup[positions]

    def group_rows():
        return [rows_of(g.positions[a]) for g, a in zip(groups, alive)]

    def diagnose(hidden):
        start = time.perf_counter()
        for per_group, (hp, radial, share) in zip(spectra, _spectra_at(hidden, group_rows(), groups, cutoff)):
            per_group.append((hp, radial, share))
        timings["diagnostics"] += (time.perf_counter() - start) * 1e3

    with torch.inference_mode():
        hidden = encoded.inputs_embeds
        position_ids = encoded.position_ids
        cos, sin = lm.rotary_emb(hidden, position_ids)
        cache = DynamicCache(config=text_config)
        mask = causal_mask(text_config, hidden, cache, 0)
        z_ref, last_before = None, None
        start = time.perf_counter()
        for i, layer in enumerate(lm.layers):
            if spectra is not None:
                diagnose(hidden)
            if i == ref_layer:
                z_ref = [hidden[0, rows] for rows in group_rows()]
            if i in stage_at or (method == "none" and diagnostics and i == first_layer):
                t0 = time.perf_counter()
                cached_row = {}

                def attention(rows, layer_before=lm.layers[i - 1], last_hidden=last_before):
                    if "row" not in cached_row:
                        cached_row["row"] = attention_row(layer_before, last_hidden, cos[:, -1:], sin[:, -1:],
                                                          cache.layers[i - 1].keys)
                    return cached_row["row"][rows]

                rows_now = group_rows()

                def inputs_for(gi, stage_index):
                    a = alive[gi]
                    return StageInputs(
                        stage=stage_index, grid=groups[gi].grid, alive=a, z_ref=z_ref[gi][a],
                        z_cur=hidden[0, rows_now[gi]], attention=lambda r=rows_now[gi]: attention(r), seed=seed,
                        cutoff=cutoff, temp=temp)

                if i in stage_at:
                    stage_index = len(record.stages)
                    scores_all = torch.full((visual_total,), float("nan"), dtype=torch.float64)
                    for gi, group in enumerate(groups):
                        # float64: CLSE's sigmoid saturates in float32 (see scoring.clse_scores)
                        scores = METHODS[method](inputs_for(gi, stage_index)).double()
                        scores_all[offsets[gi] + alive[gi]] = scores
                        note = tie_note(scores, stage_at[i][gi])
                        if note:
                            record.notes.append(f"{method}, layer {i}, group {gi}: {note}")
                        alive[gi] = alive[gi][select_top(scores, stage_at[i][gi])]
                    kept_positions = torch.cat([g.positions[a] for g, a in zip(groups, alive)])
                    keep_seq = torch.cat([seq_index[~is_visual[seq_index]], kept_positions]).sort().values
                    rows = rows_of(keep_seq)
                    hidden, cos, sin = hidden[:, rows], cos[:, rows], sin[:, rows]
                    position_ids = position_ids[..., rows]
                    seq_index = keep_seq
                    mask = causal_mask(text_config, hidden, cache, i)
                    scorer = "fastv" if stage_index > 0 and method in ("clse", "clse_hybrid") else method
                    record.stages.append(Stage(
                        layer=i, scorer=scorer, keep_counts=[len(a) for a in alive], scores=scores_all.tolist(),
                        keep_indices=torch.cat([offsets[gi] + a for gi, a in enumerate(alive)]).tolist()))
                    timings["scoring"] += (time.perf_counter() - t0) * 1e3
                else:  # unpruned run: every method's first-stage scores, for the comparison views
                    d0 = time.perf_counter()
                    record.reference_scores = {}
                    for name, fn in METHODS.items():
                        if fn is not None:
                            record.reference_scores[name] = torch.cat(
                                [fn(inputs_for(gi, 0)).double() for gi in range(len(groups))]).tolist()
                    timings["diagnostics"] += (time.perf_counter() - d0) * 1e3
            record.tokens_per_layer.append(hidden.shape[1])
            record.visual_per_layer.append(sum(len(a) for a in alive))
            last_before = hidden[:, -1:]  # the last prompt token entering this layer, for attention scores
            hidden = layer(hidden, attention_mask=mask, position_embeddings=(cos, sin), past_key_values=cache,
                           use_cache=True)
        if spectra is not None:
            diagnose(hidden)
        logits = model.lm_head(lm.norm(hidden[:, -1:]))
        token = int(logits[0, -1].argmax())
        prefill_ms = (time.perf_counter() - start) * 1e3 - timings["diagnostics"]
        record.kv_cache_bytes_prefill = cache_bytes(cache)
        step_logits = [logits[0, -1].float()]  # kept on the record for tests; not serialised

        # Greedy decoding from the pruned cache; positions continue after the original sequence.
        stop = eos_ids(model, processor)
        generated = [token]
        next_position = int(encoded.position_ids.max()) + 1
        start = time.perf_counter()
        while token not in stop and len(generated) < max_new_tokens:
            hidden = lm.embed_tokens(torch.tensor([[token]]))
            position = torch.full((*position_ids.shape[:-1], 1), next_position)
            next_position += 1
            step_cos, step_sin = lm.rotary_emb(hidden, position)
            for i, layer in enumerate(lm.layers):
                hidden = layer(hidden, attention_mask=causal_mask(text_config, hidden, cache, i),
                               position_embeddings=(step_cos, step_sin), past_key_values=cache, use_cache=True)
            step_logits.append(model.lm_head(lm.norm(hidden))[0, -1].float())
            token = int(step_logits[-1].argmax())
            generated.append(token)
        decode_ms = (time.perf_counter() - start) * 1e3

    record.step_logits = step_logits
    record.answer_ids = generated
    record.answer = processor.tokenizer.decode(generated, skip_special_tokens=True).strip()
    record.kept_indices = torch.cat([offsets[gi] + a for gi, a in enumerate(alive)]).tolist()
    record.kv_cache_bytes = cache_bytes(cache)
    record.budget["average_kept"] = sum(record.visual_per_layer) / num_layers
    hidden_size = text_config.hidden_size
    mlp = text_config.intermediate_size
    record.flops = {
        "prefill": sum(layer_flops(n, hidden_size, mlp) for n in record.tokens_per_layer),
        "formula": "per decoder layer with n tokens: 4 n d^2 + 2 n^2 d + 2 n d m (FastV convention, "
                   f"multiply-accumulates; d = {hidden_size}, m = {mlp})",
    }
    decode_steps = max(len(generated) - 1, 0)
    timings.update({
        "prefill": prefill_ms,
        "first_token": encoded.vision_ms + prefill_ms,
        "decode_per_token": decode_ms / decode_steps if decode_steps else 0.0,
        "decode": decode_ms,
        "total": encoded.vision_ms + prefill_ms + decode_ms,
    })
    record.timings_ms = timings
    if spectra is not None:
        record.spectra = [{
            "layers": list(range(num_layers + 1)),  # entry i = input of layer i; the last = decoder output
            "highpass": [hp.tolist() for hp, _, _ in per_group],
            "radial": [radial.tolist() for _, radial, _ in per_group],
            "highfreq_share": [share for _, _, share in per_group],
        } for per_group in spectra]
    for gi, group in enumerate(groups):  # each image/video has its own grid (Qwen: one per image size)
        if scoring.is_degenerate_grid(group.grid, cutoff):
            record.notes.append(f"group {gi}: grid {group.grid} too small for the high-pass mask (sigma = 0): "
                                "CLSE used an all-pass mask")
    return record


TIE_AT_CUT = "tie at the cut"  # in a note of record.notes when a stage's cut fell inside a tie (tie_note)


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


def compare(model, processor, family, images, question, methods=("clse", "fastv"), keep=64, prune_layer=2,
            ref_layer=0, schedule="single", kind="image", max_new_tokens=20, seed=0, diagnostics=True):
    """Unpruned + each method on one input; the image is encoded once and reused."""
    question = (question or "").strip()
    if not question:
        raise RequestError("the question is empty")
    if not images:
        raise RequestError("no image or video frames were given")
    for name in methods:
        if name not in METHODS:
            raise RequestError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    inputs = family.build_inputs(processor, images, question, kind=kind)
    encoded = encode(model, family, inputs, kind=kind)
    # Validate the settings once, before any run, so nothing is half-done.
    plan(encoded.groups, keep, prune_layer, len(text_model(model).layers), schedule, encoded.paper)
    names = ["none"] + [m for m in methods if m != "none"]
    return {name: run(model, processor, encoded, name, keep, prune_layer, ref_layer, schedule, max_new_tokens,
                      seed, diagnostics=diagnostics and name == "none", question=question) for name in names}
