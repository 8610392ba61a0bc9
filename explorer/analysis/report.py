"""Benchmark runs (lmms-eval output folders of the `pruning_explorer` model) -> one report: its numbers and its
table (the figures are the page's: explorer/page/reports.py; the command is explorer/eval/report.py).

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

`load_report(paths) -> dict` is a pure function of the files (explorer/page/reports.py's `report_figures(report)`
of the report), so the page can draw a report without lmms-eval installed.
"""

import glob
import json
import math
import os
from collections import defaultdict

import numpy as np

from explorer.analysis.stats import (THIRDS, difference_text, interval_text, paired_difference, rank_correlation,
                                     third_of, wilson_interval)
from explorer.analysis.runs import MODEL_NAME, RUN_DEFAULTS, parse_model_args, run_tag
from explorer.methods.registry import METHODS


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


# ------------------------------------------------------------------------------------------------- labels


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


# ------------------------------------------------------------------------------------------------- table


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
