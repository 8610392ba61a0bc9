"""Device and dtype hygiene on a machine without a GPU: half precision against the stock model, every tensor the
engine makes naming its device (checked with a meta default device), device maps, and the command line."""

import json
import os
import subprocess
import sys

import pytest
import torch

import models
from explorer.core.diagnostics import attach
from explorer.core.compare import compare
from explorer.core.engine import encode, run
from explorer.core.settings import SCHEDULES, check_settings
from explorer.methods.registry import METHODS, applies_to
from tests.conftest import Tiny, TinyQwen, no_cache_logits, on_meta_default_device, random_image

QUESTION = "what color is the circle ?"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HALF = [torch.bfloat16, torch.float16]


def in_dtype(t, dtype):
    t.model.to(dtype)
    return t


@pytest.fixture(scope="module", params=["llava", "qwen2_vl"])
def family_model(request):
    return Tiny() if request.param == "llava" else TinyQwen("2")


def stock(t, images, max_new_tokens=5):
    inputs = t.family.build_inputs(t.processor, images, QUESTION).to(t.model.dtype)
    with torch.inference_mode():
        out = t.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, output_logits=True,
                               return_dict_in_generate=True)
    return out.sequences[0, inputs["input_ids"].shape[1]:].tolist(), [s[0].float() for s in out.logits]


@pytest.mark.parametrize("dtype", HALF)
def test_keep_all_equals_stock_generate_in_half_precision(family_model, dtype):
    """Same dtype, same greedy ids. Logits within 2 units of the dtype's resolution at their scale: our loop
    calls the same stock layers on the same tensors, so only the order of a few reductions may differ."""
    t = in_dtype(family_model, dtype)
    image = random_image(60, (300, 200))
    ids, logits = stock(t, [image])
    n = sum(g.count for g in encode(t.model, t.family, t.family.build_inputs(t.processor, [image], QUESTION)).groups)
    records = compare(t.model, t.processor, t.family, [image], QUESTION, methods=["clse", "fastv"], keep=n,
                      prune_layer=2, max_new_tokens=5, keep_logits=True)
    for record in records.values():
        assert record.dtype == str(dtype).removeprefix("torch.") and record.device == "cpu"
        assert record.answer_ids == ids
        for ours, theirs in zip(record.step_logits, logits):
            scale = theirs.abs().max().item()
            assert (ours - theirs).abs().max().item() <= 2 * torch.finfo(dtype).eps * max(scale, 1.0)
    t.model.to(torch.float32)


@pytest.mark.parametrize("early_kv", ["keep", "prune"])
def test_pruned_cached_decode_matches_a_no_cache_recompute_in_bfloat16(early_kv):
    t = in_dtype(Tiny(), torch.bfloat16)
    inputs = t.family.build_inputs(t.processor, [random_image(61)], QUESTION).to(torch.bfloat16)
    encoded = encode(t.model, t.family, inputs)
    record = run(t.model, t.processor, encoded, "clse", keep=9, prune_layer=2, max_new_tokens=5, early_kv=early_kv,
                 keep_logits=True)
    assert len(set(record.stages[0].scores)) > 30  # scores are ranked in float64: no bfloat16 ties
    kept_positions = encoded.groups[0].positions[record.kept_indices]
    with torch.inference_mode():
        reference = no_cache_logits(t, encoded, kept_positions, 2, record.answer_ids, early_kv)
    for ours, theirs in zip(record.step_logits, reference):
        scale = theirs.abs().max().item()
        assert (ours - theirs).abs().max().item() <= 4 * torch.finfo(torch.bfloat16).eps * max(scale, 1.0)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_tensor_the_engine_makes_names_its_device(family_model, schedule):
    """Once the model and its inputs exist (the processor's tensors), the default device becomes `meta`: any
    tensor the engine created without naming its device would land there, and mixing it with the model's CPU
    tensors fails the run (or reading it: meta tensors have no data). Every method this family's model can run,
    in every schedule (the official one merges tokens for VisionZip and SparseVLM)."""
    t = family_model
    image = random_image(62, (300, 200))
    names = [n for n in METHODS if not ("vision" in METHODS[n].needs and t.family.vision_attention(t.model) is None)
             and applies_to(n, "image")]
    # half of each input: a budget every official schedule reaches (PyramidDrop refuses what its
    # stages cannot average)
    settings = check_settings(methods=names, keep=0.5, prune_layer=2, max_new_tokens=3, schedule=schedule)

    def every_method():
        encoded = encode(t.model, t.family, inputs)
        records = {n: run(t.model, t.processor, encoded, n, settings, capture=n == "none") for n in names}
        attach(records["none"], t.model, encoded, settings)
        return records

    inputs = t.family.build_inputs(t.processor, [image], QUESTION)
    expected = every_method()
    got = on_meta_default_device(every_method)
    for name in expected:
        assert got[name].answer_ids == expected[name].answer_ids
        assert got[name].kept_indices == expected[name].kept_indices
    assert got["none"].spectra == expected["none"].spectra
    assert got["none"].reference_scores == expected["none"].reference_scores


def test_device_map_loads_and_runs_like_a_single_device(page_model):
    """The device_map path of loading on this CPU-only machine: transformers places every module on the CPU and
    dispatches no hooks there, so this checks the loading path and that the run is unchanged; a real split of
    the layers over several GPUs is not testable here (the engine moves every tensor to the device of the
    module it meets, for that case)."""
    plain = models.load(page_model, device="cpu", dtype="float32")
    mapped = models.load(page_model, dtype="float32", device_map="auto")
    assert {p.device.type for p in mapped[0].parameters()} == {"cpu"}
    image = random_image(63)
    a = compare(*plain, [image], QUESTION, methods=["clse"], keep=9, prune_layer=2, max_new_tokens=4)["clse"]
    b = compare(*mapped, [image], QUESTION, methods=["clse"], keep=9, prune_layer=2, max_new_tokens=4)["clse"]
    assert a.answer_ids == b.answer_ids and a.kept_indices == b.kept_indices


def test_auto_device_and_dtype_on_this_machine():
    device = models.pick_device("auto")
    assert device.type == ("cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available()
                           else "cpu")
    assert models.pick_dtype("auto", torch.device("cpu")) == torch.float32
    assert models.pick_dtype("auto", torch.device("mps")) == torch.float16
    with pytest.raises(models.BadInput, match="dtype must be"):
        models.pick_dtype("float8", torch.device("cpu"))
    with pytest.raises(models.BadInput, match="device must be"):
        models.pick_device("gpu")


@pytest.mark.slow  # the command line in a fresh process
def test_command_line_in_bfloat16_on_the_embedded_model(tmp_path):
    from models.shapes_llava import scenes

    path = tmp_path / "scene.png"
    scenes.make_scene(205).image.save(path)
    result = subprocess.run([sys.executable, "-m", "explorer", "--image", str(path), "--question",
                             "Where is the red circle?", "--dtype", "bfloat16", "--json",
                             "--methods", "clse,fastv,random", "--keep", "28"], capture_output=True, text=True,
                            cwd=ROOT, env=dict(os.environ, HF_HUB_OFFLINE="1"), timeout=300)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)  # progress never reaches stdout
    assert list(out["results"]) == ["none", "clse", "fastv", "random"]
    for record in out["results"].values():
        assert record["dtype"] == "bfloat16" and record["device"] == "cpu"
        assert record["answer"]
