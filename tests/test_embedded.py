"""The committed embedded model (models/shapes_llava/weights): loads offline the way a hub checkpoint does,
answers fresh generated questions, and pruning with keep-all changes nothing."""

import numpy as np
import pytest
import torch

import models
from explorer.engine import compare
from explorer import evaluate
from models.shapes_llava import scenes

EVAL_SEED = 424_242  # below scenes.TRAIN_SEED_START: never seen in training


@pytest.fixture(scope="module")
def embedded():
    return models.load()  # no id: the embedded model, from its save_pretrained directory


def test_loads_offline_as_a_standard_llava(embedded):
    model, processor, family = embedded
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert family is models.llava
    assert model.config.text_config.num_hidden_layers >= 6
    assert family.grid_side(model) == 16  # 256 visual tokens (224 px, patch 14)
    assert model.dtype == torch.float32 and model.config.text_config._attn_implementation == "sdpa"


def test_answers_fresh_questions_from_the_image(embedded):
    """100 fresh held-out questions (80 scenes, 20 clips): at least 85% right (the issue's bar), and well above
    the best any answerer could do from the question alone."""
    items = evaluate.eval_items(EVAL_SEED, n_scenes=80, n_clips=20)
    report = evaluate.evaluate(*embedded, items, methods=["none"], budgets=[])
    result = report["none"]["unpruned"]
    assert result["questions"] == 100
    assert result["accuracy_overall"] >= 0.85, result
    # the best any text-only answerer can do on these items: the most common answer of each question form
    by_form = {}
    for _, _, question, _, _ in items:
        form = " ".join(w for w in question.text.split() if w not in scenes.COLORS and w.rstrip("s") not in scenes.SHAPES)
        by_form.setdefault(form, []).append(question.answer)
    prior = sum(max(answers.count(a) for a in set(answers)) for answers in by_form.values()) / len(items)
    assert result["accuracy_overall"] >= prior + 0.10, (result, prior)


def test_single_object_colors_are_read_from_the_image(embedded):
    model, processor, family = embedded
    correct = 0
    for seed in range(EVAL_SEED, EVAL_SEED + 30):
        scene = scenes.make_scene(seed, max_objects=1)
        obj = scene.objects[0]
        records = compare(model, processor, family, [scene.image], f"what color is the {obj.shape} ?",
                          methods=[], max_new_tokens=2, diagnostics=False)
        correct += records["none"].answer == obj.color
    assert correct >= 27  # 90%; chance is 20%


def test_keep_all_pruning_gives_the_unpruned_answers(embedded):
    model, processor, family = embedded
    for seed in range(EVAL_SEED, EVAL_SEED + 8):
        scene = scenes.make_scene(seed)
        question = scene.questions[seed % len(scene.questions)]
        records = compare(model, processor, family, [scene.image], question.text,
                          methods=["clse", "fastv", "uniform"], keep=256, prune_layer=2, max_new_tokens=4)
        for name in ("clse", "fastv", "uniform"):
            assert records[name].answer_ids == records["none"].answer_ids
            assert torch.allclose(records[name].step_logits[0], records["none"].step_logits[0], atol=1e-5)


def test_target_recall_is_measured_on_the_queried_object(embedded):
    model, processor, family = embedded
    items = evaluate.eval_items(EVAL_SEED, n_scenes=12, n_clips=0)  # images: 256 tokens each
    report = evaluate.evaluate(model, processor, family, items, methods=["uniform"], budgets=[256, 28])
    assert report["uniform"]["256"]["target_recall"]["all"] == 1.0  # keep all: every target token kept
    share = report["uniform"]["28"]["target_recall"]["all"]
    assert 0.0 < share < 0.5  # an even subsample keeps about 28 / 256 of any object
    assert np.isclose(share, 28 / 256, atol=0.08)


def test_clse_scores_separate_the_tokens(embedded):
    """CLSE clamps its evolution map to [0, 1] (method.md); if the model's high-pass energy grows past the
    clamp between the reference layer and K, every token scores 0.5 and the cut keeps the first tokens, which
    would make the embedded model's spectral picture an artifact. The committed model must not do that."""
    model, processor, family = embedded
    items = evaluate.eval_items(EVAL_SEED, n_scenes=12, n_clips=0)
    report = evaluate.evaluate(model, processor, family, items, methods=["clse"], budgets=[28])
    assert report["clse"]["28"]["tied_cuts"] <= 0.25, report["clse"]["28"]


def test_evolution_by_row_on_background(embedded):
    """The README's explanation of CLSE's top-row preference on this model: on empty background, the early
    layers change the first rows' tokens far more than the last rows', and the evolution intensity follows."""
    rows = evaluate.evolution_by_row(*embedded, seed=EVAL_SEED, n_scenes=10)
    energy, change = np.array(rows["evolution_intensity"]), np.array(rows["hidden_change"])
    assert energy.shape == change.shape == (16,) and np.isfinite(energy).all() and (energy >= 0).all()
    assert energy[:4].mean() > 3 * energy[-4:].mean(), rows
    assert change[:4].mean() > 2 * change[-4:].mean(), rows
