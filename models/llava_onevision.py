"""LLaVA-OneVision family (LlavaOnevisionForConditionalGeneration): llava-hf/llava-onevision-qwen2-0.5b-ov-hf,
llava-hf/llava-onevision-qwen2-7b-ov-hf.

Where the visual tokens are (transformers 5.23, models/llava_onevision/):
- A SigLIP tower without a CLS token (strategy "full"): a tile of image_size px is side x side patches,
  side = image_size // patch_size (27 x 27 = 729 for 384 / 14).
- One image alone in the prompt is one run of `config.image_token_id` tokens (modeling_llava_onevision.py,
  `pack_image_features`): first the base image (the whole image resized to one tile: side x side, no newline),
  then the anyres tiles stitched into one grid of (rows x side, columns x side) patches (the tile layout from
  `get_anyres_image_grid_shape` of `image_sizes` and `config.image_grid_pinpoints`), unpadded to the image's
  aspect ratio (`unpad_image`), and where that grid is larger than `vision_aspect_ratio` "anyres_max_N" allows
  (ratio = sqrt(H W / (N side^2)) > 1.1) bilinearly downscaled to (int(H // ratio), int(W // ratio)): the tile
  group's grid is that downscaled (H, W), where the features really are. The learned `image_newline` follows
  every row of it: H x (W + 1) tokens. The newline rows carry the image token id too; they are context, never
  in a group. The processor counts the same (processing_llava_onevision.py, `_get_number_of_features`,
  `_get_unpadded_features`); the layout here is computed with the model's own functions and checked against
  the prompt's token count.
- The two grids of one image are two groups sharing `unit` = the image's index, named "base" and "tiles": one
  budget per image split over them by size (Settings.budget_per "image"), or one each ("grid").
- Several images in one prompt take the processor's multi-image path, as the official evaluation does
  (lmms-eval's llava_onevision sets image_aspect_ratio "pad" when a document has several images): each image is
  padded to a square and resized to one tile, side x side tokens and one newline after them.
- A video (`get_video_features`, `apply_pooling`): every frame's side x side features are bilinearly pooled to
  ceil(side / 2) squared (14 x 14 = 196), frames one after the other, then ONE newline token at the end of the
  clip (context), all with `config.video_token_id`: one group of grid (frames, 14, 14).

No CLS token, so VisionZip's score has nothing to read (vision_attention is None and the engine refuses it with a
sentence). No published CLSE run on this model: DEFAULTS are CLSE's one-stage settings (images L = 0, K = 1;
video L = 2, K = 3) with the early KV cache kept, as the official code for the other Qwen2 decoder (Qwen2-VL)
keeps it; PAPER_SCHEDULE is the paper's Qwen2-VL schedule (ratios of N: the token count varies per image).
"""

import math

import torch
from PIL import Image
from transformers.models.llava_onevision.modeling_llava_onevision import get_anyres_image_grid_shape, unpad_image

from models.base import VisualGroup, chat_text, pixels_to_rgb, same_size

NAME = "LLaVA-OneVision"
MODEL_CLASSES = ("LlavaOnevisionForConditionalGeneration",)
HUB_IDS = ("llava-hf/llava-onevision-qwen2-0.5b-ov-hf", "llava-hf/llava-onevision-qwen2-7b-ov-hf")
# The paper's Qwen2-VL schedule (28 layers, as OneVision-7B's Qwen2; the 24-layer 0.5B gets the generic stages)
# and CLSE's one-stage settings for Qwen2-VL: the shared defaults (models/base.py).
# LLaVA-OneVision's official evaluation prompt (conv_templates["qwen_1_5"], ChatML with a system turn; images
# joined by spaces, then a newline and the question); the llava-hf chat template has no system turn.
QWEN_1_5_SYSTEM = "<|im_start|>system\nYou are a helpful assistant."


