"""The visual-token pruning explorer. The folders follow the flow of one request:

    media/     media -> PIL images (bounded reading)
    core/      model inputs -> encode -> run with pruning (engine) -> Record; compare several methods
    methods/   the method registry and the scoring maths the engine calls
    analysis/  records -> the numbers shown (per comparison; shared statistics)
    page/      numbers -> Plotly figures -> the Gradio page (wiring only in ui.py)
    serve/     what a deployment allows and bounds: models, queue, files, ZeroGPU
    bench/     measurements (scripts, not tests): engine, page, stress
    eval/      the embedded model's ground-truth evaluation and the lmms-eval harness

Dependencies point one way: models/ (a leaf) <- methods <- core <- analysis <- page <- serve's app wiring;
media is read by core's callers; bench and eval sit on top. The top level keeps the entry points only: the
command line (`explorer`, python -m explorer: cli.py) and the Python API (notebook.py):

    from explorer import compare, load
    result = compare("photo.png", "What color is the car?", methods=("clse", "fastv"), keep=64)

`import explorer` stays light: compare, load, Result and Model are imported from notebook.py when first used.
"""

API = ("compare", "load", "Result", "Model")
__all__ = list(API)


def __getattr__(name):
    if name in API:
        from explorer import notebook

        return getattr(notebook, name)
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *API])
