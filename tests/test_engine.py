import copy
import json

import pytest
import torch
from transformers import DynamicCache, LlavaForConditionalGeneration

from explorer.core.compare import compare
from explorer.core.engine import encode, run
from explorer.methods.attention import last_token_row
from explorer.core.plan import plan
from explorer.methods.schedules import paper_layers
from explorer.core.settings import check_settings
from models import llava, qwen2_vl
from models.base import BadInput
from explorer.methods.registry import METHODS, applies_to
from tests.conftest import Tiny, no_cache_logits, random_image

QUESTION = "what color is the circle ?"
PRUNING = [m for m in METHODS if m != "none" and applies_to(m, "image")]  # EVS is video only


def stock_generate(t, images, question, max_new_tokens=6):
    inputs = t.family.build_inputs(t.processor, images, question)
    with torch.inference_mode():
        out = t.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, output_logits=True,
                               return_dict_in_generate=True)
    return out.sequences[0, inputs["input_ids"].shape[1]:].tolist(), [s[0].float() for s in out.logits]


@pytest.mark.parametrize("method", ["none"] + PRUNING)
def test_keep_all_equals_the_stock_model(tiny, method):
    image = random_image(0)
    stock_ids, stock_logits = stock_generate(tiny, [image], QUESTION)
    n = tiny.side**2
    records = compare(tiny.model, tiny.processor, tiny.family, [image], QUESTION, methods=[method], keep=n,
                      prune_layer=2, max_new_tokens=6, keep_logits=True)
    record = records[method]
    assert record.answer_ids == stock_ids
    assert len(record.step_logits) == len(stock_logits)
    for ours, theirs in zip(record.step_logits, stock_logits):
        assert torch.allclose(ours, theirs, atol=1e-5)
    assert record.kept_indices == list(range(n))


def test_each_answer_tokens_margin_is_its_logit_above_the_runner_ups(tiny):
    """answer_margins: per generated token, the stock model's logit of the token taken minus the next best one's
    (the stock generate's own logits, sorted by hand); 0 for a tie, which the record then shows as one."""
    from explorer.core.engine import margins

    image = random_image(0)
    _, stock_logits = stock_generate(tiny, [image], QUESTION)
    record = compare(tiny.model, tiny.processor, tiny.family, [image], QUESTION, methods=["clse"], keep=9,
                     prune_layer=2, max_new_tokens=6)["none"]
    by_hand = [float(s.sort(descending=True).values[0] - s.sort(descending=True).values[1]) for s in stock_logits]
    assert len(record.answer_margins) == len(record.answer_ids) == len(by_hand)
    assert all(abs(ours - theirs) < 1e-4 for ours, theirs in zip(record.answer_margins, by_hand))
    assert all(m >= 0 for m in record.answer_margins) and record.to_json()["answer_margins"] == record.answer_margins
    tie = torch.tensor([[1.0, 3.0, 3.0, 2.0], [0.5, 0.25, 2.0, 1.0]])
    assert margins(tie) == [0.0, 1.0]  # two tokens at the top: no margin; else the best minus the second best


@pytest.mark.parametrize("early_kv", ["keep", "prune"])
@pytest.mark.parametrize("method", ["clse", "fastv", "random"])
def test_pruned_cached_decode_matches_a_no_cache_recompute(tiny, method, early_kv):
    image = random_image(1)
    inputs = tiny.family.build_inputs(tiny.processor, [image], QUESTION)
    encoded = encode(tiny.model, tiny.family, inputs)
    record = run(tiny.model, tiny.processor, encoded, method, keep=9, prune_layer=2, max_new_tokens=5,
                 early_kv=early_kv, keep_logits=True)
    assert record.early_kv == early_kv
    kept_positions = encoded.groups[0].positions[record.kept_indices]
    with torch.inference_mode():
        reference = no_cache_logits(tiny, encoded, kept_positions, 2, record.answer_ids, early_kv)
    assert len(record.step_logits) == len(reference) >= 2
    for ours, theirs in zip(record.step_logits, reference):
        assert torch.allclose(ours, theirs, atol=1e-5)


