"""Accuracy statistics by hand (explorer/analysis/stats.py): the 95% Wilson interval of a proportion, the exact
McNemar test on the discordant pairs and Newcombe's interval of a paired difference; and where they show: the
embedded model's evaluation (each accuracy with its interval, each method against the first) and the benchmark
report (each run against its task's first run). The expected values are worked out in the comments."""

import math

import pytest

from explorer.analysis.stats import (difference_text, interval_text, mcnemar_exact, paired_difference,
                                     wilson_interval)
from explorer.analysis import report
from explorer.eval import embedded

Z = 1.959963984540054  # the 0.975 quantile of the standard normal


def test_wilson_interval_by_hand():
    # 8 of 10: p = 0.8, z^2 / n = 0.384146; centre (0.8 + 0.192073) / 1.384146 = 0.716738; half-width
    # z / 1.384146 x sqrt(0.8 x 0.2 / 10 + z^2 / 400) = 1.416006 x 0.159011 = 0.225160 -> 0.4902 to 0.9433
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.490162, abs=1e-6) and high == pytest.approx(0.943318, abs=1e-6)
    # 10 of 10: the upper end is 1, the lower 1 / (1 + z^2 / n) = 1 / 1.384146 = 0.722467
    assert wilson_interval(10, 10) == [pytest.approx(1 / (1 + Z * Z / 10)), 1.0]
    # 0 of 10: the mirror image
    assert wilson_interval(0, 10) == [0.0, pytest.approx(1 - 1 / (1 + Z * Z / 10))]
    assert wilson_interval(0, 0) is None
    # large n: close to p +- z sqrt(p (1 - p) / n)
    low, high = wilson_interval(5000, 10000)
    assert high - low == pytest.approx(2 * Z * math.sqrt(0.25 / 10000), rel=1e-3)


def test_exact_mcnemar_by_hand():
    # 2 vs 8 discordant pairs: P(X <= 2) for X ~ Bin(10, 1/2) = (1 + 10 + 45) / 1024 = 56 / 1024; two-sided 0.109375
    assert mcnemar_exact(2, 8) == 112 / 1024 == mcnemar_exact(8, 2)
    assert mcnemar_exact(0, 5) == 2 / 32  # 0.0625: five of five one way is not significant at 0.05
    assert mcnemar_exact(0, 6) == 2 / 64  # 0.03125: six of six is
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0  # capped at 1; nothing discordant
    # the docs' CLSE vs FastV on 300 scenes (0.920 vs 0.897) is not established: e.g. 11 vs 18 discordant pairs
    assert mcnemar_exact(11, 18) > 0.05
    scipy_stats = pytest.importorskip("scipy.stats")  # an independent check where scipy is installed
    for b, c in ((2, 8), (11, 18), (40, 61), (0, 13)):
        assert mcnemar_exact(b, c) == pytest.approx(scipy_stats.binomtest(b, b + c).pvalue, rel=1e-12)


def test_paired_difference_by_hand():
    # The first method right on all 10 questions, the second on 8: a = 8 (both), b = 2 (only the first), c = 0,
    # d = 0. A margin (c + d) is empty, so phi = 0 and Newcombe's interval squares and adds the Wilson distances:
    # difference 0.8 - 1.0 = -0.2; lower -0.2 - sqrt((0.8 - 0.490162)^2 + (1 - 1)^2) = -0.509838;
    # upper -0.2 + sqrt((1 - 0.722467)^2 + (0.943318 - 0.8)^2) = -0.2 + 0.312353 = 0.112353; McNemar 2 of 2: 0.5
    paired = paired_difference([True] * 10, [True] * 8 + [False] * 2)
    assert paired["difference"] == pytest.approx(-0.2)
    assert paired["interval"] == [pytest.approx(-0.509838, abs=1e-6), pytest.approx(0.112353, abs=1e-6)]
    assert (paired["only_first"], paired["only_second"], paired["p"]) == (2, 0, 0.5)
    # a = 6, b = 1, c = 1, d = 2 (n = 10): both 0.7; ad - bc = 11 > n / 2, shrunk to 6; margins 7 x 3 x 7 x 3 = 441,
    # phi = 6 / 21 = 0.285714; Wilson 7/10: 0.396778 to 0.892209, distances 0.303222 down and 0.192209 up;
    # half-width sqrt(0.303222^2 - 2 phi 0.303222 x 0.192209 + 0.192209^2) = sqrt(0.095582) = 0.309165
    first = [True] * 6 + [True, False] + [False, False]
    second = [True] * 6 + [False, True] + [False, False]
    paired = paired_difference(first, second)
    assert paired["difference"] == 0 and paired["p"] == 1.0
    assert paired["interval"] == [pytest.approx(-0.309165, abs=1e-5), pytest.approx(0.309165, abs=1e-5)]
    # the correlation narrows it: the same margins with phi = 0 (independent) would give sqrt(0.303^2 + 0.192^2)
    assert paired["interval"][1] < math.hypot(0.7 - 0.396778, 0.892209 - 0.7)
    # swapping the methods mirrors the interval
    swapped = paired_difference(second, first)
    assert swapped["interval"] == [pytest.approx(-paired["interval"][1]), pytest.approx(-paired["interval"][0])]
    with pytest.raises(ValueError):
        paired_difference([True], [True, False])


