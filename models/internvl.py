"""InternVL3 / InternVL2.5 family, HF-native checkpoints (InternVLForConditionalGeneration):
OpenGVLab/InternVL3-1B-hf, OpenGVLab/InternVL3-2B-hf, OpenGVLab/InternVL3-8B-hf. Read from transformers 5.23
(models/internvl/, models/got_ocr2/).

Where the visual tokens are. The image processor (GotOcr2ImageProcessor, `crop_image_to_patches`) picks a tile
layout of `cols` x `rows` tiles with the aspect ratio closest to the image's (`get_optimal_tiled_canvas` over
every layout of min_patches .. max_patches tiles; on a tie the layout with more tiles while the image's area is
above half of theirs), resizes the image to that canvas and cuts it into 448 px tiles, row-major, then appends
a thumbnail (the whole image resized to one tile) when there is more than one tile. InternVLProcessor turns on
`crop_to_patches` by default. Every tile goes through InternViT on its own (CLS + 32 x 32 patches); the CLS is
dropped (strategy "default") and `pixel_shuffle` (scale 0.5) folds each 2 x 2 block of patches into one token:
a 16 x 16 raster per tile, token n at row n // 16, column n % 16 (the shuffle's view / permute pairs keep
raster order). The prompt holds `<img>` + 256 x n `<IMG_CONTEXT>` + `</img>` as one run per image
(processing_internvl.py, `replace_image_token`), tiles in order, thumbnail last, no separators. The processor
returns neither the layout nor the tile count, so build_inputs recomputes it with the image processor's own
function (its module's get_optimal_tiled_canvas) on the image's size and attaches it to the inputs
(`inputs.tile_layouts`, an attribute: a key would reach the model's forward), and visual_groups checks it
against the run's length.

Grids, a choice: each tile is its own (1, 16, 16) group named "tile r,c" and the thumbnail its own group
"thumbnail", all of one image sharing `unit` = the image's index (one budget per image, split over its grids
by size: equal shares, since every grid has 256 tokens). Why not one stitched (rows*16, cols*16) grid: the
tower never sees across a tile border (each tile is encoded alone, its position embeddings restart), so a
stitched grid's 2-D spectrum (CLSE's score is per grid) would mix the tiles' separate feature statistics at
their borders into its frequencies; per tile, each spectrum is over exactly the raster one encoder pass
produced, like LLaVA-NeXT's per-tile reading of the budget question (VisionZip #17, DART #18). The cost: the
budget cannot move between tiles of one image (each keeps its share by its own scores).

Video: InternVLVideoProcessor resizes every frame to one tile (no cropping, no thumbnail), and the prompt
holds "Frame1: <img>...</img>\nFrame2: ..." (`replace_video_token`), 256 tokens per frame: one video group of
(frames, 16, 16), frame-major; the "Framei:" text, `<img>` and `</img>` are context. Frames are not
re-sampled (do_sample_frames=False) and carry no times (the prompt has none), so timing is not used.

VisionZip, a choice: None. InternViT has a CLS token, but its attention ranks the tower's 32 x 32 patches while
the decoder sees 16 x 16 pixel-shuffled tokens; a faithful port would pool the CLS row over each 2 x 2 block
and merge contextual tokens in the shuffled feature space, which the engine's VisionZip path (one CLS row entry
per decoder token, engine.per_group) does not do: VisionZip is refused with a sentence rather than mapped
loosely. The decoder is Qwen2 (InternVL3) with 1-D RoPE: stock layer parts, plain position ids.
"""

import sys

import torch
from PIL import Image

from models.base import VisualGroup, conversation, pixels_to_rgb, same_size

NAME = "InternVL3"
MODEL_CLASSES = ("InternVLForConditionalGeneration",)
HUB_IDS = ("OpenGVLab/InternVL3-1B-hf", "OpenGVLab/InternVL3-2B-hf", "OpenGVLab/InternVL3-8B-hf")
# The paper has no InternVL schedule: its Qwen2-VL one (shares of N, for dynamic token counts), rescaled to
# the depth, and CLSE's one-stage settings for Qwen2-VL: the shared defaults (models/base.py).


def vision_attention(model):
    """None: InternViT's CLS attention is over the patches before the 2 x 2 pixel shuffle, not over the
    decoder's tokens (see the module docstring)."""
    return None


def tiling(processor):
    """(crop_to_patches, min_patches, max_patches, (tile height, tile width)) as a processor call uses them:
    InternVLProcessor's own images_kwargs default (crop_to_patches=True) over the image processor's attributes."""
    image_processor = processor.image_processor
    defaults = getattr(processor, "images_kwargs", None) or {}
    crop = defaults.get("crop_to_patches", image_processor.crop_to_patches)
    size = image_processor.size
    return (bool(crop), defaults.get("min_patches", image_processor.min_patches),
            defaults.get("max_patches", image_processor.max_patches), (size["height"], size["width"]))


