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
media is read by core's callers; bench and eval sit on top. The top level keeps the entry points only
(python -m explorer: cli.py).
"""
