"""The Benchmark tab's own components (Gradio wiring only): a report of benchmark runs (explorer/page/reports.py),
the one shipped with the app by default (assets/report_shapes.json, written by python -m explorer.eval.shipped),
or one uploaded or read from the runs under EXPLORER_RUNS_DIR, drawn with Plotly."""

import functools
import re

import gradio as gr

from explorer.page import events, reports
from explorer.serve import limits


def shipped_note(report):
    about = (report or {}).get("about") or {}
    if not about:
        return "Shown: the report you loaded."
    return (f"Shown by default: the report shipped with the app, {about['what']} (`{about['command']}`). Upload "
            "another report, or choose runs kept on this server, to replace it.")


def element_id(name):
    """The page element of a report's figure: "spearman:shapes" -> "report-spearman-shapes"."""
    return "report-" + re.sub(r"[^A-Za-z0-9_]+", "-", name).strip("-")


@functools.lru_cache(maxsize=1)
def shipped_figures():
    """The shipped report's figures, drawn once (every new visitor's tab starts with them)."""
    return reports.benchmark_figures(reports.shipped_report())


def build():
    """The Benchmark tab's own content: a report (the shipped one by default; uploaded, or runs of
    EXPLORER_RUNS_DIR) drawn with Plotly."""
    shipped = reports.shipped_report()
    with gr.Row():
        upload = gr.File(label="A report: python -m explorer.eval.report RUNS --json report.json",
                         file_types=[".json"], type="filepath")
        runs = gr.Dropdown(reports.benchmark_runs(), multiselect=True, label="or runs on this server",
                           info="folders of lmms-eval runs under EXPLORER_RUNS_DIR")
    with gr.Row():
        show = gr.Button("Show the report")
        again = gr.Button("Show the shipped report", visible=shipped is not None)
    # a report is dropped with the visitor's session; a new session starts with the shipped one
    loaded = gr.State(shipped, time_to_live=limits.STATE_TTL_S)

    @gr.render(inputs=loaded)
    def draw(report):
        if not report:
            gr.Markdown("No report loaded yet.")
            return
        gr.Markdown(shipped_note(report))
        figures = shipped_figures() if report == shipped else reports.benchmark_figures(report)
        for name, figure in figures.items():
            gr.Plot(figure, label=name, elem_id=element_id(name))

    show.click(events.load_benchmark_click, inputs=[upload, runs], outputs=loaded, api_visibility="private")
    again.click(lambda: reports.shipped_report(), outputs=loaded, api_visibility="private", queue=False)
