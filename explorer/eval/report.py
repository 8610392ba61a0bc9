"""Benchmark runs (lmms-eval output folders of the `pruning_explorer` model) -> one report and its figures.

    python -m explorer.eval.report RUN_DIR [RUN_DIR ...] [--json report.json] [--html report.html]

A run folder is what `python -m explorer.eval.lmms_eval ... --output_path RUN_DIR --log_samples` wrote: lmms-eval's
`<date>_results.json` and `<date>_samples_<task>.jsonl` (in a subfolder named after the `pretrained` model arg, or
in RUN_DIR itself without one) and our per-sample records `records/<run tag>_rank<R>.jsonl` (see
explorer/eval/lmms_eval.py and runs.py). Several runs (methods, budgets, models) may share a folder, unless they
start within the same second (lmms-eval names its files by that second). The report gives, per task and run: the
task's metrics (accuracy) against the real average of visual tokens kept (the paper's curves); where the main
metric is right / wrong per sample, the accuracy's 95% Wilson interval and, for every run after the task's first
(the first given on the command line), the paired difference with that first run on the samples both answered:
Newcombe's 95% interval and the exact McNemar p-value (analysis/stats.py); where the documents carry ground truth
(`target_tokens`, the offline shapes tasks) the queried object's target-token recall, the accuracy with at least /
less than half of the object kept, and the recall by the object's third of the image; and the dataset-level
positional bias: the share of samples keeping each grid cell and each row, and the Spearman correlation between a
token's score and its raster position, averaged over samples.

`load_report(paths) -> dict` and `report_figures(report) -> {name: plotly Figure}` are pure functions of the
files and of the report, so the page can draw a report without lmms-eval installed.
"""

import argparse
import glob
import json
import math
import os
import sys
from collections import defaultdict

import numpy as np
import plotly.graph_objects as go

from explorer.analysis.stats import (THIRDS, difference_text, interval_text, paired_difference, rank_correlation,
                                     third_of, wilson_interval)
from explorer.eval.runs import MODEL_NAME, RUN_DEFAULTS, parse_model_args, run_tag
from explorer.methods.registry import METHODS

FIGURE_HEIGHT = 420  # px; plotly would otherwise fill the window's height in a page or an HTML file


# ------------------------------------------------------------------------------------------------- reading


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_records(folder):
    """{run tag: {(task, doc_id): line}} from every records file under folder (the latest line wins)."""
    records = defaultdict(dict)
    for path in sorted(glob.glob(os.path.join(folder, "**", "records", "*_rank*.jsonl"), recursive=True)):
        for line in read_jsonl(path):
            records[line["run"]][(line["task"], line["doc_id"])] = line
    return records


def task_metrics(results, task):
    """{metric: value} of one task in a results file (lmms-eval's "name,filter" keys, stderr left out)."""
    metrics = {}
    for key, value in results.get("results", {}).get(task, {}).items():
        name = key.split(",")[0]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not name.endswith("_stderr"):
            metrics[name] = float(value)
    return metrics


def main_metric(results, task, metrics):
    listed = [m.get("metric") for m in results.get("configs", {}).get(task, {}).get("metric_list", [])]
    return next((m for m in listed if m in metrics), next(iter(metrics), None))


def samples_of(results_path, task):
    """lmms-eval's logged samples of one task, written beside the results file with the same date prefix."""
    prefix = os.path.basename(results_path)[: -len("_results.json")]
    path = os.path.join(os.path.dirname(results_path), f"{prefix}_samples_{task}.jsonl")
    return {line["doc_id"]: line for line in read_jsonl(path)} if os.path.exists(path) else {}


# --------------------------------------------------------------------------------------- per-sample maths


def group_cells(line):
    """[(grid (h, w), kept mask [t, h, w], first-stage scores [t * h * w] or None)] per visual group."""
    kept = np.asarray(line.get("kept_indices", []), dtype=int)
    stages = line.get("stages") or []
    scores = np.asarray([np.nan if s is None else s for s in stages[0]["scores"]], float) if stages else None
    cells = []
    for group in line.get("groups", []):
        t, h, w = group["grid"]
        offset, count = group["offset"], group["count"]
        mask = np.zeros(count, bool)
        mask[kept[(kept >= offset) & (kept < offset + count)] - offset] = True
        group_scores = scores[offset:offset + count] if scores is not None else None
        cells.append(((h, w), mask.reshape(t, h, w), group_scores))
    return cells


