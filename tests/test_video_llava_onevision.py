"""Video-LLaVA and LLaVA-OneVision on tiny random-weight checkpoints built in code with their real processors
(tests/tiny_video_llava_onevision.py), saved with save_pretrained and reloaded with models.load: the engine
against the stock model, the visual groups against the processor's and the model's own layout, the device
trap, the command line, lmms-eval and the page."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.image_processing_utils import select_best_resolution

import models
from explorer.core.compare import compare
from explorer.core.diagnostics import attach
from explorer.core.engine import encode, run
from explorer.core.settings import SCHEDULES, check_settings
from explorer.methods.registry import METHODS, applies_to
from models import llava_onevision, video_llava
from models.base import BadInput
from tests.conftest import (ROOT, WORDS, no_cache_logits, on_meta_default_device, random_image, stock_generate,
                            write_clip)
from tests.tiny_video_llava_onevision import (onevision_processor, onevision_tokenizer, tiny_onevision,
                                              tiny_video_llava, video_llava_processor, video_llava_tokenizer)

QUESTION = "what color is the circle ?"
WIDE = (140, 100)  # OneVision: a 2 x 2 tile layout (10 x 10 patches) whose unpadding cuts it to 8 x 10
LARGE = (280, 280)  # OneVision: 4 x 4 tiles (20 x 20 patches), beyond anyres_max_9: downscaled to 15 x 15
FRAMES = 3  # not Video-LLaVA's 8: its processor takes any count
BUILDERS = {"video_llava": (video_llava_tokenizer, video_llava_processor, tiny_video_llava, video_llava),
            "onevision": (onevision_tokenizer, onevision_processor, tiny_onevision, llava_onevision)}
# (family, input) cases: what each family's layout has to get right
CASES = {"video_llava image": ("video_llava", "image", [random_image(0)]),
         "video_llava video": ("video_llava", "video", [random_image(10 + i) for i in range(FRAMES)]),
         "onevision wide": ("onevision", "image", [random_image(1, WIDE)]),
         "onevision large": ("onevision", "image", [random_image(2, LARGE)]),
         "onevision two images": ("onevision", "image", [random_image(3, WIDE), random_image(4)]),
         "onevision video": ("onevision", "video", [random_image(20 + i) for i in range(FRAMES)])}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Both tiny checkpoints, written in the hub layout and loaded back as a hub checkpoint is."""
    out = {}
    for name, (make_tokenizer, make_processor, make_model, family) in BUILDERS.items():
        tokenizer = make_tokenizer(WORDS)
        model = make_model(tokenizer)
        with torch.no_grad():  # random weights: keep the end token from ending answers after a token or two
            model.lm_head.weight[tokenizer.eos_token_id] = 0.0
        directory = str(tmp_path_factory.mktemp(name))
        model.save_pretrained(directory)
        make_processor(tokenizer).save_pretrained(directory)
        loaded, processor, loaded_family = models.load(directory, device="cpu", dtype="float32")
        assert loaded_family is family and type(loaded) is type(model)
        assert processor.chat_template and type(processor.video_processor).__name__.endswith("VideoProcessor")
        out[name] = SimpleNamespace(model=loaded, processor=processor, family=family, directory=directory)
    return out


def within(ours, theirs, ulps, dtype=torch.float32):
    """Logits equal to `ulps` units of the dtype's resolution at their scale."""
    scale = max(theirs.abs().max().item(), 1.0)
    return (ours - theirs).abs().max().item() <= ulps * torch.finfo(dtype).eps * scale


def case(saved, name):
    family_name, kind, images = CASES[name]
    return saved[family_name], kind, images


def budget_all(groups):
    """The keep that keeps every token: the largest unit's total (the cases' units are all that size)."""
    units = {}
    for i, g in enumerate(groups):
        key = g.unit if g.unit is not None else ("own", i)
        units[key] = units.get(key, 0) + g.count
    assert len(set(units.values())) == 1
    return next(iter(units.values()))


# ------------------------------------------------------------------------------------------ equivalence


