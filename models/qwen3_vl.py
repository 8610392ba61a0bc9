"""Qwen3-VL family (Qwen3VLForConditionalGeneration, and Qwen3VLMoeForConditionalGeneration, whose text model,
DeepStack, rotary embedding and processor are the same; only its MLPs are experts): Qwen/Qwen3-VL-2B-Instruct,
Qwen/Qwen3-VL-4B-Instruct, Qwen/Qwen3-VL-8B-Instruct. Read from transformers 5.23 (models/qwen3_vl/).

Where the visual tokens are. Like Qwen2-VL (models/qwen2_vl.py: smart_resize, raster order frame-major, the
2 x 2 merge), with patch 16 so one merged token per 32 x 32 px. An image is one run of t*h*w/4
`config.image_token_id` tokens between <|vision_start|> and <|vision_end|> (processing_qwen3_vl.py,
`replace_image_token`). A video is NOT one run: `replace_video_token` writes, for every temporal patch (2
frames), its timestamp as text ("<0.5 seconds>", `f"<{t:.1f} seconds>"`, t the mean time of the patch's two
frames, `_calculate_timestamps`) and then its own <|vision_start|> + h*w/4 `config.video_token_id` +
<|vision_end|>. The video group's positions are the union of those t runs, frame-major; the timestamps and the
vision_start/end tokens are context (never scored, never pruned). Grid (t, h / 2, w / 2) from video_grid_thw.

Positions: interleaved M-RoPE. The wrapper's forward (Qwen3VLModel.compute_3d_position_ids -> get_rope_index)
passes the text model [3, B, S] ids (t, h, w); `generate` passes [4, B, S] (a text row first, which
Qwen3VLTextModel.forward strips before its rotary). Qwen3VLTextRotaryEmbedding takes [3, B, S] and interleaves
the sections itself (`recomposition_frequencies`: h and w on every third frequency), so the attention's own
apply_rotary_pos_emb is the plain rotation. get_rope_index splits a video into t single-frame grids: every
temporal patch starts its t, h, w ids at the position after the timestamp text before it, so time is told by
the timestamps, not by the t id. Kept tokens keep their gathered ids (never renumbered); decoding continues at
max + 1 in all three rows, as the stock generate does (text position + rope_deltas = max + 1 + step).

DeepStack. Qwen3VLTextModel.forward adds `deepstack_visual_embeds[i]` (features of vision layer
`deepstack_visual_indexes[i]` through its own merger) to the hidden states at `visual_pos_masks` after decoder
layer i (`_deepstack_process`: hidden[mask] += features, rows in sequence order), for i < len(deepstack) (3 in
the hub checkpoints: after layers 0, 1, 2). The engine runs the layers by hand, so `injections` hands these to
it (Injection(after_layer=i, positions=every visual position, features=the i-th embeds)); it adds them after
layer i to the rows still alive: a token pruned at K never receives the features of the layers >= K.
What this means for the spectral score (CLSE): the hidden states entering layer K include the features injected
after layers 0 .. K - 1, so for K <= 3 (the hub's three injection layers) the evolution between the reference
layer L and K measured on the visual rows contains DeepStack's additive jumps, not the decoder's own change
only; from K = 4 on, both L >= 3 and K see all three injections. The image default K = 1 (L = 0) prunes before
the injections after layers 1 and 2, which then reach the kept tokens only.

Video input: the given PIL frames are one video through Qwen3VLVideoProcessor with do_sample_frames=False
(every given frame used; an odd count padded with the last frame) and video metadata carrying the frames'
true times: a clip sampled from a file (timing from explorer/media/read.py) gives its real frame indices and the
file's fps, so the timestamps in the prompt are the sampled frames' times; frames without timing are taken as
consecutive frames at VIDEO_FPS.
"""

import torch

from models.base import BadInput, Injection, VisualGroup, check_aspect, conversation, same_size
from models.qwen2_vl import patch_views

NAME = "Qwen3-VL"
MODEL_CLASSES = ("Qwen3VLForConditionalGeneration", "Qwen3VLMoeForConditionalGeneration")
HUB_IDS = ("Qwen/Qwen3-VL-2B-Instruct", "Qwen/Qwen3-VL-4B-Instruct", "Qwen/Qwen3-VL-8B-Instruct")
# The paper has no Qwen3-VL schedule: its Qwen2-VL one, rescaled to the depth by the planner (36 layers for 4B
# and 8B), and CLSE's one-stage settings for Qwen2-VL: the shared defaults (models/base.py).
VIDEO_FPS = 2.0  # frames without timing: consecutive frames at this rate (qwen-vl-utils' default sampling rate)
MAX_ASPECT = 200  # smart_resize refuses more elongated images


# Qwen3VLTextAttention (and the MoE one): q_norm / k_norm over head_dim before the rotation, which
# stock_layer_parts reads; its module's apply_rotary_pos_emb is the attention's own (cos / sin come already
# interleaved from the rotary embedding)


def decoder_positions(position_ids):
    """[3, B, S] (t, h, w) from the wrapper's forward, kept as they are; [4, B, S] (generate's, a text row
    first) -> the last three, as Qwen3VLTextModel.forward does before its rotary embedding."""
    return position_ids[1:] if position_ids.ndim == 3 and position_ids.shape[0] == 4 else position_ids


def vision_attention(model):
    """Qwen3-VL's vision tower has no [CLS] token: no CLS attention for VisionZip."""
    return None


