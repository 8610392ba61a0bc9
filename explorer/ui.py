"""The Gradio page. Wiring only: components -> service functions -> components. No model logic here."""

import os

import gradio as gr

from explorer import service
from explorer.methods import DESCRIPTIONS, METHODS

FIGURES = ["answers", "importance", "overlap", "frame_counts", "spectrum_heatmap", "spectrum_curves",
           "highpass_maps", "highfreq_share", "evolution", "position_scatter", "row_profile", "flip", "sweep", "cost",
           "tokens_per_layer", "efficiency"]
FRAME_FIGURES = ["importance", "overlap", "highpass_maps", "evolution"]
ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets")

HOW_TO_READ = {
    "answers": "The same question answered three ways. A pruned answer that matches the unpruned one means "
               "the dropped tokens did not matter for this question.",
    "importance": "Top: each method's score for every visual token (one square = one image patch), as a "
                  "percentile so both methods share one colour scale. Bottom: the tokens each method kept "
                  "(dark = pruned). Hover a square for its index, row, column, score, rank.",
    "spectra": "How the spatial pattern of the visual tokens changes through the decoder. Low frequencies are "
               "smooth, large-scale structure; high frequencies are edges and detail. CLSE keeps the tokens "
               "whose high-frequency content changes most between the reference layer L and the pruning layer K.",
    "bias": "Attention scores often favour tokens late in the sequence (the bottom rows of an image), whatever "
            "they show. If a method's score rises with the token's position, it is position-biased. The flip "
            "test runs the image upside down: a content-driven method keeps the same objects (its kept set "
            "follows the content); a position-biased one keeps the same rows. Measure, don't assume: on the small "
            "embedded model attention's preference for late rows is weak, while CLSE favours the top rows (its early "
            "layers change the first tokens most); the object sweep shows both directly.",
    "cost": "Measured on the machine running this page. Pruning shortens every layer from K on, so prefill, "
            "FLOPs and the KV cache shrink; scoring is the time the method itself took.",
}


class CheckedImage(gr.Image):
    """gr.Image whose decoding errors reach the user as a clear message instead of a generic failure."""

    def get_block_name(self):
        return "image"  # render with Gradio's own image front end

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except Exception as error:  # PIL raises several kinds for broken or oversized files
            name = getattr(payload, "orig_name", None) or "the upload"
            raise gr.Error(f"{name} is not a readable image ({type(error).__name__})") from None


def compare_click(image, video, question, method_a, method_b, keep, prune_layer, ref_layer=0, schedule="single",
                  model_id=None, num_frames=4, progress=gr.Progress()):
    progress(0.1, desc="loading the model and running the comparison")
    try:
        payload, view = service.run_comparison(image, video, question, method_a, method_b, keep, prune_layer,
                                               ref_layer, schedule, model_id, num_frames)
    except service.UserError as error:
        raise gr.Error(str(error)) from None
    progress(0.9, desc="drawing")
    figs = service.make_figures(payload, view, method_a, method_b)
    frames = payload["results"]["none"]["groups"][0]["grid"][0]
    state = {"payload": payload, "view": view, "method_a": method_a, "method_b": method_b}
    slider = gr.update(maximum=max(frames - 1, 1), value=0, visible=frames > 1)
    return [figs[name] for name in FIGURES] + [payload, service.save_payload(payload), state, slider]


def frame_change(state, frame):
    if not state:
        return [gr.update() for _ in FRAME_FIGURES]
    figs = service.make_figures(state["payload"], state["view"], state["method_a"], state["method_b"],
                                frame=int(frame), names=FRAME_FIGURES)
    return [figs[name] for name in FRAME_FIGURES]


def preset_change(preset):
    return service.BUDGET_PRESETS.get(preset, gr.update())


def examples():
    listing = os.path.join(ASSETS, "examples.txt")  # lines: file<TAB>question
    rows = []
    if os.path.exists(listing):
        for line in open(listing):
            if line.strip():
                name, question = line.rstrip("\n").split("\t")
                path = os.path.join(ASSETS, name)
                is_video = name.endswith((".webm", ".mp4"))
                rows.append([None if is_video else path, path if is_video else None, question])
    return rows


