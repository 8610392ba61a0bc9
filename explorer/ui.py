"""The Gradio page. Wiring only: components -> service functions -> panels. No model logic here.

The layout of the results is built from explorer.panels: the answers above the tabs, one tab per section,
each with its "how to read this" and its panels; the Compare event's outputs are the panels in PANELS'
order, then the result JSON, its download, the request's state and the frame slider.
"""

import os

import gradio as gr

from explorer import access, media, panels, service
from explorer.methods import DESCRIPTIONS, GROUPS, METHODS
from models.base import BadInput

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets")
LAYER_CHOICES = ["auto"] + [str(i) for i in range(0, 41)]
RESIZE_PLOTS = "() => { setTimeout(() => window.dispatchEvent(new Event('resize')), 50); }"
EARLY_KV_INFO = ("whether the layers before K keep the pruned tokens in their KV cache (decode still sees them "
                 "there) or drop them too; auto = as the family's official code (LLaVA drops them, Qwen2-VL "
                 "and video keep them)")


class CheckedImage(gr.Image):
    """gr.Image whose decoding errors reach the user as a clear message instead of a generic failure."""

    def get_block_name(self):
        return "image"  # render with Gradio's own image front end

    def preprocess(self, payload):
        try:
            if payload is not None and payload.path:
                media.check_image_header(payload.path)  # before Gradio or anything else decodes it
            return super().preprocess(payload)
        except media.MediaError as error:
            raise gr.Error(str(error), print_exception=False) from None
        except Exception as error:  # PIL raises several kinds for broken or oversized files
            name = getattr(payload, "orig_name", None) or "the upload"
            raise gr.Error(f"{name} is not a readable image ({type(error).__name__})",
                           print_exception=False) from None


class StageProgress:
    """The engine's and the service's `say(text)` shown on a gr.Progress: each stage advances the bar and
    names itself. `expected` is the number of stages the request reports (the bar stops short of full until
    the end)."""

    def __init__(self, progress, expected, request=None):
        self.progress, self.expected, self.done, self.request = progress, expected, 0, request

    def __call__(self, text):
        access.stop_if_client_gone(self.request)  # the visitor left: stop between stages
        self.progress(min(self.done / self.expected, 0.95), desc=text)
        self.done += 1


def compare_click(image, video, question, method_a, method_b, keep, prune_layer="auto", ref_layer="auto",
                  schedule="single", model_id=None, num_frames=4, early_kv="auto", invert=False, prompt="chat",
                  repeats=1, progress=gr.Progress(), visitor: gr.Request = None):
    """The Compare event: the answers as soon as the comparison ran, then every panel. The last output set
    (what gradio_client's predict returns) holds everything."""
    try:
        request = service.prepare(image, video, question, method_a, method_b, keep, prune_layer, ref_layer,
                                  schedule, model_id, num_frames, early_kv, invert, prompt, repeats)
        say = StageProgress(progress, service.expected_stages(request), visitor)
        payload, analysis = service.answer(request, say)
        first = panels.draw(analysis, panels=panels.FIRST)
        yield [first.get(p.name, None) for p in panels.PANELS] + [gr.skip()] * 4
        view = service.diagnose(request, payload, analysis, say)
        say("drawing")
    except BadInput as error:
        access.log_user_error(error)
        raise gr.Error(str(error), print_exception=False) from None
    except access.ClientGone:
        return  # nobody is listening
    figs = panels.draw(analysis, view)
    frames = analysis.grid[0]
    state = {"analysis": analysis, "view": view}
    slider = gr.update(maximum=max(frames - 1, 1), value=0, visible=frames > 1)
    yield [figs[p.name] for p in panels.PANELS] + [payload, media.save_result_json(payload), state, slider]


def frame_change(state, frame):
    if not state:
        return [gr.update() for _ in panels.PER_FRAME]
    figs = panels.draw(state["analysis"], state["view"], int(frame), panels=panels.PER_FRAME)
    return [figs[p.name] for p in panels.PER_FRAME]


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


def method_choices():
    """(label, name) pairs grouped as methods.GROUPS orders them, the unpruned reference last."""
    choices = [(f"{label}: {name}", name) for key, label in GROUPS.items()
               for name, m in METHODS.items() if m is not None and m.group == key]
    return choices + [("reference: none (unpruned)", "none")]


def method_dropdown(label, value):
    # custom values pass through: old names (clse_hybrid) are renamed by check_settings with a note, and an
    # unknown name gets its sentence there
    return gr.Dropdown(method_choices(), value=value, label=label, info=DESCRIPTIONS[value], allow_custom_value=True)


def method_info(name):
    """The method menu's help line follows the choice."""
    return gr.update(info=DESCRIPTIONS.get(name, ""))


