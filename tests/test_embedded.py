"""The committed embedded model (models/shapes_llava/weights): loads offline the way a hub checkpoint does,
answers fresh generated questions (typed as people type them too), its answers depend on whether the queried
object's tokens were kept, and pruning with keep-all changes nothing."""

import numpy as np
import pytest
import torch

import models
from explorer.eval import embedded as evaluate
from explorer.core.compare import compare
from models.shapes_llava import scenes

EVAL_SEED = 424_242  # below scenes.TRAIN_SEED_START: never seen in training
# Bars: what the committed weights (the 3,800-step issue-12 recipe: vision tower 128 x 5, variant scenes, typed
# questions, visual tokens dropped at layers 1-3 in the last 40% of the steps) reach on these 100 fresh
# questions, less a margin. Plain: 0.95 on images, 0.90 on motion (18 of 20 clips; 0.91 on the evaluation's
# 100), every image kind >= 0.88 (count, exists), 0.94 overall. Typed as people type them: 0.95 / 0.90. On the
# evaluation's 300 scenes and 100 clips: 0.973 / 0.91, every kind >= 0.93 (docs/evaluation.md).
IMAGE_BAR, MOTION_BAR, IMAGE_KIND_BAR, ABOVE_PRIOR = 0.90, 0.75, 0.80, 0.30
TYPED_IMAGE_BAR, TYPED_MOTION_BAR = 0.90, 0.75
# Follow-ups (the conversation weights, issue 23): on these 34 image and 12 clip dialogues the unpruned model
# answers 0.97 of the image follow-ups and 1.00 of the motion ones (first questions 1.00 / 0.92).
FOLLOW_UP_IMAGE_BAR, FOLLOW_UP_MOTION_BAR = 0.85, 0.75


@pytest.fixture(scope="module")
def fresh(embedded):
    """100 fresh held-out items (80 scenes, 16 questions of each image kind, and 20 clips), unpruned."""
    items = evaluate.eval_items(EVAL_SEED, n_scenes=80, n_clips=20)
    return items, evaluate.evaluate(*embedded, items, methods=[], budgets=[], invert=False)


def test_loads_offline_as_a_standard_llava(embedded):
    model, _, family = embedded
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert family is models.llava
    assert model.config.text_config.num_hidden_layers >= 6
    assert family.grid_side(model) == 16  # 256 visual tokens (224 px, patch 14)
    assert model.dtype == torch.float32 and model.config.text_config._attn_implementation == "sdpa"


def test_answers_fresh_questions_from_the_image(fresh):
    """Answers above what the question alone allows (the issue's targets are 90% on images, 85% on motion,
    80% for every kind on 300 scenes and 100 clips; these are 100 other questions)."""
    items, rows = fresh
    result = evaluate.accuracy(rows)
    assert result["questions"] == 100
    assert result["images"] >= IMAGE_BAR and result["motion"] >= MOTION_BAR, result
    assert min(v for kind, v in result["by_kind"].items() if kind != "motion") >= IMAGE_KIND_BAR, result
    # the best any text-only answerer can do on these items: the most common answer of each question form
    by_form = {}
    for item in items:
        words = item.question.text.split()
        form = " ".join(w for w in words if w not in scenes.COLORS and w.rstrip("s") not in scenes.SHAPES)
        by_form.setdefault(form, []).append(item.question.answer)
    prior = sum(max(answers.count(a) for a in set(answers)) for answers in by_form.values()) / len(items)
    assert result["overall"] >= prior + ABOVE_PRIOR, (result, prior)
    # scored on the first word: the model's answers are that one word and nothing after it
    assert all(row["one_word"] for row in rows)


def test_questions_as_people_type_them(embedded, fresh):
    """Capitalised, "?" glued to the last word, no "?" at all, shouted with "?!": the tokenizer reads them as
    the generated questions (no unknown word), and the answers stay well above the question-only prior."""
    model, processor, family = embedded
    items, plain_rows = fresh
    texts = [evaluate.typed(item.question.text, i) for i, item in enumerate(items)]
    assert [evaluate.typed("what color is the circle ?", style) for style in range(3)] == [
        "What color is the circle?", "What color is the circle", "WHAT COLOR IS THE CIRCLE?!"]
    tokenizer = processor.tokenizer
    for item, text in zip(items, texts):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids, text
        if text.endswith(("?", "?!")):
            assert ids == tokenizer(item.question.text, add_special_tokens=False)["input_ids"], text
    rows = evaluate.evaluate(model, processor, family, items, methods=[], budgets=[], invert=False, typed_style=0)
    typed, plain = evaluate.accuracy(rows), evaluate.accuracy(plain_rows)
    assert typed["images"] >= TYPED_IMAGE_BAR and typed["motion"] >= TYPED_MOTION_BAR, (typed, plain)


