"""The page's event handlers: Gradio's values in, explorer.page.service out, outputs by name. A handler builds
{output name: value}; `in_order` turns that into the list Gradio expects, in the order ui.py wired the
components (COMPARE_OUTPUTS, FRAME_OUTPUTS). A user's error becomes a gr.Error with its sentence here; nothing
else in the page translates errors.
"""

import functools
import logging

import gradio as gr

from explorer.core import interrupt
from explorer.media import read as media
from explorer.methods.registry import METHODS
from explorer.analysis.comparison import Analysis
from explorer.page import lesson, panels, reports, service
from explorer.page.api import COMPARE_ARGUMENTS
from explorer.serve import access, files, guard, limits
from models.base import BadInput

COMPARE_OUTPUTS = [p.name for p in panels.PANELS] + ["result_json", "download", "state", "frame"]
FRAME_OUTPUTS = [p.name for p in panels.PER_FRAME]
VIEW_OUTPUTS = [p.name for p in panels.PANELS if p.section != panels.SECTIONS[0].name] + ["frame"]
log = logging.getLogger("explorer")


def in_order(values, names):
    """{name: value} -> the list of values in `names`' order; a name left out is not updated (gr.skip)."""
    return [values[name] if name in values else gr.skip() for name in names]


def page_error(error):
    """The sentence of a user's error as the page shows it, with one line in the server log."""
    access.log_user_error(error)
    return gr.Error(str(error), print_exception=False)


class StageProgress:
    """The engine's and the service's `say(text)` shown on a gr.Progress: each stage advances the bar and
    names itself. `expected` is the number of stages the request reports (the bar stops short of full until
    the end)."""

    def __init__(self, progress, expected):
        self.progress, self.expected, self.done = progress, expected, 0

    def __call__(self, text):
        interrupt.check(text)  # between stages too (the engine checks before every layer)
        self.progress(min(self.done / self.expected, 0.95), desc=text)
        self.done += 1


def compare_click(progress=gr.Progress(), visitor: gr.Request = None, **request):
    """The Compare event: `request` is the compare API's arguments by name (explorer.page.api.COMPARE_ARGUMENTS;
    ui.py passes the components as inputs_kwargs, so the API keeps their names and order). The answers as soon
    as the comparison ran, then every panel. The last output set (what gradio_client's predict returns) holds
    everything.

    On SIGTERM (app.py, limits.stop_serving) a request that is open logs one of two lines: "request stopped: the
    server is stopping" (stopped within one decoder layer, its visitor told), or, when the SIGTERM came past its
    model work, "request answered while the server is stopping: its result sent". The second is decided when the
    request ends, not at a check before its last panels are drawn: a SIGTERM while they were drawn (or while
    Gradio took the result) used to leave neither line, the result sent all the same (issue 33)."""
    if limits.stopping():  # a request that waited while the server began to stop
        raise gr.Error(limits.SERVER_STOPPING, print_exception=False)
    with limits.request_open():  # the SIGTERM's drain waits until it ended (and logged how)
        answered = False
        try:
            answered = yield from compare_parts(progress, visitor, request)
        except GeneratorExit:  # Gradio closed it at a yield: its event is no longer wanted
            access.log_visitor_left("the request was closed at one of its yields")
            raise
        finally:
            if answered and limits.stopping():
                log.info("request answered while the server is stopping: its result sent")


