"""What the page does, without the page: load models once, read the user's media, run the comparison and the
flip test, and turn the records into figures. ui.py wires Gradio components to these functions.

Every request builds its records from scratch (the engine keeps nothing between calls); the only state kept
across requests is the loaded model, guarded by one lock per model so model work runs one at a time, and
the embedded model's object sweep, which depends only on the settings (methods, budget, layer), never on the
user's input.
"""

import copy
import json
import os
import tempfile
import threading
import time

from PIL import ImageOps

import models
from explorer import figures, media
from explorer.engine import RequestError, compare
from explorer.methods import METHODS

MAX_QUESTION_CHARS = 500
BUDGET_PRESETS = {  # the paper's budgets on LLaVA-1.5's 576 tokens, as ratios so they scale to any grid
    "192 of 576 (1/3)": 192 / 576,
    "128 of 576 (2/9)": 128 / 576,
    "64 of 576 (1/9)": 64 / 576,
}

_models = {}
_locks = {}
_sweeps = {}  # (model id, methods, keep, prune layer) -> the object sweep: fixed scenes, deterministic methods
_registry_lock = threading.Lock()


class UserError(ValueError):
    """Anything the user can fix; the page shows the message."""


def model_choices():
    return [models.EMBEDDED_ID] + models.hub_ids()


def get_model(model_id=None):
    """(model, processor, family, lock), loaded once per id and reused."""
    model_id = model_id or models.EMBEDDED_ID
    with _registry_lock:
        lock = _locks.setdefault(model_id, threading.Lock())
    with lock:
        if model_id not in _models:
            try:
                _models[model_id] = models.load(model_id)
            except models.ModelLoadError as error:
                raise UserError(str(error)) from None
    return (*_models[model_id], lock)


def read_media(image_path, video_path, num_frames=4):
    """(images, kind) from the page's inputs: an image, or a video sampled into frames."""
    if image_path and video_path:
        raise UserError("give an image or a video, not both")
    try:
        if image_path:
            return [media.load_image(image_path)], "image"
        if video_path:
            return media.sample_video_frames(video_path, int(num_frames)), "video"
    except media.MediaError as error:
        raise UserError(str(error)) from None
    raise UserError("upload an image or a video first")


def check_question(question):
    question = (question or "").strip()
    if not question:
        raise UserError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise UserError(f"the question is {len(question)} characters long; the limit is {MAX_QUESTION_CHARS}")
    return question


def run_comparison(image_path, video_path, question, method_a, method_b, keep, prune_layer, ref_layer=0,
                   schedule="single", model_id=None, num_frames=4, max_new_tokens=20):
    """The whole request: returns (payload, model_view_images). The payload is the command line's --json
    object plus the flip test and the positional-bias numbers."""
    question = check_question(question)
    for name in (method_a, method_b):
        if name not in METHODS:
            raise UserError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    images, kind = read_media(image_path, video_path, num_frames)
    model, processor, family, lock = get_model(model_id)
    methods = [method_a] + ([method_b] if method_b != method_a else [])
    settings = dict(methods=methods, keep=keep, prune_layer=int(prune_layer), ref_layer=int(ref_layer),
                    schedule=schedule, kind=kind, max_new_tokens=int(max_new_tokens))
    clock = {}
    with lock:
        try:
            start = time.perf_counter()
            records = compare(model, processor, family, images, question, **settings)
            clock["comparison"] = time.perf_counter()
            flipped = compare(model, processor, family, [ImageOps.flip(im) for im in images], question,
                              **{**settings, "max_new_tokens": 1}, diagnostics=False)
            clock["flip_test"] = time.perf_counter()
        except RequestError as error:
            raise UserError(str(error)) from None
        view = family.model_view(processor, images, kind=kind)
        sweep = None
        if (model_id or models.EMBEDDED_ID) == models.EMBEDDED_ID:  # known ground truth: objects and their tokens
            from models.shapes_llava.sweep import positional_sweep
            key = (models.EMBEDDED_ID, tuple(methods), keep, int(prune_layer))
            if key not in _sweeps:
                _sweeps[key] = positional_sweep(model, processor, family, methods, keep, int(prune_layer))
            sweep = copy.deepcopy(_sweeps[key])
        clock["sweep"] = time.perf_counter()
    results = {name: record.to_json() for name, record in records.items()}
    flipped_results = {name: record.to_json() for name, record in flipped.items()}
    _, flip_numbers = figures.flip_test(results, flipped_results, methods)
    payload = {
        "model": model_id or models.EMBEDDED_ID,
        "results": results,
        "flip_test": flip_numbers,
        "flipped_kept_indices": {name: r["kept_indices"] for name, r in flipped_results.items()},
        "positional_bias": figures.bias_summary(results, list(results)),
        "positional_sweep": sweep,
        "page_timings_ms": {"comparison": (clock["comparison"] - start) * 1e3,
                            "flip_test": (clock["flip_test"] - clock["comparison"]) * 1e3,
                            "view_and_sweep": (clock["sweep"] - clock["flip_test"]) * 1e3},
    }
    return payload, view


