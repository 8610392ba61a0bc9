"""Attention rows without an N x N matrix: one query row against every key, from the model's own norms,
projections and rotary function, so the model keeps its SDPA (or flash) attention. FastV, CLSE, PyramidDrop
and DART read the decoder's rows through `last_token_row` / `row_entering`; VisionZip reads the vision tower's
[CLS] row through `cls_row`.

A decoder layer's parts come from the family as models.base.LayerParts (input norm, q / k projections, per-head
norms where the family has them, head size, scale, rotary function).
"""

import torch


def heads(projection, states, head_dim, norm=None):
    """[1, S, D] states -> [1, heads, S, head_dim] per-head projections (normed per head where norm is given)."""
    x = projection(states).view(*states.shape[:-1], -1, head_dim)
    if norm is not None:  # Qwen3 normalises q and k per head, over head_dim, before the rotation
        x = norm(x)
    return x.transpose(1, 2)


def softmax_row(query, keys, scaling):
    """Head-mean softmax attention of one query over the keys: query [1, H, 1, hd], keys [1, kv_heads, n, hd]
    (grouped-query attention repeats kv heads) -> [n] float32."""
    keys = keys.to(query.device).repeat_interleave(query.shape[1] // keys.shape[1], dim=1)
    logits = (query.float() @ keys.float().transpose(-1, -2)) * scaling  # [1, H, 1, n]
    return logits.softmax(dim=-1)[0, :, 0].mean(dim=0)


def on(rope, device, rows=None):
    """A layer's rotary inputs (the tuple its decoder passes it: (cos, sin), or one tensor of complex
    frequencies) on `device`, restricted to sequence rows (axis 1 of [B, S, ...]) where given."""
    rope = rope if isinstance(rope, tuple) else (rope,)
    return tuple((t if rows is None else t[:, rows.to(t.device)]).to(device) for t in rope)


def rotate(parts, x, rope):
    """x [1, heads, n, hd] rotated by the layer's own rotary function (its keys or queries alike)."""
    rotated, _ = parts.rotate(x, x, *rope)
    return rotated


def last_token_row(parts, last_hidden, rope_last, keys):
    """Head-mean softmax attention of the last token over all tokens at a layer that has run: [n] float32.

    q is recomputed for the one last token from the layer's input norm, q projection and rotary function
    (rope_last: the layer's rotary inputs for that token); the keys are the layer's rotated keys as they sit in
    the KV cache ([1, kv_heads, n, head_dim]). This is the row FastV and CLSE read at layer K - 1 (eager
    attention's last row, within 1e-6: tested)."""
    device = parts.q_proj.weight.device  # a device map may put the layers on several devices
    last_hidden = last_hidden.to(device)
    q = heads(parts.q_proj, parts.input_norm(last_hidden), parts.head_dim, parts.q_norm)  # [1, H, 1, hd]
    return softmax_row(rotate(parts, q, on(rope_last, device)), keys, parts.scaling)


def row_entering(parts, hidden, rope):
    """Head-mean softmax attention of the LAST token over all tokens at a layer, from the hidden states ENTERING
    it ([1, S, D], before the layer runs): [S] float32. PyramidDrop's score: layer K's own input norm, q / k
    projections and rotary function, keys for every token (n x d projections, no n x n matrix), q for the last
    token, softmax over the whole sequence with the layer's scale, averaged over heads."""
    device = parts.q_proj.weight.device
    hidden = hidden.to(device)
    normed = parts.input_norm(hidden)
    keys = heads(parts.k_proj, normed, parts.head_dim, parts.k_norm)  # [1, kv, S, hd]
    query = heads(parts.q_proj, normed[:, -1:], parts.head_dim, parts.q_norm)  # [1, H, 1, hd]
    last = torch.tensor([hidden.shape[1] - 1], device="cpu")
    return softmax_row(rotate(parts, query, on(rope, device, last)), rotate(parts, keys, on(rope, device)),
                       parts.scaling)


def cls_row(attn_module, hidden_states, cls_index=0):
    """Head-mean softmax attention of the [CLS] query over all tokens of one CLIP-style attention layer:
    [T] float32, from the hidden states that module receives (one image: [1, T, D] or [T, D]; in a
    CLIPEncoderLayer that is layer_norm1's output). q for the CLS token, k for every token, softmax(q k^T *
    scale) per head, then the mean over heads; the tower keeps its SDPA attention. Works for modules with
    q_proj, k_proj, num_heads, head_dim and scale (CLIPAttention)."""
    if hidden_states.dim() == 2:
        hidden_states = hidden_states.unsqueeze(0)
    tokens = hidden_states.shape[1]
    keys = attn_module.k_proj(hidden_states).view(tokens, attn_module.num_heads, attn_module.head_dim)
    query = attn_module.q_proj(hidden_states[:, cls_index]).view(attn_module.num_heads, attn_module.head_dim)
    logits = torch.einsum("hd,thd->ht", query.float(), keys.float()) * attn_module.scale  # [H, T]
    return logits.softmax(dim=-1).mean(dim=0)


def key_l1_norms(keys):
    """L1 norm of each token's key over all heads and channels: keys [1, kv_heads, n, head_dim] (rotated, as
    in the KV cache) -> [n] float64. DART ranks its pivots by this (grouped-query attention repeats kv heads
    in the official code, which multiplies every norm by the same factor: the ranking is the same)."""
    return keys.detach().to("cpu", torch.float64).abs().sum(dim=(0, 1, 3))


def rows_attention(parts, hidden, rope, keys, query_rows):
    """Head-mean softmax attention of several query rows at a layer that has run, over its cached keys, causal
    (row r sees keys 0..r): [len(query_rows), n] float32. hidden [1, S, D] entering the layer, rope: its rotary
    inputs for those
    positions, keys [1, kv_heads, S, hd] as cached (the same rows). SparseVLM's raters read this: a few rows,
    never the S x S matrix."""
    device = parts.q_proj.weight.device
    q = heads(parts.q_proj, parts.input_norm(hidden.to(device)[:, query_rows.to(device)]), parts.head_dim,
              parts.q_norm)  # [1, H, m, hd]
    q = rotate(parts, q, on(rope, device, query_rows))
    query_rows = query_rows.to(device)
    keys = keys.to(device).repeat_interleave(q.shape[1] // keys.shape[1], dim=1)
    logits = (q.float() @ keys.float().transpose(-1, -2)) * parts.scaling  # [1, H, m, n]
    future = torch.arange(keys.shape[2], device=device)[None, :] > query_rows[:, None]
    return logits.masked_fill(future, float("-inf")).softmax(dim=-1).mean(dim=1)[0]
