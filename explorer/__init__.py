"""The visual-token pruning explorer. The folders follow the flow of one request:

    media/     media -> PIL images (bounded reading)
    core/      model inputs -> encode -> run with pruning (engine) -> Record; compare several methods; Settings
    methods/   the method registry and the scoring maths the engine calls
    analysis/  records -> the numbers shown (one comparison, the object sweep, benchmark reports; statistics)
    page/      numbers -> Plotly figures -> the Gradio page (wiring only in ui.py)
    serve/     what a deployment allows and bounds: models, queue, files, ZeroGPU
    bench/     measurements (scripts, not tests): engine, page, stress
    eval/      the embedded model's ground-truth evaluation, the lmms-eval harness and the report's command

Which folder may import which is IMPORTS below, stated once (tests/test_layout.py checks every import against
it, inside functions too); models/ is a leaf that imports nothing of explorer/. The top level keeps the entry
points only: the command line (`explorer`, python -m explorer: cli.py) and the Python API (notebook.py):

    from explorer import compare, load
    result = compare("photo.png", "What color is the car?", methods=("clse", "fastv"), keep=64)

`import explorer` stays light: compare, load, Result and Model are imported from notebook.py when first used.
"""

IMPORTS = {  # folder -> the folders its modules may import (models/ is the model families, outside explorer/)
    "models": set(),
    "methods": {"models"},
    "core": {"methods", "models"},
    "media": {"core", "models"},  # core's interrupt (a video's reading stops with its request), options' bounds
    "analysis": {"core", "methods", "models"},  # the object sweep runs the engine on known scenes
    "serve": {"core", "media", "models"},
    "page": {"analysis", "core", "media", "methods", "models", "serve"},
    "eval": {"analysis", "core", "media", "methods", "models", "page"},  # the report's command draws the page's
    "bench": {"analysis", "core", "media", "methods", "models", "page", "serve", "eval"},
    "": {"analysis", "core", "media", "methods", "models", "page", "serve", "eval", "bench"},  # the entry points
}
API = ("compare", "load", "Result", "Model")
__all__ = list(API)


def __getattr__(name):
    if name in API:
        from explorer import notebook

        return getattr(notebook, name)
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *API])