FIGURE_BUILDERS = {  # name -> f(payload, view, method_a, method_b, frame): every figure of the page
    "answers": lambda p, v, a, b, f: figures.answers_table(p["results"]),
    "importance": lambda p, v, a, b, f: figures.importance_figure(p["results"], v, a, b, frame=f),
    "overlap": lambda p, v, a, b, f: figures.overlap_figure(p["results"], v, a, b, frame=f),
    "frame_counts": lambda p, v, a, b, f: figures.frame_counts_figure(p["results"], _pruned(p)),
    "spectrum_heatmap": lambda p, v, a, b, f: figures.spectrum_heatmap(p["results"]),
    "spectrum_curves": lambda p, v, a, b, f: figures.spectrum_curves(p["results"]),
    "highpass_maps": lambda p, v, a, b, f: figures.highpass_maps_figure(p["results"], frame=f),
    "highfreq_share": lambda p, v, a, b, f: figures.highfreq_share_figure(p["results"]),
    "evolution": lambda p, v, a, b, f: figures.evolution_map(p["results"], v, frame=f),
    "position_scatter": lambda p, v, a, b, f: figures.position_scatter(p["results"], _all_methods()),
    "row_profile": lambda p, v, a, b, f: figures.row_profile(p["results"], _all_methods()),
    "flip": lambda p, v, a, b, f: _flip_figure(p),
    "sweep": lambda p, v, a, b, f: figures.sweep_figure(p["positional_sweep"]) if p.get("positional_sweep") else
    figures.empty_figure("The object sweep needs known object positions: it runs on the embedded model.",
                         "Object sweep"),
    "cost": lambda p, v, a, b, f: figures.cost_figure(p["results"]),
    "tokens_per_layer": lambda p, v, a, b, f: figures.tokens_per_layer_figure(p["results"]),
    "efficiency": lambda p, v, a, b, f: figures.efficiency_figure(p["results"]),
}


def _pruned(payload):
    return [m for m in payload["results"] if m != "none"]


def _all_methods():
    return [m for m in METHODS if m != "none"]


def _flip_figure(payload):
    results = payload["results"]
    flipped_results = {name: {**results[name], "kept_indices": kept}
                       for name, kept in payload["flipped_kept_indices"].items()}
    return figures.flip_test(results, flipped_results, _pruned(payload))[0]


def make_figures(payload, view, method_a, method_b, frame=0, names=None):
    """The page's figures (all, or those named), as pure functions of the payload and the images the
    model saw."""
    return {name: FIGURE_BUILDERS[name](payload, view, method_a, method_b, frame) for name in names or FIGURE_BUILDERS}


def save_payload(payload):
    """The whole result as a JSON file for download."""
    handle, path = tempfile.mkstemp(prefix="pruning-explorer-", suffix=".json")
    with os.fdopen(handle, "w") as out:
        json.dump(payload, out)
    return path