def test_attention_row_equals_eager_attention_last_row(tiny):
    image = random_image(2)
    inputs = tiny.family.build_inputs(tiny.processor, [image], QUESTION)
    eager = LlavaForConditionalGeneration(copy.deepcopy(tiny.model.config))  # its own config
    eager.load_state_dict(tiny.model.state_dict())
    eager.set_attn_implementation("eager")  # only as an oracle in this test
    with torch.inference_mode():
        weights = eager(**inputs, output_attentions=True).attentions
        encoded = encode(tiny.model, tiny.family, inputs)
        lm = tiny.model.model.language_model
        hidden = encoded.inputs_embeds
        cos, sin = lm.rotary_emb(hidden, encoded.position_ids)
        cache = DynamicCache(config=tiny.model.config.text_config)
        for i, layer in enumerate(lm.layers[:3]):
            last = hidden[:, -1:]
            hidden = layer(hidden, attention_mask=None, position_embeddings=(cos, sin), past_key_values=cache,
                           use_cache=True)
            row = last_token_row(tiny.family.layer_parts(tiny.model, i), last, (cos[:, -1:], sin[:, -1:]),
                                 cache.layers[i].keys)
            assert torch.allclose(row, weights[i][0, :, -1].mean(0), atol=1e-6)
    assert tiny.model.config.text_config._attn_implementation == "sdpa"


def test_fastv_scores_are_the_attention_of_layer_k_minus_one(tiny):
    image = random_image(3)
    records = compare(tiny.model, tiny.processor, tiny.family, [image], QUESTION, methods=["fastv"], keep=12,
                      prune_layer=2, max_new_tokens=2)
    stage = records["fastv"].stages[0]
    scores = torch.tensor(stage.scores)
    assert stage.keep_indices == sorted(scores.argsort(descending=True, stable=True)[:12].tolist())
    assert 0 < scores.sum() < 1  # softmax over the whole sequence, not renormalised over visual tokens
    assert torch.allclose(scores, torch.tensor(records["none"].reference_scores["fastv"]))


def test_selection_counts_text_tokens_and_layers(tiny):
    image = random_image(4)
    n = tiny.side**2
    records = compare(tiny.model, tiny.processor, tiny.family, [image], QUESTION, methods=PRUNING, keep=10,
                      prune_layer=2, max_new_tokens=3)
    full = records["none"].tokens_per_layer
    text = records["none"].text_tokens
    assert full == [text + n] * 4
    for name in PRUNING:
        r = records[name]
        assert r.kept_indices == sorted(r.kept_indices) and len(set(r.kept_indices)) == 10
        assert r.tokens_per_layer == [text + n] * 2 + [text + 10] * 2
        assert r.visual_per_layer == [n, n, 10, 10]
        assert r.budget["average_kept"] == (2 * n + 2 * 10) / 4
        assert r.flops["prefill"] < records["none"].flops["prefill"]
        assert r.kv_cache_bytes < records["none"].kv_cache_bytes


def plain_mlp_llava(tiny):
    """The tiny LLaVA's tower and tokenizer with a Phi decoder: a plain MLP (fc1, fc2), no gate."""
    from transformers import LlavaConfig, PhiConfig  # noqa: PLC0415

    text = PhiConfig(vocab_size=len(tiny.tokenizer), hidden_size=64, intermediate_size=256, num_hidden_layers=4,
                     num_attention_heads=4, max_position_embeddings=4096, pad_token_id=tiny.tokenizer.pad_token_id)
    config = LlavaConfig(vision_config=tiny.model.config.vision_config, text_config=text,
                         image_token_id=tiny.tokenizer.image_token_id, vision_feature_layer=-2,
                         vision_feature_select_strategy="default")
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    model.set_attn_implementation("sdpa")
    return model


@pytest.mark.parametrize("mlp", ["gated", "plain"])
def test_flops_count_the_mlp_the_model_has(tiny, mlp):
    """FastV's 4 n d^2 + 2 n^2 d plus the MLP's matrices: three (gate, up, down) for Llama's SwiGLU, two (fc1,
    fc2) for Phi's plain MLP; the MLP term's factor is the MLP's own weight count over d m."""
    model = tiny.model if mlp == "gated" else plain_mlp_llava(tiny)
    records = compare(model, tiny.processor, llava, [random_image(0)], QUESTION, methods=["random"], keep=9,
                      prune_layer=2, max_new_tokens=2, diagnostics=False)
    config = model.config.get_text_config()
    d, m = config.hidden_size, config.intermediate_size
    layer_mlp = llava.text_model(model).layers[0].mlp
    matrices = sum(p.numel() for name, p in layer_mlp.named_parameters() if name.endswith("weight")) // (d * m)
    assert matrices == (3 if mlp == "gated" else 2)
    for record in records.values():
        assert record.flops["prefill"] == sum(4 * n * d**2 + 2 * n**2 * d + matrices * n * d * m
                                              for n in record.tokens_per_layer)
        assert f"{matrices} n d m ({'a gated' if mlp == 'gated' else 'a plain'} MLP" in record.flops["formula"]
    assert records["random"].tokens_per_layer[2] < records["none"].tokens_per_layer[2]


