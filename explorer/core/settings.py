"""One request's settings, checked once. The page, the command line, the benchmark harness and the engine
all pass a Settings; `check_settings` turns raw values (Gradio numbers, command-line strings, None) into one,
or raises BadInput with the sentence the user sees.

Settings that depend on the model (a layer inside the decoder, a budget below the token count) are checked
against it by the engine's plan, with the same error type.
"""

import math
from dataclasses import asdict, dataclass

from explorer.methods.registry import ALIASES, check_method
from models.base import BadInput

# The choices and bounds of every setting: the page's menus and sliders, the command line and the benchmark
# harness take them from here.
SCHEDULES = ("single", "paper", "official")  # controlled (one K, one count), CLSE's paper, each as its authors
EARLY_KV = ("keep", "prune")  # layers before a pruning stage keep / drop the pruned tokens in their KV cache
BUDGET_PER = ("image", "grid")  # one budget per image over its grids (split by size), or each grid its own
PROMPTS = ("chat", "official")  # the hub chat template, or the official evaluation prompt where a family has one
MAX_FRAMES = 16  # video frames sampled, at most
MAX_NEW_TOKENS = 256
MAX_REPEATS = 10  # timed repeats per method, at most
MAX_LAYER = 10_000  # a layer index beyond any decoder (the plan checks it against the model)
MAX_FOLLOW_UPS = 4  # follow-up questions of one conversation
MAX_QUESTION_CHARS = 500
FOLLOW_UP_MODES = ("keep", "reprune")  # continue the pruned cache, or prune again for each question


@dataclass(frozen=True)
class Settings:
    methods: tuple = ("clse", "fastv")  # the unpruned reference "none" is always run as well
    keep: float = 64  # visual tokens kept per image / video: a whole count >= 1, or a ratio in (0, 1)
    budget_per: str = "image"  # an image of several grids (base + tiles): one budget over them, or one per grid
    prune_layer: int = None  # K of a single stage; None: the family's official setting for the input kind
    ref_layer: int = None  # CLSE's reference layer L; None: the family's official setting
    schedule: str = "single"  # "single" (controlled: one stage at K), "paper" (CLSE's stages), "official"
    early_kv: str = None  # "keep" | "prune"; None: as the family's official code
    invert: bool = False  # the falsification ablation: keep the lowest-ranked tokens instead of the highest
    frames: int = 4  # video frames sampled
    max_new_tokens: int = 20
    seed: int = 0  # random's seed, mixed with the input's pixels: every input its own reproducible subset
    cutoff: float = 0.1  # CLSE's high-pass cutoff
    temp: float = 0.1  # CLSE's sigmoid temperature
    prompt: str = "chat"
    repeats: int = 1  # timed repeats per method (median reported)
    follow_ups: tuple = ()  # later questions of the conversation, in order
    follow_up_mode: str = "keep"  # "keep": on the first question's pruned cache; "reprune": chosen again per question
    notes: tuple = ()  # what the check changed (an old method name), for the records' notes

    def to_json(self):
        return {**asdict(self), "methods": list(self.methods), "notes": list(self.notes),
            "follow_ups": list(self.follow_ups)}


