"""Qwen2-VL / Qwen2.5-VL adapter on tiny random-weight models built in code with their real processors."""

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from transformers import DynamicCache

from explorer.core.compare import compare
from explorer.core.engine import encode, run
from explorer.methods.attention import last_token_row
from explorer.core.plan import plan
from explorer.methods.schedules import paper_layers
from explorer.core.settings import check_settings
from models.base import BadInput
from models import qwen2_vl
from tests.conftest import TinyQwen, no_cache_logits, random_image

QUESTION = "what color is the circle ?"
VERSIONS = ["2", "2.5"]


@pytest.fixture(scope="module", params=VERSIONS)
def qwen(request):
    return TinyQwen(request.param)


def stock_generate(t, images, question, kind="image", max_new_tokens=5):
    inputs = t.family.build_inputs(t.processor, images, question, kind=kind)
    with torch.inference_mode():
        out = t.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, output_logits=True,
                               return_dict_in_generate=True)
    return out.sequences[0, inputs["input_ids"].shape[1]:].tolist(), [s[0].float() for s in out.logits]


def frames(n, size=(300, 200), seed=50):
    return [random_image(seed + i, size) for i in range(n)]


# ------------------------------------------------------------------------------------------ equivalence


@pytest.mark.parametrize("kind", ["image", "video"])
def test_keep_all_equals_the_stock_model(qwen, kind):
    images = [random_image(0, (300, 200))] if kind == "image" else frames(4)
    stock_ids, stock_logits = stock_generate(qwen, images, QUESTION, kind=kind)
    inputs = qwen.family.build_inputs(qwen.processor, images, QUESTION, kind=kind)
    n = sum(g.count for g in qwen.family.visual_groups(qwen.model, inputs, kind=kind))
    records = compare(qwen.model, qwen.processor, qwen.family, images, QUESTION, methods=["clse", "fastv"], keep=n,
                      prune_layer=2, kind=kind, max_new_tokens=5, keep_logits=True)
    for name, record in records.items():
        assert record.answer_ids == stock_ids, name
        assert len(record.step_logits) == len(stock_logits)
        for ours, theirs in zip(record.step_logits, stock_logits):
            assert torch.allclose(ours, theirs, atol=1e-5), name
        assert record.kept_indices == list(range(n))


@pytest.mark.parametrize("method, kind", [("clse", "image"), ("fastv", "image"), ("random", "video")])
def test_pruned_cached_decode_matches_a_no_cache_recompute(qwen, method, kind):
    images = [random_image(1, (300, 200))] if kind == "image" else frames(4, seed=60)
    inputs = qwen.family.build_inputs(qwen.processor, images, QUESTION, kind=kind)
    encoded = encode(qwen.model, qwen.family, inputs, kind=kind)
    assert encoded.position_ids.shape == (3, 1, inputs["input_ids"].shape[1])

    # Record the rotary positions the engine asks for while decoding.
    lm = qwen.model.model.language_model
    seen = []
    forward = lm.rotary_emb.forward
    lm.rotary_emb.forward = lambda x, position_ids: (seen.append(position_ids.clone()), forward(x, position_ids))[1]
    try:
        record = run(qwen.model, qwen.processor, encoded, method, keep=7, prune_layer=2, max_new_tokens=5,
                     keep_logits=True)
    finally:
        del lm.rotary_emb.forward
    n = encoded.groups[0].count
    assert len(record.kept_indices) == 7 < n
    kept_positions = encoded.groups[0].positions[record.kept_indices]
    with torch.inference_mode():
        reference = no_cache_logits(qwen, encoded, kept_positions, 2, record.answer_ids)
        renumbered = no_cache_logits(qwen, encoded, kept_positions, 2, record.answer_ids, renumber=True)
    assert len(record.step_logits) == len(reference) == 5
    for ours, theirs in zip(record.step_logits, reference):
        assert torch.allclose(ours, theirs, atol=1e-5)
    # Kept tokens keep their original (gathered) 3-D ids: renumbering them gives other logits.
    assert not all(torch.allclose(ours, wrong, atol=1e-5) for ours, wrong in zip(record.step_logits, renumbered))
    # Prefill uses the captured ids; decode step j uses max + 1 + j in all three rows.
    assert torch.equal(seen[0], encoded.position_ids)
    start = int(encoded.position_ids.max()) + 1
    assert [p.shape for p in seen[1:]] == [(3, 1, 1)] * 4
    assert [p.flatten().tolist() for p in seen[1:]] == [[start + j] * 3 for j in range(4)]


