"""The Gradio page: what it does without Gradio (service.py: a request, its complete result; reports.py: the
Benchmark tab's reports), its API's arguments (api.py, from Settings' spec), its panels (panels.py) and figures
(figures.py), and the wiring (ui.py, benchmark_tab.py)."""
