"""LLaVA-NeXT and LLaVA-NeXT-Video on tiny random-weight checkpoints built in code with their real processors
(tests/tiny_llava_next.py), saved in the hub layout and loaded with models.load: equivalence with the stock
model, the anyres layout (base grid, unpadded tiles, newline rows as context), budgets over an image's grids,
the device trap, and the command line, lmms-eval and the page on these checkpoints."""

import copy
import inspect
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

import models
from explorer.core.compare import compare
from explorer.core.diagnostics import attach
from explorer.core.engine import encode, run
from explorer.core.settings import SCHEDULES, check_settings
from explorer.methods.registry import METHODS, applies_to
from models import base
from models.base import BadInput, VisualGroup
from tests.conftest import ROOT, app_server, no_cache_logits, on_meta_default_device, random_image, write_clip
from tests.tiny_llava_next import TinyNext

QUESTION = "what color is the circle ?"
WIDE = (200, 150)  # 2 x 2 tiles (12 x 12 stitched); unpadding cuts the top and bottom rows: 10 x 12, 10 newlines
TALL = (60, 200)  # 2 x 1 tiles (12 x 6 stitched); unpadding cuts the first and last columns: 12 x 4, 12 newlines
BASE = 36  # 6 x 6: 84 px tiles of 14 px patches
EPS = torch.finfo(torch.float32).eps


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Both checkpoints written in the hub layout: {"next": dir, "video": dir}."""
    root = tmp_path_factory.mktemp("llava_next")
    return {name: TinyNext(video=name == "video").save(root / name) for name in ("next", "video")}


def loaded(directory, **kwargs):
    model, processor, family = models.load(directory, **kwargs)
    return SimpleNamespace(model=model, processor=processor, family=family, directory=directory)


@pytest.fixture(scope="module")
def nxt(saved):
    return loaded(saved["next"])


@pytest.fixture(scope="module")
def vid(saved):
    return loaded(saved["video"])


def frames(n, size=(100, 100), seed=40):
    return [random_image(seed + i, size) for i in range(n)]


def stock_generate(t, images, kind="image", max_new_tokens=5):
    inputs = t.family.build_inputs(t.processor, images, QUESTION, kind=kind).to(t.model.dtype)
    with torch.inference_mode():
        out = t.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, output_logits=True,
                               return_dict_in_generate=True)
    return out.sequences[0, inputs["input_ids"].shape[1]:].tolist(), [s[0].float() for s in out.logits]


def groups_of(t, images, kind="image"):
    return t.family.visual_groups(t.model, t.family.build_inputs(t.processor, images, QUESTION, kind=kind), kind=kind)


def newline_positions(t, inputs, groups):
    """The image token run's positions that are in no group (computed here from the token ids, not the family)."""
    run_positions = (inputs["input_ids"][0] == t.model.config.image_token_id).nonzero().flatten().tolist()
    grid = set(torch.cat([g.positions for g in groups]).tolist())
    return sorted(set(run_positions) - grid)


# ------------------------------------------------------------------------------------------ equivalence


CASES = [("nxt", "image"), ("nxt", "video"), ("vid", "image"), ("vid", "video")]


@pytest.mark.parametrize("which, kind", CASES)
def test_keep_all_equals_the_stock_model(which, kind, request):
    t = request.getfixturevalue(which)
    images = [random_image(0, WIDE)] if kind == "image" else frames(3 if which == "nxt" else 4)
    stock_ids, stock_logits = stock_generate(t, images, kind)
    other_ids, _ = stock_generate(t, [random_image(5, WIDE)] if kind == "image" else frames(4, seed=90), kind)
    assert other_ids != stock_ids  # the answer depends on the image: the comparison below can tell
    n = sum(g.count for g in groups_of(t, images, kind))
    records = compare(t.model, t.processor, t.family, images, QUESTION, methods=["clse", "fastv"], keep=n,
                      prune_layer=2, kind=kind, max_new_tokens=5, keep_logits=True)
    for name, record in records.items():
        assert record.answer_ids == stock_ids, name
        assert len(record.step_logits) == len(stock_logits) == 5
        for ours, theirs in zip(record.step_logits, stock_logits):
            assert (ours - theirs).abs().max() <= 2 * EPS * max(theirs.abs().max().item(), 1.0), name
        assert record.kept_indices == list(range(n))


