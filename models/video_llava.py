"""Video-LLaVA family (VideoLlavaForConditionalGeneration): LanguageBind/Video-LLaVA-7B-hf, the CLSE paper's own
video model.

Where the visual tokens are (transformers 5.23, models/video_llava/):
- Two CLIP towers of the same shape, `model.model.image_tower` and `model.model.video_tower`, one projector.
- An image is one contiguous run of `config.image_token_id` tokens: (image_size / patch_size)^2 patches in raster
  order (16 x 16 = 256 for CLIP-224/14), the CLS dropped (`get_image_features`, strategy "default"; with "full"
  the run starts with the CLS, which is then context, never in a group).
- A video is one contiguous run of `config.video_token_id` tokens: every frame gives CLS + 256 = 257 tokens
  (`get_video_features` keeps the CLS whatever the strategy; processing_video_llava.py `replace_video_token`
  counts patches + num_additional_image_tokens per frame). The per-frame CLS is context: never in a
  VisualGroup, so never pruned or counted; the video is one group of grid (frames, 16, 16), frame-major.
  Video-LLaVA samples 8 frames, but the processor takes any count (do_sample_frames is off; the token count is
  read from the frames given), so every given frame is used.

Pruning settings (method.md): the official CLSE Video-LLaVA code prunes once, L = 2, K = 3, and keeps the KV
cache of the layers before K (DEFAULTS["video"]); its README runs it keeping 194 of the 8 x 256 = 2048 video
tokens (VIDEO_PAPER_BUDGET). Ask for the paper's video setting with kind "video", keep=194, K = 3, L = 2 (command
line: --video-file CLIP --frames 8 --keep 194 --prune-layer 3 --ref-layer 2); the official schedule of clse is
that one stage at one real cost: --keep is then the average per layer (194 kept after K = 3 averages 367.8).
Images have no official CLSE Video-LLaVA run: they get LLaVA's settings (L = 0, K = 1, early cache trimmed) and
LLaVA-1.5's staged schedule (the same 32-layer Vicuna decoder).

VisionZip reads the image tower's CLS attention (its patches are the decoder's grid); the engine hooks one
vision module per model, so a video (through the other tower) has no CLS score and VisionZip refuses it.
"""

import torch
from PIL import Image

from models.base import VisualGroup, chat_text, pixels_to_rgb, same_size
from models.llava import STAGES, clip_feature_attention, vicuna_v1

NAME = "Video-LLaVA"
MODEL_CLASSES = ("VideoLlavaForConditionalGeneration",)
HUB_IDS = ("LanguageBind/Video-LLaVA-7B-hf",)
# One stage as the official CLSE code sets it: video L = 2, K = 3 with the early KV cache kept
# (zjubinchen/CLSE, branch video, videollava/model/language_model/clse_model.py: L_list = [2], K_list = [3], the
# cache of layers 0..2 is never sliced); images as LLaVA's official image code (L = 0, K = 1, early cache trimmed).
DEFAULTS = {"image": {"ref_layer": 0, "prune_layer": 1, "early_kv": "prune"},
            "video": {"ref_layer": 2, "prune_layer": 3, "early_kv": "keep"}}
# The official video budget: zjubinchen/CLSE README.md (both branches), "RETAIN_TOKEN=194 PRUNE=True bash
# msvd_eval.sh" (and activitynet / msrvtt / tgif): 194 of the 8 x 16 x 16 = 2048 video tokens (90.5% pruned).
# Its clse_model.py reads the count from KEEP_TOKEN (default 2048, i.e. nothing pruned), not RETAIN_TOKEN: the
# README's variable name does not reach the code; 194 is the count the paper's video tables use.
VIDEO_PAPER_BUDGET = 194
VIDEO_PAPER_TOKENS = 2048  # 8 frames x 256 patches (the per-frame CLS is not counted)
# The paper's staged schedule of LLaVA-1.5, whose 32-layer Vicuna decoder Video-LLaVA shares; for images only
# (the paper's video runs are the single stage above). Its keep table is for 576 tokens: none is published for
# Video-LLaVA's 256, so another count keeps round(factor * budget).
PAPER_SCHEDULE = {**STAGES, "factors": (1.72, 1.09, 0.32), "tokens": 256, "keep_table": {}}


