"""The Benchmark tab's reports, without Gradio: a report uploaded by a visitor or read from the server's runs
(EXPLORER_RUNS_DIR), checked within the page's bounds, the report shipped with the app, and a report's figures
(the numbers are explorer/analysis/report.py's; `python -m explorer.eval.report --html` draws the same figures).
"""

import functools
import json
import os
from collections import defaultdict

import plotly.graph_objects as go

from explorer.analysis.report import label, load_report, run_name, shown_label
from explorer.analysis.stats import THIRDS
from explorer.methods.registry import METHODS
from models.base import BadInput

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "assets")
FIGURE_HEIGHT = 420  # px; plotly would otherwise fill the window's height in a page or an HTML file

# A report the page draws (uploaded, or read from the server's runs): bounded in size, shape and drawing, so a
# visitor's file can hold neither the memory nor the server's time (explorer/analysis/report.py makes them small:
# a few kB a run).
MAX_REPORT_BYTES = 2 * 2**20
MAX_REPORT_DEPTH = 24  # nesting of JSON arrays and objects
MAX_REPORT_TASKS = 12
MAX_REPORT_RUNS = 300
MAX_REPORT_FIGURES = 80


def json_depth(text):
    """The deepest nesting of arrays and objects in a JSON text (strings skipped), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def check_report(loaded):
    """BadInput unless a report has the shape report.py writes and stays within the page's bounds; returns
    its figures (so a report that cannot be drawn is refused when it is loaded, not when it is shown)."""
    if not isinstance(loaded, dict) or not isinstance(loaded.get("runs"), list) or \
            not isinstance(loaded.get("tasks"), list):
        raise BadInput("the file is JSON but not a report of `python -m explorer.eval.report --json`")
    if len(loaded["tasks"]) > MAX_REPORT_TASKS or len(loaded["runs"]) > MAX_REPORT_RUNS:
        raise BadInput(f"the report has {len(loaded['tasks'])} tasks and {len(loaded['runs'])} runs; the page draws "
                       f"at most {MAX_REPORT_TASKS} tasks and {MAX_REPORT_RUNS} runs: split it")
    try:
        figures = report_figures(loaded)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        raise BadInput(f"the report's runs lack what its figures need ({type(error).__name__}: "
                       f"{str(error)[:80]}): write it with `python -m explorer.eval.report RUNS --json`") from None
    if len(figures) > MAX_REPORT_FIGURES:
        raise BadInput(f"the report would draw {len(figures)} figures; the page draws at most {MAX_REPORT_FIGURES}: "
                       "split it")
    return figures


def runs_root():
    """The folder of benchmark runs the page offers (EXPLORER_RUNS_DIR), or None."""
    root = os.environ.get("EXPLORER_RUNS_DIR")
    return os.path.realpath(root) if root and os.path.isdir(root) else None


def benchmark_runs():
    """The run folders under EXPLORER_RUNS_DIR (names relative to it)."""
    root = runs_root()
    return sorted(name for name in os.listdir(root) if os.path.isdir(os.path.join(root, name))) if root else []


def load_benchmark(report_path=None, run_names=()):
    """A benchmark report: an uploaded `python -m explorer.eval.report ... --json` file, or the chosen runs of
    EXPLORER_RUNS_DIR read by explorer.analysis.report. Raises BadInput with the sentence the page shows."""
    if report_path:
        try:
            size = os.path.getsize(report_path)
        except OSError:  # uploads are deleted some minutes after they came (explorer/serve/limits.py)
            raise BadInput("the uploaded report is no longer on the server (uploads are kept 10 minutes): upload "
                           "it again") from None
        if size > MAX_REPORT_BYTES:
            raise BadInput(f"the report is larger than {MAX_REPORT_BYTES // 2**20} MB")
        try:
            with open(report_path) as f:
                text = f.read()
            if json_depth(text) > MAX_REPORT_DEPTH:
                raise BadInput(f"the file nests deeper than {MAX_REPORT_DEPTH} levels: it is not a report")
            loaded = json.loads(text)
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:  # ValueError: a 5,000-digit int
            if isinstance(error, BadInput):
                raise
            raise BadInput("the file is not a report: write one with `python -m explorer.eval.report RUNS --json "
                           "report.json`") from None
        check_report(loaded)
        return loaded
    root = runs_root()
    chosen = [os.path.realpath(os.path.join(root, name)) for name in run_names or ()] if root else []
    if not chosen or any(os.path.dirname(path) != root for path in chosen):
        raise BadInput("upload a report, or choose runs from the list")
    try:
        loaded = load_report(chosen)
    except (FileNotFoundError, ValueError, KeyError) as error:
        raise BadInput(f"these runs cannot be read as a report ({error})") from None
    check_report(loaded)
    return loaded


SHIPPED_REPORT = os.path.join(ASSETS, "report_shapes.json")  # python -m explorer.eval.shipped writes it


@functools.lru_cache(maxsize=1)
def shipped_report():
    """The report shipped with the app (the embedded model on held-out scenes), or None where it is missing: the
    Benchmark tab's default and the lesson's last step."""
    if not os.path.exists(SHIPPED_REPORT):
        return None
    with open(SHIPPED_REPORT) as f:
        return json.load(f)


def benchmark_figures(loaded):
    return report_figures(loaded)


# ------------------------------------------------------------------------------------------------- figures


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
