"""The method registry wired into the engine: every method's first-stage scores against an oracle computed here
from stock modules (eager attention only as the oracle), pruning before the decoder (K = 0), the inverted
ablation, old names and unknown words."""

import copy

import pytest
import torch
from transformers import LlavaForConditionalGeneration

from explorer.methods import baselines
from explorer.core.compare import compare
from explorer.core.engine import encode, run
from explorer.methods.registry import METHODS, applies_to
from models.base import BadInput
from tests.conftest import random_image

QUESTION = "what color is the circle ?"


@pytest.fixture(scope="module")
def qwen_tiny():
    from tests.conftest import TinyQwen

    return TinyQwen("2")


def eager_copy(t):
    eager = LlavaForConditionalGeneration(copy.deepcopy(t.model.config))
    eager.load_state_dict(t.model.state_dict())
    eager.set_attn_implementation("eager")  # only as an oracle in these tests
    return eager.eval()


def test_visionzip_prunes_before_the_decoder_with_the_towers_cls_attention(tiny):
    image = random_image(50)
    inputs = tiny.family.build_inputs(tiny.processor, [image], QUESTION)
    with torch.inference_mode():
        vision = eager_copy(tiny).model.vision_tower(inputs["pixel_values"], output_attentions=True)
    oracle = vision.attentions[-2][0, :, 0, 1:].mean(0).double()  # CLS row over the patches, head mean
    record = compare(tiny.model, tiny.processor, tiny.family, [image], QUESTION, methods=["visionzip"], keep=6,
                     prune_layer=0, max_new_tokens=2)["visionzip"]
    stage = record.stages[0]
    assert stage.layer == 0 and record.visual_per_layer == [6, 6, 6, 6]
    assert torch.allclose(torch.tensor(stage.scores, dtype=torch.float64), oracle, atol=1e-6)
    assert stage.keep_indices == sorted(oracle.argsort(descending=True)[:6].tolist())


def test_methods_inside_the_decoder_refuse_k_zero(tiny):
    for method in ("clse", "clse_spectral", "fastv", "dart", "pyramiddrop"):
        with pytest.raises(BadInput, match="prune layer must be between 1 and 3"):
            compare(tiny.model, tiny.processor, tiny.family, [random_image(51)], QUESTION, methods=[method], keep=6,
                    prune_layer=0, max_new_tokens=2)
    for method in ("divprune", "random", "uniform", "visionzip"):  # they score before the decoder too
        compare(tiny.model, tiny.processor, tiny.family, [random_image(51)], QUESTION, methods=[method], keep=6,
                prune_layer=0, max_new_tokens=2)


def test_pyramiddrop_and_divprune_scores_match_their_definitions(tiny):
    image = random_image(52)
    inputs = tiny.family.build_inputs(tiny.processor, [image], QUESTION)
    with torch.inference_mode():
        eager = eager_copy(tiny)(**inputs, output_attentions=True, output_hidden_states=True)
    group = tiny.family.visual_groups(tiny.model, inputs)[0]
    records = compare(tiny.model, tiny.processor, tiny.family, [image], QUESTION,
                      methods=["pyramiddrop", "divprune", "dart"], keep=9, prune_layer=2, max_new_tokens=2)
    # PyramidDrop: the last prompt token's head-mean attention at layer K itself (FastV's is layer K-1)
    at_k = eager.attentions[2][0, :, -1, group.positions].mean(0).double()
    assert torch.allclose(torch.tensor(records["pyramiddrop"].stages[0].scores, dtype=torch.float64), at_k, atol=1e-6)
    # DivPrune: the greedy max-min order of the hidden states entering K
    divprune = baselines.divprune_scores(eager.hidden_states[2][0, group.positions])
    assert torch.allclose(torch.tensor(records["divprune"].stages[0].scores, dtype=torch.float64), divprune, atol=1e-9)
    assert len(records["dart"].kept_indices) == 9
    for name in ("pyramiddrop", "divprune", "dart"):  # the unpruned run's reference scores are the same ones
        assert torch.allclose(torch.tensor(records["none"].reference_scores[name]),
                              torch.tensor(records[name].stages[0].scores), atol=1e-6)


def test_visionzip_needs_a_cls_token(qwen_tiny):
    t = qwen_tiny
    with pytest.raises(BadInput, match=r"no \[CLS\] token"):
        compare(t.model, t.processor, t.family, [random_image(53, (300, 200))], QUESTION, methods=["visionzip"],
                keep=4, max_new_tokens=2)


@pytest.mark.parametrize("method", ["fastv", "clse", "divprune", "random"])
def test_invert_keeps_the_lowest_ranked_tokens(tiny, method):
    inputs = tiny.family.build_inputs(tiny.processor, [random_image(54)], QUESTION)
    encoded = encode(tiny.model, tiny.family, inputs)
    normal = run(tiny.model, tiny.processor, encoded, method, keep=12, prune_layer=2, max_new_tokens=2)
    inverted = run(tiny.model, tiny.processor, encoded, method, keep=12, prune_layer=2, max_new_tokens=2,
                   invert=True)
    scores = torch.tensor(inverted.stages[0].scores)
    assert inverted.invert and torch.equal(scores, torch.tensor(normal.stages[0].scores))  # the same ranking
    assert inverted.kept_indices == sorted(scores.argsort(stable=True)[:12].tolist())
    assert not set(inverted.kept_indices) & set(normal.kept_indices)  # 12 + 12 of 36 tokens: disjoint


def test_old_name_and_unknown_words_are_noted(tiny):
    records = compare(tiny.model, tiny.processor, tiny.family, [random_image(55)], "what colour is the circle ?",
                      methods=["clse_hybrid"], keep=9, prune_layer=2, max_new_tokens=2)
    assert list(records) == ["none", "clse"]
    notes = " ".join(records["clse"].notes)
    assert "'clse_hybrid' is now called 'clse'" in notes
    assert "does not know the word(s) 'colour'" in notes and "it knows:" in notes and "circle" in notes


def test_every_registered_method_runs_single_and_paper_schedule(tiny):
    names = [m for m in METHODS if m != "none" and applies_to(m, "image")]
    for schedule in ("single", "paper"):
        records = compare(tiny.model, tiny.processor, tiny.family, [random_image(56)], QUESTION, methods=names,
                          keep=9, schedule=schedule, max_new_tokens=2)
        for name in names:
            expected = 9 if schedule == "single" else 2  # int(0.294 x 9)
            assert len(records[name].kept_indices) == expected, (name, schedule)


def test_random_draws_another_subset_for_another_input_and_the_same_for_the_same(tiny):
    def kept(seed_image, seed=0):
        return compare(tiny.model, tiny.processor, tiny.family, [random_image(seed_image)], QUESTION,
                       methods=["random"], keep=9, prune_layer=2, max_new_tokens=1, seed=seed,
                       diagnostics=False)["random"].kept_indices

    assert kept(57) == kept(57)
    assert kept(57) != kept(58)  # a fixed mask over a dataset would not be a random baseline
    assert kept(57) != kept(57, seed=1)
