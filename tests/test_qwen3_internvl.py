"""Qwen3-VL and InternVL3 (HF-native) families on tiny random-weight checkpoints built in code with their real
processors (tests/tiny_qwen3_internvl.py), saved in the hub layout and loaded back with models.load: keep-all
against the stock generate, pruned cached decoding against a no-cache recompute (with DeepStack's injections),
the visual groups against the processors' layouts and timestamps, the meta-device trap, the command line,
lmms-eval and the page."""

import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch

import models
from explorer.core.compare import compare
from explorer.core.diagnostics import attach
from explorer.core.engine import encode, run
from explorer.core.settings import SCHEDULES, check_settings
from explorer.methods.registry import METHODS, applies_to
from explorer.serve.launch import app_server
from models import internvl, qwen3_vl
from models.base import BadInput
from tests.conftest import no_cache_logits, on_meta_default_device, random_image, stock_generate, write_clip
from tests.tiny_qwen3_internvl import TinyInternVL, TinyQwen3, save

QUESTION = "what color is the circle ?"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAMILIES = ["qwen3_vl", "internvl"]


@dataclass
class Loaded:
    directory: str
    model: object
    processor: object
    family: object

    @property
    def tokenizer(self):
        return self.processor.tokenizer


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Both tiny checkpoints written in the hub layout: {family: directory}."""
    return {"qwen3_vl": save(TinyQwen3(), tmp_path_factory.mktemp("qwen3_vl")),
            "internvl": save(TinyInternVL(), tmp_path_factory.mktemp("internvl"))}


class Background:
    """The slow subprocesses of the entry-point tests, started once the checkpoints exist so that they start up
    while the in-process tests run: the command line on each checkpoint (an image, --json) and the real page
    serving the Qwen3-VL checkpoint (app_server entered in a thread; page_url waits for it)."""

    def __init__(self, checkpoints, folder):
        image = folder / "wide.png"
        random_image(7, (300, 200)).save(image)
        env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
        self.cli = {name: subprocess.Popen(
            [sys.executable, "-m", "explorer", "--model", directory, "--image", str(image), "--question", QUESTION,
             "--json", "--methods", "clse,fastv", "--keep", "0.5", "--max-new-tokens", "3"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
            for name, directory in checkpoints.items()}
        self.page, self.url, self.error = app_server(model=checkpoints["qwen3_vl"]), None, None
        self.thread = threading.Thread(target=self.enter, daemon=True)
        self.thread.start()

    def enter(self):
        try:
            self.url = self.page.__enter__()
        except BaseException as error:  # noqa: BLE001  (raised in the test that asks for the page)
            self.error = error

    def page_url(self):
        self.thread.join()
        if self.error:
            raise self.error
        return self.url

    def close(self):
        for process in self.cli.values():
            if process.poll() is None:
                process.kill()
            process.communicate()
        self.thread.join()
        if self.url:
            self.page.__exit__(None, None, None)


@pytest.fixture(scope="module", autouse=True)
def background(checkpoints, tmp_path_factory):
    started = Background(checkpoints, tmp_path_factory.mktemp("background"))
    yield started
    started.close()


@pytest.fixture(scope="module")
def loaded(checkpoints):
    """Each checkpoint loaded as a hub one is (models.load), in float32 and in bfloat16."""
    out = {}
    for name, directory in checkpoints.items():
        out[name] = Loaded(directory, *models.load(directory, device="cpu", dtype="float32"))
        out[name, torch.bfloat16] = Loaded(directory, *models.load(directory, device="cpu", dtype="bfloat16"))
    return out


@pytest.fixture(params=FAMILIES)
def each(request, loaded):
    return loaded[request.param]


def frames(n=4, size=(300, 200), seed=50):
    return [random_image(seed + i, size) for i in range(n)]


def media(kind, seed=0):
    return [random_image(seed, (300, 200))] if kind == "image" else frames(4, seed=50 + seed)


def visual_count(t, images, kind):
    inputs = t.family.build_inputs(t.processor, images, QUESTION, kind=kind)
    return sum(g.count for g in t.family.visual_groups(t.model, inputs, kind=kind))


# ------------------------------------------------------------------------------------------ loading


def test_checkpoints_load_with_their_real_processor_classes(loaded):
    qwen, intern = loaded["qwen3_vl"], loaded["internvl"]
    assert qwen.family is qwen3_vl and type(qwen.model).__name__ == "Qwen3VLForConditionalGeneration"
    assert [type(p).__name__ for p in (qwen.processor, qwen.processor.image_processor,
                                       qwen.processor.video_processor)] == [
        "Qwen3VLProcessor", "Qwen2VLImageProcessor", "Qwen3VLVideoProcessor"]
    assert intern.family is internvl and type(intern.model).__name__ == "InternVLForConditionalGeneration"
    assert [type(p).__name__ for p in (intern.processor, intern.processor.image_processor,
                                       intern.processor.video_processor)] == [
        "InternVLProcessor", "GotOcr2ImageProcessor", "InternVLVideoProcessor"]
    assert type(intern.family.text_model(intern.model)).__name__ == "Qwen2Model"
    # Qwen3's per-head q / k norms and each attention's own rotary function reach the scores
    parts = qwen.family.layer_parts(qwen.model, 0)
    assert parts.q_norm is qwen.model.model.language_model.layers[0].self_attn.q_norm and parts.k_norm is not None
    assert parts.rotate.__module__ == "transformers.models.qwen3_vl.modeling_qwen3_vl"
    assert intern.family.layer_parts(intern.model, 0).q_norm is None
    assert intern.family.layer_parts(intern.model, 0).rotate.__module__.endswith("qwen2.modeling_qwen2")


# ------------------------------------------------------------------------------------------ equivalence


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("kind", ["image", "video"])
def test_keep_all_equals_stock_generate(loaded, family_name, kind, dtype):
    """Same greedy ids; logits within float32 resolution, in bfloat16 within 2 units of its resolution at their
    scale (our loop calls the same stock layers and adds DeepStack's features as the text model does)."""
    t = loaded[family_name] if dtype == torch.float32 else loaded[family_name, dtype]
    images = media(kind)
    ids, logits = stock_generate(t, images, kind)
    n = visual_count(t, images, kind)
    records = compare(t.model, t.processor, t.family, images, QUESTION, methods=["clse", "fastv"], keep=n,
                      prune_layer=2, kind=kind, max_new_tokens=5, keep_logits=True, diagnostics=False)
    for name, record in records.items():
        assert record.answer_ids == ids, name
        assert record.kept_indices == list(range(n)) and record.dtype == str(dtype).removeprefix("torch.")
        assert len(record.step_logits) == len(logits) == 5
        for ours, theirs in zip(record.step_logits, logits):
            scale = max(theirs.abs().max().item(), 1.0)
            tolerance = 1e-5 if dtype == torch.float32 else 2 * torch.finfo(dtype).eps * scale
            assert (ours - theirs).abs().max().item() <= tolerance, name


@pytest.fixture(params=FAMILIES)
def family_name(request):
    return request.param


@pytest.mark.slow  # seconds: a third checkpoint
def test_the_moe_variant_is_served_by_the_same_family(loaded):
    """Qwen3VLMoeForConditionalGeneration: the same text model layout (DeepStack, interleaved M-RoPE, q / k
    norms), expert MLPs; keep-all equals its stock generate for an image and a video."""
    from tests.tiny_qwen3_internvl import tiny_qwen3_vl_moe

    qwen = loaded["qwen3_vl"]
    t = Loaded(qwen.directory, tiny_qwen3_vl_moe(qwen.tokenizer), qwen.processor, None)
    t.family = models.family_of(t.model)
    assert t.family is qwen3_vl
    assert t.family.layer_parts(t.model, 0).rotate.__module__.endswith("qwen3_vl_moe.modeling_qwen3_vl_moe")
    for kind in ("image", "video"):
        images = media(kind, seed=3)
        ids, logits = stock_generate(t, images, kind)
        n = visual_count(t, images, kind)
        record = compare(t.model, t.processor, t.family, images, QUESTION, methods=["clse"], keep=n, prune_layer=2,
                         kind=kind, max_new_tokens=5, keep_logits=True, diagnostics=False)["clse"]
        assert record.answer_ids == ids and len(record.step_logits) == len(logits)
        assert all(close(a, b) for a, b in zip(record.step_logits, logits))


@pytest.mark.parametrize("kind", ["image", "video"])
def test_a_missed_deepstack_injection_is_caught(loaded, monkeypatch, kind):
    """The DeepStack features change the tiny model's answer (its mergers are scaled up), so a run without the
    injections does not equal the stock model: the keep-all test above would catch a missed injection."""
    t = loaded["qwen3_vl"]
    images = media(kind, seed=1)
    ids, _ = stock_generate(t, images, kind)
    inputs = t.family.build_inputs(t.processor, images, QUESTION, kind=kind)
    encoded = encode(t.model, t.family, inputs, kind=kind)
    positions = torch.cat([g.positions for g in encoded.groups])
    assert [i.after_layer for i in encoded.injections] == [0, 1, 2]  # deepstack_visual_indexes [0, 1, 2]
    assert all(torch.equal(i.positions, positions) and i.features.shape == (len(positions), 64)
               for i in encoded.injections)
    kept = run(t.model, t.processor, encoded, "none", keep=len(positions), max_new_tokens=5)
    assert kept.answer_ids == ids
    monkeypatch.setattr(qwen3_vl, "injections", lambda model, captured, groups: [])
    missed = compare(t.model, t.processor, t.family, images, QUESTION, methods=[], keep=len(positions), kind=kind,
                     max_new_tokens=5, diagnostics=False)["none"]
    assert missed.answer_ids != ids


def close(ours, theirs):
    """Equal within float32 resolution at the logits' scale: the cached run and the recompute reduce over other
    shapes (one query against the cache, the whole sequence at once), so a few ulps of each sum may differ."""
    scale = max(theirs.abs().max().item(), 1.0)
    return (ours - theirs).abs().max().item() <= 64 * torch.finfo(torch.float32).eps * scale


@pytest.mark.parametrize("name, method, kind, k", [
    ("qwen3_vl", "clse", "image", 1),  # before the injections after layers 1 and 2
    ("qwen3_vl", "fastv", "image", 2),  # at the last injection layer (pruned tokens miss its features)
    ("qwen3_vl", "clse", "image", 3),  # right after the last injection
    ("qwen3_vl", "random", "video", 4),  # after every injection
    ("qwen3_vl", "clse", "video", 1),
    ("internvl", "fastv", "image", 2),
    ("internvl", "random", "video", 1),
])
def test_pruned_cached_decode_equals_a_no_cache_recompute(loaded, name, method, kind, k):
    t = loaded[name]
    images = media(kind, seed=2)
    inputs = t.family.build_inputs(t.processor, images, QUESTION, kind=kind)
    encoded = encode(t.model, t.family, inputs, kind=kind)
    lm = t.family.text_model(t.model)
    seen = []
    forward = lm.rotary_emb.forward
    lm.rotary_emb.forward = lambda x, position_ids: (seen.append(position_ids.clone()), forward(x, position_ids))[1]
    try:
        record = run(t.model, t.processor, encoded, method, keep=14, prune_layer=k, max_new_tokens=5,
                     keep_logits=True)
    finally:
        del lm.rotary_emb.forward
    n = sum(g.count for g in encoded.groups)
    kept_positions = torch.cat([g.positions for g in encoded.groups])[record.kept_indices]
    assert 0 < len(record.kept_indices) < n and record.visual_per_layer[k] == len(record.kept_indices)
    with torch.inference_mode():
        reference = no_cache_logits(t, encoded, kept_positions, k, record.answer_ids)
        plain = no_cache_logits(t, encoded, kept_positions, k, record.answer_ids, inject=False)
    assert len(record.step_logits) == len(reference) == 5
    for ours, theirs in zip(record.step_logits, reference):
        assert close(ours, theirs)
    if name == "qwen3_vl":
        assert encoded.position_ids.shape == (3, 1, inputs["input_ids"].shape[1])
        # the oracle sees the injections: without them it gives other logits
        assert not all(close(a, b) for a, b in zip(record.step_logits, plain))
    else:
        assert not encoded.injections and encoded.position_ids.shape == (1, inputs["input_ids"].shape[1])
    # prefill at the captured ids, then decode step j at max + 1 + j in every row
    start = int(encoded.position_ids.max()) + 1
    assert torch.equal(seen[0], encoded.position_ids)
    assert [p.flatten().tolist() for p in seen[1:]] == [[start + j] * encoded.position_ids.shape[0]
                                                        for j in range(4)]


# ------------------------------------------------------------------------------------------ visual groups


def ids_of(t, *tokens):
    return [t.tokenizer.convert_tokens_to_ids(token) for token in tokens]


def prompt_text(t, inputs):
    """The prompt as text without spaces (the word-level decoder joins words with spaces)."""
    return "".join(t.tokenizer.decode(inputs["input_ids"][0]).split())


def test_qwen3_image_groups_are_the_image_pad_runs(loaded):
    t = loaded["qwen3_vl"]
    images = [random_image(3, (300, 200)), random_image(4, (120, 200))]
    inputs = t.family.build_inputs(t.processor, images, QUESTION)
    groups = t.family.visual_groups(t.model, inputs)
    ids = inputs["input_ids"][0]
    start_id, end_id, pad = ids_of(t, "<|vision_start|>", "<|vision_end|>", "<|image_pad|>")
    assert [g.grid for g in groups] == [(1, h // 2, w // 2) for _, h, w in inputs["image_grid_thw"].tolist()]
    assert groups[0].grid == (1, 4, 6) and groups[1].grid != groups[0].grid  # one token per 32 x 32 px
    for g in groups:
        assert (ids[g.positions] == pad).all() and (g.positions.diff() == 1).all()
        assert ids[g.positions[0] - 1] == start_id and ids[g.positions[-1] + 1] == end_id
    assert sum(g.count for g in groups) == int((ids == pad).sum())
    # raster order in the model's own interleaved M-RoPE ids: token n at row n // w, column n % w
    position_ids = encode(t.model, t.family, inputs).position_ids[:, 0, groups[0].positions]
    n = torch.arange(groups[0].count)
    assert torch.equal(position_ids[1] - position_ids[1, 0], n // 6)
    assert torch.equal(position_ids[2] - position_ids[2, 0], n % 6)
    views = t.family.model_view(t.processor, images)  # what the tower saw: 32 px per merged token
    assert [v.size for v in views] == [(32 * g.grid[2], 32 * g.grid[1]) for g in groups]
    assert [v.size for v in t.family.model_view(t.processor, frames(4), kind="video")] == [(192, 128)] * 2
    with pytest.raises(BadInput, match="at least 2 frames"):
        t.family.build_inputs(t.processor, frames(1), QUESTION, kind="video")


@pytest.mark.parametrize("timing, times", [
    ({"fps": 30.0, "frames_indices": [0, 30, 60, 90], "total_num_frames": 120}, ["<0.5seconds>", "<2.5seconds>"]),
    (None, ["<0.2seconds>", "<1.2seconds>"]),  # consecutive frames at VIDEO_FPS = 2: (0 + 0.5) / 2 = 0.25 s
])
def test_qwen3_video_group_is_the_union_of_its_timestamped_runs(loaded, timing, times):
    """Every temporal patch: "<t seconds>" (the mean time of its two frames, one decimal), vision_start, h' * w'
    video pads, vision_end. The group is the union of the pads, frame-major; timestamps and vision_start/end are
    never in it, so never in a kept or pruned set."""
    t = loaded["qwen3_vl"]
    inputs = t.family.build_inputs(t.processor, frames(4), QUESTION, kind="video", timing=timing)
    text = prompt_text(t, inputs)
    assert re.findall(r"<[\d.]+seconds>", text) == times
    (group,) = t.family.visual_groups(t.model, inputs, kind="video")
    tt, h, w = inputs["video_grid_thw"][0].tolist()
    assert group.kind == "video" and group.grid == (tt, h // 2, w // 2) == (2, 4, 6)
    ids = inputs["input_ids"][0]
    start_id, end_id, pad = ids_of(t, "<|vision_start|>", "<|vision_end|>", "<|video_pad|>")
    assert (ids[group.positions] == pad).all() and group.count == int((ids == pad).sum()) == 48
    runs = group.positions.view(2, 24)
    for run_ in runs:
        assert (run_.diff() == 1).all() and ids[run_[0] - 1] == start_id and ids[run_[-1] + 1] == end_id
    between = ids[runs[0, -1] + 1:runs[1, 0]]  # vision_end, "<2", ".", "5", "seconds>", vision_start
    assert len(between) == 6 and not set(between.tolist()) & {pad}
    record = compare(t.model, t.processor, t.family, frames(4), QUESTION, methods=["clse"], keep=12, kind="video",
                     prune_layer=3, max_new_tokens=2, diagnostics=False)["clse"]
    assert record.groups[0]["count"] == 48 and len(record.kept_indices) == 12
    none = compare(t.model, t.processor, t.family, frames(4), QUESTION, methods=[], keep=12, kind="video",
                   max_new_tokens=1, diagnostics=False)["none"]
    assert record.tokens_per_layer[3] == none.tokens_per_layer[3] - 36  # only video pads left the sequence


def test_qwen3_video_file_timing_reaches_the_prompt(loaded, tmp_path):
    """A clip sampled from a file: its real frame indices and the file's fps write the timestamps."""
    from explorer.media.read import sample_video_frames

    t = loaded["qwen3_vl"]
    clip = sample_video_frames(write_clip(tmp_path / "clip.webm", frames=8, size=96), 4)  # 4 fps
    indices = clip.timing["frames_indices"]
    assert clip.timing["fps"] == 4 and len(indices) == 4
    expected = [f"<{(indices[i] + indices[i + 1]) / 2 / 4:.1f}seconds>" for i in (0, 2)]
    inputs = t.family.build_inputs(t.processor, clip, QUESTION, kind="video", timing=clip.timing)
    assert re.findall(r"<[\d.]+seconds>", prompt_text(t, inputs)) == expected


def test_internvl_tiles_and_thumbnail_follow_the_processors_arithmetic(loaded):
    from transformers.models.got_ocr2.image_processing_got_ocr2 import get_optimal_tiled_canvas

    t = loaded["internvl"]
    wide, small = random_image(5, (300, 200)), random_image(6, (60, 60))
    inputs = t.family.build_inputs(t.processor, [wide, small], QUESTION)
    assert get_optimal_tiled_canvas((200, 300), (84, 84), 1, 6) == (3, 2)  # 3 columns, 2 rows
    assert inputs.tile_layouts == [(2, 3, True), (1, 1, False)]
    image_processor = t.processor.image_processor
    assert [image_processor.get_number_of_image_patches(im.height, im.width, {"crop_to_patches": True})
            for im in (wide, small)] == [7, 1] == [7, inputs["pixel_values"].shape[0] - 7]
    groups = t.family.visual_groups(t.model, inputs)
    assert [g.name for g in groups] == ["tile 0,0", "tile 0,1", "tile 0,2", "tile 1,0", "tile 1,1", "tile 1,2",
                                        "thumbnail", ""]
    assert [g.unit for g in groups] == [0] * 7 + [1] and all(g.grid == (1, 6, 6) for g in groups)
    ids = inputs["input_ids"][0]
    start_id, end_id, context = ids_of(t, "<img>", "</img>", "<IMG_CONTEXT>")
    for image in (groups[:7], groups[7:]):  # one run per image: <img>, 36 per tile, </img>
        run_ = torch.cat([g.positions for g in image])
        assert (run_.diff() == 1).all() and (ids[run_] == context).all()
        assert ids[run_[0] - 1] == start_id and ids[run_[-1] + 1] == end_id
    assert sum(g.count for g in groups) == int((ids == context).sum()) == 36 * 8
    # one budget per image, split over its grids by size; every grid keeps its share
    record = compare(t.model, t.processor, t.family, [wide, small], QUESTION, methods=["clse"], keep=0.25,
                     prune_layer=1, max_new_tokens=1, diagnostics=False)["clse"]
    assert record.stages[0].keep_counts == [9] * 7 + [9]
    views = t.family.model_view(t.processor, [wide, small])
    assert len(views) == len(groups) and all(v.size == (84, 84) for v in views)


def test_internvl_video_is_one_group_of_frames(loaded):
    t = loaded["internvl"]
    inputs = t.family.build_inputs(t.processor, frames(4), QUESTION, kind="video")
    (group,) = t.family.visual_groups(t.model, inputs, kind="video")
    assert group.kind == "video" and group.grid == (4, 6, 6) and group.count == 144
    ids = inputs["input_ids"][0]
    start_id, end_id, context = ids_of(t, "<img>", "</img>", "<IMG_CONTEXT>")
    assert (ids[group.positions] == context).all() and int((ids == context).sum()) == 144
    for f, run_ in enumerate(group.positions.view(4, 36)):
        assert (run_.diff() == 1).all() and ids[run_[0] - 1] == start_id and ids[run_[-1] + 1] == end_id
        assert ids[run_[0] - 3:run_[0] - 1].tolist() == ids_of(t, f"Frame{f + 1}", ":")  # context, not grid
    assert re.findall(r"Frame\d:", prompt_text(t, inputs)) == ["Frame1:", "Frame2:", "Frame3:", "Frame4:"]
    assert len(t.family.model_view(t.processor, frames(4), kind="video")) == 4


# ------------------------------------------------------------------------------------------ devices


@pytest.mark.slow  # seconds each: every schedule under the meta trap
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_tensor_the_engine_makes_names_its_device(each, schedule):
    """As tests/test_devices.py: once the inputs exist the default device is `meta`, and every method of the
    registry runs (VisionZip, which needs a vision [CLS] row these families do not give, is refused with a
    sentence) in each schedule, with the same answers and kept tokens as without the trap."""
    t = each
    image = random_image(62, (170, 84))  # InternVL: 2 tiles + thumbnail
    names = [n for n in METHODS if "vision" not in METHODS[n].needs and applies_to(n, "image")]
    # half of each input: a budget every official schedule reaches (PyramidDrop refuses what its
    # stages cannot average)
    settings = check_settings(methods=names, keep=0.5, prune_layer=2, max_new_tokens=3, schedule=schedule)
    inputs = t.family.build_inputs(t.processor, [image], QUESTION)

    def every_method():
        encoded = encode(t.model, t.family, inputs)
        records = {n: run(t.model, t.processor, encoded, n, settings, capture=n == "none") for n in names}
        attach(records["none"], t.model, encoded, settings)
        with pytest.raises(BadInput, match="reads the vision encoder's .CLS. attention"):
            run(t.model, t.processor, encoded, "visionzip", settings)
        return records

    expected = every_method()
    got = on_meta_default_device(every_method)
    assert [n for n in METHODS if n not in names] == ["visionzip", "vispruner", "evs"]  # no CLS; EVS: video only
    for name in expected:
        assert got[name].answer_ids == expected[name].answer_ids, name
        assert got[name].kept_indices == expected[name].kept_indices, name
    assert got["none"].spectra == expected["none"].spectra


# ------------------------------------------------------------------------------------------ entry points


@pytest.mark.slow  # the command line in fresh processes
def test_command_line_on_each_checkpoint(loaded, background):
    for name, process in background.cli.items():
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
        out = json.loads(stdout)
        assert out["model"] == loaded[name].directory and list(out["results"]) == ["none", "clse", "fastv"]
        t = loaded[name]
        expected = compare(t.model, t.processor, t.family, [random_image(7, (300, 200))], QUESTION,
                           methods=["clse"], keep=0.5, max_new_tokens=3, diagnostics=False)
        assert out["results"]["clse"]["kept_indices"] == expected["clse"].kept_indices, name
        assert out["results"]["clse"]["answer"] == expected["clse"].answer, name
        assert out["results"]["none"]["visual_tokens"] == (24 if name == "qwen3_vl" else 252)


@pytest.mark.slow  # imports lmms-eval
def test_lmms_eval_model_answers_like_compare(loaded, tmp_path):
    """One generate_until request in process through explorer.eval.lmms_eval.PruningExplorer on each
    checkpoint (an image; for Qwen3-VL also a video file, its frames' times through media_of), answered as
    compare.compare answers it."""
    from explorer.eval.lmms_eval import PruningExplorer, media_of

    image = tmp_path / "wide.png"
    random_image(8, (300, 200)).save(image)
    clip = str(write_clip(tmp_path / "clip.webm", frames=8, size=96))
    for name, visual in [("qwen3_vl", str(image)), ("internvl", str(image)), ("qwen3_vl", clip)]:
        t = loaded[name]
        lm = PruningExplorer(pretrained=t.directory, method="clse", keep="0.5", device="cpu", dtype="float32")
        lm.task_dict = {"task": {"test": {0: {"question": QUESTION}}}}
        gen_kwargs = {"max_new_tokens": 3, "until": []}
        request = SimpleNamespace(args=(QUESTION, gen_kwargs, lambda doc, visual=visual: [visual], 0, "task",
                                        "test"))
        (answer,) = lm.generate_until([request])
        images, kind = media_of([visual], lm.settings.frames)
        expected = compare(t.model, t.processor, t.family, images, QUESTION, lm.request_settings(gen_kwargs),
                           kind=kind, diagnostics=False)["clse"]
        assert answer == expected.answer and answer, (name, kind)


@pytest.mark.slow  # a real page server
def test_page_compares_on_a_qwen3_vl_checkpoint(loaded, background, tmp_path):
    from gradio_client import Client, handle_file

    from explorer.page.api import compare_arguments

    directory = loaded["qwen3_vl"].directory
    image = tmp_path / "wide.png"
    random_image(9, (300, 200)).save(image)
    clip = write_clip(tmp_path / "clip.webm", frames=8, size=96)
    client = Client(background.page_url(), verbose=False)
    outputs = client.predict(*compare_arguments(image=handle_file(str(image)), question=QUESTION, method_a="clse",
                                                method_b="fastv", keep=0.5, prune_layer=2, model_id=directory),
                             api_name="/compare")
    payload = next(o for o in outputs if isinstance(o, dict) and "results" in o)
    assert list(payload["results"]) == ["none", "clse", "fastv"]
    assert payload["results"]["none"]["groups"][0]["grid"] == [1, 4, 6]
    assert len(payload["results"]["clse"]["kept_indices"]) == 12
    outputs = client.predict(*compare_arguments(video=handle_file(str(clip)), question=QUESTION, method_a="clse",
                                                method_b="uniform", keep=0.5, prune_layer=3, model_id=directory),
                             api_name="/compare")
    payload = next(o for o in outputs if isinstance(o, dict) and "results" in o)
    group = payload["results"]["none"]["groups"][0]
    assert group["kind"] == "video" and group["grid"][0] == 2  # 4 frames sampled -> 2 temporal patches
    assert len(payload["results"]["clse"]["kept_indices"]) == round(0.5 * group["count"])