def build_app():
    method_names = list(METHODS)
    default_model = os.environ.get("EXPLORER_MODEL", service.model_choices()[0])
    with gr.Blocks(title="Visual-token pruning explorer") as demo:
        gr.Markdown("# Visual-token pruning explorer\nUpload an image or a video, ask a question, and see what "
                    "the model answers unpruned, pruned by method A and pruned by method B, and why.")
        with gr.Row():
            with gr.Column(scale=1):
                image = CheckedImage(type="filepath", sources=["upload", "clipboard", "webcam"], label="Image")
                video = gr.Video(sources=["upload"], label="Video (frames sampled evenly)")
                question = gr.Textbox(label="Question", max_lines=3)
            with gr.Column(scale=1):
                model_id = gr.Dropdown(service.model_choices(), value=default_model, label="Model",
                                       allow_custom_value=True,
                                       info="the embedded model, a hub id (needs the hub) or a local directory")
                with gr.Row():
                    method_a = gr.Dropdown(method_names, value="clse", label="Method A",
                                           info=DESCRIPTIONS["clse"])
                    method_b = gr.Dropdown(method_names, value="fastv", label="Method B",
                                           info=DESCRIPTIONS["fastv"])
                preset = gr.Radio(list(service.BUDGET_PRESETS), label="Budget preset (scaled to the model's grid)")
                keep = gr.Number(value=round(64 / 576, 4), label="Keep: a count >= 1 or a ratio < 1 per image/video")
                with gr.Row():
                    prune_layer = gr.Number(value=2, precision=0, label="Prune layer K")
                    ref_layer = gr.Number(value=0, precision=0, label="Reference layer L")
                with gr.Row():
                    schedule = gr.Radio(["single", "paper"], value="single", label="Schedule")
                    num_frames = gr.Slider(1, 16, value=4, step=1, label="Video frames")
                run = gr.Button("Compare", variant="primary")
        gr.Examples(examples(), inputs=[image, video, question], label="Examples")

        plots = {}
        gr.Markdown("## 1. Answers\n" + HOW_TO_READ["answers"])
        plots["answers"] = gr.Plot(label="Answers")
        gr.Markdown("## 2. Token importance\n" + HOW_TO_READ["importance"])
        frame = gr.Slider(0, 1, value=0, step=1, label="Frame", visible=False)  # maximum set per request
        plots["importance"] = gr.Plot(label="Scores and kept tokens")
        with gr.Row():
            plots["overlap"] = gr.Plot(label="Overlap of the kept sets")
            plots["frame_counts"] = gr.Plot(label="Kept tokens per frame")
        gr.Markdown("## 3. Per-layer spectra\n" + HOW_TO_READ["spectra"])
        with gr.Row():
            plots["spectrum_heatmap"] = gr.Plot(label="Radial power spectrum per layer")
            plots["spectrum_curves"] = gr.Plot(label="Spectrum at chosen layers")
        with gr.Row():
            plots["highpass_maps"] = gr.Plot(label="High-pass magnitude per layer")
            plots["highfreq_share"] = gr.Plot(label="High-frequency share per layer")
        plots["evolution"] = gr.Plot(label="CLSE evolution |s_K - s_L|")
        gr.Markdown("## 4. Positional bias\n" + HOW_TO_READ["bias"])
        with gr.Row():
            plots["position_scatter"] = gr.Plot(label="Score against position")
            plots["row_profile"] = gr.Plot(label="Mean score by row")
        with gr.Row():
            plots["flip"] = gr.Plot(label="Flip test")
            plots["sweep"] = gr.Plot(label="Object sweep (embedded model)")
        gr.Markdown("## 5. Cost\n" + HOW_TO_READ["cost"])
        plots["cost"] = gr.Plot(label="Time per stage")
        with gr.Row():
            plots["tokens_per_layer"] = gr.Plot(label="Tokens per layer")
            plots["efficiency"] = gr.Plot(label="FLOPs and KV cache vs unpruned")
        gr.Markdown("## Result")
        with gr.Row():
            result_json = gr.JSON(label="Records (same schema as `python -m explorer --json`)", visible=False)
            download = gr.File(label="Download JSON")
        state = gr.State()

        inputs = [image, video, question, method_a, method_b, keep, prune_layer, ref_layer, schedule, model_id,
                  num_frames]
        outputs = [plots[name] for name in FIGURES] + [result_json, download, state, frame]
        run.click(compare_click, inputs=inputs, outputs=outputs, api_name="compare", concurrency_id="model")
        question.submit(compare_click, inputs=inputs, outputs=outputs, api_name=False, concurrency_id="model")
        frame.change(frame_change, inputs=[state, frame], outputs=[plots[n] for n in FRAME_FIGURES],
                     api_name=False)
        preset.change(preset_change, inputs=preset, outputs=keep, api_name=False)
    return demo
