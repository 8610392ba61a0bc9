"""The Benchmark tab's own components (Gradio wiring only): a report of benchmark runs (explorer/eval/report.py),
uploaded or read from the runs under EXPLORER_RUNS_DIR, drawn with Plotly."""

import gradio as gr

from explorer.page import events, service
from explorer.serve import limits


def build():
    """The Benchmark tab's own content: a report (uploaded, or runs of EXPLORER_RUNS_DIR) drawn with Plotly."""
    with gr.Row():
        upload = gr.File(label="A report: python -m explorer.eval.report RUNS --json report.json",
                         file_types=[".json"], type="filepath")
        runs = gr.Dropdown(service.benchmark_runs(), multiselect=True, label="or runs on this server",
                           info="folders of lmms-eval runs under EXPLORER_RUNS_DIR")
    show = gr.Button("Show the report")
    loaded = gr.State(time_to_live=limits.STATE_TTL_S)  # a report is dropped with the visitor's session

    @gr.render(inputs=loaded)
    def draw(report):
        if not report:
            gr.Markdown("No report loaded yet.")
            return
        for name, figure in service.benchmark_figures(report).items():
            gr.Plot(figure, label=name)

    show.click(events.load_benchmark_click, inputs=[upload, runs], outputs=loaded, api_visibility="private")