def video_metadata(timing, frames):
    """The processor's metadata for the given frames: a sampled clip's real frame indices and the file's fps
    when its timing names them (one index per frame and a frame rate above 0), else consecutive indices at
    VIDEO_FPS. The processor writes timestamps from these (index / fps, averaged over each temporal patch)."""
    indices = list((timing or {}).get("frames_indices") or [])
    fps = float((timing or {}).get("fps") or 0)
    if fps <= 0 or len(indices) != len(frames):
        indices, fps = list(range(len(frames))), VIDEO_FPS
    total = int((timing or {}).get("total_num_frames") or 0) or indices[-1] + 1
    return {"total_num_frames": max(total, indices[-1] + 1), "fps": fps, "frames_indices": indices,
            "width": frames[0].width, "height": frames[0].height}


def build_inputs(processor, images, question, kind="image", prompt="chat", timing=None, history=()):
    """Real processor call with the chat template: a conversation whose first user turn holds the images (or the
    one video), then the question. kind "video": the frames are one video with their times (video_metadata),
    none re-sampled. Qwen3-VL's official evaluation uses this chat template, so prompt "official" is "chat"."""
    images = [im.convert("RGB") for im in images]
    check_aspect(images, MAX_ASPECT, "Qwen3-VL")
    if kind == "video":
        if len(images) < 2:
            raise BadInput("Qwen3-VL's video processor needs at least 2 frames (a temporal patch holds 2); give "
                           "more frames, or the frame as an image")
        messages = conversation([{"type": "video"}], question, history)
        text = processor.apply_chat_template(messages, add_generation_prompt=True)
        frames = same_size(images)
        return processor(text=text, videos=[frames], video_metadata=[video_metadata(timing, frames)],
                         do_sample_frames=False, return_tensors="pt")
    if kind != "image":
        raise ValueError(f"kind must be 'image' or 'video', got {kind!r}")
    messages = conversation([{"type": "image"} for _ in images], question, history)
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    return processor(text=text, images=images, return_tensors="pt")


def injections(model, captured, groups):
    """DeepStack: [Injection(after_layer=i, positions=the visual positions, features=deepstack_visual_embeds[i])]
    from the kwargs the wrapper passed the text model (Qwen3VLModel.forward: `visual_pos_masks` [B, S], every
    image and video token; `deepstack_visual_embeds`, one [n_visual, D] per injection layer, rows in sequence
    order as `_deepstack_process` adds them). [] without visual input."""
    features = captured.get("deepstack_visual_embeds")
    mask = captured.get("visual_pos_masks")
    if not features or mask is None:
        return []
    positions = mask[0].nonzero().flatten().cpu()
    grouped = sorted(int(p) for g in groups for p in g.positions.cpu())
    if positions.tolist() != grouped:
        raise ValueError(f"DeepStack's {len(positions)} visual positions are not the {len(grouped)} positions of "
                         "the visual groups")
    for layer, feature in enumerate(features):
        if feature.shape[0] != len(positions):
            raise ValueError(f"DeepStack layer {layer} has {feature.shape[0]} features for {len(positions)} "
                             "visual positions")
    return [Injection(after_layer=layer, positions=positions, features=feature)
            for layer, feature in enumerate(features)]


def _runs(positions, count, kind, what):
    """positions[:count] as a tensor, checked to be one contiguous run of `what` (an image, a temporal patch)."""
    run = positions[:count]
    if count and int(run[-1] - run[0]) != count - 1:
        raise ValueError(f"the tokens of {what} of a {kind} are not contiguous in the prompt")
    return run


def visual_groups(model, inputs, kind="image"):
    """One VisualGroup per image and per video, in prompt order, from the model's image/video token ids and the
    processor's grids (never from offsets). A video: t runs of h' * w' tokens (one per temporal patch, each
    between its own vision_start / vision_end after its timestamp), their union frame-major, grid (t, h', w')."""
    config = model.config
    merge = config.vision_config.spatial_merge_size
    input_ids = inputs["input_ids"][0]
    groups = []
    for key, token_id, name in (("image_grid_thw", config.image_token_id, "image"),
                                ("video_grid_thw", config.video_token_id, "video")):
        grids = inputs.get(key)
        if grids is None:
            continue
        positions = (input_ids == token_id).nonzero().flatten()
        needed = sum(int(t * h * w) // merge**2 for t, h, w in grids.tolist())
        if needed != len(positions):
            raise ValueError(f"{len(positions)} {name} tokens in the prompt, but the {name} grids {grids.tolist()} "
                             f"need {needed}")
        start = 0
        for t, h, w in grids.tolist():
            h, w = int(h) // merge, int(w) // merge
            if name == "image":  # one run (t = 1 for an image)
                runs = [_runs(positions[start:], int(t) * h * w, name, "an image")]
            else:  # one run per temporal patch, separated by its timestamp and vision_end / vision_start
                runs = [_runs(positions[start + f * h * w:], h * w, name, f"temporal patch {f}")
                        for f in range(int(t))]
            start += int(t) * h * w
            groups.append(VisualGroup(name, (int(t), h, w), torch.cat(runs)))
    if not groups:
        raise ValueError("the inputs hold no image or video")
    return sorted(groups, key=lambda g: int(g.positions[0]))


def model_view(processor, images, kind="image"):
    """The images as the model saw them (the processor's smart_resize, recovered exactly from its own patches:
    Qwen2VLImageProcessor's and Qwen3VLVideoProcessor's `patchify` lay patches out as Qwen2-VL's do), as RGB
    PIL images: one per image, or for a video one per temporal patch (the first frame of each pair)."""
    return patch_views(processor, images, kind, "Qwen3-VL")
