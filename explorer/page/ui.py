"""The Gradio page: layout and wiring only. Components are built here and wired to the handlers of events.py;
the results' layout comes from panels.py (the answers above the tabs, one tab per section, each with its
"how to read this" and its panels); the request's components follow the compare API's order (api.py).
"""

import functools

import gradio as gr

import models
from explorer.core.options import Settings, specs
from explorer.methods.registry import METHODS, groups
from explorer.page import benchmark_tab, events, figures, lesson, panels, service
from explorer.page.api import BOTH_MODES, COMPARE_ARGUMENTS, page_settings
from explorer.serve import access, limits
from models.shapes_llava import scenes

RESIZE_PLOTS = "() => { setTimeout(() => window.dispatchEvent(new Event('resize')), 50); }"


def scroll_to(elem_id, block="start"):
    """Browser code that scrolls the page to an element (the answers after Compare, the lesson's text after a
    step, then the panel it reads), then lets Plotly take the width of a tab that opened."""
    return ("() => { const e = document.getElementById('" + elem_id + "'); if (e) e.scrollIntoView({block: '"
            + block + "'}); setTimeout(() => window.dispatchEvent(new Event('resize')), 50); }")


def scroll_to_step(panel):
    """After a lesson step: the panel it reads brought into view, or its text where the step was skipped; brought
    back if it has left the view 0.4, 1.5, 3 and 5 s later, because the answers and plots above it may finish
    drawing after the step's event ended and push it down (a CI run once found the panel below the screen), unless
    the visitor has scrolled, pressed a key or clicked meanwhile."""
    return ("() => { const show = () => { const note = document.getElementById('lesson-note'); const skipped = "
            "note && note.innerText.includes('Skipped'); const e = skipped ? note : document.getElementById('"
            + panel + "'); if (!e) return; const r = e.getBoundingClientRect(); if (r.bottom <= 0 || r.top >= "
            "window.innerHeight) e.scrollIntoView({block: skipped ? 'start' : 'nearest'}); }; let moved = false; "
            "for (const kind of ['wheel', 'touchmove', 'keydown', 'mousedown']) window.addEventListener(kind, () => "
            "{ moved = true; }, {once: true, passive: true}); show(); for (const ms of [400, 1500, 3000, 5000]) "
            "setTimeout(() => { if (!moved) show(); }, ms); "
            "setTimeout(() => window.dispatchEvent(new Event('resize')), 50); }")


# A phone (390 px): every plot keeps a readable width and scrolls sideways inside its block, the lesson's
# buttons wrap, and nothing of the page is wider than the screen.
CSS = """
@media (max-width: 700px) {
  .gradio-container .js-plotly-plot { min-width: %dpx; }
""" % figures.PLOT_MIN_WIDTH + "".join(
    "  .gradio-container #panel-%s .js-plotly-plot { min-width: %dpx; }\n" % (p.name, p.min_width)
    for p in panels.PANELS if p.min_width != figures.PLOT_MIN_WIDTH) + """
  .gradio-container div:has(> .js-plotly-plot) { overflow-x: auto !important; }
  #lesson-steps { flex-wrap: wrap; }
  #lesson-steps > button { min-width: 45% !important; flex: 1 1 45% !important; }
}
"""
QUESTION_HINT = ("the embedded model knows coloured shapes (" + ", ".join(scenes.COLORS) + "; circle, square, "
                 "triangle) and answers: what color is the circle? · what shape is the red object? · how many "
                 "squares are there? · is there a blue triangle? · where is the green square? · which way does the "
                 "red circle move? (a clip). British spellings (colour) are read as American ones; a hub model "
                 "answers anything")
SECTION_CONTENT = {"benchmark_tab": benchmark_tab.build}  # panels.Section.render names these
DEFAULT = COMPARE_ARGUMENTS


class CheckedImage(gr.Image):
    """gr.Image whose uploads are checked from their header before Gradio decodes them (events.py)."""

    def get_block_name(self):
        return "image"  # render with Gradio's own image front end

    def preprocess(self, payload):
        return events.image_upload_checked(payload, super().preprocess)


def method_choices():
    """(label, name) pairs grouped as the registry groups them, the unpruned reference last."""
    return [(f"{label}: {name}", name) for label, names in groups() for name in names] + [
        ("reference: none (unpruned)", "none")]


