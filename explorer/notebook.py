"""The Python API, for notebooks and scripts: the page's comparison in one call.

    from explorer import compare
    result = compare("photo.png", "What color is the car?", methods=("clse", "fastv"), keep=64)
    result.answers                  # {"none": "red", "clse": "red", "fastv": "blue"}
    result.figure("importance")     # the page's Plotly figure of that panel
    result.to_json()                # what the page's "Download JSON" holds

`compare(image_or_video, question, methods, keep, model=None, **settings)`:
- image_or_video: a PIL image, an H x W (x 3) array, an image file, a video file (sampled into `frames`
  evenly spaced frames, as the page samples an upload), or a list of images (each its own budget; with
  video=True the frames of one clip, one budget);
- methods, keep and every other setting of the command line and the page, by name (explorer.core.options.
  Settings: prune_layer, ref_layer, schedule, early_kv, budget_per, invert, prompt, frames, max_new_tokens,
  seed, repeats, follow_ups, follow_up_mode, positions, rank, scoring_point); a bad one raises
  models.base.BadInput with the page's sentence;
- model: None (the embedded model, shapes-llava), a hub id or a local directory (loaded once and kept for the
  next call naming it; one model is kept), or what `explorer.load` returned;
- diagnostics=True also runs what the page's panels need (per-layer spectra, every method's scores, the flip
  test, the embedded model's object sweep); False: the answers and records alone, faster, no figures.

`load(model=None, device="auto", dtype="auto", device_map=None)` loads a model once for several calls, as
the command line does (a hub id the hub cannot give is refused at once, or loaded from the local cache:
explorer/core/hub.py), then one warm-up run so that no method's timings pay for the first kernels.

Everything heavy (torch, transformers, Plotly) is imported by the first call, not by `import explorer`.
"""

import mimetypes
import os

DEFAULT_METHODS = ("clse", "fastv")  # explorer.core.options.Settings.methods (tests/test_notebook.py checks)
DEFAULT_KEEP = 64  # Settings.keep


class Model:
    """A loaded model, its processor and family file: what `load` returns and `compare(model=...)` takes."""

    def __init__(self, model, processor, family, name):
        self.model, self.processor, self.family, self.name = model, processor, family, name

    def __repr__(self):
        return (f"Model({self.name!r}, {type(self.model).__name__}, family {self.family.__name__.rpartition('.')[2]}, "
                f"{self.model.device}, {str(self.model.dtype).removeprefix('torch.')})")


def load(model=None, device="auto", dtype="auto", device_map=None, progress=None):
    """A Model from a hub id, a local directory (save_pretrained layout) or None (the embedded model), on the
    device and in the dtype asked for (auto: CUDA, then MPS, then the CPU; bfloat16/float16 on a GPU, float32 on
    the CPU), warmed up. Raises models.base.BadInput with one sentence when it cannot be loaded."""
    import models
    from explorer.core import hub
    from explorer.core.compare import warm_up
    from models.base import BadInput

    try:
        source = hub.access(model)
    except hub.Unavailable as error:
        raise BadInput(str(error)) from None
    with hub.offline(source == "cache"):
        loaded, processor, family = models.load(model, device=device, dtype=dtype, device_map=device_map,
                                                progress=progress)
    warm_up(loaded, processor, family, progress=progress)
    return Model(loaded, processor, family, str(model) if model else models.EMBEDDED_ID)


_kept = {}  # the model compare() loaded last, by the name it was given: {name: Model}


def _model(model):
    if isinstance(model, Model):
        return model
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be None, a hub id, a directory or what explorer.load returned, got "
                        f"{type(model).__name__}")
    from explorer.core.hub import EMBEDDED_ID

    key = str(model or EMBEDDED_ID)  # None and "shapes-llava" are one model
    if key not in _kept:
        _kept.clear()  # one model at a time: a large one may fill the memory
        _kept[key] = load(model)
    return _kept[key]


def _media(image_or_video, video, frames):
    """(images, kind) as the page and the command line read them (bounded)."""
    from explorer.media import read as media

    if isinstance(image_or_video, (str, os.PathLike)) and \
            (mimetypes.guess_type(str(image_or_video))[0] or "").startswith("video/"):
        return media.sample_video_frames(str(image_or_video), frames), "video"
    if isinstance(image_or_video, (list, tuple)):
        if not image_or_video:
            raise media.MediaError("no image was given (an empty list)")
        return [media.load_image(item) for item in image_or_video], "video" if video else "image"
    return [media.load_image(image_or_video)], "image"