def qwen_1_5(visual, question, history=()):
    """The qwen_1_5 conversation: system, then "<|im_start|>user\\n...<|im_end|>\\n" and the assistant's turns."""
    turns = [*history, (question, None)]
    text = QWEN_1_5_SYSTEM + "<|im_end|>\n"
    for i, (asked, answered) in enumerate(turns):
        asked = f"{visual}\n{asked}" if i == 0 else asked
        text += f"<|im_start|>user\n{asked}<|im_end|>\n<|im_start|>assistant\n"
        if answered is not None:
            text += f"{answered}<|im_end|>\n"
    return text


def build_inputs(processor, images, question, kind="image", prompt="chat", timing=None, history=()):
    """Real processor call: a conversation whose first user turn holds the images (kind "image": one image takes
    the anyres path, several the multi-image path) or the frames as one video (kind "video"), then the question;
    prompt "chat" uses the checkpoint's chat template, "official" the qwen_1_5 conversation of the official
    evaluation. The processor writes no frame times, so timing is not used."""
    images = [im.convert("RGB") for im in images]
    if kind not in ("image", "video"):
        raise ValueError(f"kind must be 'image' or 'video', got {kind!r}")
    if prompt == "official":
        visual = processor.video_token if kind == "video" else " ".join([processor.image_token] * len(images))
        text = qwen_1_5(visual, question, history)
    else:
        text = chat_text(processor, kind, images, question, history)
    if kind == "video":
        return processor(text=text, videos=[same_size(images)], return_tensors="pt")
    # nested: the images of one prompt (the processor's batch_num_images; several -> its multi-image path)
    return processor(text=text, images=[images], return_tensors="pt")


def vision_attention(model):
    """SigLIP has no [CLS] token: nothing for VisionZip's score to read."""
    return None


def tile_side(model):
    vision = model.config.vision_config
    return vision.image_size // vision.patch_size