def test_ratio_budget_and_paper_schedule(tiny):
    groups = encode(tiny.model, tiny.family, tiny.family.build_inputs(tiny.processor, [random_image(5)],
                                                                      QUESTION)).groups
    def stages_of(groups, keep, num_layers, schedule="single", family=llava, prune_layer=2):
        return plan(groups, check_settings(keep=keep, prune_layer=prune_layer, schedule=schedule), num_layers, family)

    assert stages_of(groups, 0.25, 4).stages == [(2, [9])]
    the_plan = stages_of(groups, 10, 4, "paper")
    assert the_plan.nominal == [10]
    assert [s[0] for s in the_plan.stages] == [1, 2, 3]  # 4 layers: 1, round(1.44) -> 2, round(2.68) -> 3
    assert [s[1] for s in the_plan.stages] == [[17], [10], [2]]  # int(1.71 r), int(1.08 r), int(0.294 r)
    assert paper_layers(32, llava.PAPER_SCHEDULE) == [1, 11, 21]
    assert paper_layers(28, qwen2_vl.PAPER_SCHEDULE) == [1, 10, 19]
    fake = [type("G", (), {"count": 576})()]
    # the paper's keep table, literally (rounding 1.72/1.09/0.32 x 192 would give 330/209/61)
    assert [c for _, c in stages_of(fake, 192, 32, "paper").stages] == [[330], [210], [62]]
    assert [c for _, c in stages_of(fake, 64, 32, "paper").stages] == [[110], [70], [20]]
    assert [c for _, c in stages_of(fake, 100, 32, "paper").stages] == [[171], [108], [29]]  # off the table
    # a preset ratio looks the table up by its nominal budget: a third of 576 is "192" (not 330 / 209 / 61)
    assert [c for _, c in stages_of(fake, round(1 / 3, 4), 32, "paper").stages] == [[330], [210], [62]]
    thousand = [type("G", (), {"count": 1000})()]  # the paper's Qwen2-VL schedule: ratios of the original N
    assert stages_of(thousand, 0.334, 28, "paper", qwen2_vl).stages == [(1, [570]), (10, [360]), (19, [98])]
    # floored as the official code (clse_qwen2vl_model.py: int): 583 / 368 / 100 of 1024 at "0.334", and 1/3 is it
    assert stages_of([type("G", (), {"count": 1024})()], round(1 / 3, 4), 28, "paper", qwen2_vl).stages == [
        (1, [583]), (10, [368]), (19, [100])]
    # method.md: 0.19 / 0.12 / 0.034 of N, from the paper's table (the factors would give 191 / 121 / 33)
    assert [c[0] for _, c in stages_of(thousand, 0.112, 28, "paper", qwen2_vl).stages] == [190, 120, 34]


def test_paper_schedule_run_prunes_in_three_stages(tiny):
    records = compare(tiny.model, tiny.processor, tiny.family, [random_image(6)], QUESTION,
                      methods=["clse", "fastv"], keep=10, schedule="paper", max_new_tokens=3)
    r = records["clse"]
    assert [s.layer for s in r.stages] == [1, 2, 3]
    assert [s.scorer for s in r.stages] == ["clse", "fastv", "fastv"]
    assert [len(s.keep_indices) for s in r.stages] == [17, 10, 2]
    assert set(r.stages[2].keep_indices) <= set(r.stages[1].keep_indices) <= set(r.stages[0].keep_indices)
    # scores of a later stage exist only for tokens alive before it
    later = torch.tensor(r.stages[1].scores)
    assert torch.isfinite(later).sum() == 17
    assert r.visual_per_layer == [36, 17, 10, 2]


