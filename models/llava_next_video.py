"""LLaVA-NeXT-Video family (LlavaNextVideoForConditionalGeneration): llava-hf/LLaVA-NeXT-Video-7B-hf.

Images are exactly LLaVA-NeXT's (the same `pack_image_features`: base grid, unpadded anyres tiles with a newline
after every row), so the image functions are models/llava_next.py's.

Video (transformers 5.23, modeling_llava_next_video.py `get_video_features`, processing_llava_next_video.py
`replace_video_token`): the frames go through the native video path (LlavaNextVideoVideoProcessor: every frame
resized and centre-cropped to one tile, e.g. 336 x 336), the CLIP tower, then `vision_resampler`
(LlavaNextVideoPooler: the side x side patch grid of each frame pooled with kernel = stride =
`spatial_pool_stride`, 2: 24 x 24 -> 12 x 12 = 144 per frame for CLIP-336), the projector, and the frames are
concatenated frame after frame. The prompt holds one contiguous run of `config.video_token_id` (its own id,
not the image id) with frames x (side / stride)^2 tokens: no newline and no separator. One group per video,
kind "video", grid (frames, side / stride, side / stride), raster order, frame-major.

VisionZip: the [CLS] attention of a frame's 24 x 24 patches does not lie on the pooled 12 x 12 grid, and images
are LLaVA-NeXT's, so vision_attention is None (the engine refuses VisionZip with a sentence).
"""

from PIL import Image

import models.llava_next as llava_next  # `from models import llava_next` would import models/__init__: a cycle
from models.base import VisualGroup, conversation, pixels_to_rgb, same_size

NAME = "LLaVA-NeXT-Video"
MODEL_CLASSES = ("LlavaNextVideoForConditionalGeneration",)
HUB_IDS = ("llava-hf/LLaVA-NeXT-Video-7B-hf",)
DEFAULTS = llava_next.DEFAULTS  # LLaVA's official one-stage settings (images L = 0, K = 1; video L = 2, K = 3)
PAPER_SCHEDULE = llava_next.PAPER_SCHEDULE  # LLaVA-1.5's stages and factors, no keep table


def build_inputs(processor, images, question, kind="image", prompt="chat", timing=None, history=()):
    """Real processor call with the checkpoint's chat template. kind "image": as LLaVA-NeXT; kind "video": the
    frames are one video item ({"type": "video"}) through the processor's video path, every given frame used
    (do_sample_frames=False; frames resized to the first frame's size first). Prompt "official" is "chat" (the
    llava-hf template writes the vicuna turns "USER: <video>\\n... ASSISTANT:"); timing is not used: the model
    has no frame times."""
    if kind == "image":
        return llava_next.build_inputs(processor, images, question, kind, prompt, timing, history)
    if kind != "video":
        raise ValueError(f"kind must be 'image' or 'video', got {kind!r}")
    frames = same_size([im.convert("RGB") for im in images])
    messages = conversation([{"type": "video"}], question, history)
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    return processor(text=text, videos=[frames], do_sample_frames=False, return_tensors="pt")


def vision_attention(model):
    """None: no [CLS] attention on the decoder's grids (pooled video frames; LLaVA-NeXT's stitched tiles)."""
    return None


def pooled_side(config):
    """Tokens per row of a pooled frame: the side x side patch grid (image_size / patch_size) after the
    resampler's kernel = stride pooling (average, max or conv alike: floor(side / stride))."""
    vision = config.vision_config
    return (vision.image_size // vision.patch_size) // config.spatial_pool_stride


def video_groups(model, inputs):
    """One group per video from the video token run and the frames' count: (frames, s, s), s = pooled_side.
    ValueError when the run does not hold exactly those tokens, video after video, each contiguous."""
    side = pooled_side(model.config)
    frames = [inputs["pixel_values_videos"].shape[1]] * inputs["pixel_values_videos"].shape[0]
    run = (inputs["input_ids"][0].cpu() == model.config.video_token_id).nonzero().flatten()
    if sum(frames) * side * side != len(run):
        raise ValueError(f"{len(run)} video tokens in the prompt, but {sum(frames)} frames of {side} x {side} "
                         f"pooled tokens need {sum(frames) * side * side}")
    groups, start = [], 0
    for t in frames:
        positions = run[start:start + t * side * side]
        start += len(positions)
        if int(positions[-1] - positions[0]) != len(positions) - 1:
            raise ValueError("the tokens of a video are not contiguous in the prompt")
        groups.append(VisualGroup("video", (t, side, side), positions))
    return groups


def visual_groups(model, inputs, kind="image"):
    """LLaVA-NeXT's base and tile groups for the images, one group per video, in prompt order; the inputs say
    what they hold."""
    groups = []
    if inputs.get("pixel_values") is not None:
        groups += llava_next.image_groups(model, inputs)
    if inputs.get("pixel_values_videos") is not None:
        groups += video_groups(model, inputs)
    if not groups:
        raise ValueError("the inputs hold no image or video")
    return sorted(groups, key=lambda g: int(g.positions[0]))


def model_view(processor, images, kind="image"):
    """kind "image": LLaVA-NeXT's views (per image the base crop, then the tile canvas). kind "video": every
    frame as the video processor cropped it, one per frame (the pooled grid lies over each)."""
    if kind != "video":
        return llava_next.model_view(processor, images, kind)
    sub = processor.video_processor
    frames = same_size([im.convert("RGB") for im in images])
    pixels = sub(videos=[frames], do_sample_frames=False, return_tensors="pt")["pixel_values_videos"][0]
    return [Image.fromarray(frame) for frame in pixels_to_rgb(pixels, sub)]
