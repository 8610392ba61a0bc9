"""Qwen2-VL and Qwen2.5-VL family (Qwen2VLForConditionalGeneration, Qwen2_5_VLForConditionalGeneration):
Qwen/Qwen2-VL-2B-Instruct, Qwen/Qwen2-VL-7B-Instruct, Qwen/Qwen2.5-VL-3B-Instruct, Qwen/Qwen2.5-VL-7B-Instruct.

Where the visual tokens are. The processor resizes every image (and every video, all frames alike) with
`smart_resize` to multiples of patch_size * merge_size (28 px) within its min/max pixel bounds, keeping the
aspect ratio, so the grid differs per image. `image_grid_thw` / `video_grid_thw` give (t, h, w) in vision
patches *before* the 2 x 2 merge; each image becomes one contiguous run of t * h * w / merge^2
`config.image_token_id` tokens between <|vision_start|> and <|vision_end|> (a video: `config.video_token_id`
tokens, t = temporal patches = frames / temporal_patch_size). The decoder grid is (t, h / merge, w / merge).

Token order inside a run is raster order, frame-major: merged token n of a run sits at frame n // (h' w'),
row (n % (h' w')) // w', column n % w' (h', w' = merged grid). Why:
- the processor's `patchify` lays the pixel patches out as (t, h/m, w/m, m, m) -> each merged token's m x m
  patches are consecutive and the merged tokens follow in (t, row, column) order;
- the vision tower's `PatchMerger` views every m * m consecutive patch rows as one token, so its output keeps
  that order (Qwen2.5-VL permutes into attention windows inside the tower and undoes it with
  `argsort(window_index)` after the merger);
- `get_rope_index` gives the run the 3-D ids meshgrid(t, h, w, indexing="ij") flattened: the same order.
  The tests check the captured ids against the raster coordinates.

Video: the list of PIL frames is one video through the processor's native video path
(processor(videos=[frames]), Qwen2VLVideoProcessor). Frame re-sampling is off (`do_sample_frames=False`):
every given frame is used; an odd count is padded by the processor with a copy of the last frame (the
temporal patch holds 2 frames). Frames of different sizes are resized to the first frame's size first.
Qwen2.5-VL spaces the temporal M-RoPE ids by tokens_per_second * temporal_patch_size / fps: the frames' fps
is passed as video metadata (VIDEO_FPS = 2 frames per second by default, qwen-vl-utils' default sampling
rate; pass the real rate if the frames were sampled differently). Qwen2-VL ignores fps.
"""

from PIL import Image

from models.base import VisualGroup, check_aspect, conversation, pixels_to_rgb, same_size

NAME = "Qwen2-VL"
MODEL_CLASSES = ("Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration")
HUB_IDS = ("Qwen/Qwen2-VL-2B-Instruct", "Qwen/Qwen2-VL-7B-Instruct", "Qwen/Qwen2.5-VL-3B-Instruct",
           "Qwen/Qwen2.5-VL-7B-Instruct")
# The paper's Qwen2-VL schedule (PAPER_SCHEDULE) and CLSE's official one-stage settings for it, keeping the
# early KV cache (DEFAULTS), are the shared defaults (models/base.py's STOCK_PAPER_SCHEDULE, STOCK_DEFAULTS).
VIDEO_FPS = 2.0  # assumed sampling rate of the given frames (only Qwen2.5-VL's temporal ids use it)
MAX_ASPECT = 200  # smart_resize refuses more elongated images


# the text attention's own apply_rotary_pos_emb: cos / sin come from the rotary embedding with the M-RoPE
# sections already merged, so it is the plain rotation


def decoder_positions(position_ids):
    """The wrapper gives [4, B, S] ids (text; t; h; w) in transformers 5: the rotary embedding takes t, h, w."""
    return position_ids[1:] if position_ids.ndim == 3 and position_ids.shape[0] == 4 else position_ids


def vision_attention(model):
    """Qwen2-VL's vision tower has no [CLS] token: no CLS attention for methods that need one (VisionZip)."""
    return None


def sampled_fps(timing, frames):
    """The rate of the given frames: a sampled clip's (the file's rate over the mean step between the sampled
    frames), or VIDEO_FPS when the frames came without timing."""
    if not timing or not timing.get("fps") or len(timing.get("frames_indices") or []) < 2:
        return VIDEO_FPS if not timing or not timing.get("fps") else float(timing["fps"])
    indices = timing["frames_indices"]
    step = (indices[-1] - indices[0]) / (len(indices) - 1)
    return float(timing["fps"]) / max(step, 1e-9)


