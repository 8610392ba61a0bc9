"""The peer rows: an attention score's rows computed the way the official code does (the scoring layer switched
to eager attention with output_attentions: the N x N weights, of which FastV and CLSE read the last row and
SparseVLM its raters' rows) against ours (the layer left on SDPA, the rows needed computed from its own
projections and the keys it cached). Used by python -m explorer.bench --peer and its paper suite."""

import torch

from explorer.bench import pairs
from explorer.bench.memory import memory_mb, reset_peak
from explorer.core.devices import clock, device_of
from explorer.methods import attention
from models import llava


def peer_attention(model, seq, raters=8, repeats=3, family=llava, layer_index=1):
    """{"official" / "ours": (median ms, median peak MB)} at one scoring layer for a sequence of `seq` tokens
    (random hidden states: the cost does not depend on the values), plus "difference": the largest gap between
    the two ways' rows (the same rows: the comparison is fair). On the model's device and in its dtype; peak
    memory: the device allocator's peak above its level before on CUDA, else the process's peak RSS (VmHWM)."""
    from transformers.masking_utils import create_causal_mask  # noqa: PLC0415

    lm = family.text_model(model)
    layer, parts = lm.layers[layer_index], family.layer_parts(model, layer_index)
    config = model.config.get_text_config()
    device, dtype = device_of(lm), next(lm.parameters()).dtype
    hidden = torch.randn(1, seq, config.hidden_size, generator=torch.Generator().manual_seed(0)).to(device, dtype)
    positions = torch.arange(seq, device=device)[None]
    cos, sin = lm.rotary_emb(hidden, positions)
    rows = torch.arange(seq - raters, seq)

    def official():  # the layer's attention in eager mode, the weights materialised: [1, H, S, S]
        config._attn_implementation = "eager"
        try:
            mask = create_causal_mask(config=config, inputs_embeds=hidden, attention_mask=torch.ones(
                1, seq, dtype=torch.long, device=device), past_key_values=None, position_ids=positions)
            _, weights = layer.self_attn(layer.input_layernorm(hidden), position_embeddings=(cos, sin),
                                         attention_mask=mask)
            return weights[0, :, -1].float().mean(0), weights[0, :, rows.to(device)].float().mean(0).mean(0)
        finally:
            config._attn_implementation = "sdpa"

    def ours():  # the layer on SDPA, then the rows from its own projections and the keys it cached
        normed = layer.input_layernorm(hidden)
        layer.self_attn(normed, position_embeddings=(cos, sin), attention_mask=None)
        keys = attention.heads(parts.k_proj, normed, parts.head_dim, parts.k_norm)
        _, keys = parts.rotate(keys, keys, cos, sin)
        last = attention.last_token_row(parts, hidden[:, -1:], (cos[:, -1:], sin[:, -1:]), keys)
        return last, attention.rows_attention(parts, hidden, (cos, sin), keys, rows).mean(0)

    def peak_mb(fn):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            baseline = torch.cuda.memory_allocated(device)
            fn()
            return (torch.cuda.max_memory_allocated(device) - baseline) / 2**20
        baseline = memory_mb("self", "VmRSS")
        reset_peak("self")
        fn()
        return memory_mb("self", "VmHWM") - baseline

    times, peaks = {"official": [], "ours": []}, {"official": [], "ours": []}
    with torch.inference_mode():
        theirs, mine = official(), ours()  # warm up, and the same rows
        difference = max(float((a.float() - b.float()).abs().max()) for a, b in zip(theirs, mine))
        for repeat in range(repeats):
            for name, fn in (("official", official), ("ours", ours))[::1 if repeat % 2 == 0 else -1]:
                start = clock(device)
                fn()
                times[name].append((clock(device) - start) * 1e3)
            for name, fn in (("official", official), ("ours", ours)):  # apart: a peak is one call's own
                peaks[name].append(peak_mb(fn))
    out = {name: (pairs.median(times[name]), pairs.median(peaks[name])) for name in times}
    out["difference"] = difference
    return out