def compare_parts(progress, visitor, request):
    """compare_click's work: the answers (first yield), then the diagnostics and every panel (second yield).
    Returns whether it answered (False: its visitor left)."""
    try:
        gone = functools.partial(unwanted, visitor)  # the visitor left, or the server stops: within one layer
        with interrupt.stop_when(gone):  # (never across a yield: the next part may run in another thread)
            progress(0, desc="reading the media")  # a video's reading stops too when its visitor leaves
            checked = service.prepare(request)
            say = StageProgress(progress, service.expected_stages(checked))
            payload = service.run_answer(checked, say)
        first = panels.draw(Analysis(payload, pair=checked.pair), panels=panels.FIRST)  # the answers alone
        # the result's own outputs get a plain None here, not a skip: Gradio 6 replaces a component that received
        # an update (a skip is one) by a new one in the session and keeps the next value under the new one's id,
        # so a skip then a value would leave one more copy of the result in the session at every request
        yield in_order({**{p.name: first.get(p.name) for p in panels.PANELS}, "result_json": None, "download": None},
                       COMPARE_OUTPUTS)
        with interrupt.stop_when(gone):
            say("the diagnostics")
            result, analysis, view = service.run_diagnose(checked, payload, say)
            say("drawing")
    except BadInput as error:
        raise page_error(error) from None
    except interrupt.Stopped as stopped:
        if limits.stopping():
            log.info("request stopped: the server is stopping (%s)", stopped)
            raise gr.Error(limits.SERVER_STOPPING, print_exception=False) from None
        access.log_visitor_left(stopped)
        return False  # nobody is listening
    frames = analysis.grid[0]
    limits.release_memory()  # else the server's memory creeps (explorer/serve/limits.py)
    yield in_order({**panels.draw(analysis, view), "result_json": result, "download": saved_result(result),
                    "state": {"analyses": {(0, 0): analysis}, "view": view},
                    "frame": frame_slider(frames)}, COMPARE_OUTPUTS)
    return True


def frame_slider(frames):
    """The frame slider for a clip of `frames` frames, counted from 1 as the figures count ("frame 1 of 4")."""
    return gr.update(minimum=1, maximum=max(frames, 2), value=1, visible=frames > 1)


def frame_index(frame, frames):
    """The slider's frame (1 .. frames, as the figures count) as an index 0 .. frames - 1; 0 or less is the first."""
    return min(max(int(frame or 1) - 1, 0), frames - 1)


RESULT_NOT_SAVED = ("The result file could not be written on the server (its disk is full): the answers and "
                    "panels are shown, the JSON download is not. Try again later for the file.")


def unwanted(visitor):
    """The running request's stop test: its visitor left, or the server is stopping."""
    return limits.stopping() or access.client_gone(visitor)


def saved_result(payload):
    """The result's JSON file for the download, or None with the page's warning when it could not be written
    (files.save_result_json leaves no partial file)."""
    try:
        return files.save_result_json(payload)
    except OSError as error:
        log.warning("the result file could not be written: %s", error)
        gr.Warning(RESULT_NOT_SAVED)
        return None


NO_RESULT = ("No result to show here: press Compare (this page keeps the results of its most recent visitors "
             "only; an older one is dropped).")


def no_result(names):
    gr.Warning(NO_RESULT)
    return [gr.update() for _ in names]


def view_controls(state):
    """After a comparison: the grid menu (an image seen as several grids) and the turn slider (a conversation)
    show what this request has."""
    if not state:
        return gr.update(), gr.update()
    first = state["analyses"][(0, 0)]
    names, turns = first.grid_names, first.turns
    return (gr.update(choices=names, value=names[0], visible=len(names) > 1),
            gr.update(maximum=max(turns, 2), value=1, visible=turns > 1))


def analysis_of(state, grid, turn):
    """The request's analysis of one grid at one turn (made once, kept in the visitor's state)."""
    first = state["analyses"][(0, 0)]
    names = first.grid_names
    group = names.index(grid) if grid in names else 0
    turn = min(max(int(turn or 1) - 1, 0), first.turns - 1)
    key = (group, turn)
    if key not in state["analyses"]:
        state["analyses"][key] = Analysis(first.payload, pair=first.pair, group=group, turn=turn)
    return state["analyses"][key]


def frame_change(state, frame, grid=None, turn=1):
    """The frame slider (frames counted from 1, as the figures count them): the per-frame panels of the request
    in the state, at this frame."""
    if not state:
        return no_result(FRAME_OUTPUTS)
    analysis = analysis_of(state, grid, turn)
    frame = frame_index(frame, analysis.grid[0])
    return in_order(panels.draw(analysis, state["view"], frame, panels=panels.PER_FRAME), FRAME_OUTPUTS)


def view_change(state, grid, turn):
    """The grid or the turn changed: every panel below the answers drawn again for it, at its first frame."""
    if not state:
        return no_result(VIEW_OUTPUTS)
    analysis = analysis_of(state, grid, turn)
    figs = panels.draw(analysis, state["view"], 0, panels=[p for p in panels.PANELS if p.name in VIEW_OUTPUTS])
    return in_order({**figs, "frame": frame_slider(analysis.grid[0])}, VIEW_OUTPUTS)


