"""Each method as its authors run it (schedule "official"): the schedules against their official numbers, DART's
pivot order against Python's own set order, the merge step (the documented average; cached decoding equals a
no-cache recompute with the merged tokens), and SparseVLM's raters by hand."""

import dataclasses

import numpy as np
import pytest
import torch

from explorer.core.compare import compare
from explorer.core.engine import encode, run
from explorer.core.stage import raters
from explorer.core.options import Settings
from explorer.methods import baselines, schedules
from explorer.methods.registry import METHODS, applies_to, pruning_methods
from models.base import BadInput
from tests.conftest import Tiny, random_image

QUESTION = "what color is the circle ?"


def layout(num_layers=32, count=576, budget=192, kind="image", paper=None):
    return schedules.Layout(num_layers, [count], [budget], budget, paper or {}, {"prune_layer": 1, "ref_layer": 0,
                                                                               "early_kv": "prune"}, kind)


# ------------------------------------------------------------------------------------------ the schedules


def test_official_schedules_give_the_official_numbers_on_llava_15s_shape():
    """576 tokens, 32 layers: each registry line's schedule reproduces its authors' settings."""
    official = {name: METHODS[name].official for name in pruning_methods()}
    # FastV's count after K = 2 solved to the real average: (2 x 576 + 30 n) / 32 = 192 -> n = 166.4: 166 (191.6)
    assert official["fastv"].stages(layout())[0] == [(2, [166])]
    # DART keeps 4 + 8 (k // 8): (1152 + 30 n) / 32 = 128 -> n = 98.1; 92 averages 122.25, 100 averages 129.75
    assert official["dart"].stages(layout(budget=128))[0] == [(2, [100])]
    assert official["divprune"].stages(layout())[0] == [(0, [192])]
    assert official["visionzip"].stages(layout(budget=64))[0] == [(0, [64])]
    assert official["vispruner"].stages(layout(budget=64))[0] == [(0, [64])]
    grid = dataclasses.replace(layout(budget=192), grids=[(1, 24, 24)])
    assert official["downsample"].stages(grid)[0] == [(0, [182])]  # 14 x 13, the aspect kept
    clip = dataclasses.replace(layout(count=8 * 576, budget=1000, kind="video"), grids=[(8, 24, 24)])
    stages, notes = official["evs"].stages(clip)
    assert stages == [(0, [1000])] and "--video-pruning-rate 0.7829`" in notes[0]  # int(4608 x 0.2171) = 1000
    assert schedules.visionzip_contextual(64) == 10 and schedules.visionzip_contextual(192) == 30
    # PyramidDrop: lambda solved from the budget; at an average of 270 it is the official 0.5 (288/144/72)
    stages, notes = official["pyramiddrop"].stages(layout(budget=270))
    assert stages == [(8, [288]), (16, [144]), (24, [72])] and "lambda 0.5 " in notes[0]
    stages, notes = official["pyramiddrop"].stages(layout(budget=192))
    assert [layer for layer, _ in stages] == [8, 16, 24]
    assert schedules.average_kept([(layer, c[0]) for layer, c in stages], 32, 576) == pytest.approx(192, abs=1)
    stages, notes = official["pyramiddrop"].stages(layout(budget=64))  # below what 8/16/24 allows: 2/8/16
    assert stages == [(2, [111]), (8, [21]), (16, [4])] and "issue #29" in notes[0]
    # SparseVLM v1.5's keep lists entering layers 3 / 7 / 16 average more than their budgets with the recycled
    # tokens (66 / 30 / 17 at "64": (3 x 576 + 4 x 82 + 9 x 32 + 16 x 18) / 32 = 82.25): scaled to the budget
    for budget, keeps in schedules.SPARSEVLM["keep_table"].items():
        stages, notes = official["sparsevlm"].stages(layout(budget=budget))
        assert [layer for layer, _ in stages] == [3, 7, 16] and "scaled by" in notes[0]
        counts = [c[0] for _, c in stages]
        assert counts == sorted(counts, reverse=True) and counts[0] < keeps[0]
        alive = [a for _, a in schedules.sparsevlm_alive(576, counts)]
        assert schedules.average_kept(list(zip((3, 7, 16), alive)), 32, 576) == pytest.approx(budget, abs=1)
    assert schedules.average_kept(list(zip((3, 7, 16), (82, 32, 18))), 32, 576) == 82.25
    assert [alive for _, alive in schedules.sparsevlm_alive(576, (300, 200, 110))] == [309, 204, 113]
    # CLSE: the paper's keep table for images, one stage at the family's video K for video
    paper = {"depth": 32, "layers": (1, 11, 21), "factors": (1.72, 1.09, 0.32), "tokens": 576,
             "keep_table": {192: (330, 210, 62)}}
    # (the table's 330 / 210 / 62 average (576 + 3300 + 2100 + 682) / 32 = 208.1: scaled by ~0.85 to average 192)
    stages, notes = official["clse"].stages(layout(paper=paper))
    counts = [c[0] for _, c in stages]
    assert [layer for layer, _ in stages] == [1, 11, 21] and "averages 208.1" in notes[0]
    assert schedules.average_kept([(layer, c[0]) for layer, c in stages], 32, 576) == pytest.approx(192, abs=1)
    assert all(abs(c / t - counts[0] / 330) < 0.02 for c, t in zip(counts, (330, 210, 62)))
    # video: one stage at K = 3 whose 3 x 2048 / 32 = 192 leaves 2 tokens for the budget 194 ((6144 + 58) / 32)
    video = schedules.Layout(32, [2048], [194], 194, paper, {"prune_layer": 3, "ref_layer": 2, "early_kv": "keep"},
                             "video")
    assert official["clse"].stages(video)[0] == [(3, [2])]


