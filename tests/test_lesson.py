"""The lesson on the shipped model: every step run as the page runs it (its inputs through service.run_comparison),
and each claim its text makes measured here, not written: if one stops holding (new weights, a changed method), the
step's text must change. Also: the steps on a hub model (what is skipped, and said), and the report the app
ships (present, reproducible, drawn in the methods' colours with intervals)."""

import json

import numpy as np
import pytest

from explorer.eval import shipped
from explorer.methods.registry import METHODS
from explorer.page import events, lesson, reports, service

HUB = "llava-hf/llava-1.5-7b-hf"


@pytest.fixture(scope="module")
def steps():
    """{step: (payload, view, analysis)} of the four steps that run, on the embedded model."""
    return {i: service.run_comparison(**lesson.inputs_for(i)) for i in range(4)}


def test_every_step_sets_its_inputs_and_opens_its_tab():
    assert len(lesson.STEPS) == 5
    for i, step in enumerate(lesson.STEPS[:4]):
        values = lesson.inputs_for(i)
        assert round(values["keep"] * 256) == 28 and values["image"].endswith(".png")  # 28 of the 256 tokens
        assert step.tab == "bias" and step.panel.startswith("panel-")
    assert lesson.STEPS[4].panel == "report-spearman-shapes"
    assert lesson.inputs_for(4) == {} and lesson.STEPS[4].tab == "benchmark"
    assert lesson.intro(0).startswith("### Positional bias: a five-step lesson: step 1 of 5")


def test_step_1_attention_climbs_with_the_row_and_the_spectral_factor_does_not(steps):
    _, _, a = steps[0]
    assert a.pair == ("clse_spectral", "fastv")
    assert a.spearman["fastv"] > 0.3 and a.spearman["clse_spectral"] < 0.0  # measured: +0.46 and -0.30
    top, bottom = lesson._band(a.row_means["fastv"])
    assert bottom > top + 15  # FastV's bottom four rows well above its top four (58 against 31)
    text = lesson.findings(0, a)
    assert "FastV's attention favours the late tokens on this scene" in text
    assert f"{a.spearman['fastv']:+.2f}" in text and f"{a.spearman['clse_spectral']:+.2f}" in text


def test_step_2_the_flip_test_spectral_follows_content_fastv_stays_in_place(steps):
    payload, _, a = steps[1]
    flip = payload["flip_test"]
    spectral, fastv = flip["clse_spectral"], flip["fastv"]
    assert spectral["chance"] == pytest.approx(28 / (2 * 256 - 28), abs=1e-3)  # about 0.06
    assert spectral["follows_content"] > 5 * spectral["stays_in_place"]  # measured: 0.44 against 0.04
    assert spectral["follows_content"] > 4 * spectral["chance"]
    assert fastv["stays_in_place"] > 5 * spectral["chance"] and fastv["follows_content"] < fastv["chance"]
    text = lesson.findings(1, a)
    assert "it chose positions, not content" in text and f"{fastv['stays_in_place']:.2f}" in text


def test_step_3_the_product_inherits_the_attention_lean(steps):
    payload, _, a = steps[2]
    assert a.pair == ("clse", "fastv")
    factors = {label: f["spearman"] for label, f in a.factors.items()}
    assert factors["attention"] > factors["product (clse)"] > 0.1 > 0 > factors["spectral factor"]
    clse = payload["flip_test"]["clse"]
    assert clse["stays_in_place"] > clse["follows_content"] and clse["stays_in_place"] > 2 * clse["chance"]
    text = lesson.findings(2, a)
    assert "brings attention's lean towards late tokens into CLSE" in text
    assert "That is why, with the default A = `clse`, the flip test looks position-biased too" in text


def test_step_4_the_sweep_shows_no_preference_for_lower_circles_and_what_it_shows_instead(steps):
    _, _, a = steps[3]
    sweep = a.sweep
    for recall in sweep["recall"].values():
        words, rho = lesson.trend(sweep["positions"], recall)
        assert words == "has no steady trend with the height" and rho < 0.5
    spectral, fastv = (np.mean(sweep["recall"][m]) for m in ("clse_spectral", "fastv"))
    assert spectral > fastv > sweep["kept_share"]  # measured: 0.42 and 0.28 against 0.11
    text = lesson.findings(3, a)
    assert "shows no preference for the lower circles" in text and f"{spectral:.2f}" in text