# ------------------------------------------------------------------------------------------ visual groups


def test_non_square_image_grid_and_raster_position_ids(qwen):
    image = random_image(2, (300, 200))  # wide
    inputs = qwen.family.build_inputs(qwen.processor, [image], QUESTION)
    groups = qwen.family.visual_groups(qwen.model, inputs)
    assert len(groups) == 1
    g = groups[0]
    t, h, w = g.grid
    thw = inputs["image_grid_thw"][0].tolist()
    assert (t, h, w) == (thw[0], thw[1] // 2, thw[2] // 2) == (1, 4, 6)
    ids = inputs["input_ids"][0]
    assert (ids[g.positions] == qwen.model.config.image_token_id).all() and g.count == 24
    assert ids[g.positions[0] - 1] == qwen.tokenizer.convert_tokens_to_ids("<|vision_start|>")
    assert ids[g.positions[-1] + 1] == qwen.tokenizer.convert_tokens_to_ids("<|vision_end|>")
    # The model's own M-RoPE ids of the run are (t, row, column) of raster order n -> (n // w, n % w).
    position_ids = encode(qwen.model, qwen.family, inputs).position_ids[:, 0, g.positions]
    n = torch.arange(g.count)
    first = position_ids[:, 0]
    assert torch.equal(position_ids[0], first[0].expand(g.count))
    assert torch.equal(position_ids[1] - first[1], n // w)
    assert torch.equal(position_ids[2] - first[2], n % w)
    tall = qwen.family.visual_groups(qwen.model, qwen.family.build_inputs(qwen.processor, [random_image(3, (100, 300))],
                                                                          QUESTION))[0]
    assert tall.grid[1] > tall.grid[2]


def test_two_images_each_with_its_own_group_and_budget(qwen):
    images = [random_image(4, (300, 200)), random_image(5, (120, 200))]
    records = compare(qwen.model, qwen.processor, qwen.family, images, QUESTION, methods=["clse", "fastv"], keep=5,
                      prune_layer=2, max_new_tokens=2)
    groups = records["none"].groups
    assert [g["kind"] for g in groups] == ["image", "image"]
    assert groups[0]["grid"] == [1, 4, 6] and groups[1]["grid"] != groups[0]["grid"]
    counts = [g["count"] for g in groups]
    assert [g["offset"] for g in groups] == [0, counts[0]]
    assert groups[1]["first_position"] > groups[0]["first_position"] + counts[0]  # separated by vision end/start
    for name in ("clse", "fastv"):
        r = records[name]
        assert r.stages[0].keep_counts == [5, 5]
        assert sum(k < counts[0] for k in r.kept_indices) == 5
        assert sum(counts[0] <= k < sum(counts) for k in r.kept_indices) == 5
        assert r.visual_per_layer == [sum(counts)] * 2 + [10] * 2
    ratio = compare(qwen.model, qwen.processor, qwen.family, images, QUESTION, methods=["random"], keep=0.5,
                    prune_layer=1, max_new_tokens=1)["random"]
    assert ratio.stages[0].keep_counts == [round(0.5 * c) for c in counts]


def test_video_is_one_pruned_group(qwen):
    video = frames(4)
    inputs = qwen.family.build_inputs(qwen.processor, video, QUESTION, kind="video")
    assert "pixel_values" not in inputs and inputs["video_grid_thw"].tolist() == [[2, 8, 12]]  # 4 frames / 2
    records = compare(qwen.model, qwen.processor, qwen.family, video, QUESTION, methods=["clse", "uniform"], keep=12,
                      prune_layer=2, kind="video", max_new_tokens=2)
    r = records["clse"]
    assert r.groups == [{"kind": "video", "grid": [2, 4, 6], "offset": 0, "count": 48,
                         "first_position": r.groups[0]["first_position"], "unit": None, "name": ""}]
    ids = inputs["input_ids"][0]
    group = qwen.family.visual_groups(qwen.model, inputs, kind="video")[0]
    assert (ids[group.positions] == qwen.model.config.video_token_id).all()
    assert (group.positions.diff() == 1).all()
    assert len(r.kept_indices) == 12 < 48
    assert r.visual_per_layer == [48, 48, 12, 12] and records["none"].visual_per_layer == [48] * 4
    assert r.tokens_per_layer[2] == records["none"].tokens_per_layer[2] - 36
    assert [sum(f * 24 <= k < (f + 1) * 24 for k in records["uniform"].kept_indices) for f in range(2)] == [6, 6]
    # Raster order, frame-major, in the model's own ids; Qwen2.5-VL spaces frames by tokens_per_second * 2 / fps.
    position_ids = encode(qwen.model, qwen.family, inputs, kind="video").position_ids[:, 0, group.positions]
    n = torch.arange(48)
    step = 1 if qwen.version == "2" else round(qwen.model.config.vision_config.tokens_per_second * 2
                                                / qwen2_vl.VIDEO_FPS)
    assert torch.equal(position_ids[0] - position_ids[0, 0], (n // 24) * step)
    assert torch.equal(position_ids[1] - position_ids[1, 0], (n % 24) // 6)
    assert torch.equal(position_ids[2] - position_ids[2, 0], n % 6)
    # An odd frame count is padded by the processor (last frame repeated), never re-sampled.
    odd = qwen.family.build_inputs(qwen.processor, frames(5), QUESTION, kind="video")
    assert odd["video_grid_thw"].tolist() == [[3, 8, 12]]


def test_paper_schedule_runs_with_planned_counts(qwen):
    image = random_image(6, (300, 200))
    records = compare(qwen.model, qwen.processor, qwen.family, [image], QUESTION, methods=["clse", "fastv"], keep=8,
                      schedule="paper", max_new_tokens=3)
    assert paper_layers(4, qwen.family.PAPER_SCHEDULE) == [1, 2, 3]
    the_plan = plan(encode(qwen.model, qwen.family, qwen.family.build_inputs(qwen.processor, [image], QUESTION)).groups,
                    check_settings(keep=8, schedule="paper"), 4, qwen.family)
    stages, nominal = the_plan.stages, the_plan.nominal
    # the paper's Qwen ratios 0.57 / 0.36 / 0.098 of N for the nominal 0.334: multiples 1.71 / 1.08 / 0.29 of r,
    # floored as the official code
    assert nominal == [8] and stages == [(1, [13]), (2, [8]), (3, [2])]
    for name in ("clse", "fastv"):
        r = records[name]
        assert [s.layer for s in r.stages] == [1, 2, 3]
        assert [len(s.keep_indices) for s in r.stages] == [13, 8, 2]
        assert set(r.stages[2].keep_indices) <= set(r.stages[1].keep_indices) <= set(r.stages[0].keep_indices)
        assert r.visual_per_layer == [24, 13, 8, 2]
        assert r.kept_indices == r.stages[2].keep_indices
    assert [s.scorer for s in records["clse"].stages] == ["clse", "fastv", "fastv"]


def test_attention_row_equals_eager_attention_last_row(qwen):
    inputs = qwen.family.build_inputs(qwen.processor, [random_image(7, (300, 200))], QUESTION)
    eager = type(qwen.model)(copy.deepcopy(qwen.model.config))
    eager.load_state_dict(qwen.model.state_dict())
    eager.set_attn_implementation("eager")  # only as an oracle in this test
    eager.eval()
    with torch.inference_mode():
        weights = eager(**inputs, output_attentions=True).attentions
        encoded = encode(qwen.model, qwen.family, inputs)
        lm = qwen.model.model.language_model
        hidden = encoded.inputs_embeds
        cos, sin = lm.rotary_emb(hidden, encoded.position_ids)
        cache = DynamicCache(config=qwen.model.config.text_config)
        for i, layer in enumerate(lm.layers[:3]):
            last = hidden[:, -1:]
            hidden = layer(hidden, attention_mask=None, position_embeddings=(cos, sin), past_key_values=cache,
                           use_cache=True)
            row = last_token_row(qwen.family.layer_parts(qwen.model, i), last, (cos[:, -1:], sin[:, -1:]),
                                 cache.layers[i].keys)
            assert torch.allclose(row, weights[i][0, :, -1].mean(0), atol=1e-6)
    assert qwen.model.config.text_config._attn_implementation == "sdpa"


# ------------------------------------------------------------------------------------------ what the model saw


def test_model_view_is_the_resized_image_under_the_grid(qwen):
    image = random_image(8, (300, 200))
    inputs = qwen.family.build_inputs(qwen.processor, [image, random_image(9, (100, 300))], QUESTION)
    groups = qwen.family.visual_groups(qwen.model, inputs)
    views = qwen.family.model_view(qwen.processor, [image, random_image(9, (100, 300))])
    assert [v.size for v in views] == [(28 * g.grid[2], 28 * g.grid[1]) for g in groups]  # 28 px per token
    # the same pixels as a plain bicubic resize of the input (up to resampling details)
    reference = np.asarray(image.resize(views[0].size, Image.BICUBIC), dtype=np.float32)
    assert np.abs(np.asarray(views[0], dtype=np.float32) - reference).mean() < 8
    video = qwen.family.model_view(qwen.processor, frames(4), kind="video")
    assert len(video) == 2 and video[0].size == (168, 112)  # one view per temporal patch (grid t)


@pytest.mark.parametrize("kind", ["image", "video"])
def test_merged_token_n_covers_block_row_n_div_w_column_n_mod_w(kind):
    """End-to-end raster order: with the vision tower's attention silenced (no mixing between patches), changing
    the 28 x 28 pixel block at (row, column) of one frame changes exactly merged token frame*h*w + row*w + column
    (through the processor's patchify, the tower, Qwen2.5-VL's window permutation and the merger)."""
    for version in VERSIONS:
        t = TinyQwen(version, vision_layers=2)
        with torch.no_grad():
            for block in t.model.model.visual.blocks:
                block.attn.proj.weight.zero_()
        size = (168, 112)  # already a multiple of 28 inside the pixel bounds: not resized
        base = frames(4 if kind == "video" else 1, size=size, seed=70)
        row, column, frame = 2, 4, 3 if kind == "video" else 0
        changed = [im.copy() for im in base]
        changed[frame].paste((255, 0, 255), (28 * column, 28 * row, 28 * column + 28, 28 * row + 28))

        def features(images):
            inputs = t.family.build_inputs(t.processor, images, QUESTION, kind=kind)
            with torch.inference_mode():
                if kind == "video":
                    out = t.model.model.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"])
                else:
                    out = t.model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
            return out.pooler_output[0]

        diff = (features(changed) - features(base)).abs().amax(dim=1)
        h, w = 4, 6
        expected = (frame // 2) * h * w + row * w + column
        assert diff.argmax().item() == expected, version
        assert (diff > 1e-6).nonzero().flatten().tolist() == [expected], version


# ------------------------------------------------------------------------------------------ loading, requests


def test_saved_checkpoint_loads_like_a_hub_one(qwen, tmp_path):
    import models

    qwen.model.save_pretrained(tmp_path)
    qwen.processor.save_pretrained(tmp_path)
    model, processor, family = models.load(str(tmp_path))
    assert family is qwen2_vl and type(model) is type(qwen.model)
    assert type(processor) is type(qwen.processor) and type(processor.video_processor) is type(
        qwen.processor.video_processor)
    images = [random_image(11, (300, 200))]
    ours = compare(model, processor, family, images, QUESTION, methods=["clse"], keep=6, max_new_tokens=3,
                   keep_logits=True)["clse"]
    theirs = compare(qwen.model, qwen.processor, qwen.family, images, QUESTION, methods=["clse"], keep=6,
                     max_new_tokens=3, keep_logits=True)["clse"]
    assert ours.answer_ids == theirs.answer_ids and ours.kept_indices == theirs.kept_indices
    assert all(torch.equal(a, b) for a, b in zip(ours.step_logits, theirs.step_logits))


def test_requests_do_not_leak(qwen):
    args = dict(methods=["clse", "fastv"], keep=5, prune_layer=1, max_new_tokens=3)
    first = compare(qwen.model, qwen.processor, qwen.family, frames(4, seed=80), QUESTION, kind="video", **args)
    compare(qwen.model, qwen.processor, qwen.family, [random_image(12, (200, 300))], "is the square red ?", **args)
    again = compare(qwen.model, qwen.processor, qwen.family, frames(4, seed=80), QUESTION, kind="video", **args)
    for name in first:
        a, b = first[name].to_json(), again[name].to_json()
        for key in ("answer_ids", "kept_indices", "stages", "tokens_per_layer", "groups"):
            assert a[key] == b[key], (name, key)


def test_too_elongated_image_fails_clearly(qwen):
    with pytest.raises(BadInput, match="too elongated"):
        compare(qwen.model, qwen.processor, qwen.family, [random_image(13, (2010, 10))], QUESTION, methods=["clse"],
                keep=2, max_new_tokens=1)