def test_keep_all_equals_the_stock_model_in_bfloat16(saved):
    t = loaded(saved["next"], dtype="bfloat16")
    image = random_image(1, WIDE)
    ids, logits = stock_generate(t, [image])
    n = sum(g.count for g in groups_of(t, [image]))
    records = compare(t.model, t.processor, t.family, [image], QUESTION, methods=["clse"], keep=n, prune_layer=2,
                      max_new_tokens=5, keep_logits=True)
    for record in records.values():
        assert record.dtype == "bfloat16" and record.answer_ids == ids
        for ours, theirs in zip(record.step_logits, logits):
            scale = theirs.abs().max().item()
            assert (ours - theirs).abs().max().item() <= 2 * torch.finfo(torch.bfloat16).eps * max(scale, 1.0)


@pytest.mark.parametrize("early_kv", ["keep", "prune"])
@pytest.mark.parametrize("which, kind, method", [("nxt", "image", "clse"), ("vid", "video", "fastv")])
def test_pruned_cached_decode_matches_a_no_cache_recompute(which, kind, method, early_kv, request):
    """The oracle keeps every token outside the groups (the text and, for images, the newline rows) and the kept
    grid tokens; dropping the newline rows as if they were visual gives other logits."""
    t = request.getfixturevalue(which)
    images = [random_image(2, WIDE)] if kind == "image" else frames(4, seed=60)
    inputs = t.family.build_inputs(t.processor, images, QUESTION, kind=kind)
    encoded = encode(t.model, t.family, inputs, kind=kind)
    record = run(t.model, t.processor, encoded, method, keep=12, prune_layer=2, max_new_tokens=5, early_kv=early_kv,
                 keep_logits=True)
    grid = torch.cat([g.positions for g in encoded.groups])
    assert len(record.kept_indices) == 12 < len(grid)
    kept_positions = grid[record.kept_indices]
    with torch.inference_mode():
        reference = no_cache_logits(t, encoded, kept_positions, 2, record.answer_ids, early_kv)
    assert len(record.step_logits) == len(reference) == 5
    for ours, theirs in zip(record.step_logits, reference):
        assert torch.allclose(ours, theirs, atol=1e-5)
    newlines = newline_positions(t, inputs, encoded.groups)
    assert len(newlines) == (10 if kind == "image" else 0)
    if newlines:
        as_visual = SimpleNamespace(inputs_embeds=encoded.inputs_embeds, position_ids=encoded.position_ids,
                                    injections=encoded.injections, groups=[
            *encoded.groups, VisualGroup("image", (1, 1, len(newlines)), torch.tensor(newlines))])
        with torch.inference_mode():
            wrong = no_cache_logits(t, as_visual, kept_positions, 2, record.answer_ids, early_kv)
        assert not torch.allclose(record.step_logits[0], wrong[0], atol=1e-5)


# ------------------------------------------------------------------------------------------ the layout


