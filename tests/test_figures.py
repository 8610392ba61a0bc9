"""The analysis computes the page's numbers from run records and the figures draw them: real records from the
tiny model (one image, two images, a 3-frame video) and small synthetic records for exact checks (non-square
grids, mirrored kept sets)."""

import copy
import json

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

from explorer.analysis import comparison as analysis
from explorer.page import figures, panels
from explorer.analysis.comparison import Analysis
from explorer.core.compare import compare
from explorer.methods import registry
from models import llava
from tests.conftest import random_image

QUESTION = "what color is the circle ?"
METHODS = ["clse", "fastv", "random"]


def run_case(tiny, images, kind="image"):
    records = compare(tiny.model, tiny.processor, tiny.family, images, QUESTION, methods=METHODS, keep=9,
                      prune_layer=2, ref_layer=0, max_new_tokens=3, kind=kind)
    return {name: r.to_json() for name, r in records.items()}, llava.model_view(tiny.processor, images)


@pytest.fixture(scope="module")
def cases(tiny):
    return {
        "image": run_case(tiny, [random_image(0)]),
        "two_images": run_case(tiny, [random_image(1), random_image(2, size=(60, 100))]),
        "video": run_case(tiny, [random_image(10 + i) for i in range(3)], kind="video"),
    }


def analysed(results, group=0, flipped=None, sweep=None, pair=("clse", "fastv")):
    payload = {"results": results, "positional_sweep": sweep,
               "flipped_kept_indices": {m: r["kept_indices"] for m, r in (flipped or results).items()}}
    return Analysis(payload, pair=pair, group=group)


def all_figures(results, view, group, frame):
    a = analysed(results, group, sweep={"positions": [0.1, 0.5, 0.9],
                                        "recall": {"clse": [0.2, 0.4, 0.6], "fastv": [0, 0.5, 1]}})
    return [panel.figure(a, view, frame) for panel in panels.PANELS]


@pytest.mark.parametrize("case, group, frame", [("image", 0, 0), ("two_images", 1, 0), ("video", 0, 2)])
def test_every_figure_serialises(cases, case, group, frame):
    results, view = cases[case]
    figs = all_figures(results, view, group, frame)
    assert len(figs) == len(panels.PANELS)
    for fig in figs:
        assert isinstance(fig, go.Figure)
        assert json.loads(fig.to_json())["data"]


def heatmaps(fig):
    return [trace for trace in fig.data if trace.type == "heatmap"]


def kept_and_pruned(record, g):
    kept = [n - g["offset"] for n in record["kept_indices"] if g["offset"] <= n < g["offset"] + g["count"]]
    pruned = sorted(set(range(g["count"])) - set(kept))
    return kept, pruned


def expected_percentiles(scores):
    """Independent of figures.percentiles: (# lower + (# equal - 1) / 2) / (n - 1) * 100."""
    scores = np.asarray(scores)
    lower = (scores[None, :] < scores[:, None]).sum(1)
    equal = (scores[None, :] == scores[:, None]).sum(1)
    return (lower + (equal - 1) / 2) / (len(scores) - 1) * 100


@pytest.mark.parametrize("case, group", [("image", 0), ("two_images", 1), ("video", 0)])
def test_importance_masks_hover_and_percentiles(cases, case, group):
    results, view = cases[case]
    g = results["none"]["groups"][group]
    t, h, w = g["grid"]
    for method in ("clse", "fastv"):
        kept, _ = kept_and_pruned(results[method], g)
        scores = np.array(results[method]["stages"][0]["scores"][g["offset"]:g["offset"] + g["count"]])
        percent = expected_percentiles(scores)
        best = int(np.argmax(scores))  # the first of the highest: rank 1, as the selection breaks ties
        checked = set()
        a = analysed(results, group)
        for frame in range(t):
            fig = figures.importance_figure(a, view, frame=frame)
            assert [tr.type for tr in fig.data].count("image") == 4  # the picture under every panel
            score_a, mask_a, score_b, mask_b = heatmaps(fig)
            score_map, mask = (score_a, mask_a) if method == "clse" else (score_b, mask_b)
            assert np.asarray(mask.z).shape == (h, w) and np.asarray(score_map.z).shape == (h, w)
            for n in range(frame * h * w, (frame + 1) * h * w):
                r, c = divmod(n % (h * w), w)
                expected = 1 if n in kept else 0
                assert mask.z[r][c] == expected
                assert score_map.z[r][c] == pytest.approx(percent[n])
                checked.add(expected)
            n = frame * h * w + (h * w) // 2 + 1  # one token's hover, both panels
            r, c = divmod(n % (h * w), w)
            for text in (mask.text[r][c], score_map.text[r][c]):
                assert f"token {g['offset'] + n}" in text and f"row {r}, column {c}" in text
                assert f"score: {scores[n]:.4g}" in text and "rank: " in text
                assert f"kept: {'yes' if n in kept else 'no'}" in text
            if best // (h * w) == frame:
                r, c = divmod(best % (h * w), w)
                assert f"rank: 1 of {g['count']}" in score_map.text[r][c]
        assert checked == {0, 1}


