"""What every model family shares, and the contract a family file fulfils.

A family is one module in models/ (llava.py, qwen2_vl.py, ...) listed in models.FAMILIES. The explorer's
engine calls only what `Family` below names and knows no family; tests/test_contract.py checks every module in
FAMILIES against it (the names, their signatures, and on a tiny model of each family what they return).

Nothing here imports explorer/: models/ is a leaf package.
"""

import sys
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
        """What a score reads of decoder layer `index` (LayerParts)."""

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


# ------------------------------------------------------------------------ shared by the stock families


def stock_text_model(model):
    """The decoder of a transformers multimodal wrapper (model.model.language_model)."""
    return model.model.language_model


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


def no_injections(model, captured, groups):
    """Families whose text model adds nothing to the hidden states between its layers."""
    return []


def stock_layer_parts(model, index):
    """LayerParts of a stock transformers decoder layer (input_layernorm, self_attn.q_proj / k_proj / head_dim /
    scaling, optional q_norm / k_norm) with its attention module's own apply_rotary_pos_emb."""
    layer = stock_text_model(model).layers[index]
    attn = layer.self_attn
    rotate = sys.modules[type(attn).__module__].apply_rotary_pos_emb
    return LayerParts(layer.input_layernorm, attn.q_proj, attn.k_proj, attn.head_dim, attn.scaling, rotate,
                      getattr(attn, "q_norm", None), getattr(attn, "k_norm", None))


def same_size(frames):
    """Video frames for a video processor, which stacks them: every frame at the first one's size."""
    size = frames[0].size
    return [f if f.size == size else f.resize(size, Image.Resampling.BICUBIC) for f in frames]


def check_aspect(images, max_aspect, processor_name):
    """BadInput for an image more elongated than the family's processor accepts (Qwen's smart_resize: 200)."""
    for im in images:
        if max(im.size) / min(im.size) > max_aspect:
            raise BadInput(f"an image of {im.width} x {im.height} pixels is too elongated for {processor_name}'s "
                           f"processor (aspect ratio above {max_aspect}); crop it first")