@pytest.mark.parametrize("which", ["nxt", "vid"])
def test_groups_equal_the_processors_layout(which, request):
    """Per image a base group and a tile group sharing its unit; the tile grid is the processor's unpadded
    feature grid (its own _get_unpadded_features), its rows are the newlines; the newline positions hold the
    model's image_newline vector and no grid position does."""
    from transformers.image_processing_utils import select_best_resolution

    t = request.getfixturevalue(which)
    images = [random_image(3, WIDE), random_image(4, TALL)]
    inputs = t.family.build_inputs(t.processor, images, QUESTION)
    groups = t.family.visual_groups(t.model, inputs)
    assert [(g.kind, g.unit, g.name) for g in groups] == [("image", 0, "base"), ("image", 0, "tiles"),
                                                          ("image", 1, "base"), ("image", 1, "tiles")]
    assert [g.grid for g in groups] == [(1, 6, 6), (1, 10, 12), (1, 6, 6), (1, 12, 4)]  # by hand (module top)
    processor = t.processor
    tile = inputs["pixel_values"].shape[-1]
    runs = 0
    for i, (height, width) in enumerate(inputs["image_sizes"].tolist()):
        best = select_best_resolution([height, width], processor.image_processor.image_grid_pinpoints)
        side = tile // processor.patch_size
        unpadded, rows = processor._get_unpadded_features(height, width, side, side, best[0] // tile, best[1] // tile)
        base_group, tiles = groups[2 * i], groups[2 * i + 1]
        assert base_group.count == BASE and tiles.count == unpadded and tiles.grid[1] == rows
        runs += BASE + unpadded + rows
    ids = inputs["input_ids"][0]
    assert int((ids == t.model.config.image_token_id).sum()) == runs
    newlines = newline_positions(t, inputs, groups)
    assert len(newlines) == 10 + 12
    for g in groups[1::2]:  # each tile row ends one token before a newline
        rows = g.positions.view(g.grid[1], g.grid[2])
        assert set((rows[:, -1] + 1).tolist()) <= set(newlines)
    embeds = encode(t.model, t.family, inputs).inputs_embeds[0]
    newline = t.model.model.image_newline
    assert torch.equal(embeds[newlines], newline.expand(len(newlines), -1))
    grid = torch.cat([g.positions for g in groups])
    assert not (embeds[grid] == newline).all(dim=1).any()


def test_each_tile_patch_lands_on_its_group_token(nxt):
    """With the tower's attention silenced (no mixing between patches), changing one 14 px patch of one crop
    the tower sees changes exactly the token the family places there: base crop patch (r, c) -> base token
    r * 6 + c; tile crop (tr, tc) patch (r, c) -> stitched cell (6 tr + r, 6 tc + c), which unpadding moves up one
    row (WIDE: rows 1..10 of 12 kept); a patch of a cut row changes no token."""
    model = copy.deepcopy(nxt.model)
    with torch.no_grad():
        for layer in model.model.vision_tower.encoder.layers:
            layer.self_attn.out_proj.weight.zero_()
            layer.self_attn.out_proj.bias.zero_()
    inputs = nxt.family.build_inputs(nxt.processor, [random_image(5, WIDE)], QUESTION)
    base_group, tiles = nxt.family.visual_groups(model, inputs)
    start = int(base_group.positions[0])

    def changed(crop, r, c):
        pixels = inputs["pixel_values"].clone()
        pixels[0, crop, :, 14 * r:14 * r + 14, 14 * c:14 * c + 14] += 1.0
        with torch.inference_mode():
            a = model.model.get_image_features(inputs["pixel_values"], inputs["image_sizes"]).pooler_output[0]
            b = model.model.get_image_features(pixels, inputs["image_sizes"]).pooler_output[0]
        return ((a - b).abs().amax(dim=1) > 1e-6).nonzero().flatten().tolist()

    assert changed(0, 2, 3) == [int(base_group.positions[2 * 6 + 3]) - start]
    # crop 4 = tile (1, 1), patch (2, 3) -> stitched (8, 9) -> unpadded row 7, column 9
    assert changed(4, 2, 3) == [int(tiles.positions[7 * 12 + 9]) - start]
    # crop 2 = tile (0, 1), patch (0, 5) -> stitched (0, 11): the cut top row
    assert changed(2, 0, 5) == []
    # crop 3 = tile (1, 0), patch (5, 0) -> stitched (11, 0): the cut bottom row
    assert changed(3, 5, 0) == []


def test_each_video_patch_lands_on_its_pooled_token(vid):
    """Frame f, patch (r, c) of the 6 x 6 grid -> pooled token f * 9 + (r // 2) * 3 + c // 2 of the video group."""
    model = copy.deepcopy(vid.model)
    with torch.no_grad():
        for layer in model.model.vision_tower.encoder.layers:
            layer.self_attn.out_proj.weight.zero_()
            layer.self_attn.out_proj.bias.zero_()
    inputs = vid.family.build_inputs(vid.processor, frames(4), QUESTION, kind="video")
    (group,) = vid.family.visual_groups(model, inputs, kind="video")
    assert group.grid == (4, 3, 3) and group.kind == "video" and group.unit is None
    assert (inputs["input_ids"][0][group.positions] == model.config.video_token_id).all()
    assert int((inputs["input_ids"][0] == model.config.video_token_id).sum()) == 36
    assert not (inputs["input_ids"][0] == model.config.image_token_id).any()
    pixels = inputs["pixel_values_videos"].clone()
    pixels[0, 2, :, 14 * 3:14 * 4, 14 * 4:14 * 5] += 1.0  # frame 2, patch (3, 4) -> pooled (1, 2)
    with torch.inference_mode():
        a = model.model.get_video_features(inputs["pixel_values_videos"]).pooler_output[0]
        b = model.model.get_video_features(pixels).pooler_output[0]
    assert ((a - b).abs().amax(dim=1) > 1e-6).nonzero().flatten().tolist() == [2 * 9 + 1 * 3 + 2]


def test_records_touch_only_group_positions(nxt):
    """Every method's kept set and stages index the groups' tokens only; the sequence after the pruning layer is
    the prompt minus the pruned grid tokens (the newline rows stay)."""
    image = random_image(6, WIDE)
    inputs = nxt.family.build_inputs(nxt.processor, [image], QUESTION)
    groups = nxt.family.visual_groups(nxt.model, inputs)
    grid = torch.cat([g.positions for g in groups])
    newlines = set(newline_positions(nxt, inputs, groups))
    n, length = len(grid), inputs["input_ids"].shape[1]
    assert n == BASE + 120 and length - n > len(newlines) == 10
    names = [m for m in METHODS if m != "none" and "vision" not in METHODS[m].needs and applies_to(m, "image")]
    records = compare(nxt.model, nxt.processor, nxt.family, [image], QUESTION, methods=names, keep=15, prune_layer=2,
                      max_new_tokens=2)
    assert records["none"].visual_tokens == n and records["none"].text_tokens == length - n
    for name in names:
        r = records[name]
        assert len(r.kept_indices) == 15 and set(r.kept_indices) <= set(range(n)), name
        assert not newlines & set(grid[r.kept_indices].tolist())
        (stage,) = r.stages
        assert len(stage.scores) == n and set(stage.keep_indices) <= set(range(n))
        assert r.tokens_per_layer == [length] * 2 + [length - (n - 15)] * 2, name
        assert r.visual_per_layer == [n, n, 15, 15]


def test_budget_per_image_over_base_and_tiles_and_per_grid(nxt):
    """budget_per "image": an image's budget over its base and tile grids, split in proportion to their sizes
    (largest remainders); "grid": every grid its own."""
    images = [random_image(7, WIDE), random_image(8, TALL)]
    counts = [BASE, 120, BASE, 48]
    per_image = compare(nxt.model, nxt.processor, nxt.family, images, QUESTION, methods=["random"], keep=20,
                        prune_layer=1, max_new_tokens=1, diagnostics=False)["random"]
    # 20 x 36 / 156 = 4.6 and 15.4 -> 5 + 15; 20 x 36 / 84 = 8.6 and 11.4 -> 9 + 11
    assert per_image.stages[0].keep_counts == [5, 15, 9, 11]
    assert per_image.budget["keep_per_group"] == [5, 15, 9, 11]
    offsets = [0, 36, 156, 192, 240]
    kept = per_image.kept_indices
    assert [sum(offsets[g] <= k < offsets[g + 1] for k in kept) for g in range(4)] == [5, 15, 9, 11]
    per_grid = compare(nxt.model, nxt.processor, nxt.family, images, QUESTION, methods=["random"], keep=20,
                       budget_per="grid", prune_layer=1, max_new_tokens=1, diagnostics=False)["random"]
    assert per_grid.stages[0].keep_counts == [20, 20, 20, 20]
    ratio = compare(nxt.model, nxt.processor, nxt.family, images, QUESTION, methods=["random"], keep=0.5,
                    prune_layer=1, max_new_tokens=1, diagnostics=False)["random"]
    assert ratio.stages[0].keep_counts == [18, 60, 18, 24] and sum(counts) == 240


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("which, kind", [("nxt", "image"), ("vid", "video")])
def test_every_tensor_the_engine_makes_names_its_device(which, kind, schedule, request):
    """As tests/test_devices.py: once the model and its inputs exist, the default device is `meta`; every method
    the family can run, in every schedule, gives the same answers and kept sets (the family's visual_groups
    runs inside encode). VisionZip is refused with a sentence: these families have no CLS attention on their
    grids."""
    t = request.getfixturevalue(which)
    images = [random_image(9, WIDE)] if kind == "image" else frames(4, seed=70)
    assert t.family.vision_attention(t.model) is None and t.family.feature_projector(t.model) is None
    names = [n for n in METHODS if "vision" not in METHODS[n].needs and applies_to(n, kind)]
    # half of each input: a budget every official schedule reaches (PyramidDrop refuses what its
    # stages cannot average)
    settings = check_settings(methods=names, keep=0.5, prune_layer=2, max_new_tokens=3, schedule=schedule)

    def every_method():
        encoded = encode(t.model, t.family, inputs, kind=kind)
        records = {n: run(t.model, t.processor, encoded, n, settings, capture=n == "none") for n in names}
        attach(records["none"], t.model, encoded, settings)
        with pytest.raises(BadInput, match=r"visionzip reads the vision encoder's \[CLS\] attention .* choose "
                                           "another method"):
            run(t.model, t.processor, encoded, "visionzip", settings)
        return records

    inputs = t.family.build_inputs(t.processor, images, QUESTION, kind=kind)
    expected = every_method()
    got = on_meta_default_device(every_method)
    for name in expected:
        assert got[name].answer_ids == expected[name].answer_ids, name
        assert got[name].kept_indices == expected[name].kept_indices, name
    assert got["none"].spectra == expected["none"].spectra
    assert got["none"].reference_scores == expected["none"].reference_scores


# ------------------------------------------------------------------------------------------ the contract, views


@pytest.mark.parametrize("which", ["nxt", "vid"])
def test_the_family_fulfils_the_contract(which, request):
    t = request.getfixturevalue(which)
    family = t.family
    assert family in models.FAMILIES and isinstance(family, base.Family)
    assert models.family_of(t.model) is family
    for name, member in vars(base.Family).items():
        if inspect.isfunction(member) and not name.startswith("_"):
            ours = list(inspect.signature(getattr(family, name)).parameters)
            theirs = [p for p in inspect.signature(member).parameters if p != "self"]
            assert ours[:len(theirs)] == theirs, name
    lm = family.text_model(t.model)
    assert isinstance(lm, base.TextModel) and len(lm.layers) == 4
    parts = family.layer_parts(t.model, 1)
    assert isinstance(parts, base.LayerParts) and parts.scaling == pytest.approx(parts.head_dim ** -0.5)
    assert family.injections(t.model, {}, []) == []
    assert family.PAPER_SCHEDULE["layers"] == (1, 11, 21) and "keep_table" not in family.PAPER_SCHEDULE


def test_model_views_lie_under_the_grids(nxt, vid):
    """Per image the base crop and the unpadded tile canvas (14 px per token); per video frame its crop. The
    canvas is the image resized into 2 x 2 tiles: its middle equals a plain resize of the image."""
    import numpy as np

    image = random_image(10, WIDE)
    for t in (nxt, vid):
        base_view, canvas = t.family.model_view(t.processor, [image])
        assert base_view.size == (84, 84) and canvas.size == (12 * 14, 10 * 14) and canvas.mode == "RGB"
        views = t.family.model_view(t.processor, [image, random_image(11, TALL)])
        assert [v.size for v in views] == [(84, 84), (168, 140), (84, 84), (4 * 14, 12 * 14)]
    # WIDE into 168 x 168: resized to 168 x 126, padded 21 px top and bottom; the canvas starts 14 px down
    reference = np.asarray(image.resize((168, 126), Image.Resampling.BICUBIC), dtype=np.float32)
    assert np.abs(np.asarray(canvas, dtype=np.float32)[7:133] - reference).mean() < 8
    clip = frames(3)
    views = nxt.family.model_view(nxt.processor, clip, kind="video")  # every frame's base, then every canvas
    groups = groups_of(nxt, clip, "video")
    assert [g.grid for g in groups] == [(3, 6, 6), (3, 12, 12)] and [g.unit for g in groups] == [0, 0]
    assert [v.size for v in views] == [(84, 84)] * 3 + [(168, 168)] * 3
    assert [v.size for v in vid.family.model_view(vid.processor, frames(4), kind="video")] == [(84, 84)] * 4


def test_a_conversation_renders_every_turn(nxt, vid):
    inputs = nxt.family.build_inputs(nxt.processor, [random_image(12, WIDE)], "is the square red ?",
                                     history=[(QUESTION, "red")])
    text = nxt.processor.tokenizer.decode(inputs["input_ids"][0])
    assert text.startswith("[INST] <image>") and text.endswith("[/INST] red </s> [INST] is the square red? [/INST]")
    inputs = vid.family.build_inputs(vid.processor, frames(2), "is the square red ?", kind="video",
                                     history=[(QUESTION, "red")])
    text = vid.processor.tokenizer.decode(inputs["input_ids"][0])
    assert text.startswith("USER : <video>")
    assert text.endswith("ASSISTANT : red </s> USER : is the square red? ASSISTANT :")


def test_bad_kind_and_a_wrong_layout_fail_clearly(nxt):
    with pytest.raises(ValueError, match="kind must be"):
        nxt.family.build_inputs(nxt.processor, [random_image(13)], QUESTION, kind="audio")
    inputs = nxt.family.build_inputs(nxt.processor, [random_image(13, WIDE)], QUESTION)
    inputs["image_sizes"] = torch.tensor([[150, 150]])  # another layout than the prompt's run
    with pytest.raises(ValueError, match="image tokens in the prompt, but the anyres layouts"):
        nxt.family.visual_groups(nxt.model, inputs)


# ------------------------------------------------------------------------------------------ entry points


@pytest.mark.slow  # the command line in a fresh process
def test_command_line_on_the_checkpoint_directory(nxt, tmp_path):
    path = tmp_path / "wide.png"
    random_image(14, WIDE).save(path)
    result = subprocess.run([sys.executable, "-m", "explorer", "--model", nxt.directory, "--image", str(path),
                             "--question", QUESTION, "--methods", "clse,fastv", "--keep", "20", "--prune-layer", "2",
                             "--max-new-tokens", "4", "--json"], capture_output=True, text=True, cwd=ROOT,
                            env=dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1"), timeout=300)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert list(out["results"]) == ["none", "clse", "fastv"]
    expected = compare(nxt.model, nxt.processor, nxt.family, [Image.open(path)], QUESTION, methods=["clse", "fastv"],
                       keep=20, prune_layer=2, max_new_tokens=4, diagnostics=False)
    for name, record in out["results"].items():
        assert [g["grid"] for g in record["groups"]] == [[1, 6, 6], [1, 10, 12]]
        assert record["visual_tokens"] == BASE + 120
        assert len(record["kept_indices"]) == (BASE + 120 if name == "none" else 20)
        assert record["kept_indices"] == expected[name].kept_indices and record["answer"] == expected[name].answer


@pytest.mark.slow  # imports lmms-eval
def test_lmms_eval_model_answers_as_the_engine(nxt):
    from explorer.eval.lmms_eval import PruningExplorer  # needs tests/requirements-lmms.txt

    lm = PruningExplorer(pretrained=nxt.directory, method="clse", keep=20, prune_layer=2)
    image = random_image(15, WIDE)
    lm.task_dict = {"tiny": {"test": {0: {"image": image}}}}
    request = SimpleNamespace(args=(QUESTION, {"max_new_tokens": 4, "until": ["\n\n"]}, lambda doc: [doc["image"]], 0,
                                    "tiny", "test"))
    (answer,) = lm.generate_until([request])
    expected = compare(nxt.model, nxt.processor, nxt.family, [image], QUESTION, methods=["clse"], keep=20,
                       prune_layer=2, max_new_tokens=4, diagnostics=False)["clse"]
    assert answer and answer == expected.answer


@pytest.mark.slow  # a real page server
def test_the_page_answers_on_the_checkpoint(nxt, tmp_path):
    from gradio_client import Client, handle_file

    from explorer.page.api import compare_arguments
    from explorer.page.panels import PANELS

    path = tmp_path / "wide.png"
    random_image(16, WIDE).save(path)
    clip = write_clip(tmp_path / "clip.webm")  # 96 x 96: 2 x 2 tiles, nothing cut
    with app_server(model=nxt.directory) as url:
        client = Client(url, verbose=False)
        outputs = client.predict(*compare_arguments(image=handle_file(str(path)), question=QUESTION,
                                                    model_id=nxt.directory, method_a="clse", method_b="fastv",
                                                    keep=20, prune_layer=2), api_name="/compare")
        video = client.predict(*compare_arguments(video=handle_file(str(clip)), question=QUESTION,
                                                  model_id=nxt.directory, method_a="clse", method_b="uniform",
                                                  keep=0.25), api_name="/compare")[len(PANELS)]
    payload = outputs[len(PANELS)]
    assert list(payload["results"]) == ["none", "clse", "fastv"]
    expected = compare(nxt.model, nxt.processor, nxt.family, [Image.open(path)], QUESTION, methods=["clse", "fastv"],
                       keep=20, prune_layer=2, diagnostics=False)
    for name, record in payload["results"].items():
        assert record["answer_ids"] and record["answer"] == expected[name].answer, name
        assert [g["grid"] for g in record["groups"]] == [[1, 6, 6], [1, 10, 12]]
        assert len(record["kept_indices"]) == (BASE + 120 if name == "none" else 20)
    assert list(video["results"]) == ["none", "clse", "uniform"]
    for name, record in video["results"].items():  # 4 frames as images: one budget over the clip's two grids
        assert record["answer_ids"], name
        assert [(g["kind"], g["grid"]) for g in record["groups"]] == [("video", [4, 6, 6]), ("video", [4, 12, 12])]
        assert len(record["kept_indices"]) == (720 if name == "none" else 180)  # 0.25 x (144 + 576): 36 + 144
    assert video["results"]["clse"]["stages"][0]["keep_counts"] == [36, 144]