def synthetic_results(grid=(2, 3, 5), offset=4, kept_a=(0, 2, 7, 16, 29), kept_b=(2, 3, 7, 20)):
    """A records dict with one group of a non-square grid behind `offset` tokens of another group."""
    t, h, w = grid
    count = t * h * w
    total = offset + count
    groups = [{"kind": "image", "grid": [1, 1, offset], "offset": 0, "count": offset, "first_position": 1},
              {"kind": "video", "grid": list(grid), "offset": offset, "count": count, "first_position": 9}]

    def record(method, kept, scores):
        return {"method": method, "groups": groups, "visual_tokens": total, "kept_indices": list(kept),
                "stages": [{"layer": 2, "scores": scores, "keep_indices": list(kept)}] if scores else [],
                "answer": "red", "answer_ids": [1], "prune_layer": 2, "ref_layer": 0, "num_layers": 4}

    rng = np.random.default_rng(0)
    results = {"none": record("none", range(total), None)}
    results["none"]["reference_scores"] = {"uniform": list(rng.random(total))}
    results["a"] = record("a", [offset + k for k in kept_a], list(rng.random(total)))
    results["b"] = record("b", [offset + k for k in kept_b], [float(i) for i in range(total)])
    return results


def test_grid_mapping_on_a_non_square_grid():
    results = synthetic_results()
    g = results["none"]["groups"][1]
    grid = analysis.to_grid(list(range(100, 100 + g["offset"] + g["count"])), g)
    assert grid.shape == (2, 3, 5)
    for n in (0, 7, 16, 29):
        assert grid[n // 15, (n % 15) // 5, n % 5] == 100 + g["offset"] + n
    image = Image.new("RGB", (200, 90))  # wider than the 3 x 5 grid's 5:3 aspect: centre-cropped to 150 x 90
    a = Analysis({"results": results}, pair=("a", "b"), group=1)
    fig = figures.importance_figure(a, [Image.new("RGB", (8, 8)), image, image], frame=1)
    picture = next(tr for tr in fig.data if tr.type == "image")
    assert picture.dx == pytest.approx(5 / 150) and picture.dy == pytest.approx(3 / 90)
    mask = heatmaps(fig)[1]
    assert np.asarray(mask.z).shape == (3, 5)
    assert mask.z[0][1] == 1 and mask.z[0][0] == 0  # token 16 = frame 1, row 0, column 1 is kept; 15 is not
    assert "token 20" in mask.text[0][1] and "frame 1" in mask.text[0][1]


def test_overlap_counts_add_up_and_codes(cases):
    results, view = cases["image"]
    g = results["none"]["groups"][0]
    a = analysed(results)
    counts = a.overlap["counts"]
    assert sum(counts.values()) == g["count"]
    both = set(results["clse"]["kept_indices"]) & set(results["fastv"]["kept_indices"])
    assert counts["both"] == len(both)
    fig = figures.overlap_figure(a, view)
    z = np.asarray(heatmaps(fig)[0].z)
    assert (z == 3).sum() == counts["both"] and (z == 0).sum() == counts["neither"]
    assert all(str(v) in fig.layout.title.text for v in counts.values())

    synthetic = synthetic_results()
    counts = Analysis({"results": synthetic}, pair=("a", "b"), group=1).overlap["counts"]
    assert counts == {"both": 2, "only a": 3, "only b": 2, "neither": 30 - 7}


@pytest.mark.parametrize("case", ["video", "two_images", "image"])
def test_frame_counts_sum_to_kept(cases, case):
    results, _ = cases[case]
    fig = figures.frame_counts_figure(analysed(results))
    frames = sum(g["grid"][0] for g in results["none"]["groups"])
    for bar, method in zip(fig.data, METHODS):
        assert len(bar.y) == frames
        assert sum(bar.y) == len(results[method]["kept_indices"])
    if case == "video":  # 9 kept over 3 frames of one group; each frame's count is its own
        kept = results["clse"]["kept_indices"]
        assert list(fig.data[0].y) == [sum(1 for n in kept if n // 36 == f) for f in range(3)]


def test_rank_correlation_by_hand():
    assert analysis.rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert analysis.rank_correlation([4, 3, 2, 1], [0, 1, 2, 3]) == pytest.approx(-1.0)
    # ties averaged: ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4) -> 4.5 / sqrt(4.5 * 5)
    assert analysis.rank_correlation([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / np.sqrt(22.5))
    assert analysis.rank_correlation([5, None, 7, 9], [0, 1, 2, 3]) == pytest.approx(1.0)  # None skipped
    assert np.isnan(analysis.rank_correlation([1, 1, 1], [0, 1, 2]))


def test_bias_summary_and_score_sources():
    results = synthetic_results()
    a = Analysis({"results": results}, pair=("a", "b"), group=1)
    summary = a.spearman
    assert set(summary) == {"a", "b", "uniform"}  # "none" has no scores; "uniform" comes from reference_scores
    assert summary["b"] == pytest.approx(1.0)  # b's scores rise with the index
    assert a.bias_summary() == {"a": summary["a"], "b": summary["b"]}  # the payload's: the methods run
    fig = figures.position_scatter(a)
    assert [tr.name.split()[0] for tr in fig.data] == ["a", "b", "uniform"]
    assert "+1.00" in fig.data[1].name
    profile = figures.row_profile(a)
    assert list(profile.data[1].y) == sorted(profile.data[1].y)  # b favours the bottom rows


def test_flip_test_mirrored_and_identical():
    results = synthetic_results(kept_a=(0, 1, 5, 16, 29))
    # grid 2 x 3 x 5: local n = f*15 + r*5 + c; mirroring rows maps r -> 2 - r
    mirrored = copy.deepcopy(results)
    g = results["none"]["groups"][1]
    mirrored["a"]["kept_indices"] = analysis.mirror_rows(results["a"]["kept_indices"], g)
    assert sorted(mirrored["a"]["kept_indices"]) == [4 + n for n in (5, 10, 11, 19, 26)]
    a = analysed(results, group=1, flipped={"a": mirrored["a"]}, pair=("a", "b"))
    numbers = a.flip_numbers()
    assert set(numbers) == {"a"}  # b has no flipped run here
    assert numbers["a"]["follows_content"] == 1.0
    assert numbers["a"]["stays_in_place"] == pytest.approx(1 / 9)  # only token 5 (middle row) is shared
    fig = figures.flip_figure(a)
    assert "follows content 1.00" in fig.layout.annotations[2].text
    # the chance level: two random sets of the same size (5 of the group's 30 tokens) overlap by about k / (2n - k)
    kept = len(a.flip["a"]["kept"])
    assert numbers["a"]["chance"] == pytest.approx((kept * kept / 30) / (2 * kept - kept * kept / 30))
    assert numbers["a"]["chance"] == pytest.approx(analysis.chance_iou(kept, 30))
    assert any(shape.type == "line" and shape.x0 == pytest.approx(numbers["a"]["chance"])
               for shape in fig.layout.shapes)
    bars = [trace for trace in fig.data if trace.type == "bar"]
    assert list(bars[0].x) == [1.0, pytest.approx(1 / 9)]
    numbers = analysed(results, group=1, flipped={**results, "not_run": results["a"]}, pair=("a", "b")).flip_numbers()
    assert set(numbers) == {"a", "b"}
    assert numbers["a"]["stays_in_place"] == 1.0 and numbers["b"]["stays_in_place"] == 1.0


def test_flip_test_on_a_real_flipped_run(tiny, cases):
    from PIL import ImageOps

    results, _ = cases["image"]
    flipped, _ = run_case(tiny, [ImageOps.flip(random_image(0))])
    a = analysed(results, flipped=flipped)
    numbers, fig = a.flip_numbers(), figures.flip_figure(a)
    assert set(numbers) == set(METHODS)
    for n in numbers.values():
        assert 0 <= n["follows_content"] <= 1 and 0 <= n["stays_in_place"] <= 1
    json.loads(fig.to_json())


def test_cost_segments_sum_to_total(cases):
    results, _ = cases["image"]
    fig = figures.cost_figure(analysed(results))
    bars = [tr for tr in fig.data if tr.type == "bar"]
    assert len(bars) == 4
    for i, name in enumerate(fig.data[0].y):
        assert sum(bar.x[i] for bar in bars) == pytest.approx(results[name]["timings_ms"]["total"], rel=1e-9)


def test_efficiency_and_tokens_per_layer(cases):
    results, _ = cases["image"]
    a = analysed(results)
    fig = figures.efficiency_figure(a)
    assert [tr.name for tr in fig.data][:2] == ["prefill FLOPs", "KV cache after prefill"], \
        "every record measures its prefill FLOPs and its KV cache after prefill"
    flops, kv = fig.data[:2]  # then peak memory, where the records measured it
    names = list(fig.data[0].x)
    assert flops.y[names.index("none")] == 1 and kv.y[names.index("none")] == 1
    assert all(v < 1 for name, v in zip(names, flops.y) if name != "none")
    assert "4 n d^2" in fig.layout.title.text
    lines = figures.tokens_per_layer_figure(a)
    for trace in lines.data:
        assert list(trace.y) == results[trace.name]["tokens_per_layer"] and trace.line.shape == "hv"


def test_spectra_figures(cases):
    results, view = cases["video"]
    spec = results["none"]["spectra"][0]
    num_layers = results["none"]["num_layers"]
    a = analysed(results)
    heat = figures.spectrum_heatmap(a)
    assert np.asarray(heat.data[0].z).shape == (num_layers + 1, len(spec["radial"][0]))
    assert heat.data[0].z[1][2] == pytest.approx(np.log10(spec["radial"][1][2]))
    curves = figures.spectrum_curves(a)
    assert [tr.name for tr in curves.data] == ["input of layer 0", "input of layer 2", "decoder output"]

    maps = figures.highpass_maps_figure(a, frame=2)
    steps = maps.layout.sliders[0].steps
    assert len(steps) == num_layers + 1
    n = 2 * 36 + 3 * 6 + 4  # frame 2, row 3, column 4
    assert steps[1].args[0]["z"][0][3][4] == pytest.approx(spec["highpass"][1][n])

    evolution = figures.evolution_map(a, view, frame=2)
    k, ref = results["none"]["prune_layer"], results["none"]["ref_layer"]
    z = heatmaps(evolution)[0].z
    s_k, s_l = spec["highpass"][k][n], spec["highpass"][ref][n]
    assert z[3][4] == pytest.approx(abs(s_k - s_l))
    intensity = min(abs(s_k - s_l) / (np.mean(spec["highpass"][ref]) + s_l + 1e-6), 1.0)
    assert f"evolution intensity E: {intensity:.4g}" in heatmaps(evolution)[0].text[3][4]

    share = figures.highfreq_share_figure(a)
    assert list(share.data[0].y) == spec["highfreq_share"]


def test_missing_spectra_give_a_message_not_an_error(cases):
    results, view = cases["image"]
    bare = {name: {**r, "spectra": None} for name, r in results.items()}
    a = analysed(bare)
    for fig in (figures.spectrum_heatmap(a), figures.spectrum_curves(a), figures.highpass_maps_figure(a),
                figures.highfreq_share_figure(a), figures.evolution_map(a, view)):
        assert "No spectra" in fig.layout.annotations[0].text


def test_answers_table_and_sweep(cases):
    results, _ = cases["image"]
    table = figures.answers_table(analysed(results)).data[0]
    columns = table.cells.values
    assert list(columns[0]) == list(results)
    assert columns[2][0] == "reference" and set(columns[2][1:]) <= {"yes", "no"}
    assert columns[4][1] == f"9 / {results['none']['visual_tokens']}"
    for name, cell in zip(results, columns[3]):  # each answer's closest call, from its tokens' margins
        margins = results[name]["answer_margins"]
        assert cell.startswith(f"{min(margins):.3g} (token {margins.index(min(margins)) + 1})")
    sweep = figures.sweep_figure(analysed(results, sweep={"positions": [0, 1],
                                                          "recall": {"clse": [1, 0.5], "fastv": [0, 1]}}))
    assert [tr.name for tr in sweep.data] == ["clse (mean 0.75)", "fastv (mean 0.50)"]  # each one's mean share
    assert sweep.data[0].line.color == registry.METHODS["clse"].color


def test_an_answer_decided_by_a_hair_is_said_to_be_a_close_call(cases):
    """A token that won by less than NEAR_TIE logits (or tied) is marked in the answers table and named in its
    title's notes, with its turn; records without margins (older results) show '-' and no note."""
    from explorer.analysis.comparison import NEAR_TIE

    results, _ = cases["image"]
    first, second = list(results)[1:3]
    close = {**results, first: {**results[first], "answer_margins": [5.0, 0.0]},
             second: {**results[second], "answer_margins": [NEAR_TIE / 2, 3.0]}}
    a = analysed(close)
    table = figures.answers_table(a)
    cells = dict(zip(table.data[0].cells.values[0], table.data[0].cells.values[3]))
    assert cells[first] == "0 (token 2): a tie" and cells[second] == "0.05 (token 1): a near tie"
    title = table.layout.title.text.replace("<br>", " ").replace("<sup>", "").replace("</sup>", "")
    assert f"{first}'s answer was a close call: its token 2 tied with the runner-up" in title
    assert f"{second}'s answer was a close call: its token 1 won by 0.05 logits (the runner-up at 95% of its " \
        "probability)" in title
    named = {n.split("'s answer")[0] for n in a.notes if "close call" in n}
    expected = {name for name, r in close.items() if min(r["answer_margins"]) < NEAR_TIE}
    assert named == expected and {first, second} <= named  # exactly the answers under NEAR_TIE, no other
    from explorer.analysis.comparison import close_call_note  # a token that won is never said to be at 100%

    assert "(the runner-up at 99.7% of its probability)" in close_call_note("clse", (0.00285, 1))
    assert "(the runner-up at over 99.9% of its probability)" in close_call_note("clse", (1e-5, 1))
    old = analysed({name: {k: v for k, v in r.items() if k != "answer_margins"} for name, r in results.items()})
    assert set(figures.answers_table(old).data[0].cells.values[3]) == {"-"}
    assert not any("close call" in n for n in old.notes)


def test_the_answers_table_is_as_tall_as_its_wrapped_cells(cases):
    """A row takes its tallest cell's wrapped lines at the table's narrowest, so a longer question makes the figure
    taller by the lines it adds (a fixed row height hid the last answer below the table's fold)."""
    results, _ = cases["image"]
    short = figures.answers_table(analysed(results)).layout.height
    long = {**results, "none": {**results["none"], "question": "where is the red circle ? " * 12}}
    taller = figures.answers_table(analysed(long)).layout.height
    assert taller - short >= 16 * 10  # about 300 characters in a column of about 13: twenty lines more, not one


def test_bad_frame_or_group_is_a_clear_error(cases):
    results, view = cases["image"]
    with pytest.raises(ValueError, match="frame 3"):
        figures.importance_figure(analysed(results), view, frame=3)
    with pytest.raises(ValueError, match="group 2"):
        analysed(results, group=2)
    with pytest.raises(ValueError, match="'uniform' was not run"):
        analysed(results, pair=("clse", "uniform"))


def test_frame_slider_redraws_only_the_frame_figures(cases):
    from explorer.page import events as ui

    results, view = cases["video"]
    state = {"analyses": {(0, 0): analysed(results)}, "view": view}  # as compare_click leaves it: (grid, turn) keys
    figs = ui.frame_change(state, 3)  # the slider counts frames from 1, as the figures do
    assert len(figs) == len(panels.PER_FRAME)
    assert "frame 3 of 3" in figs[0].layout.title.text
    assert figs[0].to_json() != ui.frame_change(state, 1)[0].to_json()
    assert "frame 1 of 3" in ui.frame_change(state, 0)[0].layout.title.text  # 0 or less: the first frame


def test_answers_show_budgets_device_and_notes(cases):
    results, _ = cases["image"]
    noted = copy.deepcopy(results)
    noted["clse"]["notes"] = ["the cut at 9 fell inside a tie of scores"]
    noted["fastv"]["notes"] = ["the cut at 9 fell inside a tie of scores", "the model does not know the word 'cat'"]
    table = figures.answers_table(analysed(noted))
    header = [h.replace("<b>", "").replace("</b>", "") for h in table.data[0].header.values]
    columns = dict(zip(header, table.data[0].cells.values))
    for row, name in enumerate(results):
        budget = results[name]["budget"]
        # the unpruned run keeps everything: no budget to name (the "28 on the unpruned row")
        assert columns["nominal budget"][row] == ("-" if name == "none" else f"{budget['nominal']:g}")
        assert columns["visual tokens per layer (average over all layers)"][row] == f"{budget['average_kept']:.1f}"
    title = table.layout.title.text
    assert f"runs on {results['none']['device']}, {results['none']['dtype']}" in title
    assert title.count("inside a tie") == 1 and "'cat'" in title  # every note, each once
    record = results["clse"]
    assert f"K={record['prune_layer']}, L={record['ref_layer']}, KV cache before K: {record['early_kv']}" in title
    assert "inverted" not in title
    noted["fastv"]["invert"] = True
    assert "inverted (lowest-ranked tokens kept)" in figures.answers_table(analysed(noted)).layout.title.text


def test_cost_error_bars_and_peak_memory_only_when_measured(cases):
    results, _ = cases["image"]
    plain = copy.deepcopy(results)
    for record in plain.values():
        record["timings_spread_ms"], record["peak_memory_bytes"] = None, 0
    assert figures.cost_figure(analysed(plain)).data[-1].error_x.array is None
    assert [tr.name for tr in figures.efficiency_figure(analysed(plain)).data] == ["prefill FLOPs",
                                                                                 "KV cache after prefill"]
    timed = copy.deepcopy(plain)
    for i, record in enumerate(timed.values()):
        total = record["timings_ms"]["total"]
        record["timings_spread_ms"] = {"total": [total - 1 - i, total + 2 + i]}
        record["peak_memory_bytes"], record["peak_memory_kind"] = 1000 * (i + 1), "estimate: KV cache"
    whisker = figures.cost_figure(analysed(timed)).data[-1].error_x
    assert list(whisker.array) == pytest.approx([2 + i for i in range(len(timed))])
    assert list(whisker.arrayminus) == pytest.approx([1 + i for i in range(len(timed))])
    memory = figures.efficiency_figure(analysed(timed))
    assert memory.data[-1].name == "peak memory" and list(memory.data[-1].y) == [1, 2, 3, 4]
    assert "estimate: KV cache" in memory.layout.title.text


def test_every_number_is_computed_once(cases, monkeypatch):
    """Drawing every panel, then the frame panels again, computes each rank correlation, percentile vector
    and flip IoU once: the figures read them from the analysis."""
    results, view = cases["video"]
    calls = {"rank_correlation": 0, "percentiles": 0, "iou": 0}
    for name in calls:
        original = getattr(analysis, name)
        monkeypatch.setattr(analysis, name, lambda *args, _f=original, _n=name: calls.__setitem__(_n, calls[_n] + 1)
                            or _f(*args))
    a = analysed(results)
    panels.draw(a, view)
    panels.draw(a, view, frame=2, panels=panels.PER_FRAME)
    a.bias_summary(), a.flip_numbers()
    scored = len(a.scores)
    assert calls == {"rank_correlation": scored, "percentiles": scored, "iou": 2 * len(a.flip)}


def test_the_panel_registry_lays_out_the_page():
    names = [p.name for p in panels.PANELS]
    assert len(names) == len(set(names))
    sections = [s.name for s in panels.SECTIONS]
    assert all(p.section in sections for p in panels.PANELS)
    assert [p.name for p in panels.FIRST] == ["answers"] and panels.SECTIONS[0].name == "answers"
    assert {p.name for p in panels.PER_FRAME} == {"importance", "overlap", "highpass_maps", "evolution", "flip",
                                                  "factors"}
    for section in panels.SECTIONS[1:]:  # every tab has its reading text and a panel or its own content
        assert section.how_to_read and (panels.panels_of(section.name) or section.render)


def test_method_menus_are_grouped_and_every_method_is_described():
    from explorer.methods.registry import GROUPS, METHODS
    from explorer.page import ui

    choices = ui.method_choices()
    assert sorted(name for _, name in choices) == sorted(METHODS)
    groups = [label.split(":")[0] for label, name in choices if name != "none"]
    assert groups == sorted(groups, key=list(GROUPS.values()).index)  # grouped, in GROUPS' order
    guide = panels.method_guide()
    assert all(f"`{name}`: {METHODS[name].description}" in guide for name in METHODS if name != "none")
