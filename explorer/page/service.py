"""What the page does, without Gradio: check a request, load its model once, run the comparison, then the
page's diagnostic runs (the flip test, the embedded model's object sweep); the page's texts that come from the
family files; the examples. events.py calls these and draws the panels (panels.py) from the request's
analysis; ui.py wires the components to events.py.

A request runs in two steps so the page can show the answers before the diagnostics: `answer` (the
comparison: the unpruned run and the two methods) and `diagnose` (everything the diagnostic panels need on
top). Every request builds its records from scratch (the engine keeps nothing between calls); the only
state kept across requests is the loaded model, guarded by one lock per model so model work runs one at a
time, and the embedded model's object sweep, which depends only on the settings (methods, budget, layer),
never on the user's input.
"""

import copy
import dataclasses
import functools
import json
import os
import re
import time

import numpy as np
from PIL import ImageOps

import models
from explorer.analysis.comparison import Analysis
from explorer.core.compare import compare
from explorer.core.settings import check_question, check_settings
from explorer.eval.sweep import positional_sweep
from explorer.media import read as media
from explorer.page.api import BOTH_MODES
from explorer.serve import access, zerogpu
from models.base import BadInput
from models.shapes_llava import scenes

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "assets")

BUDGET_PRESETS = {  # the paper's LLaVA-1.5 budgets (192, 128, 64 tokens) as ratios, so they scale to any grid
    "1/3 (the paper's 192)": 1 / 3,
    "2/9 (the paper's 128)": 2 / 9,
    "1/9 (the paper's 64)": 1 / 9,
}

_sweeps = {}  # the settings the sweep reads -> the object sweep: fixed scenes, deterministic methods
MAX_SWEEPS = 16  # settings whose sweep is kept (oldest dropped): each new keep value made a new entry

def get_model(model_id=None, say=None):
    """(model, processor, family, lock) of an allowed model, loaded once per canonical key (explorer.serve.access),
    on EXPLORER_DEVICE in EXPLORER_DTYPE (default: auto)."""
    return access.get_model(model_id, progress=say)


def gpu_seconds(request, *args, **kwargs):
    """The GPU time a ZeroGPU Space asks for this request (explorer.zerogpu)."""
    return zerogpu.request_seconds(request.settings, len(request.images))


@dataclasses.dataclass
class Request:
    """One checked request: what the user gave and the settings every run of it uses."""

    images: list  # PIL images: one image, or a video's sampled frames
    kind: str  # "image" or "video"
    question: str
    settings: object  # explorer.settings.Settings
    model_id: str
    pair: tuple  # (method A, method B) as chosen on the page
    reading_ms: float = 0.0  # the media's reading (a video's decoding): the payload's page_timings_ms["media"]
    notes: tuple = ()  # what the page changed in the request (a British spelling read as American), for the answers
    both_modes: bool = False  # the follow-ups asked in both modes (keep and reprune), side by side


# British spellings read as the American word the embedded model's vocabulary has (only where it has that word)
AMERICAN = {"colour": "color", "colours": "colors", "grey": "gray", "centre": "center", "favourite": "favorite"}


def americanised(text, model_id):
    """(text, notes): on the embedded model, every British spelling of AMERICAN whose American form its vocabulary
    knows replaced by that form, with a note naming it; other models read the question as typed."""
    if model_id != models.EMBEDDED_ID or not text:
        return text, ()
    known = set(scenes.vocabulary())
    notes = []

    def replace(match):
        word = match.group(0)
        american = AMERICAN[word.lower()]
        if american not in known:
            return word
        notes.append(f"'{word}' read as '{american}' (the embedded model's vocabulary spells it the American way)")
        return american.upper() if word.isupper() else american.capitalize() if word[0].isupper() else american

    pattern = re.compile(r"\b(" + "|".join(AMERICAN) + r")\b", re.IGNORECASE)
    return pattern.sub(replace, text), tuple(dict.fromkeys(notes))


