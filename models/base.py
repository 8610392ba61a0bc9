"""What every model family shares, and the contract a family file fulfils.

A family is one module in models/ (llava.py, qwen2_vl.py, ...) listed in models.FAMILIES. The engine
(explorer/) calls only what this contract names and knows no family. A family module defines:

    MODEL_CLASSES   names of the transformers classes it serves ("LlavaForConditionalGeneration", ...)
    HUB_IDS         hub checkpoints offered on the page
    PAPER_SCHEDULE  {"depth", "layers", "factors"} or with "keep_table": the paper's staged schedule
    DEFAULTS        {"image": {"ref_layer", "prune_layer", "early_kv"}, "video": {...}}: the official code's
                    single-stage settings and KV-cache policy for this family
    build_inputs(processor, images, question, kind, prompt="chat") -> the processor's tensors
    visual_groups(model, inputs, kind) -> [VisualGroup]: where the visual tokens sit, and their grids
    text_model(model) -> the decoder (layers, norm, rotary_emb, embed_tokens)
    rotary(model) -> apply_rotary_pos_emb(q, k, cos, sin) of the decoder's attention
    decoder_positions(position_ids) -> the position ids the decoder's rotary embedding takes
    model_view(processor, images, kind) -> [PIL image]: what the vision tower saw, one per frame
    vision_attention(model) -> (attention module, CLS index) of the vision layer the features come from, or
                    None (no CLS token): what VisionZip's dominant-token score reads

Nothing here imports explorer/: models/ is a leaf package.
"""

from dataclasses import dataclass

import torch


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

    @property
    def count(self):
        return len(self.positions)
