"""Gemma 4 (Gemma4ForConditionalGeneration): the shared defaults but for the grid. An image is one run of
`config.image_token_id` tokens whose count follows its aspect ratio, between <|image> and <image|>; the processor
gives each patch's (x, y) in image_position_ids ([images, max_patches, 2], -1 for padding) and the vision pooler
averages k x k patches (vision_config.pooling_kernel_size) into one token, row-major: (max y + 1) / k rows of
(max x + 1) / k tokens. A video is one run of `config.video_token_id` tokens per frame, each after its "mm:ss"
timestamp (video_position_ids, one row per frame). Gemma 4's E-models share key/value caches across layers
(num_kv_shared_layers): models/__init__.py refuses them with the reason."""

import torch

from models.base import VisualGroup, runs, visual_token_ids

NAME = "Gemma 4"
MODEL_CLASSES = ("Gemma4ForConditionalGeneration",)


def pooled_grid(patch_positions, kernel):
    """(rows, cols) of tokens from one image's or frame's patch (x, y) positions (padding at -1)."""
    return (int(patch_positions[..., 1].max()) + 1) // kernel, (int(patch_positions[..., 0].max()) + 1) // kernel


def visual_groups(model, inputs, kind="image"):
    """One group per image ((1, rows, cols)) and one per video ((frames, rows, cols)), in sequence order."""
    ids, kernel, groups = inputs["input_ids"][0].cpu(), model.config.vision_config.pooling_kernel_size, []
    tokens = visual_token_ids(model)
    if "image" in tokens and "image_position_ids" in inputs:
        positions, start = (ids == tokens["image"]).nonzero().flatten(), 0
        for patches in inputs["image_position_ids"]:
            rows, cols = pooled_grid(patches, kernel)
            groups.append(VisualGroup("image", (1, rows, cols), positions[start:start + rows * cols]))
            start += rows * cols
    if "video" in tokens and "video_position_ids" in inputs:
        frames = runs((ids == tokens["video"]).nonzero().flatten())
        rows, cols = pooled_grid(inputs["video_position_ids"][0], kernel)
        groups.append(VisualGroup("video", (len(frames), rows, cols), torch.cat(frames)))
    return sorted(groups, key=lambda g: int(g.positions[0]))