def load_example(index):
    """An example picked: its image, video and question (an index from outside the list gets a sentence). The
    embedded model's examples list calls it with its own index, which is examples()'s (they come first)."""
    rows = service.examples()
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(rows):
        raise gr.Error(f"there is no example {index!r}: the page has {len(rows)}", print_exception=False)
    return rows[index]


def load_photo(index):
    """A photo example picked (the photos' list, which needs a hub model): its image, video and question."""
    scenes, photos = service.example_split()
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(photos):
        raise gr.Error(f"there is no photo example {index!r}: the page has {len(photos)}", print_exception=False)
    return photos[index]


# ---------------------------------------------------------------------------------------------------- lesson
LESSON_INPUTS = [name for name in COMPARE_ARGUMENTS if name not in ("model_id", "follow_up_mode")]  # what a step
# sets (the model and the follow-up mode stay the visitor's)


def lesson_start(step, model_id):
    """A lesson step clicked: the request's inputs it sets (LESSON_INPUTS' order; nothing changes for a step that
    runs nothing on this model), the step's text before its run and the tab to open."""
    values = lesson.inputs_for(step, model_id)
    inputs = [values[name] if name in values else gr.update() for name in LESSON_INPUTS]
    return [*inputs, lesson.intro(step, model_id), gr.Tabs(selected=lesson.STEPS[step].tab)]


def lesson_compare(step, progress=gr.Progress(), visitor: gr.Request = None, **request):
    """The Compare event for a lesson step that runs one on this model; nothing for the others."""
    if not lesson.runs(step, request.get("model_id")):
        yield [gr.skip()] * len(COMPARE_OUTPUTS)  # the panels keep what they show (no yield would empty them)
        return
    yield from compare_click(progress=progress, visitor=visitor, **request)


def lesson_findings(step, state, model_id):
    """The step's text after its run: what to look at, then what this run measured."""
    if step is None:
        return gr.update()
    analysis = state["analyses"][(0, 0)] if state and lesson.runs(step, model_id) else None
    text = lesson.intro(step, model_id).replace("\n\n*Running...*", "")
    found = lesson.findings(step, analysis, model_id)
    return text + ("\n\n" + found if found else "")


def add_follow_up(asked, question):
    """The follow-up box: its question joins the conversation's list (one per line); the box empties."""
    if not isinstance(question, (str, type(None))) or not isinstance(asked, (str, type(None))):
        raise gr.Error("the follow-up question must be text", print_exception=False)
    question = (question or "").strip()
    if not question:
        raise gr.Error("the follow-up question is empty", print_exception=False)
    return "\n".join([*(asked or "").splitlines(), question]), ""


def preset_change(preset):
    return service.BUDGET_PRESETS.get(preset, gr.update())


def method_info(name):
    """The method menu's help line follows the choice."""
    return gr.update(info=METHODS[name].description if name in METHODS else "")


def load_benchmark_click(upload, runs):
    try:
        return reports.load_benchmark(upload, runs)
    except BadInput as error:
        raise page_error(error) from None


def image_upload_checked(payload, decode):
    """The image component's preprocessing: refuse an upload from its header before Gradio decodes it (and an
    image sent as a data: URL, which Gradio decodes whole), then Gradio's own decoding (`decode`); a broken file
    gets a sentence, not a generic failure."""
    try:
        if payload is not None and isinstance(payload.url, str) and payload.url.lstrip().lower().startswith("data:"):
            raise BadInput(guard.NOT_UPLOADED)  # Gradio would decode it whole, unchecked (the queue refuses it too)
        if payload is not None and payload.path:
            media.check_image_header(payload.path)  # before Gradio or anything else decodes it
        return decode(payload)
    except BadInput as error:
        raise gr.Error(str(error), print_exception=False) from None
    except Exception as error:  # PIL raises several kinds for broken or oversized files
        name = getattr(payload, "orig_name", None) or "the upload"
        raise gr.Error(f"{name} is not a readable image ({type(error).__name__})", print_exception=False) from None