def _number(name, value, whole=False, low=None, high=None):
    """A finite number from a raw value, or BadInput naming the setting and the allowed range."""
    allowed = f"{'a whole number' if whole else 'a number'}" + (
        f" from {low} to {high}" if low is not None and high is not None else f" >= {low}" if low is not None else "")
    if isinstance(value, bool) or value is None or (isinstance(value, str) and not value.strip()):
        raise BadInput(f"{name} must be {allowed}, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadInput(f"{name} must be {allowed}, got {value!r}") from None
    if not math.isfinite(number) or (whole and number != int(number)):
        raise BadInput(f"{name} must be {allowed}, got {value!r}")
    if (low is not None and number < low) or (high is not None and number > high):
        raise BadInput(f"{name} must be {allowed}, got {value!r}")
    return int(number) if whole else number


def _keep(value):
    """A count (int >= 1) or a ratio (0 < r < 1). Gradio numbers arrive as floats: 64.0 means 64 tokens."""
    try:
        keep = float(value)
    except (TypeError, ValueError):
        raise BadInput(f"keep must be a number (a count >= 1 or a ratio in (0, 1)), got {value!r}") from None
    if not math.isfinite(keep) or not keep > 0:
        raise BadInput(f"keep must be a count >= 1 or a ratio in (0, 1), got {value!r}")
    if keep < 1:
        return keep
    if keep != int(keep):
        raise BadInput(f"keep {keep:g} is neither a whole count nor a ratio below 1")
    return int(keep)


def _optional_layer(name, value):
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto", "default")):
        return None
    return _number(name, value, whole=True, low=0, high=MAX_LAYER)


def _choice(name, value, choices, optional=False):
    if optional and value in (None, "", "auto", "default"):
        return None
    if value not in choices:
        raise BadInput(f"{name} must be {' or '.join(repr(c) for c in choices)}, got {value!r}")
    return value


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
    if question is not None and not isinstance(question, str):
        raise BadInput(f"{what} must be text, got {type(question).__name__}")
    question = (question or "").strip()
    if not question:
        raise BadInput(f"{what} is empty")
    try:
        question.encode("utf-8")
    except UnicodeEncodeError as error:  # a lone surrogate: nothing downstream could encode it
        raise BadInput(f"{what} holds text that is not valid Unicode (a lone surrogate, "
                       f"U+{ord(question[error.start]):04X})") from None
    if len(question) > MAX_QUESTION_CHARS:
        raise BadInput(f"{what} is {len(question)} characters long; the limit is {MAX_QUESTION_CHARS}")
    return question


def follow_ups(value):
    """Follow-up questions from a list, or one string with one question per line; at most MAX_FOLLOW_UPS."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        value = [line for line in value.splitlines() if line.strip()]
    if not isinstance(value, (list, tuple)):
        raise BadInput(f"follow-ups must be questions (a list, or one per line), got {value!r}")
    if len(value) > MAX_FOLLOW_UPS:
        raise BadInput(f"{len(value)} follow-up questions; the limit is {MAX_FOLLOW_UPS}")
    return tuple(check_question(q, f"follow-up question {i + 1}") for i, q in enumerate(value))


def check_settings(**raw):
    """Settings from raw values; every missing value takes its default. Raises BadInput."""
    unknown = set(raw) - set(Settings.__dataclass_fields__)
    if unknown:
        raise BadInput(f"unknown setting(s): {', '.join(sorted(unknown))}")
    d = Settings()
    get = raw.get
    methods, notes = method_names(get("methods", d.methods))
    return Settings(
        methods=methods, notes=notes,
        keep=_keep(get("keep", d.keep)),
        budget_per=_choice("budget per", get("budget_per", d.budget_per), BUDGET_PER),
        prune_layer=_optional_layer("prune layer", get("prune_layer")),
        ref_layer=_optional_layer("reference layer", get("ref_layer")),
        schedule=_choice("schedule", get("schedule", d.schedule), SCHEDULES),
        early_kv=_choice("early_kv", get("early_kv"), EARLY_KV, optional=True),
        invert=bool(get("invert", d.invert)),
        frames=_number("frame count", get("frames", d.frames), whole=True, low=1, high=MAX_FRAMES),
        max_new_tokens=_number("max new tokens", get("max_new_tokens", d.max_new_tokens), whole=True, low=1,
                               high=MAX_NEW_TOKENS),
        seed=_number("seed", get("seed", d.seed), whole=True, low=0, high=2**31 - 1),
        cutoff=_number("cutoff", get("cutoff", d.cutoff), low=1e-3, high=1.0),
        temp=_number("temperature", get("temp", d.temp), low=1e-3, high=100.0),
        prompt=_choice("prompt", get("prompt", d.prompt), PROMPTS),
        repeats=_number("repeats", get("repeats", d.repeats), whole=True, low=1, high=MAX_REPEATS),
        follow_ups=follow_ups(get("follow_ups", d.follow_ups)),
        follow_up_mode=_choice("follow-up mode", get("follow_up_mode", d.follow_up_mode), FOLLOW_UP_MODES),
    )
