"""LLaVA-NeXT family (LlavaNextForConditionalGeneration): llava-hf/llava-v1.6-mistral-7b-hf,
llava-hf/llava-v1.6-vicuna-7b-hf.

Where the visual tokens are (transformers 5.23, modeling_llava_next.py `pack_image_features`, processing_llava_next.py
`_get_number_of_features`). Every image becomes ONE contiguous run of `config.image_token_id` placeholders:
- first the base image (the whole image squashed to one tile, e.g. 336 x 336): side x side patch tokens, side =
  image_size / patch_size (24 x 24 = 576 for CLIP-336), raster order, no newline;
- then the anyres tiles: the image resized into the best of `image_grid_pinpoints` (select_best_resolution,
  via `get_anyres_image_grid_shape`), padded, cut into rows x cols tiles; their patches are stitched into one
  (rows * side, cols * side) grid (`view(rows, cols, side, side)` then `permute` to (rows, side, cols, side)),
  `unpad_image` cuts the padding rows or columns back off to the image's aspect ratio, and the learned
  `image_newline` vector is appended after every row: H x (W + 1) tokens, raster order with the newline last.
So a run holds side^2 + H (W + 1) tokens. The newline tokens carry the same token id as the patches; they are
never in a VisualGroup, so the engine keeps them as context (never pruned, never counted as visual).

The layout is computed with the model's own functions (`get_anyres_image_grid_shape`, `unpad_image`, imported
from transformers) from the processor's `image_sizes` and the config's pinpoints, and checked against the
token run (ValueError when they disagree, e.g. a "full" feature strategy, whose CLS the anyres packing does not
support). Per image two groups share one `unit` (the image's index): "base" (1, side, side) and "tiles" (1, H, W),
so one budget covers both (Settings.budget_per "image", split in proportion to their sizes) or each grid has
its own ("grid"). The papers' "2880 tokens" for a square image on 2 x 2 tiles is 576 + 2304: these two grids;
the 48 newlines are context.

Video: the frames are images (the processor has no video path), each frame resized to the first frame's size
so every frame has the same tile layout; the base grids of all frames form one (t, side, side) group and the
tile grids one (t, H, W) group, sharing one unit (one budget over the clip).
"""

from dataclasses import dataclass

import torch
from PIL import Image
from transformers.models.llava_next.modeling_llava_next import get_anyres_image_grid_shape, unpad_image

from models.llava import PAPER_SCHEDULE as LLAVA_SCHEDULE, STAGES
from models.base import VisualGroup, conversation, pixels_to_rgb, same_size

NAME = "LLaVA-NeXT"
MODEL_CLASSES = ("LlavaNextForConditionalGeneration",)
HUB_IDS = ("llava-hf/llava-v1.6-mistral-7b-hf", "llava-hf/llava-v1.6-vicuna-7b-hf")
# One stage as the official CLSE code sets it for LLaVA (images: L = 0, K = 1 and the early layers' cache
# trimmed; video: L = 2, K = 3, the cache kept), as models/llava.py.
DEFAULTS = {"image": {"ref_layer": 0, "prune_layer": 1, "early_kv": "prune"},
            "video": {"ref_layer": 2, "prune_layer": 3, "early_kv": "keep"}}
# LLaVA-1.5's staged schedule (32-layer decoders: stages at 1, 11, 21), round(factor * r) kept. LLaVA-1.5's keep
# table is left out: it is for a 576-token image, and here a base grid alone has 576 tokens (budget_per "grid"),
# where the table would apply a LLaVA-1.5 count to a LLaVA-NeXT grid.
PAPER_SCHEDULE = {**STAGES, "factors": LLAVA_SCHEDULE["factors"]}


@dataclass(frozen=True)
class Layout:
    """One image's run: the base grid (side x side), the tiles (rows x cols tiles of side x side patches,
    stitched), and the unpadded tile grid: `height` x `width` cells starting at stitched cell (top, left)."""

    side: int
    rows: int
    cols: int
    top: int
    left: int
    height: int
    width: int

    @property
    def count(self):
        """Tokens of the run: the base grid, then every tile row and its newline."""
        return self.side * self.side + self.height * (self.width + 1)


def layout(image_size, pinpoints, tile_pixels, patch_size):
    """The layout of one image of image_size (height, width), as pack_image_features packs it: the tile grid
    from get_anyres_image_grid_shape, the stitched grid's cells cut by unpad_image (run on the cells' indices,
    so the crop is the model's own)."""
    size = [int(v) for v in image_size]
    rows, cols = get_anyres_image_grid_shape(size, pinpoints, tile_pixels)
    side = tile_pixels // patch_size
    cells = torch.arange(rows * side * cols * side, device="cpu").view(1, rows * side, cols * side)
    kept = unpad_image(cells, size)[0]
    top, left = divmod(int(kept[0, 0]), cols * side)
    return Layout(side, rows, cols, top, left, kept.shape[0], kept.shape[1])


def build_inputs(processor, images, question, kind="image", prompt="chat", timing=None, history=()):
    """Real processor call with the checkpoint's chat template: a conversation whose first user turn holds every
    image (or every frame, as images), then the question. The llava-hf templates of the v1.6 checkpoints write
    the official conversations' turns ("[INST] <image>\\n... [/INST]" for Mistral), so prompt "official" is
    "chat" here (the vicuna checkpoint's official system prompt is not added). Frames are images: timing is not
    used."""
    if kind not in ("image", "video"):
        raise ValueError(f"kind must be 'image' or 'video', got {kind!r}")
    images = [im.convert("RGB") for im in images]
    if kind == "video":
        images = same_size(images)
    messages = conversation([{"type": "image"} for _ in images], question, history)
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    return processor(images=images, text=text, return_tensors="pt")