def prepare(image, video, question, method_a, method_b, keep, prune_layer="auto", ref_layer="auto",
            schedule="single", model_id=None, num_frames=4, early_kv="auto", invert=False, prompt="chat", repeats=1,
            budget_per="image", follow_ups="", follow_up_mode="keep", positions="auto", rank="auto",
            scoring_point="after"):
    """The page's raw inputs (explorer.page.api.COMPARE_ARGUMENTS, by name) checked once: a Request, or
    BadInput with the sentence the user sees. follow_up_mode may also be "both" (the page's own: every
    follow-up asked in keep and in reprune mode, answered side by side)."""
    question = check_question(question)
    model_id = access.canonical_model(model_id)  # refused before any media is decoded
    question, notes = americanised(question, model_id)
    follow_ups, follow_notes = americanised(follow_ups, model_id) if isinstance(follow_ups, str) else (follow_ups, ())
    both = follow_up_mode == BOTH_MODES
    settings = check_settings(methods=[method_a, method_b], keep=keep, prune_layer=prune_layer,
                              ref_layer=ref_layer, schedule=schedule, early_kv=early_kv, invert=bool(invert),
                              frames=num_frames, prompt=prompt, repeats=repeats, budget_per=budget_per,
                              follow_ups=follow_ups, follow_up_mode="keep" if both else follow_up_mode,
                              positions=positions, rank=rank, scoring_point=scoring_point)
    start = time.perf_counter()
    images, kind = media.read_media(image, video, settings.frames)  # bounded work (in time too, for a video)
    methods = settings.methods  # aliases already renamed (the records carry the note)
    return Request(images, kind, question, settings, model_id, (methods[0], methods[-1]),
                   (time.perf_counter() - start) * 1e3, tuple(dict.fromkeys(notes + follow_notes)),
                   both and bool(settings.follow_ups))


def expected_stages(request):
    """How many stages a request reports (for a progress bar): loading, encoding, each run and repeat, the
    diagnostics, the flip test, the sweep on the embedded model, drawing."""
    runs = (1 + len([m for m in request.settings.methods if m != "none"])) * request.settings.repeats
    both = 2 + runs if request.both_modes else 0  # the comparison again, its follow-ups in reprune mode
    return (5 + runs + both + len(request.settings.follow_ups) * 3 * (1 + request.both_modes)
            + (request.model_id == models.EMBEDDED_ID))


def without_paths(text, model_id):
    """A progress line as the visitor may see it: the model's server path replaced by its name, and any other
    absolute path by its last part."""
    if os.path.isabs(model_id or ""):
        text = text.replace(model_id.rstrip(os.sep), access.display_name(model_id))
    return re.sub(r"(?<![\w.])/(?:[^\s/()'\"]+/)+([^\s/()'\"]+)", r"\1", text)


def answer(request, say=None):
    """The comparison: the payload, the command line's --json object (plain numbers and lists, picklable; the
    model named by its id, never the server's path). `say(text)` is told each stage (loading the model,
    encoding, each method)."""
    told = say or (lambda text: None)

    def say(text):  # never a server path in the visitor's progress line
        told(without_paths(text, request.model_id))

    say(f"loading the model {access.display_name(request.model_id)}")
    model, processor, family, lock = get_model(request.model_id, say)
    other = None
    with lock:
        start = time.perf_counter()
        records = compare(model, processor, family, request.images, request.question, request.settings,
                          kind=request.kind, diagnostics=True, progress=say)
        comparison_ms = (time.perf_counter() - start) * 1e3
        if request.both_modes:  # the same follow-ups pruned again for each question, for the answers side by side
            say("the follow-ups again, pruned again for each question (reprune)")
            other = compare(model, processor, family, request.images, request.question,
                            dataclasses.replace(request.settings, follow_up_mode="reprune", repeats=1),
                            kind=request.kind, diagnostics=False, progress=say)
    name = access.display_name(request.model_id)
    results = {method: {**r.to_json(), "model": name} for method, r in records.items()}
    payload = {"model": name, "results": results,
               "page_timings_ms": {"media": request.reading_ms, "comparison": comparison_ms}}
    if request.notes:
        payload["page_notes"] = list(request.notes)
    if other is not None:
        payload["other_mode_turns"] = {"mode": "reprune", "turns": {
            method: r.to_json()["turns"] for method, r in other.items() if method != "none"}}
    truth = ground_truth(request)
    if truth:
        payload["ground_truth"] = truth
    return payload


def diagnose(request, payload, say=None):
    """The page's diagnostic runs (diagnostic_runs) on the request's model, under its lock: (what they add to
    the payload, the images the model saw). Plain data and PIL images: picklable."""
    model, processor, family, lock = get_model(request.model_id)
    with lock:
        added, view = diagnostic_runs(model, processor, family, request.images, request.question, request.settings,
                                      request.kind, embedded=request.model_id == models.EMBEDDED_ID, say=say)
    added["page_timings_ms"] = {**payload["page_timings_ms"], **added.pop("timings_ms")}
    return added, view


