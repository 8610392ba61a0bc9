"""What every model family shares, and the contract a family file fulfils.

A family is one module in models/ (llava.py, qwen2_vl.py, ...) listed in models.FAMILIES, saying only what
differs from the defaults at the end of this file (SHARED; models/__init__.py fills in the rest, and
models/generic.py is nothing but them). The explorer's engine calls only what `Family` below names and knows no
family; tests/test_layout.py checks every module in FAMILIES against it (the names and their signatures) and the
family tests what they return on tiny models.

Nothing here imports explorer/: models/ is a leaf package.
"""

import inspect
import math
import sys
import weakref
from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

import torch
from PIL import Image


class BadInput(ValueError):
    """Anything the user can fix (a setting, a file, a model name): the message says what and how."""


@dataclass
class VisualGroup:
    """One image or one video inside the decoder's input sequence.

    positions: sequence positions of its grid tokens, in raster order (frame-major for video);
    grid: (t, h, w) with t * h * w == len(positions). Each group is scored and budgeted on its own.
    """

    kind: str  # "image" or "video"
    grid: tuple
    positions: torch.Tensor
    unit: int = None  # groups with the same unit are one image's grids (LLaVA-NeXT's base and tiles): one budget
    name: str = ""  # what the page calls the grid ("base", "tiles", "tile 2", "thumbnail"; "" for a lone grid)

    @property
    def count(self):
        return len(self.positions)


@dataclass
class Injection:
    """Features a family's text model adds to the hidden states of visual positions after one of its decoder
    layers (Qwen3-VL's DeepStack): after layer `after_layer`, hidden[positions] += features. The engine adds
    them to the rows of the positions still alive (gathered with the same index as the hidden states)."""

    after_layer: int
    positions: torch.Tensor  # [n] sequence positions
    features: torch.Tensor  # [n, D]


@dataclass
class LayerParts:
    """The parts of one decoder layer a pruning score reads: the layer's input norm, the attention's q and k
    projections with their per-head norms where the family has them (Qwen3: q_norm / k_norm over head_dim),
    the head size, the softmax scale, and the attention's own rotary function apply_rotary_pos_emb(q, k, cos,
    sin) (cos / sin as the decoder's rotary embedding returns them)."""

    input_norm: Callable  # hidden [.., D] -> normed [.., D]
    q_proj: Callable  # [.., D] -> [.., heads * head_dim]
    k_proj: Callable  # [.., D] -> [.., kv_heads * head_dim]
    head_dim: int
    scaling: float
    rotate: Callable
    q_norm: Callable = None  # [.., heads, head_dim] -> same; None where the family has none
    k_norm: Callable = None


@runtime_checkable
class TextModel(Protocol):
    """The decoder the engine runs layer by layer (a transformers text model: LlamaModel, Qwen2Model, ...)."""

    layers: list  # decoder layers: layer(h, attention_mask=, position_embeddings=(cos, sin), past_key_values=,
    # use_cache=True) -> h
    norm: Callable  # the final norm
    rotary_emb: Callable  # (h, position_ids) -> (cos, sin)
    embed_tokens: Callable  # ids -> embeddings