def test_the_one_stage_solver_by_hand():
    """FastV on 6 layers of 256 tokens at 84: K = 2 alone averages (2 x 256 + 4) / 6 = 86 > 84, so K moves to 1;
    (256 + 5 n) / 6 = 84 -> n = 49.6: 50 (84.33) beats 49 (83.5). At 28 even K = 1 averages (256 + 5) / 6 = 43.5:
    refused with that figure. At 128 K = 2 stays: (512 + 4 n) / 6 = 128 -> n = 64."""
    fastv = schedules.one_stage(2, name="FastV")
    stages, notes = fastv(layout(num_layers=6, count=256, budget=84))
    assert stages == [(1, [50])] and "K moved to 1" in notes[0] and "84.33" in notes[0]
    assert fastv(layout(num_layers=6, count=256, budget=128))[0] == [(2, [64])]
    # at 85 K = 2 with 1 token averages 86, near the budget but a degenerate FastV: K = 1, (256 + 5 x 51) / 6 = 85.2
    assert fastv(layout(num_layers=6, count=256, budget=85))[0] == [(1, [51])]
    with pytest.raises(BadInput, match=r"FastV's official schedule cannot average 28 .* at least 43\.5"):
        fastv(layout(num_layers=6, count=256, budget=28))
    # a method of ours (no official code) gets the same one-stage solver under its own name
    with pytest.raises(BadInput, match=r"^random's official schedule cannot average 28"):
        METHODS["random"].official.stages(layout(num_layers=6, count=256, budget=28))
    # DART's 4 + 8 (k // 8) at K = 2 of 32: 64 -> n = 29.9; 28 averages 62.25, 36 averages 69.75: 28
    assert schedules.one_stage(2, count=schedules.dart_count)(layout(budget=64))[0] == [(2, [28])]


def test_official_stages_land_where_the_table_says_on_the_embedded_model(embedded):
    model, processor, family = embedded
    from models.shapes_llava import scenes

    scene = scenes.make_scene(205)
    records = compare(model, processor, family, [scene.image], "where is the red circle ?", schedule="official",
                      methods=[m for m in pruning_methods() if applies_to(m, "image")], keep=64, max_new_tokens=2,
                      diagnostics=False)
    layers = {name: [s.layer for s in r.stages] for name, r in records.items()}
    # K = 2 alone averages 2 x 256 / 6 = 85.3 > 64 on this 6-layer decoder: K moves to 1, the note says why
    assert layers["fastv"] == layers["dart"] == [1]
    assert any("K moved to 1" in n for n in records["fastv"].notes)
    assert layers["divprune"] == layers["visionzip"] == [0]
    assert len(layers["pyramiddrop"]) >= 3 and len(layers["clse"]) == 3 and len(layers["sparsevlm"]) == 3
    counts = [s.keep_counts[0] for s in records["pyramiddrop"].stages]
    assert counts == sorted(counts, reverse=True) and counts[0] < 256
    assert records["fastv"].early_kv == "keep" and records["clse"].early_kv == family.DEFAULTS["image"]["early_kv"]
    for record in records.values():  # every record reports its real average kept
        assert record.budget["average_kept"] == pytest.approx(sum(record.visual_per_layer) / record.num_layers)
        assert record.schedule == "official"
    assert records["visionzip"].merged and records["sparsevlm"].merged  # the merging methods merged
    controlled = compare(model, processor, family, [scene.image], "where is the red circle ?",
                         methods=["pyramiddrop", "visionzip"], keep=64, max_new_tokens=2, diagnostics=False)
    assert [s.layer for s in controlled["pyramiddrop"].stages] == [family.DEFAULTS["image"]["prune_layer"]]
    assert not controlled["visionzip"].merged and len(controlled["visionzip"].kept_indices) == 64


