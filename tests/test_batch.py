"""Batched runs (issue 34, item 2; explorer/core/batch.py, compare.compare_batch): a batch of inputs with
different images, image counts, questions and prompt lengths gives every sample the records of its batch-of-one
run (engine.run) in float32: the same answer token for token, the same kept tokens at every stage, the same
token counts per layer and cache bytes, scores and step logits within float rounding; per-sample budgets and
stops; families or inputs that cannot batch run one by one, and every record says which happened.

The fast tier covers the tiny LLaVA (1-D positions, a vision [CLS]: every method) and Qwen2-VL (multimodal
rotary positions with different grids, videos); the slow tier every other family's tiny checkpoint of
tests/test_any_model.py, tests/test_more_architectures.py and the family tests, with every method that applies.
"""

from functools import partial

import pytest
import torch

import models
from explorer.core import batch as batching
from explorer.core.batch import BATCHED_NOTE, ONE_BY_ONE_NOTE, batchable, run_batch
from explorer.core.compare import compare, compare_batch
from explorer.core.engine import encode, encode_input, run
from explorer.core.settings import check_settings
from explorer.methods.registry import METHODS
from models.base import BadInput
from tests.conftest import WORDS, TinyQwen, random_image

QUESTIONS = ["what color is the circle ?", "is the circle red ?",
             "what color is the circle square ? red green blue yes no one two three"]
TIMED = ("timings_ms", "timings_spread_ms", "notes")


def untimed(record):
    """A record's JSON with its conversation's turns' timings and margins left out (the record's own are skipped by
    key; margins are compared within float rounding)."""
    out = record.to_json()
    out["turns"] = [{k: v for k, v in turn.items() if k not in ("timings_ms", "answer_margins")}
                    for turn in out["turns"]]
    return out


def close_margins(x, y):
    """Two answers' margins (engine.margins) equal within float rounding of the logits."""
    assert len(x) == len(y)
    assert all(abs(p - q) < 1e-4 * max(1.0, abs(p)) for p, q in zip(x, y)), (x, y)


def same_as_alone(alone, batched, batched_note=True):
    """The batched record against the batch-of-one record: everything but the timings and the batch's note
    equal, the scores within float rounding."""
    a, b = untimed(alone), untimed(batched)
    for key in a:
        if key in TIMED or key in ("stages", "answer_margins"):
            continue
        assert a[key] == b[key], key
    close_margins(a["answer_margins"], b["answer_margins"])
    assert len(a["answer_margins"]) == len(a["answer_ids"]) > 0
    assert len(a["stages"]) == len(b["stages"])
    for x, y in zip(a["stages"], b["stages"]):
        assert {k: v for k, v in x.items() if k != "scores"} == {k: v for k, v in y.items() if k != "scores"}
        assert [s is None for s in x["scores"]] == [s is None for s in y["scores"]]
        assert torch.allclose(torch.tensor([s or 0.0 for s in x["scores"]], dtype=torch.float64),
                              torch.tensor([s or 0.0 for s in y["scores"]], dtype=torch.float64),
                              rtol=1e-4, atol=1e-6)
    assert b["notes"][:len(a["notes"])] == a["notes"]
    extra = b["notes"][len(a["notes"]):]
    assert len(extra) == 1
    assert extra[0].startswith("run in a batch of" if batched_note else "asked for in a batch of"), extra
    if getattr(alone, "step_logits", None) is not None:
        for x, y in zip(alone.step_logits, batched.step_logits):
            assert (x - y).abs().max() < 1e-4 * max(1.0, float(x.abs().max()))  # float rounding