def build_inputs(processor, images, question, kind="image", prompt="chat", timing=None, history=()):
    """Real processor call with the chat template: a conversation whose first user turn holds the images (or the
    one video), then the question. kind "image": every PIL image is an image item; kind "video": the frames are
    one video, at the rate of a sampled clip's timing (sampled_fps). The official Qwen2-VL evaluation uses this
    same chat template, so prompt "official" is "chat" here."""
    images = [im.convert("RGB") for im in images]
    check_aspect(images, MAX_ASPECT, "Qwen2-VL")
    if kind == "video":
        messages = conversation([{"type": "video"}], question, history)
        text = processor.apply_chat_template(messages, add_generation_prompt=True)
        frames = same_size(images)
        metadata = [{"total_num_frames": len(frames), "fps": sampled_fps(timing, frames),
                     "frames_indices": list(range(len(frames))), "width": frames[0].width,
                     "height": frames[0].height}]
        return processor(text=text, videos=[frames], video_metadata=metadata, do_sample_frames=False,
                         return_tensors="pt")
    if kind != "image":
        raise ValueError(f"kind must be 'image' or 'video', got {kind!r}")
    messages = conversation([{"type": "image"} for _ in images], question, history)
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    return processor(text=text, images=images, return_tensors="pt")


def _runs(input_ids, token_id, grids, merge, kind):
    """Split the positions of `token_id` into one contiguous run per grid row (t, h, w before the merge)."""
    positions = (input_ids == token_id).nonzero().flatten()
    counts = [int(t * h * w) // merge**2 for t, h, w in grids.tolist()]
    if sum(counts) != len(positions):
        raise ValueError(f"{len(positions)} {kind} tokens in the prompt, but the {kind} grids "
                         f"{grids.tolist()} need {sum(counts)}")
    groups, start = [], 0
    for (t, h, w), count in zip(grids.tolist(), counts):
        run = positions[start:start + count]
        start += count
        if count and int(run[-1] - run[0]) != count - 1:
            raise ValueError(f"the tokens of a {kind} are not contiguous in the prompt")
        groups.append(VisualGroup(kind, (int(t), int(h) // merge, int(w) // merge), run))
    return groups


def visual_groups(model, inputs, kind="image"):
    """One VisualGroup per image and per video, in prompt order, found from the model's image/video token ids and
    the processor's grids (never from offsets). `kind` is not needed: the inputs say what they hold."""
    config = model.config
    merge = config.vision_config.spatial_merge_size
    input_ids = inputs["input_ids"][0]
    groups = []
    if inputs.get("image_grid_thw") is not None:
        groups += _runs(input_ids, config.image_token_id, inputs["image_grid_thw"], merge, "image")
    if inputs.get("video_grid_thw") is not None:
        groups += _runs(input_ids, config.video_token_id, inputs["video_grid_thw"], merge, "video")
    if not groups:
        raise ValueError("the inputs hold no image or video")
    return sorted(groups, key=lambda g: int(g.positions[0]))


def _unpatchify(pixels, grid, merge, patch, temporal, channels):
    """Inverse of the processor's patchify for one image or video: [t*h*w, C*tp*p*p] -> [t*tp, C, H, W]."""
    t, h, w = grid
    x = pixels.reshape(t, h // merge, w // merge, merge, merge, channels, temporal, patch, patch)
    # -> t, tp, C, h/m, m, p, w/m, m, p
    x = x.permute(0, 6, 5, 1, 3, 7, 2, 4, 8)
    return x.reshape(t * temporal, channels, h * patch, w * patch)


def model_view(processor, images, kind="image"):
    """The images as the model saw them (the processor's smart_resize, recovered exactly from its own patches),
    as RGB PIL images: one per image, or for a video one per temporal patch (the first frame of each pair, the
    grid's t axis), so the (h, w) token grid lies exactly over each one."""
    return patch_views(processor, images, kind, "Qwen2-VL")


def patch_views(processor, images, kind, name):
    """model_view of the processors that lay patches out as Qwen2-VL's do (Qwen3-VL's too); name: whose
    processor, for the elongated image's sentence."""
    images = [im.convert("RGB") for im in images]
    check_aspect(images, MAX_ASPECT, name)
    if kind == "video":
        sub = processor.video_processor
        out = sub(videos=[same_size(images)], do_sample_frames=False, return_tensors="pt")
        pixels, grids = out["pixel_values_videos"], out["video_grid_thw"]
    else:
        sub = processor.image_processor
        out = sub(images=images, return_tensors="pt")
        pixels, grids = out["pixel_values"], out["image_grid_thw"]
    merge, patch, temporal = sub.merge_size, sub.patch_size, sub.temporal_patch_size
    channels = pixels.shape[1] // (temporal * patch * patch)
    views, start = [], 0
    for grid in grids.tolist():
        count = grid[0] * grid[1] * grid[2]
        frames = _unpatchify(pixels[start:start + count].float(), grid, merge, patch, temporal, channels)
        start += count
        frames = frames[::temporal]  # one frame per temporal patch (images repeat their one frame)
        views += [Image.fromarray(frame) for frame in pixels_to_rgb(frames, sub)]
    return views