def diagnostic_runs(model, processor, family, images, question, settings, kind="image", embedded=False, say=None):
    """What the diagnostic panels need besides the comparison, on a loaded model: the flip test's kept sets (the
    input upside down), on the embedded model the object sweep, and the images the model saw (for drawing under
    the maps). Returns ({"flipped_kept_indices", "positional_sweep", "timings_ms"}, the images). The page and
    the Python API (explorer/notebook.py) run these."""
    say = say or (lambda text: None)
    settings = dataclasses.replace(settings, follow_ups=())
    start = time.perf_counter()
    say("the flip test: the same input upside down")
    flipped = compare(model, processor, family, [ImageOps.flip(im) for im in images], question,
                      dataclasses.replace(settings, max_new_tokens=1, repeats=1), kind=kind, diagnostics=False)
    middle = time.perf_counter()
    view = family.model_view(processor, images, kind=kind)
    sweep = None
    if embedded:  # known ground truth: objects and their tokens
        say("the object sweep (embedded model)")
        sweep = object_sweep(model, processor, family, settings)
    end = time.perf_counter()
    added = {"flipped_kept_indices": {name: [int(n) for n in r.kept_indices] for name, r in flipped.items()},
             "positional_sweep": sweep,
             "timings_ms": {"flip_test": (middle - start) * 1e3, "view_and_sweep": (end - middle) * 1e3}}
    return added, view


def analyse(payload, pair=None):
    """The analysis of a payload that has its diagnostics, whose flip test and positional bias numbers it adds
    to the payload."""
    analysis = Analysis(payload, pair=pair)
    payload["flip_test"] = analysis.flip_numbers()
    payload["positional_bias"] = analysis.bias_summary()
    return analysis


gpu_answer = zerogpu.gpu(duration=gpu_seconds)(answer)
gpu_diagnose = zerogpu.gpu(duration=gpu_seconds)(diagnose)


def run_answer(request, say=None):
    """The comparison, on ZeroGPU in a GPU worker (no progress callback crosses: it is not picklable)."""
    return gpu_answer(request) if zerogpu.active() else answer(request, say)


def run_diagnose(request, payload, say=None):
    """The diagnostics, added to the payload; with the analysis's numbers of them (flip test, positional
    bias). Returns (the analysis of the whole payload, the images the model saw)."""
    added, view = gpu_diagnose(request, payload) if zerogpu.active() else diagnose(request, payload, say)
    payload.update(added)
    return analyse(payload, request.pair), view


def object_sweep(model, processor, family, settings):
    """The embedded model's object sweep for these settings, computed once per settings and reused."""
    key = dataclasses.replace(settings, frames=0, max_new_tokens=0, repeats=0, seed=0)  # what it reads
    if key not in _sweeps:
        if len(_sweeps) >= MAX_SWEEPS:
            _sweeps.pop(next(iter(_sweeps)))  # the oldest: each new keep value made a new entry
        _sweeps[key] = positional_sweep(model, processor, family, settings)
    return copy.deepcopy(_sweeps[key])


def run_comparison(say=None, **arguments):
    """The whole request in one call (scripts, the page benchmark), the compare API's arguments by name:
    (payload, view, analysis)."""
    request = prepare(**arguments)
    payload = run_answer(request, say)
    analysis, view = run_diagnose(request, payload, say)
    return payload, view, analysis


# ------------------------------------------------------------------------------------------- ground truth
# The generated examples' scenes are known: their objects (outlines over the masks), the right answer and the
# asked object's tokens (each method's recall of it). An image is recognised by its pixels, so an upload of the
# same file counts too; a clip's frames come back from a lossy video file and are not matched.


def example_scene_seeds():
    """The seeds of the generated example scenes (assets/scene_<seed>.png)."""
    return sorted(int(m.group(1)) for row in examples() if row[0]
                  for m in [re.fullmatch(r"scene_(\d+)\.png", os.path.basename(row[0]))] if m)


@functools.lru_cache(maxsize=1)
def _known_scenes():
    """{pixel bytes of a generated example: its scene}."""
    out = {}
    for seed in example_scene_seeds():
        scene = scenes.make_scene(seed)
        out[np.asarray(scene.image.convert("RGB")).tobytes()] = scene
    return out