@pytest.mark.parametrize("keep", [0.33, 0.22, 0.11])
def test_official_mode_runs_every_method_at_one_real_cost_on_the_embedded_model(embedded, keep):
    """Issue 30's done-when: every method's real average within 5% of the budget, or a refusal that says why (a
    method that keeps every token until a layer inside the decoder cannot average 28 of 256 on 6 layers: at
    least 256 / 6 = 42.7); PyramidDrop runs at least three stages, fewer tokens each time, where it runs."""
    model, processor, family = embedded
    from models.shapes_llava import scenes

    encoded = encode(model, family, family.build_inputs(processor, [scenes.make_scene(205).image],
                                                        "where is the red circle ?"))
    budget = round(keep * 256)
    ran = {}
    for method in (m for m in pruning_methods() if applies_to(m, "image")):
        try:
            record = run(model, processor, encoded, method, keep=keep, schedule="official", max_new_tokens=1)
        except BadInput as refusal:
            assert "cannot average" in str(refusal) and "at least" in str(refusal), (method, str(refusal))
            assert budget < 256 / 6 + 1  # only a budget below what one layer of every token costs is refused
            continue
        ran[method] = record
        average = record.budget["average_kept"]
        # DART's 8-token blocks, downsample's pooled grids: the note says how far and why
        says_why = any("the nearest its count rule allows" in n or "the nearest its granularity allows" in n
                       for n in record.notes)
        assert abs(average - budget) <= 0.05 * budget or says_why, (method, average, budget, record.notes)
        assert abs(average - budget) <= 0.11 * budget
    assert {"divprune", "visionzip", "vispruner", "downsample"} <= set(ran)
    if keep > 0.2:
        assert set(ran) == {m for m in pruning_methods() if applies_to(m, "image")}
        counts = [s.keep_counts[0] for s in ran["pyramiddrop"].stages]
        assert len(counts) >= 3 and all(a > b for a, b in zip(counts, counts[1:]))


# ------------------------------------------------------------------------------------------ renumbered positions


def test_renumbered_positions_equal_a_stock_forward_of_the_shortened_sequence(tiny):
    """DivPrune before the decoder with positions renumber: the stock model's own generate on the shortened
    sequence alone (text and the kept visual tokens, numbered 0.. by the stock model) gives the same tokens and
    logits at every step; with the original positions (gaps) it does not."""
    encoded = encode(tiny.model, tiny.family, tiny.family.build_inputs(tiny.processor, [random_image(4)], QUESTION))
    records = {p: run(tiny.model, tiny.processor, encoded, "divprune", keep=12, prune_layer=0, positions=p,
                      max_new_tokens=5, keep_logits=True) for p in ("renumber", "original")}
    record = records["renumber"]
    assert [s.layer for s in record.stages] == [0] and any("positions renumbered" in n for n in record.notes)
    is_visual = torch.zeros(encoded.inputs_embeds.shape[1], dtype=torch.bool)
    is_visual[encoded.groups[0].positions] = True
    keep = ~is_visual
    keep[encoded.groups[0].positions[record.kept_indices]] = True
    with torch.inference_mode():
        out = tiny.model.generate(inputs_embeds=encoded.inputs_embeds[:, keep], attention_mask=torch.ones(
            1, int(keep.sum()), dtype=torch.long), max_new_tokens=5, do_sample=False, output_logits=True,
            return_dict_in_generate=True)
    stock = [s[0].float() for s in out.logits]
    assert record.answer_ids == out.sequences[0, -len(stock):].tolist()
    for ours, theirs in zip(record.step_logits, stock):
        assert torch.allclose(ours, theirs, atol=1e-5)
    assert records["original"].kept_indices == record.kept_indices
    assert not torch.allclose(records["original"].step_logits[0], stock[0], atol=1e-3)  # gaps change the answer


@pytest.mark.parametrize("early_kv", ["keep", "prune"])
def test_renumbered_positions_inside_the_decoder_match_a_no_cache_recompute(tiny, early_kv):
    """FastV at K = 2 renumbered: layers >= 2 see the shortened sequence numbered 0.., the generated tokens
    after it (each layer from its own count), layers < 2 the original numbering; against a recompute of every
    step without a cache."""
    from tests.conftest import no_cache_logits

    encoded = encode(tiny.model, tiny.family, tiny.family.build_inputs(tiny.processor, [random_image(6)], QUESTION))
    record = run(tiny.model, tiny.processor, encoded, "fastv", keep=9, prune_layer=2, positions="renumber",
                 early_kv=early_kv, max_new_tokens=5, keep_logits=True)
    kept_positions = encoded.groups[0].positions[record.kept_indices]
    with torch.inference_mode():
        reference = no_cache_logits(tiny, encoded, kept_positions, 2, record.answer_ids, early_kv, renumber=True)
        gaps = no_cache_logits(tiny, encoded, kept_positions, 2, record.answer_ids, early_kv)
    assert len(record.step_logits) == len(reference) >= 2
    for ours, theirs in zip(record.step_logits, reference):
        assert torch.allclose(ours, theirs, atol=1e-5)
    assert not all(torch.allclose(a, b, atol=1e-4) for a, b in zip(reference, gaps))


def test_renumbering_is_refused_on_multimodal_rotary_positions():
    """Qwen2-VL numbers visual tokens by time, height and width (M-RoPE): renumber is refused in the controlled
    mode; official DivPrune keeps the original positions there and says so."""
    from tests.conftest import TinyQwen

    q = TinyQwen("2")
    encoded = encode(q.model, q.family, q.family.build_inputs(q.processor, [random_image(2)], QUESTION))
    with pytest.raises(BadInput, match="M-RoPE"):
        run(q.model, q.processor, encoded, "divprune", keep=4, prune_layer=0, positions="renumber", max_new_tokens=1)
    record = run(q.model, q.processor, encoded, "divprune", keep=4, schedule="official", max_new_tokens=1)
    assert any("positions kept original" in n for n in record.notes)
    assert not any("positions renumbered" in n for n in record.notes)