def test_answers_depend_on_whether_the_object_was_kept(embedded):
    """Issue 12's measure: with at least half of the queried object's tokens kept, the answers stay close
    to the unpruned ones; with none of them kept, near chance. FastV at 28 tokens and its inversion (the same
    count, the lowest-attention tokens), and PyramidDrop alike, give both cases on 40 fresh scenes."""
    items = evaluate.eval_items(EVAL_SEED + 1000, n_scenes=40, n_clips=0)
    rows = evaluate.evaluate(*embedded, items, methods=["fastv", "pyramiddrop"], budgets=[28], invert=True)
    kept = evaluate.by_share_kept([r for r in rows if not r["inverted"]])["all methods"]
    gone = [r for r in rows if r["share"] == 0]
    assert kept["half or more"]["runs"] >= 10 and len(gone) >= 10, (kept, len(gone))
    assert kept["half or more"]["ratio"] >= 0.8, kept  # 0.871 on the committed weights
    chance = np.mean([evaluate.CHANCE[r["qkind"]] for r in gone])
    assert np.mean([r["correct"] for r in gone]) <= chance + 0.2, (gone, chance)


def test_single_object_colors_are_read_from_the_image(embedded):
    model, processor, family = embedded
    correct = 0
    for seed in range(EVAL_SEED, EVAL_SEED + 30):
        scene = scenes.make_scene(seed, max_objects=1)
        obj = scene.objects[0]
        records = compare(model, processor, family, [scene.image], f"What color is the {obj.shape}?",
                          methods=[], max_new_tokens=2, diagnostics=False)
        correct += records["none"].answer == obj.color
    assert correct >= 27  # 90%; chance is 20%


def test_keep_all_pruning_gives_the_unpruned_answers(embedded):
    model, processor, family = embedded
    for seed in range(EVAL_SEED, EVAL_SEED + 8):
        scene = scenes.make_scene(seed)
        question = scene.questions[seed % len(scene.questions)]
        records = compare(model, processor, family, [scene.image], question.text,
                          methods=["clse", "fastv", "uniform"], keep=256, prune_layer=2, max_new_tokens=4,
                          diagnostics=False, keep_logits=True)
        for name in ("clse", "fastv", "uniform"):
            assert records[name].answer_ids == records["none"].answer_ids
            assert torch.allclose(records[name].step_logits[0], records["none"].step_logits[0], atol=1e-5)


def test_target_recall_and_ties_are_measured_per_run(embedded):
    """Recall is the share of the queried object's tokens kept: all of them at keep-all, about k / 256 for an
    even subsample; inverted runs keep as many tokens as normal ones. CLSE's scores separate the tokens (if
    the model's high-pass energy grew past CLSE's clamp between L and K, every token would score alike and
    the cut would keep the first tokens, a tie the record notes)."""
    items = evaluate.eval_items(EVAL_SEED, n_scenes=12, n_clips=0)  # images: 256 tokens each
    rows = evaluate.evaluate(*embedded, items, methods=["uniform", "clse"], budgets=[256, 28], invert=True)
    report = evaluate.summarize(rows)
    assert report["uniform"]["256"]["target_recall"]["all"] == 1.0
    assert report["uniform"]["256 inverted"]["target_recall"]["all"] == 1.0
    share = report["uniform"]["28"]["target_recall"]["all"]
    assert np.isclose(share, 28 / 256, atol=0.08)
    assert evaluate.same_token_count(rows)
    assert report["uniform"]["28"]["average_kept"]["image"] < report["uniform"]["256"]["average_kept"]["image"]
    assert report["clse"]["28"]["tied_cuts"] <= 0.25, report["clse"]["28"]


def test_evolution_by_row_on_background(embedded):
    """The per-row profile of CLSE's evolution intensity and of the hidden-state change on empty background
    (`python -m explorer.eval.embedded --rows`, models/shapes_llava/README.md): one finite, non-negative value
    per image row."""
    rows = evaluate.evolution_by_row(*embedded, seed=EVAL_SEED, n_scenes=10)
    energy, change = np.array(rows["evolution_intensity"]), np.array(rows["hidden_change"])
    assert energy.shape == change.shape == (16,) and np.isfinite(energy).all() and (energy >= 0).all()
    assert (change > 0).all()


