"""The records of a benchmark run, written by the lmms-eval model (explorer/eval/lmms_eval.py) and read by the
report (report.py): the model's name, the model args that change an answer (with their defaults, from Settings), the
run tag that joins results and records, and the per-sample line of a Record."""

import hashlib
import json
import math

import models
from explorer.core.options import specs
from explorer.core.settings import Settings

MODEL_NAME = "pruning_explorer"
RUN_SETTINGS = tuple(name for name, (_, spec) in specs().items() if spec.get("run"))  # the spec's `run` settings
_DEFAULTS = Settings()
# The model args that change an answer, with their defaults (lmms_eval.py takes these and nothing else besides
# device, device_map and records_dir): the model, one method, the Settings a run may set (their defaults are
# Settings'), the dtype and the task's max_new_tokens unless fixed; run_tag hashes them, so results and records
# meet.
RUN_DEFAULTS = {"pretrained": models.EMBEDDED_ID, "method": _DEFAULTS.methods[0],
                **{name: getattr(_DEFAULTS, name) for name in RUN_SETTINGS}, "dtype": None, "max_new_tokens": None}
# Hashed into every run tag, whatever their values: the model args of the first runs. A run setting added since
# joins a tag only where a run sets it to another value than its default, so a run's tag stays what it was.
ALWAYS_TAGGED = ("pretrained", "method", "keep", "budget_per", "prune_layer", "ref_layer", "schedule", "early_kv",
                 "invert", "prompt", "frames", "dtype", "max_new_tokens")
GROUND_TRUTH_FIELDS = ("target_tokens", "target_grid")  # document fields copied into a record (shapes task)
DROPPED_FIELDS = ("spectra", "reference_scores", "capture")  # page diagnostics, not needed over a dataset
SCORE_DIGITS = 5  # significant digits of the stage scores kept per sample (ranks and correlations only)


def arg_value(text):
    """A model_args value as lmms-eval 0.7.3 converts it (utils.handle_arg_string)."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.isnumeric():
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def parse_model_args(text):
    """`key=value,key=value` -> dict (our values hold no commas, so a plain split is lmms-eval's split)."""
    pairs = [part.split("=", 1) for part in (text or "").split(",") if "=" in part]
    return {key.strip(): arg_value(value.strip()) for key, value in pairs}


def run_tag(args):
    """A short name for a run's answer-changing settings: `<method>-<hash>` (ALWAYS_TAGGED, and the others
    where they differ from their defaults)."""
    values = {key: args.get(key, default) for key, default in RUN_DEFAULTS.items()
              if key in ALWAYS_TAGGED or args.get(key, default) != default}
    digest = hashlib.sha1(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{values['method']}-{digest}"


def _short(value):
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.{SCORE_DIGITS}g}")
    return None if isinstance(value, float) else value


def record_line(record_json):
    """The per-sample part of a Record's JSON: what the page shows about a sample (kept indices per stage,
    grid, token counts, budget with the real average kept, timings, notes), scores shortened to 5 digits."""
    line = {key: value for key, value in record_json.items() if key not in DROPPED_FIELDS}
    line["stages"] = [{**stage, "scores": [_short(s) for s in stage.get("scores", [])]}
                      for stage in record_json.get("stages", [])]
    return line