def test_official_mode_uses_each_methods_own_positions_and_says_when_it_overrides(tiny):
    records = compare(tiny.model, tiny.processor, tiny.family, [random_image(8)], QUESTION, schedule="official",
                      methods=["divprune", "fastv"], keep=20, positions="original", max_new_tokens=1,
                      diagnostics=False)
    assert any("positions renumbered" in n for n in records["divprune"].notes)
    assert any("the position ids after a drop is renumber as its authors run it, not the original you chose" in n
               for n in records["divprune"].notes)
    assert not any("renumbered" in n for n in records["fastv"].notes)
    assert METHODS["divprune"].official.positions == METHODS["visionzip"].official.positions == "renumber"
    assert METHODS["pyramiddrop"].official.positions == METHODS["sparsevlm"].official.positions == "renumber"
    assert METHODS["clse"].official.positions == METHODS["dart"].official.positions == "original"


# ------------------------------------------------------------------------------------------ joint ranking


def test_joint_counts_by_hand():
    """Grids 0 and 1 are one image (unit 0), grid 2 an image of its own. Quotas 1 / 2 / 1: the unit's 3 tokens go
    to its 3 highest scores, 5 (grid 0), 4 and 3 (grid 1); grid 2 keeps its quota. Quotas 2 / 1: 3 and 2 (grid 1)
    and 1 (grid 0). Equal scores: the earlier grid first. A grid the ranking leaves empty keeps one token."""
    from types import SimpleNamespace

    from explorer.core.engine import joint_counts

    groups = [SimpleNamespace(unit=0), SimpleNamespace(unit=0), SimpleNamespace(unit=None)]
    t = torch.tensor
    assert joint_counts(groups, [t([5.0, 1, 0]), t([4.0, 3, 2]), t([9.0, 8])], [1, 2, 1]) == [1, 2, 1]
    assert joint_counts(groups[:2], [t([1.0, 0.5]), t([3.0, 2, 0.2])], [2, 1]) == [1, 2]
    assert joint_counts(groups[:2], [t([7.0, 7.0, 0]), t([7.0, 7.0])], [1, 2]) == [2, 1]  # ties: grid 0 first
    assert joint_counts(groups[:2], [t([0.1, 0.1]), t([5.0, 4, 3])], [1, 2]) == [1, 2]  # not [0, 3]


def test_joint_ranking_keeps_the_images_top_scores_over_its_grids():
    """LLaVA-NeXT, one wide image (base 6 x 6 + tiles 10 x 12): FastV with rank joint keeps the 20 highest
    attention scores of the whole image, whatever grid they lie in; per_grid keeps its quotas 5 + 15."""
    from tests.tiny_llava_next import TinyNext

    t = TinyNext()
    image = [random_image(7, (200, 150))]
    runs = {rank: compare(t.model, t.processor, t.family, image, QUESTION, methods=["fastv"], keep=20, prune_layer=1,
                          rank=rank, max_new_tokens=1, diagnostics=False)["fastv"] for rank in ("joint", "per_grid")}
    scores = torch.tensor(runs["joint"].stages[0].scores)
    assert runs["joint"].kept_indices == sorted(torch.sort(scores, descending=True, stable=True).indices[:20].tolist())
    assert runs["per_grid"].stages[0].keep_counts == [5, 15]
    assert sum(runs["joint"].stages[0].keep_counts) == 20
    assert runs["joint"].stages[0].keep_counts != [5, 15]  # 9 / 11 with these weights: the ranking moved tokens
    assert any("ranked jointly" in n for n in runs["joint"].notes)
    assert METHODS["fastv"].official.rank == METHODS["pyramiddrop"].official.rank == "joint"
    assert METHODS["visionzip"].official.rank == METHODS["clse"].official.rank == "per_grid"


# ------------------------------------------------------------------------------------------ Qwen3-VL's scoring point


def test_qwen3_vl_scoring_point_before_or_after_layer_k_minus_ones_deepstack(monkeypatch):
    """DivPrune at K = 1 on a tiny Qwen3-VL (DeepStack after layers 0, 1, 2): scoring point "after" (the default)
    scores the states entering layer 1 as the decoder has them, layer 0's DeepStack features added; "before"
    scores the states layer 0 put out before they were added (what the engine's inject received); the scores
    differ, and the record says which."""
    from explorer.core import engine
    from tests.tiny_qwen3_internvl import TinyQwen3

    q = TinyQwen3()
    encoded = encode(q.model, q.family, q.family.build_inputs(q.processor, [random_image(3, (112, 112))], QUESTION))
    seen = {}
    inject = engine.inject

    def recording(hidden, injections, layer_idx, index):
        out = inject(hidden, injections, layer_idx, index)
        if layer_idx == 0:
            seen["before"], seen["after"] = hidden.clone(), out.clone()
        return out

    monkeypatch.setattr(engine, "inject", recording)
    rows = encoded.groups[0].positions
    scores = {}
    for point in ("after", "before"):
        record = run(q.model, q.processor, encoded, "divprune", keep=3, prune_layer=1, scoring_point=point,
                     max_new_tokens=1)
        scores[point] = torch.tensor(record.stages[0].scores)
        assert any(f"scoring point {point}" in n for n in record.notes)
        expected = baselines.divprune_scores(seen[point][0, rows].float()).double()
        assert torch.equal(scores[point], expected)
    assert not torch.equal(scores["after"], scores["before"])
    assert Settings().scoring_point == "after"


