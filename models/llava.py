"""LLaVA family (LlavaForConditionalGeneration): llava-hf/llava-1.5-7b-hf, llava-hf/llava-interleave-qwen-0.5b-hf,
the project's embedded shapes-llava model and the like.

Where the visual tokens are: every image becomes a contiguous run of `config.image_token_id` placeholders that
the wrapper overwrites with projected vision features. Each run holds `extra` non-grid tokens (CLIP's CLS
when vision_feature_select_strategy == "full") followed by the (image_size / patch_size)^2 patch tokens in
raster order. Several images are several runs; video frames are passed as several images and form one
(t, h, w) group.
"""

import torch
from PIL import Image

from explorer.record import VisualGroup

MODEL_CLASSES = ("LlavaForConditionalGeneration",)
HUB_IDS = ("llava-hf/llava-1.5-7b-hf", "llava-hf/llava-interleave-qwen-0.5b-hf")


def build_inputs(processor, images, question, kind="image"):
    """Real processor call: one user turn with every image (or frame) first, then the question."""
    content = [{"type": "image"} for _ in images] + [{"type": "text", "text": question}]
    prompt = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
    return processor(images=list(images), text=prompt, return_tensors="pt")


def grid_side(model):
    vision = model.config.vision_config
    return vision.image_size // vision.patch_size


def visual_groups(model, inputs, kind="image"):
    """Visual groups found from the image token id and the vision config, never from fixed offsets."""
    side = grid_side(model)
    per_image = side * side
    positions = (inputs["input_ids"][0] == model.config.image_token_id).nonzero().flatten()
    n_images = inputs["pixel_values"].shape[0]
    if len(positions) % n_images:
        raise ValueError(f"{len(positions)} image tokens do not split over {n_images} images")
    run = len(positions) // n_images
    extra = run - per_image  # CLS (strategy "full") and the like: kept as non-visual context
    if extra < 0:
        raise ValueError(f"{run} image tokens per image, fewer than the {side} x {side} patch grid")
    runs = [positions[i * run + extra:(i + 1) * run] for i in range(n_images)]
    if kind == "video":
        return [VisualGroup("video", (n_images, side, side), torch.cat(runs))]
    return [VisualGroup("image", (1, side, side), r) for r in runs]


def model_view(processor, images, kind="image"):  # frames are images for LLaVA
    """The images as the vision tower sees them (resized, cropped), un-normalised to RGB, one per image or
    frame: the token grid lies exactly over these."""
    image_processor = processor.image_processor
    pixels = image_processor(images=list(images), return_tensors="pt")["pixel_values"]
    mean = torch.tensor(image_processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(image_processor.image_std).view(1, 3, 1, 1)
    rgb = ((pixels * std + mean).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(frame) for frame in rgb]
