"""The page's front door and its researcher's panels, issue 31, without a browser (tests/test_browser.py walks the
page itself): the model menu, the sliders counted as the figures count, the shipped report by default, the
unpruned row's budget, the question's hint and British spellings, the examples (photos labelled as needing a hub
model), the budget beside the command line's, timings with their spread or a one-run warning, the kept count after
each stage, keep and reprune side by side, no server path in the progress line, titles wrapped to their panel,
one colour per method; CLSE's factors, the stage slider, and a generated example's ground truth."""

import re

import gradio as gr
import numpy as np
import pytest

import models
from explorer.methods.registry import METHODS
from explorer.page import events, figures, panels, reports, service, ui
from explorer.page.api import COMPARE_ARGUMENTS
from explorer.serve import access

SCENE = service.ASSETS + "/scene_205.png"
QUESTION = "where is the red circle ?"


@pytest.fixture(scope="module")
def page():
    """The page's Blocks (built, not launched) and its components by label."""
    demo = ui.build_app()
    by_label = {}
    for block in demo.blocks.values():
        label = getattr(block, "label", None)
        if label:
            by_label.setdefault(label, block)
    return demo, by_label


@pytest.fixture(scope="module")
def scene():
    return service.run_comparison(image=SCENE, video=None, question=QUESTION, method_a="clse_spectral",
                                  method_b="fastv", keep=COMPARE_ARGUMENTS["keep"])


def test_the_model_menu_lists_what_the_deployment_serves(page):
    _, by_label = page
    menu = by_label["Model"]
    assert [value for _, value in menu.choices] == access.model_choices()
    assert menu.value == models.EMBEDDED_ID and len(menu.choices) <= 2  # no hub id unless downloads are allowed


def test_the_sliders_count_as_the_figures_count(page):
    _, by_label = page
    frame = by_label["Frame (video)"]
    assert frame.minimum == 1 and frame.value == 1
    update = events.frame_slider(4)
    assert (update["minimum"], update["maximum"], update["value"], update["visible"]) == (1, 4, 1, True)
    assert [events.frame_index(f, 4) for f in (0, 1, 4, 9)] == [0, 0, 3, 3]  # 1 .. 4 -> 0 .. 3, clamped
    assert by_label["Turn of the conversation (kept sets)"].minimum == 1


def test_the_benchmark_tab_shows_the_shipped_report_by_default(page):
    demo, _ = page
    shipped = reports.shipped_report()
    assert shipped and shipped["runs"]
    states = [block for block in demo.blocks.values() if isinstance(block, gr.State)]
    assert any(state.value == shipped for state in states)  # a new visitor's tab starts with it


def test_the_unpruned_row_has_no_budget_and_the_kept_count_follows_the_stages(scene):
    payload, _, a = scene
    rows = {row["method"]: row for row in a.answers}
    assert rows["none"]["nominal"] is None and rows["fastv"]["nominal"] == 28
    table = figures.answers_table(a).data[0].cells.values
    assert table[5][0] == "-" and table[5][1] == "28"
    _, _, official = service.run_comparison(image=SCENE, video=None, question=QUESTION, method_a="clse",
                                            method_b="pyramiddrop", keep=0.33, schedule="official")
    cells = dict(zip(figures.answers_table(official).data[0].cells.values[0],
                     figures.answers_table(official).data[0].cells.values[4]))
    counts = [sum(s["keep_counts"]) for s in official.results["clse"]["stages"]]
    assert len(counts) == 3 and cells["clse"] == " → ".join(map(str, counts)) + " / 256"
    # the stage slider: each stage's scores and the set kept after it
    importance = figures.importance_figure(official, None)
    steps = importance.layout.sliders[0].steps
    assert len(steps) == 3 and "stage 1 of 3" in importance.layout.annotations[0].text
    kept_after_2 = int((np.asarray(steps[1].args[0]["z"][1]) > 0).sum())
    assert kept_after_2 == counts[1]