# ------------------------------------------------------------------------------------------ DART's order


def test_dart_visits_its_pivots_in_pythons_set_order():
    """Two image pivots, A (token 0, the larger key norm, at position 41) and B (token 1, at 40): by key norm A is
    visited first, in Python's set of their positions B (40 % 8 = 0 < 41 % 8 = 1: a set of two ints has eight
    slots). Each takes the 4 // 2 = 2 tokens least similar to it that are left, so the first visited takes
    token 2 (least similar to both) and the order of the blocks differs."""
    hidden = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [0.9, 0.1], [0.1, 0.9], [0.7, 0.7]])
    norms = torch.tensor([5.0, 4.0, 0.0, 0.0, 0.0, 0.0])
    positions = torch.tensor([41, 40, 50, 51, 52, 53])
    assert baselines.python_set_order([41, 40]) == list({41, 40}) == [40, 41]
    by_norm = baselines.dart_order(hidden, norms, k=4, image_pivots=2, text_pivots=0).tolist()
    official = baselines.dart_order(hidden, norms, k=4, image_pivots=2, text_pivots=0, positions=positions).tolist()
    assert by_norm == [0, 1, 2, 4, 3, 5]  # A first: tokens 2 and 4 (-1, -1 and 0.1, 0.9) least similar to (1, 0)
    assert official == [0, 1, 2, 3, 4, 5]  # B first: tokens 2 and 3 least similar to (0, 1)
    assert sorted(official[:4]) != sorted(by_norm[:4])  # the kept set changes with the order alone


def test_dart_official_count_is_four_plus_eight_blocks():
    assert [schedules.dart_count(k) for k in (64, 128, 192)] == [68, 132, 196]


# ------------------------------------------------------------------------------------------ merges


def test_visionzip_merge_is_the_target_plus_the_mean_of_its_assigned_patches(tiny):
    image = random_image(7)
    encoded = encode(tiny.model, tiny.family, tiny.family.build_inputs(tiny.processor, [image], QUESTION))
    record = run(tiny.model, tiny.processor, encoded, "visionzip", keep=12, schedule="official", max_new_tokens=2)
    assert len(record.kept_indices) == 12 and len(record.merged) == schedules.visionzip_contextual(12) == 2
    features, keys = encoded.vision_features[0], encoded.vision_keys[0]
    dominant = sorted(set(record.kept_indices) - {int(n) for n in record.merged})
    remaining = [n for n in range(tiny.side ** 2) if n not in dominant]
    expected = baselines.visionzip_contextual(keys, remaining, 2)
    assert {str(t): sorted([t, *a]) for t, a in expected} == record.merged
    captured = []

    def entering(module, args, kwargs):  # the sequence entering the first decoder layer, at the prefill
        captured.append(args[0] if args else kwargs["hidden_states"])

    handle = tiny.model.model.language_model.layers[0].register_forward_pre_hook(entering, with_kwargs=True)
    try:
        ours = run(tiny.model, tiny.processor, encoded, "visionzip", keep=12, schedule="official", max_new_tokens=4,
                   keep_logits=True)
    finally:
        handle.remove()
    first = int(encoded.groups[0].positions[0])  # the image's tokens follow the text before it
    # its code's order, positions renumbered: the dominant tokens in their order, then the contextual ones
    sequence = captured[0]
    for n, position in enumerate(dominant):
        assert torch.equal(sequence[0, first + n], encoded.inputs_embeds[0, first + position])
    targets = sorted(t for t, _ in expected)
    for target, assigned in expected:  # the merged row the decoder got, recomputed by hand
        with torch.no_grad():
            merged = tiny.model.model.multi_modal_projector((features[target] + features[assigned].mean(0))[None])[0]
        row = first + len(dominant) + targets.index(target)
        assert torch.allclose(sequence[0, row], merged, atol=1e-5)
    assert any("merged tokens after the kept ones" in n for n in ours.notes)
    with torch.inference_mode():  # the stock model on that sequence, numbered 0.. by itself
        mask = torch.ones(sequence.shape[:2], dtype=torch.long)
        out = tiny.model.generate(inputs_embeds=sequence, attention_mask=mask, max_new_tokens=4, do_sample=False,
                                  output_logits=True, return_dict_in_generate=True)
    stock = [s[0].float() for s in out.logits]
    assert ours.answer_ids == out.sequences[0, -len(stock):].tolist()
    for a, b in zip(ours.step_logits, stock):
        assert torch.allclose(a, b, atol=1e-5)


def test_sparsevlm_merge_is_the_mean_of_its_cluster():
    x = torch.randn(12, 4, generator=torch.Generator().manual_seed(0))
    clusters = baselines.dpc_knn_clusters(x, 3)
    assert len(clusters) == 3 and sorted(i for _, members in clusters for i in members) == list(range(12))
    assert all(centre in members for centre, members in clusters)
    for centre, members in clusters:  # every member's nearest centre is its own
        centres = [c for c, _ in clusters]
        for m in members:
            assert min(centres, key=lambda c: (float((x[m] - x[c]).norm()), centres.index(c))) == centre