def test_several_images_and_video_frames(tiny):
    frames = [random_image(10 + i) for i in range(3)]
    n = tiny.side**2
    images = compare(tiny.model, tiny.processor, tiny.family, frames, QUESTION, methods=["clse"], keep=5,
                     max_new_tokens=2)["clse"]
    assert [g["grid"] for g in images.groups] == [[1, tiny.side, tiny.side]] * 3
    assert [g["offset"] for g in images.groups] == [0, n, 2 * n]
    assert images.stages[0].keep_counts == [5, 5, 5]  # each image its own budget
    for gi in range(3):
        assert sum(gi * n <= k < (gi + 1) * n for k in images.kept_indices) == 5
    video = compare(tiny.model, tiny.processor, tiny.family, frames, QUESTION, methods=["clse", "uniform"], keep=9,
                    kind="video", max_new_tokens=2)
    r = video["clse"]
    assert r.groups == [{"kind": "video", "grid": [3, tiny.side, tiny.side], "offset": 0, "count": 3 * n,
                         "first_position": r.groups[0]["first_position"], "unit": None, "name": ""}]
    assert len(r.kept_indices) == 9 and max(r.kept_indices) < 3 * n
    per_frame = [sum(f * n <= k < (f + 1) * n for k in video["uniform"].kept_indices) for f in range(3)]
    assert per_frame == [3, 3, 3]
    spectra = video["none"].spectra[0]
    assert len(spectra["highpass"]) == 5 and len(spectra["highpass"][0]) == 3 * n  # 4 layers + output
    # frame positions in the sequence: the frames' token runs are separated by text, in order
    inputs = tiny.family.build_inputs(tiny.processor, frames, QUESTION, kind="video")
    group = tiny.family.visual_groups(tiny.model, inputs, kind="video")[0]
    ids = inputs["input_ids"][0]
    assert (ids[group.positions] == tiny.model.config.image_token_id).all()
    assert (group.positions.diff() > 0).all()


def test_record_is_json_and_requests_do_not_leak(tiny):
    args = dict(methods=["clse", "fastv", "random"], keep=7, prune_layer=1, max_new_tokens=4)
    first = compare(tiny.model, tiny.processor, tiny.family, [random_image(20)], QUESTION, **args)
    compare(tiny.model, tiny.processor, tiny.family, [random_image(21)], "is the square red ?", **args)
    again = compare(tiny.model, tiny.processor, tiny.family, [random_image(20)], QUESTION, **args)
    for name in first:
        a, b = first[name].to_json(), again[name].to_json()
        for key in ("answer_ids", "kept_indices", "stages", "tokens_per_layer", "kv_cache_bytes", "spectra"):
            assert a[key] == b[key], (name, key)
    text = json.dumps({k: r.to_json() for k, r in first.items()})
    assert "NaN" not in text


@pytest.mark.parametrize("kwargs, message", [
    (dict(keep=0), "keep must be"),
    (dict(keep=-3), "keep must be"),
    (dict(keep=37), "more than the 36"),
    (dict(keep=2.5), "neither a whole count"),
    (dict(keep="lots"), "keep must be a number"),
    (dict(keep=float("inf")), "keep must be"),
    (dict(keep="1e309"), "keep must be"),
    (dict(prune_layer=float("nan")), "prune layer must be a whole number"),
    (dict(prune_layer=0), "prune layer must be between 1 and 3"),
    (dict(prune_layer=4), "prune layer must be between 1 and 3"),
    (dict(methods=["magic"]), "unknown method 'magic'"),
    (dict(question="   "), "question is empty"),
    (dict(ref_layer=2, prune_layer=2), "reference layer must be between 0 and 1"),
    (dict(schedule="weekly"), "schedule must be"),
])
def test_bad_requests_fail_clearly(tiny, kwargs, message):
    args = dict(question=QUESTION, methods=["clse"], keep=5, prune_layer=2, max_new_tokens=2)
    args.update(kwargs)
    question = args.pop("question")
    with pytest.raises(BadInput, match=message):
        compare(tiny.model, tiny.processor, tiny.family, [random_image(30)], question, **args)


def test_degenerate_grid_model_runs_without_nan():
    t = Tiny(image_size=14, patch_size=14)  # a 1 x 1 grid: sigma = 0
    records = compare(t.model, t.processor, t.family, [random_image(40)], QUESTION, methods=["clse"], keep=1,
                      prune_layer=1, max_new_tokens=2)
    r = records["clse"]
    assert r.kept_indices == [0]
    assert all(torch.isfinite(torch.tensor(s.scores)).all() for s in r.stages)
    assert any("all-pass" in note for note in r.notes)


def test_tie_note_flags_a_cut_inside_a_tie_only():
    from explorer.core.engine import tie_note

    assert tie_note(torch.tensor([3.0, 2.0, 2.0, 1.0]), 2) is not None  # 2nd and 3rd tie: the cut splits them
    assert "4 of 4" in tie_note(torch.full((4,), 0.5), 1)
    assert tie_note(torch.tensor([3.0, 2.0, 2.0, 1.0]), 1) is None  # the tie is below the cut
    assert tie_note(torch.tensor([3.0, 2.0, 2.0, 1.0]), 3) is None
    assert tie_note(torch.tensor([1.0, 1.0]), 2) is None  # everything kept: no cut