@pytest.mark.parametrize("name", CASES)
def test_keep_all_equals_the_stock_model(saved, name):
    t, kind, images = case(saved, name)
    stock_ids, stock_logits = stock_generate(t, images, kind)
    groups = t.family.visual_groups(t.model, t.family.build_inputs(t.processor, images, QUESTION, kind=kind))
    records = compare(t.model, t.processor, t.family, images, QUESTION, methods=["clse", "fastv"],
                      keep=budget_all(groups), prune_layer=2, kind=kind, max_new_tokens=5, keep_logits=True)
    for method, record in records.items():
        assert record.answer_ids == stock_ids, method
        assert len(record.step_logits) == len(stock_logits) == 5
        for ours, theirs in zip(record.step_logits, stock_logits):  # the same stock layers on the same tensors
            assert within(ours, theirs, 2), method
        assert record.kept_indices == list(range(sum(g.count for g in groups)))


def test_answers_depend_on_the_image(saved):
    """The large text init makes the tiny models look: another image or clip gives another answer."""
    for name in ("video_llava video", "onevision wide"):
        t, kind, images = case(saved, name)
        other = [random_image(100 + i, im.size) for i, im in enumerate(images)]
        assert stock_generate(t, images, kind)[0] != stock_generate(t, other, kind)[0], name


@pytest.mark.parametrize("name", ["video_llava video", "onevision wide"])
def test_keep_all_equals_stock_generate_in_bfloat16(saved, name):
    """Logits within 2 units of bfloat16's resolution at their scale (as tests/test_devices.py)."""
    family_name, kind, images = CASES[name]
    model, processor, family = models.load(saved[family_name].directory, device="cpu", dtype="bfloat16")
    t = SimpleNamespace(model=model, processor=processor, family=family)
    ids, logits = stock_generate(t, images, kind, max_new_tokens=4)
    groups = family.visual_groups(model, family.build_inputs(processor, images, QUESTION, kind=kind))
    records = compare(model, processor, family, images, QUESTION, methods=["clse"], keep=budget_all(groups),
                      prune_layer=2, kind=kind, max_new_tokens=4, keep_logits=True)
    for record in records.values():
        assert record.dtype == "bfloat16" and record.answer_ids == ids
        for ours, theirs in zip(record.step_logits, logits):
            assert within(ours, theirs, 2, torch.bfloat16)


@pytest.mark.parametrize("early_kv", ["keep", "prune"])
@pytest.mark.parametrize("name, method", [("video_llava video", "clse"), ("onevision wide", "clse"),
                                          ("onevision video", "fastv")])
def test_pruned_cached_decode_matches_a_no_cache_recompute(saved, name, method, early_kv):
    """conftest.no_cache_logits marks only the groups' positions as visual, so the per-frame CLS (Video-LLaVA)
    and the newline rows (OneVision) stay in every layer as context, as the engine must keep them. The recompute
    orders its reductions differently (one masked attention over everything, no cache): up to a few dozen float32
    units at the logits' scale here (measured: 21 at most), where a wrong kept set or a dropped context row moves
    the logits by 0.1 or more."""
    t, kind, images = case(saved, name)
    encoded = encode(t.model, t.family, t.family.build_inputs(t.processor, images, QUESTION, kind=kind), kind=kind)
    keep = 7
    record = run(t.model, t.processor, encoded, method, keep=keep, prune_layer=2, max_new_tokens=4,
                 early_kv=early_kv, keep_logits=True)
    kept_positions = torch.cat([g.positions for g in encoded.groups])[record.kept_indices]
    assert record.early_kv == early_kv and len(record.kept_indices) == keep
    with torch.inference_mode():
        reference = no_cache_logits(t, encoded, kept_positions, 2, record.answer_ids, early_kv)
    assert len(record.step_logits) == len(reference) == 4
    for ours, theirs in zip(record.step_logits, reference):
        assert within(ours, theirs, 64)


# ------------------------------------------------------------------------------------------ the layout


def placed(t, inputs, kind):
    """(encoded, the positions of the family's visual token id, the positions in no group)."""
    encoded = encode(t.model, t.family, inputs, kind=kind)
    token = t.model.config.video_token_id if kind == "video" else t.model.config.image_token_id
    positions = (inputs["input_ids"][0] == token).nonzero().flatten()
    grouped = torch.cat([g.positions for g in encoded.groups])
    context = positions[~torch.isin(positions, grouped)]
    assert torch.isin(grouped, positions).all() and len(set(grouped.tolist())) == len(grouped)
    return encoded, positions, context