def test_unpruned_follow_ups_are_answered(embedded):
    """Conversations (issue 23's training): a follow-up about other objects than the first question's, on fresh
    held-out scenes and clips, answered by the unpruned model (its cache continued, as the page does)."""
    from explorer.eval import follow_ups

    items = follow_ups.dialogues(EVAL_SEED, n_scenes=40, n_clips=12)
    rows = follow_ups.evaluate(*embedded, items, methods=[], budgets=[])
    report = follow_ups.summary(rows)["unpruned"]
    assert report["image"]["dialogues"] >= 30 and report["video"]["dialogues"] == 12
    assert report["image"]["follow_up"] >= FOLLOW_UP_IMAGE_BAR, report
    assert report["video"]["follow_up"] >= FOLLOW_UP_MOTION_BAR, report
    assert report["image"]["first"] >= IMAGE_BAR, report


def test_the_object_sweep_is_not_saturated_at_the_pages_default_budget(embedded):
    """Eight identical circles compete for the page's default budget (1/9 of the tokens): FastV and CLSE keep
    part of each, not all of every one (the old single-object sweep kept 1.0 everywhere)."""
    from explorer.core.settings import check_settings
    from explorer.analysis.sweep import positional_sweep
    from explorer.page.api import COMPARE_ARGUMENTS

    sweep = positional_sweep(*embedded, check_settings(methods=["clse", "fastv"], keep=COMPARE_ARGUMENTS["keep"]))
    assert len(sweep["positions"]) == 8 and sweep["positions"] == sorted(sweep["positions"])
    for method in ("clse", "fastv"):
        recall = sweep["recall"][method]
        assert max(recall) < 1.0 and min(recall) < max(recall), (method, recall)
    assert 0 < sweep["kept_share"] < 0.2


def test_two_dtypes_are_compared_on_the_same_questions():
    """explorer.eval.dtypes: per method and budget, the items both dtypes answered, paired; the answers that differ,
    the first dtype's close calls and the differing answers among them, counted by hand on made-up rows."""
    from explorer.eval.dtypes import compare_dtypes

    def row(item, method, answer, margin, correct, kept=b"\xc0"):  # packed kept bits: tokens 0 and 1 of 8
        return {"method": method, "keep": None if method == "none" else 28, "item": item, "answer": answer,
                "margin": margin, "correct": correct, "kept": kept}

    first = [row(0, "none", "red", 5.0, True), row(1, "none", "two", 3.0, True),
             row(0, "clse", "red", 0.05, True), row(1, "clse", "one", 0.02, False), row(2, "clse", "yes", 2.0, True),
             {"method": "clse", "keep": 28, "item": 3, "refused": "a sentence"}]
    second = [row(0, "none", "red", 5.1, True), row(1, "none", "two", 3.0, True),
              row(0, "clse", "blue", 0.0, False), row(1, "clse", "two", 0.1, True),
              row(2, "clse", "no", 0.5, False, kept=b"\x60")]  # tokens 1 and 2
    entries = {e["method"]: e for e in compare_dtypes({"float32": first, "bfloat16": second})}
    assert entries["none"]["answers_differ"] == 0 and entries["none"]["accuracy"] == [1.0, 1.0]
    clse = entries["clse"]
    assert clse["questions"] == 3 and clse["dtypes"] == ["float32", "bfloat16"]  # the refused item left out
    assert clse["accuracy"] == pytest.approx([2 / 3, 1 / 3]) and clse["difference"] == pytest.approx(-1 / 3)
    assert (clse["answers_differ"], clse["close_calls"], clse["differ_and_close"]) == (3, 2, 2)
    assert (clse["kept_sets_differ"], clse["differ_same_kept"]) == (1, 2)  # item 2 kept another set in bfloat16
    assert clse["kept_overlap"] == pytest.approx((1 + 1 + 0.5) / 3)


def test_the_dtype_evaluation_runs_on_the_embedded_model(capsys):
    """python -m explorer.eval.dtypes on three scenes and a clip: a row for the unpruned model and each method, every
    question answered in both dtypes; a bad --dtypes is one line and exit 2."""
    from explorer.eval import dtypes

    assert dtypes.main(["--n", "3", "--keep", "28", "--methods", "clse", "--dtypes", "float32,bfloat16"]) == 0
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in capsys.readouterr().out.splitlines()
            if line.startswith(("| none", "| clse"))]
    assert [(r[0], r[1], r[2]) for r in rows] == [("none", "all", "4"), ("clse", "28", "4")]
    assert all(int(r[6]) <= 4 and int(r[7]) <= int(r[6]) and int(r[10]) <= int(r[6]) for r in rows)
    assert rows[0][8] == "0 (1.000)"  # the unpruned model keeps every token in both dtypes
    assert dtypes.main(["--dtypes", "float32"]) == 2
    assert "--dtypes takes two of float32, bfloat16, float16" in capsys.readouterr().err