def build_inputs(processor, images, question, kind="image", prompt="chat", timing=None, history=()):
    """Real processor call: a conversation whose first user turn holds every image (kind "image") or the frames as
    one video (kind "video", through the video processor and the video tower), then the question; prompt "chat"
    uses the checkpoint's chat template, "official" the llava_v1 conversation of Video-LLaVA's own evaluation
    (vicuna_v1, with its system prompt). The processor writes no frame times, so timing is not used."""
    images = [im.convert("RGB") for im in images]
    if kind not in ("image", "video"):
        raise ValueError(f"kind must be 'image' or 'video', got {kind!r}")
    token = processor.video_token if kind == "video" else processor.image_token
    if prompt == "official":
        text = vicuna_v1(token if kind == "video" else "\n".join([token] * len(images)), question, history)
    else:
        text = chat_text(processor, kind, images, question, history)
    if kind == "video":
        return processor(text=text, videos=[same_size(images)], return_tensors="pt")
    return processor(text=text, images=images, return_legacy_image_output=False, return_tensors="pt")


def vision_attention(model):
    """(attention module, CLS index) of the image tower's feature layer (`attentions[-2]` for feature layer -2),
    whose patches are an image's tokens in the decoder: VisionZip's score. The video tower is another module,
    which the engine does not read, so a video has no such score."""
    return clip_feature_attention(model.model.image_tower, model.config.vision_feature_layer)


def feature_projector(model):
    """The projector from an image's patch features (the image tower's feature layer, CLS dropped) to the
    decoder's inputs."""
    return model.model.multi_modal_projector


def grid_side(model):
    vision = model.config.vision_config
    return vision.image_size // vision.patch_size


def _runs(positions, count, run, skip, kind):
    """`count` contiguous runs of `run` tokens from these positions, each without its first `skip` tokens (the
    CLS, kept as context)."""
    if len(positions) != count * run:
        raise ValueError(f"{len(positions)} {kind} tokens in the prompt, but {count} x {run} were expected")
    runs = [positions[i * run:(i + 1) * run] for i in range(count)]
    if any(int(r[-1] - r[0]) != run - 1 for r in runs):
        raise ValueError(f"the tokens of a {kind} are not contiguous in the prompt")
    return [r[skip:] for r in runs]


def visual_groups(model, inputs, kind="image"):
    """One group per image (grid (1, side, side)) and one per video (grid (frames, side, side), the per-frame CLS
    left out), in prompt order, from the model's image / video token ids and the vision config. `kind` is not
    needed: the inputs say what they hold."""
    config, side = model.config, grid_side(model)
    ids = inputs["input_ids"][0]
    groups = []
    pixels = inputs.get("pixel_values", inputs.get("pixel_values_images"))
    if pixels is not None:
        extra = 1 if config.vision_feature_select_strategy == "full" else 0  # the CLS, kept as context
        positions = (ids == config.image_token_id).nonzero().flatten()
        for run in _runs(positions, pixels.shape[0], extra + side * side, extra, "image"):
            groups.append(VisualGroup("image", (1, side, side), run))
    videos = inputs.get("pixel_values_videos")
    if videos is not None:
        count, frames = videos.shape[:2]
        positions = (ids == config.video_token_id).nonzero().flatten()
        runs = _runs(positions, count * frames, 1 + side * side, 1, "video frame")  # CLS + patches per frame
        for v in range(count):
            groups.append(VisualGroup("video", (frames, side, side), torch.cat(runs[v * frames:(v + 1) * frames])))
    if not groups:
        raise ValueError("the inputs hold no image or video")
    return sorted(groups, key=lambda g: int(g.positions[0]))


def model_view(processor, images, kind="image"):
    """What each tower saw (shortest edge resized, centre crop), un-normalised to RGB: one image per image, or one
    per frame of a video (through the video processor), so the token grid lies exactly over each."""
    images = [im.convert("RGB") for im in images]
    if kind == "video":
        sub = processor.video_processor
        pixels = sub(videos=[same_size(images)], return_tensors="pt")["pixel_values_videos"][0]
    else:
        sub = processor.image_processor
        pixels = sub(images=images, return_legacy_image_output=False, return_tensors="pt")["pixel_values"]
    return [Image.fromarray(frame) for frame in pixels_to_rgb(pixels, sub)]