def normalised(question):
    """A question as the embedded model's tokenizer reads it: lower case, "?" apart, single spaces."""
    return " ".join(re.sub(r"\s*\?+\s*", " ? ", question.lower()).split()).replace("!", "").strip()


def ground_truth(request):
    """{"source", "objects", "answer", "target_tokens", "grid", "image_size", "group"} for a generated example
    scene (None for anything else): its objects (shape, colour, pixel box), the right answer and the asked
    object's visual tokens (group-local, on the 16 x 16 grid) where the question is one the scene generator
    asks of it; otherwise "answer" is None and only the objects are known."""
    if request.kind != "image" or len(request.images) != 1 or request.model_id != models.EMBEDDED_ID:
        return None
    image = request.images[0]
    if image.size != (scenes.IMAGE_SIZE, scenes.IMAGE_SIZE):
        return None
    scene = _known_scenes().get(np.asarray(image.convert("RGB")).tobytes())
    if scene is None:
        return None
    asked = normalised(request.question)
    question = next((q for q in scene.questions if normalised(q.text) == asked), None)
    target = []
    if question is not None and question.targets:
        mask = np.any([scenes.object_token_mask(scene.objects[i]) for i in question.targets], axis=0)
        target = np.flatnonzero(mask).tolist()
    side = scenes.IMAGE_SIZE // scenes.PATCH
    return {"source": f"generated scene {scene.seed}, assets/scene_{scene.seed}.png",
            "objects": [{"shape": o.shape, "color": o.color, "box": [float(v) for v in o.box],
                         "asked": question is not None and i in question.targets}
                        for i, o in enumerate(scene.objects)],
            "answer": question.answer if question is not None else None,
            "target_tokens": target, "grid": [side, side], "image_size": scenes.IMAGE_SIZE, "group": 0}


# ------------------------------------------------------------------------------------------- benchmark tab
# A report the page draws (uploaded, or read from the server's runs): bounded in size, shape and drawing, so a
# visitor's file can hold neither the memory nor the server's time (explorer/eval/report.py writes them small:
# a few kB a run).
MAX_REPORT_BYTES = 2 * 2**20
MAX_REPORT_DEPTH = 24  # nesting of JSON arrays and objects
MAX_REPORT_TASKS = 12
MAX_REPORT_RUNS = 300
MAX_REPORT_FIGURES = 80


