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

from models.base import VisualGroup, conversation, pixels_to_rgb

NAME = "LLaVA"
MODEL_CLASSES = ("LlavaForConditionalGeneration",)
HUB_IDS = ("llava-hf/llava-1.5-7b-hf", "llava-hf/llava-interleave-qwen-0.5b-hf")
# One stage as the official CLSE code sets it (images: L = 0, K = 1, its first stage, "after the first
# layer"; video: L = 2, K = 3, Video-LLaVA's single stage) and its KV-cache policy: the official LLaVA image
# code also trims the cache of the layers before K, the video code keeps it. CLSE's official image runs are
# the staged PAPER_SCHEDULE.
DEFAULTS = {"image": {"ref_layer": 0, "prune_layer": 1, "early_kv": "prune"},
            "video": {"ref_layer": 2, "prune_layer": 3, "early_kv": "keep"}}
# The paper's schedule for LLaVA-1.5 (32 layers): stages at 1, 11, 21; its keep table for 576 tokens is used
# literally, looked up by its nominal preset (a third of 576 is "192"); another budget r keeps
# int(factor * r) with the official code's off-table factors 1.71 / 1.08 / 0.294 (not the paper's rounded
# 1.72 / 1.09 / 0.32).
STAGES = {"depth": 32, "layers": (1, 11, 21)}  # the paper's stages on LLaVA-1.5's 32-layer decoder
PAPER_SCHEDULE = {**STAGES, "factors": (1.71, 1.08, 0.294), "tokens": 576,
                  "keep_table": {192: (330, 210, 62), 128: (220, 140, 41), 64: (110, 70, 20)}}
# LLaVA-1.5's official evaluation prompt (the vicuna_v1 conversation, with its system prompt); the llava-hf
# chat template has no system prompt, so the sequence and the last token's attention differ.
VICUNA_V1 = ("A chat between a curious human and an artificial intelligence assistant. The assistant gives "
             "helpful, detailed, and polite answers to the human's questions.")


def vicuna_v1(images, question, history=()):
    """LLaVA's vicuna_v1 conversation: system, then "USER: ... ASSISTANT: answer</s>" per earlier turn (sep " ",
    sep2 "</s>"), the images before the first question."""
    turns = [*history, (question, None)]
    text = VICUNA_V1
    for i, (asked, answered) in enumerate(turns):
        asked = f"{images}\n{asked}" if i == 0 else asked
        text += f" USER: {asked} ASSISTANT:" + (f" {answered}</s>" if answered is not None else "")
    return text


def build_inputs(processor, images, question, kind="image", prompt="chat", timing=None, history=()):
    """Real processor call: a conversation whose first user turn holds every image (or frame), then the
    question; prompt "chat" uses the checkpoint's chat template, "official" LLaVA-1.5's vicuna_v1 evaluation
    prompt. Frames are images here, so timing is not used."""
    if prompt == "official":
        text = vicuna_v1("\n".join([processor.image_token] * len(images)), question, history)
    else:
        messages = conversation([{"type": "image"} for _ in images], question, history)
        text = processor.apply_chat_template(messages, add_generation_prompt=True)
    return processor(images=list(images), text=text, return_tensors="pt")


def feature_layer_index(vision_feature_layer, num_layers):
    """Index (0-based) of the vision encoder layer whose output LLaVA takes as its features: hidden_states[f]
    is the output of layer f - 1 for f >= 1, of layer num_layers + f for f < 0. ValueError for anything else
    (0, the embeddings; several layers; outside the encoder)."""
    if not isinstance(vision_feature_layer, int) or vision_feature_layer == 0:
        raise ValueError(f"one vision feature layer after the embeddings is needed, got {vision_feature_layer!r}")
    index = vision_feature_layer - 1 if vision_feature_layer > 0 else num_layers + vision_feature_layer
    if not 0 <= index < num_layers:
        raise ValueError(f"vision feature layer {vision_feature_layer} is outside a {num_layers}-layer encoder")
    return index


def vision_attention(model):
    """(attention module, CLS index) of the vision layer whose output LLaVA takes as its features, for methods
    that read the tower's [CLS] attention (VisionZip: `attentions[-2]` for LLaVA-1.5's feature layer -2); None
    when the tower has no CLS token (not CLIP) or the features come from several layers."""
    return clip_feature_attention(model.model.vision_tower, model.config.vision_feature_layer)


def clip_feature_attention(tower, vision_feature_layer):
    """(attention module, CLS index 0) of a CLIP tower's feature layer; None for another tower or several layers."""
    encoder = getattr(tower, "encoder", None)
    if encoder is None or type(tower).__name__ != "CLIPVisionModel":
        return None
    try:
        index = feature_layer_index(vision_feature_layer, len(encoder.layers))
    except ValueError:
        return None
    return encoder.layers[index].self_attn, 0


def feature_projector(model):
    """The projector from the vision features (the patches of the feature layer) to the decoder's inputs."""
    return model.model.multi_modal_projector


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
    return [Image.fromarray(frame) for frame in pixels_to_rgb(pixels, image_processor)]