@runtime_checkable
class Family(Protocol):
    """A model family: one module of models/. Data first, then the functions the engine calls."""

    NAME: str  # shown on the page, e.g. "LLaVA"
    MODEL_CLASSES: tuple  # names of the transformers classes it serves ("LlavaForConditionalGeneration", ...)
    HUB_IDS: tuple  # hub checkpoints offered on the page
    # {"image": {"ref_layer", "prune_layer", "early_kv"}, "video": {...}}: the layers L and K of a single stage
    # and the KV policy of the layers before it, as the official CLSE code sets them for one stage on this
    # family (CLSE's own official image runs use the staged PAPER_SCHEDULE)
    DEFAULTS: dict
    # the paper's staged schedule: {"depth", "layers", "factors"} with a "keep_table" (counts of "tokens"
    # visual tokens) or a "ratio_table" (shares of N)
    PAPER_SCHEDULE: dict
    INJECTED_ARGUMENTS: tuple  # what the wrapper passes its decoder to add between layers (turned into injections)

    def build_inputs(self, processor, images, question, kind="image", prompt="chat", timing=None, history=()):
        """The real processor's tensors for a conversation: the images (or a video's frames) with the first
        user turn, then the question; prompt "chat" (the checkpoint's chat template) or "official" (the
        official evaluation prompt). timing: a sampled clip's {"fps", "frames_indices", "total_num_frames"}
        (media.Clip) for processors that write or use the frames' times; history: the earlier turns as
        [(question, answer)], the first one holding the images."""

    def visual_groups(self, model, inputs, kind="image") -> list:
        """[VisualGroup]: where the visual tokens sit and their grids, from the model's own token ids and the
        processor's grid, never from offsets."""

    def text_model(self, model) -> TextModel:
        """The decoder (layers, norm, rotary_emb, embed_tokens)."""

    def layer_parts(self, model, index) -> LayerParts:
        """What a score reads of decoder layer `index` (LayerParts), or None where it has no such attention."""

    def attention_layers(self, model, length=None) -> list:
        """The layers whose attention row over every token of a `length`-token prompt a score can read."""

    def final_norm(self, model):
        """The decoder's final norm."""

    def decoder_positions(self, position_ids):
        """The position ids the decoder's rotary embedding takes, from those the wrapper passes the decoder."""

    def vision_attention(self, model):
        """(attention module, CLS index) of the vision layer the features come from, or None (no CLS token):
        what VisionZip's dominant-token score reads. The module has q_proj, k_proj, num_heads, head_dim and
        scale (CLIPAttention)."""

    def injections(self, model, captured, groups) -> list:
        """[Injection]: what the text model adds to the visual positions after some of its layers, from the
        keyword arguments the wrapper passed it (`captured`); [] for most families."""

    def feature_projector(self, model):
        """The module mapping the vision features to the decoder's inputs (LLaVA's multi_modal_projector), whose
        input rows are the patches of vision_attention's grid, or None: what VisionZip's contextual tokens are
        merged before (in the tower's feature space, as its official code merges them)."""

    def model_view(self, processor, images, kind="image") -> list:
        """[PIL image]: what the vision tower saw (resized, cropped), one per image or frame, so the token grid
        lies exactly over it."""


# ------------------------------------------------------------------------ the defaults every family shares
# A family file says only what differs from these; models/__init__.py fills in the rest (SHARED, at the end).
# They serve any transformers image-text-to-text model whose visual tokens enter the decoder's sequence at image
# or video placeholder ids (the generic path: models/generic.py).

# CLSE's official one-stage settings (images: L = 0, K = 1, "after the first layer"; video: L = 2, K = 3),
# keeping the early layers' KV cache as the official Qwen2-VL and video code do.
STOCK_DEFAULTS = {"image": {"ref_layer": 0, "prune_layer": 1, "early_kv": "keep"},
                  "video": {"ref_layer": 2, "prune_layer": 3, "early_kv": "keep"}}
# The paper's Qwen2-VL schedule as shares of N (stages at 1, 10, 19 of 28, rescaled to the depth): it holds
# for any token count, where LLaVA-1.5's keep table holds only for 576.
STOCK_PAPER_SCHEDULE = {"depth": 28, "layers": (1, 10, 19), "factors": (0.57 / 0.334, 0.36 / 0.334, 0.098 / 0.334),
                        "ratio_table": {0.334: (0.57, 0.36, 0.098), 0.223: (0.38, 0.24, 0.066),
                                        0.112: (0.19, 0.12, 0.034)}}
# What the wrapper passes its decoder to be added between layers (DeepStack): the engine adds it itself
# (`injections`), so the stock decoder must not.
STOCK_INJECTED = ("deepstack_visual_embeds", "visual_pos_masks")
# Attribute names transformers' decoder layers use for the parts a score reads.
ATTENTION_NAMES = ("self_attn", "attn", "attention", "mixer")  # mixer: Nemotron-H's attention (or Mamba) block
INPUT_NORM_NAMES = ("input_layernorm", "operator_norm", "attention_norm", "ln_1", "norm")
Q_NORM_NAMES = ("q_norm", "q_layernorm", "query_layernorm")
K_NORM_NAMES = ("k_norm", "k_layernorm", "key_layernorm")
IMAGE_TOKEN_NAMES = ("image_token_id", "image_token_index", "image_patch_id")
VIDEO_TOKEN_NAMES = ("video_token_id", "video_token_index")