def test_the_question_says_what_can_be_asked_and_reads_british_spellings(page):
    _, by_label = page
    hint = by_label["Question"].info
    assert "what color is the circle?" in hint and "how many squares are there?" in hint
    text, notes = service.americanised("What Colour is the circle?", models.EMBEDDED_ID)
    assert text == "What Color is the circle?" and "'Colour' read as 'color'" in notes[0]
    assert service.americanised("What colour is it?", "llava-hf/llava-1.5-7b-hf") == ("What colour is it?", ())
    assert service.americanised("a grey centre", models.EMBEDDED_ID) == ("a grey centre", ())  # not in its words
    payload, _, a = service.run_comparison(image=SCENE, video=None, question="What colour is the square?",
                                           method_a="clse", method_b="fastv", keep=28)
    title = figures.answers_table(a).layout.title.text
    assert "'colour' read as 'color'" in title and "does not know" not in title
    assert payload["results"]["none"]["question"] == "What color is the square?"


def test_the_examples_come_before_compare_and_the_photos_need_a_hub_model(page):
    demo, _ = page
    scenes, photos = service.example_split()
    assert [r[2] for r in scenes] == [r[2] for r in service.examples()[:len(scenes)]]  # load_example's indices
    assert photos and all(r[0].endswith(".jpg") for r in photos)
    assert events.load_photo(0) == photos[0]
    with pytest.raises(gr.Error, match="no photo example 9"):
        events.load_photo(9)
    order = [block for block in demo.blocks.values()]
    datasets = [b for b in order if isinstance(b, gr.Dataset)]
    assert "need a hub model" in datasets[1].label
    compare = next(b for b in order if isinstance(b, gr.Button) and b.value == "Compare")
    assert all(d._id < compare._id for d in datasets)  # built, so laid out, before the button


def test_the_page_states_its_budget_beside_the_command_lines(page):
    _, by_label = page
    info = by_label["Keep: a count >= 1 or a ratio < 1 per image/video"].info
    assert "28 of the embedded model's 256" in info and "command line's default is 64 tokens" in info


def test_timings_carry_their_spread_or_a_one_run_warning(scene):
    _, _, a = scene
    table = figures.answers_table(a)
    assert "prefill ms (one run)" in str(table.data[0].header.values) and "timings: one run each" in \
        table.layout.title.text
    assert "one run each" in figures.cost_figure(a).layout.title.text
    _, _, repeated = service.run_comparison(image=SCENE, video=None, question=QUESTION, method_a="clse",
                                            method_b="fastv", keep=28, repeats=2)
    cells = figures.answers_table(repeated).data[0].cells.values[7]
    assert all(re.fullmatch(r"[\d.]+ \([\d.]+-[\d.]+, 2 runs\)", cell) for cell in cells)


def test_keep_and_reprune_answers_side_by_side_for_the_same_follow_up():
    payload, _, a = service.run_comparison(image=SCENE, video=None, question=QUESTION, method_a="clse",
                                           method_b="fastv", keep=28, follow_ups="what color is the square ?",
                                           follow_up_mode="both")
    second = [(row["method"], row["mode"]) for row in a.answers if row["turn"] == 2]
    assert second == [("none", None), ("clse", "keep"), ("clse", "reprune"), ("fastv", "keep"), ("fastv", "reprune")]
    methods = figures.answers_table(a).data[0].cells.values[0]
    assert "fastv (keep)" in methods and "fastv (reprune)" in methods
    assert payload["other_mode_turns"]["mode"] == "reprune"


def test_the_progress_line_names_no_server_path():
    assert service.without_paths("loading /srv/models/tiny-llava (float32)", "/srv/models/tiny-llava") == \
        "loading tiny-llava (float32)"
    assert service.without_paths("reading /tmp/x/y/weights.safetensors now", "shapes-llava") == \
        "reading weights.safetensors now"
    seen = []
    service.run_comparison(say=seen.append, image=SCENE, video=None, question=QUESTION, method_a="clse",
                           method_b="fastv", keep=28)
    assert seen and not any("/" in line.replace("w/o", "") for line in seen)