def tile_layout(image_size, pinpoints, tile, patch, aspect_ratio):
    """For one image of (height, width) pixels on the anyres path, tiles of `tile` px and patches of `patch` px:
    (tile rows, tile columns), the unpadded grid (H, W) in patches, and the grid the features end on (downscaled
    when beyond anyres_max_N, else the same), by the model's own arithmetic (pack_image_features)."""
    side = tile // patch
    rows, columns = get_anyres_image_grid_shape(list(image_size), pinpoints, tile)
    stitched = torch.empty((0, rows * side, columns * side), device="cpu")  # shapes only
    height, width = unpad_image(stitched, list(image_size)).shape[1:]
    max_num_patches = int(aspect_ratio.strip("anyres_max_"))  # the model's own expression ("anyres_max_9" -> 9)
    ratio = math.sqrt(height * width / (max_num_patches * side**2))
    final = (int(height // ratio), int(width // ratio)) if ratio > 1.1 else (height, width)
    return (rows, columns), (height, width), final


def model_layout(model, image_size):
    """tile_layout with the model's config (what its forward uses)."""
    config = model.config
    return tile_layout(image_size, config.image_grid_pinpoints, config.vision_config.image_size,
                       config.vision_config.patch_size, config.vision_aspect_ratio)


def _patched(inputs):
    """Per image, whether it took the anyres path (alone in its prompt), as get_image_features decides."""
    sizes, counts = inputs["image_sizes"], inputs.get("batch_num_images")
    if counts is None:
        return [True] * len(sizes)
    return [int(n) == 1 for n in counts.tolist() for _ in range(int(n))]


def visual_groups(model, inputs, kind="image"):
    """Per image a "base" group (side x side) and, on the anyres path, a "tiles" group (the unpadded, possibly
    downscaled grid, newline rows left out), both with unit = the image's index; per video one group (frames,
    pooled, pooled), its final newline left out. In prompt order, from the model's token ids, image_sizes and
    config, never from offsets. `kind` is not needed: the inputs say what they hold."""
    config, side = model.config, tile_side(model)
    if config.vision_feature_select_strategy != "full":
        raise ValueError("LLaVA-OneVision's SigLIP tower has no CLS token: vision_feature_select_strategy must be "
                         f"'full', got {config.vision_feature_select_strategy!r}")
    ids = inputs["input_ids"][0]
    groups = []
    if inputs.get("pixel_values") is not None:
        positions = (ids == config.image_token_id).nonzero().flatten()
        start = 0
        for index, (size, patched) in enumerate(zip(inputs["image_sizes"].tolist(), _patched(inputs))):
            base = positions[start:start + side * side]
            start += side * side
            if not patched:
                groups.append(VisualGroup("image", (1, side, side), base, unit=index))
                start += 1  # the newline after the base grid
                continue
            groups.append(VisualGroup("image", (1, side, side), base, unit=index, name="base"))
            _, _, (height, width) = model_layout(model, size)
            rows = [positions[start + r * (width + 1):start + r * (width + 1) + width] for r in range(height)]
            start += height * (width + 1)
            groups.append(VisualGroup("image", (1, height, width), torch.cat(rows), unit=index, name="tiles"))
        if start != len(positions):
            raise ValueError(f"{len(positions)} image tokens in the prompt, but the images' layouts need {start}")
    if inputs.get("pixel_values_videos") is not None:
        count, frames = inputs["pixel_values_videos"].shape[:2]
        pooled = math.ceil(side / 2)  # apply_pooling
        per_video = frames * pooled * pooled + 1  # and one newline at the end of the clip
        positions = (ids == config.video_token_id).nonzero().flatten()
        if len(positions) != count * per_video:
            raise ValueError(f"{len(positions)} video tokens in the prompt, but {count} x {per_video} were expected")
        for v in range(count):
            groups.append(VisualGroup("video", (frames, pooled, pooled),
                                      positions[v * per_video:(v + 1) * per_video - 1]))
    if not groups:
        raise ValueError("the inputs hold no image or video")
    return sorted(groups, key=lambda g: int(g.positions[0]))


def _to_rgb(pixels, sub):
    """One [C, H, W] view -> a PIL image."""
    return Image.fromarray(pixels_to_rgb(pixels[None], sub)[0])


def model_view(processor, images, kind="image"):
    """What the tower saw under each group, in group order, as RGB PIL images: per image the base tile (the whole
    image resized to one tile) and, on the anyres path, the tile canvas under the tile grid: the tiles stitched,
    cropped as the features are unpadded, and where the grid was downscaled the canvas resized to it; a video,
    one image per frame. Each tile is cut to the pixels its patches cover (27 x 14 = 378 of 384 px: SigLIP's
    stride-14 convolution drops the rest), so the token grid lies exactly over every view."""
    images = [im.convert("RGB") for im in images]
    patch = processor.image_processor.size["height"] // math.isqrt(processor.num_image_tokens)
    if kind == "video":
        sub = processor.video_processor
        pixels = sub(videos=[same_size(images)], return_tensors="pt")["pixel_values_videos"][0]
        seen = pixels.shape[-1] // patch * patch
        return [_to_rgb(frame[:, :seen, :seen], sub) for frame in pixels]
    sub = processor.image_processor
    out = sub(images=[images], return_tensors="pt")
    tile = out["pixel_values"].shape[-1]
    side = tile // patch
    seen = side * patch
    views = []
    for pixels, size, patched in zip(out["pixel_values"], out["image_sizes"].tolist(), _patched(out)):
        views.append(_to_rgb(pixels[0, :, :seen, :seen], sub))
        if not patched:
            continue
        (rows, columns), (height, width), (final_h, final_w) = tile_layout(
            size, sub.image_grid_pinpoints, tile, patch, processor.vision_aspect_ratio)
        tiles = pixels[1:1 + rows * columns, :, :seen, :seen].reshape(rows, columns, 3, seen, seen)
        canvas = tiles.permute(2, 0, 3, 1, 4).reshape(3, rows * seen, columns * seen)
        top = (rows * side - height) // 2 * patch  # unpad_image cuts whole patches, evenly on both sides
        left = (columns * side - width) // 2 * patch
        view = _to_rgb(canvas[:, top:top + height * patch, left:left + width * patch], sub)
        if (final_h, final_w) != (height, width):
            view = view.resize((final_w * patch, final_h * patch), Image.Resampling.BILINEAR)
        views.append(view)
    return views