def test_texts():
    assert interval_text(0.92, [0.884, 0.945]) == "0.920 [0.884, 0.945]" and interval_text(None, None) == "-"
    paired = paired_difference([True] * 10, [True] * 8 + [False] * 2)
    assert difference_text(paired) == "-0.200 [-0.510, +0.112], p = 0.5" and difference_text(None) == "-"


def _rows(method, correct, keep=28, inverted=False, schedule="single"):
    return [{"method": method, "keep": keep, "inverted": inverted, "schedule": schedule, "qkind": "color",
             "correct": c, "share": None, "band": None, "tie": False, "average_kept": 28.0, "input": "image",
             "one_word": True, "item": i} for i, c in enumerate(correct)]


def test_the_embedded_evaluation_pairs_every_method_with_the_first():
    """Ten questions: fastv (first in --methods) right on all, clse on 8 (the case above), and a run refused on
    every question (an official schedule that cannot reach the budget) is left out of the tables and listed."""
    rows = (_rows("none", [True] * 10, keep=None) + _rows("fastv", [True] * 10)
            + _rows("clse", [True] * 8 + [False] * 2)
            + [{"method": "pyramiddrop", "keep": 28, "inverted": False, "schedule": "single", "input": "image",
                "refused": "PyramidDrop cannot average 28 visual tokens per layer"}])
    summary = embedded.summarize(rows)
    assert "pyramiddrop" not in summary
    assert summary["fastv"]["28"]["interval"]["overall"] == [pytest.approx(1 / (1 + Z * Z / 10), abs=1e-4), 1.0]
    assert "vs_first" not in summary["fastv"]["28"]
    versus = summary["clse"]["28"]["vs_first"]
    assert versus["against"] == "fastv" and versus["difference"] == -0.2 and versus["p"] == 0.5
    assert versus["interval"] == [pytest.approx(-0.5098, abs=1e-4), pytest.approx(0.1124, abs=1e-4)]
    table = "\n".join(embedded.methods_table(summary))
    assert "overall - fastv's [95% CI], McNemar p" in table
    assert "0.800 [0.490, 0.943] | -0.200 [-0.510, +0.112], p = 0.5" in table
    refused = embedded.refusals(rows)
    assert refused == [{"method": "pyramiddrop", "keep": 28, "inverted": False, "schedule": "single",
                        "input": "image", "runs": 1,
                        "sentence": "PyramidDrop cannot average 28 visual tokens per layer"}]
    assert "PyramidDrop cannot average 28" in "\n".join(embedded.refusals_table(refused))
    # the first method is the first of --methods even where it was refused on some questions
    rows = [{"method": "evs", "keep": 28, "inverted": False, "schedule": "single", "input": "image",
             "refused": "EVS prunes video only"}]
    rows += _rows("fastv", [True, False]) + _rows("clse", [True, True])
    assert embedded.summarize(rows)["fastv"]["28"].get("vs_first") is None
    assert embedded.paired_against_first(rows) == {}  # nothing paired with a method that answered nothing
    # a small p-value is kept to four significant digits, not rounded to 0: 0 vs 30 discordant, p = 2 / 2^30
    rows = _rows("fastv", [False] * 30) + _rows("clse", [True] * 30)
    assert embedded.paired_against_first(rows)[("clse", 28, False)]["p"] == pytest.approx(2 / 2 ** 30, rel=1e-3)


def test_the_report_compares_each_run_with_its_tasks_first():
    """Two runs of one task, the first right on all 10 samples, the second on 8 (right / wrong per sample): the
    second gets the paired difference; a task whose metric is not right / wrong gets none."""
    def run(method, correct, task="shapes"):
        return {"task": task, "method": method, "invert": False, "settings": {}, "keep": 64,
                "_correct": dict(enumerate(correct)) if correct is not None else None}

    runs = [run("fastv", [True] * 10), run("clse", [True] * 8 + [False] * 2), run("fastv", None, "other"),
            run("clse", None, "other")]
    report.compare_with_first(runs)
    assert runs[0]["vs_first"] is None and "_correct" not in runs[1]
    versus = runs[1]["vs_first"]
    assert versus["against"] == "fastv keep 64" and versus["difference"] == pytest.approx(-0.2) and versus["p"] == 0.5
    assert versus["interval"][0] == pytest.approx(-0.509838, abs=1e-6)
    assert runs[3]["vs_first"] is None
    base = {"task": "shapes", "invert": False, "settings": {}, "keep": 28, "main_metric": "exact_match",
            "average_kept": 28.0, "target_recall": None, "score_position_spearman": None, "samples": 10,
            "accuracy_by_recall": {"at_least_half": None, "below_half": None},
            "recall_by_third": {"top": None, "middle": None, "bottom": None}}
    runs = [{**base, "method": "fastv", "accuracy": 1.0, "accuracy_interval": wilson_interval(10, 10),
             "_correct": dict(enumerate([True] * 10))},
            {**base, "method": "clse", "accuracy": 0.8, "accuracy_interval": wilson_interval(8, 10),
             "_correct": dict(enumerate([True] * 8 + [False] * 2))}]
    report.compare_with_first(runs)
    text = report.markdown({"runs": runs, "tasks": ["shapes"]})
    assert "| shapes | clse | 28 | 0.800 [0.490, 0.943] | -0.200 [-0.510, +0.112], p = 0.5 (vs fastv keep 28) |" in text
    assert "| shapes | fastv | 28 | 1.000 [0.722, 1.000] | - |" in text