def test_no_title_runs_past_its_panel(scene):
    payload, view, a = scene
    for name, fig in panels.draw(a, view).items():
        panel = next(p for p in panels.PANELS if p.name == name)
        chars, sup_chars = figures.title_chars(panel.min_width)
        for line in (fig.layout.title.text or "").split("<br>"):
            plain = re.sub(r"<[^>]+>", "", line)
            assert len(plain) <= (sup_chars if line.startswith("<sup>") else chars), (name, plain)
        share = (fig.layout.meta or {}).get("cell_width", 1.0) if isinstance(fig.layout.meta, dict) else 1.0
        for annotation in fig.layout.annotations:  # the subplots' titles, at their share of the width
            if annotation.name == figures.SUBPLOT_TITLE:
                for line in annotation.text.split("<br>"):
                    assert len(line) * figures.SUBPLOT_PX <= share * (panel.min_width - 100) + 10, (name, line)


def test_one_colour_per_method_and_a_and_b_drawn_first_with_baselines_marked(scene):
    _, view, a = scene
    scatter = figures.position_scatter(a)
    visible = {trace.name.split(" (")[0]: trace.visible for trace in scatter.data}
    assert visible["clse_spectral"] is True and visible["fastv"] is True
    assert visible["clse"] == "legendonly" and visible["uniform"] == "legendonly"
    names = [trace.name for trace in figures.row_profile(a).data]
    assert any(name.startswith("uniform (baseline)") for name in names)
    assert not any(name.startswith("fastv (baseline)") for name in names)
    for fig in (figures.row_profile(a), figures.sweep_figure(a)):
        for trace in fig.data:
            method = trace.name.split(" (")[0]
            assert trace.line.color == METHODS[method].color, (fig.layout.title.text, method)


def test_clse_factors_panel_splits_the_score(scene):
    _, view, a = scene
    factors = a.factors
    assert list(factors) == ["spectral factor", "attention", "product (clse)"]
    spectral, attention, product = (factors[k]["scores"] for k in factors)
    valid = ~np.isnan(product)
    np.testing.assert_allclose(product[valid], spectral[valid] * attention[valid], rtol=1e-4)
    fig = figures.factors_figure(a, view)
    titles = [annotation.text for annotation in fig.layout.annotations[:3]]
    assert all(f"{factors[k]['spearman']:+.2f}" in t.replace("<br>", " ") for k, t in zip(factors, titles))


def test_a_generated_example_brings_its_ground_truth(scene):
    payload, view, a = scene
    truth = payload["ground_truth"]
    assert truth["answer"] == "bottom-right" and truth["target_tokens"]
    assert a.recall["none"] == 1.0 and 0.0 <= a.recall["fastv"] <= 1.0
    table = figures.answers_table(a)
    assert "the right answer: <b>bottom-right</b>" in table.layout.title.text
    header = [h.replace("<b>", "").replace("</b>", "") for h in table.data[0].header.values]
    assert "asked object's tokens kept" in header
    importance = figures.importance_figure(a, view)
    outlines = [shape for shape in importance.layout.shapes if shape.type in ("circle", "rect", "path")]
    assert len(outlines) == 4 * len(truth["objects"])  # every object on each of the four maps
    assert sum(shape.line.color == figures.OUTLINE_ASKED["color"] for shape in outlines) == 4
    # an image that is no generated example has none
    _, _, other = service.run_comparison(image=service.ASSETS + "/cat.jpg", video=None, question="what color is "
                                         "the cat ?", method_a="clse", method_b="fastv", keep=28)
    assert other.ground_truth is None and "right answer" not in figures.answers_table(other).layout.title.text


def test_a_colour_on_any_tab_names_one_method(scene):
    """Every trace with a legend entry that is drawn in a method's registry colour is that method's; stages of the
    time, cost measures and layers take colours no method has."""
    _, view, a = scene
    by_color = {m.color.lower(): name for name, m in METHODS.items()}
    figs = list(panels.draw(a, view).values()) + list(reports.benchmark_figures(reports.shipped_report()).values())
    for fig in figs:
        for trace in fig.data:
            if not trace.name or trace.showlegend is False:
                continue
            colors = [getattr(getattr(trace, part, None), "color", None) for part in ("line", "marker")]
            for color in colors:
                if isinstance(color, str) and color.lower() in by_color:
                    owner = by_color[color.lower()]
                    label = "unpruned" if owner == "none" else owner
                    assert owner in trace.name or label in trace.name, (fig.layout.title.text, trace.name, owner)
