"""Llama 4 (Llama4ForConditionalGeneration): the shared defaults but for the tiles and the attention's rotation.

Where the visual tokens are: every 336 px tile (and the global view of the whole image, last, after <|image|>) is
one run of (tile / patch)^2 * pixel_shuffle_ratio^2 `config.image_token_id` (<|patch|>) tokens, row-major,
between <|tile_x_separator|> / <|tile_y_separator|> tokens; each tile is its own square grid, and an image's
tiles share one budget. (Runs parted by single tokens would otherwise read as the rows of one grid.)

The decoder (language_model.model, inside a ForCausalLM): chunked-attention layers with RoPE as complex
frequencies (apply_rotary_emb on [B, S, heads, head_dim]) and a weightless L2 qk_norm after it, and every few
layers a full-attention layer without positions (NoPE), which is the one whose attention row covers a prompt
longer than a chunk. The decoder rebuilds its chunks from sequence indices, so after pruning a chunk holds kept
tokens only.
"""

import sys

from models.base import VisualGroup, runs, stock_attention_layers, stock_layer_parts, stock_text_model, visual_token_ids

NAME = "Llama 4"
MODEL_CLASSES = ("Llama4ForConditionalGeneration",)


def visual_groups(model, inputs, kind="image"):
    """Each run of patch tokens is one tile's square grid; the runs of one image (between its <|image_start|>
    and <|image_end|>) share a unit, the last being the global view."""
    ids = inputs["input_ids"][0].cpu()
    start_id = getattr(model.config, "boi_token_index", None)
    image = (ids == start_id).cumsum(0) if start_id is not None else ids * 0
    groups, tile_runs = [], runs((ids == visual_token_ids(model)["image"]).nonzero().flatten())
    for i, run in enumerate(tile_runs):
        side = int(len(run) ** 0.5)
        unit = int(image[run[0]])
        last = i + 1 == len(tile_runs) or int(image[tile_runs[i + 1][0]]) != unit
        groups.append(VisualGroup("image", (1, side, side), run, unit=unit, name="global" if last else f"tile {i}"))
    return groups


def layer_parts(model, index):
    """The stock parts with Llama 4's rotation: complex RoPE on RoPE layers, then qk_norm where the layer has it;
    NoPE layers rotate nothing."""
    attention = stock_text_model(model).layers[index].self_attn
    apply_rotary_emb = sys.modules[type(attention).__module__].apply_rotary_emb

    def rotate(q, k, *rope):
        if attention.use_rope:
            q, k = (x.transpose(1, 2) for x in apply_rotary_emb(q.transpose(1, 2), k.transpose(1, 2), rope[0]))
        if hasattr(attention, "qk_norm"):
            q, k = attention.qk_norm(q), attention.qk_norm(k)
        return q, k

    return stock_layer_parts(model, index, rotate=rotate)


def attention_layers(model, length=None):
    return stock_attention_layers(model, length, layer_parts)