def compare(image_or_video, question, methods=DEFAULT_METHODS, keep=DEFAULT_KEEP, model=None, *, video=False,
            diagnostics=True, progress=None, **settings):
    """The unpruned model and each method on one input: a Result (see the module's docstring). progress: a
    function told each stage as text (e.g. print)."""
    import models
    from explorer.core.compare import compare as run_all
    from explorer.core.settings import check_settings
    from explorer.page import service

    checked = check_settings(methods=methods, keep=keep, **settings)
    images, kind = _media(image_or_video, video, checked.frames)
    loaded = _model(model)
    records = run_all(loaded.model, loaded.processor, loaded.family, images, question, checked, kind=kind,
                      diagnostics=diagnostics, progress=progress)
    payload = {"model": loaded.name, "results": {name: r.to_json() for name, r in records.items()}}
    view = None
    if diagnostics:
        added, view = service.diagnostic_runs(loaded.model, loaded.processor, loaded.family, images, question,
                                              checked, kind, embedded=loaded.name == models.EMBEDDED_ID,
                                              say=progress)
        added.pop("timings_ms")
        payload.update(added)
    pruned = [m for m in checked.methods if m in records and m != "none"] or ["none"]
    return Result(payload, view, pair=(pruned[0], pruned[-1]), diagnostics=diagnostics)


class Result:
    """What `compare` returns.

    answers: {method: answer}, "none" (the unpruned model) first;
    records: {method: record}, the records of the command line's --json (`"results"`), as plain data: kept
        indices, every stage's scores, budget, tokens per layer, timings, KV cache, notes, the conversation;
    figure(name, frame=0, group=0, turn=1, pair=None): the page's Plotly figure of one panel (Result.panels
        lists them: answers, importance, overlap, spectra, bias, cost, ...); frame for video, group for several
        images, turn for follow-ups, pair the two methods shown side by side (default: the first and the last
        method asked for);
    images: the images the model saw (resized as its processor resized them), one per image or frame;
    to_json(): the page's result JSON: {"model", "results"} and, with diagnostics, "flipped_kept_indices",
        "positional_sweep", "flip_test" and "positional_bias". Plain data: json.dumps takes it.
    """

    def __init__(self, payload, images, pair, diagnostics=True):
        self._payload = payload
        self.images = images
        self.pair = tuple(pair)
        self.diagnostics = diagnostics
        self._analyses = {}
        if diagnostics:
            from explorer.page import service

            # the page's analysis, which adds the flip test's and the positional bias' numbers to the JSON
            self._analyses[(0, 0, self.pair)] = service.analyse(payload, self.pair)

    @property
    def model(self):
        return self._payload["model"]

    @property
    def records(self):
        return self._payload["results"]

    @property
    def answers(self):
        return {name: record["answer"] for name, record in self.records.items()}

    @property
    def panels(self):
        from explorer.page.panels import PANELS

        return [p.name for p in PANELS]

    def figure(self, name, frame=0, group=0, turn=1, pair=None):
        """The page's Plotly figure of the panel `name` (see Result.panels)."""
        from explorer.analysis.comparison import Analysis
        from explorer.page.panels import PANELS

        if not self.diagnostics:
            raise ValueError("figures need the diagnostics: run compare(..., diagnostics=True)")
        panel = {p.name: p for p in PANELS}.get(name)
        if panel is None:
            raise ValueError(f"no panel {name!r}; the panels are {', '.join(self.panels)}")
        turns = max(1, len(self.records["none"].get("turns") or []))
        if not (isinstance(turn, int) and 1 <= turn <= turns):
            raise ValueError(f"turn {turn!r} does not exist; this conversation has {turns} turn(s), from 1")
        key = (group, turn - 1, tuple(pair or self.pair))
        if key not in self._analyses:  # made once, as the page keeps one per grid and turn
            self._analyses[key] = Analysis(self._payload, pair=key[2], group=group, turn=key[1])
        return panel.figure(self._analyses[key], self.images, frame)

    def to_json(self):
        return self._payload

    def __repr__(self):
        answers = ", ".join(f"{name}: {answer!r}" for name, answer in self.answers.items())
        return f"Result({self.model}; {answers})"