def tile_layout(processor, image):
    """(rows, columns, thumbnail) of one image as GotOcr2ImageProcessor.crop_image_to_patches cuts it, with the
    get_optimal_tiled_canvas of the image processor's own module (the torchvision or the PIL backend)."""
    crop, low, high, tile = tiling(processor)
    if not crop:
        return 1, 1, False
    canvas = sys.modules[type(processor.image_processor).__module__].get_optimal_tiled_canvas
    columns, rows = canvas((image.height, image.width), tile, low, high)
    return rows, columns, rows * columns != 1


def build_inputs(processor, images, question, kind="image", prompt="chat", timing=None, history=()):
    """Real processor call with the chat template: a conversation whose first user turn holds the images (each
    tiled by the processor) or the one video (its frames, one tile each), then the question. The images' tile
    layouts ride on the result as `tile_layouts` (the processor does not return them). InternVL's official
    evaluation uses this chat template, so prompt "official" is "chat"; the prompt has no frame times."""
    images = [im.convert("RGB") for im in images]
    if kind == "video":
        messages = conversation([{"type": "video"}], question, history)
        text = processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = processor(text=text, videos=[same_size(images)], do_sample_frames=False, return_tensors="pt")
        inputs.tile_layouts = None
        return inputs
    if kind != "image":
        raise ValueError(f"kind must be 'image' or 'video', got {kind!r}")
    messages = conversation([{"type": "image"} for _ in images], question, history)
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=text, images=images, return_tensors="pt")
    inputs.tile_layouts = [tile_layout(processor, im) for im in images]
    return inputs


def grid_side(model, inputs):
    """Tokens per side of one tile: the tile's patches per side (pixel_values' size over the patch size) times
    the pixel shuffle's scale (16 for 448 px tiles of 14 px patches at 0.5)."""
    patch = model.config.vision_config.patch_size
    patch = patch[0] if isinstance(patch, (list, tuple)) else patch
    return int(inputs["pixel_values"].shape[-1] // patch * model.config.downsample_ratio)


def _run(positions, start, count, what):
    run = positions[start:start + count]
    if len(run) != count or (count and int(run[-1] - run[0]) != count - 1):
        raise ValueError(f"the <IMG_CONTEXT> tokens of {what} are not one contiguous run in the prompt")
    return run


def visual_groups(model, inputs, kind="image"):
    """Images: per image one (1, s, s) group per tile ("tile r,c", row-major) and one for the thumbnail, all with
    unit = the image's index (a one-tile image: one unnamed group). Video: one (frames, s, s) group. From the
    model's image token id, the tile layouts build_inputs attached and the tiles' pixel size."""
    side = grid_side(model, inputs)
    per_tile = side * side
    positions = (inputs["input_ids"][0] == model.config.image_token_id).nonzero().flatten()
    if kind == "video":
        frames = len(positions) // per_tile
        if frames * per_tile != len(positions) or frames != inputs["pixel_values"].shape[0]:
            raise ValueError(f"{len(positions)} image tokens do not split into {inputs['pixel_values'].shape[0]} "
                             f"frames of {per_tile}")
        runs = [_run(positions, f * per_tile, per_tile, f"frame {f + 1}") for f in range(frames)]
        return [VisualGroup("video", (frames, side, side), torch.cat(runs))]
    layouts = getattr(inputs, "tile_layouts", None)
    if layouts is None:
        raise ValueError("the inputs carry no tile layouts: make them with models.internvl.build_inputs")
    needed = sum(per_tile * (rows * columns + thumbnail) for rows, columns, thumbnail in layouts)
    if needed != len(positions):
        raise ValueError(f"{len(positions)} image tokens in the prompt, but the tile layouts {layouts} need {needed}")
    groups, start = [], 0
    for image, (rows, columns, thumbnail) in enumerate(layouts):
        count = per_tile * (rows * columns + thumbnail)
        _run(positions, start, count, f"image {image + 1}")  # one run per image, between <img> and </img>
        if rows * columns == 1:
            groups.append(VisualGroup("image", (1, side, side), positions[start:start + per_tile], unit=image))
        else:
            names = [f"tile {r},{c}" for r in range(rows) for c in range(columns)] + ["thumbnail"] * thumbnail
            for i, name in enumerate(names):
                groups.append(VisualGroup("image", (1, side, side),
                                          positions[start + i * per_tile:start + (i + 1) * per_tile],
                                          unit=image, name=name))
        start += count
    return groups


def _to_rgb(pixels, sub):
    return [Image.fromarray(tile) for tile in pixels_to_rgb(pixels, sub)]


def model_view(processor, images, kind="image"):
    """What the tower saw, one RGB image per group in group order: every tile as the processor cut it, then the
    thumbnail, per image; for a video one per frame (the resized frame)."""
    images = [im.convert("RGB") for im in images]
    if kind == "video":
        sub = processor.video_processor
        pixels = sub(videos=[same_size(images)], do_sample_frames=False, return_tensors="pt")["pixel_values_videos"]
        return _to_rgb(pixels.flatten(0, 1), sub)
    sub = processor.image_processor
    crop, low, high, _ = tiling(processor)
    pixels = sub(images=images, crop_to_patches=crop, min_patches=low, max_patches=high,
                 return_tensors="pt")["pixel_values"]
    return _to_rgb(pixels, sub)