def check_every_method(model, processor, encodeds, kind="image", batched=True, prefill="together", **settings):
    """Every method that applies: run_batch against engine.run sample by sample. Returns the methods run."""
    ran = []
    for method in METHODS:
        s = check_settings(methods=[method] if METHODS[method].prunes else [], **settings)
        try:
            alone = [run(model, processor, e, method, s, keep_logits=True) for e in encodeds]
        except BadInput:
            with pytest.raises(BadInput):
                run_batch(model, processor, encodeds, method, s)
            continue
        together = run_batch(model, processor, encodeds, method, s, keep_logits=True, prefill=prefill)
        assert len(together) == len(encodeds)
        for a, b in zip(alone, together):  # renumbered positions (official DivPrune, VisionZip...) run alone
            renumbered = any(note.startswith("positions renumbered") for note in a.notes)
            same_as_alone(a, b, batched and not renumbered)
        ran.append(method)
    return ran


@pytest.fixture(scope="module")
def tiny_qwen():
    return TinyQwen("2")


def llava_inputs(tiny):
    images = [[random_image(1)], [random_image(2, size=(60, 90)), random_image(3)], [random_image(4, size=(120, 80))]]
    return [encode_input(tiny.model, tiny.processor, tiny.family, im, q) for im, q in zip(images, QUESTIONS)]


def qwen_inputs(t):
    images = [[random_image(1)], [random_image(2, size=(60, 90))], [random_image(3, size=(120, 80)), random_image(5)]]
    return [encode_input(t.model, t.processor, t.family, im, q) for im, q in zip(images, QUESTIONS)]


@pytest.mark.parametrize("early_kv, prefill", [("keep", "together"), ("prune", "together"), ("keep", "each"),
                                               ("prune", "each")])
def test_llava_batch_equals_batch_of_one_for_every_method(tiny, early_kv, prefill):
    """prefill "together": the padded batch through the decoder at once; "each": one prefill per sample, the
    caches padded into one batch for decoding (the CPU's default)."""
    encodeds = llava_inputs(tiny)
    assert len({e.inputs_embeds.shape[1] for e in encodeds}) == 3  # three prompt lengths: padding is exercised
    assert batchable(tiny.model, encodeds, "clse") is None
    ran = check_every_method(tiny.model, tiny.processor, encodeds, keep=4, max_new_tokens=5, early_kv=early_kv,
                             prefill=prefill)
    assert {"none", "clse", "fastv", "sparsevlm", "dart", "visionzip", "vispruner", "divprune", "downsample",
            "pyramiddrop", "random", "uniform"} <= set(ran)


def test_llava_official_schedules_batch(tiny):
    """The official schedules: several stages (PyramidDrop), merges (VisionZip, SparseVLM, downsampling)."""
    encodeds = llava_inputs(tiny)
    ran = check_every_method(tiny.model, tiny.processor, encodeds, keep=0.5, max_new_tokens=4, schedule="official")
    assert "visionzip" in ran and "pyramiddrop" in ran


def test_qwen2_vl_multimodal_positions_with_different_grids_batch(tiny_qwen):
    encodeds = qwen_inputs(tiny_qwen)
    assert len({tuple(g.grid) for e in encodeds for g in e.groups}) >= 3 and encodeds[0].position_ids.dim() == 3
    assert batchable(tiny_qwen.model, encodeds, "clse") is None
    for early_kv, prefill in (("keep", "together"), ("prune", "together"), ("keep", "each")):
        ran = check_every_method(tiny_qwen.model, tiny_qwen.processor, encodeds, keep=0.5, max_new_tokens=5,
                                 early_kv=early_kv, prefill=prefill)
        assert {"none", "clse", "fastv", "dart"} <= set(ran)


def test_qwen2_vl_videos_batch(tiny_qwen):
    t = tiny_qwen
    clips = [[random_image(10 + i) for i in range(4)], [random_image(20 + i, size=(60, 90)) for i in range(2)]]
    encodeds = [encode_input(t.model, t.processor, t.family, frames, q, kind="video")
                for frames, q in zip(clips, QUESTIONS)]
    ran = check_every_method(t.model, t.processor, encodeds, kind="video", keep=0.3, max_new_tokens=4)
    assert "evs" in ran