def _first(obj, names):
    return next((getattr(obj, n) for n in names if getattr(obj, n, None) is not None), None)


def stock_text_model(model):
    """The decoder: what the model's get_decoder() returns, or the base model inside a causal-LM wrapper
    (Llama 4's language model is a ForCausalLM)."""
    decoder = model.get_decoder()
    while not hasattr(decoder, "layers"):
        inner = getattr(decoder, "model", None) or getattr(decoder, "language_model", None)
        if inner is None or inner is decoder:
            raise BadInput(f"{type(model).__name__} has no decoder with layers that the explorer can find")
        decoder = inner
    return decoder


def stock_layer_parts(model, index, rotate=None):
    """LayerParts of a transformers decoder layer (its attention's q_proj / k_proj / head_dim / scaling, the
    per-head norms under any of their names, the input norm, the attention module's own
    apply_rotary_pos_emb or the `rotate` given), or None for a layer without such an attention (linear
    attention, convolution). A q_proj twice as wide as the heads (Qwen3.5, Qwen3-Next: each head's query then
    its output gate) is read for its queries."""
    layer = stock_text_model(model).layers[index]
    attn = next((a for a in (getattr(layer, n, None) for n in ATTENTION_NAMES)
                 if a is not None and hasattr(a, "q_proj") and hasattr(a, "k_proj")), None)
    norm = _first(layer, INPUT_NORM_NAMES)
    if rotate is None and attn is not None:
        rotate = pairwise(getattr(sys.modules[type(attn).__module__], "apply_rotary_pos_emb", None))
    if attn is None or norm is None or rotate is None:
        return None
    config = model.config.get_text_config()
    head_dim = getattr(attn, "head_dim", None) or getattr(config, "head_dim", None) or (
        config.hidden_size // config.num_attention_heads)
    q_proj = attn.q_proj
    if getattr(q_proj, "out_features", 0) == 2 * config.num_attention_heads * head_dim:
        q_proj = gated_query(attn.q_proj, head_dim)
    return LayerParts(norm, q_proj, attn.k_proj, head_dim, getattr(attn, "scaling", head_dim ** -0.5), rotate,
                      _first(attn, Q_NORM_NAMES), _first(attn, K_NORM_NAMES))


@dataclass(frozen=True)
class DecoderShape:
    """What FLOP counts and memory estimates read of a decoder: its width d, its MLP's width m (4 d where an MoE
    config names only its experts' width) and whether the MLP is gated (gate, up and down projections)."""

    hidden: int
    mlp: int
    gated: bool


GATE_NAMES = ("gate_proj", "gate_up_proj", "w3")  # gate_proj, a fused gate_up_proj, or w1 / w3: a gated MLP
_SHAPES = weakref.WeakKeyDictionary()  # model -> DecoderShape, read once per model


def decoder_shape(model):
    """The model's DecoderShape, read from its config and its first decoder layer's parameter names once."""
    if model not in _SHAPES:
        config = model.config.get_text_config()
        names = (name for name, _ in stock_text_model(model).layers[0].named_parameters())
        gated = any(part in GATE_NAMES for name in names for part in name.split("."))
        hidden = config.hidden_size
        _SHAPES[model] = DecoderShape(hidden, getattr(config, "intermediate_size", None) or 4 * hidden, gated)
    return _SHAPES[model]


def pairwise(rotary):
    """A module's apply_rotary_pos_emb as (q, k, cos, sin) -> (q, k), also where it rotates one tensor at a
    time ((x, cos, sin): Gemma 4)."""
    if rotary is None:
        return None
    if list(inspect.signature(rotary).parameters)[:2] == ["q", "k"]:
        return rotary
    return lambda q, k, cos, sin: (rotary(q, cos, sin), rotary(k, cos, sin))


def gated_query(q_proj, head_dim):
    """The queries of a projection that writes each head's query and then its output gate."""
    def project(x):
        per_head = q_proj(x).view(*x.shape[:-1], -1, 2 * head_dim)
        return per_head[..., :head_dim].reshape(*x.shape[:-1], -1)
    project.weight = q_proj.weight  # where the layer lives (attention.py reads its device)
    return project


def stock_final_norm(model):
    """The decoder's final norm (LFM2 calls it embedding_norm)."""
    lm = stock_text_model(model)
    return getattr(lm, "norm", None) or lm.embedding_norm


def stock_attention_layers(model, length=None, layer_parts=stock_layer_parts):
    """The decoder layers whose attention row over every token a score can read: full-attention layers with the
    parts `layer_parts` finds, and sliding-window or chunked ones whose window covers a `length`-token
    prompt. Layer kinds as the model's cache sees them (transformers' get_layer_types_and_kwargs)."""
    config = model.config.get_text_config()
    try:
        from transformers.cache_utils import get_layer_types_and_kwargs

        kinds, _ = get_layer_types_and_kwargs(config)
    except (ImportError, AttributeError, TypeError):
        kinds = getattr(config, "layer_types", None)
    layers = len(stock_text_model(model).layers)
    kinds = list(kinds or ["full_attention"] * layers)
    window = {"sliding_attention": getattr(config, "sliding_window", None),
              "chunked_attention": getattr(config, "attention_chunk_size", None)}
    readable = []
    for i in range(layers):
        kind = kinds[i] if i < len(kinds) else "full_attention"
        fits = kind == "full_attention" or (kind in window and length is not None and window[kind]
                                            and length < window[kind])
        if fits and layer_parts(model, i) is not None:
            readable.append(i)
    return readable


def visual_token_ids(model):
    """{"image": id, "video": id} of the placeholders the wrapper overwrites with visual features."""
    config = model.config
    ids = {"image": _first(config, IMAGE_TOKEN_NAMES), "video": _first(config, VIDEO_TOKEN_NAMES)}
    ids = {kind: int(i) for kind, i in ids.items() if isinstance(i, int) and i >= 0}
    if ids.get("video") == ids.get("image"):  # one placeholder for both (Molmo2): the tokens are the images'
        ids.pop("video")
    return ids


def runs(positions):
    """Sorted positions split into runs of consecutive ones."""
    if len(positions) == 0:
        return []
    breaks = (positions[1:] != positions[:-1] + 1).nonzero().flatten() + 1
    return list(torch.tensor_split(positions, breaks.tolist()))


def processor_grids(model, inputs, kind):
    """(t, h, w) per image or video in the decoder's tokens, from the processor's image_grid_thw /
    video_grid_thw (patches, before the spatial merge of model.config.vision_config); None without them."""
    grid = inputs.get(f"{kind}_grid_thw")
    if grid is None:
        return None
    vision = getattr(model.config, "vision_config", None)
    merge = getattr(vision, "spatial_merge_size", None) or getattr(vision, "merge_size", None) or 1
    return [(int(t), int(h) // merge, int(w) // merge) for t, h, w in grid.tolist()]


def view_grids(inputs, token_runs):
    """(1, h, w) per run from the processor's per-view patch shapes (spatial_shapes: LFM2-VL's tiles and
    thumbnail; target_sizes: MiniCPM-V's source view and slices), at the one downsampling factor that makes
    every view's token count its run's length; None where none does."""
    for key in ("spatial_shapes", "target_sizes"):
        shapes = inputs.get(key)
        if shapes is None or len(shapes) != len(token_runs):
            continue
        for factor in (1, 2, 4):
            grids = [(1, int(h) // factor, int(w) // factor) for h, w in shapes.tolist()]
            if all(h * w == len(r) for (_, h, w), r in zip(grids, token_runs)):
                return grids
    return None


def grids_of_runs(token_runs, ids=None):
    """Grids where the processor says nothing: equal runs of w tokens parted by single separator tokens, the
    same one (`ids`: the prompt's token ids), are the rows of one h x w grid (Pixtral's [IMG_BREAK] after each
    row but the last); square runs each followed by that separator, the last one too, are tiles (Cohere2-Vision's
    line break after every tile); a run of s * s tokens is one s x s grid; anything else a strip (1, 1, n) whose
    2-D layout is unknown. Returns [(grid, positions, name)]."""
    out, i = [], 0
    while i < len(token_runs):
        j = i + 1
        while (j < len(token_runs) and len(token_runs[j]) == len(token_runs[i])
               and int(token_runs[j][0]) == int(token_runs[j - 1][-1]) + 2
               and (ids is None or ids[int(token_runs[j][0]) - 1] == ids[int(token_runs[i][-1]) + 1])):
            j += 1
        rows = token_runs[i:j]
        side = math.isqrt(len(rows[0]))
        after = int(rows[-1][-1]) + 1
        tiles = (ids is not None and side * side == len(rows[0]) and side > 1 and len(rows) > 1
                 and after < len(ids) and ids[after] == ids[int(rows[0][-1]) + 1])
        if tiles:  # square runs each followed by the same separator, the last too: tiles, not rows
            out += [((1, side, side), r, "") for r in rows]
        elif len(rows) > 1:
            out.append(((1, len(rows), len(rows[0])), torch.cat(rows), ""))
        elif side * side == len(rows[0]) and side > 1:
            out.append(((1, side, side), rows[0], ""))
        else:
            out.append(((1, 1, len(rows[0])), rows[0], STRIP))
        i = j
    return out


STRIP = "no 2-D grid known: shown as a strip"


def stock_visual_groups(model, inputs, kind="image"):
    """Every image's and video's visual tokens, found from the model's own placeholder ids. Grids come from the
    processor where it says: grid_thw (the groups take each kind's tokens in order, whether a video is one run
    or one run per frame with timestamps between; GLM writes video frames with the image token) or per-view
    patch shapes (view_grids); otherwise from the runs' shapes (grids_of_runs), and a video's equal square runs
    are its frames. Separator tokens carry other ids: they are context, never scored, never pruned."""
    ids = inputs["input_ids"][0].cpu()
    groups = []
    for token_kind, token in visual_token_ids(model).items():
        positions = (ids == token).nonzero().flatten()
        if len(positions) == 0:
            continue
        video = token_kind == "video" or kind == "video"
        candidates = [processor_grids(model, inputs, k) for k in ((token_kind, "video") if video else (token_kind,))]
        grids = next((g for g in candidates if g and sum(t * h * w for t, h, w in g) == len(positions)), None)
        if grids:
            start = 0
            for t, h, w in grids:
                groups.append(VisualGroup("video" if video else "image", (t, h, w), positions[start:start + t * h * w]))
                start += t * h * w
            continue
        token_runs = runs(positions)
        shapes = view_grids(inputs, token_runs)
        found = ([(g, r, "") for g, r in zip(shapes, token_runs)] if shapes else grids_of_runs(token_runs, ids))
        if video and len(found) > 1 and len({g for g, _, _ in found}) == 1 and found[0][2] != STRIP:
            _, h, w = found[0][0]
            groups.append(VisualGroup("video", (len(found), h, w), torch.cat([r for _, r, _ in found])))
            continue
        # Views of one image (tiles, a thumbnail, a low-res and a high-res view) share one budget: the runs carry
        # no image boundary, so every image's views are taken as one unit (one image per prompt, as the page).
        unit = 0 if len(found) > 1 else None
        groups += [VisualGroup("image", grid, rows, unit=unit, name=name or (f"view {i + 1}" if unit == 0 else ""))
                   for i, (grid, rows, name) in enumerate(found)]
    if not groups:
        raise BadInput("no visual tokens were found in the prompt (no placeholder of the model's image or video "
                       "token ids): this model's processor did not put the image into the decoder's sequence")
    return sorted(groups, key=lambda g: int(g.positions[0]))


def stock_build_inputs(processor, images, question, kind="image", prompt="chat", timing=None, history=()):
    """The processor's tensors for the conversation through the checkpoint's own chat template: the images (or
    one video of the frames) in the first user turn. There is no official evaluation prompt on the generic path."""
    if prompt == "official":
        raise BadInput("the official evaluation prompt is known only for the LLaVA, Qwen and InternVL families; "
                       "use the chat prompt (the checkpoint's own chat template) for this model")
    text = chat_text(processor, kind, images, question, history)
    if kind == "video":
        return processor(videos=[list(same_size(images))], text=text, return_tensors="pt")
    return processor(images=list(images), text=text, return_tensors="pt")


def stock_injections(model, captured, groups):
    """DeepStack's features, wherever a wrapper passes them to its decoder as deepstack_visual_embeds (one tensor
    per decoder layer from the first) and visual_pos_masks (the visual positions, in sequence order)."""
    features, mask = captured.get("deepstack_visual_embeds"), captured.get("visual_pos_masks")
    if features is None or mask is None:
        return []
    positions = mask[0].nonzero().flatten().cpu()
    return [Injection(after_layer=i, positions=positions, features=f) for i, f in enumerate(features)]


def stock_model_view(processor, images, kind="image"):
    """The images as given: the token grid is drawn over the whole picture (the processor's resize keeps it)."""
    return [im.convert("RGB") for im in images]


def identity_positions(position_ids):
    return position_ids


def nothing(model):
    return None


def conversation(visual_items, question, history=()):
    """Chat-template messages of a conversation: the first user turn holds the visual items ({"type": "image"}
    or {"type": "video"} entries) and its question, then every earlier answer as an assistant turn and every
    later question as a user turn; the last user turn is `question`."""
    turns = [*history, (question, None)]
    messages = []
    for i, (asked, answered) in enumerate(turns):
        content = (list(visual_items) if i == 0 else []) + [{"type": "text", "text": asked}]
        messages.append({"role": "user", "content": content})
        if answered is not None:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": answered}]})
    return messages


def chat_text(processor, kind, images, question, history=()):
    """The prompt through the checkpoint's own chat template: one video item, or one image item per image,
    then the conversation. BadInput when the processor has no template (the official prompt still works)."""
    if not processor.chat_template:
        raise BadInput("this checkpoint's processor has no chat template: use the official prompt")
    items = [{"type": "video"}] if kind == "video" else [{"type": "image"} for _ in images]
    return processor.apply_chat_template(conversation(items, question, history), add_generation_prompt=True)



def same_size(frames):
    """Video frames for a video processor, which stacks them: every frame at the first one's size."""
    size = frames[0].size
    return [f if f.size == size else f.resize(size, Image.Resampling.BICUBIC) for f in frames]


def pixels_to_rgb(pixels, processor):
    """[n, C, H, W] pixels a processor made -> [n, H, W, 3] uint8 RGB on the CPU: its normalisation and its
    rescale undone, each only where the processor applies it (its do_normalize, do_rescale)."""
    mean = torch.tensor(processor.image_mean, device="cpu").view(1, -1, 1, 1) if processor.do_normalize else 0.0
    std = torch.tensor(processor.image_std, device="cpu").view(1, -1, 1, 1) if processor.do_normalize else 1.0
    scale = processor.rescale_factor if processor.do_rescale else 1.0
    return ((pixels.float().cpu() * std + mean) / scale).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def check_aspect(images, max_aspect, processor_name):
    """BadInput for an image more elongated than the family's processor accepts (Qwen's smart_resize: 200)."""
    for im in images:
        if max(im.size) / min(im.size) > max_aspect:
            raise BadInput(f"an image of {im.width} x {im.height} pixels is too elongated for {processor_name}'s "
                           f"processor (aspect ratio above {max_aspect}); crop it first")


# Every name of the family contract with its default: models/__init__.py gives a family file whatever it leaves
# out. (Data first, then the functions, as in Family.)
SHARED = {
    "HUB_IDS": (),
    "DEFAULTS": STOCK_DEFAULTS,
    "PAPER_SCHEDULE": STOCK_PAPER_SCHEDULE,
    "INJECTED_ARGUMENTS": STOCK_INJECTED,
    "build_inputs": stock_build_inputs,
    "visual_groups": stock_visual_groups,
    "text_model": stock_text_model,
    "layer_parts": stock_layer_parts,
    "final_norm": stock_final_norm,
    "attention_layers": stock_attention_layers,
    "decoder_positions": identity_positions,
    "vision_attention": nothing,
    "feature_projector": nothing,
    "injections": stock_injections,
    "model_view": stock_model_view,
}