def build_inputs():
    """The request's components, in the order of the `compare` API's parameters."""
    with gr.Column(scale=1):
        image = CheckedImage(type="filepath", image_mode=None, sources=["upload", "clipboard", "webcam"],
                             label="Image")  # image_mode=None: Gradio passes the file on, never decodes it
        video = gr.Video(sources=["upload"], label="Video (frames sampled evenly)")
        question = gr.Textbox(label="Question", max_lines=3)
    with gr.Column(scale=1):
        model_id = gr.Dropdown(access.model_choices(), label="Model", allow_custom_value=True,
                               value=access.default_model(),
                               info="the embedded model, a hub id (needs the hub) or a local directory")
        with gr.Row():
            method_a = method_dropdown("Method A", "clse")
            method_b = method_dropdown("Method B", "fastv")
        preset = gr.Radio(list(service.BUDGET_PRESETS), label="Budget preset (a share of the model's visual tokens)")
        keep = gr.Number(value=round(1 / 9, 4), label="Keep: a count >= 1 or a ratio < 1 per image/video")
        with gr.Row():
            prune_layer = gr.Dropdown(LAYER_CHOICES, value="auto", allow_custom_value=True, label="Prune layer K",
                                      info="auto = the paper's setting: K=1 for images, K=3 for video")
            ref_layer = gr.Dropdown(LAYER_CHOICES, value="auto", allow_custom_value=True,
                                    label="Reference layer L (CLSE)",
                                    info="auto = the paper's setting: L=0 for images, L=2 for video")
        with gr.Row():
            schedule = gr.Radio(["single", "paper"], value="single", label="Schedule",
                                info="one stage at K, or the paper's three stages")
            num_frames = gr.Slider(1, 16, value=4, step=1, label="Video frames")
        with gr.Accordion("More settings", open=False):
            early_kv = gr.Radio(["auto", "keep", "prune"], value="auto", label="KV cache of the layers before K",
                                info=EARLY_KV_INFO)
            invert = gr.Checkbox(False, label="Invert: keep the lowest-ranked tokens (the falsification ablation: "
                                              "a score that matters should do worse inverted)")
            prompt = gr.Radio(["chat", "official"], value="chat", label="Prompt",
                              info="the model's chat template, or the official evaluation prompt (LLaVA-1.5: "
                                   "vicuna_v1 with its system prompt)")
            repeats = gr.Slider(1, 5, value=1, step=1, label="Timed repeats",
                                info="each method timed this many times (order rotated): the cost panel shows the "
                                     "median and the spread")
    inputs = [image, video, question, method_a, method_b, keep, prune_layer, ref_layer, schedule, model_id,
              num_frames, early_kv, invert, prompt, repeats]
    return inputs, preset


def build_section(section, plots):
    """The section's reading text, its own content if it brings any, and its panels (half-width ones in pairs)."""
    gr.Markdown(section.how_to_read)
    if section.render:
        section.render()
    row = []
    for panel in panels.panels_of(section.name) + [None]:
        if row and (panel is None or not panel.half or len(row) == 2):
            with gr.Row():
                for waiting in row:
                    plots[waiting.name] = gr.Plot(label=waiting.label)
            row = []
        if panel is not None and panel.half:
            row.append(panel)
        elif panel is not None:
            plots[panel.name] = gr.Plot(label=panel.label)


def build_results():
    """The answers, the frame slider, then one tab per section and the result JSON. Returns the components
    the Compare event writes: ({panel name: gr.Plot}, result JSON, download, frame slider)."""
    plots = {}
    top, *tabs = panels.SECTIONS
    gr.Markdown(f"## {top.label}")
    build_section(top, plots)
    frame = gr.Slider(0, 1, value=0, step=1, label="Frame (video)", visible=False)  # maximum set per request
    with gr.Tabs():
        for section in tabs:
            with gr.Tab(section.label, id=section.name) as tab:
                build_section(section, plots)
            # Plotly draws a plot that arrives while its tab is hidden at its default 700 px: a resize event
            # when the tab opens lets it take the tab's width.
            tab.select(None, js=RESIZE_PLOTS)
        with gr.Tab("Result JSON", id="result"):
            gr.Markdown("The whole result: the command line's `--json` records plus `flip_test`, "
                        "`positional_bias` and `positional_sweep`; the API returns the same object.")
            result_json = gr.JSON(label="Records (same schema as `python -m explorer --json`)", visible=False)
            download = gr.File(label="Download JSON")
    return plots, result_json, download, frame


def build_app():
    with gr.Blocks(title="Visual-token pruning explorer") as demo:
        gr.Markdown("# Visual-token pruning explorer\nUpload an image or a video, ask a question, and see what "
                    "the model answers unpruned, pruned by method A and pruned by method B, and why.")
        with gr.Row():
            inputs, preset = build_inputs()
        run = gr.Button("Compare", variant="primary")
        gr.Examples(examples(), inputs=inputs[:3], label="Examples", examples_per_page=4)
        # The progress bar sits here, not over the panels: the answers stay readable while the rest runs.
        status = gr.Markdown("*A request's progress shows here.*", min_height=60, container=True)
        plots, result_json, download, frame = build_results()
        state = gr.State()
        outputs = [plots[p.name] for p in panels.PANELS] + [result_json, download, state, frame]
        event = dict(fn=compare_click, inputs=inputs, outputs=outputs, concurrency_id="model", show_progress_on=status)
        run.click(**event, api_name="compare")
        inputs[2].submit(**event, api_visibility="private")
        frame.change(frame_change, inputs=[state, frame], outputs=[plots[p.name] for p in panels.PER_FRAME],
                     api_visibility="private")
        preset.change(preset_change, inputs=preset, outputs=inputs[5], api_visibility="private")
        for menu in inputs[3:5]:
            menu.change(method_info, inputs=menu, outputs=menu, api_visibility="private")
    return demo