def method_dropdown(label, value):
    # custom values pass through: old names (clse_hybrid) are renamed by check_settings with a note, and an
    # unknown name gets its sentence there
    return gr.Dropdown(method_choices(), value=value, label=label, info=METHODS[value].description,
                       allow_custom_value=True)


# Where the page lays out its settings: these rows under the model, the conversation's two in the follow-up
# box (its mode) and hidden (the questions asked); every other setting on the page (explorer/page/api.py) goes
# under "More settings", in Settings' order, with the component its spec asks for (setting_component).
MAIN_ROWS = (("method_a", "method_b"), ("keep",), ("prune_layer", "ref_layer"), ("schedule", "num_frames"))
CONVERSATION = ("follow_ups", "follow_up_mode")
SETTING_OF = {argument: name for argument, name, _ in page_settings()}
EXTRA_INFO = {  # what the page adds to a setting's help
    "keep": f"; the page's default, {DEFAULT['keep']:g} of the visual tokens, is 28 of the embedded model's 256; the "
            f"command line's default is {Settings().keep:g} tokens (--keep)",
    "follow_up_mode": f"; {BOTH_MODES}: the two answers side by side (runs the comparison twice)",
}


def setting_component(argument, **layout):
    """The component of one page setting, from its spec: label, info (its help; "auto" explained from the
    family files), choices, bounds and the page's default."""
    name = SETTING_OF[argument]
    spec = specs()[name][1]
    value, label = DEFAULT[argument], spec.get("label", name.replace("_", " ").capitalize())
    info = spec["help"] + EXTRA_INFO.get(argument, "")
    if spec.get("optional") and name in models.FAMILIES[0].DEFAULTS["image"]:
        info += "; " + service.default_layers_help(name)
    auto = ["auto"] if spec.get("optional") else []
    if "choices" in spec:  # the follow-up mode's page default, both, is the page's own choice
        extra = [BOTH_MODES] if value == BOTH_MODES else []
        return gr.Radio([*extra, *auto, *spec["choices"]], value=value, label=label, info=info, **layout)
    if spec["type"] is bool:
        return gr.Checkbox(value, label=label, info=info, **layout)
    if spec.get("optional"):  # a layer: auto, the first 41 listed, any other typed (the plan checks it)
        return gr.Dropdown(auto + [str(i) for i in range(spec["low"], 41)], value=value, allow_custom_value=True,
                           label=label, info=info, **layout)
    if spec["type"] is int and spec["high"] - spec["low"] <= 100:
        return gr.Slider(spec["low"], spec["high"], value=value, step=1, label=label, info=info, **layout)
    return gr.Number(value, label=label, info=info, precision=0 if spec["type"] is int else None, **layout)


def build_settings(c):
    """The page's settings: MAIN_ROWS, then the others but the conversation's under "More settings"."""
    for row in MAIN_ROWS:
        if row == ("keep",):
            c["preset"] = gr.Radio(list(service.BUDGET_PRESETS),
                                   label="Budget preset (a share of the model's visual tokens)")
        with gr.Row():
            for argument in row:
                c[argument] = method_dropdown(f"Method {argument[-1].upper()}", DEFAULT[argument]) \
                    if SETTING_OF[argument] == "methods" else setting_component(argument)
    placed = {argument for row in MAIN_ROWS for argument in row} | set(CONVERSATION)
    with gr.Accordion("More settings", open=False):
        for argument in SETTING_OF:
            if argument not in placed:
                c[argument] = setting_component(argument)
    # the conversation's later questions, one per line: filled by the follow-up box, emptied by Compare
    c["follow_ups"] = gr.Textbox(value=DEFAULT["follow_ups"], visible=False)


def build_inputs():
    """The request's components by name (COMPARE_ARGUMENTS' names) and the budget preset."""
    c = {}
    with gr.Column(scale=1):
        c["image"] = CheckedImage(type="filepath", image_mode=None, sources=["upload", "clipboard", "webcam"],
                                  label="Image")  # image_mode=None: Gradio passes the file on, never decodes it
        c["video"] = gr.Video(sources=["upload"], label="Video (frames sampled evenly)")
        c["question"] = gr.Textbox(label="Question", max_lines=3, info=QUESTION_HINT,
                                   placeholder="e.g. what color is the circle ?")
    with gr.Column(scale=1):
        c["model_id"] = gr.Dropdown(access.model_choices(), label="Model", allow_custom_value=True,
                                    value=access.default_choice(),
                                    info="the embedded model, a hub id (needs the hub) or a model folder this "
                                         "deployment serves, by its name")
        build_settings(c)
    return c, c.pop("preset")