def test_video_llava_groups_leave_every_frames_cls_as_context(saved):
    t = saved["video_llava"]
    side = 56 // 14
    inputs = t.family.build_inputs(t.processor, [random_image(0)], QUESTION)
    encoded, positions, context = placed(t, inputs, "image")
    assert [(g.kind, g.grid) for g in encoded.groups] == [("image", (1, side, side))]
    assert len(positions) == side * side and len(context) == 0  # the image tower's CLS is dropped

    frames = CASES["video_llava video"][2]
    inputs = t.family.build_inputs(t.processor, frames, QUESTION, kind="video")
    encoded, positions, context = placed(t, inputs, "video")
    assert [(g.kind, g.grid) for g in encoded.groups] == [("video", (FRAMES, side, side))]
    assert len(positions) == FRAMES * (1 + side * side)  # processing_video_llava.py: CLS + patches per frame
    assert context.tolist() == positions[::1 + side * side].tolist()  # the first token of every frame
    with torch.inference_mode():  # ... which is the video tower's CLS feature, and the group its patches
        features = t.model.model.get_video_features(inputs["pixel_values_videos"]).pooler_output
    embeds = encoded.inputs_embeds[0]
    assert torch.equal(embeds[context], features[:, 0])
    assert torch.equal(embeds[encoded.groups[0].positions], features[:, 1:].flatten(0, 1))
    # pruned: the CLS tokens are never in a kept or pruned set, and stay in the sequence
    record = run(t.model, t.processor, encoded, "clse", keep=9, prune_layer=3, max_new_tokens=2)
    n, length = encoded.groups[0].count, inputs["input_ids"].shape[1]
    assert record.visual_tokens == n == FRAMES * side * side and max(record.kept_indices) < n
    assert record.tokens_per_layer == [length] * 3 + [length - (n - 9)]
    views = t.family.model_view(t.processor, frames, kind="video")  # one per frame, as the video tower saw it
    assert [v.size for v in views] == [(56, 56)] * FRAMES
    crop = frames[0].resize((72, 56), Image.Resampling.BICUBIC).crop((8, 0, 64, 56))  # shortest edge, centre
    assert np.abs(np.asarray(views[0], dtype=np.float32) - np.asarray(crop, dtype=np.float32)).mean() < 2