def test_per_sample_budgets_and_stops(tiny, monkeypatch):
    """Each sample its own Settings (a count for one, a ratio for the other) and its own stop: the batch decodes
    on for the sample still running, and the stopped one's answer ends where its batch-of-one answer ends."""
    encodeds = llava_inputs(tiny)[:2]
    settings = [check_settings(methods=["clse"], keep=3, max_new_tokens=6),
                check_settings(methods=["clse"], keep=0.5, max_new_tokens=6)]
    free = [run(tiny.model, tiny.processor, e, "clse", s) for e, s in zip(encodeds, settings)]
    stop = free[1].answer_ids[1]  # the second sample stops after its second token; the first, later or never
    for module in ("explorer.core.engine", "explorer.core.batch"):
        monkeypatch.setattr(f"{module}.eos_ids", lambda model, processor: {stop})
    alone = [run(tiny.model, tiny.processor, e, "clse", s, keep_logits=True) for e, s in zip(encodeds, settings)]
    together = run_batch(tiny.model, tiny.processor, encodeds, "clse", settings, keep_logits=True)
    assert len(alone[1].answer_ids) <= 2 < len(alone[0].answer_ids) or stop in alone[0].answer_ids[:2]
    assert [len(r.kept_indices) for r in together] == [3, together[1].visual_tokens // 2]
    for a, b in zip(alone, together):
        same_as_alone(a, b)


def test_compare_batch_returns_each_items_compare(tiny):
    items = [([random_image(1)], QUESTIONS[0]), {"images": [random_image(4, size=(120, 80))],
                                                 "question": QUESTIONS[2]}]
    settings = check_settings(methods=["clse", "fastv"], keep=4, max_new_tokens=4, repeats=2)
    batched = compare_batch(tiny.model, tiny.processor, tiny.family, items, settings)
    assert len(batched) == 2
    for (images, question, *_), records in zip([(i["images"], i["question"]) if isinstance(i, dict) else i
                                                for i in items], batched):
        alone = compare(tiny.model, tiny.processor, tiny.family, images, question, settings, diagnostics=False)
        assert list(records) == list(alone) == ["none", "clse", "fastv"]
        for method in alone:
            same_as_alone(alone[method], records[method])
            assert records[method].repeats == 2 and records[method].turns[0]["answer"] == alone[method].answer
    one = compare_batch(tiny.model, tiny.processor, tiny.family, items[:1], settings)[0]  # one item: compare
    alone = compare(tiny.model, tiny.processor, tiny.family, items[0][0], items[0][1], settings, diagnostics=False)
    for method in alone:
        a, b = untimed(alone[method]), untimed(one[method])
        assert {k: v for k, v in a.items() if k not in TIMED} == {k: v for k, v in b.items() if k not in TIMED}
        assert a["notes"] == b["notes"]
    with_diagnostics = compare_batch(tiny.model, tiny.processor, tiny.family, items, settings, diagnostics=True)
    for records in with_diagnostics:  # one by one, said so
        assert records["none"].spectra and ONE_BY_ONE_NOTE.split("{")[0] in records["clse"].notes[-1]
    with pytest.raises(BadInput, match="the question is empty"):
        compare_batch(tiny.model, tiny.processor, tiny.family, [items[0], ([random_image(2)], " ")], settings)


def test_a_decoder_that_cannot_batch_runs_one_by_one_and_says_why(tiny, monkeypatch):
    encodeds = llava_inputs(tiny)[:2]
    monkeypatch.setattr(batching, "batchable", lambda *a, **k: "a reason")
    s = check_settings(methods=["fastv"], keep=4, max_new_tokens=3)
    records = run_batch(tiny.model, tiny.processor, encodeds, "fastv", s)
    assert all(r.notes[-1] == ONE_BY_ONE_NOTE.format(n=2, why="a reason") for r in records)
    assert BATCHED_NOTE.split("{")[0] not in " ".join(records[0].notes)


def test_eager_attention_batches_with_additive_masks():
    from tests.conftest import Tiny

    tiny = Tiny()
    tiny.model.set_attn_implementation("eager")
    encodeds = llava_inputs(tiny)
    assert batchable(tiny.model, encodeds, "fastv") is None
    for prefill in ("together", "each"):
        for method in ("none", "fastv", "clse"):
            s = check_settings(methods=[] if method == "none" else [method], keep=4, max_new_tokens=4)
            alone = [run(tiny.model, tiny.processor, e, method, s, keep_logits=True) for e in encodeds]
            for a, b in zip(alone, run_batch(tiny.model, tiny.processor, encodeds, method, s, keep_logits=True,
                                             prefill=prefill)):
                same_as_alone(a, b)


# ------------------------------------------------------------------------------ every family (slow tier)


def any_model(name):
    from tests import test_any_model

    model, processor = test_any_model.BUILDERS[name]()
    return model, processor, models.family_of(model)


def more(name):
    from tests import tiny_more

    model, processor, _ = getattr(tiny_more, f"tiny_{name}")()
    return model, processor, models.family_of(model)


def family_test_builder(name):
    from tests import tiny_llava_next, tiny_qwen3_internvl as tq, tiny_video_llava_onevision as tv

    if name.startswith("llava_next"):
        t = tiny_llava_next.TinyNext(video=name.endswith("video"))
        with torch.no_grad():
            t.model.lm_head.weight[t.tokenizer.eos_token_id] = 0.0
        return t.model, t.processor, t.family
    if name in ("qwen3_vl", "internvl"):
        t = tq.TinyQwen3() if name == "qwen3_vl" else tq.TinyInternVL()
        return t.model, t.processor, t.family
    if name == "qwen2_5_vl":
        t = TinyQwen("2.5")
        return t.model, t.processor, t.family
    make_tokenizer, make_processor, make_model = {
        "video_llava": (tv.video_llava_tokenizer, tv.video_llava_processor, tv.tiny_video_llava),
        "onevision": (tv.onevision_tokenizer, tv.onevision_processor, tv.tiny_onevision)}[name]
    tokenizer = make_tokenizer(WORDS)
    model = make_model(tokenizer)
    with torch.no_grad():
        model.lm_head.weight[tokenizer.eos_token_id] = 0.0
    return model, make_processor(tokenizer), models.family_of(model)


def every_family():
    from tests import test_any_model, test_more_architectures

    out = {name: partial(any_model, name) for name in test_any_model.BUILDERS}
    out.update({name: partial(more, name) for name in test_more_architectures.ARCHITECTURES})
    out.update({name: partial(family_test_builder, name) for name in
                ("llava_next", "llava_next_video", "qwen3_vl", "internvl", "qwen2_5_vl", "video_llava", "onevision")})
    return out


FAMILIES = every_family()
VIDEO = {"qwen3_5", "qwen3_5_moe", "qwen3_vl_moe", "glm4v", "glm46v", "smolvlm", "gemma4", "molmo2", "minicpmv4_6",
         "llava_next_video", "qwen3_vl", "qwen2_5_vl", "video_llava", "onevision"}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_batch_equals_batch_of_one_for_every_method(name):
    model, processor, family = FAMILIES[name]()
    cases = [("image", [[random_image(5, size=(96, 96))], [random_image(6, size=(80, 112))]])]
    if name in VIDEO:
        cases.append(("video", [[random_image(30 + i, size=(96, 96)) for i in range(4)],
                                [random_image(40 + i, size=(96, 96)) for i in range(4)]]))
    for kind, media in cases:
        encodeds = [encode(model, family, family.build_inputs(processor, m, q, kind=kind))
                    for m, q in zip(media, QUESTIONS)]
        why = batchable(model, encodeds, "fastv")
        ran = check_every_method(model, processor, encodeds, kind=kind, batched=why is None, keep=0.5,
                                 max_new_tokens=3)
        assert "none" in ran and "fastv" in ran
