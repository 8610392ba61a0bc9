"""The Gradio page: what it does without Gradio (service.py), its API's arguments (api.py), its panels
(panels.py) and figures (figures.py), and the wiring (ui.py, benchmark_tab.py)."""