def score_position_correlation(line):
    """Mean over the sample's frames of Spearman(first-stage score, raster position); None when unpruned."""
    values = []
    for (h, w), mask, scores in group_cells(line):
        if scores is None:
            return None
        for frame in scores.reshape(-1, h * w):
            alive = np.isfinite(frame)
            if alive.sum() > 2:
                values.append(rank_correlation(frame[alive], np.arange(h * w)[alive]))
    values = [v for v in values if math.isfinite(v)]
    return float(np.mean(values)) if values else None


def target_recall(line):
    """Share of the queried object's tokens (the document's target_tokens, visual indices) that were kept."""
    target = line.get("target_tokens") or []
    groups = line.get("groups") or []
    if not target or len(groups) != 1 or list(groups[0]["grid"][1:]) != list(line.get("target_grid", [])):
        return None  # no ground truth, or a model whose grid is not the one the target was drawn on
    return len(set(target) & set(line["kept_indices"])) / len(target)


def object_third(line):
    """"top", "middle" or "bottom": the third of the image holding the centre row of the queried object's tokens
    (in the first frame of a clip); None without ground truth."""
    target, grid = line.get("target_tokens") or [], line.get("target_grid") or []
    if not target or len(grid) != 2:
        return None
    h, w = grid
    rows = [i // w for i in target if i < h * w]
    if not rows:
        return None
    return third_of((min(rows) + max(rows) + 1) / 2 / h)


def density(lines):
    """Share of samples (frames) keeping each grid cell: on the native grid when every sample has the same
    one; else (Qwen2-VL: a grid per image) by relative position, on as many rows and columns as the smallest
    grid has, so that every sample covers every bin."""
    groups = [cell for line in lines for cell in group_cells(line)]
    if not groups:
        return None
    grids = {grid for grid, _, _ in groups}
    bins = (min(h for h, _ in grids), min(w for _, w in grids))  # the native grid when there is only one
    cells = bins[0] * bins[1]
    kept, seen = np.zeros(cells), np.zeros(cells)
    for (h, w), mask, _ in groups:
        rows = np.arange(h) * bins[0] // h
        cols = np.arange(w) * bins[1] // w
        index = (rows[:, None] * bins[1] + cols[None, :]).reshape(-1)
        for frame in mask:
            kept += np.bincount(index, weights=frame.reshape(-1), minlength=cells)
            seen += np.bincount(index, minlength=cells)
    kept, seen = kept.reshape(bins), seen.reshape(bins)
    share = np.divide(kept, seen, out=np.full(bins, np.nan), where=seen > 0)
    by_row = np.divide(kept.sum(1), seen.sum(1), out=np.full(bins[0], np.nan), where=seen.sum(1) > 0)
    return {"grid": list(bins), "normalized": len(grids) > 1, "share": share.tolist(), "rows": by_row.tolist()}


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


# ---------------------------------------------------------------------------------------------------- runs


def summarise(lines, correct):
    """A run's numbers from its per-sample lines (records) and its per-sample metric {doc_id: value}: the accuracy's
    interval where the metric is right / wrong, the real average kept, target recall (overall, by the object's
    third, and the accuracy with at least / less than half of the object kept), the score-position correlation
    (mean over samples, with a 95% interval of that mean), the density of kept cells and median timings. Keeps the
    per-sample correctness as "_correct" for compare_with_first."""
    recalls = {line["doc_id"]: target_recall(line) for line in lines}
    split = {half: [correct[d] for d, r in recalls.items() if r is not None and d in correct and (r >= 0.5) == half]
             for half in (True, False)}
    budgets = [line.get("budget", {}) for line in lines]
    binary = bool(correct) and all(value in (0, 1) for value in correct.values())
    correlations = [c for c in (score_position_correlation(line) for line in lines) if c is not None]
    return {
        "_correct": {doc_id: bool(value) for doc_id, value in correct.items()} if binary else None,
        "accuracy_interval": wilson_interval(sum(correct.values()), len(correct)) if binary else None,
        "records": len(lines),
        "average_kept": _mean([b.get("average_kept") for b in budgets]),
        "kept_for_decoding": _mean([len(line.get("kept_indices", [])) for line in lines]),
        "visual_tokens": _mean([line.get("visual_tokens") for line in lines]),
        "target_recall": _mean(recalls.values()),
        "recall_by_third": {third: _mean([recalls[line["doc_id"]] for line in lines
                                          if object_third(line) == third]) for third in THIRDS},
        "accuracy_by_recall": {"at_least_half": _mean(split[True]), "below_half": _mean(split[False]),
                               "n_at_least_half": len(split[True]), "n_below_half": len(split[False])},
        "score_position_spearman": _mean(correlations),
        "score_position_interval": mean_interval(correlations),
        "density": density(lines),
        "timings_ms": {key: float(np.median([line["timings_ms"][key] for line in lines]))
                       for key in (lines[0].get("timings_ms", {}) if lines else {})
                       if all(isinstance(line.get("timings_ms", {}).get(key), (int, float)) for line in lines)},
    }


def mean_interval(values):
    """A 95% interval of a mean (normal approximation: mean +- 1.96 standard errors); None under two values."""
    if len(values) < 2:
        return None
    mean, error = float(np.mean(values)), float(np.std(values, ddof=1) / math.sqrt(len(values)))
    return [mean - 1.96 * error, mean + 1.96 * error]


def run_entry(results_path, results, task, records):
    """One (results file, task): its metrics joined with its records and logged samples."""
    config = results.get("config", {})
    args = parse_model_args(config.get("model_args", ""))
    ours = config.get("model") == MODEL_NAME
    tag = run_tag(args) if ours else None
    samples = samples_of(results_path, task)
    lines = [line for (t, _), line in (records.get(tag, {}).items()) if t == task and "error" not in line]
    errors = sum(1 for (t, _), line in records.get(tag, {}).items() if t == task and "error" in line)
    metrics = task_metrics(results, task)
    main = main_metric(results, task, metrics)
    correct = {doc_id: s.get(main) for doc_id, s in samples.items() if isinstance(s.get(main), (int, float))}
    return {
        "results_file": results_path, "task": task, "model": config.get("model"),
        "pretrained": args.get("pretrained", RUN_DEFAULTS["pretrained"]) if ours else args.get("pretrained"),
        "method": args.get("method", RUN_DEFAULTS["method"]) if ours else config.get("model"),
        "keep": args.get("keep", RUN_DEFAULTS["keep"]) if ours and args.get("method") != "none" else None,
        "invert": bool(args.get("invert", False)), "settings": args, "tag": tag,
        "limit": config.get("limit"), "metrics": metrics, "main_metric": main,
        "accuracy": metrics.get(main), "samples": len(samples), "errors": errors,
        **summarise(lines, correct),
    }


def load_report(paths):
    """Every lmms-eval results file under the given folders (or results files), as one report dict."""
    runs = []
    for path in paths:
        folder = path if os.path.isdir(path) else os.path.dirname(os.path.dirname(path)) or "."
        files = sorted(glob.glob(os.path.join(path, "**", "*_results.json"), recursive=True)) \
            if os.path.isdir(path) else [path]
        if not files:
            raise FileNotFoundError(f"no lmms-eval results (*_results.json) under {path}")
        records = read_records(folder)
        for results_path in files:
            with open(results_path) as f:
                results = json.load(f)
            for task in sorted(results.get("results", {})):
                runs.append(run_entry(results_path, results, task, records))
    tasks = sorted({run["task"] for run in runs})
    compare_with_first(runs)
    return {"runs": runs, "tasks": tasks}


def compare_with_first(runs, same_keep=False):
    """Every run after its task's first run (in the order given) gets "vs_first": the paired difference of its
    per-sample correctness with the first run's on the samples both have (stats.paired_difference: the
    difference this - first, Newcombe's interval, the exact McNemar p) and "against", the first run's label; None
    where either metric is not right / wrong per sample. same_keep: the first run of the same task and budget
    instead (the unpruned run, without a budget, is compared with none). Drops the per-sample "_correct"
    afterwards."""
    first = {}
    for run in runs:
        if same_keep and run.get("keep") is None:
            run["vs_first"] = None
            continue
        reference = first.setdefault((run["task"], run.get("keep")) if same_keep else run["task"], run)
        run["vs_first"] = None
        if run is reference or not run.get("_correct") or not reference.get("_correct"):
            continue
        common = sorted(set(run["_correct"]) & set(reference["_correct"]), key=str)
        paired = paired_difference([reference["_correct"][d] for d in common], [run["_correct"][d] for d in common])
        if paired:
            run["vs_first"] = {"against": f"{label(reference)} keep {reference['keep']}", **paired}
    for run in runs:
        run.pop("_correct", None)


# ------------------------------------------------------------------------------------------------- figures


def label(run):
    """The method, and every other answer-changing setting that differs from its default (keep aside)."""
    extras = [f"{key}={value}" for key, value in run["settings"].items()
              if key in RUN_DEFAULTS and key not in ("method", "keep", "invert") and value != RUN_DEFAULTS[key]]
    return f"{run['method']}{' (inverted)' if run['invert'] else ''}" + (f" [{', '.join(extras)}]" if extras else "")


def run_name(run):
    """A run as the figures name it: "fastv, keep 28", "uniform (baseline), keep 28", "unpruned"."""
    if run["method"] == "none":
        return "unpruned"
    return f"{shown_label(run)}, keep {run['keep']}"


def shown_label(run):
    """label(run), a baseline (random, uniform, downsample: an order, not a judgement) marked as such."""
    baseline = run["method"] in METHODS and METHODS[run["method"]].group == "baseline"
    return label(run) + (" (baseline)" if baseline else "")


def method_style(run):
    """The run's method colour (the page's, from the registry) and a dash for inverted runs."""
    return METHODS[run["method"]].color if run["method"] in METHODS else "#7b4173", \
        "dot" if run["invert"] else "solid"


def _interval_bars(values, intervals):
    """Plotly error bars from [low, high] intervals around values (none drawn where a run has no interval)."""
    if not any(intervals):
        return None
    above = [interval[1] - value if interval else 0 for value, interval in zip(values, intervals)]
    below = [value - interval[0] if interval else 0 for value, interval in zip(values, intervals)]
    return dict(type="data", symmetric=False, array=above, arrayminus=below, thickness=1.2, width=4)


def curve_figure(report, task, key, title, y_title, interval_key=None):
    """One curve per method (its runs by the real average kept), in the method's colour; where runs of several
    methods share a kept count (the controlled comparison) the points are set a little apart so that each one's
    interval stays readable (the hover gives the true count)."""
    figure = go.Figure()
    by_method = defaultdict(list)
    for run in report["runs"]:
        if run["task"] == task and run.get(key) is not None:
            by_method[label(run)].append(run)
    names = sorted(by_method)
    xs = [r["average_kept"] for runs in by_method.values() for r in runs]
    span = (max(xs) - min(xs)) if xs and max(xs) > min(xs) else 1.0
    shared = len(xs) != len(set(xs))
    for i, name in enumerate(names):
        runs = sorted(by_method[name], key=lambda r: r["average_kept"] or 0)
        color, dash = method_style(runs[0])
        offset = (i - (len(names) - 1) / 2) * span * 0.012 if shared else 0.0
        values = [r[key] for r in runs]
        error = _interval_bars(values, [r.get(interval_key) for r in runs]) if interval_key else None
        figure.add_trace(go.Scatter(
            x=[(r["average_kept"] or 0) + offset for r in runs], y=values, mode="lines+markers",
            name="unpruned" if runs[0]["method"] == "none" else shown_label(runs[0]),
            line=dict(color=color, dash=dash), marker=dict(color=color, size=8), error_y=error,
            customdata=[[r["average_kept"] or 0, r["keep"] if r["keep"] is not None else "-"] for r in runs],
            hovertemplate="%{y:.3f} at %{customdata[0]:.1f} tokens kept on average (keep %{customdata[1]})"
                          "<extra>" + name + "</extra>"))
    note = "; bars: 95% Wilson intervals" if interval_key and any(
        r.get(interval_key) for runs in by_method.values() for r in runs) else ""
    figure.update_layout(title=title + (f"<br><sup>one colour per method, as on the page{note}</sup>"),
                         xaxis_title="visual tokens kept (real average over layers)",
                         yaxis_title=y_title, legend_title="method", height=FIGURE_HEIGHT)
    return figure


def density_figure(run):
    grid = run["density"]
    figure = go.Figure(go.Heatmap(z=grid["share"], zmin=0, zmax=1, colorscale="Viridis",
                                  colorbar={"title": "share kept"},
                                  hovertemplate="row %{y}, column %{x}: kept in %{z:.0%} of samples<extra></extra>"))
    figure.update_yaxes(autorange="reversed", title="row" + (" (relative bins)" if grid["normalized"] else ""),
                        constrain="domain")
    figure.update_xaxes(title="column", scaleanchor="y", constrain="domain")
    figure.update_layout(title=f"{run['task']}: where {run_name(run)} keeps tokens<br><sup>the share of "
                               f"{run['records']} samples keeping each cell</sup>", height=FIGURE_HEIGHT)
    return figure


def rows_figure(report, task):
    figure = go.Figure()
    keeps = sorted({r["keep"] for r in report["runs"] if r["task"] == task and r["keep"] is not None}, reverse=True)
    widths = {keep: 3.5 - 1.2 * i for i, keep in enumerate(keeps)}  # the largest budget widest
    shown = keeps[-1] if keeps else None  # the smallest budget drawn (where the choice bites), the others a click away
    drawn = [r for r in report["runs"] if r["task"] == task and r["density"] and r["method"] != "none"]
    for run in sorted(drawn, key=lambda r: (r["keep"] != shown, -(r["keep"] or 0))):  # the drawn ones first
        rows = run["density"]["rows"]
        color, dash = method_style(run)
        figure.add_trace(go.Scatter(x=list(range(len(rows))), y=rows, mode="lines+markers", name=run_name(run),
                                    visible=True if run["keep"] == shown else "legendonly",
                                    line=dict(color=color, dash=dash, width=max(1.0, widths.get(run["keep"], 2))),
                                    marker=dict(size=5, color=color),
                                    hovertemplate="row %{x}: %{y:.2f} kept<extra>" + run_name(run) + "</extra>"))
    figure.update_layout(title=f"{task}: share of tokens kept by image row<br><sup>one colour per method; the "
                               f"smallest budget ({shown}) drawn, the others in the legend (the larger the budget, "
                               "the wider the line)</sup>", xaxis_title="row (top = 0)",
                         yaxis_title="share kept", yaxis_rangemode="tozero", height=FIGURE_HEIGHT)
    return figure


def spearman_figure(report, task):
    """One bar per run, or per method where every budget of it has the same correlation (first-stage scores do
    not depend on the budget in the controlled comparison)."""
    runs = [r for r in report["runs"] if r["task"] == task and r["score_position_spearman"] is not None]
    values_of = defaultdict(set)
    for r in runs:
        values_of[label(r)].add(round(r["score_position_spearman"], 9))
    seen, kept, names = set(), [], []
    for r in runs:
        if len(values_of[label(r)]) == 1:
            if label(r) in seen:
                continue
            seen.add(label(r))
            budgets = [x["keep"] for x in runs if label(x) == label(r)]
            names.append(shown_label(r) + (" (every budget)" if len(budgets) > 1 else f", keep {r['keep']}"))
        else:
            names.append(run_name(r))
        kept.append(r)
    runs = kept
    values = [r["score_position_spearman"] for r in runs]
    intervals = [r.get("score_position_interval") for r in runs]
    figure = go.Figure(go.Bar(x=names, y=values, marker_color=[method_style(r)[0] for r in runs],
                              error_y=_interval_bars(values, intervals),
                              hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    figure.update_layout(title=f"{task}: Spearman(score, raster position), mean over samples<br><sup>above 0: "
                               "later tokens (lower rows) score higher; bars: 95% interval of the mean; a baseline's "
                               "value describes its fixed order, not a bias of judgement</sup>",
                         yaxis_title="rank correlation", yaxis_range=[-1, 1], xaxis_tickangle=-30,
                         height=FIGURE_HEIGHT)
    return figure


def thirds_figure(report, task):
    figure = go.Figure()
    keeps = sorted({r["keep"] for r in report["runs"] if r["task"] == task and r["keep"] is not None})
    shown = keeps[0] if keeps else None  # the smallest budget drawn, the others a click away in the legend
    for run in sorted(report["runs"], key=lambda r: r["keep"] not in (shown, None)):  # the drawn ones first
        if run["task"] != task or all(v is None for v in run["recall_by_third"].values()):
            continue
        color, _ = method_style(run)
        figure.add_trace(go.Bar(x=[f"object in the {third}" for third in THIRDS], name=run_name(run),
                                y=[run["recall_by_third"][third] for third in THIRDS], marker_color=color,
                                visible=True if run["keep"] in (shown, None) else "legendonly",
                                marker_pattern_shape="/" if run["invert"] else ""))
    figure.update_layout(title=f"{task}: queried object's tokens kept, by where the object is<br><sup>one colour "
                               f"per method; the smallest budget ({shown}) and the unpruned run drawn, the other "
                               "budgets in the legend</sup>", barmode="group",
                         yaxis_title="target recall", yaxis_range=[0, 1], height=FIGURE_HEIGHT)
    return figure


def report_figures(report):
    """{name: plotly Figure} for a report: accuracy and target recall against tokens kept, per task, and the
    recall by the object's third of the image; the kept-token density over the grid per run; kept share by
    row; score-position correlation."""
    figures = {}
    for task in report["tasks"]:
        metric = next((r["main_metric"] for r in report["runs"] if r["task"] == task and r["main_metric"]), "score")
        figures[f"accuracy:{task}"] = curve_figure(report, task, "accuracy", f"{task}: {metric} against tokens kept",
                                                   metric, interval_key="accuracy_interval")
        if any(r["task"] == task and r["target_recall"] is not None for r in report["runs"]):
            figures[f"recall:{task}"] = curve_figure(report, task, "target_recall",
                                                     f"{task}: queried object's tokens kept", "target recall")
            figures[f"recall_by_third:{task}"] = thirds_figure(report, task)
        figures[f"rows:{task}"] = rows_figure(report, task)
        figures[f"spearman:{task}"] = spearman_figure(report, task)
        for run in report["runs"]:
            if run["task"] == task and run["density"] and run["method"] != "none":
                name = f"density:{task}:{label(run)} keep {run['keep']}"  # a stable key (tests, uploads)
                same = sum(1 for key in figures if key == name or key.startswith(name + " #"))
                figures[name + (f" #{same + 1}" if same else "")] = density_figure(run)  # same settings, other run
    return figures


# ---------------------------------------------------------------------------------------------- command line


def _cell(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(report):
    lines = ["| task | method | keep | accuracy [95% CI] | difference with the task's first run [95% CI], McNemar p | "
             "metric | avg kept | target recall | acc. recall>=1/2 | acc. recall<1/2 | Spearman(score, position) | "
             "samples |",
             "|" + "---|" * 12]
    for run in sorted(report["runs"], key=lambda r: (r["task"], label(r), -(r["average_kept"] or 0))):
        split = run["accuracy_by_recall"]
        accuracy = interval_text(run["accuracy"], run.get("accuracy_interval")) if run["accuracy"] is not None \
            else "-"
        versus = run.get("vs_first")
        lines.append("| " + " | ".join([
            run["task"], label(run), _cell(run["keep"]), accuracy,
            f"{difference_text(versus)} (vs {versus['against']})" if versus else "-", str(run["main_metric"]),
            _cell(run["average_kept"], 1), _cell(run["target_recall"]), _cell(split["at_least_half"]),
            _cell(split["below_half"]), _cell(run["score_position_spearman"]), str(run["samples"])]) + " |")
    lines += ["", "Intervals: 95% Wilson for an accuracy; a difference is paired on the same samples (Newcombe's 95% "
              "interval, exact McNemar p): call a run better than the first only where p < 0.05."]
    lines += ["", "Target recall by the third of the image holding the queried object:", "",
              "| task | method | keep | top | middle | bottom |", "|---|---|---|---|---|---|"]
    for run in sorted(report["runs"], key=lambda r: (r["task"], label(r), -(r["average_kept"] or 0))):
        thirds = run["recall_by_third"]
        if any(value is not None for value in thirds.values()):
            lines.append("| " + " | ".join([run["task"], label(run), _cell(run["keep"]), _cell(thirds["top"]),
                                            _cell(thirds["middle"]), _cell(thirds["bottom"])]) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="lmms-eval output folders (--output_path) or results files")
    parser.add_argument("--json", help="write the whole report as JSON here")
    parser.add_argument("--html", help="write every figure into one HTML file here")
    args = parser.parse_args(argv)
    try:
        report = load_report(args.runs)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(markdown(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f)
    if args.html:  # plotly.js embedded once (works offline), then every figure
        with open(args.html, "w") as f:
            f.write("<html><head><meta charset='utf-8'><title>benchmark report</title></head><body>\n")
            for i, figure in enumerate(report_figures(report).values()):
                f.write(figure.to_html(full_html=False, include_plotlyjs=i == 0) + "\n")
            f.write("</body></html>\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