@pytest.mark.parametrize("name", ["onevision wide", "onevision large"])
def test_onevision_groups_are_the_base_and_the_unpadded_tiles(saved, name):
    t, kind, images = case(saved, name)
    processor, side = t.processor, 70 // 14
    inputs = t.family.build_inputs(processor, images, QUESTION)
    encoded, positions, context = placed(t, inputs, kind)
    # the processor's own arithmetic (processing_llava_onevision.py) for this image
    height, width = inputs["image_sizes"][0].tolist()
    best = select_best_resolution([height, width], processor.image_processor.image_grid_pinpoints)
    rows, columns = best[0] // 70, best[1] // 70
    unpadded, newlines = processor._get_unpadded_features(height, width, side, side, rows, columns)
    assert len(positions) == processor._get_number_of_features(height, width, 70, 70) == side**2 + unpadded + newlines
    base, tiles = encoded.groups
    assert (base.name, base.grid, base.unit) == ("base", (1, side, side), 0)
    assert (tiles.name, tiles.unit) == ("tiles", 0) and tiles.grid == (1, newlines, unpadded // newlines)
    assert tiles.grid == {"onevision wide": (1, 8, 10), "onevision large": (1, 15, 15)}[name]
    assert base.count + tiles.count == side**2 + unpadded  # every prunable token, no newline
    # the rows in no group are exactly the model's image_newline rows of the packed features
    with torch.inference_mode():
        packed = t.model.model.get_image_features(inputs["pixel_values"], inputs["image_sizes"],
                                                  batch_num_images=inputs["batch_num_images"]).pooler_output[0]
    is_newline = (packed == t.model.model.image_newline).all(dim=-1)
    assert context.tolist() == positions[is_newline].tolist() and len(context) == newlines
    assert context.tolist() == [int(positions[side**2 + (r + 1) * (tiles.grid[2] + 1) - 1])
                                for r in range(newlines)]  # the end of every tile row
    # pruned with one budget over the image: the sequence after K is the prompt minus the pruned tokens
    record = run(t.model, t.processor, encoded, "clse", keep=12, prune_layer=1, max_new_tokens=2)
    n, length = base.count + tiles.count, inputs["input_ids"].shape[1]
    assert sum(record.stages[0].keep_counts) == 12 and record.visual_tokens == n
    assert record.tokens_per_layer == [length] + [length - (n - 12)] * 3
    views = t.family.model_view(processor, images)
    assert [v.size for v in views] == [(side * 14, side * 14), (tiles.grid[2] * 14, tiles.grid[1] * 14)]
    if name == "onevision wide":  # 140 x 100 pasted 20 px down a 140 x 140 canvas; unpadding cut 1 patch (14 px)
        view = np.asarray(views[1], dtype=np.float32)
        assert np.abs(view[6:106] - np.asarray(images[0], dtype=np.float32)).mean() < 1
        assert np.abs(view[:6]).std() < 1  # padding only above the image


def test_onevision_two_images_and_video(saved):
    t = saved["onevision"]
    side, pooled = 70 // 14, 3  # ceil(5 / 2): apply_pooling
    images = CASES["onevision two images"][2]
    inputs = t.family.build_inputs(t.processor, images, QUESTION)
    assert inputs["batch_num_images"].tolist() == [2]  # the processor's multi-image path: one tile each
    encoded, positions, context = placed(t, inputs, "image")
    assert [(g.grid, g.unit, g.name) for g in encoded.groups] == [((1, side, side), 0, ""), ((1, side, side), 1, "")]
    assert context.tolist() == [int(positions[side**2]), int(positions[-1])]  # one newline after each
    frames = CASES["onevision video"][2]
    inputs = t.family.build_inputs(t.processor, frames, QUESTION, kind="video")
    encoded, positions, context = placed(t, inputs, "video")
    assert [(g.kind, g.grid) for g in encoded.groups] == [("video", (FRAMES, pooled, pooled))]
    assert len(positions) == FRAMES * pooled**2 + 1 and context.tolist() == [int(positions[-1])]
    assert torch.equal(encoded.inputs_embeds[0, context[0]], t.model.model.image_newline)
    assert t.model.config.video_token_id != t.model.config.image_token_id
    record = run(t.model, t.processor, encoded, "uniform", keep=9, prune_layer=3, max_new_tokens=2)
    n, length = FRAMES * pooled**2, inputs["input_ids"].shape[1]
    assert record.tokens_per_layer == [length] * 3 + [length - (n - 9)]
    assert [sum(f * 9 <= k < (f + 1) * 9 for k in record.kept_indices) for f in range(FRAMES)] == [3, 3, 3]
    assert len(t.family.model_view(t.processor, frames, kind="video")) == FRAMES


@pytest.mark.parametrize("name", ["video_llava image", "video_llava video", "onevision wide", "onevision video"])
def test_official_prompt_and_a_conversation_keep_the_layout(saved, name):
    """prompt "official" (Video-LLaVA's llava_v1, OneVision's qwen_1_5, both with a system turn) and an earlier
    turn (history) change the text around the media, not the groups; the images stay in the first turn."""
    t, kind, images = case(saved, name)
    history = [("is the square red ?", "no")]
    chat = t.family.build_inputs(t.processor, images, QUESTION, kind=kind)
    groups = t.family.visual_groups(t.model, chat)
    for prompt in ("chat", "official"):
        inputs = t.family.build_inputs(t.processor, images, QUESTION, kind=kind, prompt=prompt, history=history)
        text = t.processor.tokenizer.decode(inputs["input_ids"][0])
        assert ("helpful" in text) == (prompt == "official")  # the system turn
        assert text.index("<") < text.index("square") < text.index("no") < text.rindex("circle")
        ours = t.family.visual_groups(t.model, inputs)
        assert [(g.grid, g.count) for g in ours] == [(g.grid, g.count) for g in groups]
        assert int(ours[0].positions[0]) < int((inputs["input_ids"][0] == t.processor.tokenizer.convert_tokens_to_ids(
            "square")).nonzero()[0])
    records = compare(t.model, t.processor, t.family, images, QUESTION, methods=["clse"], keep=4, kind=kind,
                      prompt="official", max_new_tokens=2, diagnostics=False)
    assert records["clse"].settings["prompt"] == "official" and len(records["clse"].kept_indices) == 4


def test_defaults_and_the_papers_video_budget():
    assert video_llava.DEFAULTS["video"] == {"ref_layer": 2, "prune_layer": 3, "early_kv": "keep"}
    assert video_llava.DEFAULTS["image"] == {"ref_layer": 0, "prune_layer": 1, "early_kv": "prune"}
    assert video_llava.VIDEO_PAPER_BUDGET == 194 and video_llava.VIDEO_PAPER_TOKENS == 8 * 16 * 16
    from explorer.core.plan import plan

    video = [SimpleNamespace(count=video_llava.VIDEO_PAPER_TOKENS, unit=None)]
    settings = check_settings(methods=["clse"], keep=video_llava.VIDEO_PAPER_BUDGET, schedule="official")
    the_plan = plan(video, settings, 32, video_llava, "video", official=METHODS["clse"].official)
    # at one real cost: 3 layers of 2048 tokens alone average 192 over 32, so 2 kept tokens average 193.8
    assert the_plan.stages == [(3, [2])] and the_plan.ref_layer == 2 and the_plan.early_kv == "keep"
    the_paper = plan(video, check_settings(methods=["clse"], keep=video_llava.VIDEO_PAPER_BUDGET, prune_layer=3),
                     32, video_llava, "video")
    assert the_paper.stages == [(3, [194])]  # the paper's count kept after K: the controlled schedule
    assert llava_onevision.vision_attention(None) is None


# ------------------------------------------------------------------------------------------ devices


def refused(t, encoded, settings, name):
    """VisionZip where the model has no CLS score on the decoder's grid, EVS on an image: a BadInput with a
    sentence."""
    with pytest.raises(BadInput, match="choose another method") as error:
        run(t.model, t.processor, encoded, name, settings)
    assert str(error.value).endswith("choose another method") and " " in str(error.value)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("name", ["video_llava image", "onevision wide"])
def test_every_tensor_the_engine_makes_names_its_device(saved, name, schedule):
    """As tests/test_devices.py: once the model and its inputs exist the default device becomes `meta`, so any
    tensor the engine made without naming its device fails the run; every method of the registry, in every
    schedule (VisionZip and EVS where they cannot apply: refused with a sentence)."""
    t, kind, images = case(saved, name)
    inputs = t.family.build_inputs(t.processor, images, QUESTION, kind=kind)
    # half of each input: a budget every official schedule reaches (PyramidDrop refuses what its
    # stages cannot average)
    settings = check_settings(methods=list(METHODS), keep=0.5, prune_layer=2, max_new_tokens=3, schedule=schedule)

    def every_method():
        encoded = encode(t.model, t.family, inputs, kind=kind)
        records = {}
        for method in METHODS:
            if ("vision" in METHODS[method].needs and not encoded.vision_scores) or not applies_to(method, kind):
                refused(t, encoded, settings, method)
                continue
            records[method] = run(t.model, t.processor, encoded, method, settings, capture=method == "none")
        attach(records["none"], t.model, encoded, settings)
        return records

    expected = every_method()
    assert ("visionzip" in expected) == (t.family is video_llava)  # the image tower's CLS; SigLIP has none
    got = on_meta_default_device(every_method)
    for method in expected:
        assert got[method].answer_ids == expected[method].answer_ids, method
        assert got[method].kept_indices == expected[method].kept_indices, method
    assert got["none"].spectra == expected["none"].spectra


def test_visionzip_refuses_video_llavas_video(saved):
    t, kind, frames = case(saved, "video_llava video")
    encoded = encode(t.model, t.family, t.family.build_inputs(t.processor, frames, QUESTION, kind=kind), kind=kind)
    assert encoded.vision_scores is None
    refused(t, encoded, check_settings(methods=["visionzip"], keep=5), "visionzip")


# ------------------------------------------------------------------------------------------ entry points


@pytest.mark.slow  # the command line in fresh processes
def test_command_line_on_both_checkpoints(saved, tmp_path):
    """`python -m explorer --model DIR --json`: OneVision on an image, Video-LLaVA on a video file (both at once)."""
    image = tmp_path / "wide.png"
    CASES["onevision wide"][2][0].save(image)
    clip = write_clip(tmp_path / "clip.webm")
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    common = ["--question", QUESTION, "--methods", "clse,fastv", "--keep", "9", "--max-new-tokens", "3", "--json"]
    commands = {"onevision": ["--image", str(image)], "video_llava": ["--video-file", str(clip), "--frames", "3"]}
    running = {name: subprocess.Popen([sys.executable, "-m", "explorer", "--model", saved[name].directory, *args,
                                       *common], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      cwd=ROOT, env=env) for name, args in commands.items()}
    outputs = {name: process.communicate(timeout=300) for name, process in running.items()}
    for name, (stdout, stderr) in outputs.items():
        assert running[name].returncode == 0, stderr
        out = json.loads(stdout)
        assert out["model"] == saved[name].directory and list(out["results"]) == ["none", "clse", "fastv"]
        for method, record in out["results"].items():
            assert len(record["kept_indices"]) == (record["visual_tokens"] if method == "none" else 9)
    onevision = json.loads(outputs["onevision"][0])["results"]
    assert [g["grid"] for g in onevision["none"]["groups"]] == [[1, 5, 5], [1, 8, 10]]
    t = saved["onevision"]
    expected = compare(t.model, t.processor, t.family, CASES["onevision wide"][2], QUESTION, methods=["clse"],
                       keep=9, max_new_tokens=3, diagnostics=False)["clse"]
    assert onevision["clse"]["kept_indices"] == expected.kept_indices
    assert onevision["clse"]["answer"] == expected.answer
    video = json.loads(outputs["video_llava"][0])["results"]
    assert video["none"]["groups"][0]["grid"] == [3, 4, 4] and video["none"]["visual_tokens"] == 48
    assert video["clse"]["prune_layer"] == 3 and video["clse"]["ref_layer"] == 2  # the family's video K and L


@pytest.mark.slow  # imports lmms-eval
@pytest.mark.parametrize("name", ["video_llava video", "onevision wide"])
def test_lmms_eval_answers_as_the_page_engine(saved, name, tmp_path):
    from lmms_eval.api.instance import Instance

    from explorer.eval.lmms_eval import PruningExplorer, media_of

    t, kind, images = case(saved, name)
    lm = PruningExplorer(pretrained=t.directory, method="clse", keep=6, device="cpu")
    visuals = images if kind == "image" else None
    if kind == "video":  # lmms-eval's video convention: one path, sampled by the explorer's reader
        visuals = [str(write_clip(tmp_path / "clip.webm"))]
    doc = {"question": QUESTION}
    lm.task_dict = {"task": {"test": {0: doc}}}
    gen_kwargs = {"max_new_tokens": 4, "until": ["\n\n"]}
    request = Instance("generate_until", (QUESTION, gen_kwargs, lambda d: visuals, 0, "task", "test"), idx=0,
                       metadata={"task": "task", "doc_id": 0, "repeats": 1})
    answer, = lm.generate_until([request])
    media, media_kind = media_of(visuals, lm.settings.frames)
    assert media_kind == kind
    expected = compare(t.model, t.processor, t.family, media, QUESTION, lm.request_settings(gen_kwargs),
                       kind=kind, diagnostics=False)["clse"]
    assert answer == expected.answer and answer


@pytest.fixture(scope="module")
def page(saved, tmp_path_factory):
    from tests.conftest import app_server

    log = tmp_path_factory.mktemp("server") / "app.log"
    with app_server(model=saved["onevision"].directory, log_path=str(log)) as url:
        yield url


@pytest.mark.slow  # a real page server
def test_the_page_compares_on_onevision(saved, page, tmp_path):
    from gradio_client import Client, handle_file

    from explorer.page.api import compare_arguments

    path = tmp_path / "wide.png"
    CASES["onevision wide"][2][0].save(path)
    directory = saved["onevision"].directory
    outputs = Client(page, verbose=False).predict(
        *compare_arguments(image=handle_file(str(path)), question=QUESTION, method_a="clse", method_b="fastv",
                           keep=9, prune_layer=2, model_id=directory), api_name="/compare")
    payload = outputs[-3]
    assert payload["model"] == os.path.basename(directory) and directory not in str(payload)  # a name, not a path
    assert list(payload["results"]) == ["none", "clse", "fastv"]
    none = payload["results"]["none"]
    assert [g["grid"] for g in none["groups"]] == [[1, 5, 5], [1, 8, 10]] and none["visual_tokens"] == 105
    for method in ("clse", "fastv"):
        record = payload["results"][method]
        assert len(record["kept_indices"]) == 9 and record["answer_ids"]
        assert sum(record["stages"][0]["keep_counts"]) == 9  # one budget over the image's base and tiles