def vision_attention(model):
    """None: no CLS attention that lies on the decoder's grids, so the engine refuses VisionZip with a sentence.
    The engine lays the [CLS] row of every crop the tower saw over a group's tokens in order (one crop per image
    or frame); here the tower sees 1 + rows x cols crops per image, and the tile group is those crops stitched
    into one raster and unpadded (rows or columns cut), so crop rows are not the group's tokens. A check by
    count cannot catch it: on a 1 x 2 layout the unpadded tile grid can hold exactly one crop's 576 patches.
    (VisionZip's own LLaVA-NeXT code selects per crop before the stitching: another layout.)"""
    return None


def image_runs(model, inputs):
    """[(base positions, tile positions, Layout)] per image, in prompt order, from the image token run and the
    processor's image_sizes; the newline positions (the last token of every tile row) are in neither. ValueError
    when the run does not hold exactly the layouts' tokens, image after image, each contiguous."""
    config = model.config
    vision = config.vision_config
    layouts = [layout(size, config.image_grid_pinpoints, vision.image_size, vision.patch_size)
               for size in inputs["image_sizes"].tolist()]
    run = (inputs["input_ids"][0].cpu() == config.image_token_id).nonzero().flatten()
    needed = sum(lay.count for lay in layouts)
    if needed != len(run):
        raise ValueError(f"{len(run)} image tokens in the prompt, but the anyres layouts of the {len(layouts)} "
                         f"image(s) need {needed} (base + tile rows + one newline per row)")
    out, start = [], 0
    for lay in layouts:
        positions = run[start:start + lay.count]
        start += lay.count
        if int(positions[-1] - positions[0]) != lay.count - 1:
            raise ValueError("the tokens of an image are not contiguous in the prompt")
        base = positions[:lay.side * lay.side]
        rows = positions[lay.side * lay.side:].view(lay.height, lay.width + 1)
        out.append((base, rows[:, :-1].flatten(), lay))  # the last column, the newlines, left out
    return out


def image_groups(model, inputs):
    """Two groups per image, sharing its index as unit: "base" (1, side, side) and "tiles" (1, H, W)."""
    groups = []
    for i, (base, tiles, lay) in enumerate(image_runs(model, inputs)):
        groups += [VisualGroup("image", (1, lay.side, lay.side), base, unit=i, name="base"),
                   VisualGroup("image", (1, lay.height, lay.width), tiles, unit=i, name="tiles")]
    return groups


def frame_groups(model, inputs):
    """Frames given as images: their base grids as one (t, side, side) group, their tile grids as one (t, H, W)
    group, one unit (one budget over the clip). ValueError if the frames' tile layouts differ."""
    runs = image_runs(model, inputs)
    layouts = {lay for _, _, lay in runs}
    if len(layouts) != 1:
        raise ValueError("the frames of a video must share one tile layout (frames of one size)")
    lay, t = layouts.pop(), len(runs)
    return [VisualGroup("video", (t, lay.side, lay.side), torch.cat([b for b, _, _ in runs]), unit=0, name="base"),
            VisualGroup("video", (t, lay.height, lay.width), torch.cat([s for _, s, _ in runs]), unit=0,
                        name="tiles")]


def visual_groups(model, inputs, kind="image"):
    """Base and tile groups per image (kind "image"), or per clip (kind "video": frames as images)."""
    return frame_groups(model, inputs) if kind == "video" else image_groups(model, inputs)


def image_views(processor, images):
    """[(base view, tile canvas)] per image: the base crop the tower saw, and the tiles it saw stitched in their
    rows x cols order and cut to the unpadded grid, so the token grid (1 token per patch_size px) lies exactly
    over each."""
    image_processor = processor.image_processor
    out = image_processor(images=images, return_tensors="pt")
    tile, patch = out["pixel_values"].shape[-1], processor.patch_size
    views = []
    for pixels, size in zip(out["pixel_values"], out["image_sizes"].tolist()):
        lay = layout(size, image_processor.image_grid_pinpoints, tile, patch)
        rgb = pixels_to_rgb(pixels[:1 + lay.rows * lay.cols], image_processor)
        canvas = rgb[1:].reshape(lay.rows, lay.cols, tile, tile, 3).transpose(0, 2, 1, 3, 4).reshape(
            lay.rows * tile, lay.cols * tile, 3)
        canvas = canvas[lay.top * patch:(lay.top + lay.height) * patch, lay.left * patch:(lay.left + lay.width) * patch]
        views.append((Image.fromarray(rgb[0]), Image.fromarray(canvas.copy())))
    return views


def model_view(processor, images, kind="image"):
    """One PIL image per group and frame, in group order: per image its base view then its tile canvas; for a
    video every frame's base view, then every frame's tile canvas."""
    images = [im.convert("RGB") for im in images]
    if kind == "video":
        views = image_views(processor, same_size(images))
        return [base for base, _ in views] + [canvas for _, canvas in views]
    return [view for pair in image_views(processor, images) for view in pair]