def build_follow_up(request):
    """The follow-up box under the answers: one more question to every method's conversation, and the mode."""
    with gr.Row():
        ask = gr.Textbox(label="Follow-up question", scale=4, max_lines=2,
                         placeholder="ask another question about the same image or video")
        request["follow_up_mode"] = setting_component("follow_up_mode", scale=2)
        button = gr.Button("Ask a follow-up", scale=1)
    return ask, button


def build_section(section, plots):
    """The section's reading text, its own content if it brings any, and its panels (half-width ones in pairs)."""
    gr.Markdown(section.how_to_read)
    if section.render:
        SECTION_CONTENT[section.render]()
    row = []
    for panel in panels.panels_of(section.name) + [None]:
        if row and (panel is None or not panel.half or len(row) == 2):
            with gr.Row():
                for waiting in row:
                    plots[waiting.name] = gr.Plot(label=waiting.label, elem_id=f"panel-{waiting.name}")
            row = []
        if panel is not None and panel.half:
            row.append(panel)
        elif panel is not None:
            plots[panel.name] = gr.Plot(label=panel.label, elem_id=f"panel-{panel.name}")


def build_results(request):
    """The answers, the follow-up box, the view controls (grid, turn, frame), then one tab per section and the
    result JSON. Returns the components the Compare event writes, by output name (events.COMPARE_OUTPUTS but
    the state), and the follow-up box's (question, button) under "follow_up"."""
    out = {}
    top, *tabs = panels.SECTIONS
    gr.Markdown(f"## {top.label}", elem_id="answers")
    build_section(top, out)
    out["follow_up"] = build_follow_up(request)
    with gr.Row():  # what the panels below show: which grid of the input, which turn, which frame
        out["grid"] = gr.Dropdown([], label="Grid (an image seen as several: base, tiles, thumbnail)", visible=False)
        out["turn"] = gr.Slider(1, 2, value=1, step=1, label="Turn of the conversation (kept sets)", visible=False)
        # counted from 1, as the figures count ("frame 1 of 4"); its range is set per request
        out["frame"] = gr.Slider(1, 2, value=1, step=1, label="Frame (video)", visible=False)
    out["lesson_note"] = gr.Markdown("", elem_id="lesson-note")  # a lesson step's text, above the tabs it opens
    with gr.Tabs() as out["tabs"]:
        for section in tabs:
            with gr.Tab(section.label, id=section.name) as tab:
                build_section(section, out)
            # Plotly draws a plot that arrives while its tab is hidden at its default 700 px: a resize event
            # when the tab opens lets it take the tab's width.
            tab.select(None, js=RESIZE_PLOTS)
        with gr.Tab("Result JSON", id="result"):
            gr.Markdown("The whole result: the command line's `--json` records plus `flip_test` (with each "
                        "method's chance level), `positional_bias`, `positional_sweep` and, where they apply, "
                        "`ground_truth`, `page_notes` and `other_mode_turns`; the API returns the same object.")
            out["result_json"] = gr.JSON(label="Records (same schema as `python -m explorer --json`)", visible=False)
            out["download"] = gr.File(label="Download JSON")
    return out


def build_lesson():
    """The lesson's bar at the top of the page: its title and one button per step. Returns the buttons."""
    with gr.Row(equal_height=True):
        gr.Markdown(f"**{lesson.TITLE}** (on the embedded model; a hub model runs the steps that need no ground "
                    f"truth). {lesson.ABOUT}")
    with gr.Row(elem_id="lesson-steps"):
        return [gr.Button(step.title, size="sm", variant="secondary") for step in lesson.STEPS]