def json_depth(text):
    """The deepest nesting of arrays and objects in a JSON text (strings skipped), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def check_report(loaded):
    """BadInput unless a report has the shape report.py writes and stays within the page's bounds; returns
    its figures (so a report that cannot be drawn is refused when it is loaded, not when it is shown)."""
    from explorer.eval import report  # noqa: PLC0415  (drawn only when the Benchmark tab asks)

    if not isinstance(loaded, dict) or not isinstance(loaded.get("runs"), list) or \
            not isinstance(loaded.get("tasks"), list):
        raise BadInput("the file is JSON but not a report of `python -m explorer.eval.report --json`")
    if len(loaded["tasks"]) > MAX_REPORT_TASKS or len(loaded["runs"]) > MAX_REPORT_RUNS:
        raise BadInput(f"the report has {len(loaded['tasks'])} tasks and {len(loaded['runs'])} runs; the page draws "
                       f"at most {MAX_REPORT_TASKS} tasks and {MAX_REPORT_RUNS} runs: split it")
    try:
        figures = report.report_figures(loaded)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        raise BadInput(f"the report's runs lack what its figures need ({type(error).__name__}: "
                       f"{str(error)[:80]}): write it with `python -m explorer.eval.report RUNS --json`") from None
    if len(figures) > MAX_REPORT_FIGURES:
        raise BadInput(f"the report would draw {len(figures)} figures; the page draws at most {MAX_REPORT_FIGURES}: "
                       "split it")
    return figures


def runs_root():
    """The folder of benchmark runs the page offers (EXPLORER_RUNS_DIR), or None."""
    root = os.environ.get("EXPLORER_RUNS_DIR")
    return os.path.realpath(root) if root and os.path.isdir(root) else None


def benchmark_runs():
    """The run folders under EXPLORER_RUNS_DIR (names relative to it)."""
    root = runs_root()
    return sorted(name for name in os.listdir(root) if os.path.isdir(os.path.join(root, name))) if root else []


def load_benchmark(report_path=None, run_names=()):
    """A benchmark report: an uploaded `python -m explorer.report ... --json` file, or the chosen runs of
    EXPLORER_RUNS_DIR read by explorer.report. Raises BadInput with the sentence the page shows."""
    from explorer.eval import report  # noqa: PLC0415  (drawn only when the Benchmark tab asks)

    if report_path:
        try:
            size = os.path.getsize(report_path)
        except OSError:  # uploads are deleted some minutes after they came (explorer/serve/limits.py)
            raise BadInput("the uploaded report is no longer on the server (uploads are kept 10 minutes): upload "
                           "it again") from None
        if size > MAX_REPORT_BYTES:
            raise BadInput(f"the report is larger than {MAX_REPORT_BYTES // 2**20} MB")
        try:
            with open(report_path) as f:
                text = f.read()
            if json_depth(text) > MAX_REPORT_DEPTH:
                raise BadInput(f"the file nests deeper than {MAX_REPORT_DEPTH} levels: it is not a report")
            loaded = json.loads(text)
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:  # ValueError: a 5,000-digit int
            if isinstance(error, BadInput):
                raise
            raise BadInput("the file is not a report: write one with `python -m explorer.eval.report RUNS --json "
                           "report.json`") from None
        check_report(loaded)
        return loaded
    root = runs_root()
    chosen = [os.path.realpath(os.path.join(root, name)) for name in run_names or ()] if root else []
    if not chosen or any(os.path.dirname(path) != root for path in chosen):
        raise BadInput("upload a report, or choose runs from the list")
    try:
        loaded = report.load_report(chosen)
    except (FileNotFoundError, ValueError, KeyError) as error:
        raise BadInput(f"these runs cannot be read as a report ({error})") from None
    check_report(loaded)
    return loaded


SHIPPED_REPORT = os.path.join(ASSETS, "report_shapes.json")  # python -m explorer.eval.shipped writes it


@functools.lru_cache(maxsize=1)
def shipped_report():
    """The report shipped with the app (the embedded model on held-out scenes), or None where it is missing: the
    Benchmark tab's default and the lesson's last step."""
    if not os.path.exists(SHIPPED_REPORT):
        return None
    with open(SHIPPED_REPORT) as f:
        return json.load(f)


def benchmark_figures(loaded):
    from explorer.eval import report  # noqa: PLC0415

    return report.report_figures(loaded)


# ------------------------------------------------------------------------------------- texts and examples


def default_layers_help(setting):
    """"auto" explained from the family files: each family's official setting of `setting` ("prune_layer",
    "ref_layer" or "early_kv") for images and for video."""
    by_value = {}
    for family in models.FAMILIES:
        by_value.setdefault((family.DEFAULTS["image"][setting], family.DEFAULTS["video"][setting]), []).append(
            family.NAME)
    if len(by_value) == 1:
        (image, video), = by_value
        return f"auto = as the official code sets it: images {image}, video {video} (every family)"
    return "auto = as each family's official code sets it: " + "; ".join(
        f"images {image}, video {video} ({', '.join(names)})" for (image, video), names in by_value.items())


def generated(path):
    """Whether an example is one of the embedded model's generated scenes or clips (make_assets names them
    scene_<seed>.png, clip_<seed>.webm); the others are photos, which need a hub model."""
    return bool(path) and re.fullmatch(r"(scene|clip)_\d+\.\w+", os.path.basename(path)) is not None


def example_split():
    """(the rows of the embedded model's examples, the photos' rows): examples() split, each in its order; the
    generated ones come first in assets/examples.txt, so their indices are examples()'s."""
    rows = examples()
    return [r for r in rows if generated(r[0] or r[1])], [r for r in rows if not generated(r[0] or r[1])]


def examples():
    """The page's examples from assets/examples.txt (lines: file<TAB>question): [image, video, question]."""
    listing = os.path.join(ASSETS, "examples.txt")
    rows = []
    if os.path.exists(listing):
        for line in open(listing):
            if line.strip():
                name, question = line.rstrip("\n").split("\t")
                path = os.path.join(ASSETS, name)
                is_video = name.endswith((".webm", ".mp4"))
                rows.append([None if is_video else path, path if is_video else None, question])
    return rows