def test_sparsevlm_recycled_token_is_the_mean_of_the_originals_it_absorbed(monkeypatch):
    """At its first stage (nothing pruned before it), each merged token is the mean of the hidden states
    entering that layer of the originals the record says it absorbed."""
    t = Tiny(text_layers=4)
    encoded = encode(t.model, t.family, t.family.build_inputs(t.processor, [random_image(9)], QUESTION))
    vectors = []
    spec = METHODS["sparsevlm"]

    def recording(inputs, ranked, k):
        picks, merges = spec.merge(inputs, ranked, k)
        vectors.append({int(inputs.alive[c]): v.detach().clone() for c, _, v in merges})
        return picks, merges

    monkeypatch.setitem(METHODS, "sparsevlm", dataclasses.replace(spec, merge=recording))
    record = run(t.model, t.processor, encoded, "sparsevlm", keep=14, schedule="official", max_new_tokens=1)
    first = record.stages[0]
    entering = []
    handle = t.model.model.language_model.layers[first.layer].register_forward_pre_hook(
        lambda module, args, kwargs: entering.append(args[0] if args else kwargs["hidden_states"]), with_kwargs=True)
    try:
        run(t.model, t.processor, encoded, "none", keep=14, max_new_tokens=1)  # the same states enter layer K
    finally:
        handle.remove()
    positions = encoded.groups[0].positions
    assert first.merged and set(first.merged) == set(vectors[0])
    for centre, absorbed in first.merged.items():
        mean = entering[0][0, positions[absorbed]].mean(dim=0)
        assert torch.allclose(vectors[0][int(centre)], mean, atol=1e-5)
        assert int(centre) in absorbed and len(absorbed) >= 1


def no_cache_with_merges(t, encoded, stages, answer_ids, early_kv, renumber=False):
    """Reference without a cache, for any number of stages: entering a stage's layer the merged tokens' rows are
    replaced by their vectors and the rest pruned; prompt rows see the rows alive at each layer (causal), the
    generated tokens those too (early_kv "keep") or only the finally kept ones ("prune": the early layers'
    caches were trimmed); from the first stage on the rows are numbered 0.. where `renumber`, a single stage's
    merged tokens then after the kept ones (VisionZip's order). stages: [(layer, kept visual indices after it,
    {visual index: merged vector})]."""
    lm = t.model.model.language_model
    seq = encoded.inputs_embeds.shape[1]
    positions_of = encoded.groups[0].positions
    visual = torch.zeros(seq, dtype=torch.bool)
    visual[positions_of] = True
    final = ~visual
    final[positions_of[stages[-1][1]]] = True
    outputs = []
    for step in range(len(answer_ids)):
        extra = lm.embed_tokens(torch.tensor([answer_ids[:step]], dtype=torch.long))
        hidden = torch.cat([encoded.inputs_embeds, extra], dim=1)
        rows = torch.arange(seq + step)  # original positions of the current rows
        for i, layer in enumerate(lm.layers):
            for layer_index, kept, vectors in stages:
                if layer_index == i:
                    hidden = hidden.clone()
                    for n, vector in vectors.items():
                        hidden[0, (rows == positions_of[n]).nonzero()[0, 0]] = vector
                    alive = torch.cat([~visual, torch.ones(step, dtype=torch.bool)])
                    alive[positions_of[kept]] = True
                    hidden, rows = hidden[:, alive[rows]], rows[alive[rows]]
                    if renumber and len(stages) == 1:  # one stage: its merged tokens after the kept ones
                        merged = torch.zeros(len(rows), dtype=torch.bool)
                        for n in vectors:
                            merged[rows == positions_of[n]] = True
                        span = ((rows < seq) & visual[rows.clamp(max=seq - 1)]).nonzero()[:, 0]
                        order = torch.arange(len(rows))
                        order[span] = torch.cat([span[~merged[span]], span[merged[span]]])
                        hidden, rows = hidden[:, order], rows[order]
            n_rows = len(rows)
            mask = torch.full((n_rows, n_rows), float("-inf")).triu(1)
            if early_kv == "prune":
                decode = rows >= seq
                hidden_from = (rows < seq) & ~final[rows.clamp(max=seq - 1)]
                mask[decode[:, None] & hidden_from[None, :]] = float("-inf")
            numbers = torch.arange(n_rows) if renumber and i >= stages[0][0] else rows
            cos, sin = lm.rotary_emb(hidden, numbers[None])
            hidden = layer(hidden, attention_mask=mask[None, None], position_embeddings=(cos, sin))
        outputs.append(t.model.lm_head(lm.norm(hidden[:, -1]))[0].float())
    return outputs