def build_examples(request):
    """The examples, above Compare: the embedded model's generated scenes and clip (the right answer is known),
    then the photos, labelled as needing a hub model."""
    fields = [request["image"], request["video"], request["question"]]
    scenes_rows, photos = service.example_split()
    scene_list = gr.Dataset(components=fields, samples=scenes_rows, type="index", samples_per_page=4,
                            label=f"Examples for the embedded model ({models.EMBEDDED_ID}: generated shapes, the "
                                  "right answer known)")
    scene_list.click(events.load_example, inputs=scene_list, outputs=fields, api_visibility="private", queue=False)
    if photos:
        photo_list = gr.Dataset(components=fields, samples=photos, type="index", samples_per_page=4,
                                label="Photos: these need a hub model (the embedded model knows only coloured shapes "
                                      "and answers nonsense about a cat); they still show what each method keeps")
        photo_list.click(events.load_photo, inputs=photo_list, outputs=fields, api_visibility="private", queue=False)


def build_app():
    with gr.Blocks(title="Visual-token pruning explorer") as demo:
        gr.HTML(f"<style>{CSS}</style>", padding=False, container=False)  # in the page: whoever launches it
        gr.Markdown("# Visual-token pruning explorer\nUpload an image or a video, ask a question, and see what "
                    "the model answers unpruned, pruned by method A and pruned by method B, and why.")
        steps = build_lesson()
        with gr.Row():
            request, preset = build_inputs()
        build_examples(request)
        run = gr.Button("Compare", variant="primary")
        # The progress bar sits here, not over the panels: the answers stay readable while the rest runs.
        status = gr.Markdown("*A request's progress shows here.*", min_height=60, container=True)
        # the visitor's last result (for the grid, turn and frame controls) expires, API sessions' too
        out = {**build_results(request), "state": gr.State(time_to_live=limits.STATE_TTL_S)}
        inputs = {name: request[name] for name in COMPARE_ARGUMENTS}  # the handlers get them as one mapping
        event = dict(fn=events.compare_click, inputs_kwargs=inputs, outputs=[out[n] for n in events.COMPARE_OUTPUTS],
                     concurrency_id=limits.LIMITED_CONCURRENCY_ID, show_progress_on=status)
        new_conversation = dict(fn=lambda: "", outputs=request["follow_ups"], api_visibility="private", queue=False)
        controls = dict(fn=events.view_controls, inputs=out["state"], outputs=[out["grid"], out["turn"]],
                        api_visibility="private", queue=False)
        to_answers = dict(fn=None, js=scroll_to("answers"), api_visibility="private", queue=False)
        run.click(**to_answers)
        run.click(**new_conversation).then(**event, api_name="compare").then(**controls)
        request["question"].submit(**to_answers)
        request["question"].submit(**new_conversation).then(**event, api_visibility="private").then(**controls)
        for i, button in enumerate(steps):  # the step bound to each button's handlers (no State: every State the
            # page keeps expires, explorer/serve/limits.py)
            scroll = dict(fn=None, js=scroll_to_step(lesson.STEPS[i].panel), api_visibility="private", queue=False)
            button.click(functools.partial(events.lesson_start, i), inputs=request["model_id"],
                         outputs=[request[n] for n in events.LESSON_INPUTS] + [out["lesson_note"], out["tabs"]],
                         api_visibility="private", queue=False) \
                .then(**scroll) \
                .then(**{**event, "fn": functools.partial(events.lesson_compare, i)}, api_visibility="private") \
                .success(**controls) \
                .success(functools.partial(events.lesson_findings, i), inputs=[out["state"], request["model_id"]],
                         outputs=out["lesson_note"], api_visibility="private", queue=False) \
                .then(**scroll)
        ask, ask_button = out["follow_up"]
        for trigger in (ask_button.click, ask.submit):
            trigger(events.add_follow_up, inputs=[request["follow_ups"], ask], outputs=[request["follow_ups"], ask],
                    api_visibility="private", queue=False).success(**event, api_visibility="private").then(**controls)
        view = [out["state"], out["grid"], out["turn"]]
        out["frame"].change(events.frame_change, inputs=[out["state"], out["frame"], out["grid"], out["turn"]],
                            outputs=[out[n] for n in events.FRAME_OUTPUTS], api_visibility="private")
        for control in ("grid", "turn"):
            out[control].change(events.view_change, inputs=view, outputs=[out[n] for n in events.VIEW_OUTPUTS],
                                api_visibility="private")
        preset.change(events.preset_change, inputs=preset, outputs=request["keep"], api_visibility="private")
        for name in ("method_a", "method_b"):
            request[name].change(events.method_info, inputs=request[name], outputs=request[name],
                                 api_visibility="private")
    return demo