def test_step_5_over_200_scenes_fastv_leans_on_position_and_crowds_lower_rows():
    numbers = lesson.report_numbers()
    fastv, spectral = numbers["fastv"], numbers["clse_spectral"]
    assert fastv["samples"] == 200
    assert fastv["spearman"] > 0.3 and abs(spectral["spearman"]) < fastv["spearman"] / 1.5
    assert fastv["interval"][0] > spectral["interval"][1]  # the intervals do not overlap
    first, last, share = lesson.densest_band(fastv["rows"])
    assert first >= 6 and share > 0.55  # rows 8-13 hold 64% of what FastV keeps (a blind method's: 38%)
    assert spectral["recall"] > fastv["recall"] and spectral["accuracy"] > fastv["accuracy"]
    text = lesson.report_findings()
    assert "crowds into a band of lower rows" in text and f"rows, {first}-{last}," in text


def test_on_a_hub_model_the_sweep_is_skipped_and_said_so():
    assert [lesson.runs(i, HUB) for i in range(5)] == [True, True, True, False, False]
    assert lesson.inputs_for(0, HUB)["image"] == lesson.SCENE and lesson.inputs_for(3, HUB) == {}
    assert "**Skipped on llava-1.5-7b-hf**" in lesson.intro(3, HUB) and "Running" not in lesson.intro(3, HUB)
    assert "not llava-1.5-7b-hf's" in lesson.intro(4, HUB)
    assert lesson.findings(3, None, HUB) == ""
    # the page's handlers: the step sets nothing and runs nothing, the panels keep what they show
    *inputs, note, tabs = events.lesson_start(3, HUB)
    assert all(value == {"__type__": "update"} for value in inputs) and "Skipped" in note
    outputs = list(events.lesson_compare(3, question="", keep=28, model_id=HUB))
    assert len(outputs) == 1 and len(outputs[0]) == len(events.COMPARE_OUTPUTS)


def test_on_a_hub_model_the_text_gives_numbers_without_the_embedded_models_claims(steps):
    _, _, a = steps[0]
    text = lesson.findings(0, a, HUB)
    assert "Spearman with the position" in text and "FastV's attention favours" not in text


def test_the_shipped_report_is_there_small_and_drawn_in_the_methods_colours():
    report = lesson.shipped_report()
    assert report is not None and report["about"]["command"].startswith("python -m explorer.eval.shipped")
    with open(lesson.REPORT) as f:
        assert len(f.read()) < 100_000
    figures = reports.check_report(report)  # what the page checks of an uploaded one
    accuracy = figures["accuracy:shapes"]
    by_name = {trace.name: trace for trace in accuracy.data}
    assert by_name["fastv"].line.color == METHODS["fastv"].color
    assert by_name["clse_spectral"].error_y.array is not None  # 95% Wilson intervals
    spearman = figures["spearman:shapes"].data[0]
    assert "uniform (baseline) (every budget)" in spearman.x and spearman.error_y.array is not None
    rows = figures["rows:shapes"]
    assert {trace.visible for trace in rows.data if "keep 28" in trace.name} == {True}
    assert {trace.visible for trace in rows.data if "keep 85" in trace.name} == {"legendonly"}


def test_the_shipped_report_is_reproducible():
    """The builder, on a few scenes, twice: the same report (deterministic methods, seeded random, one thread),
    in the shape the page draws."""
    first, second = shipped.build(n=3), shipped.build(n=3)
    assert json.dumps(shipped.rounded(first)) == json.dumps(shipped.rounded(second))
    assert {r["method"] for r in first["runs"]} == {"none", *shipped.METHODS}
    reference = next(r for r in first["runs"] if r["method"] == "clse_spectral" and r["keep"] == 28)
    fastv = next(r for r in first["runs"] if r["method"] == "fastv" and r["keep"] == 28)
    assert reference["vs_first"] is None and fastv["vs_first"]["against"] == "clse_spectral keep 28"
    reports.report_figures(first)  # drawable


def test_the_steps_run_on_another_model(page_model, monkeypatch):
    """The lesson on a model that is not the embedded one (the page tests' tiny LLaVA, served as the deployment's
    model): steps 1-3 run on the same scene and give this run's numbers, step 4 is skipped and says why."""
    monkeypatch.setenv("EXPLORER_MODEL", page_model)
    for i in range(3):
        assert lesson.runs(i, page_model)
        payload, _, a = service.run_comparison(**lesson.inputs_for(i, page_model), model_id=page_model)
        assert "ground_truth" not in payload  # known scenes are the embedded model's only
        state = {"analyses": {(0, 0): a}}
        text = events.lesson_findings(i, state, page_model)
        assert "Measured in this run" in text and "Running" not in text
        assert "FastV's attention favours" not in text and "it chose positions" not in text
    assert not lesson.runs(3, page_model) and "Skipped on" in events.lesson_findings(3, None, page_model)