@pytest.mark.parametrize("method", ["visionzip", "sparsevlm", "downsample"])
def test_cached_decode_with_merged_tokens_equals_a_no_cache_recompute(method, monkeypatch):
    """VisionZip merges before the decoder, SparseVLM inside it at three stages (its official KV policy keeps
    the early layers' caches whole), downsample before the decoder with overlapping blocks (6 x 6 to 4 x 3 at
    14)."""
    t = Tiny(text_layers=4)
    encoded = encode(t.model, t.family, t.family.build_inputs(t.processor, [random_image(8)], QUESTION))
    vectors = []
    spec = METHODS[method]

    def recording(inputs, ranked, k):  # the merged vectors of each stage, by the visual index of their slot
        picks, merges = spec.merge(inputs, ranked, k)
        vectors.append({int(inputs.alive[c]): v.detach().clone() for c, _, v in merges})
        return picks, merges

    monkeypatch.setitem(METHODS, method, dataclasses.replace(spec, merge=recording))
    record = run(t.model, t.processor, encoded, method, keep=14, schedule="official", max_new_tokens=4,
                 keep_logits=True)
    assert any(vectors) and record.merged
    stages = [(s.layer, s.keep_indices, v) for s, v in zip(record.stages, vectors)]
    with torch.inference_mode():
        reference = no_cache_with_merges(t, encoded, stages, record.answer_ids, record.early_kv,
                                         renumber=spec.official.positions == "renumber")
    assert len(reference) == len(record.step_logits) >= 2
    for ours, theirs in zip(record.step_logits, reference):
        assert torch.allclose(ours, theirs, atol=1e-5)


# ------------------------------------------------------------------------------------------ downsample, EVS


def entering_first_layer(t, encoded, method, **settings):
    """The record of one run and the sequence entering decoder layer 0 at its prefill."""
    captured = []
    handle = t.model.model.language_model.layers[0].register_forward_pre_hook(
        lambda module, args, kwargs: captured.append(args[0] if args else kwargs["hidden_states"]), with_kwargs=True)
    try:
        record = run(t.model, t.processor, encoded, method, **settings)
    finally:
        handle.remove()
    return record, captured[0]


def test_downsample_official_pools_the_decoder_inputs_as_adaptive_average_pooling(tiny):
    """The oracle: the rows the decoder gets are torch's adaptive_avg_pool2d of the grid's decoder inputs
    (6 x 6 to 4 x 3 at 12 tokens: overlapping rows), each at its block's centre; the controlled mode keeps the
    centres unpooled; inverted, nothing is pooled."""
    encoded = encode(tiny.model, tiny.family, tiny.family.build_inputs(tiny.processor, [random_image(11)], QUESTION))
    side, positions = tiny.side, encoded.groups[0].positions
    record, entering = entering_first_layer(tiny, encoded, "downsample", keep=12, schedule="official",
                                            max_new_tokens=2)
    blocks = baselines.pooling_blocks((1, side, side), (4, 3))
    assert [s.layer for s in record.stages] == [0] and record.kept_indices == [c for c, _ in blocks]
    assert record.merged == {str(c): members for c, members in blocks}
    assert "pools its 6 x 6 grid to 4 x 3" in " ".join(record.notes)
    grid = encoded.inputs_embeds[0, positions].reshape(side, side, -1).permute(2, 0, 1)
    pooled = torch.nn.functional.adaptive_avg_pool2d(grid[None], (4, 3))[0].permute(1, 2, 0).reshape(12, -1)
    first = int(positions[0])
    assert torch.allclose(entering[0, first:first + 12], pooled, atol=1e-6)  # the 12 rows where the grid was
    assert torch.equal(entering[0, :first], encoded.inputs_embeds[0, :first])  # the text before it untouched
    # 9 of 36 (3 x 3 blocks of 2 x 2) in the controlled mode: the centres, nothing pooled
    controlled = run(tiny.model, tiny.processor, encoded, "downsample", keep=9, prune_layer=1, max_new_tokens=1)
    assert controlled.kept_indices == [0, 2, 4, 12, 14, 16, 24, 26, 28] and not controlled.merged
    inverted = run(tiny.model, tiny.processor, encoded, "downsample", keep=12, schedule="official", invert=True,
                   max_new_tokens=1)
    assert not inverted.merged and len(inverted.kept_indices) == 12
    assert not set(inverted.kept_indices) & set(record.kept_indices)


def test_vispruner_official_keeps_its_selection_before_the_decoder(tiny):
    """Its stage is before the decoder (K = 0) and keeps int(12 / 2) = 6 patches by the tower's [CLS] attention
    plus 6 diverse ones, from the same features the projector gets; the controlled mode keeps the same set at
    the family's K (its inputs are the tower's)."""
    encoded = encode(tiny.model, tiny.family, tiny.family.build_inputs(tiny.processor, [random_image(12)], QUESTION))
    record = run(tiny.model, tiny.processor, encoded, "vispruner", keep=12, schedule="official", max_new_tokens=1)
    order = baselines.vispruner_order(encoded.vision_scores[0], encoded.vision_features[0], 12)
    assert [s.layer for s in record.stages] == [0] and record.kept_indices == sorted(order[:12].tolist())
    top = torch.sort(encoded.vision_scores[0], descending=True, stable=True).indices[:6].tolist()
    assert set(top) <= set(record.kept_indices)
    controlled = run(tiny.model, tiny.processor, encoded, "vispruner", keep=12, max_new_tokens=1)
    assert controlled.stages[0].layer == 1 and controlled.kept_indices == record.kept_indices


