"""One request's settings, checked once. The page, the command line, the benchmark harness and the engine
all pass a Settings; `check_settings` turns raw values (Gradio numbers, command-line strings, None) into one,
or raises BadInput with the sentence the user sees.

The choices, bounds and defaults, and the checks that need no model, are in explorer/core/options.py (torch-free,
for the command line); they are all importable from here. Settings that depend on the model (a layer inside the
decoder, a budget below the token count) are checked against it by the engine's plan, with the same error type.
"""

import contextlib

from explorer.core import options
from explorer.core.options import (BUDGET_PER, EARLY_KV, FOLLOW_UP_MODES, MAX_FOLLOW_UPS, MAX_FRAMES,  # noqa: F401
                                   MAX_LAYER, MAX_NEW_TOKENS, MAX_QUESTION_CHARS, MAX_REPEATS, POSITIONS, PROMPTS,
                                   RANKS, SCHEDULES, SCORING_POINTS, Settings)
from explorer.methods.registry import ALIASES, check_method
from models.base import BadInput


@contextlib.contextmanager
def _as_bad_input():
    try:
        yield
    except options.InvalidSetting as error:
        raise BadInput(str(error)) from None


def method_names(methods):
    """(known method names, notes): old names are mapped to new ones, with a note saying so."""
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    if not isinstance(methods, (list, tuple)):
        raise BadInput(f"methods must be method names (a list, or one string separated by commas), got {methods!r}")
    names, notes = [], []
    for name in methods:
        if isinstance(name, str) and name in ALIASES:
            name, note = ALIASES[name]
            notes.append(note)
        check_method(name)
        if name not in names:
            names.append(name)
    return tuple(names), tuple(notes)


def check_question(question, what="the question"):
    """A question as the model gets it (stripped), or BadInput: empty, too long, or not text."""
    with _as_bad_input():
        return options.check_question(question, what)


def follow_ups(value):
    """Follow-up questions from a list, or one string with one question per line; at most MAX_FOLLOW_UPS."""
    with _as_bad_input():
        return options.follow_ups(value)


def check_settings(**raw):
    """Settings from raw values; every missing value takes its default. Raises BadInput."""
    unknown = set(raw) - set(Settings.__dataclass_fields__)
    if unknown:
        raise BadInput(f"unknown setting(s): {', '.join(sorted(unknown))}")
    methods, notes = method_names(raw.get("methods", Settings.methods))
    with _as_bad_input():
        return Settings(methods=methods, notes=notes, **options.check_values(**raw))