def test_evs_official_keeps_what_vllm_keeps_and_refuses_images(tiny):
    """On a 3-frame clip (3 x 6 x 6 tokens) the kept set is vLLM's retention mask (tests/test_baselines.py's
    step-by-step oracle) on the decoder's inputs at the printed rate; frame 0 stays whole; an image is
    refused with a sentence in every schedule."""
    from tests.test_baselines import vllm_retention_mask

    frames = [random_image(30 + i) for i in range(3)]
    inputs = tiny.family.build_inputs(tiny.processor, frames, QUESTION, kind="video")
    encoded = encode(tiny.model, tiny.family, inputs, kind="video")
    n = tiny.side ** 2
    record = run(tiny.model, tiny.processor, encoded, "evs", keep=50, schedule="official", max_new_tokens=2)
    rate, kept = baselines.evs_rate(n, 3, 50)
    assert kept == 50 and f"`vllm serve MODEL --video-pruning-rate {rate}`" in " ".join(record.notes)
    embeds = encoded.inputs_embeds[0, encoded.groups[0].positions]
    expected = vllm_retention_mask(embeds, 3, tiny.side, tiny.side, float(rate)).nonzero().flatten().tolist()
    assert record.kept_indices == expected and set(range(n)) <= set(expected)
    assert [s.layer for s in record.stages] == [0] and record.budget["average_kept"] == 50
    below = run(tiny.model, tiny.processor, encoded, "evs", keep=20, schedule="official", max_new_tokens=1)
    assert below.kept_indices == list(range(n)) and "keeps the first frame whole" in " ".join(below.notes)
    controlled = run(tiny.model, tiny.processor, encoded, "evs", keep=20, max_new_tokens=1)  # the video K (3)
    assert len(controlled.kept_indices) == 20 and controlled.stages[0].layer == 3
    image = encode(tiny.model, tiny.family, tiny.family.build_inputs(tiny.processor, [frames[0]], QUESTION))
    for schedule in ("single", "paper", "official"):
        with pytest.raises(BadInput, match="evs .vLLM's Efficient Video Sampling. prunes video only"):
            run(tiny.model, tiny.processor, image, "evs", keep=9, schedule=schedule, max_new_tokens=1)


# ------------------------------------------------------------------------------------------ SparseVLM's raters


def test_sparsevlm_raters_by_hand(tiny):
    """Two visual tokens and three text tokens after them: softmax over the text of each visual token's dot
    products, averaged over the visual tokens; raters are the text tokens above the mean."""
    from types import SimpleNamespace

    from models.base import VisualGroup

    embeds = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 0.0], [-1.0, 0.0]]])
    group = VisualGroup("image", (1, 1, 2), torch.tensor([1, 2]))
    encoded = SimpleNamespace(inputs_embeds=embeds, groups=[group])
    # text after the image: positions 3, 4, 5 with vectors (2, 0), (0, 0), (-1, 0)
    v = embeds[0, 1:3]
    t = embeds[0, 3:6]
    score = (v @ t.T).softmax(dim=-1).mean(dim=0)  # [0.5 * (e^2 / (e^2 + 1 + e^-1) + 1/3), ...]
    assert score[0] > score.mean() > score[2]
    assert raters(encoded, 0).tolist() == [3 + i for i in range(3) if score[i] > score.mean()] == [3]


def test_kept_masks_show_merged_tokens_and_hover_says_what_they_absorbed(tiny):
    from explorer.analysis.comparison import Analysis
    from explorer.page import figures

    records = compare(tiny.model, tiny.processor, tiny.family, [random_image(10)], QUESTION, schedule="official",
                      methods=["visionzip", "fastv"], keep=12, max_new_tokens=2)
    payload = {"results": {name: r.to_json() for name, r in records.items()}}
    a = Analysis(payload, pair=("visionzip", "fastv"))
    merged = a.merged["visionzip"]
    assert len(merged) == 2 and not a.merged["fastv"]
    fig = figures.importance_figure(a, None)
    mask = [tr for tr in fig.data if tr.type == "heatmap" and tr.zmax == 1][0]  # visionzip's kept mask
    z = np.asarray(mask.z, dtype=float).reshape(-1)
    assert sorted(np.flatnonzero(z == 0.5).tolist()) == sorted(merged)
    text = [cell for row in mask.text for cell in row]
    centre, absorbed = next(iter(merged.items()))
    assert f"merged token: stands for {len(absorbed)}" in text[centre]
    other = next(n for n in absorbed if n != centre)
    assert f"merged into token {centre}" in text[other]
    assert "blue = 2 merged" in fig.layout.annotations[2].text
    table = figures.answers_table(a).data[0]
    column = [h.replace("<b>", "").replace("</b>", "") for h in table.header.values].index("how it ran")
    how = dict(zip(table.cells.values[0], table.cells.values[column]))
    assert how["visionzip"].startswith("as its authors run it (official): layer 0, kept 12, 2 merged")
    assert how["fastv"].startswith("as its authors run it (official): layer 1")  # K = 2 cannot reach 12 here


def test_official_mode_says_which_chosen_settings_it_overrides(tiny):
    records = compare(tiny.model, tiny.processor, tiny.family, [random_image(31)], "what color is the circle ?",
                      methods=["fastv"], keep=20, schedule="official", prune_layer=3, early_kv="prune",
                      max_new_tokens=2)
    notes = records["fastv"].notes
    assert any("the pruning layer K is 2 as its authors run it, not the 3 you chose" in n for n in notes)
    assert any("the early layers' KV policy is keep as its authors run it, not the prune you chose" in n
               for n in notes)
